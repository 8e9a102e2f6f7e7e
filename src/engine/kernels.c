/* kernels.c — GEMM-like tile kernels (AVX-512, AVX2+FMA, portable), max pooling, im2col.
 *
 * The vector paths are compiled with per-function target attributes and chosen at run time
 * (__builtin_cpu_supports), so the binary needs no -march flag and runs on any x86-64 (or other)
 * CPU through the portable path. */
#include "rankscope/kernels.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KT_CAT2(a, b) a##_##b
#define KT_CAT(a, b) KT_CAT2(a, b)

typedef void (*tile_fn)(int K, const float *a, int lda, const float *b, const int *boff,
                        float *c, int ldc, const float *bias_row, const float *bias_col,
                        int act, float lo, float hi);

#if defined(__x86_64__) || defined(__i386__)
#define RS_HAVE_X86 1
#include <immintrin.h>

/* ---- AVX2 + FMA: 8 lanes, 16 registers -> 6 rows × 2 vectors of accumulators ---------------- */
#define KT_NAME(x) KT_CAT(x, avx2)
#define KT_TARGET __attribute__((target("avx2,fma")))
#define KT_VEC __m256
#define KT_VL 8
#define KT_LOAD(p) _mm256_loadu_ps(p)
#define KT_STORE(p, v) _mm256_storeu_ps((p), (v))
#define KT_BCAST(p) _mm256_broadcast_ss(p)
#define KT_FMA(a, b, acc) _mm256_fmadd_ps((a), (b), (acc))
#define KT_ZERO() _mm256_setzero_ps()
#define KT_ADD(x, y) _mm256_add_ps((x), (y))
#define KT_MAX(x, y) _mm256_max_ps((x), (y))
#define KT_MIN(x, y) _mm256_min_ps((x), (y))
#include "kern_tile.inc"
KT_INST(1, 1) KT_INST(2, 1) KT_INST(3, 1) KT_INST(4, 1) KT_INST(5, 1) KT_INST(6, 1)
KT_INST(1, 2) KT_INST(2, 2) KT_INST(3, 2) KT_INST(4, 2) KT_INST(5, 2) KT_INST(6, 2)
static const tile_fn tiles_avx2[6][2] = {
    {tile_1_1_avx2, tile_1_2_avx2}, {tile_2_1_avx2, tile_2_2_avx2},
    {tile_3_1_avx2, tile_3_2_avx2}, {tile_4_1_avx2, tile_4_2_avx2},
    {tile_5_1_avx2, tile_5_2_avx2}, {tile_6_1_avx2, tile_6_2_avx2},
};
#undef KT_NAME
#undef KT_TARGET
#undef KT_VEC
#undef KT_VL
#undef KT_LOAD
#undef KT_STORE
#undef KT_BCAST
#undef KT_FMA
#undef KT_ZERO
#undef KT_ADD
#undef KT_MAX
#undef KT_MIN
#undef KT_ARGS
#undef KT_PASS
#undef KT_INST

