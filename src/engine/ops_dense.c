/* ops_dense.c — the dense ops: Gemm and MatMul. */
#include <cblas.h>

#include "ops_internal.h"

int ops_shape_gemm(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (x->ndim != 2)
        OPS_NODE_FAIL(e, n, "input \"%s\" must be 2-D (N,K), has %d dims", x->name, x->ndim);
    if (n->trans_a)
        OPS_NODE_FAIL(e, n, "attribute \"transA\" = 1 on a batched input is not supported");
    if (n->n_in < 2 || !ops_float_const(m, n->in[1]) || m->values[n->in[1]].ndim != 2)
        OPS_NODE_FAIL(e, n, "B must be a 2-D float initializer");
    const rs_value *w = &m->values[n->in[1]];
    int64_t k = n->trans_b ? w->dims[1] : w->dims[0];
    int64_t nout = n->trans_b ? w->dims[0] : w->dims[1];
    if (k != x->dims[1])
        OPS_NODE_FAIL(e, n, "B \"%s\" has K = %lld, input has %lld features", w->name, (long long)k,
                  (long long)x->dims[1]);
    if (n->n_in > 2 && n->in[2] >= 0) {
        if (!ops_float_const(m, n->in[2]))
            OPS_NODE_FAIL(e, n, "C must be a float initializer");
        int64_t cn = model_value_numel(&m->values[n->in[2]]);
        if (cn != nout && cn != 1)
            OPS_NODE_FAIL(e, n, "C has %lld elements, expected %lld or 1", (long long)cn, (long long)nout);
    }
    d[0] = -1, d[1] = nout;
    ops_set_shape(y, 2, d);
    return 0;
}

int ops_shape_matmul(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (x->ndim != 2)
        OPS_NODE_FAIL(e, n, "input \"%s\" must be 2-D (N,K)", x->name);
    if (n->n_in != 2 || !ops_float_const(m, n->in[1]) || m->values[n->in[1]].ndim != 2)
        OPS_NODE_FAIL(e, n, "second input must be a 2-D float initializer");
    const rs_value *w = &m->values[n->in[1]];
    if (w->dims[0] != x->dims[1])
        OPS_NODE_FAIL(e, n, "weight \"%s\" has %lld rows, input has %lld features", w->name,
                  (long long)w->dims[0], (long long)x->dims[1]);
    d[0] = -1, d[1] = w->dims[1];
    ops_set_shape(y, 2, d);
    return 0;
}

int64_t ops_macs_dense(const rs_model *m, const rs_node *n)
{
    const rs_value *w = &m->values[n->in[1]];
    return w->dims[0] * w->dims[1];
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

int ops_fwd_dense(const ops_batch *b, rs_err *e)
{
    (void)e;
    plain_dense(b->m, b->n, b->in[0], b->images, b->out, b->naive);
    return 0;
}
