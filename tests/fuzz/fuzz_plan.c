/* fuzz_plan.c — libFuzzer target for the plan parsers. The input is read both as a plan file
 * (plan_parse_text) and as a --ranks spec (plan_parse_spec). Every plan that parses must
 *  - format and re-parse to the same entries (plan_format / plan_parse_text round trip),
 *  - validate or be rejected cleanly against the reference net (tests/testnet.c), and
 *  - when valid, have a cost and apply to a copy of the net, leaving a model whose shapes infer
 *    and whose output is still 10 logits.
 * Decomposition iterations are capped (decomp_opts.max_iter) so a valid CP plan stays fast; the
 * point here is the parsing and validation paths, not convergence. Built only with -Dfuzz=true. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/plan.h"
#include "../testnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rs_model *reference_net;

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_plan: %s: %s\n", what, msg ? msg : "");
    abort();
}

static void check_msg(const rs_err *e, const char *what)
{
    if (e->msg[0] == '\0' || strchr(e->msg, '\n') != NULL)
        fail(what, "error message empty or not one line");
}

static int same_plan(const rs_plan *a, const rs_plan *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; ++i) {
        const plan_entry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->layer, y->layer) != 0 || x->method != y->method || x->rank != y->rank ||
            (x->method == DECOMP_TUCKER2 && x->rank2 != y->rank2))
            return 0;
    }
    return 1;
}

static void exercise(const rs_plan *p)
{
    rs_err e = {{0}};
    char *text = NULL;
    if (plan_format(p, &text, &e) != 0)
        fail("plan_format", e.msg);
    rs_plan *again = plan_alloc();
    if (!again)
        fail("plan_alloc", "out of memory");
    if (plan_parse_text(again, text, "formatted", &e) != 0)
        fail("re-parsing plan_format's output", e.msg);
    if (!same_plan(p, again))
        fail("plan_format round trip", text);
    plan_free(again);
    free(text);

    if (plan_validate(reference_net, p, &e) != 0) {
        check_msg(&e, "plan_validate");
        return;
    }
    plan_cost cost;
    if (plan_cost_of(reference_net, p, &cost, &e) != 0)
        fail("plan_cost_of on a validated plan", e.msg);
    rs_model *m = model_clone(reference_net);
    if (!m)
        fail("model_clone", "out of memory");
    decomp_opts opts;
    decomp_opts_default(&opts);
    opts.max_iter = 3;
    if (plan_apply(m, p, &opts, NULL, &e) != 0)
        fail("plan_apply on a validated plan", e.msg);
    if (m->values[m->output].ndim != 2 || m->values[m->output].dims[1] != 10)
        fail("plan_apply", "the output is no longer 10 logits");
    model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!reference_net) {
        reference_net = testnet_lenet(1);
        if (!reference_net)
            fail("testnet_lenet", "out of memory");
    }
    if (size > 65536) /* plans are a few lines; long inputs only slow the fuzzer down */
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    rs_err e = {{0}};
    rs_plan *p = plan_alloc();
    if (!p)
        fail("plan_alloc", "out of memory");
    if (plan_parse_text(p, text, "fuzz.plan", &e) == 0)
        exercise(p);
    else
        check_msg(&e, "plan_parse_text");
    plan_clear(p);
    /* a --ranks spec comes from argv, where a newline inside an item is the user's own doing, so
     * only a non-empty message is required here */
    if (plan_parse_spec(p, text, &e) == 0)
        exercise(p);
    else if (e.msg[0] == '\0')
        fail("plan_parse_spec", "empty error message");
    plan_free(p);
    free(text);
    return 0;
}
