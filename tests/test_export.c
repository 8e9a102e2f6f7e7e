/* test_export.c — export_c: int8 quantization against a naive per-channel reference,
 * generated C compiled with the system compiler ($CC or cc, -std=c99 -Wall -Wextra -Werror
 * -pedantic) and run against rankscope's textbook executor (infer_forward_naive) on a synthetic
 * DAG with the ops the exporter handles, the int8 code against the dequantized model, the
 * liveness plan of the reference net, and errors. References are independent: the naive
 * quantizer below uses libm's roundf; the float reference is infer_forward_naive's loops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ref_ops.h"
#include "rankscope/export.h"
#include "rankscope/infer.h"
#include "testnet.h"

static char tmpdir[] = "/tmp/rs_test_export.XXXXXX";

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static const char driver_src[] =
    "#include <stdio.h>\n#include <stdlib.h>\n#include \"model.h\"\n"
    "int main(int argc, char **argv)\n{\n"
    "    float *in = malloc(sizeof(float) * MODEL_INPUT_FLOATS);\n"
    "    float *s = malloc(sizeof(float) * MODEL_SCRATCH_FLOATS), out[MODEL_OUTPUT_FLOATS];\n"
    "    FILE *fi, *fo;\n"
    "    if (argc != 3 || !in || !s || !(fi = fopen(argv[1], \"rb\")) || !(fo = fopen(argv[2], \"wb\")))\n"
    "        return 2;\n"
    "    while (fread(in, sizeof(float), MODEL_INPUT_FLOATS, fi) == (size_t)MODEL_INPUT_FLOATS) {\n"
    "        model_forward(in, out, s);\n"
    "        fwrite(out, sizeof(float), MODEL_OUTPUT_FLOATS, fo);\n"
    "    }\n"
    "    fclose(fi);\n    free(in);\n    free(s);\n    return fclose(fo) != 0;\n}\n";

/* Export m into tmpdir/name, compile it with a driver, run it on x (n images); out gets the
 * logits. Returns 0 on success. */
static int compile_and_run(const rs_model *m, const export_c_opts *o, const char *name,
                           const float *x, int n, int in_f, float *out, int out_f,
                           export_c_stats *st)
{
    char dir[256], path[320], cmd[2048];
    rs_err e = {{0}};
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0)
        return -1;
    if (export_c_write(m, dir, o, st, &e) != 0) {
        printf("# export_c_write: %s\n", e.msg);
        return -1;
    }
    snprintf(path, sizeof path, "%s/driver.c", dir);
    if (write_file(path, driver_src, strlen(driver_src)))
        return -1;
    snprintf(path, sizeof path, "%s/in.f32", dir);
    if (write_file(path, x, (size_t)n * in_f * sizeof(float)))
        return -1;
    const char *cc = getenv("CC") ? getenv("CC") : "cc";
    snprintf(cmd, sizeof cmd,
             "%s -std=c99 -Wall -Wextra -Werror -pedantic -O1 -I'%s' '%s/model.c' '%s/driver.c' "
             "-o '%s/run' && '%s/run' '%s/in.f32' '%s/out.f32'",
             cc, dir, dir, dir, dir, dir, dir, dir);
    if (system(cmd) != 0) {
        printf("# failed: %s\n", cmd);
        return -1;
    }
    snprintf(path, sizeof path, "%s/out.f32", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t got = fread(out, sizeof(float), (size_t)n * out_f, f);
    fclose(f);
    return got == (size_t)n * out_f ? 0 : -1;
}

/* ---- a synthetic DAG: every op kind and storage case of the exporter -------------------- */

static int add_value(rs_model *m, const char *name, int is_const, int ndim, const int64_t *dims,
                     uint64_t *st, float scale)
{
    if (is_const) {
        int v = model_add_const(m, name, ndim, dims, NULL, NULL);
        rs_value *val = &m->values[v];
        for (int64_t i = 0; i < model_value_numel(val); ++i)
            val->f[i] = scale * testnet_rand(st);
        return v;
    }
    int v = model_add_value(m, name, NULL);
    m->values[v].ndim = ndim;
    for (int i = 0; i < ndim; ++i)
        m->values[v].dims[i] = dims[i];
    return v;
}

static rs_node *add_node(rs_model *m, const char *name, rs_op op, int a, int b, int c, int y)
{
    int k = model_add_node(m, name, op, NULL);
    rs_node *n = &m->nodes[k];
    n->n_in = 0;
    int ins[3] = {a, b, c};
    for (int i = 0; i < 3; ++i)
        if (ins[i] >= 0)
            n->in[n->n_in++] = ins[i];
    n->n_out = 1;
    n->out[0] = y;
    return n;
}

