/* STUDENT FIXTURE. Stage 08 (graceful shutdown). CORRECT, in a style of its own: SIGINT
 * and SIGTERM are blocked in every thread and taken by a dedicated thread with sigwait(),
 * which wakes the accept loop through a pipe that the loop poll()s beside the listener (no
 * signal handler at all); the pool (pool.c) has its own linked-list queue and a separate
 * worker array; the head deadline re-arms SO_RCVTIMEO before each read. A grader should
 * see every stage-08 test pass: shutdown after REQUESTS (default 4) and on either signal,
 * every queued and running request answered, every worker joined, exit status 0. */

/*
 * finalsrv [PORT [REQUESTS]]
 *
 * Serves REQUESTS connections with a pool of four workers, or fewer if SIGINT or SIGTERM
 * comes first, then shuts down in order: the listener is closed, the pool finishes what it
 * has and its workers are joined, the signal thread is stopped, and main returns 0.
 */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
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

#define POOL_SIZE 4
#define PORT_DEFAULT 7878
#define REQUESTS_DEFAULT 4
#define BACKLOG_LEN 511
#define HEAD_SIZE 8192
#define PAGE_SIZE_MAX 16384
#define LINGER_MS 250
#define LINGER_READS 8

/* ================= the stop signals ================= */

/* The signal thread writes a byte here for each SIGINT/SIGTERM; the accept loop polls
   the reading end. */
static int wake_pipe[2] = {-1, -1};
static atomic_bool main_is_done;
static sigset_t stop_set;

static void *signal_waiter(void *unused)
{
    int sig;

    (void)unused;
    for (;;) {
        if (sigwait(&stop_set, &sig) != 0)
            continue;
        if (atomic_load(&main_is_done))
            return NULL; /* main's own poke: time to go */
        /* non-blocking: a full pipe already holds a stop request */
        ssize_t ignored = write(wake_pipe[1], "!", 1);
        (void)ignored;
    }
}

/* Blocks SIGINT and SIGTERM in this thread, and so in every thread made after, and starts
   the thread that waits for them. */
static bool start_signal_thread(pthread_t *tid)
{
    int rc;

    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    if ((rc = pthread_sigmask(SIG_BLOCK, &stop_set, NULL)) != 0) {
        fprintf(stderr, "cannot block the stop signals: %s\n", strerror(rc));
        return false;
    }
    if (pipe(wake_pipe) < 0 || fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK) < 0) {
        fprintf(stderr, "cannot make the wake-up pipe: %s\n", strerror(errno));
        return false;
    }
    if ((rc = pthread_create(tid, NULL, signal_waiter, NULL)) != 0) {
        fprintf(stderr, "cannot start the signal thread: %s\n", strerror(rc));
        return false;
    }
    return true;
}

static void stop_signal_thread(pthread_t tid)
{
    atomic_store(&main_is_done, true);
    pthread_kill(tid, SIGTERM); /* blocked everywhere: only its sigwait() takes it */
    pthread_join(tid, NULL);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
}

/* ================= one connection ================= */

enum head_end { END_OK, END_OVERSIZED, END_TIMEOUT, END_ERROR };

struct head {
    char data[HEAD_SIZE];
    size_t len;
};

