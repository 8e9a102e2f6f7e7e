/* test_search.c — rank search strategies, fine-tuning and cancellation.
 *
 * Independent references: every returned plan is re-evaluated here through search_eval_plan /
 * eval_model on a fresh copy (not the search's bookkeeping), and the synthetic task's
 * accuracy-vs-rank curve is computed by a naive SVD-free reconstruction from known factors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "testnet.h"
#include "rankscope/cifar10.h"
#include "rankscope/eval.h"
#include "rankscope/finetune.h"
#include "rankscope/search.h"
#include "rankscope/train.h"

/* every check is labelled by its own source text */
#define OK(cond) CHECK(cond, "%s", #cond)
#define NEAR(a, b, tol) CHECK_CLOSE(a, b, tol, "%s == %s within %s", #a, #b, #tol)

/* ---- a synthetic task: one Gemm 3072 → 10 whose weight is Σ s_k u_k v_kᵀ with fast-decaying s_k
 * (orthonormal u, v built by Gram-Schmidt), labels = the full-rank net's own predictions. Truncating
 * to rank r keeps the r largest terms, so accuracy rises with r (checked below, not assumed). */
#define SYN_IN 3072
#define SYN_OUT 10
#define SYN_N 600

static void gram_schmidt(double *v, int k, int n)
{
    for (int i = 0; i < k; ++i) {
        double *a = v + (size_t)i * n;
        for (int j = 0; j < i; ++j) {
            const double *b = v + (size_t)j * n;
            double d = 0;
            for (int t = 0; t < n; ++t)
                d += a[t] * b[t];
            for (int t = 0; t < n; ++t)
                a[t] -= d * b[t];
        }
        double nn = 0;
        for (int t = 0; t < n; ++t)
            nn += a[t] * a[t];
        nn = sqrt(nn);
        for (int t = 0; t < n; ++t)
            a[t] /= nn;
    }
}

static rs_model *synthetic_model(cifar10_set **set_out)
{
    uint64_t st = 99;
    rs_model *m = testnet_gemm(SYN_IN, SYN_OUT, 0, 5);
    double *u = malloc(sizeof(double) * SYN_OUT * SYN_OUT), *v = malloc(sizeof(double) * SYN_OUT * SYN_IN);
    for (int i = 0; i < SYN_OUT * SYN_OUT; ++i)
        u[i] = testnet_rand(&st);
    for (int i = 0; i < SYN_OUT * SYN_IN; ++i)
        v[i] = testnet_rand(&st);
    gram_schmidt(u, SYN_OUT, SYN_OUT);
    gram_schmidt(v, SYN_OUT, SYN_IN);
    int w = model_find_value(m, "fc.weight");
    float *W = m->values[w].f; /* out × in (trans_b = 1) */
    for (int o = 0; o < SYN_OUT; ++o)
        for (int i = 0; i < SYN_IN; ++i) {
            double s = 0;
            for (int k = 0; k < SYN_OUT; ++k)
                s += pow(0.6, k) * u[k * SYN_OUT + o] * v[(size_t)k * SYN_IN + i];
            W[(size_t)o * SYN_IN + i] = (float)(s * 10.0);
        }
    rs_err e;
    cifar10_set *s = cifar10_alloc(SYN_N, &e);
    for (size_t i = 0; i < (size_t)SYN_N * CIFAR10_PIXELS; ++i)
        s->pixels[i] = (uint8_t)((testnet_rand(&st) + 1.0f) * 127.99f);
    /* labels: argmax of the exact logits, computed here in double */
    for (int n = 0; n < SYN_N; ++n) {
        int best = 0;
        double bv = -1e300;
        for (int o = 0; o < SYN_OUT; ++o) {
            double z = 0;
            for (int i = 0; i < SYN_IN; ++i)
                z += (double)W[(size_t)o * SYN_IN + i] * (s->pixels[(size_t)n * CIFAR10_PIXELS + i] / 127.5 - 1.0);
            if (z > bv) {
                bv = z;
                best = o;
            }
        }
        s->labels[n] = (uint8_t)best;
    }
    free(u);
    free(v);
    *set_out = s;
    return m;
}

static int within(double base, double acc, double tol_pts)
{
    return acc >= base - tol_pts / 100.0 - 1e-12;
}

