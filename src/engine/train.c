/* train.c — batched forward/backward over a model DAG, softmax cross-entropy, SGD training loop.
 *
 * Layout: every activation is NCHW (or N×F) for a contiguous slice of the batch owned by one
 * thread of the pool (pool.h: the net's own, or one borrowed and shared with inference; worker k
 * is thread k, so the slices do not depend on timing). Each worker has private activation, gradient and parameter-gradient buffers;
 * after a batch the parameter gradients are summed in thread order (deterministic for a fixed
 * thread count). Kernels live in grad.c (train_internal.h).
 */
#include "rankscope/train.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rankscope/pool.h"
#include "train_internal.h"

/* ---- the compiled net ------------------------------------------------------------------------ */

/* One batch's work description, shared by all workers. */
typedef struct batch_job {
    int n;                   /* images in the whole batch */
    const float *x;          /* float source: n × F, or NULL */
    const uint8_t *u8;       /* byte source: indexed by idx */
    const int *idx;          /* n image indices into u8 */
    const uint8_t *crop;     /* n × 3: dy, dx in [0, 2·pad], flip; NULL = no augmentation */
    int pad;
    const uint8_t *labels;   /* n labels, or NULL (forward only, no loss) */
    const float *teacher;    /* n × classes or NULL */
    float alpha, temp;
    int backward;
    int bn_batch;            /* BatchNormalization on batch statistics (training mode) */
} batch_job;

typedef struct worker {
    struct train_net *t;
    int id;
    float **act;      /* per value: slice activations (NULL for constants) */
    float **grad;     /* per value: slice gradients (NULL when not needed), in gbuf */
    float **gbuf;     /* the gradient buffers (train_net.gslot) */
    float *pgrad;     /* all trainable parameters' gradients, packed */
    float *col;       /* conv workspace */
    int *boff;        /* conv GEMM row offsets */
    int32_t *pidx;    /* argmax workspace of every MaxPool, packed */
    float *bn_stats;  /* batch statistics of every BatchNormalization, packed (TN_BN_STATS) */
    double *bn_red;   /* this worker's reduction buffer */
    double *bn_sums;  /* moments convolutions take for their BatchNormalization (tn_node.stats) */
    int active;       /* holds at least one image of the current batch */
    unsigned rphase;  /* reductions done in the current batch */
    double loss;
    int correct;
    int status;
} worker;

struct train_net {
    rs_model *m;
    int max_batch, nthreads, flags;
    int F, classes;
    int n_tn;
    tn_node *tn;
    uint8_t *is_param;   /* per value: trainable parameter */
    uint8_t *is_weight;  /* per value: decays */
    uint8_t *need;       /* per value: gradient flows (activation gradient buffer exists) */
    uint8_t *fresh;      /* per value: not zeroed per batch, its one reader writes it (tn_fresh_ok) */
    int *gslot;          /* per value: its gradient buffer (plan_grads), -1 when not needed */
    size_t *gslot_per;   /* per buffer: floats per image */
    int n_gslot;
    int *zhead, *znext;  /* per node: the gradients zeroed before its backward (linked by value) */
    size_t *poff;        /* per value: offset in the packed parameter gradient */
    size_t nparam;       /* packed trainable parameter floats */
    size_t col_floats;
    size_t boff_ints;
    size_t pidx_ints;
    worker *w;
    float *logits;       /* max_batch × classes */
    float *dinput;       /* max_batch × F when TRAIN_NET_INPUT_GRAD */
    rs_pool *pool;
    int own_pool;        /* made by the net (freed with it) rather than borrowed */
    const batch_job *job;
    /* BatchNormalization's cross-worker sums: a barrier over the active workers and two
     * alternating slot sets, so a reduction's slots are never rewritten before all have read */
    size_t bn_stats_floats, red_len, bn_sums_len;
    double *red;         /* 2 × nthreads × red_len */
    int n_active;
    pthread_mutex_t bmu;
    pthread_cond_t bcv;
    unsigned bgen;
    int barrived;
    int training;        /* train_net_grad uses batch statistics and updates running ones */
    float bn_momentum;
};

/* CPU seconds of the whole process (every worker), for figures that must hold on a loaded machine. */
static double process_cpu_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts))
        return NAN;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void barrier_wait(train_net *t)
{
    pthread_mutex_lock(&t->bmu);
    unsigned g = t->bgen;
    if (++t->barrived == t->n_active) {
        t->barrived = 0;
        ++t->bgen;
        pthread_cond_broadcast(&t->bcv);
    } else {
        while (g == t->bgen)
            pthread_cond_wait(&t->bcv, &t->bmu);
    }
    pthread_mutex_unlock(&t->bmu);
}

static void worker_reduce(void *ctx, double *buf, int len)
{
    worker *wk = ctx;
    train_net *t = wk->t;
    double *slots = t->red + (size_t)(wk->rphase++ & 1u) * t->nthreads * t->red_len;
    memcpy(slots + (size_t)wk->id * t->red_len, buf, (size_t)len * sizeof *buf);
    barrier_wait(t);
    memset(buf, 0, (size_t)len * sizeof *buf);
    for (int k = 0; k < t->nthreads; ++k) {
        if (!t->w[k].active)
            continue;
        const double *src = slots + (size_t)k * t->red_len;
        for (int i = 0; i < len; ++i)
            buf[i] += src[i];
    }
}

static void fill_input(const train_net *t, const batch_job *j, int start, int ns, float *dst)
{
    const rs_value *in = &t->m->values[t->m->input];
    int c = (int)in->dims[1], h = in->ndim == 4 ? (int)in->dims[2] : 1,
        w = in->ndim == 4 ? (int)in->dims[3] : 1;
    size_t F = (size_t)t->F;
    for (int i = 0; i < ns; ++i) {
        int k = start + i;
        float *o = dst + (size_t)i * F;
        if (j->x) {
            memcpy(o, j->x + (size_t)k * F, F * sizeof *o);
        } else {
            const uint8_t *src = j->u8 + (size_t)j->idx[k] * F;
            if (!j->crop)
                tn_augment_u8(src, c, h, w, 0, 0, 0, o);
            else
                tn_augment_u8(src, c, h, w, j->crop[3 * k] - j->pad, j->crop[3 * k + 1] - j->pad,
                              j->crop[3 * k + 2], o);
        }
    }
}

