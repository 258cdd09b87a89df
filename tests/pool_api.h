/*
 * The thread pool API of stages 07 and 08 (their pool.h), for the tests that call it
 * directly. Each stage's runner links that stage's own pool.c. Stages before 07 have no
 * pool, and stage 07 has no thread_pool_drop: no_pool.c stands in for what a stage lacks,
 * so that every runner still links, and a test of a function the stage lacks fails with a
 * message instead (make check-lessons counts on that).
 */
#ifndef POOL_API_H
#define POOL_API_H

#include <stddef.h>

typedef struct ThreadPool ThreadPool;

ThreadPool *thread_pool_new(size_t num_threads);
int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg);
void thread_pool_drop(ThreadPool *pool);

/* The first of the functions above that a test called and the stage lacks (no_pool.c's
   stand-in ran instead), or NULL. */
const char *pool_lacks(void);

/* How many blocks the pool's own code has allocated and not freed (count_alloc.h). */
long pool_blocks(void);

/* Calls thread_pool_drop(pool) and waits up to timeout_ms for it to return: a drop that never
   returns fails the test, saying so (what: the pool and its jobs), instead of running into
   Check's time limit. */
void drop_pool_within(ThreadPool *pool, int timeout_ms, const char *what);

#endif
