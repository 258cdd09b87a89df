/*
 * The test harness: see harness.h. Linux-specific where it helps the tests (prctl, pipe
 * sizes); the stages themselves stay POSIX.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int stage;
const char *server_path;
const char *root_dir;
int sleep_seconds, head_timeout_seconds;
int wait_ms = 3000;

long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* Milliseconds left before deadline, for poll(): never negative. */
static int ms_left(long long deadline)
{
    long long left = deadline - now_ms();
    return left > 0 ? (int)left : 0;
}

const char *shown(const char *bytes, size_t len)
{
    /* Two buffers, used in turn, so that one message can show two byte strings. */
    static char buffers[2][1200];
    static int turn;
    char *out = buffers[turn++ % 2];
    size_t o = 0;

    for (size_t i = 0; i < len && o < sizeof buffers[0] - 40; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c >= ' ' && c <= '~' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)sprintf(out + o, "\\x%02x", c);
    }
    if (o >= sizeof buffers[0] - 40)
        o += (size_t)sprintf(out + o, "... (%zu bytes)", len);
    out[o] = '\0';
    return out;
}

static void output_open(struct output *o, int fd)
{
    /* A big pipe lets a busy server log on while a test is not reading. */
    fcntl(fd, F_SETPIPE_SZ, 1 << 20);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    *o = (struct output){.fd = fd, .cap = 4096};
    o->text = malloc(o->cap + 1);
    ck_assert(o->text != NULL);
    o->text[0] = '\0';
}

/* Takes in everything the process has written so far; false once it has closed the pipe. */
static bool output_pull(struct output *o)
{
    while (o->fd >= 0) {
        if (o->len == o->cap) {
            o->cap *= 2;
            o->text = realloc(o->text, o->cap + 1);
            ck_assert(o->text != NULL);
        }
        ssize_t n = read(o->fd, o->text + o->len, o->cap - o->len);
        if (n > 0) {
            o->len += (size_t)n;
            o->text[o->len] = '\0';
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return true;
        } else {
            close(o->fd);
            o->fd = -1;
        }
    }
    return false;
}

/* Waits up to the deadline for the process to write more; false if it did not. */
static bool output_wait(struct output *o, long long deadline)
{
    size_t before = o->len;
    struct pollfd p = {.fd = o->fd, .events = POLLIN};

    while (o->len == before && o->fd >= 0 && ms_left(deadline) > 0) {
        poll(&p, 1, ms_left(deadline));
        output_pull(o);
    }
    return o->len > before;
}

static void output_close(struct output *o)
{
    if (o->fd >= 0)
        close(o->fd);
    free(o->text);
    o->fd = -1;
    o->text = NULL;
}

/* server_spawn, with at most fd_limit open files for the server when fd_limit > 0. */
static void spawn(struct server *s, const char *dir, const char *const args[], int fd_limit)
{
    const char *argv[8] = {server_path};
    int out[2], err[2];
    pid_t parent = getpid();

    for (int i = 0; args[i] != NULL; i++) {
        ck_assert(i + 2 < 8);
        argv[i + 1] = args[i];
    }
    ck_assert_msg(pipe(out) == 0 && pipe(err) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* The server dies with the test that started it, even one that fails or times out. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        /* The server starts with stdin, stdout and stderr only, whatever the runner has open. */
        for (long fd = 3, last = sysconf(_SC_OPEN_MAX); fd < last && fd < 65536; fd++)
            close((int)fd);
        /* The tests ignore SIGPIPE; the server must do that for itself. */
        signal(SIGPIPE, SIG_DFL);
        if (dir != NULL && chdir(dir) != 0) {
            perror(dir);
            _exit(127);
        }
        struct rlimit files = {.rlim_cur = (rlim_t)fd_limit, .rlim_max = (rlim_t)fd_limit};
        if (fd_limit > 0 && setrlimit(RLIMIT_NOFILE, &files) != 0) {
            perror("setrlimit");
            _exit(127);
        }
        execv(server_path, (char *const *)argv);
        perror(server_path);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    *s = (struct server){.pid = pid, .port = -1};
    output_open(&s->out, out[0]);
    output_open(&s->err, err[0]);
}

void server_spawn(struct server *s, const char *dir, const char *const args[])
{
    spawn(s, dir, args, 0);
}

void server_wait_listening(struct server *s)
{
    const char *prefix = "Listening on http://127.0.0.1:";
    const char *line = server_line(s, wait_ms);
    char *end;

    ck_assert_msg(line != NULL, "no Listening line within %d ms; stderr: %s", wait_ms,
                  shown(s->err.text, s->err.len));
    ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0, "first line is \"%s\", not \"%s...\"",
                  line, prefix);
    long port = strtol(line + strlen(prefix), &end, 10);
    ck_assert_msg(*end == '\0' && port > 0 && port < 65536, "no port in \"%s\"", line);
    s->port = (int)port;
}

