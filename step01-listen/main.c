/*
 * Stage 01: listen for TCP connections.
 *
 * Binds 127.0.0.1:7878 (or the port given), accepts connections one after another and
 * prints a line for each, then closes it.
 * The lesson is in README.md beside this file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_PORT 7878
/* Connections the kernel may hold, fully opened, until accept() takes them. */
#define BACKLOG 511

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
        puts("connection established");
        close(stream);
    }
}