static void test_synthetic_naive_bisect(void)
{
    cifar10_set *s;
    rs_model *m = synthetic_model(&s);
    rs_err e = {{0}};
    double base;
    OK(search_eval_plan(m, NULL, s, 1, &base, &e) == 0);
    NEAR(base, 1.0, 1e-9); /* labels are the float net's own predictions (up to ties) */

    /* the accuracy curve, measured independently: monotone in rank? */
    double acc[SYN_OUT + 1];
    int monotone = 1;
    for (int r = 1; r <= 9; ++r) {
        rs_plan *p = plan_alloc();
        plan_set(p, "fc", DECOMP_SVD, r, 0, &e);
        OK(search_eval_plan(m, p, s, 1, &acc[r], &e) == 0);
        plan_free(p);
        if (r > 1 && acc[r] < acc[r - 1])
            monotone = 0;
    }
    OK(monotone);
    OK(acc[1] < 0.9); /* the task really needs rank */

    const double tols[] = {1.0, 5.0, 20.0};
    for (int ti = 0; ti < 3; ++ti) {
        search_options o;
        search_default_options(&o);
        o.tolerance = tols[ti];
        o.objective = SEARCH_OBJ_PARAMS;
        o.nthreads = 1;
        search_result rn, rb;
        o.strategy = SEARCH_NAIVE;
        OK(search_run(m, s, &o, &rn, &e) == 0);
        o.strategy = SEARCH_BISECT;
        OK(search_run(m, s, &o, &rb, &e) == 0);
        /* the expected rank from the independent curve: smallest r within tolerance (<= 9 saves) */
        int expect = 0;
        for (int r = 1; r <= 9 && !expect; ++r)
            if (within(base, acc[r], tols[ti]))
                expect = r;
        const plan_entry *pn = plan_find(rn.plan, "fc"), *pb = plan_find(rb.plan, "fc");
        OK(expect == 0 ? pn == NULL : (pn && pn->rank == expect));
        OK(expect == 0 ? pb == NULL : (pb && pb->rank == expect));
        OK(rb.violations == 0);
        OK(rb.evaluations <= rn.evaluations + 2);
        double a;
        OK(search_eval_plan(m, rb.plan, s, 1, &a, &e) == 0);
        OK(within(base, a, tols[ti]));
        NEAR(a, rb.acc, 1e-12);
        printf("# synthetic tol %.0f: naive rank %d (%d evals), bisect rank %d (%d evals), expected %d\n", tols[ti],
               pn ? pn->rank : 0, rn.evaluations, pb ? pb->rank : 0, rb.evaluations, expect);
        search_result_free(&rn);
        search_result_free(&rb);
    }
    /* relative form: accuracy >= (1 - δ)·base */
    search_options o;
    search_default_options(&o);
    o.relative = 0.1;
    o.strategy = SEARCH_GLOBAL;
    search_result rg;
    OK(search_run(m, s, &o, &rg, &e) == 0);
    OK(rg.acc >= 0.9 * base - 1e-12 && rg.within);
    search_result_free(&rg);
    model_free(m);
    cifar10_free(s);
}

/* ---- the reference net on the shipped sample: a few quick epochs on 1,500 images, search on
 * the other 500. */
static rs_model *sample_net(cifar10_set **search_set, cifar10_set **train_set)
{
    rs_err e = {{0}};
    cifar10_set *all = cifar10_load_split(NULL, "sample", NULL, &e);
    if (!all) {
        printf("# %s\n", e.msg);
        return NULL;
    }
    int ntr = all->n * 3 / 4, nse = all->n - ntr;
    cifar10_set *tr = cifar10_alloc(ntr, &e), *se = cifar10_alloc(nse, &e);
    memcpy(tr->pixels, all->pixels, (size_t)ntr * CIFAR10_PIXELS);
    memcpy(tr->labels, all->labels, (size_t)ntr);
    memcpy(se->pixels, all->pixels + (size_t)ntr * CIFAR10_PIXELS, (size_t)nse * CIFAR10_PIXELS);
    memcpy(se->labels, all->labels + ntr, (size_t)nse);
    cifar10_free(all);
    rs_model *m = train_reference_net(3, &e);
    train_data td;
    finetune_data_of(tr, &td);
    train_options o;
    train_default_options(&o);
    o.epochs = 12;
    o.batch = 32;
    o.lr = 0.05f;
    o.augment = 0;
    OK(train_model(m, &td, NULL, &o, NULL, &e) == 0);
    *search_set = se;
    *train_set = tr;
    return m;
}

static int count_trials(void *user, const search_trial *t)
{
    int *n = user;
    (void)t;
    ++*n;
    return 0;
}

