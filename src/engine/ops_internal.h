/* ops_internal.h — what the op family files (ops_conv.c, ops_dense.c, ops_elem.c, ops_shape.c)
 * share and export to the registry table in ops.c (engine-internal).
 *
 * Contract: every ops_shape_* / ops_fwd_* / ops_macs_* follows the rs_op_desc member it fills
 * (rankscope/ops.h). OPS_NODE_FAIL returns -1 from the calling function with
 * "node "<name>" (<Op>): <why>" in e.
 */
#ifndef RANKSCOPE_OPS_INTERNAL_H
#define RANKSCOPE_OPS_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

#include "rankscope/ops.h"

#define OPS_NODE_FAIL(e, n, ...)                                                               \
    do {                                                                                       \
        char why_[RS_ERR_LEN];                                                                 \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                             \
        return rs_fail(e, "node \"%s\" (%s): %s", (n)->name, model_op_name((n)->op), why_);   \
    } while (0)

/* x: the node's first input (an activation), y: its output. */
#define OPS_SHAPE_ARGS(m, n)                                                                   \
    const rs_value *x = &(m)->values[(n)->in[0]];                                              \
    rs_value *y = &(m)->values[(n)->out[0]]

/* The batch size inside a shape vector folded at load (passes.c), until its reader gets the
 * ONNX spelling (Reshape 0, Expand 1): shape rules accept it as their leading entry. */
#define OPS_SHAPE_BATCH INT64_MIN

/* Rows of an op's attribute schema (rs_attr, rankscope/ops.h); OPS_ATTR_END closes a table. */
#define OPS_ATTR(nm, kind, ftype, fld, flags, count, lo, hi, text)                            \
    {nm, kind, ftype, flags, count, offsetof(rs_node, fld), lo, hi, text}
#define OPS_ATTR_I64(nm, fld, lo, hi) OPS_ATTR(nm, RS_ATTR_INT, RS_FIELD_I64, fld, 0, 0, lo, hi, NULL)
#define OPS_ATTR_INT(nm, fld, lo, hi) OPS_ATTR(nm, RS_ATTR_INT, RS_FIELD_INT, fld, 0, 0, lo, hi, NULL)
#define OPS_ATTR_FLOAT(nm, fld, flags) OPS_ATTR(nm, RS_ATTR_FLOAT, RS_FIELD_FLOAT, fld, flags, 0, 0, 0, NULL)
#define OPS_ATTR_INTS(nm, fld, count, lo, hi)                                                 \
    OPS_ATTR(nm, RS_ATTR_INTS, RS_FIELD_I64, fld, 0, count, lo, hi, NULL)
/* checked on reading, not kept: an int in lo..hi (written as lo unless flags say read-only) */
#define OPS_ATTR_CHECK(nm, lo, hi, flags) OPS_ATTR(nm, RS_ATTR_INT, RS_FIELD_NONE, name, flags, 0, lo, hi, NULL)
#define OPS_ATTR_AXES(nm, flags) OPS_ATTR(nm, RS_ATTR_AXES, RS_FIELD_NONE, axes, flags, 0, 0, 0, NULL)
#define OPS_ATTR_END {NULL, 0, 0, 0, 0, 0, 0, 0, NULL}

extern const rs_attr ops_attrs_conv[], ops_attrs_maxpool[], ops_attrs_avgpool[], ops_attrs_pad[],
    ops_attrs_reducemean[], ops_attrs_reducesum[];
extern const rs_attr ops_attrs_gemm[];
extern const rs_attr ops_attrs_batchnorm[], ops_attrs_clip[], ops_attrs_axis[], ops_attrs_leakyrelu[],
    ops_attrs_hardsigmoid[];
extern const rs_attr ops_attrs_reshape[], ops_attrs_identity[], ops_attrs_unsqueeze[], ops_attrs_cast[],
    ops_attrs_split[], ops_attrs_transpose[];

/* The next coordinate of an odometer over extents dims[0..r-1] (the last fastest), moving the
 * offset *i0 by the strides s0 (and *i1 by s1 when s1 is not NULL). */
static inline void ops_next_coord(int r, const int64_t *dims, int64_t *coord, const int64_t *s0,
                                  int64_t *i0, const int64_t *s1, int64_t *i1)
{
    for (int j = r - 1; j >= 0; --j) {
        *i0 += s0[j];
        if (s1)
            *i1 += s1[j];
        if (++coord[j] < dims[j])
            return;
        *i0 -= s0[j] * coord[j];
        if (s1)
            *i1 -= s1[j] * coord[j];
        coord[j] = 0;
    }
}

int ops_float_const(const rs_model *m, int v);
/* Longest shape vector folded at load (a shape has at most RS_MAXDIM entries); v is an int64
 * constant of at most that many entries and rank 0 or 1. */
