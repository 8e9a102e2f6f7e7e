/* test_staged.c — folding a factorized layer back into one layer (pipe_fold_layer, the step that
 * lets a later stage of staged compression factorize a layer again): for every method's chain,
 * the folded net computes what the factorized net computes (logits within 1e-4 relative, an
 * independent path: the factors run as separate layers there), has the original's nodes and
 * weight shapes again, and can be factorized again at a lower rank.
 * And the choice of the next stage after rejections (pipe_next_plan), on the shipped net and
 * sample: a rejected plan is never proposed again, nor one at least as aggressive on all of its
 * layers; the next plan is strictly milder where the rejection still applies. And which epoch a
 * stage returns (pipe_stage_apply): its trained one when it factorizes, never its start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/engine/pipe_internal.h"
#include "check.h"
#include "rankscope/infer.h"
#include "rankscope/onnx.h"
#include "rankscope/pipeline.h"
#include "testnet.h"

#define N_IMG 8

static double max_rel_diff(const float *a, const float *b, int n)
{
    double worst = 0;
    for (int i = 0; i < n; ++i) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        worst = d > worst ? d : worst;
    }
    return worst;
}

static void fold_case(const rs_model *orig, const char *spec, const float *x)
{
    rs_err e = {{0}};
    rs_plan *p = plan_alloc();
    rs_model *f = model_clone(orig);
    int ok = p && f && plan_parse_spec(p, spec, &e) == 0 && plan_apply(f, p, NULL, NULL, &e) == 0;
    CHECK(ok, "%s: factorized (%s)", spec, ok ? "ok" : e.msg);
    if (!ok) {
        plan_free(p), model_free(f);
        return;
    }
    rs_model *g = model_clone(f);
    int rc = 0;
    for (int i = 0; rc == 0 && i < p->n; ++i)
        rc = pipe_fold_layer(g, orig, p->entries[i].layer, &e);
    CHECK(rc == 0, "%s: folded (%s)", spec, rc ? e.msg : "ok");
    float yf[N_IMG * 10], yg[N_IMG * 10];
    if (rc == 0 && infer_forward_naive(f, x, N_IMG, yf, &e) == 0 && infer_forward_naive(g, x, N_IMG, yg, &e) == 0) {
        double d = max_rel_diff(yg, yf, N_IMG * 10);
        CHECK(d <= 1e-4, "%s: folded logits = factorized logits (max rel diff %.2e <= 1e-4)", spec, d);
    }
    int same_shape = rc == 0 && g->n_nodes == orig->n_nodes;
    for (int i = 0; same_shape && i < p->n; ++i) {
        int a = model_find_layer(orig, p->entries[i].layer), b = model_find_layer(g, p->entries[i].layer);
        same_shape = a >= 0 && b >= 0 && g->nodes[b].op == orig->nodes[a].op &&
                     model_value_numel(&g->values[g->nodes[b].in[1]]) ==
                         model_value_numel(&orig->values[orig->nodes[a].in[1]]);
    }
    CHECK(same_shape, "%s: the original's nodes and weight shapes again (%d nodes)", spec, g ? g->n_nodes : -1);
    /* a second factorization at a lower rank, and folding a layer that is not factorized: no-op */
    rs_plan *q = plan_alloc();
    for (int i = 0; q && i < p->n; ++i)
        plan_set(q, p->entries[i].layer, p->entries[i].method, p->entries[i].rank > 1 ? p->entries[i].rank - 1 : 1,
                 0, &e);
    int n0 = g->n_nodes;
    rc = rc == 0 ? pipe_fold_layer(g, orig, "fc3", &e) : -1;
    CHECK(rc == 0 && g->n_nodes == n0, "folding fc3 (never factorized) changes nothing");
    rc = rc == 0 ? plan_apply(g, q, NULL, NULL, &e) : -1;
    CHECK(rc == 0, "%s: factorized again at a lower rank (%s)", spec, rc ? e.msg : "ok");
    plan_free(q);
    plan_free(p);
    model_free(f);
    model_free(g);
}

