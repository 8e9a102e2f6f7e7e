/* kern_wino4.c — 3×3 stride-1 convolution by Winograd F(4×4, 3×3), for training (kernels.h:
 * kern_wino4, kern_wino4_wgrad).
 *
 * Why: training ResNet-20 spends most of its time in 3×3 stride-1 convolutions whose GEMMs
 * already run near the FMA peak; F(2×2, 3×3) (kern_wino.c) takes 16 products per 4 outputs and
 * channel pair, F(4×4, 3×3) 36 per 16 outputs: 2.25 per output instead of 4, and fewer
 * transformed floats per output (the transforms cost O(C + M) per tile). The inference path keeps
 * kern_wino3x3 (its per-image results are pinned); this file serves the three training passes.
 *
 * Matrices (Lavin & Gray, interpolation points 0, ±1, ±2, ∞):
 *   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
 *   G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
 *   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
 * The weight transform and the weight gradient's fold run in double; the input and output
 * transforms in fp32 with constants up to 8, so the result differs from direct convolution by
 * some 1e-6..1e-5 of the dot products' magnitude (tests/test_train_wino.c bounds it).
 *
 * Shape of the computation as kern_wino.c's: the tile rows of all images form one sequence, in
 * blocks of tiles sized so that V (36 × C × tiles) and the products (36 × M × tiles) stay in L2;
 * one kern_gemm per position. Tiles are 6×6 input patches at stride 4; tiles hanging past Ho, Wo
 * are computed and their extra outputs dropped.
 */
#include "rankscope/kernels.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 16 floats, unaligned: the transforms are written once in GCC vector extensions and compiled for
 * AVX-512, AVX2 and the baseline target (as kern_wino.c). */
typedef float w4v __attribute__((vector_size(64), aligned(4), may_alias));

#define W4_SET(x) ((w4v){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x})

/* The three transforms on six (or four) values of a vector type, given its operations
 * (MAD(a, k, b) = a·k + b with k a constant). */
#define W4_BT(ADD, SUB, MAD, K, d, r)                                                              \
    do {                                                                                           \
        const __typeof__(d[0]) a_ = MAD(d[2], K(-4.0f), d[4]), b_ = MAD(d[1], K(-4.0f), d[3]);     \
        const __typeof__(d[0]) c_ = SUB(d[4], d[2]), e_ = SUB(d[3], d[1]);                         \
        r[0] = MAD(d[0], K(4.0f), MAD(d[2], K(-5.0f), d[4]));                                      \
        r[1] = ADD(a_, b_);                                                                        \
        r[2] = SUB(a_, b_);                                                                        \
        r[3] = MAD(e_, K(2.0f), c_);                                                               \
        r[4] = MAD(e_, K(-2.0f), c_);                                                              \
        r[5] = MAD(d[1], K(4.0f), MAD(d[3], K(-5.0f), d[5]));                                      \
    } while (0)

/* o (4) = Aᵀ m (6) */
#define W4_AT(ADD, SUB, MAD, K, m, o)                                                              \
    do {                                                                                           \
        const __typeof__(m[0]) s12_ = ADD(m[1], m[2]), d12_ = SUB(m[1], m[2]);                     \
        const __typeof__(m[0]) s34_ = ADD(m[3], m[4]), d34_ = SUB(m[3], m[4]);                     \
        o[0] = ADD(ADD(m[0], s12_), s34_);                                                         \
        o[1] = MAD(d34_, K(2.0f), d12_);                                                           \
        o[2] = MAD(s34_, K(4.0f), s12_);                                                           \
        o[3] = ADD(MAD(d34_, K(8.0f), d12_), m[5]);                                                \
    } while (0)

/* z (6) = A y (4), A = Aᵀ transposed */
#define W4_A(ADD, SUB, MAD, K, y, z)                                                               \
    do {                                                                                           \
        const __typeof__(y[0]) e02_ = ADD(y[0], y[2]), e13_ = ADD(y[1], y[3]);                     \
        const __typeof__(y[0]) f_ = MAD(y[2], K(4.0f), y[0]);                                      \
        const __typeof__(y[0]) h_ = MAD(y[3], K(8.0f), y[1] * K(2.0f));                            \
        z[0] = y[0];                                                                               \
        z[1] = ADD(e02_, e13_);                                                                    \
        z[2] = SUB(e02_, e13_);                                                                    \
        z[3] = ADD(f_, h_);                                                                        \
        z[4] = SUB(f_, h_);                                                                        \
        z[5] = y[3];                                                                               \
    } while (0)

#define W4_ADD(a, b)    ((a) + (b))
#define W4_SUB(a, b)    ((a) - (b))
#define W4_MAD(a, k, b) ((a) * (k) + (b))

/* The 1-D transform T (NI values to NO) along both axes of an NI × NI array of w4v: down each
 * column q of LOAD(i, q) first, then along each row a of the result; STORE(a, b, v) takes the
 * NO × NO values. */
