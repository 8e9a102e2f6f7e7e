/* grad.c — forward and backward kernels for training (see train_internal.h); convolution is in
 * grad_conv.c. Dense layers use cblas_sgemm.
 */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rankscope/ops.h"
#include "train_internal.h"

static int is_fconst(const rs_model *m, int v)
{
    return v >= 0 && v < m->n_values && m->values[v].is_const && m->values[v].dtype == RS_DT_FLOAT &&
           m->values[v].f;
}

/* ---- each op's tape entry (named by its registry row: train_compile) ----------------------- */

int grad_compile_dense(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    if (n->op == RS_OP_GEMM && n->trans_a)
        TN_NODE_ERR(e, n, "attribute \"transA\" = 1 is not supported for training");
    if (n->n_in < 2 || !is_fconst(m, n->in[1]))
        TN_NODE_ERR(e, n, "training needs a constant weight operand");
    const rs_value *w = &m->values[n->in[1]];
    t->param[0] = n->in[1];
    t->trans_b = n->op == RS_OP_GEMM ? n->trans_b : 0;
    t->K = (int)(t->trans_b ? w->dims[1] : w->dims[0]);
    t->N = (int)(t->trans_b ? w->dims[0] : w->dims[1]);
    t->alpha = n->op == RS_OP_GEMM ? n->alpha : 1.0f;
    t->beta = n->op == RS_OP_GEMM ? n->beta : 0.0f;
    if (n->op == RS_OP_GEMM && n->n_in > 2 && n->in[2] >= 0) {
        t->param[1] = n->in[2];
        t->bias_n = (int)model_value_numel(&m->values[n->in[2]]);
    }
    if (t->xsz != t->K || t->ysz != t->N)
        TN_NODE_ERR(e, n, "input must be (N, %d)", t->K);
    return 0;
}

int grad_compile_add(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    const rs_value *x = &m->values[t->x], *y = &m->values[t->y];
    (void)y;
    int b = n->in[1];
    if (b < 0)
        TN_NODE_ERR(e, n, "expected two inputs");
    if (m->values[b].is_const) {
        if (!is_fconst(m, b))
            TN_NODE_ERR(e, n, "constant addend must be float");
        t->param[1] = b;
        t->bias_n = (int)model_value_numel(&m->values[b]);
        t->N = (int)t->ysz;
        if (t->bias_n != 1 && t->bias_n != t->ysz &&
            !(x->ndim >= 2 && t->bias_n == x->dims[x->ndim - 1]))
            TN_NODE_ERR(e, n, "constant addend \"%s\" does not broadcast", m->values[b].name);
    } else {
        t->x2 = b;
    }
    return 0;
}

/* Relu, Flatten, Reshape, Identity, Cast (to float: a copy) */
int grad_compile_same(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    (void)m;
    if (t->xsz != t->ysz)
        TN_NODE_ERR(e, n, "input and output sizes differ");
    return 0;
}

int grad_compile_clip(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    (void)m;
    t->alpha = n->clip_min;
    t->beta = n->clip_max;
    if (t->xsz != t->ysz)
        TN_NODE_ERR(e, n, "input and output sizes differ");
    return 0;
}

int grad_compile_batchnorm(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    const rs_value *x = &m->values[t->x], *y = &m->values[t->y];
    (void)y;
    if (x->ndim < 2 || x->dims[1] < 1 || t->xsz != t->ysz || n->n_in != 5)
        TN_NODE_ERR(e, n, "input must be (N,C,...) and match the output");
    for (int k = 1; k < 5; ++k)
        if (!is_fconst(m, n->in[k]) || model_value_numel(&m->values[n->in[k]]) != x->dims[1])
            TN_NODE_ERR(e, n, "input %d must be a float initializer of %lld elements", k,
                     (long long)x->dims[1]);
    t->cin = (int)x->dims[1];
    t->K = (int)(t->xsz / t->cin);
    /* γ and β learn (neither decays); the running mean and variance are statistics */
    t->param[2] = n->in[1];
    t->param[1] = n->in[2];
    return 0;
}

int grad_compile_reducemean(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    const rs_value *x = &m->values[t->x], *y = &m->values[t->y];
    (void)y;
    int seen = 0;
    for (int k = 0; k < n->n_axes; ++k)
        seen |= 1 << (n->axes[k] < 0 ? n->axes[k] + x->ndim : n->axes[k]);
    if (x->ndim != 4 || n->n_axes != 2 || seen != 12)
        TN_NODE_ERR(e, n, "only a mean over the spatial axes (2, 3) of (N,C,H,W) trains");
    t->op = RS_OP_GLOBALAVGPOOL;
    t->cin = t->cout = (int)x->dims[1], t->ih = (int)x->dims[2], t->iw = (int)x->dims[3];
    t->oh = t->ow = 1;
    t->kh = t->ih, t->kw = t->iw, t->sh = t->sw = 1;
    t->pt = t->pl = 0;
    return 0;
}

int grad_compile_avgpool(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    const rs_value *x = &m->values[t->x], *y = &m->values[t->y];
    if (x->ndim != 4 || y->ndim != 4)
        TN_NODE_ERR(e, n, "input and output must be (N,C,H,W)");
    t->cin = t->cout = (int)x->dims[1], t->ih = (int)x->dims[2], t->iw = (int)x->dims[3];
    t->oh = (int)y->dims[2], t->ow = (int)y->dims[3];
    if (n->op == RS_OP_GLOBALAVGPOOL) {
        t->kh = t->ih, t->kw = t->iw, t->sh = t->sw = 1;
        t->pt = t->pl = 0;
    } else {
        t->kh = (int)n->kernel[0], t->kw = (int)n->kernel[1];
        t->sh = (int)n->strides[0], t->sw = (int)n->strides[1];
        t->pt = (int)n->pads[0], t->pl = (int)n->pads[1];
    }
    return 0;
}

