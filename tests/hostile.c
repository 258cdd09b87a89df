/*
 * Every stage that reads requests, against the worst a client can send. Each case of the
 * table sends one hostile input in its own way, checks the answer the stage owes it (or
 * that the connection ended), then proves that the next client is served. A seeded random
 * round then mutates valid requests a few thousand times; HOSTILE_SEED=N in the environment
 * replays the round of seed N. Last, where the system can measure it, the server's memory
 * stays bounded through the long inputs and thousands of full heads.
 */
#include "harness.h"
#include "tests.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Bytes that may hold a NUL: a string literal and its length. */
struct bytes {
    const char *at;
    size_t len;
};
#define BYTES(literal)                                                                             \
    {                                                                                              \
        literal, sizeof literal - 1                                                                \
    }

/* How a case sends its input and ends its side of the connection. */
enum how {
    SEND,            /* sends it all, then reads the answer */
    HALF_CLOSE,      /* sends it all, ends its side (shutdown), then reads the answer */
    TRICKLE,         /* sends one byte at a time, a millisecond apart, then reads */
    CLOSE,           /* sends it all and closes at once, without reading */
    RESET,           /* sends it all and resets at once */
    RESET_ON_ANSWER, /* sends it all, and resets as soon as the answer (or the end) comes */
};

/* An input: start, then unit repeated times, then end. */
struct hostile_case {
    const char *name;
    enum how how;
    struct bytes start, unit;
    size_t times;
    struct bytes end;
};
#define ONCE BYTES(""), 0, BYTES("")

/* A head padded with one long header to exactly total bytes. */
#define PAD_START "GET / HTTP/1.1\r\nX-Pad: "
#define PADDED_TO(total)                                                                           \
    BYTES(PAD_START), BYTES("a"), (total) - (sizeof PAD_START - 1) - 4, BYTES("\r\n\r\n")

static const struct hostile_case cases[] = {
    {"an empty connection", HALF_CLOSE, BYTES(""), ONCE},
    {"a partial line, then close", CLOSE, BYTES("GET / HT"), ONCE},
    {"a partial line, then the end of the stream", HALF_CLOSE, BYTES("GET / HT"), ONCE},
    {"the end of the stream before the head ends", HALF_CLOSE,
     BYTES("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"), ONCE},
    {"LF-only line ends", SEND, BYTES("GET / HTTP/1.1\nHost: 127.0.0.1\n\n"), ONCE},
    {"CR-only line ends", HALF_CLOSE, BYTES("GET / HTTP/1.1\rHost: 127.0.0.1\r\r"), ONCE},
    {"a CR doubled before a LF", SEND, BYTES("GET / HTTP/1.1\r\r\n\r\n"), ONCE},
    {"a lone LF", SEND, BYTES("\n"), ONCE},
    {"5000 empty lines", SEND, BYTES(""), BYTES("\r\n"), 5000, BYTES("")},
    {"headers without a request line", SEND, BYTES("Host: 127.0.0.1\r\nAccept: */*\r\n\r\n"), ONCE},
    {"a 1 MiB request line", SEND, BYTES("GET /"), BYTES("a"), 1 << 20, BYTES(" HTTP/1.1\r\n\r\n")},
    {"20 000 headers", SEND, BYTES("GET / HTTP/1.1\r\n"), BYTES("X-A: b\r\n"), 20000,
     BYTES("\r\n")},
    {"a head of exactly HEAD_MAX bytes", SEND, PADDED_TO(HEAD_MAX)},
    {"a head one byte longer than HEAD_MAX", SEND, PADDED_TO(HEAD_MAX + 1)},
    {"a 64 MiB stream with no line end", SEND, BYTES("GET /"), BYTES("a"), 64 << 20, BYTES("")},
    {"NUL bytes", SEND, BYTES("GET /\0 HTTP/1.1\r\nHost: \0\0\r\n\r\n"), ONCE},
    {"terminal control codes", SEND,
     BYTES("GET / HTTP/1.1\r\nX-Evil: \x1b[2J\x1b]0;owned\x07\b\b\x7f\r\n\r\n"), ONCE},
    {"invalid UTF-8", SEND, BYTES("GET /\xc3\x28\xa0\xa1\xff\xfe\xed\xa0\x80 HTTP/1.1\r\n\r\n"),
     ONCE},
    {"an absurd method", SEND, BYTES("BREW / HTTP/1.1\r\n\r\n"), ONCE},
    {"a 4000-byte method", SEND, BYTES(""), BYTES("G"), 4000, BYTES(" / HTTP/1.1\r\n\r\n")},
    {"an absurd version", SEND, BYTES("GET / HTTP/99999999999999999999.1\r\n\r\n"), ONCE},
    {"lower-case letters", SEND, BYTES("get / http/1.1\r\n\r\n"), ONCE},
    {"printf conversions", SEND, BYTES("GET /%s%s%n%n%p HTTP/1.1\r\nX: %s%n\r\n\r\n"), ONCE},
    {"a path out of www/", SEND, BYTES("GET /../../../../etc/passwd HTTP/1.1\r\n\r\n"), ONCE},
    {"a /sleep look-alike", SEND, BYTES("GET /sleep HTTP/1.1x\r\n\r\n"), ONCE},
    {"two requests pipelined in one write", SEND, BYTES(NORMAL_REQUEST NORMAL_REQUEST), ONCE},
    {"a 20 000-byte body the server does not read", SEND,
     BYTES("POST / HTTP/1.1\r\nContent-Length: 20000\r\n\r\n"), BYTES("b"), 20000, BYTES("")},
    {"a request, then close before the answer", CLOSE, BYTES(NORMAL_REQUEST), ONCE},
    {"a request, then an immediate reset", RESET, BYTES(NORMAL_REQUEST), ONCE},
    {"a reset as the answer comes", RESET_ON_ANSWER, BYTES(NORMAL_REQUEST), ONCE},
    {"a head trickled one byte at a time", TRICKLE, BYTES(NORMAL_REQUEST), ONCE},
};
const int hostile_case_count = sizeof cases / sizeof cases[0];