static long long now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void set_read_timeout_us(int fd, long long us)
{
    struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static bool closes_blank_line(const char *d, size_t nl)
{
    size_t i = nl;
    if (i > 0 && d[i - 1] == '\r')
        i--;
    return i == 0 || d[i - 1] == '\n';
}

/* The head, read against one deadline for all of it. */
static enum head_end read_head_by(int fd, struct head *h)
{
    long long deadline = now_us() + HEAD_TIMEOUT_SECONDS * 1000000LL;

    h->len = 0;
    while (h->len < HEAD_SIZE) {
        long long left = deadline - now_us();
        if (left <= 0)
            return END_TIMEOUT;
        set_read_timeout_us(fd, left);
        ssize_t n = recv(fd, h->data + h->len, HEAD_SIZE - h->len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue; /* the clock decides */
        if (n < 0)
            return END_ERROR;
        if (n == 0)
            return END_OK;
        size_t from = h->len;
        h->len += (size_t)n;
        for (size_t i = from; i < h->len; i++) {
            if (h->data[i] == '\n' && closes_blank_line(h->data, i)) {
                h->len = i + 1;
                return END_OK;
            }
        }
    }
    return END_OVERSIZED;
}

static bool first_line_is(const struct head *h, const char *want)
{
    const char *nl = memchr(h->data, '\n', h->len);
    size_t n = nl ? (size_t)(nl - h->data) : h->len;

    if (nl && n > 0 && h->data[n - 1] == '\r')
        n--;
    return n == strlen(want) && memcmp(h->data, want, n) == 0;
}

static bool send_fully(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static void send_response(int fd, const char *status, const char *body, size_t len)
{
    char buf[256 + PAGE_SIZE_MAX];
    int n =
        snprintf(buf, 256, "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status, len);

    memcpy(buf + n, body, len);
    if (!send_fully(fd, buf, (size_t)n + len))
        fprintf(stderr, "client went away before its answer: %s\n", strerror(errno));
}

static bool read_file(const char *path, char *out, size_t *len)
{
    int fd = open(path, O_RDONLY), err = 0;
    ssize_t n;

    if (fd < 0)
        return false;
    *len = 0;
    do {
        n = read(fd, out + *len, PAGE_SIZE_MAX - *len);
        if (n > 0)
            *len += (size_t)n;
    } while ((n > 0 && *len < PAGE_SIZE_MAX) || (n < 0 && errno == EINTR));
    if (n < 0)
        err = errno;
    else if (*len == PAGE_SIZE_MAX)
        err = EFBIG;
    close(fd);
    errno = err;
    return err == 0;
}

static void send_file(int fd, const char *status, const char *path)
{
    char page[PAGE_SIZE_MAX];
    size_t len;

    if (read_file(path, page, &len)) {
        send_response(fd, status, page, len);
        return;
    }
    fprintf(stderr, "open %s: %s\n", path, strerror(errno));
    const char *text = "The server failed to read the page.\n";
    send_response(fd, "HTTP/1.1 500 Internal Server Error", text, strlen(text));
}

/* FIN first, then read what is left (bounded), so that close() does not reset. */
static void drain_and_close(int fd)
{
    char trash[4096];
    struct pollfd p = {.fd = fd, .events = POLLIN};

    if (poll(&p, 1, 0) > 0) {
        shutdown(fd, SHUT_WR);
        set_read_timeout_us(fd, LINGER_MS * 1000LL);
        for (int i = 0; i < LINGER_READS && recv(fd, trash, sizeof trash, 0) > 0; i++) {
        }
    }
    close(fd);
}

static void handle_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct head h;

    switch (read_head_by(fd, &h)) {
    case END_OK:
        if (first_line_is(&h, "GET / HTTP/1.1")) {
            send_file(fd, "HTTP/1.1 200 OK", "www/hello.html");
        } else if (first_line_is(&h, "GET /sleep HTTP/1.1")) {
            sleep(SLEEP_SECONDS); /* SIGINT/SIGTERM are blocked here: never cut short */
            send_file(fd, "HTTP/1.1 200 OK", "www/hello.html");
        } else {
            send_file(fd, "HTTP/1.1 404 NOT FOUND", "www/404.html");
        }
        drain_and_close(fd);
        return;
    case END_OVERSIZED: {
        const char *text = "Request header fields too large.\n";
        send_response(fd, "HTTP/1.1 431 Request Header Fields Too Large", text, strlen(text));
        drain_and_close(fd);
        return;
    }
    case END_TIMEOUT:
        fprintf(stderr, "no request within %d s from a client: dropping it\n",
                HEAD_TIMEOUT_SECONDS);
        break;
    case END_ERROR:
        fprintf(stderr, "recv: %s\n", strerror(errno));
        break;
    }
    close(fd); /* nothing was sent: nothing to protect */
}

/* ================= start-up and the accept loop ================= */

static bool whole_number(const char *s, long lo, long hi, long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int listen_loopback(long port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        fprintf(stderr, "socket: %s\n", strerror(errno));
        return -1;
    }
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        fprintf(stderr, "bind 127.0.0.1:%ld: %s\n", port, strerror(errno));
    else if (listen(fd, BACKLOG_LEN) < 0)
        fprintf(stderr, "listen: %s\n", strerror(errno));
    else
        return fd;
    close(fd);
    return -1;
}

/* Waits for a client or a stop request: true when accept() will not block. */
static bool client_or_stop(int listener)
{
    struct pollfd fds[2] = {{.fd = listener, .events = POLLIN},
                            {.fd = wake_pipe[0], .events = POLLIN}};

    for (;;) {
        int r = poll(fds, 2, -1);
        if (r > 0)
            break;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "poll: %s\n", strerror(errno));
            return false;
        }
    }
    return !(fds[1].revents & POLLIN); /* a stop request wins */
}

int main(int argc, char **argv)
{
    long port = PORT_DEFAULT, requests = REQUESTS_DEFAULT;
    pthread_t signal_thread;

    if (argc > 3) {
        fprintf(stderr, "usage: %s [PORT [REQUESTS]]\n", argv[0]);
        return 1;
    }
    if (argc > 1 && !whole_number(argv[1], 0, 65535, &port)) {
        fprintf(stderr, "port \"%s\" is not a number from 0 to 65535\n", argv[1]);
        return 1;
    }
    if (argc > 2 && !whole_number(argv[2], 1, LONG_MAX, &requests)) {
        fprintf(stderr, "REQUESTS \"%s\" is not a positive whole number\n", argv[2]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    int listener = listen_loopback(port);
    if (listener < 0)
        return 1;
    struct sockaddr_in sa;
    socklen_t sa_len = sizeof sa;
    if (getsockname(listener, (struct sockaddr *)&sa, &sa_len) < 0) {
        fprintf(stderr, "getsockname: %s\n", strerror(errno));
        return 1;
    }
    /* Before any other thread exists, so that all of them inherit the blocked mask. */
    if (!start_signal_thread(&signal_thread))
        return 1;
    ThreadPool *pool = thread_pool_new(POOL_SIZE);
    if (pool == NULL) {
        fprintf(stderr, "cannot create the thread pool: %s\n", strerror(errno));
        stop_signal_thread(signal_thread);
        return 1;
    }
    printf("Listening on http://127.0.0.1:%d\n", ntohs(sa.sin_port));

    long accepted = 0;
    while (accepted < requests && client_or_stop(listener)) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED || e == EAGAIN)
                continue;
            fprintf(stderr, "accept: %s\n", strerror(e));
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
                sleep(1); /* would fail again at once; let connections finish */
            continue;
        }
        accepted++; /* counted whatever the client sends, like the reference's take(n) */
        if (thread_pool_execute(pool, handle_connection, (void *)(intptr_t)fd) != 0) {
            fprintf(stderr, "cannot queue a connection: %s\n", strerror(errno));
            close(fd);
        }
    }

    close(listener); /* late clients are refused, not left in a backlog */
    printf("Shutting down server, gracefully!\n");
    thread_pool_drop(pool);
    stop_signal_thread(signal_thread);
    return 0;
}
