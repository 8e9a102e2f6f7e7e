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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_ref.h"
#include "cli.h"
#include "rankscope/onnx.h"
#include "rankscope/cifar10.h"
#include "rankscope/decomp.h"
#include "rankscope/eval.h"
#include "rankscope/infer.h"
#include "rankscope/pipeline.h"
#include "rankscope/train.h"

/* OpenBLAS's thread control (declared by its cblas.h; repeated so other BLAS headers work). */
void openblas_set_num_threads(int num_threads);

/* The explorer's slider figures, measured once per run: three hooks report them. */
typedef struct bench_slider {
    int done, rc;
    double first_ms, full_ms;
    rs_err err;
} bench_slider;

/* What a hook gets: the loaded model and data, the thread count. */
typedef struct bench_env {
    const rs_model *model;
    const cifar10_set *test;
    const char *data_dir; /* --data or NULL */
    int threads;
    bench_slider *slider;
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
 * before), let go, to the first figure shown (an estimate on a subset when the net cannot be
 * cut into cached segments) and to the accuracy over the whole test set: medians of 7. One
 * measurement gives both figures, so it runs once and the hooks read it. */
static int slider(const bench_env *env, double *first, double *full, rs_err *e)
{
    bench_slider *c = env->slider;
    if (!c->done) {
        char name[128] = "conv2";
        if (model_find_layer(env->model, name) < 0) {
            for (int i = 0; i < env->model->n_nodes; ++i)
                if (model_is_weighted(env->model, i)) {
                    model_layer_name(env->model, i, name, sizeof name);
                    break;
                }
        }
        int est = 0;
        c->done = 1;
        c->rc = pipe_measure_slider(env->model, env->test, name, 7, &c->first_ms, &c->full_ms, &est, &c->err);
        c->first_ms *= 1000.0;
        c->full_ms *= 1000.0;
    }
    if (c->rc != 0) {
        *e = c->err;
        return -1;
    }
    *first = c->first_ms;
    *full = c->full_ms;
    return 0;
}

static int bench_slider_first(const bench_env *env, double *value, rs_err *e)
{
    double full;
    return slider(env, value, &full, e);
}

static int bench_slider_full(const bench_env *env, double *value, rs_err *e)
{
    double first;
    return slider(env, &first, value, e);
}

static const bench_hook hooks[] = {
    {"decompose_seconds", "decomposition of all layers and methods", "s", bench_decompose},
    {"slider_latency_ms", "explorer slider → refreshed accuracy", "ms", bench_slider_full},
    {"slider_first_ms", "explorer slider → first figure shown", "ms", bench_slider_first},
    {"slider_full_ms", "explorer slider → full test set", "ms", bench_slider_full},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope bench [MODEL.onnx | --model M] [--data DIR] [--json] [--threads N]\n"
            "                       [--reps N] [--no-reference] [--eval-only | --train-only]\n"
            "                       [--train-images N]\n"
            "  Test-set evaluation images/s and seconds (full 10,000 images when the data set is\n"
            "  found, else the shipped sample), GFLOP/s achieved against this machine's sgemm peak\n"
            "  (OpenBLAS 2048^3, same thread count, timed in this run), a naive single-thread\n"
            "  forward as a sanity ratio, and single-image latency (batch 1, 1 thread).\n"
            "  Training: one epoch (batch 128, augmented, learning rate 0.01 as PyTorch's) over the first\n"
            "  10,240 training images (--train-images), BatchNormalization kept and trained, images/s.\n"
            "  A figure that cannot be measured is reported as failed with the reason (text, stderr and\n"
            "  the JSON's \"failures\"); the others are still measured, and the exit status is then 1.\n"
            "  References, measured in the same run on the same network, images and thread count, with\n"
            "  the ratio: ONNX Runtime's evaluation (node tests/bench_ort.js, onnxruntime-node from\n"
            "  tests/node_modules) and PyTorch's training (/usr/bin/python3 tools/bench_torch_train.py),\n"
            "  both found in the source tree ($RANKSCOPE_SOURCE, else the one this binary was built\n"
            "  from; $RANKSCOPE_NODE and $RANKSCOPE_PYTHON name the interpreters). A missing tool gives\n"
            "  a note and null figures, not a failure.\n"
            "  --reps N        evaluation repetitions; best and median are reported (default 5)\n"
            "  --no-reference  skip ONNX Runtime and PyTorch\n"
            "  --eval-only     evaluation, ONNX Runtime and latency only: no training, PyTorch,\n"
            "                  decomposition or explorer figures (those are null in the JSON)\n"
            "  --train-only    training and PyTorch's training only (the other figures are null)\n"
            "  --train-images N  images in the training epoch (default 10240; PyTorch trains the same)\n");
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

