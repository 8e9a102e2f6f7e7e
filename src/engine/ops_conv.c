/* ops_conv.c — the spatial ops: Conv, MaxPool, AveragePool, GlobalAveragePool, Pad, and the
 * reductions ReduceMean / ReduceSum (a mean over (2, 3) is a global average pool). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "infer_internal.h"
#include "ops_internal.h"

/* Conv and the pools share kernel_shape, strides, pads, dilations and auto_pad; the engine's
 * pooling has no dilation (only 1 is accepted) and opset 13 AveragePool does not write one. */
#define SPATIAL_ATTRS(kernel_flags, dil_hi, dil_flags)                                          \
    OPS_ATTR("kernel_shape", RS_ATTR_KERNEL, RS_FIELD_I64, kernel, kernel_flags, 2, 1,          \
             RS_ATTR_MAX_SPATIAL, NULL),                                                       \
        OPS_ATTR_INTS("strides", strides, 2, 1, RS_ATTR_MAX_SPATIAL),                          \
        OPS_ATTR_INTS("pads", pads, 4, 0, RS_ATTR_MAX_SPATIAL),                                \
        OPS_ATTR("dilations", RS_ATTR_INTS, RS_FIELD_I64, dilations, dil_flags, 2, 1, dil_hi, NULL), \
        OPS_ATTR("auto_pad", RS_ATTR_AUTO_PAD, RS_FIELD_NONE, name, 0, 0, 0, 0, NULL)

const rs_attr ops_attrs_conv[] = {
    SPATIAL_ATTRS(0, RS_ATTR_MAX_SPATIAL, 0),
    OPS_ATTR_I64("group", group, 1, RS_ATTR_MAX_GROUP),
    OPS_ATTR_END,
};
const rs_attr ops_attrs_maxpool[] = {
    SPATIAL_ATTRS(RS_ATTR_REQUIRED, 1, 0),
    OPS_ATTR_INT("ceil_mode", ceil_mode, 0, 1),
    OPS_ATTR_CHECK("storage_order", 0, 0, 0),
    OPS_ATTR_END,
};
const rs_attr ops_attrs_avgpool[] = {
    SPATIAL_ATTRS(RS_ATTR_REQUIRED, 1, RS_ATTR_READ_ONLY),
    OPS_ATTR_INT("ceil_mode", ceil_mode, 0, 1),
    OPS_ATTR_INT("count_include_pad", count_include_pad, 0, 1),
    OPS_ATTR_END,
};
/* opset 13 Pad takes its pads as an input; older files give them (and a value) as attributes */
const rs_attr ops_attrs_pad[] = {
    OPS_ATTR("mode", RS_ATTR_STRING, RS_FIELD_NONE, name, 0, 0, 0, 0, "constant"),
    OPS_ATTR("value", RS_ATTR_ZERO, RS_FIELD_NONE, name, RS_ATTR_READ_ONLY, 0, 0, 0,
             "only zero padding is supported"),
    OPS_ATTR("pads", RS_ATTR_PADS8, RS_FIELD_I64, pads, RS_ATTR_READ_ONLY, 8, 0, RS_ATTR_MAX_SPATIAL, NULL),
    OPS_ATTR_END,
};
/* axes: an attribute before opset 18 (ReduceSum: before 13, and written as an input) */
const rs_attr ops_attrs_reducemean[] = {
    OPS_ATTR_AXES("axes", 0),
    OPS_ATTR_INT("keepdims", keepdims, 0, 1),
    OPS_ATTR_CHECK("noop_with_empty_axes", 0, 0, RS_ATTR_READ_ONLY),
    OPS_ATTR_END,
};
const rs_attr ops_attrs_reducesum[] = {
    OPS_ATTR_AXES("axes", RS_ATTR_READ_ONLY),
    OPS_ATTR_INT("keepdims", keepdims, 0, 1),
    OPS_ATTR_CHECK("noop_with_empty_axes", 0, 0, RS_ATTR_READ_ONLY),
    OPS_ATTR_END,
};

