/* cmd_decompose.c — `rankscope decompose`, `rankscope spectrum`, `rankscope estimate`: thin
 * clients of decomp.h / evbmf.h / plan.h. */
#include <getopt.h>
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

/* The getopt default case of decompose, spectrum and estimate: name the option, show the
 * command's usage on stderr. */
static int unknown_option(const char *cmd, const char *opt, void (*usage)(FILE *))
{
    cli_error("%s: unknown or incomplete option \"%s\"", cmd, opt);
    usage(stderr);
    return CLI_USAGE;
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
            "                           [--fit weights|outputs] [--calib-images N]\n"
            "  Factorize one layer (or every layer of a plan) into ordinary Conv/Gemm layers and report\n"
            "  params / MACs (per image) before and after, the weight error ||K-K^||/||K||, and the\n"
            "  relative error of the layer's output on a calibration batch (first N sample images).\n"
            "  METHOD: svd (Gemm/MatMul), slice-svd, spatial-svd, cp, tucker2 (Conv, group 1).\n"
            "  tucker2 ranks: R = output-channel rank, R2 = input-channel rank (default min(R, C_in)).\n"
            "  --fit outputs: the factors are fitted to the layer's outputs on the first N training images\n"
            "  (--calib-images, 1000): whitened SVD (svd), reduced-rank regression on input patches\n"
            "  (tucker2), least squares (spatial-svd's horizontal and cp's last factor); a plan's layers\n"
            "  in graph order, each fed by the already-compressed prefix.\n"
            "  CP-ALS: --max-iter N (200) --tol T (1e-8) --restarts K (0) --seed S --ridge L (0)\n"
            "  -f/--force  allow -o to overwrite the input model\n");
}

