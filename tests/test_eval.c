/* test_eval.c — eval_ctx: accuracy through the inference engine, in batches a cancel can stop.
 *
 *  - the accuracy is bit for bit that of one infer_forward_u8 call over the whole set: the labels
 *    ARE that call's predictions, so any image predicted differently reads below 100 %; with the
 *    default tile (16) and with RANKSCOPE_TILE=5 (tiles that divide no batch size evenly), on 2 threads;
 *  - the callback runs before every batch: first at 0, then after the first batch of one tile per
 *    thread (not after 2,000 images), increasing, last 1.0 once everything is scored;
 *  - a cancel from the callback stops at once: RS_CANCELLED, an error saying so, the result left
 *    untouched, no further call (leaks: the ASan stage runs this test);
 *  - compiling asks the callback between nodes: a cancel there returns RS_CANCELLED with no
 *    context, and a slider change's segment compile in the explorer's evaluator stops before any
 *    image is scored.
 * The shipped LeNet on generated images: fast, and its predictions spread over the classes.
 */
#include "check.h"
#include "rankscope/eval.h"
#include "rankscope/onnx.h"
#include "rankscope/infer.h"
#include "rankscope/pipeline.h"
#include "rankscope/pool.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_IMAGES 3000
#define THREADS 2

typedef struct calls {
    int n, cancel_at; /* cancel_at: the call (1-based) that returns non-zero; 0 never */
    double fraction[4096];
} calls;

static int record(void *user, double fraction, const char *what)
{
    (void)what;
    calls *c = user;
    if (c->n < 4096)
        c->fraction[c->n] = fraction;
    return ++c->n == c->cancel_at;
}

/* cancels at the first call past the start (negative fractions: preparing, no figure) */
static int cancel_inside(void *user, double fraction, const char *what)
{
    record(user, fraction, what);
    return fraction > 0;
}

