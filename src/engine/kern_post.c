/* kern_post.c — the per-channel epilogue applied to a layer's output while it is still in cache
 * (kernels.h: kern_post_apply): a per-channel affine (kept BatchNormalization), a residual
 * addend (ResNet's Add), then an activation (ReLU, clip, LeakyReLU, PRelu, HardSigmoid,
 * HardSwish). Fusing these into the producing step saves one pass over memory per op, and the
 * loops here vectorise where the generic per-op forward goes through a function pointer per
 * element.
 *
 * The loop is plain C instantiated under AVX-512, AVX2 and the baseline target so the compiler
 * vectorises it at each width; every expression is the one the unfused op evaluates (the same
 * float operations in the same order; ISO C mode keeps the compiler from contracting a·x + b
 * into an FMA), so fusing never changes a result. */
#include "rankscope/kernels.h"

#include <stddef.h>

#define KP_BODY                                                                                \
    for (int ch = 0; ch < C; ++ch) {                                                           \
        const float *xi = in + (size_t)ch * hw;                                                \
        float *x = out + (size_t)ch * hw;                                                      \
        const float *r = res ? res + (size_t)ch * hw : NULL;                                   \
        const float sc = p->scale ? p->scale[ch] : 1.0f, sh = p->shift ? p->shift[ch] : 0.0f;   \
        const float a = p->slope ? p->slope[ch] : p->alpha, b = p->beta;                       \
        const float lo = p->lo, hi = p->hi;                                                    \
        if (p->scale)                                                                          \
            for (int k = 0; k < hw; ++k)                                                       \
                x[k] = xi[k] * sc + sh;                                                        \
        else if (r)                                                                            \
            for (int k = 0; k < hw; ++k)                                                       \
                x[k] = xi[k] + r[k];                                                           \
        else if (x != xi)                                                                      \
            for (int k = 0; k < hw; ++k)                                                       \
                x[k] = xi[k];                                                                  \
        switch (p->act) {                                                                      \
        case KERN_ACT_NONE:                                                                    \
            break;                                                                             \
        case KERN_ACT_RELU:                                                                    \
            for (int k = 0; k < hw; ++k)                                                       \
                x[k] = x[k] > 0.0f ? x[k] : 0.0f;                                              \
            break;                                                                             \
        case KERN_ACT_CLIP:                                                                    \
            for (int k = 0; k < hw; ++k) {                                                     \
                float v = x[k] < lo ? lo : x[k];                                               \
                x[k] = v > hi ? hi : v;                                                        \
            }                                                                                  \
            break;                                                                             \
        case KERN_ACT_LEAKY: /* LeakyRelu and PRelu */                                         \
            for (int k = 0; k < hw; ++k)                                                       \
                x[k] = x[k] >= 0.0f ? x[k] : a * x[k];                                         \
            break;                                                                             \
        case KERN_ACT_HARDSIGMOID:                                                             \
            for (int k = 0; k < hw; ++k) {                                                     \
                float t = a * x[k] + b;                                                        \
                x[k] = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;                                  \
            }                                                                                  \
            break;                                                                             \
        case KERN_ACT_HARDSWISH:                                                               \
            for (int k = 0; k < hw; ++k) {                                                     \
                float v = x[k], t = v / 6.0f + 0.5f;                                           \
                x[k] = v * (t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t);                            \
            }                                                                                  \
            break;                                                                             \
        }                                                                                      \
    }

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f,avx2,fma"))) static void post_avx512(int C, int hw, const float *in, const float *res,
                                                                  float *out, const kern_post *p)
{
    KP_BODY
}

__attribute__((target("avx2,fma"))) static void post_avx2(int C, int hw, const float *in, const float *res,
                                                        float *out, const kern_post *p)
{
    KP_BODY
}
#endif

static void post_base(int C, int hw, const float *in, const float *res, float *out, const kern_post *p)
{
    KP_BODY
}

void kern_post_apply(kern_isa isa, int C, int hw, const float *in, const float *res, float *out,
                     const kern_post *p)
{
#if defined(__x86_64__) || defined(__i386__)
    if (isa == KERN_AVX512) {
        post_avx512(C, hw, in, res, out, p);
        return;
    }
    if (isa == KERN_AVX2) {
        post_avx2(C, hw, in, res, out, p);
        return;
    }
#endif
    (void)isa;
    post_base(C, hw, in, res, out, p);
}
