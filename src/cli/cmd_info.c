/* cmd_info.c — `rankscope info`: the layer table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/cifar10.h"
#include "rankscope/guard.h"
#include "rankscope/infer.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: rankscope info [MODEL.onnx] [--json] [--plan FILE] [--ranks SPEC]\n"
               "                      [--time [--images N] [--data DIR]]\n"
               "  Layer table: name, op, input/output shape (per image), weight shape, params, MACs.\n"
               "  MACs are multiply-accumulates per image; bias adds, ReLU and pooling count 0.\n"
               "  --ranks conv2=cp:16,fc1=svd:32   factorize these layers first\n"
               "  --time: measured CPU time per node (microseconds per image, one thread, the first N\n"
               "  test images, default 256) and its share of the total, as the explorer's graph view\n"
               "  shows it. A node fused into a kernel step with the one before it (Conv+Relu+MaxPool,\n"
               "  Conv+Add+Relu) has no time of its own: the step's time is on its first node.\n");
}

static void shape_str(const int64_t *d, int n, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n && at < len; ++i)
        at += (size_t)snprintf(buf + at, len - at, i ? "x%lld" : "%lld", (long long)d[i]);
    if (n == 0)
        snprintf(buf, len, "-");
}

typedef struct info_opts {
    int time;
    long images;
} info_opts;

static int info_option(void *cmd, int key, const char *arg)
{
    info_opts *o = cmd;
    if (key == 't') {
        o->time = 1;
        return 0;
    }
    return cli_parse_int("--images", arg, 1, 10000, &o->images) ? CLI_USAGE : 0;
}

/* The per-node times of m on the first o->images test images (NULL after printing the error). */
static infer_prof *info_profile(const rs_model *m, const char *data, const info_opts *o)
{
    int fell_back = 0;
    cifar10_set *set = cli_load_split(data, "test", &fell_back);
    if (!set)
        return NULL;
    rs_err e = {{0}};
    infer_prof *p = NULL;
    int n = set->n < o->images ? set->n : (int)o->images;
    if (infer_profile(m, NULL, set->pixels, n, NULL, NULL, &p, &e) != 0)
        cli_error("--time: %s", e.msg);
    cifar10_free(set);
    return p;
}

/* " 12.3  45.6%", "fused into NAME" or "view" for node i (the text table's time columns). */
static void time_cells(const infer_prof *p, const rs_layer_info *t, int i, char *buf, size_t len)
{
    char q[256];
    if (p->kind[i] == INFER_NODE_FUSED)
        snprintf(buf, len, "  (in %s)", guard_quote(q, sizeof q, t[p->fused_into[i]].name));
    else if (p->kind[i] == INFER_NODE_VIEW)
        snprintf(buf, len, "  (view)");
    else
        snprintf(buf, len, " %9.2f %6.1f%%", p->us[i], p->steps_us > 0 ? 100 * p->us[i] / p->steps_us : 0);
}

