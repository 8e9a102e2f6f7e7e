/* plan.h — a rank plan: which layers to factorize, how, and at what rank.
 *
 * Contract:
 *  - A plan is a list of (layer name, method, rank[, rank2]) entries, at most one per layer, kept
 *    in insertion order. Layer names refer to nodes of the ORIGINAL (unfactorized) model.
 *  - Text form (plan_parse_text / plan_load / plan_save), one entry per line:
 *        # comment (also after an entry)
 *        conv2 spatial-svd 12
 *        conv2 tucker2 12,8          (rank = R_out, rank2 = R_in)
 *        fc1 svd 32
 *        fc3 none                    (explicitly unfactorized)
 *    Parse errors name the source, line and value: `plan.txt:3: bad rank "x1"`. A leading UTF-8
 *    byte order mark is skipped; CRLF lines are fine; a control byte is an error. A layer given
 *    twice in one text is refused naming both lines (`p.plan:4: layer fc1 is given twice: line 1
 *    and line 4`); a later source (--ranks after --plan) replaces an earlier one's entry.
 *  - Spec form (plan_parse_spec), as given on the command line:
 *        conv2=cp:16,fc1=svd:32,conv1=tucker2:6:3,conv3=tucker2:6,3
 *    A comma followed by digits only continues the ranks (tucker2's "R_out,R_in"). An empty item
 *    (",", "a=svd:3,") and a layer given twice are refused naming the items.
 *  - plan_apply factorizes every entry in order on the given model (edited in place); it first
 *    validates the whole plan so a bad entry changes nothing: `plan: layer "fc9" not found`,
 *    `fc1: rank 500 out of range 1..120`, `fc1: cp needs a Conv layer`, two spellings of one
 *    layer, a weight or bias holding NaN/Inf (`fc1: cannot factorize: initializer ...`); a
 *    factorization that comes out non-finite (a diverged CP-ALS) is an error too.
 */
#ifndef RANKSCOPE_PLAN_H
#define RANKSCOPE_PLAN_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/common.h"
#include "rankscope/decomp.h"
#include "rankscope/model.h"

typedef struct plan_entry {
    char *layer;          /* owned */
    decomp_method method; /* DECOMP_NONE = keep the layer */
    int rank, rank2;      /* rank2 only for tucker2 (0 = default min(rank, C_in)) */
} plan_entry;

typedef struct rs_plan {
    int n, cap;
    plan_entry *entries;
} rs_plan;

rs_plan *plan_alloc(void);
void plan_free(rs_plan *p); /* accepts NULL */
rs_plan *plan_clone(const rs_plan *p);
void plan_clear(rs_plan *p);

/* Add or replace the entry for layer. */
int plan_set(rs_plan *p, const char *layer, decomp_method method, int rank, int rank2, rs_err *e);
int plan_remove(rs_plan *p, const char *layer); /* 1 if removed, 0 if absent */
const plan_entry *plan_find(const rs_plan *p, const char *layer); /* NULL if absent */

/* One entry from its words as a plan file line gives them ("fc1", "svd", "32" / "tucker2", "12,4"),
 * with a plan file's checks; messages start with ctx (e.g. "recipe.txt:7"). */
int plan_set_words(rs_plan *p, const char *ctx, const char *layer, const char *method, const char *ranks,
                   rs_err *e);
/* Parse into p (entries are added / replaced). label names the source in messages. */
int plan_parse_text(rs_plan *p, const char *text, const char *label, rs_err *e);
int plan_parse_spec(rs_plan *p, const char *spec, rs_err *e);
rs_plan *plan_load(const char *path, rs_err *e);

/* Text form; *out malloc'ed (free()). */
int plan_format(const rs_plan *p, char **out, rs_err *e);
/* Atomic write (temporary file in the same directory, fsync, rename). */
int plan_save(const rs_plan *p, const char *path, rs_err *e);

/* Check names exist and are factorizable by their method, and ranks are in range. */
int plan_validate(const rs_model *m, const rs_plan *p, rs_err *e);

/* Per-layer outcome of plan_apply (arrays of p->n, may be NULL). */
typedef struct plan_layer_report {
    double weight_error;  /* ‖K − K̂‖/‖K‖; 0 for method none */
    int degenerate;       /* CP flag */
    double seconds;
} plan_layer_report;

/* Validate, then factorize every entry in order (m edited in place, shapes re-inferred).
 * opts may be NULL. report may be NULL or an array of p->n. Cancelling returns RS_CANCELLED with
 * m partially factorized: callers apply plans to a copy (model_clone). */
int plan_apply(rs_model *m, const rs_plan *p, const decomp_opts *opts, plan_layer_report *report,
               rs_err *e);

/* Whole-network cost of a plan (the counting rule of model.h; bytes = 4 · params for fp32). */
typedef struct plan_cost {
    int64_t params_before, params_after;
    int64_t macs_before, macs_after;
    int64_t bytes_before, bytes_after;
} plan_cost;

int plan_cost_of(const rs_model *m, const rs_plan *p, plan_cost *out, rs_err *e);

#pragma GCC visibility pop
#endif