static void test_sample_strategies(rs_model *m, const cifar10_set *se)
{
    rs_err e = {{0}};
    double base;
    OK(search_eval_plan(m, NULL, se, 0, &base, &e) == 0);
    printf("# sample net: %.1f%% on its 500-image search set\n", 100 * base);
    OK(base > 0.2); /* it learned something: the tolerance is not trivially met */
    for (int st = 0; st < SEARCH_STRATEGY_COUNT; ++st) {
        search_options o;
        search_default_options(&o);
        o.strategy = (search_strategy)st;
        o.tolerance = 2.0;
        o.conv_methods = 1u << DECOMP_SPATIAL_SVD;
        if (st == SEARCH_GLOBAL) {
            o.conv_methods |= 1u << DECOMP_TUCKER2;
            o.sens_images = 300; /* the tables on a subset; the verification on all 500 */
        }
        int ntr = 0;
        o.on_trial = count_trials;
        o.trial_user = &ntr;
        search_result r;
        double t0 = rs_now();
        int rc = search_run(m, se, &o, &r, &e);
        OK(rc == 0);
        if (rc != 0) {
            printf("# %s: %s\n", search_strategy_name(o.strategy), e.msg);
            continue;
        }
        double a;
        OK(search_eval_plan(m, r.plan, se, 0, &a, &e) == 0);
        NEAR(a, r.acc, 1e-12);
        NEAR(r.base_acc, base, 1e-12);
        if (st != SEARCH_EVBMF)
            OK(within(base, a, 2.0) && r.within);
        else
            OK(r.within == within(base, a, 2.0));
        OK(ntr == r.evaluations);
        OK(r.cost.params_after <= r.cost.params_before);
        char *txt = NULL;
        plan_format(r.plan, &txt, &e);
        for (char *q = txt; q && *q; ++q)
            if (*q == '\n')
                *q = ';';
        printf("# %-6s %5.1fs %3d evals: %.1f%% params %.2fx MACs %.2fx  %s\n", search_strategy_name(o.strategy),
               rs_now() - t0, r.evaluations, 100 * a, (double)r.cost.params_before / r.cost.params_after,
               (double)r.cost.macs_before / r.cost.macs_after, txt ? txt : "");
        free(txt);
        if (st == SEARCH_GLOBAL)
            OK(r.plan->n > 0); /* 2 points on a 500-image set leaves room to factorize */
        search_result_free(&r);
    }
}

/* ---- acceptance noise: the paired standard error against a naive per-image computation ------- */
static double naive_paired_se(int a_only, int b_only, int n)
{
    /* the d_i vector written out: -1 for a_only images, +1 for b_only, 0 elsewhere */
    double *d = calloc((size_t)n, sizeof *d);
    for (int i = 0; i < a_only; ++i)
        d[i] = -1.0;
    for (int i = 0; i < b_only; ++i)
        d[a_only + i] = 1.0;
    double mean = 0, ss = 0;
    for (int i = 0; i < n; ++i)
        mean += d[i];
    mean /= n;
    for (int i = 0; i < n; ++i)
        ss += (d[i] - mean) * (d[i] - mean);
    free(d);
    return 100.0 * sqrt(ss / (n - 1) / n);
}

static void test_paired_se(void)
{
    const int cases[][3] = {{300, 200, 5000}, {0, 0, 5000}, {1, 0, 2}, {250, 250, 5000}, {37, 412, 10000}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        double se = search_paired_se(cases[i][0], cases[i][1], cases[i][2]);
        double ref = naive_paired_se(cases[i][0], cases[i][1], cases[i][2]);
        NEAR(se, ref, 1e-9);
    }
    /* the closed form on a typical case: 750 of 5,000 images disagreeing evenly (≈ 0.55 pt) */
    NEAR(search_paired_se(375, 375, 5000), 100.0 * sqrt(750.0 / 4999.0 / 5000.0), 1e-9);
    OK(search_paired_se(0, 0, 1) == 0.0);

    /* counts on a real pair of nets: the synthetic net and its rank-2 truncation */
    cifar10_set *s;
    rs_model *m = synthetic_model(&s);
    rs_err e = {{0}};
    rs_model *w = model_clone(m);
    rs_plan *p = plan_alloc();
    OK(plan_set(p, "fc", DECOMP_SVD, 2, 0, &e) == 0);
    OK(plan_apply(w, p, NULL, NULL, &e) == 0);
    double acc_m, acc_w;
    OK(search_eval_plan(m, NULL, s, 1, &acc_m, &e) == 0);
    OK(search_eval_plan(m, p, s, 1, &acc_w, &e) == 0);
    int ao = -1, bo = -1, ao2 = -1, bo2 = -1;
    OK(search_paired_counts(m, w, s, 1, &ao, &bo, &e) == 0);
    OK(search_paired_counts(w, m, s, 1, &ao2, &bo2, &e) == 0);
    printf("# rank-2 truncation: %d lost, %d gained of %d; paired SE %.3f pt\n", ao, bo, s->n,
           search_paired_se(ao, bo, s->n));
    OK(ao > 0);               /* the truncation does lose images (acc[2] < 1 above) */
    OK(ao == bo2 && bo == ao2); /* swapping the nets swaps the counts */
    NEAR((double)(bo - ao) / s->n, acc_w - acc_m, 1e-12); /* the difference eval_model measures */
    OK(search_paired_counts(m, m, s, 1, &ao, &bo, &e) == 0);
    OK(ao == 0 && bo == 0);
    plan_free(p);
    model_free(w);
    model_free(m);
    cifar10_free(s);
}

