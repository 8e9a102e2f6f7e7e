/* finetune.c — train a factorized copy of a network (factors only or all, with distillation). */
#include "rankscope/finetune.h"

#include <stdlib.h>
#include <string.h>

#include "rankscope/cifar10.h"
#include "rankscope/fit.h"
#include "rankscope/infer.h"

void finetune_default_options(finetune_options *o)
{
    memset(o, 0, sizeof *o);
    train_default_options(&o->train);
    o->train.epochs = 10;
    o->train.lr = 0.005f;
    o->train.schedule = TRAIN_SCHED_COSINE;
    o->train.warmup = 0.05f;
    o->keep_best = 1;
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

/* Validation accuracy of the starting net as training's validation sees it (with the weight
 * quantization hook applied, when there is one), so keep_best compares like with like. */
static int start_accuracy(const rs_model *w, const train_data *val, const train_options *to,
                          double *acc, rs_err *e)
{
    rs_model *c = model_clone(w);
    if (!c)
        return rs_fail(e, "out of memory copying the model");
    int rc = to->weight_quant ? to->weight_quant(to->weight_quant_user, c, e) : 0;
    if (rc == 0)
        rc = train_evaluate_on(c, val, to->pool, acc, NULL, e);
    model_free(c);
    return rc;
}

/* Keeps a copy of the best validated state while training moves the weights in place. */
typedef struct keeper {
    rs_model *w;    /* the model being trained */
    rs_model *best; /* copy of the best state so far */
    double best_acc;
    int best_epoch, epochs_done, failed;
    train_epoch_fn user_fn;
    void *user;
} keeper;

static int keeper_epoch(void *user, const train_epoch_stats *s)
{
    keeper *k = user;
    k->epochs_done = s->epoch;
    if (s->val_acc > k->best_acc) {
        rs_model *c = model_clone(k->w);
        if (!c) {
            k->failed = 1;
            return 1; /* stop: the state that would have to be kept cannot be */
        }
        model_free(k->best);
        k->best = c;
        k->best_acc = s->val_acc;
        k->best_epoch = s->epoch;
    }
    return k->user_fn ? k->user_fn(k->user, s) : 0;
}

int finetune_run(const rs_model *m, const rs_plan *plan, const train_data *train, const train_data *val,
                 const finetune_options *o, rs_model **out, train_epoch_stats *last, rs_err *e)
{
    *out = NULL;
    if (o->report) {
        memset(o->report, 0, sizeof *o->report);
        o->report->start_val_acc = o->report->kept_val_acc = -1;
    }
    rs_model *w = model_clone(m);
    if (!w)
        return rs_fail(e, "out of memory copying the model");
    int rc = 0;
    fit_options fit;
    fit_default_options(&fit);
    fit.refine_epochs = 0; /* training does what the joint refinement would, with labels */
    if (plan && plan->n > 0 &&
        (rc = o->fit_calib ? fit_plan_apply(w, plan, o->fit_calib, o->fit_n, &fit, NULL, e)
                           : plan_apply(w, plan, NULL, NULL, e)) != 0) {
        model_free(w);
        return rc;
    }
    train_options to = o->train;
    train_epoch_stats st;
    memset(&st, 0, sizeof st);
    uint8_t *mask = NULL;
    infer_ctx *teacher = NULL;
    rs_pool *own = NULL; /* one set of threads for the teacher, training and its validation */
    keeper kp = {w, NULL, -1, 0, 0, 0, o->train.on_epoch, o->train.epoch_user};
    if (o->factors_only) {
        if (finetune_factor_mask(m, w, &mask, e) != 0) {
            rc = -1;
            goto fail;
        }
        to.trainable = mask;
    }
    if (!to.pool) {
        if (!(own = pool_alloc(to.nthreads, e))) {
            rc = -1;
            goto fail;
        }
        to.pool = own;
    }
    if (o->distill) {
        teacher = infer_create_on(o->teacher ? o->teacher : m, to.pool, e);
        if (!teacher) {
            rc = rs_failctx(e, "distillation teacher");
            goto fail;
        }
        to.teacher = teacher_logits;
        to.teacher_user = teacher;
    }
    int keep = o->keep_best && val && val->n > 0;
    if (keep) {
        if (start_accuracy(w, val, &to, &kp.best_acc, e) != 0) {
            rc = rs_failctx(e, "validation accuracy before fine-tuning");
            goto fail;
        }
        if (!(kp.best = model_clone(w))) {
            rc = rs_fail(e, "out of memory copying the model");
            goto fail;
        }
        if (o->report)
            o->report->start_val_acc = kp.best_acc;
        to.on_epoch = keeper_epoch;
        to.epoch_user = &kp;
    }
    rc = train_model(w, train, val, &to, &st, e);
    if (kp.failed && rc == 0)
        rc = rs_fail(e, "out of memory keeping the best epoch");
    if (rc != 0 && rc != RS_CANCELLED)
        goto fail;
    if (keep) {
        /* the trained weights are the best only if the last completed epoch set the best (on
         * cancel they are mid-epoch and were never validated) */
        if (rc == RS_CANCELLED || kp.best_epoch != kp.epochs_done) {
            model_free(w);
            w = kp.best;
        } else {
            model_free(kp.best);
        }
        kp.best = NULL;
    } else {
        kp.best_epoch = kp.epochs_done = st.epoch;
        kp.best_acc = st.val_acc;
    }
    if (o->report) {
        o->report->epochs_done = kp.epochs_done;
        o->report->kept_epoch = kp.best_epoch;
        o->report->kept_val_acc = kp.best_acc;
    }
    if (last)
        *last = st;
    infer_free(teacher);
    pool_free(own);
    free(mask);
    *out = w;
    return rc;
fail:
    infer_free(teacher);
    pool_free(own);
    free(mask);
    model_free(kp.best);
    model_free(w);
    return rc ? rc : -1;
}
