/* decomp_cp.c — CP-4 decomposition of a conv kernel by alternating least squares.
 *
 * K[o,i,a,b] ≈ Σ_r λ_r A[o,r] B[i,r] C[a,r] D[b,r] (Lebedev et al. 2015). Each ALS step solves one
 * factor exactly: A_n = X_(n) (⊙_{m≠n} A_m) (∗_{m≠n} A_mᵀA_m)⁻¹ — the MTTKRP as one OpenBLAS
 * product with the Khatri–Rao matrix, the R×R solve by Cholesky (an eigen pseudo-inverse when the
 * Gram product is singular, e.g. rank above a mode size, so it never crashes or hangs).
 * Columns are normalised into λ after every update. The fit ‖X − X̂‖ is tracked per sweep from
 * Gram matrices (cheap), the final weight error is recomputed explicitly. Initialisation: leading
 * left singular vectors of each unfolding (random columns beyond the mode size), then optional
 * seeded random restarts; the best final fit wins.
 *
 * Degenerate solutions — rank-one terms much larger than X that cancel each other — fit the
 * weights but are useless for a network: a small relative change of any factor (one SGD step of
 * fine-tuning) breaks the cancellation, so training such a chain destroys the layer. Their
 * sensitivity Σ λ_r² / ‖X̂‖² (Phan et al., ECCV 2020) is far above 1 (28.8 for the shipped net's
 * conv1 at rank 14; ≈1 means non-cancelling terms). A solution above opts->max_sensitivity loses
 * to any that is within it; if no plain run is, a continuation runs ALS with a ridge (Tikhonov
 * on each factor, which bounds the term norms) decreasing from 0.1 along a ladder, each step
 * warm-started from the previous, and keeps the best-fitting step still within the bound.
 * Flagged degenerate: max λ_r / ‖X‖ > opts->degenerate_ratio, or no solution within the bound.
 */
#include <gsl/gsl_cblas.h> /* declarations only; OpenBLAS provides the symbols (linked first) */
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_internal.h"

typedef struct cp_rng {
    uint64_t s;
} cp_rng;

