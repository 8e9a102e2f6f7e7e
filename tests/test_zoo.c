/* test_zoo.c — real CIFAR-10 nets and the ops they need.
 *
 *  - The ops added for them (kept BatchNormalization, AveragePool with pads / ceil_mode /
 *    count_include_pad 0 and 1, GlobalAveragePool, Clip, Pad, Sigmoid, Softmax, Concat) built as
 *    small models with the model.h API and run through infer_forward (1 and 2 threads),
 *    infer_forward_naive and infer_forward_blas against textbook loops written here in double
 *    (ONNX operator definitions; no engine code shared).
 *  - The same models written by onnx_save_buffer and read back (the writer's synthesized Clip /
 *    Pad inputs; the reader folding a Pad into a count_include_pad AveragePool) give the same
 *    outputs.
 *  - The four PyTorch exports of tests/gen_zoo.py (tests/data/zoo/): load (BatchNorm folded into
 *    its Conv when it is the Conv's only reader, kept otherwise; Constant nodes as initializers;
 *    x.view(x.size(0), -1)'s Shape/Gather/Unsqueeze/Concat/Reshape as one Flatten; the zero Pad
 *    gone), then logits from every executor and after an ONNX round trip against PyTorch's.
 *  - Training through the new ops (Conv → kept BatchNormalization (frozen affine) → Clip →
 *    AveragePool (ceil_mode, pads) → GlobalAveragePool → Gemm): the training forward's logits
 *    against infer_forward_naive, and the analytic gradients of the conv weight and of the input
 *    against central finite differences of the loss (h = 1e-3 on a float loss: |g − fd| ≤
 *    3e-4 + 3e-2·|fd|, the float rounding of the loss divided by 2h being ~1e-4).
 * Tolerance: max |engine − ref| / max(1, |ref|) ≤ 1e-4 (float32 vs double or vs PyTorch float32;
 * observed ~3e-6).
 */
