/*
 * Lesson 08, shutdown: after REQUESTS connections, or on SIGINT or SIGTERM, the server stops
 * accepting, answers every request it accepted, joins its workers with the reference's log
 * lines, and exits with status 0. Then the pool's drop, through the API.
 */
#include "harness.h"
#include "pool_api.h"
#include "tests.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Starts the server on port 0 with the given REQUESTS (NULL: the default). */
static void start_with_requests(struct server *s, const char *requests)
{
    const char *args[] = {"0", requests, NULL};

    server_spawn(s, NULL, args);
    server_wait_listening(s);
}

/* The index of the line in lines[0..n) equal to text, or -1. */
static int line_index(char lines[][64], int n, const char *text)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(lines[i], text) == 0)
            return i;
    }
    return -1;
}

/* The lines, one after the other, for a message, written into text. */
static void list_lines(char text[64 * 70], char lines[][64], int n)
{
    size_t len = 0;

    snprintf(text, 64 * 70, "%s", n > 0 ? "" : " (none)");
    for (int i = 0; i < n && len + 70 < 64 * 70; i++)
        len += (size_t)snprintf(text + len, 64 * 70 - len, "\n    %s", lines[i]);
}

/* Asserts that the server exits with status 0 within timeout_ms, and that what it logged
   from now on is `jobs` worker lines and the shutdown of the pool's workers: the main thread's
   announcement; for each worker N, in order, "Shutting down worker N" from the main thread;
   and "Shutting down thread for worker: N" from the worker as it leaves, which the main
   thread waits for (joins) before it goes on to worker N+1. A worker may still take a job
   after the announcement: only the queue's end stops it. after says what started the
   shutdown: "its last request", or the signal ("SIGINT"). */
static void expect_graceful_exit(struct server *s, int jobs, int timeout_ms, const char *after)
{
    char lines[64][64];
    char rules[160];
    int n = 0, worker_lines = 0;
    const char *line;

    if (!server_wait_exit(s, timeout_ms)) {
        bool signal = strncmp(after, "SIG", 3) == 0;
        expect_exit_after_shutdown(s, after);
        note_cause("the server does not shut down after %s",
                   signal ? "SIGINT or SIGTERM" : "REQUESTS connections");
        flunk(signal ? HINT_STOP_SIGNALS : HINT_REQUESTS,
              "the server did not exit within %d ms of %s, and printed no \"Shutting down "
              "server, gracefully!\"",
              timeout_ms, after);
    }
    expect(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0, "expected exit status 0");
    while (n < 64 && (line = server_line(s, 0)) != NULL)
        snprintf(lines[n++], sizeof lines[0], "%s", line);
    char listed[64 * 70];
    list_lines(listed, lines, n);
    snprintf(rules, sizeof rules,
             "expected its stdout to end with the lines of a pool of %d shutting down, in an "
             "order that lesson 08 allows",
             tested.threads);
    int announced = line_index(lines, n, "Shutting down server, gracefully!");
    expect(announced >= 0, "%s; there is no \"Shutting down server, gracefully!\" in:%s", rules,
           listed);
    int joined = announced; /* where the main thread is in its loop over the workers */
    for (int id = 0; id < tested.threads; id++) {
        char said[64], left[64];
        snprintf(said, sizeof said, "Shutting down worker %d", id);
        snprintf(left, sizeof left, "Shutting down thread for worker: %d", id);
        int said_at = line_index(lines, n, said), left_at = line_index(lines, n, left);
        expect_hinted(said_at > joined, HINT_NO_JOIN, "%s; \"%s\" is missing or out of order in:%s",
                      rules, said, listed);
        expect_hinted(left_at > announced, HINT_NO_JOIN,
                      "%s; \"%s\" is missing or out of order in:%s", rules, left, listed);
        /* The main thread goes on to the next worker only once this one has left. */
        joined = said_at > left_at ? said_at : left_at;
        for (int i = 0; i < n; i++) {
            if (worker_in(lines[i]) == id) {
                expect(i < left_at, "%s; worker %d took a job after it left, in:%s", rules, id,
                       listed);
                worker_lines++;
            }
        }
    }
    expect(worker_lines == jobs && n == jobs + 1 + 2 * tested.threads,
           "%s: %d \"Worker N got a job; executing...\" lines and %d of the shutdown; got:%s",
           rules, jobs, 1 + 2 * tested.threads, listed);
    server_stop_exited(s);
}

