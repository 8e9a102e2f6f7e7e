/* kern_dw.c — direct depthwise 3×3 convolution (kernels.h: kern_dw3x3).
 *
 * As a GEMM a depthwise conv is one output row per group with K = 9: the tile kernel then
 * spends its time on loop overhead, and a strided one on a scalar im2col. Here each channel is
 * copied once into a zero-bordered scratch plane and every output vector is 9 FMAs of shifted
 * contiguous loads. Stride 2 splits the padded plane into its even and odd columns, so the
 * taps stay contiguous instead of gathering every other float. */
#include "rankscope/kernels.h"

#include <string.h>

enum { DW_VL = 16 }; /* the widest vector: scratch rows are sized for it on every ISA */

static int dw_rs(int Wo)
{
    return (Wo + DW_VL - 1) / DW_VL * DW_VL + 2;
}

static int dw_rows_needed(int Ho, int stride)
{
    return stride == 1 ? Ho + 2 : 2 * Ho + 1;
}

size_t kern_dw3x3_scratch(int Ho, int Wo, int stride)
{
    size_t plane = (size_t)dw_rows_needed(Ho, stride) * dw_rs(Wo);
    return (stride == 1 ? plane : 2 * plane) + DW_VL;
}

#if defined(__x86_64__) || defined(__i386__)
#define RS_HAVE_X86 1
#include <immintrin.h>

#define KT_CAT2(a, b) a##_##b
#define KT_CAT(a, b) KT_CAT2(a, b)

#define KT_NAME(x) KT_CAT(x, avx512)
#define KT_TARGET __attribute__((target("avx512f,avx2,fma")))
#define KT_VEC __m512
#define KT_VL 16
#define KT_LOAD(p) _mm512_loadu_ps(p)
#define KT_BCAST(p) _mm512_set1_ps(*(p))
#define KT_FMA(a, b, acc) _mm512_fmadd_ps((a), (b), (acc))
#define KT_MAX(x, y) _mm512_max_ps((x), (y))
#define KT_MIN(x, y) _mm512_min_ps((x), (y))
#define KT_STORE_N(p, v, n)                                                                    \
    _mm512_mask_storeu_ps((p), (n) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n)) - 1), (v))
#include "kern_dw.inc"
#undef KT_NAME
#undef KT_TARGET
#undef KT_VEC
#undef KT_VL
#undef KT_LOAD
#undef KT_BCAST
#undef KT_FMA
#undef KT_MAX
#undef KT_MIN
#undef KT_STORE_N

static const int dw_lane[8] = {0, 1, 2, 3, 4, 5, 6, 7};

__attribute__((target("avx2,fma"))) static inline void dw_store_avx2(float *p, __m256 v, int n)
{
    if (n >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_loadu_si256((const __m256i *)dw_lane)),
                            v);
}

