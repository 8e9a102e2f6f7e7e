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
#include <stdlib.h>
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
    size_t vs, ms; /* floats between the 16 matrices of V and of the products */
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
    /* one vector more than the matrix: at power-of-two sizes the 16 rows a transform reads or
     * writes for one tile would fall in the same L1 set (measured on the zoo vgg, 1 thread) */
    g.vs = (size_t)C * g.tbp + 16;
    g.ms = (size_t)M * g.tbp + 16;
    g.v_floats = 16 * g.vs;
    g.m_floats = 16 * g.ms;
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
 * (prow, zero border) and gathered at stride 2 into the patch arrays D (16 × block tiles): patch
 * column q of tile k is padded column 2k + q. The transform itself then runs over the whole
 * block, vectorised along the tiles whatever the image width. */
#define WINO_IN_GATHER                                                                         \
    for (int r = 0; r < nr; ++r) {                                                             \
        const int img = (gr0 + r) / g.th, ty = (gr0 + r) % g.th;                               \
        const float *xi = in + (size_t)img * in_stride + (size_t)c * H * W;                    \
        for (int i = 0; i < 4; ++i) {                                                          \
            const int y = 2 * ty + i - pt;                                                    \
            if (y >= 0 && y < H)                                                               \
                memcpy(prow + pl, xi + (size_t)y * W, (size_t)wc * sizeof(float));            \
            else                                                                               \
                memset(prow + pl, 0, (size_t)wc * sizeof(float));                              \
            const float *restrict pr = prow;                                                   \
            float *restrict d0 = D + (size_t)(4 * i) * g.tbp + (size_t)r * g.tw;               \
            float *restrict d1 = d0 + g.tbp, *restrict d2 = d1 + g.tbp;                        \
            float *restrict d3 = d2 + g.tbp;                                                   \
            for (int k = 0; k < g.tw; ++k) {                                                   \
                d0[k] = pr[2 * k];                                                             \
                d1[k] = pr[2 * k + 1];                                                         \
                d2[k] = pr[2 * k + 2];                                                         \
                d3[k] = pr[2 * k + 3];                                                         \
            }                                                                                  \
        }                                                                                      \
    }

#define WINO_IN_TRANSFORM                                                                      \
    {                                                                                          \
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

/* Aᵀ m A + bias over the whole block (vectorised along the tiles) into ys (4 rows of tbp: the
 * outputs (0, 0), (0, 1), (1, 0), (1, 1) of each tile), before the activation. */
#define WINO_OUT_TRANSFORM                                                                     \
    const float bm = bias ? bias[m] : 0.0f;                                                    \
    const float *q = Mo + (size_t)m * g.tbp;                                                   \
    const wv16 bv = {bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm, bm};           \
    for (int j = 0; j < nj; j += 16) {                                                         \
        wv16 s[16];                                                                            \
        for (int k = 0; k < 16; ++k)                                                           \
            s[k] = *(const wv16 *)(q + (size_t)k * ms + j);                                    \
        wv16 u00 = s[0] + s[4] + s[8], u01 = s[1] + s[5] + s[9];                               \
        wv16 u02 = s[2] + s[6] + s[10], u03 = s[3] + s[7] + s[11];                             \
        wv16 u10 = s[4] - s[8] - s[12], u11 = s[5] - s[9] - s[13];                             \
        wv16 u12 = s[6] - s[10] - s[14], u13 = s[7] - s[11] - s[15];                           \
        WINO_OUT_STORE(a00 + j, u00 + u01 + u02 + bv);                                         \
        WINO_OUT_STORE(a01 + j, u01 - u02 - u03 + bv);                                         \
        WINO_OUT_STORE(a10 + j, u10 + u11 + u12 + bv);                                         \
        WINO_OUT_STORE(a11 + j, u11 - u12 - u13 + bv);                                         \
    }

/* The portable output: the transform, the activation, then the interleave into output rows,
 * dropping the rows and columns past Ho, Wo. */
#define WINO_OUT_BODY                                                                          \
    const int nj = nr * g.tw;                                                                  \
    float *a00 = ys, *a01 = ys + g.tbp, *a10 = a01 + g.tbp, *a11 = a10 + g.tbp;                \
    for (int m = 0; m < M; ++m) {                                                              \
        WINO_OUT_TRANSFORM                                                                     \
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
            if (act == 3) {                                                                    \
                for (int x = 0; x < Wo; ++x)                                                   \
                    o[x] += y0[x];                                                             \
                for (int x = 0; x < Wo && y + 1 < Ho; ++x)                                     \
                    o[Wo + x] += y1[x];                                                        \
                continue;                                                                      \
            }                                                                                  \
            memcpy(o, y0, (size_t)Wo * sizeof(float));                                         \
            if (y + 1 < Ho)                                                                    \
                memcpy(o + Wo, y1, (size_t)Wo * sizeof(float));                                \
        }                                                                                      \
    }

