/* export_c_helpers.c — the C text of the helper functions a generated model.c contains (each
 * emitted only when a node uses it, so the output compiles cleanly with -Wall -Werror -pedantic).
 * Textbook loops: the export is for readability and portability, not speed. */
#include "export_c_internal.h"

static const char helper_conv_f32[] =
    "static void conv2d(const float *x, float *y, const float *w, const float *b, long C, long H,\n"
    "                   long W, long M, long Ho, long Wo, long G, long kh, long kw, long sh,\n"
    "                   long sw, long dh, long dw, long pt, long pl)\n"
    "{\n"
    "    long cg = C / G, mg = M / G, oc, oy, ox, ci, i, j;\n"
    "    for (oc = 0; oc < M; ++oc) {\n"
    "        const float *wo = w + oc * cg * kh * kw;\n"
    "        const float *xg = x + (oc / mg) * cg * H * W;\n"
    "        for (oy = 0; oy < Ho; ++oy) {\n"
    "            for (ox = 0; ox < Wo; ++ox) {\n"
    "                float acc = 0.0f;\n"
    "                for (ci = 0; ci < cg; ++ci) {\n"
    "                    const float *xc = xg + ci * H * W, *wc = wo + ci * kh * kw;\n"
    "                    for (i = 0; i < kh; ++i) {\n"
    "                        long yy = oy * sh - pt + i * dh;\n"
    "                        if (yy < 0 || yy >= H)\n"
    "                            continue;\n"
    "                        for (j = 0; j < kw; ++j) {\n"
    "                            long xx = ox * sw - pl + j * dw;\n"
    "                            if (xx >= 0 && xx < W)\n"
    "                                acc += wc[i * kw + j] * xc[yy * W + xx];\n"
    "                        }\n"
    "                    }\n"
    "                }\n"
    "                y[(oc * Ho + oy) * Wo + ox] = b ? acc + b[oc] : acc;\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "}\n\n";

static const char helper_conv_q8[] =
    "/* int8 weights: w = q * scale[output channel], the float weights rankscope evaluated. */\n"
    "static void conv2d_q8(const float *x, float *y, const signed char *w, const float *scale,\n"
    "                      const float *b, long C, long H, long W, long M, long Ho, long Wo,\n"
    "                      long G, long kh, long kw, long sh, long sw, long dh, long dw, long pt,\n"
    "                      long pl)\n"
    "{\n"
    "    long cg = C / G, mg = M / G, oc, oy, ox, ci, i, j;\n"
    "    for (oc = 0; oc < M; ++oc) {\n"
    "        const signed char *wo = w + oc * cg * kh * kw;\n"
    "        const float *xg = x + (oc / mg) * cg * H * W;\n"
    "        const float s = scale[oc];\n"
    "        for (oy = 0; oy < Ho; ++oy) {\n"
    "            for (ox = 0; ox < Wo; ++ox) {\n"
    "                float acc = 0.0f;\n"
    "                for (ci = 0; ci < cg; ++ci) {\n"
    "                    const float *xc = xg + ci * H * W;\n"
    "                    const signed char *wc = wo + ci * kh * kw;\n"
    "                    for (i = 0; i < kh; ++i) {\n"
    "                        long yy = oy * sh - pt + i * dh;\n"
    "                        if (yy < 0 || yy >= H)\n"
    "                            continue;\n"
    "                        for (j = 0; j < kw; ++j) {\n"
    "                            long xx = ox * sw - pl + j * dw;\n"
    "                            if (xx >= 0 && xx < W)\n"
    "                                acc += ((float)wc[i * kw + j] * s) * xc[yy * W + xx];\n"
    "                        }\n"
    "                    }\n"
    "                }\n"
    "                y[(oc * Ho + oy) * Wo + ox] = b ? acc + b[oc] : acc;\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "}\n\n";

