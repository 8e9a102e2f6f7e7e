/* test_train_wino.c — training's Winograd F(2×2, 3×3) passes (the forward and the input gradient
 * of 3×3 stride-1 convolutions, grad_conv.c) against the direct ones (the padded GEMMs) on the
 * same tape entry: odd and even sizes, pads 0, 1 and 2 and one-sided ones, channel counts that
 * are not multiples of the vector width, ResNet-20's three stages, one image and several (the
 * tile blocks then span images), the input gradient written fresh and added into a buffer that
 * already holds another reader's gradient. The weight gradient does not depend on the choice and
 * must match bit for bit. Below 6 input or output channels the tape entry keeps the direct passes
 * (faster there); the comparison forces both anyway.
 *
 * Tolerance: max relative error (ref_max_rel_err, relative to max(1, |direct|)) 2e-5 with inputs
 * and dY uniform in [−1, 1) and weights scaled by 1/√(9·Cin): both sides round a dot product of at
 * most 9·64 terms in fp32, the Winograd side after transforms that only add and halve, so each
 * differs from the exact sum by a few ulps of the terms' magnitude (test_wino.c bounds the kernel
 * alone at 1e-5 against double). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ref_ops.h"
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

/* x → Conv(w, b) → y, shapes inferred; returns the conv's node index or -1. */
static int one_conv(rs_model *m, const shape *sh)
{
    int x = model_add_value(m, "x", NULL), w = model_add_value(m, "w", NULL), b = model_add_value(m, "b", NULL);
    int y = model_add_value(m, "y", NULL);
    m->input = x, m->output = y;
    rs_value *xv = &m->values[x], *wv = &m->values[w], *bv = &m->values[b];
    xv->ndim = 4;
    xv->dims[0] = -1, xv->dims[1] = sh->C, xv->dims[2] = sh->H, xv->dims[3] = sh->W;
    wv->is_const = bv->is_const = 1;
    wv->dtype = bv->dtype = RS_DT_FLOAT;
    wv->ndim = 4, bv->ndim = 1;
    wv->dims[0] = sh->M, wv->dims[1] = sh->C, wv->dims[2] = wv->dims[3] = 3;
    bv->dims[0] = sh->M;
    size_t nw = (size_t)sh->M * sh->C * 9;
    wv->f = malloc(nw * sizeof(float));
    bv->f = malloc((size_t)sh->M * sizeof(float));
    for (size_t k = 0; k < nw; ++k)
        wv->f[k] = srand1() / sqrtf(9.0f * (float)sh->C);
    for (int k = 0; k < sh->M; ++k)
        bv->f[k] = srand1();
    int k = model_add_node(m, "conv", RS_OP_CONV, NULL);
    rs_node *c = &m->nodes[k];
    c->n_in = 3, c->in[0] = x, c->in[1] = w, c->in[2] = b;
    c->n_out = 1, c->out[0] = y;
    c->pads[0] = sh->pt, c->pads[1] = sh->pl, c->pads[2] = sh->pb, c->pads[3] = sh->pr;
    return model_infer_shapes(m, NULL) == 0 ? k : -1;
}

static void run_shape(kern_isa isa, const shape *sh)
{
    rs_model *m = model_alloc();
    rs_err e = {{0}};
    tn_node t;
    int k = one_conv(m, sh);
    if (!CHECK(k >= 0 && tn_compile(m, k, isa, &t, &e) == 0, "%s conv %dx%dx%d -> %d compiles (%s)",
               kern_isa_name(isa), sh->C, sh->H, sh->W, sh->M, e.msg)) {
        model_free(m);
        return;
    }
    const int n = sh->n;
    const size_t nx = (size_t)n * t.xsz, ny = (size_t)n * t.ysz, nw = (size_t)sh->M * sh->C * 9;
    float *x = floats(nx), *dy = floats(ny), *y[2], *dx[2], *dxa[2], *dw[2], *db[2];
    float *col = floats(t.col_floats + 64);
    int *boff = malloc((t.boff_ints + 1) * sizeof *boff);
    for (size_t i = 0; i < nx; ++i)
        x[i] = srand1();
    for (size_t i = 0; i < ny; ++i)
        dy[i] = srand1();
    float *prior = floats(nx);
    for (size_t i = 0; i < nx; ++i)
        prior[i] = srand1();
    float *act[8] = {0};
    act[m->input] = x;
    for (int v = 0; v < 2; ++v) {
        tn_node tv = t;
        tv.wino = v ? TN_WINO_FWD | TN_WINO_DX | TN_WINO_DW : 0;
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
    double ey = ref_max_rel_err(y[1], y[0], ny), ex = ref_max_rel_err(dx[1], dx[0], nx);
    double ea = ref_max_rel_err(dxa[1], dxa[0], nx);
    const int want = sh->C >= 6 && sh->M >= 6 ? TN_WINO_FWD | TN_WINO_DX | TN_WINO_DW : 0;
    CHECK(t.wino == want, "%s C=%d M=%d %dx%d pads %d,%d,%d,%d: the tape entry %s the Winograd passes", nm, sh->C,
          sh->M, sh->H, sh->W, sh->pt, sh->pl, sh->pb, sh->pr, want ? "takes" : "leaves");
    CHECK(ey <= 2e-5, "%s C=%d M=%d %dx%d pads %d,%d,%d,%d, %d images: forward max rel err %.2g <= 2e-5", nm,
          sh->C, sh->M, sh->H, sh->W, sh->pt, sh->pl, sh->pb, sh->pr, n, ey);
    CHECK(ex <= 2e-5 && ea <= 2e-5,
          "%s C=%d M=%d %dx%d, %d images: input gradient max rel err %.2g written, %.2g added <= 2e-5", nm, sh->C,
          sh->M, sh->H, sh->W, n, ex, ea);
    double ew = ref_max_rel_err(dw[1], dw[0], nw);
    CHECK(ew <= 2e-5, "%s C=%d M=%d %dx%d, %d images: weight gradient max rel err %.2g <= 2e-5", nm, sh->C, sh->M,
          sh->H, sh->W, n, ew);
    CHECK(memcmp(db[0], db[1], (size_t)sh->M * sizeof(float)) == 0, "%s C=%d M=%d %dx%d: bias gradient bit-identical",
          nm, sh->C, sh->M, sh->H, sh->W);
    for (int v = 0; v < 2; ++v)
        free(y[v]), free(dx[v]), free(dxa[v]), free(dw[v]), free(db[v]);
    free(x), free(dy), free(prior), free(col), free(boff);
    model_free(m);
}

int main(void)
{
    static const shape shapes[] = {
        {3, 4, 7, 9, 1, 1, 1, 1, 1},      {3, 4, 7, 9, 1, 1, 1, 1, 5},    {9, 5, 5, 11, 0, 0, 0, 0, 3},
        {6, 7, 8, 6, 2, 1, 0, 2, 1},      {5, 3, 9, 13, 1, 2, 2, 0, 2},   {17, 33, 15, 13, 1, 1, 1, 1, 2},
        {16, 16, 32, 32, 1, 1, 1, 1, 2},  {32, 32, 16, 16, 1, 1, 1, 1, 3}, {64, 64, 8, 8, 1, 1, 1, 1, 9},
        {64, 64, 8, 8, 1, 1, 1, 1, 1},
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
