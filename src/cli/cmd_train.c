/* cmd_train.c — `rankscope train`: train the reference net (or a given model) on CIFAR-10. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/checkpoint.h"
#include "rankscope/guard.h"
#include "rankscope/cifar10.h"
#include "rankscope/onnx.h"
#include "rankscope/train.h"
#include "rankscope/zoo.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope train [MODEL.onnx | --arch NAME] -o OUT.onnx [--epochs N] [--seed S]\n"
            "                       [--batch B] [--lr L] [--wd D] [--schedule onecycle|cosine]\n"
            "                       [--warmup FRACTION] [--train-images N] [--eval-images N]"
            "\n"
            "                       [--no-augment] [--checkpoint FILE | --no-checkpoint]\n"
            "                       [--data DIR] [--threads T] [--json] [--force]\n"
            "       rankscope train --resume CHECKPOINT -o OUT.onnx [--data DIR] [--json] [--force]\n"
            "  Trains on the first 45,000 CIFAR-10 training images (or the first N; random crop with 4-pixel\n"
            "  padding + horizontal flip), SGD momentum 0.9, weight decay on weights (not biases,\n"
            "  not BatchNormalization), reporting validation accuracy (last 5,000 training\n"
            "  images) after each epoch and test accuracy at the end (--eval-images N: on the first\n"
            "  N images of each). Without MODEL or --arch the\n"
            "  reference net (conv1, conv2, fc1, fc2, fc3) is initialised from --seed like\n"
            "  PyTorch's defaults. --arch resnet20|vgg|mobilenet builds a zoo architecture.\n"
            "  BatchNormalization trains for real: batch statistics, running mean/variance\n"
            "  (momentum 0.1), learned scale and shift; OUT keeps it (evaluation folds it).\n"
            "  After every epoch a checkpoint (weights, statistics, optimizer and generator\n"
            "  state, options) is written atomically to --checkpoint (default OUT.ckpt, or the --resume file);\n"
            "  --resume continues from one bit-identically (options come from the checkpoint).\n"
            "  -o equal to MODEL is refused unless --force (the input is never overwritten).\n"
            "  Defaults: --epochs 30 --seed 1 --batch 128 --lr 0.05 --wd 5e-4 --schedule onecycle\n"
            "  --warmup 0.15 (the fraction of all steps spent warming up).\n"
            "  The shipped model was made with:\n"
            "    rankscope train --epochs 30 --seed 1 --threads 2 -o assets/lenet-cifar10.onnx\n"
            "  (bit-identical results need the same --seed, --threads and CPU vector ISA).\n");
}

typedef struct epoch_printer {
    int json;
    FILE *hist; /* JSON history lines (memstream) */
    int first;
    int images;     /* training images per epoch */
    int epochs_run; /* epochs run in this process */
    double seconds;
} epoch_printer;

static int print_epoch(void *user, const train_epoch_stats *s)
{
    epoch_printer *p = user;
    cli_progress_end();
    p->seconds += s->seconds + s->val_seconds;
    ++p->epochs_run;
    double eta = p->seconds / p->epochs_run * (s->epochs - s->epoch);
    fprintf(stderr, "epoch %3d/%d  loss %.4f  train %5.2f %%", s->epoch, s->epochs, s->train_loss,
            100.0 * s->train_acc);
    if (s->val_acc >= 0)
        fprintf(stderr, "  val %5.2f %%", 100.0 * s->val_acc);
    fprintf(stderr, "  lr %.4f  %.1f s  %.0f images/s  ETA %dh%02dm\n", s->lr, s->seconds,
            s->seconds > 0 ? p->images / s->seconds : 0.0, (int)(eta / 3600), (int)fmod(eta / 60, 60));
    if (p->hist) {
        fprintf(p->hist, "%s\n    {\"epoch\": %d, \"train_loss\": %.6f, \"train_accuracy\": %.6f, "
                         "\"val_accuracy\": %.6f, \"lr\": %.6g, \"seconds\": %.4f}",
                p->first ? "" : ",", s->epoch, s->train_loss, s->train_acc, s->val_acc, s->lr,
                s->seconds);
        p->first = 0;
    }
    return 0;
}

typedef struct ckpt_writer {
    const char *path;
    const train_options *o;
    char note[256];
} ckpt_writer;

static int write_checkpoint(void *user, const rs_model *m, const train_state *s, rs_err *e)
{
    ckpt_writer *w = user;
    return checkpoint_save(w->path, m, s, w->o, w->note, e);
}

