/*
 * The test harness: runs a stage's real binary (or a student's), talks to it over raw TCP,
 * reads what it logs, and says what went wrong when a test fails. Every test uses it; see
 * README.md beside this file.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include "system.h"

#include <check.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* What the run tests, and at which numbers: set by the runner before the first test, and only
   read after that. */
struct tested {
    /* The stage whose behaviour the tests expect, and the binary that should show it. */
    int stage;
    const char *server_path;
    /* The repository root, where www/ is: servers run from there unless a test says
       otherwise. */
    const char *root_dir;
    /* How long the server under test takes for GET /sleep, and how long it waits for a
       request head (stage 06 on): from SLEEP_SECONDS and HEAD_TIMEOUT_SECONDS in the
       environment, which make sets; the stages' own values (5 s each) otherwise. Every wait
       for something slow is derived from these. */
    int sleep_seconds, head_timeout_seconds;
    /* From stage 07 on, the server's pool size (its THREAD_COUNT) and, from stage 08, the
       number of connections it serves when no REQUESTS is given (its DEFAULT_REQUESTS): from
       THREADS and REQUESTS in the environment, which make reads from the stage's main.c
       (SERVER_THREADS and SERVER_REQUESTS for a server of your own); 4 each otherwise. At most
       THREADS_MAX: the tests open a few more connections than there are workers, up to
       IDLE_MAX. */
    int threads, default_requests;
    /* Check's CK_TIMEOUT_MULTIPLIER (1 unless set): every wait is scaled by it. */
    double time_multiplier;
};
extern struct tested tested;
#define THREADS_MAX 14

/* ---- Time ----------------------------------------------------------------------------- */

/* The monotonic clock, in milliseconds. */
long long now_ms(void);
/* How long to wait for anything a healthy server does at once: 3 s. Once a few such waits in
   this run have timed out, the server is not healthy, and the rest wait 0.5 s, so that a
   broken server is graded in bounded time. (Both scaled by the multiplier.) */
int patience(void);
/* The deadline for a wait of ms from now: never later than the end of the test (so that a
   test fails with its own message before Check's timeout) or of the whole run. */
long long deadline_in(long long ms);
/* Milliseconds left before deadline, for poll(): never negative. */
int ms_left(long long deadline);
/* The time ms from now on the clock that pthread_cond_timedwait reads (CLOCK_REALTIME), to
   the millisecond, so that a short wait never rounds down to none. */
struct timespec realtime_in(int ms);
/* Records that a wait for something a healthy server does at once timed out. */
void note_timeout(void);
/* poll(), for the tests' waits: while it waits for fds, or only for timeout_ms when n is 0,
   it reads what the server under test writes, so that the server never blocks on a full
   pipe, whatever the pipe's size on this system. Returns how many of fds are ready, 0 when
   the wait timed out, -1 on an error. */
int harness_poll(struct pollfd fds[], nfds_t n, int timeout_ms);

/* How long a test may take before Check stops it, in seconds, from the timings above. */
double test_timeout_seconds(void);

/* The runner calls these: harness_begin() before the tests (the state shared by every test
   it runs), harness_test_setup() at the start of each test (Check's checked fixture),
   harness_end() after them all (removes the scratch folder, reports the run). */
void harness_begin(void);
void harness_test_setup(void);
void harness_end(void);
/* A folder of its own for the test, inside the run's scratch folder, removed by
   harness_end() whatever happens to the test. Its path is the test's, until it asks for
   another. */
const char *scratch_folder(const char *name);

/* ---- Failures ------------------------------------------------------------------------- */

/* Fails the test with a message that also says what the test last sent, how the server is
   (running, exited, killed by a signal), what it wrote on stderr, and a hint at the lesson
   to read (hint may be NULL; one is added by itself for a few mistakes, such as a server
   killed by SIGPIPE). */
void flunk_at(const char *file, int line, const char *hint, const char *format,
              ...) CK_ATTRIBUTE_NORETURN CK_ATTRIBUTE_FORMAT(printf, 4, 5);
#define flunk(hint, ...) flunk_at(__FILE__, __LINE__, hint, __VA_ARGS__)
#define expect(condition, ...)                                                                     \
    ((condition) ? (void)0 : flunk_at(__FILE__, __LINE__, NULL, __VA_ARGS__))
#define expect_hinted(condition, hint, ...)                                                        \
    ((condition) ? (void)0 : flunk_at(__FILE__, __LINE__, hint, __VA_ARGS__))

