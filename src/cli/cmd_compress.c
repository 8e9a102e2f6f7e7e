/* cmd_compress.c — `rankscope compress`: search, fine-tune and search again (pipeline.h), then the
 * winner on the test set with its single-image latency. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_run.h"
#include "rankscope/export.h"
#include "rankscope/fileio.h"
#include "rankscope/onnx.h"
#include "rankscope/pipeline.h"
#include "rankscope/quant.h"
#include "rankscope/recipe.h"

/* Defaults: staged compression, each stage fine-tuned (distilled) this many epochs; a stage that
 * misses the tolerance by at most COMPRESS_EXTEND points fine-tuned once more; the result
 * polished COMPRESS_POLISH epochs. 20-epoch stages, not 10: on the shipped net the kept stages
 * then lost 0.6-1.0 pt on test, with 10 epochs 1.0-1.3 pt (kept by the same validation rule);
 * the rounds and the polish grew with them, still within 30 minutes on 2 cores. */
#define COMPRESS_EPOCHS 20
#define COMPRESS_STAGES 6
#define COMPRESS_ROUNDS 14
#define COMPRESS_EXTEND 0.5
#define COMPRESS_POLISH 40

static void compress_usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope compress [MODEL.onnx] [--tolerance PTS | --relative D] -o OUT.onnx\n"
            "                          [--objective params|macs|both|latency [--latency b1|batch]]\n"
            "                          [--finetune N] [--stages K] [--distill]\n"
            "                          [--factors-only] [--lr X] [--rounds K] [--time-limit MIN]\n"
            "                          [--methods ...] [--plan-out FILE] [--data DIR] [--threads N]\n"
            "                          [--min-macs-ratio R] [--margin-z Z] [--int8 [--int8-epochs N]]\n"
            "                          [--train-images N] [--val-images N] [--fit weights|outputs|layers]\n"
            "                          [--calib-images N] [--stage-budget PTS] [--recipe-out F]\n"
            "                          [--extend PTS] [--polish N] [--bn]\n"
            "                          [--recipe F] [--checkpoint C] [--resume C]\n"
            "                          [--force] [--verbose] [--json]\n"
            "  By default: staged compression (up to --stages %d), each stage fine-tuned --finetune %d\n"
            "  epochs distilled from the original, factors fitted to the layer outputs (--fit outputs),\n"
            "  then the winner on the test set with its measured speed-up.\n"
            "  Each stage takes the net the last one left, folds its factorized layers back into single\n"
            "  layers, picks the plan of least cost whose estimated drop is --stage-budget points\n"
            "  (default the tolerance) among those that make layers cheaper, factorizes it and\n"
            "  fine-tunes the whole net from the ORIGINAL network as teacher, keeping its best validated\n"
            "  epoch (never the factorized start the search chose). A stage is kept when its\n"
            "  validation drop + Z·SE <= tolerance (SE: the paired standard error of the accuracy\n"
            "  difference of the two nets on the validation images, from their disagreements; with\n"
            "  several candidates judged on the same 5,000 images the lucky ones would otherwise\n"
            "  win; --margin-z Z, default 1.0, 0 = none). A stage that misses by at most --extend PTS\n"
            "  (default %.1f; 0 = never) is fine-tuned --finetune epochs more and judged again; else it\n"
            "  is dropped and the budget halved, and no later stage takes a plan at least as aggressive\n"
            "  on all of its layers (each later plan is milder on one of them, e.g. fc1 svd 30 after\n"
            "  fc1 svd 28). After the stages, the result is fine-tuned --polish N\n"
            "  epochs more (default %d, distilled, best validated epoch kept; 0 = none).\n"
            "  --rounds caps the fine-tunings (default %d, extensions included), --time-limit the wall\n"
            "  time (minutes; default none: no stage starts that would not finish in it).\n"
            "  --bn: a BatchNormalization after every conv while fine-tuning, initialised to the\n"
            "  identity from the conv's output statistics and folded back after (nets shipped with\n"
            "  their BN folded take higher learning rates with it).\n"
            "  --stages 0: fine-tuning rounds instead: search, then each round fine-tunes a plan of the\n"
            "  ORIGINAL net chosen for a pre-fine-tuning drop budget (×2.5 while it holds, then\n"
            "  bisected); the cheapest kept plan wins. --finetune 0: the verified search alone.\n"
            "  Defaults suit embedded targets: --objective params (flash/RAM for weights is what\n"
            "  runs out first) under a MAC floor --min-macs-ratio 1.4 (whole-network MACs at most\n"
            "  MACs0/1.4, so the factorized net also runs faster; 0 = no floor). The floor is a second\n"
            "  knapsack constraint (Lagrangian), so accuracy is not spent on MACs beyond it.\n"
            "  --objective latency minimises the summed measured time of the layers (each timed alone,\n"
            "  one thread, cached per machine; --latency b1 = batch 1 (default), batch = throughput).\n"
            "  The result is timed whole against the original (5 alternated runs each, batch 1 and\n"
            "  batch 64): \"faster\" only when every run of the compressed net beat every run of the\n"
            "  original by 2 %% or more in the median; otherwise it says so.\n"
            "  --fit outputs (default): every plan is factorized with its factors fitted to each layer's\n"
            "  outputs on the first N training images (--calib-images, default 1,000; sequential), in\n"
            "  the search, before each fine-tuning and in the result; --fit weights: to the weights.\n"
            "  --int8: then quantize the winner's weights to int8 as `export --format c --int8` does\n"
            "  (per output channel), after balancing the two factors of each product, and fine-tune\n"
            "  with quantization in the loop for --int8-epochs N (default: --finetune's N, else 2;\n"
            "  0 = post-training only; the best validated epoch is kept). OUT.onnx then holds the\n"
            "  int8 weights (exporting it with --int8 gives the same weights) and the test accuracy\n"
            "  reported is the int8 one, the accuracy the C export has.\n"
            "  --recipe-out F writes the kept stages as a recipe; --recipe F replays one exactly (same\n"
            "  binary, data and --threads give the same net), taking the epochs, image counts, fit and\n"
            "  int8 from it.\n"
            "  --train-images N / --val-images N: use only the first N images of the training /\n"
            "  validation split (quick runs; the figures are noisier).\n"
            "  --checkpoint C (staged runs and --recipe replays): write the run's state to C at the start\n"
            "  of every stage and after every fine-tuning epoch (atomically: C always holds a whole\n"
            "  checkpoint): the rounds so far, the kept and rejected plans, budgets, the recipe so far,\n"
            "  the net being fine-tuned with its best epoch, momentum and generator. --resume C goes on\n"
            "  from it, to the same output byte for byte and the same figures as a run never stopped;\n"
            "  give the same command (model, options, --data, --threads; --time-limit may change and\n"
            "  counts the time spent before): a different model file or option is refused, naming it.\n"
            "  The checkpoint goes on in C (or in --checkpoint's file) and is left after the run.\n"
            "  Interrupted (Ctrl-C) with a checkpoint, compress saves nothing and says how to resume.\n",
            COMPRESS_STAGES, COMPRESS_EPOCHS, COMPRESS_EXTEND, COMPRESS_POLISH, COMPRESS_ROUNDS);
}

