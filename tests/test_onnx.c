/* test_onnx.c — ONNX reader/writer: golden PyTorch exports, round trips, hand-built models, and
 * hostile protos built with the protobuf-c structs (each must fail with a one-line message
 * naming the culprit, without crashing or leaking — run under ASan/valgrind in CI). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "edit_fixture.h"
#include "onnx.pb-c.h"
#include "rankscope/fileio.h"
#include "rankscope/onnx.h"
#include "testnet.h"

static const char *source_root(void)
{
    const char *r = getenv("RS_SOURCE_ROOT");
    return r && *r ? r : ".";
}

static void data_path(char *buf, size_t cap, const char *file)
{
    snprintf(buf, cap, "%s/tests/data/%s", source_root(), file);
}

/* ---- comparing models ----------------------------------------------------------------------- */

static const char *vname(const rs_model *m, int v)
{
    return v < 0 ? "" : m->values[v].name;
}

/* Same names, shapes, constant data (bit-exact), nodes, wiring and attributes. Returns the number
 * of differences found and prints the first few as TAP diagnostics. */
static int model_diff(const rs_model *a, const rs_model *b)
{
    int diffs = 0;
#define DIFF(...) (++diffs <= 5 ? (printf("#   "), printf(__VA_ARGS__), printf("\n")) : 0)
    if (a->n_nodes != b->n_nodes)
        DIFF("node count %d vs %d", a->n_nodes, b->n_nodes);
    if (strcmp(vname(a, a->input), vname(b, b->input)) || strcmp(vname(a, a->output), vname(b, b->output)))
        DIFF("graph input/output names differ");
    for (int v = 0; v < a->n_values; ++v) {
        const rs_value *x = &a->values[v];
        int w = model_find_value(b, x->name);
        if (w < 0) {
            DIFF("value \"%s\" missing", x->name);
            continue;
        }
        const rs_value *y = &b->values[w];
        if (x->ndim != y->ndim || memcmp(x->dims, y->dims, (size_t)x->ndim * sizeof x->dims[0]))
            DIFF("value \"%s\": shape differs", x->name);
        if (x->is_const != y->is_const || x->dtype != y->dtype)
            DIFF("value \"%s\": kind differs", x->name);
        else if (x->is_const) {
            size_t n = (size_t)model_value_numel(x);
            if (x->dtype == RS_DT_FLOAT && (!x->f || !y->f || memcmp(x->f, y->f, n * sizeof(float))))
                DIFF("value \"%s\": float data differs", x->name);
            if (x->dtype == RS_DT_INT64 && (!x->i64 || !y->i64 || memcmp(x->i64, y->i64, n * 8)))
                DIFF("value \"%s\": int64 data differs", x->name);
        }
    }
    for (int i = 0; i < a->n_nodes && i < b->n_nodes; ++i) {
        const rs_node *x = &a->nodes[i], *y = &b->nodes[i];
        if (strcmp(x->name, y->name) || x->op != y->op) {
            DIFF("node %d: \"%s\" vs \"%s\"", i, x->name, y->name);
            continue;
        }
        int nin_x = x->n_in, nin_y = y->n_in; /* trailing omitted inputs are not written */
        while (nin_x > 0 && x->in[nin_x - 1] < 0)
            --nin_x;
        while (nin_y > 0 && y->in[nin_y - 1] < 0)
            --nin_y;
        if (nin_x != nin_y || x->n_out != y->n_out)
            DIFF("node \"%s\": arity differs", x->name);
        for (int k = 0; k < nin_x && k < nin_y; ++k)
            if (strcmp(vname(a, x->in[k]), vname(b, y->in[k])))
                DIFF("node \"%s\": input %d differs", x->name, k);
        for (int k = 0; k < x->n_out && k < y->n_out; ++k)
            if (strcmp(vname(a, x->out[k]), vname(b, y->out[k])))
                DIFF("node \"%s\": output %d differs", x->name, k);
        if (memcmp(x->kernel, y->kernel, sizeof x->kernel) || memcmp(x->strides, y->strides, sizeof x->strides) ||
            memcmp(x->pads, y->pads, sizeof x->pads) || memcmp(x->dilations, y->dilations, sizeof x->dilations) ||
            x->group != y->group || x->ceil_mode != y->ceil_mode || x->alpha != y->alpha ||
            x->beta != y->beta || x->trans_a != y->trans_a || x->trans_b != y->trans_b ||
            x->axis != y->axis)
            DIFF("node \"%s\": attributes differ", x->name);
    }
#undef DIFF
    return diffs;
}

static rs_model *round_trip(const rs_model *m, const char *label, uint8_t **bytes, size_t *len)
{
    rs_err e = {{0}};
    if (onnx_save_buffer(m, bytes, len, &e) != 0) {
        printf("# save %s: %s\n", label, e.msg);
        return NULL;
    }
    rs_model *r = onnx_load_buffer(*bytes, *len, label, &e);
    if (!r)
        printf("# reload %s: %s\n", label, e.msg);
    return r;
}

/* ---- golden models exported by tests/gen_models.py -------------------------------------------- */