/* Rank of layer's svd entry in p, 0 when p leaves the layer alone (p may be NULL). */
static int svd_rank(const rs_plan *p, const char *layer)
{
    const plan_entry *en = p ? plan_find(p, layer) : NULL;
    return en && en->method == DECOMP_SVD ? en->rank : 0;
}

static rs_plan *plan_of(const char *spec)
{
    rs_err e = {{0}};
    rs_plan *p = plan_alloc();
    if (p && plan_parse_spec(p, spec, &e) != 0) {
        printf("# %s: %s\n", spec, e.msg);
        plan_free(p);
        return NULL;
    }
    return p;
}

/* Whether the net all ⊕ p is at least as aggressive as r on every layer of r (what must not be
 * proposed again), judged here layer by layer from the analytic costs. */
static int covers(const rs_model *m, const rs_plan *all, const rs_plan *p, const rs_plan *r)
{
    for (int i = 0; i < r->n; ++i) {
        const plan_entry *en = p ? plan_find(p, r->entries[i].layer) : NULL;
        if (!en)
            en = plan_find(all, r->entries[i].layer);
        decomp_cost a, b;
        rs_err e = {{0}};
        int node = model_find_layer(m, r->entries[i].layer);
        if (!en || decomp_cost_of(m, node, en->method, en->rank, en->rank2, &a, &e) != 0 ||
            decomp_cost_of(m, node, r->entries[i].method, r->entries[i].rank, r->entries[i].rank2, &b, &e) != 0 ||
            a.params_after > b.params_after || a.macs_after > b.macs_after)
            return 0;
    }
    return 1;
}

/* The shipped net and the CIFAR-10 sample; 0 when both loaded (else checked as failed, freed). */
static int shipped_and_sample(rs_model **m, cifar10_set **set)
{
    char path[4096];
    rs_err e = {{0}};
    *m = NULL, *set = NULL;
    if (rs_find_asset("lenet-cifar10.onnx", path, sizeof path) != 0) {
        CHECK(0, "the shipped net is found");
        return -1;
    }
    *m = onnx_load(path, &e);
    *set = cifar10_load_split(NULL, "sample", NULL, &e);
    int ok = *m && *set && model_infer_shapes(*m, &e) == 0;
    CHECK(ok, "shipped net and sample (%s)", e.msg);
    if (!ok) {
        model_free(*m), cifar10_free(*set);
        *m = NULL, *set = NULL;
    }
    return ok ? 0 : -1;
}