static void run_worker(worker *wk, const batch_job *j)
{
    train_net *t = wk->t;
    rs_model *m = t->m;
    int T = t->nthreads;
    int start = (int)((long)j->n * wk->id / T), end = (int)((long)j->n * (wk->id + 1) / T);
    int ns = end - start;
    wk->loss = 0;
    wk->correct = 0;
    wk->status = 0;
    if (j->backward)
        memset(wk->pgrad, 0, t->nparam * sizeof *wk->pgrad);
    if (ns <= 0)
        return;
    fill_input(t, j, start, ns, wk->act[m->input]);
    tn_scratch sc = {.col = wk->col, .boff = wk->boff, .pidx = wk->pidx, .bn_batch = j->bn_batch,
                     .bn_stats = wk->bn_stats, .bn_red = wk->bn_red, .bn_sums = wk->bn_sums,
                     .reduce = t->n_active > 1 ? worker_reduce : NULL, .reduce_ctx = wk, .fresh = t->fresh};
    for (int i = 0; i < t->n_tn; ++i)
        if (!t->tn[i].fused)
            tn_forward(&t->tn[i], m, wk->act, ns, &sc);
    const float *z = wk->act[m->output];
    memcpy(t->logits + (size_t)start * t->classes, z, (size_t)ns * t->classes * sizeof *z);
    if (!j->labels)
        return;
    float *dz = j->backward ? wk->grad[m->output] : NULL;
    tn_softmax_ce(z, j->labels + start, j->teacher ? j->teacher + (size_t)start * t->classes : NULL,
                  j->alpha, j->temp, ns, t->classes, 1.0f / (float)j->n, dz, &wk->loss, &wk->correct);
    if (!j->backward)
        return;
    for (int i = t->n_tn - 1; i >= 0; --i) {
        for (int v = t->zhead[i]; v >= 0; v = t->znext[v]) /* (a buffer shared: zeroed when reached) */
            memset(wk->grad[v], 0, (size_t)ns * (size_t)model_value_numel(&m->values[v]) * sizeof(float));
        if (!t->tn[i].fused)
            tn_backward(&t->tn[i], m, wk->act, wk->grad, t->need, t->is_param, t->poff, wk->pgrad, ns,
                        &sc);
    }
    if (t->dinput)
        memcpy(t->dinput + (size_t)start * t->F, wk->grad[m->input], (size_t)ns * t->F * sizeof(float));
}

static void batch_thread(void *ctx, int thread_index, int n_threads)
{
    (void)n_threads;
    train_net *t = ctx;
    run_worker(&t->w[thread_index], t->job);
}

/* PyTorch's rule: running = (1 − momentum)·running + momentum·batch, with the batch variance
 * unbiased (M/(M−1)). Every active worker computed the same statistics; take the first's. */
static void update_running_stats(train_net *t)
{
    const worker *src = NULL;
    for (int k = 0; k < t->nthreads && !src; ++k)
        if (t->w[k].active)
            src = &t->w[k];
    if (!src)
        return;
    rs_model *m = t->m;
    double mo = t->bn_momentum;
    for (int i = 0; i < t->n_tn; ++i) {
        const tn_node *tn = &t->tn[i];
        if (tn->op != RS_OP_BATCHNORM)
            continue;
        const rs_node *n = &m->nodes[tn->node];
        const float *st = src->bn_stats + tn->bn_off;
        int C = tn->cin;
        double M = st[3 * C], unb = M > 1 ? M / (M - 1) : 1.0;
        float *rm = m->values[n->in[3]].f, *rv = m->values[n->in[4]].f;
        for (int c = 0; c < C; ++c) {
            rm[c] = (float)((1 - mo) * rm[c] + mo * st[c]);
            rv[c] = (float)((1 - mo) * rv[c] + mo * st[2 * C + c] * unb);
        }
    }
}

/* Runs one batch on all workers; parameter gradients end up summed in w[0].pgrad. */
static int run_batch(train_net *t, const batch_job *j, double *loss, int *correct, rs_err *e)
{
    /* Each worker calls sgemm on its own slice: OpenBLAS must not fan out underneath (and for
     * the small dense layers its spinning threads cost more than they save even with one). */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    t->n_active = 0;
    for (int k = 0; k < t->nthreads; ++k) {
        long start = (long)j->n * k / t->nthreads, end = (long)j->n * (k + 1) / t->nthreads;
        t->w[k].active = end > start;
        t->w[k].rphase = 0;
        t->n_active += t->w[k].active;
    }
    t->barrived = 0;
    t->job = j;
    int rc = pool_run(t->pool, t->nthreads, batch_thread, t, e);
    openblas_set_num_threads(blas_threads);
    if (rc)
        return rc;
    double l = 0;
    int c = 0;
    for (int k = 0; k < t->nthreads; ++k) {
        l += t->w[k].loss;
        c += t->w[k].correct;
    }
    if (j->backward)
        for (int k = 1; k < t->nthreads; ++k) {
            float *dst = t->w[0].pgrad;
            const float *src = t->w[k].pgrad;
            for (size_t i = 0; i < t->nparam; ++i)
                dst[i] += src[i];
        }
    if (loss)
        *loss = l;
    if (correct)
        *correct = c;
    if (j->bn_batch && j->backward)
        update_running_stats(t);
    return 0;
}

void train_net_free(train_net *t)
{
    if (!t)
        return;
    if (t->own_pool)
        pool_free(t->pool);
    if (t->w) {
        for (int k = 0; k < t->nthreads; ++k) {
            worker *wk = &t->w[k];
            if (wk->act) {
                for (int v = 0; v < t->m->n_values; ++v)
                    free(wk->act[v]);
            }
            if (wk->gbuf) {
                for (int k = 0; k < t->n_gslot; ++k)
                    free(wk->gbuf[k]);
            }
            free(wk->act);
            free(wk->grad);
            free(wk->gbuf);
            free(wk->pgrad);
            free(wk->col);
            free(wk->boff);
            free(wk->pidx);
            free(wk->bn_stats);
            free(wk->bn_red);
            free(wk->bn_sums);
        }
    }
    free(t->red);
    pthread_mutex_destroy(&t->bmu);
    pthread_cond_destroy(&t->bcv);
    free(t->w);
    free(t->tn);
    free(t->is_param);
    free(t->is_weight);
    free(t->need);
    free(t->fresh);
    free(t->gslot);
    free(t->gslot_per);
    free(t->zhead);
    free(t->znext);
    free(t->poff);
    free(t->logits);
    free(t->dinput);
    free(t);
}

/* One store per page, so the pages are mapped now, at allocation time, instead of faulting in
 * (and being cleared by the kernel) during the first training step, inside the epoch's timing;
 * PyTorch's side of the comparison runs an untimed warm-up step for the same reason. Stores of
 * zero: calloc'ed memory reads the same; volatile, or the compiler drops them as redundant. */