TEST(shuts_down_after_requests)
{
    struct server s;
    struct reply r;

    start_with_requests(&s, "2");
    int slow = client_request(s.port, SLEEP_REQUEST);
    exchange(&s, NORMAL_REQUEST, strlen(NORMAL_REQUEST), &r); /* the second: the last */
    note_case("REQUESTS 2: GET /sleep, then GET /, the last");
    expect_answer_to(&r, NORMAL_REQUEST);
    /* The slow request, accepted before the shutdown began, still gets all of its answer. */
    client_receive(slow, &r, tested.sleep_seconds * 1000 + patience());
    close(slow);
    note_case("REQUESTS 2: GET /sleep, then GET /, the last; this is the answer to GET /sleep, "
              "in flight when the shutdown began");
    expect_hinted(r.len > 0, HINT_NO_JOIN, "GET /sleep got no answer, ended by %s", reply_end(&r));
    expect_answer_to(&r, SLEEP_REQUEST);
    expect_graceful_exit(&s, 2, patience(), "its last request");
}

TEST(default_requests_serves_default_requests)
{
    struct server s;

    start_with_requests(&s, NULL);
    note_case("%d GET / (its DEFAULT_REQUESTS) to a server started with no REQUESTS",
              tested.default_requests);
    for (int i = 0; i < tested.default_requests; i++) {
        expect_answered(&s, NORMAL_REQUEST);
    }
    expect_graceful_exit(&s, tested.default_requests, patience(), "its last request");
}

TEST(queued_requests_finish_on_shutdown)
{
    /* Two slow requests more than the pool's workers: those run, two wait in the queue when
       the shutdown begins. */
    const int n = tested.threads + 2;
    static struct reply replies[IDLE_MAX];
    long long ended[IDLE_MAX];
    int fds[IDLE_MAX];
    char requests[16];
    struct server s;

    snprintf(requests, sizeof requests, "%d", n);
    start_with_requests(&s, requests);
    long long start = now_ms();
    for (int i = 0; i < n; i++)
        fds[i] = client_request(s.port, SLEEP_REQUEST);
    note_case("REQUESTS %d: %d GET /sleep at once, so that two wait in the queue of a pool of %d "
              "as the shutdown begins",
              n, n, tested.threads);
    receive_each(fds, replies, ended, n, start, 2 * tested.sleep_seconds * 1000 + patience());
    int lost = 0;
    for (int i = 0; i < n; i++)
        lost += replies[i].len == 0;
    expect_hinted(lost == 0, lost <= 2 ? HINT_QUEUED_JOBS : HINT_NO_JOIN,
                  "%d of the %d slow requests got no answer", lost, n);
    for (int i = 0; i < n; i++) {
        close(fds[i]);
        expect_answer_to(&replies[i], SLEEP_REQUEST);
    }
    expect_graceful_exit(&s, n, patience(), "its last request");
}

TEST(sigint_shuts_down_gracefully)
{
    struct server s;
    struct reply r;

    /* SIGINT with a slow request in flight: the request still gets all of its answer, and
       the server shuts down as after its last request. */
    start_with_requests(&s, NULL);
    int slow = client_request(s.port, SLEEP_REQUEST);
    /* Once a worker has the job, the request is in flight. */
    expect_worker_line(&s, patience());
    kill(s.pid, SIGINT);
    note_case("GET /sleep, and SIGINT once a worker has it");
    client_receive(slow, &r, tested.sleep_seconds * 1000 + patience());
    close(slow);
    expect_hinted(r.len > 0, HINT_NO_JOIN, "GET /sleep got no answer, ended by %s", reply_end(&r));
    expect_answer_to(&r, SLEEP_REQUEST);
    expect_graceful_exit(&s, 0, patience(), "SIGINT");
}

TEST(sigterm_shuts_down_gracefully)
{
    const char *first = "GET / HTTP/1.1\r\n", *rest = "Host: 127.0.0.1\r\n\r\n";
    struct server s;
    struct reply r;

    /* SIGTERM with a request in flight: accepted, its head not yet all sent. The rest of the
       head comes after the signal, and the request is answered. */
    start_with_requests(&s, NULL);
    int fd = client_request(s.port, first);
    expect_worker_line(&s, patience());
    kill(s.pid, SIGTERM);
    note_case("\"%s\", SIGTERM once a worker has the connection, then \"%s\"",
              shown(first, strlen(first)), shown(rest, strlen(rest)));
    harness_poll(NULL, 0, 100);
    client_send(fd, rest, strlen(rest));
    client_receive(fd, &r, patience());
    close(fd);
    expect_hinted(r.len > 0, HINT_NO_JOIN, "the request got no answer, ended by %s", reply_end(&r));
    expect_answer_to(&r, NORMAL_REQUEST);
    expect_graceful_exit(&s, 0, patience(), "SIGTERM");
}

