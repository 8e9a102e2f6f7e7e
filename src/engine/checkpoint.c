/* checkpoint.c — training checkpoints (see checkpoint.h for the layout) and the record container
 * every engine checkpoint file uses (ckpt_internal.h). */
#include "rankscope/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "rankscope/fileio.h"
#include "rankscope/guard.h"
#include "rankscope/onnx.h"

#include "ckpt_internal.h"

#define MAGIC "RSCKPT1\n"
enum {
    TAG_OPTS = CK_TAG('O', 'P', 'T', 'S'),
    TAG_ONNX = CK_TAG('O', 'N', 'N', 'X'),
    TAG_NOTE = CK_TAG('N', 'O', 'T', 'E')
};

/* ---- writing: a growable little-endian buffer ---------------------------------------------------- */
void ck_put(ck_wbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

void ck_put_u32(ck_wbuf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; ++i)
        x[i] = (uint8_t)(v >> (8 * i));
    ck_put(b, x, 4);
}

void ck_put_u64(ck_wbuf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; ++i)
        x[i] = (uint8_t)(v >> (8 * i));
    ck_put(b, x, 8);
}

void ck_put_f64(ck_wbuf *b, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    ck_put_u64(b, v);
}

void ck_put_str(ck_wbuf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    ck_put_u32(b, (uint32_t)n);
    ck_put(b, s ? s : "", n);
}

static void put_f32s(ck_wbuf *b, const float *f, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        uint32_t v;
        memcpy(&v, &f[i], sizeof v);
        ck_put_u32(b, v);
    }
}

size_t ck_begin(ck_wbuf *b, uint32_t tag)
{
    ck_put_u32(b, tag);
    size_t at = b->len;
    ck_put_u64(b, 0);
    return at;
}

void ck_end(ck_wbuf *b, size_t at)
{
    if (b->oom)
        return;
    uint64_t n = b->len - at - 8;
    for (int i = 0; i < 8; ++i)
        b->p[at + i] = (uint8_t)(n >> (8 * i));
}

void ck_put_state(ck_wbuf *b, const rs_model *m, const train_state *s)
{
    size_t at = ck_begin(b, CK_TAG_STAT);
    ck_put_u64(b, (uint64_t)s->epoch);
    ck_put_u64(b, (uint64_t)s->step);
    for (int i = 0; i < 4; ++i)
        ck_put_u64(b, s->rng[i]);
    ck_put_u64(b, (uint64_t)s->n);
    for (int i = 0; i < s->n; ++i)
        ck_put_u32(b, (uint32_t)s->perm[i]);
    ck_end(b, at);
    at = ck_begin(b, CK_TAG_MOMT);
    uint32_t count = 0;
    for (int v = 0; v < s->n_values; ++v)
        count += s->mom[v] != NULL;
    ck_put_u32(b, count);
    for (int v = 0; v < s->n_values; ++v) {
        if (!s->mom[v])
            continue;
        const char *name = m->values[v].name;
        size_t nl = strlen(name), cnt = (size_t)model_value_numel(&m->values[v]);
        ck_put_u32(b, (uint32_t)nl);
        ck_put(b, name, nl);
        ck_put_u64(b, cnt);
        put_f32s(b, s->mom[v], cnt);
    }
    ck_end(b, at);
}

int ck_put_model(ck_wbuf *b, uint32_t tag, const rs_model *m, rs_err *e)
{
    uint8_t *onnx = NULL;
    size_t onnx_len = 0;
    if (guard_model_finite(m, e) != 0 || onnx_save_buffer(m, &onnx, &onnx_len, e) != 0)
        return -1;
    size_t at = ck_begin(b, tag);
    ck_put(b, onnx, onnx_len);
    ck_end(b, at);
    free(onnx);
    return 0;
}

