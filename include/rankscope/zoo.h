/* zoo.h — the model zoo: CIFAR-10 architectures rankscope trains itself, and the catalogue of
 * trained models shipped in assets/zoo/.
 *
 * Contract:
 *  - zoo_build returns a new, untrained model (caller frees with model_free) of a named
 *    architecture, input "input" (N,3,32,32), output "logits" (N,10), parameters named as
 *    PyTorch's state_dict names them ("layer2.0.conv1.weight", "layer2.0.bn1.running_var").
 *    Initialised as PyTorch CIFAR recipes do: convolutions Kaiming-normal (fan_out, ReLU gain),
 *    BatchNormalization γ = 1, β = 0, running mean 0 and variance 1 — except the last γ of each
 *    residual branch, 0, so every block starts as the identity — and the classifier with
 *    PyTorch's Linear default (uniform ±1/√fan_in). Same seed, same model, bit for bit.
 *  - The catalogue, assets/zoo/zoo.tsv, lists the trained models: one line per model, tab-
 *    separated fields name, file (relative to the catalogue's directory), arch, test_correct
 *    (images of the 10,000 CIFAR-10 test images `rankscope eval` classifies right, -1 if not
 *    measured), seed, epochs, train_seconds (wall time of the training command, -1 if not recorded) and command (the
 *    exact command that trained it); '#' lines are comments, the first other line is the header.
 *    zoo_catalog_read refuses malformed lines naming the file and line.
 *  - Architectures (zoo_arch_count / zoo_arch_name / zoo_arch_about list them):
 *      resnet20   He et al. 2016's CIFAR ResNet-20: 16/32/64 channels, 3 stages × 3 basic
 *                 blocks, BatchNormalization, 1×1 convolution + BN shortcuts where the shape
 *                 changes (option B); 0.27 M parameters, 41 M MACs per image.
 *      vgg        VGG-style: eight 3×3 convolutions with BatchNormalization and ReLU
 *                 (32, 32, M, 64, 64, M, 128, 128, M, 128, 128, M), 2×2 max pooling, global
 *                 average pooling, a linear classifier; 0.58 M parameters, 43 M MACs.
 *      mobilenet  MobileNet-style: a 3×3 stem (32 channels), seven depthwise separable blocks
 *                 (3×3 depthwise + BN + ReLU6, 1×1 pointwise + BN + ReLU6; 64, 128/2, 128,
 *                 256/2, 256, 256, 512/2), global average pooling, a linear head.
 */
#ifndef RANKSCOPE_ZOO_H
#define RANKSCOPE_ZOO_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/common.h"
#include "rankscope/model.h"

int zoo_arch_count(void);
const char *zoo_arch_name(int i);
const char *zoo_arch_about(int i);
rs_model *zoo_build(const char *arch, uint64_t seed, rs_err *e);

typedef struct zoo_entry {
    char name[64];
    char file[256];   /* as written in the catalogue */
    char path[4096];  /* resolved against the catalogue's directory */
    char arch[64];
    int test_correct; /* of 10,000; -1 = not measured */
    long seed, epochs;
    double train_seconds;
    char command[1024];
} zoo_entry;

/* *out is malloc'ed (free() it); *n entries. */
int zoo_catalog_read(const char *path, zoo_entry **out, int *n, rs_err *e);

#pragma GCC visibility pop
#endif
