/* test_evbmf.c — EVBMF against an independent numpy/scipy implementation (tests/evbmf_ref.py,
 * outputs committed in tests/data/evbmf_*) and on synthetic low-rank-plus-noise matrices whose
 * rank and noise variance are known. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rankscope/evbmf.h"
#include "testnet.h"

static double *read_f64(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    double *d = malloc(n * sizeof *d);
    size_t got = d ? fread(d, sizeof *d, n, f) : 0;
    fclose(f);
    if (got != n) {
        free(d);
        return NULL;
    }
    return d;
}

static void test_reference(void)
{
    const char *root = getenv("RS_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/evbmf_ref.txt", root ? root : "..");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "open %s", path);
    if (!f)
        return;
    char line[512];
    int matrices = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        char name[128];
        int rows, cols, rank;
        double s2, thr;
        if (sscanf(line, "%127s %d %d %lf %d %lf", name, &rows, &cols, &s2, &rank, &thr) != 6)
            continue;
        char mp[1200];
        snprintf(mp, sizeof mp, "%s/tests/data/evbmf_%s.f64", root ? root : "..", name);
        double *Y = read_f64(mp, (size_t)rows * cols);
        CHECK(Y != NULL, "%s: read %dx%d matrix", name, rows, cols);
        if (!Y)
            continue;
        evbmf_result r;
        rs_err e = {{0}};
        int rc = evbmf_estimate(Y, rows, cols, &r, &e);
        CHECK(rc == 0, "%s: evbmf_estimate (%s)", name, rc ? e.msg : "ok");
        if (rc == 0) {
            CHECK(r.rank == rank, "%s: rank %d == reference %d", name, r.rank, rank);
            CHECK(fabs(r.sigma2 - s2) <= 1e-3 * s2, "%s: sigma2 %.8g vs reference %.8g (1e-3 relative)", name,
                  r.sigma2, s2);
            CHECK(fabs(r.threshold - thr) <= 1e-3 * thr, "%s: threshold %.8g vs %.8g", name, r.threshold, thr);
            int shrunk_ok = 1;
            for (int h = 0; h < r.L; ++h)
                shrunk_ok &= h < r.rank ? (r.shrunk[h] > 0 && r.shrunk[h] < r.sv[h]) : r.shrunk[h] == 0;
            CHECK(shrunk_ok, "%s: kept values shrunk into (0, sv), others 0", name);
            ++matrices;
        }
        evbmf_result_free(&r);
        free(Y);
    }
    fclose(f);
    CHECK(matrices >= 5, "compared %d reference matrices (>= 5)", matrices);
}

static double gauss(uint64_t *st)
{
    double u = 0.5 * (testnet_rand(st) + 1.0) + 1e-12, v = 0.5 * (testnet_rand(st) + 1.0);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* Y = Σ_k s_k a_k b_kᵀ + noise·N(0,1), a and b random (not orthogonalised). */
static double *synthetic(int L, int M, int rank, double s, double noise, uint64_t seed)
{
    uint64_t st = seed;
    double *Y = calloc((size_t)L * M, sizeof *Y);
    double *a = malloc((size_t)L * sizeof *a), *b = malloc((size_t)M * sizeof *b);
    for (int k = 0; k < rank; ++k) {
        for (int i = 0; i < L; ++i) a[i] = gauss(&st) / sqrt(L);
        for (int j = 0; j < M; ++j) b[j] = gauss(&st) / sqrt(M);
        for (int i = 0; i < L; ++i)
            for (int j = 0; j < M; ++j)
                Y[(size_t)i * M + j] += s * (1.0 + 0.3 * k) * a[i] * b[j];
    }
    for (size_t i = 0; i < (size_t)L * M; ++i)
        Y[i] += noise * gauss(&st);
    free(a), free(b);
    return Y;
}

