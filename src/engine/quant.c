/* quant.c — int8 weights for factorized networks (see quant.h for the contract). */
#include "rankscope/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/export.h"

int quant_fake_weights(rs_model *m, rs_err *e)
{
    /* through the exporter's own dequantizer, so the two can never disagree */
    rs_model *d = export_c_dequantize(m, e);
    if (!d)
        return -1;
    for (int v = 0; v < m->n_values; ++v) {
        rs_value *x = &m->values[v];
        if (x->is_const && x->dtype == RS_DT_FLOAT && x->f)
            memcpy(x->f, d->values[v].f, (size_t)model_value_numel(x) * sizeof *x->f);
    }
    model_free(d);
    return 0;
}

int quant_train_hook(void *user, rs_model *m, rs_err *e)
{
    (void)user;
    return quant_fake_weights(m, e);
}

int quant_weight_bytes(const rs_model *m, int int8, int64_t *bytes, rs_err *e)
{
    export_c_opts eo = {.int8 = int8};
    export_c_stats st;
    char *h = NULL, *s = NULL;
    int rc = export_c_generate(m, &eo, &h, &s, &st, e);
    free(h);
    free(s);
    if (rc == 0)
        *bytes = st.weight_bytes;
    return rc;
}

/* ---- balancing ------------------------------------------------------------------------------- */

/* Elements of one channel of a weight: off + o·stride + i for o < outer, i < inner. */
typedef struct slice {
    int64_t off, outer, stride, inner;
} slice;

/* A product of two factors: layer a's output channel k feeds layer b's input channel k. */
typedef struct pair {
    int wa, ba, wb; /* value indices: a's weight, a's bias (-1), b's weight */
    int64_t rank;
    int a_rows;     /* a's weight is channel-major (Conv, Gemm transB) */
    int64_t a_inner, a_k;      /* rows: elements per channel; cols: K (rows of (K, N)) */
    slice b_col;    /* b's input channel 0; channel k adds k · b_step */
    int64_t b_step;
} pair;

static slice a_chan(const pair *p, int64_t k)
{
    if (p->a_rows)
        return (slice){k * p->a_inner, 1, 0, p->a_inner};
    return (slice){k, p->a_k, p->rank, 1};
}

static slice b_chan(const pair *p, int64_t k)
{
    slice s = p->b_col;
    s.off += k * p->b_step;
    return s;
}

static double slice_max(const float *w, slice s)
{
    double r = 0;
    for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i)
            r = fmax(r, fabs((double)w[s.off + o * s.stride + i]));
    return r;
}

static double slice_sq(const float *w, const float *d, slice s)
{
    double r = 0;
    for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i) {
            int64_t p = s.off + o * s.stride + i;
            double x = (double)w[p] - (d ? (double)d[p] : 0.0);
            r += x * x;
        }
    return r;
}

static void slice_scale(float *w, slice s, double f)
{
    for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i) {
            int64_t p = s.off + o * s.stride + i;
            w[p] = (float)((double)w[p] * f);
        }
}

static int uses(const rs_model *m, int v)
{
    int c = 0;
    for (int i = 0; i < m->n_nodes; ++i)
        for (int j = 0; j < m->nodes[i].n_in; ++j)
            c += m->nodes[i].in[j] == v;
    return c + (v == m->output);
}

static int const_float(const rs_model *m, int v)
{
    return v >= 0 && m->values[v].is_const && m->values[v].dtype == RS_DT_FLOAT &&
           m->values[v].f;
}

