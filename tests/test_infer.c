/* test_infer.c — the inference engine against independent references.
 *
 *  - kern_gemm on every ISA the CPU has, against a double-precision triple loop;
 *  - every op (Conv with padding / stride / dilation / groups / depthwise / 1×1 / kh≠kw / no
 *    bias, Gemm, MatMul + Add, Relu, MaxPool incl. ceil_mode, Flatten, Add of two branches)
 *    built as a model with the model.h API and run through infer_forward with 1 and 2 threads
 *    and odd batch sizes, against tests/ref_ops.c;
 *  - kern_conv_cv on each ISA that has it against a double loop; Conv a second time with every
 *    eligible one on that channel-vector kernel;
 *  - epilogues fused into a conv: residual Add + Relu, PRelu, LeakyRelu, HardSigmoid, HardSwish;
 *  - factorised chains (1×1 → kh×1 depthwise → 1×kw depthwise → 1×1);
 *  - infer_capture, infer_forward_naive and infer_forward_blas against the same references;
 *  - whole nets from ONNX files against PyTorch's logits (tests/gen_models.py).
 * Tolerance: max |engine − ref| / max(1, |ref|) ≤ 1e-4 (float32 sums of ≤ 400 products of O(1)
 * terms, reference in double).
 */
#include "check.h"
#include "ref_ops.h"
#include "rankscope/infer.h"
#include "rankscope/kernels.h"
#include "rankscope/model.h"
#include "rankscope/onnx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static float frand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    uint64_t r = rng * 2685821657736338717ULL;
    return (float)((double)(r >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static int irand(int lo, int hi) /* inclusive */
{
    return lo + (int)((frand() * 0.5f + 0.5f) * (float)(hi - lo + 1) * 0.9999f);
}

static float *rand_buf(size_t n, float scale)
{
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; ++i)
        p[i] = scale * frand();
    return p;
}

/* ---- model building ----------------------------------------------------------------------- */

static int add_input(rs_model *m, int ndim, const int64_t *dims)
{
    int v = model_add_value(m, "input", NULL);
    m->values[v].ndim = ndim;
    m->values[v].dims[0] = -1;
    for (int i = 1; i < ndim; ++i)
        m->values[v].dims[i] = dims[i - 1];
    m->input = v;
    return v;
}

static int add_const(rs_model *m, const char *base, int ndim, const int64_t *dims,
                     const float *data)
{
    char name[64];
    snprintf(name, sizeof name, "%s_%d", base, m->n_values);
    return model_add_const(m, name, ndim, dims, data, NULL);
}

/* Adds a node reading in0, in1, in2 (-1 = absent) and a fresh output value; returns the node
 * index (the output is m->nodes[idx].out[0]). */
static int add_node(rs_model *m, rs_op op, int in0, int in1, int in2)
{
    char name[64];
    snprintf(name, sizeof name, "%s_%d", model_op_name(op), m->n_nodes);
    int in[3] = {in0, in1, in2};
    int k = model_add_op(m, name, op, in, in2 >= 0 ? 3 : in1 >= 0 ? 2 : 1, name, NULL);
    m->output = m->nodes[k].out[0];
    return k;
}

static int out_of(const rs_model *m, int node)
{
    return m->nodes[node].out[0];
}

/* Runs the fast path on every ISA and 1/2 threads against `want`; one CHECK per combination. */
static void check_model(rs_model *m, const float *x, int n, const float *want, const char *what)
{
    rs_err e = {{0}};
    size_t nout = 0;
    const char *isas[] = {"scalar", "avx2", "avx512"};
    for (int isa = 0; isa < 3; ++isa) {
        if (!kern_supported((kern_isa)isa))
            continue;
        setenv("RANKSCOPE_ISA", isas[isa], 1);
        for (int threads = 1; threads <= 2; ++threads) {
            infer_ctx *c = infer_create(m, threads, &e);
            if (!c) {
                CHECK(0, "%s: infer_create [%s, %d threads]: %s", what, isas[isa], threads, e.msg);
                continue;
            }
            nout = (size_t)n * infer_out_features(c);
            float *got = malloc(nout * sizeof(float) + 4);
            int rc = infer_forward(c, x, n, got, &e);
            double err = rc ? 1e9 : ref_max_rel_err(got, want, nout);
            CHECK(err <= TOL, "%s [%s, %d thread%s, n=%d]: max rel err %.2g", what,
                  infer_isa(c), threads, threads > 1 ? "s" : "", n, err);
            free(got);
            infer_free(c);
        }
    }
    unsetenv("RANKSCOPE_ISA");
}

/* ---- kernel ------------------------------------------------------------------------------- */

static void test_kern_gemm(void)
{
    for (int isa = 0; isa < 3; ++isa) {
        if (!kern_supported((kern_isa)isa))
            continue;
        int vl = kern_vl((kern_isa)isa);
        double worst = 0.0;
        for (int trial = 0; trial < 20; ++trial) {
            int M = irand(1, 20), N = vl * irand(1, 9), K = irand(1, 90);
            int ldb = N + vl * irand(0, 2), lda = K + irand(0, 3), ldc = N + irand(0, 5);
            int relu = trial & 1, use_row = trial & 2, use_col = trial & 4, clamp = trial & 8;
            float *a = rand_buf((size_t)M * lda, 1.0f), *b = rand_buf((size_t)K * ldb, 1.0f);
            float *br = rand_buf((size_t)M, 1.0f), *bc = rand_buf((size_t)N, 1.0f);
            float *c = calloc((size_t)M * ldc, sizeof(float));
            int *boff = malloc((size_t)K * sizeof(int));
            for (int k = 0; k < K; ++k) /* rows in a scrambled order, like conv offsets */
                boff[k] = ((k * 7) % K) * ldb;
            if (clamp) /* ReLU6-like bounds inside the value range */
                kern_gemm_clamp((kern_isa)isa, M, N, K, a, lda, b, boff, c, ldc, use_row ? br : NULL,
                                use_col ? bc : NULL, -0.5f, 0.7f);
            else
                kern_gemm((kern_isa)isa, M, N, K, a, lda, b, boff, c, ldc, use_row ? br : NULL,
                          use_col ? bc : NULL, relu);
            for (int i = 0; i < M; ++i)
                for (int j = 0; j < N; ++j) {
                    double acc = 0.0;
                    for (int k = 0; k < K; ++k)
                        acc += (double)a[(size_t)i * lda + k] * b[boff[k] + j];
                    acc += (use_row ? br[i] : 0.0) + (use_col ? bc[j] : 0.0);
                    if (clamp)
                        acc = acc < -0.5 ? -0.5 : acc > 0.7 ? 0.7 : acc;
                    else if (relu && acc < 0)
                        acc = 0;
                    double d = fabs(c[(size_t)i * ldc + j] - acc) / fmax(1.0, fabs(acc));
                    if (!(d <= worst))
                        worst = d;
                }
            free(a), free(b), free(br), free(bc), free(c), free(boff);
        }
        CHECK(worst <= TOL, "kern_gemm %s: 20 random shapes (ReLU, clamp, biases), max rel err %.2g",
              kern_isa_name((kern_isa)isa), worst);
    }
}

/* kern_dw3x3 on every ISA against ref_conv2d (group = C), random geometry: sizes 1..40 (vector
 * tails), strides 1 and 2, pads 0..3 on each side (bottom / right through Ho, Wo), ReLU6 clamps;
 * the scratch is reused across calls (its zero border must survive), nothing is written past the
 * output, and a NaN input stays NaN under the clamp. */
static void test_kern_dw(void)
{
    for (int isa = 0; isa < 3; ++isa) {
        if (!kern_supported((kern_isa)isa))
            continue;
        double worst = 0.0;
        int overrun = 0, nan_ok = 1;
        for (int trial = 0; trial < 40; ++trial) {
            int C = irand(1, 5), H = irand(1, 40), W = irand(1, 40), s = irand(1, 2);
            int pads[4] = {irand(0, 3), irand(0, 3), irand(0, 3), irand(0, 3)};
            int Ho = ref_out_size(H, 3, s, 1, pads[0], pads[2], 0), Wo = ref_out_size(W, 3, s, 1, pads[1], pads[3], 0);
            if (Ho < 1 || Wo < 1)
                continue;
            size_t nin = (size_t)C * H * W, nout = (size_t)C * Ho * Wo;
            float *w = rand_buf((size_t)9 * C, 0.5f), *bias = rand_buf((size_t)C, 0.5f);
            float *scratch = calloc(kern_dw3x3_scratch(Ho, Wo, s), sizeof(float));
            float *got = malloc((nout + 16) * sizeof(float)), *want = malloc(nout * sizeof(float));
            float lo = trial % 3 == 0 ? -INFINITY : 0.0f, hi = trial % 3 == 2 ? 0.6f : INFINITY;
            for (int call = 0; call < 2; ++call) { /* the second call reuses the scratch */
                float *x = rand_buf(nin, 1.0f);
                for (int k = 0; k < 16; ++k)
                    got[nout + k] = 12345.0f;
                kern_dw3x3((kern_isa)isa, C, H, W, x, w, trial & 8 ? NULL : bias, s, pads[0], pads[1], Ho, Wo, lo, hi,
                           scratch, got);
                ref_conv2d(x, 1, C, H, W, w, trial & 8 ? NULL : bias, C, 3, 3, s, s, 1, 1, pads, C, want, Ho, Wo);
                for (size_t k = 0; k < nout; ++k)
                    want[k] = want[k] < lo ? lo : want[k] > hi ? hi : want[k];
                double err = ref_max_rel_err(got, want, nout);
                if (!(err <= worst))
                    worst = err;
                for (int k = 0; k < 16; ++k)
                    overrun |= got[nout + k] != 12345.0f;
                free(x);
            }
            if (trial == 1) { /* a NaN pixel: its neighbourhood is NaN, clamped or not */
                float *x = rand_buf(nin, 1.0f);
                x[0] = NAN;
                kern_dw3x3((kern_isa)isa, C, H, W, x, w, bias, s, pads[0], pads[1], Ho, Wo, 0.0f, 6.0f, scratch, got);
                int y0 = (pads[0] + s - 1) / s, x0 = (pads[1] + s - 1) / s; /* first output seeing x[0] at tap > 0 */
                if (y0 < Ho && x0 < Wo && pads[0] - y0 * s <= 2 && pads[1] - x0 * s <= 2 && pads[0] - y0 * s >= 0 &&
                    pads[1] - x0 * s >= 0)
                    nan_ok = isnan(got[(size_t)y0 * Wo + x0]);
                free(x);
            }
            free(w), free(bias), free(scratch), free(got), free(want);
        }
        CHECK(worst <= TOL, "kern_dw3x3 %s: 40 random geometries (strides 1/2, pads 0..3, ReLU6), max rel err %.2g",
              kern_isa_name((kern_isa)isa), worst);
        CHECK(!overrun, "kern_dw3x3 %s: nothing written past the output", kern_isa_name((kern_isa)isa));
        CHECK(nan_ok, "kern_dw3x3 %s: a NaN input stays NaN through the ReLU6 clamp", kern_isa_name((kern_isa)isa));
    }
}

/* kern_conv_cv on every ISA that has it (kern_conv_cv_supported), against a double-precision
 * loop: channel counts around both vector widths and their tiles (1..70), pixel counts with ragged
 * tiles, a shifted B grid (boff, coff as a padded plane), output rows longer than the pixels
 * (ldo), bias or none, the three epilogues. Nothing may be written outside the M × npix outputs. */
static void test_kern_cv(void)
{
    static const int Ms[] = {1, 5, 8, 9, 16, 17, 24, 40, 48, 64, 70};
    int tested = 0;
    for (int isa = 0; isa < 3; ++isa) {
        if (!kern_supported((kern_isa)isa) || !kern_conv_cv_supported((kern_isa)isa))
            continue;
        ++tested;
        double worst = 0.0;
        int stray = 0;
        for (int trial = 0; trial < 44; ++trial) {
            int M = Ms[trial % 11], npix = irand(1, 30), K = irand(1, 40), ldw = (M + 15) / 16 * 16;
            int padded = (npix + 23) / 24 * 24, rs = npix + 3, ldo = npix + irand(0, 5), act = trial % 3;
            float lo = -0.2f, hi = 0.3f;
            float *wt = calloc((size_t)K * ldw, sizeof(float)), *bias = calloc((size_t)ldw, sizeof(float));
            for (int k = 0; k < K; ++k)
                for (int m = 0; m < M; ++m)
                    wt[(size_t)k * ldw + m] = frand();
            for (int m = 0; m < M; ++m)
                bias[m] = frand();
            float *b = rand_buf((size_t)(K + 1) * rs, 1.0f);
            int *boff = malloc((size_t)K * sizeof(int)), *coff = malloc((size_t)padded * sizeof(int));
            int *opos = malloc((size_t)padded * sizeof(int));
            for (int k = 0; k < K; ++k)
                boff[k] = k * rs + (k % 3); /* a shifted view, as an implicit im2col tap */
            for (int j = 0; j < padded; ++j) {
                int q = j < npix ? j : npix - 1;
                coff[j] = q, opos[j] = q;
            }
            size_t nout = (size_t)M * ldo;
            float *out = malloc((nout + 16) * sizeof(float));
            for (size_t k = 0; k < nout + 16; ++k)
                out[k] = 12345.0f;
            const float *bp = trial & 4 ? NULL : bias;
            kern_conv_cv((kern_isa)isa, M, npix, K, wt, ldw, b, boff, coff, opos, out, ldo, bp, act, lo, hi);
            for (int m = 0; m < M; ++m)
                for (int j = 0; j < ldo; ++j) {
                    float got = out[(size_t)m * ldo + j];
                    if (j >= npix) {
                        stray |= got != 12345.0f;
                        continue;
                    }
                    double acc = bp ? bp[m] : 0.0;
                    for (int k = 0; k < K; ++k)
                        acc += (double)wt[(size_t)k * ldw + m] * b[boff[k] + coff[j]];
                    if (act == 1)
                        acc = acc > 0 ? acc : 0;
                    else if (act == 2)
                        acc = acc < lo ? lo : acc > hi ? hi : acc;
                    double err = fabs(got - acc) / (fabs(acc) > 1 ? fabs(acc) : 1);
                    if (!(err <= worst))
                        worst = err;
                }
            for (int k = 0; k < 16; ++k)
                stray |= out[nout + k] != 12345.0f;
            free(wt), free(bias), free(b), free(boff), free(coff), free(opos), free(out);
        }
        CHECK(worst <= TOL, "kern_conv_cv %s: 44 random shapes (M 1..70, 1..30 pixels, K 1..40, 3 epilogues), max rel "
              "err %.2g", kern_isa_name((kern_isa)isa), worst);
        CHECK(!stray, "kern_conv_cv %s: nothing written outside the outputs", kern_isa_name((kern_isa)isa));
    }
    CHECK(tested > 0 || !kern_supported(KERN_AVX2), "kern_conv_cv runs on this CPU's vector ISA (%d tested)", tested);
}

/* ---- Conv (+ Relu + MaxPool fusion) ------------------------------------------------------- */

typedef struct conv_case {
    int C, H, W, M, kh, kw, sh, sw, dh, dw, pads[4], group, bias;
    int relu, pool; /* append Relu / MaxPool 2×2 s2 (exercises the fused paths) */
    const char *what;
} conv_case;

static void run_conv_case(const conv_case *cc, int n)
{
    rs_model *m = model_alloc();
    int64_t in_dims[3] = {cc->C, cc->H, cc->W};
    int x = add_input(m, 4, in_dims);
    int cg = cc->C / cc->group;
    size_t wn = (size_t)cc->M * cg * cc->kh * cc->kw;
    float *w = rand_buf(wn, 1.0f / sqrtf((float)(cg * cc->kh * cc->kw)));
    float *bias = rand_buf((size_t)cc->M, 0.5f);
    int64_t wd[4] = {cc->M, cg, cc->kh, cc->kw}, bd[1] = {cc->M};
    int wv = add_const(m, "w", 4, wd, w);
    int bv = cc->bias ? add_const(m, "b", 1, bd, bias) : -1;
    int k = add_node(m, RS_OP_CONV, x, wv, bv);
    rs_node *nd = &m->nodes[k];
    nd->strides[0] = cc->sh, nd->strides[1] = cc->sw;
    nd->dilations[0] = cc->dh, nd->dilations[1] = cc->dw;
    for (int i = 0; i < 4; ++i)
        nd->pads[i] = cc->pads[i];
    nd->group = cc->group;
    if (cc->relu)
        add_node(m, RS_OP_RELU, out_of(m, k), -1, -1);
    int pk = -1;
    if (cc->pool) {
        pk = add_node(m, RS_OP_MAXPOOL, m->output, -1, -1);
        m->nodes[pk].kernel[0] = m->nodes[pk].kernel[1] = 2;
        m->nodes[pk].strides[0] = m->nodes[pk].strides[1] = 2;
    }
    rs_err e = {{0}};
    if (!CHECK(model_infer_shapes(m, &e) == 0, "%s: shapes (%s)", cc->what, e.msg)) {
        model_free(m);
        free(w), free(bias);
        return;
    }
    int Ho = ref_out_size(cc->H, cc->kh, cc->sh, cc->dh, cc->pads[0], cc->pads[2], 0);
    int Wo = ref_out_size(cc->W, cc->kw, cc->sw, cc->dw, cc->pads[1], cc->pads[3], 0);
    const rs_value *yv = &m->values[out_of(m, k)];
    CHECK(yv->dims[2] == Ho && yv->dims[3] == Wo, "%s: conv output %lldx%lld, expected %dx%d",
          cc->what, (long long)yv->dims[2], (long long)yv->dims[3], Ho, Wo);

    size_t nx = (size_t)n * cc->C * cc->H * cc->W, ny = (size_t)n * cc->M * Ho * Wo;
    float *xin = rand_buf(nx, 1.0f);
    float *want = malloc(ny * sizeof(float));
    ref_conv2d(xin, n, cc->C, cc->H, cc->W, w, cc->bias ? bias : NULL, cc->M, cc->kh, cc->kw,
               cc->sh, cc->sw, cc->dh, cc->dw, cc->pads, cc->group, want, Ho, Wo);
    if (cc->relu)
        ref_relu(want, (long)ny);
    if (cc->pool) {
        int zero[4] = {0, 0, 0, 0};
        int Hq = ref_out_size(Ho, 2, 2, 1, 0, 0, 0), Wq = ref_out_size(Wo, 2, 2, 1, 0, 0, 0);
        float *pooled = malloc((size_t)n * cc->M * Hq * Wq * sizeof(float));
        ref_maxpool(want, n, cc->M, Ho, Wo, 2, 2, 2, 2, 1, 1, zero, pooled, Hq, Wq);
        free(want);
        want = pooled;
    }
    char what[160];
    snprintf(what, sizeof what, "conv %s", cc->what);
    check_model(m, xin, n, want, what);
    free(xin), free(want), free(w), free(bias);
    model_free(m);
}

static void test_conv(void)
{
    static const conv_case cases[] = {
        {3, 32, 32, 6, 5, 5, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, 1, "LeNet conv1 3→6 5×5 +relu+pool"},
        {6, 14, 14, 16, 5, 5, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 1, 1, "LeNet conv2 6→16 5×5 +relu+pool"},
        {3, 11, 13, 7, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, 1, 0, 0, "pad 1 3×3"},
        {4, 12, 9, 5, 3, 2, 1, 1, 1, 1, {2, 0, 1, 1}, 1, 0, 0, 0, "asymmetric pads, kh≠kw, no bias"},
        {3, 15, 16, 8, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 1, 1, 1, 0, "stride 2 pad 1 +relu"},
        {2, 17, 15, 4, 4, 3, 2, 3, 1, 1, {0, 0, 0, 0}, 1, 1, 0, 0, "strides 2×3"},
        {3, 16, 16, 5, 3, 3, 1, 1, 2, 2, {2, 2, 2, 2}, 1, 1, 0, 0, "dilation 2 pad 2"},
        {6, 16, 16, 12, 3, 3, 2, 2, 2, 2, {2, 2, 2, 2}, 3, 1, 1, 0, "groups 3 stride 2 dil 2"},
        {6, 10, 12, 6, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 2, 1, 0, 0, "groups 2"},
        {8, 12, 12, 8, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 8, 1, 0, 0, "depthwise 3×3"},
        {8, 16, 16, 8, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 8, 1, 1, 0, "depthwise 3×3 stride 2 +relu"},
        {5, 15, 13, 5, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 5, 0, 0, 0, "depthwise 3×3 stride 2 odd sizes"},
        {4, 9, 37, 4, 3, 3, 1, 1, 1, 1, {0, 1, 2, 0}, 4, 1, 1, 0, "depthwise 3×3 asymmetric pads, wide rows"},
        {3, 11, 10, 3, 3, 3, 2, 2, 1, 1, {0, 0, 0, 0}, 3, 1, 0, 0, "depthwise 3×3 stride 2 unpadded"},
        {6, 7, 7, 6, 3, 3, 1, 1, 1, 1, {2, 2, 2, 2}, 6, 1, 1, 0, "depthwise 3×3 pad 2"},
        {2, 1, 1, 2, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 2, 1, 0, 0, "depthwise 3×3 on 1×1"},
        {4, 12, 12, 4, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 4, 1, 1, 1, "depthwise 3×3 +relu+pool (GEMM path)"},
        {4, 12, 12, 4, 3, 3, 2, 1, 1, 1, {1, 1, 1, 1}, 4, 1, 0, 0, "depthwise 3×3 strides 2×1 (GEMM path)"},
        {4, 12, 12, 4, 3, 3, 1, 1, 2, 2, {2, 2, 2, 2}, 4, 1, 0, 0, "depthwise 3×3 dilation 2 (GEMM path)"},
        {5, 14, 14, 10, 3, 3, 1, 1, 1, 1, {0, 0, 0, 0}, 5, 0, 0, 0, "depthwise ×2 multiplier"},
        {6, 28, 28, 6, 5, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 6, 1, 0, 0, "depthwise 5×1"},
        {6, 24, 28, 6, 1, 5, 1, 1, 1, 1, {0, 0, 0, 0}, 6, 1, 1, 1, "depthwise 1×5 +relu+pool"},
        {16, 10, 10, 7, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 0, 0, "1×1 16→7"},
        {3, 8, 8, 40, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 0, 1, 0, "1×1 3→40 no bias +relu"},
        {5, 9, 9, 3, 1, 1, 2, 2, 1, 1, {0, 0, 0, 0}, 1, 1, 0, 0, "1×1 stride 2"},
        {3, 32, 32, 4, 4, 4, 4, 4, 1, 1, {0, 0, 0, 0}, 1, 0, 0, 0, "patchify 4×4 s4 no bias"},
        {1, 7, 5, 3, 7, 5, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 0, 0, "kernel = whole image"},
        /* wide enough for the channel-vector kernel (K >= 256, small maps): 4, 3 and 1 channel
         * vectors with a partial last one, fused ReLU / pool, strided */
        {32, 8, 8, 64, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, 1, 1, 0, "3×3 32→64 on 8×8 +relu"},
        {64, 4, 4, 40, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, 1, 0, 0, "3×3 64→40 on 4×4"},
        {48, 6, 6, 72, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, 0, 1, 1, "3×3 48→72 on 6×6 +relu+pool"},
        {32, 9, 9, 20, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 1, 1, 0, 0, "3×3 s2 32→20 on 9×9"},
        {40, 5, 7, 17, 3, 3, 1, 1, 1, 1, {0, 1, 2, 1}, 1, 1, 1, 0, "3×3 40→17 asymmetric pads +relu"},
    };
    static const int batches[] = {1, 3, 17};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; ++b)
            run_conv_case(&cases[i], batches[b]);
    /* Random geometry. */
    for (int t = 0; t < 12; ++t) {
        conv_case cc;
        memset(&cc, 0, sizeof cc);
        cc.group = irand(1, 3);
        cc.C = cc.group * irand(1, 4);
        cc.M = cc.group * irand(1, 7);
        cc.kh = irand(1, 5), cc.kw = irand(1, 5);
        cc.sh = irand(1, 2), cc.sw = irand(1, 2);
        cc.dh = irand(1, 2), cc.dw = irand(1, 2);
        for (int p = 0; p < 4; ++p)
            cc.pads[p] = irand(0, 2);
        cc.H = cc.dh * (cc.kh - 1) + irand(1, 14);
        cc.W = cc.dw * (cc.kw - 1) + irand(1, 14);
        cc.bias = t & 1;
        cc.relu = (t >> 1) & 1;
        char what[128];
        snprintf(what, sizeof what, "random #%d %d→%d g%d %dx%d s%d,%d d%d,%d on %dx%d", t,
                 cc.C, cc.M, cc.group, cc.kh, cc.kw, cc.sh, cc.sw, cc.dh, cc.dw, cc.H, cc.W);
        cc.what = what;
        run_conv_case(&cc, irand(1, 9) | 1);
    }
}

