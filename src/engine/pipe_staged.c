/* pipe_staged.c — staged compression with distillation from the original, and its replay from a
 * recipe (pipeline.h, recipe.h). */
#include "rankscope/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIPE_STAGE_MIN_BUDGET 0.05 /* points: below this a stage would factorize next to nothing */

int pipe_stage_apply(const rs_model *orig, const rs_model *cur, const recipe_stage *st, const cifar10_set *train,
                     const cifar10_set *val, const finetune_options *base, rs_model **out, finetune_report *rep,
                     rs_err *e)
{
    train_data td, vd;
    finetune_data_of(train, &td);
    finetune_data_of(val, &vd);
    finetune_options fo = *base;
    fo.train.epochs = st->epochs;
    fo.train.lr = (float)st->lr;
    fo.train.seed = st->seed;
    fo.distill = st->distill;
    fo.teacher = st->distill ? orig : NULL;
    fo.train.distill_alpha = (float)st->alpha;
    fo.train.distill_temp = (float)st->temp;
    fo.report = rep;
    return finetune_run(cur, st->plan, &td, &vd, &fo, out, NULL, e);
}

typedef struct staged {
    const rs_model *m;
    const cifar10_set *train, *val;
    const pipe_compress_options *o;
    pipe_compress_result *r;
    rs_plan *all; /* the union of the accepted stages' plans */
    finetune_options fo; /* o->finetune, factorizing as the search does */
} staged;

static int stop_at(staged *s, pipe_compress_stage st)
{
    const pipe_compress_options *o = s->o;
    if (o->on_stage && o->on_stage(o->user, st, s->r)) {
        s->r->cancelled = 1;
        return 1;
    }
    return 0;
}

static void warn(staged *s, const rs_err *e)
{
    snprintf(s->r->warning, sizeof s->r->warning, "%s", e->msg);
    stop_at(s, PIPE_STAGE_WARNING);
}

static int eval_on(const rs_model *m, const cifar10_set *set, int threads, double *acc, rs_err *e)
{
    eval_result er;
    if (eval_model(m, set, threads, &er, NULL, NULL, e) != 0)
        return -1;
    *acc = er.accuracy;
    return 0;
}

/* Judge ft against the original (as compress judges its rounds) into lg. */
static int judge(staged *s, const rs_model *ft, pipe_round *lg, rs_err *e)
{
    pipe_compress_result *r = s->r;
    if (search_paired_counts(s->m, ft, s->val, s->o->search.nthreads, &lg->a_only, &lg->b_only, e) != 0)
        return -1;
    lg->val_post = r->base_val + (double)(lg->b_only - lg->a_only) / s->val->n;
    lg->margin = s->o->margin_z * search_paired_se(lg->a_only, lg->b_only, s->val->n);
    lg->accepted = 100.0 * (r->base_val - lg->val_post) + lg->margin <= r->tol_points + 1e-9;
    return 0;
}

/* Fill lg for stage plan p on cur (before fine-tuning): costs of all + p on the original and the
 * accuracy of cur factorized by p. */
static int round_start(staged *s, const rs_model *cur, const rs_plan *p, int number, double budget, pipe_round *lg,
                       rs_err *e)
{
    memset(lg, 0, sizeof *lg);
    lg->number = number; /* 1-based */
    lg->budget = budget;
    pipe_plan_oneline(p, lg->plan, sizeof lg->plan);
    rs_plan *u = plan_clone(s->all);
    int rc = u ? 0 : rs_fail(e, "out of memory");
    for (int i = 0; rc == 0 && i < p->n; ++i)
        rc = plan_set(u, p->entries[i].layer, p->entries[i].method, p->entries[i].rank, p->entries[i].rank2, e);
    plan_cost pc;
    if (rc == 0 && (rc = plan_cost_of(s->m, u, &pc, e)) == 0)
        lg->params = pc.params_after, lg->macs = pc.macs_after;
    plan_free(u);
    rs_model *w = rc == 0 ? model_clone(cur) : NULL;
    if (rc == 0 && !w)
        rc = rs_fail(e, "out of memory");
    if (rc == 0 && (rc = search_apply_plan(w, p, &s->o->search, e)) == 0)
        rc = eval_on(w, s->val, s->o->search.nthreads, &lg->val_pre, e);
    model_free(w);
    return rc;
}

/* Comma-separated short names of cur's weighted layers that are the original's and that no stage
 * factorized yet; "" when none is left. */
