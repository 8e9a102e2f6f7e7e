/* search.h — rank search (the blog's "indirect problem"): the cheapest plan whose accuracy on a
 * search set stays within a tolerance of the original's.
 *
 * Contract:
 *  - The search set is the VALIDATION split (cifar10_load_split(dir, "val")); callers never pass
 *    the test set here. Accuracies are fractions 0..1; tolerances are in accuracy POINTS
 *    (percent): plan accuracy >= base − tolerance/100, or with `relative` > 0,
 *    accuracy >= (1 − relative) · base.
 *  - Strategies:
 *      naive  per layer (others intact): rank 1, 2, ... until within tolerance;
 *      bisect per layer: binary search on rank, then the neighbours are verified and any
 *             monotonicity violation is counted (search_result.violations) and walked past;
 *      global per-layer sensitivity tables (accuracy drop vs method and rank, each layer alone,
 *             on `sens_images` images), an exact multiple-choice knapsack minimising the
 *             objective under the summed estimated drop, then a real evaluation;
 *      evbmf  EVBMF ranks (no data used to choose them), evaluated once.
 *    naive / bisect / global then verify the combined plan on the whole search set and back off
 *    greedily (raise the rank of the layer whose step buys the most estimated accuracy per unit
 *    of cost, or drop its entry) until the tolerance holds, so the returned plan satisfies the
 *    tolerance on the search set (evbmf's plan is reported as is, with `within` telling).
 *  - Methods: dense layers use svd; conv layers (group 1) consider every method in `conv_methods`
 *    (default spatial-svd | tucker2 | cp) and keep the cheapest one at equal tolerance. tucker2 is
 *    searched along R_in = round(R_out · C_in / C_out). Only ranks that lower the objective's
 *    cost are tried (below decomp_break_even_rank). The global strategy's tables probe a grid of
 *    ranks: all up to 16, then every 2nd to 32, every 4th to 64, every 8th beyond; when that
 *    makes more than 400 probes in all (nets with many layers), the geometric grid 1 2 3 4 6 8
 *    12 16 24 32 ... (and each method's largest rank).
 *  - Objective: SEARCH_OBJ_PARAMS, SEARCH_OBJ_MACS, or SEARCH_OBJ_BOTH (params/params0 +
 *    macs/macs0: fc layers hold the parameters, conv layers the MACs).
 *  - Every evaluated plan is a trial reported through on_trial (may be NULL) with its accuracy,
 *    cost and elapsed time. progress (may be NULL) is called at least once per trial; a non-zero
 *    return from either callback cancels: search_run then returns RS_CANCELLED promptly, with
 *    out->plan holding the best plan found so far that satisfied the tolerance (possibly empty)
 *    and out->cancelled = 1.
 *  - A search_ctx keeps the per-layer sensitivity tables and the decomposition cache, so later
 *    searches with other tolerances / objectives (compress, the trade-off curve) cost no new
 *    single-layer evaluations. It holds a copy of the model; the set is borrowed and must outlive it.
 */
#ifndef RANKSCOPE_SEARCH_H
#define RANKSCOPE_SEARCH_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/cifar10.h"
#include "rankscope/common.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"

struct lat_table;

typedef enum search_strategy {
    SEARCH_NAIVE = 0,
    SEARCH_BISECT,
    SEARCH_GLOBAL,
    SEARCH_EVBMF,
    SEARCH_STRATEGY_COUNT
} search_strategy;

typedef enum search_objective {
    SEARCH_OBJ_PARAMS = 0,
    SEARCH_OBJ_MACS,
    SEARCH_OBJ_BOTH,
    SEARCH_OBJ_LATENCY /* measured time of the factorized layers (latency.h); global only */
} search_objective;

const char *search_strategy_name(search_strategy s); /* "naive", "bisect", "global", "evbmf" */
int search_strategy_parse(const char *s, search_strategy *out, rs_err *e);
const char *search_objective_name(search_objective o); /* "params", "macs", "both", "latency" */
int search_objective_parse(const char *s, search_objective *out, rs_err *e);

