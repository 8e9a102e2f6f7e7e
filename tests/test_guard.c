/* test_guard.c — non-finite weights are named and refused on every engine path that reads or
 * writes them (plan_apply, onnx_save, training that diverges), and names are quoted for a
 * terminal the way ls quotes them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "rankscope/guard.h"
#include "rankscope/onnx.h"
#include "rankscope/plan.h"
#include "rankscope/train.h"
#include "testnet.h"

/* The weight initializer of layer `name` in m. */
static rs_value *weight_of(rs_model *m, const char *name)
{
    int n = model_find_layer(m, name);
    return n >= 0 ? &m->values[m->nodes[n].in[1]] : NULL;
}

static void test_finite(void)
{
    rs_model *m = testnet_lenet(3);
    rs_err e = {{0}};
    CHECK(guard_model_finite(m, &e) == 0, "a fresh net is finite");
    rs_value *w = weight_of(m, "fc1");
    if (!CHECK(w && w->f, "fc1 has a float weight"))
        return;
    size_t n = (size_t)model_value_numel(w);
    w->f[3] = NAN;
    w->f[7] = -INFINITY;
    char want[160];
    snprintf(want, sizeof want, "initializer %s holds NaN at index 3 (2 non-finite values of %zu)",
             w->name, n);
    int rc = guard_model_finite(m, &e);
    CHECK(rc == -1 && strstr(e.msg, want), "NaN + -Inf in fc1: named with index and count (%s)", e.msg);
    w->f[3] = 0;
    rc = guard_model_finite(m, &e);
    CHECK(rc == -1 && strstr(e.msg, "holds -Inf at index 7 (1 non-finite value of"),
          "-Inf alone is reported as such (%s)", e.msg);

    /* plan_apply refuses to factorize it (it used to print "weight error 0.0000"), model intact */
    rs_plan *p = plan_alloc();
    plan_set(p, "fc1", DECOMP_SVD, 8, 0, &e);
    int nodes = m->n_nodes;
    rc = plan_apply(m, p, NULL, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, "fc1: cannot factorize") && strstr(e.msg, w->name) &&
              m->n_nodes == nodes,
          "plan_apply refuses a layer with a non-finite weight, nothing changed (%s)", e.msg);
    /* a non-finite bias is refused too */
    rs_model *m2 = testnet_lenet(3);
    int fc = model_find_layer(m2, "fc2");
    const rs_node *nd = &m2->nodes[fc];
    if (nd->n_in > 2 && nd->in[2] >= 0 && m2->values[nd->in[2]].f) {
        m2->values[nd->in[2]].f[0] = INFINITY;
        plan_clear(p);
        plan_set(p, "fc2", DECOMP_SVD, 4, 0, &e);
        rc = plan_apply(m2, p, NULL, NULL, &e);
        CHECK(rc == -1 && strstr(e.msg, "+Inf at index 0"), "a non-finite bias is refused (%s)", e.msg);
    }
    model_free(m2);
    plan_free(p);

    /* onnx_save writes nothing */
    char dir[] = "/tmp/rs_test_guard.XXXXXX", path[256];
    if (!CHECK(mkdtemp(dir) != NULL, "temporary directory"))
        return;
    snprintf(path, sizeof path, "%s/nan.onnx", dir);
    rc = onnx_save(m, path, &e);
    struct stat st;
    CHECK(rc == -1 && stat(path, &st) != 0 && strstr(e.msg, "nan.onnx") && strstr(e.msg, w->name),
          "onnx_save refuses a model with non-finite weights and writes nothing (%s)", e.msg);
    rmdir(dir);
    model_free(m);
}

static void test_diverge(void)
{
    /* a learning rate far too high: the loss overflows; training stops and says so */
    enum { N = 64 };
    uint8_t *x = malloc((size_t)N * 3072), lab[N];
    uint64_t s = 11;
    for (size_t i = 0; i < (size_t)N * 3072; ++i)
        x[i] = (uint8_t)(testnet_rand(&s) * 127.0f + 128.0f);
    for (int i = 0; i < N; ++i)
        lab[i] = (uint8_t)(i % 10);
    train_data tr = {.n = N, .c = 3, .h = 32, .w = 32, .u8 = x, .labels = lab};
    train_options o;
    train_default_options(&o);
    o.epochs = 3;
    o.batch = 16;
    o.lr = 1e8f;
    o.nthreads = 1;
    o.augment = 0;
    rs_model *m = testnet_lenet(4);
    rs_err e = {{0}};
    int rc = train_model(m, &tr, NULL, &o, NULL, &e);
    CHECK(rc != 0 && strstr(e.msg, "diverged") && !strchr(e.msg, '\n'),
          "training with lr 1e8 stops with a clear message (%s)", e.msg);
    model_free(m);
    free(x);
}

static void test_quote(void)
{
    char b[64];
    CHECK(!strcmp(guard_quote(b, sizeof b, "fc1"), "fc1"), "a plain name is unchanged");
    CHECK(!strcmp(guard_quote(b, sizeof b, "/features.0/Conv"), "/features.0/Conv"),
          "slashes and dots are plain");
    CHECK(!strcmp(guard_quote(b, sizeof b, "a\033[2Jb"), "'a'$'\\033''[2Jb'"),
          "an escape sequence is quoted as ls does: %s", b);
    CHECK(!strcmp(guard_quote(b, sizeof b, "x\ny"), "'x'$'\\012''y'"), "a newline: %s", b);
    CHECK(!strcmp(guard_quote(b, sizeof b, "it's"), "'it'\\''s'"), "a single quote: %s", b);
    CHECK(!strcmp(guard_quote(b, sizeof b, "a b"), "'a b'"), "a space: %s", b);
    CHECK(!strcmp(guard_quote(b, sizeof b, ""), "''"), "the empty name: %s", b);
    CHECK(!strcmp(guard_quote(b, sizeof b, "caf\xc3\xa9"), "caf\xc3\xa9"), "UTF-8 passes: %s", b);
    char small[12];
    guard_quote(small, sizeof small, "\033\033\033\033\033\033");
    CHECK(strlen(small) < sizeof small && strstr(small, "...") && !strchr(small, '\033'),
          "a long quoted name is cut with ... inside the buffer: %s", small);
    char tiny[1];
    guard_quote(tiny, sizeof tiny, "abc");
    CHECK(tiny[0] == 0, "a 1-byte buffer gets the empty string");
}

int main(void)
{
    test_finite();
    test_diverge();
    test_quote();
    return check_done();
}