void server_start_with_fd_limit(struct server *s, int fd_limit)
{
    const char *args[] = {"0", stage >= 8 ? "1000000" : NULL, NULL};

    spawn(s, NULL, args, fd_limit);
    server_wait_listening(s);
}

void server_start(struct server *s)
{
    server_start_with_fd_limit(s, 0);
}

bool server_wait_exit(struct server *s, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    while (s->pid != 0) {
        pid_t r = waitpid(s->pid, &s->status, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            break;
        }
        if (ms_left(deadline) == 0)
            return false;
        /* Keep its pipes flowing while it finishes, and look again soon. */
        output_pull(&s->out);
        output_pull(&s->err);
        poll(NULL, 0, 5);
    }
    output_pull(&s->out);
    output_pull(&s->err);
    return true;
}

/* Fails the test if the server has exited, with how it died and what it said. */
static void expect_alive(struct server *s)
{
    if (s->pid == 0 || waitpid(s->pid, &s->status, WNOHANG) != s->pid)
        return;
    s->pid = 0;
    output_pull(&s->err);
    ck_abort_msg("the server died (%s %d); stderr: %s",
                 WIFSIGNALED(s->status) ? "signal" : "exit status",
                 WIFSIGNALED(s->status) ? WTERMSIG(s->status) : WEXITSTATUS(s->status),
                 shown(s->err.text, s->err.len));
}

void server_stop(struct server *s)
{
    expect_alive(s);
    if (stage >= 8) {
        /* From stage 08 on, SIGTERM shuts the server down gracefully: it must exit by itself
           with status 0, which under valgrind also says that it made no memory error and
           leaked nothing. An idle connection may hold it up to the head timeout. */
        kill(s->pid, SIGTERM);
        if (server_wait_exit(s, head_timeout_seconds * 1000 + LINGER_MS_MAX + wait_ms)) {
            ck_assert_msg(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0,
                          "after SIGTERM, expected exit status 0, got raw status %d; stderr: %s",
                          s->status, shown(s->err.text, s->err.len));
            server_stop_exited(s);
            return;
        }
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    ck_assert_msg(stage < 8, "the server did not exit after SIGTERM");
    server_stop_exited(s);
}

void server_stop_exited(struct server *s)
{
    ck_assert(s->pid == 0);
    output_close(&s->out);
    output_close(&s->err);
}

long server_memory_kb(struct server *s, const char *field)
{
    char path[64], line[256];
    long kb = -1;
    size_t len = strlen(field);

    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *status = fopen(path, "r");
    ck_assert_msg(status != NULL, "%s: %s", path, strerror(errno));
    while (kb < 0 && fgets(line, sizeof line, status) != NULL) {
        if (strncmp(line, field, len) == 0 && line[len] == ':')
            kb = strtol(line + len + 1, NULL, 10);
    }
    fclose(status);
    ck_assert_msg(kb >= 0, "no %s in %s", field, path);
    return kb;
}

int server_open_files(struct server *s)
{
    char path[64];
    int count = 0;

    snprintf(path, sizeof path, "/proc/%d/fd", (int)s->pid);
    DIR *dir = opendir(path);
    ck_assert_msg(dir != NULL, "%s: %s", path, strerror(errno));
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;)
        count += entry->d_name[0] != '.';
    closedir(dir);
    return count;
}

const char *server_line(struct server *s, int timeout_ms)
{
    static char line[8192 * 5];
    long long deadline = now_ms() + timeout_ms;
    struct output *o = &s->out;

    output_pull(o);
    for (;;) {
        char *start = o->text + o->seen;
        char *newline = memchr(start, '\n', o->len - o->seen);
        if (newline != NULL) {
            size_t n = (size_t)(newline - start);
            ck_assert_msg(n < sizeof line, "log line of %zu bytes", n);
            memcpy(line, start, n);
            line[n] = '\0';
            o->seen += n + 1;
            return line;
        }
        if (!output_wait(o, deadline))
            return NULL;
    }
}

