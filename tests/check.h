/* check.h — a tiny TAP producer for the C unit tests (meson runs them with protocol 'tap').
 * CHECK(cond, fmt, ...) records one test point; check_done() prints the plan and returns the
 * exit status. Tolerances are always stated at the call site. */
#ifndef RS_TEST_CHECK_H
#define RS_TEST_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static int check_count, check_failed;

static int check_point(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), unused));
static int check_point(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    ++check_count;
    printf("%s %d - ", ok ? "ok" : "not ok", check_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!ok) {
        ++check_failed;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return ok;
}

#define CHECK(cond, ...) check_point(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* |a-b| <= tol*max(1,|b|) — relative for large values, absolute near zero. */
#define CHECK_CLOSE(a, b, tol, ...)                                                            \
    check_point(fabs((double)(a) - (double)(b)) <= (tol) * fmax(1.0, fabs((double)(b))),       \
                __FILE__, __LINE__, __VA_ARGS__)

static int check_done(void) __attribute__((unused));
static int check_done(void)
{
    printf("1..%d\n", check_count);
    return check_failed ? 1 : 0;
}

#endif