/* ---- the MAC floor: objective params under whole-network MACs <= MACs0 / R ------------------ */
static void plan_ratios(const rs_model *m, const rs_plan *p, double *pr, double *mr, int64_t *params)
{
    plan_cost pc;
    rs_err e = {{0}};
    OK(plan_cost_of(m, p, &pc, &e) == 0);
    *pr = (double)pc.params_before / pc.params_after;
    *mr = (double)pc.macs_before / pc.macs_after;
    *params = pc.params_after;
}

static void test_mac_floor(rs_model *m, const cifar10_set *se)
{
    rs_err e = {{0}};
    search_ctx *ctx = search_ctx_create(m, se, 0, &e);
    OK(ctx != NULL);
    if (!ctx)
        return;
    search_options o;
    search_default_options(&o);
    o.conv_methods = 1u << DECOMP_SPATIAL_SVD;
    o.sens_images = 300;
    const double budget = 6.0; /* estimated points */
    rs_plan *pp = NULL, *pm = NULL, *pf = NULL, *px = NULL;
    double pr0, mr0, prm, mrm, prf, mrf, prx, mrx;
    int64_t par0, parm, parf, parx;
    o.objective = SEARCH_OBJ_PARAMS;
    OK(search_ctx_plan_for_drop(ctx, &o, budget, &pp, NULL, &e) == 0);
    o.objective = SEARCH_OBJ_MACS;
    OK(search_ctx_plan_for_drop(ctx, &o, budget, &pm, NULL, &e) == 0);
    if (!pp || !pm) {
        search_ctx_free(ctx);
        return;
    }
    plan_ratios(m, pp, &pr0, &mr0, &par0);
    plan_ratios(m, pm, &prm, &mrm, &parm);
    printf("# floor: params-only plan %.2fx params %.2fx MACs; MACs-only plan %.2fx / %.2fx\n", pr0, mr0, prm, mrm);
    /* the test needs room between the two optima, else the floor cannot bind */
    OK(mrm > mr0 * 1.02);
    double R = sqrt(mr0 * mrm);
    o.objective = SEARCH_OBJ_PARAMS;
    o.min_macs_ratio = R;
    OK(search_ctx_plan_for_drop(ctx, &o, budget, &pf, NULL, &e) == 0);
    if (pf) {
        plan_ratios(m, pf, &prf, &mrf, &parf);
        printf("# floor %.3fx: %.2fx params %.2fx MACs\n", R, prf, mrf);
        OK(mrf >= R * (1 - 1e-9));  /* the floor holds */
        OK(parf >= par0);            /* and costs params: never better than the unconstrained optimum */
    }
    /* a floor beyond every plan within the budget: best effort, the most MAC-saving λ */
    o.min_macs_ratio = mrm * 10;
    OK(search_ctx_plan_for_drop(ctx, &o, budget, &px, NULL, &e) == 0);
    if (px) {
        plan_ratios(m, px, &prx, &mrx, &parx);
        OK(mrx > mr0);
    }
    /* no floor: exactly the params-only plan again (the multiplier is reset) */
    o.min_macs_ratio = 0;
    rs_plan *pz = NULL;
    OK(search_ctx_plan_for_drop(ctx, &o, budget, &pz, NULL, &e) == 0);
    if (pz) {
        char *a = NULL, *b = NULL;
        plan_format(pz, &a, &e);
        plan_format(pp, &b, &e);
        OK(a && b && !strcmp(a, b));
        free(a);
        free(b);
    }
    o.min_macs_ratio = -1;
    search_result r;
    OK(search_ctx_run(ctx, &o, &r, &e) != 0); /* a negative floor is refused */
    plan_free(pz);
    plan_free(pp);
    plan_free(pm);
    plan_free(pf);
    plan_free(px);
    search_ctx_free(ctx);
}

