/* test_latency.c — the latency cache (per machine key, keyed by layer geometry, atomic save,
 * foreign or broken files ignored) and rank efficiency decided from the recorded times. No
 * assertion depends on how fast anything runs: times are only compared with themselves, with
 * figures the test writes into the cache, or (speed verdicts) between layers 64× apart in work. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "rankscope/cifar10.h"
#include "rankscope/latency.h"
#include "rankscope/pipeline.h"
#include "rankscope/search.h"
#include "testnet.h"

static char dir[256];

static lat_table *open_tab(void)
{
    lat_options o;
    lat_default_options(&o);
    o.reps = 3, o.batch = 4, o.min_sample_s = 1e-5;
    o.cache_dir = dir;
    rs_err e = {{0}};
    return lat_open(&o, &e);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = calloc(1, 1 << 20);
    size_t n = fread(b, 1, (1 << 20) - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* The global search under the latency objective: every factorized layer of the plan is measured
 * faster than it was; the plan's summed time is below the
 * original's; other strategies are refused. */
static void test_search(const rs_model *m)
{
    rs_err e = {{0}};
    search_objective ob;
    CHECK(search_objective_parse("latency", &ob, &e) == 0 && ob == SEARCH_OBJ_LATENCY &&
              !strcmp(search_objective_name(ob), "latency"),
          "objective \"latency\" parses and prints");
    cifar10_set *set = cifar10_load_split(NULL, "sample", NULL, &e);
    CHECK(set != NULL, "shipped sample (%s)", set ? "ok" : e.msg);
    if (!set)
        return;
    lat_options lo;
    lat_default_options(&lo);
    lo.reps = 1, lo.batch = 2, lo.min_sample_s = 0, lo.cache_dir = dir;
    lat_table *lt = lat_open(&lo, &e);
    search_options so;
    search_default_options(&so);
    so.objective = SEARCH_OBJ_LATENCY;
    so.latency = lt;
    so.tolerance = 50.0; /* a random net: let the search factorize */
    so.sens_images = 100;
    so.nthreads = 1;
    search_ctx *c = search_ctx_create(m, set, 1, &e);
    search_result r;
    so.strategy = SEARCH_BISECT;
    int rc = search_ctx_run(c, &so, &r, &e);
    CHECK(rc != 0 && strstr(e.msg, "needs the global strategy"), "bisect refused: %s", e.msg);
    search_result_free(&r);
    so.strategy = SEARCH_GLOBAL;
    rc = search_ctx_run(c, &so, &r, &e);
    CHECK(rc == 0 && r.plan, "global search, objective latency (%s)", rc ? e.msg : "ok");
    if (rc == 0 && r.plan) {
        CHECK(r.plan->n > 0, "it factorized %d layers", r.plan->n);
        int all_ok = 1;
        for (int i = 0; i < r.plan->n; ++i) {
            const plan_entry *pe = &r.plan->entries[i];
            int node = model_find_layer(m, pe->layer);
            lat_point p0, p1;
            rc = lat_layer(lt, m, node, DECOMP_NONE, 0, 0, &p0, &e) |
                 lat_layer(lt, m, node, pe->method, pe->rank, pe->rank2, &p1, &e);
            all_ok &= rc == 0 && p1.b1 * 1.02 < p0.b1;
        }
        CHECK(all_ok, "every planned layer measured >= 2 %% faster than before");
        double t0, t1;
        rc = search_ctx_plan_time(c, &so, NULL, &t0, &e) | search_ctx_plan_time(c, &so, r.plan, &t1, &e);
        CHECK(rc == 0 && t1 < t0, "summed layer time %.3g s -> %.3g s", t0, t1);
    }
    search_result_free(&r);
    search_ctx_free(c);
    lat_free(lt);
    cifar10_free(set);
}

/* Whole-model speed verdicts: a layer 64× lighter is measured faster (and the reverse slower)
 * on both figures; a model against itself is never called faster or slower. The cost compress
 * ranks latency plans by is the time ratio, behind every plan that misses the MAC floor.
 * A verdict needs every sample of one side below every sample of the other, so one preemption on
 * a loaded runner can spoil a measurement: each pair gets up to three measurements, and passes
 * on the first whose verdicts are the expected ones (a wrong verdict rule fails all three). */
static int measure_until(const rs_model *before, const rs_model *after, const lat_options *o, int want,
                         pipe_speed *sp, rs_err *e)
{
    int rc = 0;
    for (int attempt = 0; attempt < 3; ++attempt) {
        rc = pipe_measure_speed(before, after, o, 5, sp, e);
        if (rc != 0 || (sp->verdict_b1 == want && sp->verdict_batch == want))
            break;
        printf("# attempt %d: %s / %s (%.3f×, %.3f×), measuring again\n", attempt + 1,
               pipe_verdict_name(sp->verdict_b1), pipe_verdict_name(sp->verdict_batch), sp->speedup_b1,
               sp->speedup_batch);
    }
    return rc;
}

