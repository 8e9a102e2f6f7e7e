/* fuzz_archive.c — libFuzzer target for unpacking a downloaded CIFAR-10 archive (fetch_unpack:
 * libarchive's gzip + tar readers under rankscope's entry checks: only the expected regular
 * files, each within its size, no duplicates, then the batch files verified). The input is the
 * archive; records per batch file is 2 so small inputs can be complete. Every call must succeed
 * or fail with a one-line message; nothing may be written outside the destination directory.
 * Built only with -Dfuzz=true. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/fetch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_archive: %s: %s\n", what, msg ? msg : "");
    abort();
}

/* Empty dest again; aborts on anything that is not a regular file (a link or a directory would
 * mean an entry escaped the checks). */
static void empty_dir(const char *dest)
{
    DIR *d = opendir(dest);
    if (!d)
        fail("opendir", dest);
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dest, de->d_name);
        struct stat st;
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode))
            fail("unpacked something that is not a regular file", p);
        unlink(p);
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char root[64], archive[96], dest[96];
    if (!root[0]) {
        snprintf(root, sizeof root, "/tmp/fuzz_archive.%ld", (long)getpid());
        snprintf(archive, sizeof archive, "%s/in.tar.gz", root);
        snprintf(dest, sizeof dest, "%s/out", root);
        mkdir(root, 0700);
        mkdir(dest, 0700);
    }
    int fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        fail("cannot write the scratch archive", archive);
    close(fd);
    rs_err e = {{0}};
    if (fetch_unpack(archive, "fuzz.tar.gz", dest, 2, &e) != 0 &&
        (!e.msg[0] || strchr(e.msg, '\n')))
        fail("error message empty or not one line", e.msg);
    empty_dir(dest);
    /* only in.tar.gz and out/ may exist beside each other */
    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "in.tar.gz") &&
            strcmp(de->d_name, "out"))
            fail("an entry was written outside the destination", de->d_name);
    if (d)
        closedir(d);
    return 0;
}
