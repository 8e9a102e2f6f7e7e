/* spec.h — the spectrum of the selected layer (singular values, energy, error against rank) that
 * the Layers and Spectrum screens draw, and the worker that computes it for big layers.
 *
 * Contract:
 *  - ui_spec_compute fills sp for layer `layer` (l, of the model m) under method meth: the full
 *    SVD of the matrix that method truncates (decomp_spectrum_of), pooled over slices for
 *    slice-svd, with the view's EVBMF threshold; a note says what is shown, or why nothing is.
 *    Pure (no curses, no state): it runs on the UI thread or a worker.
 *  - ui_spec_update keeps sp on the selected layer's (layer, method): at once when the SVD is
 *    small (ui_spec_cost <= UI_SPEC_SYNC_COST), else a pending sp (note "computing ...") while a
 *    worker (*job) computes it. One SVD at a time; a job no longer wanted is dropped, not waited
 *    for (a full SVD cannot be interrupted): it owns a copy of the model and frees itself. So the
 *    UI never waits on an SVD, including at exit (ui_specjob_drop). Returns 1 when sp changed.
 */
#ifndef RANKSCOPE_UI_SPEC_H
#define RANKSCOPE_UI_SPEC_H

#include "rankscope/decomp.h"
#include "rankscope/model.h"
#include "state.h"

typedef struct ui_spec {
    int valid;   /* the figures below are there */
    int ready;   /* the final answer for (layer, method): the figures, or a note saying why none */
    int pending; /* a worker is computing it; note says so */
    int layer;
    decomp_method method;
    decomp_view view;
    int rows, cols, n, n_mats;
    double *sigma;      /* n values (for slices: the mean over slices) */
    double *energy;     /* n cumulative fractions (slices: pooled over slices) */
    double *err;        /* n + 1: relative Frobenius error of truncating at rank r = 0..n */
    double evbmf_threshold;
    int evbmf_rank;
    char note[200];
} ui_spec;

/* Multiply-adds of order min(r,c)^2 max(r,c) for the SVD: up to a 192x192 matrix (ResNet-20's
 * largest, ~20 ms of CPU measured with GSL) it is computed on the UI thread; a 768x768 one (a
 * 256-channel 3x3 conv's spatial view) took 7.4 s of CPU. */
#define UI_SPEC_SYNC_COST 8e6

void ui_spec_free(ui_spec *sp); /* frees the arrays and zeroes sp */
decomp_method ui_spec_method(const ui_state *s); /* the selected layer's method, else its preferred */
double ui_spec_cost(const rs_model *m, int node, decomp_method meth); /* min^2*max of the SVD, 0 unknown */
void ui_spec_compute(ui_spec *sp, const rs_model *m, const ui_layer *l, int layer, decomp_method meth);

typedef struct ui_specjob ui_specjob;
ui_specjob *ui_specjob_start(const rs_model *m, const ui_state *s, int layer, decomp_method meth, rs_err *e);
int ui_specjob_done(ui_specjob *j);
int ui_specjob_is(const ui_specjob *j, int layer, decomp_method meth);
const char *ui_specjob_layer(const ui_specjob *j);
void ui_specjob_take(ui_specjob *j, ui_spec *sp); /* the finished result moves into sp */
void ui_specjob_drop(ui_specjob *j);              /* never waits; accepts NULL */

int ui_spec_update(ui_spec *sp, ui_specjob **job, const ui_state *s, const rs_model *m);

#endif
