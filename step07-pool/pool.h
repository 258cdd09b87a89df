/*
 * A thread pool: a fixed set of worker threads that run jobs from one shared queue. The C
 * counterpart of the reference's lib.rs; README.md beside this file explains it.
 */
#ifndef POOL_H
#define POOL_H

#include <stddef.h>

typedef struct ThreadPool ThreadPool;

/* Starts a pool of num_threads workers that wait for jobs. Returns NULL with errno set when
   num_threads is 0 (EINVAL: the reference's new() refuses it too), or when memory or a
   thread cannot be had. */
ThreadPool *thread_pool_new(size_t num_threads);

/* Queues the job function(arg) for the next free worker, which runs it once. Returns 0, or -1
   with errno set when the job cannot be queued (out of memory). */
int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg);

#endif
