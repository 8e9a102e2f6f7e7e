/* model.c — graph storage, shape inference, graph edits and the layer table. */
#include "rankscope/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[RS_OP_COUNT] = {
    [RS_OP_NONE] = "?",         [RS_OP_CONV] = "Conv",       [RS_OP_GEMM] = "Gemm",
    [RS_OP_MATMUL] = "MatMul",  [RS_OP_ADD] = "Add",         [RS_OP_RELU] = "Relu",
    [RS_OP_MAXPOOL] = "MaxPool", [RS_OP_FLATTEN] = "Flatten", [RS_OP_RESHAPE] = "Reshape",
    [RS_OP_IDENTITY] = "Identity",
    [RS_OP_BATCHNORM] = "BatchNormalization", [RS_OP_GLOBALAVGPOOL] = "GlobalAveragePool",
    [RS_OP_AVGPOOL] = "AveragePool", [RS_OP_CLIP] = "Clip", [RS_OP_SIGMOID] = "Sigmoid",
    [RS_OP_SOFTMAX] = "Softmax", [RS_OP_PAD] = "Pad", [RS_OP_CONCAT] = "Concat",
    [RS_OP_SHAPE] = "Shape", [RS_OP_GATHER] = "Gather", [RS_OP_UNSQUEEZE] = "Unsqueeze",
};

const char *model_op_name(rs_op op)
{
    return (op > RS_OP_NONE && op < RS_OP_COUNT) ? op_names[op] : "?";
}