int tn_compile(const rs_model *m, int i, kern_isa isa, tn_node *t, rs_err *e)
{
    const rs_node *n = &m->nodes[i];
    memset(t, 0, sizeof *t);
    t->node = i;
    t->op = n->op;
    t->x = n->in[0];
    t->x2 = -1;
    t->y = n->out[0];
    t->param[0] = t->param[1] = t->param[2] = -1;
    const rs_value *x = &m->values[t->x], *y = &m->values[t->y];
    t->xsz = model_value_numel(x);
    t->ysz = model_value_numel(y);
    if (t->xsz > (1 << 28) || t->ysz > (1 << 28))
        TN_NODE_ERR(e, n, "activation too large to train");
    t->isa = isa;
    const rs_op_desc *d = ops_get(n->op);
    if (!d || !d->train_compile)
        TN_NODE_ERR(e, n, "op not supported for training");
    return d->train_compile(m, n, t, e);
}

/* ---- max pooling ------------------------------------------------------------------------------ */

/* The common 2×2 stride-2 unpadded window, without bounds checks. */
static int pool_is_2x2(const tn_node *t)
{
    return t->kh == 2 && t->kw == 2 && t->sh == 2 && t->sw == 2 && t->pt == 0 && t->pl == 0 &&
           t->dh == 1 && t->dw == 1 && 2 * t->oh <= t->ih && 2 * t->ow <= t->iw;
}

static void pool_forward_2x2(const tn_node *t, const float *x, float *y, int32_t *idx, int ns)
{
    int iw = t->iw;
    size_t planes = (size_t)ns * t->cin, ihw = (size_t)t->ih * iw, ohw = (size_t)t->oh * t->ow;
    for (size_t p = 0; p < planes; ++p) {
        const float *xp = x + p * ihw;
        float *yp = y + p * ohw;
        int32_t *ip = idx + p * ohw;
        for (int oy = 0; oy < t->oh; ++oy)
            for (int ox = 0; ox < t->ow; ++ox) {
                int k = 2 * oy * iw + 2 * ox;
                /* first maximum in row-major window order wins ties */
                int b = k;
                float v = xp[k];
                if (xp[k + 1] > v)
                    v = xp[k + 1], b = k + 1;
                if (xp[k + iw] > v)
                    v = xp[k + iw], b = k + iw;
                if (xp[k + iw + 1] > v)
                    v = xp[k + iw + 1], b = k + iw + 1;
                yp[oy * t->ow + ox] = v;
                ip[oy * t->ow + ox] = b;
            }
    }
}

static void pool_forward(const tn_node *t, const float *x, float *y, int32_t *idx, int ns)
{
    size_t ihw = (size_t)t->ih * t->iw;
    int ohw = t->oh * t->ow;
    if (pool_is_2x2(t)) {
        pool_forward_2x2(t, x, y, idx, ns);
        return;
    }
    for (int i = 0; i < ns; ++i)
        for (int c = 0; c < t->cin; ++c) {
            const float *xp = x + (size_t)i * t->xsz + (size_t)c * ihw;
            float *yp = y + (size_t)i * t->ysz + (size_t)c * ohw;
            int32_t *ip = idx + (size_t)i * t->ysz + (size_t)c * ohw;
            for (int oy = 0; oy < t->oh; ++oy)
                for (int ox = 0; ox < t->ow; ++ox) {
                    float best = 0;
                    int32_t bi = -1;
                    for (int ki = 0; ki < t->kh; ++ki) {
                        int iy = oy * t->sh - t->pt + ki * t->dh;
                        if (iy < 0 || iy >= t->ih)
                            continue;
                        for (int kj = 0; kj < t->kw; ++kj) {
                            int ix = ox * t->sw - t->pl + kj * t->dw;
                            if (ix < 0 || ix >= t->iw)
                                continue;
                            float v = xp[iy * t->iw + ix];
                            /* strict '>' keeps the first maximum on ties (PyTorch's choice) */
                            if (bi < 0 || v > best) {
                                best = v;
                                bi = iy * t->iw + ix;
                            }
                        }
                    }
                    yp[oy * t->ow + ox] = best;
                    ip[oy * t->ow + ox] = bi;
                }
        }
}

static void pool_backward(const tn_node *t, const float *dy, float *dx, const int32_t *idx, int ns)
{
    size_t ihw = (size_t)t->ih * t->iw;
    int ohw = t->oh * t->ow;
    for (int i = 0; i < ns; ++i)
        for (int c = 0; c < t->cin; ++c) {
            float *dxp = dx + (size_t)i * t->xsz + (size_t)c * ihw;
            const float *dyp = dy + (size_t)i * t->ysz + (size_t)c * ohw;
            const int32_t *ip = idx + (size_t)i * t->ysz + (size_t)c * ohw;
            for (int k = 0; k < ohw; ++k)
                if (ip[k] >= 0)
                    dxp[ip[k]] += dyp[k];
        }
}

/* ---- average pooling and BatchNormalization -------------------------------------------------- */

/* Average pooling forward (dy == NULL: y = mean of the window) or backward (dx += dy / divisor
 * for every in-range tap); the divisor follows ONNX's count_include_pad (see infer.c). */