/* One evaluated plan. */
typedef struct search_trial {
    int index;             /* 1-based trial number */
    const char *phase;     /* "baseline", "layer", "verify", "backoff", "evbmf", ... */
    const char *layer;     /* the layer being probed (single-layer trials), else NULL */
    const rs_plan *plan;   /* borrowed for the duration of the callback */
    double accuracy;       /* 0..1 on the images evaluated */
    int images;            /* how many images were evaluated */
    int within;            /* meets the tolerance (judged on these images) */
    int64_t params, macs;  /* whole network after the plan */
    double elapsed;        /* seconds since the search started */
} search_trial;

/* Return non-zero to cancel the search. */
typedef int (*search_trial_fn)(void *user, const search_trial *t);

typedef struct search_options {
    search_strategy strategy;   /* SEARCH_GLOBAL */
    search_objective objective; /* SEARCH_OBJ_BOTH */
    double tolerance;           /* accuracy points, 1.0 */
    double relative;            /* > 0: accuracy >= (1 − relative)·base instead; 0 */
    unsigned conv_methods;      /* bit (1u << decomp_method); 0 = spatial-svd | tucker2 | cp */
    const char *layers;         /* comma-separated layer names to consider; NULL = all weighted */
    int sens_images;            /* global: images for the sensitivity tables (0 = whole set) */
    int evbmf_multiple;         /* evbmf: round ranks up to a multiple of this (1) */
    int nthreads;               /* 0 = rs_default_threads() */
    rs_progress_fn progress;
    void *progress_user;
    search_trial_fn on_trial;
    void *trial_user;
    /* global / plan_for_drop: whole-network MACs must be <= MACs0 / min_macs_ratio (0 = no floor).
     * The objective is then minimised under two constraints (summed estimated drop, MACs) by a
     * Lagrangian: the knapsack minimises cost + λ·MACs/MACs0 (λ in the objective's units) with
     * the smallest λ >= 0 whose plan meets the floor, found by bisection. When no λ reaches the
     * floor within the drop budget, the plan of the largest λ tried (most MACs saved) is used. */
    double min_macs_ratio;
    /* SEARCH_OBJ_LATENCY: each layer's time alone, factorized or not, measured by latency.h at
     * batch 1 on one thread (latency_throughput = 0) or per image at its batch size (1). The
     * knapsack minimises the summed layer times; a candidate is offered only when it is measured
     * at least 2 % faster than the layer as it is and no larger rank of its method is as fast
     * (lat_efficient), and each grid rank is rounded up to the next such rank — the rank the
     * kernels run fastest. latency = NULL: the context opens the default per-machine cache and
     * saves what it measured. */
    struct lat_table *latency;
    int latency_throughput;
    /* Data-aware factorization (fit.h): NULL = every plan the search evaluates is applied by
     * plan_apply (factors fitted to the weights); else by fit_plan_apply, its factors fitted to
     * the layer outputs on these fit_n normalised calibration images (sequentially), so the
     * sensitivity tables, the verification and the chosen plan's accuracy are those of the
     * output-fitted factors. A context's tables are measured under the fit of the first search
     * run on it: keep the fit the same for the context's lifetime. The single-layer trials of
     * the tables use the layer-wise fits alone (an estimate, never better than the result);
     * the plans verified and applied get the joint refinement too unless fit_layers_only. */
    const float *fit_calib;
    int fit_n;
    int fit_layers_only;
    /* Factorizations not to offer (every strategy, plan_for_drop / plan_for_budget): a candidate
     * of a layer is left out when it is at least as aggressive (search_as_aggressive) as one of
     * these entries naming that layer (several may). Staged compression passes the factorizations
     * whose stage was rejected, so that the next stage tries strictly milder ones: after fc1 svd
     * 28 is rejected only ranks above 28, or fc1 as it is, are offered. The sensitivity tables do
     * not depend on it. NULL / 0: none. */
    const plan_entry *milder_than;
    int n_milder_than;
} search_options;

