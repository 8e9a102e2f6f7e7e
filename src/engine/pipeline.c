/* pipeline.c — the trade-off curve, compress, and single-image latency (the incremental evaluator
 * is in pipe_eval.c). */
#include "rankscope/pipeline.h"

#include "pipe_internal.h"

#include "rankscope/fit.h"
#include "rankscope/infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


const double pipe_curve_default_targets[PIPE_CURVE_DEFAULT_N] = {1.5, 2.0, 2.5, 3.0, 4.0};

const char *pipe_plan_oneline(const rs_plan *p, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = 0;
    if (p->n == 0)
        snprintf(buf, len, "(empty)");
    for (int i = 0; i < p->n && k < len; ++i) {
        const plan_entry *en = &p->entries[i];
        int w = snprintf(buf + k, len - k, "%s%s %s %d", i ? "; " : "", en->layer,
                         decomp_method_name(en->method), en->rank);
        if (w > 0)
            k += (size_t)w;
        if (en->method == DECOMP_TUCKER2 && k < len) {
            w = snprintf(buf + k, len - k, ",%d", en->rank2);
            if (w > 0)
                k += (size_t)w;
        }
    }
    return buf;
}

float *pipe_fit_calibration(const cifar10_set *set, int n, int *n_out, rs_err *e)
{
    if (n <= 0)
        n = FIT_DEFAULT_CALIB;
    if (n > set->n)
        n = set->n;
    if (n < 1) {
        rs_fail(e, "no images to fit the factors to (the calibration set is empty)");
        return NULL;
    }
    float *x = malloc((size_t)n * CIFAR10_PIXELS * sizeof *x);
    if (!x) {
        rs_fail(e, "out of memory for %d calibration images", n);
        return NULL;
    }
    cifar10_normalize(set, 0, n, x);
    *n_out = n;
    return x;
}

static int cancelled(rs_err *e)
{
    rs_fail(e, "cancelled");
    return RS_CANCELLED;
}

int pipe_accuracy(const rs_model *m, const cifar10_set *s, rs_pool *pool, double *acc, rs_err *e)
{
    eval_result r;
    infer_ctx *c = infer_create_on(m, pool, e);
    int rc = c ? eval_ctx(c, s, &r, NULL, NULL, e) : -1;
    infer_free(c);
    if (rc == 0)
        *acc = r.accuracy;
    return rc;
}

/* Accuracy on s of m factorized by p as the search factorizes (so->fit_calib: fitted to outputs). */
static int eval_plan(const rs_model *m, const rs_plan *p, const search_options *so, const cifar10_set *s,
                     rs_pool *pool, double *acc, rs_err *e)
{
    rs_model *w = model_clone(m);
    if (!w)
        return rs_fail(e, "out of memory copying the model");
    int rc = search_apply_plan(w, p, so, e);
    if (rc == 0)
        rc = pipe_accuracy(w, s, pool, acc, e);
    model_free(w);
    return rc;
}

/* ---- the trade-off curve ----------------------------------------------------------------------- */

static int curve_finetune(const rs_model *m, const rs_plan *p, const pipe_curve_options *o, rs_pool *pool,
                          double *acc, rs_err *e)
{
    train_data td, vd;
    finetune_data_of(o->train, &td);
    finetune_data_of(o->val, &vd);
    rs_model *ft = NULL;
    finetune_options fo = *o->finetune;
    if (!fo.fit_calib)
        fo.fit_calib = o->search->fit_calib, fo.fit_n = o->search->fit_n;
    if (!fo.train.pool)
        fo.train.pool = pool;
    int rc = finetune_run(m, p, &td, &vd, &fo, &ft, NULL, e);
    if (rc == 0)
        rc = pipe_accuracy(ft, o->judge, pool, acc, e);
    model_free(ft);
    return rc;
}

static int curve_points(const rs_model *m, search_ctx *ctx, const pipe_curve_options *o, rs_pool *pool, rs_err *e);

int pipe_curve_run(const rs_model *m, search_ctx *ctx, const pipe_curve_options *o, rs_err *e)
{
    rs_pool *pool = pool_alloc(o->nthreads, e);
    int rc = pool ? curve_points(m, ctx, o, pool, e) : -1;
    pool_free(pool);
    return rc;
}

