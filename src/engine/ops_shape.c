/* ops_shape.c — ops that only move data: Flatten, Reshape, Identity, Cast (to float), and the
 * strided copies Transpose, Slice, Expand. */
#include <string.h>

#include "ops_internal.h"

/* allowzero exists from opset 14; its opset-13 meaning is 0, so it is never written */
const rs_attr ops_attrs_reshape[] = {
    OPS_ATTR_CHECK("allowzero", 0, 0, RS_ATTR_READ_ONLY),
    OPS_ATTR_END,
};
/* Dropout loads as Identity: its attributes only matter in training */
const rs_attr ops_attrs_identity[] = {
    OPS_ATTR("ratio", RS_ATTR_ANY, RS_FIELD_NONE, name, RS_ATTR_READ_ONLY | RS_ATTR_DROPOUT, 0, 0, 0, NULL),
    OPS_ATTR("seed", RS_ATTR_ANY, RS_FIELD_NONE, name, RS_ATTR_READ_ONLY | RS_ATTR_DROPOUT, 0, 0, 0, NULL),
    OPS_ATTR("is_test", RS_ATTR_ANY, RS_FIELD_NONE, name, RS_ATTR_READ_ONLY | RS_ATTR_DROPOUT, 0, 0, 0, NULL),
    OPS_ATTR_END,
};
/* opset < 13: axes attribute; a 0-D index has only axis 0 */
const rs_attr ops_attrs_unsqueeze[] = {
    OPS_ATTR("axes", RS_ATTR_AXIS0, RS_FIELD_NONE, name, RS_ATTR_READ_ONLY, 0, 0, 0, NULL),
    OPS_ATTR_END,
};
const rs_attr ops_attrs_cast[] = {
    OPS_ATTR("to", RS_ATTR_DTYPE, RS_FIELD_INT, to, RS_ATTR_REQUIRED, 0, 1, 16, NULL),
    OPS_ATTR("saturate", RS_ATTR_ANY, RS_FIELD_NONE, name, RS_ATTR_READ_ONLY, 0, 0, 0, NULL), /* opset 19: float8 only */
    OPS_ATTR_END,
};
/* split: the sizes before opset 13; num_outputs (opset 18) must match the outputs */
const rs_attr ops_attrs_split[] = {
    OPS_ATTR_I64("axis", axis, -RS_MAXDIM, RS_MAXDIM - 1),
    OPS_ATTR("num_outputs", RS_ATTR_N_OUTPUTS, RS_FIELD_NONE, name, RS_ATTR_READ_ONLY, 0, 1, RS_MAXIO, NULL),
    OPS_ATTR("split", RS_ATTR_SIZES, RS_FIELD_NONE, axes, RS_ATTR_READ_ONLY, 0, 1, RS_ATTR_MAX_SPLIT, NULL),
    OPS_ATTR_END,
};
const rs_attr ops_attrs_transpose[] = {
    OPS_ATTR_AXES("perm", 0),
    OPS_ATTR_END,
};

int ops_shape_flatten(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (n->axis != 1)
        OPS_NODE_FAIL(e, n, "attribute \"axis\" = %lld is not supported (only 1)", (long long)n->axis);
    d[0] = -1;
    d[1] = model_value_numel(x);
    ops_set_shape(y, 2, d);
    return 0;
}

/* ONNX Reshape (allowzero 0) with the batch as the leading entry: 0, -1 or a literal size (a
 * static-batch export) there; after it 0 copies x's extent, one -1 is inferred. The per-image
 * element count is kept. */
