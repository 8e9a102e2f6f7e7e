/* kern_wino.c — 3×3 stride-1 convolution by Winograd's minimal filtering F(2×2, 3×3)
 * (kernels.h: kern_wino3x3).
 *
 * Why: on wide 3×3 layers (VGG's 64–256 channels) the direct kernels already run near the FMA
 * peak, so only fewer multiplies make them faster. F(2×2, 3×3) computes each 2×2 output tile
 * from a 4×4 input tile with 16 products per (input, output) channel pair instead of 36: 2.25×
 * fewer multiplies, the transforms costing O(C + M) per tile rather than O(C·M).
 *
 * Shape of the computation, per image:
 *  - the tile rows of all the images of a batch form one sequence, processed in blocks of about
 *    64 tiles: a 4×4 image has only 4 tiles, and one GEMM per image would waste most of each
 *    vector; the block keeps the transformed input V (16 × C × tiles) and the products
 *    (16 × M × tiles) in L2;
 *  - V = Bᵀ d B, written as 16 matrices C × tiles; each of the 16 positions is one kern_gemm
 *    (the weights U = G g Gᵀ as M × C, transformed once at compile time);
 *  - Y = Aᵀ m A per tile, plus bias and the activation, written row by row into the compact
 *    (M, Ho, Wo) output (tiles hanging past an odd Ho or Wo are dropped).
 * F(2×2, 3×3)'s transform matrices hold only 0, ±1 and ½ (the ½ folded into U), so the fp32
 * result differs from direct convolution by a few ulps of the dot products (tests/test_wino.c).
 */
#include "rankscope/kernels.h"

#include <stddef.h>
#include <string.h>

/* 16 floats, unaligned: the transforms are written once in GCC vector extensions and compiled for
 * AVX-512 (one zmm), AVX2 (two ymm) and the baseline target (four xmm). */
typedef float wv16 __attribute__((vector_size(64), aligned(4), may_alias));

/* Tiles per block: measured on the zoo vgg (1 thread, user CPU): 64 tiles 4.0 s, 32 tiles 4.2 s,
 * 128 tiles 4.5 s (V and the products of a 128-channel layer then leave L2). */
#define WINO_BLOCK_TILES 64

static int wino_round_up(int x, int a)
{
    return (x + a - 1) / a * a;
}

typedef struct wino_geom {
    int th, tw, Hw, Ww, rb, tbp;
    size_t v_floats, m_floats;
} wino_geom;

static wino_geom wino_geometry(int C, int M, int Ho, int Wo, int vl)
{
    wino_geom g;
    g.th = (Ho + 1) / 2;
    g.tw = (Wo + 1) / 2;
    g.Hw = 2 * g.th + 2;
    g.Ww = 2 * g.tw + 2;
    g.rb = WINO_BLOCK_TILES / g.tw;
    if (g.rb < 1)
        g.rb = 1;
    (void)vl;
    g.tbp = wino_round_up(g.rb * g.tw, 16); /* whole 16-float vectors (kern_gemm's N: a multiple of vl) */
    g.v_floats = (size_t)16 * C * g.tbp;
    g.m_floats = (size_t)16 * M * g.tbp;
    return g;
}

