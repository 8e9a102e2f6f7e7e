/* test_limits.c — hostile input is rejected with a clear error BEFORE anything is allocated from
 * its declared sizes, with the address space capped at 1 GiB (RLIMIT_AS) so that a
 * reader which trusted a declared size would fail here instead of quietly eating memory.
 *
 * Complements tests/test_onnx.c (which mutates a protobuf-c-built model field by field: bad dims,
 * raw_data lengths, cycles, dangling inputs, attributes, every truncation). Here the files are
 * encoded byte by byte with a tiny independent protobuf writer, so the encodings can lie in ways
 * protobuf-c's packer never would (length prefixes beyond the buffer, 10^5 nodes, 10^3
 * attributes), and the other readers (CIFAR-10 batches, plans, fileio) get the same treatment
 * with sparse multi-gigabyte files that cost no disk space.
 *
 * Under AddressSanitizer / valgrind the address-space cap is skipped (their shadow memory needs
 * terabytes of virtual space); libFuzzer's -malloc_limit_mb plays that role there. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* CPU seconds of this process: the bounded-time checks must not depend on how busy the machine
 * is (CI runners, sanitizer builds at nice 19). */
static double cpu_now(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

#include "check.h"
#include "rankscope/cifar10.h"
#include "rankscope/fileio.h"
#include "rankscope/infer.h"
#include "rankscope/onnx.h"
#include "rankscope/plan.h"
#include "testnet.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define GIB ((size_t)1 << 30)

static char tmpdir[256];

/* ---- a minimal protobuf writer (wire format only; field numbers from onnx.proto) ------------- */

typedef struct pb {
    uint8_t *b;
    size_t n, cap;
} pb;

static void pb_raw(pb *p, const void *d, size_t len)
{
    if (p->n + len > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->n + len)
            cap *= 2;
        p->b = realloc(p->b, cap);
        if (!p->b) {
            fprintf(stderr, "test_limits: out of memory\n");
            exit(2);
        }
        p->cap = cap;
    }
    if (len)
        memcpy(p->b + p->n, d, len);
    p->n += len;
}

static void pb_varint(pb *p, uint64_t v)
{
    uint8_t t[10];
    size_t k = 0;
    do {
        t[k] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            t[k] |= 0x80;
        ++k;
    } while (v);
    pb_raw(p, t, k);
}

static void pb_int(pb *p, int field, int64_t v)
{
    pb_varint(p, (uint64_t)field << 3);
    pb_varint(p, (uint64_t)v);
}

static void pb_bytes(pb *p, int field, const void *d, size_t len)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, len);
    pb_raw(p, d, len);
}

static void pb_str(pb *p, int field, const char *s)
{
    pb_bytes(p, field, s, strlen(s));
}

/* Append sub as a length-delimited field, then release it. */
static void pb_msg(pb *p, int field, pb *sub)
{
    pb_bytes(p, field, sub->b, sub->n);
    free(sub->b);
    memset(sub, 0, sizeof *sub);
}

/* onnx.proto field numbers */
enum {
    MODEL_IR_VERSION = 1, MODEL_GRAPH = 7, MODEL_OPSET = 8,
    OPSET_DOMAIN = 1, OPSET_VERSION = 2,
    GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INIT = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12,
    NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP = 4, NODE_ATTR = 5,
    ATTR_NAME = 1, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20,
    TENSOR_DIMS = 1, TENSOR_TYPE = 2, TENSOR_FLOATS = 4, TENSOR_NAME = 8, TENSOR_RAW = 9,
    VI_NAME = 1, VI_TYPE = 2, TYPE_TENSOR = 1, TT_ELEM = 1, TT_SHAPE = 2, SHAPE_DIM = 1,
    DIM_VALUE = 1, DIM_PARAM = 2,
};

