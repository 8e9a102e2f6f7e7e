/* test_phase.c — kern_phase_split (the polyphase split of a strided conv's padded input) on every
 * ISA this CPU runs, against its definition written out here: padded sample (py, px) at
 * out[((c·sh + py % sh)·sw + px % sw)·Hq·Wq + (py / sh)·Wq + px / sw] for the phases in mask.
 * Strides 2×2, 2×1, 1×2 and 3×3, pads 0-3, widths 1..70 (the vector path handles 32 columns a
 * pass and masks the tail), masks with phases left out (their planes must stay untouched), several
 * channels. A copy is exact: outputs must be bit-identical, and the 64 floats after the planes
 * untouched. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rankscope/kernels.h"

typedef struct shape {
    int C, H, W, sh, sw, pt, pl, pb, pr;
    unsigned mask; /* 0: every phase */
} shape;

static void run(kern_isa isa, const shape *p)
{
    const int Hp = p->H + p->pt + p->pb, Wp = p->W + p->pl + p->pr;
    const int Hq = (Hp + p->sh - 1) / p->sh, Wq = (Wp + p->sw - 1) / p->sw, nph = p->sh * p->sw;
    const unsigned mask = p->mask ? p->mask : (1u << nph) - 1;
    const size_t plane = (size_t)Hq * Wq, n = (size_t)p->C * nph * plane;
    float *in = malloc((size_t)p->C * p->H * p->W * sizeof(float));
    float *got = malloc((n + 64) * sizeof(float)), *want = malloc((n + 64) * sizeof(float));
    for (int i = 0; i < p->C * p->H * p->W; ++i)
        in[i] = (float)i + 0.5f;
    for (size_t i = 0; i < n + 64; ++i)
        got[i] = want[i] = -1.0f;
    for (int c = 0; c < p->C; ++c)
        for (int y = 0; y < p->H; ++y)
            for (int x = 0; x < p->W; ++x) {
                const int py = y + p->pt, px = x + p->pl, ph = py % p->sh * p->sw + px % p->sw;
                if (mask >> ph & 1u)
                    want[(size_t)(c * nph + ph) * plane + (size_t)(py / p->sh) * Wq + px / p->sw] =
                        in[((size_t)c * p->H + y) * p->W + x];
            }
    kern_phase_split(isa, p->C, p->H, p->W, in, p->sh, p->sw, p->pt, p->pl, Hq, Wq, mask, got);
    CHECK(memcmp(got, want, (n + 64) * sizeof(float)) == 0,
          "%s C=%d %dx%d stride %dx%d pads %d,%d,%d,%d mask 0x%x: every sample in its phase plane, nothing else written",
          kern_isa_name(isa), p->C, p->H, p->W, p->sh, p->sw, p->pt, p->pl, p->pb, p->pr, mask);
    free(in), free(got), free(want);
}

int main(void)
{
    static const shape shapes[] = {
        {3, 32, 32, 2, 2, 1, 1, 1, 1, 0},  {2, 16, 16, 2, 2, 0, 0, 0, 0, 0},  {2, 16, 16, 2, 2, 1, 1, 0, 0, 0},
        {1, 7, 9, 2, 2, 1, 1, 1, 1, 0},    {4, 5, 1, 2, 2, 1, 1, 1, 1, 0},    {1, 3, 70, 2, 2, 2, 3, 1, 0, 0},
        {2, 9, 33, 2, 2, 3, 2, 0, 1, 0},   {1, 4, 31, 2, 2, 1, 0, 1, 1, 0},   {2, 8, 48, 2, 2, 1, 1, 1, 1, 0x1},
        {2, 8, 48, 2, 2, 1, 1, 1, 1, 0x6}, {2, 8, 17, 2, 2, 1, 1, 1, 1, 0x8}, {2, 6, 40, 2, 1, 1, 0, 1, 0, 0},
        {2, 6, 40, 1, 2, 0, 1, 0, 1, 0},   {2, 9, 20, 3, 3, 1, 1, 1, 1, 0},   {1, 2, 64, 2, 2, 0, 0, 0, 0, 0x5},
    };
    const kern_isa isas[] = {KERN_SCALAR, KERN_AVX2, KERN_AVX512};
    for (int k = 0; k < 3; ++k) {
        if (!kern_supported(isas[k])) {
            printf("# %s not supported by this CPU: skipped\n", kern_isa_name(isas[k]));
            continue;
        }
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i)
            run(isas[k], &shapes[i]);
    }
    return check_done();
}