/* ---- MaxPool alone ------------------------------------------------------------------------ */

static void test_maxpool(void)
{
    struct {
        int C, H, W, kh, kw, sh, sw, pads[4], ceil;
        const char *what;
    } cases[] = {
        {3, 8, 8, 2, 2, 2, 2, {0, 0, 0, 0}, 0, "2×2 s2"},
        {2, 9, 7, 3, 3, 2, 2, {1, 1, 1, 1}, 0, "3×3 s2 pad 1"},
        {4, 9, 9, 2, 2, 2, 2, {0, 0, 0, 0}, 1, "2×2 s2 ceil_mode odd input"},
        {2, 10, 11, 3, 2, 1, 1, {0, 1, 0, 0}, 0, "3×2 s1 left pad"},
        {2, 7, 7, 3, 3, 3, 3, {1, 1, 1, 1}, 1, "3×3 s3 pad 1 ceil"},
        {16, 32, 32, 3, 3, 2, 2, {1, 1, 1, 1}, 0, "3×3 s2 pad 1 on 32×32 (torchvision stem)"},
        {3, 12, 13, 3, 3, 1, 1, {1, 1, 1, 1}, 0, "3×3 s1 pad 1"},
        {3, 11, 11, 2, 2, 2, 2, {1, 1, 0, 0}, 1, "2×2 s2 top/left pad ceil"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        rs_model *m = model_alloc();
        int64_t in_dims[3] = {cases[i].C, cases[i].H, cases[i].W};
        int x = add_input(m, 4, in_dims);
        /* a relu in front keeps the pool a separate step (not fused into a conv) */
        int r = add_node(m, RS_OP_RELU, x, -1, -1);
        int k = add_node(m, RS_OP_MAXPOOL, out_of(m, r), -1, -1);
        rs_node *nd = &m->nodes[k];
        nd->kernel[0] = cases[i].kh, nd->kernel[1] = cases[i].kw;
        nd->strides[0] = cases[i].sh, nd->strides[1] = cases[i].sw;
        for (int p = 0; p < 4; ++p)
            nd->pads[p] = cases[i].pads[p];
        nd->ceil_mode = cases[i].ceil;
        rs_err e = {{0}};
        if (!CHECK(model_infer_shapes(m, &e) == 0, "maxpool %s: shapes (%s)", cases[i].what,
                   e.msg)) {
            model_free(m);
            continue;
        }
        int Ho = ref_out_size(cases[i].H, cases[i].kh, cases[i].sh, 1, cases[i].pads[0],
                              cases[i].pads[2], cases[i].ceil);
        int Wo = ref_out_size(cases[i].W, cases[i].kw, cases[i].sw, 1, cases[i].pads[1],
                              cases[i].pads[3], cases[i].ceil);
        const rs_value *yv = &m->values[m->output];
        int shape_ok = CHECK(yv->dims[2] == Ho && yv->dims[3] == Wo,
                             "maxpool %s: output %lldx%lld, PyTorch/ONNX rule gives %dx%d",
                             cases[i].what, (long long)yv->dims[2], (long long)yv->dims[3], Ho,
                             Wo);
        if (shape_ok) {
            int n = 5;
            size_t nx = (size_t)n * cases[i].C * cases[i].H * cases[i].W;
            float *xin = rand_buf(nx, 1.0f), *xr = malloc(nx * sizeof(float));
            memcpy(xr, xin, nx * sizeof(float));
            ref_relu(xr, (long)nx);
            float *want = malloc((size_t)n * cases[i].C * Ho * Wo * sizeof(float));
            ref_maxpool(xr, n, cases[i].C, cases[i].H, cases[i].W, cases[i].kh, cases[i].kw,
                        cases[i].sh, cases[i].sw, 1, 1, cases[i].pads, want, Ho, Wo);
            char what[96];
            snprintf(what, sizeof what, "relu+maxpool %s", cases[i].what);
            check_model(m, xin, n, want, what);
            free(xin), free(xr), free(want);
        }
        model_free(m);
    }
}

/* ---- Gemm / MatMul ------------------------------------------------------------------------ */

static void test_dense(void)
{
    struct {
        int K, N, trans_b, cn, matmul_add, relu;
        float alpha, beta;
        const char *what;
    } cases[] = {
        {400, 120, 1, 120, 0, 1, 1.0f, 1.0f, "Gemm 400→120 transB +relu (fc1)"},
        {84, 10, 1, 10, 0, 0, 1.0f, 1.0f, "Gemm 84→10 transB (fc3)"},
        {37, 19, 0, 0, 0, 0, 0.5f, 1.0f, "Gemm no C, alpha 0.5, transB 0"},
        {20, 33, 1, 1, 0, 1, 1.5f, -2.0f, "Gemm scalar C, beta -2"},
        {50, 24, 0, 0, 0, 0, 1.0f, 1.0f, "MatMul no bias"},
        {64, 10, 0, 10, 1, 0, 1.0f, 1.0f, "MatMul + Add bias"},
        {17, 130, 0, 130, 1, 1, 1.0f, 1.0f, "MatMul + Add + Relu, N=130"},
    };
    static const int batches[] = {1, 3, 17, 40};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        int K = cases[i].K, N = cases[i].N;
        float *B = rand_buf((size_t)K * N, 1.0f / sqrtf((float)K));
        float *cvec = rand_buf((size_t)N, 1.0f);
        rs_model *m = model_alloc();
        int64_t in_dims[1] = {K};
        int x = add_input(m, 2, in_dims);
        int64_t bd[2] = {cases[i].trans_b ? N : K, cases[i].trans_b ? K : N};
        int bv = add_const(m, "B", 2, bd, B);
        int64_t cd[1] = {cases[i].cn};
        int is_mm = strncmp(cases[i].what, "MatMul", 6) == 0;
        int cv = cases[i].cn ? add_const(m, "C", 1, cd, cvec) : -1;
        int k = add_node(m, is_mm ? RS_OP_MATMUL : RS_OP_GEMM, x, bv, is_mm ? -1 : cv);
        m->nodes[k].trans_b = cases[i].trans_b;
        m->nodes[k].alpha = cases[i].alpha;
        m->nodes[k].beta = cases[i].beta;
        if (is_mm && cases[i].matmul_add)
            add_node(m, RS_OP_ADD, out_of(m, k), cv, -1);
        if (cases[i].relu)
            add_node(m, RS_OP_RELU, m->output, -1, -1);
        rs_err e = {{0}};
        if (CHECK(model_infer_shapes(m, &e) == 0, "%s: shapes (%s)", cases[i].what, e.msg)) {
            for (size_t b = 0; b < sizeof batches / sizeof batches[0]; ++b) {
                int n = batches[b];
                float *xin = rand_buf((size_t)n * K, 1.0f);
                float *want = malloc((size_t)n * N * sizeof(float));
                ref_gemm(xin, n, K, B, N, cases[i].trans_b, cases[i].alpha, cases[i].beta, cvec,
                         cases[i].cn, want);
                if (cases[i].relu)
                    ref_relu(want, (long)n * N);
                check_model(m, xin, n, want, cases[i].what);
                free(xin), free(want);
            }
        }
        model_free(m);
        free(B), free(cvec);
    }
}