static train_data data_of(const cifar10_set *s)
{
    train_data d = {.n = s->n, .c = CIFAR10_C, .h = CIFAR10_H, .w = CIFAR10_W, .u8 = s->pixels,
                    .labels = s->labels};
    return d;
}

typedef struct train_args {
    train_options o;
    long seed, threads, train_images, eval_images;
    const char *data, *out, *model, *arch, *ckpt, *resume;
    int json, force, no_ckpt, set_run; /* set_run: an option the checkpoint fixes was given */
} train_args;

enum { K_EPOCHS = 'e', K_SEED = 's', K_BATCH = 'b', K_LR = 'l', K_WD = 'w', K_SCHEDULE = 'S',
       K_NO_AUGMENT = 'A', K_WARMUP = 'W', K_ARCH = 'a', K_CKPT = 'c', K_NO_CKPT = 'C',
       K_RESUME = 'r', K_TRAIN_IMAGES = 'n', K_EVAL_IMAGES = 'E' };

static const cli_opt train_opts[] = {
    {"epochs", 1, K_EPOCHS, 0},           {"seed", 1, K_SEED, 0},
    {"batch", 1, K_BATCH, 0},             {"lr", 1, K_LR, 0},
    {"wd", 1, K_WD, 0},                   {"schedule", 1, K_SCHEDULE, 0},
    {"no-augment", 0, K_NO_AUGMENT, 0},   {"warmup", 1, K_WARMUP, 0},
    {"arch", 1, K_ARCH, 0},               {"checkpoint", 1, K_CKPT, 0},
    {"no-checkpoint", 0, K_NO_CKPT, 0},   {"resume", 1, K_RESUME, 0},
    {"train-images", 1, K_TRAIN_IMAGES, 0}, {"eval-images", 1, K_EVAL_IMAGES, 0},
    {0, 0, 0, 0},
};

static int train_option(void *cmd, int key, const char *arg)
{
    train_args *a = cmd;
    long v = 0;
    double d = 0;
    int bad = 0;
    a->set_run |= strchr("esblwSAW", key) != NULL; /* what a checkpoint fixes */
    switch (key) {
    case K_EPOCHS:
        bad = cli_parse_int("--epochs", arg, 1, 10000, &v);
        a->o.epochs = (int)v;
        break;
    case K_SEED:
        bad = cli_parse_int("--seed", arg, 0, 2147483647L, &a->seed);
        break;
    case K_BATCH:
        bad = cli_parse_int("--batch", arg, 1, 65536, &v);
        a->o.batch = (int)v;
        break;
    case K_LR:
        bad = cli_parse_double("--lr", arg, 1e-9, 100.0, &d);
        a->o.lr = (float)d;
        break;
    case K_WD:
        bad = cli_parse_double("--wd", arg, 0.0, 1.0, &d);
        a->o.weight_decay = (float)d;
        break;
    case K_WARMUP:
        bad = cli_parse_double("--warmup", arg, 0.0, 1.0, &d);
        a->o.warmup = (float)d;
        break;
    case K_TRAIN_IMAGES:
        bad = cli_parse_int("--train-images", arg, 1, 45000, &a->train_images);
        break;
    case K_EVAL_IMAGES:
        bad = cli_parse_int("--eval-images", arg, 1, 10000, &a->eval_images);
        break;
    case K_SCHEDULE:
        if (!strcmp(arg, "onecycle"))
            a->o.schedule = TRAIN_SCHED_ONECYCLE;
        else if (!strcmp(arg, "cosine"))
            a->o.schedule = TRAIN_SCHED_COSINE;
        else
            return cli_error("train: --schedule \"%s\" (expected onecycle or cosine)", arg), CLI_USAGE;
        break;
    case K_NO_AUGMENT: a->o.augment = 0; break;
    case K_ARCH: a->arch = arg; break;
    case K_CKPT: a->ckpt = arg; break;
    case K_NO_CKPT: a->no_ckpt = 1; break;
    case K_RESUME: a->resume = arg; break;
    }
    return bad ? CLI_USAGE : 0;
}

