/* export_c_plan.c — the C exporter's first pass: what one node needs in the generated code
 * (its emission kind, inputs and geometry). Each op's planner is named by its registry row
 * (rs_op_desc.c_plan, ops.c); export_c.c places the activations and prints the code. */
#include <math.h>
#include <string.h>

#include "export_c_internal.h"
#include "ops_internal.h"

int export_c_fits(int64_t v)
{
    return v >= 0 && v <= EXPORT_MAX_NUMEL;
}

static const rs_value *float_const(const rs_model *m, int v)
{
    if (v < 0 || v >= m->n_values || !m->values[v].is_const || m->values[v].dtype != RS_DT_FLOAT ||
        !m->values[v].f)
        return NULL;
    return &m->values[v];
}

int export_c_is_act(const rs_model *m, int v)
{
    return v >= 0 && v < m->n_values && !m->values[v].is_const;
}

static int act_dims(const rs_model *m, int v, const rs_node *n, const char *what, int nd,
                    rs_err *e)
{
    const rs_value *x = &m->values[v];
    if (x->ndim != nd || x->dims[0] != -1)
        return rs_fail(e, "export: node %s (%s): %s '%s' must be a %d-D activation with a leading "
                       "batch dimension", n->name, model_op_name(n->op), what, x->name, nd);
    for (int k = 1; k < nd; ++k)
        if (x->dims[k] <= 0)
            return rs_fail(e, "export: node %s (%s): %s '%s' has unknown dimension %d", n->name,
                           model_op_name(n->op), what, x->name, k);
    if (!export_c_fits(model_value_numel(x)))
        return rs_fail(e, "export: node %s (%s): %s '%s' is too large for 32-bit indices",
                       n->name, model_op_name(n->op), what, x->name);
    return 0;
}

int export_c_plan_conv(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    const rs_value *w = n->n_in >= 2 ? float_const(m, n->in[1]) : NULL;
    if (!w || w->ndim != 4)
        return rs_fail(e, "export: node %s (Conv): W must be a 4-D float initializer", n->name);
    if (act_dims(m, n->in[0], n, "input", 4, e) || act_dims(m, n->out[0], n, "output", 4, e))
        return -1;
    const rs_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    int64_t C = x->dims[1], M = y->dims[1], G = n->group;
    if (G < 1 || C % G || M % G || w->dims[0] != M || w->dims[1] != C / G)
        return rs_fail(e, "export: node %s (Conv): W %lldx%lld does not fit %lld -> %lld channels "
                       "in %lld groups", n->name, (long long)w->dims[0], (long long)w->dims[1],
                       (long long)C, (long long)M, (long long)G);
    p->kind = K_CONV;
    p->x = n->in[0];
    p->w = n->in[1];
    p->b = -1;
    if (n->n_in >= 3 && n->in[2] >= 0) {
        const rs_value *b = float_const(m, n->in[2]);
        if (!b || model_value_numel(b) != M)
            return rs_fail(e, "export: node %s (Conv): bias must be %lld floats", n->name,
                           (long long)M);
        p->b = n->in[2];
    }
    int64_t g[] = {C, x->dims[2], x->dims[3], M, y->dims[2], y->dims[3], G, w->dims[2], w->dims[3],
                   n->strides[0], n->strides[1], n->dilations[0], n->dilations[1], n->pads[0],
                   n->pads[1]};
    for (size_t k = 0; k < sizeof g / sizeof g[0]; ++k)
        if (!export_c_fits(g[k]))
            return rs_fail(e, "export: node %s (Conv): attribute value %lld out of range", n->name,
                           (long long)g[k]);
    memcpy(p->g, g, sizeof g);
    return 0;
}

