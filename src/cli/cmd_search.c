/* cmd_search.c — `rankscope search`, `finetune` and `compress`: the indirect problem (rank search on
 * the validation split), the direct problem (training the factorized net) and both in a loop. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/cifar10.h"
#include "rankscope/eval.h"
#include "rankscope/finetune.h"
#include "rankscope/fit.h"
#include "rankscope/infer.h"
#include "rankscope/onnx.h"
#include "rankscope/plan.h"
#include "rankscope/search.h"

/* ---- shared bits ---------------------------------------------------------------------------------- */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void catch_sigint(void)
{
    interrupted = 0;
    signal(SIGINT, on_sigint);
}

static const char *plan_oneline(const rs_plan *p, char *buf, size_t len);

typedef struct run_ui {
    int verbose;
    int quiet; /* --json: nothing but the JSON on stdout, no progress */
} run_ui;

static int ui_progress(void *user, double fraction, const char *what)
{
    const run_ui *u = user;
    if (interrupted)
        return 1;
    if (!u->quiet)
        cli_progress(NULL, fraction, what);
    return 0;
}

static int ui_trial(void *user, const search_trial *t)
{
    const run_ui *u = user;
    if (interrupted)
        return 1;
    if (u->verbose && !u->quiet) {
        cli_progress_end();
        char line[512];
        fprintf(stderr, "  trial %4d %-8s %-6s acc %6.2f%% on %5d  params %7lld  MACs %8lld  %6.1fs  %s |",
                t->index, t->phase, t->layer ? t->layer : "", 100.0 * t->accuracy, t->images,
                (long long)t->params, (long long)t->macs, t->elapsed, t->within ? "ok " : "OUT");
        fprintf(stderr, " %s\n", t->plan ? plan_oneline(t->plan, line, sizeof line) : "");
    }
    return 0;
}

static unsigned parse_methods(const char *s)
{
    unsigned mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    if (!*buf || *buf == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,")) {
        cli_error("--methods \"%s\": an empty item (expected e.g. spatial-svd,tucker2)", s);
        return 0;
    }
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        decomp_method mth;
        rs_err e;
        if (decomp_method_parse(tok, &mth, &e) != 0) {
            cli_error("--methods: %s", e.msg);
            return 0;
        }
        mask |= 1u << mth;
    }
    return mask;
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

/* "conv2 spatial-svd 12; fc1 svd 32" into buf. */
static const char *plan_oneline(const rs_plan *p, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = 0;
    if (p->n == 0)
        snprintf(buf, len, "(empty)");
    for (int i = 0; i < p->n && k < len; ++i) {
        const plan_entry *en = &p->entries[i];
        int w = snprintf(buf + k, len - k, "%s%s %s %d", i ? "; " : "", en->layer, decomp_method_name(en->method),
                         en->rank);
        if (w > 0)
            k += (size_t)w;
        if (en->method == DECOMP_TUCKER2 && k < len) {
            w = snprintf(buf + k, len - k, ",%d", en->rank2);
            if (w > 0)
                k += (size_t)w;
        }
    }
    return buf;
}

static cifar10_set *load_split(const char *data, const char *split, int *fell_back)
{
    rs_err e = {{0}};
    cifar10_set *s = cifar10_load_split(data, split, fell_back, &e);
    if (!s)
        cli_error("%s%s", e.msg,
                  strcmp(split, "val") ? "" : " (the search needs the full CIFAR-10 set: --data DIR, or --split sample)");
    return s;
}

static double ratio(int64_t before, int64_t after)
{
    return after > 0 ? (double)before / (double)after : 0.0;
}

static void print_plan_text(FILE *f, const rs_plan *p)
{
    if (p->n == 0) {
        fprintf(f, "  (empty: nothing factorized)\n");
        return;
    }
    for (int i = 0; i < p->n; ++i) {
        const plan_entry *en = &p->entries[i];
        fprintf(f, "  %-8s %-12s %d", en->layer, decomp_method_name(en->method), en->rank);
        if (en->method == DECOMP_TUCKER2 && en->rank2 > 0)
            fprintf(f, ",%d", en->rank2);
        fputc('\n', f);
    }
}

static void print_cost_text(FILE *f, const plan_cost *c)
{
    char a[32], b[32];
    fprintf(f, "params     %8s → %-8s (%.2f×)\n", cli_human(c->params_before, a, sizeof a),
            cli_human(c->params_after, b, sizeof b), ratio(c->params_before, c->params_after));
    fprintf(f, "MACs/image %8s → %-8s (%.2f×)\n", cli_human(c->macs_before, a, sizeof a),
            cli_human(c->macs_after, b, sizeof b), ratio(c->macs_before, c->macs_after));
    fprintf(f, "fp32 bytes %8s → %-8s (%.2f×)\n", cli_human(c->bytes_before, a, sizeof a),
            cli_human(c->bytes_after, b, sizeof b), ratio(c->bytes_before, c->bytes_after));
}

static void json_plan(FILE *f, const rs_plan *p)
{
    fputc('[', f);
    for (int i = 0; i < p->n; ++i) {
        const plan_entry *en = &p->entries[i];
        fprintf(f, "%s{\"layer\": ", i ? ", " : "");
        cli_json_string(f, en->layer);
        fprintf(f, ", \"method\": \"%s\", \"rank\": %d", decomp_method_name(en->method), en->rank);
        if (en->method == DECOMP_TUCKER2)
            fprintf(f, ", \"rank2\": %d", en->rank2);
        fputc('}', f);
    }
    fputc(']', f);
}

static void json_cost(FILE *f, const plan_cost *c)
{
    fprintf(f, "\"params_before\": %lld, \"params_after\": %lld, \"params_ratio\": %.4f, "
               "\"macs_before\": %lld, \"macs_after\": %lld, \"macs_ratio\": %.4f, "
               "\"bytes_before\": %lld, \"bytes_after\": %lld, \"bytes_ratio\": %.4f",
            (long long)c->params_before, (long long)c->params_after, ratio(c->params_before, c->params_after),
            (long long)c->macs_before, (long long)c->macs_after, ratio(c->macs_before, c->macs_after),
            (long long)c->bytes_before, (long long)c->bytes_after, ratio(c->bytes_before, c->bytes_after));
}

static int eval_on(const rs_model *m, const cifar10_set *s, int threads, double *acc)
{
    rs_err e = {{0}};
    eval_result r;
    if (eval_model(m, s, threads, &r, NULL, NULL, &e) != 0) {
        cli_error("%s", e.msg);
        return -1;
    }
    *acc = r.accuracy;
    return 0;
}

static int save_plan_file(const rs_plan *p, const char *path)
{
    rs_err e = {{0}};
    if (!path)
        return 0;
    if (cli_check_output(path, NULL, 0) != 0)
        return -1;
    if (plan_save(p, path, &e) != 0) {
        cli_error("%s", e.msg);
        return -1;
    }
    return 0;
}

