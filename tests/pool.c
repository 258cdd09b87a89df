/*
 * Lesson 07, pool: the pool's workers (four in the lessons) serve as many requests at once,
 * one more waits for a free one, a slow request no longer holds up a fast one, and a client
 * that sends nothing is dropped. Then the pool itself, through its API: every job runs once,
 * four at a time on a pool of four, and a job may queue another.
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
    expect_hinted(took < tested.sleep_seconds * 500, HINT_LOCK_HELD,
                  "GET / was answered after %lld ms: it waited for GET /sleep", took);
    server_stop(&s);
}

static int compare_times(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Whether the server has logged a "Worker N got a job" line with N of at least count. */
static bool worker_beyond(struct server *s, int count)
{
    for (const char *at = s->out.text; (at = strstr(at, "Worker ")) != NULL; at++) {
        const char *end = strchr(at, '\n');
        char line[64];
        size_t len = end != NULL ? (size_t)(end - at) : strlen(at);
        if (len < sizeof line) {
            memcpy(line, at, len);
            line[len] = '\0';
            if (worker_in(line) >= count)
                return true;
        }
    }
    return false;
}

/* The times, "1001, 1002 and 2003", for a message, written into text. */
#define TIMES_MAX (IDLE_MAX * 24)
static void list_times(char text[TIMES_MAX], const long long times[], int n)
{
    size_t len = 0;

    text[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, TIMES_MAX - len, "%s%lld",
                                i == 0       ? ""
                                : i == n - 1 ? " and "
                                             : ", ",
                                times[i]);
}

TEST(four_slow_requests_at_once_fifth_waits)
{
    /* As many slow requests as the pool has workers (four in the lessons), and one more. */
    const int n = tested.threads + 1;
    static struct reply replies[IDLE_MAX];
    long long ended[IDLE_MAX];
    int fds[IDLE_MAX];
    bool seen[IDLE_MAX] = {false};
    struct server s;

    server_start(&s);
    long long start = now_ms();
    for (int i = 0; i < n; i++)
        fds[i] = client_request(s.port, SLEEP_REQUEST);
    note_case("%d GET /sleep at once, each on a connection of its own, for a pool of %d", n,
              tested.threads);
    receive_each(fds, replies, ended, n, start, 2 * tested.sleep_seconds * 1000 + patience());
    /* The first `threads` end together, after one sleep; the last needs a second one. The
       margins are wide, so that a loaded machine cannot fail this, and a server that is not
       exactly `threads` workers wide cannot pass it. A server that serves one at a time
       answers them a sleep apart, and not all of them in time: say so before the pages. */
    qsort(ended, (size_t)n, sizeof ended[0], compare_times);
    int answered = 0;
    for (int i = 0; i < n; i++)
        answered += ended[i] >= 0;
    /* Sorted, the unanswered (-1) come first: the first two answers are at n - answered. */
    bool one_at_a_time = answered >= 2 && ended[n - answered + 1] * 2 >= ended[n - answered] * 3;
    expect_hinted(answered == n, one_at_a_time ? HINT_LOCK_HELD : NULL,
                  "%d of the %d answers came within %d ms%s", answered, n,
                  2 * tested.sleep_seconds * 1000 + patience(),
                  one_at_a_time ? ", one sleep apart: one at a time" : "");
    for (int i = 0; i < n; i++) {
        close(fds[i]);
        expect_answer_to(&replies[i], SLEEP_REQUEST);
    }
    char times[TIMES_MAX];
    list_times(times, ended, n);
    expect_hinted(ended[n - 2] * 2 < ended[0] * 3,
                  n > 2 && ended[1] * 2 >= ended[0] * 3 ? HINT_LOCK_HELD : HINT_POOL_SIZE,
                  "the answers ended at %s ms: the first %d should end together, after one sleep "
                  "of %d s, on a pool of %d",
                  times, n - 1, tested.sleep_seconds, tested.threads);
    /* More ran at once than the pool has workers: a bigger pool logs workers beyond the
       last one expected; a thread for each connection logs none. */
    bool bigger_pool = server_printed(&s, "Worker ", 0) && worker_beyond(&s, tested.threads);
    expect_hinted(ended[n - 1] * 2 >= ended[0] * 3,
                  bigger_pool ? HINT_POOL_SIZE : HINT_THREAD_PER_CONNECTION,
                  "the answers ended at %s ms: the last did not wait for a free worker, so more "
                  "than %d ran at once, on a pool of %d",
                  times, tested.threads, tested.threads);
    /* Each worker logged one of the first `threads` jobs. */
    for (int i = 0; i < tested.threads; i++) {
        int id = expect_worker_line(&s, patience());
        expect_hinted(!seen[id], HINT_POOL_SIZE,
                      "worker %d logged two of the first %d jobs: each of the %d workers should "
                      "have one",
                      id, tested.threads, tested.threads);
        seen[id] = true;
    }
    expect_worker_line(&s, patience());
    expect_quiet(&s);
    server_stop(&s);
}

