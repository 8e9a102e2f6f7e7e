/* edit_fixture.c — see edit_fixture.h. */
#include "edit_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testnet.h"

static int add_weight(rs_model *m, const char *node, const char *suffix, int ndim, const int64_t *dims,
                      uint64_t *st, rs_err *e)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", node, suffix);
    int v = model_add_value(m, name, e);
    if (v < 0)
        return -1;
    rs_value *val = &m->values[v];
    val->is_const = 1;
    val->ndim = ndim;
    memcpy(val->dims, dims, (size_t)ndim * sizeof *dims);
    size_t n = (size_t)model_value_numel(val), fan_in = n / (size_t)dims[0];
    val->f = malloc(n * sizeof(float));
    if (!val->f)
        return rs_fail(e, "out of memory");
    for (size_t i = 0; i < n; ++i)
        val->f[i] = testnet_rand(st) * 1.7f / sqrtf((float)fan_in);
    return v;
}

static int replace_one(rs_model *m, int idx, uint64_t *st, rs_err *e)
{
    rs_node orig = m->nodes[idx];
    char name[200], mid_name[256], a_name[256], b_name[256];
    snprintf(name, sizeof name, "%s", orig.name);
    snprintf(mid_name, sizeof mid_name, "%s_mid", name);
    snprintf(a_name, sizeof a_name, "%s_a", name);
    snprintf(b_name, sizeof b_name, "%s_b", name);
    int64_t wd[4];
    memcpy(wd, m->values[orig.in[1]].dims, sizeof wd);
    int bias = orig.n_in > 2 ? orig.in[2] : -1;
    int mid = model_add_value(m, mid_name, e), wa, wb;
    if (mid < 0)
        return -1;
    rs_node rep[2];
    rep[0] = orig, rep[1] = orig;
    rep[0].name = a_name, rep[1].name = b_name;
    if (orig.op == RS_OP_CONV) {
        int64_t cin = m->values[orig.in[0]].dims[1], r = 4;
        int64_t group = cin % 2 == 0 ? 2 : 1;
        int64_t da[4] = {r, cin / group, wd[2], wd[3]}, db[4] = {wd[0], r, 1, 1};
        if ((wa = add_weight(m, name, "_a.weight", 4, da, st, e)) < 0 ||
            (wb = add_weight(m, name, "_b.weight", 4, db, st, e)) < 0)
            return -1;
        rep[0].group = group;
        rep[1].kernel[0] = rep[1].kernel[1] = 1;
        rep[1].strides[0] = rep[1].strides[1] = 1;
        rep[1].dilations[0] = rep[1].dilations[1] = 1;
        memset(rep[1].pads, 0, sizeof rep[1].pads);
        rep[1].group = 1;
    } else {
        int64_t r = 8, da[2] = {r, wd[1]}, db[2] = {wd[0], r};
        if ((wa = add_weight(m, name, "_a.weight", 2, da, st, e)) < 0 ||
            (wb = add_weight(m, name, "_b.weight", 2, db, st, e)) < 0)
            return -1;
    }
    rep[0].alpha = 1.0f; /* the original scale is applied once, by the second half */
    rep[0].n_in = 2, rep[0].in[1] = wa, rep[0].in[2] = -1, rep[0].out[0] = mid;
    rep[1].in[0] = mid, rep[1].in[1] = wb, rep[1].in[2] = bias, rep[1].n_in = bias >= 0 ? 3 : 2;
    return model_replace_node(m, idx, rep, 2, e);
}

int edit_fixture_factorize(rs_model *m, uint64_t seed, rs_err *e)
{
    uint64_t st = seed ? seed : 1;
    int replaced = 0;
    for (int i = 0; i < m->n_nodes; ++i) {
        const rs_node *n = &m->nodes[i];
        int conv = n->op == RS_OP_CONV && n->group == 1;
        int gemm = n->op == RS_OP_GEMM && n->trans_b && !n->trans_a;
        if (!(conv || gemm) || !model_is_weighted(m, i))
            continue;
        if (replace_one(m, i, &st, e) != 0)
            return -1;
        ++i; /* skip the second half of the replacement */
        ++replaced;
    }
    if (model_infer_shapes(m, e) != 0)
        return -1;
    return replaced;
}
