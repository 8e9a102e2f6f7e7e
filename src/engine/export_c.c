/* export_c.c — a model as dependency-free C99 (model.h + model.c) with liveness-planned scratch.
 *
 * Three passes over the graph: check every node is one the generated code can run (collecting
 * its geometry), plan where each activation lives (in / out / an offset in scratch), then print
 * the weights and one helper call per node. The helpers' text (textbook loops, emitted only
 * when used) is in export_c_helpers.c. */
#include "rankscope/export.h"

#include <float.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_c_internal.h"
#include "ops_internal.h"
#include "rankscope/fileio.h"


/* ---- a growable text buffer ------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len <= (size_t)n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

static int plan_node(const rs_model *m, int ni, export_c_plan *p, rs_err *e)
{
    const rs_node *n = &m->nodes[ni];
    const char *op = model_op_name(n->op);
    const rs_op_desc *d = ops_get(n->op);
    p->x = p->x2 = p->w = p->b = -1;
    if (n->n_out < 1 || n->out[0] < 0 || n->n_in < 1)
        return rs_fail(e, "export: node %s (%s): missing input or output", n->name, op);
    /* Add / Sub / Mul / Div may take a constant first */
    if (!(d && d->const_first) && !export_c_is_act(m, n->in[0]))
        return rs_fail(e, "export: node %s (%s): first input must be an activation", n->name, op);
    if (!d || !d->c_plan)
        return rs_fail(e, "export: node %s: op %s is not supported by the C exporter", n->name,
                       op);
    return d->c_plan(m, n, p, e);
}

/* ---- pass 2: where each activation lives -------------------------------------------------- */

enum { LOC_NONE, LOC_IN, LOC_OUT, LOC_SCRATCH };

typedef struct mem_plan {
    int *root;      /* value -> representative of its storage class */
    int *last_use;  /* value -> index of the last node reading it */
    int *start;     /* root -> producing node */
    int *end;       /* root -> last node reading any member */
    int *loc;       /* root -> LOC_* */
    int64_t *off;   /* root -> offset in scratch (floats) */
    int64_t scratch;
    int copy_out;   /* the output aliases the input: copy in -> out at the end */
} mem_plan;

static void mem_free(mem_plan *mp)
{
    free(mp->root);
    free(mp->last_use);
    free(mp->start);
    free(mp->end);
    free(mp->loc);
    free(mp->off);
}

typedef struct sort_item {
    int root;
    int64_t size, start;
} sort_item;

static int sort_items(const void *pa, const void *pb)
{
    const sort_item *a = pa, *b = pb;
    if (a->size != b->size)
        return a->size > b->size ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return a->root - b->root;
}

