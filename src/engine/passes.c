/* passes.c — graph rewrites from exporter idioms into the engine's op set.
 *
 * PyTorch exports carry things the engine represents differently. After reading a model and
 * before shape inference:
 *   - Clip's min/max, Pad's pads/constant_value and the reductions' axes inputs (constants) move
 *     into node fields; Add and Mul read their activation first;
 *   - Reshape(x, Concat(Unsqueeze(Gather(Shape(x'), 0)), [-1])) — x.view(x.size(0), -1) — becomes
 *     Flatten(x) (every shape except the batch is static);
 *   - a Pad whose only reader is a Conv (or an AveragePool counting pads without ceil_mode, or
 *     any node when it pads nothing) is folded into that reader's pads;
 *   - Shape/Gather/Unsqueeze/Concat nodes left without readers are removed, then unused values;
 *   - a Concat of more than two activations becomes a chain of two-input Concats, a Split one
 *     Slice per output;
 *   - separately (passes_fold_batchnorm), a BatchNormalization whose input is a Conv output read
 *     by nothing else is folded into the Conv: W' = W·γ/√(σ²+ε), b' = (b−μ)·γ/√(σ²+ε) + β.
 * Every pass is linear in the graph size (graph_index), whatever the file holds.
 */
#include "rankscope/passes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"
#include "ops_internal.h"

/* Largest pad accepted (the bound model_infer_shapes enforces on spatial attributes). */
#define PASS_MAX_PAD 1024

#define SHAPE_BATCH OPS_SHAPE_BATCH /* the batch entry of a shape vector, unknown until run time */

static const rs_value *const_of(const rs_model *m, int v, int dtype)
{
    if (v < 0 || v >= m->n_values || !m->values[v].is_const || m->values[v].dtype != dtype)
        return NULL;
    const rs_value *c = &m->values[v];
    return (dtype == RS_DT_FLOAT ? (const void *)c->f : (const void *)c->i64) ? c : NULL;
}

static int fold_operand_inputs(rs_model *m, rs_err *e)
{
    for (int i = 0; i < m->n_nodes; ++i) {
        rs_node *n = &m->nodes[i];
        if (n->op == RS_OP_CLIP) {
            for (int k = 1; k < n->n_in; ++k) {
                if (n->in[k] < 0)
                    continue;
                const rs_value *c = const_of(m, n->in[k], RS_DT_FLOAT);
                if (!c || model_value_numel(c) != 1 || !isfinite(c->f[0]))
                    OPS_NODE_FAIL(e, n, "input %d (%s) must be a finite float scalar constant", k,
                                  k == 1 ? "min" : "max");
                *(k == 1 ? &n->clip_min : &n->clip_max) = c->f[0];
            }
            n->n_in = 1;
        } else if (n->op == RS_OP_PAD && n->n_in > 1) {
            const rs_value *p = n->in[1] >= 0 ? const_of(m, n->in[1], RS_DT_INT64) : NULL;
            if (!p || model_value_numel(p) != 8)
                OPS_NODE_FAIL(e, n, "pads must be an int64 constant of 8 values (N,C,H,W)");
            const int64_t *q = p->i64;
            if (q[0] || q[1] || q[4] || q[5])
                OPS_NODE_FAIL(e, n, "only spatial (H, W) padding is supported");
            for (int k = 0; k < 8; ++k)
                if (q[k] < 0 || q[k] > PASS_MAX_PAD)
                    OPS_NODE_FAIL(e, n, "pad %lld out of range 0..%d", (long long)q[k], PASS_MAX_PAD);
            n->pads[0] = q[2], n->pads[1] = q[3], n->pads[2] = q[6], n->pads[3] = q[7];
            if (n->n_in > 2 && n->in[2] >= 0) {
                const rs_value *c = const_of(m, n->in[2], RS_DT_FLOAT);
                if (!c || model_value_numel(c) != 1 || c->f[0] != 0.0f)
                    OPS_NODE_FAIL(e, n, "only zero padding is supported (constant_value)");
            }
            n->n_in = 1;
        } else if ((n->op == RS_OP_ADD || n->op == RS_OP_MUL) && n->n_in == 2 && n->in[0] >= 0 &&
                   n->in[1] >= 0 && m->values[n->in[0]].is_const && !m->values[n->in[1]].is_const) {
            int c = n->in[0]; /* commutative: the activation first, as the executors expect */
            n->in[0] = n->in[1];
            n->in[1] = c;
        } else if (n->op == RS_OP_SPLIT && n->n_in > 1) {
            const rs_value *p = n->in[1] >= 0 ? const_of(m, n->in[1], RS_DT_INT64) : NULL;
            int64_t k = p ? model_value_numel(p) : -1;
            if (!p || p->ndim != 1 || k != n->n_out)
                OPS_NODE_FAIL(e, n, "split must be an int64 constant of one size per output (%d)",
                              n->n_out);
            n->n_axes = (int)k;
            memcpy(n->axes, p->i64, (size_t)k * sizeof *n->axes);
            n->n_in = 1;
        } else if ((n->op == RS_OP_REDUCEMEAN || n->op == RS_OP_REDUCESUM) && n->n_in > 1) {
            const rs_value *p = n->in[1] >= 0 ? const_of(m, n->in[1], RS_DT_INT64) : NULL;
            int64_t k = p ? model_value_numel(p) : -1;
            if (!p || p->ndim > 1 || k > RS_MAXDIM)
                OPS_NODE_FAIL(e, n, "axes must be an int64 constant of at most %d values", RS_MAXDIM);
            if (n->n_axes > 0)
                OPS_NODE_FAIL(e, n, "axes given both as attribute and as input");
            n->n_axes = (int)k;
            memcpy(n->axes, p->i64, (size_t)k * sizeof *n->axes);
            n->n_in = 1;
        }
    }
    return 0;
}