typedef struct compress_cmd {
    pipe_compress_options po;
    const char *plan_out;
    long epochs;
    double minutes;
    int json;
    int int8;
    long int8_epochs; /* -1: --finetune's, else 2 */
    long train_images, val_images; /* 0: the whole split */
    int n_val;                     /* validation images used */
    long stages;                   /* >= 2: staged compression (pipe_staged_run); 0: rounds */
    int given_epochs, given_stages; /* --finetune / --stages on the command line */
    int given_staged;              /* --extend / --polish (staged runs only) */
    cli_fit fit;                   /* --fit / --calib-images; outputs unless told otherwise */
    int given_fit;                 /* --fit or --calib-images */
    int given_mode;                /* --fit */
    int hit_limit;                 /* the time limit stopped the run */
    const char *recipe_out, *recipe_in;
    rs_recipe *recipe;             /* written (staged) or replayed */
    const char *ckpt_out, *ckpt_in; /* --checkpoint, --resume */
    pipe_ckpt *resume;             /* loaded from ckpt_in */
    char ident[4096];              /* the input and options, as the checkpoint records them */
    int64_t p0, m0;
} compress_cmd;

enum { O_FINETUNE = 'E', O_DISTILL = 'D', O_FACTORS = 'f', O_LR = 'l', O_ROUNDS = 'k', O_TIME = 'L',
       O_PLAN_OUT = 'P', O_MARGIN = 'z', O_INT8 = '8', O_INT8_EPOCHS = 'q', O_TRAIN_IMAGES = 't',
       O_VAL_IMAGES = 'v', O_STAGES = 'g', O_STAGE_BUDGET = 'b', O_RECIPE = 'r', O_RECIPE_OUT = 'w',
       O_FIT = 'F', O_CALIB = 'C', O_EXTEND = 'x', O_POLISH = 'p', O_BN = 'B', O_CKPT = 0x180, O_RESUME = 0x181 };

static const cli_opt compress_opts[] = {
    {"tolerance", 1, CLI_SO_TOLERANCE, 0}, {"relative", 1, CLI_SO_RELATIVE, 0},
    {"objective", 1, CLI_SO_OBJECTIVE, 0}, {"finetune", 1, O_FINETUNE, 0},
    {"distill", 0, O_DISTILL, 0},          {"factors-only", 0, O_FACTORS, 0},
    {"lr", 1, O_LR, 0},                    {"rounds", 1, O_ROUNDS, 0},
    {"time-limit", 1, O_TIME, 0},          {"methods", 1, CLI_SO_METHODS, 0},
    {"plan-out", 1, O_PLAN_OUT, 0},        {"sens-images", 1, CLI_SO_SENS, 0},
    {"min-macs-ratio", 1, CLI_SO_MACS_RATIO, 0}, {"margin-z", 1, O_MARGIN, 0},
    {"int8", 0, O_INT8, 0},                {"int8-epochs", 1, O_INT8_EPOCHS, 0},
    {"train-images", 1, O_TRAIN_IMAGES, 0}, {"val-images", 1, O_VAL_IMAGES, 0},
    {"stages", 1, O_STAGES, 0},            {"stage-budget", 1, O_STAGE_BUDGET, 0},
    {"recipe", 1, O_RECIPE, 0},            {"recipe-out", 1, O_RECIPE_OUT, 0},
    {"latency", 1, CLI_SO_LATENCY, 0},
    {"fit", 1, O_FIT, 0},                  {"calib-images", 1, O_CALIB, 0},
    {"extend", 1, O_EXTEND, 0},            {"polish", 1, O_POLISH, 0},
    {"bn", 0, O_BN, 0},                    {"checkpoint", 1, O_CKPT, 0},
    {"resume", 1, O_RESUME, 0},            {0, 0, 0, 0}};

