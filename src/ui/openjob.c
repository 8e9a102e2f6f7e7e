/* openjob.c — opening a model on a worker for the browser, so a big network's EVBMF ranks do
 * not freeze the screen. */
#include "searchrun.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/guard.h"
#include "rankscope/onnx.h"
#include "rankscope/plan.h"

struct ui_openjob {
    char path[1024];
    ui_job j;
    /* under j.mu */
    double progress;
    char what[64];
    int changed;
    rs_model *m; /* the outcome once done with rc 0, until taken */
    ui_state *s;
    int reported;
};

static int open_progress(void *user, double fraction, const char *what)
{
    ui_openjob *o = user;
    pthread_mutex_lock(&o->j.mu);
    o->progress = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
    snprintf(o->what, sizeof o->what, "%s", what ? what : "");
    o->changed = 1;
    int c = o->j.cancel;
    pthread_mutex_unlock(&o->j.mu);
    return c;
}

static void *open_run(void *arg)
{
    ui_openjob *o = arg;
    rs_err e = {{0}};
    ui_state *s = NULL;
    int rc = open_progress(o, 0, "reading the file") ? rs_fail(&e, "cancelled") : 0;
    rs_model *m = rc == 0 ? onnx_load(o->path, &e) : NULL;
    if (rc == 0 && !m)
        rc = -1;
    if (rc == 0)
        rc = guard_model_finite(m, &e);
    if (rc == 0 && open_progress(o, 0, "finding the EVBMF ranks"))
        rc = RS_CANCELLED;
    if (rc == 0 && !(s = malloc(sizeof *s)))
        rc = rs_fail(&e, "out of memory");
    if (rc == 0) {
        ui_state_defaults(s);
        rc = ui_state_init_progress(s, m, open_progress, o, &e);
    }
    if (rc == -1 && ui_job_cancelled(&o->j)) /* the reason no longer matters */
        rc = RS_CANCELLED;
    if (rc != 0) {
        ui_state_free(s);
        free(s);
        s = NULL;
        model_free(m);
        m = NULL;
    }
    o->m = m;
    o->s = s;
    ui_job_finish(&o->j, rc, rc == RS_CANCELLED ? "cancelled" : e.msg);
    return NULL;
}

ui_openjob *ui_openjob_start(const char *path, rs_err *e)
{
    ui_openjob *o = calloc(1, sizeof *o);
    if (!o) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    snprintf(o->path, sizeof o->path, "%s", path);
    if (ui_job_start(&o->j, open_run, o, "model opening", e) != 0) {
        free(o);
        return NULL;
    }
    return o;
}

void ui_openjob_cancel(ui_openjob *o)
{
    if (o)
        ui_job_cancel(&o->j);
}

int ui_openjob_done(ui_openjob *o)
{
    return ui_job_done(&o->j);
}

int ui_openjob_poll(ui_openjob *o, ui_state *s)
{
    pthread_mutex_lock(&o->j.mu);
    int news = (o->changed || o->j.done) && !o->reported;
    if (news) {
        o->changed = 0;
        s->browse.open_progress = o->progress;
        snprintf(s->browse.open_what, sizeof s->browse.open_what, "%s", o->what);
    }
    pthread_mutex_unlock(&o->j.mu);
    return news;
}

int ui_openjob_result(ui_openjob *o, rs_model **m, ui_state **ns, rs_err *e)
{
    pthread_mutex_lock(&o->j.mu);
    int rc = 1;
    if (o->j.done && !o->reported) {
        o->reported = 1;
        rc = o->j.rc;
        if (rc == 0) {
            *m = o->m;
            *ns = o->s;
            o->m = NULL;
            o->s = NULL;
        } else {
            rs_fail(e, "%s", o->j.err);
        }
    }
    pthread_mutex_unlock(&o->j.mu);
    return rc;
}

void ui_openjob_stop(ui_openjob *o)
{
    if (!o)
        return;
    ui_job_stop(&o->j);
    ui_state_free(o->s);
    free(o->s);
    model_free(o->m);
    free(o);
}

/* ---- The EVBMF ranks of the model on screen, found after the screen is up, on a copy of the
 * model: quitting gives the job up at once instead of waiting for the SVD under way (seconds on a
 * big layer), and the job frees itself when that ends. */
struct ui_evbmfjob {
    ui_job j;
    rs_model *m; /* own copy */
    ui_evbmf *v;
    int installed;
};

static void evbmfjob_free(ui_evbmfjob *o)
{
    ui_evbmf_free(o->v);
    model_free(o->m);
    free(o);
}

static int evbmf_progress(void *user, double fraction, const char *what)
{
    (void)fraction, (void)what;
    return ui_job_cancelled(&((ui_evbmfjob *)user)->j);
}

static void *evbmf_run(void *arg)
{
    ui_evbmfjob *o = arg;
    if (ui_job_finish(&o->j, ui_evbmf_run(o->v, o->m, evbmf_progress, o), NULL))
        evbmfjob_free(o);
    return NULL;
}

