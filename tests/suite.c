/*
 * The test runner: builds a Check suite for one stage from the table in tests.h and runs it.
 *
 *   check-runner [OPTIONS] STAGE SERVER   the tests that cover STAGE, against SERVER
 *   check-runner --list                   the table, as JSON (for make grade)
 *
 *   --new         only the tests STAGE introduces, against SERVER (the stage before):
 *                 succeeds when every one of them fails there
 *   --no-pool     leave out the tests of the pool's API: the pool.c this runner links is not
 *                 the server's (a grader's SERVER= without POOL=)
 *   --allow-none  a CK_RUN_SUITE or CK_RUN_CASE that names tests of other stages only is not
 *                 an error here (make check runs every stage's runner with the same filter)
 *   --report F    writes to file F, as JSON, the tests of STAGE that this run leaves out and
 *                 why ("pool": --no-pool; "system": it cannot measure a process, system.h),
 *                 and the causes that several of its failures share
 *
 * Check's CK_RUN_SUITE, CK_RUN_CASE (a lesson, or here also one test's name), CK_VERBOSITY,
 * CK_TIMEOUT_MULTIPLIER, CK_TAP_LOG_FILE_NAME and CK_XML_LOG_FILE_NAME work as usual; the
 * runner writes the TAP log itself, with names that stay the same whether a test passes or
 * fails: "step05:hostile:survives_hostile_input:14".
 */
#include "harness.h"
#include "system.h"
#include "tests.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if CHECK_MAJOR_VERSION == 0 && CHECK_MINOR_VERSION < 13
#error "the suite needs Check 0.13 or newer"
#endif

struct row {
    const char *lesson;
    TTest test;
    int first, last;
    int points;
};

#define ROW(lesson, name, first, last, points)                                                     \
    {#lesson, {#name, name, __FILE__, __LINE__}, first, last, points},
static const struct row table[] = {TESTS(ROW)};
#define ROWS (sizeof table / sizeof table[0])

struct loop {
    TFun test;
    const int *cases;
    const char *(*case_name)(int);
};

#define LOOP(name, count, case_name) {name, &count, case_name},
static const struct loop loops[] = {LOOP_TESTS(LOOP)};

static const char *const pool_lessons[] = POOL_LESSONS;
static const char *const measuring_tests[] = MEASURING_TESTS;

/* The loop of a test, or NULL for a test that runs once. */
static const struct loop *loop_of(const struct row *row)
{
    for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
        if (loops[i].test == row->test.fn)
            return &loops[i];
    }
    return NULL;
}

static int cases_of(const struct row *row)
{
    const struct loop *loop = loop_of(row);
    return loop != NULL ? *loop->cases : 1;
}

static bool tests_the_pool(const struct row *row)
{
    for (size_t i = 0; i < sizeof pool_lessons / sizeof pool_lessons[0]; i++) {
        if (strcmp(row->lesson, pool_lessons[i]) == 0)
            return true;
    }
    return false;
}

static bool measures(const struct row *row)
{
    for (size_t i = 0; i < sizeof measuring_tests / sizeof measuring_tests[0]; i++) {
        if (strcmp(row->test.name, measuring_tests[i]) == 0)
            return true;
    }
    return false;
}

/* Why a run leaves a test of its stage out: it was told to (--no-pool), or the system cannot
   do what the test needs; NULL when it runs the test. */
static const char *left_out_because(const struct row *row, bool no_pool, bool can_measure)
{
    if (no_pool && tests_the_pool(row))
        return "pool";
    if (!can_measure && measures(row))
        return "system";
    return NULL;
}

/* Prints the table as JSON: every row, its points, and the names of a loop test's cases. */
static int list_table(void)
{
    printf("{\"last_stage\": %d, \"tests\": [", LAST_STAGE);
    for (size_t i = 0; i < ROWS; i++) {
        const struct row *row = &table[i];
        const struct loop *loop = loop_of(row);
        printf("%s\n  {\"lesson\": \"%s\", \"name\": \"%s\", \"first\": %d, \"last\": %d, "
               "\"points\": %d, \"pool\": %s, \"measures\": %s, \"cases\": ",
               i > 0 ? "," : "", row->lesson, row->test.name, row->first, row->last, row->points,
               tests_the_pool(row) ? "true" : "false", measures(row) ? "true" : "false");
        if (loop == NULL) {
            printf("null}");
            continue;
        }
        printf("[");
        for (int c = 0; c < *loop->cases; c++) /* the names hold no quote or backslash */
            printf("%s\"%s\"", c > 0 ? ", " : "", loop->case_name(c));
        printf("]}");
    }
    printf("\n]}\n");
    return EXIT_SUCCESS;
}

