/* grad_elem.c — the training tape entries and passes of the element-wise and layout ops (named
 * by their registry rows): LeakyRelu, Sigmoid, HardSigmoid, HardSwish; Sub / Mul / Div / PRelu
 * with broadcasting; Concat of two activations; the strided copies Transpose / Slice / Expand. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops_internal.h"
#include "train_internal.h"

int grad_compile_unary(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    (void)m;
    t->alpha = n->alpha;
    t->beta = n->beta;
    if (t->xsz != t->ysz)
        TN_NODE_ERR(e, n, "input and output sizes differ");
    return 0;
}

void grad_fwd_unary(const tn_pass *p)
{
    const tn_node *t = p->t;
    for (size_t k = 0; k < p->total; ++k) {
        float v = p->x[k];
        if (t->op == RS_OP_LEAKYRELU) {
            p->y[k] = v >= 0 ? v : t->alpha * v;
        } else if (t->op == RS_OP_SIGMOID) {
            p->y[k] = 1.0f / (1.0f + expf(-v));
        } else {
            int hs = t->op == RS_OP_HARDSWISH;
            float g = (hs ? 1.0f / 6.0f : t->alpha) * v + (hs ? 0.5f : t->beta);
            g = g < 0 ? 0 : g > 1 ? 1 : g;
            p->y[k] = hs ? v * g : g;
        }
    }
}

/* dx += dy · f'(x) (Sigmoid's from y); at the kinks PyTorch's choice, the flat side. */
void grad_bwd_unary(const tn_pass *p)
{
    const tn_node *t = p->t;
    for (size_t k = 0; p->dx && k < p->total; ++k) {
        float x = p->x[k], d;
        if (t->op == RS_OP_LEAKYRELU) {
            d = x >= 0 ? 1.0f : t->alpha;
        } else if (t->op == RS_OP_SIGMOID) {
            d = p->y[k] * (1.0f - p->y[k]);
        } else if (t->op == RS_OP_HARDSIGMOID) {
            float v = t->alpha * x + t->beta;
            d = v > 0 && v < 1 ? t->alpha : 0.0f;
        } else {
            d = x < -3.0f ? 0.0f : x > 3.0f ? 1.0f : x / 3.0f + 0.5f;
        }
        p->dx[k] += p->dy[k] * d;
    }
}

/* Shape inference allows the channel axis only: per image, x then x2. */
int grad_compile_concat(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    if (n->n_in != 2 || n->in[1] < 0 || m->values[n->in[1]].is_const)
        TN_NODE_ERR(e, n, "training joins exactly two activations");
    t->x2 = n->in[1];
    return 0;
}

void grad_fwd_concat(const tn_pass *p)
{
    const tn_node *t = p->t;
    size_t n2 = (size_t)(t->ysz - t->xsz);
    for (int i = 0; i < p->ns; ++i) {
        memcpy(p->y + (size_t)i * t->ysz, p->x + (size_t)i * t->xsz, (size_t)t->xsz * sizeof *p->y);
        memcpy(p->y + (size_t)i * t->ysz + t->xsz, p->act[t->x2] + (size_t)i * n2, n2 * sizeof *p->y);
    }
}

void grad_bwd_concat(const tn_pass *p)
{
    const tn_node *t = p->t;
    size_t n2 = (size_t)(t->ysz - t->xsz);
    float *dx2 = p->need[t->x2] ? p->grad[t->x2] : NULL;
    for (int i = 0; i < p->ns; ++i) {
        const float *g = p->dy + (size_t)i * t->ysz;
        for (int64_t k = 0; p->dx && k < t->xsz; ++k)
            p->dx[(size_t)i * t->xsz + k] += g[k];
        for (size_t k = 0; dx2 && k < n2; ++k)
            dx2[(size_t)i * n2 + k] += g[t->xsz + k];
    }
}

/* Sub / Mul / Div: either input may be the constant, which learns like Add's (a bias). */
int grad_compile_binary(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    for (int k = 0; k < 2; ++k) {
        if (!m->values[n->in[k]].is_const)
            continue;
        if (!ops_float_const(m, n->in[k]))
            TN_NODE_ERR(e, n, "constant operand must be float");
        t->param[1] = n->in[k];
    }
    t->x2 = !m->values[n->in[1]].is_const ? n->in[1] : -1;
    return 0;
}

/* PRelu: the slope learns, broadcast like a binary op's constant. */
int grad_compile_prelu(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    if (!ops_float_const(m, n->in[1]))
        TN_NODE_ERR(e, n, "slope must be a float constant");
    t->param[1] = n->in[1];
    return 0;
}

