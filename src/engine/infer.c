/* infer.c — compile a model into fused steps and run them over cache-resident batch tiles.
 *
 * Design (why it is shaped like this):
 *  - The reference net's GEMMs are skinny (6 and 16 output channels), where a BLAS sgemm spends
 *    its time packing. Instead every Conv and dense layer runs through kern_gemm, a broadcast-A
 *    register-tiled kernel. A stride-1 Conv needs no im2col at all: computing the output on the
 *    "wide" grid (rows of the padded input width Wp) makes every im2col row a contiguous, shifted
 *    view of the input, so B rows are just input offsets (boff). The wide columns x >= W_out are
 *    garbage and dropped by the epilogue. Strided convs fall back to an explicit im2col.
 *  - Conv → Relu → MaxPool (and Gemm/MatMul(+Add) → Relu) are fused into one step: bias and ReLU
 *    in the kernel epilogue, pooling read straight from the conv's scratch output.
 *  - Each worker thread owns its buffers and processes tiles of `tile` images through the whole
 *    net (conv per image, dense layers per tile), so activations stay in L1/L2. Workers pull
 *    tiles from a shared atomic counter; the calling thread is worker 0.
 *  - Values map to buffer slots by liveness (a slot is reused once every value in it is dead);
 *    Flatten / Reshape / Identity alias their input's slot (the layout is unchanged).
 *  - Every buffer a kernel reads has slack after it (c->slack, +64 floats) because the wide-grid
 *    conv and the vector pooling read a little past the last useful element; the slack is zeroed
 *    once so those lanes hold finite values.
 *  - infer_capture compiles the same way with fusion off and the requested value kept alive.
 *
 * Measured (rankscope bench, this 2-core AVX-512 machine): ~75 % of the time is in the tile
 * kernels (conv1 and conv2 in tile_6_4 / tile_6_1 / tile_4_*), the rest u8→float, pooling and
 * copies. The known waste: the wide grid computes 32/28 columns of conv1 and 14/10 of conv2;
 * a channel-vector kernel (16 output channels per zmm) would avoid the latter (next step).
 */
#include "rankscope/infer.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/kernels.h"

/* Images per tile: dense layers run as (tile × K)·(K × N) products, so the tile is their M.
 * 8..64 measured within noise on the reference net; 16 keeps a tile's activations (~50 KB per
 * image at most for this net) well inside L2. $RANKSCOPE_TILE overrides it (tuning, tests). */
#define DEFAULT_TILE 16

typedef enum step_kind {
    ST_CONV, ST_GEMM, ST_RELU, ST_MAXPOOL, ST_ADD, ST_ADD2, ST_ALIAS,
    /* issue 6: per-channel affine (kept BatchNormalization), average pooling (also global),
     * Clip, Sigmoid, Softmax (per image over the features), zero Pad, Concat of two inputs */
    ST_AFFINE, ST_AVGPOOL, ST_CLIP, ST_SIGMOID, ST_SOFTMAX, ST_PAD, ST_CONCAT
} step_kind;

typedef struct pool_geom {
    int kh, kw, sh, sw, dh, dw, pt, pl;
    int Ho, Wo; /* pooled output */
} pool_geom;

typedef struct step {
    step_kind kind;
    char *name;
    int in_slot, out_slot;
    int in2_slot; /* ST_ADD2: the second addend */
    int in_numel, out_numel; /* floats per image */
    int relu;
    /* Conv */
    int C, H, W, M, G, kh, kw, sh, sw, dh, dw, pt, pl, Ho, Wo;
    int Hp, Wp, padded, wide;
    int K;           /* (C/G)·kh·kw */
    int ncols;       /* output columns per image, rounded up to the vector width */
    int row_stride;  /* of the kernel output: Wp (wide) or Wo (im2col) */
    size_t gstride;  /* B offset between groups */
    size_t pad_floats, col_floats;
    int has_pool;
    pool_geom pool;
    /* Gemm (C = A·B + bias): K above, N outputs, B packed (K × Npad) */
    int N, Npad;
    float *w;    /* Conv: (M, K) weights; Gemm: packed B */
    float *bias; /* Conv: M (or NULL); Gemm: Npad (or NULL) */
    int *boff;   /* K row offsets into B */
    float *addc; /* Add: the constant broadcast to one image (in_numel) */
    /* issue 6 ops: Clip bounds; AveragePool end pads and count_include_pad; Pad's end pads.
     * ST_AFFINE keeps scale in w and shift in bias (C each, K = H·W per channel);
     * ST_CONCAT's second input has N floats per image. */
    float lo, hi;
    int pb, pr, count_pad;
    int clip; /* ST_CONV: a fused Clip (lo, hi) applied to the kernel output (ReLU6) */
} step;

typedef struct worker {
    struct infer_ctx *ctx;
    int id;
    pthread_t thread;
    float **slots;
    float **pads;  /* per step: zero-bordered padded input (NULL if unused) */
    float *cbuf;   /* kernel output scratch */
    float *col;    /* im2col scratch */
} worker;

