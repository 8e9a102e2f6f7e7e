/* cmd_export.c — `rankscope export`: the (factorized) model as ONNX or as dependency-free C. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "rankscope/cifar10.h"
#include "rankscope/eval.h"
#include "rankscope/export.h"
#include "rankscope/onnx.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope export [MODEL.onnx] [--plan FILE | --ranks SPEC] --format onnx|c -o OUT\n"
            "                        [--int8] [--data DIR] [--split test|val|sample] [--json] [--force]\n"
            "  --format onnx   OUT.onnx: the factorized graph (opset 13), written atomically.\n"
            "  --format c      OUT is a directory (created if missing) that receives model.h and\n"
            "                  model.c: C99 without dependencies, weights as static const arrays,\n"
            "                  void model_forward(const float *in, float *out, float *scratch),\n"
            "                  MODEL_SCRATCH_FLOATS of caller scratch, no malloc, no libm.\n"
            "                  Prints flash (weight bytes) and RAM (scratch bytes).\n"
            "  --int8          (c) int8 weights, symmetric per output channel, float scales; also\n"
            "                  reports the accuracy of those weights against fp32 on --split\n"
            "                  (default test; falls back to the shipped sample without the data set).\n"
            "  --ranks conv2=cp:8,fc1=svd:16   factorize these layers first (overrides --plan's)\n");
}

static int make_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            cli_error("-o %s: exists and is not a directory (--format c writes a directory)", dir);
            return -1;
        }
        return 0;
    }
    if (mkdir(dir, 0755) != 0) {
        cli_error("-o %s: cannot create directory: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Accuracy of the fp32 model and of its int8 weights (the same weights the C code computes with). */
static int int8_accuracy(const rs_model *m, const char *data, const char *split, eval_result *fp32,
                         eval_result *int8, char *source, size_t srclen, int *fell_back)
{
    rs_err e = {{0}};
    rs_model *dq = export_c_dequantize(m, &e);
    cifar10_set *s = dq ? cifar10_load_split(data, split, fell_back, &e) : NULL;
    int rc = -1;
    if (s && eval_model(m, s, 0, fp32, NULL, NULL, &e) == 0 &&
        eval_model(dq, s, 0, int8, NULL, NULL, &e) == 0) {
        snprintf(source, srclen, "%s", s->source);
        rc = 0;
    }
    if (rc)
        cli_error("export --int8: %s", e.msg);
    cifar10_free(s);
    model_free(dq);
    return rc;
}

/* DIR/model.c and DIR/model.h: never an input, and replaced only with --force (an earlier export
 * may be hand-edited or part of a firmware tree). */
static int check_c_outputs(const char *dir, const char *model, const char *plan, const char *data,
                           int force)
{
    static const char *const names[] = {"model.c", "model.h"};
    char path[1200];
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0; /* made by the export (or refused by it): nothing in it to overwrite */
    for (int i = 0; i < 2; ++i) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= sizeof path) {
            cli_error("export: -o %s: path too long", dir);
            return -1;
        }
        if (cli_check_output(path, model, 0) != 0 ||
            cli_check_output_inputs("-o", path, &(cli_inputs){.plan = plan, .reads_data = 1,
                                                              .data = data}) != 0)
            return -1;
        if (!force && lstat(path, &st) == 0) {
            cli_error("export: %s exists; refusing to replace it (pass --force to replace %s/model.c "
                      "and %s/model.h together)", path, dir, dir);
            return -1;
        }
    }
    return 0;
}

typedef struct export_cmd {
    const char *format, *split;
    int int8;
} export_cmd;

static int export_option(void *cmd, int key, const char *arg)
{
    export_cmd *x = cmd;
    if (key == 'f')
        x->format = arg;
    else if (key == 's')
        x->split = arg;
    else
        x->int8 = 1;
    return 0;
}

