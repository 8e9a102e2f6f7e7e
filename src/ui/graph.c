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
    s->graph.time_state = UI_TIME_NONE;
    s->graph.total_us = 0;
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
        g->timed = g->fused_into = -1;
        for (int k = 0; k < s->n_layers; ++k)
            if (s->layers[k].node == li->node)
                g->layer = k;
    }
    free(info);
    return 0;
}

void ui_graph_set_times(ui_state *s, const infer_prof *p, const char *why)
{
    ui_graph_state *g = &s->graph;
    if (!p || p->n_nodes != g->n) {
        g->time_state = UI_TIME_FAILED;
        snprintf(g->time_err, sizeof g->time_err, "%s", p ? "measured on another model" : why ? why : "failed");
        return;
    }
    for (int i = 0; i < g->n; ++i) {
        g->nodes[i].timed = p->kind[i];
        g->nodes[i].us = p->us[i];
        g->nodes[i].fused_into = p->fused_into[i];
    }
    g->total_us = p->steps_us;
    g->time_images = p->n_images;
    g->time_state = UI_TIME_DONE;
    g->time_err[0] = 0;
}

void ui_graph_time_text(const ui_state *s, int i, char *us, size_t us_len, char *pct, size_t pct_len)
{
    const ui_graph_state *g = &s->graph;
    pct[0] = 0;
    if (g->time_state == UI_TIME_RUNNING || g->time_state == UI_TIME_NONE) {
        snprintf(us, us_len, "%s", s->utf8 ? "\u2026" : "...");
        return;
    }
    const ui_gnode *nd = &g->nodes[i];
    if (g->time_state != UI_TIME_DONE || nd->timed < 0) {
        snprintf(us, us_len, "-");
        return;
    }
    if (nd->timed == INFER_NODE_FUSED) {
        snprintf(us, us_len, "fused");
        return;
    }
    if (nd->timed == INFER_NODE_VIEW) {
        snprintf(us, us_len, "view");
        return;
    }
    /* three significant figures down to 0.01 us; shares below 0.1 % still say they exist */
    snprintf(us, us_len, nd->us >= 100 ? "%.0f" : nd->us >= 10 ? "%.1f" : "%.2f", nd->us);
    double share = g->total_us > 0 ? 100 * nd->us / g->total_us : 0;
    snprintf(pct, pct_len, share >= 0.1 || share == 0 ? "%.1f%%" : "<0.1%%", share);
}

int ui_time_images(int64_t macs_per_image, int available)
{
    double n = macs_per_image > 0 ? 2e10 / (double)macs_per_image : 512;
    int k = n > 512 ? 512 : n < 16 ? 16 : (int)n;
    return k < available ? k : available;
}

void ui_graph_time_note(const ui_state *s, char *buf, size_t len)
{
    const ui_graph_state *g = &s->graph;
    const char *mu = s->utf8 ? "\u00b5s" : "us";
    const ui_gnode *sel = g->n > 0 ? &g->nodes[g->sel] : NULL;
    switch (g->time_state) {
    case UI_TIME_DONE:
        if (sel && sel->timed == INFER_NODE_FUSED && sel->fused_into >= 0)
            snprintf(buf, len, "%s runs inside %s's kernel step: its time is in that row", sel->name,
                     g->nodes[sel->fused_into].name);
        else if (sel && sel->timed == INFER_NODE_VIEW)
            snprintf(buf, len, "%s is a view of its input (same memory): nothing runs", sel->name);
        else
            snprintf(buf, len, "%s/img: CPU, 1 thread, %d images, %.0f in all; fused: in an earlier kernel", mu,
                     g->time_images, g->total_us);
        break;
    case UI_TIME_FAILED:
        snprintf(buf, len, "time: not measured: %s", g->time_err);
        break;
    default:
        snprintf(buf, len, "time: measuring every node on test images (1 thread) %.0f%%", 100 * g->time_progress);
    }
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