/* ---- chains, DAGs, capture ---------------------------------------------------------------- */

/* A conv node with random weights; returns its node index. */
static int chain_conv(rs_model *m, int x, int C, int M, int kh, int kw, int ph, int pw, int group,
                      float **w_out, float **b_out)
{
    int cg = C / group;
    float *w = rand_buf((size_t)M * cg * kh * kw, 1.0f / sqrtf((float)(cg * kh * kw)));
    float *b = rand_buf((size_t)M, 0.3f);
    int64_t wd[4] = {M, cg, kh, kw}, bd[1] = {M};
    int k = add_node(m, RS_OP_CONV, x, add_const(m, "w", 4, wd, w), add_const(m, "b", 1, bd, b));
    rs_node *nd = &m->nodes[k];
    nd->pads[0] = nd->pads[2] = ph;
    nd->pads[1] = nd->pads[3] = pw;
    nd->group = group;
    *w_out = w;
    *b_out = b;
    return k;
}

/* Tucker-2 / CP-style factorised conv: 1×1 (6→r) → 5×1 depthwise → 1×5 depthwise → 1×1 (r→16),
 * relu, pool, flatten, Gemm: the shape of nets the compressor produces. */
static void test_factorised_chain(void)
{
    const int C = 6, H = 14, W = 14, R = 4, M = 16, F = 10, n = 13;
    int zero[4] = {0, 0, 0, 0};
    rs_model *m = model_alloc();
    int64_t in_dims[3] = {C, H, W};
    int x = add_input(m, 4, in_dims);
    float *w1, *b1, *w2, *b2, *w3, *b3, *w4, *b4;
    int k1 = chain_conv(m, x, C, R, 1, 1, 0, 0, 1, &w1, &b1);
    int k2 = chain_conv(m, out_of(m, k1), R, R, 5, 1, 0, 0, R, &w2, &b2);
    int k3 = chain_conv(m, out_of(m, k2), R, R, 1, 5, 0, 0, R, &w3, &b3);
    int k4 = chain_conv(m, out_of(m, k3), R, M, 1, 1, 0, 0, 1, &w4, &b4);
    int r = add_node(m, RS_OP_RELU, out_of(m, k4), -1, -1);
    int p = add_node(m, RS_OP_MAXPOOL, out_of(m, r), -1, -1);
    m->nodes[p].kernel[0] = m->nodes[p].kernel[1] = 2;
    m->nodes[p].strides[0] = m->nodes[p].strides[1] = 2;
    int f = add_node(m, RS_OP_FLATTEN, out_of(m, p), -1, -1);
    float *B = rand_buf((size_t)F * M * 5 * 5, 0.05f), *cb = rand_buf(F, 0.1f);
    int64_t bd[2] = {F, M * 25}, cd[1] = {F};
    int g = add_node(m, RS_OP_GEMM, out_of(m, f), add_const(m, "B", 2, bd, B),
                     add_const(m, "C", 1, cd, cb));
    m->nodes[g].trans_b = 1;
    rs_err e = {{0}};
    if (CHECK(model_infer_shapes(m, &e) == 0, "factorised chain: shapes (%s)", e.msg)) {
        float *xin = rand_buf((size_t)n * C * H * W, 1.0f);
        float *t1 = malloc((size_t)n * R * H * W * sizeof(float));
        float *t2 = malloc((size_t)n * R * 10 * W * sizeof(float));
        float *t3 = malloc((size_t)n * R * 10 * 10 * sizeof(float));
        float *t4 = malloc((size_t)n * M * 10 * 10 * sizeof(float));
        float *t5 = malloc((size_t)n * M * 5 * 5 * sizeof(float));
        float *want = malloc((size_t)n * F * sizeof(float));
        ref_conv2d(xin, n, C, H, W, w1, b1, R, 1, 1, 1, 1, 1, 1, zero, 1, t1, H, W);
        ref_conv2d(t1, n, R, H, W, w2, b2, R, 5, 1, 1, 1, 1, 1, zero, R, t2, 10, W);
        ref_conv2d(t2, n, R, 10, W, w3, b3, R, 1, 5, 1, 1, 1, 1, zero, R, t3, 10, 10);
        ref_conv2d(t3, n, R, 10, 10, w4, b4, M, 1, 1, 1, 1, 1, 1, zero, 1, t4, 10, 10);
        ref_relu(t4, (long)n * M * 100);
        ref_maxpool(t4, n, M, 10, 10, 2, 2, 2, 2, 1, 1, zero, t5, 5, 5);
        ref_gemm(t5, n, M * 25, B, F, 1, 1.0f, 1.0f, cb, F, want);
        check_model(m, xin, n, want, "factorised chain 1x1→5x1dw→1x5dw→1x1→pool→gemm");

        /* capture an intermediate value (the 5×1 depthwise output, before anything fused) */
        float *cap = malloc((size_t)n * R * 10 * W * sizeof(float));
        int rc = infer_capture(m, xin, n, out_of(m, k2), cap, &e);
        double err = rc ? 1e9 : ref_max_rel_err(cap, t2, (size_t)n * R * 10 * W);
        CHECK(err <= TOL, "infer_capture of the depthwise 5x1 output: max rel err %.2g %s", err,
              rc ? e.msg : "");
        float *t4raw = malloc((size_t)n * M * 100 * sizeof(float));
        ref_conv2d(t3, n, R, 10, 10, w4, b4, M, 1, 1, 1, 1, 1, 1, zero, 1, t4raw, 10, 10);
        free(cap);
        cap = malloc((size_t)n * M * 100 * sizeof(float));
        rc = infer_capture(m, xin, n, out_of(m, k4), cap, &e);
        err = rc ? 1e9 : ref_max_rel_err(cap, t4raw, (size_t)n * M * 100);
        CHECK(err <= TOL, "infer_capture of a conv output before its fused ReLU: %.2g", err);
        float *naive = malloc((size_t)n * F * sizeof(float));
        rc = infer_forward_naive(m, xin, n, naive, &e);
        err = rc ? 1e9 : ref_max_rel_err(naive, want, (size_t)n * F);
        CHECK(err <= TOL, "infer_forward_naive on the chain: max rel err %.2g", err);
        free(naive), free(t4raw), free(cap);
        free(xin), free(t1), free(t2), free(t3), free(t4), free(t5), free(want);
    }
    model_free(m);
    free(w1), free(b1), free(w2), free(b2), free(w3), free(b3), free(w4), free(b4), free(B),
        free(cb);
}