/* The tests this run will run, in the order Check runs them: one entry per case. */
struct planned {
    const struct row *row;
    int iteration;
};
static struct planned plan[1024];
static int planned;

/* What CK_RUN_SUITE and CK_RUN_CASE ask for. The runner selects the tests itself (and takes
   them away from Check), so that it knows which ran, in which order, and can say so when a
   filter matches nothing. */
struct filter {
    const char *suite, *test_case;
};

static bool row_selected(const struct row *row, const struct filter *f)
{
    return f->test_case == NULL || strcmp(f->test_case, row->lesson) == 0 ||
           strcmp(f->test_case, row->test.name) == 0;
}

static Suite *stage_suite(int number, bool new_only, bool no_pool, bool can_measure,
                          const struct filter *f)
{
    static char name[16];
    const char *lesson = NULL;
    TCase *tcase = NULL;

    snprintf(name, sizeof name, "step%02d", number);
    Suite *suite = suite_create(name);
    if (f->suite != NULL && strcmp(f->suite, name) != 0)
        return suite;
    for (size_t i = 0; i < ROWS; i++) {
        const struct row *row = &table[i];
        if (new_only ? row->first != number : number < row->first || number > row->last)
            continue;
        if (left_out_because(row, no_pool, can_measure) != NULL || !row_selected(row, f))
            continue;
        /* Rows come in lesson order: a new lesson starts a new test case. */
        if (lesson == NULL || strcmp(lesson, row->lesson) != 0) {
            lesson = row->lesson;
            tcase = tcase_create(lesson);
            tcase_set_timeout(tcase, test_timeout_seconds());
            tcase_add_checked_fixture(tcase, harness_test_setup, NULL);
            if (tests_the_pool(row))
                tcase_add_checked_fixture(tcase, pool_test_setup, pool_test_teardown);
            suite_add_tcase(suite, tcase);
        }
        tcase_add_loop_test(tcase, &row->test, 0, cases_of(row));
        for (int c = 0; c < cases_of(row) && planned < (int)(sizeof plan / sizeof plan[0]); c++)
            plan[planned++] = (struct planned){row, c};
    }
    return suite;
}

/* Says why a run has no test to run, and what there is; returns the exit status. */
static int nothing_to_run(int number, const struct filter *f, bool allow_none, bool no_pool)
{
    bool known_suite = f->suite == NULL, known_case = f->test_case == NULL;

    for (int n = 1; n <= LAST_STAGE && !known_suite; n++) {
        char name[16];
        snprintf(name, sizeof name, "step%02d", n);
        known_suite = strcmp(f->suite, name) == 0;
    }
    for (size_t i = 0; i < ROWS && !known_case; i++)
        known_case = row_selected(&table[i], f);
    if (allow_none && known_suite && known_case) {
        printf("step%02d: no test of this stage matches%s%s%s%s: nothing to run here\n", number,
               f->suite != NULL ? " CK_RUN_SUITE=" : "", f->suite != NULL ? f->suite : "",
               f->test_case != NULL ? " CK_RUN_CASE=" : "",
               f->test_case != NULL ? f->test_case : "");
        return EXIT_SUCCESS;
    }
    fprintf(stderr, "step%02d: no test to run:", number);
    if (f->suite != NULL)
        fprintf(stderr, " CK_RUN_SUITE=%s%s", f->suite,
                known_suite ? "" : " is not a stage (step01 to step08)");
    if (f->test_case != NULL)
        fprintf(stderr, " CK_RUN_CASE=%s%s", f->test_case,
                known_case ? "" : " names no lesson and no test");
    if (no_pool)
        fprintf(stderr, " (the pool's tests are left out: no POOL=)");
    fprintf(stderr, ".\nThe lessons of step%02d, each with its tests:\n", number);
    const char *lesson = NULL;
    for (size_t i = 0; i < ROWS; i++) {
        const struct row *row = &table[i];
        if (number < row->first || number > row->last)
            continue;
        if (lesson == NULL || strcmp(lesson, row->lesson) != 0)
            fprintf(stderr, "%s  %s:", lesson != NULL ? "\n" : "", row->lesson);
        lesson = row->lesson;
        fprintf(stderr, " %s", row->test.name);
    }
    fprintf(stderr, "\n");
    return EXIT_FAILURE;
}

