/* test_fileio.c — atomic writes (replace, keep mode, survive a failed write with the old file
 * intact and no temporary left behind), two files written as a pair, stale temporaries swept,
 * path identity under every spelling, and capped reads. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
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


/* The disk-full stand-in: files may not grow past 4 KiB, SIGXFSZ ignored so write() fails with
 * EFBIG. full_disk(1, &saved) sets it, full_disk(0, &saved) restores. Returns 0 when set. */
typedef struct fsize_saved {
    struct rlimit lim;
    void (*handler)(int);
} fsize_saved;

static int full_disk(int on, fsize_saved *s)
{
    if (!on) {
        setrlimit(RLIMIT_FSIZE, &s->lim);
        signal(SIGXFSZ, s->handler);
        return 0;
    }
    getrlimit(RLIMIT_FSIZE, &s->lim);
    struct rlimit small = s->lim;
    small.rlim_cur = 4096;
    s->handler = signal(SIGXFSZ, SIG_IGN);
    return setrlimit(RLIMIT_FSIZE, &small);
}

static void put(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int exists_in(const char *dir, const char *name)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return lstat(p, &st) == 0;
}

/* A pid that is certainly not running: a child that has exited and been reaped. */
static long dead_pid(void)
{
    pid_t c = fork();
    if (c == 0)
        _exit(0);
    waitpid(c, NULL, 0);
    return (long)c;
}

static void test_identity(const char *dir)
{
    char d2[300], a[340], b[340];
    snprintf(d2, sizeof d2, "%s/sub", dir);
    mkdir(d2, 0755);
    put(d2, "a.plan", "fc1 svd 3\n");
    put(d2, "other", "x");
    char cwd[1024];
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = 0;
    if (chdir(d2) != 0)
        return;
    snprintf(a, sizeof a, "%s/a.plan", d2);
    CHECK(fileio_same_file("a.plan", a), "relative and absolute spelling of one file are the same");
    snprintf(b, sizeof b, "%s/../sub/./a.plan", d2);
    CHECK(fileio_same_file(b, "./a.plan"), "a \"..\" spelling is the same file");
    CHECK(symlink("a.plan", "link.plan") == 0 && fileio_same_file("link.plan", a),
          "a symbolic link to the file is the same file");
    CHECK(link("a.plan", "hard.plan") == 0 && fileio_same_file("hard.plan", "a.plan"),
          "a hard link to the file is the same file");
    CHECK(!fileio_same_file("other", "a.plan"), "two different files differ");
    /* outputs that do not exist yet: same directory (under any spelling) and same name */
    CHECK(symlink(".", "here") == 0 && fileio_same_file("here/new.onnx", "../sub/new.onnx"),
          "two spellings of one not-yet-existing file are the same");
    CHECK(!fileio_same_file("here/new.onnx", "new.plan"), "different new names differ");
    CHECK(!fileio_same_file("new.onnx", "a.plan"), "a new file differs from an existing one");
    CHECK(fileio_same_file("new.onnx/", "./new.onnx"), "a trailing slash does not hide a name");
    unlink("link.plan"), unlink("hard.plan"), unlink("here"), unlink("a.plan"), unlink("other");
    if (cwd[0] && chdir(cwd) != 0)
        printf("# cannot return to %s\n", cwd);
    rmdir(d2);
}