static void prefault(void *p, size_t bytes)
{
    volatile unsigned char *c = p;
    for (size_t k = 0; k < bytes; k += 4096)
        c[k] = 0;
}

static float *alloc_floats(size_t n, rs_err *e, const char *what)
{
    size_t bytes;
    if (rs_size_mul(n ? n : 1, sizeof(float), &bytes) || bytes > RS_MAX_ALLOC) {
        rs_fail(e, "%s: %zu floats is too large", what, n);
        return NULL;
    }
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p)
        rs_fail(e, "%s: out of memory (%zu floats)", what, n);
    else
        prefault(p, bytes);
    return p;
}

/* For each value that needs a gradient, is not the graph output and is not fresh yet: when its
 * last reader (the first backward to reach it) reads it once, as its x (tn_fresh_ok) or as an
 * Add's x2, that node writes the gradient (tn_node.x_first / x2_first), the other readers add to
 * it, and it is not zeroed (fresh 2): a memset and a read of the zeros saved per such value
 * (a residual block's input). */
static void mark_first_writers(const rs_model *m, tn_node *tn, int n_tn, const uint8_t *need, uint8_t *fresh)
{
    uint8_t *seen = calloc((size_t)m->n_values + 1, 1);
    if (!seen) /* (then every such gradient stays zeroed and added to) */
        return;
    for (int j = n_tn - 1; j >= 0; --j) /* backward order: a value's last reader first */
        for (int k = 0; k < m->nodes[tn[j].node].n_in; ++k) {
            const rs_node *n = &m->nodes[tn[j].node];
            int v = n->in[k], once = 1;
            if (v < 0 || seen[v])
                continue;
            seen[v] = 1;
            if (!need[v] || v == m->output || fresh[v])
                continue;
            for (int q = 0; q < n->n_in; ++q)
                once &= q == k || n->in[q] != v;
            if (once && tn[j].x == v && tn_fresh_ok(tn[j].op))
                tn[j].x_first = 1, fresh[v] = 2;
            else if (once && tn[j].op == RS_OP_ADD && tn[j].x2 == v && model_value_numel(&m->values[v]) == tn[j].ysz)
                tn[j].x2_first = 1, fresh[v] = 2;
        }
    free(seen);
}

/* Activation gradients share buffers. A value's gradient lives from the backward of the last node
 * naming it (its first writer) to the backward of the first (its producer, the last reader);
 * values of one size whose lives do not overlap take turns in one buffer, so the backward writes
 * into memory it has just read instead of a fresh buffer per value. A gradient that is added to
 * is zeroed just before its first writer runs (zhead / znext). no_share: a buffer per value. */
static int plan_grads(train_net *t, int no_share, rs_err *e)
{
    const rs_model *m = t->m;
    int nv = m->n_values, n = t->n_tn;
    int *lo = malloc(((size_t)nv + 1) * sizeof *lo), *hi = malloc(((size_t)nv + 1) * sizeof *hi);
    int *slot_lo = malloc(((size_t)nv + 1) * sizeof *slot_lo);
    t->gslot = malloc(((size_t)nv + 1) * sizeof *t->gslot);
    t->gslot_per = calloc((size_t)nv + 1, sizeof *t->gslot_per);
    t->zhead = malloc(((size_t)n + 1) * sizeof *t->zhead);
    t->znext = malloc(((size_t)nv + 1) * sizeof *t->znext);
    if (!lo || !hi || !slot_lo || !t->gslot || !t->gslot_per || !t->zhead || !t->znext)
        return free(lo), free(hi), free(slot_lo), rs_fail(e, "train: out of memory");
    for (int v = 0; v < nv; ++v)
        lo[v] = INT_MAX, hi[v] = -1, t->gslot[v] = -1, t->znext[v] = -1;
    for (int i = 0; i < n; ++i)
        t->zhead[i] = -1;
    for (int i = 0; i < n; ++i) {
        const tn_node *tn = &t->tn[i];
        const rs_node *nd = &m->nodes[tn->node];
        int refs[2 * RS_MAXIO + 5], nr = 0;
        for (int k = 0; k < nd->n_in; ++k)
            refs[nr++] = nd->in[k];
        for (int k = 0; k < nd->n_out; ++k)
            refs[nr++] = nd->out[k];
        refs[nr++] = tn->x, refs[nr++] = tn->x2, refs[nr++] = tn->y;
        refs[nr++] = tn->act ? tn->act_y : -1, refs[nr++] = tn->add_bn ? tn->add_bn_y : -1;
        for (int k = 0; k < nr; ++k) {
            int v = refs[k];
            if (v >= 0 && v < nv) {
                lo[v] = i < lo[v] ? i : lo[v];
                hi[v] = i > hi[v] ? i : hi[v];
            }
        }
    }
    hi[m->output] = n; /* the loss writes it before the backward */
    if (t->flags & TRAIN_NET_INPUT_GRAD)
        lo[m->input] = -1; /* read after it (train_net_input_grad) */
    for (int i = n; i >= -1; --i) /* first writers in backward order */
        for (int v = 0; v < nv; ++v) {
            if (!t->need[v] || hi[v] != i)
                continue;
            size_t per = (size_t)model_value_numel(&m->values[v]);
            int k = 0;
            while (k < t->n_gslot && (no_share || i < 0 || t->gslot_per[k] != per || slot_lo[k] <= i))
                ++k;
            if (k == t->n_gslot)
                t->gslot_per[t->n_gslot++] = per;
            t->gslot[v] = k;
            slot_lo[k] = i < 0 ? -1 : lo[v];
            if (i >= 0 && i < n && !t->fresh[v])
                t->znext[v] = t->zhead[i], t->zhead[i] = v;
        }
    free(lo), free(hi), free(slot_lo);
    return 0;
}

/* pool NULL: a pool of nthreads of its own; else the borrowed pool's threads (nthreads ignored).
 * Either way at most max_batch of them work: a worker's slice is never empty at full batch. */