static void run(const rs_model *m, cifar10_set *s, const char *tile)
{
    rs_err e = {{0}};
    setenv("RANKSCOPE_TILE", tile, 1);
    const char *label = tile;
    infer_ctx *c = infer_create(m, THREADS, &e);
    float *logits = malloc((size_t)N_IMAGES * 10 * sizeof(float));
    int *pred = malloc(N_IMAGES * sizeof(int));
    if (!CHECK(c && logits && pred, "tile %s: context built (%s)", label, e.msg)) {
        infer_free(c);
        free(logits);
        free(pred);
        return;
    }
    /* the reference: one call over every image; its predictions become the labels */
    CHECK(infer_forward_u8(c, s->pixels, N_IMAGES, logits, &e) == 0, "tile %s: one pass over %d images",
          label, N_IMAGES);
    eval_argmax(logits, N_IMAGES, 10, pred);
    /* eval_forward on its own, bytes and floats: the very logits of one call */
    float *again = malloc((size_t)N_IMAGES * 10 * sizeof(float));
    float *xf = malloc((size_t)N_IMAGES * CIFAR10_PIXELS * sizeof(float));
    float *once = malloc((size_t)N_IMAGES * 10 * sizeof(float));
    if (again && xf && once) {
        calls fw = {0};
        int rc = eval_forward(c, NULL, s->pixels, N_IMAGES, again, record, &fw, 0.25, 0.5, &e);
        CHECK(rc == 0 && memcmp(again, logits, (size_t)N_IMAGES * 10 * sizeof(float)) == 0,
              "tile %s: eval_forward (bytes) gives the single call's logits bit for bit", label);
        CHECK(fw.n >= 2 && fw.fraction[0] == 0.25 && fw.fraction[fw.n - 1] < 0.5,
              "tile %s: eval_forward reports from f0 = 0.25 towards f1 = 0.5 (%d calls)", label, fw.n);
        cifar10_normalize(s, 0, N_IMAGES, xf);
        rc = infer_forward(c, xf, N_IMAGES, once, &e);
        rc = rc ? rc : eval_forward(c, xf, NULL, N_IMAGES, again, NULL, NULL, 0, 1, &e);
        CHECK(rc == 0 && memcmp(again, once, (size_t)N_IMAGES * 10 * sizeof(float)) == 0,
              "tile %s: eval_forward (floats) gives infer_forward's logits bit for bit", label);
        calls stop = {0, 2, {0}};
        rs_err ce = {{0}};
        rc = eval_forward(c, xf, NULL, N_IMAGES, again, record, &stop, 0, 1, &ce);
        CHECK(rc == RS_CANCELLED && stop.n == 2 && strstr(ce.msg, "cancel"),
              "tile %s: eval_forward cancelled at its second call", label);
    }
    free(again);
    free(xf);
    free(once);
    int per[10] = {0};
    for (int i = 0; i < N_IMAGES; ++i) {
        s->labels[i] = (uint8_t)pred[i];
        per[pred[i]]++;
    }
    int classes = 0;
    for (int k = 0; k < 10; ++k)
        classes += per[k] > 0;
    CHECK(classes >= 3, "tile %s: the predictions spread over %d classes (a test that can fail)", label, classes);

    eval_result r;
    memset(&r, 0, sizeof r);
    int rc = eval_ctx(c, s, &r, NULL, NULL, &e);
    CHECK(rc == 0 && r.images == N_IMAGES && r.correct == N_IMAGES,
          "tile %s: eval_ctx predicts every image as the single pass does (%d/%d correct)", label, r.correct,
          r.images);

    calls seen = {0};
    memset(&r, 0, sizeof r);
    rc = eval_ctx(c, s, &r, record, &seen, &e);
    int rising = seen.n >= 3 && seen.n <= 4096 && seen.fraction[0] == 0.0 && seen.fraction[seen.n - 1] == 1.0;
    for (int i = 1; rising && i < seen.n; ++i)
        rising = seen.fraction[i] > seen.fraction[i - 1];
    CHECK(rc == 0 && r.correct == N_IMAGES, "tile %s: with a callback that never cancels, the same result", label);
    CHECK(rising, "tile %s: %d calls, from 0 rising to 1", label, seen.n);
    int tile_n = atoi(tile);
    CHECK(seen.n >= 2 && seen.fraction[1] * N_IMAGES <= THREADS * tile_n + 0.5,
          "tile %s: the second call comes after the first batch, %.0f images (one tile per thread), "
          "not after a 2,000-image chunk", label, seen.n >= 2 ? seen.fraction[1] * N_IMAGES : -1.0);

    for (int at = 1; at <= 3; ++at) {
        calls stop = {0, at, {0}};
        eval_result untouched;
        memset(&untouched, 0, sizeof untouched);
        untouched.images = -7;
        rs_err ce = {{0}};
        rc = eval_ctx(c, s, &untouched, record, &stop, &ce);
        CHECK(rc == RS_CANCELLED && stop.n == at && untouched.images == -7 && strstr(ce.msg, "cancel"),
              "tile %s: a cancel at call %d returns RS_CANCELLED at once (%d calls, '%s'), the result untouched",
              label, at, stop.n, ce.msg);
    }
    /* the context is still good after a cancel */
    rc = eval_ctx(c, s, &r, NULL, NULL, &e);
    CHECK(rc == 0 && r.correct == N_IMAGES, "tile %s: after the cancels, a full evaluation again", label);
    infer_free(c);
    free(logits);
    free(pred);
}

/* The explorer's incremental evaluator runs its cut-up net through eval_forward: a cancel inside a
 * chunk of 1,000 images there too, and the same accuracy as one eval_model. */
static void incremental(const rs_model *m, const cifar10_set *s)
{
    rs_err e = {{0}};
    eval_result ref, r;
    memset(&r, 0, sizeof r);
    int rc = eval_model(m, s, THREADS, &ref, NULL, NULL, &e);
    pipe_eval *pe = rc == 0 ? pipe_eval_alloc(m, s, &e) : NULL;
    if (!CHECK(pe, "incremental evaluator built (%s)", e.msg))
        return;
    int nl = pipe_eval_layers(pe);
    pipe_choice *cfg = calloc((size_t)nl + 1, sizeof *cfg);
    calls stop = {0};
    rs_err ce = {{0}};
    rc = cfg ? pipe_eval_run(pe, cfg, cancel_inside, &stop, &r, &ce) : -1;
    double at = stop.n > 0 && stop.n <= 4096 ? stop.fraction[stop.n - 1] : -1;
    CHECK(rc == RS_CANCELLED && at > 0 && at < 0.05,
          "incremental: cancelled at its first call inside the set, %.4f of the way (a chunk is 1,000 "
          "of %d images)", at, s->n);
    rc = cfg ? pipe_eval_run(pe, cfg, NULL, NULL, &r, &e) : -1;
    CHECK(rc == 0 && r.correct == ref.correct && memcmp(r.class_correct, ref.class_correct, sizeof r.class_correct) == 0,
          "incremental: then the whole set, as eval_model (%d/%d)", r.correct, ref.correct);
    free(cfg);
    pipe_eval_free(pe);
}

