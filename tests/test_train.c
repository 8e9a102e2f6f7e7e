/* test_train.c — training: every backward kernel against central finite differences of an
 * independent double-precision reference forward (naive loops written here, sharing no code with
 * the engine), the loss (plain and distilled), augmentation, schedules, a small learnable task,
 * frozen-parameter masks and determinism.
 *
 * Tolerances: the engine computes in float, the finite differences in double with h = 1e-6
 * (truncation O(h²) ≈ 1e-12, rounding ≈ 1e-10; a ReLU or max-pool kink is crossed only by inputs
 * within 1e-6 of it), so an analytic gradient g must satisfy |g − fd| ≤ 2e-5 + 2e-3·|fd| — float
 * accumulation over at most a few hundred terms. Logits must match to 1e-5 relative.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ref_ops.h"
#include "rankscope/model.h"
#include "rankscope/train.h"
#include "../src/engine/train_internal.h"

/* ---- deterministic random numbers for the test ---------------------------------------------- */
static uint64_t test_state = 88172645463325252ull;
static double urand(void) /* [0,1) */
{
    test_state ^= test_state << 13;
    test_state ^= test_state >> 7;
    test_state ^= test_state << 17;
    return (double)(test_state >> 11) * (1.0 / 9007199254740992.0);
}
static float srand1(void)
{
    return (float)(2.0 * urand() - 1.0);
}

/* ---- model building helpers ------------------------------------------------------------------- */
static int mk_input(rs_model *m, int c, int h, int w)
{
    int v = model_add_value(m, "input", NULL);
    m->input = v;
    rs_value *x = &m->values[v];
    x->ndim = 4;
    x->dims[0] = -1, x->dims[1] = c, x->dims[2] = h, x->dims[3] = w;
    return v;
}

static int mk_const(rs_model *m, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                    int64_t d3, float scale)
{
    int v = model_add_value(m, name, NULL);
    rs_value *c = &m->values[v];
    int64_t d[4] = {d0, d1, d2, d3}, n = 1;
    c->is_const = 1;
    c->dtype = RS_DT_FLOAT;
    c->ndim = ndim;
    for (int i = 0; i < ndim; ++i)
        c->dims[i] = d[i], n *= d[i];
    c->f = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; ++i)
        c->f[i] = scale * srand1();
    return v;
}

/* node reading ins[], writing a fresh activation; returns the node index */
static int mk_node(rs_model *m, const char *name, rs_op op, const int *ins, int nin)
{
    char out[80];
    snprintf(out, sizeof out, "%s_y", name);
    int y = model_add_value(m, out, NULL);
    int k = model_add_node(m, name, op, NULL);
    rs_node *n = &m->nodes[k];
    n->n_in = nin;
    for (int i = 0; i < nin; ++i)
        n->in[i] = ins[i];
    n->n_out = 1;
    n->out[0] = y;
    return k;
}

static int out_of(rs_model *m, int node)
{
    return m->nodes[node].out[0];
}

static long numel(const rs_value *v)
{
    long n = 1;
    for (int i = 1; i < v->ndim; ++i)
        n *= v->dims[i];
    return n;
}

/* Shapes of the graph built so far, ending at node's output (to size the next weight). */
static long features_of(rs_model *m, int node)
{
    m->output = out_of(m, node);
    if (model_infer_shapes(m, NULL))
        return -1;
    return numel(&m->values[m->output]);
}

/* ---- the independent double-precision reference forward --------------------------------------- */
typedef struct perturb {
    int value;   /* value whose element is shifted (-1: none) */
    long index;
    double delta;
} perturb;

static double pval(const rs_model *m, int v, long k, const perturb *p)
{
    double x = m->values[v].f[k];
    if (p && p->value == v && p->index == k)
        x += p->delta;
    return x;
}


/* BatchNormalization in the reference and the net under test: running statistics (eval mode)
 * instead of the batch's. */
static int ref_bn_running;

/* Mean softmax CE (plus distillation when teacher != NULL) of the model on n images, computed
 * entirely in double by naive loops. logits_out (may be NULL) gets n × classes. */