static void avgpool_pass(const tn_node *t, const rs_node *n, const float *x, float *y,
                         const float *dy, float *dx, int ns)
{
    int glob = n->op == RS_OP_GLOBALAVGPOOL;
    int pb = glob ? 0 : (int)n->pads[2], pr = glob ? 0 : (int)n->pads[3];
    int count_pad = glob ? 0 : n->count_include_pad;
    size_t ihw = (size_t)t->ih * t->iw, ohw = (size_t)t->oh * t->ow;
    for (int i = 0; i < ns; ++i)
        for (int c = 0; c < t->cin; ++c) {
            size_t xo = (size_t)i * t->xsz + (size_t)c * ihw, yo = (size_t)i * t->ysz + (size_t)c * ohw;
            for (int oy = 0; oy < t->oh; ++oy)
                for (int ox = 0; ox < t->ow; ++ox) {
                    int y0 = oy * t->sh - t->pt, x0 = ox * t->sw - t->pl;
                    int y1 = y0 + t->kh < t->ih + pb ? y0 + t->kh : t->ih + pb;
                    int x1 = x0 + t->kw < t->iw + pr ? x0 + t->kw : t->iw + pr;
                    int ya = y0 < 0 ? 0 : y0, yb = y1 < t->ih ? y1 : t->ih;
                    int xa = x0 < 0 ? 0 : x0, xb = x1 < t->iw ? x1 : t->iw;
                    int div = count_pad ? (y1 - y0) * (x1 - x0) : (yb - ya) * (xb - xa);
                    if (div <= 0) {
                        if (!dy)
                            y[yo + (size_t)oy * t->ow + ox] = 0.0f;
                        continue;
                    }
                    if (!dy) {
                        float acc = 0.0f;
                        for (int yy = ya; yy < yb; ++yy)
                            for (int xx = xa; xx < xb; ++xx)
                                acc += x[xo + (size_t)yy * t->iw + xx];
                        y[yo + (size_t)oy * t->ow + ox] = acc / (float)div;
                    } else {
                        float g = dy[yo + (size_t)oy * t->ow + ox] / (float)div;
                        for (int yy = ya; yy < yb; ++yy)
                            for (int xx = xa; xx < xb; ++xx)
                                dx[xo + (size_t)yy * t->iw + xx] += g;
                    }
                }
        }
}

/* Channel c's scale and shift of BatchNormalization with its running statistics (eval mode). */
static void bn_channel(const rs_model *m, const rs_node *n, int c, float *scale, float *shift)
{
    double k = (double)m->values[n->in[1]].f[c] /
               sqrt((double)m->values[n->in[4]].f[c] + (double)n->epsilon);
    *scale = (float)k;
    *shift = (float)((double)m->values[n->in[2]].f[c] - (double)m->values[n->in[3]].f[c] * k);
}

static void bn_reduce(const tn_scratch *s, double *buf, int len)
{
    if (s->reduce)
        s->reduce(s->reduce_ctx, buf, len);
}

/* Per-row sums in eight float lanes (one vector of the lane type below, so every ISA adds in the
 * same order; GCC's own vectorisation of eight scalar accumulators shuffled lanes), combined in
 * double: rows are one channel of one image (K <= 1024 here), so each lane adds <= 128 terms. */
#define TN_LANES 8
typedef float tn_v8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef int tn_i8 __attribute__((vector_size(32)));

/* (macros: a function passing these vectors by value would change its ABI with the ISA) */
#define tn_splat(f) ((tn_v8){(f), (f), (f), (f), (f), (f), (f), (f)})

static inline double tn_lanes_sum(const float *v)
{
    double s = 0;
    for (int j = 0; j < TN_LANES; ++j)
        s += v[j];
    return s;
}

/* Σ(x − shift) and Σ(x − shift)² of one row. */
TN_VEC static void row_moments(const float *x, int K, float shift, double *s1, double *s2)
{
    tn_v8 a = tn_splat(0), b = tn_splat(0);
    const tn_v8 sv = tn_splat(shift);
    int k = 0;
    for (; k + TN_LANES <= K; k += TN_LANES) {
        tn_v8 d = *(const tn_v8 *)(x + k) - sv;
        a += d;
        b += d * d;
    }
    double sa = tn_lanes_sum((const float *)&a), sb = tn_lanes_sum((const float *)&b);
    for (; k < K; ++k) {
        double d = (double)x[k] - shift;
        sa += d, sb += d * d;
    }
    *s1 += sa, *s2 += sb;
}

/* The gradient a fused activation passes back at pre-activation value v (the unfused ReLU's
 * y > 0 and Clip's lo < x < hi: the same comparisons on the same floats). */
static inline float act_mask(int act, float v, float lo, float hi, float g)
{
    if (act == TN_ACT_RELU)
        return v > 0 ? g : 0.0f;
    if (act == TN_ACT_CLIP)
        return v > lo && v < hi ? g : 0.0f;
    return g;
}

/* y = act(x·sc + sh) over one row (the unfused ops' exact expressions). */
TN_VEC static void bn_apply(const float *restrict x, float *restrict y, int K, float sc, float sh, int act,
                            float lo, float hi)
{
    if (act == TN_ACT_RELU)
        for (int k = 0; k < K; ++k) {
            float v = x[k] * sc + sh;
            y[k] = v > 0 ? v : 0.0f;
        }
    else if (act == TN_ACT_CLIP)
        for (int k = 0; k < K; ++k) {
            float v = x[k] * sc + sh;
            y[k] = v < lo ? lo : v > hi ? hi : v;
        }
    else
        for (int k = 0; k < K; ++k)
            y[k] = x[k] * sc + sh;
}

/* Σ g and Σ g·(x − mean) of one row, g = dy through the fused activation (whose pre-activation
 * values are x·sc + sh). */
#define TN_ROW_DOTS(KEEP)                                                                          \
    for (; k + TN_LANES <= K; k += TN_LANES) {                                                     \
        const tn_v8 xv = *(const tn_v8 *)(x + k), v = xv * scv + shv;                              \
        const tn_v8 g = (tn_v8)((tn_i8) * (const tn_v8 *)(dy + k) & (KEEP));                       \
        a += g;                                                                                    \
        b += g * (xv - mv);                                                                        \
    }