/* Graph bookkeeping for the rewrites, built once and updated as they go so that every pass stays
 * linear in the graph size (a hostile file may hold 100000 nodes): the producing node of each
 * value, its number of readers (+1 for the graph output) and, when it has one reader, which. */
typedef struct graph_index {
    int *prod, *uses, *cons;
    char *dead; /* per node: removed by a rewrite (compacted at the end) */
} graph_index;

static void graph_index_free(graph_index *gi)
{
    free(gi->prod);
    free(gi->uses);
    free(gi->cons);
    free(gi->dead);
}

static int graph_index_build(const rs_model *m, graph_index *gi)
{
    size_t nv = (size_t)m->n_values + 1;
    gi->prod = malloc(nv * sizeof *gi->prod);
    gi->uses = calloc(nv, sizeof *gi->uses);
    gi->cons = malloc(nv * sizeof *gi->cons);
    gi->dead = calloc((size_t)m->n_nodes + 1, 1);
    if (!gi->prod || !gi->uses || !gi->cons || !gi->dead)
        return -1;
    for (size_t v = 0; v < nv; ++v)
        gi->prod[v] = gi->cons[v] = -1;
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *n = &m->nodes[i];
        for (int k = 0; k < n->n_out; ++k)
            if (n->out[k] >= 0)
                gi->prod[n->out[k]] = i;
        for (int k = 0; k < n->n_in; ++k)
            if (n->in[k] >= 0) {
                gi->uses[n->in[k]]++;
                gi->cons[n->in[k]] = i;
            }
    }
    if (m->output >= 0)
        gi->uses[m->output]++;
    return 0;
}

/* The only node reading v (v not the graph output), or -1. */
static int only_consumer(const rs_model *m, const graph_index *gi, int v)
{
    return v >= 0 && v != m->output && gi->uses[v] == 1 ? gi->cons[v] : -1;
}

/* Evaluates a shape vector computed from Shape/Gather/Unsqueeze/Concat over constants into
 * out (SHAPE_BATCH for the batch size). -1 when it is not of that form. */
