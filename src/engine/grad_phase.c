/* grad_phase.c — training's strided convolutions (stride > 1, unit dilation, not depthwise) over
 * polyphase planes, without im2col or col2im (see train_internal.h, tn_phase_*).
 *
 * The zero-padded input is split into sh·sw phase planes (kern_phase_split: padded sample
 * (py, px) at phase (py % sh, px % sw), row py / sh, column px / sw; hq × wq each). Tap (ki, kj)
 * of output pixel (oy, ox) reads padded sample (sh·oy + ki, sw·ox + kj), that is phase
 * (ki % sh, kj % sw) at (oy + ki / sh, ox + kj / sw): a stride-1 window over one phase plane.
 *   forward: kern_gemm with B rows at the taps' phase-plane offsets (K = Cin/g·kh·kw, in im2col's
 *     row order, so each output sums the same products in the same order as im2col's GEMM), N =
 *     OH rows of wq (the columns past OW computed and dropped);
 *   weight gradient: per tap, dWᵀ_tap (Cin/g × Cout/g) = phase rows · dYᵀ (dY pixel-major over the
 *     padded width, the extra columns zero), as the stride-1 path does over its padded planes;
 *   input gradient: per input phase (a, b) (input pixels (sh·r + a, sw·s + b)), only the taps
 *     ki ≡ a + pt (mod sh), kj ≡ b + pl (mod sw) reach it, each from dY shifted by whole pixels:
 *       dx[c][sh·r + a][sw·s + b] = Σ_{o,u,v} W[o][c][k0 + sh·u][l0 + sw·v]·dY[o][r + e − u][s + f − v]
 *     with k0 = (a + pt) % sh, e = (a + pt) / sh (l0, f alike), a stride-1 correlation of dY
 *     zero-padded by P rows on top and Q columns left: one GEMM per phase (K = Cout/g·U·V, the
 *     taps of that phase), the results put in place, so every input pixel is written once (a fresh
 *     dx needs no clearing) and no kh·kw-fold dcol is scattered back.
 * Each pass zeroes its planes once per call; the images then overwrite the same positions. */
#include <string.h>

#include "train_internal.h"

/* the phase geometry of one node */
typedef struct ph_geom {
    int cin_g, cout_g, ph;  /* channels per group, phases sh·sw */
    int hq, wq, eh, ew;     /* phase plane rows and columns; the taps' largest row and column shift */
    size_t plane, n, xp;    /* phase plane floats; forward GEMM columns (OH·wq, whole vectors); split floats */
    int P, Q, hd, wd;       /* input gradient: dY's zero rows above, columns left; padded dY rows, columns */
    size_t dplane, dyp;     /* padded dY plane floats; the padded dY buffer (+ overrun) */
    size_t nd;              /* the largest input-gradient GEMM's columns */
} ph_geom;

static int imax(int a, int b)
{
    return a > b ? a : b;
}

/* For input phase a of a dimension (stride s, pad p, kernel k, n input samples): the first tap
 * k0, the shift e, the tap count and the phase's sample count. */
typedef struct ph_dim {
    int k0, e, taps, len;
} ph_dim;

static ph_dim ph_dim_of(int a, int s, int p, int k, int n)
{
    ph_dim d;
    d.k0 = (a + p) % s;
    d.e = (a + p) / s;
    d.taps = d.k0 < k ? (k - d.k0 + s - 1) / s : 0;
    d.len = a < n ? (n - a + s - 1) / s : 0;
    return d;
}