TN_VEC static void row_dots(const float *restrict x, const float *restrict dy, int K, float mean, float sc,
                            float sh, int act, float lo, float hi, double *sa_out, double *sb_out)
{
    tn_v8 a = tn_splat(0), b = tn_splat(0);
    const tn_v8 mv = tn_splat(mean), scv = tn_splat(sc), shv = tn_splat(sh), lov = tn_splat(lo), hiv = tn_splat(hi);
    const tn_v8 zero = tn_splat(0);
    int k = 0;
    if (act == TN_ACT_RELU)
        TN_ROW_DOTS(v > zero)
    else if (act == TN_ACT_CLIP)
        TN_ROW_DOTS((v > lov) & (v < hiv))
    else
        TN_ROW_DOTS((v == v) | (v != v))
    double sa = tn_lanes_sum((const float *)&a), sb = tn_lanes_sum((const float *)&b);
    for (; k < K; ++k) {
        float g = act_mask(act, x[k] * sc + sh, lo, hi, dy[k]);
        sa += g, sb += (double)g * ((double)x[k] - mean);
    }
    *sa_out += sa, *sb_out += sb;
}
#undef TN_ROW_DOTS

/* dx (= or +=) k·g + kx·(x − mf) + k0 over one row, g as row_dots'. */
TN_VEC static void bn_dx_row(const float *restrict x, const float *restrict dy, float *restrict dx, int K,
                             float k, float kx, float k0, float mf, float sc, float sh, int act, float lo,
                             float hi, int fresh)
{
    if (fresh)
        for (int j = 0; j < K; ++j)
            dx[j] = k * act_mask(act, x[j] * sc + sh, lo, hi, dy[j]) + kx * (x[j] - mf) + k0;
    else
        for (int j = 0; j < K; ++j)
            dx[j] += k * act_mask(act, x[j] * sc + sh, lo, hi, dy[j]) + kx * (x[j] - mf) + k0;
}

/* Training mode: normalise with the mean and biased variance of the whole batch (every worker's
 * slice), y = γ·x̂ + β, x̂ = (x − μ)/√(σ²+ε). Moments are taken about the running mean, which
 * tracks the batch mean, so E[d²] − E[d]² does not cancel even for activations far from zero. */
void tn_bn_moments(const float *x, int ns, size_t xsz, int C, int K, const float *shift, double *sums)
{
    for (int i = 0; i < ns; ++i)
        for (int c = 0; c < C; ++c)
            row_moments(x + (size_t)i * xsz + (size_t)c * K, K, shift[c], &sums[2 * c], &sums[2 * c + 1]);
}

static void bn_forward_batch(const tn_node *t, const rs_model *m, const float *x, float *y, int ns,
                             const tn_scratch *s)
{
    const rs_node *n = &m->nodes[t->node];
    const float *gamma = m->values[n->in[1]].f, *beta = m->values[n->in[2]].f;
    const float *shift = m->values[n->in[3]].f;
    int C = t->cin, K = t->K;
    double *red = s->bn_red;
    if (t->pre_stats) {
        memcpy(red, s->bn_sums + t->sum_off, 2 * (size_t)C * sizeof *red);
    } else {
        memset(red, 0, 2 * (size_t)C * sizeof *red);
        tn_bn_moments(x, ns, (size_t)t->xsz, C, K, shift, red);
    }
    red[2 * C] = (double)ns * K;
    bn_reduce(s, red, 2 * C + 1);
    double M = red[2 * C];
    float *st = s->bn_stats + t->bn_off;
    for (int c = 0; c < C; ++c) {
        double dm = red[2 * c] / M, var = red[2 * c + 1] / M - dm * dm, mean = shift[c] + dm;
        if (var < 0)
            var = 0;
        double inv = 1.0 / sqrt(var + (double)n->epsilon);
        st[c] = (float)mean, st[C + c] = (float)inv, st[2 * C + c] = (float)var;
        float sc = (float)(gamma[c] * inv), sh = (float)(beta[c] - mean * gamma[c] * inv);
        st[3 * C + 1 + c] = sc, st[4 * C + 1 + c] = sh;
    }
    st[3 * C] = (float)M;
    /* image by image, channels in order: one forward stream through memory (channel-major rows
     * of K <= 256 floats, images 32-64 KB apart, defeated the prefetcher) */
    for (int i = 0; i < ns && !t->into_add; ++i)
        for (int c = 0; c < C; ++c) {
            size_t o = (size_t)i * t->xsz + (size_t)c * K;
            bn_apply(x + o, y + o, K, st[3 * C + 1 + c], st[4 * C + 1 + c], t->act, t->alpha, t->beta);
        }
}

/* dβ = Σ dy, dγ = Σ dy·x̂ (this slice's share; the worker sums add up to the batch's), and
 * dx = γ/√(σ²+ε) · (dy − mean(dy) − x̂·mean(dy·x̂)) with the means over the whole batch,
 * applied as dx += k·dy + kx·(x − μ) + k0 so the per-element work is a few multiply-adds. */
static void bn_backward_batch(const tn_node *t, const rs_model *m, const float *x,
                                     const float *dy, float *dx, int fresh, float *dgamma, float *dbeta,
                                     int ns, const tn_scratch *s)
{
    const rs_node *n = &m->nodes[t->node];
    const float *gamma = m->values[n->in[1]].f;
    int C = t->cin, K = t->K;
    const float *st = s->bn_stats + t->bn_off;
    double *red = s->bn_red, M = st[3 * C];
    /* image-major like the forward (each channel's sums still add the images in order) */
    memset(red, 0, 2 * (size_t)C * sizeof *red);
    for (int i = 0; i < ns; ++i)
        for (int c = 0; c < C; ++c) {
            size_t o = (size_t)i * t->xsz + (size_t)c * K;
            row_dots(x + o, dy + o, K, st[c], st[3 * C + 1 + c], st[4 * C + 1 + c], t->act, t->alpha, t->beta,
                     &red[2 * c], &red[2 * c + 1]);
        }
    for (int c = 0; c < C; ++c) {
        red[2 * c + 1] *= (double)st[C + c];
        if (dbeta)
            dbeta[c] += (float)red[2 * c];
        if (dgamma)
            dgamma[c] += (float)red[2 * c + 1];
    }
    if (!dx)
        return;
    bn_reduce(s, red, 2 * C);
    float *kc = s->bn_stats + t->bn_off + 5 * (size_t)C + 1; /* k, kx, k0 of each channel */
    for (int c = 0; c < C; ++c) {
        double inv = st[C + c], ma = red[2 * c] / M, mb = red[2 * c + 1] / M;
        double k1 = gamma[c] * inv;
        kc[3 * c] = (float)k1, kc[3 * c + 1] = (float)(-k1 * mb * inv), kc[3 * c + 2] = (float)(-k1 * ma);
    }
    for (int i = 0; i < ns; ++i)
        for (int c = 0; c < C; ++c) {
            size_t o = (size_t)i * t->xsz + (size_t)c * K;
            bn_dx_row(x + o, dy + o, dx + o, K, kc[3 * c], kc[3 * c + 1], kc[3 * c + 2], st[c], st[3 * C + 1 + c],
                      st[4 * C + 1 + c], t->act, t->alpha, t->beta, fresh);
        }
}

