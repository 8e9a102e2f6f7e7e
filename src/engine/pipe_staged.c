/* pipe_staged.c — staged compression with distillation from the original, and its replay from a
 * recipe (pipeline.h, recipe.h). */
#include "rankscope/pipeline.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/infer.h"

#include "pipe_internal.h"

#define PIPE_STAGE_MIN_BUDGET 0.05 /* points: below this a stage would factorize next to nothing */

/* ---- folding a factor chain back into one layer ------------------------------------------------ */

/* The chain of w's nodes that replaced orig's node `on` (decomp_apply: "<name>_f<i>", reading the
 * layer's input, writing its output): node indices first to last into idx; its length, or 0 when
 * the layer is not factorized in w, -1 when it is not such a chain. */
static int chain_of(const rs_model *w, const rs_model *orig, int on, int *idx, int max)
{
    const rs_node *o = &orig->nodes[on];
    int vin = model_find_value(w, orig->values[o->in[0]].name), vout = model_find_value(w, orig->values[o->out[0]].name);
    int last = vout >= 0 ? model_producer(w, vout) : -1;
    if (last < 0 || !strcmp(w->nodes[last].name, o->name))
        return 0;
    size_t nl = strlen(o->name);
    int n = 0;
    for (int k = last; k >= 0; k = model_producer(w, w->nodes[k].in[0])) {
        const rs_node *f = &w->nodes[k];
        if (n == max || strncmp(f->name, o->name, nl) || strncmp(f->name + nl, "_f", 2) || f->n_in < 2 ||
            (f->op != RS_OP_CONV && f->op != RS_OP_GEMM))
            return -1;
        idx[n++] = k;
        if (f->in[0] == vin)
            break;
    }
    if (n == 0 || w->nodes[idx[n - 1]].in[0] != vin)
        return -1;
    for (int i = 0; i < n / 2; ++i) { /* first to last */
        int t = idx[i];
        idx[i] = idx[n - 1 - i], idx[n - 1 - i] = t;
    }
    return n;
}

/* The chain as one linear map, probed: the chain alone (pads 0, strides 1) on one receptive field
 * (C·kh·kw inputs, or K for a dense layer) gives y = W x + b; x = 0 gives b, the unit vectors W's
 * columns. *wt: out × in (the original layer's weight layout), *b: out. */
static int probe_chain(const rs_model *w, const int *idx, int n, const rs_node *o, const rs_value *ow,
                       float **wt, float **b, int64_t *n_out, rs_err *e)
{
    rs_model *c = model_clone(w);
    if (!c)
        return rs_fail(e, "out of memory");
    int keep = 0;
    for (int i = 0; i < c->n_nodes; ++i) {
        int in_chain = 0;
        for (int k = 0; k < n; ++k)
            in_chain |= idx[k] == i;
        if (in_chain) {
            rs_node *f = &c->nodes[i];
            f->strides[0] = f->strides[1] = 1;
            memset(f->pads, 0, sizeof f->pads);
            c->nodes[keep++] = *f;
        } else {
            free(c->nodes[i].name);
        }
    }
    c->n_nodes = keep;
    c->input = c->nodes[0].in[0];
    c->output = c->nodes[keep - 1].out[0];
    int64_t in = o->op == RS_OP_CONV ? ow->dims[1] * ow->dims[2] * ow->dims[3] : model_value_numel(ow) / ow->dims[0];
    rs_value *iv = &c->values[c->input];
    iv->ndim = o->op == RS_OP_CONV ? 4 : 2;
    iv->dims[0] = -1, iv->dims[1] = o->op == RS_OP_CONV ? ow->dims[1] : in;
    if (o->op == RS_OP_CONV)
        iv->dims[2] = ow->dims[2], iv->dims[3] = ow->dims[3];
    model_gc(c);
    int64_t out = ow->dims[0];
    float *x = calloc((size_t)(in + 1) * (size_t)in, sizeof *x), *y = malloc((size_t)(in + 1) * (size_t)out * sizeof *y);
    int rc = x && y ? model_infer_shapes(c, e) : rs_fail(e, "out of memory");
    if (rc == 0 && model_value_numel(&c->values[c->output]) != out)
        rc = rs_fail(e, "%s: its factors do not reduce to one %lldx%lld map", o->name, (long long)out, (long long)in);
    for (int64_t j = 0; rc == 0 && j < in; ++j)
        x[(size_t)(j + 1) * (size_t)in + (size_t)j] = 1.0f;
    if (rc == 0)
        rc = infer_forward_naive(c, x, (int)(in + 1), y, e);
    *wt = rc == 0 ? malloc((size_t)(out * in) * sizeof **wt) : NULL;
    *b = rc == 0 ? malloc((size_t)out * sizeof **b) : NULL;
    if (rc == 0 && (!*wt || !*b))
        rc = rs_fail(e, "out of memory");
    for (int64_t oc = 0; rc == 0 && oc < out; ++oc) {
        (*b)[oc] = y[oc];
        for (int64_t j = 0; j < in; ++j)
            (*wt)[oc * in + j] = y[(size_t)(j + 1) * (size_t)out + (size_t)oc] - y[oc];
    }
    if (rc) {
        free(*wt), free(*b);
        *wt = *b = NULL;
    }
    *n_out = out;
    free(x), free(y);
    model_free(c);
    return rc;
}