/* Seconds per image at batch 1 on one thread: the median of several timed runs. */
static double latency_b1(const rs_model *m)
{
    rs_err e = {{0}};
    infer_ctx *c = infer_create(m, 1, &e);
    if (!c)
        return -1.0;
    int in = infer_in_features(c), out = infer_out_features(c);
    float *x = calloc((size_t)in, sizeof *x), *y = calloc((size_t)out, sizeof *y);
    double t[15];
    int nt = 0;
    if (x && y) {
        for (int i = 0; i < in; ++i)
            x[i] = (float)((i * 37 % 255) / 127.5 - 1.0);
        for (int w = 0; w < 50; ++w)
            infer_forward(c, x, 1, y, &e);
        for (nt = 0; nt < 15; ++nt) {
            double t0 = rs_now();
            int reps = 200;
            for (int k = 0; k < reps; ++k)
                infer_forward(c, x, 1, y, &e);
            t[nt] = (rs_now() - t0) / reps;
        }
        for (int i = 1; i < nt; ++i)
            for (int j = i; j > 0 && t[j] < t[j - 1]; --j) {
                double s = t[j];
                t[j] = t[j - 1];
                t[j - 1] = s;
            }
    }
    free(x);
    free(y);
    infer_free(c);
    return nt ? t[nt / 2] : -1.0;
}

/* ---- search ------------------------------------------------------------------------------------- */
static void search_usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope search [MODEL.onnx] [--strategy naive|bisect|global|evbmf]\n"
            "                        [--tolerance PTS | --relative D] [--objective params|macs|both]\n"
            "                        [--methods spatial-svd,tucker2,cp] [--layers a,b] [--sens-images N]\n"
            "                        [--data DIR] [--split val|sample] [--threads N] [-o PLAN.txt]\n"
            "                        [--curve [--finetune N] [--distill]] [--min-macs-ratio R]\n"
            "                        [--verbose] [--json]\n"
            "  Smallest-cost plan whose accuracy on the VALIDATION split (last 5,000 training images)\n"
            "  stays within --tolerance points (default 1.0) of the original, or >= (1-D)·original\n"
            "  with --relative D. The chosen plan is then reported on the test set.\n"
            "  --objective both (default) minimises params/params0 + MACs/MACs0.\n"
            "  --min-macs-ratio R (global): also require whole-network MACs <= MACs0/R (0 = none).\n"
            "  --curve: test accuracy at 1.5×, 2×, 2.5×, 3×, 4× fewer parameters (least estimated\n"
            "  drop from the global sensitivity tables), without and (--finetune N) with fine-tuning.\n"
            "  Ctrl-C stops the search and reports the best plan found so far.\n");
}

static int run_curve(const rs_model *m, search_ctx *ctx, const search_options *so, const cifar10_set *train,
                     const cifar10_set *val, const cifar10_set *test, int epochs, int distill, int json,
                     run_ui *ui, int threads);