typedef struct bench_cmd {
    const char *model;
    long reps;
    int no_reference, eval_only, train_only;
    long train_images;
} bench_cmd;

static int bench_option(void *cmd, int key, const char *arg)
{
    bench_cmd *b = cmd;
    if (key == 'm') {
        b->model = arg;
        return 0;
    }
    if (key == 'n') {
        b->no_reference = 1;
        return 0;
    }
    if (key == 'e') {
        b->eval_only = 1;
        return 0;
    }
    if (key == 't') {
        b->train_only = 1;
        return 0;
    }
    if (key == 'i')
        return cli_parse_int("--train-images", arg, 1, 1000000, &b->train_images) ? CLI_USAGE : 0;
    return cli_parse_int("--reps", arg, 1, 1000, &b->reps) ? CLI_USAGE : 0;
}

enum { LAT_RUNS = 501, BLAS_BATCH = 1000 };
/* rankscope's own figures, each measured (or failing) on its own */
#define FIG_EVAL "evaluation"
#define FIG_NAIVE "naive forward and latency"
#define FIG_BLAS "im2col+sgemm"
#define FIG_TRAIN "training"
enum { BENCH_FIGURES = 4 };
#define NHOOKS (sizeof hooks / sizeof hooks[0])

/* Everything one bench run measures. */
typedef struct bench_figures {
    int nthreads, fell_back;
    long reps;
    int64_t params, macs;
    const char *isa;
    double best, med, gflops, flop_per_image, peak, accuracy;
    double naive_ips, blas_ips, lat_med, train_ips, train_cpu; /* train_cpu: CPU s of the epoch */
    int train_images; /* asked for (--train-images), then trained on */
    int references; /* run ONNX Runtime and PyTorch too */
    int eval_only;  /* skip training and the hooks */
    int train_only; /* training and PyTorch's only */
    bench_ref ort, torch;
    double hook_val[NHOOKS];
    int hook_ok[NHOOKS];
    /* rankscope's own figures that could not be measured, and why (the others still are) */
    struct {
        const char *figure;
        char why[RS_ERR_LEN];
    } fail[BENCH_FIGURES];
    int n_fail;
} bench_figures;

/* Records that figure failed (its values stay NaN) and says so on stderr. */
static void bench_failed(bench_figures *b, const char *figure, const rs_err *e)
{
    if (b->n_fail < BENCH_FIGURES) {
        b->fail[b->n_fail].figure = figure;
        snprintf(b->fail[b->n_fail].why, sizeof b->fail[b->n_fail].why, "%s", e->msg);
        ++b->n_fail;
    }
    fprintf(stderr, "rankscope: bench: %s failed: %s\n", figure, e->msg);
}

/* Why figure failed, or NULL. */
static const char *bench_why(const bench_figures *b, const char *figure)
{
    for (int i = 0; i < b->n_fail; ++i)
        if (!strcmp(b->fail[i].figure, figure))
            return b->fail[i].why;
    return NULL;
}

/* Training: one epoch of SGD with augmentation (random crop + flip, batch 128) on the model as
 * `rankscope train` loads it (BatchNormalization kept and trained), over the first
 * TRAIN_BENCH_IMAGES images of the training split (the test set when no full data set is found);
 * images/s of the epoch itself, as train_model times it. PyTorch trains the same graph on the same
 * images first, when references are on. */
enum { TRAIN_BENCH_IMAGES = 10240, TRAIN_BENCH_BATCH = 128 };
#define BENCH_TRAIN_LR 0.001f