static void test_synthetic(void)
{
    static const struct { int L, M, rank; double s, noise; } cases[] = {
        {100, 200, 5, 80.0, 1.0}, {60, 60, 3, 30.0, 0.5}, {200, 50, 8, 40.0, 0.2}, {16, 150, 4, 20.0, 0.1},
        {50, 80, 0, 0.0, 2.0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        double *Y = synthetic(cases[c].L, cases[c].M, cases[c].rank, cases[c].s, cases[c].noise, 40 + c);
        evbmf_result r;
        rs_err e = {{0}};
        int rc = evbmf_estimate(Y, cases[c].L, cases[c].M, &r, &e);
        double s2 = cases[c].noise * cases[c].noise;
        CHECK(rc == 0 && r.rank == cases[c].rank, "%dx%d rank %d + noise %.1f: EVBMF rank %d", cases[c].L,
              cases[c].M, cases[c].rank, cases[c].noise, r.rank);
        CHECK(rc == 0 && fabs(r.sigma2 - s2) < 0.15 * s2, "%dx%d: sigma2 %.4g close to the true %.4g (15%%)",
              cases[c].L, cases[c].M, r.sigma2, s2);
        evbmf_result_free(&r);
        free(Y);
    }
    /* the widely copied bug gives a huge sigma or rank 1; make sure a clear rank 5 stays 5 after
     * transposing (L > M path) and scaling (EVBMF is scale-equivariant: sigma2 scales by c²) */
    double *Y = synthetic(70, 120, 5, 50.0, 1.0, 7), *T = malloc(70 * 120 * sizeof *T);
    for (int i = 0; i < 70; ++i)
        for (int j = 0; j < 120; ++j)
            T[(size_t)j * 70 + i] = 3.0 * Y[(size_t)i * 120 + j];
    evbmf_result a, b;
    rs_err e;
    int rc = evbmf_estimate(Y, 70, 120, &a, &e) | evbmf_estimate(T, 120, 70, &b, &e);
    CHECK(rc == 0 && a.rank == 5 && b.rank == 5 && fabs(b.sigma2 - 9 * a.sigma2) < 1e-6 * b.sigma2,
          "transposed and scaled ×3: same rank, sigma2 ×9 (%.6g vs %.6g)", b.sigma2, 9 * a.sigma2);
    evbmf_result_free(&a);
    evbmf_result_free(&b);
    free(Y), free(T);

    double Z[12] = {0};
    rc = evbmf_estimate(Z, 3, 4, &a, &e);
    CHECK(rc == 0 && a.rank == 0, "zero matrix: rank 0, no crash");
    evbmf_result_free(&a);
    /* exactly low rank, no noise: every nonzero component kept */
    double E[4 * 6];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 6; ++j)
            E[i * 6 + j] = (i + 1.0) * (j - 2.5) + (i == 0) * (j % 2);
    rc = evbmf_estimate(E, 4, 6, &a, &e);
    CHECK(rc == 0 && a.rank == 2, "noiseless rank-2 4x6: rank %d", a.rank);
    evbmf_result_free(&a);
    double bad[3] = {1, 2, 3};
    CHECK(evbmf_from_sv(bad, 3, 5, &a, &e) == -1 && strstr(e.msg, "descending"), "ascending values rejected: %s",
          e.msg);
}

static void test_layers(void)
{
    rs_model *m = testnet_lenet(3);
    rs_err e = {{0}};
    int fc1 = model_find_node(m, "fc1"), conv2 = model_find_node(m, "conv2"), r = 0, r2 = 0;
    int rc = evbmf_layer_rank(m, fc1, DECOMP_SVD, 1, &r, NULL, &e);
    CHECK(rc == 0 && r >= 1 && r <= 120, "fc1 EVBMF rank %d in 1..120 (%s)", r, rc ? e.msg : "ok");
    rc = evbmf_layer_rank(m, conv2, DECOMP_CP, 8, &r, NULL, &e);
    CHECK(rc == 0 && r % 8 == 0 && r >= 8, "conv2 cp EVBMF rank %d, a multiple of 8", r);
    /* mode ranks by hand: the same numbers from evbmf_estimate on the unfoldings */
    double *A;
    int rows, cols, m0 = -1, m1 = -1;
    evbmf_result er;
    if (decomp_matrix(m, conv2, DECOMP_VIEW_MODE0, &A, &rows, &cols, &e) == 0 &&
        evbmf_estimate(A, rows, cols, &er, &e) == 0) {
        m0 = er.rank;
        evbmf_result_free(&er);
    }
    free(A);
    if (decomp_matrix(m, conv2, DECOMP_VIEW_MODE1, &A, &rows, &cols, &e) == 0 &&
        evbmf_estimate(A, rows, cols, &er, &e) == 0) {
        m1 = er.rank;
        evbmf_result_free(&er);
    }
    free(A);
    rc = evbmf_layer_rank(m, conv2, DECOMP_TUCKER2, 1, &r, &r2, &e);
    CHECK(rc == 0 && r == (m0 < 1 ? 1 : m0) && r2 == (m1 < 1 ? 1 : m1),
          "tucker2 EVBMF ranks = mode-0 / mode-1 ranks (%d,%d) vs (%d,%d)", r, r2, m0, m1);
    rc = evbmf_layer_rank(m, conv2, DECOMP_SVD, 1, &r, NULL, &e);
    CHECK(rc == -1, "svd on conv2 refused: %s", e.msg);
    model_free(m);
}

int main(void)
{
    test_reference();
    test_synthetic();
    test_layers();
    return check_done();
}
