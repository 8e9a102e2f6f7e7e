/* model.c — graph storage, shape inference, graph edits and the layer table. */
#include "rankscope/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_internal.h"


const char *model_op_name(rs_op op)
{
    const rs_op_desc *d = ops_get(op);
    return d ? d->name : "?";
}

rs_op model_op_from_name(const char *s)
{
    for (int i = 1; i < RS_OP_COUNT; ++i)
        if (s && ops_get((rs_op)i) && strcmp(s, ops_get((rs_op)i)->name) == 0)
            return (rs_op)i;
    return RS_OP_NONE;
}

rs_model *model_alloc(void)
{
    rs_model *m = calloc(1, sizeof *m);
    if (m) {
        m->input = -1;
        m->output = -1;
        m->opset = 13;
    }
    return m;
}

static void value_release(rs_value *v)
{
    free(v->name);
    free(v->f);
    free(v->i64);
}

void model_free(rs_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_values; ++i)
        value_release(&m->values[i]);
    for (int i = 0; i < m->n_nodes; ++i)
        free(m->nodes[i].name);
    free(m->values);
    free(m->nodes);
    free(m->graph_name);
    free(m->producer);
    free(m);
}

int64_t model_value_numel(const rs_value *v)
{
    int64_t n = 1;
    for (int i = 0; i < v->ndim; ++i)
        n *= v->dims[i] < 0 ? 1 : v->dims[i];
    return n;
}

static int copy_value(rs_value *dst, const rs_value *src)
{
    *dst = *src;
    dst->name = NULL;
    dst->f = NULL;
    dst->i64 = NULL;
    dst->name = rs_strdup(src->name);
    if (src->name && !dst->name)
        return -1;
    size_t n = (size_t)model_value_numel(src);
    if (src->f) {
        dst->f = malloc(n * sizeof(float));
        if (!dst->f)
            return -1;
        memcpy(dst->f, src->f, n * sizeof(float));
    }
    if (src->i64) {
        dst->i64 = malloc(n * sizeof(int64_t));
        if (!dst->i64)
            return -1;
        memcpy(dst->i64, src->i64, n * sizeof(int64_t));
    }
    return 0;
}

rs_model *model_clone(const rs_model *m)
{
    rs_model *c = model_alloc();
    if (!c)
        return NULL;
    c->opset = m->opset;
    c->input = m->input;
    c->output = m->output;
    c->graph_name = rs_strdup(m->graph_name);
    c->producer = rs_strdup(m->producer);
    c->values = calloc((size_t)(m->n_values ? m->n_values : 1), sizeof(rs_value));
    c->nodes = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof(rs_node));
    if (!c->values || !c->nodes)
        goto fail;
    c->cap_values = m->n_values ? m->n_values : 1;
    c->cap_nodes = m->n_nodes ? m->n_nodes : 1;
    for (int i = 0; i < m->n_values; ++i) {
        c->n_values = i + 1;
        if (copy_value(&c->values[i], &m->values[i]) != 0)
            goto fail;
    }
    for (int i = 0; i < m->n_nodes; ++i) {
        c->nodes[i] = m->nodes[i];
        c->nodes[i].name = rs_strdup(m->nodes[i].name);
        c->n_nodes = i + 1;
        if (m->nodes[i].name && !c->nodes[i].name)
            goto fail;
    }
    return c;
fail:
    model_free(c);
    return NULL;
}

int model_find_value(const rs_model *m, const char *name)
{
    for (int i = 0; i < m->n_values; ++i)
        if (m->values[i].name && strcmp(m->values[i].name, name) == 0)
            return i;
    return -1;
}

int model_find_node(const rs_model *m, const char *name)
{
    for (int i = 0; i < m->n_nodes; ++i)
        if (m->nodes[i].name && strcmp(m->nodes[i].name, name) == 0)
            return i;
    return -1;
}

/* "/conv2/Conv" -> span "conv2": PyTorch names a module's node "/<module path>/<Op>". */
static int torch_module_span(const char *node_name, const char **start, size_t *len)
{
    if (!node_name || node_name[0] != '/')
        return 0;
    const char *last = strrchr(node_name, '/');
    if (!last || last == node_name)
        return 0;
    *start = node_name + 1;
    *len = (size_t)(last - node_name - 1);
    return *len > 0;
}