static int eval_shape_vector(const rs_model *m, const graph_index *gi, int v, int64_t *out,
                             int cap, int depth)
{
    if (depth > 16 || v < 0)
        return -1;
    const rs_value *c = const_of(m, v, RS_DT_INT64);
    if (c) {
        int64_t k = model_value_numel(c);
        if (k > cap || c->ndim > 1)
            return -1;
        memcpy(out, c->i64, (size_t)k * sizeof *out);
        return (int)k;
    }
    int p = gi->prod[v];
    if (p < 0)
        return -1;
    const rs_node *n = &m->nodes[p];
    switch (n->op) {
    case RS_OP_CONCAT: {
        if (n->axis != 0 && n->axis != -1)
            return -1;
        int len = 0;
        for (int k = 0; k < n->n_in; ++k) {
            int got = eval_shape_vector(m, gi, n->in[k], out + len, cap - len, depth + 1);
            if (got < 0)
                return -1;
            len += got;
        }
        return len;
    }
    case RS_OP_UNSQUEEZE: {
        if (n->n_in == 2) {
            const rs_value *ax = const_of(m, n->in[1], RS_DT_INT64);
            if (!ax || model_value_numel(ax) != 1 || (ax->i64[0] != 0 && ax->i64[0] != -1))
                return -1;
        }
        int got = eval_shape_vector(m, gi, n->in[0], out, cap, depth + 1);
        return got == 1 ? 1 : -1;
    }
    case RS_OP_GATHER: {
        const rs_value *idx = const_of(m, n->in[1], RS_DT_INT64);
        int src = n->in[0] >= 0 ? gi->prod[n->in[0]] : -1;
        if (n->axis != 0 || !idx || model_value_numel(idx) != 1 || idx->ndim > 1 || idx->i64[0] != 0 ||
            src < 0 || m->nodes[src].op != RS_OP_SHAPE || cap < 1)
            return -1;
        out[0] = SHAPE_BATCH;
        return 1;
    }
    default:
        return -1;
    }
}

/* ---- static shape computations --------------------------------------------------------------
 * torch.onnx.export with a dynamic batch computes view/reshape/chunk/expand arguments at run time
 * from Shape(x): x.size(1) // 2, torch.cat of sizes, .... Every extent but the batch is static
 * here, so fold_shapes walks the graph once in topological order, inferring activation shapes as
 * it goes (best effort: a node whose shape rule fails is left to model_infer_shapes to report),
 * and replaces each node computing over shape vectors by an int64 constant: Shape, Gather,
 * Unsqueeze, Concat (axis 0), Add/Sub/Mul/Div, Cast to int64, Slice of a vector. The batch size
 * is SHAPE_BATCH inside those vectors; arithmetic on it is not folded (the node stays and is
 * refused). Where it ends up, a Reshape target's leading entry becomes 0 (copy the batch) and
 * an Expand target's 1 (keep it); anywhere else it is an error. */

/* The result of shape-domain node n over constant inputs into out (length returned, or -1:
 * not foldable); *scalar when it is 0-D. Shape reads its input's inferred shape; every other op
 * is evaluated by its registry row's fold. */
static int fold_eval(const rs_model *m, const rs_node *n, const char *known, int64_t *out,
                     int *scalar)
{
    *scalar = 0;
    for (int k = 1; k < n->n_in; ++k)
        if (n->in[k] >= 0 && !ops_int_vector(m, n->in[k]))
            return -1;
    if (n->op == RS_OP_SHAPE) {
        const rs_value *x = &m->values[n->in[0]];
        if (x->is_const || !known[n->in[0]] || x->ndim < 1)
            return -1;
        for (int k = 0; k < x->ndim; ++k)
            out[k] = k == 0 && x->dims[0] == -1 ? SHAPE_BATCH : x->dims[k];
        return x->ndim;
    }
    if (!ops_int_vector(m, n->in[0]))
        return -1;
    const rs_op_desc *d = ops_get(n->op);
    return d && d->fold ? d->fold(m, n, out, scalar) : -1;
}

