/* test_quant.c — int8 factors: balancing and the int8 round trip against an independent numpy
 * reference (tests/quant_ref.py, output committed as tests/data/quant_ref.f32); agreement with
 * the C exporter's dequantizer; the function of a balanced net is unchanged; quantization in the
 * training loop keeps float masters; quant_compress reports what its returned model scores. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rankscope/export.h"
#include "rankscope/infer.h"
#include "rankscope/plan.h"
#include "rankscope/quant.h"
#include "rankscope/train.h"
#include "testnet.h"

static int add_weight(rs_model *m, const char *name, int ndim, const int64_t *dims, const float *f)
{
    int v = model_add_value(m, name, NULL);
    rs_value *val = &m->values[v];
    val->is_const = 1;
    val->dtype = RS_DT_FLOAT;
    val->ndim = ndim;
    for (int i = 0; i < ndim; ++i)
        val->dims[i] = dims[i];
    size_t n = (size_t)model_value_numel(val);
    val->f = malloc(n * sizeof(float));
    memcpy(val->f, f, n * sizeof(float));
    return v;
}

static int add_layer(rs_model *m, const char *name, rs_op op, int x, int w, int b, int trans_b)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s_out", name);
    int y = model_add_value(m, buf, NULL);
    int n = model_add_node(m, name, op, NULL);
    rs_node *nd = &m->nodes[n];
    nd->n_in = b >= 0 ? 3 : 2;
    nd->in[0] = x, nd->in[1] = w, nd->in[2] = b;
    nd->n_out = 1, nd->out[0] = y;
    nd->trans_b = trans_b;
    return y;
}

/* The three reference cases as two-layer models (see quant_ref.py for the shapes). */
typedef struct refcase {
    const char *name;
    int ndim;
    int64_t d1[4], d2[4];
    rs_op op1, op2;
    int trans_b;
} refcase;

static const refcase cases[] = {
    {"gemm_t", 2, {8, 20}, {12, 8}, RS_OP_GEMM, RS_OP_GEMM, 1},
    {"gemm_n", 2, {20, 8}, {8, 12}, RS_OP_GEMM, RS_OP_MATMUL, 0},
    {"conv", 4, {6, 3, 5, 1}, {10, 6, 1, 5}, RS_OP_CONV, RS_OP_CONV, 0},
};

static int64_t count(int ndim, const int64_t *d)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i)
        n *= d[i];
    return n;
}

static rs_model *pair_model(const refcase *c, const float *w1, const float *b1, const float *w2)
{
    rs_model *m = model_alloc();
    int x = model_add_value(m, "input", NULL);
    rs_value *in = &m->values[x];
    if (c->ndim == 2) {
        in->ndim = 2, in->dims[0] = -1;
        in->dims[1] = c->trans_b ? c->d1[1] : c->d1[0];
    } else {
        in->ndim = 4, in->dims[0] = -1, in->dims[1] = 3, in->dims[2] = 9, in->dims[3] = 9;
    }
    m->input = x;
    int64_t rank = c->trans_b || c->ndim == 4 ? c->d1[0] : c->d1[1];
    int wa = add_weight(m, "a.weight", c->ndim, c->d1, w1);
    int ba = add_weight(m, "a.bias", 1, &rank, b1);
    int wb = add_weight(m, "b.weight", c->ndim, c->d2, w2);
    int y = add_layer(m, "a", c->op1, x, wa, ba, c->trans_b);
    m->output = add_layer(m, "b", c->op2, y, wb, -1, c->trans_b);
    rs_err e;
    if (model_infer_shapes(m, &e) != 0) {
        fprintf(stderr, "pair_model %s: %s\n", c->name, e.msg);
        model_free(m);
        return NULL;
    }
    return m;
}

/* max |a-b| / max|b| */
static double rel_diff(const float *a, const float *b, int64_t n)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; ++i) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0 ? d / s : d;
}

