/*
 * pool.h -- worker threads that run queued jobs, and a graceful way to stop them (the
 * reference's ThreadPool with its Drop). Same API as the lesson's.
 */
#ifndef POOL_H
#define POOL_H

#include <stddef.h>

typedef struct ThreadPool ThreadPool;

/* Starts num_threads workers, ids 0 .. num_threads-1. NULL with errno = EINVAL for 0, or
   with errno set when memory or a thread is not available (nothing is left behind). */
ThreadPool *thread_pool_new(size_t num_threads);

/* Queues function(arg) for one of the workers. 0, or -1 with errno set (out of memory). */
int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg);

/* Stops the pool: jobs already queued still run, every worker is joined, memory freed. */
void thread_pool_drop(ThreadPool *pool);

#endif
