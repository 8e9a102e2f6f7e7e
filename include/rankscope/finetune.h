/* finetune.h — the blog's "direct problem": train a factorized network, optionally only its
 * factor layers, optionally distilling from the original network's logits.
 *
 * Contract:
 *  - finetune_run factorizes a copy of m by plan (plan_apply, or fit_plan_apply with
 *    fit_calib) and trains that copy with
 *    train_model on `train` (augmented as train_options says), reporting validation accuracy on
 *    `val` (may be NULL) after each epoch through o->train.on_epoch. *out receives the trained
 *    model (caller frees with model_free), also when training was cancelled (RS_CANCELLED is
 *    returned then, the weights as they were when it stopped).
 *  - factors_only: only initializers read by nodes that do not exist in m (the new factor
 *    layers) are trained; the other layers stay frozen.
 *  - distill: the teacher is m itself, or o->teacher when set (its logits on the same augmented
 *    batch; staged compression uses the original network), with train_options.distill_alpha /
 *    distill_temp.
 *  - Keeping the best (keep_best, on by default, needs `val`): the starting net's validation
 *    accuracy is measured first, and the net returned is the one with the best validation
 *    accuracy among the start and the end of every epoch (ties keep the earlier), so fine-tuning
 *    never returns a net worse on validation than it started from. On cancel too: the best
 *    validated state, not the half-trained one. o->report (may be NULL) says which was kept.
 *    trained_only drops the start from the candidates (see the field): the net returned can
 *    then be worse than the start.
 *  - bn: before training, a BatchNormalization goes after every Conv (factors included) whose
 *    output no BN reads yet, initialised from that output's per-channel statistics on
 *    calibration images (fit_calib, or the first FINETUNE_BN_IMAGES training images) so that it
 *    computes the identity: running mean μ and variance σ² of the output, γ = √(σ²+ε), β = μ (in
 *    training mode, with batch statistics, nearly so). Shipped nets have their BN folded, so a
 *    factorized one trains without it and a learning rate the original took diverges; the BN
 *    re-parametrises every conv (its scale no longer moves the loss), as it was trained — between
 *    the factors too, which is what makes the difference (a BN only after a chain's last factor
 *    barely helps). Every BN is folded back into its Conv's weights and bias
 *    (passes_fold_batchnorm) before the net is returned, so *out has the factorized graph; a
 *    factor that had no bias keeps the BN's shift as one (one parameter per channel: a shift
 *    before a zero-padded conv cannot be moved into the next factor exactly).
 *  - Defaults (finetune_default_options) suit recovery rather than training from scratch:
 *    cosine schedule with a short warm-up, peak lr 0.005, momentum 0.9, weight decay 5e-4,
 *    10 epochs, batch 128, augmentation on.
 *  - Checkpoints: on_checkpoint (may be NULL) receives after every epoch (validated, the best
 *    kept so far updated with it) everything the run needs to go on: the net being trained
 *    (factorized, its BatchNormalizations in), the best state kept, the start's accuracy and the
 *    train_state. A run given that back through `resume` skips the factorization, the BN and
 *    the start's validation and continues after that epoch, bit-identically (same thread count);
 *    m and plan must be those of the interrupted run (teacher, factor mask). A non-zero return
 *    from on_checkpoint stops the run with its error.
 */
#ifndef RANKSCOPE_FINETUNE_H
#define RANKSCOPE_FINETUNE_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/common.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"
#include "rankscope/train.h"

/* What finetune_run kept. Accuracies are 0..1, or -1 without validation data. */
typedef struct finetune_report {
    double start_val_acc; /* the factorized net before any training */
    int kept_epoch;       /* 0 = the starting net, k = the end of epoch k */
    double kept_val_acc;
    int epochs_done;
} finetune_report;

/* A fine-tuning after an epoch. Handed to on_checkpoint with borrowed pointers (valid during the
 * call); given back through finetune_options.resume, owned by the caller. */
typedef struct finetune_state {
    rs_model *w;       /* the net being trained, weights and BN statistics after train.epoch */
    rs_model *best;    /* keep_best: the best validated state so far (the start before any); else NULL */
    int best_epoch;    /* 0: the start */
    double best_acc;   /* its validation accuracy (-1: trained_only and no epoch yet, or no val) */
    double start_acc;  /* the start's validation accuracy, -1 when not measured */
    train_state train; /* train.epoch epochs done */
} finetune_state;

typedef int (*finetune_checkpoint_fn)(void *user, const finetune_state *s, rs_err *e);

typedef struct finetune_options {
    train_options train; /* teacher / trainable fields are set by finetune_run */
    int factors_only;
    int distill;
    const rs_model *teacher;  /* distill: NULL = m itself; else this net (same input / classes) */
    int keep_best;            /* 1 (default): return the best validated state, see above */
    int trained_only;         /* with keep_best: the best among the ends of the epochs only; the
                               * start is returned only when no epoch completed (staged
                               * compression's stages: the search chose their plan for the
                               * start's accuracy on the same validation images, so judging the
                               * start would accept that choice's luck) */
    finetune_report *report;  /* may be NULL; filled by finetune_run (also on cancel) */
    const float *fit_calib;   /* NULL: the plan's factors approximate the weights (plan_apply);
                               * else fitted to the layer outputs on these fit_n normalised
                               * images (fit_plan_apply, fit.h) before training */
    int fit_n;
    int bn;                   /* 1: BatchNormalization after every Conv while training (above) */
    finetune_checkpoint_fn on_checkpoint; /* after every epoch (above); NULL = none */
    void *checkpoint_user;
    const finetune_state *resume; /* NULL = start; else go on from it (above) */
} finetune_options;

#define FINETUNE_BN_IMAGES 64

void finetune_default_options(finetune_options *o);

/* One byte per value of `factorized` (a plan_apply'd copy of `original`): 1 for initializers
 * read by nodes whose names do not occur in `original`. *mask malloc'ed (free()). */
int finetune_factor_mask(const rs_model *original, const rs_model *factorized, uint8_t **mask,
                         rs_err *e);

/* plan may be NULL or empty (then the whole original net is trained further). */
int finetune_run(const rs_model *m, const rs_plan *plan, const train_data *train,
                 const train_data *val, const finetune_options *o, rs_model **out,
                 train_epoch_stats *last, rs_err *e);

/* train_data views of a CIFAR-10 set's bytes (no copy). */
struct cifar10_set;
void finetune_data_of(const struct cifar10_set *s, train_data *d);

#pragma GCC visibility pop
#endif
