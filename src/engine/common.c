/* common.c — status messages, checked arithmetic, clocks. */
#include "rankscope/common.h"

#include <gsl/gsl_errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope_config.h"

/* Messages are one line whatever names a hostile file carries: control bytes become '?'. */
static void one_line(char *s)
{
    for (; *s; ++s)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

int rs_fail(rs_err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        one_line(e->msg);
    }
    return -1;
}

int rs_failctx(rs_err *e, const char *fmt, ...)
{
    if (e) {
        char prefix[RS_ERR_LEN], old[RS_ERR_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, e->msg, sizeof old);
        old[sizeof old - 1] = 0;
        /* assemble by hand: snprintf("%s: %s") of two full buffers trips -Wformat-truncation */
        size_t pl = strlen(prefix), ol = strlen(old), cap = sizeof e->msg - 1;
        if (pl > cap)
            pl = cap;
        memcpy(e->msg, prefix, pl);
        size_t at = pl;
        for (const char *sep = ": "; *sep && at < cap; ++sep)
            e->msg[at++] = *sep;
        if (ol > cap - at)
            ol = cap - at;
        memcpy(e->msg + at, old, ol);
        e->msg[at + ol] = 0;
        one_line(e->msg);
    }
    return -1;
}

int rs_size_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

int rs_size_add(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return -1;
    *out = a + b;
    return 0;
}

double rs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *rs_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* OpenBLAS's own cblas.h declares this; repeated so the engine does not depend on which
 * cblas.h the include path finds first. */
void openblas_set_num_threads(int num_threads);

void rs_gsl_init(void)
{
    gsl_set_error_handler_off();
    /* The engine parallelises with its own threads; the matrices it hands to BLAS through GSL
     * (decompositions, EVBMF: a few hundred rows) are too small for OpenBLAS's threads, which
     * spin-wait and, on a busy machine, stall the caller for seconds. */
    openblas_set_num_threads(1);
}

int rs_default_threads(void)
{
    const char *env = getenv("RANKSCOPE_THREADS");
    if (env && *env) {
        int t = atoi(env);
        if (t >= 1 && t <= 256)
            return t;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > 64)
        n = 64;
    return (int)n;
}

static int regular_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* out = dir/file when that is a regular file. */
static int try_asset(char *out, size_t outlen, const char *dir, const char *file)
{
    return (size_t)snprintf(out, outlen, "%s/%s", dir, file) < outlen && regular_file(out);
}

int rs_find_asset(const char *file, char *out, size_t outlen)
{
    const char *env = getenv("RANKSCOPE_ASSETS");
    if (env && *env && try_asset(out, outlen, env, file))
        return 0;
    /* An installed binary finds its data beside it first, so a relocated install (or one staged
     * with DESTDIR) uses its own files, not another installation's under the configured prefix. */
    char exe[1024];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = NULL;
    if (k > 0) {
        exe[k] = 0;
        slash = strrchr(exe, '/');
    }
    char dir[1200], clean[PATH_MAX];
    if (slash) {
        *slash = 0;
        /* realpath: messages then name .../share/rankscope/x, not .../bin/../share/rankscope/x */
        if ((size_t)snprintf(dir, sizeof dir, "%s/%s", exe, RS_BINDIR_TO_DATADIR) < sizeof dir &&
            realpath(dir, clean) && try_asset(out, outlen, clean, file))
            return 0;
    }
    if (try_asset(out, outlen, RS_INSTALL_DATADIR, file))
        return 0;
    /* Development fallback: a binary run from its build directory uses the source tree's files. */
    if (try_asset(out, outlen, RS_SOURCE_ASSETS, file))
        return 0;
    if (slash && (size_t)snprintf(dir, sizeof dir, "%s/../assets", exe) < sizeof dir &&
        try_asset(out, outlen, dir, file))
        return 0;
    if (outlen)
        out[0] = 0;
    return -1;
}
