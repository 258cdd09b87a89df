/*
 * Every stage, whatever a client does: no input and no vanished client may stop the
 * server. Each test does one bad thing, then proves that the next client is served.
 */
#include "harness.h"
#include "tests.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sends bytes on a new connection, takes whatever answer comes, and closes. */
static void send_and_close(struct server *s, const char *bytes, size_t len)
{
    struct reply r;

    exchange(s, bytes, len, &r);
}

TEST(survives_silent_client)
{
    struct server s;

    server_start(&s);
    close(client_connect(s.port));
    note_case("a client that connected and closed without sending a byte, then %s",
              shown(NORMAL_REQUEST, strlen(NORMAL_REQUEST)));
    expect_served(&s);
    server_stop(&s);
}

TEST(survives_unfinished_line)
{
    const char *unfinished = "GET / HTTP/1.1";
    struct server s;

    server_start(&s);
    int fd = client_connect(s.port);
    client_send(fd, unfinished, strlen(unfinished));
    close(fd);
    note_case("\"%s\" with no line end, then close; then a normal request", unfinished);
    expect_served(&s);
    server_stop(&s);
}

TEST(survives_oversized_head)
{
    static char head[64 * 1024];
    struct server s;

    fill_with_headers(head, sizeof head);
    server_start(&s);
    send_and_close(&s, head, sizeof head);
    note_case("64 KiB of header lines with no empty line; then a normal request");
    expect_served(&s);
    server_stop(&s);
}

TEST(survives_binary_bytes)
{
    char bytes[256 * 4 + 4];
    struct server s;

    for (size_t i = 0; i < 256 * 4; i++)
        bytes[i] = (char)(i * 7 % 256);
    memcpy(bytes + 256 * 4, "\r\n\r\n", 4);
    server_start(&s);
    send_and_close(&s, bytes, sizeof bytes);
    note_case("1024 bytes of every value, then \"\\r\\n\\r\\n\"; then a normal request");
    expect_served(&s);
    server_stop(&s);
}

TEST(survives_reset_mid_request)
{
    const char *part = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    struct server s;

    server_start(&s);
    int fd = client_connect(s.port);
    client_send(fd, part, strlen(part));
    client_reset(fd);
    note_case("\"%s\", then a reset; then a normal request", shown(part, strlen(part)));
    expect_served(&s);
    server_stop(&s);
}

TEST(survives_reset_before_answer)
{
    const char *unfinished = "GET / HTTP/1.1\r\n";
    int busy[IDLE_MAX];
    int nbusy = does->pool ? tested.threads : 1; /* one per thread that serves requests */
    struct server s;
    struct reply r;

    server_start(&s);
    /* Keep the server busy with clients whose heads are unfinished... */
    for (int i = 0; i < nbusy; i++) {
        busy[i] = client_connect(s.port);
        client_send(busy[i], unfinished, strlen(unfinished));
    }
    /* ...while another sends its request, ends its side, then resets. When the server gets
       to it, its answer goes to a connection closed and reset by the client: that write
       fails with EPIPE and raises SIGPIPE, which kills a server that does not ignore it. */
    int fd = client_connect(s.port);
    client_send(fd, NORMAL_REQUEST, strlen(NORMAL_REQUEST));
    shutdown(fd, SHUT_WR);
    client_reset(fd);
    for (int i = 0; i < nbusy; i++) {
        client_send(busy[i], "\r\n", 2);
        client_receive(busy[i], &r, patience());
        close(busy[i]);
    }
    note_case("a request whose client reset the connection before the answer came; then a "
              "normal request");
    expect_served(&s);
    server_stop(&s);
}