static double rng_uniform(cp_rng *g)
{
    uint64_t z = (g->s += 0x9E3779B97F4A7C15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_normal(cp_rng *g)
{
    double u = rng_uniform(g), v = rng_uniform(g);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Everything one ALS run needs, sized once. */
typedef struct cp_work {
    int d[4], R;
    size_t P;               /* elements of X */
    double *unf[4];         /* X_(n): d_n × P/d_n, other modes in increasing order */
    double *A[4];           /* factors d_n × R, columns unit norm after each update */
    double *lambda;         /* R */
    double *G[4];           /* Gram A_nᵀ A_n, R × R */
    double *KR;             /* (P / min d) × R Khatri–Rao workspace */
    double *M;              /* max d × R MTTKRP result */
    double *V, *Vcopy, *Vsave; /* R × R */
    double *Msave, *tmp;    /* max d × R */
    gsl_matrix *chol, *evec;
    gsl_vector *eval;
    gsl_eigen_symmv_workspace *eig;
    double xnorm2;
} cp_work;

static void cp_work_free(cp_work *w)
{
    for (int n = 0; n < 4; ++n) {
        free(w->unf[n]);
        free(w->A[n]);
        free(w->G[n]);
    }
    free(w->lambda), free(w->KR), free(w->M), free(w->V), free(w->Vcopy);
    free(w->Vsave), free(w->Msave), free(w->tmp);
    gsl_matrix_free(w->chol);
    gsl_matrix_free(w->evec);
    gsl_vector_free(w->eval);
    if (w->eig)
        gsl_eigen_symmv_free(w->eig);
}

static int cp_work_init(cp_work *w, const double *X, const int d[4], int R)
{
    memset(w, 0, sizeof *w);
    memcpy(w->d, d, sizeof w->d);
    w->R = R;
    w->P = (size_t)d[0] * d[1] * d[2] * d[3];
    int dmin = d[0], dmax = d[0];
    for (int n = 1; n < 4; ++n) {
        dmin = d[n] < dmin ? d[n] : dmin;
        dmax = d[n] > dmax ? d[n] : dmax;
    }
    int ok = 1;
    for (int n = 0; n < 4; ++n) {
        w->unf[n] = malloc(w->P * sizeof(double));
        w->A[n] = malloc((size_t)d[n] * R * sizeof(double));
        w->G[n] = malloc((size_t)R * R * sizeof(double));
        ok = ok && w->unf[n] && w->A[n] && w->G[n];
    }
    w->lambda = malloc((size_t)R * sizeof(double));
    w->KR = malloc(w->P / (size_t)dmin * R * sizeof(double));
    w->M = malloc((size_t)dmax * R * sizeof(double));
    w->V = malloc((size_t)R * R * sizeof(double));
    w->Vcopy = malloc((size_t)R * R * sizeof(double));
    w->Vsave = malloc((size_t)R * R * sizeof(double));
    w->Msave = malloc((size_t)dmax * R * sizeof(double));
    w->tmp = malloc((size_t)dmax * R * sizeof(double));
    w->chol = gsl_matrix_alloc((size_t)R, (size_t)R);
    w->evec = gsl_matrix_alloc((size_t)R, (size_t)R);
    w->eval = gsl_vector_alloc((size_t)R);
    w->eig = gsl_eigen_symmv_alloc((size_t)R);
    if (!ok || !w->lambda || !w->KR || !w->M || !w->V || !w->Vcopy || !w->Vsave || !w->Msave ||
        !w->tmp || !w->chol || !w->evec || !w->eval || !w->eig)
        return -1;
    /* unfoldings: X_(n)[i_n, col] with col running over the other indices in increasing mode order */
    size_t idx = 0;
    for (int i0 = 0; i0 < d[0]; ++i0)
        for (int i1 = 0; i1 < d[1]; ++i1)
            for (int i2 = 0; i2 < d[2]; ++i2)
                for (int i3 = 0; i3 < d[3]; ++i3, ++idx) {
                    double x = X[idx];
                    w->unf[0][(size_t)i0 * (w->P / d[0]) + ((size_t)i1 * d[2] + i2) * d[3] + i3] = x;
                    w->unf[1][(size_t)i1 * (w->P / d[1]) + ((size_t)i0 * d[2] + i2) * d[3] + i3] = x;
                    w->unf[2][(size_t)i2 * (w->P / d[2]) + ((size_t)i0 * d[1] + i1) * d[3] + i3] = x;
                    w->unf[3][(size_t)i3 * (w->P / d[3]) + ((size_t)i0 * d[1] + i1) * d[2] + i2] = x;
                }
    w->xnorm2 = la_norm2(X, w->P);
    return 0;
}

static void gram(cp_work *w, int n)
{
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, w->R, w->R, w->d[n], 1.0, w->A[n], w->R,
                w->A[n], w->R, 0.0, w->G[n], w->R);
}

static void normalise(cp_work *w, int n)
{
    int R = w->R, dn = w->d[n];
    for (int r = 0; r < R; ++r) {
        double s = 0;
        for (int i = 0; i < dn; ++i)
            s += w->A[n][(size_t)i * R + r] * w->A[n][(size_t)i * R + r];
        s = sqrt(s);
        w->lambda[r] = s;
        if (s > 0)
            for (int i = 0; i < dn; ++i)
                w->A[n][(size_t)i * R + r] /= s;
    }
}

/* Solve X V = M in place of M (rows × R), V symmetric PSD (w->V), with relative ridge. */
static int solve_right(cp_work *w, int rows, double ridge)
{
    int R = w->R;
    double tr = 0;
    for (int r = 0; r < R; ++r)
        tr += w->V[(size_t)r * R + r];
    double lam = ridge > 0 ? ridge * (tr > 0 ? tr / R : 1.0) : 0.0;
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < R; ++j)
            gsl_matrix_set(w->chol, (size_t)i, (size_t)j, w->V[(size_t)i * R + j] + (i == j ? lam : 0.0));
    int st = gsl_linalg_cholesky_decomp1(w->chol);
    if (st == 0) {
        /* check conditioning: a tiny pivot means a numerically singular V, use the pseudo-inverse */
        double dmin = INFINITY, dmax = 0;
        for (int r = 0; r < R; ++r) {
            double p = fabs(gsl_matrix_get(w->chol, (size_t)r, (size_t)r));
            dmin = p < dmin ? p : dmin;
            dmax = p > dmax ? p : dmax;
        }
        if (dmax > 0 && dmin > 1e-7 * dmax) {
            cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, rows, R, 1.0,
                        w->chol->data, (int)w->chol->tda, w->M, R);
            cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, rows, R, 1.0,
                        w->chol->data, (int)w->chol->tda, w->M, R);
            return 0;
        }
    }
    /* pseudo-inverse: V⁺ = Q Λ⁺ Qᵀ */
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < R; ++j)
            gsl_matrix_set(w->chol, (size_t)i, (size_t)j, w->V[(size_t)i * R + j] + (i == j ? lam : 0.0));
    st = gsl_eigen_symmv(w->chol, w->eval, w->evec, w->eig);
    if (st)
        return -1;
    double emax = 0;
    for (int r = 0; r < R; ++r)
        emax = fmax(emax, fabs(gsl_vector_get(w->eval, (size_t)r)));
    /* Vcopy = Q Λ⁺ Qᵀ */
    memset(w->Vcopy, 0, (size_t)R * R * sizeof(double));
    for (int k = 0; k < R; ++k) {
        double ev = gsl_vector_get(w->eval, (size_t)k);
        if (!(ev > 1e-12 * emax))
            continue;
        for (int i = 0; i < R; ++i) {
            double qi = gsl_matrix_get(w->evec, (size_t)i, (size_t)k) / ev;
            for (int j = 0; j < R; ++j)
                w->Vcopy[(size_t)i * R + j] += qi * gsl_matrix_get(w->evec, (size_t)j, (size_t)k);
        }
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, R, R, 1.0, w->M, R, w->Vcopy, R, 0.0,
                w->tmp, R);
    memcpy(w->M, w->tmp, (size_t)rows * R * sizeof(double));
    return 0;
}