int cmd_info(int argc, char **argv)
{
    static const cli_opt opts[] = {{"time", 0, 't', 0}, {"images", 1, 'n', 0}, {0, 0, 0, 0}};
    static const cli_spec spec = {"info", CLI_A_JSON | CLI_A_PLAN | CLI_A_RANKS | CLI_A_DATA, opts, info_option, usage,
                                  1};
    info_opts o = {0, 256};
    cli_args a;
    int prc = cli_parse(&spec, argc, argv, &o, &a);
    if (prc >= 0)
        return prc;
    if (o.images != 256 && !o.time) {
        cli_error("--images counts the images --time runs; add --time");
        return CLI_USAGE;
    }
    int json = a.json;
    const char *plan = a.plan, *ranks = a.ranks;
    char nonfinite[RS_ERR_LEN];
    rs_model *m = cli_load_model_flagged(a.model, nonfinite,
                                         sizeof nonfinite);
    if (!m)
        return CLI_FAIL;
    if (nonfinite[0]) /* described, but flagged: every other command refuses this model */
        fprintf(stderr, "rankscope: warning: %s (eval, decompose, export and the rest refuse this "
                        "model)\n", nonfinite);
    if (cli_apply_plan(m, plan, ranks) != 0) {
        model_free(m);
        return CLI_FAIL;
    }
    rs_layer_info *t = NULL;
    int n = 0;
    rs_err e = {{0}};
    if (model_layer_table(m, &t, &n, &e) != 0) {
        cli_error("%s", e.msg);
        model_free(m);
        return CLI_FAIL;
    }
    infer_prof *prof = NULL;
    if (o.time && !(prof = info_profile(m, a.data, &o))) {
        free(t);
        model_free(m);
        return CLI_FAIL;
    }
    int64_t params, macs;
    model_totals(m, &params, &macs);
    char in[64], out[64], w[64], hp[16], hm[16];
    if (json) {
        printf("{\"layers\": [");
        for (int i = 0; i < n; ++i) {
            shape_str(t[i].in_shape, t[i].in_ndim, in, sizeof in);
            shape_str(t[i].out_shape, t[i].out_ndim, out, sizeof out);
            shape_str(t[i].w_shape, t[i].w_ndim, w, sizeof w);
            printf("%s\n  {\"name\": ", i ? "," : "");
            cli_json_string(stdout, t[i].name);
            printf(", \"op\": \"%s\", \"input\": \"%s\", \"output\": \"%s\", \"weight\": \"%s\", "
                   "\"params\": %lld, \"macs\": %lld",
                   model_op_name(t[i].op), in, out, t[i].w_ndim ? w : "", (long long)t[i].params,
                   (long long)t[i].macs);
            if (prof) {
                static const char *const kinds[] = {"step", "fused", "view"};
                printf(", \"timed\": \"%s\", \"us_per_image\": %.4f, \"time_pct\": %.3f, \"fused_into\": ",
                       kinds[prof->kind[i]], prof->us[i], prof->steps_us > 0 ? 100 * prof->us[i] / prof->steps_us : 0);
                if (prof->kind[i] == INFER_NODE_FUSED)
                    cli_json_string(stdout, t[prof->fused_into[i]].name);
                else
                    fputs("null", stdout);
            }
            putchar('}');
        }
        printf("\n], \"params\": %lld, \"macs\": %lld, \"fp32_bytes\": %lld, ", (long long)params, (long long)macs,
               (long long)params * 4);
        if (prof)
            printf("\"time\": {\"images\": %d, \"threads\": 1, \"clock\": \"thread CPU\", \"steps_us_per_image\": %.4f, "
                   "\"forward_us_per_image\": %.4f}, ",
                   prof->n_images, prof->steps_us, prof->forward_us);
        printf("\"nonfinite\": ");
        if (nonfinite[0])
            cli_json_string(stdout, nonfinite);
        else
            fputs("null", stdout);
        printf("}\n");
    } else {
        /* the name column grows to the longest name, so long graph names keep the columns aligned */
        int name_w = 16, op_w = 9; /* and the op column to the longest op (GlobalAveragePool) */
        for (int i = 0; i < n; ++i) {
            char q[256];
            int len = (int)strlen(guard_quote(q, sizeof q, t[i].name)), ol = (int)strlen(model_op_name(t[i].op));
            if (len > name_w)
                name_w = len < 48 ? len : 48;
            op_w = ol > op_w ? ol : op_w;
        }
        printf("%-*s %-*s %-12s %-12s %-12s %9s %10s%s\n", name_w, "layer", op_w, "op", "input", "output",
               "weight", "params", "MACs", prof ? "    us/img    time" : "");
        for (int i = 0; i < n; ++i) {
            shape_str(t[i].in_shape, t[i].in_ndim, in, sizeof in);
            shape_str(t[i].out_shape, t[i].out_ndim, out, sizeof out);
            shape_str(t[i].w_shape, t[i].w_ndim, w, sizeof w);
            char q[256]; /* a name holding terminal control bytes is shown quoted, as ls does */
            char tc[300] = "";
            if (prof)
                time_cells(prof, t, i, tc, sizeof tc);
            printf("%-*s %-*s %-12s %-12s %-12s %9lld %10lld%s\n", name_w, guard_quote(q, sizeof q, t[i].name),
                   op_w, model_op_name(t[i].op), in, out, t[i].w_ndim ? w : "-", (long long)t[i].params,
                   (long long)t[i].macs, tc);
        }
        printf("total: %lld params (%s, %s fp32 bytes), %lld MACs per image (%s)\n", (long long)params,
               cli_human(params, hp, sizeof hp), cli_human(params * 4, in, sizeof in), (long long)macs,
               cli_human(macs, hm, sizeof hm));
        printf("MACs count multiply-accumulates per image of Conv/Gemm/MatMul; bias, ReLU, pooling count 0.\n");
        if (prof)
            printf("time: CPU microseconds per image on one thread over %d test images: %.1f in the nodes, %.1f for "
                   "a whole forward pass; \"(in X)\": fused into X's kernel step, timed there\n",
                   prof->n_images, prof->steps_us, prof->forward_us);
    }
    infer_prof_free(prof);
    free(t);
    model_free(m);
    return CLI_OK;
}
