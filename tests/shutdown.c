/*
 * Lesson 08, shutdown: after REQUESTS connections, or on SIGINT or SIGTERM, the server stops
 * accepting, answers every request it accepted, joins its workers with the reference's log
 * lines, and exits with status 0. Then the pool's drop, through the API.
 */
#include "harness.h"
#include "pool_api.h"
#include "tests.h"

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

/* Asserts that the server exits with status 0 within timeout_ms, and that what it logged
   from now on is `jobs` worker lines and the shutdown of a pool of four: the main thread's
   announcement; for each worker N, in order, "Shutting down worker N" from the main thread;
   and "Shutting down thread for worker: N" from the worker as it leaves, which the main
   thread waits for (joins) before it goes on to worker N+1. A worker may still take a job
   after the announcement: only the queue's end stops it. */
static void expect_graceful_exit(struct server *s, int jobs, int timeout_ms)
{
    char lines[32][64];
    int n = 0, worker_lines = 0;
    const char *line;

    ck_assert_msg(server_wait_exit(s, timeout_ms), "the server did not exit");
    ck_assert_msg(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0,
                  "expected exit status 0, got raw status %d; stderr: %s", s->status,
                  shown(s->err.text, s->err.len));
    while (n < 32 && (line = server_line(s, 0)) != NULL)
        snprintf(lines[n++], sizeof lines[0], "%s", line);
    ck_assert_msg(n == jobs + 9, "expected %d log lines, got %d", jobs + 9, n);
    int announced = line_index(lines, n, "Shutting down server, gracefully!");
    ck_assert_msg(announced >= 0, "no \"Shutting down server, gracefully!\"");
    int joined = announced; /* where the main thread is in its loop over the workers */
    for (int id = 0; id < 4; id++) {
        char said[64], left[64];
        snprintf(said, sizeof said, "Shutting down worker %d", id);
        snprintf(left, sizeof left, "Shutting down thread for worker: %d", id);
        int said_at = line_index(lines, n, said), left_at = line_index(lines, n, left);
        ck_assert_msg(said_at > joined, "\"%s\" is missing or out of order", said);
        ck_assert_msg(left_at > announced, "\"%s\" is missing or out of order", left);
        /* The main thread goes on to the next worker only once this one has left. */
        joined = said_at > left_at ? said_at : left_at;
        for (int i = 0; i < n; i++) {
            if (worker_in(lines[i]) == id) {
                ck_assert_msg(i < left_at, "worker %d took a job after it left", id);
                worker_lines++;
            }
        }
    }
    ck_assert_int_eq(worker_lines, jobs);
    server_stop_exited(s);
}

TEST(shuts_down_after_requests)
{
    struct server s;
    struct reply r;

    start_with_requests(&s, "2");
    int slow = client_request(s.port, SLEEP_REQUEST);
    exchange(&s, NORMAL_REQUEST, strlen(NORMAL_REQUEST), &r); /* the second: the last */
    expect_page(&r, "HTTP/1.1 200 OK", "www/hello.html");
    /* The slow request, accepted before the shutdown began, still gets all of its answer. */
    client_receive(slow, &r, sleep_seconds * 1000 + wait_ms);
    close(slow);
    expect_page(&r, "HTTP/1.1 200 OK", "www/hello.html");
    expect_graceful_exit(&s, 2, wait_ms);
}

TEST(default_requests_is_4)
{
    struct server s;
    struct reply r;

    start_with_requests(&s, NULL);
    for (int i = 0; i < 4; i++) {
        exchange(&s, NORMAL_REQUEST, strlen(NORMAL_REQUEST), &r);
        expect_page(&r, "HTTP/1.1 200 OK", "www/hello.html");
    }
    expect_graceful_exit(&s, 4, wait_ms);
}

TEST(queued_requests_finish_on_shutdown)
{
    static struct reply replies[6];
    long long ended[6];
    int fds[6];
    struct server s;

    /* Six slow requests: four run, two wait in the queue when the shutdown begins. */
    start_with_requests(&s, "6");
    long long start = now_ms();
    for (int i = 0; i < 6; i++)
        fds[i] = client_request(s.port, SLEEP_REQUEST);
    receive_each(fds, replies, ended, 6, start, 3 * sleep_seconds * 1000 + wait_ms);
    for (int i = 0; i < 6; i++) {
        close(fds[i]);
        expect_page(&replies[i], "HTTP/1.1 200 OK", "www/hello.html");
    }
    expect_graceful_exit(&s, 6, wait_ms);
}

/* Sends signal to a server with a slow request in flight: the request still gets all of its
   answer, and the server shuts down as after its last request. */
static void expect_signal_shutdown(int signal_number)
{
    struct server s;
    struct reply r;

    start_with_requests(&s, NULL);
    int slow = client_request(s.port, SLEEP_REQUEST);
    /* Once a worker has the job, the request is in flight. */
    const char *line = server_line(&s, wait_ms);
    ck_assert_msg(line != NULL && worker_in(line) >= 0, "no worker took the request");
    kill(s.pid, signal_number);
    client_receive(slow, &r, sleep_seconds * 1000 + wait_ms);
    close(slow);
    expect_page(&r, "HTTP/1.1 200 OK", "www/hello.html");
    expect_graceful_exit(&s, 0, wait_ms);
}