/* The reader's float decoding checked against the raw protobuf, unpacked separately. */
static int weights_match_proto(const rs_model *m, const char *path)
{
    uint8_t *buf;
    size_t len;
    rs_err e;
    if (fileio_read_all(path, (size_t)1 << 30, &buf, &len, &e) != 0)
        return printf("# %s\n", e.msg), 0;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!mp || !mp->graph)
        return 0;
    int ok = mp->graph->n_initializer > 0;
    for (size_t i = 0; i < mp->graph->n_initializer && ok; ++i) {
        const Onnx__TensorProto *t = mp->graph->initializer[i];
        int v = model_find_value(m, t->name);
        if (v < 0 || !m->values[v].is_const) {
            ok = 0;
            break;
        }
        const rs_value *val = &m->values[v];
        size_t n = (size_t)model_value_numel(val);
        if (t->data_type == RS_DT_FLOAT) {
            for (size_t k = 0; k < n && ok; ++k) {
                float ref;
                if (t->raw_data.len)
                    memcpy(&ref, t->raw_data.data + 4 * k, 4); /* test host is little-endian */
                else
                    ref = t->float_data[k];
                ok = memcmp(&ref, &val->f[k], 4) == 0;
            }
        } else {
            for (size_t k = 0; k < n && ok; ++k) {
                int64_t ref;
                if (t->raw_data.len)
                    memcpy(&ref, t->raw_data.data + 8 * k, 8);
                else
                    ref = t->int64_data[k];
                ok = ref == val->i64[k];
            }
        }
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    return ok;
}

static void test_lenet_golden(void)
{
    char path[1024];
    rs_err e = {{0}};
    data_path(path, sizeof path, "lenet_random.onnx");
    rs_model *m = onnx_load(path, &e);
    if (!CHECK(m != NULL, "load lenet_random.onnx (%s)", m ? "ok" : e.msg))
        return;
    static const char *const names[] = {"/conv1/Conv", "/Relu",     "/pool/MaxPool", "/conv2/Conv",
                                        "/Relu_1",     "/pool_1/MaxPool", "/Flatten", "/fc1/Gemm",
                                        "/Relu_2",     "/fc2/Gemm", "/Relu_3",       "/fc3/Gemm"};
    static const rs_op ops[] = {RS_OP_CONV,    RS_OP_RELU, RS_OP_MAXPOOL, RS_OP_CONV,
                                RS_OP_RELU,    RS_OP_MAXPOOL, RS_OP_FLATTEN, RS_OP_GEMM,
                                RS_OP_RELU,    RS_OP_GEMM, RS_OP_RELU,    RS_OP_GEMM};
    int ok = m->n_nodes == 12;
    for (int i = 0; ok && i < 12; ++i)
        ok = strcmp(m->nodes[i].name, names[i]) == 0 && m->nodes[i].op == ops[i];
    CHECK(ok, "lenet: 12 nodes with PyTorch's names and ops in order");
    const rs_value *in = &m->values[m->input], *out = &m->values[m->output];
    CHECK(strcmp(in->name, "input") == 0 && in->ndim == 4 && in->dims[0] == -1 && in->dims[1] == 3 &&
              in->dims[2] == 32 && in->dims[3] == 32,
          "lenet: input \"input\" is (N,3,32,32) with symbolic batch");
    CHECK(strcmp(out->name, "logits") == 0 && out->ndim == 2 && out->dims[1] == 10,
          "lenet: output \"logits\" is (N,10)");
    int c2 = model_find_node(m, "/conv2/Conv"), p1 = model_find_node(m, "/pool/MaxPool");
    int f1 = model_find_node(m, "/fc1/Gemm");
    CHECK(c2 >= 0 && m->nodes[c2].kernel[0] == 5 && m->nodes[c2].group == 1 &&
              m->values[m->nodes[c2].out[0]].dims[1] == 16 && m->values[m->nodes[c2].out[0]].dims[2] == 10,
          "lenet: conv2 is 5x5, group 1, output 16x10x10");
    CHECK(p1 >= 0 && m->nodes[p1].kernel[0] == 2 && m->nodes[p1].strides[1] == 2,
          "lenet: pool has kernel 2 stride 2");
    CHECK(f1 >= 0 && m->nodes[f1].trans_b == 1 && m->nodes[f1].alpha == 1.0f &&
              m->values[m->nodes[f1].in[0]].dims[1] == 400,
          "lenet: fc1 has transB=1 and reads 400 features");
    int64_t params, macs;
    model_totals(m, &params, &macs);
    /* 456 + 2416 + 48120 + 10164 + 850 */
    CHECK(params == 62006, "lenet: 62006 parameters (got %lld)", (long long)params);
    CHECK(weights_match_proto(m, path), "lenet: every weight equals the file's raw_data bit for bit");

    uint8_t *bytes = NULL;
    size_t len = 0;
    rs_model *r = round_trip(m, "lenet round trip", &bytes, &len);
    CHECK(r && model_diff(m, r) == 0, "lenet: write -> read preserves names, shapes, weights exactly");
    uint8_t *bytes2 = NULL;
    size_t len2 = 0;
    rs_model *r2 = r ? round_trip(r, "lenet second round trip", &bytes2, &len2) : NULL;
    CHECK(r2 && len2 == len && memcmp(bytes, bytes2, len) == 0,
          "lenet: writing the reloaded model gives identical bytes (%zu)", len);
    model_free(r2);
    free(bytes2);
    model_free(r);
    free(bytes);
    model_free(m);
}

