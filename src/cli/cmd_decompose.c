/* cmd_decompose.c — `rankscope decompose`, `rankscope spectrum`, `rankscope estimate`: thin
 * clients of decomp.h / evbmf.h / plan.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/fit.h"
#include "rankscope/infer.h"
#include "rankscope/guard.h"
#include "rankscope/cifar10.h"
#include "rankscope/decomp.h"
#include "rankscope/evbmf.h"
#include "rankscope/onnx.h"
#include "rankscope/plan.h"

#define CALIB_DEFAULT 256

/* Calibration batch: the first n images of the shipped sample (or of --data's test split when
 * no sample is found), normalised. Returns a malloc'ed n × 3072 array or NULL. */
static float *calibration_batch(const char *data, int *n, char *source, size_t srclen)
{
    rs_err e = {{0}};
    cifar10_set *s = cifar10_load_split(data, "sample", NULL, &e);
    if (!s)
        s = cifar10_load_split(data, "test", NULL, &e);
    if (!s) {
        cli_error("calibration images: %s", e.msg);
        return NULL;
    }
    if (*n > s->n)
        *n = s->n;
    float *x = malloc((size_t)*n * CIFAR10_PIXELS * sizeof *x);
    if (x)
        cifar10_normalize(s, 0, *n, x);
    snprintf(source, srclen, "%s", s->source);
    cifar10_free(s);
    if (!x)
        cli_error("out of memory");
    return x;
}

static int parse_ranks(const char *s, int *rank, int *rank2)
{
    char *end;
    long r = strtol(s, &end, 10), r2 = 0;
    if (end == s || r < 1 || r > 1000000)
        return -1;
    if (*end == ',' || *end == 'x' || *end == ':') {
        const char *p = end + 1;
        r2 = strtol(p, &end, 10);
        if (end == p || r2 < 1 || r2 > 1000000)
            return -1;
    }
    if (*end)
        return -1;
    *rank = (int)r;
    *rank2 = (int)r2;
    return 0;
}

static void print_cost_json(const decomp_cost *c)
{
    printf("\"params_before\": %lld, \"params_after\": %lld, \"macs_before\": %lld, \"macs_after\": %lld, "
           "\"param_ratio\": %.4f, \"mac_ratio\": %.4f",
           (long long)c->params_before, (long long)c->params_after, (long long)c->macs_before,
           (long long)c->macs_after, c->params_after ? (double)c->params_before / c->params_after : 0.0,
           c->macs_after ? (double)c->macs_before / c->macs_after : 0.0);
}

/* The model at path (the default model when NULL) with --plan / --ranks applied; NULL, already
 * reported, when either step fails. */
static rs_model *load_planned_model(const char *path, const char *plan_f, const char *ranks_spec)
{
    rs_model *m = cli_load_model(path);
    if (m && cli_apply_plan(m, plan_f, ranks_spec)) {
        model_free(m);
        return NULL;
    }
    return m;
}

/* --fit outputs for one layer: its input on the calibration images (the model as it is, plan
 * applied) both feeds the chain and defines the targets. Prints the error, returns -1. */
static int fit_one_layer(const rs_model *m, int node, decomp_result *r, cli_fit *fit, const char *data, int quiet)
{
    rs_err e = {{0}};
    int n = 0, rc = -1;
    fit->data = data;
    float *cx = cli_fit_calibration(fit, &n, quiet), *xin = NULL;
    size_t per = (size_t)model_value_numel(&m->values[m->nodes[node].in[0]]);
    if (cx && !(xin = malloc(per * (size_t)n * sizeof *xin)))
        cli_error("out of memory for the calibration activations");
    else if (cx && infer_capture(m, cx, n, m->nodes[node].in[0], xin, &e) != 0)
        cli_error("%s", e.msg);
    else if (cx && fit_layer(m, node, r, xin, xin, n, NULL, &e) != 0)
        cli_error("%s", e.msg);
    else if (cx)
        rc = 0;
    free(cx), free(xin);
    return rc;
}

static void decompose_usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope decompose [MODEL.onnx] --layer NAME --method METHOD --rank R[,R2]\n"
            "                           [-o OUT.onnx] [--json] [--calib N] [--data DIR]\n"
            "       rankscope decompose [MODEL.onnx] (--plan FILE | --ranks SPEC) [-o OUT.onnx] [--json]\n"
            "                           [--fit weights|outputs|layers] [--calib-images N]\n"
            "  Factorize one layer (or every layer of a plan) into ordinary Conv/Gemm layers and report\n"
            "  params / MACs (per image) before and after, the weight error ||K-K^||/||K||, and the\n"
            "  relative error of the layer's output on a calibration batch (first N sample images).\n"
            "  METHOD: svd (Gemm/MatMul), slice-svd, spatial-svd, cp, tucker2 (Conv, group 1).\n"
            "  tucker2 ranks: R = output-channel rank, R2 = input-channel rank (default min(R, C_in)).\n"
            "  --fit outputs: the factors are fitted to the layer's outputs on the first N training images\n"
            "  (--calib-images, 1000): whitened SVD (svd), reduced-rank regression on input patches\n"
            "  (tucker2), least squares (spatial-svd's horizontal and cp's last factor); a plan's layers\n"
            "  in graph order, each fed by the already-compressed prefix, then (a plan) the whole net\n"
            "  refined to the original's logits on the same images; --fit layers: without that.\n"
            "  CP-ALS: --max-iter N (200) --tol T (1e-8) --restarts K (0) --seed S --ridge L (0)\n"
            "  -f/--force  allow -o to overwrite the input model\n");
}

