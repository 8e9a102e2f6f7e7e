/* kern_dw.c — direct depthwise 3×3 convolution (kernels.h: kern_dw3x3).
 *
 * As a GEMM a depthwise conv is one output row per group with K = 9: the tile kernel then
 * spends its time on loop overhead, and a strided one on a scalar im2col. Here each channel is
 * copied once into a zero-bordered scratch plane and every output vector is 9 FMAs of shifted
 * contiguous loads. Stride 2 splits the padded plane into its even and odd columns, so the
 * taps stay contiguous instead of gathering every other float. */
#include "rankscope/kernels.h"

#include <stdint.h>
#include <stdlib.h>
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

/* The channels-last grid (AVX-512, see dw_cl_avx512): stride·(n − 1) + 3 padded rows or columns. */
static int dw_cl_span(int n, int stride)
{
    return stride * (n - 1) + 3;
}

static size_t dw_rows_scratch(int Ho, int Wo, int stride)
{
    size_t plane = (size_t)dw_rows_needed(Ho, stride) * dw_rs(Wo);
    return (stride == 1 ? plane : 2 * plane) + DW_VL;
}

/* the row kernels' planes, then the channels-last grid and its output pixels (64-byte aligned) */
size_t kern_dw3x3_scratch(int Ho, int Wo, int stride)
{
    size_t grid = (size_t)dw_cl_span(Ho, stride) * dw_cl_span(Wo, stride);
    size_t pix = ((size_t)Ho * Wo + 15) / 16 * 16;
    return dw_rows_scratch(Ho, Wo, stride) + (grid + pix) * 16 + 16;
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

/* AVX-512, small maps without the scratch copy: every tap is a masked load straight from the
 * input (lanes outside the image are neither read nor faulted, and are zero), and the whole
 * plane is one run of 16-pixel vectors, so several rows share a vector. */
#define DW_512 __attribute__((target("avx512f,avx2,fma")))

/* The flat kernel below up to 4 vectors a plane (8×8 maps): there the row kernel runs on 8 or 4 of
 * 16 lanes and copies each plane first. On larger maps the row kernel measured faster (zoo
 * mobilenet, `rankscope info --time`, 1 thread, runs alternated under load: 32×32 16.2-16.3
 * against 19.1-19.8 µs per image, 16×16 15.2-17.4 against 20.9-21.0; on 8×8 10.2-11.2 against
 * 16.2-19.4 for the row kernel). */
enum { DW_FLAT_MAXV = 4 };

/* A masked load; all-zero masks load nothing. A masked load whose masked-off lanes lie on another
 * 4 KB page than the valid ones can take a microcode assist on some CPUs (the off lanes fault
 * and are then suppressed): the rare load that spans a page boundary takes its lanes one by one. */
DW_512 static inline __m512 dw_mload(__mmask16 m, const float *p)
{
    if (m == 0xFFFF)
        return _mm512_loadu_ps(p);
    if (!m)
        return _mm512_setzero_ps();
    if (((uintptr_t)p & 4095) <= 4096 - 64)
        return _mm512_maskz_loadu_ps(m, p);
    float t[16] = {0};
    for (int l = 0; l < 16; ++l)
        if (m >> l & 1)
            t[l] = p[l];
    return _mm512_loadu_ps(t);
}

/* Stride 1, Ho = H, Wo = W, pads 1: the plane as one flat run of 16-pixel vectors; tap (i, j)
 * of pixel p reads flat p + (i − 1)·W + j − 1, inside the image where the tap's row and column
 * are (its mask). The masks depend on the geometry only: built once for all channels. */
DW_512 static void dw_flat_s1_avx512(int C, int H, int W, const float *in, const float *w, const float *bias,
                                     float lo, float hi, float *out)
{
    const int n = H * W, nv = (n + 15) / 16;
    __mmask16 mk[DW_FLAT_MAXV][10]; /* the 9 taps, then the pixels inside the plane */
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i vW = _mm512_set1_epi32(W), vH = _mm512_set1_epi32(H), one = _mm512_set1_epi32(1);
    const __m512i zero_i = _mm512_setzero_si512();
    for (int v = 0; v < nv; ++v) {
        /* row y = p / W by float division (p < 2^22 here, so at most one off), then corrected */
        const __m512i p = _mm512_add_epi32(_mm512_set1_epi32(16 * v), iota);
        __m512i y = _mm512_cvttps_epi32(
            _mm512_mul_ps(_mm512_add_ps(_mm512_cvtepi32_ps(p), _mm512_set1_ps(0.5f)), _mm512_set1_ps(1.0f / (float)W)));
        __m512i x = _mm512_sub_epi32(p, _mm512_mullo_epi32(y, vW));
        __mmask16 neg = _mm512_cmplt_epi32_mask(x, zero_i), big = _mm512_cmpge_epi32_mask(x, vW);
        y = _mm512_mask_sub_epi32(y, neg, y, one);
        x = _mm512_mask_add_epi32(x, neg, x, vW);
        y = _mm512_mask_add_epi32(y, big, y, one);
        x = _mm512_mask_sub_epi32(x, big, x, vW);
        const __mmask16 inside = _mm512_cmplt_epi32_mask(p, _mm512_set1_epi32(n));
        const __mmask16 row[3] = {(__mmask16)(inside & _mm512_cmpgt_epi32_mask(y, zero_i)), inside,
                                  (__mmask16)(inside & _mm512_cmplt_epi32_mask(_mm512_add_epi32(y, one), vH))};
        const __mmask16 col[3] = {_mm512_cmpgt_epi32_mask(x, zero_i), (__mmask16)0xFFFF,
                                  _mm512_cmplt_epi32_mask(_mm512_add_epi32(x, one), vW)};
        for (int t = 0; t < 9; ++t)
            mk[v][t] = row[t / 3] & col[t % 3];
        mk[v][9] = inside;
    }
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int ch = 0; ch < C; ++ch) {
        const float *src = in + (size_t)ch * n, *wc = w + 9 * (size_t)ch;
        float *dst = out + (size_t)ch * n;
        __m512 wt[9];
        for (int t = 0; t < 9; ++t)
            wt[t] = _mm512_set1_ps(wc[t]);
        const __m512 vb = _mm512_set1_ps(bias ? bias[ch] : 0.0f);
        for (int v = 0; v < nv; ++v) {
            /* one partial sum per kernel row: three short FMA chains instead of one of 9 */
            const float *sp = src + 16 * v;
            const __mmask16 *m = mk[v];
            __m512 r0 = _mm512_fmadd_ps(wt[0], dw_mload(m[0], sp - W - 1), vb);
            __m512 r1 = _mm512_mul_ps(wt[3], dw_mload(m[3], sp - 1));
            __m512 r2 = _mm512_mul_ps(wt[6], dw_mload(m[6], sp + W - 1));
            r0 = _mm512_fmadd_ps(wt[1], dw_mload(m[1], sp - W), r0);
            r1 = _mm512_fmadd_ps(wt[4], dw_mload(m[4], sp), r1);
            r2 = _mm512_fmadd_ps(wt[7], dw_mload(m[7], sp + W), r2);
            r0 = _mm512_fmadd_ps(wt[2], dw_mload(m[2], sp - W + 1), r0);
            r1 = _mm512_fmadd_ps(wt[5], dw_mload(m[5], sp + 1), r1);
            r2 = _mm512_fmadd_ps(wt[8], dw_mload(m[8], sp + W + 1), r2);
            __m512 acc = _mm512_add_ps(_mm512_add_ps(r0, r1), r2);
            acc = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)); /* NaN passes: max/min return their 2nd operand */
            _mm512_mask_storeu_ps(dst + 16 * v, mk[v][9], acc);
        }
    }
}


