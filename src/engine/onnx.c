/* onnx.c — ONNX ModelProto <-> rs_model, through protobuf-c code generated from onnx.proto.
 *
 * Loading happens in passes so that nothing is allocated from a declared size before it has been
 * checked against the bytes actually present:
 *   0. walk the wire format with the schema: nesting depth (protobuf-c recursion is unbounded)
 *      and the memory decoding would take (tiny messages expand ~50x) are bounded first;
 *   1. unpack the protobuf (protobuf-c allocates only for what the bytes contain);
 *   2. check initializers (type, dims > 0, size within RS_MAX_ALLOC, data length = dims product),
 *      the single graph input and output, and every node (op, arity, attributes);
 *   3. resolve names to value indices (dangling inputs, duplicate outputs), sort topologically
 *      (cycles), and only then build the rs_model and copy the tensor data;
 *   4. model_infer_shapes.
 */
#include "rankscope/onnx.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "rankscope/fileio.h"
#include "rankscope/guard.h"

/* protobuf messages are limited to 2 GiB by the format itself. */
#define ONNX_MAX_FILE ((size_t)2 << 30)
/* Graph size caps: far above any CNN rankscope targets (ResNet-152 has ~500 nodes), low enough
 * that a hostile file cannot make the linear-time passes slow. */
#define ONNX_MAX_NODES 100000
#define ONNX_MAX_INITIALIZERS 100000
/* Longest attribute list or per-node attribute count accepted (the ops here use at most 4). */
#define ONNX_MAX_ATTR_VALUES 64
#define ONNX_MAX_ATTRS 64
/* Spatial attribute ranges (same bounds model_infer_shapes enforces). */
#define ONNX_MAX_SPATIAL 1024
#define ONNX_MAX_GROUP 65536
/* Deepest sub-message nesting accepted. A model is ~7 deep (Model > Graph > ValueInfo > Type >
 * Tensor > Shape > Dimension); protobuf-c recurses once per level with no limit of its own, so a
 * megabyte of nested Graph > Node > Attribute > Graph ... would overflow the stack. */
#define ONNX_MAX_DEPTH 48
/* Decoding may allocate up to twice the file's size plus this (protobuf structs, names). */
#define ONNX_DECODE_SLACK ((size_t)64 << 20)
/* Opsets whose semantics for the supported ops match what the engine implements. */
#define ONNX_MIN_OPSET 7
#define ONNX_MAX_OPSET 22
/* What the writer emits. */
#define ONNX_WRITE_IR_VERSION 7
#define ONNX_WRITE_OPSET 13

/* ---- small helpers ---------------------------------------------------------------------------- */

/* Copy s into dst for an error message: control bytes become '?', long names are cut, so every
 * message stays one line whatever the file contains. */
