/* ops_elem.c — element-wise and per-channel ops: Add, Sub, Mul, Div, Relu, Clip, Sigmoid, Softmax,
 * BatchNormalization, Concat, LeakyRelu, HardSigmoid, HardSwish, PRelu. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_internal.h"
#include "ops_internal.h"

const rs_attr ops_attrs_batchnorm[] = {
    OPS_ATTR_FLOAT("epsilon", epsilon, 0),
    OPS_ATTR("momentum", RS_ATTR_FLOAT, RS_FIELD_NONE, name, RS_ATTR_READ_ONLY, 0, 0, 0, NULL), /* training only */
    OPS_ATTR_CHECK("spatial", 1, 1, RS_ATTR_READ_ONLY), /* opset < 9: 1 is the per-channel form */
    OPS_ATTR_CHECK("training_mode", 0, 0, RS_ATTR_READ_ONLY),
    OPS_ATTR_END,
};
/* opset < 11 carries the bounds as attributes; later ones (and the writer) as inputs */
const rs_attr ops_attrs_clip[] = {
    OPS_ATTR_FLOAT("min", clip_min, RS_ATTR_READ_ONLY),
    OPS_ATTR_FLOAT("max", clip_max, RS_ATTR_READ_ONLY),
    OPS_ATTR_END,
};
/* Softmax, Concat, Flatten, Gather */
const rs_attr ops_attrs_axis[] = {
    OPS_ATTR_I64("axis", axis, -RS_MAXDIM, RS_MAXDIM),
    OPS_ATTR_END,
};
const rs_attr ops_attrs_leakyrelu[] = {
    OPS_ATTR_FLOAT("alpha", alpha, 0),
    OPS_ATTR_END,
};
const rs_attr ops_attrs_hardsigmoid[] = {
    OPS_ATTR_FLOAT("alpha", alpha, 0),
    OPS_ATTR_FLOAT("beta", beta, 0),
    OPS_ATTR_END,
};

/* The per-image shape of binary-op input v right-aligned to nd dims (missing leading dims are 1;
 * an activation's batch axis is left out). */
static void aligned_dims(const rs_value *v, int nd, int64_t *d)
{
    int lead = v->is_const ? 0 : 1;
    int have = v->ndim - lead;
    for (int k = 0; k < nd; ++k)
        d[k] = k < nd - have ? 1 : v->dims[lead + k - (nd - have)];
}

/* Add / Sub / Mul / Div: y has the broadcast shape of both inputs' per-image shapes. An
 * activation's batch axis stays the leading axis: a constant may not have more dims than the
 * activation, nor a batch extent of its own. */
int ops_shape_binary(rs_model *m, rs_node *n, rs_err *e)
{
    if (n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0)
        OPS_NODE_FAIL(e, n, "expected two inputs");
    const rs_value *a = &m->values[n->in[0]], *b = &m->values[n->in[1]];
    rs_value *y = &m->values[n->out[0]];
    const rs_value *act = a->is_const ? b : a;
    for (int k = 0; k < 2; ++k) {
        const rs_value *v = k ? b : a;
        if (v->is_const && !ops_float_const(m, n->in[k]))
            OPS_NODE_FAIL(e, n, "input \"%s\" must be a float tensor", v->name);
        if (v->is_const && (v->ndim > act->ndim || (v->ndim == act->ndim && v->ndim && v->dims[0] != 1)))
            OPS_NODE_FAIL(e, n, "constant \"%s\" has more dims than \"%s\" or a batch extent", v->name,
                          act->name);
    }
    if (a->is_const && b->is_const)
        OPS_NODE_FAIL(e, n, "both inputs are constants");
    if (!a->is_const && !b->is_const && a->ndim != b->ndim)
        OPS_NODE_FAIL(e, n, "inputs \"%s\" and \"%s\" differ in rank", a->name, b->name);
    int nd = act->ndim - 1;
    int64_t da[RS_MAXDIM], db[RS_MAXDIM], d[RS_MAXDIM];
    aligned_dims(a, nd, da);
    aligned_dims(b, nd, db);
    d[0] = -1;
    for (int k = 0; k < nd; ++k) {
        if (da[k] != db[k] && da[k] != 1 && db[k] != 1)
            OPS_NODE_FAIL(e, n, "inputs \"%s\" and \"%s\" do not broadcast (dim %d: %lld vs %lld)",
                          a->name, b->name, k + 1, (long long)da[k], (long long)db[k]);
        d[k + 1] = da[k] == 1 ? db[k] : da[k];
    }
    if (n->op == RS_OP_ADD && !a->is_const && !b->is_const &&
        (memcmp(da, d + 1, (size_t)nd * sizeof *d) || memcmp(db, d + 1, (size_t)nd * sizeof *d)))
        OPS_NODE_FAIL(e, n, "inputs \"%s\" and \"%s\" differ in shape (Add broadcasts a constant, "
                      "not an activation)", a->name, b->name);
    ops_set_shape(y, nd + 1, d);
    return 0;
}