TEST(shutdown_waits_a_bounded_time_for_idle_clients)
{
    struct idle_clients idle;
    struct server s;
    /* As many idle clients as REQUESTS: the last one starts the shutdown, which waits until
       the head timeout has dropped each. */
    long long bound = tested.head_timeout_seconds * 1000LL + LINGER_MS_MAX + patience();

    /* One for each worker, so that the head timeout drops them all at once. */
    char requests[16];
    snprintf(requests, sizeof requests, "%d", tested.threads);
    start_with_requests(&s, requests);
    idle_open(&idle, tested.threads, s.port);
    long long start = now_ms();
    while (!server_wait_exit(&s, 0) && now_ms() - start < bound)
        idle_tick(&idle, 100);
    idle_close(&idle);
    expect_hinted(server_wait_exit(&s, 0), HINT_HEAD_TIMEOUT,
                  "REQUESTS %d, and as many idle clients: the server had not exited after %lld ms",
                  tested.threads, bound);
    expect_graceful_exit(&s, tested.threads, 0, "its last request");
}

TEST(shutdown_with_requests_in_flight_many_times)
{
    /* Two connections more than the pool's workers. */
    const int n = tested.threads + 2;
    static struct reply replies[IDLE_MAX];
    long long ended[IDLE_MAX];
    int fds[IDLE_MAX];
    char requests[16];

    snprintf(requests, sizeof requests, "%d", n);
    for (int round = 0; round < 20; round++) {
        struct server s;
        start_with_requests(&s, requests);
        for (int i = 0; i < n; i++)
            fds[i] = client_connect(s.port);
        /* The last connection starts the shutdown. Only then do the clients send their
           requests: every one of them is in flight, accepted and not yet answered. */
        note_case("round %d of 20: REQUESTS %d, %d connections, and their requests sent only "
                  "once the shutdown has begun",
                  round, n, n);
        expect(server_printed(&s, "Shutting down server, gracefully!", patience()),
               "after its last connection, the server did not print \"Shutting down server, "
               "gracefully!\" within %d ms",
               patience());
        long long start = now_ms();
        for (int i = 0; i < n; i++) {
            const char *request = i % 2 == 0 ? NORMAL_REQUEST : NOT_FOUND_REQUEST;
            client_send(fds[i], request, strlen(request));
        }
        receive_each(fds, replies, ended, n, start, patience());
        for (int i = 0; i < n; i++) {
            close(fds[i]);
            expect_hinted(replies[i].len > 0, HINT_QUEUED_JOBS,
                          "round %d: request %d of %d, accepted before the shutdown began, got no "
                          "answer, ended by %s",
                          round, i + 1, n, reply_end(&replies[i]));
            expect_answer_to(&replies[i], i % 2 == 0 ? NORMAL_REQUEST : NOT_FOUND_REQUEST);
        }
        expect_graceful_exit(&s, n, patience(), "its last request");
    }
}

TEST(bad_requests_count_is_one_line_and_exit_1)
{
    const char *bad[] = {"0", "-4", "four", "4x", "99999999999999999999"};
    struct server good;

    /* A good count starts the server... */
    note_case("PORT 0 and REQUESTS 3");
    start_with_requests(&good, "3");
    server_stop(&good);
    /* ...and bad ones stop it before it listens. */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"0", bad[i], NULL};
        struct server s;
        server_spawn(&s, NULL, args);
        note_case("PORT 0 and REQUESTS \"%s\"", bad[i]);
        expect_hinted(server_wait_exit(&s, patience()), HINT_SETUP,
                      "the server did not exit within %d ms", patience());
        expect_hinted(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 1, HINT_SETUP,
                      "expected exit status 1");
        expect_hinted(s.out.len == 0 && s.err.len > 0 &&
                          strchr(s.err.text, '\n') == s.err.text + s.err.len - 1,
                      HINT_SETUP, "expected one line on stderr and nothing on stdout; stdout: %s",
                      shown(s.out.text, s.out.len));
        server_stop_exited(&s);
    }
}

/* Jobs for the pool tests: each counts itself, after a short pause. */
static atomic_int ran;

static void count_job(void *arg)
{
    struct timespec pause = {.tv_nsec = (long)(intptr_t)arg * 1000000};

    nanosleep(&pause, NULL);
    atomic_fetch_add(&ran, 1);
}