ui_evbmfjob *ui_evbmfjob_start(const rs_model *m, const ui_state *s, rs_err *e)
{
    ui_evbmfjob *o = calloc(1, sizeof *o);
    if (!o || !(o->v = ui_evbmf_alloc(s)) || !(o->m = model_clone(m))) {
        if (o)
            evbmfjob_free(o);
        rs_fail(e, "out of memory");
        return NULL;
    }
    if (ui_job_start(&o->j, evbmf_run, o, "EVBMF ranks", e) != 0) {
        evbmfjob_free(o);
        return NULL;
    }
    return o;
}

int ui_evbmfjob_poll(ui_evbmfjob *o, ui_state *s)
{
    pthread_mutex_lock(&o->j.mu);
    int news = o->j.done && !o->installed && o->j.rc == 0;
    pthread_mutex_unlock(&o->j.mu);
    if (news) { /* the worker has finished with v */
        o->installed = 1;
        ui_state_set_evbmf(s, o->v);
    }
    return news;
}

void ui_evbmfjob_drop(ui_evbmfjob *o)
{
    if (o && ui_job_drop(&o->j))
        evbmfjob_free(o);
}

/* ---- The graph view's time column: infer_profile on a worker, of the model or of a copy with a
 * plan applied. */
struct ui_timejob {
    ui_job j;
    const rs_model *m;
    rs_plan *plan;  /* owned; NULL: the model itself */
    rs_model *pm;   /* the worker's plan-applied copy */
    const uint8_t *pixels;
    int n;
    /* under j.mu */
    double progress;
    int changed, installed;
    infer_prof *p;
};

static int time_progress(void *user, double fraction, const char *what)
{
    (void)what;
    ui_timejob *o = user;
    pthread_mutex_lock(&o->j.mu);
    o->progress = fraction;
    o->changed = 1;
    int c = o->j.cancel;
    pthread_mutex_unlock(&o->j.mu);
    return c;
}

static int time_apply_progress(void *user, double fraction, const char *what)
{
    (void)fraction, (void)what;
    return ui_job_cancelled(&((ui_timejob *)user)->j);
}

static void *time_run(void *arg)
{
    ui_timejob *o = arg;
    rs_err e = {{0}};
    infer_prof *p = NULL;
    int rc = 0;
    if (o->plan) { /* factor values do not change a kernel's time, but the chain is the real one */
        decomp_opts d;
        decomp_opts_default(&d);
        d.progress = time_apply_progress;
        d.user = o;
        o->pm = model_clone(o->m);
        rc = o->pm ? plan_apply(o->pm, o->plan, &d, NULL, &e) : rs_fail(&e, "out of memory");
    }
    if (rc == 0)
        rc = infer_profile(o->plan ? o->pm : o->m, NULL, o->pixels, o->n, time_progress, o, &p, &e);
    o->p = p;
    ui_job_finish(&o->j, rc, e.msg);
    return NULL;
}

ui_timejob *ui_timejob_start(const rs_model *m, const rs_plan *plan, const cifar10_set *set, rs_err *e)
{
    ui_timejob *o = calloc(1, sizeof *o);
    if (!o || (plan && !(o->plan = plan_clone(plan)))) {
        free(o);
        rs_fail(e, "out of memory");
        return NULL;
    }
    int64_t macs = 0;
    model_totals(m, NULL, &macs); /* the original's: a plan is timed on the same images */
    o->m = m;
    o->pixels = set->pixels;
    o->n = ui_time_images(macs, set->n);
    if (ui_job_start(&o->j, time_run, o, "node timing", e) != 0) {
        plan_free(o->plan);
        free(o);
        return NULL;
    }
    return o;
}

int ui_timejob_poll(ui_timejob *o, ui_state *s)
{
    pthread_mutex_lock(&o->j.mu);
    int news = (o->changed || o->j.done) && !o->installed;
    o->changed = 0;
    if (news && o->j.done) {
        o->installed = 1;
        if (!o->plan && o->j.rc == 0)
            ui_graph_set_times(s, o->p, NULL);
        else if (!o->plan)
            ui_graph_set_times(s, NULL, o->j.err);
        else if (o->j.rc == 0) /* even when cancelled late: marked stale, better than nothing */
            ui_graph_set_plan_times(s, o->m, o->pm, o->p, NULL);
        else if (!o->j.cancel)
            ui_graph_set_plan_times(s, o->m, NULL, NULL, o->j.err);
        else
            news = 0;
    } else if (news && o->plan) {
        s->graph.p_state = UI_TIME_RUNNING;
        s->graph.p_progress = o->progress;
    } else if (news) {
        s->graph.time_state = UI_TIME_RUNNING;
        s->graph.time_progress = o->progress;
    }
    pthread_mutex_unlock(&o->j.mu);
    return news;
}

void ui_timejob_cancel(ui_timejob *o)
{
    if (o)
        ui_job_cancel(&o->j);
}

int ui_timejob_done(ui_timejob *o)
{
    return ui_job_done(&o->j);
}

void ui_timejob_stop(ui_timejob *o)
{
    if (!o)
        return;
    ui_job_stop(&o->j);
    infer_prof_free(o->p);
    model_free(o->pm);
    plan_free(o->plan);
    free(o);
}