static double ref_loss(const rs_model *m, const float *x, const uint8_t *labels, int n,
                       const perturb *p, const float *teacher, double alpha, double T,
                       double *logits_out)
{
    double **act = calloc((size_t)m->n_values, sizeof *act);
    long F = numel(&m->values[m->input]);
    act[m->input] = malloc((size_t)(n * F) * sizeof(double));
    for (long k = 0; k < n * F; ++k) {
        act[m->input][k] = x[k];
        if (p && p->value == m->input && p->index == k)
            act[m->input][k] += p->delta;
    }
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *nd = &m->nodes[i];
        const rs_value *xv = &m->values[nd->in[0]], *yv = &m->values[nd->out[0]];
        long xs = numel(xv), ys = numel(yv);
        double *X = act[nd->in[0]], *Y = calloc((size_t)(n * ys), sizeof(double));
        act[nd->out[0]] = Y;
        switch (nd->op) {
        case RS_OP_CONV: {
            int C = (int)xv->dims[1], H = (int)xv->dims[2], W = (int)xv->dims[3];
            int O = (int)yv->dims[1], OH = (int)yv->dims[2], OW = (int)yv->dims[3];
            int g = (int)nd->group, kh = (int)nd->kernel[0], kw = (int)nd->kernel[1];
            int wv = nd->in[1], bv = nd->n_in > 2 ? nd->in[2] : -1;
            long nw = (long)model_value_numel(&m->values[wv]);
            double *wd = malloc((size_t)nw * sizeof *wd), *bd = malloc((size_t)O * sizeof *bd);
            for (long k = 0; k < nw; ++k)
                wd[k] = pval(m, wv, k, p);
            for (int o = 0; o < O; ++o)
                bd[o] = bv >= 0 ? pval(m, bv, o, p) : 0;
            const int pads[4] = {(int)nd->pads[0], (int)nd->pads[1], (int)nd->pads[2],
                                 (int)nd->pads[3]};
            ref_conv2d_d(X, n, C, H, W, wd, bv >= 0 ? bd : NULL, O, kh, kw, (int)nd->strides[0],
                         (int)nd->strides[1], (int)nd->dilations[0], (int)nd->dilations[1], pads,
                         g, Y, OH, OW);
            free(wd);
            free(bd);
            break;
        }
        case RS_OP_MAXPOOL: {
            int C = (int)xv->dims[1], H = (int)xv->dims[2], W = (int)xv->dims[3];
            int OH = (int)yv->dims[2], OW = (int)yv->dims[3];
            for (int b = 0; b < n; ++b)
                for (int c = 0; c < C; ++c)
                    for (int oy = 0; oy < OH; ++oy)
                        for (int ox = 0; ox < OW; ++ox) {
                            double best = -INFINITY;
                            for (int a = 0; a < nd->kernel[0]; ++a)
                                for (int bb = 0; bb < nd->kernel[1]; ++bb) {
                                    long iy = oy * nd->strides[0] - nd->pads[0] + a * nd->dilations[0];
                                    long ix = ox * nd->strides[1] - nd->pads[1] + bb * nd->dilations[1];
                                    if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                        best = fmax(best, X[b * xs + ((long)c * H + iy) * W + ix]);
                                }
                            Y[b * ys + ((long)c * OH + oy) * OW + ox] = best;
                        }
            break;
        }
        case RS_OP_GEMM:
        case RS_OP_MATMUL: {
            int wv = nd->in[1];
            const rs_value *w = &m->values[wv];
            int tb = nd->op == RS_OP_GEMM && nd->trans_b;
            long K = tb ? w->dims[1] : w->dims[0], N = tb ? w->dims[0] : w->dims[1];
            double al = nd->op == RS_OP_GEMM ? nd->alpha : 1, be = nd->op == RS_OP_GEMM ? nd->beta : 0;
            int cv = nd->op == RS_OP_GEMM && nd->n_in > 2 ? nd->in[2] : -1;
            for (int b = 0; b < n; ++b)
                for (long j = 0; j < N; ++j) {
                    double s = 0;
                    for (long k = 0; k < K; ++k)
                        s += X[b * xs + k] * pval(m, wv, tb ? j * K + k : k * N + j, p);
                    s *= al;
                    if (cv >= 0) {
                        long cn = 1;
                        for (int d = 0; d < m->values[cv].ndim; ++d)
                            cn *= m->values[cv].dims[d];
                        s += be * pval(m, cv, cn == 1 ? 0 : j, p);
                    }
                    Y[b * ys + j] = s;
                }
            break;
        }
        case RS_OP_ADD: {
            int bv = nd->in[1];
            for (int b = 0; b < n; ++b)
                for (long k = 0; k < ys; ++k) {
                    double o;
                    if (m->values[bv].is_const) {
                        long bn = 1;
                        for (int d = 0; d < m->values[bv].ndim; ++d)
                            bn *= m->values[bv].dims[d];
                        o = pval(m, bv, bn == 1 ? 0 : k % bn, p);
                    } else {
                        o = act[bv][b * ys + k];
                    }
                    Y[b * ys + k] = X[b * xs + k] + o;
                }
            break;
        }
        case RS_OP_RELU:
            for (long k = 0; k < n * ys; ++k)
                Y[k] = X[k] > 0 ? X[k] : 0;
            break;
        case RS_OP_LEAKYRELU:
        case RS_OP_SIGMOID:
        case RS_OP_HARDSIGMOID:
        case RS_OP_HARDSWISH:
            for (long k = 0; k < n * ys; ++k) {
                double v = X[k], hs = fmin(1.0, fmax(0.0, v / 6.0 + 0.5));
                Y[k] = nd->op == RS_OP_LEAKYRELU ? (v >= 0 ? v : nd->alpha * v)
                       : nd->op == RS_OP_SIGMOID ? 1.0 / (1.0 + exp(-v))
                       : nd->op == RS_OP_HARDSWISH
                           ? v * hs
                           : fmin(1.0, fmax(0.0, (double)nd->alpha * v + nd->beta));
            }
            break;
        case RS_OP_CONCAT: { /* two activations, channel axis: per image x then the other */
            long x2s = ys - xs;
            for (int b = 0; b < n; ++b) {
                memcpy(Y + b * ys, X + b * xs, (size_t)xs * sizeof *Y);
                memcpy(Y + b * ys + xs, act[nd->in[1]] + b * x2s, (size_t)x2s * sizeof *Y);
            }
            break;
        }
        case RS_OP_SUB:
        case RS_OP_MUL:
        case RS_OP_DIV: { /* numpy broadcasting over (C,H,W) operands, written out per index */
            const rs_value *av = &m->values[nd->in[0]], *bv = &m->values[nd->in[1]];
            for (int b = 0; b < n; ++b)
                for (long k = 0; k < ys; ++k) {
                    double o[2];
                    for (int q = 0; q < 2; ++q) {
                        const rs_value *v = q ? bv : av;
                        int vin = nd->in[q];
                        /* the operand's own per-image extents, right-aligned to y's */
                        long idx = 0, rem = k, mul = 1;
                        int lead = v->is_const ? 0 : 1;
                        for (int d = yv->ndim - 1; d >= 1; --d) {
                            long yd = (long)yv->dims[d], c = rem % yd;
                            rem /= yd;
                            int vd = v->ndim - (yv->ndim - d);
                            long ext = vd >= lead ? (long)v->dims[vd] : 1;
                            idx += (ext == 1 ? 0 : c) * mul;
                            mul *= ext;
                        }
                        o[q] = v->is_const ? pval(m, vin, idx, p) : act[vin][b * mul + idx];
                    }
                    Y[b * ys + k] = nd->op == RS_OP_SUB ? o[0] - o[1]
                                    : nd->op == RS_OP_MUL ? o[0] * o[1]
                                                          : o[0] / o[1];
                }
            break;
        }
        case RS_OP_TRANSPOSE:
        case RS_OP_SLICE:
        case RS_OP_EXPAND: { /* each output coordinate mapped back to x's, written out plainly */
            int r = yv->ndim;
            for (long k = 0; k < ys; ++k) {
                long c[RS_MAXDIM], in[RS_MAXDIM], rem = k, idx = 0;
                for (int d = r - 1; d >= 1; --d) {
                    c[d] = rem % (long)yv->dims[d];
                    rem /= (long)yv->dims[d];
                }
                for (int d = 1; d < r; ++d)
                    in[d] = nd->op == RS_OP_EXPAND && xv->dims[d] == 1 ? 0 : c[d];
                if (nd->op == RS_OP_TRANSPOSE)
                    for (int d = 1; d < r; ++d)
                        in[nd->axes[d]] = c[d];
                if (nd->op == RS_OP_SLICE) { /* one axis: starts, ends, axes, steps */
                    int a = (int)m->values[nd->in[3]].i64[0];
                    long st = (long)m->values[nd->in[1]].i64[0], step = (long)m->values[nd->in[4]].i64[0];
                    in[a] = st + c[a] * step;
                }
                for (int d = 1; d < r; ++d)
                    idx = idx * (long)xv->dims[d] + in[d];
                for (int b = 0; b < n; ++b)
                    Y[b * ys + k] = X[b * xs + idx];
            }
            break;
        }
        case RS_OP_PRELU: { /* slope (C,1,1) */
            long C = (long)xv->dims[1], hw = xs / C;
            for (int b = 0; b < n; ++b)
                for (long k = 0; k < xs; ++k) {
                    double v = X[b * xs + k];
                    Y[b * ys + k] = v >= 0 ? v : pval(m, nd->in[1], (k / hw) % C, p) * v;
                }
            break;
        }
        case RS_OP_CLIP:
            for (long k = 0; k < n * ys; ++k)
                Y[k] = fmin(nd->clip_max, fmax(nd->clip_min, X[k]));
            break;
        case RS_OP_BATCHNORM: { /* batch statistics (biased variance) unless ref_bn_running */
            long C = (long)xv->dims[1], hw = xs / C;
            for (long c = 0; c < C; ++c) {
                double mean = 0, var = 0;
                if (ref_bn_running) {
                    mean = pval(m, nd->in[3], c, p);
                    var = pval(m, nd->in[4], c, p);
                } else {
                    for (int b = 0; b < n; ++b)
                        for (long k = 0; k < hw; ++k)
                            mean += X[b * xs + c * hw + k];
                    mean /= (double)(n * hw);
                    for (int b = 0; b < n; ++b)
                        for (long k = 0; k < hw; ++k)
                            var += (X[b * xs + c * hw + k] - mean) * (X[b * xs + c * hw + k] - mean);
                    var /= (double)(n * hw);
                }
                double sc = pval(m, nd->in[1], c, p) / sqrt(var + nd->epsilon), sh = pval(m, nd->in[2], c, p);
                for (int b = 0; b < n; ++b)
                    for (long k = 0; k < hw; ++k)
                        Y[b * ys + c * hw + k] = (X[b * xs + c * hw + k] - mean) * sc + sh;
            }
            break;
        }
        case RS_OP_REDUCEMEAN: { /* over (2, 3) only: the one form that trains */
            long C = (long)xv->dims[1], hw = xs / C;
            for (int b = 0; b < n; ++b)
                for (long c = 0; c < C; ++c) {
                    double acc = 0;
                    for (long k = 0; k < hw; ++k)
                        acc += X[b * xs + c * hw + k];
                    Y[b * ys + c] = acc / (double)hw;
                }
            break;
        }
        default:
            memcpy(Y, X, (size_t)(n * ys) * sizeof(double));
        }
    }
    int C = (int)m->values[m->output].dims[1];
    const double *Z = act[m->output];
    double L = 0;
    for (int b = 0; b < n; ++b) {
        const double *z = Z + (long)b * C;
        double mx = z[0], s = 0;
        for (int c = 1; c < C; ++c)
            mx = fmax(mx, z[c]);
        for (int c = 0; c < C; ++c)
            s += exp(z[c] - mx);
        double ce = mx + log(s) - z[labels[b]];
        double l = ce;
        if (teacher) {
            const float *t = teacher + (long)b * C;
            double tq = 0, ts = 0;
            for (int c = 0; c < C; ++c) {
                tq += exp(z[c] / T);
                ts += exp(t[c] / T);
            }
            double kl = 0;
            for (int c = 0; c < C; ++c) {
                double pt = exp(t[c] / T) / ts, q = exp(z[c] / T) / tq;
                kl += pt * log(pt / q);
            }
            l = (1 - alpha) * ce + alpha * T * T * kl;
        }
        L += l;
        if (logits_out)
            for (int c = 0; c < C; ++c)
                logits_out[b * C + c] = z[c];
    }
    for (int v = 0; v < m->n_values; ++v)
        free(act[v]);
    free(act);
    return L / n;
}

/* ---- gradient checks -------------------------------------------------------------------------- */
#define FD_H 1e-6
static int grad_ok(double g, double fd)
{
    return fabs(g - fd) <= 2e-5 + 2e-3 * fabs(fd);
}

/* Gradient elements checked per value (at most; elements drawn at random beyond that). */
static int fd_samples = 40;

/* A BatchNormalization's running mean or variance (statistics, not parameters). */
static int is_bn_statistic(const rs_model *m, int v)
{
    for (int i = 0; i < m->n_nodes; ++i)
        if (m->nodes[i].op == RS_OP_BATCHNORM && (m->nodes[i].in[3] == v || m->nodes[i].in[4] == v))
            return 1;
    return 0;
}

/* Infers m's shapes; n random inputs of *F floats in [-1, 1) and n labels < *C, its input's size
 * and its output's classes (malloc'd). */
static void random_batch(const char *what, rs_model *m, int n, long *F, int *C, float **x, uint8_t **lab)
{
    CHECK(model_infer_shapes(m, NULL) == 0, "%s: shapes infer", what);
    *F = numel(&m->values[m->input]);
    *C = (int)m->values[m->output].dims[1];
    *x = malloc((size_t)(n * *F) * sizeof(float));
    *lab = malloc((size_t)n);
    for (long k = 0; k < n * *F; ++k)
        (*x)[k] = srand1();
    for (int b = 0; b < n; ++b)
        (*lab)[b] = (uint8_t)(urand() * *C);
}

/* Checks logits, every parameter gradient (up to 40 sampled elements each) and the input
 * gradient of model m on a random batch, with the engine on nthreads threads. */
static void check_model_grads(const char *what, rs_model *m, int n, int nthreads,
                              const float *teacher)
{
    long F;
    int C;
    float *x;
    uint8_t *lab;
    random_batch(what, m, n, &F, &C, &x, &lab);
    rs_err e = {{0}};
    train_net *t = train_net_create(m, n, nthreads, NULL, TRAIN_NET_INPUT_GRAD, &e);
    if (!CHECK(t != NULL, "%s: train_net_create (%s)", what, e.msg)) {
        free(x), free(lab);
        return;
    }
    if (ref_bn_running)
        train_net_set_training(t, 0);
    double loss = 0, alpha = 0.6, T = 3.0;
    int correct = 0;
    /* twice: the second pass finds the gradient buffers the first left behind, so a backward
     * that adds to a buffer it was meant to overwrite (tn_pass.dx_fresh) doubles its gradient */
    for (int pass = 0; pass < 2; ++pass) {
        loss = 0, correct = 0;
        CHECK(train_net_grad(t, x, lab, n, teacher, (float)alpha, (float)T, &loss, &correct, &e) == 0,
              "%s: train_net_grad (%s)", what, e.msg);
    }
    double *zref = malloc((size_t)(n * C) * sizeof(double));
    double lref = ref_loss(m, x, lab, n, NULL, teacher, alpha, T, zref);
    const float *z = train_net_logits(t);
    double zerr = ref_max_rel_err_d(z, zref, (size_t)(n * C));
    CHECK(zerr <= 1e-5, "%s: logits match the double reference (max rel err %.2g <= 1e-5)", what, zerr);
    CHECK_CLOSE(loss, lref, 1e-5, "%s: loss %.6f matches the reference %.6f (1e-5)", what, loss, lref);
    /* every float initializer is a parameter; the input too */
    for (int v = 0; v < m->n_values; ++v) {
        const rs_value *val = &m->values[v];
        const float *g;
        long cnt;
        if (v == m->input) {
            g = train_net_input_grad(t);
            cnt = n * F;
        } else if (val->is_const && val->dtype == RS_DT_FLOAT && !is_bn_statistic(m, v)) {
            g = train_net_param_grad(t, v);
            cnt = 1;
            for (int d = 0; d < val->ndim; ++d)
                cnt *= val->dims[d];
        } else {
            continue;
        }
        if (!CHECK(g != NULL, "%s: gradient of \"%s\" exists", what, val->name))
            continue;
        double worst = 0, gmax = 0;
        int bad = 0, samples = cnt < fd_samples ? (int)cnt : fd_samples;
        for (int s = 0; s < samples; ++s) {
            long k = cnt <= fd_samples ? s : (long)(urand() * cnt);
            perturb pp = {v, k, FD_H}, pm = {v, k, -FD_H};
            double fd = (ref_loss(m, x, lab, n, &pp, teacher, alpha, T, NULL) -
                         ref_loss(m, x, lab, n, &pm, teacher, alpha, T, NULL)) / (2 * FD_H);
            if (!grad_ok(g[k], fd))
                ++bad;
            worst = fmax(worst, fabs(g[k] - fd));
            gmax = fmax(gmax, fabs(fd));
        }
        CHECK(bad == 0 && gmax > 1e-6, "%s: d loss / d %s matches finite differences (%d samples, "
              "max |err| %.2g, max |grad| %.2g)", what, val->name, samples, worst, gmax);
    }
    train_net_free(t);
    free(zref), free(x), free(lab);
}