static int compress_option(void *cmd, int key, const char *arg)
{
    compress_cmd *c = cmd;
    int rc;
    long v;
    double lr;
    if (!cli_search_option(&c->po.search, key, arg, &rc))
        return rc;
    switch (key) {
    case O_FINETUNE:
        c->given_epochs = 1;
        return cli_parse_int("--finetune", arg, 0, 1000, &c->epochs) ? CLI_USAGE : 0;
    case O_FIT: c->given_fit = c->given_mode = 1; return cli_parse_fit(arg, &c->fit) ? CLI_USAGE : 0;
    case O_CALIB: c->given_fit = 1; return cli_parse_calib(arg, &c->fit) ? CLI_USAGE : 0;
    case O_DISTILL: c->po.finetune.distill = 1; return 0;
    case O_FACTORS: c->po.finetune.factors_only = 1; return 0;
    case O_LR:
        if (cli_parse_double("--lr", arg, 1e-8, 10, &lr) != 0)
            return CLI_USAGE;
        c->po.finetune.train.lr = (float)lr;
        return 0;
    case O_ROUNDS:
        if (cli_parse_int("--rounds", arg, 1, 100, &v) != 0)
            return CLI_USAGE;
        c->po.rounds = (int)v;
        return 0;
    case O_TIME: return cli_parse_double("--time-limit", arg, 0.1, 10000, &c->minutes) ? CLI_USAGE : 0;
    case O_PLAN_OUT: c->plan_out = arg; return 0;
    case O_MARGIN: return cli_parse_double("--margin-z", arg, 0, 10, &c->po.margin_z) ? CLI_USAGE : 0;
    case O_INT8: c->int8 = 1; return 0;
    case O_INT8_EPOCHS: return cli_parse_int("--int8-epochs", arg, 0, 1000, &c->int8_epochs) ? CLI_USAGE : 0;
    case O_TRAIN_IMAGES:
        return cli_parse_int("--train-images", arg, 1, CIFAR10_TRAIN_SPLIT, &c->train_images) ? CLI_USAGE : 0;
    case O_VAL_IMAGES: return cli_parse_int("--val-images", arg, 1, 1000000, &c->val_images) ? CLI_USAGE : 0;
    case O_STAGES:
        c->given_stages = 1;
        if (cli_parse_int("--stages", arg, 0, RECIPE_MAX_STAGES, &c->stages) != 0)
            return CLI_USAGE;
        if (c->stages == 1) {
            cli_error("--stages 1: give 0 (fine-tuning rounds instead of stages) or 2..%d", RECIPE_MAX_STAGES);
            return CLI_USAGE;
        }
        return 0;
    case O_STAGE_BUDGET:
        return cli_parse_double("--stage-budget", arg, 0.01, 100, &c->po.stage_budget) ? CLI_USAGE : 0;
    case O_EXTEND:
        c->given_staged = 1;
        return cli_parse_double("--extend", arg, 0, 100, &c->po.extend_slack) ? CLI_USAGE : 0;
    case O_POLISH:
        c->given_staged = 1;
        if (cli_parse_int("--polish", arg, 0, 1000, &v) != 0)
            return CLI_USAGE;
        c->po.polish_epochs = (int)v;
        return 0;
    case O_BN: c->po.finetune.bn = 1; return 0;
    case O_RECIPE: c->recipe_in = arg; return 0;
    case O_RECIPE_OUT: c->recipe_out = arg; return 0;
    case O_CKPT: c->ckpt_out = arg; return 0;
    case O_RESUME: c->ckpt_in = arg; return 0;
    }
    return CLI_USAGE;
}

static const char *unit(const compress_cmd *c)
{
    return c->stages || c->recipe_in ? "stage" : "round";
}

/* Progress lines on stderr as the rounds go (none with --json); Ctrl-C stops the rounds. */
static int on_stage(void *user, pipe_compress_stage st, const pipe_compress_result *r)
{
    compress_cmd *c = user;
    c->hit_limit |= st == PIPE_STAGE_TIME_LIMIT;
    const pipe_round *lg = r->n_rounds ? &r->rounds[r->n_rounds - 1] : NULL;
    cli_progress_end();
    if (st == PIPE_STAGE_WARNING)
        cli_error("%s", r->warning);
    if (c->json || st == PIPE_STAGE_WARNING)
        return cli_interrupted;
    const search_result *s = &r->search;
    switch (st) {
    case PIPE_STAGE_SEARCHING:
        fprintf(stderr, "compress: validation accuracy %.2f%%, floor %.2f%%; searching...\n", 100 * r->base_val,
                100 * r->floor_val);
        break;
    case PIPE_STAGE_SEARCHED:
        fprintf(stderr, "compress: search %d trials, %d evaluations, %.1f s: params %.2f×, MACs %.2f×, val %.2f%%\n",
                s->trials, s->evaluations, s->seconds, cli_ratio(s->cost.params_before, s->cost.params_after),
                cli_ratio(s->cost.macs_before, s->cost.macs_after), 100 * s->acc);
        break;
    case PIPE_STAGE_ROUND_START:
        fprintf(stderr, "compress: %s %d: budget %.2f pt, params %.2f×, MACs %.2f×, val %.2f%% before "
                        "fine-tuning: %s\n",
                unit(c), lg->number, lg->budget, cli_ratio(c->p0, lg->params), cli_ratio(c->m0, lg->macs), 100 * lg->val_pre,
                lg->plan);
        break;
    case PIPE_STAGE_ROUND_DONE:
        fprintf(stderr,
                "compress: %s %d: val %.2f%% after %d epochs (%.0f s; %d/%d images lost/gained, "
                "margin %.2f pt): %s\n",
                unit(c), lg->number, 100 * lg->val_post, lg->epochs_done, lg->seconds, lg->a_only, lg->b_only, lg->margin,
                lg->accepted ? "within" : "outside");
        break;
    case PIPE_STAGE_TIME_LIMIT:
        fprintf(stderr, "compress: stopping at the %.0f-minute limit (reached in a search, or the next %s would pass it)\n",
                c->minutes, unit(c));
        break;
    default: break;
    }
    return cli_interrupted;
}

typedef struct compress_report {
    plan_cost pc;
    double test_base, test_acc, total;
    pipe_speed speed;
    int test_images, fell_back;
    const char *out;
    /* --int8: test_acc is the int8 model's (the saved one) */
    int int8, int8_epochs;
    quant_report q;
    double test_float;         /* the float winner before quantization */
    int64_t bytes0;            /* C export of the original, fp32 weights */
} compress_report;

/* The measured verdict on the figure the objective was about (batch 1 unless it was throughput). */
static int objective_verdict(const compress_cmd *c, const pipe_speed *sp)
{
    return c->po.search.objective == SEARCH_OBJ_LATENCY && c->po.search.latency_throughput ? sp->verdict_batch
                                                                                            : sp->verdict_b1;
}