void ops_binary_strides(const rs_model *m, const rs_node *n, int *r, int64_t stride[2][RS_MAXDIM],
                        int64_t step[2])
{
    *r = m->values[n->out[0]].ndim - 1;
    for (int k = 0; k < 2; ++k) {
        const rs_value *v = &m->values[n->in[k]];
        int64_t d[RS_MAXDIM], s = 1;
        aligned_dims(v, *r, d);
        for (int j = *r - 1; j >= 0; --j) {
            stride[k][j] = d[j] == 1 ? 0 : s;
            s *= d[j];
        }
        step[k] = v->is_const ? 0 : s;
    }
}

/* y[k] = a[k·sa] op b[k·sb] for k < n, sa and sb 0 (a broadcast scalar) or 1: one loop per op
 * and pattern, so each vectorises. */
static void binary_run(rs_op op, int64_t n, const float *a, int sa, const float *b, int sb, float *y)
{
#define BIN_RUNS(OP)                                                                           \
    if (sa && sb)                                                                              \
        for (int64_t k = 0; k < n; ++k)                                                        \
            y[k] = a[k] OP b[k];                                                               \
    else if (sa)                                                                               \
        for (int64_t k = 0; k < n; ++k)                                                        \
            y[k] = a[k] OP b[0];                                                               \
    else if (sb)                                                                               \
        for (int64_t k = 0; k < n; ++k)                                                        \
            y[k] = a[0] OP b[k];                                                               \
    else                                                                                       \
        for (int64_t k = 0; k < n; ++k)                                                        \
            y[k] = a[0] OP b[0];
    switch (op) {
    case RS_OP_ADD:
        BIN_RUNS(+)
        break;
    case RS_OP_SUB:
        BIN_RUNS(-)
        break;
    case RS_OP_MUL:
        BIN_RUNS(*)
        break;
    default:
        BIN_RUNS(/)
        break;
    }
#undef BIN_RUNS
}

