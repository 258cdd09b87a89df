/*
 * Lesson 04, html: a real page behind the headers that say where it ends, and a 500, not
 * a crash, when the page cannot be read.
 */
#include "harness.h"
#include "tests.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST(answers_hello_page)
{
    struct server s;
    struct reply r;

    server_start(&s);
    exchange(&s, NORMAL_REQUEST, strlen(NORMAL_REQUEST), &r);
    expect_page(&r, "HTTP/1.1 200 OK", "www/hello.html");
    server_stop(&s);
}

TEST(answers_500_without_page)
{
    char dir[] = "/tmp/no-www-XXXXXX";
    const char *args[] = {"0", NULL};
    struct server s;
    struct reply r;

    /* An empty directory: www/hello.html cannot be opened there. */
    ck_assert(mkdtemp(dir) != NULL);
    server_spawn(&s, dir, args);
    server_wait_listening(&s);
    for (int i = 0; i < 2; i++) { /* and the server goes on */
        exchange(&s, NORMAL_REQUEST, strlen(NORMAL_REQUEST), &r);
        expect_status(&r, "HTTP/1.1 500 Internal Server Error");
    }
    ck_assert_msg(server_said(&s, "www/hello.html: No such file or directory", wait_ms),
                  "stderr does not say which page failed and why: %s",
                  shown(s.err.text, s.err.len));
    server_stop(&s);
    rmdir(dir);
}

TEST(answers_any_request_with_hello)
{
    const char *request = "DELETE /nowhere HTTP/1.0\r\n\r\n";
    struct server s;
    struct reply r;

    server_start(&s);
    exchange(&s, request, strlen(request), &r);
    expect_page(&r, "HTTP/1.1 200 OK", "www/hello.html");
    server_stop(&s);
}