static int layers_left(const staged *s, const rs_model *cur, char *out, size_t len)
{
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < cur->n_nodes; ++i) {
        char b[256];
        if (!model_is_weighted(cur, i))
            continue;
        const char *name = model_layer_name(cur, i, b, sizeof b);
        int n0 = model_find_layer(s->m, name);
        if (n0 < 0 || !model_is_weighted(s->m, n0) || plan_find(s->all, name))
            continue;
        int w = snprintf(out + k, len - k, "%s%s", k ? "," : "", name);
        if (w < 0 || (size_t)w >= len - k)
            return -1;
        k += (size_t)w;
    }
    return 0;
}

/* The plan of stage `number` on cur: least cost within the estimated drop budget over the layers
 * left. *p = NULL when nothing is left. */
static int stage_plan(staged *s, const rs_model *cur, double budget, rs_plan **p, rs_err *e)
{
    static char layers[16384];
    *p = NULL;
    if (layers_left(s, cur, layers, sizeof layers) != 0)
        return rs_fail(e, "too many layers for a stage");
    if (!layers[0])
        return 0;
    search_options so = s->o->search;
    so.layers = layers;
    search_ctx *ctx = search_ctx_create(cur, s->val, so.nthreads, e);
    if (!ctx)
        return -1;
    int rc = search_ctx_plan_for_drop(ctx, &so, budget, p, NULL, e);
    search_ctx_free(ctx);
    if (rc == 0 && *p && (*p)->n == 0) {
        plan_free(*p);
        *p = NULL;
    }
    return rc;
}

/* One stage of plan p: factorize, fine-tune from the original as teacher, judge; *cur replaced
 * when it is kept. 1 = stop (error, cancel). */
static int run_stage(staged *s, rs_model **cur, const rs_plan *p, int k, double budget, rs_recipe *recipe,
                     double *secs)
{
    const pipe_compress_options *o = s->o;
    pipe_compress_result *r = s->r;
    rs_err e = {{0}};
    recipe_stage st = {(rs_plan *)p, o->epochs, o->finetune.train.lr, o->finetune.train.seed, 1,
                       o->finetune.train.distill_alpha, o->finetune.train.distill_temp};
    pipe_round *lg = &r->rounds[r->n_rounds];
    double t0 = rs_now();
    int stop = 0;
    rs_model *ft = NULL;
    finetune_report fr;
    if (round_start(s, *cur, p, k, budget, lg, &e) != 0) {
        warn(s, &e);
        stop = 1;
    }
    if (!stop) {
        r->n_rounds++;
        stop = stop_at(s, PIPE_STAGE_ROUND_START);
    }
    if (!stop) {
        int rc = pipe_stage_apply(s->m, *cur, &st, s->train, s->val, &s->fo, &ft, &fr, &e);
        if (rc == RS_CANCELLED)
            r->cancelled = 1;
        else if (rc != 0 || judge(s, ft, lg, &e) != 0)
            warn(s, &e);
        stop = rc != 0 || r->warning[0];
    }
    if (!stop) {
        lg->seconds = *secs = rs_now() - t0;
        lg->epochs_done = fr.epochs_done;
        stop = stop_at(s, PIPE_STAGE_ROUND_DONE);
        if (lg->accepted) {
            model_free(*cur);
            *cur = ft;
            ft = NULL;
            r->best_val = lg->val_post;
            for (int i = 0; i < p->n && !stop; ++i)
                stop = plan_set(s->all, p->entries[i].layer, p->entries[i].method, p->entries[i].rank,
                                p->entries[i].rank2, &e) != 0;
            if (recipe && recipe_add_stage(recipe, p, st.epochs, st.lr, st.seed, st.distill, st.alpha, st.temp, &e))
                warn(s, &e), stop = 1;
        }
    }
    model_free(ft);
    return stop;
}

static int same_plan(const rs_plan *a, const rs_plan *b)
{
    if (!a || !b || a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; ++i) {
        const plan_entry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->layer, y->layer) || x->method != y->method || x->rank != y->rank || x->rank2 != y->rank2)
            return 0;
    }
    return 1;
}

static int setup(staged *s, const rs_model *m, const cifar10_set *train, const cifar10_set *val,
                 const pipe_compress_options *o, pipe_compress_result *r, rs_err *e)
{
    memset(r, 0, sizeof *r);
    memset(s, 0, sizeof *s);
    s->m = m, s->train = train, s->val = val, s->o = o, s->r = r;
    if (!train)
        return rs_fail(e, "staged compression fine-tunes: it needs the training set");
    if (!(s->all = plan_alloc()))
        return rs_fail(e, "out of memory");
    s->fo = o->finetune;
    if (!s->fo.fit_calib)
        s->fo.fit_calib = o->search.fit_calib, s->fo.fit_n = o->search.fit_n;
    const search_options *so = &o->search;
    if (eval_on(m, val, so->nthreads, &r->base_val, e) != 0)
        return -1;
    r->floor_val = so->relative > 0 ? (1 - so->relative) * r->base_val : r->base_val - so->tolerance / 100.0;
    r->tol_points = 100.0 * (r->base_val - r->floor_val);
    r->best_val = r->base_val;
    return 0;
}

