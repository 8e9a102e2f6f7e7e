/* test_decomp.c — factorizations are exact where the mathematics is exact.
 *
 *  - Full rank: every method, spliced into the graph and run by the inference engine, reproduces
 *    a NAIVE convolution / matrix product written here (not the engine's) to 1e-4 relative, with
 *    padding (also asymmetric), stride 2, dilation 2, non-square kernels and no bias.
 *  - Synthetic weights of exact CP / Tucker / SVD / spatial / slice rank r are recovered at rank r
 *    to 1e-5 (weight error).
 *  - Costs of the reference net's layers equal numbers computed by hand (in the comments).
 *  - Robustness: CP at a rank above every mode size, cancellation, bad ranks, grouped convs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ref_ops.h"
#include "rankscope/decomp.h"
#include "rankscope/infer.h"
#include "testnet.h"

/* ---- independent references ---------------------------------------------------------------- */

static double rel_diff(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static float *weight_of(rs_model *m, const char *node)
{
    int n = model_find_node(m, node);
    return n < 0 ? NULL : m->values[m->nodes[n].in[1]].f;
}

static decomp_opts test_opts(void)
{
    decomp_opts o;
    decomp_opts_default(&o);
    o.max_iter = 3000;
    o.tol = 1e-14;
    return o;
}

/* ---- full rank through the graph ------------------------------------------------------------ */

typedef struct conv_case {
    const char *what;
    int cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, bias;
    int pad_extra_b, pad_extra_r; /* extra bottom/right padding: asymmetric pads */
} conv_case;

static void full_rank_case(const conv_case *c, decomp_method method)
{
    rs_err e = {{0}};
    rs_model *m = testnet_conv(c->cin, c->h, c->w, c->cout, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw,
                               c->dh, c->dw, 1, c->bias, 77);
    if (!m) {
        CHECK(0, "%s: build model", c->what);
        return;
    }
    int node = model_find_node(m, "conv");
    m->nodes[node].pads[2] += c->pad_extra_b;
    m->nodes[node].pads[3] += c->pad_extra_r;
    if (model_infer_shapes(m, &e)) {
        CHECK(0, "%s: shapes: %s", c->what, e.msg);
        model_free(m);
        return;
    }
    const rs_value *yv = &m->values[m->output];
    int Ho = (int)yv->dims[2], Wo = (int)yv->dims[3], n = 3;
    size_t xin = (size_t)c->cin * c->h * c->w, yout = (size_t)c->cout * Ho * Wo;
    float *x = malloc(n * xin * sizeof *x), *ref = malloc(n * yout * sizeof *ref),
          *got = malloc(n * yout * sizeof *got);
    uint64_t st = 99;
    for (size_t i = 0; i < n * xin; ++i)
        x[i] = testnet_rand(&st);
    const float *bias = c->bias ? m->values[m->nodes[node].in[2]].f : NULL;
    const int pads[4] = {c->ph, c->pw, c->ph, c->pw};
    ref_conv2d(x, (int)n, c->cin, c->h, c->w, weight_of(m, "conv"), bias, c->cout, c->kh, c->kw,
               c->sh, c->sw, c->dh, c->dw, pads, 1, got, Ho, Wo);
    memcpy(ref, got, n * yout * sizeof *ref);

    int rank = decomp_max_rank(m, node, method, 0);
    int rank2 = method == DECOMP_TUCKER2 ? decomp_max_rank(m, node, method, 1) : 0;
    decomp_opts o = test_opts();
    decomp_result r;
    int rc = decomp_layer(m, node, method, rank, rank2, &o, &r, &e);
    CHECK(rc == 0, "%s %s rank %d: decomp_layer (%s)", c->what, decomp_method_name(method), rank,
          rc ? e.msg : "ok");
    if (rc == 0) {
        double oerr = -1;
        int orc = decomp_output_error_on(m, node, &r, x, n, &oerr, &e);
        CHECK(orc == 0 && oerr < 1e-4, "%s %s: output error on the layer alone %.2e < 1e-4", c->what,
              decomp_method_name(method), oerr);
        rc = decomp_apply(m, node, &r, &e);
        CHECK(rc == 0, "%s %s: apply (%s)", c->what, decomp_method_name(method), rc ? e.msg : "ok");
        CHECK(model_find_node(m, "conv") < 0 && model_find_node(m, "conv_f0") >= 0,
              "%s %s: conv replaced by conv_f0..", c->what, decomp_method_name(method));
        /* the bias survives exactly once, on the last factor, under its own name */
        int users = 0, last_has = 0;
        int bv = model_find_value(m, "conv.bias");
        for (int i = 0; i < m->n_nodes; ++i)
            for (int k = 0; k < m->nodes[i].n_in; ++k)
                if (bv >= 0 && m->nodes[i].in[k] == bv) {
                    ++users;
                    last_has = i == m->n_nodes - 1;
                }
        CHECK(c->bias ? (users == 1 && last_has) : bv < 0, "%s %s: bias used %d time(s), on the last factor",
              c->what, decomp_method_name(method), users);
        infer_ctx *ctx = rc == 0 ? infer_create(m, 1, &e) : NULL;
        rc = ctx ? infer_forward(ctx, x, n, got, &e) : -1;
        double d = rc == 0 ? rel_diff(got, ref, n * yout) : INFINITY;
        CHECK(rc == 0 && d < 1e-4, "%s %s full rank: factorized graph vs naive conv %.2e < 1e-4 %s",
              c->what, decomp_method_name(method), d, rc ? e.msg : "");
        CHECK(r.weight_error < 1e-4, "%s %s: weight error at full rank %.2e", c->what,
              decomp_method_name(method), r.weight_error);
        infer_free(ctx);
    }
    decomp_result_free(&r);
    free(x), free(ref), free(got);
    model_free(m);
}

static void test_full_rank(void)
{
    static const conv_case cases[] = {
        /* what             cin h  w cout kh kw sh sw ph pw dh dw bias xb xr */
        {"plain 5x5",       3, 12, 12, 4, 5, 5, 1, 1, 0, 0, 1, 1, 1, 0, 0},
        {"padded",          3, 10, 11, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0},
        {"stride 2",        2, 11, 9, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 0},
        {"dilation 2",      2, 12, 12, 3, 3, 3, 1, 1, 2, 2, 2, 2, 1, 0, 0},
        {"no bias 3x5 s2d2 asym", 3, 13, 15, 4, 3, 5, 2, 1, 1, 2, 2, 1, 0, 1, 2},
    };
    const decomp_method methods[] = {DECOMP_SLICE_SVD, DECOMP_SPATIAL_SVD, DECOMP_CP, DECOMP_TUCKER2};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        for (size_t k = 0; k < sizeof methods / sizeof methods[0]; ++k)
            full_rank_case(&cases[i], methods[k]);
}

static void test_dense_full_rank(void)
{
    /* 7×13 goes through GSL's Golub–Reinsch, 40×64 and 70×30 through the Gram eigenproblem */
    static const int shapes[][2] = {{13, 7}, {64, 40}, {30, 70}};
    for (int c = 0; c < 6; ++c) {
        int bias = c % 2, K = shapes[c / 2][0], N = shapes[c / 2][1], mn = K < N ? K : N;
        rs_err e = {{0}};
        rs_model *m = testnet_gemm(K, N, bias, 5);
        int node = model_find_node(m, "fc");
        float *W = weight_of(m, "fc"); /* (N, K), trans_b = 1 */
        const float *b = bias ? m->values[m->nodes[node].in[2]].f : NULL;
        /* Gemm's alpha and beta survive too (on the last factor) */
        float alpha = bias ? 0.5f : 1.0f, beta = bias ? 2.0f : 1.0f;
        m->nodes[node].alpha = alpha;
        m->nodes[node].beta = beta;
        float *x = malloc(4 * K * sizeof *x), *ref = malloc(4 * N * sizeof *ref), *got = malloc(4 * N * sizeof *got);
        uint64_t st = 3;
        for (int i = 0; i < 4 * K; ++i)
            x[i] = testnet_rand(&st);
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < N; ++j) {
                double s = 0;
                for (int k = 0; k < K; ++k)
                    s += (double)x[i * K + k] * W[j * K + k];
                ref[i * N + j] = (float)(alpha * s + (b ? beta * b[j] : 0.0));
            }
        CHECK(decomp_max_rank(m, node, DECOMP_SVD, 0) == mn, "dense max rank min(%d,%d) = %d", N, K, mn);
        decomp_result r;
        int rc = decomp_layer(m, node, DECOMP_SVD, mn, 0, NULL, &r, &e);
        CHECK(rc == 0, "dense svd full rank (%s)", rc ? e.msg : "ok");
        rc = rc ? rc : decomp_apply(m, node, &r, &e);
        infer_ctx *ctx = rc == 0 ? infer_create(m, 1, &e) : NULL;
        rc = ctx ? infer_forward(ctx, x, 4, got, &e) : -1;
        double d = rc == 0 ? rel_diff(got, ref, (size_t)4 * N) : -1.0;
        free(x), free(ref), free(got);
        CHECK(rc == 0 && d < 1e-5, "dense %dx%d svd full rank (bias %d) matches alpha·x·Wᵀ + beta·b: %.2e", N, K, bias, d);
        CHECK(m->n_nodes == 2 && m->nodes[0].op == RS_OP_GEMM && m->nodes[1].op == RS_OP_GEMM,
              "dense svd gives two Gemm nodes");
        infer_free(ctx);
        decomp_result_free(&r);
        model_free(m);
    }
}

