/* decomp.h — low-rank factorization of one weighted layer into a chain of ordinary layers.
 *
 * Contract:
 *  - A layer is a Conv (weight K of shape C_out × C_in × kh × kw, group 1) or a dense layer
 *    (Gemm with constant B, or MatMul with a constant second input). For a dense layer the
 *    matrix W is out × in (N × K) whatever the ONNX layout was.
 *  - decomp_layer never edits the model: it returns a decomp_result holding the chain of factor
 *    layers (weights owned by the result). decomp_apply then splices that chain into the graph
 *    (model_replace_node), so a factorized layer evaluates, trains and exports like any other.
 *  - Every chain is EXACT at full rank (up to float rounding), keeps the original bias exactly
 *    once (on the last factor), and carries stride / padding / dilation:
 *      svd          Gemm  in→r  (Vᵣᵀ)        , Gemm  r→out (Uᵣ Sᵣ, bias)      [MatMul: two MatMul]
 *      slice-svd    Conv kh×1 group C_in, C_in → C_in·C_out·r   (u vectors, stride (sh,1), pads (pt,0,pb,0))
 *                   Conv 1×kw group C_in·C_out, C_in·C_out·r → C_in·C_out   (s·v, stride (1,sw))
 *                   Conv 1×1 C_in·C_out → C_out, sums over i (a 0/1 matrix: stored, hence counted)
 *      spatial-svd  Conv kh×1 C_in→r (stride (sh,1), pads (pt,0,pb,0), dil (dh,1)),
 *                   Conv 1×kw r→C_out (stride (1,sw), pads (0,pl,0,pr), dil (1,dw), bias)
 *      cp           Conv 1×1 C_in→R, depthwise kh×1 (R groups), depthwise 1×kw, Conv 1×1 R→C_out
 *      tucker2      Conv 1×1 C_in→R_in, Conv kh×kw R_in→R_out (original stride/pads/dil),
 *                   Conv 1×1 R_out→C_out (bias)
 *  - Ranks: `rank` is the method's rank; `rank2` is used only by tucker2, where rank = R_out
 *    (mode-0, output channels) and rank2 = R_in (mode-1, input channels); rank2 <= 0 means
 *    min(rank, max rank2). Valid ranges come from decomp_max_rank (1..max).
 *  - Costs follow the counting rule stated once in model.h (params = initializer elements,
 *    MACs per image). Costs of a factor chain are those of its real nodes, zeros included:
 *    slice-svd is reported honestly even when it costs more than the original layer.
 *  - All functions are reentrant (no globals; random restarts use a seeded local generator), so a
 *    UI worker thread may call them on its own model copy.
 *  - Node indices change after decomp_apply / model_replace_node: look layers up by name.
 */
#ifndef RANKSCOPE_DECOMP_H
#define RANKSCOPE_DECOMP_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/common.h"
#include "rankscope/model.h"

typedef enum decomp_method {
    DECOMP_NONE = 0,
    DECOMP_SVD,         /* dense layers (Gemm / MatMul) */
    DECOMP_SLICE_SVD,   /* conv: per-(o,i) kh×kw slice SVD, blog Part III */
    DECOMP_SPATIAL_SVD, /* conv: (C_in·kh) × (C_out·kw) reshaping, vertical then horizontal */
    DECOMP_CP,          /* conv: CP-4 (Lebedev et al. 2015) by CP-ALS */
    DECOMP_TUCKER2,     /* conv: Tucker-2 (Kim et al. 2016) by HOSVD + HOOI */
    DECOMP_COUNT
} decomp_method;

/* "none", "svd", "slice-svd", "spatial-svd", "cp", "tucker2". */
const char *decomp_method_name(decomp_method method);
/* Parses the names above (also "slice_svd", "spatial_svd", "tucker", "tucker-2"), case-insensitive.
 * Returns 0, or -1 with `unknown method "foo" (expected svd, slice-svd, ...)`. */
int decomp_method_parse(const char *s, decomp_method *out, rs_err *e);

/* Layers are found by name with model_find_layer (model.h). */

/* Bitmask of methods valid for node: bit (1u << method). DECOMP_NONE is always set. A Conv with
 * group > 1 (depthwise / grouped) gets no conv method; unweighted nodes get only NONE. */
unsigned decomp_methods_for(const rs_model *m, int node);
/* 0 if method applies to node, else -1 with the reason, e.g.
 * `conv2: cp needs a Conv with group 1 (group is 3)` or `fc1: slice-svd is for Conv layers`. */
int decomp_check(const rs_model *m, int node, decomp_method method, rs_err *e);

