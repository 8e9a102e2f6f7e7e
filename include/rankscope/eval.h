/* eval.h — accuracy of a model on a CIFAR-10 set: overall and per class.
 *
 * Contract: eval_model builds an inference context, runs every image of the set, and fills res.
 * res->seconds is the time of the forward passes alone (data already loaded, context built).
 * progress (may be NULL) is called before every batch (a few tiles of images, sized to take tens of
 * milliseconds, so a cancel is seen that soon even on VGG) and once at the end with 1.0; a non-zero
 * return before the end cancels: RS_CANCELLED, e says so, res untouched, nothing held. The batches
 * never change a result: the accuracy is bit for bit that of one pass over the set. A logit that
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
/* The forward pass of eval_ctx on its own: n images, x (n × in_features floats) or xu (n × 3072
 * CIFAR-10 bytes; exactly one non-NULL), logits to out (n × out_features), in batches sized to take
 * tens of milliseconds. progress (may be NULL) is called before every batch with a fraction going
 * from f0 towards f1; non-zero cancels: RS_CANCELLED, e says so. out is bit for bit that of one
 * infer_forward / infer_forward_u8 call over the n images. */
int eval_forward(infer_ctx *c, const float *x, const uint8_t *xu, int n, float *out, rs_progress_fn progress,
                 void *user, double f0, double f1, rs_err *e);
/* Fill accuracy fields from predictions (n labels, n predicted classes). */
void eval_score(const uint8_t *labels, const int *pred, int n, eval_result *res);
/* argmax per row of an n × k matrix. */
void eval_argmax(const float *logits, int n, int k, int *pred);

#pragma GCC visibility pop
#endif
