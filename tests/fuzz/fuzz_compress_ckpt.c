/* fuzz_compress_ckpt.c — libFuzzer target for compress checkpoints (pipe_ckpt_load). The input is
 * the record stream between the magic and the END record, both added by ckpt_wrap.h. Every load
 * must either succeed (then the nets' shapes infer and their weights are finite, a fine-tuning in
 * progress has its net and train state) or fail with a one-line message naming the file. Seeds: a staged run at a stage's start and in a stage's first epoch, a replay in its
 * first stage (a 12->10 Gemm net). Built only with -Dfuzz=true. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/engine/pipe_internal.h"
#include "rankscope/guard.h"
#include "ckpt_wrap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_compress_ckpt: %s: %s\n", what, msg ? msg : "");
    abort();
}

static void net_ok(const rs_model *m, const char *what)
{
    rs_err e = {{0}};
    rs_model *c = m ? model_clone(m) : NULL;
    if (!m)
        fail(what, "missing");
    if (guard_model_finite(m, &e) != 0)
        fail(what, e.msg);
    if (c && model_infer_shapes(c, &e) != 0)
        fail(what, e.msg);
    model_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = ckpt_wrap_write("fuzz_compress_ckpt", "RSCPRS1\n", data, size);
    if (!path)
        fail("cannot write the scratch file", "/tmp");

    rs_err e = {{0}};
    pipe_ckpt *c = pipe_ckpt_load(path, &e);
    if (!c) {
        if (!e.msg[0] || strchr(e.msg, '\n') || !strstr(e.msg, path))
            fail("error message empty, not one line or not naming the file", e.msg);
        return 0;
    }
    net_ok(c->cur, "the stage's start net");
    if (c->all == NULL || c->n_rounds < 0 || c->n_rounds > PIPE_MAX_ROUNDS || (c->n_rounds && !c->rounds))
        fail("a loaded checkpoint's plan or rounds", path);
    for (int i = 0; i < c->n_rejected; ++i)
        if (!c->rejected[i])
            fail("a loaded checkpoint's rejected plans", path);
    if (c->phase != PIPE_CK_START) {
        net_ok(c->ft.w, "the net being fine-tuned");
        if (c->ft.best)
            net_ok(c->ft.best, "the best kept");
        if (!c->ft.train.perm || !c->ft.train.mom || c->ft.train.n_values != c->ft.w->n_values)
            fail("a loaded checkpoint's train state", path);
        for (int i = 0; i < c->ft.train.n; ++i)
            if (c->ft.train.perm[i] < 0 || c->ft.train.perm[i] >= c->ft.train.n)
                fail("a loaded checkpoint's shuffle order", path);
    }
    if (c->phase == PIPE_CK_EXTENSION)
        net_ok(c->ext, "the extension's net");
    char where[128];
    pipe_ckpt_where(c, where, sizeof where);
    pipe_ckpt_free(c);
    return 0;
}
