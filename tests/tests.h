/*
 * The one table of the suite. Each row names a test, the lesson it belongs to (its Check
 * test case), the stage that introduces it, the last stage whose behaviour it checks, and
 * the points it is worth when a grader grades a server (make grade): a test of a table of
 * cases (LOOP_TESTS below) shares its points among its cases.
 *
 * `make check-stepNN` runs the rows whose range holds NN, against stage NN's binary;
 * `make check-lessons` runs each stage's new rows against the stage before, where every
 * one of them must fail. Rows are in lesson order; a test is defined with TEST(name) in
 * the file named after its lesson.
 */
#ifndef TESTS_H
#define TESTS_H

#define LAST_STAGE 8

#define TESTS(X)                                                                                   \
    X(listen, listening_line_names_the_port, 1, LAST_STAGE, 2)                                     \
    X(listen, default_port_is_7878, 1, LAST_STAGE, 1)                                              \
    X(listen, port_in_use_is_one_line_and_exit_1, 1, LAST_STAGE, 1)                                \
    X(listen, bad_port_is_one_line_and_exit_1, 1, LAST_STAGE, 1)                                   \
    X(listen, listens_on_loopback_only, 1, LAST_STAGE, 1)                                          \
    X(listen, logs_each_connection, 1, 1, 2)                                                       \
    X(robust, survives_silent_client, 1, LAST_STAGE, 1)                                            \
    X(robust, survives_unfinished_line, 1, LAST_STAGE, 1)                                          \
    X(robust, survives_oversized_head, 1, LAST_STAGE, 1)                                           \
    X(robust, survives_binary_bytes, 1, LAST_STAGE, 1)                                             \
    X(robust, survives_reset_mid_request, 1, LAST_STAGE, 1)                                        \
    X(robust, survives_reset_before_answer, 1, LAST_STAGE, 1)                                      \
    X(read, prints_request_lines, 2, 4, 2)                                                         \
    X(read, escapes_quotes_and_unprintable_bytes, 2, 4, 1)                                         \
    X(read, accepts_lf_only_line_ends, 2, 4, 1)                                                    \
    X(read, prints_empty_request, 2, 4, 1)                                                         \
    X(read, prints_unfinished_line_at_end_of_stream, 2, 4, 1)                                      \
    X(read, reads_a_head_sent_in_pieces, 2, 4, 1)                                                  \
    X(read, head_ends_at_empty_line, 2, 4, 1)                                                      \
    X(read, reads_a_large_head, 2, 4, 1)                                                           \
    X(read, closes_on_oversized_head, 2, 4, 1)                                                     \
    X(hostile, survives_hostile_input, 2, LAST_STAGE, 4)                                           \
    X(hostile, survives_random_mutations, 2, LAST_STAGE, 2)                                        \
    X(hostile, hostile_input_keeps_memory_bounded, 2, LAST_STAGE, 2)                               \
    X(respond, answers_status_line_only, 3, 3, 2)                                                  \
    X(respond, answer_survives_unread_bytes, 3, LAST_STAGE, 2)                                     \
    X(html, answers_hello_page, 4, LAST_STAGE, 2)                                                  \
    X(html, answers_500_without_page, 4, LAST_STAGE, 1)                                            \
    X(html, answers_any_request_with_hello, 4, 4, 1)                                               \
    X(route, answers_404_page, 5, LAST_STAGE, 2)                                                   \
    X(route, request_line_must_match_exactly, 5, LAST_STAGE, 2)                                    \
    X(route, answers_431_to_oversized_head, 5, LAST_STAGE, 1)                                      \
    X(route, request_is_not_printed, 5, LAST_STAGE, 1)                                             \
    X(sleep, sleep_answers_hello_slowly, 6, LAST_STAGE, 2)                                         \
    X(sleep, root_waits_behind_sleep, 6, 6, 1)                                                     \
    X(sleep, slow_client_is_dropped, 6, LAST_STAGE, 2)                                             \
    X(sleep, root_waits_behind_slow_client, 6, 6, 1)                                               \
    X(pool, root_does_not_wait_for_sleep, 7, LAST_STAGE, 2)                                        \
    X(pool, four_slow_requests_at_once_fifth_waits, 7, LAST_STAGE, 3)                              \
    X(pool, threads_do_not_grow_with_clients, 7, LAST_STAGE, 2)                                    \
    X(pool, silent_clients_are_dropped_together, 7, LAST_STAGE, 1)                                 \
    X(pool, idle_clients_hold_workers_for_a_bounded_time, 7, LAST_STAGE, 1)                        \
    X(pool, survives_clients_leaving_before_their_answers, 7, LAST_STAGE, 1)                       \
    X(pool, survives_a_flood_of_connections, 7, LAST_STAGE, 2)                                     \
    X(pool, survives_running_out_of_descriptors, 7, LAST_STAGE, 1)                                 \
    X(pool_api, pool_refuses_zero_threads, 7, LAST_STAGE, 1)                                       \
    X(pool_api, pool_runs_every_job_once, 7, LAST_STAGE, 1)                                        \
    X(pool_api, pool_runs_four_jobs_at_once, 7, LAST_STAGE, 1)                                     \
    X(pool_api, pool_runs_no_more_jobs_at_once_than_its_threads, 7, LAST_STAGE, 1)                 \
    X(pool_api, pool_job_may_queue_a_job, 7, LAST_STAGE, 1)                                        \
    X(pool_api, pool_worker_waits_again_when_its_job_is_taken, 7, LAST_STAGE, 1)                   \
    X(shutdown, shuts_down_after_requests, 8, LAST_STAGE, 2)                                       \
    X(shutdown, default_requests_serves_default_requests, 8, LAST_STAGE, 1)                        \
    X(shutdown, queued_requests_finish_on_shutdown, 8, LAST_STAGE, 2)                              \
    X(shutdown, sigint_shuts_down_gracefully, 8, LAST_STAGE, 1)                                    \
    X(shutdown, sigterm_shuts_down_gracefully, 8, LAST_STAGE, 1)                                   \
    X(shutdown, shutdown_waits_a_bounded_time_for_idle_clients, 8, LAST_STAGE, 1)                  \
    X(shutdown, shutdown_with_requests_in_flight_many_times, 8, LAST_STAGE, 2)                     \
    X(shutdown, bad_requests_count_is_one_line_and_exit_1, 8, LAST_STAGE, 1)                       \
    X(drop_api, pool_drop_finishes_every_queued_job, 8, LAST_STAGE, 1)                             \
    X(drop_api, pool_drop_wakes_every_idle_worker, 8, LAST_STAGE, 1)                               \
    X(drop_api, pool_new_and_drop_many_times, 8, LAST_STAGE, 1)