static void print_layer_json(const char *layer, const decomp_result *r, double out_err, int calib_n)
{
    printf("\"layer\": ");
    cli_json_string(stdout, layer);
    printf(", \"method\": \"%s\", \"rank\": %d", decomp_method_name(r->method), r->rank);
    if (r->method == DECOMP_TUCKER2)
        printf(", \"rank2\": %d", r->rank2);
    printf(", ");
    print_cost_json(&r->cost);
    printf(", \"weight_error\": %.6g", r->weight_error);
    if (isfinite(out_err))
        printf(", \"output_error\": %.6g, \"calibration_images\": %d", out_err, calib_n);
    else
        printf(", \"output_error\": null");
    printf(", \"seconds\": %.6f, \"factors\": [", r->seconds);
    for (int i = 0; i < r->n_factors; ++i) {
        const decomp_factor *f = &r->f[i];
        printf("%s{\"op\": \"%s\", \"weight\": [", i ? ", " : "", model_op_name(f->op));
        for (int d = 0; d < f->w_ndim; ++d)
            printf("%s%lld", d ? ", " : "", (long long)f->w_dims[d]);
        printf("], \"group\": %lld, \"params\": %lld, \"macs\": %lld}", (long long)f->group,
               (long long)f->params, (long long)f->macs);
    }
    printf("]");
    if (r->method == DECOMP_CP)
        printf(", \"sensitivity\": %.6g, \"ridge_used\": %.6g", r->sensitivity, r->ridge_used);
    if (r->method == DECOMP_CP || r->method == DECOMP_TUCKER2) {
        printf(", \"iterations\": %d, \"converged\": %s, \"degenerate\": %s, \"fit\": [", r->iterations,
               r->converged ? "true" : "false", r->degenerate ? "true" : "false");
        for (int i = 0; i < r->n_fit; ++i)
            printf("%s%.8g", i ? ", " : "", r->fit[i]);
        printf("]");
    }
}

static void print_plan_json(const rs_plan *plan, const plan_layer_report *rep, const plan_cost *pc, int first)
{
    printf("%s\"plan\": [", first ? "" : ", ");
    for (int i = 0; i < plan->n; ++i) {
        const plan_entry *pe = &plan->entries[i];
        printf("%s{\"layer\": ", i ? ", " : "");
        cli_json_string(stdout, pe->layer);
        printf(", \"method\": \"%s\", \"rank\": %d, \"rank2\": %d, \"weight_error\": %.6g, "
               "\"degenerate\": %s}",
               decomp_method_name(pe->method), pe->rank, pe->rank2, rep[i].weight_error,
               rep[i].degenerate ? "true" : "false");
    }
    printf("], \"network\": {\"params_before\": %lld, \"params_after\": %lld, \"macs_before\": %lld, "
           "\"macs_after\": %lld, \"fp32_bytes_before\": %lld, \"fp32_bytes_after\": %lld}",
           (long long)pc->params_before, (long long)pc->params_after, (long long)pc->macs_before,
           (long long)pc->macs_after, (long long)pc->bytes_before, (long long)pc->bytes_after);
}

static void print_plan_text(const rs_plan *plan, const plan_layer_report *rep, const plan_cost *pc)
{
    char a[16], b[16];
    for (int i = 0; i < plan->n; ++i) {
        const plan_entry *pe = &plan->entries[i];
        if (pe->method == DECOMP_NONE)
            printf("%-12s none\n", pe->layer);
        else
            printf("%-12s %-12s rank %d%s  weight error %.4f%s\n", pe->layer, decomp_method_name(pe->method),
                   pe->rank, "", rep[i].weight_error, rep[i].degenerate ? "  (CP degenerate)" : "");
    }
    printf("network: params %s -> ", cli_human(pc->params_before, a, sizeof a));
    printf("%s (%.2fx), ", cli_human(pc->params_after, b, sizeof b),
           (double)pc->params_before / (double)(pc->params_after ? pc->params_after : 1));
    printf("MACs %s -> ", cli_human(pc->macs_before, a, sizeof a));
    printf("%s (%.2fx) per image\n", cli_human(pc->macs_after, b, sizeof b),
           (double)pc->macs_before / (double)(pc->macs_after ? pc->macs_after : 1));
}

