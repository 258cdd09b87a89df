/*
 * Lesson 04, html: a real page behind the headers that say where it ends, and a 500, not
 * a crash, when the page cannot be read.
 */
#include "harness.h"
#include "tests.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST(answers_hello_page)
{
    struct server s;

    server_start(&s);
    expect_answered(&s, NORMAL_REQUEST);
    server_stop(&s);
}

TEST(answers_500_without_page)
{
    const char *args[] = {"0", NULL};
    struct server s;
    struct reply r;

    /* An empty folder: www/hello.html cannot be opened there. */
    server_spawn(&s, scratch_folder("no-www"), args);
    server_wait_listening(&s);
    for (int i = 0; i < 2; i++) { /* and the server goes on */
        exchange(&s, NORMAL_REQUEST, strlen(NORMAL_REQUEST), &r);
        note_case("%s to a server started in a folder with no www/ in it",
                  shown(NORMAL_REQUEST, strlen(NORMAL_REQUEST)));
        expect_status(&r, does->no_page);
    }
    /* The words are the server's: the line must name the page and the system's reason. */
    bool named =
        server_said(&s, "hello.html", patience()) && server_said(&s, strerror(ENOENT), patience());
    expect_hinted(named, HINT_PAGE_ERROR,
                  "stderr does not say which page failed (hello.html) and why (\"%s\")",
                  strerror(ENOENT));
    server_stop(&s);
}

TEST(answers_any_request_with_hello)
{
    const char *request = "DELETE /nowhere HTTP/1.0\r\n\r\n";
    struct server s;

    server_start(&s);
    expect_answered(&s, request);
    server_stop(&s);
}
