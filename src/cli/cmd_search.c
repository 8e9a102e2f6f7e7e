/* cmd_search.c — `rankscope search`: the indirect problem (rank search on the validation split),
 * and with --curve the accuracy-vs-reduction curve (pipeline.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_run.h"
#include "rankscope/pipeline.h"

static void search_usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope search [MODEL.onnx] [--strategy naive|bisect|global|evbmf]\n"
            "                        [--tolerance PTS | --relative D] [--objective params|macs|both|latency]\n"
            "                        [--methods spatial-svd,tucker2,cp] [--layers a,b] [--sens-images N]\n"
            "                        [--data DIR] [--split val|sample] [--threads N] [-o PLAN.txt]\n"
            "                        [--curve [--finetune N] [--distill]] [--min-macs-ratio R]\n"
            "                        [--fit weights|outputs|layers] [--calib-images N]\n"
            "                        [--verbose] [--json]\n"
            "  Smallest-cost plan whose accuracy on the VALIDATION split (last 5,000 training images)\n"
            "  stays within --tolerance points (default 1.0) of the original, or >= (1-D)·original\n"
            "  with --relative D. The chosen plan is then reported on the test set.\n"
            "  --objective both (default) minimises params/params0 + MACs/MACs0; latency minimises the\n"
            "  layers' measured time (cached per machine), --latency b1 (batch 1, default) or batch.\n"
            "  --min-macs-ratio R (global): also require whole-network MACs <= MACs0/R (0 = none).\n"
            "  --curve: test accuracy at 1.5×, 2×, 2.5×, 3×, 4× fewer parameters (least estimated\n"
            "  drop from the global sensitivity tables), without and (--finetune N) with fine-tuning.\n"
            "  --fit outputs: every plan tried is factorized with its factors fitted to each layer's\n"
            "  outputs on the first N training images (default 1,000; sequential, as decompose/eval\n"
            "  --fit outputs), so the search ranks the data-aware factors.\n"
            "  Ctrl-C stops the search and reports the best plan found so far.\n");
}

typedef struct search_cmd {
    search_options so;
    const char *split;
    int curve, distill;
    long epochs;
} search_cmd;

enum { O_LAYERS = 'L', O_SPLIT = 's', O_CURVE = 'C', O_FINETUNE = 'F', O_DISTILL = 'D' };

static const cli_opt search_opts[] = {
    {"strategy", 1, CLI_SO_STRATEGY, 0},  {"tolerance", 1, CLI_SO_TOLERANCE, 0}, {"relative", 1, CLI_SO_RELATIVE, 0},
    {"objective", 1, CLI_SO_OBJECTIVE, 0}, {"methods", 1, CLI_SO_METHODS, 0},    {"layers", 1, O_LAYERS, 0},
    {"sens-images", 1, CLI_SO_SENS, 0},   {"split", 1, O_SPLIT, 0},         {"curve", 0, O_CURVE, 0},
    {"finetune", 1, O_FINETUNE, 0},  {"distill", 0, O_DISTILL, 0},     {"min-macs-ratio", 1, CLI_SO_MACS_RATIO, 0},
    {"latency", 1, CLI_SO_LATENCY, 0},
    {0, 0, 0, 0}};

static int search_option(void *cmd, int key, const char *arg)
{
    search_cmd *c = cmd;
    int rc;
    if (!cli_search_option(&c->so, key, arg, &rc))
        return rc;
    switch (key) {
    case O_LAYERS: c->so.layers = arg; return 0;
    case O_SPLIT: c->split = arg; return 0;
    case O_CURVE: c->curve = 1; return 0;
    case O_FINETUNE: return cli_parse_int("--finetune", arg, 0, 1000, &c->epochs) ? CLI_USAGE : 0;
    case O_DISTILL: c->distill = 1; return 0;
    }
    return CLI_USAGE;
}

/* --layers a,b: every item must name a weighted layer (any spelling model_find_layer knows),
 * once; rewritten into out as the names the search uses (model_layer_name). A list that
 * selected nothing used to search nothing and say "(empty)". Prints the error, returns -1. */