static int64_t pooled_extent(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1, int64_t d,
                             int ceil_mode)
{
    int64_t span = d * (k - 1) + 1;
    int64_t num = in + p0 + p1 - span;
    if (num < 0)
        return 0;
    int64_t out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    /* PyTorch / ONNX Runtime: with ceil_mode, a last window starting in the end padding is dropped */
    if (ceil_mode && out > 1 && (out - 1) * s >= in + p0)
        --out;
    return out;
}

static int spatial_extent(const rs_node *n, const rs_value *x, int64_t kh, int64_t kw, int ceil_mode,
                          int64_t *oh, int64_t *ow, rs_err *e)
{
    for (int i = 0; i < 2; ++i) {
        if (n->strides[i] < 1 || n->strides[i] > 1024)
            OPS_NODE_FAIL(e, n, "attribute \"strides\" value %lld out of range", (long long)n->strides[i]);
        if (n->dilations[i] < 1 || n->dilations[i] > 1024)
            OPS_NODE_FAIL(e, n, "attribute \"dilations\" value %lld out of range",
                      (long long)n->dilations[i]);
    }
    for (int i = 0; i < 4; ++i)
        if (n->pads[i] < 0 || n->pads[i] > 1024)
            OPS_NODE_FAIL(e, n, "attribute \"pads\" value %lld out of range", (long long)n->pads[i]);
    *oh = pooled_extent(x->dims[2], kh, n->strides[0], n->pads[0], n->pads[2], n->dilations[0],
                        ceil_mode);
    *ow = pooled_extent(x->dims[3], kw, n->strides[1], n->pads[1], n->pads[3], n->dilations[1],
                        ceil_mode);
    if (*oh < 1 || *ow < 1)
        OPS_NODE_FAIL(e, n, "kernel %lldx%lld does not fit input %lldx%lld", (long long)kh, (long long)kw,
                  (long long)x->dims[2], (long long)x->dims[3]);
    return 0;
}

int ops_shape_conv(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (x->ndim != 4)
        OPS_NODE_FAIL(e, n, "input \"%s\" must be 4-D (N,C,H,W), has %d dims", x->name, x->ndim);
    if (n->n_in < 2 || !ops_float_const(m, n->in[1]))
        OPS_NODE_FAIL(e, n, "weight must be a float initializer");
    const rs_value *w = &m->values[n->in[1]];
    if (w->ndim != 4)
        OPS_NODE_FAIL(e, n, "weight \"%s\" must be 4-D", w->name);
    int64_t g = n->group;
    if (g < 1 || x->dims[1] % g != 0 || w->dims[0] % g != 0 || w->dims[1] * g != x->dims[1])
        OPS_NODE_FAIL(e, n, "attribute \"group\" = %lld does not match weight %lldx%lldx%lldx%lld and %lld input channels",
                  (long long)g, (long long)w->dims[0], (long long)w->dims[1], (long long)w->dims[2],
                  (long long)w->dims[3], (long long)x->dims[1]);
    if ((n->kernel[0] && n->kernel[0] != w->dims[2]) || (n->kernel[1] && n->kernel[1] != w->dims[3]))
        OPS_NODE_FAIL(e, n, "attribute \"kernel_shape\" disagrees with weight \"%s\"", w->name);
    n->kernel[0] = w->dims[2];
    n->kernel[1] = w->dims[3];
    if (n->n_in > 2 && n->in[2] >= 0) {
        if (!ops_float_const(m, n->in[2]) || model_value_numel(&m->values[n->in[2]]) != w->dims[0])
            OPS_NODE_FAIL(e, n, "bias must be a float initializer of %lld elements", (long long)w->dims[0]);
    }
    int64_t oh, ow;
    if (spatial_extent(n, x, w->dims[2], w->dims[3], 0, &oh, &ow, e))
        return -1;
    d[0] = -1, d[1] = w->dims[0], d[2] = oh, d[3] = ow;
    ops_set_shape(y, 4, d);
    return 0;
}

int ops_shape_pool(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (x->ndim != 4)
        OPS_NODE_FAIL(e, n, "input \"%s\" must be 4-D", x->name);
    if (n->kernel[0] < 1 || n->kernel[1] < 1 || n->kernel[0] > 1024 || n->kernel[1] > 1024)
        OPS_NODE_FAIL(e, n, "attribute \"kernel_shape\" missing or out of range");
    int64_t oh, ow;
    if (spatial_extent(n, x, n->kernel[0], n->kernel[1], n->ceil_mode, &oh, &ow, e))
        return -1;
    d[0] = -1, d[1] = x->dims[1], d[2] = oh, d[3] = ow;
    ops_set_shape(y, 4, d);
    return 0;
}