int export_c_plan_dense(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    const char *op = model_op_name(n->op);
    int gemm = n->op == RS_OP_GEMM;
    const rs_value *w = n->n_in >= 2 ? float_const(m, n->in[1]) : NULL;
    if (!w || w->ndim != 2)
        return rs_fail(e, "export: node %s (%s): B must be a 2-D float initializer", n->name, op);
    if (gemm && n->trans_a)
        return rs_fail(e, "export: node %s (Gemm): transA=1 is not supported", n->name);
    if (act_dims(m, n->in[0], n, "input", 2, e) || act_dims(m, n->out[0], n, "output", 2, e))
        return -1;
    int tb = gemm && n->trans_b;
    int64_t K = tb ? w->dims[1] : w->dims[0], N = tb ? w->dims[0] : w->dims[1];
    if (K != m->values[n->in[0]].dims[1] || N != m->values[n->out[0]].dims[1])
        return rs_fail(e, "export: node %s (%s): B %lldx%lld does not match %lld -> %lld features",
                       n->name, op, (long long)w->dims[0], (long long)w->dims[1],
                       (long long)m->values[n->in[0]].dims[1],
                       (long long)m->values[n->out[0]].dims[1]);
    p->kind = K_DENSE;
    p->x = n->in[0];
    p->w = n->in[1];
    p->b = -1;
    p->alpha = gemm ? n->alpha : 1.0f;
    p->beta = gemm ? n->beta : 1.0f;
    int64_t bstride = 0;
    if (gemm && n->n_in >= 3 && n->in[2] >= 0) {
        const rs_value *b = float_const(m, n->in[2]);
        int64_t bn = b ? model_value_numel(b) : -1;
        if (bn != N && bn != 1)
            return rs_fail(e, "export: node %s (Gemm): C must be %lld floats or one", n->name,
                           (long long)N);
        p->b = n->in[2];
        bstride = bn == 1 ? 0 : 1;
    }
    p->g[0] = K;
    p->g[1] = N;
    p->g[2] = tb;
    p->g[3] = bstride;
    return 0;
}

/* Right-aligned broadcast of c (a constant, or an activation of x's rank) over one image of x as
 * y[(o·mid + j)·inner + i] = x[...] op c[j] when c's non-1 dimensions are one contiguous run
 * matching x; else a constant is materialised to x's shape (bcast_full), an activation refused. */
static int plan_bcast(const rs_model *m, const rs_node *n, int xv, int cv, export_c_plan *p, rs_err *e)
{
    const rs_value *x = &m->values[xv], *c = &m->values[cv];
    const char *op = model_op_name(n->op);
    int act = !c->is_const;
    if (x->dims[0] != -1 || c->ndim > x->ndim || (act && c->ndim != x->ndim) ||
        (!act && c->ndim == x->ndim && c->dims[0] != 1))
        return rs_fail(e, "export: node %s (%s): '%s' does not broadcast over the batch", n->name,
                       op, c->name);
    int off = x->ndim - c->ndim, k0 = -1, k1 = -1;
    for (int k = 1; k < x->ndim; ++k) {
        int64_t cd = k >= off ? c->dims[k - off] : 1;
        if (cd != 1 && cd != x->dims[k])
            return rs_fail(e, "export: node %s (%s): '%s' does not broadcast to '%s'", n->name, op,
                           c->name, x->name);
        if (cd != 1) {
            if (k0 < 0)
                k0 = k;
            k1 = k;
        }
    }
    int64_t outer = 1, mid = 1, inner = 1;
    int contiguous = 1;
    for (int k = 1; k < x->ndim; ++k) {
        int64_t cd = k >= off ? c->dims[k - off] : 1;
        if (k0 < 0 || k < k0)
            outer *= x->dims[k];
        else if (k <= k1) {
            mid *= x->dims[k];
            contiguous &= cd == x->dims[k];
        } else
            inner *= x->dims[k];
    }
    if (!contiguous && act)
        return rs_fail(e, "export: node %s (%s): '%s' broadcasts over non-adjacent axes of '%s'",
                       n->name, op, c->name, x->name);
    if (!export_c_fits(model_value_numel(x)))
        return rs_fail(e, "export: node %s (%s): input '%s' too large", n->name, op, x->name);
    p->x = xv;
    *(act ? &p->x2 : &p->b) = cv;
    p->bcast_full = !contiguous;
    if (!contiguous) {
        outer = inner = 1;
        mid = model_value_numel(x);
    }
    p->g[0] = outer;
    p->g[1] = mid;
    p->g[2] = inner;
    return 0;
}