static int bench_train(const char *path, const cifar10_set *test, const char *data_dir, bench_figures *b,
                       rs_err *e)
{
    int fell_back = 0;
    rs_err le;
    cifar10_set *s = cifar10_load_split(data_dir, "train", &fell_back, &le);
    const cifar10_set *src = s ? s : test;
    rs_model *m = onnx_load_ex(path, ONNX_LOAD_KEEP_BATCHNORM, e);
    if (!m) {
        if (b->references)
            bench_ref_skip(&b->torch, "not measured (the network could not be loaded for training)");
        cifar10_free(s);
        return -1;
    }
    train_data d = {0};
    d.n = src->n < b->train_images ? src->n : b->train_images;
    d.c = CIFAR10_C, d.h = CIFAR10_H, d.w = CIFAR10_W;
    d.u8 = src->pixels;
    d.labels = src->labels;
    if (b->references)
        bench_ref_torch(m, src, d.n, b->nthreads, &b->torch);
    train_options o;
    train_default_options(&o);
    o.epochs = 1;
    o.batch = TRAIN_BENCH_BATCH;
    /* PyTorch's side (tools/bench_torch_train.py) trains at 0.001 too; the speed does not depend
     * on it, but a net without BatchNormalization diverges at the default 0.05, and the zoo's
     * resnet20-lowrank (Tucker-2 chains, BN folded) on both sides at 0.01 */
    o.lr = BENCH_TRAIN_LR;
    o.nthreads = b->nthreads;
    train_epoch_stats st;
    int rc = train_model(m, &d, NULL, &o, &st, e);
    if (rc == 0) {
        b->train_ips = st.seconds > 0 ? d.n / st.seconds : 0;
        b->train_cpu = st.cpu_seconds;
    }
    b->train_images = d.n;
    model_free(m);
    cifar10_free(s);
    return rc;
}

/* 1. Evaluation with the fast engine (one context, like `rankscope eval`), best and median of
 * reps after a warm-up (page faults, caches). */
static int bench_eval(infer_ctx *ctx, const cifar10_set *s, bench_figures *b, rs_err *e)
{
    double *secs = calloc((size_t)b->reps, sizeof(double));
    if (!secs)
        return rs_fail(e, "bench: out of memory");
    eval_result er;
    int rc = eval_ctx(ctx, s, &er, NULL, NULL, e);
    b->best = INFINITY;
    for (long r = 0; rc == 0 && r < b->reps; ++r) {
        rc = eval_ctx(ctx, s, &er, NULL, NULL, e);
        secs[r] = er.seconds;
        if (rc == 0 && er.seconds < b->best)
            b->best = er.seconds;
    }
    if (rc != 0)
        b->best = NAN;
    if (rc == 0) {
        b->med = median(secs, (int)b->reps);
        b->flop_per_image = 2.0 * (double)b->macs;
        b->gflops = b->flop_per_image * s->n / b->best / 1e9;
        b->accuracy = er.accuracy;
    }
    free(secs);
    return rc;
}

/* 3b. The straightforward design for comparison: whole-batch im2col + OpenBLAS sgemm per layer
 * (infer_forward_blas), OpenBLAS threads = nthreads, batches of 1000, on the first 2000 images
 * (it is slow), reported as images/s. */
static int bench_blas(const rs_model *m, const cifar10_set *s, int out_features, bench_figures *b, rs_err *e)
{
    float *xb = malloc((size_t)BLAS_BATCH * CIFAR10_PIXELS * sizeof(float));
    float *yb = malloc((size_t)BLAS_BATCH * out_features * sizeof(float));
    double blas_s = 0.0;
    int rc = !xb || !yb ? rs_fail(e, "bench: out of memory") : 0;
    openblas_set_num_threads(b->nthreads);
    int n_blas = s->n < 2 * BLAS_BATCH ? s->n : 2 * BLAS_BATCH;
    for (int first = 0; rc == 0 && first < n_blas; first += BLAS_BATCH) {
        int nb = n_blas - first < BLAS_BATCH ? n_blas - first : BLAS_BATCH;
        cifar10_normalize(s, first, nb, xb);
        double b0 = rs_now();
        rc = infer_forward_blas(m, xb, nb, yb, e);
        blas_s += rs_now() - b0;
    }
    free(xb), free(yb);
    if (rc == 0)
        b->blas_ips = n_blas / blas_s;
    return rc;
}