#include "check.h"
#include "ref_ops.h"
#include "rankscope/infer.h"
#include "rankscope/model.h"
#include "rankscope/onnx.h"
#include "rankscope/train.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    uint64_t r = rng * 2685821657736338717ULL;
    return (float)((double)(r >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

/* ---- model building ------------------------------------------------------------------------- */

static int add_input(rs_model *m, int c, int h, int w)
{
    int v = model_add_value(m, "input", NULL);
    rs_value *x = &m->values[v];
    x->ndim = 4;
    x->dims[0] = -1, x->dims[1] = c, x->dims[2] = h, x->dims[3] = w;
    m->input = v;
    return v;
}

static int add_vec(rs_model *m, const char *base, int n, const float *data)
{
    char name[64];
    snprintf(name, sizeof name, "%s_%d", base, m->n_values);
    int64_t dims[1] = {n};
    return model_add_const(m, name, 1, dims, data, NULL);
}

static int add_node(rs_model *m, rs_op op, int in0, int in1)
{
    char name[64];
    snprintf(name, sizeof name, "%s_%d", model_op_name(op), m->n_nodes);
    int in[2] = {in0, in1};
    int k = model_add_op(m, name, op, in, in1 >= 0 ? 2 : 1, name, NULL);
    m->output = m->nodes[k].out[0];
    return k;
}

/* ---- references (double, straight from the ONNX definitions) -------------------------------- */

/* AveragePool on one image; divisor = taps inside the input, or (count_pad) inside the padded
 * input; windows are clipped to the padded extent (ceil_mode's last window). */
static void ref_avgpool(const double *x, int C, int H, int W, int k, int s, const int pads[4],
                        int count_pad, int Ho, int Wo, double *y)
{
    for (int c = 0; c < C; ++c)
        for (int oy = 0; oy < Ho; ++oy)
            for (int ox = 0; ox < Wo; ++ox) {
                double sum = 0.0;
                int inside = 0, padded = 0;
                for (int i = 0; i < k; ++i)
                    for (int j = 0; j < k; ++j) {
                        int yy = oy * s - pads[0] + i, xx = ox * s - pads[1] + j;
                        if (yy >= H + pads[2] || xx >= W + pads[3])
                            continue;
                        ++padded;
                        if (yy < 0 || xx < 0 || yy >= H || xx >= W)
                            continue;
                        ++inside;
                        sum += x[((size_t)c * H + yy) * W + xx];
                    }
                y[((size_t)c * Ho + oy) * Wo + ox] = sum / (count_pad ? padded : inside);
            }
}

/* Model A: BatchNormalization (kept: it reads the graph input) → Clip(lo, hi) → Pad → AveragePool.
 * Checked against the double-precision chain for every (count_include_pad, ceil_mode). */
static void test_pool_chain(int count_pad, int ceil_mode)
{
    enum { C = 3, H = 7, W = 6, N = 5 };
    const int pad[4] = {1, 2, 0, 1};   /* Pad: top, left, bottom, right */
    const int ppads[4] = {1, 0, 1, 1}; /* AveragePool's own pads */
    const int k = 3, s = 2;
    const float lo = -0.5f, hi = 0.7f;
    float gamma[C], beta[C], mean[C], var[C];
    for (int c = 0; c < C; ++c) {
        gamma[c] = 1.5f * frand();
        beta[c] = 0.3f * frand();
        mean[c] = 0.2f * frand();
        var[c] = 0.5f + 0.4f * frand();
    }
    rs_model *m = model_alloc();
    int x = add_input(m, C, H, W);
    int bn = add_node(m, RS_OP_BATCHNORM, x, -1);
    m->nodes[bn].n_in = 5;
    m->nodes[bn].in[1] = add_vec(m, "gamma", C, gamma);
    m->nodes[bn].in[2] = add_vec(m, "beta", C, beta);
    m->nodes[bn].in[3] = add_vec(m, "mean", C, mean);
    m->nodes[bn].in[4] = add_vec(m, "var", C, var);
    m->nodes[bn].epsilon = 1e-3f;
    int cl = add_node(m, RS_OP_CLIP, m->nodes[bn].out[0], -1);
    m->nodes[cl].clip_min = lo;
    m->nodes[cl].clip_max = hi;
    int pd = add_node(m, RS_OP_PAD, m->nodes[cl].out[0], -1);
    for (int i = 0; i < 4; ++i)
        m->nodes[pd].pads[i] = pad[i];
    int ap = add_node(m, RS_OP_AVGPOOL, m->nodes[pd].out[0], -1);
    rs_node *pn = &m->nodes[ap];
    pn->kernel[0] = pn->kernel[1] = k;
    pn->strides[0] = pn->strides[1] = s;
    for (int i = 0; i < 4; ++i)
        pn->pads[i] = ppads[i];
    pn->count_include_pad = count_pad;
    pn->ceil_mode = ceil_mode;
    rs_err e = {{0}};
    int ok = model_infer_shapes(m, &e) == 0;
    CHECK(ok, "pool chain (cip %d, ceil %d): shapes infer (%s)", count_pad, ceil_mode, e.msg);
    if (!ok) {
        model_free(m);
        return;
    }
    const rs_value *yv = &m->values[m->output];
    const int Hp = H + pad[0] + pad[2], Wp = W + pad[1] + pad[3];
    const int Ho = (int)yv->dims[2], Wo = (int)yv->dims[3];
    /* the expected extent, ONNX formula (PyTorch's ceil rule: last window starts inside) */
    int eh = (Hp + ppads[0] + ppads[2] - k + (ceil_mode ? s - 1 : 0)) / s + 1;
    int ew = (Wp + ppads[1] + ppads[3] - k + (ceil_mode ? s - 1 : 0)) / s + 1;
    if (ceil_mode && (eh - 1) * s >= Hp + ppads[0])
        --eh;
    if (ceil_mode && (ew - 1) * s >= Wp + ppads[1])
        --ew;
    CHECK(Ho == eh && Wo == ew && yv->dims[1] == C, "pool chain: output %dx%d (expected %dx%d)", Ho,
          Wo, eh, ew);
    size_t nin = (size_t)C * H * W, nout = (size_t)C * Ho * Wo;
    float *xin = malloc(N * nin * sizeof(float));
    double *want = malloc(N * nout * sizeof(double));
    double *t = malloc((size_t)C * Hp * Wp * sizeof(double));
    for (size_t i = 0; i < N * nin; ++i)
        xin[i] = 2.0f * frand();
    for (int b = 0; b < N; ++b) {
        for (size_t i = 0; i < (size_t)C * Hp * Wp; ++i)
            t[i] = 0.0;
        for (int c = 0; c < C; ++c)
            for (int yy = 0; yy < H; ++yy)
                for (int xx = 0; xx < W; ++xx) {
                    double v = xin[b * nin + ((size_t)c * H + yy) * W + xx];
                    v = (v - mean[c]) / sqrt((double)var[c] + 1e-3) * gamma[c] + beta[c];
                    v = v < lo ? lo : v > hi ? hi : v;
                    t[((size_t)c * Hp + yy + pad[0]) * Wp + xx + pad[1]] = v;
                }
        ref_avgpool(t, C, Hp, Wp, k, s, ppads, count_pad, Ho, Wo, want + b * nout);
    }
    float *got = malloc(N * nout * sizeof(float));
    for (int threads = 1; threads <= 2; ++threads) {
        infer_ctx *c = infer_create(m, threads, &e);
        ok = c && infer_forward(c, xin, N, got, &e) == 0;
        CHECK(ok && ref_max_rel_err_d(got, want, N * nout) <= TOL,
              "pool chain (cip %d, ceil %d), %d thread(s): err %.2e %s", count_pad, ceil_mode,
              threads, ok ? ref_max_rel_err_d(got, want, N * nout) : -1.0, ok ? "" : e.msg);
        infer_free(c);
    }
    ok = infer_forward_naive(m, xin, N, got, &e) == 0;
    CHECK(ok && ref_max_rel_err_d(got, want, N * nout) <= TOL, "pool chain: naive executor err %.2e %s",
          ok ? ref_max_rel_err_d(got, want, N * nout) : -1.0, ok ? "" : e.msg);
    ok = infer_forward_blas(m, xin, N, got, &e) == 0;
    CHECK(ok && ref_max_rel_err_d(got, want, N * nout) <= TOL, "pool chain: blas executor err %.2e %s",
          ok ? ref_max_rel_err_d(got, want, N * nout) : -1.0, ok ? "" : e.msg);

    /* ONNX round trip: Clip's bounds and Pad's pads become inputs; a Pad before a
     * count_include_pad AveragePool is folded into it on reading. */
    uint8_t *buf = NULL;
    size_t len = 0;
    ok = onnx_save_buffer(m, &buf, &len, &e) == 0;
    rs_model *r = ok ? onnx_load_buffer(buf, len, "pool-chain", &e) : NULL;
    CHECK(r != NULL, "pool chain (cip %d): ONNX round trip loads (%s)", count_pad, e.msg);
    if (r) {
        int pads_left = 0, bns = 0;
        for (int i = 0; i < r->n_nodes; ++i) {
            pads_left += r->nodes[i].op == RS_OP_PAD;
            bns += r->nodes[i].op == RS_OP_BATCHNORM;
        }
        int want_pads = count_pad && !ceil_mode ? 0 : 1;
        CHECK(pads_left == want_pads && bns == 1,
              "round trip: %d Pad node(s) left (want %d: folded only into a count_include_pad "
              "pool without ceil_mode), %d BN", pads_left, want_pads, bns);
        infer_ctx *c = infer_create(r, 1, &e);
        ok = c && infer_forward(c, xin, N, got, &e) == 0;
        CHECK(ok && ref_max_rel_err_d(got, want, N * nout) <= TOL, "round trip: err %.2e %s",
              ok ? ref_max_rel_err_d(got, want, N * nout) : -1.0, ok ? "" : e.msg);
        infer_free(c);
    }
    model_free(r);
    free(buf);
    free(got);
    free(t);
    free(xin);
    free(want);
    model_free(m);
}

/* Model B: GlobalAveragePool → Flatten (a); Sigmoid(a) (b); Concat(a, b) → Softmax. */
static void test_head(void)
{
    enum { C = 4, H = 5, W = 3, N = 7 };
    rs_model *m = model_alloc();
    int x = add_input(m, C, H, W);
    int gp = add_node(m, RS_OP_GLOBALAVGPOOL, x, -1);
    int fl = add_node(m, RS_OP_FLATTEN, m->nodes[gp].out[0], -1);
    int a = m->nodes[fl].out[0];
    int sg = add_node(m, RS_OP_SIGMOID, a, -1);
    int cc = add_node(m, RS_OP_CONCAT, a, m->nodes[sg].out[0]);
    add_node(m, RS_OP_SOFTMAX, m->nodes[cc].out[0], -1);
    rs_err e = {{0}};
    int ok = model_infer_shapes(m, &e) == 0;
    CHECK(ok && m->values[m->output].ndim == 2 && m->values[m->output].dims[1] == 2 * C,
          "head: shapes infer to (N, %d) (%s)", 2 * C, e.msg);
    if (!ok) {
        model_free(m);
        return;
    }
    size_t nin = (size_t)C * H * W, nout = 2 * C;
    float *xin = malloc(N * nin * sizeof(float)), *got = malloc(N * nout * sizeof(float));
    double *want = malloc(N * nout * sizeof(double));
    for (size_t i = 0; i < N * nin; ++i)
        xin[i] = 3.0f * frand();
    for (int b = 0; b < N; ++b) {
        double z[2 * C], mx = -1e300, sum = 0.0;
        for (int c = 0; c < C; ++c) {
            double acc = 0.0;
            for (int k = 0; k < H * W; ++k)
                acc += xin[b * nin + (size_t)c * H * W + k];
            z[c] = acc / (H * W);
            z[C + c] = 1.0 / (1.0 + exp(-z[c]));
        }
        for (int k = 0; k < 2 * C; ++k)
            mx = z[k] > mx ? z[k] : mx;
        for (int k = 0; k < 2 * C; ++k)
            sum += exp(z[k] - mx);
        for (int k = 0; k < 2 * C; ++k)
            want[b * nout + k] = exp(z[k] - mx) / sum;
    }
    for (int threads = 1; threads <= 2; ++threads) {
        infer_ctx *c = infer_create(m, threads, &e);
        ok = c && infer_forward(c, xin, N, got, &e) == 0;
        CHECK(ok && ref_max_rel_err_d(got, want, N * nout) <= TOL, "head, %d thread(s): err %.2e %s",
              threads, ok ? ref_max_rel_err_d(got, want, N * nout) : -1.0, ok ? "" : e.msg);
        infer_free(c);
    }
    ok = infer_forward_naive(m, xin, N, got, &e) == 0;
    CHECK(ok && ref_max_rel_err_d(got, want, N * nout) <= TOL, "head: naive executor err %.2e %s",
          ok ? ref_max_rel_err_d(got, want, N * nout) : -1.0, ok ? "" : e.msg);
    uint8_t *buf = NULL;
    size_t len = 0;
    ok = onnx_save_buffer(m, &buf, &len, &e) == 0;
    rs_model *r = ok ? onnx_load_buffer(buf, len, "head", &e) : NULL;
    CHECK(r != NULL, "head: ONNX round trip loads (%s)", e.msg);
    if (r) {
        ok = infer_forward_naive(r, xin, N, got, &e) == 0;
        CHECK(ok && ref_max_rel_err_d(got, want, N * nout) <= TOL, "head round trip: err %.2e %s",
              ok ? ref_max_rel_err_d(got, want, N * nout) : -1.0, ok ? "" : e.msg);
    }
    model_free(r);
    free(buf);
    free(xin);
    free(got);
    free(want);
    model_free(m);
}

/* ---- the zoo ----------------------------------------------------------------------------------- */

static const char *source_root(void)
{
    const char *r = getenv("RS_SOURCE_ROOT");
    return r && *r ? r : ".";
}

static float *read_f32(const char *file, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/zoo/%s", source_root(), file);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *p = malloc((size_t)bytes + 4);
    size_t got = p ? fread(p, 1, (size_t)bytes, f) : 0;
    fclose(f);
    if (got != (size_t)bytes) {
        free(p);
        return NULL;
    }
    *n = (size_t)bytes / 4; /* the files are little-endian; so is every supported host */
    return p;
}

static int count_op(const rs_model *m, rs_op op)
{
    int k = 0;
    for (int i = 0; i < m->n_nodes; ++i)
        k += m->nodes[i].op == op;
    return k;
}

/* name: the .onnx file's base name; ref: the base name of its *_logits.f32 (NULL: same). */
static void test_zoo_model_ref(const char *name, const char *refname, int want_bn, int want_add,
                               int64_t want_params);

static void test_zoo_model(const char *name, int want_bn, int want_add, int64_t want_params)
{
    test_zoo_model_ref(name, NULL, want_bn, want_add, want_params);
}

static void test_zoo_model_ref(const char *name, const char *refname, int want_bn, int want_add,
                               int64_t want_params)
{
    char path[1024], file[128];
    snprintf(path, sizeof path, "%s/tests/data/zoo/%s.onnx", source_root(), name);
    rs_err e = {{0}};
    rs_model *m = onnx_load(path, &e);
    CHECK(m != NULL, "%s: loads (%s)", name, e.msg);
    if (!m)
        return;
    int transient = count_op(m, RS_OP_SHAPE) + count_op(m, RS_OP_GATHER) +
                    count_op(m, RS_OP_UNSQUEEZE) + count_op(m, RS_OP_CONCAT) +
                    count_op(m, RS_OP_RESHAPE) + count_op(m, RS_OP_PAD);
    if (want_params >= 0) /* the head keeps a real (channel) Concat */
        CHECK(transient == 0, "%s: no Shape/Gather/Unsqueeze/Concat/Reshape/Pad left (%d)", name,
              transient);
    else
        CHECK(count_op(m, RS_OP_CONCAT) == 1 && transient == 1 && count_op(m, RS_OP_SOFTMAX) == 1,
              "%s: only the channel Concat left besides Softmax (%d transient ops)", name, transient);
    CHECK(count_op(m, RS_OP_BATCHNORM) == want_bn && count_op(m, RS_OP_ADD) == want_add,
          "%s: %d BatchNormalization kept (want %d), %d Add (want %d)", name,
          count_op(m, RS_OP_BATCHNORM), want_bn, count_op(m, RS_OP_ADD), want_add);
    int64_t params = 0;
    model_totals(m, &params, NULL);
    if (want_params >= 0)
        CHECK(params == want_params, "%s: %lld params (want %lld)", name, (long long)params,
          (long long)want_params);

    size_t nx = 0, nref = 0;
    float *x = read_f32("zoo_input.f32", &nx);
    snprintf(file, sizeof file, "%s_logits.f32", refname ? refname : name);
    float *ref = read_f32(file, &nref);
    int n = x ? (int)(nx / 3072) : 0;
    CHECK(x && ref && n > 0 && nref == (size_t)n * 10, "%s: %d images and their PyTorch logits",
          name, n);
    if (!x || !ref || n <= 0 || nref != (size_t)n * 10) {
        free(x);
        free(ref);
        model_free(m);
        return;
    }
    float *got = malloc(nref * sizeof(float));
    for (int threads = 1; threads <= 2; ++threads) {
        infer_ctx *c = infer_create(m, threads, &e);
        int ok = c && infer_forward(c, x, n, got, &e) == 0;
        double err = ok ? ref_max_rel_err(got, ref, nref) : -1.0;
        CHECK(ok && err <= TOL, "%s: fast engine (%d thread(s)) vs PyTorch: err %.2e %s", name,
              threads, err, ok ? "" : e.msg);
        infer_free(c);
    }
    int ok = infer_forward_naive(m, x, n, got, &e) == 0;
    CHECK(ok && ref_max_rel_err(got, ref, nref) <= TOL, "%s: naive executor vs PyTorch: err %.2e %s",
          name, ok ? ref_max_rel_err(got, ref, nref) : -1.0, ok ? "" : e.msg);
    ok = infer_forward_blas(m, x, n, got, &e) == 0;
    CHECK(ok && ref_max_rel_err(got, ref, nref) <= TOL, "%s: blas executor vs PyTorch: err %.2e %s",
          name, ok ? ref_max_rel_err(got, ref, nref) : -1.0, ok ? "" : e.msg);

    uint8_t *buf = NULL;
    size_t len = 0;
    ok = onnx_save_buffer(m, &buf, &len, &e) == 0;
    rs_model *r = ok ? onnx_load_buffer(buf, len, name, &e) : NULL;
    CHECK(r && r->n_nodes == m->n_nodes, "%s: ONNX round trip loads with the same %d nodes (%s)",
          name, m->n_nodes, e.msg);
    if (r) {
        infer_ctx *c = infer_create(r, 1, &e);
        ok = c && infer_forward(c, x, n, got, &e) == 0;
        CHECK(ok && ref_max_rel_err(got, ref, nref) <= TOL, "%s: round trip vs PyTorch: err %.2e %s",
              name, ok ? ref_max_rel_err(got, ref, nref) : -1.0, ok ? "" : e.msg);
        infer_free(c);
    }
    model_free(r);
    free(buf);
    free(got);
    free(x);
    free(ref);
    model_free(m);
}


/* ---- training through the issue-6 ops ---------------------------------------------------------- */

static int grad_close(double g, double fd)
{
    return fabs(g - fd) <= 3e-4 + 3e-2 * fabs(fd);
}

static void test_train_grads(void)
{
    enum { C = 2, H = 6, W = 6, M = 3, CLS = 4, N = 3 };
    rs_model *m = model_alloc();
    int x = add_input(m, C, H, W);
    float wconv[M * C * 9], bconv[M], wfc[CLS * M], bfc[CLS], bnv[4][M];
    for (int i = 0; i < M * C * 9; ++i)
        wconv[i] = 0.5f * frand();
    for (int i = 0; i < M; ++i) {
        bconv[i] = 0.1f * frand();
        bnv[0][i] = 1.0f + 0.5f * frand(); /* gamma */
        bnv[1][i] = 0.2f * frand();        /* beta */
        bnv[2][i] = 0.1f * frand();        /* mean */
        bnv[3][i] = 0.8f + 0.3f * frand(); /* var */
    }
    for (int i = 0; i < CLS * M; ++i)
        wfc[i] = frand();
    for (int i = 0; i < CLS; ++i)
        bfc[i] = 0.1f * frand();
    int cv = add_node(m, RS_OP_CONV, x, -1);
    {
        char nm[32];
        snprintf(nm, sizeof nm, "wconv");
        int w = model_add_value(m, nm, NULL);
        rs_value *wv = &m->values[w];
        wv->is_const = 1, wv->ndim = 4;
        wv->dims[0] = M, wv->dims[1] = C, wv->dims[2] = 3, wv->dims[3] = 3;
        wv->f = malloc(sizeof wconv);
        memcpy(wv->f, wconv, sizeof wconv);
        rs_node *n = &m->nodes[cv];
        n->in[1] = w;
        n->in[2] = add_vec(m, "bconv", M, bconv);
        n->n_in = 3;
        n->pads[0] = n->pads[1] = n->pads[2] = n->pads[3] = 1;
    }
    int bn = add_node(m, RS_OP_BATCHNORM, m->nodes[cv].out[0], -1);
    m->nodes[bn].n_in = 5;
    for (int k = 0; k < 4; ++k)
        m->nodes[bn].in[k + 1] = add_vec(m, "bn", M, bnv[k]);
    int cl = add_node(m, RS_OP_CLIP, m->nodes[bn].out[0], -1);
    m->nodes[cl].clip_min = -0.6f;
    m->nodes[cl].clip_max = 0.8f;
    int ap = add_node(m, RS_OP_AVGPOOL, m->nodes[cl].out[0], -1);
    rs_node *pn = &m->nodes[ap];
    pn->kernel[0] = pn->kernel[1] = 3;
    pn->strides[0] = pn->strides[1] = 2;
    pn->pads[0] = pn->pads[1] = 1;
    pn->ceil_mode = 1;
    int gp = add_node(m, RS_OP_GLOBALAVGPOOL, m->nodes[ap].out[0], -1);
    int fl = add_node(m, RS_OP_FLATTEN, m->nodes[gp].out[0], -1);
    int fc = add_node(m, RS_OP_GEMM, m->nodes[fl].out[0], -1);
    {
        int w = model_add_value(m, "wfc", NULL);
        rs_value *wv = &m->values[w];
        wv->is_const = 1, wv->ndim = 2, wv->dims[0] = CLS, wv->dims[1] = M;
        wv->f = malloc(sizeof wfc);
        memcpy(wv->f, wfc, sizeof wfc);
        m->nodes[fc].in[1] = w;
        m->nodes[fc].in[2] = add_vec(m, "bfc", CLS, bfc);
        m->nodes[fc].n_in = 3;
        m->nodes[fc].trans_b = 1;
    }
    rs_err e = {{0}};
    int ok = model_infer_shapes(m, &e) == 0;
    CHECK(ok, "train net: shapes infer (%s)", e.msg);
    if (!ok) {
        model_free(m);
        return;
    }
    float xin[N * C * H * W];
    uint8_t lab[N] = {0, 3, 1};
    for (int i = 0; i < N * C * H * W; ++i)
        xin[i] = 1.5f * frand();
    train_net *t = train_net_create(m, N, 1, NULL, TRAIN_NET_INPUT_GRAD, &e);
    if (t) /* compared with inference: BatchNormalization on its running statistics */
        train_net_set_training(t, 0);
    double loss = 0;
    ok = t && train_net_grad(t, xin, lab, N, NULL, 0, 1, &loss, NULL, &e) == 0;
    CHECK(ok, "train net: compiles and runs forward + backward (%s)", e.msg);
    if (!ok) {
        train_net_free(t);
        model_free(m);
        return;
    }
    float ref[N * CLS];
    ok = infer_forward_naive(m, xin, N, ref, &e) == 0;
    CHECK(ok && ref_max_rel_err(train_net_logits(t), ref, N * CLS) <= TOL,
          "train net: training forward matches inference: err %.2e",
          ok ? ref_max_rel_err(train_net_logits(t), ref, N * CLS) : -1.0);
    int wv = m->nodes[cv].in[1];
    size_t nw = (size_t)M * C * 9;
    float *gw = malloc(nw * sizeof(float)), *gx = malloc(sizeof xin);
    memcpy(gw, train_net_param_grad(t, wv), nw * sizeof(float));
    memcpy(gx, train_net_input_grad(t), sizeof xin);
    const double h = 1e-3;
    int bad = 0, tried = 0;
    double gmax = 0;
    for (size_t k = 0; k < nw; k += 3) {
        float keep = m->values[wv].f[k];
        double lp = 0, lm = 0;
        m->values[wv].f[k] = keep + (float)h;
        train_net_grad(t, xin, lab, N, NULL, 0, 1, &lp, NULL, &e);
        m->values[wv].f[k] = keep - (float)h;
        train_net_grad(t, xin, lab, N, NULL, 0, 1, &lm, NULL, &e);
        m->values[wv].f[k] = keep;
        double fd = (lp - lm) / (2 * h);
        bad += !grad_close(gw[k], fd);
        gmax = fmax(gmax, fabs(fd));
        ++tried;
    }
    CHECK(bad == 0 && gmax > 1e-4, "train net: d loss / d conv weight matches finite differences "
          "(%d of %d off, largest |fd| %.2e)", bad, tried, gmax);
    bad = tried = 0;
    gmax = 0;
    for (int k = 0; k < N * C * H * W; k += 5) {
        float keep = xin[k];
        double lp = 0, lm = 0;
        xin[k] = keep + (float)h;
        train_net_grad(t, xin, lab, N, NULL, 0, 1, &lp, NULL, &e);
        xin[k] = keep - (float)h;
        train_net_grad(t, xin, lab, N, NULL, 0, 1, &lm, NULL, &e);
        xin[k] = keep;
        double fd = (lp - lm) / (2 * h);
        bad += !grad_close(gx[k], fd);
        gmax = fmax(gmax, fabs(fd));
        ++tried;
    }
    CHECK(bad == 0 && gmax > 1e-4, "train net: d loss / d input matches finite differences "
          "(%d of %d off, largest |fd| %.2e)", bad, tried, gmax);
    free(gw);
    free(gx);
    train_net_free(t);
    model_free(m);
}

int main(void)
{
    test_train_grads();
    for (int cip = 0; cip <= 1; ++cip)
        for (int ceil = 0; ceil <= 1; ++ceil)
            test_pool_chain(cip, ceil);
    test_head();
    /* Expected params from gen_zoo.py's architectures: PyTorch's count (tests/data/zoo/ops.txt)
     * loses each folded BatchNorm's γ and β (2·C) and gains the Conv bias it becomes (C), so
     * −C per folded BN; a kept BN adds its running mean and variance (+2·C). */
    test_zoo_model("vgg_bn", 0, 0, 138554 - (16 + 16 + 32 + 32 + 64 + 64));
    test_zoo_model("vgg_bn_keep", 0, 0, 138554 - (16 + 16 + 32 + 32 + 64 + 64));
    test_zoo_model("resnet20", 1, 9, 68850 - (8 + 6 * 8 + 6 * 16 + 16 + 6 * 32 + 32) + 2 * 32);
    const int64_t mobilenet_params =
        22794 - (16 + 16 + 32 + 32 + 48 + 48 + 48 + 48 + 64 + 64 + 64 + 64 + 96);
    test_zoo_model("mobilenet", 0, 0, mobilenet_params);
    /* other opsets (tests/gen_zoo_opsets.py): Clip / Pad / Unsqueeze forms of opsets 11 and 17;
     * the head net's Dropout, Sigmoid, channel Concat, ceil_mode AveragePool, Softmax */
    test_zoo_model_ref("mobilenet_opset11", "mobilenet", 0, 0, mobilenet_params);
    test_zoo_model_ref("mobilenet_opset17", "mobilenet", 0, 0, mobilenet_params);
    test_zoo_model_ref("head_opset11", "head", 0, 0, -1);
    test_zoo_model_ref("head_opset13", "head", 0, 0, -1);
    test_zoo_model_ref("head_opset17", "head", 0, 0, -1);
    /* tests/gen_zoo_acts.py: LeakyRelu, HardSwish, PRelu, HardSigmoid through the registry */
    test_zoo_model("acts", 0, 0, 906);
    return check_done();
}