/* Add / Sub / Mul / Div: x is the input of the output's shape, the other broadcasts over it
 * (g[3] = 1 when that other operand comes first: c op x). */
int export_c_plan_binary(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    if (n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0)
        return rs_fail(e, "export: node %s (%s): expected two inputs", n->name, model_op_name(n->op));
    int a0 = export_c_is_act(m, n->in[0]), a1 = export_c_is_act(m, n->in[1]);
    int64_t on = model_value_numel(&m->values[n->out[0]]);
    int full0 = a0 && model_value_numel(&m->values[n->in[0]]) == on;
    int xv = full0 ? n->in[0] : n->in[1], cv = full0 ? n->in[1] : n->in[0];
    if (!export_c_is_act(m, xv) || model_value_numel(&m->values[xv]) != on ||
        (!export_c_is_act(m, cv) && !float_const(m, cv)))
        return rs_fail(e, "export: node %s (%s): one input must be an activation of the output's "
                       "shape, the other a float constant or activation broadcasting to it",
                       n->name, model_op_name(n->op));
    if (n->op == RS_OP_ADD && a0 && a1 && model_value_numel(&m->values[cv]) == on) {
        p->kind = K_ADD2;
        p->x = n->in[0];
        p->x2 = n->in[1];
        p->g[0] = on;
        return export_c_fits(on) ? 0 : rs_fail(e, "export: node %s (Add): inputs too large", n->name);
    }
    p->kind = n->op == RS_OP_ADD && !export_c_is_act(m, cv) ? K_ADDC : K_BINARY;
    if (plan_bcast(m, n, xv, cv, p, e))
        return -1;
    p->g[3] = cv == n->in[0];
    p->g[4] = n->op == RS_OP_ADD ? 0 : n->op == RS_OP_SUB ? 1 : n->op == RS_OP_MUL ? 2 : 3;
    return 0;
}

/* A reduction over one run of adjacent axes k0..k1 of one image: y[o·inner + i] = Σ_j
 * x[(o·mid + j)·inner + i] (times 1/mid for a mean). Shape inference has checked the axes. */
int export_c_plan_reduce(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    const rs_value *x = &m->values[n->in[0]];
    int mask[RS_MAXDIM] = {0}, k0 = RS_MAXDIM, k1 = -1;
    for (int k = 0; k < n->n_axes; ++k) {
        int a = (int)(n->axes[k] < 0 ? n->axes[k] + x->ndim : n->axes[k]);
        if (a < 1 || a >= x->ndim)
            return rs_fail(e, "export: node %s (%s): axis %lld out of range", n->name,
                           model_op_name(n->op), (long long)n->axes[k]);
        mask[a] = 1;
        k0 = a < k0 ? a : k0;
        k1 = a > k1 ? a : k1;
    }
    int64_t outer = 1, mid = 1, inner = 1;
    for (int k = 1; k < x->ndim; ++k) {
        if (k >= k0 && k <= k1 && !mask[k])
            return rs_fail(e, "export: node %s (%s): the reduced axes must be adjacent", n->name,
                           model_op_name(n->op));
        *(k < k0 ? &outer : k <= k1 ? &mid : &inner) *= x->dims[k];
    }
    if (x->dims[0] != -1 || !export_c_fits(model_value_numel(x)))
        return rs_fail(e, "export: node %s (%s): input '%s' must be a batched activation", n->name,
                       model_op_name(n->op), x->name);
    p->kind = K_REDUCE;
    p->x = n->in[0];
    p->g[0] = outer;
    p->g[1] = mid;
    p->g[2] = inner;
    p->alpha = n->op == RS_OP_REDUCEMEAN ? (float)(1.0 / (double)mid) : 1.0f;
    return 0;
}

