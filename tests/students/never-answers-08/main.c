/* STUDENT FIXTURE. Stage 08 shape. BROKEN: it listens, prints the Listening line and accepts
 * every connection, but never reads, writes or closes any of them, and it ignores SIGINT
 * and SIGTERM, so it never shuts down either (it has no /sleep and no head timeout: it
 * never reads a head). A grader should see every test that talks to it fail in bounded
 * time: answers time out ("got \"\", ended by Connection timed out"), and every test's
 * stop ends in "the server did not exit after SIGTERM", the suite killing it with SIGKILL. */

/*
 * Stage 8, as far as this student got: the accept loop.
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
#define REQUESTS 4

static int parse_number(const char *s, long max, long *value)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *value = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || *value > max)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    long port = PORT, requests = REQUESTS;
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    int opt = 1;

    if (argc > 3 || (argc >= 2 && parse_number(argv[1], 65535, &port) < 0)) {
        fprintf(stderr, "usage: %s [PORT [REQUESTS]]\n", argv[0]);
        return 1;
    }
    if (argc == 3 && (parse_number(argv[2], 1000000000, &requests) < 0 || requests < 1)) {
        fprintf(stderr, "REQUESTS must be a number from 1 up\n");
        return 1;
    }
    (void)requests; /* TODO: stop after REQUESTS connections */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* TODO: shut down gracefully */
    signal(SIGTERM, SIG_IGN);

    int server = socket(AF_INET, SOCK_STREAM, 0);
    if (server < 0) {
        perror("socket");
        return 1;
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &opt, sizeof opt);
    if (bind(server, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "bind 127.0.0.1:%ld: %s\n", port, strerror(errno));
        return 1;
    }
    if (listen(server, 128) < 0) {
        perror("listen");
        return 1;
    }
    getsockname(server, (struct sockaddr *)&addr, &addr_len);
    printf("Listening on http://127.0.0.1:%d\n", ntohs(addr.sin_port));

    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client < 0) {
            int err = errno;
            if (err != EINTR && err != ECONNABORTED)
                perror("accept");
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                sleep(1);
            continue;
        }
        /* TODO: hand the connection to the pool */
    }
}
