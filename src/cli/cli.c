/* cli.c — shared CLI helpers. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/cifar10.h"
#include "rankscope/decomp.h"
#include "rankscope/eval.h"
#include "rankscope/fileio.h"
#include "rankscope/guard.h"
#include "rankscope/onnx.h"

#define DEFAULT_MODEL RS_SHIPPED_MODEL

void cli_error(const char *fmt, ...)
{
    /* Messages quote names from files (node, initializer, layer names): a control byte among
     * them would reach the terminal as a command (clear screen, retitle, ...) or break the one
     * line. Each is shown as a \ooo escape instead. */
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fputs("rankscope: ", stderr);
    for (const unsigned char *p = (const unsigned char *)msg; *p; ++p) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\%03o", *p);
        else
            fputc(*p, stderr);
    }
    fputc('\n', stderr);
}

const char *cli_default_model(void)
{
    static char path[1200];
    if (rs_find_asset(DEFAULT_MODEL, path, sizeof path) != 0)
        path[0] = 0;
    return path;
}

rs_model *cli_load_model(const char *path)
{
    char why[RS_ERR_LEN];
    rs_model *m = cli_load_model_flagged(path, why, sizeof why);
    if (m && why[0]) {
        cli_error("%s: %s; refusing to use a model with non-finite weights", path ? path : cli_default_model(), why);
        model_free(m);
        return NULL;
    }
    return m;
}

rs_model *cli_load_model_flagged(const char *path, char *why, size_t len)
{
    why[0] = 0;
    if (!path) {
        path = cli_default_model();
        if (!*path) {
            cli_error("the shipped model %s was not found (set RANKSCOPE_ASSETS or name a model)",
                      DEFAULT_MODEL);
            return NULL;
        }
    }
    rs_err e = {{0}};
    rs_model *m = onnx_load(path, &e);
    if (!m)
        cli_error("%s", e.msg);
    else if (guard_model_finite(m, &e) != 0)
        snprintf(why, len, "%s", e.msg);
    return m;
}

