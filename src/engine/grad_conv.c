/* grad_conv.c — training's convolution (see train_internal.h).
 *
 * Conv runs on kern_gemm (the broadcast-A register-tiled kernel infer.c uses): the GEMMs here
 * are skinny (6 or 16 output channels) and small, where OpenBLAS spends its time packing. For a
 * chunk of images and one group, with col = im2col of the chunk (Kg × P, P = images·OH·OW):
 *   forward   Y  (Cout/g × P)  = W_g · col                     (+ bias in the epilogue)
 *   weights   dWᵀ (Kg × Cout/g) = col · dYᵀ                    (dYᵀ pixel-major, P × Cout/g)
 *   input     dcol (Kg × P)     = W_gᵀ · dY, scattered back by col2im (accumulating)
 * col is recomputed in the backward pass rather than stored: it is cheap next to the GEMMs and
 * storing it would multiply the activation memory by kh·kw. Depthwise convolutions (one input
 * channel per group) skip the GEMMs: direct loops over polyphase planes (dw_forward, dw_backward).
 * Stride-1 convolutions read zero-padded planes through the GEMM's row offsets (pad_gemm, below),
 * strided ones (unit dilation) polyphase planes the same way (grad_phase.c): neither writes col.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/ops.h"
#include "train_internal.h"

/* ---- depthwise convolution (one input channel per group) ------------------------------------ *
 * As GEMMs these are one M = Cout/g, K = kh·kw product per channel: the tile kernels run nearly
 * empty, and im2col/col2im move kh·kw copies of every plane. Instead each input channel is split
 * once into zero-padded polyphase planes (phase (a, b) holds padded samples (a + sh·r, b + sw·q)),
 * so for every tap the window's samples are one contiguous run per output row: the forward,
 * the weight gradient (a dot product per tap) and the input gradient (scattered into the same
 * layout, then merged back) are all plain vector loops over rows padded to DW_L lanes. The lane
 * count is fixed, so every vector ISA adds in the same order. */
#define DW_L 8

static int conv_is_dw(const tn_node *t)
{
    return t->cin / t->group == 1 && t->cout % t->group == 0;
}

/* Row length of dy / y copies (ow padded to whole lane blocks), rows and row stride of a phase
 * plane: enough for every tap's window over the padded rows, and for every input sample. */
typedef struct dw_geom {
    int owp, hq, wq, phases;
    size_t plane;
} dw_geom;

static dw_geom dw_geom_of(const tn_node *t)
{
    dw_geom g;
    g.owp = (int)tn_round_up((size_t)t->ow, DW_L);
    int hq = t->oh + (t->kh - 1) * t->dh / t->sh, wq = g.owp + (t->kw - 1) * t->dw / t->sw;
    int hin = (t->ih + t->pt + t->sh - 1) / t->sh, win = (t->iw + t->pl + t->sw - 1) / t->sw;
    g.hq = hq > hin ? hq : hin;
    g.wq = (int)tn_round_up((size_t)(wq > win ? wq : win), DW_L);
    g.phases = t->sh * t->sw;
    g.plane = (size_t)g.hq * g.wq;
    return g;
}

/* the input planes, the input-gradient planes, one padded dy (or y) plane */
static size_t dw_scratch(const tn_node *t)
{
    dw_geom g = dw_geom_of(t);
    return 2 * (size_t)g.phases * g.plane + (size_t)t->oh * g.owp + 64;
}

/* Offset of tap (ki, kj)'s first sample in the phase planes. */
static int dw_tap(const tn_node *t, const dw_geom *g, int ki, int kj)
{
    int a = ki * t->dh, b = kj * t->dw;
    return (int)((size_t)((a % t->sh) * t->sw + b % t->sw) * g->plane + (size_t)(a / t->sh) * g->wq +
                 (size_t)(b / t->sw));
}

/* y (oh rows of owp) = bias + Σ_taps w·window. */
TN_VEC static void dw_rows_fwd(const float *restrict xp, const int *tap, int taps, const float *wc,
                               float bias, int oh, int owp, int wq, float *restrict y)
{
    for (size_t k = 0; k < (size_t)oh * owp; ++k)
        y[k] = bias;
    for (int k = 0; k < taps; ++k) {
        const float wk = wc[k];
        for (int oy = 0; oy < oh; ++oy) {
            const float *p = xp + tap[k] + (size_t)oy * wq;
            float *r = y + (size_t)oy * owp;
            for (int x = 0; x < owp; ++x)
                r[x] += wk * p[x];
        }
    }
}

/* dwc[k] += Σ g·window_k (when dwc), dxp window_k += w_k·g (when dxp); g (oh rows of owp) is zero
 * past ow, so the padding lanes add nothing anywhere. */
TN_VEC static void dw_rows_bwd(const float *restrict xp, float *restrict dxp, const int *tap, int taps,
                               const float *wc, float *dwc, int oh, int owp, int wq, const float *restrict g)
{
    for (int k = 0; k < taps; ++k) {
        const float wk = wc[k];
        float acc[DW_L] = {0};
        for (int oy = 0; oy < oh; ++oy) {
            const float *gr = g + (size_t)oy * owp;
            const float *p = xp + tap[k] + (size_t)oy * wq;
            if (dwc)
                for (int x = 0; x < owp; x += DW_L)
                    for (int j = 0; j < DW_L; ++j)
                        acc[j] += gr[x + j] * p[x + j];
            if (dxp) {
                float *d = dxp + tap[k] + (size_t)oy * wq;
                for (int x = 0; x < owp; ++x)
                    d[x] += wk * gr[x];
            }
        }
        if (dwc) {
            double sum = 0;
            for (int j = 0; j < DW_L; ++j)
                sum += acc[j];
            dwc[k] += (float)sum;
        }
    }
}

/* One channel (ih × iw) into its phase planes (zero elsewhere: cleared once per call, and every
 * channel writes the same positions). */
static void dw_split(const tn_node *t, const dw_geom *g, const float *x, float *xp)
{
    if (t->sh == 1 && t->sw == 1) {
        for (int y = 0; y < t->ih; ++y)
            memcpy(xp + (size_t)(y + t->pt) * g->wq + t->pl, x + (size_t)y * t->iw, (size_t)t->iw * sizeof *xp);
        return;
    }
    kern_phase_split(t->isa, 1, t->ih, t->iw, x, t->sh, t->sw, t->pt, t->pl, g->hq, g->wq, (1u << g->phases) - 1, xp);
}

/* dx (one channel) += the input samples' entries of the phase planes (the inverse of dw_split). */
TN_VEC static void dw_merge(const tn_node *t, const dw_geom *g, const float *restrict dxp, float *restrict dx)
{
    for (int y = 0; y < t->ih; ++y) {
        const int py = y + t->pt, a = py % t->sh;
        float *d = dx + (size_t)y * t->iw;
        for (int b = 0; b < t->sw; ++b) {
            const float *s = dxp + (size_t)(a * t->sw + b) * g->plane + (size_t)(py / t->sh) * g->wq;
            int x = ((b - t->pl) % t->sw + t->sw) % t->sw, q = (x + t->pl) / t->sw;
            if (t->sw == 1)
                for (; x < t->iw; ++x)
                    d[x] += s[x + t->pl];
            else
                for (; x < t->iw; x += t->sw, ++q)
                    d[x] += s[q];
        }
    }
}

static void dw_taps(const tn_node *t, const dw_geom *g, int *tap)
{
    for (int ki = 0; ki < t->kh; ++ki)
        for (int kj = 0; kj < t->kw; ++kj)
            tap[ki * t->kw + kj] = dw_tap(t, g, ki, kj);
}

