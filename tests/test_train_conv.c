/* test_train_conv.c — training's non-Winograd convolution passes (grad_conv.c, grad_phase.c: the
 * forward, the input gradient and the weight gradient) against a naive double-precision reference
 * written here: strides 2 (and 3 × 2) by the polyphase planes, 1×1 stride-2 shortcuts, stride-1
 * convolutions over padded planes (the first layer's 3 → 16), a dilated one (im2col), grouped
 * ones; odd and even sizes, pads 0, 1, 2 and one-sided, channel counts that are not multiples
 * of 8 or 16, one image and many. The input gradient is checked written fresh (the buffer full of
 * NaN beforehand) and added into a buffer that already holds another reader's gradient; the
 * weight gradient added to a prior value; the workspace filled with NaN before each pass.
 *
 * Tolerance: max relative error (relative to max(1, |reference|)) 2e-5, inputs and dY uniform in
 * [−1, 1), weights scaled by 1/√(Cin/g·kh·kw): each output is one fp32 dot product of at most
 * 9·64 (forward, input gradient) or 9·16·16 (weight gradient, per image, summed over ≤ 9 images)
 * terms; the rounding of such sums is a few ulps of the terms' magnitude, ≤ ~1e-6 relative here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ref_ops.h"
#include "testnet.h"
#include "rankscope/model.h"
#include "../src/engine/train_internal.h"

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;
static float srand1(void)
{
    return (float)(2.0 * ref_urand(&rng_state) - 1.0);
}

typedef struct shape {
    int C, M, H, W, kh, kw, sh, sw, pt, pl, pb, pr, dil, group, n;
} shape;

static float *floats(size_t n)
{
    return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
}

/* dx[i][c][iy][ix] = Σ W[o][c'][ki][kj]·dy[i][o][oy][ox] over the taps that read (iy, ix);
 * dw[o][c'][ki][kj] = Σ dy[i][o][oy][ox]·x[i][c][iy][ix] over the images and output pixels. */
static void ref_backward(const shape *s, int OH, int OW, const float *x, const float *w, const float *dy, double *dx,
                         double *dw)
{
    const int cg = s->C / s->group, mg = s->M / s->group, khw = s->kh * s->kw;
    memset(dx, 0, (size_t)s->n * s->C * s->H * s->W * sizeof *dx);
    memset(dw, 0, (size_t)s->M * cg * khw * sizeof *dw);
    for (int i = 0; i < s->n; ++i)
        for (int o = 0; o < s->M; ++o)
            for (int oy = 0; oy < OH; ++oy)
                for (int ox = 0; ox < OW; ++ox) {
                    const double g = dy[(((size_t)i * s->M + o) * OH + oy) * OW + ox];
                    for (int c = 0; c < cg; ++c)
                        for (int ki = 0; ki < s->kh; ++ki)
                            for (int kj = 0; kj < s->kw; ++kj) {
                                int iy = oy * s->sh - s->pt + ki * s->dil, ix = ox * s->sw - s->pl + kj * s->dil;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W)
                                    continue;
                                const int ci = (o / mg) * cg + c;
                                const size_t xi = (((size_t)i * s->C + ci) * s->H + iy) * s->W + ix;
                                const size_t wi = ((size_t)o * cg + c) * khw + (size_t)ki * s->kw + kj;
                                dx[xi] += (double)w[wi] * g;
                                dw[wi] += (double)x[xi] * g;
                            }
                }
}

