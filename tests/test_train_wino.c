/* test_train_wino.c — training's Winograd passes (forward, input gradient, weight gradient of
 * 3×3 stride-1 convolutions, grad_conv.c) by F(2×2, 3×3) and by F(4×4, 3×3), and the direct ones
 * (the padded GEMMs), each against a naive double-precision reference on the same tape entry: odd
 * and even sizes (32×32, 16×16, 8×8, 7×9, 5×5, ...), pads 0, 1 and 2 and one-sided ones, channel
 * counts that are not multiples of the vector width, ResNet-20's three stages, one image and
 * several (the tile blocks then span images; 40 channels on 13×11: F(4×4)'s blocks of 16 tile rows
 * of 3 tiles end inside a vector), the input gradient written fresh and added into a
 * buffer that already holds another reader's gradient. Below 6 input or output channels the tape
 * entry keeps the direct passes (faster there); the comparison forces every variant anyway.
 *
 * Error measure: per element |got − exact| / Σ|terms| (the sum of the absolute values of the dot
 * product's terms, in double: w·x for the forward, w·dY for the input gradient, x·dY for the
 * weight gradient; plus |prior| for the added input gradient): an fp32 dot product of n terms is
 * within ~n·2⁻²⁴ of that scale in the worst case, ~√n·2⁻²⁴ typically. Tolerances (inputs and dY
 * uniform in [−1, 1), weights scaled by 1/√(9·Cin)):
 *  - direct and F(2×2, 3×3) 2e-5: their transforms only add and halve, a few ulps of the scale;
 *  - F(4×4, 3×3) 3e-5: Bᵀ's and Aᵀ's entries reach 5 and 8 and G's ⅙ and 1/24 are inexact,
 *    so a transformed tile sums terms up to ~100 times the inputs' magnitude and each product
 *    carries that much more rounding relative to the terms (measured on these shapes, every ISA:
 *    2.7e-6 forward, 3.8e-6 input gradient, 2.1e-6 weight gradient; some 1e-5 relative is what
 *    F(4×4) in fp32 is known for).
 * A sign flipped in any row of F(4×4)'s Bᵀ, Aᵀ or G makes errors of order 1 (tried when writing
 * this: each of those mutations failed every F(4×4) check). The bias gradient does not depend on
 * the variant and must match bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ref_ops.h"
#include "testnet.h"
#include "rankscope/model.h"
#include "../src/engine/train_internal.h"

static unsigned long long rng_state = 88172645463325252ull;
static float srand1(void)
{
    return (float)(2.0 * ref_urand(&rng_state) - 1.0);
}

typedef struct shape {
    int C, M, H, W, pt, pl, pb, pr, n;
} shape;

static float *floats(size_t n)
{
    return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
}

/* Naive double references: y (conv + bias), dx, dw, and each element's Σ|terms|. */
static void reference(const shape *sh, const tn_node *t, int n, const float *x, const float *w, const float *b,
                      const float *dy, double *y, double *ys, double *dx, double *dxs, double *dw, double *dws)
{
    const int C = sh->C, M = sh->M, H = t->ih, W = t->iw, Ho = t->oh, Wo = t->ow;
    memset(dx, 0, (size_t)n * t->xsz * sizeof *dx);
    memset(dxs, 0, (size_t)n * t->xsz * sizeof *dxs);
    memset(dw, 0, (size_t)M * C * 9 * sizeof *dw);
    memset(dws, 0, (size_t)M * C * 9 * sizeof *dws);
    for (int i = 0; i < n; ++i)
        for (int m = 0; m < M; ++m)
            for (int oy = 0; oy < Ho; ++oy)
                for (int ox = 0; ox < Wo; ++ox) {
                    const size_t yi = (size_t)i * t->ysz + ((size_t)m * Ho + oy) * Wo + ox;
                    double acc = b[m], sa = fabs((double)b[m]);
                    for (int c = 0; c < C; ++c)
                        for (int ki = 0; ki < 3; ++ki)
                            for (int kj = 0; kj < 3; ++kj) {
                                const int iy = oy - sh->pt + ki, ix = ox - sh->pl + kj;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                const size_t xi = (size_t)i * t->xsz + ((size_t)c * H + iy) * W + ix;
                                const size_t wi = (((size_t)m * C + c) * 3 + ki) * 3 + kj;
                                acc += (double)w[wi] * x[xi];
                                sa += fabs((double)w[wi] * x[xi]);
                                dx[xi] += (double)w[wi] * dy[yi];
                                dxs[xi] += fabs((double)w[wi] * dy[yi]);
                                dw[wi] += (double)x[xi] * dy[yi];
                                dws[wi] += fabs((double)x[xi] * dy[yi]);
                            }
                    y[yi] = acc;
                    ys[yi] = sa;
                }
}