int ops_fwd_binary(const ops_batch *b, rs_err *e)
{
    (void)e;
    const rs_model *m = b->m;
    const rs_node *nd = b->n;
    const rs_value *yv = &m->values[nd->out[0]];
    const int64_t on = model_value_numel(yv);
    const float *src[2];
    int64_t step[2], stride[2][RS_MAXDIM];
    int r;
    ops_binary_strides(m, nd, &r, stride, step);
    for (int k = 0; k < 2; ++k) {
        const rs_value *v = &m->values[nd->in[k]];
        src[k] = v->is_const ? v->f : b->in[k];
    }
    /* The trailing dims over which each input is either contiguous or one broadcast value make
     * one run (the whole image for same shapes or a scalar; H·W for a per-channel constant or
     * squeeze-and-excitation scale); the leading dims walk run by run. */
    int t = r, unit[2] = {-1, -1}; /* per input: 1 contiguous, 0 broadcast, -1 not yet known */
    int64_t inner = 1;
    for (; t > 0; --t) {
        const int64_t d = yv->dims[t], *st[2] = {&stride[0][t - 1], &stride[1][t - 1]};
        int mode[2] = {unit[0], unit[1]}, ok = 1;
        for (int k = 0; k < 2 && d != 1; ++k) { /* an extent of 1 fits either */
            int mk = *st[k] == 0 ? 0 : *st[k] == inner ? 1 : -1;
            ok &= mk >= 0 && (unit[k] < 0 || unit[k] == mk);
            mode[k] = mk;
        }
        if (!ok)
            break;
        unit[0] = mode[0], unit[1] = mode[1];
        inner *= d;
    }
    for (int k = 0; k < 2; ++k)
        if (unit[k] < 0)
            unit[k] = 1; /* every trailing extent was 1: any step reads the one element */
    for (int img = 0; img < b->images; ++img) {
        const float *x0 = src[0] + (size_t)img * step[0], *x1 = src[1] + (size_t)img * step[1];
        float *y = b->out + (size_t)img * on;
        int64_t coord[RS_MAXDIM] = {0}, i0 = 0, i1 = 0;
        for (int64_t i = 0; i < on; i += inner) {
            binary_run(nd->op, inner, x0 + i0, unit[0], x1 + i1, unit[1], y + i);
            ops_next_coord(t, yv->dims + 1, coord, stride[0], &i0, stride[1], &i1);
        }
    }
    return 0;
}

int ops_shape_same(rs_model *m, rs_node *n, rs_err *e)
{
    (void)e;
    OPS_SHAPE_ARGS(m, n);
    ops_set_shape(y, x->ndim, x->dims);
    return 0;
}

int ops_shape_clip(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    if (n->n_in != 1 || !(n->clip_min <= n->clip_max))
        OPS_NODE_FAIL(e, n, "expected one input and min <= max (min/max are folded at load)");
    ops_set_shape(y, x->ndim, x->dims);
    return 0;
}

int ops_shape_softmax(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    if (x->ndim != 2 || (n->axis != 1 && n->axis != -1))
        OPS_NODE_FAIL(e, n, "only a softmax over the features of a 2-D input is supported "
                  "(input has %d dims, axis %lld)", x->ndim, (long long)n->axis);
    ops_set_shape(y, x->ndim, x->dims);
    return 0;
}

int ops_shape_batchnorm(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    if (x->ndim != 4 && x->ndim != 2)
        OPS_NODE_FAIL(e, n, "input \"%s\" must be (N,C,H,W) or (N,C)", x->name);
    if (n->n_in != 5)
        OPS_NODE_FAIL(e, n, "expected 5 inputs (x, scale, B, mean, var)");
    for (int k = 1; k < 5; ++k)
        if (!ops_float_const(m, n->in[k]) || model_value_numel(&m->values[n->in[k]]) != x->dims[1])
            OPS_NODE_FAIL(e, n, "input %d must be a float initializer of %lld elements", k,
                      (long long)x->dims[1]);
    if (!(n->epsilon >= 0.0f) || !isfinite(n->epsilon))
        OPS_NODE_FAIL(e, n, "attribute \"epsilon\" = %g is invalid", (double)n->epsilon);
    ops_set_shape(y, x->ndim, x->dims);
    return 0;
}

int ops_shape_concat(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t ax = n->axis < 0 ? n->axis + x->ndim : n->axis;
    if (ax != 1)
        OPS_NODE_FAIL(e, n, "only concatenation along the channel axis 1 is supported (axis %lld)",
                  (long long)n->axis);
    ops_set_shape(y, x->ndim, x->dims);
    for (int k = 1; k < n->n_in; ++k) {
        const rs_value *b = n->in[k] >= 0 ? &m->values[n->in[k]] : NULL;
        if (!b || b->is_const || b->ndim != x->ndim ||
            (x->ndim > 2 && memcmp(b->dims + 2, x->dims + 2, (size_t)(x->ndim - 2) * sizeof(int64_t))))
            OPS_NODE_FAIL(e, n, "input %d must be an activation matching \"%s\" except in channels",
                      k, x->name);
        y->dims[1] += b->dims[1];
    }
    return 0;
}

