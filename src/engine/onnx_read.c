/* onnx_read.c — ONNX ModelProto -> rs_model, through protobuf-c code generated from onnx.proto.
 *
 * Loading happens in passes so that nothing is allocated from a declared size before it has been
 * checked against the bytes actually present:
 *   0. walk the wire format with the schema (onnx_wire.c): nesting depth (protobuf-c recursion is
 *      unbounded) and the memory decoding would take (tiny messages expand ~50x) are bounded first;
 *   1. unpack the protobuf (protobuf-c allocates only for what the bytes contain);
 *   2. check initializers (type, dims > 0, size within RS_MAX_ALLOC, data length = dims product),
 *      the single graph input and output, and every node (op, arity, attributes);
 *   3. resolve names to value indices (dangling inputs, duplicate outputs), sort topologically
 *      (cycles), and only then build the rs_model and copy the tensor data;
 *   4. rewrite export idioms into the engine's ops (passes.c), then model_infer_shapes.
 */
#include "rankscope/onnx.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"
#include "rankscope/fileio.h"
#include "rankscope/guard.h"
#include "rankscope/ops.h"
#include "rankscope/passes.h"

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
/* Opsets whose semantics for the supported ops match what the engine implements. */
#define ONNX_MIN_OPSET 7
#define ONNX_MAX_OPSET 22

/* ---- small helpers ---------------------------------------------------------------------------- */

/* Copy s into dst for an error message: control bytes become '?', long names are cut, so every
 * message stays one line whatever the file contains. */
const char *onnx_clean(char *dst, size_t cap, const char *s)
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

int onnx_empty(const char *s)
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
    const char *name = onnx_empty(np->name) ? pos : onnx_clean(nb, sizeof nb, np->name);
    char opb[2 * NAME_BUF + 2];
    if (!onnx_empty(np->domain) && strcmp(np->domain, "ai.onnx") != 0) {
        char db[NAME_BUF];
        snprintf(opb, sizeof opb, "%s:%s", onnx_clean(db, sizeof db, np->domain),
                 onnx_clean(ob, sizeof ob, np->op_type));
    } else {
        snprintf(opb, sizeof opb, "%s", onnx_clean(ob, sizeof ob, onnx_empty(np->op_type) ? "?" : np->op_type));
    }
    return rs_fail(e, "node \"%s\" (%s): %s", name, opb, why);
}


/* ---- name -> index hash map (open addressing, keys borrowed) ---------------------------------- */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; ++s)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int onnx_map_init(onnx_name_map *h, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 1)
        cap *= 2;
    h->cap = cap;
    h->keys = calloc(cap, sizeof *h->keys);
    h->vals = calloc(cap, sizeof *h->vals);
    return h->keys && h->vals ? 0 : -1;
}

void onnx_map_free(onnx_name_map *h)
{
    free(h->keys);
    free(h->vals);
}

int onnx_map_get(const onnx_name_map *h, const char *key)
{
    for (size_t i = hash_name(key) & (h->cap - 1);; i = (i + 1) & (h->cap - 1)) {
        if (!h->keys[i])
            return -1;
        if (strcmp(h->keys[i], key) == 0)
            return h->vals[i];
    }
}

/* The map is sized for every key up front, so it never fills. */
int onnx_map_put(onnx_name_map *h, const char *key, int val)
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
    const char *name = onnx_clean(nb, sizeof nb, t->name);
    if (onnx_empty(t->name))
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
    const char *name = onnx_clean(nb, sizeof nb, vi->name);
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
    size_t n_out; /* outputs, trailing empty names stripped */
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
    const char *an = onnx_clean(ab, sizeof ab, a->name);
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
    const char *an = onnx_clean(ab, sizeof ab, a->name);
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT))
        return node_fail(c->e, c->np, c->idx, "attribute \"%s\" must be an int", an);
    if (a->i < lo || a->i > hi)
        return node_fail(c->e, c->np, c->idx, "unsupported attribute \"%s\" = %lld (supported: %lld..%lld)",
                         an, (long long)a->i, (long long)lo, (long long)hi);
    *out = a->i;
    return 0;
}

/* A list of axes (ReduceMean/ReduceSum axes, Transpose perm): at most RS_MAXDIM, each in -RS_MAXDIM..RS_MAXDIM-1;
 * shape inference checks them against the input. */
