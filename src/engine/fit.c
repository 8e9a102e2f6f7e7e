/* fit.c — factor chains refitted to a layer's outputs on calibration data (see fit.h).
 *
 * Every method ends in a "head": the factors after a fixed prefix, linear in their weights, fed
 * by patches z of the prefix's output (dense: z is the input itself). With x the original
 * layer's input patches and W its weight, the target is y = W x + b, and the head minimises
 * Σ ‖W x + b − (W' z + b')‖² over the calibration rows. With centred statistics
 * C = E[(x−μx)(z−μz)ᵀ], S = E[(z−μz)(z−μz)ᵀ] = Q Λ Qᵀ and T = W C:
 *   least squares        W' = T S⁺ = T Q Λ⁻¹ Qᵀ
 *   reduced-rank (r)     M = T Q Λ^{-1/2} = U Σ Vᵀ, W' = U_r Σ_r V_rᵀ Λ^{-1/2} Qᵀ
 *                        (the truncated SVD of the whitened problem, mapped back; with z = x
 *                        it is the whitened SVD of W L, L = Q Λ^{1/2})
 *   bias                 b' = b + W μx − W' μz
 * The two factors of a reduced-rank head get √Σ each, as the weight-based SVD does. */
#include "rankscope/fit.h"

#include <gsl/gsl_cblas.h> /* declarations only; OpenBLAS provides the symbols (linked first) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom.h"
#include "layer_eval.h"
#include "linalg.h"
#include "rankscope/guard.h"
#include "rankscope/infer.h"
#include "rankscope/train.h"

const char *fit_mode_name(fit_mode m)
{
    return m == FIT_OUTPUTS ? "outputs" : m == FIT_LAYERS ? "layers" : "weights";
}

int fit_mode_parse(const char *s, fit_mode *out, rs_err *e)
{
    if (s && !strcmp(s, "weights"))
        *out = FIT_WEIGHTS;
    else if (s && !strcmp(s, "outputs"))
        *out = FIT_OUTPUTS;
    else if (s && !strcmp(s, "layers"))
        *out = FIT_LAYERS;
    else
        return rs_fail(e, "unknown fit \"%s\" (expected weights, outputs or layers)", s ? s : "");
    return 0;
}

void fit_default_options(fit_options *o)
{
    memset(o, 0, sizeof *o);
    o->sequential = 1;
    o->max_rows = 1 << 18;
    o->eig_floor = 1e-6;
    o->downstream = 1;
    o->refine_epochs = FIT_REFINE_EPOCHS;
    o->refine_lr = 0.01;
    o->refine_temp = 2.0;
    o->nthreads = 1;
}

/* ---- the head of each method ------------------------------------------------------------------ */

typedef struct head {
    int prefix;   /* factors before the head */
    int rrr_rank; /* > 0: reduced-rank head over two factors (prefix, prefix + 1); 0: one factor */
    int last;     /* index of the factor that carries the bias */
} head;

static int head_of(const decomp_result *r, head *h)
{
    switch (r->method) {
    case DECOMP_SVD: *h = (head){0, r->rank, 1}; return 0;
    case DECOMP_TUCKER2: *h = (head){1, r->rank, 2}; return 0;
    case DECOMP_SPATIAL_SVD: *h = (head){1, 0, 1}; return 0;
    case DECOMP_CP: *h = (head){3, 0, 3}; return 0;
    default: return -1;
    }
}

/* ---- statistics -------------------------------------------------------------------------------- */

typedef struct stats {
    int px, pz;
    double rows;
    double *sxz, *szz, *sx, *sz; /* px × pz, pz × pz, px, pz */
} stats;

static void stats_free(stats *s)
{
    free(s->sxz), free(s->szz), free(s->sx), free(s->sz);
}

/* Adds the selected columns of X (px × P) and Z (pz × P), both float, column p kept when
 * (base + p) % step == 0. xs / zs: px × P and pz × P double workspaces. */
static void stats_add(stats *s, const float *X, const float *Z, int64_t P, int64_t base, int64_t step,
                      double *xs, double *zs)
{
    int64_t k = 0;
    for (int64_t p = 0; p < P; ++p) {
        if ((base + p) % step)
            continue;
        for (int i = 0; i < s->px; ++i)
            xs[(int64_t)i * P + k] = X[(int64_t)i * P + p];
        for (int j = 0; j < s->pz; ++j)
            zs[(int64_t)j * P + k] = Z[(int64_t)j * P + p];
        ++k;
    }
    if (k == 0)
        return;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->px, s->pz, (int)k, 1.0, xs, (int)P, zs, (int)P, 1.0,
                s->sxz, s->pz);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->pz, s->pz, (int)k, 1.0, zs, (int)P, zs, (int)P, 1.0,
                s->szz, s->pz);
    for (int i = 0; i < s->px; ++i)
        for (int64_t c = 0; c < k; ++c)
            s->sx[i] += xs[(int64_t)i * P + c];
    for (int j = 0; j < s->pz; ++j)
        for (int64_t c = 0; c < k; ++c)
            s->sz[j] += zs[(int64_t)j * P + c];
    s->rows += (double)k;
}