/* Logits, loss, input and parameter gradients of nets made with flags 0 and flags_b agree. */
static void check_flags_agree(const char *what, rs_model *m, int n, int nthreads, int flags_b);
static void check_flags_agree_frozen(const char *what, rs_model *m, int n, int nthreads, int flags_b);

/* conv with asymmetric pads / stride / dilation + bias -> relu -> maxpool -> flatten -> gemm(transB) */
static void test_conv_pool_gemm(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 3, 9, 10);
    int w = mk_const(m, "c.w", 4, 4, 3, 3, 2, 0.4f), b = mk_const(m, "c.b", 1, 4, 0, 0, 0, 0.2f);
    int k = mk_node(m, "conv", RS_OP_CONV, (int[]){x, w, b}, 3);
    rs_node *c = &m->nodes[k];
    c->pads[0] = 1, c->pads[1] = 2, c->pads[2] = 0, c->pads[3] = 1;
    c->strides[0] = 2, c->strides[1] = 1;
    c->dilations[0] = 1, c->dilations[1] = 2;
    int r = mk_node(m, "relu", RS_OP_RELU, (int[]){out_of(m, k)}, 1);
    int p = mk_node(m, "pool", RS_OP_MAXPOOL, (int[]){out_of(m, r)}, 1);
    m->nodes[p].kernel[0] = m->nodes[p].kernel[1] = 2;
    m->nodes[p].strides[0] = m->nodes[p].strides[1] = 2;
    int f = mk_node(m, "flat", RS_OP_FLATTEN, (int[]){out_of(m, p)}, 1);
    long feat = features_of(m, f);
    int gw = mk_const(m, "fc.w", 2, 5, feat, 0, 0, 0.3f), gb = mk_const(m, "fc.b", 1, 5, 0, 0, 0, 0.1f);
    int g = mk_node(m, "fc", RS_OP_GEMM, (int[]){out_of(m, f), gw, gb}, 3);
    m->nodes[g].trans_b = 1;
    m->output = out_of(m, g);
    check_model_grads("conv(pads,stride,dilation)+relu+pool+gemm(transB)", m, 5, 2, NULL);
    model_free(m);
}

/* "Same" convolutions (ow == iw, unit strides) take the block-copy im2col/col2im path: a dilated
 * 3×3 and one with asymmetric pads (top 0, left 2, bottom 2, right 0), on an input small enough
 * (1 image × 40 values) that every input gradient is checked, edge pixels included. */
static void test_same_conv_taps(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 2, 4, 5);
    int w1 = mk_const(m, "d.w", 4, 3, 2, 3, 3, 0.4f), b1 = mk_const(m, "d.b", 1, 3, 0, 0, 0, 0.2f);
    int k1 = mk_node(m, "dil", RS_OP_CONV, (int[]){x, w1, b1}, 3);
    for (int i = 0; i < 4; ++i)
        m->nodes[k1].pads[i] = 2;
    m->nodes[k1].dilations[0] = m->nodes[k1].dilations[1] = 2;
    int w2 = mk_const(m, "a.w", 4, 2, 3, 3, 3, 0.4f);
    int k2 = mk_node(m, "asym", RS_OP_CONV, (int[]){out_of(m, k1), w2}, 2);
    m->nodes[k2].pads[0] = 0, m->nodes[k2].pads[1] = 2, m->nodes[k2].pads[2] = 2, m->nodes[k2].pads[3] = 0;
    int f = mk_node(m, "flat", RS_OP_FLATTEN, (int[]){out_of(m, k2)}, 1);
    long feat = features_of(m, f);
    CHECK(feat == 2 * 4 * 5, "same convolutions keep the 4x5 plane (%ld features)", feat);
    int gw = mk_const(m, "fc.w", 2, 3, feat, 0, 0, 0.3f);
    int g = mk_node(m, "fc", RS_OP_GEMM, (int[]){out_of(m, f), gw}, 2);
    m->nodes[g].trans_b = 1;
    m->output = out_of(m, g);
    check_model_grads("same convs (dilated, asymmetric pads): block im2col/col2im", m, 1, 1, NULL);
    model_free(m);
}

/* Flatten of v, then a 3-output Gemm (transB, no bias) as the graph output. */
static void flat_fc3(rs_model *m, int v)
{
    int f = mk_node(m, "flat", RS_OP_FLATTEN, (int[]){v}, 1);
    long feat = features_of(m, f);
    int gw = mk_const(m, "fc.w", 2, 3, feat, 0, 0, 0.05f);
    int g = mk_node(m, "fc", RS_OP_GEMM, (int[]){out_of(m, f), gw}, 2);
    m->nodes[g].trans_b = 1;
    m->output = out_of(m, g);
}

/* MobileNet's depthwise 3×3 (the direct kernel's forward): stride 1 pad 1 with bias, then stride 2
 * with asymmetric pads and no bias, on a map wide enough for whole vectors and a ragged tail. */
static void test_depthwise3x3(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 3, 11, 21);
    int w1 = mk_const(m, "dw1.w", 4, 3, 1, 3, 3, 0.4f), b1 = mk_const(m, "dw1.b", 1, 3, 0, 0, 0, 0.1f);
    int k1 = mk_node(m, "dw1", RS_OP_CONV, (int[]){x, w1, b1}, 3);
    m->nodes[k1].group = 3;
    m->nodes[k1].pads[0] = m->nodes[k1].pads[1] = m->nodes[k1].pads[2] = m->nodes[k1].pads[3] = 1;
    int r = mk_node(m, "relu", RS_OP_RELU, (int[]){out_of(m, k1)}, 1);
    int w2 = mk_const(m, "dw2.w", 4, 3, 1, 3, 3, 0.4f);
    int k2 = mk_node(m, "dw2", RS_OP_CONV, (int[]){out_of(m, r), w2}, 2);
    m->nodes[k2].group = 3;
    m->nodes[k2].strides[0] = m->nodes[k2].strides[1] = 2;
    m->nodes[k2].pads[0] = m->nodes[k2].pads[3] = 1;
    flat_fc3(m, out_of(m, k2));
    check_model_grads("depthwise 3x3 (stride 1 pad 1 + bias, stride 2 asymmetric pads)", m, 3, 2, NULL);
    model_free(m);
}

/* The direct depthwise kernels' other geometries: a channel multiplier of 2 (Cout = 2·Cin) with a
 * 3×2 window, strides (2, 3), dilations (2, 1) and uneven pads, whose last input rows and columns
 * no window reaches; then a 5×5 with pads 2 and bias. One image of 2 × 7 × 8: all 112 input
 * gradients are sampled by index (40 of them) over both channels. */
static void test_depthwise_general(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 2, 7, 8);
    int w1 = mk_const(m, "dm.w", 4, 4, 1, 3, 2, 0.5f), b1 = mk_const(m, "dm.b", 1, 4, 0, 0, 0, 0.1f);
    int k1 = mk_node(m, "dm", RS_OP_CONV, (int[]){x, w1, b1}, 3);
    rs_node *c = &m->nodes[k1];
    c->group = 2;
    c->strides[0] = 2, c->strides[1] = 3;
    c->dilations[0] = 2, c->dilations[1] = 1;
    c->pads[0] = 2, c->pads[1] = 1, c->pads[2] = 0, c->pads[3] = 0;
    int r = mk_node(m, "relu", RS_OP_RELU, (int[]){out_of(m, k1)}, 1);
    int w2 = mk_const(m, "d5.w", 4, 4, 1, 5, 5, 0.3f), b2 = mk_const(m, "d5.b", 1, 4, 0, 0, 0, 0.1f);
    int k2 = mk_node(m, "d5", RS_OP_CONV, (int[]){out_of(m, r), w2, b2}, 3);
    m->nodes[k2].group = 4;
    for (int i = 0; i < 4; ++i)
        m->nodes[k2].pads[i] = 2;
    flat_fc3(m, out_of(m, k2));
    check_model_grads("depthwise x2 multiplier (3x2, strides 2,3, dilation 2,1) + 5x5 pad 2", m, 1, 1, NULL);
    model_free(m);
}

