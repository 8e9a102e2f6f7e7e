/* infer_compile.c — a model compiled into the tiled executor's steps.
 *
 *  - Conv → Relu → MaxPool (and Gemm/MatMul(+Add) → Relu) fuse into one step: bias and ReLU in
 *    the kernel epilogue, pooling read straight from the conv's scratch output.
 *  - A stride-1 Conv is computed on the "wide" grid (rows of the padded input width), so every
 *    im2col row is a shifted view of the input (boff); strided convs use an explicit im2col.
 *  - Values map to buffer slots by liveness (a slot is reused once every value in it is dead);
 *    Flatten / Reshape / Identity / Cast alias their input's slot (the layout is unchanged).
 *  - With c->nofuse (infer_capture) nothing fuses and the requested value is kept alive.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_internal.h"
#include "rankscope/ops.h"

static int round_up(int x, int m)
{
    return (x + m - 1) / m * m;
}

static int fits_int(int64_t x)
{
    return x >= 0 && x <= (int64_t)1 << 30;
}

/* Consumers of value v among nodes (plus 1 if it is the graph output). */
static int count_uses(const rs_model *m, int v)
{
    int uses = v == m->output;
    for (int i = 0; i < m->n_nodes; ++i)
        for (int j = 0; j < m->nodes[i].n_in; ++j)
            uses += m->nodes[i].in[j] == v;
    return uses;
}

/* The single node consuming v with op `op`, if v has exactly one use; else -1. */
static int sole_consumer(const rs_model *m, int v, rs_op op)
{
    if (count_uses(m, v) != 1)
        return -1;
    for (int i = 0; i < m->n_nodes; ++i)
        for (int j = 0; j < m->nodes[i].n_in; ++j)
            if (m->nodes[i].in[j] == v)
                return m->nodes[i].op == op ? i : -1;
    return -1;
}

static const rs_value *const_float(const rs_model *m, int v)
{
    if (v < 0 || v >= m->n_values)
        return NULL;
    const rs_value *val = &m->values[v];
    return val->is_const && val->dtype == RS_DT_FLOAT && val->f ? val : NULL;
}

void infer_step_free(step *s)
{
    free(s->name);
    free(s->w);
    free(s->bias);
    free(s->boff);
    free(s->addc);
    free(s->post_slope);
    free(s->cv_w);
    free(s->cv_bias);
    free(s->cv_coff);
    free(s->cv_opos);
    free(s->wino_u);
    model_free(s->op);
}

/* BatchNormalization's scale and shift per channel (C floats each, malloc'ed). */
int infer_bn_affine(const rs_model *m, const rs_node *n, int C, float **scale, float **shift,
                     rs_err *e)
{
    const rs_value *pv[4];
    for (int k = 0; k < 4; ++k) {
        pv[k] = n->n_in == 5 ? const_float(m, n->in[k + 1]) : NULL;
        if (!pv[k] || model_value_numel(pv[k]) != C)
            return rs_fail(e, "node %s (BatchNormalization): input %d must be a float initializer "
                           "of %d elements", n->name, k + 1, C);
    }
    *scale = malloc((size_t)C * sizeof(float));
    *shift = malloc((size_t)C * sizeof(float));
    if (!*scale || !*shift)
        return rs_fail(e, "node %s: out of memory", n->name);
    for (int ch = 0; ch < C; ++ch) {
        double sc = (double)pv[0]->f[ch] / sqrt((double)pv[3]->f[ch] + (double)n->epsilon);
        (*scale)[ch] = (float)sc;
        (*shift)[ch] = (float)((double)pv[1]->f[ch] - (double)pv[2]->f[ch] * sc);
    }
    return 0;
}


/* ---- compiling nodes into steps ----------------------------------------------------------- */


static int act4(const rs_model *m, int v, const rs_node *n, const char *what, int *c, int *h,
                int *w, rs_err *e)
{
    const rs_value *val = &m->values[v];
    if (val->ndim != 4 || val->dims[0] != -1)
        return rs_fail(e, "node %s (%s): %s '%s' must be an (N,C,H,W) activation", n->name,
                       model_op_name(n->op), what, val->name);
    if (!fits_int(val->dims[1]) || !fits_int(val->dims[2]) || !fits_int(val->dims[3]))
        return rs_fail(e, "node %s: %s '%s' has an unsupported shape", n->name, what, val->name);
    *c = (int)val->dims[1];
    *h = (int)val->dims[2];
    *w = (int)val->dims[3];
    return 0;
}

/* v is the graph input or written by a node before node ni (so by an earlier step). */
static int computed_before(const rs_model *m, int v, int ni)
{
    if (v == m->input)
        return 1;
    for (int i = 0; i < ni; ++i)
        for (int k = 0; k < m->nodes[i].n_out; ++k)
            if (m->nodes[i].out[k] == v)
                return 1;
    return 0;
}

/* The only node reading v (whatever its op), or -1. */
static int only_consumer(const rs_model *m, int v)
{
    if (count_uses(m, v) != 1)
        return -1;
    for (int i = 0; i < m->n_nodes; ++i)
        for (int j = 0; j < m->nodes[i].n_in; ++j)
            if (m->nodes[i].in[j] == v)
                return i;
    return -1;
}

/* PRelu's slope as one value per channel of the (M, H, W) image it multiplies, or -1 when it
 * broadcasts some other way (then the op runs unfused). */
static int prelu_slopes(const rs_model *m, const rs_node *n, int M, float **out)
{
    const rs_value *sv = n->n_in == 2 ? const_float(m, n->in[1]) : NULL;
    if (!sv || sv->ndim > 4)
        return -1;
    int64_t d[3] = {1, 1, 1}; /* right-aligned to (C, H, W) */
    for (int k = 0; k < sv->ndim; ++k) {
        int at = 3 - sv->ndim + k;
        if (at >= 0)
            d[at] = sv->dims[k];
        else if (sv->dims[k] != 1)
            return -1;
    }
    if (d[1] != 1 || d[2] != 1 || (d[0] != 1 && d[0] != M) || !(*out = malloc((size_t)M * sizeof(float))))
        return -1;
    for (int ch = 0; ch < M; ++ch)
        (*out)[ch] = sv->f[d[0] == 1 ? 0 : ch];
    return 0;
}