/* Turns value v (a node output) into the int64 constant vals[0..len-1]. */
static int make_int_const(rs_model *m, int v, const int64_t *vals, int len, int scalar, rs_err *e)
{
    rs_value *c = &m->values[v];
    int64_t *d = malloc(((size_t)len + 1) * sizeof *d);
    if (!d)
        return rs_fail(e, "out of memory");
    memcpy(d, vals, (size_t)len * sizeof *d);
    c->is_const = 1;
    c->dtype = RS_DT_INT64;
    c->i64 = d;
    c->ndim = scalar ? 0 : 1;
    c->dims[0] = len;
    return 0;
}

/* A folded vector still holding the batch size: allowed as the leading entry of a Reshape target
 * (becomes 0, copy the batch) or of an Expand target (becomes 1, keep it). */
static int place_batch(rs_model *m, rs_err *e)
{
    for (int i = 0; i < m->n_nodes; ++i) {
        rs_node *n = &m->nodes[i];
        for (int k = 0; k < n->n_in; ++k) {
            const rs_value *c = const_of(m, n->in[k], RS_DT_INT64);
            int64_t cn = c ? model_value_numel(c) : 0;
            for (int64_t j = 0; j < cn; ++j) {
                if (c->i64[j] != SHAPE_BATCH)
                    continue;
                if (j != 0 || k != 1 || (n->op != RS_OP_RESHAPE && n->op != RS_OP_EXPAND))
                    OPS_NODE_FAIL(e, n, "input %d (%s) depends on the batch size, which is only "
                                  "known at run time", k, c->name);
                c->i64[0] = n->op == RS_OP_RESHAPE ? 0 : 1;
            }
        }
    }
    return 0;
}

/* Split's part sizes (the 'split' list, else equal parts — the last smaller when the extent does
 * not divide, as opset 18 defines it) and its outputs' shapes, once x's shape is known. */
static void size_split(rs_model *m, rs_node *n, char *known)
{
    const rs_value *x = &m->values[n->in[0]];
    int64_t a = n->axis < 0 ? n->axis + x->ndim : n->axis, sum = 0;
    if (!known[n->in[0]] || a < 1 || a >= x->ndim || (n->n_axes && n->n_axes != n->n_out))
        return;
    int64_t dim = x->dims[a], each = (dim + n->n_out - 1) / n->n_out;
    for (int k = 0; k < n->n_out; ++k) {
        int64_t sz = n->n_axes ? n->axes[k] : k + 1 < n->n_out ? each : dim - each * (n->n_out - 1);
        if (sz < 1 || sz > dim)
            return;
        n->axes[k] = sz;
        sum += sz;
    }
    if (sum != dim)
        return;
    n->axis = a;
    n->n_axes = n->n_out;
    for (int k = 0; k < n->n_out; ++k) {
        rs_value *y = &m->values[n->out[k]];
        ops_set_shape(y, x->ndim, x->dims);
        y->dims[a] = n->axes[k];
        known[n->out[k]] = 1;
    }
}