/* ---- AVX-512: 16 lanes, 32 registers -> 6 rows × 4 vectors of accumulators ------------------ */
#define KT_NAME(x) KT_CAT(x, avx512)
#define KT_TARGET __attribute__((target("avx512f,avx2,fma")))
#define KT_VEC __m512
#define KT_VL 16
#define KT_LOAD(p) _mm512_loadu_ps(p)
#define KT_STORE(p, v) _mm512_storeu_ps((p), (v))
#define KT_BCAST(p) _mm512_set1_ps(*(p))
#define KT_FMA(a, b, acc) _mm512_fmadd_ps((a), (b), (acc))
#define KT_ZERO() _mm512_setzero_ps()
#define KT_ADD(x, y) _mm512_add_ps((x), (y))
#define KT_MAX(x, y) _mm512_max_ps((x), (y))
#define KT_MIN(x, y) _mm512_min_ps((x), (y))
#include "kern_tile.inc"
KT_INST(1, 1) KT_INST(2, 1) KT_INST(3, 1) KT_INST(4, 1) KT_INST(5, 1) KT_INST(6, 1)
KT_INST(1, 2) KT_INST(2, 2) KT_INST(3, 2) KT_INST(4, 2) KT_INST(5, 2) KT_INST(6, 2)
KT_INST(1, 3) KT_INST(2, 3) KT_INST(3, 3) KT_INST(4, 3) KT_INST(5, 3) KT_INST(6, 3)
KT_INST(1, 4) KT_INST(2, 4) KT_INST(3, 4) KT_INST(4, 4) KT_INST(5, 4) KT_INST(6, 4)
static const tile_fn tiles_avx512[6][4] = {
    {tile_1_1_avx512, tile_1_2_avx512, tile_1_3_avx512, tile_1_4_avx512},
    {tile_2_1_avx512, tile_2_2_avx512, tile_2_3_avx512, tile_2_4_avx512},
    {tile_3_1_avx512, tile_3_2_avx512, tile_3_3_avx512, tile_3_4_avx512},
    {tile_4_1_avx512, tile_4_2_avx512, tile_4_3_avx512, tile_4_4_avx512},
    {tile_5_1_avx512, tile_5_2_avx512, tile_5_3_avx512, tile_5_4_avx512},
    {tile_6_1_avx512, tile_6_2_avx512, tile_6_3_avx512, tile_6_4_avx512},
};