#define WINO_OUT_STORE(p, v) (*(wv16 *)(p) = (v))

#define WINO_IN_FUNC(SUFFIX, ATTR)                                                             \
    ATTR static void wino_in_##SUFFIX(int C, int H, int W, const float *in, size_t in_stride,  \
                                      int pt, int pl, int wc, wino_geom g, int gr0, int nr,    \
                                      float *prow, float *D, float *V)                         \
    {                                                                                          \
        const size_t vs = g.vs;                                                                \
        for (int c = 0; c < C; ++c) {                                                          \
            WINO_IN_GATHER                                                                     \
            WINO_IN_TRANSFORM                                                                  \
        }                                                                                      \
    }
#define WINO_OUT_FUNC(SUFFIX, ATTR)                                                            \
    ATTR static void wino_out_##SUFFIX(int M, int Ho, int Wo, wino_geom g, const float *Mo,    \
                                       int gr0, int nr, const float *bias, int act, float lo,   \
                                       float hi, float *ys, float *orow, float *out,           \
                                       size_t out_stride)                                      \
    {                                                                                          \
        const size_t ms = g.ms;                                                                \
        WINO_OUT_BODY                                                                          \
    }
#define WINO_FUNCS(SUFFIX, ATTR) WINO_IN_FUNC(SUFFIX, ATTR) WINO_OUT_FUNC(SUFFIX, ATTR)

#if defined(__x86_64__) || defined(__i386__)
WINO_FUNCS(avx2, __attribute__((target("avx2,fma"))))
WINO_IN_FUNC(avx512g, __attribute__((target("avx512f,avx2,fma"))))

/* AVX-512: both transforms straight from and to the activations, padding by masked loads and
 * stores, the stride-2 patch columns and the output interleave by lane permutes (the portable
 * gather into D and interleave through ys, scalar, cost as much as a third of the GEMMs on
 * 64-channel layers). */
#include <immintrin.h>

#define WINO_512 __attribute__((target("avx512f,avx2,fma")))