static int64_t bcast_index(const rs_value *xv, const rs_value *cv, int64_t idx)
{
    /* Index into cv for element idx of one image of xv (numpy right-aligned broadcast). */
    int off = xv->ndim - cv->ndim;
    int64_t rem = idx, cidx = 0, cstride = 1;
    for (int k = xv->ndim - 1; k >= 1 && k >= off; --k) {
        int64_t d = xv->dims[k];
        int64_t coord = rem % d;
        rem /= d;
        int64_t cd = cv->dims[k - off];
        cidx += (cd == 1 ? 0 : coord) * cstride;
        cstride *= cd;
    }
    return cidx;
}

int ops_fwd_relu(const ops_batch *b, rs_err *e)
{
    (void)e;
    size_t total = ops_out_total(b);
    const float *x = b->in[0];
    for (size_t k = 0; k < total; ++k)
        b->out[k] = x[k] > 0.0f ? x[k] : 0.0f;
    return 0;
}

int ops_fwd_clip(const ops_batch *b, rs_err *e)
{
    (void)e;
    size_t total = ops_out_total(b);
    const float *x = b->in[0];
    for (size_t k = 0; k < total; ++k)
        b->out[k] = fminf(fmaxf(x[k], b->n->clip_min), b->n->clip_max);
    return 0;
}

/* Opset 13 takes the bounds as inputs min and max; an infinite bound is left out. */
int ops_inputs_clip(const rs_node *n, rs_const_input *out)
{
    const float lim[2] = {n->clip_min, n->clip_max};
    const char *const suffix[2] = {"_min", "_max"};
    for (int k = 0; k < 2; ++k) {
        out[k] = (rs_const_input){.suffix = suffix[k]};
        if (!isinf(lim[k]))
            out[k].dtype = RS_DT_FLOAT, out[k].count = 1, out[k].f = lim[k];
    }
    return 2;
}

int ops_fwd_sigmoid(const ops_batch *b, rs_err *e)
{
    (void)e;
    size_t total = ops_out_total(b);
    const float *x = b->in[0];
    for (size_t k = 0; k < total; ++k)
        b->out[k] = 1.0f / (1.0f + expf(-x[k]));
    return 0;
}

int ops_fwd_softmax(const ops_batch *b, rs_err *e)
{
    (void)e;
    const int64_t on = ops_io_of(b).yn;
    for (int img = 0; img < b->images; ++img)
        infer_op_softmax((int)on, b->in[0] + (size_t)img * on, b->out + (size_t)img * on);
    return 0;
}

int ops_fwd_batchnorm(const ops_batch *b, rs_err *e)
{
    const ops_io io = ops_io_of(b);
    const int64_t on = io.yn;
    const int C = (int)io.x->dims[1];
    float *scale = NULL, *shift = NULL;
    int rc = infer_bn_affine(b->m, b->n, C, &scale, &shift, e);
    for (int img = 0; rc == 0 && img < b->images; ++img)
        infer_op_affine(C, (int)(on / C), scale, shift, b->in[0] + (size_t)img * on,
                        b->out + (size_t)img * on);
    free(scale);
    free(shift);
    return rc;
}

int ops_fwd_concat(const ops_batch *b, rs_err *e)
{
    (void)e;
    const ops_io io = ops_io_of(b);
    const int64_t on = io.yn, an = io.xn, bn = on - an;
    for (int img = 0; img < b->images; ++img) {
        memcpy(b->out + (size_t)img * on, b->in[0] + (size_t)img * an, (size_t)an * sizeof(float));
        memcpy(b->out + (size_t)img * on + an, b->in[1] + (size_t)img * bn, (size_t)bn * sizeof(float));
    }
    return 0;
}