/* Largest valid rank (which = 0) or rank2 (which = 1; tucker2 only, else 0). 0 when the method
 * does not apply. svd: min(out,in); slice-svd: min(kh,kw); spatial-svd: min(C_in·kh, C_out·kw);
 * cp: product of the three smallest of (C_out, C_in, kh, kw) (a generic upper bound on CP
 * rank); tucker2: C_out (which 0) and C_in (which 1). */
int decomp_max_rank(const rs_model *m, int node, decomp_method method, int which);

/* ---- Costs --------------------------------------------------------------------------------- */
typedef struct decomp_cost {
    int64_t params_before, params_after; /* the layer's weight + bias elements */
    int64_t macs_before, macs_after;     /* per image */
} decomp_cost;

/* Analytic costs of factorizing node at (rank, rank2) — no decomposition is computed, so a UI can
 * call it for every rank. Needs activation shapes (model_infer_shapes done). */
int decomp_cost_of(const rs_model *m, int node, decomp_method method, int rank, int rank2,
                   decomp_cost *out, rs_err *e);

enum { DECOMP_BY_PARAMS = 0, DECOMP_BY_MACS = 1 };
/* Largest rank whose chain is strictly cheaper than the layer (by params or MACs), or 0 when no
 * rank saves (e.g. slice-svd on most layers). tucker2 is taken with rank2 = min(rank, C_in).
 * For dense svd by params this is the largest r with r(m+n) < mn. */
int decomp_break_even_rank(const rs_model *m, int node, decomp_method method, int by);

/* ---- Factorization --------------------------------------------------------------------------- */
typedef struct decomp_opts {
    int max_iter;         /* CP-ALS / HOOI sweep cap (default 200; HOOI uses min(this, 100)) */
    double tol;           /* stop when the fit (1 − relative error) changes by less than tol
                           * between sweeps (default 1e-8, TensorLy's parafac rule) */
    int restarts;         /* CP: extra random restarts after the SVD-initialised run (default 0) */
    uint64_t seed;        /* seed for the restarts' generator (default 20261127) */
    double ridge;         /* CP: λ‖·‖² added to each ALS normal equation, relative to its trace (0) */
    double degenerate_ratio; /* CP: flag degenerate when max rank-one-term norm / ‖K‖ exceeds this (10) */
    double max_sensitivity;  /* CP: bound on Σ_r ‖term_r‖² / ‖K̂‖² (1.5; <= 0: no bound). Terms that
                              * cancel each other make a chain that fine-tuning destroys; above
                              * the bound, a ridge continuation finds a stable solution (decomp_cp.c) */
    rs_progress_fn progress; /* called once per ALS / HOOI sweep; non-zero cancels */
    void *user;
} decomp_opts;

void decomp_opts_default(decomp_opts *o);

#define DECOMP_MAX_FACTORS 4

/* One factor layer: an rs_node-like spec plus its weights. */
typedef struct decomp_factor {
    rs_op op;             /* RS_OP_CONV, RS_OP_GEMM or RS_OP_MATMUL */
    int w_ndim;
    int64_t w_dims[4];    /* Conv (C_out, C_in/group, kh, kw); Gemm (N, K) with trans_b = 1; MatMul (K, N) */
    float *w;             /* owned, row-major in w_dims */
    float *bias;          /* owned; only on the last factor and only if the layer had one */
    int64_t bias_len;
    int64_t in_channels, out_channels; /* Conv channels / dense features */
    int64_t strides[2], pads[4], dilations[2], group; /* Conv (ONNX pads order t, l, b, r) */
    float alpha, beta;    /* Gemm */
    int trans_a, trans_b; /* Gemm (trans_a inherited by the first factor only) */
    int64_t out_h, out_w; /* per-image output spatial size (1, 1 for dense) */
    int64_t params, macs; /* this factor's cost (counting rule of model.h) */
} decomp_factor;

typedef struct decomp_result {
    char *layer;          /* original node name (owned) */
    decomp_method method;
    int rank, rank2;      /* as used (rank2 resolved for tucker2, else 0) */
    int n_factors;
    decomp_factor f[DECOMP_MAX_FACTORS];
    double weight_error;  /* ‖K − K̂‖_F / ‖K‖_F (0 when ‖K‖ = 0) */
    decomp_cost cost;
    /* iterative methods (cp, tucker2); zero / NULL otherwise */
    int iterations;       /* sweeps of the run kept */
    int converged;        /* stopped by tol, not by max_iter */
    int degenerate;       /* CP: diverging rank-one-term norms (see decomp_opts) */
    int restart_used;     /* CP: 0 = SVD init won (or the stabilising continuation), k = k-th restart */
    double sensitivity;   /* CP: Σ_r ‖term_r‖² / ‖K̂‖² of the kept solution (1 = no cancellation) */
    double ridge_used;    /* CP: ridge of the kept solution (opts->ridge, or a continuation step) */
    double *fit;          /* fit = 1 − ‖K − K̂‖/‖K‖ after each sweep of the kept run (owned) */
    int n_fit;
    double seconds;       /* wall time of decomp_layer */
} decomp_result;

