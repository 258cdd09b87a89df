/*
 * What each stage does, written once: its routes (request line to answer), what it logs, what
 * it does with a head too large or too slow, whether it has a pool and shuts down. The
 * stages' numbers (pool size, default REQUESTS, timings) are the stages' own, read at run
 * time (harness.h). Every test that asks what a stage answers or logs asks this table, so a
 * stage that changes, say by a route of its own, changes here and in its lesson: see
 * "Changing a stage" in README.md beside this file.
 */
#include "harness.h"
#include "tests.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HELLO "HTTP/1.1 200 OK", "www/hello.html"
#define NOT_FOUND "HTTP/1.1 404 NOT FOUND", "www/404.html"
#define TOO_LARGE "HTTP/1.1 431 Request Header Fields Too Large"
#define NO_PAGE "HTTP/1.1 500 Internal Server Error"

/* The routes of the stages: the first whose line matches answers (the last field says whether
   it is slow); {0} ends the list. */
static const struct route none[] = {{0}};
static const struct route status_line_only[] = {{NULL, "HTTP/1.1 200 OK", NULL, false}, {0}};
static const struct route hello_to_all[] = {{NULL, HELLO, false}, {0}};
static const struct route by_line[] = {
    {"GET / HTTP/1.1", HELLO, false}, {NULL, NOT_FOUND, false}, {0}};
static const struct route with_sleep[] = {{"GET / HTTP/1.1", HELLO, false},
                                          {"GET /sleep HTTP/1.1", HELLO, true},
                                          {NULL, NOT_FOUND, false},
                                          {0}};

static const struct stage_does table[LAST_STAGE + 1] = {
    [1] = {.logs = LOGS_CONNECTION, .routes = none},
    [2] = {.reads_head = true, .logs = LOGS_REQUEST, .routes = none},
    [3] = {.reads_head = true, .logs = LOGS_REQUEST, .routes = status_line_only},
    [4] = {.reads_head = true, .logs = LOGS_REQUEST, .no_page = NO_PAGE, .routes = hello_to_all},
    [5] = {.reads_head = true,
           .logs = LOGS_NOTHING,
           .no_page = NO_PAGE,
           .too_large = TOO_LARGE,
           .routes = by_line},
    [6] = {.reads_head = true,
           .logs = LOGS_NOTHING,
           .no_page = NO_PAGE,
           .too_large = TOO_LARGE,
           .head_timeout = true,
           .routes = with_sleep},
    [7] = {.reads_head = true,
           .logs = LOGS_WORKER,
           .no_page = NO_PAGE,
           .too_large = TOO_LARGE,
           .head_timeout = true,
           .pool = true,
           .routes = with_sleep},
    [8] = {.reads_head = true,
           .logs = LOGS_WORKER,
           .no_page = NO_PAGE,
           .too_large = TOO_LARGE,
           .head_timeout = true,
           .pool = true,
           .shuts_down = true,
           .routes = with_sleep},
};

const struct stage_does *does = &table[1];

void stage_does_set(int number)
{
    does = &table[number];
}

/* The length of a stage's request head in input (its first n bytes, of total): up to and
   including the first empty line, or up to the end of the stream. False when there is no
   such end within HEAD_MAX bytes: the stage refuses the head. */
static bool head_fits(const char *input, size_t n, size_t total, size_t *len)
{
    for (size_t i = 0; i < n && i < HEAD_MAX; i++) {
        size_t line_start = i > 0 && input[i - 1] == '\r' ? i - 1 : i;
        if (input[i] == '\n' && (line_start == 0 || input[line_start - 1] == '\n')) {
            *len = i + 1;
            return true;
        }
    }
    *len = total;
    return total < HEAD_MAX;
}

/* True when the head's first line, without its line end, is exactly text (or text is NULL:
   any line). */
static bool request_line_is(const char *head, size_t len, const char *text)
{
    const char *newline = memchr(head, '\n', len);
    size_t line = newline != NULL ? (size_t)(newline - head) : len;

    if (newline != NULL && line > 0 && head[line - 1] == '\r')
        line--;
    return text == NULL || (line == strlen(text) && memcmp(head, text, line) == 0);
}

const struct route *route_for(const char *head, size_t len)
{
    for (const struct route *r = does->routes; r->status_line != NULL; r++)
        if (request_line_is(head, len, r->request_line))
            return r;
    return NULL;
}

bool expect_answer(const struct reply *r, const char *input, size_t n, size_t total,
                   const char *what)
{
    size_t head = 0;
    bool fits = !does->reads_head || head_fits(input, n, total, &head);
    const struct route *route = fits ? route_for(input, head) : NULL;
    struct reply ended = *r;

    /* A stage reads its head, at most HEAD_MAX bytes, and on closing at most LINGER_MAX
       more: a client that sent more than that may see the end as a reset, once the whole
       answer has come. */
    if (!fits)
        head = HEAD_MAX;
    if (ended.error == ECONNRESET && total - head > LINGER_MAX) {
        ended.closed = true;
        ended.error = 0;
    }
    /* Still open: a stage that owes no answer did not close; one that owes one did not read
       its head to the end, or did not close after its answer. */
    if (fits && route == NULL)
        expect(r->error != ETIMEDOUT,
               "%s: stage %02d sends nothing and closes the connection%s, but it was still open "
               "after %d ms",
               what, tested.stage, does->reads_head ? " once it has read the head" : " at once",
               patience());
    expect_hinted(r->error != ETIMEDOUT,
                  !fits        ? HINT_HEAD_MAX
                  : r->len > 0 ? HINT_CLOSE
                               : HINT_NO_ANSWER,
                  "%s: the connection was still open after %d ms%s%s", what, patience(),
                  r->len > 0 ? ", after the bytes " : "", shown(r->bytes, r->len));
    if (!fits && does->too_large != NULL) {
        expect_status(&ended, does->too_large);
    } else if (route == NULL) {
        /* Nothing to read, so how the connection ends is no matter. */
        expect(r->len == 0, "%s: stage %02d sends nothing, got \"%s\"", what, tested.stage,
               shown(r->bytes, r->len));
    } else if (route->page == NULL) {
        char expected[64];
        int len = snprintf(expected, sizeof expected, "%s\r\n\r\n", route->status_line);
        expect_reply(&ended, expected, (size_t)len);
    } else {
        expect_page(&ended, route->status_line, route->page);
    }
    return fits;
}

void expect_answer_to(const struct reply *r, const char *request)
{
    size_t len = strlen(request);

    expect_answer(r, request, len, len, shown(request, len));
}

void expect_answered(struct server *s, const char *request)
{
    struct reply r;

    exchange(s, request, strlen(request), &r);
    expect_answer_to(&r, request);
}