static void print_speed_line(const char *what, double before, double after, double speedup, int verdict, int n)
{
    printf("%-30s %8.1f µs → %8.1f µs per image: %.2f× — %s\n", what, 1e6 * before, 1e6 * after, speedup,
           verdict > 0   ? "measured faster (every run)"
           : verdict < 0 ? "measured SLOWER (every run)"
                         : "NOT measurably faster (runs overlap)");
    (void)n;
}

static void print_speed(const pipe_speed *sp)
{
    char what[64];
    printf("measured on this machine, one thread, medians of %d alternated runs:\n", sp->samples);
    print_speed_line("  latency (batch 1)", sp->before.b1, sp->after.b1, sp->speedup_b1, sp->verdict_b1,
                     sp->samples);
    snprintf(what, sizeof what, "  throughput (batch %d)", sp->batch);
    print_speed_line(what, sp->before.batch, sp->after.batch, sp->speedup_batch, sp->verdict_batch, sp->samples);
}

static void print_json_int8(const compress_report *rp)
{
    const quant_report *q = &rp->q;
    printf(", \"int8\": {\"epochs\": %d, \"kept_epoch\": %d, \"pairs_balanced\": %d, \"qerr_before\": %.6g, "
           "\"qerr_after\": %.6g, \"val_float\": %.6f, \"val_ptq\": %.6f, \"val_int8\": %.6f, "
           "\"test_acc_float\": %.6f, \"test_acc_int8\": %.6f, \"weight_bytes_fp32_original\": %lld, "
           "\"weight_bytes_fp32\": %lld, \"weight_bytes_int8\": %lld}",
           rp->int8_epochs, q->ft.kept_epoch, q->balance.pairs, q->balance.qerr_before, q->balance.qerr_after,
           q->val_float, q->val_ptq, q->val_int8, rp->test_float, rp->test_acc, (long long)rp->bytes0,
           (long long)q->bytes_float, (long long)q->bytes_int8);
}

/* 1 when some fine-tuning ran with BatchNormalization (--bn, or a replayed stage's "bn on"). */
static int used_bn(const compress_cmd *c)
{
    int bn = c->po.finetune.bn;
    for (int i = 0; c->recipe && i < c->recipe->n_stages; ++i)
        bn |= c->recipe->stages[i].bn;
    return bn;
}

static void print_json(const compress_cmd *c, const pipe_compress_result *r, const compress_report *rp)
{
    const search_options *so = &c->po.search;
    printf("{\"mode\": \"%s\", \"stages_max\": %ld, \"extend_points\": %.6g, \"polish_epochs\": %d, \"bn\": %s, ",
           c->recipe_in ? "replay" : c->stages ? "stages" : c->epochs ? "rounds" : "search", c->stages,
           c->stages ? c->po.extend_slack : 0, c->stages ? c->po.polish_epochs : 0, used_bn(c) ? "true" : "false");
    printf("\"objective\": \"%s\", \"fit\": \"%s\", \"calib_images\": %d, \"min_macs_ratio\": %.6g, \"margin_z\": %.6g, \"tolerance_points\": %.6g, "
           "\"finetune_epochs\": %ld, \"distill\": %s, "
           "\"seconds\": %.3f, \"search_seconds\": %.3f, \"search_trials\": %d, \"search_evaluations\": %d, "
           "\"val_images\": %d, \"plan\": ",
           search_objective_name(so->objective), so->fit_calib ? "outputs" : "weights", so->fit_calib ? so->fit_n : 0,
           so->min_macs_ratio, c->po.margin_z, r->tol_points, c->epochs,
           c->po.finetune.distill || c->stages || c->recipe_in ? "true" : "false", rp->total, r->search.seconds, r->search.trials,
           r->search.evaluations, c->n_val);
    cli_json_plan(stdout, r->plan);
    printf(", ");
    cli_json_cost(stdout, &rp->pc);
    const pipe_speed *sp = &rp->speed;
    printf(", \"val_acc_before\": %.6f, \"val_acc\": %.6f, \"test_acc_before\": %.6f, \"test_acc\": %.6f, "
           "\"test_images\": %d, \"test_is_sample\": %s, \"latency_before_s\": %.9f, \"latency_after_s\": %.9f, "
           "\"speed\": {\"samples\": %d, \"batch\": %d, \"b1_before_s\": %.9f, \"b1_after_s\": %.9f, "
           "\"b1_speedup\": %.4f, \"b1_verdict\": \"%s\", \"batch_before_s\": %.9f, \"batch_after_s\": %.9f, "
           "\"batch_speedup\": %.4f, \"batch_verdict\": \"%s\", \"faster\": %s}, \"rounds\": [",
           r->base_val, r->best_val, rp->test_base, rp->test_acc, rp->test_images, rp->fell_back ? "true" : "false",
           sp->before.b1, sp->after.b1, sp->samples, sp->batch, sp->before.b1, sp->after.b1, sp->speedup_b1,
           pipe_verdict_name(sp->verdict_b1), sp->before.batch, sp->after.batch, sp->speedup_batch,
           pipe_verdict_name(sp->verdict_batch), objective_verdict(c, sp) > 0 ? "true" : "false");
    for (int i = 0; i < r->n_rounds; ++i) {
        const pipe_round *lg = &r->rounds[i];
        static const char *const kinds[] = {"stage", "extension", "polish"};
        printf("%s{\"kind\": \"%s\", \"budget\": %.3f, \"params\": %lld, \"macs\": %lld, \"val_before_ft\": %.6f, "
               "\"val_after_ft\": %.6f, \"margin_points\": %.4f, \"accepted\": %s, \"seconds\": %.1f, \"plan\": ",
               i ? ", " : "", kinds[lg->kind], lg->budget, (long long)lg->params, (long long)lg->macs, lg->val_pre, lg->val_post,
               lg->margin, lg->accepted ? "true" : "false", lg->seconds);
        cli_json_string(stdout, lg->plan);
        printf("}");
    }
    printf("]");
    if (rp->int8)
        print_json_int8(rp);
    printf(", \"output\": ");
    cli_json_string(stdout, rp->out);
    printf("}\n");
}