/* grouped conv, depthwise kh×1 then 1×kw (the spatial factors), flatten -> MatMul + Add */
static void test_grouped_depthwise_matmul(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 4, 7, 6);
    int w1 = mk_const(m, "g.w", 4, 6, 2, 3, 3, 0.4f);
    int k1 = mk_node(m, "gconv", RS_OP_CONV, (int[]){x, w1}, 2);
    m->nodes[k1].group = 2;
    m->nodes[k1].pads[0] = m->nodes[k1].pads[1] = m->nodes[k1].pads[2] = m->nodes[k1].pads[3] = 1;
    int w2 = mk_const(m, "dv.w", 4, 6, 1, 3, 1, 0.5f), b2 = mk_const(m, "dv.b", 1, 6, 0, 0, 0, 0.2f);
    int k2 = mk_node(m, "dwv", RS_OP_CONV, (int[]){out_of(m, k1), w2, b2}, 3);
    m->nodes[k2].group = 6;
    m->nodes[k2].pads[0] = m->nodes[k2].pads[2] = 1;
    int w3 = mk_const(m, "dh.w", 4, 6, 1, 1, 3, 0.5f);
    int k3 = mk_node(m, "dwh", RS_OP_CONV, (int[]){out_of(m, k2), w3}, 2);
    m->nodes[k3].group = 6;
    m->nodes[k3].strides[1] = 2;
    int f = mk_node(m, "flat", RS_OP_FLATTEN, (int[]){out_of(m, k3)}, 1);
    long feat = features_of(m, f);
    int mw = mk_const(m, "mm.w", 2, feat, 4, 0, 0, 0.2f);
    int mm = mk_node(m, "mm", RS_OP_MATMUL, (int[]){out_of(m, f), mw}, 2);
    int ab = mk_const(m, "add.b", 1, 4, 0, 0, 0, 0.3f);
    int ad = mk_node(m, "add", RS_OP_ADD, (int[]){out_of(m, mm), ab}, 2);
    m->output = out_of(m, ad);
    check_model_grads("grouped conv + depthwise kx1/1xk + matmul + add", m, 4, 2, NULL);
    model_free(m);
}

/* 1×1 conv (no im2col), residual Add of two activations, overlapping padded ceil-mode pool,
 * Gemm without transB with alpha/beta and C, Identity, distillation loss (a scalar C is
 * covered by the engine but its gradient is identically 0 on the logits: softmax invariance) */
static void test_dag_and_distill(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 3, 6, 6);
    int w1 = mk_const(m, "pw.w", 4, 5, 3, 1, 1, 0.5f), b1 = mk_const(m, "pw.b", 1, 5, 0, 0, 0, 0.1f);
    int k1 = mk_node(m, "pw", RS_OP_CONV, (int[]){x, w1, b1}, 3);
    int r1 = mk_node(m, "relu1", RS_OP_RELU, (int[]){out_of(m, k1)}, 1);
    int w2 = mk_const(m, "c3.w", 4, 5, 5, 3, 3, 0.3f);
    int k2 = mk_node(m, "c3", RS_OP_CONV, (int[]){out_of(m, r1), w2}, 2);
    m->nodes[k2].pads[0] = m->nodes[k2].pads[1] = m->nodes[k2].pads[2] = m->nodes[k2].pads[3] = 1;
    int ad = mk_node(m, "res", RS_OP_ADD, (int[]){out_of(m, k2), out_of(m, r1)}, 2);
    int p = mk_node(m, "pool", RS_OP_MAXPOOL, (int[]){out_of(m, ad)}, 1);
    rs_node *pn = &m->nodes[p];
    pn->kernel[0] = pn->kernel[1] = 3;
    pn->strides[0] = pn->strides[1] = 2;
    pn->pads[0] = pn->pads[1] = 1;
    pn->ceil_mode = 1;
    int f = mk_node(m, "flat", RS_OP_FLATTEN, (int[]){out_of(m, p)}, 1);
    long feat = features_of(m, f);
    int gw = mk_const(m, "fc.w", 2, feat, 6, 0, 0, 0.3f), gc = mk_const(m, "fc.c", 1, 6, 0, 0, 0, 0.5f);
    int g = mk_node(m, "fc", RS_OP_GEMM, (int[]){out_of(m, f), gw, gc}, 3);
    m->nodes[g].alpha = 0.7f, m->nodes[g].beta = 1.5f;
    int id = mk_node(m, "id", RS_OP_IDENTITY, (int[]){out_of(m, g)}, 1);
    m->output = out_of(m, id);
    check_model_grads("1x1 conv + residual add + padded pool + gemm(alpha,beta,C)", m, 3, 1,
                      NULL);
    float teacher[4 * 6];
    for (int k = 0; k < 24; ++k)
        teacher[k] = 2.0f * srand1();
    check_model_grads("same net, distillation loss (alpha 0.6, T 3)", m, 4, 2, teacher);
    check_flags_agree("same net, gradient buffers shared vs one per value", m, 3, 2, TN_NET_NO_GRAD_SHARE);
    check_flags_agree("same net, the residual's gradient written by the Add vs added", m, 3, 2,
                      TN_NET_NO_FIRST_WRITE);
    check_flags_agree_frozen("same net, gradient buffers shared vs one per value", m, 3, 2, TN_NET_NO_GRAD_SHARE);
    check_flags_agree_frozen("same net, the residual's gradient written by the Add vs added", m, 3, 2,
                             TN_NET_NO_FIRST_WRITE);
    model_free(m);
}

/* Larger maps: conv GEMMs run in chunks of images (1 per chunk at 24×24, 3 per chunk at 12×12
 * with a ragged last chunk for 5 images) — the chunking must not change any gradient. */
static void test_chunked_conv(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 2, 24, 24);
    int w1 = mk_const(m, "a.w", 4, 3, 2, 3, 3, 0.4f), b1 = mk_const(m, "a.b", 1, 3, 0, 0, 0, 0.1f);
    int k1 = mk_node(m, "a", RS_OP_CONV, (int[]){x, w1, b1}, 3);
    m->nodes[k1].pads[0] = m->nodes[k1].pads[1] = m->nodes[k1].pads[2] = m->nodes[k1].pads[3] = 1;
    int r = mk_node(m, "relu", RS_OP_RELU, (int[]){out_of(m, k1)}, 1);
    int w2 = mk_const(m, "b.w", 4, 2, 3, 3, 3, 0.3f);
    int k2 = mk_node(m, "b", RS_OP_CONV, (int[]){out_of(m, r), w2}, 2);
    m->nodes[k2].strides[0] = m->nodes[k2].strides[1] = 2;
    m->nodes[k2].pads[2] = m->nodes[k2].pads[3] = 1;
    flat_fc3(m, out_of(m, k2));
    check_model_grads("chunked conv GEMMs (24x24 and 12x12 maps, ragged last chunk)", m, 5, 1, NULL);
    model_free(m);
}

/* x.float() (Cast) and the mean-pooled head x.mean((2, 3)) (ReduceMean, keepdims 0 and 1). */
static void test_cast_mean_head(void)
{
    for (int keep = 0; keep < 2; ++keep) {
        rs_model *m = model_alloc();
        int x = mk_input(m, 3, 5, 5);
        int c = mk_node(m, "cast", RS_OP_CAST, (int[]){x}, 1);
        m->nodes[c].to = RS_DT_FLOAT;
        int w1 = mk_const(m, "c.w", 4, 4, 3, 3, 3, 0.4f), b1 = mk_const(m, "c.b", 1, 4, 0, 0, 0, 0.1f);
        int k1 = mk_node(m, "conv", RS_OP_CONV, (int[]){out_of(m, c), w1, b1}, 3);
        m->nodes[k1].pads[0] = m->nodes[k1].pads[1] = m->nodes[k1].pads[2] = m->nodes[k1].pads[3] = 1;
        int r = mk_node(m, "relu", RS_OP_RELU, (int[]){out_of(m, k1)}, 1);
        int mean = mk_node(m, "mean", RS_OP_REDUCEMEAN, (int[]){out_of(m, r)}, 1);
        m->nodes[mean].n_axes = 2;
        m->nodes[mean].axes[0] = 2, m->nodes[mean].axes[1] = -1;
        m->nodes[mean].keepdims = keep;
        int head = mean;
        if (keep)
            head = mk_node(m, "flat", RS_OP_FLATTEN, (int[]){out_of(m, mean)}, 1);
        int gw = mk_const(m, "fc.w", 2, 4, 5, 0, 0, 0.6f);
        int g = mk_node(m, "fc", RS_OP_MATMUL, (int[]){out_of(m, head), gw}, 2);
        m->output = out_of(m, g);
        check_model_grads(keep ? "cast + conv + mean over (2, -1) keepdims + flatten + matmul"
                               : "cast + conv + mean over (2, -1) + matmul",
                          m, 3, 1, NULL);
        model_free(m);
    }
}

/* MobileNetV3 / SE / DenseNet ingredients: HardSwish, a squeeze-and-excitation gate (mean,
 * 1x1 conv, HardSigmoid, Mul by the (N,C,1,1) gate), a Concat with a LeakyRelu branch, Sigmoid,
 * c - x and x / c with per-channel constants, a mean head. */
