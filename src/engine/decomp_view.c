/* decomp_view.c — looking at a layer: its weight as matrices (unfoldings, spatial reshaping,
 * slices) and their spectra, and the relative error of a factor chain's output on a batch
 * (a direct evaluation of the layer and of its chain). */
#include "rankscope/decomp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geom.h"
#include "layer_eval.h"
#include "linalg.h"
#include "rankscope/infer.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- output error on a batch: a direct evaluation of one layer and of its chain ----------------- */

int decomp_output_error_on(const rs_model *m, int node, const decomp_result *r,
                           const float *layer_in, int n, double *rel_err, rs_err *e)
{
    layer_geom g;
    if (geom_of(m, node, &g, e))
        return -1;
    if (!r || r->n_factors < 1 || n < 1 || !layer_in)
        return rs_fail(e, "%s: output error needs a result and at least one image", g.node->name);
    const rs_node *nd = g.node;
    /* workspace: the largest activation of the chain, twice (ping-pong), plus the reference */
    size_t big = (size_t)(g.c_in * g.h_in * g.w_in), ref_n = (size_t)(g.c_out * g.h_out * g.w_out);
    for (int i = 0; i < r->n_factors; ++i) {
        size_t s = (size_t)(r->f[i].out_channels * r->f[i].out_h * r->f[i].out_w);
        if (s > big)
            big = s;
    }
    /* im2col workspace for the group-1 convolutions of the layer and its chain (one image) */
    size_t col_n = g.conv ? (size_t)(g.c_in * g.kh * g.kw * g.h_out * g.w_out) : 1;
    for (int i = 0; i < r->n_factors; ++i) {
        const decomp_factor *f = &r->f[i];
        size_t s = f->op == RS_OP_CONV && f->group == 1
                       ? (size_t)(f->in_channels * f->w_dims[2] * f->w_dims[3] * f->out_h * f->out_w) : 1;
        if (s > col_n)
            col_n = s;
    }
    size_t tot;
    if (rs_size_mul(big, (size_t)n, &tot) || tot > RS_MAX_ALLOC / sizeof(float) / 3 ||
        col_n > RS_MAX_ALLOC / sizeof(float))
        return rs_fail(e, "%s: calibration batch of %d images too large", nd->name, n);
    float *ref = malloc(ref_n * (size_t)n * sizeof(float));
    float *a = malloc(tot * sizeof(float)), *b = malloc(tot * sizeof(float));
    float *col = malloc(col_n * sizeof(float));
    if (!ref || !a || !b || !col) {
        free(ref), free(a), free(b), free(col);
        return rs_fail(e, "%s: out of memory", nd->name);
    }
    if (g.conv) {
        le_conv_shape sh = {g.c_in, g.h_in, g.w_in, g.c_out, g.kh, g.kw, g.group,
                            nd->strides, nd->pads, nd->dilations, g.h_out, g.w_out};
        le_conv(&sh, layer_in, n, g.w, g.bias, ref, col);
    } else
        le_dense(layer_in, n, g.c_in, g.c_out, g.w, g.dense_nk, g.bias, g.bias_len,
                   nd->op == RS_OP_GEMM ? nd->alpha : 1.0f, nd->op == RS_OP_GEMM ? nd->beta : 1.0f, ref);
    const float *cur = layer_in;
    int64_t c = g.c_in, h = g.h_in, w = g.w_in;
    for (int i = 0; i < r->n_factors; ++i) {
        const decomp_factor *f = &r->f[i];
        float *dst = (i % 2 == 0) ? a : b;
        if (f->op == RS_OP_CONV) {
            le_conv_shape sh = {c, h, w, f->out_channels, f->w_dims[2], f->w_dims[3], f->group,
                                f->strides, f->pads, f->dilations, f->out_h, f->out_w};
            le_conv(&sh, cur, n, f->w, f->bias, dst, col);
        } else
            le_dense(cur, n, f->in_channels, f->out_channels, f->w, f->op == RS_OP_GEMM, f->bias,
                       f->bias_len, f->alpha, f->beta, dst);
        cur = dst;
        c = f->out_channels, h = f->out_h, w = f->out_w;
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < ref_n * (size_t)n; ++i) {
        double d = (double)cur[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    *rel_err = den > 0 ? sqrt(num / den) : sqrt(num);
    free(ref), free(a), free(b), free(col);
    return 0;
}

int decomp_output_error(const rs_model *m, int node, const decomp_result *r, const float *calib_x,
                        int n, double *rel_err, rs_err *e)
{
    layer_geom g;
    if (geom_of(m, node, &g, e))
        return -1;
    size_t per = (size_t)model_value_numel(&m->values[g.node->in[0]]), tot;
    if (n < 1 || rs_size_mul(per, (size_t)n, &tot) || tot > RS_MAX_ALLOC / sizeof(float))
        return rs_fail(e, "%s: bad calibration batch of %d images", g.node->name, n);
    float *in = malloc(tot * sizeof *in);
    if (!in)
        return rs_fail(e, "%s: out of memory", g.node->name);
    int rc = infer_capture(m, calib_x, n, g.node->in[0], in, e);
    if (rc == 0)
        rc = decomp_output_error_on(m, node, r, in, n, rel_err, e);
    free(in);
    return rc;
}

/* ---- matrices and spectra -------------------------------------------------------------------------- */

static const char *const view_names[DECOMP_VIEW_COUNT] = {"dense", "mode-0", "mode-1", "spatial",
                                                          "slices"};

const char *decomp_view_name(decomp_view v)
{
    return v >= 0 && v < DECOMP_VIEW_COUNT ? view_names[v] : "?";
}

unsigned decomp_views_for(const rs_model *m, int node)
{
    layer_geom g;
    if (geom_of(m, node, &g, NULL))
        return 0;
    if (!g.conv)
        return 1u << DECOMP_VIEW_DENSE;
    return (1u << DECOMP_VIEW_MODE0) | (1u << DECOMP_VIEW_MODE1) | (1u << DECOMP_VIEW_SPATIAL) |
           (1u << DECOMP_VIEW_SLICES);
}

/* The public views as geometry layouts (DENSE and MODE0 are the same arrangement). */
static geom_layout layout_of(decomp_view view)
{
    return view == DECOMP_VIEW_MODE1 ? GEOM_MODE1 : view == DECOMP_VIEW_SPATIAL ? GEOM_SPATIAL : GEOM_MODE0;
}

int decomp_matrix(const rs_model *m, int node, decomp_view view, double **mat, int *rows, int *cols,
                  rs_err *e)
{
    layer_geom g;
    *mat = NULL;
    if (geom_of(m, node, &g, e))
        return -1;
    if (!(decomp_views_for(m, node) & (1u << view)) || view == DECOMP_VIEW_SLICES)
        return rs_fail(e, "%s: view %s does not apply to a %s layer", g.node->name,
                       decomp_view_name(view), model_op_name(g.node->op));
    double *K = geom_weight(&g);
    double *A = malloc((size_t)(g.weight_numel ? g.weight_numel : 1) * sizeof *A);
    if (!K || !A) {
        free(K), free(A);
        return rs_fail(e, "%s: out of memory", g.node->name);
    }
    geom_matrix(&g, K, layout_of(view), A, rows, cols);
    free(K);
    *mat = A;
    return 0;
}

void decomp_spectrum_free(decomp_spectrum *s)
{
    if (!s)
        return;
    free(s->sigma);
    free(s->energy);
    memset(s, 0, sizeof *s);
}

int decomp_spectrum_of(const rs_model *m, int node, decomp_view view, decomp_spectrum *out, rs_err *e)
{
    memset(out, 0, sizeof *out);
    out->view = view;
    rs_gsl_init();
    layer_geom g;
    if (geom_of(m, node, &g, e))
        return -1;
    if (!(decomp_views_for(m, node) & (1u << view)))
        return rs_fail(e, "%s: view %s does not apply to a %s layer", g.node->name,
                       decomp_view_name(view), model_op_name(g.node->op));
    double *K = geom_weight(&g);
    if (!K)
        return rs_fail(e, "%s: out of memory", g.node->name);
    int rc = 0;
    if (view == DECOMP_VIEW_SLICES) {
        int64_t ns = g.c_out * (g.c_in / g.group);
        out->rows = (int)g.kh;
        out->cols = (int)g.kw;
        out->n = (int)min64(g.kh, g.kw);
        out->n_mats = (int)ns;
        out->sigma = malloc((size_t)(ns * out->n) * sizeof(double));
        out->energy = malloc((size_t)(ns * out->n) * sizeof(double));
        if (!out->sigma || !out->energy)
            rc = rs_fail(e, "%s: out of memory", g.node->name);
        for (int64_t k = 0; k < ns && rc == 0; ++k)
            rc = la_svd(K + k * g.kh * g.kw, out->rows, out->cols, NULL, out->sigma + k * out->n, NULL, e);
    } else {
        double *A = malloc((size_t)g.weight_numel * sizeof *A);
        if (!A)
            rc = rs_fail(e, "%s: out of memory", g.node->name);
        else
            geom_matrix(&g, K, layout_of(view), A, &out->rows, &out->cols);
        out->n = out->rows < out->cols ? out->rows : out->cols;
        out->n_mats = 1;
        out->sigma = rc ? NULL : malloc((size_t)out->n * sizeof(double));
        out->energy = rc ? NULL : malloc((size_t)out->n * sizeof(double));
        if (rc == 0 && (!out->sigma || !out->energy))
            rc = rs_fail(e, "%s: out of memory", g.node->name);
        if (rc == 0)
            rc = la_svd(A, out->rows, out->cols, NULL, out->sigma, NULL, e);
        free(A);
    }
    free(K);
    if (rc) {
        decomp_spectrum_free(out);
        return rs_failctx(e, "%s: %s spectrum", g.node->name, decomp_view_name(view));
    }
    for (int k = 0; k < out->n_mats; ++k) {
        const double *s = out->sigma + (size_t)k * out->n;
        double *en = out->energy + (size_t)k * out->n, tot = 0, acc = 0;
        for (int i = 0; i < out->n; ++i)
            tot += s[i] * s[i];
        for (int i = 0; i < out->n; ++i) {
            acc += s[i] * s[i];
            en[i] = tot > 0 ? acc / tot : 1.0;
        }
    }
    return 0;
}
