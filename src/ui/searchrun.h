/* searchrun.h — the Search screen's worker: runs search_run (search.h) on its own thread and
 * hands trials, progress and the result to the UI state (pure: pthreads + engine, no curses).
 *
 * Contract: the model and set are borrowed and must outlive the runner. ui_search_stop cancels
 * (through the search's callbacks), joins and frees. Trials are copied into s->search.trials as they
 * arrive (the most recent UI_MAX_TRIALS kept); the result's plan lands in each layer's
 * `searched` choice, for `a` (apply) to copy into the sliders.
 */
#ifndef RANKSCOPE_UI_SEARCHRUN_H
#define RANKSCOPE_UI_SEARCHRUN_H

#include <pthread.h>

#include "rankscope/cifar10.h"
#include "rankscope/model.h"
#include "state.h"

/* One background thread with a cancel flag and its outcome: the lifecycle every runner here
 * shares. The runner's thread function polls cancel (ui_job_cancelled) from the engine's callbacks
 * and ends with ui_job_finish, which publishes done / rc / err under mu. Results of its own that
 * it writes before that call are read by the UI thread only once it has seen done under mu (the
 * mutex orders them). */
typedef struct ui_job {
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    int cancel, done, rc; /* under mu */
    int dropped;          /* under mu: ui_job_drop; the runner frees itself when it ends */
    char err[RS_ERR_LEN];
} ui_job;

int ui_job_start(ui_job *j, void *(*fn)(void *), void *arg, const char *what, rs_err *e);
void ui_job_cancel(ui_job *j);
int ui_job_cancelled(ui_job *j);
int ui_job_done(ui_job *j); /* the thread has finished (it can be joined without waiting) */
void ui_job_stop(ui_job *j); /* cancels and joins; a job never started is left alone */
/* The runner's last call: rc, and err as its message (NULL keeps the one already in j->err,
 * written by this thread; RS_CANCELLED without one says "cancelled"), then done. Returns 1 when
 * the job was dropped: the runner then frees what the job owns (nobody else will); otherwise it
 * must not touch the job again (its owner may be freeing it). */
int ui_job_finish(ui_job *j, int rc, const char *err);
/* Gives a job up without waiting: cancels it and detaches its thread. Returns 1 when it had
 * already finished (the caller frees it now), 0 when its runner will (ui_job_finish says so).
 * Only for runners that own everything they touch (no borrowed model). */
int ui_job_drop(ui_job *j);

typedef struct ui_search ui_search;

/* Starts a search with s->search.strategy / objective / tol on set; calib (n_calib normalised
 * images, borrowed; NULL = fit to the weights) is search_options.fit_calib. */
ui_search *ui_search_start(const rs_model *m, const cifar10_set *set, const ui_state *s, const float *calib,
                           int n_calib, rs_err *e);
void ui_search_cancel(ui_search *r); /* asks it to stop; poll until it reports not running */
void ui_search_stop(ui_search *r);   /* cancels, joins, frees; accepts NULL */
/* Copies news into s; returns 1 if anything changed. */
int ui_search_poll(ui_search *r, ui_state *s);

/* ---- One evaluation of a model on a set (the compared model B): its accuracy lands in
 * s->cmp.b_acc (b_running cleared). Model and set borrowed. */
typedef struct ui_evaljob ui_evaljob;
ui_evaljob *ui_evaljob_start(const rs_model *m, const cifar10_set *set, rs_err *e);
void ui_evaljob_stop(ui_evaljob *v); /* cancels, joins, frees; accepts NULL */
int ui_evaljob_poll(ui_evaljob *v, ui_state *s);


/* ---- The trade-off curve (screen 4): for each of ui_curve_reductions, the plan of least
 * estimated drop within params_total / reduction (search_ctx_plan_for_budget, tables measured on
 * `search_set`), evaluated on `eval_set` (the explorer's set); with ft_epochs > 0 and train/val
 * also fine-tuned (pipe_curve_run, as `rankscope search --curve --epochs`). Each point's plan
 * lands in s->curve.plans as per-layer choices. Sets borrowed. */
typedef struct ui_curve ui_curve;
ui_curve *ui_curve_start(const rs_model *m, const cifar10_set *search_set, const cifar10_set *eval_set,
                         int64_t params_total, int ft_epochs, const cifar10_set *train, const cifar10_set *val,
                         const float *calib, int n_calib, rs_err *e);
void ui_curve_stop(ui_curve *c); /* cancels, joins, frees; accepts NULL */
int ui_curve_poll(ui_curve *c, ui_state *s);