/* Two branches from one input joined by Add: a value with two consumers, another that stays
 * live across a branch (exercises slot liveness). */
/* ---- epilogues fused into a conv (kern_post_apply) ---------------------------------------- */

/* x → 1×1 conv → r; r → Relu → conv (3×3 pad 1, or depthwise) → act, where act is a residual
 * Add of r followed by Relu, PRelu (per-channel or one slope), LeakyRelu, HardSigmoid or
 * HardSwish: each is fused into the conv step; against the references composed by hand. */
static void test_post(void)
{
    enum { C = 5, H = 9, W = 11, M = 6, N = 5 };
    static const struct {
        rs_op op;
        int depthwise, slopes; /* PRelu: slopes per channel (M) or 1 */
        const char *what;
    } cases[] = {
        {RS_OP_ADD, 0, 0, "residual Add + Relu"},    {RS_OP_ADD, 1, 0, "depthwise + residual Add + Relu"},
        {RS_OP_PRELU, 0, M, "PRelu per channel"},   {RS_OP_PRELU, 1, 1, "depthwise + PRelu one slope"},
        {RS_OP_LEAKYRELU, 0, 0, "LeakyRelu 0.1"},    {RS_OP_HARDSIGMOID, 0, 0, "HardSigmoid 0.2, 0.5"},
        {RS_OP_HARDSWISH, 0, 0, "HardSwish"},        {RS_OP_HARDSWISH, 1, 0, "depthwise + HardSwish"},
    };
    int pad1[4] = {1, 1, 1, 1}, zero[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        rs_model *m = model_alloc();
        int64_t in_dims[3] = {C, H, W};
        int x = add_input(m, 4, in_dims);
        float *wa, *ba, *wb, *bb, slope[M];
        int ka = chain_conv(m, x, C, M, 1, 1, 0, 0, 1, &wa, &ba);
        int r = add_node(m, RS_OP_RELU, out_of(m, ka), -1, -1);
        int g = cases[i].depthwise ? M : 1;
        int kb = chain_conv(m, out_of(m, r), M, M, 3, 3, 1, 1, g, &wb, &bb);
        for (int k = 0; k < M; ++k)
            slope[k] = 0.1f * (float)(k + 1) - 0.25f;
        int64_t sd[3] = {cases[i].slopes, 1, 1};
        int k2 = cases[i].op == RS_OP_ADD     ? add_node(m, RS_OP_ADD, out_of(m, kb), out_of(m, ka), -1)
                 : cases[i].op == RS_OP_PRELU ? add_node(m, RS_OP_PRELU, out_of(m, kb),
                                                         add_const(m, "slope", 3, sd, slope), -1)
                                              : add_node(m, cases[i].op, out_of(m, kb), -1, -1);
        m->nodes[k2].alpha = cases[i].op == RS_OP_LEAKYRELU ? 0.1f : 0.2f;
        m->nodes[k2].beta = 0.5f;
        if (cases[i].op == RS_OP_ADD)
            add_node(m, RS_OP_RELU, out_of(m, k2), -1, -1);
        rs_err e = {{0}};
        if (CHECK(model_infer_shapes(m, &e) == 0, "post %s: shapes (%s)", cases[i].what, e.msg)) {
            size_t per = (size_t)M * H * W;
            float *xin = rand_buf((size_t)N * C * H * W, 1.0f);
            float *ya = malloc(N * per * sizeof(float)), *yr = malloc(N * per * sizeof(float));
            float *yb = malloc(N * per * sizeof(float));
            ref_conv2d(xin, N, C, H, W, wa, ba, M, 1, 1, 1, 1, 1, 1, zero, 1, ya, H, W);
            memcpy(yr, ya, N * per * sizeof(float));
            ref_relu(yr, (long)(N * per));
            ref_conv2d(yr, N, M, H, W, wb, bb, M, 3, 3, 1, 1, 1, 1, pad1, g, yb, H, W);
            for (size_t k = 0; k < N * per; ++k) {
                float v = yb[k], a = cases[i].slopes == M ? slope[k / (H * W) % M] : slope[0];
                float t = cases[i].op == RS_OP_HARDSWISH ? v / 6.0f + 0.5f : 0.2f * v + 0.5f;
                t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
                switch (cases[i].op) {
                case RS_OP_ADD:
                    v += ya[k];
                    v = v > 0.0f ? v : 0.0f;
                    break;
                case RS_OP_PRELU:
                    v = v >= 0.0f ? v : a * v;
                    break;
                case RS_OP_LEAKYRELU:
                    v = v >= 0.0f ? v : 0.1f * v;
                    break;
                case RS_OP_HARDSIGMOID:
                    v = t;
                    break;
                default:
                    v *= t;
                }
                yb[k] = v;
            }
            char what[96];
            snprintf(what, sizeof what, "conv + fused %s", cases[i].what);
            check_model(m, xin, N, yb, what);
            free(xin), free(ya), free(yr), free(yb);
        }
        model_free(m);
        free(wa), free(ba), free(wb), free(bb);
    }
}

