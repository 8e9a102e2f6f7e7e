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

/* kern_maxpool's 3×3 window at stride 2, no dilation, pads pt, pl in [0, 2] (torchvision's
 * stem pool: pads 1), vectorised: the same result (relu as there); input only read inside rows
 * [0, H) and columns [0, W). Returns -1 (nothing done) when isa has no such kernel (only
 * AVX-512 has one): call kern_maxpool then. */
int kern_maxpool3x3s2(kern_isa isa, int C, int H, int W, int in_rs, int in_cs, const float *in, int Ho, int Wo,
                      int pt, int pl, int relu, float *out);

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

/* The epilogue fused after a layer, over compact (C, hw) blocks, out = in allowed; per channel c,
 * x = in[c·hw + k], then
 *   x = x·scale[c] + shift[c]   (when scale != NULL: a kept BatchNormalization), or
 *   x = x + res[c·hw + k]       (when res != NULL and scale == NULL: a residual Add)
 *   x = act(x)                  ReLU max(x, 0) (NaN -> 0, as the Relu op); CLIP min(hi, max(lo, x));
 *                               LEAKY x >= 0 ? x : a·x with a = slope[c] (PRelu) or alpha;
 *                               HARDSIGMOID clamp(alpha·x + beta, 0, 1); HARDSWISH x·clamp(x/6 + 1/2, 0, 1)
 * and out[c·hw + k] = x. Each step is the float expression the op's own forward evaluates, so
 * fusing is bit-identical. */
typedef enum kern_act {
    KERN_ACT_NONE, KERN_ACT_RELU, KERN_ACT_CLIP, KERN_ACT_LEAKY, KERN_ACT_HARDSIGMOID, KERN_ACT_HARDSWISH
} kern_act;
typedef struct kern_post {
    kern_act act;
    float lo, hi;        /* CLIP */
    float alpha, beta;   /* LEAKY (when slope is NULL), HARDSIGMOID */
    const float *slope;  /* LEAKY: per-channel slopes (PRelu), or NULL */
    const float *scale, *shift; /* per-channel affine, or NULL (shift NULL: 0) */
} kern_post;
void kern_post_apply(kern_isa isa, int C, int hw, const float *in, const float *res, float *out,
                     const kern_post *p);

/* dst[i] = src[i]·scale + shift (CIFAR bytes to normalised floats). */
void kern_u8_affine(kern_isa isa, const uint8_t *src, size_t n, float scale, float shift,
                    float *dst);

/* Convolution with output channels along the vector (AVX-512 and AVX2: kern_conv_cv_supported):
 *   out[m·ldo + opos[j]] = epi(bias[m] + sum_k wt[k·ldw + m] · b[boff[k] + coff[j]])
 * for m < M, j < npix; epi as kern_gemm's (act 0 none, 1 ReLU, 2 clamp to [lo, hi]). wt is the
 * weight matrix transposed (K rows of ldw >= round_up(M, 16) floats, zero past M), bias NULL or
 * round_up(M, 16) floats. coff (the pixel's column in the B grid) and opos (its output position)
 * must hold round_up(npix, 24) entries: the tail repeats a real pixel (computed and written twice). */
int kern_conv_cv_supported(kern_isa isa);
void kern_conv_cv(kern_isa isa, int M, int npix, int K, const float *wt, int ldw, const float *b, const int *boff,
                  const int *coff, const int *opos, float *out, int ldo, const float *bias, int act, float lo,
                  float hi);

/* 3×3 stride-1 undilated convolution of n images by Winograd F(2×2, 3×3) (kern_wino.c):
 *   out[m][y][x] = epi(bias[m] + sum_{c,i,j} w[((m·C + c)·3 + i)·3 + j]·in[c][y − pt + i][x − pl + j])
 * with zero padding, epi as kern_conv_cv's (act 0 none, 1 ReLU, 2 clamp to [lo, hi]) or act 3:
 * out[m][y][x] += bias[m] + sum (accumulated into what out holds, no activation); image k
 * compact (C, H, W) at in + k·in_stride, its output compact (M, Ho, Wo) at out + k·out_stride
 * (nothing else written). u: kern_wino3x3_weights(M, C, w) into 16·M·C floats, once. scratch:
 * kern_wino3x3_scratch floats (any content). Results equal direct convolution up to fp32
 * rounding of the transforms. */