int pipe_fold_layer(rs_model *w, const rs_model *orig, const char *name, rs_err *e)
{
    int on = model_find_layer(orig, name);
    if (on < 0 || !model_is_weighted(orig, on))
        return rs_fail(e, "%s: not a weighted layer of the original", name);
    const rs_node *o = &orig->nodes[on];
    int idx[DECOMP_MAX_FACTORS + 1];
    int n = chain_of(w, orig, on, idx, DECOMP_MAX_FACTORS + 1);
    if (n <= 0)
        return n < 0 ? rs_fail(e, "%s: its factors are not a plain chain: cannot factorize it again", name) : 0;
    const rs_value *ow = &orig->values[o->in[1]];
    if ((o->op != RS_OP_CONV && !(o->op == RS_OP_GEMM && o->trans_b && !o->trans_a)) ||
        (o->op == RS_OP_CONV && (o->group != 1 || o->dilations[0] != 1 || o->dilations[1] != 1 || ow->ndim != 4)))
        return rs_fail(e, "%s: only a Conv of group 1 without dilation or a Gemm with transB can be factorized again",
                       name);
    float *wt = NULL, *b = NULL;
    int64_t out = 0;
    if (probe_chain(w, idx, n, o, ow, &wt, &b, &out, e) != 0)
        return -1;
    rs_node *last = &w->nodes[idx[n - 1]];
    int bias_v = last->n_in > 2 ? last->in[2] : -1, rc = 0;
    if (bias_v >= 0)
        memcpy(w->values[bias_v].f, b, (size_t)out * sizeof *b);
    int wv = model_find_value(w, ow->name) >= 0 ? -1 : model_add_const(w, ow->name, ow->ndim, ow->dims, wt, e);
    if (wv < 0)
        rc = e->msg[0] ? -1 : rs_fail(e, "%s: the weight name %s is taken", name, ow->name);
    if (rc == 0) {
        last = &w->nodes[idx[n - 1]];
        rs_node nn = *o;
        nn.name = rs_strdup(o->name);
        nn.in[0] = w->nodes[idx[0]].in[0];
        nn.in[1] = wv;
        nn.in[2] = bias_v;
        nn.n_in = bias_v >= 0 ? 3 : 2;
        nn.out[0] = last->out[0];
        nn.n_out = 1;
        if (!nn.name)
            rc = rs_fail(e, "out of memory");
        else {
            free(last->name);
            *last = nn;
            int keep = 0;
            for (int i = 0; i < w->n_nodes; ++i) {
                int drop = 0;
                for (int k = 0; k < n - 1; ++k)
                    drop |= idx[k] == i;
                if (drop)
                    free(w->nodes[i].name);
                else
                    w->nodes[keep++] = w->nodes[i];
            }
            w->n_nodes = keep;
            model_gc(w);
            rc = model_infer_shapes(w, e);
        }
    }
    free(wt), free(b);
    return rc;
}

/* cur with the stage plan's already-factorized layers folded back (a copy; *out NULL on error). */
static int fold_plan(const rs_model *orig, const rs_model *cur, const rs_plan *p, rs_model **out, rs_err *e)
{
    rs_model *w = model_clone(cur);
    int rc = w ? 0 : rs_fail(e, "out of memory");
    for (int i = 0; rc == 0 && p && i < p->n; ++i)
        rc = pipe_fold_layer(w, orig, p->entries[i].layer, e);
    if (rc) {
        model_free(w);
        w = NULL;
    }
    *out = w;
    return rc;
}

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
    fo.bn = st->bn;
    fo.trained_only = st->plan->n > 0;
    fo.report = rep;
    rs_model *w = NULL;
    if (fold_plan(orig, cur, st->plan, &w, e) != 0)
        return -1;
    int rc = finetune_run(w, st->plan, &td, &vd, &fo, out, NULL, e);
    model_free(w);
    return rc;
}