static train_net *net_create(rs_model *m, int max_batch, rs_pool *pool, int nthreads,
                             const uint8_t *trainable, int flags, rs_err *e)
{
    if (!m || max_batch < 1)
        return rs_fail(e, "train: no model or batch < 1"), NULL;
    if (model_infer_shapes(m, e))
        return rs_failctx(e, "train"), NULL;
    if (pool)
        nthreads = pool_threads(pool);
    if (nthreads <= 0)
        nthreads = rs_default_threads();
    if (nthreads > POOL_MAX_THREADS)
        nthreads = POOL_MAX_THREADS;
    if (nthreads > max_batch)
        nthreads = max_batch;
    train_net *t = calloc(1, sizeof *t);
    if (!t)
        return rs_fail(e, "train: out of memory"), NULL;
    pthread_mutex_init(&t->bmu, NULL);
    pthread_cond_init(&t->bcv, NULL);
    t->training = 1;
    t->bn_momentum = 0.1f;
    t->m = m;
    t->max_batch = max_batch;
    t->nthreads = nthreads;
    t->flags = flags;
    int nv = m->n_values;
    const rs_value *in = &m->values[m->input], *out = &m->values[m->output];
    t->F = (int)model_value_numel(in);
    if (out->ndim != 2)
        return rs_fail(e, "train: graph output \"%s\" must be (N, classes)", out->name),
               train_net_free(t), NULL;
    t->classes = (int)out->dims[1];
    t->tn = calloc((size_t)m->n_nodes + 1, sizeof *t->tn);
    t->is_param = calloc((size_t)nv, 1);
    t->is_weight = calloc((size_t)nv, 1);
    t->need = calloc((size_t)nv, 1);
    t->poff = calloc((size_t)nv, sizeof *t->poff);
    t->w = calloc((size_t)nthreads, sizeof *t->w);
    if (!t->tn || !t->is_param || !t->is_weight || !t->need || !t->poff || !t->w)
        return rs_fail(e, "train: out of memory"), train_net_free(t), NULL;
    /* Compile nodes; mark parameters. */
    size_t col = 1, boff = 1, pidx = 0;
    kern_isa isa = kern_detect();
    for (int i = 0; i < m->n_nodes; ++i) {
        tn_node *tn = &t->tn[t->n_tn];
        if (tn_compile(m, i, isa, tn, e))
            return train_net_free(t), NULL;
        ++t->n_tn;
        for (int k = 0; k < 3; ++k) {
            int v = tn->param[k];
            if (v < 0)
                continue;
            if (!trainable || trainable[v])
                t->is_param[v] = 1;
            if (k == 0)
                t->is_weight[v] = 1;
        }
        if (tn->col_floats > col)
            col = tn->col_floats;
        if (tn->boff_ints > boff)
            boff = tn->boff_ints;
        tn->pidx_off = pidx;
        pidx += tn->pidx_ints;
        if (tn->op == RS_OP_BATCHNORM) {
            tn->bn_off = t->bn_stats_floats;
            t->bn_stats_floats += TN_BN_STATS(tn->cin);
            tn->sum_off = t->bn_sums_len;
            t->bn_sums_len += 2 * (size_t)tn->cin;
            if (2 * (size_t)tn->cin + 1 > t->red_len)
                t->red_len = 2 * (size_t)tn->cin + 1;
        }
    }
    if (t->red_len) {
        t->red = calloc(2 * (size_t)nthreads * t->red_len, sizeof *t->red);
        if (!t->red)
            return rs_fail(e, "train: out of memory"), train_net_free(t), NULL;
    }
    for (int v = 0; v < nv; ++v)
        if (t->is_param[v]) {
            t->poff[v] = t->nparam;
            t->nparam += (size_t)model_value_numel(&m->values[v]);
        }
    /* Gradient flow: a value needs a gradient when it depends on a trainable parameter (or on
     * the input, when the input gradient is asked for). */
    if (flags & TRAIN_NET_INPUT_GRAD)
        t->need[m->input] = 1;
    for (int i = 0; i < t->n_tn; ++i) {
        const rs_node *n = &m->nodes[t->tn[i].node];
        int dep = 0;
        for (int k = 0; k < n->n_in; ++k) {
            int v = n->in[k];
            if (v >= 0 && (t->need[v] || t->is_param[v]))
                dep = 1;
        }
        if (dep)
            t->need[n->out[0]] = 1;
    }
    t->need[m->output] = 1;
    for (int v = 0; v < nv; ++v)
        if (m->values[v].is_const)
            t->need[v] = 0;
    /* A gradient with a single reader whose backward writes instead of adds needs no zeroing
     * each batch (one pass over every such buffer saved). */
    t->fresh = calloc((size_t)nv + 1, 1);
    int *uses = calloc((size_t)nv + 1, sizeof *uses);
    if (!t->fresh || !uses)
        return free(uses), rs_fail(e, "train: out of memory"), train_net_free(t), NULL;
    uses[m->output] = 1;
    for (int k = 0; k < m->n_nodes; ++k)
        for (int j = 0; j < m->nodes[k].n_in; ++j)
            if (m->nodes[k].in[j] >= 0)
                ++uses[m->nodes[k].in[j]];
    for (int i = 0; i < t->n_tn; ++i) {
        const tn_node *tn = &t->tn[i];
        int v = tn->x;
        if (v >= 0 && t->need[v] && uses[v] == 1 && tn->x2 != v && tn_fresh_ok(tn->op))
            t->fresh[v] = 1;
    }
    if (!(flags & TN_NET_NO_FIRST_WRITE))
        mark_first_writers(m, t->tn, t->n_tn, t->need, t->fresh);
    tn_fuse_activations(t->tn, t->n_tn, uses);
    tn_fuse_statistics(t->tn, t->n_tn, uses);
    if (!(flags & TN_NET_NO_BN_ADD))
        tn_fuse_bn_add(t->tn, t->n_tn, uses);
    free(uses);
    if (plan_grads(t, flags & TN_NET_NO_GRAD_SHARE, e))
        return train_net_free(t), NULL;
    t->col_floats = col;
    t->boff_ints = boff;
    t->pidx_ints = pidx;
    t->logits = alloc_floats((size_t)max_batch * (size_t)t->classes, e, "train: logits");
    if (!t->logits)
        return train_net_free(t), NULL;
    if (flags & TRAIN_NET_INPUT_GRAD) {
        t->dinput = alloc_floats((size_t)max_batch * (size_t)t->F, e, "train: input gradient");
        if (!t->dinput)
            return train_net_free(t), NULL;
    }
    int slice = (max_batch + nthreads - 1) / nthreads;
    for (int k = 0; k < nthreads; ++k) {
        worker *wk = &t->w[k];
        wk->t = t;
        wk->id = k;
        wk->act = calloc((size_t)nv, sizeof *wk->act);
        wk->grad = calloc((size_t)nv, sizeof *wk->grad);
        wk->gbuf = calloc((size_t)t->n_gslot + 1, sizeof *wk->gbuf);
        if (!wk->act || !wk->grad || !wk->gbuf)
            return rs_fail(e, "train: out of memory"), train_net_free(t), NULL;
        for (int k = 0; k < t->n_gslot; ++k) {
            size_t total;
            if (rs_size_mul(t->gslot_per[k], (size_t)slice, &total))
                return rs_fail(e, "train: gradient too large"), train_net_free(t), NULL;
            if (!(wk->gbuf[k] = alloc_floats(total, e, "train: gradients")))
                return train_net_free(t), NULL;
        }
        for (int v = 0; v < nv; ++v) {
            if (m->values[v].is_const)
                continue;
            size_t per = (size_t)model_value_numel(&m->values[v]), total;
            if (rs_size_mul(per, (size_t)slice, &total))
                return rs_fail(e, "train: value \"%s\" too large", m->values[v].name),
                       train_net_free(t), NULL;
            if (!(wk->act[v] = alloc_floats(total, e, m->values[v].name)))
                return train_net_free(t), NULL;
            if (t->gslot[v] >= 0)
                wk->grad[v] = wk->gbuf[t->gslot[v]];
        }
        if (!(wk->pgrad = alloc_floats(t->nparam, e, "train: parameter gradients")) ||
            !(wk->col = alloc_floats(col, e, "train: convolution workspace")))
            return train_net_free(t), NULL;
        if (t->red_len && (!(wk->bn_stats = alloc_floats(t->bn_stats_floats, e, "train: statistics")) ||
                           !(wk->bn_red = calloc(t->red_len, sizeof *wk->bn_red)) ||
                           !(wk->bn_sums = calloc(t->bn_sums_len, sizeof *wk->bn_sums))))
            return rs_fail(e, "train: out of memory (batch statistics)"), train_net_free(t), NULL;
        if (!(wk->boff = calloc(boff, sizeof *wk->boff)))
            return rs_fail(e, "train: out of memory (row offsets)"), train_net_free(t), NULL;
        size_t pbytes;
        if (rs_size_mul(pidx ? pidx * (size_t)slice : 1, sizeof(int32_t), &pbytes) ||
            !(wk->pidx = malloc(pbytes)))
            return rs_fail(e, "train: out of memory (pooling indices)"), train_net_free(t), NULL;
        prefault(wk->boff, boff * sizeof *wk->boff);
        prefault(wk->pidx, pbytes);
    }
    t->pool = pool;
    if (!pool) {
        if (!(t->pool = pool_alloc(nthreads, e)))
            return rs_failctx(e, "train"), train_net_free(t), NULL;
        t->own_pool = 1;
    }
    return t;
}

