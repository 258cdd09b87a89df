/* STUDENT FIXTURE. Stage 02 (read the request). ONE MISTAKE: the request head goes into a
 * heap buffer that realloc() doubles whenever it is full, until the empty line (or the end
 * of the stream) arrives, with no limit at all: a client that never ends its head makes the
 * server hold everything it sends. Everything else is a correct stage 02 (escaping, line
 * ends, the printed layout). A grader should see read:closes_on_oversized_head fail (the
 * connection stays open waiting for more) and the hostile cases with huge inputs fail
 * (the 1 MiB line is printed whole, the 64 MiB stream is held: memory grows, no close). */

/*
 * Stage 2: print each request the way Rust's {:#?} prints a Vec<String>.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PORT 7878

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

/* True if the '\n' at buf[i] ends an empty line ("\n" or "\r\n"). */
static int is_blank_line_end(const char *buf, size_t i)
{
    if (i > 0 && buf[i - 1] == '\r')
        i--;
    return i == 0 || buf[i - 1] == '\n';
}

/* Reads the whole request head into a buffer that grows as needed. Returns the buffer
   (the caller frees it) with its length in *len, or NULL on an error. */
static char *read_request(int fd, size_t *len)
{
    size_t cap = 1024, used = 0;
    char *buf = malloc(cap);

    if (buf == NULL)
        return NULL;
    for (;;) {
        if (used == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        for (size_t i = used; i < used + (size_t)n; i++) {
            if (buf[i] == '\n' && is_blank_line_end(buf, i)) {
                *len = i + 1;
                return buf;
            }
        }
        used += (size_t)n;
    }
    *len = used;
    return buf;
}

/* Prints one line as "    \"...\",", escaping what must not reach a terminal raw. */
static void print_line(const char *line, size_t len)
{
    fputs("    \"", stdout);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c >= 32 && c < 127)
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    fputs("\",\n", stdout);
}

static void print_request(const char *buf, size_t len)
{
    size_t pos = 0;
    int printed = 0;

    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t line_len = end - pos;
        if (nl && line_len > 0 && buf[end - 1] == '\r')
            line_len--;
        if (nl && line_len == 0)
            break;
        if (!printed)
            puts("Request: [");
        printed = 1;
        print_line(buf + pos, line_len);
        pos = nl ? end + 1 : len;
    }
    puts(printed ? "]" : "Request: []");
}

static void handle_connection(int fd)
{
    size_t len;
    char *buf = read_request(fd, &len);

    if (buf != NULL) {
        print_request(buf, len);
        free(buf);
    } else {
        perror("read");
    }
    close(fd);
}

int main(int argc, char **argv)
{
    long port = PORT;

    if (argc > 2 || (argc == 2 && parse_port(argv[1], &port) < 0)) {
        fprintf(stderr, "usage: %s [PORT] (PORT from 0 to 65535)\n", argv[0]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
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
                sleep(1);
            continue;
        }
        handle_connection(client);
    }
}
