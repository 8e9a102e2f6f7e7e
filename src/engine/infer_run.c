/* infer_run.c — run a compiled model (infer_compile.c) over cache-resident batch tiles.
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
 *  - Each thread of the pool (pool.h) has a worker that owns its buffers and processes tiles of
 *    `tile` images through the whole net (conv per image, dense layers per tile), so activations
 *    stay in L1/L2. Workers pull tiles from a shared atomic counter; the calling thread is
 *    worker 0. A tile's result does not depend on which worker ran it.
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
 * a channel-vector kernel (16 output channels per zmm) would avoid the latter.
 */
#include "rankscope/infer.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "infer_internal.h"
#include "rankscope/ops.h"

/* Images per tile: dense layers run as (tile × K)·(K × N) products, so the tile is their M.
 * 8..64 measured within noise on the reference net; 16 keeps a tile's activations (~50 KB per
 * image at most for this net) well inside L2. $RANKSCOPE_TILE overrides it (tuning, tests). */
#define DEFAULT_TILE 16

/* ---- execution ---------------------------------------------------------------------------- */

static void pool(const infer_ctx *c, int C, int H, int W, int rs, int cs, const float *in,
                 const pool_geom *p, float *out)
{
    if (p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->dh == 1 && p->dw == 1 &&
        p->pt == 0 && p->pl == 0 && 2 * p->Ho <= H && 2 * p->Wo <= W)
        kern_maxpool2x2(c->isa, C, rs, cs, in, p->Ho, p->Wo, 0, out);
    else if (p->kh != 3 || p->kw != 3 || p->sh != 2 || p->sw != 2 || p->dh != 1 || p->dw != 1 ||
             kern_maxpool3x3s2(c->isa, C, H, W, rs, cs, in, p->Ho, p->Wo, p->pt, p->pl, 0, out))
        kern_maxpool(C, H, W, rs, cs, in, p->Ho, p->Wo, p->kh, p->kw, p->sh, p->sw, p->dh, p->dw,
                     p->pt, p->pl, 0, out);
}

/* The conv's B operand for one image: the input itself, its zero-padded copy, its polyphase
 * split (strided), or an explicit im2col. */
static const float *conv_source(const infer_ctx *c, worker *w, int si, const step *s, const float *src)
{
    if (s->phases) {
        kern_phase_split(c->isa, s->C, s->H, s->W, src, s->sh, s->sw, s->pt, s->pl, s->Hq, s->Wq, s->phase_mask,
                         w->pads[si]);
        return w->pads[si];
    }
    if (s->wide && s->padded) {
        float *pad = w->pads[si];
        for (int ch = 0; ch < s->C; ++ch)
            for (int y = 0; y < s->H; ++y)
                memcpy(pad + ((size_t)ch * s->Hp + y + s->pt) * s->Wp + s->pl, src + ((size_t)ch * s->H + y) * s->W,
                       (size_t)s->W * sizeof(float));
        return pad;
    }
    if (s->wide)
        return src;
    const int cg = s->C / s->G;
    for (int g = 0; g < s->G; ++g)
        kern_im2col(cg, s->H, s->W, src + (size_t)g * cg * s->H * s->W, s->kh, s->kw, s->sh, s->sw, s->dh, s->dw,
                    s->pt, s->pl, s->Ho, s->Wo, w->col + (size_t)g * s->gstride, s->ncols);
    return w->col;
}

