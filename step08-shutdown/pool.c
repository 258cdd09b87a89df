/*
 * The thread pool of pool.h. The reference sends jobs down a channel whose receiving end
 * the workers share as Arc<Mutex<Receiver<Job>>>. C has no channel, so the pool builds one:
 * a queue of jobs, a mutex that guards it, and a condition variable on which idle workers
 * wait until a job arrives.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A job: the reference's boxed closure, as a function and the argument it runs with. */
typedef struct Job {
    void (*function)(void *);
    void *arg;
    struct Job *next; /* the job queued after this one */
} Job;

/* A worker: its id for the log, its thread, and the pool it takes jobs from. */
typedef struct Worker {
    size_t id;
    pthread_t thread;
    ThreadPool *pool;
} Worker;

/* The pool: one queue, shared by all its workers, and the workers themselves. */
struct ThreadPool {
    /* The queue, oldest job first, and what guards it: the mutex, and the condition variable
       on which idle workers wait until a job is queued. */
    pthread_mutex_t lock;
    pthread_cond_t job_queued;
    Job *first, *last;
    /* Set by thread_pool_drop: the counterpart of the reference's closed channel. */
    bool shutting_down;
    /* The workers started, each of which thread_pool_drop joins. */
    size_t num_workers;
    /* The workers, as many as thread_pool_new was asked for: a flexible array member, which
       takes its room from the same allocation as the pool. */
    Worker workers[];
};

/* The pthread calls that lock, wait and signal fail only in a broken program (a mutex used
   before it was made, say). Like the reference's expect(), stop loudly then. */
static void expect_ok(int error, const char *what)
{
    if (error != 0) {
        fprintf(stderr, "%s failed (error %d)\n", what, error);
        abort();
    }
}

/* Takes the oldest job off the queue, waiting for one; the caller owns it. Returns NULL
   once the pool is shutting down and the queue is empty: the reference's recv() error. */
static Job *take_job(ThreadPool *pool)
{
    expect_ok(pthread_mutex_lock(&pool->lock), "pthread_mutex_lock");
    /* Waking up does not promise a job: another worker may have taken it first, and a wait
       may also end for no reason at all (a spurious wakeup). So look again every time. */
    while (pool->first == NULL && !pool->shutting_down)
        expect_ok(pthread_cond_wait(&pool->job_queued, &pool->lock), "pthread_cond_wait");
    Job *job = pool->first;
    if (job != NULL) {
        pool->first = job->next;
        if (pool->first == NULL)
            pool->last = NULL;
    }
    expect_ok(pthread_mutex_unlock(&pool->lock), "pthread_mutex_unlock");
    return job;
}

/* The body of every worker thread: take a job, run it, until the pool shuts down. */
static void *worker_loop(void *arg)
{
    Worker *worker = arg;

    for (;;) {
        Job *job = take_job(worker->pool);
        if (job == NULL) {
            printf("Shutting down thread for worker: %zu\n", worker->id);
            return NULL;
        }
        /* The lock is released by now: other workers take jobs while this one runs. */
        printf("Worker %zu got a job; executing...\n", worker->id);
        job->function(job->arg);
        free(job);
    }
}

ThreadPool *thread_pool_new(size_t num_threads)
{
    ThreadPool *pool;
    int error;

    /* One allocation holds the pool and its workers[], as the reference's
       Vec::with_capacity(num_threads) allocates once. Its size is a product, which must not
       wrap around past SIZE_MAX to a small number: check before multiplying. */
    if (num_threads == 0 || num_threads > (SIZE_MAX - sizeof *pool) / sizeof(Worker)) {
        errno = num_threads == 0 ? EINVAL : ENOMEM;
        return NULL;
    }
    pool = calloc(1, sizeof *pool + num_threads * sizeof(Worker));
    if (pool == NULL)
        return NULL;
    error = pthread_mutex_init(&pool->lock, NULL);
    if (error == 0) {
        error = pthread_cond_init(&pool->job_queued, NULL);
        if (error != 0)
            pthread_mutex_destroy(&pool->lock);
    }
    if (error != 0) {
        free(pool);
        errno = error;
        return NULL;
    }
    for (size_t id = 0; id < num_threads; id++) {
        Worker *worker = &pool->workers[id];
        worker->id = id;
        worker->pool = pool;
        error = pthread_create(&worker->thread, NULL, worker_loop, worker);
        if (error != 0) {
            /* Stop the workers already started, and take the pool back. */
            thread_pool_drop(pool);
            errno = error;
            return NULL;
        }
        pool->num_workers++;
    }
    return pool;
}

int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg)
{
    Job *job = malloc(sizeof *job);

    if (job == NULL)
        return -1;
    *job = (Job){.function = function, .arg = arg};
    expect_ok(pthread_mutex_lock(&pool->lock), "pthread_mutex_lock");
    if (pool->last == NULL)
        pool->first = job;
    else
        pool->last->next = job;
    pool->last = job;
    expect_ok(pthread_mutex_unlock(&pool->lock), "pthread_mutex_unlock");
    /* One job needs one worker: wake one of those waiting, if any is. After the unlock, so
       that the worker does not wake only to wait for the mutex we still hold. */
    expect_ok(pthread_cond_signal(&pool->job_queued), "pthread_cond_signal");
    return 0;
}

void thread_pool_drop(ThreadPool *pool)
{
    expect_ok(pthread_mutex_lock(&pool->lock), "pthread_mutex_lock");
    pool->shutting_down = true;
    /* Every idle worker must wake up to see it: a signal would wake only one of them. */
    expect_ok(pthread_cond_broadcast(&pool->job_queued), "pthread_cond_broadcast");
    expect_ok(pthread_mutex_unlock(&pool->lock), "pthread_mutex_unlock");

    /* The reference takes each JoinHandle out of an Option to join it; in C the handle is a
       plain value, joined once here, and the pool is not used again. */
    for (size_t id = 0; id < pool->num_workers; id++) {
        printf("Shutting down worker %zu\n", id);
        expect_ok(pthread_join(pool->workers[id].thread, NULL), "pthread_join");
    }
    /* The queue is empty: each worker left only once it found it so. */
    pthread_cond_destroy(&pool->job_queued);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