/* -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, train_args *a)
{
    static const cli_spec spec = {"train", CLI_A_DATA | CLI_A_THREADS | CLI_A_OUTPUT | CLI_A_FORCE |
                                               CLI_A_JSON,
                                  train_opts, train_option, usage, 1};
    cli_args ca;
    int rc = cli_parse(&spec, argc, argv, a, &ca);
    if (rc >= 0)
        return rc;
    a->data = ca.data, a->out = ca.out, a->model = ca.model;
    a->json = ca.json, a->force = ca.force, a->threads = ca.threads;
    a->o.seed = (uint64_t)a->seed, a->o.nthreads = ca.threads;
    if (!a->out)
        return cli_error("train: -o OUT.onnx is required"), usage(stderr), CLI_USAGE;
    if (a->model && a->arch)
        return cli_error("train: give a MODEL or --arch, not both"), CLI_USAGE;
    if (a->resume && (a->model || a->arch || a->set_run))
        return cli_error("train: --resume takes the model and the training options from the "
                         "checkpoint; give only -o, --data, --threads, --checkpoint, --train-images, --eval-images, --json"), CLI_USAGE;
    if (a->ckpt && a->no_ckpt)
        return cli_error("train: --checkpoint and --no-checkpoint contradict each other"), CLI_USAGE;
    return -1;
}

/* The model to train and, on --resume, the checkpoint it continues (c->model moves to *m). */
static rs_model *starting_model(train_args *a, checkpoint *c)
{
    rs_err e = {{0}};
    rs_model *m = NULL;
    if (a->resume) {
        if (checkpoint_load(a->resume, c, &e) != 0)
            return cli_error("train: %s", e.msg), NULL;
        int threads = a->o.nthreads;
        a->o = c->opts;
        if (threads && threads != c->opts.nthreads)
            fprintf(stderr, "note: --threads %d differs from the checkpoint's %d: the result will "
                    "not be bit-identical to an uninterrupted run\n", threads, c->opts.nthreads);
        if (threads)
            a->o.nthreads = threads;
        a->o.resume = &c->state;
        m = c->model;
        c->model = NULL;
        fprintf(stderr, "resuming %s after epoch %d of %d (%s)\n", a->resume, c->state.epoch,
                c->opts.epochs, c->note);
    } else if (a->arch) {
        if (!(m = zoo_build(a->arch, (uint64_t)a->seed, &e)))
            cli_error("train: %s", e.msg);
    } else if (a->model) {
        if (!(m = onnx_load_ex(a->model, ONNX_LOAD_KEEP_BATCHNORM, &e)))
            cli_error("%s", e.msg);
    } else if (!(m = train_reference_net((uint64_t)a->seed, &e))) {
        cli_error("%s", e.msg);
    }
    if (m && guard_model_finite(m, &e) != 0) { /* NaN in, NaN out: say so before an epoch runs */
        cli_error("%s: %s; refusing to train a model with non-finite weights",
                  a->resume ? a->resume : a->model ? a->model : "model", e.msg);
        model_free(m);
        m = NULL;
    }
    return m;
}

static void print_json(const train_args *a, const train_epoch_stats *last, double test_acc,
                       int test_n, double sec_per_epoch, const char *hist)
{
    printf("{\n  \"output\": ");
    cli_json_string(stdout, a->out);
    printf(",\n  \"epochs\": %d,\n  \"seed\": %llu,\n  \"batch\": %d,\n  \"lr\": %g,\n"
           "  \"train_loss\": %.6f,\n  \"train_accuracy\": %.6f,\n  \"val_accuracy\": %.6f,\n"
           "  \"test_accuracy\": %.6f,\n  \"test_images\": %d,\n"
           "  \"seconds_per_epoch\": %.4f,\n  \"history\": [%s\n  ]\n}\n",
           a->o.epochs, (unsigned long long)a->o.seed, a->o.batch, (double)a->o.lr, last->train_loss,
           last->train_acc, last->val_acc, test_acc, test_n, sec_per_epoch, hist ? hist : "");
}