/* ValueInfoProto "name": float tensor (batch, dims...) */
static void pb_value_info(pb *p, int field, const char *name, int ndim, const int64_t *dims)
{
    pb vi = {0}, type = {0}, tt = {0}, shape = {0};
    for (int i = 0; i < ndim; ++i) {
        pb d = {0};
        if (i == 0)
            pb_str(&d, DIM_PARAM, "N");
        else
            pb_int(&d, DIM_VALUE, dims[i]);
        pb_msg(&shape, SHAPE_DIM, &d);
    }
    pb_int(&tt, TT_ELEM, 1);
    if (ndim)
        pb_msg(&tt, TT_SHAPE, &shape);
    pb_msg(&type, TYPE_TENSOR, &tt);
    pb_str(&vi, VI_NAME, name);
    pb_msg(&vi, VI_TYPE, &type);
    pb_msg(p, field, &vi);
}

/* A float initializer with the given dims and `nvals` float_data values (packed). */
static void pb_tensor(pb *p, const char *name, int ndim, const int64_t *dims, size_t nvals)
{
    pb t = {0}, packed = {0};
    for (int i = 0; i < ndim; ++i)
        pb_int(&t, TENSOR_DIMS, dims[i]);
    pb_int(&t, TENSOR_TYPE, 1);
    pb_str(&t, TENSOR_NAME, name);
    if (nvals) {
        float zero = 0.25f;
        for (size_t i = 0; i < nvals; ++i)
            pb_raw(&packed, &zero, 4);
        pb_msg(&t, TENSOR_FLOATS, &packed);
    }
    pb_msg(p, GRAPH_INIT, &t);
}

static void pb_node(pb *p, const char *name, const char *op, const char *in1, const char *in2,
                    const char *out)
{
    pb n = {0};
    pb_str(&n, NODE_INPUT, in1);
    if (in2)
        pb_str(&n, NODE_INPUT, in2);
    pb_str(&n, NODE_OUTPUT, out);
    pb_str(&n, NODE_NAME, name);
    pb_str(&n, NODE_OP, op);
    pb_msg(p, GRAPH_NODE, &n);
}

/* A MaxPool with a square kernel and stride k. */
static void pb_maxpool(pb *p, const char *name, const char *in, const char *out, int64_t k)
{
    pb n = {0};
    pb_str(&n, NODE_INPUT, in);
    pb_str(&n, NODE_OUTPUT, out);
    pb_str(&n, NODE_NAME, name);
    pb_str(&n, NODE_OP, "MaxPool");
    static const char *const names[2] = {"kernel_shape", "strides"};
    for (int i = 0; i < 2; ++i) {
        pb a = {0}, ints = {0};
        pb_varint(&ints, (uint64_t)k);
        pb_varint(&ints, (uint64_t)k);
        pb_str(&a, ATTR_NAME, names[i]);
        pb_msg(&a, ATTR_INTS, &ints);
        pb_int(&a, ATTR_TYPE, 7); /* INTS */
        pb_msg(&n, NODE_ATTR, &a);
    }
    pb_msg(p, GRAPH_NODE, &n);
}

/* ModelProto around a finished graph (opset 13). */
static void pb_model(pb *model, pb *graph)
{
    pb opset = {0};
    pb_int(model, MODEL_IR_VERSION, 7);
    pb_str(&opset, OPSET_DOMAIN, "");
    pb_int(&opset, OPSET_VERSION, 13);
    pb_msg(model, MODEL_OPSET, &opset);
    pb_str(graph, GRAPH_NAME, "limits");
    pb_msg(model, MODEL_GRAPH, graph);
}

/* A valid small model x(N,3,4,4) -> Flatten -> Gemm(fcw 2x48, transB) -> y; the graph's parts
 * come from the caller so each case can swap one of them. */
static const int64_t in_dims[4] = {-1, 3, 4, 4};

static pb gemm_graph(int64_t fc_out, int64_t fc_in, size_t nvals)
{
    pb g = {0}, n = {0}, a = {0};
    int64_t dims[2] = {fc_out, fc_in};
    pb_node(&g, "flat", "Flatten", "x", NULL, "f");
    pb_str(&n, NODE_INPUT, "f");
    pb_str(&n, NODE_INPUT, "fcw");
    pb_str(&n, NODE_OUTPUT, "y");
    pb_str(&n, NODE_NAME, "fc");
    pb_str(&n, NODE_OP, "Gemm");
    pb_str(&a, ATTR_NAME, "transB");
    pb_int(&a, ATTR_I, 1);
    pb_int(&a, ATTR_TYPE, 2); /* INT */
    pb_msg(&n, NODE_ATTR, &a);
    pb_msg(&g, GRAPH_NODE, &n);
    pb_tensor(&g, "fcw", 2, dims, nvals);
    pb_value_info(&g, GRAPH_INPUT, "x", 4, in_dims);
    pb_value_info(&g, GRAPH_OUTPUT, "y", 0, NULL);
    return g;
}