typedef struct staged {
    const rs_model *m;
    const cifar10_set *train, *val;
    const pipe_compress_options *o;
    pipe_compress_result *r;
    rs_plan *all; /* the union of the accepted stages' plans */
    rs_plan *none; /* empty: the plan of a stage that only fine-tunes */
    rs_pool *pool; /* evaluations and fine-tunings */
    finetune_options fo; /* o->finetune, factorizing as the search does */
    rs_plan **rejected;  /* the plans of the rejected stages: never proposed again, nor anything
                          * at least as aggressive from a state at least as compressed */
    int n_rejected;
    /* the loop's state, as checkpoints record it (pipe_ckpt) */
    int mode;            /* PIPE_CK_STAGED / PIPE_CK_REPLAY */
    rs_model *cur;       /* the net the next stage starts from */
    rs_recipe *recipe;   /* may be NULL */
    double budget, failed_budget, secs, t_start;
    int kept, tries, tried; /* tried: stages (their extensions not counted); replay: the stage */
    const rs_plan *p;    /* the stage in progress */
    const rs_model *ext; /* the net an extension trains */
    int phase;           /* PIPE_CK_* of the fine-tuning running */
    const pipe_ckpt *res; /* resuming: until the fine-tuning it holds is under way */
} staged;

/* The checkpoint (o->checkpoint) of the run as it stands: at a stage's start (ft NULL) or after
 * an epoch of the fine-tuning in s->phase. */
static int save_ckpt(staged *s, const finetune_state *ft, rs_err *e)
{
    if (!s->o->checkpoint)
        return 0;
    const pipe_compress_result *r = s->r;
    pipe_ckpt c;
    memset(&c, 0, sizeof c);
    c.ident = (char *)s->o->ident;
    c.mode = s->mode, c.phase = ft ? s->phase : PIPE_CK_START;
    c.kept = s->kept, c.tries = s->tries, c.tried = s->tried;
    c.budget = s->budget, c.failed_budget = s->failed_budget, c.secs = s->secs, c.elapsed = rs_now() - s->t_start;
    c.base_val = r->base_val, c.floor_val = r->floor_val, c.tol_points = r->tol_points, c.best_val = r->best_val;
    c.n_rounds = r->n_rounds, c.rounds = (pipe_round *)r->rounds;
    c.all = s->all;
    c.p = ft && (s->phase == PIPE_CK_STAGE || s->phase == PIPE_CK_EXTENSION) ? (rs_plan *)s->p : NULL;
    c.rejected = s->rejected, c.n_rejected = s->n_rejected;
    c.recipe = s->recipe;
    c.cur = s->cur;
    c.ext = ft && s->phase == PIPE_CK_EXTENSION ? (rs_model *)s->ext : NULL;
    if (ft)
        c.ft = *ft;
    return pipe_ckpt_save(s->o->checkpoint, &c, e);
}

static int ft_checkpoint(void *user, const finetune_state *fs, rs_err *e)
{
    return save_ckpt(user, fs, e);
}

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

/* Fill lg for stage plan p on cur (before fine-tuning): costs of all + costp (p, or for a stage
 * that only fine-tunes, the plan of the stage it extends) on the original and the accuracy of cur
 * factorized by p. */
static int round_start(staged *s, const rs_model *cur, const rs_plan *p, const rs_plan *costp, int number,
                       double budget, pipe_round *lg, rs_err *e)
{
    memset(lg, 0, sizeof *lg);
    lg->number = number; /* 1-based */
    lg->budget = budget;
    pipe_plan_oneline(p, lg->plan, sizeof lg->plan);
    rs_plan *u = plan_clone(s->all);
    int rc = u ? 0 : rs_fail(e, "out of memory");
    for (int i = 0; rc == 0 && costp && i < costp->n; ++i)
        rc = plan_set(u, costp->entries[i].layer, costp->entries[i].method, costp->entries[i].rank,
                      costp->entries[i].rank2, e);
    plan_cost pc;
    if (rc == 0 && (rc = plan_cost_of(s->m, u, &pc, e)) == 0)
        lg->params = pc.params_after, lg->macs = pc.macs_after;
    plan_free(u);
    rs_model *w = NULL;
    if (rc == 0)
        rc = fold_plan(s->m, cur, p, &w, e);
    if (rc == 0 && (rc = search_apply_plan(w, p, &s->o->search, e)) == 0)
        rc = pipe_accuracy(w, s->val, s->pool, &lg->val_pre, e);
    model_free(w);
    return rc;
}

/* Params of original layer `layer` factorized by entry en (the whole layer if en is NULL). */
static int64_t layer_params(const rs_model *m, const char *layer, const plan_entry *en)
{
    decomp_cost c;
    rs_err e;
    int node = model_find_layer(m, layer);
    if (node < 0 || !en || decomp_cost_of(m, node, en->method, en->rank, en->rank2, &c, &e) != 0)
        return INT64_MAX;
    return c.params_after;
}

/* The factorization of `layer` the net has with step p taken from the accepted state all (NULL:
 * the layer as it is). */
static const plan_entry *effective(const rs_plan *all, const rs_plan *p, const char *layer)
{
    const plan_entry *en = p ? plan_find(p, layer) : NULL;
    return en ? en : plan_find(all, layer);
}

/* Taking step p from all gives a net at least as aggressive as rejected step r did from the state
 * it was rejected in, on every layer r factorized (p = NULL: all alone). The accepted state only
 * grows more aggressive, so r's starting state is covered by all. */
