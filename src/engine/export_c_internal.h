/* export_c_internal.h — what the C exporter's files share (engine-internal): symmetric
 * per-channel int8 quantization (export_c.c, export_c_quant.c, export_c_dequantize) and the helper
 * functions' C text (export_c_helpers.c).
 *
 * Contract: export_c_helpers[h] is the C99 text of helper h (H_*), printed once into model.c
 * when a node uses it; H_UNARY calls expf (model.c then includes <math.h>). export_c_weight_layouts fills layout[n_values] with the QL_* layout of every float
 * initializer used only as a Conv / Gemm / MatMul weight (QL_NONE / QL_MIXED otherwise);
 * export_c_quantize writes q[numel] and scale[nch] for one such weight.
 */
#ifndef RANKSCOPE_EXPORT_C_INTERNAL_H
#define RANKSCOPE_EXPORT_C_INTERNAL_H

#include <stdint.h>

#include "rankscope/model.h"

/* How a weight's output channels are laid out: ROWS = channel-major (Conv W (M,...), Gemm B with
 * transB (N,K)); COLS = channel is the last index (Gemm B (K,N), MatMul B). */
enum { QL_NONE = 0, QL_ROWS = 1, QL_COLS = 2, QL_MIXED = -1 };

void export_c_weight_layouts(const rs_model *m, int *layout);
void export_c_quant_geometry(const rs_value *w, int layout, int64_t *nch, int64_t *inner);
void export_c_quantize(const rs_value *w, int layout, signed char *q, float *scale);
/* 0, or -1 naming the initializer and element that is not finite. */
int export_c_finite_values(const rs_value *v, rs_err *e);

/* Largest element count of one tensor in the generated code: flat indices are `long`, which is
 * 32 bits on the targets this is for. */
#define EXPORT_MAX_NUMEL ((int64_t)INT32_MAX)

/* ---- the first pass (export_c_plan.c): what each node needs ---------------------------------- */

enum { K_ALIAS, K_CONV, K_DENSE, K_RELU, K_MAXPOOL, K_ADDC, K_ADD2,
       K_CLIP, K_AFFINE, K_AVGPOOL, K_PAD, K_LEAKY, K_REDUCE, K_BINARY, K_UNARY, K_CONCAT,
       K_STRIDED };
/* Clip, kept BatchNorm, (Global)AveragePool, Pad, LeakyRelu, ReduceMean/ReduceSum,
 * Add/Sub/Mul/Div/PRelu with a broadcast second operand (constant or activation), and
 * Sigmoid/HardSigmoid/HardSwish, a two-input channel Concat, Transpose/Slice/Expand as one
 * strided read */

typedef struct export_c_plan {
    int kind;
    int x, x2;          /* activation inputs (x2: ADD2, BINARY's broadcast activation) */
    int w, b;           /* initializer value indices (-1 = none) */
    int inplace;        /* element-wise op writing over its input */
    int64_t g[16];      /* geometry, per kind (see emit_node) */
    float alpha, beta;
    int bcast_full;     /* ADDC/BINARY: constant materialised to the input's full shape */
    int nd;             /* STRIDED: output rank per image; g[0..nd-1] extents, g[8..] strides,
                           g[15] offset */
} export_c_plan;

/* v is a tensor size the generated code can index; v is an activation (not an initializer). */
int export_c_fits(int64_t v);
int export_c_is_act(const rs_model *m, int v);
/* The planners the registry rows name (rs_op_desc.c_plan). */
int export_c_plan_alias(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_batchnorm(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_binary(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_clip(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_concat(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_conv(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_dense(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_leakyrelu(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_maxpool(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_prelu(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_reduce(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_relu(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_strided(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_unary(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);
int export_c_plan_window(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e);

enum { H_CONV, H_CONVQ, H_DENSE, H_DENSEQ, H_RELU, H_POOL, H_ADDC, H_ADD2, H_COPY,
       H_CLIP, H_AFFINE, H_AVGPOOL, H_PAD, H_LEAKY, H_REDUCE, H_BINARY, H_UNARY, H_STRIDED,
       H_COUNT };
extern const char *const export_c_helpers[H_COUNT];

#endif