static const char *clean(char *dst, size_t cap, const char *s)
{
    if (!s)
        s = "";
    size_t n = 0;
    for (; s[n] && n + 1 < cap; ++n) {
        unsigned char c = (unsigned char)s[n];
        dst[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[n] && cap > 4)
        memcpy(dst + cap - 4, "...", 3), n = cap - 1;
    dst[n] = '\0';
    return dst;
}

#define NAME_BUF 96

static int empty(const char *s)
{
    return !s || !*s;
}

/* "node "conv2" (Conv): <why>" — the node's own name, or its position when it has none. */
static int node_fail(rs_err *e, const Onnx__NodeProto *np, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int node_fail(rs_err *e, const Onnx__NodeProto *np, size_t idx, const char *fmt, ...)
{
    char why[RS_ERR_LEN], nb[NAME_BUF], ob[NAME_BUF], pos[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(pos, sizeof pos, "#%zu", idx);
    const char *name = empty(np->name) ? pos : clean(nb, sizeof nb, np->name);
    char opb[2 * NAME_BUF + 2];
    if (!empty(np->domain) && strcmp(np->domain, "ai.onnx") != 0) {
        char db[NAME_BUF];
        snprintf(opb, sizeof opb, "%s:%s", clean(db, sizeof db, np->domain),
                 clean(ob, sizeof ob, np->op_type));
    } else {
        snprintf(opb, sizeof opb, "%s", clean(ob, sizeof ob, empty(np->op_type) ? "?" : np->op_type));
    }
    return rs_fail(e, "node \"%s\" (%s): %s", name, opb, why);
}

/* ---- name -> index hash map (open addressing, keys borrowed) ---------------------------------- */

typedef struct name_map {
    size_t cap; /* power of two */
    const char **keys;
    int *vals;
} name_map;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; ++s)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int map_init(name_map *h, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 1)
        cap *= 2;
    h->cap = cap;
    h->keys = calloc(cap, sizeof *h->keys);
    h->vals = calloc(cap, sizeof *h->vals);
    return h->keys && h->vals ? 0 : -1;
}

static void map_free(name_map *h)
{
    free(h->keys);
    free(h->vals);
}

static int map_get(const name_map *h, const char *key)
{
    for (size_t i = hash_name(key) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (!h->keys[i])
            return -1;
        if (strcmp(h->keys[i], key) == 0)
            return h->vals[i];
    }
}

/* Insert key -> val; if the key is already present return its value (and insert nothing),
 * else -1. The map is sized for every key up front, so it never fills. */
static int map_put(name_map *h, const char *key, int val)
{
    for (size_t i = hash_name(key) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (!h->keys[i]) {
            h->keys[i] = key;
            h->vals[i] = val;
            return -1;
        }
        if (strcmp(h->keys[i], key) == 0)
            return h->vals[i];
    }
}

/* ---- reading: tensors --------------------------------------------------------------------------- */

static const char *dtype_name(int32_t t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16",
                                        "INT32", "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE",
                                        "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
    return t >= 0 && t < (int32_t)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

/* Validates an initializer without allocating; *numel receives its element count. */
static int check_tensor(const Onnx__TensorProto *t, size_t *numel, rs_err *e)
{
    char nb[NAME_BUF];
    const char *name = clean(nb, sizeof nb, t->name);
    if (empty(t->name))
        return rs_fail(e, "an initializer has no name");
    int32_t dt = t->has_data_type ? t->data_type : 0;
    if (dt != RS_DT_FLOAT && dt != RS_DT_INT64)
        return rs_fail(e, "initializer \"%s\": data type %d (%s) is not supported (FLOAT or INT64 only)",
                       name, (int)dt, dtype_name(dt));
    if ((t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        t->n_external_data)
        return rs_fail(e, "initializer \"%s\": external data files are not supported", name);
    if (t->segment)
        return rs_fail(e, "initializer \"%s\": segmented tensors are not supported", name);
    if (t->n_dims > RS_MAXDIM)
        return rs_fail(e, "initializer \"%s\": %zu dims (limit %d)", name, t->n_dims, RS_MAXDIM);
    size_t n = 1;
    for (size_t i = 0; i < t->n_dims; ++i) {
        if (t->dims[i] < 1)
            return rs_fail(e, "initializer \"%s\": dim %zu = %lld (dims must be positive)", name, i,
                           (long long)t->dims[i]);
        if ((uint64_t)t->dims[i] > SIZE_MAX || rs_size_mul(n, (size_t)t->dims[i], &n) != 0)
            return rs_fail(e, "initializer \"%s\": dims product overflows", name);
    }
    size_t esize = dt == RS_DT_FLOAT ? 4 : 8, bytes;
    if (rs_size_mul(n, esize, &bytes) != 0 || bytes > RS_MAX_ALLOC)
        return rs_fail(e, "initializer \"%s\": %zu elements exceed the %zu-byte limit", name, n,
                       (size_t)RS_MAX_ALLOC);
    if (t->has_raw_data || t->raw_data.len) {
        if (t->raw_data.len != bytes)
            return rs_fail(e, "initializer \"%s\": raw_data has %zu bytes, dims say %zu", name,
                           t->raw_data.len, bytes);
    } else if (dt == RS_DT_FLOAT) {
        if (t->n_float_data != n)
            return rs_fail(e, "initializer \"%s\": float_data has %zu values, dims say %zu", name,
                           t->n_float_data, n);
    } else if (t->n_int64_data != n) {
        return rs_fail(e, "initializer \"%s\": int64_data has %zu values, dims say %zu", name,
                       t->n_int64_data, n);
    }
    *numel = n;
    return 0;
}

/* Fills v (name already set) from a checked initializer; raw_data is little-endian. */
static int load_tensor(rs_value *v, const Onnx__TensorProto *t, size_t n, rs_err *e)
{
    v->is_const = 1;
    v->dtype = t->data_type;
    v->ndim = (int)t->n_dims;
    for (size_t i = 0; i < t->n_dims; ++i)
        v->dims[i] = t->dims[i];
    const uint8_t *raw = (t->has_raw_data || t->raw_data.len) ? t->raw_data.data : NULL;
    if (v->dtype == RS_DT_FLOAT) {
        v->f = malloc(n ? n * sizeof(float) : 1);
        if (!v->f)
            return rs_fail(e, "initializer \"%s\": out of memory", v->name);
        if (raw) {
            for (size_t i = 0; i < n; ++i) {
                const uint8_t *p = raw + 4 * i;
                uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24;
                memcpy(&v->f[i], &u, sizeof u);
            }
        } else if (n) {
            memcpy(v->f, t->float_data, n * sizeof(float));
        }
    } else {
        v->i64 = malloc(n ? n * sizeof(int64_t) : 1);
        if (!v->i64)
            return rs_fail(e, "initializer \"%s\": out of memory", v->name);
        if (raw) {
            for (size_t i = 0; i < n; ++i) {
                uint64_t u = 0;
                for (int b = 7; b >= 0; --b)
                    u = u << 8 | raw[8 * i + (size_t)b];
                memcpy(&v->i64[i], &u, sizeof u);
            }
        } else if (n) {
            memcpy(v->i64, t->int64_data, n * sizeof(int64_t));
        }
    }
    return 0;
}

/* ---- reading: graph input ------------------------------------------------------------------------ */

/* The graph input's shape: dims[0] is the batch (symbolic or numeric, stored as -1), the other
 * dims must be concrete and positive. */
static int check_input(const Onnx__ValueInfoProto *vi, int *ndim, int64_t *dims, rs_err *e)
{
    char nb[NAME_BUF];
    const char *name = clean(nb, sizeof nb, vi->name);
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return rs_fail(e, "graph input \"%s\" is not a tensor", name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && tt->elem_type != RS_DT_FLOAT)
        return rs_fail(e, "graph input \"%s\": element type %s is not supported (FLOAT only)", name,
                       dtype_name(tt->elem_type));
    if (!tt->shape)
        return rs_fail(e, "graph input \"%s\" has no shape", name);
    const Onnx__TensorShapeProto *sh = tt->shape;
    if (sh->n_dim < 2 || sh->n_dim > RS_MAXDIM)
        return rs_fail(e, "graph input \"%s\" has %zu dims (expected 2..%d, batch first)", name,
                       sh->n_dim, RS_MAXDIM);
    size_t per_image = 1;
    dims[0] = -1;
    for (size_t i = 0; i < sh->n_dim; ++i) {
        const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
        int is_value = d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (i == 0) {
            if (is_value && d->dim_value < 1)
                return rs_fail(e, "graph input \"%s\": batch dim = %lld", name, (long long)d->dim_value);
            continue;
        }
        if (!is_value)
            return rs_fail(e, "graph input \"%s\": dim %zu is symbolic; only the batch dim may be",
                           name, i);
        if (d->dim_value < 1)
            return rs_fail(e, "graph input \"%s\": dim %zu = %lld (dims must be positive)", name, i,
                           (long long)d->dim_value);
        if ((uint64_t)d->dim_value > SIZE_MAX ||
            rs_size_mul(per_image, (size_t)d->dim_value, &per_image) != 0 ||
            per_image > RS_MAX_ALLOC / sizeof(float))
            return rs_fail(e, "graph input \"%s\": one image exceeds the %zu-byte limit", name,
                           (size_t)RS_MAX_ALLOC);
        dims[i] = d->dim_value;
    }
    *ndim = (int)sh->n_dim;
    return 0;
}

/* ---- reading: attributes ----------------------------------------------------------------------- */

typedef struct attr_ctx {
    const Onnx__NodeProto *np;
    size_t idx;
    rs_err *e;
} attr_ctx;

static void format_ints(char *dst, size_t cap, const int64_t *v, size_t n)
{
    size_t used = (size_t)snprintf(dst, cap, "[");
    for (size_t i = 0; i < n && used < cap; ++i) {
        if (i == 8) {
            snprintf(dst + used, cap - used, ", ...");
            used += 5;
            break;
        }
        used += (size_t)snprintf(dst + used, cap - used, "%s%lld", i ? ", " : "", (long long)v[i]);
    }
    if (used < cap)
        snprintf(dst + used, cap - used, "]");
}

/* Protobuf files from old exporters omit `type`; then it is taken from the field that is set. */
static int attr_is(const Onnx__AttributeProto *a, Onnx__AttributeProto__AttributeType t)
{
    if (a->has_type)
        return a->type == t;
    switch (t) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return a->has_i;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return a->has_f;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: return a->has_s;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: return a->n_ints > 0;
    default: return 0;
    }
}

/* A list of exactly `want` ints, each in [lo, hi]. */
static int attr_ints(const attr_ctx *c, const Onnx__AttributeProto *a, size_t want, int64_t lo,
                     int64_t hi, int64_t *out)
{
    char ab[NAME_BUF], vb[160];
    const char *an = clean(ab, sizeof ab, a->name);
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS))
        return node_fail(c->e, c->np, c->idx, "attribute \"%s\" must be a list of ints", an);
    if (a->n_ints > ONNX_MAX_ATTR_VALUES)
        return node_fail(c->e, c->np, c->idx, "attribute \"%s\" has %zu values (limit %d)", an,
                         a->n_ints, ONNX_MAX_ATTR_VALUES);
    format_ints(vb, sizeof vb, a->ints, a->n_ints);
    if (a->n_ints != want)
        return node_fail(c->e, c->np, c->idx,
                         "unsupported attribute \"%s\" = %s (2-D only: expected %zu values)", an, vb,
                         want);
    for (size_t i = 0; i < want; ++i)
        if (a->ints[i] < lo || a->ints[i] > hi)
            return node_fail(c->e, c->np, c->idx,
                             "unsupported attribute \"%s\" = %s (values must be in %lld..%lld)", an, vb,
                             (long long)lo, (long long)hi);
    memcpy(out, a->ints, want * sizeof *out);
    return 0;
}

static int attr_int(const attr_ctx *c, const Onnx__AttributeProto *a, int64_t lo, int64_t hi,
                    int64_t *out)
{
    char ab[NAME_BUF];
    const char *an = clean(ab, sizeof ab, a->name);
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT))
        return node_fail(c->e, c->np, c->idx, "attribute \"%s\" must be an int", an);
    if (a->i < lo || a->i > hi)
        return node_fail(c->e, c->np, c->idx, "unsupported attribute \"%s\" = %lld (supported: %lld..%lld)",
                         an, (long long)a->i, (long long)lo, (long long)hi);
    *out = a->i;
    return 0;
}

static int attr_float(const attr_ctx *c, const Onnx__AttributeProto *a, float *out)
{
    char ab[NAME_BUF];
    const char *an = clean(ab, sizeof ab, a->name);
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT))
        return node_fail(c->e, c->np, c->idx, "attribute \"%s\" must be a float", an);
    if (!isfinite(a->f))
        return node_fail(c->e, c->np, c->idx, "unsupported attribute \"%s\" = %g", an, (double)a->f);
    *out = a->f;
    return 0;
}

