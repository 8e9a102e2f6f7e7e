/* eval.c — accuracy, overall and per class, through the inference engine. */
#include "rankscope/eval.h"
#include "infer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void eval_argmax(const float *logits, int n, int k, int *pred)
{
    for (int i = 0; i < n; ++i) {
        const float *row = logits + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; ++j)
            if (row[j] > row[best])
                best = j;
        pred[i] = best;
    }
}

void eval_score(const uint8_t *labels, const int *pred, int n, eval_result *res)
{
    memset(res->class_total, 0, sizeof res->class_total);
    memset(res->class_correct, 0, sizeof res->class_correct);
    res->images = n;
    res->correct = 0;
    for (int i = 0; i < n; ++i) {
        int c = labels[i] < CIFAR10_CLASSES ? labels[i] : 0;
        res->class_total[c]++;
        if (pred[i] == labels[i]) {
            res->class_correct[c]++;
            res->correct++;
        }
    }
    res->accuracy = n ? (double)res->correct / n : 0.0;
    for (int c = 0; c < CIFAR10_CLASSES; ++c)
        res->per_class[c] = res->class_total[c] ? (double)res->class_correct[c] / res->class_total[c] : 0.0;
}

/* Batches of whole tiles (infer_internal.h): every image lands in the same tile as in one call over
 * all n, so the logits are bit for bit those of a single call, whatever the batch sizes. A batch
 * starts at one tile per thread and its size follows its time: doubled while a batch takes under
 * EVAL_FAST seconds, halved above EVAL_SLOW. A cancel from the callback is then seen within about
 * one batch (tens of milliseconds even on VGG), and a fast net still runs big batches (waking the
 * threads costs microseconds per batch). */
#define EVAL_FAST 0.008
#define EVAL_SLOW 0.030
/* eval_ctx's logits buffer, in images */
#define EVAL_CHUNK 2048

int eval_forward(infer_ctx *c, const float *x, const uint8_t *xu, int n, float *out, rs_progress_fn progress,
                 void *user, double f0, double f1, rs_err *e)
{
    if (n < 0 || (!x) == (!xu))
        return rs_fail(e, "eval_forward: invalid arguments (n = %d)", n);
    const int unit = (c->tile > 0 ? c->tile : 1) * (c->nthreads > 0 ? c->nthreads : 1);
    const size_t in = (size_t)infer_in_features(c), k = (size_t)infer_out_features(c);
    for (int first = 0, batch = unit, nb = 0; first < n; first += nb) {
        if (progress && progress(user, f0 + (f1 - f0) * first / n, "evaluating")) {
            rs_fail(e, "evaluation cancelled");
            return RS_CANCELLED;
        }
        nb = n - first < batch ? n - first : batch;
        double t0 = rs_now();
        int rc = x ? infer_forward(c, x + (size_t)first * in, nb, out + (size_t)first * k, e)
                   : infer_forward_u8(c, xu + (size_t)first * in, nb, out + (size_t)first * k, e);
        if (rc)
            return rc;
        double took = rs_now() - t0;
        if (took < EVAL_FAST && batch <= n)
            batch *= 2;
        else if (took > EVAL_SLOW && batch / 2 >= unit)
            batch = batch / 2 / unit * unit;
    }
    return 0;
}

static int check_finite(const float *logits, int n, int k, int first, rs_err *e)
{
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < k; ++j)
            if (!isfinite(logits[(size_t)i * k + j]))
                return rs_fail(e, "image %d gives a non-finite logit (%s for class %d): the network "
                                  "overflows; no accuracy to report", first + i,
                               isnan(logits[(size_t)i * k + j]) ? "NaN" : "Inf", j);
    return 0;
}

int eval_ctx(infer_ctx *c, const cifar10_set *s, eval_result *res, rs_progress_fn progress, void *user,
             rs_err *e)
{
    int k = infer_out_features(c);
    if (infer_in_features(c) != CIFAR10_PIXELS)
        return rs_fail(e, "model expects %d input values per image, CIFAR-10 has %d", infer_in_features(c),
                       CIFAR10_PIXELS);
    if (k < CIFAR10_CLASSES)
        return rs_fail(e, "model produces %d outputs per image, CIFAR-10 needs %d", k, CIFAR10_CLASSES);
    /* chunks of whole tiles too, so the batches inside them stay aligned to the set's tiles */
    int tile = c->tile > 0 ? c->tile : 1;
    int chunk = EVAL_CHUNK / tile > 0 ? EVAL_CHUNK / tile * tile : tile;
    if (s->n < chunk)
        chunk = s->n ? s->n : 1;
    float *logits = malloc((size_t)chunk * (size_t)k * sizeof(float));
    int *pred = malloc((size_t)(s->n ? s->n : 1) * sizeof(int));
    if (!logits || !pred) {
        free(logits);
        free(pred);
        return rs_fail(e, "out of memory");
    }
    int rc = 0;
    double t0 = rs_now();
    for (int first = 0; first < s->n && rc == 0; first += chunk) {
        int n = s->n - first < chunk ? s->n - first : chunk;
        rc = eval_forward(c, NULL, s->pixels + (size_t)first * CIFAR10_PIXELS, n, logits, progress, user,
                          (double)first / s->n, (double)(first + n) / s->n, e);
        /* finite weights can still overflow (huge scales): an argmax over NaN is no prediction */
        if (rc == 0 && (rc = check_finite(logits, n, k, first, e)) == 0)
            eval_argmax(logits, n, k, pred + first);
    }
    double secs = rs_now() - t0;
    if (rc == 0) {
        eval_score(s->labels, pred, s->n, res);
        res->seconds = secs;
        if (progress)
            progress(user, 1.0, "evaluated");
    }
    free(logits);
    free(pred);
    return rc;
}

int eval_model(const rs_model *m, const cifar10_set *s, int nthreads, eval_result *res,
               rs_progress_fn progress, void *user, rs_err *e)
{
    infer_ctx *c = infer_create(m, nthreads, e);
    if (!c)
        return -1;
    int rc = eval_ctx(c, s, res, progress, user, e);
    infer_free(c);
    return rc;
}
