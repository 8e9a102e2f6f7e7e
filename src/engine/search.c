/* search.c — rank search strategies (naive, bisect, global knapsack, evbmf) over a search set. */
#include "rankscope/search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/decomp.h"
#include "rankscope/eval.h"
#include "rankscope/evbmf.h"
#include "rankscope/fit.h"
#include "rankscope/infer.h"
#include "search_internal.h"

/* Drops are discretised to 1/100 of a point for the knapsack. */
#define DROP_UNITS 100.0

/* ---- names ------------------------------------------------------------------------------------ */
static const char *const strategy_names[SEARCH_STRATEGY_COUNT] = {"naive", "bisect", "global", "evbmf"};
static const char *const objective_names[4] = {"params", "macs", "both", "latency"};

const char *search_strategy_name(search_strategy s)
{
    return (unsigned)s < SEARCH_STRATEGY_COUNT ? strategy_names[s] : "?";
}

int search_strategy_parse(const char *s, search_strategy *out, rs_err *e)
{
    for (int i = 0; i < SEARCH_STRATEGY_COUNT; ++i)
        if (s && !strcmp(s, strategy_names[i])) {
            *out = (search_strategy)i;
            return 0;
        }
    return rs_fail(e, "unknown strategy \"%s\" (expected naive, bisect, global or evbmf)", s ? s : "");
}

const char *search_objective_name(search_objective o)
{
    return (unsigned)o < 4 ? objective_names[o] : "?";
}

int search_objective_parse(const char *s, search_objective *out, rs_err *e)
{
    for (int i = 0; i < 4; ++i)
        if (s && !strcmp(s, objective_names[i])) {
            *out = (search_objective)i;
            return 0;
        }
    return rs_fail(e, "unknown objective \"%s\" (expected params, macs, both or latency)", s ? s : "");
}

void search_default_options(search_options *o)
{
    memset(o, 0, sizeof *o);
    o->strategy = SEARCH_GLOBAL;
    o->objective = SEARCH_OBJ_BOTH;
    o->tolerance = 1.0;
    o->relative = 0.0;
    o->conv_methods = 0;
    o->sens_images = 0;
    o->evbmf_multiple = 1;
}

void search_result_free(search_result *r)
{
    if (!r)
        return;
    plan_free(r->plan);
    r->plan = NULL;
}

/* ---- evaluation ---------------------------------------------------------------------------------- */
/* Whether plans are applied with the joint refinement after the layer-wise fits (fit.h). */
static int refines(const search_options *o)
{
    return o && o->fit_calib && !o->fit_layers_only;
}

/* refine = 0: the layer-wise fits alone (the single-layer trials of the tables: an estimate that
 * the refinement only improves, at a fraction of the cost). */
static int apply_with(rs_model *m, const rs_plan *p, const search_options *o, const decomp_opts *dopts, int refine,
                      rs_err *e)
{
    if (!p || p->n == 0)
        return 0;
    if (!o || !o->fit_calib)
        return plan_apply(m, p, dopts, NULL, e);
    fit_options fo;
    fit_default_options(&fo);
    if (!refine || !refines(o))
        fo.refine_epochs = 0;
    fo.decomp = dopts;
    if (dopts) {
        fo.progress = dopts->progress;
        fo.user = dopts->user;
    }
    return fit_plan_apply(m, p, o->fit_calib, o->fit_n, &fo, NULL, e);
}

int search_apply_plan(rs_model *m, const rs_plan *p, const search_options *o, rs_err *e)
{
    return apply_with(m, p, o, NULL, 1, e);
}

typedef struct fwd_progress {
    rs_progress_fn fn;
    void *user;
} fwd_progress;

static int forward_progress(void *user, double fraction, const char *what)
{
    (void)fraction;
    const fwd_progress *f = user;
    return f->fn ? f->fn(f->user, -1.0, what) : 0;
}

static double threshold_of(const search_options *o, double base)
{
    if (o->relative > 0)
        return (1.0 - o->relative) * base;
    return base - o->tolerance / 100.0;
}

static int meets(const search_options *o, double base, double acc)
{
    return acc >= threshold_of(o, base) - 1e-12;
}

static double obj_cost(const search_ctx *c, search_objective ob, int64_t params, int64_t macs)
{
    switch (ob) {
    case SEARCH_OBJ_PARAMS: return (double)params;
    case SEARCH_OBJ_MACS: return (double)macs;
    default: return (double)params / (double)c->P0 + (double)macs / (double)c->M0;
    }
}

static void plan_whole_cost(const search_ctx *c, const rs_plan *p, int64_t *params, int64_t *macs)
{
    plan_cost pc;
    rs_err e;
    if (plan_cost_of(c->m, p, &pc, &e) == 0) {
        *params = pc.params_after;
        *macs = pc.macs_after;
    } else {
        *params = c->P0;
        *macs = c->M0;
    }
}

