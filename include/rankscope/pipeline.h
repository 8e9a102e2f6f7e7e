/* pipeline.h — workflows built from the engine's modules, shared by the CLI and the explorer:
 * the trade-off curve, `compress` (search → fine-tune → search again) and the incremental
 * evaluator behind the explorer's sliders.
 *
 * Contract:
 *  - Nothing here prints or exits. Each workflow reports through callbacks; a non-zero return
 *    from any of them cancels, and the workflow then returns RS_CANCELLED promptly (the curve and
 *    compress keep what they finished: points already reported, the best plan so far).
 *  - Accuracies are fractions 0..1; drops, budgets, tolerances and margins are accuracy POINTS.
 *  - Sets and models are borrowed and must outlive the call (the evaluator: its lifetime).
 *  - Plans are factorized as the search factorizes them (search_options.fit_calib: fitted to
 *    the layer outputs, search_apply_plan), and fine-tuning starts from those same factors
 *    unless the finetune options name their own calibration.
 */
#ifndef RANKSCOPE_PIPELINE_H
#define RANKSCOPE_PIPELINE_H

#include <stdint.h>

#include "rankscope/cifar10.h"
#include "rankscope/common.h"
#include "rankscope/decomp.h"
#include "rankscope/eval.h"
#include "rankscope/finetune.h"
#include "rankscope/latency.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"
#include "rankscope/recipe.h"
#include "rankscope/search.h"

#pragma GCC visibility push(default)

/* ---- factors fitted to the layer outputs, as the CLI fits them ---------------------------------
 * The calibration images of `--fit outputs`: the first n images of set (the training split;
 * n <= 0: FIT_DEFAULT_CALIB, at most set->n), normalised as the engine feeds images. Put them in
 * search_options.fit_calib / fit_n (the searches, and the curve's and compress's fine-tunings,
 * then factorize every plan that way) or finetune_options.fit_calib / fit_n; they must outlive
 * those uses. malloc'ed (free()); NULL with e set for an empty set or out of memory. */
float *pipe_fit_calibration(const cifar10_set *set, int n, int *n_out, rs_err *e);

/* ---- the trade-off curve ----------------------------------------------------------------------
 * For each target reduction t: the plan of least estimated drop whose whole-network params are at
 * most params0 / t (search_ctx_plan_for_budget with o->search), its accuracy on o->judge and,
 * when o->finetune is set, the accuracy of that plan fine-tuned on o->train (val per epoch). */
#define PIPE_CURVE_DEFAULT_N 5
extern const double pipe_curve_default_targets[PIPE_CURVE_DEFAULT_N]; /* 1.5 2 2.5 3 4 */

typedef struct pipe_curve_point {
    int index;             /* 0-based position in the targets */
    double target;         /* the reduction asked for */
    const char *unreachable; /* non-NULL: no plan meets the budget (the reason); rest unset */
    const rs_plan *plan;   /* borrowed for the duration of the callback */
    plan_cost cost;
    double est_drop;       /* estimated drop of the allocation, points */
    double acc;            /* on judge */
    double acc_finetuned;  /* on judge after fine-tuning, < 0 when not fine-tuned */
} pipe_curve_point;

typedef int (*pipe_curve_fn)(void *user, const pipe_curve_point *p);

typedef struct pipe_curve_options {
    const double *targets; /* NULL: pipe_curve_default_targets */
    int n_targets;
    const search_options *search; /* methods, sens_images, threads, progress (may not be NULL) */
    const cifar10_set *judge;     /* where each point's accuracy is measured */
    int nthreads;
    const finetune_options *finetune; /* NULL: no fine-tuning */
    const cifar10_set *train, *val;   /* for fine-tuning */
    pipe_curve_fn on_point;           /* may be NULL */
    void *user;
} pipe_curve_options;

/* ctx holds the sensitivity tables (built on first use). */
int pipe_curve_run(const rs_model *m, search_ctx *ctx, const pipe_curve_options *o, rs_err *e);

/* ---- compress ------------------------------------------------------------------------------------
 * Round 0 is the verified search at the tolerance (strategy as in o->search). With epochs > 0,
 * each later round takes the plan of least cost whose ESTIMATED drop fits a budget (first 3× the
 * tolerance, at least 0.75 pt), fine-tunes it and keeps it when its validation drop plus
 * margin_z paired standard errors stays within the tolerance. The budget grows ×2.5 while rounds
 * are kept, then is bisected between the largest kept and the smallest rejected budget, until they
 * are within 0.2 pt, `rounds` fine-tunings were spent, or another round would pass time_limit_s.
 * Among kept plans the cheapest wins (pipe_compress_cost); without any, the searched plan,
 * factorized as is. */