/* cancels at its first "compiling" call: inside the compile of a network or segment */
static int cancel_compiling(void *user, double fraction, const char *what)
{
    record(user, fraction, what);
    return what && !strcmp(what, "compiling");
}

/* Compiling asks the callback between nodes: a cancel there stops the compile at once with
 * RS_CANCELLED and nothing held (the ASan stage runs this test); in the explorer's evaluator, a
 * slider change's segment compile is cancelled before any image is evaluated. */
static void compile_cancel(const rs_model *m, const cifar10_set *s)
{
    rs_err e = {{0}};
    rs_pool *pool = pool_alloc(THREADS, &e);
    if (!CHECK(pool, "a pool (%s)", e.msg))
        return;
    calls all = {0};
    infer_ctx *c = NULL;
    int rc = infer_create_with(m, pool, record, &all, &c, &e);
    int neg = 1;
    for (int i = 0; i < all.n && i < 4096; ++i)
        neg &= all.fraction[i] < 0;
    CHECK(rc == 0 && c && all.n >= 5 && neg, "compile: the callback asked %d times (fraction -1), 0 and a context",
          all.n);
    infer_free(c);
    for (int at = 1; at <= 3; at += 2) {
        calls stop = {0};
        stop.cancel_at = at;
        rs_err ce = {{0}};
        c = (infer_ctx *)&stop; /* must come back NULL */
        rc = infer_create_with(m, pool, record, &stop, &c, &ce);
        CHECK(rc == RS_CANCELLED && !c && stop.n == at && strstr(ce.msg, "cancel"),
              "compile: a cancel at call %d of %d returns RS_CANCELLED at once (%d calls, '%s'), no context", at,
              all.n, stop.n, ce.msg);
    }
    pool_free(pool);
    /* the evaluator: layer 0 at a new rank compiles its segment before evaluating anything */
    pipe_eval *pe = pipe_eval_alloc(m, s, &e);
    if (!CHECK(pe, "incremental evaluator built (%s)", e.msg))
        return;
    int nl = pipe_eval_layers(pe);
    pipe_choice *cfg = calloc((size_t)nl + 1, sizeof *cfg);
    pipe_choice ch = {DECOMP_SPATIAL_SVD, 3, 0};
    calls stop = {0};
    rs_err ce = {{0}};
    eval_result r;
    memset(&r, 0, sizeof r);
    r.images = -7;
    rc = cfg ? pipe_eval_swap(pe, cfg, 0, &ch, cancel_compiling, &stop, &r, &ce) : -1;
    int scored = 0;
    for (int i = 0; i < stop.n && i < 4096; ++i)
        scored |= stop.fraction[i] > 0;
    CHECK(rc == RS_CANCELLED && !scored && r.images == -7 && strstr(ce.msg, "cancel"),
          "swap: cancelled while compiling (%d calls, no image scored, '%s')", stop.n, ce.msg);
    eval_result ref;
    rc = cfg ? pipe_eval_swap(pe, cfg, 0, &ch, NULL, NULL, &ref, &e) : -1;
    int rc2 = cfg ? pipe_eval_swap(pe, cfg, 0, &ch, NULL, NULL, &r, &e) : -1;
    CHECK(rc == 0 && rc2 == 0 && r.correct == ref.correct && r.images == s->n,
          "swap: then evaluated whole, twice the same (%d/%d)", r.correct, r.images);
    free(cfg);
    pipe_eval_free(pe);
}

int main(void)
{
    const char *root = getenv("RS_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/assets/lenet-cifar10.onnx", root ? root : ".");
    rs_err e = {{0}};
    rs_model *m = onnx_load(path, &e);
    cifar10_set *s = cifar10_alloc(N_IMAGES, &e);
    if (!CHECK(m && s, "the shipped LeNet and %d generated images (%s)", N_IMAGES, e.msg)) {
        model_free(m);
        cifar10_free(s);
        return check_done();
    }
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)N_IMAGES * CIFAR10_PIXELS; ++i) {
        x = x * 1664525u + 1013904223u;
        s->pixels[i] = (uint8_t)(x >> 24);
    }
    run(m, s, "16"); /* the default */
    run(m, s, "5");
    unsetenv("RANKSCOPE_TILE");
    incremental(m, s);
    compile_cancel(m, s);
    model_free(m);
    cifar10_free(s);
    return check_done();
}