/* Factorize a copy, evaluate on the first n images of the set (n <= 0: all). Reports the trial.
 * Returns 0, -1 or RS_CANCELLED. */
static int run_trial(search_ctx *c, const rs_plan *p, int n, const char *phase, const char *layer,
                     double *acc, rs_err *e)
{
    const search_options *o = c->o;
    cifar10_set view = *c->set;
    if (n > 0 && n < view.n)
        view.n = n;
    fwd_progress fp = {o->progress, o->progress_user};
    if (o->progress && o->progress(o->progress_user, -1.0, phase) != 0)
    {
        rs_fail(e, "search cancelled");
        return RS_CANCELLED;
    }
    rs_model *w = model_clone(c->m);
    if (!w)
        return rs_fail(e, "out of memory copying the model");
    int rc = 0;
    if (p && p->n > 0) {
        decomp_opts dopts;
        decomp_opts_default(&dopts);
        dopts.progress = forward_progress;
        dopts.user = &fp;
        rc = apply_with(w, p, o, &dopts, strcmp(phase, "layer") != 0, e);
    }
    eval_result r;
    if (rc == 0) {
        infer_ctx *ic = infer_create(w, c->nthreads, e);
        if (!ic)
            rc = -1;
        else {
            rc = eval_ctx(ic, &view, &r, forward_progress, &fp, e);
            infer_free(ic);
        }
    }
    model_free(w);
    if (rc != 0)
        return rc;
    *acc = r.accuracy;
    c->res->trials++;
    c->res->evaluations++;
    if (o->on_trial) {
        search_trial t;
        memset(&t, 0, sizeof t);
        t.index = c->res->trials;
        t.phase = phase;
        t.layer = layer;
        t.plan = p;
        t.accuracy = r.accuracy;
        t.images = view.n;
        double base = view.n == c->set->n ? c->base_acc : c->base_acc_sub;
        t.within = meets(o, base, r.accuracy);
        plan_whole_cost(c, p, &t.params, &t.macs);
        t.elapsed = rs_now() - c->t0;
        if (o->on_trial(o->trial_user, &t) != 0) {
            rs_fail(e, "search cancelled");
            return RS_CANCELLED;
        }
    }
    return 0;
}

/* A plan verified within tolerance on the whole set: keep it if it is the cheapest so far. */
static void offer_best(search_ctx *c, const rs_plan *p, double acc)
{
    int64_t params, macs;
    plan_whole_cost(c, p, &params, &macs);
    double cost = obj_cost(c, c->o->objective, params, macs);
    rs_err e;
    if (c->o->objective == SEARCH_OBJ_LATENCY && search_lat_plan_time(c, p, &cost, &e) != 0)
        return; /* a plan that cannot be timed is not offered */
    if (c->best && cost >= c->best_cost)
        return;
    rs_plan *q = plan_clone(p);
    if (!q)
        return;
    plan_free(c->best);
    c->best = q;
    c->best_cost = cost;
    c->best_acc = acc;
}

/* ---- candidates ---------------------------------------------------------------------------------- */
static int entry_cost(const rs_model *m, int node, const plan_entry *en, int64_t *params, int64_t *macs)
{
    decomp_cost dc;
    rs_err e;
    if (en->method == DECOMP_NONE || decomp_cost_of(m, node, en->method, en->rank, en->rank2, &dc, &e) != 0)
        return -1;
    *params = dc.params_after, *macs = dc.macs_after;
    return 0;
}

int search_as_aggressive(const rs_model *m, int node, const plan_entry *a, const plan_entry *b)
{
    int64_t pa, ma, pb, mb;
    return entry_cost(m, node, a, &pa, &ma) == 0 && entry_cost(m, node, b, &pb, &mb) == 0 && pa <= pb && ma <= mb;
}

/* Candidate cd of t is at least as aggressive as a factorization the options rule out. */
static int cand_ruled_out(const search_ctx *c, const layer_tab *t, const cand *cd)
{
    const search_options *o = c->o;
    for (int k = 0; k < o->n_milder_than; ++k) {
        const plan_entry *f = &o->milder_than[k];
        int64_t p, m;
        if (f->layer && !strcmp(f->layer, t->name) && entry_cost(c->m, t->node, f, &p, &m) == 0 &&
            cd->params <= p && cd->macs <= m)
            return 1;
    }
    return 0;
}

/* Measured by this search: a conv method it allows, cheaper than the layer under its objective. */
static int cand_measured(const search_ctx *c, const layer_tab *t, const cand *cd)
{
    const search_options *o = c->o;
    unsigned conv = o->conv_methods ? o->conv_methods
                                    : (1u << DECOMP_SPATIAL_SVD) | (1u << DECOMP_TUCKER2) | (1u << DECOMP_CP);
    if (cd->method != DECOMP_SVD && !(conv & (1u << cd->method)))
        return 0;
    if (o->objective == SEARCH_OBJ_LATENCY)
        return search_lat_allowed(c, t, cd);
    return obj_cost(c, o->objective, cd->params, cd->macs) <
           obj_cost(c, o->objective, t->params0, t->macs0) - 1e-15;
}