static void test_reference(void)
{
    const char *root = getenv("RS_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/quant_ref.f32", root ? root : "..");
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "open %s", path);
    if (!f)
        return;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci) {
        const refcase *c = &cases[ci];
        int64_t n1 = count(c->ndim, c->d1), n2 = count(c->ndim, c->d2);
        int64_t rank = c->trans_b || c->ndim == 4 ? c->d1[0] : c->d1[1];
        int64_t sizes[8] = {n1, rank, n2, n1, rank, n2, n1, n2};
        float *arr[8];
        int ok = 1;
        for (int i = 0; i < 8; ++i) {
            arr[i] = malloc((size_t)sizes[i] * sizeof(float));
            ok &= fread(arr[i], sizeof(float), (size_t)sizes[i], f) == (size_t)sizes[i];
        }
        CHECK(ok, "%s: read reference arrays", c->name);
        rs_model *m = ok ? pair_model(c, arr[0], arr[1], arr[2]) : NULL;
        CHECK(m != NULL, "%s: two-layer model", c->name);
        if (m) {
            rs_err e = {{0}};
            /* the function before balancing, on random inputs */
            int F = (int)model_value_numel(&m->values[m->input]);
            int O = (int)model_value_numel(&m->values[m->output]);
            uint64_t st = 7;
            float *x = malloc((size_t)4 * F * sizeof(float));
            float *y0 = malloc((size_t)4 * O * sizeof(float)), *y1 = malloc((size_t)4 * O * sizeof(float));
            for (int i = 0; i < 4 * F; ++i)
                x[i] = testnet_rand(&st);
            int rc = infer_forward_naive(m, x, 4, y0, &e);
            quant_balance_report br;
            rc |= quant_balance(m, 3, &br, &e);
            CHECK(rc == 0 && br.pairs == 1, "%s: balance found 1 pair (%d; %s)", c->name, br.pairs,
                  rc ? e.msg : "ok");
            int wa = model_find_value(m, "a.weight"), ba = model_find_value(m, "a.bias"),
                wb = model_find_value(m, "b.weight");
            double d1 = rel_diff(m->values[wa].f, arr[3], n1), db = rel_diff(m->values[ba].f, arr[4], rank),
                   d2 = rel_diff(m->values[wb].f, arr[5], n2);
            CHECK(d1 <= 1e-6 && db <= 1e-6 && d2 <= 1e-6,
                  "%s: balanced factors match numpy (rel. %.1e %.1e %.1e <= 1e-6)", c->name, d1, db, d2);
            CHECK(br.qerr_after < br.qerr_before,
                  "%s: balancing lowers the product's quantization error (%.3e -> %.3e)", c->name,
                  br.qerr_before, br.qerr_after);
            rc = infer_forward_naive(m, x, 4, y1, &e);
            double df = rel_diff(y1, y0, 4 * O);
            CHECK(rc == 0 && df <= 1e-5, "%s: balanced net computes the same function (rel. %.1e <= 1e-5)",
                  c->name, df);
            /* int8 round trip from the reference's balanced weights, so it is compared alone */
            memcpy(m->values[wa].f, arr[3], (size_t)n1 * sizeof(float));
            memcpy(m->values[wb].f, arr[5], (size_t)n2 * sizeof(float));
            rc = quant_fake_weights(m, &e);
            int exact = 1;
            for (int64_t i = 0; i < n1; ++i)
                exact &= m->values[wa].f[i] == arr[6][i];
            for (int64_t i = 0; i < n2; ++i)
                exact &= m->values[wb].f[i] == arr[7][i];
            CHECK(rc == 0 && exact, "%s: int8 round trip bit-identical to numpy's", c->name);
            CHECK(rel_diff(m->values[ba].f, arr[4], rank) <= 1e-6, "%s: bias stays float", c->name);
            free(x);
            free(y0);
            free(y1);
            model_free(m);
        }
        for (int i = 0; i < 8; ++i)
            free(arr[i]);
    }
    fclose(f);
}

