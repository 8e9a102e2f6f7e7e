/* cmd_finetune.c — `rankscope finetune`: the direct problem, training a factorized net. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_run.h"
#include "rankscope/finetune.h"
#include "rankscope/fit.h"
#include "rankscope/onnx.h"

static void finetune_usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope finetune [MODEL.onnx] (--plan FILE | --ranks SPEC) --epochs N -o OUT.onnx\n"
            "                          [--lr X] [--batch N] [--seed N] [--factors-only] [--distill] [--bn]\n"
            "                          [--schedule cosine|onecycle|constant] [--data DIR] [--threads N]\n"
            "                          [--force] [--json] [--fit weights|outputs|layers] [--calib-images N]\n"
            "  Factorizes MODEL by the plan (--fit outputs: factors fitted to each layer's outputs on the\n"
            "  first N training images, 1000) and trains it on the 45,000 training images (random crop +\n"
            "  flip), with validation accuracy per epoch; then reports test accuracy. Defaults suit\n"
            "  recovery: cosine schedule, peak lr 0.005, 10 epochs. --factors-only trains only the new\n"
            "  factor layers; --distill adds the original net's logits as a teacher (α 0.5, T 4).\n"
            "  --bn: a BatchNormalization after every conv while training, initialised to the identity\n"
            "  from the conv's output statistics and folded back after (nets shipped with their BN\n"
            "  folded take higher learning rates with it).\n");
}

enum { O_EPOCHS = 'E', O_LR = 'l', O_BATCH = 'b', O_SEED = 'S', O_FACTORS = 'f', O_DISTILL = 'D', O_SCHEDULE = 'c', O_BN = 'n' };

static const cli_opt finetune_opts[] = {
    {"epochs", 1, O_EPOCHS, 0}, {"lr", 1, O_LR, 0},           {"batch", 1, O_BATCH, 0},
    {"seed", 1, O_SEED, 0},     {"factors-only", 0, O_FACTORS, 0}, {"distill", 0, O_DISTILL, 0},
    {"schedule", 1, O_SCHEDULE, 0}, {"bn", 0, O_BN, 0}, {0, 0, 0, 0}};

static int parse_schedule(const char *arg, train_schedule *out)
{
    if (!strcmp(arg, "cosine"))
        *out = TRAIN_SCHED_COSINE;
    else if (!strcmp(arg, "onecycle"))
        *out = TRAIN_SCHED_ONECYCLE;
    else if (!strcmp(arg, "constant"))
        *out = TRAIN_SCHED_CONSTANT;
    else {
        cli_error("--schedule \"%s\" (expected cosine, onecycle or constant)", arg);
        return CLI_USAGE;
    }
    return 0;
}

static int finetune_option(void *cmd, int key, const char *arg)
{
    finetune_options *fo = cmd;
    long v;
    double lr;
    switch (key) {
    case O_EPOCHS:
        if (cli_parse_int("--epochs", arg, 1, 1000, &v) != 0)
            return CLI_USAGE;
        fo->train.epochs = (int)v;
        return 0;
    case O_LR:
        if (cli_parse_double("--lr", arg, 1e-8, 10, &lr) != 0)
            return CLI_USAGE;
        fo->train.lr = (float)lr;
        return 0;
    case O_BATCH:
        if (cli_parse_int("--batch", arg, 1, 4096, &v) != 0)
            return CLI_USAGE;
        fo->train.batch = (int)v;
        return 0;
    case O_SEED:
        if (cli_parse_int("--seed", arg, 0, 1L << 30, &v) != 0)
            return CLI_USAGE;
        fo->train.seed = (uint64_t)v;
        return 0;
    case O_FACTORS: fo->factors_only = 1; return 0;
    case O_DISTILL: fo->distill = 1; return 0;
    case O_BN: fo->bn = 1; return 0;
    case O_SCHEDULE: return parse_schedule(arg, &fo->train.schedule);
    }
    return CLI_USAGE;
}

static void print_result(const finetune_options *fo, const cli_args *a, const rs_plan *plan, const plan_cost *pc,
                         const train_epoch_stats *last, const finetune_report *rep, double secs, double base, double acc, int n_test,
                         int fell_back)
{
    if (a->json) {
        printf("{\"epochs\": %d, \"epochs_done\": %d, \"lr\": %.6g, \"factors_only\": %s, \"distill\": %s, "
               "\"seconds\": %.3f, \"plan\": ",
               fo->train.epochs, rep->epochs_done, fo->train.lr, fo->factors_only ? "true" : "false",
               fo->distill ? "true" : "false", secs);
        cli_json_plan(stdout, plan);
        printf(", ");
        cli_json_cost(stdout, pc);
        printf(", \"train_loss\": %.6f, \"val_acc\": %.6f, \"val_acc_start\": %.6f, \"val_acc_last\": %.6f, "
               "\"kept_epoch\": %d, \"test_acc_before\": %.6f, \"test_acc\": %.6f, "
               "\"test_images\": %d, \"test_is_sample\": %s, \"output\": ",
               last->train_loss, rep->kept_val_acc, rep->start_val_acc, last->val_acc, rep->kept_epoch, base, acc,
               n_test, fell_back ? "true" : "false");
        cli_json_string(stdout, a->out);
        printf("}\n");
        return;
    }
    printf("fine-tuned %d epoch%s in %.1f s (%s%s)\n", rep->epochs_done, rep->epochs_done == 1 ? "" : "s", secs,
           fo->factors_only ? "factors only" : "all layers", fo->distill ? ", distilled" : "");
    cli_print_plan(stdout, plan);
    cli_print_cost(stdout, pc);
    if (rep->kept_epoch == 0)
        printf("validation accuracy %.2f%% before fine-tuning, %.2f%% after the last epoch: kept the net "
               "as it was before fine-tuning (best on validation)\n",
               100 * rep->start_val_acc, 100 * last->val_acc);
    else
        printf("validation accuracy %.2f%% before fine-tuning, %.2f%% after epoch %d of %d: kept that epoch "
               "(best on validation)\n", 100 * rep->start_val_acc, 100 * rep->kept_val_acc, rep->kept_epoch,
               rep->epochs_done);
    printf("test accuracy %.2f%% (original) → %.2f%% (%+.2f pt)%s\n", 100 * base, 100 * acc, 100 * (acc - base),
           fell_back ? "  [test = shipped sample]" : "");
    printf("saved %s\n", a->out);
}

/* Train, test and save; prints what it did. */
static int run_finetune(const rs_model *m, const rs_plan *plan, finetune_options *fo, const cli_args *a,
                        const cifar10_set *train, const cifar10_set *val, const cifar10_set *test, int fell_back)
{
    rs_err e = {{0}};
    train_data td, vd;
    finetune_data_of(train, &td);
    finetune_data_of(val, &vd);
    train_epoch_stats last;
    memset(&last, 0, sizeof last);
    finetune_report rep;
    fo->report = &rep;
    rs_model *ft = NULL;
    double t0 = rs_now();
    int rc = finetune_run(m, plan, &td, &vd, fo, &ft, &last, &e);
    double secs = rs_now() - t0;
    cli_progress_end();
    if (rc != 0 && rc != RS_CANCELLED) {
        cli_error("%s", e.msg);
        model_free(ft);
        return -1;
    }
    if (rc == RS_CANCELLED && !a->json)
        fprintf(stderr, "rankscope: fine-tuning interrupted after %d complete epoch%s; saving the best validated "
                        "state (%s)\n", rep.epochs_done, rep.epochs_done == 1 ? "" : "s",
                rep.kept_epoch ? "an epoch's end" : "the factorized net before training");
    double base = 0, acc = 0;
    plan_cost pc;
    rc = -1;
    if (cli_eval_acc(m, test, fo->train.nthreads, &base) != 0 || cli_eval_acc(ft, test, fo->train.nthreads, &acc) != 0)
        goto out;
    if (plan_cost_of(m, plan, &pc, &e) != 0 || onnx_save(ft, a->out, &e) != 0) {
        cli_error("%s", e.msg);
        goto out;
    }
    print_result(fo, a, plan, &pc, &last, &rep, secs, base, acc, test->n, fell_back);
    rc = 0;
out:
    model_free(ft);
    return rc;
}