static int attr_axes(const attr_ctx *c, const Onnx__AttributeProto *a, rs_node *n)
{
    char ab[NAME_BUF], vb[160];
    const char *an = onnx_clean(ab, sizeof ab, a->name);
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS))
        return node_fail(c->e, c->np, c->idx, "attribute \"%s\" must be a list of ints", an);
    format_ints(vb, sizeof vb, a->ints, a->n_ints > RS_MAXDIM + 1 ? RS_MAXDIM + 1 : a->n_ints);
    if (a->n_ints > RS_MAXDIM)
        return node_fail(c->e, c->np, c->idx, "unsupported attribute \"%s\" = %s (at most %d axes)",
                         an, vb, RS_MAXDIM);
    for (size_t i = 0; i < a->n_ints; ++i)
        if (a->ints[i] < -RS_MAXDIM || a->ints[i] >= RS_MAXDIM)
            return node_fail(c->e, c->np, c->idx, "unsupported attribute \"%s\" = %s (axis out of range)",
                             an, vb);
    n->n_axes = (int)a->n_ints;
    memcpy(n->axes, a->ints, a->n_ints * sizeof *n->axes);
    return 0;
}

static int attr_float(const attr_ctx *c, const Onnx__AttributeProto *a, float *out)
{
    char ab[NAME_BUF];
    const char *an = onnx_clean(ab, sizeof ab, a->name);
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
                         onnx_clean(vb, sizeof vb, raw));
    return 0;
}

static int unsupported_attr(const attr_ctx *c, const Onnx__AttributeProto *a)
{
    char ab[NAME_BUF];
    return node_fail(c->e, c->np, c->idx, "unsupported attribute \"%s\"", onnx_clean(ab, sizeof ab, a->name));
}


static const rs_attr *find_attr(const rs_attr *rows, const char *name, const Onnx__NodeProto *np)
{
    for (const rs_attr *r = rows; r && r->name; ++r)
        if (strcmp(r->name, name) == 0 &&
            (!(r->flags & RS_ATTR_DROPOUT) || (np->op_type && strcmp(np->op_type, "Dropout") == 0)))
            return r;
    return NULL;
}

/* One attribute by its schema row r (rankscope/ops.h) into n; *valid_pad notes auto_pad VALID. */
static int read_attr(const attr_ctx *c, const Onnx__AttributeProto *a, const rs_attr *r, rs_node *n,
                     int *valid_pad)
{
    const Onnx__NodeProto *np = c->np;
    char *field = (char *)n + r->offset;
    int64_t iv = 0;
    float fv = 0.0f;
    int rc = 0;
    switch ((rs_attr_kind)r->kind) {
    case RS_ATTR_INT:
    case RS_ATTR_DTYPE:
    case RS_ATTR_N_OUTPUTS:
        rc = attr_int(c, a, r->lo, r->hi, &iv);
        if (rc == 0 && r->kind == RS_ATTR_DTYPE && iv != RS_DT_FLOAT && iv != RS_DT_INT64)
            rc = node_fail(c->e, np, c->idx, "unsupported attribute \"%s\" = %lld (float, "
                           "or int64 in a shape computation)", r->name, (long long)iv);
        if (rc == 0 && r->kind == RS_ATTR_N_OUTPUTS && iv != (int64_t)c->n_out)
            rc = node_fail(c->e, np, c->idx, "attribute \"%s\" = %lld differs from the %zu outputs",
                           r->name, (long long)iv, np->n_output);
        if (r->field == RS_FIELD_I64)
            memcpy(field, &iv, sizeof iv);
        else if (r->field == RS_FIELD_INT)
            *(int *)(void *)field = (int)iv;
        return rc;
    case RS_ATTR_FLOAT:
        rc = attr_float(c, a, &fv);
        if (r->field == RS_FIELD_FLOAT)
            *(float *)(void *)field = fv;
        return rc;
    case RS_ATTR_ZERO:
        rc = attr_float(c, a, &fv);
        if (rc == 0 && fv != 0.0f)
            rc = node_fail(c->e, np, c->idx, "%s (%s = %g)", r->text, r->name, (double)fv);
        return rc;
    case RS_ATTR_INTS:
    case RS_ATTR_KERNEL:
        return attr_ints(c, a, r->count, r->lo, r->hi, (int64_t *)(void *)field);
    case RS_ATTR_PADS8: {
        int64_t p8[8];
        rc = attr_ints(c, a, 8, r->lo, r->hi, p8);
        if (rc == 0 && (p8[0] || p8[1] || p8[4] || p8[5]))
            rc = node_fail(c->e, np, c->idx, "only spatial (H, W) padding is supported");
        n->pads[0] = p8[2], n->pads[1] = p8[3], n->pads[2] = p8[6], n->pads[3] = p8[7];
        return rc;
    }
    case RS_ATTR_AXES:
        return attr_axes(c, a, n);
    case RS_ATTR_SIZES:
        rc = attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) && a->n_ints <= RS_MAXIO
                 ? 0
                 : node_fail(c->e, np, c->idx, "attribute \"%s\" must list at most %d sizes", r->name,
                             RS_MAXIO);
        for (size_t k = 0; rc == 0 && k < a->n_ints; ++k)
            if (a->ints[k] < r->lo || a->ints[k] > r->hi)
                rc = node_fail(c->e, np, c->idx, "unsupported attribute \"%s\": size %lld", r->name,
                               (long long)a->ints[k]);
        if (rc == 0) {
            n->n_axes = (int)a->n_ints;
            memcpy(n->axes, a->ints, a->n_ints * sizeof *n->axes);
        }
        return rc;
    case RS_ATTR_AUTO_PAD:
        return attr_auto_pad(c, a, valid_pad);
    case RS_ATTR_STRING:
        if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING) || a->s.len != strlen(r->text) ||
            memcmp(a->s.data, r->text, a->s.len) != 0)
            return node_fail(c->e, np, c->idx, "only attribute \"%s\" = %s is supported", r->name, r->text);
        return 0;
    case RS_ATTR_AXIS0:
        if (attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) && a->n_ints == 1 &&
            (a->ints[0] == 0 || a->ints[0] == -1))
            return 0;
        return unsupported_attr(c, a);
    case RS_ATTR_ANY:
        return 0;
    }
    return unsupported_attr(c, a);
}