/* ---- exact low rank is recovered --------------------------------------------------------------- */

static rs_model *conv_with(int cin, int cout, int k, const float *K)
{
    rs_model *m = testnet_conv(cin, 9, 9, cout, k, k, 1, 1, 1, 1, 1, 1, 1, 1, 11);
    memcpy(weight_of(m, "conv"), K, (size_t)cout * cin * k * k * sizeof(float));
    return m;
}

static void test_exact_rank(void)
{
    rs_err e = {{0}};
    uint64_t st = 1234;
    enum { CO = 8, CI = 6, KS = 3, R = 3 };
    float K[CO * CI * KS * KS];
    double A[CO][R], B[CI][R], C[KS][R], D[KS][R];
    for (int r = 0; r < R; ++r) {
        for (int i = 0; i < CO; ++i) A[i][r] = testnet_rand(&st);
        for (int i = 0; i < CI; ++i) B[i][r] = testnet_rand(&st);
        for (int i = 0; i < KS; ++i) C[i][r] = testnet_rand(&st);
        for (int i = 0; i < KS; ++i) D[i][r] = testnet_rand(&st);
    }
    /* CP rank 3 */
    for (int o = 0; o < CO; ++o)
        for (int i = 0; i < CI; ++i)
            for (int a = 0; a < KS; ++a)
                for (int b = 0; b < KS; ++b) {
                    double s = 0;
                    for (int r = 0; r < R; ++r)
                        s += A[o][r] * B[i][r] * C[a][r] * D[b][r];
                    K[((o * CI + i) * KS + a) * KS + b] = (float)s;
                }
    rs_model *m = conv_with(CI, CO, KS, K);
    decomp_opts o = test_opts();
    decomp_result r;
    int rc = decomp_layer(m, 0, DECOMP_CP, R, 0, &o, &r, &e);
    CHECK(rc == 0 && r.weight_error < 1e-5, "exact CP rank 3 recovered: weight error %.2e < 1e-5 (%d sweeps)",
          rc ? -1.0 : r.weight_error, r.iterations);
    CHECK(rc == 0 && r.n_fit == r.iterations && r.n_fit > 0 && fabs(r.fit[r.n_fit - 1] - (1 - r.weight_error)) < 1e-6,
          "CP fit per sweep reported, last = 1 - weight error");
    CHECK(rc == 0 && !r.degenerate, "exact CP not flagged degenerate");
    decomp_result_free(&r);
    rc = decomp_layer(m, 0, DECOMP_CP, 1, 0, &o, &r, &e);
    CHECK(rc == 0 && r.weight_error > 1e-3, "CP rank 1 of a rank-3 tensor is not exact (%.3f)", r.weight_error);
    decomp_result_free(&r);
    model_free(m);

    /* Tucker (R_out, R_in) = (3, 2): K = G ×0 U ×1 V */
    float G[3 * 2 * KS * KS];
    double U[CO][3], V[CI][2];
    for (int i = 0; i < 3 * 2 * KS * KS; ++i) G[i] = testnet_rand(&st);
    for (int i = 0; i < CO; ++i) for (int q = 0; q < 3; ++q) U[i][q] = testnet_rand(&st);
    for (int i = 0; i < CI; ++i) for (int q = 0; q < 2; ++q) V[i][q] = testnet_rand(&st);
    for (int oo = 0; oo < CO; ++oo)
        for (int i = 0; i < CI; ++i)
            for (int s = 0; s < KS * KS; ++s) {
                double v = 0;
                for (int q = 0; q < 3; ++q)
                    for (int j = 0; j < 2; ++j)
                        v += U[oo][q] * V[i][j] * G[(q * 2 + j) * KS * KS + s];
                K[(oo * CI + i) * KS * KS + s] = (float)v;
            }
    m = conv_with(CI, CO, KS, K);
    rc = decomp_layer(m, 0, DECOMP_TUCKER2, 3, 2, &o, &r, &e);
    CHECK(rc == 0 && r.weight_error < 1e-5 && r.rank == 3 && r.rank2 == 2,
          "exact Tucker-2 (3,2) recovered: %.2e < 1e-5", rc ? -1.0 : r.weight_error);
    decomp_result_free(&r);
    rc = decomp_layer(m, 0, DECOMP_TUCKER2, 2, 2, &o, &r, &e);
    CHECK(rc == 0 && r.weight_error > 1e-3, "Tucker-2 (2,2) of a (3,2) tensor is not exact (%.3f)",
          r.weight_error);
    decomp_result_free(&r);
    model_free(m);

    /* spatial rank 2: M[(i,a),(o,b)] = Σ_k P[(i,a),k] Q[(o,b),k] */
    double P[CI * KS][2], Q[CO * KS][2];
    for (int i = 0; i < CI * KS; ++i) for (int k = 0; k < 2; ++k) P[i][k] = testnet_rand(&st);
    for (int i = 0; i < CO * KS; ++i) for (int k = 0; k < 2; ++k) Q[i][k] = testnet_rand(&st);
    for (int oo = 0; oo < CO; ++oo)
        for (int i = 0; i < CI; ++i)
            for (int a = 0; a < KS; ++a)
                for (int b = 0; b < KS; ++b)
                    K[((oo * CI + i) * KS + a) * KS + b] =
                        (float)(P[i * KS + a][0] * Q[oo * KS + b][0] + P[i * KS + a][1] * Q[oo * KS + b][1]);
    m = conv_with(CI, CO, KS, K);
    rc = decomp_layer(m, 0, DECOMP_SPATIAL_SVD, 2, 0, NULL, &r, &e);
    CHECK(rc == 0 && r.weight_error < 1e-5, "exact spatial rank 2 recovered: %.2e", rc ? -1.0 : r.weight_error);
    decomp_result_free(&r);
    rc = decomp_layer(m, 0, DECOMP_SPATIAL_SVD, 1, 0, NULL, &r, &e);
    CHECK(rc == 0 && r.weight_error > 1e-3, "spatial rank 1 of a rank-2 reshaping is not exact");
    decomp_result_free(&r);
    model_free(m);

    /* every slice rank 1: K[o,i] = u_{oi} v_{oi}ᵀ */
    for (int oo = 0; oo < CO; ++oo)
        for (int i = 0; i < CI; ++i) {
            float u[KS], v[KS];
            for (int a = 0; a < KS; ++a) u[a] = testnet_rand(&st), v[a] = testnet_rand(&st);
            for (int a = 0; a < KS; ++a)
                for (int b = 0; b < KS; ++b)
                    K[((oo * CI + i) * KS + a) * KS + b] = u[a] * v[b];
        }
    m = conv_with(CI, CO, KS, K);
    rc = decomp_layer(m, 0, DECOMP_SLICE_SVD, 1, 0, NULL, &r, &e);
    CHECK(rc == 0 && r.weight_error < 1e-5, "exact slice rank 1 recovered: %.2e", rc ? -1.0 : r.weight_error);
    float *x = malloc(2 * CI * 81 * sizeof *x);
    for (int i = 0; i < 2 * CI * 81; ++i) x[i] = testnet_rand(&st);
    double oerr = 1;
    int orc = rc == 0 ? decomp_output_error_on(m, 0, &r, x, 2, &oerr, &e) : -1;
    CHECK(orc == 0 && oerr < 1e-5,
          "slice rank 1 of rank-1 slices: output error %.2e", oerr);
    decomp_result_free(&r);
    free(x);
    model_free(m);

    /* dense rank 4 (12×20: Golub–Reinsch) */
    m = testnet_gemm(20, 12, 1, 9);
    float *W = weight_of(m, "fc");
    double L[12][4], Rm[20][4];
    for (int i = 0; i < 12; ++i) for (int k = 0; k < 4; ++k) L[i][k] = testnet_rand(&st);
    for (int j = 0; j < 20; ++j) for (int k = 0; k < 4; ++k) Rm[j][k] = testnet_rand(&st);
    for (int i = 0; i < 12; ++i)
        for (int j = 0; j < 20; ++j) {
            double s = 0;
            for (int k = 0; k < 4; ++k) s += L[i][k] * Rm[j][k];
            W[i * 20 + j] = (float)s;
        }
    rc = decomp_layer(m, 0, DECOMP_SVD, 4, 0, NULL, &r, &e);
    CHECK(rc == 0 && r.weight_error < 1e-5, "exact dense rank 4 recovered: %.2e", rc ? -1.0 : r.weight_error);
    decomp_result_free(&r);
    rc = decomp_layer(m, 0, DECOMP_SVD, 3, 0, NULL, &r, &e);
    CHECK(rc == 0 && r.weight_error > 1e-3, "dense rank 3 of a rank-4 matrix is not exact");
    decomp_result_free(&r);
    model_free(m);

    /* dense rank 5 of 60×80 (the Gram path): recovered, and the rank-5 chain reproduces W x */
    m = testnet_gemm(80, 60, 0, 9);
    W = weight_of(m, "fc");
    double L5[60][5], R5[80][5];
    for (int i = 0; i < 60; ++i) for (int k = 0; k < 5; ++k) L5[i][k] = testnet_rand(&st);
    for (int j = 0; j < 80; ++j) for (int k = 0; k < 5; ++k) R5[j][k] = testnet_rand(&st);
    for (int i = 0; i < 60; ++i)
        for (int j = 0; j < 80; ++j) {
            double s = 0;
            for (int k = 0; k < 5; ++k) s += L5[i][k] * R5[j][k];
            W[i * 80 + j] = (float)s;
        }
    rc = decomp_layer(m, 0, DECOMP_SVD, 5, 0, NULL, &r, &e);
    CHECK(rc == 0 && r.weight_error < 1e-5, "exact dense rank 5 of 60x80 recovered: %.2e", rc ? -1.0 : r.weight_error);
    float xin[2 * 80];
    for (int i = 0; i < 160; ++i) xin[i] = testnet_rand(&st);
    oerr = 1;
    orc = rc == 0 ? decomp_output_error_on(m, 0, &r, xin, 2, &oerr, &e) : -1;
    CHECK(orc == 0 && oerr < 1e-5, "rank-5 chain output error %.2e", oerr);
    decomp_result_free(&r);
    model_free(m);
}

