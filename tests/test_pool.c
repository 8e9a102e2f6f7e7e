/* test_pool.c — the shared thread pool: every index runs once per run, together (a barrier
 * inside a job completes), nested runs are refused, concurrent callers are serialised, and
 * inference / evaluation on a shared pool give bit-identical results to their own threads. */
#include "check.h"
#include "rankscope/infer.h"
#include "rankscope/pool.h"
#include "rankscope/train.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    atomic_int calls[POOL_MAX_THREADS];
    atomic_int seen_n[POOL_MAX_THREADS];
    pthread_t caller;
    atomic_int caller_was_0;
    /* barrier */
    atomic_int arrived;
    atomic_int barrier_ok;
    /* nesting */
    rs_pool *p;
    atomic_int nested_rc;
    char nested_msg[RS_ERR_LEN];
} job;

static void count_fn(void *ctx, int i, int n)
{
    job *j = ctx;
    atomic_fetch_add(&j->calls[i], 1);
    atomic_store(&j->seen_n[i], n);
    if (i == 0)
        atomic_store(&j->caller_was_0, pthread_equal(pthread_self(), j->caller) != 0);
}

/* Every thread waits until all n have arrived: completes only if the calls run together. */
static void barrier_fn(void *ctx, int i, int n)
{
    (void)i;
    job *j = ctx;
    atomic_fetch_add(&j->arrived, 1);
    double t0 = rs_now();
    while (atomic_load(&j->arrived) < n)
        if (rs_now() - t0 > 30.0)
            return; /* barrier_ok stays 0: reported, not hung */
    atomic_fetch_add(&j->barrier_ok, 1);
}

static void nested_fn(void *ctx, int i, int n)
{
    (void)n;
    job *j = ctx;
    if (i != 1 && i != 0)
        return;
    rs_err e = {{0}};
    int rc = pool_run(j->p, 0, count_fn, j, &e);
    if (i == 1) {
        atomic_store(&j->nested_rc, rc);
        snprintf(j->nested_msg, sizeof j->nested_msg, "%s", e.msg);
    } else if (rc == 0) {
        atomic_store(&j->nested_rc, 99); /* thread 0 must be refused too */
    }
}

typedef struct racer {
    rs_pool *p;
    atomic_long *sum;
    int rc;
} racer;

static void sum_fn(void *ctx, int i, int n)
{
    (void)n;
    atomic_fetch_add((atomic_long *)ctx, i + 1);
}

static void *race_main(void *arg)
{
    racer *r = arg;
    for (int k = 0; k < 200 && r->rc == 0; ++k)
        r->rc = pool_run(r->p, 0, sum_fn, r->sum, NULL);
    return NULL;
}

static void pool_contract(void)
{
    pool_free(NULL);
    CHECK(1, "pool_free(NULL) accepted");
    rs_err e = {{0}};
    rs_pool *p = pool_alloc(3, &e);
    CHECK(p != NULL, "pool of 3: %s", e.msg);
    if (!p)
        return;
    CHECK(pool_threads(p) == 3, "3 threads, the caller's included (%d)", pool_threads(p));

    job *j = calloc(1, sizeof *j);
    j->caller = pthread_self();
    CHECK(pool_run(p, 0, count_fn, j, &e) == 0, "run on all threads");
    int ok = 1;
    for (int i = 0; i < 3; ++i)
        ok &= atomic_load(&j->calls[i]) == 1 && atomic_load(&j->seen_n[i]) == 3;
    CHECK(ok, "each of threads 0..2 called once with n_threads 3");
    CHECK(atomic_load(&j->caller_was_0), "thread 0 is the caller");

    memset(j->calls, 0, sizeof j->calls);
    CHECK(pool_run(p, 2, count_fn, j, &e) == 0 && atomic_load(&j->calls[0]) == 1 &&
              atomic_load(&j->calls[1]) == 1 && atomic_load(&j->calls[2]) == 0 &&
              atomic_load(&j->seen_n[0]) == 2,
          "run on 2 of 3 threads: indices 0 and 1 only, n_threads 2");
    memset(j->calls, 0, sizeof j->calls);
    CHECK(pool_run(p, 50, count_fn, j, &e) == 0 && atomic_load(&j->calls[2]) == 1 &&
              atomic_load(&j->seen_n[2]) == 3,
          "a run asking for more threads than the pool has uses all of them");

    long total = 0;
    for (int k = 0; k < 500; ++k) {
        memset(j->calls, 0, sizeof j->calls);
        pool_run(p, 1 + k % 3, count_fn, j, &e);
        for (int i = 0; i < 3; ++i)
            total += atomic_load(&j->calls[i]);
    }
    long want = 0;
    for (int k = 0; k < 500; ++k)
        want += 1 + k % 3;
    CHECK(total == want, "500 runs of 1..3 threads: %ld calls, expected %ld", total, want);

    atomic_store(&j->arrived, 0);
    atomic_store(&j->barrier_ok, 0);
    int brc = pool_run(p, 0, barrier_fn, j, &e);
    CHECK(brc == 0 && atomic_load(&j->barrier_ok) == 3,
          "a barrier inside the job completes: the calls run together (%d of 3)",
          atomic_load(&j->barrier_ok));

    j->p = p;
    atomic_store(&j->nested_rc, 0);
    CHECK(pool_run(p, 0, nested_fn, j, &e) == 0, "run with nested attempts");
    CHECK(atomic_load(&j->nested_rc) == -1 && strstr(j->nested_msg, "own pool") != NULL,
          "a job's pool_run on its own pool is refused with a message: %s", j->nested_msg);

    atomic_long sum = 0;
    racer r[2] = {{p, &sum, 0}, {p, &sum, 0}};
    pthread_t th[2];
    for (int k = 0; k < 2; ++k)
        pthread_create(&th[k], NULL, race_main, &r[k]);
    for (int k = 0; k < 2; ++k)
        pthread_join(th[k], NULL);
    CHECK(r[0].rc == 0 && r[1].rc == 0 && atomic_load(&sum) == 2L * 200 * (1 + 2 + 3),
          "two callers racing on one pool are serialised: sum %ld, expected %ld",
          (long)atomic_load(&sum), 2L * 200 * 6);

    int nrc = pool_run(NULL, 0, count_fn, j, &e);
    CHECK(nrc == -1 && strstr(e.msg, "pool") != NULL,
          "no pool: refused with a message (%s)", e.msg);
    free(j);
    pool_free(p);

    rs_pool *one = pool_alloc(1, &e);
    job *k = calloc(1, sizeof *k);
    k->caller = pthread_self();
    CHECK(one && pool_threads(one) == 1 && pool_run(one, 0, count_fn, k, &e) == 0 &&
              atomic_load(&k->calls[0]) == 1 && atomic_load(&k->caller_was_0),
          "a pool of 1 runs the job on the caller");
    free(k);
    pool_free(one);
}