static int resolve_layers(const rs_model *m, const char *list, char *out, size_t len)
{
    out[0] = 0;
    size_t k = 0;
    int item = 0, nodes[512], n = 0;
    for (const char *p = list;; ++item) {
        size_t l = strcspn(p, ",");
        char name[256];
        if (l == 0 || l >= sizeof name) {
            cli_error("--layers \"%s\": item %d is %s", list, item + 1, l ? "too long" : "empty");
            return -1;
        }
        memcpy(name, p, l);
        name[l] = 0;
        int node = model_find_layer(m, name);
        if (node < 0 || !model_is_weighted(m, node)) {
            cli_error("--layers: \"%s\" is not a %s layer of the model", name,
                      node < 0 ? "known" : "weighted");
            return -1;
        }
        for (int j = 0; j < n; ++j)
            if (nodes[j] == node) {
                cli_error("--layers: \"%s\" names a layer already listed (item %d)", name, j + 1);
                return -1;
            }
        if (n < (int)(sizeof nodes / sizeof nodes[0]))
            nodes[n++] = node;
        char buf[256];
        const char *shown = model_layer_name(m, node, buf, sizeof buf);
        int w = snprintf(out + k, len - k, "%s%s", k ? "," : "", shown);
        if (w < 0 || (size_t)w >= len - k) {
            cli_error("--layers: too many layers");
            return -1;
        }
        k += (size_t)w;
        if (!p[l])
            return 0;
        p += l + 1;
    }
}

/* ---- the trade-off curve ------------------------------------------------------------------------ */
typedef struct curve_out {
    int json;
} curve_out;

static int curve_point(void *user, const pipe_curve_point *pt)
{
    const curve_out *o = user;
    cli_progress_end();
    if (pt->unreachable) {
        if (!o->json)
            printf("%-7.1f unreachable: %s\n", pt->target, pt->unreachable);
        return cli_interrupted;
    }
    const plan_cost *pc = &pt->cost;
    if (o->json) {
        printf("%s{\"target\": %.2f, \"params_ratio\": %.4f, \"macs_ratio\": %.4f, \"est_drop\": %.3f, "
               "\"acc\": %.6f, \"acc_finetuned\": ",
               pt->index ? ", " : "", pt->target, cli_ratio(pc->params_before, pc->params_after),
               cli_ratio(pc->macs_before, pc->macs_after), pt->est_drop, pt->acc);
        if (pt->acc_finetuned >= 0)
            printf("%.6f, \"plan\": ", pt->acc_finetuned);
        else
            printf("null, \"plan\": ");
        cli_json_plan(stdout, pt->plan);
        printf("}");
    } else {
        char txt[512];
        printf("%-7.1f %-9.2f %-7.2f %-8.2f %6.2f%%    ", pt->target, cli_ratio(pc->params_before, pc->params_after),
               cli_ratio(pc->macs_before, pc->macs_after), pt->est_drop, 100 * pt->acc);
        if (pt->acc_finetuned >= 0)
            printf("%6.2f%%    ", 100 * pt->acc_finetuned);
        else
            printf("%-10s ", "");
        printf(" %s\n", pipe_plan_oneline(pt->plan, txt, sizeof txt));
        fflush(stdout);
    }
    return cli_interrupted;
}

static int run_curve(const rs_model *m, search_ctx *ctx, const search_cmd *c, const cli_args *a, cli_run *run,
                     const cifar10_set *train, const cifar10_set *val, const cifar10_set *test)
{
    int64_t p0, m0;
    model_totals(m, &p0, &m0);
    double base_test = -1;
    if (test && cli_eval_acc(m, test, a->threads, &base_test) != 0)
        return -1;
    double base = test ? base_test : search_ctx_base_acc(ctx);
    if (!a->json) {
        printf("trade-off curve (ranks allocated from the validation sensitivity tables; accuracy on %s)\n",
               test ? "test" : "the search split");
        printf("original: params %lld, MACs %lld, accuracy %.2f%%\n", (long long)p0, (long long)m0, 100 * base);
        printf("%-7s %-9s %-7s %-8s %-10s %-10s  plan\n", "target", "params×", "MACs×", "est.drop", "acc",
               c->epochs > 0 ? "acc+ft" : "");
    } else
        printf("{\"curve\": [");
    finetune_options fo;
    finetune_default_options(&fo);
    fo.train.epochs = (int)c->epochs;
    fo.distill = c->distill;
    fo.train.nthreads = a->threads;
    cli_run_finetune(run, &fo);
    curve_out out = {a->json};
    pipe_curve_options po = {NULL, 0, &c->so, test ? test : val, a->threads, c->epochs > 0 ? &fo : NULL,
                             train, val, curve_point, &out};
    rs_err e = {{0}};
    int rc = pipe_curve_run(m, ctx, &po, &e);
    cli_progress_end();
    if (rc != 0 && !(rc == RS_CANCELLED && cli_interrupted)) {
        cli_error("%s", e.msg);
        return -1;
    }
    if (a->json)
        printf("], \"acc_before\": %.6f, \"finetune_epochs\": %ld}\n", base, c->epochs);
    return 0;
}

