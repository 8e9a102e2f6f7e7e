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
 *  - attrs lists the op's ONNX attributes (ended by a row with name NULL; NULL: none). The reader
 *    (onnx_read.c) accepts exactly these, checks each by its kind and range and stores it in the
 *    rs_node field at offset; the writer (onnx_write.c) writes the rows not marked
 *    RS_ATTR_READ_ONLY, in table order, so a row's position is part of the written bytes.
 *  - c_plan plans the node for the C exporter (export_c.h); NULL: the exporter refuses the op.
 *  - compile builds the node's step of the compiled executor (infer.h); NULL: the generic step
 *    that runs forward; an op with neither is refused by infer_compile.
 *  - const_first: the first input may be a constant (Add, Sub, Mul, Div).
 *  - train_compile records the node on the training tape (NULL: training refuses the op);
 *    train_forward / train_backward run it on the tape's op (NULL: a copy / dx += dy).
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

/* How one ONNX attribute is read, checked and written. */
typedef enum rs_attr_kind {
    RS_ATTR_INT,       /* an int in lo..hi */
    RS_ATTR_FLOAT,     /* a finite float */
    RS_ATTR_INTS,      /* exactly count ints, each in lo..hi (int64_t[count] field) */
    RS_ATTR_KERNEL,    /* kernel_shape: as INTS; Conv writes it from its weight when unset */
    RS_ATTR_AXES,      /* at most RS_MAXDIM axes in -RS_MAXDIM..RS_MAXDIM-1 into axes / n_axes */
    RS_ATTR_AUTO_PAD,  /* NOTSET or VALID (VALID with non-zero pads is refused); written NOTSET */
    RS_ATTR_STRING,    /* must be the string text; written as text */
    RS_ATTR_PADS8,     /* opset < 11 Pad: N,C,H,W begins then ends, spatial only, into pads[4] */
    RS_ATTR_ZERO,      /* a float that must be 0 (opset < 11 Pad value) */
    RS_ATTR_DTYPE,     /* Cast's to: RS_DT_FLOAT, or RS_DT_INT64 in a shape computation */
    RS_ATTR_N_OUTPUTS, /* an int that must equal the node's output count */
    RS_ATTR_SIZES,     /* at most RS_MAXIO sizes in lo..hi into axes / n_axes */
    RS_ATTR_AXIS0,     /* a single axis 0 or -1 (opset < 13 Unsqueeze of a 0-D index) */
    RS_ATTR_ANY,       /* accepted and ignored, any type */
} rs_attr_kind;

/* Where the value goes in rs_node. */
typedef enum rs_attr_field {
    RS_FIELD_NONE, /* checked, not kept; a written INT is lo */
    RS_FIELD_I64,
    RS_FIELD_INT,
    RS_FIELD_FLOAT,
} rs_attr_field;

enum {
    RS_ATTR_READ_ONLY = 1, /* accepted on reading, never written */
    RS_ATTR_REQUIRED = 2,  /* a node without it is refused ("missing attribute") */
    RS_ATTR_DROPOUT = 4,   /* only on a node whose op_type is Dropout (loaded as Identity) */
};

typedef struct rs_attr {
    const char *name;
    unsigned char kind, field, flags, count;
    size_t offset; /* offsetof(rs_node, ...) */
    int64_t lo, hi;
    const char *text;
} rs_attr;

/* Attribute bounds the reader enforces: spatial extents, Conv groups, Split part sizes. */
#define RS_ATTR_MAX_SPATIAL 1024
#define RS_ATTR_MAX_GROUP 65536
#define RS_ATTR_MAX_SPLIT (1 << 24)

/* An input ONNX (opset 13) takes where the engine keeps an attribute of the node (Clip's bounds,
 * Pad's pads, ReduceSum's axes): the writer adds it as an initializer "<node name><suffix>"
 * (the lower-case op name for an unnamed node), or, with dtype 0, leaves the input out. */
typedef struct rs_const_input {
    const char *suffix;
    int dtype;      /* RS_DT_FLOAT (the scalar f) or RS_DT_INT64 (count values of i64); 0: none */
    int ndim;       /* 0: a scalar, 1: a vector of count */
    int count;
    float f;
    int64_t i64[RS_MAXDIM];
} rs_const_input;
#define RS_CONST_INPUTS 2

struct export_c_plan;
struct infer_ctx;
struct infer_build;
struct infer_step;
struct tn_node;
struct tn_pass;

typedef struct rs_op_desc {
    const char *name;
    int min_in, max_in;
    int factorizable;
    int (*shape)(rs_model *m, rs_node *n, rs_err *e);
    int64_t (*macs)(const rs_model *m, const rs_node *n);
    int (*forward)(const ops_batch *b, rs_err *e);
    const rs_attr *attrs;
    /* C export (export_c_plan.c): what the node needs in the generated code; NULL: not exported */
    int (*c_plan)(const rs_model *m, const rs_node *n, struct export_c_plan *p, rs_err *e);
    /* inference (infer_compile.c): a specialised step; NULL: a generic step over forward */
    int (*compile)(struct infer_ctx *c, struct infer_build *b, int ni, int vin,
                   struct infer_step *s, rs_err *e);
    int const_first; /* the first input may be a constant: the engines run on the second */
    /* training (grad.c): the node's tape entry; its forward and backward over a batch slice */
    int (*train_compile)(const rs_model *m, const rs_node *n, struct tn_node *t, rs_err *e);
    void (*train_forward)(const struct tn_pass *p);
    void (*train_backward)(const struct tn_pass *p);
    /* a shape computation folded at load (passes.h): the node over int64 constant inputs (rank
     * 0 or 1) into out, its length returned (*scalar: the result is 0-D), or -1 */
    int (*fold)(const rs_model *m, const rs_node *n, int64_t *out, int *scalar);
    /* ONNX writer: the inputs after the first that opset 13 wants as constants (at most
     * RS_CONST_INPUTS), how many returned; NULL: the node's own inputs are written */
    int (*const_inputs)(const rs_node *n, rs_const_input *out);
    int min_opset; /* the first ONNX opset with the op, when later than the writer's 13 */
} rs_op_desc;

const rs_op_desc *ops_get(rs_op op);

#pragma GCC visibility pop
#endif