static void run_shape(kern_isa isa, const shape *sh)
{
    static uint64_t seed = 1;
    const int pads[4] = {sh->pt, sh->pl, sh->pb, sh->pr};
    rs_model *m = testnet_conv_pads(sh->C, sh->H, sh->W, sh->M, sh->kh, sh->kw, sh->sh, sh->sw, pads, sh->dil, sh->dil,
                                    sh->group, 1, seed++);
    rs_err e = {{0}};
    tn_node t;
    const char *nm = kern_isa_name(isa);
    const int k = 0; /* the model's one node */
    if (!CHECK(m && tn_compile(m, k, isa, &t, &e) == 0, "%s conv %dx%dx%d -> %d k%dx%d s%dx%d compiles (%s)", nm,
               sh->C, sh->H, sh->W, sh->M, sh->kh, sh->kw, sh->sh, sh->sw, e.msg)) {
        model_free(m);
        return;
    }
    const int n = sh->n, OH = t.oh, OW = t.ow, cg = sh->C / sh->group;
    const size_t nx = (size_t)n * t.xsz, ny = (size_t)n * t.ysz, nw = (size_t)sh->M * cg * sh->kh * sh->kw;
    float *x = floats(nx), *dy = floats(ny), *y = floats(ny), *dx = floats(nx), *dxa = floats(nx), *prior = floats(nx);
    float *dw = floats(nw), *wprior = floats(nw), *db = calloc((size_t)sh->M, sizeof(float));
    float *col = floats(t.col_floats + 64);
    int *boff = malloc((t.boff_ints + 1) * sizeof *boff);
    double *yd = malloc(ny * sizeof *yd), *dxd = malloc(nx * sizeof *dxd), *dwd = malloc(nw * sizeof *dwd);
    double *xd = malloc(nx * sizeof *xd), *wd = malloc(nw * sizeof *wd), *bd = malloc((size_t)sh->M * sizeof *bd);
    const float *w = m->values[m->nodes[k].in[1]].f, *b = m->values[m->nodes[k].in[2]].f;
    for (size_t i = 0; i < nx; ++i)
        x[i] = srand1(), prior[i] = srand1(), dx[i] = NAN, xd[i] = x[i];
    for (size_t i = 0; i < ny; ++i)
        dy[i] = srand1();
    for (size_t i = 0; i < nw; ++i)
        wprior[i] = dw[i] = srand1(), wd[i] = w[i];
    for (int i = 0; i < sh->M; ++i)
        bd[i] = b[i];
    memcpy(dxa, prior, nx * sizeof *dxa);
    float *act[8] = {0};
    act[m->input] = x, act[m->output] = y;
    tn_scratch s = {.col = col, .boff = boff};
    for (size_t i = 0; i < t.col_floats + 64; ++i) /* scratch holding garbage must not matter */
        col[i] = NAN;
    tn_pass f = {.t = &t, .m = m, .act = act, .ns = n, .s = &s, .x = x, .y = y};
    grad_fwd_conv(&f);
    for (size_t i = 0; i < t.col_floats + 64; ++i)
        col[i] = NAN;
    tn_pass bp = {.t = &t, .m = m, .act = act, .ns = n, .s = &s, .dy = dy, .dx = dx, .dx_fresh = 1, .dw = dw, .db = db};
    grad_bwd_conv(&bp);
    bp.dx = dxa, bp.dx_fresh = 0, bp.dw = NULL, bp.db = NULL;
    grad_bwd_conv(&bp);

    ref_conv2d_d(xd, n, sh->C, sh->H, sh->W, wd, bd, sh->M, sh->kh, sh->kw, sh->sh, sh->sw, sh->dil, sh->dil, pads,
                 sh->group, yd, OH, OW);
    ref_backward(sh, OH, OW, x, w, dy, dxd, dwd);
    double ey = ref_max_rel_err_d(y, yd, ny), ex = ref_max_rel_err_d(dx, dxd, nx);
    for (size_t i = 0; i < nx; ++i)
        dxd[i] += prior[i];
    double ea = ref_max_rel_err_d(dxa, dxd, nx);
    for (size_t i = 0; i < nw; ++i)
        dwd[i] += wprior[i];
    double ew = ref_max_rel_err_d(dw, dwd, nw);
    char what[160];
    snprintf(what, sizeof what, "%s C=%d M=%d g=%d %dx%d k%dx%d s%dx%d d%d pads %d,%d,%d,%d, %d images%s", nm, sh->C,
             sh->M, sh->group, sh->H, sh->W, sh->kh, sh->kw, sh->sh, sh->sw, sh->dil, sh->pt, sh->pl, sh->pb, sh->pr,
             n, tn_phase_ok(&t) ? " (phases)" : "");
    CHECK(ey <= 2e-5, "%s: forward max rel err %.2g <= 2e-5", what, ey);
    CHECK(ex <= 2e-5 && ea <= 2e-5, "%s: input gradient max rel err %.2g written, %.2g added <= 2e-5", what, ex, ea);
    CHECK(ew <= 2e-5, "%s: weight gradient max rel err %.2g <= 2e-5", what, ew);
    free(x), free(dy), free(y), free(dx), free(dxa), free(prior), free(dw), free(wprior), free(db), free(col);
    free(boff), free(yd), free(dxd), free(dwd), free(xd), free(wd), free(bd);
    model_free(m);
}

int main(void)
{
    /* C, M, H, W, kh, kw, sh, sw, pt, pl, pb, pr, dilation, group, images */
    static const shape shapes[] = {
        /* ResNet-20's strided convolutions and 1×1 shortcuts */
        {16, 32, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2},
        {32, 64, 16, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3},
        {16, 32, 32, 32, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 2},
        {32, 64, 16, 16, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 9},
        /* odd sizes, other pads, kernels and strides, channel counts off the vector widths */
        {3, 5, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},
        {5, 7, 9, 8, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 4},
        {6, 10, 11, 13, 3, 3, 2, 2, 1, 0, 0, 1, 1, 1, 2},
        {7, 9, 10, 10, 5, 5, 2, 2, 2, 2, 2, 2, 1, 1, 2},
        {4, 6, 9, 11, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, 3},
        {4, 8, 8, 8, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 5},
        {17, 33, 8, 8, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 5},
        {12, 20, 13, 13, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},
        {8, 12, 10, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 2, 2},
        {3, 7, 6, 5, 3, 3, 2, 2, 2, 1, 0, 2, 1, 1, 1},
        {16, 32, 16, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 9},
        /* stride 1: the first layer (C = 3) and other padded-plane shapes; a dilated one (im2col) */
        {3, 16, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2},
        {5, 6, 9, 7, 3, 3, 1, 1, 0, 1, 2, 0, 1, 1, 3},
        {6, 8, 10, 9, 3, 3, 1, 1, 2, 2, 2, 2, 2, 1, 2},
        {16, 8, 8, 8, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 4},
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
    return check_done();
}
