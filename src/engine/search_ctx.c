/* search_ctx.c — the search context (a model copy, its baseline accuracy and one candidate table
 * per weighted layer) and the whole-set evaluations the strategies in search.c build on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/decomp.h"
#include "rankscope/eval.h"
#include "rankscope/infer.h"
#include "search_internal.h"

/* ---- evaluation ---------------------------------------------------------------------------------- */
int search_eval_plan(const rs_model *m, const rs_plan *plan, const cifar10_set *s, int nthreads,
                     double *acc, rs_err *e)
{
    rs_model *w = model_clone(m);
    if (!w)
        return rs_fail(e, "out of memory copying the model");
    int rc = 0;
    if (plan && plan->n > 0)
        rc = plan_apply(w, plan, NULL, NULL, e);
    if (rc == 0) {
        eval_result r;
        rc = eval_model(w, s, nthreads, &r, NULL, NULL, e);
        if (rc == 0)
            *acc = r.accuracy;
    }
    model_free(w);
    return rc;
}

/* ---- tables ------------------------------------------------------------------------------------- */
int search_tucker_rank2(const rs_model *m, int node, int r)
{
    int cout = decomp_max_rank(m, node, DECOMP_TUCKER2, 0);
    int cin = decomp_max_rank(m, node, DECOMP_TUCKER2, 1);
    int r2 = cout > 0 ? (int)lround((double)r * cin / cout) : 1;
    return r2 < 1 ? 1 : (r2 > cin ? cin : r2);
}

static int on_grid(int r, int rmax)
{
    if (r <= 16 || r == rmax)
        return 1;
    if (r <= 32)
        return r % 2 == 0;
    if (r <= 64)
        return r % 4 == 0;
    return r % 8 == 0;
}

/* 1 2 3 4 6 8 12 16 24 32 ...: every rank within a factor √2 of one probed */
static int on_geo_grid(int r, int rmax)
{
    if (r == rmax || r <= 4)
        return 1;
    while (r % 2 == 0)
        r /= 2;
    return r == 1 || r == 3;
}

/* A net with many layers would spend most of a search in the per-layer scan (e.g. ResNet-20:
 * ~50 trials per layer on the fine grid): beyond SEARCH_FINE_GRID_MAX probes in all, the tables
 * use the geometric grid. */
#define SEARCH_FINE_GRID_MAX 400

static void coarsen_grid(search_ctx *c)
{
    int probes = 0;
    for (int i = 0; i < c->n_layers; ++i)
        for (int j = 0; j < c->L[i].n; ++j)
            probes += c->L[i].c[j].in_grid;
    if (probes <= SEARCH_FINE_GRID_MAX)
        return;
    for (int i = 0; i < c->n_layers; ++i) {
        layer_tab *t = &c->L[i];
        for (int j = 0, first = 0; j < t->n; ++j) {
            int last = j + 1 == t->n || t->c[j + 1].method != t->c[j].method;
            if (!last)
                continue;
            for (int k = first; k <= j; ++k)
                t->c[k].in_grid = on_geo_grid(t->c[k].rank, t->c[j].rank);
            first = j + 1;
        }
    }
}

int search_layer_selected(const char *list, const char *name)
{
    if (!list || !*list)
        return 1;
    size_t len = strlen(name);
    const char *p = list;
    while (*p) {
        const char *q = strchr(p, ',');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (l == len && !strncmp(p, name, l))
            return 1;
        if (!q)
            break;
        p = q + 1;
    }
    return 0;
}

static void free_tables(search_ctx *c)
{
    for (int i = 0; i < c->n_layers; ++i)
        free(c->L[i].c);
    free(c->L);
    c->L = NULL;
    c->n_layers = 0;
}

/* One table per weighted layer with every method (svd for dense; all conv methods) and every
 * rank whose layer cost is below the original under the objective BOTH, PARAMS or MACS alike:
 * the candidate list is filtered per search by cand_allowed. */