static void test_elementwise_se_concat(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 3, 4, 4);
    int w1 = mk_const(m, "c.w", 4, 4, 3, 3, 3, 0.5f), b1 = mk_const(m, "c.b", 1, 4, 0, 0, 0, 0.1f);
    int k1 = mk_node(m, "conv", RS_OP_CONV, (int[]){x, w1, b1}, 3);
    m->nodes[k1].pads[0] = m->nodes[k1].pads[1] = m->nodes[k1].pads[2] = m->nodes[k1].pads[3] = 1;
    int hs = mk_node(m, "hswish", RS_OP_HARDSWISH, (int[]){out_of(m, k1)}, 1);
    int sq = mk_node(m, "squeeze", RS_OP_REDUCEMEAN, (int[]){out_of(m, hs)}, 1);
    m->nodes[sq].n_axes = 2, m->nodes[sq].axes[0] = 2, m->nodes[sq].axes[1] = 3;
    int w2 = mk_const(m, "e.w", 4, 4, 4, 1, 1, 0.8f), b2 = mk_const(m, "e.b", 1, 4, 0, 0, 0, 0.3f);
    int ex = mk_node(m, "excite", RS_OP_CONV, (int[]){out_of(m, sq), w2, b2}, 3);
    int hsg = mk_node(m, "hsig", RS_OP_HARDSIGMOID, (int[]){out_of(m, ex)}, 1);
    m->nodes[hsg].alpha = 0.25f, m->nodes[hsg].beta = 0.45f;
    int gate = mk_node(m, "gate", RS_OP_MUL, (int[]){out_of(m, hs), out_of(m, hsg)}, 2);
    int lk = mk_node(m, "leaky", RS_OP_LEAKYRELU, (int[]){out_of(m, gate)}, 1);
    m->nodes[lk].alpha = 0.2f;
    int cat = mk_node(m, "cat", RS_OP_CONCAT, (int[]){out_of(m, gate), out_of(m, lk)}, 2);
    int sg = mk_node(m, "sig", RS_OP_SIGMOID, (int[]){out_of(m, cat)}, 1);
    int c8 = mk_const(m, "shift", 3, 8, 1, 1, 0, 1.0f);
    int sub = mk_node(m, "sub", RS_OP_SUB, (int[]){c8, out_of(m, sg)}, 2);
    int d8 = mk_const(m, "scale", 3, 8, 1, 1, 0, 1.0f);
    for (int k = 0; k < 8; ++k)
        m->values[d8].f[k] = 0.5f + 0.4f * m->values[d8].f[k]; /* away from 0 */
    int dv = mk_node(m, "div", RS_OP_DIV, (int[]){out_of(m, sub), d8}, 2);
    int mean = mk_node(m, "mean", RS_OP_REDUCEMEAN, (int[]){out_of(m, dv)}, 1);
    m->nodes[mean].n_axes = 2, m->nodes[mean].axes[0] = 2, m->nodes[mean].axes[1] = 3;
    m->nodes[mean].keepdims = 0;
    int gw = mk_const(m, "fc.w", 2, 8, 5, 0, 0, 0.7f);
    int g = mk_node(m, "fc", RS_OP_MATMUL, (int[]){out_of(m, mean), gw}, 2);
    m->output = out_of(m, g);
    check_model_grads("hardswish, SE gate (Mul by (N,C,1,1)), concat, leaky, sigmoid, c - x, x / c",
                      m, 3, 1, NULL);
    check_flags_agree("hardswish, SE gate, concat: gradient buffers shared vs one per value", m, 3, 1,
                      TN_NET_NO_GRAD_SHARE);
    model_free(m);
}

static int mk_int(rs_model *m, const char *name, int64_t a)
{
    int v = model_add_value(m, name, NULL);
    rs_value *c = &m->values[v];
    c->is_const = 1;
    c->dtype = RS_DT_INT64;
    c->ndim = 1;
    c->dims[0] = 1;
    c->i64 = malloc(sizeof *c->i64);
    c->i64[0] = a;
    return v;
}

/* ShuffleNet / SE-ResNet / MobileNetV3 layout ops: PRelu (learned slope), a channel Slice with
 * a step, Transpose, Expand of a (N,C,1,1) gate whose repeats add up in backward. */
static void test_layout_ops(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 3, 4, 5);
    int w1 = mk_const(m, "c.w", 4, 6, 3, 1, 1, 0.6f);
    int k1 = mk_node(m, "conv", RS_OP_CONV, (int[]){x, w1}, 2);
    int sl = mk_const(m, "slope", 3, 6, 1, 1, 0, 0.3f);
    int pr = mk_node(m, "prelu", RS_OP_PRELU, (int[]){out_of(m, k1), sl}, 2);
    int s0 = mk_int(m, "st", 1), s1 = mk_int(m, "en", 6), s2 = mk_int(m, "ax", 1), s3 = mk_int(m, "sp", 2);
    int sc = mk_node(m, "slice", RS_OP_SLICE, (int[]){out_of(m, pr), s0, s1, s2, s3}, 5);
    int tr = mk_node(m, "transpose", RS_OP_TRANSPOSE, (int[]){out_of(m, sc)}, 1);
    m->nodes[tr].n_axes = 4;
    m->nodes[tr].axes[0] = 0, m->nodes[tr].axes[1] = 3, m->nodes[tr].axes[2] = 1, m->nodes[tr].axes[3] = 2;
    int mean = mk_node(m, "mean", RS_OP_REDUCEMEAN, (int[]){out_of(m, tr)}, 1);
    m->nodes[mean].n_axes = 2, m->nodes[mean].axes[0] = 2, m->nodes[mean].axes[1] = 3;
    int shp = model_add_value(m, "shape", NULL);
    rs_value *sv = &m->values[shp];
    sv->is_const = 1, sv->dtype = RS_DT_INT64, sv->ndim = 1, sv->dims[0] = 4;
    sv->i64 = malloc(4 * sizeof *sv->i64);
    sv->i64[0] = 1, sv->i64[1] = 5, sv->i64[2] = 3, sv->i64[3] = 4;
    int ex = mk_node(m, "expand", RS_OP_EXPAND, (int[]){out_of(m, mean), shp}, 2);
    int mul = mk_node(m, "mul", RS_OP_MUL, (int[]){out_of(m, tr), out_of(m, ex)}, 2);
    int f = mk_node(m, "flat", RS_OP_FLATTEN, (int[]){out_of(m, mul)}, 1);
    long feat = features_of(m, f);
    int gw = mk_const(m, "fc.w", 2, feat, 4, 0, 0, 0.3f);
    int g = mk_node(m, "fc", RS_OP_MATMUL, (int[]){out_of(m, f), gw}, 2);
    m->output = out_of(m, g);
    check_model_grads("prelu, strided slice, transpose, expand of a gate", m, 3, 1, NULL);
    check_flags_agree("prelu, slice, transpose, expand: gradient buffers shared vs one per value", m, 3, 2,
                      TN_NET_NO_GRAD_SHARE);
    model_free(m);
}

/* Ties: an all-equal window sends the whole gradient to its first element (PyTorch). */
static void test_pool_ties(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 1, 4, 4);
    int p = mk_node(m, "pool", RS_OP_MAXPOOL, (int[]){x}, 1);
    m->nodes[p].kernel[0] = m->nodes[p].kernel[1] = 2;
    m->nodes[p].strides[0] = m->nodes[p].strides[1] = 2;
    int f = mk_node(m, "flat", RS_OP_FLATTEN, (int[]){out_of(m, p)}, 1);
    int gw = mk_const(m, "fc.w", 2, 3, 4, 0, 0, 0.5f);
    int g = mk_node(m, "fc", RS_OP_GEMM, (int[]){out_of(m, f), gw}, 2);
    m->nodes[g].trans_b = 1;
    m->output = out_of(m, g);
    model_infer_shapes(m, NULL);
    float xin[16] = {1, 1, 2, 0, 1, 1, 2, 2, 0, 3, 5, 5, 3, 3, 5, 1};
    uint8_t lab = 1;
    train_net *t = train_net_create(m, 1, 1, NULL, TRAIN_NET_INPUT_GRAD, NULL);
    CHECK(t && train_net_grad(t, xin, &lab, 1, NULL, 0, 1, NULL, NULL, NULL) == 0, "ties: grad runs");
    const float *dx = train_net_input_grad(t), *dzw = train_net_param_grad(t, gw);
    /* expected first-max positions: (0,0), (0,2), (2,1), (2,2) */
    int first[4] = {0, 2, 9, 10};
    int ok = 1;
    double mass = 0;
    for (int k = 0; k < 16; ++k) {
        int is_first = k == first[0] || k == first[1] || k == first[2] || k == first[3];
        if (!is_first && dx[k] != 0.0f)
            ok = 0;
        if (is_first && dx[k] == 0.0f)
            ok = 0;
        mass += dx[k];
    }
    CHECK(ok, "ties: gradient lands only on the first maximum of each window");
    /* the pooled gradient equals d loss / d pooled = W^T dz; its sum is preserved */
    double expect = 0;
    const float *z = train_net_logits(t);
    double mx = fmax(fmax(z[0], z[1]), z[2]), s = exp(z[0] - mx) + exp(z[1] - mx) + exp(z[2] - mx);
    for (int j = 0; j < 3; ++j) {
        double dz = exp(z[j] - mx) / s - (j == 1);
        for (int q = 0; q < 4; ++q)
            expect += dz * m->values[gw].f[j * 4 + q];
    }
    CHECK_CLOSE(mass, expect, 1e-5, "ties: gradient mass %.6f = sum of W^T dz %.6f (1e-5)", mass, expect);
    CHECK(dzw != NULL, "ties: weight gradient exists");
    train_net_free(t);
    model_free(m);
}

static void test_augment(void)
{
    /* 2 channels 3×4 bytes */
    uint8_t img[24];
    for (int k = 0; k < 24; ++k)
        img[k] = (uint8_t)(10 * k + 5);
    float out[24];
    tn_augment_u8(img, 2, 3, 4, 0, 0, 0, out);
    int ok = 1;
    for (int k = 0; k < 24; ++k)
        ok &= fabsf(out[k] - ((float)img[k] / 127.5f - 1.0f)) < 1e-6f;
    CHECK(ok, "augment: identity crop is plain normalisation");
    /* shift down 1, right -2 (crop offset oy=-1: first row is padding), then flip */
    tn_augment_u8(img, 2, 3, 4, -1, 2, 1, out);
    ok = 1;
    for (int c = 0; c < 2; ++c)
        for (int y = 0; y < 3; ++y)
            for (int x = 0; x < 4; ++x) {
                int sy = y - 1, sx = (3 - x) + 2;
                float want = (sy < 0 || sx > 3) ? -1.0f : (float)img[(c * 3 + sy) * 4 + sx] / 127.5f - 1.0f;
                ok &= fabsf(out[(c * 3 + y) * 4 + x] - want) < 1e-6f;
            }
    CHECK(ok, "augment: crop then flip, padding is raw 0 = -1 after normalisation");
    CHECK(out[0] == -1.0f && out[4 + 0] == -1.0f && out[4 + 3] != -1.0f,
          "augment: spot values (padding row, padded column, image pixel)");
}

static void test_schedule(void)
{
    train_options o;
    train_default_options(&o);
    o.lr = 0.1f;
    long total = 1000, warm = (long)(o.warmup * total);
    CHECK_CLOSE(train_lr_at(&o, 0, total), 0.1 / 25 + (0.1 - 0.1 / 25) / warm, 1e-7,
                "onecycle: starts near lr/25 (1e-7)");
    CHECK_CLOSE(train_lr_at(&o, warm - 1, total), 0.1, 1e-7, "onecycle: peak at the end of warm-up (1e-7)");
    CHECK(train_lr_at(&o, total - 1, total) < 0.1 * 1e-3, "onecycle: ends near lr/1e4");
    o.schedule = TRAIN_SCHED_COSINE;
    CHECK_CLOSE(train_lr_at(&o, warm + (total - warm) / 2, total), 0.05, 1e-6, "cosine: half-way is lr/2");
}

