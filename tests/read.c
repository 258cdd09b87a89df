/*
 * Lesson 02, read: the request head is read line by line up to the empty line, into a
 * bounded buffer, and printed the way the reference prints its Vec of lines, with every
 * byte a client could use against a terminal escaped.
 */
#include "harness.h"
#include "tests.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sends request on a new connection, reads the answer, and expects these log lines. */
static void expect_printed(struct server *s, const char *request, size_t len,
                           const char *const lines[], size_t n)
{
    struct reply r;

    exchange(s, request, len, &r);
    for (size_t i = 0; i < n; i++)
        expect_log(s, lines[i]);
    expect_quiet(s);
}

TEST(prints_request_lines)
{
    const char *request = "GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
    const char *lines[] = {"Request: [", "    \"GET /a HTTP/1.1\",", "    \"Host: 127.0.0.1\",",
                           "    \"Accept: */*\",", "]"};
    struct server s;

    server_start(&s);
    expect_printed(&s, request, strlen(request), lines, 5);
    server_stop(&s);
}

TEST(escapes_quotes_and_unprintable_bytes)
{
    const char request[] = "say \"hi\" \\ \t\x1b[2J\x7f\0 caf\xc3\xa9 \xff a\rb\r\n\r\n";
    const char escaped[] = "    \"say \\\"hi\\\" \\\\ \\x09\\x1b[2J\\x7f\\x00 caf\\xc3\\xa9 "
                           "\\xff a\\x0db\",";
    const char *lines[] = {"Request: [", escaped, "]"};
    struct server s;

    server_start(&s);
    expect_printed(&s, request, sizeof request - 1, lines, 3);
    server_stop(&s);
}

TEST(accepts_lf_only_line_ends)
{
    const char *request = "GET / HTTP/1.1\nHost: 127.0.0.1\n\n";
    const char *lines[] = {"Request: [", "    \"GET / HTTP/1.1\",", "    \"Host: 127.0.0.1\",",
                           "]"};
    struct server s;

    server_start(&s);
    expect_printed(&s, request, strlen(request), lines, 4);
    server_stop(&s);
}

TEST(prints_empty_request)
{
    struct server s;

    server_start(&s);
    close(client_connect(s.port));
    expect_log(&s, "Request: []");
    expect_quiet(&s);
    server_stop(&s);
}

TEST(prints_unfinished_line_at_end_of_stream)
{
    /* Its '\r' is not before a '\n': it is part of the line, as in the reference. */
    const char *part = "GET / HTT\r";
    const char *lines[] = {"Request: [", "    \"GET / HTT\\x0d\",", "]"};
    struct server s;
    struct reply r;

    server_start(&s);
    int fd = client_connect(s.port);
    note_sent(part, strlen(part));
    client_send(fd, part, strlen(part));
    shutdown(fd, SHUT_WR); /* the end of the stream ends the line and the head */
    client_receive(fd, &r, patience());
    close(fd);
    for (size_t i = 0; i < 3; i++)
        expect_log(&s, lines[i]);
    expect_quiet(&s);
    server_stop(&s);
}

TEST(reads_a_head_sent_in_pieces)
{
    const char *pieces[] = {"GET / HT", "TP/1.1\r\nHost: 127.", "0.0.1\r\n", "\r\n"};
    const char *lines[] = {"Request: [", "    \"GET / HTTP/1.1\",", "    \"Host: 127.0.0.1\",",
                           "]"};
    struct server s;
    struct reply r;

    /* TCP delivers bytes, not messages: a head may come in any number of pieces, and each
       read returns what has come so far. */
    server_start(&s);
    int fd = client_connect(s.port);
    note_case("\"GET / HT\", \"TP/1.1\\r\\nHost: 127.\", \"0.0.1\\r\\n\" and \"\\r\\n\", "
              "a tenth of a second apart");
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        if (i > 0)
            harness_poll(NULL, 0, 100);
        client_send(fd, pieces[i], strlen(pieces[i]));
    }
    client_receive(fd, &r, patience());
    close(fd);
    for (size_t i = 0; i < 4; i++)
        expect_log_hinted(&s, lines[i], HINT_READ_LOOP);
    expect_quiet(&s);
    server_stop(&s);
}

TEST(head_ends_at_empty_line)
{
    const char *request = "GET / HTTP/1.1\r\n\r\nnot: part of the head\r\n\r\n";
    const char *lines[] = {"Request: [", "    \"GET / HTTP/1.1\",", "]"};
    struct server s;

    server_start(&s);
    expect_printed(&s, request, strlen(request), lines, 3);
    server_stop(&s);
}

TEST(reads_a_large_head)
{
    char request[6000 + 64];
    struct server s;

    /* A 6000-byte head is large but honest: it must be read whole, not refused. */
    strcpy(request, "GET / HTTP/1.1\r\nX-Big: ");
    size_t len = strlen(request);
    memset(request + len, 'b', 6000 - len);
    strcpy(request + 6000, "\r\n\r\n");
    server_start(&s);
    int fd = client_request(s.port, request);
    expect_log(&s, "Request: [");
    expect_log(&s, "    \"GET / HTTP/1.1\",");
    /* The header line, quoted and indented: 4 spaces, 2 quotes and a comma around it. */
    const char *line = server_line(&s, patience());
    expect_hinted(line != NULL && strlen(line) == (6000 - 16) + 7, HINT_HEAD_MAX,
                  "a head of 6000 bytes fits in 8 KiB: expected its long header line printed "
                  "whole, %zu bytes, got %zu",
                  (size_t)(6000 - 16) + 7, line != NULL ? strlen(line) : 0);
    expect_log(&s, "]");
    close(fd);
    server_stop(&s);
}

TEST(closes_on_oversized_head)
{
    struct server s;
    struct reply r;

    server_start(&s);
    exchange_oversized_head(&s, &r);
    expect_hinted(r.len == 0 && r.error != ETIMEDOUT, HINT_HEAD_MAX,
                  "a head that does not fit in 8 KiB is refused: expected the connection closed "
                  "without an answer, got \"%s\", ended by %s",
                  shown(r.bytes, r.len), reply_end(&r));
    /* Refused, not printed. */
    expect_quiet(&s);
    expect_served(&s);
    server_stop(&s);
}
