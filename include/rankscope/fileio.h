/* fileio.h — whole-file reads with a size cap, and crash-safe whole-file writes.
 *
 * Contract:
 *  - fileio_write_atomic writes buf[0..len) to `path` so that `path` always holds either its old
 *    content or the complete new content: the bytes go to a temporary file in the same directory
 *    (named "<path>.tmp.XXXXXX"), which is fsync'ed and then renamed over `path`; the directory is
 *    fsync'ed afterwards (best effort). On any failure (disk full, RLIMIT_FSIZE, permissions) the
 *    temporary file is unlinked and an existing `path` is left untouched. A new file gets mode
 *    0644; an existing file keeps its mode.
 *  - fileio_read_all reads the whole file into a malloc'ed buffer (*buf, caller frees; non-NULL
 *    even for an empty file) and refuses files larger than max_bytes before allocating. Pipes
 *    and devices (no size known up front) are read up to min(max_bytes, FILEIO_STREAM_MAX).
 *  - Both return 0, or -1 with a one-line message naming the file and the OS reason.
 */
#ifndef RANKSCOPE_FILEIO_H
#define RANKSCOPE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include "rankscope/common.h"

#define FILEIO_STREAM_MAX ((size_t)64 << 20)

int fileio_write_atomic(const char *path, const void *buf, size_t len, rs_err *e);
int fileio_read_all(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, rs_err *e);

#endif