static void test_next_plan(void)
{
    rs_err e = {{0}};
    rs_model *m;
    cifar10_set *set;
    if (shipped_and_sample(&m, &set) != 0)
        return;
    search_ctx *ctx = search_ctx_create(m, set, 2, &e);
    CHECK(ctx != NULL, "search context (%s)", e.msg);
    if (!ctx) {
        model_free(m), cifar10_free(set);
        return;
    }
    search_options o;
    search_default_options(&o);
    o.objective = SEARCH_OBJ_PARAMS;
    o.sens_images = 1000;
    o.layers = "fc1";
    const double budget = 1.0;
    rs_plan *none = plan_alloc(), *p0 = NULL, *p1 = NULL, *p2 = NULL, *again = NULL;

    /* one layer: the plan rejected, then the same budget and half of it */
    int rc = pipe_next_plan(ctx, m, &o, budget, none, NULL, 0, &p0, &e);
    int r0 = svd_rank(p0, "fc1");
    CHECK(rc == 0 && p0 && p0->n == 1 && r0 > 0, "fc1 alone, budget %.1f: fc1 svd %d (%s)", budget, r0,
          rc ? e.msg : "ok");
    if (r0 <= 0)
        goto out;
    /* what the search proposes knowing nothing of the rejection: the same plan again (the choice
     * the next stage made before rejections were passed on) */
    rc = pipe_next_plan(ctx, m, &o, budget, none, NULL, 0, &again, &e);
    CHECK(rc == 0 && svd_rank(again, "fc1") == r0, "without the rejection the same plan comes back (fc1 svd %d)",
          svd_rank(again, "fc1"));
    rs_plan *rej[3] = {p0, NULL, NULL};
    rc = pipe_next_plan(ctx, m, &o, budget, none, rej, 1, &p1, &e);
    int r1 = svd_rank(p1, "fc1");
    /* the estimated drop is enveloped (a higher rank never looks worse), so a milder rank fits */
    CHECK(rc == 0 && r1 > r0, "after fc1 svd %d is rejected: fc1 svd %d, strictly milder (%s)", r0, r1,
          rc ? e.msg : "ok");
    rc = pipe_next_plan(ctx, m, &o, budget * 0.5, none, rej, 1, &p2, &e);
    int r2 = svd_rank(p2, "fc1");
    CHECK(rc == 0 && (r2 == 0 || r2 > r0), "half the budget after the rejection: fc1 svd %d (0 = none), never <= %d",
          r2, r0);
    plan_free(p1), plan_free(p2), plan_free(again);
    p1 = p2 = again = NULL;

    /* the rejection holds from a more compressed state (fc2 accepted since), and is moot once
     * the accepted state itself is at least as aggressive on the layer */
    rs_plan *all = plan_of("fc2=svd:20");
    rc = all ? pipe_next_plan(ctx, m, &o, budget, all, rej, 1, &p1, &e) : -1;
    r1 = svd_rank(p1, "fc1");
    CHECK(rc == 0 && r1 > r0, "fc2 accepted since: fc1 svd %d, still milder than %d", r1, r0);
    plan_free(p1), plan_free(all);
    p1 = NULL;
    all = plan_of("fc1=svd:80");
    char spec[64];
    snprintf(spec, sizeof spec, "fc1=svd:%d", r0 + 2);
    rs_plan *older = plan_of(spec); /* rejected from a less compressed state; fc1 r0 is harsher */
    rej[0] = older;
    rc = all && older ? pipe_next_plan(ctx, m, &o, budget, all, rej, 1, &p1, &e) : -1;
    r1 = svd_rank(p1, "fc1");
    CHECK(rc == 0 && r1 > r0 + 2 && r1 < 80, "fc1 svd %d rejected, fc1 svd 80 accepted: fc1 svd %d, between them",
          r0 + 2, r1);
    plan_free(p1), plan_free(all), plan_free(older);
    p1 = NULL;
    all = plan_of("fc2=svd:20");
    older = plan_of("fc2=svd:30");
    rej[0] = older;
    rc = all && older ? pipe_next_plan(ctx, m, &o, budget, all, rej, 1, &p1, &e) : -1;
    CHECK(rc == 0 && svd_rank(p1, "fc1") == r0, "fc2 svd 30 rejected, fc2 svd 20 accepted since: moot, fc1 svd %d "
          "as without it (%d)", svd_rank(p1, "fc1"), r0);
    plan_free(p1), plan_free(all), plan_free(older);
    p1 = NULL;
    rej[0] = p0;

    /* two layers: a rejected two-layer plan is never covered again (on one of its layers the next
     * plan is milder), and the result is not empty */
    o.layers = "fc1,fc2";
    plan_free(p0);
    p0 = NULL;
    rej[0] = NULL;
    rc = pipe_next_plan(ctx, m, &o, 2 * budget, none, NULL, 0, &p0, &e);
    CHECK(rc == 0 && p0 && p0->n == 2, "fc1, fc2, budget %.1f: a two-layer plan (%d entries)", 2 * budget,
          p0 ? p0->n : -1);
    if (p0 && p0->n == 2) {
        rej[0] = p0;
        rc = pipe_next_plan(ctx, m, &o, 2 * budget, none, rej, 1, &p1, &e);
        CHECK(rc == 0 && p1 && !covers(m, none, p1, p0), "after fc1 svd %d + fc2 svd %d are rejected: fc1 svd %d, fc2 "
              "svd %d, milder on one of them", svd_rank(p0, "fc1"), svd_rank(p0, "fc2"), svd_rank(p1, "fc1"),
              svd_rank(p1, "fc2"));
        /* and a second rejection on top of the first */
        rej[1] = p1;
        rc = p1 ? pipe_next_plan(ctx, m, &o, 2 * budget, none, rej, 2, &p2, &e) : -1;
        CHECK(rc == 0 && (!p2 || (!covers(m, none, p2, p0) && !covers(m, none, p2, p1))),
              "after both are rejected: fc1 svd %d, fc2 svd %d covers neither", svd_rank(p2, "fc1"),
              svd_rank(p2, "fc2"));
    }
out:
    plan_free(p0), plan_free(p1), plan_free(p2), plan_free(again), plan_free(none);
    search_ctx_free(ctx);
    cifar10_free(set);
    model_free(m);
}

