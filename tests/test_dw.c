/* test_dw.c — kern_dw3x3 (depthwise 3×3) on every ISA this CPU runs, against the naive
 * double-precision convolution (ref_conv2d_d, group = C): the geometry of the flat AVX-512
 * kernel (stride 1, pads 1, output as large as the input, up to 64 pixels: several rows per
 * vector) and of the row kernels (larger maps, stride 2 with even and odd sizes, other pads):
 * map sizes 1..66, one channel and 17, bias or none, no activation, ReLU and a [-0.25, 0.5]
 * clamp. AVX-512 runs each shape three ways: its default choice and each path forced by
 * $RANKSCOPE_DW — "cl" (16 channels along the vector, up to 256 input pixels by default: shapes
 * of 16-48 channels, so whole groups and a tail of channels left to the row kernels) and "rows". The input is an exact-size allocation (ASan sees a read outside it), 16 floats after
 * each output must stay untouched, and a NaN input stays NaN under the clamp. Tolerance: max
 * relative error (ref_max_rel_err_d) 1e-5 — a 9-term fp32 dot product of values of magnitude
 * <= 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rankscope/kernels.h"
#include "ref_ops.h"

static unsigned long long rng = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    return ref_urand(&rng);
}

typedef struct shape {
    int C, H, W, stride, pt, pl, pb, pr;
} shape;

static void run_shape(kern_isa isa, const shape *sh, int act, int with_bias)
{
    const int C = sh->C, H = sh->H, W = sh->W, s = sh->stride;
    const int pads[4] = {sh->pt, sh->pl, sh->pb, sh->pr};
    const int Ho = ref_out_size(H, 3, s, 1, sh->pt, sh->pb, 0), Wo = ref_out_size(W, 3, s, 1, sh->pl, sh->pr, 0);
    const size_t nin = (size_t)C * H * W, nout = (size_t)C * Ho * Wo;
    float *x = malloc(nin * sizeof(float)), *w = malloc((size_t)9 * C * sizeof(float));
    float *b = malloc((size_t)C * sizeof(float)), *y = malloc((nout + 16) * sizeof(float));
    double *xd = malloc(nin * sizeof(double)), *wd = malloc((size_t)9 * C * sizeof(double));
    double *bd = malloc((size_t)C * sizeof(double)), *yd = malloc(nout * sizeof(double));
    float *scratch = calloc(kern_dw3x3_scratch(Ho, Wo, s), sizeof(float));
    for (size_t i = 0; i < nin; ++i)
        xd[i] = x[i] = (float)urand();
    for (int i = 0; i < 9 * C; ++i)
        wd[i] = w[i] = (float)(urand() / 3.0);
    for (int i = 0; i < C; ++i)
        bd[i] = b[i] = with_bias ? (float)urand() : 0.0f;
    ref_conv2d_d(xd, 1, C, H, W, wd, bd, C, 3, 3, s, s, 1, 1, pads, C, yd, Ho, Wo);
    const float lo = act == 0 ? -INFINITY : act == 1 ? 0.0f : -0.25f, hi = act == 2 ? 0.5f : INFINITY;
    for (size_t i = 0; i < nout; ++i)
        yd[i] = yd[i] < lo ? lo : yd[i] > hi ? hi : yd[i];
    for (int k = 0; k < 16; ++k)
        y[nout + k] = 12345.0f;
    kern_dw3x3(isa, C, H, W, x, w, with_bias ? b : NULL, s, sh->pt, sh->pl, Ho, Wo, lo, hi, scratch, y);
    const double err = ref_max_rel_err_d(y, yd, nout);
    int guard = 1;
    for (int k = 0; k < 16; ++k)
        guard &= y[nout + k] == 12345.0f;
    CHECK(err <= 1e-5 && guard,
          "%s C=%d %dx%d stride %d pads %d,%d,%d,%d -> %dx%d act %d bias %d: max rel err %.2g <= 1e-5, nothing "
          "written past the output",
          kern_isa_name(isa), C, H, W, s, sh->pt, sh->pl, sh->pb, sh->pr, Ho, Wo, act, with_bias, err);
    /* a NaN at the centre of the input: the outputs whose window holds it are NaN, clamped or not */
    if (act == 2 && H >= 3 && W >= 3) {
        const int cy = H / 2, cx = W / 2;
        x[(size_t)cy * W + cx] = NAN;
        kern_dw3x3(isa, C, H, W, x, w, b, s, sh->pt, sh->pl, Ho, Wo, lo, hi, scratch, y);
        const int oy = (cy + sh->pt) / s, ox = (cx + sh->pl) / s; /* window rows oy·s − pt .. + 2 hold cy */
        if (oy < Ho && ox < Wo)
            CHECK(isnan(y[(size_t)oy * Wo + ox]), "%s C=%d %dx%d stride %d: a NaN input gives a NaN output under the clamp",
                  kern_isa_name(isa), C, H, W, s);
    }
    free(x), free(w), free(b), free(y), free(xd), free(wd), free(bd), free(yd), free(scratch);
}

