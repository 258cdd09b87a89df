/*
 * The test runner: builds a Check suite for one stage from the table in tests.h and runs it.
 *
 *   check-runner STAGE SERVER          the tests that cover STAGE, against SERVER
 *   check-runner --new STAGE SERVER    only the tests STAGE introduces, against SERVER (the
 *                                      stage before): succeeds when every one of them fails
 *
 * Check's CK_RUN_SUITE, CK_RUN_CASE, CK_VERBOSITY, CK_TAP_LOG_FILE_NAME and
 * CK_XML_LOG_FILE_NAME work as usual.
 */
#include "harness.h"
#include "tests.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if CHECK_MAJOR_VERSION == 0 && CHECK_MINOR_VERSION < 13
#error "the suite needs Check 0.13 or newer"
#endif

/* Seconds a test may take before Check stops it; each wait inside a test is shorter. */
#define TEST_TIMEOUT 20

struct row {
    const char *lesson;
    TTest test;
    int first, last;
};

#define ROW(lesson, name, first, last) {#lesson, {#name, name, __FILE__, __LINE__}, first, last},
static const struct row table[] = {TESTS(ROW)};

struct loop {
    TFun test;
    const int *cases;
};

#define LOOP(name, count) {name, &count},
static const struct loop loops[] = {LOOP_TESTS(LOOP)};

/* How many times a test runs: once for each case of its table, or once. */
static int cases_of(const TTest *test)
{
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
        if (loops[i].test == test->fn)
            return *loops[i].cases;
    }
    return 1;
}

static Suite *stage_suite(int number, bool new_only)
{
    static char name[16];
    const char *lesson = NULL;
    TCase *tcase = NULL;

    snprintf(name, sizeof name, "step%02d", number);
    Suite *suite = suite_create(name);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const struct row *row = &table[i];
        if (new_only ? row->first != number : number < row->first || number > row->last)
            continue;
        /* Rows come in lesson order: a new lesson starts a new test case. */
        if (lesson == NULL || strcmp(lesson, row->lesson) != 0) {
            lesson = row->lesson;
            tcase = tcase_create(lesson);
            tcase_set_timeout(tcase, TEST_TIMEOUT);
            suite_add_tcase(suite, tcase);
        }
        tcase_add_loop_test(tcase, &row->test, 0, cases_of(&row->test));
    }
    return suite;
}

/* Reports the new tests that pass on the stage before: they prove nothing about the lesson. */
static int report_new_tests(SRunner *runner, int number, const char *server)
{
    int run = srunner_ntests_run(runner);
    int failed = srunner_ntests_failed(runner);
    TestResult **results = srunner_results(runner);

    for (int i = 0; i < run; i++) {
        if (tr_rtype(results[i]) == CK_PASS)
            printf("  a %s test (last checked at %s:%d) passes against %s\n", tr_tcname(results[i]),
                   tr_lfile(results[i]), tr_lno(results[i]), server);
    }
    free(results);
    printf("step%02d: %d of its %d new tests fail against %s%s\n", number, failed, run, server,
           run > 0 && failed == run ? ", as they must" : ": every new test must fail there");
    return run > 0 && failed == run ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int seconds_from_environment(const char *name, int fallback)
{
    const char *text = getenv(name);
    int seconds = text != NULL ? atoi(text) : 0;

    return seconds > 0 ? seconds : fallback;
}

static int usage(const char *program)
{
    fprintf(stderr, "usage: %s [--new] STAGE SERVER\n", program);
    return 2;
}

int main(int argc, char **argv)
{
    static char root[PATH_MAX], server[PATH_MAX];
    bool new_only = argc == 4 && strcmp(argv[1], "--new") == 0;
    int first_arg = new_only ? 2 : 1;

    if (argc != first_arg + 2)
        return usage(argv[0]);
    stage = atoi(argv[first_arg]);
    if (stage < 1 || stage > LAST_STAGE)
        return usage(argv[0]);
    /* Servers may run in another directory: they need the binary's absolute path. */
    if (realpath(argv[first_arg + 1], server) == NULL || getcwd(root, sizeof root) == NULL) {
        perror(argv[first_arg + 1]);
        return 2;
    }
    server_path = server;
    root_dir = root;
    const char *multiplier = getenv("CK_TIMEOUT_MULTIPLIER");
    if (multiplier != NULL && strtod(multiplier, NULL) >= 1)
        wait_ms = (int)(wait_ms * strtod(multiplier, NULL));
    sleep_seconds = seconds_from_environment("SLEEP_SECONDS", 5);
    head_timeout_seconds = seconds_from_environment("HEAD_TIMEOUT_SECONDS", 5);
    /* A server that closes early must fail a test, not kill the runner. */
    signal(SIGPIPE, SIG_IGN);

    SRunner *runner = srunner_create(stage_suite(stage, new_only));
    int status;
    if (new_only) {
        srunner_run_all(runner, CK_SILENT);
        status = report_new_tests(runner, stage, argv[first_arg + 1]);
    } else {
        srunner_run_all(runner, CK_ENV);
        status = srunner_ntests_failed(runner) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    srunner_free(runner);
    return status;
}