#define W4_2D(T, NI, NO, LOAD, STORE)                                                              \
    do {                                                                                           \
        w4v w2t_[NO][NI];                                                                          \
        for (int w2q_ = 0; w2q_ < (NI); ++w2q_) {                                                  \
            w4v w2c_[NI], w2r_[NO];                                                                \
            for (int w2i_ = 0; w2i_ < (NI); ++w2i_)                                                \
                w2c_[w2i_] = LOAD(w2i_, w2q_);                                                     \
            T(W4_ADD, W4_SUB, W4_MAD, W4_SET, w2c_, w2r_);                                         \
            for (int w2a_ = 0; w2a_ < (NO); ++w2a_)                                                \
                w2t_[w2a_][w2q_] = w2r_[w2a_];                                                     \
        }                                                                                          \
        for (int w2a_ = 0; w2a_ < (NO); ++w2a_) {                                                  \
            w4v w2r_[NO];                                                                          \
            T(W4_ADD, W4_SUB, W4_MAD, W4_SET, w2t_[w2a_], w2r_);                                   \
            for (int w2b_ = 0; w2b_ < (NO); ++w2b_)                                                \
                STORE(w2a_, w2b_, w2r_[w2b_]);                                                     \
        }                                                                                          \
    } while (0)

/* The AVX-512 functions' order of the tiles within each 16 (w4_transpose4): tile 4v + u in lane
 * 4u + v; its own inverse. */
#define W4_LANE(t) (4 * ((t) % 4) + (t) / 4)

static int w4_round_up(int x, int a)
{
    return (x + a - 1) / a * a;
}

/* Tiles per block: V and the products (36·(C + M)·tiles floats) within ~600 KB of the 1 MB L2:
 * 128 tiles at 16 channels, 64 at 32, 32 at 64. */
static int w4_block_tiles(int C, int M)
{
    int bt = 4096 / (C + M > 0 ? C + M : 1) / 16 * 16;
    return bt < 16 ? 16 : bt > 128 ? 128 : bt;
}

int kern_wino4_images(int C, int M, int Ho, int Wo)
{
    const int per = ((Ho + 3) / 4) * ((Wo + 3) / 4), bt = w4_block_tiles(C, M);
    return per >= bt ? 1 : (bt + per - 1) / per;
}

typedef struct w4_geom {
    int th, tw, rb, tbp, Ww, nseg;
    size_t vs, ms, bs; /* floats between V's and the products' matrices, the row-transform rows */
    size_t v_floats, m_floats;
} w4_geom;

static w4_geom w4_geometry(int C, int M, int Ho, int Wo)
{
    w4_geom g;
    g.th = (Ho + 3) / 4;
    g.tw = (Wo + 3) / 4;
    g.Ww = 4 * g.tw + 2;
    g.nseg = (g.Ww + 15) / 16;
    g.rb = w4_block_tiles(C, M) / g.tw;
    if (g.rb < 1)
        g.rb = 1;
    g.tbp = w4_round_up(g.rb * g.tw, 16);
    /* one vector more than the matrix (kern_wino.c: L1 set conflicts at powers of two) */
    g.vs = (size_t)C * g.tbp + 16;
    g.ms = (size_t)M * g.tbp + 16;
    g.bs = 4 * (size_t)g.tbp + 16 * (size_t)g.nseg + 64;
    g.v_floats = 36 * g.vs;
    g.m_floats = 36 * g.ms;
    return g;
}

/* The input stage's floats: the AVX-512 row-transform rows (6 × bs), their row-end columns
 * (12 × tbp) and row-end lane masks, or the portable padded row and patches (36 × tbp). */
static size_t w4_in_floats(const w4_geom *g)
{
    size_t a = 6 * g->bs + 12 * (size_t)g->tbp + (size_t)g->tbp / 16 + 16;
    size_t b = (size_t)g->Ww + 16 + 36 * (size_t)g->tbp;
    return (a > b ? a : b) + 16;
}