int model_find_layer(const rs_model *m, const char *name)
{
    int i = model_find_node(m, name);
    if (i >= 0 || !name || !*name)
        return i;
    size_t nl = strlen(name);
    for (i = 0; i < m->n_nodes; ++i) {
        const char *st;
        size_t len;
        if (torch_module_span(m->nodes[i].name, &st, &len) && len == nl && !memcmp(st, name, nl) &&
            model_is_weighted(m, i))
            return i;
    }
    for (i = 0; i < m->n_nodes; ++i) {
        if (!model_is_weighted(m, i))
            continue;
        const char *wn = m->values[m->nodes[i].in[1]].name;
        if (wn && !strncmp(wn, name, nl) && !strcmp(wn + nl, ".weight"))
            return i;
    }
    /* last resort: one "/"-delimited segment of a weighted node's name, if unambiguous */
    int found = -1;
    for (i = 0; i < m->n_nodes; ++i) {
        if (!model_is_weighted(m, i) || !m->nodes[i].name)
            continue;
        const char *nm = m->nodes[i].name;
        for (const char *p = strstr(nm, name); p; p = strstr(p + 1, name)) {
            if ((p == nm || p[-1] == '/') && p[nl] == '/') {
                if (found >= 0 && found != i)
                    return -1;
                found = i;
                break;
            }
        }
    }
    return found;
}

const char *model_layer_name(const rs_model *m, int node, char *buf, size_t len)
{
    const char *nm = m->nodes[node].name, *st;
    size_t l;
    /* PyTorch's module path as its state_dict spells it ("stages.0.conv1" for
     * "/stages/stages.0/conv1/Conv") is the shortest name users know */
    if (model_is_weighted(m, node)) {
        const char *wn = m->values[m->nodes[node].in[1]].name;
        size_t wl = wn ? strlen(wn) : 0;
        if (wl > 7 && !strcmp(wn + wl - 7, ".weight") && wl - 7 < len) {
            memcpy(buf, wn, wl - 7);
            buf[wl - 7] = 0;
            if (model_find_layer(m, buf) == node)
                return buf;
        }
    }
    if (torch_module_span(nm, &st, &l) && l < len) {
        /* only when the short form leads back to this node */
        memcpy(buf, st, l);
        buf[l] = 0;
        if (model_find_layer(m, buf) == node)
            return buf;
    }
    snprintf(buf, len, "%s", nm ? nm : "");
    return buf;
}

int model_producer(const rs_model *m, int v)
{
    for (int i = 0; i < m->n_nodes; ++i)
        for (int k = 0; k < m->nodes[i].n_out; ++k)
            if (m->nodes[i].out[k] == v)
                return i;
    return -1;
}

int model_add_value(rs_model *m, const char *name, rs_err *e)
{
    if (name && model_find_value(m, name) >= 0)
        return rs_fail(e, "duplicate value name \"%s\"", name);
    if (m->n_values == m->cap_values) {
        int cap = m->cap_values ? 2 * m->cap_values : 16;
        rs_value *v = realloc(m->values, (size_t)cap * sizeof *v);
        if (!v)
            return rs_fail(e, "out of memory adding value \"%s\"", name ? name : "");
        m->values = v;
        m->cap_values = cap;
    }
    rs_value *v = &m->values[m->n_values];
    memset(v, 0, sizeof *v);
    v->dtype = RS_DT_FLOAT;
    v->name = rs_strdup(name ? name : "");
    if (!v->name)
        return rs_fail(e, "out of memory adding value");
    return m->n_values++;
}

void model_node_defaults(rs_node *n)
{
    char *name = n->name;
    rs_op op = n->op;
    memset(n, 0, sizeof *n);
    n->name = name;
    n->op = op;
    n->strides[0] = n->strides[1] = 1;
    n->dilations[0] = n->dilations[1] = 1;
    n->group = 1;
    n->alpha = n->beta = 1.0f;
    n->axis = 1;
    n->clip_min = -INFINITY;
    n->clip_max = INFINITY;
    n->epsilon = 1e-5f;
    n->keepdims = 1;
    for (int i = 0; i < RS_MAXIO; ++i)
        n->in[i] = n->out[i] = -1;
    if (op == RS_OP_SPLIT)
        n->axis = 0;
    if (op == RS_OP_LEAKYRELU) {
        n->alpha = 0.01f;
    } else if (op == RS_OP_HARDSIGMOID) {
        n->alpha = 0.2f;
        n->beta = 0.5f;
    }
}

