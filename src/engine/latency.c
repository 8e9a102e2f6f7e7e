/* latency.c — measured layer times, cached per machine (see latency.h for the contract). */
#define _POSIX_C_SOURCE 200809L
#include "rankscope/latency.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/fileio.h"
#include "rankscope/infer.h"
#include "rankscope/kernels.h"
#include "rankscope/plan.h"

#define GEOM_LEN 256
#define LOOKAHEAD 32 /* lat_efficient looks this many ranks up: SIMD blocks are at most 16 wide */

typedef struct entry {
    char geom[GEOM_LEN];
    int method, rank, rank2;
    lat_point p;
} entry;

struct lat_table {
    lat_options o;
    char dir[1024];
    char key[512];
    char path[1100];
    entry *e;
    int n, cap;
    int measured, cached, dirty;
};

void lat_default_options(lat_options *o)
{
    memset(o, 0, sizeof *o);
    o->reps = 9;
    o->batch = 64;
    o->min_sample_s = 2e-4;
    o->noise = 0.02;
}

static void cpu_model(char *out, size_t len)
{
    snprintf(out, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (c && !strncmp(line, "model name", 10)) {
            c += 1 + strspn(c + 1, " \t");
            c[strcspn(c, "\r\n")] = 0;
            for (char *p = c; *p; ++p)
                if (*p == ';' || *p == '\t' || (unsigned char)*p < 32)
                    *p = ' ';
            snprintf(out, len, "%s", c);
            break;
        }
    }
    fclose(f);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; ++s)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void machine_key(char *out, size_t len)
{
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    struct stat st;
    long long size = -1, mtime = -1;
    if (stat("/proc/self/exe", &st) == 0)
        size = (long long)st.st_size, mtime = (long long)st.st_mtime;
    snprintf(out, len, "cpu=%s;isa=%s;bin=%lld-%lld", cpu, kern_isa_name(kern_detect()), size, mtime);
}

static int cache_dir(const lat_options *o, char *out, size_t len)
{
    if (o->cache_dir) {
        snprintf(out, len, "%s", o->cache_dir);
        return 0;
    }
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && x[0] == '/')
        snprintf(out, len, "%s/rankscope", x);
    else if (home && home[0])
        snprintf(out, len, "%s/.cache/rankscope", home);
    else
        out[0] = 0;
    return 0;
}

static entry *find(lat_table *t, const char *geom, int method, int rank, int rank2)
{
    for (int i = 0; i < t->n; ++i) {
        entry *x = &t->e[i];
        if (x->method == method && x->rank == rank && x->rank2 == rank2 && !strcmp(x->geom, geom))
            return x;
    }
    return NULL;
}

static int add(lat_table *t, const char *geom, int method, int rank, int rank2, lat_point p)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        entry *ne = realloc(t->e, (size_t)cap * sizeof *ne);
        if (!ne)
            return -1;
        t->e = ne, t->cap = cap;
    }
    entry *x = &t->e[t->n++];
    snprintf(x->geom, sizeof x->geom, "%s", geom);
    x->method = method, x->rank = rank, x->rank2 = rank2, x->p = p;
    return 0;
}

static void load(lat_table *t)
{
    FILE *f = fopen(t->path, "r");
    if (!f)
        return;
    char line[1024];
    if (!fgets(line, sizeof line, f) || strncmp(line, "# key ", 6) ||
        (line[strcspn(line, "\n")] = 0, strcmp(line + 6, t->key))) {
        fclose(f);
        return;
    }
    while (fgets(line, sizeof line, f)) {
        char geom[GEOM_LEN], meth[32];
        int r, r2;
        double b1, bt;
        decomp_method dm;
        if (line[0] == '#' ||
            sscanf(line, "%255[^\t]\t%31[^\t]\t%d\t%d\t%lf\t%lf", geom, meth, &r, &r2, &b1, &bt) != 6 ||
            decomp_method_parse(meth, &dm, NULL) != 0 || !(b1 > 0) || !(bt > 0) || r < 0 || r2 < 0)
            continue;
        if (!find(t, geom, (int)dm, r, r2) && add(t, geom, (int)dm, r, r2, (lat_point){b1, bt}))
            break;
    }
    fclose(f);
}

lat_table *lat_open(const lat_options *o, rs_err *e)
{
    lat_table *t = calloc(1, sizeof *t);
    if (!t) {
        rs_fail(e, "latency: out of memory");
        return NULL;
    }
    if (o)
        t->o = *o;
    else
        lat_default_options(&t->o);
    if (t->o.reps < 1)
        t->o.reps = 1;
    if (t->o.batch < 1)
        t->o.batch = 1;
    machine_key(t->key, sizeof t->key);
    cache_dir(&t->o, t->dir, sizeof t->dir);
    if (t->dir[0]) {
        snprintf(t->path, sizeof t->path, "%s/latency-%016llx.tsv", t->dir,
                 (unsigned long long)fnv1a(t->key));
        load(t);
    }
    return t;
}

void lat_free(lat_table *t)
{
    if (!t)
        return;
    free(t->e);
    free(t);
}