/* Is node a (feeding node b) the first factor of a product? Fills p. */
static int find_pair(const rs_model *m, int a, int b, pair *p)
{
    const rs_node *na = &m->nodes[a], *nb = &m->nodes[b];
    int lin_a = na->op == RS_OP_CONV || na->op == RS_OP_GEMM || na->op == RS_OP_MATMUL;
    if (!lin_a || na->n_in < 2 || !const_float(m, na->in[1]) || na->n_out < 1 ||
        nb->n_in < 2 || nb->in[0] != na->out[0] || !const_float(m, nb->in[1]) ||
        uses(m, na->out[0]) != 1 || uses(m, na->in[1]) != 1 || uses(m, nb->in[1]) != 1 ||
        na->in[1] == nb->in[1])
        return 0;
    const rs_value *wa = &m->values[na->in[1]], *wb = &m->values[nb->in[1]];
    memset(p, 0, sizeof *p);
    p->wa = na->in[1];
    p->wb = nb->in[1];
    p->ba = na->n_in > 2 ? na->in[2] : -1;
    if (na->op == RS_OP_CONV || (na->op == RS_OP_GEMM && na->trans_b)) {
        if (wa->ndim < 2)
            return 0;
        p->a_rows = 1;
        p->rank = wa->dims[0];
        p->a_inner = model_value_numel(wa) / wa->dims[0];
    } else {
        if (wa->ndim != 2)
            return 0;
        p->rank = wa->dims[1];
        p->a_k = wa->dims[0];
    }
    if (p->ba >= 0 && (!const_float(m, p->ba) || uses(m, p->ba) != 1 ||
                       model_value_numel(&m->values[p->ba]) != p->rank))
        return 0;
    if (nb->op == RS_OP_CONV) {
        if (nb->group != 1 || wb->ndim != 4 || wb->dims[1] != p->rank)
            return 0;
        int64_t khw = wb->dims[2] * wb->dims[3];
        p->b_col = (slice){0, wb->dims[0], wb->dims[1] * khw, khw};
        p->b_step = khw;
    } else if (nb->op == RS_OP_GEMM && !nb->trans_a && nb->trans_b) {
        if (wb->ndim != 2 || wb->dims[1] != p->rank)
            return 0;
        p->b_col = (slice){0, wb->dims[0], wb->dims[1], 1};
        p->b_step = 1;
    } else if ((nb->op == RS_OP_GEMM && !nb->trans_a) || nb->op == RS_OP_MATMUL) {
        if (wb->ndim != 2 || wb->dims[0] != p->rank)
            return 0;
        p->b_col = (slice){0, 1, 0, wb->dims[1]};
        p->b_step = wb->dims[1];
    } else {
        return 0;
    }
    /* a Conv feeding a Conv is a product only when a's output really is b's input, channelwise */
    return nb->op != RS_OP_CONV || na->op == RS_OP_CONV;
}

/* Numerator and denominator of the first-order product error (quant.h) of pairs under m. */
static int pair_error(const rs_model *m, const pair *ps, int np, double *err, rs_err *e)
{
    *err = 0;
    if (np == 0)
        return 0;
    rs_model *d = export_c_dequantize(m, e);
    if (!d)
        return -1;
    double num = 0, den = 0;
    for (int i = 0; i < np; ++i) {
        const pair *p = &ps[i];
        const float *a = m->values[p->wa].f, *b = m->values[p->wb].f;
        const float *qa = d->values[p->wa].f, *qb = d->values[p->wb].f;
        for (int64_t k = 0; k < p->rank; ++k) {
            double na = slice_sq(a, NULL, a_chan(p, k)), nb = slice_sq(b, NULL, b_chan(p, k));
            num += slice_sq(b, qb, b_chan(p, k)) * na + nb * slice_sq(a, qa, a_chan(p, k));
            den += na * nb;
        }
    }
    model_free(d);
    *err = den > 0 ? num / den : 0;
    return 0;
}

/* The weights a rescale of pair p touches (a's weight and bias, b's weight), saved or restored. */
typedef struct pair_saved {
    float *v[3];
    int64_t n[3];
} pair_saved;

static void pair_values(const rs_model *m, const pair *p, int idx[3], int64_t n[3])
{
    idx[0] = p->wa, idx[1] = p->ba, idx[2] = p->wb;
    for (int i = 0; i < 3; ++i)
        n[i] = idx[i] >= 0 ? model_value_numel(&m->values[idx[i]]) : 0;
}

