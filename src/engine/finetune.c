/* finetune.c — train a factorized copy of a network (factors only or all, with distillation). */
#include "rankscope/finetune.h"

#include <stdlib.h>
#include <string.h>

#include "rankscope/cifar10.h"
#include "rankscope/fit.h"
#include "rankscope/infer.h"
#include "rankscope/passes.h"

#include <math.h>
#include <stdio.h>

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

/* ---- BatchNormalization while training (finetune.h: bn) ---------------------------------------- */

/* Calibration images for the BN statistics: the fit's, else the first training images normalised
 * (*own malloc'ed then). */
static int bn_calib(const finetune_options *o, const train_data *train, const float **x, int *n, float **own,
                    rs_err *e)
{
    *own = NULL;
    if (o->fit_calib && o->fit_n > 0) {
        *x = o->fit_calib;
        *n = o->fit_n < FINETUNE_BN_IMAGES ? o->fit_n : FINETUNE_BN_IMAGES;
        return 0;
    }
    size_t per = (size_t)train->c * (size_t)train->h * (size_t)train->w;
    int k = train->n < FINETUNE_BN_IMAGES ? train->n : FINETUNE_BN_IMAGES;
    float *f = malloc((size_t)(k ? k : 1) * per * sizeof *f);
    if (!f)
        return rs_fail(e, "out of memory");
    for (size_t i = 0; i < (size_t)k * per; ++i)
        f[i] = train->u8 ? (float)train->u8[i] / 127.5f - 1.0f : train->f[i];
    *x = *own = f, *n = k;
    return 0;
}

/* Conv node i takes a BN (finetune.h): no BN reads its output yet, and it is not the net's. */
static int takes_bn(const rs_model *m, int i)
{
    const rs_node *c = &m->nodes[i];
    if (c->op != RS_OP_CONV || c->out[0] == m->output)
        return 0;
    for (int k = 0; k < m->n_nodes; ++k)
        if (m->nodes[k].op == RS_OP_BATCHNORM && m->nodes[k].in[0] == c->out[0])
            return 0;
    return 1;
}

/* Per-channel mean and (biased) variance of value y (N, C, ...) of m on x[0..n-1]. */
static int out_stats(const rs_model *m, int y, const float *x, int n, double *mean, double *var, rs_err *e)
{
    const rs_value *v = &m->values[y];
    int64_t per = model_value_numel(v), c = v->ndim >= 2 ? v->dims[1] : 0, hw = c > 0 ? per / c : 0;
    if (c <= 0)
        return rs_fail(e, "%s: no channel dimension", v->name);
    float *a = malloc((size_t)n * (size_t)per * sizeof *a);
    if (!a)
        return rs_fail(e, "out of memory");
    int rc = infer_capture(m, x, n, y, a, e);
    for (int64_t ch = 0; rc == 0 && ch < c; ++ch) {
        double s = 0, s2 = 0;
        for (int i = 0; i < n; ++i)
            for (int64_t k = 0; k < hw; ++k) {
                double t = a[(size_t)i * (size_t)per + (size_t)(ch * hw + k)];
                s += t, s2 += t * t;
            }
        double cnt = (double)n * (double)hw;
        mean[ch] = s / cnt;
        var[ch] = fmax(s2 / cnt - mean[ch] * mean[ch], 0.0);
    }
    free(a);
    return rc;
}

/* A BatchNormalization after Conv node ci computing the identity from the statistics: the conv
 * writes a new value, the BN reads it and writes the conv's old output (its readers unchanged),
 * placed right after the conv. */
static int add_bn(rs_model *m, int ci, const double *mean, const double *var, rs_err *e)
{
    int y = m->nodes[ci].out[0];
    int64_t c = m->values[y].dims[1];
    float *p = malloc((size_t)c * 4 * sizeof *p);
    if (!p)
        return rs_fail(e, "out of memory");
    const float eps = 1e-5f;
    for (int64_t k = 0; k < c; ++k) {
        p[k] = (float)sqrt(var[k] + eps); /* γ */
        p[c + k] = (float)mean[k];         /* β */
        p[2 * c + k] = (float)mean[k];
        p[3 * c + k] = (float)var[k];
    }
    static const char *const what[4] = {"weight", "bias", "running_mean", "running_var"};
    char name[320], cname[300];
    /* a name no value has yet: a BN folded in an earlier fine-tuning left its bias under "_bn" */
    for (int k = 1;; ++k) {
        snprintf(cname, sizeof cname, k == 1 ? "%.270s_bn" : "%.270s_bn%d", m->nodes[ci].name, k);
        snprintf(name, sizeof name, "%s.bias", cname);
        if (model_find_value(m, name) < 0 && model_find_node(m, cname) < 0)
            break;
    }
    int in[5], rc = 0;
    for (int k = 0; k < 4 && rc == 0; ++k) {
        snprintf(name, sizeof name, "%s.%s", cname, what[k]);
        rc = (in[k + 1] = model_add_const(m, name, 1, &c, p + k * c, e)) < 0 ? -1 : 0;
    }
    free(p);
    snprintf(name, sizeof name, "%s", cname);
    int b = rc == 0 ? model_add_op(m, name, RS_OP_BATCHNORM, in, 5, NULL, e) : -1;
    if (b < 0)
        return -1;
    rs_node bn = m->nodes[b];
    bn.epsilon = eps;
    bn.in[0] = bn.out[0];
    m->nodes[ci].out[0] = bn.out[0];
    bn.out[0] = y;
    memmove(&m->nodes[ci + 2], &m->nodes[ci + 1], (size_t)(b - ci - 1) * sizeof *m->nodes);
    m->nodes[ci + 1] = bn;
    return 0;
}