/* s->post for n when it is an activation the epilogue kernel applies (PRelu, LeakyRelu,
 * HardSigmoid, HardSwish) to C channels; a PRelu's slopes go to s->post_slope, one per channel.
 * -1: another op, or a PRelu slope neither per channel nor a scalar. */
static int post_act(const rs_model *m, const rs_node *n, int C, step *s)
{
    kern_post *p = &s->post;
    switch (n->op) {
    case RS_OP_PRELU:
        if (prelu_slopes(m, n, C, &s->post_slope))
            return -1;
        p->act = KERN_ACT_LEAKY;
        p->slope = s->post_slope;
        return 0;
    case RS_OP_LEAKYRELU:
    case RS_OP_HARDSIGMOID:
    case RS_OP_HARDSWISH:
        p->act = n->op == RS_OP_LEAKYRELU ? KERN_ACT_LEAKY : n->op == RS_OP_HARDSIGMOID ? KERN_ACT_HARDSIGMOID
                                                                                       : KERN_ACT_HARDSWISH;
        p->alpha = n->alpha;
        p->beta = n->beta;
        return 0;
    default:
        return -1;
    }
}

/* Conv → Add(an activation of the same shape computed earlier) [→ Relu] (a residual block), or
 * Conv → LeakyRelu / PRelu / HardSigmoid / HardSwish: fused as the step's per-image epilogue
 * (kern_post_apply). Updates *out_v when something fused. */
static void fuse_post(infer_ctx *c, infer_build *b, int ni, step *s, int *out_v)
{
    const rs_model *m = b->m;
    const int v = *out_v, k = c->nofuse ? -1 : only_consumer(m, v);
    if (k < 0)
        return;
    const rs_node *n = &m->nodes[k];
    kern_post *p = &s->post;
    switch (n->op) {
    case RS_OP_ADD: {
        int other = n->n_in == 2 ? (n->in[0] == v ? n->in[1] : n->in[0]) : -1;
        int64_t numel = model_value_numel(&m->values[v]);
        if (other < 0 || other == v || m->values[other].is_const ||
            model_value_numel(&m->values[other]) != numel || model_value_numel(&m->values[n->out[0]]) != numel ||
            !computed_before(m, other, ni))
            return;
        s->post_res = 1;
        b->step_in2_v[b->cur] = other;
        int r = sole_consumer(m, n->out[0], RS_OP_RELU);
        if (r >= 0) {
            b->fused[r] = 1;
            p->act = KERN_ACT_RELU;
            *out_v = m->nodes[r].out[0];
        } else {
            *out_v = n->out[0];
        }
        break;
    }
    default:
        if (n->in[0] != v || post_act(m, n, s->M, s))
            return;
        *out_v = n->out[0];
        break;
    }
    b->fused[k] = 1;
    s->has_post = 1;
}

/* Run a (non-grouped, implicit-im2col) conv by kern_conv_cv when its pixel count plus channel
 * rounding costs fewer FMA lanes than the column tiles' wide grid and 6-row blocks ($RANKSCOPE_CONV
 * = cv or cols forces one, for measurements). */
static int want_cv(const infer_ctx *c, const step *s)
{
    if (!kern_conv_cv_supported(c->isa) || s->G != 1 || !(s->wide || s->phases) || s->depthwise)
        return 0;
    const char *env = getenv("RANKSCOPE_CONV");
    if (env && (strcmp(env, "cv") == 0 || strcmp(env, "cols") == 0))
        return env[1] == 'v';
    /* AVX2's tile (no scatter, 16 registers) measured slower than the column kernels on every zoo
     * net (`RANKSCOPE_ISA=avx2 rankscope eval`, CPU time): only on request there */
    if (c->isa != KERN_AVX512)
        return 0;
    const int nv = (s->M + 15) / 16, nc = nv % 4 == 3 ? 8 : nv == 1 || nv == 2 ? 12 : 6;
    double cv = (double)round_up(s->M, 16) * round_up(s->Ho * s->Wo, nc);
    double cols = (double)round_up(s->M, 6) * s->ncols;
    /* the scatter epilogue costs about as much as 256 taps of FMAs */
    return s->K >= 256 && cv < 0.85 * cols;
}

/* Winograd F(2×2, 3×3) for dense 3×3 stride-1 convs with enough channels: 2.25× fewer
 * multiplies; below the threshold the transforms cost more than they save.
 * $RANKSCOPE_WINOGRAD=0 turns it off (to measure the ratio), =1 forces it on every eligible
 * shape (tests). */
static int want_wino(const infer_ctx *c, const step *s)
{
    if (s->G != 1 || s->kh != 3 || s->kw != 3 || s->sh != 1 || s->sw != 1 || s->dh != 1 || s->dw != 1 ||
        s->depthwise || s->Ho < 1 || s->Wo < 1)
        return 0;
    const char *env = getenv("RANKSCOPE_WINOGRAD");
    if (env && strcmp(env, "0") == 0)
        return 0;
    if (env && strcmp(env, "1") == 0)
        return 1;
    /* The transforms cost O(C + M) per tile against O(C·M) saved, and small images fill the GEMM
     * blocks poorly. Measured per layer (rankscope info --time, 1 thread, under load; zoo vgg and
     * resnet20, AVX-512): faster from 32×32 channels on 32×32 and 16×16 maps (-20..-35 %), 32×64
     * on 16×16 (-22 %), 64×64 on 8×8 (-30 %), 128×128 on 4×4 (-15 %); even at 16×16 channels on
     * 32×32, slower for the 3-channel stems. Other ISAs transform with the portable code
     * (scalar gathers and interleaves): there the threshold measured before those kernels,
     * when AVX-512 ran it too (from 32×32 channels on 32×32 maps, 64×64 on 16×16, 64×128 on
     * 8×8 and 4×4). */
    const long cm = (long)s->C * s->M, hw = (long)s->Ho * s->Wo;
    if (c->isa != KERN_AVX512)
        return cm >= 8192 || (cm >= 4096 && hw >= 256) || (cm >= 1024 && hw >= 1024);
    /* 16×16 channels on 16×16 and 32×32 maps measured faster too on Zen 4 (zoo resnet20's first
     * stage 48.2-55.2 → 35.7-43.9 µs per image and layer, 1 thread, `rankscope info --time`
     * with $RANKSCOPE_WINOGRAD 0 and 1; the torchvision-style ResNet's 16×16 maps 13.9-14.5 →
     * 12.8-13.5) */
    return cm >= 8192 || (cm >= 1024 && hw >= 64) || (cm >= 256 && hw >= 256);
}