/* Shape of a conv factor on an input of (c, h, w). */
static le_conv_shape factor_shape(const decomp_factor *f, int64_t c, int64_t h, int64_t w)
{
    le_conv_shape s = {c, h, w, f->out_channels, f->w_dims[2], f->w_dims[3], f->group,
                       f->strides, f->pads, f->dilations, f->out_h, f->out_w};
    return s;
}

/* Accumulates the statistics of x (original input) and z (the head's input patches, computed from
 * xt through the prefix) over all n images, in chunks. */
static int collect(const layer_geom *g, const decomp_result *r, const head *hd, const float *x, const float *xt,
                   int n, const fit_options *o, stats *st, rs_err *e)
{
    const rs_node *nd = g->node;
    enum { CHUNK = 32 };
    int64_t in_sz = g->c_in * g->h_in * g->w_in, P = g->conv ? g->h_out * g->w_out : 1;
    /* the head's input: prefix output channels and size */
    int64_t zc = g->c_in, zh = g->h_in, zw = g->w_in, big = in_sz;
    for (int i = 0; i < hd->prefix; ++i) {
        const decomp_factor *f = &r->f[i];
        zc = f->out_channels, zh = f->out_h, zw = f->out_w;
        if (zc * zh * zw > big)
            big = zc * zh * zw;
    }
    le_conv_shape xs_shape = {g->c_in, g->h_in, g->w_in, g->c_out, g->kh, g->kw, 1,
                              nd->strides, nd->pads, nd->dilations, g->h_out, g->w_out};
    const decomp_factor *hf = &r->f[hd->prefix];
    le_conv_shape zs_shape = g->conv ? factor_shape(hf, zc, zh, zw) : xs_shape;
    st->px = (int)(g->c_in * g->kh * g->kw);
    st->pz = g->conv ? (int)(zc * hf->w_dims[2] * hf->w_dims[3]) : (int)g->c_in;
    int64_t col_x = g->conv ? le_col_size(&xs_shape) : in_sz, col_z = g->conv ? le_col_size(&zs_shape) : in_sz;
    int64_t col_p = 1; /* im2col workspace of the prefix factors (grouped ones need none) */
    for (int i = 0, c = (int)g->c_in, h = (int)g->h_in, w = (int)g->w_in; i < hd->prefix; ++i) {
        le_conv_shape fs = factor_shape(&r->f[i], c, h, w);
        if (le_col_size(&fs) > col_p)
            col_p = le_col_size(&fs);
        c = (int)r->f[i].out_channels, h = (int)r->f[i].out_h, w = (int)r->f[i].out_w;
    }
    int64_t total = (int64_t)n * P, step = total > o->max_rows ? (total + o->max_rows - 1) / o->max_rows : 1;
    st->sxz = calloc((size_t)st->px * st->pz, sizeof(double));
    st->szz = calloc((size_t)st->pz * st->pz, sizeof(double));
    st->sx = calloc((size_t)st->px, sizeof(double));
    st->sz = calloc((size_t)st->pz, sizeof(double));
    float *bufa = malloc((size_t)(CHUNK * big) * sizeof(float)), *bufb = malloc((size_t)(CHUNK * big) * sizeof(float));
    float *cx = malloc((size_t)col_x * sizeof(float)), *cz = malloc((size_t)col_z * sizeof(float));
    float *cp = malloc((size_t)col_p * sizeof(float));
    double *dx = malloc((size_t)st->px * P * sizeof(double)), *dz = malloc((size_t)st->pz * P * sizeof(double));
    int rc = 0;
    if (!st->sxz || !st->szz || !st->sx || !st->sz || !bufa || !bufb || !cx || !cz || !cp || !dx || !dz) {
        rc = rs_fail(e, "%s: out of memory for the fit statistics", nd->name);
        goto done;
    }
    for (int b0 = 0; b0 < n && rc == 0; b0 += CHUNK) {
        int nb = n - b0 < CHUNK ? n - b0 : CHUNK;
        /* the prefix on xt */
        const float *z = xt + (int64_t)b0 * in_sz;
        int64_t c = g->c_in, h = g->h_in, w = g->w_in;
        for (int i = 0; i < hd->prefix; ++i) {
            const decomp_factor *f = &r->f[i];
            float *dst = i % 2 ? bufb : bufa;
            le_conv_shape fs = factor_shape(f, c, h, w);
            le_conv(&fs, z, nb, f->w, f->bias, dst, cp);
            z = dst;
            c = f->out_channels, h = f->out_h, w = f->out_w;
        }
        for (int b = 0; b < nb; ++b) {
            const float *xb = x + (int64_t)(b0 + b) * in_sz, *zb = z + (int64_t)b * zc * zh * zw;
            if (g->conv) {
                le_im2col(&xs_shape, xb, cx);
                le_im2col(&zs_shape, zb, cz);
                stats_add(st, cx, cz, P, (int64_t)(b0 + b) * P, step, dx, dz);
            } else {
                stats_add(st, xb, zb, 1, (int64_t)(b0 + b), step, dx, dz);
            }
        }
        if (o->progress && o->progress(o->user, (double)(b0 + nb) / n, "fit"))
            rc = RS_CANCELLED;
    }
    if (rc == 0 && st->rows < 1)
        rc = rs_fail(e, "%s: no calibration rows", nd->name);
done:
    free(bufa), free(bufb), free(cx), free(cz), free(cp), free(dx), free(dz);
    return rc;
}