static int build_tables(search_ctx *c, rs_err *e)
{
    const rs_model *m = c->m;
    c->L = calloc((size_t)m->n_nodes, sizeof *c->L);
    if (!c->L)
        return rs_fail(e, "out of memory");
    for (int node = 0; node < m->n_nodes; ++node) {
        if (!model_is_weighted(m, node))
            continue;
        layer_tab *t = &c->L[c->n_layers];
        char buf[NAME_LEN];
        snprintf(t->name, sizeof t->name, "%s", model_layer_name(m, node, buf, sizeof buf));
        t->node = node;
        unsigned methods = decomp_methods_for(m, node);
        int cap = 0;
        for (int k = 1; k < DECOMP_COUNT; ++k)
            if (k != DECOMP_SLICE_SVD && (methods & (1u << k)))
                cap += decomp_max_rank(m, node, (decomp_method)k, 0);
        t->c = calloc(cap > 0 ? (size_t)cap : 1, sizeof *t->c);
        if (!t->c)
            return rs_fail(e, "out of memory");
        decomp_cost dc;
        int have_before = 0;
        for (int k = 1; k < DECOMP_COUNT; ++k) {
            if (k == DECOMP_SLICE_SVD || !(methods & (1u << k)))
                continue; /* slice-svd never saves on real layers */
            int rmax = decomp_max_rank(m, node, (decomp_method)k, 0);
            int first = t->n;
            for (int r = 1; r <= rmax; ++r) {
                int r2 = k == DECOMP_TUCKER2 ? search_tucker_rank2(m, node, r) : 0;
                if (decomp_cost_of(m, node, (decomp_method)k, r, r2, &dc, e) != 0)
                    return -1;
                if (!have_before) {
                    t->params0 = dc.params_before;
                    t->macs0 = dc.macs_before;
                    have_before = 1;
                }
                if (dc.params_after >= dc.params_before && dc.macs_after >= dc.macs_before)
                    break; /* costs grow with rank: nothing beyond saves either */
                cand *cd = &t->c[t->n++];
                cd->method = (decomp_method)k;
                cd->rank = r;
                cd->rank2 = r2;
                cd->params = dc.params_after;
                cd->macs = dc.macs_after;
                cd->acc_sub = cd->acc_full = -1.0;
            }
            int last = t->n - 1;
            for (int i = first; i <= last; ++i)
                t->c[i].in_grid = on_grid(t->c[i].rank, t->c[last].rank);
        }
        if (!have_before) {
            rs_layer_info *li = NULL;
            int nl = 0;
            if (model_layer_table(m, &li, &nl, e) != 0)
                return -1;
            for (int i = 0; i < nl; ++i)
                if (li[i].node == node) {
                    t->params0 = li[i].params;
                    t->macs0 = li[i].macs;
                }
            free(li);
        }
        c->n_layers++;
    }
    return 0;
}

/* ---- context ---------------------------------------------------------------------------------- */
search_ctx *search_ctx_create(const rs_model *m, const cifar10_set *set, int nthreads, rs_err *e)
{
    if (!set || set->n <= 0) {
        rs_fail(e, "search: empty search set");
        return NULL;
    }
    search_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    c->set = set;
    c->nthreads = nthreads;
    c->m = model_clone(m);
    if (!c->m) {
        rs_fail(e, "out of memory copying the model");
        free(c);
        return NULL;
    }
    if (model_infer_shapes(c->m, e) != 0 || build_tables(c, e) != 0) {
        search_ctx_free(c);
        return NULL;
    }
    coarsen_grid(c);
    model_totals(c->m, &c->P0, &c->M0);
    if (c->P0 <= 0)
        c->P0 = 1;
    if (c->M0 <= 0)
        c->M0 = 1;
    if (search_eval_plan(c->m, NULL, set, nthreads, &c->base_acc, e) != 0) {
        search_ctx_free(c);
        return NULL;
    }
    return c;
}

void search_ctx_free(search_ctx *c)
{
    if (!c)
        return;
    free_tables(c);
    model_free(c->m);
    plan_free(c->best);
    lat_free(c->lat_own);
    free(c);
}

double search_ctx_base_acc(const search_ctx *c)
{
    return c->base_acc;
}

/* ---- paired acceptance noise ------------------------------------------------------------------ */
double search_paired_se(int a_only, int b_only, int n)
{
    if (n < 2)
        return 0.0;
    double mean = (double)(b_only - a_only) / n;
    double var = ((double)a_only + (double)b_only - n * mean * mean) / (n - 1);
    return var > 0 ? 100.0 * sqrt(var / n) : 0.0;
}

static int predict_all(const rs_model *m, const cifar10_set *s, int nthreads, int *pred, rs_err *e)
{
    infer_ctx *ic = infer_create(m, nthreads, e);
    if (!ic)
        return -1;
    int k = infer_out_features(ic), rc = 0;
    if (infer_in_features(ic) != CIFAR10_PIXELS || k < CIFAR10_CLASSES) {
        infer_free(ic);
        return rs_fail(e, "paired counts: the model is not a CIFAR-10 classifier (%d inputs, %d outputs)",
                       infer_in_features(ic), k);
    }
    enum { CHUNK = 256 };
    float *logits = malloc((size_t)CHUNK * (size_t)k * sizeof(float));
    if (!logits) {
        infer_free(ic);
        return rs_fail(e, "out of memory");
    }
    for (int first = 0; first < s->n && rc == 0; first += CHUNK) {
        int n = s->n - first < CHUNK ? s->n - first : CHUNK;
        rc = infer_forward_u8(ic, s->pixels + (size_t)first * CIFAR10_PIXELS, n, logits, e);
        if (rc == 0)
            eval_argmax(logits, n, k, pred + first);
    }
    free(logits);
    infer_free(ic);
    return rc;
}

int search_paired_counts(const rs_model *a, const rs_model *b, const cifar10_set *s, int nthreads,
                         int *a_only, int *b_only, rs_err *e)
{
    *a_only = *b_only = 0;
    if (!s || s->n <= 0)
        return rs_fail(e, "paired counts: empty set");
    int *pa = malloc((size_t)s->n * 2 * sizeof(int));
    if (!pa)
        return rs_fail(e, "out of memory");
    int *pb = pa + s->n;
    int rc = predict_all(a, s, nthreads, pa, e);
    if (rc == 0)
        rc = predict_all(b, s, nthreads, pb, e);
    if (rc == 0)
        for (int i = 0; i < s->n; ++i) {
            int ra = pa[i] == s->labels[i], rb = pb[i] == s->labels[i];
            *a_only += ra && !rb;
            *b_only += rb && !ra;
        }
    free(pa);
    return rc;
}