int ck_finish(ck_wbuf *b, const char *path, rs_err *e)
{
    size_t at = ck_begin(b, CK_TAG_END);
    if (!b->oom)
        ck_put_u32(b, (uint32_t)crc32(0L, b->p, (uInt)(at - 4)));
    ck_end(b, at);
    int rc = b->oom ? rs_fail(e, "%s: out of memory writing the checkpoint", path)
                    : fileio_write_atomic(path, b->p, b->len, e);
    free(b->p);
    memset(b, 0, sizeof *b);
    return rc;
}

int checkpoint_save(const char *path, const rs_model *m, const train_state *s,
                    const train_options *o, const char *note, rs_err *e)
{
    ck_wbuf b = {0};
    ck_put(&b, MAGIC, 8);
    size_t at = ck_begin(&b, TAG_OPTS);
    ck_put_u64(&b, (uint64_t)o->epochs);
    ck_put_u64(&b, (uint64_t)o->batch);
    ck_put_f64(&b, o->lr);
    ck_put_f64(&b, o->momentum);
    ck_put_f64(&b, o->weight_decay);
    ck_put_u64(&b, (uint64_t)o->schedule);
    ck_put_f64(&b, o->warmup);
    ck_put_u64(&b, o->seed);
    ck_put_u64(&b, (uint64_t)o->augment);
    ck_put_u64(&b, (uint64_t)o->pad);
    ck_put_f64(&b, o->pad_value);
    ck_put_u64(&b, (uint64_t)o->nthreads);
    ck_end(&b, at);
    ck_put_state(&b, m, s);
    if (ck_put_model(&b, TAG_ONNX, m, e) != 0) {
        free(b.p);
        return rs_failctx(e, "%s", path);
    }
    at = ck_begin(&b, TAG_NOTE);
    if (note)
        ck_put(&b, note, strnlen(note, 255));
    ck_end(&b, at);
    return ck_finish(&b, path, e);
}

/* ---- reading ------------------------------------------------------------------------------------ */
const uint8_t *ck_take(ck_rbuf *r, size_t n)
{
    if (r->bad || n > r->len - r->at) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += n;
    return p;
}

uint32_t ck_get_u32(ck_rbuf *r)
{
    const uint8_t *x = ck_take(r, 4);
    uint32_t v = 0;
    for (int i = 0; x && i < 4; ++i)
        v |= (uint32_t)x[i] << (8 * i);
    return v;
}

uint64_t ck_get_u64(ck_rbuf *r)
{
    const uint8_t *x = ck_take(r, 8);
    uint64_t v = 0;
    for (int i = 0; x && i < 8; ++i)
        v |= (uint64_t)x[i] << (8 * i);
    return v;
}

