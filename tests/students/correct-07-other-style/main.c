/* STUDENT FIXTURE. Stage 07 (thread pool). CORRECT, in a style of its own, unlike typical-07
 * and correct-07: pool.c keeps its jobs in a fixed-size array used as a ring (counters of
 * jobs added and taken, the slot being the count modulo the size) and its workers in a
 * linked list, and a worker holds the mutex except while it runs a job; main.c makes each
 * connection non-blocking and does every wait with poll() against a deadline of its own,
 * finds the end of the head with a three-state scanner, sends with MSG_NOSIGNAL instead of
 * ignoring SIGPIPE, reads each page into a buffer sized with fstat(), and reports a run of
 * accept() failures once, pausing a quarter of a second between tries. A grader should see
 * every stage-07 test pass, its pool's too. */

/*
 * crewsrv -- stage 7: a crew of four workers serves what main accepts.
 *
 *   GET / HTTP/1.1        200 and www/hello.html
 *   GET /sleep HTTP/1.1   the same, SLEEP_SECONDS later (only its worker waits)
 *   any other head        404 and www/404.html
 *   a head over 8 KiB     431
 *   no whole head within HEAD_TIMEOUT_SECONDS: hung up on, with no answer
 */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SLEEP_SECONDS
#define SLEEP_SECONDS 5
#endif
#ifndef HEAD_TIMEOUT_SECONDS
#define HEAD_TIMEOUT_SECONDS 5
#endif

enum {
    DEFAULT_PORT = 7878,
    CREW = 4,
    HEAD_LIMIT = 8192,     /* the whole head, its empty line included */
    PAGE_LIMIT = 1 << 20,  /* a bigger page is refused (500), not sent */
    SEND_MS = 10000,       /* the most an answer may take to go out */
    DRAIN_LIMIT = 32768,   /* after the answer, the most thrown away of what a client sent */
    DRAIN_MS = 1500,       /* ... and for how long at most */
    DRAIN_QUIET_MS = 250,  /* ... stopping once it has been quiet this long */
    ACCEPT_PAUSE_MS = 250, /* between tries while accept() fails */
};

/* ---- time -------------------------------------------------------------------------- */

static struct timespec in_ms(long long ms)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static long long ms_until(struct timespec deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(deadline.tv_sec - now.tv_sec) * 1000 +
           (deadline.tv_nsec - now.tv_nsec) / 1000000;
}

static struct timespec sooner(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec) ? a : b;
}

static void nap_ms(long long ms)
{
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&left, &left) < 0 && errno == EINTR)
        ;
}

/* Waits until fd is ready for events: 1 when it is, 0 once the deadline has passed, -1 on
   an error. */
static int wait_until(int fd, short events, struct timespec deadline)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        long long left = ms_until(deadline);
        if (left <= 0)
            return 0;
        int ready = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (ready > 0)
            return 1;
        if (ready < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- one connection ------------------------------------------------------------------ */

struct conn {
    int fd; /* non-blocking */
    char head[HEAD_LIMIT];
    size_t len;
};

/* Where the scanner is: inside a line, at the start of one, or at the start of one after a
   '\r'. A '\n' at the start of a line (a '\r' before it or not) is the empty line. */
enum scan { IN_LINE, LINE_START, LINE_START_CR, HEAD_END };

static enum scan scan_byte(enum scan at, char c)
{
    if (c == '\n')
        return at == IN_LINE ? LINE_START : HEAD_END;
    if (c == '\r' && at == LINE_START)
        return LINE_START_CR;
    return IN_LINE;
}

enum head { HEAD_WHOLE, HEAD_STREAM_ENDED, HEAD_TOO_BIG, HEAD_LATE, HEAD_BROKEN };

/* Reads the head into c->head. The whole of it must come within HEAD_TIMEOUT_SECONDS. */
static enum head read_head(struct conn *c)
{
    struct timespec deadline = in_ms(HEAD_TIMEOUT_SECONDS * 1000LL);
    enum scan at = LINE_START;

    c->len = 0;
    while (c->len < HEAD_LIMIT) {
        ssize_t got = recv(c->fd, c->head + c->len, HEAD_LIMIT - c->len, 0);
        if (got == 0)
            return HEAD_STREAM_ENDED;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return HEAD_BROKEN;
            int ready = wait_until(c->fd, POLLIN, deadline);
            if (ready <= 0)
                return ready == 0 ? HEAD_LATE : HEAD_BROKEN;
            continue;
        }
        for (size_t i = c->len; i < c->len + (size_t)got; i++) {
            at = scan_byte(at, c->head[i]);
            if (at == HEAD_END) {
                c->len = i + 1;
                return HEAD_WHOLE;
            }
        }
        c->len += (size_t)got;
    }
    return HEAD_TOO_BIG;
}

