/* live.h — the explorer's background worker: re-factorizes layers and re-evaluates accuracy while
 * the UI keeps running (pure: pthreads + engine, no curses). The evaluation itself is the
 * engine's incremental evaluator (pipeline.h); this module owns the thread, the request queue and
 * what is published to the UI state.
 *
 * Contract:
 *  - live_start borrows the original model and the data set (both must outlive the worker and
 *    stay unmodified); it evaluates the original network first (published as `orig`).
 *  - live_request hands over the current choices tagged with s->gen; a newer request cancels the
 *    running one (through the engine's progress callbacks) and results always carry the gen they
 *    were computed for, so a stale result is never shown as current.
 *  - Suffix caching (pipe_eval): a change of layer k re-runs only the network from k on when the
 *    graph can be cut there; otherwise the whole net is evaluated.
 *  - live_request_sweep runs a rank sweep of the selected layer (the others as currently chosen)
 *    at a lower priority than live requests; each point lands in s->sweep and in the history.
 *  - live_poll copies whatever was published since the last poll into the state (UI thread).
 */
#ifndef RANKSCOPE_UI_LIVE_H
#define RANKSCOPE_UI_LIVE_H

#include "rankscope/cifar10.h"
#include "rankscope/model.h"
#include "state.h"

typedef struct live live;

live *live_start(const rs_model *m, const cifar10_set *data, const ui_state *s, rs_err *e);
void live_stop(live *lv); /* cancels, joins, frees; accepts NULL */

void live_request(live *lv, const ui_state *s);
void live_request_sweep(live *lv, const ui_state *s);
/* 1 if anything new was copied into s. */
int live_poll(live *lv, ui_state *s);
/* 1 while a live evaluation is queued or running. */
int live_busy(live *lv);
/* Whether suffix caching is in use (0: whole-net evaluation). */
int live_cached(const live *lv);

#endif