/* Offered by this search: measured, and not ruled out by the options. */
static int cand_allowed(const search_ctx *c, const layer_tab *t, const cand *cd)
{
    return cand_measured(c, t, cd) && !(c->o->n_milder_than > 0 && cand_ruled_out(c, t, cd));
}

/* Images of the sensitivity subset for these options. */
static int sub_images(const search_ctx *c, const search_options *o)
{
    return o->sens_images > 0 && o->sens_images < c->set->n ? o->sens_images : c->set->n;
}

static int ensure_sub_base(search_ctx *c, int n, rs_err *e)
{
    if (n >= c->set->n) {
        c->base_acc_sub = c->base_acc;
        c->sub_n = n;
        return 0;
    }
    if (c->sub_n == n)
        return 0;
    cifar10_set view = *c->set;
    view.n = n;
    if (search_eval_plan(c->m, NULL, &view, c->nthreads, &c->base_acc_sub, e) != 0)
        return -1;
    /* a new subset size invalidates the subset accuracies */
    for (int i = 0; i < c->n_layers; ++i)
        for (int j = 0; j < c->L[i].n; ++j)
            c->L[i].c[j].acc_sub = -1.0;
    c->sub_n = n;
    return 0;
}

static int single_plan(rs_plan *p, const layer_tab *t, const cand *cd, rs_err *e)
{
    plan_clear(p);
    return plan_set(p, t->name, cd->method, cd->rank, cd->rank2, e);
}

/* Accuracy of layer t alone at candidate cd, on the subset (full = 0) or the whole set. */
static int probe(search_ctx *c, layer_tab *t, cand *cd, int full, double *acc, rs_err *e)
{
    double *slot = full ? &cd->acc_full : &cd->acc_sub;
    if (!full && c->sub_n >= c->set->n)
        slot = &cd->acc_full; /* the subset is the whole set */
    if (*slot >= 0) {
        *acc = *slot;
        c->res->trials++;
        return 0;
    }
    rs_plan *p = plan_alloc();
    if (!p)
        return rs_fail(e, "out of memory");
    int rc = single_plan(p, t, cd, e);
    if (rc == 0)
        rc = run_trial(c, p, full ? 0 : c->sub_n, "layer", t->name, acc, e);
    if (rc == 0) {
        *slot = *acc;
        /* with the refinement a single-layer trial's accuracy is not the applied plan's: only
         * verified plans are offered then */
        if (slot == &cd->acc_full && meets(c->o, c->base_acc, *acc) && !refines(c->o))
            offer_best(c, p, *acc);
    }
    plan_free(p);
    return rc;
}

/* ---- combined plans and back-off ------------------------------------------------------------------ */
typedef struct choice {
    int idx; /* candidate index in the layer's table, -1 = none */
} choice;

static int plan_of_choices(const search_ctx *c, const choice *ch, rs_plan *p, rs_err *e)
{
    plan_clear(p);
    for (int i = 0; i < c->n_layers; ++i) {
        if (ch[i].idx < 0)
            continue;
        const cand *cd = &c->L[i].c[ch[i].idx];
        if (plan_set(p, c->L[i].name, cd->method, cd->rank, cd->rank2, e) != 0)
            return -1;
    }
    return 0;
}

/* Estimated single-layer drop (points) of candidate j of t, monotone-enveloped: the largest
 * measured drop at this or any higher rank of the same method (noise never makes a lower rank
 * look better than a higher one). Unmeasured candidates take the envelope of their neighbours. */
static double est_drop(const search_ctx *c, const layer_tab *t, int j, int full)
{
    if (j < 0)
        return 0.0;
    double base = full ? c->base_acc : c->base_acc_sub;
    double worst = 0.0;
    decomp_method mth = t->c[j].method;
    int seen = 0;
    for (int k = j; k < t->n && t->c[k].method == mth; ++k) {
        double a = full || c->sub_n >= c->set->n ? t->c[k].acc_full : t->c[k].acc_sub;
        if (a < 0)
            continue;
        double d = (base - a) * 100.0;
        if (d > worst)
            worst = d;
        seen = 1;
    }
    if (!seen) {
        /* nothing measured at or above: use the nearest measured lower rank (pessimistic) */
        for (int k = j - 1; k >= 0 && t->c[k].method == mth; --k) {
            double a = full || c->sub_n >= c->set->n ? t->c[k].acc_full : t->c[k].acc_sub;
            if (a >= 0) {
                worst = (base - a) * 100.0;
                break;
            }
        }
    }
    return worst > 0 ? worst : 0.0;
}

