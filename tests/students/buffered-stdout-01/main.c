/* STUDENT FIXTURE. Stage 01 (listen). ONE MISTAKE: stdout is left as the C library sets it
 * up, fully buffered when it is a pipe or a file (no setvbuf(), no fflush()), so the
 * "Listening on ..." line and every "connection established" wait in the buffer until
 * kilobytes pile up. On a terminal it looks perfect. A grader should see every test that
 * waits for the Listening line fail with "no Listening line within 3000 ms" in bounded
 * time (the setup-error tests, which read stderr, still pass). */

/*
 * Stage 1: accept connections on 127.0.0.1 and report each one.
 */
#include <errno.h>
#include <netinet/in.h>
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

int main(int argc, char **argv)
{
    long port = PORT;
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    int opt = 1;

    if (argc > 2 || (argc == 2 && parse_port(argv[1], &port) < 0)) {
        fprintf(stderr, "usage: %s [PORT] (PORT from 0 to 65535)\n", argv[0]);
        return 1;
    }
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
        printf("connection established\n");
        close(client);
    }
}
