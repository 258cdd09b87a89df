/* STUDENT FIXTURE. Stage 06 (a slow request, and the whole-head deadline). CORRECT, in a
 * style of its own: a client struct, the deadline kept as an absolute CLOCK_MONOTONIC
 * time and turned into a fresh SO_RCVTIMEO before every recv() (so it bounds the whole
 * head, not each read), nanosleep() for /sleep, and its own error wording. A grader
 * should see every stage-06 test pass, and, once the suite checks the head deadline from
 * stage 06 on, a silent or trickling client dropped after HEAD_TIMEOUT_SECONDS. */

/*
 * slowsrv: one thread, three answers.
 *   GET / HTTP/1.1       hello page
 *   GET /sleep HTTP/1.1  hello page, SLEEP_SECONDS later
 *   anything else        404 page
 * A client gets HEAD_TIMEOUT_SECONDS for its whole request head; then it is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef SLEEP_SECONDS
#define SLEEP_SECONDS 5
#endif
#ifndef HEAD_TIMEOUT_SECONDS
#define HEAD_TIMEOUT_SECONDS 5
#endif

#define DEFAULT_PORT 7878
#define LISTEN_BACKLOG 128
#define HEAD_CAPACITY 8192
#define PAGE_CAPACITY 16384
#define HEADER_ROOM 200
#define LINGER_ROUNDS 8
#define LINGER_ROUND_MS 250

struct client {
    int fd;
    struct timespec deadline; /* the whole head must have arrived by then */
    char head[HEAD_CAPACITY];
    size_t head_len;
};

enum head_state { HEAD_OK, HEAD_TOO_BIG, HEAD_LATE, HEAD_LOST };

/* Microseconds left until the client's deadline; 0 once it has passed. */
static long long micros_left(const struct client *c)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long us = (long long)(c->deadline.tv_sec - now.tv_sec) * 1000000 +
                   (c->deadline.tv_nsec - now.tv_nsec) / 1000;
    return us > 0 ? us : 0;
}

/* Lets the next recv() wait at most us microseconds (never 0: that would mean forever). */
static void limit_next_read(int fd, long long us)
{
    struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* True when head[i] is the '\n' of an empty line. */
static bool blank_line_ends_at(const char *head, size_t i)
{
    size_t start = i;
    if (start > 0 && head[start - 1] == '\r')
        start--;
    return start == 0 || head[start - 1] == '\n';
}

static enum head_state client_fill_head(struct client *c)
{
    size_t have = 0;

    clock_gettime(CLOCK_MONOTONIC, &c->deadline);
    c->deadline.tv_sec += HEAD_TIMEOUT_SECONDS;
    while (have < HEAD_CAPACITY) {
        long long us = micros_left(c);
        if (us == 0)
            return HEAD_LATE;
        limit_next_read(c->fd, us);
        ssize_t got = recv(c->fd, c->head + have, HEAD_CAPACITY - have, 0);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue; /* interrupted, or the time ran out: the loop looks at the clock */
            return HEAD_LOST;
        }
        if (got == 0) {
            c->head_len = have;
            return HEAD_OK;
        }
        for (size_t i = have; i < have + (size_t)got; i++) {
            if (c->head[i] == '\n' && blank_line_ends_at(c->head, i)) {
                c->head_len = i + 1;
                return HEAD_OK;
            }
        }
        have += (size_t)got;
    }
    return HEAD_TOO_BIG;
}

/* The request line: the head up to its first '\n', without a '\r' right before it. */
static size_t request_line_length(const struct client *c)
{
    const char *nl = memchr(c->head, '\n', c->head_len);
    if (nl == NULL)
        return c->head_len;
    size_t n = (size_t)(nl - c->head);
    return n > 0 && c->head[n - 1] == '\r' ? n - 1 : n;
}

static bool request_line_equals(const struct client *c, const char *expected)
{
    size_t n = request_line_length(c);
    return n == strlen(expected) && memcmp(c->head, expected, n) == 0;
}

static bool transmit(int fd, const char *bytes, size_t count)
{
    while (count > 0) {
        ssize_t sent = send(fd, bytes, count, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0)
            return false;
        bytes += sent;
        count -= (size_t)sent;
    }
    return true;
}

static void respond(int fd, const char *status, const char *body, size_t body_len)
{
    char message[HEADER_ROOM + PAGE_CAPACITY];
    int n = snprintf(message, HEADER_ROOM, "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, body_len);

    memcpy(message + n, body, body_len);
    if (!transmit(fd, message, (size_t)n + body_len))
        fprintf(stderr, "sending the response failed: %s\n", strerror(errno));
}

/* Reads the whole file into buf; returns its length, or -1 with errno set. */
static long slurp(const char *path, char *buf)
{
    int fd = open(path, O_RDONLY);
    long total = 0;
    int saved = 0;

    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t n = read(fd, buf + total, (size_t)(PAGE_CAPACITY - total));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            saved = errno;
            break;
        }
        if (n == 0)
            break;
        total += n;
        if (total == PAGE_CAPACITY) {
            saved = EFBIG;
            break;
        }
    }
    close(fd);
    errno = saved;
    return saved ? -1 : total;
}