/* The next candidate above j in the same method (grid-only when grid), or -1 (= go to none). */
static int next_up(const search_ctx *c, const layer_tab *t, int j, int grid)
{
    for (int k = j + 1; k < t->n && t->c[k].method == t->c[j].method; ++k)
        if ((!grid || search_lat_grid(c, &t->c[k])) && cand_allowed(c, t, &t->c[k]))
            return k;
    return -1;
}

/* The objective's own scale, so that λ·MACs/MACs0·scale is commensurate with obj_cost. */
static double obj_scale(const search_ctx *c)
{
    switch (c->o->objective) {
    case SEARCH_OBJ_PARAMS: return (double)c->P0;
    case SEARCH_OBJ_MACS: return (double)c->M0;
    case SEARCH_OBJ_LATENCY: return search_lat_cost(c, NULL, -1);
    default: return 1.0;
    }
}

/* Objective cost of layer t at candidate j (-1 = unfactorized), plus the MAC floor's penalty. */
static double layer_cost(const search_ctx *c, const layer_tab *t, int j)
{
    int64_t params = j < 0 ? t->params0 : t->c[j].params, macs = j < 0 ? t->macs0 : t->c[j].macs;
    double cost = c->o->objective != SEARCH_OBJ_LATENCY ? obj_cost(c, c->o->objective, params, macs)
                                                        : search_lat_cost(c, t, j);
    if (c->lambda > 0)
        cost += c->lambda * obj_scale(c) * (double)macs / (double)c->M0;
    return cost;
}

/* Verify ch on the whole set; while it fails, take the back-off step with the largest estimated
 * drop recovered per unit of cost added. full: estimates from whole-set probes (naive, bisect),
 * measuring the next step's single-layer accuracy when unknown. */
static int verify_and_backoff(search_ctx *c, choice *ch, int full, int grid, rs_err *e)
{
    rs_plan *p = plan_alloc();
    if (!p)
        return rs_fail(e, "out of memory");
    int rc = 0;
    const char *phase = "verify";
    for (;;) {
        if ((rc = plan_of_choices(c, ch, p, e)) != 0)
            break;
        double acc = c->base_acc;
        if (p->n > 0 && (rc = run_trial(c, p, 0, phase, NULL, &acc, e)) != 0)
            break;
        if (meets(c->o, c->base_acc, acc)) {
            offer_best(c, p, acc);
            c->res->acc = acc;
            break;
        }
        phase = "backoff";
        c->res->backoff_steps++;
        int best_l = -1, best_j = -1;
        double best_ratio = -1.0;
        for (int i = 0; i < c->n_layers; ++i) {
            if (ch[i].idx < 0)
                continue;
            layer_tab *t = &c->L[i];
            int nj = next_up(c, t, ch[i].idx, grid);
            if (full && nj >= 0 && t->c[nj].acc_full < 0) {
                double a;
                if ((rc = probe(c, t, &t->c[nj], 1, &a, e)) != 0)
                    goto done;
            }
            double gain = est_drop(c, t, ch[i].idx, full) - est_drop(c, t, nj, full);
            double dcost = layer_cost(c, t, nj) - layer_cost(c, t, ch[i].idx);
            double ratio = (gain + 0.01) / (dcost > 0 ? dcost : 1e-12);
            if (ratio > best_ratio) {
                best_ratio = ratio;
                best_l = i;
                best_j = nj;
            }
        }
        if (best_l < 0)
            break; /* empty plan: trivially within */
        ch[best_l].idx = best_j;
    }
done:
    plan_free(p);
    return rc;
}

/* ---- per-layer strategies ---------------------------------------------------------------------- */
/* Smallest rank of method range [lo, hi] (candidate indices) within tolerance for layer t alone. */
static int naive_layer(search_ctx *c, layer_tab *t, int lo, int hi, int *found, rs_err *e)
{
    *found = -1;
    for (int j = lo; j <= hi; ++j) {
        double acc;
        int rc = probe(c, t, &t->c[j], 1, &acc, e);
        if (rc != 0)
            return rc;
        if (meets(c->o, c->base_acc, acc)) {
            *found = j;
            return 0;
        }
    }
    return 0;
}

static int bisect_layer(search_ctx *c, layer_tab *t, int lo, int hi, int *found, rs_err *e)
{
    *found = -1;
    double acc;
    int rc = probe(c, t, &t->c[hi], 1, &acc, e);
    if (rc != 0)
        return rc;
    if (!meets(c->o, c->base_acc, acc))
        return 0; /* not even the highest saving rank holds */
    int a = lo - 1, b = hi; /* invariant: b within (or hi), a not within (or lo - 1) */
    while (b - a > 1) {
        int mid = a + (b - a) / 2;
        if ((rc = probe(c, t, &t->c[mid], 1, &acc, e)) != 0)
            return rc;
        if (meets(c->o, c->base_acc, acc))
            b = mid;
        else
            a = mid;
    }
    /* monotonicity guard: the rank below must fail and the rank above must hold */
    while (b > lo) {
        if ((rc = probe(c, t, &t->c[b - 1], 1, &acc, e)) != 0)
            return rc;
        if (!meets(c->o, c->base_acc, acc))
            break;
        c->res->violations++; /* a lower rank holds after all: walk down */
        b--;
    }
    if (b < hi) {
        if ((rc = probe(c, t, &t->c[b + 1], 1, &acc, e)) != 0)
            return rc;
        if (!meets(c->o, c->base_acc, acc))
            c->res->violations++; /* an isolated pass: reported, kept */
    }
    *found = b;
    return 0;
}

