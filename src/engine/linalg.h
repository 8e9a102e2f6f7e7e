/* linalg.h — small dense linear algebra for the engine (internal, not part of the public API).
 *
 * Contract: matrices are row-major arrays of doubles owned by the caller; nothing here knows about
 * layers or models, so every decomposition, rank estimator and data-aware fit can use it without
 * depending on each other. Functions return 0, or -1 with a message in e (NULL allowed); outputs
 * are left unspecified on failure. GSL must be initialised (rs_gsl_init) by the caller. */
#ifndef RANKSCOPE_LINALG_H
#define RANKSCOPE_LINALG_H

#include <stddef.h>

#include "rankscope/common.h"

double la_norm2(const double *x, size_t n); /* Σ x² */

/* Thin SVD A = U diag(s) Vᵀ of a rows × cols matrix, k = min(rows, cols): U is rows × k, V is
 * cols × k (either may be NULL), s descending. Golub–Reinsch: accurate small singular values. */
int la_svd(const double *A, int rows, int cols, double *U, double *s, double *V, rs_err *e);
/* The same for truncation: from k >= 24 through the eigendecomposition of the smaller Gram matrix
 * (faster, small singular values accurate only to ~ε·s₀; vectors of s <= 1e-12 s₀ set to 0). */
int la_svd_truncate(const double *A, int rows, int cols, double *U, double *s, double *V, rs_err *e);
/* Singular values only (k = min(rows, cols), descending) from the smaller Gram matrix's eigenvalues:
 * much faster than la_svd, accurate to ~√(kε)·s₀ absolute (so not for tiny relative values). */
int la_singular_values(const double *A, int rows, int cols, double *s, rs_err *e);
/* The r leading left singular vectors of A (rows × cols) as columns of U (rows × r, r <= rows),
 * from the eigenvectors of A Aᵀ, so a complete orthonormal basis even when r > cols. */
int la_leading_left(const double *A, int rows, int cols, int r, double *U, rs_err *e);

/* Eigen-decomposition of a symmetric n × n matrix S (only read): S = Q diag(lambda) Qᵀ with
 * lambda descending and the eigenvectors as the columns of Q (n × n, row-major). */
int la_sym_eig(const double *S, int n, double *lambda, double *Q, rs_err *e);

#endif