/* 3. Naive single-thread forward on a slice (textbook loops are ~100x slower), then 4. the
 * single-image latency: batch 1 on one thread, median of many. */
static int bench_naive_and_latency(const rs_model *m, const cifar10_set *s, int out_features, bench_figures *b,
                                   rs_err *e)
{
    int n_naive = s->n < 200 ? s->n : 200;
    float *xf = malloc((size_t)n_naive * CIFAR10_PIXELS * sizeof(float));
    float *logits = malloc((size_t)(n_naive > 1 ? n_naive : 1) * out_features * sizeof(float));
    infer_ctx *ctx1 = NULL;
    int rc = !xf || !logits ? rs_fail(e, "bench: out of memory") : 0;
    if (rc == 0) {
        cifar10_normalize(s, 0, n_naive, xf);
        double t0 = rs_now();
        rc = infer_forward_naive(m, xf, n_naive, logits, e);
        if (rc == 0)
            b->naive_ips = n_naive / (rs_now() - t0);
    }
    if (rc == 0 && !(ctx1 = infer_create(m, 1, e)))
        rc = -1;
    if (rc == 0) {
        double lat[LAT_RUNS];
        for (int r = -20; rc == 0 && r < LAT_RUNS; ++r) { /* 20 warm-up runs */
            double l0 = rs_now();
            rc = infer_forward(ctx1, xf + (size_t)((r + 20) % n_naive) * CIFAR10_PIXELS, 1, logits, e);
            if (r >= 0)
                lat[r] = rs_now() - l0;
        }
        if (rc == 0)
            b->lat_med = median(lat, LAT_RUNS);
    }
    infer_free(ctx1);
    free(xf);
    free(logits);
    return rc;
}

/* 5. Hooks owned by other modules. */
static void bench_hooks(const rs_model *m, const cifar10_set *s, const char *data, bench_figures *b)
{
    bench_slider sl = {0};
    bench_env env = {m, s, data, b->nthreads, &sl};
    for (size_t h = 0; h < NHOOKS; ++h) {
        b->hook_ok[h] = 0;
        b->hook_val[h] = NAN;
        if (hooks[h].run) {
            rs_err he = {{0}};
            b->hook_ok[h] = hooks[h].run(&env, &b->hook_val[h], &he) == 0;
            if (!b->hook_ok[h])
                fprintf(stderr, "rankscope: bench %s: %s\n", hooks[h].key, he.msg);
        }
    }
}

/* , "key": value (null when not finite) */
static void json_num(const char *key, double v)
{
    if (isfinite(v))
        printf(", \"%s\": %.6g", key, v);
    else
        printf(", \"%s\": null", key);
}

static void json_str(const char *key, const char *v)
{
    printf(", \"%s\": ", key);
    if (v && *v)
        cli_json_string(stdout, v);
    else
        printf("null");
}

/* ONNX Runtime and PyTorch beside ours; ratios > 1 mean rankscope is faster. */
static void print_json_refs(const bench_figures *b)
{
    json_num("ort_eval_seconds", b->ort.seconds);
    json_num("ort_eval_seconds_median", b->ort.seconds_median);
    json_num("ort_accuracy", b->ort.accuracy);
    json_num("eval_speedup_over_ort", b->ort.seconds / b->best);
    json_str("ort_runtime", b->ort.runtime);
    json_str("ort_note", b->ort.note);
    json_num("train_images_per_second", b->train_ips);
    json_num("train_images", isfinite(b->train_ips) ? b->train_images : NAN);
    json_num("train_batch", isfinite(b->train_ips) ? TRAIN_BENCH_BATCH : NAN);
    json_num("train_cpu_ms_per_image", 1e3 * b->train_cpu / b->train_images);
    json_num("torch_train_cpu_ms_per_image", 1e3 * b->torch.cpu_seconds / b->train_images);
    json_num("train_cpu_speedup_over_torch", b->torch.cpu_seconds / b->train_cpu);
    json_num("torch_train_images_per_second", b->torch.images_per_second);
    json_num("train_speedup_over_torch", b->train_ips / b->torch.images_per_second);
    json_str("torch_runtime", b->torch.runtime);
    json_str("torch_note", b->torch.note);
}

