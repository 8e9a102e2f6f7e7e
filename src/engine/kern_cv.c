/* kern_cv.c — convolution with output channels along the vector (kernels.h: kern_conv_cv).
 *
 * kern_gemm puts output columns (pixels) along the vector, so a conv on the "wide" grid computes
 * the padding columns too: 8×8 maps with a 1-pixel border waste 25 % of the FMAs, 4×4 maps 50 %
 * (after rounding to the vector), and a strided conv's grid is wider still. Here the vector runs
 * over up to 64 output channels and each pixel's input sample is broadcast, so only the real
 * output pixels are computed and they are written straight to the compact (M, Ho·Wo) output
 * (a scatter per accumulator). Same FMA-to-load ratio as the column tiles: 4 channel vectors ×
 * 6 pixels, 3 × 8, 2 × 12 or 1 × 12 accumulators.
 *
 * AVX-512 scatters each accumulator; AVX2 (no scatter) stores its 8 lanes one by one, with 2 channel
 * vectors × 6 pixels or 1 × 12 (16 ymm registers). The portable path keeps the column kernels
 * (kern_conv_cv_supported). */
#include "rankscope/kernels.h"

int kern_conv_cv_supported(kern_isa isa)
{
#if defined(__x86_64__) || defined(__i386__)
    return isa == KERN_AVX512 || isa == KERN_AVX2;
#else
    (void)isa;
    return 0;
#endif
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define CV_TARGET __attribute__((target("avx512f,avx2,fma")))

/* MV channel vectors × NC pixels of one tile (constants after inlining: the loops unroll and
 * acc stays in registers). */
static inline __attribute__((always_inline)) CV_TARGET void
cv_tile(const int MV, const int NC, int K, const float *w, int ldw, const float *b, const int *boff,
        const int *coff, const int *opos, float *out, int ldo, const float *bias, int mleft, int act, float lo,
        float hi)
{
    __m512 acc[4][12];
    const float *p[12];
    for (int j = 0; j < NC; ++j)
        p[j] = b + coff[j];
    for (int v = 0; v < MV; ++v)
        for (int j = 0; j < NC; ++j)
            acc[v][j] = _mm512_setzero_ps();
    for (int k = 0; k < K; ++k) {
        const float *wk = w + (size_t)k * ldw;
        const int o = boff[k];
        __m512 wv[4];
        for (int v = 0; v < MV; ++v)
            wv[v] = _mm512_loadu_ps(wk + 16 * v);
        for (int j = 0; j < NC; ++j) {
            const __m512 x = _mm512_set1_ps(p[j][o]);
            for (int v = 0; v < MV; ++v)
                acc[v][j] = _mm512_fmadd_ps(wv[v], x, acc[v][j]);
        }
    }
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i rows = _mm512_mullo_epi32(lane, _mm512_set1_epi32(ldo));
    const __m512 zero = _mm512_setzero_ps(), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int v = 0; v < MV; ++v) {
        const int left = mleft - 16 * v;
        const __mmask16 mk = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const __m512 bv = bias ? _mm512_loadu_ps(bias + 16 * v) : zero;
        float *base = out + (size_t)16 * v * ldo;
        for (int j = 0; j < NC; ++j) {
            __m512 x = _mm512_add_ps(acc[v][j], bv);
            if (act == 1)
                x = _mm512_max_ps(x, zero);
            else if (act == 2) /* NaN stays NaN, like the unfused Clip */
                x = _mm512_min_ps(vhi, _mm512_max_ps(vlo, x));
            _mm512_mask_i32scatter_ps(base, mk, _mm512_add_epi32(rows, _mm512_set1_epi32(opos[j])), x, 4);
        }
    }
}

#define CV_INST(mv, nc)                                                                        \
    static CV_TARGET void cv_##mv##_##nc(int K, const float *w, int ldw, const float *b, const int *boff,   \
                                         const int *coff, const int *opos, float *out, int ldo,           \
                                         const float *bias, int mleft, int act, float lo, float hi)       \
    {                                                                                          \
        cv_tile(mv, nc, K, w, ldw, b, boff, coff, opos, out, ldo, bias, mleft, act, lo, hi);   \
    }
CV_INST(4, 6)
CV_INST(3, 8)
CV_INST(2, 12)
CV_INST(1, 12)
#undef CV_INST

typedef void (*cv_fn)(int K, const float *w, int ldw, const float *b, const int *boff, const int *coff,
                      const int *opos, float *out, int ldo, const float *bias, int mleft, int act, float lo,
                      float hi);

#define CV2_TARGET __attribute__((target("avx2,fma")))

