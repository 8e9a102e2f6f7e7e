/* main.c — subcommand dispatch. `rankscope` with no subcommand opens the explorer. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "rankscope/common.h"
#include "rankscope/explorer.h"
#include "rankscope_config.h"

int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_compress(int argc, char **argv);
int cmd_decompose(int argc, char **argv);
int cmd_spectrum(int argc, char **argv);
int cmd_estimate(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_zoo(int argc, char **argv);

static const struct command {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} commands[] = {
    {"info", cmd_info, "layer table of a model: shapes, params, MACs"},
    {"eval", cmd_eval, "accuracy on CIFAR-10, overall and per class"},
    {"train", cmd_train, "train the reference net (or a model) on CIFAR-10"},
    {"decompose", cmd_decompose, "factorize one layer or a plan: costs, weight and output error"},
    {"spectrum", cmd_spectrum, "singular values, energy and EVBMF rank of a layer"},
    {"estimate", cmd_estimate, "EVBMF rank per layer and method"},
    {"bench", cmd_bench, "throughput: evaluation images/s, GFLOP/s vs sgemm peak, latency"},
    {"search", cmd_search, "rank search on the validation split (naive, bisect, global, evbmf)"},
    {"finetune", cmd_finetune, "train a factorized net (the direct problem)"},
    {"compress", cmd_compress, "search + fine-tune + re-search: the whole pipeline"},
    {"export", cmd_export, "the (factorized) model as ONNX or dependency-free C (flash/RAM)"},
    {"data", cmd_data, "data fetch: download, verify and unpack CIFAR-10"},
    {"zoo", cmd_zoo, "the trained models shipped in assets/zoo/: accuracy, params, MACs"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: rankscope [MODEL.onnx] [--data DIR] [--plan FILE] [--no-color]   (the explorer)\n"
               "       rankscope COMMAND [options]   (rankscope COMMAND --help for its options)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nData: --data DIR, else $RANKSCOPE_DATA, else ~/.cache/rankscope/cifar-10-batches-bin,\n"
               "else the test sample shipped in assets/.\n");
}

int main(int argc, char **argv)
{
    rs_gsl_init();
    if (argc >= 2) {
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
            usage(stdout);
            return CLI_OK;
        }
        if (!strcmp(argv[1], "--version")) {
            printf("rankscope %s\n", RS_VERSION);
            return CLI_OK;
        }
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
            if (!strcmp(argv[1], commands[i].name))
                return commands[i].fn(argc - 1, argv + 1);
        if (argv[1][0] != '-' && !strstr(argv[1], ".onnx")) {
            cli_error("unknown command \"%s\" (rankscope --help lists them)", argv[1]);
            return CLI_USAGE;
        }
    }
    return ui_main(argc, argv);
}
