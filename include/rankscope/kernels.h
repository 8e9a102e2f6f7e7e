/* kernels.h — the float32 compute kernels behind infer.c (and reusable by training code).
 *
 * Contract:
 *  - One register-blocked GEMM-like kernel serves convolution and dense layers:
 *        c[i*ldc + j] = epi( sum_k a[i*lda + k] * b[boff[k] + j] )   i < M, j < N
 *    A is read by broadcast (conv weights, or the rows of a dense layer's input), B is read as
 *    vectors at row offsets boff[k] — k*ldb for a packed matrix, or the shifted input offsets of
 *    a stride-1 convolution ("implicit im2col"). epi adds bias_row[i] and/or bias_col[j] (either
 *    may be NULL) and applies ReLU when relu != 0.
 *  - N must be a multiple of kern_vl(isa); B rows are read up to boff[k] + N - 1 and C rows are
 *    written up to c[i*ldc + N - 1], so callers pad buffers to that (padding lanes hold garbage).
 *  - The ISA is chosen at run time (kern_detect) from what the CPU supports; the portable
 *    KERN_SCALAR path is always available. No kernel allocates, prints or fails.
 */
#ifndef RANKSCOPE_KERNELS_H
#define RANKSCOPE_KERNELS_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stddef.h>
#include <stdint.h>

typedef enum kern_isa { KERN_SCALAR = 0, KERN_AVX2 = 1, KERN_AVX512 = 2 } kern_isa;

/* Best ISA this CPU supports, capped by $RANKSCOPE_ISA ("scalar", "avx2", "avx512") if set. */
kern_isa kern_detect(void);
/* Whether the CPU can run isa. */
int kern_supported(kern_isa isa);
const char *kern_isa_name(kern_isa isa);
/* Vector width in floats: the N granularity of kern_gemm for that ISA. */
int kern_vl(kern_isa isa);

void kern_gemm(kern_isa isa, int M, int N, int K, const float *a, int lda, const float *b,
               const int *boff, float *c, int ldc, const float *bias_row,
               const float *bias_col, int relu);
/* The same with the epilogue clamping to [lo, hi] instead (ReLU6: 0, 6); a NaN stays NaN. */
void kern_gemm_clamp(kern_isa isa, int M, int N, int K, const float *a, int lda, const float *b,
                     const int *boff, float *c, int ldc, const float *bias_row,
                     const float *bias_col, float lo, float hi);

/* Max pooling of one image's channels. Input rows have stride in_rs, channels in_cs; output is
 * compact (C, Ho, Wo). Window (kh, kw), strides, dilations, pads (top, left); positions outside
 * the H×W input are ignored. When relu != 0 the result is max(0, ·). */
void kern_maxpool(int C, int H, int W, int in_rs, int in_cs, const float *in, int Ho, int Wo,
                  int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl, int relu,
                  float *out);

/* The common 2×2 stride-2 unpadded case, vectorised: output (C, Ho, Wo) needs 2·Ho rows and
 * 2·Wo columns of input. Reads up to 32 floats past the end of each input row pair, so the
 * input buffer needs that much slack after its last row. */
void kern_maxpool2x2(kern_isa isa, int C, int in_rs, int in_cs, const float *in, int Ho, int Wo,
                     int relu, float *out);

/* Depthwise 3×3 convolution of one image (C channels, one filter each), stride 1 or 2, no
 * dilation, zero padding pt on top and pl on the left (bottom and right follow from Ho, Wo):
 *   out[c][y][x] = min(hi, max(lo, bias[c] + sum_ij w[9c + 3i + j]·in[c][y·s − pt + i][x·s − pl + j]))
 * bias may be NULL; lo, hi = −INFINITY, INFINITY for no activation, 0, INFINITY for ReLU, 0, 6
 * for ReLU6 (a NaN sum stays NaN). Input and output are compact (C, H, W) and (C, Ho, Wo);
 * nothing past them is read or written. scratch: kern_dw3x3_scratch(Ho, Wo, stride) floats,
 * zeroed by the caller once; it may then only be reused for the same Ho, Wo, stride, pt, pl
 * (its zero border is never rewritten). */
size_t kern_dw3x3_scratch(int Ho, int Wo, int stride);
void kern_dw3x3(kern_isa isa, int C, int H, int W, const float *in, const float *w,
                const float *bias, int stride, int pt, int pl, int Ho, int Wo, float lo, float hi,
                float *scratch, float *out);

/* dst[i] = src[i]·scale + shift (CIFAR bytes to normalised floats). */
void kern_u8_affine(kern_isa isa, const uint8_t *src, size_t n, float scale, float shift,
                    float *dst);

/* im2col of one image (C, H, W) for a (kh, kw) window: col row k = (c, i, j) holds the Ho×Wo
 * samples at stride ldcol; zero where the window falls into the padding. */
void kern_im2col(int C, int H, int W, const float *in, int kh, int kw, int sh, int sw, int dh,
                 int dw, int pt, int pl, int Ho, int Wo, float *col, int ldcol);

#pragma GCC visibility pop
#endif
