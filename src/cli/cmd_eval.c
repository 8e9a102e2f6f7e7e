/* cmd_eval.c — `rankscope eval`: accuracy overall and per class. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/cifar10.h"
#include "rankscope/eval.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: rankscope eval [MODEL.onnx] [--data DIR] [--split test|val|sample] [--json]\n"
               "                      [--threads N] [--plan FILE] [--ranks SPEC]\n"
               "                      [--fit weights|outputs] [--calib-images N]\n"
               "  Accuracy on CIFAR-10 (default split: test; without a full data set, test falls back\n"
               "  to the sample shipped in assets/ and says so). seconds = time of the forward passes.\n"
               "  --fit outputs: the plan's factors are fitted to each layer's outputs on the first N\n"
               "  training images (--calib-images, 1000), layer by layer from the compressed prefix.\n");
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},         {"data", required_argument, 0, 'd'},
        {"split", required_argument, 0, 's'},  {"threads", required_argument, 0, 't'},
        {"plan", required_argument, 0, 'p'},   {"ranks", required_argument, 0, 'r'},
        CLI_FIT_OPTIONS,
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    int json = 0, c;
    long threads = 0;
    const char *data = NULL, *split = "test", *plan = NULL, *ranks = NULL;
    cli_fit fit = {0, 0, NULL};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'd': data = optarg; break;
        case 's': split = optarg; break;
        case 'p': plan = optarg; break;
        case 'r': ranks = optarg; break;
        case CLI_OPT_FIT:
        case CLI_OPT_CALIB:
            if (cli_fit_arg(c, optarg, &fit) != 0)
                return CLI_USAGE;
            break;
        case 't':
            if (cli_parse_int("--threads", optarg, 1, 256, &threads) != 0)
                return CLI_USAGE;
            break;
        case 'h': usage(stdout); return CLI_OK;
        default:
            cli_error("eval: unknown or incomplete option \"%s\"", argv[optind - 1]);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (strcmp(split, "test") && strcmp(split, "val") && strcmp(split, "sample")) {
        cli_error("eval: --split \"%s\" (expected test, val or sample)", split);
        return CLI_USAGE;
    }
    if (argc - optind > 1) {
        cli_error("eval: expected at most one model, got %d arguments", argc - optind);
        return CLI_USAGE;
    }
    rs_model *m = cli_load_model(optind < argc ? argv[optind] : NULL);
    if (!m)
        return CLI_FAIL;
    fit.data = data;
    if (cli_apply_plan_fit(m, plan, ranks, &fit, json) != 0) {
        model_free(m);
        return CLI_FAIL;
    }
    rs_err e = {{0}};
    int fell_back = 0;
    cifar10_set *s = cifar10_load_split(data, split, &fell_back, &e);
    if (!s) {
        cli_error("%s", e.msg);
        model_free(m);
        return CLI_FAIL;
    }
    if (fell_back)
        fprintf(stderr, "rankscope: no full CIFAR-10 set found; evaluating the shipped test sample "
                        "(%d images) instead\n", s->n);
    eval_result r;
    int rc = eval_model(m, s, (int)threads, &r, json ? NULL : cli_progress, NULL, &e);
    cli_progress_end();
    if (rc != 0) {
        cli_error("%s: %s", optind < argc ? argv[optind] : cli_default_model(), e.msg);
        cifar10_free(s);
        model_free(m);
        return CLI_FAIL;
    }
    int64_t params, macs;
    model_totals(m, &params, &macs);
    if (json) {
        printf("{\"accuracy\": %.6f, \"correct\": %d, \"images\": %d, \"per_class\": [", r.accuracy, r.correct,
               r.images);
        for (int k = 0; k < CIFAR10_CLASSES; ++k)
            printf("%s%.6f", k ? ", " : "", r.per_class[k]);
        printf("], \"classes\": [");
        for (int k = 0; k < CIFAR10_CLASSES; ++k)
            printf("%s\"%s\"", k ? ", " : "", cifar10_class_names[k]);
        printf("], \"params\": %lld, \"macs\": %lld, \"fp32_bytes\": %lld, \"seconds\": %.6f, "
               "\"images_per_second\": %.1f, \"split\": \"%s\", \"fell_back_to_sample\": %s, \"source\": ",
               (long long)params, (long long)macs, (long long)params * 4, r.seconds,
               r.seconds > 0 ? r.images / r.seconds : 0.0, fell_back ? "sample" : split,
               fell_back ? "true" : "false");
        cli_json_string(stdout, s->source);
        printf("}\n");
    } else {
        char hp[16], hm[16];
        printf("Evaluated on %s\n", s->source);
        printf("Accuracy of the network on the %d %s images: %.1f %%\n", r.images,
               fell_back ? "sample" : split, 100.0 * r.accuracy);
        for (int k = 0; k < CIFAR10_CLASSES; ++k)
            printf("Accuracy for class: %-5s is %.1f %%\n", cifar10_class_names[k], 100.0 * r.per_class[k]);
        printf("params %lld (%s), MACs per image %lld (%s), %.3f s (%.0f images/s)\n", (long long)params,
               cli_human(params, hp, sizeof hp), (long long)macs, cli_human(macs, hm, sizeof hm), r.seconds,
               r.seconds > 0 ? r.images / r.seconds : 0.0);
    }
    cifar10_free(s);
    model_free(m);
    return CLI_OK;
}
