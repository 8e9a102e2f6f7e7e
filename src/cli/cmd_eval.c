/* cmd_eval.c — `rankscope eval`: accuracy overall and per class. */
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
               "                      [--fit weights|outputs|layers] [--calib-images N]\n"
               "  Accuracy on CIFAR-10 (default split: test; without a full data set, test falls back\n"
               "  to the sample shipped in assets/ and says so). seconds = time of the forward passes.\n"
               "  --fit outputs: the plan's factors are fitted to each layer's outputs on the first N\n"
               "  training images (--calib-images, 1000), layer by layer from the compressed prefix,\n"
               "  then the whole net refined to the original's logits on them (--fit layers: not).\n");
}

static int eval_option(void *cmd, int key, const char *arg)
{
    (void)key; /* --split, the only one */
    *(const char **)cmd = arg;
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    static const cli_opt opts[] = {{"split", 1, 's', 0}, {0, 0, 0, 0}};
    static const cli_spec spec = {"eval", CLI_A_JSON | CLI_A_DATA | CLI_A_THREADS | CLI_A_PLAN | CLI_A_RANKS | CLI_A_FIT,
                                  opts,
                                  eval_option, usage, 1};
    const char *split = "test";
    cli_args a;
    int prc = cli_parse(&spec, argc, argv, &split, &a);
    if (prc >= 0)
        return prc;
    int json = a.json, threads = a.threads;
    const char *data = a.data, *plan = a.plan, *ranks = a.ranks;
    cli_fit fit = a.fit;
    if (strcmp(split, "test") && strcmp(split, "val") && strcmp(split, "sample")) {
        cli_error("eval: --split \"%s\" (expected test, val or sample)", split);
        return CLI_USAGE;
    }
    rs_model *m = cli_load_model(a.model);
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
        cli_error("%s: %s", a.model ? a.model : cli_default_model(), e.msg);
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
