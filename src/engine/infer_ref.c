/* infer_ref.c — the plain executor: one node at a time over the whole batch.
 * infer_forward_naive (textbook loops) and infer_forward_blas (whole-batch im2col + cblas_sgemm
 * per layer) are bench's baselines and second opinions in tests.
 */
#include "rankscope/infer.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_internal.h"

static int64_t bcast_index(const rs_value *xv, const rs_value *cv, int64_t idx)
{
    /* Index into cv for element idx of one image of xv (numpy right-aligned broadcast). */
    int off = xv->ndim - cv->ndim;
    int64_t rem = idx, cidx = 0, cstride = 1;
    for (int k = xv->ndim - 1; k >= 1 && k >= off; --k) {
        int64_t d = xv->dims[k];
        int64_t coord = rem % d;
        rem /= d;
        int64_t cd = cv->dims[k - off];
        cidx += (cd == 1 ? 0 : coord) * cstride;
        cstride *= cd;
    }
    return cidx;
}

/* col (when not naive) holds col_floats floats: chunks of images are im2col'ed side by side so
 * one sgemm per group covers the chunk (per-image calls would drown in BLAS call overhead). */
static void plain_conv(const rs_model *m, const rs_node *nd, const float *x, int n, float *y,
                       int naive, float *col, size_t col_floats)
{
    const rs_value *xv = &m->values[nd->in[0]], *yv = &m->values[nd->out[0]];
    const rs_value *wv = &m->values[nd->in[1]];
    const float *bias = nd->n_in >= 3 && nd->in[2] >= 0 ? m->values[nd->in[2]].f : NULL;
    const int C = (int)xv->dims[1], H = (int)xv->dims[2], W = (int)xv->dims[3];
    const int M = (int)yv->dims[1], Ho = (int)yv->dims[2], Wo = (int)yv->dims[3];
    const int G = (int)nd->group, cg = C / G, mg = M / G;
    const int kh = (int)wv->dims[2], kw = (int)wv->dims[3];
    const int sh = (int)nd->strides[0], sw = (int)nd->strides[1];
    const int dh = (int)nd->dilations[0], dw = (int)nd->dilations[1];
    const int pt = (int)nd->pads[0], pl = (int)nd->pads[1];
    const int K = cg * kh * kw, P = Ho * Wo;
    if (!naive) {
        /* col: K × (chunk·P), then the product mg × (chunk·P) right after it. */
        size_t per_img = (size_t)(K + mg) * P;
        int chunk = (int)(col_floats / per_img);
        if (chunk < 1)
            chunk = 1;
        if (chunk > n)
            chunk = n;
        float *prod = col + (size_t)K * P * chunk;
        for (int b0 = 0; b0 < n; b0 += chunk) {
            int nb = n - b0 < chunk ? n - b0 : chunk;
            int ld = nb * P;
            for (int g = 0; g < G; ++g) {
                for (int b = 0; b < nb; ++b)
                    kern_im2col(cg, H, W, x + ((size_t)(b0 + b) * C + (size_t)g * cg) * H * W, kh,
                                kw, sh, sw, dh, dw, pt, pl, Ho, Wo, col + (size_t)b * P, ld);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mg, ld, K, 1.0f,
                            wv->f + (size_t)g * mg * K, K, col, ld, 0.0f, prod, ld);
                for (int b = 0; b < nb; ++b)
                    for (int o = 0; o < mg; ++o) {
                        float *dst = y + ((size_t)(b0 + b) * M + (size_t)g * mg + o) * P;
                        const float *src = prod + (size_t)o * ld + (size_t)b * P;
                        float bo = bias ? bias[g * mg + o] : 0.0f;
                        for (int p = 0; p < P; ++p)
                            dst[p] = src[p] + bo;
                    }
            }
        }
        return;
    }
    for (int img = 0; img < n; ++img) {
        const float *xi = x + (size_t)img * C * H * W;
        float *yi = y + (size_t)img * M * P;
        for (int g = 0; g < G; ++g) {
            const float *wg = wv->f + (size_t)g * mg * K;
            float *yg = yi + (size_t)g * mg * P;
            for (int o = 0; o < mg; ++o)
                for (int oy = 0; oy < Ho; ++oy)
                    for (int ox = 0; ox < Wo; ++ox) {
                        float acc = bias ? bias[g * mg + o] : 0.0f;
                        for (int ci = 0; ci < cg; ++ci)
                            for (int i = 0; i < kh; ++i) {
                                int yy = oy * sh - pt + i * dh;
                                if (yy < 0 || yy >= H)
                                    continue;
                                for (int j = 0; j < kw; ++j) {
                                    int xx = ox * sw - pl + j * dw;
                                    if (xx < 0 || xx >= W)
                                        continue;
                                    acc += wg[((size_t)o * cg + ci) * kh * kw + i * kw + j] *
                                           xi[((size_t)(g * cg + ci) * H + yy) * W + xx];
                                }
                            }
                        yg[(size_t)o * P + oy * Wo + ox] = acc;
                    }
        }
    }
}

