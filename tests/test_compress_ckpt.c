/* test_compress_ckpt.c — checkpoints of staged compression and of a recipe replay (pipeline.h):
 * a run interrupted anywhere (cancelled through the training progress callback in a stage's
 * fine-tuning, its extension or the polish, or at a stage's start through on_stage) and resumed
 * from its checkpoint file ends bit-identically to the run never interrupted: the same net (ONNX
 * bytes), the same rounds (accuracies before and after, verdicts, image counts, params), the
 * same recipe text; resumed twice in a row too. And hostile files: truncated, a flipped byte,
 * a foreign magic, a training checkpoint, the other workflow's checkpoint, another model's — each
 * refused with an error naming the problem, nothing returned. On the shipped net and sample
 * (1,000 images train, 1,000 validate), 2-epoch stages on 2 threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "rankscope/checkpoint.h"
#include "rankscope/fileio.h"
#include "rankscope/onnx.h"
#include "rankscope/pipeline.h"
#include "testnet.h"

typedef struct stopper {
    long calls, cancel_at;  /* training progress calls; cancel at that one (0: never) */
    int stage_calls, stop_stage_at; /* PIPE_STAGE_NEXT calls; stop at that one (0: never) */
} stopper;

static int on_progress(void *user, double f, const char *what)
{
    stopper *s = user;
    (void)f, (void)what;
    return ++s->calls == s->cancel_at;
}

static int on_stage(void *user, pipe_compress_stage st, const pipe_compress_result *r)
{
    stopper *s = user;
    (void)r;
    return st == PIPE_STAGE_NEXT && ++s->stage_calls == s->stop_stage_at;
}

typedef struct outcome {
    int rc, cancelled, n_rounds;
    uint8_t *onnx;
    size_t len;
    char *recipe;
    pipe_round rounds[PIPE_MAX_ROUNDS];
    char err[RS_ERR_LEN];
} outcome;

static void outcome_free(outcome *o)
{
    free(o->onnx);
    free(o->recipe);
    memset(o, 0, sizeof *o);
}

typedef struct fixture {
    rs_model *m;
    cifar10_set *set, tr, va;
    rs_recipe *replay; /* NULL: staged */
    const char *ckpt;
} fixture;

static void options(pipe_compress_options *o, stopper *st, const fixture *fx, const pipe_ckpt *resume)
{
    pipe_compress_default_options(o);
    o->search.tolerance = 2.0;
    o->search.nthreads = 2;
    o->search.conv_methods = (1u << DECOMP_SPATIAL_SVD) | (1u << DECOMP_TUCKER2);
    o->finetune.train.nthreads = 2;
    o->finetune.train.lr = 0.01f;
    o->finetune.train.progress = on_progress;
    o->finetune.train.progress_user = st;
    o->epochs = 2;
    o->stages = 2;
    o->rounds = 4;
    o->extend_slack = 100; /* every rejected stage is extended */
    o->polish_epochs = 2;
    o->stage_budget = 5;
    o->on_stage = on_stage;
    o->user = st;
    o->checkpoint = fx->ckpt;
    o->ident = "model shipped\nepochs 2\n";
    o->resume = resume;
}

static void run(const fixture *fx, stopper *st, const pipe_ckpt *resume, outcome *out)
{
    memset(out, 0, sizeof *out);
    pipe_compress_options o;
    options(&o, st, fx, resume);
    pipe_compress_result *r = calloc(1, sizeof *r);
    rs_recipe *rec = recipe_alloc();
    rs_err e = {{0}};
    out->rc = !r || !rec ? -1
              : fx->replay ? pipe_recipe_replay(fx->m, &fx->tr, &fx->va, fx->replay, &o, r, &e)
                           : pipe_staged_run(fx->m, &fx->tr, &fx->va, &o, r, rec, &e);
    snprintf(out->err, sizeof out->err, "%s", e.msg);
    if (out->rc == 0) {
        out->cancelled = r->cancelled;
        out->n_rounds = r->n_rounds;
        memcpy(out->rounds, r->rounds, sizeof out->rounds);
        if (onnx_save_buffer(r->model, &out->onnx, &out->len, &e) != 0)
            out->rc = -1;
        if (rec->n_stages > 0 && recipe_format(rec, &out->recipe, &e) != 0)
            out->rc = -1;
    }
    recipe_free(rec);
    pipe_compress_result_free(r);
    free(r);
}

