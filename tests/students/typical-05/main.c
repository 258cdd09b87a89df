/* STUDENT FIXTURE. Stage 05, CORRECT, written plainly: the base from which the one-mistake
 * servers of stage 05 are made (each one's mistake.diff, in its folder, is its one mistake).
 * A grader should see every test pass. */

/*
 * Stage 5 web server: GET / gets the hello page, anything else the 404 page.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PORT 7878
#define BUF_SIZE 8192
#define PAGE_MAX 16384

/* 0 to 65535, digits only */
static int parse_port(const char *s, long *port)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *port = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || *port > 65535)
        return -1;
    return 0;
}

static int make_server_socket(long port)
{
    struct sockaddr_in addr;
    int opt = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        perror("socket");
        return -1;
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &opt, sizeof opt);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "bind 127.0.0.1:%ld: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 128) < 0) {
        perror("listen");
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads the request head, up to and including the empty line, into buf (BUF_SIZE bytes).
   Returns 0 when it is complete (or the client closed its side), 1 when it does not fit,
   -1 on a read error. */
static int read_request(int fd, char *buf, size_t *len)
{
    size_t used = 0;

    while (used < BUF_SIZE) {
        ssize_t n = read(fd, buf + used, BUF_SIZE - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        for (size_t i = used; i < used + (size_t)n; i++) {
            if (buf[i] != '\n')
                continue;
            size_t j = i;
            if (j > 0 && buf[j - 1] == '\r')
                j--;
            if (j == 0 || buf[j - 1] == '\n') { /* an empty line: the head is complete */
                *len = i + 1;
                return 0;
            }
        }
        used += (size_t)n;
    }
    *len = used;
    return used == BUF_SIZE ? 1 : 0;
}

/* Length of the request line (up to the first '\n', without a '\r' before it). */
static size_t request_line_length(const char *buf, size_t len)
{
    const char *nl = memchr(buf, '\n', len);
    size_t n = nl ? (size_t)(nl - buf) : len;

    if (nl && n > 0 && buf[n - 1] == '\r')
        n--;
    return n;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void send_response(int fd, const char *status, const char *body, size_t body_len)
{
    char buf[256 + PAGE_MAX];
    int n = snprintf(buf, 256, "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     body_len);

    memcpy(buf + n, body, body_len);
    if (write_all(fd, buf, (size_t)n + body_len) < 0)
        perror("write");
}

static void send_file(int fd, const char *status, const char *path)
{
    char page[PAGE_MAX];
    size_t len = 0;
    ssize_t n = 0;
    int err = 0;
    int file = open(path, O_RDONLY);

    if (file >= 0) {
        while (len < PAGE_MAX && (n = read(file, page + len, PAGE_MAX - len)) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            len += (size_t)n;
        }
        err = n < 0 ? errno : len == PAGE_MAX ? EFBIG : 0; /* too big: refuse, not cut */
        close(file);
    } else {
        err = errno;
    }
    if (err != 0) {
        errno = err;
        perror(path);
        const char *msg = "500 Internal Server Error\n";
        send_response(fd, "HTTP/1.1 500 Internal Server Error", msg, strlen(msg));
        return;
    }
    send_response(fd, status, page, len);
}

/* If the client sent more than we read, a plain close() would reset the connection and the
   client could lose our response. So send our FIN first and read what is left (for a
   bounded time) before closing. */
static void close_connection(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char junk[4096];

    if (poll(&p, 1, 0) > 0) {
        shutdown(fd, SHUT_WR);
        for (int i = 0; i < 8; i++) {
            if (read(fd, junk, sizeof junk) <= 0 || poll(&p, 1, 250) <= 0)
                break;
        }
    }
    close(fd);
}

static void route(int fd, const char *buf, size_t len)
{
    size_t line_len = request_line_length(buf, len);

    if (line_len == strlen("GET / HTTP/1.1") && memcmp(buf, "GET / HTTP/1.1", line_len) == 0)
        send_file(fd, "HTTP/1.1 200 OK", "www/hello.html");
    else
        send_file(fd, "HTTP/1.1 404 NOT FOUND", "www/404.html");
}

static void handle_connection(int fd)
{
    char buf[BUF_SIZE];
    size_t len;
    int result = read_request(fd, buf, &len);

    if (result == 0) {
        route(fd, buf, len);
    } else if (result == 1) {
        const char *msg = "431 Request Header Fields Too Large\n";
        send_response(fd, "HTTP/1.1 431 Request Header Fields Too Large", msg, strlen(msg));
    } else {
        perror("read");
    }
    close_connection(fd);
}

int main(int argc, char **argv)
{
    long port = PORT;

    if (argc > 2 || (argc == 2 && parse_port(argv[1], &port) < 0)) {
        fprintf(stderr, "usage: %s [PORT] (PORT from 0 to 65535)\n", argv[0]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up early must not kill the server */
    int server = make_server_socket(port);
    if (server < 0)
        return 1;
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    getsockname(server, (struct sockaddr *)&addr, &addr_len);
    printf("Listening on http://127.0.0.1:%d\n", ntohs(addr.sin_port));

    while (1) {
        int client = accept(server, NULL, NULL);
        if (client < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED)
                continue;
            perror("accept");
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                sleep(1); /* would fail again straight away */
            continue;
        }
        handle_connection(client);
    }
}
