/* infer_ops.c — per-image operations shared by the tiled executor and the plain one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_internal.h"

void *infer_alloc_floats(size_t n)
{
    size_t bytes = n * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0)
        bytes = 64;
    void *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void infer_op_affine(int C, int hw, const float *scale, const float *shift, const float *in,
                      float *out)
{
    for (int ch = 0; ch < C; ++ch)
        for (int k = 0; k < hw; ++k)
            out[(size_t)ch * hw + k] = in[(size_t)ch * hw + k] * scale[ch] + shift[ch];
}

/* ONNX AveragePool: the divisor counts the window's taps inside the input (count_include_pad 0)
 * or inside the padded input (1); taps past the padded end (ceil_mode) never count. Each window's
 * valid rows and columns are clamped once instead of testing every tap. */
void infer_op_avgpool(int C, int H, int W, const pool_geom *p, int pb, int pr, int count_pad,
                       const float *in, float *out)
{
    const int hw = H * W;
    if (p->Ho == 1 && p->Wo == 1 && p->kh == H && p->kw == W && p->pt == 0 && p->pl == 0 && p->dh == 1 &&
        p->dw == 1) {
        /* global average: eight interleaved partial sums, so the loop vectorises (a fixed order,
         * the same result on every run) */
        for (int ch = 0; ch < C; ++ch) {
            const float *src = in + (size_t)ch * hw;
            float part[8] = {0};
            int k = 0;
            for (; k + 8 <= hw; k += 8)
                for (int j = 0; j < 8; ++j)
                    part[j] += src[k + j];
            float acc = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
            for (; k < hw; ++k)
                acc += src[k];
            out[ch] = acc / (float)hw;
        }
        return;
    }
    for (int ch = 0; ch < C; ++ch) {
        const float *src = in + (size_t)ch * hw;
        float *dst = out + (size_t)ch * p->Ho * p->Wo;
        for (int oy = 0; oy < p->Ho; ++oy) {
            const int y0 = oy * p->sh - p->pt;
            const int i0 = y0 < 0 ? -y0 : 0, i1 = H - y0 < p->kh ? H - y0 : p->kh;
            const int prow = H + pb - y0 < p->kh ? H + pb - y0 : p->kh;
            for (int ox = 0; ox < p->Wo; ++ox) {
                const int x0 = ox * p->sw - p->pl;
                const int j0 = x0 < 0 ? -x0 : 0, j1 = W - x0 < p->kw ? W - x0 : p->kw;
                const int pcol = W + pr - x0 < p->kw ? W + pr - x0 : p->kw;
                float acc = 0.0f;
                for (int i = i0; i < i1; ++i)
                    for (int j = j0; j < j1; ++j)
                        acc += src[(size_t)(y0 + i) * W + x0 + j];
                int taps = (i1 > i0 ? i1 - i0 : 0) * (j1 > j0 ? j1 - j0 : 0);
                int ptaps = (prow > 0 ? prow : 0) * (pcol > 0 ? pcol : 0);
                int div = count_pad ? ptaps : taps;
                dst[(size_t)oy * p->Wo + ox] = div > 0 ? acc / (float)div : 0.0f;
            }
        }
    }
}

void infer_op_pad(int C, int H, int W, int pt, int pl, int Ho, int Wo, const float *in, float *out)
{
    memset(out, 0, (size_t)C * Ho * Wo * sizeof(float));
    for (int ch = 0; ch < C; ++ch)
        for (int y = 0; y < H; ++y)
            memcpy(out + ((size_t)ch * Ho + y + pt) * Wo + pl, in + ((size_t)ch * H + y) * W,
                   (size_t)W * sizeof(float));
}

void infer_op_softmax(int n, const float *in, float *out)
{
    float mx = -INFINITY;
    for (int k = 0; k < n; ++k)
        mx = in[k] > mx ? in[k] : mx;
    double sum = 0.0;
    for (int k = 0; k < n; ++k)
        sum += (out[k] = expf(in[k] - mx));
    float inv = (float)(1.0 / sum);
    for (int k = 0; k < n; ++k)
        out[k] *= inv;
}


void infer_pool_geom(const rs_node *n, int Ho, int Wo, pool_geom *p)
{
    *p = (pool_geom){(int)n->kernel[0], (int)n->kernel[1], (int)n->strides[0], (int)n->strides[1],
                     (int)n->dilations[0], (int)n->dilations[1], (int)n->pads[0], (int)n->pads[1],
                     Ho, Wo};
}
