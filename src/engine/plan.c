/* plan.c — rank plans: parse (text file, command-line spec), format, save, validate, apply, cost. */
#include "rankscope/plan.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/fileio.h"
#include "rankscope/guard.h"

#define PLAN_MAX_FILE ((size_t)1 << 20)
/* Far above any network's weighted layer count; keeps the linear lookup in plan_set from making
 * a hostile plan file quadratic (60,000 entries took 16 s before this cap; found by test_limits). */
#define PLAN_MAX_ENTRIES 4096
/* Bytes a plan may not hold (tab, CR and LF are whitespace to the text form). */
#define CONTROL_BYTES                                                                              \
    "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a"     \
    "\x1b\x1c\x1d\x1e\x1f\x7f"

rs_plan *plan_alloc(void)
{
    return calloc(1, sizeof(rs_plan));
}

void plan_clear(rs_plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; ++i)
        free(p->entries[i].layer);
    p->n = 0;
}

void plan_free(rs_plan *p)
{
    if (!p)
        return;
    plan_clear(p);
    free(p->entries);
    free(p);
}

const plan_entry *plan_find(const rs_plan *p, const char *layer)
{
    for (int i = 0; p && layer && i < p->n; ++i)
        if (strcmp(p->entries[i].layer, layer) == 0)
            return &p->entries[i];
    return NULL;
}

int plan_set(rs_plan *p, const char *layer, decomp_method method, int rank, int rank2, rs_err *e)
{
    if (!p || !layer || !*layer)
        return rs_fail(e, "plan: empty layer name");
    /* The text form splits on whitespace and cuts at '#': a name holding either (possible via
     * --ranks) would be saved as a plan that reads back differently (found by tests/fuzz). */
    for (const unsigned char *c = (const unsigned char *)layer; *c; ++c)
        if (*c <= ' ' || *c == 0x7f || *c == '#') /* message shows only the part before it */
            return rs_fail(e, "plan: layer name \"%.*s...\" has a space, control character or '#' "
                              "at byte %d", (int)((const char *)c - layer > 64 ? 64 : (const char *)c - layer),
                           layer, (int)((const char *)c - layer));
    if (method < DECOMP_NONE || method >= DECOMP_COUNT)
        return rs_fail(e, "plan: %s: bad method %d", layer, (int)method);
    plan_entry *ent = (plan_entry *)plan_find(p, layer);
    if (!ent) {
        if (p->n >= PLAN_MAX_ENTRIES)
            return rs_fail(e, "plan: more than %d entries", PLAN_MAX_ENTRIES);
        if (p->n == p->cap) {
            int cap = p->cap ? 2 * p->cap : 8;
            plan_entry *ne = realloc(p->entries, (size_t)cap * sizeof *ne);
            if (!ne)
                return rs_fail(e, "plan: out of memory");
            p->entries = ne;
            p->cap = cap;
        }
        char *name = rs_strdup(layer);
        if (!name)
            return rs_fail(e, "plan: out of memory");
        ent = &p->entries[p->n++];
        ent->layer = name;
    }
    ent->method = method;
    ent->rank = method == DECOMP_NONE ? 0 : rank;
    ent->rank2 = method == DECOMP_TUCKER2 ? rank2 : 0;
    return 0;
}

int plan_remove(rs_plan *p, const char *layer)
{
    const plan_entry *ent = plan_find(p, layer);
    if (!ent)
        return 0;
    int i = (int)(ent - p->entries);
    free(p->entries[i].layer);
    memmove(&p->entries[i], &p->entries[i + 1], (size_t)(p->n - i - 1) * sizeof *p->entries);
    p->n--;
    return 1;
}

rs_plan *plan_clone(const rs_plan *p)
{
    rs_plan *c = plan_alloc();
    for (int i = 0; c && p && i < p->n; ++i)
        if (plan_set(c, p->entries[i].layer, p->entries[i].method, p->entries[i].rank,
                     p->entries[i].rank2, NULL)) {
            plan_free(c);
            return NULL;
        }
    return c;
}

/* A positive decimal int, the whole string. */
static int parse_pos_int(const char *s, size_t len, int *out)
{
    if (len == 0 || len > 9)
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; ++i) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1)
        return -1;
    *out = v;
    return 0;
}

/* "R", or "R<sep>R2" with sep one of ",", "x", ":" (rank2 only meaningful for tucker2). */
static int parse_ranks(const char *s, int *rank, int *rank2)
{
    size_t len = strlen(s), cut = strcspn(s, ",x:");
    *rank2 = 0;
    if (parse_pos_int(s, cut, rank))
        return -1;
    if (cut < len)
        return parse_pos_int(s + cut + 1, len - cut - 1, rank2);
    return 0;
}

