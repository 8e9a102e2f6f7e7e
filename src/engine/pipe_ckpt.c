/* pipe_ckpt.c — checkpoints of staged compression and of a recipe replay (pipeline.h): the file
 * form of pipe_ckpt (pipe_internal.h), in the record container of ckpt_internal.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "rankscope/fileio.h"

#include "ckpt_internal.h"
#include "pipe_internal.h"

#define MAGIC "RSCPRS1\n"
#define CK_MAX_TEXT (1u << 20)
#define CK_MAX_COUNT 1000000

enum {
    TAG_IDNT = CK_TAG('I', 'D', 'N', 'T'), /* the caller's ident text */
    TAG_LOOP = CK_TAG('L', 'O', 'O', 'P'), /* mode, phase, counters, budgets, accuracies */
    TAG_RNDS = CK_TAG('R', 'N', 'D', 'S'), /* the rounds so far */
    TAG_PLNS = CK_TAG('P', 'L', 'N', 'S'), /* all, p, the rejected plans (plan text) */
    TAG_RCPE = CK_TAG('R', 'C', 'P', 'E'), /* the kept stages as recipe text */
    TAG_MCUR = CK_TAG('M', 'C', 'U', 'R'), /* ONNX of cur */
    TAG_MEXT = CK_TAG('M', 'E', 'X', 'T'), /* ONNX of ext */
    TAG_FTRN = CK_TAG('F', 'T', 'R', 'N'), /* the fine-tuning: best epoch and accuracies */
    TAG_FTW = CK_TAG('F', 'T', 'W', ' '),  /* ONNX of the net being trained */
    TAG_FTB = CK_TAG('F', 'T', 'B', ' ')   /* ONNX of its best state */
};

enum { R_IDNT, R_LOOP, R_RNDS, R_PLNS, R_RCPE, R_MCUR, R_MEXT, R_FTRN, R_FTW, R_FTB, R_STAT, R_MOMT, R_N };
static const uint32_t tags[R_N] = {TAG_IDNT, TAG_LOOP, TAG_RNDS, TAG_PLNS, TAG_RCPE, TAG_MCUR,
                                   TAG_MEXT, TAG_FTRN, TAG_FTW,  TAG_FTB,  CK_TAG_STAT, CK_TAG_MOMT};

/* ---- writing ------------------------------------------------------------------------------------ */
static void put_plan(ck_wbuf *b, const rs_plan *p, rs_err *e, int *rc)
{
    char *t = NULL;
    if (*rc == 0 && p && plan_format(p, &t, e) != 0)
        *rc = -1;
    ck_put_u32(b, p != NULL);
    if (p)
        ck_put_str(b, t);
    free(t);
}

static void put_loop(ck_wbuf *b, const pipe_ckpt *c)
{
    size_t at = ck_begin(b, TAG_LOOP);
    ck_put_u32(b, (uint32_t)c->mode);
    ck_put_u32(b, (uint32_t)c->phase);
    ck_put_u32(b, (uint32_t)c->kept);
    ck_put_u32(b, (uint32_t)c->tries);
    ck_put_u32(b, (uint32_t)c->tried);
    const double f[] = {c->budget, c->failed_budget, c->secs, c->elapsed, c->base_val, c->floor_val, c->tol_points,
                        c->best_val};
    for (size_t i = 0; i < sizeof f / sizeof *f; ++i)
        ck_put_f64(b, f[i]);
    ck_end(b, at);
    at = ck_begin(b, TAG_RNDS);
    ck_put_u32(b, (uint32_t)c->n_rounds);
    for (int i = 0; i < c->n_rounds; ++i) {
        const pipe_round *r = &c->rounds[i];
        const uint32_t u[] = {(uint32_t)r->kind, (uint32_t)r->accepted, (uint32_t)r->a_only, (uint32_t)r->b_only,
                              (uint32_t)r->epochs_done, (uint32_t)r->number};
        for (size_t k = 0; k < sizeof u / sizeof *u; ++k)
            ck_put_u32(b, u[k]);
        const double f2[] = {r->budget, r->val_pre, r->val_post, r->margin, r->seconds};
        for (size_t k = 0; k < sizeof f2 / sizeof *f2; ++k)
            ck_put_f64(b, f2[k]);
        ck_put_u64(b, (uint64_t)r->params);
        ck_put_u64(b, (uint64_t)r->macs);
        ck_put_str(b, r->plan);
    }
    ck_end(b, at);
}

