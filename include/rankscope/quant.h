/* quant.h — int8 weights for factorized networks: the export's quantizer applied in place,
 * balancing of the factors of a product before quantizing, and quantization-aware fine-tuning.
 *
 * Contract:
 *  - The int8 rule is exactly `rankscope export --int8`'s (export.h): symmetric, per output
 *    channel, scale_c = max|w_c| / 127, q = round-half-away(w / scale_c) in [-127, 127]; only
 *    Conv W and Gemm / MatMul B are quantized; biases and activations stay float.
 *    quant_fake_weights replaces every such weight of m by q · scale_c, bit-identical to the
 *    weights of export_c_dequantize(m) (it is computed through it), so the accuracy rankscope
 *    measures on that model is the accuracy the generated int8 C code has.
 *  - Balancing (quant_balance): for two linear layers in a row with nothing between them — the
 *    factors of a product (SVD, spatial SVD, Tucker-2 chains): layer 1 (Conv / Gemm / MatMul)
 *    whose output feeds only layer 2 (a Conv of group 1, Gemm with trans_a = 0, or MatMul) — the
 *    shared rank index k may be rescaled: layer 1's output channel k (weights and bias) divided
 *    by s_k and layer 2's input channel k multiplied by s_k (the float function is unchanged up to
 *    rounding, a few ulp per weight). With per-output-channel scales layer 1's error does not
 *    move under any s (its channel k is scaled whole); layer 2's does, through how its input
 *    channels' ranges meet in each output channel. Two rescales are offered per pair: s_k =
 *    g / r2_k (layer 2's input channels brought to one range g, the geometric mean of
 *    √(r1_k·r2_k), so both factors keep comparable magnitudes for fine-tuning) and s_k =
 *    √(r1_k / r2_k) (cross-layer equalization), where r1_k = max|layer 1's channel k| and
 *    r2_k = max|layer 2's column k|; each pair takes the one that lowers the product error below
 *    (of all pairs) most, or stays as it is, so balancing never raises that error. Ranks with
 *    r1_k or r2_k zero are left alone. Up to `sweeps` sweeps (a rescale of a middle factor
 *    changes both of its neighbours); a sweep that changes nothing ends it.
 *  - Quantization-aware training: quant_train_hook is a train_options.weight_quant callback
 *    (user ignored): train.c keeps float master weights, the forward/backward of each batch and
 *    every validation see the quantized weights, and each SGD step moves the masters with the
 *    gradient taken at the quantized weights (straight-through estimator).
 *  - quant_compress: balance (unless opts say not), measure validation accuracy of the plain
 *    int8 model (post-training quantization), fine-tune with quantization in the loop
 *    (finetune_run without a plan, keep_best compares int8 accuracies), and return the int8
 *    model (weights already q · scale: exporting it with --int8 gives the same weights again,
 *    see quant_fake_weights) with its weight bytes as the C export counts them.
 *  - Nothing prints; long work reports through the fine-tuning's progress callback.
 */
#ifndef RANKSCOPE_QUANT_H
#define RANKSCOPE_QUANT_H

#include <stdint.h>
#include "rankscope/common.h"
#include "rankscope/finetune.h"
#include "rankscope/model.h"
#include "rankscope/train.h"

#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

/* In place: every quantizable weight of m becomes its int8 round trip (see above). */
int quant_fake_weights(rs_model *m, rs_err *e);

typedef struct quant_balance_report {
    int pairs;          /* factor pairs found */
    int ranks_scaled;   /* rank indices rescaled (summed over pairs and sweeps' last pass) */
    /* Quantization error of the pairs' products, to first order for white inputs:
     * Σ_k ‖ΔW2[:,k]‖²‖W1[k]‖² + ‖W2[:,k]‖²‖ΔW1[k]‖²  over  Σ_k ‖W2[:,k]‖²‖W1[k]‖²
     * (ΔW = W − its int8 round trip), before and after balancing; 0 without pairs. */
    double qerr_before, qerr_after;
} quant_balance_report;

/* Rescale factor pairs of m in place (sweeps >= 1; 3 is plenty). r may be NULL. */
int quant_balance(rs_model *m, int sweeps, quant_balance_report *r, rs_err *e);

/* train_options.weight_quant callback: quant_fake_weights(m). */
int quant_train_hook(void *user, rs_model *m, rs_err *e);

/* Bytes of the constant arrays of m's C export (export_c_stats.weight_bytes), int8 or float. */
int quant_weight_bytes(const rs_model *m, int int8, int64_t *bytes, rs_err *e);

typedef struct quant_options {
    finetune_options finetune; /* epochs 0: no fine-tuning (post-training quantization only) */
    int balance;               /* 1 (default) */
    int sweeps;                /* 3 */
} quant_options;

void quant_default_options(quant_options *o);

typedef struct quant_report {
    quant_balance_report balance;
    double val_float;    /* validation accuracy of the float input model (0..1, -1 no val) */
    double val_ptq;      /* int8 right after balancing, before any fine-tuning */
    double val_int8;     /* the returned int8 model */
    finetune_report ft;  /* which epoch was kept */
    int64_t bytes_float; /* C export of the input model, float weights */
    int64_t bytes_int8;  /* C export of the returned model with --int8 */
} quant_report;

/* m: a (factorized) float model. *out: the int8 model (caller frees). val may be NULL. */
int quant_compress(const rs_model *m, const train_data *train, const train_data *val,
                   const quant_options *o, rs_model **out, quant_report *r, rs_err *e);

#pragma GCC visibility pop

#endif