/* Where each layer of one parse came from (line or item number), so a layer given twice in one
 * plan file or one --ranks spec is refused naming both places; a later source (--ranks after
 * --plan) still replaces an earlier one's entry. */
typedef struct seen_list {
    int n, cap;
    struct seen {
        char *layer;
        int where;
    } *v;
} seen_list;

static void seen_free(seen_list *s)
{
    for (int i = 0; i < s->n; ++i)
        free(s->v[i].layer);
    free(s->v);
}

/* 0 and recorded, the earlier position (> 0) when layer was seen already, -1 out of memory. */
static int seen_add(seen_list *s, const char *layer, int where)
{
    for (int i = 0; i < s->n; ++i)
        if (!strcmp(s->v[i].layer, layer))
            return s->v[i].where;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        struct seen *nv = realloc(s->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return -1;
        s->v = nv, s->cap = cap;
    }
    char *copy = rs_strdup(layer);
    if (!copy)
        return -1;
    s->v[s->n].layer = copy;
    s->v[s->n++].where = where;
    return 0;
}

/* One entry from its three textual parts; ctx prefixes errors ("plan.txt:3" or "--ranks"). */
static int add_entry(rs_plan *p, const char *ctx, const char *layer, const char *method,
                     const char *ranks, rs_err *e)
{
    decomp_method m;
    if (decomp_method_parse(method, &m, e))
        return rs_failctx(e, "%s: layer %s", ctx, layer);
    int r = 0, r2 = 0;
    if (m == DECOMP_NONE) {
        if (ranks && *ranks)
            return rs_fail(e, "%s: layer %s: method none takes no rank (got \"%s\")", ctx, layer, ranks);
    } else {
        if (!ranks || !*ranks)
            return rs_fail(e, "%s: layer %s: missing rank for %s", ctx, layer, decomp_method_name(m));
        if (parse_ranks(ranks, &r, &r2))
            return rs_fail(e, "%s: layer %s: bad rank \"%s\" (expected a positive integer%s)", ctx, layer,
                           ranks, m == DECOMP_TUCKER2 ? " or R_out,R_in" : "");
        if (r2 && m != DECOMP_TUCKER2)
            return rs_fail(e, "%s: layer %s: %s takes one rank (got \"%s\")", ctx, layer,
                           decomp_method_name(m), ranks);
    }
    if (plan_set(p, layer, m, r, r2, e))
        return rs_failctx(e, "%s", ctx);
    return 0;
}

int plan_set_words(rs_plan *p, const char *ctx, const char *layer, const char *method, const char *ranks,
                   rs_err *e)
{
    return add_entry(p, ctx, layer, method, ranks, e);
}

int plan_parse_text(rs_plan *p, const char *text, const char *label, rs_err *e)
{
    if (!label)
        label = "plan";
    int lineno = 0, rc = 0;
    seen_list seen = {0};
    const char *s = text ? text : "";
    /* a UTF-8 byte order mark, as some Windows editors write, is not part of the first line */
    if (!strncmp(s, "\xEF\xBB\xBF", 3))
        s += 3;
    while (*s && rc == 0) {
        ++lineno;
        size_t len = strcspn(s, "\n");
        char line[1024];
        if (len >= sizeof line) {
            rc = rs_fail(e, "%s:%d: line too long (%zu bytes)", label, lineno, len);
            break;
        }
        memcpy(line, s, len);
        line[len] = 0;
        s += len + (s[len] == '\n');
        /* messages quote the line's words: a terminal control byte in them would be sent to the
         * user's terminal as is */
        size_t bad = strcspn(line, CONTROL_BYTES);
        if (line[bad]) {
            rc = rs_fail(e, "%s:%d: control character 0x%02x at column %zu", label, lineno,
                         (unsigned char)line[bad], bad + 1);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *tok[4] = {0};
        int nt = 0;
        char *save = NULL;
        for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
            if (nt == 3) {
                rc = rs_fail(e, "%s:%d: unexpected \"%s\" (expected: layer method rank[,rank2])",
                             label, lineno, t);
                break;
            }
            tok[nt++] = t;
        }
        if (rc != 0)
            break;
        if (nt == 0)
            continue;
        if (nt == 1) {
            rc = rs_fail(e, "%s:%d: layer %s: missing method (expected: layer method rank[,rank2])",
                         label, lineno, tok[0]);
            break;
        }
        char ctx[300];
        snprintf(ctx, sizeof ctx, "%.250s:%d", label, lineno);
        int prev = seen_add(&seen, tok[0], lineno);
        if (prev < 0)
            rc = rs_fail(e, "%s: out of memory", ctx);
        else if (prev > 0)
            rc = rs_fail(e, "%s: layer %s is given twice: line %d and line %d (keep one)", ctx,
                         tok[0], prev, lineno);
        else
            rc = add_entry(p, ctx, tok[0], tok[1], tok[2], e);
    }
    seen_free(&seen);
    return rc;
}

