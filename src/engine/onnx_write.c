/* onnx_write.c — rs_model -> ONNX ModelProto (opset 13), packed with protobuf-c and written
 * atomically. Names are preserved; operands the engine keeps in node fields (Clip bounds, Pad
 * pads) are written as initializers named "<node>_min", "_max", "_pads".
 */
#include "rankscope/onnx.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"
#include "rankscope/fileio.h"
#include "rankscope/guard.h"
#include "rankscope/ops.h"

/* What the writer emits. */
#define ONNX_WRITE_IR_VERSION 7
#define ONNX_WRITE_OPSET 13

/* Every proto struct the writer builds lives in one arena, released in one go after packing.
 * Strings and tensor data are borrowed from the model (protobuf-c only reads them). */
typedef struct arena_block {
    struct arena_block *next;
    max_align_t data[];
} arena_block;

typedef struct arena {
    arena_block *head;
    int failed;
} arena;

static void *arena_alloc(arena *a, size_t size)
{
    arena_block *b = calloc(1, sizeof *b + (size ? size : 1));
    if (!b) {
        a->failed = 1;
        return NULL;
    }
    b->next = a->head;
    a->head = b;
    return b->data;
}

static void arena_free(arena *a)
{
    while (a->head) {
        arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

static char batch_param[] = "N";
static char empty_string[] = "";

static Onnx__ValueInfoProto *write_value_info(arena *a, const rs_value *v)
{
    Onnx__ValueInfoProto *vi = arena_alloc(a, sizeof *vi);
    Onnx__TypeProto *tp = arena_alloc(a, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = arena_alloc(a, sizeof *tt);
    if (!vi || !tp || !tt)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    vi->name = v->name;
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = RS_DT_FLOAT;
    if (v->ndim <= 0)
        return vi;
    Onnx__TensorShapeProto *sh = arena_alloc(a, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = arena_alloc(a, (size_t)v->ndim * sizeof *dims);
    if (!sh || !dims)
        return NULL;
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)v->ndim;
    sh->dim = dims;
    tt->shape = sh;
    for (int i = 0; i < v->ndim; ++i) {
        Onnx__TensorShapeProto__Dimension *d = arena_alloc(a, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (v->dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = batch_param;
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = v->dims[i];
        }
        dims[i] = d;
    }
    return vi;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static Onnx__TensorProto *write_tensor(arena *a, const rs_value *v, rs_err *e)
{
    if (v->dtype != RS_DT_FLOAT && v->dtype != RS_DT_INT64)
        return rs_fail(e, "initializer \"%s\": unsupported data type %d", v->name, v->dtype), NULL;
    const void *src = v->dtype == RS_DT_FLOAT ? (const void *)v->f : (const void *)v->i64;
    if (!src)
        return rs_fail(e, "initializer \"%s\" has no data", v->name), NULL;
    if (v->ndim < 0 || v->ndim > RS_MAXDIM)
        return rs_fail(e, "initializer \"%s\": bad rank %d", v->name, v->ndim), NULL;
    size_t n = 1, esize = v->dtype == RS_DT_FLOAT ? 4 : 8, bytes;
    for (int i = 0; i < v->ndim; ++i)
        if (v->dims[i] < 1 || rs_size_mul(n, (size_t)v->dims[i], &n) != 0)
            return rs_fail(e, "initializer \"%s\": bad dim %d = %lld", v->name, i,
                           (long long)v->dims[i]), NULL;
    if (rs_size_mul(n, esize, &bytes) != 0)
        return rs_fail(e, "initializer \"%s\": too large", v->name), NULL;
    Onnx__TensorProto *t = arena_alloc(a, sizeof *t);
    int64_t *dims = arena_alloc(a, (size_t)(v->ndim ? v->ndim : 1) * sizeof *dims);
    if (!t || !dims)
        return NULL;
    onnx__tensor_proto__init(t);
    t->name = v->name;
    t->has_data_type = 1;
    t->data_type = v->dtype;
    t->n_dims = (size_t)v->ndim;
    memcpy(dims, v->dims, (size_t)v->ndim * sizeof *dims);
    t->dims = dims;
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    if (host_is_little_endian()) {
        t->raw_data.data = (uint8_t *)(uintptr_t)src; /* read-only use by the packer */
    } else {
        uint8_t *le = arena_alloc(a, bytes);
        if (!le)
            return NULL;
        const uint8_t *p = src;
        for (size_t i = 0; i < n; ++i)
            for (size_t b = 0; b < esize; ++b)
                le[i * esize + b] = p[i * esize + esize - 1 - b];
        t->raw_data.data = le;
    }
    return t;
}

static Onnx__AttributeProto *attr_new(arena *a, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *at = arena_alloc(a, sizeof *at);
    if (!at)
        return NULL;
    onnx__attribute_proto__init(at);
    at->name = (char *)(uintptr_t)name;
    at->has_type = 1;
    at->type = type;
    return at;
}

static Onnx__AttributeProto *attr_ints_new(arena *a, const char *name, const int64_t *v, size_t n)
{
    Onnx__AttributeProto *at = attr_new(a, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *ints = arena_alloc(a, n * sizeof *ints);
    if (!at || !ints)
        return NULL;
    memcpy(ints, v, n * sizeof *ints);
    at->n_ints = n;
    at->ints = ints;
    return at;
}

static Onnx__AttributeProto *attr_int_new(arena *a, const char *name, int64_t v)
{
    Onnx__AttributeProto *at = attr_new(a, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (at)
        at->has_i = 1, at->i = v;
    return at;
}

static Onnx__AttributeProto *attr_float_new(arena *a, const char *name, float v)
{
    Onnx__AttributeProto *at = attr_new(a, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (at)
        at->has_f = 1, at->f = v;
    return at;
}

static Onnx__AttributeProto *attr_string_new(arena *a, const char *name, const char *s)
{
    Onnx__AttributeProto *at = attr_new(a, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (at) {
        at->has_s = 1;
        at->s.len = strlen(s);
        at->s.data = (uint8_t *)(uintptr_t)s;
    }
    return at;
}

/* Every attribute is written explicitly (no reliance on defaults that differ across opsets), by
 * the op's schema in registry order (rankscope/ops.h). */
static int write_attributes(arena *a, const rs_model *m, const rs_node *n, Onnx__NodeProto *np)
{
    const rs_op_desc *d = ops_get(n->op);
    const rs_attr *rows = d ? d->attrs : NULL;
    size_t cap = 0;
    for (const rs_attr *r = rows; r && r->name; ++r)
        ++cap;
    Onnx__AttributeProto **at = arena_alloc(a, (cap ? cap : 1) * sizeof *at);
    if (!at)
        return -1;
    size_t k = 0;
    for (const rs_attr *r = rows; r && r->name; ++r) {
        if (r->flags & RS_ATTR_READ_ONLY)
            continue;
        const char *field = (const char *)n + r->offset;
        int64_t iv = r->lo;
        if (r->field == RS_FIELD_I64)
            memcpy(&iv, field, sizeof iv);
        else if (r->field == RS_FIELD_INT)
            iv = *(const int *)(const void *)field;
        switch ((rs_attr_kind)r->kind) {
        case RS_ATTR_KERNEL: { /* Conv without kernel_shape: the weight's spatial extent */
            int64_t kernel[2] = {n->kernel[0], n->kernel[1]};
            if ((kernel[0] < 1 || kernel[1] < 1) && n->n_in > 1 && n->in[1] >= 0 &&
                m->values[n->in[1]].ndim == 4) {
                kernel[0] = m->values[n->in[1]].dims[2];
                kernel[1] = m->values[n->in[1]].dims[3];
            }
            if (kernel[0] >= 1 && kernel[1] >= 1)
                at[k++] = attr_ints_new(a, r->name, kernel, 2);
            break;
        }
        case RS_ATTR_INTS:
            at[k++] = attr_ints_new(a, r->name, (const int64_t *)(const void *)field, r->count);
            break;
        case RS_ATTR_AXES:
            at[k++] = attr_ints_new(a, r->name, n->axes, (size_t)n->n_axes);
            break;
        case RS_ATTR_FLOAT:
            at[k++] = attr_float_new(a, r->name, *(const float *)(const void *)field);
            break;
        case RS_ATTR_AUTO_PAD:
            at[k++] = attr_string_new(a, r->name, "NOTSET");
            break;
        case RS_ATTR_STRING:
            at[k++] = attr_string_new(a, r->name, r->text);
            break;
        default: /* the int kinds */
            at[k++] = attr_int_new(a, r->name, iv);
            break;
        }
    }
    for (size_t i = 0; i < k; ++i)
        if (!at[i])
            return -1;
    np->n_attribute = k;
    np->attribute = at;
    return 0;
}

/* Opset 13 takes some attributes as inputs (the registry row's const_inputs); the engine keeps
 * them in node fields, so the writer adds them as initializers named "<node><suffix>" (made
 * unique). */
static char *synth_name(arena *a, const rs_model *m, const char *node, const char *suffix)
{
    size_t len = strlen(node) + strlen(suffix) + 16;
    char *name = arena_alloc(a, len);
    if (!name)
        return NULL;
    snprintf(name, len, "%s%s", node, suffix);
    for (int k = 2; model_find_value(m, name) >= 0 && k < 1000000; ++k)
        snprintf(name, len, "%s%s_%d", node, suffix, k);
    return name;
}

static Onnx__TensorProto *synth_tensor(arena *a, char *name, int dtype, int64_t numel, int ndim,
                                       const void *data)
{
    Onnx__TensorProto *t = arena_alloc(a, sizeof *t);
    size_t bytes = (size_t)numel * (dtype == RS_DT_FLOAT ? 4 : 8);
    uint8_t *raw = arena_alloc(a, bytes);
    int64_t *dims = arena_alloc(a, sizeof *dims);
    if (!t || !raw || !dims)
        return NULL;
    onnx__tensor_proto__init(t);
    t->name = name;
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)ndim;
    dims[0] = numel;
    t->dims = dims;
    const uint8_t *src = data;
    size_t es = dtype == RS_DT_FLOAT ? 4 : 8;
    for (int64_t i = 0; i < numel; ++i) /* little-endian on the wire */
        for (size_t b = 0; b < es; ++b)
            raw[(size_t)i * es + b] =
                host_is_little_endian() ? src[(size_t)i * es + b] : src[(size_t)i * es + es - 1 - b];
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = raw;
    return t;
}

/* Extra inputs node n needs in opset 13 (its row's const_inputs): their names into in[] after
 * x, tensors appended to g. */
static int synth_inputs(arena *a, const rs_model *m, const rs_node *n, char **in, int *n_in,
                        Onnx__GraphProto *g)
{
    rs_const_input ci[RS_CONST_INPUTS];
    int k = ops_get(n->op)->const_inputs(n, ci);
    char base[32];
    snprintf(base, sizeof base, "%s", model_op_name(n->op));
    for (char *c = base; *c; ++c)
        *c = (char)tolower((unsigned char)*c);
    *n_in = 1;
    for (int i = 0; i < k && i < RS_CONST_INPUTS; ++i) {
        if (!ci[i].dtype) {
            in[(*n_in)++] = empty_string;
            continue;
        }
        char *name = synth_name(a, m, n->name ? n->name : base, ci[i].suffix);
        const void *data = ci[i].dtype == RS_DT_FLOAT ? (const void *)&ci[i].f : (const void *)ci[i].i64;
        Onnx__TensorProto *t = name ? synth_tensor(a, name, ci[i].dtype, ci[i].count, ci[i].ndim, data) : NULL;
        if (!t)
            return -1;
        g->initializer[g->n_initializer++] = t;
        in[(*n_in)++] = name;
    }
    while (*n_in > 1 && in[*n_in - 1] == empty_string)
        --*n_in;
    return 0;
}

static Onnx__NodeProto *write_node(arena *a, const rs_model *m, int idx, Onnx__GraphProto *g,
                                   rs_err *e)
{
    const rs_node *n = &m->nodes[idx];
    const char *name = n->name ? n->name : "";
    if (n->op <= RS_OP_NONE || n->op >= RS_OP_COUNT)
        return rs_fail(e, "node \"%s\": invalid op %d", name, (int)n->op), NULL;
    if (n->n_in < 0 || n->n_in > RS_MAXIO || n->n_out < 1 || n->n_out > RS_MAXIO)
        return rs_fail(e, "node \"%s\" (%s): bad input/output count", name, model_op_name(n->op)), NULL;
    Onnx__NodeProto *np = arena_alloc(a, sizeof *np);
    char **in = arena_alloc(a, (size_t)(n->n_in + 3) * sizeof *in);
    char **out = arena_alloc(a, (size_t)n->n_out * sizeof *out);
    if (!np || !in || !out)
        return NULL;
    onnx__node_proto__init(np);
    np->name = n->name;
    np->op_type = (char *)(uintptr_t)model_op_name(n->op);
    int n_in = n->n_in;
    while (n_in > 0 && n->in[n_in - 1] < 0) /* drop trailing omitted optional inputs */
        --n_in;
    for (int k = 0; k < n_in; ++k) {
        int v = n->in[k];
        if (v >= m->n_values)
            return rs_fail(e, "node \"%s\" (%s): input %d refers to value %d of %d", name,
                           model_op_name(n->op), k, v, m->n_values), NULL;
        in[k] = v < 0 ? empty_string : m->values[v].name;
    }
    for (int k = 0; k < n->n_out; ++k) {
        int v = n->out[k];
        if (v < 0 || v >= m->n_values)
            return rs_fail(e, "node \"%s\" (%s): output %d refers to value %d of %d", name,
                           model_op_name(n->op), k, v, m->n_values), NULL;
        out[k] = m->values[v].name;
    }
    const rs_op_desc *d = ops_get(n->op);
    if (d && d->const_inputs && synth_inputs(a, m, n, in, &n_in, g) != 0)
        return NULL;
    np->n_input = (size_t)n_in;
    np->input = in;
    np->n_output = (size_t)n->n_out;
    np->output = out;
    if (write_attributes(a, m, n, np) != 0)
        return NULL;
    return np;
}

int onnx_save_buffer(const rs_model *m, uint8_t **buf, size_t *len, rs_err *e)
{
    *buf = NULL;
    *len = 0;
    if (!m || m->input < 0 || m->input >= m->n_values || m->output < 0 || m->output >= m->n_values)
        return rs_fail(e, "onnx: model has no graph input or output");
    /* ONNX addresses tensors by name: an empty or repeated name would write an invalid file. */
    onnx_name_map seen = {0};
    if (onnx_map_init(&seen, (size_t)m->n_values) != 0) {
        onnx_map_free(&seen);
        return rs_fail(e, "onnx: out of memory");
    }
    for (int v = 0; v < m->n_values; ++v) {
        const char *name = m->values[v].name;
        if (onnx_empty(name) || onnx_map_put(&seen, name, v) >= 0) {
            char nb[NAME_BUF];
            onnx_map_free(&seen);
            if (onnx_empty(name))
                return rs_fail(e, "onnx: value %d has no name", v);
            return rs_fail(e, "onnx: two values are named \"%s\"", onnx_clean(nb, sizeof nb, name));
        }
    }
    onnx_map_free(&seen);

    arena a = {0};
    int rc = -1;
    Onnx__ModelProto mp;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    onnx__model_proto__init(&mp);
    onnx__graph_proto__init(&g);
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = empty_string;
    opset.has_version = 1;
    opset.version = ONNX_WRITE_OPSET;
    for (int i = 0; i < m->n_nodes; ++i) { /* an op of a later opset raises it (HardSwish: 14) */
        const rs_op_desc *d = ops_get(m->nodes[i].op);
        if (d && d->min_opset > opset.version)
            opset.version = d->min_opset;
    }
    mp.has_ir_version = 1;
    mp.ir_version = ONNX_WRITE_IR_VERSION;
    mp.n_opset_import = 1;
    mp.opset_import = opsets;
    mp.producer_name = (char *)(uintptr_t)"rankscope";
    mp.graph = &g;
    g.name = (char *)(uintptr_t)(!onnx_empty(m->graph_name) ? m->graph_name : "rankscope");

    Onnx__ValueInfoProto *in_vi = write_value_info(&a, &m->values[m->input]);
    Onnx__ValueInfoProto *out_vi = write_value_info(&a, &m->values[m->output]);
    size_t n_init = 0;
    for (int v = 0; v < m->n_values; ++v)
        n_init += m->values[v].is_const != 0;
    for (int i = 0; i < m->n_nodes; ++i) { /* initializers synth_inputs may add */
        const rs_op_desc *d = ops_get(m->nodes[i].op);
        n_init += d && d->const_inputs ? RS_CONST_INPUTS : 0;
    }
    g.initializer = arena_alloc(&a, (n_init ? n_init : 1) * sizeof *g.initializer);
    g.node = arena_alloc(&a, (size_t)(m->n_nodes ? m->n_nodes : 1) * sizeof *g.node);
    if (!in_vi || !out_vi || !g.initializer || !g.node)
        goto oom;
    g.n_input = 1;
    g.input = &in_vi;
    g.n_output = 1;
    g.output = &out_vi;
    for (int v = 0; v < m->n_values; ++v) {
        if (!m->values[v].is_const)
            continue;
        Onnx__TensorProto *t = write_tensor(&a, &m->values[v], e);
        if (!t)
            goto fail;
        g.initializer[g.n_initializer++] = t;
    }
    for (int i = 0; i < m->n_nodes; ++i) {
        Onnx__NodeProto *np = write_node(&a, m, i, &g, e);
        if (!np)
            goto fail;
        g.node[g.n_node++] = np;
    }
    size_t size = onnx__model_proto__get_packed_size(&mp);
    uint8_t *out = malloc(size ? size : 1);
    if (!out)
        goto oom;
    size_t packed = onnx__model_proto__pack(&mp, out);
    if (packed != size) {
        free(out);
        rs_fail(e, "onnx: protobuf packing wrote %zu bytes, expected %zu", packed, size);
        goto done;
    }
    *buf = out;
    *len = size;
    rc = 0;
    goto done;
oom:
    rs_fail(e, "onnx: out of memory serializing the model");
    goto done;
fail:
    if (a.failed)
        rs_fail(e, "onnx: out of memory serializing the model");
    else
        rs_failctx(e, "onnx");
done:
    arena_free(&a);
    return rc;
}

int onnx_save(const rs_model *m, const char *path, rs_err *e)
{
    uint8_t *buf;
    size_t len;
    /* no command writes a NaN or an infinity on: whatever produced it, the file would poison
     * every later step */
    if (guard_model_finite(m, e) != 0 || onnx_save_buffer(m, &buf, &len, e) != 0) {
        char pb[256];
        rs_failctx(e, "%s", onnx_clean(pb, sizeof pb, path ? path : ""));
        return -1;
    }
    int rc = fileio_write_atomic(path, buf, len, e);
    free(buf);
    return rc;
}