train_net *train_net_create(rs_model *m, int max_batch, int nthreads, const uint8_t *trainable,
                            int flags, rs_err *e)
{
    return net_create(m, max_batch, NULL, nthreads, trainable, flags, e);
}

int train_net_grad(train_net *t, const float *x, const uint8_t *labels, int n,
                   const float *teacher, float alpha, float temp, double *loss, int *correct,
                   rs_err *e)
{
    if (n < 1 || n > t->max_batch)
        return rs_fail(e, "train: batch of %d images, expected 1..%d", n, t->max_batch);
    for (int i = 0; i < n; ++i)
        if (labels[i] >= t->classes)
            return rs_fail(e, "train: label %d of image %d out of range 0..%d", labels[i], i,
                           t->classes - 1);
    batch_job j = {.n = n, .x = x, .labels = labels, .teacher = teacher, .alpha = alpha,
                   .temp = temp > 0 ? temp : 1.0f, .backward = 1, .bn_batch = t->training};
    if (run_batch(t, &j, loss, correct, e))
        return -1;
    if (loss)
        *loss /= n;
    return 0;
}

const float *train_net_param_grad(const train_net *t, int v)
{
    if (v < 0 || v >= t->m->n_values || !t->is_param[v])
        return NULL;
    return t->w[0].pgrad + t->poff[v];
}

const float *train_net_input_grad(const train_net *t)
{
    return t->dinput;
}

const float *train_net_logits(const train_net *t)
{
    return t->logits;
}

void train_net_set_training(train_net *t, int training)
{
    t->training = training != 0;
}

int train_net_classes(const train_net *t)
{
    return t->classes;
}

int train_net_in_features(const train_net *t)
{
    return t->F;
}

int train_net_is_weight(const train_net *t, int v)
{
    return v >= 0 && v < t->m->n_values && t->is_weight[v];
}

/* ---- the training loop ----------------------------------------------------------------------- */

void train_default_options(train_options *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 30;
    o->batch = 128;
    o->lr = 0.05f;
    o->momentum = 0.9f;
    o->weight_decay = 5e-4f;
    o->schedule = TRAIN_SCHED_ONECYCLE;
    o->warmup = 0.15f;
    o->seed = 1;
    o->augment = 1;
    o->pad = 4;
    o->pad_value = -1.0f;
    o->distill_alpha = 0.5f;
    o->distill_temp = 4.0f;
}

double train_lr_at(const train_options *o, long step, long total)
{
    double peak = o->lr;
    if (o->schedule == TRAIN_SCHED_CONSTANT)
        return peak;
    long warm = (long)(o->warmup * (double)total);
    double lo = o->schedule == TRAIN_SCHED_ONECYCLE ? peak / 25.0 : 0.0;
    double fin = o->schedule == TRAIN_SCHED_ONECYCLE ? peak / 1e4 : 0.0;
    if (step < warm)
        return lo + (peak - lo) * (double)(step + 1) / (double)warm;
    double span = (double)(total - warm > 1 ? total - warm : 1);
    double f = (double)(step - warm) / span;
    return fin + (peak - fin) * 0.5 * (1.0 + cos(M_PI * f));
}

static int check_data(const rs_model *m, const train_data *d, const char *what, rs_err *e)
{
    const rs_value *in = &m->values[m->input];
    int64_t F = model_value_numel(in);
    if (!d || d->n < 1 || !d->labels || (!d->u8 == !d->f))
        return rs_fail(e, "train: %s data is empty or has no pixels/labels", what);
    if ((int64_t)d->c * d->h * d->w != F || in->ndim != 4 || in->dims[1] != d->c ||
        in->dims[2] != d->h || in->dims[3] != d->w)
        return rs_fail(e, "train: %s images are %dx%dx%d, model input \"%s\" expects %lld features",
                       what, d->c, d->h, d->w, in->name, (long long)F);
    int classes = (int)m->values[m->output].dims[1];
    for (int i = 0; i < d->n; ++i)
        if (d->labels[i] >= classes)
            return rs_fail(e, "train: %s image %d has label %d, model has %d classes", what, i,
                           d->labels[i], classes);
    return 0;
}

