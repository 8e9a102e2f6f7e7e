/* decomp_tucker.c — Tucker-2 of a conv kernel on its output and input modes (Kim et al. 2016).
 *
 * K[o,i,s] ≈ Σ_{q,j} G[q,j,s] U_out[o,q] U_in[i,j] with s = (a, b) the kh·kw spatial index left
 * uncompressed. HOSVD initialises U_out / U_in with the leading left singular vectors of the
 * mode-0 / mode-1 unfoldings; HOOI then alternates: U_out from (K ×₁ U_inᵀ)_(0), U_in from
 * (K ×₀ U_outᵀ)_(1). With orthonormal U's the error is ‖K‖² − ‖G‖², tracked per sweep; the final
 * weight error is recomputed explicitly from the reconstruction.
 */
#include <gsl/gsl_cblas.h> /* declarations only; OpenBLAS provides the symbols (linked first) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_internal.h"

int build_tucker2(const layer_geom *g, const double *K, int r_out, int r_in, const decomp_opts *o,
                  decomp_result *out, rs_err *e)
{
    int co = (int)g->c_out, ci = (int)g->c_in, S = (int)(g->kh * g->kw);
    size_t P = (size_t)co * ci * S;
    int iters = o->max_iter < 100 ? o->max_iter : 100;
    if (iters < 1)
        iters = 1;
    double *Uo = malloc((size_t)co * r_out * sizeof(double));
    double *Ui = malloc((size_t)ci * r_in * sizeof(double));
    double *Y = malloc((size_t)co * r_in * S * sizeof(double));  /* K ×₁ U_inᵀ: (co, r_in, S) */
    double *Z = malloc((size_t)r_out * ci * S * sizeof(double)); /* K ×₀ U_outᵀ: (r_out, ci, S) */
    double *Z1 = malloc((size_t)ci * r_out * S * sizeof(double)); /* Z_(1): ci × (r_out·S) */
    double *G = malloc((size_t)r_out * r_in * S * sizeof(double));
    double *M1 = malloc(P * sizeof(double));
    double *Kh = malloc(P * sizeof(double));
    double *fit = malloc((size_t)iters * sizeof(double));
    int rc = 0;
    if (!Uo || !Ui || !Y || !Z || !Z1 || !G || !M1 || !Kh || !fit) {
        rc = rs_fail(e, "%s: out of memory for tucker2", g->node->name);
        goto done;
    }
    /* HOSVD: mode-0 unfolding is K itself; mode-1 is (ci, co·S) */
    for (int oo = 0; oo < co; ++oo)
        for (int i = 0; i < ci; ++i)
            memcpy(M1 + ((size_t)i * co + oo) * S, K + ((size_t)oo * ci + i) * S, (size_t)S * sizeof(double));
    if (la_leading_left(K, co, ci * S, r_out, Uo, e) || la_leading_left(M1, ci, co * S, r_in, Ui, e)) {
        rc = rs_failctx(e, "%s: tucker2 hosvd", g->node->name);
        goto done;
    }
    double xn2 = la_norm2(K, P), prev = -INFINITY;
    int sweeps = 0;
    for (int it = 0; it < iters; ++it) {
        /* Y[o] = U_inᵀ K[o]  (r_in × S per output channel) */
        for (int oo = 0; oo < co; ++oo)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r_in, S, ci, 1.0, Ui, r_in,
                        K + (size_t)oo * ci * S, S, 0.0, Y + (size_t)oo * r_in * S, S);
        if (la_leading_left(Y, co, r_in * S, r_out, Uo, e)) {
            rc = rs_failctx(e, "%s: tucker2 hooi", g->node->name);
            goto done;
        }
        /* Z = U_outᵀ K_(0)  ((r_out) × (ci·S)), then its mode-1 unfolding */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r_out, ci * S, co, 1.0, Uo, r_out, K, ci * S,
                    0.0, Z, ci * S);
        for (int q = 0; q < r_out; ++q)
            for (int i = 0; i < ci; ++i)
                memcpy(Z1 + ((size_t)i * r_out + q) * S, Z + ((size_t)q * ci + i) * S, (size_t)S * sizeof(double));
        if (la_leading_left(Z1, ci, r_out * S, r_in, Ui, e)) {
            rc = rs_failctx(e, "%s: tucker2 hooi", g->node->name);
            goto done;
        }
        /* core G[q] = U_inᵀ Z[q] */
        for (int q = 0; q < r_out; ++q)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r_in, S, ci, 1.0, Ui, r_in,
                        Z + (size_t)q * ci * S, S, 0.0, G + (size_t)q * r_in * S, S);
        double err2 = fmax(0.0, xn2 - la_norm2(G, (size_t)r_out * r_in * S));
        double f = xn2 > 0 ? 1.0 - sqrt(err2 / xn2) : 1.0;
        fit[it] = f;
        sweeps = it + 1;
        if (o->progress && o->progress(o->user, (double)(it + 1) / iters, "tucker2-hooi")) {
            rc = rs_fail(e, "%s: tucker2 cancelled", g->node->name), rc = RS_CANCELLED;
            goto done;
        }
        if (fabs(f - prev) < o->tol || f >= 1.0 - 1e-15) {
            out->converged = 1;
            break;
        }
        prev = f;
    }
    out->iterations = out->n_fit = sweeps;
    out->fit = malloc((size_t)sweeps * sizeof(double));
    if (!out->fit) {
        rc = rs_fail(e, "%s: out of memory", g->node->name);
        goto done;
    }
    memcpy(out->fit, fit, (size_t)sweeps * sizeof(double));
    /* explicit reconstruction K̂[o] = U_out[o,:] · (G ×₁ U_in) */
    for (int q = 0; q < r_out; ++q) /* reuse Z as (r_out, ci, S) = G ×₁ U_in */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ci, S, r_in, 1.0, Ui, r_in,
                    G + (size_t)q * r_in * S, S, 0.0, Z + (size_t)q * ci * S, S);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, co, ci * S, r_out, 1.0, Uo, r_out, Z, ci * S,
                0.0, Kh, ci * S);
    double d2 = 0;
    for (size_t k = 0; k < P; ++k)
        d2 += (K[k] - Kh[k]) * (K[k] - Kh[k]);
    out->weight_error = xn2 > 0 ? sqrt(d2 / xn2) : 0.0;
    /* chain: 1×1 C_in→R_in (U_inᵀ), core kh×kw R_in→R_out (G), 1×1 R_out→C_out (U_out) */
    float *w0 = out->f[0].w, *w1 = out->f[1].w, *w2 = out->f[2].w;
    for (int j = 0; j < r_in; ++j)
        for (int i = 0; i < ci; ++i)
            w0[(size_t)j * ci + i] = (float)Ui[(size_t)i * r_in + j];
    for (size_t k = 0; k < (size_t)r_out * r_in * S; ++k)
        w1[k] = (float)G[k];
    for (int oo = 0; oo < co; ++oo)
        for (int q = 0; q < r_out; ++q)
            w2[(size_t)oo * r_out + q] = (float)Uo[(size_t)oo * r_out + q];
done:
    free(Uo), free(Ui), free(Y), free(Z), free(Z1), free(G), free(M1), free(Kh), free(fit);
    return rc;
}
