/* zoo.c — the architectures of the model zoo (see zoo.h). */
#include "rankscope/zoo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"

typedef struct builder {
    rs_model *m;
    rng r;
    rs_err *e;
    int failed;
} builder;

static double normal(rng *r)
{
    double u1 = rng_unit(r), u2 = rng_unit(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int value(builder *b, const char *name)
{
    if (b->failed)
        return -1;
    int v = model_add_value(b->m, name, b->e);
    if (v < 0)
        b->failed = 1;
    return v;
}

/* A float initializer filled with `fill`. */
static int constant(builder *b, const char *name, int ndim, const int64_t *dims, float fill)
{
    int v = b->failed ? -1 : model_add_const(b->m, name, ndim, dims, NULL, b->e);
    if (v < 0) {
        b->failed = 1;
        return -1;
    }
    rs_value *c = &b->m->values[v];
    for (int64_t k = 0; k < model_value_numel(c); ++k)
        c->f[k] = fill;
    return v;
}

/* Node `name` of op reading x (and x2 >= 0); its output is a new value "<name>_out". */
static int node(builder *b, const char *name, rs_op op, int x, int x2, rs_node **out)
{
    int in[2] = {x, x2};
    int i = b->failed ? -1 : model_add_op(b->m, name, op, in, x2 >= 0 ? 2 : 1, NULL, b->e);
    if (i < 0) {
        b->failed = 1;
        return -1;
    }
    *out = &b->m->nodes[i];
    return (*out)->out[0];
}

static int conv(builder *b, const char *name, int x, int cin, int cout, int k, int stride, int group)
{
    char wn[320];
    snprintf(wn, sizeof wn, "%.300s.weight", name);
    int64_t dims[4] = {cout, cin / group, k, k};
    int w = constant(b, wn, 4, dims, 0);
    rs_node *n;
    int y = node(b, name, RS_OP_CONV, x, w, &n);
    if (y < 0)
        return -1;
    n->kernel[0] = n->kernel[1] = k;
    n->strides[0] = n->strides[1] = stride;
    n->pads[0] = n->pads[1] = n->pads[2] = n->pads[3] = k / 2;
    n->group = group;
    /* Kaiming normal, fan_out mode: std = √(2 / (C_out·k·k)) */
    double sd = sqrt(2.0 / ((double)cout * k * k));
    rs_value *wv = &b->m->values[w];
    for (int64_t i = 0; i < model_value_numel(wv); ++i)
        wv->f[i] = (float)(sd * normal(&b->r));
    return y;
}

static int batchnorm(builder *b, const char *name, int x, int c, float gamma)
{
    static const char *part[4] = {"weight", "bias", "running_mean", "running_var"};
    float fill[4] = {gamma, 0, 0, 1};
    int in[4];
    int64_t dims[1] = {c};
    for (int k = 0; k < 4; ++k) {
        char vn[320];
        snprintf(vn, sizeof vn, "%.280s.%s", name, part[k]);
        in[k] = constant(b, vn, 1, dims, fill[k]);
    }
    rs_node *n;
    int y = node(b, name, RS_OP_BATCHNORM, x, -1, &n);
    if (y < 0)
        return -1;
    for (int k = 0; k < 4; ++k)
        n->in[k + 1] = in[k];
    n->n_in = 5;
    n->epsilon = 1e-5f;
    return y;
}

static int unary(builder *b, const char *name, rs_op op, int x)
{
    rs_node *n;
    int y = node(b, name, op, x, -1, &n);
    if (y >= 0 && op == RS_OP_CLIP)
        n->clip_min = 0, n->clip_max = 6;
    if (y >= 0 && op == RS_OP_FLATTEN)
        n->axis = 1;
    if (y >= 0 && op == RS_OP_MAXPOOL) {
        n->kernel[0] = n->kernel[1] = 2;
        n->strides[0] = n->strides[1] = 2;
    }
    return y;
}

/* conv → BN → activation (RS_OP_RELU, RS_OP_CLIP for ReLU6, or RS_OP_NONE) */
static int conv_bn(builder *b, const char *conv_name, const char *bn_name, int x, int cin, int cout,
                   int k, int stride, int group, rs_op act, float gamma)
{
    int y = conv(b, conv_name, x, cin, cout, k, stride, group);
    y = batchnorm(b, bn_name, y, cout, gamma);
    if (act == RS_OP_NONE || y < 0)
        return y;
    char an[320];
    snprintf(an, sizeof an, "%.300s.act", bn_name);
    return unary(b, an, act, y);
}

static int linear(builder *b, const char *name, int x, int in, int out)
{
    char wn[320], bn[320];
    snprintf(wn, sizeof wn, "%.300s.weight", name);
    snprintf(bn, sizeof bn, "%.300s.bias", name);
    int64_t wd[2] = {out, in}, bd[1] = {out};
    int w = constant(b, wn, 2, wd, 0), bias = constant(b, bn, 1, bd, 0);
    rs_node *n;
    int y = node(b, name, RS_OP_GEMM, x, w, &n);
    if (y < 0)
        return -1;
    n->in[2] = bias;
    n->n_in = 3;
    n->trans_b = 1;
    double bound = 1.0 / sqrt((double)in);
    for (int i = 0; i < out * in; ++i)
        b->m->values[w].f[i] = (float)((2 * rng_unit(&b->r) - 1) * bound);
    for (int i = 0; i < out; ++i)
        b->m->values[bias].f[i] = (float)((2 * rng_unit(&b->r) - 1) * bound);
    return y;
}

static int head(builder *b, int x, int c)
{
    int y = unary(b, "pool", RS_OP_GLOBALAVGPOOL, x);
    y = unary(b, "flatten", RS_OP_FLATTEN, y);
    return linear(b, "linear", y, c, 10);
}

static int build_resnet20(builder *b, int x)
{
    int h = conv_bn(b, "conv1", "bn1", x, 3, 16, 3, 1, 1, RS_OP_RELU, 1);
    int cin = 16;
    for (int s = 0; s < 3; ++s) {
        int ch = 16 << s;
        for (int k = 0; k < 3; ++k) {
            int stride = s > 0 && k == 0 ? 2 : 1;
            char p[64], c1[96], b1[96], c2[96], b2[96], an[96], rn[96];
            snprintf(p, sizeof p, "layer%d.%d", s + 1, k);
            snprintf(c1, sizeof c1, "%s.conv1", p);
            snprintf(b1, sizeof b1, "%s.bn1", p);
            snprintf(c2, sizeof c2, "%s.conv2", p);
            snprintf(b2, sizeof b2, "%s.bn2", p);
            int o = conv_bn(b, c1, b1, h, cin, ch, 3, stride, 1, RS_OP_RELU, 1);
            o = conv_bn(b, c2, b2, o, ch, ch, 3, 1, 1, RS_OP_NONE, 0);
            int sc = h;
            if (stride != 1 || cin != ch) {
                char sc0[96], sc1[96];
                snprintf(sc0, sizeof sc0, "%s.shortcut.0", p);
                snprintf(sc1, sizeof sc1, "%s.shortcut.1", p);
                sc = conv_bn(b, sc0, sc1, h, cin, ch, 1, stride, 1, RS_OP_NONE, 1);
            }
            snprintf(an, sizeof an, "%s.add", p);
            snprintf(rn, sizeof rn, "%s.relu", p);
            rs_node *n;
            h = node(b, an, RS_OP_ADD, o, sc, &n);
            h = unary(b, rn, RS_OP_RELU, h);
            cin = ch;
        }
    }
    return head(b, h, 64);
}

/* 0 = max pooling */
static const int vgg_cfg[] = {32, 32, 0, 64, 64, 0, 128, 128, 0, 128, 128, 0};

static int build_vgg(builder *b, int x)
{
    int h = x, cin = 3, conv_i = 0, pool_i = 0;
    for (size_t i = 0; i < sizeof vgg_cfg / sizeof vgg_cfg[0]; ++i) {
        char cn[64], bn[64];
        if (vgg_cfg[i] == 0) {
            snprintf(cn, sizeof cn, "features.pool%d", ++pool_i);
            h = unary(b, cn, RS_OP_MAXPOOL, h);
            continue;
        }
        snprintf(cn, sizeof cn, "features.conv%d", ++conv_i);
        snprintf(bn, sizeof bn, "features.bn%d", conv_i);
        h = conv_bn(b, cn, bn, h, cin, vgg_cfg[i], 3, 1, 1, RS_OP_RELU, 1);
        cin = vgg_cfg[i];
    }
    return head(b, h, cin);
}

/* (out channels, stride) of each depthwise separable block */
static const int mobilenet_cfg[][2] = {{64, 1}, {128, 2}, {128, 1}, {256, 2}, {256, 1}, {256, 1}, {512, 2}};

static int build_mobilenet(builder *b, int x)
{
    int h = conv_bn(b, "stem.conv", "stem.bn", x, 3, 32, 3, 1, 1, RS_OP_CLIP, 1), cin = 32;
    for (size_t i = 0; i < sizeof mobilenet_cfg / sizeof mobilenet_cfg[0]; ++i) {
        int cout = mobilenet_cfg[i][0], stride = mobilenet_cfg[i][1];
        char dw[64], dwb[64], pw[64], pwb[64];
        snprintf(dw, sizeof dw, "blocks.%zu.dw", i);
        snprintf(dwb, sizeof dwb, "blocks.%zu.dw_bn", i);
        snprintf(pw, sizeof pw, "blocks.%zu.pw", i);
        snprintf(pwb, sizeof pwb, "blocks.%zu.pw_bn", i);
        h = conv_bn(b, dw, dwb, h, cin, cin, 3, stride, cin, RS_OP_CLIP, 1);
        h = conv_bn(b, pw, pwb, h, cin, cout, 1, 1, 1, RS_OP_CLIP, 1);
        cin = cout;
    }
    return head(b, h, cin);
}

static const struct {
    const char *name, *about;
    int (*build)(builder *, int);
} archs[] = {
    {"resnet20", "ResNet-20 (He et al. 2016): 3 stages x 3 basic blocks, 16/32/64 channels, BN",
     build_resnet20},
    {"vgg", "VGG-style: 8 conv3x3+BN+ReLU (32..128 channels), 4 max pools, linear head", build_vgg},
    {"mobilenet", "MobileNet-style: 7 depthwise separable blocks (ReLU6, BN), mean-pooled head",
     build_mobilenet},
};

int zoo_arch_count(void)
{
    return (int)(sizeof archs / sizeof archs[0]);
}

const char *zoo_arch_name(int i)
{
    return i >= 0 && i < zoo_arch_count() ? archs[i].name : NULL;
}

const char *zoo_arch_about(int i)
{
    return i >= 0 && i < zoo_arch_count() ? archs[i].about : NULL;
}

rs_model *zoo_build(const char *arch, uint64_t seed, rs_err *e)
{
    int a = 0;
    while (a < zoo_arch_count() && strcmp(archs[a].name, arch) != 0)
        ++a;
    if (a == zoo_arch_count())
        return rs_fail(e, "zoo: unknown architecture \"%.64s\" (resnet20, vgg, mobilenet)", arch), NULL;
    builder b = {.m = model_alloc(), .e = e};
    if (!b.m)
        return rs_fail(e, "zoo: out of memory"), NULL;
    rng_seed(&b.r, seed);
    int x = value(&b, "input");
    if (x >= 0) {
        rs_value *in = &b.m->values[x];
        in->ndim = 4;
        in->dims[0] = -1, in->dims[1] = 3, in->dims[2] = 32, in->dims[3] = 32;
        b.m->input = x;
    }
    int y = archs[a].build(&b, x);
    if (y >= 0) {
        /* the graph output carries the conventional name */
        free(b.m->values[y].name);
        b.m->values[y].name = strdup("logits");
        if (!b.m->values[y].name)
            b.failed = 1, rs_fail(e, "zoo: out of memory");
        b.m->output = y;
    }
    free(b.m->graph_name);
    b.m->graph_name = strdup(arch);
    if (b.failed || y < 0 || model_infer_shapes(b.m, e) != 0) {
        if (!b.failed && y >= 0)
            rs_failctx(e, "zoo: %s", arch);
        model_free(b.m);
        return NULL;
    }
    return b.m;
}

/* ---- the catalogue ---------------------------------------------------------------------------- */

static int field_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; ++i)
        if ((unsigned char)src[i] < 0x20)
            return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

static int parse_entry(char *line, const char *dir, zoo_entry *z)
{
    char *f[8];
    int k = 0;
    for (char *p = line; k < 8;) {
        f[k++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = 0;
        p = tab + 1;
    }
    if (k != 8)
        return -1;
    memset(z, 0, sizeof *z);
    char *end;
    if (field_copy(z->name, sizeof z->name, f[0]) || field_copy(z->file, sizeof z->file, f[1]) ||
        field_copy(z->arch, sizeof z->arch, f[2]) || field_copy(z->command, sizeof z->command, f[7]))
        return -1;
    long v = strtol(f[3], &end, 10);
    if (*end || end == f[3] || v < -1 || v > 10000)
        return -1;
    z->test_correct = (int)v;
    z->seed = strtol(f[4], &end, 10);
    if (*end || end == f[4])
        return -1;
    z->epochs = strtol(f[5], &end, 10);
    if (*end || end == f[5] || z->epochs < 0)
        return -1;
    z->train_seconds = strtod(f[6], &end);
    if (*end || end == f[6] || !(z->train_seconds >= -1))
        return -1;
    if (z->file[0] == '/')
        snprintf(z->path, sizeof z->path, "%s", z->file);
    else
        snprintf(z->path, sizeof z->path, "%.3800s/%s", dir, z->file);
    return 0;
}

int zoo_catalog_read(const char *path, zoo_entry **out, int *n, rs_err *e)
{
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return rs_fail(e, "%s: cannot open the zoo catalogue", path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    char line[2048];
    int lineno = 0, header = 0, rc = 0, cap = 0;
    zoo_entry *z = NULL;
    while (fgets(line, sizeof line, f)) {
        ++lineno;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = rs_fail(e, "%s:%d: line too long", path, lineno);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (!len || line[0] == '#')
            continue;
        if (!header) {
            header = 1;
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            zoo_entry *g = cap > 4096 ? NULL : realloc(z, (size_t)cap * sizeof *z);
            if (!g) {
                rc = rs_fail(e, "%s: too many entries", path);
                break;
            }
            z = g;
        }
        if (parse_entry(line, dir, &z[*n]) != 0) {
            rc = rs_fail(e, "%s:%d: expected 8 tab-separated fields (name, file, arch, test_correct, "
                         "seed, epochs, train_seconds, command)", path, lineno);
            break;
        }
        for (int k = 0; k < *n; ++k)
            if (!strcmp(z[k].name, z[*n].name)) {
                rc = rs_fail(e, "%s:%d: model \"%s\" is listed twice", path, lineno, z[*n].name);
                break;
            }
        if (rc)
            break;
        ++*n;
    }
    fclose(f);
    if (rc) {
        free(z);
        *n = 0;
        return rc;
    }
    *out = z;
    return 0;
}