/* max over elements of |got − want| / max(scale, 1e-30) */
static double scaled_err(const float *got, const double *want, const double *scale, size_t n)
{
    double e = 0;
    for (size_t k = 0; k < n; ++k) {
        double d = fabs((double)got[k] - want[k]) / (scale[k] > 1e-30 ? scale[k] : 1e-30);
        if (!(d <= e)) /* NaN counts */
            e = isnan(d) ? INFINITY : d;
    }
    return e;
}

enum { NV = 3 };
static const char *const vname[NV] = {"direct", "F(2x2,3x3)", "F(4x4,3x3)"};
static const int vbits[NV] = {0, TN_WINO_FWD | TN_WINO_DX | TN_WINO_DW,
                              TN_WINO_FWD | TN_WINO_DX | TN_WINO_DW | TN_WINO_F4};
static const double vtol[NV] = {2e-5, 2e-5, 3e-5};
static double worst[NV][3];

static void run_shape(kern_isa isa, const shape *sh)
{
    static uint64_t seed = 1;
    const int pads[4] = {sh->pt, sh->pl, sh->pb, sh->pr};
    rs_model *m = testnet_conv_pads(sh->C, sh->H, sh->W, sh->M, 3, 3, 1, 1, pads, 1, 1, 1, 1, seed++);
    rs_err e = {{0}};
    tn_node t;
    const int k = 0; /* the model's one node */
    if (!CHECK(m && tn_compile(m, k, isa, &t, &e) == 0, "%s conv %dx%dx%d -> %d compiles (%s)",
               kern_isa_name(isa), sh->C, sh->H, sh->W, sh->M, e.msg)) {
        model_free(m);
        return;
    }
    const int n = sh->n;
    const size_t nx = (size_t)n * t.xsz, ny = (size_t)n * t.ysz, nw = (size_t)sh->M * sh->C * 9;
    float *x = floats(nx), *dy = floats(ny), *y[NV], *dx[NV], *dxa[NV], *dw[NV], *db[NV];
    float *col = floats(t.col_floats + 64);
    int *boff = malloc((t.boff_ints + 1) * sizeof *boff);
    for (size_t i = 0; i < nx; ++i)
        x[i] = srand1();
    for (size_t i = 0; i < ny; ++i)
        dy[i] = srand1();
    float *prior = floats(nx);
    for (size_t i = 0; i < nx; ++i)
        prior[i] = srand1();
    double *ry = malloc(ny * sizeof *ry), *rys = malloc(ny * sizeof *rys), *rx = malloc(nx * sizeof *rx);
    double *rxs = malloc(nx * sizeof *rxs), *rxa = malloc(nx * sizeof *rxa), *rxas = malloc(nx * sizeof *rxas);
    double *rw = malloc(nw * sizeof *rw), *rws = malloc(nw * sizeof *rws);
    const rs_value *wv = &m->values[m->nodes[k].in[1]], *bv = &m->values[m->nodes[k].in[2]];
    reference(sh, &t, n, x, wv->f, bv->f, dy, ry, rys, rx, rxs, rw, rws);
    for (size_t i = 0; i < nx; ++i)
        rxa[i] = rx[i] + prior[i], rxas[i] = rxs[i] + fabs((double)prior[i]);
    float *act[8] = {0};
    act[m->input] = x;
    for (int v = 0; v < NV; ++v) {
        tn_node tv = t;
        tv.wino = vbits[v];
        y[v] = floats(ny), dx[v] = floats(nx), dxa[v] = floats(nx);
        dw[v] = calloc(nw, sizeof(float)), db[v] = calloc((size_t)sh->M, sizeof(float));
        for (size_t i = 0; i < t.col_floats + 64; ++i) /* scratch holding garbage must not matter */
            col[i] = NAN;
        for (size_t i = 0; i < nx; ++i)
            dx[v][i] = NAN; /* fresh: written, not added to */
        memcpy(dxa[v], prior, nx * sizeof(float));
        tn_scratch s = {.col = col, .boff = boff};
        act[m->output] = y[v];
        tn_pass f = {.t = &tv, .m = m, .act = act, .ns = n, .s = &s, .x = x, .y = y[v]};
        grad_fwd_conv(&f);
        tn_pass b = {.t = &tv, .m = m, .act = act, .ns = n, .s = &s, .dy = dy, .dx = dx[v], .dx_fresh = 1,
                     .dw = dw[v], .db = db[v]};
        grad_bwd_conv(&b);
        b.dx = dxa[v], b.dx_fresh = 0, b.dw = NULL, b.db = NULL;
        grad_bwd_conv(&b);
    }
    const char *nm = kern_isa_name(isa);
    const char *w4 = getenv("RANKSCOPE_WINO4");
    const int want = sh->C >= 6 && sh->M >= 6 ? vbits[(w4 && w4[0] == '0') ? 1 : 2] : 0;
    CHECK(t.wino == want, "%s C=%d M=%d %dx%d pads %d,%d,%d,%d: the tape entry %s the Winograd passes", nm, sh->C,
          sh->M, sh->H, sh->W, sh->pt, sh->pl, sh->pb, sh->pr, want ? "takes" : "leaves");
    for (int v = 0; v < NV; ++v) {
        const double ey = scaled_err(y[v], ry, rys, ny), ex = scaled_err(dx[v], rx, rxs, nx);
        const double ea = scaled_err(dxa[v], rxa, rxas, nx), ew = scaled_err(dw[v], rw, rws, nw);
        const double tol = vtol[v];
        const double es[3] = {ey, ex > ea ? ex : ea, ew};
        for (int q = 0; q < 3; ++q)
            if (!(es[q] <= worst[v][q]))
                worst[v][q] = es[q];
        CHECK(ey <= tol, "%s %s C=%d M=%d %dx%d pads %d,%d,%d,%d, %d images: forward err %.2g <= %g", nm, vname[v],
              sh->C, sh->M, sh->H, sh->W, sh->pt, sh->pl, sh->pb, sh->pr, n, ey, tol);
        CHECK(ex <= tol && ea <= tol,
              "%s %s C=%d M=%d %dx%d pads %d,%d,%d,%d, %d images: input gradient err %.2g written, %.2g added <= %g",
              nm, vname[v], sh->C, sh->M, sh->H, sh->W, sh->pt, sh->pl, sh->pb, sh->pr, n, ex, ea, tol);
        CHECK(ew <= tol, "%s %s C=%d M=%d %dx%d pads %d,%d,%d,%d, %d images: weight gradient err %.2g <= %g", nm,
              vname[v], sh->C, sh->M, sh->H, sh->W, sh->pt, sh->pl, sh->pb, sh->pr, n, ew, tol);
        CHECK(memcmp(db[0], db[v], (size_t)sh->M * sizeof(float)) == 0,
              "%s %s C=%d M=%d %dx%d: bias gradient bit-identical", nm, vname[v], sh->C, sh->M, sh->H, sh->W);
    }
    for (int v = 0; v < NV; ++v)
        free(y[v]), free(dx[v]), free(dxa[v]), free(dw[v]), free(db[v]);
    free(ry), free(rys), free(rx), free(rxs), free(rxa), free(rxas), free(rw), free(rws);
    free(x), free(dy), free(prior), free(col), free(boff);
    model_free(m);
}