static void test_dag(void)
{
    const int C = 3, H = 12, W = 12, M = 5, n = 7;
    int pad1[4] = {1, 1, 1, 1}, zero[4] = {0, 0, 0, 0};
    rs_model *m = model_alloc();
    int64_t in_dims[3] = {C, H, W};
    int x = add_input(m, 4, in_dims);
    float *wa, *ba, *wb, *bb, *wc, *bc;
    int ka = chain_conv(m, x, C, M, 3, 3, 1, 1, 1, &wa, &ba);  /* branch a: 3×3 pad 1 */
    int kb = chain_conv(m, x, C, M, 1, 1, 0, 0, 1, &wb, &bb);  /* branch b: 1×1 */
    int rb = add_node(m, RS_OP_RELU, out_of(m, kb), -1, -1);
    int kc = chain_conv(m, out_of(m, rb), M, M, 3, 3, 1, 1, M, &wc, &bc); /* dw on b */
    int s = add_node(m, RS_OP_ADD, out_of(m, ka), out_of(m, kc), -1);
    int f = add_node(m, RS_OP_FLATTEN, out_of(m, s), -1, -1);
    (void)f;
    rs_err e = {{0}};
    if (CHECK(model_infer_shapes(m, &e) == 0, "dag: shapes (%s)", e.msg)) {
        size_t per = (size_t)M * H * W;
        float *xin = rand_buf((size_t)n * C * H * W, 1.0f);
        float *ya = malloc(n * per * sizeof(float)), *yb = malloc(n * per * sizeof(float));
        float *yc = malloc(n * per * sizeof(float));
        ref_conv2d(xin, n, C, H, W, wa, ba, M, 3, 3, 1, 1, 1, 1, pad1, 1, ya, H, W);
        ref_conv2d(xin, n, C, H, W, wb, bb, M, 1, 1, 1, 1, 1, 1, zero, 1, yb, H, W);
        ref_relu(yb, (long)(n * per));
        ref_conv2d(yb, n, M, H, W, wc, bc, M, 3, 3, 1, 1, 1, 1, pad1, M, yc, H, W);
        for (size_t i = 0; i < n * per; ++i)
            ya[i] += yc[i];
        check_model(m, xin, n, ya, "DAG: two branches joined by Add, flatten");
        free(xin), free(ya), free(yb), free(yc);
    }
    model_free(m);
    free(wa), free(ba), free(wb), free(bb), free(wc), free(bc);
}