static int covers(const rs_model *orig, const rs_plan *all, const rs_plan *p, const rs_plan *r)
{
    for (int i = 0; i < r->n; ++i) {
        const plan_entry *en = effective(all, p, r->entries[i].layer);
        int node = model_find_layer(orig, r->entries[i].layer);
        if (!en || node < 0 || !search_as_aggressive(orig, node, en, &r->entries[i]))
            return 0;
    }
    return 1;
}

/* The knapsack's plan for the budget on ctx, minus the entries that would not make a layer cheaper
 * than it is under all; *p NULL when nothing is left. */
static int propose(search_ctx *ctx, const rs_model *orig, const search_options *so, double budget,
                   const rs_plan *all, rs_plan **p, double *cost, rs_err *e)
{
    *p = NULL;
    int rc = search_ctx_plan_for_drop(ctx, so, budget, p, cost, e);
    for (int i = 0; rc == 0 && *p && i < (*p)->n; ++i) {
        const plan_entry *en = &(*p)->entries[i], *was = plan_find(all, en->layer);
        if (en->method == DECOMP_NONE ||
            (was && layer_params(orig, en->layer, en) >= layer_params(orig, was->layer, was))) {
            char name[256];
            snprintf(name, sizeof name, "%s", en->layer);
            plan_remove(*p, name);
            --i;
        }
    }
    if (rc == 0 && *p && (*p)->n == 0) {
        plan_free(*p);
        *p = NULL;
    }
    return rc;
}

int pipe_next_plan(search_ctx *ctx, const rs_model *orig, const search_options *so, double budget,
                   const rs_plan *all, rs_plan *const *rejected, int n_rejected, rs_plan **p, rs_err *e)
{
    *p = NULL;
    int cap = 0;
    for (int k = 0; k < n_rejected; ++k)
        cap += rejected[k]->n;
    plan_entry *floors = malloc((size_t)(cap + 1) * sizeof *floors);
    if (!floors)
        return rs_fail(e, "out of memory");
    search_options o = *so;
    o.milder_than = floors;
    o.n_milder_than = 0;
    double cost = 0;
    int rc = propose(ctx, orig, &o, budget, all, p, &cost, e);
    /* Each pass finds a rejected step the proposal covers and rules out, on one of that step's
     * layers the accepted state does not already cover, its factorization and anything at least
     * as aggressive: the layer whose exclusion leaves the cheapest plan. Every rejected step is
     * resolved at most once, so this ends. */
    while (rc == 0 && *p) {
        const rs_plan *r = NULL;
        for (int k = 0; !r && k < n_rejected; ++k)
            if (!covers(orig, all, NULL, rejected[k]) && covers(orig, all, *p, rejected[k]))
                r = rejected[k];
        if (!r)
            break;
        rs_plan *best = NULL;
        double best_cost = 0;
        plan_entry pick = {0};
        for (int i = 0; rc == 0 && i < r->n; ++i) {
            const plan_entry *en = plan_find(all, r->entries[i].layer);
            int node = model_find_layer(orig, r->entries[i].layer);
            if (node < 0 || (en && search_as_aggressive(orig, node, en, &r->entries[i])))
                continue; /* already this aggressive in the accepted state: no milder step exists */
            floors[o.n_milder_than] = r->entries[i];
            ++o.n_milder_than;
            rs_plan *q = NULL;
            double c = 0;
            rc = propose(ctx, orig, &o, budget, all, &q, &c, e);
            --o.n_milder_than;
            /* a plan that changes nothing ranks after any that still compresses */
            if (rc == 0 && (!pick.layer || (q && !best) || ((q != NULL) == (best != NULL) && c < best_cost))) {
                plan_free(best);
                best = q, best_cost = c, pick = r->entries[i];
            } else {
                plan_free(q);
            }
        }
        plan_free(*p);
        *p = best;
        if (rc == 0 && !pick.layer) { /* cannot happen: r is not covered by all, so a layer is open */
            plan_free(*p);
            *p = NULL;
        }
        if (pick.layer)
            floors[o.n_milder_than++] = pick;
    }
    free(floors);
    if (rc != 0) {
        plan_free(*p);
        *p = NULL;
    }
    return rc;
}

/* The plan of the next stage: on cur with every factorized layer folded back (so the search sees
 * all the original's layers, each as the net now computes it), pipe_next_plan. */
static int stage_plan(staged *s, const rs_model *cur, double budget, rs_plan **p, pipe_deadline *dl, rs_err *e)
{
    *p = NULL;
    rs_model *folded = NULL;
    if (fold_plan(s->m, cur, s->all, &folded, e) != 0)
        return -1;
    search_options so = s->o->search;
    pipe_deadline_wrap(dl, &so, s->o);
    search_ctx *ctx = search_ctx_create(folded, s->val, so.nthreads, e);
    int rc = ctx ? pipe_next_plan(ctx, s->m, &so, budget, s->all, s->rejected, s->n_rejected, p, e) : -1;
    search_ctx_free(ctx);
    model_free(folded);
    return rc;
}