/* Says what caused the failure about to be said, in words that stay the same from test to
   test (a header the stage does not send, a line it does not print), so that the failures of
   one cause are counted together at the end of the run; the harness notes it by itself for a
   server that crashed, exited or spins, and for a reply whose headers differ. */
#define CAUSE_MAX 240
void note_cause(const char *format, ...) CK_ATTRIBUTE_FORMAT(printf, 1, 2);
/* For the runner, after the tests: how many failed, and failure i's cause ("" if none) and
   test (its place in the order the tests ran). */
int harness_failures(void);
const char *harness_failure_cause(int i, int *test);

/* Says what the test is sending, for the failure messages: the bytes of a request (the
   harness notes the requests it sends itself), or the name of a case. */
void note_sent(const void *bytes, size_t len);
void note_case(const char *format, ...) CK_ATTRIBUTE_FORMAT(printf, 1, 2);

/* The hints: each names the mistake it suspects and the lesson section that explains it. */
extern const char HINT_LISTENING[], HINT_SETUP[], HINT_LOOPBACK[], HINT_RESET[], HINT_SIGPIPE[],
    HINT_CLOSE[], HINT_NO_ANSWER[], HINT_NO_PRINT[], HINT_HEAD_MAX[], HINT_PAGE_ERROR[],
    HINT_EXACT_LINE[], HINT_HEAD_TIMEOUT[], HINT_LOCK_HELD[], HINT_POOL_SIZE[],
    HINT_THREAD_PER_CONNECTION[], HINT_NO_JOIN[], HINT_QUEUED_JOBS[], HINT_STOP_SIGNALS[],
    HINT_CRASHED[], HINT_EXITED[], HINT_SPINNING[], HINT_TIMINGS[], HINT_DROP_HANGS[],
    HINT_POOL_CRASHED[], HINT_DROP_FREES[], HINT_NOT_ACCEPTING[], HINT_REQUESTS[],
    HINT_POOL_HANGS[], HINT_READ_LOOP[];

/* Formats bytes for a failure message into buf: printable ASCII as is, the rest as \xNN;
   returns buf. shown() does it into a buffer of the caller's own (a compound literal, which
   lives until the end of the caller's block), so that one message may show any number of
   byte strings. */
#define SHOWN_MAX 1200
const char *show_bytes(char buf[SHOWN_MAX], const char *bytes, size_t len);
#define shown(bytes, len) show_bytes((char[SHOWN_MAX]){""}, bytes, len)

/* ---- Servers -------------------------------------------------------------------------- */

/* What a process wrote to one of its outputs, and how much of it the test has consumed. */
struct output {
    int fd; /* read end of the pipe, non-blocking; -1 once closed */
    char *text;
    size_t len, cap, seen;
};

struct server {
    pid_t pid; /* 0 once reaped */
    struct watcher watcher;
    int status;
    bool exit_expected;   /* the test waits for it to exit (server_wait_exit) */
    bool started_plainly; /* by server_start: port 0 (and from stage 08, a REQUESTS no test
                             reaches) */
    int port;
    struct output out, err;
    char line[8192 * 5]; /* server_line()'s */
};

/* Starts the server in dir (NULL: the repository root) with the arguments args (after the
   program name, NULL-terminated). Does not wait for it to listen. */
void server_spawn(struct server *s, const char *dir, const char *const args[]);
/* Starts the server on port 0 in the repository root and waits for its Listening line (from
   stage 08 on, with a REQUESTS count larger than any test makes). */
void server_start(struct server *s);
/* The same, with the server allowed at most fd_limit open files. */
void server_start_with_fd_limit(struct server *s, int fd_limit);
/* Reads the Listening line, which must be the first line on stdout, and takes the port. */
void server_wait_listening(struct server *s);
/* Waits up to timeout_ms for the server to exit, as the test expects it to (a failure after
   that is not blamed on the exit); returns false if it has not. */
bool server_wait_exit(struct server *s, int timeout_ms);
/* Asserts the server is still running (it did not crash), then stops and reaps it; from
   stage 08 on, stops it with SIGTERM and asserts that it exits with status 0. */
void server_stop(struct server *s);
/* For a server that has not exited when it should have (after a signal, or its last request,
   said by after): if it announced its shutdown, fails the test, saying that its drop hangs. */
void expect_exit_after_shutdown(struct server *s, const char *after);
/* Releases what the harness holds for a server that has exited (server_wait_exit). */
void server_stop_exited(struct server *s);
/* Measures of the running server (system.h), for the tests of MEASURING_TESTS, which run only
   where the system can take them: its peak and current memory in kB, its threads, its open
   files, and the CPU time it has used so far, in milliseconds. */