int worker_in(const char *line)
{
    const char *rest = " got a job; executing...";
    char *end;

    if (strncmp(line, "Worker ", 7) != 0 || line[7] < '0' || line[7] > '9')
        return -1;
    long id = strtol(line + 7, &end, 10);
    return strcmp(end, rest) == 0 && id < 1000 ? (int)id : -1;
}

void expect_log(struct server *s, const char *expected)
{
    const char *line = server_line(s, wait_ms);

    ck_assert_msg(line != NULL, "expected the log line \"%s\", got none within %d ms", expected,
                  wait_ms);
    ck_assert_msg(strcmp(line, expected) == 0, "expected the log line \"%s\", got \"%s\"", expected,
                  line);
}

void expect_quiet(struct server *s)
{
    output_pull(&s->out);
    ck_assert_msg(s->out.seen == s->out.len, "unexpected output: %s",
                  shown(s->out.text + s->out.seen, s->out.len - s->out.seen));
}

const char *server_stderr(struct server *s)
{
    output_pull(&s->err);
    return s->err.text;
}

/* Waits up to timeout_ms until o holds text. */
static bool output_holds(struct output *o, const char *text, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    output_pull(o);
    while (strstr(o->text, text) == NULL) {
        if (!output_wait(o, deadline))
            return false;
    }
    return true;
}

bool server_said(struct server *s, const char *text, int timeout_ms)
{
    return output_holds(&s->err, text, timeout_ms);
}

bool server_printed(struct server *s, const char *text, int timeout_ms)
{
    return output_holds(&s->out, text, timeout_ms);
}

int client_connect(int port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    ck_assert_msg(connect(fd, (struct sockaddr *)&address, sizeof address) == 0,
                  "connect to port %d: %s", port, strerror(errno));
    return fd;
}