/* One ALS update of mode n; on the last mode also returns ‖X − X̂‖² via *err2. */
static int update_mode(cp_work *w, int n, double ridge, double *err2)
{
    int R = w->R, others[3], k = 0;
    for (int m = 0; m < 4; ++m)
        if (m != n)
            others[k++] = m;
    int d1 = w->d[others[0]], d2 = w->d[others[1]], d3 = w->d[others[2]];
    size_t cols = (size_t)d1 * d2 * d3;
    const double *A1 = w->A[others[0]], *A2 = w->A[others[1]], *A3 = w->A[others[2]];
    /* Khatri–Rao rows in the unfolding's column order */
    for (int i1 = 0; i1 < d1; ++i1)
        for (int i2 = 0; i2 < d2; ++i2)
            for (int i3 = 0; i3 < d3; ++i3) {
                double *z = w->KR + (((size_t)i1 * d2 + i2) * d3 + i3) * R;
                for (int r = 0; r < R; ++r)
                    z[r] = A1[(size_t)i1 * R + r] * A2[(size_t)i2 * R + r] * A3[(size_t)i3 * R + r];
            }
    int dn = w->d[n];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dn, R, (int)cols, 1.0, w->unf[n], (int)cols,
                w->KR, R, 0.0, w->M, R);
    /* V = ∗ of the other Grams, λ folded in (the other factors are unit-norm; λ lives apart) */
    for (size_t i = 0; i < (size_t)R * R; ++i)
        w->V[i] = w->G[others[0]][i] * w->G[others[1]][i] * w->G[others[2]][i];
    /* the other factors are unit-norm, so the new A_n absorbs the whole scale: solve A_n V = M */
    if (err2) {
        memcpy(w->Vsave, w->V, (size_t)R * R * sizeof(double));
        memcpy(w->Msave, w->M, (size_t)dn * R * sizeof(double));
    }
    if (solve_right(w, dn, ridge))
        return -1;
    memcpy(w->A[n], w->M, (size_t)dn * R * sizeof(double));
    if (err2) {
        /* X̂ uses the new (unnormalised) A_n: ⟨X, X̂⟩ = Σ M∘A_n, ‖X̂‖² = Σ V ∗ A_nᵀA_n */
        gram(w, n);
        double inner = 0, xx = 0;
        for (size_t i = 0; i < (size_t)dn * R; ++i)
            inner += w->Msave[i] * w->A[n][i];
        for (size_t i = 0; i < (size_t)R * R; ++i)
            xx += w->Vsave[i] * w->G[n][i];
        *err2 = fmax(0.0, w->xnorm2 - 2.0 * inner + xx);
    }
    normalise(w, n);
    gram(w, n);
    for (size_t i = 0; i < (size_t)dn * R; ++i)
        if (!isfinite(w->A[n][i]))
            return -1;
    return 0;
}