/* ---- what the output error is measured in ------------------------------------------------------ */

/* The layer's output usually feeds, through element-wise / pooling / reshaping ops, one more
 * weighted layer N; an output error e then reaches the network as (roughly) N's weight applied
 * to e. A reduced-rank head therefore minimises ‖G^{1/2} (y − y')‖ with G = A + tr(A)/C_out·I,
 * A[c,c'] = Σ N's weights on channel c × those on c' (summed over outputs and taps): half the
 * plain output error, half the error as the next layer sees it. Returns 1 with G (C_out²) filled,
 * 0 when the output goes anywhere else (a residual Add, two readers, the graph output). */
static int downstream_metric(const rs_model *m, int node, int64_t c_out, double *G)
{
    int v = m->nodes[node].out[0];
    for (int hops = 0; hops < 16; ++hops) {
        int reader = -1, readers = 0;
        for (int k = 0; k < m->n_nodes; ++k)
            for (int j = 0; j < m->nodes[k].n_in; ++j)
                if (m->nodes[k].in[j] == v) {
                    reader = k;
                    ++readers;
                }
        if (readers != 1)
            return 0;
        const rs_node *nd = &m->nodes[reader];
        rs_op op = nd->op;
        if (op == RS_OP_RELU || op == RS_OP_MAXPOOL || op == RS_OP_AVGPOOL || op == RS_OP_FLATTEN ||
            op == RS_OP_RESHAPE || op == RS_OP_IDENTITY || op == RS_OP_CLIP) {
            v = nd->out[0];
            continue;
        }
        layer_geom gn;
        if (!model_is_weighted(m, reader) || nd->in[0] != v || geom_of(m, reader, &gn, NULL) || gn.group != 1)
            return 0;
        int64_t per = gn.conv ? gn.kh * gn.kw : gn.c_in / c_out; /* taps (or flattened positions) per channel */
        if (gn.c_in != c_out * (gn.conv ? 1 : per) || per < 1)
            return 0;
        double *Kn = geom_weight(&gn);
        if (!Kn)
            return 0;
        int64_t row = gn.c_in * (gn.conv ? gn.kh * gn.kw : 1);
        double tr = 0;
        for (int64_t c = 0; c < c_out; ++c)
            for (int64_t d = 0; d < c_out; ++d) {
                double acc = 0;
                for (int64_t o = 0; o < gn.c_out; ++o)
                    for (int64_t s = 0; s < per; ++s)
                        acc += Kn[o * row + c * per + s] * Kn[o * row + d * per + s];
                G[c * c_out + d] = acc;
            }
        for (int64_t c = 0; c < c_out; ++c)
            tr += G[c * c_out + c];
        for (int64_t c = 0; c < c_out; ++c)
            G[c * c_out + c] += tr / (double)c_out;
        free(Kn);
        return tr > 0;
    }
    return 0;
}

/* G^{1/2} and G^{-1/2} of a symmetric positive definite n × n matrix. */
static int metric_roots(const double *G, int n, double *Gh, double *Ghi, rs_err *e)
{
    double *lam = malloc((size_t)n * sizeof *lam), *Q = malloc((size_t)n * n * sizeof *Q);
    int rc = lam && Q ? la_sym_eig(G, n, lam, Q, e) : rs_fail(e, "out of memory");
    if (rc == 0 && !(lam[n - 1] > 0))
        rc = rs_fail(e, "output metric is not positive definite");
    for (int i = 0; rc == 0 && i < n; ++i)
        for (int j = 0; j < n; ++j) {
            double a = 0, b = 0;
            for (int k = 0; k < n; ++k) {
                double q = Q[(size_t)i * n + k] * Q[(size_t)j * n + k];
                a += q * sqrt(lam[k]);
                b += q / sqrt(lam[k]);
            }
            Gh[(size_t)i * n + j] = a;
            Ghi[(size_t)i * n + j] = b;
        }
    free(lam), free(Q);
    return rc;
}