const char *lat_machine_key(const lat_table *t) { return t->key; }
const char *lat_cache_path(const lat_table *t) { return t->path; }
int lat_measured(const lat_table *t) { return t->measured; }
int lat_cached(const lat_table *t) { return t->cached; }

/* ---- one layer alone --------------------------------------------------------------------------- */

static int append(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *at, len - *at, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= len - *at)
        return -1;
    *at += (size_t)k;
    return 0;
}

/* "Conv x:6:14:14 w:16:6:5:5 y:16:10:10 a5,5,1,1,0,0,0,0,1,1,1,0,0,1" */
static int geometry(const rs_model *m, int node, char *buf, size_t len, rs_err *e)
{
    const rs_node *n = &m->nodes[node];
    const rs_value *vs[3] = {&m->values[n->in[0]], &m->values[n->in[1]], &m->values[n->out[0]]};
    static const char tag[3] = {'x', 'w', 'y'};
    size_t at = 0;
    int rc = append(buf, len, &at, "%s", model_op_name(n->op));
    for (int k = 0; k < 3 && rc == 0; ++k) {
        rc = append(buf, len, &at, " %c", tag[k]);
        for (int d = k == 1 ? 0 : 1; d < vs[k]->ndim && rc == 0; ++d)
            rc = append(buf, len, &at, ":%lld", (long long)vs[k]->dims[d]);
    }
    const int64_t a[] = {n->kernel[0], n->kernel[1], n->strides[0], n->strides[1], n->pads[0],
                         n->pads[1], n->pads[2], n->pads[3], n->dilations[0], n->dilations[1],
                         n->group, n->trans_a, n->trans_b, n->n_in > 2 && n->in[2] >= 0};
    for (size_t k = 0; k < sizeof a / sizeof a[0] && rc == 0; ++k)
        rc = append(buf, len, &at, k ? ",%lld" : " a%lld", (long long)a[k]);
    return rc ? rs_fail(e, "latency: layer %s: geometry too long", n->name) : 0;
}

static int copy_value(rs_model *d, const rs_value *s, const char *name, rs_err *e)
{
    int v = model_add_value(d, name, e);
    if (v < 0)
        return -1;
    rs_value *x = &d->values[v];
    x->ndim = s->ndim;
    memcpy(x->dims, s->dims, sizeof x->dims);
    x->is_const = s->is_const;
    x->dtype = s->dtype;
    if (s->is_const && s->f) {
        size_t cnt = (size_t)model_value_numel(s);
        x->f = malloc(cnt * sizeof *x->f + 1);
        if (!x->f) {
            rs_fail(e, "latency: out of memory");
            return -1;
        }
        memcpy(x->f, s->f, cnt * sizeof *x->f);
    }
    return v;
}

/* The layer alone as a model (input x, output y), factorized when method is set. */
static rs_model *layer_model(const rs_model *m, int node, decomp_method method, int rank, int rank2,
                             rs_err *e)
{
    const rs_node *src = &m->nodes[node];
    rs_model *d = model_alloc();
    if (!d) {
        rs_fail(e, "latency: out of memory");
        return NULL;
    }
    static const char *const names[3] = {"x", "w", "b"};
    int in[3] = {-1, -1, -1}, ok = 1;
    for (int k = 0; k < src->n_in && k < 3 && ok; ++k)
        if (src->in[k] >= 0)
            ok = (in[k] = copy_value(d, &m->values[src->in[k]], names[k], e)) >= 0;
    int y = ok ? model_add_value(d, "y", e) : -1;
    int n = y >= 0 ? model_add_node(d, src->name, src->op, e) : -1;
    if (n < 0) {
        model_free(d);
        return NULL;
    }
    rs_node *nd = &d->nodes[n];
    char *name = nd->name;
    *nd = *src;
    nd->name = name;
    nd->n_in = src->n_in < 3 ? src->n_in : 3;
    memcpy(nd->in, in, sizeof in);
    nd->n_out = 1, nd->out[0] = y;
    d->input = in[0], d->output = y;
    int rc = model_infer_shapes(d, e);
    if (rc == 0 && method != DECOMP_NONE) {
        rs_plan *p = plan_alloc();
        rc = !p ? rs_fail(e, "latency: out of memory")
                : plan_set(p, src->name, method, rank, rank2, e) || plan_apply(d, p, NULL, NULL, e);
        plan_free(p);
    }
    if (rc) {
        model_free(d);
        return NULL;
    }
    return d;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds per image of forward passes of n images. */
static int time_forward(infer_ctx *c, const float *x, int n, float *y, const lat_options *o,
                        double *out, rs_err *e)
{
    double s[64];
    int reps = o->reps < 64 ? o->reps : 64;
    for (int w = 0; w < 2; ++w)
        if (infer_forward(c, x, n, y, e))
            return -1;
    for (int r = 0; r < reps; ++r) {
        double t0 = rs_now(), t;
        long k = 0;
        do {
            if (infer_forward(c, x, n, y, e))
                return -1;
            ++k;
        } while ((t = rs_now() - t0) < o->min_sample_s);
        s[r] = t / (double)k / (double)n;
    }
    qsort(s, (size_t)reps, sizeof s[0], cmp_double);
    *out = reps % 2 ? s[reps / 2] : 0.5 * (s[reps / 2 - 1] + s[reps / 2]);
    return 0;
}

static int time_model(const rs_model *d, const lat_options *o, lat_point *out, rs_err *e)
{
    infer_ctx *c = infer_create(d, 1, e);
    if (!c)
        return -1;
    int F = infer_in_features(c), O = infer_out_features(c), B = o->batch;
    float *x = malloc((size_t)B * F * sizeof *x + 1), *y = malloc((size_t)B * O * sizeof *y + 1);
    int rc = x && y ? 0 : rs_fail(e, "latency: out of memory");
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; rc == 0 && i < (size_t)B * F; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / (double)(1ull << 24) - 0.5);
    }
    if (rc == 0)
        rc = time_forward(c, x, 1, y, o, &out->b1, e);
    if (rc == 0)
        rc = time_forward(c, x, B, y, o, &out->batch, e);
    free(x);
    free(y);
    infer_free(c);
    return rc;
}

