/* ops.h — the op registry: everything the engine knows about one op, in one descriptor.
 *
 * Contract:
 *  - ops_get(op) returns the descriptor of RS_OP_NONE < op < RS_OP_COUNT, else NULL. The table
 *    has exactly RS_OP_COUNT entries (checked at compile time), one per rs_op, in enum order.
 *  - name is the ONNX op_type (model_op_name / model_op_from_name read it).
 *  - min_in..max_in are the inputs an ONNX node may give (trailing empty names stripped).
 *  - factorizable: the node's in[1] is a weight the decomposition methods apply to
 *    (model_is_weighted), and macs gives its multiply-accumulates per image.
 *  - shape checks a node against its inputs' shapes and sets its output's (model_infer_shapes
 *    calls it in topological order with in[0] an activation and exactly one output); 0, or -1
 *    with e naming the node.
 *  - forward computes the node over a whole batch for the plain executor (infer_forward_naive /
 *    infer_forward_blas); NULL for ops that only exist while loading (rewritten by passes.h).
 */
#ifndef RANKSCOPE_OPS_H
#define RANKSCOPE_OPS_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stddef.h>
#include <stdint.h>

#include "rankscope/model.h"

/* One node over a batch of images, each input and the output stored image after image. */
typedef struct ops_batch {
    const rs_model *m;
    const rs_node *n;
    int images;
    const float *const *in; /* per node input: its batch (NULL for an initializer or no input) */
    float *out;
    int naive;              /* textbook loops instead of im2col + BLAS */
    float *col;             /* im2col workspace of col_floats floats (BLAS path) */
    size_t col_floats;
} ops_batch;

typedef struct rs_op_desc {
    const char *name;
    int min_in, max_in;
    int factorizable;
    int (*shape)(rs_model *m, rs_node *n, rs_err *e);
    int64_t (*macs)(const rs_model *m, const rs_node *n);
    int (*forward)(const ops_batch *b, rs_err *e);
} rs_op_desc;

const rs_op_desc *ops_get(rs_op op);

#pragma GCC visibility pop
#endif
