/* train_internal.h — the per-op forward/backward kernels behind train.c (not a public API).
 *
 * Every kernel works on a slice of `ns` images, NCHW (or N×F) contiguous, per-image sizes from
 * the compiled tn_node. Backward kernels ACCUMULATE into input gradients (a value may feed
 * several nodes) and into the packed parameter gradient at poff[v].
 */
#ifndef RANKSCOPE_TRAIN_INTERNAL_H
#define RANKSCOPE_TRAIN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "rankscope/kernels.h"
#include "rankscope/model.h"

/* ---- random numbers: xoshiro256** seeded by splitmix64 --------------------------------------- */
typedef struct rng {
    uint64_t s[4];
} rng;

static inline uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; ++i)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform integer in [0, n) (n small; the modulo bias is < 2^-40). */
static inline uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)((rng_next(r) >> 11) % n);
}

/* Uniform double in [0, 1). */
static inline double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* A node's compile error: "train: node "NAME" (OP): why" (returns from the caller). */
#define TN_NODE_ERR(e, n, ...)                                                                 \
    do {                                                                                       \
        char why_[RS_ERR_LEN];                                                                 \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                             \
        return rs_fail(e, "train: node \"%s\" (%s): %s", (n)->name, model_op_name((n)->op), why_); \
    } while (0)

/* The data-movement loops (im2col, col2im, BatchNormalization, activation gradients) are a third
 * of a training step; wider vectors than the baseline's SSE2 pay there, chosen at load time. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && defined(__ELF__)
#define TN_VEC __attribute__((target_clones("avx2", "default")))
#else
#define TN_VEC
#endif

/* Rows are short (8–32 floats): inline vector copies beat a memcpy call per row, into which GCC
 * turns a plain copy loop unless told not to (measured: the calls were 5 % of a ResNet-20 step). */
#if defined(__GNUC__) && !defined(__clang__)
#define TN_NO_MEMCPY __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define TN_NO_MEMCPY
#endif

static inline size_t tn_round_up(size_t n, size_t q)
{
    return (n + q - 1) / q * q;
}

typedef struct tn_node {
    int node;           /* index into m->nodes */
    rs_op op;
    int x, x2, y;       /* activation input, second activation input (Add) or -1, output */
    int param[3];       /* [0] weight (decays), [1] bias, [2] unused; -1 when absent */
    int64_t xsz, ysz;   /* per-image element counts of x and y */
    /* Conv / MaxPool geometry */
    int cin, ih, iw, cout, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw, group;
    int chunk;          /* images per conv GEMM (widens N for small feature maps) */
    kern_isa isa;       /* kernel ISA for the conv GEMMs */
    kern_isa isa_dw;    /* ISA for the weight-gradient GEMM (N = Cout/g, padded to its lanes) */
    int coutpad;        /* Cout/g rounded up to isa_dw's vector width */
    int wino;           /* TN_WINO_* bits: passes of a 3×3 stride-1 conv run by kern_wino3x3 */
    /* Gemm / MatMul / Add */
    int K, N, bias_n;
    float alpha, beta;
    int trans_b;
    size_t col_floats;  /* conv workspace floats this node needs */
    size_t boff_ints;   /* conv row-offset ints this node needs */
    size_t pidx_ints;   /* argmax ints per image (MaxPool) */
    size_t pidx_off;    /* offset of this node's argmax block (per image × slice) */
    size_t bn_off;      /* BatchNormalization: offset of its statistics in tn_scratch.bn_stats */
    /* BatchNormalization, or Add of two activations, whose output only a ReLU or Clip reads: that
     * activation is applied in the same pass (act TN_ACT_*, into value act_y; Clip's bounds in
     * alpha, beta), and its mask taken in the backward (BatchNormalization: from x·scale + shift;
     * Add: from act_y); the activation's own node is `fused` (not run). The activations' memory
     * passes were a sixth of a ResNet step, and the arrays are far beyond L2. */
    int act, act_y, fused;
    /* Conv whose output only a BatchNormalization reads (stats_node: that model node): in training
     * mode it takes the BatchNormalization's moments of each image while the image's output is
     * still in cache (tn_scratch.bn_sums at sum_off, 2 doubles a channel: the same sums in the same
     * order), and that BatchNormalization (pre_stats) does not read its input again for them. */
    int stats, stats_node, pre_stats;
    size_t sum_off;
    /* BatchNormalization without activation whose output only an Add of two activations reads
     * (into_add): it takes its statistics but does not write its output; that Add (add_bn) applies
     * the scale and shift to the BatchNormalization's input (values add_bn_x → add_bn_y, statistics at
     * add_bn_off, add_bn_c channels of add_bn_k values) in its own pass, with the unfused ops'
     * arithmetic (the same bits). The Add's backward does not read that output, the
     * BatchNormalization's reads its input: one write and one read of the array saved. */
    int into_add, add_bn, add_bn_x, add_bn_y, add_bn_c, add_bn_k;
    size_t add_bn_off;
    /* This node's backward is the first to reach the gradient of its x (x_first) or of an Add's
     * x2 (x2_first), a value other nodes read too or the Add's second input: it writes that
     * gradient, the later readers add to it, and the buffer is not zeroed (train.c mark_first_writers;
     * tn_scratch.fresh 2). */
    int x_first, x2_first;
} tn_node;