/* Parses the node's attributes into n (defaults already applied) by the op's schema. */
static int parse_attributes(const attr_ctx *c, rs_node *n)
{
    const Onnx__NodeProto *np = c->np;
    if (np->n_attribute > ONNX_MAX_ATTRS)
        return node_fail(c->e, np, c->idx, "%zu attributes (limit %d)", np->n_attribute, ONNX_MAX_ATTRS);
    const rs_op_desc *d = ops_get(n->op);
    const rs_attr *rows = d ? d->attrs : NULL;
    unsigned long seen = 0; /* bit i: rows[i] was given */
    int valid_pad = 0;
    for (size_t i = 0; i < np->n_attribute; ++i) {
        const Onnx__AttributeProto *a = np->attribute[i];
        const char *an = a->name ? a->name : "";
        if (!onnx_empty(a->ref_attr_name))
            return node_fail(c->e, np, c->idx, "attribute \"%s\" refers to a function attribute", an);
        const rs_attr *r = find_attr(rows, an, np);
        if (!r)
            return unsupported_attr(c, a);
        if (read_attr(c, a, r, n, &valid_pad) != 0)
            return -1;
        seen |= 1ul << (r - rows);
    }
    if (valid_pad && (n->pads[0] || n->pads[1] || n->pads[2] || n->pads[3]))
        return node_fail(c->e, np, c->idx, "attributes \"auto_pad\" = VALID and non-zero \"pads\" conflict");
    for (const rs_attr *r = rows; r && r->name; ++r)
        if ((r->flags & RS_ATTR_REQUIRED) && !(seen & (1ul << (r - rows))))
            return node_fail(c->e, np, c->idx, "missing attribute \"%s\"", r->name);
    return 0;
}

/* Inputs/outputs each op accepts (trailing empty names already stripped). */
static int check_arity(const attr_ctx *c, rs_op op, size_t n_in, size_t n_out)
{
    const rs_op_desc *d = ops_get(op);
    size_t lo = d ? (size_t)d->min_in : 1, hi = d ? (size_t)d->max_in : 1;
    if (n_in < lo || n_in > hi) {
        if (lo == hi)
            return node_fail(c->e, c->np, c->idx, "has %zu inputs, expected %zu", n_in, lo);
        return node_fail(c->e, c->np, c->idx, "has %zu inputs, expected %zu..%zu", n_in, lo, hi);
    }
    if (op == RS_OP_SPLIT && (n_out < 1 || n_out > RS_MAXIO))
        return node_fail(c->e, c->np, c->idx, "has %zu outputs, expected 1..%d", n_out, RS_MAXIO);
    if (n_out != 1 && op != RS_OP_SPLIT)
        return node_fail(c->e, c->np, c->idx, "has %zu outputs, expected 1%s", n_out,
                         op == RS_OP_MAXPOOL ? " (the Indices output is not supported)" : "");
    return 0;
}

