/* finetune.c — train a factorized copy of a network (factors only or all, with distillation). */
#include "rankscope/finetune.h"

#include <stdlib.h>
#include <string.h>

#include "rankscope/cifar10.h"
#include "rankscope/infer.h"

void finetune_default_options(finetune_options *o)
{
    memset(o, 0, sizeof *o);
    train_default_options(&o->train);
    o->train.epochs = 10;
    o->train.lr = 0.005f;
    o->train.schedule = TRAIN_SCHED_COSINE;
    o->train.warmup = 0.05f;
}

void finetune_data_of(const cifar10_set *s, train_data *d)
{
    memset(d, 0, sizeof *d);
    d->n = s->n;
    d->c = CIFAR10_C;
    d->h = CIFAR10_H;
    d->w = CIFAR10_W;
    d->u8 = s->pixels;
    d->labels = s->labels;
}

int finetune_factor_mask(const rs_model *original, const rs_model *factorized, uint8_t **mask, rs_err *e)
{
    uint8_t *mk = calloc((size_t)(factorized->n_values ? factorized->n_values : 1), 1);
    if (!mk)
        return rs_fail(e, "out of memory");
    int any = 0;
    for (int i = 0; i < factorized->n_nodes; ++i) {
        const rs_node *nd = &factorized->nodes[i];
        if (model_find_node(original, nd->name) >= 0)
            continue;
        for (int k = 0; k < nd->n_in; ++k) {
            int v = nd->in[k];
            if (v >= 0 && factorized->values[v].is_const && factorized->values[v].dtype == RS_DT_FLOAT) {
                mk[v] = 1;
                any = 1;
            }
        }
    }
    if (!any) {
        free(mk);
        return rs_fail(e, "factors-only: the model has no factor layers (empty plan?)");
    }
    *mask = mk;
    return 0;
}

static int teacher_logits(void *user, const float *x, int n, float *out, rs_err *e)
{
    return infer_forward((infer_ctx *)user, x, n, out, e);
}

int finetune_run(const rs_model *m, const rs_plan *plan, const train_data *train, const train_data *val,
                 const finetune_options *o, rs_model **out, train_epoch_stats *last, rs_err *e)
{
    *out = NULL;
    rs_model *w = model_clone(m);
    if (!w)
        return rs_fail(e, "out of memory copying the model");
    int rc = 0;
    if (plan && plan->n > 0 && (rc = plan_apply(w, plan, NULL, NULL, e)) != 0) {
        model_free(w);
        return rc;
    }
    train_options to = o->train;
    uint8_t *mask = NULL;
    infer_ctx *teacher = NULL;
    if (o->factors_only) {
        if (finetune_factor_mask(m, w, &mask, e) != 0) {
            model_free(w);
            return -1;
        }
        to.trainable = mask;
    }
    if (o->distill) {
        teacher = infer_create(m, to.nthreads, e);
        if (!teacher) {
            free(mask);
            model_free(w);
            return rs_failctx(e, "distillation teacher");
        }
        to.teacher = teacher_logits;
        to.teacher_user = teacher;
    }
    rc = train_model(w, train, val, &to, last, e);
    infer_free(teacher);
    free(mask);
    if (rc != 0 && rc != RS_CANCELLED) {
        model_free(w);
        return rc;
    }
    *out = w;
    return rc;
}