static ph_geom ph_geom_of(const tn_node *t)
{
    ph_geom g;
    const size_t vl = (size_t)kern_vl(t->isa);
    g.cin_g = t->cin / t->group, g.cout_g = t->cout / t->group, g.ph = t->sh * t->sw;
    g.eh = (t->kh - 1) / t->sh, g.ew = (t->kw - 1) / t->sw;
    /* every tap's window, and every input sample kern_phase_split writes */
    g.hq = imax(t->oh + g.eh, (t->ih - 1 + t->pt) / t->sh + 1);
    g.wq = imax(t->ow + g.ew, (t->iw - 1 + t->pl) / t->sw + 1);
    g.plane = (size_t)g.hq * g.wq;
    g.n = tn_round_up((size_t)t->oh * g.wq, vl);
    g.xp = (size_t)g.cin_g * g.ph * g.plane + (size_t)g.wq + 2 * vl;
    int P = 0, Q = 0, hd = t->oh, wd = t->ow, rmax = 0;
    for (int a = 0; a < t->sh; ++a) {
        ph_dim d = ph_dim_of(a, t->sh, t->pt, t->kh, t->ih);
        if (d.taps)
            P = imax(P, d.taps - 1 - d.e);
        hd = imax(hd, d.e + d.len);
        rmax = imax(rmax, d.len);
    }
    for (int b = 0; b < t->sw; ++b) {
        ph_dim d = ph_dim_of(b, t->sw, t->pl, t->kw, t->iw);
        if (d.taps)
            Q = imax(Q, d.taps - 1 - d.e);
        wd = imax(wd, d.e + d.len);
    }
    g.P = P, g.Q = Q, g.hd = hd + P, g.wd = wd + Q;
    g.dplane = (size_t)g.hd * g.wd;
    g.dyp = (size_t)g.cout_g * g.dplane + (size_t)g.wd + 2 * vl;
    g.nd = tn_round_up((size_t)rmax * g.wd, vl);
    return g;
}

int tn_phase_ok(const tn_node *t)
{
    return t->op == RS_OP_CONV && (t->sh > 1 || t->sw > 1) && t->dh == 1 && t->dw == 1 && t->pt >= 0 &&
           t->pl >= 0 && !(t->cin / t->group == 1 && t->cout % t->group == 0);
}

/* Workspace: the split input, the forward's output | dYᵀ, the taps' results and their sum; the
 * padded dY, the packed phase weights, one phase's output. */
static size_t ph_fwd_floats(const ph_geom *g)
{
    return g->xp + (size_t)g->cout_g * g->n;
}

static size_t ph_dw_floats(const tn_node *t, const ph_geom *g)
{
    return g->xp + g->n * (size_t)t->coutpad + 2 * (size_t)t->kh * t->kw * g->cin_g * t->coutpad;
}

static size_t ph_dx_floats(const tn_node *t, const ph_geom *g)
{
    return g->dyp + (size_t)g->cin_g * g->cout_g * t->kh * t->kw + (size_t)t->sw * g->cin_g * g->nd;
}

size_t tn_phase_floats(const tn_node *t)
{
    ph_geom g = ph_geom_of(t);
    size_t f = ph_fwd_floats(&g), b = ph_dw_floats(t, &g) + ph_dx_floats(t, &g);
    return (f > b ? f : b) + 64;
}

size_t tn_phase_ints(const tn_node *t)
{
    ph_geom g = ph_geom_of(t);
    size_t f = (size_t)g.cin_g * t->kh * t->kw, b = (size_t)g.cout_g * t->kh * t->kw + g.n;
    return f > b ? f : b;
}

/* the phases some tap reads (kern_phase_split's mask) */
static unsigned ph_mask(const tn_node *t)
{
    unsigned m = 0;
    for (int ki = 0; ki < t->kh; ++ki)
        for (int kj = 0; kj < t->kw; ++kj)
            m |= 1u << ((ki % t->sh) * t->sw + kj % t->sw);
    return m;
}

/* offset of tap (ki, kj) of channel c in the split input */
static int ph_tap(const tn_node *t, const ph_geom *g, int c, int ki, int kj)
{
    return (int)((size_t)((c * t->sh + ki % t->sh) * t->sw + kj % t->sw) * g->plane + (size_t)(ki / t->sh) * g->wq +
                 (size_t)(kj / t->sw));
}