static void print_text_int8(const compress_report *rp)
{
    const quant_report *q = &rp->q;
    char b0[32], b1[32], b2[32];
    printf("int8: %d factor pairs balanced (product quantization error %.3g → %.3g); validation %.2f%% float → "
           "%.2f%% int8 before fine-tuning → %.2f%% after %d epochs with quantization in the loop (kept epoch %d)\n",
           q->balance.pairs, q->balance.qerr_before, q->balance.qerr_after, 100 * q->val_float, 100 * q->val_ptq,
           100 * q->val_int8, rp->int8_epochs, q->ft.kept_epoch);
    printf("test accuracy float %6.2f%%, int8 %6.2f%% (the C export's weights: export --format c --int8)\n",
           100 * rp->test_float, 100 * rp->test_acc);
    printf("weight bytes (C export) %s fp32 → %s fp32 factorized → %s int8 (%.2f× fewer)\n",
           cli_human(rp->bytes0, b0, sizeof b0), cli_human(rp->q.bytes_float, b1, sizeof b1),
           cli_human(rp->q.bytes_int8, b2, sizeof b2), cli_ratio(rp->bytes0, rp->q.bytes_int8));
}

static void print_text(const compress_cmd *c, const pipe_compress_result *r, const compress_report *rp)
{
    const search_options *so = &c->po.search;
    printf("compress: objective %s, factors fitted to %s, MAC floor %.2f×, tolerance %.2f pt (margin %.2f SE), "
           "%ld fine-tuning epochs%s, %.1f min in all\n",
           search_objective_name(so->objective), so->fit_calib ? "layer outputs" : "weights", so->min_macs_ratio, r->tol_points, c->po.margin_z, c->epochs,
           c->po.finetune.distill || c->stages || c->recipe_in ? " (distilled)" : "", rp->total / 60);
    if (c->stages || c->recipe_in)
        printf("%s: %d stages fine-tuned, each distilled from the original\n",
               c->recipe_in ? "replay of the recipe" : "staged", r->n_rounds);
    else
        printf("search: %d trials, %d evaluations, %.1f s; fine-tuning rounds: %d\n", r->search.trials,
               r->search.evaluations, r->search.seconds, r->n_rounds);
    for (int i = 0; i < r->n_rounds; ++i) {
        const pipe_round *lg = &r->rounds[i];
        printf("  %s %d  budget %6.2f pt  params %.2f×  MACs %.2f×  val %.2f%% → %.2f%% (margin %.2f pt)  %s  %s\n",
               unit(c), i + 1, lg->budget, cli_ratio(c->p0, lg->params), cli_ratio(c->m0, lg->macs), 100 * lg->val_pre,
               100 * lg->val_post, lg->margin, lg->accepted ? "kept    " : "rejected", lg->plan);
    }
    printf("plan:\n");
    cli_print_plan(stdout, r->plan);
    cli_print_cost(stdout, &rp->pc);
    printf("validation accuracy %6.2f%% → %6.2f%% (%+.2f pt)%s\n", 100 * r->base_val, 100 * r->best_val,
           100 * (r->best_val - r->base_val), rp->int8 ? "  [float]" : "");
    if (rp->int8)
        print_text_int8(rp);
    printf("test accuracy       %6.2f%% → %6.2f%% (%+.2f pt)%s%s\n", 100 * rp->test_base, 100 * rp->test_acc,
           100 * (rp->test_acc - rp->test_base), rp->int8 ? "  [int8]" : "",
           rp->fell_back ? "  [test = shipped sample]" : "");
    print_speed(&rp->speed);
    printf("saved %s%s%s\n", rp->out, c->plan_out ? " and " : "", c->plan_out ? c->plan_out : "");
}

/* Test accuracy of the int8 model, checked against the model the C export computes with
 * (export_c_dequantize of it): they must agree exactly, or the figure would not be the export's. */
static int int8_test_acc(const rs_model *q, const cifar10_set *test, int threads, double *acc)
{
    rs_err e = {{0}};
    double acc_c = -1;
    rs_model *dq = export_c_dequantize(q, &e);
    if (!dq) {
        cli_error("compress --int8: %s", e.msg);
        return -1;
    }
    int rc = cli_eval_acc(q, test, threads, acc) || cli_eval_acc(dq, test, threads, &acc_c) ? -1 : 0;
    model_free(dq);
    if (rc == 0 && *acc != acc_c) {
        cli_error("compress --int8: the int8 model scores %.4f%% but its C-export weights %.4f%% (internal error)",
                  100 * *acc, 100 * acc_c);
        rc = -1;
    }
    return rc;
}

/* The winner (or, with --int8, its int8 model q) on the test set, saved, timed and reported. */
static int finish(const compress_cmd *c, const cli_args *a, const rs_model *m, const pipe_compress_result *r,
                  const rs_model *q, compress_report *rp, const cifar10_set *test, int fell_back)
{
    rs_err e = {{0}};
    const rs_model *out = q ? q : r->model;
    rp->out = a->out;
    rp->test_images = test->n;
    rp->fell_back = fell_back;
    int threads = c->po.search.nthreads;
    if (cli_eval_acc(m, test, threads, &rp->test_base) != 0 || cli_eval_acc(r->model, test, threads, &rp->test_float) != 0)
        return -1;
    rp->test_acc = rp->test_float;
    if (q && (int8_test_acc(q, test, threads, &rp->test_acc) != 0 || quant_weight_bytes(m, 0, &rp->bytes0, &e) != 0)) {
        if (e.msg[0])
            cli_error("%s", e.msg);
        return -1;
    }
    if (plan_cost_of(m, r->plan, &rp->pc, &e) != 0 || onnx_save(out, a->out, &e) != 0) {
        cli_error("%s", e.msg);
        return -1;
    }
    /* the saved net's own counts (with --bn a factor may keep a BN shift as a bias the plan lacks) */
    model_totals(r->model, &rp->pc.params_after, &rp->pc.macs_after);
    rp->pc.bytes_after = 4 * rp->pc.params_after;
    if (cli_save_plan(r->plan, c->plan_out) != 0)
        return -1;
    if (!c->json)
        fprintf(stderr, "compress: timing the original and the compressed net...\n");
    if (pipe_measure_speed(m, out, NULL, 0, &rp->speed, &e) != 0) {
        cli_error("compress: timing: %s", e.msg);
        return -1;
    }
    if (c->po.search.objective == SEARCH_OBJ_LATENCY && objective_verdict(c, &rp->speed) <= 0)
        cli_error("compress: warning: the plan is not measured faster than the original (%.2f×, %s); "
                  "it is not reported as faster", rp->speed.speedup_b1, pipe_verdict_name(objective_verdict(c, &rp->speed)));
    rp->total = rs_now() - c->po.started;
    if (a->json)
        print_json(c, r, rp);
    else
        print_text(c, r, rp);
    return 0;
}