TEST(sigint_shuts_down_gracefully)
{
    expect_signal_shutdown(SIGINT);
}

TEST(sigterm_shuts_down_gracefully)
{
    expect_signal_shutdown(SIGTERM);
}

TEST(shutdown_waits_a_bounded_time_for_idle_clients)
{
    struct idle_clients idle;
    struct server s;
    /* As many idle clients as REQUESTS: the last one starts the shutdown, which waits for
       the four that have a worker, then for the four queued behind them. */
    long long bound = 2LL * (head_timeout_seconds * 1000 + LINGER_MS_MAX) + wait_ms;

    start_with_requests(&s, "8");
    idle_open(&idle, 8, s.port);
    long long start = now_ms();
    while (!server_wait_exit(&s, 0) && now_ms() - start < bound)
        idle_tick(&idle, 100);
    idle_close(&idle);
    expect_graceful_exit(&s, 8, 0);
}

TEST(shutdown_with_requests_in_flight_many_times)
{
    static struct reply replies[6];
    long long ended[6];
    int fds[6];

    for (int round = 0; round < 20; round++) {
        struct server s;
        start_with_requests(&s, "6");
        for (int i = 0; i < 6; i++)
            fds[i] = client_connect(s.port);
        /* The sixth connection starts the shutdown. Only then do the clients send their
           requests: every one of them is in flight, accepted and not yet answered. */
        ck_assert_msg(server_printed(&s, "Shutting down server, gracefully!", wait_ms),
                      "round %d: the shutdown did not begin", round);
        long long start = now_ms();
        for (int i = 0; i < 6; i++) {
            const char *request = i % 2 == 0 ? NORMAL_REQUEST : "GET /nowhere HTTP/1.1\r\n\r\n";
            ck_assert(client_send(fds[i], request, strlen(request)));
        }
        receive_each(fds, replies, ended, 6, start, wait_ms);
        for (int i = 0; i < 6; i++) {
            close(fds[i]);
            if (i % 2 == 0)
                expect_page(&replies[i], "HTTP/1.1 200 OK", "www/hello.html");
            else
                expect_page(&replies[i], "HTTP/1.1 404 NOT FOUND", "www/404.html");
        }
        expect_graceful_exit(&s, 6, wait_ms);
    }
}

TEST(bad_requests_count_is_one_line_and_exit_1)
{
    const char *bad[] = {"0", "-4", "four", "4x", "99999999999999999999"};
    struct server good;

    /* A good count starts the server... */
    start_with_requests(&good, "3");
    server_stop(&good);
    /* ...and bad ones stop it before it listens. */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"0", bad[i], NULL};
        struct server s;
        server_spawn(&s, NULL, args);
        ck_assert_msg(server_wait_exit(&s, wait_ms), "the server did not exit");
        ck_assert_msg(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 1,
                      "REQUESTS \"%s\": expected exit status 1", bad[i]);
        ck_assert_msg(s.out.len == 0 && s.err.len > 0 &&
                          strchr(s.err.text, '\n') == s.err.text + s.err.len - 1,
                      "REQUESTS \"%s\": expected one line on stderr and nothing on stdout", bad[i]);
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

static void expect_drop_in_this_stage(void)
{
    ck_assert_msg(thread_pool_new != NULL && thread_pool_execute != NULL &&
                      thread_pool_drop != NULL,
                  "this stage's pool has no thread_pool_drop");
}

TEST(pool_drop_finishes_every_queued_job)
{
    const char *goodbyes[] = {"Shutting down worker 0\n", "Shutting down worker 1\n",
                              "Shutting down thread for worker: 0\n",
                              "Shutting down thread for worker: 1\n"};

    expect_drop_in_this_stage();
    atomic_store(&ran, 0);
    capture_stdout();
    ThreadPool *pool = thread_pool_new(2);
    ck_assert(pool != NULL);
    /* Far more jobs than workers, 1 ms each: most are still queued when drop begins. */
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(thread_pool_execute(pool, count_job, (void *)1), 0);
    thread_pool_drop(pool);
    int after = atomic_load(&ran);
    const char *log = stdout_captured();
    ck_assert_msg(after == 100, "thread_pool_drop returned after %d of 100 jobs", after);
    for (size_t i = 0; i < sizeof goodbyes / sizeof goodbyes[0]; i++)
        ck_assert_msg(strstr(log, goodbyes[i]) != NULL, "no \"%.*s\" line",
                      (int)strlen(goodbyes[i]) - 1, goodbyes[i]);
}

TEST(pool_new_and_drop_many_times)
{
    expect_drop_in_this_stage();
    atomic_store(&ran, 0);
    capture_stdout();
    /* Neither hangs (Check's timeout) nor leaks (the sanitizer and valgrind runs). */
    for (int round = 0; round < 200; round++) {
        ThreadPool *pool = thread_pool_new(4);
        ck_assert(pool != NULL);
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(thread_pool_execute(pool, count_job, (void *)0), 0);
        thread_pool_drop(pool);
    }
    stdout_captured();
    ck_assert_int_eq(atomic_load(&ran), 800);
}