/* finetune.h, bn: a BN after every Conv of w that takes one, statistics taken on w as it is. */
static int insert_bn(rs_model *w, const finetune_options *o, const train_data *train, rs_err *e)
{
    const float *x = NULL;
    float *own = NULL;
    int n = 0, nconv = 0, rc = bn_calib(o, train, &x, &n, &own, e);
    if (rc == 0 && n < 2)
        rc = rs_fail(e, "BatchNormalization statistics need at least 2 images");
    int *conv = rc == 0 ? malloc((size_t)(w->n_nodes ? w->n_nodes : 1) * sizeof *conv) : NULL;
    if (rc == 0 && !conv)
        rc = rs_fail(e, "out of memory");
    for (int i = 0; rc == 0 && i < w->n_nodes; ++i)
        if (takes_bn(w, i))
            conv[nconv++] = i;
    /* statistics first, on the net without any new BN (each one is the identity anyway) */
    double **st = rc == 0 ? calloc((size_t)(nconv ? nconv : 1), sizeof *st) : NULL;
    if (rc == 0 && !st)
        rc = rs_fail(e, "out of memory");
    for (int k = 0; rc == 0 && k < nconv; ++k) {
        const rs_value *v = &w->values[w->nodes[conv[k]].out[0]];
        int64_t c = v->ndim >= 2 ? v->dims[1] : 1;
        if (!(st[k] = malloc((size_t)c * 2 * sizeof **st)))
            rc = rs_fail(e, "out of memory");
        else
            rc = out_stats(w, w->nodes[conv[k]].out[0], x, n, st[k], st[k] + c, e);
    }
    for (int k = nconv - 1; rc == 0 && k >= 0; --k) { /* from the last: earlier indices stay valid */
        int64_t c = w->values[w->nodes[conv[k]].out[0]].dims[1];
        rc = add_bn(w, conv[k], st[k], st[k] + c, e);
    }
    if (rc == 0)
        rc = model_infer_shapes(w, e);
    for (int k = 0; st && k < nconv; ++k)
        free(st[k]);
    free(st);
    free(conv);
    free(own);
    return rc;
}

static int fold_bn(rs_model *w, rs_err *e)
{
    if (passes_fold_batchnorm(w, e) != 0 || model_infer_shapes(w, e) != 0)
        return rs_failctx(e, "folding the BatchNormalization back");
    for (int i = 0; i < w->n_nodes; ++i)
        if (w->nodes[i].op == RS_OP_BATCHNORM)
            return rs_fail(e, "%s: BatchNormalization could not be folded back", w->nodes[i].name);
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

/* Keeps a copy of the best validated state while training moves the weights in place, and hands
 * the run to the caller's checkpoint after each epoch: training calls its checkpoint before
 * on_epoch, so the train_state is held (pending) until the epoch's accuracy has updated the best. */
typedef struct keeper {
    rs_model *w;    /* the model being trained */
    rs_model *best; /* copy of the best state so far */
    double best_acc, start_acc;
    int best_epoch, epochs_done, failed;
    train_epoch_fn user_fn;
    void *user;
    finetune_checkpoint_fn ck_fn; /* NULL: no checkpoints */
    void *ck_user;
    train_state pending; /* mom: a copy of the pointer array training hands over */
    int has_pending, ck_failed;
    rs_err ck_err;
} keeper;

static int keeper_checkpoint(keeper *k)
{
    if (!k->has_pending || !k->ck_fn)
        return 0;
    k->has_pending = 0;
    finetune_state fs = {k->w, k->best, k->best_epoch, k->best_acc, k->start_acc, k->pending};
    if (k->ck_fn(k->ck_user, &fs, &k->ck_err) == 0)
        return 0;
    k->ck_failed = 1;
    return 1;
}

/* train_options.on_checkpoint: the state is kept for keeper_epoch (or passed on at once without
 * keep-best, where nothing else changes after the epoch). */
static int keeper_train_checkpoint(void *user, const rs_model *m, const train_state *s, rs_err *e)
{
    keeper *k = user;
    (void)m;
    float **mom = realloc(k->pending.mom, (size_t)(s->n_values ? s->n_values : 1) * sizeof *mom);
    if (!mom)
        return rs_fail(e, "out of memory");
    memcpy(mom, s->mom, (size_t)s->n_values * sizeof *mom);
    k->pending = *s;
    k->pending.mom = mom;
    k->has_pending = 1;
    if (!k->best && keeper_checkpoint(k)) {
        *e = k->ck_err;
        return -1;
    }
    return 0;
}

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
    if (keeper_checkpoint(k))
        return 1;
    return k->user_fn ? k->user_fn(k->user, s) : 0;
}