int ops_shape_reshape(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (n->n_in != 2 || n->in[1] < 0 || !m->values[n->in[1]].is_const ||
        m->values[n->in[1]].dtype != RS_DT_INT64 || !m->values[n->in[1]].i64)
        OPS_NODE_FAIL(e, n, "shape must be an int64 initializer");
    const rs_value *s = &m->values[n->in[1]];
    int64_t len = model_value_numel(s), feat = model_value_numel(x), known = 1;
    int infer = -1;
    if (s->ndim != 1 || len < 1 || len > RS_MAXDIM)
        OPS_NODE_FAIL(e, n, "shape \"%s\" must be a vector of 1..%d entries", s->name, RS_MAXDIM);
    if (s->i64[0] < -1 && s->i64[0] != OPS_SHAPE_BATCH)
        OPS_NODE_FAIL(e, n, "shape \"%s\": entry 0 = %lld", s->name, (long long)s->i64[0]);
    d[0] = -1;
    for (int k = 1; k < len; ++k) {
        int64_t v = s->i64[k];
        if (v == 0 && k < x->ndim)
            v = x->dims[k];
        if (v == -1 && infer < 0 && s->i64[0] != -1) {
            infer = k;
        } else if (v < 1 || v > feat) {
            OPS_NODE_FAIL(e, n, "shape \"%s\": entry %d = %lld is not supported for input %s (%lld "
                          "values per image)", s->name, k, (long long)s->i64[k], x->name, (long long)feat);
        }
        d[k] = v;
        known *= v == -1 ? 1 : v;
    }
    if (infer >= 0) {
        if (s->i64[0] >= 1) /* a literal batch with an inferred extent: ONNX Runtime would fold
                               the real batch into that extent */
            OPS_NODE_FAIL(e, n, "shape \"%s\" fixes the batch at %lld and infers entry %d", s->name,
                          (long long)s->i64[0], infer);
        d[infer] = feat / known;
        known *= d[infer];
    }
    if (known != feat)
        OPS_NODE_FAIL(e, n, "shape \"%s\" does not hold the %lld values per image of \"%s\"", s->name,
                      (long long)feat, x->name);
    ops_set_shape(y, (int)len, d);
    return 0;
}

int ops_shape_cast(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    if (n->to != RS_DT_FLOAT)
        OPS_NODE_FAIL(e, n, "a cast of an activation to int64 is not supported (only to float)");
    ops_set_shape(y, x->ndim, x->dims);
    return 0;
}

int ops_shape_transpose(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    int seen = 0;
    if (n->n_axes != x->ndim)
        OPS_NODE_FAIL(e, n, "attribute \"perm\" has %d entries for the %d-D input \"%s\"%s", n->n_axes,
                      x->ndim, x->name, n->n_axes ? "" : " (the default reverses the batch axis)");
    for (int k = 0; k < x->ndim; ++k) {
        int64_t p = n->axes[k];
        if (p < 0 || p >= x->ndim || (seen >> p & 1))
            OPS_NODE_FAIL(e, n, "attribute \"perm\" is not a permutation (entry %d = %lld)", k,
                          (long long)p);
        seen |= 1 << p;
        d[k] = x->dims[p];
    }
    if (n->axes[0] != 0)
        OPS_NODE_FAIL(e, n, "attribute \"perm\" moves the batch axis (perm[0] = %lld)",
                      (long long)n->axes[0]);
    ops_set_shape(y, x->ndim, d);
    return 0;
}

static const rs_value *int_input(const rs_model *m, const rs_node *n, int k)
{
    if (k >= n->n_in || n->in[k] < 0)
        return NULL;
    const rs_value *c = &m->values[n->in[k]];
    return c->is_const && c->dtype == RS_DT_INT64 && c->i64 && c->ndim == 1 ? c : NULL;
}

/* Slice's per-axis start and step and the output extents of x (ONNX clamping rules), from the
 * constant starts, ends, axes and steps. */
static int slice_geometry(const rs_model *m, const rs_node *n, int64_t *start, int64_t *step,
                          int64_t *d, rs_err *e)
{
    const rs_value *x = &m->values[n->in[0]];
    const rs_value *st = int_input(m, n, 1), *en = int_input(m, n, 2), *ax = int_input(m, n, 3),
                   *sp = int_input(m, n, 4);
    int64_t len = st ? model_value_numel(st) : -1;
    if (!st || !en || model_value_numel(en) != len || (n->n_in > 3 && n->in[3] >= 0 && !ax) ||
        (ax && model_value_numel(ax) != len) || (n->n_in > 4 && n->in[4] >= 0 && !sp) ||
        (sp && model_value_numel(sp) != len))
        OPS_NODE_FAIL(e, n, "starts, ends, axes and steps must be int64 constant vectors of one length");
    int seen = 0;
    for (int k = 0; k < x->ndim; ++k) {
        start[k] = 0;
        step[k] = 1;
        d[k] = x->dims[k];
    }
    for (int64_t j = 0; j < len; ++j) {
        int64_t a = ax ? ax->i64[j] : j, s = sp ? sp->i64[j] : 1;
        a = a < 0 ? a + x->ndim : a;
        if (a < 0 || a >= x->ndim || (seen >> a & 1))
            OPS_NODE_FAIL(e, n, "axis %lld is out of range or repeated", (long long)(ax ? ax->i64[j] : j));
        seen |= 1 << a;
        if (s < 1)
            OPS_NODE_FAIL(e, n, "step %lld is not supported (only positive steps)", (long long)s);
        if (a == 0) {
            if (st->i64[j] != 0 || en->i64[j] < INT32_MAX || s != 1)
                OPS_NODE_FAIL(e, n, "slicing the batch axis is not supported");
            continue;
        }
        int64_t dim = x->dims[a], lo = st->i64[j], hi = en->i64[j];
        lo = lo < 0 ? lo + dim : lo;
        hi = hi < 0 ? hi + dim : hi;
        lo = lo < 0 ? 0 : lo > dim ? dim : lo;
        hi = hi < 0 ? 0 : hi > dim ? dim : hi;
        if (hi <= lo)
            OPS_NODE_FAIL(e, n, "the slice of axis %lld is empty (%lld..%lld of %lld)", (long long)a,
                          (long long)st->i64[j], (long long)en->i64[j], (long long)dim);
        start[a] = lo;
        step[a] = s;
        d[a] = (hi - lo + s - 1) / s;
    }
    return 0;
}