static int pair_save(const rs_model *m, const pair *p, pair_saved *sv)
{
    int idx[3];
    pair_values(m, p, idx, sv->n);
    for (int i = 0; i < 3; ++i) {
        sv->v[i] = sv->n[i] ? malloc((size_t)sv->n[i] * sizeof(float)) : NULL;
        if (sv->n[i] && !sv->v[i])
            return -1;
        if (sv->n[i])
            memcpy(sv->v[i], m->values[idx[i]].f, (size_t)sv->n[i] * sizeof(float));
    }
    return 0;
}

static void pair_restore(rs_model *m, const pair *p, const pair_saved *sv)
{
    int idx[3];
    int64_t n[3];
    pair_values(m, p, idx, n);
    for (int i = 0; i < 3; ++i)
        if (sv->n[i])
            memcpy(m->values[idx[i]].f, sv->v[i], (size_t)sv->n[i] * sizeof(float));
}

static void pair_saved_free(pair_saved *sv)
{
    for (int i = 0; i < 3; ++i)
        free(sv->v[i]);
    memset(sv, 0, sizeof *sv);
}

/* Rescale pair p by rule (1: b's input channels to one range, 2: √(r1/r2)); the number of ranks
 * changed. */
static int pair_rescale(rs_model *m, const pair *p, int rule)
{
    float *a = m->values[p->wa].f, *b = m->values[p->wb].f;
    float *bias = p->ba >= 0 ? m->values[p->ba].f : NULL;
    double logg = 0;
    int nk = 0, scaled = 0;
    for (int64_t k = 0; rule == 1 && k < p->rank; ++k) {
        double r1 = slice_max(a, a_chan(p, k)), r2 = slice_max(b, b_chan(p, k));
        if (r1 > 0 && r2 > 0)
            logg += 0.5 * log(r1 * r2), ++nk;
    }
    double g = nk ? exp(logg / nk) : 1.0;
    for (int64_t k = 0; k < p->rank; ++k) {
        double r1 = slice_max(a, a_chan(p, k)), r2 = slice_max(b, b_chan(p, k));
        if (!(r1 > 0) || !(r2 > 0))
            continue;
        double f = rule == 1 ? g / r2 : sqrt(r1 / r2);
        if (fabs(f - 1.0) < 1e-6)
            continue;
        slice_scale(a, a_chan(p, k), 1.0 / f);
        if (bias)
            bias[k] = (float)((double)bias[k] / f);
        slice_scale(b, b_chan(p, k), f);
        ++scaled;
    }
    return scaled;
}

int quant_balance(rs_model *m, int sweeps, quant_balance_report *r, rs_err *e)
{
    quant_balance_report rep = {0};
    if (!m)
        return rs_fail(e, "quant_balance: no model");
    pair *ps = calloc((size_t)m->n_nodes + 1, sizeof *ps);
    if (!ps)
        return rs_fail(e, "quant_balance: out of memory");
    int np = 0;
    for (int a = 0; a < m->n_nodes; ++a)
        for (int b = 0; b < m->n_nodes; ++b)
            if (b != a && find_pair(m, a, b, &ps[np]))
                ++np;
    rep.pairs = np;
    double cur = 0;
    int rc = pair_error(m, ps, np, &rep.qerr_before, e);
    cur = rep.qerr_before;
    /* each pair takes the rule that lowers the error of all pairs most, or stays as it is: the
     * error can only go down (per output channel, a's share is unchanged by any rescale; b's
     * depends on how its input channels' ranges meet in each output channel) */
    for (int s = 0; rc == 0 && s < sweeps; ++s) {
        int changed = 0;
        rep.ranks_scaled = 0;
        for (int i = 0; rc == 0 && i < np; ++i) {
            pair_saved keep, best;
            memset(&keep, 0, sizeof keep);
            memset(&best, 0, sizeof best);
            int best_rule = 0, best_scaled = 0;
            if (pair_save(m, &ps[i], &keep) != 0)
                rc = rs_fail(e, "quant_balance: out of memory");
            for (int rule = 1; rc == 0 && rule <= 2; ++rule) {
                double err = 0;
                int scaled = pair_rescale(m, &ps[i], rule);
                if (scaled && (rc = pair_error(m, ps, np, &err, e)) == 0 && err < cur * (1 - 1e-9)) {
                    pair_saved_free(&best);
                    if (pair_save(m, &ps[i], &best) != 0)
                        rc = rs_fail(e, "quant_balance: out of memory");
                    cur = err, best_rule = rule, best_scaled = scaled;
                }
                pair_restore(m, &ps[i], &keep);
            }
            if (rc == 0 && best_rule) {
                pair_restore(m, &ps[i], &best);
                rep.ranks_scaled += best_scaled;
                changed = 1;
            }
            pair_saved_free(&keep);
            pair_saved_free(&best);
        }
        if (!changed)
            break;
    }
    if (rc == 0)
        rc = pair_error(m, ps, np, &rep.qerr_after, e);
    free(ps);
    if (r)
        *r = rep;
    return rc;
}