/* ---- solving the head ---------------------------------------------------------------------------- */

/* The fitted head: left (C_out × r) and right (r × pz) for a reduced-rank head, or W' (C_out × pz)
 * in left with right NULL; bias b' (C_out) when centred. */
static int solve_head(const layer_geom *g, const head *hd, const stats *st, int centre, double eig_floor,
                      const double *G, double *left, double *right, double *bias, rs_err *e)
{
    const rs_node *nd = g->node;
    int co = (int)g->c_out, px = st->px, pz = st->pz, rc = 0;
    double N = st->rows;
    float alpha = nd->op == RS_OP_GEMM ? nd->alpha : 1.0f, beta = nd->op == RS_OP_GEMM ? nd->beta : 1.0f;
    double *W = geom_weight(g);
    double *C = malloc((size_t)px * pz * sizeof *C), *S = malloc((size_t)pz * pz * sizeof *S);
    double *T = malloc((size_t)co * pz * sizeof *T), *Q = malloc((size_t)pz * pz * sizeof *Q);
    double *lam = malloc((size_t)pz * sizeof *lam), *Wp = malloc((size_t)co * pz * sizeof *Wp);
    double *M = malloc((size_t)co * pz * sizeof *M), *U = malloc((size_t)co * pz * sizeof *U);
    double *V = malloc((size_t)pz * pz * sizeof *V), *sv = malloc((size_t)pz * sizeof *sv);
    if (!W || !C || !S || !T || !Q || !lam || !Wp || !M || !U || !V || !sv) {
        rc = rs_fail(e, "%s: out of memory", nd->name);
        goto done;
    }
    double *mx = st->sx, *mz = st->sz; /* turned into means below (the stats are not reused) */
    for (int i = 0; i < px; ++i)
        mx[i] /= N;
    for (int j = 0; j < pz; ++j)
        mz[j] /= N;
    for (int i = 0; i < px; ++i)
        for (int j = 0; j < pz; ++j)
            C[(size_t)i * pz + j] = st->sxz[(size_t)i * pz + j] / N - (centre ? mx[i] * mz[j] : 0.0);
    for (int i = 0; i < pz; ++i)
        for (int j = 0; j < pz; ++j)
            S[(size_t)i * pz + j] = st->szz[(size_t)i * pz + j] / N - (centre ? mz[i] * mz[j] : 0.0);
    for (size_t i = 0; i < (size_t)co * px; ++i)
        W[i] *= alpha;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, co, pz, px, 1.0, W, px, C, pz, 0.0, T, pz);
    if (la_sym_eig(S, pz, lam, Q, e)) {
        rc = rs_failctx(e, "%s: input covariance", nd->name);
        goto done;
    }
    if (!(lam[0] > 0)) {
        rc = rs_fail(e, "%s: the layer's input is constant on the calibration images", nd->name);
        goto done;
    }
    int k = 0;
    while (k < pz && lam[k] > eig_floor * lam[0])
        ++k;
    /* M = T Q_k Λ_k^{-1/2} (co × k) */
    for (int i = 0; i < co; ++i)
        for (int j = 0; j < k; ++j) {
            double acc = 0;
            for (int l = 0; l < pz; ++l)
                acc += T[(size_t)i * pz + l] * Q[(size_t)l * pz + j];
            M[(size_t)i * k + j] = acc / sqrt(lam[j]);
        }
    if (hd->rrr_rank > 0) {
        int r = hd->rrr_rank, kk = co < k ? co : k;
        double *Gh = NULL, *Ghi = NULL;
        if (G) { /* the truncation in the metric G: SVD of G^{1/2} M, left factor mapped back */
            Gh = malloc((size_t)co * co * sizeof *Gh);
            Ghi = malloc((size_t)co * co * sizeof *Ghi);
            if (!Gh || !Ghi || metric_roots(G, co, Gh, Ghi, e)) {
                free(Gh), free(Ghi);
                rc = Gh && Ghi ? rs_failctx(e, "%s", nd->name) : rs_fail(e, "%s: out of memory", nd->name);
                goto done;
            }
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, co, k, co, 1.0, Gh, co, M, k, 0.0, Wp, k);
            memcpy(M, Wp, (size_t)co * k * sizeof *M);
        }
        if (la_svd(M, co, k, U, sv, V, e)) {
            free(Gh), free(Ghi);
            rc = rs_failctx(e, "%s: whitened svd", nd->name);
            goto done;
        }
        memset(left, 0, (size_t)co * r * sizeof *left);
        memset(right, 0, (size_t)r * pz * sizeof *right);
        for (int t = 0; t < r && t < kk; ++t) {
            double hs = sqrt(sv[t]);
            for (int i = 0; i < co; ++i)
                left[(size_t)i * r + t] = hs * U[(size_t)i * kk + t];
            /* right row t = √σ v_tᵀ Λ^{-1/2} Q_kᵀ */
            for (int l = 0; l < pz; ++l) {
                double acc = 0;
                for (int j = 0; j < k; ++j)
                    acc += V[(size_t)j * kk + t] / sqrt(lam[j]) * Q[(size_t)l * pz + j];
                right[(size_t)t * pz + l] = hs * acc;
            }
        }
        if (G) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, co, r, co, 1.0, Ghi, co, left, r, 0.0, U, r);
            memcpy(left, U, (size_t)co * r * sizeof *left);
        }
        free(Gh), free(Ghi);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, co, pz, r, 1.0, left, r, right, pz, 0.0, Wp, pz);
    } else {
        /* W' = M Λ_k^{-1/2} Q_kᵀ */
        for (int i = 0; i < co; ++i)
            for (int l = 0; l < pz; ++l) {
                double acc = 0;
                for (int j = 0; j < k; ++j)
                    acc += M[(size_t)i * k + j] / sqrt(lam[j]) * Q[(size_t)l * pz + j];
                Wp[(size_t)i * pz + l] = acc;
            }
        memcpy(left, Wp, (size_t)co * pz * sizeof *left);
    }
    if (centre)
        for (int i = 0; i < co; ++i) {
            double acc = beta * (double)g->bias[i];
            for (int l = 0; l < px; ++l)
                acc += W[(size_t)i * px + l] * mx[l];
            for (int l = 0; l < pz; ++l)
                acc -= Wp[(size_t)i * pz + l] * mz[l];
            bias[i] = acc;
        }