int cmd_export(int argc, char **argv)
{
    static const cli_opt opts[] = {{"format", 1, 'f', 0}, {"int8", 0, 'q', 0}, {"split", 1, 's', 0}, {0, 0, 0, 0}};
    static const cli_spec spec = {"export", CLI_A_OUTPUT | CLI_A_PLAN | CLI_A_RANKS | CLI_A_DATA | CLI_A_JSON |
                                                CLI_A_FORCE,
                                  opts, export_option, usage, 1};
    export_cmd ec = {NULL, "test", 0};
    cli_args a;
    int prc = cli_parse(&spec, argc, argv, &ec, &a);
    if (prc >= 0)
        return prc;
    const char *format = ec.format, *split = ec.split, *out = a.out, *plan = a.plan, *ranks = a.ranks,
               *data = a.data;
    int int8 = ec.int8, json = a.json, force = a.force;
    if (!format || (strcmp(format, "onnx") && strcmp(format, "c"))) {
        cli_error("export: --format onnx or --format c is required%s%s%s", format ? " (got \"" : "",
                  format ? format : "", format ? "\")" : "");
        return CLI_USAGE;
    }
    const int as_c = !strcmp(format, "c");
    if (!out) {
        cli_error("export: -o %s is required", as_c ? "DIR" : "OUT.onnx");
        return CLI_USAGE;
    }
    if (int8 && !as_c) {
        cli_error("export: --int8 applies to --format c only");
        return CLI_USAGE;
    }
    if (strcmp(split, "test") && strcmp(split, "val") && strcmp(split, "sample")) {
        cli_error("export: --split \"%s\" (expected test, val or sample)", split);
        return CLI_USAGE;
    }
    const char *in = a.model;
    if (!as_c && (cli_check_output(out, in ? in : cli_default_model(), force) != 0 ||
                  cli_check_output_inputs("-o", out, &(cli_inputs){.plan = plan, .reads_data = 1,
                                                                   .data = data}) != 0))
        return CLI_FAIL;
    if (as_c && check_c_outputs(out, in ? in : cli_default_model(), plan, data, force) != 0)
        return CLI_FAIL;
    rs_model *m = cli_load_model(in);
    if (!m)
        return CLI_FAIL;
    int rc = CLI_FAIL;
    rs_err e = {{0}};
    int64_t params, macs;
    if (cli_apply_plan(m, plan, ranks) != 0)
        goto done;
    model_totals(m, &params, &macs);
    if (!as_c) {
        if (onnx_save(m, out, &e) != 0) {
            cli_error("%s", e.msg);
            goto done;
        }
        if (json) {
            printf("{\"format\": \"onnx\", \"out\": ");
            cli_json_string(stdout, out);
            printf(", \"params\": %lld, \"macs\": %lld, \"fp32_bytes\": %lld}\n", (long long)params,
                   (long long)macs, (long long)params * 4);
        } else {
            char hp[16], hm[16];
            printf("wrote %s: %d nodes, %lld params (%s), %lld MACs per image (%s)\n", out,
                   m->n_nodes, (long long)params, cli_human(params, hp, sizeof hp), (long long)macs,
                   cli_human(macs, hm, sizeof hm));
        }
        rc = CLI_OK;
        goto done;
    }

    if (make_dir(out) != 0)
        goto done;
    export_c_opts o = {.int8 = int8};
    export_c_stats st;
    if (export_c_write(m, out, &o, &st, &e) != 0) {
        cli_error("%s", e.msg);
        goto done;
    }
    eval_result fp32 = {0}, q8 = {0};
    char source[512] = "";
    int fell_back = 0;
    if (int8 && int8_accuracy(m, data, split, &fp32, &q8, source, sizeof source, &fell_back) != 0)
        goto done;
    if (json) {
        printf("{\"format\": \"c\", \"out\": ");
        cli_json_string(stdout, out);
        printf(", \"weights\": \"%s\", \"ops\": %d, \"params\": %lld, \"macs\": %lld, "
               "\"flash_bytes\": %lld, \"ram_bytes\": %lld, \"scratch_floats\": %lld, "
               "\"input_floats\": %lld, \"output_floats\": %lld",
               int8 ? "int8" : "fp32", st.n_ops, (long long)st.params, (long long)macs,
               (long long)st.weight_bytes, (long long)st.scratch_bytes,
               (long long)st.scratch_floats, (long long)st.input_floats,
               (long long)st.output_floats);
        if (int8) {
            printf(", \"accuracy\": {\"split\": \"%s\", \"images\": %d, \"fp32\": %.6f, "
                   "\"int8\": %.6f, \"source\": ",
                   fell_back ? "sample" : split, q8.images, fp32.accuracy, q8.accuracy);
            cli_json_string(stdout, source);
            printf("}");
        }
        printf("}\n");
    } else {
        char hf[16], hr[16];
        printf("wrote %s/model.h and %s/model.c: %d ops, %lld weights, %s\n", out, out, st.n_ops,
               (long long)st.params, int8 ? "int8 (per-channel float scales)" : "fp32");
        printf("flash (weights): %lld bytes (%s)   RAM (scratch): %lld bytes (%s)   "
               "input %lld floats, output %lld floats\n",
               (long long)st.weight_bytes, cli_human(st.weight_bytes, hf, sizeof hf),
               (long long)st.scratch_bytes, cli_human(st.scratch_bytes, hr, sizeof hr),
               (long long)st.input_floats, (long long)st.output_floats);
        if (int8)
            printf("accuracy on %s: int8 %.2f %% vs fp32 %.2f %% (%d images)\n", source,
                   100.0 * q8.accuracy, 100.0 * fp32.accuracy, q8.images);
    }
    rc = CLI_OK;
done:
    model_free(m);
    return rc;
}