/* Stage st on cur into a new round (number k): fine-tuned, judged; *ft the result. label: the
 * round's plan text (NULL: st's plan). -1: failed or cancelled (warned; *ft NULL); else 1 when a
 * callback asked to stop after it, 0 to go on. */
static int stage_round(staged *s, const rs_model *cur, const recipe_stage *st, const rs_plan *costp, int k,
                       double budget, pipe_round_kind kind, const char *label, rs_model **ft, double *secs)
{
    pipe_compress_result *r = s->r;
    rs_err e = {{0}};
    *ft = NULL;
    if (r->n_rounds >= PIPE_MAX_ROUNDS)
        return -1;
    pipe_round *lg = &r->rounds[r->n_rounds];
    double t0 = rs_now();
    s->phase = (int)kind + 1; /* PIPE_CK_STAGE, _EXTENSION, _POLISH */
    s->p = costp, s->ext = kind == PIPE_ROUND_EXTENSION ? cur : NULL;
    if (s->res && s->res->phase == s->phase) { /* its round was reported before the checkpoint */
        lg = &r->rounds[r->n_rounds - 1];
        s->fo.resume = &s->res->ft;
        s->res = NULL;
    } else {
        if (round_start(s, cur, st->plan, costp, k, budget, lg, &e) != 0) {
            warn(s, &e);
            return -1;
        }
        if (label)
            snprintf(lg->plan, sizeof lg->plan, "%s", label);
        lg->kind = kind;
        r->n_rounds++;
        if (stop_at(s, PIPE_STAGE_ROUND_START))
            return -1;
    }
    finetune_report fr;
    int rc = pipe_stage_apply(s->m, cur, st, s->train, s->val, &s->fo, ft, &fr, &e);
    s->fo.resume = NULL;
    if (rc == RS_CANCELLED)
        r->cancelled = 1;
    else if (rc != 0 || judge(s, *ft, lg, &e) != 0)
        warn(s, &e);
    if (rc != 0 || r->warning[0]) {
        model_free(*ft);
        *ft = NULL;
        return -1;
    }
    lg->seconds = *secs = rs_now() - t0;
    lg->epochs_done = fr.epochs_done;
    if (kind == PIPE_ROUND_POLISH) /* it starts from a kept net: kept unless it lost on validation */
        lg->accepted = lg->val_post >= r->best_val;
    return stop_at(s, PIPE_STAGE_ROUND_DONE);
}

/* ft becomes *cur: p joins the union of the kept plans, sts[0..n-1] go to the recipe. 1 = stop. */
static int keep_stage(staged *s, rs_model **cur, rs_model *ft, const rs_plan *p, const recipe_stage *sts, int n,
                      rs_recipe *recipe)
{
    rs_err e = {{0}};
    model_free(*cur);
    *cur = ft;
    s->r->best_val = s->r->rounds[s->r->n_rounds - 1].val_post;
    for (int i = 0; p && i < p->n; ++i)
        if (plan_set(s->all, p->entries[i].layer, p->entries[i].method, p->entries[i].rank, p->entries[i].rank2,
                     &e) != 0) {
            warn(s, &e);
            return 1;
        }
    for (int i = 0; recipe && i < n; ++i)
        if (recipe_add_stage(recipe, &sts[i], &e) != 0) {
            warn(s, &e);
            return 1;
        }
    return 0;
}

/* A rejected stage is fine-tuned once more (a stage that only fine-tunes, the same epochs) when
 * it missed by at most extend_slack points and the time allows. */
static int extendable(const staged *s, const pipe_round *lg, double t_start, double secs)
{
    const pipe_compress_options *o = s->o;
    double miss = 100.0 * (s->r->base_val - lg->val_post) + lg->margin - s->r->tol_points;
    if (o->extend_slack <= 0 || miss > o->extend_slack)
        return 0;
    return !(o->time_limit_s > 0 && rs_now() - t_start + secs * 1.1 > o->time_limit_s);
}

/* One stage of plan p: factorize, fine-tune from the original as teacher, judge, and when it
 * misses narrowly fine-tune it once more (extendable); *cur replaced when it is kept. tries counts
 * the fine-tunings. 1 = stop (error, cancel). */
