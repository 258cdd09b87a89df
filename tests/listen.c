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

/* How C libraries word EADDRINUSE: a server built with another libc than the runner's (musl's
   for glibc's, say) gives its own, and any of them is the system's reason. */
static const char *const address_in_use[] = {"Address already in use", "Address in use", NULL};

/* Asserts that the server exits at once with status 1, one line on stderr and nothing on
   stdout. The line's words are the server's own, but it must name the address, if not NULL,
   and give the reason, if not NULL: one of the wordings of a NULL-terminated list. */
static void expect_setup_error(struct server *s, const char *address, const char *const reasons[])
{
    if (!server_wait_exit(s, patience()))
        flunk(HINT_SETUP,
              "the server did not exit within %d ms; expected one line on stderr and "
              "exit status 1",
              patience());
    expect_hinted(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 1, HINT_SETUP,
                  "expected exit status 1");
    expect_hinted(s->out.len == 0, HINT_SETUP, "nothing belongs on stdout, got: %s",
                  shown(s->out.text, s->out.len));
    char *newline = strchr(s->err.text, '\n');
    expect_hinted(s->err.len > 1 && newline == s->err.text + s->err.len - 1, HINT_SETUP,
                  "expected one line on stderr");
    if (address != NULL)
        expect_hinted(strstr(s->err.text, address) != NULL, HINT_SETUP,
                      "the line on stderr does not name the address, \"%s\"", address);
    bool reason = reasons == NULL;
    for (int i = 0; !reason && reasons[i] != NULL; i++)
        reason = strstr(s->err.text, reasons[i]) != NULL;
    expect_hinted(reason, HINT_SETUP,
                  "the line on stderr does not give the system's reason, \"%s\" (strerror of "
                  "the error, as glibc words it; musl says \"%s\")",
                  reasons[0], reasons[1]);
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

/* Whether a socket may listen on 127.0.0.1:port now, as a stage's would (SO_REUSEADDR). */
static bool port_is_free(int port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), yes = 1;

    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    bool free = bind(fd, (struct sockaddr *)&address, sizeof address) == 0 && listen(fd, 1) == 0;
    close(fd);
    return free;
}

TEST(default_port_is_7878)
{
    const char *no_args[] = {NULL};
    struct server s;

    /* make check runs the eight stages' tests side by side, and each starts a server on
       7878 here. Two of them could both bind the port (SO_REUSEADDR allows it until one
       listens) and one would then fail in listen(): so they take turns, each holding a lock
       on the repository's folder until its server has stopped. */
    int turn = open(tested.root_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    expect(turn >= 0 && flock(turn, LOCK_EX) == 0, "cannot lock %s: %s", tested.root_dir,
           strerror(errno));
    note_case("no arguments");
    server_spawn(&s, NULL, no_args);
    const char *line = server_line(&s, patience());
    if (line != NULL) {
        expect_hinted(strcmp(line, "Listening on http://127.0.0.1:7878") == 0, HINT_LISTENING,
                      "with no arguments, expected \"Listening on http://127.0.0.1:7878\", got "
                      "\"%s\"",
                      shown(line, strlen(line)));
        server_stop(&s);
    } else {
        /* 7878 is taken, by a student's server perhaps: then it must say so; and it must be
           so, or the server never tried the port it should listen on. */
        expect_hinted(!port_is_free(7878), HINT_LISTENING,
                      "with no arguments, the server printed no Listening line, but 7878 is "
                      "free: with no PORT, it must listen on 7878");
        expect_setup_error(&s, "127.0.0.1:7878", address_in_use);
    }
    close(turn);
}

TEST(port_in_use_is_one_line_and_exit_1)
{
    struct sockaddr_in address = {.sin_family = AF_INET};
    socklen_t size = sizeof address;
    int taken = socket(AF_INET, SOCK_STREAM, 0);
    char port[16], where[32];
    struct server s;

    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    expect(bind(taken, (struct sockaddr *)&address, sizeof address) == 0 && listen(taken, 1) == 0 &&
               getsockname(taken, (struct sockaddr *)&address, &size) == 0,
           "cannot take a port: %s", strerror(errno));
    snprintf(port, sizeof port, "%d", ntohs(address.sin_port));
    snprintf(where, sizeof where, "127.0.0.1:%s", port);

    const char *args[] = {port, NULL};
    note_case("port %s, which another socket already listens on", port);
    server_spawn(&s, NULL, args);
    expect_setup_error(&s, where, address_in_use);
    close(taken);
}

TEST(bad_port_is_one_line_and_exit_1)
{
    const char *bad[] = {"", "abc", "-1", "65536", "+80", " 80", "80x", "99999999999999999999"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {bad[i], NULL};
        struct server s;
        note_case("PORT \"%s\"", bad[i]);
        server_spawn(&s, NULL, args);
        expect_setup_error(&s, NULL, NULL);
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
    expect_hinted(connect(fd, (struct sockaddr *)&other, sizeof other) == -1 &&
                      errno == ECONNREFUSED,
                  HINT_LOOPBACK,
                  "a connection to 127.0.0.2:%d was not refused: the server "
                  "listens beyond 127.0.0.1",
                  s.port);
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
