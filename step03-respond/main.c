/*
 * Stage 03: write a response.
 *
 * Every request is still printed, and now answered with the smallest valid HTTP response:
 * a status line and an empty line. Answering brings two new duties: ignore SIGPIPE, and
 * close the connection so that the client keeps the answer.
 * The lesson is in README.md beside this file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_PORT 7878
/* Connections the kernel may hold, fully opened, until accept() takes them. */
#define BACKLOG 511
/* The most a request head may take: request line, headers and the empty line. */
#define HEAD_MAX 8192
/* How long a graceful close may go on reading what the client still sends: at most
   LINGER_READS reads, each after a wait of at most LINGER_MS, so 2 seconds in all. */
#define LINGER_READS 8
#define LINGER_MS 250

enum head_result { HEAD_DONE, HEAD_TOO_LONG, HEAD_FAILED };

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

/* Reads the request head, up to and including the empty line that ends it, into
   head[HEAD_MAX], and stores its length in *len. The end of the stream ends the head too,
   as it ends the reference's lines(). A head that does not fit is not read any further. */
static enum head_result read_head(int fd, char *head, size_t *len)
{
    size_t used = 0;

    while (used < HEAD_MAX) {
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

/* Prints one line the way Rust's {:?} quotes a string, except that every byte outside
   printable ASCII is shown as \xNN: a client must not be able to send control codes to
   our terminal. */
static void print_line(const char *line, size_t len)
{
    fputs("\n    \"", stdout);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c >= ' ' && c <= '~')
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    fputs("\",", stdout);
}

/* Prints the head's lines the way the reference prints its Vec of lines with {:#?}. */
static void print_request(const char *head, size_t len)
{
    size_t pos = 0;
    bool any = false;

    fputs("Request: [", stdout);
    while (pos < len) {
        const char *line = head + pos;
        size_t line_len = take_line(head, len, &pos);
        if (line_len == 0)
            break; /* the empty line that ends the head */
        print_line(line, line_len);
        any = true;
    }
    puts(any ? "\n]" : "]");
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

/* Reads one request, prints it and answers it; owns the connection and closes it. */
static void handle_connection(int stream)
{
    char head[HEAD_MAX];
    size_t len;
    enum head_result result = read_head(stream, head, &len);

    if (result == HEAD_DONE) {
        print_request(head, len);
        const char *response = "HTTP/1.1 200 OK\r\n\r\n";
        if (!write_all(stream, response, strlen(response)))
            perror("write");
    } else if (result == HEAD_TOO_LONG) {
        fprintf(stderr, "request head longer than %d bytes: connection closed\n", HEAD_MAX);
    } else {
        perror("read");
    }
    close_gracefully(stream);
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
        handle_connection(stream);
    }
}
