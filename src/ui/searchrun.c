/* searchrun.c — the rank search on a background thread for the Search screen. */
#include "searchrun.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "rankscope/search.h"

#define NEW_TRIALS 256

int ui_job_start(ui_job *j, void *(*fn)(void *), void *arg, const char *what, rs_err *e)
{
    pthread_mutex_init(&j->mu, NULL);
    if (pthread_create(&j->th, NULL, fn, arg)) {
        pthread_mutex_destroy(&j->mu);
        return rs_fail(e, "cannot start the %s thread", what);
    }
    j->started = 1;
    return 0;
}

void ui_job_cancel(ui_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->cancel = 1;
    pthread_mutex_unlock(&j->mu);
}

int ui_job_cancelled(ui_job *j)
{
    pthread_mutex_lock(&j->mu);
    int c = j->cancel;
    pthread_mutex_unlock(&j->mu);
    return c;
}

void ui_job_stop(ui_job *j)
{
    if (!j->started)
        return;
    ui_job_cancel(j);
    pthread_join(j->th, NULL);
    pthread_mutex_destroy(&j->mu);
    j->started = 0;
}

int ui_job_done(ui_job *j)
{
    pthread_mutex_lock(&j->mu);
    int d = j->done;
    pthread_mutex_unlock(&j->mu);
    return d;
}

int ui_job_finish(ui_job *j, int rc, const char *err)
{
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    if (err)
        snprintf(j->err, sizeof j->err, "%s", rc == RS_CANCELLED && !err[0] ? "cancelled" : err);
    j->done = 1;
    int dropped = j->dropped;
    pthread_mutex_unlock(&j->mu);
    if (dropped)
        pthread_mutex_destroy(&j->mu);
    return dropped;
}

int ui_job_drop(ui_job *j)
{
    if (!j->started)
        return 1;
    pthread_mutex_lock(&j->mu);
    j->cancel = j->dropped = 1;
    int done = j->done;
    pthread_mutex_unlock(&j->mu);
    pthread_detach(j->th);
    if (done)
        pthread_mutex_destroy(&j->mu);
    j->started = 0;
    return done;
}

struct ui_search {
    const rs_model *m;
    const cifar10_set *set;
    search_options o;
    ui_job j;
    /* shared (under j.mu) */
    double progress, elapsed;
    int n_new, total;
    ui_trial fresh[NEW_TRIALS];
    search_result res;
    int reported;
};

static int on_trial(void *user, const search_trial *t)
{
    ui_search *r = user;
    pthread_mutex_lock(&r->j.mu);
    if (r->n_new < NEW_TRIALS) {
        ui_trial *u = &r->fresh[r->n_new++];
        u->index = t->index;
        snprintf(u->phase, sizeof u->phase, "%s", t->phase ? t->phase : "");
        snprintf(u->layer, sizeof u->layer, "%s", t->layer ? t->layer : "");
        u->tried[0] = 0;
        for (int i = 0; t->layer && t->plan && i < t->plan->n; ++i) {
            const plan_entry *pe = &t->plan->entries[i];
            if (!strcmp(pe->layer, t->layer)) {
                if (pe->method == DECOMP_TUCKER2)
                    snprintf(u->tried, sizeof u->tried, "%s %d,%d", decomp_method_name(pe->method), pe->rank, pe->rank2);
                else
                    snprintf(u->tried, sizeof u->tried, "%s %d", decomp_method_name(pe->method), pe->rank);
            }
        }
        if (t->layer && !u->tried[0])
            snprintf(u->tried, sizeof u->tried, "original");
        u->acc = t->accuracy;
        u->images = t->images;
        u->within = t->within;
        u->params = t->params;
        u->macs = t->macs;
        u->elapsed = t->elapsed;
    }
    r->total++;
    r->elapsed = t->elapsed;
    int c = r->j.cancel;
    pthread_mutex_unlock(&r->j.mu);
    return c;
}

static int on_progress(void *user, double fraction, const char *what)
{
    (void)what;
    ui_search *r = user;
    pthread_mutex_lock(&r->j.mu);
    if (fraction >= 0)
        r->progress = fraction;
    int c = r->j.cancel;
    pthread_mutex_unlock(&r->j.mu);
    return c;
}