static int per_layer_search(search_ctx *c, int bisect, choice *ch, rs_err *e)
{
    for (int i = 0; i < c->n_layers; ++i) {
        layer_tab *t = &c->L[i];
        ch[i].idx = -1;
        if (!search_layer_selected(c->o->layers, t->name))
            continue;
        double best_cost = layer_cost(c, t, -1);
        for (int j0 = 0; j0 < t->n;) {
            int j1 = j0;
            while (j1 + 1 < t->n && t->c[j1 + 1].method == t->c[j0].method)
                ++j1;
            /* the allowed sub-range of this method (allowed ranks are a prefix: costs grow) */
            int lo = -1, hi = -1;
            for (int j = j0; j <= j1; ++j)
                if (cand_allowed(c, t, &t->c[j])) {
                    if (lo < 0)
                        lo = j;
                    hi = j;
                }
            if (lo >= 0) {
                int found;
                int rc = bisect ? bisect_layer(c, t, lo, hi, &found, e) : naive_layer(c, t, lo, hi, &found, e);
                if (rc != 0)
                    return rc;
                if (found >= 0 && layer_cost(c, t, found) < best_cost) {
                    best_cost = layer_cost(c, t, found);
                    ch[i].idx = found;
                }
            }
            j0 = j1 + 1;
        }
    }
    return 0;
}

/* ---- global: sensitivity tables + knapsack ------------------------------------------------------- */
static int measure_tables(search_ctx *c, rs_err *e)
{
    int total = 0, done = 0;
    for (int i = 0; i < c->n_layers; ++i)
        if (search_layer_selected(c->o->layers, c->L[i].name))
            for (int j = 0; j < c->L[i].n; ++j)
                total += search_lat_grid(c, &c->L[i].c[j]) && cand_measured(c, &c->L[i], &c->L[i].c[j]);
    for (int i = 0; i < c->n_layers; ++i) {
        layer_tab *t = &c->L[i];
        if (!search_layer_selected(c->o->layers, t->name))
            continue;
        for (int j = 0; j < t->n; ++j) {
            if (!search_lat_grid(c, &t->c[j]) || !cand_measured(c, t, &t->c[j]))
                continue;
            double acc;
            int rc = probe(c, t, &t->c[j], 0, &acc, e);
            if (rc != 0)
                return rc;
            ++done;
            if (c->o->progress && c->o->progress(c->o->progress_user, total ? (double)done / total : -1.0,
                                                 "sensitivity") != 0) {
                rs_fail(e, "search cancelled");
                return RS_CANCELLED;
            }
        }
    }
    return 0;
}

/* Multiple-choice knapsack by dynamic programming over the discretised summed drop:
 * f[i][d] = least cost of layers 0..i-1 with summed estimated drop <= d. cost_of selects what is
 * minimised. Returns the choices for the least cost at drop <= dmax units, or for a cost budget
 * (budget >= 0: the least drop whose cost <= budget). */
typedef double (*cost_fn)(const search_ctx *c, const layer_tab *t, int j);

static double cost_objective(const search_ctx *c, const layer_tab *t, int j)
{
    return layer_cost(c, t, j);
}

static double cost_params(const search_ctx *c, const layer_tab *t, int j)
{
    (void)c;
    return (double)(j < 0 ? t->params0 : t->c[j].params);
}