int ops_shape_globalavgpool(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (x->ndim != 4)
        OPS_NODE_FAIL(e, n, "input \"%s\" must be 4-D", x->name);
    d[0] = -1, d[1] = x->dims[1], d[2] = 1, d[3] = 1;
    ops_set_shape(y, 4, d);
    return 0;
}

int ops_shape_pad(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (x->ndim != 4 || n->n_in != 1)
        OPS_NODE_FAIL(e, n, "only constant-zero spatial padding of a 4-D input is supported");
    for (int k = 0; k < 4; ++k)
        if (n->pads[k] < 0 || n->pads[k] > 1024)
            OPS_NODE_FAIL(e, n, "pad %lld out of range", (long long)n->pads[k]);
    d[0] = -1, d[1] = x->dims[1];
    d[2] = x->dims[2] + n->pads[0] + n->pads[2];
    d[3] = x->dims[3] + n->pads[1] + n->pads[3];
    ops_set_shape(y, 4, d);
    return 0;
}

int64_t ops_macs_conv(const rs_model *m, const rs_node *n)
{
    const rs_value *w = &m->values[n->in[1]];
    const rs_value *y = n->n_out > 0 && n->out[0] >= 0 ? &m->values[n->out[0]] : NULL;
    if (!y || y->ndim != 4)
        return 0;
    return y->dims[1] * y->dims[2] * y->dims[3] * w->dims[1] * w->dims[2] * w->dims[3];
}

/* col (when not naive) holds col_floats floats: chunks of images are im2col'ed side by side so
 * one sgemm per group covers the chunk (per-image calls would drown in BLAS call overhead). */
static void plain_conv(const ops_batch *bt)
{
    const ops_io io = ops_io_of(bt);
    const rs_node *nd = io.n;
    const rs_value *yv = io.y, *wv = io.w;
    const float *x = bt->in[0];
    float *y = bt->out, *col = bt->col;
    const int n = bt->images;
    const float *bias = nd->n_in >= 3 && nd->in[2] >= 0 ? bt->m->values[nd->in[2]].f : NULL;
    const int C = io.C, H = io.H, W = io.W;
    const int M = (int)yv->dims[1], Ho = (int)yv->dims[2], Wo = (int)yv->dims[3];
    const int G = (int)nd->group, cg = C / G, mg = M / G;
    const int kh = (int)wv->dims[2], kw = (int)wv->dims[3];
    const int sh = (int)nd->strides[0], sw = (int)nd->strides[1];
    const int dh = (int)nd->dilations[0], dw = (int)nd->dilations[1];
    const int pt = (int)nd->pads[0], pl = (int)nd->pads[1];
    const int K = cg * kh * kw, P = Ho * Wo;
    if (!bt->naive) {
        /* col: K × (chunk·P), then the product mg × (chunk·P) right after it. */
        size_t per_img = (size_t)(K + mg) * P;
        int chunk = (int)(bt->col_floats / per_img);
        if (chunk < 1)
            chunk = 1;
        if (chunk > n)
            chunk = n;
        float *prod = col + (size_t)K * P * chunk;
        for (int b0 = 0; b0 < n; b0 += chunk) {
            int nb = n - b0 < chunk ? n - b0 : chunk;
            int ld = nb * P;
            for (int g = 0; g < G; ++g) {
                for (int b = 0; b < nb; ++b)
                    kern_im2col(cg, H, W, x + ((size_t)(b0 + b) * C + (size_t)g * cg) * H * W, kh,
                                kw, sh, sw, dh, dw, pt, pl, Ho, Wo, col + (size_t)b * P, ld);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mg, ld, K, 1.0f,
                            wv->f + (size_t)g * mg * K, K, col, ld, 0.0f, prod, ld);
                for (int b = 0; b < nb; ++b)
                    for (int o = 0; o < mg; ++o) {
                        float *dst = y + ((size_t)(b0 + b) * M + (size_t)g * mg + o) * P;
                        const float *src = prod + (size_t)o * ld + (size_t)b * P;
                        float bo = bias ? bias[g * mg + o] : 0.0f;
                        for (int p = 0; p < P; ++p)
                            dst[p] = src[p] + bo;
                    }
            }
        }
        return;
    }
    for (int img = 0; img < n; ++img) {
        const float *xi = x + (size_t)img * C * H * W;
        float *yi = y + (size_t)img * M * P;
        for (int g = 0; g < G; ++g) {
            const float *wg = wv->f + (size_t)g * mg * K;
            float *yg = yi + (size_t)g * mg * P;
            for (int o = 0; o < mg; ++o)
                for (int oy = 0; oy < Ho; ++oy)
                    for (int ox = 0; ox < Wo; ++ox) {
                        float acc = bias ? bias[g * mg + o] : 0.0f;
                        for (int ci = 0; ci < cg; ++ci)
                            for (int i = 0; i < kh; ++i) {
                                int yy = oy * sh - pt + i * dh;
                                if (yy < 0 || yy >= H)
                                    continue;
                                for (int j = 0; j < kw; ++j) {
                                    int xx = ox * sw - pl + j * dw;
                                    if (xx < 0 || xx >= W)
                                        continue;
                                    acc += wg[((size_t)o * cg + ci) * kh * kw + i * kw + j] *
                                           xi[((size_t)(g * cg + ci) * H + yy) * W + xx];
                                }
                            }
                        yg[(size_t)o * P + oy * Wo + ox] = acc;
                    }
        }
    }
}

