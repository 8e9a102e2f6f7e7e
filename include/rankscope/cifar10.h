/* cifar10.h — the CIFAR-10 binary format, data discovery, splits and normalisation.
 *
 * Contract:
 *  - Records are 3073 bytes: label (0..9), then 1024 R, 1024 G, 1024 B bytes (32×32 row-major).
 *    A file whose size is not a multiple of 3073, or holding a label > 9, is rejected with an
 *    error naming the file and the offending record.
 *  - A cifar10_set owns its pixel bytes (n × 3072, CHW uint8) and labels (n bytes).
 *  - Normalisation is (x/255 − 0.5)/0.5 = x/127.5 − 1, as in the reference net.
 *  - Splits: "train" = the first 45,000 training images (data_batch_1..5 in order), "val" = the
 *    last 5,000, "test" = test_batch.bin, "sample" = the class-balanced test sample in assets/.
 */
#ifndef RANKSCOPE_CIFAR10_H
#define RANKSCOPE_CIFAR10_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stddef.h>
#include <stdint.h>
#include "rankscope/common.h"

#define CIFAR10_W 32
#define CIFAR10_H 32
#define CIFAR10_C 3
#define CIFAR10_PIXELS 3072
#define CIFAR10_RECORD 3073
#define CIFAR10_CLASSES 10
#define CIFAR10_TRAIN_SPLIT 45000

typedef struct cifar10_set {
    int n;
    uint8_t *pixels; /* n × 3072, CHW */
    uint8_t *labels; /* n */
    char source[512]; /* human description, e.g. "CIFAR-10 test (/path) 10,000 images" */
} cifar10_set;

extern const char *const cifar10_class_names[CIFAR10_CLASSES]; /* plane, car, bird, ... */

cifar10_set *cifar10_alloc(int n, rs_err *e);
void cifar10_free(cifar10_set *s);

/* Read one or more batch files, concatenated in order. */
cifar10_set *cifar10_read_files(const char *const *paths, int npaths, rs_err *e);
/* Parse records from memory (for fuzzing / tests). */
cifar10_set *cifar10_parse(const uint8_t *buf, size_t len, const char *label, rs_err *e);

/* Find the data directory: explicit dir if non-NULL, then $RANKSCOPE_DATA, then
 * ~/.cache/rankscope/cifar-10-batches-bin. Returns 0 with the path in out, -1 if none holds
 * test_batch.bin (e explains what was tried). */
int cifar10_find_dir(const char *explicit_dir, char *out, size_t outlen, rs_err *e);
/* The shipped sample, located by rs_find_asset (common.h: $RANKSCOPE_ASSETS, the installed
 * datadir, then the source tree's assets/). */
int cifar10_sample_path(char *out, size_t outlen, rs_err *e);

/* Load a split: "train", "val", "test", "sample". For "test" when no full data set is found,
 * falls back to the sample and sets *fell_back = 1 (may be NULL). */
cifar10_set *cifar10_load_split(const char *data_dir, const char *split, int *fell_back, rs_err *e);

/* Normalise images [first, first+n) into out (n × 3072 floats). */
void cifar10_normalize(const cifar10_set *s, int first, int n, float *out);

#pragma GCC visibility pop
#endif
