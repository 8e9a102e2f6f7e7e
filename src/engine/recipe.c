/* recipe.c — the staged-compression recipe: text parser, formatter, file I/O (see recipe.h). */
#include "rankscope/recipe.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/fileio.h"

#define MAX_WORDS 6

rs_recipe *recipe_alloc(void)
{
    return calloc(1, sizeof(rs_recipe));
}

void recipe_free(rs_recipe *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_stages; ++i)
        plan_free(r->stages[i].plan);
    free(r);
}

int recipe_add_stage(rs_recipe *r, const recipe_stage *st, rs_err *e)
{
    if (r->n_stages >= RECIPE_MAX_STAGES)
        return rs_fail(e, "recipe: more than %d stages", RECIPE_MAX_STAGES);
    recipe_stage *s = &r->stages[r->n_stages];
    *s = *st;
    if (!(s->plan = st->plan ? plan_clone(st->plan) : plan_alloc()))
        return rs_fail(e, "recipe: out of memory");
    r->n_stages++;
    return 0;
}

/* ---- parsing ----------------------------------------------------------------------------------- */

typedef struct parser {
    rs_recipe *r;
    const char *label;
    int line;
    char ctx[300]; /* "label:line" */
    int have_version;
    recipe_stage *cur; /* the open stage */
    int stage_line;    /* where it started */
    int plan_none;     /* the open stage said "plan none" */
} parser;

static int int_of(const parser *ps, const char *key, const char *s, long long lo, long long hi, long long *out,
                  rs_err *e)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end || errno || v < lo || v > hi)
        return rs_fail(e, "%s: %s \"%s\": expected an integer %lld..%lld", ps->ctx, key, s ? s : "", lo, hi);
    *out = v;
    return 0;
}

static int real_of(const parser *ps, const char *key, const char *s, double lo, double hi, double *out, rs_err *e)
{
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || end == s || *end || errno || !isfinite(v) || v < lo || v > hi)
        return rs_fail(e, "%s: %s \"%s\": expected a number in [%g, %g]", ps->ctx, key, s ? s : "", lo, hi);
    *out = v;
    return 0;
}

static int nargs(const parser *ps, const char *key, int got, int lo, int hi, const char *usage, rs_err *e)
{
    if (got < lo || got > hi)
        return rs_fail(e, "%s: %s takes %s", ps->ctx, key, usage);
    return 0;
}

/* A stage is complete: required items present, at least one layer. */
static int close_stage(parser *ps, rs_err *e)
{
    recipe_stage *s = ps->cur;
    if (!s)
        return 0;
    ps->cur = NULL;
    if (s->epochs <= 0)
        return rs_fail(e, "%s:%d: stage %d has no \"epochs N\"", ps->label, ps->stage_line, ps->r->n_stages);
    if (!(s->lr > 0))
        return rs_fail(e, "%s:%d: stage %d has no \"lr X\"", ps->label, ps->stage_line, ps->r->n_stages);
    if ((!s->plan || s->plan->n == 0) && !ps->plan_none)
        return rs_fail(e, "%s:%d: stage %d has no \"plan LAYER METHOD RANK\" line (\"plan none\" for a stage "
                          "that only fine-tunes)", ps->label, ps->stage_line, ps->r->n_stages);
    return 0;
}

static int stage_plan(parser *ps, char **w, int nw, rs_err *e)
{
    int none = nw == 2 && !strcmp(w[1], "none");
    if ((none && ps->cur->plan->n > 0) || (!none && ps->plan_none))
        return rs_fail(e, "%s: \"plan none\" and layers in one stage", ps->ctx);
    if (none) {
        ps->plan_none = 1;
        return 0;
    }
    if (nargs(ps, "plan", nw - 1, 3, 3, "LAYER METHOD RANK[,RANK2] or none", e))
        return -1;
    if (plan_find(ps->cur->plan, w[1]))
        return rs_fail(e, "%s: layer %s is listed twice in this stage", ps->ctx, w[1]);
    if (!strcmp(w[2], "none"))
        return rs_fail(e, "%s: layer %s: method none (a stage lists the layers it factorizes)", ps->ctx, w[1]);
    return plan_set_words(ps->cur->plan, ps->ctx, w[1], w[2], w[3], e);
}

