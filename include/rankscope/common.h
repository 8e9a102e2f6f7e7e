/* common.h — status, checked sizes, timing and progress callbacks shared by every engine module.
 *
 * Contract:
 *  - Engine functions never print and never exit. A function that can fail returns int:
 *    0 on success, -1 on failure, and fills the caller's rs_err (which may be NULL) with a
 *    one-line message that names the file / layer / value at fault.
 *  - Sizes computed from untrusted input go through rs_size_mul / rs_size_add, which refuse
 *    overflow, so a hostile dimension is rejected before anything is allocated.
 *  - Long work takes an rs_progress callback; a non-zero return from it cancels the work, which
 *    then returns RS_CANCELLED (not -1) with a message saying so.
 */
#ifndef RANKSCOPE_COMMON_H
#define RANKSCOPE_COMMON_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stddef.h>
#include <stdint.h>

#define RS_ERR_LEN 512
#define RS_CANCELLED (-2)

typedef struct rs_err {
    char msg[RS_ERR_LEN];
} rs_err;

/* Formats the message into e (if non-NULL) and returns -1, so callers write
 * `return rs_fail(e, "fc1: rank %d out of range 1..%d", r, max);`. */
int rs_fail(rs_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message: "context: old message". Returns -1. */
int rs_failctx(rs_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Overflow-checked size arithmetic: return 0 and store the result, or -1 on overflow. */
int rs_size_mul(size_t a, size_t b, size_t *out);
int rs_size_add(size_t a, size_t b, size_t *out);

/* Largest single allocation the engine accepts from untrusted dimensions (bytes). */
#define RS_MAX_ALLOC ((size_t)8 << 30)

/* Monotonic wall-clock seconds. */
double rs_now(void);

/* Progress: fraction in [0,1] (or <0 when unknown), a short human label.
 * Return non-zero to cancel. May be NULL. */
typedef int (*rs_progress_fn)(void *user, double fraction, const char *what);

/* Duplicate a C string (NULL stays NULL). Returns NULL only on out-of-memory. */
char *rs_strdup(const char *s);

/* The model the explorer and the commands open when none is named (found with rs_find_asset). */
#define RS_SHIPPED_MODEL "lenet-cifar10.onnx"

/* Locate a file shipped in assets/ (installed to <datadir>/rankscope): $RANKSCOPE_ASSETS, then
 * ../share/rankscope next to the executable, then the configured install datadir, and only then
 * the source tree's assets/ (compiled in, for development builds) and ../assets next to the
 * executable. 0 with the path in out, or -1 with out = "". */
int rs_find_asset(const char *file, char *out, size_t outlen);

/* Numeric start-up (idempotent): GSL's abort-on-error handler off (every GSL return is checked
 * instead), and OpenBLAS kept to one thread (the engine runs its own worker threads). */
void rs_gsl_init(void);

/* Number of worker threads the engine uses by default: RANKSCOPE_THREADS, else online CPUs. */
int rs_default_threads(void);

#pragma GCC visibility pop
#endif