#define PIPE_MAX_ROUNDS 100

typedef enum pipe_round_kind {
    PIPE_ROUND_STAGE = 0,     /* a plan factorized and fine-tuned (compress: a round) */
    PIPE_ROUND_EXTENSION = 1, /* the rejected stage before it fine-tuned once more */
    PIPE_ROUND_POLISH = 2     /* the result fine-tuned polish_epochs more */
} pipe_round_kind;

typedef struct pipe_round {
    pipe_round_kind kind;
    double budget;            /* pre-fine-tuning drop budget, points */
    double val_pre, val_post; /* validation accuracy before / after fine-tuning */
    int64_t params, macs;
    int accepted;
    double margin;            /* margin_z · SE, points */
    double seconds;
    int a_only, b_only;       /* images lost / gained against the original */
    int epochs_done;
    int number;               /* 1-based loop step (steps that changed nothing count too); staged:
                               * the stage (an extension has its stage's number) */
    char plan[256];           /* "conv2 spatial-svd 12; fc1 svd 32" */
} pipe_round;

typedef enum pipe_compress_stage {
    PIPE_STAGE_SEARCHING,  /* before round 0 (base_val, floor_val, tol_points set) */
    PIPE_STAGE_SEARCHED,   /* round 0 done (search set) */
    PIPE_STAGE_ROUND_START, /* a plan chosen for rounds[n_rounds - 1], fine-tuning next */
    PIPE_STAGE_ROUND_DONE, /* rounds[n_rounds - 1] judged */
    PIPE_STAGE_NEXT,       /* before each fine-tuning step: a chance to stop */
    PIPE_STAGE_TIME_LIMIT, /* stopping: another round would pass the time limit */
    PIPE_STAGE_WARNING     /* a round failed (warning says why); the rounds stop there */
} pipe_compress_stage;

typedef struct pipe_compress_result {
    search_result search;   /* round 0 */
    rs_plan *plan;          /* the winner */
    rs_model *model;        /* the winner, factorized (and fine-tuned when a round was kept) */
    double base_val, floor_val, tol_points, best_val;
    int cancelled;          /* stopped through a callback; the rest is the best so far */
    char warning[RS_ERR_LEN];
    int n_rounds;
    pipe_round rounds[PIPE_MAX_ROUNDS];
} pipe_compress_result;

typedef int (*pipe_stage_fn)(void *user, pipe_compress_stage stage, const pipe_compress_result *r);

typedef struct pipe_compress_options {
    search_options search;     /* tolerance / relative, objective, floor, methods, callbacks */
    finetune_options finetune; /* epochs are taken from `epochs` */
    int epochs;                /* 0: no fine-tuning rounds */
    int rounds;                /* fine-tunings at most */
    double time_limit_s;       /* counted from `started`; 0: none. A search (the first, or a
                                * stage's) still running at the limit is cancelled: no plan
                                * from it, PIPE_STAGE_TIME_LIMIT, the best kept so far returned */
    double started;            /* rs_now() when the work began; 0: at the call */
    double margin_z;
    int stages;                /* pipe_staged_run: stages at most */
    double stage_budget;       /* pipe_staged_run: estimated drop of a first stage, points (0 = the tolerance) */
    double extend_slack;       /* pipe_staged_run: a stage missing by at most this many points is
                                * fine-tuned once more (0 = never) */
    int polish_epochs;         /* pipe_staged_run: final fine-tuning of the result (0 = none) */
    pipe_stage_fn on_stage;    /* may be NULL */
    void *user;
    /* pipe_staged_run / pipe_recipe_replay only (see "checkpoints" below) */
    const char *checkpoint;    /* NULL: none; else written at every stage's start and epoch */
    const char *ident;         /* stored in the checkpoint (may be NULL) */
    const struct pipe_ckpt *resume; /* NULL: start; else continue that run */
} pipe_compress_options;

void pipe_compress_default_options(pipe_compress_options *o);
/* Free the contents (accepts NULL / zeroed). */
void pipe_compress_result_free(pipe_compress_result *r);

/* val: the search / acceptance set; train: needed when epochs > 0. r is overwritten. A non-zero
 * return from on_stage (or the search's callbacks) stops the work early: 0 is still returned,
 * with r->cancelled set and the best result so far. */
int pipe_compress_run(const rs_model *m, const cifar10_set *train, const cifar10_set *val,
                      const pipe_compress_options *o, pipe_compress_result *r, rs_err *e);