done:
    free(W), free(C), free(S), free(T), free(Q), free(lam), free(Wp), free(M), free(U), free(V), free(sv);
    return rc;
}

/* ---- the fitted chain's weight error -------------------------------------------------------------- */

/* K̂ in the canonical layout (conv C_out × C_in × kh × kw, dense N × K) from the factors. */
static void chain_kernel(const layer_geom *g, const decomp_result *r, double *Kh)
{
    int64_t co = g->c_out, ci = g->c_in, kh = g->kh, kw = g->kw, R = r->rank;
    memset(Kh, 0, (size_t)g->weight_numel * sizeof *Kh);
    const decomp_factor *f = r->f;
    switch (r->method) {
    case DECOMP_SVD: {
        int gemm = f[0].op == RS_OP_GEMM;
        for (int64_t i = 0; i < co; ++i)
            for (int64_t t = 0; t < R; ++t) {
                double a = gemm ? f[1].w[i * R + t] : f[1].w[t * co + i];
                for (int64_t j = 0; j < ci; ++j)
                    Kh[i * ci + j] += a * (gemm ? f[0].w[t * ci + j] : f[0].w[j * R + t]);
            }
        break;
    }
    case DECOMP_SPATIAL_SVD: /* V (R, C_in, kh, 1), H (C_out, R, 1, kw) */
        for (int64_t o = 0; o < co; ++o)
            for (int64_t t = 0; t < R; ++t)
                for (int64_t i = 0; i < ci; ++i)
                    for (int64_t a = 0; a < kh; ++a)
                        for (int64_t b = 0; b < kw; ++b)
                            Kh[((o * ci + i) * kh + a) * kw + b] +=
                                (double)f[0].w[(t * ci + i) * kh + a] * f[1].w[(o * R + t) * kw + b];
        break;
    case DECOMP_CP: /* B (R, C_in), C (R, kh), D (R, kw), A (C_out, R) */
        for (int64_t o = 0; o < co; ++o)
            for (int64_t t = 0; t < R; ++t)
                for (int64_t i = 0; i < ci; ++i)
                    for (int64_t a = 0; a < kh; ++a)
                        for (int64_t b = 0; b < kw; ++b)
                            Kh[((o * ci + i) * kh + a) * kw + b] += (double)f[3].w[o * R + t] * f[0].w[t * ci + i] *
                                                                    f[1].w[t * kh + a] * f[2].w[t * kw + b];
        break;
    case DECOMP_TUCKER2: { /* U_inᵀ (R_in, C_in), G (R_out, R_in, kh, kw), U_out (C_out, R_out) */
        int64_t R2 = r->rank2, S = kh * kw;
        for (int64_t o = 0; o < co; ++o)
            for (int64_t q = 0; q < R; ++q) {
                double u = f[2].w[o * R + q];
                for (int64_t j = 0; j < R2; ++j)
                    for (int64_t i = 0; i < ci; ++i) {
                        double uv = u * f[0].w[j * ci + i];
                        for (int64_t s = 0; s < S; ++s)
                            Kh[(o * ci + i) * S + s] += uv * f[1].w[(q * R2 + j) * S + s];
                    }
            }
        break;
    }
    default:
        break;
    }
}

