/* test_model.c — shape inference, graph validation, edits and the layer table (hand-counted). */
#include "check.h"
#include "rankscope/model.h"
#include "testnet.h"

#include <stdlib.h>
#include <string.h>

static const rs_layer_info *row(const rs_layer_info *t, int n, const char *name)
{
    for (int i = 0; i < n; ++i)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

int main(void)
{
    rs_err e;
    rs_model *m = testnet_lenet(42);
    CHECK(m != NULL, "reference net builds and infers shapes");
    const rs_value *out = &m->values[m->output];
    CHECK(out->ndim == 2 && out->dims[1] == 10, "output is N x 10");
    int c2 = model_find_node(m, "conv2");
    const rs_value *c2o = &m->values[m->nodes[c2].out[0]];
    CHECK(c2o->dims[1] == 16 && c2o->dims[2] == 10 && c2o->dims[3] == 10, "conv2 output 16x10x10");

    rs_layer_info *t;
    int n;
    CHECK(model_layer_table(m, &t, &n, &e) == 0 && n == m->n_nodes, "layer table has a row per node");
    /* hand counts: conv1 6*3*25+6, 6*28*28*75; conv2 16*6*25+16, 16*10*10*150; fc in*out+out, in*out */
    const rs_layer_info *r = row(t, n, "conv1");
    CHECK(r && r->params == 456 && r->macs == 352800, "conv1 params 456, MACs 352800");
    r = row(t, n, "conv2");
    CHECK(r && r->params == 2416 && r->macs == 240000, "conv2 params 2416, MACs 240000");
    CHECK(r && r->w_ndim == 4 && r->w_shape[0] == 16 && r->w_shape[1] == 6, "conv2 weight shape");
    r = row(t, n, "fc1");
    CHECK(r && r->params == 48120 && r->macs == 48000 && r->in_shape[0] == 400, "fc1 400->120");
    r = row(t, n, "pool1");
    CHECK(r && r->params == 0 && r->macs == 0 && r->out_shape[1] == 14, "pool1 counts nothing, 6x14x14");
    free(t);
    int64_t params, macs;
    model_totals(m, &params, &macs);
    CHECK(params == 62006 && macs == 651720, "totals 62006 params, 651720 MACs (got %lld, %lld)",
          (long long)params, (long long)macs);
    CHECK(model_is_weighted(m, c2) && !model_is_weighted(m, model_find_node(m, "relu1")), "weighted layers");

    /* clone is deep */
    rs_model *c = model_clone(m);
    int w = m->nodes[c2].in[1];
    c->values[w].f[0] += 1.0f;
    CHECK(c->values[w].f[0] != m->values[w].f[0] && !strcmp(c->nodes[c2].name, "conv2"), "clone is deep");

    /* replace fc2 by two Gemms (120->30->84) through a new intermediate value */
    int fc2 = model_find_node(c, "fc2");
    int mid = model_add_value(c, "fc2_mid", &e);
    int w0 = model_add_value(c, "fc2_f0.weight", &e);
    c->values[w0].is_const = 1, c->values[w0].ndim = 2, c->values[w0].dims[0] = 30, c->values[w0].dims[1] = 120;
    c->values[w0].f = calloc(30 * 120, sizeof(float));
    int w1 = model_add_value(c, "fc2_f1.weight", &e);
    c->values[w1].is_const = 1, c->values[w1].ndim = 2, c->values[w1].dims[0] = 84, c->values[w1].dims[1] = 30;
    c->values[w1].f = calloc(84 * 30, sizeof(float));
    rs_node rep[2];
    rep[0].name = "fc2_f0", rep[0].op = RS_OP_GEMM;
    model_node_defaults(&rep[0]);
    rep[0].trans_b = 1, rep[0].n_in = 2, rep[0].in[0] = c->nodes[fc2].in[0], rep[0].in[1] = w0;
    rep[0].n_out = 1, rep[0].out[0] = mid;
    rep[1] = c->nodes[fc2];
    rep[1].name = "fc2_f1";
    rep[1].in[0] = mid, rep[1].in[1] = w1;
    int old_w = c->nodes[fc2].in[1];
    const char *old_name = c->values[old_w].name;
    CHECK(old_name && model_replace_node(c, fc2, rep, 2, &e) == 0, "replace fc2 by a chain");
    CHECK(model_find_value(c, "fc2.weight") == -1, "the replaced weight is collected");
    CHECK(model_infer_shapes(c, &e) == 0, "shapes after replacement: %s", e.msg);
    model_totals(c, &params, &macs);
    CHECK(params == 62006 - 10164 + 120 * 30 + 30 * 84 + 84, "params after replacement");
    CHECK(model_find_node(c, "fc2_f0") + 1 == model_find_node(c, "fc2_f1"), "chain kept in order");
    model_free(c);

    /* validation errors name node, op and problem */
    c = model_clone(m);
    c->nodes[c2].group = 4;
    CHECK(model_infer_shapes(c, &e) == -1 && strstr(e.msg, "conv2") && strstr(e.msg, "group"),
          "bad group: %s", e.msg);
    model_free(c);
    c = model_clone(m);
    int fc1 = model_find_node(c, "fc1"), fc3 = model_find_node(c, "fc3");
    c->nodes[fc1].in[0] = c->nodes[fc3].out[0]; /* reads a value produced later: a cycle */
    CHECK(model_infer_shapes(c, &e) == -1 && strstr(e.msg, "fc1") && strstr(e.msg, "not produced"),
          "cycle / dangling input: %s", e.msg);
    model_free(c);
    c = model_clone(m);
    c->nodes[model_find_node(c, "conv1")].pads[0] = -3;
    CHECK(model_infer_shapes(c, &e) == -1 && strstr(e.msg, "pads"), "negative pad: %s", e.msg);
    model_free(c);
    c = model_clone(m);
    c->nodes[model_find_node(c, "pool2")].kernel[0] = 11;
    CHECK(model_infer_shapes(c, &e) == -1 && strstr(e.msg, "pool2") && strstr(e.msg, "does not fit"),
          "kernel larger than input: %s", e.msg);
    model_free(c);
    c = model_clone(m);
    c->nodes[model_find_node(c, "flatten")].axis = 2;
    CHECK(model_infer_shapes(c, &e) == -1 && strstr(e.msg, "axis"), "unsupported flatten axis: %s", e.msg);
    model_free(c);

    /* layer lookup by the names users know: node name, PyTorch "/mod/Op", weight "mod.weight" */
    c = model_clone(m);
    int k2 = model_find_node(c, "conv2");
    free(c->nodes[k2].name);
    c->nodes[k2].name = rs_strdup("/conv2/Conv");
    int k1 = model_find_node(c, "fc1");
    free(c->nodes[k1].name);
    c->nodes[k1].name = rs_strdup("node_7");
    char nb[64];
    CHECK(model_find_layer(c, "conv2") == k2 && model_find_layer(c, "/conv2/Conv") == k2, "torch-style name");
    CHECK(model_find_layer(c, "fc1") == k1, "by weight initializer fc1.weight");
    CHECK(model_find_layer(c, "fc9") == -1 && model_find_layer(c, "conv") == -1, "no partial matches");
    CHECK(!strcmp(model_layer_name(c, k2, nb, sizeof nb), "conv2"), "short display name conv2");
    int k3 = model_find_node(c, "fc2"), k4 = model_find_node(c, "fc3");
    free(c->nodes[k3].name);
    c->nodes[k3].name = rs_strdup("/block/a/lin/Gemm");
    free(c->nodes[k4].name);
    c->nodes[k4].name = rs_strdup("/block/b/lin/Gemm");
    CHECK(model_find_layer(c, "a") == k3, "unique path segment");
    CHECK(model_find_layer(c, "lin") == -1 && model_find_layer(c, "block") == -1, "ambiguous segment refused");
    CHECK(model_find_layer(c, "block/a/lin") == k3, "full PyTorch module path");
    CHECK(!strcmp(model_layer_name(c, k1, nb, sizeof nb), "fc1"), "shown by its weight name fc1");
    model_free(c);

    /* ceil_mode pooling drops a last window that would start in the end padding (PyTorch rule:
     * 5x5, kernel 2, stride 2, pad 1 -> 3x3, checked with torch.nn.MaxPool2d(2, 2, 1, ceil_mode=True)) */
    {
        rs_model *pm = testnet_conv(1, 5, 5, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 9);
        int y = pm->output;
        int py = model_add_value(pm, "pooled", &e);
        int pn = model_add_node(pm, "pool", RS_OP_MAXPOOL, &e);
        rs_node *pl = &pm->nodes[pn];
        pl->n_in = 1, pl->in[0] = y, pl->n_out = 1, pl->out[0] = py;
        pl->kernel[0] = pl->kernel[1] = 2, pl->strides[0] = pl->strides[1] = 2;
        pl->pads[0] = pl->pads[1] = pl->pads[2] = pl->pads[3] = 1;
        pl->ceil_mode = 1;
        pm->output = py;
        CHECK(model_infer_shapes(pm, &e) == 0 && pm->values[py].dims[2] == 3 && pm->values[py].dims[3] == 3,
              "ceil_mode 5x5 k2 s2 p1 -> 3x3 like PyTorch (got %lld)", (long long)pm->values[py].dims[2]);
        pl = &pm->nodes[pn];
        pl->pads[0] = pl->pads[1] = pl->pads[2] = pl->pads[3] = 0;
        CHECK(model_infer_shapes(pm, &e) == 0 && pm->values[py].dims[2] == 3, "ceil_mode 5x5 k2 s2 p0 -> 3x3");
        pl->ceil_mode = 0;
        CHECK(model_infer_shapes(pm, &e) == 0 && pm->values[py].dims[2] == 2, "floor mode 5x5 k2 s2 -> 2x2");
        model_free(pm);
    }

    /* single-layer builders used by other tests */
    rs_model *g = testnet_conv(4, 9, 7, 8, 3, 2, 2, 1, 1, 0, 2, 1, 2, 0, 3);
    CHECK(g != NULL, "strided dilated grouped conv model builds");
    if (g) {
        const rs_value *y = &g->values[g->output];
        /* H: (9+2-5)/2+1 = 4 ; W: (7-2)/1+1 = 6 */
        CHECK(y->dims[1] == 8 && y->dims[2] == 4 && y->dims[3] == 6, "output 8x4x6 (got %lldx%lldx%lld)",
              (long long)y->dims[1], (long long)y->dims[2], (long long)y->dims[3]);
    }
    model_free(g);
    model_free(m);
    model_free(NULL);
    return check_done();
}
