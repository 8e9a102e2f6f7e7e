/* test_fileio.c — atomic writes (replace, keep mode, survive a failed write with the old file
 * intact and no temporary left behind) and capped reads. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "rankscope/fileio.h"

/* Number of directory entries other than . and .. (temporary files would show up here). */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            ++n;
    closedir(d);
    return n;
}

static int file_equals(const char *path, const void *want, size_t len)
{
    uint8_t *buf;
    size_t n;
    rs_err e;
    if (fileio_read_all(path, (size_t)1 << 30, &buf, &n, &e) != 0)
        return printf("# %s\n", e.msg), 0;
    int ok = n == len && memcmp(buf, want, len) == 0;
    free(buf);
    return ok;
}

int main(void)
{
    char dir[] = "/tmp/rs_test_fileio.XXXXXX";
    if (!CHECK(mkdtemp(dir) != NULL, "temporary directory"))
        return check_done();
    char path[256];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    rs_err e = {{0}};

    const char first[] = "the first content, somewhat longer than the second";
    const char second[] = "second";
    int rc = fileio_write_atomic(path, first, sizeof first, &e);
    CHECK(rc == 0 && file_equals(path, first, sizeof first), "new file written (%s)", rc ? e.msg : "ok");
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "a new file gets mode 0644");
    chmod(path, 0600);
    rc = fileio_write_atomic(path, second, sizeof second, &e);
    CHECK(rc == 0 && file_equals(path, second, sizeof second),
          "existing file replaced entirely by shorter content");
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "replacing keeps the file's mode");
    CHECK(entries(dir) == 1, "no temporary file left after successful writes");
    rc = fileio_write_atomic(path, "", 0, &e);
    CHECK(rc == 0 && file_equals(path, "", 0), "an empty write gives an empty file");
    fileio_write_atomic(path, second, sizeof second, &e);

    /* A write cut short by RLIMIT_FSIZE (the disk-full stand-in) must leave the old file. */
    size_t big_len = 1 << 20;
    char *big = malloc(big_len);
    memset(big, 'x', big_len);
    struct rlimit old_lim, small;
    getrlimit(RLIMIT_FSIZE, &old_lim);
    small = old_lim;
    small.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    int lim_ok = setrlimit(RLIMIT_FSIZE, &small) == 0;
    rc = fileio_write_atomic(path, big, big_len, &e);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    signal(SIGXFSZ, old_handler);
    CHECK(lim_ok && rc == -1 && strstr(e.msg, path) != NULL, "a write beyond RLIMIT_FSIZE fails (%s)", e.msg);
    CHECK(file_equals(path, second, sizeof second), "the failed write left the old content intact");
    CHECK(entries(dir) == 1, "the failed write left no temporary file");

    /* A directory that cannot take a new file: nonexistent, or read-only when not root. */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir/out.bin", dir);
    rc = fileio_write_atomic(missing, second, sizeof second, &e);
    CHECK(rc == -1 && strstr(e.msg, missing) != NULL, "writing into a missing directory fails (%s)", e.msg);
    rc = fileio_write_atomic(dir, second, sizeof second, &e);
    CHECK(rc == -1 && strstr(e.msg, "is a directory") != NULL, "a directory is not overwritten (%s)", e.msg);
    if (geteuid() != 0) {
        chmod(dir, 0555);
        rc = fileio_write_atomic(path, big, big_len, &e);
        chmod(dir, 0755);
        CHECK(rc == -1 && file_equals(path, second, sizeof second) && entries(dir) == 1,
              "a read-only directory: write fails, old file intact (%s)", e.msg);
    } else {
        printf("# running as root: the read-only-directory case is covered by RLIMIT_FSIZE above\n");
    }

    /* capped reads */
    uint8_t *buf = (uint8_t *)"sentinel";
    size_t len = 99;
    rc = fileio_read_all(path, 3, &buf, &len, &e);
    CHECK(rc == -1 && buf == NULL && len == 0 && strstr(e.msg, path) && strstr(e.msg, "limit"),
          "a file above max_bytes is refused before reading (%s)", e.msg);
    rc = fileio_read_all(path, sizeof second, &buf, &len, &e);
    CHECK(rc == 0 && len == sizeof second && memcmp(buf, second, len) == 0, "a file of exactly max_bytes is read");
    free(buf);
    char nofile[300];
    snprintf(nofile, sizeof nofile, "%s/absent.bin", dir);
    rc = fileio_read_all(nofile, 100, &buf, &len, &e);
    CHECK(rc == -1 && buf == NULL && strstr(e.msg, nofile) && strstr(e.msg, "No such file"),
          "a missing file is an error naming it (%s)", e.msg);
    rc = fileio_read_all(dir, 100, &buf, &len, &e);
    CHECK(rc == -1 && strstr(e.msg, "is a directory"), "reading a directory fails (%s)", e.msg);

    free(big);
    unlink(path);
    CHECK(rmdir(dir) == 0, "test directory removed (nothing else was left in it)");
    return check_done();
}
