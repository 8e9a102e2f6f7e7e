/* decomp_internal.h — shared between decomp*.c and evbmf.c only (not part of the public API).
 * Layer geometry read once from the model, small dense linear-algebra helpers (row-major
 * doubles; GSL for SVD / eigen, OpenBLAS for products), and the per-method builders. */
#ifndef RANKSCOPE_DECOMP_INTERNAL_H
#define RANKSCOPE_DECOMP_INTERNAL_H

#include <stdint.h>
#include "rankscope/decomp.h"

/* The factorizable view of one weighted node. Dense layers use c_out = N (out features),
 * c_in = K (in features), kh = kw = 1 and 1×1 spatial sizes. */
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
/* Canonical double copy: conv (C_out, C_in, kh, kw), dense (N, K). NULL on out-of-memory. */
double *geom_weight(const layer_geom *g);

/* Thin SVD A = U diag(s) Vᵀ of a rows × cols row-major matrix, k = min(rows, cols): U is
 * rows × k, V is cols × k (either may be NULL), s descending. */
int la_svd(const double *A, int rows, int cols, double *U, double *s, double *V, rs_err *e);
/* The r leading left singular vectors of A (rows × cols) as columns of U (rows × r, r <= rows),
 * from the eigenvectors of A Aᵀ, so a complete orthonormal basis even when r > cols. */
int la_leading_left(const double *A, int rows, int cols, int r, double *U, rs_err *e);
double la_norm2(const double *x, size_t n); /* Σ x² */

/* Per-method workers (decomp_svd.c, decomp_cp.c, decomp_tucker.c). K is the canonical weight.
 * They fill out->f[] weights / shapes and out->weight_error (and iteration info). */
int build_svd(const layer_geom *g, const double *K, int rank, decomp_result *out, rs_err *e);
int build_slice_svd(const layer_geom *g, const double *K, int rank, decomp_result *out, rs_err *e);
int build_spatial_svd(const layer_geom *g, const double *K, int rank, decomp_result *out, rs_err *e);
int build_cp(const layer_geom *g, const double *K, int rank, const decomp_opts *o,
             decomp_result *out, rs_err *e);
int build_tucker2(const layer_geom *g, const double *K, int r_out, int r_in, const decomp_opts *o,
                  decomp_result *out, rs_err *e);

/* The weight K (canonical layout) as the row-major matrix of a view (not SLICES); A holds
 * weight_numel doubles. */
void geom_view(const layer_geom *g, const double *K, decomp_view view, double *A, int *rows, int *cols);

#endif
