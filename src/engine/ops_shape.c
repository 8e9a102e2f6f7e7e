/* ops_shape.c — ops that only relabel a batch: Flatten, Reshape, Identity. */
#include <string.h>

#include "ops_internal.h"

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

int ops_shape_reshape(rs_model *m, rs_node *n, rs_err *e)
{
    OPS_SHAPE_ARGS(m, n);
    int64_t d[RS_MAXDIM];
    if (n->n_in != 2 || n->in[1] < 0 || !m->values[n->in[1]].is_const ||
        m->values[n->in[1]].dtype != RS_DT_INT64 || !m->values[n->in[1]].i64)
        OPS_NODE_FAIL(e, n, "shape must be an int64 initializer");
    const rs_value *s = &m->values[n->in[1]];
    int64_t feat = model_value_numel(x);
    int ok = model_value_numel(s) == 2 &&
             (s->i64[0] == -1 || s->i64[0] == 0 || s->i64[0] >= 1) &&
             (s->i64[1] == -1 || s->i64[1] == feat) && !(s->i64[0] == -1 && s->i64[1] == -1);
    /* Only the flatten form (batch, features) is supported: batch kept, rest collapsed. */
    if (ok && s->i64[0] >= 1 && s->i64[1] == -1)
        ok = 0;
    if (!ok)
        OPS_NODE_FAIL(e, n, "shape \"%s\" is not a flatten to (N, %lld)", s->name, (long long)feat);
    d[0] = -1;
    d[1] = feat;
    ops_set_shape(y, 2, d);
    return 0;
}

/* The layout is unchanged: same bytes. */
int ops_fwd_copy(const ops_batch *b, rs_err *e)
{
    (void)e;
    memcpy(b->out, b->in[0], ops_out_total(b) * sizeof(float));
    return 0;
}