static void dw_forward(const tn_node *t, const float *w, const float *b, const float *x, float *y, int ns,
                       float *scratch, int *tap)
{
    dw_geom g = dw_geom_of(t);
    const int taps = t->kh * t->kw, mult = t->cout / t->cin;
    float *xp = scratch, *yp = xp + 2 * (size_t)g.phases * g.plane;
    size_t ohw = (size_t)t->oh * t->ow;
    dw_taps(t, &g, tap);
    memset(xp, 0, (size_t)g.phases * g.plane * sizeof *xp);
    for (int i = 0; i < ns; ++i)
        for (int c = 0; c < t->cin; ++c) {
            dw_split(t, &g, x + (size_t)i * t->xsz + (size_t)c * t->ih * t->iw, xp);
            for (int o = c * mult; o < (c + 1) * mult; ++o) {
                dw_rows_fwd(xp, tap, taps, w + (size_t)o * taps, b ? b[o] : 0.0f, t->oh, g.owp, g.wq, yp);
                float *yo = y + (size_t)i * t->ysz + (size_t)o * ohw;
                for (int oy = 0; oy < t->oh; ++oy)
                    memcpy(yo + (size_t)oy * t->ow, yp + (size_t)oy * g.owp, (size_t)t->ow * sizeof *yo);
            }
        }
}

static void dw_backward(const tn_node *t, const float *w, const float *x, const float *dy, float *dx, float *dw,
                        int ns, float *scratch, int *tap)
{
    dw_geom g = dw_geom_of(t);
    const int taps = t->kh * t->kw, mult = t->cout / t->cin;
    size_t ph = (size_t)g.phases * g.plane, ohw = (size_t)t->oh * t->ow, ihw = (size_t)t->ih * t->iw;
    float *xp = scratch, *dxp = xp + ph, *gp = dxp + ph;
    dw_taps(t, &g, tap);
    memset(xp, 0, ph * sizeof *xp);
    memset(gp, 0, (size_t)t->oh * g.owp * sizeof *gp);
    for (int i = 0; i < ns; ++i)
        for (int c = 0; c < t->cin; ++c) {
            if (dw)
                dw_split(t, &g, x + (size_t)i * t->xsz + (size_t)c * ihw, xp);
            if (dx)
                memset(dxp, 0, ph * sizeof *dxp);
            for (int o = c * mult; o < (c + 1) * mult; ++o) {
                const float *go = dy + (size_t)i * t->ysz + (size_t)o * ohw;
                for (int oy = 0; oy < t->oh; ++oy)
                    memcpy(gp + (size_t)oy * g.owp, go + (size_t)oy * t->ow, (size_t)t->ow * sizeof *gp);
                dw_rows_bwd(xp, dx ? dxp : NULL, tap, taps, w + (size_t)o * taps, dw ? dw + (size_t)o * taps : NULL,
                            t->oh, g.owp, g.wq, gp);
            }
            if (dx)
                dw_merge(t, &g, dxp, dx + (size_t)i * t->xsz + (size_t)c * ihw);
        }
}

TN_VEC static void add_into(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t k = 0; k < n; ++k)
        dst[k] += src[k];
}

/* ---- stride-1 convolutions as GEMMs over zero-padded planes ------------------------------------ *
 * With unit strides and dilations, output pixel (y, x) of tap (ki, kj) reads padded sample
 * (y + ki, x + kj): kern_gemm reads the padded planes through row offsets (K = C·kh·kw rows at
 * c·plane + ki·wp + kj), N = OH rows of the padded width wp = OW + kw − 1 (the kw − 1 extra columns
 * of each row are computed and dropped), so no im2col matrix (kh·kw times the input) is written.
 *   forward: the input zero-padded by pt rows and pl columns, A = W (Cout/g × Cin/g·kh·kw);
 *   input gradient: dx[c][iy][ix] = Σ_{o,ki,kj} W[o][c][ki][kj]·dY[o][iy+pt−ki][ix+pl−kj], a convolution
 *     of dY, zero-padded by kh−1−pt rows and kw−1−pl columns, with the flipped kernel (K = Cout/g·kh·kw
 *     instead of the Cout/g of W_gᵀ·dY, whose dcol then had to be scattered back by col2im).
 * Each call zeroes the padded planes once; the images then overwrite the same interior, so the
 * border stays zero. Each output element sums the same products in the same order as im2col's
 * GEMM (the padding contributes exact zeros), so the forward's bits do not change. */
typedef struct pad_geom {
    int C, H, W, T, L; /* source planes, their rows and columns; zero rows above, columns left */
    int OH, OW, wp;    /* output rows and columns; padded width */
    size_t plane, n;   /* padded plane floats; GEMM columns (OH·wp rounded up to whole vectors) */
} pad_geom;

static pad_geom pad_geom_of(const tn_node *t, int C, int H, int W, int T, int L, int OH, int OW)
{
    pad_geom g = {.C = C, .H = H, .W = W, .T = T, .L = L, .OH = OH, .OW = OW, .wp = OW + t->kw - 1};
    g.plane = (size_t)(OH + t->kh - 1) * g.wp;
    g.n = tn_round_up((size_t)OH * g.wp, (size_t)kern_vl(t->isa));
    return g;
}

static int pad_fits(const tn_node *t, const pad_geom *g)
{
    return t->sh == 1 && t->sw == 1 && t->dh == 1 && t->dw == 1 && g->T >= 0 && g->L >= 0 &&
           g->T + g->H <= g->OH + t->kh - 1 && g->L + g->W <= g->wp;
}

static pad_geom fwd_geom(const tn_node *t)
{
    return pad_geom_of(t, t->cin / t->group, t->ih, t->iw, t->pt, t->pl, t->oh, t->ow);
}

static pad_geom dxc_geom(const tn_node *t)
{
    return pad_geom_of(t, t->cout / t->group, t->oh, t->ow, t->kh - 1 - t->pt, t->kw - 1 - t->pl, t->ih, t->iw);
}

/* The forward only where the padded width costs at most a quarter more GEMM columns than im2col's;
 * the input gradient always (its alternative is dcol plus col2im). */
static int fwd_pad_ok(const tn_node *t)
{
    pad_geom g = fwd_geom(t);
    return pad_fits(t, &g) && 4 * (t->kw - 1) <= t->ow;
}

static int dxc_ok(const tn_node *t)
{
    pad_geom g = dxc_geom(t);
    return pad_fits(t, &g);
}

/* padded planes (+ the last GEMM columns' overrun), then the GEMM's output (M rows of n) */
static size_t pad_scratch(const pad_geom *g, int M)
{
    return (size_t)g->C * g->plane + g->n + (size_t)M * g->n;
}

/* pad_gemm's workspace for the forward and the input gradient (whichever are used) */
static size_t pad_size(const tn_node *t)
{
    size_t n = 0;
    if (dxc_ok(t)) {
        pad_geom g = dxc_geom(t);
        n = pad_scratch(&g, t->cin / t->group);
    }
    if (fwd_pad_ok(t)) {
        pad_geom g = fwd_geom(t);
        if (n < pad_scratch(&g, t->cout / t->group))
            n = pad_scratch(&g, t->cout / t->group);
    }
    return n;
}

/* Row offsets of K = C·kh·kw; flip reads tap (ki, kj) at (kh−1−ki, kw−1−kj). */
static void pad_offsets(const tn_node *t, const pad_geom *g, int flip, int *boff)
{
    for (int c = 0; c < g->C; ++c)
        for (int ki = 0; ki < t->kh; ++ki)
            for (int kj = 0; kj < t->kw; ++kj) {
                int a = flip ? t->kh - 1 - ki : ki, b = flip ? t->kw - 1 - kj : kj;
                boff[(c * t->kh + ki) * t->kw + kj] = (int)((size_t)c * g->plane + (size_t)a * g->wp + (size_t)b);
            }
}

static void pad_clear(const pad_geom *g, float *ws)
{
    memset(ws, 0, ((size_t)g->C * g->plane + g->n) * sizeof *ws);
}