static int mem_plan_build(const rs_model *m, const export_c_plan *ops, mem_plan *mp, rs_err *e)
{
    const int nv = m->n_values;
    size_t sz = (size_t)nv + 1;
    mp->root = malloc(sz * sizeof(int));
    mp->last_use = malloc(sz * sizeof(int));
    mp->start = malloc(sz * sizeof(int));
    mp->end = malloc(sz * sizeof(int));
    mp->loc = calloc(sz, sizeof(int));
    mp->off = calloc(sz, sizeof(int64_t));
    sort_item *items = malloc(sz * sizeof(sort_item));
    int *placed = malloc(sz * sizeof(int));
    if (!mp->root || !mp->last_use || !mp->start || !mp->end || !mp->loc || !mp->off || !items ||
        !placed) {
        free(items);
        free(placed);
        return rs_fail(e, "export: out of memory");
    }
    for (int v = 0; v < nv; ++v) {
        mp->root[v] = v;
        mp->last_use[v] = -1;
        mp->start[v] = mp->end[v] = -1;
    }
    for (int i = 0; i < m->n_nodes; ++i)
        for (int j = 0; j < m->nodes[i].n_in; ++j)
            if (export_c_is_act(m, m->nodes[i].in[j]))
                mp->last_use[m->nodes[i].in[j]] = i;
    mp->last_use[m->output] = INT_MAX;
    const int in_root = m->input;
    mp->start[in_root] = -1;
    mp->end[in_root] = mp->last_use[in_root];
    for (int i = 0; i < m->n_nodes; ++i) {
        const export_c_plan *p = &ops[i];
        const int out = m->nodes[i].out[0];
        int r = -1;
        if (p->kind == K_ALIAS) {
            r = mp->root[p->x];
        } else if (p->kind == K_RELU || p->kind == K_ADDC || p->kind == K_ADD2 ||
                   p->kind == K_CLIP || p->kind == K_AFFINE || p->kind == K_LEAKY ||
                   p->kind == K_BINARY || p->kind == K_UNARY) {
            /* BINARY's x2 may be smaller than the output: only x can hold it */
            const int cand[2] = {p->x, p->kind == K_BINARY ? -1 : p->x2};
            for (int k = 0; k < 2 && r < 0; ++k) {
                if (cand[k] < 0)
                    continue;
                int c = mp->root[cand[k]];
                if (c != in_root && mp->end[c] <= i)
                    r = c;
            }
        }
        if (r >= 0) {
            mp->root[out] = r;
            if (mp->last_use[out] > mp->end[r])
                mp->end[r] = mp->last_use[out];
        } else {
            mp->start[out] = i;
            mp->end[out] = mp->last_use[out] > i ? mp->last_use[out] : i;
        }
    }
    mp->loc[in_root] = LOC_IN;
    int out_root = mp->root[m->output];
    mp->copy_out = out_root == in_root;
    if (!mp->copy_out)
        mp->loc[out_root] = LOC_OUT;
    int n_items = 0;
    for (int v = 0; v < nv; ++v)
        if (mp->root[v] == v && !m->values[v].is_const && mp->start[v] >= 0 &&
            mp->loc[v] == LOC_NONE) {
            mp->loc[v] = LOC_SCRATCH;
            items[n_items++] = (sort_item){v, model_value_numel(&m->values[v]), mp->start[v]};
        }
    qsort(items, (size_t)n_items, sizeof *items, sort_items);
    int64_t peak = 0;
    for (int a = 0; a < n_items; ++a) {
        const int ra = items[a].root;
        const int64_t size = items[a].size;
        int64_t at = 0;
        /* first fit: lowest offset clear of every placed buffer alive at the same time */
        for (int moved = 1; moved;) {
            moved = 0;
            for (int b = 0; b < a; ++b) {
                const int rb = placed[b];
                if (mp->start[rb] > mp->end[ra] || mp->start[ra] > mp->end[rb])
                    continue;
                if (at < mp->off[rb] + items[b].size && mp->off[rb] < at + size) {
                    at = mp->off[rb] + items[b].size;
                    moved = 1;
                }
            }
        }
        mp->off[ra] = at;
        placed[a] = ra;
        if (at + size > peak)
            peak = at + size;
    }
    free(items);
    free(placed);
    if (!export_c_fits(peak))
        return rs_fail(e, "export: scratch of %lld floats is too large", (long long)peak);
    mp->scratch = peak;
    return 0;
}

/* ---- pass 3: text ----------------------------------------------------------------------- */

/* A float literal that round-trips: 9 significant digits, always with '.' or an exponent. */
static void float_lit(float f, char *buf, size_t len)
{
    snprintf(buf, len - 3, "%.9g", (double)f);
    if (!strpbrk(buf, ".e"))
        strcat(buf, ".0");
    strcat(buf, "f");
}