static void plain_dense(const rs_model *m, const rs_node *nd, const float *x, int n, float *y,
                        int naive)
{
    const rs_value *wv = &m->values[nd->in[1]];
    const int gemm = nd->op == RS_OP_GEMM, tb = gemm && nd->trans_b;
    const int K = (int)(tb ? wv->dims[1] : wv->dims[0]);
    const int N = (int)(tb ? wv->dims[0] : wv->dims[1]);
    const float alpha = gemm ? nd->alpha : 1.0f;
    if (naive) {
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < N; ++j) {
                float acc = 0.0f;
                for (int k = 0; k < K; ++k)
                    acc += x[(size_t)i * K + k] *
                           (tb ? wv->f[(size_t)j * K + k] : wv->f[(size_t)k * N + j]);
                y[(size_t)i * N + j] = alpha * acc;
            }
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, n, N, K, alpha,
                    x, K, wv->f, tb ? K : N, 0.0f, y, N);
    }
    if (gemm && nd->n_in >= 3 && nd->in[2] >= 0) {
        const rs_value *cv = &m->values[nd->in[2]];
        int64_t cn = model_value_numel(cv);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < N; ++j)
                y[(size_t)i * N + j] += nd->beta * cv->f[cn == 1 ? 0 : j];
    }
}

