/*
 * pool.c -- a ring of job slots, and a linked list of workers that empty it.
 *
 * The jobs wait in one array of RING_SLOTS slots, allocated once and never grown, used as a
 * ring: `added` counts the jobs ever put in, `taken` the jobs ever taken out, so added - taken
 * jobs are waiting, and job number n lives in slot n % RING_SLOTS (a power of two, so the
 * counters may even wrap). RING_SLOTS is more jobs than a server can have waiting (each one
 * is a connection, which holds a descriptor), so the ring is not a limit the server meets;
 * should it fill, thread_pool_execute refuses the job with EAGAIN rather than wait.
 *
 * The workers are a linked list, newest first. A worker keeps the mutex while it looks for
 * work and lets go of it only to run a job. The pool has no drop in this stage: the flag
 * `closing` is there for thread_pool_new alone, to stop the workers it started when a later
 * one cannot be.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define RING_SLOTS ((size_t)1 << 16)

struct slot {
    void (*function)(void *);
    void *arg;
};

struct worker {
    size_t id;
    pthread_t thread;
    ThreadPool *pool;
    struct worker *next;
};

struct ThreadPool {
    pthread_mutex_t mutex;
    pthread_cond_t work_waiting; /* signalled for each job put in the ring */
    struct slot *ring;
    size_t added, taken;
    bool closing;
    struct worker *workers; /* newest first */
};

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    ThreadPool *pool = self->pool;

    pthread_mutex_lock(&pool->mutex);
    for (;;) {
        while (pool->added == pool->taken && !pool->closing)
            pthread_cond_wait(&pool->work_waiting, &pool->mutex);
        if (pool->added == pool->taken) /* closing, and nothing left */
            break;
        struct slot job = pool->ring[pool->taken % RING_SLOTS];
        pool->taken++;
        pthread_mutex_unlock(&pool->mutex);

        printf("Worker %zu got a job; executing...\n", self->id);
        job.function(job.arg);

        pthread_mutex_lock(&pool->mutex);
    }
    pthread_mutex_unlock(&pool->mutex);
    return NULL;
}

/* Stops and joins the workers started so far, and frees the pool: for a pool half made. */
static void undo(ThreadPool *pool)
{
    pthread_mutex_lock(&pool->mutex);
    pool->closing = true;
    pthread_cond_broadcast(&pool->work_waiting);
    pthread_mutex_unlock(&pool->mutex);
    while (pool->workers != NULL) {
        struct worker *w = pool->workers;
        pool->workers = w->next;
        pthread_join(w->thread, NULL);
        free(w);
    }
    pthread_cond_destroy(&pool->work_waiting);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->ring);
    free(pool);
}

ThreadPool *thread_pool_new(size_t num_threads)
{
    if (num_threads == 0) {
        errno = EINVAL;
        return NULL;
    }
    ThreadPool *pool = malloc(sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->ring = calloc(RING_SLOTS, sizeof *pool->ring);
    if (pool->ring == NULL) {
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->work_waiting, NULL);
    pool->added = pool->taken = 0;
    pool->closing = false;
    pool->workers = NULL;

    for (size_t id = 0; id < num_threads; id++) {
        struct worker *w = malloc(sizeof *w);
        int error = w == NULL ? ENOMEM : 0;
        if (w != NULL) {
            w->id = id;
            w->pool = pool;
            error = pthread_create(&w->thread, NULL, worker_main, w);
            if (error != 0)
                free(w);
        }
        if (error != 0) {
            undo(pool);
            errno = error;
            return NULL;
        }
        w->next = pool->workers;
        pool->workers = w;
    }
    return pool;
}

int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg)
{
    pthread_mutex_lock(&pool->mutex);
    if (pool->added - pool->taken == RING_SLOTS) {
        pthread_mutex_unlock(&pool->mutex);
        errno = EAGAIN;
        return -1;
    }
    pool->ring[pool->added % RING_SLOTS] = (struct slot){function, arg};
    pool->added++;
    pthread_cond_signal(&pool->work_waiting);
    pthread_mutex_unlock(&pool->mutex);
    return 0;
}
