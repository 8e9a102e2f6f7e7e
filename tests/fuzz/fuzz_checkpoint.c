/* fuzz_checkpoint.c — libFuzzer target for training checkpoints (checkpoint_load). The input is
 * the record stream between the magic and the END record, both added by ckpt_wrap.h. Every load
 * must either succeed (then the model's shapes infer, its weights and momentum are finite) or fail
 * with a one-line message naming the file. Built only with -Dfuzz=true. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/checkpoint.h"
#include "rankscope/guard.h"
#include "ckpt_wrap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_checkpoint: %s: %s\n", what, msg ? msg : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = ckpt_wrap_write("fuzz_checkpoint", "RSCKPT1\n", data, size);
    if (!path)
        fail("cannot write the scratch file", "/tmp");

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
