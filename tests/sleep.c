/*
 * Lesson 06, sleep: GET /sleep answers like GET / after a pause, and a server with one
 * thread makes everyone wait for it.
 */
#include "harness.h"
#include "tests.h"

#include <string.h>
#include <unistd.h>

TEST(sleep_answers_hello_slowly)
{
    const char *request = SLEEP_REQUEST;
    struct server s;
    struct reply r;

    server_start(&s);
    long long start = now_ms();
    int fd = client_connect(s.port);
    client_send(fd, request, strlen(request));
    client_receive(fd, &r, sleep_seconds * 1000 + wait_ms);
    close(fd);
    long long took = now_ms() - start;
    expect_page(&r, "HTTP/1.1 200 OK", "www/hello.html");
    ck_assert_msg(took >= sleep_seconds * 900, "GET /sleep took %lld ms, not %d s", took,
                  sleep_seconds);
    server_stop(&s);
}

TEST(root_waits_behind_sleep)
{
    struct server s;

    server_start(&s);
    long long took = root_behind_sleep(&s);
    /* One thread: GET / is read only once /sleep is answered. */
    ck_assert_msg(took >= sleep_seconds * 500,
                  "GET / took %lld ms behind GET /sleep: it did "
                  "not wait, but this stage has one thread",
                  took);
    server_stop(&s);
}
