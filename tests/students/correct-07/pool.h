/*
 * pool.h -- a fixed crew of worker threads that run queued jobs (student version of the
 * reference's ThreadPool). The API is the lesson's, name for name.
 */
#ifndef POOL_H
#define POOL_H

#include <stddef.h>

typedef struct ThreadPool ThreadPool;

/* A pool of num_threads workers (ids 0 .. num_threads-1), all waiting for jobs.
   NULL with errno = EINVAL for 0 threads, or with errno set when memory or a thread
   cannot be had. */
ThreadPool *thread_pool_new(size_t num_threads);

/* Queues function(arg) to be run once by the next idle worker. 0 on success, -1 with
   errno = ENOMEM when the queue cannot grow. */
int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg);

#endif