/* The AVX2 tile: MV (1 or 2) vectors of 8 channels × NC pixels. */
static inline __attribute__((always_inline)) CV2_TARGET void
cv2_tile(const int MV, const int NC, int K, const float *w, int ldw, const float *b, const int *boff,
         const int *coff, const int *opos, float *out, int ldo, const float *bias, int mleft, int act, float lo,
         float hi)
{
    __m256 acc[2][12];
    const float *p[12];
    for (int j = 0; j < NC; ++j)
        p[j] = b + coff[j];
    for (int v = 0; v < MV; ++v)
        for (int j = 0; j < NC; ++j)
            acc[v][j] = _mm256_setzero_ps();
    for (int k = 0; k < K; ++k) {
        const float *wk = w + (size_t)k * ldw;
        const int o = boff[k];
        __m256 wv[2];
        for (int v = 0; v < MV; ++v)
            wv[v] = _mm256_loadu_ps(wk + 8 * v);
        for (int j = 0; j < NC; ++j) {
            const __m256 x = _mm256_broadcast_ss(p[j] + o);
            for (int v = 0; v < MV; ++v)
                acc[v][j] = _mm256_fmadd_ps(wv[v], x, acc[v][j]);
        }
    }
    const __m256 zero = _mm256_setzero_ps(), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (int v = 0; v < MV; ++v) {
        const int left = mleft - 8 * v, nl = left >= 8 ? 8 : left;
        const __m256 bv = bias ? _mm256_loadu_ps(bias + 8 * v) : zero;
        float *base = out + (size_t)8 * v * ldo;
        for (int j = 0; j < NC; ++j) {
            __m256 x = _mm256_add_ps(acc[v][j], bv);
            if (act == 1)
                x = _mm256_max_ps(x, zero);
            else if (act == 2) /* NaN stays NaN, like the unfused Clip */
                x = _mm256_min_ps(vhi, _mm256_max_ps(vlo, x));
            float lane[8];
            _mm256_storeu_ps(lane, x);
            float *dst = base + opos[j];
            for (int l = 0; l < nl; ++l)
                dst[(size_t)l * ldo] = lane[l];
        }
    }
}

static CV2_TARGET void cv2_2_6(int K, const float *w, int ldw, const float *b, const int *boff, const int *coff,
                               const int *opos, float *out, int ldo, const float *bias, int mleft, int act, float lo,
                               float hi)
{
    cv2_tile(2, 6, K, w, ldw, b, boff, coff, opos, out, ldo, bias, mleft, act, lo, hi);
}

static CV2_TARGET void cv2_1_12(int K, const float *w, int ldw, const float *b, const int *boff, const int *coff,
                                const int *opos, float *out, int ldo, const float *bias, int mleft, int act, float lo,
                                float hi)
{
    cv2_tile(1, 12, K, w, ldw, b, boff, coff, opos, out, ldo, bias, mleft, act, lo, hi);
}
#endif

void kern_conv_cv(kern_isa isa, int M, int npix, int K, const float *wt, int ldw, const float *b, const int *boff,
                  const int *coff, const int *opos, float *out, int ldo, const float *bias, int act, float lo,
                  float hi)
{
#if defined(__x86_64__) || defined(__i386__)
    if (isa == KERN_AVX2) {
        /* blocks of 16 channels; a last block of at most 8 runs as one vector */
        for (int m0 = 0; m0 < M; m0 += 16) {
            const int two = M - m0 > 8, nc = two ? 6 : 12;
            for (int j0 = 0; j0 < npix; j0 += nc)
                (two ? cv2_2_6 : cv2_1_12)(K, wt + m0, ldw, b, boff, coff + j0, opos + j0, out + (size_t)m0 * ldo,
                                           ldo, bias ? bias + m0 : NULL, M - m0, act, lo, hi);
        }
        return;
    }
    if (isa != KERN_AVX512)
        return;
    static const cv_fn fns[4] = {cv_1_12, cv_2_12, cv_3_8, cv_4_6};
    static const int ncs[4] = {12, 12, 8, 6};
    const int nv = (M + 15) / 16;
    /* channel blocks of up to 4 vectors; a remainder of 3 vectors runs as one 3-vector block */
    for (int v0 = 0; v0 < nv; v0 += 4) {
        const int mv = nv - v0 < 4 ? nv - v0 : 4, nc = ncs[mv - 1];
        const int m0 = 16 * v0;
        for (int j0 = 0; j0 < npix; j0 += nc)
            fns[mv - 1](K, wt + m0, ldw, b, boff, coff + j0, opos + j0, out + (size_t)m0 * ldo, ldo,
                        bias ? bias + m0 : NULL, M - m0, act, lo, hi);
    }
#else
    (void)isa, (void)M, (void)npix, (void)K, (void)wt, (void)ldw, (void)b, (void)boff, (void)coff, (void)opos;
    (void)out, (void)ldo, (void)bias, (void)act, (void)lo, (void)hi;
#endif
}
