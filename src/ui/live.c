/* live.c — background re-factorization and re-evaluation for the explorer. */
#include "live.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rankscope/decomp.h"
#include "rankscope/eval.h"
#include "rankscope/infer.h"

#define LIVE_CHUNK 1000
#define LIVE_CALIB 64 /* images for the per-layer output error (naive kernels: keep it small) */
#define LIVE_CACHE_MAX ((size_t)1 << 30) /* bytes of cached activations before giving up caching */
#define LIVE_NEWPTS 64

typedef struct seg {
    int first_node, end_node; /* nodes [first, end) of the original model */
    int in_value, out_value;  /* value indices in the original model */
    int layer;                /* state layer index of its weighted node, -1 for a prefix segment */
    int64_t in_numel, out_numel;
    rs_model *base;           /* the original sub-network */
    infer_ctx *ctx;           /* built for ctx_for */
    ui_choice ctx_for;
    int ctx_ok;
    float *act;               /* n × out_numel activations leaving it (not for the last segment) */
    int act_valid;
    ui_choice *act_cfg;       /* choices of layers before the cut the activations were made with */
} seg;

struct live {
    const rs_model *m0;
    const cifar10_set *data;
    int n_layers;
    int *node;      /* per layer: node in m0 */
    char (*name)[96];  /* node names (for lookups in model copies) */
    char (*label)[48]; /* display names */
    int64_t params_total, macs_total;
    float *calib;
    int n_calib;

    int cached, n_seg;
    seg *seg;
    infer_ctx *full_ctx;  /* fallback: the whole factorized net */
    ui_choice *full_for;
    int full_ok;

    decomp_result *dres;  /* per layer, for dres_for */
    ui_choice *dres_for;
    int *dres_ok;

    pthread_t th;
    int th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    /* inbox (under mu) */
    uint64_t live_seq;    /* bumps with every live request */
    int has_req;
    uint64_t req_gen;
    double req_time;
    ui_choice *req;
    uint64_t sweep_seq;
    int sweep_active;     /* points remain */
    int sweep_layer;
    ui_choice sweep_base;
    ui_choice *sweep_cfg;
    int sweep_ranks[UI_MAX_SWEEP], sweep_total, sweep_next;
    int busy;
    /* outbox (under mu) */
    uint64_t pub, polled;
    int have_orig, have_cur;
    eval_result orig, cur;
    uint64_t orig_gen; /* gen the original answers for (the state's gen at start when unfactorized) */
    uint64_t cur_gen;
    double cur_seconds, progress;
    char error[RS_ERR_LEN + 16];
    ui_choice *res_for;
    int *res_valid;
    double *w_err, *out_err;
    ui_layer *steps; /* per layer: n_steps, step_text, step_params, step_macs */
    ui_sweep sweep;
    int n_new;
    ui_point newpts[LIVE_NEWPTS];
};

