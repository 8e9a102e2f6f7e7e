/* tool_logits.c — test support for interop.sh: run a model with rankscope's inference engine.
 * usage: tool_logits MODEL.onnx INPUT.f32 OUT.f32
 * INPUT.f32 holds n images as raw little-endian float32 (n × C·H·W, already normalised);
 * OUT.f32 receives n × classes logits in the same format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/fileio.h"
#include "rankscope/infer.h"
#include "rankscope/onnx.h"

static float le_float(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void put_le_float(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    for (int b = 0; b < 4; ++b)
        p[b] = (uint8_t)(u >> (8 * b));
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.onnx INPUT.f32 OUT.f32\n", argv[0]);
        return 2;
    }
    rs_err e = {{0}};
    int rc = 1;
    uint8_t *raw = NULL, *out_bytes = NULL;
    float *x = NULL, *y = NULL;
    infer_ctx *ctx = NULL;
    rs_model *m = onnx_load(argv[1], &e);
    if (!m || !(ctx = infer_create(m, 0, &e)))
        goto done;
    size_t len, in_f = (size_t)infer_in_features(ctx), out_f = (size_t)infer_out_features(ctx);
    if (fileio_read_all(argv[2], (size_t)1 << 30, &raw, &len, &e) != 0)
        goto done;
    if (in_f == 0 || len % (4 * in_f) != 0 || len == 0) {
        snprintf(e.msg, sizeof e.msg, "%s: %zu bytes is not a whole number of %zu-float images", argv[2],
                 len, in_f);
        goto done;
    }
    size_t n = len / (4 * in_f);
    x = malloc(len);
    y = malloc(n * out_f * sizeof *y);
    out_bytes = malloc(n * out_f * 4);
    if (!x || !y || !out_bytes) {
        snprintf(e.msg, sizeof e.msg, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n * in_f; ++i)
        x[i] = le_float(raw + 4 * i);
    if (infer_forward(ctx, x, (int)n, y, &e) != 0)
        goto done;
    for (size_t i = 0; i < n * out_f; ++i)
        put_le_float(out_bytes + 4 * i, y[i]);
    if (fileio_write_atomic(argv[3], out_bytes, n * out_f * 4, &e) != 0)
        goto done;
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "tool_logits: %s\n", e.msg);
    infer_free(ctx);
    model_free(m);
    free(raw);
    free(x);
    free(y);
    free(out_bytes);
    return rc;
}
