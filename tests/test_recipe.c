/* test_recipe.c — the staged-compression recipe format (recipe.h): a written recipe reads back
 * equal and formats to the same text; defaults; every kind of error is one line naming the file,
 * the line and the value, and leaves nothing behind. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rankscope/recipe.h"

static rs_recipe *parse(const char *text, rs_err *e)
{
    rs_recipe *r = recipe_alloc();
    if (recipe_parse_text(r, text, "r.txt", e) != 0) {
        CHECK(r->n_stages == 0, "error leaves no stage behind");
        recipe_free(r);
        return NULL;
    }
    return r;
}

static void expect_error(const char *text, const char *want)
{
    rs_err e = {{0}};
    rs_recipe *r = parse(text, &e);
    CHECK(!r && strstr(e.msg, want) && !strchr(e.msg, '\n'), "error \"%s\" (want \"%s\")", e.msg, want);
    recipe_free(r);
}

int main(void)
{
    rs_err e = {{0}};
    const char *text = "\xEF\xBB\xBFrankscope-recipe 1  # header\r\n"
                       "train-images 500\nval-images 400\nfit outputs 200\n\n"
                       "stage\n  epochs 2\n  lr 0.0049999998882412910\n  seed 7\n  distill 0.5 4\n"
                       "  plan conv2 tucker2 12,4\n  plan fc1 svd 32\n"
                       "stage\n  epochs 1\n  lr 1e-3\n  plan fc2 spatial_svd 3  # an alias\nint8 2\n";
    rs_recipe *r = parse(text, &e);
    CHECK(r != NULL, "a full recipe parses (%s)", r ? "ok" : e.msg);
    if (r) {
        const recipe_stage *s0 = &r->stages[0], *s1 = &r->stages[1];
        CHECK(r->n_stages == 2 && r->train_images == 500 && r->val_images == 400 && r->fit_outputs &&
                  r->calib_images == 200 && r->int8 && r->int8_epochs == 2,
              "header items read");
        CHECK(s0->epochs == 2 && s0->lr == 0.0049999998882412910 && s0->seed == 7 && s0->distill &&
                  s0->alpha == 0.5 && s0->temp == 4 && s0->plan->n == 2 &&
                  s0->plan->entries[0].method == DECOMP_TUCKER2 && s0->plan->entries[0].rank == 12 &&
                  s0->plan->entries[0].rank2 == 4,
              "stage 1 read exactly");
        CHECK(s1->seed == 1 && !s1->distill && s1->plan->entries[0].method == DECOMP_SPATIAL_SVD,
              "stage 2: defaults (seed 1, no distillation), method alias");
        char *t1 = NULL, *t2 = NULL;
        rs_recipe *again = NULL;
        int ok = recipe_format(r, &t1, &e) == 0 && (again = parse(t1, &e)) && recipe_format(again, &t2, &e) == 0;
        CHECK(ok && !strcmp(t1, t2) && again->stages[0].lr == s0->lr && again->stages[1].lr == s1->lr,
              "format → parse → format is the same text, the same numbers");
        free(t1), free(t2);
        recipe_free(again);
        recipe_free(r);
    }
    expect_error("", "r.txt: empty");
    expect_error("rankscope-recipe 2\n", "r.txt:1: recipe version \"2\"");
    expect_error("stage\n", "r.txt:1: \"stage\": a recipe starts with");
    expect_error("rankscope-recipe 1\n", "r.txt: no stage");
    expect_error("rankscope-recipe 1\nepochs 3\n", "r.txt:2: \"epochs\" outside a stage");
    expect_error("rankscope-recipe 1\nstage\nepochs 0\n", "r.txt:3: epochs \"0\": expected an integer 1..1000");
    expect_error("rankscope-recipe 1\nstage\nlr abc\n", "r.txt:3: lr \"abc\"");
    expect_error("rankscope-recipe 1\nstage\nepochs 1\nlr 0.1\n", "r.txt:2: stage 1 has no \"plan LAYER METHOD RANK\"");
    r = parse("rankscope-recipe 1\nstage\nepochs 2\nlr 0.1\nbn on\nplan fc1 svd 30\nstage\nepochs 3\nlr 0.1\n"
              "plan none\n", &e);
    CHECK(r && r->n_stages == 2 && r->stages[0].bn && r->stages[0].plan->n == 1 && !r->stages[1].bn &&
              r->stages[1].plan->n == 0 && r->stages[1].epochs == 3,
          "\"plan none\": a stage that only fine-tunes; \"bn on\" read (%s)", r ? "ok" : e.msg);
    if (r) {
        char *t1 = NULL;
        rs_recipe *again = NULL;
        int ok = recipe_format(r, &t1, &e) == 0 && (again = parse(t1, &e));
        CHECK(ok && strstr(t1, "  plan none\n") && strstr(t1, "  bn on\n") && again->n_stages == 2 &&
                  again->stages[1].plan->n == 0 && again->stages[0].bn,
              "\"plan none\" and \"bn on\" written and read back");
        free(t1);
        recipe_free(again);
    }
    recipe_free(r);
    expect_error("rankscope-recipe 1\nstage\nepochs 1\nlr 0.1\nplan none\nplan fc1 svd 3\n",
                 "r.txt:6: \"plan none\" and layers in one stage");
    expect_error("rankscope-recipe 1\nstage\nepochs 1\nlr 0.1\nplan fc1 svd 3\nplan none\n",
                 "r.txt:6: \"plan none\" and layers in one stage");
    expect_error("rankscope-recipe 1\nstage\nbn maybe\n", "r.txt:3: bn takes \"on\" or \"off\"");
    expect_error("rankscope-recipe 1\nstage\nlr 0.1\nplan fc1 svd 3\n", "r.txt:2: stage 1 has no \"epochs N\"");
    expect_error("rankscope-recipe 1\nstage\nepochs 1\nlr 0.1\nplan fc1 svd 3\nplan fc1 svd 2\n",
                 "r.txt:6: layer fc1 is listed twice in this stage");
    r = parse("rankscope-recipe 1\nstage\nepochs 1\nlr 0.1\nplan fc1 svd 30\nstage\nepochs 1\nlr 0.1\n"
              "plan fc1 svd 20\n", &e);
    CHECK(r && r->n_stages == 2 && r->stages[1].plan->entries[0].rank == 20,
          "a later stage may factorize a layer again (%s)", r ? "ok" : e.msg);
    recipe_free(r);
    expect_error("rankscope-recipe 1\nstage\nplan fc1 svd x\n", "r.txt:3: layer fc1: bad rank \"x\"");
    expect_error("rankscope-recipe 1\nstage\nplan fc1 blur 3\n", "r.txt:3: layer fc1");
    expect_error("rankscope-recipe 1\nstage\nplan fc1 none\n", "r.txt:3: plan takes LAYER METHOD RANK");
    expect_error("rankscope-recipe 1\nstage\ndistill 2 4\n", "r.txt:3: distill alpha \"2\"");
    expect_error("rankscope-recipe 1\nbogus 1\n", "r.txt:2: unknown item \"bogus\"");
    expect_error("rankscope-recipe 1\nfit outputs\n", "r.txt:2: fit takes");
    expect_error("rankscope-recipe 1\nstage\nepochs 1\x1b[2J\n", "r.txt:3: control character 0x1b");
    return check_done();
}