int export_c_plan_relu(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    p->kind = K_RELU;
    p->x = n->in[0];
    p->g[0] = model_value_numel(&m->values[p->x]);
    if (!export_c_fits(p->g[0]))
        return rs_fail(e, "export: node %s (Relu): input too large", n->name);
    return 0;
}

int export_c_plan_maxpool(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    if (act_dims(m, n->in[0], n, "input", 4, e) || act_dims(m, n->out[0], n, "output", 4, e))
        return -1;
    const rs_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    if (x->dims[1] != y->dims[1])
        return rs_fail(e, "export: node %s (MaxPool): channel count changes", n->name);
    int64_t g[] = {x->dims[1], x->dims[2], x->dims[3], y->dims[2], y->dims[3],
                   n->kernel[0], n->kernel[1], n->strides[0], n->strides[1],
                   n->dilations[0], n->dilations[1], n->pads[0], n->pads[1]};
    for (size_t k = 0; k < sizeof g / sizeof g[0]; ++k)
        if (!export_c_fits(g[k]) || (k >= 5 && k < 11 && g[k] < 1))
            return rs_fail(e, "export: node %s (MaxPool): attribute value %lld out of range",
                           n->name, (long long)g[k]);
    p->kind = K_MAXPOOL;
    p->x = n->in[0];
    memcpy(p->g, g, sizeof g);
    return 0;
}

int export_c_plan_alias(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    const char *op = model_op_name(n->op);
    const rs_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    if (y->dims[0] != -1 || model_value_numel(x) != model_value_numel(y))
        return rs_fail(e, "export: node %s (%s): output '%s' must keep the batch dimension "
                       "leading (only flatten-like reshapes are supported)", n->name, op,
                       y->name);
    p->kind = K_ALIAS;
    p->x = n->in[0];
    return 0;
}

int export_c_plan_leakyrelu(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    p->kind = K_LEAKY;
    p->x = n->in[0];
    p->g[0] = model_value_numel(&m->values[p->x]);
    p->alpha = n->alpha;
    if (!export_c_fits(p->g[0]) || !isfinite(p->alpha))
        return rs_fail(e, "export: node %s (LeakyRelu): input too large or slope not finite",
                       n->name);
    return 0;
}

int export_c_plan_clip(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    p->kind = K_CLIP;
    p->x = n->in[0];
    p->g[0] = model_value_numel(&m->values[p->x]);
    p->alpha = n->clip_min;
    p->beta = n->clip_max;
    if (!export_c_fits(p->g[0]))
        return rs_fail(e, "export: node %s (Clip): input too large", n->name);
    return 0;
}

int export_c_plan_batchnorm(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    const rs_value *x = &m->values[n->in[0]];
    if (x->dims[0] != -1 || x->ndim < 2 || x->dims[1] < 1 || !export_c_fits(model_value_numel(x)))
        return rs_fail(e, "export: node %s (BatchNormalization): input '%s' must be a "
                       "batched activation", n->name, x->name);
    for (int k = 1; k < 5; ++k)
        if (n->n_in != 5 || !float_const(m, n->in[k]) ||
            model_value_numel(&m->values[n->in[k]]) != x->dims[1])
            return rs_fail(e, "export: node %s (BatchNormalization): input %d must be %lld "
                           "floats", n->name, k, (long long)x->dims[1]);
    p->kind = K_AFFINE;
    p->x = n->in[0];
    p->g[0] = x->dims[1];
    p->g[1] = model_value_numel(x) / x->dims[1];
    return 0;
}

