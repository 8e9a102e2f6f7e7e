/* pipe_eval.c — the incremental evaluator (pipeline.h): segment cache and per-layer reports. */
#include "rankscope/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rankscope/fit.h"
#include "rankscope/infer.h"

#define PE_CHUNK 1000
#define PE_CALIB 64 /* images for the per-layer output error (naive kernels: keep it small) */
#define PE_CACHE_MAX ((size_t)1 << 30) /* bytes of cached activations before giving up caching */

const decomp_method pipe_method_preference[PIPE_N_PREFERRED] = {DECOMP_SVD, DECOMP_SPATIAL_SVD, DECOMP_TUCKER2,
                                                                 DECOMP_CP, DECOMP_SLICE_SVD};

typedef struct seg {
    int first_node, end_node; /* nodes [first, end) of the original model */
    int in_value, out_value;  /* value indices in the original model */
    int layer;                /* layer index of its weighted node, -1 for a prefix segment */
    int64_t in_numel, out_numel;
    rs_model *base;           /* the original sub-network */
    infer_ctx *ctx;           /* built for ctx_for */
    pipe_choice ctx_for;
    int ctx_ok;
    float *act;               /* n × out_numel activations leaving it (not for the last segment) */
    int act_valid;
    pipe_choice *act_cfg;     /* choices of layers before the cut the activations were made with */
} seg;

struct pipe_eval {
    const rs_model *m0;
    rs_pool *pool;    /* one set of threads for every context below (segments, whole net) */
    const cifar10_set *data;
    int n_layers;
    int *node;        /* per layer: node in m0 */
    char (*name)[96]; /* node names (for lookups in model copies) */
    int64_t params_total, macs_total;
    float *calib;
    int n_calib;
    int cached, n_seg;
    seg *seg;
    decomp_result *dres; /* per layer, for dres_for */
    pipe_choice *dres_for;
    int *dres_ok;
    /* the caller's callback for the call in progress */
    rs_progress_fn progress;
    void *user;
};

int pipe_choice_equal(const pipe_choice *a, const pipe_choice *b)
{
    return a->method == b->method && a->rank == b->rank && a->rank2 == b->rank2;
}

static int report(pipe_eval *pe, double fraction, const char *what)
{
    return pe->progress ? pe->progress(pe->user, fraction, what) : 0;
}

static int decomp_progress(void *user, double fraction, const char *what)
{
    return report(user, fraction, what);
}

/* ---- segments ------------------------------------------------------------------------------- */

static rs_model *extract(const rs_model *m, int first, int end, int in_value, int out_value, rs_err *e)
{
    rs_model *s = model_clone(m);
    if (!s) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    int w = 0;
    for (int i = 0; i < s->n_nodes; ++i) {
        if (i >= first && i < end)
            s->nodes[w++] = s->nodes[i];
        else
            free(s->nodes[i].name);
    }
    s->n_nodes = w;
    s->input = in_value;
    s->output = out_value;
    model_gc(s);
    if (model_infer_shapes(s, e)) {
        model_free(s);
        return NULL;
    }
    return s;
}

static void free_segments(pipe_eval *pe)
{
    for (int i = 0; i < pe->n_seg; ++i) {
        model_free(pe->seg[i].base);
        infer_free(pe->seg[i].ctx);
        free(pe->seg[i].act);
        free(pe->seg[i].act_cfg);
    }
    free(pe->seg);
    pe->seg = NULL;
    pe->n_seg = 0;
    pe->cached = 0;
}

static int layer_of_node(const pipe_eval *pe, int node)
{
    for (int k = 0; k < pe->n_layers; ++k)
        if (pe->node[k] == node)
            return k;
    return -1;
}