int lat_layer(lat_table *t, const rs_model *m, int node, decomp_method method, int rank, int rank2,
              lat_point *out, rs_err *e)
{
    if (!t || !m || node < 0 || node >= m->n_nodes)
        return rs_fail(e, "latency: no layer %d", node);
    if (!model_is_weighted(m, node))
        return rs_fail(e, "latency: %s (%s) is not a weighted layer", m->nodes[node].name,
                       model_op_name(m->nodes[node].op));
    char geom[GEOM_LEN];
    if (geometry(m, node, geom, sizeof geom, e))
        return -1;
    if (method == DECOMP_NONE)
        rank = rank2 = 0;
    const entry *x = find(t, geom, (int)method, rank, rank2);
    if (x) {
        *out = x->p;
        ++t->cached;
        return 0;
    }
    if (t->o.progress) {
        char what[160];
        snprintf(what, sizeof what, "timing %s %s %d", m->nodes[node].name, decomp_method_name(method), rank);
        if (t->o.progress(t->o.progress_user, -1.0, what))
            return rs_fail(e, "latency: cancelled"), RS_CANCELLED;
    }
    rs_model *d = layer_model(m, node, method, rank, rank2, e);
    if (!d)
        return rs_failctx(e, "latency: layer %s", m->nodes[node].name);
    int rc = time_model(d, &t->o, out, e);
    model_free(d);
    if (rc)
        return rs_failctx(e, "latency: layer %s", m->nodes[node].name);
    if (add(t, geom, (int)method, rank, rank2, *out))
        return rs_fail(e, "latency: out of memory");
    ++t->measured;
    t->dirty = 1;
    return 0;
}

int lat_efficient(lat_table *t, const rs_model *m, int node, decomp_method method, int rank,
                  int max_rank, int (*rank2_of)(const rs_model *m, int node, int rank), int use_b1,
                  rs_err *e)
{
    lat_point p, q;
    if (lat_layer(t, m, node, method, rank, rank2_of ? rank2_of(m, node, rank) : 0, &p, e))
        return -1;
    double base = use_b1 ? p.b1 : p.batch;
    int last = max_rank < rank + LOOKAHEAD ? max_rank : rank + LOOKAHEAD;
    for (int r = rank + 1; r <= last; ++r) {
        if (lat_layer(t, m, node, method, r, rank2_of ? rank2_of(m, node, r) : 0, &q, e))
            return -1;
        if ((use_b1 ? q.b1 : q.batch) <= base * (1.0 + t->o.noise))
            return 0;
    }
    return 1;
}

int lat_model(const lat_table *t, const rs_model *m, lat_point *out, rs_err *e)
{
    if (!t || !m)
        return rs_fail(e, "latency: no model");
    return time_model(m, &t->o, out, e);
}

static int mkdir_p(const char *dir)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; ++s)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST)
                return -1;
            *s = '/';
        }
    return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

int lat_save(lat_table *t, rs_err *e)
{
    if (!t || !t->dirty || !t->path[0])
        return 0;
    if (mkdir_p(t->dir))
        return rs_fail(e, "latency: cannot create the cache directory %s: %s", t->dir, strerror(errno));
    size_t cap = 128 + strlen(t->key) + (size_t)t->n * (GEOM_LEN + 96), at = 0;
    char *buf = malloc(cap);
    if (!buf)
        return rs_fail(e, "latency: out of memory");
    at += (size_t)snprintf(buf, cap, "# key %s\n# geometry\tmethod\trank\trank2\tb1_s\tbatch_s_per_image\n",
                           t->key);
    for (int i = 0; i < t->n; ++i) {
        const entry *x = &t->e[i];
        at += (size_t)snprintf(buf + at, cap - at, "%s\t%s\t%d\t%d\t%.6e\t%.6e\n", x->geom,
                               decomp_method_name((decomp_method)x->method), x->rank, x->rank2, x->p.b1,
                               x->p.batch);
    }
    int rc = fileio_write_atomic(t->path, buf, at, e);
    free(buf);
    if (rc == 0)
        t->dirty = 0;
    return rc;
}
