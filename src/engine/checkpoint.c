/* checkpoint.c — training checkpoints (see checkpoint.h for the layout). */
#include "rankscope/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "rankscope/fileio.h"
#include "rankscope/guard.h"
#include "rankscope/onnx.h"

#define MAGIC "RSCKPT1\n"
#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
enum {
    TAG_OPTS = TAG('O', 'P', 'T', 'S'),
    TAG_STAT = TAG('S', 'T', 'A', 'T'),
    TAG_MOMT = TAG('M', 'O', 'M', 'T'),
    TAG_ONNX = TAG('O', 'N', 'N', 'X'),
    TAG_NOTE = TAG('N', 'O', 'T', 'E'),
    TAG_END = TAG('E', 'N', 'D', ' ')
};
#define CKPT_MAX_FILE ((size_t)1 << 31)

/* ---- writing: a growable little-endian buffer ---------------------------------------------------- */
typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
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

static void put_u32(wbuf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; ++i)
        x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, 4);
}

static void put_u64(wbuf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; ++i)
        x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, 8);
}

static void put_f64(wbuf *b, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_u64(b, v);
}

static void put_f32s(wbuf *b, const float *f, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        uint32_t v;
        memcpy(&v, &f[i], sizeof v);
        put_u32(b, v);
    }
}

/* Starts a record; returns where its length goes (patched by end_record). */
static size_t begin_record(wbuf *b, uint32_t tag)
{
    put_u32(b, tag);
    size_t at = b->len;
    put_u64(b, 0);
    return at;
}

static void end_record(wbuf *b, size_t at)
{
    if (b->oom)
        return;
    uint64_t n = b->len - at - 8;
    for (int i = 0; i < 8; ++i)
        b->p[at + i] = (uint8_t)(n >> (8 * i));
}

