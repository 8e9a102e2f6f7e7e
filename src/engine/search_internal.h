/* search_internal.h — the search context's tables, shared by search_ctx.c (the context, its
 * tables and baseline), search.c (strategies, knapsack) and search_latency.c (the measured-latency
 * objective). Engine-internal.
 */
#ifndef RANKSCOPE_SEARCH_INTERNAL_H
#define RANKSCOPE_SEARCH_INTERNAL_H

#include <stdint.h>

#include "rankscope/decomp.h"
#include "rankscope/latency.h"
#include "rankscope/search.h"

#define NAME_LEN 128

typedef struct cand {
    decomp_method method;
    int rank, rank2;
    int64_t params, macs; /* the layer's cost after factorizing */
    int in_grid;          /* probed by the global strategy */
    double acc_sub;       /* single-layer accuracy on the sensitivity subset, < 0 unknown */
    double acc_full;      /* same on the whole search set, < 0 unknown */
    double time[2];       /* measured seconds per image: [0] batch 1, [1] throughput */
    unsigned char lat_grid[2]; /* probed under the latency objective (per figure) */
    unsigned char lat_ok[2];   /* no larger rank of its method is as fast */
} cand;

typedef struct layer_tab {
    char name[NAME_LEN];
    int node;
    int64_t params0, macs0;
    double time0[2]; /* the layer as it is (latency objective; valid when timed) */
    int timed;
    int n;
    cand *c; /* grouped by method, ascending rank within a method */
} layer_tab;

struct search_ctx {
    rs_model *m;
    const cifar10_set *set;
    int nthreads;
    double base_acc;
    double base_acc_sub;
    int sub_n; /* images of the subset whose baseline is base_acc_sub (0 = not measured) */
    int64_t P0, M0;
    int n_layers;
    layer_tab *L;
    /* per-run state */
    const search_options *o;
    search_result *res;
    double t0;
    rs_plan *best;
    double best_cost;
    double best_acc;
    double lambda; /* Lagrange multiplier of the MAC floor (0 = none), see knapsack_floor */
    lat_table *lat_own; /* opened when the options give none */
};

/* 1 if name is in the comma-separated list (NULL / empty = every layer). */
int search_layer_selected(const char *list, const char *name);
/* Tucker-2's R_in for R_out = r: round(r · C_in / C_out), within 1..C_in. */
int search_tucker_rank2(const rs_model *m, int node, int r);

/* ---- the latency objective (search_latency.c) ----------------------------------------------- */
/* Time every candidate of the selected layers once (the cache first), mark efficient ranks and
 * round the grid up to them; no-op for other objectives. */
int search_lat_ensure(search_ctx *c, rs_err *e);
/* Probed by the strategy: the grid, or under the latency objective the grid rounded up. */
int search_lat_grid(const search_ctx *c, const cand *cd);
/* Offered under the latency objective: efficient and measured >= 2 % faster than the layer. */
int search_lat_allowed(const search_ctx *c, const layer_tab *t, const cand *cd);
/* Measured time of layer t at candidate j (-1 = as it is); t = NULL: all layers as they are. */
double search_lat_cost(const search_ctx *c, const layer_tab *t, int j);
/* Summed measured time of the weighted layers with plan p. */
int search_lat_plan_time(search_ctx *c, const rs_plan *p, double *seconds, rs_err *e);

#endif
