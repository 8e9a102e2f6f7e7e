/* model.h — the in-memory network: a DAG of ONNX-style nodes over named values.
 *
 * Contract:
 *  - A model owns everything it points to (names, initializer data); model_free releases all.
 *  - Values are tensors addressed by index. Initializers (is_const) carry data in `f` (float32)
 *    or `i64` (int64, e.g. a Reshape target); activations carry only a shape.
 *  - Activation shapes are NCHW (or N×F) with dims[0] == -1 standing for the batch; they are
 *    filled by model_infer_shapes from the graph input's per-image shape.
 *  - nodes[] is kept in topological order (the reader sorts; edits preserve it). Every node's
 *    attributes are parsed into the fixed fields below with ONNX defaults already applied.
 *  - Weights follow ONNX layouts: Conv W is (C_out, C_in/group, kh, kw); Gemm B is (K, N) or,
 *    with trans_b, (N, K) — PyTorch's Linear exports (out, in) with trans_b = 1.
 */
#ifndef RANKSCOPE_MODEL_H
#define RANKSCOPE_MODEL_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/common.h"

#define RS_MAXDIM 8
#define RS_MAXIO 8

typedef enum rs_op {
    RS_OP_NONE = 0,
    RS_OP_CONV,
    RS_OP_GEMM,
    RS_OP_MATMUL,
    RS_OP_ADD,
    RS_OP_RELU,
    RS_OP_MAXPOOL,
    RS_OP_FLATTEN,
    RS_OP_RESHAPE,
    RS_OP_IDENTITY,
    /* appended in this order so that existing values keep their numbers */
    RS_OP_BATCHNORM,     /* BatchNormalization kept as a per-channel affine (inputs x, scale,
                            B, mean, var; attribute epsilon) when it cannot fold into a Conv */
    RS_OP_GLOBALAVGPOOL, /* (N,C,H,W) -> (N,C,1,1) */
    RS_OP_AVGPOOL,       /* kernel/strides/pads/ceil_mode + count_include_pad */
    RS_OP_CLIP,          /* single input; bounds in clip_min / clip_max (ReLU6 = 0, 6) */
    RS_OP_SIGMOID,
    RS_OP_SOFTMAX,       /* over the features of a 2-D (N,F) input; axis 1 or -1 */
    RS_OP_PAD,           /* single input; constant-zero spatial padding in pads[] */
    RS_OP_CONCAT,        /* activations along `axis` (the channel axis 1) */
    RS_OP_SHAPE,         /* Shape / Gather / Unsqueeze: only while loading, for the pattern */
    RS_OP_GATHER,        /* torch's x.view(x.size(0), -1) exports; the reader rewrites it to */
    RS_OP_UNSQUEEZE,     /* a Flatten and no loaded model contains these ops */
    RS_OP_LEAKYRELU,     /* slope alpha (0.01) */
    RS_OP_HARDSIGMOID,   /* max(0, min(1, alpha·x + beta)), alpha 0.2, beta 0.5 */
    RS_OP_HARDSWISH,     /* x · max(0, min(1, x/6 + 1/2)) */
    RS_OP_PRELU,         /* inputs x, slope (a float initializer broadcasting to x) */
    RS_OP_REDUCEMEAN,    /* over axes[0..n_axes-1] (never the batch), keepdims; opset 18's and */
    RS_OP_REDUCESUM,     /* ReduceSum's axes input is folded into the fields at load */
    RS_OP_SUB,           /* Sub / Mul / Div (and Add): numpy broadcasting between an activation */
    RS_OP_MUL,           /* and a float constant without a batch axis, or between two */
    RS_OP_DIV,           /* activations of one rank (Add: of one shape) */
    RS_OP_CAST,          /* to float: a copy (int64 casts exist only in shape computations) */
    RS_OP_TRANSPOSE,     /* perm in axes[] (perm[0] = 0: the batch stays first) */
    RS_OP_SLICE,         /* inputs x, starts, ends[, axes[, steps]] (int64 constants) */
    RS_OP_EXPAND,        /* inputs x, shape (an int64 constant; its batch entry 1) */
    RS_OP_SPLIT,         /* only while loading: becomes one Slice per output (axis; sizes in axes[]) */
    RS_OP_COUNT
} rs_op;

/* ONNX TensorProto data types the engine stores. */
enum { RS_DT_FLOAT = 1, RS_DT_INT64 = 7 };

typedef struct rs_value {
    char *name;
    int ndim;
    int64_t dims[RS_MAXDIM]; /* -1 = batch (symbolic) */
    int is_const;            /* initializer */
    int dtype;               /* RS_DT_FLOAT or RS_DT_INT64 */
    float *f;                /* float data when is_const && dtype == RS_DT_FLOAT (owned) */
    int64_t *i64;            /* int64 data when is_const && dtype == RS_DT_INT64 (owned) */
} rs_value;

typedef struct rs_node {
    char *name;
    rs_op op;
    int n_in, in[RS_MAXIO];   /* value indices; -1 for an omitted optional input */
    int n_out, out[RS_MAXIO];
    /* Conv / MaxPool */
    int64_t kernel[2];    /* kh, kw (Conv: from W when the attribute is absent) */
    int64_t strides[2];   /* sh, sw */
    int64_t pads[4];      /* top, left, bottom, right (ONNX order: h_begin, w_begin, h_end, w_end) */
    int64_t dilations[2]; /* dh, dw */
    int64_t group;
    int ceil_mode;
    /* Gemm; LeakyRelu (alpha); HardSigmoid (alpha, beta) */
    float alpha, beta;
    int trans_a, trans_b;
    /* Flatten / Softmax / Concat / Gather / Split (default 0) */
    int64_t axis;
    /* Clip / BatchNormalization / AveragePool (defaults from model_node_defaults) */
    float clip_min, clip_max; /* Clip: -inf / +inf when absent */
    float epsilon;            /* BatchNormalization: 1e-5 */
    int count_include_pad;    /* AveragePool: 0 */
    /* ReduceMean / ReduceSum: the reduced axes as written (shape inference checks them), keepdims (1);
     * Transpose: perm; Split (while loading): the part sizes */
    int n_axes;
    int64_t axes[RS_MAXDIM];
    int keepdims;
    int to; /* Cast: the target data type (RS_DT_FLOAT, or RS_DT_INT64 in a shape computation) */
} rs_node;

