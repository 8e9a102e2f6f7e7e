/* test_infer_profile.c — infer_profile, the CPU time per graph node.
 *
 *  - which nodes it reports as fused, checked against what the executor's fusion rules say for
 *    these graphs (LeNet: Conv → Relu → MaxPool; the zoo ResNet-20: Conv → Add → Relu and
 *    Conv → Relu; MobileNet: Conv → Clip; VGG with BatchNormalization kept: BN as its own step);
 *  - every executed step has a positive time, fused and view nodes none, and the parts add up to
 *    steps_us;
 *  - the sum of the per-node times against a whole forward pass timed in the same run by this
 *    test itself (infer_forward on one thread, timed by the calling thread's CPU clock as
 *    infer_profile times its steps: a process clock would also count helper threads, such as
 *    OpenBLAS's spin-waiting ones, and read twice the work on a 2-core runner), and against the
 *    profile's own plain pass. Bounds are ratios with wide margins (0.5 to 2): the clocks add
 *    well under 1 % here, and a loaded machine moves both sides together. No absolute times;
 *  - cancelling through the progress callback, and bad arguments.
 */
#include "check.h"
#include "rankscope/fileio.h"
#include "rankscope/infer.h"
#include "rankscope/model.h"
#include "rankscope/onnx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The file's images repeated to N_IMAGES: enough tiles that one slow tile does not decide a ratio. */
#define N_IMAGES 64
static float *read_images(const char *path)
{
    uint8_t *raw = NULL;
    size_t len = 0;
    rs_err e = {{0}};
    float *big = NULL;
    const size_t img = 3072 * sizeof(float);
    if (fileio_read_all(path, (size_t)64 << 20, &raw, &len, &e) == 0 && len >= img &&
        (big = malloc((size_t)N_IMAGES * img)))
        for (int i = 0; i < N_IMAGES; ++i)
            memcpy(big + (size_t)i * 3072, raw + (size_t)(i % (int)(len / img)) * img, img);
    free(raw);
    return big;
}

static double thread_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The node computing the (only) activation input of node i, or -1. */
static int producer_of(const rs_model *m, int i)
{
    for (int k = 0; k < m->nodes[i].n_in; ++k) {
        int v = m->nodes[i].in[k];
        if (v < 0 || m->values[v].is_const)
            continue;
        for (int j = 0; j < i; ++j)
            for (int o = 0; o < m->nodes[j].n_out; ++o)
                if (m->nodes[j].out[o] == v)
                    return j;
    }
    return -1;
}

/* The head of the step running node i. */
static int head_of(const infer_prof *p, int i)
{
    return p->kind[i] == INFER_NODE_FUSED ? p->fused_into[i] : i;
}

static int counts_ok(const rs_model *m, const infer_prof *p, const char *label)
{
    int ok = 1, steps = 0;
    double sum = 0;
    for (int i = 0; i < m->n_nodes; ++i) {
        const char *nm = m->nodes[i].name;
        switch (p->kind[i]) {
        case INFER_NODE_STEP:
            ok &= CHECK(p->us[i] > 0, "%s: step %s (%s) has a positive time: %.3g us/img", label, nm,
                        model_op_name(m->nodes[i].op), p->us[i]);
            ok &= CHECK(p->fused_into[i] == -1, "%s: step %s is fused into nothing", label, nm);
            steps++;
            break;
        case INFER_NODE_FUSED: {
            int h = p->fused_into[i];
            ok &= CHECK(h >= 0 && h < i && p->kind[h] == INFER_NODE_STEP && p->us[i] == 0,
                        "%s: %s (%s) fused into an earlier step's head (%s), no time of its own", label, nm,
                        model_op_name(m->nodes[i].op), h >= 0 ? m->nodes[h].name : "-");
            break;
        }
        case INFER_NODE_VIEW:
            ok &= CHECK(p->us[i] == 0 && p->fused_into[i] == -1, "%s: view %s (%s) does no work", label, nm,
                        model_op_name(m->nodes[i].op));
            break;
        default:
            ok &= CHECK(0, "%s: node %s has kind %d", label, nm, p->kind[i]);
        }
        sum += p->us[i];
    }
    ok &= CHECK(steps > 0 && fabs(sum - p->steps_us) <= 1e-9 * sum, "%s: %d steps, their times add up to steps_us",
                label, steps);
    return ok;
}