/* Fill segment j (its sub-network and activation buffer); 0 when it stands alone. */
static int make_segment(pipe_eval *pe, int j, const int *start, int ns, size_t *bytes)
{
    const rs_model *m = pe->m0;
    seg *g = &pe->seg[j];
    g->first_node = start[j];
    g->end_node = j + 1 < ns ? start[j + 1] : m->n_nodes;
    g->in_value = j == 0 ? m->input : m->nodes[start[j]].in[0];
    g->out_value = j + 1 < ns ? m->nodes[start[j + 1]].in[0] : m->output;
    g->layer = layer_of_node(pe, start[j]);
    g->in_numel = model_value_numel(&m->values[g->in_value]);
    g->out_numel = model_value_numel(&m->values[g->out_value]);
    rs_err e;
    g->base = extract(m, g->first_node, g->end_node, g->in_value, g->out_value, &e);
    g->act_cfg = calloc((size_t)pe->n_layers + 1, sizeof *g->act_cfg);
    if (!g->base || !g->act_cfg || g->end_node <= g->first_node)
        return -1;
    if (j + 1 < ns) {
        size_t sz;
        if (rs_size_mul((size_t)pe->data->n, (size_t)g->out_numel * sizeof(float), &sz) ||
            rs_size_add(*bytes, sz, bytes) || *bytes > PE_CACHE_MAX)
            return -1;
        g->act = malloc(sz ? sz : 1);
        if (!g->act)
            return -1;
    }
    return 0;
}

/* Cut the net at every weighted layer's input; cached = 1 when every piece stands alone. */
static void build_segments(pipe_eval *pe)
{
    int *start = malloc(sizeof(int) * (size_t)(pe->n_layers + 2));
    if (!start)
        return;
    int ns = 0;
    if (pe->n_layers == 0 || pe->node[0] != 0)
        start[ns++] = 0;
    for (int k = 0; k < pe->n_layers; ++k)
        start[ns++] = pe->node[k];
    pe->seg = calloc((size_t)ns, sizeof *pe->seg);
    if (!pe->seg) {
        free(start);
        return;
    }
    pe->n_seg = ns;
    size_t bytes = 0;
    int ok = 1;
    for (int j = 0; j < ns && ok; ++j)
        ok = make_segment(pe, j, start, ns, &bytes) == 0;
    free(start);
    if (ok && pe->seg[0].in_numel != CIFAR10_PIXELS)
        ok = 0;
    if (!ok)
        free_segments(pe);
    else
        pe->cached = 1;
}

/* ---- factorization -------------------------------------------------------------------------- */

static int factorize(pipe_eval *pe, int k, const pipe_choice *ch, decomp_result *out, rs_err *e)
{
    decomp_opts o;
    decomp_opts_default(&o);
    o.progress = decomp_progress;
    o.user = pe;
    return decomp_layer(pe->m0, pe->node[k], ch->method, ch->rank, ch->rank2, &o, out, e);
}

/* The cached decomposition of layer k for ch (recomputed when the choice changed). */
static const decomp_result *layer_decomp(pipe_eval *pe, int k, const pipe_choice *ch, int *rc, rs_err *e)
{
    if (pe->dres_ok[k] && pipe_choice_equal(&pe->dres_for[k], ch))
        return &pe->dres[k];
    decomp_result_free(&pe->dres[k]);
    pe->dres_ok[k] = 0;
    *rc = factorize(pe, k, ch, &pe->dres[k], e);
    if (*rc)
        return NULL;
    pe->dres_ok[k] = 1;
    pe->dres_for[k] = *ch;
    return &pe->dres[k];
}

/* A segment's network with its layer factorized by r (NULL r: original), in *out; compiling it
 * asks the caller's callback between nodes, so a cancel does not wait for the whole segment. */
static int segment_ctx(pipe_eval *pe, int j, const decomp_result *r, infer_ctx **out, rs_err *e)
{
    seg *g = &pe->seg[j];
    *out = NULL;
    rs_model *sm = model_clone(g->base);
    if (!sm)
        return rs_fail(e, "out of memory");
    if (r) {
        int node = model_find_node(sm, pe->name[g->layer]);
        if (node < 0 || decomp_apply(sm, node, r, e)) {
            if (node < 0)
                rs_fail(e, "%s: layer not found in its segment", pe->name[g->layer]);
            model_free(sm);
            return -1;
        }
    }
    int rc = infer_create_with(sm, pe->pool, decomp_progress, pe, out, e);
    model_free(sm);
    return rc;
}