static void print_json(const bench_figures *b, const cifar10_set *s)
{
    printf("{\"images\": %d, \"full_test_set\": %s, \"threads\": %d, \"isa\": \"%s\", "
           "\"params\": %lld, \"macs\": %lld, \"reps\": %ld",
           s->n, b->fell_back ? "false" : "true", b->nthreads, b->isa, (long long)b->params, (long long)b->macs,
           b->reps);
    json_num("eval_seconds", b->best);
    json_num("eval_seconds_median", b->med);
    json_num("eval_images_per_second", s->n / b->best);
    json_num("gflops", b->gflops);
    json_num("sgemm_peak_gflops", b->peak);
    json_num("fraction_of_peak", b->gflops / b->peak);
    json_num("naive_images_per_second", b->naive_ips);
    json_num("speedup_over_naive", (s->n / b->best) / b->naive_ips);
    json_num("im2col_sgemm_images_per_second", b->blas_ips);
    json_num("latency_batch1_ms", 1e3 * b->lat_med);
    json_num("accuracy", b->accuracy);
    print_json_refs(b);
    for (size_t h = 0; h < NHOOKS; ++h) {
        printf(", \"%s\": ", hooks[h].key);
        if (b->hook_ok[h])
            printf("%.6g", b->hook_val[h]);
        else
            printf("null");
    }
    printf(", \"todo\": [");
    int first = 1;
    for (size_t h = 0; h < NHOOKS; ++h)
        if (!hooks[h].run) {
            printf("%s\"%s\"", first ? "" : ", ", hooks[h].key);
            first = 0;
        }
    printf("], \"failures\": {");
    for (int i = 0; i < b->n_fail; ++i) {
        printf("%s\"%s\": ", i ? ", " : "", b->fail[i].figure);
        cli_json_string(stdout, b->fail[i].why);
    }
    printf("}, \"source\": ");
    cli_json_string(stdout, s->source);
    printf("}\n");
}

/* "label   - failed: why" for a figure that failed; 1 when it did. */
static int text_failed(const bench_figures *b, const char *label, const char *figure)
{
    const char *why = bench_why(b, figure);
    if (why)
        printf("%-16s        - failed: %s\n", label, why);
    return why != NULL;
}

static void print_text_train(const bench_figures *b)
{
    if (isfinite(b->train_ips))
        printf("training         %8.0f images/s (1 epoch of %d images, augmented, batch %d, %d threads), "
               "%.3f ms CPU per image\n", b->train_ips, b->train_images, TRAIN_BENCH_BATCH, b->nthreads,
               1e3 * b->train_cpu / b->train_images);
    else if (!text_failed(b, "training", FIG_TRAIN))
        printf("training                - not measured (--eval-only)\n");
    if (isfinite(b->torch.images_per_second) && isfinite(b->train_ips)) {
        printf("PyTorch training %8.0f images/s (%s, same graph, images, batch and threads) -> rankscope is %.2fx\n",
               b->torch.images_per_second, b->torch.runtime, b->train_ips / b->torch.images_per_second);
        /* wall time shares the machine with whatever else runs; CPU time per image much less so */
        if (isfinite(b->torch.cpu_seconds) && b->train_cpu > 0)
            printf("                 %8.3f ms CPU per image -> rankscope is %.2fx by CPU time\n",
                   1e3 * b->torch.cpu_seconds / b->train_images, b->torch.cpu_seconds / b->train_cpu);
    } else if (isfinite(b->torch.images_per_second))
        printf("PyTorch training %8.0f images/s (%s, same graph, images, batch and threads)\n",
               b->torch.images_per_second, b->torch.runtime);
    else
        printf("PyTorch training        - %s\n", b->torch.note);
}