int model_add_node(rs_model *m, const char *name, rs_op op, rs_err *e)
{
    if (m->n_nodes == m->cap_nodes) {
        int cap = m->cap_nodes ? 2 * m->cap_nodes : 16;
        rs_node *n = realloc(m->nodes, (size_t)cap * sizeof *n);
        if (!n)
            return rs_fail(e, "out of memory adding node \"%s\"", name ? name : "");
        m->nodes = n;
        m->cap_nodes = cap;
    }
    rs_node *n = &m->nodes[m->n_nodes];
    n->name = rs_strdup(name ? name : "");
    if (!n->name)
        return rs_fail(e, "out of memory adding node");
    n->op = op;
    model_node_defaults(n);
    return m->n_nodes++;
}

int model_add_const(rs_model *m, const char *name, int ndim, const int64_t *dims, const float *data,
                    rs_err *e)
{
    if (ndim < 0 || ndim > RS_MAXDIM)
        return rs_fail(e, "initializer \"%s\": %d dims", name ? name : "", ndim);
    size_t numel = 1;
    for (int i = 0; i < ndim; ++i)
        if (dims[i] < 1 || rs_size_mul(numel, (size_t)dims[i], &numel) || numel > RS_MAX_ALLOC / sizeof(float))
            return rs_fail(e, "initializer \"%s\": bad or too large shape", name ? name : "");
    float *f = malloc(numel * sizeof *f);
    if (!f)
        return rs_fail(e, "out of memory for \"%s\"", name ? name : "");
    if (data)
        memcpy(f, data, numel * sizeof *f);
    else
        memset(f, 0, numel * sizeof *f);
    int v = model_add_value(m, name, e);
    if (v < 0) {
        free(f);
        return -1;
    }
    rs_value *val = &m->values[v];
    val->is_const = 1;
    val->dtype = RS_DT_FLOAT;
    val->ndim = ndim;
    for (int i = 0; i < ndim; ++i)
        val->dims[i] = dims[i];
    val->f = f;
    return v;
}

int model_add_op(rs_model *m, const char *name, rs_op op, const int *in, int n_in,
                 const char *out_name, rs_err *e)
{
    if (n_in < 0 || n_in > RS_MAXIO)
        return rs_fail(e, "node \"%s\": %d inputs", name ? name : "", n_in);
    int ins[RS_MAXIO];
    for (int i = 0; i < n_in; ++i) /* in may point into m->nodes, which adding a node moves */
        ins[i] = in[i];
    char buf[320];
    if (!out_name) {
        snprintf(buf, sizeof buf, "%.300s_out", name ? name : "");
        out_name = buf;
    }
    int y = model_add_value(m, out_name, e);
    if (y < 0)
        return -1;
    int k = model_add_node(m, name, op, e);
    if (k < 0)
        return -1;
    rs_node *n = &m->nodes[k];
    n->n_in = n_in;
    for (int i = 0; i < n_in; ++i)
        n->in[i] = ins[i];
    n->n_out = 1;
    n->out[0] = y;
    return k;
}

/* ---- shape inference ------------------------------------------------------------------------ */

static int is_act(const rs_model *m, int v)
{
    return v >= 0 && v < m->n_values && !m->values[v].is_const;
}






static int infer_node(rs_model *m, rs_node *n, rs_err *e)
{
    /* c - x and c / x keep their constant first (passes_simplify swaps Add and Mul's) */
    int c_first = (n->op == RS_OP_SUB || n->op == RS_OP_DIV) && n->n_in == 2 && is_act(m, n->in[1]);
    if (n->n_in < 1 || !(is_act(m, n->in[0]) || c_first))
        OPS_NODE_FAIL(e, n, "first input must be an activation");
    if (n->n_out != 1 || n->out[0] < 0 || n->out[0] >= m->n_values)
        OPS_NODE_FAIL(e, n, "expected exactly one output");
    const rs_value *y = &m->values[n->out[0]];
    if (y->is_const)
        OPS_NODE_FAIL(e, n, "output \"%s\" is an initializer", y->name);
    const rs_op_desc *d = ops_get(n->op);
    if (!d || !d->shape)
        OPS_NODE_FAIL(e, n, "unsupported op");
    return d->shape(m, n, e);
}