static size_t strip_trailing_empty(char *const *names, size_t n)
{
    while (n > 0 && onnx_empty(names[n - 1]))
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
    onnx_name_map names;
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
    onnx_map_free(&s->names);
}

static int opset_of(const Onnx__ModelProto *mp, int64_t *opset, rs_err *e)
{
    *opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; ++i) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (o && (onnx_empty(o->domain) || strcmp(o->domain, "ai.onnx") == 0))
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
    if (np->n_input != 0 || np->n_output != 1 || onnx_empty(np->output[0]))
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
        return node_fail(e, np, i, "unsupported attribute \"%s\"", onnx_clean(nb, sizeof nb, a->name));
    }
    t->name = np->output[0];
    if (check_tensor(t, &s->const_numel[i], e) != 0)
        return rs_failctx(e, "Constant node #%zu", i);
    if (onnx_map_put(&s->names, np->output[0], (int)*nv) >= 0)
        return node_fail(e, np, i, "output \"%s\" is already defined", onnx_clean(nb, sizeof nb, np->output[0]));
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
        onnx_map_init(&s->names, cap_values + g->n_input) != 0)
        return rs_fail(e, "out of memory");

    /* initializers */
    size_t nv = 1;
    for (size_t i = 0; i < s->n_init; ++i) {
        const Onnx__TensorProto *t = g->initializer[i];
        if (check_tensor(t, &s->init_numel[i], e) != 0)
            return -1;
        if (onnx_map_put(&s->names, t->name, (int)nv) >= 0)
            return rs_fail(e, "initializer \"%s\" is defined twice", onnx_clean(nb, sizeof nb, t->name));
        s->init_value[i] = (int)nv;
        s->vname[nv] = t->name;
        s->producer[nv] = -1;
        ++nv;
    }

    /* the single real graph input: older exporters also list initializers as inputs */
    const Onnx__ValueInfoProto *input = NULL;
    for (size_t i = 0; i < g->n_input; ++i) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        if (onnx_empty(vi->name))
            return rs_fail(e, "graph input %zu has no name", i);
        if (onnx_map_get(&s->names, vi->name) >= 0)
            continue;
        if (input)
            return rs_fail(e, "graph has more than one input (\"%s\", \"%s\"); rankscope needs exactly one",
                           onnx_clean(nb, sizeof nb, input->name), onnx_clean(nb2, sizeof nb2, vi->name));
        input = vi;
    }
    if (!input)
        return rs_fail(e, "graph has no input besides initializers");
    if (check_input(input, input_ndim, input_dims, e) != 0)
        return -1;
    onnx_map_put(&s->names, input->name, 0);
    s->vname[0] = input->name;
    s->producer[0] = -1;

    if (g->n_output != 1)
        return rs_fail(e, "graph has %zu outputs; rankscope needs exactly one", g->n_output);
    if (onnx_empty(g->output[0]->name))
        return rs_fail(e, "graph output has no name");

    /* nodes: op, arity, attributes, outputs */
    for (size_t i = 0; i < s->n_nodes; ++i) {
        const Onnx__NodeProto *np = g->node[i];
        attr_ctx c = {np, i, 0, e};
        rs_node *n = &s->nodes[i];
        int std_domain = onnx_empty(np->domain) || strcmp(np->domain, "ai.onnx") == 0;
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
        c.n_out = n_out;
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
            if (onnx_empty(on))
                return node_fail(e, np, i, "output %zu has no name", k);
            int prev = onnx_map_put(&s->names, on, (int)nv);
            if (prev >= 0) {
                const char *what = prev == 0 ? "the graph input"
                                   : s->producer[prev] < 0 ? "an initializer"
                                                           : "another node";
                return node_fail(e, np, i, "output \"%s\" is already produced by %s",
                                 onnx_clean(nb, sizeof nb, on), what);
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
            if (onnx_empty(np->input[k])) {
                n->in[k] = -1; /* omitted optional input */
                continue;
            }
            int v = onnx_map_get(&s->names, np->input[k]);
            if (v < 0)
                return node_fail(e, np, i,
                                 "input \"%s\" is not produced by any node, initializer or graph input",
                                 onnx_clean(nb, sizeof nb, np->input[k]));
            n->in[k] = v;
        }
    }
    int out_v = onnx_map_get(&s->names, g->output[0]->name);
    if (out_v < 0 || s->producer[out_v] < 0)
        return rs_fail(e, "graph output \"%s\" is not produced by any node",
                       onnx_clean(nb, sizeof nb, g->output[0]->name));

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
static char *node_name(onnx_name_map *taken, const Onnx__NodeProto *np, rs_op op, size_t idx)
{
    char buf[64];
    const char *want = np->name;
    if (onnx_empty(want)) {
        snprintf(buf, sizeof buf, "%s_%zu", model_op_name(op), idx);
        for (int k = 2; onnx_map_get(taken, buf) >= 0; ++k)
            snprintf(buf, sizeof buf, "%s_%zu_%d", model_op_name(op), idx, k);
        want = buf;
    }
    char *name = rs_strdup(want);
    if (name)
        onnx_map_put(taken, name, (int)idx);
    return name;
}

