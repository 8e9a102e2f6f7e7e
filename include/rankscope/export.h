/* export.h — a model as dependency-free C99 source for microcontrollers.
 *
 * Contract:
 *  - export_c_generate turns a (possibly factorized) model into two C99 texts: a header (model.h)
 *    and a source (model.c). The source holds every weight as a `static const float` array (or,
 *    with int8, `static const signed char` weights plus `static const float` per-output-channel
 *    scales) and one entry point
 *        void model_forward(const float *in, float *out, float *scratch);
 *    for ONE image: `in` is MODEL_INPUT_FLOATS normalised floats (C·H·W), `out` receives
 *    MODEL_OUTPUT_FLOATS logits, `scratch` is caller memory of MODEL_SCRATCH_FLOATS floats
 *    (no alignment needed beyond float's). No malloc, no libm, no globals written; re-entrant.
 *  - Supported ops: Conv (groups / depthwise, pads, strides, dilations, optional bias),
 *    Gemm (transB, alpha, beta, bias of N or 1 values) and MatMul with a constant B, Add (a
 *    broadcast constant or two activations), Relu, MaxPool, Flatten / Reshape / Identity
 *    (aliases: no code, no copy). Anything else is an error naming the node and op.
 *  - Scratch: every activation lives in `scratch` at an offset chosen by liveness (first-fit on
 *    [producer, last reader] intervals, largest first); element-wise ops (Relu, Add) run in place
 *    when their input dies there; the graph output is computed straight into `out`.
 *  - int8 (opts->int8): post-training, symmetric, per output channel: scale_c = max|w_c| / 127,
 *    q = round(w / scale_c) clamped to [-127, 127] (scale_c = 0 and q = 0 for an all-zero channel).
 *    Only Conv W and Gemm / MatMul B are quantized; biases and activations stay float. The
 *    generated code computes with w = (float)q · scale_c, exactly the weights of
 *    export_c_dequantize's model, so rankscope's inference of that model predicts the C code.
 *  - Costs (export_c_stats): weight_bytes ("flash") = bytes of every emitted constant array;
 *    scratch_bytes ("RAM") = 4 · MODEL_SCRATCH_FLOATS (the input and output buffers are the
 *    caller's and not counted).
 *  - Texts are malloc'ed (caller frees). export_c_write writes DIR/model.h and DIR/model.c as
 *    one atomic pair (fileio_write_atomic_pair: both new or both as before); DIR must exist.
 */
#ifndef RANKSCOPE_EXPORT_H
#define RANKSCOPE_EXPORT_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/common.h"
#include "rankscope/model.h"

typedef struct export_c_opts {
    int int8; /* per-output-channel int8 weights with float scales */
} export_c_opts;

typedef struct export_c_stats {
    int64_t weight_bytes;   /* flash: all constant arrays */
    int64_t scratch_floats; /* MODEL_SCRATCH_FLOATS */
    int64_t scratch_bytes;  /* RAM: 4 · scratch_floats */
    int64_t input_floats, output_floats;
    int64_t params;         /* weight elements emitted (quantized or not) */
    int n_ops;              /* calls emitted in model_forward */
} export_c_stats;

/* opts and stats may be NULL. */
int export_c_generate(const rs_model *m, const export_c_opts *opts, char **header, char **source,
                      export_c_stats *stats, rs_err *e);
int export_c_write(const rs_model *m, const char *dir, const export_c_opts *opts,
                   export_c_stats *stats, rs_err *e);

/* A deep copy of m whose Conv / Gemm / MatMul weights are replaced by their int8 round trip
 * (q · scale, per output channel, as above): the model the --int8 C code computes. NULL on error. */
rs_model *export_c_dequantize(const rs_model *m, rs_err *e);

#pragma GCC visibility pop
#endif