/* Says which tests of the stage this run leaves out because the system cannot measure. */
static void say_left_out(int number, bool no_pool, bool can_measure)
{
    char names[2048] = "";
    int system = 0;

    for (size_t i = 0; i < ROWS; i++) {
        const struct row *row = &table[i];
        const char *why = left_out_because(row, no_pool, can_measure);
        if (number < row->first || number > row->last || why == NULL || strcmp(why, "system") != 0)
            continue;
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s:%s", system++ > 0 ? ", " : "", row->lesson,
                 row->test.name);
    }
    if (system > 0)
        printf("step%02d: %d %s not run on this system, neither passed nor failed: %s. %s\n",
               number, system, system == 1 ? "test is" : "tests are", names, SYSTEM_CANNOT_MEASURE);
}

/* The name of the test that ran in place i of the run, "lesson:test" or "lesson:test:CASE",
   written into name. */
static const char *planned_name(char name[160], int i)
{
    const struct planned *p = &plan[i];

    if (i < 0 || i >= planned)
        return "?";
    snprintf(name, 160, "%s:%s", p->row->lesson, p->row->test.name);
    if (loop_of(p->row) != NULL)
        snprintf(name + strlen(name), 160 - strlen(name), ":%d", p->iteration);
    return name;
}

/* Writes text to json as a JSON string. */
static void json_string(FILE *json, const char *text)
{
    fputc('"', json);
    for (const unsigned char *at = (const unsigned char *)text; *at != '\0'; at++) {
        if (*at == '"' || *at == '\\')
            fprintf(json, "\\%c", *at);
        else if (*at < ' ')
            fprintf(json, "\\u%04x", *at);
        else
            fputc(*at, json);
    }
    fputc('"', json);
}

/* Says, once each, the causes that several failures of the run share: one difference (a
   header the stage does not send, a crash) that fails fifty tests is one mistake. Each such
   cause, with its tests, also goes to json. */
static void say_shared_causes(int number, FILE *json)
{
    int n = harness_failures(), groups = 0;

    for (int i = 0; i < n; i++) {
        int test, other, count = 0;
        const char *cause = harness_failure_cause(i, &test);
        bool first = *cause != '\0';
        for (int j = 0; j < n && first; j++) {
            bool same = strcmp(harness_failure_cause(j, &other), cause) == 0;
            first = !(same && j < i);
            count += same;
        }
        if (!first || count < 2)
            continue;
        printf("step%02d: %d failures share one cause: %s\n", number, count, cause);
        if (json == NULL)
            continue;
        fprintf(json, "%s\n  {\"count\": %d, \"cause\": ", groups++ > 0 ? "," : "", count);
        json_string(json, cause);
        fprintf(json, ", \"tests\": [");
        for (int j = 0, listed = 0; j < n; j++) {
            if (strcmp(harness_failure_cause(j, &other), cause) == 0)
                fprintf(json, "%s\"%s\"", listed++ > 0 ? ", " : "",
                        planned_name((char[160]){""}, other));
        }
        fprintf(json, "]}");
    }
}

/* Writes the report make grade reads: what the run tested (the sentence it prints first), the
   tests of the stage that it left out and why ("pool": --no-pool; "system": it cannot measure
   a process), and the causes that several failures share. */
static void write_report(const char *path, const char *testing, int number, bool no_pool,
                         bool can_measure, bool ran)
{
    FILE *json = fopen(path, "w");
    int left = 0;

    if (json == NULL) {
        perror(path);
        return;
    }
    fprintf(json, "{\"testing\": ");
    json_string(json, testing);
    fprintf(json, ", \"left_out\": [");
    for (size_t i = 0; i < ROWS; i++) {
        const struct row *row = &table[i];
        const char *why = left_out_because(row, no_pool, can_measure);
        if (number >= row->first && number <= row->last && why != NULL)
            fprintf(json, "%s\n  {\"lesson\": \"%s\", \"name\": \"%s\", \"why\": \"%s\"}",
                    left++ > 0 ? "," : "", row->lesson, row->test.name, why);
    }
    fprintf(json, "\n], \"shared_causes\": [");
    if (ran)
        say_shared_causes(number, json);
    fprintf(json, "\n]}\n");
    fclose(json);
}

/* Writes the TAP log: one line per case, named the same whether it passed or failed, with
   the failure's message after it as TAP diagnostics. */