/* Plans, --ranks and the explorer address layers by node name: two nodes of one name would make
 * "fc1" mean whichever comes first, silently. Records every file-given name in taken. */
static int unique_node_names(const Onnx__GraphProto *g, onnx_name_map *taken, rs_err *e)
{
    for (size_t k = 0; k < g->n_node; ++k) {
        const char *nm = g->node[k]->name;
        if (onnx_empty(nm))
            continue;
        int prev = onnx_map_get(taken, nm);
        if (prev >= 0) {
            char q[NAME_BUF];
            return rs_fail(e, "nodes %d and %zu are both named %s (node names must be unique)", prev,
                           k, guard_quote(q, sizeof q, nm));
        }
        onnx_map_put(taken, nm, (int)k);
    }
    return 0;
}

static rs_model *build_model(const Onnx__ModelProto *mp, load_state *s, int input_ndim,
                             const int64_t *input_dims, int64_t opset, rs_err *e)
{
    const Onnx__GraphProto *g = s->g;
    onnx_name_map taken = {0};
    rs_model *m = model_alloc();
    if (!m || onnx_map_init(&taken, s->n_nodes) != 0)
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
    m->output = onnx_map_get(&s->names, g->output[0]->name);
    onnx_map_free(&taken);
    return m;
oom:
    rs_fail(e, "out of memory");
fail:
    onnx_map_free(&taken);
    model_free(m);
    return NULL;
}


rs_model *onnx_read_proto(const Onnx__ModelProto *mp, rs_err *e)
{
    if (!mp->graph) {
        rs_fail(e, "the model has no graph");
        return NULL;
    }
    load_state s = {0};
    int64_t opset, input_dims[RS_MAXDIM] = {0};
    int input_ndim = 0;
    s.g = mp->graph;
    rs_model *m = NULL;
    if (opset_of(mp, &opset, e) == 0 && analyse(&s, &input_ndim, input_dims, e) == 0)
        m = build_model(mp, &s, input_ndim, input_dims, opset, e);
    load_state_free(&s);
    return m;
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
    onnx_clean(lb, sizeof lb, label);
    if (!buf && len) {
        rs_fail(e, "%s: no data", lb);
        return NULL;
    }
    if (onnx_wire_guard(buf, len, lb, e) != 0)
        return NULL;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    if (!mp) {
        rs_fail(e, "%s: not a valid ONNX model (protobuf decoding failed: truncated or not ONNX)", lb);
        return NULL;
    }
    rs_model *m = onnx_read_proto(mp, e);
    if (!m) {
        rs_failctx(e, "%s", lb);
    } else if (passes_simplify(m, e) != 0 ||
               (!(flags & ONNX_LOAD_KEEP_BATCHNORM) && passes_fold_batchnorm(m, e) != 0) ||
               model_infer_shapes(m, e) != 0) {
        rs_failctx(e, "%s", lb);
        model_free(m);
        m = NULL;
    }
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