struct infer_ctx {
    kern_isa isa;
    int vl;
    int tile;
    int nthreads;
    int in_features, out_features;
    int n_steps;
    step *steps;
    int n_slots;
    size_t *slot_floats; /* per image */
    size_t slack;        /* floats after every buffer that kernels may read */
    int in_slot, out_slot;
    size_t cbuf_floats, col_floats;
    /* infer_capture: no fusion, and the result is value `result_v` instead of the output */
    int nofuse;
    int result_v;          /* -1: the graph output */
    int result_slot, result_numel;
    worker *workers;
    /* job hand-off */
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    int generation, pending, quit, threads_started;
    const float *job_xf;
    const uint8_t *job_xu;
    float *job_out;
    int job_n;
    atomic_int next_tile;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void *alloc_floats(size_t n)
{
    size_t bytes = n * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0)
        bytes = 64;
    void *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

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

static void step_free(step *s)
{
    free(s->name);
    free(s->w);
    free(s->bias);
    free(s->boff);
    free(s->addc);
}

/* ---- issue 6 ops, one image at a time (shared by the fast and the plain executors) ---------- */

static void op_affine(int C, int hw, const float *scale, const float *shift, const float *in,
                      float *out)
{
    for (int ch = 0; ch < C; ++ch)
        for (int k = 0; k < hw; ++k)
            out[(size_t)ch * hw + k] = in[(size_t)ch * hw + k] * scale[ch] + shift[ch];
}

/* ONNX AveragePool: the divisor counts the window's taps inside the input (count_include_pad 0)
 * or inside the padded input (1); taps past the padded end (ceil_mode) never count. */
static void op_avgpool(int C, int H, int W, const pool_geom *p, int pb, int pr, int count_pad,
                       const float *in, float *out)
{
    for (int ch = 0; ch < C; ++ch) {
        const float *src = in + (size_t)ch * H * W;
        float *dst = out + (size_t)ch * p->Ho * p->Wo;
        for (int oy = 0; oy < p->Ho; ++oy)
            for (int ox = 0; ox < p->Wo; ++ox) {
                int y0 = oy * p->sh - p->pt, x0 = ox * p->sw - p->pl;
                float acc = 0.0f;
                int taps = 0, ptaps = 0;
                for (int i = 0; i < p->kh; ++i) {
                    int y = y0 + i;
                    if (y >= H + pb)
                        break;
                    for (int j = 0; j < p->kw; ++j) {
                        int x = x0 + j;
                        if (x >= W + pr)
                            break;
                        ++ptaps;
                        if (y < 0 || y >= H || x < 0 || x >= W)
                            continue;
                        acc += src[(size_t)y * W + x];
                        ++taps;
                    }
                }
                int div = count_pad ? ptaps : taps;
                dst[(size_t)oy * p->Wo + ox] = div > 0 ? acc / (float)div : 0.0f;
            }
    }
}

static void op_pad(int C, int H, int W, int pt, int pl, int Ho, int Wo, const float *in, float *out)
{
    memset(out, 0, (size_t)C * Ho * Wo * sizeof(float));
    for (int ch = 0; ch < C; ++ch)
        for (int y = 0; y < H; ++y)
            memcpy(out + ((size_t)ch * Ho + y + pt) * Wo + pl, in + ((size_t)ch * H + y) * W,
                   (size_t)W * sizeof(float));
}

static void op_softmax(int n, const float *in, float *out)
{
    float mx = -INFINITY;
    for (int k = 0; k < n; ++k)
        mx = in[k] > mx ? in[k] : mx;
    double sum = 0.0;
    for (int k = 0; k < n; ++k)
        sum += (out[k] = expf(in[k] - mx));
    float inv = (float)(1.0 / sum);
    for (int k = 0; k < n; ++k)
        out[k] *= inv;
}

/* BatchNormalization's scale and shift per channel (C floats each, malloc'ed). */
static int bn_affine(const rs_model *m, const rs_node *n, int C, float **scale, float **shift,
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

static void pool_from_node(const rs_node *n, int Ho, int Wo, pool_geom *p)
{
    *p = (pool_geom){(int)n->kernel[0], (int)n->kernel[1], (int)n->strides[0], (int)n->strides[1],
                     (int)n->dilations[0], (int)n->dilations[1], (int)n->pads[0], (int)n->pads[1],
                     Ho, Wo};
}

/* ---- compiling nodes into steps ----------------------------------------------------------- */

typedef struct build {
    const rs_model *m;
    int *fused;       /* node already folded into an earlier step */
    int *step_in_v;   /* value read by each step */
    int *step_out_v;  /* value written by each step */
    int *step_in2_v;  /* second activation read (ST_ADD2) or -1 */
    int cur;          /* index of the step being built */
} build;

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

static int build_conv(infer_ctx *c, build *b, int ni, step *s, rs_err *e)
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
    }
    int p = c->nofuse ? -1 : sole_consumer(m, out_v, RS_OP_MAXPOOL);
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
    s->out_numel = (int)model_value_numel(&m->values[out_v]);
    return out_v;
}

/* Gemm (alpha·A·B' + beta·C) or MatMul (+ a constant Add) with a constant B. */
static int build_dense(infer_ctx *c, build *b, int ni, step *s, rs_err *e)
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
    s->w = alloc_floats((size_t)s->K * s->Npad);
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
        s->bias = alloc_floats((size_t)s->Npad);
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
static int build_add(build *b, int ni, step *s, rs_err *e)
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
static int assign_slots(infer_ctx *c, build *b, rs_err *e)
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
                 s->kind == ST_SOFTMAX) && last[vin] == i &&
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

