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

#endif