/* The server's threads once it has settled: a pool may start its workers just after the
   Listening line, or even at the first request. So the count is taken after an answer, once
   it has stayed the same for a quarter of a second. */
static long settled_threads(struct server *s)
{
    long count = server_threads(s), last = -1;
    long long deadline = deadline_in(patience());

    for (int same = 0; same < 5 && ms_left(deadline) > 0; same = count == last ? same + 1 : 0) {
        harness_poll(NULL, 0, 50);
        last = count;
        count = server_threads(s);
    }
    return count;
}

TEST(threads_do_not_grow_with_clients)
{
    int clients[16];
    struct server s;

    server_start(&s);
    expect_answered(&s, NORMAL_REQUEST);
    long before = settled_threads(&s);
    int files = server_open_files(&s);
    /* Sixteen clients that send nothing (yet): the server accepts them all and queues them. */
    for (int i = 0; i < 16; i++)
        clients[i] = client_connect(s.port);
    note_case("16 clients connected at once, sending nothing");
    long long deadline = deadline_in(patience());
    while (server_open_files(&s) < files + 16 && ms_left(deadline) > 0)
        harness_poll(NULL, 0, 10);
    long during = server_threads(&s);
    for (int i = 0; i < 16; i++)
        close(clients[i]);
    expect_hinted(during <= before, HINT_THREAD_PER_CONNECTION,
                  "the server ran %ld threads with no client and %ld with 16 connected", before,
                  during);
    expect_hinted(before >= tested.threads + 1, HINT_POOL_SIZE,
                  "the server runs %ld threads: a pool of %d workers and the main thread are %d",
                  before, tested.threads, tested.threads + 1);
    server_stop(&s);
}

TEST(silent_clients_are_dropped_together)
{
    static struct reply replies[IDLE_MAX];
    long long ended[IDLE_MAX];
    int silent[IDLE_MAX];
    struct server s;

    server_start(&s);
    /* One silent client per worker: each holds its worker until the head timeout, and the
       workers drop them together. */
    for (int i = 0; i < tested.threads; i++)
        silent[i] = client_connect(s.port);
    long long start = now_ms();
    note_case("%d clients that connect and send nothing, one for each worker", tested.threads);
    receive_each(silent, replies, ended, tested.threads, start,
                 tested.head_timeout_seconds * 1000 + LINGER_MS_MAX + patience());
    int dropped = 0;
    for (int i = 0; i < tested.threads; i++)
        dropped += ended[i] >= 0;
    for (int i = 0; i < tested.threads; i++) {
        close(silent[i]);
        expect_hinted(ended[i] >= 0, dropped > 0 ? HINT_LOCK_HELD : HINT_HEAD_TIMEOUT,
                      "a silent client was still connected after %d s, where the head timeout is "
                      "%d s and each of the %d workers drops one",
                      tested.head_timeout_seconds + (LINGER_MS_MAX + patience()) / 1000,
                      tested.head_timeout_seconds, tested.threads);
        expect_hinted(replies[i].len == 0, HINT_HEAD_TIMEOUT,
                      "a silent client got an answer: \"%s\"; it must be dropped without one",
                      shown(replies[i].bytes, replies[i].len));
        char hint[400];
        expect_hinted(ended[i] >= tested.head_timeout_seconds * 900,
                      timing_hint(hint, sizeof hint, "HEAD_TIMEOUT_SECONDS",
                                  tested.head_timeout_seconds, ended[i], HINT_HEAD_TIMEOUT),
                      "a silent client was dropped after %lld ms, before the head timeout of %d s",
                      ended[i], tested.head_timeout_seconds);
    }
    expect_served(&s);
    server_stop(&s);
}

