/* cli.h — helpers shared by the subcommands: exit codes, model/data defaults, number and JSON
 * formatting. The CLI is a thin client of the engine: it parses, calls, prints. */
#ifndef RANKSCOPE_CLI_H
#define RANKSCOPE_CLI_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "rankscope/cifar10.h"
#include "rankscope/model.h"
#include "rankscope/plan.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Every subcommand: argv[0] is the subcommand name; returns an exit code. */
typedef int (*cli_command_fn)(int argc, char **argv);

/* ---- options ------------------------------------------------------------------------------------
 * The options several commands share are declared once (cli.c) and parsed into cli_args; a
 * command names the ones it accepts (CLI_A_* bits) and declares only its own in a cli_opt table,
 * handled by its cli_opt_fn. */
enum cli_shared {
    CLI_A_DATA = 1u << 0,    /* --data DIR */
    CLI_A_THREADS = 1u << 1, /* --threads N (1..256) */
    CLI_A_JSON = 1u << 2,    /* --json */
    CLI_A_OUTPUT = 1u << 3,  /* -o / --output FILE */
    CLI_A_FORCE = 1u << 4,   /* --force (and -f unless the command uses -f itself) */
    CLI_A_PLAN = 1u << 5,    /* --plan FILE */
    CLI_A_RANKS = 1u << 6,   /* --ranks SPEC */
    CLI_A_VERBOSE = 1u << 7, /* -v / --verbose */
    CLI_A_FIT = 1u << 8,     /* --fit weights|outputs and --calib-images N (into cli_args.fit) */
};

typedef struct cli_fit {
    int outputs;       /* 0: factors fitted to the weights; 1: to the layer outputs (fit.h) */
    int layers_only;   /* with outputs: --fit layers, without the joint refinement */
    int calib;         /* calibration images: the first N of the training split (1,000) */
    const char *data;  /* --data DIR */
} cli_fit;

typedef struct cli_args {
    const char *data, *out, *plan, *ranks;
    int threads; /* 0 = the engine's default */
    int json, force, verbose;
    cli_fit fit;
    const char *model; /* the positional MODEL.onnx, NULL when none was given */
    int n_rest;        /* positional arguments (model included) */
    char **rest;
} cli_args;

typedef struct cli_opt {
    const char *name; /* long name without the dashes */
    int has_arg;      /* 0 or 1 */
    int key;          /* passed to the handler; a printable key is also the short option */
    int is_short;     /* key is accepted as -key too */
} cli_opt;

/* 0, or CLI_USAGE after printing the error. */
typedef int (*cli_opt_fn)(void *cmd, int key, const char *arg);

typedef struct cli_spec {
    const char *name;      /* "search" (messages) */
    unsigned shared;       /* CLI_A_* */
    const cli_opt *opts;   /* own options, ended by {0}; may be NULL */
    cli_opt_fn on_opt;
    void (*usage)(FILE *f);
    int max_args;          /* positional arguments accepted: 0 or 1 (the model); -1 = the command checks */
} cli_spec;

/* Parse argv (argv[0] = the command) into a and, through spec->on_opt, into cmd. Returns -1 to go
 * on, else the exit code to return (CLI_OK after --help, CLI_USAGE after an error). */
int cli_parse(const cli_spec *spec, int argc, char **argv, void *cmd, cli_args *a);

/* "rankscope: <message>" on stderr, one line. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The shipped model (assets/lenet-cifar10.onnx), located by rs_find_asset (installed datadir
 * first). Returns a static buffer ("" if none found). */
const char *cli_default_model(void);

/* Load path (or the default when NULL); prints the error and returns NULL on failure. A model
 * with a NaN or infinite weight is refused too (guard_model_finite names the initializer): no
 * command may compute with it or write it on. */
rs_model *cli_load_model(const char *path);
/* The same, but a model with non-finite weights is returned, with the reason in why ("" when
 * every weight is finite): for commands that only describe a model (info), which flag it. */
rs_model *cli_load_model_flagged(const char *path, char *why, size_t len);

/* Apply --plan FILE and/or --ranks SPEC (either may be NULL) to m in place. Prints the error and
 * returns non-zero on failure. */
int cli_apply_plan(rs_model *m, const char *plan_file, const char *ranks_spec);