static void print_layer_text(const char *layer, const decomp_result *r, double out_err, int calib_n,
                             const char *calib_src)
{
    printf("%s: %s rank %d", layer, decomp_method_name(r->method), r->rank);
    if (r->method == DECOMP_TUCKER2)
        printf(",%d (R_out,R_in)", r->rank2);
    printf("  (%.1f ms)\n", 1e3 * r->seconds);
    for (int i = 0; i < r->n_factors; ++i) {
        const decomp_factor *f = &r->f[i];
        char ws[64];
        if (f->w_ndim == 4)
            snprintf(ws, sizeof ws, "%lldx%lldx%lldx%lld", (long long)f->w_dims[0], (long long)f->w_dims[1],
                     (long long)f->w_dims[2], (long long)f->w_dims[3]);
        else
            snprintf(ws, sizeof ws, "%lldx%lld", (long long)f->w_dims[0], (long long)f->w_dims[1]);
        printf("  %s_f%d  %-5s %-14s group %-5lld params %8lld  MACs %10lld\n", r->layer, i,
               model_op_name(f->op), ws, (long long)f->group, (long long)f->params, (long long)f->macs);
    }
    printf("  params %lld -> %lld (%.2fx)   MACs %lld -> %lld (%.2fx) per image%s\n",
           (long long)r->cost.params_before, (long long)r->cost.params_after,
           (double)r->cost.params_before / (double)r->cost.params_after, (long long)r->cost.macs_before,
           (long long)r->cost.macs_after, (double)r->cost.macs_before / (double)r->cost.macs_after,
           r->cost.params_after >= r->cost.params_before ? "  -- costs MORE than the original" : "");
    printf("  weight error ||K-K^||/||K|| = %.4f\n", r->weight_error);
    if (isfinite(out_err))
        printf("  output error on %d calibration images = %.4f   (%s)\n", calib_n, out_err, calib_src);
    if (r->method == DECOMP_CP || r->method == DECOMP_TUCKER2)
        printf("  %d sweeps, %s, fit %.4f%s\n", r->iterations, r->converged ? "converged" : "iteration cap",
               r->n_fit ? r->fit[r->n_fit - 1] : 0.0, r->degenerate ? ", DEGENERATE (diverging terms)" : "");
    if (r->method == DECOMP_CP)
        printf("  sensitivity sum ||term||^2 / ||K^||^2 = %.3f (1 = terms do not cancel)%s\n", r->sensitivity,
               r->ridge_used > 0 ? "; stabilised by a ridge continuation" : "");
}

/* --method and --rank of --layer; prints the error and returns -1 when they do not hold. */
static int check_layer_args(const char *method_s, const char *rank_s, decomp_method *method, int *rank, int *rank2)
{
    rs_err e = {{0}};
    if (!method_s || !rank_s) {
        cli_error("decompose: --layer needs --method and --rank");
        return -1;
    }
    if (decomp_method_parse(method_s, method, &e)) {
        cli_error("decompose: %s", e.msg);
        return -1;
    }
    if (*method == DECOMP_NONE) {
        cli_error("decompose: method none factorizes nothing");
        return -1;
    }
    if (parse_ranks(rank_s, rank, rank2) || (*rank2 && *method != DECOMP_TUCKER2)) {
        cli_error("decompose: --rank \"%s\" (expected a positive integer%s)", rank_s,
                  *method == DECOMP_TUCKER2 ? " or R,R2" : "");
        return -1;
    }
    return 0;
}

/* The plan applied to m: factors from the weights, or fitted to the layer outputs (--fit). */
static int apply_plan(rs_model *m, const rs_plan *plan, const cli_fit *fit, const decomp_opts *dopts, int json,
                      plan_layer_report *rep, rs_err *e)
{
    if (!rep)
        return rs_fail(e, "out of memory");
    if (!fit->outputs)
        return plan_apply(m, plan, dopts, rep, e);
    int cn = 0;
    float *cx = cli_fit_calibration(fit, &cn, json);
    if (!cx) {
        e->msg[0] = 0; /* already reported */
        return -1;
    }
    fit_options fo;
    fit_default_options(&fo);
    fo.decomp = dopts;
    if (fit->layers_only)
        fo.refine_epochs = 0;
    int rc = fit_plan_apply(m, plan, cx, cn, &fo, rep, e);
    free(cx);
    return rc;
}