/* ---- staged compression with distillation ---------------------------------------------------------
 * Stage k = 1..o->stages works on the net N_{k-1} the previous stage left (N_0 = m). Its plan:
 * on N_{k-1} with every factorized layer FOLDED back into one layer shaped like the original's
 * (the map of its fine-tuned factors, probed exactly: a Conv of group 1 without dilation, or a
 * Gemm with transB), the plan of least cost whose ESTIMATED drop fits o->stage_budget
 * (search_ctx_plan_for_drop, o->search's objective, methods, layers, MAC floor and fit), minus
 * the entries that would not make a layer cheaper than it is in N_{k-1}. Its layers are
 * factorized (a layer factorized before is folded first, so it is factorized again from its
 * fine-tuned map, at a lower cost), then the whole net fine-tuned
 * for o->epochs epochs (o->finetune's lr and seed) distilled from the ORIGINAL m (alpha /
 * temperature from o->finetune.train), its best validated epoch kept (never its factorized
 * start: pipe_stage_apply below); it is judged against m as compress
 * judges its rounds (validation drop + margin_z paired SE within the tolerance). A stage that
 * misses by at most o->extend_slack points (> 0) is fine-tuned once more, o->epochs epochs from
 * where it ended (a stage that only fine-tunes: a 10-epoch stage recovers only part of what its
 * factorization lost), and judged again. An accepted stage becomes N_k; a rejected one is dropped
 * and the budget halved for the next try from the same net, and no later stage's plan is at least
 * as aggressive as a rejected one on every layer that one factorized (from the state it was
 * rejected in or a more compressed one, it would fail too): the search is rerun with such
 * factorizations ruled out, so the next try is strictly milder on one of those layers (after fc1
 * svd 28 fails, fc1 svd 30 can be tried). When nothing fits the halved budget, the next try takes
 * the budget that failed again (its plan is then strictly milder than the rejected one). The run ends after o->stages kept stages, o->rounds fine-tunings (the
 * extensions count), when no plan is left or the budget falls below 0.05 pt, or at the time limit
 * (no stage starts that would not finish in it, judged by the last stage's time). Then, when a
 * stage was kept and o->polish_epochs > 0, the polish: the last kept net fine-tuned that many
 * epochs more (distilled, keep-best, so it never loses on validation), kept when it does not lose.
 * r: rounds[] = the stages, extensions and polish, plan = the union of the accepted stages'
 * plans (the original's layer names), model = the last accepted net (m itself when none was).
 * recipe (may be NULL; empty) receives the accepted stages ("plan none" for an extension or the
 * polish). A stage is  * performed by pipe_stage_apply, the same call the replay makes, so a replay with the same
 * binary, data and thread count gives the same net. */
int pipe_staged_run(const rs_model *m, const cifar10_set *train, const cifar10_set *val,
                    const pipe_compress_options *o, pipe_compress_result *r, rs_recipe *recipe, rs_err *e);

/* ---- checkpoints of staged compression and of a recipe replay ------------------------------------
 * With o->checkpoint set, pipe_staged_run and pipe_recipe_replay write that file atomically
 * (write, fsync, rename: it always holds a complete checkpoint) at the start of every stage (before
 * its search) and after every epoch of every fine-tuning (stage, extension, polish): the rounds
 * reported so far, the kept plan, the rejected plans, budget and counters, the kept stages'
 * recipe, the net the stage starts from (and the rejected stage's net an extension trains), and
 * the fine-tuning in progress (finetune_state: the net with its BatchNormalizations, the best
 * epoch kept and its accuracy, the start's accuracy, weights, statistics, momentum, epoch,
 * generator). Not the original m: the caller reads it again. o->ident (the caller's description of
 * the input model and options, compared by the caller: pipe_ident_diff) is stored as is.
 * o->resume continues such a run: the same calls with the same m, data, options and thread count
 * then end bit-identically to a run never interrupted (the wall-time figures aside; the time
 * limit counts the time spent before too). Refused, with an error naming the file: a checkpoint of
 * the other workflow, or whose validation accuracy of m differs from m's now (another model or
 * validation set). Format: magic "RSCPRS1\n", records as checkpoint.h's, CRC-32 last; every
 * length and count checked against what is left before use. */
typedef struct pipe_ckpt pipe_ckpt;

pipe_ckpt *pipe_ckpt_load(const char *path, rs_err *e);
void pipe_ckpt_free(pipe_ckpt *c); /* accepts NULL */
const char *pipe_ckpt_ident(const pipe_ckpt *c); /* "" when none was stored */
/* Where it stands, for messages: "stage 3, epoch 7 of its fine-tuning" (buf, len). */
const char *pipe_ckpt_where(const pipe_ckpt *c, char *buf, size_t len);
/* Ident texts are lines "KEY VALUE". 0 when they are equal; else 1 with `what` = "KEY: A in the
 * checkpoint, B now" for the first key whose value differs (or that only one of them has). */