int main(void)
{
    static const shape shapes[] = {
        {3, 4, 7, 9, 1, 1, 1, 1, 1},      {3, 4, 7, 9, 1, 1, 1, 1, 5},    {9, 5, 5, 11, 0, 0, 0, 0, 3},
        {6, 7, 8, 6, 2, 1, 0, 2, 1},      {5, 3, 9, 13, 1, 2, 2, 0, 2},   {17, 33, 15, 13, 1, 1, 1, 1, 2},
        {16, 16, 32, 32, 1, 1, 1, 1, 2},  {32, 32, 16, 16, 1, 1, 1, 1, 3}, {64, 64, 8, 8, 1, 1, 1, 1, 9},
        {64, 64, 8, 8, 1, 1, 1, 1, 1},    {7, 9, 7, 9, 1, 1, 1, 1, 3},     {10, 6, 5, 5, 2, 2, 2, 2, 2},
        {6, 10, 5, 5, 0, 0, 0, 0, 4},     {20, 12, 9, 7, 2, 0, 1, 2, 3},   {16, 16, 32, 32, 1, 1, 1, 1, 1},
        {12, 20, 6, 18, 0, 2, 2, 0, 2},   {40, 40, 13, 11, 1, 1, 1, 1, 6},
    };
    const kern_isa isas[] = {KERN_SCALAR, KERN_AVX2, KERN_AVX512};
    for (int k = 0; k < 3; ++k) {
        if (!kern_supported(isas[k])) {
            printf("# %s not supported by this CPU: skipped\n", kern_isa_name(isas[k]));
            continue;
        }
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i)
            run_shape(isas[k], &shapes[i]);
    }
    for (int v = 0; v < NV; ++v)
        printf("# %s worst errors: forward %.2g, input gradient %.2g, weight gradient %.2g (tolerance %g)\n",
               vname[v], worst[v][0], worst[v][1], worst[v][2], vtol[v]);
    return check_done();
}