int ops_fwd_conv(const ops_batch *b, rs_err *e)
{
    (void)e;
    plain_conv(b);
    return 0;
}

int ops_fwd_maxpool(const ops_batch *b, rs_err *e)
{
    (void)e;
    const ops_io io = ops_io_of(b);
    const rs_node *nd = io.n;
    for (int img = 0; img < b->images; ++img)
        kern_maxpool(io.C, io.H, io.W, io.W, io.H * io.W, b->in[0] + (size_t)img * io.xn,
                     (int)io.y->dims[2], (int)io.y->dims[3], (int)nd->kernel[0], (int)nd->kernel[1],
                     (int)nd->strides[0], (int)nd->strides[1], (int)nd->dilations[0],
                     (int)nd->dilations[1], (int)nd->pads[0], (int)nd->pads[1], 0,
                     b->out + (size_t)img * io.yn);
    return 0;
}

/* AveragePool and GlobalAveragePool (a window of the whole plane). */
int ops_fwd_avgpool(const ops_batch *b, rs_err *e)
{
    (void)e;
    const ops_io io = ops_io_of(b);
    const rs_node *nd = io.n;
    pool_geom pg;
    int pb = 0, pr = 0, cip = 0;
    if (nd->op == RS_OP_GLOBALAVGPOOL) {
        pg = (pool_geom){io.H, io.W, 1, 1, 1, 1, 0, 0, 1, 1};
    } else {
        infer_pool_geom(nd, (int)io.y->dims[2], (int)io.y->dims[3], &pg);
        pb = (int)nd->pads[2], pr = (int)nd->pads[3], cip = nd->count_include_pad;
    }
    for (int img = 0; img < b->images; ++img)
        infer_op_avgpool(io.C, io.H, io.W, &pg, pb, pr, cip, b->in[0] + (size_t)img * io.xn,
                         b->out + (size_t)img * io.yn);
    return 0;
}

int ops_fwd_pad(const ops_batch *b, rs_err *e)
{
    (void)e;
    const ops_io io = ops_io_of(b);
    for (int img = 0; img < b->images; ++img)
        infer_op_pad(io.C, io.H, io.W, (int)io.n->pads[0], (int)io.n->pads[1], (int)io.y->dims[2],
                     (int)io.y->dims[3], b->in[0] + (size_t)img * io.xn, b->out + (size_t)img * io.yn);
    return 0;
}