/* 2×2 stride-2 pooling, 16 outputs per step: rows max'ed pairwise, then even/odd lanes. */
static const int pool_even_idx[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int pool_odd_idx[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};

__attribute__((target("avx512f,avx2,fma"))) static void
pool2x2_avx512(int C, int in_rs, int in_cs, const float *in, int Ho, int Wo, int relu, float *out)
{
    const __m512i ie = _mm512_loadu_si512(pool_even_idx), io = _mm512_loadu_si512(pool_odd_idx);
    const __m512 zero = _mm512_setzero_ps();
    for (int ch = 0; ch < C; ++ch)
        for (int oy = 0; oy < Ho; ++oy) {
            const float *r0 = in + (size_t)ch * in_cs + (size_t)(2 * oy) * in_rs;
            const float *r1 = r0 + in_rs;
            float *o = out + ((size_t)ch * Ho + oy) * Wo;
            for (int ox = 0; ox < Wo; ox += 16) {
                __m512 ma = _mm512_max_ps(_mm512_loadu_ps(r0 + 2 * ox), _mm512_loadu_ps(r1 + 2 * ox));
                __m512 mb = _mm512_max_ps(_mm512_loadu_ps(r0 + 2 * ox + 16),
                                          _mm512_loadu_ps(r1 + 2 * ox + 16));
                __m512 v = _mm512_max_ps(_mm512_permutex2var_ps(ma, ie, mb),
                                         _mm512_permutex2var_ps(ma, io, mb));
                if (relu)
                    v = _mm512_max_ps(v, zero);
                int left = Wo - ox;
                __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
                _mm512_mask_storeu_ps(o + ox, k, v);
            }
        }
}

/* 3×3 stride-2 windows (torchvision's stem pool), 16 outputs per step: the vertical max of the
 * window's rows over 33 input columns (masked loads: columns and rows outside the input never
 * win, as in the definition), then max(x[2k], x[2k+1], x[2k+2]) by lane permutes. Same
 * comparisons as kern_maxpool's (a later row or column wins unless the earlier is larger). */
static const int pool_next_even_idx[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

__attribute__((target("avx512f,avx2,fma"))) static void
pool3x3s2_avx512(int C, int H, int W, int in_rs, int in_cs, const float *in, int Ho, int Wo, int pt, int pl,
                 int relu, float *out)
{
    const __m512i ie = _mm512_loadu_si512(pool_even_idx), io = _mm512_loadu_si512(pool_odd_idx);
    const __m512i in2 = _mm512_loadu_si512(pool_next_even_idx);
    const __m512 lowest = _mm512_set1_ps(-FLT_MAX), zero = _mm512_setzero_ps();
    for (int ch = 0; ch < C; ++ch)
        for (int oy = 0; oy < Ho; ++oy) {
            float *o = out + ((size_t)ch * Ho + oy) * Wo;
            for (int ox = 0; ox < Wo; ox += 16) {
                const int c0 = 2 * ox - pl; /* input column of x[0] */
                __mmask16 m[3];
                for (int q = 0; q < 3; ++q) { /* lanes l with 0 <= c0 + 16q + l < W (one lane of the third) */
                    const int first = c0 + 16 * q, lo = first < 0 ? -first : 0;
                    int hi = W - first < 16 ? W - first : 16;
                    hi = q == 2 && hi > 1 ? 1 : hi;
                    m[q] = (__mmask16)(hi > lo ? ((1u << hi) - 1) & ~((1u << lo) - 1) : 0);
                }
                __m512 a = lowest, b = lowest, cc = lowest;
                for (int i = 0; i < 3; ++i) {
                    const int y = 2 * oy - pt + i;
                    if (y < 0 || y >= H)
                        continue;
                    /* lanes outside the mask are neither read nor faulted */
                    const float *r = in + (size_t)ch * in_cs + (size_t)y * in_rs + c0;
                    a = _mm512_max_ps(_mm512_mask_loadu_ps(lowest, m[0], r), a);
                    b = _mm512_max_ps(_mm512_mask_loadu_ps(lowest, m[1], r + 16), b);
                    cc = _mm512_max_ps(_mm512_mask_loadu_ps(lowest, m[2], r + 32), cc);
                }
                const __m512 e = _mm512_permutex2var_ps(a, ie, b), od = _mm512_permutex2var_ps(a, io, b);
                const __m512 e2 = _mm512_permutex2var_ps(e, in2, cc);
                __m512 v = _mm512_max_ps(e2, _mm512_max_ps(od, e));
                if (relu)
                    v = _mm512_max_ps(v, zero);
                const int left = Wo - ox;
                _mm512_mask_storeu_ps(o + ox, left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1), v);
            }
        }
}

__attribute__((target("avx2,fma"))) static void
pool2x2_avx2(int C, int in_rs, int in_cs, const float *in, int Ho, int Wo, int relu, float *out)
{
    const __m256 zero = _mm256_setzero_ps();
    for (int ch = 0; ch < C; ++ch)
        for (int oy = 0; oy < Ho; ++oy) {
            const float *r0 = in + (size_t)ch * in_cs + (size_t)(2 * oy) * in_rs;
            const float *r1 = r0 + in_rs;
            float *o = out + ((size_t)ch * Ho + oy) * Wo;
            for (int ox = 0; ox < Wo; ox += 8) {
                __m256 ma = _mm256_max_ps(_mm256_loadu_ps(r0 + 2 * ox), _mm256_loadu_ps(r1 + 2 * ox));
                __m256 mb = _mm256_max_ps(_mm256_loadu_ps(r0 + 2 * ox + 8),
                                          _mm256_loadu_ps(r1 + 2 * ox + 8));
                /* in-lane even/odd gather, then fix the 128-bit lane order */
                __m256 v = _mm256_max_ps(_mm256_shuffle_ps(ma, mb, 0x88), _mm256_shuffle_ps(ma, mb, 0xDD));
                v = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
                if (relu)
                    v = _mm256_max_ps(v, zero);
                int left = Wo - ox;
                if (left >= 8) {
                    _mm256_storeu_ps(o + ox, v);
                } else {
                    float tmp[8];
                    _mm256_storeu_ps(tmp, v);
                    memcpy(o + ox, tmp, (size_t)left * sizeof(float));
                }
            }
        }
}

__attribute__((target("avx512f,avx2,fma"))) static void
u8_affine_avx512(const uint8_t *src, size_t n, float scale, float shift, float *dst)
{
    const __m512 a = _mm512_set1_ps(scale), b = _mm512_set1_ps(shift);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_fmadd_ps(_mm512_cvtepi32_ps(q), a, b));
    }
    for (; i < n; ++i)
        dst[i] = (float)src[i] * scale + shift;
}

__attribute__((target("avx2,fma"))) static void
u8_affine_avx2(const uint8_t *src, size_t n, float scale, float shift, float *dst)
{
    const __m256 a = _mm256_set1_ps(scale), b = _mm256_set1_ps(shift);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), a, b));
    }
    for (; i < n; ++i)
        dst[i] = (float)src[i] * scale + shift;
}
#endif /* x86 */