int cmd_finetune(int argc, char **argv)
{
    static const cli_spec spec = {"finetune", CLI_A_PLAN | CLI_A_RANKS | CLI_A_DATA | CLI_A_THREADS | CLI_A_OUTPUT |
                                                  CLI_A_FORCE | CLI_A_JSON | CLI_A_FIT,
                                  finetune_opts, finetune_option, finetune_usage, 1};
    finetune_options fo;
    finetune_default_options(&fo);
    cli_args a;
    int rc = cli_parse(&spec, argc, argv, &fo, &a);
    if (rc >= 0)
        return rc;
    if (a.threads)
        fo.train.nthreads = a.threads;
    if (!a.out) {
        cli_error("finetune: -o OUT.onnx is required");
        return CLI_USAGE;
    }
    if (cli_check_output(a.out, a.model ? a.model : cli_default_model(), a.force) != 0 ||
        cli_check_output_inputs("-o", a.out, &(cli_inputs){.plan = a.plan, .reads_data = 1, .data = a.data}) != 0)
        return CLI_USAGE;
    rs_err e = {{0}};
    rs_plan *plan = a.plan ? plan_load(a.plan, &e) : plan_alloc();
    if (!plan) {
        cli_error("%s", a.plan ? e.msg : "out of memory");
        return CLI_FAIL;
    }
    if (a.ranks && plan_parse_spec(plan, a.ranks, &e) != 0) {
        cli_error("%s", e.msg);
        plan_free(plan);
        return CLI_USAGE;
    }
    cli_run run = {0, a.json, !a.json};
    rs_model *m = cli_load_model(a.model);
    int rcode = CLI_FAIL, fell_back = 0;
    cifar10_set *train = NULL, *val = NULL, *test = NULL;
    float *calib = NULL;
    if (!m)
        goto done;
    if (plan_validate(m, plan, &e) != 0) {
        cli_error("%s", e.msg);
        goto done;
    }
    if (!(train = cli_load_split(a.data, "train", NULL)) || !(val = cli_load_split(a.data, "val", NULL)) ||
        !(test = cli_load_split(a.data, "test", &fell_back)))
        goto done;
    if (a.fit.outputs) { /* calibration: the first N training images */
        fo.fit_n = a.fit.calib > 0 ? a.fit.calib : FIT_DEFAULT_CALIB;
        if (fo.fit_n > train->n)
            fo.fit_n = train->n;
        if (!(calib = malloc((size_t)fo.fit_n * CIFAR10_PIXELS * sizeof *calib))) {
            cli_error("out of memory for %d calibration images", fo.fit_n);
            goto done;
        }
        cifar10_normalize(train, 0, fo.fit_n, calib);
        fo.fit_calib = calib;
        if (!a.json)
            fprintf(stderr, "rankscope: fitting factors to layer outputs on the first %d training images "
                            "(sequential)\n", fo.fit_n);
    }
    cli_catch_sigint();
    cli_run_finetune(&run, &fo);
    rcode = run_finetune(m, plan, &fo, &a, train, val, test, fell_back) == 0 ? CLI_OK : CLI_FAIL;
done:
    cli_progress_end();
    free(calib);
    plan_free(plan);
    model_free(m);
    cifar10_free(train);
    cifar10_free(val);
    cifar10_free(test);
    return rcode;
}