int pipe_ident_diff(const char *saved, const char *now, char *what, size_t len);
/* "N bytes, crc32 XXXXXXXX" of the file at path into buf (for ident texts); -1 with e set when it
 * cannot be read. */
int pipe_file_ident(const char *path, char *buf, size_t len, rs_err *e);

/* Fold layer `name` (of orig) in w, where decomp_apply replaced it by a chain of factors, back into
 * one node shaped like the original's (its name, attributes, weight name and layout; the bias
 * kept) holding the chain's map, probed exactly (the chain alone on one receptive field: y(0)
 * is the bias, y(unit vectors) − y(0) the weight). 0 and w unchanged when the layer is not
 * factorized in w; an error for layers that cannot be folded (see above). */
int pipe_fold_layer(rs_model *w, const rs_model *orig, const char *name, rs_err *e);

/* Stage st on cur (st->plan's layers folded when factorized, factorized by st->plan — nothing for
 * an empty plan — then fine-tuned with st's epochs, lr, seed, BatchNormalization and distillation
 * from orig; base gives the rest: batch, threads, callbacks, fit). A stage that factorizes keeps
 * its best validated EPOCH (finetune_options.trained_only), never its factorized start: the
 * search picked the plan for that start's accuracy on the same validation images, and judging
 * it there accepted plans that test then found 1.6 pt worse. A stage that only fine-tunes (an
 * extension, the polish) may return its start, so it never loses on validation. */
int pipe_stage_apply(const rs_model *orig, const rs_model *cur, const recipe_stage *st, const cifar10_set *train,
                     const cifar10_set *val, const finetune_options *base, rs_model **out, finetune_report *rep,
                     rs_err *e);

/* The recipe's stages on m, each judged against m as above but never dropped (a replay
 * reproduces, it does not decide); r filled as pipe_staged_run fills it. The caller cuts train /
 * val to the recipe's image counts and sets o->search.fit_calib for a recipe fitted to outputs. */
int pipe_recipe_replay(const rs_model *m, const cifar10_set *train, const cifar10_set *val, const rs_recipe *rc,
                       const pipe_compress_options *o, pipe_compress_result *r, rs_err *e);

/* What compress minimises among accepted plans: the objective normalised by the original's
 * totals (SEARCH_OBJ_LATENCY: seconds / seconds0, the summed measured layer times of
 * search_ctx_plan_time; unused otherwise), with every plan that misses the MAC floor ranked
 * after every plan that meets it. */
double pipe_compress_cost(const search_options *so, int64_t params, int64_t macs, int64_t p0,
                          int64_t m0, double seconds, double seconds0);

/* "conv2 spatial-svd 12; fc1 svd 32" ("(empty)" for an empty plan) into buf. */
const char *pipe_plan_oneline(const rs_plan *p, char *buf, size_t len);

/* ---- measured speed-up -------------------------------------------------------------------------
 * Two whole models timed by lat_model (latency.h: one thread; batch 1, and per image in batches
 * of lat_options.batch) `samples` times each, alternately (before, after, before, ...), so a
 * load change on the machine hits both. For each figure, the speed-up is median(before) /
 * median(after) and the verdict is +1 (measured faster) only when EVERY sample of `after` is
 * below EVERY sample of `before` and the speed-up is at least PIPE_FASTER_MIN; -1 (measured
 * slower) for the mirror case; 0 otherwise (not distinguishable from noise): a plan is never
 * called faster on overlapping measurements. With 5 samples each, complete separation by chance
 * alone has probability 1/252 per direction. */
#define PIPE_SPEED_SAMPLES 5
#define PIPE_FASTER_MIN 1.02

typedef struct pipe_speed {
    int samples, batch;
    lat_point before, after;          /* medians, seconds per image */
    double speedup_b1, speedup_batch; /* before / after */
    int verdict_b1, verdict_batch;    /* +1 faster, -1 slower, 0 not distinguishable */
} pipe_speed;

/* o: timing options (NULL = lat_default_options; the cache is not used). samples < 1: 5. */
int pipe_measure_speed(const rs_model *before, const rs_model *after, const lat_options *o,
                       int samples, pipe_speed *out, rs_err *e);
const char *pipe_verdict_name(int verdict); /* "faster", "slower", "not measurably different" */