/* Portable path: same contract, 8-float column blocks the compiler can vectorise. */
static void gemm_scalar(int M, int N, int K, const float *a, int lda, const float *b,
                        const int *boff, float *c, int ldc, const float *bias_row,
                        const float *bias_col, int act, float lo, float hi)
{
    enum { JB = 64 };
    for (int j0 = 0; j0 < N; j0 += JB) {
        int nj = N - j0 < JB ? N - j0 : JB;
        for (int i = 0; i < M; ++i) {
            float acc[JB];
            for (int j = 0; j < nj; ++j)
                acc[j] = 0.0f;
            const float *ai = a + (size_t)i * lda;
            for (int k = 0; k < K; ++k) {
                const float aik = ai[k];
                const float *bk = b + boff[k] + j0;
                for (int j = 0; j < nj; ++j)
                    acc[j] += aik * bk[j];
            }
            float br = bias_row ? bias_row[i] : 0.0f;
            float *ci = c + (size_t)i * ldc + j0;
            for (int j = 0; j < nj; ++j) {
                float x = acc[j] + br + (bias_col ? bias_col[j0 + j] : 0.0f);
                if (act == 2) {
                    x = x < lo ? lo : x;
                    x = x > hi ? hi : x;
                }
                ci[j] = act == 1 && x < 0.0f ? 0.0f : x;
            }
        }
    }
}

