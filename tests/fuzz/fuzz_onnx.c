/* fuzz_onnx.c — libFuzzer target for the ONNX reader: any byte string must either load into a
 * model that passes its own invariants or be rejected with a one-line message; never crash,
 * leak or allocate from an unchecked declared size (libFuzzer's -malloc_limit_mb catches that).
 * A model that loads is also serialized and reloaded, since the writer sees whatever the reader
 * accepted. Built only with -Dfuzz=true (tests/fuzz/build.sh). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rs_err e = {{0}};
    rs_model *m = onnx_load_buffer(data, size, "fuzz.onnx", &e);
    if (!m) {
        /* the contract: a non-empty, one-line message */
        if (e.msg[0] == '\0' || strchr(e.msg, '\n') != NULL)
            abort();
        return 0;
    }
    if (m->input < 0 || m->input >= m->n_values || m->output < 0 || m->output >= m->n_values)
        abort();
    int64_t params, macs;
    model_totals(m, &params, &macs);
    rs_layer_info *rows = NULL;
    int nrows = 0;
    if (model_layer_table(m, &rows, &nrows, &e) == 0)
        free(rows);
    uint8_t *out = NULL;
    size_t len = 0;
    if (onnx_save_buffer(m, &out, &len, &e) == 0) {
        rs_model *back = onnx_load_buffer(out, len, "fuzz-resaved.onnx", &e);
        /* what rankscope writes, rankscope must read back */
        if (!back || back->n_nodes != m->n_nodes)
            abort();
        model_free(back);
        free(out);
    }
    model_free(m);
    return 0;
}
