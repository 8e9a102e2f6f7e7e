/* cli.c — shared CLI helpers. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/onnx.h"

#define DEFAULT_MODEL "lenet-cifar10.onnx"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("rankscope: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
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
    fprintf(stderr, "\r  %-24.24s [", what ? what : "");
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

/* Same file: identical device and inode when both exist (covers "./m.onnx" vs "m.onnx", hard and
 * symbolic links), else identical canonical paths. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a, b) == 0;
}

int cli_check_output(const char *out, const char *in, int force)
{
    if (!out)
        return 0;
    if (!*out) {
        cli_error("-o: empty file name");
        return -1;
    }
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_error("-o %s: is a directory", out);
        return -1;
    }
    if (in && *in && same_file(out, in) && !force) {
        cli_error("-o %s is the input model; refusing to overwrite it (pass --force to replace it)",
                  out);
        return -1;
    }
    return 0;
}