static const int wino_even_idx[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int wino_odd_idx[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
static const int wino_next_idx[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const int wino_next2_idx[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17};
static const int wino_zip_idx[2][16] = {{0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23},
                                        {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31}};

static inline __mmask16 wino_lanes(int lo, int hi) /* lanes [lo, hi) of 16 */
{
    lo = lo < 0 ? 0 : lo;
    hi = hi > 16 ? 16 : hi;
    return (__mmask16)(hi > lo ? ((1u << hi) - 1) & ~((1u << lo) - 1) : 0);
}

/* Bᵀ d B with the tiles along the vector: per tile row, the 4 input rows' combinations (dᵀ's
 * rows of Bᵀ d) on 16-column segments of the padded rows, then each combination's even and odd
 * columns by permutes (patch column q of tile k is padded column 2k + q) and the column
 * combinations, stored into V at the tile row's place. */
WINO_512 static void wino_in_avx512(int C, int H, int W, const float *in, size_t in_stride, int pt, int pl,
                                    int wc, wino_geom g, int gr0, int nr, float *prow, float *D, float *V)
{
    (void)wc, (void)prow, (void)D;
    const size_t vs = g.vs;
    const __m512i ie = _mm512_loadu_si512(wino_even_idx), io = _mm512_loadu_si512(wino_odd_idx);
    const __m512i in1 = _mm512_loadu_si512(wino_next_idx), in2 = _mm512_loadu_si512(wino_next2_idx);
    const __m512 zero = _mm512_setzero_ps();
    /* segment s holds padded columns 16s .. 16s + 15: its lanes inside the input row */
    const int nseg = (2 * g.tw + 2 + 15) / 16;
    __mmask16 seg_mask[64];
    for (int sg = 0; sg < nseg && sg < 64; ++sg)
        seg_mask[sg] = wino_lanes(pl - 16 * sg, W + pl - 16 * sg);
    for (int c = 0; c < C; ++c) {
        float *v = V + (size_t)c * g.tbp;
        for (int r = 0; r < nr; ++r) {
            const int img = (gr0 + r) / g.th, ty = (gr0 + r) % g.th;
            const float *xi = in + (size_t)img * in_stride + (size_t)c * H * W;
            const float *row[4];
            for (int i = 0; i < 4; ++i) {
                const int y = 2 * ty + i - pt;
                row[i] = y >= 0 && y < H ? xi + (size_t)y * W - pl : NULL; /* at padded column 0 */
            }
            for (int k0 = 0; k0 < g.tw; k0 += 16) {
                /* tiles k0 .. k0 + 15 read padded columns 2·k0 .. 2·k0 + 33: segments sg .. sg + 2 */
                const int sg = k0 / 8;
                __m512 t[4][3];
                for (int q = 0; q < 3; ++q) {
                    __m512 d[4];
                    const int sq = sg + q;
                    const __mmask16 mk = sq >= nseg ? 0 : sq < 64 ? seg_mask[sq] : wino_lanes(pl - 16 * sq, W + pl - 16 * sq);
                    for (int i = 0; i < 4; ++i)
                        d[i] = row[i] && mk ? _mm512_maskz_loadu_ps(mk, row[i] + 16 * (size_t)sq) : zero;
                    t[0][q] = _mm512_sub_ps(d[0], d[2]);
                    t[1][q] = _mm512_add_ps(d[1], d[2]);
                    t[2][q] = _mm512_sub_ps(d[2], d[1]);
                    t[3][q] = _mm512_sub_ps(d[1], d[3]);
                }
                const __mmask16 km = wino_lanes(0, g.tw - k0);
                float *vr = v + (size_t)r * g.tw + k0;
                for (int p = 0; p < 4; ++p) {
                    const __m512 e = _mm512_permutex2var_ps(t[p][0], ie, t[p][1]);
                    const __m512 o = _mm512_permutex2var_ps(t[p][0], io, t[p][1]);
                    const __m512 e2 = _mm512_permutex2var_ps(e, in1, t[p][2]);
                    const __m512 o2 = _mm512_permutex2var_ps(o, in2, t[p][2]);
                    _mm512_mask_storeu_ps(vr + (size_t)(4 * p) * vs, km, _mm512_sub_ps(e, e2));
                    _mm512_mask_storeu_ps(vr + (size_t)(4 * p + 1) * vs, km, _mm512_add_ps(o, e2));
                    _mm512_mask_storeu_ps(vr + (size_t)(4 * p + 2) * vs, km, _mm512_sub_ps(e2, o));
                    _mm512_mask_storeu_ps(vr + (size_t)(4 * p + 3) * vs, km, _mm512_sub_ps(o, o2));
                }
            }
        }
    }
}

/* Narrow maps, 8 or 4 tiles a row (16×16 and 8×8 outputs): there the row-wise transform above
 * fills half or a quarter of every vector and store. Here R = 16 / TW tile rows share each
 * vector (lane ρ·TW + j is tile j of the group's tile row ρ, which is also V's order), so the
 * loads, permutes and stores run on whole vectors: per tile row and input row, the padded
 * columns 0..2·TW + 1 come from one segment (TW 4) or two (TW 8: columns 16 and 17 from the
 * second), each tile row's combinations of its four input rows are formed as above, and the even
 * and odd columns of R of them are gathered into one vector by two-source permutes. */
static inline __attribute__((always_inline)) WINO_512 void
wino_in_packed(const int TW, int C, int H, int W, const float *in, size_t in_stride, int pt, int pl, wino_geom g,
               int gr0, int nr, float *V)
{
    const int R = 16 / TW;
    const size_t vs = g.vs;
    const __mmask16 sm[2] = {wino_lanes(pl, W + pl), wino_lanes(pl - 16, W + pl - 16)};
    const __m512 zero = _mm512_setzero_ps();
    /* TW 8: sources (a, b) = tile rows 0, 1 (first segment), (c, d) their second segments.
     * TW 4: EO = even columns of two tile rows in lanes 0-7, odd in 8-15 (then 128-bit
     * blocks of two such vectors make E and O); E2O2 the same two columns further on. */
    const __m512i i_e = TW == 8 ? _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
                                : _mm512_setr_epi32(0, 2, 4, 6, 16, 18, 20, 22, 1, 3, 5, 7, 17, 19, 21, 23);
    const __m512i i_e2 = TW == 8 ? _mm512_setr_epi32(2, 4, 6, 8, 10, 12, 14, 0, 18, 20, 22, 24, 26, 28, 30, 16)
                                 : _mm512_setr_epi32(2, 4, 6, 8, 18, 20, 22, 24, 3, 5, 7, 9, 19, 21, 23, 25);
    /* TW 8 only: the odd columns, the odd ones further on, and the 8th tile's columns 16 and 17 */
    const __m512i i_o = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i i_o2 = _mm512_setr_epi32(3, 5, 7, 9, 11, 13, 15, 1, 19, 21, 23, 25, 27, 29, 31, 17);
    const __m512i i_x2 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 16, 16, 16, 16, 16, 16, 16, 16);
    const __m512i i_y2 = _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 17, 17, 17, 17, 17, 17, 17, 17);
    for (int c = 0; c < C; ++c) {
        float *v = V + (size_t)c * g.tbp;
        for (int r = 0; r < nr; r += R) {
            __m512 t[4][4][2]; /* [tile row of the group][combination][segment] */
            for (int q = 0; q < R; ++q) {
                for (int sg = 0; sg < (TW == 8 ? 2 : 1); ++sg) {
                    __m512 d[4] = {zero, zero, zero, zero};
                    if (r + q < nr) {
                        const int img = (gr0 + r + q) / g.th, ty = (gr0 + r + q) % g.th;
                        const float *xi = in + (size_t)img * in_stride + (size_t)c * H * W;
                        for (int i = 0; i < 4; ++i) {
                            const int y = 2 * ty + i - pt;
                            if (y >= 0 && y < H && sm[sg])
                                d[i] = _mm512_maskz_loadu_ps(sm[sg], xi + (size_t)y * W - pl + 16 * sg);
                        }
                    }
                    t[q][0][sg] = _mm512_sub_ps(d[0], d[2]);
                    t[q][1][sg] = _mm512_add_ps(d[1], d[2]);
                    t[q][2][sg] = _mm512_sub_ps(d[2], d[1]);
                    t[q][3][sg] = _mm512_sub_ps(d[1], d[3]);
                }
            }
            const __mmask16 km = wino_lanes(0, (nr - r) * TW);
            float *vr = v + (size_t)r * TW;
            for (int p = 0; p < 4; ++p) {
                __m512 e, o, e2, o2;
                if (TW == 8) {
                    e = _mm512_permutex2var_ps(t[0][p][0], i_e, t[1][p][0]);
                    o = _mm512_permutex2var_ps(t[0][p][0], i_o, t[1][p][0]);
                    e2 = _mm512_mask_mov_ps(_mm512_permutex2var_ps(t[0][p][0], i_e2, t[1][p][0]), 0x8080,
                                            _mm512_permutex2var_ps(t[0][p][1], i_x2, t[1][p][1]));
                    o2 = _mm512_mask_mov_ps(_mm512_permutex2var_ps(t[0][p][0], i_o2, t[1][p][0]), 0x8080,
                                            _mm512_permutex2var_ps(t[0][p][1], i_y2, t[1][p][1]));
                } else {
                    const __m512 eo01 = _mm512_permutex2var_ps(t[0][p][0], i_e, t[1][p][0]);
                    const __m512 eo23 = _mm512_permutex2var_ps(t[2][p][0], i_e, t[3][p][0]);
                    const __m512 eo01n = _mm512_permutex2var_ps(t[0][p][0], i_e2, t[1][p][0]);
                    const __m512 eo23n = _mm512_permutex2var_ps(t[2][p][0], i_e2, t[3][p][0]);
                    e = _mm512_shuffle_f32x4(eo01, eo23, 0x44);
                    o = _mm512_shuffle_f32x4(eo01, eo23, 0xEE);
                    e2 = _mm512_shuffle_f32x4(eo01n, eo23n, 0x44);
                    o2 = _mm512_shuffle_f32x4(eo01n, eo23n, 0xEE);
                }
                _mm512_mask_storeu_ps(vr + (size_t)(4 * p) * vs, km, _mm512_sub_ps(e, e2));
                _mm512_mask_storeu_ps(vr + (size_t)(4 * p + 1) * vs, km, _mm512_add_ps(o, e2));
                _mm512_mask_storeu_ps(vr + (size_t)(4 * p + 2) * vs, km, _mm512_sub_ps(e2, o));
                _mm512_mask_storeu_ps(vr + (size_t)(4 * p + 3) * vs, km, _mm512_sub_ps(o, o2));
            }
        }
    }
}

WINO_512 static void wino_in_avx512p8(int C, int H, int W, const float *in, size_t in_stride, int pt, int pl,
                                      wino_geom g, int gr0, int nr, float *V)
{
    wino_in_packed(8, C, H, W, in, in_stride, pt, pl, g, gr0, nr, V);
}

WINO_512 static void wino_in_avx512p4(int C, int H, int W, const float *in, size_t in_stride, int pt, int pl,
                                      wino_geom g, int gr0, int nr, float *V)
{
    wino_in_packed(4, C, H, W, in, in_stride, pt, pl, g, gr0, nr, V);
}

/* Aᵀ m A + bias and the activation on 16 tiles at a time, interleaved by permutes and stored
 * straight into the output rows: the tiles of one vector may span several tile rows (narrow
 * images) or part of one (wide), so each vector's row pieces (half of the vector, output
 * position, masked lanes) are worked out once and reused for every output channel. */
typedef struct wino_piece {
    float *o;       /* output channel 0's address for position 0 of the interleaved half */
    __mmask16 mask; /* its positions inside this piece and inside the row's Wo columns */
    int half, second; /* the half of the vector (tiles 0-7 or 8-15); output row y + 1 */
} wino_piece;

WINO_512 static void wino_out_avx512(int M, int Ho, int Wo, wino_geom g, const float *Mo, int gr0, int nr,
                                     const float *bias, int act, float lo, float hi, float *ys, float *orow,
                                     float *out, size_t out_stride)
{
    (void)ys, (void)orow;
    const size_t ms = g.ms, plane = (size_t)Ho * Wo;
    const int nj = nr * g.tw;
    const __m512 vlo = _mm512_set1_ps(act == 1 ? 0.0f : lo), vhi = _mm512_set1_ps(hi);
    const __m512i z0 = _mm512_loadu_si512(wino_zip_idx[0]), z1 = _mm512_loadu_si512(wino_zip_idx[1]);
    for (int j = 0; j < nj; j += 16) {
        wino_piece pc[64];
        int npc = 0;
        for (int r = j / g.tw; r < nr && r * g.tw < j + 16; ++r) {
            const int l0 = r * g.tw - j > 0 ? r * g.tw - j : 0;
            const int l1 = (r + 1) * g.tw - j < 16 ? (r + 1) * g.tw - j : 16;
            const int tx0 = j + l0 - r * g.tw; /* tile column of lane l0 */
            const int y = 2 * ((gr0 + r) % g.th);
            float *orow0 = out + (size_t)((gr0 + r) / g.th) * out_stride + (size_t)y * Wo;
            for (int h = 0; h < 2; ++h) {
                const int s0 = l0 > 8 * h ? l0 : 8 * h, s1 = l1 < 8 * h + 8 ? l1 : 8 * h + 8;
                if (s0 >= s1)
                    continue;
                const int col0 = 2 * (tx0 - l0 + 8 * h); /* output column of position 0 */
                int phi = 2 * (s1 - 8 * h);
                phi = phi < Wo - col0 ? phi : Wo - col0;
                const __mmask16 mk = wino_lanes(2 * (s0 - 8 * h), phi);
                for (int sec = 0; sec < 2 && y + sec < Ho; ++sec)
                    pc[npc++] = (wino_piece){orow0 + (ptrdiff_t)sec * Wo + col0, mk, h, sec};
            }
        }
        for (int m = 0; m < M; ++m) {
            const float bm = bias ? bias[m] : 0.0f;
            const float *q = Mo + (size_t)m * g.tbp + j;
            __m512 s[16];
            for (int k = 0; k < 16; ++k)
                s[k] = _mm512_loadu_ps(q + (size_t)k * ms);
            const __m512 bv = _mm512_set1_ps(bm);
            const __m512 u00 = _mm512_add_ps(_mm512_add_ps(s[0], s[4]), s[8]);
            const __m512 u01 = _mm512_add_ps(_mm512_add_ps(s[1], s[5]), s[9]);
            const __m512 u02 = _mm512_add_ps(_mm512_add_ps(s[2], s[6]), s[10]);
            const __m512 u03 = _mm512_add_ps(_mm512_add_ps(s[3], s[7]), s[11]);
            const __m512 u10 = _mm512_sub_ps(_mm512_sub_ps(s[4], s[8]), s[12]);
            const __m512 u11 = _mm512_sub_ps(_mm512_sub_ps(s[5], s[9]), s[13]);
            const __m512 u12 = _mm512_sub_ps(_mm512_sub_ps(s[6], s[10]), s[14]);
            const __m512 u13 = _mm512_sub_ps(_mm512_sub_ps(s[7], s[11]), s[15]);
            __m512 a[4] = {_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(u00, u01), u02), bv),
                           _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(u01, u02), u03), bv),
                           _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(u10, u11), u12), bv),
                           _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(u11, u12), u13), bv)};
            for (int k = 0; k < 4 && (act == 1 || act == 2); ++k) /* NaN passes: max/min return their 2nd operand */
                a[k] = act == 1 ? _mm512_max_ps(vlo, a[k]) : _mm512_min_ps(vhi, _mm512_max_ps(vlo, a[k]));
            /* output row y: (a00, a01) interleaved; row y + 1: (a10, a11) */
            const __m512 zz[2][2] = {{_mm512_permutex2var_ps(a[0], z0, a[1]), _mm512_permutex2var_ps(a[0], z1, a[1])},
                                     {_mm512_permutex2var_ps(a[2], z0, a[3]), _mm512_permutex2var_ps(a[2], z1, a[3])}};
            const size_t mo = (size_t)m * plane;
            if (act == 3)
                for (int k = 0; k < npc; ++k)
                    _mm512_mask_storeu_ps(pc[k].o + mo, pc[k].mask,
                                          _mm512_add_ps(_mm512_maskz_loadu_ps(pc[k].mask, pc[k].o + mo),
                                                        zz[pc[k].second][pc[k].half]));
            else
                for (int k = 0; k < npc; ++k)
                    _mm512_mask_storeu_ps(pc[k].o + mo, pc[k].mask, zz[pc[k].second][pc[k].half]);
        }
    }
}
#endif
WINO_FUNCS(base, )

