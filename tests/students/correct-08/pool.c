/*
 * pool.c -- a FIFO of jobs (a singly linked list appended through a pointer to its last
 * link), one mutex, one condition variable, and an array of workers beside the pool.
 *
 * Stopping: `closing` is set under the mutex and every worker is woken. A worker leaves
 * only when it finds the list empty AND `closing` set, so whatever was queued before the
 * stop is still run. The caller then joins the workers one by one.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Job {
    void (*call)(void *);
    void *with;
    struct Job *after;
} Job;

typedef struct Worker {
    size_t id;
    pthread_t thread;
    ThreadPool *pool;
} Worker;

struct ThreadPool {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    Job *oldest;
    Job **append_at; /* &oldest when empty, else &newest->after */
    bool closing;
    Worker *workers; /* an array of its own */
    size_t running;  /* threads started, and so to be joined */
};

static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "thread pool: %s: %s\n", what, strerror(rc));
        abort();
    }
}

/* The next job, or NULL when the pool is closing and nothing is left. */
static Job *dequeue(ThreadPool *p)
{
    check(pthread_mutex_lock(&p->mu), "lock");
    while (p->oldest == NULL && !p->closing)
        check(pthread_cond_wait(&p->wake, &p->mu), "wait");
    Job *j = p->oldest;
    if (j != NULL) {
        p->oldest = j->after;
        if (p->oldest == NULL)
            p->append_at = &p->oldest;
    }
    check(pthread_mutex_unlock(&p->mu), "unlock");
    return j;
}

static void *work(void *arg)
{
    Worker *w = arg;
    Job *j;

    while ((j = dequeue(w->pool)) != NULL) {
        printf("Worker %zu got a job; executing...\n", w->id);
        j->call(j->with);
        free(j);
    }
    printf("Shutting down thread for worker: %zu\n", w->id);
    return NULL;
}

/* Closes the pool, wakes everyone, joins the started workers (announcing each when asked),
   and frees it all. */
static void wind_down(ThreadPool *p, bool announce)
{
    check(pthread_mutex_lock(&p->mu), "lock");
    p->closing = true;
    check(pthread_cond_broadcast(&p->wake), "broadcast");
    check(pthread_mutex_unlock(&p->mu), "unlock");
    for (size_t i = 0; i < p->running; i++) {
        if (announce)
            printf("Shutting down worker %zu\n", p->workers[i].id);
        check(pthread_join(p->workers[i].thread, NULL), "join");
    }
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

ThreadPool *thread_pool_new(size_t num_threads)
{
    int rc;

    if (num_threads == 0) {
        errno = EINVAL;
        return NULL;
    }
    ThreadPool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->workers = calloc(num_threads, sizeof *p->workers);
    if (p->workers == NULL) {
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->append_at = &p->oldest;
    rc = pthread_mutex_init(&p->mu, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&p->wake, NULL)) != 0)
        pthread_mutex_destroy(&p->mu);
    if (rc != 0) {
        free(p->workers);
        free(p);
        errno = rc;
        return NULL;
    }
    for (size_t i = 0; i < num_threads; i++) {
        p->workers[i].id = i;
        p->workers[i].pool = p;
        rc = pthread_create(&p->workers[i].thread, NULL, work, &p->workers[i]);
        if (rc != 0) {
            wind_down(p, false); /* stops and joins the ones already started */
            errno = rc;
            return NULL;
        }
        p->running++;
    }
    return p;
}

int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg)
{
    Job *j = malloc(sizeof *j);

    if (j == NULL)
        return -1;
    j->call = function;
    j->with = arg;
    j->after = NULL;
    check(pthread_mutex_lock(&pool->mu), "lock");
    *pool->append_at = j;
    pool->append_at = &j->after;
    check(pthread_cond_signal(&pool->wake), "signal");
    check(pthread_mutex_unlock(&pool->mu), "unlock");
    return 0;
}

void thread_pool_drop(ThreadPool *pool)
{
    wind_down(pool, true);
}