static void print_result(const char *layer, const decomp_result *r, double out_err, int calib_n,
                         const char *calib_src, const rs_plan *plan, const plan_layer_report *rep,
                         const plan_cost *pc, const char *out, int json)
{
    if (json) {
        printf("{");
        if (layer)
            print_layer_json(layer, r, out_err, calib_n);
        if (plan)
            print_plan_json(plan, rep, pc, !layer);
        if (out) {
            printf(", \"output\": ");
            cli_json_string(stdout, out);
        }
        printf("}\n");
        return;
    }
    if (plan)
        print_plan_text(plan, rep, pc);
    if (layer)
        print_layer_text(layer, r, out_err, calib_n, calib_src);
    if (out)
        printf("wrote %s\n", out);
}

typedef struct decompose_cmd {
    const char *layer, *method, *rank;
    long calib;
    decomp_opts dopts;
} decompose_cmd;

static int decompose_option(void *cmd, int key, const char *arg)
{
    decompose_cmd *c = cmd;
    long lv;
    double dv;
    switch (key) {
    case 'l': c->layer = arg; return 0;
    case 'm': c->method = arg; return 0;
    case 'r': c->rank = arg; return 0;
    case 'c': return cli_parse_int("--calib", arg, 1, 10000, &c->calib) ? CLI_USAGE : 0;
    case 'I':
        if (cli_parse_int("--max-iter", arg, 1, 1000000, &lv))
            return CLI_USAGE;
        c->dopts.max_iter = (int)lv;
        return 0;
    case 'S':
        if (cli_parse_int("--restarts", arg, 0, 1000, &lv))
            return CLI_USAGE;
        c->dopts.restarts = (int)lv;
        return 0;
    case 'E':
        if (cli_parse_int("--seed", arg, 0, 2147483647L, &lv))
            return CLI_USAGE;
        c->dopts.seed = (uint64_t)lv;
        return 0;
    case 'T':
        if (cli_parse_double("--tol", arg, 0, 1, &dv))
            return CLI_USAGE;
        c->dopts.tol = dv;
        return 0;
    case 'G':
        if (cli_parse_double("--ridge", arg, 0, 1, &dv))
            return CLI_USAGE;
        c->dopts.ridge = dv;
        return 0;
    }
    return CLI_USAGE;
}

int cmd_decompose(int argc, char **argv)
{
    static const cli_opt opts[] = {
        {"layer", 1, 'l', 0},    {"method", 1, 'm', 0}, {"rank", 1, 'r', 0},     {"calib", 1, 'c', 0},
        {"max-iter", 1, 'I', 0}, {"tol", 1, 'T', 0},    {"restarts", 1, 'S', 0}, {"seed", 1, 'E', 0},
        {"ridge", 1, 'G', 0},    {0, 0, 0, 0}};
    static const cli_spec spec = {"decompose", CLI_A_OUTPUT | CLI_A_JSON | CLI_A_PLAN | CLI_A_RANKS | CLI_A_DATA |
                                                   CLI_A_FORCE | CLI_A_FIT,
                                  opts, decompose_option, decompose_usage, 1};
    decompose_cmd dc = {.calib = CALIB_DEFAULT};
    decomp_opts_default(&dc.dopts);
    cli_args a;
    int prc = cli_parse(&spec, argc, argv, &dc, &a);
    if (prc >= 0)
        return prc;
    const char *layer = dc.layer, *method_s = dc.method, *rank_s = dc.rank, *out = a.out, *plan_f = a.plan,
               *ranks_spec = a.ranks, *data = a.data;
    int json = a.json, force = a.force;
    long calib = dc.calib;
    decomp_opts dopts = dc.dopts;
    cli_fit fit = a.fit;
    const char *in = a.model;
    if (!layer && !plan_f && !ranks_spec) {
        cli_error("decompose: give --layer NAME --method M --rank R, or --plan FILE / --ranks SPEC");
        decompose_usage(stderr);
        return CLI_USAGE;
    }
    decomp_method method = DECOMP_NONE;
    int rank = 0, rank2 = 0;
    rs_err e = {{0}};
    decomp_result r;
    memset(&r, 0, sizeof r);
    if (layer && check_layer_args(method_s, rank_s, &method, &rank, &rank2) != 0)
        return CLI_USAGE;
    if (out && (cli_check_output(out, in ? in : cli_default_model(), force) != 0 ||
                cli_check_output_inputs("-o", out, &(cli_inputs){.plan = plan_f, .reads_data = 1,
                                                                 .data = data}) != 0))
        return CLI_FAIL;
    rs_model *m = cli_load_model(in);
    if (!m)
        return CLI_FAIL;
    int rc = CLI_OK;
    rs_plan *plan = NULL;
    plan_cost pc;
    plan_layer_report *rep = NULL;
    if (plan_f || ranks_spec) {
        plan = plan_f ? plan_load(plan_f, &e) : plan_alloc();
        if (!plan || (ranks_spec && plan_parse_spec(plan, ranks_spec, &e)) || plan_cost_of(m, plan, &pc, &e)) {
            cli_error("%s", plan ? e.msg : (plan_f ? e.msg : "out of memory"));
            plan_free(plan);
            model_free(m);
            return CLI_FAIL;
        }
        rep = calloc((size_t)(plan->n ? plan->n : 1), sizeof *rep);
        fit.data = data;
        if (apply_plan(m, plan, &fit, &dopts, json, rep, &e) != 0) {
            if (e.msg[0])
                cli_error("%s", e.msg);
            rc = CLI_FAIL;
            goto done;
        }
    }
    double out_err = NAN;
    int calib_n = (int)calib;
    char calib_src[600] = "";
    if (layer) {
        int node = model_find_layer(m, layer);
        if (node < 0) {
            cli_error("decompose: layer \"%s\" not found%s", layer,
                      plan ? " (after applying the plan)" : "");
            rc = CLI_FAIL;
            goto done;
        }
        if (!json) {
            dopts.progress = cli_progress;
            dopts.user = NULL;
        }
        int drc = decomp_layer(m, node, method, rank, rank2, &dopts, &r, &e);
        cli_progress_end();
        if (drc) {
            cli_error("%s", e.msg);
            rc = CLI_FAIL;
            goto done;
        }
        if (fit.outputs && fit_one_layer(m, node, &r, &fit, data, json) != 0) {
            rc = CLI_FAIL;
            goto done;
        }
        float *x = calibration_batch(data, &calib_n, calib_src, sizeof calib_src);
        if (x && decomp_output_error(m, node, &r, x, calib_n, &out_err, &e)) {
            cli_error("output error: %s", e.msg);
            out_err = NAN;
        }
        free(x);
        if (decomp_apply(m, node, &r, &e)) {
            cli_error("%s", e.msg);
            rc = CLI_FAIL;
            goto done;
        }
    }
    if (out && onnx_save(m, out, &e)) {
        cli_error("%s", e.msg);
        rc = CLI_FAIL;
        goto done;
    }
    print_result(layer, &r, out_err, calib_n, calib_src, plan, rep, &pc, out, json);
done:
    decomp_result_free(&r);
    free(rep);
    plan_free(plan);
    model_free(m);
    return rc;
}

