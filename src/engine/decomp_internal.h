/* decomp_internal.h — the per-method builders, called by decomp.c only (not part of the public
 * API). Layering, one way: linalg.h and geom.h at the bottom, the builders (decomp_svd.c,
 * decomp_cp.c, decomp_tucker.c) above them, decomp.c / decomp_view.c on top; a builder never
 * calls decomp.c or another builder. */
#ifndef RANKSCOPE_DECOMP_INTERNAL_H
#define RANKSCOPE_DECOMP_INTERNAL_H

#include "geom.h"
#include "linalg.h"
#include "rankscope/decomp.h"

/* Per-method workers (decomp_svd.c, decomp_cp.c, decomp_tucker.c). K is the canonical weight.
 * They fill out->f[] weights / shapes and out->weight_error (and iteration info). */
int build_svd(const layer_geom *g, const double *K, int rank, decomp_result *out, rs_err *e);
int build_slice_svd(const layer_geom *g, const double *K, int rank, decomp_result *out, rs_err *e);
int build_spatial_svd(const layer_geom *g, const double *K, int rank, decomp_result *out, rs_err *e);
int build_cp(const layer_geom *g, const double *K, int rank, const decomp_opts *o,
             decomp_result *out, rs_err *e);
int build_tucker2(const layer_geom *g, const double *K, int r_out, int r_in, const decomp_opts *o,
                  decomp_result *out, rs_err *e);

#endif