static void *run(void *arg)
{
    ui_search *r = arg;
    search_result res;
    memset(&res, 0, sizeof res);
    rs_err e = {{0}};
    int rc = search_run(r->m, r->set, &r->o, &res, &e);
    r->res = res;
    ui_job_finish(&r->j, rc, e.msg);
    return NULL;
}

ui_search *ui_search_start(const rs_model *m, const cifar10_set *set, const ui_state *s, const float *calib,
                           int n_calib, rs_err *e)
{
    ui_search *r = calloc(1, sizeof *r);
    if (!r) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    r->m = m;
    r->set = set;
    search_default_options(&r->o);
    r->o.strategy = (search_strategy)s->search.strategy;
    r->o.objective = (search_objective)s->search.objective;
    r->o.tolerance = s->search.tol;
    r->o.fit_calib = calib;
    r->o.fit_n = calib ? n_calib : 0;
    r->o.progress = on_progress;
    r->o.progress_user = r;
    r->o.on_trial = on_trial;
    r->o.trial_user = r;
    if (ui_job_start(&r->j, run, r, "search", e) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void ui_search_cancel(ui_search *r)
{
    if (!r)
        return;
    ui_job_cancel(&r->j);
}

void ui_search_stop(ui_search *r)
{
    if (!r)
        return;
    ui_job_stop(&r->j);
    search_result_free(&r->res);
    free(r);
}

int ui_search_poll(ui_search *r, ui_state *s)
{
    pthread_mutex_lock(&r->j.mu);
    int changed = r->n_new > 0 || s->search.progress != r->progress || (r->j.done && !r->reported);
    for (int i = 0; i < r->n_new; ++i) {
        if (s->search.n_trials >= UI_MAX_TRIALS) {
            memmove(s->search.trials, s->search.trials + 1, sizeof s->search.trials[0] * (UI_MAX_TRIALS - 1));
            s->search.n_trials = UI_MAX_TRIALS - 1;
        }
        s->search.trials[s->search.n_trials++] = r->fresh[i];
    }
    r->n_new = 0;
    s->search.trials_total = r->total;
    s->search.progress = r->progress;
    s->search.elapsed = r->elapsed;
    if (r->j.done && !r->reported) {
        r->reported = 1;
        s->search.running = 0;
        s->search.cancelled = r->res.cancelled || r->j.rc == RS_CANCELLED;
        if ((r->j.rc == 0 || r->j.rc == RS_CANCELLED) && r->res.plan) {
            s->search.have_result = 1;
            s->search.base = r->res.base_acc;
            s->search.acc = r->res.acc;
            s->search.within = r->res.within;
            s->search.params = r->res.cost.params_after;
            s->search.macs = r->res.cost.macs_after;
            s->search.elapsed = r->res.seconds;
            for (int k = 0; k < s->n_layers; ++k) {
                ui_layer *l = &s->layers[k];
                l->has_searched = 0;
                for (int i = 0; i < r->res.plan->n; ++i) {
                    const plan_entry *pe = &r->res.plan->entries[i];
                    if (model_find_layer(r->m, pe->layer) == l->node) {
                        l->has_searched = 1;
                        l->searched.method = pe->method;
                        l->searched.rank = pe->method == DECOMP_NONE ? 0 : pe->rank;
                        l->searched.rank2 = pe->method == DECOMP_TUCKER2 ? pe->rank2 : 0;
                    }
                }
            }
            snprintf(s->search.msg, sizeof s->search.msg, "%s after %d trials, %.1f s%s",
                     s->search.cancelled ? "stopped" : "done", r->res.trials, r->res.seconds,
                     s->search.cancelled ? " (best plan so far)" : "");
        } else {
            snprintf(s->search.msg, sizeof s->search.msg, "search failed: %.400s", r->j.err);
        }
    }
    pthread_mutex_unlock(&r->j.mu);
    return changed;
}

/* ---- trade-off curve ----------------------------------------------------------------------- */

#include "rankscope/eval.h"
#include "rankscope/finetune.h"
#include "rankscope/pipeline.h"

struct ui_curve {
    const rs_model *m;
    const cifar10_set *search_set, *eval_set, *train, *val;
    const float *calib; /* NULL: factors fitted to the weights */
    int n_calib;
    int64_t params_total;
    int ft_epochs; /* 0: no fine-tuning */
    ui_job j;
    int n, reported_n, reported_done; /* under j.mu */
    double ratio[UI_CURVE_N], acc[UI_CURVE_N], est[UI_CURVE_N], acc_ft[UI_CURVE_N];
    rs_plan *plans[UI_CURVE_N];
    double ft_progress, reported_ft;
};

static int curve_progress(void *user, double fraction, const char *what)
{
    (void)fraction;
    (void)what;
    return ui_job_cancelled(&((ui_curve *)user)->j);
}

static int curve_ft_progress(void *user, double fraction, const char *what)
{
    ui_curve *c = user;
    (void)what;
    pthread_mutex_lock(&c->j.mu);
    c->ft_progress = fraction;
    pthread_mutex_unlock(&c->j.mu);
    return ui_job_cancelled(&c->j);
}

static int curve_point(void *user, const pipe_curve_point *p)
{
    ui_curve *c = user;
    pthread_mutex_lock(&c->j.mu);
    if (p->unreachable)
        snprintf(c->j.err, sizeof c->j.err, "%s", p->unreachable);
    else {
        c->ratio[c->n] = p->cost.params_after > 0 ? (double)c->params_total / (double)p->cost.params_after : 0;
        c->acc[c->n] = p->acc;
        c->est[c->n] = p->est_drop;
        c->acc_ft[c->n] = p->acc_finetuned;
        c->plans[c->n] = p->plan ? plan_clone(p->plan) : NULL; /* borrowed for the callback only */
        c->n++;
    }
    int stop = c->j.cancel || p->unreachable;
    pthread_mutex_unlock(&c->j.mu);
    return stop;
}

static void *curve_run(void *arg)
{
    ui_curve *c = arg;
    rs_err e = {{0}};
    int rc = 0;
    search_ctx *ctx = search_ctx_create(c->m, c->search_set, 0, &e);
    if (!ctx)
        rc = -1;
    search_options o;
    search_default_options(&o);
    o.sens_images = 1000; /* the tables only rank plans; each point is then evaluated for real */
    o.fit_calib = c->calib; /* the points' plans, fine-tuned or not, factorized as the search does */
    o.fit_n = c->calib ? c->n_calib : 0;
    o.progress = curve_progress;
    o.progress_user = c;
    finetune_options fo;
    finetune_default_options(&fo);
    fo.train.epochs = c->ft_epochs;
    fo.train.progress = curve_ft_progress;
    fo.train.progress_user = c;
    pipe_curve_options po = {ui_curve_reductions, UI_CURVE_N, &o, c->eval_set, 0, c->ft_epochs > 0 ? &fo : NULL,
                             c->train, c->val, curve_point, c};
    if (rc == 0)
        rc = pipe_curve_run(c->m, ctx, &po, &e);
    search_ctx_free(ctx);
    /* an unreachable point (its message already in j.err, written by this thread) is reported as
     * the curve's failure */
    if (rc == RS_CANCELLED && c->j.err[0])
        ui_job_finish(&c->j, -1, NULL);
    else
        ui_job_finish(&c->j, rc, e.msg);
    return NULL;
}

ui_curve *ui_curve_start(const rs_model *m, const cifar10_set *search_set, const cifar10_set *eval_set,
                         int64_t params_total, int ft_epochs, const cifar10_set *train, const cifar10_set *val,
                         const float *calib, int n_calib, rs_err *e)
{
    ui_curve *c = calloc(1, sizeof *c);
    if (!c) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    c->m = m;
    c->search_set = search_set;
    c->eval_set = eval_set;
    c->params_total = params_total;
    c->ft_epochs = train && val ? ft_epochs : 0;
    c->train = train;
    c->val = val;
    c->calib = calib;
    c->n_calib = n_calib;
    if (ui_job_start(&c->j, curve_run, c, "curve", e) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void ui_curve_stop(ui_curve *c)
{
    if (!c)
        return;
    ui_job_stop(&c->j);
    for (int i = 0; i < UI_CURVE_N; ++i)
        plan_free(c->plans[i]);
    free(c);
}

/* A point's plan as one choice per layer of s (layers it leaves out: none). */
static void curve_choices(const ui_curve *c, const rs_plan *p, const ui_state *s, ui_choice *out)
{
    for (int k = 0; k < s->n_layers; ++k)
        out[k] = (ui_choice){DECOMP_NONE, 0, 0};
    for (int i = 0; p && i < p->n; ++i) {
        const plan_entry *pe = &p->entries[i];
        int node = model_find_layer(c->m, pe->layer);
        for (int k = 0; k < s->n_layers; ++k)
            if (s->layers[k].node == node)
                out[k] = (ui_choice){pe->method, pe->method == DECOMP_NONE ? 0 : pe->rank,
                                     pe->method == DECOMP_TUCKER2 ? pe->rank2 : 0};
    }
}

int ui_curve_poll(ui_curve *c, ui_state *s)
{
    pthread_mutex_lock(&c->j.mu);
    int changed = c->n != c->reported_n || (c->j.done && !c->reported_done) || c->ft_progress != c->reported_ft;
    c->reported_ft = c->ft_progress;
    for (int i = 0; i < c->n; ++i) {
        s->curve.ratio[i] = c->ratio[i];
        s->curve.acc[i] = c->acc[i];
        s->curve.est[i] = c->est[i];
        s->curve.acc_ft[i] = c->acc_ft[i];
        if (i >= c->reported_n && s->curve.plans)
            curve_choices(c, c->plans[i], s, s->curve.plans + (size_t)i * (size_t)s->n_layers);
    }
    s->curve.n = c->n;
    c->reported_n = c->n;
    if (changed && !c->j.done) {
        snprintf(s->curve.msg, sizeof s->curve.msg, "curve pending: %d/%d points", c->n, UI_CURVE_N);
        s->curve.msg_short[0] = 0;
    }
    if (!c->j.done && c->ft_epochs > 0 && c->ft_progress > 0) { /* fine-tuning shows its own progress */
        snprintf(s->curve.msg, sizeof s->curve.msg, "curve pending: %d/%d points, fine-tuning point %d %.0f%%",
                 c->n, UI_CURVE_N, c->n + 1, 100 * c->ft_progress);
        snprintf(s->curve.msg_short, sizeof s->curve.msg_short, "curve %d/%d, tuning %d: %.0f%%", c->n,
                 UI_CURVE_N, c->n + 1, 100 * c->ft_progress);
    }
    if (c->j.done && !c->reported_done) {
        c->reported_done = 1;
        s->curve.running = 0;
        s->curve.done = c->j.rc == 0;
        if (c->j.rc == 0) {
            snprintf(s->curve.msg, sizeof s->curve.msg, "curve done: %d points (c recomputes)", c->n);
            snprintf(s->curve.msg_short, sizeof s->curve.msg_short, "curve done: %d points", c->n);
        } else {
            snprintf(s->curve.msg, sizeof s->curve.msg, "curve failed: %.400s", c->j.err);
            s->curve.msg_short[0] = 0; /* the reason, cut, says more than "curve failed" */
        }
    }
    pthread_mutex_unlock(&c->j.mu);
    return changed;
}

/* ---- fine-tuning ----------------------------------------------------------------------------- */

struct ui_ft {
    const rs_model *m;
    rs_plan *plan;
    const cifar10_set *train, *val, *test;
    const float *calib;
    int n_calib;
    int epochs;
    ui_job j;
    int n, reported_n, reported_done; /* under j.mu */
    double val_acc[UI_FT_MAX_EPOCHS], progress, test_acc;
    finetune_report rep; /* which state finetune_run kept (the best on validation) */
    rs_model *out;
};

static int ft_progress(void *user, double fraction, const char *what)
{
    (void)what;
    ui_ft *f = user;
    pthread_mutex_lock(&f->j.mu);
    if (fraction >= 0)
        f->progress = fraction;
    int stop = f->j.cancel;
    pthread_mutex_unlock(&f->j.mu);
    return stop;
}

static int ft_epoch(void *user, const train_epoch_stats *st)
{
    ui_ft *f = user;
    pthread_mutex_lock(&f->j.mu);
    if (f->n < UI_FT_MAX_EPOCHS)
        f->val_acc[f->n++] = st->val_acc;
    int stop = f->j.cancel;
    pthread_mutex_unlock(&f->j.mu);
    return stop;
}

static void *ft_run(void *arg)
{
    ui_ft *f = arg;
    rs_err e = {{0}};
    train_data td, vd;
    finetune_data_of(f->train, &td);
    finetune_data_of(f->val, &vd);
    finetune_options o;
    finetune_default_options(&o);
    o.train.epochs = f->epochs;
    o.train.progress = ft_progress;
    o.train.progress_user = f;
    o.train.on_epoch = ft_epoch;
    o.train.epoch_user = f;
    o.report = &f->rep; /* written only by this thread until done is set under the lock */
    o.fit_calib = f->calib;
    o.fit_n = f->calib ? f->n_calib : 0;
    rs_model *out = NULL;
    train_epoch_stats last;
    int rc = finetune_run(f->m, f->plan, &td, &vd, &o, &out, &last, &e);
    double acc = 0;
    if (rc == 0) {
        eval_result res;
        rc = eval_model(out, f->test, 0, &res, ft_progress, f, &e);
        acc = res.accuracy;
    }
    f->out = out;
    f->test_acc = acc;
    ui_job_finish(&f->j, rc, e.msg);
    return NULL;
}

ui_ft *ui_ft_start(const rs_model *m, const rs_plan *plan, const cifar10_set *train, const cifar10_set *val,
                   const cifar10_set *test, int epochs, const float *calib, int n_calib, rs_err *e)
{
    ui_ft *f = calloc(1, sizeof *f);
    if (!f || !(f->plan = plan_clone(plan))) {
        free(f);
        rs_fail(e, "out of memory");
        return NULL;
    }
    f->m = m;
    f->train = train;
    f->val = val;
    f->test = test;
    f->calib = calib;
    f->n_calib = n_calib;
    f->epochs = epochs < 1 ? 1 : epochs > UI_FT_MAX_EPOCHS ? UI_FT_MAX_EPOCHS : epochs;
    if (ui_job_start(&f->j, ft_run, f, "fine-tuning", e) != 0) {
        plan_free(f->plan);
        free(f);
        return NULL;
    }
    return f;
}

void ui_ft_cancel(ui_ft *f)
{
    if (!f)
        return;
    ui_job_cancel(&f->j);
}

void ui_ft_stop(ui_ft *f)
{
    if (!f)
        return;
    ui_job_stop(&f->j);
    model_free(f->out);
    plan_free(f->plan);
    free(f);
}

const rs_model *ui_ft_model(const ui_ft *f)
{
    return f && f->j.done && f->j.rc == 0 ? f->out : NULL;
}

int ui_ft_poll(ui_ft *f, ui_state *s)
{
    pthread_mutex_lock(&f->j.mu);
    int changed = f->n != f->reported_n || s->ft.progress != f->progress || (f->j.done && !f->reported_done);
    for (int i = 0; i < f->n; ++i)
        s->ft.val[i] = f->val_acc[i];
    s->ft.n = f->n;
    s->ft.progress = f->progress;
    f->reported_n = f->n;
    if (f->j.done && !f->reported_done) {
        f->reported_done = 1;
        s->ft.running = 0;
        s->ft.done = 1;
        s->ft.have_model = f->j.rc == 0;
        s->ft.test_acc = f->test_acc;
        if (f->j.rc == 0) {
            if (f->rep.kept_epoch == f->rep.epochs_done)
                snprintf(s->ft.msg, sizeof s->ft.msg, "fine-tuned %d epochs; w saves the fine-tuned ONNX", f->n);
            else if (f->rep.kept_epoch > 0)
                snprintf(s->ft.msg, sizeof s->ft.msg, "kept epoch %d (best on validation); w saves it",
                         f->rep.kept_epoch);
            else
                snprintf(s->ft.msg, sizeof s->ft.msg, "no epoch beat the start on validation: kept the net "
                                                      "before fine-tuning");
        } else if (f->j.rc == RS_CANCELLED)
            snprintf(s->ft.msg, sizeof s->ft.msg, "fine-tuning stopped after %d epochs", f->n);
        else
            snprintf(s->ft.msg, sizeof s->ft.msg, "fine-tuning failed: %.400s", f->j.err);
    }
    pthread_mutex_unlock(&f->j.mu);
    return changed;
}

/* ---- one evaluation (the compared model) ------------------------------------------------------ */

struct ui_evaljob {
    const rs_model *m;
    const cifar10_set *set;
    ui_job j;
    double acc; /* under j.mu once done */
    int reported;
};

static int evaljob_progress(void *user, double fraction, const char *what)
{
    (void)fraction;
    (void)what;
    return ui_job_cancelled(&((ui_evaljob *)user)->j);
}

static void *evaljob_run(void *arg)
{
    ui_evaljob *v = arg;
    rs_err e = {{0}};
    eval_result res;
    int rc = eval_model(v->m, v->set, 0, &res, evaljob_progress, v, &e);
    v->acc = rc == 0 ? res.accuracy : -1;
    ui_job_finish(&v->j, rc, e.msg);
    return NULL;
}

ui_evaljob *ui_evaljob_start(const rs_model *m, const cifar10_set *set, rs_err *e)
{
    ui_evaljob *v = calloc(1, sizeof *v);
    if (!v) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    v->m = m;
    v->set = set;
    v->acc = -1;
    if (ui_job_start(&v->j, evaljob_run, v, "evaluation", e) != 0) {
        free(v);
        return NULL;
    }
    return v;
}

void ui_evaljob_stop(ui_evaljob *v)
{
    if (!v)
        return;
    ui_job_stop(&v->j);
    free(v);
}

int ui_evaljob_poll(ui_evaljob *v, ui_state *s)
{
    pthread_mutex_lock(&v->j.mu);
    int news = v->j.done && !v->reported;
    if (news) {
        v->reported = 1;
        s->cmp.b_running = 0;
        s->cmp.b_acc = v->acc;
        if (v->j.rc != 0)
            snprintf(s->cmp.msg, sizeof s->cmp.msg, "evaluation of %.100s failed: %.400s", s->cmp.b_name, v->j.err);
    }
    pthread_mutex_unlock(&v->j.mu);
    return news;
}

/* ---- the trial table ---------------------------------------------------------------------- */

#define TRIAL_WIDE 91 /* the row with the images column and a 12-cell layer name */
#define TRIAL_TRIED_NARROW 16 /* "tucker2 256,256" */

/* The layer column's width: 20 cells when narrow, where it also stands for the phase column
 * (a layer's trials are the "layer" phase, the others name no layer), so "layer3.0.shortcut.0"
 * is whole at 80 columns; 12 and up to 8 more when wide, whole again from 98 columns. */
static int trial_layer_w(int width)
{
    int more = width - TRIAL_WIDE;
    return width < TRIAL_WIDE ? 20 : 12 + (more > 8 ? 8 : more);
}

void ui_trial_header(int width, char *buf, size_t len)
{
    int lw = trial_layer_w(width);
    if (width >= TRIAL_WIDE)
        snprintf(buf, len, "%4s  %-8s %-*s %-15s %7s  %6s  %-3s %8s %8s %8s", "#", "phase", lw, "layer", "tried", "val.acc",
                 "images", "ok", "params", "MACs", "time");
    else
        snprintf(buf, len, "%4s %-*s %-*s %7s %-3s %7s %7s %7s", "#", lw, "layer", TRIAL_TRIED_NARROW, "tried",
                 "val.acc", "ok", "params", "MACs", "time");
}

void ui_trial_row(const ui_state *s, const ui_trial *t, int width, char *buf, size_t len)
{
    char a[32], b[32], c[32], name[96];
    const int lw = trial_layer_w(width);
    /* the label the layer table gives it, which no other layer's reads like */
    int k = 0;
    while (k < s->n_layers && strcmp(s->layers[k].name, t->layer))
        ++k;
    if (width < TRIAL_WIDE && !t->layer[0])
        snprintf(name, sizeof name, "(%.*s)", lw - 2, t->phase);
    else if (k < s->n_layers)
        ui_fit_label(s, k, lw, name, sizeof name);
    else
        fmt_cut_middle(t->layer, lw, s->utf8, name, sizeof name);
    int pad = lw;
    for (const char *p = name; *p; ++p)
        pad -= ((unsigned char)*p & 0xC0) != 0x80;
    pad = pad < 0 ? 0 : pad;
    fmt_pct(t->acc, a, sizeof a);
    fmt_count(t->params, b, sizeof b);
    fmt_count(t->macs, c, sizeof c);
    if (width >= TRIAL_WIDE)
        snprintf(buf, len, "%4d  %-8.8s %s%*s %-15.15s %7s  %6d  %-3s %8s %8s %7.1fs", t->index, t->phase, name, pad, "",
                 t->tried, a, t->images, t->within ? "yes" : "no", b, c, t->elapsed);
    else
        snprintf(buf, len, "%4d %s%*s %-*.*s %7s %-3s %7s %7s %6.1fs", t->index, name, pad, "", TRIAL_TRIED_NARROW,
                 TRIAL_TRIED_NARROW, t->tried, a, t->within ? "yes" : "no", b, c, t->elapsed);
}