/* auto_pad: NOTSET (explicit pads) or VALID (no padding) are supported; SAME_* are not. */
static int attr_auto_pad(const attr_ctx *c, const Onnx__AttributeProto *a, int *valid)
{
    char vb[40], raw[40];
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING))
        return node_fail(c->e, c->np, c->idx, "attribute \"auto_pad\" must be a string");
    size_t n = a->s.len < sizeof raw - 1 ? a->s.len : sizeof raw - 1;
    memcpy(raw, a->s.data, n);
    raw[n] = '\0';
    if (a->s.len == 6 && memcmp(a->s.data, "NOTSET", 6) == 0)
        *valid = 0;
    else if (a->s.len == 5 && memcmp(a->s.data, "VALID", 5) == 0)
        *valid = 1;
    else
        return node_fail(c->e, c->np, c->idx, "unsupported attribute \"auto_pad\" = %s",
                         clean(vb, sizeof vb, raw));
    return 0;
}

static int unsupported_attr(const attr_ctx *c, const Onnx__AttributeProto *a)
{
    char ab[NAME_BUF];
    return node_fail(c->e, c->np, c->idx, "unsupported attribute \"%s\"", clean(ab, sizeof ab, a->name));
}

/* Parses the node's attributes into n (defaults already applied). */
static int parse_attributes(const attr_ctx *c, rs_node *n)
{
    const Onnx__NodeProto *np = c->np;
    if (np->n_attribute > ONNX_MAX_ATTRS)
        return node_fail(c->e, np, c->idx, "%zu attributes (limit %d)", np->n_attribute, ONNX_MAX_ATTRS);
    int have_kernel = 0, have_pads = 0, valid_pad = 0;
    for (size_t i = 0; i < np->n_attribute; ++i) {
        const Onnx__AttributeProto *a = np->attribute[i];
        const char *an = a->name ? a->name : "";
        int64_t iv;
        float fv;
        int rc = 0;
        if (!empty(a->ref_attr_name))
            return node_fail(c->e, np, c->idx, "attribute \"%s\" refers to a function attribute", an);
        switch (n->op) {
        case RS_OP_CONV:
        case RS_OP_MAXPOOL:
        case RS_OP_AVGPOOL:
            if (strcmp(an, "kernel_shape") == 0) {
                rc = attr_ints(c, a, 2, 1, ONNX_MAX_SPATIAL, n->kernel);
                have_kernel = 1;
            } else if (strcmp(an, "strides") == 0) {
                rc = attr_ints(c, a, 2, 1, ONNX_MAX_SPATIAL, n->strides);
            } else if (strcmp(an, "pads") == 0) {
                rc = attr_ints(c, a, 4, 0, ONNX_MAX_SPATIAL, n->pads);
                have_pads = n->pads[0] || n->pads[1] || n->pads[2] || n->pads[3];
            } else if (strcmp(an, "dilations") == 0) {
                /* The engine's pooling has no dilation; convolution does. */
                rc = attr_ints(c, a, 2, 1, n->op == RS_OP_CONV ? ONNX_MAX_SPATIAL : 1, n->dilations);
            } else if (strcmp(an, "auto_pad") == 0) {
                rc = attr_auto_pad(c, a, &valid_pad);
            } else if (n->op == RS_OP_CONV && strcmp(an, "group") == 0) {
                rc = attr_int(c, a, 1, ONNX_MAX_GROUP, &n->group);
            } else if (n->op != RS_OP_CONV && strcmp(an, "ceil_mode") == 0) {
                rc = attr_int(c, a, 0, 1, &iv);
                n->ceil_mode = (int)iv;
            } else if (n->op == RS_OP_MAXPOOL && strcmp(an, "storage_order") == 0) {
                rc = attr_int(c, a, 0, 0, &iv);
            } else if (n->op == RS_OP_AVGPOOL && strcmp(an, "count_include_pad") == 0) {
                rc = attr_int(c, a, 0, 1, &iv);
                n->count_include_pad = (int)iv;
            } else {
                rc = unsupported_attr(c, a);
            }
            break;
        case RS_OP_GEMM:
            if (strcmp(an, "alpha") == 0) {
                rc = attr_float(c, a, &n->alpha);
            } else if (strcmp(an, "beta") == 0) {
                rc = attr_float(c, a, &n->beta);
            } else if (strcmp(an, "transA") == 0) {
                rc = attr_int(c, a, 0, 1, &iv);
                n->trans_a = (int)iv;
            } else if (strcmp(an, "transB") == 0) {
                rc = attr_int(c, a, 0, 1, &iv);
                n->trans_b = (int)iv;
            } else {
                rc = unsupported_attr(c, a);
            }
            break;
        case RS_OP_FLATTEN:
            if (strcmp(an, "axis") == 0)
                rc = attr_int(c, a, -RS_MAXDIM, RS_MAXDIM, &n->axis);
            else
                rc = unsupported_attr(c, a);
            break;
        case RS_OP_RESHAPE:
            if (strcmp(an, "allowzero") == 0)
                rc = attr_int(c, a, 0, 0, &iv);
            else
                rc = unsupported_attr(c, a);
            break;
        case RS_OP_BATCHNORM:
            if (strcmp(an, "epsilon") == 0)
                rc = attr_float(c, a, &n->epsilon);
            else if (strcmp(an, "momentum") == 0)
                rc = attr_float(c, a, &fv); /* training only */
            else if (strcmp(an, "spatial") == 0) /* opset < 9: 1 is the per-channel form */
                rc = attr_int(c, a, 1, 1, &iv);
            else if (strcmp(an, "training_mode") == 0)
                rc = attr_int(c, a, 0, 0, &iv);
            else
                rc = unsupported_attr(c, a);
            break;
        case RS_OP_CLIP: /* opset < 11 carries the bounds as attributes */
            if (strcmp(an, "min") == 0)
                rc = attr_float(c, a, &n->clip_min);
            else if (strcmp(an, "max") == 0)
                rc = attr_float(c, a, &n->clip_max);
            else
                rc = unsupported_attr(c, a);
            break;
        case RS_OP_SOFTMAX:
        case RS_OP_CONCAT:
        case RS_OP_GATHER:
            if (strcmp(an, "axis") == 0)
                rc = attr_int(c, a, -RS_MAXDIM, RS_MAXDIM, &n->axis);
            else
                rc = unsupported_attr(c, a);
            break;
        case RS_OP_UNSQUEEZE: /* opset < 13: axes attribute; a 0-D index has only axis 0 */
            if (strcmp(an, "axes") == 0 && attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) &&
                a->n_ints == 1 && (a->ints[0] == 0 || a->ints[0] == -1))
                rc = 0;
            else
                rc = unsupported_attr(c, a);
            break;
        case RS_OP_PAD:
            if (strcmp(an, "mode") == 0) {
                if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING) || a->s.len != 8 ||
                    memcmp(a->s.data, "constant", 8) != 0)
                    rc = node_fail(c->e, np, c->idx, "only attribute \"mode\" = constant is supported");
            } else if (strcmp(an, "value") == 0) { /* opset < 11 */
                rc = attr_float(c, a, &fv);
                if (rc == 0 && fv != 0.0f)
                    rc = node_fail(c->e, np, c->idx, "only zero padding is supported (value = %g)",
                                   (double)fv);
            } else if (strcmp(an, "pads") == 0) { /* opset < 11: N,C,H,W begins then ends */
                int64_t p8[8];
                rc = attr_ints(c, a, 8, 0, ONNX_MAX_SPATIAL, p8);
                if (rc == 0 && (p8[0] || p8[1] || p8[4] || p8[5]))
                    rc = node_fail(c->e, np, c->idx, "only spatial (H, W) padding is supported");
                n->pads[0] = p8[2], n->pads[1] = p8[3], n->pads[2] = p8[6], n->pads[3] = p8[7];
            } else {
                rc = unsupported_attr(c, a);
            }
            break;
        case RS_OP_IDENTITY: /* Dropout maps here: its attributes only matter in training */
            if (strcmp(np->op_type, "Dropout") == 0 &&
                (strcmp(an, "ratio") == 0 || strcmp(an, "seed") == 0 || strcmp(an, "is_test") == 0))
                rc = 0;
            else
                rc = unsupported_attr(c, a);
            break;
        default:
            rc = unsupported_attr(c, a);
            break;
        }
        if (rc)
            return rc;
    }
    if (valid_pad && have_pads)
        return node_fail(c->e, np, c->idx, "attributes \"auto_pad\" = VALID and non-zero \"pads\" conflict");
    if ((n->op == RS_OP_MAXPOOL || n->op == RS_OP_AVGPOOL) && !have_kernel)
        return node_fail(c->e, np, c->idx, "missing attribute \"kernel_shape\"");
    return 0;
}

