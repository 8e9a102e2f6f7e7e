/* train.h — training: batched forward/backward of any supported model, softmax cross-entropy,
 * SGD with momentum and weight decay, one-cycle / cosine schedules, CIFAR augmentation.
 *
 * Contract:
 *  - Parameters are the model's float initializers read by Conv (W, B), Gemm (B, C), MatMul (B)
 *    and Add (a constant operand). Training updates them IN PLACE in value->f; the model must
 *    outlive any train_net made from it and must not be edited while one exists.
 *  - Supported ops: Conv (any pads / strides / dilations / group), Gemm (trans_a = 0, constant B,
 *    optional constant C broadcast over rows), MatMul with a constant right operand, Add (two
 *    activations of the same shape, or an activation and a broadcastable constant), Relu,
 *    MaxPool (pads, strides, dilations, ceil_mode; ties send the gradient to the first maximum
 *    in row-major window order, like PyTorch), Clip, AveragePool, GlobalAveragePool, Flatten,
 *    Reshape, Identity, and BatchNormalization (γ and β are parameters without weight decay;
 *    batch statistics in training, running ones in evaluation, see train_net_set_training).
 *    Anything else is an error naming the node and op.
 *  - Loss: mean over the batch of softmax cross-entropy on the graph output (N, classes);
 *    with a teacher, (1−α)·CE + α·T²·KL(softmax(teacher/T) ‖ softmax(student/T)).
 *  - Inputs: n × (C·H·W) floats already normalised, or CIFAR bytes normalised on the fly as
 *    x/127.5 − 1. Augmentation (random crop with `pad` pixels of padding, horizontal flip) pads
 *    the RAW image with 0, i.e. with −1 after normalisation, as torchvision's RandomCrop does
 *    before Normalize; for float inputs the padding value is train_options.pad_value.
 *  - Determinism: for a fixed seed and thread count the result is bit-identical on a given CPU
 *    (the conv kernels' vector ISA is picked at run time, see kernels.h). Each batch is split
 *    into contiguous per-thread slices with private gradient buffers, summed in thread order;
 *    OpenBLAS is held at one thread during a batch. Random numbers (shuffle, crops, flips) are
 *    drawn on the calling thread only.
 *  - Threads: a net runs its batches on a pool (pool.h) of its own, or on a borrowed one
 *    (train_options.pool, train_evaluate_on) so that training, its validation and a
 *    distillation teacher's inference share one set of threads; the pool's size (capped at the
 *    batch) is the thread count above.
 *  - A loss or a parameter that turns NaN/Inf stops training with an error naming the epoch
 *    (and the parameter), so a diverged model is never returned as trained.
 *  - Long work reports through rs_progress_fn once per batch (fraction of all batches); a
 *    non-zero return cancels and train_model returns RS_CANCELLED with the weights as they are.
 */
#ifndef RANKSCOPE_TRAIN_H
#define RANKSCOPE_TRAIN_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/common.h"
#include "rankscope/model.h"
#include "rankscope/pool.h"

/* ---- Data ---------------------------------------------------------------------------------- */
typedef struct train_data {
    int n;
    int c, h, w;            /* per-image shape; must equal the model input's */
    const uint8_t *u8;      /* n × c·h·w raw bytes (CIFAR CHW), normalised x/127.5 − 1, or */
    const float *f;         /* n × c·h·w floats already normalised (exactly one of u8 / f) */
    const uint8_t *labels;  /* n class indices < number of logits */
} train_data;

/* ---- Low level: a model compiled for gradient computation (tests, fine-tuning, bench) ------- */
typedef struct train_net train_net;

enum {
    TRAIN_NET_INPUT_GRAD = 1 /* also compute d loss / d input (train_net_input_grad) */
};

/* Compile m for batches of up to max_batch images on nthreads workers (0 = default).
 * trainable: NULL = every parameter, else one byte per value index (m->n_values): non-zero
 * marks a trainable parameter; gradients of frozen parameters are neither computed nor applied. */
