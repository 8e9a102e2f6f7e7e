/* fileio.c — capped whole-file reads; writes through a same-directory temp file + rename. */
#include "rankscope/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Directory part of path ("." when there is none), for the directory fsync after rename. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return rs_strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

static int write_fully(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int fileio_write_atomic(const char *path, const void *buf, size_t len, rs_err *e)
{
    if (!path || !*path)
        return rs_fail(e, "write: empty file name");
    if (len > 0 && !buf)
        return rs_fail(e, "%s: nothing to write (NULL buffer)", path);

    struct stat st;
    mode_t mode = 0644;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return rs_fail(e, "%s: is a directory", path);
        mode = st.st_mode & 07777;
    }

    static const char suffix[] = ".tmp.XXXXXX";
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof suffix);
    if (!tmp)
        return rs_fail(e, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);

    int fd = mkstemp(tmp);
    if (fd < 0) {
        int err = errno;
        char *dir = dir_of(path);
        rs_fail(e, "%s: cannot create a temporary file in %s: %s", path, dir ? dir : "its directory",
                strerror(err));
        free(dir);
        free(tmp);
        return -1;
    }

    const char *step = "write";
    int err = 0;
    if (fchmod(fd, mode) != 0) {
        step = "chmod";
        err = errno;
    } else if (write_fully(fd, buf, len) != 0) {
        err = errno;
    } else if (fsync(fd) != 0) {
        step = "fsync";
        err = errno;
    }
    if (close(fd) != 0 && !err) {
        step = "close";
        err = errno;
    }
    if (!err && rename(tmp, path) != 0) {
        step = "rename";
        err = errno;
    }
    if (err) {
        unlink(tmp);
        rs_fail(e, "%s: %s failed: %s (the existing file, if any, is unchanged)", path, step,
                strerror(err));
        free(tmp);
        return -1;
    }
    free(tmp);

    /* Make the rename itself durable. Failure here does not undo a completed write, and some
     * file systems refuse fsync on directories, so it is best effort. */
    char *dir = dir_of(path);
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return 0;
}

int fileio_read_all(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, rs_err *e)
{
    *buf = NULL;
    *len = 0;
    if (!path || !*path)
        return rs_fail(e, "read: empty file name");
    if (max_bytes > SIZE_MAX / 2)
        max_bytes = SIZE_MAX / 2; /* so max_bytes + 1 below cannot wrap */
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return rs_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return rs_fail(e, "%s: cannot stat: %s", path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return rs_fail(e, "%s: is a directory", path);
    }
    /* Regular files are read in one allocation of their size; pipes grow up to the cap. */
    size_t cap;
    if (S_ISREG(st.st_mode)) {
        if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max_bytes) {
            close(fd);
            return rs_fail(e, "%s: %lld bytes exceeds the limit of %zu bytes", path,
                           (long long)st.st_size, max_bytes);
        }
        cap = (size_t)st.st_size + 1; /* +1 detects a file that grew since fstat */
    } else {
        /* pipes and devices have no size to check up front: read at most FILEIO_STREAM_MAX */
        if (max_bytes > FILEIO_STREAM_MAX)
            max_bytes = FILEIO_STREAM_MAX;
        cap = max_bytes < 65536 ? max_bytes + 1 : 65536;
    }
    uint8_t *data = malloc(cap ? cap : 1);
    if (!data) {
        close(fd);
        return rs_fail(e, "%s: out of memory reading %zu bytes", path, cap);
    }
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            if (n > max_bytes)
                break;
            size_t ncap = cap > max_bytes / 2 ? max_bytes + 1 : cap * 2;
            uint8_t *grown = realloc(data, ncap);
            if (!grown) {
                free(data);
                close(fd);
                return rs_fail(e, "%s: out of memory reading %zu bytes", path, ncap);
            }
            data = grown;
            cap = ncap;
        }
        ssize_t r = read(fd, data + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            free(data);
            close(fd);
            return rs_fail(e, "%s: read failed: %s", path, strerror(err));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > max_bytes) {
        free(data);
        return rs_fail(e, "%s: more than %zu bytes, the limit", path, max_bytes);
    }
    *buf = data;
    *len = n;
    return 0;
}