static void wino_in(kern_isa isa, int C, int H, int W, const float *in, size_t in_stride, int pt, int pl, int wc,
                    wino_geom g, int gr0, int nr, float *prow, float *D, float *V)
{
#if defined(__x86_64__) || defined(__i386__)
    /* up to 2 tiles a row (4×4 outputs) the row-wise transform leaves most lanes empty:
     * the portable gather and block transform measured faster there */
    const char *pk = getenv("RANKSCOPE_WINO_PACK");
    const int packed = !pk || pk[0] != '0';
    if (isa == KERN_AVX512 && g.tw <= 2)
        wino_in_avx512g(C, H, W, in, in_stride, pt, pl, wc, g, gr0, nr, prow, D, V);
    else if (isa == KERN_AVX512 && packed && g.tw == 8)
        wino_in_avx512p8(C, H, W, in, in_stride, pt, pl, g, gr0, nr, V);
    else if (isa == KERN_AVX512 && packed && g.tw == 4)
        wino_in_avx512p4(C, H, W, in, in_stride, pt, pl, g, gr0, nr, V);
    else if (isa == KERN_AVX512)
        wino_in_avx512(C, H, W, in, in_stride, pt, pl, wc, g, gr0, nr, prow, D, V);
    else if (isa == KERN_AVX2)
        wino_in_avx2(C, H, W, in, in_stride, pt, pl, wc, g, gr0, nr, prow, D, V);
    else
#endif
        wino_in_base(C, H, W, in, in_stride, pt, pl, wc, g, gr0, nr, prow, D, V);
}

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
        wino_in(isa, C, H, W, in, in_stride, pt, pl, wc, g, gr0, nr, prow, D, V);
        for (int xi = 0; xi < 16; ++xi)
            kern_gemm(isa, M, g.tbp, C, u + (size_t)xi * M * C, C, V + (size_t)xi * g.vs, boff,
                      Mo + (size_t)xi * g.ms, g.tbp, NULL, NULL, 0);
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