bool client_send(int fd, const void *data, size_t len)
{
    const char *bytes = data;
    long long deadline = now_ms() + wait_ms;
    struct pollfd p = {.fd = fd, .events = POLLOUT};

    while (len > 0) {
        /* Never block for good: a server that stops reading must fail the test, not hang it. */
        if (poll(&p, 1, ms_left(deadline)) <= 0)
            return false;
        ssize_t n = send(fd, bytes, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return false;
        bytes += n;
        len -= (size_t)n;
    }
    return true;
}

int client_request(int port, const char *request)
{
    int fd = client_connect(port);

    ck_assert_msg(client_send(fd, request, strlen(request)), "could not send %s",
                  shown(request, strlen(request)));
    return fd;
}

void client_receive(int fd, struct reply *r, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    struct pollfd p = {.fd = fd, .events = POLLIN};

    r->len = 0;
    r->closed = false;
    r->error = 0;
    while (r->len < sizeof r->bytes) {
        if (poll(&p, 1, ms_left(deadline)) <= 0) {
            r->error = ETIMEDOUT;
            return;
        }
        ssize_t n = recv(fd, r->bytes + r->len, sizeof r->bytes - r->len, 0);
        if (n == 0) {
            r->closed = true;
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r->error = errno;
            return;
        }
        r->len += (size_t)n;
    }
    r->error = EMSGSIZE;
}

void client_reset(int fd)
{
    struct linger now = {.l_onoff = 1, .l_linger = 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    close(fd);
}

void exchange(struct server *s, const void *request, size_t len, struct reply *r)
{
    int fd = client_connect(s->port);

    /* A failed send is judged by the reply: a stage may close before reading everything. */
    client_send(fd, request, len);
    client_receive(fd, r, wait_ms);
    close(fd);
}

void expect_reply(const struct reply *r, const char *expected, size_t len)
{
    ck_assert_msg(r->len == len && memcmp(r->bytes, expected, len) == 0,
                  "expected the reply \"%s\", got \"%s\", ended by %s", shown(expected, len),
                  shown(r->bytes, r->len), r->closed ? "the server" : strerror(r->error));
    ck_assert_msg(r->closed, "the reply did not end with a clean end of stream: %s",
                  strerror(r->error));
}

size_t page_response(const char *status_line, const char *path, char *buf, size_t cap)
{
    char page[16384];
    char full[4096];
    FILE *file;

    snprintf(full, sizeof full, "%s/%s", root_dir, path);
    file = fopen(full, "rb");
    ck_assert_msg(file != NULL, "%s: %s", full, strerror(errno));
    size_t n = fread(page, 1, sizeof page, file);
    fclose(file);
    int head = snprintf(buf, cap, "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                        status_line, n);
    ck_assert((size_t)head + n <= cap);
    memcpy(buf + head, page, n);
    return (size_t)head + n;
}

void expect_page(const struct reply *r, const char *status_line, const char *path)
{
    char expected[20000];
    size_t len = page_response(status_line, path, expected, sizeof expected);

    expect_reply(r, expected, len);
}

void expect_status(const struct reply *r, const char *status_line)
{
    char expected[256];
    int n = snprintf(expected, sizeof expected, "%s\r\nContent-Length: ", status_line);
    const char *rest = "\r\nConnection: close\r\n\r\n";
    const char *at = r->bytes + n;
    long length = 0;

    ck_assert_msg(r->len > (size_t)n && memcmp(r->bytes, expected, (size_t)n) == 0,
                  "expected \"%s\", got \"%s\"", shown(expected, (size_t)n),
                  shown(r->bytes, r->len));
    while (at < r->bytes + r->len && *at >= '0' && *at <= '9')
        length = length * 10 + (*at++ - '0');
    ck_assert_msg((size_t)(r->bytes + r->len - at) == strlen(rest) + (size_t)length &&
                      memcmp(at, rest, strlen(rest)) == 0 && length > 0,
                  "the headers do not describe the body: \"%s\"", shown(r->bytes, r->len));
    ck_assert_msg(r->closed, "the reply did not end with a clean end of stream: %s",
                  strerror(r->error));
}

void fill_with_headers(char *buf, size_t size)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = "X-Fill: a\n"[i % 10];
}

void exchange_oversized_head(struct server *s, struct reply *r)
{
    static char head[16 * 1024];

    fill_with_headers(head, sizeof head);
    exchange(s, head, sizeof head, r);
}

void expect_normal_reply(const struct reply *r)
{
    if (stage == 1) {
        /* It closes without reading, so the end may come as a reset. */
        ck_assert_msg(r->len == 0, "stage 01 sends nothing, got \"%s\"", shown(r->bytes, r->len));
    } else if (stage == 2) {
        expect_reply(r, "", 0);
    } else if (stage == 3) {
        expect_reply(r, "HTTP/1.1 200 OK\r\n\r\n", 19);
    } else {
        expect_page(r, "HTTP/1.1 200 OK", "www/hello.html");
    }
}

/* Asserts that the server's stdout, as it is now, ends with these lines: a stage that logs
   each connection logs the normal request last, after whatever came before it. */
static void expect_log_ends_with(struct server *s, const char *const lines[], size_t n)
{
    struct output *o = &s->out;
    size_t start = o->len, count = 0;

    output_pull(o);
    start = o->len;
    while (count < n && start > o->seen) { /* back over n lines */
        start--;
        while (start > o->seen && o->text[start - 1] != '\n')
            start--;
        count++;
    }
    for (size_t i = 0, at = start; i < n; i++) {
        size_t len = strlen(lines[i]);
        ck_assert_msg(count == n && strncmp(o->text + at, lines[i], len) == 0 &&
                          o->text[at + len] == '\n',
                      "expected the log to end with \"%s\" and the lines after it; it ends: %s",
                      lines[0], shown(o->text + o->seen, o->len - o->seen));
        at += len + 1;
    }
    o->seen = o->len;
}

/* Asserts that the server has logged one or more worker lines, and nothing else, since the
   test last looked: a pool stage logs a line for each job, in the order the workers take
   them, which need not be the order of the connections. */
static void expect_only_worker_lines(struct server *s)
{
    const char *line;
    int count = 0;

    output_pull(&s->out);
    while (s->out.seen < s->out.len && (line = server_line(s, 0)) != NULL) {
        int id = worker_in(line);
        ck_assert_msg(id >= 0 && id < 4,
                      "expected \"Worker N got a job; executing...\" with N "
                      "from 0 to 3, got \"%s\"",
                      line);
        count++;
    }
    ck_assert_msg(count > 0, "no \"Worker N got a job; executing...\" line for the request");
}

void expect_served(struct server *s)
{
    static const char *const connection[] = {"connection established"};
    static const char *const request[] = {"Request: [", "    \"GET / HTTP/1.1\",",
                                          "    \"Host: 127.0.0.1\",", "]"};
    struct reply r;

    expect_alive(s);
    exchange(s, NORMAL_REQUEST, strlen(NORMAL_REQUEST), &r);
    expect_alive(s); /* a server that dies on this request leaves an empty reply */
    expect_normal_reply(&r);
    if (stage == 1)
        expect_log_ends_with(s, connection, 1);
    else if (stage <= 4)
        expect_log_ends_with(s, request, 4);
    else if (stage <= 6)
        expect_quiet(s);
    else
        expect_only_worker_lines(s);
}

void receive_each(const int fds[], struct reply replies[], long long ended_ms[], int n,
                  long long start_ms, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    struct pollfd p[16];
    int open = n;

    ck_assert(n <= 16);
    for (int i = 0; i < n; i++) {
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        replies[i] = (struct reply){.len = 0};
        ended_ms[i] = -1;
    }
    while (open > 0 && poll(p, (nfds_t)n, ms_left(deadline)) > 0) {
        for (int i = 0; i < n; i++) {
            struct reply *r = &replies[i];
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = recv(fds[i], r->bytes + r->len, sizeof r->bytes - r->len, 0);
            if (got > 0 && r->len + (size_t)got < sizeof r->bytes) {
                r->len += (size_t)got;
                continue;
            }
            r->closed = got == 0;
            r->error = got < 0 ? errno : got > 0 ? EMSGSIZE : 0;
            ended_ms[i] = now_ms() - start_ms;
            p[i].fd = -1; /* poll() passes over it from now on */
            open--;
        }
    }
    for (int i = 0; i < n; i++) {
        if (ended_ms[i] < 0)
            replies[i].error = ETIMEDOUT;
    }
}

void idle_open(struct idle_clients *c, int n, int port)
{
    const char *start = "GET / HTTP/1.1\r\nX-Trickle: ";

    ck_assert(n <= IDLE_MAX);
    c->n = c->open = n;
    for (int i = 0; i < n; i++) {
        c->fds[i] = client_connect(port);
        if (i % 2 == 1)
            ck_assert(client_send(c->fds[i], start, strlen(start)));
    }
}

void idle_tick(struct idle_clients *c, int ms)
{
    char scrap[256];

    poll(NULL, 0, ms);
    for (int i = 0; i < c->n; i++) {
        if (c->fds[i] < 0)
            continue;
        /* A server that gave up on the client closes the connection: a read sees its end
           (or a reset), where a connection still open has nothing to read. */
        ssize_t n = recv(c->fds[i], scrap, sizeof scrap, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (i % 2 == 1)
                send(c->fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            continue;
        }
        ck_assert_msg(n <= 0, "an idle client got an answer: %s", shown(scrap, (size_t)n));
        close(c->fds[i]);
        c->fds[i] = -1;
        c->open--;
    }
}

void idle_close(struct idle_clients *c)
{
    for (int i = 0; i < c->n; i++) {
        if (c->fds[i] >= 0)
            close(c->fds[i]);
    }
}

static int saved_stdout = -1;
static FILE *capture;

void capture_stdout(void)
{
    fflush(stdout);
    capture = tmpfile();
    ck_assert(capture != NULL);
    saved_stdout = dup(STDOUT_FILENO);
    dup2(fileno(capture), STDOUT_FILENO);
}

const char *stdout_captured(void)
{
    static char text[1 << 20];
    size_t n;

    fflush(stdout);
    dup2(saved_stdout, STDOUT_FILENO);
    close(saved_stdout);
    rewind(capture);
    n = fread(text, 1, sizeof text - 1, capture);
    text[n] = '\0';
    fclose(capture);
    return text;
}

long long root_behind_sleep(struct server *s)
{
    static struct reply replies[2];
    long long ended[2];
    int fds[2];

    fds[0] = client_request(s->port, SLEEP_REQUEST);
    long long start = now_ms();
    fds[1] = client_request(s->port, NORMAL_REQUEST);
    receive_each(fds, replies, ended, 2, start, 2 * sleep_seconds * 1000 + wait_ms);
    for (int i = 0; i < 2; i++) {
        close(fds[i]);
        expect_page(&replies[i], "HTTP/1.1 200 OK", "www/hello.html");
    }
    ck_assert_msg(ended[0] >= sleep_seconds * 900, "GET /sleep took %lld ms, not %d s", ended[0],
                  sleep_seconds);
    return ended[1];
}