int pipe_ckpt_save(const char *path, const pipe_ckpt *c, rs_err *e)
{
    ck_wbuf b = {0};
    int rc = 0;
    ck_put(&b, MAGIC, 8);
    size_t at = ck_begin(&b, TAG_IDNT);
    ck_put_str(&b, c->ident);
    ck_end(&b, at);
    put_loop(&b, c);
    at = ck_begin(&b, TAG_PLNS);
    put_plan(&b, c->all, e, &rc);
    put_plan(&b, c->p, e, &rc);
    ck_put_u32(&b, (uint32_t)c->n_rejected);
    for (int i = 0; i < c->n_rejected; ++i)
        put_plan(&b, c->rejected[i], e, &rc);
    ck_end(&b, at);
    if (c->recipe && c->recipe->n_stages > 0) {
        char *t = NULL;
        rc = rc ? rc : recipe_format(c->recipe, &t, e);
        at = ck_begin(&b, TAG_RCPE);
        ck_put_str(&b, t);
        ck_end(&b, at);
        free(t);
    }
    if (rc == 0)
        rc = ck_put_model(&b, TAG_MCUR, c->cur, e);
    if (rc == 0 && c->ext)
        rc = ck_put_model(&b, TAG_MEXT, c->ext, e);
    if (rc == 0 && c->phase != PIPE_CK_START) {
        const finetune_state *f = &c->ft;
        at = ck_begin(&b, TAG_FTRN);
        ck_put_u32(&b, (uint32_t)f->best_epoch);
        ck_put_f64(&b, f->best_acc);
        ck_put_f64(&b, f->start_acc);
        ck_end(&b, at);
        ck_put_state(&b, f->w, &f->train);
        rc = ck_put_model(&b, TAG_FTW, f->w, e);
        if (rc == 0 && f->best)
            rc = ck_put_model(&b, TAG_FTB, f->best, e);
    }
    if (rc != 0) {
        free(b.p);
        return rs_failctx(e, "%s", path);
    }
    return ck_finish(&b, path, e);
}

/* ---- reading ------------------------------------------------------------------------------------ */
void pipe_ckpt_free(pipe_ckpt *c)
{
    if (!c)
        return;
    free(c->ident);
    free(c->rounds);
    plan_free(c->all);
    plan_free(c->p);
    for (int i = 0; c->rejected && i < c->n_rejected; ++i)
        plan_free(c->rejected[i]);
    free(c->rejected);
    recipe_free(c->recipe);
    model_free(c->cur);
    model_free(c->ext);
    model_free(c->ft.w);
    model_free(c->ft.best);
    ck_state_free(&c->ft.train);
    free(c);
}

static int finite_all(const double *f, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (!isfinite(f[i]))
            return 0;
    return 1;
}

static int read_loop(ck_rbuf *r, pipe_ckpt *c)
{
    c->mode = (int)ck_get_u32(r);
    c->phase = (int)ck_get_u32(r);
    uint32_t u[3];
    for (int i = 0; i < 3; ++i)
        u[i] = ck_get_u32(r);
    double f[8];
    for (int i = 0; i < 8; ++i)
        f[i] = ck_get_f64(r);
    if (r->bad || r->at != r->len || c->mode < PIPE_CK_STAGED || c->mode > PIPE_CK_REPLAY || c->phase < 0 ||
        c->phase > PIPE_CK_POLISH || u[0] > CK_MAX_COUNT || u[1] > CK_MAX_COUNT || u[2] > CK_MAX_COUNT ||
        !finite_all(f, 8) || f[2] < 0 || f[3] < 0)
        return -1;
    c->kept = (int)u[0], c->tries = (int)u[1], c->tried = (int)u[2];
    c->budget = f[0], c->failed_budget = f[1], c->secs = f[2], c->elapsed = f[3];
    c->base_val = f[4], c->floor_val = f[5], c->tol_points = f[6], c->best_val = f[7];
    return 0;
}