/* Make segment j's context match the choice cfg gives its layer. */
static int ensure_segment(pipe_eval *pe, int j, const pipe_choice *cfg, rs_err *e)
{
    seg *g = &pe->seg[j];
    pipe_choice none = {DECOMP_NONE, 0, 0};
    const pipe_choice *ch = g->layer >= 0 ? &cfg[g->layer] : &none;
    if (g->ctx_ok && pipe_choice_equal(&g->ctx_for, ch))
        return 0;
    infer_free(g->ctx);
    g->ctx = NULL;
    g->ctx_ok = 0;
    const decomp_result *r = NULL;
    if (ch->method != DECOMP_NONE) {
        int rc = 0;
        r = layer_decomp(pe, g->layer, ch, &rc, e);
        if (!r)
            return rc ? rc : -1;
    }
    int rc = segment_ctx(pe, j, r, &g->ctx, e);
    if (rc)
        return rc;
    g->ctx_for = *ch;
    g->ctx_ok = 1;
    return 0;
}

/* ---- evaluation ----------------------------------------------------------------------------- */

static int prefix_matches(const pipe_eval *pe, int j, const pipe_choice *cfg)
{
    /* activations leaving segment j depend on the layers of segments 0..j */
    const seg *g = &pe->seg[j];
    if (!g->act_valid)
        return 0;
    for (int i = 0; i <= j; ++i) {
        int k = pe->seg[i].layer;
        if (k >= 0 && !pipe_choice_equal(&g->act_cfg[k], &cfg[k]))
            return 0;
    }
    return 1;
}

/* Segment j over one chunk of images [c0, c0 + nc): from the pixels (j == 0) or from x, in batches
 * that report progress from f0 to f1 (a cancel is seen within a batch, not a chunk). */
static int run_segment(pipe_eval *pe, int j, infer_ctx *ctx, const float *x, int c0, int nc, float *y,
                       double f0, double f1, rs_err *e)
{
    const uint8_t *xu = j == 0 ? pe->data->pixels + (size_t)c0 * CIFAR10_PIXELS : NULL;
    return eval_forward(ctx, xu ? NULL : x, xu, nc, y, pe->progress ? decomp_progress : NULL, pe, f0, f1, e);
}

/* Run segments from `start` to the end over the whole set. Segment `swap_seg` (if >= 0) uses
 * swap_ctx instead of its own. store: keep the activations leaving each segment in the caches. */
static int run_chain(pipe_eval *pe, int start, int swap_seg, infer_ctx *swap_ctx, int store,
                     const pipe_choice *cfg, eval_result *res, rs_err *e)
{
    const cifar10_set *d = pe->data;
    int n = d->n, ns = pe->n_seg;
    int64_t maxw = 0;
    for (int j = start; j < ns; ++j)
        if (pe->seg[j].out_numel > maxw)
            maxw = pe->seg[j].out_numel;
    float *buf[2];
    buf[0] = malloc((size_t)PE_CHUNK * (size_t)maxw * sizeof(float));
    buf[1] = malloc((size_t)PE_CHUNK * (size_t)maxw * sizeof(float));
    int *pred = calloc((size_t)(n ? n : 1), sizeof(int));
    int rc = 0;
    if (!buf[0] || !buf[1] || !pred) {
        rc = rs_fail(e, "out of memory");
        goto out;
    }
    if (store)
        for (int j = start; j < ns; ++j)
            pe->seg[j].act_valid = 0;
    for (int c0 = 0; c0 < n && rc == 0; c0 += PE_CHUNK) {
        int nc = n - c0 < PE_CHUNK ? n - c0 : PE_CHUNK;
        const float *x = start > 0 ? pe->seg[start - 1].act + (size_t)c0 * (size_t)pe->seg[start].in_numel : NULL;
        int flip = 0;
        for (int j = start; j < ns && rc == 0; ++j) {
            seg *g = &pe->seg[j];
            float *y;
            if (store && j + 1 < ns)
                y = g->act + (size_t)c0 * (size_t)g->out_numel;
            else {
                y = buf[flip];
                flip = !flip;
            }
            double f0 = (c0 + (double)nc * (j - start) / (ns - start)) / n;
            rc = run_segment(pe, j, j == swap_seg ? swap_ctx : g->ctx, x, c0, nc, y, f0,
                             f0 + (double)nc / (ns - start) / n, e);
            x = y;
            if (j + 1 == ns && rc == 0)
                eval_argmax(y, nc, (int)g->out_numel, pred + c0);
        }
        if (rc == 0 && report(pe, (double)(c0 + nc) / n, "evaluating")) {
            rs_fail(e, "cancelled");
            rc = RS_CANCELLED;
        }
    }
    if (rc == 0) {
        eval_score(d->labels, pred, n, res);
        if (store)
            for (int j = start; j + 1 < ns; ++j) {
                pe->seg[j].act_valid = 1;
                memcpy(pe->seg[j].act_cfg, cfg, sizeof(pipe_choice) * (size_t)pe->n_layers);
            }
    }
out:
    free(buf[0]);
    free(buf[1]);
    free(pred);
    return rc;
}

