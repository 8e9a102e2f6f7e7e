/* edit_fixture.h — test-only: the kind of graph edit a factorization makes, applied through
 * model_replace_node, so tests can check that the ONNX writer handles edited models.
 * Every Conv with group 1 becomes Conv(kh×kw, C_in→r, group 2 when C_in and r allow, no bias)
 * followed by a 1×1 Conv(r→C_out, original bias); every Gemm with transB becomes Gemm(K→r, no
 * bias) followed by Gemm(r→N, original bias). New weights are seeded random, new nodes and
 * values are named "<node>_a", "<node>_b", "<node>_mid", "<node>_a.weight", "<node>_b.weight". */
#ifndef RS_EDIT_FIXTURE_H
#define RS_EDIT_FIXTURE_H

#include <stdint.h>
#include "rankscope/model.h"

/* Returns the number of nodes replaced, or -1 with e filled. Shapes are re-inferred. */
int edit_fixture_factorize(rs_model *m, uint64_t seed, rs_err *e);

#endif