static int build_cv(infer_ctx *c, step *s, rs_err *e)
{
    (void)c;
    s->cv = 1;
    s->cv_ld = round_up(s->M, 16);
    s->npix = s->Ho * s->Wo;
    const int padded = round_up(s->npix, 24);
    s->cv_w = infer_alloc_floats((size_t)s->K * s->cv_ld);
    s->cv_bias = infer_alloc_floats((size_t)s->cv_ld);
    s->cv_coff = malloc((size_t)padded * sizeof(int));
    s->cv_opos = malloc((size_t)padded * sizeof(int));
    if (!s->cv_w || !s->cv_bias || !s->cv_coff || !s->cv_opos)
        return rs_fail(e, "out of memory");
    for (int m = 0; m < s->M; ++m) {
        for (int k = 0; k < s->K; ++k)
            s->cv_w[(size_t)k * s->cv_ld + m] = s->w[(size_t)m * s->K + k];
        s->cv_bias[m] = s->bias ? s->bias[m] : 0.0f;
    }
    for (int j = 0; j < padded; ++j) {
        int q = j < s->npix ? j : s->npix - 1, y = q / s->Wo, x = q % s->Wo;
        s->cv_coff[j] = y * s->row_stride + x;
        s->cv_opos[j] = q;
    }
    return 0;
}

static int build_conv(infer_ctx *c, infer_build *b, int ni, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    const rs_value *wv = n->n_in >= 2 ? const_float(m, n->in[1]) : NULL;
    if (!wv || wv->ndim != 4)
        return rs_fail(e, "node %s (Conv): weight must be a float initializer (M,C/group,kh,kw)",
                       n->name);
    const rs_value *bv = n->n_in >= 3 && n->in[2] >= 0 ? const_float(m, n->in[2]) : NULL;
    if (n->n_in >= 3 && n->in[2] >= 0 && !bv)
        return rs_fail(e, "node %s (Conv): bias must be a float initializer", n->name);
    if (act4(m, n->in[0], n, "input", &s->C, &s->H, &s->W, e) ||
        act4(m, n->out[0], n, "output", &s->M, &s->Ho, &s->Wo, e))
        return -1;
    s->G = (int)n->group;
    s->kh = (int)wv->dims[2];
    s->kw = (int)wv->dims[3];
    s->sh = (int)n->strides[0];
    s->sw = (int)n->strides[1];
    s->dh = (int)n->dilations[0];
    s->dw = (int)n->dilations[1];
    s->pt = (int)n->pads[0];
    s->pl = (int)n->pads[1];
    if (s->G < 1 || s->C % s->G || s->M % s->G || wv->dims[0] != s->M ||
        wv->dims[1] != s->C / s->G || s->sh < 1 || s->sw < 1 || s->dh < 1 || s->dw < 1 ||
        s->pt < 0 || s->pl < 0 || n->pads[2] < 0 || n->pads[3] < 0)
        return rs_fail(e, "node %s (Conv): inconsistent weight shape or attributes", n->name);
    if (bv && model_value_numel(bv) != s->M)
        return rs_fail(e, "node %s (Conv): bias has %lld elements, expected %d", n->name,
                       (long long)model_value_numel(bv), s->M);
    s->K = s->C / s->G * s->kh * s->kw;
    s->Hp = s->H + s->pt + (int)n->pads[2];
    s->Wp = s->W + s->pl + (int)n->pads[3];
    s->padded = s->Hp != s->H || s->Wp != s->W;
    s->wide = s->sh == 1 && s->sw == 1;
    s->phases = !s->wide && s->sh * s->sw <= 16;
    s->in_numel = s->C * s->H * s->W;

    size_t wn = (size_t)s->M * s->K;
    s->w = malloc(wn * sizeof(float));
    s->boff = malloc((size_t)s->K * sizeof(int));
    if (!s->w || !s->boff)
        return rs_fail(e, "node %s: out of memory", n->name);
    memcpy(s->w, wv->f, wn * sizeof(float));
    if (bv) {
        s->bias = malloc((size_t)s->M * sizeof(float));
        if (!s->bias)
            return rs_fail(e, "node %s: out of memory", n->name);
        memcpy(s->bias, bv->f, (size_t)s->M * sizeof(float));
    }
    const int cg = s->C / s->G;
    if (s->wide) {
        /* Implicit im2col: output (y, x) on the wide grid is column y·Wp + x; tap (ci, i, j)
         * reads the padded input at that column + ci·Hp·Wp + i·dh·Wp + j·dw. */
        s->row_stride = s->Wp;
        s->ncols = round_up(s->Ho * s->Wp, c->vl);
        s->gstride = (size_t)cg * s->Hp * s->Wp;
        int k = 0;
        for (int ci = 0; ci < cg; ++ci)
            for (int i = 0; i < s->kh; ++i)
                for (int j = 0; j < s->kw; ++j)
                    s->boff[k++] = ci * s->Hp * s->Wp + i * s->dh * s->Wp + j * s->dw;
        /* Last float read for the last group, relative to its image's start. */
        size_t last = (size_t)(s->G - 1) * s->gstride + (size_t)s->boff[s->K - 1] + s->ncols;
        size_t img = (size_t)s->C * s->Hp * s->Wp;
        size_t over = last > img ? last - img : 0;
        if (s->padded)
            s->pad_floats = img + over;
        else if (over > c->slack)
            c->slack = over;
    } else if (s->phases) {
        /* Polyphase implicit im2col: phase (a, b) holds padded input (a + sh·u, b + sw·v) at
         * (u, v); tap (ci, i, j) of output (y, x) is padded (sh·y + i·dh, sw·x + j·dw), i.e.
         * phase (i·dh % sh, j·dw % sw) at (y + i·dh / sh, x + j·dw / sw): a shifted view of one
         * phase plane, like the stride-1 wide grid with row stride Wq. */
        s->Hq = (s->Hp + s->sh - 1) / s->sh;
        s->Wq = (s->Wp + s->sw - 1) / s->sw;
        const int plane = s->Hq * s->Wq, nph = s->sh * s->sw;
        s->row_stride = s->Wq;
        s->ncols = round_up(s->Ho * s->Wq, c->vl);
        s->gstride = (size_t)cg * nph * plane;
        int k = 0;
        for (int ci = 0; ci < cg; ++ci)
            for (int i = 0; i < s->kh; ++i)
                for (int j = 0; j < s->kw; ++j) {
                    int a = i * s->dh % s->sh, bb = j * s->dw % s->sw;
                    s->phase_mask |= 1u << (a * s->sw + bb);
                    s->boff[k++] = (ci * nph + a * s->sw + bb) * plane + i * s->dh / s->sh * s->Wq + j * s->dw / s->sw;
                }
        size_t last = (size_t)(s->G - 1) * s->gstride + (size_t)s->boff[s->K - 1] + s->ncols;
        size_t img = (size_t)s->C * nph * plane;
        s->pad_floats = (last > img ? last : img) + 64;
    } else {
        s->row_stride = s->Wo;
        s->ncols = round_up(s->Ho * s->Wo, c->vl);
        s->gstride = (size_t)s->K * s->ncols;
        for (int k = 0; k < s->K; ++k)
            s->boff[k] = k * s->ncols;
        s->col_floats = (size_t)s->G * s->K * s->ncols;
    }
    size_t cb = (size_t)s->M * s->ncols;
    if (cb > c->cbuf_floats)
        c->cbuf_floats = cb;
    if (s->col_floats > c->col_floats)
        c->col_floats = s->col_floats;

    /* Fuse Relu, then MaxPool. */
    int out_v = n->out[0];
    int r = c->nofuse ? -1 : sole_consumer(m, out_v, RS_OP_RELU);
    if (r >= 0) {
        b->fused[r] = 1;
        s->relu = 1;
        out_v = m->nodes[r].out[0];
    } else if ((r = c->nofuse ? -1 : sole_consumer(m, out_v, RS_OP_CLIP)) >= 0 &&
               m->nodes[r].in[0] == out_v) {
        /* Conv → Clip (MobileNet's ReLU6): clamp the kernel output before pooling / copying */
        b->fused[r] = 1;
        s->clip = 1;
        s->lo = m->nodes[r].clip_min;
        s->hi = m->nodes[r].clip_max;
        out_v = m->nodes[r].out[0];
    } else {
        fuse_post(c, b, ni, s, &out_v);
    }
    int p = c->nofuse || s->has_post ? -1 : sole_consumer(m, out_v, RS_OP_MAXPOOL);
    if (p >= 0) {
        const rs_node *pn = &m->nodes[p];
        int pc, ph, pw;
        if (act4(m, pn->out[0], pn, "output", &pc, &ph, &pw, e))
            return -1;
        b->fused[p] = 1;
        s->has_pool = 1;
        s->pool = (pool_geom){(int)pn->kernel[0], (int)pn->kernel[1], (int)pn->strides[0],
                              (int)pn->strides[1], (int)pn->dilations[0],
                              (int)pn->dilations[1], (int)pn->pads[0], (int)pn->pads[1], ph, pw};
        out_v = pn->out[0];
    }
    /* Depthwise 3×3 (MobileNet's): the direct kernel, bias and activation fused, written
     * straight to the output; its padded planes live in the step's pad buffer. */
    if (s->G == s->C && s->M == s->C && s->kh == 3 && s->kw == 3 && s->dh == 1 && s->dw == 1 &&
        s->sh == s->sw && (s->sh == 1 || s->sh == 2) && !s->has_pool) {
        s->depthwise = 1;
        s->pad_floats = kern_dw3x3_scratch(s->Ho, s->Wo, s->sh);
    }
    if (want_wino(c, s)) {
        s->wino = 1;
        s->wino_u = malloc((size_t)16 * s->M * s->C * sizeof(float));
        if (!s->wino_u)
            return rs_fail(e, "node %s: out of memory", n->name);
        kern_wino3x3_weights(s->M, s->C, s->w, s->wino_u);
        /* after the direct path's padded input, whose zero border must survive */
        s->wino_off = s->pad_floats;
        s->pad_floats += kern_wino3x3_scratch(c->isa, s->C, s->M, s->Ho, s->Wo);
        size_t cb = (size_t)c->tile * s->M * s->Ho * s->Wo; /* a fused pool reads the whole tile's output */
        if (s->has_pool && cb > c->cbuf_floats)
            c->cbuf_floats = cb;
    }
    /* the direct kernels stay ready for tiles too small for Winograd (batch-1 latency) */
    if (want_cv(c, s) && build_cv(c, s, e))
        return -1;
    s->out_numel = (int)model_value_numel(&m->values[out_v]);
    return out_v;
}