/* Inputs/outputs each op accepts (trailing empty names already stripped). */
static int check_arity(const attr_ctx *c, rs_op op, size_t n_in, size_t n_out)
{
    size_t lo = 1, hi = 1;
    switch (op) {
    case RS_OP_CONV:
    case RS_OP_GEMM: lo = 2, hi = 3; break;
    case RS_OP_MATMUL:
    case RS_OP_ADD:
    case RS_OP_GATHER:
    case RS_OP_RESHAPE: lo = hi = 2; break;
    case RS_OP_BATCHNORM: lo = hi = 5; break;
    case RS_OP_CLIP:
    case RS_OP_PAD: lo = 1, hi = 3; break;
    case RS_OP_UNSQUEEZE: lo = 1, hi = 2; break;
    case RS_OP_CONCAT: lo = 1, hi = RS_MAXIO; break;
    default: break;
    }
    if (n_in < lo || n_in > hi) {
        if (lo == hi)
            return node_fail(c->e, c->np, c->idx, "has %zu inputs, expected %zu", n_in, lo);
        return node_fail(c->e, c->np, c->idx, "has %zu inputs, expected %zu..%zu", n_in, lo, hi);
    }
    if (n_out != 1)
        return node_fail(c->e, c->np, c->idx, "has %zu outputs, expected 1%s", n_out,
                         op == RS_OP_MAXPOOL ? " (the Indices output is not supported)" : "");
    return 0;
}

static size_t strip_trailing_empty(char *const *names, size_t n)
{
    while (n > 0 && empty(names[n - 1]))
        --n;
    return n;
}

/* ---- reading: the whole model ----------------------------------------------------------------- */

typedef struct load_state {
    const Onnx__GraphProto *g;
    size_t n_init, n_nodes, n_values;
    int *init_value;      /* initializer i -> value index, or -1 when it is listed as an input */
    size_t *init_numel;   /* checked element counts */
    rs_node *nodes;       /* parsed nodes in file order (names not set) */
    int *producer;        /* value -> node (file order) or -1 */
    const char **vname;   /* value -> name (borrowed from the proto) */
    int *order;           /* topological order of file-order node indices */
    /* Constant nodes become initializers: per file node, the value it defines (else -1), its
     * tensor (a shallow copy of the attribute's, named after the output) and element count. */
    int *const_value;
    Onnx__TensorProto *const_tensor;
    size_t *const_numel;
    name_map names;
} load_state;

static void load_state_free(load_state *s)
{
    free(s->init_value);
    free(s->init_numel);
    free(s->nodes);
    free(s->producer);
    free(s->vname);
    free(s->order);
    free(s->const_value);
    free(s->const_tensor);
    free(s->const_numel);
    map_free(&s->names);
}

static int opset_of(const Onnx__ModelProto *mp, int64_t *opset, rs_err *e)
{
    *opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; ++i) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (o && (empty(o->domain) || strcmp(o->domain, "ai.onnx") == 0))
            *opset = o->has_version ? o->version : -1;
    }
    if (*opset < 0)
        return rs_fail(e, "no opset_import for the default ONNX domain");
    if (*opset < ONNX_MIN_OPSET || *opset > ONNX_MAX_OPSET)
        return rs_fail(e, "opset %lld is not supported (%d..%d)", (long long)*opset, ONNX_MIN_OPSET,
                       ONNX_MAX_OPSET);
    return 0;
}

/* A Constant node (file node i): its tensor is checked like an initializer and its output becomes
 * value *nv (an initializer); the node itself is dropped. */
static int constant_node(load_state *s, size_t i, size_t *nv, rs_err *e)
{
    const Onnx__NodeProto *np = s->g->node[i];
    char nb[NAME_BUF];
    if (np->n_input != 0 || np->n_output != 1 || empty(np->output[0]))
        return node_fail(e, np, i, "expected no inputs and one named output");
    if (np->n_attribute != 1 || !np->attribute[0] || !np->attribute[0]->name)
        return node_fail(e, np, i, "expected exactly one attribute (value, value_float or value_int)");
    const Onnx__AttributeProto *a = np->attribute[0];
    Onnx__TensorProto *t = &s->const_tensor[i];
    if (strcmp(a->name, "value") == 0 && a->t) {
        *t = *a->t;
    } else if (strcmp(a->name, "value_float") == 0 && attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)) {
        onnx__tensor_proto__init(t);
        t->has_data_type = 1, t->data_type = RS_DT_FLOAT;
        t->n_float_data = 1, t->float_data = (float *)(uintptr_t)&a->f;
    } else if (strcmp(a->name, "value_int") == 0 && attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)) {
        onnx__tensor_proto__init(t);
        t->has_data_type = 1, t->data_type = RS_DT_INT64;
        t->n_int64_data = 1, t->int64_data = (int64_t *)(uintptr_t)&a->i;
    } else {
        return node_fail(e, np, i, "unsupported attribute \"%s\"", clean(nb, sizeof nb, a->name));
    }
    t->name = np->output[0];
    if (check_tensor(t, &s->const_numel[i], e) != 0)
        return rs_failctx(e, "Constant node #%zu", i);
    if (map_put(&s->names, np->output[0], (int)*nv) >= 0)
        return node_fail(e, np, i, "output \"%s\" is already defined", clean(nb, sizeof nb, np->output[0]));
    s->vname[*nv] = np->output[0];
    s->producer[*nv] = -1;
    s->const_value[i] = (int)(*nv)++;
    s->nodes[i].n_in = s->nodes[i].n_out = 0;
    return 0;
}

/* Pass 2 + 3: every check, and the topological order; allocates only bookkeeping sized by what
 * the file actually contains. */