/* Profiles m on n images of x and checks the invariants plus the ratio to a forward timed here. */
static infer_prof *profile_checked(const rs_model *m, const float *x, int n, const char *label)
{
    rs_err e = {{0}};
    infer_prof *p = NULL;
    int rc = infer_profile(m, x, NULL, n, NULL, NULL, &p, &e);
    if (!CHECK(rc == 0 && p && p->n_nodes == m->n_nodes && p->n_images == n, "%s: infer_profile on %d images (%s)",
               label, n, rc ? e.msg : "ok"))
        return NULL;
    counts_ok(m, p, label);
    /* a whole forward of the same images on one thread, timed here with this thread's CPU clock
     * (best of 3 so a page fault or a cold cache does not decide it) */
    infer_ctx *c = infer_create(m, 1, &e);
    float *out = c ? malloc((size_t)n * infer_out_features(c) * sizeof(float)) : NULL;
    double best = 1e30;
    for (int r = 0; r < 3 && out; ++r) {
        double t0 = thread_cpu_s();
        if (infer_forward(c, x, n, out, &e))
            break;
        double t = (thread_cpu_s() - t0) * 1e6 / n;
        best = t < best ? t : best;
    }
    if (CHECK(best < 1e29, "%s: a plain forward on one thread (%s)", label, e.msg)) {
        double r1 = p->steps_us / best, r2 = p->steps_us / p->forward_us;
        CHECK(r1 > 0.5 && r1 < 2.0, "%s: sum of node times %.1f us/img vs infer_forward %.1f us/img: ratio %.2f in (0.5, 2)",
              label, p->steps_us, best, r1);
        CHECK(r2 > 0.5 && r2 < 2.0, "%s: vs the profile's own plain pass %.1f us/img: ratio %.2f in (0.5, 2)", label,
              p->forward_us, r2);
    }
    free(out);
    infer_free(c);
    return p;
}

static int find(const rs_model *m, const char *name)
{
    for (int i = 0; i < m->n_nodes; ++i)
        if (m->nodes[i].name && !strcmp(m->nodes[i].name, name))
            return i;
    return -1;
}

static int cancel_at_once(void *user, double fraction, const char *what)
{
    (void)fraction, (void)what;
    ++*(int *)user;
    return 1;
}

static void test_lenet(const char *root, const float *x, int n)
{
    char path[1024];
    rs_err e = {{0}};
    snprintf(path, sizeof path, "%s/tests/data/lenet_random.onnx", root);
    rs_model *m = onnx_load(path, &e);
    if (!CHECK(m != NULL, "load %s (%s)", path, m ? "ok" : e.msg))
        return;
    infer_prof *p = profile_checked(m, x, n, "lenet");
    if (p) {
        int c1 = find(m, "/conv1/Conv"), r1 = find(m, "/Relu"), p1 = find(m, "/pool/MaxPool");
        int fl = find(m, "/Flatten"), f1 = find(m, "/fc1/Gemm"), r3 = find(m, "/Relu_2");
        CHECK(c1 >= 0 && r1 >= 0 && p1 >= 0 && fl >= 0 && f1 >= 0 && r3 >= 0, "lenet: the nodes are named as expected");
        if (c1 >= 0 && r1 >= 0 && p1 >= 0 && fl >= 0 && f1 >= 0 && r3 >= 0) {
            CHECK(p->kind[c1] == INFER_NODE_STEP && p->kind[r1] == INFER_NODE_FUSED && p->fused_into[r1] == c1 &&
                      p->kind[p1] == INFER_NODE_FUSED && p->fused_into[p1] == c1,
                  "lenet: conv1's Relu and MaxPool are reported fused into conv1");
            CHECK(p->kind[fl] == INFER_NODE_VIEW, "lenet: Flatten is a view (no work)");
            CHECK(p->kind[f1] == INFER_NODE_STEP && p->kind[r3] == INFER_NODE_FUSED && p->fused_into[r3] == f1,
                  "lenet: fc1's Relu is fused into fc1");
        }
        /* conv layers do 592.8K of LeNet's 651.7K MACs: they must carry most of the time */
        double conv = p->us[c1 >= 0 ? c1 : 0] + p->us[find(m, "/conv2/Conv") >= 0 ? find(m, "/conv2/Conv") : 0];
        CHECK(conv > 0.5 * p->steps_us, "lenet: conv1 + conv2 (91%% of the MACs) take %.0f%% of the time (> 50%%)",
              100 * conv / p->steps_us);
    }
    /* byte input (CIFAR-10 pixels) takes the same path */
    uint8_t *xu = malloc((size_t)n * 3072);
    for (size_t i = 0; i < (size_t)n * 3072; ++i)
        xu[i] = (uint8_t)(i * 2654435761u >> 24);
    infer_prof *pu = NULL;
    int rc = infer_profile(m, NULL, xu, n, NULL, NULL, &pu, &e);
    if (CHECK(rc == 0 && pu, "lenet: byte input (%s)", rc ? e.msg : "ok"))
        counts_ok(m, pu, "lenet bytes");
    infer_prof_free(pu);
    /* cancelled at the first tile */
    int calls = 0;
    pu = (infer_prof *)1;
    rc = infer_profile(m, x, NULL, n, cancel_at_once, &calls, &pu, &e);
    CHECK(rc == RS_CANCELLED && pu == NULL && calls == 1, "lenet: cancelled at the first progress call (rc %d, %d calls)",
          rc, calls);
    /* bad arguments: a clear error, no result */
    pu = (infer_prof *)1;
    CHECK(infer_profile(m, x, xu, n, NULL, NULL, &pu, &e) == -1 && pu == NULL && strstr(e.msg, "exactly one"),
          "both inputs refused: %s", e.msg);
    CHECK(infer_profile(m, x, NULL, 0, NULL, NULL, &pu, &e) == -1, "no images refused: %s", e.msg);
    free(xu);
    infer_prof_free(p);
    model_free(m);
}