static void test_other_goldens(void)
{
    static const char *const files[] = {"lenet_reshape.onnx", "convmix_random.onnx", "gemm_nobias.onnx"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; ++f) {
        char path[1024];
        rs_err e = {{0}};
        data_path(path, sizeof path, files[f]);
        rs_model *m = onnx_load(path, &e);
        if (!CHECK(m != NULL, "load %s (%s)", files[f], m ? "ok" : e.msg))
            continue;
        CHECK(weights_match_proto(m, path), "%s: weights equal the file's data bit for bit", files[f]);
        uint8_t *bytes = NULL;
        size_t len = 0;
        rs_model *r = round_trip(m, files[f], &bytes, &len);
        CHECK(r && model_diff(m, r) == 0, "%s: round trip preserves everything", files[f]);
        if (f == 0) {
            int rs = model_find_node(m, "/Reshape");
            const rs_value *shape = rs >= 0 ? &m->values[m->nodes[rs].in[1]] : NULL;
            CHECK(shape && shape->dtype == RS_DT_INT64 && shape->i64 && shape->i64[0] == -1 &&
                      shape->i64[1] == 400 && m->values[m->nodes[rs].out[0]].dims[1] == 400,
                  "lenet_reshape: Reshape target is the int64 initializer [-1, 400]");
        } else if (f == 1) {
            int c2 = model_find_node(m, "/conv2/Conv");
            const rs_node *n = c2 >= 0 ? &m->nodes[c2] : NULL;
            CHECK(n && n->group == 3 && n->strides[0] == 2 && n->dilations[1] == 2 && n->pads[3] == 2,
                  "convmix: conv2 has group 3, stride 2, dilation 2, pads 2");
            int mm = model_find_node(m, "/MatMul"), add = model_find_node(m, "/Add");
            CHECK(mm >= 0 && add == mm + 1 && m->values[m->output].dims[1] == 10,
                  "convmix: MatMul then Add produce 10 logits");
        } else {
            int head = model_find_node(m, "head"), patch = model_find_node(m, "patch");
            CHECK(head >= 0 && m->nodes[head].n_in == 2 && m->nodes[head].alpha == 0.5f &&
                      m->nodes[head].trans_b == 0 && patch >= 0 && m->nodes[patch].n_in == 2,
                  "gemm_nobias: Gemm without C (alpha 0.5, transB 0), Conv without bias");
        }
        model_free(r);
        free(bytes);
        model_free(m);
    }
}

/* ---- models built with the model.h API --------------------------------------------------------- */

static int add_const(rs_model *m, const char *name, int ndim, const int64_t *dims, uint64_t *st)
{
    int v = model_add_const(m, name, ndim, dims, NULL, NULL);
    rs_value *val = &m->values[v];
    for (int64_t i = 0; i < model_value_numel(val); ++i)
        val->f[i] = testnet_rand(st);
    return v;
}

static int add_node(rs_model *m, const char *name, rs_op op, int x, int w, int b, const char *out)
{
    int in[3] = {x, w, b};
    return model_add_op(m, name, op, in, b >= 0 ? 3 : w >= 0 ? 2 : 1, out, NULL);
}

/* Every op and the non-default attributes the reader accepts: grouped strided dilated Conv, a
 * ceil-mode padded MaxPool, Gemm without bias (alpha, transB 0), MatMul + Add, Identity,
 * Reshape with an int64 shape — like what model_replace_node produces. */
static rs_model *hand_built(void)
{
    uint64_t st = 7;
    rs_model *m = model_alloc();
    m->graph_name = rs_strdup("hand");
    int x = model_add_value(m, "images", NULL);
    m->values[x].ndim = 4;
    m->values[x].dims[0] = -1, m->values[x].dims[1] = 4, m->values[x].dims[2] = 9, m->values[x].dims[3] = 9;
    m->input = x;
    int64_t wd[4] = {6, 2, 3, 3}, bd[1] = {6};
    int w = add_const(m, "c.w", 4, wd, &st), b = add_const(m, "c.b", 1, bd, &st);
    int c = add_node(m, "c", RS_OP_CONV, x, w, b, "c.y");
    m->nodes[c].group = 2, m->nodes[c].strides[0] = 2, m->nodes[c].strides[1] = 1;
    m->nodes[c].pads[0] = 1, m->nodes[c].pads[1] = 2, m->nodes[c].pads[2] = 1, m->nodes[c].pads[3] = 0;
    m->nodes[c].dilations[1] = 2; /* -> 6 x 5 x 7 */
    int id = add_node(m, "id", RS_OP_IDENTITY, m->nodes[c].out[0], -1, -1, "id.y");
    int p = add_node(m, "p", RS_OP_MAXPOOL, m->nodes[id].out[0], -1, -1, "p.y");
    m->nodes[p].kernel[0] = m->nodes[p].kernel[1] = 2;
    m->nodes[p].strides[0] = m->nodes[p].strides[1] = 2;
    m->nodes[p].ceil_mode = 1; /* -> 6 x 3 x 4 (3 x 3 without ceil mode) */
    int shape = model_add_value(m, "flat.shape", NULL);
    m->values[shape].is_const = 1, m->values[shape].dtype = RS_DT_INT64, m->values[shape].ndim = 1;
    m->values[shape].dims[0] = 2;
    m->values[shape].i64 = malloc(2 * sizeof(int64_t));
    m->values[shape].i64[0] = 0, m->values[shape].i64[1] = 72;
    int r = add_node(m, "flat", RS_OP_RESHAPE, m->nodes[p].out[0], shape, -1, "flat.y");
    int64_t gd[2] = {72, 7};
    int gw = add_const(m, "g.w", 2, gd, &st);
    int g = add_node(m, "g", RS_OP_GEMM, m->nodes[r].out[0], gw, -1, "g.y");
    m->nodes[g].alpha = 0.25f, m->nodes[g].trans_b = 0;
    int relu = add_node(m, "relu", RS_OP_RELU, m->nodes[g].out[0], -1, -1, "relu.y");
    int64_t md[2] = {7, 3}, ad[1] = {3};
    int mw = add_const(m, "mm.w", 2, md, &st);
    int mm = add_node(m, "mm", RS_OP_MATMUL, m->nodes[relu].out[0], mw, -1, "mm.y");
    int ab = add_const(m, "add.b", 1, ad, &st);
    int add = add_node(m, "add", RS_OP_ADD, m->nodes[mm].out[0], ab, -1, "scores");
    m->output = m->nodes[add].out[0];
    return m;
}