int cmd_search(int argc, char **argv)
{
    static const struct option opts[] = {
        {"strategy", required_argument, 0, 'S'}, {"tolerance", required_argument, 0, 'T'},
        {"relative", required_argument, 0, 'R'}, {"objective", required_argument, 0, 'O'},
        {"methods", required_argument, 0, 'M'},  {"layers", required_argument, 0, 'L'},
        {"sens-images", required_argument, 0, 'n'}, {"data", required_argument, 0, 'd'},
        {"split", required_argument, 0, 's'},    {"threads", required_argument, 0, 't'},
        {"output", required_argument, 0, 'o'},   {"curve", no_argument, 0, 'C'},
        {"finetune", required_argument, 0, 'F'}, {"distill", no_argument, 0, 'D'},
        {"verbose", no_argument, 0, 'v'},        {"json", no_argument, 0, 'j'},
        {"min-macs-ratio", required_argument, 0, 'm'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    search_options so;
    search_default_options(&so);
    const char *data = NULL, *split = "val", *out = NULL;
    int json = 0, curve = 0, distill = 0, c;
    long threads = 0, nimg = 0, epochs = 0;
    run_ui ui = {0, 0};
    rs_err e = {{0}};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "ho:v", opts, NULL)) != -1) {
        switch (c) {
        case 'S':
            if (search_strategy_parse(optarg, &so.strategy, &e) != 0) {
                cli_error("--strategy: %s", e.msg);
                return CLI_USAGE;
            }
            break;
        case 'T':
            if (cli_parse_double("--tolerance", optarg, 0, 100, &so.tolerance) != 0)
                return CLI_USAGE;
            break;
        case 'R':
            if (cli_parse_double("--relative", optarg, 0, 0.999, &so.relative) != 0)
                return CLI_USAGE;
            break;
        case 'O':
            if (search_objective_parse(optarg, &so.objective, &e) != 0) {
                cli_error("--objective: %s", e.msg);
                return CLI_USAGE;
            }
            break;
        case 'M':
            if (!(so.conv_methods = parse_methods(optarg)))
                return CLI_USAGE;
            break;
        case 'L': so.layers = optarg; break;
        case 'n':
            if (cli_parse_int("--sens-images", optarg, 0, 1000000, &nimg) != 0)
                return CLI_USAGE;
            so.sens_images = (int)nimg;
            break;
        case 'd': data = optarg; break;
        case 's': split = optarg; break;
        case 't':
            if (cli_parse_int("--threads", optarg, 1, 256, &threads) != 0)
                return CLI_USAGE;
            break;
        case 'o': out = optarg; break;
        case 'C': curve = 1; break;
        case 'F':
            if (cli_parse_int("--finetune", optarg, 0, 1000, &epochs) != 0)
                return CLI_USAGE;
            break;
        case 'D': distill = 1; break;
        case 'v': ui.verbose = 1; break;
        case 'j': json = 1; break;
        case 'm':
            if (cli_parse_double("--min-macs-ratio", optarg, 0, 1000, &so.min_macs_ratio) != 0)
                return CLI_USAGE;
            break;
        case 'h': search_usage(stdout); return CLI_OK;
        default:
            cli_error("search: unknown or incomplete option \"%s\"", argv[optind - 1]);
            search_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (strcmp(split, "val") && strcmp(split, "sample")) {
        cli_error("search: --split \"%s\" (expected val or sample; searching on test is not allowed)", split);
        return CLI_USAGE;
    }
    if (argc - optind > 1) {
        cli_error("search: expected at most one model, got %d arguments", argc - optind);
        return CLI_USAGE;
    }
    /* the plan written by -o must never land on the input model (no --force here) */
    if (out && (cli_check_output(out, optind < argc ? argv[optind] : cli_default_model(), 0) != 0 ||
                cli_check_output_inputs("-o", out, &(cli_inputs){.reads_data = 1, .data = data}) != 0))
        return CLI_USAGE;
    ui.quiet = json;
    so.nthreads = (int)threads;
    so.progress = ui_progress;
    so.progress_user = &ui;
    so.on_trial = ui_trial;
    so.trial_user = &ui;
    rs_model *m = cli_load_model(optind < argc ? argv[optind] : NULL);
    if (!m)
        return CLI_FAIL;
    static char layers[8192];
    if (so.layers) {
        if (resolve_layers(m, so.layers, layers, sizeof layers) != 0) {
            model_free(m);
            return CLI_USAGE;
        }
        so.layers = layers;
    }
    int fell_back = 0, rcode = CLI_FAIL;
    cifar10_set *val = load_split(data, split, NULL), *test = NULL, *train = NULL;
    search_ctx *ctx = NULL;
    search_result r;
    memset(&r, 0, sizeof r);
    if (!val)
        goto done;
    if (!strcmp(split, "val") && !(test = load_split(data, "test", &fell_back)))
        goto done;
    catch_sigint();
    if (!(ctx = search_ctx_create(m, val, (int)threads, &e))) {
        cli_error("%s", e.msg);
        goto done;
    }
    if (curve) {
        if (epochs > 0 && !(train = load_split(data, "train", NULL)))
            goto done;
        rcode = run_curve(m, ctx, &so, train, val, test, (int)epochs, distill, json, &ui, (int)threads) == 0
                    ? CLI_OK
                    : CLI_FAIL;
        goto done;
    }
    int rc = search_ctx_run(ctx, &so, &r, &e);
    cli_progress_end();
    if (rc != 0 && rc != RS_CANCELLED) {
        cli_error("%s", e.msg);
        goto done;
    }
    double test_base = -1, test_acc = -1;
    if (test && !r.cancelled) {
        rs_model *fm = model_clone(m);
        if (!fm || plan_apply(fm, r.plan, NULL, NULL, &e) != 0) {
            cli_error("%s", fm ? e.msg : "out of memory");
            model_free(fm);
            goto done;
        }
        if (eval_on(m, test, (int)threads, &test_base) != 0 || eval_on(fm, test, (int)threads, &test_acc) != 0) {
            model_free(fm);
            goto done;
        }
        model_free(fm);
    }
    if (save_plan_file(r.plan, out) != 0)
        goto done;
    if (json) {
        printf("{\"strategy\": \"%s\", \"objective\": \"%s\", ", search_strategy_name(so.strategy),
               search_objective_name(so.objective));
        if (so.relative > 0)
            printf("\"relative\": %.6g, ", so.relative);
        else
            printf("\"tolerance\": %.6g, ", so.tolerance);
        printf("\"search_split\": \"%s\", \"search_images\": %d, \"trials\": %d, \"evaluations\": %d, "
               "\"seconds\": %.3f, \"backoff_steps\": %d, \"violations\": %d, \"cancelled\": %s, "
               "\"within\": %s, \"plan\": ",
               split, val->n, r.trials, r.evaluations, r.seconds, r.backoff_steps, r.violations,
               r.cancelled ? "true" : "false", r.within ? "true" : "false");
        json_plan(stdout, r.plan);
        printf(", ");
        json_cost(stdout, &r.cost);
        printf(", \"val_acc_before\": %.6f, \"val_acc\": %.6f", r.base_acc, r.acc);
        if (test_acc >= 0)
            printf(", \"test_acc_before\": %.6f, \"test_acc\": %.6f, \"test_images\": %d, \"test_is_sample\": %s",
                   test_base, test_acc, test->n, fell_back ? "true" : "false");
        if (out) {
            printf(", \"plan_file\": ");
            cli_json_string(stdout, out);
        }
        printf("}\n");
    } else {
        printf("search: %s, ", search_strategy_name(so.strategy));
        if (so.relative > 0)
            printf("relative tolerance %.3g, ", so.relative);
        else
            printf("tolerance %.2f pt, ", so.tolerance);
        printf("objective %s, on %s (%d images)%s\n", search_objective_name(so.objective), split, val->n,
               r.cancelled ? " — CANCELLED, best plan so far" : "");
        printf("trials %d, evaluations %d, %.1f s, back-off steps %d, monotonicity violations %d\n", r.trials,
               r.evaluations, r.seconds, r.backoff_steps, r.violations);
        printf("plan:\n");
        print_plan_text(stdout, r.plan);
        print_cost_text(stdout, &r.cost);
        printf("%-19s %6.2f%% → %6.2f%% (%+.2f pt)%s\n", strcmp(split, "val") ? "sample accuracy" : "validation accuracy",
               100 * r.base_acc, 100 * r.acc, 100 * (r.acc - r.base_acc), r.within ? "" : "  (outside the tolerance)");
        if (test_acc >= 0)
            printf("test accuracy       %6.2f%% → %6.2f%% (%+.2f pt)%s\n", 100 * test_base, 100 * test_acc,
                   100 * (test_acc - test_base), fell_back ? "  [test = shipped sample]" : "");
        if (out)
            printf("plan saved to %s\n", out);
    }
    rcode = CLI_OK;
done:
    cli_progress_end();
    search_result_free(&r);
    search_ctx_free(ctx);
    cifar10_free(val);
    cifar10_free(test);
    cifar10_free(train);
    model_free(m);
    return rcode;
}

/* ---- fine-tuning --------------------------------------------------------------------------------- */
typedef struct epoch_ui {
    run_ui *ui;
    int print;
} epoch_ui;

static int ui_epoch(void *user, const train_epoch_stats *s)
{
    epoch_ui *u = user;
    if (u->print && !u->ui->quiet) {
        cli_progress_end();
        fprintf(stderr, "  epoch %2d/%d  loss %.4f  train %5.2f%%  val %5.2f%%  lr %.2e  %.1fs\n", s->epoch,
                s->epochs, s->train_loss, 100 * s->train_acc, 100 * s->val_acc, s->lr, s->seconds);
    }
    return interrupted ? 1 : 0;
}

static int ft_progress(void *user, double fraction, const char *what)
{
    (void)what;
    return ui_progress(user, fraction, "fine-tuning");
}

static void ft_setup(finetune_options *fo, run_ui *ui, epoch_ui *eu)
{
    fo->train.progress = ft_progress;
    fo->train.progress_user = ui;
    fo->train.on_epoch = ui_epoch;
    fo->train.epoch_user = eu;
}

static void finetune_usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope finetune [MODEL.onnx] (--plan FILE | --ranks SPEC) --epochs N -o OUT.onnx\n"
            "                          [--lr X] [--batch N] [--seed N] [--factors-only] [--distill]\n"
            "                          [--schedule cosine|onecycle|constant] [--data DIR] [--threads N]\n"
            "                          [--force] [--json] [--fit weights|outputs] [--calib-images N]\n"
            "  Factorizes MODEL by the plan (--fit outputs: factors fitted to each layer's outputs on the\n"
            "  first N training images, 1000) and trains it on the 45,000 training images (random crop +\n"
            "  flip), with validation accuracy per epoch; then reports test accuracy. Defaults suit\n"
            "  recovery: cosine schedule, peak lr 0.005, 10 epochs. --factors-only trains only the new\n"
            "  factor layers; --distill adds the original net's logits as a teacher (α 0.5, T 4).\n");
}

