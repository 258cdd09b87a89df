/* STUDENT FIXTURE. Stage 02 (read the request). CORRECT: a different style from the
 * repository's stage (recv() into a fixed buffer scanned by a line tracker, its own
 * escaping routine that prints through a small output chunk, its own error wording).
 * A grader should see every stage-02 test pass (any failure is the suite's, not this
 * server's). */

/*
 * http02 -- print each request head, Rust-debug style.
 *
 * Every connection: collect the head (at most 8 KiB) with recv(), print it as
 *   Request: [
 *       "LINE",
 *   ]
 * with quotes and backslashes escaped and every other unprintable byte as \xNN,
 * then hang up. Nothing is sent back yet.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PORT_DEFAULT 7878
#define PENDING_CONNECTIONS 128
#define HEAD_LIMIT 8192

/* What collect_head() found. */
typedef enum { GOT_HEAD, HEAD_OVERFLOW, PEER_ERROR } head_status;

/* A request head as it arrives: the bytes, and where the line being read began. */
typedef struct {
    char bytes[HEAD_LIMIT];
    size_t used;       /* bytes held */
    size_t line_begin; /* index of the first byte of the current, unfinished line */
    size_t end;        /* length of the head once complete */
} head_buffer;

/* "7878" -> 7878. Digits only, no sign, no blanks, at most 65535. */
static int port_from_text(const char *text)
{
    long value = 0;

    if (text[0] == '\0')
        return -1;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
        if (value > 65535)
            return -1;
    }
    return (int)value;
}

/* A loopback listener on port; prints why and returns -1 when it cannot. */
static int open_listener(int port)
{
    struct sockaddr_in where;
    int on = 1;
    int sock = socket(AF_INET, SOCK_STREAM, 0);

    if (sock == -1) {
        fprintf(stderr, "cannot create socket: %s\n", strerror(errno));
        return -1;
    }
    memset(&where, 0, sizeof where);
    where.sin_family = AF_INET;
    where.sin_port = htons((unsigned short)port);
    where.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(sock, (struct sockaddr *)&where, sizeof where) == -1) {
        fprintf(stderr, "bind 127.0.0.1:%d: %s\n", port, strerror(errno));
        close(sock);
        return -1;
    }
    if (listen(sock, PENDING_CONNECTIONS) == -1) {
        fprintf(stderr, "cannot listen: %s\n", strerror(errno));
        close(sock);
        return -1;
    }
    return sock;
}

/* Looks at the bytes from `from` on for a '\n' that closes an empty line ("" or "\r").
   The line tracker survives between calls, so a line split over two recv()s is fine. */
static bool scan_for_blank_line(head_buffer *h, size_t from)
{
    for (size_t i = from; i < h->used; i++) {
        if (h->bytes[i] != '\n')
            continue;
        size_t line_len = i - h->line_begin;
        if (line_len == 0 || (line_len == 1 && h->bytes[h->line_begin] == '\r')) {
            h->end = i + 1;
            return true;
        }
        h->line_begin = i + 1;
    }
    return false;
}

/* Fills h with one request head: up to the blank line, or whatever came before the
   client closed its side. */
static head_status collect_head(int sock, head_buffer *h)
{
    h->used = h->line_begin = h->end = 0;
    while (h->used < HEAD_LIMIT) {
        ssize_t got = recv(sock, h->bytes + h->used, HEAD_LIMIT - h->used, 0);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1)
            return PEER_ERROR;
        if (got == 0) {
            h->end = h->used;
            return GOT_HEAD;
        }
        size_t from = h->used;
        h->used += (size_t)got;
        if (scan_for_blank_line(h, from))
            return GOT_HEAD;
    }
    return HEAD_OVERFLOW;
}

/* The output is gathered in a small chunk and handed to stdio a chunk at a time. */
typedef struct {
    char data[256];
    size_t len;
} out_chunk;

static void chunk_flush(out_chunk *c)
{
    fwrite(c->data, 1, c->len, stdout);
    c->len = 0;
}