static int knapsack(search_ctx *c, cost_fn cost_of, int dmax, double budget, choice *ch,
                    double *out_drop, double *out_cost, rs_err *e)
{
    int L = c->n_layers, D = dmax + 1;
    size_t cells = (size_t)(L + 1) * (size_t)D;
    double *f = calloc(cells, sizeof *f);
    int *pick = malloc(cells * sizeof *pick);
    if (!f || !pick) {
        free(f);
        free(pick);
        return rs_fail(e, "out of memory (knapsack %d layers × %d)", L, D);
    }
    for (int d = 0; d < D; ++d)
        f[d] = 0.0;
    for (int i = 0; i < L; ++i) {
        const layer_tab *t = &c->L[i];
        double *prev = f + (size_t)i * D, *cur = f + (size_t)(i + 1) * D;
        int *pk = pick + (size_t)(i + 1) * D;
        int sel = search_layer_selected(c->o->layers, t->name);
        double none = cost_of(c, t, -1);
        for (int d = 0; d < D; ++d) {
            cur[d] = prev[d] + none;
            pk[d] = -1;
        }
        if (!sel)
            continue;
        for (int j = 0; j < t->n; ++j) {
            if (!search_lat_grid(c, &t->c[j]) || !cand_allowed(c, t, &t->c[j]))
                continue;
            int du = (int)ceil(est_drop(c, t, j, 0) * DROP_UNITS - 1e-9);
            if (du < 0)
                du = 0;
            double cj = cost_of(c, t, j);
            for (int d = du; d < D; ++d)
                if (prev[d - du] + cj < cur[d] - 1e-15) {
                    cur[d] = prev[d - du] + cj;
                    pk[d] = j;
                }
        }
    }
    int dsel = dmax;
    if (budget >= 0) {
        dsel = -1;
        for (int d = 0; d < D; ++d)
            if (f[(size_t)L * D + d] <= budget + 1e-9) {
                dsel = d;
                break;
            }
        if (dsel < 0) {
            free(f);
            free(pick);
            return rs_fail(e, "no plan within the tables reaches the budget %.0f", budget);
        }
    }
    *out_cost = f[(size_t)L * D + dsel];
    double drop = 0.0;
    int d = dsel;
    for (int i = L; i >= 1; --i) {
        int j = pick[(size_t)i * D + d];
        ch[i - 1].idx = j;
        if (j >= 0) {
            int du = (int)ceil(est_drop(c, &c->L[i - 1], j, 0) * DROP_UNITS - 1e-9);
            if (du < 0)
                du = 0;
            d -= du;
            drop += est_drop(c, &c->L[i - 1], j, 0);
        }
    }
    *out_drop = drop;
    free(f);
    free(pick);
    return 0;
}

static double tolerance_points(const search_ctx *c)
{
    const search_options *o = c->o;
    return o->relative > 0 ? o->relative * c->base_acc * 100.0 : o->tolerance;
}

static int max_drop_units(const search_ctx *c)
{
    double s = 0.0;
    for (int i = 0; i < c->n_layers; ++i) {
        double w = 0.0;
        for (int j = 0; j < c->L[i].n; ++j)
            if (search_lat_grid(c, &c->L[i].c[j])) {
                double d = est_drop(c, &c->L[i], j, 0);
                if (d > w)
                    w = d;
            }
        s += w;
    }
    return (int)ceil(s * DROP_UNITS) + 1;
}

/* Whole-network MACs of the choices. */
static double choices_macs(const search_ctx *c, const choice *ch)
{
    double macs = (double)c->M0;
    for (int i = 0; i < c->n_layers; ++i)
        if (ch[i].idx >= 0)
            macs += (double)c->L[i].c[ch[i].idx].macs - (double)c->L[i].macs0;
    return macs;
}

/* The knapsack under the MAC floor (options.min_macs_ratio): the least objective cost with summed
 * estimated drop <= dmax units AND whole-network MACs <= MACs0 / ratio, by Lagrangian relaxation of
 * the MAC constraint: the smallest λ whose knapsack plan meets the floor (doubling, then bisection;
 * the feasible plans' cost grows with λ, so the smallest feasible λ gives the cheapest of them).
 * c->lambda keeps that λ so back-off steps weigh MACs the same way. *out_cost is the objective
 * cost without the penalty. */
static int knapsack_floor(search_ctx *c, int dmax, choice *ch, double *out_drop, double *out_cost, rs_err *e)
{
    c->lambda = 0.0;
    double ratio = c->o->min_macs_ratio;
    int rc = knapsack(c, cost_objective, dmax, -1.0, ch, out_drop, out_cost, e);
    if (rc != 0 || ratio <= 0)
        return rc;
    double cap = (double)c->M0 / ratio;
    if (choices_macs(c, ch) <= cap + 0.5)
        return 0;
    size_t bytes = (size_t)(c->n_layers ? c->n_layers : 1) * sizeof(choice);
    choice *tmp = malloc(bytes);
    if (!tmp)
        return rs_fail(e, "out of memory");
    double lo = 0.0, hi = 1.0 / 64, drop, cost;
    int feasible = 0;
    for (; hi <= 1e6; hi *= 4) {
        c->lambda = hi;
        if ((rc = knapsack(c, cost_objective, dmax, -1.0, tmp, &drop, &cost, e)) != 0)
            goto out;
        memcpy(ch, tmp, bytes); /* the largest λ so far: the best effort when the floor is out of reach */
        *out_drop = drop;
        if (choices_macs(c, tmp) <= cap + 0.5) {
            feasible = 1;
            break;
        }
        lo = hi;
    }
    if (!feasible) {
        hi /= 4;
    } else {
        for (int it = 0; it < 40 && hi - lo > 1e-6 * hi; ++it) {
            double mid = 0.5 * (lo + hi);
            c->lambda = mid;
            if ((rc = knapsack(c, cost_objective, dmax, -1.0, tmp, &drop, &cost, e)) != 0)
                goto out;
            if (choices_macs(c, tmp) <= cap + 0.5) {
                hi = mid;
                memcpy(ch, tmp, bytes);
                *out_drop = drop;
            } else
                lo = mid;
        }
    }
    c->lambda = hi;
    *out_cost = 0.0;
    {
        double l = c->lambda;
        c->lambda = 0.0;
        for (int i = 0; i < c->n_layers; ++i)
            *out_cost += layer_cost(c, &c->L[i], ch[i].idx);
        c->lambda = l;
    }
out:
    free(tmp);
    return rc;
}