int kern_supported(kern_isa isa)
{
    switch (isa) {
    case KERN_SCALAR:
        return 1;
#ifdef RS_HAVE_X86
    case KERN_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KERN_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

kern_isa kern_detect(void)
{
    kern_isa cap = KERN_AVX512;
    const char *env = getenv("RANKSCOPE_ISA");
    if (env && strcmp(env, "scalar") == 0)
        cap = KERN_SCALAR;
    else if (env && strcmp(env, "avx2") == 0)
        cap = KERN_AVX2;
    for (int i = (int)cap; i > 0; --i)
        if (kern_supported((kern_isa)i))
            return (kern_isa)i;
    return KERN_SCALAR;
}

const char *kern_isa_name(kern_isa isa)
{
    switch (isa) {
    case KERN_AVX2:
        return "avx2";
    case KERN_AVX512:
        return "avx512";
    default:
        return "scalar";
    }
}

int kern_vl(kern_isa isa)
{
    return isa == KERN_AVX512 ? 16 : 8;
}

/* act: 0 none, 1 ReLU, 2 clamp to [lo, hi] */
static void gemm(kern_isa isa, int M, int N, int K, const float *a, int lda, const float *b,
                 const int *boff, float *c, int ldc, const float *bias_row,
                 const float *bias_col, int act, float lo, float hi)
{
#ifdef RS_HAVE_X86
    if (isa == KERN_AVX2 || isa == KERN_AVX512) {
        const int vl = isa == KERN_AVX512 ? 16 : 8;
        const int maxnr = isa == KERN_AVX512 ? 4 : 2;
        const int nv = N / vl;
        /* Columns outer: the B panel (K × nr·vl) stays in L1 while every row block reuses it. */
        for (int v0 = 0; v0 < nv; v0 += maxnr) {
            const int nr = nv - v0 < maxnr ? nv - v0 : maxnr;
            const int j0 = v0 * vl;
            for (int i0 = 0; i0 < M; i0 += 6) {
                const int mr = M - i0 < 6 ? M - i0 : 6;
                tile_fn f = isa == KERN_AVX512 ? tiles_avx512[mr - 1][nr - 1]
                                               : tiles_avx2[mr - 1][nr - 1];
                f(K, a + (size_t)i0 * lda, lda, b + j0, boff, c + (size_t)i0 * ldc + j0, ldc,
                  bias_row ? bias_row + i0 : NULL, bias_col ? bias_col + j0 : NULL, act, lo, hi);
            }
        }
        return;
    }
#else
    (void)isa;
#endif
    gemm_scalar(M, N, K, a, lda, b, boff, c, ldc, bias_row, bias_col, act, lo, hi);
}

void kern_gemm(kern_isa isa, int M, int N, int K, const float *a, int lda, const float *b,
               const int *boff, float *c, int ldc, const float *bias_row,
               const float *bias_col, int relu)
{
    gemm(isa, M, N, K, a, lda, b, boff, c, ldc, bias_row, bias_col, relu != 0, 0.0f, 0.0f);
}

void kern_gemm_clamp(kern_isa isa, int M, int N, int K, const float *a, int lda, const float *b,
                     const int *boff, float *c, int ldc, const float *bias_row,
                     const float *bias_col, float lo, float hi)
{
    gemm(isa, M, N, K, a, lda, b, boff, c, ldc, bias_row, bias_col, 2, lo, hi);
}

int kern_maxpool3x3s2(kern_isa isa, int C, int H, int W, int in_rs, int in_cs, const float *in, int Ho, int Wo,
                      int pt, int pl, int relu, float *out)
{
#ifdef RS_HAVE_X86
    if (isa == KERN_AVX512 && pt >= 0 && pt <= 2 && pl >= 0 && pl <= 2) {
        pool3x3s2_avx512(C, H, W, in_rs, in_cs, in, Ho, Wo, pt, pl, relu, out);
        return 0;
    }
#else
    (void)isa, (void)C, (void)H, (void)W, (void)in_rs, (void)in_cs, (void)in, (void)Ho, (void)Wo, (void)pt;
    (void)pl, (void)relu, (void)out;
#endif
    return -1;
}

/* 2×2 stride-2 windows without padding: the pooling every LeNet-style net uses. */
static void maxpool_2x2(int C, int in_rs, int in_cs, const float *in, int Ho, int Wo, int relu,
                        float *out)
{
    for (int ch = 0; ch < C; ++ch) {
        const float *src = in + (size_t)ch * in_cs;
        float *dst = out + (size_t)ch * Ho * Wo;
        for (int oy = 0; oy < Ho; ++oy) {
            const float *r0 = src + (size_t)(2 * oy) * in_rs;
            const float *r1 = r0 + in_rs;
            float *o = dst + (size_t)oy * Wo;
            for (int ox = 0; ox < Wo; ++ox) {
                float m0 = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
                float m1 = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
                float m = m0 > m1 ? m0 : m1;
                o[ox] = relu && m < 0.0f ? 0.0f : m;
            }
        }
    }
}

/* Any window, stride, dilation and padding (torchvision's 3×3 stride-2 pad-1 stem pool), one
 * output row at a time in three vectorisable passes instead of a bounds check per tap: the max of
 * the window's input rows into a row padded with -FLT_MAX (padding never wins, as in the
 * definition), the max over each window's columns at every start column, then every sw-th of
 * those. -1 when a padded row does not fit the stack buffer. */
static int maxpool_rows(int C, int H, int W, int in_rs, int in_cs, const float *in, int Ho, int Wo, int kh,
                        int kw, int sh, int sw, int dh, int dw, int pt, int pl, int relu, float *out)
{
    enum { ROW_MAX = 2048 };
    float vrow[ROW_MAX], hrow[ROW_MAX];
    const int span = (Wo - 1) * sw + 1; /* window start columns used, in padded coordinates */
    const int wpad = span + (kw - 1) * dw;
    if (wpad > ROW_MAX || pl > ROW_MAX || W > ROW_MAX - pl)
        return -1;
    const int wlen = W < wpad - pl ? W : wpad - pl; /* input columns a window can reach */
    for (int x = 0; x < wpad; ++x)
        vrow[x] = -FLT_MAX;
    for (int ch = 0; ch < C; ++ch) {
        const float *src = in + (size_t)ch * in_cs;
        float *dst = out + (size_t)ch * Ho * Wo;
        for (int oy = 0; oy < Ho; ++oy) {
            float *v = vrow + pl;
            for (int x = 0; x < wlen; ++x)
                v[x] = -FLT_MAX;
            for (int i = 0; i < kh; ++i) {
                int y = oy * sh - pt + i * dh;
                if (y < 0 || y >= H)
                    continue;
                const float *r = src + (size_t)y * in_rs;
                for (int x = 0; x < wlen; ++x)
                    v[x] = r[x] > v[x] ? r[x] : v[x];
            }
            for (int x = 0; x < span; ++x)
                hrow[x] = vrow[x];
            for (int j = 1; j < kw; ++j)
                for (int x = 0; x < span; ++x)
                    hrow[x] = vrow[x + j * dw] > hrow[x] ? vrow[x + j * dw] : hrow[x];
            float *o = dst + (size_t)oy * Wo;
            for (int ox = 0; ox < Wo; ++ox) {
                float m = hrow[ox * sw];
                o[ox] = relu && m < 0.0f ? 0.0f : m;
            }
        }
    }
    return 0;
}

void kern_maxpool(int C, int H, int W, int in_rs, int in_cs, const float *in, int Ho, int Wo,
                  int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl, int relu,
                  float *out)
{
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && dh == 1 && dw == 1 && pt == 0 && pl == 0 &&
        2 * Ho <= H && 2 * Wo <= W) {
        maxpool_2x2(C, in_rs, in_cs, in, Ho, Wo, relu, out);
        return;
    }
    if (maxpool_rows(C, H, W, in_rs, in_cs, in, Ho, Wo, kh, kw, sh, sw, dh, dw, pt, pl, relu, out) == 0)
        return;
    for (int ch = 0; ch < C; ++ch) {
        const float *src = in + (size_t)ch * in_cs;
        float *dst = out + (size_t)ch * Ho * Wo;
        for (int oy = 0; oy < Ho; ++oy) {
            for (int ox = 0; ox < Wo; ++ox) {
                float m = -FLT_MAX;
                for (int i = 0; i < kh; ++i) {
                    int y = oy * sh - pt + i * dh;
                    if (y < 0 || y >= H)
                        continue;
                    for (int j = 0; j < kw; ++j) {
                        int x = ox * sw - pl + j * dw;
                        if (x < 0 || x >= W)
                            continue;
                        float v = src[(size_t)y * in_rs + x];
                        if (v > m)
                            m = v;
                    }
                }
                dst[(size_t)oy * Wo + ox] = relu && m < 0.0f ? 0.0f : m;
            }
        }
    }
}

#ifdef RS_HAVE_X86
/* One row of a column stride of 2: src[2t] to ev[t], src[2t + 1] to od[t] (either may be NULL). */
__attribute__((target("avx512f,avx2,fma"))) static void split2_row_avx512(const float *src, int W, float *ev,
                                                                          float *od)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    for (int x0 = 0; x0 < W; x0 += 32) {
        const int n = W - x0;
        const __mmask16 m0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        const __mmask16 m1 = n >= 32 ? (__mmask16)0xFFFF : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
        const __m512 lo = _mm512_maskz_loadu_ps(m0, src + x0), hi = _mm512_maskz_loadu_ps(m1, src + x0 + 16);
        const int ne = n >= 32 ? 16 : (n + 1) / 2, no = n >= 32 ? 16 : n / 2;
        if (ev)
            _mm512_mask_storeu_ps(ev + x0 / 2, (__mmask16)((1u << ne) - 1), _mm512_permutex2var_ps(lo, ie, hi));
        if (od && no)
            _mm512_mask_storeu_ps(od + x0 / 2, (__mmask16)((1u << no) - 1), _mm512_permutex2var_ps(lo, io, hi));
    }
}
#endif