int model_infer_shapes(rs_model *m, rs_err *e)
{
    if (m->input < 0 || m->input >= m->n_values || m->output < 0 || m->output >= m->n_values)
        return rs_fail(e, "model has no graph input or output");
    rs_value *in = &m->values[m->input];
    if (in->is_const || in->ndim < 2)
        return rs_fail(e, "graph input \"%s\" must be a batched tensor", in->name);
    for (int i = 1; i < in->ndim; ++i)
        if (in->dims[i] < 1 || in->dims[i] > (1 << 24))
            return rs_fail(e, "graph input \"%s\": dim %d = %lld out of range", in->name, i,
                           (long long)in->dims[i]);
    in->dims[0] = -1;
    /* ready[v]: value available (input, initializer, or produced by an earlier node) */
    char *ready = calloc((size_t)m->n_values + 1, 1);
    if (!ready)
        return rs_fail(e, "out of memory");
    ready[m->input] = 1;
    for (int v = 0; v < m->n_values; ++v)
        if (m->values[v].is_const)
            ready[v] = 1;
    int rc = 0;
    for (int i = 0; i < m->n_nodes && rc == 0; ++i) {
        rs_node *n = &m->nodes[i];
        if (n->n_in < 0 || n->n_in > RS_MAXIO || n->n_out < 0 || n->n_out > RS_MAXIO) {
            rc = rs_fail(e, "node \"%s\": bad input/output count", n->name);
            break;
        }
        for (int k = 0; k < n->n_in && rc == 0; ++k) {
            int v = n->in[k];
            if (v == -1 && k > 0)
                continue;
            if (v < 0 || v >= m->n_values)
                rc = rs_fail(e, "node \"%s\" (%s): input %d is missing", n->name, model_op_name(n->op), k);
            else if (!ready[v])
                rc = rs_fail(e, "node \"%s\" (%s): input \"%s\" is not produced before it (dangling input or cycle)",
                             n->name, model_op_name(n->op), m->values[v].name);
        }
        if (rc == 0)
            rc = infer_node(m, n, e);
        if (rc == 0) {
            int v = n->out[0];
            if (ready[v])
                rc = rs_fail(e, "node \"%s\": output \"%s\" is produced twice", n->name, m->values[v].name);
            ready[v] = 1;
        }
    }
    if (rc == 0 && !ready[m->output])
        rc = rs_fail(e, "graph output \"%s\" is never produced", m->values[m->output].name);
    free(ready);
    return rc;
}

/* ---- edits ---------------------------------------------------------------------------------- */