/* Whole-network path for graphs that cannot be cut. */
static int eval_full_on(pipe_eval *pe, const cifar10_set *set, const pipe_choice *cfg, int swap_layer,
                        const decomp_result *swap_r, eval_result *res, rs_err *e)
{
    rs_model *m = model_clone(pe->m0);
    if (!m)
        return rs_fail(e, "out of memory");
    int rc = 0;
    for (int k = 0; k < pe->n_layers && rc == 0; ++k) {
        const decomp_result *r = NULL;
        if (k == swap_layer)
            r = swap_r;
        else if (cfg[k].method != DECOMP_NONE)
            r = layer_decomp(pe, k, &cfg[k], &rc, e);
        if (rc)
            break;
        if (r) {
            int node = model_find_node(m, pe->name[k]);
            rc = node < 0 ? rs_fail(e, "%s: not found", pe->name[k]) : decomp_apply(m, node, r, e);
        }
    }
    infer_ctx *c = NULL;
    if (rc == 0)
        rc = infer_create_with(m, pe->pool, decomp_progress, pe, &c, e);
    if (rc == 0)
        rc = eval_ctx(c, set, res, decomp_progress, pe, e);
    infer_free(c);
    model_free(m);
    return rc;
}

static int eval_full(pipe_eval *pe, const pipe_choice *cfg, int swap_layer, const decomp_result *swap_r,
                     eval_result *res, rs_err *e)
{
    return eval_full_on(pe, pe->data, cfg, swap_layer, swap_r, res, e);
}

int pipe_eval_wants_estimate(const pipe_eval *pe)
{
    return !pe->cached && pe->data->n >= 2 * PIPE_ESTIMATE_IMAGES;
}

int pipe_eval_run_first(pipe_eval *pe, const pipe_choice *cfg, int images, rs_progress_fn progress,
                        void *user, eval_result *res, rs_err *e)
{
    cifar10_set first = *pe->data; /* a view: the same pixels and labels, fewer of them */
    if (images < first.n)
        first.n = images < 1 ? 1 : images;
    pe->progress = progress;
    pe->user = user;
    int rc = eval_full_on(pe, &first, cfg, -1, NULL, res, e);
    pe->progress = NULL;
    return rc;
}

static int eval_config(pipe_eval *pe, const pipe_choice *cfg, eval_result *res, rs_err *e)
{
    if (!pe->cached)
        return eval_full(pe, cfg, -1, NULL, res, e);
    int start = 0;
    for (int j = pe->n_seg - 2; j >= 0; --j)
        if (prefix_matches(pe, j, cfg)) {
            start = j + 1;
            break;
        }
    for (int j = start; j < pe->n_seg; ++j) {
        /* compiling a segment of a big net takes milliseconds: a cancel is seen between them */
        if (report(pe, -1, "preparing")) {
            rs_fail(e, "cancelled");
            return RS_CANCELLED;
        }
        int rc = ensure_segment(pe, j, cfg, e);
        if (rc)
            return rc;
    }
    return run_chain(pe, start, -1, NULL, 1, cfg, res, e);
}