int cmd_finetune(int argc, char **argv)
{
    static const struct option opts[] = {
        {"plan", required_argument, 0, 'p'},   {"ranks", required_argument, 0, 'r'},
        {"epochs", required_argument, 0, 'E'}, {"lr", required_argument, 0, 'l'},
        {"batch", required_argument, 0, 'b'},  {"seed", required_argument, 0, 'S'},
        {"factors-only", no_argument, 0, 'f'}, {"distill", no_argument, 0, 'D'},
        {"schedule", required_argument, 0, 'c'}, {"data", required_argument, 0, 'd'},
        {"threads", required_argument, 0, 't'}, {"output", required_argument, 0, 'o'},
        {"force", no_argument, 0, 'F'},        {"json", no_argument, 0, 'j'},
        CLI_FIT_OPTIONS,
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    finetune_options fo;
    finetune_default_options(&fo);
    const char *plan_file = NULL, *spec = NULL, *data = NULL, *out = NULL;
    int json = 0, force = 0, c;
    long v;
    double lr;
    run_ui ui = {0, 0};
    cli_fit fit = {0, 0, NULL};
    float *calib = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'p': plan_file = optarg; break;
        case 'r': spec = optarg; break;
        case 'E':
            if (cli_parse_int("--epochs", optarg, 1, 1000, &v) != 0)
                return CLI_USAGE;
            fo.train.epochs = (int)v;
            break;
        case 'l':
            if (cli_parse_double("--lr", optarg, 1e-8, 10, &lr) != 0)
                return CLI_USAGE;
            fo.train.lr = (float)lr;
            break;
        case 'b':
            if (cli_parse_int("--batch", optarg, 1, 4096, &v) != 0)
                return CLI_USAGE;
            fo.train.batch = (int)v;
            break;
        case 'S':
            if (cli_parse_int("--seed", optarg, 0, 1L << 30, &v) != 0)
                return CLI_USAGE;
            fo.train.seed = (uint64_t)v;
            break;
        case 'f': fo.factors_only = 1; break;
        case 'D': fo.distill = 1; break;
        case 'c':
            if (!strcmp(optarg, "cosine"))
                fo.train.schedule = TRAIN_SCHED_COSINE;
            else if (!strcmp(optarg, "onecycle"))
                fo.train.schedule = TRAIN_SCHED_ONECYCLE;
            else if (!strcmp(optarg, "constant"))
                fo.train.schedule = TRAIN_SCHED_CONSTANT;
            else {
                cli_error("--schedule \"%s\" (expected cosine, onecycle or constant)", optarg);
                return CLI_USAGE;
            }
            break;
        case 'd': data = optarg; break;
        case 't':
            if (cli_parse_int("--threads", optarg, 1, 256, &v) != 0)
                return CLI_USAGE;
            fo.train.nthreads = (int)v;
            break;
        case 'o': out = optarg; break;
        case 'F': force = 1; break;
        case 'j': json = 1; break;
        case CLI_OPT_FIT:
        case CLI_OPT_CALIB:
            if (cli_fit_arg(c, optarg, &fit) != 0)
                return CLI_USAGE;
            break;
        case 'h': finetune_usage(stdout); return CLI_OK;
        default:
            cli_error("finetune: unknown or incomplete option \"%s\"", argv[optind - 1]);
            finetune_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!out) {
        cli_error("finetune: -o OUT.onnx is required");
        return CLI_USAGE;
    }
    if (argc - optind > 1) {
        cli_error("finetune: expected at most one model, got %d arguments", argc - optind);
        return CLI_USAGE;
    }
    const char *in = optind < argc ? argv[optind] : NULL;
    if (cli_check_output(out, in ? in : cli_default_model(), force) != 0 ||
        cli_check_output_inputs("-o", out, &(cli_inputs){.plan = plan_file, .reads_data = 1,
                                                         .data = data}) != 0)
        return CLI_USAGE;
    rs_err e = {{0}};
    rs_plan *plan = plan_file ? plan_load(plan_file, &e) : plan_alloc();
    if (!plan) {
        cli_error("%s", plan_file ? e.msg : "out of memory");
        return CLI_FAIL;
    }
    if (spec && plan_parse_spec(plan, spec, &e) != 0) {
        cli_error("%s", e.msg);
        plan_free(plan);
        return CLI_USAGE;
    }
    ui.quiet = json;
    rs_model *m = cli_load_model(in), *ft = NULL;
    int rcode = CLI_FAIL, fell_back = 0;
    cifar10_set *train = NULL, *val = NULL, *test = NULL;
    if (!m)
        goto done;
    if (plan_validate(m, plan, &e) != 0) {
        cli_error("%s", e.msg);
        goto done;
    }
    if (!(train = load_split(data, "train", NULL)) || !(val = load_split(data, "val", NULL)) ||
        !(test = load_split(data, "test", &fell_back)))
        goto done;
    catch_sigint();
    train_data td, vd;
    finetune_data_of(train, &td);
    finetune_data_of(val, &vd);
    if (fit.outputs) { /* calibration: the first N training images */
        fo.fit_n = fit.calib > 0 ? fit.calib : FIT_DEFAULT_CALIB;
        if (fo.fit_n > train->n)
            fo.fit_n = train->n;
        if (!(calib = malloc((size_t)fo.fit_n * CIFAR10_PIXELS * sizeof *calib))) {
            cli_error("out of memory for %d calibration images", fo.fit_n);
            goto done;
        }
        cifar10_normalize(train, 0, fo.fit_n, calib);
        fo.fit_calib = calib;
        if (!json)
            fprintf(stderr, "rankscope: fitting factors to layer outputs on the first %d training images "
                            "(sequential)\n", fo.fit_n);
    }
    epoch_ui eu = {&ui, 1};
    ft_setup(&fo, &ui, &eu);
    train_epoch_stats last;
    memset(&last, 0, sizeof last);
    finetune_report rep;
    fo.report = &rep;
    double t0 = rs_now();
    int rc = finetune_run(m, plan, &td, &vd, &fo, &ft, &last, &e);
    double secs = rs_now() - t0;
    cli_progress_end();
    if (rc != 0 && rc != RS_CANCELLED) {
        cli_error("%s", e.msg);
        goto done;
    }
    if (rc == RS_CANCELLED && !json)
        fprintf(stderr, "rankscope: fine-tuning interrupted after %d complete epoch%s; saving the best validated "
                        "state (%s)\n", rep.epochs_done, rep.epochs_done == 1 ? "" : "s",
                rep.kept_epoch ? "an epoch's end" : "the factorized net before training");
    double base = 0, acc = 0;
    plan_cost pc;
    if (eval_on(m, test, fo.train.nthreads, &base) != 0 || eval_on(ft, test, fo.train.nthreads, &acc) != 0)
        goto done;
    if (plan_cost_of(m, plan, &pc, &e) != 0 || onnx_save(ft, out, &e) != 0) {
        cli_error("%s", e.msg);
        goto done;
    }
    if (json) {
        printf("{\"epochs\": %d, \"epochs_done\": %d, \"lr\": %.6g, \"factors_only\": %s, \"distill\": %s, "
               "\"seconds\": %.3f, \"plan\": ",
               fo.train.epochs, rep.epochs_done, fo.train.lr, fo.factors_only ? "true" : "false",
               fo.distill ? "true" : "false", secs);
        json_plan(stdout, plan);
        printf(", ");
        json_cost(stdout, &pc);
        printf(", \"train_loss\": %.6f, \"val_acc\": %.6f, \"val_acc_start\": %.6f, \"val_acc_last\": %.6f, "
               "\"kept_epoch\": %d, \"test_acc_before\": %.6f, \"test_acc\": %.6f, "
               "\"test_images\": %d, \"test_is_sample\": %s, \"output\": ",
               last.train_loss, rep.kept_val_acc, rep.start_val_acc, last.val_acc, rep.kept_epoch, base, acc,
               test->n, fell_back ? "true" : "false");
        cli_json_string(stdout, out);
        printf("}\n");
    } else {
        printf("fine-tuned %d epoch%s in %.1f s (%s%s)\n", rep.epochs_done, rep.epochs_done == 1 ? "" : "s", secs,
               fo.factors_only ? "factors only" : "all layers", fo.distill ? ", distilled" : "");
        print_plan_text(stdout, plan);
        print_cost_text(stdout, &pc);
        if (rep.kept_epoch == 0)
            printf("validation accuracy %.2f%% before fine-tuning, %.2f%% after the last epoch: kept the net "
                   "as it was before fine-tuning (best on validation)\n",
                   100 * rep.start_val_acc, 100 * last.val_acc);
        else
            printf("validation accuracy %.2f%% before fine-tuning, %.2f%% after epoch %d of %d: kept that epoch "
                   "(best on validation)\n", 100 * rep.start_val_acc, 100 * rep.kept_val_acc, rep.kept_epoch,
                   rep.epochs_done);
        printf("test accuracy %.2f%% (original) → %.2f%% (%+.2f pt)%s\n", 100 * base, 100 * acc, 100 * (acc - base),
               fell_back ? "  [test = shipped sample]" : "");
        printf("saved %s\n", out);
    }
    rcode = CLI_OK;
done:
    cli_progress_end();
    free(calib);
    plan_free(plan);
    model_free(ft);
    model_free(m);
    cifar10_free(train);
    cifar10_free(val);
    cifar10_free(test);
    return rcode;
}