/* ---- the search --------------------------------------------------------------------------------- */
static void print_search_json(const search_cmd *c, const cli_args *a, const search_result *r, const cifar10_set *val,
                              const cifar10_set *test, double test_base, double test_acc, int fell_back)
{
    const search_options *so = &c->so;
    printf("{\"strategy\": \"%s\", \"objective\": \"%s\", \"fit\": \"%s\", \"calib_images\": %d, ",
           search_strategy_name(so->strategy), search_objective_name(so->objective),
           so->fit_calib ? "outputs" : "weights", so->fit_calib ? so->fit_n : 0);
    if (so->relative > 0)
        printf("\"relative\": %.6g, ", so->relative);
    else
        printf("\"tolerance\": %.6g, ", so->tolerance);
    printf("\"search_split\": \"%s\", \"search_images\": %d, \"trials\": %d, \"evaluations\": %d, "
           "\"seconds\": %.3f, \"backoff_steps\": %d, \"violations\": %d, \"cancelled\": %s, "
           "\"within\": %s, \"plan\": ",
           c->split, val->n, r->trials, r->evaluations, r->seconds, r->backoff_steps, r->violations,
           r->cancelled ? "true" : "false", r->within ? "true" : "false");
    cli_json_plan(stdout, r->plan);
    printf(", ");
    cli_json_cost(stdout, &r->cost);
    printf(", \"val_acc_before\": %.6f, \"val_acc\": %.6f", r->base_acc, r->acc);
    if (test_acc >= 0)
        printf(", \"test_acc_before\": %.6f, \"test_acc\": %.6f, \"test_images\": %d, \"test_is_sample\": %s",
               test_base, test_acc, test->n, fell_back ? "true" : "false");
    if (a->out) {
        printf(", \"plan_file\": ");
        cli_json_string(stdout, a->out);
    }
    printf("}\n");
}

static void print_search_text(const search_cmd *c, const cli_args *a, const search_result *r, const cifar10_set *val,
                              double test_base, double test_acc, int fell_back)
{
    const search_options *so = &c->so;
    printf("search: %s, ", search_strategy_name(so->strategy));
    if (so->relative > 0)
        printf("relative tolerance %.3g, ", so->relative);
    else
        printf("tolerance %.2f pt, ", so->tolerance);
    printf("objective %s, on %s (%d images)%s%s\n", search_objective_name(so->objective), c->split, val->n,
           so->fit_calib ? ", factors fitted to layer outputs" : "", r->cancelled ? " — CANCELLED, best plan so far" : "");
    printf("trials %d, evaluations %d, %.1f s, back-off steps %d, monotonicity violations %d\n", r->trials,
           r->evaluations, r->seconds, r->backoff_steps, r->violations);
    printf("plan:\n");
    cli_print_plan(stdout, r->plan);
    cli_print_cost(stdout, &r->cost);
    printf("%-19s %6.2f%% → %6.2f%% (%+.2f pt)%s\n", strcmp(c->split, "val") ? "sample accuracy" : "validation accuracy",
           100 * r->base_acc, 100 * r->acc, 100 * (r->acc - r->base_acc), r->within ? "" : "  (outside the tolerance)");
    if (test_acc >= 0)
        printf("test accuracy       %6.2f%% → %6.2f%% (%+.2f pt)%s\n", 100 * test_base, 100 * test_acc,
               100 * (test_acc - test_base), fell_back ? "  [test = shipped sample]" : "");
    if (a->out)
        printf("plan saved to %s\n", a->out);
}