static int curve_points(const rs_model *m, search_ctx *ctx, const pipe_curve_options *o, rs_pool *pool, rs_err *e)
{
    const double *targets = o->targets ? o->targets : pipe_curve_default_targets;
    int nt = o->targets ? o->n_targets : PIPE_CURVE_DEFAULT_N;
    int64_t p0, m0;
    model_totals(m, &p0, &m0);
    for (int k = 0; k < nt; ++k) {
        pipe_curve_point pt;
        memset(&pt, 0, sizeof pt);
        pt.index = k;
        pt.target = targets[k];
        pt.acc_finetuned = -1;
        rs_plan *p = NULL;
        int64_t budget = (int64_t)((double)p0 / targets[k]);
        int rc = search_ctx_plan_for_budget(ctx, o->search, budget, &p, &pt.est_drop, e);
        if (rc == RS_CANCELLED)
            return rc;
        if (rc != 0) {
            pt.unreachable = e->msg;
            if (o->on_point && o->on_point(o->user, &pt))
                return cancelled(e);
            continue;
        }
        if (plan_cost_of(m, p, &pt.cost, e) != 0 || eval_plan(m, p, o->search, o->judge, pool, &pt.acc, e) != 0) {
            plan_free(p);
            return -1;
        }
        if (o->finetune && o->train && (rc = curve_finetune(m, p, o, pool, &pt.acc_finetuned, e)) != 0) {
            plan_free(p);
            return rc;
        }
        pt.plan = p;
        int stop = o->on_point && o->on_point(o->user, &pt);
        plan_free(p);
        if (stop)
            return cancelled(e);
    }
    return 0;
}

/* ---- compress ---------------------------------------------------------------------------------- */

static int deadline_progress(void *user, double fraction, const char *what)
{
    pipe_deadline *d = user;
    if (d->until > 0 && rs_now() > d->until) {
        d->hit = 1;
        return 1;
    }
    return d->fn ? d->fn(d->user, fraction, what) : 0;
}

void pipe_deadline_wrap(pipe_deadline *d, search_options *so, const pipe_compress_options *o)
{
    d->fn = so->progress;
    d->user = so->progress_user;
    d->until = o->time_limit_s > 0 ? (o->started > 0 ? o->started : rs_now()) + o->time_limit_s : 0;
    d->hit = 0;
    so->progress = deadline_progress;
    so->progress_user = d;
}

void pipe_compress_default_options(pipe_compress_options *o)
{
    memset(o, 0, sizeof *o);
    search_default_options(&o->search);
    o->search.strategy = SEARCH_GLOBAL;
    o->search.objective = SEARCH_OBJ_PARAMS;
    o->search.min_macs_ratio = 1.4;
    finetune_default_options(&o->finetune);
    o->rounds = 8;
    o->time_limit_s = 0;
    o->margin_z = 1.0;
}

void pipe_compress_result_free(pipe_compress_result *r)
{
    if (!r)
        return;
    search_result_free(&r->search);
    plan_free(r->plan);
    model_free(r->model);
    memset(r, 0, sizeof *r);
}

double pipe_compress_cost(const search_options *so, int64_t params, int64_t macs, int64_t p0, int64_t m0,
                          double seconds, double seconds0)
{
    double p = (double)params / p0, mc = (double)macs / m0;
    double cost = so->objective == SEARCH_OBJ_PARAMS ? p
                  : so->objective == SEARCH_OBJ_MACS ? mc
                  : so->objective == SEARCH_OBJ_LATENCY ? (seconds0 > 0 ? seconds / seconds0 : 1.0)
                                                         : p + mc;
    if (so->min_macs_ratio > 0 && (double)macs > (double)m0 / so->min_macs_ratio + 0.5)
        cost += 10.0;
    return cost;
}

typedef struct compress_run {
    const rs_model *m;
    const cifar10_set *train, *val;
    const pipe_compress_options *o;
    pipe_compress_result *r;
    search_ctx *ctx;
    int64_t p0, m0;
    double seconds0; /* SEARCH_OBJ_LATENCY: summed measured layer times of the original */
    double best_cost;
    rs_plan *tried[PIPE_MAX_ROUNDS];
    int ntried;
    rs_pool *pool; /* evaluations and fine-tunings */
} compress_run;

