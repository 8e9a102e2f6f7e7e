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

enum { H_CONV, H_CONVQ, H_DENSE, H_DENSEQ, H_RELU, H_POOL, H_ADDC, H_ADD2, H_COPY,
       H_CLIP, H_AFFINE, H_AVGPOOL, H_PAD, H_LEAKY, H_REDUCE, H_BINARY, H_UNARY, H_STRIDED,
       H_COUNT };
extern const char *const export_c_helpers[H_COUNT];

#endif