/* After a test's first drop: the stage has each function it called. */
static void expect_drop_in_this_stage(void)
{
    expect(pool_lacks() == NULL, "this stage's pool has no %s", pool_lacks());
}

/* After the drops of pools made when the pool had `before` blocks allocated: nothing left. */
static void expect_freed(long before, const char *what)
{
    long left = pool_blocks() - before;

    expect_hinted(left == 0, HINT_DROP_FREES,
                  "%s: the pool's code left %ld block%s it allocated (malloc, calloc) unfreed",
                  what, left, left == 1 ? "" : "s");
}

TEST(pool_drop_finishes_every_queued_job)
{
    const char *goodbyes[] = {"Shutting down worker 0\n", "Shutting down worker 1\n",
                              "Shutting down thread for worker: 0\n",
                              "Shutting down thread for worker: 1\n"};

    long blocks = pool_blocks();
    atomic_store(&ran, 0);
    capture_stdout();
    ThreadPool *pool = thread_pool_new(2);
    expect(pool != NULL, "thread_pool_new(2) failed: %s", strerror(errno));
    /* Far more jobs than workers, 1 ms each: most are still queued when drop begins. */
    for (int i = 0; i < 100; i++)
        expect(thread_pool_execute(pool, count_job, (void *)1) == 0, "thread_pool_execute failed");
    drop_pool_within(pool, patience(), "a pool of 2 with 100 jobs of 1 ms queued");
    int after = atomic_load(&ran);
    const char *log = stdout_captured();
    expect_drop_in_this_stage();
    /* Workers that said goodbye before the jobs were done left them queued; a drop that
       returned before its workers said goodbye did not wait for them. */
    bool left = strstr(log, "Shutting down thread for worker: 0\n") != NULL &&
                strstr(log, "Shutting down thread for worker: 1\n") != NULL;
    expect_hinted(after == 100, left ? HINT_QUEUED_JOBS : HINT_NO_JOIN,
                  "100 jobs of 1 ms each on a pool of 2: thread_pool_drop returned after %d of "
                  "them had run",
                  after);
    for (size_t i = 0; i < sizeof goodbyes / sizeof goodbyes[0]; i++)
        expect(strstr(log, goodbyes[i]) != NULL,
               "thread_pool_drop of a pool of 2 printed no \"%.*s\" line",
               (int)strlen(goodbyes[i]) - 1, goodbyes[i]);
    expect_freed(blocks, "a pool of 2, 100 jobs, and its drop");
}

TEST(pool_drop_wakes_every_idle_worker)
{
    long blocks = pool_blocks();
    atomic_store(&ran, 0);
    capture_stdout();
    ThreadPool *pool = thread_pool_new(4);
    expect(pool != NULL, "thread_pool_new(4) failed: %s", strerror(errno));
    for (int i = 0; i < 4; i++)
        expect(thread_pool_execute(pool, count_job, (void *)0) == 0, "thread_pool_execute failed");
    /* Every job done, and a moment more: each worker waits for the next one. */
    for (long long deadline = deadline_in(patience()); atomic_load(&ran) < 4 && ms_left(deadline);)
        harness_poll(NULL, 0, 5);
    harness_poll(NULL, 0, 50);
    drop_pool_within(pool, patience(), "a pool of 4 idle workers");
    stdout_captured();
    expect_drop_in_this_stage();
    expect_freed(blocks, "a pool of 4, 4 jobs, and its drop");
}

TEST(pool_new_and_drop_many_times)
{
    long blocks = pool_blocks();

    atomic_store(&ran, 0);
    capture_stdout();
    /* Neither hangs (Check's timeout) nor leaks (the sanitizer and valgrind runs). */
    for (int round = 0; round < 200; round++) {
        ThreadPool *pool = thread_pool_new(4);
        expect(pool != NULL, "round %d: thread_pool_new(4) failed: %s", round, strerror(errno));
        for (int i = 0; i < 4; i++)
            expect(thread_pool_execute(pool, count_job, (void *)0) == 0,
                   "round %d: thread_pool_execute failed", round);
        drop_pool_within(pool, patience(), "a pool of 4 with 4 jobs");
        if (round == 0 && pool_lacks() != NULL)
            break;
    }
    stdout_captured();
    expect_drop_in_this_stage();
    expect_freed(blocks, "200 rounds of a pool of 4, 4 jobs and a drop");
    expect(atomic_load(&ran) == 800,
           "200 rounds of a pool of 4, 4 jobs and a drop: %d of the 800 jobs ran before the drops "
           "returned",
           atomic_load(&ran));
}