/* Gemm (alpha·A·B' + beta·C) or MatMul (+ a constant Add) with a constant B. */
static int build_dense(infer_ctx *c, infer_build *b, int ni, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    const rs_value *xv = &m->values[n->in[0]];
    const rs_value *wv = n->n_in >= 2 ? const_float(m, n->in[1]) : NULL;
    const char *op = model_op_name(n->op);
    if (xv->ndim != 2 || xv->dims[0] != -1)
        return rs_fail(e, "node %s (%s): input '%s' must be an (N,K) activation", n->name, op,
                       xv->name);
    if (!wv || wv->ndim != 2)
        return rs_fail(e, "node %s (%s): B must be a 2-D float initializer", n->name, op);
    int gemm = n->op == RS_OP_GEMM;
    if (gemm && n->trans_a)
        return rs_fail(e, "node %s (Gemm): attribute transA=1 is unsupported (batch rows)",
                       n->name);
    int tb = gemm && n->trans_b;
    float alpha = gemm ? n->alpha : 1.0f;
    int64_t K = tb ? wv->dims[1] : wv->dims[0];
    int64_t N = tb ? wv->dims[0] : wv->dims[1];
    if (K != xv->dims[1] || !fits_int(K) || !fits_int(N))
        return rs_fail(e, "node %s (%s): B shape does not match input width %lld", n->name, op,
                       (long long)xv->dims[1]);
    s->K = (int)K;
    s->N = (int)N;
    s->Npad = round_up(s->N, c->vl);
    s->in_numel = s->K;
    s->w = infer_alloc_floats((size_t)s->K * s->Npad);
    s->boff = malloc((size_t)s->K * sizeof(int));
    if (!s->w || !s->boff)
        return rs_fail(e, "node %s: out of memory", n->name);
    for (int k = 0; k < s->K; ++k) {
        s->boff[k] = k * s->Npad;
        for (int j = 0; j < s->N; ++j)
            s->w[(size_t)k * s->Npad + j] =
                alpha * (tb ? wv->f[(size_t)j * s->K + k] : wv->f[(size_t)k * s->N + j]);
    }
    /* Bias: Gemm's C (scaled by beta), or the constant of a following Add. */
    const rs_value *cv = NULL;
    float beta = 1.0f;
    int out_v = n->out[0];
    if (gemm && n->n_in >= 3 && n->in[2] >= 0) {
        cv = const_float(m, n->in[2]);
        beta = n->beta;
        if (!cv)
            return rs_fail(e, "node %s (Gemm): C must be a float initializer", n->name);
    } else if (!gemm) {
        int a = c->nofuse ? -1 : sole_consumer(m, out_v, RS_OP_ADD);
        if (a >= 0) {
            const rs_node *an = &m->nodes[a];
            int other = an->in[0] == out_v ? an->in[1] : an->in[0];
            const rs_value *ov = const_float(m, other);
            if (an->n_in == 2 && ov &&
                (model_value_numel(ov) == s->N || model_value_numel(ov) == 1)) {
                cv = ov;
                b->fused[a] = 1;
                out_v = an->out[0];
            }
        }
    }
    if (cv) {
        int64_t cn = model_value_numel(cv);
        if (cn != s->N && cn != 1)
            return rs_fail(e, "node %s (%s): bias '%s' has %lld elements; only a per-output "
                           "vector (%d) or a scalar broadcasts over the batch", n->name, op,
                           cv->name, (long long)cn, s->N);
        s->bias = infer_alloc_floats((size_t)s->Npad);
        if (!s->bias)
            return rs_fail(e, "node %s: out of memory", n->name);
        for (int j = 0; j < s->N; ++j)
            s->bias[j] = beta * cv->f[cn == 1 ? 0 : j];
    }
    int r = c->nofuse ? -1 : sole_consumer(m, out_v, RS_OP_RELU);
    if (r >= 0) {
        b->fused[r] = 1;
        s->relu = 1;
        out_v = m->nodes[r].out[0];
    }
    s->out_numel = s->N;
    size_t cb = (size_t)c->tile * s->Npad;
    if (s->Npad != s->N && cb > c->cbuf_floats)
        c->cbuf_floats = cb;
    return out_v;
}