/* y (M compact OH × OW planes) = the first OW columns of out's rows (M × n, rows of wq). */
TN_NO_MEMCPY TN_VEC static void ph_unfill(int M, int OH, int OW, const float *restrict out, size_t n, int wq,
                                          float *restrict y)
{
    for (int m = 0; m < M; ++m)
        for (int oy = 0; oy < OH; ++oy) {
            float *d = y + ((size_t)m * OH + oy) * OW;
            const float *r = out + (size_t)m * n + (size_t)oy * wq;
            for (int x = 0; x < OW; ++x)
                d[x] = r[x];
        }
}

void tn_phase_forward(const tn_node *t, const float *w, const float *b, const float *x, float *y, int first,
                      float *ws, int *boff)
{
    const ph_geom g = ph_geom_of(t);
    float *xp = ws, *out = ws + g.xp;
    const size_t ihw = (size_t)t->ih * t->iw, ohw = (size_t)t->oh * t->ow;
    if (first) {
        memset(xp, 0, g.xp * sizeof *xp);
        for (int c = 0; c < g.cin_g; ++c)
            for (int ki = 0; ki < t->kh; ++ki)
                for (int kj = 0; kj < t->kw; ++kj)
                    boff[(c * t->kh + ki) * t->kw + kj] = ph_tap(t, &g, c, ki, kj);
    }
    const unsigned mask = ph_mask(t);
    /* rows without extra columns that fill whole vectors (a 1×1 conv's on 8 × 8): the GEMM writes y */
    const int direct = g.wq == t->ow && g.n == ohw;
    for (int gi = 0; gi < t->group; ++gi) {
        float *yg = y + (size_t)gi * g.cout_g * ohw;
        kern_phase_split(t->isa, g.cin_g, t->ih, t->iw, x + (size_t)gi * g.cin_g * ihw, t->sh, t->sw, t->pt, t->pl,
                         g.hq, g.wq, mask, xp);
        kern_gemm(t->isa, g.cout_g, (int)g.n, t->K, w + (size_t)gi * g.cout_g * t->K, t->K, xp, boff,
                  direct ? yg : out, (int)g.n, b ? b + (size_t)gi * g.cout_g : NULL, NULL, 0);
        if (!direct)
            ph_unfill(g.cout_g, t->oh, t->ow, out, g.n, g.wq, yg);
    }
}

TN_VEC static void ph_add(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t k = 0; k < n; ++k)
        dst[k] += src[k];
}

/* padded dY: planes of hd × wd, dY's rows from row P, column Q */
TN_NO_MEMCPY TN_VEC static void ph_fill_dy(const tn_node *t, const ph_geom *g, const float *restrict dy,
                                           float *restrict dyp)
{
    for (int o = 0; o < g->cout_g; ++o)
        for (int oy = 0; oy < t->oh; ++oy) {
            float *d = dyp + (size_t)o * g->dplane + (size_t)(oy + g->P) * g->wd + g->Q;
            const float *s = dy + ((size_t)o * t->oh + oy) * t->ow;
            for (int x = 0; x < t->ow; ++x)
                d[x] = s[x];
        }
}

/* dx's pixels of phase (a, b) (= or += out's R × S window, rows of wd) */
TN_VEC static void ph_scatter(const tn_node *t, const ph_geom *g, int a, int b, int R, int S, const float *restrict out,
                              float *restrict dx, int add)
{
    const size_t ihw = (size_t)t->ih * t->iw;
    for (int c = 0; c < g->cin_g; ++c)
        for (int r = 0; r < R; ++r) {
            const float *s = out + (size_t)c * g->nd + (size_t)r * g->wd;
            float *d = dx + (size_t)c * ihw + (size_t)(t->sh * r + a) * t->iw + b;
            if (add)
                for (int q = 0; q < S; ++q)
                    d[(size_t)q * t->sw] += s[q];
            else
                for (int q = 0; q < S; ++q)
                    d[(size_t)q * t->sw] = s[q];
        }
}

/* Column stride 2 with both column phases reached: dx's rows of phase row a (= or +=) the two
 * phases' rows interleaved (vector permutes, where ph_scatter stores every other float). */
