/*
 * pool.h -- a thread pool: a fixed set of worker threads that run the jobs they are handed,
 * each once, in the order they were handed in. The lesson's API, name for name.
 */
#ifndef POOL_H
#define POOL_H

#include <stddef.h>

typedef struct ThreadPool ThreadPool;

/* Starts num_threads workers (numbered 0 to num_threads - 1), idle until jobs come.
   NULL with errno EINVAL for 0 workers; NULL with errno set when memory or a thread cannot
   be had (the workers already started are stopped again). */
ThreadPool *thread_pool_new(size_t num_threads);

/* Hands function(arg) to the pool: the next idle worker runs it. 0, or -1 with errno set:
   EAGAIN when every slot of the pool's job ring is taken (see pool.c). */
int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg);

#endif