/* ---- one layer -------------------------------------------------------------------------------------- */

int fit_layer(const rs_model *m, int node, decomp_result *r, const float *x, const float *xt, int n,
              const fit_options *o, rs_err *e)
{
    fit_options dflt;
    if (!o) {
        fit_default_options(&dflt);
        o = &dflt;
    }
    layer_geom g;
    if (geom_of(m, node, &g, e))
        return -1;
    head hd;
    if (head_of(r, &hd))
        return 0; /* slice-svd: its last factor is a fixed summation; kept as fitted to the weights */
    if (n < 1 || !x || !xt)
        return rs_fail(e, "%s: fitting to outputs needs calibration images", g.node->name);
    if (g.group != 1 || (g.node->op == RS_OP_GEMM && (g.node->trans_a || g.node->alpha == 0.0f)))
        return rs_fail(e, "%s: cannot fit a %s layer with these attributes to its outputs", g.node->name,
                       model_op_name(g.node->op));
    decomp_factor *fl = &r->f[hd.last];
    float beta = g.node->op == RS_OP_GEMM ? g.node->beta : 1.0f, alpha = fl->alpha;
    int centre = g.bias && g.bias_len == g.c_out && fl->bias && beta != 0.0f;
    stats st;
    memset(&st, 0, sizeof st);
    int rc = collect(&g, r, &hd, x, xt, n, o, &st, e);
    int co = (int)g.c_out, R = hd.rrr_rank > 0 ? hd.rrr_rank : 0;
    double *left = NULL, *right = NULL, *bias = NULL, *Kh = NULL, *K = NULL;
    if (rc == 0) {
        left = malloc((size_t)co * (R ? R : st.pz) * sizeof *left);
        right = R ? malloc((size_t)R * st.pz * sizeof *right) : NULL;
        bias = malloc((size_t)co * sizeof *bias);
        if (!left || (R && !right) || !bias)
            rc = rs_fail(e, "%s: out of memory", g.node->name);
    }
    double *G = NULL;
    if (rc == 0 && R && o->downstream) {
        G = malloc((size_t)co * co * sizeof *G);
        if (!G)
            rc = rs_fail(e, "%s: out of memory", g.node->name);
        else if (!downstream_metric(m, node, g.c_out, G)) {
            free(G);
            G = NULL;
        }
    }
    if (rc == 0)
        rc = solve_head(&g, &hd, &st, centre, o->eig_floor, G, left, right, bias, e);
    free(G);
    if (rc == 0) {
        int pz = st.pz;
        if (R) {
            decomp_factor *f0 = &r->f[hd.prefix], *f1 = &r->f[hd.prefix + 1];
            /* first head factor: right (R × pz); dense MatMul stores (K, R) */
            int nk0 = f0->op != RS_OP_MATMUL, nk1 = f1->op != RS_OP_MATMUL;
            for (int t = 0; t < R; ++t)
                for (int l = 0; l < pz; ++l)
                    f0->w[nk0 ? (size_t)t * pz + l : (size_t)l * R + t] = (float)right[(size_t)t * pz + l];
            /* second: left (C_out × R), in units of the factor's alpha */
            for (int i = 0; i < co; ++i)
                for (int t = 0; t < R; ++t)
                    f1->w[nk1 ? (size_t)i * R + t : (size_t)t * co + i] = (float)(left[(size_t)i * R + t] / alpha);
        } else {
            for (size_t i = 0; i < (size_t)co * pz; ++i)
                fl->w[i] = (float)left[i];
        }
        if (centre)
            for (int i = 0; i < co; ++i)
                fl->bias[i] = (float)(bias[i] / beta);
        /* the new factors' weight error, from the reconstructed kernel */
        Kh = malloc((size_t)g.weight_numel * sizeof *Kh);
        K = geom_weight(&g);
        if (!Kh || !K) {
            rc = rs_fail(e, "%s: out of memory", g.node->name);
        } else {
            chain_kernel(&g, r, Kh);
            double num = 0, den = 0;
            for (int64_t i = 0; i < g.weight_numel; ++i) {
                num += (K[i] - Kh[i]) * (K[i] - Kh[i]);
                den += K[i] * K[i];
            }
            r->weight_error = den > 0 ? sqrt(num / den) : 0.0;
        }
    }
    stats_free(&st);
    free(left), free(right), free(bias), free(Kh), free(K);
    return rc;
}

/* ---- a plan ------------------------------------------------------------------------------------------ */

