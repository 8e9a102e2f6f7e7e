/* state_internal.h — what the explorer's pure-state files (state.c, keys.c, layout.c) share and
 * nothing else calls. Same rules as state.h: no curses, no I/O, no blocking. */
#ifndef RANKSCOPE_UI_STATE_INTERNAL_H
#define RANKSCOPE_UI_STATE_INTERNAL_H

#include "state.h"

/* Set l's choice (clamped to its ranges); the flags of a configuration change, recorded for undo. */
unsigned ui_set_choice(ui_state *s, ui_layer *l, decomp_method method, int rank, int rank2);
/* Record the current configuration as the newest undo step. */
void ui_undo_record(ui_state *s);
/* Step through the undo history (-1 undo, +1 redo). */
unsigned ui_undo_step(ui_state *s, int dir);
/* Every layer back to the original (one undo step). */
unsigned ui_reset_all(ui_state *s);
/* Select layer row (clamped), keeping it visible; on Trade-offs a new row starts its sweep. */
unsigned ui_select_row(ui_state *s, int row);

#endif