int pipe_staged_run(const rs_model *m, const cifar10_set *train, const cifar10_set *val,
                    const pipe_compress_options *o, pipe_compress_result *r, rs_recipe *recipe, rs_err *e)
{
    staged s;
    if (o->epochs < 1)
        return rs_fail(e, "staged compression needs fine-tuning epochs (>= 1)");
    if (setup(&s, m, train, val, o, r, e) != 0) {
        plan_free(s.all);
        return -1;
    }
    double t_start = o->started > 0 ? o->started : rs_now(), secs = 0;
    double budget = o->stage_budget > 0 ? o->stage_budget : (r->tol_points > 0.25 ? r->tol_points : 0.25);
    rs_model *cur = model_clone(m);
    int rc = cur ? 0 : rs_fail(e, "out of memory");
    if (rc == 0)
        stop_at(&s, PIPE_STAGE_SEARCHING);
    rs_plan *rejected = NULL; /* the last plan that did not hold: not fine-tuned twice */
    int kept = 0, tries = 0;
    while (rc == 0 && !r->cancelled && kept < o->stages && tries < o->rounds && r->n_rounds < PIPE_MAX_ROUNDS &&
           budget >= PIPE_STAGE_MIN_BUDGET) {
        if (stop_at(&s, PIPE_STAGE_NEXT))
            break;
        if (tries > 0 && rs_now() - t_start + secs * 1.1 > o->time_limit_s) {
            stop_at(&s, PIPE_STAGE_TIME_LIMIT);
            break;
        }
        rs_plan *p = NULL;
        if (stage_plan(&s, cur, budget, &p, e) != 0) {
            warn(&s, e);
            break;
        }
        if (!p) /* nothing left to factorize */
            break;
        if (same_plan(p, rejected)) {
            plan_free(p);
            budget *= 0.5;
            continue;
        }
        ++tries;
        int stop = run_stage(&s, &cur, p, tries, budget, recipe, &secs);
        if (!stop && r->n_rounds > 0 && r->rounds[r->n_rounds - 1].accepted) {
            ++kept;
        } else {
            plan_free(rejected);
            rejected = p;
            p = NULL;
            budget *= 0.5; /* a smaller step from the same net */
        }
        plan_free(p);
        if (stop)
            break;
    }
    plan_free(rejected);
    if (rc == 0) {
        r->model = cur;
        r->plan = s.all;
        return 0;
    }
    model_free(cur);
    plan_free(s.all);
    return rc;
}

int pipe_recipe_replay(const rs_model *m, const cifar10_set *train, const cifar10_set *val, const rs_recipe *rc_,
                       const pipe_compress_options *o, pipe_compress_result *r, rs_err *e)
{
    staged s;
    if (setup(&s, m, train, val, o, r, e) != 0) {
        plan_free(s.all);
        return -1;
    }
    rs_model *cur = model_clone(m);
    int rc = cur ? 0 : rs_fail(e, "out of memory");
    for (int k = 0; rc == 0 && k < rc_->n_stages; ++k) {
        const recipe_stage *st = &rc_->stages[k];
        pipe_round *lg = &r->rounds[r->n_rounds];
        double t0 = rs_now();
        if ((rc = round_start(&s, cur, st->plan, k + 1, 0, lg, e)) != 0)
            break;
        r->n_rounds++;
        if (stop_at(&s, PIPE_STAGE_ROUND_START)) {
            rc = rs_fail(e, "cancelled"), rc = RS_CANCELLED;
            break;
        }
        rs_model *ft = NULL;
        finetune_report fr;
        rc = pipe_stage_apply(m, cur, st, train, val, &s.fo, &ft, &fr, e);
        if (rc == 0)
            rc = judge(&s, ft, lg, e);
        for (int i = 0; rc == 0 && i < st->plan->n; ++i)
            rc = plan_set(s.all, st->plan->entries[i].layer, st->plan->entries[i].method, st->plan->entries[i].rank,
                          st->plan->entries[i].rank2, e);
        if (rc != 0) {
            model_free(ft);
            break;
        }
        lg->seconds = rs_now() - t0;
        lg->epochs_done = fr.epochs_done;
        model_free(cur);
        cur = ft;
        r->best_val = lg->val_post;
        stop_at(&s, PIPE_STAGE_ROUND_DONE);
    }
    if (rc == 0) {
        r->model = cur;
        r->plan = s.all;
        return 0;
    }
    model_free(cur);
    plan_free(s.all);
    return rc;
}