/* ---- the trade-off curve -------------------------------------------------------------------------- */
static int run_curve(const rs_model *m, search_ctx *ctx, const search_options *so, const cifar10_set *train,
                     const cifar10_set *val, const cifar10_set *test, int epochs, int distill, int json,
                     run_ui *ui, int threads)
{
    static const double targets[] = {1.5, 2.0, 2.5, 3.0, 4.0};
    enum { NT = sizeof targets / sizeof targets[0] };
    rs_err e = {{0}};
    int64_t P0, M0;
    model_totals(m, &P0, &M0);
    double base_test = -1;
    if (test && eval_on(m, test, threads, &base_test) != 0)
        return -1;
    const cifar10_set *judge = test ? test : val;
    if (!json) {
        printf("trade-off curve (ranks allocated from the validation sensitivity tables; accuracy on %s)\n",
               test ? "test" : "the search split");
        printf("original: params %lld, MACs %lld, accuracy %.2f%%\n", (long long)P0, (long long)M0,
               100 * (test ? base_test : search_ctx_base_acc(ctx)));
        printf("%-7s %-9s %-7s %-8s %-10s %-10s  plan\n", "target", "params×", "MACs×", "est.drop",
               "acc", epochs > 0 ? "acc+ft" : "");
    } else
        printf("{\"curve\": [");
    for (int k = 0; k < NT; ++k) {
        rs_plan *p = NULL;
        double drop = 0;
        int64_t budget = (int64_t)((double)P0 / targets[k]);
        if (search_ctx_plan_for_budget(ctx, so, budget, &p, &drop, &e) != 0) {
            cli_progress_end();
            if (!json)
                printf("%-7.1f unreachable: %s\n", targets[k], e.msg);
            continue;
        }
        cli_progress_end();
        plan_cost pc;
        double acc = -1, acc_ft = -1;
        if (plan_cost_of(m, p, &pc, &e) != 0 || search_eval_plan(m, p, judge, threads, &acc, &e) != 0) {
            cli_error("%s", e.msg);
            plan_free(p);
            return -1;
        }
        if (epochs > 0 && train) {
            finetune_options fo;
            finetune_default_options(&fo);
            fo.train.epochs = epochs;
            fo.distill = distill;
            fo.train.nthreads = threads;
            epoch_ui eu = {ui, ui->verbose};
            ft_setup(&fo, ui, &eu);
            train_data td, vd;
            finetune_data_of(train, &td);
            finetune_data_of(val, &vd);
            rs_model *ft = NULL;
            int rc = finetune_run(m, p, &td, &vd, &fo, &ft, NULL, &e);
            cli_progress_end();
            if (rc != 0 || eval_on(ft, judge, threads, &acc_ft) != 0) {
                if (rc != 0)
                    cli_error("%s", e.msg);
                model_free(ft);
                plan_free(p);
                return -1;
            }
            model_free(ft);
        }
        char txt[512];
        plan_oneline(p, txt, sizeof txt);
        if (json) {
            printf("%s{\"target\": %.2f, \"params_ratio\": %.4f, \"macs_ratio\": %.4f, \"est_drop\": %.3f, "
                   "\"acc\": %.6f, \"acc_finetuned\": ",
                   k ? ", " : "", targets[k], ratio(pc.params_before, pc.params_after),
                   ratio(pc.macs_before, pc.macs_after), drop, acc);
            if (acc_ft >= 0)
                printf("%.6f, \"plan\": ", acc_ft);
            else
                printf("null, \"plan\": ");
            json_plan(stdout, p);
            printf("}");
        } else {
            printf("%-7.1f %-9.2f %-7.2f %-8.2f %6.2f%%    ", targets[k], ratio(pc.params_before, pc.params_after),
                   ratio(pc.macs_before, pc.macs_after), drop, 100 * acc);
            if (acc_ft >= 0)
                printf("%6.2f%%    ", 100 * acc_ft);
            else
                printf("%-10s ", "");
            printf(" %s\n", txt);
            fflush(stdout);
        }
        plan_free(p);
        if (interrupted)
            break;
    }
    if (json)
        printf("], \"acc_before\": %.6f, \"finetune_epochs\": %d}\n", test ? base_test : search_ctx_base_acc(ctx),
               epochs);
    return 0;
}