/* ---- the weight gradient (training) ---------------------------------------------------------- *
 * The forward is Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A per tile, so its adjoint in g is
 *   dg = Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G:
 * per block of tiles, V = Bᵀ d B as the forward forms it, Z = A dY Aᵀ tile-major (vectors along
 * the output channels, from dY transposed pixel-major), and for each of the 16 positions one GEMM
 * (C × ldp, K = the block's tiles) added into acc; Gᵀ · G once at the end (kern_wino3x3_wgrad_fold).
 * 16 products per tile and channel pair instead of the direct 36. */

static size_t wino_zs(const wino_geom *g, int ldp) /* floats between Z's 16 matrices */
{
    return (size_t)g->tbp * ldp + 16;
}

size_t kern_wino3x3_wgrad_scratch(kern_isa isa, int C, int ldp, int Ho, int Wo)
{
    wino_geom g = wino_geometry(C, 1, Ho, Wo, kern_vl(isa));
    /* V, Z, the block's products, the padded input row, the patches, a zero dY row, row offsets */
    return g.v_floats + 16 * wino_zs(&g, ldp) + 16 * (size_t)C * ldp + 2 * (size_t)g.Ww + 16 * (size_t)g.tbp +
           (size_t)ldp + (size_t)g.tbp + 64;
}