rs_op model_op_from_name(const char *s)
{
    for (int i = 1; i < RS_OP_COUNT; ++i)
        if (s && strcmp(s, op_names[i]) == 0)
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
    for (int i = 0; i < RS_MAXIO; ++i)
        n->in[i] = n->out[i] = -1;
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

/* ---- shape inference ------------------------------------------------------------------------ */

static int is_act(const rs_model *m, int v)
{
    return v >= 0 && v < m->n_values && !m->values[v].is_const;
}

static int is_float_const(const rs_model *m, int v)
{
    return v >= 0 && v < m->n_values && m->values[v].is_const && m->values[v].dtype == RS_DT_FLOAT &&
           m->values[v].f;
}

static void set_shape(rs_value *v, int ndim, const int64_t *dims)
{
    v->ndim = ndim;
    for (int i = 0; i < ndim; ++i)
        v->dims[i] = dims[i];
}

#define NODE_FAIL(e, n, ...)                                                                   \
    do {                                                                                       \
        char why_[RS_ERR_LEN];                                                                 \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                             \
        return rs_fail(e, "node \"%s\" (%s): %s", (n)->name, model_op_name((n)->op), why_);   \
    } while (0)

static int64_t pooled_extent(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1, int64_t d,
                             int ceil_mode)
{
    int64_t span = d * (k - 1) + 1;
    int64_t num = in + p0 + p1 - span;
    if (num < 0)
        return 0;
    int64_t out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    /* PyTorch / ONNX Runtime: with ceil_mode, a last window starting in the end padding is dropped */
    if (ceil_mode && out > 1 && (out - 1) * s >= in + p0)
        --out;
    return out;
}

static int infer_spatial(const rs_node *n, const rs_value *x, int64_t kh, int64_t kw, int ceil_mode,
                         int64_t *oh, int64_t *ow, rs_err *e)
{
    for (int i = 0; i < 2; ++i) {
        if (n->strides[i] < 1 || n->strides[i] > 1024)
            NODE_FAIL(e, n, "attribute \"strides\" value %lld out of range", (long long)n->strides[i]);
        if (n->dilations[i] < 1 || n->dilations[i] > 1024)
            NODE_FAIL(e, n, "attribute \"dilations\" value %lld out of range",
                      (long long)n->dilations[i]);
    }
    for (int i = 0; i < 4; ++i)
        if (n->pads[i] < 0 || n->pads[i] > 1024)
            NODE_FAIL(e, n, "attribute \"pads\" value %lld out of range", (long long)n->pads[i]);
    *oh = pooled_extent(x->dims[2], kh, n->strides[0], n->pads[0], n->pads[2], n->dilations[0],
                        ceil_mode);
    *ow = pooled_extent(x->dims[3], kw, n->strides[1], n->pads[1], n->pads[3], n->dilations[1],
                        ceil_mode);
    if (*oh < 1 || *ow < 1)
        NODE_FAIL(e, n, "kernel %lldx%lld does not fit input %lldx%lld", (long long)kh, (long long)kw,
                  (long long)x->dims[2], (long long)x->dims[3]);
    return 0;
}

static int infer_node(rs_model *m, rs_node *n, rs_err *e)
{
    if (n->n_in < 1 || !is_act(m, n->in[0]))
        NODE_FAIL(e, n, "first input must be an activation");
    if (n->n_out != 1 || n->out[0] < 0 || n->out[0] >= m->n_values)
        NODE_FAIL(e, n, "expected exactly one output");
    const rs_value *x = &m->values[n->in[0]];
    rs_value *y = &m->values[n->out[0]];
    if (y->is_const)
        NODE_FAIL(e, n, "output \"%s\" is an initializer", y->name);
    int64_t d[RS_MAXDIM];
    switch (n->op) {
    case RS_OP_CONV: {
        if (x->ndim != 4)
            NODE_FAIL(e, n, "input \"%s\" must be 4-D (N,C,H,W), has %d dims", x->name, x->ndim);
        if (n->n_in < 2 || !is_float_const(m, n->in[1]))
            NODE_FAIL(e, n, "weight must be a float initializer");
        const rs_value *w = &m->values[n->in[1]];
        if (w->ndim != 4)
            NODE_FAIL(e, n, "weight \"%s\" must be 4-D", w->name);
        int64_t g = n->group;
        if (g < 1 || x->dims[1] % g != 0 || w->dims[0] % g != 0 || w->dims[1] * g != x->dims[1])
            NODE_FAIL(e, n, "attribute \"group\" = %lld does not match weight %lldx%lldx%lldx%lld and %lld input channels",
                      (long long)g, (long long)w->dims[0], (long long)w->dims[1], (long long)w->dims[2],
                      (long long)w->dims[3], (long long)x->dims[1]);
        if ((n->kernel[0] && n->kernel[0] != w->dims[2]) || (n->kernel[1] && n->kernel[1] != w->dims[3]))
            NODE_FAIL(e, n, "attribute \"kernel_shape\" disagrees with weight \"%s\"", w->name);
        n->kernel[0] = w->dims[2];
        n->kernel[1] = w->dims[3];
        if (n->n_in > 2 && n->in[2] >= 0) {
            if (!is_float_const(m, n->in[2]) || model_value_numel(&m->values[n->in[2]]) != w->dims[0])
                NODE_FAIL(e, n, "bias must be a float initializer of %lld elements", (long long)w->dims[0]);
        }
        int64_t oh, ow;
        if (infer_spatial(n, x, w->dims[2], w->dims[3], 0, &oh, &ow, e))
            return -1;
        d[0] = -1, d[1] = w->dims[0], d[2] = oh, d[3] = ow;
        set_shape(y, 4, d);
        return 0;
    }
    case RS_OP_MAXPOOL:
    case RS_OP_AVGPOOL: {
        if (x->ndim != 4)
            NODE_FAIL(e, n, "input \"%s\" must be 4-D", x->name);
        if (n->kernel[0] < 1 || n->kernel[1] < 1 || n->kernel[0] > 1024 || n->kernel[1] > 1024)
            NODE_FAIL(e, n, "attribute \"kernel_shape\" missing or out of range");
        int64_t oh, ow;
        if (infer_spatial(n, x, n->kernel[0], n->kernel[1], n->ceil_mode, &oh, &ow, e))
            return -1;
        d[0] = -1, d[1] = x->dims[1], d[2] = oh, d[3] = ow;
        set_shape(y, 4, d);
        return 0;
    }
    case RS_OP_GEMM: {
        if (x->ndim != 2)
            NODE_FAIL(e, n, "input \"%s\" must be 2-D (N,K), has %d dims", x->name, x->ndim);
        if (n->trans_a)
            NODE_FAIL(e, n, "attribute \"transA\" = 1 on a batched input is not supported");
        if (n->n_in < 2 || !is_float_const(m, n->in[1]) || m->values[n->in[1]].ndim != 2)
            NODE_FAIL(e, n, "B must be a 2-D float initializer");
        const rs_value *w = &m->values[n->in[1]];
        int64_t k = n->trans_b ? w->dims[1] : w->dims[0];
        int64_t nout = n->trans_b ? w->dims[0] : w->dims[1];
        if (k != x->dims[1])
            NODE_FAIL(e, n, "B \"%s\" has K = %lld, input has %lld features", w->name, (long long)k,
                      (long long)x->dims[1]);
        if (n->n_in > 2 && n->in[2] >= 0) {
            if (!is_float_const(m, n->in[2]))
                NODE_FAIL(e, n, "C must be a float initializer");
            int64_t cn = model_value_numel(&m->values[n->in[2]]);
            if (cn != nout && cn != 1)
                NODE_FAIL(e, n, "C has %lld elements, expected %lld or 1", (long long)cn, (long long)nout);
        }
        d[0] = -1, d[1] = nout;
        set_shape(y, 2, d);
        return 0;
    }
    case RS_OP_MATMUL: {
        if (x->ndim != 2)
            NODE_FAIL(e, n, "input \"%s\" must be 2-D (N,K)", x->name);
        if (n->n_in != 2 || !is_float_const(m, n->in[1]) || m->values[n->in[1]].ndim != 2)
            NODE_FAIL(e, n, "second input must be a 2-D float initializer");
        const rs_value *w = &m->values[n->in[1]];
        if (w->dims[0] != x->dims[1])
            NODE_FAIL(e, n, "weight \"%s\" has %lld rows, input has %lld features", w->name,
                      (long long)w->dims[0], (long long)x->dims[1]);
        d[0] = -1, d[1] = w->dims[1];
        set_shape(y, 2, d);
        return 0;
    }
    case RS_OP_ADD: {
        if (n->n_in != 2 || n->in[1] < 0)
            NODE_FAIL(e, n, "expected two inputs");
        const rs_value *b = &m->values[n->in[1]];
        if (b->is_const) {
            int64_t bn = model_value_numel(b);
            int64_t last = x->dims[x->ndim - 1];
            if (!is_float_const(m, n->in[1]) || (bn != last && bn != 1) || x->ndim != 2)
                NODE_FAIL(e, n, "constant addend \"%s\" must broadcast over the features of a 2-D input",
                          b->name);
        } else {
            if (b->ndim != x->ndim || memcmp(b->dims + 1, x->dims + 1, (size_t)(x->ndim - 1) * sizeof(int64_t)))
                NODE_FAIL(e, n, "inputs \"%s\" and \"%s\" differ in shape", x->name, b->name);
        }
        set_shape(y, x->ndim, x->dims);
        return 0;
    }
    case RS_OP_RELU:
    case RS_OP_IDENTITY:
    case RS_OP_SIGMOID:
        set_shape(y, x->ndim, x->dims);
        return 0;
    case RS_OP_CLIP:
        if (n->n_in != 1 || !(n->clip_min <= n->clip_max))
            NODE_FAIL(e, n, "expected one input and min <= max (min/max are folded at load)");
        set_shape(y, x->ndim, x->dims);
        return 0;
    case RS_OP_SOFTMAX:
        if (x->ndim != 2 || (n->axis != 1 && n->axis != -1))
            NODE_FAIL(e, n, "only a softmax over the features of a 2-D input is supported "
                      "(input has %d dims, axis %lld)", x->ndim, (long long)n->axis);
        set_shape(y, x->ndim, x->dims);
        return 0;
    case RS_OP_BATCHNORM: {
        if (x->ndim != 4 && x->ndim != 2)
            NODE_FAIL(e, n, "input \"%s\" must be (N,C,H,W) or (N,C)", x->name);
        if (n->n_in != 5)
            NODE_FAIL(e, n, "expected 5 inputs (x, scale, B, mean, var)");
        for (int k = 1; k < 5; ++k)
            if (!is_float_const(m, n->in[k]) || model_value_numel(&m->values[n->in[k]]) != x->dims[1])
                NODE_FAIL(e, n, "input %d must be a float initializer of %lld elements", k,
                          (long long)x->dims[1]);
        if (!(n->epsilon >= 0.0f) || !isfinite(n->epsilon))
            NODE_FAIL(e, n, "attribute \"epsilon\" = %g is invalid", (double)n->epsilon);
        set_shape(y, x->ndim, x->dims);
        return 0;
    }
    case RS_OP_GLOBALAVGPOOL:
        if (x->ndim != 4)
            NODE_FAIL(e, n, "input \"%s\" must be 4-D", x->name);
        d[0] = -1, d[1] = x->dims[1], d[2] = 1, d[3] = 1;
        set_shape(y, 4, d);
        return 0;
    case RS_OP_PAD:
        if (x->ndim != 4 || n->n_in != 1)
            NODE_FAIL(e, n, "only constant-zero spatial padding of a 4-D input is supported");
        for (int k = 0; k < 4; ++k)
            if (n->pads[k] < 0 || n->pads[k] > 1024)
                NODE_FAIL(e, n, "pad %lld out of range", (long long)n->pads[k]);
        d[0] = -1, d[1] = x->dims[1];
        d[2] = x->dims[2] + n->pads[0] + n->pads[2];
        d[3] = x->dims[3] + n->pads[1] + n->pads[3];
        set_shape(y, 4, d);
        return 0;
    case RS_OP_CONCAT: {
        int64_t ax = n->axis < 0 ? n->axis + x->ndim : n->axis;
        if (ax != 1)
            NODE_FAIL(e, n, "only concatenation along the channel axis 1 is supported (axis %lld)",
                      (long long)n->axis);
        set_shape(y, x->ndim, x->dims);
        for (int k = 1; k < n->n_in; ++k) {
            const rs_value *b = n->in[k] >= 0 ? &m->values[n->in[k]] : NULL;
            if (!b || b->is_const || b->ndim != x->ndim ||
                (x->ndim > 2 && memcmp(b->dims + 2, x->dims + 2, (size_t)(x->ndim - 2) * sizeof(int64_t))))
                NODE_FAIL(e, n, "input %d must be an activation matching \"%s\" except in channels",
                          k, x->name);
            y->dims[1] += b->dims[1];
        }
        return 0;
    }
    case RS_OP_FLATTEN: {
        if (n->axis != 1)
            NODE_FAIL(e, n, "attribute \"axis\" = %lld is not supported (only 1)", (long long)n->axis);
        d[0] = -1;
        d[1] = model_value_numel(x);
        set_shape(y, 2, d);
        return 0;
    }
    case RS_OP_RESHAPE: {
        if (n->n_in != 2 || n->in[1] < 0 || !m->values[n->in[1]].is_const ||
            m->values[n->in[1]].dtype != RS_DT_INT64 || !m->values[n->in[1]].i64)
            NODE_FAIL(e, n, "shape must be an int64 initializer");
        const rs_value *s = &m->values[n->in[1]];
        int64_t feat = model_value_numel(x);
        int ok = model_value_numel(s) == 2 &&
                 (s->i64[0] == -1 || s->i64[0] == 0 || s->i64[0] >= 1) &&
                 (s->i64[1] == -1 || s->i64[1] == feat) && !(s->i64[0] == -1 && s->i64[1] == -1);
        /* Only the flatten form (batch, features) is supported: batch kept, rest collapsed. */
        if (ok && s->i64[0] >= 1 && s->i64[1] == -1)
            ok = 0;
        if (!ok)
            NODE_FAIL(e, n, "shape \"%s\" is not a flatten to (N, %lld)", s->name, (long long)feat);
        d[0] = -1;
        d[1] = feat;
        set_shape(y, 2, d);
        return 0;
    }
    default:
        NODE_FAIL(e, n, "unsupported op");
    }
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
    if (n->op != RS_OP_CONV && n->op != RS_OP_GEMM && n->op != RS_OP_MATMUL)
        return 0;
    return n->n_in >= 2 && is_float_const(m, n->in[1]);
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
        if (n->in[k] >= 0 && is_float_const(m, n->in[k]))
            L->params += model_value_numel(&m->values[n->in[k]]);
    if (!model_is_weighted(m, i))
        return;
    const rs_value *w = &m->values[n->in[1]];
    L->w_ndim = w->ndim > 4 ? 4 : w->ndim;
    for (int k = 0; k < L->w_ndim; ++k)
        L->w_shape[k] = w->dims[k];
    if (n->op == RS_OP_CONV && y && y->ndim == 4)
        L->macs = y->dims[1] * y->dims[2] * y->dims[3] * w->dims[1] * w->dims[2] * w->dims[3];
    else if (n->op == RS_OP_GEMM || n->op == RS_OP_MATMUL)
        L->macs = w->dims[0] * w->dims[1];
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