static int fold_shapes(rs_model *m, graph_index *gi, rs_err *e)
{
    char *known = calloc((size_t)m->n_values + 1, 1);
    if (!known)
        return rs_fail(e, "out of memory");
    rs_value *in = &m->values[m->input];
    known[m->input] = in->ndim >= 1;
    if (in->ndim >= 1)
        in->dims[0] = -1;
    for (int v = 0; v < m->n_values; ++v)
        known[v] |= m->values[v].is_const != 0;
    int rc = 0;
    for (int i = 0; i < m->n_nodes && rc == 0; ++i) {
        rs_node *n = &m->nodes[i];
        if (n->op == RS_OP_SPLIT && !gi->dead[i]) {
            size_split(m, n, known);
            continue;
        }
        if (gi->dead[i] || n->n_out != 1 || n->out[0] < 0 || gi->uses[n->out[0]] == 0 ||
            n->out[0] == m->output)
            continue; /* unread (the clean-up below removes it), or what the graph returns */
        int64_t vals[OPS_FOLD_MAX];
        int scalar, len = fold_eval(m, n, known, vals, &scalar);
        if (len >= 0) {
            rc = make_int_const(m, n->out[0], vals, len, scalar, e);
            known[n->out[0]] = 1;
            gi->dead[i] = 1;
            for (int k = 0; k < n->n_in; ++k)
                if (n->in[k] >= 0)
                    gi->uses[n->in[k]]--;
            continue;
        }
        const rs_op_desc *d = ops_get(n->op);
        /* what model_infer_shapes checks before a shape rule: an activation first (c - x, c / x
         * aside), every input available */
        int first = n->n_in >= 1 ? n->in[0] : -1;
        if ((n->op == RS_OP_SUB || n->op == RS_OP_DIV) && n->n_in == 2 && first >= 0 &&
            m->values[first].is_const && n->in[1] >= 0)
            first = n->in[1];
        int ready = d && d->shape && first >= 0 && !m->values[first].is_const;
        for (int k = 0; k < n->n_in && ready; ++k)
            ready = n->in[k] < 0 || known[n->in[k]];
        rs_err ignored;
        if (ready && !m->values[n->out[0]].is_const && d->shape(m, n, &ignored) == 0)
            known[n->out[0]] = 1;
    }
    free(known);
    return rc;
}

/* Pad node i into its only reader (Conv, or an AveragePool that counts pads), or — when it pads
 * nothing — into any only reader. */
static void fold_pad(rs_model *m, graph_index *gi, int i)
{
    rs_node *p = &m->nodes[i];
    int zero = !p->pads[0] && !p->pads[1] && !p->pads[2] && !p->pads[3];
    int out = p->out[0];
    int c = only_consumer(m, gi, out);
    if (c < 0 || m->nodes[c].in[0] != out)
        return;
    rs_node *n = &m->nodes[c];
    int has_pads = n->pads[0] || n->pads[1] || n->pads[2] || n->pads[3];
    /* AveragePool: the explicit zeros count in the divisor, so only a count_include_pad pool
     * (or one without pads, which becomes one) can absorb them; ceil_mode's last-window rule
     * depends on where the input ends, so not with ceil_mode. */
    if (!zero && !(n->op == RS_OP_CONV ||
                   (n->op == RS_OP_AVGPOOL && !n->ceil_mode && (n->count_include_pad || !has_pads))))
        return;
    if (!zero) {
        for (int k = 0; k < 4; ++k)
            n->pads[k] += p->pads[k];
        if (n->op == RS_OP_AVGPOOL)
            n->count_include_pad = 1; /* the explicit zeros were averaged in */
    }
    n->in[0] = p->in[0];
    if (gi->cons[p->in[0]] == i)
        gi->cons[p->in[0]] = c;
    gi->uses[out] = 0;
    gi->dead[i] = 1;
}

