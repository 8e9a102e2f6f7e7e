/* spec.c — the spectrum of the selected layer that screens 1 and 2 draw (spec.h), computed on
 * the UI thread when the SVD is small and on a worker when it is not. */
#include "spec.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/evbmf.h"

static decomp_view view_for(decomp_method m)
{
    switch (m) {
    case DECOMP_SVD: return DECOMP_VIEW_DENSE;
    case DECOMP_SPATIAL_SVD: return DECOMP_VIEW_SPATIAL;
    case DECOMP_SLICE_SVD: return DECOMP_VIEW_SLICES;
    default: return DECOMP_VIEW_MODE0;
    }
}

void ui_spec_free(ui_spec *sp)
{
    free(sp->sigma);
    free(sp->energy);
    free(sp->err);
    memset(sp, 0, sizeof *sp);
}

/* The matrix whose spectrum the method's truncation acts on (mode-0 where that view is missing). */
static decomp_view spec_view(const rs_model *m, int node, decomp_method meth)
{
    decomp_view v = view_for(meth);
    return decomp_views_for(m, node) & (1u << v) ? v : DECOMP_VIEW_MODE0;
}

double ui_spec_cost(const rs_model *m, int node, decomp_method meth)
{
    const rs_node *n = &m->nodes[node];
    const rs_value *w = n->n_in > 1 && n->in[1] >= 0 ? &m->values[n->in[1]] : NULL;
    if (!w || !w->is_const || w->ndim < 2)
        return 0;
    double d0 = (double)w->dims[0], d1 = (double)w->dims[1], kh = w->ndim == 4 ? (double)w->dims[2] : 1,
           kw = w->ndim == 4 ? (double)w->dims[3] : 1, r, c;
    switch (spec_view(m, node, meth)) {
    case DECOMP_VIEW_MODE0: r = d0, c = d1 * kh * kw; break;
    case DECOMP_VIEW_MODE1: r = d1, c = d0 * kh * kw; break;
    case DECOMP_VIEW_SPATIAL: r = d1 * kh, c = d0 * kw; break;
    case DECOMP_VIEW_SLICES: r = kh * kw * d0 * d1, c = 1; break; /* many tiny SVDs: linear */
    default: r = d0, c = d1;
    }
    double mn = r < c ? r : c, mx = r < c ? c : r;
    return mn * mn * mx;
}

decomp_method ui_spec_method(const ui_state *s)
{
    const ui_layer *l = &s->layers[s->sel];
    return l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
}

void ui_spec_compute(ui_spec *sp, const rs_model *m, const ui_layer *l, int layer, decomp_method meth)
{
    ui_spec_free(sp);
    sp->layer = layer;
    sp->method = meth;
    sp->ready = 1;
    if (meth == DECOMP_NONE) {
        snprintf(sp->note, sizeof sp->note, "no spectrum: %s cannot be factorized", l->name);
        return;
    }
    decomp_view v = spec_view(m, l->node, meth);
    decomp_spectrum ds;
    memset(&ds, 0, sizeof ds);
    rs_err e;
    if (decomp_spectrum_of(m, l->node, v, &ds, &e)) {
        snprintf(sp->note, sizeof sp->note, "%.150s", e.msg);
        return;
    }
    int n = ds.n;
    sp->sigma = calloc((size_t)n + 1, sizeof(double));
    sp->energy = calloc((size_t)n + 1, sizeof(double));
    sp->err = calloc((size_t)n + 2, sizeof(double));
    if (!sp->sigma || !sp->energy || !sp->err) {
        decomp_spectrum_free(&ds);
        ui_spec_free(sp);
        sp->layer = layer;
        sp->method = meth;
        sp->ready = 1;
        snprintf(sp->note, sizeof sp->note, "no spectrum: out of memory");
        return;
    }
    sp->view = v;
    sp->rows = ds.rows;
    sp->cols = ds.cols;
    sp->n = n;
    sp->n_mats = ds.n_mats;
    /* pooled over matrices (one matrix except for slices): mean σ, and energy of all kept parts */
    double total = 0;
    double *tail = calloc((size_t)n + 1, sizeof(double));
    for (int q = 0; q < ds.n_mats; ++q)
        for (int i = 0; i < n; ++i) {
            double sv = ds.sigma[(size_t)q * n + i];
            sp->sigma[i] += sv / ds.n_mats;
            total += sv * sv;
        }
    double cum = 0;
    for (int i = 0; i < n; ++i) {
        double part = 0;
        for (int q = 0; q < ds.n_mats; ++q) {
            double sv = ds.sigma[(size_t)q * n + i];
            part += sv * sv;
        }
        cum += part;
        sp->energy[i] = total > 0 ? cum / total : 1;
    }
    for (int r = 0; r <= n; ++r) {
        double kept = r == 0 ? 0 : sp->energy[r - 1];
        sp->err[r] = sqrt(kept < 1 ? 1 - kept : 0);
    }
    free(tail);
    if (ds.n_mats == 1) {
        evbmf_result ev;
        memset(&ev, 0, sizeof ev);
        int L = ds.rows < ds.cols ? ds.rows : ds.cols, M = ds.rows < ds.cols ? ds.cols : ds.rows;
        if (evbmf_from_sv(sp->sigma, L, M, &ev, &e) == 0) {
            sp->evbmf_threshold = ev.threshold;
            sp->evbmf_rank = ev.rank;
        }
        evbmf_result_free(&ev);
    }
    if (meth == DECOMP_CP || meth == DECOMP_TUCKER2)
        snprintf(sp->note, sizeof sp->note,
                 "%s: spectrum of the mode-0 unfolding (output channels); its truncation error bounds what %s can keep",
                 decomp_method_name(meth), decomp_method_name(meth));
    else if (meth == DECOMP_SLICE_SVD)
        snprintf(sp->note, sizeof sp->note, "slice-svd: mean over the %d kernel slices of %dx%d", ds.n_mats,
                 ds.rows, ds.cols);
    else
        snprintf(sp->note, sizeof sp->note, "%s factorizes this %s matrix: error(r) = sqrt(1 - energy(r)) exactly",
                 decomp_method_name(meth), decomp_view_name(v));
    decomp_spectrum_free(&ds);
    sp->valid = 1;
}