static void print_text_refs(const bench_figures *b)
{
    if (isfinite(b->ort.seconds) && isfinite(b->best))
        printf("ONNX Runtime     %8.4f s best, %.4f s median  (%s, %d threads, accuracy %.2f %%) -> rankscope "
               "is %.2fx %s\n", b->ort.seconds, b->ort.seconds_median, b->ort.runtime, b->nthreads,
               100.0 * b->ort.accuracy, b->ort.seconds / b->best >= 1 ? b->ort.seconds / b->best : b->best / b->ort.seconds,
               b->ort.seconds / b->best >= 1 ? "faster" : "SLOWER");
    else if (isfinite(b->ort.seconds))
        printf("ONNX Runtime     %8.4f s best, %.4f s median  (%s, %d threads, accuracy %.2f %%)\n", b->ort.seconds,
               b->ort.seconds_median, b->ort.runtime, b->nthreads, 100.0 * b->ort.accuracy);
    else
        printf("ONNX Runtime            - %s\n", b->ort.note);
    print_text_train(b);
}

static void print_text(const bench_figures *b, const cifar10_set *s)
{
    char hm[16];
    printf("rankscope bench — %s, kernels %s, %d thread%s\n", s->source, b->isa, b->nthreads,
           b->nthreads > 1 ? "s" : "");
    printf("model: %lld params, %s MACs/image (%.2f GFLOP per %d images)\n", (long long)b->params,
           cli_human(b->macs, hm, sizeof hm), 2.0 * (double)b->macs * s->n / 1e9, s->n);
    if (b->train_only) {
        print_text_train(b);
        return;
    }
    if (!text_failed(b, "evaluation", FIG_EVAL)) {
        printf("evaluation       %8.4f s best, %.4f s median of %ld  (%.0f images/s, "
               "accuracy %.2f %%)\n", b->best, b->med, b->reps, s->n / b->best, 100.0 * b->accuracy);
        printf("achieved         %8.1f GFLOP/s = %.1f %% of sgemm peak\n", b->gflops, 100.0 * b->gflops / b->peak);
    }
    printf("sgemm peak       %8.1f GFLOP/s  (OpenBLAS 2048^3, %d threads, this run)\n", b->peak, b->nthreads);
    if (!text_failed(b, "naive forward", FIG_NAIVE)) {
        if (isfinite(b->best))
            printf("naive forward    %8.0f images/s (1 thread, textbook loops) -> fast path is "
                   "%.0fx\n", b->naive_ips, (s->n / b->best) / b->naive_ips);
        else
            printf("naive forward    %8.0f images/s (1 thread, textbook loops)\n", b->naive_ips);
    }
    if (!text_failed(b, "im2col+sgemm", FIG_BLAS)) {
        if (isfinite(b->best))
            printf("im2col+sgemm     %8.0f images/s (whole-batch im2col + OpenBLAS per layer, %d "
                   "threads) -> fast path is %.0fx\n", b->blas_ips, b->nthreads, (s->n / b->best) / b->blas_ips);
        else
            printf("im2col+sgemm     %8.0f images/s (whole-batch im2col + OpenBLAS per layer, %d threads)\n",
                   b->blas_ips, b->nthreads);
    }
    if (isfinite(b->lat_med))
        printf("latency          %8.3f ms per image (batch 1, 1 thread, median of %d)\n", 1e3 * b->lat_med, LAT_RUNS);
    print_text_refs(b);
    for (size_t h = 0; h < NHOOKS; ++h) {
        if (b->hook_ok[h])
            printf("%-16s %8.4g %s\n", hooks[h].label, b->hook_val[h], hooks[h].unit);
        else
            printf("%-16s        - %s (%s)\n", hooks[h].key,
                   b->eval_only ? "not measured (--eval-only)" : hooks[h].run ? "failed" : "not measured yet",
                   hooks[h].label);
    }
}

/* Every figure is measured on its own: one that fails is recorded (bench_failed) and the rest
 * still run. Returns the number of rankscope's figures that failed. */
