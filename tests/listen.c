/*
 * Lesson 01, listen: what every stage does before it reads a byte. It listens on
 * 127.0.0.1 only, says where once it does, and refuses a bad start with one line and
 * exit status 1.
 */
#include "harness.h"
#include "tests.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Asserts that the server exits at once with status 1, one line on stderr (exactly
   expected, when given) and nothing on stdout. */
static void expect_setup_error(struct server *s, const char *expected)
{
    ck_assert_msg(server_wait_exit(s, wait_ms), "the server did not exit");
    ck_assert_msg(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 1,
                  "expected exit status 1, got raw status %d", s->status);
    ck_assert_msg(s->out.len == 0, "nothing belongs on stdout, got: %s",
                  shown(s->out.text, s->out.len));
    char *newline = strchr(s->err.text, '\n');
    ck_assert_msg(s->err.len > 1 && newline == s->err.text + s->err.len - 1,
                  "expected one line on stderr, got: %s", shown(s->err.text, s->err.len));
    if (expected != NULL)
        ck_assert_str_eq(s->err.text, expected);
    server_stop_exited(s);
}

TEST(listening_line_names_the_port)
{
    struct server s;

    /* server_start reads the line and takes its port: the server must accept there. */
    server_start(&s);
    close(client_connect(s.port));
    server_stop(&s);
}

TEST(default_port_is_7878)
{
    const char *no_args[] = {NULL};
    struct server s;

    /* make check runs the eight stages' tests side by side, and each starts a server on
       7878 here. Two of them could both bind the port (SO_REUSEADDR allows it until one
       listens) and one would then fail in listen(): so they take turns, each holding a lock
       on the repository's folder until its server has stopped. */
    int turn = open(root_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_msg(turn >= 0 && flock(turn, LOCK_EX) == 0, "cannot lock %s: %s", root_dir,
                  strerror(errno));
    server_spawn(&s, NULL, no_args);
    const char *line = server_line(&s, wait_ms);
    if (line != NULL) {
        ck_assert_str_eq(line, "Listening on http://127.0.0.1:7878");
        server_stop(&s);
    } else {
        /* 7878 is taken, by a student's server perhaps: then it must say so. */
        expect_setup_error(&s, "bind 127.0.0.1:7878: Address already in use\n");
    }
    close(turn);
}

TEST(port_in_use_is_one_line_and_exit_1)
{
    struct sockaddr_in address = {.sin_family = AF_INET};
    socklen_t size = sizeof address;
    int taken = socket(AF_INET, SOCK_STREAM, 0);
    char port[16], expected[80];
    struct server s;

    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(bind(taken, (struct sockaddr *)&address, sizeof address) == 0);
    ck_assert(listen(taken, 1) == 0);
    ck_assert(getsockname(taken, (struct sockaddr *)&address, &size) == 0);
    snprintf(port, sizeof port, "%d", ntohs(address.sin_port));
    snprintf(expected, sizeof expected, "bind 127.0.0.1:%s: Address already in use\n", port);

    const char *args[] = {port, NULL};
    server_spawn(&s, NULL, args);
    expect_setup_error(&s, expected);
    close(taken);
}

TEST(bad_port_is_one_line_and_exit_1)
{
    const char *bad[] = {"", "abc", "-1", "65536", "+80", " 80", "80x", "99999999999999999999"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {bad[i], NULL};
        struct server s;
        server_spawn(&s, NULL, args);
        expect_setup_error(&s, NULL);
    }
}

TEST(listens_on_loopback_only)
{
    struct sockaddr_in other = {.sin_family = AF_INET};
    struct server s;

    server_start(&s);
    /* All of 127.0.0.0/8 is this machine: a server bound to every interface would
       accept on 127.0.0.2 too. */
    other.sin_port = htons((uint16_t)s.port);
    other.sin_addr.s_addr = inet_addr("127.0.0.2");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(connect(fd, (struct sockaddr *)&other, sizeof other) == -1 &&
                      errno == ECONNREFUSED,
                  "127.0.0.2 was not refused: the server listens beyond 127.0.0.1");
    close(fd);
    server_stop(&s);
}

TEST(logs_each_connection)
{
    struct server s;

    server_start(&s);
    for (int i = 0; i < 3; i++) {
        close(client_connect(s.port));
        expect_log(&s, "connection established");
    }
    expect_quiet(&s);
    server_stop(&s);
}
