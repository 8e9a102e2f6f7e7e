/* eval.c — accuracy, overall and per class, through the inference engine. */
#include "rankscope/eval.h"

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

/* Chunked so progress can be reported and a cancel honoured within a few milliseconds. */
#define EVAL_CHUNK 2000

int eval_ctx(infer_ctx *c, const cifar10_set *s, eval_result *res, rs_progress_fn progress, void *user,
             rs_err *e)
{
    int k = infer_out_features(c);
    if (infer_in_features(c) != CIFAR10_PIXELS)
        return rs_fail(e, "model expects %d input values per image, CIFAR-10 has %d", infer_in_features(c),
                       CIFAR10_PIXELS);
    if (k < CIFAR10_CLASSES)
        return rs_fail(e, "model produces %d outputs per image, CIFAR-10 needs %d", k, CIFAR10_CLASSES);
    int chunk = s->n < EVAL_CHUNK ? (s->n ? s->n : 1) : EVAL_CHUNK;
    float *logits = malloc((size_t)chunk * (size_t)k * sizeof(float));
    int *pred = malloc((size_t)(s->n ? s->n : 1) * sizeof(int));
    if (!logits || !pred) {
        free(logits);
        free(pred);
        return rs_fail(e, "out of memory");
    }
    int rc = 0;
    double t0 = rs_now();
    for (int first = 0; first < s->n; first += chunk) {
        int n = s->n - first < chunk ? s->n - first : chunk;
        if (progress && progress(user, (double)first / s->n, "evaluating")) {
            rc = RS_CANCELLED;
            rs_fail(e, "evaluation cancelled");
            break;
        }
        if (infer_forward_u8(c, s->pixels + (size_t)first * CIFAR10_PIXELS, n, logits, e) != 0) {
            rc = -1;
            break;
        }
        /* finite weights can still overflow (huge scales): an argmax over NaN is no prediction */
        for (int i = 0; i < n && rc == 0; ++i)
            for (int j = 0; j < k; ++j)
                if (!isfinite(logits[(size_t)i * k + j])) {
                    rc = rs_fail(e, "image %d gives a non-finite logit (%s for class %d): the network "
                                    "overflows; no accuracy to report", first + i,
                                 isnan(logits[(size_t)i * k + j]) ? "NaN" : "Inf", j);
                    break;
                }
        if (rc)
            break;
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