/* ---- costs by hand on the reference net -------------------------------------------------------- */

static void test_costs(void)
{
    rs_err e = {{0}};
    rs_model *m = testnet_lenet(1);
    int conv2 = model_find_node(m, "conv2"), fc1 = model_find_node(m, "fc1");
    decomp_cost c;
    /* fc1 120×400, svd r = 32: 32·400 + 120·32 + 120 bias = 16760 params; 32·400 + 120·32 = 16640 MACs */
    int rc = decomp_cost_of(m, fc1, DECOMP_SVD, 32, 0, &c, &e);
    CHECK(rc == 0 && c.params_before == 48120 &&
              c.params_after == 16760 && c.macs_before == 48000 && c.macs_after == 16640,
          "fc1 svd r32 costs: params %lld -> %lld, MACs %lld -> %lld", (long long)c.params_before,
          (long long)c.params_after, (long long)c.macs_before, (long long)c.macs_after);
    /* break-even r(m+n) < mn: 48000/520 = 92.3 -> 92 */
    CHECK(decomp_break_even_rank(m, fc1, DECOMP_SVD, DECOMP_BY_PARAMS) == 92, "fc1 break-even rank 92 (got %d)",
          decomp_break_even_rank(m, fc1, DECOMP_SVD, DECOMP_BY_PARAMS));
    /* conv2 16×6×5×5 on 6×14×14 -> 16×10×10: 2400 + 16 params, 16·100·150 = 240000 MACs.
     * spatial r12: f0 12×6×5×1 = 360, out 12×10×14, MACs 12·140·30 = 50400;
     *              f1 16×12×1×5 = 960 + 16, out 16×10×10, MACs 16·100·60 = 96000 */
    rc = decomp_cost_of(m, conv2, DECOMP_SPATIAL_SVD, 12, 0, &c, &e);
    CHECK(rc == 0 && c.params_before == 2416 &&
              c.macs_before == 240000 && c.params_after == 1336 && c.macs_after == 146400,
          "conv2 spatial r12: params %lld, MACs %lld", (long long)c.params_after, (long long)c.macs_after);
    /* cp r16: 96 (MACs 16·6·196 = 18816) + 80 (16·140·5 = 11200) + 80 (16·100·5 = 8000)
     *         + 256 + 16 (16·100·16 = 25600) */
    rc = decomp_cost_of(m, conv2, DECOMP_CP, 16, 0, &c, &e);
    CHECK(rc == 0 && c.params_after == 528 &&
              c.macs_after == 63616,
          "conv2 cp r16: params %lld, MACs %lld", (long long)c.params_after, (long long)c.macs_after);
    /* tucker2 (8, 4): 24 (24·196 = 4704) + 800 (8·100·100 = 80000) + 128 + 16 (16·100·8 = 12800) */
    rc = decomp_cost_of(m, conv2, DECOMP_TUCKER2, 8, 4, &c, &e);
    CHECK(rc == 0 && c.params_after == 968 &&
              c.macs_after == 97504,
          "conv2 tucker2 (8,4): params %lld, MACs %lld", (long long)c.params_after, (long long)c.macs_after);
    /* slice r1: 96×1×5×1 = 480 (96·140·5 = 67200) + 96×1×1×5 = 480 (96·100·5 = 48000)
     *           + 16×96 = 1536 + 16 (16·100·96 = 153600): MORE than the layer, reported as such */
    rc = decomp_cost_of(m, conv2, DECOMP_SLICE_SVD, 1, 0, &c, &e);
    CHECK(rc == 0 && c.params_after == 2512 &&
              c.macs_after == 268800,
          "conv2 slice-svd r1 costs more, honestly: params %lld, MACs %lld", (long long)c.params_after,
          (long long)c.macs_after);
    CHECK(decomp_break_even_rank(m, conv2, DECOMP_SLICE_SVD, DECOMP_BY_PARAMS) == 0,
          "slice-svd never saves on conv2");
    /* spatial break-even by params: r(30 + 80) + 16 < 2416 -> r < 21.8 -> 21 */
    CHECK(decomp_break_even_rank(m, conv2, DECOMP_SPATIAL_SVD, DECOMP_BY_PARAMS) == 21,
          "conv2 spatial break-even 21 (got %d)", decomp_break_even_rank(m, conv2, DECOMP_SPATIAL_SVD, DECOMP_BY_PARAMS));
    /* the real factor chain has exactly the analytic costs, and the model totals agree */
    decomp_result r;
    int64_t p0, m0, p1, m1;
    model_totals(m, &p0, &m0);
    rc = decomp_layer(m, conv2, DECOMP_CP, 16, 0, NULL, &r, &e);
    CHECK(rc == 0 && r.cost.params_after == 528 &&
              r.cost.macs_after == 63616, "cp chain costs equal the analytic ones");
    rc = decomp_apply(m, conv2, &r, &e);
    CHECK(rc == 0, "apply cp to lenet conv2 (%s)", rc ? e.msg : "ok");
    model_totals(m, &p1, &m1);
    CHECK(p0 - p1 == 2416 - 528 && m0 - m1 == 240000 - 63616, "model totals drop by the layer's saving");
    /* the bench target is well under 100 ms; this only catches a runaway on a loaded machine */
    CHECK(r.seconds < 1.0, "cp r16 on conv2 took %.1f ms (< 1 s)", 1e3 * r.seconds);
    decomp_result_free(&r);
    model_free(m);
}