/* Loads the encoded model; it must be rejected with a one-line message holding want1/want2. */
static void expect_reject(pb *model, const char *what, const char *want1, const char *want2)
{
    rs_err e = {{0}};
    double t0 = rs_now();
    rs_model *m = onnx_load_buffer(model->b, model->n, "limits.onnx", &e);
    double dt = rs_now() - t0;
    int ok = m == NULL && strncmp(e.msg, "limits.onnx: ", 13) == 0 && !strchr(e.msg, '\n') &&
             (!want1 || strstr(e.msg, want1)) && (!want2 || strstr(e.msg, want2));
    CHECK(ok, "rejects %s in %.2f s", what, dt);
    printf("#   -> %s\n", m ? "(loaded!)" : e.msg);
    model_free(m);
    free(model->b);
    memset(model, 0, sizeof *model);
}

static void test_onnx_encodings(void)
{
    pb model = {0}, g;

    /* control: the unbroken model loads */
    g = gemm_graph(2, 48, 96);
    pb_model(&model, &g);
    rs_err e = {{0}};
    rs_model *m = onnx_load_buffer(model.b, model.n, "limits.onnx", &e);
    CHECK(m && m->n_nodes == 2 && m->values[m->output].dims[1] == 2,
          "the hand-encoded control model loads (%s)", m ? "ok" : e.msg);
    model_free(m);
    free(model.b), memset(&model, 0, sizeof model);

    /* a declared 10^12-element tensor with no data at all (float_data form) */
    g = gemm_graph(1000000, 1000000, 0);
    pb_model(&model, &g);
    expect_reject(&model, "a 10^12-element tensor declared with no data", "\"fcw\"", "limit");

    /* the same with 3 values present: 10^6 x 10^6 must not be trusted either */
    g = gemm_graph(1000000, 1000000, 3);
    pb_model(&model, &g);
    expect_reject(&model, "a 10^12-element tensor declared with 3 values", "\"fcw\"", NULL);

    /* dims whose product overflows 64 bits: 2^32 * 2^32 */
    g = gemm_graph((int64_t)1 << 32, (int64_t)1 << 32, 4);
    pb_model(&model, &g);
    expect_reject(&model, "dims 2^32 x 2^32 (product overflows size_t)", "\"fcw\"", "overflow");

    /* INT64_MAX and a negative varint (ten-byte encoding of -5) as dims */
    g = gemm_graph(INT64_MAX, -5, 4);
    pb_model(&model, &g);
    expect_reject(&model, "dims INT64_MAX and -5", "\"fcw\"", "dim");

    /* nine dims (the engine's limit is RS_MAXDIM = 8) */
    g = gemm_graph(2, 48, 96);
    static const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    pb_tensor(&g, "deep", 9, nine, 1);
    pb_model(&model, &g);
    expect_reject(&model, "a 9-dimensional initializer", "\"deep\"", "9 dims");

    /* a length prefix claiming 2^40 bytes for the graph, then 10 bytes */
    pb_int(&model, MODEL_IR_VERSION, 7);
    pb_varint(&model, (uint64_t)MODEL_GRAPH << 3 | 2);
    pb_varint(&model, (uint64_t)1 << 40);
    pb_raw(&model, "0123456789", 10);
    expect_reject(&model, "a graph whose length prefix claims 2^40 bytes", "protobuf", NULL);

    /* a packed float_data claiming 2^31 bytes inside a well-formed-looking tensor */
    {
        pb t = {0};
        pb_int(&t, TENSOR_DIMS, 4);
        pb_int(&t, TENSOR_TYPE, 1);
        pb_varint(&t, (uint64_t)TENSOR_FLOATS << 3 | 2);
        pb_varint(&t, (uint64_t)1 << 31);
        pb_raw(&t, "\0\0\0\0", 4);
        g = gemm_graph(2, 48, 96);
        pb_msg(&g, GRAPH_INIT, &t);
        pb_model(&model, &g);
        expect_reject(&model, "a packed float_data claiming 2^31 bytes", "protobuf", NULL);
    }

    /* graph input of 10^6 x 10^6 x 10^6 per image */
    {
        pb gg = {0};
        static const int64_t big[4] = {-1, 1000000, 1000000, 1000000};
        pb_node(&gg, "r", "Relu", "x", NULL, "y");
        pb_value_info(&gg, GRAPH_INPUT, "x", 4, big);
        pb_value_info(&gg, GRAPH_OUTPUT, "y", 0, NULL);
        pb_model(&model, &gg);
        expect_reject(&model, "a graph input of 10^18 floats per image", "\"x\"", "limit");
    }

    /* 1000 attributes on one node */
    {
        pb gg = {0}, n = {0};
        pb_str(&n, NODE_INPUT, "x");
        pb_str(&n, NODE_OUTPUT, "y");
        pb_str(&n, NODE_NAME, "r");
        pb_str(&n, NODE_OP, "Relu");
        for (int i = 0; i < 1000; ++i) {
            pb a = {0};
            pb_str(&a, ATTR_NAME, "foo");
            pb_int(&a, ATTR_I, i);
            pb_int(&a, ATTR_TYPE, 2);
            pb_msg(&n, NODE_ATTR, &a);
        }
        pb_msg(&gg, GRAPH_NODE, &n);
        pb_value_info(&gg, GRAPH_INPUT, "x", 4, in_dims);
        pb_value_info(&gg, GRAPH_OUTPUT, "y", 0, NULL);
        pb_model(&model, &gg);
        expect_reject(&model, "a node with 1000 attributes", "node \"r\" (Relu)", "1000 attributes");
    }

    /* one ints attribute of 10^6 values (pads) on a Conv */
    {
        pb gg = {0}, n = {0}, a = {0}, ints = {0};
        static const int64_t wd[4] = {2, 3, 3, 3};
        pb_str(&n, NODE_INPUT, "x");
        pb_str(&n, NODE_INPUT, "w");
        pb_str(&n, NODE_OUTPUT, "y");
        pb_str(&n, NODE_NAME, "conv");
        pb_str(&n, NODE_OP, "Conv");
        for (int i = 0; i < 1000000; ++i)
            pb_varint(&ints, 1);
        pb_str(&a, ATTR_NAME, "pads");
        pb_msg(&a, ATTR_INTS, &ints);
        pb_int(&a, ATTR_TYPE, 7); /* INTS */
        pb_msg(&n, NODE_ATTR, &a);
        pb_msg(&gg, GRAPH_NODE, &n);
        pb_tensor(&gg, "w", 4, wd, 54);
        pb_value_info(&gg, GRAPH_INPUT, "x", 4, in_dims);
        pb_value_info(&gg, GRAPH_OUTPUT, "y", 0, NULL);
        pb_model(&model, &gg);
        expect_reject(&model, "a 10^6-value \"pads\" list", "node \"conv\" (Conv)", "limit");
    }

    /* a Relu with 100 inputs */
    {
        pb gg = {0}, n = {0};
        for (int i = 0; i < 100; ++i)
            pb_str(&n, NODE_INPUT, "x");
        pb_str(&n, NODE_OUTPUT, "y");
        pb_str(&n, NODE_NAME, "r");
        pb_str(&n, NODE_OP, "Relu");
        pb_msg(&gg, GRAPH_NODE, &n);
        pb_value_info(&gg, GRAPH_INPUT, "x", 4, in_dims);
        pb_value_info(&gg, GRAPH_OUTPUT, "y", 0, NULL);
        pb_model(&model, &gg);
        expect_reject(&model, "a node with 100 inputs", "100", NULL);
    }

    /* regression (fuzz_onnx, tests/fuzz/corpus/onnx/regress-newline-in-node-name-2.onnx): a node
     * name holding a newline reached an error message from shape inference verbatim */
    {
        pb gg = {0};
        pb_maxpool(&gg, "po\n", "x", "p", 34);
        pb_node(&gg, "flat", "Flatten", "p", NULL, "y");
        pb_value_info(&gg, GRAPH_INPUT, "x", 4, in_dims);
        pb_value_info(&gg, GRAPH_OUTPUT, "y", 0, NULL);
        pb_model(&model, &gg);
        expect_reject(&model, "a node named \"po\\n\" whose kernel does not fit (one-line message)",
                      "does not fit", NULL);
    }

    /* 100,001 nodes: over the reader's cap, refused up front */
    {
        pb gg = {0};
        char a[32], b[32], nm[32];
        for (int i = 0; i <= 100000; ++i) {
            snprintf(a, sizeof a, i ? "v%d" : "x", i);
            snprintf(b, sizeof b, i == 100000 ? "y" : "v%d", i + 1);
            snprintf(nm, sizeof nm, "r%d", i);
            pb_node(&gg, nm, "Relu", a, NULL, b);
        }
        pb_value_info(&gg, GRAPH_INPUT, "x", 4, in_dims);
        pb_value_info(&gg, GRAPH_OUTPUT, "y", 0, NULL);
        pb_model(&model, &gg);
        expect_reject(&model, "a graph of 100,001 nodes", "100001 nodes", "limit");
    }

    /* 50,000 chained nodes, stored in reverse order: within the cap, must load in linear time */
    {
        pb gg = {0};
        char a[32], b[32], nm[32];
        const int N = 50000;
        for (int i = N - 1; i >= 0; --i) {
            snprintf(a, sizeof a, i ? "v%d" : "x", i);
            snprintf(b, sizeof b, i == N - 1 ? "y" : "v%d", i + 1);
            snprintf(nm, sizeof nm, "r%d", i);
            pb_node(&gg, nm, "Relu", a, NULL, b);
        }
        pb_value_info(&gg, GRAPH_INPUT, "x", 4, in_dims);
        pb_value_info(&gg, GRAPH_OUTPUT, "y", 0, NULL);
        pb_model(&model, &gg);
        double t0 = cpu_now();
        m = onnx_load_buffer(model.b, model.n, "chain.onnx", &e);
        double dt = cpu_now() - t0;
        CHECK(m && m->n_nodes == N && strcmp(m->nodes[0].name, "r0") == 0 && dt < 5.0,
              "a reversed 50,000-node chain loads and sorts in %.2f CPU s (limit 5) (%s)", dt,
              m ? "ok" : e.msg);
        model_free(m);
        free(model.b), memset(&model, 0, sizeof model);
    }

    /* a graph that loads (two 16 KB weights) but whose activations are absurd: a 1x1 Conv
     * 1 -> 4096 on a 16384x16384 image = 2^40 floats per image, pooled back down to one logit.
     * Running it must fail cleanly, by size, not by attempting the allocation. */
    {
        pb gg = {0};
        static const int64_t img[4] = {-1, 1, 16384, 16384};
        static const int64_t wd[4] = {4096, 1, 1, 1}, wd2[4] = {1, 4096, 1, 1};
        pb_node(&gg, "wide", "Conv", "x", "w", "a");
        pb_maxpool(&gg, "pool1", "a", "p", 1024);
        pb_node(&gg, "narrow", "Conv", "p", "w2", "c");
        pb_maxpool(&gg, "pool2", "c", "q", 16);
        pb_node(&gg, "flat", "Flatten", "q", NULL, "y");
        pb_tensor(&gg, "w", 4, wd, 4096);
        pb_tensor(&gg, "w2", 4, wd2, 4096);
        pb_value_info(&gg, GRAPH_INPUT, "x", 4, img);
        pb_value_info(&gg, GRAPH_OUTPUT, "y", 0, NULL);
        pb_model(&model, &gg);
        m = onnx_load_buffer(model.b, model.n, "wide.onnx", &e);
        if (m) {
            rs_err ie = {{0}};
            infer_ctx *c = infer_create(m, 1, &ie);
            CHECK(c == NULL && ie.msg[0] && !strchr(ie.msg, '\n'),
                  "a model with 2^40-float activations: infer_create refuses (%s)",
                  c ? "created!" : ie.msg);
            infer_free(c);
        } else {
            CHECK(strstr(e.msg, "wide.onnx") != NULL,
                  "a model with 2^40-float activations is refused at load (%s)", e.msg);
        }
        model_free(m);
        free(model.b), memset(&model, 0, sizeof model);
    }
}