static int run_stage(staged *s, rs_model **cur, const rs_plan *p, int k, double budget, rs_recipe *recipe,
                     double t_start, double *secs, int *tries, int *kept)
{
    const pipe_compress_options *o = s->o;
    pipe_compress_result *r = s->r;
    recipe_stage st[2] = {{(rs_plan *)p, o->epochs, o->finetune.train.lr, o->finetune.train.seed, 1,
                           o->finetune.train.distill_alpha, o->finetune.train.distill_temp, o->finetune.bn}};
    st[1] = st[0];
    st[1].plan = s->none;
    rs_model *ft = NULL;
    *kept = 0;
    int stop = 0, in_ext = s->res && s->res->phase == PIPE_CK_EXTENSION; /* resumed in the extension */
    if (in_ext) {
        if (!(ft = model_clone(s->res->ext))) {
            rs_err e;
            warn(s, (rs_fail(&e, "out of memory"), &e));
            return 1;
        }
    } else {
        if (!s->res) /* a resumed stage was counted before the checkpoint */
            ++*tries;
        stop = stage_round(s, *cur, &st[0], p, k, budget, PIPE_ROUND_STAGE, NULL, &ft, secs);
        if (stop < 0)
            return 1;
    }
    const pipe_round *lg = &r->rounds[r->n_rounds - (in_ext ? 2 : 1)];
    int n = 1;
    if (in_ext || (!stop && !lg->accepted && *tries < o->rounds && extendable(s, lg, t_start, *secs))) {
        char label[64];
        snprintf(label, sizeof label, "stage %d fine-tuned %d epochs more", k, o->epochs);
        rs_model *ft2 = NULL;
        if (!in_ext)
            ++*tries;
        stop = stage_round(s, ft, &st[1], p, k, budget, PIPE_ROUND_EXTENSION, label, &ft2, secs);
        model_free(ft);
        ft = ft2;
        if (stop < 0)
            return 1;
        lg = &r->rounds[r->n_rounds - 1];
        n = 2;
    }
    if (lg->accepted) {
        *kept = 1;
        stop |= keep_stage(s, cur, ft, p, st, n, recipe);
        ft = NULL;
    }
    model_free(ft);
    return stop;
}

/* After the stages: the last kept net fine-tuned polish_epochs more (a stage that only
 * fine-tunes); kept when it does not lose on validation (keep-best makes that the rule). */
static void polish(staged *s, rs_model **cur, rs_recipe *recipe, double t_start, double secs_per_epoch, int number)
{
    const pipe_compress_options *o = s->o;
    pipe_compress_result *r = s->r;
    int resumed = s->res && s->res->phase == PIPE_CK_POLISH;
    if (o->polish_epochs < 1 || r->cancelled || r->warning[0] || (!resumed && stop_at(s, PIPE_STAGE_NEXT)))
        return;
    if (!resumed && o->time_limit_s > 0 &&
        rs_now() - t_start + secs_per_epoch * o->polish_epochs * 1.1 > o->time_limit_s) {
        stop_at(s, PIPE_STAGE_TIME_LIMIT);
        return;
    }
    recipe_stage st = {s->none, o->polish_epochs, o->finetune.train.lr, o->finetune.train.seed, 1,
                       o->finetune.train.distill_alpha, o->finetune.train.distill_temp, o->finetune.bn};
    char label[64];
    snprintf(label, sizeof label, "polish: fine-tuned %d epochs more", o->polish_epochs);
    rs_model *ft = NULL;
    double secs = 0;
    if (stage_round(s, *cur, &st, NULL, number, 0, PIPE_ROUND_POLISH, label, &ft, &secs) < 0)
        return;
    if (r->rounds[r->n_rounds - 1].accepted)
        keep_stage(s, cur, ft, NULL, &st, 1, recipe);
    else
        model_free(ft);
}

static int setup(staged *s, const rs_model *m, const cifar10_set *train, const cifar10_set *val,
                 const pipe_compress_options *o, pipe_compress_result *r, rs_err *e)
{
    memset(r, 0, sizeof *r);
    memset(s, 0, sizeof *s);
    s->m = m, s->train = train, s->val = val, s->o = o, s->r = r;
    if (!train)
        return rs_fail(e, "staged compression fine-tunes: it needs the training set");
    if (!(s->all = plan_alloc()) || !(s->none = plan_alloc()))
        return rs_fail(e, "out of memory");
    const search_options *so = &o->search;
    if (!(s->pool = pool_alloc(so->nthreads, e)))
        return -1;
    s->fo = o->finetune;
    if (!s->fo.fit_calib)
        s->fo.fit_calib = o->search.fit_calib, s->fo.fit_n = o->search.fit_n;
    if (!s->fo.train.pool)
        s->fo.train.pool = s->pool;
    if (o->checkpoint) {
        s->fo.on_checkpoint = ft_checkpoint;
        s->fo.checkpoint_user = s;
    }
    s->t_start = o->started > 0 ? o->started : rs_now();
    if (pipe_accuracy(m, val, s->pool, &r->base_val, e) != 0)
        return -1;
    r->floor_val = so->relative > 0 ? (1 - so->relative) * r->base_val : r->base_val - so->tolerance / 100.0;
    r->tol_points = 100.0 * (r->base_val - r->floor_val);
    r->best_val = r->base_val;
    return 0;
}

