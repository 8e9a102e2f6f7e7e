/* test_staged.c — folding a factorized layer back into one layer (pipe_fold_layer, the step that
 * lets a later stage of staged compression factorize a layer again): for every method's chain,
 * the folded net computes what the factorized net computes (logits within 1e-4 relative, an
 * independent path: the factors run as separate layers there), has the original's nodes and
 * weight shapes again, and can be factorized again at a lower rank. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rankscope/infer.h"
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
    return check_done();
}
