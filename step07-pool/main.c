/*
 * Stage 07: a thread pool.
 *
 * Connections are handed to a pool of THREAD_COUNT workers (pool.c), so a slow request, or a
 * slow client, holds one worker, not the whole server.
 * The lesson is in README.md beside this file.
 */
#include "pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 7878
/* The workers in the pool: the most requests served at once. */
#define THREAD_COUNT 4
/* Connections the kernel may hold, fully opened, until accept() takes them. */
#define BACKLOG 511
/* The most a request head may take: request line, headers and the empty line. */
#define HEAD_MAX 8192
/* The largest page we serve; our pages are far smaller. */
#define PAGE_MAX 16384
/* Room for the status line and headers in front of a page. */
#define RESPONSE_HEAD_MAX 256
/* How long a graceful close may go on reading what the client still sends: at most
   LINGER_READS reads, each after a wait of at most LINGER_MS, so 2 seconds in all. */
#define LINGER_READS 8
#define LINGER_MS 250
/* How long GET /sleep takes; the tests build the stage with a shorter sleep. */
#ifndef SLEEP_SECONDS
#define SLEEP_SECONDS 5
#endif
/* How long a client may take to send its whole head; the tests build it shorter too. */
#ifndef HEAD_TIMEOUT_SECONDS
#define HEAD_TIMEOUT_SECONDS 5
#endif

enum head_result { HEAD_DONE, HEAD_TOO_LONG, HEAD_TIMED_OUT, HEAD_FAILED };

/* Reads a whole decimal number from min to max: no sign, no spaces, nothing after it. */
static bool parse_number(const char *text, long min, long max, long *value)
{
    char *end;

    if (*text < '0' || *text > '9')
        return false;
    errno = 0;
    *value = strtol(text, &end, 10);
    return errno == 0 && *end == '\0' && *value >= min && *value <= max;
}

/* Opens a TCP socket listening on 127.0.0.1:port, or says why it cannot and returns -1. */
static int listen_on(long port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int yes = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* The address as the reference writes it: inet_pton turns the text "127.0.0.1" into the
       four bytes of sin_addr, in network order. It fails only on text that is no address. */
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    /* Rust's TcpListener::bind does this too: a restarted server may take the port again
       while the connections of its last run still wait out TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) < 0) {
        perror("setsockopt");
    } else if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        fprintf(stderr, "bind 127.0.0.1:%ld: %s\n", port, strerror(errno));
    } else if (listen(fd, BACKLOG) < 0) {
        perror("listen");
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

/* The port the listener really has: the one asked for, or the kernel's pick for port 0. */
static int bound_port(int listener)
{
    struct sockaddr_in address;
    socklen_t size = sizeof address;

    if (getsockname(listener, (struct sockaddr *)&address, &size) < 0) {
        perror("getsockname");
        return -1;
    }
    return ntohs(address.sin_port);
}

/* True when the '\n' at head[i] ends an empty line: nothing, or one '\r', stands between
   it and the start of the head or the end of the line before. */
static bool ends_empty_line(const char *head, size_t i)
{
    if (i > 0 && head[i - 1] == '\r')
        i--;
    return i == 0 || head[i - 1] == '\n';
}

/* Milliseconds from now until deadline, on the monotonic clock; 0 once it has passed. */
static int ms_until(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms =
        (deadline->tv_sec - now.tv_sec) * 1000LL + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? (int)ms : 0;
}

/* Reads the request head, up to and including the empty line that ends it, into
   head[HEAD_MAX], and stores its length in *len. The end of the stream ends the head too,
   as it ends the reference's lines(). A head that does not fit is not read any further. */
static enum head_result read_head(int fd, char *head, size_t *len)
{
    struct pollfd client = {.fd = fd, .events = POLLIN};
    struct timespec deadline;
    size_t used = 0;

    /* A client that sends nothing, or one byte now and then, would keep this thread waiting
       for as long as it likes: the whole head must arrive before this deadline. */
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += HEAD_TIMEOUT_SECONDS;
    while (used < HEAD_MAX) {
        int ready = poll(&client, 1, ms_until(&deadline));
        if (ready == 0)
            return HEAD_TIMED_OUT;
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            return HEAD_FAILED;
        ssize_t n = read(fd, head + used, HEAD_MAX - used);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return HEAD_FAILED;
        }
        for (size_t i = used; i < used + (size_t)n; i++) {
            if (head[i] == '\n' && ends_empty_line(head, i)) {
                *len = i + 1;
                return HEAD_DONE;
            }
        }
        used += (size_t)n;
    }
    *len = used;
    return used < HEAD_MAX ? HEAD_DONE : HEAD_TOO_LONG;
}

