/* layer_eval.h — direct evaluation of one Conv or dense layer on a batch (internal).
 *
 * Contract: plain float loops / one sgemm per image, no packing, no threads: for calibration
 * batches (output errors, data-aware fits), where a layer is evaluated a few times on ~1,000
 * images, not for inference. Layouts: activations n × C × H × W (dense: n × K), conv weights
 * (C_out, C_in/group, kh, kw), pads in ONNX order (t, l, b, r), bias may be NULL. */
#ifndef RANKSCOPE_LAYER_EVAL_H
#define RANKSCOPE_LAYER_EVAL_H

#include <stdint.h>

typedef struct le_conv_shape {
    int64_t c_in, h, w;         /* input */
    int64_t c_out, kh, kw, group;
    const int64_t *strides, *pads, *dilations;
    int64_t oh, ow;             /* output */
} le_conv_shape;

/* Floats of the im2col buffer one image needs (C_in·kh·kw × oh·ow; 1 for grouped convs). */
int64_t le_col_size(const le_conv_shape *s);
/* Patches of one image (x: C_in × h × w) into col, row (ic, a, c), column output position. */
void le_im2col(const le_conv_shape *s, const float *x, float *col);
/* y (n × C_out × oh × ow) = conv(x) + bias; col holds le_col_size floats. */
void le_conv(const le_conv_shape *s, const float *x, int n, const float *wt, const float *bias, float *y,
             float *col);
/* y (n × N) = alpha · x Wᵀ + beta · bias, W given as (N, K) when nk, else (K, N). */
void le_dense(const float *x, int n, int64_t K, int64_t N, const float *W, int nk, const float *bias,
              int64_t bias_len, float alpha, float beta, float *y);

#endif