static float *capture(const rs_model *m, int node, const float *calib, int n, rs_err *e)
{
    int v = m->nodes[node].in[0];
    size_t per = (size_t)model_value_numel(&m->values[v]), tot;
    if (rs_size_mul(per, (size_t)n, &tot) || tot > RS_MAX_ALLOC / sizeof(float)) {
        rs_fail(e, "%s: %d calibration images are too many for this layer", m->nodes[node].name, n);
        return NULL;
    }
    float *out = malloc(tot * sizeof *out);
    if (!out) {
        rs_fail(e, "%s: out of memory", m->nodes[node].name);
        return NULL;
    }
    if (infer_capture(m, calib, n, v, out, e)) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- joint refinement ----------------------------------------------------------------------- */

static int teacher_logits(void *user, const float *x, int n, float *out, rs_err *e)
{
    return infer_forward((infer_ctx *)user, x, n, out, e);
}

/* The original network's class on each calibration image (train_data wants labels; with the
 * distillation weight 1 the loss never reads them). NULL when orig is not a classifier. */
static uint8_t *teacher_classes(infer_ctx *ic, const float *calib, int n, rs_err *e)
{
    enum { CHUNK = 64 };
    int k = infer_out_features(ic), in = infer_in_features(ic);
    if (k < 2 || k > 256)
        return NULL;
    uint8_t *lab = malloc((size_t)n);
    float *lg = malloc((size_t)CHUNK * (size_t)k * sizeof *lg);
    int rc = lab && lg ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i += CHUNK) {
        int nb = n - i < CHUNK ? n - i : CHUNK;
        rc = infer_forward(ic, calib + (size_t)i * (size_t)in, nb, lg, e);
        for (int b = 0; rc == 0 && b < nb; ++b) {
            int best = 0;
            for (int c = 1; c < k; ++c)
                if (lg[b * k + c] > lg[b * k + best])
                    best = c;
            lab[i + b] = (uint8_t)best;
        }
    }
    free(lg);
    if (rc) {
        free(lab);
        return NULL;
    }
    return lab;
}

/* Mean KL(softmax(teacher / T) ‖ softmax(m / T)) over the calibration images: what the
 * refinement minimises (its T² factor left out). */
static int distill_gap(const rs_model *m, infer_ctx *teacher, const float *calib, int n, double temp, double *kl,
                       rs_err *e)
{
    enum { CHUNK = 64 };
    infer_ctx *ic = infer_create(m, 1, e);
    if (!ic)
        return -1;
    int k = infer_out_features(ic), in = infer_in_features(ic), rc = 0;
    float *a = malloc((size_t)CHUNK * (size_t)k * sizeof *a), *b = malloc((size_t)CHUNK * (size_t)k * sizeof *b);
    double sum = 0;
    if (!a || !b || k != infer_out_features(teacher))
        rc = rs_fail(e, "refinement: out of memory or the nets' outputs differ");
    for (int i = 0; rc == 0 && i < n; i += CHUNK) {
        int nb = n - i < CHUNK ? n - i : CHUNK;
        const float *x = calib + (size_t)i * (size_t)in;
        if ((rc = infer_forward(teacher, x, nb, a, e)) != 0 || (rc = infer_forward(ic, x, nb, b, e)) != 0)
            break;
        for (int r = 0; r < nb; ++r) {
            const float *p = a + (size_t)r * k, *q = b + (size_t)r * k;
            double mp = p[0], mq = q[0], zp = 0, zq = 0, s = 0;
            for (int c = 1; c < k; ++c)
                mp = fmax(mp, p[c]), mq = fmax(mq, q[c]);
            for (int c = 0; c < k; ++c)
                zp += exp((p[c] - mp) / temp), zq += exp((q[c] - mq) / temp);
            for (int c = 0; c < k; ++c) {
                double lp = (p[c] - mp) / temp - log(zp), lq = (q[c] - mq) / temp - log(zq);
                s += exp(lp) * (lp - lq);
            }
            sum += s;
        }
    }
    free(a), free(b);
    infer_free(ic);
    *kl = n > 0 ? sum / n : 0;
    return rc;
}

/* Every parameter of the factorized m adjusted jointly so that its logits on the calibration
 * images match orig's (distillation only, no labels, no augmentation). Kept only when it lowered
 * that gap on the calibration images (ill-conditioned factors, e.g. CP's, can make SGD worsen
 * it); nets training cannot take (an op it lacks, a non-classifier output) or a run that
 * diverges keep the layer-wise fit too: 0 with m unchanged. RS_CANCELLED through o->progress. */