/* Returns the length of the line that starts at text[*pos] and ends at the next '\n', or
   at text[len], without its "\n" or "\r\n"; moves *pos past the line. */
static size_t take_line(const char *text, size_t len, size_t *pos)
{
    const char *start = text + *pos;
    const char *newline = memchr(start, '\n', len - *pos);
    size_t n = newline ? (size_t)(newline - start) : len - *pos;

    *pos += newline ? n + 1 : n;
    if (newline && n > 0 && start[n - 1] == '\r')
        n--;
    return n;
}

/* True when the line is exactly text. A line is bytes, not a C string: comparing it with
   strcmp() would stop at a NUL the client put inside it. */
static bool line_is(const char *line, size_t len, const char *text)
{
    return len == strlen(text) && memcmp(line, text, len) == 0;
}

/* Writes all len bytes. write() may send fewer bytes than asked (a short write), or be
   interrupted by a signal before it sends any: both mean "go on". */
static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Sends a whole response: status line, headers, body. It goes out in one write: a small
   second write could wait for the client to acknowledge the first (Nagle's algorithm). */
static void send_response(int fd, const char *status_line, const char *body, size_t body_len)
{
    char response[RESPONSE_HEAD_MAX + PAGE_MAX];
    int head_len =
        snprintf(response, RESPONSE_HEAD_MAX,
                 "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status_line, body_len);

    /* snprintf returns the length the head would have had, even when it had to cut it short:
       the body must not go after a head that did not fit. */
    if (head_len < 0 || head_len >= RESPONSE_HEAD_MAX) {
        fprintf(stderr, "the head of \"%s\" does not fit in %d bytes\n", status_line,
                RESPONSE_HEAD_MAX);
        return;
    }
    memcpy(response + head_len, body, body_len);
    if (!write_all(fd, response, (size_t)head_len + body_len))
        perror("write");
}

/* Reads the file at path into page[PAGE_MAX] and stores its length in *len. Returns false,
   with errno set, when the file cannot be read or does not fit. */
static bool read_page(const char *path, char *page, size_t *len)
{
    int fd = open(path, O_RDONLY);
    int error = 0;

    if (fd < 0)
        return false;
    /* read() may return fewer bytes than asked for: go on until the end of the file, which a
       read of 0 bytes reports, or an error, or a full page. */
    for (*len = 0; error == 0;) {
        ssize_t n = read(fd, page + *len, PAGE_MAX - *len);
        if (n == 0)
            break;
        if (n < 0 && errno != EINTR)
            error = errno;
        else if (n > 0)
            *len += (size_t)n;
        if (*len == PAGE_MAX)
            error = EFBIG; /* it may go on: refuse it rather than send a part */
    }
    close(fd);
    errno = error;
    return error == 0;
}

/* Answers with the page at path, or with a 500 when it cannot be read. */
static void send_page(int fd, const char *status_line, const char *path)
{
    char page[PAGE_MAX];
    size_t len;

    if (read_page(path, page, &len)) {
        send_response(fd, status_line, page, len);
    } else {
        perror(path);
        const char *body = "The server could not read the page.\n";
        send_response(fd, "HTTP/1.1 500 Internal Server Error", body, strlen(body));
    }
}

/* Ends the connection so that the client keeps the whole response. Closing a socket that
   still holds unread bytes from the client makes the kernel send a reset (RST), and a reset
   may destroy response bytes the client has not read yet. So when bytes are waiting, end
   our side first (the client sees end-of-file), then read and discard what the client
   still sends, for a bounded time, before closing. */
static void close_gracefully(int fd)
{
    struct pollfd client = {.fd = fd, .events = POLLIN};
    char scrap[4096];

    if (poll(&client, 1, 0) > 0) {
        shutdown(fd, SHUT_WR);
        for (int reads = 0; reads < LINGER_READS; reads++) {
            if (poll(&client, 1, LINGER_MS) <= 0)
                break; /* nothing more came for LINGER_MS */
            if (read(fd, scrap, sizeof scrap) <= 0)
                break; /* the client has closed its side, or the connection failed */
        }
    }
    close(fd);
}

/* Picks the answer from the request line, the head's first line. */
static void route(int stream, const char *head, size_t len)
{
    size_t pos = 0;
    size_t line_len = take_line(head, len, &pos);
    const char *status_line = "HTTP/1.1 404 NOT FOUND";
    const char *page = "www/404.html";

    if (line_is(head, line_len, "GET / HTTP/1.1")) {
        status_line = "HTTP/1.1 200 OK";
        page = "www/hello.html";
    } else if (line_is(head, line_len, "GET /sleep HTTP/1.1")) {
        sleep(SLEEP_SECONDS);
        status_line = "HTTP/1.1 200 OK";
        page = "www/hello.html";
    }
    send_page(stream, status_line, page);
}

/* Reads one request and answers it; owns the connection and closes it. */
static void handle_connection(int stream)
{
    char head[HEAD_MAX];
    size_t len;
    enum head_result result = read_head(stream, head, &len);

    if (result == HEAD_DONE) {
        route(stream, head, len);
    } else if (result == HEAD_TOO_LONG) {
        const char *body = "The request head is too large.\n";
        send_response(stream, "HTTP/1.1 431 Request Header Fields Too Large", body, strlen(body));
    } else if (result == HEAD_TIMED_OUT) {
        fprintf(stderr, "no request within %d s: connection closed\n", HEAD_TIMEOUT_SECONDS);
    } else {
        perror("read");
    }
    /* After a timeout nothing was sent, so there is no answer to keep safe: close at once,
       rather than linger with a client that is already too slow. */
    if (result == HEAD_TIMED_OUT)
        close(stream);
    else
        close_gracefully(stream);
}

/* A connection as a job for the pool: the C form of the reference's closure
   || handle_connection(stream). C has no closures, so the descriptor travels as the job's
   argument, by value inside the pointer: a pointer to main's variable would see it change
   with the next accept(). */
static void connection_job(void *arg)
{
    handle_connection((int)(intptr_t)arg);
}

int main(int argc, char **argv)
{
    long port = DEFAULT_PORT;

    if (argc > 2) {
        fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
        return 1;
    }
    if (argc == 2 && !parse_number(argv[1], 0, 65535, &port)) {
        fprintf(stderr, "PORT must be a whole number from 0 to 65535, not \"%s\"\n", argv[1]);
        return 1;
    }
    /* stdout into a pipe or a file is fully buffered: a log line could wait there for
       kilobytes of company. Line buffering sends each line on as soon as it ends. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Writing to a connection the client has closed raises SIGPIPE, which kills the whole
       process by default. Ignored, it turns into an EPIPE error from that one write. */
    signal(SIGPIPE, SIG_IGN);

    int listener = listen_on(port);
    if (listener < 0)
        return 1;
    int real_port = bound_port(listener);
    if (real_port < 0)
        return 1;
    ThreadPool *pool = thread_pool_new(THREAD_COUNT);
    if (pool == NULL) {
        perror("thread_pool_new");
        return 1;
    }
    printf("Listening on http://127.0.0.1:%d\n", real_port);

    for (;;) {
        int stream = accept(listener, NULL, NULL);
        if (stream < 0) {
            /* One failed connection attempt is no reason to stop serving the others. */
            if (errno != ECONNABORTED && errno != EINTR)
                perror("accept");
            /* Out of descriptors or memory, accept() would fail again at once: pause
               instead of spinning, while connections end and give some back. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                sleep(1);
            continue;
        }
        /* From here on the job owns the descriptor and closes it. */
        if (thread_pool_execute(pool, connection_job, (void *)(intptr_t)stream) != 0) {
            perror("thread_pool_execute");
            close(stream);
        }
    }
}
