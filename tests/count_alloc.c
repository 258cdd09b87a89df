/*
 * The counters behind count_alloc.h: blocks the pool allocated and has not freed. The pool's
 * threads call these at once, hence the atomic count.
 */
#include <stdatomic.h>
#include <stdlib.h>

static atomic_long blocks;

void *counted_malloc(size_t size)
{
    void *block = malloc(size);

    if (block != NULL)
        atomic_fetch_add(&blocks, 1);
    return block;
}

void *counted_calloc(size_t count, size_t size)
{
    void *block = calloc(count, size);

    if (block != NULL)
        atomic_fetch_add(&blocks, 1);
    return block;
}

void *counted_realloc(void *block, size_t size)
{
    void *moved = realloc(block, size);

    if (block == NULL && moved != NULL)
        atomic_fetch_add(&blocks, 1);
    return moved;
}

void counted_free(void *block)
{
    if (block != NULL)
        atomic_fetch_sub(&blocks, 1);
    free(block);
}

long pool_blocks(void)
{
    return atomic_load(&blocks);
}