/* ---- training on a small synthetic task --------------------------------------------------------
 * 4 classes of 3×8×8 images: a bright 3×3 blob in one of the four quadrants, plus noise. */
static void make_task(int n, float *x, uint8_t *lab)
{
    for (int i = 0; i < n; ++i) {
        int c = (int)(urand() * 4);
        lab[i] = (uint8_t)c;
        float *im = x + (size_t)i * 192;
        for (int k = 0; k < 192; ++k)
            im[k] = 0.3f * srand1();
        int oy = (c / 2) * 4 + (int)(urand() * 2), ox = (c % 2) * 4 + (int)(urand() * 2);
        for (int ch = 0; ch < 3; ++ch)
            for (int y = 0; y < 3; ++y)
                for (int xx = 0; xx < 3; ++xx)
                    im[ch * 64 + (oy + y) * 8 + ox + xx] += 1.0f;
    }
}

static rs_model *task_model(int *conv_w, int *fc_w)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 3, 8, 8);
    int w = mk_const(m, "conv.w", 4, 4, 3, 3, 3, 1), b = mk_const(m, "conv.b", 1, 4, 0, 0, 0, 1);
    int k = mk_node(m, "conv", RS_OP_CONV, (int[]){x, w, b}, 3);
    m->nodes[k].pads[0] = m->nodes[k].pads[1] = m->nodes[k].pads[2] = m->nodes[k].pads[3] = 1;
    int r = mk_node(m, "relu", RS_OP_RELU, (int[]){out_of(m, k)}, 1);
    int p = mk_node(m, "pool", RS_OP_MAXPOOL, (int[]){out_of(m, r)}, 1);
    m->nodes[p].kernel[0] = m->nodes[p].kernel[1] = 2;
    m->nodes[p].strides[0] = m->nodes[p].strides[1] = 2;
    int f = mk_node(m, "flat", RS_OP_FLATTEN, (int[]){out_of(m, p)}, 1);
    int gw = mk_const(m, "fc.w", 2, 4, 64, 0, 0, 1), gb = mk_const(m, "fc.b", 1, 4, 0, 0, 0, 1);
    int g = mk_node(m, "fc", RS_OP_GEMM, (int[]){out_of(m, f), gw, gb}, 3);
    m->nodes[g].trans_b = 1;
    m->output = out_of(m, g);
    model_infer_shapes(m, NULL);
    train_init_params(m, 7);
    if (conv_w)
        *conv_w = w;
    if (fc_w)
        *fc_w = gw;
    return m;
}

typedef struct epoch_log {
    int n;
    double loss[16], acc[16], val[16];
} epoch_log;

static int log_epoch(void *user, const train_epoch_stats *s)
{
    epoch_log *l = user;
    if (l->n < 16) {
        l->loss[l->n] = s->train_loss;
        l->acc[l->n] = s->train_acc;
        l->val[l->n] = s->val_acc;
        ++l->n;
    }
    return 0;
}

static int cancel_after(void *user, double fraction, const char *what)
{
    (void)fraction, (void)what;
    return --*(int *)user <= 0;
}

static void test_training(void)
{
    enum { NTR = 768, NVA = 256 };
    float *x = malloc((NTR + NVA) * 192 * sizeof(float));
    uint8_t *lab = malloc(NTR + NVA);
    make_task(NTR + NVA, x, lab);
    train_data tr = {.n = NTR, .c = 3, .h = 8, .w = 8, .f = x, .labels = lab};
    train_data va = {.n = NVA, .c = 3, .h = 8, .w = 8, .f = x + NTR * 192, .labels = lab + NTR};
    train_options o;
    train_default_options(&o);
    o.epochs = 8;
    o.batch = 32;
    o.lr = 0.05f;
    o.nthreads = 2;
    o.augment = 0;
    epoch_log log = {0};
    o.on_epoch = log_epoch;
    o.epoch_user = &log;
    rs_err e = {{0}};

    rs_model *m = task_model(NULL, NULL);
    double acc0 = 0;
    train_evaluate(m, &va, 2, &acc0, NULL, &e);
    int rc = train_model(m, &tr, &va, &o, NULL, &e);
    CHECK(rc == 0, "synthetic: train_model succeeds (%s)", e.msg);
    CHECK(log.n == 8, "synthetic: 8 epoch callbacks (%d)", log.n);
    CHECK(log.loss[7] < 0.5 * log.loss[0], "synthetic: loss falls %.3f -> %.3f (at least halves)",
          log.loss[0], log.loss[7]);
    CHECK(log.acc[7] > log.acc[0] && log.val[7] >= 0.9,
          "synthetic: accuracy rises (train %.3f -> %.3f, val %.3f before, %.3f after >= 0.9)",
          log.acc[0], log.acc[7], acc0, log.val[7]);
    double acc1 = 0;
    train_evaluate(m, &va, 1, &acc1, NULL, &e);
    CHECK(fabs(acc1 - log.val[7]) < 1e-12, "synthetic: train_evaluate agrees with the epoch report");

    /* determinism: same seed and threads -> bit-identical weights; other seed -> different */
    rs_model *a = task_model(NULL, NULL), *b = task_model(NULL, NULL), *c = task_model(NULL, NULL);
    o.on_epoch = NULL;
    o.epochs = 2;
    o.augment = 1, o.pad = 2; /* exercise the float augmentation path as well */
    train_model(a, &tr, NULL, &o, NULL, &e);
    train_model(b, &tr, NULL, &o, NULL, &e);
    o.seed = 2;
    train_model(c, &tr, NULL, &o, NULL, &e);
    int same = 1, differ = 0;
    for (int v = 0; v < a->n_values; ++v)
        if (a->values[v].is_const) {
            size_t bytes = (size_t)model_value_numel(&a->values[v]) * sizeof(float);
            same &= memcmp(a->values[v].f, b->values[v].f, bytes) == 0;
            differ |= memcmp(a->values[v].f, c->values[v].f, bytes) != 0;
        }
    CHECK(same, "determinism: same seed and threads give bit-identical weights");
    CHECK(differ, "determinism: another seed gives different weights");

    /* bytes + augmentation: deterministic too (3×8×8 "images" as raw bytes) */
    uint8_t *u8 = malloc(NTR * 192);
    for (int k = 0; k < NTR * 192; ++k)
        u8[k] = (uint8_t)fminf(255.0f, fmaxf(0.0f, (x[k] + 1.0f) * 127.5f));
    train_data tu = {.n = NTR, .c = 3, .h = 8, .w = 8, .u8 = u8, .labels = lab};
    model_free(a), model_free(b);
    a = task_model(NULL, NULL), b = task_model(NULL, NULL);
    o.seed = 5;
    train_epoch_stats sa, sb;
    train_model(a, &tu, NULL, &o, &sa, &e);
    train_model(b, &tu, NULL, &o, &sb, &e);
    same = sa.train_loss == sb.train_loss;
    for (int v = 0; v < a->n_values; ++v)
        if (a->values[v].is_const)
            same &= memcmp(a->values[v].f, b->values[v].f,
                           (size_t)model_value_numel(&a->values[v]) * sizeof(float)) == 0;
    CHECK(same, "determinism: byte inputs with crop+flip, bit-identical (loss %.6f)", sa.train_loss);

    /* frozen mask: only fc.w trains; conv weights and every bias stay bit-identical */
    int cw, fw;
    rs_model *fz = task_model(&cw, &fw), *orig = task_model(NULL, NULL);
    uint8_t *mask = calloc((size_t)fz->n_values, 1);
    mask[fw] = 1;
    o.trainable = mask;
    o.seed = 1;
    train_model(fz, &tr, NULL, &o, NULL, &e);
    int frozen_same = 1, trained_changed = 0;
    for (int v = 0; v < fz->n_values; ++v)
        if (fz->values[v].is_const) {
            int eq = memcmp(fz->values[v].f, orig->values[v].f,
                            (size_t)model_value_numel(&fz->values[v]) * sizeof(float)) == 0;
            if (v == fw)
                trained_changed = !eq;
            else
                frozen_same &= eq;
        }
    CHECK(frozen_same, "frozen mask: frozen parameters are bit-identical after training");
    CHECK(trained_changed, "frozen mask: the trainable parameter changed");
    o.trainable = NULL;

    /* cancellation */
    int budget = 3;
    o.progress = cancel_after;
    o.progress_user = &budget;
    rc = train_model(c, &tr, NULL, &o, NULL, &e);
    CHECK(rc == RS_CANCELLED, "cancel: progress callback cancels (rc %d)", rc);

    free(mask), free(u8), free(x), free(lab);
    model_free(m), model_free(a), model_free(b), model_free(c), model_free(fz), model_free(orig);
}

static void test_reference_net(void)
{
    rs_err e = {{0}};
    rs_model *m = train_reference_net(3, &e);
    if (!CHECK(m != NULL, "reference net builds (%s)", e.msg))
        return;
    int64_t params, macs;
    model_totals(m, &params, &macs);
    CHECK(params == 62006, "reference net has 62,006 parameters (%lld)", (long long)params);
    const char *names[5] = {"conv1", "conv2", "fc1", "fc2", "fc3"};
    int found = 1;
    for (int i = 0; i < 5; ++i)
        found &= model_find_node(m, names[i]) >= 0;
    CHECK(found, "reference net has nodes conv1, conv2, fc1, fc2, fc3");
    CHECK(m->values[m->output].dims[1] == 10, "reference net outputs 10 logits");
    /* init bound 1/sqrt(fan_in): conv1 fan_in 75, fc1 400 */
    const rs_value *w1 = &m->values[model_find_value(m, "conv1.weight")];
    const rs_value *f1 = &m->values[model_find_value(m, "fc1.weight")];
    double m1 = 0, mf = 0;
    for (int k = 0; k < 450; ++k)
        m1 = fmax(m1, fabs(w1->f[k]));
    for (int k = 0; k < 48000; ++k)
        mf = fmax(mf, fabs(f1->f[k]));
    CHECK(m1 <= 1 / sqrt(75.0) && m1 > 0.9 / sqrt(75.0) && mf <= 0.05 && mf > 0.049,
          "init: |conv1.weight| max %.4f within 1/sqrt(75), |fc1.weight| max %.4f within 1/sqrt(400)",
          m1, mf);
    model_free(m);
}

