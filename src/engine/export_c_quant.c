/* export_c_quant.c — symmetric per-channel int8 weights for the C exporter, and the float model
 * the int8 C code computes (export_c_dequantize).
 */
#include "rankscope/export.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export_c_internal.h"


static int weight_layout(const rs_node *n)
{
    if (n->op == RS_OP_CONV)
        return QL_ROWS;
    if (n->op == RS_OP_GEMM)
        return n->trans_b ? QL_ROWS : QL_COLS;
    if (n->op == RS_OP_MATMUL)
        return QL_COLS;
    return QL_NONE;
}

/* Per value: the quantization layout of a float initializer used only as a weight (in[1]) of
 * Conv / Gemm / MatMul with one layout; QL_NONE / QL_MIXED otherwise. layout[] has n_values. */
void export_c_weight_layouts(const rs_model *m, int *layout)
{
    for (int v = 0; v < m->n_values; ++v)
        layout[v] = QL_NONE;
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *n = &m->nodes[i];
        for (int j = 0; j < n->n_in; ++j) {
            int v = n->in[j];
            if (v < 0 || !m->values[v].is_const || m->values[v].dtype != RS_DT_FLOAT)
                continue;
            int want = j == 1 ? weight_layout(n) : QL_NONE;
            if (want == QL_NONE || m->values[v].ndim < 2)
                layout[v] = QL_MIXED;
            else if (layout[v] == QL_NONE)
                layout[v] = want;
            else if (layout[v] != want)
                layout[v] = QL_MIXED;
        }
    }
}

void export_c_quant_geometry(const rs_value *w, int layout, int64_t *nch, int64_t *inner)
{
    int64_t numel = model_value_numel(w);
    if (layout == QL_ROWS) {
        *nch = w->dims[0];
        *inner = numel / w->dims[0];
    } else {
        *nch = w->dims[w->ndim - 1];
        *inner = 1;
    }
}

static int64_t channel_of(int layout, int64_t p, int64_t nch, int64_t inner)
{
    return layout == QL_ROWS ? p / inner : p % nch;
}

/* q[numel], scale[nch]: symmetric per-channel int8. */
void export_c_quantize(const rs_value *w, int layout, signed char *q, float *scale)
{
    int64_t nch, inner, numel = model_value_numel(w);
    export_c_quant_geometry(w, layout, &nch, &inner);
    for (int64_t c = 0; c < nch; ++c)
        scale[c] = 0.0f;
    for (int64_t p = 0; p < numel; ++p) {
        int64_t c = channel_of(layout, p, nch, inner);
        float a = w->f[p] < 0.0f ? -w->f[p] : w->f[p];
        if (a > scale[c])
            scale[c] = a;
    }
    for (int64_t c = 0; c < nch; ++c)
        scale[c] /= 127.0f;
    for (int64_t p = 0; p < numel; ++p) {
        float s = scale[channel_of(layout, p, nch, inner)];
        float r = s > 0.0f ? w->f[p] / s : 0.0f;
        /* round half away from zero; r - trunc(r) is exact here (|r| <= ~127), unlike r ± 0.5 */
        long qi = (long)r;
        float frac = r - (float)qi;
        qi += frac >= 0.5f ? 1 : frac <= -0.5f ? -1 : 0;
        q[p] = (signed char)(qi > 127 ? 127 : qi < -127 ? -127 : qi);
    }
}

int export_c_finite_values(const rs_value *v, rs_err *e)
{
    int64_t n = model_value_numel(v);
    for (int64_t i = 0; i < n; ++i)
        if (!(v->f[i] >= -FLT_MAX && v->f[i] <= FLT_MAX))
            return rs_fail(e, "export: initializer '%s' element %lld is not finite", v->name,
                           (long long)i);
    return 0;
}

rs_model *export_c_dequantize(const rs_model *m, rs_err *e)
{
    if (!m) {
        rs_fail(e, "export_c_dequantize: no model");
        return NULL;
    }
    int *layout = malloc(((size_t)m->n_values + 1) * sizeof(int));
    rs_model *d = layout ? model_clone(m) : NULL;
    if (!d) {
        free(layout);
        rs_fail(e, "export: out of memory");
        return NULL;
    }
    export_c_weight_layouts(d, layout);
    for (int v = 0; v < d->n_values; ++v) {
        if (layout[v] <= QL_NONE)
            continue;
        rs_value *w = &d->values[v];
        int64_t nch, inner, numel = model_value_numel(w);
        export_c_quant_geometry(w, layout[v], &nch, &inner);
        if (export_c_finite_values(w, e)) {
            model_free(d);
            d = NULL;
            break;
        }
        signed char *q = malloc((size_t)numel + 1);
        float *scale = malloc(((size_t)nch + 1) * sizeof(float));
        if (!q || !scale) {
            free(q);
            free(scale);
            model_free(d);
            d = NULL;
            rs_fail(e, "export: out of memory");
            break;
        }
        export_c_quantize(w, layout[v], q, scale);
        for (int64_t p = 0; p < numel; ++p)
            w->f[p] = (float)q[p] * scale[channel_of(layout[v], p, nch, inner)];
        free(q);
        free(scale);
    }
    free(layout);
    return d;
}