int pipe_eval_run(pipe_eval *pe, const pipe_choice *cfg, rs_progress_fn progress, void *user,
                  eval_result *res, rs_err *e)
{
    pe->progress = progress;
    pe->user = user;
    int rc = eval_config(pe, cfg, res, e);
    pe->progress = NULL;
    return rc;
}

static int swap_cached(pipe_eval *pe, const pipe_choice *cfg, int k, const decomp_result *r, eval_result *res,
                       rs_err *e)
{
    int js = -1, rc = 0;
    for (int j = 0; j < pe->n_seg; ++j)
        if (pe->seg[j].layer == k)
            js = j;
    if (js < 0)
        return rs_fail(e, "layer %d: no segment", k);
    /* activations entering k must match the prefix of cfg: evaluate cfg itself first if not */
    if (js > 0 && !prefix_matches(pe, js - 1, cfg))
        rc = eval_config(pe, cfg, res, e);
    for (int j = js + 1; j < pe->n_seg && rc == 0; ++j)
        rc = ensure_segment(pe, j, cfg, e);
    infer_ctx *sctx = NULL;
    if (rc == 0)
        rc = segment_ctx(pe, js, r, &sctx, e);
    if (rc == 0)
        rc = run_chain(pe, js, js, sctx, 0, cfg, res, e);
    infer_free(sctx);
    return rc;
}

int pipe_eval_swap(pipe_eval *pe, const pipe_choice *cfg, int k, const pipe_choice *ch,
                   rs_progress_fn progress, void *user, eval_result *res, rs_err *e)
{
    if (k < 0 || k >= pe->n_layers)
        return rs_fail(e, "layer %d out of range 0..%d", k, pe->n_layers - 1);
    pe->progress = progress;
    pe->user = user;
    decomp_result r;
    memset(&r, 0, sizeof r);
    int rc = factorize(pe, k, ch, &r, e);
    if (rc == 0)
        rc = pe->cached ? swap_cached(pe, cfg, k, &r, res, e) : eval_full(pe, cfg, k, &r, res, e);
    decomp_result_free(&r);
    pe->progress = NULL;
    return rc;
}

void pipe_eval_costs(const pipe_eval *pe, const pipe_choice *cfg, int64_t *params, int64_t *macs)
{
    int64_t p = pe->params_total, mc = pe->macs_total;
    for (int k = 0; k < pe->n_layers; ++k) {
        if (cfg[k].method == DECOMP_NONE)
            continue;
        decomp_cost c;
        rs_err e;
        if (decomp_cost_of(pe->m0, pe->node[k], cfg[k].method, cfg[k].rank, cfg[k].rank2, &c, &e) == 0) {
            p += c.params_after - c.params_before;
            mc += c.macs_after - c.macs_before;
        }
    }
    *params = p;
    *macs = mc;
}

/* ---- per-layer reports ---------------------------------------------------------------------- */

/* The first n_calib cached activations entering layer k (NULL when not cached): the network
 * input (normalised) for a first layer, else what the segment before it produced. */
static const float *layer_input_cache(const pipe_eval *pe, int k)
{
    if (!pe->cached)
        return NULL;
    for (int j = 0; j < pe->n_seg; ++j)
        if (pe->seg[j].layer == k) {
            if (j == 0)
                return pe->calib;
            return pe->seg[j - 1].act_valid ? pe->seg[j - 1].act : NULL;
        }
    return NULL;
}