/* --int8: the winner quantized (balanced factors, quantization-aware fine-tuning). */
static int quantize(compress_cmd *c, const rs_model *winner, const cifar10_set *train, const cifar10_set *val,
                    rs_model **q, compress_report *rp)
{
    rs_err e = {{0}};
    quant_options qo;
    quant_default_options(&qo);
    qo.finetune = c->po.finetune;
    rp->int8 = 1;
    rp->int8_epochs = (int)(c->int8_epochs >= 0 ? c->int8_epochs : c->epochs > 0 ? c->epochs : 2);
    qo.finetune.train.epochs = rp->int8_epochs;
    train_data td, vd;
    finetune_data_of(val, &vd);
    if (train)
        finetune_data_of(train, &td);
    if (!c->json)
        fprintf(stderr, "compress: int8: balancing factor pairs, %d epochs with quantization in the loop...\n",
                rp->int8_epochs);
    int rc = quant_compress(winner, train ? &td : NULL, &vd, &qo, q, &rp->q, &e);
    cli_progress_end();
    if (rc != 0)
        cli_error("compress --int8: %s", rc == RS_CANCELLED ? "interrupted" : e.msg);
    return rc;
}

/* --stages / --recipe / --recipe-out: what they need and what they exclude (defaults resolved). */
static int check_modes(const compress_cmd *c)
{
    const char *clash = NULL;
    if (c->given_stages && c->stages && c->epochs < 1)
        clash = "--stages needs fine-tuning: every stage fine-tunes (--finetune N, N >= 1)";
    else if (c->given_staged && !c->stages && !c->recipe_in)
        clash = "--extend and --polish belong to staged runs (not with --stages 0 or --finetune 0)";
    else if (c->recipe_out && !c->stages && !c->recipe_in)
        clash = "--recipe-out records a staged run (not with --stages 0 or --finetune 0)";
    else if ((c->ckpt_out || c->ckpt_in) && !c->stages && !c->recipe_in)
        clash = "--checkpoint / --resume cover staged runs and --recipe replays (not --stages 0 or --finetune 0)";
    if (clash) {
        cli_error("compress: %s", clash);
        return CLI_USAGE;
    }
    if (!c->recipe_in)
        return 0;
    clash = c->given_stages ? "--stages" : c->given_epochs ? "--finetune" : c->train_images ? "--train-images"
          : c->val_images ? "--val-images" : c->given_fit ? "--fit / --calib-images"
          : c->int8 ? "--int8" : c->recipe_out ? "--recipe-out" : c->given_staged ? "--extend / --polish"
          : c->po.finetune.bn ? "--bn" : NULL;
    if (clash) {
        cli_error("compress --recipe %s: %s comes from the recipe (leave it out)", c->recipe_in, clash);
        return CLI_USAGE;
    }
    return 0;
}

/* What was not given: COMPRESS_EPOCHS epochs per stage, up to COMPRESS_STAGES stages, factors
 * fitted to the layer outputs (a replay takes all three from its recipe). */
static void resolve_defaults(compress_cmd *c)
{
    if (c->recipe_in)
        return;
    if (!c->given_epochs)
        c->epochs = COMPRESS_EPOCHS;
    if (!c->given_stages)
        c->stages = c->epochs > 0 ? COMPRESS_STAGES : 0;
    if (!c->given_mode)
        c->fit.outputs = 1;
}

/* No output may be an input or another output, under any spelling. */
static int check_files(const compress_cmd *c, const cli_args *a, const char *in)
{
    /* the checkpoint is written where it is resumed from unless told otherwise */
    const char *outs[4] = {a->out, c->plan_out, c->recipe_out, c->ckpt_out ? c->ckpt_out : c->ckpt_in};
    const char *opts[4] = {"-o", "--plan-out", "--recipe-out", c->ckpt_out ? "--checkpoint" : "--resume"};
    for (int i = 0; i < 4; ++i) {
        if (!outs[i])
            continue;
        if (cli_check_output(outs[i], in, i == 0 && a->force) != 0)
            return CLI_USAGE;
        for (int j = i + 1; j < 4 + 1; ++j) {
            cli_inputs ci = {.reads_data = 1, .data = a->data, .extra_in = c->recipe_in, .extra_opt = "--recipe"};
            if (i < 3 && c->ckpt_in && fileio_same_file(outs[i], c->ckpt_in)) {
                cli_error("%s %s is the checkpoint given to --resume; refusing to overwrite it", opts[i], outs[i]);
                return CLI_USAGE;
            }
            if (j < 4)
                ci.other_out = outs[j], ci.other_opt = opts[j];
            if (cli_check_output_inputs(opts[i], outs[i], &ci) != 0)
                return CLI_USAGE;
        }
    }
    return 0;
}

static int check_args(const compress_cmd *c, const cli_args *a)
{
    if (!a->out) {
        cli_error("compress: -o OUT.onnx is required");
        return CLI_USAGE;
    }
    if (c->int8_epochs >= 0 && !c->int8) {
        cli_error("compress: --int8-epochs needs --int8");
        return CLI_USAGE;
    }
    int rc = check_modes(c);
    return rc ? rc : check_files(c, a, a->model ? a->model : cli_default_model());
}