static int eval_net(train_net *t, const train_data *d, double *acc, double *loss, rs_err *e)
{
    int B = t->max_batch;
    int *idx = malloc((size_t)B * sizeof *idx);
    if (!idx)
        return rs_fail(e, "train: out of memory");
    double tl = 0;
    long tc = 0;
    for (int s = 0; s < d->n; s += B) {
        int n = d->n - s < B ? d->n - s : B;
        for (int i = 0; i < n; ++i)
            idx[i] = s + i;
        batch_job j = {.n = n, .labels = d->labels + s, .temp = 1.0f, .backward = 0};
        if (d->f)
            j.x = d->f + (size_t)s * t->F;
        else
            j.u8 = d->u8, j.idx = idx;
        double l;
        int c;
        if (run_batch(t, &j, &l, &c, e)) {
            free(idx);
            return -1;
        }
        tl += l;
        tc += c;
    }
    free(idx);
    if (acc)
        *acc = (double)tc / d->n;
    if (loss)
        *loss = tl / d->n;
    return 0;
}

static int evaluate(rs_model *m, const train_data *d, rs_pool *pool, int nthreads, double *acc,
                    double *loss, rs_err *e)
{
    uint8_t *frozen = calloc((size_t)(m->n_values > 0 ? m->n_values : 1), 1);
    if (!frozen)
        return rs_fail(e, "train: out of memory");
    train_net *t = net_create(m, 256, pool, nthreads, frozen, 0, e);
    free(frozen);
    if (!t)
        return -1;
    int rc = check_data(m, d, "evaluation", e);
    if (rc == 0)
        rc = eval_net(t, d, acc, loss, e);
    train_net_free(t);
    return rc;
}

int train_evaluate(rs_model *m, const train_data *d, int nthreads, double *acc, double *loss,
                   rs_err *e)
{
    return evaluate(m, d, NULL, nthreads, acc, loss, e);
}

int train_evaluate_on(rs_model *m, const train_data *d, rs_pool *pool, double *acc, double *loss,
                      rs_err *e)
{
    if (!pool)
        return rs_fail(e, "train: no thread pool");
    return evaluate(m, d, pool, 0, acc, loss, e);
}

/* Restores what a checkpoint took after an epoch: the generator, the shuffle order and the
 * momentum of every trainable parameter (the model's weights came with the checkpoint). */
static int resume_from(const train_net *t, const train_state *st, int N, int epochs, rng *r,
                       int *perm, float *mom, rs_err *e)
{
    const rs_model *m = t->m;
    if (st->n != N)
        return rs_fail(e, "train: the checkpoint was taken on %d training images, not %d", st->n, N);
    if (st->epoch < 0 || st->epoch > epochs)
        return rs_fail(e, "train: the checkpoint is at epoch %d of %d", st->epoch, epochs);
    if (st->n_values != m->n_values || !st->mom || !st->perm)
        return rs_fail(e, "train: the checkpoint does not match the model");
    for (int i = 0; i < N; ++i)
        if (st->perm[i] < 0 || st->perm[i] >= N)
            return rs_fail(e, "train: the checkpoint's shuffle order is corrupt");
    for (int v = 0; v < m->n_values; ++v) {
        if (!t->is_param[v])
            continue;
        if (!st->mom[v])
            return rs_fail(e, "train: the checkpoint has no momentum for \"%s\"", m->values[v].name);
        memcpy(mom + t->poff[v], st->mom[v], (size_t)model_value_numel(&m->values[v]) * sizeof *mom);
    }
    memcpy(perm, st->perm, (size_t)N * sizeof *perm);
    memcpy(r->s, st->rng, sizeof r->s);
    return 0;
}

/* A diverged run must not hand back (or let anyone save) a model full of NaN. */
static int params_finite(const train_net *t, int epoch, rs_err *e)
{
    const rs_model *m = t->m;
    for (int v = 0; v < m->n_values; ++v) {
        if (!t->is_param[v] && !(m->values[v].is_const && m->values[v].f))
            continue;
        const float *f = m->values[v].f;
        int64_t cnt = model_value_numel(&m->values[v]);
        for (int64_t k = 0; k < cnt; ++k)
            if (!isfinite(f[k]))
                return rs_fail(e, "train: \"%s\" became non-finite during epoch %d (training "
                               "diverged; try a lower learning rate)", m->values[v].name, epoch);
    }
    return 0;
}

/* Float master copies of the weights (in[1] of Conv / Gemm / MatMul) while o->weight_quant
 * shows the batch other values: masters_in saves them and applies the hook, masters_out puts them
 * back. Only weights: BatchNormalization's running statistics move during the batch and stay. */
static int is_layer_weight(const rs_model *m, int v)
{
    if (!m->values[v].is_const || m->values[v].dtype != RS_DT_FLOAT)
        return 0;
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *n = &m->nodes[i];
        if ((n->op == RS_OP_CONV || n->op == RS_OP_GEMM || n->op == RS_OP_MATMUL) && n->n_in > 1 &&
            n->in[1] == v)
            return 1;
    }
    return 0;
}

static size_t masters_floats(const rs_model *m)
{
    size_t n = 0;
    for (int v = 0; v < m->n_values; ++v)
        if (is_layer_weight(m, v))
            n += (size_t)model_value_numel(&m->values[v]);
    return n;
}

static void masters_copy(rs_model *m, float *buf, int save)
{
    size_t off = 0;
    for (int v = 0; v < m->n_values; ++v) {
        rs_value *x = &m->values[v];
        if (!is_layer_weight(m, v))
            continue;
        size_t cnt = (size_t)model_value_numel(x);
        if (save)
            memcpy(buf + off, x->f, cnt * sizeof *buf);
        else
            memcpy(x->f, buf + off, cnt * sizeof *buf);
        off += cnt;
    }
}

static int masters_in(const train_options *o, rs_model *m, float *buf, rs_err *e)
{
    if (!o->weight_quant)
        return 0;
    masters_copy(m, buf, 1);
    if (o->weight_quant(o->weight_quant_user, m, e) == 0)
        return 0;
    masters_copy(m, buf, 0);
    return rs_failctx(e, "train: weight quantization");
}

static void masters_out(const train_options *o, rs_model *m, const float *buf)
{
    if (o->weight_quant)
        masters_copy(m, (float *)buf, 0);
}

