/* cli.c — shared CLI helpers. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/cifar10.h"
#include "rankscope/fileio.h"
#include "rankscope/guard.h"
#include "rankscope/onnx.h"

#define DEFAULT_MODEL "lenet-cifar10.onnx"

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