int model_replace_node(rs_model *m, int node, const rs_node *repl, int n, rs_err *e)
{
    if (node < 0 || node >= m->n_nodes || n < 1)
        return rs_fail(e, "replace: bad node index %d or empty replacement", node);
    int extra = n - 1;
    if (m->n_nodes + extra > m->cap_nodes) {
        int cap = m->n_nodes + extra + 8;
        rs_node *nn = realloc(m->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            return rs_fail(e, "out of memory replacing node");
        m->nodes = nn;
        m->cap_nodes = cap;
    }
    char **names = calloc((size_t)n, sizeof *names);
    if (!names)
        return rs_fail(e, "out of memory");
    for (int i = 0; i < n; ++i) {
        names[i] = rs_strdup(repl[i].name ? repl[i].name : "");
        if (!names[i]) {
            for (int k = 0; k < i; ++k)
                free(names[k]);
            free(names);
            return rs_fail(e, "out of memory");
        }
    }
    free(m->nodes[node].name);
    memmove(&m->nodes[node + n], &m->nodes[node + 1], (size_t)(m->n_nodes - node - 1) * sizeof(rs_node));
    for (int i = 0; i < n; ++i) {
        m->nodes[node + i] = repl[i];
        m->nodes[node + i].name = names[i];
    }
    m->n_nodes += extra;
    free(names);
    model_gc(m);
    return 0;
}

void model_gc(rs_model *m)
{
    int *remap = malloc((size_t)(m->n_values ? m->n_values : 1) * sizeof *remap);
    char *used = calloc((size_t)m->n_values + 1, 1);
    if (!remap || !used) {
        free(remap);
        free(used);
        return; /* gc is an optimisation; leaving unused values is harmless */
    }
    if (m->input >= 0)
        used[m->input] = 1;
    if (m->output >= 0)
        used[m->output] = 1;
    for (int i = 0; i < m->n_nodes; ++i) {
        for (int k = 0; k < m->nodes[i].n_in; ++k)
            if (m->nodes[i].in[k] >= 0)
                used[m->nodes[i].in[k]] = 1;
        for (int k = 0; k < m->nodes[i].n_out; ++k)
            if (m->nodes[i].out[k] >= 0)
                used[m->nodes[i].out[k]] = 1;
    }
    int w = 0;
    for (int v = 0; v < m->n_values; ++v) {
        if (used[v]) {
            remap[v] = w;
            m->values[w++] = m->values[v];
        } else {
            remap[v] = -1;
            value_release(&m->values[v]);
        }
    }
    m->n_values = w;
    if (m->input >= 0)
        m->input = remap[m->input];
    if (m->output >= 0)
        m->output = remap[m->output];
    for (int i = 0; i < m->n_nodes; ++i) {
        for (int k = 0; k < m->nodes[i].n_in; ++k)
            if (m->nodes[i].in[k] >= 0)
                m->nodes[i].in[k] = remap[m->nodes[i].in[k]];
        for (int k = 0; k < m->nodes[i].n_out; ++k)
            if (m->nodes[i].out[k] >= 0)
                m->nodes[i].out[k] = remap[m->nodes[i].out[k]];
    }
    free(remap);
    free(used);
}

/* ---- layer table ---------------------------------------------------------------------------- */

int model_is_weighted(const rs_model *m, int node)
{
    const rs_node *n = &m->nodes[node];
    const rs_op_desc *d = ops_get(n->op);
    if (!d || !d->factorizable)
        return 0;
    return n->n_in >= 2 && ops_float_const(m, n->in[1]);
}

static void describe_node(const rs_model *m, int i, rs_layer_info *L)
{
    const rs_node *n = &m->nodes[i];
    memset(L, 0, sizeof *L);
    L->node = i;
    L->name = n->name;
    L->op = n->op;
    const rs_value *x = n->n_in > 0 && n->in[0] >= 0 ? &m->values[n->in[0]] : NULL;
    const rs_value *y = n->n_out > 0 && n->out[0] >= 0 ? &m->values[n->out[0]] : NULL;
    if (x && x->is_const && n->n_in == 2 && n->in[1] >= 0) /* c - x, c / x */
        x = &m->values[n->in[1]];
    if (x && !x->is_const) {
        L->in_ndim = x->ndim - 1 > 4 ? 4 : x->ndim - 1;
        for (int k = 0; k < L->in_ndim; ++k)
            L->in_shape[k] = x->dims[k + 1];
    }
    if (y) {
        L->out_ndim = y->ndim - 1 > 4 ? 4 : y->ndim - 1;
        for (int k = 0; k < L->out_ndim; ++k)
            L->out_shape[k] = y->dims[k + 1];
    }
    for (int k = 0; k < n->n_in; ++k)
        if (n->in[k] >= 0 && ops_float_const(m, n->in[k]))
            L->params += model_value_numel(&m->values[n->in[k]]);
    if (!model_is_weighted(m, i))
        return;
    const rs_value *w = &m->values[n->in[1]];
    L->w_ndim = w->ndim > 4 ? 4 : w->ndim;
    for (int k = 0; k < L->w_ndim; ++k)
        L->w_shape[k] = w->dims[k];
    const rs_op_desc *d = ops_get(n->op);
    L->macs = d->macs ? d->macs(m, n) : 0;
}

int model_layer_table(const rs_model *m, rs_layer_info **out, int *n, rs_err *e)
{
    rs_layer_info *t = calloc((size_t)(m->n_nodes ? m->n_nodes : 1), sizeof *t);
    if (!t)
        return rs_fail(e, "out of memory");
    for (int i = 0; i < m->n_nodes; ++i)
        describe_node(m, i, &t[i]);
    *out = t;
    *n = m->n_nodes;
    return 0;
}

void model_totals(const rs_model *m, int64_t *params, int64_t *macs)
{
    int64_t p = 0, c = 0;
    for (int i = 0; i < m->n_nodes; ++i) {
        rs_layer_info L;
        describe_node(m, i, &L);
        p += L.params;
        c += L.macs;
    }
    if (params)
        *params = p;
    if (macs)
        *macs = c;
}
