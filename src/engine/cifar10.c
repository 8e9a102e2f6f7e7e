/* cifar10.c — reader for the official CIFAR-10 binary batches, data discovery and splits. */
#include "rankscope/cifar10.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLE_FILE "cifar10-test-sample.bin"
/* Most images a set may hold: their pixels must fit the engine's single-allocation limit, so a
 * batch file whose size promises more is refused by its size, before anything is allocated. */
#define CIFAR10_MAX_IMAGES (RS_MAX_ALLOC / CIFAR10_PIXELS)

const char *const cifar10_class_names[CIFAR10_CLASSES] = {
    "plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
};

cifar10_set *cifar10_alloc(int n, rs_err *e)
{
    if (n < 0 || (size_t)n > CIFAR10_MAX_IMAGES) {
        rs_fail(e, "cifar10: image count %d out of range 0..%zu (the %zu-byte limit)", n,
                (size_t)CIFAR10_MAX_IMAGES, (size_t)RS_MAX_ALLOC);
        return NULL;
    }
    cifar10_set *s = calloc(1, sizeof *s);
    if (!s) {
        rs_fail(e, "cifar10: out of memory");
        return NULL;
    }
    s->n = n;
    s->pixels = malloc((size_t)(n ? n : 1) * CIFAR10_PIXELS);
    s->labels = malloc((size_t)(n ? n : 1));
    if (!s->pixels || !s->labels) {
        cifar10_free(s);
        rs_fail(e, "cifar10: out of memory for %d images", n);
        return NULL;
    }
    return s;
}

void cifar10_free(cifar10_set *s)
{
    if (!s)
        return;
    free(s->pixels);
    free(s->labels);
    free(s);
}

/* Copies records into s starting at image `at`; validates labels. */
static int take_records(cifar10_set *s, int at, const uint8_t *buf, size_t nrec, size_t first_record,
                        const char *label, rs_err *e)
{
    for (size_t r = 0; r < nrec; ++r) {
        const uint8_t *rec = buf + r * CIFAR10_RECORD;
        if (rec[0] > 9)
            return rs_fail(e, "%s: record %zu (byte offset %zu) has label %u (expected 0..9)", label,
                           first_record + r, (first_record + r) * CIFAR10_RECORD, rec[0]);
        s->labels[at + (int)r] = rec[0];
        memcpy(s->pixels + (size_t)(at + (int)r) * CIFAR10_PIXELS, rec + 1, CIFAR10_PIXELS);
    }
    return 0;
}

cifar10_set *cifar10_parse(const uint8_t *buf, size_t len, const char *label, rs_err *e)
{
    if (len == 0 || len % CIFAR10_RECORD != 0) {
        rs_fail(e, "%s: size %zu bytes is not a positive multiple of the %d-byte record", label, len,
                CIFAR10_RECORD);
        return NULL;
    }
    size_t nrec = len / CIFAR10_RECORD;
    if (nrec > CIFAR10_MAX_IMAGES) {
        rs_fail(e, "%s: %zu records is too many (limit %zu)", label, nrec, (size_t)CIFAR10_MAX_IMAGES);
        return NULL;
    }
    cifar10_set *s = cifar10_alloc((int)nrec, e);
    if (!s)
        return NULL;
    if (take_records(s, 0, buf, nrec, 0, label, e) != 0) {
        cifar10_free(s);
        return NULL;
    }
    snprintf(s->source, sizeof s->source, "%s", label);
    return s;
}