/* ---- u8 input, batching edge cases, errors ------------------------------------------------ */

static void test_u8_and_batches(rs_model *lenet, const char *label)
{
    rs_err e = {{0}};
    const int n = 45; /* not a multiple of the tile: a short last tile */
    uint8_t *px = malloc((size_t)n * 3072);
    float *xf = malloc((size_t)n * 3072 * sizeof(float));
    for (int i = 0; i < n * 3072; ++i) {
        px[i] = (uint8_t)(irand(0, 255));
        xf[i] = ((float)px[i] / 255.0f - 0.5f) / 0.5f;
    }
    float *want = malloc((size_t)n * 10 * sizeof(float));
    float *got = malloc((size_t)n * 10 * sizeof(float));
    int rc = infer_forward_naive(lenet, xf, n, want, &e);
    CHECK(rc == 0, "%s: naive forward (%s)", label, rc ? e.msg : "ok");
    infer_ctx *c = infer_create(lenet, 2, &e);
    if (CHECK(c != NULL, "%s: infer_create", label)) {
        rc = infer_forward_u8(c, px, n, got, &e);
        double err = rc ? 1e9 : ref_max_rel_err(got, want, (size_t)n * 10);
        CHECK(err <= TOL, "%s: infer_forward_u8 (n=%d) vs naive forward on normalised floats: %.2g",
              label, n, err);
        /* the same context reused for other batch sizes, including 0 and 1 */
        CHECK(infer_forward(c, xf, 0, got, &e) == 0, "%s: n = 0 is a no-op", label);
        rc = infer_forward(c, xf + 3072 * 5, 1, got, &e);
        err = rc ? 1e9 : ref_max_rel_err(got, want + 50, 10);
        CHECK(err <= TOL, "%s: reused context, single image: %.2g", label, err);
        CHECK(infer_in_features(c) == 3072 && infer_out_features(c) == 10,
              "%s: in/out features 3072/10", label);
        infer_free(c);
    }
    free(px), free(xf), free(want), free(got);
}