/* Eval mode: the frozen affine of the running statistics; γ and β still get their gradients. */
static void bn_backward_running(const tn_node *t, const rs_model *m, const float *x, const float *dy,
                                float *dx, int fresh, float *dgamma, float *dbeta, int ns)
{
    const rs_node *n = &m->nodes[t->node];
    const float *mean = m->values[n->in[3]].f, *var = m->values[n->in[4]].f;
    for (int c = 0; c < t->cin; ++c) {
        float sc, sh;
        bn_channel(m, n, c, &sc, &sh);
        double inv = 1.0 / sqrt((double)var[c] + (double)n->epsilon), a = 0, b = 0;
        for (int i = 0; i < ns; ++i) {
            size_t o = (size_t)i * t->xsz + (size_t)c * t->K;
            for (int k = 0; k < t->K; ++k) {
                float g = act_mask(t->act, x[o + k] * sc + sh, t->alpha, t->beta, dy[o + k]);
                if (dx)
                    dx[o + k] = (fresh ? 0.0f : dx[o + k]) + g * sc;
                a += g;
                b += g * ((x[o + k] - mean[c]) * inv);
            }
        }
        if (dbeta)
            dbeta[c] += (float)a;
        if (dgamma)
            dgamma[c] += (float)b;
    }
}

/* ---- elementwise ------------------------------------------------------------------------------ */

/* Branch-free and unaliased so they vectorise: the sign pattern of activations is random. */
TN_VEC static void relu_backward(const float *restrict y, const float *restrict dy,
                                 float *restrict dx, size_t n, int fresh)
{
    if (fresh)
        for (size_t k = 0; k < n; ++k)
            dx[k] = y[k] > 0 ? dy[k] : 0.0f;
    else
        for (size_t k = 0; k < n; ++k) {
            float g = dy[k];
            dx[k] += y[k] > 0 ? g : 0.0f;
        }
}

/* The gradient passes where the input is strictly inside the bounds. */
TN_VEC static void clip_backward(const float *restrict x, const float *restrict dy,
                                 float *restrict dx, size_t n, float lo, float hi, int fresh)
{
    if (fresh)
        for (size_t k = 0; k < n; ++k)
            dx[k] = x[k] > lo && x[k] < hi ? dy[k] : 0.0f;
    else
        for (size_t k = 0; k < n; ++k) {
            float g = dy[k];
            dx[k] += x[k] > lo && x[k] < hi ? g : 0.0f;
        }
}

/* ---- each op's passes (named by its registry row: train_forward / train_backward) ---------- */

/* Every field of the pass as a local (each function uses a few). */
#define TN_PASS_LOCALS(p)                                                                          \
    const tn_node *t = (p)->t;                                                                     \
    rs_model *m = (p)->m;                                                                          \
    float **act = (p)->act, **grad = (p)->grad, *pgrad = (p)->pgrad;                               \
    const tn_scratch *s = (p)->s;                                                                  \
    int ns = (p)->ns;                                                                              \
    size_t total = (p)->total;                                                                     \
    const size_t *poff = (p)->poff;                                                                \
    const uint8_t *need = (p)->need, *is_param = (p)->is_param;                                    \
    const float *x = (p)->x, *dy = (p)->dy;                                                        \
    float *y = (p)->y, *dx = (p)->dx, *dw = (p)->dw, *db = (p)->db;                                \
    (void)t, (void)m, (void)act, (void)grad, (void)pgrad, (void)s, (void)ns, (void)total,          \
        (void)poff, (void)need, (void)is_param, (void)x, (void)dy, (void)y, (void)dx, (void)dw,    \
        (void)db

void grad_fwd_maxpool(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    pool_forward(t, x, y, s->pidx + t->pidx_off * (size_t)ns, ns);
}

void grad_fwd_dense(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    const float *w = m->values[t->param[0]].f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, t->trans_b ? CblasTrans : CblasNoTrans, ns, t->N,
                t->K, t->alpha, x, t->K, w, t->trans_b ? t->K : t->N, 0.0f, y, t->N);
    if (t->param[1] >= 0 && t->beta != 0.0f) {
        const float *c = m->values[t->param[1]].f;
        for (int i = 0; i < ns; ++i) {
            float *yi = y + (size_t)i * t->N;
            for (int j = 0; j < t->N; ++j)
                yi[j] += t->beta * c[t->bias_n == 1 ? 0 : j];
        }
    }
}

/* y = act(a + b) (the fused activation's exact expressions). */
TN_VEC static void add_act(const float *restrict a, const float *restrict b, float *restrict y, size_t n, int act,
                           float lo, float hi)
{
    if (act == TN_ACT_RELU)
        for (size_t k = 0; k < n; ++k) {
            float v = a[k] + b[k];
            y[k] = v > 0 ? v : 0.0f;
        }
    else if (act == TN_ACT_CLIP)
        for (size_t k = 0; k < n; ++k) {
            float v = a[k] + b[k];
            y[k] = v < lo ? lo : v > hi ? hi : v;
        }
    else
        for (size_t k = 0; k < n; ++k)
            y[k] = a[k] + b[k];
}

