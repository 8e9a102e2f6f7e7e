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
#include "rankscope/ops.h"

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
    probe->nthreads = 1; /* no pool: it is compiled, never run */
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
        const rs_op_desc *d = ops_get(nd->op);
        if (!d || !d->forward) {
            rs_fail(e, "node %s (%s): unsupported op", nd->name, model_op_name(nd->op));
            goto done;
        }
        const float *ins[RS_MAXIO] = {0};
        for (int k = 0; k < nd->n_in; ++k)
            ins[k] = nd->in[k] >= 0 ? val[nd->in[k]] : NULL;
        ops_batch ob = {m, nd, n, ins, y, naive, col, col_floats};
        if (d->forward(&ob, e) != 0)
            goto done;
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

