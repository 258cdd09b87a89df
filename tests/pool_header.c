/*
 * Compiled, not linked, with a pool's folder first on the include path: it fails to compile
 * when that folder's pool.h declares the pool's functions otherwise than the lesson's pool.h
 * does, and so otherwise than pool_api.h, through which the tests call them.
 */
#include "pool.h"

#include "pool_api.h"