/* ---- robustness --------------------------------------------------------------------------------- */

static int cancel_at_3(void *user, double f, const char *what)
{
    (void)f, (void)what;
    return ++*(int *)user >= 3;
}

static void test_robustness(void)
{
    rs_err e = {{0}};
    rs_model *m = testnet_conv(2, 8, 8, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 21);
    decomp_result r;
    /* rank far above every mode size (2, 2, 3, 3): max is 2·2·3 = 12 */
    CHECK(decomp_max_rank(m, 0, DECOMP_CP, 0) == 12, "cp max rank 12");
    double t0 = rs_now();
    int rc = decomp_layer(m, 0, DECOMP_CP, 12, 0, NULL, &r, &e);
    CHECK(rc == 0 && isfinite(r.weight_error) && rs_now() - t0 < 5, "cp rank 12 > every mode: finishes (%s, err %.2e)",
          rc ? e.msg : "ok", rc ? -1.0 : r.weight_error);
    decomp_result_free(&r);
    decomp_opts o;
    decomp_opts_default(&o);
    o.restarts = 3;
    o.ridge = 1e-6;
    rc = decomp_layer(m, 0, DECOMP_CP, 5, 0, &o, &r, &e);
    CHECK(rc == 0 && r.restart_used >= 0 && r.restart_used <= 3, "cp with restarts and ridge (%s)",
          rc ? e.msg : "ok");
    decomp_result_free(&r);
    int calls = 0;
    o.restarts = 0;
    o.tol = 0;
    o.progress = cancel_at_3;
    o.user = &calls;
    rc = decomp_layer(m, 0, DECOMP_CP, 4, 0, &o, &r, &e);
    CHECK(rc == RS_CANCELLED && calls == 3, "cp cancels from the progress callback (rc %d, %d calls)", rc, calls);
    rc = decomp_layer(m, 0, DECOMP_CP, 13, 0, NULL, &r, &e);
    CHECK(rc == -1 && strstr(e.msg, "rank 13 out of range 1..12"), "rank 13 rejected: %s", e.msg);
    rc = decomp_layer(m, 0, DECOMP_SVD, 1, 0, NULL, &r, &e);
    CHECK(rc == -1 && strstr(e.msg, "conv"), "svd on a conv rejected: %s", e.msg);
    model_free(m);

    m = testnet_conv(4, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2, 1, 21); /* grouped */
    unsigned mask = decomp_methods_for(m, 0);
    CHECK(mask == (1u << DECOMP_NONE), "grouped conv: no method applies (mask %#x)", mask);
    rc = decomp_layer(m, 0, DECOMP_CP, 2, 0, NULL, &r, &e);
    CHECK(rc == -1 && strstr(e.msg, "group"), "grouped conv reported, not crashed: %s", e.msg);
    model_free(m);

    decomp_method dm;
    CHECK(decomp_method_parse("Spatial-SVD", &dm, &e) == 0 && dm == DECOMP_SPATIAL_SVD, "parse Spatial-SVD");
    CHECK(decomp_method_parse("tucker", &dm, &e) == 0 && dm == DECOMP_TUCKER2, "parse tucker alias");
    CHECK(decomp_method_parse("qr", &dm, &e) == -1 && strstr(e.msg, "\"qr\""), "unknown method named: %s", e.msg);
    for (int k = 0; k < DECOMP_COUNT; ++k)
        CHECK(decomp_method_parse(decomp_method_name((decomp_method)k), &dm, &e) == 0 && dm == (decomp_method)k,
              "name round-trips: %s", decomp_method_name((decomp_method)k));

    /* lenet: which methods apply where, spectra */
    m = testnet_lenet(2);
    int conv1 = model_find_node(m, "conv1"), fc2 = model_find_node(m, "fc2");
    CHECK(decomp_methods_for(m, conv1) == ((1u << DECOMP_NONE) | (1u << DECOMP_SLICE_SVD) | (1u << DECOMP_SPATIAL_SVD) |
                                           (1u << DECOMP_CP) | (1u << DECOMP_TUCKER2)),
          "conv1: the four conv methods");
    CHECK(decomp_methods_for(m, fc2) == ((1u << DECOMP_NONE) | (1u << DECOMP_SVD)), "fc2: svd only");
    /* ALS and HOOI never lose fit from one sweep to the next (each step is an exact minimiser) */
    int conv2n = model_find_node(m, "conv2");
    const struct { decomp_method meth; int r, r2; } mono[] = {{DECOMP_CP, 6, 0}, {DECOMP_TUCKER2, 8, 3}};
    for (int k = 0; k < 2; ++k) {
        decomp_opts mo;
        decomp_opts_default(&mo);
        mo.tol = 0;
        mo.max_iter = 60;
        rc = decomp_layer(m, conv2n, mono[k].meth, mono[k].r, mono[k].r2, &mo, &r, &e);
        int up = rc == 0 && r.n_fit >= 2;
        for (int i = 1; up && i < r.n_fit; ++i)
            up = r.fit[i] >= r.fit[i - 1] - 1e-9;
        CHECK(up && fabs(r.fit[r.n_fit - 1] - (1 - r.weight_error)) < 1e-6,
              "%s on random conv2: fit non-decreasing over %d sweeps, ends at 1 - weight error (%.4f)",
              decomp_method_name(mono[k].meth), r.n_fit, rc ? -1.0 : r.weight_error);
        decomp_result_free(&r);
    }
    decomp_spectrum s;
    rc = decomp_spectrum_of(m, fc2, DECOMP_VIEW_DENSE, &s, &e);
    int desc = rc == 0 && s.n == 84;
    for (int i = 1; desc && i < s.n; ++i)
        desc = s.sigma[i] <= s.sigma[i - 1];
    CHECK(desc && fabs(s.energy[s.n - 1] - 1) < 1e-12, "fc2 spectrum: 84 descending values, energy ends at 1");
    /* Σσ² = ‖W‖²_F */
    double fro = 0, ss = 0;
    const float *W = weight_of(m, "fc2");
    for (int i = 0; i < 84 * 120; ++i) fro += (double)W[i] * W[i];
    for (int i = 0; rc == 0 && i < s.n; ++i) ss += s.sigma[i] * s.sigma[i];
    CHECK(fabs(ss - fro) < 1e-9 * fro, "Σσ² equals ‖W‖² (%.12g vs %.12g)", ss, fro);
    decomp_spectrum_free(&s);
    int conv2 = model_find_node(m, "conv2");
    const struct { decomp_view v; int rows, cols; } views[] = {
        {DECOMP_VIEW_MODE0, 16, 150}, {DECOMP_VIEW_MODE1, 6, 400}, {DECOMP_VIEW_SPATIAL, 30, 80}, {DECOMP_VIEW_SLICES, 5, 5}};
    for (int k = 0; k < 4; ++k) {
        rc = decomp_spectrum_of(m, conv2, views[k].v, &s, &e);
        CHECK(rc == 0 && s.rows == views[k].rows && s.cols == views[k].cols &&
                  s.n_mats == (views[k].v == DECOMP_VIEW_SLICES ? 96 : 1),
              "conv2 %s spectrum is %dx%d", decomp_view_name(views[k].v), views[k].rows, views[k].cols);
        decomp_spectrum_free(&s);
    }
    model_free(m);
}

int main(void)
{
    test_full_rank();
    test_dense_full_rank();
    test_exact_rank();
    test_costs();
    test_robustness();
    return check_done();
}
