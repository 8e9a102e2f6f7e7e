/* test_wino.c — the Winograd F(2×2, 3×3) convolution kernel against the naive double-precision
 * reference convolution (ref_ops.c), on every ISA this CPU runs: odd and even sizes, padding 1
 * and 0 (and one-sided, and 2 on one side), rows wider than 32 columns, channel counts that are
 * not multiples of the vector width, bias and the fused activations (or adding into the output),
 * one image and a batch of 17 (tile blocks then span images), scratch filled with NaN beforehand.
 * Maps of 8 and 4 tiles a row (AVX-512 packs 2 or 4 tile rows into a vector) run twice on
 * AVX-512: packed (the default) and row by row ($RANKSCOPE_WINO_PACK=0), with tile-row counts that
 * leave a partial group at the end of a block.
 * Tolerance: max relative error (ref_max_rel_err_d) 1e-5 with inputs and weights of magnitude
 * <= 1 — the transforms only add and halve, so fp32 rounding stays within a few ulps of the dot
 * product. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rankscope/kernels.h"
#include "ref_ops.h"

static unsigned long long rng = 88172645463325252ull;
static double urand(void)
{
    return ref_urand(&rng);
}

typedef struct shape {
    int C, M, H, W, pt, pl, pb, pr, act;
} shape;

static void run_shape(kern_isa isa, const shape *sh, int nimg)
{
    const int C = sh->C, M = sh->M, H = sh->H, W = sh->W;
    const int Ho = H + sh->pt + sh->pb - 2, Wo = W + sh->pl + sh->pr - 2;
    const size_t nin = (size_t)C * H * W, nout = (size_t)M * Ho * Wo;
    float *x = malloc(nin * nimg * sizeof(float)), *w = malloc((size_t)M * C * 9 * sizeof(float));
    float *b = malloc((size_t)M * sizeof(float)), *u = malloc((size_t)16 * M * C * sizeof(float));
    double *xd = malloc(nin * nimg * sizeof(double)), *wd = malloc((size_t)M * C * 9 * sizeof(double));
    double *bd = malloc((size_t)M * sizeof(double)), *yd = malloc(nout * nimg * sizeof(double));
    float *y = malloc((nout + 1) * nimg * sizeof(float));
    size_t ns = kern_wino3x3_scratch(isa, C, M, Ho, Wo);
    float *scratch = aligned_alloc(64, (ns * sizeof(float) + 63) / 64 * 64);
    for (size_t i = 0; i < nin * nimg; ++i)
        xd[i] = x[i] = (float)urand();
    for (size_t i = 0; i < (size_t)M * C * 9; ++i)
        wd[i] = w[i] = (float)(urand() / sqrt(9.0 * C) * 3.0);
    for (int i = 0; i < M; ++i)
        bd[i] = b[i] = (float)urand();
    const int pads[4] = {sh->pt, sh->pl, sh->pb, sh->pr};
    ref_conv2d_d(xd, nimg, C, H, W, wd, bd, M, 3, 3, 1, 1, 1, 1, pads, 1, yd, Ho, Wo);
    const float lo = sh->act == 2 ? -0.25f : 0.0f, hi = sh->act == 2 ? 0.5f : 0.0f;
    for (size_t i = 0; i < nout * nimg; ++i) {
        if (sh->act == 1 && yd[i] < 0)
            yd[i] = 0;
        if (sh->act == 2)
            yd[i] = yd[i] < lo ? lo : yd[i] > hi ? hi : yd[i];
    }
    /* act 3 adds into what the output holds */
    for (int n = 0; n < nimg; ++n)
        for (size_t i = 0; i < nout; ++i) {
            y[n * (nout + 1) + i] = sh->act == 3 ? (float)urand() : NAN;
            if (sh->act == 3)
                yd[n * nout + i] += y[n * (nout + 1) + i];
        }
    kern_wino3x3_weights(M, C, w, u);
    double err = 0;
    for (int n = 0; n < nimg; ++n)
        y[n * (nout + 1) + nout] = 12345.0f; /* nothing past an image's output is written */
    /* scratch holding garbage must not matter */
    for (size_t i = 0; i < ns; ++i)
        scratch[i] = NAN;
    kern_wino3x3(isa, nimg, C, H, W, x, nin, M, u, b, sh->pt, sh->pl, Ho, Wo, sh->act, lo, hi, scratch, y, nout + 1);
    for (int n = 0; n < nimg; ++n) {
        float *yn = y + n * (nout + 1);
        double e = ref_max_rel_err_d(yn, yd + n * nout, nout);
        err = isnan(e) || e > err ? e : err;
        CHECK(yn[nout] == 12345.0f, "%s C=%d M=%d %dx%d image %d: nothing written past the output",
              kern_isa_name(isa), C, M, H, W, n);
    }
    CHECK(err <= 1e-5, "%s C=%d M=%d H=%d W=%d pads %d,%d,%d,%d act %d, %d images: max rel err %.2g <= 1e-5",
          kern_isa_name(isa), C, M, H, W, sh->pt, sh->pl, sh->pb, sh->pr, sh->act, nimg, err);
    free(x), free(w), free(b), free(u), free(xd), free(wd), free(bd), free(yd), free(y), free(scratch);
}

