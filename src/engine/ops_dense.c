/* ops_dense.c — the dense ops: Gemm and MatMul (by a constant matrix, or of two activations). */
#include <cblas.h>

#include "ops_internal.h"

const rs_attr ops_attrs_gemm[] = {
    OPS_ATTR_FLOAT("alpha", alpha, 0),
    OPS_ATTR_FLOAT("beta", beta, 0),
    OPS_ATTR_INT("transA", trans_a, 0, 1),
    OPS_ATTR_INT("transB", trans_b, 0, 1),
    OPS_ATTR_END,
};

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

/* MatMul of two activations of one rank r >= 3, (N, ..., M, K) @ (N, ..., K, P) with the same
 * leading extents: per image and leading index an M×K by K×P product (attention-style blocks).
 * lead = product of the extents between the batch and M. */
static int matmul_acts(const rs_model *m, const rs_node *n, int64_t *lead, int64_t *M, int64_t *K,
                       int64_t *P)
{
    const rs_value *a = &m->values[n->in[0]], *b = &m->values[n->in[1]];
    int r = a->ndim;
    if (r < 3 || b->ndim != r || a->dims[r - 1] != b->dims[r - 2])
        return -1;
    *lead = 1;
    for (int k = 1; k < r - 2; ++k) {
        if (a->dims[k] != b->dims[k])
            return -1;
        *lead *= a->dims[k];
    }
    *M = a->dims[r - 2], *K = a->dims[r - 1], *P = b->dims[r - 1];
    return 0;
}

static int acts_operand(const rs_model *m, const rs_node *n)
{
    return n->op == RS_OP_MATMUL && n->n_in == 2 && n->in[1] >= 0 && !m->values[n->in[1]].is_const;
}

int ops_shape_matmul(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (acts_operand(m, n)) {
        int64_t lead, M, K, P;
        const rs_value *b = &m->values[n->in[1]];
        if (matmul_acts(m, n, &lead, &M, &K, &P) != 0)
            OPS_NODE_FAIL(e, n, "activations \"%s\" and \"%s\" must be (N,...,M,K) and (N,...,K,P) "
                          "with the same leading extents", x->name, b->name);
        ops_set_shape(y, x->ndim, x->dims);
        y->dims[x->ndim - 1] = P;
        return 0;
    }
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
    int64_t lead, M, K, P;
    if (acts_operand(m, n))
        return matmul_acts(m, n, &lead, &M, &K, &P) == 0 ? lead * M * K * P : 0;
    const rs_value *w = &m->values[n->in[1]];
    return w->dims[0] * w->dims[1];
}

static void plain_dense(const ops_batch *bt)
{
    const ops_io io = ops_io_of(bt);
    const rs_node *nd = io.n;
    const rs_value *wv = io.w;
    const float *x = bt->in[0];
    float *y = bt->out;
    const int n = bt->images, naive = bt->naive;
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
        const rs_value *cv = &bt->m->values[nd->in[2]];
        int64_t cn = model_value_numel(cv);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < N; ++j)
                y[(size_t)i * N + j] += nd->beta * cv->f[cn == 1 ? 0 : j];
    }
}

int ops_fwd_dense(const ops_batch *b, rs_err *e)
{
    int64_t lead, M, K, P;
    if (!acts_operand(b->m, b->n)) {
        plain_dense(b);
        return 0;
    }
    if (matmul_acts(b->m, b->n, &lead, &M, &K, &P) != 0)
        return rs_fail(e, "node \"%s\": bad MatMul geometry", b->n->name);
    for (int64_t i = 0; i < (int64_t)b->images * lead; ++i) {
        const float *A = b->in[0] + (size_t)i * M * K, *B = b->in[1] + (size_t)i * K * P;
        float *Y = b->out + (size_t)i * M * P;
        if (b->naive) {
            for (int64_t r = 0; r < M; ++r)
                for (int64_t c = 0; c < P; ++c) {
                    float acc = 0.0f;
                    for (int64_t k = 0; k < K; ++k)
                        acc += A[r * K + k] * B[k * P + c];
                    Y[r * P + c] = acc;
                }
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)P, (int)K, 1.0f, A,
                        (int)K, B, (int)P, 0.0f, Y, (int)P);
        }
    }
    return 0;
}
