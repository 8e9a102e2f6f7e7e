/* screens.h — one draw function per screen (curses), plus the spectrum cache they share. */
#ifndef RANKSCOPE_UI_SCREENS_H
#define RANKSCOPE_UI_SCREENS_H

#include "rankscope/decomp.h"
#include "rankscope/model.h"
#include "spec.h"
#include "state.h"

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