/* input 3x8x8
 *  c1  Conv 3->4 3x3 pad 1 (bias)            -> a 4x8x8
 *  r1  Relu (in place)                        -> ra
 *  c2  Conv 4->4 3x3 groups 4 (depthwise) dilation 2 pad 2, no bias -> b 4x8x8
 *  s1  Add ra + b (residual, two activations) -> s
 *  id  Identity (an alias: no code)
 *  p1  MaxPool 3x3 stride 2 pad 1             -> 4x4x4
 *  fl  Flatten                                -> 64
 *  g1  Gemm 64->12 transB, alpha 0.75, beta 0.5, C of one value
 *  r2  Relu
 *  mm  MatMul 12x7
 *  k3  Add const (1,7)
 *  k4  Add a scalar constant (1)             -> graph output
 * (model.h's shape rules take Add constants on 2-D inputs only, so the exporter's 4-D broadcast
 * paths are not reachable from a valid model yet.) */
static rs_model *dag_model(uint64_t seed)
{
    uint64_t st = seed;
    rs_model *m = model_alloc();
    int64_t d_in[4] = {-1, 3, 8, 8}, d_act[4] = {-1, 4, 8, 8}, d_pool[4] = {-1, 4, 4, 4};
    int64_t d_w1[4] = {4, 3, 3, 3}, d_b1[1] = {4}, d_w2[4] = {4, 1, 3, 3};
    int64_t d_fl[2] = {-1, 64};
    int64_t d_g[2] = {12, 64}, d_gc[1] = {1}, d_h[2] = {-1, 12}, d_mm[2] = {12, 7};
    int64_t d_o[2] = {-1, 7}, d_k3[2] = {1, 7}, d_k4[1] = {1};
    int x = add_value(m, "input", 0, 4, d_in, &st, 0);
    m->input = x;
    int w1 = add_value(m, "c1.weight", 1, 4, d_w1, &st, 0.4f);
    int b1 = add_value(m, "c1.bias", 1, 1, d_b1, &st, 0.2f);
    int a = add_value(m, "a", 0, 4, d_act, &st, 0);
    rs_node *n = add_node(m, "c1", RS_OP_CONV, x, w1, b1, a);
    n->pads[0] = n->pads[1] = n->pads[2] = n->pads[3] = 1;
    int ra = add_value(m, "ra", 0, 4, d_act, &st, 0);
    add_node(m, "r1", RS_OP_RELU, a, -1, -1, ra);
    int w2 = add_value(m, "c2.weight", 1, 4, d_w2, &st, 0.5f);
    int b = add_value(m, "b", 0, 4, d_act, &st, 0);
    n = add_node(m, "c2", RS_OP_CONV, ra, w2, -1, b);
    n->group = 4;
    n->dilations[0] = n->dilations[1] = 2;
    n->pads[0] = n->pads[1] = n->pads[2] = n->pads[3] = 2;
    int s = add_value(m, "s", 0, 4, d_act, &st, 0);
    add_node(m, "s1", RS_OP_ADD, ra, b, -1, s);
    int s4 = add_value(m, "s4", 0, 4, d_act, &st, 0);
    add_node(m, "id", RS_OP_IDENTITY, s, -1, -1, s4);
    int p = add_value(m, "p", 0, 4, d_pool, &st, 0);
    n = add_node(m, "p1", RS_OP_MAXPOOL, s4, -1, -1, p);
    n->kernel[0] = n->kernel[1] = 3;
    n->strides[0] = n->strides[1] = 2;
    n->pads[0] = n->pads[1] = n->pads[2] = n->pads[3] = 1;
    int fl = add_value(m, "fl", 0, 2, d_fl, &st, 0);
    n = add_node(m, "fl", RS_OP_FLATTEN, p, -1, -1, fl);
    n->axis = 1;
    int gw = add_value(m, "g1.weight", 1, 2, d_g, &st, 0.3f);
    int gc = add_value(m, "g1.c", 1, 1, d_gc, &st, 0.5f);
    int h = add_value(m, "h", 0, 2, d_h, &st, 0);
    n = add_node(m, "g1", RS_OP_GEMM, fl, gw, gc, h);
    n->trans_b = 1;
    n->alpha = 0.75f;
    n->beta = 0.5f;
    int hr = add_value(m, "hr", 0, 2, d_h, &st, 0);
    add_node(m, "r2", RS_OP_RELU, h, -1, -1, hr);
    int mw = add_value(m, "mm.weight", 1, 2, d_mm, &st, 0.5f);
    int mo = add_value(m, "mo", 0, 2, d_o, &st, 0);
    add_node(m, "mm", RS_OP_MATMUL, hr, mw, -1, mo);
    int k3 = add_value(m, "k3.c", 1, 2, d_k3, &st, 0.3f);
    int mo2 = add_value(m, "mo2", 0, 2, d_o, &st, 0);
    add_node(m, "k3", RS_OP_ADD, mo, k3, -1, mo2);
    int k4 = add_value(m, "k4.c", 1, 1, d_k4, &st, 0.3f);
    int out = add_value(m, "logits", 0, 2, d_o, &st, 0);
    add_node(m, "k4", RS_OP_ADD, mo2, k4, -1, out);
    m->output = out;
    return m;
}