static int fold_batchnorm(rs_model *m, graph_index *gi, int i, rs_err *e)
{
    rs_node *bn = &m->nodes[i];
    int x = bn->in[0];
    int ci = gi->prod[x];
    if (ci < 0 || m->nodes[ci].op != RS_OP_CONV || only_consumer(m, gi, x) != i)
        return 0;
    rs_node *conv = &m->nodes[ci];
    const rs_value *w = conv->n_in >= 2 ? const_of(m, conv->in[1], RS_DT_FLOAT) : NULL;
    if (!w || w->ndim != 4 || only_consumer(m, gi, conv->in[1]) != ci)
        return 0;
    int has_b = conv->n_in > 2 && conv->in[2] >= 0;
    if (has_b && (!const_of(m, conv->in[2], RS_DT_FLOAT) || only_consumer(m, gi, conv->in[2]) != ci ||
                  model_value_numel(&m->values[conv->in[2]]) != w->dims[0]))
        return 0;
    const rs_value *pv[4];
    for (int k = 0; k < 4; ++k) {
        pv[k] = const_of(m, bn->in[k + 1], RS_DT_FLOAT);
        if (!pv[k] || model_value_numel(pv[k]) != w->dims[0])
            OPS_NODE_FAIL(e, bn, "input %d must be a float initializer of %lld elements", k + 1,
                          (long long)w->dims[0]);
    }
    /* The new bias reuses BN's B initializer when nothing else reads it (names stay stable). */
    int bias_v = has_b ? conv->in[2] : bn->in[2];
    if (!has_b && only_consumer(m, gi, bn->in[2]) != i)
        return 0;
    const float *gamma = pv[0]->f, *beta = pv[1]->f, *mean = pv[2]->f, *var = pv[3]->f;
    int64_t cout = w->dims[0], per = model_value_numel(w) / cout;
    for (int64_t o = 0; o < cout; ++o) { /* check first: a failed fold leaves W untouched */
        double s = (double)gamma[o] / sqrt((double)var[o] + (double)bn->epsilon);
        if (!isfinite(s))
            OPS_NODE_FAIL(e, bn, "channel %lld: scale is not finite (variance %g)", (long long)o,
                          (double)var[o]);
    }
    float *wf = m->values[conv->in[1]].f, *bf = m->values[bias_v].f;
    for (int64_t o = 0; o < cout; ++o) {
        double s = (double)gamma[o] / sqrt((double)var[o] + (double)bn->epsilon);
        for (int64_t k = 0; k < per; ++k)
            wf[o * per + k] = (float)(wf[o * per + k] * s);
        double b0 = has_b ? (double)bf[o] : 0.0;
        bf[o] = (float)((b0 - (double)mean[o]) * s + (double)beta[o]);
    }
    for (int k = 1; k < 5; ++k)
        gi->uses[bn->in[k]]--;
    if (!has_b) {
        conv->n_in = 3;
        conv->in[2] = bias_v;
        gi->uses[bias_v]++;
        gi->cons[bias_v] = ci;
    }
    conv->out[0] = bn->out[0];
    gi->prod[bn->out[0]] = ci;
    gi->uses[x] = 0;
    gi->dead[i] = 1;
    return 0;
}

static int is_shape_op(rs_op op)
{
    return op == RS_OP_SHAPE || op == RS_OP_GATHER || op == RS_OP_UNSQUEEZE;
}

/* Removes the nodes a rewrite marked dead and frees the index. */
static void drop_dead(rs_model *m, graph_index *gi)
{
    int w = 0;
    for (int i = 0; i < m->n_nodes; ++i) {
        if (gi->dead[i]) {
            free(m->nodes[i].name);
            continue;
        }
        m->nodes[w++] = m->nodes[i];
    }
    m->n_nodes = w;
    graph_index_free(gi);
}

static int index_graph(const rs_model *m, graph_index *gi, rs_err *e)
{
    if (graph_index_build(m, gi) != 0) {
        graph_index_free(gi);
        return rs_fail(e, "out of memory");
    }
    return 0;
}

/* A fresh value named "<base>_<what><k>" (made unique against names, which gets it). */
static int fresh_value(rs_model *m, onnx_name_map *names, const char *base, const char *what, int k,
                       rs_err *e)
{
    char buf[RS_ERR_LEN];
    snprintf(buf, sizeof buf, "%.200s_%s%d", base, what, k);
    for (int u = 2; onnx_map_get(names, buf) >= 0; ++u)
        snprintf(buf, sizeof buf, "%.200s_%s%d_%d", base, what, k, u);
    int v = model_add_value(m, NULL, e);
    if (v < 0)
        return -1;
    free(m->values[v].name);
    m->values[v].name = rs_strdup(buf);
    if (!m->values[v].name)
        return rs_fail(e, "out of memory");
    onnx_map_put(names, m->values[v].name, v);
    return v;
}

/* An int64 constant vector {a} as a fresh value. */
static int fresh_int(rs_model *m, onnx_name_map *names, const char *base, const char *what, int k,
                     int64_t a, rs_err *e)
{
    int v = fresh_value(m, names, base, what, k, e);
    if (v < 0 || make_int_const(m, v, &a, 1, 0, e) != 0)
        return -1;
    return v;
}

static int is_long_concat(const rs_node *n)
{
    return n->op == RS_OP_CONCAT && n->n_in > 2;
}