static void chunk_put(out_chunk *c, const char *s, size_t n)
{
    if (c->len + n > sizeof c->data)
        chunk_flush(c);
    memcpy(c->data + c->len, s, n);
    c->len += n;
}

/* Writes the escaped form of one byte into out (at most 4 characters); returns how many. */
static size_t escape_byte(unsigned char b, char out[4])
{
    static const char hex[] = "0123456789abcdef";

    if (b == '"' || b == '\\') {
        out[0] = '\\';
        out[1] = (char)b;
        return 2;
    }
    if (b >= 0x20 && b < 0x7f) {
        out[0] = (char)b;
        return 1;
    }
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[b >> 4];
    out[3] = hex[b & 0x0f];
    return 4;
}

/* Prints `    "LINE",` for the n bytes at s. */
static void show_line(const char *s, size_t n)
{
    out_chunk c = {.len = 0};
    char esc[4];

    chunk_put(&c, "    \"", 5);
    for (size_t i = 0; i < n; i++)
        chunk_put(&c, esc, escape_byte((unsigned char)s[i], esc));
    chunk_put(&c, "\",\n", 3);
    chunk_flush(&c);
}

/* Prints the head's lines up to the first empty one, in the debug-list layout. A line
   ends at '\n'; one '\r' right before it is not part of the line. */
static void show_request(const head_buffer *h)
{
    size_t pos = 0;
    bool opened = false;

    while (pos < h->end) {
        const char *nl = memchr(h->bytes + pos, '\n', h->end - pos);
        size_t stop = nl ? (size_t)(nl - h->bytes) : h->end;
        size_t len = stop - pos;
        if (nl && len > 0 && h->bytes[stop - 1] == '\r')
            len--;
        if (len == 0 && nl)
            break; /* the blank line: end of the head */
        if (!opened) {
            fputs("Request: [\n", stdout);
            opened = true;
        }
        show_line(h->bytes + pos, len);
        pos = nl ? stop + 1 : h->end;
    }
    fputs(opened ? "]\n" : "Request: []\n", stdout);
}

static void serve_client(int sock)
{
    static head_buffer head; /* one client at a time: one buffer is enough */

    switch (collect_head(sock, &head)) {
    case GOT_HEAD:
        show_request(&head);
        break;
    case HEAD_OVERFLOW:
        fprintf(stderr, "request head exceeds %d bytes; dropping the connection\n", HEAD_LIMIT);
        break;
    case PEER_ERROR:
        fprintf(stderr, "recv failed: %s\n", strerror(errno));
        break;
    }
    close(sock);
}

int main(int argc, char *argv[])
{
    int port = PORT_DEFAULT;

    if (argc > 2) {
        fprintf(stderr, "usage: %s [port]\n", argv[0]);
        return 1;
    }
    if (argc == 2 && (port = port_from_text(argv[1])) < 0) {
        fprintf(stderr, "invalid port '%s' (expected 0 to 65535)\n", argv[1]);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* a pipe would otherwise hold our lines back */
    signal(SIGPIPE, SIG_IGN);         /* no writes yet, but a vanished peer must never kill us */

    int listener = open_listener(port);
    if (listener < 0)
        return 1;
    struct sockaddr_in me;
    socklen_t me_len = sizeof me;
    if (getsockname(listener, (struct sockaddr *)&me, &me_len) == -1) {
        fprintf(stderr, "getsockname failed: %s\n", strerror(errno));
        return 1;
    }
    printf("Listening on http://127.0.0.1:%u\n", (unsigned)ntohs(me.sin_port));

    for (;;) {
        int client = accept(listener, NULL, NULL);
        if (client >= 0) {
            serve_client(client);
            continue;
        }
        switch (errno) {
        case EINTR:
        case ECONNABORTED:
            break; /* nothing to report */
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            fprintf(stderr, "accept failed: %s (pausing)\n", strerror(errno));
            sleep(1); /* it would fail again right away */
            break;
        default:
            fprintf(stderr, "accept failed: %s\n", strerror(errno));
        }
    }
}