/* ---- files on disk --------------------------------------------------------------------------- */

/* A sparse file of `size` bytes (no disk blocks), optionally starting with `head`. */
static int sparse_file(const char *path, uint64_t size, const void *head, size_t head_len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    int rc = 0;
    if (head_len && write(fd, head, head_len) != (ssize_t)head_len)
        rc = -1;
    if (rc == 0 && ftruncate(fd, (off_t)size) != 0)
        rc = -1;
    close(fd);
    return rc;
}

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void test_files(void)
{
    char path[512], path2[512];
    rs_err e = {{0}};

    /* ONNX: a 3 GiB file is refused before it is read */
    tmp_path(path, sizeof path, "huge.onnx");
    if (CHECK(sparse_file(path, (uint64_t)3 << 30, NULL, 0) == 0, "sparse 3 GiB model file created")) {
        rs_model *m = onnx_load(path, &e);
        CHECK(!m && strstr(e.msg, path) && strstr(e.msg, "limit"),
              "a 3 GiB model file is refused by size (%s)", e.msg);
        model_free(m);
        unlink(path);
    }

    /* ONNX: a real model truncated on disk */
    rs_model *net = testnet_lenet(7);
    tmp_path(path, sizeof path, "lenet.onnx");
    e.msg[0] = 0;
    if (CHECK(net && onnx_save(net, path, &e) == 0, "reference net saved (%s)", e.msg[0] ? e.msg : "ok")) {
        struct stat st;
        stat(path, &st);
        const off_t cuts[3] = {st.st_size - 1, st.st_size / 2, 7};
        for (int i = 0; i < 3; ++i) {
            if (truncate(path, cuts[i]) != 0)
                continue;
            rs_model *m = onnx_load(path, &e);
            CHECK(!m && strstr(e.msg, path) && !strchr(e.msg, '\n'),
                  "model truncated to %lld bytes: %s", (long long)cuts[i], e.msg);
            model_free(m);
        }
        unlink(path);
    }
    model_free(net);

    /* a character device that never ends: the read is capped, whatever the reader */
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = fileio_read_all("/dev/zero", (size_t)1 << 20, &buf, &len, &e);
    CHECK(rc == -1 && buf == NULL && strstr(e.msg, "/dev/zero"),
          "fileio_read_all stops an endless /dev/zero at its cap (%s)", e.msg);
    free(buf);
    /* whatever cap the reader asks for, a stream is read at most FILEIO_STREAM_MAX (64 MiB) */
    rc = fileio_read_all("/dev/zero", (size_t)1 << 40, &buf, &len, &e);
    CHECK(rc == -1 && buf == NULL && strstr(e.msg, "67108864"), "stream cap applies to any max (%s)", e.msg);
    free(buf);
    rs_model *zm = onnx_load("/dev/zero", &e);
    CHECK(!zm && strstr(e.msg, "/dev/zero"), "onnx_load(/dev/zero) refused at the stream cap (%s)", e.msg);
    model_free(zm);
    rs_plan *pl = plan_load("/dev/zero", &e);
    CHECK(!pl && strstr(e.msg, "/dev/zero"), "plan_load(/dev/zero) refused (%s)", e.msg);
    plan_free(pl);

    /* CIFAR-10: batch files whose sizes promise too many images */
    uint8_t rec[CIFAR10_RECORD];
    memset(rec, 0, sizeof rec);
    const uint64_t counts[2] = {20000000, 3000000}; /* 61 GB, 9.2 GB: both beyond RS_MAX_ALLOC */
    for (int i = 0; i < 2; ++i) {
        tmp_path(path, sizeof path, "huge_batch.bin");
        if (!CHECK(sparse_file(path, counts[i] * CIFAR10_RECORD, rec, sizeof rec) == 0,
                   "sparse batch of %llu records created", (unsigned long long)counts[i]))
            continue;
        const char *paths[1] = {path};
        double t0 = cpu_now();
        cifar10_set *s = cifar10_read_files(paths, 1, &e);
        double dt = cpu_now() - t0;
        CHECK(!s && strstr(e.msg, "out of memory") == NULL && dt < 1.0,
              "a batch file of %llu records is refused by size in %.2f s, not by running out of "
              "memory (%s)", (unsigned long long)counts[i], dt, s ? "loaded!" : e.msg);
        cifar10_free(s);
        unlink(path);
    }
    const char *dev[1] = {"/dev/zero"};
    cifar10_set *s = cifar10_read_files(dev, 1, &e);
    CHECK(!s && strstr(e.msg, "/dev/zero"), "/dev/zero as a CIFAR-10 batch refused (%s)", e.msg);
    cifar10_free(s);
    s = cifar10_alloc(-1, &e);
    CHECK(!s && e.msg[0], "cifar10_alloc(-1) refused (%s)", e.msg);
    cifar10_free(s);

    /* plans: a 2 GiB plan file, a NUL byte, a 1 MB line */
    tmp_path(path, sizeof path, "huge.plan");
    if (CHECK(sparse_file(path, (uint64_t)2 << 30, "fc1 svd 3\n", 10) == 0, "sparse 2 GiB plan created")) {
        pl = plan_load(path, &e);
        CHECK(!pl && strstr(e.msg, path) && strstr(e.msg, "limit"), "a 2 GiB plan file is refused by size (%s)",
              e.msg);
        plan_free(pl);
        unlink(path);
    }
    tmp_path(path2, sizeof path2, "nul.plan");
    if (sparse_file(path2, 20, "fc1 svd 3\n", 10) == 0) {
        pl = plan_load(path2, &e);
        CHECK(!pl && strstr(e.msg, "NUL"), "a plan with NUL bytes is refused (%s)", e.msg);
        plan_free(pl);
        unlink(path2);
    }
}

