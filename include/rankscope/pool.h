/* pool.h — one set of worker threads, shared by inference and training.
 *
 * Contract:
 *  - pool_alloc starts n − 1 threads (n = 0: rs_default_threads(); at most POOL_MAX_THREADS);
 *    the thread that calls pool_run is thread 0, so a pool of 1 starts none. pool_free stops and
 *    joins them; it accepts NULL and must not be called while a run is under way.
 *  - pool_run(p, n, fn, ctx) calls fn(ctx, i, n) once on each of threads i = 0 .. n−1 (n = 0 or
 *    n > pool_threads: all of them), all at the same time, and returns when every call has
 *    returned. Because the calls run together, fn may wait on the other threads of the same run
 *    (a barrier inside the job); it must not call pool_run on the same pool (refused, -1).
 *    Which data thread i works on is fn's business: give each index a fixed share and the
 *    result does not depend on timing.
 *  - Runs on one pool are serialised: a second caller waits until the running one returns.
 *  - Who owns what: the pool owns only its threads. The job (fn, ctx and what ctx points to)
 *    belongs to the caller and must stay valid until pool_run returns. A context that borrows a
 *    pool (infer_create_on, train_options.pool) never frees it; the pool must outlive it.
 *  - Errors: -1 and a message in e (never exit or print).
 */
#ifndef RANKSCOPE_POOL_H
#define RANKSCOPE_POOL_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include "rankscope/common.h"

#define POOL_MAX_THREADS 64

typedef struct rs_pool rs_pool;

typedef void (*pool_fn)(void *ctx, int thread_index, int n_threads);

rs_pool *pool_alloc(int n_threads, rs_err *e);
void pool_free(rs_pool *p); /* accepts NULL */

/* Threads of the pool, the caller's included (>= 1). */
int pool_threads(const rs_pool *p);

/* fn on threads 0 .. n−1 together, then return (see the contract). 0 or -1. */
int pool_run(rs_pool *p, int n, pool_fn fn, void *ctx, rs_err *e);

#pragma GCC visibility pop
#endif