long server_peak_memory_kb(struct server *s);
long server_memory_kb(struct server *s);
long server_threads(struct server *s);
int server_open_files(struct server *s);
long long server_cpu_ms(struct server *s);

/* The next whole line the server printed on stdout (without its '\n'), waiting up to
   timeout_ms; NULL if none came. The text is the server's (s->line) until the next call. */
const char *server_line(struct server *s, int timeout_ms);
/* The worker id in a line "Worker N got a job; executing...", or -1 for any other line. */
int worker_in(const char *line);
/* Asserts that the next stdout line is exactly line; with the hint, if it is not. */
void expect_log(struct server *s, const char *line);
void expect_log_hinted(struct server *s, const char *line, const char *hint);
/* Asserts that the next stdout line is a worker's "Worker N got a job; executing..." line,
   N from 0 to 3, waiting up to timeout_ms; returns N. */
int expect_worker_line(struct server *s, int timeout_ms);
/* Asserts that the server has printed nothing on stdout that the test has not consumed. */
void expect_quiet(struct server *s);
/* Everything the server has printed on stderr so far. */
const char *server_stderr(struct server *s);
/* Waits up to timeout_ms until the server's stderr contains text. */
bool server_said(struct server *s, const char *text, int timeout_ms);
/* The same for its stdout, whether or not the test has read that far with server_line. */
bool server_printed(struct server *s, const char *text, int timeout_ms);

/* ---- Clients -------------------------------------------------------------------------- */

/* What a client received on one connection. */
#define REPLY_MAX 65536
struct reply {
    char bytes[REPLY_MAX];
    size_t len;
    bool closed; /* ended by the server's end-of-stream (FIN) */
    int error;   /* or by this errno, e.g. ECONNRESET; ETIMEDOUT when it did not end */
};

/* The most a stage reads as a request head, empty line included: a longer head is refused. */
#define HEAD_MAX 8192
/* The longest a stage's graceful close may go on reading what a client still sends, and the
   most bytes it reads then. A client that sends more may see its connection reset after the
   answer. */
#define LINGER_MS_MAX 2000
#define LINGER_MAX (8 * 4096)

/* A connected client socket; the test fails if the server does not accept. */
int client_connect(int port);
/* Sends all of data; false if the server closed or reset the connection first, or took
   nothing for patience() ms. */
bool client_send(int fd, const void *data, size_t len);
/* Connects and sends the whole request; the test fails if the server does not take it. */
int client_request(int port, const char *request);
/* Reads until the server ends the stream, an error, or timeout_ms; fills r. */
void client_receive(int fd, struct reply *r, int timeout_ms);
/* Closes the socket with a reset (RST) instead of a normal end. */
void client_reset(int fd);
/* Connects, sends request, reads the whole reply (up to patience() ms) and closes. */
void exchange(struct server *s, const void *request, size_t len, struct reply *r);
/* How a reply ended, for a message, written into buf: "the server's end of stream", "a reset
   (...)". reply_end() writes it into a buffer of the caller's own, as shown() does. */
#define END_MAX 96
const char *say_end(char buf[END_MAX], const struct reply *r);
#define reply_end(r) say_end((char[END_MAX]){""}, r)

/* Asserts that the reply is exactly the bytes expected, then a clean end of stream. */
void expect_reply(const struct reply *r, const char *expected, size_t len);
/* The response the stage sends with the page at path: status line, headers, page. */
size_t page_response(const char *status_line, const char *path, char *buf, size_t cap);
/* Asserts that the reply is exactly that response. */
void expect_page(const struct reply *r, const char *status_line, const char *path);
/* Asserts that the reply is status_line, headers that give the length of the body that
   follows (not empty) and close the connection, that body, and a clean end of stream. */
void expect_status(const struct reply *r, const char *status_line);

/* Fills buf with header lines ("X-Fill: a\n") that never end the head. */
void fill_with_headers(char *buf, size_t size);
/* Sends 16 KiB of such lines, more than any stage reads as a head, and reads the answer. */
void exchange_oversized_head(struct server *s, struct reply *r);

/* The request every stage must serve. expect_served() sends it and asserts what the stage
   does with it (stages.c): the answer and the log lines. Tests of bad input finish with it,
   to prove that the server still serves. */
#define NORMAL_REQUEST "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
/* A request that no route of any stage answers: from stage 05 on, the 404 page. */
#define NOT_FOUND_REQUEST "GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
void expect_served(struct server *s);

/* ---- What each stage does (stages.c) -------------------------------------------------- */

