/* bench_ref.h — reference figures for `rankscope bench`, measured in the same run by other
 * runtimes on the same network, images and thread count: ONNX Runtime's evaluation
 * (tests/bench_ort.js under node, onnxruntime-node from tests/node_modules) and PyTorch's training
 * (tools/bench_torch_train.py under Debian's /usr/bin/python3).
 *
 * Contract:
 *  - The scripts are found in a rankscope source tree: $RANKSCOPE_SOURCE, else the tree this
 *    binary was built from. node is $RANKSCOPE_NODE or `node` on PATH; python is $RANKSCOPE_PYTHON
 *    or /usr/bin/python3. Only the CLI runs them (the engine never spawns anything).
 *  - The images are handed over exactly: the CLI writes the records it measures itself to a
 *    temporary CIFAR-10 file; the training reference also gets the graph rankscope trains (saved
 *    with BatchNormalization kept, before training).
 *  - Each function returns 0 with r filled, or -1 with r->note saying why there is no figure
 *    (the tool is missing, the script failed: its last line); never exits.
 */
#ifndef RANKSCOPE_BENCH_REF_H
#define RANKSCOPE_BENCH_REF_H

#include "rankscope/cifar10.h"
#include "rankscope/model.h"

typedef struct bench_ref {
    double seconds, seconds_median, images_per_second, accuracy;
    double cpu_seconds; /* the reference process's CPU time over the timed span (NaN: not given) */
    char runtime[96]; /* "onnxruntime-node 1.x", "torch 1.13.0 (tools/zoo_torch.py resnet20)" */
    char note[240];   /* why there is no figure */
} bench_ref;

/* No figures, with why in the note. */
void bench_ref_skip(bench_ref *r, const char *why);

/* ONNX Runtime evaluating model_path over every image of s: best and median of reps passes. */
int bench_ref_ort(const char *model_path, const cifar10_set *s, int threads, int reps, bench_ref *r);

/* PyTorch training m (the graph as rankscope trains it) for one epoch over the first n images of
 * s. */
int bench_ref_torch(const rs_model *m, const cifar10_set *s, int n, int threads, bench_ref *r);

#endif