/* Sends all of data, or gives up (-1) when the client is gone or takes too long. */
static int send_all(struct conn *c, const char *data, size_t len)
{
    struct timespec deadline = in_ms(SEND_MS);

    while (len > 0) {
        ssize_t sent = send(c->fd, data, len, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
                wait_until(c->fd, POLLOUT, deadline) > 0)
                continue;
            if (errno != EPIPE && errno != ECONNRESET) /* a client that left is no news */
                fprintf(stderr, "answer not sent: %s\n", strerror(errno));
            return -1;
        }
        data += sent;
        len -= (size_t)sent;
    }
    return 0;
}

#define HEAD_FORMAT "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n"

static void answer_text(struct conn *c, const char *status, const char *text)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, HEAD_FORMAT "%s", status, strlen(text), text);

    send_all(c, buf, (size_t)n);
}

/* Answers with the page at path, read whole into one buffer with the status line and
   headers before it; 500 when the page cannot be read. */
static void answer_page(struct conn *c, const char *status, const char *path)
{
    char *answer = NULL;
    size_t size = 0, have = 0;
    int head = 0, error = 0;
    struct stat st;
    int file = open(path, O_RDONLY);

    if (file < 0 || fstat(file, &st) < 0)
        error = errno;
    else if (!S_ISREG(st.st_mode))
        error = EISDIR;
    else if (st.st_size > PAGE_LIMIT)
        error = EFBIG;
    if (error == 0) {
        size = (size_t)st.st_size;
        head = snprintf(NULL, 0, HEAD_FORMAT, status, size);
        answer = malloc((size_t)head + 1 + size);
        if (answer == NULL)
            error = ENOMEM;
    }
    if (error == 0) {
        snprintf(answer, (size_t)head + 1, HEAD_FORMAT, status, size);
        while (have < size) {
            ssize_t got = read(file, answer + head + have, size - have);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                error = got < 0 ? errno : EIO; /* shorter than fstat() said */
                break;
            }
            have += (size_t)got;
        }
    }
    if (file >= 0)
        close(file);
    if (error != 0) {
        fprintf(stderr, "cannot serve %s: %s\n", path, strerror(error));
        answer_text(c, "500 Internal Server Error", "500 Internal Server Error\n");
    } else {
        send_all(c, answer, (size_t)head + size);
    }
    free(answer);
}

static bool line_is(const struct conn *c, const char *text)
{
    const char *newline = memchr(c->head, '\n', c->len);
    size_t n = newline != NULL ? (size_t)(newline - c->head) : c->len;

    if (newline != NULL && n > 0 && c->head[n - 1] == '\r')
        n--;
    return n == strlen(text) && memcmp(c->head, text, n) == 0;
}

/* Hangs up. When the client sent more than the head, a plain close() would answer those
   bytes with a reset, and the client could lose the answer: so end our side first, and
   throw away what comes, for a while, before closing. */
static void hang_up(struct conn *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};

    if (poll(&p, 1, 0) > 0) {
        struct timespec end = in_ms(DRAIN_MS);
        char junk[4096];
        size_t thrown = 0;

        shutdown(c->fd, SHUT_WR);
        while (thrown < DRAIN_LIMIT) {
            ssize_t got = recv(c->fd, junk, sizeof junk, 0);
            if (got > 0) {
                thrown += (size_t)got;
                continue;
            }
            if (got == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
                break;
            if (errno != EINTR &&
                wait_until(c->fd, POLLIN, sooner(end, in_ms(DRAIN_QUIET_MS))) <= 0)
                break;
        }
    }
    close(c->fd);
}