/* Constant broadcast (numpy rules, right-aligned) to one image of activation `xv`. */
static int build_add(infer_build *b, int ni, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    if (n->n_in != 2 || n->in[1] < 0)
        return rs_fail(e, "node %s (Add): expected two inputs", n->name);
    const rs_value *c0 = const_float(m, n->in[0]), *c1 = const_float(m, n->in[1]);
    if (!c0 && !c1) { /* two activations of one shape */
        const rs_value *a0 = &m->values[n->in[0]], *a1 = &m->values[n->in[1]];
        if (a0->is_const || a1->is_const || model_value_numel(a0) != model_value_numel(a1))
            return rs_fail(e, "node %s (Add): inputs '%s' and '%s' differ in shape", n->name,
                           a0->name, a1->name);
        s->kind = ST_ADD2;
        s->in_numel = s->out_numel = (int)model_value_numel(a0);
        b->step_in2_v[b->cur] = n->in[1];
        return n->out[0];
    }
    if (c0 && c1)
        return rs_fail(e, "node %s (Add): both inputs are constants", n->name);
    const rs_value *cv = c0 ? c0 : c1;
    const rs_value *xv = &m->values[c0 ? n->in[1] : n->in[0]];
    if (xv->dims[0] != -1 || cv->ndim > xv->ndim)
        return rs_fail(e, "node %s (Add): constant '%s' does not broadcast over the batch",
                       n->name, cv->name);
    s->in_numel = s->out_numel = (int)model_value_numel(xv);
    s->addc = malloc((size_t)s->in_numel * sizeof(float));
    if (!s->addc)
        return rs_fail(e, "node %s: out of memory", n->name);
    int off = xv->ndim - cv->ndim;
    for (int k = 1; k < xv->ndim; ++k) {
        int64_t cd = k >= off ? cv->dims[k - off] : 1;
        if (cd != 1 && cd != xv->dims[k])
            return rs_fail(e, "node %s (Add): constant '%s' does not broadcast to '%s'",
                           n->name, cv->name, xv->name);
    }
    if (off == 0 && cv->dims[0] != 1)
        return rs_fail(e, "node %s (Add): constant '%s' has a batch dimension", n->name,
                       cv->name);
    for (int idx = 0; idx < s->in_numel; ++idx) {
        int64_t rem = idx, cidx = 0, cstride = 1;
        for (int k = xv->ndim - 1; k >= 1; --k) {
            int64_t d = xv->dims[k];
            int64_t coord = rem % d;
            rem /= d;
            if (k >= off) {
                int64_t cd = cv->dims[k - off];
                cidx += (cd == 1 ? 0 : coord) * cstride;
                cstride *= cd;
            }
        }
        s->addc[idx] = cv->f[cidx];
    }
    return n->out[0];
}