/* 1 when factorizing layer `node` of m as a saves at least as many params AND at least as many
 * MACs as factorizing it as b (so a lower rank of the same method always is); 0 when not, when
 * either method is DECOMP_NONE, or either cannot be costed. Needs inferred shapes. */
int search_as_aggressive(const rs_model *m, int node, const plan_entry *a, const plan_entry *b);

void search_default_options(search_options *o);

typedef struct search_result {
    rs_plan *plan;          /* chosen plan (owned; free with search_result_free) */
    double base_acc;        /* original model on the search set */
    double acc;             /* chosen plan on the search set */
    double est_drop;        /* global: estimated drop of the chosen allocation (points), else 0 */
    int within;             /* acc meets the tolerance */
    int trials;             /* plans tried (including cached single-layer look-ups) */
    int evaluations;        /* real forward passes over a set (cache misses) */
    int violations;         /* bisect: monotonicity violations seen */
    int backoff_steps;
    double seconds;
    int cancelled;
    plan_cost cost;
} search_result;

void search_result_free(search_result *r); /* frees the contents; accepts NULL / zeroed */

typedef struct search_ctx search_ctx;

/* Copies m (shapes inferred) and evaluates it once on set (the baseline). */
search_ctx *search_ctx_create(const rs_model *m, const cifar10_set *set, int nthreads, rs_err *e);
void search_ctx_free(search_ctx *c); /* accepts NULL */
double search_ctx_base_acc(const search_ctx *c);

/* Run one search. out is overwritten (free a previous result first). */
int search_ctx_run(search_ctx *c, const search_options *o, search_result *out, rs_err *e);

/* One-shot convenience: create, run, free. */
int search_run(const rs_model *m, const cifar10_set *set, const search_options *o,
               search_result *out, rs_err *e);

/* Factorize m in place by p the way the search does under o (o->fit_calib: fit_plan_apply,
 * else plan_apply); o may be NULL (weights). */
int search_apply_plan(rs_model *m, const rs_plan *p, const search_options *o, rs_err *e);

/* Accuracy of m with plan applied (a copy is factorized) on s; plan may be NULL. */
int search_eval_plan(const rs_model *m, const rs_plan *plan, const cifar10_set *s, int nthreads,
                     double *acc, rs_err *e);

/* ---- Allocation by the sensitivity tables (needs a global search, or builds the tables) -----
 * The plan of least estimated accuracy drop whose whole-network params <= max_params, from the tables measured with options o (conv methods, layers,
 * sens_images). est_drop in points. Used for the trade-off curve (no verification, no back-off). */
int search_ctx_plan_for_budget(search_ctx *c, const search_options *o, int64_t max_params,
                               rs_plan **plan, double *est_drop, rs_err *e);

/* The plan of least objective cost whose estimated drop <= drop_points (no verification). */
int search_ctx_plan_for_drop(search_ctx *c, const search_options *o, double drop_points,
                             rs_plan **plan, double *est_cost, rs_err *e);

/* SEARCH_OBJ_LATENCY: the summed measured time (seconds per image, the figure o selects) of the
 * weighted layers of the context's model with plan p applied; layers p leaves alone count as they
 * are. Measures what the cache lacks. */
int search_ctx_plan_time(search_ctx *c, const search_options *o, const rs_plan *p, double *seconds,
                         rs_err *e);

/* ---- Acceptance noise (paired comparison of two nets on the same images) ---------------------
 * a_only: images net A classifies right and net B wrong; b_only: the reverse; n images. The
 * standard error, in accuracy POINTS, of acc_B − acc_A estimated from the per-image differences
 * d_i ∈ {−1, 0, +1} (sample variance / n, as in McNemar's test). 0 when n < 2. */
double search_paired_se(int a_only, int b_only, int n);

/* Count a_only / b_only (above) for nets a and b on s. */
int search_paired_counts(const rs_model *a, const rs_model *b, const cifar10_set *s, int nthreads,
                         int *a_only, int *b_only, rs_err *e);

#pragma GCC visibility pop
#endif
