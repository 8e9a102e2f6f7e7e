/* latency.h — measured time of layers and their factorizations on rankscope's own engine,
 * cached per machine, for a search that minimises time rather than counted MACs.
 *
 * Contract:
 *  - A layer is timed alone: a one-node model with the layer's input shape (the same weights,
 *    attributes and bias), factorized by (method, rank, rank2) through plan_apply when method is
 *    not DECOMP_NONE, compiled by infer_create on ONE thread. Two figures, both seconds per
 *    image: b1 = batch-1 latency, batch = time of a batch of lat_options.batch images / batch
 *    (throughput). Each is the median of `reps` samples after two warm-up runs; a sample repeats
 *    the forward call until it lasts at least min_sample_s, so timer resolution does not matter.
 *  - Inputs are fixed pseudo-random floats; timings depend on shapes only, not on values.
 *  - Cache: one text file per machine key, DIR/latency-<16 hex digits>.tsv with DIR =
 *    $XDG_CACHE_HOME/rankscope, else $HOME/.cache/rankscope (lat_options.cache_dir overrides;
 *    "" = no cache). The key is "cpu=<model name from /proc/cpuinfo>;isa=<kernel ISA>;bin=<version>
 *    +<size>-<mtime> of the running executable>", so another CPU, ISA cap ($RANKSCOPE_ISA) or a
 *    rebuilt binary never reads stale figures; the first line of the file holds the key and a
 *    file with another key is ignored (and replaced on save). Entries are keyed by the layer's
 *    geometry (op, shapes, kernel, strides, pads, dilations, group, bias), not its name, so
 *    identical layers of different models share them. Lines that do not parse are skipped.
 *    lat_save writes atomically (fileio_write_atomic) and only when something was measured.
 *  - Rank rounding: lat_efficient reports whether a rank is worth offering for time — no larger
 *    rank of the same layer and method is measured at most as fast (within lat_options.noise);
 *    where the kernels work in SIMD-width blocks this keeps the block-filling ranks, and it keeps
 *    whatever the measurements say elsewhere (no assumption about widths).
 *  - Long work reports through the progress callback once per measured configuration; a non-zero
 *    return cancels (RS_CANCELLED). Nothing prints.
 */
#ifndef RANKSCOPE_LATENCY_H
#define RANKSCOPE_LATENCY_H

#include <stdint.h>
#include "rankscope/common.h"
#include "rankscope/decomp.h"
#include "rankscope/model.h"

#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

typedef struct lat_options {
    int reps;            /* samples per figure, 9 */
    int batch;           /* images per throughput batch, 64 */
    double min_sample_s; /* 2e-4 */
    double noise;        /* relative: "at most as fast" tolerance for lat_efficient, 0.02 */
    const char *cache_dir; /* NULL = default (above), "" = no cache */
    rs_progress_fn progress;
    void *progress_user;
} lat_options;

void lat_default_options(lat_options *o);

typedef struct lat_point {
    double b1;    /* seconds per image at batch 1 */
    double batch; /* seconds per image at lat_options.batch */
} lat_point;

typedef struct lat_table lat_table;

/* Opens (loads) the cache for this machine; the options are copied. NULL on out-of-memory. */
lat_table *lat_open(const lat_options *o, rs_err *e);
void lat_free(lat_table *t); /* accepts NULL; does not save */
const char *lat_machine_key(const lat_table *t);
const char *lat_cache_path(const lat_table *t); /* "" without a cache */
int lat_measured(const lat_table *t); /* configurations measured (not from the cache) so far */
int lat_cached(const lat_table *t);   /* configurations answered from the cache so far */

/* Time of node `node` of m (a Conv / Gemm / MatMul with constant weight) factorized by
 * (method, rank, rank2); DECOMP_NONE = the layer as it is. From the cache or measured. */
int lat_layer(lat_table *t, const rs_model *m, int node, decomp_method method, int rank, int rank2,
              lat_point *out, rs_err *e);

/* 1 if rank is efficient for time (see above) among ranks rank..max_rank of the method, by
 * batch-1 time when use_b1, else by throughput; 0 if a larger one is no slower. rank2_of maps a
 * rank to its rank2 (tucker2), NULL = 0. Measures what it needs. -1 on error. */
int lat_efficient(lat_table *t, const rs_model *m, int node, decomp_method method, int rank,
                  int max_rank, int (*rank2_of)(const rs_model *m, int node, int rank), int use_b1,
                  rs_err *e);

/* Whole model, timed the same way (not cached: models change). */
int lat_model(const lat_table *t, const rs_model *m, lat_point *out, rs_err *e);

/* Write the cache file when anything new was measured. */
int lat_save(lat_table *t, rs_err *e);

#pragma GCC visibility pop

#endif