/* --recipe: load it, check its layers against m (before any data is read) and take its settings
 * (image counts, fit, int8); a training split is read. */
static int take_recipe(compress_cmd *c, const rs_model *m)
{
    rs_err e = {{0}};
    if (!(c->recipe = recipe_load(c->recipe_in, &e))) {
        cli_error("%s", e.msg);
        return -1;
    }
    const rs_recipe *r = c->recipe;
    for (int i = 0; i < r->n_stages; ++i)
        if (plan_validate(m, r->stages[i].plan, &e) != 0) {
            cli_error("%s: stage %d: %s", c->recipe_in, i + 1, e.msg);
            return -1;
        }
    c->train_images = r->train_images, c->val_images = r->val_images;
    c->fit.outputs = r->fit_outputs, c->fit.calib = r->calib_images;
    c->int8 = r->int8, c->int8_epochs = r->int8 ? r->int8_epochs : -1;
    c->epochs = r->stages[0].epochs; /* a replay trains: load_sets reads the training split */
    return 0;
}

/* Appends one "KEY VALUE" line to the ident text. */
static void ident_add(compress_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ident_add(compress_cmd *c, const char *fmt, ...)
{
    size_t at = strlen(c->ident);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->ident + at, sizeof c->ident - at, fmt, ap);
    va_end(ap);
}

/* What a checkpoint must have been made with to be resumed: the input files (by size and CRC, not
 * name: a moved file is the same input), the data directory and every option that shapes the run
 * (resolved). Not --time-limit: it may change between sittings. */
static int make_ident(compress_cmd *c, const cli_args *a, const char *model_path)
{
    rs_err e = {{0}};
    char id[96], dir[1100];
    c->ident[0] = 0;
    if (pipe_file_ident(model_path, id, sizeof id, &e) != 0) {
        cli_error("%s", e.msg);
        return -1;
    }
    ident_add(c, "model %s\n", id);
    if (c->recipe_in) {
        if (pipe_file_ident(c->recipe_in, id, sizeof id, &e) != 0) {
            cli_error("%s", e.msg);
            return -1;
        }
        ident_add(c, "--recipe %s\n", id);
    }
    ident_add(c, "--data %s\n", cifar10_find_dir(a->data, dir, sizeof dir, NULL) == 0 ? dir : "(none)");
    const search_options *so = &c->po.search;
    const finetune_options *fo = &c->po.finetune;
    ident_add(c, "--tolerance %.17g\n--relative %.17g\n--objective %s\n--latency %s\n--min-macs-ratio %.17g\n"
                 "--methods %u\n--sens-images %d\n", so->tolerance, so->relative, search_objective_name(so->objective),
              so->latency_throughput ? "batch" : "b1", so->min_macs_ratio, so->conv_methods, so->sens_images);
    ident_add(c, "--finetune %ld\n--stages %ld\n--rounds %d\n--lr %.9g\n--distill %d\n--factors-only %d\n--bn %d\n"
                 "--margin-z %.17g\n--stage-budget %.17g\n--extend %.17g\n--polish %d\n", c->epochs, c->stages,
              c->po.rounds, fo->train.lr, fo->distill, fo->factors_only, fo->bn, c->po.margin_z, c->po.stage_budget,
              c->po.extend_slack, c->po.polish_epochs);
    ident_add(c, "--int8 %d\n--int8-epochs %ld\n--train-images %ld\n--val-images %ld\n--fit %s\n--calib-images %d\n"
                 "--threads %d\n", c->int8, c->int8_epochs, c->train_images, c->val_images,
              !c->fit.outputs ? "weights" : c->fit.layers_only ? "layers" : "outputs", c->fit.calib,
              a->threads > 0 ? a->threads : rs_default_threads());
    if (strlen(c->ident) + 1 >= sizeof c->ident) {
        cli_error("compress: the options are too long to record in a checkpoint");
        return -1;
    }
    return 0;
}

/* --checkpoint / --resume: the checkpoint read and checked against this run, the options set. */
static int setup_checkpoint(compress_cmd *c, const cli_args *a, const char *model_path)
{
    rs_err e = {{0}};
    if (!c->ckpt_out && !c->ckpt_in)
        return 0;
    if (make_ident(c, a, model_path) != 0)
        return -1;
    if (c->ckpt_in) {
        char what[700], where[128];
        if (!(c->resume = pipe_ckpt_load(c->ckpt_in, &e))) {
            cli_error("compress --resume: %s", e.msg);
            return -1;
        }
        if (pipe_ident_diff(pipe_ckpt_ident(c->resume), c->ident, what, sizeof what)) {
            cli_error("compress --resume %s: the checkpoint is of another run: %s", c->ckpt_in, what);
            return -1;
        }
        if (!c->json)
            fprintf(stderr, "compress: resuming %s (%s)\n", c->ckpt_in, pipe_ckpt_where(c->resume, where, sizeof where));
    }
    c->po.checkpoint = c->ckpt_out ? c->ckpt_out : c->ckpt_in;
    c->po.ident = c->ident;
    c->po.resume = c->resume;
    return 0;
}

/* Interrupted with a checkpoint: nothing is saved, the checkpoint holds the run. */
static int stopped_at_checkpoint(const compress_cmd *c)
{
    cli_progress_end();
    cli_error("compress: interrupted; nothing saved: %s holds the run (give the same command with --resume %s "
              "to go on)", c->po.checkpoint, c->po.checkpoint);
    return -1;
}