static int same_choice(const ui_choice *a, const ui_choice *b)
{
    return a->method == b->method && a->rank == b->rank && a->rank2 == b->rank2;
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

static void free_segments(live *lv)
{
    for (int i = 0; i < lv->n_seg; ++i) {
        model_free(lv->seg[i].base);
        infer_free(lv->seg[i].ctx);
        free(lv->seg[i].act);
        free(lv->seg[i].act_cfg);
    }
    free(lv->seg);
    lv->seg = NULL;
    lv->n_seg = 0;
    lv->cached = 0;
}

static int layer_of_node(const live *lv, int node)
{
    for (int k = 0; k < lv->n_layers; ++k)
        if (lv->node[k] == node)
            return k;
    return -1;
}

/* Cut the net at every weighted layer's input; 0 and cached = 1 when every piece stands alone. */
static void build_segments(live *lv)
{
    const rs_model *m = lv->m0;
    int n = lv->data->n;
    int *start = malloc(sizeof(int) * (size_t)(lv->n_layers + 2));
    if (!start)
        return;
    int ns = 0;
    if (lv->n_layers == 0 || lv->node[0] != 0)
        start[ns++] = 0;
    for (int k = 0; k < lv->n_layers; ++k)
        start[ns++] = lv->node[k];
    lv->seg = calloc((size_t)ns, sizeof *lv->seg);
    if (!lv->seg) {
        free(start);
        return;
    }
    lv->n_seg = ns;
    size_t bytes = 0;
    int ok = 1;
    for (int j = 0; j < ns && ok; ++j) {
        seg *g = &lv->seg[j];
        g->first_node = start[j];
        g->end_node = j + 1 < ns ? start[j + 1] : m->n_nodes;
        g->in_value = j == 0 ? m->input : m->nodes[start[j]].in[0];
        g->out_value = j + 1 < ns ? m->nodes[start[j + 1]].in[0] : m->output;
        g->layer = layer_of_node(lv, start[j]);
        g->in_numel = model_value_numel(&m->values[g->in_value]);
        g->out_numel = model_value_numel(&m->values[g->out_value]);
        rs_err e;
        g->base = extract(m, g->first_node, g->end_node, g->in_value, g->out_value, &e);
        g->act_cfg = calloc((size_t)lv->n_layers + 1, sizeof *g->act_cfg);
        if (!g->base || !g->act_cfg || g->end_node <= g->first_node) {
            ok = 0;
            break;
        }
        if (j + 1 < ns) {
            size_t sz;
            if (rs_size_mul((size_t)n, (size_t)g->out_numel * sizeof(float), &sz) ||
                rs_size_add(bytes, sz, &bytes) || bytes > LIVE_CACHE_MAX) {
                ok = 0;
                break;
            }
            g->act = malloc(sz ? sz : 1);
            if (!g->act) {
                ok = 0;
                break;
            }
        }
    }
    free(start);
    if (ok && lv->seg[0].in_numel != CIFAR10_PIXELS)
        ok = 0;
    if (!ok)
        free_segments(lv);
    else
        lv->cached = 1;
}

/* ---- factorization -------------------------------------------------------------------------- */

typedef struct cancel_ctx {
    live *lv;
    uint64_t live_seq, sweep_seq;
    int is_sweep;
    double lo, span; /* progress mapping */
    int is_orig;     /* the reference evaluation: only quitting cancels it */
} cancel_ctx;

static int is_stale(cancel_ctx *c)
{
    live *lv = c->lv;
    pthread_mutex_lock(&lv->mu);
    int stale = lv->quit || (!c->is_orig && lv->live_seq != c->live_seq) || (lv->has_req && c->is_sweep) ||
                (c->is_sweep && lv->sweep_seq != c->sweep_seq);
    pthread_mutex_unlock(&lv->mu);
    return stale;
}

static int on_progress(void *user, double fraction, const char *what)
{
    (void)what;
    cancel_ctx *c = user;
    if (!c->is_sweep && fraction >= 0) {
        pthread_mutex_lock(&c->lv->mu);
        c->lv->progress = c->lo + c->span * fraction;
        pthread_mutex_unlock(&c->lv->mu);
    }
    return is_stale(c);
}

/* Decomposition of layer k for choice ch into *out (cached for the live choice when keep). */
static int factorize(live *lv, int k, const ui_choice *ch, cancel_ctx *cc, decomp_result *out,
                     rs_err *e)
{
    decomp_opts o;
    decomp_opts_default(&o);
    o.progress = on_progress;
    o.user = cc;
    return decomp_layer(lv->m0, lv->node[k], ch->method, ch->rank, ch->rank2, &o, out, e);
}

/* The cached decomposition of layer k for ch (recomputed when the choice changed). */
static const decomp_result *layer_decomp(live *lv, int k, const ui_choice *ch, cancel_ctx *cc, int *rc,
                                         rs_err *e)
{
    if (lv->dres_ok[k] && same_choice(&lv->dres_for[k], ch))
        return &lv->dres[k];
    decomp_result_free(&lv->dres[k]);
    lv->dres_ok[k] = 0;
    *rc = factorize(lv, k, ch, cc, &lv->dres[k], e);
    if (*rc)
        return NULL;
    lv->dres_ok[k] = 1;
    lv->dres_for[k] = *ch;
    return &lv->dres[k];
}

/* A segment's network with its layer factorized by r (NULL r: original). */
static infer_ctx *segment_ctx(live *lv, int j, const decomp_result *r, rs_err *e)
{
    seg *g = &lv->seg[j];
    rs_model *sm = model_clone(g->base);
    if (!sm) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    if (r) {
        int node = model_find_node(sm, lv->name[g->layer]);
        if (node < 0 || decomp_apply(sm, node, r, e)) {
            if (node < 0)
                rs_fail(e, "%s: layer not found in its segment", lv->name[g->layer]);
            model_free(sm);
            return NULL;
        }
    }
    infer_ctx *c = infer_create(sm, 0, e);
    model_free(sm);
    return c;
}

/* Make segment j's context match choice ch of its layer. */
static int ensure_segment(live *lv, int j, const ui_choice *cfg, cancel_ctx *cc, rs_err *e)
{
    seg *g = &lv->seg[j];
    ui_choice none = {DECOMP_NONE, 0, 0};
    const ui_choice *ch = g->layer >= 0 ? &cfg[g->layer] : &none;
    if (g->ctx_ok && same_choice(&g->ctx_for, ch))
        return 0;
    infer_free(g->ctx);
    g->ctx = NULL;
    g->ctx_ok = 0;
    const decomp_result *r = NULL;
    if (ch->method != DECOMP_NONE) {
        int rc = 0;
        r = layer_decomp(lv, g->layer, ch, cc, &rc, e);
        if (!r)
            return rc ? rc : -1;
    }
    g->ctx = segment_ctx(lv, j, r, e);
    if (!g->ctx)
        return -1;
    g->ctx_for = *ch;
    g->ctx_ok = 1;
    return 0;
}

/* ---- evaluation ----------------------------------------------------------------------------- */

static int prefix_matches(const live *lv, int j, const ui_choice *cfg)
{
    /* activations leaving segment j depend on the layers of segments 0..j */
    const seg *g = &lv->seg[j];
    if (!g->act_valid)
        return 0;
    for (int i = 0; i <= j; ++i) {
        int k = lv->seg[i].layer;
        if (k >= 0 && !same_choice(&g->act_cfg[k], &cfg[k]))
            return 0;
    }
    return 1;
}

/* Run segments from `start` to the end over the whole set. Segment `swap_seg` (if >= 0) uses
 * swap_ctx instead of its own. store: keep the activations leaving each segment in the caches. */
static int run_chain(live *lv, int start, int swap_seg, infer_ctx *swap_ctx, int store,
                     const ui_choice *cfg, cancel_ctx *cc, eval_result *res, rs_err *e)
{
    const cifar10_set *d = lv->data;
    int n = d->n, ns = lv->n_seg;
    int64_t maxw = 0;
    for (int j = start; j < ns; ++j)
        if (lv->seg[j].out_numel > maxw)
            maxw = lv->seg[j].out_numel;
    float *buf[2];
    buf[0] = malloc((size_t)LIVE_CHUNK * (size_t)maxw * sizeof(float));
    buf[1] = malloc((size_t)LIVE_CHUNK * (size_t)maxw * sizeof(float));
    int *pred = calloc((size_t)(n ? n : 1), sizeof(int));
    int rc = 0;
    if (!buf[0] || !buf[1] || !pred) {
        rc = rs_fail(e, "out of memory");
        goto out;
    }
    if (store)
        for (int j = start; j < ns; ++j)
            lv->seg[j].act_valid = 0;
    for (int c0 = 0; c0 < n && rc == 0; c0 += LIVE_CHUNK) {
        int nc = n - c0 < LIVE_CHUNK ? n - c0 : LIVE_CHUNK;
        const float *x = NULL;
        int flip = 0;
        for (int j = start; j < ns && rc == 0; ++j) {
            seg *g = &lv->seg[j];
            infer_ctx *ctx = j == swap_seg ? swap_ctx : g->ctx;
            float *y;
            if (store && j + 1 < ns)
                y = g->act + (size_t)c0 * (size_t)g->out_numel;
            else {
                y = buf[flip];
                flip = !flip;
            }
            if (j == 0)
                rc = infer_forward_u8(ctx, d->pixels + (size_t)c0 * CIFAR10_PIXELS, nc, y, e);
            else {
                if (j == start)
                    x = lv->seg[j - 1].act + (size_t)c0 * (size_t)g->in_numel;
                rc = infer_forward(ctx, x, nc, y, e);
            }
            x = y;
            if (j + 1 == ns && rc == 0)
                eval_argmax(y, nc, (int)g->out_numel, pred + c0);
        }
        if (rc == 0 && on_progress(cc, (double)(c0 + nc) / n, "evaluating")) {
            rs_fail(e, "cancelled");
            rc = RS_CANCELLED;
        }
    }
    if (rc == 0) {
        eval_score(d->labels, pred, n, res);
        if (store)
            for (int j = start; j + 1 < ns; ++j) {
                lv->seg[j].act_valid = 1;
                memcpy(lv->seg[j].act_cfg, cfg, sizeof(ui_choice) * (size_t)lv->n_layers);
            }
    }
out:
    free(buf[0]);
    free(buf[1]);
    free(pred);
    return rc;
}

/* Whole-network path for graphs that cannot be cut. */
static int eval_full(live *lv, const ui_choice *cfg, int swap_layer, const decomp_result *swap_r,
                     cancel_ctx *cc, eval_result *res, rs_err *e)
{
    rs_model *m = model_clone(lv->m0);
    if (!m)
        return rs_fail(e, "out of memory");
    int rc = 0;
    for (int k = 0; k < lv->n_layers && rc == 0; ++k) {
        const decomp_result *r = NULL;
        if (k == swap_layer)
            r = swap_r;
        else if (cfg[k].method != DECOMP_NONE)
            r = layer_decomp(lv, k, &cfg[k], cc, &rc, e);
        if (rc)
            break;
        if (r) {
            int node = model_find_node(m, lv->name[k]);
            rc = node < 0 ? rs_fail(e, "%s: not found", lv->name[k]) : decomp_apply(m, node, r, e);
        }
    }
    if (rc == 0)
        rc = eval_model(m, lv->data, 0, res, on_progress, cc, e);
    model_free(m);
    return rc;
}

static void costs_of(live *lv, const ui_choice *cfg, int64_t *params, int64_t *macs)
{
    int64_t p = lv->params_total, mc = lv->macs_total;
    for (int k = 0; k < lv->n_layers; ++k) {
        if (cfg[k].method == DECOMP_NONE)
            continue;
        decomp_cost c;
        rs_err e;
        if (decomp_cost_of(lv->m0, lv->node[k], cfg[k].method, cfg[k].rank, cfg[k].rank2, &c, &e) == 0) {
            p += c.params_after - c.params_before;
            mc += c.macs_after - c.macs_before;
        }
    }
    *params = p;
    *macs = mc;
}

static void label_of(live *lv, const ui_choice *cfg, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    static const char *const abbrev[DECOMP_COUNT] = {"-", "svd", "slc", "sp", "cp", "tk"};
    for (int k = 0; k < lv->n_layers; ++k) {
        if (cfg[k].method == DECOMP_NONE)
            continue;
        int w = snprintf(buf + at, len - at, "%s%s:%s%d", at ? " " : "", lv->label[k],
                         abbrev[cfg[k].method], cfg[k].rank);
        if (w < 0 || (size_t)w >= len - at)
            break;
        at += (size_t)w;
    }
    if (!at)
        snprintf(buf, len, "original");
}

static void add_point(live *lv, const ui_choice *cfg, double acc)
{
    int64_t p, mc;
    costs_of(lv, cfg, &p, &mc);
    if (lv->n_new >= LIVE_NEWPTS)
        return;
    ui_point *pt = &lv->newpts[lv->n_new++];
    pt->ratio = p > 0 ? (double)lv->params_total / p : 0;
    pt->macs_ratio = mc > 0 ? (double)lv->macs_total / mc : 0;
    pt->acc = acc;
    label_of(lv, cfg, pt->label, sizeof pt->label);
}

/* Evaluate configuration cfg (the live path: caches kept). */
static int eval_config(live *lv, const ui_choice *cfg, cancel_ctx *cc, eval_result *res, rs_err *e)
{
    if (!lv->cached)
        return eval_full(lv, cfg, -1, NULL, cc, res, e);
    int start = 0;
    for (int j = lv->n_seg - 2; j >= 0; --j)
        if (prefix_matches(lv, j, cfg)) {
            start = j + 1;
            break;
        }
    for (int j = start; j < lv->n_seg; ++j) {
        int rc = ensure_segment(lv, j, cfg, cc, e);
        if (rc)
            return rc;
    }
    return run_chain(lv, start, -1, NULL, 1, cfg, cc, res, e);
}

/* The first n_calib cached activations entering layer k (NULL when not cached): the network
 * input (normalised) for a first layer, else what the segment before it produced. */
static const float *layer_input_cache(const live *lv, int k)
{
    if (!lv->cached)
        return NULL;
    for (int j = 0; j < lv->n_seg; ++j)
        if (lv->seg[j].layer == k) {
            if (j == 0)
                return lv->calib;
            return lv->seg[j - 1].act_valid ? lv->seg[j - 1].act : NULL;
        }
    return NULL;
}

/* The factor chain as short texts: "5x1 conv 6->12", "1x5 dw 8", "dense 400->24". */
static void describe_chain(const decomp_result *r, ui_layer *out)
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

/* Weight and output error of each factorized layer of cfg; published per layer. */
static int layer_errors(live *lv, const ui_choice *cfg, cancel_ctx *cc, rs_err *e)
{
    for (int k = 0; k < lv->n_layers; ++k) {
        if (cfg[k].method == DECOMP_NONE)
            continue;
        if (is_stale(cc))
            return RS_CANCELLED;
        pthread_mutex_lock(&lv->mu);
        int have = lv->res_valid[k] && same_choice(&lv->res_for[k], &cfg[k]);
        pthread_mutex_unlock(&lv->mu);
        if (have)
            continue;
        int rc = 0;
        const decomp_result *r = layer_decomp(lv, k, &cfg[k], cc, &rc, e);
        if (!r)
            return rc ? rc : -1;
        double oerr = -1;
        rs_err e2;
        const float *in = layer_input_cache(lv, k);
        if (in) {
            if (decomp_output_error_on(lv->m0, lv->node[k], r, in, lv->n_calib, &oerr, &e2))
                oerr = -1;
        } else if (lv->calib &&
                   decomp_output_error(lv->m0, lv->node[k], r, lv->calib, lv->n_calib, &oerr, &e2)) {
            oerr = -1;
        }
        pthread_mutex_lock(&lv->mu);
        describe_chain(r, &lv->steps[k]);
        lv->res_for[k] = cfg[k];
        lv->res_valid[k] = 1;
        lv->w_err[k] = r->weight_error;
        lv->out_err[k] = oerr;
        lv->pub++;
        pthread_mutex_unlock(&lv->mu);
    }
    return 0;
}

static void do_live(live *lv, const ui_choice *cfg, uint64_t gen, uint64_t seq, double t_req, int is_orig)
{
    cancel_ctx cc = {lv, seq, 0, 0, 0.0, 1.0, is_orig};
    rs_err e;
    e.msg[0] = 0;
    eval_result res;
    memset(&res, 0, sizeof res);
    double t0 = rs_now();
    int rc = eval_config(lv, cfg, &cc, &res, &e);
    double t1 = rs_now();
    if (getenv("RS_UI_TRACE"))
        fprintf(stderr, "live: eval %.3f s (rc %d)\n", t1 - t0, rc);
    pthread_mutex_lock(&lv->mu);
    lv->progress = -1;
    if (rc == 0) {
        if (is_orig) {
            lv->orig = res;
            lv->have_orig = 1;
        }
        lv->cur = res;
        lv->have_cur = 1;
        lv->cur_gen = gen;
        lv->cur_seconds = rs_now() - t_req;
        lv->error[0] = 0;
        add_point(lv, cfg, res.accuracy);
        lv->busy = lv->has_req; /* the answer is out; the errors below are extra */
        lv->pub++;
    } else if (rc != RS_CANCELLED) {
        snprintf(lv->error, sizeof lv->error, "%s", e.msg);
        lv->cur_gen = gen; /* a failed result is still the answer for this gen */
        lv->pub++;
    }
    pthread_mutex_unlock(&lv->mu);
    /* per-layer errors after the accuracy: they are not what the user waits for */
    if (rc == 0 && layer_errors(lv, cfg, &cc, &e) != 0 && !is_stale(&cc)) {
        pthread_mutex_lock(&lv->mu);
        snprintf(lv->error, sizeof lv->error, "%s", e.msg);
        lv->pub++;
        pthread_mutex_unlock(&lv->mu);
    }
    if (getenv("RS_UI_TRACE"))
        fprintf(stderr, "live: errors %.3f s\n", rs_now() - t1);
}

/* One point of the sweep: layer L at base method with rank r, the rest as in sweep_cfg. */
static void do_sweep_point(live *lv, int L, ui_choice ch, const ui_choice *cfg, uint64_t seq,
                           uint64_t live_seq)
{
    cancel_ctx cc = {lv, live_seq, seq, 1, 0.0, 1.0, 0};
    rs_err e;
    eval_result res;
    decomp_result r;
    memset(&r, 0, sizeof r);
    int rc = factorize(lv, L, &ch, &cc, &r, &e);
    if (rc == 0 && lv->cached) {
        int js = -1;
        for (int j = 0; j < lv->n_seg; ++j)
            if (lv->seg[j].layer == L)
                js = j;
        /* activations entering L must match the prefix of cfg: evaluate cfg itself first if not */
        if (js > 0 && !prefix_matches(lv, js - 1, cfg))
            rc = eval_config(lv, cfg, &cc, &res, &e);
        for (int j = js + 1; j < lv->n_seg && rc == 0; ++j)
            rc = ensure_segment(lv, j, cfg, &cc, &e);
        infer_ctx *sctx = rc == 0 ? segment_ctx(lv, js, &r, &e) : NULL;
        if (rc == 0 && !sctx)
            rc = -1;
        if (rc == 0)
            rc = run_chain(lv, js, js, sctx, 0, cfg, &cc, &res, &e);
        infer_free(sctx);
    } else if (rc == 0) {
        rc = eval_full(lv, cfg, L, &r, &cc, &res, &e);
    }
    pthread_mutex_lock(&lv->mu);
    if (lv->sweep_seq == seq) {
        if (rc == 0) {
            ui_sweep *sw = &lv->sweep;
            if (sw->n < UI_MAX_SWEEP) {
                int i = sw->n++;
                sw->rank[i] = ch.rank;
                sw->acc[i] = res.accuracy;
                ui_choice *tmp = malloc(sizeof(ui_choice) * (size_t)lv->n_layers);
                if (tmp) {
                    memcpy(tmp, cfg, sizeof(ui_choice) * (size_t)lv->n_layers);
                    tmp[L] = ch;
                    costs_of(lv, tmp, &sw->params[i], &sw->macs[i]);
                    add_point(lv, tmp, res.accuracy);
                    free(tmp);
                }
            }
            lv->sweep_next++;
            if (lv->sweep_next >= lv->sweep_total) {
                lv->sweep_active = 0;
                sw->running = 0;
            }
        } else if (rc != RS_CANCELLED) {
            snprintf(lv->error, sizeof lv->error, "sweep: %.480s", e.msg);
            lv->sweep_active = 0;
            lv->sweep.running = 0;
        }
        lv->pub++;
    }
    pthread_mutex_unlock(&lv->mu);
    decomp_result_free(&r);
}

static void *worker(void *arg)
{
    live *lv = arg;
    ui_choice *cfg = calloc((size_t)lv->n_layers + 1, sizeof *cfg);
    if (!cfg)
        return NULL;
    /* the original first: the reference accuracy, and warm caches */
    pthread_mutex_lock(&lv->mu);
    uint64_t seq = lv->live_seq;
    lv->busy = 1;
    pthread_mutex_unlock(&lv->mu);
    do_live(lv, cfg, lv->orig_gen, seq, rs_now(), 1);
    pthread_mutex_lock(&lv->mu);
    lv->busy = 0;
    for (;;) {
        while (!lv->quit && !lv->has_req && !lv->sweep_active)
            pthread_cond_wait(&lv->cv, &lv->mu);
        if (lv->quit)
            break;
        if (lv->has_req) {
            memcpy(cfg, lv->req, sizeof *cfg * (size_t)lv->n_layers);
            uint64_t gen = lv->req_gen, s = lv->live_seq;
            double t = lv->req_time;
            lv->has_req = 0;
            lv->busy = 1;
            lv->progress = 0;
            pthread_mutex_unlock(&lv->mu);
            do_live(lv, cfg, gen, s, t, 0);
            pthread_mutex_lock(&lv->mu);
            lv->busy = lv->has_req;
            continue;
        }
        /* sweep */
        int L = lv->sweep_layer;
        ui_choice ch = lv->sweep_base;
        ch.rank = lv->sweep_ranks[lv->sweep_next];
        if (ch.method == DECOMP_TUCKER2)
            ch.rank2 = 0;
        memcpy(cfg, lv->sweep_cfg, sizeof *cfg * (size_t)lv->n_layers);
        uint64_t s = lv->sweep_seq, ls = lv->live_seq;
        pthread_mutex_unlock(&lv->mu);
        do_sweep_point(lv, L, ch, cfg, s, ls);
        pthread_mutex_lock(&lv->mu);
    }
    pthread_mutex_unlock(&lv->mu);
    free(cfg);
    return NULL;
}

/* ---- public --------------------------------------------------------------------------------- */

live *live_start(const rs_model *m, const cifar10_set *data, const ui_state *s, rs_err *e)
{
    live *lv = calloc(1, sizeof *lv);
    if (!lv) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    lv->m0 = m;
    lv->data = data;
    lv->n_layers = s->n_layers;
    size_t nl = (size_t)s->n_layers + 1;
    lv->node = calloc(nl, sizeof *lv->node);
    lv->name = calloc(nl, sizeof *lv->name);
    lv->label = calloc(nl, sizeof *lv->label);
    lv->dres = calloc(nl, sizeof *lv->dres);
    lv->dres_for = calloc(nl, sizeof *lv->dres_for);
    lv->dres_ok = calloc(nl, sizeof *lv->dres_ok);
    lv->req = calloc(nl, sizeof *lv->req);
    lv->sweep_cfg = calloc(nl, sizeof *lv->sweep_cfg);
    lv->full_for = calloc(nl, sizeof *lv->full_for);
    lv->res_for = calloc(nl, sizeof *lv->res_for);
    lv->res_valid = calloc(nl, sizeof *lv->res_valid);
    lv->w_err = calloc(nl, sizeof *lv->w_err);
    lv->out_err = calloc(nl, sizeof *lv->out_err);
    lv->steps = calloc(nl, sizeof *lv->steps);
    if (!lv->node || !lv->name || !lv->label || !lv->dres || !lv->dres_for || !lv->dres_ok || !lv->req ||
        !lv->sweep_cfg || !lv->full_for || !lv->res_for || !lv->res_valid || !lv->w_err ||
        !lv->out_err || !lv->steps) {
        live_stop(lv);
        rs_fail(e, "out of memory");
        return NULL;
    }
    for (int k = 0; k < s->n_layers; ++k) {
        lv->node[k] = s->layers[k].node;
        snprintf(lv->name[k], sizeof lv->name[k], "%s", s->layers[k].node_name);
        snprintf(lv->label[k], sizeof lv->label[k], "%s", s->layers[k].name);
    }
    model_totals(m, &lv->params_total, &lv->macs_total);
    lv->n_calib = data->n < LIVE_CALIB ? data->n : LIVE_CALIB;
    lv->calib = malloc(sizeof(float) * CIFAR10_PIXELS * (size_t)(lv->n_calib ? lv->n_calib : 1));
    if (lv->calib)
        cifar10_normalize(data, 0, lv->n_calib, lv->calib);
    build_segments(lv);
    /* caching needs every segment to compile; otherwise the whole net is evaluated */
    if (lv->cached) {
        ui_choice *none = calloc(nl, sizeof *none);
        cancel_ctx cc = {lv, 0, 0, 0, 0, 1, 1};
        rs_err e2;
        for (int j = 0; j < lv->n_seg && none; ++j)
            if (ensure_segment(lv, j, none, &cc, &e2)) {
                free_segments(lv);
                break;
            }
        free(none);
    }
    lv->progress = 0;
    lv->sweep.layer = -1;
    lv->orig_gen = s->gen;
    for (int k = 0; k < s->n_layers; ++k)
        if (s->layers[k].cur.method != DECOMP_NONE)
            lv->orig_gen = 0; /* started from a plan: the original is not the current answer */
    pthread_mutex_init(&lv->mu, NULL);
    pthread_cond_init(&lv->cv, NULL);
    if (pthread_create(&lv->th, NULL, worker, lv)) {
        pthread_mutex_destroy(&lv->mu);
        pthread_cond_destroy(&lv->cv);
        live_stop(lv);
        rs_fail(e, "cannot start the evaluation thread");
        return NULL;
    }
    lv->th_started = 1;
    return lv;
}

void live_stop(live *lv)
{
    if (!lv)
        return;
    if (lv->th_started) {
        pthread_mutex_lock(&lv->mu);
        lv->quit = 1;
        pthread_cond_broadcast(&lv->cv);
        pthread_mutex_unlock(&lv->mu);
        pthread_join(lv->th, NULL);
        pthread_mutex_destroy(&lv->mu);
        pthread_cond_destroy(&lv->cv);
    }
    free_segments(lv);
    infer_free(lv->full_ctx);
    if (lv->dres)
        for (int k = 0; k < lv->n_layers; ++k)
            decomp_result_free(&lv->dres[k]);
    free(lv->node);
    free(lv->name);
    free(lv->label);
    free(lv->dres);
    free(lv->dres_for);
    free(lv->dres_ok);
    free(lv->req);
    free(lv->sweep_cfg);
    free(lv->full_for);
    free(lv->res_for);
    free(lv->res_valid);
    free(lv->w_err);
    free(lv->out_err);
    free(lv->steps);
    free(lv->calib);
    free(lv);
}

void live_request(live *lv, const ui_state *s)
{
    pthread_mutex_lock(&lv->mu);
    for (int k = 0; k < lv->n_layers; ++k)
        lv->req[k] = s->layers[k].cur;
    lv->req_gen = s->gen;
    lv->req_time = rs_now();
    lv->has_req = 1;
    lv->busy = 1;
    lv->live_seq++;
    /* a sweep run with other layers as they were is out of date */
    if (lv->sweep_active || lv->sweep.n) {
        int same = 1;
        for (int k = 0; k < lv->n_layers; ++k)
            if (k != lv->sweep_layer && !same_choice(&lv->sweep_cfg[k], &lv->req[k]))
                same = 0;
        if (!same) {
            lv->sweep_active = 0;
            lv->sweep.running = 0;
            lv->sweep.n = 0;
            lv->sweep.layer = -1;
            lv->sweep_seq++;
            lv->pub++;
        }
    }
    pthread_cond_broadcast(&lv->cv);
    pthread_mutex_unlock(&lv->mu);
}

void live_request_sweep(live *lv, const ui_state *s)
{
    if (s->n_layers <= 0)
        return;
    const ui_layer *l = &s->layers[s->sel];
    ui_choice base = l->cur;
    if (base.method == DECOMP_NONE)
        base.method = ui_preferred_method(l);
    pthread_mutex_lock(&lv->mu);
    lv->sweep_seq++;
    memset(&lv->sweep, 0, sizeof lv->sweep);
    lv->sweep.layer = -1;
    lv->sweep_active = 0;
    if (base.method != DECOMP_NONE) {
        int max = l->mi[base.method].max_rank;
        int n = 0;
        /* every rank when few, else a spread that is dense at the low end where accuracy moves */
        if (max <= UI_MAX_SWEEP / 2) {
            for (int r = 1; r <= max; ++r)
                lv->sweep_ranks[n++] = r;
        } else {
            int want = UI_MAX_SWEEP / 2;
            int last = 0;
            for (int i = 0; i < want; ++i) {
                double t = (double)i / (want - 1);
                int r = 1 + (int)(t * t * (max - 1) + 0.5);
                if (r > last)
                    lv->sweep_ranks[n++] = last = r;
            }
        }
        lv->sweep_total = n;
        lv->sweep_next = 0;
        lv->sweep_layer = s->sel;
        lv->sweep_base = base;
        for (int k = 0; k < lv->n_layers; ++k)
            lv->sweep_cfg[k] = s->layers[k].cur;
        lv->sweep.layer = s->sel;
        lv->sweep.base = base;
        lv->sweep.total = n;
        lv->sweep.running = n > 0;
        lv->sweep.cfg_gen = s->gen;
        lv->sweep_active = n > 0;
    }
    lv->pub++;
    pthread_cond_broadcast(&lv->cv);
    pthread_mutex_unlock(&lv->mu);
}

int live_poll(live *lv, ui_state *s)
{
    pthread_mutex_lock(&lv->mu);
    int changed = lv->pub != lv->polled;
    double prog = lv->busy ? (lv->progress < 0 ? 0 : lv->progress) : -1;
    if (prog != s->eval_progress)
        changed = 1;
    s->eval_progress = prog;
    if (lv->pub != lv->polled) {
        lv->polled = lv->pub;
        if (lv->have_orig) {
            s->orig = lv->orig;
            s->have_orig = 1;
        }
        if (lv->have_cur) {
            s->cur = lv->cur;
            s->have_cur = 1;
        }
        s->cur_gen = lv->cur_gen;
        s->eval_seconds = lv->cur_seconds;
        snprintf(s->eval_error, sizeof s->eval_error, "%s", lv->error);
        for (int k = 0; k < lv->n_layers && k < s->n_layers; ++k) {
            ui_layer *l = &s->layers[k];
            l->res_valid = lv->res_valid[k];
            l->res_for = lv->res_for[k];
            l->w_err = lv->w_err[k];
            l->out_err = lv->out_err[k];
            l->n_steps = lv->steps[k].n_steps;
            memcpy(l->step_text, lv->steps[k].step_text, sizeof l->step_text);
            memcpy(l->step_params, lv->steps[k].step_params, sizeof l->step_params);
            memcpy(l->step_macs, lv->steps[k].step_macs, sizeof l->step_macs);
        }
        s->sweep = lv->sweep;
        for (int i = 0; i < lv->n_new; ++i)
            ui_history_add(s, lv->newpts[i].ratio, lv->newpts[i].macs_ratio, lv->newpts[i].acc,
                           lv->newpts[i].label);
        lv->n_new = 0;
    }
    pthread_mutex_unlock(&lv->mu);
    return changed;
}

int live_busy(live *lv)
{
    pthread_mutex_lock(&lv->mu);
    int b = lv->busy || lv->has_req;
    pthread_mutex_unlock(&lv->mu);
    return b;
}

int live_cached(const live *lv)
{
    return lv->cached;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int live_measure_latency(const rs_model *m, const cifar10_set *data, const char *layer, int reps,
                         double *median_s, double *worst_s, rs_err *e)
{
    ui_state *s = malloc(sizeof *s);
    if (!s)
        return rs_fail(e, "out of memory");
    ui_state_defaults(s);
    int rc = ui_state_init(s, m, e);
    int k = -1;
    for (int i = 0; rc == 0 && i < s->n_layers; ++i)
        if (!strcmp(s->layers[i].name, layer) || !strcmp(s->layers[i].node_name, layer))
            k = i;
    decomp_method pm = k >= 0 ? ui_preferred_method(&s->layers[k]) : DECOMP_NONE;
    if (rc == 0 && (k < 0 || pm == DECOMP_NONE))
        rc = rs_fail(e, "%s: not a factorizable layer", layer);
    live *lv = rc == 0 ? live_start(m, data, s, e) : NULL;
    if (rc == 0 && !lv)
        rc = -1;
    if (reps < 1)
        reps = 1;
    double *t = calloc((size_t)reps, sizeof *t);
    if (rc == 0 && !t)
        rc = rs_fail(e, "out of memory");
    /* wait for the original (warms the caches, as the explorer does on start) */
    while (rc == 0 && (!s->have_orig)) {
        live_poll(lv, s);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    int max = k >= 0 ? s->layers[k].mi[pm].max_rank : 0;
    for (int i = 0; rc == 0 && i < reps; ++i) {
        ui_layer *l = &s->layers[k];
        l->cur.method = pm;
        l->cur.rank2 = 0;
        /* a drag: a few intermediate ranks 20 ms apart (each cancels the one before), then the
         * rank let go at; timed from that last request to its accuracy */
        for (int d = 4; d >= 1; --d) {
            l->cur.rank = 1 + (i * 7 + max / 2 + d) % max;
            ++s->gen;
            live_request(lv, s);
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
        l->cur.rank = 1 + (i * 7 + max / 2) % max;
        ++s->gen;
        double t0 = rs_now();
        live_request(lv, s);
        for (;;) {
            live_poll(lv, s);
            if (s->cur_gen == s->gen)
                break;
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        t[i] = rs_now() - t0;
        if (s->eval_error[0])
            rc = rs_fail(e, "%s", s->eval_error);
    }
    if (rc == 0) {
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        *median_s = t[reps / 2];
        *worst_s = t[reps - 1];
    }
    free(t);
    live_stop(lv);
    ui_state_free(s);
    free(s);
    return rc;
}