/* ---- the incremental evaluator ---------------------------------------------------------------
 * Accuracy of the model with each weighted layer (Conv / Gemm / MatMul in layer-table order,
 * index k = 0..n-1) factorized by a choice, on one data set, re-computing as little as possible:
 * the network is cut at the input of every weighted layer (when the graph allows it, e.g. a
 * chain) and the activations entering each piece are cached for the whole set, so a change of
 * layer k re-runs only the pieces from k on. Graphs that cannot be cut (skip connections) are
 * evaluated whole. Decompositions are cached per layer for the last choice evaluated.
 * Not thread-safe: one thread at a time (the explorer's worker). */
typedef struct pipe_choice {
    decomp_method method; /* DECOMP_NONE: the original layer */
    int rank, rank2;      /* rank2: tucker2 only, 0 = default */
} pipe_choice;

int pipe_choice_equal(const pipe_choice *a, const pipe_choice *b);

/* Order in which a method is offered for a layer when none is chosen yet. */
#define PIPE_N_PREFERRED 5
extern const decomp_method pipe_method_preference[PIPE_N_PREFERRED];

typedef struct pipe_eval pipe_eval;

pipe_eval *pipe_eval_alloc(const rs_model *m, const cifar10_set *data, rs_err *e);
void pipe_eval_free(pipe_eval *pe); /* accepts NULL */
int pipe_eval_layers(const pipe_eval *pe);
int pipe_eval_node(const pipe_eval *pe, int k); /* node index of layer k in m */
int pipe_eval_cached(const pipe_eval *pe);      /* 1: suffix caching in use */

/* Accuracy with cfg[0..n-1]; caches are updated. */
int pipe_eval_run(pipe_eval *pe, const pipe_choice *cfg, rs_progress_fn progress, void *user,
                  eval_result *res, rs_err *e);
/* Accuracy with cfg but layer k factorized by ch, leaving the caches for cfg (rank sweeps). */
int pipe_eval_swap(pipe_eval *pe, const pipe_choice *cfg, int k, const pipe_choice *ch,
                   rs_progress_fn progress, void *user, eval_result *res, rs_err *e);

/* A first figure on the first `images` images of the set (no caches touched), for graphs that
 * cannot be cut, where the whole set takes long: the explorer shows it, marked as an estimate,
 * while the whole set is evaluated. */
#define PIPE_ESTIMATE_IMAGES 400
int pipe_eval_wants_estimate(const pipe_eval *pe); /* 1: not cached and the set is larger */
int pipe_eval_run_first(pipe_eval *pe, const pipe_choice *cfg, int images, rs_progress_fn progress,
                        void *user, eval_result *res, rs_err *e);

/* Whole-network params and MACs with cfg (analytic). */
void pipe_eval_costs(const pipe_eval *pe, const pipe_choice *cfg, int64_t *params, int64_t *macs);

/* What factorizing layer k by ch does to the layer itself. */
#define PIPE_FIT_IMAGES 256
#define PIPE_MAX_STEPS DECOMP_MAX_FACTORS
typedef struct pipe_layer_report {
    double w_err;   /* relative Frobenius error of the weights */
    double out_err; /* relative error of the layer's output on the first calibration images, <0 unknown */
    /* The same two for the factors fitted to the layer's outputs (fit.h, FIT_OUTPUTS, the layer
     * alone) on the PIPE_FIT_IMAGES images of the set that follow the calibration images, so
     * out_err and fit_out_err are measured on the same held-out images; < 0 unknown (no images
     * to spare, slice-svd, or the fit failed). */
    double fit_w_err, fit_out_err;
    int n_steps;    /* the factor chain, as "5x1 6->12", "1x5 dw 8", "dense 400->24" */
    char step_text[PIPE_MAX_STEPS][40];
    int64_t step_params[PIPE_MAX_STEPS], step_macs[PIPE_MAX_STEPS];
} pipe_layer_report;

int pipe_eval_layer_report(pipe_eval *pe, int k, const pipe_choice *ch, rs_progress_fn progress,
                           void *user, pipe_layer_report *out, rs_err *e);

/* Slider-to-accuracy latency on `layer` (a weighted layer's short or node name), as the explorer
 * sees it: the original is evaluated first (warming the caches); then `reps` times a drag on the
 * layer's preferred method (four intermediate ranks, each cancelled after 20 ms, then the rank
 * let go at), timing the last rank from request to the first figure (the estimate on
 * PIPE_ESTIMATE_IMAGES images when pipe_eval_wants_estimate, else the full result) and to the
 * full-set accuracy. Medians over reps, seconds; *est_images = 0 when no estimate is made. */
int pipe_measure_slider(const rs_model *m, const cifar10_set *data, const char *layer, int reps,
                        double *first_s, double *full_s, int *est_images, rs_err *e);

#pragma GCC visibility pop

#endif