/* The factor chain as short texts: "5x1 6->12", "1x5 dw 8", "dense 400->24". */
static void describe_chain(const decomp_result *r, pipe_layer_report *out)
{
    out->n_steps = r->n_factors;
    for (int i = 0; i < r->n_factors && i < DECOMP_MAX_FACTORS; ++i) {
        const decomp_factor *f = &r->f[i];
        char *t = out->step_text[i];
        size_t tl = sizeof out->step_text[i];
        if (f->op == RS_OP_CONV) {
            long long kh = f->w_dims[2], kw = f->w_dims[3];
            long long ci = f->in_channels, co = f->out_channels, g = f->group;
            if (g > 1 && g == ci && g == co)
                snprintf(t, tl, "%lldx%lld dw %lld", kh, kw, co);
            else if (g > 1)
                snprintf(t, tl, "%lldx%lld %lld->%lld g%lld", kh, kw, ci, co, g);
            else
                snprintf(t, tl, "%lldx%lld %lld->%lld", kh, kw, ci, co);
        } else {
            snprintf(t, tl, "dense %lld->%lld", (long long)f->in_channels, (long long)f->out_channels);
        }
        out->step_params[i] = f->params;
        out->step_macs[i] = f->macs;
    }
}

/* The factors of ch fitted to layer k's outputs (fit.h, the layer alone) on the PIPE_FIT_IMAGES
 * images after the error's, and their weight and output errors (the output error on the same
 * held-out images as the weight fit's). Both -1 when the set has no images to spare. */
static int fitted_errors(pipe_eval *pe, int k, const pipe_choice *ch, const float *err_in, double *w_err,
                         double *o_err, rs_err *e)
{
    *w_err = *o_err = -1;
    int first = pe->n_calib, n = pe->data->n - first;
    if (n > PIPE_FIT_IMAGES)
        n = PIPE_FIT_IMAGES;
    if (n < 1)
        return 0;
    const rs_model *m = pe->m0;
    int node = pe->node[k];
    size_t per = (size_t)model_value_numel(&m->values[m->nodes[node].in[0]]);
    float *img = malloc((size_t)n * CIFAR10_PIXELS * sizeof *img), *x = malloc((size_t)n * per * sizeof *x);
    decomp_result r;
    memset(&r, 0, sizeof r);
    int rc = img && x ? 0 : rs_fail(e, "out of memory");
    if (rc == 0) {
        cifar10_normalize(pe->data, first, n, img);
        rc = infer_capture(m, img, n, m->nodes[node].in[0], x, e);
    }
    if (rc == 0)
        rc = factorize(pe, k, ch, &r, e);
    fit_options fo;
    fit_default_options(&fo);
    fo.progress = decomp_progress;
    fo.user = pe;
    if (rc == 0)
        rc = fit_layer(m, node, &r, x, x, n, &fo, e);
    if (rc == 0) {
        *w_err = r.weight_error;
        rc = err_in ? decomp_output_error_on(m, node, &r, err_in, pe->n_calib, o_err, e)
                    : decomp_output_error(m, node, &r, pe->calib, pe->n_calib, o_err, e);
    }
    decomp_result_free(&r);
    free(img);
    free(x);
    return rc;
}

int pipe_eval_layer_report(pipe_eval *pe, int k, const pipe_choice *ch, rs_progress_fn progress,
                           void *user, pipe_layer_report *out, rs_err *e)
{
    if (k < 0 || k >= pe->n_layers)
        return rs_fail(e, "layer %d out of range 0..%d", k, pe->n_layers - 1);
    pe->progress = progress;
    pe->user = user;
    int rc = 0;
    const decomp_result *r = layer_decomp(pe, k, ch, &rc, e);
    pe->progress = NULL;
    if (!r)
        return rc ? rc : -1;
    double oerr = -1;
    rs_err e2;
    const float *in = layer_input_cache(pe, k);
    if (in) {
        if (decomp_output_error_on(pe->m0, pe->node[k], r, in, pe->n_calib, &oerr, &e2))
            oerr = -1;
    } else if (pe->calib && decomp_output_error(pe->m0, pe->node[k], r, pe->calib, pe->n_calib, &oerr, &e2)) {
        oerr = -1;
    }
    memset(out, 0, sizeof *out);
    describe_chain(r, out);
    out->w_err = r->weight_error;
    out->out_err = oerr;
    out->fit_w_err = out->fit_out_err = -1;
    if (pe->calib && ch->method != DECOMP_SLICE_SVD) {
        pe->progress = progress;
        pe->user = user;
        rc = fitted_errors(pe, k, ch, in, &out->fit_w_err, &out->fit_out_err, &e2);
        pe->progress = NULL;
        if (rc == RS_CANCELLED)
            return rs_fail(e, "%s", e2.msg), RS_CANCELLED;
        if (rc)
            out->fit_w_err = out->fit_out_err = -1;
    }
    return 0;
}

