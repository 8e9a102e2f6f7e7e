/* decomp.c — method registry, factor-chain layout and costs, decomp_layer and
 * decomp_apply. Output error and spectra are in decomp_view.c; the per-method mathematics in
 * decomp_svd.c, decomp_cp.c and decomp_tucker.c; the chain *shapes* are laid out here, in one place, so the
 * analytic costs (decomp_cost_of) and the real factor nodes can never disagree. */
#include "rankscope/decomp.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decomp_internal.h"

static const char *const method_names[DECOMP_COUNT] = {"none", "svd", "slice-svd", "spatial-svd",
                                                       "cp", "tucker2"};

const char *decomp_method_name(decomp_method method)
{
    return method >= 0 && method < DECOMP_COUNT ? method_names[method] : "?";
}

static int name_eq(const char *a, const char *b)
{
    for (; *a && *b; ++a, ++b)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

int decomp_method_parse(const char *s, decomp_method *out, rs_err *e)
{
    static const struct {
        const char *name;
        decomp_method m;
    } aliases[] = {{"slice_svd", DECOMP_SLICE_SVD},   {"slice", DECOMP_SLICE_SVD},
                   {"spatial_svd", DECOMP_SPATIAL_SVD}, {"spatial", DECOMP_SPATIAL_SVD},
                   {"tucker", DECOMP_TUCKER2},          {"tucker-2", DECOMP_TUCKER2},
                   {"cp4", DECOMP_CP},                  {"cp-4", DECOMP_CP}};
    if (!s)
        s = "";
    for (int i = 0; i < DECOMP_COUNT; ++i)
        if (name_eq(s, method_names[i])) {
            *out = (decomp_method)i;
            return 0;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; ++i)
        if (name_eq(s, aliases[i].name)) {
            *out = aliases[i].m;
            return 0;
        }
    return rs_fail(e, "unknown method \"%s\" (expected none, svd, slice-svd, spatial-svd, cp, tucker2)",
                   s);
}

/* ---- which methods apply ------------------------------------------------------------------------ */

int decomp_check(const rs_model *m, int node, decomp_method method, rs_err *e)
{
    if (!m || node < 0 || node >= m->n_nodes)
        return rs_fail(e, "decomp: node index %d out of range", node);
    const rs_node *n = &m->nodes[node];
    if (method == DECOMP_NONE)
        return 0;
    if (method <= DECOMP_NONE || method >= DECOMP_COUNT)
        return rs_fail(e, "%s: unknown method %d", n->name, (int)method);
    if (!model_is_weighted(m, node))
        return rs_fail(e, "%s: %s layer has no weight to factorize", n->name, model_op_name(n->op));
    if (method == DECOMP_SVD) {
        if (n->op == RS_OP_CONV)
            return rs_fail(e, "%s: svd is for dense (Gemm/MatMul) layers; use spatial-svd, cp or tucker2",
                           n->name);
        if (n->op == RS_OP_GEMM && n->trans_a)
            return rs_fail(e, "%s: svd of a Gemm with transA = 1 is not supported", n->name);
        return 0;
    }
    if (n->op != RS_OP_CONV)
        return rs_fail(e, "%s: %s needs a Conv layer (this is %s; use svd)", n->name,
                       decomp_method_name(method), model_op_name(n->op));
    if (n->group != 1)
        return rs_fail(e, "%s: %s needs a Conv with group 1 (group is %lld: depthwise/grouped "
                       "convolutions are not factorized)",
                       n->name, decomp_method_name(method), (long long)n->group);
    return 0;
}

unsigned decomp_methods_for(const rs_model *m, int node)
{
    unsigned mask = 1u << DECOMP_NONE;
    for (int k = 1; k < DECOMP_COUNT; ++k)
        if (decomp_check(m, node, (decomp_method)k, NULL) == 0)
            mask |= 1u << k;
    return mask;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int clamp_int(int64_t v) { return v > 1 << 30 ? 1 << 30 : (int)v; }

static int max_rank_geom(const layer_geom *g, decomp_method method, int which)
{
    switch (method) {
    case DECOMP_SVD:
        return which ? 0 : clamp_int(min64(g->c_out, g->c_in));
    case DECOMP_SLICE_SVD:
        return which ? 0 : clamp_int(min64(g->kh, g->kw));
    case DECOMP_SPATIAL_SVD:
        return which ? 0 : clamp_int(min64(g->c_in * g->kh, g->c_out * g->kw));
    case DECOMP_CP: {
        if (which)
            return 0;
        int64_t d[4] = {g->c_out, g->c_in, g->kh, g->kw}, big = 0;
        for (int i = 1; i < 4; ++i)
            if (d[i] > d[big])
                big = i;
        int64_t p = 1;
        for (int i = 0; i < 4; ++i)
            if (i != big)
                p *= d[i];
        return clamp_int(p);
    }
    case DECOMP_TUCKER2:
        return which ? clamp_int(min64(g->c_in, g->c_out * g->kh * g->kw))
                     : clamp_int(min64(g->c_out, g->c_in * g->kh * g->kw));
    default:
        return 0;
    }
}

int decomp_max_rank(const rs_model *m, int node, decomp_method method, int which)
{
    layer_geom g;
    if (method == DECOMP_NONE || decomp_check(m, node, method, NULL) || geom_of(m, node, &g, NULL))
        return 0;
    return max_rank_geom(&g, method, which);
}

/* ---- chain layout: shapes and costs of the factor nodes ---------------------------------------- */

static int64_t extent(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1, int64_t d)
{
    int64_t num = in + p0 + p1 - (d * (k - 1) + 1);
    return num < 0 ? 0 : num / s + 1;
}

static decomp_factor *layout_conv(decomp_result *r, int64_t c_in, int64_t c_out, int64_t kh,
                                  int64_t kw, int64_t group)
{
    decomp_factor *f = &r->f[r->n_factors++];
    memset(f, 0, sizeof *f);
    f->op = RS_OP_CONV;
    f->w_ndim = 4;
    f->w_dims[0] = c_out;
    f->w_dims[1] = c_in / group;
    f->w_dims[2] = kh;
    f->w_dims[3] = kw;
    f->in_channels = c_in;
    f->out_channels = c_out;
    f->group = group;
    f->strides[0] = f->strides[1] = 1;
    f->dilations[0] = f->dilations[1] = 1;
    f->alpha = f->beta = 1.0f;
    return f;
}

/* kh×1 factor: the vertical half of the original attributes. */
static void set_vertical(decomp_factor *f, const rs_node *n)
{
    f->strides[0] = n->strides[0];
    f->pads[0] = n->pads[0];
    f->pads[2] = n->pads[2];
    f->dilations[0] = n->dilations[0];
}

/* 1×kw factor: the horizontal half. */
static void set_horizontal(decomp_factor *f, const rs_node *n)
{
    f->strides[1] = n->strides[1];
    f->pads[1] = n->pads[1];
    f->pads[3] = n->pads[3];
    f->dilations[1] = n->dilations[1];
}

static decomp_factor *layout_dense(decomp_result *r, rs_op op, int64_t k_in, int64_t n_out)
{
    decomp_factor *f = &r->f[r->n_factors++];
    memset(f, 0, sizeof *f);
    f->op = op;
    f->w_ndim = 2;
    if (op == RS_OP_GEMM) {
        f->w_dims[0] = n_out;
        f->w_dims[1] = k_in;
        f->trans_b = 1;
    } else {
        f->w_dims[0] = k_in;
        f->w_dims[1] = n_out;
    }
    f->in_channels = k_in;
    f->out_channels = n_out;
    f->group = 1;
    f->alpha = f->beta = 1.0f;
    f->out_h = f->out_w = 1;
    return f;
}

static int resolve_rank2(const layer_geom *g, decomp_method method, int rank, int rank2)
{
    if (method != DECOMP_TUCKER2)
        return 0;
    if (rank2 > 0)
        return rank2;
    int mx = max_rank_geom(g, DECOMP_TUCKER2, 1);
    return rank < mx ? rank : mx;
}

static int check_rank(const layer_geom *g, decomp_method method, int rank, int rank2, rs_err *e)
{
    int mx = max_rank_geom(g, method, 0);
    if (rank < 1 || rank > mx)
        return rs_fail(e, "%s: rank %d out of range 1..%d for %s", g->node->name, rank, mx,
                       decomp_method_name(method));
    if (method == DECOMP_TUCKER2) {
        int mx2 = max_rank_geom(g, method, 1);
        if (rank2 < 1 || rank2 > mx2)
            return rs_fail(e, "%s: input rank %d out of range 1..%d for tucker2", g->node->name, rank2,
                           mx2);
    }
    return 0;
}

/* Lays out r->f[] (shapes, attributes, costs; no weights) for method at (rank, rank2), which must
 * already be checked and resolved. */
static int chain_layout(const layer_geom *g, decomp_method method, int rank, int rank2,
                        decomp_result *r, rs_err *e)
{
    const rs_node *n = g->node;
    int64_t ci = g->c_in, co = g->c_out, kh = g->kh, kw = g->kw, R = rank;
    r->n_factors = 0;
    r->method = method;
    r->rank = rank;
    r->rank2 = method == DECOMP_TUCKER2 ? rank2 : 0;
    switch (method) {
    case DECOMP_SVD: {
        decomp_factor *f0 = layout_dense(r, n->op, ci, R);
        f0->trans_a = n->trans_a;
        decomp_factor *f1 = layout_dense(r, n->op, R, co);
        if (n->op == RS_OP_GEMM) {
            f1->alpha = n->alpha;
            f1->beta = n->beta;
        }
        break;
    }
    case DECOMP_SLICE_SVD: {
        /* overflow guard: the widest intermediate has C_in·C_out·r channels */
        size_t ch, big;
        if (rs_size_mul((size_t)ci, (size_t)co, &ch) || rs_size_mul(ch, (size_t)R, &big) ||
            big > (size_t)1 << 28 || rs_size_mul(ch, (size_t)co, &big) || big > RS_MAX_ALLOC / 4)
            return rs_fail(e, "%s: slice-svd chain for %lldx%lld channels is too large", n->name,
                           (long long)co, (long long)ci);
        set_vertical(layout_conv(r, ci, ci * co * R, kh, 1, ci), n);
        set_horizontal(layout_conv(r, ci * co * R, ci * co, 1, kw, ci * co), n);
        layout_conv(r, ci * co, co, 1, 1, 1);
        break;
    }
    case DECOMP_SPATIAL_SVD:
        set_vertical(layout_conv(r, ci, R, kh, 1, 1), n);
        set_horizontal(layout_conv(r, R, co, 1, kw, 1), n);
        break;
    case DECOMP_CP:
        layout_conv(r, ci, R, 1, 1, 1);
        set_vertical(layout_conv(r, R, R, kh, 1, R), n);
        set_horizontal(layout_conv(r, R, R, 1, kw, R), n);
        layout_conv(r, R, co, 1, 1, 1);
        break;
    case DECOMP_TUCKER2: {
        layout_conv(r, ci, rank2, 1, 1, 1);
        decomp_factor *core = layout_conv(r, rank2, R, kh, kw, 1);
        set_vertical(core, n);
        set_horizontal(core, n);
        layout_conv(r, R, co, 1, 1, 1);
        break;
    }
    default:
        return rs_fail(e, "%s: no factorization for method %s", n->name, decomp_method_name(method));
    }
    /* propagate spatial sizes, count costs (model.h's rule), and check the chain ends where the
     * layer does */
    int64_t h = g->h_in, w = g->w_in;
    r->cost.params_after = r->cost.macs_after = 0;
    for (int i = 0; i < r->n_factors; ++i) {
        decomp_factor *f = &r->f[i];
        int64_t numel = f->w_dims[0] * f->w_dims[1];
        if (f->op == RS_OP_CONV) {
            numel *= f->w_dims[2] * f->w_dims[3];
            h = extent(h, f->w_dims[2], f->strides[0], f->pads[0], f->pads[2], f->dilations[0]);
            w = extent(w, f->w_dims[3], f->strides[1], f->pads[1], f->pads[3], f->dilations[1]);
            f->out_h = h;
            f->out_w = w;
            f->macs = f->out_channels * h * w * f->w_dims[1] * f->w_dims[2] * f->w_dims[3];
        } else {
            f->macs = f->in_channels * f->out_channels;
        }
        f->params = numel;
        if (i == r->n_factors - 1 && g->bias) {
            f->bias_len = g->bias_len;
            f->params += g->bias_len;
        }
        r->cost.params_after += f->params;
        r->cost.macs_after += f->macs;
    }
    if (g->conv && (h != g->h_out || w != g->w_out))
        return rs_fail(e, "%s: internal: %s chain ends at %lldx%lld, layer at %lldx%lld", n->name,
                       decomp_method_name(method), (long long)h, (long long)w, (long long)g->h_out,
                       (long long)g->w_out);
    r->cost.params_before = g->weight_numel + (g->bias ? g->bias_len : 0);
    r->cost.macs_before = g->conv ? g->c_out * g->h_out * g->w_out * (g->c_in / g->group) * g->kh * g->kw
                                  : g->c_in * g->c_out;
    return 0;
}

int decomp_cost_of(const rs_model *m, int node, decomp_method method, int rank, int rank2,
                   decomp_cost *out, rs_err *e)
{
    layer_geom g;
    memset(out, 0, sizeof *out);
    if (geom_of(m, node, &g, e))
        return -1;
    int64_t before_p = g.weight_numel + (g.bias ? g.bias_len : 0);
    int64_t before_m = g.conv ? g.c_out * g.h_out * g.w_out * (g.c_in / g.group) * g.kh * g.kw
                              : g.c_in * g.c_out;
    if (method == DECOMP_NONE) {
        out->params_before = out->params_after = before_p;
        out->macs_before = out->macs_after = before_m;
        return 0;
    }
    if (decomp_check(m, node, method, e))
        return -1;
    rank2 = resolve_rank2(&g, method, rank, rank2);
    if (check_rank(&g, method, rank, rank2, e))
        return -1;
    decomp_result r;
    memset(&r, 0, sizeof r);
    if (chain_layout(&g, method, rank, rank2, &r, e))
        return -1;
    *out = r.cost;
    return 0;
}

int decomp_break_even_rank(const rs_model *m, int node, decomp_method method, int by)
{
    layer_geom g;
    if (method == DECOMP_NONE || decomp_check(m, node, method, NULL) || geom_of(m, node, &g, NULL))
        return 0;
    /* costs grow with rank, so the last saving rank is found by scanning up until it stops */
    int best = 0, mx = max_rank_geom(&g, method, 0);
    for (int r = 1; r <= mx; ++r) {
        decomp_result res;
        memset(&res, 0, sizeof res);
        if (chain_layout(&g, method, r, resolve_rank2(&g, method, r, 0), &res, NULL))
            break;
        int saves = by == DECOMP_BY_MACS ? res.cost.macs_after < res.cost.macs_before
                                         : res.cost.params_after < res.cost.params_before;
        if (!saves)
            break;
        best = r;
    }
    return best;
}

/* ---- factorization ------------------------------------------------------------------------------- */

void decomp_opts_default(decomp_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_iter = 200;
    o->tol = 1e-8;
    o->restarts = 0;
    o->seed = 20261127u;
    o->ridge = 0.0;
    o->degenerate_ratio = 10.0;
    o->max_sensitivity = 1.5;
}

void decomp_result_free(decomp_result *r)
{
    if (!r)
        return;
    for (int i = 0; i < DECOMP_MAX_FACTORS; ++i) {
        free(r->f[i].w);
        free(r->f[i].bias);
    }
    free(r->fit);
    free(r->layer);
    memset(r, 0, sizeof *r);
}

/* Allocate every factor's weights (zeroed) and the last factor's bias copy. */
static int alloc_factors(const layer_geom *g, decomp_result *r, rs_err *e)
{
    for (int i = 0; i < r->n_factors; ++i) {
        decomp_factor *f = &r->f[i];
        size_t numel = 1;
        for (int d = 0; d < f->w_ndim; ++d)
            if (rs_size_mul(numel, (size_t)f->w_dims[d], &numel))
                return rs_fail(e, "%s: factor %d too large", g->node->name, i);
        if (numel > RS_MAX_ALLOC / sizeof(float))
            return rs_fail(e, "%s: factor %d too large (%zu weights)", g->node->name, i, numel);
        f->w = calloc(numel ? numel : 1, sizeof(float));
        if (!f->w)
            return rs_fail(e, "%s: out of memory for factor %d (%zu weights)", g->node->name, i, numel);
        if (f->bias_len > 0) {
            f->bias = malloc((size_t)f->bias_len * sizeof(float));
            if (!f->bias)
                return rs_fail(e, "%s: out of memory", g->node->name);
            memcpy(f->bias, g->bias, (size_t)f->bias_len * sizeof(float));
        }
    }
    return 0;
}

int decomp_layer(const rs_model *m, int node, decomp_method method, int rank, int rank2,
                 const decomp_opts *opts, decomp_result *out, rs_err *e)
{
    double t0 = rs_now();
    memset(out, 0, sizeof *out);
    decomp_opts defaults;
    if (!opts) {
        decomp_opts_default(&defaults);
        opts = &defaults;
    }
    rs_gsl_init();
    layer_geom g;
    if (decomp_check(m, node, method, e) || geom_of(m, node, &g, e))
        return -1;
    if (method == DECOMP_NONE)
        return rs_fail(e, "%s: method none has nothing to factorize", g.node->name);
    rank2 = resolve_rank2(&g, method, rank, rank2);
    if (check_rank(&g, method, rank, rank2, e))
        return -1;
    if (chain_layout(&g, method, rank, rank2, out, e) || alloc_factors(&g, out, e)) {
        decomp_result_free(out);
        return -1;
    }
    out->layer = rs_strdup(g.node->name);
    double *K = geom_weight(&g);
    if (!out->layer || !K) {
        free(K);
        decomp_result_free(out);
        return rs_fail(e, "%s: out of memory", g.node->name);
    }
    int rc;
    switch (method) {
    case DECOMP_SVD: rc = build_svd(&g, K, rank, out, e); break;
    case DECOMP_SLICE_SVD: rc = build_slice_svd(&g, K, rank, out, e); break;
    case DECOMP_SPATIAL_SVD: rc = build_spatial_svd(&g, K, rank, out, e); break;
    case DECOMP_CP: rc = build_cp(&g, K, rank, opts, out, e); break;
    case DECOMP_TUCKER2: rc = build_tucker2(&g, K, rank, rank2, opts, out, e); break;
    default: rc = rs_fail(e, "%s: unknown method", g.node->name); break;
    }
    free(K);
    if (rc) {
        decomp_result_free(out);
        return rc;
    }
    out->seconds = rs_now() - t0;
    return 0;
}

int decomp_time(const rs_model *m, int node, decomp_method method, int rank, int rank2,
                const decomp_opts *opts, int reps, double *seconds, rs_err *e)
{
    double best = INFINITY;
    for (int i = 0; i < (reps > 0 ? reps : 1); ++i) {
        decomp_result r;
        int rc = decomp_layer(m, node, method, rank, rank2, opts, &r, e);
        if (rc)
            return rc;
        best = r.seconds < best ? r.seconds : best;
        decomp_result_free(&r);
    }
    *seconds = best;
    return 0;
}

int decomp_bench(const rs_model *m, int reps, decomp_bench_row **rows, int *n, double *total,
                 rs_err *e)
{
    *rows = NULL;
    *n = 0;
    *total = 0;
    decomp_bench_row *t = calloc((size_t)(m->n_nodes ? m->n_nodes : 1) * DECOMP_COUNT, sizeof *t);
    if (!t)
        return rs_fail(e, "out of memory");
    int k = 0;
    for (int node = 0; node < m->n_nodes; ++node)
        for (int meth = 1; meth < DECOMP_COUNT; ++meth) {
            if (decomp_check(m, node, (decomp_method)meth, NULL))
                continue;
            int mx = decomp_max_rank(m, node, (decomp_method)meth, 0), r = mx / 2 > 0 ? mx / 2 : 1, r2 = 0;
            if (meth == DECOMP_CP)
                r = mx < 16 ? mx : 16;
            if (meth == DECOMP_TUCKER2) {
                int mx2 = decomp_max_rank(m, node, (decomp_method)meth, 1);
                r2 = mx2 / 2 > 0 ? mx2 / 2 : 1;
            }
            double sec;
            int rc = decomp_time(m, node, (decomp_method)meth, r, r2, NULL, reps, &sec, e);
            if (rc) {
                free(t);
                return rc;
            }
            t[k++] = (decomp_bench_row){node, (decomp_method)meth, r, r2, sec};
            *total += sec;
        }
    *rows = t;
    *n = k;
    return 0;
}

/* ---- splicing into the graph ---------------------------------------------------------------------- */

/* A free value name in name[len]: base, else base_2, base_3 ... */
static int free_value_name(const rs_model *m, const char *base, char *name, size_t len, rs_err *e)
{
    snprintf(name, len, "%.200s", base);
    for (int k = 2; model_find_value(m, name) >= 0; ++k) {
        if (k > 10000)
            return rs_fail(e, "cannot find a free name for \"%s\"", base);
        snprintf(name, len, "%.200s_%d", base, k);
    }
    return 0;
}

static int add_unique_value(rs_model *m, const char *base, rs_err *e)
{
    char name[256];
    return free_value_name(m, base, name, sizeof name, e) ? -1 : model_add_value(m, name, e);
}

static int add_const(rs_model *m, const char *base, const float *data, int ndim, const int64_t *dims,
                     rs_err *e)
{
    char name[256];
    return free_value_name(m, base, name, sizeof name, e) ? -1
                                                          : model_add_const(m, name, ndim, dims, data, e);
}

static int unique_node_name(const rs_model *m, const char *base, char *out, size_t len)
{
    snprintf(out, len, "%.200s", base);
    for (int k = 2; model_find_node(m, out) >= 0; ++k) {
        if (k > 10000)
            return -1;
        snprintf(out, len, "%.200s_%d", base, k);
    }
    return 0;
}

int decomp_apply(rs_model *m, int node, const decomp_result *r, rs_err *e)
{
    if (!m || node < 0 || node >= m->n_nodes)
        return rs_fail(e, "decomp_apply: node index %d out of range", node);
    const rs_node *orig = &m->nodes[node];
    if (!r || r->n_factors < 1 || !r->layer || strcmp(r->layer, orig->name) != 0)
        return rs_fail(e, "%s: decomposition result belongs to layer \"%s\"", orig->name,
                       r && r->layer ? r->layer : "(none)");
    layer_geom g;
    if (geom_of(m, node, &g, e))
        return -1;
    if (r->f[0].in_channels != g.c_in || r->f[r->n_factors - 1].out_channels != g.c_out ||
        (r->f[r->n_factors - 1].bias_len > 0) != (g.bias != NULL))
        return rs_fail(e, "%s: decomposition result does not fit this layer (%lld -> %lld channels)",
                       orig->name, (long long)g.c_in, (long long)g.c_out);
    int in_v = orig->in[0], out_v = orig->out[0], bias_v = g.bias_value;
    char lname[200];
    snprintf(lname, sizeof lname, "%s", orig->name);
    rs_node repl[DECOMP_MAX_FACTORS];
    char names[DECOMP_MAX_FACTORS][256];
    int prev = in_v;
    for (int i = 0; i < r->n_factors; ++i) {
        const decomp_factor *f = &r->f[i];
        char base[256];
        snprintf(base, sizeof base, "%.200s_f%d", lname, i);
        if (unique_node_name(m, base, names[i], sizeof names[i]))
            goto fail_name;
        snprintf(base, sizeof base, "%.240s_W", names[i]);
        int wv = add_const(m, base, f->w, f->w_ndim, f->w_dims, e);
        if (wv < 0)
            goto fail;
        int yv = out_v;
        if (i < r->n_factors - 1) {
            snprintf(base, sizeof base, "%.240s_out", names[i]);
            yv = add_unique_value(m, base, e);
            if (yv < 0)
                goto fail;
        }
        rs_node *n = &repl[i];
        memset(n, 0, sizeof *n);
        n->op = f->op;
        model_node_defaults(n);
        n->name = names[i];
        n->n_in = 2;
        n->in[0] = prev;
        n->in[1] = wv;
        if (i == r->n_factors - 1 && f->bias_len > 0) {
            /* the original bias initializer itself: kept exactly once, under its own name, holding
             * the result's bias (a data-aware fit refits it) */
            n->n_in = 3;
            n->in[2] = bias_v;
            if (f->bias && memcmp(f->bias, g.bias, (size_t)f->bias_len * sizeof(float)) != 0) {
                int readers = 0;
                for (int k = 0; k < m->n_nodes; ++k)
                    for (int j = 0; j < m->nodes[k].n_in; ++j)
                        readers += m->nodes[k].in[j] == bias_v;
                if (readers == 1) {
                    memcpy(m->values[bias_v].f, f->bias, (size_t)f->bias_len * sizeof(float));
                } else {
                    snprintf(base, sizeof base, "%.240s_B", names[i]);
                    int64_t bd = f->bias_len;
                    if ((n->in[2] = add_const(m, base, f->bias, 1, &bd, e)) < 0)
                        goto fail;
                }
            }
        }
        n->n_out = 1;
        n->out[0] = yv;
        if (f->op == RS_OP_CONV) {
            n->kernel[0] = f->w_dims[2];
            n->kernel[1] = f->w_dims[3];
            memcpy(n->strides, f->strides, sizeof n->strides);
            memcpy(n->pads, f->pads, sizeof n->pads);
            memcpy(n->dilations, f->dilations, sizeof n->dilations);
            n->group = f->group;
        } else if (f->op == RS_OP_GEMM) {
            n->alpha = f->alpha;
            n->beta = f->beta;
            n->trans_a = f->trans_a;
            n->trans_b = f->trans_b;
        }
        prev = yv;
    }
    if (model_replace_node(m, node, repl, r->n_factors, e))
        goto fail;
    if (model_infer_shapes(m, e))
        return rs_failctx(e, "%s: after factorizing", lname);
    return 0;
fail_name:
    rs_fail(e, "%s: cannot name factor nodes", lname);
fail:
    model_gc(m);
    return -1;
}