/* One image through the conv kernels, pooling and the copy from the kernel's layout. */
static void conv_image(const infer_ctx *c, worker *w, int si, const step *s, const float *src, float *dst)
{
    const float *bsrc = conv_source(c, w, si, s, src);
    const int act = s->clip ? 2 : s->relu, npix = s->Ho * s->Wo;
    if (s->cv) { /* compact output: straight to dst unless pooled */
        float *o = s->has_pool ? w->cbuf : dst;
        kern_conv_cv(c->isa, s->M, s->npix, s->K, s->cv_w, s->cv_ld, bsrc, s->boff, s->cv_coff, s->cv_opos, o, npix,
                     s->cv_bias, act, s->lo, s->hi);
        if (s->has_pool)
            pool(c, s->M, s->Ho, s->Wo, s->Wo, npix, w->cbuf, &s->pool, dst);
        return;
    }
    /* Straight into the output when its layout is the kernel's (1×1 convs): no copy. */
    const int direct = !s->has_pool && s->row_stride == s->Wo && s->ncols == npix;
    const int mg = s->M / s->G;
    float *cout = direct ? dst : w->cbuf;
    for (int g = 0; g < s->G; ++g) {
        const float *wg = s->w + (size_t)g * mg * s->K, *bg = s->bias ? s->bias + (size_t)g * mg : NULL;
        float *cg_out = cout + (size_t)g * mg * s->ncols;
        if (s->clip)
            kern_gemm_clamp(c->isa, mg, s->ncols, s->K, wg, s->K, bsrc + (size_t)g * s->gstride, s->boff, cg_out,
                            s->ncols, bg, NULL, s->lo, s->hi);
        else
            kern_gemm(c->isa, mg, s->ncols, s->K, wg, s->K, bsrc + (size_t)g * s->gstride, s->boff, cg_out,
                      s->ncols, bg, NULL, s->relu);
    }
    if (direct)
        return;
    if (s->has_pool) {
        pool(c, s->M, s->Ho, s->Wo, s->row_stride, s->ncols, w->cbuf, &s->pool, dst);
    } else if (s->row_stride == s->Wo) {
        for (int o = 0; o < s->M; ++o)
            memcpy(dst + (size_t)o * npix, w->cbuf + (size_t)o * s->ncols, (size_t)npix * sizeof(float));
    } else {
        for (int o = 0; o < s->M; ++o)
            for (int y = 0; y < s->Ho; ++y)
                memcpy(dst + ((size_t)o * s->Ho + y) * s->Wo, w->cbuf + (size_t)o * s->ncols + (size_t)y * s->row_stride,
                       (size_t)s->Wo * sizeof(float));
    }
}

static void run_conv(const infer_ctx *c, worker *w, int si, const step *s, int nt)
{
    const float *in = w->slots[s->in_slot];
    float *out = w->slots[s->out_slot];
    const float *res = s->post_res ? w->slots[s->in2_slot] : NULL;
    /* Winograd over the whole tile at once, so small images share the transform GEMMs; below
     * one block of 2×2 output tiles (batch-1 latency on small images) its GEMMs run mostly on
     * padding and the direct kernels are faster (measured, rankscope bench latency). */
    if (s->wino && (size_t)nt * ((s->Ho + 1) / 2) * ((s->Wo + 1) / 2) >= 64) {
        const size_t on = (size_t)s->M * s->Ho * s->Wo;
        float *o = s->has_pool ? w->cbuf : out;
        const size_t os = s->has_pool ? on : (size_t)s->out_numel;
        kern_wino3x3(c->isa, nt, s->C, s->H, s->W, in, (size_t)s->in_numel, s->M, s->wino_u, s->bias, s->pt,
                     s->pl, s->Ho, s->Wo, s->clip ? 2 : s->relu, s->lo, s->hi, w->pads[si] + s->wino_off, o, os);
        for (int img = 0; img < nt; ++img) {
            float *dst = out + (size_t)img * s->out_numel;
            if (s->has_pool)
                pool(c, s->M, s->Ho, s->Wo, s->Wo, s->Ho * s->Wo, w->cbuf + img * on, &s->pool, dst);
            if (s->has_post)
                kern_post_apply(c->isa, s->M, s->Ho * s->Wo, dst, res ? res + (size_t)img * s->out_numel : NULL,
                                dst, &s->post);
        }
        return;
    }
    for (int img = 0; img < nt; ++img) {
        const float *src = in + (size_t)img * s->in_numel;
        float *dst = out + (size_t)img * s->out_numel;
        if (s->depthwise) {
            const float lo = s->clip ? s->lo : s->relu ? 0.0f : -INFINITY, hi = s->clip ? s->hi : INFINITY;
            kern_dw3x3(c->isa, s->C, s->H, s->W, src, s->w, s->bias, s->sh, s->pt, s->pl, s->Ho, s->Wo, lo, hi,
                       w->pads[si], dst);
        } else {
            conv_image(c, w, si, s, src, dst);
        }
        if (s->has_post) /* in cache: this image's output was just written */
            kern_post_apply(c->isa, s->M, s->Ho * s->Wo, dst, res ? res + (size_t)img * s->out_numel : NULL, dst,
                            &s->post);
    }
}

