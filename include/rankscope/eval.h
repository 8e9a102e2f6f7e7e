/* eval.h — accuracy of a model on a CIFAR-10 set: overall and per class.
 *
 * Contract: eval_model builds an inference context, runs every image of the set, and fills res.
 * res->seconds is the time of the forward passes alone (data already loaded, context built).
 * progress (may be NULL) is called between chunks; cancelling returns RS_CANCELLED. A logit that
 * is NaN or infinite (finite weights can still overflow) fails the evaluation naming the image:
 * an argmax over it is no prediction, so no accuracy is reported.
 */
#ifndef RANKSCOPE_EVAL_H
#define RANKSCOPE_EVAL_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include "rankscope/cifar10.h"
#include "rankscope/infer.h"
#include "rankscope/model.h"

typedef struct eval_result {
    int images;
    int correct;
    double accuracy; /* 0..1 */
    int class_total[CIFAR10_CLASSES];
    int class_correct[CIFAR10_CLASSES];
    double per_class[CIFAR10_CLASSES]; /* 0..1; 0 when a class has no image */
    double seconds;
} eval_result;

int eval_model(const rs_model *m, const cifar10_set *s, int nthreads, eval_result *res,
               rs_progress_fn progress, void *user, rs_err *e);
/* Same with an existing context (reused across evaluations). */
int eval_ctx(infer_ctx *c, const cifar10_set *s, eval_result *res, rs_progress_fn progress,
             void *user, rs_err *e);
/* Fill accuracy fields from predictions (n labels, n predicted classes). */
void eval_score(const uint8_t *labels, const int *pred, int n, eval_result *res);
/* argmax per row of an n × k matrix. */
void eval_argmax(const float *logits, int n, int k, int *pred);

#pragma GCC visibility pop
#endif