/* The lessons whose tests call a stage's pool API directly (they link its pool.c), instead of
   running its server. */
#define POOL_LESSONS                                                                               \
    {                                                                                              \
        "pool_api", "drop_api"                                                                     \
    }

/* The tests that measure the server from outside (its memory, threads, open files, CPU time:
   system.h). Where the system cannot, the runner leaves them out and names them, as not run
   on this system: neither passed nor failed. */
#define MEASURING_TESTS                                                                            \
    {                                                                                              \
        "hostile_input_keeps_memory_bounded", "threads_do_not_grow_with_clients",                  \
            "survives_a_flood_of_connections", "survives_running_out_of_descriptors"               \
    }

/* Tests that run once for each case of a table of their own (Check's loop tests), each
   case passing or failing on its own: the count of cases each table defines, and a function
   that names case i. */
#define LOOP_TESTS(X) X(survives_hostile_input, hostile_case_count, hostile_case_name)

#define DECLARE_TEST(lesson, name, first, last, points) void name(int);
TESTS(DECLARE_TEST)
#undef DECLARE_TEST
#define DECLARE_CASES(name, count, case_name)                                                      \
    extern const int count;                                                                        \
    const char *case_name(int i);
LOOP_TESTS(DECLARE_CASES)
#undef DECLARE_CASES

#endif