void kern_wino3x3_weights(int M, int C, const float *w, float *u)
{
    /* U = G g Gᵀ with G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1], in double, stored as 16 (M × C) */
    for (int m = 0; m < M; ++m)
        for (int c = 0; c < C; ++c) {
            const float *g = w + ((size_t)m * C + c) * 9;
            double t[4][3];
            for (int j = 0; j < 3; ++j) {
                double g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                t[0][j] = g0;
                t[1][j] = 0.5 * (g0 + g1 + g2);
                t[2][j] = 0.5 * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            for (int i = 0; i < 4; ++i) {
                double r[4] = {t[i][0], 0.5 * (t[i][0] + t[i][1] + t[i][2]),
                               0.5 * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
                for (int j = 0; j < 4; ++j)
                    u[((size_t)(i * 4 + j) * M + m) * C + c] = (float)r[j];
            }
        }
}

size_t kern_wino3x3_scratch(kern_isa isa, int C, int M, int Ho, int Wo)
{
    wino_geom g = wino_geometry(C, M, Ho, Wo, kern_vl(isa));
    /* + a padded input row (and room), the patches (16 × tiles), the 4 output
     * values per tile, 2 output rows, C GEMM row offsets (ints) */
    return g.v_floats + g.m_floats + 4 * (size_t)g.Ww + 20 * (size_t)g.tbp + (size_t)C + 64;
}

/* Bᵀ d B for the tile rows [gr0, gr0 + nr) (tile row gr: image gr / th, row gr % th). Tiles are
 * 4×4 patches at stride 2, so per channel and tile row each of the 4 input rows is padded
 * (prow, zero border) and gathered at stride 2 into the patch arrays D (16 × block tiles). The transform itself then runs over the whole block, vectorised
 * along the tiles whatever the image width. */
#define WINO_IN_BODY                                                                           \
    for (int c = 0; c < C; ++c) {                                                              \
        for (int r = 0; r < nr; ++r) {                                                         \
            const int img = (gr0 + r) / g.th, ty = (gr0 + r) % g.th;                           \
            const float *xi = in + (size_t)img * in_stride + (size_t)c * H * W;                \
            for (int i = 0; i < 4; ++i) {                                                      \
                const int y = 2 * ty + i - pt;                                                 \
                if (y >= 0 && y < H)                                                           \
                    memcpy(prow + pl, xi + (size_t)y * W, (size_t)wc * sizeof(float));         \
                else                                                                           \
                    memset(prow + pl, 0, (size_t)wc * sizeof(float));                          \
                const float *restrict pr = prow;                                               \
                float *restrict d0 = D + (size_t)(4 * i) * g.tbp + (size_t)r * g.tw;           \
                float *restrict d1 = d0 + g.tbp, *restrict d2 = d1 + g.tbp;                    \
                float *restrict d3 = d2 + g.tbp;                                               \
                for (int k = 0; k < g.tw; ++k) {                                               \
                    d0[k] = pr[2 * k];                                                         \
                    d1[k] = pr[2 * k + 1];                                                     \
                    d2[k] = pr[2 * k + 2];                                                     \
                    d3[k] = pr[2 * k + 3];                                                     \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        const int nj = nr * g.tw;                                                              \
        float *v = V + (size_t)c * g.tbp;                                                      \
        for (int j = 0; j < nj; j += 16) {                                                     \
            wv16 t[16];                                                                        \
            for (int q = 0; q < 4; ++q) {                                                      \
                wv16 d0 = *(const wv16 *)(D + q * g.tbp + j);                                  \
                wv16 d1 = *(const wv16 *)(D + (4 + q) * g.tbp + j);                            \
                wv16 d2 = *(const wv16 *)(D + (8 + q) * g.tbp + j);                            \
                wv16 d3 = *(const wv16 *)(D + (12 + q) * g.tbp + j);                           \
                t[q] = d0 - d2;                                                                \
                t[4 + q] = d1 + d2;                                                            \
                t[8 + q] = d2 - d1;                                                            \
                t[12 + q] = d1 - d3;                                                           \
            }                                                                                  \
            for (int i = 0; i < 4; ++i) {                                                      \
                wv16 a = t[4 * i], b = t[4 * i + 1], cc = t[4 * i + 2], dd = t[4 * i + 3];     \
                *(wv16 *)(v + (4 * i) * vs + j) = a - cc;                                      \
                *(wv16 *)(v + (4 * i + 1) * vs + j) = b + cc;                                  \
                *(wv16 *)(v + (4 * i + 2) * vs + j) = cc - b;                                  \
                *(wv16 *)(v + (4 * i + 3) * vs + j) = b - dd;                                  \
            }                                                                                  \
        }                                                                                      \
    }

/* Aᵀ m A + bias over the whole block (vectorised along the tiles), then the activation and the
 * interleave into output rows, dropping the rows and columns past Ho, Wo. */
#define WINO_OUT_BODY                                                                          \
    const int nj = nr * g.tw;                                                                  \
    float *a00 = ys, *a01 = ys + g.tbp, *a10 = a01 + g.tbp, *a11 = a10 + g.tbp;                \
    for (int m = 0; m < M; ++m) {                                                              \
        const float bm = bias ? bias[m] : 0.0f;                                                \
        const float *q = Mo + (size_t)m * g.tbp;                                               \
        const wv16 bv = {bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm};       \
        for (int j = 0; j < nj; j += 16) {                                                     \
            wv16 s[16];                                                                        \
            for (int k = 0; k < 16; ++k)                                                       \
                s[k] = *(const wv16 *)(q + (size_t)k * ms + j);                                \
            wv16 u00 = s[0] + s[4] + s[8], u01 = s[1] + s[5] + s[9];                           \
            wv16 u02 = s[2] + s[6] + s[10], u03 = s[3] + s[7] + s[11];                         \
            wv16 u10 = s[4] - s[8] - s[12], u11 = s[5] - s[9] - s[13];                         \
            wv16 u12 = s[6] - s[10] - s[14], u13 = s[7] - s[11] - s[15];                       \
            *(wv16 *)(a00 + j) = u00 + u01 + u02 + bv;                                         \
            *(wv16 *)(a01 + j) = u01 - u02 - u03 + bv;                                         \
            *(wv16 *)(a10 + j) = u10 + u11 + u12 + bv;                                         \
            *(wv16 *)(a11 + j) = u11 - u12 - u13 + bv;                                         \
        }                                                                                      \
        if (act == 1)                                                                          \
            for (int j = 0; j < 4 * g.tbp; ++j)                                                \
                ys[j] = ys[j] > 0.0f ? ys[j] : 0.0f;                                           \
        else if (act == 2)                                                                     \
            for (int j = 0; j < 4 * g.tbp; ++j) {                                              \
                float v = ys[j] < lo ? lo : ys[j];                                             \
                ys[j] = v > hi ? hi : v;                                                       \
            }                                                                                  \
        for (int r = 0; r < nr; ++r) {                                                         \
            const int y = 2 * ((gr0 + r) % g.th), o0 = r * g.tw;                               \
            float *o = out + (size_t)((gr0 + r) / g.th) * out_stride + ((size_t)m * Ho + y) * Wo; \
            float *y0 = orow, *y1 = orow + g.Ww;                                               \
            for (int tx = 0; tx < g.tw; ++tx) {                                                \
                y0[2 * tx] = a00[o0 + tx];                                                     \
                y0[2 * tx + 1] = a01[o0 + tx];                                                 \
                y1[2 * tx] = a10[o0 + tx];                                                     \
                y1[2 * tx + 1] = a11[o0 + tx];                                                 \
            }                                                                                  \
            memcpy(o, y0, (size_t)Wo * sizeof(float));                                         \
            if (y + 1 < Ho)                                                                    \
                memcpy(o + Wo, y1, (size_t)Wo * sizeof(float));                                \
        }                                                                                      \
    }

#define WINO_FUNCS(SUFFIX, ATTR)                                                               \
    ATTR static void wino_in_##SUFFIX(int C, int H, int W, const float *in, size_t in_stride,  \
                                      int pt, int pl, int wc, wino_geom g, int gr0, int nr,    \
                                      float *prow, float *D, float *V)                         \
    {                                                                                          \
        const size_t vs = (size_t)C * g.tbp;                                                   \
        WINO_IN_BODY                                                                           \
    }                                                                                          \
    ATTR static void wino_out_##SUFFIX(int M, int Ho, int Wo, wino_geom g, const float *Mo,    \
                                       int gr0, int nr, const float *bias, int act, float lo,   \
                                       float hi, float *ys, float *orow, float *out,           \
                                       size_t out_stride)                                      \
    {                                                                                          \
        const size_t ms = (size_t)M * g.tbp;                                                   \
        WINO_OUT_BODY                                                                          \
    }

#if defined(__x86_64__) || defined(__i386__)
WINO_FUNCS(avx512, __attribute__((target("avx512f,avx2,fma"))))
WINO_FUNCS(avx2, __attribute__((target("avx2,fma"))))
#endif
WINO_FUNCS(base, )

void kern_wino3x3(kern_isa isa, int n, int C, int H, int W, const float *in, size_t in_stride, int M,
                  const float *u, const float *bias, int pt, int pl, int Ho, int Wo, int act, float lo,
                  float hi, float *scratch, float *out, size_t out_stride)
{
    const wino_geom g = wino_geometry(C, M, Ho, Wo, kern_vl(isa));
    float *V = scratch, *Mo = V + g.v_floats, *prow = Mo + g.m_floats;
    float *D = prow + 2 * (size_t)g.Ww, *ys = D + 16 * (size_t)g.tbp;
    float *orow = ys + 4 * (size_t)g.tbp;
    int *boff = (int *)(orow + 2 * (size_t)g.Ww);
    for (int k = 0; k < C; ++k)
        boff[k] = k * g.tbp;
    memset(prow, 0, (size_t)g.Ww * sizeof(float)); /* the pad columns, never written after */
    /* input columns past the padded row (a right pad larger than the tiles need) are never read */
    const int wc = W < g.Ww - pl ? W : g.Ww - pl;
    /* tile rows of all n images in one sequence, so small images still fill a block */
    const int total = n * g.th;
    for (int gr0 = 0; gr0 < total; gr0 += g.rb) {
        const int nr = total - gr0 < g.rb ? total - gr0 : g.rb;
#if defined(__x86_64__) || defined(__i386__)
        if (isa == KERN_AVX512)
            wino_in_avx512(C, H, W, in, in_stride, pt, pl, wc, g, gr0, nr, prow, D, V);
        else if (isa == KERN_AVX2)
            wino_in_avx2(C, H, W, in, in_stride, pt, pl, wc, g, gr0, nr, prow, D, V);
        else
#endif
            wino_in_base(C, H, W, in, in_stride, pt, pl, wc, g, gr0, nr, prow, D, V);
        for (int xi = 0; xi < 16; ++xi)
            kern_gemm(isa, M, g.tbp, C, u + (size_t)xi * M * C, C, V + (size_t)xi * C * g.tbp, boff,
                      Mo + (size_t)xi * M * g.tbp, g.tbp, NULL, NULL, 0);
#if defined(__x86_64__) || defined(__i386__)
        if (isa == KERN_AVX512)
            wino_out_avx512(M, Ho, Wo, g, Mo, gr0, nr, bias, act, lo, hi, ys, orow, out, out_stride);
        else if (isa == KERN_AVX2)
            wino_out_avx2(M, Ho, Wo, g, Mo, gr0, nr, bias, act, lo, hi, ys, orow, out, out_stride);
        else
#endif
            wino_out_base(M, Ho, Wo, g, Mo, gr0, nr, bias, act, lo, hi, ys, orow, out, out_stride);
    }
}