const char *hostile_case_name(int i)
{
    return cases[i].name;
}

/* How much the server's peak memory may grow while it reads the long inputs, then serves
   CONNECTIONS requests: far less than the big inputs, which a server that kept what it read
   would hold whole, and than a head buffer for each connection. */
#define MEMORY_GROWTH_MAX_KB (8 * 1024)
#define CONNECTIONS 2000

static size_t input_len(const struct hostile_case *c)
{
    return c->start.len + c->unit.len * c->times + c->end.len;
}

/* Copies n bytes of the input, from offset on, into buf. */
static void input_bytes(const struct hostile_case *c, size_t offset, char *buf, size_t n)
{
    size_t repeated = c->unit.len * c->times;

    for (size_t i = offset; i < offset + n; i++) {
        if (i < c->start.len)
            *buf++ = c->start.at[i];
        else if (i - c->start.len < repeated)
            *buf++ = c->unit.at[(i - c->start.len) % c->unit.len];
        else
            *buf++ = c->end.at[i - c->start.len - repeated];
    }
}

/* Sends the input in pieces, or one byte at a time; stops once the server has closed the
   connection or reset it (which a stage may do to an input too long to read). */
static void send_input(int fd, const struct hostile_case *c)
{
    static char piece[1 << 16];
    size_t total = input_len(c);
    size_t step = c->how == TRICKLE ? 1 : sizeof piece;
    int yes = 1;

    /* Each byte in a packet of its own: no waiting to gather small writes. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    for (size_t at = 0; at < total; at += step) {
        size_t n = total - at < step ? total - at : step;
        input_bytes(c, at, piece, n);
        if (!client_send(fd, piece, n))
            return;
        if (c->how == TRICKLE)
            harness_poll(NULL, 0, 1);
    }
}

/* Before stage 05 a stage prints each request it reads. Whatever the client sent, the log
   must stay lines of printable text, so that no client can drive the terminal. Writes the
   start of the first line the server printed since the test last looked (or "") into first,
   and returns it. */
static const char *expect_printable_log(struct server *s, const char *what, char first[64])
{
    const char *line;

    first[0] = '\0';
    for (int i = 0; (line = server_line(s, 0)) != NULL; i++) {
        for (const char *at = line; *at != '\0'; at++)
            expect(*at >= ' ' && *at <= '~',
                   "%s: the log holds the byte \\x%02x, which could drive a terminal: %s; every "
                   "byte outside printable ASCII is printed as \\xNN (stage 02's lesson, \"Bytes "
                   "are not text\")",
                   what, (unsigned char)*at, shown(line, strlen(line)));
        if (i == 0)
            snprintf(first, 64, "%s", line);
    }
    return first;
}

TEST(survives_hostile_input)
{
    const struct hostile_case *c = &cases[_i];
    static char input[HEAD_MAX + 1];
    size_t total = input_len(c), n = total < sizeof input ? total : sizeof input;
    struct pollfd answer = {.events = POLLIN};
    struct server s;
    struct reply r;

    input_bytes(c, 0, input, n);
    server_start(&s);
    int fd = client_connect(s.port);
    note_case("hostile case %d, %s (%zu bytes)", _i, c->name, total);
    send_input(fd, c);
    if (c->how == CLOSE) {
        close(fd);
    } else if (c->how == RESET) {
        client_reset(fd);
    } else if (c->how == RESET_ON_ANSWER) {
        answer.fd = fd;
        expect(harness_poll(&answer, 1, patience()) == 1, "%s: no answer within %d ms", c->name,
               patience());
        client_reset(fd);
    } else {
        if (c->how == HALF_CLOSE)
            shutdown(fd, SHUT_WR);
        client_receive(fd, &r, patience());
        close(fd);
        bool read = expect_answer(&r, input, n, total, c->name);
        if (does->logs == LOGS_REQUEST && read)
            expect(strncmp(expect_printable_log(&s, c->name, (char[64]){""}), "Request: [", 10) ==
                       0,
                   "%s: the request was not printed", c->name);
    }
    if (does->logs == LOGS_REQUEST)
        expect_printable_log(&s, c->name, (char[64]){""});
    expect_served(&s);
    server_stop(&s);
}

/* The random round: valid requests, mutated, at most so many, for at most so long. */
#define MUTATIONS 3000
#define MUTATIONS_MS 10000
/* Room for a mutated request: more than HEAD_MAX, so that some are too long. */
#define MUTANT_MAX (2 * HEAD_MAX)

static const struct bytes valid[] = {
    BYTES(NORMAL_REQUEST),
    BYTES(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:7878\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"),
    BYTES(NOT_FOUND_REQUEST),
    BYTES("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"),
};

/* xorshift64*: a small generator that gives the same numbers for the same seed anywhere. */
static unsigned long long random_state;

static size_t random_below(size_t n)
{
    random_state ^= random_state >> 12;
    random_state ^= random_state << 25;
    random_state ^= random_state >> 27;
    return n == 0 ? 0 : (size_t)((random_state * 2685821657736338717ULL) >> 11) % n;
}

/* A byte for an insertion: often one that means something to a parser. */
static char random_byte(void)
{
    const char telling[] = "\r\n\0 :/%\x1b\x7f\xff";

    return random_below(2) == 0 ? telling[random_below(sizeof telling - 1)]
                                : (char)random_below(256);
}

/* Opens a gap of n bytes at pos in buf[0..len), as far as MUTANT_MAX allows; returns how
   many of them fit. */
static size_t open_gap(char *buf, size_t len, size_t pos, size_t n)
{
    if (n > MUTANT_MAX - len)
        n = MUTANT_MAX - len;
    memmove(buf + pos + n, buf + pos, len - pos);
    return n;
}

/* Applies one mutation to buf[0..len): a bit flipped, a cut, a piece repeated, or bytes
   inserted. Returns the new length. */
static size_t mutate(char *buf, size_t len)
{
    size_t pos = random_below(len + 1);

    switch (random_below(4)) {
    case 0:
        if (pos < len)
            buf[pos] ^= (char)(1 << random_below(8));
        return len;
    case 1:
        return pos;
    case 2: {
        size_t piece = 1 + random_below(len - pos < 32 ? len - pos : 32);
        size_t copies = 1 + random_below(random_below(2) == 0 ? 4 : 600);
        if (pos == len)
            return len;
        size_t room = open_gap(buf, len, pos + piece, piece * copies);
        for (size_t i = 0; i < room; i++)
            buf[pos + piece + i] = buf[pos + i % piece];
        return len + room;
    }
    default: {
        size_t room = open_gap(buf, len, pos, 1 + random_below(8));
        for (size_t i = 0; i < room; i++)
            buf[pos + i] = random_byte();
        return len + room;
    }
    }
}

TEST(survives_random_mutations)
{
    static char mutant[MUTANT_MAX];
    static struct reply r;
    static char what[96];
    const char *given = getenv("HOSTILE_SEED");
    unsigned long long seed = given != NULL ? strtoull(given, NULL, 10)
                                            : (unsigned long long)time(NULL) ^ (unsigned)getpid();
    struct server s;
    int done = 0;

    printf("random round: seed %llu (HOSTILE_SEED=%llu replays it)\n", seed, seed);
    fflush(stdout);
    random_state = seed != 0 ? seed : 1;
    server_start(&s);
    /* MUTATIONS, or as many as fit in MUTATIONS_MS: a slow machine, or a sanitizer, does
       fewer, and the round still ends in time. */
    long long stop = deadline_in((long long)(MUTATIONS_MS * tested.time_multiplier));
    for (; done < MUTATIONS && (done == 0 || now_ms() < stop); done++) {
        const struct bytes *base = &valid[random_below(sizeof valid / sizeof valid[0])];
        size_t len = base->len;
        memcpy(mutant, base->at, len);
        for (size_t count = 1 + random_below(4); count > 0; count--)
            len = mutate(mutant, len);
        snprintf(what, sizeof what, "seed %llu, mutation %d (%zu bytes)", seed, done, len);

        int fd = client_connect(s.port);
        note_sent(mutant, len);
        client_send(fd, mutant, len);
        shutdown(fd, SHUT_WR);
        client_receive(fd, &r, patience());
        close(fd);
        expect_answer(&r, mutant, len < HEAD_MAX + 1 ? len : HEAD_MAX + 1, len, what);
        if (does->logs == LOGS_REQUEST)
            expect_printable_log(&s, what, (char[64]){""});
    }
    note_case("after %d mutated requests, a normal one", done);
    expect_served(&s);
    server_stop(&s);
}

/* Sends a case's input on a connection of its own and takes whatever answer comes. */
static void send_case(struct server *s, const struct hostile_case *c)
{
    struct reply r;
    int fd = client_connect(s->port);

    send_input(fd, c);
    shutdown(fd, SHUT_WR);
    client_receive(fd, &r, patience());
    close(fd);
}

TEST(hostile_input_keeps_memory_bounded)
{
    struct server s;
    struct reply r;

    server_start(&s);
    /* A first request settles the server's memory. */
    expect_served(&s);
    long memory = server_peak_memory_kb(&s);
    for (int i = 0; i < hostile_case_count; i++) {
        const struct hostile_case *c = &cases[i];
        if (input_len(c) <= HEAD_MAX)
            continue;
        note_case("hostile case %d, %s (%zu bytes)", i, c->name, input_len(c));
        send_case(&s, c);
        long growth = server_peak_memory_kb(&s) - memory;
        expect_hinted(growth < MEMORY_GROWTH_MAX_KB, HINT_HEAD_MAX,
                      "%s: the server's peak memory grew by %ld kB while it read %zu bytes",
                      c->name, growth, input_len(c));
    }
    /* A server that keeps something of each connection (a buffer it never frees) grows with
       their number. */
    for (int i = 0; i < CONNECTIONS; i++)
        exchange(&s, NORMAL_REQUEST, strlen(NORMAL_REQUEST), &r);
    note_case("%d normal requests, each on a connection of its own", CONNECTIONS);
    long growth = server_peak_memory_kb(&s) - memory;
    expect_hinted(growth < MEMORY_GROWTH_MAX_KB, HINT_HEAD_MAX,
                  "the server's peak memory grew by %ld kB in %d connections", growth, CONNECTIONS);
    note_case("after the long inputs and %d connections, a normal request", CONNECTIONS);
    expect_served(&s);
    server_stop(&s);
}