int main(void)
{
    static const shape shapes[] = {
        /* stride 1, pads 1 (output = input): flat vectors up to 8×8 (and 7×9, 1×64), rows above */
        {1, 1, 1, 1, 1, 1, 1, 1},   {1, 2, 3, 1, 1, 1, 1, 1},   {3, 4, 4, 1, 1, 1, 1, 1},   {17, 8, 8, 1, 1, 1, 1, 1},
        {2, 7, 5, 1, 1, 1, 1, 1},   {5, 16, 16, 1, 1, 1, 1, 1}, {2, 15, 17, 1, 1, 1, 1, 1}, {3, 32, 32, 1, 1, 1, 1, 1},
        {1, 33, 31, 1, 1, 1, 1, 1}, {2, 3, 66, 1, 1, 1, 1, 1},  {1, 64, 64, 1, 1, 1, 1, 1}, {3, 7, 9, 1, 1, 1, 1, 1},
        {2, 1, 64, 1, 1, 1, 1, 1},  {2, 5, 13, 1, 1, 1, 1, 1},  {4, 2, 2, 1, 1, 1, 1, 1},
        /* stride 2, pads 1 on every side or top/left only (PyTorch's padding=1 on even maps) */
        {1, 16, 16, 2, 1, 1, 1, 1}, {17, 16, 16, 2, 1, 1, 0, 0}, {3, 32, 32, 2, 1, 1, 1, 1}, {2, 31, 32, 2, 1, 1, 1, 0},
        {2, 15, 15, 2, 1, 1, 1, 1}, {3, 5, 16, 2, 1, 1, 1, 1},  {1, 64, 64, 2, 1, 1, 1, 1}, {2, 6, 96, 2, 1, 1, 1, 1},
        {1, 2, 16, 2, 1, 1, 1, 1},  {4, 8, 8, 2, 1, 1, 1, 1},   {4, 4, 4, 2, 1, 1, 1, 1},   {2, 17, 18, 2, 1, 1, 1, 1},
        /* other pads, output smaller than the input */
        {3, 16, 16, 1, 0, 0, 0, 0}, {3, 16, 16, 1, 2, 2, 2, 2}, {2, 16, 16, 1, 1, 1, 0, 0}, {2, 16, 16, 2, 0, 0, 0, 0},
        {2, 16, 16, 2, 2, 1, 1, 1},
        /* channels-last groups of 16 (+ a tail), small and odd maps, both strides */
        {16, 1, 1, 1, 1, 1, 1, 1},  {32, 4, 4, 1, 1, 1, 1, 1},  {33, 8, 8, 1, 1, 1, 1, 1},  {48, 3, 5, 1, 1, 1, 1, 1},
        {16, 16, 16, 1, 1, 1, 1, 1}, {20, 7, 9, 1, 1, 1, 1, 1}, {32, 8, 8, 2, 1, 1, 1, 1},  {17, 8, 8, 2, 1, 1, 0, 0},
        {32, 9, 7, 2, 1, 1, 1, 1},  {16, 2, 2, 2, 1, 1, 1, 1},  {31, 16, 16, 2, 1, 1, 1, 1}, {16, 1, 17, 2, 1, 1, 1, 1},
        {16, 3, 3, 2, 1, 1, 0, 0},  {32, 20, 20, 2, 1, 1, 1, 1}, {16, 6, 6, 1, 0, 0, 0, 0},
    };
    static const char *const dw_modes[] = {NULL, "cl", "rows"};
    const kern_isa isas[] = {KERN_SCALAR, KERN_AVX2, KERN_AVX512};
    for (int k = 0; k < 3; ++k) {
        if (!kern_supported(isas[k])) {
            printf("# %s not supported by this CPU: skipped\n", kern_isa_name(isas[k]));
            continue;
        }
        for (int mode = 0; mode < (isas[k] == KERN_AVX512 ? 3 : 1); ++mode) {
            if (dw_modes[mode])
                setenv("RANKSCOPE_DW", dw_modes[mode], 1);
            else
                unsetenv("RANKSCOPE_DW");
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i)
                for (int act = 0; act < 3; ++act)
                    run_shape(isas[k], &shapes[i], act, act != 1);
        }
    }
    return check_done();
}
