/* testnet.c — see testnet.h. */
#include "testnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

float testnet_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    uint64_t r = *s * 2685821657736338717ULL;
    return (float)((double)(r >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static int add_const(rs_model *m, const char *name, int ndim, const int64_t *dims, float scale, uint64_t *st)
{
    int v = model_add_const(m, name, ndim, dims, NULL, NULL);
    rs_value *val = &m->values[v];
    for (int64_t i = 0; i < model_value_numel(val); ++i)
        val->f[i] = scale * testnet_rand(st);
    return v;
}

static int add_act(rs_model *m, const char *name)
{
    return model_add_value(m, name, NULL);
}

static int add_conv(rs_model *m, const char *name, int x, int cin, int cout, int k, int group, int bias,
                    uint64_t *st)
{
    char buf[64];
    int64_t wd[4] = {cout, cin / group, k, k};
    snprintf(buf, sizeof buf, "%s.weight", name);
    int w = add_const(m, buf, 4, wd, 1.0f / sqrtf((float)(cin / group * k * k)), st);
    int b = -1;
    if (bias) {
        int64_t bd[1] = {cout};
        snprintf(buf, sizeof buf, "%s.bias", name);
        b = add_const(m, buf, 1, bd, 0.1f, st);
    }
    snprintf(buf, sizeof buf, "%s_out", name);
    int y = add_act(m, buf);
    int n = model_add_node(m, name, RS_OP_CONV, NULL);
    rs_node *nd = &m->nodes[n];
    nd->n_in = bias ? 3 : 2;
    nd->in[0] = x, nd->in[1] = w, nd->in[2] = b;
    nd->n_out = 1, nd->out[0] = y;
    nd->group = group;
    return n;
}

static int add_gemm(rs_model *m, const char *name, int x, int in, int out, int bias, uint64_t *st)
{
    char buf[64];
    int64_t wd[2] = {out, in};
    snprintf(buf, sizeof buf, "%s.weight", name);
    int w = add_const(m, buf, 2, wd, 1.0f / sqrtf((float)in), st);
    int b = -1;
    if (bias) {
        int64_t bd[1] = {out};
        snprintf(buf, sizeof buf, "%s.bias", name);
        b = add_const(m, buf, 1, bd, 0.1f, st);
    }
    snprintf(buf, sizeof buf, "%s_out", name);
    int y = add_act(m, buf);
    int n = model_add_node(m, name, RS_OP_GEMM, NULL);
    rs_node *nd = &m->nodes[n];
    nd->n_in = bias ? 3 : 2;
    nd->in[0] = x, nd->in[1] = w, nd->in[2] = b;
    nd->n_out = 1, nd->out[0] = y;
    nd->trans_b = 1;
    return n;
}

static int add_unary(rs_model *m, const char *name, rs_op op, int x)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s_out", name);
    int y = add_act(m, buf);
    int n = model_add_node(m, name, op, NULL);
    rs_node *nd = &m->nodes[n];
    nd->n_in = 1, nd->in[0] = x;
    nd->n_out = 1, nd->out[0] = y;
    if (op == RS_OP_MAXPOOL) {
        nd->kernel[0] = nd->kernel[1] = 2;
        nd->strides[0] = nd->strides[1] = 2;
    }
    return n;
}

static int out_of(rs_model *m, int node)
{
    return m->nodes[node].out[0];
}

static int add_input(rs_model *m, int c, int h, int w)
{
    int x = model_add_value(m, "input", NULL);
    m->values[x].ndim = 4;
    m->values[x].dims[0] = -1;
    m->values[x].dims[1] = c;
    m->values[x].dims[2] = h;
    m->values[x].dims[3] = w;
    m->input = x;
    return x;
}

rs_model *testnet_lenet(uint64_t seed)
{
    uint64_t st = seed ? seed : 1;
    rs_model *m = model_alloc();
    int x = add_input(m, 3, 32, 32);
    int n = add_conv(m, "conv1", x, 3, 6, 5, 1, 1, &st);
    n = add_unary(m, "relu1", RS_OP_RELU, out_of(m, n));
    n = add_unary(m, "pool1", RS_OP_MAXPOOL, out_of(m, n));
    n = add_conv(m, "conv2", out_of(m, n), 6, 16, 5, 1, 1, &st);
    n = add_unary(m, "relu2", RS_OP_RELU, out_of(m, n));
    n = add_unary(m, "pool2", RS_OP_MAXPOOL, out_of(m, n));
    n = add_unary(m, "flatten", RS_OP_FLATTEN, out_of(m, n));
    n = add_gemm(m, "fc1", out_of(m, n), 400, 120, 1, &st);
    n = add_unary(m, "relu3", RS_OP_RELU, out_of(m, n));
    n = add_gemm(m, "fc2", out_of(m, n), 120, 84, 1, &st);
    n = add_unary(m, "relu4", RS_OP_RELU, out_of(m, n));
    n = add_gemm(m, "fc3", out_of(m, n), 84, 10, 1, &st);
    m->output = out_of(m, n);
    rs_err e;
    if (model_infer_shapes(m, &e) != 0) {
        fprintf(stderr, "testnet_lenet: %s\n", e.msg);
        model_free(m);
        return NULL;
    }
    return m;
}

rs_model *testnet_conv(int cin, int h, int w, int cout, int kh, int kw, int sh, int sw, int ph, int pw,
                       int dh, int dw, int group, int bias, uint64_t seed)
{
    const int pads[4] = {ph, pw, ph, pw};
    return testnet_conv_pads(cin, h, w, cout, kh, kw, sh, sw, pads, dh, dw, group, bias, seed);
}

rs_model *testnet_conv_pads(int cin, int h, int w, int cout, int kh, int kw, int sh, int sw, const int pads[4],
                            int dh, int dw, int group, int bias, uint64_t seed)
{
    uint64_t st = seed ? seed : 1;
    rs_model *m = model_alloc();
    int x = add_input(m, cin, h, w);
    char buf[64];
    int64_t wd[4] = {cout, cin / group, kh, kw};
    int wv = add_const(m, "conv.weight", 4, wd, 1.0f / sqrtf((float)(cin / group * kh * kw)), &st);
    int b = -1;
    if (bias) {
        int64_t bd[1] = {cout};
        b = add_const(m, "conv.bias", 1, bd, 0.1f, &st);
    }
    snprintf(buf, sizeof buf, "conv_out");
    int y = add_act(m, buf);
    int n = model_add_node(m, "conv", RS_OP_CONV, NULL);
    rs_node *nd = &m->nodes[n];
    nd->n_in = bias ? 3 : 2;
    nd->in[0] = x, nd->in[1] = wv, nd->in[2] = b;
    nd->n_out = 1, nd->out[0] = y;
    nd->group = group;
    nd->strides[0] = sh, nd->strides[1] = sw;
    for (int k = 0; k < 4; ++k)
        nd->pads[k] = pads[k];
    nd->dilations[0] = dh, nd->dilations[1] = dw;
    m->output = y;
    rs_err e;
    if (model_infer_shapes(m, &e) != 0) {
        fprintf(stderr, "testnet_conv: %s\n", e.msg);
        model_free(m);
        return NULL;
    }
    return m;
}

rs_model *testnet_gemm(int in, int out, int bias, uint64_t seed)
{
    uint64_t st = seed ? seed : 1;
    rs_model *m = model_alloc();
    int x = model_add_value(m, "input", NULL);
    m->values[x].ndim = 2;
    m->values[x].dims[0] = -1;
    m->values[x].dims[1] = in;
    m->input = x;
    int n = add_gemm(m, "fc", x, in, out, bias, &st);
    m->output = out_of(m, n);
    rs_err e;
    if (model_infer_shapes(m, &e) != 0) {
        fprintf(stderr, "testnet_gemm: %s\n", e.msg);
        model_free(m);
        return NULL;
    }
    return m;
}