train_net *train_net_create(rs_model *m, int max_batch, int nthreads, const uint8_t *trainable,
                            int flags, rs_err *e);
void train_net_free(train_net *t); /* accepts NULL */

/* Forward + backward on x (n × in_features normalised floats, n ≤ max_batch): sets the
 * gradients of the mean loss (overwriting, not accumulating). teacher: NULL, or n × classes
 * logits for distillation with weight alpha and temperature temp. loss / correct may be NULL. */
int train_net_grad(train_net *t, const float *x, const uint8_t *labels, int n,
                   const float *teacher, float alpha, float temp,
                   double *loss, int *correct, rs_err *e);
/* Gradient buffer of parameter value v (same layout as m->values[v].f), or NULL when v is not a
 * trainable parameter. Valid until the next train_net_grad. */
const float *train_net_param_grad(const train_net *t, int v);
/* n × in_features gradient of the loss w.r.t. the input (needs TRAIN_NET_INPUT_GRAD), or NULL. */
const float *train_net_input_grad(const train_net *t);
/* n × classes logits of the last train_net_grad. */
const float *train_net_logits(const train_net *t);
int train_net_classes(const train_net *t);
int train_net_in_features(const train_net *t);
/* Training mode (the default, 1): BatchNormalization normalises with the statistics of the
 * whole batch given to train_net_grad and then moves its running mean and variance towards
 * them (momentum 0.1, unbiased variance, as PyTorch). 0: it applies the running statistics
 * (eval mode) and leaves them alone. Evaluation (train_evaluate, validation) is always eval mode. */
void train_net_set_training(train_net *t, int training);
/* 1 if v is a parameter that takes weight decay (a weight, not a bias). */
int train_net_is_weight(const train_net *t, int v);

/* ---- High level: the training loop ----------------------------------------------------------- */
typedef enum train_schedule {
    TRAIN_SCHED_ONECYCLE = 0, /* linear warm-up from lr/25, cosine down to lr/1e4 */
    TRAIN_SCHED_COSINE = 1,   /* linear warm-up from 0, cosine down to 0 */
    TRAIN_SCHED_CONSTANT = 2
} train_schedule;

typedef struct train_epoch_stats {
    int epoch;          /* 1-based */
    int epochs;
    double train_loss;  /* mean over the epoch's images (augmented, weights as they moved) */
    double train_acc;   /* 0..1, same images */
    double val_loss;    /* < 0 when no validation data */
    double val_acc;     /* < 0 when no validation data */
    double lr;          /* at the end of the epoch */
    double seconds;     /* wall time of the epoch's training (validation excluded) */
    double cpu_seconds; /* CPU time of the whole process over the same span (every thread) */
    double val_seconds;
} train_epoch_stats;

/* Called after each epoch; return non-zero to stop training early (not an error). */
typedef int (*train_epoch_fn)(void *user, const train_epoch_stats *s);

/* Distillation teacher: fill out (n × classes) with the teacher's logits for the normalised
 * images x (n × in_features). Called on the training thread, once per batch. Return 0 / -1. */
typedef int (*train_teacher_fn)(void *user, const float *x, int n, float *out, rs_err *e);

/* Everything besides the model that a run needs to continue bit-identically after an epoch.
 * Handed to on_checkpoint with borrowed pointers (valid during the call); given back through
 * train_options.resume, owned by the caller (see checkpoint.h for the file form). */
typedef struct train_state {
    int epoch;          /* epochs completed; the run continues with epoch + 1 */
    long step;          /* optimizer steps taken */
    uint64_t rng[4];    /* shuffle / augmentation generator (xoshiro256**) */
    int n;              /* training images */
    int *perm;          /* n: the shuffle order the next epoch starts from */
    int n_values;       /* m->n_values of the model it belongs to */
    float **mom;        /* per value index: SGD momentum of a trainable parameter, else NULL */
} train_state;

/* Called after each epoch (after validation) with the model and the state; return 0, or -1
 * with e filled to stop training with that error (e.g. the checkpoint could not be written). */