int cmd_train(int argc, char **argv)
{
    train_args a = {.seed = 1};
    train_default_options(&a.o);
    int prc = parse_args(argc, argv, &a);
    if (prc >= 0)
        return prc;
    char ckpt_default[4096];
    snprintf(ckpt_default, sizeof ckpt_default, "%s.ckpt", a.out);
    /* a resumed run keeps writing the checkpoint it came from */
    const char *ckpt = a.no_ckpt ? NULL : a.ckpt ? a.ckpt : a.resume ? a.resume : ckpt_default;
    /* the checkpoint may continue in the file --resume read (that is what resuming means) */
    /* --force lets -o replace the input model, never the checkpoint being resumed */
    if (cli_check_output(a.out, a.model, a.force) != 0 ||
        cli_check_output_inputs("-o", a.out, &(cli_inputs){.reads_data = 1, .data = a.data,
                                                           .other_out = ckpt,
                                                           .other_opt = "--checkpoint",
                                                           .extra_in = a.resume,
                                                           .extra_opt = "--resume"}) != 0 ||
        (ckpt && ((a.model && cli_check_output(ckpt, a.model, 0) != 0) ||
                  cli_check_output_inputs("--checkpoint", ckpt,
                                          &(cli_inputs){.reads_data = 1, .data = a.data}) != 0)))
        return CLI_USAGE;
    checkpoint c = {0};
    rs_model *m = starting_model(&a, &c);
    if (!m)
        return checkpoint_free(&c), CLI_FAIL;
    rs_err e = {{0}};
    cifar10_set *tr = cifar10_load_split(a.data, "train", NULL, &e);
    cifar10_set *va = tr ? cifar10_load_split(a.data, "val", NULL, &e) : NULL;
    int fell_back = 0;
    cifar10_set *te = va ? cifar10_load_split(a.data, "test", &fell_back, &e) : NULL;
    if (!te) {
        cli_error("train: %s", e.msg);
        cifar10_free(tr), cifar10_free(va), model_free(m), checkpoint_free(&c);
        return CLI_FAIL;
    }
    train_data dtr = data_of(tr), dva = data_of(va), dte = data_of(te);
    if (a.train_images && a.train_images < dtr.n)
        dtr.n = (int)a.train_images;
    if (a.eval_images && a.eval_images < dva.n)
        dva.n = (int)a.eval_images;
    if (a.eval_images && a.eval_images < dte.n)
        dte.n = (int)a.eval_images;
    a.o.progress = cli_progress;
    epoch_printer pr = {.json = a.json, .first = 1, .images = dtr.n};
    char *hist = NULL;
    size_t hist_len = 0;
    if (a.json)
        pr.hist = open_memstream(&hist, &hist_len);
    a.o.on_epoch = print_epoch;
    a.o.epoch_user = &pr;
    ckpt_writer cw = {.path = ckpt, .o = &a.o};
    if (a.resume)
        snprintf(cw.note, sizeof cw.note, "%s", c.note);
    else
        snprintf(cw.note, sizeof cw.note, "%.200s, seed %llu, %d training images",
                 a.arch ? a.arch : a.model ? a.model : "reference net", (unsigned long long)a.o.seed,
                 dtr.n);
    if (ckpt) {
        a.o.on_checkpoint = write_checkpoint;
        a.o.checkpoint_user = &cw;
    }
    fprintf(stderr, "training on %d images (validation %d), %d epochs, batch %d, lr %g, seed %llu%s%s\n",
            dtr.n, va->n, a.o.epochs, a.o.batch, (double)a.o.lr, (unsigned long long)a.o.seed,
            ckpt ? ", checkpoint " : "", ckpt ? ckpt : "");
    train_epoch_stats last = {0};
    /* one set of threads for training, its validation and the test evaluation */
    int rc = (a.o.pool = pool_alloc(a.o.nthreads, &e)) ? 0 : -1;
    if (rc == 0)
        rc = train_model(m, &dtr, &dva, &a.o, &last, &e);
    cli_progress_end();
    if (pr.hist)
        fclose(pr.hist);
    double test_acc = -1;
    if (rc == 0 && train_evaluate_on(m, &dte, a.o.pool, &test_acc, NULL, &e) != 0)
        rc = -1;
    pool_free(a.o.pool);
    if (rc == 0 && onnx_save(m, a.out, &e) != 0)
        rc = -1;
    if (rc != 0) {
        cli_error("%s", e.msg);
    } else {
        double per = pr.epochs_run ? pr.seconds / pr.epochs_run : 0;
        fprintf(stderr, "test accuracy %.2f %% on %d images%s; %.2f s per epoch; saved %s\n",
                100.0 * test_acc, dte.n, fell_back ? " (shipped sample)" : "", per, a.out);
        if (a.json)
            print_json(&a, &last, test_acc, dte.n, per, hist);
    }
    free(hist);
    cifar10_free(tr), cifar10_free(va), cifar10_free(te);
    model_free(m);
    checkpoint_free(&c);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}