void kern_phase_split(kern_isa isa, int C, int H, int W, const float *in, int sh, int sw, int pt, int pl, int Hq,
                      int Wq, unsigned mask, float *out)
{
    const size_t plane = (size_t)Hq * Wq;
#ifdef RS_HAVE_X86
    if (isa == KERN_AVX512 && sw == 2) {
        /* input column x lands at padded x + pl: the even columns in phase pl % 2 from (pl / 2),
         * the odd ones in phase (pl + 1) % 2 from (pl + 1) / 2 */
        const int be = pl % 2, bo = (pl + 1) % 2;
        for (int ch = 0; ch < C; ++ch)
            for (int y = 0; y < H; ++y) {
                const int py = y + pt, a = py % sh;
                if (!(mask >> (a * 2) & 3u)) /* a row no wanted phase holds (a 1×1 stride-2 conv's odd rows) */
                    continue;
                float *row = out + (size_t)(ch * sh + a) * 2 * plane + (size_t)(py / sh) * Wq;
                split2_row_avx512(in + ((size_t)ch * H + y) * W, W,
                                  mask >> (a * 2 + be) & 1u ? row + be * plane + pl / 2 : NULL,
                                  mask >> (a * 2 + bo) & 1u ? row + bo * plane + (pl + 1) / 2 : NULL);
            }
        return;
    }
#else
    (void)isa;
#endif
    for (int ch = 0; ch < C; ++ch)
        for (int y = 0; y < H; ++y) {
            const int py = y + pt, a = py % sh;
            const float *src = in + ((size_t)ch * H + y) * W;
            for (int b = 0; b < sw; ++b) {
                if (!(mask >> (a * sw + b) & 1u))
                    continue;
                float *dst = out + ((size_t)(ch * sh + a) * sw + b) * plane + (size_t)(py / sh) * Wq;
                /* input columns x with (x + pl) % sw == b land at (x + pl) / sw */
                int x = ((b - pl) % sw + sw) % sw;
                for (int q = (x + pl) / sw; x < W; x += sw, ++q)
                    dst[q] = src[x];
            }
        }
}

