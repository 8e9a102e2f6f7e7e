/* cmd_train.c — `rankscope train`: train the reference net (or a given model) on CIFAR-10. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/cifar10.h"
#include "rankscope/onnx.h"
#include "rankscope/train.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope train [MODEL.onnx] -o OUT.onnx [--epochs N] [--seed S] [--batch B]\n"
            "                       [--lr L] [--schedule onecycle|cosine] [--no-augment]\n"
            "                       [--data DIR] [--threads T] [--json] [--force]\n"
            "  Trains on the first 45,000 CIFAR-10 training images (random crop with 4-pixel\n"
            "  padding + horizontal flip), SGD momentum 0.9, weight decay 5e-4 on weights,\n"
            "  reporting validation accuracy (last 5,000 training images) after each epoch and\n"
            "  test accuracy at the end. Without MODEL the reference net (conv1, conv2, fc1, fc2,\n"
            "  fc3) is initialised from --seed like PyTorch's defaults.\n"
            "  -o equal to MODEL is refused unless --force (the input is never overwritten).\n"
            "  Defaults: --epochs 30 --seed 1 --batch 128 --lr 0.05 --schedule onecycle.\n"
            "  The shipped model was made with:\n"
            "    rankscope train --epochs 30 --seed 1 --threads 2 -o assets/lenet-cifar10.onnx\n"
            "  (bit-identical results need the same --seed, --threads and CPU vector ISA).\n");
}

typedef struct epoch_printer {
    int json;
    FILE *hist; /* JSON history lines (memstream) */
    int first;
    double seconds;
} epoch_printer;

static int print_epoch(void *user, const train_epoch_stats *s)
{
    epoch_printer *p = user;
    cli_progress_end();
    fprintf(stderr, "epoch %2d/%d  loss %.4f  train %5.2f %%", s->epoch, s->epochs, s->train_loss,
            100.0 * s->train_acc);
    if (s->val_acc >= 0)
        fprintf(stderr, "  val %5.2f %%", 100.0 * s->val_acc);
    fprintf(stderr, "  lr %.4f  %.2f s\n", s->lr, s->seconds);
    p->seconds += s->seconds;
    if (p->hist) {
        fprintf(p->hist, "%s\n    {\"epoch\": %d, \"train_loss\": %.6f, \"train_accuracy\": %.6f, "
                         "\"val_accuracy\": %.6f, \"lr\": %.6g, \"seconds\": %.4f}",
                p->first ? "" : ",", s->epoch, s->train_loss, s->train_acc, s->val_acc, s->lr,
                s->seconds);
        p->first = 0;
    }
    return 0;
}