/* Length of the --ranks item starting at s: up to the next comma that starts a new item. A comma
 * followed by digits up to the next comma or the end continues the ranks ("tucker2:4,3"). */
static size_t spec_item_len(const char *s)
{
    size_t len = 0;
    for (;;) {
        len += strcspn(s + len, ",");
        if (s[len] != ',')
            return len;
        const char *next = s + len + 1;
        size_t d = strspn(next, "0123456789");
        if (d == 0 || (next[d] != ',' && next[d] != 0))
            return len;
        len += 1 + d;
    }
}

int plan_parse_spec(rs_plan *p, const char *spec, rs_err *e)
{
    const char *s = spec ? spec : "";
    if (!*s)
        return rs_fail(e, "--ranks: empty spec (expected e.g. conv2=cp:16,fc1=svd:32)");
    size_t bad = strcspn(s, CONTROL_BYTES "\t\r\n");
    if (s[bad])
        return rs_fail(e, "--ranks: control character 0x%02x at position %zu", (unsigned char)s[bad],
                       bad + 1);
    seen_list seen = {0};
    int rc = 0, pos = 0;
    for (int more = 1; more && rc == 0;) {
        size_t len = spec_item_len(s);
        char item[512];
        ++pos;
        if (len >= sizeof item) {
            rc = rs_fail(e, "--ranks: item %d too long", pos);
            break;
        }
        memcpy(item, s, len);
        item[len] = 0;
        more = s[len] == ',';
        s += len + more;
        if (!*item) {
            rc = rs_fail(e, "--ranks: item %d is empty in \"%.200s\" (expected e.g. "
                            "conv2=cp:16,fc1=svd:32)", pos, spec);
            break;
        }
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            rc = rs_fail(e, "--ranks: \"%s\" is not layer=method:rank", item);
            break;
        }
        *eq = 0;
        char *method = eq + 1, *colon = strchr(method, ':');
        char *ranks = NULL;
        if (colon) {
            *colon = 0;
            ranks = colon + 1;
        }
        int prev = seen_add(&seen, item, pos);
        if (prev < 0)
            rc = rs_fail(e, "--ranks: out of memory");
        else if (prev > 0)
            rc = rs_fail(e, "--ranks: layer %s is given twice: item %d and item %d (keep one)", item,
                         prev, pos);
        else
            rc = add_entry(p, "--ranks", item, method, ranks, e);
    }
    seen_free(&seen);
    return rc;
}

rs_plan *plan_load(const char *path, rs_err *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (fileio_read_all(path, PLAN_MAX_FILE, &buf, &len, e))
        return NULL;
    char *text = malloc(len + 1);
    rs_plan *p = plan_alloc();
    if (!text || !p) {
        free(buf), free(text), plan_free(p);
        rs_fail(e, "%s: out of memory", path);
        return NULL;
    }
    memcpy(text, buf, len);
    text[len] = 0;
    free(buf);
    if (memchr(text, 0, len)) {
        free(text), plan_free(p);
        rs_fail(e, "%s: not a text plan (contains NUL bytes)", path);
        return NULL;
    }
    int rc = plan_parse_text(p, text, path, e);
    free(text);
    if (rc) {
        plan_free(p);
        return NULL;
    }
    return p;
}

int plan_format(const rs_plan *p, char **out, rs_err *e)
{
    size_t cap = 128;
    for (int i = 0; p && i < p->n; ++i)
        cap += strlen(p->entries[i].layer) + 48;
    char *s = malloc(cap);
    if (!s)
        return rs_fail(e, "plan: out of memory");
    size_t n = (size_t)snprintf(s, cap, "# rankscope plan: layer method rank[,rank2]\n");
    for (int i = 0; p && i < p->n; ++i) {
        const plan_entry *ent = &p->entries[i];
        if (ent->method == DECOMP_NONE)
            n += (size_t)snprintf(s + n, cap - n, "%s none\n", ent->layer);
        else if (ent->method == DECOMP_TUCKER2 && ent->rank2 > 0)
            n += (size_t)snprintf(s + n, cap - n, "%s %s %d,%d\n", ent->layer,
                                  decomp_method_name(ent->method), ent->rank, ent->rank2);
        else
            n += (size_t)snprintf(s + n, cap - n, "%s %s %d\n", ent->layer, decomp_method_name(ent->method),
                                  ent->rank);
    }
    *out = s;
    return 0;
}

