/* pool.c — the worker threads of pool.h.
 *
 * A run is a generation: pool_run publishes (fn, ctx, n), bumps the generation and wakes the
 * threads; each thread below n calls fn once per generation it sees and counts itself out.
 * Threads at or above n just note the generation. The caller is thread 0 and works too, so a
 * run of n threads wakes n − 1. One run at a time (run_mu), so a thread never sees a
 * generation whose job it has not finished.
 */
#include "rankscope/pool.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct pool_thread {
    struct rs_pool *p;
    int index;
    pthread_t th;
} pool_thread;

struct rs_pool {
    int n;       /* threads, the caller's included */
    int started; /* threads running: t[1 .. started] */
    pool_thread *t;
    pthread_mutex_t run_mu; /* held for a whole run: runs are serialised */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned gen;
    int pending, quit;
    /* the current run */
    pool_fn fn;
    void *ctx;
    int active;
};

/* The pool whose job the calling thread is executing (to refuse a nested run). */
static _Thread_local const rs_pool *in_job;

static void *thread_main(void *arg)
{
    pool_thread *pt = arg;
    rs_pool *p = pt->p;
    unsigned seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->quit)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        if (pt->index >= p->active)
            continue;
        pool_fn fn = p->fn;
        void *ctx = p->ctx;
        int n = p->active;
        pthread_mutex_unlock(&p->mu);
        in_job = p;
        fn(ctx, pt->index, n);
        in_job = NULL;
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

rs_pool *pool_alloc(int n_threads, rs_err *e)
{
    int n = n_threads > 0 ? n_threads : rs_default_threads();
    if (n > POOL_MAX_THREADS)
        n = POOL_MAX_THREADS;
    rs_pool *p = calloc(1, sizeof *p);
    pool_thread *t = calloc((size_t)n, sizeof *t);
    if (!p || !t) {
        free(p);
        free(t);
        rs_fail(e, "pool: out of memory");
        return NULL;
    }
    p->n = n;
    p->t = t;
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < n; ++i) {
        t[i].p = p;
        t[i].index = i;
    }
    for (int i = 1; i < n; ++i) {
        if (pthread_create(&t[i].th, NULL, thread_main, &t[i])) {
            rs_fail(e, "pool: cannot start worker thread %d of %d", i, n);
            pool_free(p);
            return NULL;
        }
        p->started = i;
    }
    return p;
}

void pool_free(rs_pool *p)
{
    if (!p)
        return;
    if (p->started > 0) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i <= p->started; ++i)
            pthread_join(p->t[i].th, NULL);
    }
    pthread_mutex_destroy(&p->run_mu);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->t);
    free(p);
}

int pool_threads(const rs_pool *p)
{
    return p->n;
}

int pool_run(rs_pool *p, int n, pool_fn fn, void *ctx, rs_err *e)
{
    if (!p || !fn)
        return rs_fail(e, "pool: no pool or no job");
    if (in_job == p)
        return rs_fail(e, "pool: a job cannot start a run on its own pool");
    if (n <= 0 || n > p->n)
        n = p->n;
    pthread_mutex_lock(&p->run_mu);
    if (n > 1) {
        pthread_mutex_lock(&p->mu);
        p->fn = fn;
        p->ctx = ctx;
        p->active = n;
        p->pending = n - 1;
        ++p->gen;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    const rs_pool *outer = in_job;
    in_job = p;
    fn(ctx, 0, n);
    in_job = outer;
    if (n > 1) {
        pthread_mutex_lock(&p->mu);
        while (p->pending > 0)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->run_mu);
    return 0;
}