int train_model(rs_model *m, const train_data *train, const train_data *val,
                const train_options *o, train_epoch_stats *last, rs_err *e)
{
    if (!o || o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || o->momentum < 0 ||
        o->weight_decay < 0 || o->pad < 0 || o->pad > 64)
        return rs_fail(e, "train: invalid options (epochs, batch, lr, momentum, decay or pad)");
    train_net *t = net_create(m, o->batch, o->pool, o->nthreads, o->trainable, 0, e);
    if (!t)
        return -1;
    int rc = check_data(m, train, "training", e);
    if (rc == 0 && val)
        rc = check_data(m, val, "validation", e);
    if (rc) {
        train_net_free(t);
        return rc;
    }
    int B = o->batch, N = train->n, F = t->F, C = t->classes;
    float *mom = alloc_floats(t->nparam, e, "train: momentum");
    int *perm = malloc((size_t)N * sizeof *perm);
    uint8_t *crop = malloc((size_t)B * 3);
    uint8_t *lab = malloc((size_t)B);
    float *xb = NULL, *tlog = NULL, *master = NULL;
    int *bidx = malloc((size_t)B * sizeof *bidx);
    if (o->weight_quant)
        master = alloc_floats(masters_floats(m) + 1, e, "train: master weights");
    if (o->teacher || train->f)
        xb = alloc_floats((size_t)B * F, e, "train: batch");
    if (o->teacher)
        tlog = alloc_floats((size_t)B * C, e, "train: teacher logits");
    if (!mom || !perm || !crop || !lab || !bidx || ((o->teacher || train->f) && !xb) ||
        (o->teacher && !tlog) || (o->weight_quant && !master)) {
        rc = rs_fail(e, "train: out of memory");
        goto out;
    }
    rng r;
    rng_seed(&r, o->seed);
    for (int i = 0; i < N; ++i)
        perm[i] = i;
    long steps = (N + B - 1) / B, total = steps * o->epochs, step = 0;
    int aug = o->augment && train->h > 1 && train->w > 1, ep0 = 0;
    if (o->resume) {
        if (resume_from(t, o->resume, N, o->epochs, &r, perm, mom, e)) {
            rc = -1;
            goto out;
        }
        ep0 = o->resume->epoch;
        step = o->resume->step;
    }
    for (int ep = ep0; ep < o->epochs && rc == 0; ++ep) {
        double t0 = rs_now(), c0 = process_cpu_now(), eloss = 0;
        long ecorrect = 0;
        for (int i = N - 1; i > 0; --i) {
            int k = (int)rng_below(&r, (uint32_t)i + 1), tmp = perm[i];
            perm[i] = perm[k], perm[k] = tmp;
        }
        double lr = 0;
        for (long b = 0; b < steps; ++b, ++step) {
            int s = (int)(b * B), n = N - s < B ? N - s : B;
            for (int i = 0; i < n; ++i) {
                bidx[i] = perm[s + i];
                lab[i] = train->labels[bidx[i]];
                if (aug) {
                    crop[3 * i] = (uint8_t)rng_below(&r, 2u * o->pad + 1);
                    crop[3 * i + 1] = (uint8_t)rng_below(&r, 2u * o->pad + 1);
                    crop[3 * i + 2] = (uint8_t)rng_below(&r, 2);
                }
            }
            batch_job j = {.n = n, .crop = aug ? crop : NULL, .pad = o->pad, .labels = lab,
                           .alpha = o->distill_alpha, .temp = o->distill_temp > 0 ? o->distill_temp : 1.0f,
                           .backward = 1, .bn_batch = 1};
            if (train->u8)
                j.u8 = train->u8, j.idx = bidx;
            if (train->f) {
                /* gather (and augment) the batch rows; float inputs pad with pad_value */
                for (int i = 0; i < n; ++i) {
                    const float *src = train->f + (size_t)bidx[i] * F;
                    float *row = xb + (size_t)i * F;
                    if (aug)
                        tn_augment_f32(src, train->c, train->h, train->w, crop[3 * i] - o->pad,
                                       crop[3 * i + 1] - o->pad, crop[3 * i + 2], o->pad_value, row);
                    else
                        memcpy(row, src, (size_t)F * sizeof *row);
                }
                j.x = xb, j.crop = NULL;
            } else if (o->teacher) {
                /* materialise the augmented batch once so teacher and student see the same */
                fill_input(t, &j, 0, n, xb);
                j.x = xb, j.u8 = NULL, j.idx = NULL, j.crop = NULL;
            }
            if (o->teacher) {
                if (o->teacher(o->teacher_user, xb, n, tlog, e)) {
                    rc = rs_failctx(e, "train: teacher");
                    break;
                }
                j.teacher = tlog;
            }
            double bl;
            int bc;
            if ((rc = masters_in(o, m, master, e)) != 0)
                break;
            rc = run_batch(t, &j, &bl, &bc, e);
            masters_out(o, m, master);
            if (rc)
                break;
            if (!isfinite(bl)) {
                rc = rs_fail(e, "train: the loss became %s at epoch %d, batch %ld (training diverged; "
                             "try a lower learning rate)", isnan(bl) ? "NaN" : "infinite", ep + 1, b + 1);
                break;
            }
            eloss += bl;
            ecorrect += bc;
            /* SGD with momentum (PyTorch form) and decoupled-from-bias weight decay. */
            lr = train_lr_at(o, step, total);
            const float *g = t->w[0].pgrad;
            for (int v = 0; v < m->n_values; ++v) {
                if (!t->is_param[v])
                    continue;
                float *w = m->values[v].f, *mv = mom + t->poff[v];
                const float *gv = g + t->poff[v];
                float wd = t->is_weight[v] ? o->weight_decay : 0.0f, mu = o->momentum, flr = (float)lr;
                size_t cnt = (size_t)model_value_numel(&m->values[v]);
                for (size_t i = 0; i < cnt; ++i) {
                    float gi = gv[i] + wd * w[i];
                    mv[i] = mu * mv[i] + gi;
                    w[i] -= flr * mv[i];
                }
            }
            if (o->progress) {
                char what[96];
                snprintf(what, sizeof what, "epoch %d/%d loss %.3f", ep + 1, o->epochs,
                         eloss / (double)(s + n));
                if (o->progress(o->progress_user, (double)(step + 1) / (double)total, what)) {
                    rc = rs_fail(e, "train: cancelled at epoch %d batch %ld", ep + 1, b + 1);
                    rc = RS_CANCELLED;
                    break;
                }
            }
        }
        if (rc)
            break;
        if ((rc = params_finite(t, ep + 1, e)) != 0)
            break;
        train_epoch_stats st = {.epoch = ep + 1, .epochs = o->epochs, .train_loss = eloss / N,
                                .train_acc = (double)ecorrect / N, .val_loss = -1, .val_acc = -1,
                                .lr = lr, .seconds = rs_now() - t0, .cpu_seconds = process_cpu_now() - c0};
        if (val) {
            double v0 = rs_now();
            if ((rc = masters_in(o, m, master, e)) != 0)
                break;
            rc = eval_net(t, val, &st.val_acc, &st.val_loss, e);
            masters_out(o, m, master);
            if (rc)
                break;
            st.val_seconds = rs_now() - v0;
        }
        if (last)
            *last = st;
        if (o->on_checkpoint) {
            train_state ts = {.epoch = ep + 1, .step = step, .n = N, .perm = perm,
                              .n_values = m->n_values};
            memcpy(ts.rng, r.s, sizeof ts.rng);
            ts.mom = calloc((size_t)m->n_values, sizeof *ts.mom);
            if (!ts.mom) {
                rc = rs_fail(e, "train: out of memory");
                break;
            }
            for (int v = 0; v < m->n_values; ++v)
                if (t->is_param[v])
                    ts.mom[v] = mom + t->poff[v];
            rc = o->on_checkpoint(o->checkpoint_user, m, &ts, e);
            free(ts.mom);
            if (rc)
                break;
        }
        if (o->on_epoch && o->on_epoch(o->epoch_user, &st))
            break;
    }
out:
    free(mom);
    free(perm);
    free(crop);
    free(lab);
    free(bidx);
    free(xb);
    free(tlog);
    free(master);
    train_net_free(t);
    return rc;
}