/* r[i][j] -> r[j][i]: a 16 × 16 block transposed in registers (unpack pairs, then 128-bit lanes). */
DW_512 static inline void dw_tr16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* r[4q + k], 128-bit lane L: rows 4q..4q+3 of column 4L + k; then the lanes move */
    for (int k = 0; k < 4; ++k) {
        t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);
        t[4 + k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xDD);
        t[8 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
        t[12 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xDD);
    }
    for (int k = 0; k < 4; ++k) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
        r[4 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0x88);
        r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xDD);
        r[12 + k] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0xDD);
    }
}

/* Channels along the vector, 16 at a time: their pixels are transposed into a zero-bordered grid
 * of 16-channel vectors, so every tap of every output pixel is one aligned load, for stride 1 and
 * 2 alike and with no lanes wasted on narrow rows; the output pixels are transposed back to
 * planes. The row kernels instead run one channel on 4-16 lanes of a row and copy (and for
 * stride 2 split) every plane first. Pads 1; H, W at most stride·Ho, stride·Wo (the grid holds
 * every input pixel). Channels [0, C16) only, C16 a multiple of 16. */
DW_512 static void dw_cl_avx512(int C16, int H, int W, const float *in, const float *w, const float *bias,
                                int stride, int Ho, int Wo, float lo, float hi, float *scratch, float *out)
{
    const int gc = dw_cl_span(Wo, stride), gr = dw_cl_span(Ho, stride), hw = H * W, P = Ho * Wo;
    float *grid = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *opix = grid + (size_t)gr * gc * 16;
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    const __m512i nine = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(9));
    for (int c0 = 0; c0 < C16; c0 += 16) {
        const float *src = in + (size_t)c0 * hw;
        /* pixels p0.. of the 16 planes -> grid cells (y + 1, x + 1) */
        int y = 0, x = 0;
        for (int p0 = 0; p0 < hw; p0 += 16) {
            const int n = hw - p0 < 16 ? hw - p0 : 16;
            const __mmask16 m = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
            __m512 r[16];
            for (int c = 0; c < 16; ++c)
                r[c] = _mm512_maskz_loadu_ps(m, src + (size_t)c * hw + p0);
            dw_tr16(r);
            for (int k = 0; k < 16; ++k) {
                if (k >= n)
                    break;
                _mm512_store_ps(grid + ((size_t)(y + 1) * gc + x + 1) * 16, r[k]);
                if (++x == W)
                    x = 0, ++y;
            }
        }
        __m512 wt[9];
        for (int t = 0; t < 9; ++t)
            wt[t] = _mm512_i32gather_ps(nine, w + 9 * (size_t)c0 + t, 4);
        const __m512 vb = bias ? _mm512_loadu_ps(bias + c0) : _mm512_setzero_ps();
        const size_t row = (size_t)gc * 16;
        float *op = opix;
        for (int oy = 0; oy < Ho; ++oy) {
            const float *g = grid + (size_t)stride * oy * row;
            for (int ox = 0; ox < Wo; ++ox, g += 16 * stride, op += 16) {
                /* one partial sum per kernel row: three short FMA chains instead of one of 9 */
                __m512 r0 = _mm512_fmadd_ps(wt[0], _mm512_load_ps(g), vb);
                __m512 r1 = _mm512_mul_ps(wt[3], _mm512_load_ps(g + row));
                __m512 r2 = _mm512_mul_ps(wt[6], _mm512_load_ps(g + 2 * row));
                r0 = _mm512_fmadd_ps(wt[1], _mm512_load_ps(g + 16), r0);
                r1 = _mm512_fmadd_ps(wt[4], _mm512_load_ps(g + row + 16), r1);
                r2 = _mm512_fmadd_ps(wt[7], _mm512_load_ps(g + 2 * row + 16), r2);
                r0 = _mm512_fmadd_ps(wt[2], _mm512_load_ps(g + 32), r0);
                r1 = _mm512_fmadd_ps(wt[5], _mm512_load_ps(g + row + 32), r1);
                r2 = _mm512_fmadd_ps(wt[8], _mm512_load_ps(g + 2 * row + 32), r2);
                __m512 acc = _mm512_add_ps(_mm512_add_ps(r0, r1), r2);
                /* NaN passes: max/min return their 2nd operand */
                _mm512_store_ps(op, _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)));
            }
        }
        float *dst = out + (size_t)c0 * P;
        for (int p0 = 0; p0 < P; p0 += 16) {
            const int n = P - p0 < 16 ? P - p0 : 16;
            const __mmask16 m = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
            __m512 r[16];
            for (int k = 0; k < 16; ++k)
                r[k] = k < n ? _mm512_load_ps(opix + (size_t)(p0 + k) * 16) : _mm512_setzero_ps();
            dw_tr16(r);
            for (int c = 0; c < 16; ++c)
                _mm512_mask_storeu_ps(dst + (size_t)c * P + p0, m, r[c]);
        }
    }
}

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
#ifdef RS_HAVE_X86
    int ch0 = 0;
    if (isa == KERN_AVX512 && pt == 1 && pl == 1) {
        /* Channels-last up to 256 input pixels a plane; on larger maps its grid outgrows L1 and the
         * row kernels measured faster (1 thread, Zen 4, in cache, µs per image: 32×32×32 stride 1
         * 25.4 against 13.3, 64×32×32 stride 2 23.7 against 13.4; 128×16×16 stride 1 15.4 against
         * 19.1, stride 2 7.3 against 11.1; 256×8×8 8.4 against 9.5, stride 2 4.9 against 21.4).
         * Channels left over (C % 16, or all of them below 16) take the per-channel kernels: the
         * flat one on maps of up to 64 pixels, else the rows. $RANKSCOPE_DW = cl or rows forces
         * channels-last or the per-channel kernels (measurements, tests). */
        const char *env = getenv("RANKSCOPE_DW");
        const int cl = env && (env[0] == 'c' || env[0] == 'r') ? env[0] == 'c' : H * W <= 256;
        if (cl && C >= 16 && H <= stride * Ho && W <= stride * Wo && H > stride * (Ho - 1) &&
            W > stride * (Wo - 1)) {
            ch0 = C / 16 * 16;
            dw_cl_avx512(ch0, H, W, in, w, bias, stride, Ho, Wo, lo, hi, scratch + dw_rows_scratch(Ho, Wo, stride),
                         out);
        }
        if (ch0 < C && stride == 1 && Ho == H && Wo == W && (H * W + 15) / 16 <= DW_FLAT_MAXV) {
            dw_flat_s1_avx512(C - ch0, H, W, in + (size_t)ch0 * H * W, w + 9 * (size_t)ch0, bias ? bias + ch0 : NULL,
                              lo, hi, out + (size_t)ch0 * H * W);
            return;
        }
    }
#endif
    const size_t plane = (size_t)dw_rows_needed(Ho, stride) * dw_rs(Wo);
    for (int ch = ch0; ch < C; ++ch) {
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