int ops_shape_slice(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t start[RS_MAXDIM], step[RS_MAXDIM], d[RS_MAXDIM];
    if (slice_geometry(m, n, start, step, d, e))
        return -1;
    ops_set_shape(y, x->ndim, d);
    return 0;
}

/* numpy broadcast of x to the constant shape (its leading entry, the batch, 1); the output keeps
 * x's rank (a longer shape would put an extent before the batch). */
int ops_shape_expand(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    const rs_value *s = int_input(m, n, 1);
    int64_t d[RS_MAXDIM], len = s ? model_value_numel(s) : -1;
    if (!s || len > x->ndim)
        OPS_NODE_FAIL(e, n, "shape must be an int64 constant of at most %d entries", x->ndim);
    d[0] = -1;
    for (int k = 1; k < x->ndim; ++k) {
        int64_t j = k - (x->ndim - len), t = j >= 0 ? s->i64[j] : 1;
        if (j == 0 && t == OPS_SHAPE_BATCH)
            t = 1;
        if (j == 0 && t != 1)
            OPS_NODE_FAIL(e, n, "shape \"%s\" sets the batch to %lld", s->name, (long long)t);
        if (t != 1 && x->dims[k] != 1 && t != x->dims[k])
            OPS_NODE_FAIL(e, n, "\"%s\" (dim %d: %lld) does not broadcast to shape \"%s\" (%lld)",
                          x->name, k, (long long)x->dims[k], s->name, (long long)t);
        d[k] = t == 1 ? x->dims[k] : t;
    }
    ops_set_shape(y, x->ndim, d);
    return 0;
}

int ops_strided_plan(const rs_model *m, const rs_node *n, int *nd, int64_t *dims, int64_t *stride,
                     int64_t *off)
{
    const rs_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    int64_t xs[RS_MAXDIM], s = 1, start[RS_MAXDIM], step[RS_MAXDIM], d[RS_MAXDIM];
    for (int k = x->ndim - 1; k >= 1; --k) {
        xs[k] = s;
        s *= x->dims[k];
    }
    *nd = y->ndim - 1;
    *off = 0;
    if (n->op == RS_OP_SLICE && slice_geometry(m, n, start, step, d, NULL))
        return -1;
    for (int k = 1; k < y->ndim; ++k) {
        dims[k - 1] = y->dims[k];
        if (n->op == RS_OP_TRANSPOSE) {
            stride[k - 1] = xs[n->axes[k]];
        } else if (n->op == RS_OP_SLICE) {
            stride[k - 1] = xs[k] * step[k];
            *off += start[k] * xs[k];
        } else { /* Expand */
            stride[k - 1] = x->dims[k] == 1 ? 0 : xs[k];
        }
    }
    return 0;
}

int ops_fwd_strided(const ops_batch *b, rs_err *e)
{
    int nd;
    int64_t dims[RS_MAXDIM], stride[RS_MAXDIM], off;
    if (ops_strided_plan(b->m, b->n, &nd, dims, stride, &off))
        return rs_fail(e, "node \"%s\": bad geometry", b->n->name);
    const ops_io io = ops_io_of(b);
    const int64_t in = io.xn, on = io.yn;
    for (int img = 0; img < b->images; ++img) {
        const float *x = b->in[0] + (size_t)img * in + off;
        float *y = b->out + (size_t)img * on;
        int64_t coord[RS_MAXDIM] = {0}, src = 0;
        for (int64_t i = 0; i < on; ++i) {
            y[i] = x[src];
            ops_next_coord(nd, dims, coord, stride, &src, NULL, NULL);
        }
    }
    return 0;
}