/* a and b agree on everything a run reports but wall time. */
static int same(const outcome *a, const outcome *b, char *why, size_t len)
{
    snprintf(why, len, "ok");
    if (a->rc || b->rc || a->cancelled || b->cancelled)
        return snprintf(why, len, "rc %d/%d cancelled %d/%d (%.100s%.100s)", a->rc, b->rc, a->cancelled, b->cancelled, a->err,
                        b->err), 0;
    if (a->len != b->len || memcmp(a->onnx, b->onnx, a->len))
        return snprintf(why, len, "the nets differ (%zu / %zu bytes)", a->len, b->len), 0;
    if (a->n_rounds != b->n_rounds)
        return snprintf(why, len, "%d / %d rounds", a->n_rounds, b->n_rounds), 0;
    for (int i = 0; i < a->n_rounds; ++i) {
        const pipe_round *x = &a->rounds[i], *y = &b->rounds[i];
        if (x->kind != y->kind || x->val_pre != y->val_pre || x->val_post != y->val_post || x->accepted != y->accepted ||
            x->a_only != y->a_only || x->b_only != y->b_only || x->params != y->params || x->macs != y->macs ||
            x->epochs_done != y->epochs_done || x->number != y->number || x->budget != y->budget ||
            strcmp(x->plan, y->plan))
            return snprintf(why, len, "round %d differs: val %.4f/%.4f -> %.4f/%.4f, %s / %s", i + 1, x->val_pre,
                            y->val_pre, x->val_post, y->val_post, x->plan, y->plan), 0;
    }
    if ((a->recipe == NULL) != (b->recipe == NULL) || (a->recipe && strcmp(a->recipe, b->recipe)))
        return snprintf(why, len, "the recipes differ"), 0;
    return 1;
}

/* Interrupted (cancel_at progress calls, or at the stop_stage_at-th stage start), then resumed from
 * the file until done (a resumed run interrupted again at `again` more calls, when > 0). */
static void interrupted_case(const fixture *fx, const outcome *ref, const char *label, long cancel_at,
                             int stop_stage_at, long again)
{
    stopper st = {0, cancel_at, 0, stop_stage_at};
    outcome a, b;
    memset(&b, 0, sizeof b);
    unlink(fx->ckpt);
    run(fx, &st, NULL, &a);
    /* a replay reports a cancel as RS_CANCELLED, a staged run as a result marked cancelled */
    CHECK((a.rc == 0 && a.cancelled) || (fx->replay && a.rc == RS_CANCELLED), "%s: the run stops there (%s)", label,
          a.err);
    rs_err e = {{0}};
    pipe_ckpt *c = pipe_ckpt_load(fx->ckpt, &e);
    char where[96] = "";
    CHECK(c != NULL, "%s: its checkpoint reads back: %s (%s)", label, c ? pipe_ckpt_where(c, where, sizeof where) : "",
          c ? "ok" : e.msg);
    if (c && again > 0) {
        stopper st2 = {0, again, 0, 0};
        outcome_free(&b);
        run(fx, &st2, c, &b);
        pipe_ckpt_free(c);
        c = pipe_ckpt_load(fx->ckpt, &e);
        CHECK(((b.rc == 0 && b.cancelled) || (fx->replay && b.rc == RS_CANCELLED)) && c, "%s: the resumed run interrupted again, %ld calls later (%s)", label,
              again, c ? pipe_ckpt_where(c, where, sizeof where) : e.msg);
        outcome_free(&b);
    }
    if (c) {
        stopper none = {0};
        run(fx, &none, c, &b);
        char why[512];
        CHECK(same(ref, &b, why, sizeof why), "%s: resumed, it ends as the uninterrupted run (%s)", label, why);
        outcome_free(&b);
    }
    pipe_ckpt_free(c);
    outcome_free(&a);
}

