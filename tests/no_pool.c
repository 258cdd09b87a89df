/*
 * Stand-ins for the pool's functions, for the runners of stages that lack some of them:
 * every function before stage 07, thread_pool_drop in stage 07. Each is a weak definition,
 * which the linker uses only when no pool.c linked beside it defines the function (a weak
 * definition links the same on Linux, macOS and the BSDs, where a weak reference to a
 * function defined nowhere does not). A stand-in does nothing but note that it ran, and the
 * test that called it fails, naming the function (pool_lacks).
 */
#include "pool_api.h"

#include <errno.h>

static const char *lacking;

const char *pool_lacks(void)
{
    return lacking;
}

static void lacks(const char *function)
{
    if (lacking == NULL)
        lacking = function;
    errno = ENOSYS;
}

__attribute__((weak)) ThreadPool *thread_pool_new(size_t num_threads)
{
    (void)num_threads;
    lacks("thread_pool_new");
    return NULL;
}

__attribute__((weak)) int thread_pool_execute(ThreadPool *pool, void (*function)(void *), void *arg)
{
    (void)pool;
    (void)function;
    (void)arg;
    lacks("thread_pool_execute");
    return -1;
}

__attribute__((weak)) void thread_pool_drop(ThreadPool *pool)
{
    (void)pool;
    lacks("thread_pool_drop");
}