/* The searched plan on the test set: the original's accuracy and the plan's. */
static int test_plan(const rs_model *m, const rs_plan *p, const search_options *so, const cifar10_set *test,
                     int threads, double *base, double *acc)
{
    rs_err e = {{0}};
    rs_model *fm = model_clone(m);
    if (!fm || search_apply_plan(fm, p, so, &e) != 0) {
        cli_error("%s", fm ? e.msg : "out of memory");
        model_free(fm);
        return -1;
    }
    int rc = cli_eval_acc(m, test, threads, base) != 0 || cli_eval_acc(fm, test, threads, acc) != 0 ? -1 : 0;
    model_free(fm);
    return rc;
}

static int run_search(const rs_model *m, search_ctx *ctx, const search_cmd *c, const cli_args *a,
                      const cifar10_set *val, const cifar10_set *test, int fell_back)
{
    rs_err e = {{0}};
    search_result r;
    memset(&r, 0, sizeof r);
    int rc = search_ctx_run(ctx, &c->so, &r, &e);
    cli_progress_end();
    if (rc != 0 && rc != RS_CANCELLED) {
        cli_error("%s", e.msg);
        search_result_free(&r);
        return -1;
    }
    double test_base = -1, test_acc = -1;
    rc = 0;
    if (test && !r.cancelled)
        rc = test_plan(m, r.plan, &c->so, test, a->threads, &test_base, &test_acc);
    if (rc == 0)
        rc = cli_save_plan(r.plan, a->out);
    if (rc == 0 && a->json)
        print_search_json(c, a, &r, val, test, test_base, test_acc, fell_back);
    else if (rc == 0)
        print_search_text(c, a, &r, val, test_base, test_acc, fell_back);
    search_result_free(&r);
    return rc;
}

int cmd_search(int argc, char **argv)
{
    static const cli_spec spec = {"search", CLI_A_DATA | CLI_A_THREADS | CLI_A_OUTPUT | CLI_A_VERBOSE | CLI_A_JSON |
                                                CLI_A_FIT,
                                  search_opts, search_option, search_usage, 1};
    search_cmd c = {.split = "val"};
    search_default_options(&c.so);
    cli_args a;
    int rc = cli_parse(&spec, argc, argv, &c, &a);
    if (rc >= 0)
        return rc;
    if (strcmp(c.split, "val") && strcmp(c.split, "sample")) {
        cli_error("search: --split \"%s\" (expected val or sample; searching on test is not allowed)", c.split);
        return CLI_USAGE;
    }
    /* the plan written by -o must never land on the input model (no --force here) */
    if (a.out && (cli_check_output(a.out, a.model ? a.model : cli_default_model(), 0) != 0 ||
                  cli_check_output_inputs("-o", a.out, &(cli_inputs){.reads_data = 1, .data = a.data}) != 0))
        return CLI_USAGE;
    cli_run run = {a.verbose, a.json, a.verbose};
    c.so.nthreads = a.threads;
    cli_run_search(&run, &c.so);
    rs_model *m = cli_load_model(a.model);
    if (!m)
        return CLI_FAIL;
    static char layers[8192];
    if (c.so.layers) {
        if (resolve_layers(m, c.so.layers, layers, sizeof layers) != 0) {
            model_free(m);
            return CLI_USAGE;
        }
        c.so.layers = layers;
    }
    int fell_back = 0, rcode = CLI_FAIL;
    cifar10_set *val = cli_load_split(a.data, c.split, NULL), *test = NULL, *train = NULL;
    search_ctx *ctx = NULL;
    rs_err e = {{0}};
    float *calib = NULL;
    if (!val || cli_fit_search(&a, &c.so, &calib) != 0)
        goto done;
    if (!strcmp(c.split, "val") && !(test = cli_load_split(a.data, "test", &fell_back)))
        goto done;
    cli_catch_sigint();
    if (!(ctx = search_ctx_create(m, val, a.threads, &e))) {
        cli_error("%s", e.msg);
        goto done;
    }
    if (c.curve && c.epochs > 0 && !(train = cli_load_split(a.data, "train", NULL)))
        goto done;
    if (c.curve)
        rcode = run_curve(m, ctx, &c, &a, &run, train, val, test) == 0 ? CLI_OK : CLI_FAIL;
    else
        rcode = run_search(m, ctx, &c, &a, val, test, fell_back) == 0 ? CLI_OK : CLI_FAIL;
done:
    cli_progress_end();
    free(calib);
    search_ctx_free(ctx);
    cifar10_free(val);
    cifar10_free(test);
    cifar10_free(train);
    model_free(m);
    return rcode;
}
