/* geom.h — the factorizable view of one weighted layer (internal, not part of the public API).
 *
 * Contract: geom_of reads a Conv / Gemm / MatMul node's shapes and weight once (the model must have
 * had model_infer_shapes run); the layer_geom borrows pointers into the model and is valid while
 * the model is unchanged. geom_weight returns a malloc'd canonical double copy, geom_matrix
 * rearranges it. Depends only on the model; decompositions, spectra and fits build on it. */
#ifndef RANKSCOPE_GEOM_H
#define RANKSCOPE_GEOM_H

#include <stdint.h>

#include "rankscope/model.h"

/* Dense layers use c_out = N (out features), c_in = K (in features), kh = kw = 1 and 1×1 spatial
 * sizes. */
typedef struct layer_geom {
    const rs_node *node;
    int conv;                       /* 1 Conv, 0 dense (Gemm / MatMul) */
    int64_t c_out, c_in, kh, kw, group;
    int64_t h_in, w_in, h_out, w_out;
    const float *w;                 /* the initializer, ONNX layout */
    int dense_nk;                   /* dense: w stored (N, K) (Gemm trans_b = 1), else (K, N) */
    int bias_value;                 /* value index of the bias / C, or -1 */
    const float *bias;
    int64_t bias_len;
    int64_t weight_numel;
} layer_geom;

int geom_of(const rs_model *m, int node, layer_geom *g, rs_err *e);
/* Canonical double copy: conv (C_out, C_in/group, kh, kw), dense (N, K). NULL on out-of-memory. */
double *geom_weight(const layer_geom *g);

/* Matrix arrangements of the canonical weight K. */
typedef enum {
    GEOM_MODE0,   /* C_out × (C_in·kh·kw): K as stored (dense: N × K) */
    GEOM_MODE1,   /* C_in × (C_out·kh·kw) */
    GEOM_SPATIAL, /* (C_in·kh) × (C_out·kw): M[(i,a), (o,b)] = K[o,i,a,b] */
} geom_layout;

/* K as the row-major matrix of a layout; A holds weight_numel doubles. */
void geom_matrix(const layer_geom *g, const double *K, geom_layout layout, double *A, int *rows,
                 int *cols);

#endif