/* A stage answers a request whose line is exactly request_line (without its line end; NULL:
   any line no route before it has) with status_line, then, if page is not NULL, its headers
   and that page (see page_response). */
struct route {
    const char *request_line, *status_line, *page;
    bool slow; /* the answer comes after SLEEP_SECONDS */
};
/* What a stage prints on stdout for each connection: "connection established", the request
   ("Request: [" and its lines), nothing, or its worker's "Worker N got a job; executing...". */
enum logs { LOGS_CONNECTION, LOGS_REQUEST, LOGS_NOTHING, LOGS_WORKER };
struct stage_does {
    bool reads_head; /* reads a request head (else it closes each connection at once) */
    enum logs logs;
    const char *no_page;   /* the status line when a page cannot be read */
    const char *too_large; /* the status line for a head over HEAD_MAX; NULL: closes */
    bool head_timeout;     /* closes a connection whose head takes HEAD_TIMEOUT_SECONDS */
    bool pool;             /* serves with a pool of `threads` workers */
    bool shuts_down;       /* after REQUESTS connections, SIGINT or SIGTERM, and exits 0 */
    /* The first route whose line matches answers; no route: the stage sends nothing. The
       list ends with a route whose status_line is NULL. */
    const struct route *routes;
};
/* The stage under test (stage_does_set, by the runner). */
extern const struct stage_does *does;
void stage_does_set(int number);
/* The route that answers a head (its first len bytes), or NULL: the stage sends nothing. */
const struct route *route_for(const char *head, size_t len);
/* Asserts that the reply is the answer the stage owes to input (its first n bytes, of total,
   the whole stream the client sent, ended by the client's end of stream), then the end of the
   connection: a clean end of stream, or, for an input longer than the stage reads and throws
   away, a reset after the whole answer. what names the input. Returns whether the stage reads
   a whole head in input (and so, before stage 05, prints it). */
bool expect_answer(const struct reply *r, const char *input, size_t n, size_t total,
                   const char *what);
/* The same for a whole request, a string. */
void expect_answer_to(const struct reply *r, const char *request);
/* Sends request on a connection of its own, and asserts that the stage answers it as it owes. */
void expect_answered(struct server *s, const char *request);

/* A slow request (stage 06 on), and a measure of the lesson it teaches: sends GET /sleep,
   then GET / on a second connection, and reads both answers, which must be the hello page
   (with /sleep taking its time). Returns how long GET / took, in milliseconds. */
#define SLEEP_REQUEST "GET /sleep HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
long long root_behind_sleep(struct server *s);

/* The hint for a wait that did not last as long as a timing (SLEEP_SECONDS or
   HEAD_TIMEOUT_SECONDS, which the tests assume to be `assumed` seconds) says: when the time the
   server took, took_ms, is close to another whole number of seconds, the server may keep other
   timings, and the hint (written into buf) says how to state them; otherwise, `otherwise`. */
const char *timing_hint(char *buf, size_t cap, const char *name, int assumed, long long took_ms,
                        const char *otherwise);

/* Idle clients (stage 06 on): every other one, from the first, trickles a head that never
   ends, a byte at each idle_tick(); the rest send nothing. Each one holds a thread until the
   head timeout. */
#define IDLE_MAX 16
struct idle_clients {
    int n;
    int fds[IDLE_MAX]; /* -1 once the server has closed the connection */
    int open;          /* how many the server has not closed yet */
};
void idle_open(struct idle_clients *c, int n, int port);
/* Waits ms, then sends each trickling client's next byte and notes the connections the
   server has closed. */
void idle_tick(struct idle_clients *c, int ms);
void idle_close(struct idle_clients *c);

/* Reads from n connections at once until each has ended, an error, or timeout_ms; records
   when each reply ended, in milliseconds since start_ms (-1 for one that did not end). */
void receive_each(const int fds[], struct reply replies[], long long ended_ms[], int n,
                  long long start_ms, int timeout_ms);

/* Sends what this process prints on stdout to a temporary file until stdout_captured(),
   which returns all of it (a thread pool prints its log lines there). */
void capture_stdout(void);
const char *stdout_captured(void);
/* The checked fixture of the tests that call a pool: whatever the pool prints, outside the
   tests' captures too (a worker still running after its test, a line of its own), goes to a
   file of its own, never into the runner's report. */
void pool_test_setup(void);
void pool_test_teardown(void);

/* Declares a test of the table in tests.h. */
#define TEST(name) void name(int _i CK_ATTRIBUTE_UNUSED)

#endif