/* ---- plans: hostile text -------------------------------------------------------------------- */

static void expect_plan_reject(const char *text, int spec, const char *what, const char *want)
{
    rs_plan *p = plan_alloc();
    rs_err e = {{0}};
    int rc = spec ? plan_parse_spec(p, text, &e) : plan_parse_text(p, text, "hostile.plan", &e);
    CHECK(rc == -1 && e.msg[0] && !strchr(e.msg, '\n') && (!want || strstr(e.msg, want)),
          "plan %s rejected with a one-line message (%.*s)", what, (int)strcspn(e.msg, "\r\n"), e.msg);
    plan_free(p);
}

static void test_plans(void)
{
    expect_plan_reject("fc1 svd 99999999999999999999\n", 0, "rank 10^20 (int overflow)", "bad rank");
    expect_plan_reject("fc1 svd 2147483648\n", 0, "rank 2^31", "bad rank");
    expect_plan_reject("fc1 svd -3\n", 0, "negative rank", "bad rank");
    expect_plan_reject("fc1 svd 0\n", 0, "rank 0", "bad rank");
    expect_plan_reject("conv2 tucker2 4,0\n", 0, "tucker2 rank2 0", "bad rank");
    expect_plan_reject("conv2 tucker2 4,99999999999\n", 0, "tucker2 rank2 10^11", "bad rank");
    expect_plan_reject("conv2=tucker2:4:-1", 1, "spec rank2 -1", "bad rank");
    expect_plan_reject("fc1=svd:1e9", 1, "spec rank 1e9", "bad rank");
    /* regression (fuzz_plan): a spec layer name with a space or '#' would be saved as a plan
     * that reads back differently */
    expect_plan_reject("nted comment\r\nconv2=cp:16", 1, "spec layer name with a space and CR/LF",
                       "control character 0x0d at position 13");
    expect_plan_reject("nted comment=svd:3", 1, "spec layer name with a space", "at byte 4");
    expect_plan_reject("a#b=svd:3", 1, "spec layer name with '#'", "at byte 1");

    /* one 1 MB line */
    size_t big = (size_t)1 << 20;
    char *line = malloc(big + 1);
    memset(line, 'a', big);
    line[big] = 0;
    expect_plan_reject(line, 0, "with a 1 MB line", "too long");
    expect_plan_reject(line, 1, "spec with a 1 MB item", "too long");
    free(line);

    /* 60,000 distinct entries (a 1 MB plan file's worth): parsed in bounded time, then refused
     * against the reference net by name */
    const int N = 60000;
    char *text = malloc((size_t)N * 24 + 1);
    size_t at = 0;
    for (int i = 0; i < N; ++i)
        at += (size_t)sprintf(text + at, "layer%d svd 3\n", i);
    rs_plan *p = plan_alloc();
    rs_err e = {{0}};
    double t0 = cpu_now();
    int rc = plan_parse_text(p, text, "many.plan", &e);
    double dt = cpu_now() - t0;
    CHECK((rc == 0 || e.msg[0]) && dt < 5.0,
          "a plan of %d entries is parsed or refused in %.2f CPU s (limit 5) (%s)", N, dt,
          rc ? e.msg : "parsed");
    rs_model *net = testnet_lenet(3);
    if (rc == 0 && net) {
        rc = plan_validate(net, p, &e);
        CHECK(rc == -1 && strstr(e.msg, "layer0"), "... and refused by plan_validate (%s)", e.msg);
    }
    model_free(net);
    plan_free(p);
    free(text);
}

