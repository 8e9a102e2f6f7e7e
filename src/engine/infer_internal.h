/* infer_internal.h — the compiled form of a model shared by the compiler (infer_compile.c), the
 * tiled executor (infer_run.c) and the per-image ops both executors use (infer_ops.c).
 *
 * Contract:
 *  - infer_compile fills c->steps, the slot plan and the scratch sizes from m (fusing unless
 *    c->nofuse; keeping value c->result_v alive when >= 0); 0, or -1 with e set.
 *  - infer_ctx_new compiles and sizes one worker per thread of its pool (its own, or a borrowed
 *    one); infer_run_job runs n images through it on that pool.
 *  - infer_alloc_floats returns zeroed 64-byte aligned memory (free with free()).
 */
#ifndef RANKSCOPE_INFER_INTERNAL_H
#define RANKSCOPE_INFER_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rankscope/infer.h"
#include "rankscope/kernels.h"
#include "rankscope/pool.h"

typedef enum step_kind {
    ST_CONV, ST_GEMM, ST_RELU, ST_MAXPOOL, ST_ADD, ST_ADD2, ST_ALIAS,
    /* per-channel affine (kept BatchNormalization), average pooling (also global), Clip,
     * Sigmoid, Softmax (per image over the features), zero Pad, Concat of two inputs */
    ST_AFFINE, ST_AVGPOOL, ST_CLIP, ST_SIGMOID, ST_SOFTMAX, ST_PAD, ST_CONCAT,
    /* LeakyRelu, PRelu (per-channel slopes), HardSigmoid, HardSwish not fused into a conv:
     * kern_post_apply per image (C channels of K floats) */
    ST_POST,
    /* any other op: its registry forward (rankscope/ops.h) on a one-node copy of the graph */
    ST_OP
} step_kind;

typedef struct pool_geom {
    int kh, kw, sh, sw, dh, dw, pt, pl;
    int Ho, Wo; /* pooled output */
} pool_geom;

typedef struct infer_step {
    step_kind kind;
    char *name;
    int node; /* the model node the step was built from (nodes fused into it come after it) */
    int in_slot, out_slot;
    int in2_slot; /* ST_ADD2: the second addend */
    int in_numel, out_numel; /* floats per image */
    int relu;
    /* Conv */
    int C, H, W, M, G, kh, kw, sh, sw, dh, dw, pt, pl, Ho, Wo;
    int Hp, Wp, padded, wide;
    /* strided Conv on the polyphase grid: the padded input split into sh·sw phase planes of
     * Hq × Wq (kern_phase_split into the pad buffer; phase_mask: the phases some tap reads) */
    int phases, Hq, Wq;
    unsigned phase_mask;
    /* Conv by kern_conv_cv: weights transposed (K × cv_ld), bias padded, pixel lists (npix
     * real ones, padded to 24) */
    int cv, cv_ld, npix;
    float *cv_w, *cv_bias;
    int *cv_coff, *cv_opos;
    int K;           /* (C/G)·kh·kw */
    int ncols;       /* output columns per image, rounded up to the vector width */
    int row_stride;  /* of the kernel output: Wp (wide) or Wo (im2col) */
    size_t gstride;  /* B offset between groups */
    size_t pad_floats, col_floats;
    int has_pool;
    pool_geom pool;
    /* Gemm (C = A·B + bias): K above, N outputs, B packed (K × Npad) */
    int N, Npad;
    float *w;    /* Conv: (M, K) weights; Gemm: packed B */
    float *bias; /* Conv: M (or NULL); Gemm: Npad (or NULL) */
    int *boff;   /* K row offsets into B */
    float *addc; /* Add: the constant broadcast to one image (in_numel) */
    /* Clip bounds; AveragePool end pads and count_include_pad; Pad's end pads.
     * ST_AFFINE keeps scale in w and shift in bias (C each, K = H·W per channel);
     * ST_CONCAT's second input has N floats per image. */
    float lo, hi;
    int pb, pr, count_pad;
    int clip; /* ST_CONV: a fused Clip (lo, hi) applied to the kernel output (ReLU6) */
    /* ST_CONV: 3×3 stride 1 by Winograd F(2×2, 3×3) (kern_wino3x3): transformed weights,
     * scratch in the step's pad buffer from wino_off (the direct kernels, kept for tiles too small
     * for it, use the part before) */
    int wino;
    size_t wino_off;
    float *wino_u;
    int depthwise; /* ST_CONV: depthwise 3×3, run by kern_dw3x3 (scratch in the step's pad buffer) */
    /* ST_CONV: an epilogue on each image's output (residual Add from in2_slot when post_res,
     * then an activation); ST_AFFINE: its activation (post.scale/shift point at w and bias) */
    int has_post, post_res;
    kern_post post;
    float *post_slope; /* PRelu's per-channel slopes (M) */
    rs_model *op; /* ST_OP: the node (nodes[0]), its inputs and output, constants copied */
} step;

