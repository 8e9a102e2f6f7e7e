/* screens.h — one draw function per screen (curses), plus the spectrum cache they share. */
#ifndef RANKSCOPE_UI_SCREENS_H
#define RANKSCOPE_UI_SCREENS_H

#include "rankscope/decomp.h"
#include "rankscope/model.h"
#include "state.h"

/* Spectrum of the selected layer in the view its method factorizes (UI-thread cache). */
typedef struct ui_spec {
    int valid;
    int layer;
    decomp_method method;
    decomp_view view;
    int rows, cols, n, n_mats;
    double *sigma;      /* n values (for slices: the mean over slices) */
    double *energy;     /* n cumulative fractions (slices: pooled over slices) */
    double *err;        /* n + 1: relative Frobenius error of truncating at rank r = 0..n */
    double evbmf_threshold;
    int evbmf_rank;
    char note[160];
} ui_spec;

/* Recompute the cache when the selected layer or its method changed. Returns 1 if it changed. */
int ui_spec_update(ui_spec *sp, const ui_state *s, const rs_model *m);
void ui_spec_free(ui_spec *sp);

/* Every screen's draw function (ui_screens in state.h has the rest of each screen). */
typedef void (*scr_draw_fn)(const ui_state *s, const ui_spec *sp);
void scr_layers(const ui_state *s, const ui_spec *sp);
void scr_spectrum(const ui_state *s, const ui_spec *sp);
void scr_accuracy(const ui_state *s, const ui_spec *sp);
void scr_tradeoffs(const ui_state *s, const ui_spec *sp);
void scr_search(const ui_state *s, const ui_spec *sp);
void scr_example(const ui_state *s, const ui_spec *sp);
void scr_graph(const ui_state *s, const ui_spec *sp);
void scr_help(const ui_state *s);
void scr_browser(const ui_state *s);
void scr_compare(const ui_state *s);
void scr_too_small(const ui_state *s);

/* Draw a spectrum bar chart of sp in the box (y, x, h, w) with the rank marker. */
void scr_spectrum_bars(const ui_state *s, const ui_spec *sp, int y, int x, int h, int w, int rank);

#endif
