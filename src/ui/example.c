/* example.c — the worked convolution example, computed with GSL's SVD. */
#include "example.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <string.h>

void ex_default(ex_state *ex)
{
    static const double x0[5][5] = {
        {1, 0, 2, 1, 0},
        {0, -2, 1, 0, 1},
        {1, 0, 2, 0, -1},
        {2, 1, 0, 1, 0},
        {0, 1, -1, 2, 1},
    };
    static const double k0[3][3] = {{1, 0, -1}, {0, 1, 0}, {-1, 0, 1}};
    memset(ex, 0, sizeof *ex);
    ex->in_h = ex->in_w = 5;
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 5; ++j)
            ex->x[i][j] = x0[i][j];
    memcpy(ex->k, k0, sizeof k0);
    ex->stride = 1;
    ex->pos = 0;
    ex->rank = 1;
    ex_compute(ex);
}

static int kernel_svd(ex_state *ex)
{
    gsl_matrix *a = gsl_matrix_alloc(EX_K, EX_K), *vm = gsl_matrix_alloc(EX_K, EX_K);
    gsl_vector *s = gsl_vector_alloc(EX_K), *work = gsl_vector_alloc(EX_K);
    int rc = -1;
    if (!a || !vm || !s || !work)
        goto out;
    for (int i = 0; i < EX_K; ++i)
        for (int j = 0; j < EX_K; ++j)
            gsl_matrix_set(a, i, j, ex->k[i][j]);
    if (gsl_linalg_SV_decomp(a, vm, s, work) != GSL_SUCCESS)
        goto out;
    for (int k = 0; k < EX_K; ++k) {
        ex->s[k] = gsl_vector_get(s, k);
        /* stable signs: the largest-magnitude entry of u_k is positive */
        int imax = 0;
        for (int i = 1; i < EX_K; ++i)
            if (fabs(gsl_matrix_get(a, i, k)) > fabs(gsl_matrix_get(a, imax, k)) + 1e-12)
                imax = i;
        double sg = gsl_matrix_get(a, imax, k) < 0 ? -1.0 : 1.0;
        for (int i = 0; i < EX_K; ++i) {
            ex->u[k][i] = sg * gsl_matrix_get(a, i, k);
            ex->v[k][i] = sg * gsl_matrix_get(vm, i, k);
        }
    }
    rc = 0;
out:
    gsl_matrix_free(a);
    gsl_matrix_free(vm);
    gsl_vector_free(s);
    gsl_vector_free(work);
    return rc;
}

/* Exact zeros display as 0, not -0.00 or 1e-17. */
static double tidy(double v)
{
    return fabs(v) < 1e-12 ? 0.0 : v;
}

int ex_compute(ex_state *ex)
{
    if (ex->in_h < EX_K)
        ex->in_h = EX_K;
    if (ex->in_w < EX_K)
        ex->in_w = EX_K;
    if (ex->in_h > EX_MAX_IN)
        ex->in_h = EX_MAX_IN;
    if (ex->in_w > EX_MAX_IN)
        ex->in_w = EX_MAX_IN;
    if (ex->stride < 1)
        ex->stride = 1;
    if (ex->stride > 2)
        ex->stride = 2;
    if (ex->rank < 1)
        ex->rank = 1;
    if (ex->rank > EX_K)
        ex->rank = EX_K;
    ex->ok = kernel_svd(ex) == 0;
    if (!ex->ok)
        return -1;
    for (int s = 0; s < EX_K; ++s)
        ex->s[s] = tidy(ex->s[s]);
    for (int a = 0; a < EX_K; ++a)
        for (int b = 0; b < EX_K; ++b) {
            double acc = 0;
            for (int k = 0; k < ex->rank; ++k)
                acc += ex->s[k] * ex->u[k][a] * ex->v[k][b];
            ex->k_low[a][b] = tidy(acc);
        }
    int st = ex->stride;
    ex->out_h = (ex->in_h - EX_K) / st + 1;
    ex->out_w = (ex->in_w - EX_K) / st + 1;
    ex->n_pos = ex->out_h * ex->out_w;
    if (ex->pos < 0)
        ex->pos = 0;
    if (ex->pos >= ex->n_pos)
        ex->pos = ex->n_pos - 1;
    for (int i = 0; i < ex->out_h; ++i)
        for (int j = 0; j < ex->out_w; ++j) {
            double full = 0, low = 0;
            for (int k = 0; k < ex->rank; ++k) {
                /* the separable form, done as the two passes, not via k_low */
                double row = 0;
                for (int b = 0; b < EX_K; ++b) {
                    double col = 0;
                    for (int a = 0; a < EX_K; ++a)
                        col += ex->u[k][a] * ex->x[i * st + a][j * st + b];
                    row += ex->s[k] * ex->v[k][b] * col;
                }
                low += row;
            }
            for (int a = 0; a < EX_K; ++a)
                for (int b = 0; b < EX_K; ++b)
                    full += ex->k[a][b] * ex->x[i * st + a][j * st + b];
            ex->out_full[i][j] = tidy(full);
            ex->out_low[i][j] = tidy(low);
        }
    ex->win_r = (ex->pos / ex->out_w) * st;
    ex->win_c = (ex->pos % ex->out_w) * st;
    ex->win_full = 0;
    for (int a = 0; a < EX_K; ++a)
        for (int b = 0; b < EX_K; ++b) {
            ex->prod[a][b] = ex->k[a][b] * ex->x[ex->win_r + a][ex->win_c + b];
            ex->win_full += ex->prod[a][b];
        }
    ex->win_full = tidy(ex->win_full);
    ex->win_low = 0;
    for (int k = 0; k < EX_K; ++k) {
        ex->row_pass[k] = 0;
        for (int b = 0; b < EX_K; ++b) {
            double col = 0;
            for (int a = 0; a < EX_K; ++a)
                col += ex->u[k][a] * ex->x[ex->win_r + a][ex->win_c + b];
            ex->col_pass[k][b] = tidy(col);
            ex->row_pass[k] += ex->s[k] * ex->v[k][b] * col;
        }
        ex->row_pass[k] = tidy(ex->row_pass[k]);
        if (k < ex->rank)
            ex->win_low += ex->row_pass[k];
    }
    ex->win_low = tidy(ex->win_low);
    ex->mults_direct = (long)ex->n_pos * EX_K * EX_K;
    /* the column pass runs over the input columns some window covers: all of them at stride 1, one
     * fewer at stride 2 when the width is even */
    long cols_used = (long)(ex->out_w - 1) * st + EX_K;
    ex->mults_low = (long)ex->rank * ((long)ex->out_h * cols_used * EX_K + (long)ex->n_pos * EX_K);
    return 0;
}

int ex_mults_amortised(const ex_state *ex)
{
    return ex->rank * (ex->stride + 1) * EX_K;
}