/* A BatchNormalization node on the output of node `in`: γ around 1, β, running mean and variance. */
static int mk_bn(rs_model *m, const char *name, int in, int C)
{
    char nm[4][64];
    const char *suffix[4] = {"g", "b", "rm", "rv"};
    for (int k = 0; k < 4; ++k)
        snprintf(nm[k], sizeof nm[k], "%s.%s", name, suffix[k]);
    int g = mk_const(m, nm[0], 1, C, 0, 0, 0, 0.3f), b = mk_const(m, nm[1], 1, C, 0, 0, 0, 0.5f);
    int rm = mk_const(m, nm[2], 1, C, 0, 0, 0, 0.3f), rv = mk_const(m, nm[3], 1, C, 0, 0, 0, 0.2f);
    for (int c = 0; c < C; ++c)
        m->values[g].f[c] += 1.0f, m->values[rv].f[c] += 0.8f;
    int k = mk_node(m, name, RS_OP_BATCHNORM, (int[]){out_of(m, in), g, b, rm, rv}, 5);
    m->nodes[k].epsilon = 1e-5f;
    return k;
}

/* 3×6×6 input, 3×3 conv (4 channels, padded), BatchNormalization, ReLU: returns the ReLU node. */
static int mk_stem(rs_model *m)
{
    int x = mk_input(m, 3, 6, 6);
    int w1 = mk_const(m, "c1.w", 4, 4, 3, 3, 3, 0.4f);
    int c1 = mk_node(m, "c1", RS_OP_CONV, (int[]){x, w1}, 2);
    m->nodes[c1].pads[0] = m->nodes[c1].pads[1] = m->nodes[c1].pads[2] = m->nodes[c1].pads[3] = 1;
    int b1 = mk_bn(m, "bn1", c1, 4);
    return mk_node(m, "relu1", RS_OP_RELU, (int[]){out_of(m, b1)}, 1);
}

/* Spatial mean and a 4 → 5 Gemm after node last: the model's output. */
static void mk_head(rs_model *m, int last)
{
    int f = mk_node(m, "mean", RS_OP_REDUCEMEAN, (int[]){out_of(m, last)}, 1);
    m->nodes[f].n_axes = 2;
    m->nodes[f].axes[0] = 2, m->nodes[f].axes[1] = 3;
    m->nodes[f].keepdims = 0;
    int gw = mk_const(m, "fc.w", 2, 5, 4, 0, 0, 0.5f), gb = mk_const(m, "fc.b", 1, 5, 0, 0, 0, 0.1f);
    int g = mk_node(m, "fc", RS_OP_GEMM, (int[]){out_of(m, f), gw, gb}, 3);
    m->nodes[g].trans_b = 1;
    m->output = out_of(m, g);
}

/* BatchNormalization with the ReLU or Clip that alone reads it applied in its own passes (forward
 * and mask in the backward), one whose output is also read by an Add (not fused), and that Add of
 * two activations with its ReLU fused, in training mode (batch statistics shared by 2 workers)
 * and eval mode (running statistics). */
static void test_bn_activation(void)
{
    for (int running = 0; running < 2; ++running) {
        rs_model *m = model_alloc();
        int r1 = mk_stem(m);
        int w2 = mk_const(m, "c2.w", 4, 4, 4, 1, 1, 0.5f);
        int c2 = mk_node(m, "c2", RS_OP_CONV, (int[]){out_of(m, r1), w2}, 2);
        int b2 = mk_bn(m, "bn2", c2, 4);
        int r6 = mk_node(m, "relu6", RS_OP_CLIP, (int[]){out_of(m, b2)}, 1);
        m->nodes[r6].clip_min = 0.0f, m->nodes[r6].clip_max = 0.6f;
        int b3 = mk_bn(m, "bn3", r6, 4);
        int r3 = mk_node(m, "relu3", RS_OP_RELU, (int[]){out_of(m, b3)}, 1);
        int ad = mk_node(m, "add", RS_OP_ADD, (int[]){out_of(m, r3), out_of(m, b3)}, 2);
        int r4 = mk_node(m, "relu4", RS_OP_RELU, (int[]){out_of(m, ad)}, 1);
        mk_head(m, r4);
        ref_bn_running = running;
        check_model_grads(running ? "BatchNormalization (running statistics) + fused ReLU / Clip, Add + ReLU"
                                  : "BatchNormalization (batch statistics) + fused ReLU / Clip, Add + ReLU",
                          m, 4, running ? 1 : 2, NULL);
        ref_bn_running = 0;
        model_free(m);
    }
}

/* Largest |a − b| over n floats relative to the largest |b| (0 when both are all zero). */
static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, big = 0;
    for (size_t k = 0; k < n; ++k) {
        if (fabs((double)a[k] - b[k]) > d)
            d = fabs((double)a[k] - b[k]);
        if (fabs((double)b[k]) > big)
            big = fabs((double)b[k]);
    }
    return big > 0 ? d / big : d;
}

/* Logits, loss and every gradient of m with and without extra train_net_create flags: the same
 * bits. The running statistics a training pass moves (the shift of the batch moments) are put
 * back between the two, whole: model_value_numel, not numel (one image's count, which skips the
 * first dimension). */
static void flags_agree(const char *what, rs_model *m, int n, int nthreads, int flags_b, const uint8_t *trainable,
                        int input_grad)
{
    double tol = 0.0;
    long F;
    int C;
    float *x;
    uint8_t *lab;
    random_batch(what, m, n, &F, &C, &x, &lab);
    float *saved[64] = {0};
    for (int v = 0; v < m->n_values && v < 64; ++v)
        if (is_bn_statistic(m, v)) {
            size_t cnt = (size_t)model_value_numel(&m->values[v]);
            saved[v] = malloc(cnt * sizeof(float));
            memcpy(saved[v], m->values[v].f, cnt * sizeof(float));
        }
    train_net *t[2] = {NULL, NULL};
    double loss[2] = {0, 0};
    rs_err e = {{0}};
    for (int k = 0; k < 2; ++k) {
        for (int v = 0; v < m->n_values && v < 64; ++v)
            if (saved[v])
                memcpy(m->values[v].f, saved[v], (size_t)model_value_numel(&m->values[v]) * sizeof(float));
        t[k] = train_net_create(m, n, nthreads, trainable, (input_grad ? TRAIN_NET_INPUT_GRAD : 0) | (k ? flags_b : 0),
                                &e);
        if (!CHECK(t[k] != NULL, "%s: train_net_create (%s)", what, e.msg))
            goto out;
        if (ref_bn_running)
            train_net_set_training(t[k], 0);
        /* twice, the statistics put back in between: the second call finds its gradient buffers
         * holding the first call's values, which zeroing and first writers must not let through */
        for (int call = 0; call < 2; ++call) {
            for (int v = 0; v < m->n_values && v < 64 && call; ++v)
                if (saved[v])
                    memcpy(m->values[v].f, saved[v], (size_t)model_value_numel(&m->values[v]) * sizeof(float));
            int correct = 0;
            CHECK(train_net_grad(t[k], x, lab, n, NULL, 0.0f, 1.0f, &loss[k], &correct, &e) == 0,
                  "%s: train_net_grad (%s, call %d)", what, e.msg, call + 1);
        }
    }
    CHECK(fabs(loss[0] - loss[1]) <= tol * fabs(loss[1]), "%s: loss %.9g vs %.9g (%g)", what, loss[0], loss[1], tol);
    double d = max_rel_diff(train_net_logits(t[0]), train_net_logits(t[1]), (size_t)(n * C));
    CHECK(d <= tol, "%s: logits agree (max diff %.2g of the largest <= %g)", what, d, tol);
    if (input_grad) {
        d = max_rel_diff(train_net_input_grad(t[0]), train_net_input_grad(t[1]), (size_t)(n * F));
        CHECK(d <= tol, "%s: input gradients agree (max diff %.2g of the largest <= %g)", what, d, tol);
    }
    double worst = 0;
    int params = 0, missing = 0;
    for (int v = 0; v < m->n_values; ++v) {
        const rs_value *val = &m->values[v];
        if (!val->is_const || val->dtype != RS_DT_FLOAT || is_bn_statistic(m, v))
            continue;
        if (trainable && !trainable[v]) {
            CHECK(!train_net_param_grad(t[0], v) && !train_net_param_grad(t[1], v),
                  "%s: frozen %s has no gradient", what, val->name);
            continue;
        }
        const float *g0 = train_net_param_grad(t[0], v), *g1 = train_net_param_grad(t[1], v);
        ++params;
        if (!g0 || !g1) {
            ++missing;
            continue;
        }
        d = max_rel_diff(g0, g1, (size_t)model_value_numel(val));
        if (d > worst)
            worst = d;
    }
    CHECK(!missing && worst <= tol, "%s: gradients of all %d parameters agree (max diff %.2g of the largest <= %g)",
          what, params, worst, tol);
out:
    train_net_free(t[0]);
    train_net_free(t[1]);
    for (int v = 0; v < 64; ++v)
        free(saved[v]);
    free(x), free(lab);
}

static void check_flags_agree(const char *what, rs_model *m, int n, int nthreads, int flags_b)
{
    flags_agree(what, m, n, nthreads, flags_b, NULL, 1);
}

/* The same comparison with parts of the net frozen (the masks fine-tuning and compress pass) and
 * no input gradient, so that some backward passes are skipped and some gradients have no reader:
 * the first half of the parameters frozen, then the second half, then every third one. */