static int stage(compress_run *c, pipe_compress_stage st)
{
    const pipe_compress_options *o = c->o;
    if (o->on_stage && o->on_stage(o->user, st, c->r)) {
        c->r->cancelled = 1;
        return 1;
    }
    return 0;
}

static void warn(compress_run *c, const rs_err *e)
{
    snprintf(c->r->warning, sizeof c->r->warning, "%s", e->msg);
    stage(c, PIPE_STAGE_WARNING);
}

/* 1 when p was fine-tuned in an earlier round (or is empty): nothing new to learn from it. */
static int already_tried(compress_run *c, const rs_plan *p)
{
    rs_err e;
    char *txt = NULL, *ttxt = NULL;
    int dup = 0;
    plan_format(p, &txt, &e);
    for (int i = 0; i < c->ntried && txt; ++i) {
        plan_format(c->tried[i], &ttxt, &e);
        dup |= ttxt && !strcmp(ttxt, txt);
        free(ttxt);
        ttxt = NULL;
    }
    free(txt);
    return dup || p->n == 0;
}

/* pipe_compress_cost of plan p (cost already counted in pc). */
static int plan_cost_value(compress_run *c, const rs_plan *p, const plan_cost *pc, double *cost, rs_err *e)
{
    double t = 0;
    if (c->o->search.objective == SEARCH_OBJ_LATENCY && search_ctx_plan_time(c->ctx, &c->o->search, p, &t, e) != 0)
        return -1;
    *cost = pipe_compress_cost(&c->o->search, pc->params_after, pc->macs_after, c->p0, c->m0, t, c->seconds0);
    return 0;
}

/* Fine-tune p and judge it against the original on the validation set; 0 when lg is filled,
 * else the round failed (warned, or cancelled) and *ft is NULL. */
static int judge_round(compress_run *c, const rs_plan *p, pipe_round *lg, rs_model **ft, double *val_acc)
{
    const pipe_compress_options *o = c->o;
    pipe_compress_result *r = c->r;
    rs_err e = {{0}};
    train_data td, vd;
    finetune_data_of(c->train, &td);
    finetune_data_of(c->val, &vd);
    finetune_options fo = o->finetune;
    fo.train.epochs = o->epochs;
    if (!fo.fit_calib) /* fine-tune from the factors the round was chosen with */
        fo.fit_calib = o->search.fit_calib, fo.fit_n = o->search.fit_n;
    if (!fo.train.pool)
        fo.train.pool = c->pool;
    double t0 = rs_now();
    train_epoch_stats last;
    memset(&last, 0, sizeof last);
    *ft = NULL;
    int rc = finetune_run(c->m, p, &td, &vd, &fo, ft, &last, &e);
    if (rc != 0) {
        if (rc != RS_CANCELLED)
            warn(c, &e);
        else
            r->cancelled = 1;
        model_free(*ft);
        *ft = NULL;
        return -1;
    }
    /* acceptance with a noise margin: the drop and its paired standard error, both from the
     * per-image agreement of the original and fine-tuned nets on the validation set */
    if (search_paired_counts(c->m, *ft, c->val, o->search.nthreads, &lg->a_only, &lg->b_only, &e) != 0) {
        warn(c, &e);
        model_free(*ft);
        *ft = NULL;
        return -1;
    }
    lg->val_post = r->base_val + (double)(lg->b_only - lg->a_only) / c->val->n;
    lg->margin = o->margin_z * search_paired_se(lg->a_only, lg->b_only, c->val->n);
    lg->seconds = rs_now() - t0;
    lg->epochs_done = last.epoch;
    lg->accepted = 100.0 * (r->base_val - lg->val_post) + lg->margin <= r->tol_points + 1e-9;
    *val_acc = last.val_acc;
    return 0;
}

