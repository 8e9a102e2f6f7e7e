/* evbmf.c — empirical VB matrix factorization (Nakajima et al., JMLR 2013; NIPS 2012).
 *
 * With x_h = γ_h² / (M σ²), the free energy as a function of σ² alone is (up to constants)
 *     Ω(σ²) = Σ_{h=1..L} ψ0(x_h) + Σ_{h: x_h > x̲} ψ1(x_h),
 *     ψ0(x) = x − log x,   ψ1(x) = log(τ + 1) + α log(τ/α + 1) − τ,
 *     τ(x; α) = ½ (x − (1+α) + √((x − (1+α))² − 4α)),
 * where x̲ = (1 + τ̲)(1 + α/τ̲) and τ̲ is the zero of Ξ(τ; α) = Φ(τ) + Φ(τ/α), Φ(z) = log(z+1)/z − ½
 * (solved exactly here, not approximated by 2.5129√α, so Ω is continuous at x̲: ψ1(x̲) = 0).
 * ψ0's "− log x" contributes L log σ² plus a constant, which keeps zero singular values finite.
 * σ² is searched on the paper's interval [max(γ²_{ξ̄+1}/(M x̄), Σ_{h>ξ̄} γ_h²/(M(L−ξ̄))), Σγ²/(LM)]
 * with ξ̄ = ⌈L/(1+α)⌉ − 1, x̄ from τ̄ = 2.5129√α: a log-spaced scan locates the global basin and
 * GSL's Brent minimiser refines it.
 */
#include "rankscope/evbmf.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_min.h>
#include <gsl/gsl_roots.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linalg.h"

#define EVBMF_SCAN 256

static double phi(double z) { return log1p(z) / z - 0.5; }

static double xi_fn(double tau, void *p)
{
    double alpha = *(const double *)p;
    return phi(tau) + phi(tau / alpha);
}

static double tau_of(double x, double alpha)
{
    double t = x - (1.0 + alpha);
    return 0.5 * (t + sqrt(fmax(0.0, t * t - 4.0 * alpha)));
}

/* τ̲: Ξ is decreasing, positive at √α/2 and negative far out. */
static int tau_lower(double alpha, double *out, rs_err *e)
{
    double lo = 0.5 * sqrt(alpha), hi = 3.0 * sqrt(alpha) + 1.0;
    while (xi_fn(hi, &alpha) > 0 && hi < 1e6)
        hi *= 2;
    if (!(xi_fn(lo, &alpha) > 0 && xi_fn(hi, &alpha) < 0))
        return rs_fail(e, "evbmf: cannot bracket the threshold for alpha %g", alpha);
    gsl_function F = {xi_fn, &alpha};
    gsl_root_fsolver *s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
    if (!s)
        return rs_fail(e, "evbmf: out of memory");
    int st = gsl_root_fsolver_set(s, &F, lo, hi);
    double r = lo;
    for (int it = 0; st == 0 && it < 200; ++it) {
        st = gsl_root_fsolver_iterate(s);
        if (st)
            break;
        r = gsl_root_fsolver_root(s);
        double a = gsl_root_fsolver_x_lower(s), b = gsl_root_fsolver_x_upper(s);
        if (gsl_root_test_interval(a, b, 0, 1e-14) == GSL_SUCCESS)
            break;
    }
    gsl_root_fsolver_free(s);
    if (st)
        return rs_fail(e, "evbmf: threshold root finding failed: %s", gsl_strerror(st));
    *out = r;
    return 0;
}

typedef struct energy_args {
    const double *sv;
    int L, M;
    double alpha, xlow, sum2;
} energy_args;

static double free_energy(double sigma2, void *p)
{
    const energy_args *a = p;
    double f = a->L * log(sigma2) + a->sum2 / (a->M * sigma2);
    for (int h = 0; h < a->L; ++h) {
        double x = a->sv[h] * a->sv[h] / (a->M * sigma2);
        if (x <= a->xlow)
            break; /* descending: the rest are below the threshold too */
        double tau = tau_of(x, a->alpha);
        f += log1p(tau) + a->alpha * log1p(tau / a->alpha) - tau;
    }
    return f;
}

void evbmf_result_free(evbmf_result *r)
{
    if (!r)
        return;
    free(r->sv);
    free(r->shrunk);
    memset(r, 0, sizeof *r);
}

