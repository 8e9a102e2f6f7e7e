/* fuzz_cifar10.c — libFuzzer target for the CIFAR-10 binary reader (cifar10_parse): any byte
 * string is either a whole number of valid 3073-byte records or rejected with a one-line
 * message; the parsed set must hold exactly len/3073 images with labels 0..9. Built only with
 * -Dfuzz=true (tests/fuzz/build.sh). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/cifar10.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rs_err e = {{0}};
    cifar10_set *s = cifar10_parse(data, size, "fuzz.bin", &e);
    if (!s) {
        if (e.msg[0] == '\0' || strchr(e.msg, '\n') != NULL)
            abort();
        return 0;
    }
    if (size % CIFAR10_RECORD != 0 || (size_t)s->n != size / CIFAR10_RECORD)
        abort();
    for (int i = 0; i < s->n; ++i) {
        if (s->labels[i] > 9 || s->labels[i] != data[(size_t)i * CIFAR10_RECORD] ||
            memcmp(s->pixels + (size_t)i * CIFAR10_PIXELS, data + (size_t)i * CIFAR10_RECORD + 1,
                   CIFAR10_PIXELS) != 0)
            abort();
    }
    /* normalisation of the first image: every value in [-1, 1] */
    float px[CIFAR10_PIXELS];
    cifar10_normalize(s, 0, 1, px);
    for (int k = 0; k < CIFAR10_PIXELS; ++k)
        if (!(px[k] >= -1.0f && px[k] <= 1.0f))
            abort();
    cifar10_free(s);
    return 0;
}