static int analyse(load_state *s, int *input_ndim, int64_t *input_dims, rs_err *e)
{
    const Onnx__GraphProto *g = s->g;
    char nb[NAME_BUF], nb2[NAME_BUF];
    if (g->n_node > ONNX_MAX_NODES)
        return rs_fail(e, "%zu nodes (limit %d)", g->n_node, ONNX_MAX_NODES);
    if (g->n_initializer > ONNX_MAX_INITIALIZERS)
        return rs_fail(e, "%zu initializers (limit %d)", g->n_initializer, ONNX_MAX_INITIALIZERS);
    if (g->n_sparse_initializer)
        return rs_fail(e, "sparse initializers are not supported");
    if (g->n_node == 0)
        return rs_fail(e, "graph has no nodes");
    s->n_init = g->n_initializer;
    s->n_nodes = g->n_node;
    size_t n_out_total = 0;
    for (size_t i = 0; i < g->n_node; ++i) {
        n_out_total += g->node[i]->n_output;
        if (g->node[i]->n_output > RS_MAXIO || g->node[i]->n_input > RS_MAXIO)
            return node_fail(e, g->node[i], i, "%zu inputs and %zu outputs (limit %d each)",
                             g->node[i]->n_input, g->node[i]->n_output, RS_MAXIO);
    }
    /* values: [0] graph input, then initializers, then node outputs */
    size_t cap_values = 1 + s->n_init + n_out_total;
    s->init_value = malloc((s->n_init ? s->n_init : 1) * sizeof *s->init_value);
    s->init_numel = malloc((s->n_init ? s->n_init : 1) * sizeof *s->init_numel);
    s->nodes = calloc(s->n_nodes, sizeof *s->nodes);
    s->producer = malloc(cap_values * sizeof *s->producer);
    s->vname = calloc(cap_values, sizeof *s->vname);
    s->order = malloc(s->n_nodes * sizeof *s->order);
    s->const_value = malloc(s->n_nodes * sizeof *s->const_value);
    s->const_tensor = calloc(s->n_nodes, sizeof *s->const_tensor);
    s->const_numel = calloc(s->n_nodes, sizeof *s->const_numel);
    if (!s->const_value || !s->const_tensor || !s->const_numel)
        return rs_fail(e, "out of memory");
    if (!s->init_value || !s->init_numel || !s->nodes || !s->producer || !s->vname || !s->order ||
        map_init(&s->names, cap_values + g->n_input) != 0)
        return rs_fail(e, "out of memory");

    /* initializers */
    size_t nv = 1;
    for (size_t i = 0; i < s->n_init; ++i) {
        const Onnx__TensorProto *t = g->initializer[i];
        if (check_tensor(t, &s->init_numel[i], e) != 0)
            return -1;
        if (map_put(&s->names, t->name, (int)nv) >= 0)
            return rs_fail(e, "initializer \"%s\" is defined twice", clean(nb, sizeof nb, t->name));
        s->init_value[i] = (int)nv;
        s->vname[nv] = t->name;
        s->producer[nv] = -1;
        ++nv;
    }

    /* the single real graph input: older exporters also list initializers as inputs */
    const Onnx__ValueInfoProto *input = NULL;
    for (size_t i = 0; i < g->n_input; ++i) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (empty(vi->name))
            return rs_fail(e, "graph input %zu has no name", i);
        if (map_get(&s->names, vi->name) >= 0)
            continue;
        if (input)
            return rs_fail(e, "graph has more than one input (\"%s\", \"%s\"); rankscope needs exactly one",
                           clean(nb, sizeof nb, input->name), clean(nb2, sizeof nb2, vi->name));
        input = vi;
    }
    if (!input)
        return rs_fail(e, "graph has no input besides initializers");
    if (check_input(input, input_ndim, input_dims, e) != 0)
        return -1;
    map_put(&s->names, input->name, 0);
    s->vname[0] = input->name;
    s->producer[0] = -1;

    if (g->n_output != 1)
        return rs_fail(e, "graph has %zu outputs; rankscope needs exactly one", g->n_output);
    if (empty(g->output[0]->name))
        return rs_fail(e, "graph output has no name");

    /* nodes: op, arity, attributes, outputs */
    for (size_t i = 0; i < s->n_nodes; ++i) {
        const Onnx__NodeProto *np = g->node[i];
        attr_ctx c = {np, i, e};
        rs_node *n = &s->nodes[i];
        int std_domain = empty(np->domain) || strcmp(np->domain, "ai.onnx") == 0;
        s->const_value[i] = -1;
        if (std_domain && np->op_type && strcmp(np->op_type, "Constant") == 0) {
            if (constant_node(s, i, &nv, e) != 0)
                return -1;
            continue;
        }
        int dropout = std_domain && np->op_type && strcmp(np->op_type, "Dropout") == 0;
        n->op = dropout ? RS_OP_IDENTITY : std_domain ? model_op_from_name(np->op_type) : RS_OP_NONE;
        if (n->op == RS_OP_NONE)
            return node_fail(e, np, i, "unsupported op");
        model_node_defaults(n);
        size_t n_in = strip_trailing_empty(np->input, np->n_input);
        size_t n_out = strip_trailing_empty(np->output, np->n_output);
        if (dropout && n_out == 2)
            return node_fail(e, np, i, "the mask output is not supported (inference only)");
        if (dropout && n_in >= 1 && n_in <= 3)
            n_in = 1; /* ratio / training_mode only matter in training */
        if (check_arity(&c, n->op, n_in, n_out) != 0 || parse_attributes(&c, n) != 0)
            return -1;
        n->n_in = (int)n_in;
        n->n_out = (int)n_out;
        for (size_t k = 0; k < n_out; ++k) {
            const char *on = np->output[k];
            if (empty(on))
                return node_fail(e, np, i, "output %zu has no name", k);
            int prev = map_put(&s->names, on, (int)nv);
            if (prev >= 0) {
                const char *what = prev == 0 ? "the graph input"
                                   : s->producer[prev] < 0 ? "an initializer"
                                                           : "another node";
                return node_fail(e, np, i, "output \"%s\" is already produced by %s",
                                 clean(nb, sizeof nb, on), what);
            }
            s->vname[nv] = on;
            s->producer[nv] = (int)i;
            n->out[k] = (int)nv++;
        }
    }
    s->n_values = nv;

    /* inputs: every name must resolve (no dangling reads) */
    for (size_t i = 0; i < s->n_nodes; ++i) {
        const Onnx__NodeProto *np = g->node[i];
        rs_node *n = &s->nodes[i];
        for (int k = 0; k < n->n_in; ++k) {
            if (empty(np->input[k])) {
                n->in[k] = -1; /* omitted optional input */
                continue;
            }
            int v = map_get(&s->names, np->input[k]);
            if (v < 0)
                return node_fail(e, np, i,
                                 "input \"%s\" is not produced by any node, initializer or graph input",
                                 clean(nb, sizeof nb, np->input[k]));
            n->in[k] = v;
        }
    }
    int out_v = map_get(&s->names, g->output[0]->name);
    if (out_v < 0 || s->producer[out_v] < 0)
        return rs_fail(e, "graph output \"%s\" is not produced by any node",
                       clean(nb, sizeof nb, g->output[0]->name));

    /* topological order: keep the file's order when it already is one (the usual case) */
    int sorted = 1;
    for (size_t i = 0; i < s->n_nodes && sorted; ++i)
        for (int k = 0; k < s->nodes[i].n_in; ++k) {
            int v = s->nodes[i].in[k];
            if (v >= 0 && s->producer[v] >= (int)i)
                sorted = 0;
        }
    for (size_t i = 0; i < s->n_nodes; ++i)
        s->order[i] = (int)i;
    if (sorted)
        return 0;

    /* Kahn's algorithm over node -> consumer edges (CSR by producing node). */
    int rc = -1;
    int *indeg = calloc(s->n_nodes, sizeof *indeg);
    int *start = calloc(s->n_nodes + 1, sizeof *start);
    size_t n_edges = 0;
    for (size_t i = 0; i < s->n_nodes; ++i)
        n_edges += (size_t)s->nodes[i].n_in;
    int *edges = malloc((n_edges ? n_edges : 1) * sizeof *edges);
    int *fill = calloc(s->n_nodes, sizeof *fill);
    char *done = calloc(s->n_nodes, 1);
    if (!indeg || !start || !edges || !fill || !done) {
        rs_fail(e, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < s->n_nodes; ++i)
        for (int k = 0; k < s->nodes[i].n_in; ++k) {
            int v = s->nodes[i].in[k];
            if (v >= 0 && s->producer[v] >= 0) {
                ++start[s->producer[v] + 1];
                ++indeg[i];
            }
        }
    for (size_t i = 0; i < s->n_nodes; ++i)
        start[i + 1] += start[i];
    for (size_t i = 0; i < s->n_nodes; ++i)
        for (int k = 0; k < s->nodes[i].n_in; ++k) {
            int v = s->nodes[i].in[k];
            if (v >= 0 && s->producer[v] >= 0) {
                int p = s->producer[v];
                edges[start[p] + fill[p]++] = (int)i;
            }
        }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < s->n_nodes; ++i)
        if (indeg[i] == 0)
            s->order[tail++] = (int)i;
    while (head < tail) {
        int p = s->order[head++];
        done[p] = 1;
        for (int k = start[p]; k < start[p + 1]; ++k)
            if (--indeg[edges[k]] == 0)
                s->order[tail++] = edges[k];
    }
    if (tail < s->n_nodes) {
        /* Walk back through not-yet-sorted producers; after n_nodes steps we are on a cycle. */
        int cur = 0;
        while (done[cur])
            ++cur;
        for (size_t step = 0; step < s->n_nodes; ++step) {
            int next = -1;
            for (int k = 0; k < s->nodes[cur].n_in && next < 0; ++k) {
                int v = s->nodes[cur].in[k];
                if (v >= 0 && s->producer[v] >= 0 && !done[s->producer[v]])
                    next = s->producer[v];
            }
            if (next < 0)
                break;
            cur = next;
        }
        node_fail(e, g->node[cur], (size_t)cur, "the graph has a cycle through this node");
        goto out;
    }
    rc = 0;
