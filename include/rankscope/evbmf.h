/* evbmf.h — rank estimation by empirical variational Bayesian matrix factorization.
 *
 * Nakajima, Sugiyama, Babacan, Tomioka, "Global analytic solution of fully-observed variational
 * Bayesian matrix factorization", JMLR 14 (2013). With Y of shape L × M (L ≤ M; a wider-than-tall
 * input is transposed), α = L/M and singular values γ_h:
 *  - the noise variance σ² minimises the free energy (a function of σ² alone once the priors are
 *    eliminated), found with GSL's Brent minimiser on the paper's bounds;
 *  - component h is kept iff γ_h > γ̲ = σ √(M (1 + τ̲)(1 + α/τ̲)), τ̲ the zero of
 *    Φ(τ) + Φ(τ/α), Φ(z) = log(z+1)/z − ½, solved exactly (= 2.5129 at α = 1; 2.5129 √α is only
 *    its upper bound, used for the search interval);
 *  - its estimate is the shrunk value γ̂_h = (γ_h/2)(1 − (L+M)σ²/γ_h² + √((1 − (L+M)σ²/γ_h²)² −
 *    4LMσ⁴/γ_h⁴)).
 * Contract: results are owned by the evbmf_result (free with evbmf_result_free). Never prints.
 */
#ifndef RANKSCOPE_EVBMF_H
#define RANKSCOPE_EVBMF_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include "rankscope/common.h"
#include "rankscope/decomp.h"
#include "rankscope/model.h"

typedef struct evbmf_result {
    int L, M;          /* oriented shape, L <= M */
    double sigma2;     /* estimated noise variance */
    double sigma2_lower, sigma2_upper; /* the search interval */
    double threshold;  /* γ̲: singular values strictly above it are kept */
    int rank;          /* number kept */
    double *sv;        /* L singular values of Y, descending (owned) */
    double *shrunk;    /* L values: γ̂_h for h < rank, 0 after (owned) */
} evbmf_result;

/* Y is rows × cols row-major. */
int evbmf_estimate(const double *Y, int rows, int cols, evbmf_result *out, rs_err *e);
/* From the L singular values of an L × M matrix (L <= M), descending. */
int evbmf_from_sv(const double *sv, int L, int M, evbmf_result *out, rs_err *e);
void evbmf_result_free(evbmf_result *r); /* frees the contents; accepts NULL / zeroed */

/* EVBMF rank of a layer for a method, as the blog does it for conv layers: svd: of W;
 * cp: max over the mode-0 and mode-1 unfoldings; tucker2: rank = mode-0's, rank2 = mode-1's;
 * spatial-svd: of the spatial reshaping; slice-svd: max over the slices. Each is rounded up to
 * a multiple of `multiple` (<= 1: no rounding; the blog uses 8) after raising a rank of 0 (pure
 * noise) to 1, then clamped to
 * 1..decomp_max_rank. rank2 may be NULL. */
int evbmf_layer_rank(const rs_model *m, int node, decomp_method method, int multiple, int *rank,
                     int *rank2, rs_err *e);

#pragma GCC visibility pop
#endif
