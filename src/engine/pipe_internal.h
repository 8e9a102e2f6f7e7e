/* pipe_internal.h — what pipeline.c and pipe_staged.c share: the time limit carried into the
 * searches (a search is the longest step that is not a fine-tuning: its per-layer scan on a big
 * net can outlast the whole limit), and evaluation on a shared thread pool. */
#ifndef RANKSCOPE_PIPE_INTERNAL_H
#define RANKSCOPE_PIPE_INTERNAL_H

#include "rankscope/pipeline.h"
#include "rankscope/pool.h"

typedef struct pipe_deadline {
    rs_progress_fn fn; /* the caller's progress, called through */
    void *user;
    double until;      /* rs_now() past which the search is cancelled; 0: no limit */
    int hit;           /* set when the limit cancelled it */
} pipe_deadline;

/* so (a copy of o->search) reports through d, which cancels at o's time limit. */
void pipe_deadline_wrap(pipe_deadline *d, search_options *so, const pipe_compress_options *o);

/* Accuracy of m on s, run on the workflow's one pool (a workflow evaluates and fine-tunes many
 * nets: one set of threads for all of them, not one per call). */
int pipe_accuracy(const rs_model *m, const cifar10_set *s, rs_pool *pool, double *acc, rs_err *e);

/* The next stage's plan of staged compression. ctx: the net with every factorized layer folded
 * back (the original's layer shapes); all: the accepted factorizations (original names);
 * rejected[0..n_rejected-1]: the plans of the stages rejected so far. The plan of least cost whose
 * estimated drop fits budget (search_ctx_plan_for_drop under so), minus the entries that would
 * not make a layer cheaper than it is under all, and never covering a rejected plan r: the net it
 * gives is never at least as aggressive (search_as_aggressive) on every layer of r, unless the
 * accepted state already is (a stage accepted since made r moot). Where the cheapest plan covers
 * one, the search runs again with r's entry on one of its layers ruled out (see
 * search_options.milder_than), the layer that leaves the cheapest plan; so after fc1 svd 28 is
 * rejected the next plan holds fc1 at a rank above 28 or leaves it as it is. *p NULL when nothing
 * is left. */
int pipe_next_plan(search_ctx *ctx, const rs_model *orig, const search_options *so, double budget,
                   const rs_plan *all, rs_plan *const *rejected, int n_rejected, rs_plan **p, rs_err *e);

/* ---- checkpoints (pipe_ckpt.c; pipeline.h) ------------------------------------------------------
 * The state of a staged run or a replay at a stage's start (phase PIPE_CK_START) or after an epoch
 * of one of its fine-tunings (the other phases: which fine-tuning, and ft holds it). Written from
 * borrowed pointers (pipe_ckpt_save); pipe_ckpt_load's own everything (pipe_ckpt_free). */
enum { PIPE_CK_STAGED = 1, PIPE_CK_REPLAY = 2 };
enum { PIPE_CK_START = 0, PIPE_CK_STAGE = 1, PIPE_CK_EXTENSION = 2, PIPE_CK_POLISH = 3 };

struct pipe_ckpt {
    char *ident;          /* the caller's identification of the input and options */
    int mode, phase;
    int kept, tries, tried; /* staged: the loop's counters; replay: tried = the stage (0-based) */
    double budget, failed_budget, secs, elapsed;
    double base_val, floor_val, tol_points, best_val;
    int n_rounds;
    pipe_round *rounds;   /* n_rounds: the report so far, the round in progress included */
    rs_plan *all;         /* the union of the kept stages' plans */
    rs_plan *p;           /* the stage in progress (PIPE_CK_STAGE, PIPE_CK_EXTENSION); else NULL */
    rs_plan **rejected;
    int n_rejected;
    rs_recipe *recipe;    /* staged: the kept stages (NULL: none yet) */
    rs_model *cur;        /* the net the next stage starts from (the last kept one) */
    rs_model *ext;        /* PIPE_CK_EXTENSION: the rejected stage's net being fine-tuned more */
    finetune_state ft;    /* phase > PIPE_CK_START */
};

int pipe_ckpt_save(const char *path, const pipe_ckpt *c, rs_err *e);

#endif
