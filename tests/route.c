/*
 * Lesson 05, route: the request line, compared byte for byte, picks the page; a head too
 * large for the buffer gets a 431; requests are no longer printed.
 */
#include "harness.h"
#include "tests.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

TEST(answers_404_page)
{
    struct server s;

    server_start(&s);
    expect_answered(&s, NOT_FOUND_REQUEST);
    server_stop(&s);
}

/* The near misses of a request line: each differs from it in one way that a comparison of
   the line must not overlook. Writes miss `which` of line, then the end of the head, into
   buf; returns its length (it may hold a NUL), or 0 past the last. */
static size_t near_miss(const char *line, int which, char *buf, size_t cap)
{
    int method = (int)strcspn(line, " "), path = method + 1 + (int)strcspn(line + method + 1, " ");
    int n;

    switch (which) {
    case 0: /* another version: HTTP/1.0 */
        n = snprintf(buf, cap, "%.*s0", (int)strlen(line) - 1, line);
        break;
    case 1: /* the method in lower case */
        n = snprintf(buf, cap, "%s", line);
        for (int i = 0; i < method; i++)
            buf[i] = (char)tolower((unsigned char)buf[i]);
        break;
    case 2: /* another method */
        n = snprintf(buf, cap, "POST%s", line + method);
        break;
    case 3: /* two spaces */
        n = snprintf(buf, cap, "%.*s %s", method, line, line + method);
        break;
    case 4: /* a leading space */
        n = snprintf(buf, cap, " %s", line);
        break;
    case 5: /* a trailing space */
        n = snprintf(buf, cap, "%s ", line);
        break;
    case 6: /* a \r before the line end's */
        n = snprintf(buf, cap, "%s\r", line);
        break;
    case 7: /* a zero byte at the end */
        n = snprintf(buf, cap, "%s", line) + 1;
        break;
    case 8: /* a zero byte after the path */
        n = snprintf(buf, cap, "%.*s%c%s", path, line, '\0', line + path);
        break;
    case 9: /* an empty line first */
        n = snprintf(buf, cap, "\r\n%s", line);
        break;
    case 10: /* a longer path */
        n = snprintf(buf, cap, "%.*sindex.html%s", path, line, line + path);
        break;
    default:
        return 0;
    }
    return (size_t)n + (size_t)snprintf(buf + n, cap - (size_t)n, "\r\n\r\n");
}

TEST(request_line_must_match_exactly)
{
    static const char *const ends[] = {"\r\n\r\n", "\n\n", "\r\nAccept: */*\r\n\r\n"};
    char request[256];
    struct server s;
    struct reply r;

    /* Each route's line, with each kind of line end, gets its answer (the slow one's is
       sleep.c's); each near miss of it gets the answer the stage owes it, the 404 page. */
    server_start(&s);
    for (const struct route *route = does->routes; route->status_line != NULL; route++) {
        if (route->request_line == NULL)
            continue;
        for (size_t i = 0; i < sizeof ends / sizeof ends[0] && !route->slow; i++) {
            snprintf(request, sizeof request, "%s%s", route->request_line, ends[i]);
            expect_answered(&s, request);
        }
        size_t len;
        for (int miss = 0; (len = near_miss(route->request_line, miss, request, sizeof request));
             miss++) {
            exchange(&s, request, len, &r);
            expect_answer(&r, request, len, len, shown(request, len));
        }
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
    const char *requests[] = {NORMAL_REQUEST, NOT_FOUND_REQUEST,
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
            expect_hinted(does->logs == LOGS_WORKER && worker_in(line) >= 0, HINT_NO_PRINT,
                          "after a request, the server printed on stdout: \"%s\"",
                          shown(line, strlen(line)));
    }
    server_stop(&s);
}