int cmd_decompose(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layer", required_argument, 0, 'l'},   {"method", required_argument, 0, 'm'},
        {"rank", required_argument, 0, 'r'},    {"output", required_argument, 0, 'o'},
        {"json", no_argument, 0, 'j'},          {"plan", required_argument, 0, 'p'},
        {"ranks", required_argument, 0, 'R'},   {"calib", required_argument, 0, 'c'},
        {"data", required_argument, 0, 'd'},    {"max-iter", required_argument, 0, 'I'},
        {"tol", required_argument, 0, 'T'},     {"restarts", required_argument, 0, 'S'},
        {"seed", required_argument, 0, 'E'},    {"ridge", required_argument, 0, 'G'},
        {"force", no_argument, 0, 'f'},         {"help", no_argument, 0, 'h'},
        CLI_FIT_OPTIONS,
        {0, 0, 0, 0}};
    cli_fit fit = {0, 0, NULL};
    const char *layer = NULL, *method_s = NULL, *rank_s = NULL, *out = NULL, *plan_f = NULL,
               *ranks_spec = NULL, *data = NULL;
    int json = 0, force = 0, c;
    long calib = CALIB_DEFAULT, lv;
    double dv;
    decomp_opts dopts;
    decomp_opts_default(&dopts);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'l': layer = optarg; break;
        case CLI_OPT_FIT:
        case CLI_OPT_CALIB:
            if (cli_fit_arg(c, optarg, &fit) != 0)
                return CLI_USAGE;
            break;
        case 'm': method_s = optarg; break;
        case 'r': rank_s = optarg; break;
        case 'o': out = optarg; break;
        case 'j': json = 1; break;
        case 'p': plan_f = optarg; break;
        case 'R': ranks_spec = optarg; break;
        case 'd': data = optarg; break;
        case 'f': force = 1; break;
        case 'c':
            if (cli_parse_int("--calib", optarg, 1, 10000, &calib))
                return CLI_USAGE;
            break;
        case 'I':
            if (cli_parse_int("--max-iter", optarg, 1, 1000000, &lv))
                return CLI_USAGE;
            dopts.max_iter = (int)lv;
            break;
        case 'S':
            if (cli_parse_int("--restarts", optarg, 0, 1000, &lv))
                return CLI_USAGE;
            dopts.restarts = (int)lv;
            break;
        case 'E':
            if (cli_parse_int("--seed", optarg, 0, 2147483647L, &lv))
                return CLI_USAGE;
            dopts.seed = (uint64_t)lv;
            break;
        case 'T':
            if (cli_parse_double("--tol", optarg, 0, 1, &dv))
                return CLI_USAGE;
            dopts.tol = dv;
            break;
        case 'G':
            if (cli_parse_double("--ridge", optarg, 0, 1, &dv))
                return CLI_USAGE;
            dopts.ridge = dv;
            break;
        case 'h': decompose_usage(stdout); return CLI_OK;
        default: return unknown_option("decompose", argv[optind - 1], decompose_usage);
        }
    }
    if (argc - optind > 1) {
        cli_error("decompose: expected at most one model, got %d arguments", argc - optind);
        return CLI_USAGE;
    }
    const char *in = optind < argc ? argv[optind] : NULL;
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
    if (layer) {
        if (!method_s || !rank_s) {
            cli_error("decompose: --layer needs --method and --rank");
            return CLI_USAGE;
        }
        if (decomp_method_parse(method_s, &method, &e)) {
            cli_error("decompose: %s", e.msg);
            return CLI_USAGE;
        }
        if (method == DECOMP_NONE) {
            cli_error("decompose: method none factorizes nothing");
            return CLI_USAGE;
        }
        if (parse_ranks(rank_s, &rank, &rank2) || (rank2 && method != DECOMP_TUCKER2)) {
            cli_error("decompose: --rank \"%s\" (expected a positive integer%s)", rank_s,
                      method == DECOMP_TUCKER2 ? " or R,R2" : "");
            return CLI_USAGE;
        }
    }
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
        int prc;
        if (fit.outputs) {
            fit.data = data;
            int cn = 0;
            float *cx = rep ? cli_fit_calibration(&fit, &cn, json) : NULL;
            fit_options fo;
            fit_default_options(&fo);
            fo.decomp = &dopts;
            prc = cx ? fit_plan_apply(m, plan, cx, cn, &fo, rep, &e) : -1;
            free(cx);
            if (!cx && rep)
                e.msg[0] = 0; /* already reported */
        } else {
            prc = rep ? plan_apply(m, plan, &dopts, rep, &e) : rs_fail(&e, "out of memory");
        }
        if (prc) {
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
    if (json) {
        printf("{");
        int first = 1;
        if (layer) {
            printf("\"layer\": ");
            cli_json_string(stdout, layer);
            printf(", \"method\": \"%s\", \"rank\": %d", decomp_method_name(r.method), r.rank);
            if (r.method == DECOMP_TUCKER2)
                printf(", \"rank2\": %d", r.rank2);
            printf(", ");
            print_cost_json(&r.cost);
            printf(", \"weight_error\": %.6g", r.weight_error);
            if (isfinite(out_err))
                printf(", \"output_error\": %.6g, \"calibration_images\": %d", out_err, calib_n);
            else
                printf(", \"output_error\": null");
            printf(", \"seconds\": %.6f, \"factors\": [", r.seconds);
            for (int i = 0; i < r.n_factors; ++i) {
                const decomp_factor *f = &r.f[i];
                printf("%s{\"op\": \"%s\", \"weight\": [", i ? ", " : "", model_op_name(f->op));
                for (int d = 0; d < f->w_ndim; ++d)
                    printf("%s%lld", d ? ", " : "", (long long)f->w_dims[d]);
                printf("], \"group\": %lld, \"params\": %lld, \"macs\": %lld}", (long long)f->group,
                       (long long)f->params, (long long)f->macs);
            }
            printf("]");
            if (r.method == DECOMP_CP)
                printf(", \"sensitivity\": %.6g, \"ridge_used\": %.6g", r.sensitivity, r.ridge_used);
            if (r.method == DECOMP_CP || r.method == DECOMP_TUCKER2) {
                printf(", \"iterations\": %d, \"converged\": %s, \"degenerate\": %s, \"fit\": [", r.iterations,
                       r.converged ? "true" : "false", r.degenerate ? "true" : "false");
                for (int i = 0; i < r.n_fit; ++i)
                    printf("%s%.8g", i ? ", " : "", r.fit[i]);
                printf("]");
            }
            first = 0;
        }
        if (plan) {
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
                   (long long)pc.params_before, (long long)pc.params_after, (long long)pc.macs_before,
                   (long long)pc.macs_after, (long long)pc.bytes_before, (long long)pc.bytes_after);
        }
        if (out) {
            printf(", \"output\": ");
            cli_json_string(stdout, out);
        }
        printf("}\n");
    } else {
        char a[16], b[16];
        if (plan) {
            for (int i = 0; i < plan->n; ++i) {
                const plan_entry *pe = &plan->entries[i];
                if (pe->method == DECOMP_NONE)
                    printf("%-12s none\n", pe->layer);
                else
                    printf("%-12s %-12s rank %d%s  weight error %.4f%s\n", pe->layer, decomp_method_name(pe->method),
                           pe->rank, "", rep[i].weight_error, rep[i].degenerate ? "  (CP degenerate)" : "");
            }
            printf("network: params %s -> ", cli_human(pc.params_before, a, sizeof a));
            printf("%s (%.2fx), ", cli_human(pc.params_after, b, sizeof b),
                   (double)pc.params_before / (double)(pc.params_after ? pc.params_after : 1));
            printf("MACs %s -> ", cli_human(pc.macs_before, a, sizeof a));
            printf("%s (%.2fx) per image\n", cli_human(pc.macs_after, b, sizeof b),
                   (double)pc.macs_before / (double)(pc.macs_after ? pc.macs_after : 1));
        }
        if (layer) {
            printf("%s: %s rank %d", layer, decomp_method_name(r.method), r.rank);
            if (r.method == DECOMP_TUCKER2)
                printf(",%d (R_out,R_in)", r.rank2);
            printf("  (%.1f ms)\n", 1e3 * r.seconds);
            for (int i = 0; i < r.n_factors; ++i) {
                const decomp_factor *f = &r.f[i];
                char ws[64];
                if (f->w_ndim == 4)
                    snprintf(ws, sizeof ws, "%lldx%lldx%lldx%lld", (long long)f->w_dims[0], (long long)f->w_dims[1],
                             (long long)f->w_dims[2], (long long)f->w_dims[3]);
                else
                    snprintf(ws, sizeof ws, "%lldx%lld", (long long)f->w_dims[0], (long long)f->w_dims[1]);
                printf("  %s_f%d  %-5s %-14s group %-5lld params %8lld  MACs %10lld\n", r.layer, i,
                       model_op_name(f->op), ws, (long long)f->group, (long long)f->params, (long long)f->macs);
            }
            printf("  params %lld -> %lld (%.2fx)   MACs %lld -> %lld (%.2fx) per image%s\n",
                   (long long)r.cost.params_before, (long long)r.cost.params_after,
                   (double)r.cost.params_before / (double)r.cost.params_after, (long long)r.cost.macs_before,
                   (long long)r.cost.macs_after, (double)r.cost.macs_before / (double)r.cost.macs_after,
                   r.cost.params_after >= r.cost.params_before ? "  -- costs MORE than the original" : "");
            printf("  weight error ||K-K^||/||K|| = %.4f\n", r.weight_error);
            if (isfinite(out_err))
                printf("  output error on %d calibration images = %.4f   (%s)\n", calib_n, out_err, calib_src);
            if (r.method == DECOMP_CP || r.method == DECOMP_TUCKER2)
                printf("  %d sweeps, %s, fit %.4f%s\n", r.iterations, r.converged ? "converged" : "iteration cap",
                       r.n_fit ? r.fit[r.n_fit - 1] : 0.0, r.degenerate ? ", DEGENERATE (diverging terms)" : "");
            if (r.method == DECOMP_CP)
                printf("  sensitivity sum ||term||^2 / ||K^||^2 = %.3f (1 = terms do not cancel)%s\n", r.sensitivity,
                       r.ridge_used > 0 ? "; stabilised by a ridge continuation" : "");
        }
        if (out)
            printf("wrote %s\n", out);
    }
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