/* Zoo-shaped graphs: which ops end up fused into which. */
static void test_zoo(const char *root, const float *x, int n)
{
    static const char *const nets[] = {"resnet20", "mobilenet", "vgg_bn_keep"};
    int all_bns = 0;
    for (size_t k = 0; k < sizeof nets / sizeof nets[0]; ++k) {
        char path[1024];
        rs_err e = {{0}};
        snprintf(path, sizeof path, "%s/tests/data/zoo/%s.onnx", root, nets[k]);
        rs_model *m = onnx_load(path, &e);
        if (!CHECK(m != NULL, "load %s (%s)", path, m ? "ok" : e.msg))
            continue;
        infer_prof *p = profile_checked(m, x, n, nets[k]);
        int adds = 0, adds_fused = 0, clips = 0, clips_fused = 0, bns = 0, bns_step = 0, convs = 0, convs_step = 0;
        for (int i = 0; p && i < m->n_nodes; ++i) {
            rs_op op = m->nodes[i].op;
            int h = head_of(p, i), from = producer_of(m, i);
            if (op == RS_OP_ADD && producer_of(m, i) >= 0) {
                adds++;
                adds_fused += p->kind[i] == INFER_NODE_FUSED && m->nodes[h].op == RS_OP_CONV;
            }
            if (op == RS_OP_CLIP) {
                clips++;
                clips_fused += p->kind[i] == INFER_NODE_FUSED && h == from && m->nodes[h].op == RS_OP_CONV;
            }
            if (op == RS_OP_BATCHNORM) {
                bns++;
                bns_step += p->kind[i] == INFER_NODE_STEP;
            }
            if (op == RS_OP_CONV) {
                convs++;
                convs_step += p->kind[i] == INFER_NODE_STEP;
            }
        }
        if (!p)
            goto next;
        CHECK(convs > 0 && convs_step == convs, "%s: every Conv (%d) is a step of its own", nets[k], convs);
        if (!strcmp(nets[k], "resnet20"))
            CHECK(adds > 0 && adds_fused == adds, "resnet20: every residual Add (%d) is fused into the Conv before it (%d)",
                  adds, adds_fused);
        if (!strcmp(nets[k], "mobilenet"))
            CHECK(clips > 0 && clips_fused == clips, "mobilenet: every Clip (ReLU6, %d) is fused into its Conv (%d)",
                  clips, clips_fused);
        CHECK(bns_step == bns, "%s: every kept BatchNormalization (%d) is timed as its own step", nets[k], bns);
        all_bns += bns;
    next:
        infer_prof_free(p);
        model_free(m);
    }
    CHECK(all_bns > 0, "some BatchNormalization was kept (resnet20's final one): %d", all_bns);
}

int main(void)
{
    rs_gsl_init(); /* as the CLI starts: OpenBLAS on one thread, GSL's abort handler off */
    const char *root = getenv("RS_SOURCE_ROOT");
    if (!root)
        root = ".";
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/lenet_input.f32", root);
    float *x = read_images(path);
    if (CHECK(x != NULL, "input %s present", path))
        test_lenet(root, x, N_IMAGES);
    free(x);
    snprintf(path, sizeof path, "%s/tests/data/zoo/zoo_input.f32", root);
    x = read_images(path);
    if (CHECK(x != NULL, "input %s present", path))
        test_zoo(root, x, N_IMAGES);
    free(x);
    return check_done();
}