/* ---- the whole flow ---------------------------------------------------------------------------- */

void quant_default_options(quant_options *o)
{
    memset(o, 0, sizeof *o);
    finetune_default_options(&o->finetune);
    o->balance = 1;
    o->sweeps = 3;
}

static int accuracy(const rs_model *m, const train_data *val, int nthreads, int fake, double *acc,
                    rs_err *e)
{
    *acc = -1;
    if (!val || val->n <= 0)
        return 0;
    rs_model *c = model_clone(m);
    if (!c)
        return rs_fail(e, "quant: out of memory");
    int rc = fake ? quant_fake_weights(c, e) : 0;
    if (rc == 0)
        rc = train_evaluate(c, val, nthreads, acc, NULL, e);
    model_free(c);
    return rc;
}

int quant_compress(const rs_model *m, const train_data *train, const train_data *val,
                   const quant_options *o, rs_model **out, quant_report *r, rs_err *e)
{
    *out = NULL;
    quant_report rep;
    memset(&rep, 0, sizeof rep);
    rep.ft.start_val_acc = rep.ft.kept_val_acc = -1;
    if (!m || !o)
        return rs_fail(e, "quant_compress: no model or options");
    int nthreads = o->finetune.train.nthreads;
    if (quant_weight_bytes(m, 0, &rep.bytes_float, e) ||
        accuracy(m, val, nthreads, 0, &rep.val_float, e))
        return -1;
    rs_model *w = model_clone(m);
    if (!w)
        return rs_fail(e, "quant: out of memory");
    int rc = o->balance ? quant_balance(w, o->sweeps > 0 ? o->sweeps : 1, &rep.balance, e) : 0;
    if (rc == 0)
        rc = accuracy(w, val, nthreads, 1, &rep.val_ptq, e);
    if (rc == 0 && o->finetune.train.epochs > 0) {
        if (!train) {
            model_free(w);
            return rs_fail(e, "quant: fine-tuning needs training data");
        }
        finetune_options fo = o->finetune;
        fo.train.weight_quant = quant_train_hook;
        fo.train.weight_quant_user = NULL;
        fo.report = &rep.ft;
        rs_model *t = NULL;
        rc = finetune_run(w, NULL, train, val, &fo, &t, NULL, e);
        model_free(w);
        w = t;
        if (rc == RS_CANCELLED) {
            model_free(w);
            return rc;
        }
    }
    if (rc == 0)
        rc = quant_fake_weights(w, e);
    if (rc == 0)
        rc = accuracy(w, val, nthreads, 0, &rep.val_int8, e);
    if (rc == 0)
        rc = quant_weight_bytes(w, 1, &rep.bytes_int8, e);
    if (rc) {
        model_free(w);
        return rc;
    }
    if (r)
        *r = rep;
    *out = w;
    return 0;
}