static int compile(infer_ctx *c, const rs_model *m, rs_err *e)
{
    build b = {m, calloc((size_t)m->n_nodes + 1, sizeof(int)),
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
        const rs_node *n = &m->nodes[ni];
        step *s = &c->steps[c->n_steps];
        b.cur = c->n_steps;
        b.step_in2_v[c->n_steps] = -1;
        s->name = rs_strdup(n->name ? n->name : "?");
        int vin = n->n_in > 0 ? n->in[0] : -1;
        if (n->op == RS_OP_ADD && n->n_in == 2 && const_float(m, vin))
            vin = n->in[1];
        if (vin < 0 || m->values[vin].is_const) {
            rs_fail(e, "node %s (%s): first input must be an activation", n->name,
                    model_op_name(n->op));
            goto done;
        }
        int vout = -1;
        switch (n->op) {
        case RS_OP_CONV:
            s->kind = ST_CONV;
            vout = build_conv(c, &b, ni, s, e);
            break;
        case RS_OP_GEMM:
        case RS_OP_MATMUL:
            s->kind = ST_GEMM;
            vout = build_dense(c, &b, ni, s, e);
            break;
        case RS_OP_ADD:
            s->kind = ST_ADD;
            vout = build_add(&b, ni, s, e);
            break;
        case RS_OP_RELU:
            s->kind = ST_RELU;
            s->in_numel = s->out_numel = (int)model_value_numel(&m->values[vin]);
            vout = n->out[0];
            break;
        case RS_OP_MAXPOOL: {
            s->kind = ST_MAXPOOL;
            int pc, ph, pw;
            if (act4(m, vin, n, "input", &s->C, &s->H, &s->W, e) ||
                act4(m, n->out[0], n, "output", &pc, &ph, &pw, e))
                goto done;
            s->pool = (pool_geom){(int)n->kernel[0], (int)n->kernel[1], (int)n->strides[0],
                                  (int)n->strides[1], (int)n->dilations[0],
                                  (int)n->dilations[1], (int)n->pads[0], (int)n->pads[1], ph, pw};
            s->in_numel = s->C * s->H * s->W;
            s->out_numel = pc * ph * pw;
            vout = n->out[0];
            break;
        }
        case RS_OP_BATCHNORM: {
            const rs_value *xv = &m->values[vin];
            if ((xv->ndim != 4 && xv->ndim != 2) || xv->dims[0] != -1 || !fits_int(xv->dims[1])) {
                rs_fail(e, "node %s (BatchNormalization): input '%s' must be (N,C,H,W) or (N,C)",
                        n->name, xv->name);
                goto done;
            }
            s->kind = ST_AFFINE;
            s->C = (int)xv->dims[1];
            s->in_numel = s->out_numel = (int)model_value_numel(xv);
            s->K = s->in_numel / s->C;
            if (bn_affine(m, n, s->C, &s->w, &s->bias, e)) {
                c->n_steps++;
                goto done;
            }
            vout = n->out[0];
            break;
        }
        case RS_OP_GLOBALAVGPOOL:
        case RS_OP_AVGPOOL: {
            s->kind = ST_AVGPOOL;
            int pc, ph, pw;
            if (act4(m, vin, n, "input", &s->C, &s->H, &s->W, e) ||
                act4(m, n->out[0], n, "output", &pc, &ph, &pw, e))
                goto done;
            if (n->op == RS_OP_GLOBALAVGPOOL) {
                s->pool = (pool_geom){s->H, s->W, 1, 1, 1, 1, 0, 0, 1, 1};
            } else {
                pool_from_node(n, ph, pw, &s->pool);
                s->pb = (int)n->pads[2];
                s->pr = (int)n->pads[3];
                s->count_pad = n->count_include_pad;
            }
            s->in_numel = s->C * s->H * s->W;
            s->out_numel = pc * ph * pw;
            vout = n->out[0];
            break;
        }
        case RS_OP_CLIP:
        case RS_OP_SIGMOID:
        case RS_OP_SOFTMAX:
            s->kind = n->op == RS_OP_CLIP ? ST_CLIP : n->op == RS_OP_SIGMOID ? ST_SIGMOID : ST_SOFTMAX;
            s->lo = n->clip_min;
            s->hi = n->clip_max;
            s->in_numel = s->out_numel = (int)model_value_numel(&m->values[vin]);
            vout = n->out[0];
            break;
        case RS_OP_PAD: {
            s->kind = ST_PAD;
            int pc;
            if (act4(m, vin, n, "input", &s->C, &s->H, &s->W, e) ||
                act4(m, n->out[0], n, "output", &pc, &s->Ho, &s->Wo, e))
                goto done;
            s->pt = (int)n->pads[0];
            s->pl = (int)n->pads[1];
            s->in_numel = s->C * s->H * s->W;
            s->out_numel = pc * s->Ho * s->Wo;
            vout = n->out[0];
            break;
        }
        case RS_OP_CONCAT: {
            if (n->n_in != 2 || n->in[1] < 0 || m->values[n->in[1]].is_const) {
                rs_fail(e, "node %s (Concat): the inference engine concatenates exactly two "
                        "activations (has %d inputs)", n->name, n->n_in);
                goto done;
            }
            s->kind = ST_CONCAT;
            s->in_numel = (int)model_value_numel(&m->values[vin]);
            s->N = (int)model_value_numel(&m->values[n->in[1]]);
            s->out_numel = s->in_numel + s->N;
            b.step_in2_v[c->n_steps] = n->in[1];
            vout = n->out[0];
            break;
        }
        case RS_OP_FLATTEN:
        case RS_OP_RESHAPE:
        case RS_OP_IDENTITY: {
            const rs_value *ov = &m->values[n->out[0]];
            if (ov->dims[0] != -1 ||
                model_value_numel(ov) != model_value_numel(&m->values[vin])) {
                rs_fail(e, "node %s (%s): output '%s' must keep the batch dimension leading "
                        "(only flatten-like reshapes are supported)", n->name,
                        model_op_name(n->op), ov->name);
                goto done;
            }
            s->kind = ST_ALIAS;
            s->in_numel = s->out_numel = (int)model_value_numel(ov);
            vout = n->out[0];
            break;
        }
        default:
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

/* ---- execution ---------------------------------------------------------------------------- */

static void pool(const infer_ctx *c, int C, int H, int W, int rs, int cs, const float *in,
                 const pool_geom *p, float *out)
{
    if (p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->dh == 1 && p->dw == 1 &&
        p->pt == 0 && p->pl == 0 && 2 * p->Ho <= H && 2 * p->Wo <= W)
        kern_maxpool2x2(c->isa, C, rs, cs, in, p->Ho, p->Wo, 0, out);
    else
        kern_maxpool(C, H, W, rs, cs, in, p->Ho, p->Wo, p->kh, p->kw, p->sh, p->sw, p->dh, p->dw,
                     p->pt, p->pl, 0, out);
}

static void run_conv(const infer_ctx *c, worker *w, int si, const step *s, int nt)
{
    const float *in = w->slots[s->in_slot];
    float *out = w->slots[s->out_slot];
    const int cg = s->C / s->G, mg = s->M / s->G;
    for (int img = 0; img < nt; ++img) {
        const float *src = in + (size_t)img * s->in_numel;
        float *dst = out + (size_t)img * s->out_numel;
        const float *bsrc = src;
        if (s->wide && s->padded) {
            float *pad = w->pads[si];
            for (int ch = 0; ch < s->C; ++ch)
                for (int y = 0; y < s->H; ++y)
                    memcpy(pad + ((size_t)ch * s->Hp + y + s->pt) * s->Wp + s->pl,
                           src + ((size_t)ch * s->H + y) * s->W, (size_t)s->W * sizeof(float));
            bsrc = pad;
        } else if (!s->wide) {
            for (int g = 0; g < s->G; ++g)
                kern_im2col(cg, s->H, s->W, src + (size_t)g * cg * s->H * s->W, s->kh, s->kw,
                            s->sh, s->sw, s->dh, s->dw, s->pt, s->pl, s->Ho, s->Wo,
                            w->col + (size_t)g * s->gstride, s->ncols);
            bsrc = w->col;
        }
        for (int g = 0; g < s->G; ++g)
            kern_gemm(c->isa, mg, s->ncols, s->K, s->w + (size_t)g * mg * s->K, s->K,
                      bsrc + (size_t)g * s->gstride, s->boff,
                      w->cbuf + (size_t)g * mg * s->ncols, s->ncols,
                      s->bias ? s->bias + (size_t)g * mg : NULL, NULL, s->relu);
        if (s->clip) {
            float *cb = w->cbuf;
            const size_t total = (size_t)s->M * s->ncols;
            for (size_t k = 0; k < total; ++k) {
                float v = cb[k] < s->lo ? s->lo : cb[k];
                cb[k] = v > s->hi ? s->hi : v;
            }
        }
        if (s->has_pool) {
            pool(c, s->M, s->Ho, s->Wo, s->row_stride, s->ncols, w->cbuf, &s->pool, dst);
        } else if (s->row_stride == s->Wo) {
            for (int o = 0; o < s->M; ++o)
                memcpy(dst + (size_t)o * s->Ho * s->Wo, w->cbuf + (size_t)o * s->ncols,
                       (size_t)s->Ho * s->Wo * sizeof(float));
        } else {
            for (int o = 0; o < s->M; ++o)
                for (int y = 0; y < s->Ho; ++y)
                    memcpy(dst + ((size_t)o * s->Ho + y) * s->Wo,
                           w->cbuf + (size_t)o * s->ncols + (size_t)y * s->row_stride,
                           (size_t)s->Wo * sizeof(float));
        }
    }
}

static void run_step(const infer_ctx *c, worker *w, int si, int nt)
{
    const step *s = &c->steps[si];
    float *in = w->slots[s->in_slot];
    float *out = w->slots[s->out_slot];
    switch (s->kind) {
    case ST_CONV:
        run_conv(c, w, si, s, nt);
        break;
    case ST_GEMM:
        if (s->Npad == s->N) {
            kern_gemm(c->isa, nt, s->Npad, s->K, in, s->K, s->w, s->boff, out, s->N, NULL,
                      s->bias, s->relu);
        } else {
            kern_gemm(c->isa, nt, s->Npad, s->K, in, s->K, s->w, s->boff, w->cbuf, s->Npad,
                      NULL, s->bias, s->relu);
            for (int i = 0; i < nt; ++i)
                memcpy(out + (size_t)i * s->N, w->cbuf + (size_t)i * s->Npad,
                       (size_t)s->N * sizeof(float));
        }
        break;
    case ST_RELU: {
        size_t total = (size_t)nt * s->in_numel;
        for (size_t i = 0; i < total; ++i)
            out[i] = in[i] > 0.0f ? in[i] : 0.0f;
        break;
    }
    case ST_ADD:
        for (int i = 0; i < nt; ++i)
            for (int j = 0; j < s->in_numel; ++j)
                out[(size_t)i * s->in_numel + j] = in[(size_t)i * s->in_numel + j] + s->addc[j];
        break;
    case ST_MAXPOOL: {
        for (int i = 0; i < nt; ++i)
            pool(c, s->C, s->H, s->W, s->W, s->H * s->W, in + (size_t)i * s->in_numel, &s->pool,
                 out + (size_t)i * s->out_numel);
        break;
    }
    case ST_ADD2: {
        const float *in2 = w->slots[s->in2_slot];
        size_t total = (size_t)nt * s->in_numel;
        for (size_t i = 0; i < total; ++i)
            out[i] = in[i] + in2[i];
        break;
    }
    case ST_ALIAS:
        break;
    case ST_AFFINE:
        for (int i = 0; i < nt; ++i)
            op_affine(s->C, s->K, s->w, s->bias, in + (size_t)i * s->in_numel,
                      out + (size_t)i * s->out_numel);
        break;
    case ST_AVGPOOL:
        for (int i = 0; i < nt; ++i)
            op_avgpool(s->C, s->H, s->W, &s->pool, s->pb, s->pr, s->count_pad,
                       in + (size_t)i * s->in_numel, out + (size_t)i * s->out_numel);
        break;
    case ST_CLIP: {
        size_t total = (size_t)nt * s->in_numel;
        for (size_t i = 0; i < total; ++i) {
            float v = in[i] < s->lo ? s->lo : in[i];
            out[i] = v > s->hi ? s->hi : v;
        }
        break;
    }
    case ST_SIGMOID: {
        size_t total = (size_t)nt * s->in_numel;
        for (size_t i = 0; i < total; ++i)
            out[i] = 1.0f / (1.0f + expf(-in[i]));
        break;
    }
    case ST_SOFTMAX:
        for (int i = 0; i < nt; ++i)
            op_softmax(s->in_numel, in + (size_t)i * s->in_numel, out + (size_t)i * s->out_numel);
        break;
    case ST_PAD:
        for (int i = 0; i < nt; ++i)
            op_pad(s->C, s->H, s->W, s->pt, s->pl, s->Ho, s->Wo, in + (size_t)i * s->in_numel,
                   out + (size_t)i * s->out_numel);
        break;
    case ST_CONCAT: {
        const float *in2 = w->slots[s->in2_slot];
        for (int i = 0; i < nt; ++i) {
            memcpy(out + (size_t)i * s->out_numel, in + (size_t)i * s->in_numel,
                   (size_t)s->in_numel * sizeof(float));
            memcpy(out + (size_t)i * s->out_numel + s->in_numel, in2 + (size_t)i * s->N,
                   (size_t)s->N * sizeof(float));
        }
        break;
    }
    }
}

static void run_tile(const infer_ctx *c, worker *w, int first, int nt)
{
    float *x = w->slots[c->in_slot];
    const size_t nin = (size_t)c->in_features;
    if (c->job_xu) {
        kern_u8_affine(c->isa, c->job_xu + (size_t)first * nin, (size_t)nt * nin,
                       1.0f / 127.5f, -1.0f, x);
    } else {
        memcpy(x, c->job_xf + (size_t)first * nin, (size_t)nt * nin * sizeof(float));
    }
    for (int si = 0; si < c->n_steps; ++si)
        run_step(c, w, si, nt);
    memcpy(c->job_out + (size_t)first * c->result_numel, w->slots[c->result_slot],
           (size_t)nt * c->result_numel * sizeof(float));
}

static void work(infer_ctx *c, worker *w)
{
    const int ntiles = (c->job_n + c->tile - 1) / c->tile;
    for (;;) {
        int t = atomic_fetch_add(&c->next_tile, 1);
        if (t >= ntiles)
            break;
        int first = t * c->tile;
        int nt = c->job_n - first < c->tile ? c->job_n - first : c->tile;
        run_tile(c, w, first, nt);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    infer_ctx *c = w->ctx;
    int seen = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->generation == seen && !c->quit)
            pthread_cond_wait(&c->cv_go, &c->mu);
        if (c->quit)
            break;
        seen = c->generation;
        pthread_mutex_unlock(&c->mu);
        work(c, w);
        pthread_mutex_lock(&c->mu);
        if (--c->pending == 0)
            pthread_cond_signal(&c->cv_done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static int run_job(infer_ctx *c, const float *xf, const uint8_t *xu, int n, float *out,
                   rs_err *e)
{
    if (n < 0 || (n > 0 && (!out || (!xf && !xu))))
        return rs_fail(e, "infer: invalid arguments (n = %d)", n);
    if (n == 0)
        return 0;
    c->job_xf = xf;
    c->job_xu = xu;
    c->job_out = out;
    c->job_n = n;
    atomic_store(&c->next_tile, 0);
    int helpers = c->nthreads - 1;
    int ntiles = (n + c->tile - 1) / c->tile;
    if (helpers > ntiles - 1)
        helpers = ntiles - 1;
    if (helpers > 0) {
        pthread_mutex_lock(&c->mu);
        c->pending = c->nthreads - 1;
        c->generation++;
        pthread_cond_broadcast(&c->cv_go);
        pthread_mutex_unlock(&c->mu);
    }
    work(c, &c->workers[0]);
    if (helpers > 0) {
        pthread_mutex_lock(&c->mu);
        while (c->pending > 0)
            pthread_cond_wait(&c->cv_done, &c->mu);
        pthread_mutex_unlock(&c->mu);
    }
    return 0;
}

/* ---- public API --------------------------------------------------------------------------- */

static int worker_alloc(infer_ctx *c, worker *w, rs_err *e)
{
    w->slots = calloc((size_t)c->n_slots, sizeof(float *));
    w->pads = calloc((size_t)c->n_steps + 1, sizeof(float *));
    if (!w->slots || !w->pads)
        return rs_fail(e, "infer: out of memory");
    for (int k = 0; k < c->n_slots; ++k) {
        size_t n;
        if (rs_size_mul(c->slot_floats[k], (size_t)c->tile, &n) ||
            rs_size_add(n, c->slack + 64, &n) || n > RS_MAX_ALLOC / sizeof(float))
            return rs_fail(e, "infer: activation buffer too large");
        if (!(w->slots[k] = alloc_floats(n)))
            return rs_fail(e, "infer: out of memory");
    }
    for (int si = 0; si < c->n_steps; ++si)
        if (c->steps[si].pad_floats &&
            !(w->pads[si] = alloc_floats(c->steps[si].pad_floats + 64)))
            return rs_fail(e, "infer: out of memory");
    if (!(w->cbuf = alloc_floats(c->cbuf_floats + 64)) ||
        !(w->col = alloc_floats(c->col_floats + 64)))
        return rs_fail(e, "infer: out of memory");
    return 0;
}

static void worker_release(infer_ctx *c, worker *w)
{
    if (w->slots)
        for (int k = 0; k < c->n_slots; ++k)
            free(w->slots[k]);
    if (w->pads)
        for (int si = 0; si < c->n_steps; ++si)
            free(w->pads[si]);
    free(w->slots);
    free(w->pads);
    free(w->cbuf);
    free(w->col);
}

static infer_ctx *create_ctx(const rs_model *m, int nthreads, int nofuse, int result_v,
                             rs_err *e)
{
    if (!m || m->input < 0 || m->output < 0) {
        rs_fail(e, "infer: model has no input/output");
        return NULL;
    }
    infer_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        rs_fail(e, "infer: out of memory");
        return NULL;
    }
    c->isa = kern_detect();
    c->vl = kern_vl(c->isa);
    c->nofuse = nofuse;
    c->result_v = result_v;
    c->nthreads = nthreads > 0 ? nthreads : rs_default_threads();
    if (c->nthreads > 64)
        c->nthreads = 64;
    c->tile = DEFAULT_TILE;
    const char *tenv = getenv("RANKSCOPE_TILE");
    if (tenv && atoi(tenv) >= 1 && atoi(tenv) <= 4096)
        c->tile = atoi(tenv);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv_go, NULL);
    pthread_cond_init(&c->cv_done, NULL);
    if (compile(c, m, e))
        goto fail;
    c->workers = calloc((size_t)c->nthreads, sizeof(worker));
    if (!c->workers) {
        rs_fail(e, "infer: out of memory");
        goto fail;
    }
    for (int t = 0; t < c->nthreads; ++t) {
        c->workers[t].ctx = c;
        c->workers[t].id = t;
        if (worker_alloc(c, &c->workers[t], e))
            goto fail;
    }
    for (int t = 1; t < c->nthreads; ++t) {
        if (pthread_create(&c->workers[t].thread, NULL, worker_main, &c->workers[t])) {
            rs_fail(e, "infer: cannot start worker thread %d", t);
            goto fail;
        }
        c->threads_started = t;
    }
    return c;
fail:
    infer_free(c);
    return NULL;
}

infer_ctx *infer_create(const rs_model *m, int nthreads, rs_err *e)
{
    return create_ctx(m, nthreads, 0, -1, e);
}

void infer_free(infer_ctx *c)
{
    if (!c)
        return;
    if (c->threads_started > 0) {
        pthread_mutex_lock(&c->mu);
        c->quit = 1;
        pthread_cond_broadcast(&c->cv_go);
        pthread_mutex_unlock(&c->mu);
        for (int t = 1; t <= c->threads_started; ++t)
            pthread_join(c->workers[t].thread, NULL);
    }
    if (c->workers)
        for (int t = 0; t < c->nthreads; ++t)
            worker_release(c, &c->workers[t]);
    free(c->workers);
    if (c->steps)
        for (int i = 0; i < c->n_steps; ++i)
            step_free(&c->steps[i]);
    free(c->steps);
    free(c->slot_floats);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv_go);
    pthread_cond_destroy(&c->cv_done);
    free(c);
}

int infer_in_features(const infer_ctx *c)
{
    return c->in_features;
}

int infer_out_features(const infer_ctx *c)
{
    return c->out_features;
}

int infer_forward(infer_ctx *c, const float *x, int n, float *out, rs_err *e)
{
    return run_job(c, x, NULL, n, out, e);
}

int infer_forward_u8(infer_ctx *c, const uint8_t *x, int n, float *out, rs_err *e)
{
    return run_job(c, NULL, x, n, out, e);
}

/* ---- the plain executor: one node at a time over the whole batch -------------------------
 * Used by infer_forward_naive (textbook loops) and infer_forward_blas (whole-batch im2col +
 * cblas_sgemm per layer): bench's baselines, and second opinions in tests. */

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

/* col (when not naive) holds col_floats floats: chunks of images are im2col'ed side by side so
 * one sgemm per group covers the chunk (per-image calls would drown in BLAS call overhead). */
static void plain_conv(const rs_model *m, const rs_node *nd, const float *x, int n, float *y,
                       int naive, float *col, size_t col_floats)
{
    const rs_value *xv = &m->values[nd->in[0]], *yv = &m->values[nd->out[0]];
    const rs_value *wv = &m->values[nd->in[1]];
    const float *bias = nd->n_in >= 3 && nd->in[2] >= 0 ? m->values[nd->in[2]].f : NULL;
    const int C = (int)xv->dims[1], H = (int)xv->dims[2], W = (int)xv->dims[3];
    const int M = (int)yv->dims[1], Ho = (int)yv->dims[2], Wo = (int)yv->dims[3];
    const int G = (int)nd->group, cg = C / G, mg = M / G;
    const int kh = (int)wv->dims[2], kw = (int)wv->dims[3];
    const int sh = (int)nd->strides[0], sw = (int)nd->strides[1];
    const int dh = (int)nd->dilations[0], dw = (int)nd->dilations[1];
    const int pt = (int)nd->pads[0], pl = (int)nd->pads[1];
    const int K = cg * kh * kw, P = Ho * Wo;
    if (!naive) {
        /* col: K × (chunk·P), then the product mg × (chunk·P) right after it. */
        size_t per_img = (size_t)(K + mg) * P;
        int chunk = (int)(col_floats / per_img);
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

static void plain_dense(const rs_model *m, const rs_node *nd, const float *x, int n, float *y,
                        int naive)
{
    const rs_value *wv = &m->values[nd->in[1]];
    const int gemm = nd->op == RS_OP_GEMM, tb = gemm && nd->trans_b;
    const int K = (int)(tb ? wv->dims[1] : wv->dims[0]);
    const int N = (int)(tb ? wv->dims[0] : wv->dims[1]);
    const float alpha = gemm ? nd->alpha : 1.0f;
    if (naive) {
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < N; ++j) {
                float acc = 0.0f;
                for (int k = 0; k < K; ++k)
                    acc += x[(size_t)i * K + k] *
                           (tb ? wv->f[(size_t)j * K + k] : wv->f[(size_t)k * N + j]);
                y[(size_t)i * N + j] = alpha * acc;
            }
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, n, N, K, alpha,
                    x, K, wv->f, tb ? K : N, 0.0f, y, N);
    }
    if (gemm && nd->n_in >= 3 && nd->in[2] >= 0) {
        const rs_value *cv = &m->values[nd->in[2]];
        int64_t cn = model_value_numel(cv);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < N; ++j)
                y[(size_t)i * N + j] += nd->beta * cv->f[cn == 1 ? 0 : j];
    }
}

static int plain_run(const rs_model *m, const float *x, int n, int capture, float *cap_out,
                     int naive, rs_err *e)
{
    /* Validate through the fast compiler (same supported subset, same error messages). */
    infer_ctx *probe = calloc(1, sizeof *probe);
    if (!probe)
        return rs_fail(e, "infer: out of memory");
    probe->vl = 8;
    probe->tile = 1;
    probe->result_v = -1;
    probe->nthreads = 1;
    pthread_mutex_init(&probe->mu, NULL);
    pthread_cond_init(&probe->cv_go, NULL);
    pthread_cond_init(&probe->cv_done, NULL);
    int rc = compile(probe, m, e);
    /* im2col workspace: at least one image of the largest conv, else up to 1 M floats (4 MB,
     * cache-sized: bigger chunks measured slower, bound by memory traffic and page faults). */
    size_t col_floats = (size_t)1 << 20;
    for (int i = 0; i < probe->n_steps; ++i) {
        const step *s = &probe->steps[i];
        size_t one = (size_t)(s->K + s->M) * s->Ho * s->Wo;
        if (s->kind == ST_CONV && one > col_floats)
            col_floats = one;
    }
    infer_free(probe);
    if (rc)
        return -1;

    const int nv = m->n_values;
    float **val = calloc((size_t)nv, sizeof(float *));
    int *last = malloc((size_t)nv * sizeof(int));
    float *col = NULL;
    if (!naive) { /* no larger than the batch needs */
        size_t need = 0;
        for (int i = 0; i < m->n_nodes; ++i)
            if (m->nodes[i].op == RS_OP_CONV) {
                const rs_value *yv = &m->values[m->nodes[i].out[0]];
                const rs_value *wv = &m->values[m->nodes[i].in[1]];
                size_t per = (size_t)(wv->dims[1] * wv->dims[2] * wv->dims[3] + yv->dims[1]) *
                             (size_t)(yv->dims[2] * yv->dims[3]);
                size_t all = per * (size_t)n;
                if (all > need)
                    need = all;
            }
        if (need < col_floats)
            col_floats = need;
        col = malloc((col_floats + 1) * sizeof(float));
    }
    rc = -1;
    if (!val || !last || (!naive && !col)) {
        rs_fail(e, "infer: out of memory");
        goto done;
    }
    for (int v = 0; v < nv; ++v)
        last[v] = -1;
    for (int i = 0; i < m->n_nodes; ++i)
        for (int j = 0; j < m->nodes[i].n_in; ++j)
            if (m->nodes[i].in[j] >= 0)
                last[m->nodes[i].in[j]] = i;
    last[m->output] = m->n_nodes;
    if (capture >= 0)
        last[capture] = m->n_nodes;
    val[m->input] = (float *)x; /* never written, never freed */
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *nd = &m->nodes[i];
        const int vout = nd->out[0];
        const int64_t on = model_value_numel(&m->values[vout]);
        size_t total;
        if (rs_size_mul((size_t)on, (size_t)n, &total) || total > RS_MAX_ALLOC / sizeof(float)) {
            rs_fail(e, "node %s: activation too large for %d images", nd->name, n);
            goto done;
        }
        float *y = malloc(total * sizeof(float) + 4);
        if (!y) {
            rs_fail(e, "node %s: out of memory", nd->name);
            goto done;
        }
        val[vout] = y;
        const rs_value *xv = &m->values[nd->in[0]];
        const float *xin = val[nd->in[0]];
        switch (nd->op) {
        case RS_OP_CONV:
            plain_conv(m, nd, xin, n, y, naive, col, col_floats);
            break;
        case RS_OP_GEMM:
        case RS_OP_MATMUL:
            plain_dense(m, nd, xin, n, y, naive);
            break;
        case RS_OP_ADD: {
            if (!m->values[nd->in[0]].is_const && !m->values[nd->in[1]].is_const) {
                const float *b2 = val[nd->in[1]];
                for (size_t k = 0; k < total; ++k)
                    y[k] = xin[k] + b2[k];
                break;
            }
            int ca = m->values[nd->in[0]].is_const;
            const rs_value *av = &m->values[nd->in[ca ? 1 : 0]];
            const rs_value *cv = &m->values[nd->in[ca ? 0 : 1]];
            const float *a = val[nd->in[ca ? 1 : 0]];
            for (int img = 0; img < n; ++img)
                for (int64_t k = 0; k < on; ++k)
                    y[(size_t)img * on + k] = a[(size_t)img * on + k] + cv->f[bcast_index(av, cv, k)];
            break;
        }
        case RS_OP_RELU:
            for (size_t k = 0; k < total; ++k)
                y[k] = xin[k] > 0.0f ? xin[k] : 0.0f;
            break;
        case RS_OP_MAXPOOL: {
            const rs_value *yv = &m->values[vout];
            int C = (int)xv->dims[1], H = (int)xv->dims[2], W = (int)xv->dims[3];
            for (int img = 0; img < n; ++img)
                kern_maxpool(C, H, W, W, H * W, xin + (size_t)img * C * H * W, (int)yv->dims[2],
                             (int)yv->dims[3], (int)nd->kernel[0], (int)nd->kernel[1],
                             (int)nd->strides[0], (int)nd->strides[1], (int)nd->dilations[0],
                             (int)nd->dilations[1], (int)nd->pads[0], (int)nd->pads[1], 0,
                             y + (size_t)img * on);
            break;
        }
        case RS_OP_BATCHNORM: {
            int C = (int)xv->dims[1];
            float *scale = NULL, *shift = NULL;
            if (bn_affine(m, nd, C, &scale, &shift, e)) {
                free(scale);
                free(shift);
                goto done;
            }
            for (int img = 0; img < n; ++img)
                op_affine(C, (int)(on / C), scale, shift, xin + (size_t)img * on, y + (size_t)img * on);
            free(scale);
            free(shift);
            break;
        }
        case RS_OP_GLOBALAVGPOOL:
        case RS_OP_AVGPOOL: {
            const rs_value *yv = &m->values[vout];
            int C = (int)xv->dims[1], H = (int)xv->dims[2], W = (int)xv->dims[3];
            int64_t xn = model_value_numel(xv);
            pool_geom pg;
            int pb = 0, pr = 0, cip = 0;
            if (nd->op == RS_OP_GLOBALAVGPOOL) {
                pg = (pool_geom){H, W, 1, 1, 1, 1, 0, 0, 1, 1};
            } else {
                pool_from_node(nd, (int)yv->dims[2], (int)yv->dims[3], &pg);
                pb = (int)nd->pads[2], pr = (int)nd->pads[3], cip = nd->count_include_pad;
            }
            for (int img = 0; img < n; ++img)
                op_avgpool(C, H, W, &pg, pb, pr, cip, xin + (size_t)img * xn, y + (size_t)img * on);
            break;
        }
        case RS_OP_CLIP:
            for (size_t k = 0; k < total; ++k)
                y[k] = fminf(fmaxf(xin[k], nd->clip_min), nd->clip_max);
            break;
        case RS_OP_SIGMOID:
            for (size_t k = 0; k < total; ++k)
                y[k] = 1.0f / (1.0f + expf(-xin[k]));
            break;
        case RS_OP_SOFTMAX:
            for (int img = 0; img < n; ++img)
                op_softmax((int)on, xin + (size_t)img * on, y + (size_t)img * on);
            break;
        case RS_OP_PAD: {
            const rs_value *yv = &m->values[vout];
            int64_t xn = model_value_numel(xv);
            for (int img = 0; img < n; ++img)
                op_pad((int)xv->dims[1], (int)xv->dims[2], (int)xv->dims[3], (int)nd->pads[0],
                       (int)nd->pads[1], (int)yv->dims[2], (int)yv->dims[3], xin + (size_t)img * xn,
                       y + (size_t)img * on);
            break;
        }
        case RS_OP_CONCAT: {
            const float *b2 = val[nd->in[1]];
            int64_t an = model_value_numel(xv), bn = on - an;
            for (int img = 0; img < n; ++img) {
                memcpy(y + (size_t)img * on, xin + (size_t)img * an, (size_t)an * sizeof(float));
                memcpy(y + (size_t)img * on + an, b2 + (size_t)img * bn, (size_t)bn * sizeof(float));
            }
            break;
        }
        default: /* Flatten / Reshape / Identity: same bytes */
            memcpy(y, xin, total * sizeof(float));
            break;
        }
        for (int j = 0; j < nd->n_in; ++j) {
            int v = nd->in[j];
            if (v >= 0 && v != m->input && last[v] == i && !m->values[v].is_const) {
                free(val[v]);
                val[v] = NULL;
            }
        }
    }
    {
        int v = capture >= 0 ? capture : m->output;
        const float *src = val[v];
        if (!src) {
            rs_fail(e, "value '%s' is not computed by the graph", m->values[v].name);
            goto done;
        }
        memcpy(cap_out, src, (size_t)n * model_value_numel(&m->values[v]) * sizeof(float));
    }
    rc = 0;
done:
    if (val)
        for (int v = 0; v < nv; ++v)
            if (v != m->input && !m->values[v].is_const)
                free(val[v]);
    free(val);
    free(last);
    free(col);
    return rc;
}