/* Inference and evaluation on one shared pool equal their own-thread results bit for bit. */
static void shared_results(void)
{
    rs_err e = {{0}};
    rs_model *m = train_reference_net(7, &e);
    CHECK(m != NULL, "reference net: %s", e.msg);
    if (!m)
        return;
    enum { N = 100, F = 3 * 32 * 32 };
    float *x = malloc(sizeof(float) * N * F), *a = malloc(sizeof(float) * N * 10),
          *b = malloc(sizeof(float) * N * 10), *c = malloc(sizeof(float) * N * 10);
    uint8_t *u8 = malloc(N * F), labels[N];
    unsigned s = 12345;
    for (int i = 0; i < N * F; ++i) {
        s = s * 1103515245u + 12345u;
        u8[i] = (uint8_t)(s >> 16);
        x[i] = u8[i] / 127.5f - 1.0f;
    }
    for (int i = 0; i < N; ++i)
        labels[i] = (uint8_t)(i % 10);
    rs_pool *p = pool_alloc(2, &e);
    infer_ctx *own = infer_create(m, 2, &e);
    infer_ctx *s1 = p ? infer_create_on(m, p, &e) : NULL;
    infer_ctx *s2 = p ? infer_create_on(m, p, &e) : NULL;
    CHECK(own && s1 && s2, "contexts on their own threads and on a shared pool: %s", e.msg);
    if (own && s1 && s2) {
        int rc = infer_forward(own, x, N, a, &e) | infer_forward(s1, x, N, b, &e) |
                 infer_forward(s2, x, N, c, &e);
        CHECK(rc == 0 && !memcmp(a, b, sizeof(float) * N * 10) && !memcmp(a, c, sizeof(float) * N * 10),
              "two contexts sharing a pool give the own-thread logits bit for bit");
        CHECK(infer_threads(s1) == 2, "a context on a pool of 2 has 2 workers (%d)", infer_threads(s1));
    }
    train_data d = {.n = N, .c = 3, .h = 32, .w = 32, .u8 = u8, .labels = labels};
    double acc0 = -1, acc1 = -2, l0 = -1, l1 = -2;
    int rc = train_evaluate(m, &d, 2, &acc0, &l0, &e);
    rc |= train_evaluate_on(m, &d, p, &acc1, &l1, &e);
    CHECK(rc == 0 && acc0 == acc1 && l0 == l1, "train_evaluate on a shared pool: same accuracy and "
          "loss bit for bit (%g %g / %g %g)", acc0, acc1, l0, l1);
    rc = train_evaluate_on(m, &d, NULL, &acc1, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, "pool"),
          "train_evaluate_on without a pool: refused (%s)", e.msg);
    infer_free(own);
    infer_free(s1);
    infer_free(s2);
    pool_free(p);
    model_free(m);
    free(x), free(a), free(b), free(c), free(u8);
}

int main(void)
{
    pool_contract();
    shared_results();
    return check_done();
}