typedef struct cancel_state {
    int trials, after;
    double t_cancel;
} cancel_state;

static int cancel_after(void *user, const search_trial *t)
{
    cancel_state *c = user;
    (void)t;
    if (++c->trials >= c->after) {
        c->t_cancel = rs_now();
        return 1;
    }
    return 0;
}

static void test_cancel(rs_model *m, const cifar10_set *se)
{
    rs_err e = {{0}};
    double base;
    OK(search_eval_plan(m, NULL, se, 0, &base, &e) == 0);
    for (int st = 0; st < 3; ++st) {
        search_options o;
        search_default_options(&o);
        o.strategy = (search_strategy)st;
        o.tolerance = 3.0;
        o.conv_methods = 1u << DECOMP_SPATIAL_SVD;
        cancel_state cs = {0, 6, 0};
        o.on_trial = cancel_after;
        o.trial_user = &cs;
        search_result r;
        int rc = search_run(m, se, &o, &r, &e);
        double lag = rs_now() - cs.t_cancel;
        OK(rc == RS_CANCELLED);
        OK(r.cancelled == 1);
        OK(cs.trials == 6);
        OK(lag < 0.5); /* returned promptly (no further evaluation after the cancel) */
        OK(r.plan != NULL);
        if (r.plan) {
            /* best so far: verified within tolerance on the whole set (or the empty plan) */
            double a;
            OK(search_eval_plan(m, r.plan, se, 0, &a, &e) == 0);
            OK(within(base, a, 3.0));
            printf("# cancel %s after 6 trials: %d-entry plan, %.1f%% (lag %.3fs)\n",
                   search_strategy_name(o.strategy), r.plan->n, 100 * a, lag);
        }
        search_result_free(&r);
    }
}

static void test_finetune(rs_model *m, const cifar10_set *tr)
{
    rs_err e = {{0}};
    rs_plan *p = plan_alloc();
    OK(plan_parse_spec(p, "fc1=svd:4,conv2=spatial-svd:3", &e) == 0);
    train_data td;
    finetune_data_of(tr, &td);
    td.n = 600; /* keep it quick */
    rs_model *fm = model_clone(m);
    OK(plan_apply(fm, p, NULL, NULL, &e) == 0);
    double acc0, loss0;
    OK(train_evaluate(fm, &td, 0, &acc0, &loss0, &e) == 0);
    for (int mode = 0; mode < 3; ++mode) {
        finetune_options o;
        finetune_default_options(&o);
        o.train.epochs = 2;
        o.train.batch = 50;
        o.train.augment = 0;
        o.train.lr = 0.02f;
        o.factors_only = mode == 1;
        o.distill = mode == 2;
        rs_model *out = NULL;
        train_epoch_stats last;
        int rc = finetune_run(m, p, &td, NULL, &o, &out, &last, &e);
        OK(rc == 0);
        if (rc != 0) {
            printf("# finetune: %s\n", e.msg);
            continue;
        }
        double acc1, loss1;
        OK(train_evaluate(out, &td, 0, &acc1, &loss1, &e) == 0);
        printf("# finetune mode %d: loss %.4f -> %.4f, acc %.3f -> %.3f\n", mode, loss0, loss1, acc0, acc1);
        OK(loss1 < loss0 * 0.97);
        if (mode == 1) {
            /* factors-only: non-factor weights unchanged, bit for bit */
            int v0 = model_find_value(m, "fc2.weight"), v1 = model_find_value(out, "fc2.weight");
            OK(v0 >= 0 && v1 >= 0);
            if (v0 >= 0 && v1 >= 0)
                OK(memcmp(m->values[v0].f, out->values[v1].f, 84 * 120 * sizeof(float)) == 0);
        }
        model_free(out);
    }
    model_free(fm);
    plan_free(p);
}

int main(void)
{
    rs_gsl_init();
    test_synthetic_naive_bisect();
    test_paired_se();
    cifar10_set *se = NULL, *tr = NULL;
    rs_model *m = sample_net(&se, &tr);
    OK(m != NULL);
    if (m) {
        test_sample_strategies(m, se);
        test_mac_floor(m, se);
        test_cancel(m, se);
        test_finetune(m, tr);
    }
    model_free(m);
    cifar10_free(se);
    cifar10_free(tr);
    return check_done();
}