static rs_model *factored_lenet(void)
{
    rs_model *m = testnet_lenet(3);
    rs_plan *p = plan_alloc();
    rs_err e = {{0}};
    int rc = plan_set(p, "conv2", DECOMP_TUCKER2, 8, 4, &e) | plan_set(p, "fc1", DECOMP_SVD, 24, 0, &e) |
             plan_set(p, "conv1", DECOMP_SPATIAL_SVD, 6, 0, &e);
    if (rc == 0)
        rc = plan_apply(m, p, NULL, NULL, &e);
    plan_free(p);
    if (rc) {
        fprintf(stderr, "factored_lenet: %s\n", e.msg);
        model_free(m);
        return NULL;
    }
    return m;
}

static int same_weights(const rs_model *a, const rs_model *b)
{
    for (int v = 0; v < a->n_values; ++v)
        if (a->values[v].is_const && a->values[v].f &&
            memcmp(a->values[v].f, b->values[v].f,
                   (size_t)model_value_numel(&a->values[v]) * sizeof(float)) != 0)
            return 0;
    return 1;
}

static void test_export_agreement(void)
{
    rs_err e = {{0}};
    rs_model *m = factored_lenet();
    CHECK(m != NULL, "factorized lenet (spatial-svd, tucker2, svd)");
    if (!m)
        return;
    quant_balance_report br;
    int rc = quant_balance(m, 3, &br, &e);
    CHECK(rc == 0 && br.pairs == 4, "lenet: 4 factor pairs (conv1 1, conv2 2, fc1 1): %d", br.pairs);
    CHECK(br.qerr_after <= br.qerr_before, "lenet: product quantization error %.3e -> %.3e", br.qerr_before,
          br.qerr_after);
    rs_model *q = model_clone(m);
    rs_model *d = export_c_dequantize(m, &e);
    rc = quant_fake_weights(q, &e);
    CHECK(rc == 0 && d && same_weights(q, d), "quant_fake_weights == export_c_dequantize, bit for bit");
    rs_model *q2 = model_clone(q);
    quant_fake_weights(q2, &e);
    CHECK(same_weights(q2, q), "the int8 round trip is idempotent (re-exporting the int8 model changes "
                               "no weight)");
    int64_t bf = 0, b8 = 0;
    rc = quant_weight_bytes(m, 0, &bf, &e) | quant_weight_bytes(m, 1, &b8, &e);
    CHECK(rc == 0 && b8 * 3 < bf, "weight bytes int8 %lld < fp32 %lld / 3", (long long)b8, (long long)bf);
    model_free(q2);
    model_free(q);
    model_free(d);
    model_free(m);
}

/* A hook that quantizes and counts. */
static int counting_hook(void *user, rs_model *m, rs_err *e)
{
    ++*(int *)user;
    return quant_fake_weights(m, e);
}

static int noop_hook(void *user, rs_model *m, rs_err *e)
{
    (void)m, (void)e;
    ++*(int *)user;
    return 0;
}

static void synthetic(int n, uint64_t seed, float **x, uint8_t **y)
{
    *x = malloc((size_t)n * 3 * 32 * 32 * sizeof(float));
    *y = malloc((size_t)n);
    uint64_t st = seed;
    for (int i = 0; i < n; ++i) {
        int c = (int)((testnet_rand(&st) + 1.0f) * 5.0f) % 10;
        (*y)[i] = (uint8_t)c;
        for (int p = 0; p < 3 * 32 * 32; ++p)
            (*x)[(size_t)i * 3072 + p] = 0.3f * testnet_rand(&st) + ((p % 1024) / 32 / 3 == c ? 1.5f : 0.0f);
    }
}