/* ---- initialisation and the reference net ----------------------------------------------------- */

void train_init_params(rs_model *m, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *n = &m->nodes[i];
        if (n->op != RS_OP_CONV && n->op != RS_OP_GEMM && n->op != RS_OP_MATMUL)
            continue;
        if (n->n_in < 2 || n->in[1] < 0)
            continue;
        rs_value *w = &m->values[n->in[1]];
        if (!w->is_const || !w->f || w->ndim < 2)
            continue;
        int64_t fan_in;
        if (n->op == RS_OP_CONV)
            fan_in = w->dims[1] * w->dims[2] * w->dims[3];
        else if (n->op == RS_OP_GEMM)
            fan_in = n->trans_b ? w->dims[1] : w->dims[0];
        else
            fan_in = w->dims[0];
        /* kaiming_uniform(a = √5): gain √(2/6), bound gain·√(3/fan_in) = 1/√fan_in */
        double bound = 1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1));
        int64_t cnt = model_value_numel(w);
        for (int64_t k = 0; k < cnt; ++k)
            w->f[k] = (float)((2.0 * rng_unit(&r) - 1.0) * bound);
        if (n->op != RS_OP_MATMUL && n->n_in > 2 && n->in[2] >= 0) {
            rs_value *b = &m->values[n->in[2]];
            if (b->is_const && b->f) {
                int64_t bc = model_value_numel(b);
                for (int64_t k = 0; k < bc; ++k)
                    b->f[k] = (float)((2.0 * rng_unit(&r) - 1.0) * bound);
            }
        }
    }
}

rs_model *train_reference_net(uint64_t seed, rs_err *e)
{
    rs_model *m = model_alloc();
    if (!m)
        return rs_fail(e, "out of memory"), NULL;
    m->graph_name = rs_strdup("lenet-cifar10");
    m->producer = rs_strdup("rankscope");
    m->opset = 13;
    int x = model_add_value(m, "input", e);
    if (x < 0)
        goto fail;
    m->input = x;
    m->values[x].ndim = 4;
    m->values[x].dims[0] = -1, m->values[x].dims[1] = 3, m->values[x].dims[2] = 32,
    m->values[x].dims[3] = 32;
    static const struct {
        const char *name;
        int cin, cout;
    } convs[2] = {{"conv1", 3, 6}, {"conv2", 6, 16}};
    static const struct {
        const char *name;
        int in, out;
    } fcs[3] = {{"fc1", 400, 120}, {"fc2", 120, 84}, {"fc3", 84, 10}};
    int cur = x;
    char nm[64];
    rs_node *node;
    int k;
    for (int c = 0; c < 2; ++c) {
        int64_t wd[4] = {convs[c].cout, convs[c].cin, 5, 5}, bd[1] = {convs[c].cout};
        snprintf(nm, sizeof nm, "%s.weight", convs[c].name);
        int w = model_add_const(m, nm, 4, wd, NULL, e);
        snprintf(nm, sizeof nm, "%s.bias", convs[c].name);
        int b = w < 0 ? -1 : model_add_const(m, nm, 1, bd, NULL, e);
        if (b < 0)
            goto fail;
        int in[3] = {cur, w, b};
        if ((k = model_add_op(m, convs[c].name, RS_OP_CONV, in, 3, NULL, e)) < 0)
            goto fail;
        node = &m->nodes[k];
        cur = node->out[0];
        node->kernel[0] = node->kernel[1] = 5;
        snprintf(nm, sizeof nm, "relu%d", c + 1);
        if ((k = model_add_op(m, nm, RS_OP_RELU, &cur, 1, NULL, e)) < 0)
            goto fail;
        cur = m->nodes[k].out[0];
        snprintf(nm, sizeof nm, "pool%d", c + 1);
        if ((k = model_add_op(m, nm, RS_OP_MAXPOOL, &cur, 1, NULL, e)) < 0)
            goto fail;
        node = &m->nodes[k];
        cur = node->out[0];
        node->kernel[0] = node->kernel[1] = 2;
        node->strides[0] = node->strides[1] = 2;
    }
    if ((k = model_add_op(m, "flatten", RS_OP_FLATTEN, &cur, 1, NULL, e)) < 0)
        goto fail;
    node = &m->nodes[k];
    cur = node->out[0];
    node->axis = 1;
    for (int f = 0; f < 3; ++f) {
        int64_t wd[2] = {fcs[f].out, fcs[f].in}, bd[1] = {fcs[f].out};
        snprintf(nm, sizeof nm, "%s.weight", fcs[f].name);
        int w = model_add_const(m, nm, 2, wd, NULL, e);
        snprintf(nm, sizeof nm, "%s.bias", fcs[f].name);
        int b = w < 0 ? -1 : model_add_const(m, nm, 1, bd, NULL, e);
        if (b < 0)
            goto fail;
        int in[3] = {cur, w, b};
        if ((k = model_add_op(m, fcs[f].name, RS_OP_GEMM, in, 3, f == 2 ? "logits" : NULL, e)) < 0)
            goto fail;
        node = &m->nodes[k];
        cur = node->out[0];
        node->trans_b = 1;
        if (f < 2) {
            snprintf(nm, sizeof nm, "relu%d", f + 3);
            if ((k = model_add_op(m, nm, RS_OP_RELU, &cur, 1, NULL, e)) < 0)
                goto fail;
            cur = m->nodes[k].out[0];
        }
    }
    m->output = cur;
    if (model_infer_shapes(m, e))
        goto fail;
    train_init_params(m, seed);
    return m;
fail:
    rs_failctx(e, "reference net");
    model_free(m);
    return NULL;
}