/* ---- lifetime ------------------------------------------------------------------------------- */

pipe_eval *pipe_eval_alloc(const rs_model *m, const cifar10_set *data, rs_err *e)
{
    pipe_eval *pe = calloc(1, sizeof *pe);
    if (!pe) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    pe->m0 = m;
    pe->data = data;
    for (int i = 0; i < m->n_nodes; ++i)
        pe->n_layers += model_is_weighted(m, i) != 0;
    size_t nl = (size_t)pe->n_layers + 1;
    pe->node = calloc(nl, sizeof *pe->node);
    pe->name = calloc(nl, sizeof *pe->name);
    pe->dres = calloc(nl, sizeof *pe->dres);
    pe->dres_for = calloc(nl, sizeof *pe->dres_for);
    pe->dres_ok = calloc(nl, sizeof *pe->dres_ok);
    if (!pe->node || !pe->name || !pe->dres || !pe->dres_for || !pe->dres_ok) {
        pipe_eval_free(pe);
        rs_fail(e, "out of memory");
        return NULL;
    }
    if (!(pe->pool = pool_alloc(0, e))) {
        pipe_eval_free(pe);
        return NULL;
    }
    for (int i = 0, k = 0; i < m->n_nodes; ++i)
        if (model_is_weighted(m, i)) {
            pe->node[k] = i;
            snprintf(pe->name[k], sizeof pe->name[k], "%s", m->nodes[i].name ? m->nodes[i].name : "?");
            ++k;
        }
    model_totals(m, &pe->params_total, &pe->macs_total);
    pe->n_calib = data->n < PE_CALIB ? data->n : PE_CALIB;
    pe->calib = malloc(sizeof(float) * CIFAR10_PIXELS * (size_t)(pe->n_calib ? pe->n_calib : 1));
    if (pe->calib)
        cifar10_normalize(data, 0, pe->n_calib, pe->calib);
    build_segments(pe);
    /* caching needs every segment to compile; otherwise the whole net is evaluated */
    if (pe->cached) {
        pipe_choice *none = calloc(nl, sizeof *none);
        rs_err e2;
        for (int j = 0; j < pe->n_seg && none; ++j)
            if (ensure_segment(pe, j, none, &e2)) {
                free_segments(pe);
                break;
            }
        free(none);
    }
    return pe;
}

void pipe_eval_free(pipe_eval *pe)
{
    if (!pe)
        return;
    free_segments(pe); /* the contexts borrow the pool: gone before it */
    pool_free(pe->pool);
    if (pe->dres)
        for (int k = 0; k < pe->n_layers; ++k)
            decomp_result_free(&pe->dres[k]);
    free(pe->node);
    free(pe->name);
    free(pe->dres);
    free(pe->dres_for);
    free(pe->dres_ok);
    free(pe->calib);
    free(pe);
}

int pipe_eval_layers(const pipe_eval *pe)
{
    return pe->n_layers;
}

int pipe_eval_node(const pipe_eval *pe, int k)
{
    return k >= 0 && k < pe->n_layers ? pe->node[k] : -1;
}

int pipe_eval_cached(const pipe_eval *pe)
{
    return pe->cached;
}

/* ---- latency as the explorer sees it -------------------------------------------------------- */

typedef struct deadline {
    double until;
} deadline;