int checkpoint_save(const char *path, const rs_model *m, const train_state *s,
                    const train_options *o, const char *note, rs_err *e)
{
    uint8_t *onnx = NULL;
    size_t onnx_len = 0;
    if (guard_model_finite(m, e) != 0 || onnx_save_buffer(m, &onnx, &onnx_len, e) != 0)
        return rs_failctx(e, "%s", path);
    wbuf b = {0};
    put(&b, MAGIC, 8);
    size_t at = begin_record(&b, TAG_OPTS);
    put_u64(&b, (uint64_t)o->epochs);
    put_u64(&b, (uint64_t)o->batch);
    put_f64(&b, o->lr);
    put_f64(&b, o->momentum);
    put_f64(&b, o->weight_decay);
    put_u64(&b, (uint64_t)o->schedule);
    put_f64(&b, o->warmup);
    put_u64(&b, o->seed);
    put_u64(&b, (uint64_t)o->augment);
    put_u64(&b, (uint64_t)o->pad);
    put_f64(&b, o->pad_value);
    put_u64(&b, (uint64_t)o->nthreads);
    end_record(&b, at);
    at = begin_record(&b, TAG_STAT);
    put_u64(&b, (uint64_t)s->epoch);
    put_u64(&b, (uint64_t)s->step);
    for (int i = 0; i < 4; ++i)
        put_u64(&b, s->rng[i]);
    put_u64(&b, (uint64_t)s->n);
    for (int i = 0; i < s->n; ++i)
        put_u32(&b, (uint32_t)s->perm[i]);
    end_record(&b, at);
    at = begin_record(&b, TAG_MOMT);
    uint32_t count = 0;
    for (int v = 0; v < s->n_values; ++v)
        count += s->mom[v] != NULL;
    put_u32(&b, count);
    for (int v = 0; v < s->n_values; ++v) {
        if (!s->mom[v])
            continue;
        const char *name = m->values[v].name;
        size_t nl = strlen(name), cnt = (size_t)model_value_numel(&m->values[v]);
        put_u32(&b, (uint32_t)nl);
        put(&b, name, nl);
        put_u64(&b, cnt);
        put_f32s(&b, s->mom[v], cnt);
    }
    end_record(&b, at);
    at = begin_record(&b, TAG_ONNX);
    put(&b, onnx, onnx_len);
    end_record(&b, at);
    free(onnx);
    at = begin_record(&b, TAG_NOTE);
    if (note)
        put(&b, note, strnlen(note, 255));
    end_record(&b, at);
    at = begin_record(&b, TAG_END);
    if (!b.oom)
        put_u32(&b, (uint32_t)crc32(0L, b.p, (uInt)(at - 4)));
    end_record(&b, at);
    if (b.oom) {
        free(b.p);
        return rs_fail(e, "%s: out of memory writing the checkpoint", path);
    }
    int rc = fileio_write_atomic(path, b.p, b.len, e);
    free(b.p);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------------------ */
typedef struct rbuf {
    const uint8_t *p;
    size_t len, at;
    int bad;
} rbuf;

static const uint8_t *take(rbuf *r, size_t n)
{
    if (r->bad || n > r->len - r->at) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += n;
    return p;
}

static uint32_t get_u32(rbuf *r)
{
    const uint8_t *x = take(r, 4);
    uint32_t v = 0;
    for (int i = 0; x && i < 4; ++i)
        v |= (uint32_t)x[i] << (8 * i);
    return v;
}

static uint64_t get_u64(rbuf *r)
{
    const uint8_t *x = take(r, 8);
    uint64_t v = 0;
    for (int i = 0; x && i < 8; ++i)
        v |= (uint64_t)x[i] << (8 * i);
    return v;
}

static double get_f64(rbuf *r)
{
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

void checkpoint_free(checkpoint *c)
{
    if (!c)
        return;
    if (c->state.mom)
        for (int v = 0; v < c->state.n_values; ++v)
            free(c->state.mom[v]);
    free(c->state.mom);
    free(c->state.perm);
    model_free(c->model);
    memset(c, 0, sizeof *c);
}

static int read_opts(rbuf *r, train_options *o)
{
    train_default_options(o);
    uint64_t epochs = get_u64(r), batch = get_u64(r);
    o->lr = (float)get_f64(r);
    o->momentum = (float)get_f64(r);
    o->weight_decay = (float)get_f64(r);
    uint64_t sched = get_u64(r);
    o->warmup = (float)get_f64(r);
    o->seed = get_u64(r);
    uint64_t aug = get_u64(r), pad = get_u64(r);
    o->pad_value = (float)get_f64(r);
    uint64_t threads = get_u64(r);
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

static int read_stat(rbuf *r, train_state *s)
{
    uint64_t epoch = get_u64(r), step = get_u64(r);
    for (int i = 0; i < 4; ++i)
        s->rng[i] = get_u64(r);
    uint64_t n = get_u64(r);
    if (r->bad || epoch > 100000 || step > ((uint64_t)1 << 40) || n < 1 || n > 10000000 ||
        n * 4 > r->len - r->at)
        return -1;
    s->epoch = (int)epoch, s->step = (long)step, s->n = (int)n;
    if (!(s->perm = malloc(n * sizeof *s->perm)))
        return -1;
    for (uint64_t i = 0; i < n; ++i) {
        uint32_t p = get_u32(r);
        if (p >= n)
            return -1;
        s->perm[i] = (int)p;
    }
    return r->bad ? -1 : 0;
}

static int read_mom(rbuf *r, rs_model *m, train_state *s, rs_err *e, const char *path)
{
    s->n_values = m->n_values;
    if (!(s->mom = calloc((size_t)(m->n_values > 0 ? m->n_values : 1), sizeof *s->mom)))
        return rs_fail(e, "%s: out of memory", path);
    uint32_t count = get_u32(r);
    for (uint32_t k = 0; k < count && !r->bad; ++k) {
        uint32_t nl = get_u32(r);
        const uint8_t *name = take(r, nl);
        uint64_t cnt = get_u64(r);
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
            uint32_t bits = get_u32(r);
            memcpy(&s->mom[v][i], &bits, sizeof bits);
            if (!isfinite(s->mom[v][i]))
                return rs_fail(e, "%s: momentum for \"%.64s\" holds a non-finite value", path, nm);
        }
    }
    return r->bad ? rs_fail(e, "%s: the momentum record is truncated", path) : 0;
}

int checkpoint_load(const char *path, checkpoint *c, rs_err *e)
{
    memset(c, 0, sizeof *c);
    uint8_t *buf;
    size_t len;
    if (fileio_read_all(path, CKPT_MAX_FILE, &buf, &len, e) != 0)
        return -1;
    int rc = -1;
    rbuf r = {buf, len, 0, 0};
    const uint8_t *magic = take(&r, 8);
    if (!magic || memcmp(magic, MAGIC, 8) != 0) {
        rs_fail(e, "%s: not a rankscope checkpoint (bad magic)", path);
        goto out;
    }
    /* find the records first; END's CRC covers everything before END's tag */
    const uint8_t *rec[6] = {0};
    size_t rec_len[6] = {0};
    static const uint32_t tags[6] = {TAG_OPTS, TAG_STAT, TAG_MOMT, TAG_ONNX, TAG_NOTE, TAG_END};
    int seen_end = 0;
    while (!r.bad && !seen_end && r.at < r.len) {
        size_t tag_at = r.at;
        uint32_t tag = get_u32(&r);
        uint64_t n = get_u64(&r);
        const uint8_t *p = take(&r, (size_t)(n <= r.len ? n : r.len + 1));
        if (r.bad)
            break;
        int k = 0;
        while (k < 6 && tags[k] != tag)
            ++k;
        if (k == 6)
            continue; /* a record of a later version: skip it */
        if (rec[k]) {
            rs_fail(e, "%s: record %.4s appears twice", path, (const char *)&tags[k]);
            goto out;
        }
        rec[k] = p, rec_len[k] = (size_t)n;
        if (tag == TAG_END) {
            seen_end = 1;
            if (n != 4 || crc32(0L, buf, (uInt)tag_at) !=
                              (uLong)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24)) {
                rs_fail(e, "%s: checksum mismatch (the file is corrupt or truncated)", path);
                goto out;
            }
        }
    }
    if (!seen_end) {
        rs_fail(e, "%s: truncated checkpoint (no end record)", path);
        goto out;
    }
    for (int k = 0; k < 5; ++k)
        if (!rec[k] && tags[k] != TAG_NOTE) {
            rs_fail(e, "%s: the %.4s record is missing", path, (const char *)&tags[k]);
            goto out;
        }
    rbuf ro = {rec[0], rec_len[0], 0, 0}, rs = {rec[1], rec_len[1], 0, 0}, rm = {rec[2], rec_len[2], 0, 0};
    if (read_opts(&ro, &c->opts) != 0) {
        rs_fail(e, "%s: the training options are corrupt", path);
        goto out;
    }
    if (read_stat(&rs, &c->state) != 0 || c->state.epoch > c->opts.epochs) {
        rs_fail(e, "%s: the training state is corrupt", path);
        goto out;
    }
    c->model = onnx_load_buffer_ex(rec[3], rec_len[3], path, ONNX_LOAD_KEEP_BATCHNORM, e);
    if (!c->model)
        goto out;
    if (guard_model_finite(c->model, e) != 0) { /* resuming would train NaN further */
        rs_failctx(e, "%s", path);
        goto out;
    }
    if (read_mom(&rm, c->model, &c->state, e, path) != 0)
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