/* Assign buffer slots by liveness. */
static int assign_slots(infer_ctx *c, infer_build *b, rs_err *e)
{
    const rs_model *m = b->m;
    int nv = m->n_values;
    int *last = malloc((size_t)nv * sizeof(int));
    int *slot_of = malloc((size_t)nv * sizeof(int));
    int *refs = calloc((size_t)nv + 1, sizeof(int));
    c->slot_floats = calloc((size_t)nv + 1, sizeof(size_t));
    if (!last || !slot_of || !refs || !c->slot_floats) {
        free(last);
        free(slot_of);
        free(refs);
        return rs_fail(e, "out of memory");
    }
    for (int v = 0; v < nv; ++v) {
        last[v] = -1;
        slot_of[v] = -1;
    }
    for (int i = 0; i < c->n_steps; ++i) {
        last[b->step_in_v[i]] = i;
        if (b->step_in2_v[i] >= 0)
            last[b->step_in2_v[i]] = i;
    }
    last[m->output] = c->n_steps; /* read after the last step */
    if (c->result_v >= 0)
        last[c->result_v] = c->n_steps;
    c->n_slots = 1;
    c->in_slot = 0;
    slot_of[m->input] = 0;
    refs[0] = 1;
    c->slot_floats[0] = (size_t)c->in_features;
    for (int i = 0; i < c->n_steps; ++i) {
        step *s = &c->steps[i];
        int vin = b->step_in_v[i], vout = b->step_out_v[i];
        int vin2 = b->step_in2_v[i];
        s->in_slot = slot_of[vin];
        s->in2_slot = vin2 >= 0 ? slot_of[vin2] : -1;
        if (s->kind == ST_ALIAS) {
            s->out_slot = s->in_slot;
        } else {
            int pick = -1;
            /* Elementwise steps may run in place once their input dies here. */
            if ((s->kind == ST_RELU || s->kind == ST_ADD || s->kind == ST_ADD2 ||
                 s->kind == ST_AFFINE || s->kind == ST_CLIP || s->kind == ST_SIGMOID ||
                 s->kind == ST_SOFTMAX || s->kind == ST_POST) && last[vin] == i &&
                refs[s->in_slot] == 1)
                pick = s->in_slot;
            for (int k = 0; pick < 0 && k < c->n_slots; ++k)
                if (refs[k] == 0)
                    pick = k;
            if (pick < 0)
                pick = c->n_slots++;
            s->out_slot = pick;
        }
        slot_of[vout] = s->out_slot;
        refs[s->out_slot]++;
        if ((size_t)s->out_numel > c->slot_floats[s->out_slot])
            c->slot_floats[s->out_slot] = (size_t)s->out_numel;
        if (last[vin] == i)
            refs[s->in_slot]--;
        if (vin2 >= 0 && vin2 != vin && last[vin2] == i)
            refs[s->in2_slot]--;
        if (last[vout] < 0) /* dead output (not the graph output): free at once */
            refs[s->out_slot]--;
    }
    c->out_slot = slot_of[m->output];
    c->result_slot = c->result_v >= 0 ? slot_of[c->result_v] : c->out_slot;
    c->result_numel = c->result_v >= 0 ? (int)model_value_numel(&m->values[c->result_v])
                                       : c->out_features;
    free(last);
    free(slot_of);
    free(refs);
    if (c->result_slot < 0)
        return rs_fail(e, "value '%s' is not computed by the graph", m->values[c->result_v].name);
    if (c->out_slot < 0)
        return rs_fail(e, "graph output '%s' is not produced by any node",
                       m->values[m->output].name);
    return 0;
}

/* An Expand whose only reader is a Sub / Mul / Div (squeeze-and-excitation's x · expand(gate))
 * needs no step: the op's broadcast reads the gate per channel (ops_fwd_binary's runs) and gives
 * the same floats, without writing and rereading the expanded copy (se_resnet: 13 % of the
 * forward). Returns the value to read in place of v: the Expand's input when v is such an
 * Expand's output whose input broadcasts to the op's output as the expanded copy did (the
 * other operand carrying the full shape), else v. */
static int expand_source(const infer_ctx *c, const rs_model *m, int v)
{
    if (c->nofuse || v < 0 || v == c->result_v || v == m->output || count_uses(m, v) != 1)
        return v;
    const rs_node *x = NULL, *u = NULL;
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *n = &m->nodes[i];
        if (n->n_out >= 1 && n->out[0] == v)
            x = n;
        for (int j = 0; j < n->n_in; ++j)
            if (n->in[j] == v)
                u = n;
    }
    if (!x || !u || x->op != RS_OP_EXPAND || x->in[0] < 0 || m->values[x->in[0]].is_const ||
        (u->op != RS_OP_SUB && u->op != RS_OP_MUL && u->op != RS_OP_DIV) || u->n_in != 2)
        return v;
    const int other = u->in[0] == v ? u->in[1] : u->in[0];
    const rs_value *src = &m->values[x->in[0]], *y = &m->values[u->out[0]];
    if (other < 0 || other == v || other == x->in[0] || m->values[other].is_const || m->values[other].ndim != y->ndim ||
        memcmp(m->values[other].dims, y->dims, (size_t)y->ndim * sizeof y->dims[0]) ||
        m->values[v].ndim != y->ndim || memcmp(m->values[v].dims, y->dims, (size_t)y->ndim * sizeof y->dims[0]) ||
        src->ndim != y->ndim || src->dims[0] != -1 || y->dims[0] != -1)
        return v;
    for (int j = 1; j < y->ndim; ++j)
        if (src->dims[j] != 1 && src->dims[j] != y->dims[j])
            return v;
    return x->in[0];
}

/* ST_OP: a graph of node ni alone (the context outlives the caller's model), with the second
 * activation input, if any, in *vin2. -1 when the node reads more than two activations. */
static int build_op(infer_ctx *c, infer_build *b, int ni, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    rs_model *g = model_alloc();
    if (!g)
        return rs_fail(e, "out of memory");
    s->op = g;
    int acts = 0, vin2 = -1, in[RS_MAXIO];
    for (int k = 0; k < n->n_in; ++k) {
        const int vk = expand_source(c, m, n->in[k]);
        const rs_value *v = vk >= 0 ? &m->values[vk] : NULL;
        if (!v) {
            in[k] = -1;
            continue;
        }
        if (v->is_const && v->dtype == RS_DT_FLOAT) {
            in[k] = model_add_const(g, v->name, v->ndim, v->dims, v->f, e);
        } else if (v->is_const) { /* an int64 operand: Reshape / Slice / Expand arguments */
            in[k] = model_add_value(g, v->name, e);
            size_t bytes = (size_t)model_value_numel(v) * sizeof(int64_t);
            int64_t *d = in[k] >= 0 && v->i64 ? malloc(bytes + 8) : NULL;
            if (!d)
                return in[k] < 0 ? -1 : rs_fail(e, "node %s: out of memory", n->name);
            memcpy(d, v->i64, bytes);
            rs_value *gv = &g->values[in[k]];
            gv->is_const = 1;
            gv->dtype = RS_DT_INT64;
            gv->i64 = d;
            gv->ndim = v->ndim;
            memcpy(gv->dims, v->dims, sizeof v->dims);
        } else {
            if (++acts > 2)
                return rs_fail(e, "node %s (%s): the inference engine runs it on at most two "
                               "activations", n->name, model_op_name(n->op));
            if (acts == 2)
                vin2 = vk;
            in[k] = model_add_value(g, v->name, e);
            if (in[k] >= 0) {
                g->values[in[k]].ndim = v->ndim;
                memcpy(g->values[in[k]].dims, v->dims, sizeof v->dims);
            }
        }
        if (in[k] < 0)
            return -1;
    }
    const rs_value *ov = &m->values[n->out[0]];
    int k = model_add_op(g, n->name, n->op, in, n->n_in, ov->name, e);
    if (k < 0)
        return -1;
    rs_node *gn = &g->nodes[0];
    char *name = gn->name;
    int gin[RS_MAXIO], gout = gn->out[0];
    memcpy(gin, gn->in, sizeof gin);
    *gn = *n;
    gn->name = name;
    memcpy(gn->in, gin, sizeof gin);
    gn->n_out = 1;
    gn->out[0] = gout;
    g->values[gout].ndim = ov->ndim;
    memcpy(g->values[gout].dims, ov->dims, sizeof ov->dims);
    s->in_numel = (int)model_value_numel(&m->values[expand_source(c, m, n->in[0])]);
    s->out_numel = (int)model_value_numel(ov);
    b->step_in2_v[b->cur] = vin2;
    return n->out[0];
}