/* A stage that factorizes is judged on its best validated EPOCH, never on its factorized start
 * (whose validation accuracy is what the search chose the plan for); a stage that only
 * fine-tunes keeps its start when training loses. Training at lr 1 destroys the net in one epoch. */
static void test_stage_epoch(void)
{
    rs_err e = {{0}};
    rs_model *m;
    cifar10_set *set;
    if (shipped_and_sample(&m, &set) != 0)
        return;
    int half = set->n / 2;
    cifar10_set tr = *set, va = *set; /* views: the first half trains, the second validates */
    tr.n = half;
    va.n = set->n - half;
    va.pixels = set->pixels + (size_t)half * CIFAR10_PIXELS;
    va.labels = set->labels + half;
    finetune_options base;
    finetune_default_options(&base);
    base.train.nthreads = 2;
    rs_plan *plan = plan_of("fc1=svd:40"), *none = plan_alloc();
    recipe_stage st = {plan, 1, 1.0, 7, 0, 0.5, 4.0, 0};
    rs_model *out = NULL;
    finetune_report rep;
    int rc = plan && none ? pipe_stage_apply(m, m, &st, &tr, &va, &base, &out, &rep, &e) : -1;
    CHECK(rc == 0 && rep.kept_epoch == 1 && rep.kept_val_acc < rep.start_val_acc - 0.2,
          "fc1 svd 40 at lr 1: the stage returns its trained epoch (%d; val %.1f%%, start %.1f%%) (%s)",
          rep.kept_epoch, 100 * rep.kept_val_acc, 100 * rep.start_val_acc, rc ? e.msg : "ok");
    model_free(out);
    out = NULL;
    st.plan = none;
    rc = none ? pipe_stage_apply(m, m, &st, &tr, &va, &base, &out, &rep, &e) : -1;
    CHECK(rc == 0 && rep.kept_epoch == 0 && rep.kept_val_acc == rep.start_val_acc,
          "fine-tuning only, at lr 1: the start is kept (epoch %d, val %.1f%%) (%s)", rep.kept_epoch,
          100 * rep.kept_val_acc, rc ? e.msg : "ok");
    model_free(out);
    plan_free(plan), plan_free(none);
    cifar10_free(set);
    model_free(m);
}

int main(void)
{
    rs_model *m = testnet_lenet(11);
    rs_err e = {{0}};
    CHECK(m && model_infer_shapes(m, &e) == 0, "reference net");
    float *x = malloc(sizeof(float) * 3072 * N_IMG);
    uint64_t st = 99;
    for (int i = 0; i < 3072 * N_IMG; ++i)
        x[i] = testnet_rand(&st);
    fold_case(m, "fc1=svd:12,fc2=svd:9", x);
    fold_case(m, "conv2=spatial-svd:5", x);
    fold_case(m, "conv2=tucker2:6:3,conv1=tucker2:4:2", x);
    fold_case(m, "conv2=cp:7", x);
    /* a factor chain that is not the layer's: refused with the layer's name */
    rs_model *f = model_clone(m);
    rs_plan *p = plan_alloc();
    plan_parse_spec(p, "fc1=svd:12", &e);
    plan_apply(f, p, NULL, NULL, &e);
    int k = model_find_node(f, "fc1_f0");
    if (k >= 0)
        f->nodes[k].op = RS_OP_RELU; /* breaks the chain */
    int rc = pipe_fold_layer(f, m, "fc1", &e);
    CHECK(k >= 0 && rc != 0 && strstr(e.msg, "fc1"), "a broken chain is refused: %s", e.msg);
    plan_free(p);
    model_free(f);
    free(x);
    model_free(m);
    test_next_plan();
    test_stage_epoch();
    return check_done();
}