int export_c_plan_window(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    const char *op = model_op_name(n->op);
    if (act_dims(m, n->in[0], n, "input", 4, e) || act_dims(m, n->out[0], n, "output", 4, e))
        return -1;
    const rs_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    int glob = n->op == RS_OP_GLOBALAVGPOOL;
    int64_t g[] = {x->dims[1], x->dims[2], x->dims[3], y->dims[2], y->dims[3],
                   glob ? x->dims[2] : n->kernel[0], glob ? x->dims[3] : n->kernel[1],
                   glob ? 1 : n->strides[0], glob ? 1 : n->strides[1],
                   glob ? 0 : n->pads[0], glob ? 0 : n->pads[1], glob ? 0 : n->pads[2],
                   glob ? 0 : n->pads[3], glob ? 0 : n->count_include_pad};
    for (size_t k = 0; k < sizeof g / sizeof g[0]; ++k)
        if (!export_c_fits(g[k]))
            return rs_fail(e, "export: node %s (%s): attribute value %lld out of range",
                           n->name, op, (long long)g[k]);
    p->kind = n->op == RS_OP_PAD ? K_PAD : K_AVGPOOL;
    p->x = n->in[0];
    memcpy(p->g, g, sizeof g);
    return 0;
}

int export_c_plan_prelu(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    if (n->n_in != 2 || !float_const(m, n->in[1]) || plan_bcast(m, n, n->in[0], n->in[1], p, e))
        return n->n_in == 2 && float_const(m, n->in[1])
                   ? -1
                   : rs_fail(e, "export: node %s (PRelu): slope must be a float constant", n->name);
    p->kind = K_BINARY;
    p->g[3] = 0;
    p->g[4] = 4;
    return 0;
}

int export_c_plan_strided(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    const char *op = model_op_name(n->op);
    int nd;
    int64_t off;
    const rs_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    if (x->dims[0] != -1 || y->dims[0] != -1 || !export_c_fits(model_value_numel(x)) ||
        !export_c_fits(model_value_numel(y)) ||
        ops_strided_plan(m, n, &nd, p->g, p->g + 8, &off) != 0)
        return rs_fail(e, "export: node %s (%s): input '%s' must be a batched activation",
                       n->name, op, x->name);
    p->kind = K_STRIDED;
    p->x = n->in[0];
    p->nd = nd;
    p->g[15] = off;
    return 0;
}

/* channels of one image are contiguous: two copies */
int export_c_plan_concat(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    const rs_value *y = &m->values[n->out[0]];
    int64_t ax = n->axis < 0 ? n->axis + y->ndim : n->axis;
    if (n->n_in != 2 || !export_c_is_act(m, n->in[1]) || ax != 1 || y->dims[0] != -1 ||
        !export_c_fits(model_value_numel(y)))
        return rs_fail(e, "export: node %s (Concat): expected two activations joined on the "
                       "channel axis", n->name);
    p->kind = K_CONCAT;
    p->x = n->in[0];
    p->x2 = n->in[1];
    p->g[0] = model_value_numel(&m->values[p->x]);
    p->g[1] = model_value_numel(&m->values[p->x2]);
    return 0;
}

int export_c_plan_unary(const rs_model *m, const rs_node *n, export_c_plan *p, rs_err *e)
{
    const char *op = model_op_name(n->op);
    p->kind = K_UNARY;
    p->x = n->in[0];
    p->g[0] = model_value_numel(&m->values[p->x]);
    p->g[1] = n->op == RS_OP_SIGMOID ? 0 : n->op == RS_OP_HARDSIGMOID ? 1 : 2;
    p->alpha = n->op == RS_OP_HARDSIGMOID ? n->alpha : 1.0f / 6.0f;
    p->beta = n->op == RS_OP_HARDSIGMOID ? n->beta : 0.5f;
    if (!export_c_fits(p->g[0]) || !isfinite(p->alpha) || !isfinite(p->beta))
        return rs_fail(e, "export: node %s (%s): input too large or attribute not finite",
                       n->name, op);
    return 0;
}