/* Initial factors: leading singular vectors (svd_init) or Gaussian; all normalised. */
static int cp_init(cp_work *w, int svd_init, cp_rng *rng, rs_err *e)
{
    int R = w->R;
    for (int n = 0; n < 4; ++n) {
        int dn = w->d[n];
        for (size_t i = 0; i < (size_t)dn * R; ++i)
            w->A[n][i] = rng_normal(rng);
        if (svd_init) {
            int r = R < dn ? R : dn;
            double *U = malloc((size_t)dn * r * sizeof(double));
            if (!U)
                return rs_fail(e, "out of memory");
            if (la_leading_left(w->unf[n], dn, (int)(w->P / dn), r, U, e)) {
                free(U);
                return -1;
            }
            for (int i = 0; i < dn; ++i)
                for (int k = 0; k < r; ++k)
                    w->A[n][(size_t)i * R + k] = U[(size_t)i * r + k];
            free(U);
        }
        normalise(w, n);
        gram(w, n);
    }
    return 0;
}

/* One ALS run from the current factors; fills fit[] (max_iter entries), returns sweeps run or
 * RS_CANCELLED / -1. */
static int cp_run(cp_work *w, const decomp_opts *o, double *fit, int *converged, int run, int runs,
                  rs_err *e)
{
    double xn = sqrt(w->xnorm2), prev = -INFINITY;
    *converged = 0;
    for (int it = 0; it < o->max_iter; ++it) {
        double err2 = 0;
        for (int n = 0; n < 4; ++n)
            if (update_mode(w, n, o->ridge, n == 3 ? &err2 : NULL))
                return rs_fail(e, "cp-als: the solution diverged (non-finite factors) at sweep %d", it + 1);
        double f = xn > 0 ? 1.0 - sqrt(err2) / xn : 1.0;
        fit[it] = f;
        if (o->progress && o->progress(o->user, ((double)run + (double)(it + 1) / o->max_iter) / runs,
                                       "cp-als"))
            return RS_CANCELLED;
        if (fabs(f - prev) < o->tol || f >= 1.0 - 1e-15) {
            *converged = 1;
            return it + 1;
        }
        prev = f;
    }
    return o->max_iter;
}