int evbmf_from_sv(const double *sv, int L, int M, evbmf_result *out, rs_err *e)
{
    memset(out, 0, sizeof *out);
    if (L < 1 || M < L)
        return rs_fail(e, "evbmf: need 1 <= L <= M, got %dx%d", L, M);
    rs_gsl_init();
    out->L = L;
    out->M = M;
    out->sv = malloc((size_t)L * sizeof(double));
    out->shrunk = calloc((size_t)L, sizeof(double));
    if (!out->sv || !out->shrunk) {
        evbmf_result_free(out);
        return rs_fail(e, "evbmf: out of memory");
    }
    double sum2 = 0;
    for (int h = 0; h < L; ++h) {
        if (!isfinite(sv[h]) || sv[h] < 0 || (h > 0 && sv[h] > sv[h - 1] * (1 + 1e-12) + 1e-300)) {
            evbmf_result_free(out);
            return rs_fail(e, "evbmf: singular values must be finite, >= 0 and descending (index %d)", h);
        }
        out->sv[h] = sv[h];
        sum2 += sv[h] * sv[h];
    }
    if (!(sum2 > 0)) /* zero matrix: nothing to keep */
        return 0;
    double alpha = (double)L / M, tau_l = 0;
    if (tau_lower(alpha, &tau_l, e)) {
        evbmf_result_free(out);
        return -1;
    }
    double xlow = (1 + tau_l) * (1 + alpha / tau_l);
    double tau_bar = 2.5129 * sqrt(alpha), xbar = (1 + tau_bar) * (1 + alpha / tau_bar);
    int xi_bar = (int)ceil(L / (1 + alpha)) - 1; /* largest rank EVB can return */
    if (xi_bar > L - 1)
        xi_bar = L - 1;
    if (xi_bar < 0)
        xi_bar = 0;
    double tail = 0;
    for (int h = xi_bar; h < L; ++h)
        tail += sv[h] * sv[h];
    double hi = sum2 / ((double)L * M);
    double lo = fmax(sv[xi_bar] * sv[xi_bar] / (M * xbar), tail / ((double)M * (L - xi_bar)));
    if (!(lo > hi * 1e-12))
        lo = hi * 1e-12; /* noiseless low-rank input: keep log σ² finite */
    if (lo > hi)
        lo = hi;
    out->sigma2_lower = lo;
    out->sigma2_upper = hi;
    energy_args args = {out->sv, L, M, alpha, xlow, sum2};
    /* scan for the global basin */
    double grid[EVBMF_SCAN], fval[EVBMF_SCAN];
    int best = 0, npts = lo < hi ? EVBMF_SCAN : 1;
    for (int k = 0; k < npts; ++k) {
        grid[k] = npts > 1 ? exp(log(lo) + (log(hi) - log(lo)) * k / (npts - 1)) : lo;
        fval[k] = free_energy(grid[k], &args);
        if (fval[k] < fval[best])
            best = k;
    }
    double sigma2 = grid[best];
    if (best > 0 && best < npts - 1 && fval[best] < fval[best - 1] && fval[best] < fval[best + 1]) {
        gsl_function F = {free_energy, &args};
        gsl_min_fminimizer *mz = gsl_min_fminimizer_alloc(gsl_min_fminimizer_brent);
        if (!mz) {
            evbmf_result_free(out);
            return rs_fail(e, "evbmf: out of memory");
        }
        int st = gsl_min_fminimizer_set_with_values(mz, &F, grid[best], fval[best], grid[best - 1],
                                                    fval[best - 1], grid[best + 1], fval[best + 1]);
        for (int it = 0; st == 0 && it < 200; ++it) {
            st = gsl_min_fminimizer_iterate(mz);
            if (st)
                break;
            double a = gsl_min_fminimizer_x_lower(mz), b = gsl_min_fminimizer_x_upper(mz);
            if (gsl_min_test_interval(a, b, 0.0, 1e-12) == GSL_SUCCESS)
                break;
        }
        if (st == 0)
            sigma2 = gsl_min_fminimizer_x_minimum(mz);
        gsl_min_fminimizer_free(mz);
        if (st) {
            evbmf_result_free(out);
            return rs_fail(e, "evbmf: Brent minimisation failed: %s", gsl_strerror(st));
        }
    }
    out->sigma2 = sigma2;
    out->threshold = sqrt(M * sigma2 * xlow);
    for (int h = 0; h < L && out->sv[h] > out->threshold; ++h) {
        double g2 = out->sv[h] * out->sv[h], a = 1.0 - (L + M) * sigma2 / g2;
        double disc = a * a - 4.0 * L * M * sigma2 * sigma2 / (g2 * g2);
        out->shrunk[h] = 0.5 * out->sv[h] * (a + sqrt(fmax(0.0, disc)));
        out->rank = h + 1;
    }
    return 0;
}