static train_data data_of(const cifar10_set *s)
{
    train_data d = {.n = s->n, .c = CIFAR10_C, .h = CIFAR10_H, .w = CIFAR10_W, .u8 = s->pixels,
                    .labels = s->labels};
    return d;
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"epochs", required_argument, 0, 'e'}, {"seed", required_argument, 0, 's'},
        {"batch", required_argument, 0, 'b'},  {"lr", required_argument, 0, 'l'},
        {"data", required_argument, 0, 'd'},   {"threads", required_argument, 0, 't'},
        {"output", required_argument, 0, 'o'}, {"json", no_argument, 0, 'j'},
        {"schedule", required_argument, 0, 'S'}, {"no-augment", no_argument, 0, 'A'},
        {"force", no_argument, 0, 'f'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    train_options o;
    train_default_options(&o);
    long epochs = o.epochs, seed = 1, batch = o.batch, threads = 0;
    double lr = o.lr;
    const char *data = NULL, *out = NULL;
    int json = 0, force = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (cli_parse_int("--epochs", optarg, 1, 10000, &epochs))
                return CLI_USAGE;
            break;
        case 's':
            if (cli_parse_int("--seed", optarg, 0, 2147483647L, &seed))
                return CLI_USAGE;
            break;
        case 'b':
            if (cli_parse_int("--batch", optarg, 1, 65536, &batch))
                return CLI_USAGE;
            break;
        case 't':
            if (cli_parse_int("--threads", optarg, 1, 256, &threads))
                return CLI_USAGE;
            break;
        case 'l':
            if (cli_parse_double("--lr", optarg, 1e-9, 100.0, &lr))
                return CLI_USAGE;
            break;
        case 'S':
            if (!strcmp(optarg, "onecycle"))
                o.schedule = TRAIN_SCHED_ONECYCLE;
            else if (!strcmp(optarg, "cosine"))
                o.schedule = TRAIN_SCHED_COSINE;
            else {
                cli_error("train: --schedule \"%s\" (expected onecycle or cosine)", optarg);
                return CLI_USAGE;
            }
            break;
        case 'A': o.augment = 0; break;
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case 'f': force = 1; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return CLI_OK;
        default:
            cli_error("train: unknown or incomplete option \"%s\"", argv[optind - 1]);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!out) {
        cli_error("train: -o OUT.onnx is required");
        usage(stderr);
        return CLI_USAGE;
    }
    if (argc - optind > 1) {
        cli_error("train: expected at most one model, got %d arguments", argc - optind);
        return CLI_USAGE;
    }
    if (cli_check_output(out, optind < argc ? argv[optind] : NULL, force) != 0)
        return CLI_USAGE;
    rs_err e = {{0}};
    rs_model *m = NULL;
    if (optind < argc)
        m = cli_load_model(argv[optind]);
    else if (!(m = train_reference_net((uint64_t)seed, &e)))
        cli_error("%s", e.msg);
    if (!m)
        return CLI_FAIL;
    cifar10_set *tr = cifar10_load_split(data, "train", NULL, &e);
    cifar10_set *va = tr ? cifar10_load_split(data, "val", NULL, &e) : NULL;
    int fell_back = 0;
    cifar10_set *te = va ? cifar10_load_split(data, "test", &fell_back, &e) : NULL;
    if (!te) {
        cli_error("train: %s", e.msg);
        cifar10_free(tr), cifar10_free(va), model_free(m);
        return CLI_FAIL;
    }
    train_data dtr = data_of(tr), dva = data_of(va), dte = data_of(te);
    o.epochs = (int)epochs;
    o.seed = (uint64_t)seed;
    o.batch = (int)batch;
    o.lr = (float)lr;
    o.nthreads = (int)threads;
    o.progress = cli_progress;
    epoch_printer pr = {.json = json, .first = 1};
    char *hist = NULL;
    size_t hist_len = 0;
    if (json)
        pr.hist = open_memstream(&hist, &hist_len);
    o.on_epoch = print_epoch;
    o.epoch_user = &pr;
    fprintf(stderr, "training on %d images (validation %d), %d epochs, batch %d, lr %g, seed %ld\n",
            tr->n, va->n, o.epochs, o.batch, (double)o.lr, seed);
    train_epoch_stats last = {0};
    int rc = train_model(m, &dtr, &dva, &o, &last, &e);
    cli_progress_end();
    if (pr.hist)
        fclose(pr.hist);
    double test_acc = -1;
    if (rc == 0 && train_evaluate(m, &dte, (int)threads, &test_acc, NULL, &e) != 0)
        rc = -1;
    if (rc == 0 && onnx_save(m, out, &e) != 0)
        rc = -1;
    if (rc != 0) {
        cli_error("%s", e.msg);
    } else {
        fprintf(stderr, "test accuracy %.2f %% on %d images%s; %.2f s per epoch; saved %s\n",
                100.0 * test_acc, te->n, fell_back ? " (shipped sample)" : "",
                pr.seconds / o.epochs, out);
        if (json) {
            printf("{\n  \"output\": ");
            cli_json_string(stdout, out);
            printf(",\n  \"epochs\": %d,\n  \"seed\": %ld,\n  \"batch\": %d,\n  \"lr\": %g,\n"
                   "  \"train_loss\": %.6f,\n  \"train_accuracy\": %.6f,\n  \"val_accuracy\": %.6f,\n"
                   "  \"test_accuracy\": %.6f,\n  \"test_images\": %d,\n"
                   "  \"seconds_per_epoch\": %.4f,\n  \"history\": [%s\n  ]\n}\n",
                   o.epochs, seed, o.batch, (double)o.lr, last.train_loss, last.train_acc,
                   last.val_acc, test_acc, te->n, pr.seconds / o.epochs, hist ? hist : "");
        }
    }
    free(hist);
    cifar10_free(tr), cifar10_free(va), cifar10_free(te);
    model_free(m);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}