static int plain_run(const rs_model *m, const float *x, int n, int capture, float *cap_out,
                     int naive, rs_err *e)
{
    /* Validate through the fast compiler (same supported subset, same error messages). */
    infer_ctx *probe = calloc(1, sizeof *probe);
    if (!probe)
        return rs_fail(e, "infer: out of memory");
    probe->vl = 8;
    probe->tile = 1;
    probe->result_v = -1;
    probe->nthreads = 1;
    pthread_mutex_init(&probe->mu, NULL);
    pthread_cond_init(&probe->cv_go, NULL);
    pthread_cond_init(&probe->cv_done, NULL);
    int rc = infer_compile(probe, m, e);
    /* im2col workspace: at least one image of the largest conv, else up to 1 M floats (4 MB,
     * cache-sized: bigger chunks measured slower, bound by memory traffic and page faults). */
    size_t col_floats = (size_t)1 << 20;
    for (int i = 0; i < probe->n_steps; ++i) {
        const step *s = &probe->steps[i];
        size_t one = (size_t)(s->K + s->M) * s->Ho * s->Wo;
        if (s->kind == ST_CONV && one > col_floats)
            col_floats = one;
    }
    infer_free(probe);
    if (rc)
        return -1;

    const int nv = m->n_values;
    float **val = calloc((size_t)nv, sizeof(float *));
    int *last = malloc((size_t)nv * sizeof(int));
    float *col = NULL;
    if (!naive) { /* no larger than the batch needs */
        size_t need = 0;
        for (int i = 0; i < m->n_nodes; ++i)
            if (m->nodes[i].op == RS_OP_CONV) {
                const rs_value *yv = &m->values[m->nodes[i].out[0]];
                const rs_value *wv = &m->values[m->nodes[i].in[1]];
                size_t per = (size_t)(wv->dims[1] * wv->dims[2] * wv->dims[3] + yv->dims[1]) *
                             (size_t)(yv->dims[2] * yv->dims[3]);
                size_t all = per * (size_t)n;
                if (all > need)
                    need = all;
            }
        if (need < col_floats)
            col_floats = need;
        col = malloc((col_floats + 1) * sizeof(float));
    }
    rc = -1;
    if (!val || !last || (!naive && !col)) {
        rs_fail(e, "infer: out of memory");
        goto done;
    }
    for (int v = 0; v < nv; ++v)
        last[v] = -1;
    for (int i = 0; i < m->n_nodes; ++i)
        for (int j = 0; j < m->nodes[i].n_in; ++j)
            if (m->nodes[i].in[j] >= 0)
                last[m->nodes[i].in[j]] = i;
    last[m->output] = m->n_nodes;
    if (capture >= 0)
        last[capture] = m->n_nodes;
    val[m->input] = (float *)x; /* never written, never freed */
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *nd = &m->nodes[i];
        const int vout = nd->out[0];
        const int64_t on = model_value_numel(&m->values[vout]);
        size_t total;
        if (rs_size_mul((size_t)on, (size_t)n, &total) || total > RS_MAX_ALLOC / sizeof(float)) {
            rs_fail(e, "node %s: activation too large for %d images", nd->name, n);
            goto done;
        }
        float *y = malloc(total * sizeof(float) + 4);
        if (!y) {
            rs_fail(e, "node %s: out of memory", nd->name);
            goto done;
        }
        val[vout] = y;
        const rs_value *xv = &m->values[nd->in[0]];
        const float *xin = val[nd->in[0]];
        switch (nd->op) {
        case RS_OP_CONV:
            plain_conv(m, nd, xin, n, y, naive, col, col_floats);
            break;
        case RS_OP_GEMM:
        case RS_OP_MATMUL:
            plain_dense(m, nd, xin, n, y, naive);
            break;
        case RS_OP_ADD: {
            if (!m->values[nd->in[0]].is_const && !m->values[nd->in[1]].is_const) {
                const float *b2 = val[nd->in[1]];
                for (size_t k = 0; k < total; ++k)
                    y[k] = xin[k] + b2[k];
                break;
            }
            int ca = m->values[nd->in[0]].is_const;
            const rs_value *av = &m->values[nd->in[ca ? 1 : 0]];
            const rs_value *cv = &m->values[nd->in[ca ? 0 : 1]];
            const float *a = val[nd->in[ca ? 1 : 0]];
            for (int img = 0; img < n; ++img)
                for (int64_t k = 0; k < on; ++k)
                    y[(size_t)img * on + k] = a[(size_t)img * on + k] + cv->f[bcast_index(av, cv, k)];
            break;
        }
        case RS_OP_RELU:
            for (size_t k = 0; k < total; ++k)
                y[k] = xin[k] > 0.0f ? xin[k] : 0.0f;
            break;
        case RS_OP_MAXPOOL: {
            const rs_value *yv = &m->values[vout];
            int C = (int)xv->dims[1], H = (int)xv->dims[2], W = (int)xv->dims[3];
            for (int img = 0; img < n; ++img)
                kern_maxpool(C, H, W, W, H * W, xin + (size_t)img * C * H * W, (int)yv->dims[2],
                             (int)yv->dims[3], (int)nd->kernel[0], (int)nd->kernel[1],
                             (int)nd->strides[0], (int)nd->strides[1], (int)nd->dilations[0],
                             (int)nd->dilations[1], (int)nd->pads[0], (int)nd->pads[1], 0,
                             y + (size_t)img * on);
            break;
        }
        case RS_OP_BATCHNORM: {
            int C = (int)xv->dims[1];
            float *scale = NULL, *shift = NULL;
            if (infer_bn_affine(m, nd, C, &scale, &shift, e)) {
                free(scale);
                free(shift);
                goto done;
            }
            for (int img = 0; img < n; ++img)
                infer_op_affine(C, (int)(on / C), scale, shift, xin + (size_t)img * on, y + (size_t)img * on);
            free(scale);
            free(shift);
            break;
        }
        case RS_OP_GLOBALAVGPOOL:
        case RS_OP_AVGPOOL: {
            const rs_value *yv = &m->values[vout];
            int C = (int)xv->dims[1], H = (int)xv->dims[2], W = (int)xv->dims[3];
            int64_t xn = model_value_numel(xv);
            pool_geom pg;
            int pb = 0, pr = 0, cip = 0;
            if (nd->op == RS_OP_GLOBALAVGPOOL) {
                pg = (pool_geom){H, W, 1, 1, 1, 1, 0, 0, 1, 1};
            } else {
                infer_pool_geom(nd, (int)yv->dims[2], (int)yv->dims[3], &pg);
                pb = (int)nd->pads[2], pr = (int)nd->pads[3], cip = nd->count_include_pad;
            }
            for (int img = 0; img < n; ++img)
                infer_op_avgpool(C, H, W, &pg, pb, pr, cip, xin + (size_t)img * xn, y + (size_t)img * on);
            break;
        }
        case RS_OP_CLIP:
            for (size_t k = 0; k < total; ++k)
                y[k] = fminf(fmaxf(xin[k], nd->clip_min), nd->clip_max);
            break;
        case RS_OP_SIGMOID:
            for (size_t k = 0; k < total; ++k)
                y[k] = 1.0f / (1.0f + expf(-xin[k]));
            break;
        case RS_OP_SOFTMAX:
            for (int img = 0; img < n; ++img)
                infer_op_softmax((int)on, xin + (size_t)img * on, y + (size_t)img * on);
            break;
        case RS_OP_PAD: {
            const rs_value *yv = &m->values[vout];
            int64_t xn = model_value_numel(xv);
            for (int img = 0; img < n; ++img)
                infer_op_pad((int)xv->dims[1], (int)xv->dims[2], (int)xv->dims[3], (int)nd->pads[0],
                       (int)nd->pads[1], (int)yv->dims[2], (int)yv->dims[3], xin + (size_t)img * xn,
                       y + (size_t)img * on);
            break;
        }
        case RS_OP_CONCAT: {
            const float *b2 = val[nd->in[1]];
            int64_t an = model_value_numel(xv), bn = on - an;
            for (int img = 0; img < n; ++img) {
                memcpy(y + (size_t)img * on, xin + (size_t)img * an, (size_t)an * sizeof(float));
                memcpy(y + (size_t)img * on + an, b2 + (size_t)img * bn, (size_t)bn * sizeof(float));
            }
            break;
        }
        default: /* Flatten / Reshape / Identity: same bytes */
            memcpy(y, xin, total * sizeof(float));
            break;
        }
        for (int j = 0; j < nd->n_in; ++j) {
            int v = nd->in[j];
            if (v >= 0 && v != m->input && last[v] == i && !m->values[v].is_const) {
                free(val[v]);
                val[v] = NULL;
            }
        }
    }
    {
        int v = capture >= 0 ? capture : m->output;
        const float *src = val[v];
        if (!src) {
            rs_fail(e, "value '%s' is not computed by the graph", m->values[v].name);
            goto done;
        }
        memcpy(cap_out, src, (size_t)n * model_value_numel(&m->values[v]) * sizeof(float));
    }
    rc = 0;
done:
    if (val)
        for (int v = 0; v < nv; ++v)
            if (v != m->input && !m->values[v].is_const)
                free(val[v]);
    free(val);
    free(last);
    free(col);
    return rc;
}



int infer_forward_naive(const rs_model *m, const float *x, int n, float *out, rs_err *e)
{
    if (!m || n < 0 || (n > 0 && (!x || !out)))
        return rs_fail(e, "infer_forward_naive: invalid arguments");
    if (n == 0)
        return 0;
    return plain_run(m, x, n, -1, out, 1, e);
}

int infer_forward_blas(const rs_model *m, const float *x, int n, float *out, rs_err *e)
{
    if (!m || n < 0 || (n > 0 && (!x || !out)))
        return rs_fail(e, "infer_forward_blas: invalid arguments");
    if (n == 0)
        return 0;
    return plain_run(m, x, n, -1, out, 0, e);
}