void grad_fwd_binary(const tn_pass *p)
{
    const rs_node *n = &p->m->nodes[p->t->node];
    const float *ins[2];
    for (int k = 0; k < 2; ++k)
        ins[k] = p->m->values[n->in[k]].is_const ? NULL : p->act[n->in[k]];
    ops_batch ob = {p->m, n, p->ns, ins, p->y, 1, NULL, 0};
    if (p->t->op == RS_OP_PRELU)
        ops_fwd_prelu(&ob, NULL);
    else
        ops_fwd_binary(&ob, NULL);
}

/* Each input gets its share of dy, summed over the axes it was broadcast along (a
 * squeeze-and-excitation gate (N,C,1,1) sums over H and W; the constant — p->db, or NULL when it
 * does not learn — also over the images). */
void grad_bwd_binary(const tn_pass *p)
{
    const tn_node *t = p->t;
    const rs_model *m = p->m;
    const rs_node *n = &m->nodes[t->node];
    const rs_value *yv = &m->values[n->out[0]];
    int64_t stride[2][RS_MAXDIM], step[2];
    int r;
    const float *src[2];
    float *dsrc[2];
    ops_binary_strides(m, n, &r, stride, step);
    for (int k = 0; k < 2; ++k) {
        const rs_value *v = &m->values[n->in[k]];
        src[k] = v->is_const ? v->f : p->act[n->in[k]];
        dsrc[k] = !v->is_const ? (p->need[n->in[k]] ? p->grad[n->in[k]] : NULL) : p->db;
    }
    if (!dsrc[0] && !dsrc[1])
        return;
    for (int img = 0; img < p->ns; ++img) {
        const float *a = src[0] + (size_t)img * step[0], *b = src[1] + (size_t)img * step[1];
        float *da = dsrc[0] ? dsrc[0] + (size_t)img * step[0] : NULL;
        float *db = dsrc[1] ? dsrc[1] + (size_t)img * step[1] : NULL;
        const float *g = p->dy + (size_t)img * t->ysz;
        int64_t coord[RS_MAXDIM] = {0}, i0 = 0, i1 = 0;
        for (int64_t i = 0; i < t->ysz; ++i) {
            float av = a[i0], bv = b[i1];
            if (t->op == RS_OP_PRELU) { /* y = a >= 0 ? a : b·a */
                if (da)
                    da[i0] += av >= 0 ? g[i] : g[i] * bv;
                if (db && av < 0)
                    db[i1] += g[i] * av;
            } else {
                if (da)
                    da[i0] += t->op == RS_OP_SUB ? g[i] : t->op == RS_OP_MUL ? g[i] * bv : g[i] / bv;
                if (db)
                    db[i1] += t->op == RS_OP_SUB   ? -g[i]
                              : t->op == RS_OP_MUL ? g[i] * av
                                                   : -g[i] * av / (bv * bv);
            }
            ops_next_coord(r, yv->dims + 1, coord, stride[0], &i0, stride[1], &i1);
        }
    }
}

/* Transpose / Slice / Expand: one strided read of each image (ops_strided_plan). */
int grad_compile_strided(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e)
{
    int nd;
    int64_t dims[RS_MAXDIM], stride[RS_MAXDIM], off;
    (void)t;
    if (ops_strided_plan(m, n, &nd, dims, stride, &off) != 0)
        TN_NODE_ERR(e, n, "bad geometry");
    return 0;
}

void grad_fwd_strided(const tn_pass *p)
{
    const float *ins[1] = {p->x};
    ops_batch ob = {p->m, &p->m->nodes[p->t->node], p->ns, ins, p->y, 1, NULL, 0};
    ops_fwd_strided(&ob, NULL);
}

/* dx[off + Σ coord·stride] += dy (Expand's repeats add up). */
void grad_bwd_strided(const tn_pass *p)
{
    const tn_node *t = p->t;
    int nd;
    int64_t dims[RS_MAXDIM], stride[RS_MAXDIM], off;
    if (!p->dx || ops_strided_plan(p->m, &p->m->nodes[t->node], &nd, dims, stride, &off) != 0)
        return;
    for (int img = 0; img < p->ns; ++img) {
        float *d = p->dx + (size_t)img * t->xsz + off;
        const float *g = p->dy + (size_t)img * t->ysz;
        int64_t coord[RS_MAXDIM] = {0}, src = 0;
        for (int64_t i = 0; i < t->ysz; ++i) {
            d[src] += g[i];
            ops_next_coord(nd, dims, coord, stride, &src, NULL, NULL);
        }
    }
}