/* ---- models built through the API: graphs that are not DAGs ---------------------------------- */

static void test_graphs(void)
{
    rs_err e = {{0}};
    rs_model *m = testnet_lenet(5);
    if (!CHECK(m != NULL, "reference net built"))
        return;
    /* relu after conv1 reads a value produced by the last node: a back edge */
    int late = m->nodes[m->n_nodes - 1].out[0];
    m->nodes[1].in[0] = late;
    int rc = model_infer_shapes(m, &e);
    CHECK(rc == -1 && strstr(e.msg, "cycle"), "a back edge (cycle) is refused (%s)", e.msg);
    model_free(m);

    m = testnet_lenet(5);
    int ghost = model_add_value(m, "ghost", &e);
    m->nodes[2].in[0] = ghost;
    rc = model_infer_shapes(m, &e);
    CHECK(rc == -1 && strstr(e.msg, "ghost"), "an input nothing produces is refused (%s)", e.msg);
    model_free(m);

    m = testnet_lenet(5);
    m->nodes[0].in[0] = m->n_values + 100;
    rc = model_infer_shapes(m, &e);
    CHECK(rc == -1 && e.msg[0], "an out-of-range value index is refused (%s)", e.msg);
    model_free(m);

    m = testnet_lenet(5);
    m->values[m->input].dims[2] = (int64_t)1 << 40;
    rc = model_infer_shapes(m, &e);
    CHECK(rc == -1 && strstr(e.msg, "out of range"), "a 2^40 input dim is refused (%s)", e.msg);
    model_free(m);
}