TN_VEC static void ph_merge2(const tn_node *t, const ph_geom *g, int a, int R, int n0, int n1, const float *restrict o0,
                             const float *restrict o1, float *restrict dx, int add)
{
    const size_t ihw = (size_t)t->ih * t->iw;
    for (int c = 0; c < g->cin_g; ++c)
        for (int r = 0; r < R; ++r) {
            const float *s0 = o0 + (size_t)c * g->nd + (size_t)r * g->wd, *s1 = o1 + (size_t)c * g->nd + (size_t)r * g->wd;
            float *d = dx + (size_t)c * ihw + (size_t)(t->sh * r + a) * t->iw;
            if (add) {
                for (int q = 0; q < n1; ++q) {
                    d[2 * q] += s0[q];
                    d[2 * q + 1] += s1[q];
                }
                if (n0 > n1)
                    d[2 * n1] += s0[n1];
            } else {
                for (int q = 0; q < n1; ++q) {
                    d[2 * q] = s0[q];
                    d[2 * q + 1] = s1[q];
                }
                if (n0 > n1)
                    d[2 * n1] = s0[n1];
            }
        }
}

/* The input gradient's packed weights and row offsets of every phase, one group's (wg). */
static void ph_dx_pack(const tn_node *t, const ph_geom *g, const float *wg, float *wp, int *boff)
{
    const int khw = t->kh * t->kw;
    size_t at = 0;
    for (int a = 0; a < t->sh; ++a)
        for (int b = 0; b < t->sw; ++b) {
            ph_dim dr = ph_dim_of(a, t->sh, t->pt, t->kh, t->ih), dc = ph_dim_of(b, t->sw, t->pl, t->kw, t->iw);
            const int K = g->cout_g * dr.taps * dc.taps;
            for (int o = 0; o < g->cout_g; ++o)
                for (int u = 0; u < dr.taps; ++u)
                    for (int v = 0; v < dc.taps; ++v) {
                        const int k = (o * dr.taps + u) * dc.taps + v;
                        const int ki = dr.k0 + t->sh * u, kj = dc.k0 + t->sw * v;
                        for (int c = 0; c < g->cin_g; ++c)
                            wp[(size_t)g->cin_g * at + (size_t)c * K + k] =
                                wg[((size_t)o * g->cin_g + c) * khw + (size_t)ki * t->kw + kj];
                        boff[at + (size_t)k] = (int)((size_t)o * g->dplane + (size_t)(g->P + dr.e - u) * g->wd +
                                                     (size_t)(g->Q + dc.e - v));
                    }
            at += (size_t)K;
        }
}

