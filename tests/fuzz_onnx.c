/* fuzz_onnx.c — libFuzzer target for the ONNX reader (issue 7): any input must be rejected cleanly
 * or load into a model that the writer serializes and the reader loads back with the same graph.
 * Build (clang): clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -I<build dir> \
 *   tests/fuzz_onnx.c src/engine/{onnx,fileio,model,common}.c <build dir>/onnx.pb-c.c \
 *   -lprotobuf-c -lgsl -lm -o fuzz_onnx
 * Run: ./fuzz_onnx -max_len=32768 -timeout=10 CORPUS_DIR tests/data   (seeds: tests/data/*.onnx) */
#include <stdlib.h>
#include <string.h>

#include "rankscope/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rs_err e;
    rs_model *m = onnx_load_buffer(data, size, "fuzz", &e);
    if (!m)
        return 0;
    uint8_t *buf;
    size_t len;
    if (onnx_save_buffer(m, &buf, &len, &e) != 0)
        abort(); /* a loaded model must always be writable */
    rs_model *r = onnx_load_buffer(buf, len, "fuzz-resaved", &e);
    if (!r || r->n_nodes != m->n_nodes || r->n_values > m->n_values)
        abort(); /* and what rankscope writes, rankscope reads */
    model_free(r);
    free(buf);
    model_free(m);
    return 0;
}