/* The layout is unchanged: same bytes. */
int ops_fwd_copy(const ops_batch *b, rs_err *e)
{
    (void)e;
    memcpy(b->out, b->in[0], ops_out_total(b) * sizeof(float));
    return 0;
}

/* ---- shape computations folded at load (rs_op_desc.fold; passes.c) ---------------------------- */

int ops_fold_gather(const rs_model *m, const rs_node *n, int64_t *out, int *scalar)
{
    const rs_value *a = &m->values[n->in[0]];
    const int64_t *av = a->i64;
    int an = (int)model_value_numel(a);
    const rs_value *ix = &m->values[n->in[1]];
    int k = (int)model_value_numel(ix);
    if (a->ndim != 1 || (n->axis != 0 && n->axis != -1))
        return -1;
    for (int j = 0; j < k; ++j) {
        int64_t i = ix->i64[j] < 0 ? ix->i64[j] + an : ix->i64[j];
        if (i < 0 || i >= an)
            return -1;
        out[j] = av[i];
    }
    *scalar = ix->ndim == 0;
    return k;
}

int ops_fold_unsqueeze(const rs_model *m, const rs_node *n, int64_t *out, int *scalar)
{
    const rs_value *a = &m->values[n->in[0]];
    const int64_t *av = a->i64;
    (void)scalar;
    if (a->ndim != 0)
        return -1;
    if (n->n_in == 2) {
        const rs_value *ax = &m->values[n->in[1]];
        if (model_value_numel(ax) != 1 || (ax->i64[0] != 0 && ax->i64[0] != -1))
            return -1;
    }
    out[0] = av[0];
    return 1;
}

int ops_fold_concat(const rs_model *m, const rs_node *n, int64_t *out, int *scalar)
{
    (void)scalar;
    int len = 0;
    if (n->axis != 0 && n->axis != -1)
        return -1;
    for (int k = 0; k < n->n_in; ++k) {
        if (!ops_int_vector(m, n->in[k]) || m->values[n->in[k]].ndim != 1)
            return -1;
        const rs_value *c = &m->values[n->in[k]];
        int cn = (int)model_value_numel(c);
        if (len + cn > OPS_FOLD_MAX)
            return -1;
        memcpy(out + len, c->i64, (size_t)cn * sizeof *out);
        len += cn;
    }
    return len;
}

int ops_fold_cast(const rs_model *m, const rs_node *n, int64_t *out, int *scalar)
{
    const rs_value *a = &m->values[n->in[0]];
    const int64_t *av = a->i64;
    int an = (int)model_value_numel(a);
    if (n->to != RS_DT_INT64)
        return -1;
    memcpy(out, av, (size_t)an * sizeof *out);
    *scalar = a->ndim == 0;
    return an;
}

int ops_fold_slice(const rs_model *m, const rs_node *n, int64_t *out, int *scalar)
{
    const rs_value *a = &m->values[n->in[0]];
    const int64_t *av = a->i64;
    int an = (int)model_value_numel(a);
    (void)scalar;
    int64_t arg[4] = {0, 0, 0, 1}; /* starts, ends, axes, steps: one axis of a vector */
    for (int k = 1; k < n->n_in && k < 5; ++k) {
        const rs_value *c = n->in[k] >= 0 ? &m->values[n->in[k]] : NULL;
        if (c && model_value_numel(c) != 1)
            return -1;
        if (c)
            arg[k - 1] = c->i64[0];
    }
    if (a->ndim != 1 || n->n_in < 3 || (arg[2] != 0 && arg[2] != -1) || arg[3] != 1)
        return -1;
    int64_t lo = arg[0] < 0 ? arg[0] + an : arg[0], hi = arg[1] < 0 ? arg[1] + an : arg[1];
    lo = lo < 0 ? 0 : lo > an ? an : lo;
    hi = hi < lo ? lo : hi > an ? an : hi;
    memcpy(out, av + lo, (size_t)(hi - lo) * sizeof *out);
    return (int)(hi - lo);
}