static int read_rounds(ck_rbuf *r, pipe_ckpt *c)
{
    uint32_t n = ck_get_u32(r);
    if (r->bad || n > PIPE_MAX_ROUNDS || !(c->rounds = calloc(n ? n : 1, sizeof *c->rounds)))
        return -1;
    c->n_rounds = (int)n;
    for (uint32_t i = 0; i < n && !r->bad; ++i) {
        pipe_round *lg = &c->rounds[i];
        uint32_t u[6];
        for (int k = 0; k < 6; ++k)
            u[k] = ck_get_u32(r);
        double f[5];
        for (int k = 0; k < 5; ++k)
            f[k] = ck_get_f64(r);
        uint64_t params = ck_get_u64(r), macs = ck_get_u64(r);
        char *plan = ck_get_str(r, sizeof lg->plan - 1);
        int ok = plan && u[0] <= PIPE_ROUND_POLISH && u[1] <= 1 && u[2] <= CK_MAX_COUNT * 100u &&
                 u[3] <= CK_MAX_COUNT * 100u && u[4] <= CK_MAX_COUNT && u[5] <= CK_MAX_COUNT && finite_all(f, 5) &&
                 params < ((uint64_t)1 << 62) && macs < ((uint64_t)1 << 62);
        if (ok) {
            lg->kind = (pipe_round_kind)u[0], lg->accepted = (int)u[1], lg->a_only = (int)u[2];
            lg->b_only = (int)u[3], lg->epochs_done = (int)u[4], lg->number = (int)u[5];
            lg->budget = f[0], lg->val_pre = f[1], lg->val_post = f[2], lg->margin = f[3], lg->seconds = f[4];
            lg->params = (int64_t)params, lg->macs = (int64_t)macs;
            snprintf(lg->plan, sizeof lg->plan, "%s", plan);
        }
        free(plan);
        if (!ok)
            return -1;
    }
    return r->bad || r->at != r->len ? -1 : 0;
}

/* A plan written by put_plan: *p NULL when absent. */
static int read_plan(ck_rbuf *r, rs_plan **p, const char *path, rs_err *e)
{
    *p = NULL;
    uint32_t present = ck_get_u32(r);
    if (r->bad || present > 1)
        return rs_fail(e, "%s: the plans record is corrupt", path);
    if (!present)
        return 0;
    char *t = ck_get_str(r, CK_MAX_TEXT);
    if (!t)
        return rs_fail(e, "%s: the plans record is corrupt", path);
    char label[300];
    snprintf(label, sizeof label, "%.250s (a plan in it)", path);
    *p = plan_alloc();
    int rc = *p ? plan_parse_text(*p, t, label, e) : rs_fail(e, "out of memory");
    free(t);
    if (rc != 0) {
        plan_free(*p);
        *p = NULL;
    }
    return rc;
}

static int read_plans(ck_rbuf *r, pipe_ckpt *c, const char *path, rs_err *e)
{
    if (read_plan(r, &c->all, path, e) != 0 || read_plan(r, &c->p, path, e) != 0)
        return -1;
    uint32_t n = ck_get_u32(r);
    /* each plan takes at least 4 bytes: a count beyond what is left is corrupt, not a big allocation */
    if (r->bad || !c->all || n > (r->len - r->at) / 4)
        return rs_fail(e, "%s: the plans record is corrupt", path);
    if (!(c->rejected = calloc(n ? n : 1, sizeof *c->rejected)))
        return rs_fail(e, "%s: out of memory", path);
    for (uint32_t i = 0; i < n; ++i, ++c->n_rejected)
        if (read_plan(r, &c->rejected[i], path, e) != 0)
            return -1;
        else if (!c->rejected[i])
            return rs_fail(e, "%s: the plans record is corrupt", path);
    return r->at == r->len ? 0 : rs_fail(e, "%s: the plans record is corrupt", path);
}