/* The net to train: m factorized by plan (fitted or not), BatchNormalizations in when o->bn; or
 * the resumed run's net as it was. *w NULL on error. */
static int prepare(const rs_model *m, const rs_plan *plan, const train_data *train, const finetune_options *o,
                   rs_model **w, rs_err *e)
{
    *w = model_clone(o->resume ? o->resume->w : m);
    if (!*w)
        return rs_fail(e, "out of memory copying the model");
    if (o->resume)
        return 0;
    int rc = 0;
    fit_options fit;
    fit_default_options(&fit);
    fit.refine_epochs = 0; /* training does what the joint refinement would, with labels */
    if (plan && plan->n > 0)
        rc = o->fit_calib ? fit_plan_apply(*w, plan, o->fit_calib, o->fit_n, &fit, NULL, e)
                          : plan_apply(*w, plan, NULL, NULL, e);
    if (rc == 0 && o->bn && insert_bn(*w, o, train, e) != 0)
        rc = rs_failctx(e, "BatchNormalization for fine-tuning");
    if (rc != 0) {
        model_free(*w);
        *w = NULL;
    }
    return rc;
}

int finetune_run(const rs_model *m, const rs_plan *plan, const train_data *train, const train_data *val,
                 const finetune_options *o, rs_model **out, train_epoch_stats *last, rs_err *e)
{
    *out = NULL;
    if (o->report) {
        memset(o->report, 0, sizeof *o->report);
        o->report->start_val_acc = o->report->kept_val_acc = -1;
    }
    if (o->resume && (!o->resume->w || (o->keep_best && val && val->n > 0 && !o->resume->best)))
        return rs_fail(e, "fine-tuning: the state to resume from is incomplete");
    rs_model *w = NULL;
    int rc = prepare(m, plan, train, o, &w, e);
    if (rc != 0)
        return rc;
    train_options to = o->train;
    train_epoch_stats st;
    memset(&st, 0, sizeof st);
    uint8_t *mask = NULL;
    infer_ctx *teacher = NULL;
    rs_pool *own = NULL; /* one set of threads for the teacher, training and its validation */
    keeper kp = {.w = w, .best_acc = -1, .start_acc = -1, .user_fn = o->train.on_epoch,
                 .user = o->train.epoch_user, .ck_fn = o->on_checkpoint, .ck_user = o->checkpoint_user};
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
    double start_acc = -1;
    if (keep && o->resume) {
        if (!(kp.best = model_clone(o->resume->best))) {
            rc = rs_fail(e, "out of memory copying the model");
            goto fail;
        }
        kp.best_acc = o->resume->best_acc, kp.best_epoch = o->resume->best_epoch;
        kp.epochs_done = o->resume->train.epoch;
        start_acc = o->resume->start_acc;
    } else if (keep) {
        if (start_accuracy(w, val, &to, &kp.best_acc, e) != 0) {
            rc = rs_failctx(e, "validation accuracy before fine-tuning");
            goto fail;
        }
        if (!(kp.best = model_clone(w))) {
            rc = rs_fail(e, "out of memory copying the model");
            goto fail;
        }
        start_acc = kp.best_acc;
        if (o->trained_only)
            kp.best_acc = -1; /* the first completed epoch replaces the start */
    }
    kp.start_acc = start_acc;
    if (o->report)
        o->report->start_val_acc = start_acc;
    if (keep) {
        to.on_epoch = keeper_epoch;
        to.epoch_user = &kp;
    }
    if (o->on_checkpoint) {
        to.on_checkpoint = keeper_train_checkpoint;
        to.checkpoint_user = &kp;
    }
    if (o->resume)
        to.resume = &o->resume->train;
    rc = train_model(w, train, val, &to, &st, e);
    free(kp.pending.mom);
    if (kp.failed && rc == 0)
        rc = rs_fail(e, "out of memory keeping the best epoch");
    if (kp.ck_failed && rc == 0) {
        *e = kp.ck_err;
        rc = -1;
    }
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
        if (kp.best_epoch == 0) /* no epoch completed: the start, trained_only or not */
            kp.best_acc = start_acc;
    } else {
        kp.best_epoch = kp.epochs_done = st.epoch ? st.epoch : o->resume ? o->resume->train.epoch : 0;
        kp.best_acc = st.val_acc;
    }
    if (o->report) {
        o->report->epochs_done = kp.epochs_done;
        o->report->kept_epoch = kp.best_epoch;
        o->report->kept_val_acc = kp.best_acc;
    }
    if (last)
        *last = st;
    if (o->bn && fold_bn(w, e) != 0) {
        rc = -1;
        goto fail;
    }
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
