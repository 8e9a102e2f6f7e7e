/* test_bn_train.c — BatchNormalization trained for real, against PyTorch (tests/bn_train_ref.py):
 * batch statistics in the forward pass, the gradients of every parameter (γ and β included),
 * the running mean/variance update (momentum 0.1, unbiased variance) and eval-mode logits after
 * it; the same on two worker threads, whose slices must share the whole batch's statistics.
 * Tolerances: the engine computes in float, PyTorch in double; 1e-4 relative to max(1, |ref|). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ref_ops.h"
#include "rankscope/infer.h"
#include "rankscope/model.h"
#include "rankscope/train.h"

enum { N = 6, C = 3, H = 6, W = 6, M = 4, CLS = 5 };
#define TOL 1e-4

typedef struct golden {
    float x[N * C * H * W], labels[N], wconv[M * C * 9], bconv[M], gamma[M], beta[M], rm[M], rv[M],
        wfc[CLS * M], bfc[CLS];
    float logits[N * CLS], loss[1];
    float g_wconv[M * C * 9], g_bconv[M], g_gamma[M], g_beta[M], g_wfc[CLS * M], g_bfc[CLS];
    float rm_after[M], rv_after[M], eval_logits[N * CLS];
} golden;

static int read_golden(golden *g)
{
    const char *root = getenv("RS_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/bn_train_ref.f32", root ? root : ".");
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t got = fread(g, 1, sizeof *g, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    return got == sizeof *g && !extra ? 0 : -1;
}

static rs_model *build(const golden *g)
{
    rs_model *m = model_alloc();
    int x = model_add_value(m, "input", NULL);
    m->values[x].ndim = 4;
    m->values[x].dims[0] = -1, m->values[x].dims[1] = C, m->values[x].dims[2] = H,
    m->values[x].dims[3] = W;
    m->input = x;
    int cv = model_add_op(m, "conv", RS_OP_CONV, &x, 1, NULL, NULL);
    {
        int64_t dw[4] = {M, C, 3, 3}, db[1] = {M};
        int w = model_add_const(m, "conv.weight", 4, dw, g->wconv, NULL);
        int b = model_add_const(m, "conv.bias", 1, db, g->bconv, NULL);
        rs_node *n = &m->nodes[cv];
        n->in[1] = w, n->in[2] = b, n->n_in = 3;
        n->kernel[0] = n->kernel[1] = 3;
        n->pads[0] = n->pads[1] = n->pads[2] = n->pads[3] = 1;
    }
    int bn = model_add_op(m, "bn", RS_OP_BATCHNORM, &m->nodes[cv].out[0], 1, NULL, NULL);
    {
        int64_t d[1] = {M};
        const float *src[4] = {g->gamma, g->beta, g->rm, g->rv};
        const char *nm[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
        for (int k = 0; k < 4; ++k)
            m->nodes[bn].in[k + 1] = model_add_const(m, nm[k], 1, d, src[k], NULL);
        m->nodes[bn].n_in = 5;
        m->nodes[bn].epsilon = 1e-5f;
    }
    int r = model_add_op(m, "relu", RS_OP_RELU, &m->nodes[bn].out[0], 1, NULL, NULL);
    int gp = model_add_op(m, "gap", RS_OP_GLOBALAVGPOOL, &m->nodes[r].out[0], 1, NULL, NULL);
    int fl = model_add_op(m, "flat", RS_OP_FLATTEN, &m->nodes[gp].out[0], 1, NULL, NULL);
    m->nodes[fl].axis = 1;
    int fc = model_add_op(m, "fc", RS_OP_GEMM, &m->nodes[fl].out[0], 1, NULL, NULL);
    {
        int64_t dw[2] = {CLS, M}, db[1] = {CLS};
        int w = model_add_const(m, "fc.weight", 2, dw, g->wfc, NULL);
        int b = model_add_const(m, "fc.bias", 1, db, g->bfc, NULL);
        rs_node *n = &m->nodes[fc];
        n->in[1] = w, n->in[2] = b, n->n_in = 3, n->trans_b = 1;
    }
    m->output = m->nodes[fc].out[0];
    rs_err e = {{0}};
    if (model_infer_shapes(m, &e)) {
        printf("# shapes: %s\n", e.msg);
        model_free(m);
        return NULL;
    }
    return m;
}

static void run(const golden *g, int threads)
{
    rs_model *m = build(g);
    CHECK(m != NULL, "%d thread(s): the net builds", threads);
    if (!m)
        return;
    rs_err e = {{0}};
    uint8_t lab[N];
    for (int i = 0; i < N; ++i)
        lab[i] = (uint8_t)g->labels[i];
    train_net *t = train_net_create(m, N, threads, NULL, 0, &e);
    double loss = 0;
    int ok = t && train_net_grad(t, g->x, lab, N, NULL, 0, 1, &loss, NULL, &e) == 0;
    CHECK(ok, "%d thread(s): forward + backward in training mode (%s)", threads, e.msg);
    if (!ok) {
        train_net_free(t);
        model_free(m);
        return;
    }
    CHECK(ref_max_rel_err(train_net_logits(t), g->logits, (size_t)(N * CLS)) <= TOL,
          "%d thread(s): logits with batch statistics match PyTorch: %.2e", threads,
          ref_max_rel_err(train_net_logits(t), g->logits, (size_t)(N * CLS)));
    CHECK_CLOSE(loss, g->loss[0], TOL, "%d thread(s): loss %.6f vs PyTorch %.6f", threads, loss,
                g->loss[0]);
    struct { const char *name; const float *ref; int n; } p[] = {
        {"conv.weight", g->g_wconv, M * C * 9}, {"conv.bias", g->g_bconv, M},
        {"bn.weight", g->g_gamma, M},           {"bn.bias", g->g_beta, M},
        {"fc.weight", g->g_wfc, CLS * M},       {"fc.bias", g->g_bfc, CLS}};
    for (size_t k = 0; k < sizeof p / sizeof p[0]; ++k) {
        const float *gr = train_net_param_grad(t, model_find_value(m, p[k].name));
        double err = gr ? ref_max_rel_err(gr, p[k].ref, (size_t)p[k].n) : 1e9;
        CHECK(err <= TOL, "%d thread(s): d loss / d %s matches PyTorch: %.2e", threads, p[k].name, err);
    }
    const float *rm = m->values[model_find_value(m, "bn.running_mean")].f;
    const float *rv = m->values[model_find_value(m, "bn.running_var")].f;
    CHECK(ref_max_rel_err(rm, g->rm_after, (size_t)M) <= TOL &&
              ref_max_rel_err(rv, g->rv_after, (size_t)M) <= TOL,
          "%d thread(s): running mean/var updated as PyTorch (momentum 0.1, unbiased): %.2e %.2e",
          threads, ref_max_rel_err(rm, g->rm_after, (size_t)M),
          ref_max_rel_err(rv, g->rv_after, (size_t)M));
    float ev[N * CLS];
    ok = infer_forward_naive(m, g->x, N, ev, &e) == 0;
    CHECK(ok && ref_max_rel_err(ev, g->eval_logits, (size_t)(N * CLS)) <= TOL,
          "%d thread(s): eval-mode logits after the update match PyTorch: %.2e", threads,
          ok ? ref_max_rel_err(ev, g->eval_logits, (size_t)(N * CLS)) : -1.0);
    /* eval mode inside the training net: the running statistics, and no update */
    float rm0[M];
    memcpy(rm0, rm, sizeof rm0);
    train_net_set_training(t, 0);
    ok = train_net_grad(t, g->x, lab, N, NULL, 0, 1, &loss, NULL, &e) == 0;
    CHECK(ok && ref_max_rel_err(train_net_logits(t), g->eval_logits, (size_t)(N * CLS)) <= TOL &&
              memcmp(rm0, rm, sizeof rm0) == 0,
          "%d thread(s): eval mode uses and keeps the running statistics", threads);
    train_net_free(t);
    model_free(m);
}

int main(void)
{
    static golden g;
    int ok = read_golden(&g) == 0;
    CHECK(ok, "golden file tests/data/bn_train_ref.f32 reads (%zu bytes)", sizeof g);
    if (ok) {
        run(&g, 1);
        run(&g, 2);
        run(&g, 3); /* slices of 2 images each */
    }
    return check_done();
}
