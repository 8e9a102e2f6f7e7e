/* graph.c — the Graph screen's pure part: every node of the model as a row (not only the weighted
 * layers), the selection, and Enter on a weighted node jumping to its slider. */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "stages/stages.3/shortcut/shortcut.0" -> "stages.3/shortcut.0": a path part that the next one
 * repeats with a suffix (PyTorch's module/module.N) says nothing the next does not. */
void ui_compact_name(const char *name, char *out, size_t len)
{
    char parts[16][96];
    int n = 0;
    for (const char *p = name; *p && n < 16;) {
        size_t l = strcspn(p, "/");
        if (l > 0 && l < sizeof parts[0]) {
            memcpy(parts[n], p, l);
            parts[n++][l] = 0;
        }
        p += l + (p[l] == '/');
    }
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; i < n; ++i) {
        size_t l = strlen(parts[i]);
        if (i + 1 < n && !strncmp(parts[i + 1], parts[i], l) && parts[i + 1][l] == '.')
            continue;
        int w = snprintf(out + at, len - at, "%s%s", at ? "/" : "", parts[i]);
        if (w < 0 || (size_t)w >= len - at)
            break;
        at += (size_t)w;
    }
    if (!at)
        snprintf(out, len, "%s", name);
}

void ui_dims_text(const int64_t *d, int n, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n && i < 4; ++i) {
        int w = snprintf(buf + at, len - at, "%s%lld", i ? "x" : "", (long long)d[i]);
        if (w < 0 || (size_t)w >= len - at)
            break;
        at += (size_t)w;
    }
}

/* Inputs that another node computes (not the weights): 2 for Add, n for Concat. */
static int computed_inputs(const rs_model *m, int node)
{
    const rs_node *nd = &m->nodes[node];
    int n = 0;
    for (int i = 0; i < nd->n_in; ++i)
        n += nd->in[i] >= 0 && !m->values[nd->in[i]].is_const;
    return n;
}

int ui_graph_init(ui_state *s, const rs_model *m, rs_err *e)
{
    rs_layer_info *info = NULL;
    int n = 0;
    if (model_layer_table(m, &info, &n, e))
        return -1;
    free(s->graph.nodes);
    s->graph.nodes = calloc(n ? (size_t)n : 1, sizeof *s->graph.nodes);
    if (!s->graph.nodes) {
        free(info);
        return rs_fail(e, "out of memory for %d graph rows", n);
    }
    s->graph.n = n;
    s->graph.sel = s->graph.scroll = 0;
    for (int i = 0; i < n; ++i) {
        ui_gnode *g = &s->graph.nodes[i];
        const rs_layer_info *li = &info[i];
        char shortname[96];
        ui_compact_name(model_layer_name(m, li->node, shortname, sizeof shortname), g->name, sizeof g->name);
        snprintf(g->op, sizeof g->op, "%s", model_op_name(li->op));
        ui_dims_text(li->out_shape, li->out_ndim, g->out, sizeof g->out);
        g->params = li->params;
        g->macs = li->macs;
        g->inputs = computed_inputs(m, li->node);
        g->layer = -1;
        for (int k = 0; k < s->n_layers; ++k)
            if (s->layers[k].node == li->node)
                g->layer = k;
    }
    free(info);
    return 0;
}

/* Rows of the graph table for s->lines: header, tabs, column titles, footer, status. */
int ui_graph_rows(const ui_state *s)
{
    int r = s->lines - 6;
    return r < 1 ? 1 : r;
}

static unsigned graph_select(ui_state *s, int row)
{
    ui_graph_state *g = &s->graph;
    if (g->n <= 0)
        return UI_HANDLED;
    g->sel = row < 0 ? 0 : row >= g->n ? g->n - 1 : row;
    int rows = ui_graph_rows(s);
    if (g->sel < g->scroll)
        g->scroll = g->sel;
    if (g->sel >= g->scroll + rows)
        g->scroll = g->sel - rows + 1;
    return UI_HANDLED | UI_REDRAW;
}

unsigned ui_graph_key(ui_state *s, int key)
{
    ui_graph_state *g = &s->graph;
    int page = ui_graph_rows(s);
    switch (key) {
    case UI_K_UP:
    case 'k': return graph_select(s, g->sel - 1);
    case UI_K_DOWN:
    case 'j': return graph_select(s, g->sel + 1);
    case UI_K_PGUP: return graph_select(s, g->sel - page);
    case UI_K_PGDN: return graph_select(s, g->sel + page);
    case UI_K_HOME: return graph_select(s, 0);
    case UI_K_END: return graph_select(s, g->n - 1);
    case UI_K_ENTER:
    case '\r': {
        if (g->n <= 0)
            return UI_HANDLED;
        const ui_gnode *nd = &g->nodes[g->sel];
        if (nd->layer < 0) {
            snprintf(s->msg, sizeof s->msg, "%s (%s) has no weights to factorize", nd->name, nd->op);
            return UI_HANDLED | UI_REDRAW;
        }
        if (ui_view_pos(s, nd->layer) < 0) { /* hidden by the filter: list every layer again */
            s->view.filter[0] = 0;
            s->view.filter_len = s->view.editing = 0;
            ui_view_update(s);
        }
        s->sel = nd->layer;
        s->screen = SCR_LAYERS;
        ui_fix_scroll(s);
        return UI_HANDLED | UI_REDRAW;
    }
    default: return UI_HANDLED;
    }
}
