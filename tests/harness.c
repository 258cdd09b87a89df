/*
 * The test harness: see harness.h. It is POSIX; what it needs beyond (the measures of a
 * running process) is in system.c.
 */
#include "harness.h"
#include "pool_api.h"
#include "system.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tested tested = {.sleep_seconds = 5,
                        .head_timeout_seconds = 5,
                        .threads = 4,
                        .default_requests = 4,
                        .time_multiplier = 1};

/* ---- Time ----------------------------------------------------------------------------- */

/* What a healthy server does at once, it does well within this. */
#define PATIENCE_MS 3000
/* ...and after this many such waits have timed out in one run, the server is not healthy:
   the rest of the run waits only SHORT_PATIENCE_MS for it. */
#define TIMEOUTS_BEFORE_SHORT_PATIENCE 3
#define SHORT_PATIENCE_MS 500
/* No run of one runner may take longer than this (a correct server at the stages' own
   timings needs about half of it): the rest of its tests fail at once. */
#define RUN_BUDGET_MS 170000

/* What all the tests of one run share. The runner maps it before it starts them; each test
   runs in a child process of the runner (Check forks), and writes to the same memory. */
struct run {
    int timeouts;
    long long started_ms, deadline_ms;
    char scratch[PATH_MAX];
    int tests_started;
    /* Each failure's cause (note_cause), if it said one, and the test that failed: its place
       in the order the tests ran. */
    int failures;
    struct {
        int test;
        char cause[CAUSE_MAX];
    } failed[512];
};
static struct run *run;

/* What the test that is running holds, set afresh for each test (Check runs each in a
   process of its own). */
static struct test {
    /* Its end: its waits end before Check's timeout would stop it. */
    long long deadline_ms;
    /* What a failure message says besides its own words: the server the test last started
       (and the command that starts it again), what the test last sent it, and before that
       (and the bytes themselves, to send them again), and the failure's cause (note_cause). */
    struct server *server;
    char started[1200];
    char sent[640], sent_before[640];
    char sent_bytes[512];
    size_t sent_len; /* 0: no bytes to send again (none, too many, or a case) */
    char cause[CAUSE_MAX];
    char folder[PATH_MAX + 64]; /* scratch_folder()'s */
} test;

long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

int patience(void)
{
    bool short_patience = run != NULL && __atomic_load_n(&run->timeouts, __ATOMIC_RELAXED) >=
                                             TIMEOUTS_BEFORE_SHORT_PATIENCE;

    return (int)((short_patience ? SHORT_PATIENCE_MS : PATIENCE_MS) * tested.time_multiplier);
}

long long deadline_in(long long ms)
{
    long long deadline = now_ms() + ms;

    if (test.deadline_ms > 0 && deadline > test.deadline_ms)
        deadline = test.deadline_ms;
    if (run != NULL && deadline > run->deadline_ms)
        deadline = run->deadline_ms;
    return deadline;
}

int ms_left(long long deadline)
{
    long long left = deadline - now_ms();
    return left > 0 ? (int)(left < INT_MAX ? left : INT_MAX) : 0;
}

void note_timeout(void)
{
    if (run != NULL)
        __atomic_add_fetch(&run->timeouts, 1, __ATOMIC_RELAXED);
}

double test_timeout_seconds(void)
{
    /* Room for the slowest test with a correct server: a few sleeps and head timeouts, each
       with its linger, and the waits between. Check scales it by CK_TIMEOUT_MULTIPLIER. */
    return 30 + 3.0 * (tested.sleep_seconds + tested.head_timeout_seconds + 2);
}