/* ---- the address-space cap ------------------------------------------------------------------- */

static int cap_address_space(void)
{
    if (UNDER_ASAN || getenv("RS_NO_RLIMIT")) {
        printf("# RLIMIT_AS not set (sanitizer or valgrind build)\n");
        return 0;
    }
    struct rlimit rl = {GIB, GIB};
    struct rlimit cur;
    if (getrlimit(RLIMIT_AS, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && cur.rlim_max < GIB)
        rl.rlim_cur = rl.rlim_max = cur.rlim_max;
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        printf("# setrlimit(RLIMIT_AS) failed: %s\n", strerror(errno));
        return 0;
    }
    /* the cap is real: a 2 GiB allocation now fails */
    void *p = malloc(2 * GIB);
    CHECK(p == NULL, "RLIMIT_AS = 1 GiB is in force (a 2 GiB malloc fails)");
    free(p);
    return 1;
}

int main(void)
{
    rs_gsl_init();
    snprintf(tmpdir, sizeof tmpdir, "%s/rs-limits.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("not ok 1 - temporary directory: %s\n1..1\n", strerror(errno));
        return 1;
    }
    cap_address_space();
    test_onnx_encodings();
    test_files();
    test_plans();
    test_graphs();
    CHECK(rmdir(tmpdir) == 0, "temporary directory removed (nothing left behind)");
    return check_done();
}