int evbmf_estimate(const double *Y, int rows, int cols, evbmf_result *out, rs_err *e)
{
    memset(out, 0, sizeof *out);
    if (rows < 1 || cols < 1)
        return rs_fail(e, "evbmf: empty %dx%d matrix", rows, cols);
    int L = rows < cols ? rows : cols, M = rows < cols ? cols : rows;
    double *sv = malloc((size_t)L * sizeof *sv);
    if (!sv)
        return rs_fail(e, "evbmf: out of memory");
    int rc = la_singular_values(Y, rows, cols, sv, e);
    if (rc == 0)
        rc = evbmf_from_sv(sv, L, M, out, e);
    free(sv);
    return rc;
}

static int view_rank(const rs_model *m, int node, decomp_view view, int *rank, rs_err *e)
{
    double *A;
    int rows, cols;
    if (decomp_matrix(m, node, view, &A, &rows, &cols, e))
        return -1;
    evbmf_result r;
    int rc = evbmf_estimate(A, rows, cols, &r, e);
    free(A);
    if (rc)
        return rc;
    *rank = r.rank;
    evbmf_result_free(&r);
    return 0;
}

/* At least 1 (rank 0 — pure noise — is not a factorization), rounded up, within 1..max. */
static int round_clamp(int r, int multiple, int max)
{
    if (r < 1)
        r = 1;
    if (multiple > 1)
        r = (r + multiple - 1) / multiple * multiple;
    if (r > max)
        r = max;
    return r < 1 ? 1 : r;
}

int evbmf_layer_rank(const rs_model *m, int node, decomp_method method, int multiple, int *rank,
                     int *rank2, rs_err *e)
{
    int r0 = 0, r1 = 0;
    if (rank2)
        *rank2 = 0;
    if (decomp_check(m, node, method, e))
        return -1;
    const char *name = m->nodes[node].name;
    switch (method) {
    case DECOMP_SVD:
        if (view_rank(m, node, DECOMP_VIEW_DENSE, &r0, e))
            return rs_failctx(e, "%s", name);
        break;
    case DECOMP_SPATIAL_SVD:
        if (view_rank(m, node, DECOMP_VIEW_SPATIAL, &r0, e))
            return rs_failctx(e, "%s", name);
        break;
    case DECOMP_CP:
    case DECOMP_TUCKER2:
        if (view_rank(m, node, DECOMP_VIEW_MODE0, &r0, e) || view_rank(m, node, DECOMP_VIEW_MODE1, &r1, e))
            return rs_failctx(e, "%s", name);
        if (method == DECOMP_CP)
            r0 = r0 > r1 ? r0 : r1;
        break;
    case DECOMP_SLICE_SVD: {
        decomp_spectrum s;
        if (decomp_spectrum_of(m, node, DECOMP_VIEW_SLICES, &s, e))
            return -1;
        int L = s.rows < s.cols ? s.rows : s.cols, M = s.rows < s.cols ? s.cols : s.rows;
        for (int k = 0; k < s.n_mats; ++k) {
            evbmf_result r;
            if (evbmf_from_sv(s.sigma + (size_t)k * s.n, L, M, &r, e)) {
                decomp_spectrum_free(&s);
                return rs_failctx(e, "%s: slice %d", name, k);
            }
            r0 = r.rank > r0 ? r.rank : r0;
            evbmf_result_free(&r);
        }
        decomp_spectrum_free(&s);
        break;
    }
    default:
        return rs_fail(e, "%s: no EVBMF rank for method %s", name, decomp_method_name(method));
    }
    *rank = round_clamp(r0, multiple, decomp_max_rank(m, node, method, 0));
    if (method == DECOMP_TUCKER2 && rank2)
        *rank2 = round_clamp(r1, multiple, decomp_max_rank(m, node, method, 1));
    return 0;
}