static void test_speed(const rs_model *lenet)
{
    rs_err e = {{0}};
    rs_model *big = testnet_gemm(1024, 1024, 1, 3), *small = testnet_gemm(1024, 16, 1, 3);
    lat_options o;
    lat_default_options(&o);
    o.reps = 3, o.batch = 8;
    pipe_speed sp;
    int rc = measure_until(big, small, &o, 1, &sp, &e);
    CHECK(rc == 0 && sp.samples == 5 && sp.batch == 8 && sp.verdict_b1 == 1 && sp.verdict_batch == 1 &&
              sp.speedup_b1 > 4 && sp.speedup_batch > 4,
          "1024→16 vs 1024→1024: measured faster on both figures (%.1f×, %.1f×) (%s)", sp.speedup_b1,
          sp.speedup_batch, rc ? e.msg : "ok");
    rc = measure_until(small, big, &o, -1, &sp, &e);
    CHECK(rc == 0 && sp.verdict_b1 == -1 && sp.verdict_batch == -1 && sp.speedup_b1 < 0.25,
          "the reverse: measured slower (%.2f×)", sp.speedup_b1);
    rc = measure_until(lenet, lenet, &o, 0, &sp, &e);
    CHECK(rc == 0 && sp.verdict_b1 == 0 && sp.verdict_batch == 0,
          "a net against itself: %s / %s (%.3f×, %.3f×)", pipe_verdict_name(sp.verdict_b1),
          pipe_verdict_name(sp.verdict_batch), sp.speedup_b1, sp.speedup_batch);
    search_options so;
    search_default_options(&so);
    so.objective = SEARCH_OBJ_LATENCY;
    so.min_macs_ratio = 2;
    double fast = pipe_compress_cost(&so, 900, 400, 1000, 1000, 0.5, 1.0);
    double floor_missed = pipe_compress_cost(&so, 100, 600, 1000, 1000, 0.1, 1.0);
    CHECK(fabs(fast - 0.5) < 1e-12 && floor_missed > fast,
          "latency cost = time ratio (%.3f); missing the MAC floor ranks last (%.3f)", fast, floor_missed);
    model_free(big);
    model_free(small);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/rs_latency_test_%d/a/b", (int)getpid());
    rs_model *m = testnet_lenet(5);
    int fc1 = model_find_node(m, "fc1"), conv2 = model_find_node(m, "conv2");
    rs_err e = {{0}};

    lat_table *t = open_tab();
    CHECK(t && strstr(lat_machine_key(t), "cpu=") && strstr(lat_machine_key(t), ";isa=") &&
              strstr(lat_machine_key(t), ";bin="),
          "machine key names CPU, ISA and binary: %s", t ? lat_machine_key(t) : "-");
    CHECK(t && !strncmp(lat_cache_path(t), dir, strlen(dir)), "cache file under the given dir: %s",
          t ? lat_cache_path(t) : "-");
    lat_point a, b, c, d;
    int rc = lat_layer(t, m, fc1, DECOMP_NONE, 0, 0, &a, &e) | lat_layer(t, m, fc1, DECOMP_SVD, 8, 0, &b, &e) |
             lat_layer(t, m, conv2, DECOMP_TUCKER2, 6, 3, &c, &e);
    CHECK(rc == 0 && a.b1 > 0 && a.batch > 0 && b.b1 > 0 && c.batch > 0, "three layers timed (%s)",
          rc ? e.msg : "ok");
    CHECK(lat_measured(t) == 3 && lat_cached(t) == 0, "3 measured, 0 cached");
    rc = lat_layer(t, m, fc1, DECOMP_SVD, 8, 0, &d, &e);
    CHECK(rc == 0 && lat_cached(t) == 1 && d.b1 == b.b1, "asked again: answered from the table");
    CHECK(lat_layer(t, m, model_find_node(m, "relu1"), DECOMP_NONE, 0, 0, &d, &e) != 0 &&
              strstr(e.msg, "not a weighted layer"),
          "a ReLU is refused: %s", e.msg);
    rc = lat_save(t, &e);
    CHECK(rc == 0 && access(lat_cache_path(t), F_OK) == 0, "saved (missing directories created) (%s)",
          rc ? e.msg : "ok");
    char path[1200];
    snprintf(path, sizeof path, "%s", lat_cache_path(t));
    lat_free(t);

    /* reopened: every figure from the cache, bit for bit (printed with 7 digits: %.6e) */
    t = open_tab();
    rc = lat_layer(t, m, fc1, DECOMP_SVD, 8, 0, &d, &e);
    CHECK(rc == 0 && lat_measured(t) == 0 && lat_cached(t) == 1 && fabs(d.b1 - b.b1) <= 1e-6 * b.b1,
          "reopened: fc1 svd 8 from the file (%.6e vs %.6e, rel. 1e-6)", d.b1, b.b1);
    /* geometry, not names: another model whose fc1 is renamed hits the same entry */
    rs_model *m2 = testnet_lenet(9);
    free(m2->nodes[fc1].name);
    m2->nodes[fc1].name = strdup("dense_one");
    rc = lat_layer(t, m2, fc1, DECOMP_NONE, 0, 0, &d, &e);
    CHECK(rc == 0 && lat_measured(t) == 0 && fabs(d.batch - a.batch) <= 1e-6 * a.batch,
          "same geometry under another name and weights: cached (rel. 1e-6)");
    lat_free(t);

    /* rank efficiency from recorded times: write fc1 svd ranks 1..12 with a step pattern in
     * which rank 8 is as fast as ranks 5..7 (a filled SIMD block) */
    char *text = slurp(path);
    CHECK(text != NULL, "read the cache file");
    char *geom_end = text ? strstr(text, "\tsvd\t8\t0\t") : NULL;
    CHECK(geom_end != NULL, "the file lists fc1 svd 8 as geometry<TAB>svd<TAB>8<TAB>0");
    if (geom_end) {
        char *ls = geom_end;
        while (ls > text && ls[-1] != '\n')
            --ls;
        char geom[300];
        snprintf(geom, sizeof geom, "%.*s", (int)(geom_end - ls), ls);
        char *head_end = strchr(strchr(text, '\n') + 1, '\n') + 1;
        size_t cap = 1 << 16;
        char *out = malloc(cap);
        size_t at = (size_t)snprintf(out, cap, "%.*s", (int)(head_end - text), text);
        static const double us[13] = {0, 10, 10, 10, 12, 16, 16, 16, 16, 20, 20, 20, 21};
        for (int r = 1; r <= 12; ++r)
            at += (size_t)snprintf(out + at, cap - at, "%s\tsvd\t%d\t0\t%.6e\t%.6e\n", geom, r, us[r] * 1e-6,
                                   us[r] * 1e-6);
        at += (size_t)snprintf(out + at, cap - at, "garbage line\n%s\tnot-a-method\t3\t0\t1\t1\n", geom);
        spit(path, out);
        free(out);
        t = open_tab();
        int eff[13];
        for (int r = 1; r <= 12; ++r)
            eff[r] = lat_efficient(t, m, fc1, DECOMP_SVD, r, 12, NULL, 1, &e);
        CHECK(lat_measured(t) == 0, "decided from the file alone (%d measured)", lat_measured(t));
        CHECK(eff[1] == 0 && eff[2] == 0 && eff[3] == 1 && eff[4] == 1 && eff[5] == 0 && eff[8] == 1 &&
                  eff[9] == 0 && eff[11] == 1 && eff[12] == 1,
              "efficient ranks are the last of each equal-time run: 3 4 8 11 12 (%d%d%d%d%d%d%d%d%d%d%d%d)",
              eff[1], eff[2], eff[3], eff[4], eff[5], eff[6], eff[7], eff[8], eff[9], eff[10], eff[11], eff[12]);
        lat_free(t);
        /* a file written under another machine key is ignored */
        text[6] = 'X'; /* "# key cpu=..." */
        spit(path, text);
        t = open_tab();
        rc = lat_layer(t, m, fc1, DECOMP_NONE, 0, 0, &d, &e);
        CHECK(rc == 0 && lat_measured(t) == 1, "a file with another machine key is not used");
        lat_free(t);
    }
    free(text);
    /* no cache at all */
    lat_options o;
    lat_default_options(&o);
    o.reps = 1, o.batch = 2, o.min_sample_s = 0, o.cache_dir = "";
    t = lat_open(&o, &e);
    rc = lat_layer(t, m, fc1, DECOMP_SVD, 4, 0, &d, &e) | lat_save(t, &e);
    CHECK(rc == 0 && lat_cache_path(t)[0] == 0, "cache_dir \"\": measured, nothing written");
    lat_free(t);
    lat_point whole;
    t = open_tab();
    rc = lat_model(t, m, &whole, &e);
    CHECK(rc == 0 && whole.b1 > 0 && whole.batch > 0, "whole model timed");
    lat_free(t);
    test_search(m);
    test_speed(m);
    model_free(m);
    model_free(m2);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/rs_latency_test_%d", (int)getpid());
    CHECK(system(cmd) == 0, "cleanup");
    return check_done();
}
