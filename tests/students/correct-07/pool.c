/*
 * pool.c -- the crew and its job ring.
 *
 * Jobs wait in a circular array (a ring): `front` is the oldest job, `pending` how many
 * there are. When the ring is full it is doubled, oldest job first, so execute() never
 * has to wait for room. One mutex guards the ring; idle workers sleep on a condition
 * variable until a job is put in. The workers live in their own array, beside the pool.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING_START 16

struct task {
    void (*run)(void *);
    void *data;
};

struct crew_member {
    size_t number;
    pthread_t tid;
    ThreadPool *owner;
};

struct ThreadPool {
    pthread_mutex_t guard;
    pthread_cond_t work_available;
    struct task *ring;
    size_t ring_size; /* slots in ring */
    size_t front;     /* slot of the oldest pending task */
    size_t pending;   /* tasks waiting */
    struct crew_member *crew;
    size_t crew_count;
};

/* Locking and waiting on our own, initialised objects cannot fail; if they do, the pool
   is corrupt and carrying on would be worse than stopping. */
static void must(int rc, const char *call)
{
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", call, strerror(rc));
        abort();
    }
}

/* Doubles the ring, keeping the tasks in order; the caller holds the guard. */
static int ring_grow(ThreadPool *p)
{
    size_t bigger = p->ring_size * 2;
    struct task *fresh;

    if (bigger < p->ring_size || bigger > (size_t)-1 / sizeof *fresh)
        return -1;
    fresh = malloc(bigger * sizeof *fresh);
    if (fresh == NULL)
        return -1;
    for (size_t i = 0; i < p->pending; i++)
        fresh[i] = p->ring[(p->front + i) % p->ring_size];
    free(p->ring);
    p->ring = fresh;
    p->ring_size = bigger;
    p->front = 0;
    return 0;
}

/* Blocks until there is a task, and takes the oldest. */
static struct task next_task(ThreadPool *p)
{
    struct task t;

    must(pthread_mutex_lock(&p->guard), "pthread_mutex_lock");
    while (p->pending == 0) /* re-check: wake-ups can be spurious, or stolen */
        must(pthread_cond_wait(&p->work_available, &p->guard), "pthread_cond_wait");
    t = p->ring[p->front];
    p->front = (p->front + 1) % p->ring_size;
    p->pending--;
    must(pthread_mutex_unlock(&p->guard), "pthread_mutex_unlock");
    return t;
}

static void *crew_member_main(void *arg)
{
    struct crew_member *me = arg;

    for (;;) {
        struct task t = next_task(me->owner);
        /* the guard is free again: the others can take tasks while this one runs */
        printf("Worker %zu got a job; executing...\n", me->number);
        t.run(t.data);
    }
    return NULL;
}

ThreadPool *thread_pool_new(size_t num_threads)
{
    ThreadPool *p;
    int rc;

    if (num_threads == 0) {
        errno = EINVAL;
        return NULL;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->ring = malloc(RING_START * sizeof *p->ring);
    p->crew = calloc(num_threads, sizeof *p->crew);
    if (p->ring == NULL || p->crew == NULL) {
        free(p->ring);
        free(p->crew);
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->ring_size = RING_START;
    p->crew_count = num_threads;
    rc = pthread_mutex_init(&p->guard, NULL);
    if (rc == 0) {
        rc = pthread_cond_init(&p->work_available, NULL);
        if (rc != 0)
            pthread_mutex_destroy(&p->guard);
    }
    if (rc != 0) {
        free(p->ring);
        free(p->crew);
        free(p);
        errno = rc;
        return NULL;
    }
    for (size_t i = 0; i < num_threads; i++) {
        p->crew[i].number = i;
        p->crew[i].owner = p;
        rc = pthread_create(&p->crew[i].tid, NULL, crew_member_main, &p->crew[i]);
        if (rc != 0) {
            /* The members already running wait on this pool forever: with no way to stop
               them in this stage, the pool stays allocated for them. */
            errno = rc;
            return NULL;
        }
    }
    return p;
}

int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg)
{
    must(pthread_mutex_lock(&pool->guard), "pthread_mutex_lock");
    if (pool->pending == pool->ring_size && ring_grow(pool) != 0) {
        must(pthread_mutex_unlock(&pool->guard), "pthread_mutex_unlock");
        errno = ENOMEM;
        return -1;
    }
    pool->ring[(pool->front + pool->pending) % pool->ring_size] =
        (struct task){.run = function, .data = arg};
    pool->pending++;
    /* Signalled with the guard held: also correct, and no waiter can miss it. */
    must(pthread_cond_signal(&pool->work_available), "pthread_cond_signal");
    must(pthread_mutex_unlock(&pool->guard), "pthread_mutex_unlock");
    return 0;
}
