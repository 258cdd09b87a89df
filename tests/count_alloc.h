/*
 * Put before the first line of a pool.c when a test runner is built (-include): the pool's own
 * malloc, calloc, realloc and free go through counters (count_alloc.c), so that the tests of
 * the drop see what the pool leaves allocated, on any system, without a leak checker.
 */
#ifndef COUNT_ALLOC_H
#define COUNT_ALLOC_H

/* First, so that the system's own declarations keep their names. */
#include <stdlib.h>

void *counted_malloc(size_t size);
void *counted_calloc(size_t count, size_t size);
void *counted_realloc(void *block, size_t size);
void counted_free(void *block);
/* How many blocks the pool has allocated and not freed. */
long pool_blocks(void);

#define malloc(size) counted_malloc(size)
#define calloc(count, size) counted_calloc(count, size)
#define realloc(block, size) counted_realloc(block, size)
#define free(block) counted_free(block)

#endif