/* ---- compress ---------------------------------------------------------------------------------------- */
static void compress_usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope compress [MODEL.onnx] [--tolerance PTS | --relative D] -o OUT.onnx\n"
            "                          [--objective params|macs|both] [--finetune N] [--distill]\n"
            "                          [--factors-only] [--lr X] [--rounds K] [--time-limit MIN]\n"
            "                          [--methods ...] [--plan-out FILE] [--data DIR] [--threads N]\n"
            "                          [--min-macs-ratio R] [--margin-z Z] [--force] [--verbose] [--json]\n"
            "  search → factorize → fine-tune → search more aggressively while the fine-tuned net\n"
            "  stays within the tolerance on the validation split → report on the test set, with\n"
            "  single-image latency (batch 1, one thread) of the original and compressed nets.\n"
            "  Later rounds allow a larger pre-fine-tuning drop budget (×2.5 while it holds, then\n"
            "  bisected); --rounds caps the fine-tunings (default 6), --time-limit the wall time\n"
            "  (minutes, default 25: no round starts that would not finish in it).\n"
            "  Defaults suit embedded targets: --objective params (flash/RAM for weights is what\n"
            "  runs out first) under a MAC floor --min-macs-ratio 1.1 (whole-network MACs at most\n"
            "  MACs0/1.1, so the factorized net also runs faster; 0 = no floor). The floor is a second\n"
            "  knapsack constraint (Lagrangian), so accuracy is not spent on MACs beyond it.\n"
            "  A fine-tuned net is kept only if its validation drop + Z·SE <= tolerance, where SE is\n"
            "  the paired standard error of the accuracy difference of the two nets on the validation\n"
            "  images (from their disagreements): with several candidates judged on the same 5,000\n"
            "  images the lucky ones would otherwise win. --margin-z Z (default 1.0, 0 = none).\n");
}

/* What compress minimises among the accepted plans: the search objective (normalised), with
 * any plan meeting the MAC floor ranked before every plan that misses it. */
static double compress_cost(const search_options *so, int64_t params, int64_t macs, int64_t P0, int64_t M0)
{
    double p = (double)params / P0, mc = (double)macs / M0;
    double cost = so->objective == SEARCH_OBJ_PARAMS ? p : so->objective == SEARCH_OBJ_MACS ? mc : p + mc;
    if (so->min_macs_ratio > 0 && (double)macs > (double)M0 / so->min_macs_ratio + 0.5)
        cost += 10.0;
    return cost;
}

typedef struct round_log {
    double budget;  /* pre-fine-tuning drop budget, points */
    double val_pre, val_post;
    int64_t params, macs;
    int accepted;
    double margin; /* Z·SE, points */
    double seconds;
    char plan[256];
} round_log;