/* ‖X − X̂‖² computed element by element from the current factors and λ. */
static double cp_error2(const cp_work *w, const double *X)
{
    const int *d = w->d;
    int R = w->R;
    double s = 0;
    size_t idx = 0;
    for (int i0 = 0; i0 < d[0]; ++i0)
        for (int i1 = 0; i1 < d[1]; ++i1)
            for (int i2 = 0; i2 < d[2]; ++i2)
                for (int i3 = 0; i3 < d[3]; ++i3, ++idx) {
                    double v = 0;
                    for (int r = 0; r < R; ++r)
                        v += w->lambda[r] * w->A[0][(size_t)i0 * R + r] * w->A[1][(size_t)i1 * R + r] *
                             w->A[2][(size_t)i2 * R + r] * w->A[3][(size_t)i3 * R + r];
                    double diff = X[idx] - v;
                    s += diff * diff;
                }
    return s;
}

/* Sensitivity Σ_r λ_r² / ‖X̂‖² of the current factors (unit-norm columns, Grams up to date):
 * 1 for orthogonal rank-one terms; large when terms cancel each other. */
static double cp_sensitivity(const cp_work *w)
{
    int R = w->R;
    double terms = 0, xx = 0;
    for (int r = 0; r < R; ++r) {
        terms += w->lambda[r] * w->lambda[r];
        for (int q = 0; q < R; ++q) {
            size_t k = (size_t)r * R + q;
            xx += w->lambda[r] * w->lambda[q] * w->G[0][k] * w->G[1][k] * w->G[2][k] * w->G[3][k];
        }
    }
    return xx > 0 ? terms / xx : (terms > 0 ? INFINITY : 0.0);
}

/* The kept solution: stable ones (sensitivity within the bound) beat unstable ones, then the
 * smaller error wins. */
typedef struct cp_pick {
    int have, stable, sweeps, converged, run;
    double err2, sens, ridge;
} cp_pick;

static int cp_better(const cp_pick *best, int stable, double err2)
{
    if (!best->have)
        return 1;
    if (stable != best->stable)
        return stable;
    return err2 < best->err2;
}