/* A Split whose part sizes fold_shapes checked against its input (axes[0..n_out-1], summing to
 * the extent of the normalised axis, every output shaped). */
static int is_sized_split(const rs_model *m, const rs_node *n)
{
    if (n->op != RS_OP_SPLIT || n->n_axes != n->n_out || n->n_out < 1)
        return 0;
    const rs_value *x = &m->values[n->in[0]];
    int64_t sum = 0;
    if (x->is_const || n->axis < 1 || n->axis >= x->ndim)
        return 0;
    for (int k = 0; k < n->n_out; ++k) {
        if (n->axes[k] < 1 || m->values[n->out[k]].ndim != x->ndim)
            return 0;
        sum += n->axes[k];
    }
    return sum == x->dims[n->axis];
}

/* Nodes that become several, in one linear rebuild of the node array (new names checked against
 * a hash of every value name, whatever the file holds):
 *  - a Concat of k > 2 activations becomes a chain of k - 1 two-input Concats (what the
 *    executors and the C export join): "<out>_cat<j>" hold the partial results, "<node>_cat<j>"
 *    compute them, the last keeps the node's name and output;
 *  - a Split becomes one Slice per output ("<node>_part<j>", constant starts/ends/axes). */
static int expand_nodes(rs_model *m, rs_err *e)
{
    int extra = 0, extra_values = 0;
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *n = &m->nodes[i];
        if (is_long_concat(n))
            extra += n->n_in - 2, extra_values += n->n_in - 2;
        else if (is_sized_split(m, n))
            extra += n->n_out - 1, extra_values += 2 * n->n_out + 1;
    }
    if (!extra && !extra_values)
        return 0;
    onnx_name_map names = {0};
    rs_node *nodes = calloc((size_t)(m->n_nodes + extra), sizeof *nodes);
    char *own = calloc((size_t)(m->n_nodes + extra), 1); /* nodes[i].name made here */
    int rc = -1, w = 0;
    if (!nodes || !own || onnx_map_init(&names, (size_t)(m->n_values + extra_values)) != 0) {
        rs_fail(e, "out of memory");
        goto done;
    }
    for (int v = 0; v < m->n_values; ++v)
        onnx_map_put(&names, m->values[v].name, v);
    for (int i = 0; i < m->n_nodes; ++i) {
        rs_node *n = &m->nodes[i];
        char buf[RS_ERR_LEN];
        if (is_sized_split(m, n)) {
            int64_t off = 0;
            int ax = fresh_int(m, &names, n->name, "axis", 0, n->axis, e);
            if (ax < 0)
                goto done;
            for (int k = 0; k < n->n_out; ++k) {
                rs_node part = *n;
                part.op = RS_OP_SLICE;
                part.n_axes = 0;
                part.n_in = 4;
                part.in[0] = n->in[0];
                part.in[1] = fresh_int(m, &names, n->name, "start", k, off, e);
                part.in[2] = fresh_int(m, &names, n->name, "end", k, off + n->axes[k], e);
                part.in[3] = ax;
                part.n_out = 1;
                part.out[0] = n->out[k];
                snprintf(buf, sizeof buf, "%.200s_part%d", n->name ? n->name : "", k);
                part.name = rs_strdup(buf);
                own[w] = 1;
                nodes[w++] = part;
                if (part.in[1] < 0 || part.in[2] < 0 || !part.name) {
                    rs_fail(e, "out of memory");
                    goto done;
                }
                off += n->axes[k];
            }
            continue;
        }
        if (!is_long_concat(n)) {
            nodes[w++] = *n;
            continue;
        }
        int prev = n->in[0];
        for (int k = 1; k < n->n_in; ++k) {
            rs_node part = *n;
            part.n_in = 2;
            part.in[0] = prev;
            part.in[1] = n->in[k];
            for (int j = 2; j < RS_MAXIO; ++j)
                part.in[j] = -1;
            if (k == n->n_in - 1) {
                nodes[w++] = part; /* takes over the node's name */
                break;
            }
            int v = fresh_value(m, &names, m->values[n->out[0]].name, "cat", k, e);
            snprintf(buf, sizeof buf, "%.200s_cat%d", n->name ? n->name : "", k);
            part.name = rs_strdup(buf);
            own[w] = 1;
            part.out[0] = prev = v;
            nodes[w++] = part;
            if (v < 0 || !part.name) {
                rs_fail(e, "out of memory");
                goto done;
            }
        }
    }
    for (int i = 0; i < m->n_nodes; ++i) /* the Splits' names were not carried over */
        if (is_sized_split(m, &m->nodes[i]))
            free(m->nodes[i].name);
    free(m->nodes);
    m->nodes = nodes;
    m->n_nodes = m->cap_nodes = w;
    nodes = NULL;
    rc = 0;
