/*
 * Lesson 05, route: the request line, compared byte for byte, picks the page; a head too
 * large for the buffer gets a 431; requests are no longer printed.
 */
#include "harness.h"
#include "tests.h"

#include <string.h>

TEST(answers_404_page)
{
    const char *request = "GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    struct server s;
    struct reply r;

    server_start(&s);
    exchange(&s, request, strlen(request), &r);
    expect_page(&r, "HTTP/1.1 404 NOT FOUND", "www/404.html");
    server_stop(&s);
}

TEST(request_line_must_match_exactly)
{
    /* sizeof, not strlen: some of these hold a NUL. */
#define CASE(bytes)                                                                                \
    {                                                                                              \
        bytes, sizeof bytes - 1                                                                    \
    }
    static const struct {
        const char *bytes;
        size_t len;
    } found[] = {CASE("GET / HTTP/1.1\r\n\r\n"), CASE("GET / HTTP/1.1\n\n"),
                 CASE("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")},
      not_found[] = {CASE("GET / HTTP/1.0\r\n\r\n"),          CASE("get / HTTP/1.1\r\n\r\n"),
                     CASE("POST / HTTP/1.1\r\n\r\n"),         CASE("GET  / HTTP/1.1\r\n\r\n"),
                     CASE(" GET / HTTP/1.1\r\n\r\n"),         CASE("GET / HTTP/1.1 \r\n\r\n"),
                     CASE("GET / HTTP/1.1\r\r\n\r\n"),        CASE("GET / HTTP/1.1\0\r\n\r\n"),
                     CASE("GET /\0 HTTP/1.1\r\n\r\n"),        CASE("\r\nGET / HTTP/1.1\r\n\r\n"),
                     CASE("GET /index.html HTTP/1.1\r\n\r\n")};
#undef CASE
    struct server s;
    struct reply r;

    server_start(&s);
    for (size_t i = 0; i < sizeof found / sizeof found[0]; i++) {
        exchange(&s, found[i].bytes, found[i].len, &r);
        expect_page(&r, "HTTP/1.1 200 OK", "www/hello.html");
    }
    for (size_t i = 0; i < sizeof not_found / sizeof not_found[0]; i++) {
        exchange(&s, not_found[i].bytes, not_found[i].len, &r);
        expect_page(&r, "HTTP/1.1 404 NOT FOUND", "www/404.html");
    }
    server_stop(&s);
}

TEST(answers_431_to_oversized_head)
{
    struct server s;
    struct reply r;

    server_start(&s);
    exchange_oversized_head(&s, &r);
    expect_status(&r, "HTTP/1.1 431 Request Header Fields Too Large");
    expect_served(&s);
    server_stop(&s);
}

TEST(request_is_not_printed)
{
    const char *requests[] = {NORMAL_REQUEST, "GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                              "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"};
    const char *line;
    struct server s;
    struct reply r;

    /* From this stage on, a request, found or not, logs nothing: once each answer has come
       (and a moment more for a line that would follow it), stdout holds no line about it but,
       from stage 07 on, the worker's. */
    server_start(&s);
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        exchange(&s, requests[i], strlen(requests[i]), &r);
        harness_poll(NULL, 0, 100);
        while ((line = server_line(&s, 0)) != NULL)
            expect_hinted(stage >= 7 && worker_in(line) >= 0, HINT_NO_PRINT,
                          "after a request, the server printed on stdout: \"%s\"",
                          shown(line, strlen(line)));
    }
    server_stop(&s);
}