void kern_im2col(int C, int H, int W, const float *in, int kh, int kw, int sh, int sw, int dh,
                 int dw, int pt, int pl, int Ho, int Wo, float *col, int ldcol)
{
    size_t row = 0;
    for (int ch = 0; ch < C; ++ch) {
        const float *src = in + (size_t)ch * H * W;
        for (int i = 0; i < kh; ++i) {
            for (int j = 0; j < kw; ++j, ++row) {
                float *dst = col + row * ldcol;
                for (int oy = 0; oy < Ho; ++oy) {
                    int y = oy * sh - pt + i * dh;
                    float *d = dst + (size_t)oy * Wo;
                    if (y < 0 || y >= H) {
                        memset(d, 0, (size_t)Wo * sizeof *d);
                        continue;
                    }
                    const float *s = src + (size_t)y * W;
                    /* valid outputs: 0 <= ox*sw - pl + j*dw < W */
                    int off = j * dw - pl;
                    int lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                    int hi = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
                    if (hi > Wo)
                        hi = Wo;
                    if (lo > hi)
                        lo = hi;
                    for (int ox = 0; ox < lo; ++ox)
                        d[ox] = 0.0f;
                    if (sw == 1)
                        memcpy(d + lo, s + lo + off, (size_t)(hi - lo) * sizeof *d);
                    else
                        for (int ox = lo; ox < hi; ++ox)
                            d[ox] = s[ox * sw + off];
                    for (int ox = hi; ox < Wo; ++ox)
                        d[ox] = 0.0f;
                }
            }
        }
    }
}

void kern_maxpool2x2(kern_isa isa, int C, int in_rs, int in_cs, const float *in, int Ho, int Wo,
                     int relu, float *out)
{
#ifdef RS_HAVE_X86
    if (isa == KERN_AVX512) {
        pool2x2_avx512(C, in_rs, in_cs, in, Ho, Wo, relu, out);
        return;
    }
    if (isa == KERN_AVX2) {
        pool2x2_avx2(C, in_rs, in_cs, in, Ho, Wo, relu, out);
        return;
    }
#else
    (void)isa;
#endif
    maxpool_2x2(C, in_rs, in_cs, in, Ho, Wo, relu, out);
}

void kern_u8_affine(kern_isa isa, const uint8_t *src, size_t n, float scale, float shift,
                    float *dst)
{
#ifdef RS_HAVE_X86
    if (isa == KERN_AVX512) {
        u8_affine_avx512(src, n, scale, shift, dst);
        return;
    }
    if (isa == KERN_AVX2) {
        u8_affine_avx2(src, n, scale, shift, dst);
        return;
    }
#else
    (void)isa;
#endif
    for (size_t i = 0; i < n; ++i)
        dst[i] = (float)src[i] * scale + shift;
}