static int run_bench(const rs_model *m, const char *path, const cifar10_set *s, const char *data, bench_figures *b)
{
    rs_err e = {{0}}, ce = {{0}};
    b->best = b->med = b->gflops = b->accuracy = b->flop_per_image = NAN;
    b->naive_ips = b->blas_ips = b->lat_med = b->train_ips = b->train_cpu = NAN;
    b->isa = "-";
    b->peak = NAN;
    if (b->train_only) {
        if (bench_train(path, s, data, b, &e)) {
            b->train_ips = NAN;
            bench_failed(b, FIG_TRAIN, &e);
        }
        return b->n_fail;
    }
    infer_ctx *ctx = infer_create(m, b->nthreads, &ce);
    int out_features = 0; /* 0: no engine (ce says why), so no figure that runs the model */
    if (ctx) {
        out_features = infer_out_features(ctx);
        b->isa = infer_isa(ctx);
        if (bench_eval(ctx, s, b, &e))
            bench_failed(b, FIG_EVAL, &e);
        infer_free(ctx);
    } else {
        bench_failed(b, FIG_EVAL, &ce);
    }
    if (b->references)
        bench_ref_ort(path, s, b->nthreads, (int)b->reps, &b->ort);
    b->peak = sgemm_peak(2048, b->nthreads, 3); /* 2. sgemm peak on as many threads */
    if (!out_features || bench_naive_and_latency(m, s, out_features, b, &e))
        bench_failed(b, FIG_NAIVE, out_features ? &e : &ce);
    if (!out_features || bench_blas(m, s, out_features, b, &e))
        bench_failed(b, FIG_BLAS, out_features ? &e : &ce);
    if (!b->eval_only) {
        if (bench_train(path, s, data, b, &e)) {
            b->train_ips = NAN;
            bench_failed(b, FIG_TRAIN, &e);
        }
        bench_hooks(m, s, data, b);
    }
    return b->n_fail;
}

int cmd_bench(int argc, char **argv)
{
    static const cli_opt opts[] = {{"model", 1, 'm', 0}, {"reps", 1, 'r', 0}, {"no-reference", 0, 'n', 0},
                                   {"eval-only", 0, 'e', 0}, {"train-only", 0, 't', 0},
                                   {"train-images", 1, 'i', 0}, {0, 0, 0, 0}};
    static const cli_spec spec = {"bench", CLI_A_JSON | CLI_A_DATA | CLI_A_THREADS, opts, bench_option, usage, -1};
    bench_cmd bc = {NULL, 5, 0, 0, 0, TRAIN_BENCH_IMAGES};
    cli_args a;
    int prc = cli_parse(&spec, argc, argv, &bc, &a);
    if (prc >= 0)
        return prc;
    if (bc.eval_only && bc.train_only) {
        cli_error("bench: --eval-only and --train-only exclude each other");
        return CLI_USAGE;
    }
    if (a.n_rest > 1 || (bc.model && a.n_rest == 1)) {
        cli_error("bench: expected at most one model");
        return CLI_USAGE;
    }
    rs_model *m = cli_load_model(a.model ? a.model : bc.model);
    if (!m)
        return CLI_FAIL;
    rs_err e = {{0}};
    bench_figures *b = calloc(1, sizeof *b);
    cifar10_set *s = b ? cifar10_load_split(a.data, "test", &b->fell_back, &e) : NULL;
    if (!s) {
        cli_error("%s", b ? e.msg : "bench: out of memory");
        free(b);
        model_free(m);
        return CLI_FAIL;
    }
    if (b->fell_back)
        fprintf(stderr, "rankscope: no full CIFAR-10 set found; benchmarking on the shipped test "
                        "sample (%d images)\n", s->n);
    b->nthreads = a.threads > 0 ? a.threads : rs_default_threads();
    b->reps = bc.reps;
    b->references = !bc.no_reference;
    b->eval_only = bc.eval_only;
    b->train_only = bc.train_only;
    b->train_images = (int)bc.train_images;
    bench_ref_skip(&b->ort, b->train_only ? "not measured (--train-only)" : "not measured (--no-reference)");
    bench_ref_skip(&b->torch, b->eval_only ? "not measured (--eval-only)" : "not measured (--no-reference)");
    if (b->eval_only)
        b->train_ips = NAN;
    model_totals(m, &b->params, &b->macs);
    const char *path = a.model ? a.model : bc.model ? bc.model : cli_default_model();
    int rc = run_bench(m, path, s, a.data, b);
    if (a.json)
        print_json(b, s);
    else
        print_text(b, s);
    free(b);
    cifar10_free(s);
    model_free(m);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}
