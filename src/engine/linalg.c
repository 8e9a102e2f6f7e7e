/* linalg.c — small dense linear algebra on row-major doubles: GSL for SVD and symmetric eigen,
 * OpenBLAS for products. No knowledge of layers or models. */
#include "linalg.h"

#include <gsl/gsl_cblas.h> /* declarations only; OpenBLAS provides the symbols (linked first) */
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_sort_vector.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double la_norm2(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; ++i)
        s += x[i] * x[i];
    return s;
}

int la_svd(const double *A, int rows, int cols, double *U, double *s, double *V, rs_err *e)
{
    /* GSL's Golub–Reinsch needs rows >= cols: decompose Aᵀ when A is wide and swap U, V */
    int tall = rows >= cols;
    int M = tall ? rows : cols, N = tall ? cols : rows;
    if (M < 1 || N < 1)
        return rs_fail(e, "svd of an empty %dx%d matrix", rows, cols);
    gsl_matrix *a = gsl_matrix_alloc((size_t)M, (size_t)N);
    gsl_matrix *v = gsl_matrix_alloc((size_t)N, (size_t)N);
    gsl_vector *sv = gsl_vector_alloc((size_t)N), *work = gsl_vector_alloc((size_t)N);
    int rc = 0;
    if (!a || !v || !sv || !work) {
        rc = rs_fail(e, "out of memory for a %dx%d svd", rows, cols);
        goto done;
    }
    for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j) {
            if (tall)
                gsl_matrix_set(a, (size_t)i, (size_t)j, A[(size_t)i * cols + j]);
            else
                gsl_matrix_set(a, (size_t)j, (size_t)i, A[(size_t)i * cols + j]);
        }
    /* the modified Golub–Reinsch (QR first) is faster when A is clearly taller than wide */
    int st = 0;
    if (N > 1 && M >= 2 * N) {
        gsl_matrix *x = gsl_matrix_alloc((size_t)N, (size_t)N);
        st = x ? gsl_linalg_SV_decomp_mod(a, x, v, sv, work) : GSL_ENOMEM;
        gsl_matrix_free(x);
    } else if (N > 1) {
        st = gsl_linalg_SV_decomp(a, v, sv, work);
    }
    if (N == 1) { /* GSL handles N = 1 too, but a column needs no iteration */
        double nrm = 0;
        for (int i = 0; i < M; ++i)
            nrm += gsl_matrix_get(a, (size_t)i, 0) * gsl_matrix_get(a, (size_t)i, 0);
        nrm = sqrt(nrm);
        gsl_vector_set(sv, 0, nrm);
        gsl_matrix_set(v, 0, 0, 1.0);
        for (int i = 0; i < M; ++i) {
            double x = gsl_matrix_get(a, (size_t)i, 0);
            gsl_matrix_set(a, (size_t)i, 0, nrm > 0 ? x / nrm : (i == 0 ? 1.0 : 0.0));
        }
    }
    if (st) {
        rc = rs_fail(e, "svd of a %dx%d matrix failed: %s", rows, cols, gsl_strerror(st));
        goto done;
    }
    for (int k = 0; k < N; ++k) {
        double x = gsl_vector_get(sv, (size_t)k);
        if (!isfinite(x)) {
            rc = rs_fail(e, "svd of a %dx%d matrix: non-finite singular value", rows, cols);
            goto done;
        }
        s[k] = x;
    }
    /* tall: A = a·diag(s)·vᵀ; wide: Aᵀ = a·diag(s)·vᵀ so A = v·diag(s)·aᵀ */
    gsl_matrix *left = tall ? a : v, *right = tall ? v : a;
    if (U)
        for (int i = 0; i < rows; ++i)
            for (int k = 0; k < N; ++k)
                U[(size_t)i * N + k] = gsl_matrix_get(left, (size_t)i, (size_t)k);
    if (V)
        for (int j = 0; j < cols; ++j)
            for (int k = 0; k < N; ++k)
                V[(size_t)j * N + k] = gsl_matrix_get(right, (size_t)j, (size_t)k);
done:
    gsl_matrix_free(a);
    gsl_matrix_free(v);
    gsl_vector_free(sv);
    gsl_vector_free(work);
    return rc;
}