/* ---- spectrum ----------------------------------------------------------------------------------- */

static void spectrum_usage(FILE *f)
{
    fprintf(f, "usage: rankscope spectrum [MODEL.onnx] --layer NAME [--view dense|mode-0|mode-1|spatial|slices]\n"
               "                          [--json] [--plan FILE] [--ranks SPEC]\n"
               "  Singular values (descending), cumulative energy and the EVBMF rank of a layer's weight:\n"
               "  W itself for a dense layer; for a conv the spatial reshaping (C_in*kh)x(C_out*kw) by\n"
               "  default, the mode-0 / mode-1 unfoldings, and per-slice (kh x kw) spectra.\n");
}

static void json_array(const double *v, int n)
{
    printf("[");
    for (int i = 0; i < n; ++i)
        printf("%s%.9g", i ? ", " : "", v[i]);
    printf("]");
}

/* What `spectrum` prints from. */
typedef struct spectrum_out {
    const char *layer;
    const rs_model *m;
    int node, view;
    unsigned views;
    int conv, layer_rank;
    const decomp_spectrum *sp;
    const evbmf_result *ev;
} spectrum_out;

static void print_spectrum_json(const spectrum_out *o)
{
    rs_err e;
    const decomp_spectrum *s = &o->sp[o->view];
    printf("{\"layer\": ");
    cli_json_string(stdout, o->layer);
    printf(", \"op\": \"%s\", \"view\": \"%s\"", model_op_name(o->m->nodes[o->node].op),
           decomp_view_name((decomp_view)o->view));
    if (o->view != DECOMP_VIEW_SLICES) {
        printf(", \"rows\": %d, \"cols\": %d, \"singular_values\": ", s->rows, s->cols);
        json_array(s->sigma, s->n);
        printf(", \"energy\": ");
        json_array(s->energy, s->n);
        printf(", \"evbmf_rank\": %d, \"evbmf_sigma2\": %.9g, \"evbmf_threshold\": %.9g", o->ev[o->view].rank,
               o->ev[o->view].sigma2, o->ev[o->view].threshold);
    } else {
        /* slices: the mean spectrum over slices is descending too */
        double *mean = calloc((size_t)s->n, sizeof *mean);
        for (int k = 0; mean && k < s->n_mats; ++k)
            for (int i = 0; i < s->n; ++i)
                mean[i] += s->sigma[(size_t)k * s->n + i] / s->n_mats;
        printf(", \"rows\": %d, \"cols\": %d, \"singular_values\": ", s->rows, s->cols);
        json_array(mean, mean ? s->n : 0);
        free(mean);
        int r = 1;
        evbmf_layer_rank(o->m, o->node, DECOMP_SLICE_SVD, 1, &r, NULL, &e);
        printf(", \"evbmf_rank\": %d", r);
    }
    if (o->conv) {
        printf(", \"evbmf_rank_cp\": %d, \"views\": {", o->layer_rank);
        int first = 1;
        for (int v = DECOMP_VIEW_MODE0; v <= DECOMP_VIEW_SLICES; ++v) {
            printf("%s\"%s\": {\"rows\": %d, \"cols\": %d", first ? "" : ", ", decomp_view_name((decomp_view)v),
                   o->sp[v].rows, o->sp[v].cols);
            first = 0;
            if (v == DECOMP_VIEW_SLICES) {
                printf(", \"slices\": [");
                for (int k = 0; k < o->sp[v].n_mats; ++k) {
                    printf("%s", k ? ", " : "");
                    json_array(o->sp[v].sigma + (size_t)k * o->sp[v].n, o->sp[v].n);
                }
                printf("]}");
            } else {
                printf(", \"singular_values\": ");
                json_array(o->sp[v].sigma, o->sp[v].n);
                printf(", \"evbmf_rank\": %d}", o->ev[v].rank);
            }
        }
        printf("}");
    }
    printf("}\n");
}