int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || !*s || *end || errno) {
        cli_error("%s: \"%s\" is not a whole number", opt, s ? s : "");
        return -1;
    }
    if (v < lo || v > hi) {
        cli_error("%s: %ld out of range %ld..%ld", opt, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s ? s : "", &end);
    if (!s || !*s || *end || errno || !isfinite(v)) {
        cli_error("%s: \"%s\" is not a number", opt, s ? s : "");
        return -1;
    }
    if (v < lo || v > hi) {
        cli_error("%s: %g out of range %g..%g", opt, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

char *cli_human(int64_t v, char *buf, size_t len)
{
    double a = (double)(v < 0 ? -v : v);
    const char *sign = v < 0 ? "-" : "";
    if (a < 1000)
        snprintf(buf, len, "%s%lld", sign, (long long)(v < 0 ? -v : v));
    else if (a < 1e6)
        snprintf(buf, len, "%s%.1fK", sign, a / 1e3);
    else if (a < 1e9)
        snprintf(buf, len, "%s%.1fM", sign, a / 1e6);
    else
        snprintf(buf, len, "%s%.1fG", sign, a / 1e9);
    return buf;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; ++p) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static int progress_shown;

int cli_progress(void *user, double fraction, const char *what)
{
    (void)user;
    if (!isatty(STDERR_FILENO))
        return 0;
    int width = 30, fill = fraction < 0 ? 0 : (int)(fraction * width + 0.5);
    if (fill > width)
        fill = width;
    char label[25]; /* labels can carry layer names: no control byte reaches the terminal */
    snprintf(label, sizeof label, "%s", what ? what : "");
    for (char *c = label; *c; ++c)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    fprintf(stderr, "\r  %-24.24s [", label);
    for (int i = 0; i < width; ++i)
        fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %3.0f%%", fraction < 0 ? 0.0 : 100.0 * fraction);
    fflush(stderr);
    progress_shown = 1;
    return 0;
}

void cli_progress_end(void)
{
    if (progress_shown && isatty(STDERR_FILENO)) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    progress_shown = 0;
}

int cli_check_output(const char *out, const char *in, int force)
{
    if (!out)
        return 0;
    if (!*out) {
        cli_error("-o: empty file name");
        return -1;
    }
    char q[300];
    guard_quote(q, sizeof q, out);
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_error("-o %s: is a directory", q);
        return -1;
    }
    if (in && *in && fileio_same_file(out, in) && !force) {
        cli_error("-o %s is the input model; refusing to overwrite it (pass --force to replace it)",
                  q);
        return -1;
    }
    /* Say so now, not after minutes of search or training: the write needs a temporary file in
     * the output's directory. */
    char dir[1200];
    const char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == out ? 1 : (int)(slash - out), out);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_error("-o %s: directory %s does not exist", q, dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        cli_error("-o %s: cannot write in %s: %s", q, dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* The files a CIFAR-10 directory holds, the ones an output must never land on. */
static const char *const data_files[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                         "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
                                         "batches.meta.txt"};

int cli_check_output_inputs(const char *opt, const char *out, const cli_inputs *in)
{
    if (!out || !*out || !in)
        return 0;
    char q[300], qi[300];
    guard_quote(q, sizeof q, out);
    if (in->plan && fileio_same_file(out, in->plan)) {
        cli_error("%s %s is the input plan (--plan %s); refusing to overwrite it", opt, q,
                  guard_quote(qi, sizeof qi, in->plan));
        return -1;
    }
    if (in->extra_in && fileio_same_file(out, in->extra_in)) {
        cli_error("%s %s is the file given to %s (%s); refusing to overwrite it", opt, q,
                  in->extra_opt ? in->extra_opt : "the command", guard_quote(qi, sizeof qi, in->extra_in));
        return -1;
    }
    if (in->other_out && fileio_same_file(out, in->other_out)) {
        cli_error("%s %s and %s %s are the same file; give them different names", opt, q,
                  in->other_opt ? in->other_opt : "the other output",
                  guard_quote(qi, sizeof qi, in->other_out));
        return -1;
    }
    if (!in->reads_data)
        return 0;
    char dir[1100], path[1300];
    if (cifar10_find_dir(in->data, dir, sizeof dir, NULL) == 0)
        for (size_t i = 0; i < sizeof data_files / sizeof data_files[0]; ++i) {
            snprintf(path, sizeof path, "%s/%s", dir, data_files[i]);
            if (fileio_same_file(out, path)) {
                cli_error("%s %s is the CIFAR-10 data file %s; refusing to overwrite it", opt, q,
                          guard_quote(qi, sizeof qi, path));
                return -1;
            }
        }
    if (cifar10_sample_path(path, sizeof path, NULL) == 0 && fileio_same_file(out, path)) {
        cli_error("%s %s is the shipped test sample %s; refusing to overwrite it", opt, q,
                  guard_quote(qi, sizeof qi, path));
        return -1;
    }
    return 0;
}

/* ---- options ------------------------------------------------------------------------------------ */

enum { KEY_SHARED = 0x1000, KEY_DATA = KEY_SHARED, KEY_THREADS, KEY_JSON, KEY_OUTPUT, KEY_FORCE, KEY_PLAN,
       KEY_RANKS, KEY_VERBOSE, KEY_FIT, KEY_CALIB, KEY_HELP };

static const struct shared_opt {
    unsigned bit;
    struct option opt;
    char shortc; /* 0: long only */
} shared_opts[] = {
    {CLI_A_DATA, {"data", required_argument, 0, KEY_DATA}, 0},
    {CLI_A_THREADS, {"threads", required_argument, 0, KEY_THREADS}, 0},
    {CLI_A_JSON, {"json", no_argument, 0, KEY_JSON}, 0},
    {CLI_A_OUTPUT, {"output", required_argument, 0, KEY_OUTPUT}, 'o'},
    {CLI_A_FORCE, {"force", no_argument, 0, KEY_FORCE}, 'f'},
    {CLI_A_PLAN, {"plan", required_argument, 0, KEY_PLAN}, 0},
    {CLI_A_RANKS, {"ranks", required_argument, 0, KEY_RANKS}, 0},
    {CLI_A_VERBOSE, {"verbose", no_argument, 0, KEY_VERBOSE}, 'v'},
    {CLI_A_FIT, {"fit", required_argument, 0, KEY_FIT}, 0},
    {CLI_A_FIT, {"calib-images", required_argument, 0, KEY_CALIB}, 0},
};
#define N_SHARED (sizeof shared_opts / sizeof shared_opts[0])
#define MAX_OPTS 64

/* The command uses letter c itself (as a short option or the key of a long one): the shared
 * option that would take -c then has its long name only. */
static int own_short(const cli_spec *spec, int c)
{
    for (const cli_opt *o = spec->opts; o && o->name; ++o)
        if (o->key == c)
            return 1;
    return 0;
}

/* getopt_long's tables for spec: shared options first, then the command's own. */
static void build_tables(const cli_spec *spec, struct option *lo, char *so, size_t so_len)
{
    int n = 0;
    size_t k = 0;
    so[k++] = 'h';
    for (size_t i = 0; i < N_SHARED; ++i) {
        if (!(spec->shared & shared_opts[i].bit))
            continue;
        lo[n++] = shared_opts[i].opt;
        char sc = shared_opts[i].shortc;
        if (sc && !own_short(spec, sc) && k + 3 < so_len) {
            so[k++] = sc;
            if (shared_opts[i].opt.has_arg)
                so[k++] = ':';
        }
    }
    for (const cli_opt *o = spec->opts; o && o->name && n < MAX_OPTS - 2; ++o) {
        lo[n++] = (struct option){o->name, o->has_arg ? required_argument : no_argument, 0, o->key};
        if (o->is_short && k + 3 < so_len) {
            so[k++] = (char)o->key;
            if (o->has_arg)
                so[k++] = ':';
        }
    }
    lo[n++] = (struct option){"help", no_argument, 0, 'h'};
    lo[n] = (struct option){0, 0, 0, 0};
    so[k] = 0;
}

static int shared_key(cli_args *a, int c, const char *arg)
{
    long v;
    switch (c) {
    case KEY_DATA: a->data = arg; return 0;
    case KEY_THREADS:
        if (cli_parse_int("--threads", arg, 1, 256, &v) != 0)
            return CLI_USAGE;
        a->threads = (int)v;
        return 0;
    case KEY_JSON: a->json = 1; return 0;
    case KEY_OUTPUT: a->out = arg; return 0;
    case KEY_FORCE: a->force = 1; return 0;
    case KEY_PLAN: a->plan = arg; return 0;
    case KEY_RANKS: a->ranks = arg; return 0;
    case KEY_VERBOSE: a->verbose = 1; return 0;
    case KEY_FIT: return cli_parse_fit(arg, &a->fit) ? CLI_USAGE : 0;
    case KEY_CALIB: return cli_parse_calib(arg, &a->fit) ? CLI_USAGE : 0;
    }
    return CLI_USAGE;
}

/* A short shared option (-o, -f, -v) as its long key; 0 when c is not one for spec. */
static int shared_of_short(const cli_spec *spec, int c)
{
    for (size_t i = 0; i < N_SHARED; ++i)
        if (shared_opts[i].shortc == c && (spec->shared & shared_opts[i].bit) && !own_short(spec, c))
            return shared_opts[i].opt.val;
    return 0;
}

int cli_parse(const cli_spec *spec, int argc, char **argv, void *cmd, cli_args *a)
{
    struct option lo[MAX_OPTS];
    char so[2 * MAX_OPTS + 2];
    build_tables(spec, lo, so, sizeof so);
    memset(a, 0, sizeof *a);
    optind = 1;
    opterr = 0;
    int c, li = -1;
    while ((c = getopt_long(argc, argv, so, lo, &li)) != -1) {
        int rc;
        /* a short shared option, not a long option of the command's that happens to use its letter */
        int sk = c < KEY_SHARED && li < 0 ? shared_of_short(spec, c) : 0;
        li = -1;
        if (c == 'h') {
            spec->usage(stdout);
            return CLI_OK;
        } else if (c == '?' || c == ':') {
            cli_error("%s: unknown or incomplete option \"%s\"", spec->name, argv[optind - 1]);
            spec->usage(stderr);
            return CLI_USAGE;
        } else if (c >= KEY_SHARED || sk)
            rc = shared_key(a, sk ? sk : c, optarg);
        else
            rc = spec->on_opt ? spec->on_opt(cmd, c, optarg) : CLI_USAGE;
        if (rc != 0)
            return rc;
    }
    a->rest = argv + optind;
    a->n_rest = argc - optind;
    a->model = a->n_rest > 0 ? argv[optind] : NULL;
    if (spec->max_args >= 0 && a->n_rest > spec->max_args) {
        if (spec->max_args == 1)
            cli_error("%s: expected at most one model, got %d arguments", spec->name, a->n_rest);
        else
            cli_error("%s: unexpected argument \"%s\"", spec->name, argv[optind]);
        return CLI_USAGE;
    }
    return -1;
}

/* ---- plan reports ------------------------------------------------------------------------------- */

double cli_ratio(int64_t before, int64_t after)
{
    return after > 0 ? (double)before / (double)after : 0.0;
}

void cli_print_plan(FILE *f, const rs_plan *p)
{
    if (p->n == 0) {
        fprintf(f, "  (empty: nothing factorized)\n");
        return;
    }
    for (int i = 0; i < p->n; ++i) {
        const plan_entry *en = &p->entries[i];
        fprintf(f, "  %-8s %-12s %d", en->layer, decomp_method_name(en->method), en->rank);
        if (en->method == DECOMP_TUCKER2 && en->rank2 > 0)
            fprintf(f, ",%d", en->rank2);
        fputc('\n', f);
    }
}

void cli_print_cost(FILE *f, const plan_cost *c)
{
    char a[32], b[32];
    fprintf(f, "params     %8s → %-8s (%.2f×)\n", cli_human(c->params_before, a, sizeof a),
            cli_human(c->params_after, b, sizeof b), cli_ratio(c->params_before, c->params_after));
    fprintf(f, "MACs/image %8s → %-8s (%.2f×)\n", cli_human(c->macs_before, a, sizeof a),
            cli_human(c->macs_after, b, sizeof b), cli_ratio(c->macs_before, c->macs_after));
    fprintf(f, "fp32 bytes %8s → %-8s (%.2f×)\n", cli_human(c->bytes_before, a, sizeof a),
            cli_human(c->bytes_after, b, sizeof b), cli_ratio(c->bytes_before, c->bytes_after));
}

void cli_json_plan(FILE *f, const rs_plan *p)
{
    fputc('[', f);
    for (int i = 0; i < p->n; ++i) {
        const plan_entry *en = &p->entries[i];
        fprintf(f, "%s{\"layer\": ", i ? ", " : "");
        cli_json_string(f, en->layer);
        fprintf(f, ", \"method\": \"%s\", \"rank\": %d", decomp_method_name(en->method), en->rank);
        if (en->method == DECOMP_TUCKER2)
            fprintf(f, ", \"rank2\": %d", en->rank2);
        fputc('}', f);
    }
    fputc(']', f);
}

void cli_json_cost(FILE *f, const plan_cost *c)
{
    fprintf(f, "\"params_before\": %lld, \"params_after\": %lld, \"params_ratio\": %.4f, "
               "\"macs_before\": %lld, \"macs_after\": %lld, \"macs_ratio\": %.4f, "
               "\"bytes_before\": %lld, \"bytes_after\": %lld, \"bytes_ratio\": %.4f",
            (long long)c->params_before, (long long)c->params_after, cli_ratio(c->params_before, c->params_after),
            (long long)c->macs_before, (long long)c->macs_after, cli_ratio(c->macs_before, c->macs_after),
            (long long)c->bytes_before, (long long)c->bytes_after, cli_ratio(c->bytes_before, c->bytes_after));
}

cifar10_set *cli_load_split(const char *data, const char *split, int *fell_back)
{
    rs_err e = {{0}};
    cifar10_set *s = cifar10_load_split(data, split, fell_back, &e);
    if (!s)
        cli_error("%s%s", e.msg,
                  strcmp(split, "val") ? "" : " (the search needs the full CIFAR-10 set: --data DIR, or --split sample)");
    return s;
}

int cli_eval_acc(const rs_model *m, const cifar10_set *s, int threads, double *acc)
{
    rs_err e = {{0}};
    eval_result r;
    if (eval_model(m, s, threads, &r, NULL, NULL, &e) != 0) {
        cli_error("%s", e.msg);
        return -1;
    }
    *acc = r.accuracy;
    return 0;
}

int cli_save_plan(const rs_plan *p, const char *path)
{
    rs_err e = {{0}};
    if (!path)
        return 0;
    if (cli_check_output(path, NULL, 0) != 0)
        return -1;
    if (plan_save(p, path, &e) != 0) {
        cli_error("%s", e.msg);
        return -1;
    }
    return 0;
}

unsigned cli_parse_methods(const char *s)
{
    unsigned mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    if (!*buf || *buf == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,")) {
        cli_error("--methods \"%s\": an empty item (expected e.g. spatial-svd,tucker2)", s);
        return 0;
    }
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        decomp_method mth;
        rs_err e;
        if (decomp_method_parse(tok, &mth, &e) != 0) {
            cli_error("--methods: %s", e.msg);
            return 0;
        }
        mask |= 1u << mth;
    }
    return mask;
}

volatile sig_atomic_t cli_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

void cli_catch_sigint(void)
{
    cli_interrupted = 0;
    signal(SIGINT, on_sigint);
}
