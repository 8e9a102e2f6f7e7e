/* ops_elem.c — element-wise and per-channel ops: Add, Relu, Clip, Sigmoid, Softmax,
 * BatchNormalization, Concat, LeakyRelu, HardSigmoid, HardSwish, PRelu. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_internal.h"
#include "ops_internal.h"

int ops_shape_add(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    if (n->n_in != 2 || n->in[1] < 0)
        OPS_NODE_FAIL(e, n, "expected two inputs");
    const rs_value *b = &m->values[n->in[1]];
    if (b->is_const) {
        int64_t bn = model_value_numel(b);
        int64_t last = x->dims[x->ndim - 1];
        if (!ops_float_const(m, n->in[1]) || (bn != last && bn != 1) || x->ndim != 2)
            OPS_NODE_FAIL(e, n, "constant addend \"%s\" must broadcast over the features of a 2-D input",
                      b->name);
    } else {
        if (b->ndim != x->ndim || memcmp(b->dims + 1, x->dims + 1, (size_t)(x->ndim - 1) * sizeof(int64_t)))
            OPS_NODE_FAIL(e, n, "inputs \"%s\" and \"%s\" differ in shape", x->name, b->name);
    }
    ops_set_shape(y, x->ndim, x->dims);
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

int ops_fwd_add(const ops_batch *b, rs_err *e)
{
    (void)e;
    const rs_model *m = b->m;
    const rs_node *nd = b->n;
    size_t total = ops_out_total(b);
    float *y = b->out;
    if (!m->values[nd->in[0]].is_const && !m->values[nd->in[1]].is_const) {
        const float *a = b->in[0], *b2 = b->in[1];
        for (size_t k = 0; k < total; ++k)
            y[k] = a[k] + b2[k];
        return 0;
    }
    int ca = m->values[nd->in[0]].is_const;
    const rs_value *av = &m->values[nd->in[ca ? 1 : 0]];
    const rs_value *cv = &m->values[nd->in[ca ? 0 : 1]];
    const float *a = b->in[ca ? 1 : 0];
    int64_t on = model_value_numel(&m->values[nd->out[0]]);
    for (int img = 0; img < b->images; ++img)
        for (int64_t k = 0; k < on; ++k)
            y[(size_t)img * on + k] = a[(size_t)img * on + k] + cv->f[bcast_index(av, cv, k)];
    return 0;
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
    int64_t on = model_value_numel(&b->m->values[b->n->out[0]]);
    for (int img = 0; img < b->images; ++img)
        infer_op_softmax((int)on, b->in[0] + (size_t)img * on, b->out + (size_t)img * on);
    return 0;
}

int ops_fwd_batchnorm(const ops_batch *b, rs_err *e)
{
    const rs_value *xv = &b->m->values[b->n->in[0]];
    int64_t on = model_value_numel(&b->m->values[b->n->out[0]]);
    int C = (int)xv->dims[1];
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
    const rs_value *xv = &b->m->values[b->n->in[0]];
    int64_t on = model_value_numel(&b->m->values[b->n->out[0]]);
    int64_t an = model_value_numel(xv), bn = on - an;
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
    const rs_value *xv = &b->m->values[b->n->in[0]], *cv = &b->m->values[b->n->in[1]];
    int64_t on = model_value_numel(xv);
    const float *x = b->in[0];
    for (int img = 0; img < b->images; ++img)
        for (int64_t k = 0; k < on; ++k) {
            float v = x[(size_t)img * on + k];
            b->out[(size_t)img * on + k] = v >= 0.0f ? v : cv->f[bcast_index(xv, cv, k)] * v;
        }
    return 0;
}