static void print_spectrum_text(const spectrum_out *o)
{
    for (int v = 0; v < DECOMP_VIEW_COUNT; ++v) {
        if (!(o->views & (1u << v)) || (v != o->view && v == DECOMP_VIEW_SLICES))
            continue;
        const decomp_spectrum *s = &o->sp[v];
        if (v == DECOMP_VIEW_SLICES) {
            printf("%s %s: %d slices of %dx%d (first slices shown)\n", o->layer, decomp_view_name((decomp_view)v),
                   s->n_mats, s->rows, s->cols);
            for (int k = 0; k < s->n_mats && k < 8; ++k) {
                printf("  slice %d:", k);
                for (int i = 0; i < s->n; ++i)
                    printf(" %.4g", s->sigma[(size_t)k * s->n + i]);
                printf("\n");
            }
            continue;
        }
        printf("%s %s %dx%d%s: EVBMF rank %d (sigma2 %.4g, threshold %.4g)\n", o->layer,
               decomp_view_name((decomp_view)v), s->rows, s->cols, v == o->view ? " *" : "", o->ev[v].rank,
               o->ev[v].sigma2, o->ev[v].threshold);
        if (v != o->view)
            continue;
        printf("  %4s %12s %8s\n", "k", "sigma", "energy");
        for (int i = 0; i < s->n; ++i)
            printf("  %4d %12.6g %7.2f%%%s\n", i + 1, s->sigma[i], 100 * s->energy[i],
                   o->ev[v].rank == i + 1 ? "   <- EVBMF" : "");
    }
    if (o->conv)
        printf("EVBMF rank for cp (max of mode-0, mode-1): %d\n", o->layer_rank);
}

static int spectrum_option(void *cmd, int key, const char *arg)
{
    ((const char **)cmd)[key == 'v'] = arg;
    return 0;
}