/* The run: rounds (pipe_compress_run), stages (pipe_staged_run) or a replay. */
static int run_compress(compress_cmd *c, const rs_model *m, const cifar10_set *train, const cifar10_set *val,
               pipe_compress_result *r)
{
    rs_err e = {{0}};
    int rc;
    if (c->recipe_in) {
        rc = pipe_recipe_replay(m, train, val, c->recipe, &c->po, r, &e);
        if (c->po.checkpoint && cli_interrupted && (rc == RS_CANCELLED || (rc == 0 && r->cancelled)))
            return stopped_at_checkpoint(c);
    } else if (c->stages) {
        c->po.stages = (int)c->stages;
        rs_recipe *rec = c->recipe = recipe_alloc();
        if (!rec) {
            cli_error("out of memory");
            return -1;
        }
        rec->train_images = (int)c->train_images, rec->val_images = (int)c->val_images;
        rec->fit_outputs = c->po.search.fit_calib != NULL, rec->calib_images = c->po.search.fit_n;
        rc = pipe_staged_run(m, train, val, &c->po, r, rec, &e);
        if (c->po.checkpoint && cli_interrupted && (rc == RS_CANCELLED || (rc == 0 && r->cancelled)))
            return stopped_at_checkpoint(c);
        if (rc == 0 && rec->n_stages == 0) {
            cli_error("compress --stages: %s; nothing saved",
                      r->cancelled  ? "interrupted before a stage was kept"
                      : c->hit_limit ? "the time limit came before a stage was kept"
                      : r->warning[0] ? r->warning
                                      : "no stage stayed within the tolerance");
            return -1;
        }
    } else {
        rc = pipe_compress_run(m, train, val, &c->po, r, &e);
    }
    cli_progress_end();
    if (rc != 0)
        cli_error("%s", e.msg);
    return rc;
}

/* --recipe-out: the kept stages (and the int8 step when there was one). */
static int save_recipe(const compress_cmd *c, const compress_report *rp)
{
    rs_err e = {{0}};
    if (!c->recipe_out)
        return 0;
    c->recipe->int8 = rp->int8, c->recipe->int8_epochs = rp->int8_epochs;
    if (recipe_save(c->recipe, c->recipe_out, &e) != 0) {
        cli_error("%s", e.msg);
        return -1;
    }
    return 0;
}

/* The splits compress needs (train only when something trains), cut to --train/val-images. */
static int load_sets(compress_cmd *c, const cli_args *a, cifar10_set **train, cifar10_set **val,
                     cifar10_set **test, int *fell_back)
{
    int trains = c->epochs > 0 || (c->int8 && c->int8_epochs != 0);
    if (!(*val = cli_load_split(a->data, "val", NULL)) || !(*test = cli_load_split(a->data, "test", fell_back)) ||
        (trains && !(*train = cli_load_split(a->data, "train", NULL))))
        return -1;
    /* views of the first images: the pixels stay owned by the set */
    if (c->val_images > 0 && c->val_images < (*val)->n)
        (*val)->n = (int)c->val_images;
    if (*train && c->train_images > 0 && c->train_images < (*train)->n)
        (*train)->n = (int)c->train_images;
    c->n_val = (*val)->n;
    return 0;
}

int cmd_compress(int argc, char **argv)
{
    static const cli_spec spec = {"compress", CLI_A_DATA | CLI_A_THREADS | CLI_A_OUTPUT | CLI_A_FORCE |
                                                  CLI_A_VERBOSE | CLI_A_JSON,
                                  compress_opts, compress_option, compress_usage, 1};
    compress_cmd c = {.int8_epochs = -1};
    pipe_compress_default_options(&c.po); /* embedded defaults: see compress_usage */
    c.po.rounds = COMPRESS_ROUNDS;
    c.po.extend_slack = COMPRESS_EXTEND;
    c.po.polish_epochs = COMPRESS_POLISH;
    cli_args a;
    int rc = cli_parse(&spec, argc, argv, &c, &a);
    if (rc >= 0)
        return rc;
    resolve_defaults(&c);
    if ((rc = check_args(&c, &a)) != 0)
        return rc;
    c.json = a.json;
    c.po.search.nthreads = c.po.finetune.train.nthreads = a.threads;
    if (!c.po.search.conv_methods) /* CP factors are unstable under fine-tuning (Lebedev et al. 2015) */
        c.po.search.conv_methods = (1u << DECOMP_SPATIAL_SVD) | (1u << DECOMP_TUCKER2);
    cli_run run = {a.verbose, a.json, a.verbose};
    cli_run_search(&run, &c.po.search);
    cli_run_finetune(&run, &c.po.finetune);
    c.po.epochs = (int)c.epochs;
    c.po.time_limit_s = c.minutes > 0 ? c.minutes * 60 : 0; /* 0: none, the work is bounded by --rounds */
    c.po.on_stage = on_stage;
    c.po.user = &c;
    c.po.started = rs_now();
    rs_model *m = cli_load_model(a.model), *q = NULL;
    cifar10_set *train = NULL, *val = NULL, *test = NULL;
    pipe_compress_result *r = calloc(1, sizeof *r);
    compress_report rp;
    memset(&rp, 0, sizeof rp);
    int rcode = CLI_FAIL, fell_back = 0;
    float *calib = NULL;
    if (!m || !r || (c.recipe_in && take_recipe(&c, m) != 0) ||
        setup_checkpoint(&c, &a, a.model ? a.model : cli_default_model()) != 0 ||
        load_sets(&c, &a, &train, &val, &test, &fell_back) != 0)
        goto done;
    a.fit = c.fit;
    if (cli_fit_search(&a, &c.po.search, &calib) != 0)
        goto done;
    model_totals(m, &c.p0, &c.m0);
    cli_catch_sigint();
    if (run_compress(&c, m, train, val, r) == 0 && (!c.int8 || quantize(&c, r->model, train, val, &q, &rp) == 0) &&
        finish(&c, &a, m, r, q, &rp, test, fell_back) == 0 && save_recipe(&c, &rp) == 0)
        rcode = CLI_OK;
done:
    cli_progress_end();
    pipe_compress_result_free(r);
    free(r);
    model_free(m);
    model_free(q);
    free(calib);
    recipe_free(c.recipe);
    pipe_ckpt_free(c.resume);
    cifar10_free(train);
    cifar10_free(val);
    cifar10_free(test);
    return rcode;
}