static const char helper_dense_f32[] =
    "/* y = alpha * x W + beta * b; W is (K,N), or (N,K) when trans_b; b has N values (bs = 1)\n"
    " * or one (bs = 0). */\n"
    "static void dense(const float *x, float *y, const float *w, const float *b, long bs, long K,\n"
    "                  long N, int trans_b, float alpha, float beta)\n"
    "{\n"
    "    long j, k;\n"
    "    for (j = 0; j < N; ++j) {\n"
    "        float acc = 0.0f;\n"
    "        for (k = 0; k < K; ++k)\n"
    "            acc += x[k] * (trans_b ? w[j * K + k] : w[k * N + j]);\n"
    "        acc *= alpha;\n"
    "        y[j] = b ? acc + beta * b[j * bs] : acc;\n"
    "    }\n"
    "}\n\n";

static const char helper_dense_q8[] =
    "static void dense_q8(const float *x, float *y, const signed char *w, const float *scale,\n"
    "                     const float *b, long bs, long K, long N, int trans_b, float alpha,\n"
    "                     float beta)\n"
    "{\n"
    "    long j, k;\n"
    "    for (j = 0; j < N; ++j) {\n"
    "        const float s = scale[j];\n"
    "        float acc = 0.0f;\n"
    "        for (k = 0; k < K; ++k)\n"
    "            acc += x[k] * ((float)(trans_b ? w[j * K + k] : w[k * N + j]) * s);\n"
    "        acc *= alpha;\n"
    "        y[j] = b ? acc + beta * b[j * bs] : acc;\n"
    "    }\n"
    "}\n\n";

static const char helper_relu[] =
    "static void relu(const float *x, float *y, long n)\n"
    "{\n"
    "    long i;\n"
    "    for (i = 0; i < n; ++i)\n"
    "        y[i] = x[i] > 0.0f ? x[i] : 0.0f;\n"
    "}\n\n";

static const char helper_leaky[] =
    "static void leaky_relu(const float *x, float *y, long n, float alpha)\n"
    "{\n"
    "    long i;\n"
    "    for (i = 0; i < n; ++i)\n"
    "        y[i] = x[i] >= 0.0f ? x[i] : alpha * x[i];\n"
    "}\n\n";

static const char helper_maxpool[] =
    "/* Padding never wins: only in-range elements are compared. */\n"
    "static void maxpool(const float *x, float *y, long C, long H, long W, long Ho, long Wo,\n"
    "                    long kh, long kw, long sh, long sw, long dh, long dw, long pt, long pl)\n"
    "{\n"
    "    long c, oy, ox, i, j;\n"
    "    for (c = 0; c < C; ++c) {\n"
    "        const float *xc = x + c * H * W;\n"
    "        for (oy = 0; oy < Ho; ++oy) {\n"
    "            for (ox = 0; ox < Wo; ++ox) {\n"
    "                float best = -3.402823466e+38f;\n"
    "                for (i = 0; i < kh; ++i) {\n"
    "                    long yy = oy * sh - pt + i * dh;\n"
    "                    if (yy < 0 || yy >= H)\n"
    "                        continue;\n"
    "                    for (j = 0; j < kw; ++j) {\n"
    "                        long xx = ox * sw - pl + j * dw;\n"
    "                        if (xx >= 0 && xx < W && xc[yy * W + xx] > best)\n"
    "                            best = xc[yy * W + xx];\n"
    "                    }\n"
    "                }\n"
    "                y[(c * Ho + oy) * Wo + ox] = best;\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "}\n\n";

static const char helper_addc[] =
    "/* y[(o * mid + j) * inner + i] = x[...] + c[j]: a constant broadcast over one image. */\n"
    "static void add_const(const float *x, float *y, const float *c, long outer, long mid,\n"
    "                      long inner)\n"
    "{\n"
    "    long o, j, i;\n"
    "    for (o = 0; o < outer; ++o)\n"
    "        for (j = 0; j < mid; ++j)\n"
    "            for (i = 0; i < inner; ++i)\n"
    "                y[(o * mid + j) * inner + i] = x[(o * mid + j) * inner + i] + c[j];\n"
    "}\n\n";