/* --fit weights|outputs and --calib-images N (commands that factorize by a plan). */
/* Parses --fit's value / --calib-images' value into f (prints the error, returns -1). */
int cli_parse_fit(const char *s, cli_fit *f);
int cli_parse_calib(const char *s, cli_fit *f);
/* cli_apply_plan with a fit (f may be NULL = weights); with outputs, says on stderr (unless
 * quiet) which calibration images were used. */
/* n × 3072 normalised calibration images (malloc'ed, free()), n in *n; NULL (reported) when the
 * training split cannot be read. */
float *cli_fit_calibration(const cli_fit *f, int *n, int quiet);
/* --fit outputs for a search (search_options.fit_calib / fit_n from a->fit and a->data): *calib
 * receives the images (free() it; NULL with --fit weights). Prints the error, returns -1. */
struct search_options;
int cli_fit_search(const cli_args *a, struct search_options *so, float **calib);
int cli_apply_plan_fit(rs_model *m, const char *plan_file, const char *ranks_spec, const cli_fit *f, int quiet);

/* Every command that writes a file with -o calls this first. Refuses (prints the error, returns -1)
 * when `out` names the same file as the input model `in` (same path, or the same inode through a
 * link or another spelling) unless force is set, and when `out` is an existing directory. `in` is
 * the model the command reads: callers pass cli_default_model() when no model was named, NULL when
 * the command reads none. Returns 0 when the write may go on; the write itself must then go
 * through fileio_write_atomic / onnx_save / plan_save (temp file, fsync, rename). */
int cli_check_output(const char *out, const char *in, int force);

/* The other files a command reads (or writes besides `out`); any field may be NULL / 0. */
typedef struct cli_inputs {
    const char *plan;      /* --plan FILE */
    int reads_data;        /* reads CIFAR-10: its files (and the shipped sample) are inputs */
    const char *data;      /* --data DIR (NULL: the default search, cifar10_find_dir) */
    const char *other_out; /* a second output, e.g. --plan-out */
    const char *other_opt; /* its option name for the message */
    const char *extra_in;  /* one more input file (a recipe, a checkpoint, ...) */
    const char *extra_opt; /* its option name for the message, e.g. "--recipe" */
} cli_inputs;

/* With cli_check_output: refuses (prints, returns -1) when `out` (given as option opt) names,
 * under any spelling (fileio_same_file), the input plan, a CIFAR-10 file the command reads or
 * the other output. No --force: overwriting these is never what was meant. */
int cli_check_output_inputs(const char *opt, const char *out, const cli_inputs *in);

/* Parse a whole decimal integer in [lo, hi]; prints "--opt: ..." and returns -1 on failure. */
int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);

/* 62.0K, 1.3M, 850 — into buf (at least 16 bytes); returns buf. */
char *cli_human(int64_t v, char *buf, size_t len);

/* JSON string literal with escapes. */
void cli_json_string(FILE *f, const char *s);

/* ---- output shared by the commands that report plans ------------------------------------------ */
double cli_ratio(int64_t before, int64_t after); /* 0 when after <= 0 */
void cli_print_plan(FILE *f, const rs_plan *p);
void cli_print_cost(FILE *f, const plan_cost *c);
void cli_json_plan(FILE *f, const rs_plan *p);
void cli_json_cost(FILE *f, const plan_cost *c); /* the fields, without braces */
/* A CIFAR-10 split (cifar10_load_split); prints the error and returns NULL on failure. */
cifar10_set *cli_load_split(const char *data, const char *split, int *fell_back);
/* Accuracy of m on s; prints the error and returns -1 on failure. */
int cli_eval_acc(const rs_model *m, const cifar10_set *s, int threads, double *acc);
/* Write plan p to path (NULL: nothing) after cli_check_output; prints the error, returns -1. */
int cli_save_plan(const rs_plan *p, const char *path);
/* --methods spatial-svd,tucker2: bit mask of decomp methods, 0 after printing the error. */
unsigned cli_parse_methods(const char *s);

/* Ctrl-C: the first press sets cli_interrupted (work stops at its next callback and reports
 * what it has); the handler stays installed. */
extern volatile sig_atomic_t cli_interrupted;
void cli_catch_sigint(void);

/* Progress bar on stderr when it is a terminal (no-op otherwise); usable as rs_progress_fn. */
int cli_progress(void *user, double fraction, const char *what);
void cli_progress_end(void);

#endif