int cmd_spectrum(int argc, char **argv)
{
    static const cli_opt opts[] = {{"layer", 1, 'l', 0}, {"view", 1, 'v', 0}, {0, 0, 0, 0}};
    static const cli_spec spec = {"spectrum", CLI_A_JSON | CLI_A_PLAN | CLI_A_RANKS, opts, spectrum_option,
                                  spectrum_usage, -1};
    const char *lv[2] = {NULL, NULL}; /* --layer, --view */
    cli_args a;
    int prc = cli_parse(&spec, argc, argv, lv, &a);
    if (prc >= 0)
        return prc;
    const char *layer = lv[0], *view_s = lv[1], *plan_f = a.plan, *ranks_spec = a.ranks;
    int json = a.json;
    if (!layer || a.n_rest > 1) {
        cli_error("spectrum: %s", layer ? "expected at most one model" : "--layer NAME is required");
        spectrum_usage(stderr);
        return CLI_USAGE;
    }
    int view = -1;
    for (int v = 0; view_s && v < DECOMP_VIEW_COUNT; ++v)
        if (!strcmp(view_s, decomp_view_name((decomp_view)v)))
            view = v;
    if (view_s && view < 0) {
        cli_error("spectrum: --view \"%s\" (expected dense, mode-0, mode-1, spatial or slices)", view_s);
        return CLI_USAGE;
    }
    rs_model *m = load_planned_model(a.model, plan_f, ranks_spec);
    if (!m)
        return CLI_FAIL;
    rs_err e = {{0}};
    int node = model_find_layer(m, layer);
    unsigned views = node >= 0 ? decomp_views_for(m, node) : 0;
    if (node < 0 || !views) {
        cli_error("spectrum: layer \"%s\" %s", layer, node < 0 ? "not found" : "has no weight matrix");
        model_free(m);
        return CLI_FAIL;
    }
    int conv = !(views & (1u << DECOMP_VIEW_DENSE));
    if (view < 0)
        view = conv ? DECOMP_VIEW_SPATIAL : DECOMP_VIEW_DENSE;
    if (!(views & (1u << view))) {
        cli_error("spectrum: %s: view %s does not apply", layer, decomp_view_name((decomp_view)view));
        model_free(m);
        return CLI_FAIL;
    }
    /* per-view spectra + EVBMF of each matrix view */
    decomp_spectrum sp[DECOMP_VIEW_COUNT];
    evbmf_result ev[DECOMP_VIEW_COUNT];
    memset(sp, 0, sizeof sp);
    memset(ev, 0, sizeof ev);
    int rc = CLI_OK;
    for (int v = 0; v < DECOMP_VIEW_COUNT && rc == CLI_OK; ++v) {
        if (!(views & (1u << v)))
            continue;
        if (decomp_spectrum_of(m, node, (decomp_view)v, &sp[v], &e)) {
            cli_error("%s", e.msg);
            rc = CLI_FAIL;
        } else if (v != DECOMP_VIEW_SLICES) {
            int L = sp[v].n, M = sp[v].rows > sp[v].cols ? sp[v].rows : sp[v].cols;
            if (evbmf_from_sv(sp[v].sigma, L, M, &ev[v], &e)) {
                cli_error("%s: evbmf: %s", layer, e.msg);
                rc = CLI_FAIL;
            }
        }
    }
    int layer_rank = 0;
    if (rc == CLI_OK && conv && evbmf_layer_rank(m, node, DECOMP_CP, 1, &layer_rank, NULL, &e))
        layer_rank = 0;
    spectrum_out o = {layer, m, node, view, views, conv, layer_rank, sp, ev};
    if (rc == CLI_OK && json)
        print_spectrum_json(&o);
    else if (rc == CLI_OK)
        print_spectrum_text(&o);
    for (int v = 0; v < DECOMP_VIEW_COUNT; ++v) {
        decomp_spectrum_free(&sp[v]);
        evbmf_result_free(&ev[v]);
    }
    model_free(m);
    return rc;
}

/* ---- estimate ------------------------------------------------------------------------------------ */

static void estimate_usage(FILE *f)
{
    fprintf(f, "usage: rankscope estimate [MODEL.onnx] [--multiple K] [--json] [--plan FILE] [--ranks SPEC]\n"
               "       rankscope estimate [MODEL.onnx] --bench [--reps N] [--json]\n"
               "  EVBMF rank of every weighted layer for every applicable method, rounded up to a multiple\n"
               "  of K (default 8, as the blog does; 1 = no rounding), with the cost at that rank, the maximum\n"
               "  rank and the break-even rank (largest rank that still saves parameters).\n"
               "  --bench: time the decomposition of every layer and method instead (best of N runs,\n"
               "  default 3; cp at rank min(16, max), the others at half their maximum rank).\n");
}

/* Opens one element of estimate's "layers" array: {"layer": NAME */
static void json_layer_open(int first, const char *name)
{
    printf("%s\n  {\"layer\": ", first ? "" : ",");
    cli_json_string(stdout, name);
}

static int estimate_bench(const rs_model *m, int reps, int json)
{
    rs_err e = {{0}};
    decomp_bench_row *rows;
    int n;
    double total;
    if (decomp_bench(m, reps, &rows, &n, &total, &e)) {
        cli_error("%s", e.msg);
        return CLI_FAIL;
    }
    if (json)
        printf("{\"reps\": %d, \"total_seconds\": %.6f, \"layers\": [", reps, total);
    else
        printf("%-14s %-12s %9s %10s   (best of %d)\n", "layer", "method", "rank", "ms", reps);
    for (int i = 0; i < n; ++i) {
        const decomp_bench_row *r = &rows[i];
        if (json) {
            printf("%s\n  {\"layer\": ", i ? "," : "");
            cli_json_string(stdout, m->nodes[r->node].name);
            printf(", \"method\": \"%s\", \"rank\": %d, \"rank2\": %d, \"seconds\": %.6f}",
                   decomp_method_name(r->method), r->rank, r->rank2, r->seconds);
        } else {
            char rs[32];
            if (r->method == DECOMP_TUCKER2)
                snprintf(rs, sizeof rs, "%d,%d", r->rank, r->rank2);
            else
                snprintf(rs, sizeof rs, "%d", r->rank);
            char shown[256];
            printf("%-14s %-12s %9s %10.2f\n", guard_quote(shown, sizeof shown, m->nodes[r->node].name),
                   decomp_method_name(r->method), rs, 1e3 * r->seconds);
        }
    }
    if (json)
        printf("\n]}\n");
    else
        printf("total %.1f ms\n", 1e3 * total);
    free(rows);
    return CLI_OK;
}