int cmd_spectrum(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layer", required_argument, 0, 'l'}, {"view", required_argument, 0, 'v'},
        {"json", no_argument, 0, 'j'},        {"plan", required_argument, 0, 'p'},
        {"ranks", required_argument, 0, 'R'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *layer = NULL, *view_s = NULL, *plan_f = NULL, *ranks_spec = NULL;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': layer = optarg; break;
        case 'v': view_s = optarg; break;
        case 'j': json = 1; break;
        case 'p': plan_f = optarg; break;
        case 'R': ranks_spec = optarg; break;
        case 'h': spectrum_usage(stdout); return CLI_OK;
        default: return unknown_option("spectrum", argv[optind - 1], spectrum_usage);
        }
    }
    if (!layer || argc - optind > 1) {
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
    rs_model *m = load_planned_model(optind < argc ? argv[optind] : NULL, plan_f, ranks_spec);
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
    if (rc == CLI_OK && json) {
        const decomp_spectrum *s = &sp[view];
        printf("{\"layer\": ");
        cli_json_string(stdout, layer);
        printf(", \"op\": \"%s\", \"view\": \"%s\"", model_op_name(m->nodes[node].op),
               decomp_view_name((decomp_view)view));
        if (view != DECOMP_VIEW_SLICES) {
            printf(", \"rows\": %d, \"cols\": %d, \"singular_values\": ", s->rows, s->cols);
            json_array(s->sigma, s->n);
            printf(", \"energy\": ");
            json_array(s->energy, s->n);
            printf(", \"evbmf_rank\": %d, \"evbmf_sigma2\": %.9g, \"evbmf_threshold\": %.9g", ev[view].rank,
                   ev[view].sigma2, ev[view].threshold);
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
            evbmf_layer_rank(m, node, DECOMP_SLICE_SVD, 1, &r, NULL, &e);
            printf(", \"evbmf_rank\": %d", r);
        }
        if (conv) {
            printf(", \"evbmf_rank_cp\": %d, \"views\": {", layer_rank);
            int first = 1;
            for (int v = DECOMP_VIEW_MODE0; v <= DECOMP_VIEW_SLICES; ++v) {
                printf("%s\"%s\": {\"rows\": %d, \"cols\": %d", first ? "" : ", ", decomp_view_name((decomp_view)v),
                       sp[v].rows, sp[v].cols);
                first = 0;
                if (v == DECOMP_VIEW_SLICES) {
                    printf(", \"slices\": [");
                    for (int k = 0; k < sp[v].n_mats; ++k) {
                        printf("%s", k ? ", " : "");
                        json_array(sp[v].sigma + (size_t)k * sp[v].n, sp[v].n);
                    }
                    printf("]}");
                } else {
                    printf(", \"singular_values\": ");
                    json_array(sp[v].sigma, sp[v].n);
                    printf(", \"evbmf_rank\": %d}", ev[v].rank);
                }
            }
            printf("}");
        }
        printf("}\n");
    } else if (rc == CLI_OK) {
        for (int v = 0; v < DECOMP_VIEW_COUNT; ++v) {
            if (!(views & (1u << v)) || (v != view && v == DECOMP_VIEW_SLICES))
                continue;
            const decomp_spectrum *s = &sp[v];
            if (v == DECOMP_VIEW_SLICES) {
                printf("%s %s: %d slices of %dx%d (first slices shown)\n", layer, decomp_view_name((decomp_view)v),
                       s->n_mats, s->rows, s->cols);
                for (int k = 0; k < s->n_mats && k < 8; ++k) {
                    printf("  slice %d:", k);
                    for (int i = 0; i < s->n; ++i)
                        printf(" %.4g", s->sigma[(size_t)k * s->n + i]);
                    printf("\n");
                }
                continue;
            }
            printf("%s %s %dx%d%s: EVBMF rank %d (sigma2 %.4g, threshold %.4g)\n", layer,
                   decomp_view_name((decomp_view)v), s->rows, s->cols, v == view ? " *" : "", ev[v].rank,
                   ev[v].sigma2, ev[v].threshold);
            if (v != view)
                continue;
            printf("  %4s %12s %8s\n", "k", "sigma", "energy");
            for (int i = 0; i < s->n; ++i)
                printf("  %4d %12.6g %7.2f%%%s\n", i + 1, s->sigma[i], 100 * s->energy[i],
                       ev[v].rank == i + 1 ? "   <- EVBMF" : "");
        }
        if (conv)
            printf("EVBMF rank for cp (max of mode-0, mode-1): %d\n", layer_rank);
    }
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

int cmd_estimate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"multiple", required_argument, 0, 'k'}, {"json", no_argument, 0, 'j'},
        {"plan", required_argument, 0, 'p'},     {"ranks", required_argument, 0, 'R'},
        {"bench", no_argument, 0, 'b'},          {"reps", required_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    const char *plan_f = NULL, *ranks_spec = NULL;
    int json = 0, bench = 0, c;
    long multiple = 8, reps = 3;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (cli_parse_int("--multiple", optarg, 1, 1024, &multiple))
                return CLI_USAGE;
            break;
        case 'j': json = 1; break;
        case 'b': bench = 1; break;
        case 'n':
            if (cli_parse_int("--reps", optarg, 1, 1000, &reps))
                return CLI_USAGE;
            break;
        case 'p': plan_f = optarg; break;
        case 'R': ranks_spec = optarg; break;
        case 'h': estimate_usage(stdout); return CLI_OK;
        default: return unknown_option("estimate", argv[optind - 1], estimate_usage);
        }
    }
    if (argc - optind > 1) {
        cli_error("estimate: expected at most one model");
        return CLI_USAGE;
    }
    rs_model *m = load_planned_model(optind < argc ? argv[optind] : NULL, plan_f, ranks_spec);
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