/* infer_compile.c: what the step builders share; the steps the registry rows name
 * (rs_op_desc.compile) build node ni, reading activation vin, into s and return the value it
 * writes, or -1 with e set. */
typedef struct infer_build {
    const rs_model *m;
    int *fused;       /* node already folded into an earlier step */
    int *step_in_v;   /* value read by each step */
    int *step_out_v;  /* value written by each step */
    int *step_in2_v;  /* second activation read (ST_ADD2) or -1 */
    int cur;          /* index of the step being built */
} infer_build;
int infer_compile_add(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_alias(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_avgpool(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_batchnorm(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_concat(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_conv(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_dense(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_elementwise(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_act(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_maxpool(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_pad(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_reducemean(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);
int infer_compile_relu(infer_ctx *c, infer_build *b, int ni, int vin, step *s, rs_err *e);

typedef struct worker {
    struct infer_ctx *ctx;
    int id;
    float **slots;
    float **pads;  /* per step: zero-bordered padded input (NULL if unused) */
    float *cbuf;   /* kernel output scratch */
    float *col;    /* im2col scratch */
} worker;

struct infer_ctx {
    kern_isa isa;
    int vl;
    int tile;
    int nthreads;
    int in_features, out_features;
    int n_steps;
    step *steps;
    int n_slots;
    size_t *slot_floats; /* per image */
    size_t slack;        /* floats after every buffer that kernels may read */
    int in_slot, out_slot;
    size_t cbuf_floats, col_floats;
    /* infer_capture: no fusion, and the result is value `result_v` instead of the output */
    int nofuse;
    int result_v;          /* -1: the graph output */
    int result_slot, result_numel;
    worker *workers;
    rs_pool *pool;
    int own_pool; /* made by infer_ctx_new (freed with the context) rather than borrowed */
    /* infer_create_with: asked between nodes while compiling; non-zero cancels */
    rs_progress_fn progress;
    void *user;
    /* the job */
    const float *job_xf;
    const uint8_t *job_xu;
    float *job_out;
    int job_n;
    atomic_int next_tile;
};

void *infer_alloc_floats(size_t n);
void infer_step_free(step *s);
int infer_compile(infer_ctx *c, const rs_model *m, rs_err *e);
/* RS_CANCELLED (e says so) when the caller of infer_create_with asks to stop, else 0. */
int infer_cancelled(const infer_ctx *c, rs_err *e);
/* pool NULL: a pool of nthreads of its own; else the borrowed pool (nthreads ignored). */
infer_ctx *infer_ctx_new(const rs_model *m, rs_pool *pool, int nthreads, int nofuse, int result_v,
                         rs_err *e);
int infer_run_job(infer_ctx *c, const float *xf, const uint8_t *xu, int n, float *out, rs_err *e);
/* The forward pass of one tile, in parts (infer_profile.c times the steps one by one):
 * infer_load_tile puts images first..first+nt-1 of xf (floats) or xu (CIFAR-10 bytes, normalised
 * on the way; exactly one is non-NULL) into worker w's input slot; infer_run_step runs step si on
 * them; infer_run_tile does all of it and copies the nt results to out. */
void infer_load_tile(const infer_ctx *c, worker *w, const float *xf, const uint8_t *xu, int first, int nt);
void infer_run_step(const infer_ctx *c, worker *w, int si, int nt);
void infer_run_tile(const infer_ctx *c, worker *w, const float *xf, const uint8_t *xu, int first, int nt, float *out);

/* One image at a time, CHW layout. */
void infer_op_affine(int C, int hw, const float *scale, const float *shift, const float *in,
                     float *out);
void infer_op_avgpool(int C, int H, int W, const pool_geom *p, int pb, int pr, int count_pad,
                      const float *in, float *out);
void infer_op_pad(int C, int H, int W, int pt, int pl, int Ho, int Wo, const float *in, float *out);
void infer_op_softmax(int n, const float *in, float *out);
/* BatchNormalization's scale and shift per channel (C floats each, malloc'ed). */
int infer_bn_affine(const rs_model *m, const rs_node *n, int C, float **scale, float **shift,
                    rs_err *e);
void infer_pool_geom(const rs_node *n, int Ho, int Wo, pool_geom *p);

#endif
