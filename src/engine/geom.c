/* geom.c — a weighted layer's shapes and weight, read once from the model, and the matrix
 * arrangements of that weight that the decompositions and spectra work on. */
#include "geom.h"

#include <stdlib.h>
#include <string.h>

int geom_of(const rs_model *m, int node, layer_geom *g, rs_err *e)
{
    memset(g, 0, sizeof *g);
    g->bias_value = -1;
    if (!m || node < 0 || node >= m->n_nodes)
        return rs_fail(e, "decomp: node index %d out of range", node);
    const rs_node *n = &m->nodes[node];
    g->node = n;
    if (!model_is_weighted(m, node))
        return rs_fail(e, "%s: %s layer has no weight to factorize", n->name, model_op_name(n->op));
    const rs_value *w = &m->values[n->in[1]];
    const rs_value *x = n->in[0] >= 0 ? &m->values[n->in[0]] : NULL;
    const rs_value *y = n->out[0] >= 0 ? &m->values[n->out[0]] : NULL;
    if (!x || !y || x->ndim < 2 || y->ndim < 2)
        return rs_fail(e, "%s: activation shapes unknown (model_infer_shapes not run?)", n->name);
    g->w = w->f;
    g->weight_numel = model_value_numel(w);
    if (n->n_in > 2 && n->in[2] >= 0) {
        g->bias_value = n->in[2];
        g->bias = m->values[n->in[2]].f;
        g->bias_len = model_value_numel(&m->values[n->in[2]]);
    }
    if (n->op == RS_OP_CONV) {
        if (w->ndim != 4 || x->ndim != 4 || y->ndim != 4)
            return rs_fail(e, "%s: Conv weight/activations must be 4-D", n->name);
        g->conv = 1;
        g->c_out = w->dims[0];
        g->group = n->group;
        g->c_in = w->dims[1] * n->group;
        g->kh = w->dims[2];
        g->kw = w->dims[3];
        g->h_in = x->dims[2];
        g->w_in = x->dims[3];
        g->h_out = y->dims[2];
        g->w_out = y->dims[3];
    } else {
        if (w->ndim != 2 || x->ndim != 2)
            return rs_fail(e, "%s: dense weight and input must be 2-D", n->name);
        g->group = 1;
        g->dense_nk = n->op == RS_OP_GEMM && n->trans_b;
        g->c_out = g->dense_nk ? w->dims[0] : w->dims[1];
        g->c_in = g->dense_nk ? w->dims[1] : w->dims[0];
        g->kh = g->kw = 1;
        g->h_in = g->w_in = g->h_out = g->w_out = 1;
    }
    if (g->c_out < 1 || g->c_in < 1 || g->kh < 1 || g->kw < 1)
        return rs_fail(e, "%s: empty weight", n->name);
    return 0;
}

double *geom_weight(const layer_geom *g)
{
    size_t n = (size_t)g->weight_numel;
    double *K = malloc((n ? n : 1) * sizeof *K);
    if (!K)
        return NULL;
    if (g->conv || g->dense_nk) {
        for (size_t i = 0; i < n; ++i)
            K[i] = g->w[i];
    } else { /* (K, N) -> (N, K) */
        for (int64_t k = 0; k < g->c_in; ++k)
            for (int64_t j = 0; j < g->c_out; ++j)
                K[j * g->c_in + k] = g->w[k * g->c_out + j];
    }
    return K;
}

void geom_matrix(const layer_geom *g, const double *K, geom_layout layout, double *A, int *rows,
                 int *cols)
{
    int64_t co = g->c_out, ci = g->c_in / g->group, kh = g->kh, kw = g->kw, s = kh * kw;
    switch (layout) {
    case GEOM_MODE0: /* K is already C_out × (C_in·kh·kw) row-major */
        *rows = (int)co;
        *cols = (int)(ci * s);
        memcpy(A, K, (size_t)(co * ci * s) * sizeof *A);
        break;
    case GEOM_MODE1:
        *rows = (int)ci;
        *cols = (int)(co * s);
        for (int64_t o = 0; o < co; ++o)
            for (int64_t i = 0; i < ci; ++i)
                memcpy(A + i * co * s + o * s, K + (o * ci + i) * s, (size_t)s * sizeof *A);
        break;
    case GEOM_SPATIAL: /* M[(i,a), (o,b)] = K[o,i,a,b] */
        *rows = (int)(ci * kh);
        *cols = (int)(co * kw);
        for (int64_t o = 0; o < co; ++o)
            for (int64_t i = 0; i < ci; ++i)
                for (int64_t a = 0; a < kh; ++a)
                    for (int64_t b = 0; b < kw; ++b)
                        A[(i * kh + a) * co * kw + o * kw + b] = K[((o * ci + i) * kh + a) * kw + b];
        break;
    }
}