static int refine(rs_model *m, const rs_model *orig, const float *calib, int n, const fit_options *o, rs_err *e)
{
    rs_err e2 = {{0}};
    infer_ctx *ic = infer_create(orig, o->nthreads, &e2);
    uint8_t *lab = ic ? teacher_classes(ic, calib, n, &e2) : NULL;
    rs_model *w = lab ? model_clone(m) : NULL;
    int rc = 0, chw = ic ? infer_in_features(ic) : 0;
    const rs_value *iv = &m->values[m->input];
    if (w) {
        train_data td = {n, chw, 1, 1, NULL, calib, lab};
        if (iv->ndim == 4)
            td.c = (int)iv->dims[1], td.h = (int)iv->dims[2], td.w = (int)iv->dims[3];
        train_options to;
        train_default_options(&to);
        to.epochs = o->refine_epochs;
        to.lr = (float)o->refine_lr;
        to.schedule = TRAIN_SCHED_COSINE;
        to.warmup = 0.05f;
        to.augment = 0;
        to.weight_decay = 0;
        to.nthreads = o->nthreads;
        to.teacher = teacher_logits;
        to.teacher_user = ic;
        to.distill_alpha = 1.0f;
        to.distill_temp = (float)o->refine_temp;
        to.progress = o->progress;
        to.progress_user = o->user;
        double before = 0, after = 0;
        rc = distill_gap(m, ic, calib, n, o->refine_temp, &before, &e2);
        if (rc == 0)
            rc = train_model(w, &td, NULL, &to, NULL, &e2);
        if (rc == 0 && guard_model_finite(w, &e2) == 0 &&
            distill_gap(w, ic, calib, n, o->refine_temp, &after, &e2) == 0 && after < before) {
            for (int v = 0; v < m->n_values; ++v) /* the shapes are m's: only values move */
                if (m->values[v].is_const && m->values[v].dtype == RS_DT_FLOAT && m->values[v].f)
                    memcpy(m->values[v].f, w->values[v].f,
                           (size_t)model_value_numel(&m->values[v]) * sizeof(float));
        } else if (rc == RS_CANCELLED) {
            rs_fail(e, "cancelled");
        } else {
            rc = 0;
        }
    }
    model_free(w);
    free(lab);
    infer_free(ic);
    return rc;
}

int fit_plan_apply(rs_model *m, const rs_plan *p, const float *calib, int n, const fit_options *o,
                   plan_layer_report *report, rs_err *e)
{
    fit_options dflt;
    if (!o) {
        fit_default_options(&dflt);
        o = &dflt;
    }
    if (plan_validate(m, p, e))
        return -1;
    if (!calib || n < 1)
        return rs_fail(e, "fitting to outputs needs calibration images");
    int np = p ? p->n : 0, rc = 0;
    rs_model *orig = model_clone(m);
    int *order = malloc((size_t)(np ? np : 1) * sizeof *order), *pos = malloc((size_t)(np ? np : 1) * sizeof *pos);
    if (!orig || !order || !pos) {
        rc = rs_fail(e, "out of memory");
        goto done;
    }
    /* graph order: a layer's input must come from the already-compressed prefix */
    int cnt = 0;
    for (int i = 0; i < np; ++i) {
        if (report)
            memset(&report[i], 0, sizeof report[i]);
        if (p->entries[i].method == DECOMP_NONE)
            continue;
        order[cnt] = i;
        pos[cnt++] = model_find_layer(orig, p->entries[i].layer);
    }
    for (int i = 1; i < cnt; ++i)
        for (int j = i; j > 0 && pos[j - 1] > pos[j]; --j) {
            int t = pos[j], u = order[j];
            pos[j] = pos[j - 1], order[j] = order[j - 1];
            pos[j - 1] = t, order[j - 1] = u;
        }
    for (int k = 0; k < cnt && rc == 0; ++k) {
        const plan_entry *ent = &p->entries[order[k]];
        double t0 = rs_now();
        int node = model_find_layer(m, ent->layer);
        float *x = capture(orig, pos[k], calib, n, e), *xt = NULL;
        if (!x) {
            rc = -1;
            break;
        }
        if (o->sequential && k > 0 && !(xt = capture(m, node, calib, n, e))) {
            free(x);
            rc = -1;
            break;
        }
        decomp_result r;
        rc = decomp_layer(m, node, ent->method, ent->rank, ent->rank2, o->decomp, &r, e);
        if (rc == 0) {
            rc = fit_layer(m, node, &r, x, xt ? xt : x, n, o, e);
            if (rc == 0 && decomp_apply(m, node, &r, e))
                rc = -1;
            if (rc == 0 && guard_model_finite(m, e) != 0)
                rc = rs_failctx(e, "%s: fitting %s to the outputs gave non-finite factors", ent->layer,
                                decomp_method_name(ent->method));
            if (rc == 0 && report) {
                report[order[k]].weight_error = r.weight_error;
                report[order[k]].degenerate = r.degenerate;
                report[order[k]].seconds = rs_now() - t0;
            }
            decomp_result_free(&r);
        }
        free(x), free(xt);
        if (rc == 0 && o->progress && o->progress(o->user, (double)(k + 1) / cnt, "fit"))
            rc = RS_CANCELLED;
    }
    if (rc == 0 && cnt > 0 && o->refine_epochs > 0)
        rc = refine(m, orig, calib, n, o, e);
done:
    model_free(orig);
    free(order), free(pos);
    return rc;
}