static int read_recipe(const uint8_t *rec, size_t len, pipe_ckpt *c, const char *path, rs_err *e)
{
    if (!rec)
        return 0;
    ck_rbuf r = {rec, len, 0, 0};
    char *t = ck_get_str(&r, RECIPE_MAX_FILE);
    if (!t || r.at != r.len) {
        free(t);
        return rs_fail(e, "%s: the recipe record is corrupt", path);
    }
    char label[300];
    snprintf(label, sizeof label, "%.250s (the recipe in it)", path);
    c->recipe = recipe_alloc();
    int rc = c->recipe ? recipe_parse_text(c->recipe, t, label, e) : rs_fail(e, "out of memory");
    free(t);
    return rc;
}

/* The fine-tuning in progress (phase > PIPE_CK_START). */
static int read_ft(const uint8_t **rec, const size_t *len, pipe_ckpt *c, const char *path, rs_err *e)
{
    finetune_state *f = &c->ft;
    if (!rec[R_FTRN] || !rec[R_FTW] || !rec[R_STAT] || !rec[R_MOMT])
        return rs_fail(e, "%s: the fine-tuning in progress is missing", path);
    ck_rbuf r = {rec[R_FTRN], len[R_FTRN], 0, 0}, rs = {rec[R_STAT], len[R_STAT], 0, 0},
            rm = {rec[R_MOMT], len[R_MOMT], 0, 0};
    uint32_t be = ck_get_u32(&r);
    f->best_acc = ck_get_f64(&r);
    f->start_acc = ck_get_f64(&r);
    if (r.bad || r.at != r.len || be > CK_MAX_COUNT || !isfinite(f->best_acc) || !isfinite(f->start_acc) ||
        ck_read_stat(&rs, &f->train) != 0 || (int)be > f->train.epoch)
        return rs_fail(e, "%s: the fine-tuning state is corrupt", path);
    f->best_epoch = (int)be;
    if (!(f->w = ck_read_model(rec[R_FTW], len[R_FTW], path, e)) ||
        (rec[R_FTB] && !(f->best = ck_read_model(rec[R_FTB], len[R_FTB], path, e))))
        return -1;
    return ck_read_mom(&rm, f->w, &f->train, path, e);
}

pipe_ckpt *pipe_ckpt_load(const char *path, rs_err *e)
{
    const uint8_t *rec[R_N];
    size_t len[R_N];
    uint8_t *buf = NULL;
    if (ck_load(path, MAGIC, "compress checkpoint", tags, R_N, &buf, rec, len, e) != 0)
        return NULL;
    pipe_ckpt *c = calloc(1, sizeof *c);
    int rc = c ? 0 : rs_fail(e, "%s: out of memory", path);
    static const int needed[] = {R_IDNT, R_LOOP, R_RNDS, R_PLNS, R_MCUR};
    for (size_t k = 0; rc == 0 && k < sizeof needed / sizeof *needed; ++k)
        if (!rec[needed[k]])
            rc = rs_fail(e, "%s: the %.4s record is missing", path, (const char *)&tags[needed[k]]);
    ck_rbuf ri = {rec[R_IDNT], len[R_IDNT], 0, 0}, rl = {rec[R_LOOP], len[R_LOOP], 0, 0},
            rr = {rec[R_RNDS], len[R_RNDS], 0, 0}, rp = {rec[R_PLNS], len[R_PLNS], 0, 0};
    if (rc == 0 && (!(c->ident = ck_get_str(&ri, CK_MAX_TEXT)) || ri.at != ri.len))
        rc = rs_fail(e, "%s: the identification record is corrupt", path);
    if (rc == 0 && read_loop(&rl, c) != 0)
        rc = rs_fail(e, "%s: the run's counters are corrupt", path);
    if (rc == 0 && read_rounds(&rr, c) != 0)
        rc = rs_fail(e, "%s: the rounds record is corrupt", path);
    if (rc == 0)
        rc = read_plans(&rp, c, path, e);
    if (rc == 0)
        rc = read_recipe(rec[R_RCPE], len[R_RCPE], c, path, e);
    if (rc == 0 && !(c->cur = ck_read_model(rec[R_MCUR], len[R_MCUR], path, e)))
        rc = -1;
    if (rc == 0 && rec[R_MEXT] && !(c->ext = ck_read_model(rec[R_MEXT], len[R_MEXT], path, e)))
        rc = -1;
    int in_stage = c && (c->phase == PIPE_CK_STAGE || c->phase == PIPE_CK_EXTENSION);
    if (rc == 0 && ((in_stage && c->mode == PIPE_CK_STAGED && !c->p) ||
                    ((c->phase == PIPE_CK_EXTENSION) != (c->ext != NULL)) ||
                    (c->mode == PIPE_CK_REPLAY && c->phase != PIPE_CK_START && c->phase != PIPE_CK_STAGE) ||
                    (c->phase != PIPE_CK_START && c->n_rounds < 1)))
        rc = rs_fail(e, "%s: the run's state is inconsistent", path);
    if (rc == 0 && c->phase != PIPE_CK_START)
        rc = read_ft(rec, len, c, path, e);
    free(buf);
    if (rc != 0) {
        pipe_ckpt_free(c);
        return NULL;
    }
    return c;
}