/* Opset 13 takes the pads as an input: 8 of them (begin of N, C, H, W, then their ends). */
int ops_inputs_pad(const rs_node *n, rs_const_input *out)
{
    const int64_t p8[8] = {0, 0, n->pads[0], n->pads[1], 0, 0, n->pads[2], n->pads[3]};
    out[0] = (rs_const_input){.suffix = "_pads", .dtype = RS_DT_INT64, .ndim = 1, .count = 8};
    memcpy(out[0].i64, p8, sizeof p8);
    return 1;
}

/* ReduceSum (unlike ReduceMean) takes its axes as an input from opset 13. */
int ops_inputs_reducesum(const rs_node *n, rs_const_input *out)
{
    out[0] = (rs_const_input){.suffix = "_axes", .dtype = RS_DT_INT64, .ndim = 1, .count = n->n_axes};
    memcpy(out[0].i64, n->axes, (size_t)n->n_axes * sizeof *n->axes);
    return 1;
}

/* ReduceMean / ReduceSum over the node's axes (any set without the batch axis): a mask of the
 * reduced axes of x, checked and normalised (negative axes count from the end). */
static int reduce_mask(const rs_model *m, const rs_node *n, int *mask, rs_err *e)
{
    const rs_value *x = &m->values[n->in[0]];
    for (int k = 0; k < x->ndim; ++k)
        mask[k] = 0;
    if (n->n_axes < 1)
        OPS_NODE_FAIL(e, n, "reducing over every axis (no \"axes\") would mix the images of a "
                      "batch; give the axes");
    for (int k = 0; k < n->n_axes; ++k) {
        int64_t a = n->axes[k] < 0 ? n->axes[k] + x->ndim : n->axes[k];
        if (a < 1 || a >= x->ndim)
            OPS_NODE_FAIL(e, n, "axis %lld is %s of the %d-D input \"%s\"", (long long)n->axes[k],
                          a == 0 ? "the batch axis" : "out of range", x->ndim, x->name);
        if (mask[a])
            OPS_NODE_FAIL(e, n, "axis %lld is given twice", (long long)n->axes[k]);
        mask[a] = 1;
    }
    return 0;
}

int ops_shape_reduce(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int mask[RS_MAXDIM], nd = 0;
    int64_t d[RS_MAXDIM];
    if (n->n_in != 1)
        OPS_NODE_FAIL(e, n, "axes must be a constant (folded at load)");
    if (reduce_mask(m, n, mask, e))
        return -1;
    for (int k = 0; k < x->ndim; ++k)
        if (!mask[k])
            d[nd++] = x->dims[k];
        else if (n->keepdims)
            d[nd++] = 1;
    ops_set_shape(y, nd, d);
    return 0;
}

int ops_fwd_reduce(const ops_batch *b, rs_err *e)
{
    const ops_io io = ops_io_of(b);
    const rs_value *xv = io.x;
    int mask[RS_MAXDIM];
    if (reduce_mask(b->m, b->n, mask, e))
        return -1;
    const int64_t in = io.xn, on = io.yn;
    /* out_stride[k]: step in the output of coordinate k of x (0 for a reduced axis) */
    int64_t out_stride[RS_MAXDIM], s = 1, count = 1;
    for (int k = xv->ndim - 1; k >= 1; --k) {
        out_stride[k] = mask[k] ? 0 : s;
        s *= mask[k] ? 1 : xv->dims[k];
        count *= mask[k] ? xv->dims[k] : 1;
    }
    double scale = b->n->op == RS_OP_REDUCEMEAN ? 1.0 / (double)count : 1.0;
    double *acc = calloc((size_t)on, sizeof *acc);
    if (!acc)
        return rs_fail(e, "node \"%s\": out of memory", b->n->name);
    for (int img = 0; img < b->images; ++img) {
        const float *x = b->in[0] + (size_t)img * in;
        memset(acc, 0, (size_t)on * sizeof *acc);
        int64_t coord[RS_MAXDIM] = {0}, o = 0;
        for (int64_t i = 0; i < in; ++i) {
            acc[o] += x[i];
            ops_next_coord(xv->ndim - 1, xv->dims + 1, coord + 1, out_stride + 1, &o, NULL, NULL);
        }
        for (int64_t j = 0; j < on; ++j)
            b->out[(size_t)img * on + j] = (float)(acc[j] * scale);
    }
    free(acc);
    return 0;
}
