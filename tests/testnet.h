/* testnet.h — test-only builders: the reference CIFAR-10 net with seeded random weights, and
 * single-layer models, built through the model.h API (no ONNX file needed). */
#ifndef RS_TESTNET_H
#define RS_TESTNET_H

#include <stdint.h>
#include "rankscope/model.h"

/* Uniform in [-1, 1), deterministic (xorshift64*). */
float testnet_rand(uint64_t *state);

/* conv1 3→6 5×5, maxpool 2, conv2 6→16 5×5, maxpool 2, flatten, fc1 400→120, fc2 120→84,
 * fc3 84→10, ReLU between; weights ~ U(-1,1)/sqrt(fan_in). Names: conv1 conv2 fc1 fc2 fc3. */
rs_model *testnet_lenet(uint64_t seed);

/* A model holding one Conv (input C×H×W) with the given attributes; bias optional. Weights
 * ~ U(-1,1)/sqrt(cin/group·kh·kw), bias ~ 0.1·U(-1,1). NULL (and a message on stderr) when the
 * shapes do not infer. testnet_conv_pads: pads top, left, bottom, right (one-sided ones too). */
rs_model *testnet_conv(int cin, int h, int w, int cout, int kh, int kw, int sh, int sw, int ph, int pw,
                       int dh, int dw, int group, int bias, uint64_t seed);
rs_model *testnet_conv_pads(int cin, int h, int w, int cout, int kh, int kw, int sh, int sw, const int pads[4],
                            int dh, int dw, int group, int bias, uint64_t seed);

/* A model holding one Gemm (in → out, transB = 1 like PyTorch Linear), bias optional. */
rs_model *testnet_gemm(int in, int out, int bias, uint64_t seed);

#endif