/* ev[t] = s[2t], od[t] = s[2t + 1] for the first n inputs (n a multiple of 16). */
__attribute__((target("avx2,fma"))) static void dw_split_avx2(const float *s, int n, float *ev, float *od)
{
    for (int x = 0; x < n; x += 16) {
        __m256 a = _mm256_loadu_ps(s + x), b = _mm256_loadu_ps(s + x + 8);
        __m256 e = _mm256_shuffle_ps(a, b, 0x88), o = _mm256_shuffle_ps(a, b, 0xDD);
        _mm256_storeu_ps(ev + x / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
        _mm256_storeu_ps(od + x / 2, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
    }
}

#define KT_NAME(x) KT_CAT(x, avx2)
#define KT_TARGET __attribute__((target("avx2,fma")))
#define KT_VEC __m256
#define KT_VL 8
#define KT_LOAD(p) _mm256_loadu_ps(p)
#define KT_BCAST(p) _mm256_broadcast_ss(p)
#define KT_FMA(a, b, acc) _mm256_fmadd_ps((a), (b), (acc))
#define KT_MAX(x, y) _mm256_max_ps((x), (y))
#define KT_MIN(x, y) _mm256_min_ps((x), (y))
#define KT_STORE_N(p, v, n) dw_store_avx2((p), (v), (n))
#include "kern_dw.inc"
#endif

/* Channel ch of in into the scratch planes, at (row + pt, column + pl) of the padded plane
 * (vector ISAs only: the portable path reads the input directly). */
static void dw_fill(int H, int W, const float *src, int stride, int pt, int pl, int Ho, int Wo, float *scratch)
{
    const int rs = dw_rs(Wo), hs = dw_rows_needed(Ho, stride);
    float *odd = scratch + (size_t)hs * rs;
    for (int y = 0; y < H && y + pt < hs; ++y) {
        const float *s = src + (size_t)y * W;
        float *d = scratch + (size_t)(y + pt) * rs;
        if (stride == 1) {
            if (pl < rs)
                memcpy(d + pl, s, (size_t)(W < rs - pl ? W : rs - pl) * sizeof(float));
            continue;
        }
        float *o = odd + (size_t)(y + pt) * rs;
        int x = 0;
#ifdef RS_HAVE_X86
        /* input 2t goes to column 2t + pl of the padded row: the even plane when pl is even */
        int n = W / 16 * 16;
        while (n > 0 && (pl + 1) / 2 + n / 2 > rs)
            n -= 16;
        if (n > 0)
            dw_split_avx2(s, n, pl % 2 ? o + (pl - 1) / 2 : d + pl / 2, pl % 2 ? d + (pl + 1) / 2 : o + pl / 2);
        x = n;
#endif
        for (; x < W; ++x) {
            int c = x + pl;
            if ((c >> 1) < rs)
                ((c & 1) ? o : d)[c >> 1] = s[x];
        }
    }
}

/* Portable path: the definition, straight from the input with bounds checks. */
static void dw_scalar(int H, int W, const float *src, const float *wc, float bias, int stride, int pt, int pl,
                      int Ho, int Wo, float lo, float hi, float *out)
{
    for (int y = 0; y < Ho; ++y)
        for (int x = 0; x < Wo; ++x) {
            float acc = bias;
            for (int i = 0; i < 3; ++i) {
                int iy = y * stride - pt + i;
                if (iy < 0 || iy >= H)
                    continue;
                for (int j = 0; j < 3; ++j) {
                    int ix = x * stride - pl + j;
                    if (ix >= 0 && ix < W)
                        acc += wc[3 * i + j] * src[(size_t)iy * W + ix];
                }
            }
            acc = acc < lo ? lo : acc;
            out[(size_t)y * Wo + x] = acc > hi ? hi : acc;
        }
}

void kern_dw3x3(kern_isa isa, int C, int H, int W, const float *in, const float *w, const float *bias, int stride,
                int pt, int pl, int Ho, int Wo, float lo, float hi, float *scratch, float *out)
{
    const size_t plane = (size_t)dw_rows_needed(Ho, stride) * dw_rs(Wo);
    for (int ch = 0; ch < C; ++ch) {
        const float *src = in + (size_t)ch * H * W;
        float *dst = out + (size_t)ch * Ho * Wo;
        const float b = bias ? bias[ch] : 0.0f;
#ifdef RS_HAVE_X86
        if (isa == KERN_AVX512 || isa == KERN_AVX2) {
            dw_fill(H, W, src, stride, pt, pl, Ho, Wo, scratch);
            if (isa == KERN_AVX512)
                dw_rows_avx512(Ho, Wo, stride, scratch, scratch + plane, dw_rs(Wo), w + 9 * ch, b, lo, hi, dst);
            else
                dw_rows_avx2(Ho, Wo, stride, scratch, scratch + plane, dw_rs(Wo), w + 9 * ch, b, lo, hi, dst);
            continue;
        }
#else
        (void)scratch, (void)plane, (void)isa;
#endif
        dw_scalar(H, W, src, w + 9 * ch, b, stride, pt, pl, Ho, Wo, lo, hi, dst);
    }
}