static int until_deadline(void *user, double fraction, const char *what)
{
    (void)fraction;
    (void)what;
    return rs_now() > ((const deadline *)user)->until;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int find_layer(const pipe_eval *pe, const rs_model *m, const char *layer)
{
    int node = model_find_layer(m, layer);
    for (int k = 0; node >= 0 && k < pe->n_layers; ++k)
        if (pe->node[k] == node)
            return k;
    for (int k = 0; k < pe->n_layers; ++k) {
        char shortname[96];
        if (!strcmp(pe->name[k], layer) || !strcmp(model_layer_name(m, pe->node[k], shortname, sizeof shortname), layer))
            return k;
    }
    return -1;
}

static decomp_method preferred(const rs_model *m, int node, int *max_rank)
{
    unsigned methods = decomp_methods_for(m, node);
    for (int i = 0; i < PIPE_N_PREFERRED; ++i) {
        decomp_method d = pipe_method_preference[i];
        if ((methods & (1u << d)) && (*max_rank = decomp_max_rank(m, node, d, 0)) > 0)
            return d;
    }
    return DECOMP_NONE;
}

/* A drag of layer k on its preferred method pm (max rank max): intermediate ranks, each given up
 * after 20 ms for the next one; cfg[k] is left at the rank let go at. */
static int drag(pipe_eval *pe, pipe_choice *cfg, int k, decomp_method pm, int max, int i, rs_err *e)
{
    eval_result res;
    int rc = 0;
    cfg[k].method = pm;
    cfg[k].rank2 = 0;
    for (int d = 4; d >= 1 && rc == 0; --d) {
        cfg[k].rank = 1 + (i * 7 + max / 2 + d) % max;
        deadline dl = {rs_now() + 0.020};
        rc = pipe_eval_run(pe, cfg, until_deadline, &dl, &res, e);
        if (rc == RS_CANCELLED)
            rc = 0;
        while (rc == 0 && rs_now() < dl.until) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    cfg[k].rank = 1 + (i * 7 + max / 2) % max;
    return rc;
}

int pipe_measure_slider(const rs_model *m, const cifar10_set *data, const char *layer, int reps,
                        double *first_s, double *full_s, int *est_images, rs_err *e)
{
    pipe_eval *pe = pipe_eval_alloc(m, data, e);
    if (!pe)
        return -1;
    int k = find_layer(pe, m, layer), max = 0, rc = 0;
    decomp_method pm = k >= 0 ? preferred(m, pe->node[k], &max) : DECOMP_NONE;
    if (k < 0 || pm == DECOMP_NONE)
        rc = rs_fail(e, "%s: not a factorizable layer", layer);
    if (reps < 1)
        reps = 1;
    double *t1 = calloc((size_t)reps, sizeof *t1), *t2 = calloc((size_t)reps, sizeof *t2);
    pipe_choice *cfg = calloc((size_t)pe->n_layers + 1, sizeof *cfg);
    if (rc == 0 && (!t1 || !t2 || !cfg))
        rc = rs_fail(e, "out of memory");
    eval_result res;
    if (rc == 0)
        rc = pipe_eval_run(pe, cfg, NULL, NULL, &res, e); /* the original: warms the caches */
    int est = pipe_eval_wants_estimate(pe);
    for (int i = 0; rc == 0 && i < reps; ++i) {
        rc = drag(pe, cfg, k, pm, max, i, e);
        double t0 = rs_now();
        if (rc == 0 && est)
            rc = pipe_eval_run_first(pe, cfg, PIPE_ESTIMATE_IMAGES, NULL, NULL, &res, e);
        t1[i] = rs_now() - t0;
        if (rc == 0)
            rc = pipe_eval_run(pe, cfg, NULL, NULL, &res, e);
        t2[i] = rs_now() - t0;
        if (!est)
            t1[i] = t2[i];
    }
    if (rc == 0) {
        qsort(t1, (size_t)reps, sizeof *t1, cmp_double);
        qsort(t2, (size_t)reps, sizeof *t2, cmp_double);
        *first_s = t1[reps / 2];
        *full_s = t2[reps / 2];
        *est_images = est ? PIPE_ESTIMATE_IMAGES : 0;
    }
    free(t1);
    free(t2);
    free(cfg);
    pipe_eval_free(pe);
    return rc;
}