/* The backward of a fused Add: g = dy through the activation (mask from its output y: the
 * same outcome as from its input for ReLU and Clip), dx and dx2 each written (mode 1), added to
 * (2) or left alone (0). The modes are constants in each expansion: tested inside the loop, GCC
 * made the stores masked stores (vmaskmovps), which took four fifths of the pass on Zen 4. */
#define TN_ADD_BWD(MODE, MODE2)                                                                    \
    for (size_t k = 0; k < n; ++k) {                                                               \
        float g = act_mask(act, y[k], lo, hi, dy[k]);                                              \
        if ((MODE) == 1)                                                                           \
            dx[k] = g;                                                                             \
        if ((MODE) == 2)                                                                           \
            dx[k] += g;                                                                            \
        if ((MODE2) == 1)                                                                          \
            dx2[k] = g;                                                                            \
        if ((MODE2) == 2)                                                                          \
            dx2[k] += g;                                                                           \
    }
TN_VEC static void add_act_backward(const float *restrict y, const float *restrict dy, float *restrict dx,
                                    float *restrict dx2, size_t n, int act, float lo, float hi, int fresh,
                                    int fresh2)
{
    int m1 = !dx ? 0 : fresh ? 1 : 2, m2 = !dx2 ? 0 : fresh2 ? 1 : 2;
    switch (3 * m1 + m2) {
    case 0: break;
    case 1: TN_ADD_BWD(0, 1) break;
    case 2: TN_ADD_BWD(0, 2) break;
    case 3: TN_ADD_BWD(1, 0) break;
    case 4: TN_ADD_BWD(1, 1) break;
    case 5: TN_ADD_BWD(1, 2) break;
    case 6: TN_ADD_BWD(2, 0) break;
    case 7: TN_ADD_BWD(2, 1) break;
    default: TN_ADD_BWD(2, 2) break;
    }
}
#undef TN_ADD_BWD

/* y = act(bn + o), bn = bx·sc + sh: a BatchNormalization's output and the Add of it (either
 * side: the sum is commutative) with the unfused ops' expressions. */
TN_VEC static void add_bn_act(const float *restrict bx, const float *restrict o, float *restrict y, int K, float sc,
                              float sh, int act, float lo, float hi)
{
    if (act == TN_ACT_RELU)
        for (int k = 0; k < K; ++k) {
            float b = bx[k] * sc + sh;
            float v = b + o[k];
            y[k] = v > 0 ? v : 0.0f;
        }
    else if (act == TN_ACT_CLIP)
        for (int k = 0; k < K; ++k) {
            float b = bx[k] * sc + sh;
            float v = b + o[k];
            y[k] = v < lo ? lo : v > hi ? hi : v;
        }
    else
        for (int k = 0; k < K; ++k) {
            float b = bx[k] * sc + sh;
            y[k] = b + o[k];
        }
}

void grad_fwd_add(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    if (t->add_bn) { /* the BatchNormalization's scale and shift applied here (tn_fuse_bn_add) */
        const float *bx = act[t->add_bn_x], *o = act[t->x == t->add_bn_y ? t->x2 : t->x];
        const float *st = s->bn_stats + t->add_bn_off;
        float *out = t->act ? act[t->act_y] : y;
        int C = t->add_bn_c, K = t->add_bn_k;
        for (int i = 0; i < ns; ++i)
            for (int c = 0; c < C; ++c) {
                size_t off = (size_t)i * (size_t)t->ysz + (size_t)c * K;
                add_bn_act(bx + off, o + off, out + off, K, st[3 * C + 1 + c], st[4 * C + 1 + c], t->act, t->alpha,
                           t->beta);
            }
        return;
    }
    if (t->x2 >= 0) {
        add_act(x, act[t->x2], t->act ? act[t->act_y] : y, total, t->act, t->alpha, t->beta);
    } else {
        const float *b = m->values[t->param[1]].f;
        size_t bn = (size_t)t->bias_n;
        for (size_t k = 0; k < total; ++k)
            y[k] = x[k] + b[bn == 1 ? 0 : k % bn];
    }
}

void grad_fwd_relu(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    for (size_t k = 0; k < total; ++k)
        y[k] = x[k] > 0 ? x[k] : 0.0f;
}

void grad_fwd_clip(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    for (size_t k = 0; k < total; ++k)
        y[k] = x[k] < t->alpha ? t->alpha : x[k] > t->beta ? t->beta : x[k];
}

void grad_fwd_batchnorm(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    if (t->act)
        y = act[t->act_y];
    if (s->bn_batch) {
        bn_forward_batch(t, m, x, y, ns, s);
        return;
    }
    float *st = s->bn_stats + t->bn_off;
    for (int c = 0; c < t->cin; ++c) {
        float sc, sh;
        bn_channel(m, &m->nodes[t->node], c, &sc, &sh);
        if (t->into_add) { /* the Add applies them */
            st[3 * t->cin + 1 + c] = sc, st[4 * t->cin + 1 + c] = sh;
            continue;
        }
        for (int i = 0; i < ns; ++i) {
            size_t o = (size_t)i * t->xsz + (size_t)c * t->K;
            bn_apply(x + o, y + o, t->K, sc, sh, t->act, t->alpha, t->beta);
        }
    }
}

void grad_fwd_avgpool(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    avgpool_pass(t, &m->nodes[t->node], x, y, NULL, NULL, ns);
}

void grad_bwd_maxpool(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    if (dx)
        pool_backward(t, dy, dx, s->pidx + t->pidx_off * (size_t)ns, ns);
}