out:
    free(indeg);
    free(start);
    free(edges);
    free(fill);
    free(done);
    return rc;
}

/* A unique node name: the file's (unique_node_names checked that), or "<Op>_<position>" when it
 * is empty, avoiding every name already taken. */
static char *node_name(name_map *taken, const Onnx__NodeProto *np, rs_op op, size_t idx)
{
    char buf[64];
    const char *want = np->name;
    if (empty(want)) {
        snprintf(buf, sizeof buf, "%s_%zu", model_op_name(op), idx);
        for (int k = 2; map_get(taken, buf) >= 0; ++k)
            snprintf(buf, sizeof buf, "%s_%zu_%d", model_op_name(op), idx, k);
        want = buf;
    }
    char *name = rs_strdup(want);
    if (name)
        map_put(taken, name, (int)idx);
    return name;
}

/* Plans, --ranks and the explorer address layers by node name: two nodes of one name would make
 * "fc1" mean whichever comes first, silently. Records every file-given name in taken. */
static int unique_node_names(const Onnx__GraphProto *g, name_map *taken, rs_err *e)
{
    for (size_t k = 0; k < g->n_node; ++k) {
        const char *nm = g->node[k]->name;
        if (empty(nm))
            continue;
        int prev = map_get(taken, nm);
        if (prev >= 0) {
            char q[NAME_BUF];
            return rs_fail(e, "nodes %d and %zu are both named %s (node names must be unique)", prev,
                           k, guard_quote(q, sizeof q, nm));
        }
        map_put(taken, nm, (int)k);
    }
    return 0;
}

static rs_model *build_model(const Onnx__ModelProto *mp, load_state *s, int input_ndim,
                             const int64_t *input_dims, int64_t opset, rs_err *e)
{
    const Onnx__GraphProto *g = s->g;
    name_map taken = {0};
    rs_model *m = model_alloc();
    if (!m || map_init(&taken, s->n_nodes) != 0)
        goto oom;
    if (unique_node_names(g, &taken, e) != 0)
        goto fail;
    m->opset = opset;
    m->graph_name = rs_strdup(g->name ? g->name : "");
    m->producer = rs_strdup(mp->producer_name ? mp->producer_name : "");
    m->values = calloc(s->n_values, sizeof *m->values);
    m->nodes = calloc(s->n_nodes, sizeof *m->nodes);
    if (!m->graph_name || !m->producer || !m->values || !m->nodes)
        goto oom;
    m->cap_values = (int)s->n_values;
    m->cap_nodes = (int)s->n_nodes;

    for (size_t v = 0; v < s->n_values; ++v) {
        rs_value *val = &m->values[v];
        val->dtype = RS_DT_FLOAT;
        val->name = rs_strdup(s->vname[v]);
        m->n_values = (int)v + 1;
        if (!val->name)
            goto oom;
    }
    m->input = 0;
    m->values[0].ndim = input_ndim;
    memcpy(m->values[0].dims, input_dims, (size_t)input_ndim * sizeof *input_dims);
    for (size_t i = 0; i < s->n_init; ++i)
        if (load_tensor(&m->values[s->init_value[i]], g->initializer[i], s->init_numel[i], e) != 0)
            goto fail;
    for (size_t i = 0; i < s->n_nodes; ++i)
        if (s->const_value[i] >= 0 &&
            load_tensor(&m->values[s->const_value[i]], &s->const_tensor[i], s->const_numel[i], e) != 0)
            goto fail;
    for (size_t k = 0; k < s->n_nodes; ++k) {
        int i = s->order[k];
        if (s->const_value[i] >= 0)
            continue;
        rs_node *n = &m->nodes[m->n_nodes];
        *n = s->nodes[i];
        n->name = node_name(&taken, g->node[i], n->op, (size_t)i);
        m->n_nodes++;
        if (!n->name)
            goto oom;
    }
    m->output = map_get(&s->names, g->output[0]->name);
    map_free(&taken);
    return m;
oom:
    rs_fail(e, "out of memory");
fail:
    map_free(&taken);
    model_free(m);
    return NULL;
}

/* ---- reading: protobuf wire pre-check ----------------------------------------------------------- */

static int read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return -1;
        uint8_t byte = p[(*pos)++];
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* What decoding a buffer would cost, measured on the wire format before protobuf-c decodes it. */
typedef struct wire_cost {
    int depth;  /* deepest sub-message nesting (stops counting past ONNX_MAX_DEPTH) */
    size_t mem; /* upper estimate of the bytes protobuf-c will allocate */
} wire_cost;

static void cost_add(wire_cost *c, size_t bytes)
{
    c->mem = bytes > SIZE_MAX - c->mem ? SIZE_MAX : c->mem + bytes;
}

static int is_varint_type(ProtobufCType t)
{
    return t != PROTOBUF_C_TYPE_FLOAT && t != PROTOBUF_C_TYPE_DOUBLE && t != PROTOBUF_C_TYPE_FIXED32 &&
           t != PROTOBUF_C_TYPE_FIXED64 && t != PROTOBUF_C_TYPE_SFIXED32 && t != PROTOBUF_C_TYPE_SFIXED64;
}

/* Walks the wire format with the schema (protobuf-c's descriptors): each byte is read once and
 * the walk's own recursion stops at ONNX_MAX_DEPTH. Returns -1 if the bytes are not well-formed
 * protobuf. Allocation estimate per field occurrence: a message costs its struct plus malloc and
 * pointer overhead; strings and bytes their length plus overhead; a packed varint list up to 8
 * bytes per wire byte (1-byte varints widen to int64); unknown fields are kept by protobuf-c. */
static int wire_walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, int depth,
                     wire_cost *c)
{
    enum { OVERHEAD = 32 };
    if (depth > c->depth)
        c->depth = depth;
    cost_add(c, d->sizeof_message + OVERHEAD);
    size_t pos = 0;
    while (pos < len) {
        uint64_t key, n;
        if (read_varint(p, len, &pos, &key) != 0)
            return -1;
        const ProtobufCFieldDescriptor *f =
            key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
        size_t start = pos;
        switch (key & 7) {
        case 0:
            if (read_varint(p, len, &pos, &n) != 0)
                return -1;
            break;
        case 1:
        case 5: {
            size_t width = (key & 7) == 1 ? 8 : 4;
            if (len - pos < width)
                return -1;
            pos += width;
            break;
        }
        case 2:
            if (read_varint(p, len, &pos, &n) != 0 || n > len - pos)
                return -1;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth + 1 > ONNX_MAX_DEPTH) {
                    c->depth = depth + 1;
                    return 0;
                }
                cost_add(c, sizeof(void *));
                if (wire_walk(f->descriptor, p + pos, (size_t)n, depth + 1, c) != 0)
                    return -1;
                if (c->depth > ONNX_MAX_DEPTH)
                    return 0;
            } else if (f && f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_BYTES &&
                       is_varint_type(f->type)) {
                cost_add(c, 8 * (size_t)n + OVERHEAD);
            } else {
                cost_add(c, (size_t)n + OVERHEAD);
            }
            pos += (size_t)n;
            break;
        default: /* groups (3, 4) are not used by ONNX; 6, 7 do not exist */
            return -1;
        }
        if (!f) /* protobuf-c keeps a copy of every unknown field */
            cost_add(c, pos - start + OVERHEAD);
        else if ((key & 7) != 2)
            cost_add(c, 8);
    }
    return 0;
}