/* An item of the open stage; 1 when key is not a stage item. */
static int stage_item(parser *ps, char **w, int nw, rs_err *e, int *rc)
{
    recipe_stage *s = ps->cur;
    const char *k = w[0];
    long long v = 0;
    *rc = 0;
    if (!strcmp(k, "epochs")) {
        if (!(*rc = nargs(ps, k, nw - 1, 1, 1, "N", e)) && !(*rc = int_of(ps, k, w[1], 1, 1000, &v, e)))
            s->epochs = (int)v;
    } else if (!strcmp(k, "lr")) {
        *rc = nargs(ps, k, nw - 1, 1, 1, "X", e) || real_of(ps, k, w[1], 1e-8, 10, &s->lr, e) ? -1 : 0;
    } else if (!strcmp(k, "seed")) {
        if (!(*rc = nargs(ps, k, nw - 1, 1, 1, "N", e)) && !(*rc = int_of(ps, k, w[1], 0, INT64_MAX, &v, e)))
            s->seed = (uint64_t)v;
    } else if (!strcmp(k, "distill")) {
        if (nw == 2 && !strcmp(w[1], "off"))
            s->distill = 0;
        else if (!(*rc = nargs(ps, k, nw - 1, 2, 2, "ALPHA TEMP or off", e)) &&
                 !(*rc = real_of(ps, "distill alpha", w[1], 0, 1, &s->alpha, e)) &&
                 !(*rc = real_of(ps, "distill temperature", w[2], 0.01, 100, &s->temp, e)))
            s->distill = 1;
    } else if (!strcmp(k, "plan")) {
        *rc = stage_plan(ps, w, nw, e);
    } else if (!strcmp(k, "bn")) {
        if (nw != 2 || (strcmp(w[1], "on") && strcmp(w[1], "off")))
            *rc = rs_fail(e, "%s: bn takes \"on\" or \"off\"", ps->ctx);
        else
            s->bn = !strcmp(w[1], "on");
    } else {
        return 1;
    }
    return 0;
}

static int header_item(parser *ps, char **w, int nw, rs_err *e)
{
    rs_recipe *r = ps->r;
    const char *k = w[0];
    long long v = 0;
    if (!strcmp(k, "train-images") || !strcmp(k, "val-images")) {
        if (nargs(ps, k, nw - 1, 1, 1, "N", e) || int_of(ps, k, w[1], 0, 1000000, &v, e))
            return -1;
        *(k[0] == 't' ? &r->train_images : &r->val_images) = (int)v;
        return 0;
    }
    if (!strcmp(k, "fit")) {
        if (nw == 2 && !strcmp(w[1], "weights")) {
            r->fit_outputs = 0, r->calib_images = 0;
            return 0;
        }
        if (nw != 3 || strcmp(w[1], "outputs"))
            return rs_fail(e, "%s: fit takes \"weights\" or \"outputs N\"", ps->ctx);
        if (int_of(ps, "fit outputs", w[2], 1, 1000000, &v, e))
            return -1;
        r->fit_outputs = 1, r->calib_images = (int)v;
        return 0;
    }
    if (!strcmp(k, "int8")) {
        if (nargs(ps, k, nw - 1, 1, 1, "N (epochs of quantization-aware training)", e) ||
            int_of(ps, k, w[1], 0, 1000, &v, e))
            return -1;
        r->int8 = 1, r->int8_epochs = (int)v;
        return 0;
    }
    return rs_fail(e, "%s: unknown item \"%.40s\"", ps->ctx, k);
}

static int parse_line(parser *ps, char *line, rs_err *e)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = 0;
    char *w[MAX_WORDS + 1];
    int nw = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (nw == MAX_WORDS)
            return rs_fail(e, "%s: too many words (\"%.40s\")", ps->ctx, t);
        w[nw++] = t;
    }
    w[nw] = NULL;
    if (nw == 0)
        return 0;
    if (!ps->have_version) {
        if (strcmp(w[0], "rankscope-recipe"))
            return rs_fail(e, "%s: \"%.40s\": a recipe starts with \"rankscope-recipe 1\"", ps->ctx, w[0]);
        if (nw != 2 || strcmp(w[1], "1"))
            return rs_fail(e, "%s: recipe version \"%.40s\" (this rankscope reads version 1)", ps->ctx,
                           nw > 1 ? w[1] : "");
        ps->have_version = 1;
        return 0;
    }
    if (!strcmp(w[0], "stage")) {
        if (nw != 1)
            return rs_fail(e, "%s: \"stage\" stands alone on its line (got \"%.40s\")", ps->ctx, w[1]);
        if (close_stage(ps, e))
            return -1;
        if (ps->r->n_stages >= RECIPE_MAX_STAGES)
            return rs_fail(e, "%s: more than %d stages", ps->ctx, RECIPE_MAX_STAGES);
        ps->cur = &ps->r->stages[ps->r->n_stages++];
        memset(ps->cur, 0, sizeof *ps->cur);
        ps->cur->seed = 1;
        ps->stage_line = ps->line;
        ps->plan_none = 0;
        if (!(ps->cur->plan = plan_alloc()))
            return rs_fail(e, "%s: out of memory", ps->ctx);
        return 0;
    }
    int rc = 0;
    if (ps->cur && !stage_item(ps, w, nw, e, &rc))
        return rc;
    static const char *const stage_keys[] = {"epochs", "lr", "seed", "distill", "plan", "bn"};
    for (size_t i = 0; !ps->cur && i < sizeof stage_keys / sizeof *stage_keys; ++i)
        if (!strcmp(w[0], stage_keys[i]))
            return rs_fail(e, "%s: \"%s\" outside a stage (stage items follow a \"stage\" line)", ps->ctx, w[0]);
    return header_item(ps, w, nw, e);
}