void tn_phase_backward(const tn_node *t, const float *w, const float *x, const float *dy, float *dx, int dx_add,
                       float *dw, int ns, float *ws, int *boff)
{
    const ph_geom g = ph_geom_of(t);
    const int khw = t->kh * t->kw, cp = t->coutpad, cin_g = g.cin_g, cout_g = g.cout_g;
    const size_t ihw = (size_t)t->ih * t->iw, ohw = (size_t)t->oh * t->ow, taps = (size_t)khw * cin_g * cp;
    float *xp = ws, *bt = xp + g.xp, *acc = bt + g.n * (size_t)cp, *sum = acc + taps;
    float *dyp = sum + taps, *wp = dyp + g.dyp, *out = wp + (size_t)cin_g * cout_g * khw;
    int *dboff = boff, *tboff = boff + (size_t)cout_g * khw;
    const unsigned mask = ph_mask(t);
    int holes = 0;
    for (int a = 0; a < t->sh; ++a)
        for (int b = 0; b < t->sw; ++b)
            holes |= !ph_dim_of(a, t->sh, t->pt, t->kh, t->ih).taps || !ph_dim_of(b, t->sw, t->pl, t->kw, t->iw).taps;
    /* the borders, dYᵀ's extra-column rows and padding lanes stay zero for the whole call */
    if (dw) {
        memset(xp, 0, (g.xp + g.n * (size_t)cp) * sizeof *xp);
        for (size_t p = 0; p < g.n; ++p)
            tboff[p] = (int)(p * cp);
    }
    if (dx)
        memset(dyp, 0, g.dyp * sizeof *dyp);
    for (int gi = 0; gi < t->group; ++gi) {
        const float *wg = w + (size_t)gi * cout_g * t->K;
        if (dw)
            memset(sum, 0, taps * sizeof *sum);
        if (dx)
            ph_dx_pack(t, &g, wg, wp, dboff);
        for (int i = 0; i < ns; ++i) {
            const float *dyi = dy + (size_t)i * t->ysz + (size_t)gi * cout_g * ohw;
            if (dw) {
                kern_phase_split(t->isa, cin_g, t->ih, t->iw, x + (size_t)i * t->xsz + (size_t)gi * cin_g * ihw, t->sh,
                                 t->sw, t->pt, t->pl, g.hq, g.wq, mask, xp);
                for (int oy = 0; oy < t->oh; ++oy)
                    tn_transpose(dyi + (size_t)oy * t->ow, ohw, cout_g, t->ow, bt + (size_t)oy * g.wq * cp, (size_t)cp);
                for (int ki = 0; ki < t->kh; ++ki)
                    for (int kj = 0; kj < t->kw; ++kj)
                        kern_gemm(t->isa_dw, cin_g, cp, (int)g.n, xp + ph_tap(t, &g, 0, ki, kj),
                                  (int)((size_t)g.ph * g.plane), bt, tboff, acc + (size_t)(ki * t->kw + kj) * cin_g * cp,
                                  cp, NULL, NULL, 0);
                ph_add(sum, acc, taps);
            }
            if (!dx)
                continue;
            float *dxi = dx + (size_t)i * t->xsz + (size_t)gi * cin_g * ihw;
            if (holes && !dx_add) /* the phases no tap reaches (a 1×1 stride-2 conv's three) */
                memset(dxi, 0, (size_t)cin_g * ihw * sizeof *dxi);
            ph_fill_dy(t, &g, dyi, dyp);
            size_t at = 0;
            for (int a = 0; a < t->sh; ++a) {
                ph_dim dr = ph_dim_of(a, t->sh, t->pt, t->kh, t->ih), dc[2];
                int done = 0; /* the column phases computed into out */
                for (int b = 0; b < t->sw; ++b) {
                    ph_dim d = ph_dim_of(b, t->sw, t->pl, t->kw, t->iw);
                    const int K = cout_g * dr.taps * d.taps;
                    const size_t a0 = at;
                    at += (size_t)K;
                    if (!dr.len || !d.len || !K)
                        continue;
                    const size_t n = tn_round_up((size_t)dr.len * g.wd, (size_t)kern_vl(t->isa));
                    float *ob = out + (size_t)b * cin_g * g.nd;
                    kern_gemm(t->isa, cin_g, (int)n, K, wp + (size_t)cin_g * a0, K, dyp, dboff + a0, ob, (int)g.nd,
                              NULL, NULL, 0);
                    if (b < 2)
                        dc[b] = d, done |= 1 << b;
                    if (t->sw != 2)
                        ph_scatter(t, &g, a, b, dr.len, d.len, ob, dxi, dx_add);
                }
                if (t->sw == 2 && done == 3)
                    ph_merge2(t, &g, a, dr.len, dc[0].len, dc[1].len, out, out + (size_t)cin_g * g.nd, dxi, dx_add);
                else if (t->sw == 2)
                    for (int b = 0; b < 2; ++b)
                        if (done >> b & 1)
                            ph_scatter(t, &g, a, b, dr.len, dc[b].len, out + (size_t)b * cin_g * g.nd, dxi, dx_add);
            }
        }
        if (!dw)
            continue;
        float *dwg = dw + (size_t)gi * cout_g * t->K;
        for (int o = 0; o < cout_g; ++o)
            for (int ci = 0; ci < cin_g; ++ci)
                for (int k = 0; k < khw; ++k)
                    dwg[(size_t)o * t->K + (size_t)ci * khw + k] += sum[((size_t)k * cin_g + ci) * cp + o];
    }
}
