/* test_maxpool.c — the vectorised 3×3 stride-2 max pooling (kern_maxpool3x3s2) against the generic
 * kern_maxpool on every ISA that has it: pads 0, 1 and 2, windows hanging past the bottom and
 * right (ceil_mode outputs), more than 16 outputs per row, row and channel strides larger than
 * the image, relu on and off, negative inputs (padding must never win). Max is exact, so the
 * outputs must be bit-identical; nothing past the output is written. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rankscope/kernels.h"

static unsigned long long rng = 0x9E3779B97F4A7C15ull;
static float urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

typedef struct shape {
    int C, H, W, pt, pl, extra_h, extra_w, rs_pad, relu, neg;
} shape;

int main(void)
{
    static const shape shapes[] = {
        {16, 32, 32, 1, 1, 0, 0, 2, 0, 0}, {3, 7, 9, 1, 1, 0, 0, 0, 1, 0},  {5, 33, 35, 0, 0, 0, 0, 3, 0, 1},
        {2, 40, 70, 2, 2, 0, 0, 0, 0, 1},  {4, 16, 16, 1, 1, 1, 1, 0, 1, 0}, {1, 3, 3, 1, 1, 0, 0, 0, 0, 1},
        {2, 5, 33, 0, 1, 1, 0, 5, 0, 1},   {3, 9, 4, 2, 0, 0, 1, 1, 1, 1},
    };
    const kern_isa isas[] = {KERN_SCALAR, KERN_AVX2, KERN_AVX512};
    int ran = 0;
    for (int k = 0; k < 3; ++k) {
        if (!kern_supported(isas[k]))
            continue;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i) {
            const shape *s = &shapes[i];
            const int rs = s->W + s->rs_pad, cs = rs * s->H + s->rs_pad;
            /* floor((H + 2p - 3) / 2) + 1 outputs, plus extra ones whose windows hang past the end */
            const int Ho = (s->H + 2 * s->pt - 3) / 2 + 1 + s->extra_h, Wo = (s->W + 2 * s->pl - 3) / 2 + 1 + s->extra_w;
            const size_t nin = (size_t)cs * s->C, nout = (size_t)s->C * Ho * Wo;
            float *in = malloc(nin * sizeof(float)), *ref = malloc(nout * sizeof(float));
            float *got = malloc((nout + 1) * sizeof(float));
            for (size_t j = 0; j < nin; ++j)
                in[j] = s->neg ? -1.0f - urand() * urand() : urand();
            kern_maxpool(s->C, s->H, s->W, rs, cs, in, Ho, Wo, 3, 3, 2, 2, 1, 1, s->pt, s->pl, s->relu, ref);
            got[nout] = 12345.0f;
            if (kern_maxpool3x3s2(isas[k], s->C, s->H, s->W, rs, cs, in, Ho, Wo, s->pt, s->pl, s->relu, got) != 0) {
                free(in), free(ref), free(got);
                continue;
            }
            ++ran;
            CHECK(memcmp(got, ref, nout * sizeof(float)) == 0 && got[nout] == 12345.0f,
                  "%s C=%d %dx%d pads %d,%d -> %dx%d relu %d: equal to kern_maxpool, nothing written past",
                  kern_isa_name(isas[k]), s->C, s->H, s->W, s->pt, s->pl, Ho, Wo, s->relu);
            free(in), free(ref), free(got);
        }
    }
    CHECK(ran > 0 || !kern_supported(KERN_AVX512), "the AVX-512 kernel ran (%d shapes)", ran);
    CHECK(kern_maxpool3x3s2(KERN_SCALAR, 1, 3, 3, 3, 9, NULL, 1, 1, 1, 1, 0, NULL) == -1,
          "the portable path has no such kernel (-1: callers use kern_maxpool)");
    return check_done();
}