/* ---- naive reference quantizer ------------------------------------------------------------ */

/* Per output channel of a Conv W (M, ...) or a transB Gemm B (N, K): rows. */
static void ref_quant_rows(const float *w, int64_t rows, int64_t inner, float *dq)
{
    for (int64_t r = 0; r < rows; ++r) {
        float mx = 0;
        for (int64_t i = 0; i < inner; ++i)
            mx = fmaxf(mx, fabsf(w[r * inner + i]));
        float s = mx / 127.0f;
        for (int64_t i = 0; i < inner; ++i) {
            float q = s > 0 ? roundf(w[r * inner + i] / s) : 0.0f;
            q = fminf(127.0f, fmaxf(-127.0f, q));
            dq[r * inner + i] = q * s;
        }
    }
}

static void test_quantization(void)
{
    rs_err e = {{0}};
    rs_model *m = testnet_lenet(11);
    rs_model *dq = export_c_dequantize(m, &e);
    CHECK(dq != NULL, "export_c_dequantize on the reference net (%s)", e.msg);
    if (!dq) {
        model_free(m);
        return;
    }
    int weights = 0, exact = 1, others_same = 1, within_half_step = 1;
    for (int v = 0; v < m->n_values; ++v) {
        const rs_value *a = &m->values[v], *b = &dq->values[v];
        if (!a->is_const || a->dtype != RS_DT_FLOAT)
            continue;
        int64_t n = model_value_numel(a);
        if (a->ndim >= 2) { /* conv / gemm (transB) weights: rows are output channels */
            ++weights;
            float *ref = malloc((size_t)n * sizeof(float));
            int64_t rows = a->dims[0];
            ref_quant_rows(a->f, rows, n / rows, ref);
            for (int64_t i = 0; i < n; ++i) {
                exact &= ref[i] == b->f[i];
                float mx = 0;
                for (int64_t k = 0; k < n / rows; ++k)
                    mx = fmaxf(mx, fabsf(a->f[(i / (n / rows)) * (n / rows) + k]));
                within_half_step &= fabsf(a->f[i] - b->f[i]) <= 0.5f * mx / 127.0f * 1.0001f;
            }
            free(ref);
        } else {
            others_same &= memcmp(a->f, b->f, (size_t)n * sizeof(float)) == 0;
        }
    }
    CHECK(weights == 5, "5 weight tensors quantized (got %d)", weights);
    CHECK(exact, "dequantized weights equal a naive per-channel roundf reference exactly");
    CHECK(within_half_step, "every weight moved by at most half a quantization step");
    CHECK(others_same, "biases are left as float, bit for bit");
    model_free(dq);
    model_free(m);
}

static void test_lenet_plan(void)
{
    rs_err e = {{0}};
    rs_model *m = testnet_lenet(3);
    char *h = NULL, *c = NULL;
    export_c_stats st;
    int rc = export_c_generate(m, NULL, &h, &c, &st, &e);
    CHECK(rc == 0, "export_c_generate on the reference net (%s)", e.msg);
    if (rc == 0) {
        /* conv1's 6x28x28 output and pool1's 6x14x14 are the largest pair alive together;
         * everything later fits beside or inside them, ReLU runs in place */
        CHECK(st.scratch_floats == 6 * 28 * 28 + 6 * 14 * 14,
              "scratch = conv1 out + pool1 out = 5880 floats (got %lld)",
              (long long)st.scratch_floats);
        int64_t params;
        int64_t macs;
        model_totals(m, &params, &macs);
        CHECK(st.weight_bytes == 4 * params && st.params == params,
              "flash = 4 bytes x %lld params (got %lld)", (long long)params,
              (long long)st.weight_bytes);
        CHECK(strstr(c, "relu(scratch, scratch, 4704);") != NULL, "conv1's ReLU runs in place");
        CHECK(strstr(c, ", out, ") != NULL && strstr(h, "#define MODEL_SCRATCH_FLOATS 5880L"),
              "fc3 writes straight into out; the header states the scratch size");
        CHECK(!strstr(c, "#include <") && !strstr(c, "malloc"), "no library includes, no malloc");
    }
    free(h);
    free(c);
    export_c_opts q = {.int8 = 1};
    rc = export_c_generate(m, &q, &h, &c, &st, &e);
    int64_t params, macs;
    model_totals(m, &params, &macs);
    /* int8: one byte per weight + a float scale per output channel (6+16+120+84+10 = 236);
     * biases (6+16+120+84+10 = 236 floats) stay float */
    CHECK(rc == 0 && st.weight_bytes == (params - 236) + 4 * 236 + 4 * 236,
          "int8 flash = weights + 4 x channels (scales) + 4 x biases (got %lld)",
          (long long)st.weight_bytes);
    free(h);
    free(c);
    model_free(m);
}