void kern_wino3x3_weights(int M, int C, const float *w, float *u);
size_t kern_wino3x3_scratch(kern_isa isa, int C, int M, int Ho, int Wo);
void kern_wino3x3(kern_isa isa, int n, int C, int H, int W, const float *in, size_t in_stride, int M,
                  const float *u, const float *bias, int pt, int pl, int Ho, int Wo, int act, float lo,
                  float hi, float *scratch, float *out, size_t out_stride);

/* The weight gradient of that convolution (training), by the same transforms: for n images,
 *   acc[xi][c][m] += Σ_tiles V[xi][c]·Z[xi][m]   (xi < 16, c < C, m < ldp)
 * with V = Bᵀ d B of the input tiles (in, in_stride, pt, pl, H, W as kern_wino3x3) and Z = A dY Aᵀ
 * of the Ho × Wo output gradient's 2×2 tiles (zero past Ho, Wo); dY pixel-major: image k's
 * pixel (y, x) is ldp floats (the M used, the rest zero) at dyt + k·dyt_stride + (y·Wo + x)·ldp,
 * ldp a multiple of 16. acc: 16·C·ldp floats; scratch: kern_wino3x3_wgrad_scratch floats. Then
 * kern_wino3x3_wgrad_fold adds dW[m][c][i][j] (M × C × 3 × 3) = (Gᵀ acc[·][c][m] G)[i][j]. */
size_t kern_wino3x3_wgrad_scratch(kern_isa isa, int C, int ldp, int Ho, int Wo);
void kern_wino3x3_wgrad(kern_isa isa, int n, int C, int H, int W, const float *in, size_t in_stride, int pt, int pl,
                        int Ho, int Wo, const float *dyt, size_t dyt_stride, int ldp, float *scratch, float *acc);
void kern_wino3x3_wgrad_fold(int M, int C, int ldp, const float *acc, float *dw);

/* The same convolution and weight gradient by Winograd F(4×4, 3×3) (kern_wino4.c; training):
 * 36 products per 4×4 output tile and channel pair instead of 16 per 2×2. Arguments as
 * kern_wino3x3 and kern_wino3x3_wgrad, except: u holds kern_wino4_weights' 36·M·C floats, act is 0
 * (written) or 3 (added into out), acc holds 36·C·ldp floats (positions 0..35). Results equal
 * direct convolution up to the fp32 rounding of the transforms, whose constants reach 8: some
 * 1e-6..1e-5 of the dot products' magnitude (tests/test_train_wino.c). */
void kern_wino4_weights(int M, int C, const float *w, float *u);
/* Images per kern_wino4 / kern_wino4_wgrad call that fill one of its blocks of tiles (smaller
 * calls run the GEMMs on narrower blocks). */
int kern_wino4_images(int C, int M, int Ho, int Wo);
size_t kern_wino4_scratch(kern_isa isa, int C, int M, int Ho, int Wo);
void kern_wino4(kern_isa isa, int n, int C, int H, int W, const float *in, size_t in_stride, int M, const float *u,
                const float *bias, int pt, int pl, int Ho, int Wo, int act, float *scratch, float *out,
                size_t out_stride);
size_t kern_wino4_wgrad_scratch(kern_isa isa, int C, int ldp, int Ho, int Wo);
void kern_wino4_wgrad(kern_isa isa, int n, int C, int H, int W, const float *in, size_t in_stride, int pt, int pl,
                      int Ho, int Wo, const float *dyt, size_t dyt_stride, int ldp, float *scratch, float *acc);
void kern_wino4_wgrad_fold(int M, int C, int ldp, const float *acc, float *dw);

/* The polyphase split of one image (C, H, W) zero-padded by pt rows on top and pl columns on the
 * left: padded sample (py, px) goes to out[((c·sh + py % sh)·sw + px % sw)·Hq·Wq + (py / sh)·Wq
 * + px / sw], for the phases whose bit (py % sh)·sw + px % sw is set in mask. Only input samples
 * are written: the caller zeroes out once and the padding stays zero. */
void kern_phase_split(kern_isa isa, int C, int H, int W, const float *in, int sh, int sw, int pt, int pl, int Hq,
                      int Wq, unsigned mask, float *out);

/* im2col of one image (C, H, W) for a (kh, kw) window: col row k = (c, i, j) holds the Ho×Wo
 * samples at stride ldcol; zero where the window falls into the padding. */
void kern_im2col(int C, int H, int W, const float *in, int kh, int kw, int sh, int sw, int dh,
                 int dw, int pt, int pl, int Ho, int Wo, float *col, int ldcol);

#pragma GCC visibility pop
#endif