/* Factorize node with method at (rank, rank2). opts may be NULL (defaults). On error out holds
 * nothing to free (it is zeroed). Cancelling via opts->progress returns RS_CANCELLED. */
int decomp_layer(const rs_model *m, int node, decomp_method method, int rank, int rank2,
                 const decomp_opts *opts, decomp_result *out, rs_err *e);
void decomp_result_free(decomp_result *r); /* frees the contents; accepts NULL / zeroed */

/* Wall time of decomp_layer on node (best of `reps` runs, seconds) — for `rankscope bench`. */
int decomp_time(const rs_model *m, int node, decomp_method method, int rank, int rank2,
                const decomp_opts *opts, int reps, double *seconds, rs_err *e);

/* Decomposition timing of a whole network, for `rankscope bench` / `rankscope estimate --bench`:
 * every weighted layer × applicable method, best of `reps` runs, at the bench ranks (cp:
 * min(16, max), the blog's rank; the others: half the maximum, at least 1; tucker2 both halves).
 * *rows malloc'ed (free()); *total = sum of the rows' seconds. */
typedef struct decomp_bench_row {
    int node;
    decomp_method method;
    int rank, rank2;
    double seconds;
} decomp_bench_row;

int decomp_bench(const rs_model *m, int reps, decomp_bench_row **rows, int *n, double *total,
                 rs_err *e);

/* Replace node by the factor chain, then re-infer shapes. New nodes are named <layer>_f0 ..
 * <layer>_f{n-1}, their weights <layer>_f0_W, <layer>_f{k}_B, intermediates <layer>_f0_out (a
 * numeric suffix is added if a name is taken). The result must come from this node's layer. */
int decomp_apply(rs_model *m, int node, const decomp_result *r, rs_err *e);

/* Relative output error ‖y − ŷ‖/‖y‖ of the layer alone on a batch: layer_in holds n images of the
 * layer's input activation (per-image size model_value_numel of its input value, e.g. from
 * infer_capture — callers may cache it across ranks). */
int decomp_output_error_on(const rs_model *m, int node, const decomp_result *r,
                           const float *layer_in, int n, double *rel_err, rs_err *e);
/* Same, capturing the layer input from network inputs calib_x (n normalised images). */
int decomp_output_error(const rs_model *m, int node, const decomp_result *r,
                        const float *calib_x, int n, double *rel_err, rs_err *e);

/* ---- Matrices and spectra ----------------------------------------------------------------------- */
typedef enum decomp_view {
    DECOMP_VIEW_DENSE = 0, /* dense W, out × in */
    DECOMP_VIEW_MODE0,     /* conv unfolding C_out × (C_in·kh·kw) */
    DECOMP_VIEW_MODE1,     /* conv unfolding C_in × (C_out·kh·kw) */
    DECOMP_VIEW_SPATIAL,   /* conv reshaping (C_in·kh) × (C_out·kw) */
    DECOMP_VIEW_SLICES,    /* conv: C_out·C_in slices of kh × kw (spectrum only) */
    DECOMP_VIEW_COUNT
} decomp_view;

const char *decomp_view_name(decomp_view v); /* "dense", "mode-0", "mode-1", "spatial", "slices" */

/* The weight as the row-major matrix of the view (not SLICES); *mat malloc'ed (free()). */
int decomp_matrix(const rs_model *m, int node, decomp_view view, double **mat, int *rows,
                  int *cols, rs_err *e);

typedef struct decomp_spectrum {
    decomp_view view;
    int rows, cols;       /* matrix shape (slices: kh, kw) */
    int n;                /* singular values per matrix = min(rows, cols) */
    int n_mats;           /* 1, or C_out·C_in for SLICES (slice (o,i) is matrix o·C_in + i) */
    double *sigma;        /* n_mats × n, each row descending (owned) */
    double *energy;       /* n_mats × n, cumulative Σσ²/total in [0,1] (owned) */
} decomp_spectrum;

int decomp_spectrum_of(const rs_model *m, int node, decomp_view view, decomp_spectrum *out,
                       rs_err *e);
void decomp_spectrum_free(decomp_spectrum *s); /* frees the contents; accepts NULL / zeroed */

/* Views meaningful for node: bit (1u << view). */
unsigned decomp_views_for(const rs_model *m, int node);

#pragma GCC visibility pop
#endif
