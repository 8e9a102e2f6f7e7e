/* ref_ops.h — textbook reference implementations of the inference ops (test-only).
 *
 * Written from the ONNX operator definitions with plain loops and double accumulation, sharing
 * no code with the engine, so the engine's kernels are checked against an independent answer.
 * Layouts: activations NCHW (or N×F) row-major float32; Conv W is (M, C/group, kh, kw).
 */
#ifndef RS_REF_OPS_H
#define RS_REF_OPS_H

#include <stddef.h>

/* pads: top, left, bottom, right. Output size must be (H + pt + pb - dh·(kh-1) - 1)/sh + 1.
 * Accumulates in double (bias first, then channel, kernel row, kernel column); the float form
 * widens its inputs and calls the double one, so both give the same sums. */
void ref_conv2d_d(const double *x, int n, int C, int H, int W, const double *w,
                  const double *bias, int M, int kh, int kw, int sh, int sw, int dh, int dw,
                  const int pads[4], int group, double *y, int Ho, int Wo);
void ref_conv2d(const float *x, int n, int C, int H, int W, const float *w, const float *bias,
                int M, int kh, int kw, int sh, int sw, int dh, int dw, const int pads[4],
                int group, float *y, int Ho, int Wo);

/* y = alpha · x · op(B) + beta · c, op(B) = B (K×N) or Bᵀ with B (N×K) when trans_b.
 * c has cn elements: 0 (none), 1 (scalar) or N (per output). */
void ref_gemm(const float *x, int n, int K, const float *B, int N, int trans_b, float alpha,
              float beta, const float *c, int cn, float *y);

/* ONNX MaxPool; pads top, left, bottom, right; Ho/Wo from the caller (ceil_mode applied). */
void ref_maxpool(const float *x, int n, int C, int H, int W, int kh, int kw, int sh, int sw,
                 int dh, int dw, const int pads[4], float *y, int Ho, int Wo);

void ref_relu(float *x, long count);

/* max over i of |got[i] - want[i]| / max(1, |want[i]|): relative error, absolute near zero.
 * NaN anywhere in got or want makes the result NaN, so `err <= tol` fails on it. */
double ref_max_rel_err(const float *got, const float *want, size_t n);
/* The same against a double-precision reference. */
double ref_max_rel_err_d(const float *got, const double *want, size_t n);

/* Output extent of a conv/pool window (ONNX formula, ceil_mode as PyTorch). */
int ref_out_size(int in, int k, int s, int d, int p0, int p1, int ceil_mode);

/* Uniform in [-1, 1) from a xorshift64 state (seeded by the caller, never 0): the kernels' tests'
 * inputs, reproducible without the C library's rand. */
double ref_urand(unsigned long long *state);

#endif