/* The interior of the padded planes from src (C compact H × W planes). */
TN_NO_MEMCPY TN_VEC static void pad_fill(const pad_geom *g, const float *restrict src, float *restrict ws)
{
    for (int c = 0; c < g->C; ++c)
        for (int y = 0; y < g->H; ++y) {
            float *d = ws + (size_t)c * g->plane + (size_t)(y + g->T) * g->wp + g->L;
            const float *r = src + ((size_t)c * g->H + y) * g->W;
            for (int x = 0; x < g->W; ++x)
                d[x] = r[x];
        }
}

/* dst (M compact OH × OW planes) = (add: +=) the first OW columns of out's rows (M × n, rows of wp). */
TN_NO_MEMCPY TN_VEC static void pad_unfill(const pad_geom *g, int M, const float *restrict out, float *restrict dst, int add)
{
    for (int m = 0; m < M; ++m)
        for (int y = 0; y < g->OH; ++y) {
            float *d = dst + ((size_t)m * g->OH + y) * g->OW;
            const float *r = out + (size_t)m * g->n + (size_t)y * g->wp;
            if (add)
                for (int x = 0; x < g->OW; ++x)
                    d[x] += r[x];
            else
                for (int x = 0; x < g->OW; ++x)
                    d[x] = r[x];
        }
}

/* The weight gradient from the same padded input planes: for tap (ki, kj),
 *   dWᵀ_tap (Cin/g × Cout/g) = A · dYᵀ,  A row c = plane c from ki·wp + kj on (lda = plane),
 * with dYᵀ pixel-major over the padded width (the kw − 1 extra columns of each row zero): nine
 * GEMMs over the padded input instead of one over an im2col matrix nine times its size. Scratch:
 * the padded planes (+ overrun), dYᵀ (n rows of coutpad), the taps' results and their sum. */
static size_t dwp_scratch(const tn_node *t)
{
    pad_geom g = fwd_geom(t);
    return (size_t)g.C * g.plane + g.n + g.n * (size_t)t->coutpad + 2 * (size_t)t->kh * t->kw * g.C * t->coutpad;
}

/* dst (M compact OH × OW planes) = (add: +=) A · the padded planes of src (C compact H × W planes);
 * ws: pad_scratch floats, cleared by pad_clear for this geometry since it was last used otherwise. */
static void pad_gemm(const tn_node *t, const pad_geom *g, int M, const float *a, int lda, const int *boff,
                     const float *bias, const float *src, float *dst, int add, float *ws)
{
    float *out = ws + (size_t)g->C * g->plane + g->n;
    pad_fill(g, src, ws);
    kern_gemm(t->isa, M, (int)g->n, g->C * t->kh * t->kw, a, lda, ws, boff, out, (int)g->n, bias, NULL, 0);
    pad_unfill(g, M, out, dst, add);
}

/* ---- 3×3 stride-1 convolutions by Winograd F(4×4, 3×3) or F(2×2, 3×3) ------------------------ *
 * Direct convolution of ResNet-20's shapes already runs near the FMA peak, so only fewer multiplies
 * make training faster: kern_wino4 (F(4×4, 3×3), 4× fewer; TN_WINO_F4, unless
 * $RANKSCOPE_WINO4=0) or kern_wino3x3 (F(2×2, 3×3), 2.25× fewer) runs the forward and the input
 * gradient, which is itself a 3×3 stride-1 convolution of dY: with W'[c][o][a][b] = W[o][c][2−a][2−b],
 *   dx[c][iy][ix] = Σ W'[c][o][a][b]·dY[o][iy − (2 − pt) + a][ix − (2 − pl) + b],
 * so dY padded by 2 − pt rows and 2 − pl columns (pads up to 2). The weights change every step:
 * each pass transforms them again (16·Cin·Cout floats, next to the images' transforms nothing).
 * Results differ from the direct paths by the transforms' fp32 rounding (a few ulps of the dot
 * products for F(2×2), some 1e-6 of their terms' magnitude for F(4×4): tests/test_train_wino.c);
 * the arithmetic of each element is fixed, so runs and resumes stay bit-identical. */
static int wino_shape(const tn_node *t)
{
    return t->group == 1 && !conv_is_dw(t) && t->kh == 3 && t->kw == 3 && t->sh == 1 && t->sw == 1 &&
           t->dh == 1 && t->dw == 1 && t->pt >= 0 && t->pt <= 2 && t->pl >= 0 && t->pl <= 2;
}

/* Scratch for either variant (tests/test_train_wino.c switches TN_WINO_F4 on one tape entry). */
static size_t wino_fwd_scratch(const tn_node *t)
{
    size_t a = 16 * (size_t)t->cout * t->cin + kern_wino3x3_scratch(t->isa, t->cin, t->cout, t->oh, t->ow);
    size_t b = 36 * (size_t)t->cout * t->cin + kern_wino4_scratch(t->isa, t->cin, t->cout, t->oh, t->ow);
    return a > b ? a : b;
}

static size_t wino_dx_scratch(const tn_node *t)
{
    size_t a = 25 * (size_t)t->cout * t->cin + kern_wino3x3_scratch(t->isa, t->cout, t->cin, t->ih, t->iw);
    size_t b = 45 * (size_t)t->cout * t->cin + kern_wino4_scratch(t->isa, t->cout, t->cin, t->ih, t->iw);
    return a > b ? a : b;
}

static void conv_stats(const tn_node *t, const rs_model *m, const tn_scratch *s, const float *y, int i0, int nc);

/* Images per call of the F(4×4, 3×3) forward and weight gradient: t->chunk (one GEMM's worth of
 * pixels for the direct paths) or more, so that kern_wino4's blocks of tiles are full (on 16×16
 * and 8×8 maps a chunk fills half a block; ResNet-20: 2, 4 and 8 images of 32×32, 16×16, 8×8). */
static int wino4_chunk(const tn_node *t, int M)
{
    const int k = kern_wino4_images(t->cin, M, t->oh, t->ow);
    return k > t->chunk ? k : t->chunk;
}

/* y = the forward of ns images, chunk by chunk, each chunk's BatchNormalization moments taken while
 * it is in cache. */
static void wino_forward(const tn_node *t, const rs_model *m, const float *w, const float *b, const float *x,
                         float *y, int ns, const tn_scratch *s)
{
    const int f4 = t->wino & TN_WINO_F4;
    float *u = s->col, *ws = u + (f4 ? 36 : 16) * (size_t)t->cout * t->cin;
    if (f4)
        kern_wino4_weights(t->cout, t->cin, w, u);
    else
        kern_wino3x3_weights(t->cout, t->cin, w, u);
    const int chunk = f4 ? wino4_chunk(t, t->cout) : t->chunk;
    for (int i0 = 0; i0 < ns; i0 += chunk) {
        const int nc = ns - i0 < chunk ? ns - i0 : chunk;
        if (f4)
            kern_wino4(t->isa, nc, t->cin, t->ih, t->iw, x + (size_t)i0 * t->xsz, (size_t)t->xsz, t->cout, u, b,
                       t->pt, t->pl, t->oh, t->ow, 0, ws, y + (size_t)i0 * t->ysz, (size_t)t->ysz);
        else
            kern_wino3x3(t->isa, nc, t->cin, t->ih, t->iw, x + (size_t)i0 * t->xsz, (size_t)t->xsz, t->cout, u, b,
                         t->pt, t->pl, t->oh, t->ow, 0, 0.0f, 0.0f, ws, y + (size_t)i0 * t->ysz, (size_t)t->ysz);
        conv_stats(t, m, s, y, i0, nc);
    }
}