int la_leading_left(const double *A, int rows, int cols, int r, double *U, rs_err *e)
{
    if (r < 1 || r > rows)
        return rs_fail(e, "leading vectors: %d of %d rows", r, rows);
    gsl_matrix *G = gsl_matrix_alloc((size_t)rows, (size_t)rows);
    gsl_matrix *evec = gsl_matrix_alloc((size_t)rows, (size_t)rows);
    gsl_vector *eval = gsl_vector_alloc((size_t)rows);
    gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc((size_t)rows);
    int rc = 0;
    if (!G || !evec || !eval || !ws) {
        rc = rs_fail(e, "out of memory for a %dx%d eigenproblem", rows, rows);
        goto done;
    }
    /* G = A Aᵀ (rows × rows); GSL's matrix is row-major with tda = rows */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, rows, cols, 1.0, A, cols, A, cols, 0.0,
                G->data, (int)G->tda);
    int st = gsl_eigen_symmv(G, eval, evec, ws);
    if (!st)
        st = gsl_eigen_symmv_sort(eval, evec, GSL_EIGEN_SORT_VAL_DESC);
    if (st) {
        rc = rs_fail(e, "eigendecomposition of a %dx%d Gram matrix failed: %s", rows, rows,
                     gsl_strerror(st));
        goto done;
    }
    for (int i = 0; i < rows; ++i)
        for (int k = 0; k < r; ++k) {
            double x = gsl_matrix_get(evec, (size_t)i, (size_t)k);
            if (!isfinite(x)) {
                rc = rs_fail(e, "eigendecomposition produced a non-finite vector");
                goto done;
            }
            U[(size_t)i * r + k] = x;
        }
done:
    gsl_matrix_free(G);
    gsl_matrix_free(evec);
    gsl_vector_free(eval);
    if (ws)
        gsl_eigen_symmv_free(ws);
    return rc;
}

/* The same thin SVD through the eigendecomposition of the smaller Gram matrix (one OpenBLAS
 * product + a symmetric eigenproblem): several times faster than Golub–Reinsch for the larger
 * dense layers (fc1 is 120 × 400). Singular values come out as √λ (absolute accuracy
 * ~ε·σ₁, ample for truncation); singular vectors of the other side are A v / σ, and are set to
 * 0 for σ ≤ 1e-12 σ₁, whose rank-one term is numerically zero anyway. */
static int la_svd_gram(const double *A, int rows, int cols, double *U, double *s, double *V, rs_err *e)
{
    int wide = rows <= cols, k = wide ? rows : cols, big = wide ? cols : rows;
    double *G = malloc((size_t)k * k * sizeof *G), *Q = malloc((size_t)k * k * sizeof *Q);
    int rc = 0;
    if (!G || !Q) {
        free(G), free(Q);
        return rs_fail(e, "out of memory for a %dx%d svd", rows, cols);
    }
    /* wide: G = A Aᵀ, eigenvectors are U; tall: G = Aᵀ A, eigenvectors are V */
    cblas_dgemm(CblasRowMajor, wide ? CblasNoTrans : CblasTrans, wide ? CblasTrans : CblasNoTrans, k, k, big,
                1.0, A, cols, A, cols, 0.0, G, k);
    gsl_matrix_view gv = gsl_matrix_view_array(G, (size_t)k, (size_t)k);
    gsl_matrix_view qv = gsl_matrix_view_array(Q, (size_t)k, (size_t)k);
    gsl_vector *ev = gsl_vector_alloc((size_t)k);
    gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc((size_t)k);
    int st = ev && ws ? gsl_eigen_symmv(&gv.matrix, ev, &qv.matrix, ws) : GSL_ENOMEM;
    if (!st)
        st = gsl_eigen_symmv_sort(ev, &qv.matrix, GSL_EIGEN_SORT_VAL_DESC);
    if (st)
        rc = rs_fail(e, "eigendecomposition for a %dx%d svd failed: %s", rows, cols, gsl_strerror(st));
    for (int j = 0; rc == 0 && j < k; ++j) {
        double l = gsl_vector_get(ev, (size_t)j);
        s[j] = l > 0 ? sqrt(l) : 0.0;
        if (!isfinite(s[j]))
            rc = rs_fail(e, "svd of a %dx%d matrix: non-finite singular value", rows, cols);
    }
    double *near = wide ? U : V, *far = wide ? V : U;
    if (rc == 0 && near)
        memcpy(near, Q, (size_t)k * k * sizeof *Q);
    if (rc == 0 && far) {
        /* far = (wide ? Aᵀ : A) · Q · diag(1/σ), big × k */
        cblas_dgemm(CblasRowMajor, wide ? CblasTrans : CblasNoTrans, CblasNoTrans, big, k, k, 1.0, A, cols, Q, k,
                    0.0, far, k);
        for (int j = 0; j < k; ++j) {
            double inv = s[j] > 1e-12 * s[0] ? 1.0 / s[j] : 0.0;
            for (int i = 0; i < big; ++i)
                far[(size_t)i * k + j] *= inv;
        }
    }
    gsl_vector_free(ev);
    if (ws)
        gsl_eigen_symmv_free(ws);
    free(G), free(Q);
    return rc;
}