/* train_net_create flag (tests): no BatchNormalization → Add fusion (tn_fuse_bn_add). */
#define TN_NET_NO_BN_ADD 0x100
/* train_net_create flag (tests): a gradient buffer per value (train.c plan_grads shares them). */
#define TN_NET_NO_GRAD_SHARE 0x200
/* train_net_create flag (tests): gradients read by several nodes are zeroed and added to by all
 * (no tn_node.x_first / x2_first). */
#define TN_NET_NO_FIRST_WRITE 0x400

enum { TN_ACT_NONE = 0, TN_ACT_RELU = 1, TN_ACT_CLIP = 2 };
/* TN_WINO_F4: those passes by F(4×4, 3×3) (kern_wino4) instead of F(2×2, 3×3) */
enum { TN_WINO_FWD = 1, TN_WINO_DX = 2, TN_WINO_DW = 4, TN_WINO_F4 = 8 };

/* Sums buf[0..len) over every worker taking part in the batch, in worker order, so that each
 * worker gets the same bits back (BatchNormalization's batch statistics span the whole batch,
 * not one worker's slice). Every taking-part worker must make the same sequence of calls. */
typedef void (*tn_reduce_fn)(void *ctx, double *buf, int len);

/* Floats a BatchNormalization node keeps per forward: mean, 1/√(var+ε), biased var (C each),
 * the element count M behind them, then the scale and shift applied (C each: a fused
 * activation's backward recomputes its mask from them bit for bit), then room for the
 * backward's three coefficients of each channel (3·C). */
#define TN_BN_STATS(c) (8 * (size_t)(c) + 1)

/* Per-thread scratch shared by all nodes (sized by the largest col_floats / boff_ints). */
typedef struct tn_scratch {
    float *col;
    int *boff;
    int32_t *pidx;
    int bn_batch;        /* 1: BatchNormalization uses batch statistics (training), 0: running */
    float *bn_stats;     /* statistics of every BatchNormalization node of the last forward */
    double *bn_sums;     /* moments a convolution took for the BatchNormalization after it */
    double *bn_red;      /* reduction buffer, 2·C + 1 doubles of the widest BatchNormalization */
    tn_reduce_fn reduce; /* NULL: this worker holds the whole batch */
    void *reduce_ctx;
    /* per value, or NULL: nonzero when its gradient buffer is not zeroed before the backward pass
     * (1: its one reader's backward writes dx instead of adding to it: tn_fresh_ok; 2: the first
     * backward to reach it writes it: tn_node.x_first / x2_first) */
    const uint8_t *fresh;
} tn_scratch;

int tn_compile(const rs_model *m, int node, kern_isa isa, tn_node *t, rs_err *e);

/* One node's forward or backward pass over ns images (tn_forward / tn_backward fill it; the
 * forward leaves the gradient members NULL). */
typedef struct tn_pass {
    const tn_node *t;
    rs_model *m;
    float **act;
    int ns;
    const tn_scratch *s;
    size_t total;          /* ns · the output's per-image size */
    const float *x;        /* act[t->x] */
    float *y;              /* act[t->y] */
    float **grad;          /* backward: gradient of each value (accumulated into) */
    const uint8_t *need, *is_param;
    const size_t *poff;
    float *pgrad;
    const float *dy;
    float *dx, *dw, *db;   /* NULL where no gradient is wanted */
    int dx_fresh;          /* dx holds garbage: write it, do not add to it */
} tn_pass;

/* The per-op tape entries and passes the registry rows name (rs_op_desc.train_compile,
 * train_forward, train_backward; grad.c). NULL forward: a copy; NULL backward: dx += dy. */
