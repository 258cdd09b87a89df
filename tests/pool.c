/*
 * Lesson 07, pool: four workers serve four requests at once, a fifth waits for a free one,
 * a slow request no longer holds up a fast one, and a client that sends nothing is dropped.
 * Then the pool itself, through its API: every job runs once, four at a time, and a job may
 * queue another.
 */
#include "harness.h"
#include "pool_api.h"
#include "tests.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

TEST(root_does_not_wait_for_sleep)
{
    struct server s;

    server_start(&s);
    long long took = root_behind_sleep(&s);
    /* Another worker takes GET / while the first one sleeps. */
    ck_assert_msg(took < sleep_seconds * 500, "GET / took %lld ms: it waited for GET /sleep", took);
    server_stop(&s);
}

static int compare_times(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

TEST(four_slow_requests_at_once_fifth_waits)
{
    static struct reply replies[5];
    long long ended[5];
    int fds[5];
    bool seen[4] = {false};
    struct server s;

    server_start(&s);
    long long start = now_ms();
    for (int i = 0; i < 5; i++)
        fds[i] = client_request(s.port, SLEEP_REQUEST);
    receive_each(fds, replies, ended, 5, start, 6 * sleep_seconds * 1000 + wait_ms);
    for (int i = 0; i < 5; i++) {
        close(fds[i]);
        expect_page(&replies[i], "HTTP/1.1 200 OK", "www/hello.html");
    }
    /* Four end together, after one sleep; the fifth needs a second one. The margins are
       wide, so that a loaded machine cannot fail this, and a server that is not exactly four
       workers wide cannot pass it. */
    qsort(ended, 5, sizeof ended[0], compare_times);
    ck_assert_msg(ended[3] * 2 < ended[0] * 3,
                  "the first four answers ended at %lld and %lld ms: not all at once", ended[0],
                  ended[3]);
    ck_assert_msg(ended[4] * 2 >= ended[0] * 3,
                  "the fifth answer ended at %lld ms, the first at %lld: it did not wait", ended[4],
                  ended[0]);
    /* Each of the four workers logged one of the first four jobs. */
    for (int i = 0; i < 4; i++) {
        const char *line = server_line(&s, wait_ms);
        int id = line != NULL ? worker_in(line) : -1;
        ck_assert_msg(id >= 0 && id < 4 && !seen[id],
                      "expected a line from a fourth worker, "
                      "got \"%s\"",
                      line != NULL ? line : "nothing");
        seen[id] = true;
    }
    ck_assert_int_ge(worker_in(server_line(&s, wait_ms)), 0);
    expect_quiet(&s);
    server_stop(&s);
}

TEST(silent_clients_are_dropped)
{
    int silent[4];
    struct server s;
    struct reply r;

    server_start(&s);
    /* One silent client per worker: each holds its worker until the head timeout. */
    for (int i = 0; i < 4; i++)
        silent[i] = client_connect(s.port);
    long long start = now_ms();
    for (int i = 0; i < 4; i++) {
        client_receive(silent[i], &r, head_timeout_seconds * 1000 + wait_ms);
        close(silent[i]);
        ck_assert_msg(r.len == 0 && r.error != ETIMEDOUT,
                      "a silent client was not dropped within %d s", head_timeout_seconds);
    }
    ck_assert_msg(now_ms() - start >= head_timeout_seconds * 900,
                  "silent clients were dropped before the head timeout (%d s)",
                  head_timeout_seconds);
    ck_assert(server_said(&s, "no request within", wait_ms));
    expect_served(&s);
    server_stop(&s);
}

TEST(idle_clients_hold_workers_for_a_bounded_time)
{
    struct idle_clients idle;
    struct pollfd answer = {.events = POLLIN};
    struct server s;
    struct reply r;
    /* Eight idle clients for four workers: the second four get a worker only as the first
       four are dropped, and the next client gets one as the second four are. */
    long long bound = 2LL * (head_timeout_seconds * 1000 + LINGER_MS_MAX) + wait_ms;

    server_start(&s);
    idle_open(&idle, 8, s.port);
    long long start = now_ms();
    answer.fd = client_request(s.port, NORMAL_REQUEST);
    while (poll(&answer, 1, 0) == 0 && now_ms() - start < bound)
        idle_tick(&idle, 100);
    ck_assert_msg(poll(&answer, 1, 0) == 1, "the next client got no answer within %lld ms", bound);
    client_receive(answer.fd, &r, wait_ms);
    close(answer.fd);
    expect_page(&r, "HTTP/1.1 200 OK", "www/hello.html");
    /* The trickling clients too: the head timeout is for the whole head, not for each byte. */
    while (idle.open > 0 && now_ms() - start < bound)
        idle_tick(&idle, 100);
    ck_assert_msg(idle.open == 0, "%d of the 8 idle clients still held a worker after %lld ms",
                  idle.open, bound);
    idle_close(&idle);
    server_stop(&s);
}

/* A client that leaves: every other one closes its socket, the rest reset theirs. */
static void leave(int fd, int i)
{
    if (i % 2 == 0)
        close(fd);
    else
        client_reset(fd);
}

TEST(survives_clients_leaving_before_slow_answers)
{
    int fds[4];
    struct server s;

    server_start(&s);
    /* Four leave while their answers are being prepared (a worker has each)... */
    for (int i = 0; i < 4; i++)
        fds[i] = client_request(s.port, SLEEP_REQUEST);
    for (int i = 0; i < 4; i++)
        ck_assert_int_ge(worker_in(server_line(&s, wait_ms)), 0);
    for (int i = 0; i < 4; i++)
        leave(fds[i], i);
    /* ...and four before a worker has even read theirs. */
    for (int i = 0; i < 4; i++) {
        fds[i] = client_request(s.port, SLEEP_REQUEST);
        leave(fds[i], i);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_int_ge(worker_in(server_line(&s, sleep_seconds * 1000 + wait_ms)), 0);
    expect_served(&s);
    server_stop(&s);
}

/* A flood of clients: so many connections in all, so many at a time. */
#define FLOOD_CONNECTIONS 2000
#define FLOOD_AT_ONCE 32

/* Sends n requests for GET /, FLOOD_AT_ONCE at a time, each on a connection of its own, and
   asserts that every one gets the whole hello page and that a worker logged each. */
static void flood(struct server *s, int n)
{
    static char expected[20000];
    static struct {
        char bytes[1024];
        size_t len;
    } got[FLOOD_AT_ONCE];
    struct pollfd p[FLOOD_AT_ONCE];
    size_t expected_len =
        page_response("HTTP/1.1 200 OK", "www/hello.html", expected, sizeof expected);
    int started = 0, done = 0;

    for (int i = 0; i < FLOOD_AT_ONCE; i++)
        p[i] = (struct pollfd){.fd = -1, .events = POLLIN};
    while (done < n) {
        for (int i = 0; i < FLOOD_AT_ONCE && started < n; i++) {
            if (p[i].fd >= 0)
                continue;
            p[i].fd = client_request(s->port, NORMAL_REQUEST);
            got[i].len = 0;
            started++;
        }
        ck_assert_msg(poll(p, FLOOD_AT_ONCE, wait_ms) > 0,
                      "no answer came for %d ms, with %d of %d requests answered", wait_ms, done,
                      n);
        for (int i = 0; i < FLOOD_AT_ONCE; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            ssize_t r =
                recv(p[i].fd, got[i].bytes + got[i].len, sizeof got[i].bytes - got[i].len, 0);
            if (r > 0 && got[i].len + (size_t)r < sizeof got[i].bytes) {
                got[i].len += (size_t)r;
                continue;
            }
            ck_assert_msg(r == 0 && got[i].len == expected_len &&
                              memcmp(got[i].bytes, expected, expected_len) == 0,
                          "request %d got \"%s\", ended by %s", done,
                          shown(got[i].bytes, got[i].len),
                          r == 0  ? "the server"
                          : r > 0 ? "too many bytes"
                                  : strerror(errno));
            close(p[i].fd);
            p[i].fd = -1;
            done++;
        }
    }
    for (int i = 0; i < n; i++) {
        const char *line = server_line(s, wait_ms);
        ck_assert_msg(line != NULL && worker_in(line) >= 0, "%d of %d requests were logged", i, n);
    }
    expect_quiet(s);
}

TEST(survives_a_flood_of_connections)
{
    struct server s;

    server_start(&s);
    /* A first round wakes every worker and settles the server's memory. */
    flood(&s, 4 * FLOOD_AT_ONCE);
    int files = server_open_files(&s);
    long memory = server_memory_kb(&s, "VmRSS");
    flood(&s, FLOOD_CONNECTIONS);
    /* Every connection closed, and nothing kept per connection. */
    ck_assert_int_eq(server_open_files(&s), files);
    long growth = server_memory_kb(&s, "VmRSS") - memory;
    ck_assert_msg(growth < 4096, "the server's memory grew by %ld kB in %d connections", growth,
                  FLOOD_CONNECTIONS);
    expect_served(&s);
    server_stop(&s);
}

TEST(survives_running_out_of_descriptors)
{
    int clients[24];
    struct server s;

    /* Room for the server's own files and a few connections: silent clients, queued for the
       busy workers, soon take every descriptor, and accept() fails with EMFILE. */
    server_start_with_fd_limit(&s, 16);
    for (int i = 0; i < 24; i++)
        clients[i] = client_connect(s.port);
    ck_assert_msg(server_said(&s, "accept: Too many open files", wait_ms),
                  "the server never ran out of descriptors: the test proves nothing");
    /* A second more: a server that retries at once would print thousands of lines. */
    poll(NULL, 0, 1000);
    int lines = 0;
    for (const char *at = server_stderr(&s); (at = strstr(at, "accept:")) != NULL; at++)
        lines++;
    ck_assert_msg(lines <= 5, "accept failed %d times in about a second: it spins", lines);
    /* Gone, the clients give their descriptors back. The server takes the rest of them from
       its backlog a few at a time, pausing whenever it runs out again, and has a job for
       each; then it serves the next client. */
    for (int i = 0; i < 24; i++)
        close(clients[i]);
    for (int jobs = 0; jobs < 24; jobs++) {
        const char *line = server_line(&s, wait_ms);
        ck_assert_msg(line != NULL, "%d of the 24 connections were served", jobs);
        ck_assert_int_ge(worker_in(line), 0);
    }
    expect_served(&s);
    server_stop(&s);
}

/* What the jobs of one test share: a count of the jobs that ran, guarded by a mutex, and a
   condition variable the test waits on. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int ran;
    int runs[10000]; /* how often each numbered job ran */
    int waiting;     /* jobs waiting for each other (run_four_at_once) */
    ThreadPool *pool;
} jobs = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

/* Each test starts with no job run, even when Check runs them all in one process. */
static void reset_jobs(void)
{
    jobs.ran = jobs.waiting = 0;
    memset(jobs.runs, 0, sizeof jobs.runs);
    jobs.pool = NULL;
}

/* The pool under test, made from this stage's pool.c, for a test whose jobs start afresh. */
static ThreadPool *new_pool(size_t threads)
{
    ck_assert_msg(thread_pool_new != NULL && thread_pool_execute != NULL,
                  "this stage has no thread pool (no thread_pool_new, thread_pool_execute)");
    reset_jobs();
    ThreadPool *pool = thread_pool_new(threads);
    ck_assert_msg(pool != NULL, "thread_pool_new(%zu) failed", threads);
    return pool;
}

/* A stage 07 pool runs until the process ends. From stage 08 on, a test drops its pool, so
   that no thread is left running (and valgrind finds nothing of theirs left behind). */
static void finish_pool(ThreadPool *pool)
{
    if (thread_pool_drop == NULL)
        return;
    capture_stdout();
    thread_pool_drop(pool);
    stdout_captured();
}

static void count_job(void *arg)
{
    pthread_mutex_lock(&jobs.lock);
    jobs.runs[(intptr_t)arg]++;
    jobs.ran++;
    pthread_cond_broadcast(&jobs.changed);
    pthread_mutex_unlock(&jobs.lock);
}

/* Waits until at least n jobs have run; false if they have not within wait_ms. */
static bool jobs_ran(int n)
{
    struct timespec deadline;
    int error = 0;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    pthread_mutex_lock(&jobs.lock);
    while (jobs.ran < n && error == 0)
        error = pthread_cond_timedwait(&jobs.changed, &jobs.lock, &deadline);
    bool done = jobs.ran >= n;
    pthread_mutex_unlock(&jobs.lock);
    return done;
}

TEST(pool_refuses_zero_threads)
{
    ck_assert_msg(thread_pool_new != NULL, "this stage has no thread pool");
    errno = 0;
    ck_assert(thread_pool_new(0) == NULL);
    ck_assert_int_eq(errno, EINVAL);
}

TEST(pool_runs_every_job_once)
{
    const int n = 10000;
    int lines = 0;

    capture_stdout();
    ThreadPool *pool = new_pool(4);
    for (intptr_t i = 0; i < n; i++)
        ck_assert_int_eq(thread_pool_execute(pool, count_job, (void *)i), 0);
    bool all_ran = jobs_ran(n);
    const char *log = stdout_captured();
    ck_assert_msg(all_ran, "%d of %d jobs ran", jobs.ran, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(jobs.runs[i] == 1, "job %d ran %d times", i, jobs.runs[i]);
    /* One "Worker N got a job; executing..." line per job, from workers 0 to 3. */
    for (const char *line = log; *line != '\0'; line = strchr(line, '\n') + 1) {
        char one[64];
        size_t len = strcspn(line, "\n");
        ck_assert(len < sizeof one && line[len] == '\n');
        memcpy(one, line, len);
        one[len] = '\0';
        int id = worker_in(one);
        ck_assert_msg(id >= 0 && id < 4, "unexpected log line \"%s\"", one);
        lines++;
    }
    ck_assert_int_eq(lines, n);
    ck_assert_int_eq(jobs.ran, n); /* and no job ran after the count was reached */
    finish_pool(pool);
}

/* A job that waits until four jobs are running at the same time; counts itself as run
   only when they were. */
static void meet_job(void *arg)
{
    struct timespec deadline;
    int error = 0;

    (void)arg;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += wait_ms / 1000;
    pthread_mutex_lock(&jobs.lock);
    jobs.waiting++;
    pthread_cond_broadcast(&jobs.changed);
    while (jobs.waiting < 4 && error == 0)
        error = pthread_cond_timedwait(&jobs.changed, &jobs.lock, &deadline);
    if (jobs.waiting >= 4)
        jobs.ran++;
    pthread_cond_broadcast(&jobs.changed);
    pthread_mutex_unlock(&jobs.lock);
}

TEST(pool_runs_four_jobs_at_once)
{
    capture_stdout();
    ThreadPool *pool = new_pool(4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(thread_pool_execute(pool, meet_job, NULL), 0);
    /* Each job waits for the other three: a pool that runs fewer at once times them out. */
    bool met = jobs_ran(4);
    stdout_captured();
    ck_assert_msg(met, "only %d jobs were running at the same time", jobs.waiting);
    finish_pool(pool);
}

/* A job that queues a second job on the same pool. */
static void queue_job(void *arg)
{
    ck_assert_int_eq(thread_pool_execute(jobs.pool, count_job, arg), 0);
}

TEST(pool_job_may_queue_a_job)
{
    capture_stdout();
    /* One worker: the queued job can run only after the job that queued it returns. */
    jobs.pool = new_pool(1);
    ck_assert_int_eq(thread_pool_execute(jobs.pool, queue_job, (void *)7), 0);
    bool ran = jobs_ran(1);
    stdout_captured();
    ck_assert_msg(ran && jobs.runs[7] == 1, "the job queued by a job did not run");
    finish_pool(jobs.pool);
}
