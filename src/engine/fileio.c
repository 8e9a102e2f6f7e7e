/* fileio.c — capped whole-file reads; writes through a same-directory temp file + rename. */
#define _GNU_SOURCE /* O_TMPFILE, AT_EMPTY_PATH */
#include "rankscope/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
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

/* ---- temporaries --------------------------------------------------------------------------- */

/* Named temporaries are "<target>.tmp.<pid>.XXXXXX": the pid lets a later run tell a temporary
 * whose writer was killed (pid gone) from one being written right now. Earlier versions used
 * "<target>.tmp.XXXXXX"; those carry no pid and are swept once they are an hour old. */
#define LEGACY_TMP_AGE 3600

static int all_alnum(const char *s, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return s[n] == 0;
}

int fileio_stale_temp(const char *name, const char *base, time_t mtime)
{
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) != 0 || strncmp(name + bl, ".tmp.", 5) != 0)
        return 0;
    const char *rest = name + bl + 5;
    if (strlen(rest) == 6 && all_alnum(rest, 6))
        return time(NULL) - mtime > LEGACY_TMP_AGE;
    char *end;
    errno = 0;
    long pid = strtol(rest, &end, 10);
    if (errno || end == rest || *end != '.' || pid <= 0 || strlen(end + 1) != 6 ||
        !all_alnum(end + 1, 6))
        return 0;
    if (pid == (long)getpid())
        return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void fileio_sweep_temps(const char *path)
{
    if (!path || !*path)
        return;
    char *dir = dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    DIR *d = dir && *base ? opendir(dir) : NULL;
    if (d) {
        int dfd = dirfd(d);
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            struct stat st;
            if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) &&
                fileio_stale_temp(de->d_name, base, st.st_mtime))
                (void)unlinkat(dfd, de->d_name, 0);
        }
        closedir(d);
    }
    free(dir);
}

/* "<path>.tmp.<pid>.XXXXXX" with the X's still to fill; malloc'ed. */
static char *temp_template(const char *path)
{
    char mid[48];
    int ml = snprintf(mid, sizeof mid, ".tmp.%ld.XXXXXX", (long)getpid());
    size_t plen = strlen(path);
    char *tmp = malloc(plen + (size_t)ml + 1);
    if (tmp) {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, mid, (size_t)ml + 1);
    }
    return tmp;
}

static void fill_random(char *x6)
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static unsigned long counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long v = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 16) ^ (++counter * 2654435761UL);
    for (int i = 0; i < 6; ++i) {
        x6[i] = set[v % 62];
        v = v / 62 + (unsigned long)ts.tv_sec * 31 + counter;
    }
}

/* An open, not yet named, temporary for path: O_TMPFILE in path's directory where the file
 * system supports it (nothing is left behind if the process dies before linking it), else a
 * named mkstemp file. *named is set in the second case (tmp then holds its name). */
static int open_temp(const char *path, char *tmp, int allow_tmpfile, int *named)
{
    *named = 0;
#ifdef O_TMPFILE
    char *dir = allow_tmpfile ? dir_of(path) : NULL;
    if (dir) {
        int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        free(dir);
        if (fd >= 0)
            return fd;
        /* EOPNOTSUPP / EISDIR / EINVAL: no O_TMPFILE here; other errors show up again below */
    }
#else
    (void)allow_tmpfile;
#endif
    *named = 1;
    return mkstemp(tmp);
}