typedef int (*train_checkpoint_fn)(void *user, const rs_model *m, const train_state *s, rs_err *e);

typedef struct train_options {
    int epochs;              /* 30 */
    int batch;               /* 128 */
    float lr;                /* peak learning rate, 0.05 */
    float momentum;          /* 0.9 */
    float weight_decay;      /* 5e-4, on weights only (not biases) */
    train_schedule schedule; /* TRAIN_SCHED_ONECYCLE */
    float warmup;            /* fraction of all steps spent warming up, 0.15 */
    uint64_t seed;           /* 1 */
    int augment;             /* 1: random crop + horizontal flip */
    int pad;                 /* crop padding in pixels, 4 */
    float pad_value;         /* padding for float inputs (bytes always pad with raw 0), -1 */
    int nthreads;            /* 0 = rs_default_threads() */
    rs_pool *pool;           /* NULL = threads of its own (nthreads); else borrowed (pool.h),
                              * shared with the caller's inference, nthreads ignored */
    const uint8_t *trainable;/* NULL = all; else per value index (see train_net_create) */
    train_teacher_fn teacher;/* NULL = plain cross-entropy */
    void *teacher_user;
    float distill_alpha;     /* 0.5 */
    float distill_temp;      /* 4 */
    rs_progress_fn progress; /* per batch; non-zero cancels */
    void *progress_user;
    train_epoch_fn on_epoch; /* per epoch; non-zero stops */
    void *epoch_user;
    train_checkpoint_fn on_checkpoint; /* per epoch, before on_epoch; NULL = none */
    void *checkpoint_user;
    const train_state *resume; /* NULL = start at epoch 1; else continue after resume->epoch
                                * (the model passed in must be the checkpoint's) */
    /* Quantization in the loop (NULL = off): called on the model before each batch and each
     * validation; it may replace the weights (in[1] of Conv / Gemm / MatMul, e.g. by their int8
     * round trip, quant.h) and nothing else. train_model keeps the float weights as masters: they are put back after the batch and the
     * SGD step moves them with the gradient taken at the replaced values (straight-through).
     * Callbacks (on_epoch, on_checkpoint) and the returned model see the masters. */
    int (*weight_quant)(void *user, rs_model *m, rs_err *e);
    void *weight_quant_user;
} train_options;

void train_default_options(train_options *o);

/* Learning rate at step (0-based) of total steps for the schedule. */
double train_lr_at(const train_options *o, long step, long total);

/* Train m in place on `train`, reporting validation accuracy on `val` (may be NULL) after each
 * epoch. last (may be NULL) receives the final epoch's stats. Returns 0, -1 or RS_CANCELLED. */
int train_model(rs_model *m, const train_data *train, const train_data *val,
                const train_options *o, train_epoch_stats *last, rs_err *e);

/* Accuracy (and mean CE loss, may be NULL) of m on d, batched, no augmentation. */
int train_evaluate(rs_model *m, const train_data *d, int nthreads, double *acc, double *loss,
                   rs_err *e);
/* The same on a borrowed pool (pool.h) instead of threads of its own. */
int train_evaluate_on(rs_model *m, const train_data *d, rs_pool *pool, double *acc, double *loss,
                      rs_err *e);

/* ---- The reference net ------------------------------------------------------------------------
 * conv1 3→6 5×5, relu, maxpool 2, conv2 6→16 5×5, relu, maxpool 2, flatten, fc1 400→120, relu,
 * fc2 120→84, relu, fc3 84→10 — named as PyTorch exports it (conv1.weight, fc1.bias, ...), input
 * "input" (N,3,32,32), output "logits" (N,10). Initialised like PyTorch's defaults: weights
 * kaiming-uniform with a = √5 (uniform ±1/√fan_in), biases uniform ±1/√fan_in. */
rs_model *train_reference_net(uint64_t seed, rs_err *e);

/* Re-initialise every Conv / Gemm / MatMul weight and bias of m as above. */
void train_init_params(rs_model *m, uint64_t seed);

#pragma GCC visibility pop
#endif