void infer_run_step(const infer_ctx *c, worker *w, int si, int nt)
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
            infer_op_affine(s->C, s->K, s->w, s->bias, in + (size_t)i * s->in_numel,
                      out + (size_t)i * s->out_numel);
        break;
    case ST_AVGPOOL:
        for (int i = 0; i < nt; ++i)
            infer_op_avgpool(s->C, s->H, s->W, &s->pool, s->pb, s->pr, s->count_pad,
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
    case ST_POST:
        for (int i = 0; i < nt; ++i)
            kern_post_apply(c->isa, s->C, s->K, in + (size_t)i * s->in_numel, NULL, out + (size_t)i * s->out_numel,
                            &s->post);
        break;
    case ST_SOFTMAX:
        for (int i = 0; i < nt; ++i)
            infer_op_softmax(s->in_numel, in + (size_t)i * s->in_numel, out + (size_t)i * s->out_numel);
        break;
    case ST_PAD:
        for (int i = 0; i < nt; ++i)
            infer_op_pad(s->C, s->H, s->W, s->pt, s->pl, s->Ho, s->Wo, in + (size_t)i * s->in_numel,
                   out + (size_t)i * s->out_numel);
        break;
    case ST_OP: {
        const rs_node *n = &s->op->nodes[0];
        const float *ins[RS_MAXIO] = {0};
        int acts = 0;
        for (int k = 0; k < n->n_in; ++k)
            if (n->in[k] >= 0 && !s->op->values[n->in[k]].is_const)
                ins[k] = acts++ == 0 ? in : w->slots[s->in2_slot];
        ops_batch ob = {s->op, n, nt, ins, out, 1, NULL, 0};
        ops_get(n->op)->forward(&ob, NULL);
        break;
    }
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

void infer_load_tile(const infer_ctx *c, worker *w, const float *xf, const uint8_t *xu, int first, int nt)
{
    float *x = w->slots[c->in_slot];
    const size_t nin = (size_t)c->in_features;
    if (xu)
        kern_u8_affine(c->isa, xu + (size_t)first * nin, (size_t)nt * nin, 1.0f / 127.5f, -1.0f, x);
    else
        memcpy(x, xf + (size_t)first * nin, (size_t)nt * nin * sizeof(float));
}

void infer_run_tile(const infer_ctx *c, worker *w, const float *xf, const uint8_t *xu, int first, int nt, float *out)
{
    infer_load_tile(c, w, xf, xu, first, nt);
    for (int si = 0; si < c->n_steps; ++si)
        infer_run_step(c, w, si, nt);
    memcpy(out, w->slots[c->result_slot], (size_t)nt * c->result_numel * sizeof(float));
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
        infer_run_tile(c, w, c->job_xf, c->job_xu, first, nt, c->job_out + (size_t)first * c->result_numel);
    }
}

static void run_job(void *ctx, int thread_index, int n_threads)
{
    (void)n_threads;
    infer_ctx *c = ctx;
    work(c, &c->workers[thread_index]);
}

int infer_run_job(infer_ctx *c, const float *xf, const uint8_t *xu, int n, float *out,
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
    /* no thread is woken that would find no tile (batch-1 latency) */
    int ntiles = (n + c->tile - 1) / c->tile;
    return pool_run(c->pool, ntiles < c->nthreads ? ntiles : c->nthreads, run_job, c, e);
}

/* ---- public API --------------------------------------------------------------------------- */