/* A C identifier for initializer v: "k<v>_" + its name with non-alphanumerics as '_'. */
static void array_name(const rs_model *m, int v, const char *suffix, char *buf, size_t len)
{
    int at = snprintf(buf, len, "k%d_", v);
    const char *s = m->values[v].name ? m->values[v].name : "";
    for (; *s && at + 1 < (int)len && at < 40; ++s)
        buf[at++] = (char)((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                                   (*s >= '0' && *s <= '9')
                               ? *s
                               : '_');
    buf[at] = 0;
    if (suffix)
        snprintf(buf + at, len - (size_t)at, "%s", suffix);
}

/* A name safe inside a C comment. */
static void comment_safe(const char *s, char *buf, size_t len)
{
    size_t at = 0;
    for (; s && *s && at + 1 < len; ++s) {
        char c = *s;
        if (c < 32 || c > 126 || (c == '/' && s[1] == '*') || (c == '*' && s[1] == '/'))
            c = '?';
        buf[at++] = c;
    }
    buf[at] = 0;
}

static void emit_floats(sbuf *b, const char *name, const float *f, int64_t n)
{
    char lit[48];
    sb_printf(b, "static const float %s[%lld] = {", name, (long long)n);
    for (int64_t i = 0; i < n; ++i) {
        float_lit(f[i], lit, sizeof lit);
        sb_printf(b, "%s%s", i % 8 ? " " : "\n    ", lit);
        if (i + 1 < n)
            sb_printf(b, ",");
    }
    sb_printf(b, "\n};\n");
}

static void emit_int8(sbuf *b, const char *name, const signed char *q, int64_t n)
{
    sb_printf(b, "static const signed char %s[%lld] = {", name, (long long)n);
    for (int64_t i = 0; i < n; ++i)
        sb_printf(b, "%s%d%s", i % 16 ? " " : "\n    ", q[i], i + 1 < n ? "," : "");
    sb_printf(b, "\n};\n");
}

typedef struct emitter {
    const rs_model *m;
    const export_c_opts *o;
    sbuf body, data;
    const mem_plan *mp;
    int *layout;       /* per value: QL_* */
    char *emitted;     /* per value: array already printed */
    export_c_stats st;
} emitter;

/* Print initializer v once (quantized when it is a weight and int8 is on). */
static int emit_const(emitter *em, int v, rs_err *e)
{
    if (em->emitted[v])
        return 0;
    const rs_value *val = &em->m->values[v];
    if (export_c_finite_values(val, e))
        return -1;
    char name[64];
    int64_t n = model_value_numel(val);
    array_name(em->m, v, NULL, name, sizeof name);
    if (em->o->int8 && em->layout[v] > QL_NONE) {
        int64_t nch, inner;
        export_c_quant_geometry(val, em->layout[v], &nch, &inner);
        signed char *q = malloc((size_t)n + 1);
        float *scale = malloc(((size_t)nch + 1) * sizeof(float));
        if (!q || !scale) {
            free(q);
            free(scale);
            return rs_fail(e, "export: out of memory");
        }
        export_c_quantize(val, em->layout[v], q, scale);
        emit_int8(&em->data, name, q, n);
        array_name(em->m, v, "_scale", name, sizeof name);
        emit_floats(&em->data, name, scale, nch);
        free(q);
        free(scale);
        em->st.weight_bytes += n + 4 * nch;
    } else {
        emit_floats(&em->data, name, val->f, n);
        em->st.weight_bytes += 4 * n;
    }
    em->st.params += n;
    em->emitted[v] = 1;
    return 0;
}

static void loc_expr(const emitter *em, int v, char *buf, size_t len)
{
    int r = em->mp->root[v];
    switch (em->mp->loc[r]) {
    case LOC_IN:
        snprintf(buf, len, "in");
        break;
    case LOC_OUT:
        snprintf(buf, len, "out");
        break;
    default:
        if (em->mp->off[r])
            snprintf(buf, len, "scratch + %lld", (long long)em->mp->off[r]);
        else
            snprintf(buf, len, "scratch");
    }
}

static void shape_text(const rs_value *v, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (int k = 1; k < v->ndim && at < len; ++k)
        at += (size_t)snprintf(buf + at, len - at, k > 1 ? "x%lld" : "%lld", (long long)v->dims[k]);
}

/* A constant broadcast over one image of p->x, written out at x's full shape as k_bcast_<ni>
 * (its non-1 dims do not form one run); its name goes to name. */
static int emit_bcast_full(emitter *em, int ni, const export_c_plan *p, char *name, size_t len, rs_err *e)
{
    const rs_model *m = em->m;
    const rs_value *xv = &m->values[p->x], *cv = &m->values[p->b];
    int64_t numel = model_value_numel(xv);
    float *full = malloc(((size_t)numel + 1) * sizeof(float));
    if (!full)
        return rs_fail(e, "export: out of memory");
    int off = xv->ndim - cv->ndim;
    for (int64_t idx = 0; idx < numel; ++idx) {
        int64_t rem = idx, cidx = 0, cstride = 1;
        for (int k = xv->ndim - 1; k >= 1; --k) {
            int64_t d = xv->dims[k], coord = rem % d;
            rem /= d;
            if (k >= off) {
                int64_t cd = cv->dims[k - off];
                cidx += (cd == 1 ? 0 : coord) * cstride;
                cstride *= cd;
            }
        }
        full[idx] = cv->f[cidx];
    }
    snprintf(name, len, "k_bcast_%d", ni);
    emit_floats(&em->data, name, full, numel);
    em->st.weight_bytes += 4 * numel;
    em->st.params += numel;
    free(full);
    return 0;
}

static int emit_node(emitter *em, int ni, const export_c_plan *p, int *used, rs_err *e)
{
    const rs_model *m = em->m;
    const rs_node *n = &m->nodes[ni];
    char x[48], y[48], w[64], s[64], b[64], cname[96], in_s[64], out_s[64];
    const int q8 = em->o->int8 && p->w >= 0 && em->layout[p->w] > QL_NONE;
    if (p->kind == K_ALIAS)
        return 0;
    loc_expr(em, p->x, x, sizeof x);
    loc_expr(em, n->out[0], y, sizeof y);
    if (p->w >= 0) {
        if (emit_const(em, p->w, e))
            return -1;
        array_name(m, p->w, NULL, w, sizeof w);
        array_name(m, p->w, "_scale", s, sizeof s);
    }
    if (p->b >= 0 && !p->bcast_full) {
        if (emit_const(em, p->b, e))
            return -1;
        array_name(m, p->b, NULL, b, sizeof b);
    } else {
        snprintf(b, sizeof b, "(const float *)0");
    }
    comment_safe(n->name, cname, sizeof cname);
    shape_text(&m->values[p->x], in_s, sizeof in_s);
    shape_text(&m->values[n->out[0]], out_s, sizeof out_s);
    sb_printf(&em->body, "    /* %s: %s %s -> %s%s */\n", cname, model_op_name(n->op), in_s, out_s,
              p->inplace ? " (in place)" : "");
    const int64_t *g = p->g;
    switch (p->kind) {
    case K_CONV:
        used[q8 ? H_CONVQ : H_CONV] = 1;
        if (q8)
            sb_printf(&em->body, "    conv2d_q8(%s, %s, %s, %s, %s,", x, y, w, s, b);
        else
            sb_printf(&em->body, "    conv2d(%s, %s, %s, %s,", x, y, w, b);
        for (int k = 0; k < 15; ++k)
            sb_printf(&em->body, " %lld%s", (long long)g[k], k < 14 ? "," : ");\n");
        break;
    case K_DENSE: {
        char al[48], be[48];
        float_lit(p->alpha, al, sizeof al);
        float_lit(p->beta, be, sizeof be);
        used[q8 ? H_DENSEQ : H_DENSE] = 1;
        if (q8)
            sb_printf(&em->body, "    dense_q8(%s, %s, %s, %s, %s,", x, y, w, s, b);
        else
            sb_printf(&em->body, "    dense(%s, %s, %s, %s,", x, y, w, b);
        sb_printf(&em->body, " %lld, %lld, %lld, %d, %s, %s);\n", (long long)g[3], (long long)g[0],
                  (long long)g[1], (int)g[2], al, be);
        break;
    }
    case K_RELU:
        used[H_RELU] = 1;
        sb_printf(&em->body, "    relu(%s, %s, %lld);\n", x, y, (long long)g[0]);
        break;
    case K_MAXPOOL:
        used[H_POOL] = 1;
        sb_printf(&em->body, "    maxpool(%s, %s,", x, y);
        for (int k = 0; k < 13; ++k)
            sb_printf(&em->body, " %lld%s", (long long)g[k], k < 12 ? "," : ");\n");
        break;
    case K_ADDC:
        used[H_ADDC] = 1;
        if (p->bcast_full && emit_bcast_full(em, ni, p, b, sizeof b, e))
            return -1;
        sb_printf(&em->body, "    add_const(%s, %s, %s, %lld, %lld, %lld);\n", x, y, b,
                  (long long)g[0], (long long)g[1], (long long)g[2]);
        break;
    case K_UNARY: {
        char al[48], be[48];
        float_lit(p->alpha, al, sizeof al);
        float_lit(p->beta, be, sizeof be);
        used[H_UNARY] = 1;
        sb_printf(&em->body, "    unary(%s, %s, %lld, %d, %s, %s);\n", x, y, (long long)g[0], (int)g[1],
                  al, be);
        break;
    }
    case K_STRIDED:
        used[H_STRIDED] = 1;
        sb_printf(&em->body, "    strided(%s, %s, %d, (const long[]){", x, y, p->nd);
        for (int k = 0; k < p->nd; ++k)
            sb_printf(&em->body, "%lld%s", (long long)g[k], k + 1 < p->nd ? ", " : "}, (const long[]){");
        for (int k = 0; k < p->nd; ++k)
            sb_printf(&em->body, "%lld%s", (long long)g[8 + k], k + 1 < p->nd ? ", " : "}, ");
        sb_printf(&em->body, "%lld);\n", (long long)g[15]);
        break;
    case K_CONCAT: {
        char x2[48];
        loc_expr(em, p->x2, x2, sizeof x2);
        used[H_COPY] = 1;
        sb_printf(&em->body, "    copy(%s, %s, %lld);\n    copy(%s, %s + %lld, %lld);\n", x, y,
                  (long long)g[0], x2, y, (long long)g[0], (long long)g[1]);
        break;
    }
    case K_BINARY:
        used[H_BINARY] = 1;
        if (p->x2 >= 0)
            loc_expr(em, p->x2, b, sizeof b);
        else if (p->bcast_full && emit_bcast_full(em, ni, p, b, sizeof b, e))
            return -1;
        sb_printf(&em->body, "    binary(%s, %s, %s, %lld, %lld, %lld, %d, %d);\n", x, b, y,
                  (long long)g[0], (long long)g[1], (long long)g[2], (int)g[4], (int)g[3]);
        break;
    case K_ADD2: {
        char x2[48];
        loc_expr(em, p->x2, x2, sizeof x2);
        used[H_ADD2] = 1;
        sb_printf(&em->body, "    add2(%s, %s, %s, %lld);\n", x, x2, y, (long long)g[0]);
        break;
    }
    case K_LEAKY: {
        char al[48];
        float_lit(p->alpha, al, sizeof al);
        used[H_LEAKY] = 1;
        sb_printf(&em->body, "    leaky_relu(%s, %s, %lld, %s);\n", x, y, (long long)g[0], al);
        break;
    }
    case K_CLIP: {
        char lo[48], hi[48];
        /* an absent bound is the largest float, so the literal stays finite C99 */
        float_lit(isinf(p->alpha) ? -3.402823466e+38f : p->alpha, lo, sizeof lo);
        float_lit(isinf(p->beta) ? 3.402823466e+38f : p->beta, hi, sizeof hi);
        used[H_CLIP] = 1;
        sb_printf(&em->body, "    clip(%s, %s, %lld, %s, %s);\n", x, y, (long long)g[0], lo, hi);
        break;
    }
    case K_AFFINE: {
        /* scale = γ/√(σ²+ε), shift = β − μ·scale, computed here in double */
        const int64_t C = g[0];
        float *sc = malloc(((size_t)C + 1) * 2 * sizeof(float));
        if (!sc)
            return rs_fail(e, "export: out of memory");
        const float *ga = m->values[n->in[1]].f, *be = m->values[n->in[2]].f;
        const float *mu = m->values[n->in[3]].f, *va = m->values[n->in[4]].f;
        for (int64_t c = 0; c < C; ++c) {
            double k = (double)ga[c] / sqrt((double)va[c] + (double)n->epsilon);
            sc[c] = (float)k;
            sc[C + c] = (float)((double)be[c] - (double)mu[c] * k);
        }
        char sn[48], hn[48];
        snprintf(sn, sizeof sn, "k_bn_scale_%d", ni);
        snprintf(hn, sizeof hn, "k_bn_shift_%d", ni);
        for (int64_t k = 0; k < 2 * C; ++k)
            if (!isfinite(sc[k])) {
                free(sc);
                return rs_fail(e, "export: node %s (BatchNormalization): non-finite scale or "
                               "shift in channel %lld", n->name, (long long)(k % C));
            }
        emit_floats(&em->data, sn, sc, C);
        emit_floats(&em->data, hn, sc + C, C);
        free(sc);
        em->st.weight_bytes += 8 * C;
        em->st.params += 2 * C;
        used[H_AFFINE] = 1;
        sb_printf(&em->body, "    affine(%s, %s, %s, %s, %lld, %lld);\n", x, y, sn, hn,
                  (long long)g[0], (long long)g[1]);
        break;
    }
    case K_AVGPOOL:
        used[H_AVGPOOL] = 1;
        sb_printf(&em->body, "    avgpool(%s, %s,", x, y);
        for (int k = 0; k < 14; ++k)
            sb_printf(&em->body, " %lld%s", (long long)g[k], k < 13 ? "," : ");\n");
        break;
    case K_PAD:
        used[H_PAD] = 1;
        sb_printf(&em->body, "    pad2d(%s, %s, %lld, %lld, %lld, %lld, %lld, %lld, %lld);\n", x, y,
                  (long long)g[0], (long long)g[1], (long long)g[2], (long long)g[3],
                  (long long)g[4], (long long)g[9], (long long)g[10]);
        break;
    case K_REDUCE: {
        char sc[48];
        float_lit(p->alpha, sc, sizeof sc);
        used[H_REDUCE] = 1;
        sb_printf(&em->body, "    reduce(%s, %s, %lld, %lld, %lld, %s);\n", x, y, (long long)g[0],
                  (long long)g[1], (long long)g[2], sc);
        break;
    }
    default:
        break;
    }
    em->st.n_ops++;
    return 0;
}

int export_c_generate(const rs_model *m, const export_c_opts *opts, char **header, char **source,
                      export_c_stats *stats, rs_err *e)
{
    static const export_c_opts defaults = {0};
    if (!m || !header || !source)
        return rs_fail(e, "export_c_generate: invalid arguments");
    *header = *source = NULL;
    const export_c_opts *o = opts ? opts : &defaults;
    if (m->input < 0 || m->output < 0 || m->n_nodes < 1)
        return rs_fail(e, "export: the model has no graph to export");
    const rs_value *xin = &m->values[m->input], *yout = &m->values[m->output];
    if (xin->dims[0] != -1 || xin->ndim < 2 || !export_c_fits(model_value_numel(xin)) ||
        yout->dims[0] != -1 || !export_c_fits(model_value_numel(yout)))
        return rs_fail(e, "export: graph input '%s' and output '%s' need a leading batch dimension",
                       xin->name, yout->name);

    int rc = -1;
    const size_t nv = (size_t)m->n_values + 1;
    export_c_plan *ops = calloc((size_t)m->n_nodes, sizeof *ops);
    mem_plan mp = {0};
    emitter em = {0};
    em.m = m;
    em.o = o;
    em.mp = &mp;
    em.layout = malloc(nv * sizeof(int));
    em.emitted = calloc(nv, 1);
    sbuf h = {0}, src = {0};
    int used[H_COUNT] = {0};
    if (!ops || !em.layout || !em.emitted) {
        rs_fail(e, "export: out of memory");
        goto done;
    }
    for (int i = 0; i < m->n_nodes; ++i)
        if (plan_node(m, i, &ops[i], e))
            goto done;
    if (mem_plan_build(m, ops, &mp, e))
        goto done;
    for (int i = 0; i < m->n_nodes; ++i) {
        export_c_plan *p = &ops[i];
        int out_r = mp.root[m->nodes[i].out[0]];
        p->inplace = p->kind != K_ALIAS && (out_r == mp.root[p->x] ||
                                            (p->x2 >= 0 && out_r == mp.root[p->x2]));
    }
    export_c_weight_layouts(m, em.layout);
    for (int i = 0; i < m->n_nodes; ++i)
        if (emit_node(&em, i, &ops[i], used, e))
            goto done;
    if (mp.copy_out) {
        used[H_COPY] = 1;
        sb_printf(&em.body, "    copy(in, out, %lld);\n", (long long)model_value_numel(yout));
        em.st.n_ops++;
    }
    em.st.input_floats = model_value_numel(xin);
    em.st.output_floats = model_value_numel(yout);
    em.st.scratch_floats = mp.scratch > 0 ? mp.scratch : 1;
    em.st.scratch_bytes = 4 * em.st.scratch_floats;

    char gname[96], in_s[64];
    comment_safe(m->graph_name ? m->graph_name : "model", gname, sizeof gname);
    shape_text(xin, in_s, sizeof in_s);
    const char *wkind = o->int8 ? "int8 weights (per-output-channel float scales), float "
                                  "activations"
                                : "float32 weights and activations";
    sb_printf(&h,
              "/* model.h — generated by rankscope from \"%s\": %d ops, %s.\n"
              " * model_forward runs ONE image: in = MODEL_INPUT_FLOATS floats (%s, normalised as\n"
              " * in training), out = MODEL_OUTPUT_FLOATS logits, scratch = MODEL_SCRATCH_FLOATS\n"
              " * floats of caller memory. No allocation, no libm, no global state: re-entrant.\n"
              " * Flash (weights): %lld bytes. RAM (scratch): %lld bytes. */\n"
              "#ifndef MODEL_H\n#define MODEL_H\n\n",
              gname, em.st.n_ops, wkind, in_s, (long long)em.st.weight_bytes,
              (long long)em.st.scratch_bytes);
    if (xin->ndim == 4)
        sb_printf(&h, "#define MODEL_INPUT_C %lldL\n#define MODEL_INPUT_H %lldL\n"
                      "#define MODEL_INPUT_W %lldL\n",
                  (long long)xin->dims[1], (long long)xin->dims[2], (long long)xin->dims[3]);
    sb_printf(&h,
              "#define MODEL_INPUT_FLOATS %lldL\n#define MODEL_OUTPUT_FLOATS %lldL\n"
              "#define MODEL_SCRATCH_FLOATS %lldL\n#define MODEL_WEIGHT_BYTES %lldL\n"
              "#define MODEL_SCRATCH_BYTES %lldL\n\n"
              "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
              "void model_forward(const float *in, float *out, float *scratch);\n\n"
              "#ifdef __cplusplus\n}\n#endif\n\n#endif\n",
              (long long)em.st.input_floats, (long long)em.st.output_floats,
              (long long)em.st.scratch_floats, (long long)em.st.weight_bytes,
              (long long)em.st.scratch_bytes);

    sb_printf(&src,
              "/* model.c — generated by rankscope from \"%s\" (%s). C99, no dependencies%s.\n"
              " * Activations share `scratch` by liveness; offsets are in floats. */\n"
              "%s#include \"model.h\"\n\n",
              gname, wkind, used[H_UNARY] ? " but libm's expf (link with -lm)" : "",
              used[H_UNARY] ? "#include <math.h>\n" : "");
    for (int k = 0; k < H_COUNT; ++k)
        if (used[k])
            sb_printf(&src, "%s", export_c_helpers[k]);
    if (em.data.len)
        sb_printf(&src, "%s\n", em.data.p);
    sb_printf(&src, "void model_forward(const float *in, float *out, float *scratch)\n{\n%s",
              em.body.len ? em.body.p : "");
    /* a graph that never reads one of the three buffers still compiles without warnings */
    sb_printf(&src, "    (void)in;\n    (void)out;\n    (void)scratch;\n}\n");
    if (h.oom || src.oom || em.body.oom || em.data.oom) {
        rs_fail(e, "export: out of memory");
        goto done;
    }
    *header = h.p;
    *source = src.p;
    h.p = src.p = NULL;
    if (stats)
        *stats = em.st;
    rc = 0;
done:
    free(h.p);
    free(src.p);
    free(em.body.p);
    free(em.data.p);
    free(em.layout);
    free(em.emitted);
    free(ops);
    mem_free(&mp);
    return rc;
}

int export_c_write(const rs_model *m, const char *dir, const export_c_opts *opts,
                   export_c_stats *stats, rs_err *e)
{
    if (!dir || !*dir)
        return rs_fail(e, "export: no output directory");
    char *h = NULL, *c = NULL;
    if (export_c_generate(m, opts, &h, &c, stats, e))
        return -1;
    size_t n = strlen(dir) + 16;
    char *hpath = malloc(n), *cpath = malloc(n);
    int rc = -1;
    if (!hpath || !cpath) {
        rs_fail(e, "export: out of memory");
    } else {
        /* the two files only make sense together: both new, or both as they were */
        snprintf(hpath, n, "%s/model.h", dir);
        snprintf(cpath, n, "%s/model.c", dir);
        rc = fileio_write_atomic_pair(cpath, c, strlen(c), hpath, h, strlen(h), e);
    }
    free(hpath);
    free(cpath);
    free(h);
    free(c);
    return rc;
}