static void respond_with_page(int fd, const char *status, const char *path)
{
    char page[PAGE_CAPACITY];
    long len = slurp(path, page);

    if (len >= 0) {
        respond(fd, status, page, (size_t)len);
    } else {
        fprintf(stderr, "failed to read %s: %s\n", path, strerror(errno));
        static const char body[] = "Internal error: page unavailable.\n";
        respond(fd, "HTTP/1.1 500 Internal Server Error", body, sizeof body - 1);
    }
}

/* Sleeps the whole time even if a signal cuts a nanosleep() short. */
static void pause_seconds(int seconds)
{
    struct timespec left = {.tv_sec = seconds, .tv_nsec = 0};
    while (nanosleep(&left, &left) < 0 && errno == EINTR) {
    }
}

static void choose_response(struct client *c)
{
    if (request_line_equals(c, "GET / HTTP/1.1")) {
        respond_with_page(c->fd, "HTTP/1.1 200 OK", "www/hello.html");
    } else if (request_line_equals(c, "GET /sleep HTTP/1.1")) {
        pause_seconds(SLEEP_SECONDS);
        respond_with_page(c->fd, "HTTP/1.1 200 OK", "www/hello.html");
    } else {
        respond_with_page(c->fd, "HTTP/1.1 404 NOT FOUND", "www/404.html");
    }
}

/* If the client left bytes we did not read, a bare close() would answer them with a
   reset, which can destroy our response in flight. So: FIN first, then read and drop what
   is still coming, for a bounded time, then close. */
static void linger_then_close(int fd)
{
    char scratch[4096];

    if (recv(fd, scratch, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
        shutdown(fd, SHUT_WR);
        limit_next_read(fd, LINGER_ROUND_MS * 1000LL);
        for (int round = 0; round < LINGER_ROUNDS; round++) {
            if (recv(fd, scratch, sizeof scratch, 0) <= 0)
                break;
        }
    }
    close(fd);
}

static void serve(int fd)
{
    static struct client c; /* one thread: one client at a time */

    c.fd = fd;
    switch (client_fill_head(&c)) {
    case HEAD_OK:
        choose_response(&c);
        linger_then_close(fd);
        return;
    case HEAD_TOO_BIG: {
        static const char body[] = "Request head too large.\n";
        respond(fd, "HTTP/1.1 431 Request Header Fields Too Large", body, sizeof body - 1);
        linger_then_close(fd);
        return;
    }
    case HEAD_LATE:
        /* Nothing was sent, so there is nothing to protect: just close. */
        fprintf(stderr, "timed out waiting for a request head (%d s); client dropped\n",
                HEAD_TIMEOUT_SECONDS);
        break;
    case HEAD_LOST:
        fprintf(stderr, "receiving the request failed: %s\n", strerror(errno));
        break;
    }
    close(fd);
}

static bool read_port(const char *arg, long *port)
{
    char *end;

    if (arg[0] < '0' || arg[0] > '9')
        return false;
    errno = 0;
    *port = strtol(arg, &end, 10);
    return errno == 0 && *end == '\0' && *port <= 65535;
}

int main(int argc, char **argv)
{
    long port = DEFAULT_PORT;
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t addr_len = sizeof addr;
    int yes = 1;

    if (argc > 2 || (argc == 2 && !read_port(argv[1], &port))) {
        fprintf(stderr, "bad port \"%s\": give a number between 0 and 65535\n",
                argc > 1 ? argv[1] : "");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) {
        fprintf(stderr, "socket() failed: %s\n", strerror(errno));
        return 1;
    }
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "bind 127.0.0.1:%ld: %s\n", port, strerror(errno));
        return 1;
    }
    if (listen(listener, LISTEN_BACKLOG) < 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &addr_len) < 0) {
        fprintf(stderr, "cannot start listening: %s\n", strerror(errno));
        return 1;
    }
    printf("Listening on http://127.0.0.1:%d\n", ntohs(addr.sin_port));

    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd >= 0) {
            serve(fd);
            continue;
        }
        int why = errno;
        if (why == EINTR || why == ECONNABORTED)
            continue;
        fprintf(stderr, "accept() failed: %s\n", strerror(why));
        if (why == EMFILE || why == ENFILE || why == ENOBUFS || why == ENOMEM)
            sleep(1); /* it would fail again at once: give connections time to end */
    }
}
