/* searchrun.h — the Search screen's worker: runs search_run (search.h) on its own thread and
 * hands trials, progress and the result to the UI state (pure: pthreads + engine, no curses).
 *
 * Contract: the model and set are borrowed and must outlive the runner. ui_search_stop cancels
 * (through the search's callbacks), joins and frees. Trials are copied into s->trials as they
 * arrive (the most recent UI_MAX_TRIALS kept); the result's plan lands in each layer's
 * `searched` choice, for `a` (apply) to copy into the sliders.
 */
#ifndef RANKSCOPE_UI_SEARCHRUN_H
#define RANKSCOPE_UI_SEARCHRUN_H

#include "rankscope/cifar10.h"
#include "rankscope/model.h"
#include "state.h"

typedef struct ui_search ui_search;

/* Starts a search with s->search_strategy / objective / tol on set. */
ui_search *ui_search_start(const rs_model *m, const cifar10_set *set, const ui_state *s, rs_err *e);
void ui_search_cancel(ui_search *r); /* asks it to stop; poll until it reports not running */
void ui_search_stop(ui_search *r);   /* cancels, joins, frees; accepts NULL */
/* Copies news into s; returns 1 if anything changed. */
int ui_search_poll(ui_search *r, ui_state *s);

#endif