/* ---- reading: rewrites into the engine's op set ------------------------------------------------
 * PyTorch exports carry things the engine represents differently. After building the model and
 * before shape inference:
 *   - Clip's min/max and Pad's pads/constant_value inputs (constants) move into node fields;
 *   - Reshape(x, Concat(Unsqueeze(Gather(Shape(x'), 0)), [-1])) — x.view(x.size(0), -1) — becomes
 *     Flatten(x) (every shape except the batch is static);
 *   - a Pad whose only reader is a Conv (or an AveragePool counting pads without ceil_mode, or
 *     any node when it pads nothing) is folded into that reader's pads;
 *   - a BatchNormalization whose input is a Conv output read by nothing else is folded into the
 *     Conv: W' = W·γ/√(σ²+ε), b' = (b−μ)·γ/√(σ²+ε) + β;
 *   - Shape/Gather/Unsqueeze/Concat nodes left without readers are removed, then unused values.
 * Every pass is linear in the graph size (graph_index), whatever the file holds. */

#define SHAPE_BATCH INT64_MIN /* the batch entry of a shape vector, unknown until run time */

static const rs_value *const_of(const rs_model *m, int v, int dtype)
{
    if (v < 0 || v >= m->n_values || !m->values[v].is_const || m->values[v].dtype != dtype)
        return NULL;
    const rs_value *c = &m->values[v];
    return (dtype == RS_DT_FLOAT ? (const void *)c->f : (const void *)c->i64) ? c : NULL;
}