/* dx (add: +=) = the input gradient of ns images. */
static void wino_dx(const tn_node *t, const float *w, const float *dy, float *dx, int add, int ns, float *scratch)
{
    const int C = t->cin, M = t->cout, f4 = t->wino & TN_WINO_F4;
    float *u = scratch, *wf = u + (f4 ? 36 : 16) * (size_t)C * M, *ws = wf + 9 * (size_t)C * M;
    for (int o = 0; o < M; ++o)
        for (int c = 0; c < C; ++c)
            for (int k = 0; k < 9; ++k)
                wf[((size_t)c * M + o) * 9 + k] = w[((size_t)o * C + c) * 9 + 8 - k];
    if (f4) {
        kern_wino4_weights(C, M, wf, u);
        kern_wino4(t->isa, ns, M, t->oh, t->ow, dy, (size_t)t->ysz, C, u, NULL, 2 - t->pt, 2 - t->pl, t->ih, t->iw,
                   add ? 3 : 0, ws, dx, (size_t)t->xsz);
        return;
    }
    kern_wino3x3_weights(C, M, wf, u);
    kern_wino3x3(t->isa, ns, M, t->oh, t->ow, dy, (size_t)t->ysz, C, u, NULL, 2 - t->pt, 2 - t->pl, t->ih, t->iw,
                 add ? 3 : 0, 0.0f, 0.0f, ws, dx, (size_t)t->xsz);
}

/* The weight gradient's pixel-major dY rows (whole vectors of 16) and its positions' sums. */
static int wino_ldp(const tn_node *t)
{
    return (int)tn_round_up((size_t)t->cout, 16);
}

static size_t wino_dw_scratch(const tn_node *t)
{
    const size_t ldp = (size_t)wino_ldp(t);
    size_t a = 16 * (size_t)t->cin * ldp + kern_wino3x3_wgrad_scratch(t->isa, t->cin, (int)ldp, t->oh, t->ow);
    size_t b = 36 * (size_t)t->cin * ldp + kern_wino4_wgrad_scratch(t->isa, t->cin, (int)ldp, t->oh, t->ow);
    const int chunk = wino4_chunk(t, (int)ldp);
    return (a > b ? a : b) + (size_t)chunk * t->oh * t->ow * ldp + 64;
}

/* ---- tape entry ---------------------------------------------------------------------------- */

int grad_compile_conv(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    const rs_value *x = &m->values[t->x], *y = &m->values[t->y];
    t->cin = (int)x->dims[1], t->ih = (int)x->dims[2], t->iw = (int)x->dims[3];
    t->cout = (int)y->dims[1], t->oh = (int)y->dims[2], t->ow = (int)y->dims[3];
    t->kh = (int)n->kernel[0], t->kw = (int)n->kernel[1];
    t->sh = (int)n->strides[0], t->sw = (int)n->strides[1];
    t->pt = (int)n->pads[0], t->pl = (int)n->pads[1];
    t->dh = (int)n->dilations[0], t->dw = (int)n->dilations[1];
    t->group = (int)n->group;
    if (n->op == RS_OP_MAXPOOL) {
        t->group = 1;
        t->pidx_ints = (size_t)t->ysz;
        return 0;
    }
    t->param[0] = n->in[1];
    if (n->n_in > 2 && n->in[2] >= 0)
        t->param[1] = n->in[2];
    t->K = (t->cin / t->group) * t->kh * t->kw;
    if (conv_is_dw(t)) {
        size_t need = dw_scratch(t), dw3 = kern_dw3x3_scratch(t->oh, t->ow, t->sh);
        t->col_floats = need > dw3 ? need : dw3;
        t->boff_ints = (size_t)t->kh * t->kw; /* the tap offsets */
        t->chunk = 1;
        if (t->col_floats > ((size_t)1 << 28))
            TN_NODE_ERR(e, n, "convolution workspace too large");
        return 0;
    }
    {
        int cout_g = t->cout / t->group;
        size_t ohw = (size_t)t->oh * t->ow;
        /* the weight-gradient GEMM's N is Cout/g: narrower vectors waste fewer lanes */
        t->isa_dw = t->isa == KERN_AVX512 && cout_g <= 8 ? KERN_AVX2 : t->isa;
        t->coutpad = (int)tn_round_up((size_t)cout_g, (size_t)kern_vl(t->isa_dw));
        t->chunk = ohw >= 512 ? 1 : (int)(512 / ohw);
        size_t P = (size_t)t->chunk * ohw, ldP = tn_round_up(P, (size_t)kern_vl(t->isa)), K = (size_t)t->K;
        size_t tmp = (size_t)cout_g * ldP > K * (size_t)t->coutpad ? (size_t)cout_g * ldP
                                                                   : K * (size_t)t->coutpad;
        /* col / dcol, tmp, dY channel-major, dYᵀ pixel-major, Wᵀ */
        t->col_floats = K * ldP + tmp + (size_t)cout_g * ldP + P * (size_t)t->coutpad +
                        K * (size_t)cout_g + 64;
        t->boff_ints = P > K ? P : K;
        if (t->boff_ints < (size_t)cout_g)
            t->boff_ints = (size_t)cout_g;
        t->col_floats += pad_size(t);
        if (dxc_ok(t) && t->boff_ints < (size_t)cout_g * t->kh * t->kw)
            t->boff_ints = (size_t)cout_g * t->kh * t->kw;
        if (fwd_pad_ok(t)) {
            pad_geom fg = fwd_geom(t);
            t->col_floats += dwp_scratch(t);
            if (t->boff_ints < fg.n)
                t->boff_ints = fg.n;
        }
        if (tn_phase_ok(t)) {
            if (t->col_floats < tn_phase_floats(t))
                t->col_floats = tn_phase_floats(t);
            if (t->boff_ints < tn_phase_ints(t))
                t->boff_ints = tn_phase_ints(t);
        }
        if (wino_shape(t)) {
            /* measured per pass (AVX-512, 1 thread, 64-128 images, ms/image direct → Winograd):
             * 16→16 channels 32×32 forward 0.053 → 0.044, input gradient 0.054 → 0.043; 32→32
             * 16×16 0.051 → 0.033, 0.052 → 0.033; 64→64 8×8 0.054 → 0.028, 0.056 → 0.028;
             * 6→16 32×32 0.021 → 0.018; but 3→16 32×32 0.014 → 0.017 (the transforms outweigh
             * so few channels' products); weight gradient 16→16 0.052 → 0.040, 32→32 0.054 →
             * 0.032, 64→64 0.057 → 0.028, 6→16 0.020 → 0.018 */
            if (t->cin >= 6 && t->cout >= 6)
                t->wino = TN_WINO_FWD | TN_WINO_DX | TN_WINO_DW;
            /* F(4×4, 3×3) measured faster than F(2×2, 3×3) on every shape tried (AVX-512, 1
             * thread, 64 images, ms/image F(2×2) → F(4×4), forward / weight gradient): 16→16
             * 32×32 0.037 → 0.026 / 0.040 → 0.026; 32→32 16×16 0.028 → 0.018 / 0.028 → 0.020;
             * 64→64 8×8 0.023 → 0.015 / 0.024 → 0.017; 6→16 32×32 0.016 → 0.012 / 0.015 →
             * 0.011; 128→128 16×16 0.35 → 0.21 / 0.37 → 0.29; 32→32 5×5 0.0052 → 0.0050 /
             * 0.0049 → 0.0048; AVX2 16→16 32×32 0.070 → 0.052 / 0.070 → 0.050.
             * $RANKSCOPE_WINO4=0 keeps F(2×2, 3×3) (A/B measurements) */
            const char *w4 = getenv("RANKSCOPE_WINO4");
            if (t->wino && (!w4 || w4[0] != '0'))
                t->wino |= TN_WINO_F4;
            /* room for both passes whichever run (tests/test_train_wino.c compares them) */
            size_t need = wino_fwd_scratch(t) > wino_dx_scratch(t) ? wino_fwd_scratch(t) : wino_dx_scratch(t);
            if (wino_dw_scratch(t) > need)
                need = wino_dw_scratch(t);
            if (need + 64 > t->col_floats)
                t->col_floats = need + 64;
        }
        if (t->col_floats > ((size_t)1 << 28) || K > ((size_t)1 << 24))
            TN_NODE_ERR(e, n, "convolution workspace too large");
    }
    return 0;
}

/* ---- conv helpers --------------------------------------------------------------------------- */