/* The file damaged in each way a disk or a user can damage it: refused, nothing returned. */
static void hostile(const fixture *fx, const char *train_ckpt)
{
    rs_err e = {{0}};
    uint8_t *buf = NULL;
    size_t len = 0;
    int ok = fileio_read_all(fx->ckpt, (size_t)1 << 30, &buf, &len, &e) == 0;
    CHECK(ok && len > 1000, "a checkpoint to damage (%zu bytes)", len);
    if (!ok)
        return;
    char path[] = "/tmp/rs_cmp_hostile_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    static const size_t cuts[] = {0, 5, 8, 20, 100};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts + 2; ++i) {
        size_t cut = i < sizeof cuts / sizeof *cuts ? cuts[i] : i == 5 ? len / 2 : len - 1;
        fileio_write_atomic(path, buf, cut, &e);
        pipe_ckpt *c = pipe_ckpt_load(path, &e);
        CHECK(!c && strstr(e.msg, path), "truncated to %zu bytes: refused: %s", cut, e.msg);
        pipe_ckpt_free(c);
    }
    for (size_t at = 9; at < len; at += len / 7) {
        buf[at] ^= 0x10;
        fileio_write_atomic(path, buf, len, &e);
        buf[at] ^= 0x10;
        pipe_ckpt *c = pipe_ckpt_load(path, &e);
        CHECK(!c && strstr(e.msg, "checksum"), "a flipped bit at byte %zu: refused: %s", at, e.msg);
        pipe_ckpt_free(c);
    }
    memcpy(buf, "RSCKPX1\n", 8);
    fileio_write_atomic(path, buf, len, &e);
    pipe_ckpt *c = pipe_ckpt_load(path, &e);
    CHECK(!c && strstr(e.msg, "not a rankscope compress checkpoint"), "a foreign magic: refused: %s", e.msg);
    pipe_ckpt_free(c);
    c = pipe_ckpt_load(train_ckpt, &e);
    CHECK(!c && strstr(e.msg, "bad magic"), "a training checkpoint: refused: %s", e.msg);
    pipe_ckpt_free(c);
    checkpoint tc;
    CHECK(checkpoint_load(fx->ckpt, &tc, &e) != 0 && strstr(e.msg, "bad magic"),
          "and train --resume refuses a compress checkpoint: %s", e.msg);
    free(buf);
    unlink(path);
}

/* A checkpoint resumed with another model, or by the other workflow: refused before any work. */
static void mismatched(const fixture *fx, fixture *other_workflow)
{
    rs_err e = {{0}};
    pipe_ckpt *c = pipe_ckpt_load(fx->ckpt, &e);
    CHECK(c != NULL, "the staged run's checkpoint (%s)", c ? "ok" : e.msg);
    if (!c)
        return;
    fixture f2 = *fx;
    f2.m = testnet_lenet(5); /* same graph, other weights */
    f2.ckpt = NULL;
    stopper st = {0};
    outcome b;
    run(&f2, &st, c, &b);
    CHECK(b.rc != 0 && strstr(b.err, "another model or validation set"), "another model: refused: %s", b.err);
    outcome_free(&b);
    model_free(f2.m);
    other_workflow->ckpt = NULL;
    run(other_workflow, &st, c, &b);
    CHECK(b.rc != 0 && strstr(b.err, "of a staged run, not of a recipe replay"), "a replay given a staged run's: "
          "refused: %s", b.err);
    outcome_free(&b);
    pipe_ckpt_free(c);
}

static void ident_diff(void)
{
    char what[200];
    CHECK(pipe_ident_diff("model a.onnx\nepochs 20\n", "model a.onnx\nepochs 20\n", what, sizeof what) == 0,
          "equal idents: no difference");
    CHECK(pipe_ident_diff("model a.onnx\nepochs 20\n", "model a.onnx\nepochs 10\n", what, sizeof what) == 1 &&
              !strcmp(what, "epochs: 20 in the checkpoint, 10 now"), "a differing value is named: %s", what);
    CHECK(pipe_ident_diff("model a.onnx\n", "model a.onnx\nbn on\n", what, sizeof what) == 1 &&
              !strcmp(what, "bn: (none) in the checkpoint, on now"), "a key only one has is named: %s", what);
}