/* The run o->resume holds, of workflow `mode`, taken over into s (and recipe); s->res stays set
 * when a fine-tuning is to be resumed. */
static int restore(staged *s, int mode, rs_recipe *recipe, rs_err *e)
{
    const pipe_ckpt *c = s->o->resume;
    pipe_compress_result *r = s->r;
    static const char *const kind[] = {"", "a staged run", "a recipe replay"};
    if (c->mode != mode)
        return rs_fail(e, "the checkpoint is of %s, not of %s", kind[c->mode], kind[mode]);
    if (c->base_val != r->base_val)
        return rs_fail(e, "the checkpoint was taken with another model or validation set (validation accuracy "
                          "%.2f%% there, %.2f%% here)", 100 * c->base_val, 100 * r->base_val);
    int rc = plan_validate(s->m, c->all, e);
    if (rc == 0 && c->p)
        rc = plan_validate(s->m, c->p, e);
    for (int i = 0; rc == 0 && i < c->n_rejected; ++i)
        rc = plan_validate(s->m, c->rejected[i], e);
    for (int i = 0; rc == 0 && c->recipe && i < c->recipe->n_stages; ++i)
        rc = plan_validate(s->m, c->recipe->stages[i].plan, e);
    if (rc != 0)
        return rs_failctx(e, "the checkpoint's plans do not fit the model");
    r->floor_val = c->floor_val, r->tol_points = c->tol_points, r->best_val = c->best_val;
    r->n_rounds = c->n_rounds;
    memcpy(r->rounds, c->rounds, (size_t)c->n_rounds * sizeof *r->rounds);
    plan_free(s->all);
    s->all = plan_clone(c->all);
    s->cur = model_clone(c->cur);
    s->rejected = calloc((size_t)(c->n_rejected ? c->n_rejected : 1), sizeof *s->rejected);
    if (!s->all || !s->cur || !s->rejected)
        return rs_fail(e, "out of memory");
    for (; s->n_rejected < c->n_rejected; ++s->n_rejected)
        if (!(s->rejected[s->n_rejected] = plan_clone(c->rejected[s->n_rejected])))
            return rs_fail(e, "out of memory");
    for (int i = 0; recipe && c->recipe && i < c->recipe->n_stages; ++i)
        if (recipe_add_stage(recipe, &c->recipe->stages[i], e) != 0)
            return -1;
    s->budget = c->budget, s->failed_budget = c->failed_budget, s->secs = c->secs;
    s->kept = c->kept, s->tries = c->tries, s->tried = c->tried;
    s->t_start -= c->elapsed; /* the time limit counts the sittings before */
    s->res = c->phase == PIPE_CK_START ? NULL : c;
    return 0;
}

static void staged_free(staged *s)
{
    for (int i = 0; s->rejected && i < s->n_rejected; ++i)
        plan_free(s->rejected[i]);
    free(s->rejected);
    s->rejected = NULL, s->n_rejected = 0;
    plan_free(s->none);
    pool_free(s->pool);
    s->none = NULL, s->pool = NULL;
}

/* The stages of pipe_staged_run (s set up, or restored). 0, or -1 with e set. */
static int stage_loop(staged *s, rs_err *e)
{
    const pipe_compress_options *o = s->o;
    pipe_compress_result *r = s->r;
    int rc = 0;
    /* a stage under way when the checkpoint was taken passed these tests before its fine-tuning
     * was counted */
    while (rc == 0 && !r->cancelled &&
           (s->res || (s->kept < o->stages && s->tries < o->rounds && r->n_rounds < PIPE_MAX_ROUNDS &&
                       s->budget >= PIPE_STAGE_MIN_BUDGET))) {
        rs_plan *p = NULL;
        if (s->res) { /* a stage under way when the checkpoint was taken */
            if (!(p = plan_clone(s->res->p)))
                return rs_fail(e, "out of memory");
        } else {
            rs_err ce = {{0}};
            if (save_ckpt(s, NULL, &ce) != 0) {
                warn(s, &ce);
                break;
            }
            if (stop_at(s, PIPE_STAGE_NEXT))
                break;
            if (s->tries > 0 && rs_now() - s->t_start + s->secs * 1.1 > o->time_limit_s && o->time_limit_s > 0) {
                stop_at(s, PIPE_STAGE_TIME_LIMIT);
                break;
            }
            pipe_deadline dl;
            int src = stage_plan(s, s->cur, s->budget, &p, &dl, e);
            if (src != 0 && dl.hit) {
                stop_at(s, PIPE_STAGE_TIME_LIMIT);
                break;
            }
            if (src != 0) {
                if (src == RS_CANCELLED)
                    r->cancelled = 1;
                else
                    warn(s, e);
                break;
            }
            if (!p && s->failed_budget > s->budget) {
                /* no smaller step fits the halved budget: the mildest step the rejections allow at
                 * the budget that failed (strictly milder than what failed there) */
                s->budget = s->failed_budget;
                s->failed_budget = 0;
                continue;
            }
            if (!p) /* nothing left to factorize */
                break;
            ++s->tried;
        }
        int ok = 0, stop = run_stage(s, &s->cur, p, s->tried, s->budget, s->recipe, s->t_start, &s->secs, &s->tries, &ok);
        if (ok) {
            ++s->kept;
            s->failed_budget = 0;
        } else {
            rs_plan **grown = realloc(s->rejected, (size_t)(s->n_rejected + 1) * sizeof *grown);
            if (!grown) {
                rc = rs_fail(e, "out of memory");
                plan_free(p);
                break;
            }
            s->rejected = grown;
            s->rejected[s->n_rejected++] = p;
            p = NULL;
            s->failed_budget = s->budget;
            s->budget *= 0.5; /* a smaller step from the same net */
        }
        plan_free(p);
        if (stop)
            break;
    }
    return rc;
}

