/* fuzz_checkpoint.c — libFuzzer target for training checkpoints (checkpoint_load). The input is
 * the record stream between the magic and the END record: the harness adds both, with the CRC-32
 * END carries, so the fuzzer reaches the record parsers instead of stopping at the checksum.
 * Every load must either succeed (then the model's shapes infer, its weights and momentum are
 * finite) or fail with a one-line message naming the file. Built only with -Dfuzz=true. */
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "rankscope/checkpoint.h"
#include "rankscope/guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_checkpoint: %s: %s\n", what, msg ? msg : "");
    abort();
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/fuzz_checkpoint.%ld.ckpt", (long)getpid());
    size_t len = 8 + size + 16;
    uint8_t *buf = malloc(len);
    if (!buf)
        return 0;
    memcpy(buf, "RSCKPT1\n", 8);
    if (size)
        memcpy(buf + 8, data, size);
    memcpy(buf + 8 + size, "END ", 4);
    put_le(buf + 8 + size + 4, 4, 8);
    put_le(buf + 8 + size + 12, crc32(0L, buf, (uInt)(8 + size)), 4);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
        fail("cannot write the scratch file", path);
    close(fd);
    free(buf);

    checkpoint c;
    rs_err e = {{0}};
    if (checkpoint_load(path, &c, &e) != 0) {
        if (!e.msg[0] || strchr(e.msg, '\n') || !strstr(e.msg, path))
            fail("error message empty, not one line or not naming the file", e.msg);
    } else {
        if (!c.model)
            fail("checkpoint_load", "succeeded without a model");
        if (guard_model_finite(c.model, &e) != 0)
            fail("a loaded checkpoint holds non-finite weights", e.msg);
        if (model_infer_shapes(c.model, &e) != 0)
            fail("a loaded checkpoint's model does not infer", e.msg);
        const train_options *o = &c.opts;
        if (!isfinite(o->lr) || !isfinite(o->momentum) || !isfinite(o->weight_decay) ||
            !isfinite(o->warmup) || !isfinite(o->pad_value))
            fail("a loaded checkpoint has non-finite training options", path);
    }
    checkpoint_free(&c);
    return 0;
}