static const char helper_add2[] =
    "static void add2(const float *a, const float *b, float *y, long n)\n"
    "{\n"
    "    long i;\n"
    "    for (i = 0; i < n; ++i)\n"
    "        y[i] = a[i] + b[i];\n"
    "}\n\n";

static const char helper_clip[] =
    "static void clip(const float *x, float *y, long n, float lo, float hi)\n"
    "{\n"
    "    long i;\n"
    "    for (i = 0; i < n; ++i)\n"
    "        y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];\n"
    "}\n\n";

static const char helper_affine[] =
    "/* Inference BatchNormalization: y = x * scale[c] + shift[c] per channel. */\n"
    "static void affine(const float *x, float *y, const float *scale, const float *shift, long C,\n"
    "                   long inner)\n"
    "{\n"
    "    long c, i;\n"
    "    for (c = 0; c < C; ++c)\n"
    "        for (i = 0; i < inner; ++i)\n"
    "            y[c * inner + i] = x[c * inner + i] * scale[c] + shift[c];\n"
    "}\n\n";

static const char helper_avgpool[] =
    "/* ONNX AveragePool: the divisor counts taps inside the input, or inside the padded input\n"
    " * when count_pad; taps past the padded end (ceil_mode) never count. */\n"
    "static void avgpool(const float *x, float *y, long C, long H, long W, long Ho, long Wo,\n"
    "                    long kh, long kw, long sh, long sw, long pt, long pl, long pb, long pr,\n"
    "                    long count_pad)\n"
    "{\n"
    "    long c, oy, ox, i, j;\n"
    "    for (c = 0; c < C; ++c)\n"
    "        for (oy = 0; oy < Ho; ++oy)\n"
    "            for (ox = 0; ox < Wo; ++ox) {\n"
    "                float acc = 0.0f;\n"
    "                long taps = 0, ptaps = 0;\n"
    "                for (i = 0; i < kh; ++i) {\n"
    "                    long yy = oy * sh - pt + i;\n"
    "                    if (yy >= H + pb)\n"
    "                        break;\n"
    "                    for (j = 0; j < kw; ++j) {\n"
    "                        long xx = ox * sw - pl + j;\n"
    "                        if (xx >= W + pr)\n"
    "                            break;\n"
    "                        ++ptaps;\n"
    "                        if (yy < 0 || yy >= H || xx < 0 || xx >= W)\n"
    "                            continue;\n"
    "                        acc += x[(c * H + yy) * W + xx];\n"
    "                        ++taps;\n"
    "                    }\n"
    "                }\n"
    "                taps = count_pad ? ptaps : taps;\n"
    "                y[(c * Ho + oy) * Wo + ox] = taps > 0 ? acc / (float)taps : 0.0f;\n"
    "            }\n"
    "}\n\n";

static const char helper_pad[] =
    "/* Zero padding: pt rows above, pl columns left (the rest follows from Ho, Wo). */\n"
    "static void pad2d(const float *x, float *y, long C, long H, long W, long Ho, long Wo, long pt,\n"
    "                  long pl)\n"
    "{\n"
    "    long c, i, j;\n"
    "    for (i = 0; i < C * Ho * Wo; ++i)\n"
    "        y[i] = 0.0f;\n"
    "    for (c = 0; c < C; ++c)\n"
    "        for (i = 0; i < H; ++i)\n"
    "            for (j = 0; j < W; ++j)\n"
    "                y[(c * Ho + i + pt) * Wo + j + pl] = x[(c * H + i) * W + j];\n"
    "}\n\n";

static const char helper_reduce[] =
    "/* y[o * inner + i] = scale * sum over j of x[(o * mid + j) * inner + i]. */\n"
    "static void reduce(const float *x, float *y, long outer, long mid, long inner, float scale)\n"
    "{\n"
    "    long o, j, i;\n"
    "    for (o = 0; o < outer; ++o)\n"
    "        for (i = 0; i < inner; ++i) {\n"
    "            double acc = 0.0;\n"
    "            for (j = 0; j < mid; ++j)\n"
    "                acc += x[(o * mid + j) * inner + i];\n"
    "            y[o * inner + i] = (float)(acc * scale);\n"
    "        }\n"
    "}\n\n";