int main(void)
{
    ident_diff();
    char path[1024];
    rs_err e = {{0}};
    if (rs_find_asset("lenet-cifar10.onnx", path, sizeof path) != 0) {
        CHECK(0, "shipped net found (RANKSCOPE_ASSETS)");
        return check_done();
    }
    fixture fx = {0};
    fx.m = onnx_load(path, &e);
    fx.set = cifar10_load_split(NULL, "sample", NULL, &e);
    CHECK(fx.m && fx.set, "shipped net and sample (%s)", e.msg);
    if (!fx.m || !fx.set)
        return check_done();
    int half = fx.set->n / 2;
    fx.tr = *fx.set, fx.va = *fx.set; /* views: the first half trains, the second validates */
    fx.tr.n = half;
    fx.va.n = fx.set->n - half;
    fx.va.pixels = fx.set->pixels + (size_t)half * CIFAR10_PIXELS;
    fx.va.labels = fx.set->labels + half;
    char ck[] = "/tmp/rs_cmp_ckpt_XXXXXX";
    int fd = mkstemp(ck);
    close(fd);
    fx.ckpt = ck;

    /* the staged run straight through (writing checkpoints: they must not change it) */
    stopper count = {0};
    outcome ref;
    run(&fx, &count, NULL, &ref);
    long total = count.calls;
    int kinds[3] = {0};
    for (int i = 0; i < ref.n_rounds; ++i)
        kinds[ref.rounds[i].kind]++;
    CHECK(ref.rc == 0 && !ref.cancelled && total > 0, "staged run: %d rounds (%d stages, %d extensions, %d polish), "
          "%ld batches (%s)", ref.n_rounds, kinds[0], kinds[1], kinds[2], total, ref.err);
    CHECK(kinds[1] > 0 && kinds[2] > 0, "the run has an extension and a polish to interrupt");
    fixture none = fx;
    none.ckpt = NULL;
    stopper st0 = {0};
    outcome plain;
    run(&none, &st0, NULL, &plain);
    char why[512];
    CHECK(same(&ref, &plain, why, sizeof why), "a run without checkpoints ends the same (%s)", why);
    outcome_free(&plain);
    if (ref.rc == 0 && total > 0) {
        /* every fine-tuning has as many batches (same images, same epochs): a cut in the second
         * epoch of each, so that each kind is resumed from its first epoch's checkpoint */
        long per_round = total / ref.n_rounds, per_epoch = per_round / 2;
        int cut_kind[3] = {0};
        for (int i = 0; i < ref.n_rounds; ++i) {
            static const char *const kind[] = {"stage", "extension", "polish"};
            if (cut_kind[ref.rounds[i].kind]++ && i != ref.n_rounds - 2)
                continue; /* the first of each kind, and the last before the polish (the loop's end) */
            char label[96];
            long cut = i * per_round + per_epoch + 3;
            snprintf(label, sizeof label, "cancelled in round %d (%s), batch %ld of %ld", i + 1, kind[ref.rounds[i].kind],
                     cut, total);
            interrupted_case(&fx, &ref, label, cut, 0, 0);
        }
        interrupted_case(&fx, &ref, "stopped at the start of stage 2", 0, 2, 0);
        interrupted_case(&fx, &ref, "cancelled at batch 2, resumed, cancelled again", 2, 0, total / 2);
    }

    /* a replay of the recipe the run recorded */
    fixture rx = fx;
    rx.replay = recipe_alloc();
    int ok = rx.replay && ref.recipe && recipe_parse_text(rx.replay, ref.recipe, "recipe", &e) == 0;
    CHECK(ok, "the run's recipe (%s)", ok ? "ok" : e.msg);
    if (ok) {
        stopper c2 = {0};
        outcome rref;
        run(&rx, &c2, NULL, &rref);
        CHECK(rref.rc == 0 && rref.len == ref.len && !memcmp(rref.onnx, ref.onnx, ref.len),
              "the replay gives the staged run's net (%zu bytes) (%s)", rref.len, rref.err);
        long rt = c2.calls;
        long cuts[] = {rt / 5, rt - 2};
        for (size_t i = 0; rt > 5 && i < sizeof cuts / sizeof *cuts; ++i) {
            char label[64];
            snprintf(label, sizeof label, "replay cancelled at batch %ld of %ld", cuts[i], rt);
            interrupted_case(&rx, &rref, label, cuts[i], 0, 0);
        }
        /* the replay's checkpoint given to a staged run */
        pipe_ckpt *c = pipe_ckpt_load(rx.ckpt, &e);
        stopper s3 = {0};
        outcome b;
        fixture sx = fx;
        sx.ckpt = NULL;
        run(&sx, &s3, c, &b);
        CHECK(c && b.rc != 0 && strstr(b.err, "of a recipe replay, not of a staged run"),
              "a staged run given a replay's checkpoint: refused: %s", b.err);
        outcome_free(&b);
        pipe_ckpt_free(c);
        outcome_free(&rref);
    }

    /* hostile files */
    stopper st1 = {0, total / 2, 0, 0};
    outcome a;
    run(&fx, &st1, NULL, &a);
    outcome_free(&a);
    char tck[] = "/tmp/rs_train_ckpt_XXXXXX";
    fd = mkstemp(tck);
    close(fd);
    train_options to;
    train_default_options(&to);
    float mom0 = 0, *moms[1] = {&mom0};
    int perm0 = 0;
    train_state ts = {.epoch = 1, .n = 1, .perm = &perm0, .n_values = 0, .mom = moms};
    to.epochs = 2;
    CHECK(checkpoint_save(tck, fx.m, &ts, &to, "t", &e) == 0, "a training checkpoint (%s)", e.msg);
    hostile(&fx, tck);
    unlink(tck);
    mismatched(&fx, &rx);

    recipe_free(rx.replay);
    outcome_free(&ref);
    unlink(ck);
    cifar10_free(fx.set);
    model_free(fx.m);
    return check_done();
}