static void test_errors(void)
{
    rs_err e = {{0}};
    CHECK(infer_create(NULL, 1, &e) == NULL && e.msg[0], "NULL model refused: %s", e.msg);
    infer_free(NULL); /* must not crash */

    /* A Conv whose shapes were never inferred: refused with the node named, not run blindly. */
    rs_model *m = model_alloc();
    int64_t in_dims[3] = {3, 8, 8}, wd[4] = {4, 3, 3, 3};
    float w[4 * 3 * 3 * 3] = {0};
    int x = add_input(m, 4, in_dims);
    add_node(m, RS_OP_CONV, x, add_const(m, "w", 4, wd, w), -1);
    e.msg[0] = 0;
    infer_ctx *c = infer_create(m, 1, &e);
    CHECK(c == NULL && strstr(e.msg, "Conv_") != NULL,
          "conv without inferred shapes refused, naming the node: %s", e.msg);
    infer_free(c);
    model_free(m);
}

/* Many calls of different sizes on one 2-thread context (tile hand-off, short last tiles). */
static void test_reuse_stress(rs_model *lenet)
{
    rs_err e = {{0}};
    const int nmax = 70;
    float *x = rand_buf((size_t)nmax * 3072, 1.0f);
    float *want = malloc((size_t)nmax * 10 * sizeof(float));
    float *got = malloc((size_t)nmax * 10 * sizeof(float));
    int ok = infer_forward_naive(lenet, x, nmax, want, &e) == 0;
    infer_ctx *c = infer_create(lenet, 2, &e);
    double worst = 0.0;
    for (int r = 0; ok && c && r < 60; ++r) {
        int n = irand(1, nmax), first = irand(0, nmax - n);
        if (infer_forward(c, x + (size_t)first * 3072, n, got, &e) != 0) {
            ok = 0;
            break;
        }
        double err = ref_max_rel_err(got, want + (size_t)first * 10, (size_t)n * 10);
        if (!(err <= worst))
            worst = err;
    }
    CHECK(ok && c && worst <= TOL, "60 forwards of random sizes on one 2-thread context: %.2g",
          worst);
    infer_free(c);
    free(x), free(want), free(got);
}