int main(void)
{
    static const shape shapes[] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 0},     {3, 5, 7, 9, 1, 1, 1, 1, 0},      {17, 33, 15, 13, 1, 1, 1, 1, 1},
        {32, 32, 32, 32, 1, 1, 1, 1, 1}, {20, 19, 8, 8, 0, 0, 0, 0, 0},    {48, 40, 11, 5, 0, 0, 0, 0, 2},
        {64, 64, 16, 16, 1, 1, 1, 1, 1}, {33, 70, 9, 17, 1, 0, 0, 1, 1},   {128, 96, 4, 4, 1, 1, 1, 1, 0},
        {16, 24, 3, 3, 0, 0, 0, 0, 1},   {40, 36, 34, 6, 2, 1, 0, 2, 0},
        /* rows wider than one vector of tiles (W > 32), left pad 2, a right pad wider than the
         * tiles read */
        {5, 7, 6, 45, 1, 1, 1, 1, 2},    {3, 4, 5, 66, 0, 2, 1, 0, 1},     {2, 3, 4, 33, 1, 1, 1, 3, 0},
        /* accumulating into the output (training's input gradient) */
        {16, 16, 32, 32, 1, 1, 1, 1, 3}, {9, 5, 7, 11, 2, 0, 2, 2, 3},     {5, 7, 6, 45, 1, 1, 1, 1, 3},
        /* 8 tiles a row (15 or 16 output columns) and 4 (7 or 8): odd sizes, pads 0 and 2, few
         * tile rows (3 and 5: a partial group of tile rows) */
        {16, 16, 16, 16, 1, 1, 1, 1, 1}, {8, 12, 15, 15, 1, 1, 1, 1, 0},   {6, 6, 13, 16, 2, 2, 1, 0, 3},
        {7, 5, 16, 18, 0, 0, 0, 0, 2},   {4, 4, 5, 16, 1, 1, 1, 1, 1},     {64, 64, 8, 8, 1, 1, 1, 1, 1},
        {10, 9, 7, 7, 1, 1, 1, 1, 0},    {5, 6, 9, 10, 0, 0, 0, 0, 3},     {12, 8, 8, 6, 2, 2, 2, 2, 1},
        {4, 4, 9, 8, 1, 1, 1, 1, 0},
    };
    const kern_isa isas[] = {KERN_SCALAR, KERN_AVX2, KERN_AVX512};
    for (int k = 0; k < 3; ++k) {
        if (!kern_supported(isas[k])) {
            printf("# %s not supported by this CPU: skipped\n", kern_isa_name(isas[k]));
            continue;
        }
        for (int pack = 1; pack >= (isas[k] == KERN_AVX512 ? 0 : 1); --pack) {
            if (pack)
                unsetenv("RANKSCOPE_WINO_PACK");
            else
                setenv("RANKSCOPE_WINO_PACK", "0", 1);
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i)
                for (int nimg = 1; nimg <= 17; nimg += 16)
                    run_shape(isas[k], &shapes[i], nimg);
        }
    }
    return check_done();
}
