/* fileio.h — whole-file reads with a size cap, and crash-safe whole-file writes.
 *
 * Contract:
 *  - fileio_write_atomic writes buf[0..len) to `path` so that `path` always holds either its old
 *    content or the complete new content: the bytes go to a temporary file in the same directory,
 *    which is fsync'ed and then renamed over `path`; the directory is fsync'ed afterwards (best
 *    effort). The temporary is an unnamed O_TMPFILE where the file system supports it (a killed
 *    process leaves nothing) and gets its name "<path>.tmp.<pid>.XXXXXX" only just before the
 *    rename; elsewhere it is a named mkstemp file from the start. On any failure (disk full,
 *    RLIMIT_FSIZE, permissions) the temporary is removed and an existing `path` is left
 *    untouched. A new file gets mode 0666 & ~umask; an existing file keeps its mode. A character
 *    device or a named pipe (`/dev/null`, `/dev/stdout`) is written in place, never replaced;
 *    any other existing file that is not a regular file (socket, block device) is refused.
 *  - Every write first sweeps stale temporaries of the same target: "<path>.tmp.<pid>.XXXXXX"
 *    whose process no longer exists, and the pid-less "<path>.tmp.XXXXXX" of earlier versions
 *    once they are an hour old (fileio_sweep_temps; fileio_stale_temp is the rule alone).
 *  - fileio_write_atomic_pair writes two files as one: both temporaries are complete and
 *    fsync'ed before either rename; when the second rename fails the first file is put back
 *    (its old content was kept under a second hard link meanwhile), so both files are new or
 *    both are as before. Only a crash between the two renames can leave one new and one old.
 *    The renames run under an exclusive flock on path1's directory, so two writers of the same
 *    pair leave one writer's pair, never a mix.
 *  - fileio_same_file: whether two paths name one file under any spelling (relative, "..",
 *    symbolic or hard link): same device and inode when both exist; when neither exists yet,
 *    the same directory (device and inode) and the same last component. A path that exists
 *    never equals one that does not.
 *  - fileio_read_all reads the whole file into a malloc'ed buffer (*buf, caller frees; non-NULL
 *    even for an empty file) and refuses files larger than max_bytes before allocating. Pipes
 *    and devices (no size known up front) are read up to min(max_bytes, FILEIO_STREAM_MAX).
 *  - Both return 0, or -1 with a one-line message naming the file and the OS reason.
 */
#ifndef RANKSCOPE_FILEIO_H
#define RANKSCOPE_FILEIO_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "rankscope/common.h"

#define FILEIO_STREAM_MAX ((size_t)64 << 20)

int fileio_write_atomic(const char *path, const void *buf, size_t len, rs_err *e);
int fileio_write_atomic_pair(const char *path1, const void *buf1, size_t len1, const char *path2,
                             const void *buf2, size_t len2, rs_err *e);
int fileio_same_file(const char *a, const char *b); /* 1 same, 0 not */
void fileio_sweep_temps(const char *path);
/* 1 when directory entry `name` is a stale temporary of the file named `base` (mtime its age). */
int fileio_stale_temp(const char *name, const char *base, time_t mtime);
int fileio_read_all(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, rs_err *e);

#pragma GCC visibility pop
#endif