TEST(idle_clients_hold_workers_for_a_bounded_time)
{
    struct idle_clients idle;
    struct pollfd answer = {.events = POLLIN};
    struct server s;
    struct reply r;
    /* An idle client for each worker: the next client gets a worker as they are dropped. */
    long long bound = tested.head_timeout_seconds * 1000LL + LINGER_MS_MAX + patience();

    server_start(&s);
    idle_open(&idle, tested.threads, s.port);
    long long start = now_ms();
    answer.fd = client_request(s.port, NORMAL_REQUEST);
    while (harness_poll(&answer, 1, 0) == 0 && now_ms() - start < bound)
        idle_tick(&idle, 100);
    note_case("%d idle clients (every other one sending a byte every tenth of a second, the rest "
              "silent), then GET /",
              tested.threads);
    expect_hinted(harness_poll(&answer, 1, 0) == 1, HINT_HEAD_TIMEOUT,
                  "the next client got no answer within %lld ms", bound);
    client_receive(answer.fd, &r, patience());
    close(answer.fd);
    expect_answer_to(&r, NORMAL_REQUEST);
    /* The trickling clients too: the head timeout is for the whole head, not for each byte. */
    while (idle.open > 0 && now_ms() - start < bound)
        idle_tick(&idle, 100);
    expect_hinted(idle.open == 0, HINT_HEAD_TIMEOUT,
                  "%d of the %d idle clients still held a worker after %lld ms", idle.open,
                  tested.threads, bound);
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

TEST(survives_clients_leaving_before_their_answers)
{
    int fds[IDLE_MAX];
    struct server s;

    server_start(&s);
    /* One for each worker leaves while its slow answer is being prepared... */
    for (int i = 0; i < tested.threads; i++)
        fds[i] = client_request(s.port, SLEEP_REQUEST);
    for (int i = 0; i < tested.threads; i++)
        expect_worker_line(&s, patience());
    for (int i = 0; i < tested.threads; i++)
        leave(fds[i], i);
    /* ...and as many more before a worker has even read their requests. */
    for (int i = 0; i < tested.threads; i++) {
        fds[i] = client_request(s.port, NORMAL_REQUEST);
        leave(fds[i], i);
    }
    note_case("%d GET /sleep whose clients left (every other one closed, the rest reset) while a "
              "worker slept on each, then %d GET / whose clients left before a worker read them",
              tested.threads, tested.threads);
    for (int i = 0; i < tested.threads; i++)
        expect_worker_line(&s, tested.sleep_seconds * 1000 + patience());
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
        note_case("%d requests for GET /, %d at a time", n, FLOOD_AT_ONCE);
        if (harness_poll(p, FLOOD_AT_ONCE, patience()) <= 0) {
            note_timeout();
            flunk(NULL, "no answer came for %d ms, with %d of %d requests answered", patience(),
                  done, n);
        }
        for (int i = 0; i < FLOOD_AT_ONCE; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            ssize_t r =
                recv(p[i].fd, got[i].bytes + got[i].len, sizeof got[i].bytes - got[i].len, 0);
            if (r > 0 && got[i].len + (size_t)r < sizeof got[i].bytes) {
                got[i].len += (size_t)r;
                continue;
            }
            expect_hinted(r == 0 && got[i].len == expected_len &&
                              memcmp(got[i].bytes, expected, expected_len) == 0,
                          r < 0 && errno == ECONNRESET ? HINT_RESET : NULL,
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
        const char *line = server_line(s, patience());
        expect(line != NULL && worker_in(line) >= 0,
               "expected a \"Worker N got a job; executing...\" line for each request: %d of %d "
               "were logged",
               i, n);
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
    long memory = server_memory_kb(&s);
    flood(&s, FLOOD_CONNECTIONS);
    /* Every connection closed, and nothing kept per connection. */
    int after = server_open_files(&s);
    expect(after == files,
           "the server had %d files open before %d connections and %d after: it leaks "
           "descriptors",
           files, FLOOD_CONNECTIONS, after);
    long growth = server_memory_kb(&s) - memory;
    expect(growth < 4096, "the server's memory grew by %ld kB in %d connections", growth,
           FLOOD_CONNECTIONS);
    expect_served(&s);
    server_stop(&s);
}

/* The lines of the server's stderr that hold text. */
static int lines_saying(struct server *s, const char *text)
{
    int lines = 0;

    for (const char *at = server_stderr(s); (at = strstr(at, text)) != NULL; at++)
        lines++;
    return lines;
}

TEST(survives_running_out_of_descriptors)
{
    int clients[24];
    struct server s;
    const int limit = 16;

    /* Room for the server's own files and a few connections: silent clients, queued for the
       busy workers, soon take every descriptor, and accept() fails with EMFILE. */
    server_start_with_fd_limit(&s, limit);
    for (int i = 0; i < 24; i++)
        clients[i] = client_connect(s.port);
    note_case("24 clients that send nothing, to a server allowed %d open files", limit);
    long long deadline = deadline_in(patience());
    while (server_open_files(&s) < limit && ms_left(deadline) > 0)
        harness_poll(NULL, 0, 10);
    expect(server_open_files(&s) >= limit,
           "the server has %d of its %d files open after 24 connections: it stopped accepting "
           "them, where main should take every connection and queue it (the queue has no "
           "limit, as the reference's channel has none)",
           server_open_files(&s), limit);
    /* A second more: a server that retries at once would spin, and fill its log. */
    long long cpu = server_cpu_ms(&s), start = now_ms();
    int lines = lines_saying(&s, strerror(EMFILE));
    harness_poll(NULL, 0, 1000);
    long long spent = server_cpu_ms(&s) - cpu, waited = now_ms() - start;
    lines = lines_saying(&s, strerror(EMFILE)) - lines;
    expect(spent * 2 < waited,
           "out of descriptors, the server used %lld ms of CPU in %lld ms: it spins on accept() "
           "instead of pausing",
           spent, waited);
    expect(lines <= 5,
           "out of descriptors, the server said \"%s\" %d times in about a second: it retries "
           "accept() at once instead of pausing",
           strerror(EMFILE), lines);
    /* Gone, the clients give their descriptors back. The server takes the rest of them from
       its backlog a few at a time, pausing whenever it runs out again, and has a job for
       each; then it serves the next client. */
    for (int i = 0; i < 24; i++)
        close(clients[i]);
    for (int jobs = 0; jobs < 24; jobs++) {
        const char *line = server_line(&s, patience());
        expect(line != NULL && worker_in(line) >= 0,
               "after the 24 clients left, the server had a job for %d of them within %d ms of "
               "the last one",
               jobs, patience());
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
    int waiting;     /* jobs running now, or waiting for each other (meet_job) */
    int most;        /* the most jobs that ran at the same time (crowd_job) */
    ThreadPool *pool;
} jobs = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

/* Each test starts with no job run, even when Check runs them all in one process. */
static void reset_jobs(void)
{
    jobs.ran = jobs.waiting = jobs.most = 0;
    memset(jobs.runs, 0, sizeof jobs.runs);
    jobs.pool = NULL;
}

/* The pool under test, made from this stage's pool.c, for a test whose jobs start afresh. */
static ThreadPool *new_pool(size_t size)
{
    reset_jobs();
    ThreadPool *pool = thread_pool_new(size);
    expect(pool_lacks() == NULL, "this stage has no thread pool (no %s)", pool_lacks());
    expect(pool != NULL, "thread_pool_new(%zu) failed: %s", size, strerror(errno));
    return pool;
}

/* A stage 07 pool runs until the process ends (its thread_pool_drop is no_pool.c's stand-in,
   which does nothing). From stage 08 on, a test drops its pool, so that no thread is left
   running (and valgrind finds nothing of theirs left behind). */
static void finish_pool(ThreadPool *pool)
{
    capture_stdout();
    drop_pool_within(pool, patience(), "a pool whose jobs have all run");
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

/* Waits until at least n jobs have run; false if they have not within patience(). */
static bool jobs_ran(int n)
{
    struct timespec deadline = realtime_in(patience());
    int error = 0;

    pthread_mutex_lock(&jobs.lock);
    while (jobs.ran < n && error == 0)
        error = pthread_cond_timedwait(&jobs.changed, &jobs.lock, &deadline);
    bool done = jobs.ran >= n;
    pthread_mutex_unlock(&jobs.lock);
    return done;
}

TEST(pool_refuses_zero_threads)
{
    errno = 0;
    ThreadPool *pool = thread_pool_new(0);
    int error = errno;
    expect(pool_lacks() == NULL, "this stage has no thread pool (no %s)", pool_lacks());
    expect(pool == NULL, "thread_pool_new(0) returned a pool: a pool of no threads is refused");
    expect(error == EINVAL, "thread_pool_new(0) returned NULL with errno %d (%s), not EINVAL",
           error, strerror(error));
}

TEST(pool_runs_every_job_once)
{
    const int n = 10000;
    int lines = 0;

    capture_stdout();
    ThreadPool *pool = new_pool(4);
    for (intptr_t i = 0; i < n; i++)
        expect(thread_pool_execute(pool, count_job, (void *)i) == 0,
               "thread_pool_execute failed for job %d of %d", (int)i, n);
    bool all_ran = jobs_ran(n);
    const char *log = stdout_captured();
    expect(all_ran, "%d of %d jobs queued on a pool of 4 ran within %d ms", jobs.ran, n,
           patience());
    for (int i = 0; i < n; i++)
        expect(jobs.runs[i] == 1,
               "job %d of %d ran %d times: every job must run exactly once (the queue must be "
               "touched only with its mutex held)",
               i, n, jobs.runs[i]);
    /* One "Worker N got a job; executing..." line per job, from workers 0 to 3. */
    for (const char *line = log; *line != '\0'; line = strchr(line, '\n') + 1) {
        char one[64];
        size_t len = strcspn(line, "\n");
        expect(len < sizeof one && line[len] == '\n', "the pool printed \"%s\"",
               shown(line, strlen(line)));
        memcpy(one, line, len);
        one[len] = '\0';
        int id = worker_in(one);
        expect(id >= 0 && id < 4,
               "expected only lines \"Worker N got a job; executing...\" with N from 0 to 3, "
               "got \"%s\"",
               shown(one, len));
        lines++;
    }
    expect(lines == n, "%d jobs ran, and %d \"Worker N got a job; executing...\" lines came", n,
           lines);
    expect(jobs.ran == n, "%d jobs ran, of %d queued", jobs.ran, n);
    finish_pool(pool);
}

/* A job that waits until four jobs are running at the same time; counts itself as run
   only when they were. */
static void meet_job(void *arg)
{
    struct timespec deadline = realtime_in(patience());
    int error = 0;

    (void)arg;
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
        expect(thread_pool_execute(pool, meet_job, NULL) == 0, "thread_pool_execute failed");
    /* Each job waits for the other three: a pool that runs fewer at once times them out. */
    bool met = jobs_ran(4);
    stdout_captured();
    expect_hinted(met, HINT_LOCK_HELD,
                  "four jobs, each waiting for the other three, queued on a pool of 4: only %d "
                  "ran at the same time",
                  jobs.waiting);
    finish_pool(pool);
}

/* A job that counts how many jobs run with it, at the most, and takes a little time. */
static void crowd_job(void *arg)
{
    struct timespec pause = {.tv_nsec = 50 * 1000000};

    (void)arg;
    pthread_mutex_lock(&jobs.lock);
    if (++jobs.waiting > jobs.most)
        jobs.most = jobs.waiting;
    pthread_mutex_unlock(&jobs.lock);
    nanosleep(&pause, NULL);
    pthread_mutex_lock(&jobs.lock);
    jobs.waiting--;
    jobs.ran++;
    pthread_cond_broadcast(&jobs.changed);
    pthread_mutex_unlock(&jobs.lock);
}

TEST(pool_runs_no_more_jobs_at_once_than_its_threads)
{
    capture_stdout();
    ThreadPool *pool = new_pool(4);
    /* Sixteen jobs of 50 ms for four workers: at most four run at a time. */
    for (int i = 0; i < 16; i++)
        expect(thread_pool_execute(pool, crowd_job, NULL) == 0, "thread_pool_execute failed");
    bool all_ran = jobs_ran(16);
    stdout_captured();
    expect(all_ran, "%d of 16 jobs queued on a pool of 4 ran within %d ms", jobs.ran, patience());
    expect_hinted(jobs.most <= 4, HINT_THREAD_PER_CONNECTION,
                  "16 jobs queued on a pool of 4 threads: %d of them ran at the same time",
                  jobs.most);
    finish_pool(pool);
}

/* A job that queues a second job on the same pool and returns at once. */
static void relay_job(void *arg)
{
    expect(thread_pool_execute(jobs.pool, count_job, arg) == 0,
           "thread_pool_execute failed inside a job");
}

TEST(pool_worker_waits_again_when_its_job_is_taken)
{
    const int rounds = 2000;

    capture_stdout();
    /* Two idle workers; one runs relay_job, which queues a job and wakes the other. But the
       first, back from its job at once, most often takes the new job before the woken one
       gets the mutex: the woken worker finds the queue empty, and must wait again (a while
       around the wait), not take a job that is not there (an if). */
    jobs.pool = new_pool(2);
    for (int round = 0; round < rounds; round++) {
        expect(thread_pool_execute(jobs.pool, relay_job, (void *)0) == 0,
               "thread_pool_execute failed");
        bool ran = jobs_ran(round + 1);
        expect(ran,
               "round %d of %d: a job that queued a second job on a pool of 2 ran, and the "
               "second did not run within %d ms",
               round, rounds, patience());
    }
    stdout_captured();
    finish_pool(jobs.pool);
}

/* A job that queues a second job on the same pool. */
static void queue_job(void *arg)
{
    expect(thread_pool_execute(jobs.pool, count_job, arg) == 0,
           "thread_pool_execute failed inside a job");
}

TEST(pool_job_may_queue_a_job)
{
    capture_stdout();
    /* One worker: the queued job can run only after the job that queued it returns. */
    jobs.pool = new_pool(1);
    expect(thread_pool_execute(jobs.pool, queue_job, (void *)7) == 0, "thread_pool_execute failed");
    bool ran = jobs_ran(1);
    stdout_captured();
    expect(ran && jobs.runs[7] == 1,
           "on a pool of 1, a job queued a second job, which did not run within %d ms: does the "
           "worker hold the mutex while it runs a job?",
           patience());
    finish_pool(jobs.pool);
}