/* ---- the worker ----------------------------------------------------------------------------
 * A full SVD cannot be interrupted, so a job the UI no longer wants is dropped rather than
 * joined: it owns a copy of the model and frees itself when its SVD ends. The UI never waits. */
struct ui_specjob {
    pthread_t th;
    pthread_mutex_t mu;
    rs_model *m; /* the worker's own copy */
    ui_layer l;
    int layer;
    decomp_method meth;
    ui_spec out;
    int done, dropped; /* under mu */
};

static void specjob_free(ui_specjob *j)
{
    ui_spec_free(&j->out);
    model_free(j->m);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static void *specjob_run(void *arg)
{
    ui_specjob *j = arg;
    ui_spec_compute(&j->out, j->m, &j->l, j->layer, j->meth);
    pthread_mutex_lock(&j->mu);
    j->done = 1;
    int dropped = j->dropped;
    pthread_mutex_unlock(&j->mu);
    if (dropped)
        specjob_free(j);
    return NULL;
}

ui_specjob *ui_specjob_start(const rs_model *m, const ui_state *s, int layer, decomp_method meth, rs_err *e)
{
    ui_specjob *j = calloc(1, sizeof *j);
    if (!j || !(j->m = model_clone(m))) {
        free(j);
        rs_fail(e, "out of memory");
        return NULL;
    }
    j->l = s->layers[layer];
    j->layer = layer;
    j->meth = meth;
    pthread_mutex_init(&j->mu, NULL);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&j->th, &at, specjob_run, j);
    pthread_attr_destroy(&at);
    if (rc) {
        specjob_free(j);
        rs_fail(e, "cannot start the spectrum thread");
        return NULL;
    }
    return j;
}

int ui_specjob_done(ui_specjob *j)
{
    pthread_mutex_lock(&j->mu);
    int d = j->done;
    pthread_mutex_unlock(&j->mu);
    return d;
}

int ui_specjob_is(const ui_specjob *j, int layer, decomp_method meth)
{
    return j->layer == layer && j->meth == meth;
}

const char *ui_specjob_layer(const ui_specjob *j)
{
    return j->l.name;
}

void ui_specjob_take(ui_specjob *j, ui_spec *sp)
{
    ui_spec_free(sp);
    *sp = j->out;
    memset(&j->out, 0, sizeof j->out);
}

void ui_specjob_drop(ui_specjob *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    int done = j->done;
    j->dropped = 1;
    pthread_mutex_unlock(&j->mu);
    if (done) /* else the worker frees it when it ends */
        specjob_free(j);
}

/* The screens' answer while the worker computes it. */
static void pending(ui_spec *sp, const ui_state *s, int layer, decomp_method meth, const ui_specjob *running)
{
    ui_spec_free(sp);
    sp->layer = layer;
    sp->method = meth;
    sp->pending = 1;
    const ui_layer *l = &s->layers[layer];
    if (running && !ui_specjob_is(running, layer, meth))
        snprintf(sp->note, sizeof sp->note, "computing the spectrum of %s after %s's (a full SVD: seconds on a big layer)...",
                 l->name, ui_specjob_layer(running));
    else
        snprintf(sp->note, sizeof sp->note, "computing the spectrum of %s (a full SVD of its %s: seconds on a big layer)...",
                 l->name, l->shape);
}

int ui_spec_update(ui_spec *sp, ui_specjob **job, const ui_state *s, const rs_model *m)
{
    if (s->n_layers <= 0)
        return 0;
    const int layer = s->sel;
    const decomp_method meth = ui_spec_method(s);
    const int same = sp->layer == layer && sp->method == meth;
    if (sp->ready && same)
        return 0;
    if (*job && ui_specjob_done(*job)) {
        int wanted = ui_specjob_is(*job, layer, meth);
        if (wanted)
            ui_specjob_take(*job, sp);
        ui_specjob_drop(*job);
        *job = NULL;
        if (wanted)
            return 1;
    }
    if (*job) { /* one SVD at a time: the wanted one starts when this one ends */
        if (sp->pending && same && ui_specjob_is(*job, layer, meth))
            return 0;
        pending(sp, s, layer, meth, *job);
        return 1;
    }
    const ui_layer *l = &s->layers[layer];
    rs_err e;
    if (meth == DECOMP_NONE || ui_spec_cost(m, l->node, meth) <= UI_SPEC_SYNC_COST ||
        !(*job = ui_specjob_start(m, s, layer, meth, &e))) {
        ui_spec_compute(sp, m, l, layer, meth);
        return 1;
    }
    pending(sp, s, layer, meth, *job);
    return 1;
}
