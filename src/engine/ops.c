/* ops.c — the op registry table. Adding an op: a value in rs_op (model.h), one row here, its
 * shape rule and kernels in the file of its family (ops_conv.c, ops_dense.c, ops_elem.c,
 * ops_shape.c); CONTRIBUTING.md lists the rest. */
#include "rankscope/ops.h"

#include <assert.h>

#include "export_c_internal.h"
#include "infer_internal.h"
#include "ops_internal.h"
#include "train_internal.h"

/* name, inputs min..max, factorizable, shape, macs, forward, then the optional members by name */
#define OP(nm, lo, hi, fact, shp, mac, fwd, ...)                                                  \
    {.name = nm, .min_in = lo, .max_in = hi, .factorizable = fact, .shape = shp, .macs = mac,      \
     .forward = fwd, __VA_ARGS__}

/* the training passes ops of one family share (grad_elem.c) */
#define TRAIN_UNARY                                                                               \
    .train_compile = grad_compile_unary, .train_forward = grad_fwd_unary, .train_backward = grad_bwd_unary
#define TRAIN_BINARY                                                                              \
    .train_compile = grad_compile_binary, .train_forward = grad_fwd_binary, .train_backward = grad_bwd_binary
#define TRAIN_STRIDED                                                                             \
    .train_compile = grad_compile_strided, .train_forward = grad_fwd_strided,                     \
    .train_backward = grad_bwd_strided