/* ---- Fine-tuning of a plan (screen 5): finetune_run for `epochs` on train (val per epoch),
 * then the result's accuracy on test. plan is copied; the sets and calib are borrowed (calib:
 * the plan's factors fitted to the layer outputs on those images first, NULL = to the weights). */
typedef struct ui_ft ui_ft;
ui_ft *ui_ft_start(const rs_model *m, const rs_plan *plan, const cifar10_set *train, const cifar10_set *val,
                   const cifar10_set *test, int epochs, const float *calib, int n_calib, rs_err *e);
void ui_ft_cancel(ui_ft *f);
void ui_ft_stop(ui_ft *f); /* cancels, joins, frees (with the trained model); accepts NULL */
int ui_ft_poll(ui_ft *f, ui_state *s);
/* The fine-tuned model once ui_ft_poll reported it (borrowed; NULL before). */
const rs_model *ui_ft_model(const ui_ft *f);

/* ---- Opening a model for the browser: onnx_load, the non-finite check and a fresh explorer state
 * (ui_state_init_progress) on a worker, so the screen answers keys meanwhile. The path is copied.
 * ui_openjob_poll copies its progress into s->browse (open_progress, open_what) and returns 1
 * when that changed or the job ended; ui_openjob_result then says how it ended: 1 still running,
 * 0 opened (*m and *ns are the caller's from then on), else -1 / RS_CANCELLED with e filled.
 * ui_openjob_cancel only asks (it returns at once); ui_openjob_done says whether the thread has
 * finished, so a cancelled job can be stopped (joined) without waiting. */
typedef struct ui_openjob ui_openjob;
ui_openjob *ui_openjob_start(const char *path, rs_err *e);
void ui_openjob_cancel(ui_openjob *o);
int ui_openjob_done(ui_openjob *o);
int ui_openjob_poll(ui_openjob *o, ui_state *s);
int ui_openjob_result(ui_openjob *o, rs_model **m, ui_state **ns, rs_err *e);
void ui_openjob_stop(ui_openjob *o); /* cancels, joins, frees what was not taken; accepts NULL */

/* ---- The EVBMF ranks of a state made with evbmf_defer, on a worker (ui_evbmf_run): the explorer
 * shows its screen at once instead of a blank terminal for the seconds a big net's SVDs take.
 * The job works on its own copy of the model; s is only read at the start. ui_evbmfjob_poll
 * installs the ranks into s (the same model's state) once and returns 1 then. ui_evbmfjob_drop
 * never waits: it cancels, and the job frees itself when the SVD under way ends. */
typedef struct ui_evbmfjob ui_evbmfjob;
ui_evbmfjob *ui_evbmfjob_start(const rs_model *m, const ui_state *s, rs_err *e);
int ui_evbmfjob_poll(ui_evbmfjob *o, ui_state *s);
void ui_evbmfjob_drop(ui_evbmfjob *o); /* accepts NULL */

/* ---- The graph view's time column: infer_profile (infer.h) of the model on the first
 * ui_time_images of set's images (by the model's MACs), on a worker; with a plan (copied), of a
 * copy of the model with the plan applied (plan_apply), on as many images: the model evaluation
 * runs. Model and set borrowed. ui_timejob_poll copies the progress into s->graph and, once done,
 * the times (ui_graph_set_times / ui_graph_set_plan_times; the error when it failed, nothing when
 * it was cancelled before it finished); returns 1 when s changed. ui_timejob_cancel only asks;
 * ui_timejob_done says whether the thread has ended, so it can be stopped without waiting. */
typedef struct ui_timejob ui_timejob;
ui_timejob *ui_timejob_start(const rs_model *m, const rs_plan *plan, const cifar10_set *set, rs_err *e);
int ui_timejob_poll(ui_timejob *o, ui_state *s);
void ui_timejob_cancel(ui_timejob *o);
int ui_timejob_done(ui_timejob *o);
void ui_timejob_stop(ui_timejob *o); /* cancels, joins, frees; accepts NULL */

/* The Search screen's trial table in `width` columns: its header, and one trial as a row. From
 * 91 columns every column (with the images evaluated); narrower, the images column goes and the
 * gaps shrink, so params, MACs and time still fit at 80 (a row is never cut). The layer is named
 * as the layer table names it (ui_fit_label: no two layers read the same), in 14 cells narrow, 12
 * to 20 wide. */
void ui_trial_header(int width, char *buf, size_t len);
void ui_trial_row(const ui_state *s, const ui_trial *t, int width, char *buf, size_t len);

#endif