/* col (K rows of stride ld, OHW used) from the cin_g channels at x. */
/* Where ow == iw and both strides are 1 (every "same" 3×3 or 1×1 convolution), the output rows
 * of one tap read one contiguous run of the input plane, shifted by the tap's offset: one block
 * copy instead of oh short rows. The columns that fall off the left or right edge pick up the
 * neighbouring row's pixels in that copy and are zeroed afterwards. */
typedef struct tap_span {
    int oy_lo, oy_hi; /* output rows whose input row exists */
    int lo, hi;       /* output columns whose input column exists */
    long s0, a, b;    /* block: out[oy_lo·ow + k] = plane[s0 + k] for a <= k < b */
} tap_span;

static int flat_taps(const tn_node *t)
{
    return t->sw == 1 && t->sh == 1 && t->ow == t->iw;
}

static tap_span tap_of(const tn_node *t, int ki, int kj)
{
    tap_span s;
    int off = kj * t->dw - t->pl, y0 = ki * t->dh - t->pt; /* ix = ox + off, iy = oy + y0 */
    s.lo = off < 0 ? -off : 0;
    s.hi = t->iw - off < t->ow ? t->iw - off : t->ow;
    if (s.hi < s.lo)
        s.hi = s.lo;
    s.oy_lo = y0 < 0 ? -y0 : 0;
    s.oy_hi = t->ih - y0 < t->oh ? t->ih - y0 : t->oh;
    if (s.oy_hi < s.oy_lo)
        s.oy_hi = s.oy_lo;
    long n = (long)(s.oy_hi - s.oy_lo) * t->ow, plane = (long)t->ih * t->iw;
    s.s0 = (long)(s.oy_lo + y0) * t->iw + off;
    s.a = s.s0 < 0 ? -s.s0 : 0;
    s.b = s.s0 + n > plane ? plane - s.s0 : n;
    if (s.a > n)
        s.a = n;
    if (s.b < s.a)
        s.b = s.a;
    return s;
}

/* Zero the off-edge columns of output rows oy_lo .. oy_hi−1 of one tap row. */
static void zero_edges(const tn_node *t, const tap_span *s, float *row)
{
    if (s->lo == 0 && s->hi == t->ow)
        return;
    for (int oy = s->oy_lo; oy < s->oy_hi; ++oy) {
        float *r = row + (size_t)oy * t->ow;
        for (int ox = 0; ox < s->lo; ++ox)
            r[ox] = 0.0f;
        for (int ox = s->hi; ox < t->ow; ++ox)
            r[ox] = 0.0f;
    }
}

static void im2col_flat(const tn_node *t, const float *x, int cin_g, float *col, size_t ld)
{
    size_t ow = (size_t)t->ow, ihw = (size_t)t->ih * t->iw;
    for (int ki = 0; ki < t->kh; ++ki)
        for (int kj = 0; kj < t->kw; ++kj) {
            tap_span s = tap_of(t, ki, kj);
            size_t n = (size_t)(s.oy_hi - s.oy_lo) * ow;
            for (int c = 0; c < cin_g; ++c) {
                float *row = col + (size_t)((c * t->kh + ki) * t->kw + kj) * ld;
                float *d = row + (size_t)s.oy_lo * ow;
                const float *plane = x + (size_t)c * ihw;
                memset(row, 0, (size_t)s.oy_lo * ow * sizeof *row);
                memset(d + n, 0, (size_t)(t->oh - s.oy_hi) * ow * sizeof *row);
                memset(d, 0, (size_t)s.a * sizeof *d);
                memcpy(d + s.a, plane + s.s0 + s.a, (size_t)(s.b - s.a) * sizeof *d);
                memset(d + s.b, 0, (n - (size_t)s.b) * sizeof *d);
                zero_edges(t, &s, row);
            }
        }
}

/* col2im of the flat case; the off-edge columns of col are zeroed first (col is scratch), so the
 * block add deposits nothing where a tap fell outside the image. */
static void col2im_flat(const tn_node *t, float *col, int cin_g, float *dx, size_t ld)
{
    size_t ow = (size_t)t->ow, ihw = (size_t)t->ih * t->iw;
    for (int c = 0; c < cin_g; ++c)
        for (int ki = 0; ki < t->kh; ++ki)
            for (int kj = 0; kj < t->kw; ++kj) {
                tap_span s = tap_of(t, ki, kj);
                float *row = col + (size_t)((c * t->kh + ki) * t->kw + kj) * ld;
                zero_edges(t, &s, row);
                add_into(dx + (size_t)c * ihw + s.s0 + s.a, row + (size_t)s.oy_lo * ow + s.a,
                         (size_t)(s.b - s.a));
            }
}

TN_VEC static void im2col(const tn_node *t, const float *x, int cin_g, float *col, size_t ld)
{
    if (flat_taps(t)) {
        im2col_flat(t, x, cin_g, col, ld);
        return;
    }
    for (int c = 0; c < cin_g; ++c)
        for (int ki = 0; ki < t->kh; ++ki)
            for (int kj = 0; kj < t->kw; ++kj) {
                float *row = col + (size_t)((c * t->kh + ki) * t->kw + kj) * ld;
                int off = kj * t->dw - t->pl;
                int lo = 0, hi = t->ow; /* ox with 0 <= ox*sw + off < iw */
                while (lo < t->ow && lo * t->sw + off < 0)
                    ++lo;
                while (hi > lo && (hi - 1) * t->sw + off >= t->iw)
                    --hi;
                for (int oy = 0; oy < t->oh; ++oy) {
                    float *dst = row + (size_t)oy * t->ow;
                    int iy = oy * t->sh - t->pt + ki * t->dh;
                    if (iy < 0 || iy >= t->ih) {
                        memset(dst, 0, (size_t)t->ow * sizeof *dst);
                        continue;
                    }
                    const float *src = x + ((size_t)c * t->ih + iy) * t->iw + off;
                    for (int ox = 0; ox < lo; ++ox)
                        dst[ox] = 0;
                    if (t->sw == 1) /* rows are short (~30 floats): a plain loop beats memcpy */
                        for (int ox = lo; ox < hi; ++ox)
                            dst[ox] = src[ox];
                    else
                        for (int ox = lo; ox < hi; ++ox)
                            dst[ox] = src[ox * t->sw];
                    for (int ox = hi; ox < t->ow; ++ox)
                        dst[ox] = 0;
                }
            }
}

/* dx += col2im(col) for the cin_g channels at dx (col rows of stride ld; col is clobbered). */
TN_VEC static void col2im_add(const tn_node *t, float *col, int cin_g, float *dx, size_t ld)
{
    if (flat_taps(t)) {
        col2im_flat(t, col, cin_g, dx, ld);
        return;
    }
    for (int c = 0; c < cin_g; ++c)
        for (int ki = 0; ki < t->kh; ++ki)
            for (int kj = 0; kj < t->kw; ++kj) {
                const float *row = col + (size_t)((c * t->kh + ki) * t->kw + kj) * ld;
                int off = kj * t->dw - t->pl;
                int lo = 0, hi = t->ow;
                while (lo < t->ow && lo * t->sw + off < 0)
                    ++lo;
                while (hi > lo && (hi - 1) * t->sw + off >= t->iw)
                    --hi;
                for (int oy = 0; oy < t->oh; ++oy) {
                    int iy = oy * t->sh - t->pt + ki * t->dh;
                    if (iy < 0 || iy >= t->ih)
                        continue;
                    const float *src = row + (size_t)oy * t->ow;
                    float *dst = dx + ((size_t)c * t->ih + iy) * t->iw + off;
                    if (t->sw == 1)
                        for (int ox = lo; ox < hi; ++ox)
                            dst[ox] += src[ox];
                    else
                        for (int ox = lo; ox < hi; ++ox)
                            dst[ox * t->sw] += src[ox];
                }
            }
}

/* dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols: 8 × 8 blocks transposed in registers
 * (three rounds of two-source shuffles, as unpack / shuffle / 128-bit permute on AVX), the ragged
 * edges element by element. A scalar tiled loop was 4-5 % of a ResNet-20 training step. */
