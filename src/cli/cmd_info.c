/* cmd_info.c — `rankscope info`: the layer table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/guard.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: rankscope info [MODEL.onnx] [--json] [--plan FILE] [--ranks SPEC]\n"
               "  Layer table: name, op, input/output shape (per image), weight shape, params, MACs.\n"
               "  MACs are multiply-accumulates per image; bias adds, ReLU and pooling count 0.\n"
               "  --ranks conv2=cp:16,fc1=svd:32   factorize these layers first\n");
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

int cmd_info(int argc, char **argv)
{
    static const cli_spec spec = {"info", CLI_A_JSON | CLI_A_PLAN | CLI_A_RANKS, NULL, NULL, usage, 1};
    cli_args a;
    int prc = cli_parse(&spec, argc, argv, NULL, &a);
    if (prc >= 0)
        return prc;
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
                   "\"params\": %lld, \"macs\": %lld}",
                   model_op_name(t[i].op), in, out, t[i].w_ndim ? w : "", (long long)t[i].params,
                   (long long)t[i].macs);
        }
        printf("\n], \"params\": %lld, \"macs\": %lld, \"fp32_bytes\": %lld, \"nonfinite\": ",
               (long long)params, (long long)macs, (long long)params * 4);
        if (nonfinite[0])
            cli_json_string(stdout, nonfinite);
        else
            fputs("null", stdout);
        printf("}\n");
    } else {
        /* the name column grows to the longest name, so long graph names keep the columns aligned */
        int name_w = 16;
        for (int i = 0; i < n; ++i) {
            char q[256];
            int len = (int)strlen(guard_quote(q, sizeof q, t[i].name));
            if (len > name_w)
                name_w = len < 48 ? len : 48;
        }
        printf("%-*s %-9s %-12s %-12s %-12s %9s %10s\n", name_w, "layer", "op", "input", "output",
               "weight", "params", "MACs");
        for (int i = 0; i < n; ++i) {
            shape_str(t[i].in_shape, t[i].in_ndim, in, sizeof in);
            shape_str(t[i].out_shape, t[i].out_ndim, out, sizeof out);
            shape_str(t[i].w_shape, t[i].w_ndim, w, sizeof w);
            char q[256]; /* a name holding terminal control bytes is shown quoted, as ls does */
            printf("%-*s %-9s %-12s %-12s %-12s %9lld %10lld\n", name_w, guard_quote(q, sizeof q, t[i].name),
                   model_op_name(t[i].op), in, out, t[i].w_ndim ? w : "-", (long long)t[i].params,
                   (long long)t[i].macs);
        }
        printf("total: %lld params (%s, %s fp32 bytes), %lld MACs per image (%s)\n", (long long)params,
               cli_human(params, hp, sizeof hp), cli_human(params * 4, in, sizeof in), (long long)macs,
               cli_human(macs, hm, sizeof hm));
        printf("MACs count multiply-accumulates per image of Conv/Gemm/MatMul; bias, ReLU, pooling count 0.\n");
    }
    free(t);
    model_free(m);
    return CLI_OK;
}
