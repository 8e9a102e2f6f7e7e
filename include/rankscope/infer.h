/* infer.h — batched NCHW float32 forward pass.
 *
 * Contract:
 *  - infer_create compiles a model for execution: weights packed once, every workspace sized
 *    once for `max_batch` images per thread tile, `nthreads` workers (0 = rs_default_threads()).
 *    The context keeps a pointer to nothing in the model after creation (it copies/packs what it
 *    needs), so the model may be edited or freed afterwards; recreate the context after edits.
 *  - infer_forward: x is n × (C·H·W) normalised floats, out is n × out_features logits.
 *    infer_forward_u8: x is n × 3072 CIFAR-10 CHW bytes, normalised on the fly.
 *  - infer_create_on runs on a borrowed pool (pool.h) instead of threads of its own, so inference
 *    and training in one job share one set of threads; the pool must outlive the context.
 *  - A context is used by one caller thread at a time (runs on a shared pool are serialised).
 */
#ifndef RANKSCOPE_INFER_H
#define RANKSCOPE_INFER_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/model.h"
#include "rankscope/pool.h"

typedef struct infer_ctx infer_ctx;

infer_ctx *infer_create(const rs_model *m, int nthreads, rs_err *e);
infer_ctx *infer_create_on(const rs_model *m, rs_pool *pool, rs_err *e);
/* infer_create_on that asks progress (fraction -1, "compiling") before compiling each node:
 * non-zero cancels, *out stays NULL and RS_CANCELLED is returned with nothing held; else 0 with
 * the context in *out, or -1. The callback is not kept after the call. */
int infer_create_with(const rs_model *m, rs_pool *pool, rs_progress_fn progress, void *user, infer_ctx **out,
                      rs_err *e);
void infer_free(infer_ctx *c); /* accepts NULL */

int infer_in_features(const infer_ctx *c);  /* C·H·W of one input image */
int infer_out_features(const infer_ctx *c); /* logits per image */

int infer_forward(infer_ctx *c, const float *x, int n, float *out, rs_err *e);
int infer_forward_u8(infer_ctx *c, const uint8_t *x, int n, float *out, rs_err *e);

/* Run the model on x (n images) and copy the activations of value `value` (per-image size
 * model_value_numel) into out (n × that size). Simple and general, not the fast path: used for
 * calibration batches and tests. */
int infer_capture(const rs_model *m, const float *x, int n, int value, float *out, rs_err *e);

/* ---- additions by the inference engineer (backwards-compatible) ----------------------------
 * infer_forward_naive: textbook single-thread loops over the whole graph (bench's sanity
 * baseline; also a second opinion in tests). infer_forward_blas: the straightforward design,
 * one node at a time over the whole batch, Conv as im2col + cblas_sgemm (OpenBLAS threads). infer_isa: kernel ISA in use ("avx512", "avx2",
 * "scalar"; $RANKSCOPE_ISA caps it). infer_threads: worker count. */
int infer_forward_naive(const rs_model *m, const float *x, int n, float *out, rs_err *e);
int infer_forward_blas(const rs_model *m, const float *x, int n, float *out, rs_err *e);
const char *infer_isa(const infer_ctx *c);
int infer_threads(const infer_ctx *c);

/* ---- time per graph node (the explorer's graph view, `rankscope info --time`) -----------------
 * infer_profile compiles m as infer_create does (the same fusion) and runs n images through it on
 * ONE thread (the calling one), tile by tile, reading that thread's CPU clock
 * (CLOCK_THREAD_CPUTIME_ID, so time taken by other processes on a loaded machine is not counted)
 * around every compiled step; then runs the same images again without the per-step clocks.
 * Input: x (n × C·H·W normalised floats) or xu (n × 3072 CIFAR-10 bytes), the other NULL.
 *
 * Per node i of m (n_nodes == m->n_nodes), all times in microseconds of CPU per image:
 *  - kind[i] INFER_NODE_STEP: node i heads a compiled step; us[i] > 0 is the whole step's time,
 *    nodes fused into the step included (one kernel does them together: no honest split exists).
 *  - kind[i] INFER_NODE_FUSED: node i runs inside the step headed by node fused_into[i]
 *    (Conv → Relu/Clip → MaxPool, Conv → Add → Relu, Gemm/MatMul → Add → Relu); us[i] = 0.
 *  - kind[i] INFER_NODE_VIEW: Flatten / Reshape / Identity / Cast: the output shares the input's
 *    buffer, nothing runs; us[i] = 0.
 *  fused_into[i] = -1 unless FUSED. steps_us = the sum of us; forward_us = the plain pass
 *  (input conversion and output copy included), measured in the same call with the same clock:
 *  steps_us / forward_us is close to 1 (the clock reads add well under a microsecond per step
 *  and tile). The first tile is run once untimed first, so cold caches do not land on node 0.
 *  Nodes the op registry runs through a BLAS call are timed right only because the engine keeps
 *  OpenBLAS to one thread (rs_numeric_init).
 * progress (may be NULL) is called after every tile of both passes with the fraction done;
 * non-zero cancels. Returns 0 with *out set (free with infer_prof_free), RS_CANCELLED, or -1 with
 * e set (*out NULL then). */
typedef enum infer_node_kind { INFER_NODE_STEP, INFER_NODE_FUSED, INFER_NODE_VIEW } infer_node_kind;

typedef struct infer_prof {
    int n_nodes, n_images;
    double *us;      /* n_nodes */
    int *kind;       /* n_nodes, infer_node_kind */
    int *fused_into; /* n_nodes */
    double steps_us, forward_us;
} infer_prof;

int infer_profile(const rs_model *m, const float *x, const uint8_t *xu, int n, rs_progress_fn progress,
                  void *user, infer_prof **out, rs_err *e);
void infer_prof_free(infer_prof *p); /* accepts NULL */

#pragma GCC visibility pop
#endif
