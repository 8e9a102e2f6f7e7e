/* cmd_bench.c — `rankscope bench`: throughput figures measured in one run.
 *
 *  - evaluation of the test set (full 10,000 images when found, else the shipped sample) with the
 *    fast engine: best and median of --reps runs of eval_ctx (the same call `rankscope eval`
 *    times), images/s, achieved GFLOP/s (2 × MACs × images / s);
 *  - the machine's sgemm peak: a 2048³ cblas_sgemm with OpenBLAS on the same thread count,
 *    timed in this run, and the fraction of it the evaluation achieved;
 *  - a textbook single-thread forward (infer_forward_naive) as a sanity ratio;
 *  - single-image latency: batch 1, 1 thread.
 * Figures owned by other modules (training, decomposition, TUI) plug into `hooks` below.
 */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/cifar10.h"
#include "rankscope/decomp.h"
#include "rankscope/eval.h"
#include "rankscope/infer.h"
#include "rankscope/pipeline.h"
#include "rankscope/train.h"

/* OpenBLAS's thread control (declared by its cblas.h; repeated so other BLAS headers work). */
void openblas_set_num_threads(int num_threads);

/* What a hook gets: the loaded model and data, the thread count. */
typedef struct bench_env {
    const rs_model *model;
    const cifar10_set *test;
    const char *data_dir; /* --data or NULL */
    int threads;
} bench_env;

/* A figure measured by another module. run == NULL means "not implemented yet": the text output
 * says so and the JSON carries null under `key` (listed in "todo"). run returns 0 and sets
 * *value, or -1 with e filled. */
typedef struct bench_hook {
    const char *key;   /* JSON key */
    const char *label; /* human label */
    const char *unit;
    int (*run)(const bench_env *env, double *value, rs_err *e);
} bench_hook;

/* Decomposition: every weighted layer × method at the bench ranks, best of 3 (decomp_bench;
 * the per-layer table is `rankscope estimate --bench`). */
static int bench_decompose(const bench_env *env, double *value, rs_err *e)
{
    decomp_bench_row *rows;
    int n;
    int rc = decomp_bench(env->model, 3, &rows, &n, value, e);
    if (rc == 0)
        free(rows);
    return rc;
}

/* Explorer: a drag on conv2's rank slider (a few intermediate ranks, each cancelling the one
 * before), let go, to the refreshed accuracy over the whole test set: median of 7 (live.h). */
static int bench_slider(const bench_env *env, double *value, rs_err *e)
{
    char name[128] = "conv2";
    if (model_find_layer(env->model, name) < 0) {
        for (int i = 0; i < env->model->n_nodes; ++i)
            if (model_is_weighted(env->model, i)) {
                model_layer_name(env->model, i, name, sizeof name);
                break;
            }
    }
    double med = 0, worst = 0;
    if (pipe_measure_latency(env->model, env->test, name, 7, &med, &worst, e))
        return -1;
    *value = med * 1000.0;
    return 0;
}

/* Training: one epoch of SGD with augmentation (random crop + flip, batch 128) on a copy of the
 * model, over the first TRAIN_BENCH_IMAGES images of the training split (the test set when no
 * full data set is found); images/s of the epoch itself, as train_model times it. */
enum { TRAIN_BENCH_IMAGES = 10240 };

static int bench_train(const bench_env *env, double *value, rs_err *e)
{
    int fell_back = 0;
    rs_err le;
    cifar10_set *s = cifar10_load_split(env->data_dir, "train", &fell_back, &le);
    const cifar10_set *src = s ? s : env->test;
    rs_model *m = model_clone(env->model);
    if (!m) {
        cifar10_free(s);
        return rs_fail(e, "out of memory");
    }
    train_data d = {0};
    d.n = src->n < TRAIN_BENCH_IMAGES ? src->n : TRAIN_BENCH_IMAGES;
    d.c = CIFAR10_C, d.h = CIFAR10_H, d.w = CIFAR10_W;
    d.u8 = src->pixels;
    d.labels = src->labels;
    train_options o;
    train_default_options(&o);
    o.epochs = 1;
    o.nthreads = env->threads;
    train_epoch_stats st;
    int rc = train_model(m, &d, NULL, &o, &st, e);
    if (rc == 0)
        *value = st.seconds > 0 ? d.n / st.seconds : 0;
    model_free(m);
    cifar10_free(s);
    return rc;
}