static int worker_alloc(infer_ctx *c, worker *w, rs_err *e)
{
    w->slots = calloc((size_t)c->n_slots, sizeof(float *));
    w->pads = calloc((size_t)c->n_steps + 1, sizeof(float *));
    if (!w->slots || !w->pads)
        return rs_fail(e, "infer: out of memory");
    for (int k = 0; k < c->n_slots; ++k) {
        int rc = infer_cancelled(c, e); /* zeroing a big slot takes a while: stop between them */
        if (rc)
            return rc;
        size_t n;
        if (rs_size_mul(c->slot_floats[k], (size_t)c->tile, &n) ||
            rs_size_add(n, c->slack + 64, &n) || n > RS_MAX_ALLOC / sizeof(float))
            return rs_fail(e, "infer: activation buffer too large");
        if (!(w->slots[k] = infer_alloc_floats(n)))
            return rs_fail(e, "infer: out of memory");
    }
    for (int si = 0; si < c->n_steps; ++si)
        if (c->steps[si].pad_floats &&
            !(w->pads[si] = infer_alloc_floats(c->steps[si].pad_floats + 64)))
            return rs_fail(e, "infer: out of memory");
    if (!(w->cbuf = infer_alloc_floats(c->cbuf_floats + 64)) ||
        !(w->col = infer_alloc_floats(c->col_floats + 64)))
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

/* infer_ctx_new with a callback the compiler asks between nodes; *rc says how it ended. */
static infer_ctx *ctx_new(const rs_model *m, rs_pool *pool, int nthreads, int nofuse, int result_v,
                          rs_progress_fn progress, void *user, int *rc, rs_err *e)
{
    *rc = -1;
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
    c->pool = pool;
    if (!pool) {
        if (!(c->pool = pool_alloc(nthreads, e)))
            goto fail;
        c->own_pool = 1;
    }
    c->nthreads = pool_threads(c->pool);
    c->progress = progress;
    c->user = user;
    c->tile = DEFAULT_TILE;
    const char *tenv = getenv("RANKSCOPE_TILE");
    if (tenv && atoi(tenv) >= 1 && atoi(tenv) <= 4096)
        c->tile = atoi(tenv);
    int crc = infer_compile(c, m, e);
    if (crc) {
        *rc = crc;
        goto fail;
    }
    c->workers = calloc((size_t)c->nthreads, sizeof(worker));
    if (!c->workers) {
        rs_fail(e, "infer: out of memory");
        goto fail;
    }
    for (int t = 0; t < c->nthreads; ++t) {
        c->workers[t].ctx = c;
        c->workers[t].id = t;
        int wrc = worker_alloc(c, &c->workers[t], e);
        if (wrc) {
            *rc = wrc;
            goto fail;
        }
    }
    c->progress = NULL; /* the caller's callback is for this call only */
    c->user = NULL;
    *rc = 0;
    return c;
fail:
    infer_free(c);
    return NULL;
}

infer_ctx *infer_ctx_new(const rs_model *m, rs_pool *pool, int nthreads, int nofuse, int result_v,
                         rs_err *e)
{
    int rc;
    return ctx_new(m, pool, nthreads, nofuse, result_v, NULL, NULL, &rc, e);
}

infer_ctx *infer_create(const rs_model *m, int nthreads, rs_err *e)
{
    return infer_ctx_new(m, NULL, nthreads, 0, -1, e);
}

infer_ctx *infer_create_on(const rs_model *m, rs_pool *pool, rs_err *e)
{
    if (!pool) {
        rs_fail(e, "infer: no thread pool");
        return NULL;
    }
    return infer_ctx_new(m, pool, 0, 0, -1, e);
}

int infer_create_with(const rs_model *m, rs_pool *pool, rs_progress_fn progress, void *user, infer_ctx **out,
                      rs_err *e)
{
    *out = NULL;
    if (!pool)
        return rs_fail(e, "infer: no thread pool");
    int rc;
    *out = ctx_new(m, pool, 0, 0, -1, progress, user, &rc, e);
    return rc;
}

void infer_free(infer_ctx *c)
{
    if (!c)
        return;
    if (c->workers)
        for (int t = 0; t < c->nthreads; ++t)
            worker_release(c, &c->workers[t]);
    free(c->workers);
    if (c->steps)
        for (int i = 0; i < c->n_steps; ++i)
            infer_step_free(&c->steps[i]);
    free(c->steps);
    free(c->slot_floats);
    if (c->own_pool)
        pool_free(c->pool);
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
    return infer_run_job(c, x, NULL, n, out, e);
}

int infer_forward_u8(infer_ctx *c, const uint8_t *x, int n, float *out, rs_err *e)
{
    return infer_run_job(c, NULL, x, n, out, e);
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
    infer_ctx *c = infer_ctx_new(m, NULL, 0, 1, value, e);
    if (!c)
        return -1;
    int rc = infer_run_job(c, x, NULL, n, out, e);
    infer_free(c);
    return rc;
}

const char *infer_isa(const infer_ctx *c)
{
    return kern_isa_name(c->isa);
}

int infer_threads(const infer_ctx *c)
{
    return c->nthreads;
}