int infer_capture(const rs_model *m, const float *x, int n, int value, float *out, rs_err *e)
{
    if (!m || value < 0 || value >= m->n_values || n < 0 || (n > 0 && (!x || !out)))
        return rs_fail(e, "infer_capture: invalid arguments");
    if (n == 0)
        return 0;
    if (m->values[value].is_const)
        return rs_fail(e, "infer_capture: '%s' is an initializer, not an activation",
                       m->values[value].name);
    if (value == m->input) {
        memcpy(out, x, (size_t)n * model_value_numel(&m->values[value]) * sizeof(float));
        return 0;
    }
    if (m->values[value].ndim < 1 || m->values[value].dims[0] != -1)
        return rs_fail(e, "infer_capture: '%s' is not a batched activation", m->values[value].name);
    /* The fast engine with fusion off, so every value exists in a buffer. */
    infer_ctx *c = create_ctx(m, 0, 1, value, e);
    if (!c)
        return -1;
    int rc = run_job(c, x, NULL, n, out, e);
    infer_free(c);
    return rc;
}

int infer_forward_naive(const rs_model *m, const float *x, int n, float *out, rs_err *e)
{
    if (!m || n < 0 || (n > 0 && (!x || !out)))
        return rs_fail(e, "infer_forward_naive: invalid arguments");
    if (n == 0)
        return 0;
    return plain_run(m, x, n, -1, out, 1, e);
}

int infer_forward_blas(const rs_model *m, const float *x, int n, float *out, rs_err *e)
{
    if (!m || n < 0 || (n > 0 && (!x || !out)))
        return rs_fail(e, "infer_forward_blas: invalid arguments");
    if (n == 0)
        return 0;
    return plain_run(m, x, n, -1, out, 0, e);
}

const char *infer_isa(const infer_ctx *c)
{
    return kern_isa_name(c->isa);
}

int infer_threads(const infer_ctx *c)
{
    return c->nthreads;
}