static const bench_hook hooks[] = {
    {"train_images_per_second", "training (1 epoch, augmented, batch 128)", "images/s", bench_train},
    {"decompose_seconds", "decomposition of all layers and methods", "s", bench_decompose},
    {"slider_latency_ms", "explorer slider → refreshed accuracy", "ms", bench_slider},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope bench [MODEL.onnx | --model M] [--data DIR] [--json] [--threads N]\n"
            "                       [--reps N]\n"
            "  Test-set evaluation images/s and seconds (full 10,000 images when the data set is\n"
            "  found, else the shipped sample), GFLOP/s achieved against this machine's sgemm peak\n"
            "  (OpenBLAS 2048^3, same thread count, timed in this run), a naive single-thread\n"
            "  forward as a sanity ratio, and single-image latency (batch 1, 1 thread).\n"
            "  --reps N   evaluation repetitions; best and median are reported (default 5)\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GFLOP/s of a square n³ sgemm, best of `reps`, on `threads` OpenBLAS threads. */
static double sgemm_peak(int n, int threads, int reps)
{
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float));
    float *c = malloc(nn * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return NAN;
    }
    for (size_t i = 0; i < nn; ++i) {
        a[i] = (float)((i * 7) % 13) * 0.01f;
        b[i] = (float)((i * 5) % 11) * 0.01f;
    }
    openblas_set_num_threads(threads);
    double best = INFINITY;
    for (int r = 0; r <= reps; ++r) { /* r == 0 warms up */
        double t0 = rs_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        double t = rs_now() - t0;
        if (r > 0 && t < best)
            best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},          {"data", required_argument, 0, 'd'},
        {"model", required_argument, 0, 'm'},   {"threads", required_argument, 0, 't'},
        {"reps", required_argument, 0, 'r'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int json = 0, c;
    long threads = 0, reps = 5;
    const char *data = NULL, *model_path = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'd': data = optarg; break;
        case 'm': model_path = optarg; break;
        case 't':
            if (cli_parse_int("--threads", optarg, 1, 256, &threads) != 0)
                return CLI_USAGE;
            break;
        case 'r':
            if (cli_parse_int("--reps", optarg, 1, 1000, &reps) != 0)
                return CLI_USAGE;
            break;
        case 'h': usage(stdout); return CLI_OK;
        default:
            cli_error("bench: unknown or incomplete option \"%s\"", argv[optind - 1]);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (argc - optind > 1 || (model_path && argc - optind == 1)) {
        cli_error("bench: expected at most one model");
        return CLI_USAGE;
    }
    if (optind < argc)
        model_path = argv[optind];
    rs_model *m = cli_load_model(model_path);
    if (!m)
        return CLI_FAIL;
    rs_err e = {{0}};
    int fell_back = 0;
    cifar10_set *s = cifar10_load_split(data, "test", &fell_back, &e);
    if (!s) {
        cli_error("%s", e.msg);
        model_free(m);
        return CLI_FAIL;
    }
    if (fell_back)
        fprintf(stderr, "rankscope: no full CIFAR-10 set found; benchmarking on the shipped test "
                        "sample (%d images)\n", s->n);
    int nthreads = threads > 0 ? (int)threads : rs_default_threads();
    int64_t params, macs;
    model_totals(m, &params, &macs);
    int rc = CLI_FAIL;
    double *secs = calloc((size_t)reps, sizeof(double));
    float *xf = NULL, *logits = NULL;
    infer_ctx *ctx = NULL, *ctx1 = NULL;
    if (!secs) {
        cli_error("bench: out of memory");
        goto done;
    }

    /* 1. Evaluation with the fast engine (one context, like `rankscope eval`). */
    ctx = infer_create(m, nthreads, &e);
    if (!ctx) {
        cli_error("%s", e.msg);
        goto done;
    }
    eval_result er;
    if (eval_ctx(ctx, s, &er, NULL, NULL, &e) != 0) { /* warm-up: page faults, caches */
        cli_error("%s", e.msg);
        goto done;
    }
    double best = INFINITY;
    for (long r = 0; r < reps; ++r) {
        if (eval_ctx(ctx, s, &er, NULL, NULL, &e) != 0) {
            cli_error("%s", e.msg);
            goto done;
        }
        secs[r] = er.seconds;
        if (er.seconds < best)
            best = er.seconds;
    }
    double med = median(secs, (int)reps);
    double flop_per_image = 2.0 * (double)macs;
    double gflops = flop_per_image * s->n / best / 1e9;

    /* 2. sgemm peak on the same number of threads. */
    double peak = sgemm_peak(2048, nthreads, 3);

    /* 3. Naive single-thread forward on a slice (textbook loops are ~100x slower). */
    int n_naive = s->n < 200 ? s->n : 200;
    xf = malloc((size_t)n_naive * CIFAR10_PIXELS * sizeof(float));
    logits = malloc((size_t)(n_naive > 1 ? n_naive : 1) * infer_out_features(ctx) * sizeof(float));
    if (!xf || !logits) {
        cli_error("bench: out of memory");
        goto done;
    }
    cifar10_normalize(s, 0, n_naive, xf);
    double t0 = rs_now();
    if (infer_forward_naive(m, xf, n_naive, logits, &e) != 0) {
        cli_error("%s", e.msg);
        goto done;
    }
    double naive_s = rs_now() - t0;
    double naive_ips = n_naive / naive_s;

    /* 3b. The straightforward design for comparison: whole-batch im2col + OpenBLAS sgemm per
     * layer (infer_forward_blas), OpenBLAS threads = nthreads, batches of 1000, on the
     * first 2000 images (it is slow), reported as images/s. */
    enum { BLAS_BATCH = 1000 };
    float *xb = malloc((size_t)BLAS_BATCH * CIFAR10_PIXELS * sizeof(float));
    float *yb = malloc((size_t)BLAS_BATCH * infer_out_features(ctx) * sizeof(float));
    double blas_s = 0.0;
    if (!xb || !yb) {
        free(xb), free(yb);
        cli_error("bench: out of memory");
        goto done;
    }
    openblas_set_num_threads(nthreads);
    int n_blas = s->n < 2 * BLAS_BATCH ? s->n : 2 * BLAS_BATCH;
    for (int first = 0; first < n_blas; first += BLAS_BATCH) {
        int nb = n_blas - first < BLAS_BATCH ? n_blas - first : BLAS_BATCH;
        cifar10_normalize(s, first, nb, xb);
        double b0 = rs_now();
        int brc = infer_forward_blas(m, xb, nb, yb, &e);
        blas_s += rs_now() - b0;
        if (brc != 0) {
            free(xb), free(yb);
            cli_error("%s", e.msg);
            goto done;
        }
    }
    free(xb), free(yb);
    double blas_ips = n_blas / blas_s;

    /* 4. Single-image latency: batch 1 on one thread, median of many. */
    ctx1 = infer_create(m, 1, &e);
    if (!ctx1) {
        cli_error("%s", e.msg);
        goto done;
    }
    enum { LAT_RUNS = 501 };
    double lat[LAT_RUNS];
    for (int r = -20; r < LAT_RUNS; ++r) { /* 20 warm-up runs */
        double l0 = rs_now();
        infer_forward(ctx1, xf + (size_t)((r + 20) % n_naive) * CIFAR10_PIXELS, 1, logits, &e);
        if (r >= 0)
            lat[r] = rs_now() - l0;
    }
    double lat_med = median(lat, LAT_RUNS);

    /* 5. Hooks owned by other modules. */
    bench_env env = {m, s, data, nthreads};
    enum { NHOOKS = sizeof hooks / sizeof hooks[0] };
    double hook_val[NHOOKS];
    int hook_ok[NHOOKS];
    for (int h = 0; h < NHOOKS; ++h) {
        hook_ok[h] = 0;
        hook_val[h] = NAN;
        if (hooks[h].run) {
            rs_err he = {{0}};
            hook_ok[h] = hooks[h].run(&env, &hook_val[h], &he) == 0;
            if (!hook_ok[h])
                fprintf(stderr, "rankscope: bench %s: %s\n", hooks[h].key, he.msg);
        }
    }

    if (json) {
        printf("{\"images\": %d, \"full_test_set\": %s, \"threads\": %d, \"isa\": \"%s\", "
               "\"params\": %lld, \"macs\": %lld, \"reps\": %ld, "
               "\"eval_seconds\": %.6f, \"eval_seconds_median\": %.6f, "
               "\"eval_images_per_second\": %.1f, \"gflops\": %.3f, "
               "\"sgemm_peak_gflops\": %.3f, \"fraction_of_peak\": %.4f, "
               "\"naive_images_per_second\": %.1f, \"speedup_over_naive\": %.1f, "
               "\"im2col_sgemm_images_per_second\": %.1f, "
               "\"latency_batch1_ms\": %.4f, \"accuracy\": %.6f",
               s->n, fell_back ? "false" : "true", nthreads, infer_isa(ctx), (long long)params,
               (long long)macs, reps, best, med, s->n / best, gflops, peak, gflops / peak,
               naive_ips, (s->n / best) / naive_ips, blas_ips, 1e3 * lat_med, er.accuracy);
        for (int h = 0; h < NHOOKS; ++h) {
            printf(", \"%s\": ", hooks[h].key);
            if (hook_ok[h])
                printf("%.6g", hook_val[h]);
            else
                printf("null");
        }
        printf(", \"todo\": [");
        int first = 1;
        for (int h = 0; h < NHOOKS; ++h)
            if (!hooks[h].run) {
                printf("%s\"%s\"", first ? "" : ", ", hooks[h].key);
                first = 0;
            }
        printf("], \"source\": ");
        cli_json_string(stdout, s->source);
        printf("}\n");
    } else {
        char hm[16];
        printf("rankscope bench — %s, kernels %s, %d thread%s\n", s->source, infer_isa(ctx),
               nthreads, nthreads > 1 ? "s" : "");
        printf("model: %lld params, %s MACs/image (%.2f GFLOP per %d images)\n",
               (long long)params, cli_human(macs, hm, sizeof hm), flop_per_image * s->n / 1e9,
               s->n);
        printf("evaluation       %8.4f s best, %.4f s median of %ld  (%.0f images/s, "
               "accuracy %.2f %%)\n", best, med, reps, s->n / best, 100.0 * er.accuracy);
        printf("achieved         %8.1f GFLOP/s = %.1f %% of sgemm peak\n", gflops,
               100.0 * gflops / peak);
        printf("sgemm peak       %8.1f GFLOP/s  (OpenBLAS 2048^3, %d threads, this run)\n", peak,
               nthreads);
        printf("naive forward    %8.0f images/s (1 thread, textbook loops) -> fast path is "
               "%.0fx\n", naive_ips, (s->n / best) / naive_ips);
        printf("im2col+sgemm     %8.0f images/s (whole-batch im2col + OpenBLAS per layer, %d "
               "threads) -> fast path is %.0fx\n", blas_ips, nthreads, (s->n / best) / blas_ips);
        printf("latency          %8.3f ms per image (batch 1, 1 thread, median of %d)\n",
               1e3 * lat_med, LAT_RUNS);
        for (int h = 0; h < NHOOKS; ++h) {
            if (hook_ok[h])
                printf("%-16s %8.4g %s\n", hooks[h].label, hook_val[h], hooks[h].unit);
            else
                printf("%-16s        - %s (%s)\n", hooks[h].key,
                       hooks[h].run ? "failed" : "not measured yet", hooks[h].label);
        }
    }
    rc = CLI_OK;
done:
    infer_free(ctx);
    infer_free(ctx1);
    free(secs);
    free(xf);
    free(logits);
    cifar10_free(s);
    model_free(m);
    return rc;
}