static void test_compiled(void)
{
    rs_err e = {{0}};
    const int n = 16;
    uint64_t st = 99;

    /* the synthetic DAG, float, against the textbook executor */
    rs_model *m = dag_model(5);
    int rc = model_infer_shapes(m, &e);
    CHECK(rc == 0, "synthetic DAG: shapes inferred (%s)", e.msg);
    if (rc == 0) {
        float x[16 * 192], ref[16 * 7], got[16 * 7];
        for (int i = 0; i < n * 192; ++i)
            x[i] = testnet_rand(&st);
        export_c_stats s;
        CHECK(infer_forward_naive(m, x, n, ref, &e) == 0, "synthetic DAG: reference logits (%s)",
              e.msg);
        rc = compile_and_run(m, NULL, "dag", x, n, 192, got, 7, &s);
        CHECK(rc == 0, "synthetic DAG: generated C compiles (-std=c99 -pedantic -Werror) and runs");
        if (rc == 0) {
            double d = ref_max_rel_err(got, ref, (size_t)n * 7);
            CHECK(d <= 1e-5, "synthetic DAG: C matches infer_forward_naive within 1e-5 (%.2e)", d);
        }
        /* three 4x8x8 activations at most are alive at once (ra, b, and the sum) */
        CHECK(s.scratch_floats <= 3 * 256, "synthetic DAG: scratch %lld <= 768 floats",
              (long long)s.scratch_floats);
    }
    model_free(m);

    /* int8 reference net against rankscope's inference of the dequantized model */
    m = testnet_lenet(21);
    rs_model *dq = export_c_dequantize(m, &e);
    infer_ctx *ctx = dq ? infer_create(dq, 1, &e) : NULL;
    CHECK(ctx != NULL, "int8: dequantized model compiles for inference (%s)", e.msg);
    if (ctx) {
        float *x = malloc(sizeof(float) * n * 3072), ref[16 * 10], got[16 * 10], fp[16 * 10];
        for (int i = 0; i < n * 3072; ++i)
            x[i] = testnet_rand(&st);
        CHECK(infer_forward(ctx, x, n, ref, &e) == 0, "int8: reference logits (%s)", e.msg);
        export_c_opts q = {.int8 = 1};
        export_c_stats s;
        rc = compile_and_run(m, &q, "q8", x, n, 3072, got, 10, &s);
        CHECK(rc == 0, "int8: generated C compiles and runs");
        if (rc == 0) {
            double d = ref_max_rel_err(got, ref, (size_t)n * 10);
            CHECK(d <= 1e-4, "int8: C matches the dequantized model within 1e-4 (%.2e)", d);
            infer_ctx *c32 = infer_create(m, 1, &e);
            if (c32 && infer_forward(c32, x, n, fp, &e) == 0) {
                double q = ref_max_rel_err(got, fp, (size_t)n * 10);
                CHECK(q > 1e-6 && q < 0.05, "int8: differs from fp32 by quantization only (%.2e)",
                      q);
            }
            infer_free(c32);
        }
        free(x);
    }
    infer_free(ctx);
    model_free(dq);
    model_free(m);
}

static void test_errors(void)
{
    rs_err e = {{0}};
    char *h = NULL, *c = NULL;
    rs_model *m = testnet_lenet(4);
    int k = model_find_node(m, "fc2");
    if (k >= 0)
        m->nodes[k].trans_a = 1;
    int rc = export_c_generate(m, NULL, &h, &c, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, "fc2") && strstr(e.msg, "transA"),
          "Gemm transA=1 refused naming the node (%s)", e.msg);
    CHECK(h == NULL && c == NULL, "nothing returned on failure");
    model_free(m);
    m = testnet_lenet(4);
    rc = export_c_write(m, "/nonexistent/dir", NULL, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, "/nonexistent/dir"), "unwritable directory named (%s)", e.msg);
    model_free(m);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        printf("1..0 # SKIP cannot create a temporary directory\n");
        return 0;
    }
    test_quantization();
    test_lenet_plan();
    test_compiled();
    test_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    return check_done();
}