double ck_get_f64(ck_rbuf *r)
{
    uint64_t v = ck_get_u64(r);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

char *ck_get_str(ck_rbuf *r, size_t max)
{
    uint32_t n = ck_get_u32(r);
    const uint8_t *p = r->bad || n > max ? NULL : ck_take(r, n);
    char *s = p ? malloc((size_t)n + 1) : NULL;
    if (!s || memchr(p, 0, n)) {
        free(s);
        r->bad = 1;
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

void ck_state_free(train_state *s)
{
    if (s->mom)
        for (int v = 0; v < s->n_values; ++v)
            free(s->mom[v]);
    free(s->mom);
    free(s->perm);
    s->mom = NULL, s->perm = NULL;
}

void checkpoint_free(checkpoint *c)
{
    if (!c)
        return;
    ck_state_free(&c->state);
    model_free(c->model);
    memset(c, 0, sizeof *c);
}

static int read_opts(ck_rbuf *r, train_options *o)
{
    train_default_options(o);
    uint64_t epochs = ck_get_u64(r), batch = ck_get_u64(r);
    o->lr = (float)ck_get_f64(r);
    o->momentum = (float)ck_get_f64(r);
    o->weight_decay = (float)ck_get_f64(r);
    uint64_t sched = ck_get_u64(r);
    o->warmup = (float)ck_get_f64(r);
    o->seed = ck_get_u64(r);
    uint64_t aug = ck_get_u64(r), pad = ck_get_u64(r);
    o->pad_value = (float)ck_get_f64(r);
    uint64_t threads = ck_get_u64(r);
    if (r->bad || epochs < 1 || epochs > 100000 || batch < 1 || batch > 65536 || sched > 2 ||
        aug > 1 || pad > 64 || threads > 64 || !(o->lr > 0) || !isfinite(o->lr) ||
        !(o->momentum >= 0) || !isfinite(o->momentum) || !(o->weight_decay >= 0) ||
        !isfinite(o->weight_decay) || !(o->warmup >= 0 && o->warmup <= 1) ||
        !isfinite(o->pad_value))
        return -1;
    o->epochs = (int)epochs, o->batch = (int)batch, o->schedule = (train_schedule)sched;
    o->augment = (int)aug, o->pad = (int)pad, o->nthreads = (int)threads;
    return 0;
}

int ck_read_stat(ck_rbuf *r, train_state *s)
{
    uint64_t epoch = ck_get_u64(r), step = ck_get_u64(r);
    for (int i = 0; i < 4; ++i)
        s->rng[i] = ck_get_u64(r);
    uint64_t n = ck_get_u64(r);
    if (r->bad || epoch > 100000 || step > ((uint64_t)1 << 40) || n < 1 || n > 10000000 ||
        n * 4 > r->len - r->at)
        return -1;
    s->epoch = (int)epoch, s->step = (long)step, s->n = (int)n;
    if (!(s->perm = malloc(n * sizeof *s->perm)))
        return -1;
    for (uint64_t i = 0; i < n; ++i) {
        uint32_t p = ck_get_u32(r);
        if (p >= n)
            return -1;
        s->perm[i] = (int)p;
    }
    return r->bad ? -1 : 0;
}

int ck_read_mom(ck_rbuf *r, const rs_model *m, train_state *s, const char *path, rs_err *e)
{
    s->n_values = m->n_values;
    if (!(s->mom = calloc((size_t)(m->n_values > 0 ? m->n_values : 1), sizeof *s->mom)))
        return rs_fail(e, "%s: out of memory", path);
    uint32_t count = ck_get_u32(r);
    for (uint32_t k = 0; k < count && !r->bad; ++k) {
        uint32_t nl = ck_get_u32(r);
        const uint8_t *name = ck_take(r, nl);
        uint64_t cnt = ck_get_u64(r);
        if (r->bad || nl > 4096 || cnt > (r->len - r->at) / 4)
            break;
        char nm[4097];
        memcpy(nm, name, nl);
        nm[nl] = 0;
        int v = model_find_value(m, nm);
        if (v < 0 || !m->values[v].is_const || !m->values[v].f ||
            (uint64_t)model_value_numel(&m->values[v]) != cnt || s->mom[v])
            return rs_fail(e, "%s: momentum for \"%.64s\" does not match the model", path, nm);
        if (!(s->mom[v] = malloc(cnt * sizeof(float))))
            return rs_fail(e, "%s: out of memory", path);
        for (uint64_t i = 0; i < cnt; ++i) {
            uint32_t bits = ck_get_u32(r);
            memcpy(&s->mom[v][i], &bits, sizeof bits);
            if (!isfinite(s->mom[v][i]))
                return rs_fail(e, "%s: momentum for \"%.64s\" holds a non-finite value", path, nm);
        }
    }
    return r->bad ? rs_fail(e, "%s: the momentum record is truncated", path) : 0;
}

rs_model *ck_read_model(const uint8_t *rec, size_t len, const char *path, rs_err *e)
{
    rs_model *m = onnx_load_buffer_ex(rec, len, path, ONNX_LOAD_KEEP_BATCHNORM, e);
    if (m && guard_model_finite(m, e) != 0) { /* resuming would train NaN further */
        rs_failctx(e, "%s", path);
        model_free(m);
        m = NULL;
    }
    return m;
}

int ck_load(const char *path, const char *magic, const char *what, const uint32_t *tags, int ntags,
            uint8_t **bufp, const uint8_t **rec, size_t *rec_len, rs_err *e)
{
    uint8_t *buf;
    size_t len;
    *bufp = NULL;
    for (int k = 0; k < ntags; ++k)
        rec[k] = NULL, rec_len[k] = 0;
    if (fileio_read_all(path, CK_MAX_FILE, &buf, &len, e) != 0)
        return -1;
    ck_rbuf r = {buf, len, 0, 0};
    const uint8_t *mg = ck_take(&r, 8);
    if (!mg || memcmp(mg, magic, 8) != 0) {
        free(buf);
        return rs_fail(e, "%s: not a rankscope %s (bad magic)", path, what);
    }
    /* find the records first; END's CRC covers everything before END's tag */
    int seen_end = 0;
    while (!r.bad && !seen_end && r.at < r.len) {
        size_t tag_at = r.at;
        uint32_t tag = ck_get_u32(&r);
        uint64_t n = ck_get_u64(&r);
        const uint8_t *p = ck_take(&r, (size_t)(n <= r.len ? n : r.len + 1));
        if (r.bad)
            break;
        if (tag == CK_TAG_END) {
            seen_end = 1;
            if (n != 4 || crc32(0L, buf, (uInt)tag_at) !=
                              (uLong)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24)) {
                free(buf);
                return rs_fail(e, "%s: checksum mismatch (the file is corrupt or truncated)", path);
            }
            continue;
        }
        int k = 0;
        while (k < ntags && tags[k] != tag)
            ++k;
        if (k == ntags)
            continue; /* a record of a later version: skip it */
        if (rec[k]) {
            free(buf);
            return rs_fail(e, "%s: record %.4s appears twice", path, (const char *)&tags[k]);
        }
        rec[k] = p, rec_len[k] = (size_t)n;
    }
    if (!seen_end) {
        free(buf);
        return rs_fail(e, "%s: truncated %s (no end record)", path, what);
    }
    *bufp = buf;
    return 0;
}

int checkpoint_load(const char *path, checkpoint *c, rs_err *e)
{
    memset(c, 0, sizeof *c);
    static const uint32_t tags[5] = {TAG_OPTS, CK_TAG_STAT, CK_TAG_MOMT, TAG_ONNX, TAG_NOTE};
    const uint8_t *rec[5];
    size_t rec_len[5];
    uint8_t *buf;
    if (ck_load(path, MAGIC, "checkpoint", tags, 5, &buf, rec, rec_len, e) != 0)
        return -1;
    int rc = -1;
    for (int k = 0; k < 4; ++k)
        if (!rec[k]) {
            rs_fail(e, "%s: the %.4s record is missing", path, (const char *)&tags[k]);
            goto out;
        }
    ck_rbuf ro = {rec[0], rec_len[0], 0, 0}, rs = {rec[1], rec_len[1], 0, 0}, rm = {rec[2], rec_len[2], 0, 0};
    if (read_opts(&ro, &c->opts) != 0) {
        rs_fail(e, "%s: the training options are corrupt", path);
        goto out;
    }
    if (ck_read_stat(&rs, &c->state) != 0 || c->state.epoch > c->opts.epochs) {
        rs_fail(e, "%s: the training state is corrupt", path);
        goto out;
    }
    if (!(c->model = ck_read_model(rec[3], rec_len[3], path, e)))
        goto out;
    if (ck_read_mom(&rm, c->model, &c->state, path, e) != 0)
        goto out;
    if (rec[4]) {
        size_t n = rec_len[4] < sizeof c->note - 1 ? rec_len[4] : sizeof c->note - 1;
        memcpy(c->note, rec[4], n);
        c->note[n] = 0;
    }
    rc = 0;
out:
    free(buf);
    if (rc)
        checkpoint_free(c);
    return rc;
}