/* A ReduceMean over exactly the two spatial axes of a 4-D input. */
static int spatial_mean(const rs_model *m, const rs_node *n)
{
    int nd = m->values[n->in[0]].ndim, seen = 0;
    for (int k = 0; k < n->n_axes; ++k) {
        int64_t a = n->axes[k] < 0 ? n->axes[k] + nd : n->axes[k];
        seen |= a == 2 ? 1 : a == 3 ? 2 : 4;
    }
    return nd == 4 && n->n_axes == 2 && seen == 3;
}

/* The steps the registry rows name (rs_op_desc.compile): one node, its input vin. */
int infer_compile_conv(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    (void)vin;
    s->kind = ST_CONV;
    return build_conv(c, b, ni, s, e);
}

int infer_compile_dense(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_node *n = &b->m->nodes[ni];
    (void)vin;
    if (n->n_in == 2 && n->in[1] >= 0 && !b->m->values[n->in[1]].is_const) {
        s->kind = ST_OP; /* two activations: the registry's batched product */
        return build_op(c, b, ni, s, e);
    }
    s->kind = ST_GEMM;
    return build_dense(c, b, ni, s, e);
}

int infer_compile_add(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    (void)c;
    (void)vin;
    s->kind = ST_ADD;
    return build_add(b, ni, s, e);
}

int infer_compile_relu(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    (void)c;
    (void)e;
    s->kind = ST_RELU;
    s->in_numel = s->out_numel = (int)model_value_numel(&m->values[vin]);
    return n->out[0];
}

int infer_compile_maxpool(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    (void)c;
    s->kind = ST_MAXPOOL;
    int pc = 0, ph = 0, pw = 0;
    if (act4(m, vin, n, "input", &s->C, &s->H, &s->W, e) ||
        act4(m, n->out[0], n, "output", &pc, &ph, &pw, e))
        return -1;
    s->pool = (pool_geom){(int)n->kernel[0], (int)n->kernel[1], (int)n->strides[0],
                          (int)n->strides[1], (int)n->dilations[0],
                          (int)n->dilations[1], (int)n->pads[0], (int)n->pads[1], ph, pw};
    s->in_numel = s->C * s->H * s->W;
    s->out_numel = pc * ph * pw;
    return n->out[0];
}

int infer_compile_batchnorm(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    (void)c;
    const rs_value *xv = &m->values[vin];
    if ((xv->ndim != 4 && xv->ndim != 2) || xv->dims[0] != -1 || !fits_int(xv->dims[1])) {
        rs_fail(e, "node %s (BatchNormalization): input '%s' must be (N,C,H,W) or (N,C)",
                n->name, xv->name);
        return -1;
    }
    s->kind = ST_AFFINE;
    s->C = (int)xv->dims[1];
    s->in_numel = s->out_numel = (int)model_value_numel(xv);
    s->K = s->in_numel / s->C;
    if (infer_bn_affine(m, n, s->C, &s->w, &s->bias, e))
        return -1;
    return n->out[0];
}

int infer_compile_avgpool(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    (void)c;
    s->kind = ST_AVGPOOL;
    int pc = 0, ph = 0, pw = 0;
    if (act4(m, vin, n, "input", &s->C, &s->H, &s->W, e) ||
        act4(m, n->out[0], n, "output", &pc, &ph, &pw, e))
        return -1;
    if (n->op == RS_OP_GLOBALAVGPOOL) {
        s->pool = (pool_geom){s->H, s->W, 1, 1, 1, 1, 0, 0, 1, 1};
    } else {
        infer_pool_geom(n, ph, pw, &s->pool);
        s->pb = (int)n->pads[2];
        s->pr = (int)n->pads[3];
        s->count_pad = n->count_include_pad;
    }
    s->in_numel = s->C * s->H * s->W;
    s->out_numel = pc * ph * pw;
    return n->out[0];
}

int infer_compile_reducemean(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    if (!spatial_mean(m, n)) {
        s->kind = ST_OP;
        return build_op(c, b, ni, s, e);
    }
    /* x.mean((2, 3)): the global average pool's kernel */
    s->kind = ST_AVGPOOL;
    if (act4(m, vin, n, "input", &s->C, &s->H, &s->W, e))
        return -1;
    s->pool = (pool_geom){s->H, s->W, 1, 1, 1, 1, 0, 0, 1, 1};
    s->in_numel = s->C * s->H * s->W;
    s->out_numel = s->C;
    return n->out[0];
}

int infer_compile_elementwise(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    (void)c;
    (void)e;
    s->kind = n->op == RS_OP_CLIP ? ST_CLIP : n->op == RS_OP_SIGMOID ? ST_SIGMOID : ST_SOFTMAX;
    s->lo = n->clip_min;
    s->hi = n->clip_max;
    s->in_numel = s->out_numel = (int)model_value_numel(&m->values[vin]);
    return n->out[0];
}