static void write_tap(const char *path, SRunner *runner, int number)
{
    int run = srunner_ntests_run(runner);
    TestResult **results = srunner_results(runner);
    FILE *tap = fopen(path, "w");

    if (tap == NULL) {
        perror(path);
        free(results);
        return;
    }
    fprintf(tap, "1..%d\n", run);
    for (int i = 0; i < run; i++) {
        const struct planned *p = i < planned && run == planned ? &plan[i] : NULL;
        bool passed = tr_rtype(results[i]) == CK_PASS;
        fprintf(tap, "%sok %d - step%02d:%s:%s", passed ? "" : "not ", i + 1, number,
                tr_tcname(results[i]), p != NULL ? p->row->test.name : "?");
        if (p != NULL && loop_of(p->row) != NULL)
            fprintf(tap, ":%d", p->iteration);
        fprintf(tap, "\n");
        for (const char *line = tr_msg(results[i]); !passed && line != NULL && *line != '\0';) {
            size_t len = strcspn(line, "\n");
            fprintf(tap, "# %.*s\n", (int)len, line);
            line += len + (line[len] == '\n');
        }
    }
    fclose(tap);
    free(results);
}

/* Reports the new tests that pass on the stage before: they prove nothing about the lesson. */
static int report_new_tests(SRunner *runner, int number, const char *server)
{
    int run = srunner_ntests_run(runner);
    int failed = srunner_ntests_failed(runner);
    TestResult **results = srunner_results(runner);

    for (int i = 0; i < run; i++) {
        if (tr_rtype(results[i]) == CK_PASS)
            printf("  a %s test (%s) passes against %s\n", tr_tcname(results[i]),
                   i < planned && run == planned ? plan[i].row->test.name : "?", server);
    }
    free(results);
    printf("step%02d: %d of its %d new tests fail against %s%s\n", number, failed, run, server,
           run > 0 && failed == run ? ", as they must" : ": every new test must fail there");
    return run > 0 && failed == run ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* A number from the environment (a timing, in whole seconds; the pool's size), from 1 to most,
   or fallback where it is not set; -1 (said on stderr) for anything else: never guessed. */
static int number_from_environment(const char *name, int fallback, int most, const char *unit)
{
    const char *text = getenv(name);
    char *end;

    if (text == NULL || *text == '\0')
        return fallback;
    errno = 0;
    long number = *text >= '0' && *text <= '9' ? strtol(text, &end, 10) : 0;
    if (errno == 0 && number >= 1 && number <= most && *end == '\0')
        return (int)number;
    fprintf(stderr,
            "%s (SERVER_%s for a server of your own) must be a whole number of %s, from 1 to "
            "%d, not \"%s\"\n",
            name, name, unit, most, text);
    return -1;
}

/* A variable of the environment, taken away from Check: the runner does its work. */
static const char *take_variable(const char *name)
{
    const char *value = getenv(name);
    static char copies[3][PATH_MAX];
    static int used;

    if (value == NULL || *value == '\0' || used == 3)
        return NULL;
    snprintf(copies[used], sizeof copies[used], "%s", value);
    unsetenv(name);
    return copies[used++];
}

static int usage(const char *program)
{
    fprintf(stderr,
            "usage: %s [--new] [--no-pool] [--allow-none] [--report FILE] STAGE SERVER\n"
            "       %s --list\n",
            program, program);
    return 2;
}

int main(int argc, char **argv)
{
    static char root[PATH_MAX], server[PATH_MAX];
    bool new_only = false, no_pool = false, allow_none = false;
    const char *report = NULL;
    int arg = 1;

    if (argc == 2 && strcmp(argv[1], "--list") == 0)
        return list_table();
    for (; arg < argc && strncmp(argv[arg], "--", 2) == 0; arg++) {
        if (strcmp(argv[arg], "--new") == 0)
            new_only = true;
        else if (strcmp(argv[arg], "--no-pool") == 0)
            no_pool = true;
        else if (strcmp(argv[arg], "--allow-none") == 0)
            allow_none = true;
        else if (strcmp(argv[arg], "--report") == 0 && arg + 1 < argc)
            report = argv[++arg];
        else
            return usage(argv[0]);
    }
    if (argc != arg + 2)
        return usage(argv[0]);
    tested.stage = atoi(argv[arg]);
    if (tested.stage < 1 || tested.stage > LAST_STAGE)
        return usage(argv[0]);
    stage_does_set(tested.stage);
    /* Servers may run in another directory: they need the binary's absolute path. */
    if (realpath(argv[arg + 1], server) == NULL || getcwd(root, sizeof root) == NULL) {
        fprintf(stderr, "step%02d: cannot test %s: %s\n", tested.stage, argv[arg + 1],
                strerror(errno));
        return 2;
    }
    if (access(server, X_OK) != 0) {
        fprintf(stderr, "step%02d: cannot test %s: it is not an executable file\n", tested.stage,
                argv[arg + 1]);
        return 2;
    }
    tested.server_path = server;
    tested.root_dir = root;
    const char *multiplier = getenv("CK_TIMEOUT_MULTIPLIER");
    if (multiplier != NULL && strtod(multiplier, NULL) >= 1)
        tested.time_multiplier = strtod(multiplier, NULL);
    tested.sleep_seconds = number_from_environment("SLEEP_SECONDS", 5, 3600, "seconds");
    tested.head_timeout_seconds =
        number_from_environment("HEAD_TIMEOUT_SECONDS", 5, 3600, "seconds");
    tested.threads = number_from_environment("THREADS", 4, THREADS_MAX, "threads");
    tested.default_requests = number_from_environment("REQUESTS", 4, THREADS_MAX, "requests");
    if (tested.sleep_seconds < 0 || tested.head_timeout_seconds < 0 || tested.threads < 0 ||
        tested.default_requests < 0)
        return 2;
    /* A server that closes early must fail a test, not kill the runner. */
    signal(SIGPIPE, SIG_IGN);
    /* Room for the messages that say what a test sent, what came back, and the server's
       stderr. */
    check_set_max_msg_size(16384);

    struct filter filter = {take_variable("CK_RUN_SUITE"), take_variable("CK_RUN_CASE")};
    const char *tap = take_variable("CK_TAP_LOG_FILE_NAME");
    bool can_measure = system_can_measure();
    SRunner *runner =
        srunner_create(stage_suite(tested.stage, new_only, no_pool, can_measure, &filter));
    /* What is tested, and the numbers the tests take the server to have. */
    char testing[1024], pool[32] = "", requests[40] = "";
    if (tested.stage >= 7)
        snprintf(pool, sizeof pool, ", a pool of %d", tested.threads);
    if (tested.stage >= 8)
        snprintf(requests, sizeof requests, ", %d requests by default", tested.default_requests);
    snprintf(testing, sizeof testing,
             "step%02d: testing %s (GET /sleep takes %d s, the head timeout is %d s%s%s)",
             tested.stage, argv[arg + 1], tested.sleep_seconds, tested.head_timeout_seconds, pool,
             requests);
    if (planned == 0) {
        srunner_free(runner);
        if (report != NULL)
            write_report(report, testing, tested.stage, no_pool, can_measure, false);
        return nothing_to_run(tested.stage, &filter, allow_none, no_pool);
    }
    if (!new_only)
        printf("%s\n", testing);
    if (no_pool && tested.stage >= 7)
        printf("step%02d: the tests of the pool's API (pool_api%s) are not run: they call a "
               "pool.c, and this run has none of the server's (POOL=dir gives one)\n",
               tested.stage, tested.stage >= 8 ? ", drop_api" : "");
    say_left_out(tested.stage, no_pool, can_measure);
    fflush(stdout);

    /* A report now, in case the run dies before its end, and again at the end. */
    if (report != NULL)
        write_report(report, testing, tested.stage, no_pool, can_measure, false);
    harness_begin();
    int status;
    if (new_only) {
        srunner_run_all(runner, CK_SILENT);
        status = report_new_tests(runner, tested.stage, argv[arg + 1]);
    } else {
        srunner_run_all(runner, CK_ENV);
        if (srunner_ntests_run(runner) == 0) {
            fprintf(stderr,
                    "step%02d: Check ran no test (CK_INCLUDE_TAGS or CK_EXCLUDE_TAGS?): "
                    "a run of no tests proves nothing\n",
                    tested.stage);
            status = EXIT_FAILURE;
        } else {
            status = srunner_ntests_failed(runner) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        }
        if (tap != NULL)
            write_tap(tap, runner, tested.stage);
        if (report != NULL)
            write_report(report, testing, tested.stage, no_pool, can_measure, true);
        else
            say_shared_causes(tested.stage, NULL);
    }
    harness_end();
    srunner_free(runner);
    return status;
}
