/* fit.h — data-aware factorization: factors fitted to a layer's outputs on calibration images.
 *
 * Contract:
 *  - FIT_WEIGHTS is decomp_layer / plan_apply (the factors approximate the weight). FIT_OUTPUTS
 *    starts from the same chain and refits it so that the chain's output on calibration data
 *    matches the original layer's output (least squares over every image × output position):
 *      svd (dense)  reduced-rank regression: the truncated SVD of W·L with L Lᵀ the input
 *                   covariance (whitened SVD), mapped back with L⁻¹ — optimal for output error;
 *      tucker2      the input projection (1×1 C_in→R_in) from the weights (HOSVD/HOOI), then the
 *                   core and the output projection by the same reduced-rank regression on the
 *                   projected input patches (channel reconstruction, Zhang et al. 2016);
 *      spatial-svd  the vertical filters from the weights, the horizontal filters by least
 *                   squares on the vertical outputs' 1×kw patches (Jaderberg et al. 2014);
 *      cp           the CP factors from the weights (stable CP-ALS, decomp_cp.c), the last 1×1
 *                   factor refined by least squares on the outputs;
 *      slice-svd    unchanged (its last factor is a fixed summation).
 *    The bias of the last factor is refitted too (it absorbs the mean error) when the layer has
 *    one bias per output; otherwise the fit is uncentred and the bias is kept.
 *  - What is minimised: least-squares heads (spatial-svd, cp) are optimal for any weighting of
 *    the outputs. Reduced-rank heads (svd, tucker2) truncate in a metric: when the layer's output
 *    reaches exactly one weighted layer N through ReLU / pooling / Flatten / Reshape (the usual
 *    chain), the error is measured as ‖G^{1/2}(y − y')‖ with G = A + tr(A)/C_out·I, A the Gram of
 *    N's weights per input channel (summed over N's outputs and taps) — half the output error as
 *    N sees it, half the plain one; otherwise plainly (G = I).
 *  - Sequential correction (fit_options.sequential, default on): in fit_plan_apply each layer,
 *    taken in graph order, sees the inputs produced by the ALREADY-compressed network and is
 *    fitted to the ORIGINAL network's outputs (the asymmetric reconstruction), so errors do not
 *    pile up through the network. Off: inputs and targets both from the original network.
 *  - Joint refinement (fit_options.refine_epochs > 0, FIT_REFINE_EPOCHS by default): after the
 *    layer-wise fits, fit_plan_apply adjusts every parameter of the factorized network together
 *    so that its logits on the same calibration images match the original network's: that many
 *    passes of SGD (batch 128, cosine schedule from refine_lr, no weight decay, no augmentation)
 *    on the distillation loss alone (temperature refine_temp; no labels are read). The layer-wise
 *    fits leave each layer's error where the next ones cannot see it; the refinement lets every
 *    layer, the unfactorized ones too, absorb what the others lost. It is kept only when it
 *    lowered the mean KL divergence from the original's logits on the calibration images
 *    (ill-conditioned factors, CP's especially, can make SGD worsen it); otherwise, and for nets
 *    rankscope cannot train (an op training lacks, an output that is not per-class logits) or a
 *    run that diverges, the layer-wise fit stays. fit_layer never refines; fine-tuning (finetune.h) starts from the
 *    layer-wise fit, since it does the same with labels and far more images.
 *  - Calibration images are n × in_features normalised floats (the CLI uses the first 1,000
 *    training images by default). Statistics use at most max_rows (image, output position)
 *    rows per layer, taken at an even stride, accumulated in double precision.
 *  - The input covariance's eigenvalues below eig_floor × the largest are dropped (directions
 *    the data never excites get no weight), so a rank-deficient input (dead ReLUs) is fine.
 *  - The engine never prints; progress goes through fit_options.progress (non-zero cancels:
 *    RS_CANCELLED, the model partially factorized — callers apply plans to a copy).
 */
#ifndef RANKSCOPE_FIT_H
#define RANKSCOPE_FIT_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include "rankscope/common.h"
#include "rankscope/decomp.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"

/* FIT_OUTPUTS: the layer-wise fits, then the joint refinement; FIT_LAYERS: the layer-wise fits
 * alone (fit_options.refine_epochs = 0). */
typedef enum fit_mode { FIT_WEIGHTS = 0, FIT_OUTPUTS = 1, FIT_LAYERS = 2 } fit_mode;

const char *fit_mode_name(fit_mode m); /* "weights", "outputs", "layers" */
/* "weights" / "outputs" / "layers"; else -1 with `unknown fit "x" (expected weights, outputs or
 * layers)`. */
int fit_mode_parse(const char *s, fit_mode *out, rs_err *e);

#define FIT_DEFAULT_CALIB 1000 /* calibration images the CLI takes from the training split */
#define FIT_REFINE_EPOCHS 20   /* joint refinement passes (fit_default_options) */

typedef struct fit_options {
    int sequential;    /* 1: inputs from the compressed prefix, targets from the original */
    int max_rows;      /* per layer (default 262144) */
    double eig_floor;  /* relative (default 1e-6) */
    int downstream;    /* 1 (default): reduced-rank heads weigh the output error by the next
                        * weighted layer (see below); 0: plain output error */
    int refine_epochs; /* joint refinement passes over the calibration images (0 = none) */
    double refine_lr;  /* 0.01 */
    double refine_temp; /* 2 */
    int nthreads;      /* refinement threads: 1 (the result is the same whatever --threads) */
    const decomp_opts *decomp; /* the weight-based start (NULL = defaults) */
    rs_progress_fn progress;   /* once per layer and per 32-image chunk; non-zero cancels */
    void *user;
} fit_options;

void fit_default_options(fit_options *o);

/* Refit r (from decomp_layer on node of m, not yet applied) to the layer's outputs. x: the
 * layer's input in the original network for n images (n × per-image input size), the targets
 * being the original layer applied to x; xt: the input the chain will really see (the
 * compressed prefix's), or x. r's factor weights and last bias are replaced and its
 * weight_error recomputed from the new factors. */
int fit_layer(const rs_model *m, int node, decomp_result *r, const float *x, const float *xt, int n,
              const fit_options *o, rs_err *e);

/* plan_apply with FIT_OUTPUTS: validate, then factorize the plan's layers in graph order, each
 * fitted as above (m edited in place). calib: n × in_features normalised floats. report: NULL or
 * p->n entries (weight error of the fitted factors, seconds including the fit). */
int fit_plan_apply(rs_model *m, const rs_plan *p, const float *calib, int n, const fit_options *o,
                   plan_layer_report *report, rs_err *e);

#pragma GCC visibility pop
#endif