const char *pipe_ckpt_ident(const pipe_ckpt *c)
{
    return c && c->ident ? c->ident : "";
}

const char *pipe_ckpt_where(const pipe_ckpt *c, char *buf, size_t len)
{
    static const char *const what[] = {"", "its fine-tuning", "its extension", "the polish"};
    int stage = c->mode == PIPE_CK_REPLAY ? c->tried + 1 : c->phase == PIPE_CK_START ? c->tried + 1 : c->tried;
    if (c->phase == PIPE_CK_START)
        snprintf(buf, len, "at the start of stage %d", stage);
    else if (c->phase == PIPE_CK_POLISH)
        snprintf(buf, len, "epoch %d of the polish", c->ft.train.epoch);
    else
        snprintf(buf, len, "stage %d, epoch %d of %s", stage, c->ft.train.epoch, what[c->phase]);
    return buf;
}

/* The value of `key` in ident text t ("KEY VALUE" lines) into v; 0 when absent. */
static int ident_value(const char *t, const char *key, size_t kl, char *v, size_t vlen)
{
    for (const char *s = t; s && *s;) {
        size_t n = strcspn(s, "\n");
        if (n > kl && !strncmp(s, key, kl) && s[kl] == ' ') {
            snprintf(v, vlen, "%.*s", (int)(n - kl - 1), s + kl + 1);
            return 1;
        }
        s += n + (s[n] == '\n');
    }
    return 0;
}

/* The first key of a whose value differs in b (or that b lacks) into what; 0 when none. */
static int first_diff(const char *a, const char *b, int a_is_saved, char *what, size_t len)
{
    for (const char *s = a; *s;) {
        size_t n = strcspn(s, "\n"), kl = strcspn(s, " \n");
        char key[128], va[512], vb[512];
        snprintf(key, sizeof key, "%.*s", (int)(kl < 127 ? kl : 127), s);
        ident_value(a, key, strlen(key), va, sizeof va);
        int has_b = ident_value(b, key, strlen(key), vb, sizeof vb);
        if (kl > 0 && (!has_b || strcmp(va, vb))) {
            const char *sv = a_is_saved ? va : has_b ? vb : "(none)", *nv = a_is_saved ? (has_b ? vb : "(none)") : va;
            snprintf(what, len, "%s: %s in the checkpoint, %s now", key, sv, nv);
            return 1;
        }
        s += n + (s[n] == '\n');
    }
    return 0;
}

int pipe_ident_diff(const char *saved, const char *now, char *what, size_t len)
{
    saved = saved ? saved : "", now = now ? now : "";
    return first_diff(saved, now, 1, what, len) || first_diff(now, saved, 0, what, len);
}

int pipe_file_ident(const char *path, char *buf, size_t len, rs_err *e)
{
    uint8_t *b = NULL;
    size_t n = 0;
    if (fileio_read_all(path, CK_MAX_FILE, &b, &n, e) != 0)
        return -1;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t at = 0; at < n;) { /* crc32 takes a uInt length */
        size_t step = n - at < ((size_t)1 << 30) ? n - at : ((size_t)1 << 30);
        crc = crc32(crc, b + at, (uInt)step);
        at += step;
    }
    snprintf(buf, len, "%zu bytes, crc32 %08lx", n, (unsigned long)crc);
    free(b);
    return 0;
}