int plan_save(const rs_plan *p, const char *path, rs_err *e)
{
    char *text;
    if (plan_format(p, &text, e))
        return -1;
    int rc = fileio_write_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

int plan_validate(const rs_model *m, const rs_plan *p, rs_err *e)
{
    int *nodes = malloc(((size_t)(p ? p->n : 0) + 1) * sizeof *nodes);
    if (!nodes)
        return rs_fail(e, "plan: out of memory");
    for (int i = 0; p && i < p->n; ++i) {
        const plan_entry *ent = &p->entries[i];
        int node = model_find_layer(m, ent->layer);
        if (node < 0) {
            rs_fail(e, "plan: layer \"%s\" not found", ent->layer);
            goto fail;
        }
        /* two spellings of one layer ("fc1", "/fc1/Gemm"): which entry wins would be silent */
        for (int j = 0; j < i; ++j)
            if (nodes[j] == node) {
                char q[128];
                rs_fail(e, "plan: \"%s\" and \"%s\" name the same layer (node %s); keep one",
                        p->entries[j].layer, ent->layer, guard_quote(q, sizeof q, m->nodes[node].name));
                goto fail;
            }
        nodes[i] = node;
        if (ent->method == DECOMP_NONE)
            continue;
        /* factorizing a NaN gives NaN factors and a "weight error" of 0: refuse up front */
        const rs_node *nd = &m->nodes[node];
        for (int k = 1; k < nd->n_in && k < 3; ++k) {
            const rs_value *w = nd->in[k] >= 0 ? &m->values[nd->in[k]] : NULL;
            if (w && w->is_const && w->f &&
                guard_floats_finite(w->f, (size_t)model_value_numel(w), w->name, e) != 0) {
                rs_failctx(e, "%s: cannot factorize", ent->layer);
                goto fail;
            }
        }
        if (decomp_check(m, node, ent->method, e))
            goto fail;
        int mx = decomp_max_rank(m, node, ent->method, 0);
        if (ent->rank < 1 || ent->rank > mx) {
            rs_fail(e, "%s: rank %d out of range 1..%d", ent->layer, ent->rank, mx);
            goto fail;
        }
        if (ent->method == DECOMP_TUCKER2 && ent->rank2 != 0) {
            int mx2 = decomp_max_rank(m, node, ent->method, 1);
            if (ent->rank2 < 1 || ent->rank2 > mx2) {
                rs_fail(e, "%s: input rank %d out of range 1..%d", ent->layer, ent->rank2, mx2);
                goto fail;
            }
        }
    }
    free(nodes);
    return 0;
fail:
    free(nodes);
    return -1;
}

int plan_apply(rs_model *m, const rs_plan *p, const decomp_opts *opts, plan_layer_report *report,
               rs_err *e)
{
    if (plan_validate(m, p, e))
        return -1;
    for (int i = 0; p && i < p->n; ++i) {
        const plan_entry *ent = &p->entries[i];
        if (report)
            memset(&report[i], 0, sizeof report[i]);
        if (ent->method == DECOMP_NONE)
            continue;
        int node = model_find_layer(m, ent->layer); /* indices move as earlier layers are replaced */
        if (node < 0)
            return rs_fail(e, "plan: layer \"%s\" not found", ent->layer);
        decomp_result r;
        int rc = decomp_layer(m, node, ent->method, ent->rank, ent->rank2, opts, &r, e);
        if (rc)
            return rc;
        if (decomp_apply(m, node, &r, e)) {
            decomp_result_free(&r);
            return -1;
        }
        if (guard_model_finite(m, e) != 0) { /* a diverged iterative method (CP-ALS) */
            decomp_result_free(&r);
            return rs_failctx(e, "%s: %s gave non-finite factors", ent->layer,
                              decomp_method_name(ent->method));
        }
        if (report) {
            report[i].weight_error = r.weight_error;
            report[i].degenerate = r.degenerate;
            report[i].seconds = r.seconds;
        }
        decomp_result_free(&r);
    }
    return 0;
}

int plan_cost_of(const rs_model *m, const rs_plan *p, plan_cost *out, rs_err *e)
{
    memset(out, 0, sizeof *out);
    if (plan_validate(m, p, e))
        return -1;
    model_totals(m, &out->params_before, &out->macs_before);
    out->params_after = out->params_before;
    out->macs_after = out->macs_before;
    for (int i = 0; p && i < p->n; ++i) {
        const plan_entry *ent = &p->entries[i];
        if (ent->method == DECOMP_NONE)
            continue;
        decomp_cost c;
        if (decomp_cost_of(m, model_find_layer(m, ent->layer), ent->method, ent->rank, ent->rank2, &c, e))
            return -1;
        out->params_after += c.params_after - c.params_before;
        out->macs_after += c.macs_after - c.macs_before;
    }
    out->bytes_before = 4 * out->params_before;
    out->bytes_after = 4 * out->params_after;
    return 0;
}