done:
    for (int i = 0; nodes && i < w; ++i) /* failed: the model keeps its own nodes */
        if (own[i])
            free(nodes[i].name);
    free(nodes);
    free(own);
    onnx_map_free(&names);
    return rc;
}

int passes_simplify(rs_model *m, rs_err *e)
{
    if (fold_operand_inputs(m, e) != 0)
        return -1;
    graph_index gi = {0};
    if (index_graph(m, &gi, e) != 0)
        return -1;
    for (int i = 0; i < m->n_nodes; ++i) {
        rs_node *n = &m->nodes[i];
        if (n->op != RS_OP_RESHAPE || n->n_in != 2 || const_of(m, n->in[1], RS_DT_INT64))
            continue;
        int64_t shp[RS_MAXDIM];
        int len = eval_shape_vector(m, &gi, n->in[1], shp, RS_MAXDIM, 0);
        if (len == 2 && shp[0] == SHAPE_BATCH && shp[1] == -1) {
            gi.uses[n->in[1]]--;
            n->op = RS_OP_FLATTEN;
            n->axis = 1;
            n->n_in = 1;
        }
    }
    if (fold_shapes(m, &gi, e) != 0) {
        graph_index_free(&gi);
        return -1;
    }
    for (int i = 0; i < m->n_nodes; ++i)
        if (m->nodes[i].op == RS_OP_PAD)
            fold_pad(m, &gi, i);
    /* backward: shape computations nothing reads any more (the Flatten rewrite's leftovers) */
    for (int i = m->n_nodes - 1; i >= 0; --i) {
        rs_node *n = &m->nodes[i];
        if (gi.dead[i] || !(is_shape_op(n->op) || n->op == RS_OP_CONCAT) || n->n_out != 1 ||
            gi.uses[n->out[0]] != 0)
            continue;
        gi.dead[i] = 1;
        for (int k = 0; k < n->n_in; ++k)
            if (n->in[k] >= 0)
                gi.uses[n->in[k]]--;
    }
    drop_dead(m, &gi);
    if (place_batch(m, e) != 0 || expand_nodes(m, e) != 0)
        return -1;
    for (int i = 0; i < m->n_nodes; ++i) {
        rs_node *n = &m->nodes[i];
        if (is_shape_op(n->op))
            OPS_NODE_FAIL(e, n, "only supported in shape computations known at load time (every "
                          "extent static but the batch, no arithmetic on the batch size)");
        if (n->op == RS_OP_SPLIT)
            OPS_NODE_FAIL(e, n, "the split of axis %lld into %d parts%s does not fit the input (or "
                          "its shape is not known at load time)", (long long)n->axis, n->n_out,
                          n->n_axes ? " of the given sizes" : "");
    }
    model_gc(m);
    return 0;
}

int passes_fold_batchnorm(rs_model *m, rs_err *e)
{
    graph_index gi = {0};
    if (index_graph(m, &gi, e) != 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < m->n_nodes && rc == 0; ++i)
        if (m->nodes[i].op == RS_OP_BATCHNORM)
            rc = fold_batchnorm(m, &gi, i, e);
    drop_dead(m, &gi);
    if (rc != 0)
        return -1;
    model_gc(m);
    return 0;
}