#define SIMPLIFY_FAIL(e, n, ...)                                                               \
    do {                                                                                       \
        char why_[RS_ERR_LEN];                                                                 \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                             \
        return rs_fail(e, "node \"%s\" (%s): %s", (n)->name, model_op_name((n)->op), why_);   \
    } while (0)

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
                    SIMPLIFY_FAIL(e, n, "input %d (%s) must be a finite float scalar constant", k,
                                  k == 1 ? "min" : "max");
                *(k == 1 ? &n->clip_min : &n->clip_max) = c->f[0];
            }
            n->n_in = 1;
        } else if (n->op == RS_OP_PAD && n->n_in > 1) {
            const rs_value *p = n->in[1] >= 0 ? const_of(m, n->in[1], RS_DT_INT64) : NULL;
            if (!p || model_value_numel(p) != 8)
                SIMPLIFY_FAIL(e, n, "pads must be an int64 constant of 8 values (N,C,H,W)");
            const int64_t *q = p->i64;
            if (q[0] || q[1] || q[4] || q[5])
                SIMPLIFY_FAIL(e, n, "only spatial (H, W) padding is supported");
            for (int k = 0; k < 8; ++k)
                if (q[k] < 0 || q[k] > ONNX_MAX_SPATIAL)
                    SIMPLIFY_FAIL(e, n, "pad %lld out of range 0..%d", (long long)q[k], ONNX_MAX_SPATIAL);
            n->pads[0] = q[2], n->pads[1] = q[3], n->pads[2] = q[6], n->pads[3] = q[7];
            if (n->n_in > 2 && n->in[2] >= 0) {
                const rs_value *c = const_of(m, n->in[2], RS_DT_FLOAT);
                if (!c || model_value_numel(c) != 1 || c->f[0] != 0.0f)
                    SIMPLIFY_FAIL(e, n, "only zero padding is supported (constant_value)");
            }
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
            SIMPLIFY_FAIL(e, bn, "input %d must be a float initializer of %lld elements", k + 1,
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
            SIMPLIFY_FAIL(e, bn, "channel %lld: scale is not finite (variance %g)", (long long)o,
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

static int simplify(rs_model *m, unsigned flags, rs_err *e)
{
    if (fold_operand_inputs(m, e) != 0)
        return -1;
    graph_index gi = {0};
    if (graph_index_build(m, &gi) != 0) {
        graph_index_free(&gi);
        return rs_fail(e, "out of memory");
    }
    int rc = 0;
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
    /* forward: folds look back at a producer (BN) or ahead at the only reader (Pad) */
    for (int i = 0; i < m->n_nodes && rc == 0; ++i) {
        if (m->nodes[i].op == RS_OP_PAD)
            fold_pad(m, &gi, i);
        else if (m->nodes[i].op == RS_OP_BATCHNORM && !(flags & ONNX_LOAD_KEEP_BATCHNORM))
            rc = fold_batchnorm(m, &gi, i, e);
    }
    /* backward: shape computations nothing reads any more (the Flatten rewrite's leftovers) */
    for (int i = m->n_nodes - 1; i >= 0 && rc == 0; --i) {
        rs_node *n = &m->nodes[i];
        if (gi.dead[i] || !(is_shape_op(n->op) || n->op == RS_OP_CONCAT) || n->n_out != 1 ||
            gi.uses[n->out[0]] != 0)
            continue;
        gi.dead[i] = 1;
        for (int k = 0; k < n->n_in; ++k)
            if (n->in[k] >= 0)
                gi.uses[n->in[k]]--;
    }
    int w = 0;
    for (int i = 0; i < m->n_nodes; ++i) {
        if (gi.dead[i]) {
            free(m->nodes[i].name);
            continue;
        }
        m->nodes[w++] = m->nodes[i];
    }
    m->n_nodes = w;
    graph_index_free(&gi);
    if (rc != 0)
        return -1;
    for (int i = 0; i < m->n_nodes; ++i) {
        rs_node *n = &m->nodes[i];
        if (is_shape_op(n->op))
            SIMPLIFY_FAIL(e, n, "only supported inside the x.view(x.size(0), -1) / flatten pattern "
                          "(Shape -> Gather(0) -> Unsqueeze -> Concat with -1 -> Reshape)");
    }
    model_gc(m);
    return 0;
}

rs_model *onnx_load_buffer(const uint8_t *buf, size_t len, const char *label, rs_err *e)
{
    return onnx_load_buffer_ex(buf, len, label, 0, e);
}

rs_model *onnx_load_buffer_ex(const uint8_t *buf, size_t len, const char *label, unsigned flags,
                              rs_err *e)
{
    if (!label)
        label = "onnx";
    char lb[256];
    clean(lb, sizeof lb, label);
    if (!buf && len) {
        rs_fail(e, "%s: no data", lb);
        return NULL;
    }
    wire_cost cost = {0, 0};
    int wire_ok = wire_walk(&onnx__model_proto__descriptor, buf, len, 0, &cost) == 0;
    if (wire_ok && cost.depth > ONNX_MAX_DEPTH) {
        rs_fail(e, "%s: messages nested more than %d deep (hostile or corrupt file)", lb, ONNX_MAX_DEPTH);
        return NULL;
    }
    /* A real model decodes to about its own size (weights dominate); many tiny messages can
     * cost 50x their bytes, so anything far beyond the file's size is refused up front. */
    size_t budget = len > (RS_MAX_ALLOC - ONNX_DECODE_SLACK) / 2 ? RS_MAX_ALLOC : 2 * len + ONNX_DECODE_SLACK;
    if (wire_ok && cost.mem > budget) {
        rs_fail(e, "%s: decoding would allocate about %zu MiB for %zu bytes of file (hostile or corrupt)",
                lb, cost.mem >> 20, len);
        return NULL;
    }
    Onnx__ModelProto *mp = wire_ok ? onnx__model_proto__unpack(NULL, len, buf) : NULL;
    if (!mp) {
        rs_fail(e, "%s: not a valid ONNX model (protobuf decoding failed: truncated or not ONNX)", lb);
        return NULL;
    }
    rs_model *m = NULL;
    load_state s = {0};
    int64_t opset, input_dims[RS_MAXDIM] = {0};
    int input_ndim = 0;
    if (!mp->graph) {
        rs_fail(e, "%s: the model has no graph", lb);
        goto out;
    }
    s.g = mp->graph;
    if (opset_of(mp, &opset, e) != 0 || analyse(&s, &input_ndim, input_dims, e) != 0) {
        rs_failctx(e, "%s", lb);
        goto out;
    }
    m = build_model(mp, &s, input_ndim, input_dims, opset, e);
    if (!m) {
        rs_failctx(e, "%s", lb);
        goto out;
    }
    if (simplify(m, flags, e) != 0 || model_infer_shapes(m, e) != 0) {
        rs_failctx(e, "%s", lb);
        model_free(m);
        m = NULL;
    }
out:
    load_state_free(&s);
    onnx__model_proto__free_unpacked(mp, NULL);
    return m;
}

rs_model *onnx_load(const char *path, rs_err *e)
{
    return onnx_load_ex(path, 0, e);
}

rs_model *onnx_load_ex(const char *path, unsigned flags, rs_err *e)
{
    uint8_t *buf;
    size_t len;
    if (fileio_read_all(path, ONNX_MAX_FILE, &buf, &len, e) != 0)
        return NULL;
    rs_model *m = onnx_load_buffer_ex(buf, len, path, flags, e);
    free(buf);
    return m;
}

/* ---- writing ----------------------------------------------------------------------------------- */

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

/* Every attribute is written explicitly (no reliance on defaults that differ across opsets). */
static int write_attributes(arena *a, const rs_model *m, const rs_node *n, Onnx__NodeProto *np)
{
    Onnx__AttributeProto **at = arena_alloc(a, 8 * sizeof *at);
    if (!at)
        return -1;
    size_t k = 0;
    int64_t kernel[2] = {n->kernel[0], n->kernel[1]};
    if (n->op == RS_OP_CONV && (kernel[0] < 1 || kernel[1] < 1) && n->n_in > 1 && n->in[1] >= 0 &&
        m->values[n->in[1]].ndim == 4) {
        kernel[0] = m->values[n->in[1]].dims[2];
        kernel[1] = m->values[n->in[1]].dims[3];
    }
    switch (n->op) {
    case RS_OP_AVGPOOL: /* opset 13 AveragePool has no dilations */
        at[k++] = attr_ints_new(a, "kernel_shape", kernel, 2);
        at[k++] = attr_ints_new(a, "strides", n->strides, 2);
        at[k++] = attr_ints_new(a, "pads", n->pads, 4);
        at[k++] = attr_string_new(a, "auto_pad", "NOTSET");
        at[k++] = attr_int_new(a, "ceil_mode", n->ceil_mode);
        at[k++] = attr_int_new(a, "count_include_pad", n->count_include_pad);
        break;
    case RS_OP_BATCHNORM:
        at[k++] = attr_float_new(a, "epsilon", n->epsilon);
        break;
    case RS_OP_SOFTMAX:
    case RS_OP_CONCAT:
        at[k++] = attr_int_new(a, "axis", n->axis);
        break;
    case RS_OP_PAD:
        at[k++] = attr_string_new(a, "mode", "constant");
        break;
    case RS_OP_CONV:
    case RS_OP_MAXPOOL:
        if (kernel[0] >= 1 && kernel[1] >= 1)
            at[k++] = attr_ints_new(a, "kernel_shape", kernel, 2);
        at[k++] = attr_ints_new(a, "strides", n->strides, 2);
        at[k++] = attr_ints_new(a, "pads", n->pads, 4);
        at[k++] = attr_ints_new(a, "dilations", n->dilations, 2);
        at[k++] = attr_string_new(a, "auto_pad", "NOTSET");
        if (n->op == RS_OP_CONV) {
            at[k++] = attr_int_new(a, "group", n->group);
        } else {
            at[k++] = attr_int_new(a, "ceil_mode", n->ceil_mode);
            at[k++] = attr_int_new(a, "storage_order", 0);
        }
        break;
    case RS_OP_GEMM:
        at[k++] = attr_float_new(a, "alpha", n->alpha);
        at[k++] = attr_float_new(a, "beta", n->beta);
        at[k++] = attr_int_new(a, "transA", n->trans_a);
        at[k++] = attr_int_new(a, "transB", n->trans_b);
        break;
    case RS_OP_FLATTEN:
        at[k++] = attr_int_new(a, "axis", n->axis);
        break;
    default: /* Reshape's allowzero only exists from opset 14; its opset-13 meaning is 0 */
        break;
    }
    for (size_t i = 0; i < k; ++i)
        if (!at[i])
            return -1;
    np->n_attribute = k;
    np->attribute = at;
    return 0;
}

/* Opset 13 takes Clip's bounds and Pad's pads as inputs; the engine keeps them in node fields,
 * so the writer adds them as initializers named "<node>_min" / "_max" / "_pads" (made unique). */
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

/* Extra inputs node n needs in opset 13: their names into in[], tensors appended to g. */
static int synth_inputs(arena *a, const rs_model *m, const rs_node *n, char **in, int *n_in,
                        Onnx__GraphProto *g)
{
    if (n->op == RS_OP_CLIP) {
        float lim[2] = {n->clip_min, n->clip_max};
        const char *suf[2] = {"_min", "_max"};
        *n_in = 1;
        for (int k = 0; k < 2; ++k) {
            if (isinf(lim[k])) {
                in[(*n_in)++] = empty_string;
                continue;
            }
            char *name = synth_name(a, m, n->name ? n->name : "clip", suf[k]);
            Onnx__TensorProto *t = name ? synth_tensor(a, name, RS_DT_FLOAT, 1, 0, &lim[k]) : NULL;
            if (!t)
                return -1;
            g->initializer[g->n_initializer++] = t;
            in[(*n_in)++] = name;
        }
        while (*n_in > 1 && in[*n_in - 1] == empty_string)
            --*n_in;
    } else if (n->op == RS_OP_PAD) {
        int64_t p8[8] = {0, 0, n->pads[0], n->pads[1], 0, 0, n->pads[2], n->pads[3]};
        char *name = synth_name(a, m, n->name ? n->name : "pad", "_pads");
        Onnx__TensorProto *t = name ? synth_tensor(a, name, RS_DT_INT64, 8, 1, p8) : NULL;
        if (!t)
            return -1;
        g->initializer[g->n_initializer++] = t;
        in[1] = name;
        *n_in = 2;
    }
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
    if ((n->op == RS_OP_CLIP || n->op == RS_OP_PAD) && synth_inputs(a, m, n, in, &n_in, g) != 0)
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
    name_map seen = {0};
    if (map_init(&seen, (size_t)m->n_values) != 0) {
        map_free(&seen);
        return rs_fail(e, "onnx: out of memory");
    }
    for (int v = 0; v < m->n_values; ++v) {
        const char *name = m->values[v].name;
        if (empty(name) || map_put(&seen, name, v) >= 0) {
            char nb[NAME_BUF];
            map_free(&seen);
            if (empty(name))
                return rs_fail(e, "onnx: value %d has no name", v);
            return rs_fail(e, "onnx: two values are named \"%s\"", clean(nb, sizeof nb, name));
        }
    }
    map_free(&seen);

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
    mp.has_ir_version = 1;
    mp.ir_version = ONNX_WRITE_IR_VERSION;
    mp.n_opset_import = 1;
    mp.opset_import = opsets;
    mp.producer_name = (char *)(uintptr_t)"rankscope";
    mp.graph = &g;
    g.name = (char *)(uintptr_t)(!empty(m->graph_name) ? m->graph_name : "rankscope");

    Onnx__ValueInfoProto *in_vi = write_value_info(&a, &m->values[m->input]);
    Onnx__ValueInfoProto *out_vi = write_value_info(&a, &m->values[m->output]);
    size_t n_init = 0;
    for (int v = 0; v < m->n_values; ++v)
        n_init += m->values[v].is_const != 0;
    for (int i = 0; i < m->n_nodes; ++i) /* initializers synth_inputs adds */
        n_init += m->nodes[i].op == RS_OP_CLIP ? 2 : m->nodes[i].op == RS_OP_PAD;
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
        rs_failctx(e, "%s", clean(pb, sizeof pb, path ? path : ""));
        return -1;
    }
    int rc = fileio_write_atomic(path, buf, len, e);
    free(buf);
    return rc;
}