/* ---- evbmf ------------------------------------------------------------------------------------------ */
/* Per layer, the EVBMF ranks of every allowed method; the cheapest one that saves is kept. */
static int evbmf_plan(search_ctx *c, rs_plan *p, rs_err *e)
{
    plan_clear(p);
    unsigned conv = c->o->conv_methods ? c->o->conv_methods
                                       : (1u << DECOMP_SPATIAL_SVD) | (1u << DECOMP_TUCKER2) | (1u << DECOMP_CP);
    for (int i = 0; i < c->n_layers; ++i) {
        layer_tab *t = &c->L[i];
        if (!search_layer_selected(c->o->layers, t->name))
            continue;
        double before = layer_cost(c, t, -1), best = before;
        decomp_method bm = DECOMP_NONE;
        int br = 0, br2 = 0;
        unsigned methods = decomp_methods_for(c->m, t->node);
        for (int k = 1; k < DECOMP_COUNT; ++k) {
            if (!(methods & (1u << k)) || k == DECOMP_SLICE_SVD || (k != DECOMP_SVD && !(conv & (1u << k))))
                continue;
            int r = 0, r2 = 0;
            if (evbmf_layer_rank(c->m, t->node, (decomp_method)k, c->o->evbmf_multiple, &r, &r2, e) != 0)
                return rs_failctx(e, "%s: evbmf", t->name);
            decomp_cost dc;
            if (decomp_cost_of(c->m, t->node, (decomp_method)k, r, k == DECOMP_TUCKER2 ? r2 : 0, &dc, e) != 0)
                return -1;
            double cost = obj_cost(c, c->o->objective, dc.params_after, dc.macs_after);
            if (cost < best) {
                best = cost;
                bm = (decomp_method)k;
                br = r;
                br2 = k == DECOMP_TUCKER2 ? r2 : 0;
            }
        }
        if (bm != DECOMP_NONE && plan_set(p, t->name, bm, br, br2, e) != 0)
            return -1;
    }
    return 0;
}

/* ---- run --------------------------------------------------------------------------------------------- */
static int finish(search_ctx *c, search_result *out, int rc, rs_err *e)
{
    if (rc == RS_CANCELLED)
        out->cancelled = 1;
    if (rc != 0 && rc != RS_CANCELLED)
        return rc;
    rs_plan *p = c->best ? plan_clone(c->best) : plan_alloc();
    if (!p)
        return rs_fail(e, "out of memory");
    plan_free(out->plan);
    out->plan = p;
    if (c->best)
        out->acc = c->best_acc;
    out->within = meets(c->o, c->base_acc, out->acc);
    rs_err e2;
    if (plan_cost_of(c->m, p, &out->cost, &e2) != 0)
        memset(&out->cost, 0, sizeof out->cost);
    out->seconds = rs_now() - c->t0;
    return rc;
}

