/*
 * What the harness needs of the system beyond POSIX, in one place: the suite builds and runs
 * on Linux (glibc and musl), macOS and the BSDs. Everything here is plain POSIX except the
 * measures, which read Linux's /proc; where a system has no /proc, system_can_measure() says
 * so, and the runner leaves out the tests that measure (MEASURING_TESTS in tests.h) and names
 * them as not run on this system. No other file of tests/ reaches past POSIX.
 */
#ifndef SYSTEM_H
#define SYSTEM_H

#include <stdbool.h>
#include <sys/types.h>

/* A watcher that kills a server (SIGKILL) if the process that started it ends first: a test
   that crashes or is stopped never leaves its server running. POSIX has no parent-death
   signal, so the watcher is a small process of its own that waits on a pipe from the test:
   the pipe ends without a word when the test process ends, however it ends. */
struct watcher {
    pid_t pid;
    int pipe; /* the test's end; -1 when there is no watcher */
};
/* Starts the watcher of server; false (errno set) when it could not be started. */
bool watcher_start(struct watcher *w, pid_t server);
/* Tells the watcher that the server has been reaped, so that it must not kill; waits for it. */
void watcher_stop(struct watcher *w);

/* In a child of the test: closes every file descriptor from 3 on but keep (-1: none), so that
   the child holds none of the test's connections and pipes, which would stay open after the
   test closed them. */
void close_inherited_files(int keep);

/* The name of a signal, "SIGSEGV", or NULL for one POSIX does not name. */
const char *signal_name(int signal);

/* Whether this system lets the harness measure a running process from outside: its memory,
   threads, open files and CPU time. */
bool system_can_measure(void);
/* Why the tests of MEASURING_TESTS are left out where the system cannot measure: the
   runner's note. */
extern const char SYSTEM_CANNOT_MEASURE[];
/* The measures of process pid, each false when it cannot be taken (the process has ended,
   or the system cannot measure): its peak and current resident memory in kB, its threads,
   its open files, and the CPU time it has used, user and system, in milliseconds. */
bool measure_peak_memory_kb(pid_t pid, long *kb);
bool measure_memory_kb(pid_t pid, long *kb);
bool measure_threads(pid_t pid, long *threads);
bool measure_open_files(pid_t pid, int *files);
bool measure_cpu_ms(pid_t pid, long long *ms);

#endif