static const char helper_copy[] =
    "static void copy(const float *x, float *y, long n)\n"
    "{\n"
    "    long i;\n"
    "    for (i = 0; i < n; ++i)\n"
    "        y[i] = x[i];\n"
    "}\n\n";

static const char helper_binary[] =
    "/* y[k] = x[k] op c[j] (or c[j] op x[k] when swap), k = (o * mid + j) * inner + i: c broadcast\n"
    " * over one image; op 0 add, 1 subtract, 2 multiply, 3 divide, 4 PRelu (x >= 0 ? x : c x). */\n"
    "static void binary(const float *x, const float *c, float *y, long outer, long mid, long inner,\n"
    "                   int op, int swap)\n"
    "{\n"
    "    long o, j, i;\n"
    "    for (o = 0; o < outer; ++o)\n"
    "        for (j = 0; j < mid; ++j)\n"
    "            for (i = 0; i < inner; ++i) {\n"
    "                long k = (o * mid + j) * inner + i;\n"
    "                float a = swap ? c[j] : x[k], b = swap ? x[k] : c[j];\n"
    "                y[k] = op == 0 ? a + b : op == 1 ? a - b : op == 2 ? a * b : op == 3 ? a / b\n"
    "                     : a >= 0.0f ? a : a * b;\n"
    "            }\n"
    "}\n\n";

static const char helper_unary[] =
    "/* op 0: sigmoid; 1: hard sigmoid max(0, min(1, a x + b)); 2: hard swish x * that. */\n"
    "static void unary(const float *x, float *y, long n, int op, float a, float b)\n"
    "{\n"
    "    long i;\n"
    "    for (i = 0; i < n; ++i) {\n"
    "        float v = x[i], t = a * v + b;\n"
    "        t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;\n"
    "        y[i] = op == 0 ? 1.0f / (1.0f + expf(-v)) : op == 1 ? t : v * t;\n"
    "    }\n"
    "}\n\n";

static const char helper_strided[] =
    "/* Transpose / Slice / Expand: y[i] = x[off + sum over k of coord_k(i) * stride[k]], the\n"
    " * coordinates running over the extents dims[0..nd-1] of y (nd <= 7). */\n"
    "static void strided(const float *x, float *y, int nd, const long *dims, const long *stride,\n"
    "                    long off)\n"
    "{\n"
    "    long coord[8] = {0}, n = 1, i, src = off;\n"
    "    int k;\n"
    "    for (k = 0; k < nd; ++k)\n"
    "        n *= dims[k];\n"
    "    for (i = 0; i < n; ++i) {\n"
    "        y[i] = x[src];\n"
    "        for (k = nd - 1; k >= 0; --k) {\n"
    "            src += stride[k];\n"
    "            if (++coord[k] < dims[k])\n"
    "                break;\n"
    "            src -= stride[k] * coord[k];\n"
    "            coord[k] = 0;\n"
    "        }\n"
    "    }\n"
    "}\n\n";

const char *const export_c_helpers[H_COUNT] = {
    [H_CONV] = helper_conv_f32, [H_CONVQ] = helper_conv_q8,   [H_DENSE] = helper_dense_f32,
    [H_DENSEQ] = helper_dense_q8, [H_RELU] = helper_relu,      [H_POOL] = helper_maxpool,
    [H_ADDC] = helper_addc,     [H_ADD2] = helper_add2,       [H_COPY] = helper_copy,
    [H_CLIP] = helper_clip,     [H_AFFINE] = helper_affine,   [H_AVGPOOL] = helper_avgpool,
    [H_PAD] = helper_pad,       [H_LEAKY] = helper_leaky,     [H_REDUCE] = helper_reduce,
    [H_BINARY] = helper_binary, [H_UNARY] = helper_unary,   [H_STRIDED] = helper_strided,
};