void grad_bwd_dense(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    const float *w = m->values[t->param[0]].f;
    if (dx) /* dX += α·dY·op(B)ᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, t->trans_b ? CblasNoTrans : CblasTrans, ns,
                    t->K, t->N, t->alpha, dy, t->N, w, t->trans_b ? t->K : t->N, 1.0f, dx, t->K);
    if (dw) {
        if (t->trans_b) /* dB (N×K) += α·dYᵀ·X */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t->N, t->K, ns, t->alpha, dy,
                        t->N, x, t->K, 1.0f, dw, t->K);
        else /* dB (K×N) += α·Xᵀ·dY */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t->K, t->N, ns, t->alpha, x,
                        t->K, dy, t->N, 1.0f, dw, t->N);
    }
    if (db)
        for (int i = 0; i < ns; ++i) {
            const float *dyi = dy + (size_t)i * t->N;
            for (int j = 0; j < t->N; ++j)
                db[t->bias_n == 1 ? 0 : j] += t->beta * dyi[j];
        }
}

void grad_bwd_add(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    if (t->act) { /* fused: two activations in (tn_fuse_activations) */
        add_act_backward(act[t->act_y], grad[t->act_y], dx, need[t->x2] ? grad[t->x2] : NULL, total, t->act,
                         t->alpha, t->beta, p->dx_fresh, t->x2_first);
        return;
    }
    if (dx && p->dx_fresh)
        memcpy(dx, dy, total * sizeof *dx);
    else if (dx)
        for (size_t k = 0; k < total; ++k)
            dx[k] += dy[k];
    if (t->x2 >= 0 && need[t->x2] && t->x2_first) {
        memcpy(grad[t->x2], dy, total * sizeof *dy);
    } else if (t->x2 >= 0 && need[t->x2]) {
        float *dx2 = grad[t->x2];
        for (size_t k = 0; k < total; ++k)
            dx2[k] += dy[k];
    }
    if (db) {
        size_t bn = (size_t)t->bias_n;
        for (size_t k = 0; k < total; ++k)
            db[bn == 1 ? 0 : k % bn] += dy[k];
    }
}

void grad_bwd_relu(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    if (dx)
        relu_backward(act[t->y], dy, dx, total, p->dx_fresh);
}

void grad_bwd_clip(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    if (dx)
        clip_backward(act[t->x], dy, dx, total, t->alpha, t->beta, p->dx_fresh);
}

void grad_bwd_batchnorm(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    float *dg = t->param[2] >= 0 && is_param[t->param[2]] ? pgrad + poff[t->param[2]] : NULL;
    if (t->act)
        dy = grad[t->act_y];
    if (s->bn_batch)
        bn_backward_batch(t, m, act[t->x], dy, dx, p->dx_fresh, dg, db, ns, s);
    else
        bn_backward_running(t, m, act[t->x], dy, dx, p->dx_fresh, dg, db, ns);
}

void grad_bwd_avgpool(const tn_pass *p)
{
    TN_PASS_LOCALS(p);
    if (dx)
        avgpool_pass(t, &m->nodes[t->node], NULL, NULL, dy, dx, ns);
}

/* ---- dispatch --------------------------------------------------------------------------------- */

void tn_forward(const tn_node *t, rs_model *m, float **act, int ns, const tn_scratch *s)
{
    const float *x = act[t->x];
    float *y = act[t->y];
    size_t total = (size_t)ns * (size_t)t->ysz;
    tn_pass p = {.t = t, .m = m, .act = act, .ns = ns, .s = s, .total = total, .x = x, .y = y};
    const rs_op_desc *d = ops_get(t->op);
    if (d && d->train_forward)
        d->train_forward(&p);
    else /* Flatten, Reshape, Identity, Cast: per-image data is already contiguous */
        memcpy(y, x, total * sizeof *y);
}

void tn_backward(const tn_node *t, rs_model *m, float **act, float **grad, const uint8_t *need,
                 const uint8_t *is_param, const size_t *poff, float *pgrad, int ns,
                 const tn_scratch *s)
{
    if (!need[t->y])
        return; /* nothing upstream wants a gradient */
    const float *dy = grad[t->y];
    float *dx = need[t->x] ? grad[t->x] : NULL;
    float *dw = t->param[0] >= 0 && is_param[t->param[0]] ? pgrad + poff[t->param[0]] : NULL;
    float *db = t->param[1] >= 0 && is_param[t->param[1]] ? pgrad + poff[t->param[1]] : NULL;
    size_t total = (size_t)ns * (size_t)t->ysz;
    tn_pass p = {.t = t, .m = m, .act = act, .ns = ns, .s = s, .total = total, .x = act[t->x],
                 .y = act[t->y], .grad = grad, .need = need, .is_param = is_param, .poff = poff,
                 .pgrad = pgrad, .dy = dy, .dx = dx, .dw = dw, .db = db};
    const rs_op_desc *d = ops_get(t->op);
    p.dx_fresh = dx && (t->x_first || (s->fresh && s->fresh[t->x] == 1));
    if (p.dx_fresh && !tn_fresh_ok(t->op)) { /* not marked by train.c; stay correct anyway */
        memset(dx, 0, (size_t)ns * (size_t)t->xsz * sizeof *dx);
        p.dx_fresh = 0;
    }
    if (d && d->train_backward)
        d->train_backward(&p);
    else if (dx && p.dx_fresh)
        memcpy(dx, dy, total * sizeof *dx);
    else if (dx)
        for (size_t k = 0; k < total; ++k)
            dx[k] += dy[k];
}

int tn_fresh_ok(rs_op op)
{
    const rs_op_desc *d = ops_get(op);
    return op == RS_OP_RELU || op == RS_OP_CLIP || op == RS_OP_BATCHNORM || op == RS_OP_ADD || op == RS_OP_CONV ||
           (d && !d->train_backward);
}

