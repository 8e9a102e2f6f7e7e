/* passes.h — graph rewrites that turn exporter idioms into the engine's op set.
 *
 * Contract:
 *  - Both passes run on a model as read from a file, before model_infer_shapes, and return 0 or
 *    -1 with e naming the node. On failure the model may be partly rewritten: free it.
 *  - passes_simplify: Clip bounds, Pad pads, ReduceMean/ReduceSum axes and Split sizes given as
 *    constant inputs move into node fields; a constant first input of Add / Mul becomes the second;
 *    x.view(x.size(0), -1)'s Shape/Gather/Unsqueeze/Concat/Reshape becomes one Flatten; other shape
 *    computations (from Shape(x): Gather, Unsqueeze, Concat, integer Add/Sub/Mul/Div, Cast, Slice)
 *    become int64 constants, the batch size allowed only as the leading entry of a Reshape (0) or
 *    Expand (1) target; a Pad folds into its only Conv / count_include_pad AveragePool reader (or
 *    any reader when it pads nothing); unused values are removed; a Concat of k > 2 activations
 *    becomes k - 1 two-input Concats (names "<node>_cat<j>"), a Split one Slice per output
 *    ("<node>_part<j>"). A Shape/Gather/Unsqueeze/Split left over is an error naming the node.
 *  - passes_fold_batchnorm: every BatchNormalization whose input is a Conv output read by nothing
 *    else folds into that Conv's weights and bias; other BatchNormalizations stay (the engine runs
 *    them as a per-channel affine). Skip it to keep BatchNormalization nodes (training).
 */
#ifndef RANKSCOPE_PASSES_H
#define RANKSCOPE_PASSES_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include "rankscope/model.h"

int passes_simplify(rs_model *m, rs_err *e);
int passes_fold_batchnorm(rs_model *m, rs_err *e);

#pragma GCC visibility pop
#endif