static int file_size(const char *path, size_t *size, rs_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return rs_fail(e, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return rs_fail(e, "%s: not a regular file", path);
    *size = (size_t)st.st_size;
    return 0;
}

cifar10_set *cifar10_read_files(const char *const *paths, int npaths, rs_err *e)
{
    size_t total = 0;
    for (int i = 0; i < npaths; ++i) {
        size_t sz = 0;
        if (file_size(paths[i], &sz, e) != 0)
            return NULL;
        if (sz == 0 || sz % CIFAR10_RECORD != 0) {
            rs_fail(e, "%s: size %zu bytes is not a positive multiple of the %d-byte CIFAR-10 record "
                       "(truncated or not a CIFAR-10 binary batch)",
                    paths[i], sz, CIFAR10_RECORD);
            return NULL;
        }
        total += sz / CIFAR10_RECORD;
    }
    if (total > CIFAR10_MAX_IMAGES) {
        rs_fail(e, "cifar10: %zu images is too many (limit %zu)", total, (size_t)CIFAR10_MAX_IMAGES);
        return NULL;
    }
    cifar10_set *s = cifar10_alloc((int)total, e);
    if (!s)
        return NULL;
    enum { CHUNK = 1000 };
    uint8_t *buf = malloc((size_t)CHUNK * CIFAR10_RECORD);
    if (!buf) {
        cifar10_free(s);
        rs_fail(e, "cifar10: out of memory");
        return NULL;
    }
    int at = 0;
    for (int i = 0; i < npaths; ++i) {
        FILE *f = fopen(paths[i], "rb");
        if (!f) {
            rs_fail(e, "%s: %s", paths[i], strerror(errno));
            goto fail;
        }
        size_t got, in_file = 0;
        while ((got = fread(buf, CIFAR10_RECORD, CHUNK, f)) > 0) {
            if (at + (int)got > s->n) {
                fclose(f);
                rs_fail(e, "%s: file grew while reading", paths[i]);
                goto fail;
            }
            if (take_records(s, at, buf, got, in_file, paths[i], e) != 0) {
                fclose(f);
                goto fail;
            }
            at += (int)got;
            in_file += got;
        }
        int bad = ferror(f);
        fclose(f);
        if (bad) {
            rs_fail(e, "%s: read error", paths[i]);
            goto fail;
        }
    }
    if (at != s->n) {
        rs_fail(e, "cifar10: expected %d images, read %d (file changed while reading?)", s->n, at);
        goto fail;
    }
    free(buf);
    return s;
fail:
    free(buf);
    cifar10_free(s);
    return NULL;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int dir_has_test(const char *dir)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    return is_file(p);
}

int cifar10_find_dir(const char *explicit_dir, char *out, size_t outlen, rs_err *e)
{
    if (explicit_dir && *explicit_dir) {
        if (!dir_has_test(explicit_dir) && !is_file(explicit_dir))
            return rs_fail(e, "--data %s: no test_batch.bin there", explicit_dir);
        snprintf(out, outlen, "%s", explicit_dir);
        return 0;
    }
    const char *env = getenv("RANKSCOPE_DATA");
    if (env && *env) {
        if (!dir_has_test(env))
            return rs_fail(e, "RANKSCOPE_DATA=%s: no test_batch.bin there", env);
        snprintf(out, outlen, "%s", env);
        return 0;
    }
    const char *home = getenv("HOME");
    if (home && *home) {
        char p[1024];
        snprintf(p, sizeof p, "%s/.cache/rankscope/cifar-10-batches-bin", home);
        if (dir_has_test(p)) {
            snprintf(out, outlen, "%s", p);
            return 0;
        }
    }
    return rs_fail(e, "no CIFAR-10 data found (tried --data, RANKSCOPE_DATA, "
                      "~/.cache/rankscope/cifar-10-batches-bin)");
}

int cifar10_sample_path(char *out, size_t outlen, rs_err *e)
{
    if (rs_find_asset(SAMPLE_FILE, out, outlen) == 0)
        return 0;
    return rs_fail(e, "the shipped CIFAR-10 sample (%s) was not found (set RANKSCOPE_ASSETS)", SAMPLE_FILE);
}

static cifar10_set *subset(cifar10_set *all, int first, int n, rs_err *e)
{
    cifar10_set *s = cifar10_alloc(n, e);
    if (s) {
        memcpy(s->pixels, all->pixels + (size_t)first * CIFAR10_PIXELS, (size_t)n * CIFAR10_PIXELS);
        memcpy(s->labels, all->labels + first, (size_t)n);
    }
    cifar10_free(all);
    return s;
}

cifar10_set *cifar10_load_split(const char *data_dir, const char *split, int *fell_back, rs_err *e)
{
    char dir[1024], path[1100];
    if (fell_back)
        *fell_back = 0;
    int is_sample = strcmp(split, "sample") == 0;
    int is_test = strcmp(split, "test") == 0;
    int is_train = strcmp(split, "train") == 0;
    int is_val = strcmp(split, "val") == 0;
    if (!is_sample && !is_test && !is_train && !is_val) {
        rs_fail(e, "unknown split \"%s\" (expected test, val, train or sample)", split);
        return NULL;
    }
    rs_err find_err;
    int have_dir = !is_sample && cifar10_find_dir(data_dir, dir, sizeof dir, &find_err) == 0;
    if (!is_sample && !have_dir && (!is_test || (data_dir && *data_dir))) {
        /* an explicit bad --data is an error even for test; train/val need the full set */
        rs_fail(e, "%s", find_err.msg);
        return NULL;
    }
    if (is_sample || (is_test && !have_dir)) {
        if (cifar10_sample_path(path, sizeof path, e) != 0)
            return NULL;
        const char *p = path;
        cifar10_set *s = cifar10_read_files(&p, 1, e);
        if (s) {
            snprintf(s->source, sizeof s->source, "CIFAR-10 test sample (%d images)", s->n);
            if (fell_back && is_test)
                *fell_back = 1;
        }
        return s;
    }
    if (is_file(dir) && !dir_has_test(dir)) { /* --data names a single batch file */
        const char *p = dir;
        cifar10_set *s = cifar10_read_files(&p, 1, e);
        if (s)
            snprintf(s->source, sizeof s->source, "CIFAR-10 file %.400s (%d images)", dir, s->n);
        return s;
    }
    if (is_test) {
        snprintf(path, sizeof path, "%s/test_batch.bin", dir);
        const char *p = path;
        cifar10_set *s = cifar10_read_files(&p, 1, e);
        if (s)
            snprintf(s->source, sizeof s->source, "CIFAR-10 test (%d images)", s->n);
        return s;
    }
    char names[5][1100];
    const char *paths[5];
    for (int i = 0; i < 5; ++i) {
        snprintf(names[i], sizeof names[i], "%s/data_batch_%d.bin", dir, i + 1);
        paths[i] = names[i];
    }
    cifar10_set *all = cifar10_read_files(paths, 5, e);
    if (!all)
        return NULL;
    if (all->n <= CIFAR10_TRAIN_SPLIT) {
        rs_fail(e, "%s: training batches hold %d images, need more than %d for the validation split", dir,
                all->n, CIFAR10_TRAIN_SPLIT);
        cifar10_free(all);
        return NULL;
    }
    int total = all->n;
    cifar10_set *s = is_train ? subset(all, 0, CIFAR10_TRAIN_SPLIT, e)
                              : subset(all, CIFAR10_TRAIN_SPLIT, total - CIFAR10_TRAIN_SPLIT, e);
    if (s)
        snprintf(s->source, sizeof s->source, "CIFAR-10 %s (%d images)", is_train ? "train" : "validation",
                 s->n);
    return s;
}

void cifar10_normalize(const cifar10_set *s, int first, int n, float *out)
{
    const uint8_t *p = s->pixels + (size_t)first * CIFAR10_PIXELS;
    size_t total = (size_t)n * CIFAR10_PIXELS;
    for (size_t i = 0; i < total; ++i)
        out[i] = (float)p[i] / 127.5f - 1.0f;
}