/* PRelu's slope: a float initializer broadcasting to x (numpy rules, the batch axis excluded). */
int ops_shape_prelu(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    const rs_value *c = n->n_in == 2 && ops_float_const(m, n->in[1]) ? &m->values[n->in[1]] : NULL;
    int ok = c && c->ndim <= x->ndim;
    for (int k = 0; ok && k < c->ndim; ++k) {
        int xk = x->ndim - c->ndim + k;
        ok = c->dims[k] == 1 || (xk >= 1 && c->dims[k] == x->dims[xk]);
    }
    if (!ok)
        OPS_NODE_FAIL(e, n, "slope must be a float initializer broadcasting to \"%s\"", x->name);
    ops_set_shape(y, x->ndim, x->dims);
    return 0;
}

/* y = f(x, node) element by element. */
static void map_each(const ops_batch *b, float (*f)(float, const rs_node *))
{
    size_t total = ops_out_total(b);
    const float *x = b->in[0];
    for (size_t k = 0; k < total; ++k)
        b->out[k] = f(x[k], b->n);
}

static float leaky_relu(float v, const rs_node *n)
{
    return v >= 0.0f ? v : n->alpha * v;
}

static float hard_sigmoid(float v, const rs_node *n)
{
    float t = n->alpha * v + n->beta;
    return t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
}

static float hard_swish(float v, const rs_node *n)
{
    (void)n;
    float t = v / 6.0f + 0.5f;
    return v * (t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t);
}

int ops_fwd_leakyrelu(const ops_batch *b, rs_err *e)
{
    (void)e;
    map_each(b, leaky_relu);
    return 0;
}

int ops_fwd_hardsigmoid(const ops_batch *b, rs_err *e)
{
    (void)e;
    map_each(b, hard_sigmoid);
    return 0;
}

int ops_fwd_hardswish(const ops_batch *b, rs_err *e)
{
    (void)e;
    map_each(b, hard_swish);
    return 0;
}

int ops_fwd_prelu(const ops_batch *b, rs_err *e)
{
    (void)e;
    const ops_io io = ops_io_of(b);
    const rs_value *xv = io.x, *cv = io.w;
    const int64_t on = io.xn;
    const float *x = b->in[0];
    for (int img = 0; img < b->images; ++img)
        for (int64_t k = 0; k < on; ++k) {
            float v = x[(size_t)img * on + k];
            b->out[(size_t)img * on + k] = v >= 0.0f ? v : cv->f[bcast_index(xv, cv, k)] * v;
        }
    return 0;
}

/* ---- shape computations folded at load (rs_op_desc.fold; passes.c) ---------------------------- */

int ops_fold_binary(const rs_model *m, const rs_node *n, int64_t *out, int *scalar)
{
    const rs_value *a = &m->values[n->in[0]];
    const int64_t *av = a->i64;
    int an = (int)model_value_numel(a);
    const rs_value *b = &m->values[n->in[1]];
    int bn = (int)model_value_numel(b), len = an > bn ? an : bn;
    if ((an != len && an != 1) || (bn != len && bn != 1))
        return -1;
    for (int j = 0; j < len; ++j) {
        int64_t x = av[an == 1 ? 0 : j], y = b->i64[bn == 1 ? 0 : j];
        if (x == OPS_SHAPE_BATCH || y == OPS_SHAPE_BATCH || (n->op == RS_OP_DIV && y == 0) ||
            x > INT32_MAX || x < -INT32_MAX || y > INT32_MAX || y < -INT32_MAX)
            return -1;
        out[j] = n->op == RS_OP_ADD   ? x + y
                 : n->op == RS_OP_SUB ? x - y
                 : n->op == RS_OP_MUL ? x * y
                                      : x / y;
    }
    *scalar = a->ndim == 0 && b->ndim == 0;
    return len;
}
