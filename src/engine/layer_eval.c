/* layer_eval.c — one Conv / dense layer evaluated directly: im2col + one sgemm per image for
 * group 1, double-accumulating loops for grouped convolutions (little work per output). */
#include "layer_eval.h"

#include <gsl/gsl_cblas.h> /* declarations only; OpenBLAS provides the symbols */

int64_t le_col_size(const le_conv_shape *s)
{
    return s->group == 1 ? s->c_in * s->kh * s->kw * s->oh * s->ow : 1;
}

void le_im2col(const le_conv_shape *s, const float *x, float *col)
{
    int64_t P = s->oh * s->ow, h = s->h, w = s->w;
    const int64_t *st = s->strides, *pd = s->pads, *dl = s->dilations;
    for (int64_t ic = 0; ic < s->c_in; ++ic)
        for (int64_t a = 0; a < s->kh; ++a)
            for (int64_t c = 0; c < s->kw; ++c) {
                float *row = col + ((ic * s->kh + a) * s->kw + c) * P;
                for (int64_t p = 0; p < s->oh; ++p) {
                    int64_t yy = p * st[0] + a * dl[0] - pd[0];
                    for (int64_t q = 0; q < s->ow; ++q) {
                        int64_t xx = q * st[1] + c * dl[1] - pd[1];
                        row[p * s->ow + q] =
                            yy >= 0 && yy < h && xx >= 0 && xx < w ? x[(ic * h + yy) * w + xx] : 0.0f;
                    }
                }
            }
}

void le_conv(const le_conv_shape *s, const float *x, int n, const float *wt, const float *bias, float *y,
             float *col)
{
    int64_t c_in = s->c_in, h = s->h, w = s->w, c_out = s->c_out, kh = s->kh, kw = s->kw;
    int64_t oh = s->oh, ow = s->ow, group = s->group;
    const int64_t *st = s->strides, *pd = s->pads, *dl = s->dilations;
    int64_t cig = c_in / group, cog = c_out / group;
    if (group == 1) {
        int64_t K = c_in * kh * kw, P = oh * ow;
        for (int b = 0; b < n; ++b) {
            le_im2col(s, x + (int64_t)b * c_in * h * w, col);
            float *yb = y + (int64_t)b * c_out * P;
            for (int64_t o = 0; o < c_out; ++o)
                for (int64_t i = 0; i < P; ++i)
                    yb[o * P + i] = bias ? bias[o] : 0.0f;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c_out, (int)P, (int)K, 1.0f, wt, (int)K,
                        col, (int)P, 1.0f, yb, (int)P);
        }
        return;
    }
    for (int b = 0; b < n; ++b)
        for (int64_t o = 0; o < c_out; ++o) {
            int64_t gi = o / cog;
            float *yo = y + ((int64_t)b * c_out + o) * oh * ow;
            for (int64_t p = 0; p < oh; ++p)
                for (int64_t q = 0; q < ow; ++q) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int64_t ic = 0; ic < cig; ++ic) {
                        const float *xc = x + ((int64_t)b * c_in + gi * cig + ic) * h * w;
                        const float *wc = wt + (o * cig + ic) * kh * kw;
                        for (int64_t a = 0; a < kh; ++a) {
                            int64_t yy = p * st[0] + a * dl[0] - pd[0];
                            if (yy < 0 || yy >= h)
                                continue;
                            for (int64_t c = 0; c < kw; ++c) {
                                int64_t xx = q * st[1] + c * dl[1] - pd[1];
                                if (xx < 0 || xx >= w)
                                    continue;
                                acc += (double)wc[a * kw + c] * xc[yy * w + xx];
                            }
                        }
                    }
                    yo[p * ow + q] = (float)acc;
                }
        }
}

void le_dense(const float *x, int n, int64_t K, int64_t N, const float *W, int nk, const float *bias,
              int64_t bias_len, float alpha, float beta, float *y)
{
    for (int b = 0; b < n; ++b)
        for (int64_t j = 0; j < N; ++j) {
            double acc = 0;
            for (int64_t k = 0; k < K; ++k)
                acc += (double)x[(int64_t)b * K + k] * (nk ? W[j * K + k] : W[k * N + j]);
            acc *= alpha;
            if (bias)
                acc += (double)beta * bias[bias_len == 1 ? 0 : j];
            y[(int64_t)b * N + j] = (float)acc;
        }
}
