/* test_plan.c — rank plans: text and spec parsing with line-numbered errors, atomic save and
 * reload, validation messages, apply (the factorized net evaluates, and matches the layer-by-layer
 * costs), whole-network cost summary by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "rankscope/infer.h"
#include "rankscope/plan.h"
#include "testnet.h"

static void test_parse(void)
{
    rs_err e = {{0}};
    rs_plan *p = plan_alloc();
    int rc = plan_parse_text(p,
                             "# a plan\n"
                             "conv2 spatial-svd 12   # trailing comment\n"
                             "\n"
                             "  fc1\tsvd 32\n"
                             "conv1 tucker2 4,2\n"
                             "fc3 none\n",
                             "t.plan", &e);
    CHECK(rc == 0 && p->n == 4, "parse 4 entries (%s)", rc ? e.msg : "ok");
    const plan_entry *c2 = plan_find(p, "conv2"), *f1 = plan_find(p, "fc1"), *c1 = plan_find(p, "conv1"),
                     *f3 = plan_find(p, "fc3");
    CHECK(c2 && c2->method == DECOMP_SPATIAL_SVD && c2->rank == 12, "conv2 spatial-svd 12");
    CHECK(f1 && f1->method == DECOMP_SVD && f1->rank == 32, "fc1 svd 32");
    CHECK(c1 && c1->method == DECOMP_TUCKER2 && c1->rank == 4 && c1->rank2 == 2, "conv1 tucker2 4,2");
    CHECK(f3 && f3->method == DECOMP_NONE, "fc3 none");
    /* the spec overrides an entry for the same layer and adds new ones */
    rc = plan_parse_spec(p, "conv2=cp:16,fc2=svd:20,conv1=tucker2:6:3", &e);
    c2 = plan_find(p, "conv2");
    c1 = plan_find(p, "conv1");
    CHECK(rc == 0 && p->n == 5 && c2->method == DECOMP_CP && c2->rank == 16 && c1->rank == 6 && c1->rank2 == 3,
          "spec overrides conv2 and conv1, adds fc2 (%s)", rc ? e.msg : "ok");

    static const struct { const char *text, *want; } bad[] = {
        {"fc1 svd 32\nfc2 svd x1\n", "t.plan:2: layer fc2: bad rank \"x1\""},
        {"fc1 qr 3\n", "t.plan:1: layer fc1: unknown method \"qr\""},
        {"fc1 svd\n", "t.plan:1: layer fc1: missing rank for svd"},
        {"fc1\n", "t.plan:1: layer fc1: missing method"},
        {"fc1 svd 3 4\n", "t.plan:1: unexpected \"4\""},
        {"fc1 svd 0\n", "bad rank \"0\""},
        {"fc1 svd 3,2\n", "t.plan:1: layer fc1: svd takes one rank"},
        {"fc1 none 3\n", "method none takes no rank"},
        /* one layer twice in one file: which line wins would be silent */
        {"fc1 svd 8\n# x\nfc1 svd 4\n", "t.plan:3: layer fc1 is given twice: line 1 and line 3"},
        {"fc1 svd 8\nfc2 none\nfc2 svd 3\n", "line 2 and line 3"},
        /* an error quoting a word must not send a control byte to the terminal */
        {"fc1 svd 8\nfc2 \x1b[2Jsvd 3\n", "t.plan:2: control character 0x1b at column 5"},
        /* a parse error after an entry was taken (fuzz finding: leaked the seen-list) */
        {"fc1 svd 1\nnftc\r2 svd 8\n", "t.plan:2: unexpected \"8\""},
        {"fc1 svd 1\nfc2\n", "t.plan:2: layer fc2: missing method"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        rs_plan *q = plan_alloc();
        rc = plan_parse_text(q, bad[i].text, "t.plan", &e);
        CHECK(rc == -1 && strstr(e.msg, bad[i].want), "bad plan %zu rejected: %s", i, e.msg);
        plan_free(q);
    }
    static const struct { const char *spec, *want; } bad_spec[] = {
        {"conv2", "is not layer=method:rank"},
        {"conv2=cp", "missing rank for cp"},
        {"conv2=cp:-3", "bad rank \"-3\""},
        {"", "empty spec"},
        {",", "item 1 is empty"},
        {",,", "item 1 is empty"},
        {"fc1=svd:8,", "item 2 is empty"},
        {"fc1=svd:8,,fc2=svd:3", "item 2 is empty"},
        {"fc1=svd:8,fc2=svd:3,fc1=cp:2", "layer fc1 is given twice: item 1 and item 3"},
        {"fc1=svd:8,3", "svd takes one rank (got \"8,3\")"},
        {"conv1=tucker2:4,3,9", "bad rank \"4,3,9\""},
        {"fc1=svd:8,fc2=\x1b[2Jsvd:3", "--ranks: control character 0x1b at position 15"},
    };
    for (size_t i = 0; i < sizeof bad_spec / sizeof bad_spec[0]; ++i) {
        rs_plan *q = plan_alloc();
        rc = plan_parse_spec(q, bad_spec[i].spec, &e);
        CHECK(rc == -1 && strstr(e.msg, bad_spec[i].want), "bad spec \"%s\" rejected: %s", bad_spec[i].spec, e.msg);
        plan_free(q);
    }

    /* a UTF-8 byte order mark (Windows editors) is not part of the first layer name */
    rs_plan *bom = plan_alloc();
    rc = plan_parse_text(bom, "\xEF\xBB\xBF" "fc1 svd 8\r\nfc2 none\r\n", "bom.plan", &e);
    CHECK(rc == 0 && bom->n == 2 && plan_find(bom, "fc1") && plan_find(bom, "fc1")->rank == 8,
          "plan with a UTF-8 BOM and CRLF lines parses (%s)", rc ? e.msg : "ok");
    plan_free(bom);
    /* tucker2's two ranks keep their comma inside --ranks: "R_out,R_in" and "R_out:R_in" agree */
    rs_plan *tk = plan_alloc();
    rc = plan_parse_spec(tk, "conv1=tucker2:4,3,fc1=svd:8,conv2=tucker2:5,2", &e);
    const plan_entry *t1 = plan_find(tk, "conv1"), *t2 = plan_find(tk, "conv2");
    CHECK(rc == 0 && tk->n == 3 && t1 && t1->rank == 4 && t1->rank2 == 3 && t2 && t2->rank == 5 &&
              t2->rank2 == 2 && plan_find(tk, "fc1"),
          "--ranks conv1=tucker2:4,3,fc1=svd:8,conv2=tucker2:5,2 gives three entries (%s)",
          rc ? e.msg : "ok");
    plan_free(tk);
    /* a later source still replaces an earlier one's entry (--ranks after --plan) */
    rs_plan *ov = plan_alloc();
    rc = plan_parse_text(ov, "fc1 svd 8\n", "a.plan", &e);
    rc = rc ? rc : plan_parse_spec(ov, "fc1=svd:4", &e);
    CHECK(rc == 0 && ov->n == 1 && ov->entries[0].rank == 4, "--ranks overrides the plan file's fc1");
    plan_free(ov);

    /* save atomically, load back, same plan */
    char dir[] = "/tmp/rs_plan_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temp dir");
    char path[256];
    snprintf(path, sizeof path, "%s/p.plan", dir);
    rc = plan_save(p, path, &e);
    rs_plan *back = rc == 0 ? plan_load(path, &e) : NULL;
    int same = back && back->n == p->n;
    for (int i = 0; same && i < p->n; ++i) {
        const plan_entry *a = &p->entries[i], *b = plan_find(back, a->layer);
        same = b && b->method == a->method && b->rank == a->rank && b->rank2 == a->rank2;
    }
    CHECK(same, "save + load round-trips %d entries (%s)", p->n, back ? "ok" : e.msg);
    plan_free(back);
    CHECK(plan_load("/nonexistent/x.plan", &e) == NULL && strstr(e.msg, "/nonexistent/x.plan"),
          "missing plan file named: %s", e.msg);
    unlink(path);
    rmdir(dir);
    rs_plan *cl = plan_clone(p);
    CHECK(cl && cl->n == p->n && plan_remove(cl, "fc2") == 1 && cl->n == p->n - 1 && plan_remove(cl, "fc2") == 0,
          "clone + remove");
    plan_free(cl);
    plan_free(p);
}

