/*
 * Lesson 06, sleep: a single thread waits for whatever is slow. GET /sleep answers like GET /
 * after a pause, a client that is slow to send its head is dropped after the head timeout,
 * and while either holds the one thread, every other client waits.
 */
#include "harness.h"
#include "tests.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TEST(sleep_answers_hello_slowly)
{
    char hint[400];
    struct server s;
    struct reply r;

    server_start(&s);
    long long start = now_ms();
    int fd = client_request(s.port, SLEEP_REQUEST);
    client_receive(fd, &r, tested.sleep_seconds * 1000 + patience());
    close(fd);
    long long took = now_ms() - start;
    expect_answer_to(&r, SLEEP_REQUEST);
    expect_hinted(took >= tested.sleep_seconds * 900,
                  timing_hint(hint, sizeof hint, "SLEEP_SECONDS", tested.sleep_seconds, took, NULL),
                  "GET /sleep was answered after %lld ms, where it takes SLEEP_SECONDS, %d s", took,
                  tested.sleep_seconds);
    server_stop(&s);
}

TEST(root_waits_behind_sleep)
{
    struct server s;

    server_start(&s);
    long long took = root_behind_sleep(&s);
    /* One thread: GET / is read only once /sleep is answered. */
    expect(took >= tested.sleep_seconds * 500,
           "GET / was answered after %lld ms, behind GET /sleep: it did not wait, but this stage "
           "has one thread",
           took);
    server_stop(&s);
}

TEST(slow_client_is_dropped)
{
    const char *start = "GET / HTTP/1.1\r\nX-Trickle: ";
    long long bound = tested.head_timeout_seconds * 1000LL + patience();
    struct pollfd closed = {.events = POLLIN};
    char scrap[256], hint[400];
    struct server s;

    server_start(&s);
    /* One byte every tenth of a second: a deadline for each read would never come, the
       deadline for the whole head does. */
    closed.fd = client_request(s.port, start);
    long long began = now_ms();
    note_case("\"%s\" and then one byte \"a\" every tenth of a second",
              shown(start, strlen(start)));
    while (harness_poll(&closed, 1, 100) == 0 && now_ms() - began < bound)
        send(closed.fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    long long took = now_ms() - began;
    ssize_t n = recv(closed.fd, scrap, sizeof scrap, MSG_DONTWAIT);
    close(closed.fd);
    expect_hinted(took < bound, HINT_HEAD_TIMEOUT,
                  "the trickling client was still connected after %lld ms; the head timeout is "
                  "%d s (if the server's is longer, say so: SERVER_HEAD_TIMEOUT_SECONDS)",
                  took, tested.head_timeout_seconds);
    expect_hinted(n <= 0, HINT_HEAD_TIMEOUT,
                  "a client whose head never ended got an answer: \"%s\"; it must be dropped "
                  "without one",
                  shown(scrap, n > 0 ? (size_t)n : 0));
    expect_hinted(took >= tested.head_timeout_seconds * 900,
                  timing_hint(hint, sizeof hint, "HEAD_TIMEOUT_SECONDS",
                              tested.head_timeout_seconds, took, HINT_HEAD_TIMEOUT),
                  "the trickling client was dropped after %lld ms, before the head timeout of %d "
                  "s",
                  took, tested.head_timeout_seconds);
    expect_served(&s);
    server_stop(&s);
}

TEST(root_waits_behind_slow_client)
{
    struct server s;
    struct reply r;

    server_start(&s);
    /* A client that sends nothing holds the only thread until the head timeout. */
    int silent = client_connect(s.port);
    long long start = now_ms();
    int fd = client_request(s.port, NORMAL_REQUEST);
    note_case("a client that sends nothing, then GET / on a second connection");
    client_receive(fd, &r, tested.head_timeout_seconds * 1000 + LINGER_MS_MAX + patience());
    long long took = now_ms() - start;
    close(fd);
    close(silent);
    expect_answer_to(&r, NORMAL_REQUEST);
    /* It waited for something, only not as long as the test thought: other timings? */
    char hint[400];
    expect_hinted(took >= tested.head_timeout_seconds * 500,
                  timing_hint(hint, sizeof hint, "HEAD_TIMEOUT_SECONDS",
                              tested.head_timeout_seconds, took, NULL),
                  "GET / was answered after %lld ms, behind a silent client: %s", took,
                  took < 500 ? "it did not wait, but this stage has one thread"
                             : "not half of the head timeout it should have waited for");
    server_stop(&s);
}
