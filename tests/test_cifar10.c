/* test_cifar10.c — the binary reader, validation errors, splits and normalisation. */
#include "check.h"
#include "rankscope/cifar10.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static void write_file(const char *name, const void *buf, size_t len)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
}

static void make_records(uint8_t *buf, int n, int label_offset)
{
    for (int i = 0; i < n; ++i) {
        uint8_t *r = buf + (size_t)i * CIFAR10_RECORD;
        r[0] = (uint8_t)((i + label_offset) % 10);
        for (int k = 0; k < CIFAR10_PIXELS; ++k)
            r[1 + k] = (uint8_t)((i * 7 + k) & 0xff);
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rs_cifar_test_%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd) != 0)
        return 1;
    rs_err e;

    /* parse from memory */
    uint8_t *buf = malloc((size_t)30 * CIFAR10_RECORD);
    make_records(buf, 30, 0);
    cifar10_set *s = cifar10_parse(buf, (size_t)30 * CIFAR10_RECORD, "mem", &e);
    CHECK(s && s->n == 30, "30 records parsed");
    CHECK(s && s->labels[13] == 3 && s->pixels[13 * 3072 + 5] == (uint8_t)((13 * 7 + 5) & 0xff),
          "label and pixel placement");
    float px[2 * 3072];
    cifar10_normalize(s, 13, 2, px);
    CHECK_CLOSE(px[5], ((13 * 7 + 5) & 0xff) / 255.0 / 0.5 - 1.0, 1e-6, "normalisation (x/255-0.5)/0.5");
    cifar10_free(s);

    s = cifar10_parse(buf, (size_t)30 * CIFAR10_RECORD - 1, "short.bin", &e);
    CHECK(!s && strstr(e.msg, "short.bin") && strstr(e.msg, "3073"), "truncated buffer rejected: %s", e.msg);
    s = cifar10_parse(buf, 0, "empty.bin", &e);
    CHECK(!s, "empty buffer rejected: %s", e.msg);
    buf[7 * CIFAR10_RECORD] = 10;
    s = cifar10_parse(buf, (size_t)30 * CIFAR10_RECORD, "badlabel.bin", &e);
    CHECK(!s && strstr(e.msg, "record 7") && strstr(e.msg, "label 10"), "bad label names record: %s", e.msg);
    buf[7 * CIFAR10_RECORD] = 7;

    /* files: concatenation, truncation, missing */
    write_file("a.bin", buf, (size_t)10 * CIFAR10_RECORD);
    write_file("b.bin", buf + (size_t)10 * CIFAR10_RECORD, (size_t)20 * CIFAR10_RECORD);
    write_file("trunc.bin", buf, (size_t)2 * CIFAR10_RECORD + 100);
    char pa[512], pb[512], pt[512], pm[512];
    snprintf(pa, sizeof pa, "%s/a.bin", tmpdir);
    snprintf(pb, sizeof pb, "%s/b.bin", tmpdir);
    snprintf(pt, sizeof pt, "%s/trunc.bin", tmpdir);
    snprintf(pm, sizeof pm, "%s/missing.bin", tmpdir);
    const char *two[2] = {pa, pb};
    s = cifar10_read_files(two, 2, &e);
    CHECK(s && s->n == 30 && s->labels[29] == 9 && memcmp(s->pixels, buf + 1, 3072) == 0,
          "two files concatenated in order");
    cifar10_free(s);
    const char *t[1] = {pt};
    s = cifar10_read_files(t, 1, &e);
    CHECK(!s && strstr(e.msg, "trunc.bin") && strstr(e.msg, "multiple"), "truncated file: %s", e.msg);
    const char *mi[1] = {pm};
    s = cifar10_read_files(mi, 1, &e);
    CHECK(!s && strstr(e.msg, "missing.bin"), "missing file named: %s", e.msg);
    /* a bad label deep in a file reports the record index within that file */
    buf[(size_t)15 * CIFAR10_RECORD] = 200;
    write_file("b.bin", buf + (size_t)10 * CIFAR10_RECORD, (size_t)20 * CIFAR10_RECORD);
    s = cifar10_read_files(two, 2, &e);
    CHECK(!s && strstr(e.msg, "b.bin") && strstr(e.msg, "record 5 "), "bad label in 2nd file: %s", e.msg);

    /* discovery order: explicit dir > RANKSCOPE_DATA; a bad explicit dir is an error */
    char found[1024];
    CHECK(cifar10_find_dir(tmpdir, found, sizeof found, &e) == -1 && strstr(e.msg, "test_batch.bin"),
          "explicit dir without test_batch.bin refused: %s", e.msg);
    write_file("test_batch.bin", buf, (size_t)10 * CIFAR10_RECORD);
    CHECK(cifar10_find_dir(tmpdir, found, sizeof found, &e) == 0 && !strcmp(found, tmpdir), "explicit dir");
    setenv("RANKSCOPE_DATA", tmpdir, 1);
    CHECK(cifar10_find_dir(NULL, found, sizeof found, &e) == 0 && !strcmp(found, tmpdir), "RANKSCOPE_DATA");
    setenv("RANKSCOPE_DATA", "/nonexistent/dir", 1);
    CHECK(cifar10_find_dir(NULL, found, sizeof found, &e) == -1 && strstr(e.msg, "/nonexistent/dir"),
          "bad RANKSCOPE_DATA named: %s", e.msg);

    /* the shipped sample: class balanced, 200 per class, official test order */
    unsetenv("RANKSCOPE_DATA");
    setenv("HOME", tmpdir, 1); /* no ~/.cache data */
    int fell = 0;
    s = cifar10_load_split(NULL, "test", &fell, &e);
    CHECK(s && fell == 1 && s->n == 2000, "test falls back to the sample (%s)", s ? s->source : e.msg);
    if (s) {
        int cnt[10] = {0};
        for (int i = 0; i < s->n; ++i)
            cnt[s->labels[i]]++;
        int balanced = 1;
        for (int k = 0; k < 10; ++k)
            balanced &= cnt[k] == 200;
        CHECK(balanced, "sample is class-balanced");
        /* official test labels start 3,8,8,0,6,6,1,6,3,1 */
        static const uint8_t first[10] = {3, 8, 8, 0, 6, 6, 1, 6, 3, 1};
        CHECK(memcmp(s->labels, first, 10) == 0, "sample keeps official order");
        cifar10_free(s);
    }
    s = cifar10_load_split(NULL, "val", &fell, &e);
    CHECK(!s, "val without full data is an error: %s", e.msg);
    s = cifar10_load_split(NULL, "bogus", &fell, &e);
    CHECK(!s && strstr(e.msg, "bogus"), "unknown split named");

    /* the real data set, when the environment provides it (CI does) */
    const char *real = getenv("RS_TEST_CIFAR");
    if (real && *real) {
        s = cifar10_load_split(real, "val", &fell, &e);
        CHECK(s && s->n == 5000, "validation split = last 5000 training images");
        cifar10_free(s);
        s = cifar10_load_split(real, "train", &fell, &e);
        CHECK(s && s->n == 45000 && s->labels[0] == 6 && s->labels[1] == 9, "train split, data_batch_1 first");
        cifar10_free(s);
        s = cifar10_load_split(real, "test", &fell, &e);
        CHECK(s && s->n == 10000 && fell == 0 && s->labels[0] == 3, "full test set");
        cifar10_free(s);
    }

    free(buf);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        return 1;
    return check_done();
}