/* The fine-tuning rounds after the search. */
static void compress_rounds(compress_run *c)
{
    const pipe_compress_options *o = c->o;
    pipe_compress_result *r = c->r;
    double t_start = o->started > 0 ? o->started : rs_now();
    double lo = 0.0, hi = -1.0; /* largest accepted / smallest rejected budget */
    /* fine-tuning recovers much of a pre-fine-tuning drop: the first round already allows 3× it */
    double budget = 3.0 * (r->tol_points > 0.25 ? r->tol_points : 0.25);
    double round_secs = 0;
    for (int k = 0; k < o->rounds && r->n_rounds < PIPE_MAX_ROUNDS; ++k) {
        if (stage(c, PIPE_STAGE_NEXT))
            break;
        if (k > 0 && rs_now() - t_start + round_secs * 1.1 > o->time_limit_s && o->time_limit_s > 0) {
            stage(c, PIPE_STAGE_TIME_LIMIT);
            break;
        }
        rs_plan *p = NULL;
        rs_err e = {{0}};
        if (search_ctx_plan_for_drop(c->ctx, &o->search, budget, &p, NULL, &e) != 0) {
            warn(c, &e);
            break;
        }
        if (!p)
            break;
        if (already_tried(c, p)) {
            /* the budget step changed nothing: widen (or narrow) without spending a fine-tuning */
            plan_free(p);
            budget = hi < 0 ? budget * 2.5 : 0.5 * (lo + hi) + 0.01;
            if (hi >= 0 && hi - lo < 0.2)
                break;
            continue;
        }
        c->tried[c->ntried++] = p;
        pipe_round *lg = &r->rounds[r->n_rounds++];
        memset(lg, 0, sizeof *lg);
        lg->budget = budget;
        lg->number = k + 1;
        pipe_plan_oneline(p, lg->plan, sizeof lg->plan);
        plan_cost pc;
        plan_cost_of(c->m, p, &pc, &e);
        lg->params = pc.params_after;
        lg->macs = pc.macs_after;
        if (eval_plan(c->m, p, &o->search, c->val, c->pool, &lg->val_pre, &e) != 0) {
            warn(c, &e);
            break;
        }
        if (stage(c, PIPE_STAGE_ROUND_START))
            break;
        rs_model *ft = NULL;
        double val_acc = 0;
        if (judge_round(c, p, lg, &ft, &val_acc) != 0)
            break;
        round_secs = lg->seconds;
        double cost = 0;
        if (plan_cost_value(c, p, &pc, &cost, &e) != 0) {
            model_free(ft);
            warn(c, &e);
            break;
        }
        int stop = stage(c, PIPE_STAGE_ROUND_DONE);
        if (lg->accepted) {
            if (!r->model || cost < c->best_cost) {
                model_free(r->model);
                r->model = ft;
                ft = NULL;
                plan_free(r->plan);
                r->plan = plan_clone(p);
                r->best_val = val_acc;
                c->best_cost = cost;
            }
            lo = lg->budget;
        } else
            hi = lg->budget;
        model_free(ft);
        if (stop)
            break;
        if (hi < 0)
            budget = lo * 2.5;
        else {
            if (hi - lo < 0.2)
                break;
            budget = 0.5 * (lo + hi);
        }
    }
}