int search_ctx_run(search_ctx *c, const search_options *o, search_result *out, rs_err *e)
{
    memset(out, 0, sizeof *out);
    c->o = o;
    c->res = out;
    c->t0 = rs_now();
    c->lambda = 0.0;
    plan_free(c->best);
    c->best = NULL;
    out->base_acc = c->base_acc;
    out->acc = c->base_acc;
    if (o->tolerance < 0 || o->relative < 0 || o->relative >= 1)
        return rs_fail(e, "search: tolerance must be >= 0 and relative in [0, 1)");
    if (o->min_macs_ratio < 0)
        return rs_fail(e, "search: min_macs_ratio must be >= 0 (got %g)", o->min_macs_ratio);
    if (o->objective == SEARCH_OBJ_LATENCY && o->strategy != SEARCH_GLOBAL)
        return rs_fail(e, "search: objective latency needs the global strategy (got %s)",
                       search_strategy_name(o->strategy));
    int trc = search_lat_ensure(c, e);
    if (trc != 0)
        return trc;
    rs_plan *empty = plan_alloc();
    if (!empty)
        return rs_fail(e, "out of memory");
    offer_best(c, empty, c->base_acc); /* the unfactorized net always holds */
    plan_free(empty);
    choice *ch = calloc((size_t)(c->n_layers ? c->n_layers : 1), sizeof *ch);
    if (!ch)
        return rs_fail(e, "out of memory");
    int rc = 0;
    switch (o->strategy) {
    case SEARCH_NAIVE:
    case SEARCH_BISECT:
        rc = per_layer_search(c, o->strategy == SEARCH_BISECT, ch, e);
        if (rc == 0)
            rc = verify_and_backoff(c, ch, 1, 0, e);
        break;
    case SEARCH_GLOBAL: {
        if ((rc = ensure_sub_base(c, sub_images(c, o), e)) != 0)
            break;
        if ((rc = measure_tables(c, e)) != 0)
            break;
        double drop, cost;
        int units = (int)floor(tolerance_points(c) * DROP_UNITS + 1e-9);
        if ((rc = knapsack_floor(c, units, ch, &drop, &cost, e)) != 0)
            break;
        out->est_drop = drop;
        rc = verify_and_backoff(c, ch, 0, 1, e);
        break;
    }
    case SEARCH_EVBMF: {
        rs_plan *p = plan_alloc();
        if (!p) {
            rc = rs_fail(e, "out of memory");
            break;
        }
        if ((rc = evbmf_plan(c, p, e)) == 0) {
            double acc = c->base_acc;
            if (p->n == 0 || (rc = run_trial(c, p, 0, "evbmf", NULL, &acc, e)) == 0) {
                /* the baseline is reported as is, within or not */
                plan_free(c->best);
                c->best = p;
                p = NULL;
                c->best_acc = acc;
                out->acc = acc;
            }
        }
        plan_free(p);
        break;
    }
    default:
        rc = rs_fail(e, "search: unknown strategy %d", (int)o->strategy);
    }
    free(ch);
    return finish(c, out, rc, e);
}

int search_run(const rs_model *m, const cifar10_set *set, const search_options *o, search_result *out,
               rs_err *e)
{
    memset(out, 0, sizeof *out);
    search_ctx *c = search_ctx_create(m, set, o->nthreads, e);
    if (!c)
        return -1;
    int rc = search_ctx_run(c, o, out, e);
    search_ctx_free(c);
    return rc;
}

/* ---- allocation for budgets (trade-off curve, compress) ---------------------------------------- */
static int prepare_tables(search_ctx *c, const search_options *o, search_result *scratch, rs_err *e)
{
    memset(scratch, 0, sizeof *scratch);
    c->o = o;
    c->res = scratch;
    c->t0 = rs_now();
    c->lambda = 0.0;
    int rc = search_lat_ensure(c, e);
    if (rc == 0)
        rc = ensure_sub_base(c, sub_images(c, o), e);
    if (rc == 0)
        rc = measure_tables(c, e);
    return rc;
}

int search_ctx_plan_for_budget(search_ctx *c, const search_options *o, int64_t max_params, rs_plan **plan,
                               double *est_drop_out, rs_err *e)
{
    search_result scratch;
    int rc = prepare_tables(c, o, &scratch, e);
    if (rc != 0)
        return rc;
    choice *ch = calloc((size_t)(c->n_layers ? c->n_layers : 1), sizeof *ch);
    rs_plan *p = plan_alloc();
    if (!ch || !p) {
        free(ch);
        plan_free(p);
        return rs_fail(e, "out of memory");
    }
    /* params outside the layer tables (none in practice: every parameter belongs to a layer) */
    double other = (double)c->P0;
    for (int i = 0; i < c->n_layers; ++i)
        other -= (double)c->L[i].params0;
    double drop = 0.0, cost = 0.0;
    rc = knapsack(c, cost_params, max_drop_units(c), (double)max_params - other, ch, &drop, &cost, e);
    if (rc == 0)
        rc = plan_of_choices(c, ch, p, e);
    free(ch);
    if (rc != 0) {
        plan_free(p);
        return rc;
    }
    *plan = p;
    if (est_drop_out)
        *est_drop_out = drop;
    return 0;
}

int search_ctx_plan_for_drop(search_ctx *c, const search_options *o, double drop_points, rs_plan **plan,
                             double *est_cost, rs_err *e)
{
    search_result scratch;
    int rc = prepare_tables(c, o, &scratch, e);
    if (rc != 0)
        return rc;
    choice *ch = calloc((size_t)(c->n_layers ? c->n_layers : 1), sizeof *ch);
    rs_plan *p = plan_alloc();
    if (!ch || !p) {
        free(ch);
        plan_free(p);
        return rs_fail(e, "out of memory");
    }
    double drop, cost;
    int units = (int)floor(drop_points * DROP_UNITS + 1e-9);
    int cap = max_drop_units(c);
    rc = knapsack_floor(c, units < cap ? units : cap, ch, &drop, &cost, e);
    if (rc == 0)
        rc = plan_of_choices(c, ch, p, e);
    free(ch);
    if (rc != 0) {
        plan_free(p);
        return rc;
    }
    *plan = p;
    if (est_cost)
        *est_cost = cost;
    return 0;
}