static const rs_op_desc table[] = {
    [RS_OP_NONE] = OP("?", 1, 1, 0, NULL, NULL, NULL, .attrs = NULL),
    [RS_OP_CONV] = OP("Conv", 2, 3, 1, ops_shape_conv, ops_macs_conv, ops_fwd_conv,
        .attrs = ops_attrs_conv, .c_plan = export_c_plan_conv, .compile = infer_compile_conv,
        .train_compile = grad_compile_conv, .train_forward = grad_fwd_conv, .train_backward = grad_bwd_conv),
    [RS_OP_GEMM] = OP("Gemm", 2, 3, 1, ops_shape_gemm, ops_macs_dense, ops_fwd_dense,
        .attrs = ops_attrs_gemm, .c_plan = export_c_plan_dense, .compile = infer_compile_dense,
        .train_compile = grad_compile_dense, .train_forward = grad_fwd_dense, .train_backward = grad_bwd_dense),
    [RS_OP_MATMUL] = OP("MatMul", 2, 2, 1, ops_shape_matmul, ops_macs_dense, ops_fwd_dense,
        .c_plan = export_c_plan_dense, .compile = infer_compile_dense,
        .train_compile = grad_compile_dense, .train_forward = grad_fwd_dense, .train_backward = grad_bwd_dense),
    [RS_OP_ADD] = OP("Add", 2, 2, 0, ops_shape_binary, NULL, ops_fwd_binary,
        .c_plan = export_c_plan_binary, .compile = infer_compile_add, .const_first = 1,
        .train_compile = grad_compile_add, .train_forward = grad_fwd_add, .train_backward = grad_bwd_add, .fold = ops_fold_binary),
    [RS_OP_RELU] = OP("Relu", 1, 1, 0, ops_shape_same, NULL, ops_fwd_relu,
        .c_plan = export_c_plan_relu, .compile = infer_compile_relu,
        .train_compile = grad_compile_same, .train_forward = grad_fwd_relu, .train_backward = grad_bwd_relu),
    [RS_OP_MAXPOOL] = OP("MaxPool", 1, 1, 0, ops_shape_pool, NULL, ops_fwd_maxpool,
        .attrs = ops_attrs_maxpool, .c_plan = export_c_plan_maxpool,
        .compile = infer_compile_maxpool,
        .train_compile = grad_compile_conv, .train_forward = grad_fwd_maxpool, .train_backward = grad_bwd_maxpool),
    [RS_OP_FLATTEN] = OP("Flatten", 1, 1, 0, ops_shape_flatten, NULL, ops_fwd_copy,
        .attrs = ops_attrs_axis, .c_plan = export_c_plan_alias, .compile = infer_compile_alias,
        .train_compile = grad_compile_same),
    [RS_OP_RESHAPE] = OP("Reshape", 2, 2, 0, ops_shape_reshape, NULL, ops_fwd_copy,
        .attrs = ops_attrs_reshape, .c_plan = export_c_plan_alias, .compile = infer_compile_alias,
        .train_compile = grad_compile_same),
    [RS_OP_IDENTITY] = OP("Identity", 1, 1, 0, ops_shape_same, NULL, ops_fwd_copy,
        .attrs = ops_attrs_identity, .c_plan = export_c_plan_alias, .compile = infer_compile_alias,
        .train_compile = grad_compile_same),
    [RS_OP_BATCHNORM] = OP("BatchNormalization", 5, 5, 0, ops_shape_batchnorm, NULL, ops_fwd_batchnorm,
        .attrs = ops_attrs_batchnorm, .c_plan = export_c_plan_batchnorm,
        .compile = infer_compile_batchnorm,
        .train_compile = grad_compile_batchnorm, .train_forward = grad_fwd_batchnorm, .train_backward = grad_bwd_batchnorm),
    [RS_OP_GLOBALAVGPOOL] = OP("GlobalAveragePool", 1, 1, 0, ops_shape_globalavgpool, NULL, ops_fwd_avgpool,
        .c_plan = export_c_plan_window, .compile = infer_compile_avgpool,
        .train_compile = grad_compile_avgpool, .train_forward = grad_fwd_avgpool, .train_backward = grad_bwd_avgpool),
    [RS_OP_AVGPOOL] = OP("AveragePool", 1, 1, 0, ops_shape_pool, NULL, ops_fwd_avgpool,
        .attrs = ops_attrs_avgpool, .c_plan = export_c_plan_window,
        .compile = infer_compile_avgpool,
        .train_compile = grad_compile_avgpool, .train_forward = grad_fwd_avgpool, .train_backward = grad_bwd_avgpool),
    [RS_OP_CLIP] = OP("Clip", 1, 3, 0, ops_shape_clip, NULL, ops_fwd_clip,
        .attrs = ops_attrs_clip, .c_plan = export_c_plan_clip, .const_inputs = ops_inputs_clip,
        .compile = infer_compile_elementwise,
        .train_compile = grad_compile_clip, .train_forward = grad_fwd_clip, .train_backward = grad_bwd_clip),
    [RS_OP_SIGMOID] = OP("Sigmoid", 1, 1, 0, ops_shape_same, NULL, ops_fwd_sigmoid,
        .c_plan = export_c_plan_unary, .compile = infer_compile_elementwise, TRAIN_UNARY),
    [RS_OP_SOFTMAX] = OP("Softmax", 1, 1, 0, ops_shape_softmax, NULL, ops_fwd_softmax,
        .attrs = ops_attrs_axis, .compile = infer_compile_elementwise),
    [RS_OP_PAD] = OP("Pad", 1, 3, 0, ops_shape_pad, NULL, ops_fwd_pad,
        .attrs = ops_attrs_pad, .c_plan = export_c_plan_window, .compile = infer_compile_pad,
        .const_inputs = ops_inputs_pad),
    [RS_OP_CONCAT] = OP("Concat", 1, RS_MAXIO, 0, ops_shape_concat, NULL, ops_fwd_concat,
        .attrs = ops_attrs_axis, .c_plan = export_c_plan_concat, .compile = infer_compile_concat,
        .fold = ops_fold_concat,
        .train_compile = grad_compile_concat, .train_forward = grad_fwd_concat, .train_backward = grad_bwd_concat),
    /* load-time only: passes_simplify rewrites them away or refuses the model */
    [RS_OP_SHAPE] = OP("Shape", 1, 1, 0, NULL, NULL, NULL, .attrs = NULL),
    [RS_OP_GATHER] = OP("Gather", 2, 2, 0, NULL, NULL, NULL, .attrs = ops_attrs_axis, .fold = ops_fold_gather),
    [RS_OP_UNSQUEEZE] = OP("Unsqueeze", 1, 2, 0, NULL, NULL, NULL, .attrs = ops_attrs_unsqueeze, .fold = ops_fold_unsqueeze),
    [RS_OP_LEAKYRELU] = OP("LeakyRelu", 1, 1, 0, ops_shape_same, NULL, ops_fwd_leakyrelu,
        .attrs = ops_attrs_leakyrelu, .c_plan = export_c_plan_leakyrelu, .compile = infer_compile_act, TRAIN_UNARY),
    [RS_OP_HARDSIGMOID] = OP("HardSigmoid", 1, 1, 0, ops_shape_same, NULL, ops_fwd_hardsigmoid,
        .attrs = ops_attrs_hardsigmoid, .c_plan = export_c_plan_unary, .compile = infer_compile_act, TRAIN_UNARY),
    [RS_OP_HARDSWISH] = OP("HardSwish", 1, 1, 0, ops_shape_same, NULL, ops_fwd_hardswish,
        .c_plan = export_c_plan_unary, .compile = infer_compile_act, .min_opset = 14, TRAIN_UNARY),
    [RS_OP_PRELU] = OP("PRelu", 2, 2, 0, ops_shape_prelu, NULL, ops_fwd_prelu,
        .c_plan = export_c_plan_prelu, .compile = infer_compile_act,
        .train_compile = grad_compile_prelu, .train_forward = grad_fwd_binary, .train_backward = grad_bwd_binary),
    [RS_OP_REDUCEMEAN] = OP("ReduceMean", 1, 2, 0, ops_shape_reduce, NULL, ops_fwd_reduce,
        .attrs = ops_attrs_reducemean, .c_plan = export_c_plan_reduce,
        .compile = infer_compile_reducemean,
        .train_compile = grad_compile_reducemean),
    [RS_OP_REDUCESUM] = OP("ReduceSum", 1, 2, 0, ops_shape_reduce, NULL, ops_fwd_reduce,
        .attrs = ops_attrs_reducesum, .c_plan = export_c_plan_reduce,
        .const_inputs = ops_inputs_reducesum),
    [RS_OP_SUB] = OP("Sub", 2, 2, 0, ops_shape_binary, NULL, ops_fwd_binary,
        .c_plan = export_c_plan_binary, .const_first = 1, .fold = ops_fold_binary, TRAIN_BINARY),
    [RS_OP_MUL] = OP("Mul", 2, 2, 0, ops_shape_binary, NULL, ops_fwd_binary,
        .c_plan = export_c_plan_binary, .const_first = 1, .fold = ops_fold_binary, TRAIN_BINARY),
    [RS_OP_DIV] = OP("Div", 2, 2, 0, ops_shape_binary, NULL, ops_fwd_binary,
        .c_plan = export_c_plan_binary, .const_first = 1, .fold = ops_fold_binary, TRAIN_BINARY),
    [RS_OP_CAST] = OP("Cast", 1, 1, 0, ops_shape_cast, NULL, ops_fwd_copy,
        .attrs = ops_attrs_cast, .c_plan = export_c_plan_alias, .compile = infer_compile_alias,
        .train_compile = grad_compile_same, .fold = ops_fold_cast),
    [RS_OP_TRANSPOSE] = OP("Transpose", 1, 1, 0, ops_shape_transpose, NULL, ops_fwd_strided,
        .attrs = ops_attrs_transpose, .c_plan = export_c_plan_strided, TRAIN_STRIDED),
    [RS_OP_SLICE] = OP("Slice", 3, 5, 0, ops_shape_slice, NULL, ops_fwd_strided,
        .c_plan = export_c_plan_strided, .fold = ops_fold_slice, TRAIN_STRIDED),
    [RS_OP_EXPAND] = OP("Expand", 2, 2, 0, ops_shape_expand, NULL, ops_fwd_strided,
        .c_plan = export_c_plan_strided, TRAIN_STRIDED),
    [RS_OP_SPLIT] = OP("Split", 1, 2, 0, NULL, NULL, NULL,
        .attrs = ops_attrs_split), /* load-time only, like Shape */
};