/* Give an O_TMPFILE descriptor the name in tmp (its X's filled here). Returns 0 or -1 (errno). */
static int link_temp(int fd, char *tmp)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    char *x6 = tmp + strlen(tmp) - 6;
    for (int tries = 0; tries < 100; ++tries) {
        fill_random(x6);
        if (linkat(fd, "", AT_FDCWD, tmp, AT_EMPTY_PATH) == 0)
            return 0;
        if (errno == EEXIST)
            continue;
        /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd works for everyone */
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

static void fsync_dir_of(const char *path)
{
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
}

/* Write buf to a durable temporary beside path and give it a name (*tmp_out, malloc'ed), ready
 * to be renamed over path. On failure nothing is left on disk. */
static int stage(const char *path, const void *buf, size_t len, const char *unchanged,
                 char **tmp_out, rs_err *e)
{
    *tmp_out = NULL;
    if (!path || !*path)
        return rs_fail(e, "write: empty file name");
    if (len > 0 && !buf)
        return rs_fail(e, "%s: nothing to write (NULL buffer)", path);

    struct stat st;
    mode_t mode = 0644;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return rs_fail(e, "%s: is a directory", path);
        /* renaming over a device would replace the device node itself (as root: /dev/null) */
        if (!S_ISREG(st.st_mode))
            return rs_fail(e, "%s: not a regular file; refusing to replace it", path);
        mode = st.st_mode & 07777;
    } else {
        mode_t mask = umask(0);
        umask(mask);
        mode = 0666 & ~mask;
    }
    fileio_sweep_temps(path);

    char *tmp = temp_template(path);
    if (!tmp)
        return rs_fail(e, "%s: out of memory", path);
    int named, allow_tmpfile = 1;
again:;
    int fd = open_temp(path, tmp, allow_tmpfile, &named);
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
    } else if (!named && link_temp(fd, tmp) != 0) {
        step = "link";
        err = errno;
    } else {
        named = 1;
    }
    if (close(fd) != 0 && !err) {
        step = "close";
        err = errno;
    }
    if (err && !strcmp(step, "link") && allow_tmpfile) {
        /* no way to name an O_TMPFILE here (no /proc, no CAP_DAC_READ_SEARCH): a named one */
        allow_tmpfile = 0;
        memcpy(tmp + strlen(tmp) - 6, "XXXXXX", 6); /* link_temp filled them in */
        step = "write";
        err = 0;
        goto again;
    }
    if (err) {
        if (named)
            unlink(tmp);
        rs_fail(e, "%s: %s failed: %s (%s)", path, step, strerror(err), unchanged);
        free(tmp);
        return -1;
    }
    *tmp_out = tmp;
    return 0;
}

/* `-o /dev/null`, `-o /dev/stdout`, a named pipe: written in place (a stream has no old content to
 * keep). Returns 1 when path is not such a file (the atomic path applies), else 0 / -1. */
static int write_stream(const char *path, const void *buf, size_t len, rs_err *e)
{
    struct stat st;
    if (!path || stat(path, &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)))
        return 1;
    int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return rs_fail(e, "%s: cannot open: %s", path, strerror(errno));
    int rc = write_fully(fd, buf, len);
    int err = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    return rc == 0 ? 0 : rs_fail(e, "%s: write failed: %s", path, strerror(err));
}

int fileio_write_atomic(const char *path, const void *buf, size_t len, rs_err *e)
{
    int streamed = write_stream(path, buf, len, e);
    if (streamed <= 0)
        return streamed;
    char *tmp;
    if (stage(path, buf, len, "the existing file, if any, is unchanged", &tmp, e) != 0)
        return -1;
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        free(tmp);
        return rs_fail(e, "%s: rename failed: %s (the existing file, if any, is unchanged)", path,
                       strerror(err));
    }
    free(tmp);
    fsync_dir_of(path);
    return 0;
}