/* Z = A dY Aᵀ for the block's tiles, A = [1 0; 1 1; 1 −1; 0 −1]: tile j's position xi at
 * Z + xi·zs + j·ldp, the 2×2 dY samples past Ho, Wo read as zero. */
#define WINO_DY_FUNC(SUFFIX, ATTR)                                                             \
    ATTR static void wino_dy_##SUFFIX(int Ho, int Wo, const float *dyt, size_t dyt_stride,     \
                                      int ldp, wino_geom g, int gr0, int nr, const float *zero, \
                                      float *Z, size_t zs)                                     \
    {                                                                                          \
        for (int r = 0; r < nr; ++r) {                                                         \
            const int img = (gr0 + r) / g.th, y = 2 * ((gr0 + r) % g.th);                      \
            const float *base = dyt + (size_t)img * dyt_stride;                                \
            for (int tx = 0; tx < g.tw; ++tx) {                                                \
                const int x = 2 * tx, right = x + 1 < Wo, down = y + 1 < Ho;                    \
                const float *p00 = base + ((size_t)y * Wo + x) * ldp;                          \
                const float *p01 = right ? p00 + ldp : zero;                                   \
                const float *p10 = down ? p00 + (size_t)Wo * ldp : zero;                       \
                const float *p11 = right && down ? p00 + (size_t)(Wo + 1) * ldp : zero;        \
                float *z = Z + (size_t)(r * g.tw + tx) * ldp;                                  \
                for (int m = 0; m < ldp; m += 16) {                                            \
                    const wv16 a = *(const wv16 *)(p00 + m), b = *(const wv16 *)(p01 + m);     \
                    const wv16 c = *(const wv16 *)(p10 + m), d = *(const wv16 *)(p11 + m);     \
                    const wv16 r0[4][2] = {{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}};   \
                    for (int i = 0; i < 4; ++i) {                                              \
                        *(wv16 *)(z + (size_t)(4 * i) * zs + m) = r0[i][0];                    \
                        *(wv16 *)(z + (size_t)(4 * i + 1) * zs + m) = r0[i][0] + r0[i][1];     \
                        *(wv16 *)(z + (size_t)(4 * i + 2) * zs + m) = r0[i][0] - r0[i][1];     \
                        *(wv16 *)(z + (size_t)(4 * i + 3) * zs + m) = -r0[i][1];               \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    ATTR static void wino_acc_##SUFFIX(float *restrict acc, const float *restrict p, size_t n) \
    {                                                                                          \
        for (size_t k = 0; k < n; ++k)                                                         \
            acc[k] += p[k];                                                                    \
    }

#if defined(__x86_64__) || defined(__i386__)
WINO_DY_FUNC(avx512, WINO_512)
WINO_DY_FUNC(avx2, __attribute__((target("avx2,fma"))))
#endif
WINO_DY_FUNC(base, )

void kern_wino3x3_wgrad(kern_isa isa, int n, int C, int H, int W, const float *in, size_t in_stride, int pt, int pl,
                        int Ho, int Wo, const float *dyt, size_t dyt_stride, int ldp, float *scratch, float *acc)
{
    const wino_geom g = wino_geometry(C, 1, Ho, Wo, kern_vl(isa));
    const size_t zs = wino_zs(&g, ldp), ps = (size_t)C * ldp;
    float *V = scratch, *Z = V + g.v_floats, *P = Z + 16 * zs, *prow = P + 16 * ps;
    float *D = prow + 2 * (size_t)g.Ww, *zero = D + 16 * (size_t)g.tbp;
    int *boff = (int *)(zero + ldp);
    memset(prow, 0, (size_t)g.Ww * sizeof(float));
    memset(zero, 0, (size_t)ldp * sizeof(float));
    for (int k = 0; k < g.tbp; ++k)
        boff[k] = k * ldp;
    const int wc = W < g.Ww - pl ? W : g.Ww - pl, total = n * g.th;
    for (int gr0 = 0; gr0 < total; gr0 += g.rb) {
        const int nr = total - gr0 < g.rb ? total - gr0 : g.rb, nj = nr * g.tw;
        wino_in(isa, C, H, W, in, in_stride, pt, pl, wc, g, gr0, nr, prow, D, V);
#if defined(__x86_64__) || defined(__i386__)
        if (isa == KERN_AVX512)
            wino_dy_avx512(Ho, Wo, dyt, dyt_stride, ldp, g, gr0, nr, zero, Z, zs);
        else if (isa == KERN_AVX2)
            wino_dy_avx2(Ho, Wo, dyt, dyt_stride, ldp, g, gr0, nr, zero, Z, zs);
        else
#endif
            wino_dy_base(Ho, Wo, dyt, dyt_stride, ldp, g, gr0, nr, zero, Z, zs);
        for (int xi = 0; xi < 16; ++xi)
            kern_gemm(isa, C, ldp, nj, V + (size_t)xi * g.vs, g.tbp, Z + (size_t)xi * zs, boff, P + (size_t)xi * ps,
                      ldp, NULL, NULL, 0);
#if defined(__x86_64__) || defined(__i386__)
        if (isa == KERN_AVX512)
            wino_acc_avx512(acc, P, 16 * ps);
        else if (isa == KERN_AVX2)
            wino_acc_avx2(acc, P, 16 * ps);
        else
#endif
            wino_acc_base(acc, P, 16 * ps);
    }
}

void kern_wino3x3_wgrad_fold(int M, int C, int ldp, const float *acc, float *dw)
{
    /* dg = Gᵀ X G with Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1], X the 4×4 of positions, in double */
    for (int m = 0; m < M; ++m)
        for (int c = 0; c < C; ++c) {
            double x[4][4], t[3][4];
            for (int k = 0; k < 16; ++k)
                x[k / 4][k % 4] = acc[((size_t)k * C + c) * ldp + m];
            for (int j = 0; j < 4; ++j) {
                t[0][j] = x[0][j] + 0.5 * (x[1][j] + x[2][j]);
                t[1][j] = 0.5 * (x[1][j] - x[2][j]);
                t[2][j] = 0.5 * (x[1][j] + x[2][j]) + x[3][j];
            }
            float *g = dw + ((size_t)m * C + c) * 9;
            for (int i = 0; i < 3; ++i) {
                g[3 * i] += (float)(t[i][0] + 0.5 * (t[i][1] + t[i][2]));
                g[3 * i + 1] += (float)(0.5 * (t[i][1] - t[i][2]));
                g[3 * i + 2] += (float)(0.5 * (t[i][1] + t[i][2]) + t[i][3]);
            }
        }
}