static void check_flags_agree_frozen(const char *what, rs_model *m, int n, int nthreads, int flags_b)
{
    uint8_t *mask = calloc((size_t)m->n_values + 1, 1);
    int params = 0;
    for (int v = 0; v < m->n_values; ++v)
        params += m->values[v].is_const && m->values[v].dtype == RS_DT_FLOAT && !is_bn_statistic(m, v);
    static const char *const kind[3] = {"first half frozen", "second half frozen", "every third frozen"};
    for (int k = 0; k < 3 && mask; ++k) {
        int p = 0;
        for (int v = 0; v < m->n_values; ++v) {
            mask[v] = 0;
            if (!m->values[v].is_const || m->values[v].dtype != RS_DT_FLOAT || is_bn_statistic(m, v))
                continue;
            mask[v] = k == 0 ? p >= params / 2 : k == 1 ? p < params / 2 : p % 3 != 0;
            ++p;
        }
        char w[320];
        snprintf(w, sizeof w, "%s (%s, no input gradient)", what, kind[k]);
        flags_agree(w, m, n, nthreads, flags_b, mask, 0);
    }
    CHECK(mask != NULL, "%s: out of memory", what);
    free(mask);
}

/* A BatchNormalization without activation whose output only an Add reads (the residual branch's
 * last one): the Add applies its scale and shift in its own pass (tn_fuse_bn_add), the
 * BatchNormalization on either side of the Add, the Add followed by ReLU, Clip or nothing fused.
 * Gradients against finite differences; logits, loss and gradients as unfused (check_flags_agree). */
static void test_bn_add(void)
{
    /* which nodes the fusion marks */
    tn_node tn[3] = {{.op = RS_OP_BATCHNORM, .x = 1, .x2 = -1, .y = 2, .cin = 4, .K = 9, .ysz = 36, .bn_off = 7},
                     {.op = RS_OP_ADD, .x = 3, .x2 = 2, .y = 4, .xsz = 36, .ysz = 36},
                     {.op = RS_OP_BATCHNORM, .x = 4, .x2 = -1, .y = 5, .cin = 4, .K = 9, .ysz = 36}};
    int uses[6] = {1, 1, 1, 1, 1, 1};
    tn_fuse_bn_add(tn, 3, uses);
    CHECK(tn[0].into_add && tn[1].add_bn && tn[1].add_bn_x == 1 && tn[1].add_bn_y == 2 && tn[1].add_bn_off == 7 &&
              !tn[2].into_add,
          "tn_fuse_bn_add: the BatchNormalization read only by the Add goes into it, the other not");
    uses[2] = 2;
    memset(&tn[0].into_add, 0, sizeof tn[0] - offsetof(tn_node, into_add));
    memset(&tn[1].into_add, 0, sizeof tn[1] - offsetof(tn_node, into_add));
    tn_fuse_bn_add(tn, 3, uses);
    CHECK(!tn[0].into_add && !tn[1].add_bn, "tn_fuse_bn_add: not when another node reads the output too");

    for (int tail = 0; tail < 3; ++tail)
        for (int running = 0; running < 2; ++running) {
            rs_model *m = model_alloc();
            int r1 = mk_stem(m);
            int w2 = mk_const(m, "c2.w", 4, 4, 4, 3, 3, 0.3f);
            int c2 = mk_node(m, "c2", RS_OP_CONV, (int[]){out_of(m, r1), w2}, 2);
            m->nodes[c2].pads[0] = m->nodes[c2].pads[1] = m->nodes[c2].pads[2] = m->nodes[c2].pads[3] = 1;
            int b2 = mk_bn(m, "bn2", c2, 4);
            int a1 = mk_node(m, "add1", RS_OP_ADD, (int[]){out_of(m, b2), out_of(m, r1)}, 2);
            int r2 = mk_node(m, "relu2", RS_OP_RELU, (int[]){out_of(m, a1)}, 1);
            int w3 = mk_const(m, "c3.w", 4, 4, 4, 1, 1, 0.5f);
            int c3 = mk_node(m, "c3", RS_OP_CONV, (int[]){out_of(m, r2), w3}, 2);
            int b3 = mk_bn(m, "bn3", c3, 4);
            int a2 = mk_node(m, "add2", RS_OP_ADD, (int[]){out_of(m, r2), out_of(m, b3)}, 2);
            int last = a2;
            if (tail == 1)
                last = mk_node(m, "relu3", RS_OP_RELU, (int[]){out_of(m, a2)}, 1);
            if (tail == 2) {
                last = mk_node(m, "relu6", RS_OP_CLIP, (int[]){out_of(m, a2)}, 1);
                m->nodes[last].clip_min = 0.0f, m->nodes[last].clip_max = 0.6f;
            }
            mk_head(m, last);
            ref_bn_running = running;
            char what[160];
            snprintf(what, sizeof what, "BatchNormalization into Add (%s statistics; second Add then %s)",
                     running ? "running" : "batch", tail == 0 ? "nothing" : tail == 1 ? "ReLU" : "Clip");
            check_model_grads(what, m, 4, running ? 1 : 2, NULL);
            char what2[256];
            snprintf(what2, sizeof what2, "%s, fused vs unfused", what);
            check_flags_agree(what2, m, 4, running ? 1 : 2, TN_NET_NO_BN_ADD);
            snprintf(what2, sizeof what2, "%s, gradient buffers shared vs one per value", what);
            check_flags_agree(what2, m, 4, running ? 1 : 2, TN_NET_NO_GRAD_SHARE);
            snprintf(what2, sizeof what2, "%s, first readers' gradients written vs added", what);
            check_flags_agree(what2, m, 4, running ? 1 : 2, TN_NET_NO_FIRST_WRITE);
            snprintf(what2, sizeof what2, "%s, sharing and first writers on vs off", what);
            check_flags_agree_frozen(what2, m, 4, running ? 1 : 2, TN_NET_NO_GRAD_SHARE | TN_NET_NO_FIRST_WRITE);
            ref_bn_running = 0;
            model_free(m);
        }
}

/* Convolutions with 9 output channels over rows 10 and 5 wide: the weight gradient's transposes of
 * dY run whole 8 × 8 register blocks and ragged edges (rows and columns), the padded stride-1 path
 * (taking its BatchNormalization's moments) and the im2col one (stride 2); every weight checked. */
static void test_wide_conv(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 2, 10, 10);
    int w1 = mk_const(m, "c1.w", 4, 9, 2, 3, 3, 0.4f); /* no bias: BatchNormalization cancels it */
    int k1 = mk_node(m, "c1", RS_OP_CONV, (int[]){x, w1}, 2);
    m->nodes[k1].pads[0] = m->nodes[k1].pads[1] = m->nodes[k1].pads[2] = m->nodes[k1].pads[3] = 1;
    int bn = mk_bn(m, "bn", k1, 9);
    int r = mk_node(m, "relu", RS_OP_RELU, (int[]){out_of(m, bn)}, 1);
    int w2 = mk_const(m, "c2.w", 4, 9, 9, 3, 3, 0.2f);
    int k2 = mk_node(m, "c2", RS_OP_CONV, (int[]){out_of(m, r), w2}, 2);
    m->nodes[k2].pads[0] = m->nodes[k2].pads[1] = m->nodes[k2].pads[2] = m->nodes[k2].pads[3] = 1;
    m->nodes[k2].strides[0] = m->nodes[k2].strides[1] = 2;
    int mean = mk_node(m, "mean", RS_OP_REDUCEMEAN, (int[]){out_of(m, k2)}, 1);
    m->nodes[mean].n_axes = 2;
    m->nodes[mean].axes[0] = 2, m->nodes[mean].axes[1] = 3;
    m->nodes[mean].keepdims = 0;
    int gw = mk_const(m, "fc.w", 2, 9, 4, 0, 0, 0.6f);
    int g = mk_node(m, "fc", RS_OP_MATMUL, (int[]){out_of(m, mean), gw}, 2);
    m->output = out_of(m, g);
    fd_samples = 1000;
    check_model_grads("9-channel convs 10 and 5 wide (padded + BN, stride 2): every weight", m, 3, 1, NULL);
    fd_samples = 40;
    model_free(m);
}

/* Convolutions with enough channels for the Winograd passes (forward, input and weight gradients,
 * grad_conv.c): 3×3 pad 1 on an odd 7×9 map into a BatchNormalization, then pads (0, 2, 2, 0)
 * with bias, whose input gradient is added to the one a 1×1 convolution reading the same
 * activation writes. */
static void test_wino_convs(void)
{
    rs_model *m = model_alloc();
    int x = mk_input(m, 6, 7, 9);
    int w1 = mk_const(m, "c1.w", 4, 8, 6, 3, 3, 0.3f);
    int k1 = mk_node(m, "c1", RS_OP_CONV, (int[]){x, w1}, 2);
    m->nodes[k1].pads[0] = m->nodes[k1].pads[1] = m->nodes[k1].pads[2] = m->nodes[k1].pads[3] = 1;
    int bn = mk_bn(m, "bn", k1, 8);
    int r = mk_node(m, "relu", RS_OP_RELU, (int[]){out_of(m, bn)}, 1);
    int w2 = mk_const(m, "c2.w", 4, 7, 8, 3, 3, 0.3f), b2 = mk_const(m, "c2.b", 1, 7, 0, 0, 0, 0.2f);
    int k2 = mk_node(m, "c2", RS_OP_CONV, (int[]){out_of(m, r), w2, b2}, 3);
    m->nodes[k2].pads[0] = 0, m->nodes[k2].pads[1] = 2, m->nodes[k2].pads[2] = 2, m->nodes[k2].pads[3] = 0;
    int w3 = mk_const(m, "c3.w", 4, 7, 8, 1, 1, 0.3f);
    int k3 = mk_node(m, "c3", RS_OP_CONV, (int[]){out_of(m, r), w3}, 2);
    int ad = mk_node(m, "add", RS_OP_ADD, (int[]){out_of(m, k2), out_of(m, k3)}, 2);
    flat_fc3(m, out_of(m, ad));
    check_model_grads("3x3 convs 6->8->7 channels on 7x9 (Winograd passes)", m, 3, 2, NULL);
    model_free(m);
}

int main(void)
{
    test_wide_conv();
    test_wino_convs();
    test_bn_activation();
    test_bn_add();
    test_conv_pool_gemm();
    test_grouped_depthwise_matmul();
    test_depthwise3x3();
    test_depthwise_general();
    test_same_conv_taps();
    test_dag_and_distill();
    test_chunked_conv();
    test_pool_ties();
    test_cast_mean_head();
    test_elementwise_se_concat();
    test_layout_ops();
    test_augment();
    test_schedule();
    test_training();
    test_reference_net();
    return check_done();
}