int fileio_write_atomic_pair(const char *path1, const void *buf1, size_t len1, const char *path2,
                             const void *buf2, size_t len2, rs_err *e)
{
    if (path1 && path2 && fileio_same_file(path1, path2))
        return rs_fail(e, "%s and %s are the same file", path1, path2);
    char *tmp1 = NULL, *tmp2 = NULL, *keep = NULL;
    int rc = -1, lock_fd = -1;
    if (stage(path1, buf1, len1, "both files are unchanged", &tmp1, e) != 0)
        return -1;
    if (stage(path2, buf2, len2, "both files are unchanged", &tmp2, e) != 0)
        goto out;
    /* Two writers of one pair (two exports into one directory) must not interleave their renames
     * into a new model.c beside the other's model.h: the renames happen under an exclusive lock
     * on path1's directory (best effort where flock is unsupported). */
    char *dir = dir_of(path1);
    if (dir) {
        lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        while (lock_fd >= 0 && flock(lock_fd, LOCK_EX) != 0 && errno == EINTR)
            ;
        free(dir);
    }
    /* Both complete on disk. path1's old content stays reachable under a second name until
     * path2 is in place too, so a failing second rename can put it back. */
    struct stat st;
    if (lstat(path1, &st) == 0 && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
        keep = temp_template(path1);
        char target[4096];
        ssize_t tl = S_ISLNK(st.st_mode) ? readlink(path1, target, sizeof target - 1) : 0;
        if (!keep || tl < 0) {
            rs_fail(e, "%s: %s", path1, keep ? strerror(errno) : "out of memory");
            goto out;
        }
        target[tl] = 0;
        int linked = -1;
        for (int tries = 0; tries < 100 && linked != 0; ++tries) {
            fill_random(keep + strlen(keep) - 6);
            /* a symbolic link is kept as a copy of the link (rename replaces the link itself) */
            linked = S_ISLNK(st.st_mode) ? symlink(target, keep) : link(path1, keep);
            if (linked != 0 && errno != EEXIST)
                break;
        }
        if (linked != 0) {
            rs_fail(e, "%s: cannot keep the old file while replacing it: %s (both files are "
                       "unchanged)", path1, strerror(errno));
            free(keep);
            keep = NULL;
            goto out;
        }
    }
    if (rename(tmp1, path1) != 0) {
        rs_fail(e, "%s: rename failed: %s (both files are unchanged)", path1, strerror(errno));
        goto out;
    }
    free(tmp1);
    tmp1 = NULL;
    if (rename(tmp2, path2) != 0) {
        int err = errno;
        if (keep ? rename(keep, path1) == 0 : unlink(path1) == 0) {
            free(keep);
            keep = NULL;
            rs_fail(e, "%s: rename failed: %s (both files are unchanged)", path2, strerror(err));
        } else {
            rs_fail(e, "%s: rename failed: %s, and %s could not be put back: it is new, %s is old",
                    path2, strerror(err), path1, path2);
        }
        goto out;
    }
    rc = 0;
    fsync_dir_of(path1);
    fsync_dir_of(path2);
out:
    if (tmp1)
        unlink(tmp1);
    if (tmp2 && rc != 0)
        unlink(tmp2);
    if (keep)
        unlink(keep);
    if (lock_fd >= 0)
        close(lock_fd);
    free(tmp1);
    free(tmp2);
    free(keep);
    return rc;
}

/* ---- path identity -------------------------------------------------------------------------- */

/* What a path names: an existing file's (device, inode); for a path that does not exist yet, the
 * (device, inode) of the directory it would be created in plus its last component. */
typedef struct file_id {
    int exists, ok;
    dev_t dev;
    ino_t ino;
    const char *name; /* borrowed; only when !exists */
    size_t name_len;
} file_id;

static file_id identify(const char *path)
{
    file_id id = {0};
    struct stat st;
    if (!path || !*path)
        return id;
    if (stat(path, &st) == 0) {
        id.exists = id.ok = 1;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        return id;
    }
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        --len;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/')
        --b;
    id.name = path + b;
    id.name_len = len - b;
    char *dir;
    if (b == 0)
        dir = rs_strdup(".");
    else {
        size_t dl = b > 1 ? b - 1 : 1;
        dir = malloc(dl + 1);
        if (dir) {
            memcpy(dir, path, dl);
            dir[dl] = 0;
        }
    }
    if (dir && stat(dir, &st) == 0) {
        id.ok = 1;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
    }
    free(dir);
    return id;
}

int fileio_same_file(const char *a, const char *b)
{
    if (!a || !b || !*a || !*b)
        return 0;
    file_id ia = identify(a), ib = identify(b);
    if (!ia.ok || !ib.ok)
        return strcmp(a, b) == 0;
    if (ia.exists != ib.exists || ia.dev != ib.dev || ia.ino != ib.ino)
        return 0;
    return ia.exists || (ia.name_len == ib.name_len && !memcmp(ia.name, ib.name, ia.name_len));
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
