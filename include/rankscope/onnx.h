/* onnx.h — read and write ONNX ModelProto files (protobuf-c code generated at build time from
 * the onnx.proto schema that Debian's libonnx-dev installs).
 *
 * Contract:
 *  - onnx_load* return a new rs_model (caller frees with model_free) or NULL with e filled.
 *    Everything is validated before allocation from declared sizes: dims must be positive and
 *    their product must fit RS_MAX_ALLOC; raw_data length must match; the graph must be acyclic
 *    with no dangling inputs; an unsupported op or attribute is an error naming node, op and
 *    attribute. Two nodes of one name are refused naming both (layers are addressed by node
 *    name); an unnamed node gets "<Op>_<position>", clear of every name the file gives. Shapes
 *    are inferred (model_infer_shapes) before returning. Non-finite weights load (info must be
 *    able to show them); guard_model_finite is the check callers apply.
 *  - Loading rewrites PyTorch export idioms into the engine's ops (opsets 11..17, see passes.h):
 *    Constant nodes become initializers, Dropout an Identity, Clip bounds / Pad pads move into
 *    node fields, a BatchNormalization read only from a Conv output folds into that Conv, a Pad
 *    folds into its only Conv / count_include_pad AveragePool reader, and x.view(x.size(0), -1)'s
 *    Shape/Gather/Unsqueeze/Concat/Reshape becomes one Flatten. The writer emits opset-13 forms
 *    (Clip / Pad operands as initializers named "<node>_min", "_max", "_pads").
 *  - onnx_save writes opset 13 (14 when the model holds HardSwish), preserving value and node
 *    names, atomically: a temporary file in the same directory, fsync, rename; an existing file
 *    is never truncated on failure. A model holding a NaN or an infinity is refused
 *    (guard_model_finite) and nothing is written.
 */
#ifndef RANKSCOPE_ONNX_H
#define RANKSCOPE_ONNX_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stddef.h>
#include <stdint.h>
#include "rankscope/model.h"

rs_model *onnx_load(const char *path, rs_err *e);
rs_model *onnx_load_buffer(const uint8_t *buf, size_t len, const char *label, rs_err *e);

/* Load flags. KEEP_BATCHNORM leaves every BatchNormalization a node of its own (training
 * learns γ, β and the running statistics; evaluation and export fold them later). */
enum { ONNX_LOAD_KEEP_BATCHNORM = 1u };
rs_model *onnx_load_ex(const char *path, unsigned flags, rs_err *e);
rs_model *onnx_load_buffer_ex(const uint8_t *buf, size_t len, const char *label, unsigned flags,
                              rs_err *e);

int onnx_save(const rs_model *m, const char *path, rs_err *e);
/* Serialize to a malloc'ed buffer (caller frees). */
int onnx_save_buffer(const rs_model *m, uint8_t **buf, size_t *len, rs_err *e);

#pragma GCC visibility pop
#endif