static void test_sweep(const char *dir)
{
    char path[300], name[128];
    snprintf(path, sizeof path, "%s/m.onnx", dir);
    long dead = dead_pid(), live = (long)getppid();
    snprintf(name, sizeof name, "m.onnx.tmp.%ld.Ab12Cd", dead);
    put(dir, name, "killed writer");
    char live_name[128];
    snprintf(live_name, sizeof live_name, "m.onnx.tmp.%ld.Ef34Gh", live);
    put(dir, live_name, "running writer");
    put(dir, "m.onnx.tmp.Old123", "legacy, old");
    put(dir, "m.onnx.tmp.New123", "legacy, fresh");
    put(dir, "m.onnx.tmp.notours", "not our naming");
    put(dir, "n.onnx.tmp.1.Ab12Cd", "another target's");
    char old_legacy[400];
    snprintf(old_legacy, sizeof old_legacy, "%s/m.onnx.tmp.Old123", dir);
    struct timespec ts[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    utimensat(AT_FDCWD, old_legacy, ts, 0);
    rs_err e = {{0}};
    int rc = fileio_write_atomic(path, "x", 1, &e);
    CHECK(rc == 0 && !exists_in(dir, name) && !exists_in(dir, "m.onnx.tmp.Old123"),
          "a write sweeps its target's stale temporaries (dead writer, hour-old legacy name)");
    CHECK(exists_in(dir, live_name) && exists_in(dir, "m.onnx.tmp.New123") &&
              exists_in(dir, "m.onnx.tmp.notours") && exists_in(dir, "n.onnx.tmp.1.Ab12Cd"),
          "... and keeps a running writer's, a fresh legacy one, other names and other targets'");
    char p[400];
    const char *rm[] = {live_name, "m.onnx.tmp.New123", "m.onnx.tmp.notours", "n.onnx.tmp.1.Ab12Cd",
                        "m.onnx"};
    for (size_t i = 0; i < sizeof rm / sizeof rm[0]; ++i) {
        snprintf(p, sizeof p, "%s/%s", dir, rm[i]);
        unlink(p);
    }
}

static void test_pair(const char *dir)
{
    char c[300], h[300];
    snprintf(c, sizeof c, "%s/model.c", dir);
    snprintf(h, sizeof h, "%s/model.h", dir);
    rs_err e = {{0}};
    int rc = fileio_write_atomic_pair(c, "C1", 2, h, "H1", 2, &e);
    CHECK(rc == 0 && file_equals(c, "C1", 2) && file_equals(h, "H1", 2), "a pair is written (%s)",
          rc ? e.msg : "ok");
    rc = fileio_write_atomic_pair(c, "C2", 2, h, "H2", 2, &e);
    CHECK(rc == 0 && file_equals(c, "C2", 2) && file_equals(h, "H2", 2) && entries(dir) == 2,
          "a pair is replaced, nothing else left (%s)", rc ? e.msg : "ok");
    /* a full disk on either file: both stay as they were, no temporary left */
    size_t big_len = 1 << 20;
    char *big = malloc(big_len);
    memset(big, 'y', big_len);
    for (int which = 0; which < 2; ++which) {
        fsize_saved saved;
        int lim_ok = full_disk(1, &saved) == 0;
        if (which == 0)
            rc = fileio_write_atomic_pair(c, big, big_len, h, "H3", 2, &e);
        else
            rc = fileio_write_atomic_pair(c, "C3", 2, h, big, big_len, &e);
        full_disk(0, &saved);
        CHECK(lim_ok && rc == -1 && file_equals(c, "C2", 2) && file_equals(h, "H2", 2) &&
                  entries(dir) == 2,
              "a full disk writing the %s file of the pair leaves both old files, no temporary (%s)",
              which ? "second" : "first", e.msg);
    }
    free(big);
    rc = fileio_write_atomic_pair(c, "C", 1, c, "C", 1, &e);
    CHECK(rc == -1 && strstr(e.msg, "same file"), "a pair naming one file twice is refused (%s)", e.msg);
    unlink(c), unlink(h);
}

static void test_killed_writer(const char *dir)
{
    /* A writer killed mid-write leaves nothing when O_TMPFILE is available (the temporary has no
     * name until the rename), and a named one that the next write sweeps otherwise. */
    char path[300];
    snprintf(path, sizeof path, "%s/big.onnx", dir);
    size_t len = (size_t)256 << 20;
    int leftovers_before = 0;
    for (int k = 0; k < 3; ++k) {
        int pfd[2];
        if (pipe(pfd) != 0)
            return;
        pid_t c = fork();
        if (c == 0) {
            close(pfd[0]);
            char *buf = calloc(1, len);
            if (write(pfd[1], "go", 2) != 2)
                _exit(1);
            rs_err e2;
            fileio_write_atomic(path, buf, len, &e2);
            _exit(0);
        }
        close(pfd[1]);
        char go[2];
        if (read(pfd[0], go, 2) != 2) {
            close(pfd[0]);
            continue;
        }
        close(pfd[0]);
        usleep(20000 * (k + 1));
        kill(c, SIGKILL);
        waitpid(c, NULL, 0);
        leftovers_before += entries(dir);
    }
    unlink(path);
    int now = entries(dir);
    rs_err e = {{0}};
    int rc = fileio_write_atomic(path, "x", 1, &e);
    CHECK(rc == 0 && entries(dir) == 1,
          "3 writers killed mid-write: %d leftover files seen (0 with O_TMPFILE), none after the "
          "next write (%d before it)", leftovers_before, now);
    unlink(path);
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
    fsize_saved saved;
    int lim_ok = full_disk(1, &saved) == 0;
    rc = fileio_write_atomic(path, big, big_len, &e);
    full_disk(0, &saved);
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
    test_identity(dir);
    test_sweep(dir);
    test_pair(dir);
    test_killed_writer(dir);
    CHECK(rmdir(dir) == 0, "test directory removed (nothing else was left in it)");
    return check_done();
}