typedef struct rs_model {
    char *graph_name;
    char *producer;
    int64_t opset;
    int n_values, cap_values;
    rs_value *values;
    int n_nodes, cap_nodes;
    rs_node *nodes;
    int input;  /* value index of the single graph input (N,C,H,W) */
    int output; /* value index of the single graph output (N,classes) */
} rs_model;

rs_model *model_alloc(void);
void model_free(rs_model *m); /* accepts NULL */
rs_model *model_clone(const rs_model *m); /* deep copy; NULL on out-of-memory */

const char *model_op_name(rs_op op); /* "Conv", "Gemm", ... */
rs_op model_op_from_name(const char *onnx_op_type); /* RS_OP_NONE if unsupported */

/* Append a value / node; return its index or -1 (out of memory, duplicate value name). */
int model_add_value(rs_model *m, const char *name, rs_err *e);
int model_add_node(rs_model *m, const char *name, rs_op op, rs_err *e);
/* A node with ONNX default attributes (strides 1, dilations 1, group 1, alpha = beta = 1 ...). */
void model_node_defaults(rs_node *n);
/* Graph building. model_add_const appends a float initializer of shape dims[0..ndim-1] holding
 * a copy of data (zeros when data is NULL). model_add_op appends node `name` (op, default
 * attributes) reading in[0..n_in-1] (-1: an omitted optional input) and writing a new activation
 * out_name (NULL: "<name>_out"); its output is m->nodes[index].out[0]. Both return the new
 * index, or -1 with e set (out of memory, duplicate value name, n_in out of range). */
int model_add_const(rs_model *m, const char *name, int ndim, const int64_t *dims, const float *data,
                    rs_err *e);
int model_add_op(rs_model *m, const char *name, rs_op op, const int *in, int n_in,
                 const char *out_name, rs_err *e);

int model_find_value(const rs_model *m, const char *name); /* -1 if absent */
int model_find_node(const rs_model *m, const char *name);  /* -1 if absent */
/* A layer by the name a user knows it by: the exact node name, else a PyTorch export's
 * "/NAME/Op" node name, else the node whose weight initializer is "NAME.weight", else the one
 * weighted node having NAME as a "/"-delimited path component. -1 if absent or ambiguous. */
int model_find_layer(const rs_model *m, const char *name);
/* The short name of node i for display, one model_find_layer maps back to node: the weight's
 * "NAME.weight" prefix ("stages.0.conv1"), else "conv2" for "/conv2/Conv", else the node name. */
const char *model_layer_name(const rs_model *m, int node, char *buf, size_t len);
/* Index of the node producing value v, or -1 (graph input / initializer). */
int model_producer(const rs_model *m, int v);

/* Element count of a value's per-image (dims[0] == -1 counts as 1) or constant shape. */
int64_t model_value_numel(const rs_value *v);

/* Checks the graph (dangling inputs, cycles, arity, weight shapes) and fills every activation
 * shape from the input's. Errors name the node, op and attribute at fault. */
int model_infer_shapes(rs_model *m, rs_err *e);

/* Replace node `node` by the chain `repl[0..n-1]` (already added to m->nodes? no: passed in,
 * copied; their value indices must exist). The first replacement reads the node's input, the last
 * writes its output. Keeps topological order. Initializers no longer used are dropped. */
int model_replace_node(rs_model *m, int node, const rs_node *repl, int n, rs_err *e);

/* Drop values no node references (except graph input/output); renumbers indices. */
void model_gc(rs_model *m);

/* ---- Layer table -------------------------------------------------------------------------
 * Counting rule (the one place it is stated): params = elements of every float initializer a
 * node reads (weights and biases). MACs per image = multiply-accumulates of the node for one
 * input image: Conv C_out·H_out·W_out·(C_in/group)·kh·kw; Gemm/MatMul M_per_image·K·N (= in·out
 * for a dense layer). Bias adds, ReLU, pooling and reshapes count 0 MACs; so do BatchNormalization,
 * Clip, Sigmoid, Softmax, Pad and Concat (a kept BatchNormalization's 4 vectors count as params).
 */
typedef struct rs_layer_info {
    int node;              /* index into m->nodes */
    const char *name;      /* node name (borrowed from the model) */
    rs_op op;
    int in_ndim, out_ndim;
    int64_t in_shape[4], out_shape[4];  /* per image, without the batch dim */
    int w_ndim;
    int64_t w_shape[4];    /* 0 dims when the node has no weight */
    int64_t params;
    int64_t macs;
} rs_layer_info;

/* One row per node (all nodes, weighted or not). *out is malloc'ed; free() it. */
int model_layer_table(const rs_model *m, rs_layer_info **out, int *n, rs_err *e);
/* Totals over all nodes. */
void model_totals(const rs_model *m, int64_t *params, int64_t *macs);
/* Weighted layers (Conv, Gemm, MatMul with constant weight): the factorizable kind. */
int model_is_weighted(const rs_model *m, int node);

#pragma GCC visibility pop
#endif
