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

void ui_graph_free(ui_graph_state *g)
{
    free(g->nodes);
    free(g->subs);
    free(g->sub_parent);
    free(g->rows);
    free(g->p_for);
    free(g->p_want);
    memset(g, 0, sizeof *g);
}

int ui_graph_init(ui_state *s, const rs_model *m, rs_err *e)
{
    rs_layer_info *info = NULL;
    int n = 0;
    if (model_layer_table(m, &info, &n, e))
        return -1;
    ui_graph_free(&s->graph);
    s->graph.nodes = calloc(n ? (size_t)n : 1, sizeof *s->graph.nodes);
    s->graph.rows = calloc(n ? (size_t)n : 1, sizeof *s->graph.rows);
    if (!s->graph.nodes || !s->graph.rows) {
        free(info);
        ui_graph_free(&s->graph);
        return rs_fail(e, "out of memory for %d graph rows", n);
    }
    s->graph.n = s->graph.n_rows = n;
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
        g->timed = g->fused_into = g->p_timed = g->p_fused_into = -1;
        s->graph.rows[i] = i;
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

/* ---- the plan-applied model's times ---------------------------------------------------------- */

static int choices_equal(const ui_state *s, const ui_choice *c)
{
    if (!c)
        return 0;
    for (int k = 0; k < s->n_layers; ++k)
        if (!pipe_choice_equal(&c[k], &s->layers[k].cur))
            return 0;
    return 1;
}

int ui_graph_plan_applies(const ui_state *s)
{
    for (int k = 0; k < s->n_layers; ++k)
        if (s->layers[k].cur.method != DECOMP_NONE)
            return 1;
    return 0;
}

int ui_graph_plan_wanted(const ui_state *s)
{
    return s->graph.time_state == UI_TIME_DONE && ui_graph_plan_applies(s) && !choices_equal(s, s->graph.p_want);
}

static int copy_choices(const ui_state *s, ui_choice **to, rs_err *e)
{
    if (!*to && !(*to = calloc(s->n_layers ? (size_t)s->n_layers : 1, sizeof **to)))
        return rs_fail(e, "out of memory");
    for (int k = 0; k < s->n_layers; ++k)
        (*to)[k] = s->layers[k].cur;
    return 0;
}

int ui_graph_plan_started(ui_state *s, rs_err *e)
{
    if (copy_choices(s, &s->graph.p_want, e))
        return -1;
    s->graph.p_state = UI_TIME_RUNNING;
    s->graph.p_progress = 0;
    return 0;
}

int ui_graph_plan_stale(const ui_state *s)
{
    return s->graph.p_have && !choices_equal(s, s->graph.p_for);
}

static const char *out_name(const rs_model *m, int node)
{
    int v = m->nodes[node].n_out > 0 ? m->nodes[node].out[0] : -1;
    return v >= 0 && m->values[v].name ? m->values[v].name : "";
}

static int plan_failed(ui_graph_state *g, const char *why)
{
    g->p_state = UI_TIME_FAILED;
    g->p_have = 0;
    snprintf(g->p_err, sizeof g->p_err, "%s", why && why[0] ? why : "failed");
    return -1;
}

/* A chain row: named by its node ("conv2_f0"; the first factor's weight may still carry the
 * layer's own name). */
static void fill_row(ui_gnode *r, const rs_model *m, const rs_layer_info *li)
{
    const char *nm = m->nodes[li->node].name;
    ui_compact_name(nm && nm[0] ? nm : "?", r->name, sizeof r->name);
    snprintf(r->op, sizeof r->op, "%s", model_op_name(li->op));
    ui_dims_text(li->out_shape, li->out_ndim, r->out, sizeof r->out);
    r->params = li->params;
    r->macs = li->macs;
    r->inputs = computed_inputs(m, li->node);
}

int ui_graph_set_plan_times(ui_state *s, const rs_model *orig, const rs_model *pm, const infer_prof *p,
                            const char *why)
{
    ui_graph_state *g = &s->graph;
    if (!p || !pm)
        return plan_failed(g, why);
    if (p->n_nodes != pm->n_nodes || orig->n_nodes != g->n)
        return plan_failed(g, "measured on another model");
    const int q_n = pm->n_nodes;
    rs_layer_info *info = NULL;
    int n_info = 0;
    rs_err e = {{0}};
    int *key = malloc((size_t)q_n * sizeof *key);
    ui_gnode *subs = calloc((size_t)q_n, sizeof *subs);
    int *parent = calloc((size_t)q_n, sizeof *parent);
    ui_choice *was = g->p_for;
    g->p_for = NULL;
    if (!key || !subs || !parent || model_layer_table(pm, &info, &n_info, &e) || n_info != q_n ||
        copy_choices(s, &g->p_for, &e)) {
        free(key), free(subs), free(parent), free(info);
        free(g->p_for);
        g->p_for = was;
        return plan_failed(g, e.msg[0] ? e.msg : "out of memory");
    }
    free(was);
    if (g->p_want) /* the figures are for the choices the measurement started with */
        memcpy(g->p_for, g->p_want, (size_t)s->n_layers * sizeof *g->p_for);
    /* plan_apply replaces a node by its chain in place, the chain's last node writing the node's
     * output value: the nodes of pm are the original's, in order, each kept or replaced */
    int j = 0, start = 0, n_subs = 0;
    for (int q = 0; q < q_n && j < g->n; ++q) {
        if (strcmp(out_name(pm, q), out_name(orig, j)))
            continue;
        ui_gnode *nd = &g->nodes[j];
        nd->n_sub = 0;
        nd->sub0 = n_subs;
        nd->p_fused_into = -1;
        if (q == start) {
            key[q] = j;
            nd->p_timed = p->kind[q];
            nd->p_us = p->us[q];
        } else {
            nd->p_timed = INFER_NODE_VIEW;
            nd->p_us = 0;
            for (int t = start; t <= q; ++t) {
                ui_gnode *r = &subs[n_subs];
                fill_row(r, pm, &info[t]);
                r->layer = nd->layer;
                r->timed = r->p_timed = p->kind[t];
                r->us = r->p_us = p->us[t];
                r->fused_into = r->p_fused_into = -1;
                if (p->kind[t] == INFER_NODE_STEP)
                    nd->p_timed = INFER_NODE_STEP;
                nd->p_us += p->us[t];
                parent[n_subs] = j;
                key[t] = -(++n_subs);
            }
            nd->n_sub = q - start + 1;
        }
        ++j;
        start = q + 1;
    }
    free(info);
    if (j != g->n || start != q_n) {
        free(key), free(subs), free(parent);
        return plan_failed(g, "the plan-applied model's nodes do not follow the original's");
    }
    for (int q = 0; q < q_n; ++q) {
        if (p->kind[q] != INFER_NODE_FUSED || p->fused_into[q] < 0)
            continue;
        int k = key[q];
        ui_gnode *r = k >= 0 ? &g->nodes[k] : &subs[-k - 1];
        r->p_fused_into = key[p->fused_into[q]];
        if (k < 0)
            r->fused_into = r->p_fused_into;
    }
    free(key);
    free(g->subs);
    free(g->sub_parent);
    g->subs = subs;
    g->sub_parent = parent;
    g->n_subs = n_subs;
    g->p_total_us = p->steps_us;
    g->p_images = p->n_images;
    g->p_state = UI_TIME_DONE;
    g->p_have = 1;
    g->p_err[0] = 0;
    ui_graph_sync(s);
    return 0;
}

/* The node a display key names (>= 0 a node, < 0 a chain row). */
static const ui_gnode *key_node(const ui_graph_state *g, int key)
{
    return key >= 0 ? &g->nodes[key] : &g->subs[-key - 1];
}

const ui_gnode *ui_graph_row(const ui_state *s, int r)
{
    return key_node(&s->graph, s->graph.rows[r]);
}

int ui_graph_row_node(const ui_state *s, int r, int *sub)
{
    int k = s->graph.rows[r];
    if (sub)
        *sub = k >= 0 ? -1 : -k - 1;
    return k >= 0 ? k : s->graph.sub_parent[-k - 1];
}

int ui_graph_sync(ui_state *s)
{
    ui_graph_state *g = &s->graph;
    if (!g->rows)
        return 0;
    const int shown = g->p_have && ui_graph_plan_applies(s);
    int n = 0;
    for (int i = 0; i < g->n; ++i) {
        const ui_gnode *nd = &g->nodes[i];
        n += 1 + (shown && nd->n_sub && nd->layer >= 0 && s->layers[nd->layer].cur.method != DECOMP_NONE ? nd->n_sub : 0);
    }
    int *rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
    if (!rows)
        return 0; /* the rows as they were: still a valid view */
    n = 0;
    for (int i = 0; i < g->n; ++i) {
        const ui_gnode *nd = &g->nodes[i];
        rows[n++] = i;
        if (shown && nd->n_sub && nd->layer >= 0 && s->layers[nd->layer].cur.method != DECOMP_NONE)
            for (int k = 0; k < nd->n_sub; ++k)
                rows[n++] = -(nd->sub0 + k + 1);
    }
    if (n == g->n_rows && shown == g->p_shown && !memcmp(rows, g->rows, (size_t)n * sizeof *rows)) {
        free(rows);
        return 0;
    }
    int sel_key = g->n_rows > 0 ? g->rows[g->sel] : 0;
    int sel_node = g->n_rows > 0 ? ui_graph_row_node(s, g->sel, NULL) : 0;
    free(g->rows);
    g->rows = rows;
    g->n_rows = n;
    g->p_shown = shown;
    int sel = 0;
    for (int r = 0; r < n; ++r) {
        if (rows[r] == sel_key) {
            sel = r;
            break;
        }
        if (rows[r] == sel_node)
            sel = r; /* the chain row's node when the row is gone */
    }
    g->sel = sel;
    int page = ui_graph_rows(s);
    if (g->scroll > g->sel)
        g->scroll = g->sel;
    if (g->sel >= g->scroll + page)
        g->scroll = g->sel - page + 1;
    if (g->scroll > (n > page ? n - page : 0))
        g->scroll = n > page ? n - page : 0;
    return 1;
}

/* Figures from the plan-applied model: the plan applies and its times are in. */
static int plan_figures(const ui_graph_state *g)
{
    return g->p_shown && g->p_have;
}

const char *ui_us_text(double t, char *buf, size_t len)
{
    snprintf(buf, len, t >= 100 ? "%.0f" : t >= 10 ? "%.1f" : "%.2f", t);
    return buf;
}

void ui_graph_time_text(const ui_state *s, int r, char *us, size_t us_len, char *pct, size_t pct_len)
{
    const ui_graph_state *g = &s->graph;
    pct[0] = 0;
    if (g->time_state == UI_TIME_RUNNING || g->time_state == UI_TIME_NONE) {
        snprintf(us, us_len, "%s", s->utf8 ? "\u2026" : "...");
        return;
    }
    const ui_gnode *nd = ui_graph_row(s, r);
    const int plan = plan_figures(g);
    const int timed = plan ? nd->p_timed : nd->timed;
    if (g->time_state != UI_TIME_DONE || timed < 0) {
        snprintf(us, us_len, "-");
        return;
    }
    if (timed == INFER_NODE_FUSED) {
        snprintf(us, us_len, "fused");
        return;
    }
    if (timed == INFER_NODE_VIEW) {
        snprintf(us, us_len, "view");
        return;
    }
    const double t = plan ? nd->p_us : nd->us, total = plan ? g->p_total_us : g->total_us;
    const char *stale = plan && ui_graph_plan_stale(s) ? "~" : "";
    char tb[16];
    snprintf(us, us_len, "%s%s", stale, ui_us_text(t, tb, sizeof tb));
    /* shares below 0.1 % still say they exist */
    double share = total > 0 ? 100 * t / total : 0;
    snprintf(pct, pct_len, share >= 0.1 || share == 0 ? "%.1f%%" : "<0.1%%", share);
}

void ui_graph_chain_time(const ui_state *s, int r, char *buf, size_t len)
{
    const ui_graph_state *g = &s->graph;
    buf[0] = 0;
    int sub;
    int i = ui_graph_row_node(s, r, &sub);
    const ui_gnode *nd = &g->nodes[i];
    if (!plan_figures(g) || sub >= 0 || !nd->n_sub || nd->layer < 0 || nd->timed != INFER_NODE_STEP)
        return;
    const ui_choice *c = &g->p_for[nd->layer];
    const char *mu = s->utf8 ? "\u00b5s" : "us";
    char a[16], b[16];
    /* the time column has the chain's figure: the original's comes first, then the method, so a
     * cut at 100 columns keeps both */
    snprintf(buf, len, "%swas %s: %s %d (chain %s %s)", ui_graph_plan_stale(s) ? "~" : "", ui_us_text(nd->us, a, sizeof a),
             decomp_method_name(c->method), c->rank, ui_us_text(nd->p_us, b, sizeof b), mu);
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
    const ui_gnode *sel = g->n_rows > 0 ? ui_graph_row(s, g->sel) : NULL;
    const int plan = plan_figures(g);
    const int timed = sel ? plan ? sel->p_timed : sel->timed : -1;
    const int fused_into = sel ? plan ? sel->p_fused_into : sel->fused_into : -1;
    switch (g->time_state) {
    case UI_TIME_DONE:
        if (timed == INFER_NODE_FUSED && (plan || fused_into >= 0))
            snprintf(buf, len, "%s runs inside %s's kernel step: its time is in that row", sel->name,
                     plan ? key_node(g, fused_into)->name : g->nodes[fused_into].name);
        else if (timed == INFER_NODE_VIEW && !(plan && sel->n_sub))
            snprintf(buf, len, "%s is a view of its input (same memory): nothing runs", sel->name);
        else if (plan && ui_graph_plan_stale(s) && g->p_state == UI_TIME_RUNNING)
            snprintf(buf, len, "~ times of an earlier plan: measuring this one %.0f%%", 100 * g->p_progress);
        else if (plan && ui_graph_plan_stale(s))
            snprintf(buf, len, "~ times of an earlier plan%s%s", g->p_state == UI_TIME_FAILED ? ": " : "",
                     g->p_state == UI_TIME_FAILED ? g->p_err : "");
        else if (plan) {
            char a[16], b[16];
            snprintf(buf, len, "%s/img, plan applied: 1 thread, %d images, %s in all (original %s)", mu,
                     g->p_images, ui_us_text(g->p_total_us, a, sizeof a), ui_us_text(g->total_us, b, sizeof b));
        } else if (ui_graph_plan_applies(s) && g->p_state == UI_TIME_RUNNING)
            snprintf(buf, len, "%s/img of the original; timing the plan applied %.0f%%", mu, 100 * g->p_progress);
        else if (ui_graph_plan_applies(s) && g->p_state == UI_TIME_FAILED)
            snprintf(buf, len, "%s/img of the original; the plan applied: not measured: %s", mu, g->p_err);
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
    if (g->n_rows <= 0)
        return UI_HANDLED;
    g->sel = row < 0 ? 0 : row >= g->n_rows ? g->n_rows - 1 : row;
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
    case UI_K_END: return graph_select(s, g->n_rows - 1);
    case UI_K_ENTER:
    case '\r': {
        if (g->n_rows <= 0)
            return UI_HANDLED;
        const ui_gnode *nd = ui_graph_row(s, g->sel);
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