int grad_compile_add(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_avgpool(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_batchnorm(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_clip(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_conv(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_dense(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_reducemean(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_same(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
void grad_fwd_add(const tn_pass *p);
void grad_fwd_avgpool(const tn_pass *p);
void grad_fwd_batchnorm(const tn_pass *p);
void grad_fwd_clip(const tn_pass *p);
void grad_fwd_conv(const tn_pass *p);
void grad_fwd_dense(const tn_pass *p);
void grad_fwd_maxpool(const tn_pass *p);
void grad_fwd_relu(const tn_pass *p);
void grad_bwd_add(const tn_pass *p);
void grad_bwd_avgpool(const tn_pass *p);
void grad_bwd_batchnorm(const tn_pass *p);
void grad_bwd_clip(const tn_pass *p);
void grad_bwd_conv(const tn_pass *p);
void grad_bwd_dense(const tn_pass *p);
void grad_bwd_maxpool(const tn_pass *p);
void grad_bwd_relu(const tn_pass *p);
/* grad_elem.c: the element-wise and layout ops */
int grad_compile_unary(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_concat(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_binary(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_prelu(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
int grad_compile_strided(const rs_model *m, const rs_node *n, tn_node *t, rs_err *e);
void grad_fwd_unary(const tn_pass *p);
void grad_fwd_concat(const tn_pass *p);
void grad_fwd_binary(const tn_pass *p);
void grad_fwd_strided(const tn_pass *p);
void grad_bwd_unary(const tn_pass *p);
void grad_bwd_concat(const tn_pass *p);
void grad_bwd_binary(const tn_pass *p);
void grad_bwd_strided(const tn_pass *p);
void tn_forward(const tn_node *t, rs_model *m, float **act, int ns, const tn_scratch *s);
/* Fuses into each BatchNormalization or two-activation Add the ReLU or Clip that alone reads its
 * output (tn_node.act); uses[v]: the number of nodes reading value v (+1 for the graph output). */
void tn_fuse_activations(tn_node *tn, int n_tn, const int *uses);
/* Marks each Conv whose output only a BatchNormalization reads to take its moments (tn_node.stats);
 * every BatchNormalization's sum_off must be set. */
void tn_fuse_statistics(tn_node *tn, int n_tn, const int *uses);
/* Marks each BatchNormalization without activation whose output only a two-activation Add reads
 * (into_add) and that Add (add_bn); after tn_fuse_activations. */
void tn_fuse_bn_add(tn_node *tn, int n_tn, const int *uses);
/* Adds to sums[2c], sums[2c + 1] the moments Σ(x − shift[c]) and Σ(x − shift[c])² of channel c of
 * ns images (C channels of K values each, images xsz apart), images in order. */
void tn_bn_moments(const float *x, int ns, size_t xsz, int C, int K, const float *shift, double *sums);
/* Whether op's backward can write its first input's gradient (tn_pass.dx_fresh) instead of
 * accumulating into a zeroed buffer. */
int tn_fresh_ok(rs_op op);
void tn_backward(const tn_node *t, rs_model *m, float **act, float **grad, const uint8_t *need,
                 const uint8_t *is_param, const size_t *poff, float *pgrad, int ns,
                 const tn_scratch *s);

/* grad_phase.c: convolutions with a stride above 1 (unit dilation, not depthwise) over polyphase
 * planes, no im2col. tn_phase_floats / tn_phase_ints: the workspace (tn_scratch.col, .boff) of any
 * pass. tn_phase_forward: y = the conv of one image (first: the first image of the call, which
 * lays out the workspace). tn_phase_backward: dW += the weight gradient of ns images (dw not
 * NULL), dx = (dx_add: +=) their input gradient (dx not NULL). */
int tn_phase_ok(const tn_node *t);
/* dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols (grad_conv.c: 8 × 8 blocks in registers) */
void tn_transpose(const float *src, size_t lds, int rows, int cols, float *dst, size_t ldd);
size_t tn_phase_floats(const tn_node *t);
size_t tn_phase_ints(const tn_node *t);
void tn_phase_forward(const tn_node *t, const float *w, const float *b, const float *x, float *y, int first,
                      float *ws, int *boff);
void tn_phase_backward(const tn_node *t, const float *w, const float *x, const float *dy, float *dx, int dx_add,
                       float *dw, int ns, float *ws, int *boff);

/* Mean-free softmax cross-entropy (optionally distilled) over ns rows of C logits: adds the
 * summed loss to *loss and the argmax hits to *correct; dz (may be NULL) = scale · dLoss/dz. */
void tn_softmax_ce(const float *z, const uint8_t *labels, const float *teacher, float alpha,
                   float temp, int ns, int C, float scale, float *dz, double *loss, int *correct);

/* One image, crop offset (oy, ox) relative to the unpadded image, optional horizontal flip
 * (applied after the crop, as torchvision does): out[c][y][x] = src[c][y+oy][x'+ox] with
 * x' = flip ? w−1−x : x, and the padding value outside the image. Bytes pad with raw 0 (−1
 * after normalisation x/127.5 − 1). */
void tn_augment_u8(const uint8_t *src, int c, int h, int w, int oy, int ox, int flip, float *out);
void tn_augment_f32(const float *src, int c, int h, int w, int oy, int ox, int flip, float pad_value,
                    float *out);

#endif