int build_cp(const layer_geom *g, const double *K, int rank, const decomp_opts *o,
             decomp_result *out, rs_err *e)
{
    /* Ridge ladder of the stabilising continuation, descending: each step starts from the
     * previous solution, so it stays in the basin of a non-cancelling decomposition while the
     * fit improves; it stops at the first step whose sensitivity exceeds the bound. */
    static const double ladder[] = {1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4};
    const int n_ladder = (int)(sizeof ladder / sizeof ladder[0]);
    int d[4] = {(int)g->c_out, (int)g->c_in, (int)g->kh, (int)g->kw}, R = rank;
    if (o->max_iter < 1)
        return rs_fail(e, "%s: cp needs max_iter >= 1", g->node->name);
    cp_work w, best;
    memset(&w, 0, sizeof w);
    memset(&best, 0, sizeof best);
    int rc = 0, runs = 1 + (o->restarts > 0 ? o->restarts : 0);
    int stabilise = o->max_sensitivity > 0, total = runs + (stabilise ? n_ladder : 0);
    double *fit = malloc((size_t)o->max_iter * sizeof(double));
    double *best_fit = malloc((size_t)o->max_iter * sizeof(double));
    if (cp_work_init(&w, K, d, R) || cp_work_init(&best, K, d, R) || !fit || !best_fit) {
        rc = rs_fail(e, "%s: out of memory for cp-als at rank %d", g->node->name, R);
        goto done;
    }
    cp_rng rng = {o->seed};
    cp_pick pick = {0};
    decomp_opts ro = *o;
    /* plain runs (SVD init, then random restarts) at the caller's ridge; then, when none of them
     * is stable, the continuation from the SVD init */
    for (int run = 0, step = -1; run < total; ++run) {
        if (run >= runs) {
            if (run == runs && pick.stable)
                break;
            step = run - runs;
            if (ladder[step] <= o->ridge)
                break;
            ro.ridge = ladder[step];
        }
        if ((step <= 0 || run < runs) && cp_init(&w, run == 0 || run == runs, &rng, e)) {
            rc = rs_failctx(e, "%s: cp init", g->node->name);
            goto done;
        }
        int conv = 0, sweeps = cp_run(&w, &ro, fit, &conv, run, total, e);
        if (sweeps == RS_CANCELLED) {
            rc = rs_fail(e, "%s: cp-als cancelled", g->node->name), rc = RS_CANCELLED;
            goto done;
        }
        if (sweeps < 0) {
            if (run == 0 && total == 1) {
                rc = rs_failctx(e, "%s: rank %d", g->node->name, R);
                goto done;
            }
            if (step >= 0)
                break; /* the continuation cannot go on from non-finite factors */
            continue;  /* a diverged restart simply loses */
        }
        double err2 = cp_error2(&w, K), sens = cp_sensitivity(&w);
        int stable = !stabilise || sens <= o->max_sensitivity;
        if (step >= 0 && !stable)
            break;
        if (isfinite(err2) && cp_better(&pick, stable, err2)) {
            pick = (cp_pick){1, stable, sweeps, conv, run < runs ? run : 0, err2, sens, ro.ridge};
            for (int n = 0; n < 4; ++n)
                memcpy(best.A[n], w.A[n], (size_t)d[n] * R * sizeof(double));
            memcpy(best.lambda, w.lambda, (size_t)R * sizeof(double));
            memcpy(best_fit, fit, (size_t)sweeps * sizeof(double));
        }
    }
    if (!pick.have) {
        rc = rs_fail(e, "%s: cp-als diverged at rank %d in every run", g->node->name, R);
        goto done;
    }
    out->n_fit = out->iterations = pick.sweeps;
    out->converged = pick.converged;
    out->restart_used = pick.run;
    out->sensitivity = pick.sens;
    out->ridge_used = pick.ridge;
    out->fit = malloc((size_t)out->n_fit * sizeof(double));
    if (!out->fit) {
        rc = rs_fail(e, "%s: out of memory", g->node->name);
        goto done;
    }
    memcpy(out->fit, best_fit, (size_t)out->n_fit * sizeof(double));
    out->weight_error = best.xnorm2 > 0 ? sqrt(pick.err2 / best.xnorm2) : 0.0;
    double lmax = 0;
    for (int r = 0; r < R; ++r)
        lmax = fmax(lmax, fabs(best.lambda[r]));
    out->degenerate = (best.xnorm2 > 0 && lmax / sqrt(best.xnorm2) > o->degenerate_ratio) || !pick.stable;
    /* chain: 1×1 C_in→R (B), depthwise kh×1 (C), depthwise 1×kw (D), 1×1 R→C_out (A);
     * each column carries λ^{1/4} so the four factors have equal scale */
    float *w0 = out->f[0].w, *w1 = out->f[1].w, *w2 = out->f[2].w, *w3 = out->f[3].w;
    for (int r = 0; r < R; ++r) {
        double q = pow(fabs(best.lambda[r]), 0.25), sg = best.lambda[r] < 0 ? -1.0 : 1.0;
        for (int i = 0; i < d[1]; ++i)
            w0[(size_t)r * d[1] + i] = (float)(q * best.A[1][(size_t)i * R + r]);
        for (int a = 0; a < d[2]; ++a)
            w1[(size_t)r * d[2] + a] = (float)(q * best.A[2][(size_t)a * R + r]);
        for (int b = 0; b < d[3]; ++b)
            w2[(size_t)r * d[3] + b] = (float)(q * best.A[3][(size_t)b * R + r]);
        for (int oo = 0; oo < d[0]; ++oo)
            w3[(size_t)oo * R + r] = (float)(sg * q * best.A[0][(size_t)oo * R + r]);
    }
done:
    cp_work_free(&w);
    cp_work_free(&best);
    free(fit);
    free(best_fit);
    return rc;
}