static void test_apply(void)
{
    rs_err e = {{0}};
    rs_model *m = testnet_lenet(5);
    rs_plan *p = plan_alloc();
    /* validation errors name the layer and value; nothing is changed */
    static const struct { const char *spec, *want; } bad[] = {
        {"fc9=svd:3", "plan: layer \"fc9\" not found"},
        {"fc1=svd:500", "fc1: rank 500 out of range 1..120"},
        {"fc1=cp:4", "fc1: cp needs a Conv layer"},
        {"conv2=svd:4", "conv2: svd is for dense"},
        {"conv2=tucker2:8:7", "conv2: input rank 7 out of range 1..6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        plan_clear(p);
        int rc = plan_parse_spec(p, bad[i].spec, &e);
        int n_nodes = m->n_nodes;
        rc = rc ? rc : plan_apply(m, p, NULL, NULL, &e);
        CHECK(rc == -1 && strstr(e.msg, bad[i].want) && m->n_nodes == n_nodes, "%s rejected: %s", bad[i].spec,
              e.msg);
    }
    /* whole-network cost by hand. lenet: conv1 456, conv2 2416, fc1 48120, fc2 10164, fc3 850
     * = 62006 params; MACs conv1 6·28·28·75 = 352800, conv2 240000, fc 48000 + 10080 + 840
     * = 651720. Plan: conv2 spatial r12 (2416 -> 1336; 240000 -> 146400),
     * fc1 svd r32 (48120 -> 16760; 48000 -> 16640) */
    plan_clear(p);
    plan_parse_spec(p, "conv2=spatial-svd:12,fc1=svd:32,fc3=none", &e);
    plan_cost c;
    int rc = plan_cost_of(m, p, &c, &e);
    CHECK(rc == 0 && c.params_before == 62006 && c.macs_before == 651720, "lenet totals 62006 params, 651720 MACs (%lld, %lld)",
          (long long)c.params_before, (long long)c.macs_before);
    CHECK(rc == 0 && c.params_after == 62006 - 1080 - 31360 && c.macs_after == 651720 - 93600 - 31360 &&
              c.bytes_after == 4 * c.params_after,
          "plan cost: params %lld, MACs %lld", (long long)c.params_after, (long long)c.macs_after);

    float x[2 * 3072], before[20], after[20];
    uint64_t st = 8;
    for (int i = 0; i < 2 * 3072; ++i)
        x[i] = testnet_rand(&st);
    infer_ctx *ctx = infer_create(m, 1, &e);
    rc = ctx ? infer_forward(ctx, x, 2, before, &e) : -1;
    infer_free(ctx);
    plan_layer_report rep[3];
    rc = rc ? rc : plan_apply(m, p, NULL, rep, &e);
    CHECK(rc == 0, "plan applied (%s)", rc ? e.msg : "ok");
    int64_t params, macs;
    model_totals(m, &params, &macs);
    CHECK(params == c.params_after && macs == c.macs_after, "factorized model totals equal the plan's cost");
    CHECK(model_find_node(m, "conv2_f0") >= 0 && model_find_node(m, "conv2_f1") >= 0 &&
              model_find_node(m, "fc1_f1") >= 0 && model_find_node(m, "fc3") >= 0 && model_find_node(m, "fc1") < 0,
          "factor nodes named conv2_f0.., fc1_f0..; fc3 kept");
    CHECK(rep[0].weight_error > 0 && rep[0].weight_error < 1 && rep[2].weight_error == 0, "per-layer report");
    ctx = rc == 0 ? infer_create(m, 1, &e) : NULL;
    rc = ctx ? infer_forward(ctx, x, 2, after, &e) : -1;
    int finite = rc == 0;
    for (int i = 0; finite && i < 20; ++i)
        finite = isfinite(after[i]);
    CHECK(finite, "factorized net evaluates (%s)", rc ? e.msg : "ok");
    infer_free(ctx);
    /* applying the same plan again: the layers are gone now */
    rc = plan_apply(m, p, NULL, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, "not found"), "re-applying names the missing layer: %s", e.msg);
    plan_free(p);
    model_free(m);

    /* two spellings of one layer (node name and weight name) in one plan are refused */
    m = testnet_lenet(5);
    int fc = model_find_layer(m, "fc1");
    const char *wname = fc >= 0 ? m->values[m->nodes[fc].in[1]].name : "";
    char alias[128] = "";
    size_t wl = strlen(wname);
    if (wl > 7 && !strcmp(wname + wl - 7, ".weight"))
        snprintf(alias, sizeof alias, "%.*s", (int)(wl - 7), wname);
    p = plan_alloc();
    rc = plan_set(p, m->nodes[fc].name, DECOMP_SVD, 4, 0, &e);
    if (*alias && strcmp(alias, m->nodes[fc].name))
        rc = rc ? rc : plan_set(p, alias, DECOMP_SVD, 8, 0, &e);
    rc = rc ? rc : plan_validate(m, p, &e);
    CHECK(!*alias || !strcmp(alias, m->nodes[fc].name) || (rc == -1 && strstr(e.msg, "name the same layer")),
          "\"%s\" and \"%s\" in one plan are refused: %s", m->nodes[fc].name, alias, e.msg);
    plan_free(p);
    model_free(m);
}

int main(void)
{
    test_parse();
    test_apply();
    return check_done();
}