static void clear(rs_recipe *r)
{
    for (int i = 0; i < r->n_stages; ++i)
        plan_free(r->stages[i].plan);
    memset(r, 0, sizeof *r);
}

int recipe_parse_text(rs_recipe *r, const char *text, const char *label, rs_err *e)
{
    parser ps;
    memset(&ps, 0, sizeof ps);
    ps.r = r;
    ps.label = label ? label : "recipe";
    clear(r);
    const char *s = text ? text : "";
    if (!strncmp(s, "\xEF\xBB\xBF", 3))
        s += 3;
    int rc = 0;
    while (*s && rc == 0) {
        ++ps.line;
        size_t len = strcspn(s, "\n");
        char line[1024];
        snprintf(ps.ctx, sizeof ps.ctx, "%.250s:%d", ps.label, ps.line);
        if (len >= sizeof line) {
            rc = rs_fail(e, "%s: line too long (%zu bytes)", ps.ctx, len);
            break;
        }
        memcpy(line, s, len);
        line[len] = 0;
        s += len + (s[len] == '\n');
        for (size_t i = 0; i < len && rc == 0; ++i) {
            unsigned char c = (unsigned char)line[i];
            if ((c < ' ' && c != '\t' && c != '\r') || c == 0x7f)
                rc = rs_fail(e, "%s: control character 0x%02x at column %zu", ps.ctx, c, i + 1);
        }
        if (rc == 0)
            rc = parse_line(&ps, line, e);
    }
    if (rc == 0 && !ps.have_version)
        rc = rs_fail(e, "%s: empty (a recipe starts with \"rankscope-recipe 1\")", ps.label);
    if (rc == 0)
        rc = close_stage(&ps, e);
    if (rc == 0 && r->n_stages == 0)
        rc = rs_fail(e, "%s: no stage (a recipe lists at least one \"stage\")", ps.label);
    if (rc)
        clear(r);
    return rc;
}

rs_recipe *recipe_load(const char *path, rs_err *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (fileio_read_all(path, RECIPE_MAX_FILE, &buf, &len, e))
        return NULL;
    char *text = malloc(len + 1);
    rs_recipe *r = recipe_alloc();
    int rc = text && r ? 0 : rs_fail(e, "%s: out of memory", path);
    if (rc == 0) {
        memcpy(text, buf, len);
        text[len] = 0;
        if (memchr(text, 0, len))
            rc = rs_fail(e, "%s: not a text recipe (contains NUL bytes)", path);
    }
    if (rc == 0)
        rc = recipe_parse_text(r, text, path, e);
    free(buf);
    free(text);
    if (rc) {
        recipe_free(r);
        return NULL;
    }
    return r;
}

/* ---- formatting -------------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (int tries = 0; tries < 2 && !b->oom; ++tries) {
        va_start(ap, fmt);
        int w = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)w < b->cap) {
            b->n += (size_t)w;
            return;
        }
        size_t cap = (b->cap + (size_t)w + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np, b->cap = cap;
    }
}

int recipe_format(const rs_recipe *r, char **out, rs_err *e)
{
    sbuf b = {0};
    put(&b, "rankscope-recipe 1\n# written by rankscope compress; replay with: rankscope compress MODEL "
            "--recipe FILE -o OUT.onnx\n");
    put(&b, "train-images %d\nval-images %d\n", r->train_images, r->val_images);
    if (r->fit_outputs)
        put(&b, "fit outputs %d\n", r->calib_images);
    else
        put(&b, "fit weights\n");
    for (int i = 0; i < r->n_stages; ++i) {
        const recipe_stage *s = &r->stages[i];
        put(&b, "stage\n  epochs %d\n  lr %.17g\n  seed %" PRIu64 "\n", s->epochs, s->lr, s->seed);
        if (s->distill)
            put(&b, "  distill %.17g %.17g\n", s->alpha, s->temp);
        else
            put(&b, "  distill off\n");
        if (s->bn)
            put(&b, "  bn on\n");
        if (!s->plan || s->plan->n == 0)
            put(&b, "  plan none\n");
        for (int j = 0; s->plan && j < s->plan->n; ++j) {
            const plan_entry *en = &s->plan->entries[j];
            put(&b, "  plan %s %s %d", en->layer, decomp_method_name(en->method), en->rank);
            if (en->method == DECOMP_TUCKER2 && en->rank2 > 0)
                put(&b, ",%d", en->rank2);
            put(&b, "\n");
        }
    }
    if (r->int8)
        put(&b, "int8 %d\n", r->int8_epochs);
    if (b.oom || !b.p) {
        free(b.p);
        return rs_fail(e, "recipe: out of memory");
    }
    *out = b.p;
    return 0;
}

int recipe_save(const rs_recipe *r, const char *path, rs_err *e)
{
    char *text = NULL;
    if (recipe_format(r, &text, e))
        return -1;
    int rc = fileio_write_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}