int pipe_staged_run(const rs_model *m, const cifar10_set *train, const cifar10_set *val,
                    const pipe_compress_options *o, pipe_compress_result *r, rs_recipe *recipe, rs_err *e)
{
    staged s;
    if (o->epochs < 1)
        return rs_fail(e, "staged compression needs fine-tuning epochs (>= 1)");
    int rc = setup(&s, m, train, val, o, r, e);
    s.mode = PIPE_CK_STAGED;
    s.recipe = recipe;
    s.budget = o->stage_budget > 0 ? o->stage_budget : (r->tol_points > 0.25 ? r->tol_points : 0.25);
    if (rc == 0 && o->resume)
        rc = restore(&s, PIPE_CK_STAGED, recipe, e);
    else if (rc == 0 && !(s.cur = model_clone(m)))
        rc = rs_fail(e, "out of memory");
    if (rc == 0 && !o->resume)
        stop_at(&s, PIPE_STAGE_SEARCHING);
    if (rc == 0 && !(s.res && s.res->phase == PIPE_CK_POLISH))
        rc = stage_loop(&s, e);
    if (rc == 0 && s.kept > 0)
        polish(&s, &s.cur, recipe, s.t_start, s.secs / o->epochs, s.tried + 1);
    staged_free(&s);
    if (rc == 0) {
        r->model = s.cur;
        r->plan = s.all;
        return 0;
    }
    model_free(s.cur);
    plan_free(s.all);
    return rc;
}

int pipe_recipe_replay(const rs_model *m, const cifar10_set *train, const cifar10_set *val, const rs_recipe *rc_,
                       const pipe_compress_options *o, pipe_compress_result *r, rs_err *e)
{
    staged s;
    int rc = setup(&s, m, train, val, o, r, e);
    s.mode = PIPE_CK_REPLAY;
    if (rc == 0 && o->resume && (rc = restore(&s, PIPE_CK_REPLAY, NULL, e)) == 0 && s.tried >= rc_->n_stages)
        rc = rs_fail(e, "the checkpoint is at stage %d of a recipe of %d stages", s.tried + 1, rc_->n_stages);
    else if (rc == 0 && !o->resume && !(s.cur = model_clone(m)))
        rc = rs_fail(e, "out of memory");
    for (int k = s.tried; rc == 0 && k < rc_->n_stages; ++k) {
        const recipe_stage *st = &rc_->stages[k];
        pipe_round *lg = &r->rounds[r->n_rounds];
        double t0 = rs_now();
        s.tried = k;
        s.phase = PIPE_CK_STAGE;
        if (s.res) { /* resumed within this stage's fine-tuning: its round was reported already */
            lg = &r->rounds[r->n_rounds - 1];
            s.fo.resume = &s.res->ft;
            s.res = NULL;
        } else {
            if ((rc = save_ckpt(&s, NULL, e)) != 0 || (rc = round_start(&s, s.cur, st->plan, st->plan, k + 1, 0, lg, e)) != 0)
                break;
            if (st->plan->n == 0)
                snprintf(lg->plan, sizeof lg->plan, "fine-tuned %d epochs more", st->epochs);
            r->n_rounds++;
            if (stop_at(&s, PIPE_STAGE_ROUND_START)) {
                rc = rs_fail(e, "cancelled"), rc = RS_CANCELLED;
                break;
            }
        }
        rs_model *ft = NULL;
        finetune_report fr;
        rc = pipe_stage_apply(m, s.cur, st, train, val, &s.fo, &ft, &fr, e);
        s.fo.resume = NULL;
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
        model_free(s.cur);
        s.cur = ft;
        r->best_val = lg->val_post;
        stop_at(&s, PIPE_STAGE_ROUND_DONE);
    }
    staged_free(&s);
    if (rc == 0) {
        r->model = s.cur;
        r->plan = s.all;
        return 0;
    }
    model_free(s.cur);
    plan_free(s.all);
    return rc;
}