void tn_fuse_activations(tn_node *tn, int n_tn, const int *uses)
{
    for (int i = 0; i < n_tn; ++i) {
        tn_node *b = &tn[i];
        int two_in = b->op == RS_OP_ADD && b->x2 >= 0 && b->x2 != b->x;
        if (!(b->op == RS_OP_BATCHNORM || two_in) || uses[b->y] != 1)
            continue;
        for (int j = i + 1; j < n_tn; ++j) {
            tn_node *a = &tn[j];
            if (a->x != b->y)
                continue;
            if ((a->op == RS_OP_RELU || a->op == RS_OP_CLIP) && a->x2 < 0 && a->xsz == b->ysz) {
                b->act = a->op == RS_OP_RELU ? TN_ACT_RELU : TN_ACT_CLIP;
                b->act_y = a->y;
                b->alpha = a->alpha, b->beta = a->beta;
                a->fused = 1;
            }
            break;
        }
    }
}

void tn_fuse_statistics(tn_node *tn, int n_tn, const int *uses)
{
    for (int i = 0; i < n_tn; ++i) {
        tn_node *c = &tn[i];
        if (c->op != RS_OP_CONV || uses[c->y] != 1)
            continue;
        for (int j = i + 1; j < n_tn; ++j) {
            tn_node *b = &tn[j];
            if (b->x != c->y)
                continue;
            if (b->op == RS_OP_BATCHNORM && b->cin == c->cout && (int64_t)b->K * b->cin == c->ysz) {
                c->stats = 1;
                c->stats_node = b->node;
                c->sum_off = b->sum_off;
                b->pre_stats = 1;
            }
            break;
        }
    }
}

void tn_fuse_bn_add(tn_node *tn, int n_tn, const int *uses)
{
    for (int i = 0; i < n_tn; ++i) {
        tn_node *b = &tn[i];
        if (b->op != RS_OP_BATCHNORM || b->act || b->fused || uses[b->y] != 1 || b->ysz != (int64_t)b->cin * b->K)
            continue;
        for (int j = i + 1; j < n_tn; ++j) {
            tn_node *a = &tn[j];
            if (a->x != b->y && a->x2 != b->y)
                continue;
            if (a->op == RS_OP_ADD && !a->fused && !a->add_bn && a->x2 >= 0 && a->x != a->x2 && a->xsz == b->ysz &&
                a->ysz == b->ysz) {
                b->into_add = 1;
                a->add_bn = 1;
                a->add_bn_x = b->x, a->add_bn_y = b->y;
                a->add_bn_c = b->cin, a->add_bn_k = b->K;
                a->add_bn_off = b->bn_off;
            }
            break;
        }
    }
}

/* ---- loss ------------------------------------------------------------------------------------- */

void tn_softmax_ce(const float *z, const uint8_t *labels, const float *teacher, float alpha,
                   float temp, int ns, int C, float scale, float *dz, double *loss, int *correct)
{
    double a = teacher ? alpha : 0.0, T = temp;
    for (int i = 0; i < ns; ++i) {
        const float *zi = z + (size_t)i * C;
        int y = labels[i], best = 0;
        double mx = zi[0];
        for (int c = 1; c < C; ++c)
            if (zi[c] > zi[best])
                best = c;
        mx = zi[best];
        if (best == y)
            ++*correct;
        double s = 0;
        for (int c = 0; c < C; ++c)
            s += exp((double)zi[c] - mx);
        double lse = mx + log(s);
        double l = (1.0 - a) * (lse - zi[y]);
        double qs = 0, ps = 0, tm = 0;
        const float *ti = teacher ? teacher + (size_t)i * C : NULL;
        if (ti) {
            /* student and teacher softmax at temperature T */
            tm = ti[0];
            for (int c = 1; c < C; ++c)
                if (ti[c] > tm)
                    tm = ti[c];
            for (int c = 0; c < C; ++c) {
                qs += exp(((double)zi[c] - mx) / T);
                ps += exp(((double)ti[c] - tm) / T);
            }
            double kl = 0;
            for (int c = 0; c < C; ++c) {
                double lp = ((double)ti[c] - tm) / T - log(ps);
                double lq = ((double)zi[c] - mx) / T - log(qs);
                kl += exp(lp) * (lp - lq);
            }
            l += a * T * T * kl;
        }
        *loss += l;
        if (!dz)
            continue;
        float *di = dz + (size_t)i * C;
        for (int c = 0; c < C; ++c) {
            double p = exp((double)zi[c] - lse);
            double g = (1.0 - a) * (p - (c == y ? 1.0 : 0.0));
            if (ti) {
                double q = exp(((double)zi[c] - mx) / T) / qs;
                double pt = exp(((double)ti[c] - tm) / T) / ps;
                g += a * T * (q - pt);
            }
            di[c] = (float)(g * scale);
        }
    }
}

/* ---- augmentation ------------------------------------------------------------------------------ */

void tn_augment_u8(const uint8_t *src, int c, int h, int w, int oy, int ox, int flip, float *out)
{
    for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y) {
            float *o = out + ((size_t)ch * h + y) * w;
            int sy = y + oy;
            if (sy < 0 || sy >= h) {
                for (int x = 0; x < w; ++x)
                    o[x] = -1.0f;
                continue;
            }
            const uint8_t *row = src + ((size_t)ch * h + sy) * w;
            for (int x = 0; x < w; ++x) {
                int sx = (flip ? w - 1 - x : x) + ox;
                o[x] = (sx < 0 || sx >= w) ? -1.0f : (float)row[sx] / 127.5f - 1.0f;
            }
        }
}

void tn_augment_f32(const float *src, int c, int h, int w, int oy, int ox, int flip, float pad_value,
                    float *out)
{
    for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y) {
            float *o = out + ((size_t)ch * h + y) * w;
            int sy = y + oy;
            if (sy < 0 || sy >= h) {
                for (int x = 0; x < w; ++x)
                    o[x] = pad_value;
                continue;
            }
            const float *row = src + ((size_t)ch * h + sy) * w;
            for (int x = 0; x < w; ++x) {
                int sx = (flip ? w - 1 - x : x) + ox;
                o[x] = (sx < 0 || sx >= w) ? pad_value : row[sx];
            }
        }
}