/* LeakyRelu, PRelu, HardSigmoid, HardSwish on their own (after another activation, a pool, an
 * Add...): the epilogue kernel a conv would have fused them into, per image. A PRelu whose slope
 * is not one per channel (or a scalar) runs as the registry's op. */
int infer_compile_act(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    const rs_value *xv = &m->values[vin];
    const int64_t numel = model_value_numel(xv);
    if (xv->ndim < 2 || xv->dims[0] != -1 || !fits_int(xv->dims[1]) || xv->dims[1] < 1 || !fits_int(numel) ||
        numel % xv->dims[1] || (n->op == RS_OP_PRELU && xv->ndim != 4) || post_act(m, n, (int)xv->dims[1], s)) {
        s->kind = ST_OP;
        return build_op(c, b, ni, s, e);
    }
    s->kind = ST_POST;
    s->C = (int)xv->dims[1];
    s->in_numel = s->out_numel = (int)numel;
    s->K = s->in_numel / s->C;
    return n->out[0];
}

int infer_compile_pad(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    (void)c;
    s->kind = ST_PAD;
    int pc = 0;
    if (act4(m, vin, n, "input", &s->C, &s->H, &s->W, e) ||
        act4(m, n->out[0], n, "output", &pc, &s->Ho, &s->Wo, e))
        return -1;
    s->pt = (int)n->pads[0];
    s->pl = (int)n->pads[1];
    s->in_numel = s->C * s->H * s->W;
    s->out_numel = pc * s->Ho * s->Wo;
    return n->out[0];
}

int infer_compile_concat(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    (void)c;
    if (n->n_in != 2 || n->in[1] < 0 || m->values[n->in[1]].is_const) {
        rs_fail(e, "node %s (Concat): the inference engine concatenates exactly two "
                "activations (has %d inputs)", n->name, n->n_in);
        return -1;
    }
    s->kind = ST_CONCAT;
    s->in_numel = (int)model_value_numel(&m->values[vin]);
    s->N = (int)model_value_numel(&m->values[n->in[1]]);
    s->out_numel = s->in_numel + s->N;
    b->step_in2_v[b->cur] = n->in[1];
    return n->out[0];
}

int infer_compile_alias(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e)
{
    const rs_model *m = b->m;
    const rs_node *n = &m->nodes[ni];
    (void)c;
    const rs_value *ov = &m->values[n->out[0]];
    if (ov->dims[0] != -1 || model_value_numel(ov) != model_value_numel(&m->values[vin])) {
        rs_fail(e, "node %s (%s): output '%s' must keep the batch dimension leading "
                "(only flatten-like reshapes are supported)", n->name,
                model_op_name(n->op), ov->name);
        return -1;
    }
    s->kind = ST_ALIAS;
    s->in_numel = s->out_numel = (int)model_value_numel(ov);
    return n->out[0];
}

int infer_cancelled(const infer_ctx *c, rs_err *e)
{
    if (!c->progress || !c->progress(c->user, -1, "compiling"))
        return 0;
    rs_fail(e, "compiling cancelled");
    return RS_CANCELLED;
}

int infer_compile(infer_ctx *c, const rs_model *m, rs_err *e)
{
    infer_build b = {m, calloc((size_t)m->n_nodes + 1, sizeof(int)),
                     calloc((size_t)m->n_nodes + 1, sizeof(int)),
               calloc((size_t)m->n_nodes + 1, sizeof(int)),
               calloc((size_t)m->n_nodes + 1, sizeof(int)), 0};
    c->steps = calloc((size_t)m->n_nodes + 1, sizeof(step));
    int rc = -1;
    if (!b.fused || !b.step_in_v || !b.step_out_v || !b.step_in2_v || !c->steps) {
        rs_fail(e, "out of memory");
        goto done;
    }
    const rs_value *xin = &m->values[m->input];
    if (xin->dims[0] != -1 || model_value_numel(xin) <= 0 || !fits_int(model_value_numel(xin))) {
        rs_fail(e, "graph input '%s' must have a leading batch dimension", xin->name);
        goto done;
    }
    c->in_features = (int)model_value_numel(xin);
    for (int ni = 0; ni < m->n_nodes; ++ni) {
        if (b.fused[ni])
            continue;
        if ((rc = infer_cancelled(c, e)) != 0)
            goto done;
        rc = -1;
        const rs_node *n = &m->nodes[ni];
        if (n->op == RS_OP_EXPAND && n->n_out >= 1 && expand_source(c, m, n->out[0]) != n->out[0])
            continue; /* its reader broadcasts the input itself */
        step *s = &c->steps[c->n_steps];
        b.cur = c->n_steps;
        b.step_in2_v[c->n_steps] = -1;
        s->name = rs_strdup(n->name ? n->name : "?");
        s->node = ni;
        int vin = n->n_in > 0 ? expand_source(c, m, n->in[0]) : -1;
        const rs_op_desc *d = ops_get(n->op);
        if (d && d->const_first && n->n_in == 2 && const_float(m, vin)) /* run on the other */
            vin = n->in[1];
        if (vin < 0 || m->values[vin].is_const) {
            rs_fail(e, "node %s (%s): first input must be an activation", n->name,
                    model_op_name(n->op));
            goto done;
        }
        int vout;
        if (d && d->compile) {
            vout = d->compile(c, &b, ni, vin, s, e);
        } else if (d && d->forward) {
            s->kind = ST_OP;
            vout = build_op(c, &b, ni, s, e);
        } else {
            rs_fail(e, "node %s: op %s is not supported by the inference engine", n->name,
                    model_op_name(n->op));
            goto done;
        }
        if (vout < 0) {
            c->n_steps++; /* so its allocations are freed */
            goto done;
        }
        b.step_in_v[c->n_steps] = vin;
        b.step_out_v[c->n_steps] = vout;
        c->n_steps++;
    }
    {
        const rs_value *ov = &m->values[m->output];
        if (ov->dims[0] != -1 || !fits_int(model_value_numel(ov))) {
            rs_fail(e, "graph output '%s' must have a leading batch dimension", ov->name);
            goto done;
        }
        c->out_features = (int)model_value_numel(ov);
    }
    rc = assign_slots(c, &b, e);
done:
    free(b.fused);
    free(b.step_in_v);
    free(b.step_out_v);
    free(b.step_in2_v);
    return rc;
}