static const double w4_G[6][3] = {{0.25, 0, 0},
                                  {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                  {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                  {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                  {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                  {0, 0, 1}};

/* r = G v (6 from 3), in double: the rows of G written out (the weights change every step and
 * each pass transforms them again, so the generic 6×3 product's zeros were measurable) */
static void w4_g(const double v[3], double r[6])
{
    const double s = v[0] + v[2], a = v[0] * (1.0 / 24) + v[2] * (1.0 / 6), b = v[1] * (1.0 / 12);
    r[0] = 0.25 * v[0];
    r[1] = (s + v[1]) * (-1.0 / 6);
    r[2] = (s - v[1]) * (-1.0 / 6);
    r[3] = a + b;
    r[4] = a - b;
    r[5] = v[2];
}

void kern_wino4_weights(int M, int C, const float *w, float *u)
{
    /* U = G g Gᵀ in double, stored as 36 (M × C): 16 input channels at a time through buf, so
     * that each of the 36 matrices gets whole cache lines (one pair at a time wrote 36 floats
     * M·C apart, the same L1 set at power-of-two sizes: measured 2.5 % of a ResNet-20 step) */
    const size_t mc = (size_t)M * C;
    for (int m = 0; m < M; ++m)
        for (int c0 = 0; c0 < C; c0 += 16) {
            const int nc = C - c0 < 16 ? C - c0 : 16;
            float buf[36][16];
            for (int k = 0; k < nc; ++k) {
                const float *g = w + ((size_t)m * C + c0 + k) * 9;
                double t[3][6], col[3], r[6];
                for (int j = 0; j < 3; ++j) { /* column j of g → column j of G g */
                    const double v[3] = {g[j], g[3 + j], g[6 + j]};
                    w4_g(v, r);
                    for (int i = 0; i < 6; ++i)
                        t[j][i] = r[i];
                }
                for (int i = 0; i < 6; ++i) { /* row i of G g → row i of G g Gᵀ */
                    col[0] = t[0][i], col[1] = t[1][i], col[2] = t[2][i];
                    w4_g(col, r);
                    for (int j = 0; j < 6; ++j)
                        buf[i * 6 + j][k] = (float)r[j];
                }
            }
            for (int ij = 0; ij < 36; ++ij)
                memcpy(u + (size_t)ij * mc + (size_t)m * C + c0, buf[ij],
                       (size_t)nc * sizeof(float));
        }
}

size_t kern_wino4_scratch(kern_isa isa, int C, int M, int Ho, int Wo)
{
    (void)isa;
    w4_geom g = w4_geometry(C, M, Ho, Wo);
    /* V, the products, the input stage, the 16 outputs per tile of one channel (16 × tbp), C
     * GEMM row offsets (ints) */
    return g.v_floats + g.m_floats + w4_in_floats(&g) + 16 * (size_t)g.tbp + (size_t)C + 64;
}

/* ---- input transform: V = Bᵀ d B for the tile rows [gr0, gr0 + nr) ----------------------------
 * Portable: per channel and tile row each of the 6 input rows is padded (prow) and gathered at
 * stride 4 into the patch arrays D (36 × block tiles; patch column q of tile k is padded column
 * 4k + q), then the transform runs over the block, vectorised along the tiles. */
#define W4_IN_LOAD(i, q)     (*(const w4v *)(D + (size_t)(6 * (i) + (q)) * g.tbp + j))
#define W4_IN_STORE(p, q, x) (*(w4v *)(v + (size_t)(6 * (p) + (q)) * g.vs + j) = (x))
#define W4_IN_FUNC(SUFFIX, ATTR)                                                                   \
    ATTR static void w4_in_##SUFFIX(int C, int H, int W, const float *in, size_t in_stride,        \
                                    int pt, int pl, w4_geom g, int gr0, int nr, float *work,       \
                                    float *V)                                                      \
    {                                                                                              \
        float *prow = work, *D = work + g.Ww + 16;                                                 \
        const int wc = W < g.Ww - pl ? W : g.Ww - pl, nj = nr * g.tw;                              \
        memset(prow, 0, (size_t)g.Ww * sizeof(float));                                             \
        for (int c = 0; c < C; ++c) {                                                              \
            for (int r = 0; r < nr; ++r) {                                                         \
                const int img = (gr0 + r) / g.th, ty = (gr0 + r) % g.th;                           \
                const float *xi = in + (size_t)img * in_stride + (size_t)c * H * W;                \
                for (int i = 0; i < 6; ++i) {                                                      \
                    const int y = 4 * ty + i - pt;                                                 \
                    if (y >= 0 && y < H && wc > 0)                                                 \
                        memcpy(prow + pl, xi + (size_t)y * W, (size_t)wc * sizeof(float));         \
                    else if (wc > 0)                                                               \
                        memset(prow + pl, 0, (size_t)wc * sizeof(float));                          \
                    float *d = D + (size_t)(6 * i) * g.tbp + (size_t)r * g.tw;                     \
                    for (int k = 0; k < g.tw; ++k)                                                 \
                        for (int q = 0; q < 6; ++q)                                                \
                            d[(size_t)q * g.tbp + k] = prow[4 * k + q];                            \
                }                                                                                  \
            }                                                                                      \
            float *v = V + (size_t)c * g.tbp;                                                      \
            for (int j = 0; j < nj; j += 16) {                                                     \
                W4_2D(W4_BT, 6, 6, W4_IN_LOAD, W4_IN_STORE);                                       \
            }                                                                                      \
        }                                                                                          \
    }

/* ---- output transform: Aᵀ m A + bias (act 0: written, 3: added) --------------------------------
 * Per output channel over the block (vectorised along the tiles) into ys (16 rows of tbp: output
 * (i, j) of each tile in row 4i + j), then scattered into the output rows, dropping the rows and
 * columns past Ho, Wo. */
#define W4_OUT_LOAD(p, c) (*(const w4v *)(q + (size_t)(6 * (p) + (c)) * g.ms + j))
#define W4_OUT_STORE(i, k, x)                                                                      \
    (*(w4v *)(ys + (size_t)(4 * (i) + (k)) * g.tbp + j) = (x) + W4_SET(bm))
#define W4_OUT_FUNC(SUFFIX, ATTR)                                                                  \
    ATTR static void w4_out_##SUFFIX(int M, int Ho, int Wo, w4_geom g, const float *Mo, int gr0,   \
                                     int nr, const float *bias, int act, float *ys, float *out,    \
                                     size_t out_stride)                                            \
    {                                                                                              \
        const int nj = nr * g.tw;                                                                  \
        for (int m = 0; m < M; ++m) {                                                              \
            const float bm = bias ? bias[m] : 0.0f;                                                \
            const float *q = Mo + (size_t)m * g.tbp;                                               \
            for (int j = 0; j < nj; j += 16)                                                       \
                W4_2D(W4_AT, 6, 4, W4_OUT_LOAD, W4_OUT_STORE);                                     \
            for (int r = 0; r < nr; ++r) {                                                         \
                const int y0 = 4 * ((gr0 + r) % g.th), o0 = r * g.tw;                              \
                float *ob = out + (size_t)((gr0 + r) / g.th) * out_stride + (size_t)m * Ho * Wo;   \
                for (int i = 0; i < 4 && y0 + i < Ho; ++i) {                                       \
                    float *o = ob + (size_t)(y0 + i) * Wo;                                         \
                    for (int k = 0; k < 4; ++k) {                                                  \
                        const float *s = ys + (size_t)(4 * i + k) * g.tbp + o0;                    \
                        if (act == 3)                                                              \
                            for (int tx = 0; 4 * tx + k < Wo; ++tx)                                \
                                o[4 * tx + k] += s[tx];                                            \
                        else                                                                       \
                            for (int tx = 0; 4 * tx + k < Wo; ++tx)                                \
                                o[4 * tx + k] = s[tx];                                             \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* ---- the weight gradient's Z = A dY Aᵀ ------------------------------------------------------ *
 * Tile j's position xi at Z + xi·zs + j·ldp, vectorised along the output channels (dY pixel-major),
 * the 4×4 dY samples past Ho, Wo read as zero. */
#define W4_DY_LOAD(a, b)     (*(const w4v *)(p[a][b] + m))
#define W4_DY_STORE(i, k, x) (*(w4v *)(z + (size_t)(6 * (i) + (k)) * zs + m) = (x))
#define W4_DY_FUNC(SUFFIX, ATTR)                                                                   \
    ATTR static void w4_dy_##SUFFIX(int Ho, int Wo, const float *dyt, size_t dyt_stride, int ldp,  \
                                    w4_geom g, int gr0, int nr, const float *zero, int perm,       \
                                    float *Z, size_t zs)                                           \
    {                                                                                              \
        for (int r = 0; r < nr; ++r) {                                                             \
            const int img = (gr0 + r) / g.th, y = 4 * ((gr0 + r) % g.th);                          \
            const float *base = dyt + (size_t)img * dyt_stride;                                    \
            for (int tx = 0; tx < g.tw; ++tx) {                                                    \
                const int x = 4 * tx;                                                              \
                const float *p[4][4];                                                              \
                for (int a = 0; a < 4; ++a)                                                        \
                    for (int b = 0; b < 4; ++b)                                                    \
                        p[a][b] = y + a < Ho && x + b < Wo                                         \
                                      ? base + ((size_t)(y + a) * Wo + x + b) * ldp                \
                                      : zero;                                                      \
                const int j = r * g.tw + tx, jp = perm ? (j & ~15) + W4_LANE(j & 15) : j;          \
                float *z = Z + (size_t)jp * ldp;                                                   \
                for (int m = 0; m < ldp; m += 16)                                                  \
                    W4_2D(W4_A, 4, 6, W4_DY_LOAD, W4_DY_STORE);                                    \
            }                                                                                      \
        }                                                                                          \
    }

/* acc += p, n a multiple of 16 (one position's C·ldp products, still in L1) */
#define W4_ACC_FUNC(SUFFIX, ATTR)                                                                  \
    ATTR static void w4_acc_##SUFFIX(float *acc, const float *p, size_t n)                         \
    {                                                                                              \
        for (size_t k = 0; k < n; k += 16)                                                         \
            *(w4v *)(acc + k) += *(const w4v *)(p + k);                                            \
    }

#define W4_FUNCS(SUFFIX, ATTR)                                                                     \
    W4_IN_FUNC(SUFFIX, ATTR)                                                                       \
    W4_OUT_FUNC(SUFFIX, ATTR) W4_DY_FUNC(SUFFIX, ATTR) W4_ACC_FUNC(SUFFIX, ATTR)

W4_FUNCS(base, )

#if defined(__x86_64__) || defined(__i386__)
W4_FUNCS(avx2, __attribute__((target("avx2,fma"))))
W4_DY_FUNC(avx512, __attribute__((target("avx512f,avx2,fma"))))
W4_ACC_FUNC(avx512, __attribute__((target("avx512f,avx2,fma"))))

#include <immintrin.h>

#define W4_512           __attribute__((target("avx512f,avx2,fma")))
#define W4_ADD5(a, b)    _mm512_add_ps(a, b)
#define W4_SUB5(a, b)    _mm512_sub_ps(a, b)
#define W4_MAD5(a, k, b) _mm512_fmadd_ps(a, k, b)
#define W4_K5(x)         _mm512_set1_ps(x)
#define W4_ADD4(a, b)    _mm_add_ps(a, b)
#define W4_SUB4(a, b)    _mm_sub_ps(a, b)
#define W4_MAD4(a, k, b) _mm_fmadd_ps(a, k, b)
#define W4_K4(x)         _mm_set1_ps(x)

static inline __mmask16 w4_lanes(int lo, int hi) /* lanes [lo, hi) of 16 */
{
    lo = lo < 0 ? 0 : lo;
    hi = hi > 16 ? 16 : hi;
    return (__mmask16)(hi > lo ? ((1u << hi) - 1) & ~((1u << lo) - 1) : 0);
}

/* AVX-512 tile order: within each 16 tiles of a block, tile 4v + u sits in lane 4u + v (W4_LANE),
 * the order in which a transpose of 4×4 blocks inside the 128-bit lanes
 * (unpacks, no lane crossing) takes 16 tiles' 4 consecutive columns apart, and puts the 4 output
 * columns of 16 tiles back together; the products do not care, the weight gradient's Z follows
 * (w4_dy). Two-source permutes for the same measured slower (Zen 4). */
/* d[q] lane 4u + k = element q of block u of s_k */
static inline __attribute__((always_inline)) W4_512 void
w4_transpose4(__m512 s0, __m512 s1, __m512 s2, __m512 s3, __m512 d[4])
{
    const __m512d a0 = _mm512_castps_pd(_mm512_unpacklo_ps(s0, s1)),
                  a1 = _mm512_castps_pd(_mm512_unpackhi_ps(s0, s1));
    const __m512d a2 = _mm512_castps_pd(_mm512_unpacklo_ps(s2, s3)),
                  a3 = _mm512_castps_pd(_mm512_unpackhi_ps(s2, s3));
    d[0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    d[1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    d[2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    d[3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
}

/* AVX-512: the row transform (Bᵀ d, combining the 6 input rows) on whole padded rows, 16
 * columns at a time, stored per combination p into a row buffer T_p where tile row r starts at
 * column 4·tw·r: the block's tiles then follow one another every 4 columns across tile rows, so
 * for 16 consecutive tiles the patch columns 0..3 are the 4 phases of 64 consecutive floats
 * (w4_transpose4), columns 4 and 5 phases 0 and 1 one tile on.
 * The next tile row's store overwrites a row's 2 last columns (the last tile's columns 4 and 5):
 * they are kept aside (E4, E5 at the tile's index) and put back by a masked load at the row
 * ends. A scalar gather of 6×6 patches at stride 4 would cost as much as the products on
 * 16-channel layers. */
W4_512 static void w4_in_avx512(int C, int H, int W, const float *in, size_t in_stride, int pt,
                                int pl, w4_geom g, int gr0, int nr, float *work, float *V)
{
    float *T = work, *E4 = T + 6 * g.bs, *E5 = E4 + 6 * (size_t)g.tbp;
    uint16_t *ends = (uint16_t *)(E5 + 6 * (size_t)g.tbp);
    const int nj = nr * g.tw, oc = 4 * g.tw - pl; /* the input column of padded column 4·tw */
    const int ov0 = oc >= 0 && oc < W, ov1 = oc + 1 >= 0 && oc + 1 < W;
    const __m512 zero = _mm512_setzero_ps();
    /* patch columns 4 and 5: phases 0 and 1 of the next tile (lane λ + 4, or of the next
     * 128-bit block's first lane past tile 4k + 3), tile 16's from the broadcast */
    const __m512i i_sh = _mm512_setr_epi32(4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1, 2, 3, 16);
    /* the row-end lanes of each 16 tiles */
    for (int j0 = 0; j0 < nj; j0 += 16) {
        unsigned mk = 0;
        for (int l = 0; l < 16 && j0 + l < nj; ++l)
            if ((j0 + l) % g.tw == g.tw - 1)
                mk |= 1u << W4_LANE(l);
        ends[j0 / 16] = (uint16_t)mk;
    }
    for (int c = 0; c < C; ++c) {
        for (int r = 0; r < nr; ++r) {
            const int img = (gr0 + r) / g.th, ty = (gr0 + r) % g.th, je = r * g.tw + g.tw - 1;
            const int jend = (je & ~15) + W4_LANE(je & 15); /* the row's last tile's lane */
            const float *xi = in + (size_t)img * in_stride + (size_t)c * H * W;
            const float *row[6];
            for (int i = 0; i < 6; ++i) {
                const int y = 4 * ty + i - pt;
                row[i] = y >= 0 && y < H ? xi + (size_t)y * W - pl : NULL; /* at padded column 0 */
            }
            /* the next channel's rows that this tile row reads first: activations come from
             * memory, and the hardware prefetchers start over at each channel's plane */
            if (c + 1 < C)
                for (int i = 0; i < 4; ++i) {
                    const int y = 4 * ty + i - pt;
                    const char *nx = (const char *)(xi + (size_t)H * W +
                                                    (size_t)(y < 0   ? 0
                                                             : y < H ? y
                                                                     : H - 1) *
                                                        W);
                    for (int b = 0; b < W * 4 + 63; b += 64)
                        _mm_prefetch(nx + b, _MM_HINT_T0);
                }
            float *tr = T + 4 * (size_t)g.tw * r;
            for (int s = 0; 16 * s < 4 * g.tw; ++s) { /* the columns before 4·tw */
                const __mmask16 mk = w4_lanes(pl - 16 * s, W + pl - 16 * s);
                __m512 d[6], t[6];
                for (int i = 0; i < 6; ++i)
                    d[i] = row[i] && mk ? _mm512_maskz_loadu_ps(mk, row[i] + 16 * (size_t)s) : zero;
                W4_BT(W4_ADD5, W4_SUB5, W4_MAD5, W4_K5, d, t);
                for (int p = 0; p < 6; ++p)
                    _mm512_storeu_ps(tr + (size_t)p * g.bs + 16 * (size_t)s, t[p]);
            }
            /* columns 4·tw and 4·tw + 1 (the last tile's 4 and 5) into E4, E5 at the tile's
             * lane, on 128-bit vectors: a whole 16-column segment for them was a third of this
             * loop on 32×32 maps */
            __m128 d[6], t[6];
            for (int i = 0; i < 6; ++i)
                d[i] = row[i] ? _mm_setr_ps(ov0 ? row[i][4 * g.tw] : 0.0f,
                                            ov1 ? row[i][4 * g.tw + 1] : 0.0f, 0.0f, 0.0f)
                              : _mm_setzero_ps();
            W4_BT(W4_ADD4, W4_SUB4, W4_MAD4, W4_K4, d, t);
            for (int p = 0; p < 6; ++p) {
                _mm_store_ss(E4 + (size_t)p * g.tbp + jend, t[p]);
                _mm_store_ss(E5 + (size_t)p * g.tbp + jend, _mm_movehdup_ps(t[p]));
            }
        }
        float *v = V + (size_t)c * g.tbp;
        for (int j0 = 0; j0 < nj; j0 += 16) {
            const __mmask16 me = ends[j0 / 16];
            for (int p = 0; p < 6; ++p) {
                const float *tp = T + (size_t)p * g.bs + 4 * (size_t)j0;
                const __m512 s0 = _mm512_loadu_ps(tp), s1 = _mm512_loadu_ps(tp + 16);
                const __m512 s2 = _mm512_loadu_ps(tp + 32), s3 = _mm512_loadu_ps(tp + 48);
                __m512 d[6], t[6];
                w4_transpose4(s0, s1, s2, s3, d);
                d[4] = _mm512_permutex2var_ps(d[0], i_sh, _mm512_set1_ps(tp[64]));
                d[5] = _mm512_permutex2var_ps(d[1], i_sh, _mm512_set1_ps(tp[65]));
                d[4] = _mm512_mask_loadu_ps(d[4], me, E4 + (size_t)p * g.tbp + j0);
                d[5] = _mm512_mask_loadu_ps(d[5], me, E5 + (size_t)p * g.tbp + j0);
                W4_BT(W4_ADD5, W4_SUB5, W4_MAD5, W4_K5, d, t);
                for (int q = 0; q < 6; ++q)
                    _mm512_storeu_ps(v + (size_t)(6 * p + q) * g.vs + j0, t[q]);
            }
        }
    }
}
/* Aᵀ m A + bias on 16 tiles at a time, each output row's 4 columns of the 16 tiles interleaved
 * (w4_transpose4) into 4 vectors of 4 tiles and stored straight into the output rows: the tiles of
 * one vector may span several tile rows (narrow maps) or part of one, so each vector's row pieces
 * (source vector, output address, masked lanes) are worked out once per 16 tiles and reused for
 * every output channel (a scalar scatter through ys cost as much as the input transform). */
typedef struct w4_piece {
    float *o;       /* output channel 0's address for lane 0 */
    __mmask16 mask; /* the lanes inside this tile row's piece and inside the row's Wo columns */
    int src;        /* 4·(output row in the tile) + (group of 4 tiles) */
    int lo;         /* the first lane */
} w4_piece;

W4_512 static void w4_out_avx512(int M, int Ho, int Wo, w4_geom g, const float *Mo, int gr0, int nr,
                                 const float *bias, int act, float *ys, float *out,
                                 size_t out_stride)
{
    (void)ys;
    const size_t plane = (size_t)Ho * Wo;
    const int nj = nr * g.tw;
    for (int j0 = 0; j0 < nj; j0 += 16) {
        w4_piece pc[64];
        int npc = 0;
        for (int b = 0; b < 4; ++b) {
            const int base = j0 + 4 * b, end = base + 4 < nj ? base + 4 : nj;
            for (int t0 = base; t0 < end;) {
                const int r = t0 / g.tw, t1 = (r + 1) * g.tw < end ? (r + 1) * g.tw : end;
                const int y0 = 4 * ((gr0 + r) % g.th);
                const int colofs =
                    4 * (t0 - r * g.tw) - 4 * (t0 - base); /* output column of lane 0 */
                const int hi = 4 * (t1 - base) < Wo - colofs ? 4 * (t1 - base) : Wo - colofs;
                const __mmask16 mk = w4_lanes(4 * (t0 - base), hi);
                float *o = out + (size_t)((gr0 + r) / g.th) * out_stride + (size_t)y0 * Wo + colofs;
                for (int i = 0; i < 4 && y0 + i < Ho && mk; ++i)
                    pc[npc++] = (w4_piece){o + (ptrdiff_t)i * Wo, mk, 4 * i + b, 4 * (t0 - base)};
                t0 = t1;
            }
        }
        for (int m = 0; m < M; ++m) {
            const float *q = Mo + (size_t)m * g.tbp + j0;
            const __m512 bv = _mm512_set1_ps(bias ? bias[m] : 0.0f);
            __m512 u[4][6], x[16];
            for (int c = 0; c < 6; ++c) {
                __m512 sv[6], o[4];
                for (int p = 0; p < 6; ++p)
                    sv[p] = _mm512_loadu_ps(q + (size_t)(6 * p + c) * g.ms);
                W4_AT(W4_ADD5, W4_SUB5, W4_MAD5, W4_K5, sv, o);
                for (int i = 0; i < 4; ++i)
                    u[i][c] = o[i];
            }
            for (int i = 0; i < 4; ++i) {
                __m512 o[4];
                W4_AT(W4_ADD5, W4_SUB5, W4_MAD5, W4_K5, u[i], o);
                for (int k = 0; k < 4; ++k)
                    o[k] = _mm512_add_ps(o[k], bv);
                w4_transpose4(o[0], o[1], o[2], o[3],
                              x + 4 * i); /* tiles 4b..4b + 3 in x[4i + b] */
            }
            const size_t mo = (size_t)m * plane;
            if (m + 1 < M) /* the next channel's output lines (write-allocated from memory) */
                for (int k = 0; k < npc; ++k)
                    _mm_prefetch((const char *)(pc[k].o + mo + plane + pc[k].lo), _MM_HINT_T0);
            if (act == 3)
                for (int k = 0; k < npc; ++k)
                    _mm512_mask_storeu_ps(
                        pc[k].o + mo, pc[k].mask,
                        _mm512_add_ps(_mm512_maskz_loadu_ps(pc[k].mask, pc[k].o + mo),
                                      x[pc[k].src]));
            else
                for (int k = 0; k < npc; ++k)
                    if (pc[k].mask == 0xFFFF) /* masked stores measured slower on Zen 4 */
                        _mm512_storeu_ps(pc[k].o + mo, x[pc[k].src]);
                    else
                        _mm512_mask_storeu_ps(pc[k].o + mo, pc[k].mask, x[pc[k].src]);
        }
    }
}
#endif

/* isa's version of a function compiled per ISA (w4_in_avx512 and so on) */
#if defined(__x86_64__) || defined(__i386__)
#define W4_CALL(isa, FN, ...)                                                                      \
    ((isa) == KERN_AVX512 ? FN##_avx512(__VA_ARGS__)                                               \
     : (isa) == KERN_AVX2 ? FN##_avx2(__VA_ARGS__)                                                 \
                          : FN##_base(__VA_ARGS__))
#else
#define W4_CALL(isa, FN, ...) FN##_base(__VA_ARGS__)
#endif

void kern_wino4(kern_isa isa, int n, int C, int H, int W, const float *in, size_t in_stride, int M,
                const float *u, const float *bias, int pt, int pl, int Ho, int Wo, int act,
                float *scratch, float *out, size_t out_stride)
{
    const w4_geom g = w4_geometry(C, M, Ho, Wo);
    float *V = scratch, *Mo = V + g.v_floats, *work = Mo + g.m_floats,
          *ys = work + w4_in_floats(&g);
    int *boff = (int *)(ys + 16 * (size_t)g.tbp);
    for (int k = 0; k < C; ++k)
        boff[k] = k * g.tbp;
    /* the row buffers' columns past the last tile row are read (lanes past the block's tiles,
     * whose products are dropped): finite values, not stale NaNs */
    memset(work, 0, w4_in_floats(&g) * sizeof(float));
    const int total = n * g.th;
    for (int gr0 = 0; gr0 < total; gr0 += g.rb) {
        const int nr = total - gr0 < g.rb ? total - gr0 : g.rb;
        W4_CALL(isa, w4_in, C, H, W, in, in_stride, pt, pl, g, gr0, nr, work, V);
        for (int xi = 0; xi < 36; ++xi)
            kern_gemm(isa, M, g.tbp, C, u + (size_t)xi * M * C, C, V + (size_t)xi * g.vs, boff,
                      Mo + (size_t)xi * g.ms, g.tbp, NULL, NULL, 0);
        W4_CALL(isa, w4_out, M, Ho, Wo, g, Mo, gr0, nr, bias, act, ys, out, out_stride);
    }
}

/* ---- the weight gradient (training) ---------------------------------------------------------- *
 * The forward is Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A per tile, so dg = Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G:
 * per block of tiles V as the forward forms it, Z = A dY Aᵀ tile-major, and per position one GEMM
 * (C × ldp, K = the block's tiles) added into acc; Gᵀ · G once at the end (kern_wino4_wgrad_fold). */

static size_t w4_zs(const w4_geom *g, int ldp) /* floats between Z's 36 matrices */
{
    return (size_t)g->tbp * ldp + 16;
}

size_t kern_wino4_wgrad_scratch(kern_isa isa, int C, int ldp, int Ho, int Wo)
{
    (void)isa;
    w4_geom g = w4_geometry(C, ldp, Ho, Wo);
    /* V, Z, one position's products, the input stage, a zero dY row, row offsets */
    return g.v_floats + 36 * w4_zs(&g, ldp) + (size_t)C * ldp + w4_in_floats(&g) + (size_t)ldp +
           (size_t)g.tbp + 64;
}

void kern_wino4_wgrad(kern_isa isa, int n, int C, int H, int W, const float *in, size_t in_stride,
                      int pt, int pl, int Ho, int Wo, const float *dyt, size_t dyt_stride, int ldp,
                      float *scratch, float *acc)
{
    const w4_geom g = w4_geometry(C, ldp, Ho, Wo);
    const size_t zs = w4_zs(&g, ldp), ps = (size_t)C * ldp;
    float *V = scratch, *Z = V + g.v_floats, *P = Z + 36 * zs, *work = P + ps;
    float *zero = work + w4_in_floats(&g);
    int *boff = (int *)(zero + ldp);
    memset(work, 0, w4_in_floats(&g) * sizeof(float));
    memset(zero, 0, (size_t)ldp * sizeof(float));
    for (int k = 0; k < g.tbp; ++k)
        boff[k] = k * ldp;
    const int total = n * g.th;
    for (int gr0 = 0; gr0 < total; gr0 += g.rb) {
        const int nr = total - gr0 < g.rb ? total - gr0 : g.rb, nj = nr * g.tw;
        W4_CALL(isa, w4_in, C, H, W, in, in_stride, pt, pl, g, gr0, nr, work, V);
        /* AVX-512's tile order scatters a last partial 16 over its lanes: the GEMMs then run over
         * whole 16s, Z zero at the lanes without a tile (V holds finite leftovers there) */
        const int perm = isa == KERN_AVX512, nk = perm ? w4_round_up(nj, 16) : nj;
        for (int j = nj; j < nk; ++j)
            for (int xi = 0; xi < 36; ++xi)
                memset(Z + (size_t)xi * zs + (size_t)((j & ~15) + W4_LANE(j & 15)) * ldp, 0,
                       (size_t)ldp * sizeof(float));
        W4_CALL(isa, w4_dy, Ho, Wo, dyt, dyt_stride, ldp, g, gr0, nr, zero, perm, Z, zs);
        for (int xi = 0; xi < 36; ++xi) {
            kern_gemm(isa, C, ldp, nk, V + (size_t)xi * g.vs, g.tbp, Z + (size_t)xi * zs, boff, P,
                      ldp, NULL, NULL, 0);
            W4_CALL(isa, w4_acc, acc + (size_t)xi * ps, P, ps);
        }
    }
}

void kern_wino4_wgrad_fold(int M, int C, int ldp, const float *acc, float *dw)
{
    /* dg = Gᵀ X G, X the 6×6 of positions, in double; 16 output channels at a time through buf
     * (whole cache lines of the 36 positions, C·ldp apart, as in kern_wino4_weights) */
    for (int c = 0; c < C; ++c)
        for (int m0 = 0; m0 < M; m0 += 16) {
            float buf[36][16];
            for (int k = 0; k < 36; ++k)
                memcpy(buf[k], acc + ((size_t)k * C + c) * ldp + m0,
                       16 * sizeof(float)); /* ldp: whole 16s */
            for (int m = m0; m < M && m < m0 + 16; ++m) {
                double x[6][6], t[3][6];
                for (int k = 0; k < 36; ++k)
                    x[k / 6][k % 6] = buf[k][m - m0];
                for (int i = 0; i < 3; ++i)
                    for (int j = 0; j < 6; ++j) {
                        double s = 0;
                        for (int p = 0; p < 6; ++p)
                            s += w4_G[p][i] * x[p][j];
                        t[i][j] = s;
                    }
                float *g = dw + ((size_t)m * C + c) * 9;
                for (int i = 0; i < 3; ++i)
                    for (int j = 0; j < 3; ++j) {
                        double s = 0;
                        for (int q = 0; q < 6; ++q)
                            s += t[i][q] * w4_G[q][j];
                        g[3 * i + j] += (float)s;
                    }
            }
        }
}