int pipe_compress_run(const rs_model *m, const cifar10_set *train, const cifar10_set *val,
                      const pipe_compress_options *o, pipe_compress_result *r, rs_err *e)
{
    memset(r, 0, sizeof *r);
    compress_run c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.train = train;
    c.val = val;
    c.o = o;
    c.r = r;
    if (o->epochs > 0 && !train)
        return rs_fail(e, "compress: fine-tuning needs the training set");
    if (!(c.pool = pool_alloc(o->search.nthreads, e)))
        return -1;
    if (!(c.ctx = search_ctx_create(m, val, o->search.nthreads, e))) {
        pool_free(c.pool);
        return -1;
    }
    const search_options *so = &o->search;
    r->base_val = search_ctx_base_acc(c.ctx);
    r->floor_val = so->relative > 0 ? (1 - so->relative) * r->base_val : r->base_val - so->tolerance / 100.0;
    r->tol_points = 100.0 * (r->base_val - r->floor_val);
    model_totals(m, &c.p0, &c.m0);
    int rc = -1;
    if (stage(&c, PIPE_STAGE_SEARCHING))
        goto done;
    search_options sd = *so;
    pipe_deadline dl;
    pipe_deadline_wrap(&dl, &sd, o);
    rc = search_ctx_run(c.ctx, &sd, &r->search, e);
    if (rc != 0 && rc != RS_CANCELLED)
        goto done;
    rc = 0;
    r->cancelled |= r->search.cancelled;
    if (dl.hit)
        stage(&c, PIPE_STAGE_TIME_LIMIT);
    r->plan = plan_clone(r->search.plan);
    r->best_val = r->search.acc;
    if (!r->plan) {
        rc = rs_fail(e, "out of memory");
        goto done;
    }
    if (so->objective == SEARCH_OBJ_LATENCY && (search_ctx_plan_time(c.ctx, so, NULL, &c.seconds0, e) != 0 ||
                                                plan_cost_value(&c, r->plan, &r->search.cost, &c.best_cost, e) != 0)) {
        rc = -1;
        goto done;
    }
    if (so->objective != SEARCH_OBJ_LATENCY)
        c.best_cost = pipe_compress_cost(so, r->search.cost.params_after, r->search.cost.macs_after, c.p0, c.m0, 0, 0);
    if (!stage(&c, PIPE_STAGE_SEARCHED) && o->epochs > 0 && !r->cancelled)
        compress_rounds(&c);
    if (!r->model) {
        /* no fine-tuning (or none held): the searched plan, factorized as is */
        r->model = model_clone(m);
        if (!r->model) {
            rc = rs_fail(e, "out of memory");
            goto done;
        }
        if (search_apply_plan(r->model, r->plan, so, e) != 0) {
            rc = -1;
            goto done;
        }
    }
done:
    for (int i = 0; i < c.ntried; ++i)
        plan_free(c.tried[i]);
    search_ctx_free(c.ctx);
    pool_free(c.pool);
    return rc;
}

/* ---- measured speed-up ------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

const char *pipe_verdict_name(int verdict)
{
    return verdict > 0 ? "faster" : verdict < 0 ? "slower" : "not measurably different";
}

/* Median speed-up and verdict (pipeline.h) from n samples of each. */
static int verdict(double *before, double *after, int n, double *speedup)
{
    qsort(before, (size_t)n, sizeof *before, cmp_double);
    qsort(after, (size_t)n, sizeof *after, cmp_double);
    *speedup = after[n / 2] > 0 ? before[n / 2] / after[n / 2] : 0;
    if (after[n - 1] < before[0] && *speedup >= PIPE_FASTER_MIN)
        return 1;
    if (before[n - 1] < after[0] && *speedup * PIPE_FASTER_MIN <= 1.0)
        return -1;
    return 0;
}

int pipe_measure_speed(const rs_model *before, const rs_model *after, const lat_options *o, int samples,
                       pipe_speed *out, rs_err *e)
{
    lat_options lo;
    if (o)
        lo = *o;
    else
        lat_default_options(&lo);
    lo.cache_dir = ""; /* whole models are never cached */
    int n = samples > 0 ? samples : PIPE_SPEED_SAMPLES;
    memset(out, 0, sizeof *out);
    lat_table *t = lat_open(&lo, e);
    double *s = calloc((size_t)n * 4, sizeof *s); /* b1 before | b1 after | batch before | batch after */
    int rc = t && s ? 0 : rs_fail(e, "out of memory");
    for (int i = 0; i < n && rc == 0; ++i) {
        lat_point pb, pa;
        rc = lat_model(t, before, &pb, e);
        if (rc == 0)
            rc = lat_model(t, after, &pa, e);
        s[i] = pb.b1, s[n + i] = pa.b1, s[2 * n + i] = pb.batch, s[3 * n + i] = pa.batch;
    }
    if (rc == 0) {
        out->samples = n;
        out->batch = lo.batch;
        out->verdict_b1 = verdict(s, s + n, n, &out->speedup_b1);
        out->verdict_batch = verdict(s + 2 * n, s + 3 * n, n, &out->speedup_batch);
        out->before.b1 = s[n / 2], out->after.b1 = s[n + n / 2];
        out->before.batch = s[2 * n + n / 2], out->after.batch = s[3 * n + n / 2];
    }
    free(s);
    lat_free(t);
    return rc;
}