/* ---- whole nets from ONNX against PyTorch ------------------------------------------------- */

static float *read_f32(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *p = malloc((size_t)len + 4);
    *count = fread(p, 1, (size_t)len, f) / sizeof(float);
    fclose(f);
    return p;
}

static void test_golden(void)
{
    const char *root = getenv("RS_SOURCE_ROOT");
    if (!root)
        root = ".";
    char path[1024];
    size_t nx = 0;
    snprintf(path, sizeof path, "%s/tests/data/lenet_input.f32", root);
    float *x = read_f32(path, &nx);
    if (!CHECK(x != NULL && nx % 3072 == 0, "golden input %s present", path))
        return;
    int n = (int)(nx / 3072);
    const char *nets[] = {"lenet_random", "lenet_reshape", "convmix_random", "gemm_nobias"};
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; ++i) {
        rs_err e = {{0}};
        snprintf(path, sizeof path, "%s/tests/data/%s.onnx", root, nets[i]);
        rs_model *m = onnx_load(path, &e);
        if (!CHECK(m != NULL, "load %s (%s)", path, m ? "ok" : e.msg))
            continue;
        size_t ny = 0;
        snprintf(path, sizeof path, "%s/tests/data/%s_logits.f32", root, nets[i]);
        float *want = read_f32(path, &ny);
        if (CHECK(want != NULL && ny == (size_t)n * 10, "golden logits %s", path)) {
            char what[96];
            snprintf(what, sizeof what, "%s vs PyTorch logits", nets[i]);
            check_model(m, x, n, want, what);
            float *naive = malloc(ny * sizeof(float));
            int rc = infer_forward_naive(m, x, n, naive, &e);
            double err = rc ? 1e9 : ref_max_rel_err(naive, want, ny);
            CHECK(err <= TOL, "%s: infer_forward_naive vs PyTorch: %.2g", nets[i], err);
            rc = infer_capture(m, x, n, m->output, naive, &e);
            err = rc ? 1e9 : ref_max_rel_err(naive, want, ny);
            CHECK(err <= TOL, "%s: infer_capture(output) vs PyTorch: %.2g", nets[i], err);
            rc = infer_forward_blas(m, x, n, naive, &e);
            err = rc ? 1e9 : ref_max_rel_err(naive, want, ny);
            CHECK(err <= TOL, "%s: infer_forward_blas vs PyTorch: %.2g", nets[i], err);
            free(naive);
            if (i == 0) {
                test_u8_and_batches(m, nets[i]);
                test_reuse_stress(m);
            }
        }
        free(want);
        model_free(m);
    }
    free(x);
}

int main(void)
{
    test_kern_gemm();
    test_kern_dw();
    test_kern_cv();
    test_conv();
    /* again with every eligible conv on the channel-vector kernel (AVX-512, AVX2) */
    setenv("RANKSCOPE_CONV", "cv", 1);
    test_conv();
    unsetenv("RANKSCOPE_CONV");
    test_post();
    test_maxpool();
    test_dense();
    test_factorised_chain();
    test_dag();
    test_errors();
    test_golden();
    return check_done();
}
