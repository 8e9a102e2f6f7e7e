/* ops.c — the op registry table. Adding an op: a value in rs_op (model.h), one row here, its
 * shape rule and kernels in the file of its family (ops_conv.c, ops_dense.c, ops_elem.c,
 * ops_shape.c); CONTRIBUTING.md lists the rest. */
#include "rankscope/ops.h"

#include <assert.h>

#include "export_c_internal.h"
#include "infer_internal.h"
#include "ops_internal.h"

static const rs_op_desc table[] = {
    /* name, inputs min..max, factorizable, shape, macs, forward, attrs, c_plan, compile, const_first */
    [RS_OP_NONE] = {"?", 1, 1, 0, NULL, NULL, NULL},
    [RS_OP_CONV] = {"Conv", 2, 3, 1, ops_shape_conv, ops_macs_conv, ops_fwd_conv, ops_attrs_conv, export_c_plan_conv, infer_compile_conv},
    [RS_OP_GEMM] = {"Gemm", 2, 3, 1, ops_shape_gemm, ops_macs_dense, ops_fwd_dense, ops_attrs_gemm, export_c_plan_dense, infer_compile_dense},
    [RS_OP_MATMUL] = {"MatMul", 2, 2, 1, ops_shape_matmul, ops_macs_dense, ops_fwd_dense, NULL, export_c_plan_dense, infer_compile_dense},
    [RS_OP_ADD] = {"Add", 2, 2, 0, ops_shape_binary, NULL, ops_fwd_binary, NULL, export_c_plan_binary, infer_compile_add, 1},
    [RS_OP_RELU] = {"Relu", 1, 1, 0, ops_shape_same, NULL, ops_fwd_relu, NULL, export_c_plan_relu, infer_compile_relu},
    [RS_OP_MAXPOOL] = {"MaxPool", 1, 1, 0, ops_shape_pool, NULL, ops_fwd_maxpool, ops_attrs_maxpool, export_c_plan_maxpool, infer_compile_maxpool},
    [RS_OP_FLATTEN] = {"Flatten", 1, 1, 0, ops_shape_flatten, NULL, ops_fwd_copy, ops_attrs_axis, export_c_plan_alias, infer_compile_alias},
    [RS_OP_RESHAPE] = {"Reshape", 2, 2, 0, ops_shape_reshape, NULL, ops_fwd_copy, ops_attrs_reshape, export_c_plan_alias, infer_compile_alias},
    [RS_OP_IDENTITY] = {"Identity", 1, 1, 0, ops_shape_same, NULL, ops_fwd_copy, ops_attrs_identity, export_c_plan_alias, infer_compile_alias},
    [RS_OP_BATCHNORM] = {"BatchNormalization", 5, 5, 0, ops_shape_batchnorm, NULL, ops_fwd_batchnorm, ops_attrs_batchnorm, export_c_plan_batchnorm, infer_compile_batchnorm},
    [RS_OP_GLOBALAVGPOOL] = {"GlobalAveragePool", 1, 1, 0, ops_shape_globalavgpool, NULL, ops_fwd_avgpool, NULL, export_c_plan_window, infer_compile_avgpool},
    [RS_OP_AVGPOOL] = {"AveragePool", 1, 1, 0, ops_shape_pool, NULL, ops_fwd_avgpool, ops_attrs_avgpool, export_c_plan_window, infer_compile_avgpool},
    [RS_OP_CLIP] = {"Clip", 1, 3, 0, ops_shape_clip, NULL, ops_fwd_clip, ops_attrs_clip, export_c_plan_clip, infer_compile_elementwise},
    [RS_OP_SIGMOID] = {"Sigmoid", 1, 1, 0, ops_shape_same, NULL, ops_fwd_sigmoid, NULL, export_c_plan_unary, infer_compile_elementwise},
    [RS_OP_SOFTMAX] = {"Softmax", 1, 1, 0, ops_shape_softmax, NULL, ops_fwd_softmax, ops_attrs_axis, NULL, infer_compile_elementwise},
    [RS_OP_PAD] = {"Pad", 1, 3, 0, ops_shape_pad, NULL, ops_fwd_pad, ops_attrs_pad, export_c_plan_window, infer_compile_pad},
    [RS_OP_CONCAT] = {"Concat", 1, RS_MAXIO, 0, ops_shape_concat, NULL, ops_fwd_concat, ops_attrs_axis, export_c_plan_concat, infer_compile_concat},
    /* load-time only: passes_simplify rewrites them away or refuses the model */
    [RS_OP_SHAPE] = {"Shape", 1, 1, 0, NULL, NULL, NULL},
    [RS_OP_GATHER] = {"Gather", 2, 2, 0, NULL, NULL, NULL, ops_attrs_axis},
    [RS_OP_UNSQUEEZE] = {"Unsqueeze", 1, 2, 0, NULL, NULL, NULL, ops_attrs_unsqueeze},
    [RS_OP_LEAKYRELU] = {"LeakyRelu", 1, 1, 0, ops_shape_same, NULL, ops_fwd_leakyrelu, ops_attrs_leakyrelu, export_c_plan_leakyrelu},
    [RS_OP_HARDSIGMOID] = {"HardSigmoid", 1, 1, 0, ops_shape_same, NULL, ops_fwd_hardsigmoid, ops_attrs_hardsigmoid, export_c_plan_unary},
    [RS_OP_HARDSWISH] = {"HardSwish", 1, 1, 0, ops_shape_same, NULL, ops_fwd_hardswish, NULL, export_c_plan_unary},
    [RS_OP_PRELU] = {"PRelu", 2, 2, 0, ops_shape_prelu, NULL, ops_fwd_prelu, NULL, export_c_plan_prelu},
    [RS_OP_REDUCEMEAN] = {"ReduceMean", 1, 2, 0, ops_shape_reduce, NULL, ops_fwd_reduce, ops_attrs_reducemean, export_c_plan_reduce, infer_compile_reducemean},
    [RS_OP_REDUCESUM] = {"ReduceSum", 1, 2, 0, ops_shape_reduce, NULL, ops_fwd_reduce, ops_attrs_reducesum, export_c_plan_reduce},
    [RS_OP_SUB] = {"Sub", 2, 2, 0, ops_shape_binary, NULL, ops_fwd_binary, NULL, export_c_plan_binary, NULL, 1},
    [RS_OP_MUL] = {"Mul", 2, 2, 0, ops_shape_binary, NULL, ops_fwd_binary, NULL, export_c_plan_binary, NULL, 1},
    [RS_OP_DIV] = {"Div", 2, 2, 0, ops_shape_binary, NULL, ops_fwd_binary, NULL, export_c_plan_binary, NULL, 1},
    [RS_OP_CAST] = {"Cast", 1, 1, 0, ops_shape_cast, NULL, ops_fwd_copy, ops_attrs_cast, export_c_plan_alias, infer_compile_alias},
    [RS_OP_TRANSPOSE] = {"Transpose", 1, 1, 0, ops_shape_transpose, NULL, ops_fwd_strided, ops_attrs_transpose, export_c_plan_strided},
    [RS_OP_SLICE] = {"Slice", 3, 5, 0, ops_shape_slice, NULL, ops_fwd_strided, NULL, export_c_plan_strided},
    [RS_OP_EXPAND] = {"Expand", 2, 2, 0, ops_shape_expand, NULL, ops_fwd_strided, NULL, export_c_plan_strided},
    [RS_OP_SPLIT] = {"Split", 1, 2, 0, NULL, NULL, NULL, ops_attrs_split}, /* load-time only, like Shape */
};

static_assert(sizeof table / sizeof table[0] == RS_OP_COUNT, "one registry row per rs_op");

const rs_op_desc *ops_get(rs_op op)
{
    return op > RS_OP_NONE && op < RS_OP_COUNT && table[op].name ? &table[op] : NULL;
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