typedef struct estimate_cmd {
    long multiple, reps;
    int bench;
} estimate_cmd;

static int estimate_option(void *cmd, int key, const char *arg)
{
    estimate_cmd *c = cmd;
    if (key == 'b') {
        c->bench = 1;
        return 0;
    }
    if (key == 'k')
        return cli_parse_int("--multiple", arg, 1, 1024, &c->multiple) ? CLI_USAGE : 0;
    return cli_parse_int("--reps", arg, 1, 1000, &c->reps) ? CLI_USAGE : 0;
}

int cmd_estimate(int argc, char **argv)
{
    static const cli_opt opts[] = {{"multiple", 1, 'k', 0}, {"bench", 0, 'b', 0}, {"reps", 1, 'n', 0}, {0, 0, 0, 0}};
    static const cli_spec spec = {"estimate", CLI_A_JSON | CLI_A_PLAN | CLI_A_RANKS, opts, estimate_option,
                                  estimate_usage, -1};
    estimate_cmd ec = {8, 3, 0};
    cli_args a;
    int prc = cli_parse(&spec, argc, argv, &ec, &a);
    if (prc >= 0)
        return prc;
    const char *plan_f = a.plan, *ranks_spec = a.ranks;
    int json = a.json, bench = ec.bench;
    long multiple = ec.multiple, reps = ec.reps;
    if (a.n_rest > 1) {
        cli_error("estimate: expected at most one model");
        return CLI_USAGE;
    }
    rs_model *m = load_planned_model(a.model, plan_f, ranks_spec);
    if (!m)
        return CLI_FAIL;
    if (bench) {
        int brc = estimate_bench(m, (int)reps, json);
        model_free(m);
        return brc;
    }
    rs_err e = {{0}};
    int rc = CLI_OK, first = 1;
    if (json)
        printf("{\"multiple\": %ld, \"layers\": [", multiple);
    else
        printf("%-14s %-12s %9s %6s %10s %10s %10s\n", "layer", "method", "evbmf", "max", "break-even",
               "params", "MACs");
    for (int node = 0; node < m->n_nodes && rc == CLI_OK; ++node) {
        unsigned mask = decomp_methods_for(m, node);
        if (!model_is_weighted(m, node))
            continue;
        const char *name = m->nodes[node].name;
        char shown[256]; /* the table goes to a terminal: control bytes quoted (guard_quote) */
        guard_quote(shown, sizeof shown, name);
        if (mask == (1u << DECOMP_NONE)) {
            if (json) {
                json_layer_open(first, name);
                printf(", \"factorizable\": false}");
            } else {
                printf("%-14s (not factorizable: %s)\n", shown,
                       decomp_check(m, node, DECOMP_CP, &e) ? e.msg : "no method");
            }
            first = 0;
            continue;
        }
        for (int k = 1; k < DECOMP_COUNT; ++k) {
            if (!(mask & (1u << k)))
                continue;
            int r = 0, r2 = 0;
            decomp_cost cost;
            if (evbmf_layer_rank(m, node, (decomp_method)k, (int)multiple, &r, &r2, &e) ||
                decomp_cost_of(m, node, (decomp_method)k, r, r2, &cost, &e)) {
                cli_error("%s", e.msg);
                rc = CLI_FAIL;
                break;
            }
            int mx = decomp_max_rank(m, node, (decomp_method)k, 0);
            int be = decomp_break_even_rank(m, node, (decomp_method)k, DECOMP_BY_PARAMS);
            if (json) {
                json_layer_open(first, name);
                printf(", \"method\": \"%s\", \"evbmf_rank\": %d", decomp_method_name((decomp_method)k), r);
                if (k == DECOMP_TUCKER2)
                    printf(", \"evbmf_rank2\": %d", r2);
                printf(", \"max_rank\": %d, \"break_even_rank\": %d, ", mx, be);
                print_cost_json(&cost);
                printf("}");
            } else {
                char rs[32];
                if (k == DECOMP_TUCKER2)
                    snprintf(rs, sizeof rs, "%d,%d", r, r2);
                else
                    snprintf(rs, sizeof rs, "%d", r);
                printf("%-14s %-12s %9s %6d %10d %4lld->%-5lld %5lld->%lld\n", shown,
                       decomp_method_name((decomp_method)k), rs, mx, be, (long long)cost.params_before,
                       (long long)cost.params_after, (long long)cost.macs_before, (long long)cost.macs_after);
            }
            first = 0;
        }
    }
    if (json && rc == CLI_OK)
        printf("\n]}\n");
    model_free(m);
    return rc;
}