#define OPS_FOLD_MAX 64
int ops_int_vector(const rs_model *m, int v);
int ops_fold_gather(const rs_model *m, const rs_node *n, int64_t *out, int *scalar);
int ops_fold_unsqueeze(const rs_model *m, const rs_node *n, int64_t *out, int *scalar);
int ops_fold_concat(const rs_model *m, const rs_node *n, int64_t *out, int *scalar);
int ops_fold_binary(const rs_model *m, const rs_node *n, int64_t *out, int *scalar);
int ops_fold_cast(const rs_model *m, const rs_node *n, int64_t *out, int *scalar);
int ops_fold_slice(const rs_model *m, const rs_node *n, int64_t *out, int *scalar);
void ops_set_shape(rs_value *v, int ndim, const int64_t *dims);
/* Output floats of the node over the whole batch. */
size_t ops_out_total(const ops_batch *b);

/* What a batch forward reads before its loop: the node's first input x and output y, their
 * floats per image, x's C, H, W when it is 4-D (else 0), and in[1] when it is a float
 * initializer (a weight, a slope), else NULL. */
typedef struct ops_io {
    const rs_node *n;
    const rs_value *x, *y, *w;
    int64_t xn, yn;
    int C, H, W;
} ops_io;
ops_io ops_io_of(const ops_batch *b);

int ops_shape_conv(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_pool(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_globalavgpool(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_pad(rs_model *m, rs_node *n, rs_err *e);
int64_t ops_macs_conv(const rs_model *m, const rs_node *n);
int ops_fwd_conv(const ops_batch *b, rs_err *e);
int ops_fwd_maxpool(const ops_batch *b, rs_err *e);
int ops_fwd_avgpool(const ops_batch *b, rs_err *e);
int ops_fwd_pad(const ops_batch *b, rs_err *e);
int ops_shape_reduce(rs_model *m, rs_node *n, rs_err *e);
int ops_fwd_reduce(const ops_batch *b, rs_err *e);
int ops_inputs_pad(const rs_node *n, rs_const_input *out);
int ops_inputs_reducesum(const rs_node *n, rs_const_input *out);

int ops_shape_gemm(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_matmul(rs_model *m, rs_node *n, rs_err *e);
int64_t ops_macs_dense(const rs_model *m, const rs_node *n);
int ops_fwd_dense(const ops_batch *b, rs_err *e);

int ops_shape_same(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_clip(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_softmax(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_batchnorm(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_concat(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_binary(rs_model *m, rs_node *n, rs_err *e);
int ops_fwd_binary(const ops_batch *b, rs_err *e);
/* Add/Sub/Mul/Div's per-image output rank r and, per input, the step in it of each output
 * coordinate (0 along a broadcast axis) and per image (0 for a constant). */
void ops_binary_strides(const rs_model *m, const rs_node *n, int *r, int64_t stride[2][RS_MAXDIM],
                        int64_t step[2]);
int ops_fwd_relu(const ops_batch *b, rs_err *e);
int ops_fwd_clip(const ops_batch *b, rs_err *e);
int ops_inputs_clip(const rs_node *n, rs_const_input *out);
int ops_fwd_sigmoid(const ops_batch *b, rs_err *e);
int ops_fwd_softmax(const ops_batch *b, rs_err *e);
int ops_fwd_batchnorm(const ops_batch *b, rs_err *e);
int ops_fwd_concat(const ops_batch *b, rs_err *e);
int ops_shape_prelu(rs_model *m, rs_node *n, rs_err *e);
int ops_fwd_leakyrelu(const ops_batch *b, rs_err *e);
int ops_fwd_hardsigmoid(const ops_batch *b, rs_err *e);
int ops_fwd_hardswish(const ops_batch *b, rs_err *e);
int ops_fwd_prelu(const ops_batch *b, rs_err *e);

int ops_shape_flatten(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_reshape(rs_model *m, rs_node *n, rs_err *e);
int ops_fwd_copy(const ops_batch *b, rs_err *e);
int ops_shape_cast(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_transpose(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_slice(rs_model *m, rs_node *n, rs_err *e);
int ops_shape_expand(rs_model *m, rs_node *n, rs_err *e);
/* Transpose / Slice / Expand as one strided read of an image (shape inference done):
 * y[i] = x[off + Σ_k coord_k(i)·stride[k]] over the output's per-image dims[0..nd-1]. */
int ops_strided_plan(const rs_model *m, const rs_node *n, int *nd, int64_t *dims, int64_t *stride,
                     int64_t *off);
int ops_fwd_strided(const ops_batch *b, rs_err *e);

#endif
