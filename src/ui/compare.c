/* compare.c — two models side by side: the explorer's model A against B (an original and its
 * compressed version, two trainings of one architecture...). Layers are matched by node name: a
 * factorized layer of A appears in B as its factor chain, nodes named "A_f0", "A_f1", ... (as
 * plan_apply names them). Pure: models in, rows out; no curses, no files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

void ui_compare_free(ui_state *s)
{
    free(s->cmp.rows);
    s->cmp.rows = NULL;
    s->cmp.n = 0;
}

/* "NAME_f3" or "NAME_f3_2" (unique_node_name's suffix) for NAME: a factor of it. */
static int is_factor_of(const char *node, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(node, name, n) || strncmp(node + n, "_f", 2))
        return 0;
    const char *p = node + n + 2;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        ++p;
    return *p == 0 || *p == '_';
}

int ui_compare_build(ui_state *s, const rs_model *a, const rs_model *b, const char *b_name, rs_err *e)
{
    rs_layer_info *ia = NULL, *ib = NULL;
    int na = 0, nb = 0;
    if (model_layer_table(a, &ia, &na, e))
        return -1;
    if (model_layer_table(b, &ib, &nb, e)) {
        free(ia);
        return -1;
    }
    ui_compare_free(s);
    ui_compare_state *c = &s->cmp;
    c->rows = calloc((size_t)(na + nb) + 1, sizeof *c->rows);
    char *used = calloc((size_t)nb + 1, 1);
    if (!c->rows || !used) {
        free(ia);
        free(ib);
        free(used);
        ui_compare_free(s);
        return rs_fail(e, "out of memory comparing %d and %d nodes", na, nb);
    }
    for (int i = 0; i < na; ++i) {
        if (!model_is_weighted(a, ia[i].node))
            continue;
        ui_cmp_row *r = &c->rows[c->n++];
        snprintf(r->name, sizeof r->name, "%s", ia[i].name ? ia[i].name : "?");
        r->a_params = ia[i].params;
        r->a_macs = ia[i].macs;
        r->b_params = r->b_macs = -1;
        int factors = 0, same = -1;
        for (int j = 0; j < nb; ++j) {
            const char *bn = ib[j].name ? ib[j].name : "";
            if (!strcmp(bn, r->name))
                same = j;
            else if (is_factor_of(bn, r->name)) {
                r->b_params = (r->b_params < 0 ? 0 : r->b_params) + ib[j].params;
                r->b_macs = (r->b_macs < 0 ? 0 : r->b_macs) + ib[j].macs;
                used[j] = 1;
                ++factors;
            }
        }
        if (same >= 0 && !factors) {
            r->b_params = ib[same].params;
            r->b_macs = ib[same].macs;
            used[same] = 1;
            int eq = ib[same].w_ndim == ia[i].w_ndim && !memcmp(ib[same].w_shape, ia[i].w_shape, sizeof ia[i].w_shape);
            snprintf(r->how, sizeof r->how, "%s", eq ? "same shape" : "other shape");
        } else if (factors)
            snprintf(r->how, sizeof r->how, "%d factors", factors);
        else
            snprintf(r->how, sizeof r->how, "not in B");
    }
    for (int j = 0; j < nb; ++j) { /* what B has that A's layers do not explain */
        if (used[j] || !model_is_weighted(b, ib[j].node))
            continue;
        ui_cmp_row *r = &c->rows[c->n++];
        snprintf(r->name, sizeof r->name, "%s", ib[j].name ? ib[j].name : "?");
        snprintf(r->how, sizeof r->how, "only in B");
        r->a_params = r->a_macs = -1;
        r->b_params = ib[j].params;
        r->b_macs = ib[j].macs;
    }
    free(ia);
    free(ib);
    free(used);
    model_totals(a, &c->a_params, &c->a_macs);
    model_totals(b, &c->b_params, &c->b_macs);
    snprintf(c->b_name, sizeof c->b_name, "%s", b_name ? b_name : "B");
    c->b_acc = -1;
    c->a_known = c->b_known = -1;
    c->a_known_from[0] = c->b_known_from[0] = 0;
    c->sel = c->scroll = 0;
    c->active = 1;
    return 0;
}

int ui_compare_rows(const ui_state *s)
{
    /* above: title, tabs, the two model lines, column titles; below: position, status, footer */
    int r = s->lines - UI_COMPARE_Y - 3;
    return r < 1 ? 1 : r;
}

unsigned ui_compare_key(ui_state *s, int key)
{
    ui_compare_state *c = &s->cmp;
    int page = ui_compare_rows(s);
    switch (key) {
    case UI_K_ESC:
    case 'c':
        c->active = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_UP:
    case 'k': c->sel -= 1; break;
    case UI_K_DOWN:
    case 'j': c->sel += 1; break;
    case UI_K_PGUP: c->sel -= page; break;
    case UI_K_PGDN: c->sel += page; break;
    case UI_K_HOME: c->sel = 0; break;
    case UI_K_END: c->sel = c->n - 1; break;
    default: return UI_HANDLED;
    }
    c->sel = c->sel >= c->n ? c->n - 1 : c->sel;
    c->sel = c->sel < 0 ? 0 : c->sel;
    if (c->sel < c->scroll)
        c->scroll = c->sel;
    if (c->sel >= c->scroll + page)
        c->scroll = c->sel - page + 1;
    return UI_HANDLED | UI_REDRAW;
}