typedef float tn_tv8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef int tn_ti8 __attribute__((vector_size(32)));
#if defined(__clang__) /* clang (the fuzz build) has only the constant-index form */
#define TN_SHUF(a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
#define TN_SHUF(a, b, ...) __builtin_shuffle((a), (b), (tn_ti8){__VA_ARGS__})
#endif

TN_VEC static void transpose(const float *restrict src, size_t lds, int rows, int cols, float *restrict dst,
                             size_t ldd)
{
    const int rb = rows & ~7, cb = cols & ~7;
    for (int i = 0; i < rb; i += 8)
        for (int j = 0; j < cb; j += 8) {
            const float *s = src + (size_t)i * lds + j;
            tn_tv8 r0 = *(const tn_tv8 *)s, r1 = *(const tn_tv8 *)(s + lds), r2 = *(const tn_tv8 *)(s + 2 * lds),
                   r3 = *(const tn_tv8 *)(s + 3 * lds), r4 = *(const tn_tv8 *)(s + 4 * lds),
                   r5 = *(const tn_tv8 *)(s + 5 * lds), r6 = *(const tn_tv8 *)(s + 6 * lds),
                   r7 = *(const tn_tv8 *)(s + 7 * lds);
            tn_tv8 t0 = TN_SHUF(r0, r1, 0, 8, 1, 9, 4, 12, 5, 13), t1 = TN_SHUF(r0, r1, 2, 10, 3, 11, 6, 14, 7, 15);
            tn_tv8 t2 = TN_SHUF(r2, r3, 0, 8, 1, 9, 4, 12, 5, 13), t3 = TN_SHUF(r2, r3, 2, 10, 3, 11, 6, 14, 7, 15);
            tn_tv8 t4 = TN_SHUF(r4, r5, 0, 8, 1, 9, 4, 12, 5, 13), t5 = TN_SHUF(r4, r5, 2, 10, 3, 11, 6, 14, 7, 15);
            tn_tv8 t6 = TN_SHUF(r6, r7, 0, 8, 1, 9, 4, 12, 5, 13), t7 = TN_SHUF(r6, r7, 2, 10, 3, 11, 6, 14, 7, 15);
            tn_tv8 u0 = TN_SHUF(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13), u1 = TN_SHUF(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
            tn_tv8 u2 = TN_SHUF(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13), u3 = TN_SHUF(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
            tn_tv8 u4 = TN_SHUF(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13), u5 = TN_SHUF(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
            tn_tv8 u6 = TN_SHUF(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13), u7 = TN_SHUF(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
            float *d = dst + (size_t)j * ldd + i;
            *(tn_tv8 *)d = TN_SHUF(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11);
            *(tn_tv8 *)(d + ldd) = TN_SHUF(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11);
            *(tn_tv8 *)(d + 2 * ldd) = TN_SHUF(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11);
            *(tn_tv8 *)(d + 3 * ldd) = TN_SHUF(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11);
            *(tn_tv8 *)(d + 4 * ldd) = TN_SHUF(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15);
            *(tn_tv8 *)(d + 5 * ldd) = TN_SHUF(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15);
            *(tn_tv8 *)(d + 6 * ldd) = TN_SHUF(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15);
            *(tn_tv8 *)(d + 7 * ldd) = TN_SHUF(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15);
        }
    for (int i = 0; i < rows; ++i) /* the ragged edges: columns past cb, then rows past rb */
        for (int j = i < rb ? cb : 0; j < cols; ++j)
            dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
}
#undef TN_SHUF

void tn_transpose(const float *src, size_t lds, int rows, int cols, float *dst, size_t ldd)
{
    transpose(src, lds, rows, cols, dst, ldd);
}

/* dw += the weight gradient of ns images, t->chunk images at a time (dY transposed pixel-major). */
static void wino_dw(const tn_node *t, const float *x, const float *dy, float *dw, int ns, float *scratch)
{
    const int ldp = wino_ldp(t), f4 = t->wino & TN_WINO_F4;
    const size_t ohw = (size_t)t->oh * t->ow, nacc = (f4 ? 36 : 16) * (size_t)t->cin * ldp;
    const int chunk = f4 ? wino4_chunk(t, ldp) : t->chunk;
    float *acc = scratch, *dyt = acc + nacc, *ws = dyt + (size_t)chunk * ohw * ldp;
    memset(acc, 0, nacc * sizeof *acc);
    if (ldp > t->cout) /* the padding lanes stay zero */
        memset(dyt, 0, (size_t)chunk * ohw * ldp * sizeof *dyt);
    for (int i0 = 0; i0 < ns; i0 += chunk) {
        const int nc = ns - i0 < chunk ? ns - i0 : chunk;
        for (int c = 0; c < nc; ++c)
            transpose(dy + (size_t)(i0 + c) * t->ysz, ohw, t->cout, (int)ohw, dyt + (size_t)c * ohw * ldp,
                      (size_t)ldp);
        if (f4)
            kern_wino4_wgrad(t->isa, nc, t->cin, t->ih, t->iw, x + (size_t)i0 * t->xsz, (size_t)t->xsz, t->pt,
                             t->pl, t->oh, t->ow, dyt, ohw * ldp, ldp, ws, acc);
        else
            kern_wino3x3_wgrad(t->isa, nc, t->cin, t->ih, t->iw, x + (size_t)i0 * t->xsz, (size_t)t->xsz, t->pt,
                               t->pl, t->oh, t->ow, dyt, ohw * ldp, ldp, ws, acc);
    }
    if (f4)
        kern_wino4_wgrad_fold(t->cout, t->cin, ldp, acc, dw);
    else
        kern_wino3x3_wgrad_fold(t->cout, t->cin, ldp, acc, dw);
}

/* Workspace carve-up for one conv node (see tn_compile's sizing). */
typedef struct conv_ws {
    float *col, *tmp, *dyc, *dyt, *wt, *pad, *dwp; /* pad_gemm's and the padded weight gradient's */
    int *boff;
} conv_ws;

static conv_ws conv_scratch(const tn_node *t, const tn_scratch *s)
{
    int cout_g = t->cout / t->group;
    size_t P = (size_t)t->chunk * t->oh * t->ow, ldP = tn_round_up(P, (size_t)kern_vl(t->isa));
    size_t K = (size_t)t->K, tmp = (size_t)cout_g * ldP > K * (size_t)t->coutpad
                                       ? (size_t)cout_g * ldP : K * (size_t)t->coutpad;
    conv_ws w;
    w.col = s->col;
    w.tmp = w.col + K * ldP;
    w.dyc = w.tmp + tmp;
    w.dyt = w.dyc + (size_t)cout_g * ldP;
    w.wt = w.dyt + P * (size_t)t->coutpad;
    w.pad = w.wt + K * (size_t)cout_g;
    w.dwp = w.pad + pad_size(t);
    w.boff = s->boff;
    return w;
}

/* col (Kg × ldP) for images i0 .. i0+nc−1 of group gi; images side by side along the columns. */
static void chunk_im2col(const tn_node *t, const float *x, int i0, int nc, int gi, float *col,
                         size_t ldP)
{
    int cin_g = t->cin / t->group;
    size_t ohw = (size_t)t->oh * t->ow, ihw = (size_t)t->ih * t->iw;
    for (int c = 0; c < nc; ++c)
        im2col(t, x + (size_t)(i0 + c) * t->xsz + (size_t)gi * cin_g * ihw, cin_g, col + c * ohw, ldP);
}

/* Depthwise 3×3 whose padded planes fit the node's workspace: the inference engine's direct kernel
 * (kern_dw3x3) instead of one K = 9 GEMM per channel. */
static int conv_dw3x3(const tn_node *t)
{
    return t->group == t->cin && t->cout == t->cin && t->kh == 3 && t->kw == 3 && t->dh == 1 && t->dw == 1 &&
           t->sh == t->sw && (t->sh == 1 || t->sh == 2) &&
           kern_dw3x3_scratch(t->oh, t->ow, t->sh) <= t->col_floats;
}

/* The next BatchNormalization's moments of images i0 .. i0+nc−1 of y, just written (tn_node.stats). */
static void conv_stats(const tn_node *t, const rs_model *m, const tn_scratch *s, const float *y, int i0, int nc)
{
    if (t->stats && s->bn_batch)
        tn_bn_moments(y + (size_t)i0 * t->ysz, nc, (size_t)t->ysz, t->cout, t->oh * t->ow,
                      m->values[m->nodes[t->stats_node].in[3]].f, s->bn_sums + t->sum_off);
}

static void conv_forward(const tn_node *t, const rs_model *m, const float *x, float *y, int ns,
                         const tn_scratch *s)
{
    const float *w = m->values[t->param[0]].f;
    const float *b = t->param[1] >= 0 ? m->values[t->param[1]].f : NULL;
    if (t->stats && s->bn_batch)
        memset(s->bn_sums + t->sum_off, 0, 2 * (size_t)t->cout * sizeof *s->bn_sums);
    if (conv_dw3x3(t)) {
        /* the scratch's zero border is laid out for this geometry: cleared once per call */
        memset(s->col, 0, kern_dw3x3_scratch(t->oh, t->ow, t->sh) * sizeof *s->col);
        for (int i = 0; i < ns; ++i) {
            kern_dw3x3(t->isa, t->cin, t->ih, t->iw, x + (size_t)i * t->xsz, w, b, t->sh, t->pt, t->pl, t->oh,
                       t->ow, -INFINITY, INFINITY, s->col, y + (size_t)i * t->ysz);
            conv_stats(t, m, s, y, i, 1);
        }
        return;
    }
    if (conv_is_dw(t)) {
        dw_forward(t, w, b, x, y, ns, s->col, s->boff);
        conv_stats(t, m, s, y, 0, ns);
        return;
    }
    int g = t->group, cout_g = t->cout / g;
    size_t ohw = (size_t)t->oh * t->ow, vl = (size_t)kern_vl(t->isa);
    conv_ws ws = conv_scratch(t, s);
    if (t->wino & TN_WINO_FWD) {
        wino_forward(t, m, w, b, x, y, ns, s);
        return;
    }
    if (tn_phase_ok(t)) {
        for (int i = 0; i < ns; ++i) {
            tn_phase_forward(t, w, b, x + (size_t)i * t->xsz, y + (size_t)i * t->ysz, i == 0, s->col, s->boff);
            conv_stats(t, m, s, y, i, 1);
        }
        return;
    }
    if (fwd_pad_ok(t)) {
        pad_geom fg = fwd_geom(t);
        pad_offsets(t, &fg, 0, ws.boff);
        pad_clear(&fg, ws.pad);
        for (int i = 0; i < ns; ++i) {
            for (int gi = 0; gi < g; ++gi)
                pad_gemm(t, &fg, cout_g, w + (size_t)gi * cout_g * t->K, t->K, ws.boff,
                         b ? b + (size_t)gi * cout_g : NULL, x + (size_t)i * t->xsz + (size_t)gi * fg.C * t->ih * t->iw,
                         y + (size_t)i * t->ysz + (size_t)gi * cout_g * ohw, 0, ws.pad);
            conv_stats(t, m, s, y, i, 1);
        }
        return;
    }
    if (ohw % vl == 0) {
        /* Output planes that fill whole vectors: the GEMM writes each image's y itself instead of
         * a chunk's side-by-side result that is then copied out (each output element sums the
         * same products in the same order either way, so the bits do not change). */
        for (int k = 0; k < t->K; ++k)
            ws.boff[k] = (int)((size_t)k * ohw);
        for (int i = 0; i < ns; ++i) {
            for (int gi = 0; gi < g; ++gi) {
                chunk_im2col(t, x, i, 1, gi, ws.col, ohw);
                kern_gemm(t->isa, cout_g, (int)ohw, t->K, w + (size_t)gi * cout_g * t->K, t->K, ws.col, ws.boff,
                          y + (size_t)i * t->ysz + (size_t)gi * cout_g * ohw, (int)ohw,
                          b ? b + (size_t)gi * cout_g : NULL, NULL, 0);
            }
            conv_stats(t, m, s, y, i, 1);
        }
        return;
    }
    for (int i0 = 0; i0 < ns; i0 += t->chunk) {
        int nc = ns - i0 < t->chunk ? ns - i0 : t->chunk;
        size_t P = (size_t)nc * ohw, ldP = tn_round_up(P, vl);
        for (int k = 0; k < t->K; ++k)
            ws.boff[k] = (int)((size_t)k * ldP);
        /* one image whose rows fill whole vectors: the GEMM writes y itself, no copy */
        const int direct = nc == 1 && ldP == P;
        for (int gi = 0; gi < g; ++gi) {
            float *yg = y + (size_t)i0 * t->ysz + (size_t)gi * cout_g * ohw;
            chunk_im2col(t, x, i0, nc, gi, ws.col, ldP);
            kern_gemm(t->isa, cout_g, (int)ldP, t->K, w + (size_t)gi * cout_g * t->K, t->K, ws.col,
                      ws.boff, direct ? yg : ws.tmp, (int)ldP, b ? b + (size_t)gi * cout_g : NULL, NULL, 0);
            for (int c = 0; c < nc && !direct; ++c)
                for (int o = 0; o < cout_g; ++o)
                    memcpy(y + (size_t)(i0 + c) * t->ysz + ((size_t)gi * cout_g + o) * ohw,
                           ws.tmp + (size_t)o * ldP + c * ohw, ohw * sizeof *y);
        }
        conv_stats(t, m, s, y, i0, nc);
    }
}

/* dW += the weight gradient of ns images by dwp_scratch's per-tap GEMMs; the taps' results of every
 * image are summed in their own layout (one contiguous add) and moved into dW's once per group. */
static void dw_padded(const tn_node *t, const float *x, const float *dy, float *dw, int ns, float *ws, int *boff)
{
    pad_geom fg = fwd_geom(t);
    const int khw = t->kh * t->kw, cp = t->coutpad, cin_g = fg.C, cout_g = t->cout / t->group;
    const size_t ihw = (size_t)t->ih * t->iw, ohw = (size_t)t->oh * t->ow, taps = (size_t)khw * cin_g * cp;
    float *xp = ws, *bt = xp + (size_t)fg.C * fg.plane + fg.n, *acc = bt + fg.n * (size_t)cp, *sum = acc + taps;
    /* the borders, dYᵀ's extra-column rows and padding lanes stay zero for the whole call */
    memset(xp, 0, ((size_t)fg.C * fg.plane + fg.n + fg.n * (size_t)cp) * sizeof *xp);
    for (size_t p = 0; p < fg.n; ++p)
        boff[p] = (int)(p * cp);
    for (int gi = 0; gi < t->group; ++gi) {
        memset(sum, 0, taps * sizeof *sum);
        for (int i = 0; i < ns; ++i) {
            const float *dyi = dy + (size_t)i * t->ysz + (size_t)gi * cout_g * ohw;
            pad_fill(&fg, x + (size_t)i * t->xsz + (size_t)gi * cin_g * ihw, xp);
            for (int oy = 0; oy < t->oh; ++oy)
                transpose(dyi + (size_t)oy * t->ow, ohw, cout_g, t->ow, bt + (size_t)oy * fg.wp * cp, (size_t)cp);
            for (int ki = 0; ki < t->kh; ++ki)
                for (int kj = 0; kj < t->kw; ++kj)
                    kern_gemm(t->isa_dw, cin_g, cp, (int)fg.n, xp + (size_t)ki * fg.wp + kj, (int)fg.plane, bt, boff,
                              acc + (size_t)(ki * t->kw + kj) * cin_g * cp, cp, NULL, NULL, 0);
            add_into(sum, acc, taps);
        }
        float *dwg = dw + (size_t)gi * cout_g * t->K;
        for (int o = 0; o < cout_g; ++o)
            for (int ci = 0; ci < cin_g; ++ci)
                for (int k = 0; k < khw; ++k)
                    dwg[(size_t)o * t->K + (size_t)ci * khw + k] += sum[((size_t)k * cin_g + ci) * cp + o];
    }
}

static void conv_backward(const tn_node *t, const rs_model *m, const float *x, const float *dy,
                          float *dx, int fresh, float *dw, float *db, int ns, const tn_scratch *s)
{
    const float *w = m->values[t->param[0]].f;
    int g = t->group, cin_g = t->cin / g, cout_g = t->cout / g, cp = t->coutpad;
    size_t ohw = (size_t)t->oh * t->ow, ihw = (size_t)t->ih * t->iw, vl = (size_t)kern_vl(t->isa);
    conv_ws ws = conv_scratch(t, s);
    if (db)
        for (int i = 0; i < ns; ++i)
            for (int c = 0; c < t->cout; ++c) {
                const float *p = dy + (size_t)i * t->ysz + (size_t)c * ohw;
                float sum = 0;
                for (size_t k = 0; k < ohw; ++k)
                    sum += p[k];
                db[c] += sum;
            }
    if (!dw && !dx)
        return;
    /* a fresh dx (garbage on entry) is written by the padded input gradient's GEMM where it alone
     * covers every element (one group); otherwise cleared for the accumulating paths */
    const int wdx = dx && (t->wino & TN_WINO_DX);
    const int dx_write = dx && fresh && t->group == 1 && !conv_is_dw(t) && (wdx || dxc_ok(t) || tn_phase_ok(t));
    if (dx && fresh && !dx_write)
        memset(dx, 0, (size_t)ns * t->xsz * sizeof *dx);
    if (tn_phase_ok(t)) {
        tn_phase_backward(t, w, x, dy, dx, !dx_write, dw, ns, s->col, s->boff);
        return;
    }
    if (conv_is_dw(t)) {
        dw_backward(t, w, x, dy, dx, dw, ns, s->col, s->boff);
        return;
    }
    /* Output planes that fill whole vectors: dY is read where it lies (its transpose for the
     * weight gradient, its rows for the input gradient's GEMM, one image at a time) instead of
     * through a channel-major copy of the chunk. */
    const int wdw = dw && (t->wino & TN_WINO_DW);
    const int aligned = ohw % vl == 0, pad_dw = dw && !wdw && fwd_pad_ok(t);
    if (wdw)
        wino_dw(t, x, dy, dw, ns, s->col);
    if (pad_dw)
        dw_padded(t, x, dy, dw, ns, ws.dwp, ws.boff);
    for (int i0 = 0; i0 < ns; i0 += t->chunk) {
        int nc = ns - i0 < t->chunk ? ns - i0 : t->chunk;
        size_t P = (size_t)nc * ohw, ldP = tn_round_up(P, vl);
        for (int gi = 0; gi < g; ++gi) {
            const float *wg = w + (size_t)gi * cout_g * t->K;
            const size_t gofs = (size_t)gi * cout_g * ohw; /* this group's dY within an image */
            /* dY channel-major (cout_g × ldP), the chunk's images side by side */
            for (int o = 0; o < cout_g && !aligned; ++o) {
                float *row = ws.dyc + (size_t)o * ldP;
                for (int c = 0; c < nc; ++c)
                    memcpy(row + c * ohw, dy + (size_t)(i0 + c) * t->ysz + gofs + (size_t)o * ohw,
                           ohw * sizeof *row);
                memset(row + P, 0, (ldP - P) * sizeof *row);
            }
            if (dw && !wdw && !pad_dw) {
                /* dYᵀ pixel-major (P × cp), padding lanes zero */
                if (cp > cout_g)
                    memset(ws.dyt, 0, P * (size_t)cp * sizeof *ws.dyt);
                if (aligned)
                    for (int c = 0; c < nc; ++c)
                        transpose(dy + (size_t)(i0 + c) * t->ysz + gofs, ohw, cout_g, (int)ohw,
                                  ws.dyt + (size_t)c * ohw * cp, (size_t)cp);
                else
                    transpose(ws.dyc, ldP, cout_g, (int)P, ws.dyt, (size_t)cp);
                chunk_im2col(t, x, i0, nc, gi, ws.col, ldP);
                for (size_t p = 0; p < P; ++p)
                    ws.boff[p] = (int)(p * cp);
                kern_gemm(t->isa_dw, t->K, cp, (int)P, ws.col, (int)ldP, ws.dyt, ws.boff, ws.tmp, cp,
                          NULL, NULL, 0);
                float *dwg = dw + (size_t)gi * cout_g * t->K;
                for (int k = 0; k < t->K; ++k)
                    for (int o = 0; o < cout_g; ++o)
                        dwg[(size_t)o * t->K + k] += ws.tmp[(size_t)k * cp + o];
            }
            if (dx && !wdx && dxc_ok(t)) {
                pad_geom dg = dxc_geom(t);
                int khw = t->kh * t->kw, k2 = cout_g * khw;
                /* a[c][(o·kh + ki)·kw + kj] = W[o][c][ki][kj], reading plane o kh−1−ki rows and
                 * kw−1−kj columns on from the output position */
                for (int o = 0; o < cout_g; ++o)
                    for (int c = 0; c < cin_g; ++c)
                        for (int k = 0; k < khw; ++k)
                            ws.wt[(size_t)c * k2 + (size_t)o * khw + k] = wg[((size_t)o * cin_g + c) * khw + k];
                pad_offsets(t, &dg, 1, ws.boff);
                if (i0 == 0 && gi == 0)
                    pad_clear(&dg, ws.pad);
                for (int c = 0; c < nc; ++c)
                    pad_gemm(t, &dg, cin_g, ws.wt, k2, ws.boff, NULL, dy + (size_t)(i0 + c) * t->ysz + gofs,
                             dx + (size_t)(i0 + c) * t->xsz + (size_t)gi * cin_g * ihw, !dx_write, ws.pad);
            } else if (dx && !wdx) {
                /* Wᵀ (Kg × cout_g) */
                for (int o = 0; o < cout_g; ++o)
                    for (int k = 0; k < t->K; ++k)
                        ws.wt[(size_t)k * cout_g + o] = wg[(size_t)o * t->K + k];
                for (int o = 0; o < cout_g; ++o)
                    ws.boff[o] = (int)((size_t)o * (aligned ? ohw : ldP));
                for (int c = 0; c < nc && aligned; ++c) {
                    kern_gemm(t->isa, t->K, (int)ohw, cout_g, ws.wt, cout_g,
                              dy + (size_t)(i0 + c) * t->ysz + gofs, ws.boff, ws.col, (int)ohw, NULL, NULL, 0);
                    col2im_add(t, ws.col, cin_g, dx + (size_t)(i0 + c) * t->xsz + (size_t)gi * cin_g * ihw, ohw);
                }
                if (aligned)
                    continue;
                kern_gemm(t->isa, t->K, (int)ldP, cout_g, ws.wt, cout_g, ws.dyc, ws.boff, ws.col,
                          (int)ldP, NULL, NULL, 0);
                for (int c = 0; c < nc; ++c)
                    col2im_add(t, ws.col + c * ohw, cin_g,
                               dx + (size_t)(i0 + c) * t->xsz + (size_t)gi * cin_g * ihw, ldP);
            }
        }
    }
    if (wdx)
        wino_dx(t, w, dy, dx, !dx_write, ns, s->col);
}

void grad_fwd_conv(const tn_pass *p)
{
    conv_forward(p->t, p->m, p->x, p->y, p->ns, p->s);
}

void grad_bwd_conv(const tn_pass *p)
{
    conv_backward(p->t, p->m, p->act[p->t->x], p->dy, p->dx, p->dx_fresh, p->dw, p->db, p->ns, p->s);
}
