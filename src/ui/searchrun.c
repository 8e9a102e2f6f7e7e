/* searchrun.c — the rank search on a background thread for the Search screen. */
#include "searchrun.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/search.h"

#define NEW_TRIALS 256

struct ui_search {
    const rs_model *m;
    const cifar10_set *set;
    search_options o;
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    /* shared (under mu) */
    int cancel, done, rc;
    double progress, elapsed;
    int n_new, total;
    ui_trial fresh[NEW_TRIALS];
    search_result res;
    char err[RS_ERR_LEN];
    int reported;
};

static int on_trial(void *user, const search_trial *t)
{
    ui_search *r = user;
    pthread_mutex_lock(&r->mu);
    if (r->n_new < NEW_TRIALS) {
        ui_trial *u = &r->fresh[r->n_new++];
        u->index = t->index;
        snprintf(u->phase, sizeof u->phase, "%s", t->phase ? t->phase : "");
        snprintf(u->layer, sizeof u->layer, "%s", t->layer ? t->layer : "");
        u->acc = t->accuracy;
        u->images = t->images;
        u->within = t->within;
        u->params = t->params;
        u->macs = t->macs;
        u->elapsed = t->elapsed;
    }
    r->total++;
    r->elapsed = t->elapsed;
    int c = r->cancel;
    pthread_mutex_unlock(&r->mu);
    return c;
}

static int on_progress(void *user, double fraction, const char *what)
{
    (void)what;
    ui_search *r = user;
    pthread_mutex_lock(&r->mu);
    if (fraction >= 0)
        r->progress = fraction;
    int c = r->cancel;
    pthread_mutex_unlock(&r->mu);
    return c;
}

static void *run(void *arg)
{
    ui_search *r = arg;
    search_result res;
    memset(&res, 0, sizeof res);
    rs_err e = {{0}};
    int rc = search_run(r->m, r->set, &r->o, &res, &e);
    pthread_mutex_lock(&r->mu);
    r->res = res;
    r->rc = rc;
    snprintf(r->err, sizeof r->err, "%s", e.msg);
    r->done = 1;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

ui_search *ui_search_start(const rs_model *m, const cifar10_set *set, const ui_state *s, rs_err *e)
{
    ui_search *r = calloc(1, sizeof *r);
    if (!r) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    r->m = m;
    r->set = set;
    search_default_options(&r->o);
    r->o.strategy = (search_strategy)s->search_strategy;
    r->o.objective = (search_objective)s->search_objective;
    r->o.tolerance = s->search_tol;
    r->o.progress = on_progress;
    r->o.progress_user = r;
    r->o.on_trial = on_trial;
    r->o.trial_user = r;
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_create(&r->th, NULL, run, r)) {
        pthread_mutex_destroy(&r->mu);
        free(r);
        rs_fail(e, "cannot start the search thread");
        return NULL;
    }
    r->started = 1;
    return r;
}

void ui_search_cancel(ui_search *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->cancel = 1;
    pthread_mutex_unlock(&r->mu);
}

void ui_search_stop(ui_search *r)
{
    if (!r)
        return;
    ui_search_cancel(r);
    if (r->started)
        pthread_join(r->th, NULL);
    search_result_free(&r->res);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int ui_search_poll(ui_search *r, ui_state *s)
{
    pthread_mutex_lock(&r->mu);
    int changed = r->n_new > 0 || s->search_progress != r->progress || (r->done && !r->reported);
    for (int i = 0; i < r->n_new; ++i) {
        if (s->n_trials >= UI_MAX_TRIALS) {
            memmove(s->trials, s->trials + 1, sizeof s->trials[0] * (UI_MAX_TRIALS - 1));
            s->n_trials = UI_MAX_TRIALS - 1;
        }
        s->trials[s->n_trials++] = r->fresh[i];
    }
    r->n_new = 0;
    s->trials_total = r->total;
    s->search_progress = r->progress;
    s->search_elapsed = r->elapsed;
    if (r->done && !r->reported) {
        r->reported = 1;
        s->search_running = 0;
        s->search_cancelled = r->res.cancelled || r->rc == RS_CANCELLED;
        if ((r->rc == 0 || r->rc == RS_CANCELLED) && r->res.plan) {
            s->search_have_result = 1;
            s->search_base = r->res.base_acc;
            s->search_acc = r->res.acc;
            s->search_within = r->res.within;
            s->search_params = r->res.cost.params_after;
            s->search_macs = r->res.cost.macs_after;
            s->search_elapsed = r->res.seconds;
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
            snprintf(s->search_msg, sizeof s->search_msg, "%s after %d trials, %.1f s%s",
                     s->search_cancelled ? "stopped" : "done", r->res.trials, r->res.seconds,
                     s->search_cancelled ? " (best plan so far)" : "");
        } else {
            snprintf(s->search_msg, sizeof s->search_msg, "search failed: %.400s", r->err);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return changed;
}
