/* test_checkpoint.c — training checkpoints: a run interrupted after an epoch and resumed from its
 * checkpoint file ends bit-identical to the uninterrupted run (weights, BatchNormalization running
 * statistics, momentum, shuffle order and generator all carried over); damaged files are refused
 * with a message naming the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "rankscope/checkpoint.h"
#include "rankscope/fileio.h"
#include "rankscope/model.h"
#include "rankscope/train.h"
#include "rankscope/zoo.h"

enum { N = 96, F = 3 * 32 * 32 };

static float *make_data(uint8_t *labels)
{
    float *x = malloc((size_t)N * F * sizeof *x);
    uint64_t s = 12345;
    for (size_t i = 0; i < (size_t)N * F; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) & 0xffff) / 32768.0f - 1.0f;
    }
    for (int i = 0; i < N; ++i)
        labels[i] = (uint8_t)(i % 10);
    return x;
}

typedef struct stopper {
    int stop_after;
    const char *path;
    const train_options *o;
} stopper;

static int stop_epoch(void *user, const train_epoch_stats *s)
{
    return s->epoch >= ((stopper *)user)->stop_after;
}

static int save_ckpt(void *user, const rs_model *m, const train_state *s, rs_err *e)
{
    stopper *st = user;
    return checkpoint_save(st->path, m, s, st->o, "test run", e);
}

static void options(train_options *o)
{
    train_default_options(o);
    o->epochs = 3;
    o->batch = 32;
    o->lr = 0.05f;
    o->nthreads = 2;
    o->seed = 9;
}

/* Every float initializer of a equals b's of the same name, bit for bit. */
static int same_weights(const rs_model *a, const rs_model *b, char *why, size_t len)
{
    int compared = 0;
    for (int v = 0; v < a->n_values; ++v) {
        const rs_value *x = &a->values[v];
        if (!x->is_const || !x->f)
            continue;
        int w = model_find_value(b, x->name);
        if (w < 0 || model_value_numel(&b->values[w]) != model_value_numel(x) ||
            memcmp(x->f, b->values[w].f, (size_t)model_value_numel(x) * sizeof(float)) != 0) {
            snprintf(why, len, "%s differs", x->name);
            return 0;
        }
        ++compared;
    }
    snprintf(why, len, "%d tensors", compared);
    return compared > 0;
}

int main(void)
{
    uint8_t labels[N];
    float *x = make_data(labels);
    train_data d = {.n = N, .c = 3, .h = 32, .w = 32, .f = x, .labels = labels};
    rs_err e = {{0}};
    char path[] = "/tmp/rs_ckpt_test_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temporary file");
    close(fd);

    /* A: three epochs straight */
    rs_model *a = zoo_build("resnet20", 3, &e);
    train_options o;
    options(&o);
    int ok = a && train_model(a, &d, NULL, &o, NULL, &e) == 0;
    CHECK(ok, "uninterrupted run of 3 epochs (%s)", e.msg);

    /* B: stopped after epoch 1 with a checkpoint, resumed from the file */
    rs_model *b = zoo_build("resnet20", 3, &e);
    options(&o);
    stopper st = {.stop_after = 1, .path = path, .o = &o};
    o.on_epoch = stop_epoch, o.epoch_user = &st;
    o.on_checkpoint = save_ckpt, o.checkpoint_user = &st;
    ok = b && train_model(b, &d, NULL, &o, NULL, &e) == 0;
    CHECK(ok, "interrupted run stops after epoch 1 (%s)", e.msg);
    checkpoint c;
    ok = checkpoint_load(path, &c, &e) == 0;
    CHECK(ok && c.state.epoch == 1 && c.opts.epochs == 3 && c.opts.batch == 32 &&
              c.opts.seed == 9 && c.opts.nthreads == 2 && !strcmp(c.note, "test run"),
          "checkpoint reads back: epoch %d of %d, options and note (%s)", ok ? c.state.epoch : -1,
          ok ? c.opts.epochs : -1, ok ? e.msg : e.msg);
    if (ok) {
        char why[256];
        CHECK(same_weights(b, c.model, why, sizeof why), "checkpoint holds the epoch-1 weights and "
              "statistics (%s)", why);
        train_options r = c.opts;
        r.resume = &c.state;
        int rok = train_model(c.model, &d, NULL, &r, NULL, &e) == 0;
        CHECK(rok, "resumed run finishes epochs 2-3 (%s)", e.msg);
        CHECK(rok && a && same_weights(a, c.model, why, sizeof why),
              "resumed run is bit-identical to the uninterrupted one (%s)", why);
        checkpoint_free(&c);
    }

    /* damaged files */
    uint8_t *buf;
    size_t len;
    ok = fileio_read_all(path, (size_t)1 << 30, &buf, &len, &e) == 0;
    CHECK(ok && len > 1000, "checkpoint file has %zu bytes", ok ? len : 0);
    if (ok) {
        fileio_write_atomic(path, buf, len / 2, &e);
        CHECK(checkpoint_load(path, &c, &e) != 0 && strstr(e.msg, path) &&
                  (strstr(e.msg, "truncated") || strstr(e.msg, "checksum")),
              "a truncated checkpoint is refused: %s", e.msg);
        buf[len / 3] ^= 0x40;
        fileio_write_atomic(path, buf, len, &e);
        CHECK(checkpoint_load(path, &c, &e) != 0 && strstr(e.msg, "checksum"),
              "a flipped byte is caught by the checksum: %s", e.msg);
        memcpy(buf, "NOTACKPT", 8);
        fileio_write_atomic(path, buf, len, &e);
        CHECK(checkpoint_load(path, &c, &e) != 0 && strstr(e.msg, "not a rankscope checkpoint"),
              "a foreign file is refused: %s", e.msg);
        free(buf);
    }
    unlink(path);
    model_free(a);
    model_free(b);
    free(x);
    return check_done();
}