static void test_training_hook(void)
{
    float *x, *vx;
    uint8_t *y, *vy;
    synthetic(256, 11, &x, &y);
    synthetic(128, 12, &vx, &vy);
    train_data tr = {.n = 256, .c = 3, .h = 32, .w = 32, .f = x, .labels = y};
    train_data va = {.n = 128, .c = 3, .h = 32, .w = 32, .f = vx, .labels = vy};
    train_options o;
    train_default_options(&o);
    o.epochs = 1, o.batch = 16, o.lr = 0.02f, o.nthreads = 1, o.augment = 0;
    o.schedule = TRAIN_SCHED_CONSTANT;
    rs_err e = {{0}};
    rs_model *a = factored_lenet(), *b = factored_lenet(), *c = factored_lenet();
    if (!a || !b || !c) {
        CHECK(0, "factorized lenet");
        return;
    }
    int calls = 0;
    int rc = train_model(a, &tr, &va, &o, NULL, &e);
    o.weight_quant = noop_hook, o.weight_quant_user = &calls;
    rc |= train_model(b, &tr, &va, &o, NULL, &e);
    CHECK(rc == 0 && same_weights(a, b), "a hook that changes nothing trains bit-identically (%s)",
          rc ? e.msg : "ok");
    CHECK(calls == 16 + 1, "hook called per batch (16) and per validation (1): %d", calls);
    calls = 0;
    o.weight_quant = counting_hook;
    train_epoch_stats st;
    rc = train_model(c, &tr, &va, &o, &st, &e);
    CHECK(rc == 0, "quantization-aware epoch (%s; loss %.3f, val %.3f)", rc ? e.msg : "ok", st.train_loss, st.val_acc);
    /* masters stay float: re-quantizing the result changes it */
    rs_model *q = model_clone(c);
    quant_fake_weights(q, &e);
    CHECK(!same_weights(q, c), "the trained model holds float masters, not int8 weights");
    CHECK(!same_weights(c, a), "gradients at int8 weights move the masters differently");
    double acc = -1;
    rc = train_evaluate(q, &va, 1, &acc, NULL, &e);
    CHECK(rc == 0 && fabs(acc - st.val_acc) < 1e-12,
          "validation during QAT is the int8 model's accuracy (%.4f == %.4f)", acc, st.val_acc);
    model_free(q);
    model_free(a);
    model_free(b);
    model_free(c);

    /* quant_compress: the reported int8 accuracy is the returned model's */
    rs_model *m = factored_lenet(), *out = NULL;
    quant_options qo;
    quant_default_options(&qo);
    qo.finetune.train.epochs = 3, qo.finetune.train.batch = 16, qo.finetune.train.nthreads = 1;
    qo.finetune.train.augment = 0, qo.finetune.train.lr = 0.02f;
    qo.finetune.train.schedule = TRAIN_SCHED_CONSTANT;
    quant_report r;
    rc = quant_compress(m, &tr, &va, &qo, &out, &r, &e);
    CHECK(rc == 0 && out, "quant_compress (%s)", rc ? e.msg : "ok");
    if (out) {
        rs_model *again = model_clone(out);
        quant_fake_weights(again, &e);
        CHECK(same_weights(again, out), "returned weights are already int8 round trips");
        rc = train_evaluate(out, &va, 1, &acc, NULL, &e);
        CHECK(rc == 0 && acc == r.val_int8, "reported int8 accuracy %.4f == measured %.4f", r.val_int8, acc);
        CHECK(r.val_int8 >= r.ft.start_val_acc, "kept state no worse than the int8 start (%.4f >= %.4f)",
              r.val_int8, r.ft.start_val_acc);
        CHECK(fabs(r.ft.start_val_acc - r.val_ptq) < 1e-12,
              "fine-tuning starts from the int8 accuracy (%.4f == %.4f)", r.ft.start_val_acc, r.val_ptq);
        CHECK(r.bytes_int8 * 3 < r.bytes_float, "bytes %lld -> %lld", (long long)r.bytes_float,
              (long long)r.bytes_int8);
        model_free(again);
    }
    model_free(out);
    model_free(m);
    free(x), free(y), free(vx), free(vy);
}

int main(void)
{
    test_reference();
    test_export_agreement();
    test_training_hook();
    return check_done();
}
