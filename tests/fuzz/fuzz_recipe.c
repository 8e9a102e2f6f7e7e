/* fuzz_recipe.c — libFuzzer target for the staged-compression recipe parser (recipe.h). Every
 * input either parses or fails with a one-line message naming the input; every recipe that
 * parses must format and re-parse to an equal recipe (stages, plans, numbers bit for bit), and
 * the formatted text must format again to the same bytes. Built only with -Dfuzz=true. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_recipe: %s: %s\n", what, msg ? msg : "");
    abort();
}

static int same_plan(const rs_plan *a, const rs_plan *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; ++i) {
        const plan_entry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->layer, y->layer) || x->method != y->method || x->rank != y->rank || x->rank2 != y->rank2)
            return 0;
    }
    return 1;
}

static int same(const rs_recipe *a, const rs_recipe *b)
{
    if (a->train_images != b->train_images || a->val_images != b->val_images || a->fit_outputs != b->fit_outputs ||
        a->calib_images != b->calib_images || a->int8 != b->int8 || a->int8_epochs != b->int8_epochs ||
        a->n_stages != b->n_stages)
        return 0;
    for (int i = 0; i < a->n_stages; ++i) {
        const recipe_stage *x = &a->stages[i], *y = &b->stages[i];
        if (x->epochs != y->epochs || x->lr != y->lr || x->seed != y->seed || x->distill != y->distill ||
            (x->distill && (x->alpha != y->alpha || x->temp != y->temp)) || !same_plan(x->plan, y->plan))
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) /* recipes are a few dozen lines */
        return 0;
    char *text = malloc(size + 1);
    rs_recipe *r = recipe_alloc(), *again = recipe_alloc();
    if (!text || !r || !again)
        fail("alloc", "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    rs_err e = {{0}};
    if (recipe_parse_text(r, text, "fuzz.recipe", &e) != 0) {
        if (strncmp(e.msg, "fuzz.recipe", 11) || strchr(e.msg, '\n'))
            fail("recipe_parse_text: message must be one line naming the input", e.msg);
        if (r->n_stages != 0)
            fail("recipe_parse_text", "stages left behind after an error");
    } else {
        char *t1 = NULL, *t2 = NULL;
        if (recipe_format(r, &t1, &e) != 0)
            fail("recipe_format", e.msg);
        if (recipe_parse_text(again, t1, "formatted", &e) != 0)
            fail("re-parsing recipe_format's output", e.msg);
        if (!same(r, again))
            fail("recipe_format round trip", t1);
        if (recipe_format(again, &t2, &e) != 0 || strcmp(t1, t2))
            fail("formatting twice", t1);
        free(t1);
        free(t2);
    }
    recipe_free(r);
    recipe_free(again);
    free(text);
    return 0;
}