static void test_hand_built(void)
{
    rs_err e = {{0}};
    rs_model *m = hand_built();
    int rc = model_infer_shapes(m, &e);
    if (!CHECK(rc == 0, "hand-built model is valid (%s)", rc ? e.msg : "ok")) {
        model_free(m);
        return;
    }
    CHECK(m->values[m->nodes[2].out[0]].dims[2] == 3 && m->values[m->nodes[2].out[0]].dims[3] == 4 &&
              m->values[m->output].dims[1] == 3,
          "hand-built: ceil-mode pool gives 3x4, 3 scores");
    char dir[] = "/tmp/rs_test_onnx.XXXXXX";
    if (!CHECK(mkdtemp(dir) != NULL, "temporary directory")) {
        model_free(m);
        return;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/hand.onnx", dir);
    rc = onnx_save(m, path, &e);
    CHECK(rc == 0, "hand-built: onnx_save to %s (%s)", path, rc ? e.msg : "ok");
    rs_model *r = onnx_load(path, &e);
    CHECK(r != NULL, "hand-built: reload (%s)", r ? "ok" : e.msg);
    CHECK(r && model_diff(m, r) == 0, "hand-built: reload equals the model (names, attributes, weights)");
    CHECK(r && strcmp(r->producer, "rankscope") == 0 && r->opset == 13 && strcmp(r->graph_name, "hand") == 0,
          "hand-built: written as producer rankscope, opset 13, graph name kept");
    model_free(r);

    /* a failed save leaves the previous file untouched */
    free(m->values[3].name);
    m->values[3].name = rs_strdup(m->values[1].name);
    uint8_t *before = NULL, *after = NULL;
    size_t before_len = 0, after_len = 0;
    fileio_read_all(path, (size_t)1 << 20, &before, &before_len, &e);
    rc = onnx_save(m, path, &e);
    CHECK(rc == -1 && strstr(e.msg, "two values are named") && strstr(e.msg, path),
          "a model with a repeated value name is refused (%s)", e.msg);
    fileio_read_all(path, (size_t)1 << 20, &after, &after_len, &e);
    CHECK(before && after && before_len == after_len && memcmp(before, after, after_len) == 0,
          "the refused save left the earlier file as it was");
    free(before);
    free(after);
    unlink(path);
    rmdir(dir);
    model_free(m);

    /* shared test builders: grouped conv without bias, bias-less Gemm, the reference net */
    rs_model *built[3] = {testnet_conv(6, 11, 13, 9, 3, 5, 2, 1, 1, 2, 2, 1, 3, 0, 11),
                          testnet_gemm(33, 17, 0, 12), testnet_lenet(13)};
    static const char *const what[3] = {"testnet_conv (group 3, no bias)", "testnet_gemm (no bias)",
                                        "testnet_lenet"};
    for (int i = 0; i < 3; ++i) {
        uint8_t *bytes = NULL;
        size_t len = 0;
        rs_model *back = built[i] ? round_trip(built[i], what[i], &bytes, &len) : NULL;
        CHECK(back && model_diff(built[i], back) == 0, "%s: save -> load preserves everything", what[i]);
        model_free(back);
        free(bytes);
        model_free(built[i]);
    }
}

/* A model edited like a factorization (grouped + 1x1 Convs, bias-less Gemms, new initializers,
 * old weights dropped) must write and read back unchanged. */
static void test_edited(void)
{
    char path[1024];
    rs_err e = {{0}};
    data_path(path, sizeof path, "lenet_random.onnx");
    rs_model *m = onnx_load(path, &e);
    int replaced = m ? edit_fixture_factorize(m, 5, &e) : -1;
    if (!CHECK(replaced == 5, "edited lenet: 2 Convs and 3 Gemms factorized (%s)", replaced == 5 ? "ok" : e.msg)) {
        model_free(m);
        return;
    }
    int c2a = model_find_node(m, "/conv2/Conv_a"), c2b = model_find_node(m, "/conv2/Conv_b");
    CHECK(m->n_nodes == 17 && c2a >= 0 && c2b == c2a + 1 && m->nodes[c2a].group == 2 &&
              m->nodes[c2b].kernel[0] == 1 && model_find_value(m, "conv2.weight") < 0,
          "edited lenet: conv2 -> grouped 5x5 + 1x1, old weight dropped");
    uint8_t *bytes = NULL;
    size_t len = 0;
    rs_model *r = round_trip(m, "edited lenet", &bytes, &len);
    CHECK(r && model_diff(m, r) == 0, "edited lenet: save -> load preserves the edited graph exactly");
    int fa = r ? model_find_node(r, "/fc1/Gemm_a") : -1;
    CHECK(fa >= 0 && r->nodes[fa].n_in == 2 && r->nodes[fa].trans_b == 1,
          "edited lenet: the first half of fc1 is a Gemm without C");
    model_free(r);
    free(bytes);
    model_free(m);
}

/* ---- hostile protos ---------------------------------------------------------------------------- */

/* A small valid model as protobuf-c structs (no heap): x(N,3,4,4) -> Conv "conv" (w 2x3x3x3, b) ->
 * Relu "relu" -> Flatten "flat" -> Gemm "fc" (fcw 5x8, fcb, transB) -> y. Each hostile case
 * starts from it and breaks one thing. */
typedef struct base_model {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset, *opsets[1];
    Onnx__ValueInfoProto in, out, *ins[2], *outs[1];
    Onnx__TypeProto in_type;
    Onnx__TypeProto__Tensor in_tensor;
    Onnx__TensorShapeProto in_shape;
    Onnx__TensorShapeProto__Dimension in_dim[4], *in_dims[4];
    Onnx__TensorProto t[5], *ts[5];
    int64_t tdims[5][4];
    float wdata[54], bdata[2], fcwdata[40], fcbdata[5];
    Onnx__NodeProto node[4], *nodes[4];
    char *node_in[4][3], *node_out[4][1];
    Onnx__AttributeProto attr[4][4], *attrs[4][4];
    int64_t kernel[2];
} base_model;

static void base_init(base_model *b)
{
    memset(b, 0, sizeof *b);
    onnx__model_proto__init(&b->model);
    onnx__graph_proto__init(&b->graph);
    onnx__operator_set_id_proto__init(&b->opset);
    b->opset.domain = "";
    b->opset.has_version = 1, b->opset.version = 13;
    b->opsets[0] = &b->opset;
    b->model.has_ir_version = 1, b->model.ir_version = 7;
    b->model.n_opset_import = 1, b->model.opset_import = b->opsets;
    b->model.graph = &b->graph;
    b->graph.name = "hostile";

    onnx__value_info_proto__init(&b->in);
    onnx__type_proto__init(&b->in_type);
    onnx__type_proto__tensor__init(&b->in_tensor);
    onnx__tensor_shape_proto__init(&b->in_shape);
    static const int64_t in_dims[4] = {0, 3, 4, 4};
    for (int i = 0; i < 4; ++i) {
        onnx__tensor_shape_proto__dimension__init(&b->in_dim[i]);
        if (i == 0) {
            b->in_dim[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            b->in_dim[i].dim_param = "batch";
        } else {
            b->in_dim[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            b->in_dim[i].dim_value = in_dims[i];
        }
        b->in_dims[i] = &b->in_dim[i];
    }
    b->in_shape.n_dim = 4, b->in_shape.dim = b->in_dims;
    b->in_tensor.has_elem_type = 1, b->in_tensor.elem_type = 1, b->in_tensor.shape = &b->in_shape;
    b->in_type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, b->in_type.tensor_type = &b->in_tensor;
    b->in.name = "x", b->in.type = &b->in_type;
    onnx__value_info_proto__init(&b->out);
    b->out.name = "y";
    b->ins[0] = &b->in, b->outs[0] = &b->out;
    b->graph.n_input = 1, b->graph.input = b->ins;
    b->graph.n_output = 1, b->graph.output = b->outs;

    /* initializers: w and fcw as raw_data, b and fcb as float_data */
    uint64_t st = 3;
    float *data[4] = {b->wdata, b->bdata, b->fcwdata, b->fcbdata};
    static const size_t counts[4] = {54, 2, 40, 5};
    static const char *const tnames[4] = {"w", "b", "fcw", "fcb"};
    static const int64_t shapes[4][4] = {{2, 3, 3, 3}, {2}, {5, 8}, {5}};
    static const size_t ranks[4] = {4, 1, 2, 1};
    for (int i = 0; i < 4; ++i) {
        onnx__tensor_proto__init(&b->t[i]);
        for (size_t k = 0; k < counts[i]; ++k)
            data[i][k] = testnet_rand(&st);
        memcpy(b->tdims[i], shapes[i], sizeof shapes[i]);
        b->t[i].name = (char *)tnames[i];
        b->t[i].has_data_type = 1, b->t[i].data_type = 1;
        b->t[i].n_dims = ranks[i], b->t[i].dims = b->tdims[i];
        if (i % 2 == 0) {
            b->t[i].has_raw_data = 1;
            b->t[i].raw_data.len = counts[i] * 4;
            b->t[i].raw_data.data = (uint8_t *)data[i]; /* test host is little-endian */
        } else {
            b->t[i].n_float_data = counts[i], b->t[i].float_data = data[i];
        }
        b->ts[i] = &b->t[i];
    }
    b->graph.n_initializer = 4, b->graph.initializer = b->ts;

    static const char *const nnames[4] = {"conv", "relu", "flat", "fc"};
    static const char *const nops[4] = {"Conv", "Relu", "Flatten", "Gemm"};
    static const char *const ins[4][3] = {{"x", "w", "b"}, {"c"}, {"r"}, {"f", "fcw", "fcb"}};
    static const size_t n_ins[4] = {3, 1, 1, 3};
    static const char *const outs[4] = {"c", "r", "f", "y"};
    for (int i = 0; i < 4; ++i) {
        onnx__node_proto__init(&b->node[i]);
        b->node[i].name = (char *)nnames[i];
        b->node[i].op_type = (char *)nops[i];
        for (size_t k = 0; k < n_ins[i]; ++k)
            b->node_in[i][k] = (char *)ins[i][k];
        b->node_out[i][0] = (char *)outs[i];
        b->node[i].n_input = n_ins[i], b->node[i].input = b->node_in[i];
        b->node[i].n_output = 1, b->node[i].output = b->node_out[i];
        b->node[i].attribute = b->attrs[i];
        for (int k = 0; k < 4; ++k) {
            onnx__attribute_proto__init(&b->attr[i][k]);
            b->attrs[i][k] = &b->attr[i][k];
        }
        b->nodes[i] = &b->node[i];
    }
    b->kernel[0] = b->kernel[1] = 3;
    b->attr[0][0].name = "kernel_shape";
    b->attr[0][0].has_type = 1, b->attr[0][0].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    b->attr[0][0].n_ints = 2, b->attr[0][0].ints = b->kernel;
    b->node[0].n_attribute = 1;
    b->attr[3][0].name = "transB";
    b->attr[3][0].has_type = 1, b->attr[3][0].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    b->attr[3][0].has_i = 1, b->attr[3][0].i = 1;
    b->node[3].n_attribute = 1;
    b->graph.n_node = 4, b->graph.node = b->nodes;
}

static uint8_t *base_pack(const base_model *b, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&b->model);
    uint8_t *buf = malloc(*len ? *len : 1);
    onnx__model_proto__pack(&b->model, buf);
    return buf;
}

/* The packed model must be rejected with a message containing every `want` substring. */
static void expect_reject(const base_model *b, const char *what, const char *want1, const char *want2)
{
    size_t len;
    uint8_t *buf = base_pack(b, &len);
    rs_err e = {{0}};
    rs_model *m = onnx_load_buffer(buf, len, "hostile.onnx", &e);
    int ok = m == NULL && strncmp(e.msg, "hostile.onnx: ", 14) == 0 && strchr(e.msg, '\n') == NULL &&
             (!want1 || strstr(e.msg, want1)) && (!want2 || strstr(e.msg, want2));
    CHECK(ok, "rejects %s", what);
    printf("#   -> %s\n", m ? "(loaded!)" : e.msg);
    model_free(m);
    free(buf);
}

/* protobuf base-128 varint; returns the bytes written */
static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

static void test_hostile(void)
{
    base_model b;
    rs_err e = {{0}};

    base_init(&b);
    size_t len;
    uint8_t *good = base_pack(&b, &len);
    rs_model *m = onnx_load_buffer(good, len, "base.onnx", &e);
    CHECK(m && m->n_nodes == 4 && m->values[m->output].dims[1] == 5,
          "the unbroken base model loads (%s)", m ? "ok" : e.msg);
    CHECK(m && memcmp(m->values[model_find_value(m, "b")].f, b.bdata, sizeof b.bdata) == 0 &&
              memcmp(m->values[model_find_value(m, "w")].f, b.wdata, sizeof b.wdata) == 0,
          "base: float_data and raw_data initializers decoded exactly");
    model_free(m);

    /* every proper prefix of the file: none may load, crash or leak */
    size_t rejected = 0, bad_msg = 0;
    for (size_t cut = 0; cut < len; ++cut) {
        rs_err pe = {{0}};
        rs_model *pm = onnx_load_buffer(good, cut, "prefix.onnx", &pe);
        rejected += pm == NULL;
        bad_msg += pm == NULL && (strncmp(pe.msg, "prefix.onnx: ", 13) != 0 || strchr(pe.msg, '\n'));
        model_free(pm);
    }
    CHECK(rejected == len && bad_msg == 0, "all %zu truncations rejected with a one-line message (%zu rejected)",
          len, rejected);

    /* garbage: random bytes, and the good file with one byte flipped at every position */
    uint64_t st = 99;
    size_t garbage_loaded = 0;
    for (int trial = 0; trial < 200; ++trial) {
        size_t n = (size_t)(trial * 7 % 300);
        uint8_t *junk = malloc(n ? n : 1);
        for (size_t i = 0; i < n; ++i)
            junk[i] = (uint8_t)(testnet_rand(&st) * 127.0f + 128.0f);
        rs_model *gm = onnx_load_buffer(junk, n, "junk", &e);
        garbage_loaded += gm != NULL;
        model_free(gm);
        free(junk);
    }
    CHECK(garbage_loaded == 0, "200 random byte strings rejected");
    size_t flips_ok = 0;
    for (size_t i = 0; i < len; ++i) {
        uint8_t *mut = malloc(len);
        memcpy(mut, good, len);
        mut[i] ^= 0xA5;
        rs_model *fm = onnx_load_buffer(mut, len, "flip", &e);
        flips_ok += fm != NULL; /* flipping weight bytes legitimately still loads */
        model_free(fm);
        free(mut);
    }
    CHECK(1, "%zu single-byte corruptions survived without a crash (%zu still loaded)", len, flips_ok);
    free(good);

    base_init(&b);
    b.tdims[2][0] = 1000000, b.tdims[2][1] = 1000000;
    expect_reject(&b, "a tensor declaring 10^12 elements", "\"fcw\": 1000000000000 elements", "limit");
    base_init(&b);
    b.tdims[2][0] = 1000, b.tdims[2][1] = 1000; /* within the limit, but the bytes are not there */
    expect_reject(&b, "a 10^6-element tensor with 40 floats of data", "\"fcw\"", "raw_data has 160 bytes");
    base_init(&b);
    b.tdims[0][1] = -3;
    expect_reject(&b, "a negative initializer dim", "\"w\"", "dim 1 = -3");
    base_init(&b);
    b.tdims[0][2] = 0;
    expect_reject(&b, "a zero initializer dim", "\"w\"", "dim 2 = 0");
    base_init(&b);
    b.tdims[0][0] = b.tdims[0][1] = b.tdims[0][2] = b.tdims[0][3] = (int64_t)1 << 40;
    expect_reject(&b, "dims whose product overflows size_t", "\"w\"", "overflows");
    base_init(&b);
    b.t[0].raw_data.len = 53 * 4;
    expect_reject(&b, "raw_data of the wrong length", "\"w\"", "raw_data has 212 bytes, dims say 216");
    base_init(&b);
    b.t[1].n_float_data = 1;
    expect_reject(&b, "float_data of the wrong length", "\"b\"", "float_data has 1 values");
    base_init(&b);
    b.t[1].data_type = 6; /* INT32 */
    expect_reject(&b, "an INT32 initializer", "\"b\"", "INT32");
    base_init(&b);
    b.t[1].has_data_location = 1, b.t[1].data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    expect_reject(&b, "external tensor data", "\"b\"", "external");
    base_init(&b);
    b.in_dim[2].dim_value = -4;
    expect_reject(&b, "a negative graph input dim", "\"x\"", "dim 2 = -4");
    base_init(&b);
    b.in_dim[3].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    b.in_dim[3].dim_param = "W";
    expect_reject(&b, "a symbolic non-batch input dim", "\"x\"", "symbolic");
    base_init(&b);
    b.in_dim[1].dim_value = b.in_dim[2].dim_value = b.in_dim[3].dim_value = (int64_t)1 << 30;
    expect_reject(&b, "an input image above the allocation limit", "\"x\"", "limit");

    base_init(&b);
    b.graph.n_input = 0;
    expect_reject(&b, "a graph with no real input", "no input", NULL);
    base_init(&b); /* conv reads relu's output, relu reads conv's */
    b.node_in[0][0] = "r";
    expect_reject(&b, "a cycle", "cycle", "node \"");
    base_init(&b);
    b.node_in[2][0] = "nowhere";
    expect_reject(&b, "a dangling input", "node \"flat\" (Flatten)", "\"nowhere\"");
    base_init(&b);
    b.node_out[1][0] = "c";
    expect_reject(&b, "a duplicate output name", "node \"relu\" (Relu)", "output \"c\" is already produced");
    base_init(&b);
    b.node_out[1][0] = "w";
    expect_reject(&b, "a node writing over an initializer", "node \"relu\"", "an initializer");
    base_init(&b);
    b.node[1].op_type = "LSTM"; /* an op the engine does not implement */
    expect_reject(&b, "an unsupported op", "node \"relu\" (LSTM): unsupported op", NULL);
    base_init(&b);
    b.node[1].domain = "com.microsoft";
    expect_reject(&b, "an op from another domain", "node \"relu\" (com.microsoft:Relu): unsupported op", NULL);
    base_init(&b);
    b.attr[0][1].name = "auto_pad";
    b.attr[0][1].has_type = 1, b.attr[0][1].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    b.attr[0][1].has_s = 1, b.attr[0][1].s.data = (uint8_t *)"SAME_UPPER", b.attr[0][1].s.len = 10;
    b.node[0].n_attribute = 2;
    expect_reject(&b, "auto_pad SAME_UPPER",
                  "node \"conv\" (Conv): unsupported attribute \"auto_pad\" = SAME_UPPER", NULL);
    base_init(&b);
    b.attr[0][1].name = "foo";
    b.attr[0][1].has_type = 1, b.attr[0][1].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    b.attr[0][1].has_i = 1;
    b.node[0].n_attribute = 2;
    expect_reject(&b, "an unknown attribute", "node \"conv\" (Conv): unsupported attribute \"foo\"", NULL);
    base_init(&b);
    b.attr[3][0].i = 2;
    expect_reject(&b, "transB = 2", "node \"fc\" (Gemm): unsupported attribute \"transB\" = 2", NULL);
    base_init(&b);
    int64_t zero_strides[2] = {1, 0};
    b.attr[0][1].name = "strides";
    b.attr[0][1].has_type = 1, b.attr[0][1].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    b.attr[0][1].n_ints = 2, b.attr[0][1].ints = zero_strides;
    b.node[0].n_attribute = 2;
    expect_reject(&b, "a zero stride", "unsupported attribute \"strides\" = [1, 0]", NULL);
    base_init(&b);
    int64_t *huge = calloc(100000, sizeof *huge);
    b.attr[0][1].name = "pads";
    b.attr[0][1].has_type = 1, b.attr[0][1].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    b.attr[0][1].n_ints = 100000, b.attr[0][1].ints = huge;
    b.node[0].n_attribute = 2;
    expect_reject(&b, "a 100000-value attribute list", "\"pads\" has 100000 values (limit", NULL);
    free(huge);
    base_init(&b);
    int64_t kernel_1d[1] = {3};
    b.attr[0][0].n_ints = 1, b.attr[0][0].ints = kernel_1d;
    expect_reject(&b, "a 1-D kernel_shape", "unsupported attribute \"kernel_shape\" = [3]", NULL);
    base_init(&b);
    b.node_in[1][1] = "w", b.node[1].n_input = 2;
    expect_reject(&b, "Relu with two inputs", "node \"relu\" (Relu): has 2 inputs", NULL);
    base_init(&b);
    b.graph.n_output = 0;
    expect_reject(&b, "a graph without output", "0 outputs", NULL);
    base_init(&b);
    b.out.name = "x";
    expect_reject(&b, "an output no node produces", "\"x\" is not produced", NULL);
    base_init(&b);
    b.opset.version = 3;
    expect_reject(&b, "opset 3", "opset 3", NULL);
    base_init(&b);
    b.model.graph = NULL;
    expect_reject(&b, "a model without graph", "no graph", NULL);
    base_init(&b);
    b.tdims[2][1] = 7; /* fc weight no longer matches the 8 flattened features */
    b.t[2].raw_data.len = 35 * 4;
    expect_reject(&b, "a Gemm weight of the wrong width (shape inference)", "node \"fc\" (Gemm)", "features");

    /* older exporters list initializers among the graph inputs; nodes stored out of order */
    base_init(&b);
    Onnx__ValueInfoProto w_in = ONNX__VALUE_INFO_PROTO__INIT;
    w_in.name = "w";
    b.ins[0] = &w_in, b.ins[1] = &b.in, b.graph.n_input = 2;
    Onnx__NodeProto *tmp = b.nodes[0];
    b.nodes[0] = b.nodes[3], b.nodes[3] = tmp;
    tmp = b.nodes[1], b.nodes[1] = b.nodes[2], b.nodes[2] = tmp;
    good = base_pack(&b, &len);
    m = onnx_load_buffer(good, len, "reordered.onnx", &e);
    CHECK(m && m->n_nodes == 4 && strcmp(m->nodes[0].name, "conv") == 0 &&
              strcmp(m->nodes[1].name, "relu") == 0 && strcmp(m->nodes[3].name, "fc") == 0 &&
              strcmp(m->values[m->input].name, "x") == 0,
          "initializers listed as inputs are skipped; reversed nodes are sorted (%s)", m ? "ok" : e.msg);
    model_free(m);
    free(good);

    /* unnamed nodes get unique names, avoiding every name the file gives (even a later one) */
    base_init(&b);
    b.node[1].name = NULL, b.node[2].name = "", b.node[3].name = "Relu_1";
    good = base_pack(&b, &len);
    m = onnx_load_buffer(good, len, "unnamed.onnx", &e);
    CHECK(m && strcmp(m->nodes[1].name, "Relu_1_2") == 0 && strcmp(m->nodes[2].name, "Flatten_2") == 0 &&
              strcmp(m->nodes[3].name, "Relu_1") == 0,
          "empty node names become <Op>_<position>, clear of the file's names (%s, %s)",
          m ? m->nodes[1].name : e.msg, m ? m->nodes[2].name : "");
    model_free(m);
    free(good);
    /* two nodes of one name: a plan's "conv" would silently mean the first */
    base_init(&b);
    b.node[2].name = "conv";
    good = base_pack(&b, &len);
    m = onnx_load_buffer(good, len, "dupname.onnx", &e);
    CHECK(!m && strstr(e.msg, "dupname.onnx: nodes 0 and 2 are both named conv"),
          "two nodes with the same name are refused naming both (%s)", m ? "loaded" : e.msg);
    model_free(m);
    free(good);

    /* Graph > Node > Attribute > Graph ... 100000 levels deep (1.2 MB): protobuf-c alone would
     * recurse until the stack overflows. */
    {
        enum { LEVELS = 3 * 100000 };
        static const uint8_t field_of[3] = {1, 5, 6}; /* GraphProto.node, .attribute, .g */
        size_t *inner = malloc((LEVELS + 1) * sizeof *inner); /* payload bytes per level */
        inner[LEVELS] = 0;
        for (size_t i = LEVELS; i-- > 0;) {
            size_t n = inner[i + 1], lenlen = 1;
            for (size_t v = n; v >= 0x80; v >>= 7)
                ++lenlen;
            inner[i] = 1 + lenlen + n;
        }
        size_t cap = inner[0] + 16, pos = 0;
        uint8_t *deep = malloc(cap);
        /* wrapper i: a length-delimited field holding inner[i] bytes; wrapper 0 is ModelProto.graph */
        for (size_t i = 0; i <= LEVELS; ++i) {
            deep[pos++] = (uint8_t)((i == 0 ? 7 : field_of[(i - 1) % 3]) << 3 | 2);
            pos += put_varint(deep + pos, inner[i]);
        }
        rs_model *dm = onnx_load_buffer(deep, pos, "deep.onnx", &e);
        CHECK(dm == NULL && strstr(e.msg, "nested more than"), "a 300000-level nested message is rejected (%s)",
              e.msg);
        model_free(dm);
        free(deep);
        free(inner);
    }

    /* 5 million empty NodeProtos: 10 MB of file that protobuf-c would expand to ~700 MB. */
    {
        size_t nodes = 5000000, body = 2 * nodes, pos = 0;
        uint8_t *wide = malloc(body + 16);
        wide[pos++] = 7 << 3 | 2; /* ModelProto.graph */
        pos += put_varint(wide + pos, body);
        memset(wide + pos, 0, body);
        for (size_t i = 0; i < nodes; ++i)
            wide[pos + 2 * i] = 1 << 3 | 2; /* GraphProto.node, length 0 */
        pos += body;
        rs_model *wm = onnx_load_buffer(wide, pos, "wide.onnx", &e);
        CHECK(wm == NULL && strstr(e.msg, "decoding would allocate about"),
              "5M empty nodes are refused before decoding (%s)", e.msg);
        model_free(wm);
        free(wide);
    }

    CHECK(onnx_load("/nonexistent/dir/model.onnx", &e) == NULL &&
              strstr(e.msg, "/nonexistent/dir/model.onnx") != NULL,
          "a missing file is an error naming it (%s)", e.msg);
}

int main(void)
{
    test_lenet_golden();
    test_other_goldens();
    test_hand_built();
    test_edited();
    test_hostile();
    return check_done();
}