static_assert(sizeof table / sizeof table[0] == RS_OP_COUNT, "one registry row per rs_op");

const rs_op_desc *ops_get(rs_op op)
{
    return op > RS_OP_NONE && op < RS_OP_COUNT && table[op].name ? &table[op] : NULL;
}

int ops_int_vector(const rs_model *m, int v)
{
    const rs_value *c = v >= 0 && v < m->n_values ? &m->values[v] : NULL;
    return c && c->is_const && c->dtype == RS_DT_INT64 && c->i64 && c->ndim <= 1 &&
           model_value_numel(c) <= OPS_FOLD_MAX;
}

int ops_float_const(const rs_model *m, int v)
{
    return v >= 0 && v < m->n_values && m->values[v].is_const && m->values[v].dtype == RS_DT_FLOAT &&
           m->values[v].f;
}

void ops_set_shape(rs_value *v, int ndim, const int64_t *dims)
{
    v->ndim = ndim;
    for (int i = 0; i < ndim; ++i)
        v->dims[i] = dims[i];
}

size_t ops_out_total(const ops_batch *b)
{
    return (size_t)model_value_numel(&b->m->values[b->n->out[0]]) * (size_t)b->images;
}

ops_io ops_io_of(const ops_batch *b)
{
    const rs_model *m = b->m;
    const rs_node *n = b->n;
    ops_io io = {.n = n, .x = &m->values[n->in[0]], .y = &m->values[n->out[0]]};
    io.xn = model_value_numel(io.x);
    io.yn = model_value_numel(io.y);
    if (io.x->ndim == 4)
        io.C = (int)io.x->dims[1], io.H = (int)io.x->dims[2], io.W = (int)io.x->dims[3];
    if (n->n_in > 1 && ops_float_const(m, n->in[1]))
        io.w = &m->values[n->in[1]];
    return io;
}