/* The pool's job: one connection, its descriptor carried in the pointer. */
static void serve(void *arg)
{
    struct conn c = {.fd = (int)(intptr_t)arg};
    int flags = fcntl(c.fd, F_GETFL);

    if (flags < 0 || fcntl(c.fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        fprintf(stderr, "cannot make a connection non-blocking: %s\n", strerror(errno));
        close(c.fd);
        return;
    }
    switch (read_head(&c)) {
    case HEAD_WHOLE:
    case HEAD_STREAM_ENDED: /* the client ended its side early: answer what it sent */
        if (line_is(&c, "GET / HTTP/1.1")) {
            answer_page(&c, "200 OK", "www/hello.html");
        } else if (line_is(&c, "GET /sleep HTTP/1.1")) {
            nap_ms(SLEEP_SECONDS * 1000LL);
            answer_page(&c, "200 OK", "www/hello.html");
        } else {
            answer_page(&c, "404 NOT FOUND", "www/404.html");
        }
        break;
    case HEAD_TOO_BIG:
        answer_text(&c, "431 Request Header Fields Too Large",
                    "431 Request Header Fields Too Large\n");
        break;
    case HEAD_LATE:
        fprintf(stderr, "no whole request head in %d s: hanging up\n", HEAD_TIMEOUT_SECONDS);
        close(c.fd);
        return;
    case HEAD_BROKEN:
        if (errno != ECONNRESET)
            fprintf(stderr, "request not read: %s\n", strerror(errno));
        close(c.fd);
        return;
    }
    hang_up(&c);
}

/* ---- main ---------------------------------------------------------------------------- */

/* The port: one to five digits, at most 65535; -1 for anything else. */
static long port_from(const char *text)
{
    size_t digits = strspn(text, "0123456789");

    if (digits == 0 || digits > 5 || text[digits] != '\0')
        return -1;
    long port = strtol(text, NULL, 10);
    return port <= 65535 ? port : -1;
}

static int listen_on(long port)
{
    struct sockaddr_in where = {.sin_family = AF_INET};
    int yes = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    where.sin_port = htons((uint16_t)port);
    where.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) < 0 ||
        bind(fd, (struct sockaddr *)&where, sizeof where) < 0 || listen(fd, SOMAXCONN) < 0) {
        fprintf(stderr, "cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    long port = argc == 2 ? port_from(argv[1]) : DEFAULT_PORT;

    if (argc > 2 || port < 0) {
        fprintf(stderr, "usage: %s [PORT], PORT a number from 0 to 65535\n", argv[0]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, even into a pipe */

    int listener = listen_on(port);
    if (listener < 0)
        return 1;
    struct sockaddr_in bound;
    socklen_t size = sizeof bound;
    if (getsockname(listener, (struct sockaddr *)&bound, &size) < 0) {
        fprintf(stderr, "cannot tell which port: %s\n", strerror(errno));
        return 1;
    }
    ThreadPool *crew = thread_pool_new(CREW);
    if (crew == NULL) {
        fprintf(stderr, "cannot start the workers: %s\n", strerror(errno));
        return 1;
    }
    printf("Listening on http://127.0.0.1:%d\n", ntohs(bound.sin_port));

    bool failing = false; /* accept() failed last time: said so once, pausing since */
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (!failing)
                fprintf(stderr, "accept failed: %s (trying again every %d ms)\n", strerror(errno),
                        ACCEPT_PAUSE_MS);
            failing = true;
            nap_ms(ACCEPT_PAUSE_MS);
            continue;
        }
        failing = false;
        if (thread_pool_execute(crew, serve, (void *)(intptr_t)fd) < 0) {
            fprintf(stderr, "connection dropped, no room for it: %s\n", strerror(errno));
            close(fd);
        }
    }
}