/* Values only, for rank estimators: GSL's Golub–Reinsch always builds U and V, and on a wide
 * unfolding such as 256 × 2304 that accumulation is nearly all the time, so use the eigenvalues of
 * the smaller Gram matrix (one OpenBLAS rank-k update + a values-only symmetric eigenproblem).
 * Squaring loses the small end: each σ is accurate to ~√(kε)·σ₁ absolute, far below any noise level
 * EVBMF or an energy threshold can resolve. */
int la_singular_values(const double *A, int rows, int cols, double *s, rs_err *e)
{
    int wide = rows <= cols, k = wide ? rows : cols, big = wide ? cols : rows;
    if (k < 1)
        return rs_fail(e, "singular values of an empty %dx%d matrix", rows, cols);
    double *G = malloc((size_t)k * k * sizeof *G);
    gsl_vector *ev = gsl_vector_alloc((size_t)k);
    gsl_eigen_symm_workspace *ws = gsl_eigen_symm_alloc((size_t)k);
    int rc = 0;
    if (!G || !ev || !ws) {
        rc = rs_fail(e, "out of memory for the singular values of a %dx%d matrix", rows, cols);
        goto done;
    }
    /* gsl_eigen_symm reads the lower triangle, which is all dsyrk writes */
    cblas_dsyrk(CblasRowMajor, CblasLower, wide ? CblasNoTrans : CblasTrans, k, big, 1.0, A, cols, 0.0, G, k);
    gsl_matrix_view gv = gsl_matrix_view_array(G, (size_t)k, (size_t)k);
    int st = gsl_eigen_symm(&gv.matrix, ev, ws);
    if (st) {
        rc = rs_fail(e, "eigenvalues for the singular values of a %dx%d matrix failed: %s", rows, cols,
                     gsl_strerror(st));
        goto done;
    }
    gsl_sort_vector(ev);
    for (int j = 0; j < k; ++j) {
        double l = gsl_vector_get(ev, (size_t)(k - 1 - j));
        s[j] = l > 0 ? sqrt(l) : 0.0; /* rounding can leave a zero eigenvalue slightly negative */
        if (!isfinite(s[j])) {
            rc = rs_fail(e, "singular values of a %dx%d matrix: non-finite value", rows, cols);
            goto done;
        }
    }
done:
    free(G);
    gsl_vector_free(ev);
    if (ws)
        gsl_eigen_symm_free(ws);
    return rc;
}

int la_svd_truncate(const double *A, int rows, int cols, double *U, double *s, double *V, rs_err *e)
{
    int k = rows < cols ? rows : cols;
    return k >= 24 ? la_svd_gram(A, rows, cols, U, s, V, e) : la_svd(A, rows, cols, U, s, V, e);
}

int la_sym_eig(const double *S, int n, double *lambda, double *Q, rs_err *e)
{
    if (n < 1)
        return rs_fail(e, "eigendecomposition of an empty matrix");
    gsl_matrix *a = gsl_matrix_alloc((size_t)n, (size_t)n), *q = gsl_matrix_alloc((size_t)n, (size_t)n);
    gsl_vector *ev = gsl_vector_alloc((size_t)n);
    gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc((size_t)n);
    int rc = 0;
    if (!a || !q || !ev || !ws) {
        rc = rs_fail(e, "out of memory for a %dx%d eigenproblem", n, n);
        goto done;
    }
    memcpy(a->data, S, (size_t)n * n * sizeof *S); /* tda == n for a fresh matrix */
    int st = gsl_eigen_symmv(a, ev, q, ws);
    if (!st)
        st = gsl_eigen_symmv_sort(ev, q, GSL_EIGEN_SORT_VAL_DESC);
    if (st) {
        rc = rs_fail(e, "eigendecomposition of a %dx%d matrix failed: %s", n, n, gsl_strerror(st));
        goto done;
    }
    for (int i = 0; i < n && rc == 0; ++i) {
        lambda[i] = gsl_vector_get(ev, (size_t)i);
        if (!isfinite(lambda[i]))
            rc = rs_fail(e, "eigendecomposition of a %dx%d matrix: non-finite eigenvalue", n, n);
    }
    if (rc == 0)
        memcpy(Q, q->data, (size_t)n * n * sizeof *Q);
done:
    gsl_matrix_free(a);
    gsl_matrix_free(q);
    gsl_vector_free(ev);
    if (ws)
        gsl_eigen_symmv_free(ws);
    return rc;
}