void harness_begin(void)
{
    run = mmap(NULL, sizeof *run, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (run == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    run->started_ms = now_ms();
    run->deadline_ms = run->started_ms + (long long)(RUN_BUDGET_MS * tested.time_multiplier);
}

void harness_test_setup(void)
{
    run->tests_started++;
    /* Every wait ends a second before Check's timeout, so that the test fails with a
       message that says what it was waiting for. */
    long long deadline_ms =
        now_ms() + (long long)(test_timeout_seconds() * tested.time_multiplier * 1000);
    test = (struct test){.deadline_ms = deadline_ms - 1000};
}

static int remove_entry(const char *path, const struct stat *info, int flag, struct FTW *ftw)
{
    (void)info;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void harness_end(void)
{
    int timeouts = __atomic_load_n(&run->timeouts, __ATOMIC_RELAXED);

    if (run->scratch[0] != '\0')
        nftw(run->scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (timeouts >= TIMEOUTS_BEFORE_SHORT_PATIENCE)
        printf("Note: %d waits for what a healthy server does at once timed out, so the tests "
               "after the first %d waited only %d ms for it.\n",
               timeouts, TIMEOUTS_BEFORE_SHORT_PATIENCE,
               (int)(SHORT_PATIENCE_MS * tested.time_multiplier));
    if (now_ms() > run->deadline_ms)
        printf("Note: the run took its whole budget of %d s; the tests it had no time left for "
               "failed at once.\n",
               (int)(RUN_BUDGET_MS * tested.time_multiplier / 1000));
}

const char *scratch_folder(const char *name)
{
    char *path = test.folder;
    const char *tmp = getenv("TMPDIR");

    /* The run's folder is made by the first test that needs one (tests run one at a time),
       in the memory every test shares, so that the runner removes it at the end. */
    if (run->scratch[0] == '\0') {
        char made[sizeof run->scratch];
        snprintf(made, sizeof made, "%s/web-server-tests-XXXXXX",
                 tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
        expect(mkdtemp(made) != NULL, "mkdtemp %s: %s", made, strerror(errno));
        memcpy(run->scratch, made, sizeof made);
    }
    snprintf(path, sizeof test.folder, "%s/%s-%d", run->scratch, name, (int)getpid());
    expect(mkdir(path, 0700) == 0, "mkdir %s: %s", path, strerror(errno));
    return path;
}

/* ---- Failures ------------------------------------------------------------------------- */

const char HINT_LISTENING[] =
    "The tests start the server as `SERVER 0`, with stdout a pipe. It must listen on the port "
    "its first argument gives (0: one the kernel picks), print `Listening on "
    "http://127.0.0.1:PORT` with the port it really got (getsockname), and make stdout "
    "line-buffered, or that line waits in a buffer: stage 01's lesson, \"Port 0\" and "
    "\"Line-buffered stdout\".";
const char HINT_SETUP[] =
    "A setup error (a PORT that is not a number from 0 to 65535, a port in use) is one line on "
    "stderr that says what went wrong (for a port in use: the address 127.0.0.1:PORT and the "
    "system's reason), then exit status 1, with nothing on stdout: stage 01's lesson, "
    "\"Errors are lines, not panics\".";
const char HINT_LOOPBACK[] =
    "Bind 127.0.0.1 only (inet_pton of \"127.0.0.1\"), never every interface: "
    "stage 01's lesson, \"Loopback only\".";
const char HINT_RESET[] =
    "The connection was reset: a server that closes a connection while bytes the client sent "
    "are still unread makes the kernel send a reset, which can destroy the answer. Read the "
    "whole head, and close gracefully: stage 03's lesson, \"The reset problem\".";
const char HINT_SIGPIPE[] =
    "SIGPIPE killed the server: writing to a connection that the client has closed raises it, "
    "and its default action ends the process. Ignore it: stage 03's lesson, \"SIGPIPE\".";
const char HINT_CLOSE[] =
    "After its answer, the server must end the connection (close it, gracefully): the client "
    "reads until then: stage 03's lesson, \"The reset problem\".";
const char HINT_NO_ANSWER[] =
    "No answer came, and the connection stayed open: read the request head up to the empty "
    "line that ends it, answer, and close the connection: stage 02's lesson, \"How the code "
    "does it\", and stage 03's.";
const char HINT_READ_LOOP[] =
    "A read returns what has come so far, which may be part of a line: read in a loop, adding "
    "each piece to the buffer, until the empty line that ends the head (or the end of the "
    "stream, or a full buffer): stage 02's lesson, \"Where lines and the head end\".";
const char HINT_NO_PRINT[] = "From stage 05 on, the request is no longer printed: stage 05's "
                             "lesson, \"No more printing\".";
const char HINT_HEAD_MAX[] =
    "Read the head into a buffer of fixed size (8 KiB) and refuse a head that does not fit: "
    "stage 02's lesson, \"A fixed buffer\".";
const char HINT_PAGE_ERROR[] =
    "A page that cannot be read is answered 500, and logged on stderr with the page's name and "
    "the system's reason: stage 04's lesson, \"A missing page is a 500, not a crash\".";
const char HINT_EXACT_LINE[] =
    "Only a request line of exactly `GET / HTTP/1.1` (or, from stage 06, `GET /sleep "
    "HTTP/1.1`) gets the hello page: compare its length as well as its bytes: stage 05's "
    "lesson, \"Compare bytes, not strings\".";
const char HINT_HEAD_TIMEOUT[] =
    "A client has HEAD_TIMEOUT_SECONDS for its whole head, then its connection is closed: one "
    "deadline for the whole head, not a timeout for each read: stage 06's lesson, \"A deadline "
    "for the head\".";
const char HINT_LOCK_HELD[] =
    "The jobs ran one after another, not one per worker at a time: does a worker still hold the "
    "queue's mutex while it runs its job? Take the job, unlock, then run it: stage 07's lesson, "
    "\"The while let trap, in C\".";
const char HINT_POOL_SIZE[] =
    "The pool has exactly THREAD_COUNT workers (4 in the lessons; SERVER_THREADS says how many "
    "a server of your own has): as many slow requests run at once, and one more waits for one "
    "of them: stage 07's lesson, \"Why a pool\".";
const char HINT_THREAD_PER_CONNECTION[] =
    "The server's threads grew with its clients: a thread for each connection instead of a "
    "fixed pool. Start the workers once and queue the connections: stage 07's lesson, \"Why a "
    "pool\".";
const char HINT_NO_JOIN[] =
    "The server ended before its workers had finished: the pool's drop must wake every worker "
    "and wait for each (pthread_join), and main must call it before it returns: stage 08's "
    "lesson, \"Drop is a call you write\".";
const char HINT_QUEUED_JOBS[] =
    "Jobs still queued when the shutdown began were lost: a worker may leave only when the "
    "queue is empty and the pool is shutting down: stage 08's lesson, \"Every queued job still "
    "runs\".";
const char HINT_DROP_HANGS[] =
    "thread_pool_drop waits (joins) for a worker that never leaves. Set the flag with the mutex "
    "held and wake every worker with pthread_cond_broadcast (pthread_cond_signal wakes only "
    "one); a worker leaves once the queue is empty and the flag is set: stage 08's lesson, "
    "\"Closing the channel: a flag and a broadcast\".";
const char HINT_POOL_HANGS[] =
    "A call that never returns waits for a mutex that nobody unlocks (a return, or an error path, "
    "that skips pthread_mutex_unlock; a job run with the mutex held), or on a condition variable "
    "that nobody signals.";
const char HINT_DROP_FREES[] =
    "The drop frees what the pool allocated: after the joins, the workers and the pool itself "
    "(and any job still queued, though a drained queue has none): stage 08's lesson, \"Drop is "
    "a call you write\".";
const char HINT_POOL_CRASHED[] =
    "The test process crashed in the pool's code (or in a job it ran). Often a worker woke with "
    "the queue empty and took a job that is not there: wait in a while loop, not an if: stage "
    "07's lesson, \"Lock, wait, take, unlock: then run\".";
const char HINT_STOP_SIGNALS[] =
    "SIGINT and SIGTERM must start the same graceful shutdown as the last of REQUESTS: catch "
    "them, and have the handler do no more than wake the accept loop: stage 08's lesson, "
    "\"Part 2: Ctrl-C\".";

const char HINT_CRASHED[] =
    "The server crashed: a bug in its own code, which no request may reach. Start it by hand as "
    "below and send it the same bytes; built with -g -fsanitize=address,undefined, it says "
    "where.";
const char HINT_EXITED[] =
    "The server exited in the middle of the test. Nothing a client sends, and no client that "
    "leaves, may end the server: a failed read or write ends that one connection. Look for an "
    "exit() or a return from main on an error of one connection.";
const char HINT_SPINNING[] =
    "The server burns CPU while it has nothing to do: a loop retries at once, where it should "
    "wait (in accept, recv or poll), or pause after a failure that lasts (EMFILE).";
const char HINT_NOT_ACCEPTING[] =
    "The main thread must go back to accept() at once after it hands a connection to the pool, "
    "whatever the workers are doing: it never reads, waits or sleeps itself: stage 07's "
    "lesson, \"How the code does it\".";
const char HINT_REQUESTS[] =
    "After REQUESTS connections the main loop stops accepting, prints \"Shutting down server, "
    "gracefully!\", drops the pool and returns from main: stage 08's lesson, \"Part 1: take(N) "
    "and the pool's drop\".";
const char HINT_TIMINGS[] =
    "If the server keeps other timings than these, say so: SERVER_SLEEP_SECONDS and "
    "SERVER_HEAD_TIMEOUT_SECONDS (whole seconds) for make check-stepNN and make grade.";

const char *show_bytes(char out[SHOWN_MAX], const char *bytes, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o < SHOWN_MAX - 40; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c >= ' ' && c <= '~' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)sprintf(out + o, "\\x%02x", c);
    }
    if (o >= SHOWN_MAX - 40)
        o += (size_t)sprintf(out + o, "... (%zu bytes)", len);
    out[o] = '\0';
    return out;
}

void note_sent(const void *bytes, size_t len)
{
    memcpy(test.sent_before, test.sent, sizeof test.sent);
    snprintf(test.sent, sizeof test.sent, "\"%.500s\"%s", shown(bytes, len < 500 ? len : 500),
             len > 500 ? "..." : "");
    if (len > 60)
        snprintf(test.sent + strlen(test.sent), sizeof test.sent - strlen(test.sent),
                 " (%zu bytes)", len);
    test.sent_len = len <= sizeof test.sent_bytes ? len : 0;
    memcpy(test.sent_bytes, bytes, test.sent_len);
}

void note_cause(const char *format, ...)
{
    va_list ap;

    va_start(ap, format);
    vsnprintf(test.cause, sizeof test.cause, format, ap);
    va_end(ap);
}

int harness_failures(void)
{
    return run->failures < (int)(sizeof run->failed / sizeof run->failed[0])
               ? run->failures
               : (int)(sizeof run->failed / sizeof run->failed[0]);
}

const char *harness_failure_cause(int i, int *test)
{
    *test = run->failed[i].test;
    return run->failed[i].cause;
}

void note_case(const char *format, ...)
{
    va_list ap;

    memcpy(test.sent_before, test.sent, sizeof test.sent);
    va_start(ap, format);
    vsnprintf(test.sent, sizeof test.sent, format, ap);
    va_end(ap);
    test.sent_len = 0;
}

static bool output_pull(struct output *o);
#define STATE_MAX 96
static const char *say_state(char state[STATE_MAX], struct server *s);
/* How the server is now, in a buffer of the caller's own (see shown()). */
#define server_state(s) say_state((char[STATE_MAX]){""}, s)
static bool wait_for_exit(struct server *s, int timeout_ms);

/* Appends to buf[*len..cap) what printf would print, as much as fits. */
static void append(char *buf, size_t cap, size_t *len, const char *format, ...)
    CK_ATTRIBUTE_FORMAT(printf, 4, 5);
static void append(char *buf, size_t cap, size_t *len, const char *format, ...)
{
    va_list ap;

    if (*len + 1 >= cap)
        return;
    va_start(ap, format);
    int n = vsnprintf(buf + *len, cap - *len, format, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

/* What the harness finds when it looks at the server after a failed expectation. */
enum diagnosis {
    NO_SERVER,     /* the test runs none (the pool's API tests) */
    HEALTHY,       /* running, and idle: the test's own words and hint stand */
    SPINNING,      /* running, and busy on the CPU with nothing to do */
    NOT_ACCEPTING, /* running, and a new connection is not taken (a pool stage's main loop) */
    CRASHED,       /* killed by a signal it did not ask for */
    BROKEN_PIPE,
    STOPPED,         /* from stage 08, killed by SIGINT or SIGTERM: it does not catch them */
    EXITED,          /* exited when the test did not expect it to */
    EXITED_AT_START, /* the same, before it listened */
};

#define NO_LONGER_ACCEPTS "the server no longer takes new connections"

/* Whether a pool stage's server (07 on, started by server_start) leaves a new connection
   untaken: its main thread should accept at once, whatever its workers do, and the connection
   then shows among its open files. Says what it found into finding. */
static bool stopped_accepting(struct server *s, char *finding, size_t cap)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    struct pollfd p = {.events = POLLOUT};
    int before, now = 0, error = 0;
    socklen_t size = sizeof error;

    /* A server that is shutting down has stopped accepting, as it should. */
    if (!does->pool || !s->started_plainly || s->exit_expected || s->port <= 0 ||
        strstr(s->out.text, "Shutting down server, gracefully!") != NULL ||
        !measure_open_files(s->pid, &before))
        return false;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (p.fd < 0)
        return false;
    fcntl(p.fd, F_SETFL, O_NONBLOCK);
    bool connected = connect(p.fd, (struct sockaddr *)&address, sizeof address) == 0;
    if (!connected && errno == EINPROGRESS && harness_poll(&p, 1, 300) == 1)
        connected = getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0;
    long long start = now_ms();
    while (connected && now_ms() - start < 300 && measure_open_files(s->pid, &now) && now <= before)
        harness_poll(NULL, 0, 10);
    close(p.fd);
    if (connected && now > before)
        return false;
    snprintf(finding, cap, "%s: %s", NO_LONGER_ACCEPTS,
             connected ? "one waited 300 ms in its backlog, and was not accepted"
                       : "a connect() did not complete in 300 ms (its backlog is full)");
    return true;
}

/* Looks at the server: reaps it if it has just died (of the request that failed, say, after
   a moment), or measures its CPU for a moment where the system can. Writes what it found
   into finding, for the headline. */
static enum diagnosis diagnose(struct server *s, char *finding, size_t cap)
{
    long long cpu_before, cpu_after;

    if (s == NULL)
        return NO_SERVER;
    wait_for_exit(s, 100);
    snprintf(finding, cap, "the server %s", server_state(s));
    if (s->pid != 0) {
        long long start = now_ms();
        if (!measure_cpu_ms(s->pid, &cpu_before))
            return HEALTHY;
        harness_poll(NULL, 0, 200);
        long long waited = now_ms() - start;
        /* Too short a look (the test's time is spent) tells nothing. */
        if (waited < 150 || !measure_cpu_ms(s->pid, &cpu_after))
            return HEALTHY;
        long long spent = cpu_after - cpu_before;
        if (spent * 4 >= waited * 3) {
            snprintf(finding, cap,
                     "the server is busy on the CPU, with nothing to do: %lld ms of CPU in %lld ms",
                     spent, waited);
            return SPINNING;
        }
        return stopped_accepting(s, finding, cap) ? NOT_ACCEPTING : HEALTHY;
    }
    if (WIFEXITED(s->status)) {
        if (s->exit_expected)
            return HEALTHY;
        if (s->port <= 0) {
            snprintf(finding, cap,
                     "the server exited, with status %d, before it printed its Listening line",
                     WEXITSTATUS(s->status));
            return EXITED_AT_START;
        }
        snprintf(finding, cap, "the server exited, with status %d, in the middle of the test",
                 WEXITSTATUS(s->status));
        return EXITED;
    }
    int signal = WIFSIGNALED(s->status) ? WTERMSIG(s->status) : 0;
    if (signal == SIGPIPE)
        return BROKEN_PIPE;
    if (does->shuts_down && (signal == SIGTERM || signal == SIGINT))
        return STOPPED;
    snprintf(finding, cap, "the server crashed: %s", server_state(s));
    return CRASHED;
}

/* Appends the shell's quoting of bytes as printf's format: what is not printable, in octal
   (POSIX printf knows no \x). */
static void append_printf_format(char *buf, size_t cap, size_t *len, const char *bytes, size_t n)
{
    append(buf, cap, len, "'");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c == '\'')
            append(buf, cap, len, "'\\''");
        else if (c == '\\')
            append(buf, cap, len, "\\\\");
        else if (c == '%')
            append(buf, cap, len, "%%%%");
        else if (c >= ' ' && c <= '~')
            append(buf, cap, len, "%c", c);
        else
            append(buf, cap, len, "\\%03o", c);
    }
    append(buf, cap, len, "'");
}

void flunk_at(const char *file, int line, const char *hint, const char *format, ...)
{
    static char message[8000];
    char said[2400], finding[256];
    va_list ap;
    size_t len = 0;

    va_start(ap, format);
    vsnprintf(said, sizeof said, format, ap);
    va_end(ap);
    /* The server first: how it ended, or what it does, says more than the expectation that
       happened to fail, and a lesson's hint is given only where the server gives no other
       explanation. */
    enum diagnosis diagnosis = diagnose(test.server, finding, sizeof finding);
    bool explained = diagnosis == CRASHED || diagnosis == EXITED || diagnosis == SPINNING ||
                     diagnosis == NOT_ACCEPTING || diagnosis == EXITED_AT_START;
    if (diagnosis == NOT_ACCEPTING)
        note_cause("%s", NO_LONGER_ACCEPTS);
    else if (explained)
        note_cause("%s", finding);
    else if (diagnosis == BROKEN_PIPE)
        note_cause("SIGPIPE killed the server");
    else if (diagnosis == STOPPED)
        note_cause("the server %s", server_state(test.server));
    if (run != NULL && run->failures < (int)(sizeof run->failed / sizeof run->failed[0])) {
        run->failed[run->failures].test = run->tests_started - 1;
        memcpy(run->failed[run->failures].cause, test.cause, sizeof test.cause);
    }
    if (run != NULL)
        run->failures++;
    if (explained) {
        append(message, sizeof message, &len, "%s", finding);
        if (strcmp(said, "the server has ended") != 0)
            append(message, sizeof message, &len, ". What the test saw: %s", said);
        hint = diagnosis == CRASHED           ? HINT_CRASHED
               : diagnosis == EXITED          ? HINT_EXITED
               : diagnosis == EXITED_AT_START ? HINT_LISTENING
               : diagnosis == SPINNING        ? HINT_SPINNING
                                              : HINT_NOT_ACCEPTING;
    } else {
        append(message, sizeof message, &len, "%s", said);
        if (diagnosis == BROKEN_PIPE)
            hint = HINT_SIGPIPE;
        else if (diagnosis == STOPPED)
            hint = HINT_STOP_SIGNALS;
    }
    if (test.sent[0] != '\0')
        append(message, sizeof message, &len, "\n  sent: %s", test.sent);
    /* A server dies a moment after what killed it: that may have been the step before. */
    if (test.sent_before[0] != '\0' &&
        (diagnosis == CRASHED || diagnosis == EXITED || diagnosis == BROKEN_PIPE))
        append(message, sizeof message, &len, "\n  and before that: %s", test.sent_before);
    if (test.server != NULL) {
        output_pull(&test.server->err);
        append(message, sizeof message, &len, "\n  the server: %s", server_state(test.server));
        append(message, sizeof message, &len, "\n  its stderr: %s",
               test.server->err.len == 0 ? "(nothing)"
                                         : shown(test.server->err.text, test.server->err.len));
    }
    if (hint != NULL)
        append(message, sizeof message, &len, "\n  hint: %s", hint);
    if (test.server != NULL) {
        append(message, sizeof message, &len, "\n  try it: %s", test.started);
        if (test.sent_len > 0) {
            append(message, sizeof message, &len, "\n    then, in another terminal: printf ");
            append_printf_format(message, sizeof message, &len, test.sent_bytes, test.sent_len);
            append(message, sizeof message, &len, " | nc -N 127.0.0.1 PORT");
        }
    }
    if (run != NULL && now_ms() >= run->deadline_ms)
        append(message, sizeof message, &len,
               "\n  note: the run's budget of %d s is spent, so this test waited for nothing",
               (int)(RUN_BUDGET_MS * tested.time_multiplier / 1000));
    else if (test.deadline_ms > 0 && now_ms() >= test.deadline_ms)
        append(message, sizeof message, &len, "\n  note: the test's %.0f s ran out",
               test_timeout_seconds() * tested.time_multiplier);
    _ck_assert_failed(file, line, "Failed", "%s", message);
}

/* ---- Outputs -------------------------------------------------------------------------- */

static void output_open(struct output *o, int fd)
{
    fcntl(fd, F_SETFL, O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    *o = (struct output){.fd = fd, .cap = 4096};
    o->text = malloc(o->cap + 1);
    expect(o->text != NULL, "out of memory");
    o->text[0] = '\0';
}

/* Takes in everything the process has written so far; false once it has closed the pipe. */
static bool output_pull(struct output *o)
{
    while (o->fd >= 0) {
        if (o->len == o->cap) {
            o->cap *= 2;
            o->text = realloc(o->text, o->cap + 1);
            expect(o->text != NULL, "out of memory");
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

    while (o->len == before && o->fd >= 0 && ms_left(deadline) > 0)
        harness_poll(NULL, 0, ms_left(deadline) < 10 ? ms_left(deadline) : 10);
    output_pull(o);
    return o->len > before;
}

int harness_poll(struct pollfd fds[], nfds_t n, int timeout_ms)
{
    struct pollfd all[64];
    long long deadline = deadline_in(timeout_ms);
    int ready;

    expect(n + 2 <= sizeof all / sizeof all[0], "too many connections for harness_poll");
    /* The server's outputs too: a server that logs while the test waits for something else
       never finds its pipes full, whatever their size on this system. */
    all[0] =
        (struct pollfd){.fd = test.server != NULL ? test.server->out.fd : -1, .events = POLLIN};
    all[1] =
        (struct pollfd){.fd = test.server != NULL ? test.server->err.fd : -1, .events = POLLIN};
    for (nfds_t i = 0; i < n; i++)
        all[i + 2] = fds[i];
    do {
        ready = poll(all, n + 2, ms_left(deadline));
        if (ready < 0 && errno != EINTR)
            return -1;
        if (test.server != NULL && all[0].revents != 0)
            output_pull(&test.server->out);
        if (test.server != NULL && all[1].revents != 0)
            output_pull(&test.server->err);
        /* A pipe that has ended is no more reason to wake. */
        all[0].fd = test.server != NULL ? test.server->out.fd : -1;
        all[1].fd = test.server != NULL ? test.server->err.fd : -1;
        ready = 0;
        for (nfds_t i = 0; i < n; i++) {
            fds[i].revents = all[i + 2].revents;
            ready += fds[i].revents != 0;
        }
    } while (ready == 0 && ms_left(deadline) > 0);
    return ready;
}

static void output_close(struct output *o)
{
    if (o->fd >= 0)
        close(o->fd);
    free(o->text);
    o->fd = -1;
    o->text = NULL;
}

/* ---- Servers -------------------------------------------------------------------------- */

/* Appends text to buf[*len..cap) quoted for the shell, where it needs quotes. */
static void append_quoted(char *buf, size_t cap, size_t *len, const char *text)
{
    if (*text != '\0' && strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789/._-+=:,") == strlen(text)) {
        append(buf, cap, len, "%s", text);
        return;
    }
    append(buf, cap, len, "'");
    for (; *text != '\0'; text++)
        append(buf, cap, len, *text == '\'' ? "'\\''" : "%c", *text);
    append(buf, cap, len, "'");
}

/* Notes how the server was started, as a command to start it again by hand. */
static void note_started(const char *dir, const char *const argv[], int fd_limit)
{
    size_t len = 0;

    test.started[0] = '\0';
    append(test.started, sizeof test.started, &len, "cd ");
    append_quoted(test.started, sizeof test.started, &len, dir != NULL ? dir : tested.root_dir);
    append(test.started, sizeof test.started, &len, " && ");
    if (fd_limit > 0)
        append(test.started, sizeof test.started, &len, "(ulimit -n %d; ", fd_limit);
    for (int i = 0; argv[i] != NULL; i++) {
        append(test.started, sizeof test.started, &len, "%s", i > 0 ? " " : "");
        append_quoted(test.started, sizeof test.started, &len, argv[i]);
    }
    if (fd_limit > 0)
        append(test.started, sizeof test.started, &len, ")");
    if (argv[1] != NULL && strcmp(argv[1], "0") == 0)
        append(test.started, sizeof test.started, &len,
               "   (port 0: it prints the port it got, PORT)");
}

/* server_spawn, with at most fd_limit open files for the server when fd_limit > 0. */
static void spawn(struct server *s, const char *dir, const char *const args[], int fd_limit)
{
    const char *argv[8] = {tested.server_path};
    int out[2], err[2];

    for (int i = 0; args[i] != NULL; i++) {
        expect(i + 2 < 8, "too many arguments");
        argv[i + 1] = args[i];
    }
    expect(pipe(out) == 0 && pipe(err) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    expect(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        /* The server starts with stdin, stdout and stderr only, whatever the runner has open. */
        close_inherited_files(-1);
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
        execv(tested.server_path, (char *const *)argv);
        perror(tested.server_path);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    *s = (struct server){.pid = pid, .port = -1};
    note_started(dir, argv, fd_limit);
    /* The server dies with the test that started it, even one that fails or times out. */
    if (!watcher_start(&s->watcher, pid)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        flunk(NULL, "cannot start a watcher for the server: %s", strerror(errno));
    }
    output_open(&s->out, out[0]);
    output_open(&s->err, err[0]);
    test.server = s;
}

void server_spawn(struct server *s, const char *dir, const char *const args[])
{
    spawn(s, dir, args, 0);
}

void server_wait_listening(struct server *s)
{
    const char *prefix = "Listening on http://127.0.0.1:";
    const char *line = server_line(s, patience());
    char *end;

    if (line == NULL) {
        note_timeout();
        output_pull(&s->out);
        flunk(HINT_LISTENING, "no line on stdout within %d ms; expected \"%sPORT\"%s%s", patience(),
              prefix, s->out.len > 0 ? ", got the start of a line: " : "",
              s->out.len > 0 ? shown(s->out.text, s->out.len) : "");
    }
    expect_hinted(strncmp(line, prefix, strlen(prefix)) == 0, HINT_LISTENING,
                  "the first line on stdout is \"%s\", expected \"%sPORT\"",
                  shown(line, strlen(line)), prefix);
    long port = strtol(line + strlen(prefix), &end, 10);
    expect_hinted(*end == '\0' && port > 0 && port < 65536, HINT_LISTENING,
                  "no port in the Listening line \"%s\"", shown(line, strlen(line)));
    s->port = (int)port;
}

void server_start_with_fd_limit(struct server *s, int fd_limit)
{
    const char *args[] = {"0", does->shuts_down ? "1000000" : NULL, NULL};

    spawn(s, NULL, args, fd_limit);
    s->started_plainly = true;
    server_wait_listening(s);
}

void server_start(struct server *s)
{
    server_start_with_fd_limit(s, 0);
}

/* Reaps the server if it has ended (options: WNOHANG), or waits until it ends (0); true once
   it is reaped. Its watcher is then told to stand down. */
static bool reap(struct server *s, int options)
{
    pid_t r;

    while ((r = waitpid(s->pid, &s->status, options)) < 0 && errno == EINTR)
        continue;
    if (r != s->pid)
        return false;
    s->pid = 0;
    watcher_stop(&s->watcher);
    return true;
}

bool server_wait_exit(struct server *s, int timeout_ms)
{
    s->exit_expected = true;
    return wait_for_exit(s, timeout_ms);
}

static bool wait_for_exit(struct server *s, int timeout_ms)
{
    long long deadline = deadline_in(timeout_ms);

    while (s->pid != 0) {
        if (reap(s, WNOHANG))
            break;
        if (ms_left(deadline) == 0)
            return false;
        /* Keep its pipes flowing while it finishes, and look again soon. */
        harness_poll(NULL, 0, 5);
    }
    output_pull(&s->out);
    output_pull(&s->err);
    return true;
}

/* How the server is now: "still running", "exited with status 1", "killed by SIGPIPE". */
static const char *say_state(char state[STATE_MAX], struct server *s)
{
    if (s->pid != 0)
        reap(s, WNOHANG);
    if (s->pid != 0)
        return "still running";
    if (WIFEXITED(s->status)) {
        snprintf(state, STATE_MAX, "exited with status %d", WEXITSTATUS(s->status));
    } else if (WIFSIGNALED(s->status)) {
        const char *name = signal_name(WTERMSIG(s->status));
        snprintf(state, STATE_MAX, "killed by %s (%s)", name != NULL ? name : "a signal",
                 strsignal(WTERMSIG(s->status)));
    } else {
        snprintf(state, STATE_MAX, "ended with status %#x", s->status);
    }
    return state;
}

/* Fails the test if the server has exited: the message says how it ended. */
static void expect_alive(struct server *s)
{
    expect(server_state(s)[0] == 's', "the server has ended");
}

void expect_exit_after_shutdown(struct server *s, const char *after)
{
    if (!server_printed(s, "Shutting down server, gracefully!", 0))
        return;
    note_cause("the server prints \"Shutting down server, gracefully!\", and then never exits: "
               "its drop waits for a worker that never leaves");
    flunk(HINT_DROP_HANGS,
          "after %s, the server printed \"Shutting down server, gracefully!\", and had not "
          "exited %d ms later",
          after, patience());
}

void server_stop(struct server *s)
{
    expect_alive(s);
    if (does->shuts_down) {
        /* From stage 08 on, SIGTERM shuts the server down gracefully: it must exit by itself
           with status 0, which under valgrind also says that it made no memory error and
           leaked nothing. Every test has its answers before it stops its server, so nothing
           is left to finish. */
        kill(s->pid, SIGTERM);
        if (!server_wait_exit(s, patience())) {
            note_timeout();
            expect_exit_after_shutdown(s, "SIGTERM");
            flunk(HINT_STOP_SIGNALS, "the server did not exit within %d ms of SIGTERM", patience());
        }
        expect(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0,
               "after SIGTERM, expected the server to exit with status 0");
        server_stop_exited(s);
        return;
    }
    kill(s->pid, SIGKILL);
    reap(s, 0);
    server_stop_exited(s);
}

void server_stop_exited(struct server *s)
{
    expect(s->pid == 0, "the server is still running");
    output_close(&s->out);
    output_close(&s->err);
    if (test.server == s)
        test.server = NULL;
}

/* A measure of the running server; the test fails when it cannot be taken. */
static void expect_measured(struct server *s, bool taken, const char *what)
{
    expect_alive(s);
    expect(taken, "cannot measure the server's %s (process %d)", what, (int)s->pid);
}

long server_peak_memory_kb(struct server *s)
{
    long kb = 0;
    expect_measured(s, measure_peak_memory_kb(s->pid, &kb), "peak memory");
    return kb;
}

long server_memory_kb(struct server *s)
{
    long kb = 0;
    expect_measured(s, measure_memory_kb(s->pid, &kb), "memory");
    return kb;
}

long server_threads(struct server *s)
{
    long count = 0;
    expect_measured(s, measure_threads(s->pid, &count), "threads");
    return count;
}

int server_open_files(struct server *s)
{
    int files = 0;
    expect_measured(s, measure_open_files(s->pid, &files), "open files");
    return files;
}

long long server_cpu_ms(struct server *s)
{
    long long ms = 0;
    expect_measured(s, measure_cpu_ms(s->pid, &ms), "CPU time");
    return ms;
}

const char *server_line(struct server *s, int timeout_ms)
{
    char *line = s->line;
    long long deadline = deadline_in(timeout_ms);
    struct output *o = &s->out;

    output_pull(o);
    for (;;) {
        char *start = o->text + o->seen;
        char *newline = memchr(start, '\n', o->len - o->seen);
        if (newline != NULL) {
            size_t n = (size_t)(newline - start);
            expect(n < sizeof s->line, "a log line of %zu bytes", n);
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

void expect_log_hinted(struct server *s, const char *expected, const char *hint)
{
    const char *line = server_line(s, patience());

    if (line == NULL)
        note_timeout();
    expect_hinted(line != NULL, hint,
                  "expected the log line \"%s\" on stdout, got none within %d ms", expected,
                  patience());
    expect_hinted(strcmp(line, expected) == 0, hint,
                  "expected the log line \"%s\" on stdout, got \"%s\"", expected,
                  shown(line, strlen(line)));
}

void expect_log(struct server *s, const char *expected)
{
    expect_log_hinted(s, expected, NULL);
}

int expect_worker_line(struct server *s, int timeout_ms)
{
    const char *line = server_line(s, timeout_ms);
    int id = line != NULL ? worker_in(line) : -1;

    expect(line != NULL,
           "expected a line \"Worker N got a job; executing...\", got none within %d ms",
           timeout_ms);
    expect(id >= 0 && id < tested.threads,
           "expected a line \"Worker N got a job; executing...\" with N from 0 to %d (a pool of "
           "%d), got \"%s\"",
           tested.threads - 1, tested.threads, shown(line, strlen(line)));
    return id;
}

void expect_quiet(struct server *s)
{
    output_pull(&s->out);
    const char *unseen = s->out.text + s->out.seen;
    if (s->out.seen != s->out.len)
        note_cause("it prints a line that stage %02d does not: \"%s\"", tested.stage,
                   shown(unseen, strcspn(unseen, "\n")));
    expect_hinted(
        s->out.seen == s->out.len,
        does->logs != LOGS_REQUEST && strncmp(unseen, "Request: [", 10) == 0 ? HINT_NO_PRINT : NULL,
        "unexpected output on stdout: %s", shown(unseen, s->out.len - s->out.seen));
}

const char *server_stderr(struct server *s)
{
    output_pull(&s->err);
    return s->err.text;
}

/* Waits up to timeout_ms until o holds text. */
static bool output_holds(struct output *o, const char *text, int timeout_ms)
{
    long long deadline = deadline_in(timeout_ms);

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

/* ---- Clients -------------------------------------------------------------------------- */

int client_connect(int port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct pollfd p = {.events = POLLOUT};
    int fd = socket(AF_INET, SOCK_STREAM, 0), error = 0;
    socklen_t size = sizeof error;

    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    expect(fd >= 0, "socket: %s", strerror(errno));
    /* Never to a server that has ended: its port is free, and another run's server (a grading
       beside this one) may have it now. */
    if (test.server != NULL && test.server->port == port)
        expect_alive(test.server);
    /* Never wait for good: a server whose backlog is full leaves a connect() hanging. */
    fcntl(fd, F_SETFL, O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        expect(errno == EINPROGRESS, "could not connect to 127.0.0.1:%d: %s", port,
               strerror(errno));
        p.fd = fd;
        if (harness_poll(&p, 1, patience()) <= 0) {
            note_timeout();
            close(fd);
            note_cause("%s", NO_LONGER_ACCEPTS);
            flunk(does->pool ? HINT_NOT_ACCEPTING : NULL,
                  "could not connect to 127.0.0.1:%d within %d ms: %s (its backlog is full: it "
                  "has stopped calling accept)",
                  port, patience(), NO_LONGER_ACCEPTS);
        }
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
        expect(error == 0, "could not connect to 127.0.0.1:%d: %s", port, strerror(error));
    }
    fcntl(fd, F_SETFL, 0);
    return fd;
}

bool client_send(int fd, const void *data, size_t len)
{
    const char *bytes = data;
    long long deadline = deadline_in(patience());
    struct pollfd p = {.fd = fd, .events = POLLOUT};

    while (len > 0) {
        /* Never block for good: a server that stops reading must fail the test, not hang it. */
        if (harness_poll(&p, 1, ms_left(deadline)) <= 0)
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

    note_sent(request, strlen(request));
    expect(client_send(fd, request, strlen(request)), "the server did not take the whole request");
    return fd;
}

void client_receive(int fd, struct reply *r, int timeout_ms)
{
    long long deadline = deadline_in(timeout_ms);
    struct pollfd p = {.fd = fd, .events = POLLIN};

    r->len = 0;
    r->closed = false;
    r->error = 0;
    while (r->len < sizeof r->bytes) {
        if (harness_poll(&p, 1, ms_left(deadline)) <= 0) {
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

    note_sent(request, len);
    /* A failed send is judged by the reply: a stage may close before reading everything. */
    client_send(fd, request, len);
    client_receive(fd, r, patience());
    close(fd);
    if (r->error == ETIMEDOUT)
        note_timeout();
}

const char *say_end(char end[END_MAX], const struct reply *r)
{
    if (r->closed)
        return "the server's end of stream";
    if (r->error == ETIMEDOUT)
        return "nothing: the connection was still open when the test stopped waiting";
    if (r->error == EMSGSIZE)
        return "nothing: more bytes came than any answer has";
    snprintf(end, END_MAX, "%s (%s)", r->error == ECONNRESET ? "a reset" : "an error",
             strerror(r->error));
    return end;
}

/* The hint for a reply that did not end as it should have. */
static const char *hint_for_end(const struct reply *r)
{
    if (r->error == ECONNRESET && does->routes[0].status_line != NULL)
        return HINT_RESET;
    if (r->error == ETIMEDOUT && does->routes[0].status_line != NULL)
        return r->len > 0 ? HINT_CLOSE : HINT_NO_ANSWER;
    return NULL;
}

/* The header lines of an answer: from after its status line up to its empty line. False
   when it has no whole head. */
static bool header_lines(const char *bytes, size_t len, const char **start, const char **end)
{
    const char *line_end = memchr(bytes, '\n', len);

    for (const char *at = bytes; at + 4 <= bytes + len; at++) {
        if (memcmp(at, "\r\n\r\n", 4) == 0 && line_end != NULL) {
            *start = line_end + 1;
            *end = at + 2;
            return true;
        }
    }
    return false;
}

/* Whether the header line at line (up to its "\r\n") is among the lines [start, end). */
static bool has_header(const char *start, const char *end, const char *line, size_t len)
{
    for (const char *at = start; at < end;) {
        const char *next = memchr(at, '\n', (size_t)(end - at));
        size_t n = next != NULL ? (size_t)(next + 1 - at) : (size_t)(end - at);
        if (n == len && memcmp(at, line, len) == 0)
            return true;
        at += n;
    }
    return false;
}

/* Notes what makes an answer differ from the expected one, where it is the same whatever was
   asked: a header line that the stage does not send, or one it sends that is missing (the
   length aside, which follows the page). */
static void note_reply_difference(const struct reply *r, const char *expected, size_t len)
{
    const char *got_start, *got_end, *want_start, *want_end;

    if (!header_lines(r->bytes, r->len, &got_start, &got_end) ||
        !header_lines(expected, len, &want_start, &want_end))
        return;
    for (int pass = 0; pass < 2; pass++) {
        const char *start = pass == 0 ? got_start : want_start;
        const char *end = pass == 0 ? got_end : want_end;
        for (const char *at = start; at < end;) {
            const char *next = memchr(at, '\n', (size_t)(end - at));
            size_t n = next != NULL ? (size_t)(next + 1 - at) : (size_t)(end - at);
            bool length = n > 15 && strncmp(at, "Content-Length:", 15) == 0;
            if (!length && pass == 0 && !has_header(want_start, want_end, at, n)) {
                note_cause("its answers carry a header line that stage %02d does not send: "
                           "\"%s\"",
                           tested.stage, shown(at, n > 2 ? n - 2 : n));
                return;
            }
            if (!length && pass == 1 && !has_header(got_start, got_end, at, n)) {
                note_cause("its answers lack a header line that stage %02d sends: \"%s\"",
                           tested.stage, shown(at, n > 2 ? n - 2 : n));
                return;
            }
            at += n;
        }
    }
}

void expect_reply(const struct reply *r, const char *expected, size_t len)
{
    if (r->len != len || memcmp(r->bytes, expected, len) != 0)
        note_reply_difference(r, expected, len);
    expect_hinted(r->len == len && memcmp(r->bytes, expected, len) == 0, hint_for_end(r),
                  "expected the answer \"%s\", got \"%s\", ended by %s", shown(expected, len),
                  shown(r->bytes, r->len), reply_end(r));
    expect_hinted(r->closed, hint_for_end(r),
                  "the answer was right, but then came %s, not a clean end of stream",
                  reply_end(r));
}

size_t page_response(const char *status_line, const char *path, char *buf, size_t cap)
{
    char page[16384];
    char full[4096];
    FILE *file;

    snprintf(full, sizeof full, "%s/%s", tested.root_dir, path);
    file = fopen(full, "rb");
    expect(file != NULL, "%s: %s", full, strerror(errno));
    size_t n = fread(page, 1, sizeof page, file);
    fclose(file);
    int head = snprintf(buf, cap, "%s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                        status_line, n);
    expect(head > 0 && (size_t)head + n <= cap, "no room for %s", path);
    memcpy(buf + head, page, n);
    return (size_t)head + n;
}

/* The status code of an answer that starts "HTTP/1.1 NNN ", or 0. */
static int status_code(const struct reply *r)
{
    if (r->len < 13 || memcmp(r->bytes, "HTTP/1.1 ", 9) != 0 || r->bytes[12] != ' ')
        return 0;
    return atoi(r->bytes + 9);
}

void expect_page(const struct reply *r, const char *status_line, const char *path)
{
    char expected[20000];
    size_t len = page_response(status_line, path, expected, sizeof expected);
    int wanted = atoi(status_line + strlen("HTTP/1.1 ")), got = status_code(r);
    const char *hint = hint_for_end(r);

    /* The hello page where the 404 page was due, or the other way round, from a stage that
       routes by the request line. */
    if (hint == NULL && does->routes[0].request_line != NULL && got != wanted &&
        (got == 200 || got == 404) && (wanted == 200 || wanted == 404))
        hint = HINT_EXACT_LINE;
    if (r->len != len || memcmp(r->bytes, expected, len) != 0)
        note_reply_difference(r, expected, len);
    expect_hinted(r->len == len && memcmp(r->bytes, expected, len) == 0, hint,
                  "expected \"%s\" and %s (%zu bytes in all), got \"%s\", ended by %s", status_line,
                  path, len, shown(r->bytes, r->len), reply_end(r));
    expect_hinted(r->closed, hint_for_end(r),
                  "the answer was right, but then came %s, not a clean end of stream",
                  reply_end(r));
}

void expect_status(const struct reply *r, const char *status_line)
{
    char expected[256];
    int n = snprintf(expected, sizeof expected, "%s\r\nContent-Length: ", status_line);
    const char *rest = "\r\nConnection: close\r\n\r\n";
    const char *at = r->bytes + n;
    long length = 0;

    expect_hinted(r->len > (size_t)n && memcmp(r->bytes, expected, (size_t)n) == 0, hint_for_end(r),
                  "expected an answer that starts \"%s\", got \"%s\", ended by %s",
                  shown(expected, (size_t)n), shown(r->bytes, r->len), reply_end(r));
    while (at < r->bytes + r->len && *at >= '0' && *at <= '9')
        length = length * 10 + (*at++ - '0');
    /* Its headers are the same whatever the body: the page's answer says what differs. */
    char page[20000];
    size_t page_len = page_response(status_line, "www/404.html", page, sizeof page);
    note_reply_difference(r, page, page_len);
    expect((size_t)(r->bytes + r->len - at) == strlen(rest) + (size_t)length &&
               memcmp(at, rest, strlen(rest)) == 0 && length > 0,
           "expected \"Content-Length: N\\r\\nConnection: close\\r\\n\\r\\n\" and a body of N "
           "bytes (N > 0), got \"%s\"",
           shown(r->bytes, r->len));
    expect_hinted(r->closed, hint_for_end(r),
                  "the answer was right, but then came %s, not a clean end of stream",
                  reply_end(r));
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
    note_case("16 KiB of header lines \"X-Fill: a\\n\", with no empty line among them");
}

/* Asserts that the server's stdout, as it is now, ends with these lines: a stage that logs
   each connection logs the normal request last, after whatever came before it. */
static void expect_log_ends_with(struct server *s, const char *const lines[], size_t n)
{
    struct output *o = &s->out;
    size_t start, count = 0;

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
        expect(count == n && strncmp(o->text + at, lines[i], len) == 0 && o->text[at + len] == '\n',
               "expected stdout to end with \"%s\" and the %zu lines after it; it ends: %s",
               lines[0], n - 1, shown(o->text + o->seen, o->len - o->seen));
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
        if (id < 0 || id >= tested.threads)
            note_cause("it prints a line that is no \"Worker N got a job; executing...\" line: "
                       "\"%s\"",
                       shown(line, strlen(line)));
        expect(id >= 0 && id < tested.threads,
               "expected only lines \"Worker N got a job; executing...\" with N from 0 to %d (a "
               "pool of %d), got \"%s\"",
               tested.threads - 1, tested.threads, shown(line, strlen(line)));
        count++;
    }
    expect(count > 0, "no \"Worker N got a job; executing...\" line for the request");
}

void expect_served(struct server *s)
{
    static const char *const connection[] = {"connection established"};
    static const char *const request[] = {"Request: [", "    \"GET / HTTP/1.1\",",
                                          "    \"Host: 127.0.0.1\",", "]"};
    struct reply r;

    expect_alive(s);
    int fd = client_connect(s->port);
    note_sent(NORMAL_REQUEST, strlen(NORMAL_REQUEST));
    client_send(fd, NORMAL_REQUEST, strlen(NORMAL_REQUEST));
    client_receive(fd, &r, patience());
    close(fd);
    if (r.error == ETIMEDOUT)
        note_timeout();
    expect_alive(s); /* a server that dies on this request leaves an empty reply */
    expect_answer_to(&r, NORMAL_REQUEST);
    /* The log line may come a moment after the answer. */
    server_printed(s, "\n", 0);
    if (does->logs == LOGS_CONNECTION)
        expect_log_ends_with(s, connection, 1);
    else if (does->logs == LOGS_REQUEST)
        expect_log_ends_with(s, request, 4);
    else if (does->logs == LOGS_NOTHING)
        expect_quiet(s);
    else
        expect_only_worker_lines(s);
}

void receive_each(const int fds[], struct reply replies[], long long ended_ms[], int n,
                  long long start_ms, int timeout_ms)
{
    long long deadline = deadline_in(timeout_ms);
    struct pollfd p[16];
    int open = n;

    expect(n <= 16, "too many connections for receive_each");
    for (int i = 0; i < n; i++) {
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        replies[i] = (struct reply){.len = 0};
        ended_ms[i] = -1;
    }
    while (open > 0 && harness_poll(p, (nfds_t)n, ms_left(deadline)) > 0) {
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

    expect(n <= IDLE_MAX, "too many idle clients");
    c->n = c->open = n;
    for (int i = 0; i < n; i++) {
        c->fds[i] = client_connect(port);
        if (i % 2 == 0)
            expect(client_send(c->fds[i], start, strlen(start)), "an idle client could not send");
    }
    note_case("%d idle clients: %d send \"%s\" and then one byte every tenth of a second, %d "
              "send nothing",
              n, (n + 1) / 2, shown(start, strlen(start)), n / 2);
}

void idle_tick(struct idle_clients *c, int ms)
{
    char scrap[256];

    harness_poll(NULL, 0, ms);
    for (int i = 0; i < c->n; i++) {
        if (c->fds[i] < 0)
            continue;
        /* A server that gave up on the client closes the connection: a read sees its end
           (or a reset), where a connection still open has nothing to read. */
        ssize_t n = recv(c->fds[i], scrap, sizeof scrap, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (i % 2 == 0)
                send(c->fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            continue;
        }
        expect(n <= 0, "an idle client, which never finished its head, got an answer: \"%s\"",
               shown(scrap, (size_t)n));
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
    expect(capture != NULL, "tmpfile: %s", strerror(errno));
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

/* A drop, run by a thread of its own so that the test can stop waiting for it. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t returned;
    bool done;
    ThreadPool *pool;
} dropping = {.lock = PTHREAD_MUTEX_INITIALIZER, .returned = PTHREAD_COND_INITIALIZER};

static void *drop_pool(void *arg)
{
    (void)arg;
    thread_pool_drop(dropping.pool);
    pthread_mutex_lock(&dropping.lock);
    dropping.done = true;
    pthread_cond_signal(&dropping.returned);
    pthread_mutex_unlock(&dropping.lock);
    return NULL;
}

struct timespec realtime_in(int ms)
{
    struct timespec t;

    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

void drop_pool_within(ThreadPool *pool, int timeout_ms, const char *what)
{
    struct timespec deadline = realtime_in(timeout_ms);
    pthread_t thread;
    int error = 0;

    dropping.pool = pool;
    dropping.done = false;
    expect(pthread_create(&thread, NULL, drop_pool, NULL) == 0, "pthread_create failed");
    pthread_mutex_lock(&dropping.lock);
    while (!dropping.done && error == 0)
        error = pthread_cond_timedwait(&dropping.returned, &dropping.lock, &deadline);
    bool done = dropping.done;
    pthread_mutex_unlock(&dropping.lock);
    /* A drop that never returns keeps its thread: the test process ends with the test. */
    expect_hinted(done, HINT_DROP_HANGS, "%s: thread_pool_drop did not return within %d ms", what,
                  timeout_ms);
    pthread_join(thread, NULL);
}

static int report_stdout = -1;

/* A crash in the pool's code, in the test process: said as a failure of the test, with the
   usual cause, where Check alone would say "Received signal 11". (Not async-signal-safe, but
   the process is lost anyway; a second fault kills it at once.) */
static void pool_crashed(int signal)
{
    const char *name = signal_name(signal);

    flunk(HINT_POOL_CRASHED,
          "the test process died of %s (%s) while it called the pool, or a job "
          "the pool ran",
          name != NULL ? name : "a signal", strsignal(signal));
}

/* The watchdog of a test that calls a pool: a call that never returns (a mutex never
   unlocked, a wait never signalled) fails the test, saying so, before Check's time limit
   would stop it with no word of what it waited for. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t over;
    bool test_over;
    pthread_t thread;
} watchdog = {.lock = PTHREAD_MUTEX_INITIALIZER, .over = PTHREAD_COND_INITIALIZER};

/* Longer than any call of a pool's should take, by far. */
#define POOL_CALL_PATIENCES 5

static void *watch_pool_test(void *arg)
{
    int waited = ms_left(deadline_in((long long)POOL_CALL_PATIENCES * patience()));
    struct timespec deadline = realtime_in(waited);
    int error = 0;

    (void)arg;
    pthread_mutex_lock(&watchdog.lock);
    while (!watchdog.test_over && error == 0)
        error = pthread_cond_timedwait(&watchdog.over, &watchdog.lock, &deadline);
    bool over = watchdog.test_over;
    pthread_mutex_unlock(&watchdog.lock);
    if (!over)
        note_timeout();
    if (!over)
        flunk(HINT_POOL_HANGS,
              "the test is still waiting for the pool after %d ms: one of its calls "
              "(thread_pool_new, thread_pool_execute, thread_pool_drop), or a job it ran, never "
              "returned",
              waited);
    return NULL;
}

void pool_test_setup(void)
{
    struct sigaction crash = {.sa_handler = pool_crashed, .sa_flags = SA_RESETHAND};
    const int faults[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    FILE *aside = tmpfile();

    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigaction(faults[i], &crash, NULL);

    fflush(stdout);
    report_stdout = dup(STDOUT_FILENO);
    if (aside != NULL)
        dup2(fileno(aside), STDOUT_FILENO); /* the file lives as long as the test */
    watchdog.test_over = false;
    if (pthread_create(&watchdog.thread, NULL, watch_pool_test, NULL) != 0)
        flunk(NULL, "cannot start the test's watchdog thread");
}

void pool_test_teardown(void)
{
    pthread_mutex_lock(&watchdog.lock);
    watchdog.test_over = true;
    pthread_cond_signal(&watchdog.over);
    pthread_mutex_unlock(&watchdog.lock);
    pthread_join(watchdog.thread, NULL);
    fflush(stdout);
    if (report_stdout >= 0) {
        dup2(report_stdout, STDOUT_FILENO);
        close(report_stdout);
        report_stdout = -1;
    }
}

long long root_behind_sleep(struct server *s)
{
    static struct reply replies[2];
    long long ended[2];
    int fds[2];

    fds[0] = client_request(s->port, SLEEP_REQUEST);
    long long start = now_ms();
    fds[1] = client_request(s->port, NORMAL_REQUEST);
    note_case("GET /sleep, then GET / on a second connection");
    receive_each(fds, replies, ended, 2, start, tested.sleep_seconds * 1000 + patience());
    for (int i = 0; i < 2; i++) {
        close(fds[i]);
        note_case("%s, while %s waited", i == 0 ? "GET /sleep" : "GET /",
                  i == 0 ? "GET /" : "GET /sleep");
        expect_page(&replies[i], "HTTP/1.1 200 OK", "www/hello.html");
    }
    char hint[400];
    expect_hinted(
        ended[0] >= tested.sleep_seconds * 900,
        timing_hint(hint, sizeof hint, "SLEEP_SECONDS", tested.sleep_seconds, ended[0], NULL),
        "GET /sleep was answered after %lld ms, not %d s", ended[0], tested.sleep_seconds);
    return ended[1];
}

const char *timing_hint(char *buf, size_t cap, const char *name, int assumed, long long took_ms,
                        const char *otherwise)
{
    long long seconds = (took_ms + 500) / 1000, off = took_ms - seconds * 1000;

    if (seconds < 1 || seconds == assumed || off > seconds * 100 + 200 ||
        -off > seconds * 100 + 200)
        return otherwise;
    snprintf(buf, cap,
             "That is about %lld s, where the tests take the server's %s to be %d s. If %lld s is "
             "the server's own, say so: SERVER_%s=%lld, for make check-stepNN and make grade.",
             seconds, name, assumed, seconds, name, seconds);
    return buf;
}