int cmd_compress(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tolerance", required_argument, 0, 'T'}, {"relative", required_argument, 0, 'R'},
        {"objective", required_argument, 0, 'O'}, {"finetune", required_argument, 0, 'E'},
        {"distill", no_argument, 0, 'D'},         {"factors-only", no_argument, 0, 'f'},
        {"lr", required_argument, 0, 'l'},        {"rounds", required_argument, 0, 'k'},
        {"time-limit", required_argument, 0, 'L'}, {"methods", required_argument, 0, 'M'},
        {"plan-out", required_argument, 0, 'P'},  {"data", required_argument, 0, 'd'},
        {"threads", required_argument, 0, 't'},   {"output", required_argument, 0, 'o'},
        {"sens-images", required_argument, 0, 'n'}, {"force", no_argument, 0, 'F'},
        {"verbose", no_argument, 0, 'v'},         {"json", no_argument, 0, 'j'},
        {"min-macs-ratio", required_argument, 0, 'm'}, {"margin-z", required_argument, 0, 'z'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    search_options so;
    search_default_options(&so);
    so.objective = SEARCH_OBJ_PARAMS; /* embedded defaults: see compress_usage */
    so.min_macs_ratio = 1.1;
    double margin_z = 1.0;
    finetune_options fo;
    finetune_default_options(&fo);
    long epochs = 0, rounds = 6, v;
    double minutes = 25, lr;
    const char *out = NULL, *plan_out = NULL, *data = NULL;
    int json = 0, force = 0, c;
    run_ui ui = {0, 0};
    rs_err e = {{0}};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "ho:v", opts, NULL)) != -1) {
        switch (c) {
        case 'T':
            if (cli_parse_double("--tolerance", optarg, 0, 100, &so.tolerance) != 0)
                return CLI_USAGE;
            break;
        case 'R':
            if (cli_parse_double("--relative", optarg, 0, 0.999, &so.relative) != 0)
                return CLI_USAGE;
            break;
        case 'O':
            if (search_objective_parse(optarg, &so.objective, &e) != 0) {
                cli_error("--objective: %s", e.msg);
                return CLI_USAGE;
            }
            break;
        case 'E':
            if (cli_parse_int("--finetune", optarg, 0, 1000, &epochs) != 0)
                return CLI_USAGE;
            break;
        case 'D': fo.distill = 1; break;
        case 'f': fo.factors_only = 1; break;
        case 'l':
            if (cli_parse_double("--lr", optarg, 1e-8, 10, &lr) != 0)
                return CLI_USAGE;
            fo.train.lr = (float)lr;
            break;
        case 'k':
            if (cli_parse_int("--rounds", optarg, 1, 100, &rounds) != 0)
                return CLI_USAGE;
            break;
        case 'L':
            if (cli_parse_double("--time-limit", optarg, 0.1, 10000, &minutes) != 0)
                return CLI_USAGE;
            break;
        case 'M':
            if (!(so.conv_methods = parse_methods(optarg)))
                return CLI_USAGE;
            break;
        case 'P': plan_out = optarg; break;
        case 'd': data = optarg; break;
        case 't':
            if (cli_parse_int("--threads", optarg, 1, 256, &v) != 0)
                return CLI_USAGE;
            so.nthreads = fo.train.nthreads = (int)v;
            break;
        case 'n':
            if (cli_parse_int("--sens-images", optarg, 0, 1000000, &v) != 0)
                return CLI_USAGE;
            so.sens_images = (int)v;
            break;
        case 'o': out = optarg; break;
        case 'F': force = 1; break;
        case 'v': ui.verbose = 1; break;
        case 'j': json = 1; break;
        case 'm':
            if (cli_parse_double("--min-macs-ratio", optarg, 0, 1000, &so.min_macs_ratio) != 0)
                return CLI_USAGE;
            break;
        case 'z':
            if (cli_parse_double("--margin-z", optarg, 0, 10, &margin_z) != 0)
                return CLI_USAGE;
            break;
        case 'h': compress_usage(stdout); return CLI_OK;
        default:
            cli_error("compress: unknown or incomplete option \"%s\"", argv[optind - 1]);
            compress_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!out) {
        cli_error("compress: -o OUT.onnx is required");
        return CLI_USAGE;
    }
    if (argc - optind > 1) {
        cli_error("compress: expected at most one model, got %d arguments", argc - optind);
        return CLI_USAGE;
    }
    const char *in = optind < argc ? argv[optind] : NULL;
    if (cli_check_output(out, in ? in : cli_default_model(), force) != 0 ||
        cli_check_output_inputs("-o", out, &(cli_inputs){.reads_data = 1, .data = data,
                                                         .other_out = plan_out,
                                                         .other_opt = "--plan-out"}) != 0 ||
        (plan_out && (cli_check_output(plan_out, in ? in : cli_default_model(), 0) != 0 ||
                      cli_check_output_inputs("--plan-out", plan_out,
                                              &(cli_inputs){.reads_data = 1, .data = data}) != 0)))
        return CLI_USAGE;
    ui.quiet = json;
    so.strategy = SEARCH_GLOBAL;
    if (!so.conv_methods) /* CP factors are unstable under fine-tuning (Lebedev et al. 2015) */
        so.conv_methods = (1u << DECOMP_SPATIAL_SVD) | (1u << DECOMP_TUCKER2);
    so.progress = ui_progress;
    so.progress_user = &ui;
    so.on_trial = ui_trial;
    so.trial_user = &ui;
    fo.train.epochs = (int)(epochs > 0 ? epochs : 1);
    epoch_ui eu = {&ui, ui.verbose};
    ft_setup(&fo, &ui, &eu);

    double t_start = rs_now();
    rs_model *m = cli_load_model(in), *best_model = NULL;
    rs_plan *best_plan = NULL;
    search_ctx *ctx = NULL;
    cifar10_set *train = NULL, *val = NULL, *test = NULL;
    search_result r;
    memset(&r, 0, sizeof r);
    round_log logs[100];
    int nlog = 0, rcode = CLI_FAIL, fell_back = 0;
    double best_val = -1, best_cost = 0;
    if (!m)
        goto done;
    if (!(val = load_split(data, "val", NULL)) || !(test = load_split(data, "test", &fell_back)) ||
        (epochs > 0 && !(train = load_split(data, "train", NULL))))
        goto done;
    catch_sigint();
    if (!(ctx = search_ctx_create(m, val, so.nthreads, &e))) {
        cli_error("%s", e.msg);
        goto done;
    }
    double base_val = search_ctx_base_acc(ctx);
    double floor_acc = so.relative > 0 ? (1 - so.relative) * base_val : base_val - so.tolerance / 100.0;
    double tol_pts = 100.0 * (base_val - floor_acc);
    int64_t P0, M0;
    model_totals(m, &P0, &M0);

    /* round 0: the verified search at the tolerance itself */
    if (!json)
        fprintf(stderr, "compress: validation accuracy %.2f%%, floor %.2f%%; searching...\n", 100 * base_val,
                100 * floor_acc);
    int rc = search_ctx_run(ctx, &so, &r, &e);
    cli_progress_end();
    if (rc != 0 && rc != RS_CANCELLED) {
        cli_error("%s", e.msg);
        goto done;
    }
    double search_secs = r.seconds;
    best_plan = plan_clone(r.plan);
    best_val = r.acc;
    best_cost = compress_cost(&so, r.cost.params_after, r.cost.macs_after, P0, M0);
    if (!best_plan)
        goto done;
    if (!json)
        fprintf(stderr, "compress: search %d trials, %d evaluations, %.1f s: params %.2f×, MACs %.2f×, val %.2f%%\n",
                r.trials, r.evaluations, r.seconds, ratio(r.cost.params_before, r.cost.params_after),
                ratio(r.cost.macs_before, r.cost.macs_after), 100 * r.acc);

    if (epochs > 0 && !r.cancelled) {
        train_data td, vd;
        finetune_data_of(train, &td);
        finetune_data_of(val, &vd);
        double lo = 0.0, hi = -1.0; /* largest accepted / smallest rejected budget */
        /* fine-tuning recovers much of a pre-fine-tuning drop: the first round already allows 3× it */
        double budget = 3.0 * (tol_pts > 0.25 ? tol_pts : 0.25);
        double round_secs = 0;
        rs_plan *tried[100];
        int ntried = 0;
        for (int k = 0; k < rounds && !interrupted; ++k) {
            double elapsed = rs_now() - t_start;
            if (k > 0 && elapsed + round_secs * 1.1 > minutes * 60) {
                if (!json)
                    fprintf(stderr, "compress: stopping: another round would pass the %.0f-minute limit\n", minutes);
                break;
            }
            rs_plan *p = NULL;
            if (search_ctx_plan_for_drop(ctx, &so, budget, &p, NULL, &e) != 0) {
                cli_error("%s", e.msg);
                break;
            }
            if (!p)
                break;
            int dup = 0;
            char *txt = NULL, *ttxt = NULL;
            plan_format(p, &txt, &e);
            for (int i = 0; i < ntried && txt; ++i) {
                plan_format(tried[i], &ttxt, &e);
                dup |= ttxt && !strcmp(ttxt, txt);
                free(ttxt);
                ttxt = NULL;
            }
            if (dup || p->n == 0) {
                /* the budget step changed nothing: widen (or narrow) without spending a fine-tuning */
                plan_free(p);
                free(txt);
                if (hi < 0)
                    budget *= 2.5;
                else
                    budget = 0.5 * (lo + hi) + 0.01;
                if (hi >= 0 && hi - lo < 0.2)
                    break;
                continue;
            }
            tried[ntried++] = p;
            round_log *lg = &logs[nlog++];
            memset(lg, 0, sizeof *lg);
            lg->budget = budget;
            plan_oneline(p, lg->plan, sizeof lg->plan);
            free(txt);
            plan_cost pc;
            plan_cost_of(m, p, &pc, &e);
            lg->params = pc.params_after;
            lg->macs = pc.macs_after;
            search_eval_plan(m, p, val, so.nthreads, &lg->val_pre, &e);
            if (!json)
                fprintf(stderr, "compress: round %d: budget %.2f pt, params %.2f×, MACs %.2f×, val %.2f%% before "
                                "fine-tuning: %s\n",
                        k + 1, lg->budget, ratio(P0, pc.params_after), ratio(M0, pc.macs_after), 100 * lg->val_pre,
                        lg->plan);
            double t0 = rs_now();
            rs_model *ft = NULL;
            train_epoch_stats last;
            memset(&last, 0, sizeof last);
            rc = finetune_run(m, p, &td, &vd, &fo, &ft, &last, &e);
            cli_progress_end();
            if (rc != 0) {
                if (rc != RS_CANCELLED)
                    cli_error("%s", e.msg);
                model_free(ft);
                break;
            }
            /* acceptance with a noise margin: the drop and its paired standard error, both from
             * the per-image agreement of the original and fine-tuned nets on the validation set */
            int a_only = 0, b_only = 0;
            if (search_paired_counts(m, ft, val, so.nthreads, &a_only, &b_only, &e) != 0) {
                cli_error("%s", e.msg);
                model_free(ft);
                break;
            }
            double val_post = base_val + (double)(b_only - a_only) / val->n;
            lg->val_post = val_post;
            lg->margin = margin_z * search_paired_se(a_only, b_only, val->n);
            lg->seconds = rs_now() - t0;
            round_secs = lg->seconds;
            double cost = compress_cost(&so, pc.params_after, pc.macs_after, P0, M0);
            lg->accepted = 100.0 * (base_val - val_post) + lg->margin <= tol_pts + 1e-9;
            if (!json)
                fprintf(stderr,
                        "compress: round %d: val %.2f%% after %d epochs (%.0f s; %d/%d images lost/gained, "
                        "margin %.2f pt): %s\n",
                        k + 1, 100 * val_post, last.epoch, lg->seconds, a_only, b_only, lg->margin,
                        lg->accepted ? "within" : "outside");
            if (lg->accepted) {
                if (!best_model || cost < best_cost) {
                    model_free(best_model);
                    best_model = ft;
                    ft = NULL;
                    plan_free(best_plan);
                    best_plan = plan_clone(p);
                    best_val = last.val_acc;
                    best_cost = cost;
                }
                lo = lg->budget;
            } else
                hi = lg->budget;
            model_free(ft);
            if (hi < 0)
                budget = lo * 2.5;
            else {
                if (hi - lo < 0.2)
                    break;
                budget = 0.5 * (lo + hi);
            }
        }
        for (int i = 0; i < ntried; ++i)
            plan_free(tried[i]);
    }
    if (!best_model) {
        /* no fine-tuning (or none held): the searched plan, factorized as is */
        best_model = model_clone(m);
        if (!best_model || plan_apply(best_model, best_plan, NULL, NULL, &e) != 0) {
            cli_error("%s", best_model ? e.msg : "out of memory");
            goto done;
        }
        if (epochs > 0) {
            plan_free(best_plan);
            best_plan = plan_clone(r.plan);
            best_val = r.acc;
        }
    }
    double test_base, test_acc;
    if (eval_on(m, test, so.nthreads, &test_base) != 0 || eval_on(best_model, test, so.nthreads, &test_acc) != 0)
        goto done;
    plan_cost pc;
    if (plan_cost_of(m, best_plan, &pc, &e) != 0 || onnx_save(best_model, out, &e) != 0) {
        cli_error("%s", e.msg);
        goto done;
    }
    if (save_plan_file(best_plan, plan_out) != 0)
        goto done;
    double lat0 = latency_b1(m), lat1 = latency_b1(best_model);
    double total = rs_now() - t_start;
    if (json) {
        printf("{\"objective\": \"%s\", \"min_macs_ratio\": %.6g, \"margin_z\": %.6g, \"tolerance_points\": %.6g, "
               "\"finetune_epochs\": %ld, \"distill\": %s, "
               "\"seconds\": %.3f, \"search_seconds\": %.3f, \"search_trials\": %d, \"search_evaluations\": %d, "
               "\"plan\": ",
               search_objective_name(so.objective), so.min_macs_ratio, margin_z, tol_pts, epochs, fo.distill ? "true" : "false", total,
               search_secs, r.trials, r.evaluations);
        json_plan(stdout, best_plan);
        printf(", ");
        json_cost(stdout, &pc);
        printf(", \"val_acc_before\": %.6f, \"val_acc\": %.6f, \"test_acc_before\": %.6f, \"test_acc\": %.6f, "
               "\"test_images\": %d, \"test_is_sample\": %s, \"latency_before_s\": %.9f, \"latency_after_s\": %.9f, "
               "\"rounds\": [",
               base_val, best_val, test_base, test_acc, test->n, fell_back ? "true" : "false", lat0, lat1);
        for (int i = 0; i < nlog; ++i) {
            printf("%s{\"budget\": %.3f, \"params\": %lld, \"macs\": %lld, \"val_before_ft\": %.6f, "
                   "\"val_after_ft\": %.6f, \"margin_points\": %.4f, \"accepted\": %s, \"seconds\": %.1f, \"plan\": ",
                   i ? ", " : "", logs[i].budget, (long long)logs[i].params, (long long)logs[i].macs, logs[i].val_pre,
                   logs[i].val_post, logs[i].margin, logs[i].accepted ? "true" : "false", logs[i].seconds);
            cli_json_string(stdout, logs[i].plan);
            printf("}");
        }
        printf("], \"output\": ");
        cli_json_string(stdout, out);
        printf("}\n");
    } else {
        printf("compress: objective %s, MAC floor %.2f×, tolerance %.2f pt (margin %.2f SE), %ld fine-tuning "
               "epochs%s, %.1f min in all\n",
               search_objective_name(so.objective), so.min_macs_ratio, tol_pts, margin_z, epochs, fo.distill ? " (distilled)" : "", total / 60);
        printf("search: %d trials, %d evaluations, %.1f s; fine-tuning rounds: %d\n", r.trials, r.evaluations,
               search_secs, nlog);
        for (int i = 0; i < nlog; ++i)
            printf("  round %d  budget %6.2f pt  params %.2f×  MACs %.2f×  val %.2f%% → %.2f%% (margin %.2f pt)  %s  %s\n",
                   i + 1, logs[i].budget, ratio(P0, logs[i].params), ratio(M0, logs[i].macs), 100 * logs[i].val_pre,
                   100 * logs[i].val_post, logs[i].margin, logs[i].accepted ? "kept    " : "rejected", logs[i].plan);
        printf("plan:\n");
        print_plan_text(stdout, best_plan);
        print_cost_text(stdout, &pc);
        printf("validation accuracy %6.2f%% → %6.2f%% (%+.2f pt)\n", 100 * base_val, 100 * best_val,
               100 * (best_val - base_val));
        printf("test accuracy       %6.2f%% → %6.2f%% (%+.2f pt)%s\n", 100 * test_base, 100 * test_acc,
               100 * (test_acc - test_base), fell_back ? "  [test = shipped sample]" : "");
        printf("latency (batch 1, 1 thread) %.1f µs → %.1f µs (%.2f×%s)\n", 1e6 * lat0, 1e6 * lat1,
               lat1 > 0 ? lat0 / lat1 : 0.0, lat1 > lat0 ? ", SLOWER despite fewer MACs" : "");
        printf("saved %s%s%s\n", out, plan_out ? " and " : "", plan_out ? plan_out : "");
    }
    rcode = CLI_OK;
done:
    cli_progress_end();
    search_result_free(&r);
    search_ctx_free(ctx);
    plan_free(best_plan);
    model_free(best_model);
    model_free(m);
    cifar10_free(train);
    cifar10_free(val);
    cifar10_free(test);
    return rcode;
}
