/* state.c — the explorer's pure state transitions. */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "rankscope/evbmf.h"

const char *ui_screen_name(int screen)
{
    return screen >= 0 && screen < SCR_COUNT ? ui_screens[screen].name : "?";
}

static void undo_reset(ui_state *s);

void ui_state_defaults(ui_state *s)
{
    memset(s, 0, sizeof *s);
    s->cols = 100;
    s->lines = 30;
    s->utf8 = 1;
    s->color = 1;
    s->drag_row = -1;
    s->eval_progress = -1;
    s->sweep.layer = -1;
    s->search.strategy = 2; /* SEARCH_GLOBAL */
    s->search.objective = 2; /* SEARCH_OBJ_BOTH */
    s->search.tol = 1.0;
    s->ft.epochs = 3;
    ex_default(&s->ex);
}

void ui_state_free(ui_state *s)
{
    if (!s)
        return;
    free(s->layers);
    s->layers = NULL;
    s->n_layers = 0;
    free(s->undo.history);
    s->undo.history = NULL;
    s->undo.n = s->undo.at = 0;
    free(s->graph.nodes);
    s->graph.nodes = NULL;
    s->graph.n = 0;
}

/* ---- model → layers ------------------------------------------------------------------------ */

static int default_rank_of(const ui_method_info *mi)
{
    if (mi->break_even > 0 && mi->break_even <= mi->max_rank)
        return mi->break_even;
    return mi->max_rank;
}

/* Short labels for the table; a label two layers would share falls back to their names. */
static void make_labels(ui_state *s)
{
    for (int k = 0; k < s->n_layers; ++k)
        ui_compact_name(s->layers[k].name, s->layers[k].label, sizeof s->layers[k].label);
    for (int k = 0; k < s->n_layers; ++k)
        for (int j = k + 1; j < s->n_layers; ++j)
            if (!strcmp(s->layers[k].label, s->layers[j].label)) {
                snprintf(s->layers[k].label, sizeof s->layers[k].label, "%s", s->layers[k].name);
                snprintf(s->layers[j].label, sizeof s->layers[j].label, "%s", s->layers[j].name);
            }
}

const char *ui_layer_label(const ui_state *s, const ui_layer *l)
{
    return s->full_names ? l->node_name : l->label[0] ? l->label : l->name;
}

int ui_state_init(ui_state *s, const rs_model *m, rs_err *e)
{
    rs_layer_info *info = NULL;
    int n = 0;
    if (model_layer_table(m, &info, &n, e))
        return -1;
    int nw = 0;
    for (int i = 0; i < n; ++i)
        if (model_is_weighted(m, info[i].node))
            ++nw;
    free(s->layers);
    s->layers = calloc(nw ? (size_t)nw : 1, sizeof *s->layers);
    if (!s->layers) {
        free(info);
        return rs_fail(e, "out of memory for %d layers", nw);
    }
    s->n_layers = 0;
    for (int i = 0; i < n; ++i) {
        const rs_layer_info *li = &info[i];
        if (!model_is_weighted(m, li->node))
            continue;
        ui_layer *l = &s->layers[s->n_layers++];
        l->node = li->node;
        char shortname[96];
        snprintf(l->name, sizeof l->name, "%s", model_layer_name(m, li->node, shortname, sizeof shortname));
        snprintf(l->node_name, sizeof l->node_name, "%s", li->name ? li->name : "?");
        snprintf(l->op, sizeof l->op, "%s", model_op_name(li->op));
        ui_dims_text(li->w_shape, li->w_ndim, l->shape, sizeof l->shape);
        l->params = li->params;
        l->macs = li->macs;
        l->methods = decomp_methods_for(m, li->node) | (1u << DECOMP_NONE);
        for (int k = 1; k < DECOMP_COUNT; ++k) {
            ui_method_info *mi = &l->mi[k];
            if (!(l->methods & (1u << k)))
                continue;
            mi->max_rank = decomp_max_rank(m, li->node, (decomp_method)k, 0);
            mi->max_rank2 = decomp_max_rank(m, li->node, (decomp_method)k, 1);
            if (mi->max_rank <= 0) {
                l->methods &= ~(1u << k);
                continue;
            }
            mi->break_even = decomp_break_even_rank(m, li->node, (decomp_method)k, DECOMP_BY_PARAMS);
            rs_err ee;
            int r = 0, r2 = 0;
            if (evbmf_layer_rank(m, li->node, (decomp_method)k, 1, &r, &r2, &ee) == 0) {
                mi->evbmf = r;
                mi->evbmf2 = r2;
            }
            mi->default_rank = default_rank_of(mi);
        }
        l->cur.method = DECOMP_NONE;
        l->params_after = l->params;
        l->macs_after = l->macs;
    }
    free(info);
    make_labels(s);
    if (ui_graph_init(s, m, e) != 0)
        return -1;
    if (ui_state_undo_init(s) != 0)
        return rs_fail(e, "out of memory for the undo history");
    model_totals(m, &s->params_total, &s->macs_total);
    s->params_total_after = s->params_total;
    s->macs_total_after = s->macs_total;
    s->sel = 0;
    s->scroll = 0;
    ++s->gen;
    return 0;
}

int ui_state_apply_plan(ui_state *s, const rs_model *m, const rs_plan *p, rs_err *e)
{
    if (plan_validate(m, p, e))
        return -1;
    for (int i = 0; i < p->n; ++i) {
        const plan_entry *pe = &p->entries[i];
        int found = 0;
        for (int k = 0; k < s->n_layers; ++k) {
            ui_layer *l = &s->layers[k];
            if (model_find_layer(m, pe->layer) != l->node)
                continue;
            found = 1;
            if (!(l->methods & (1u << pe->method)))
                return rs_fail(e, "%s: method %s is not available in the explorer", pe->layer,
                               decomp_method_name(pe->method));
            l->cur.method = pe->method;
            l->cur.rank = pe->method == DECOMP_NONE ? 0 : pe->rank;
            l->cur.rank2 = pe->method == DECOMP_TUCKER2 ? pe->rank2 : 0;
        }
        if (!found)
            return rs_fail(e, "plan: layer \"%s\" is not a weighted layer", pe->layer);
    }
    ++s->gen;
    undo_reset(s);
    ui_state_costs(s, m);
    return 0;
}

int ui_state_plan(const ui_state *s, rs_plan *out, rs_err *e)
{
    plan_clear(out);
    for (int k = 0; k < s->n_layers; ++k) {
        const ui_layer *l = &s->layers[k];
        if (l->cur.method == DECOMP_NONE)
            continue;
        /* the node name: what plan_apply looks layers up by */
        if (plan_set(out, l->node_name, l->cur.method, l->cur.rank, l->cur.rank2, e))
            return -1;
    }
    return 0;
}

void ui_state_costs(ui_state *s, const rs_model *m)
{
    int64_t dp = 0, dm = 0;
    for (int k = 0; k < s->n_layers; ++k) {
        ui_layer *l = &s->layers[k];
        l->params_after = l->params;
        l->macs_after = l->macs;
        if (l->cur.method != DECOMP_NONE) {
            decomp_cost c;
            rs_err e;
            if (decomp_cost_of(m, l->node, l->cur.method, l->cur.rank, l->cur.rank2, &c, &e) == 0) {
                l->params_after = c.params_after;
                l->macs_after = c.macs_after;
            }
        }
        dp += l->params_after - l->params;
        dm += l->macs_after - l->macs;
    }
    s->params_total_after = s->params_total + dp;
    s->macs_total_after = s->macs_total + dm;
}

/* ---- choices -------------------------------------------------------------------------------- */

decomp_method ui_preferred_method(const ui_layer *l)
{
    for (int i = 0; i < PIPE_N_PREFERRED; ++i) {
        decomp_method d = pipe_method_preference[i];
        if ((l->methods & (1u << d)) && l->mi[d].max_rank > 0)
            return d;
    }
    return DECOMP_NONE;
}

int ui_effective_rank2(const ui_layer *l)
{
    if (l->cur.method != DECOMP_TUCKER2)
        return 0;
    if (l->cur.rank2 > 0)
        return l->cur.rank2;
    int r = l->cur.rank, max2 = l->mi[DECOMP_TUCKER2].max_rank2;
    return r < max2 ? r : max2;
}

/* ---- undo / redo ------------------------------------------------------------------------------ */

static ui_choice *undo_slot(ui_state *s, int i)
{
    return s->undo.history + (size_t)i * (size_t)s->n_layers;
}

/* Record the current configuration as the newest (what redo could have reached is dropped). */
static void undo_record(ui_state *s)
{
    ui_undo *u = &s->undo;
    if (!u->history || s->n_layers <= 0)
        return;
    int idx = u->n == 0 ? 0 : u->at + 1;
    if (idx >= UI_UNDO_MAX) { /* full: forget the oldest */
        memmove(u->history, undo_slot(s, 1), sizeof(ui_choice) * (size_t)s->n_layers * (UI_UNDO_MAX - 1));
        idx = UI_UNDO_MAX - 1;
    }
    u->at = idx;
    u->n = idx + 1;
    for (int k = 0; k < s->n_layers; ++k)
        undo_slot(s, u->at)[k] = s->layers[k].cur;
}

static void undo_reset(ui_state *s)
{
    s->undo.n = s->undo.at = 0;
    undo_record(s);
}

int ui_state_undo_init(ui_state *s)
{
    free(s->undo.history);
    s->undo.history = calloc((size_t)UI_UNDO_MAX * (size_t)(s->n_layers ? s->n_layers : 1), sizeof(ui_choice));
    if (!s->undo.history)
        return -1;
    undo_reset(s);
    return 0;
}

/* Step through the history (-1 undo, +1 redo). */
static unsigned undo_step(ui_state *s, int dir)
{
    ui_undo *u = &s->undo;
    int to = u->at + dir;
    if (!u->history || to < 0 || to >= u->n) {
        snprintf(s->msg, sizeof s->msg, "nothing to %s", dir < 0 ? "undo" : "redo");
        return UI_HANDLED | UI_REDRAW;
    }
    u->at = to;
    for (int k = 0; k < s->n_layers; ++k)
        s->layers[k].cur = undo_slot(s, to)[k];
    s->dirty = 1;
    ++s->gen;
    snprintf(s->msg, sizeof s->msg, "%s (%d of %d)", dir < 0 ? "undone" : "redone", to, u->n - 1);
    return UI_HANDLED | UI_REDRAW | UI_RECOMPUTE;
}

/* Every layer back to the original (one undo step). */
static unsigned reset_all(ui_state *s)
{
    int changed = 0;
    for (int k = 0; k < s->n_layers; ++k)
        if (s->layers[k].cur.method != DECOMP_NONE) {
            s->layers[k].cur = (ui_choice){DECOMP_NONE, 0, 0};
            changed = 1;
        }
    if (!changed)
        return UI_HANDLED | UI_REDRAW;
    s->dirty = 1;
    ++s->gen;
    undo_record(s);
    snprintf(s->msg, sizeof s->msg, "every layer reset to the original (u undoes)");
    return UI_HANDLED | UI_REDRAW | UI_RECOMPUTE;
}

int ui_jobs_text(const ui_state *s, char *buf, size_t len)
{
    size_t at = 0;
    int n = 0;
    buf[0] = 0;
    if (s->search.running && at < len) {
        at += (size_t)snprintf(buf + at, len - at, "%ssearch %.0f%%", n++ ? "  " : "", 100 * s->search.progress);
    }
    if (s->curve.running && at < len)
        at += (size_t)snprintf(buf + at, len - at, "%scurve %d/%d", n++ ? "  " : "", s->curve.n, UI_CURVE_N);
    if (s->ft.running && at < len)
        at += (size_t)snprintf(buf + at, len - at, "%sfine-tune %d/%d", n++ ? "  " : "", s->ft.n, s->ft.epochs);
    return n;
}

/* ---- the exact-rank prompt ---------------------------------------------------------------------- */

static unsigned prompt_open(ui_state *s)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    const ui_layer *l = &s->layers[s->sel];
    if (ui_preferred_method(l) == DECOMP_NONE) {
        snprintf(s->msg, sizeof s->msg, "%s: no low-rank method applies to this layer", l->name);
        return UI_HANDLED | UI_REDRAW;
    }
    s->prompt.active = 1;
    s->prompt.len = 0;
    s->prompt.buf[0] = 0;
    return UI_HANDLED | UI_REDRAW;
}

static unsigned set_choice(ui_state *s, ui_layer *l, decomp_method method, int rank, int rank2);

static unsigned prompt_key(ui_state *s, int key)
{
    ui_prompt *p = &s->prompt;
    ui_layer *l = &s->layers[s->sel];
    decomp_method m = l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
    int max = l->mi[m].max_rank;
    if (key == UI_K_ESC) {
        p->active = 0;
        return UI_HANDLED | UI_REDRAW;
    }
    if (key == UI_K_BACKSPACE || key == 127 || key == 8) {
        if (p->len > 0)
            p->buf[--p->len] = 0;
        return UI_HANDLED | UI_REDRAW;
    }
    if (key >= '0' && key <= '9') {
        if (p->len < 6) {
            p->buf[p->len++] = (char)key;
            p->buf[p->len] = 0;
        }
        return UI_HANDLED | UI_REDRAW;
    }
    if (key != UI_K_ENTER && key != '\r')
        return UI_HANDLED;
    p->active = 0;
    if (p->len == 0)
        return UI_HANDLED | UI_REDRAW;
    int r = atoi(p->buf);
    if (r < 1 || r > max) {
        snprintf(s->msg, sizeof s->msg, "rank %d is out of range: %s %s takes 1..%d", r, l->name,
                 decomp_method_name(m), max);
        return UI_HANDLED | UI_REDRAW;
    }
    return set_choice(s, l, m, r, l->cur.method == m ? l->cur.rank2 : 0);
}

int ui_prompt_text(const ui_state *s, char *buf, size_t len)
{
    if (s->screen == SCR_EXAMPLE && s->edit.active) {
        snprintf(buf, len, "edit %s[%d][%d]: %s_   Enter sets, arrows move, Tab X/K, Esc ends",
                 s->edit.which ? "K" : "X", s->edit.r, s->edit.c, s->edit.buf);
        return 1;
    }
    if (!s->prompt.active || s->n_layers <= 0)
        return 0;
    const ui_layer *l = &s->layers[s->sel];
    decomp_method m = l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
    snprintf(buf, len, "rank for %s %s (1..%d, Enter sets, Esc cancels): %s", l->name, decomp_method_name(m),
             l->mi[m].max_rank, s->prompt.buf);
    return 1;
}

/* Set the selected layer's choice; returns the flags of a configuration change (or 0). */
static unsigned set_choice(ui_state *s, ui_layer *l, decomp_method method, int rank, int rank2)
{
    if (method != DECOMP_NONE) {
        const ui_method_info *mi = &l->mi[method];
        if (!(l->methods & (1u << method)) || mi->max_rank <= 0)
            return UI_HANDLED;
        if (rank < 1)
            rank = 1;
        if (rank > mi->max_rank)
            rank = mi->max_rank;
        if (method == DECOMP_TUCKER2) {
            if (rank2 < 0)
                rank2 = 0;
            if (rank2 > mi->max_rank2)
                rank2 = mi->max_rank2;
        } else {
            rank2 = 0;
        }
    } else {
        rank = rank2 = 0;
    }
    if (l->cur.method == method && l->cur.rank == rank && l->cur.rank2 == rank2)
        return UI_HANDLED | UI_REDRAW; /* clamped at an end: nothing to recompute */
    l->cur.method = method;
    l->cur.rank = rank;
    l->cur.rank2 = rank2;
    s->dirty = 1;
    ++s->gen;
    undo_record(s);
    return UI_HANDLED | UI_REDRAW | UI_RECOMPUTE;
}

static unsigned rank_step(ui_state *s, int delta, int to_end)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    ui_layer *l = &s->layers[s->sel];
    if (l->cur.method == DECOMP_NONE) {
        decomp_method pm = ui_preferred_method(l);
        if (pm == DECOMP_NONE) {
            snprintf(s->msg, sizeof s->msg, "%s: no low-rank method applies to this layer", l->name);
            return UI_HANDLED | UI_REDRAW;
        }
        return set_choice(s, l, pm, l->mi[pm].default_rank, 0);
    }
    int max = l->mi[l->cur.method].max_rank;
    int r = l->cur.rank + delta;
    if (to_end < 0)
        r = 1;
    else if (to_end > 0)
        r = max;
    return set_choice(s, l, l->cur.method, r, l->cur.rank2);
}

static int page_step(const ui_layer *l)
{
    int max = l->cur.method != DECOMP_NONE ? l->mi[l->cur.method].max_rank : 0;
    int tenth = (max + 5) / 10;
    return tenth > 8 ? tenth : 8;
}

static unsigned cycle_method(ui_state *s)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    ui_layer *l = &s->layers[s->sel];
    for (int k = 1; k <= DECOMP_COUNT; ++k) {
        decomp_method m = (decomp_method)(((int)l->cur.method + k) % DECOMP_COUNT);
        if (m == DECOMP_NONE)
            return set_choice(s, l, DECOMP_NONE, 0, 0);
        if ((l->methods & (1u << m)) && l->mi[m].max_rank > 0)
            return set_choice(s, l, m, l->mi[m].default_rank, 0);
    }
    return UI_HANDLED;
}

static unsigned apply_evbmf(ui_state *s)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    ui_layer *l = &s->layers[s->sel];
    decomp_method m = l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
    if (m == DECOMP_NONE || l->mi[m].evbmf <= 0) {
        snprintf(s->msg, sizeof s->msg, "%s: no EVBMF suggestion for %s", l->name,
                 decomp_method_name(m));
        return UI_HANDLED | UI_REDRAW;
    }
    return set_choice(s, l, m, l->mi[m].evbmf, m == DECOMP_TUCKER2 ? l->mi[m].evbmf2 : 0);
}

/* ---- layout --------------------------------------------------------------------------------- */

int ui_too_small(const ui_state *s)
{
    return s->cols < UI_MIN_COLS || s->lines < UI_MIN_LINES;
}

void ui_table_layout_of(const ui_state *s, ui_table_layout *t)
{
    memset(t, 0, sizeof *t);
    int name_w = 5, shape_w = 5, op_w = 4;
    for (int k = 0; k < s->n_layers; ++k) {
        int n = (int)strlen(ui_layer_label(s, &s->layers[k])), sh = (int)strlen(s->layers[k].shape);
        int o = (int)strlen(s->layers[k].op);
        if (n > name_w)
            name_w = n;
        if (sh > shape_w)
            shape_w = sh;
        if (o > op_w)
            op_w = o;
    }
    if (name_w > (s->full_names ? 40 : 16))
        name_w = s->full_names ? 40 : 16;
    if (shape_w > 16)
        shape_w = 16;
    const int want[COL_COUNT] = {
        [COL_NAME] = name_w, [COL_OP] = op_w, [COL_SHAPE] = shape_w, [COL_PARAMS] = 7,
        [COL_MACS] = 7, [COL_METHOD] = 11, [COL_SLIDER] = 10, [COL_RANK] = 8, [COL_EVBMF] = 5,
        [COL_WERR] = 6, [COL_OERR] = 7, [COL_SAVES] = 6,
    };
    /* columns dropped first when the width runs short */
    static const int drop_order[] = {COL_SHAPE, COL_OERR, COL_MACS, COL_OP, COL_EVBMF};
    for (int c = 0; c < COL_COUNT; ++c)
        t->show[c] = 1;
    int avail = s->cols - 2; /* "> " marker */
    for (size_t d = 0;; ++d) {
        int total = 0;
        for (int c = 0; c < COL_COUNT; ++c)
            if (t->show[c])
                total += want[c] + 1;
        if (total <= avail || d >= sizeof drop_order / sizeof drop_order[0])
            break;
        t->show[drop_order[d]] = 0;
    }
    int total = 0;
    for (int c = 0; c < COL_COUNT; ++c)
        if (t->show[c])
            total += want[c] + 1;
    int extra = avail - total;
    int x = 2;
    for (int c = 0; c < COL_COUNT; ++c) {
        t->w[c] = want[c];
        if (c == COL_SLIDER && extra > 0)
            t->w[c] += extra > 30 ? 30 : extra;
        t->x[c] = x;
        if (t->show[c])
            x += t->w[c] + 1;
    }
    t->table_y = 3; /* title, separator... see scr_layers.c: row 1 is the column header */
    int max_rows = s->lines - 3 - 8; /* leave room for the chain panel and the footer */
    if (max_rows < 3)
        max_rows = 3;
    t->rows = s->n_layers < max_rows ? s->n_layers : max_rows;
    t->panel_y = t->table_y + t->rows + 1;
}

void ui_fix_scroll(ui_state *s)
{
    ui_table_layout t;
    ui_table_layout_of(s, &t);
    if (s->sel < 0)
        s->sel = 0;
    if (s->sel >= s->n_layers)
        s->sel = s->n_layers > 0 ? s->n_layers - 1 : 0;
    if (s->sel < s->scroll)
        s->scroll = s->sel;
    if (t.rows > 0 && s->sel >= s->scroll + t.rows)
        s->scroll = s->sel - t.rows + 1;
    if (s->scroll < 0)
        s->scroll = 0;
}

/* ---- worked example editing ----------------------------------------------------------------- */

static unsigned edit_key(ui_state *s, int key)
{
    ui_edit *ed = &s->edit;
    ex_state *ex = &s->ex;
    int rows = ed->which ? EX_K : ex->in_h, cols = ed->which ? EX_K : ex->in_w;
    switch (key) {
    case UI_K_ESC:
        ed->active = 0;
        ed->len = 0;
        ed->buf[0] = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_TAB:
        ed->which = !ed->which;
        ed->r = ed->c = 0;
        ed->len = 0;
        ed->buf[0] = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_LEFT: ed->c = (ed->c + cols - 1) % cols; ed->len = 0; ed->buf[0] = 0; return UI_HANDLED | UI_REDRAW;
    case UI_K_RIGHT: ed->c = (ed->c + 1) % cols; ed->len = 0; ed->buf[0] = 0; return UI_HANDLED | UI_REDRAW;
    case UI_K_UP: ed->r = (ed->r + rows - 1) % rows; ed->len = 0; ed->buf[0] = 0; return UI_HANDLED | UI_REDRAW;
    case UI_K_DOWN: ed->r = (ed->r + 1) % rows; ed->len = 0; ed->buf[0] = 0; return UI_HANDLED | UI_REDRAW;
    case UI_K_BACKSPACE:
    case 127:
    case 8:
        if (ed->len > 0)
            ed->buf[--ed->len] = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_ENTER:
    case '\r': {
        if (ed->len > 0) {
            char *end = NULL;
            double v = strtod(ed->buf, &end);
            if (!end || *end != 0 || end == ed->buf) {
                snprintf(s->msg, sizeof s->msg, "not a number: \"%s\"", ed->buf);
            } else if (!(v > -1e6 && v < 1e6)) {
                snprintf(s->msg, sizeof s->msg, "%s is out of range: a cell takes -999999..999999", ed->buf);
            } else {
                if (ed->which)
                    ex->k[ed->r][ed->c] = v;
                else
                    ex->x[ed->r][ed->c] = v;
                ex_compute(ex);
                snprintf(s->msg, sizeof s->msg, "%s[%d][%d] = %g", ed->which ? "K" : "X", ed->r,
                         ed->c, v);
            }
        }
        ed->len = 0;
        ed->buf[0] = 0;
        /* move on to the next cell, like a spreadsheet */
        if (++ed->c >= cols) {
            ed->c = 0;
            ed->r = (ed->r + 1) % rows;
        }
        return UI_HANDLED | UI_REDRAW;
    }
    default:
        if (((key >= '0' && key <= '9') || key == '-' || key == '.' || key == '+' || key == 'e') &&
            ed->len < (int)sizeof ed->buf - 1) {
            ed->buf[ed->len++] = (char)key;
            ed->buf[ed->len] = 0;
            return UI_HANDLED | UI_REDRAW;
        }
        return UI_HANDLED;
    }
}

static unsigned example_key(ui_state *s, int key)
{
    ex_state *ex = &s->ex;
    switch (key) {
    case UI_K_RIGHT:
    case ' ':
        ex->pos = (ex->pos + 1) % ex->n_pos;
        break;
    case UI_K_LEFT:
        ex->pos = (ex->pos + ex->n_pos - 1) % ex->n_pos;
        break;
    case UI_K_HOME:
        ex->pos = 0;
        break;
    case 's':
        ex->stride = ex->stride == 1 ? 2 : 1;
        ex->pos = 0;
        break;
    case 'r':
    case UI_K_UP:
        ex->rank = ex->rank % EX_K + 1;
        break;
    case UI_K_DOWN:
        ex->rank = ex->rank > 1 ? ex->rank - 1 : EX_K;
        break;
    case 'E':
        s->edit.active = 1;
        s->edit.which = 0;
        s->edit.r = ex->win_r;
        s->edit.c = ex->win_c;
        s->edit.len = 0;
        s->edit.buf[0] = 0;
        return UI_HANDLED | UI_REDRAW;
    case 'D':
        ex_default(ex);
        return UI_HANDLED | UI_REDRAW;
    default:
        return 0;
    }
    ex_compute(ex);
    return UI_HANDLED | UI_REDRAW;
}

/* ---- keys ----------------------------------------------------------------------------------- */

/* Take the last search's plan into the sliders (layers it leaves out are reset). */
static unsigned apply_search(ui_state *s)
{
    int changed = 0;
    for (int k = 0; k < s->n_layers; ++k) {
        ui_layer *l = &s->layers[k];
        ui_choice c = l->has_searched ? l->searched : (ui_choice){DECOMP_NONE, 0, 0};
        if (c.method != DECOMP_NONE && !(l->methods & (1u << c.method)))
            continue;
        if (c.method != l->cur.method || c.rank != l->cur.rank || c.rank2 != l->cur.rank2) {
            l->cur = c;
            changed = 1;
        }
    }
    if (!changed)
        return UI_HANDLED | UI_REDRAW;
    snprintf(s->msg, sizeof s->msg, "search plan applied to the sliders");
    s->dirty = 1;
    ++s->gen;
    undo_record(s);
    return UI_HANDLED | UI_REDRAW | UI_RECOMPUTE | UI_SEARCH_APPLY;
}

static unsigned select_row(ui_state *s, int row)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    if (row < 0)
        row = 0;
    if (row >= s->n_layers)
        row = s->n_layers - 1;
    unsigned f = UI_HANDLED | UI_REDRAW;
    if (row != s->sel && s->screen == SCR_TRADEOFFS)
        f |= UI_SWEEP;
    s->sel = row;
    ui_fix_scroll(s);
    return f;
}

static unsigned set_screen(ui_state *s, int screen)
{
    unsigned f = UI_HANDLED | UI_REDRAW;
    if (screen == SCR_TRADEOFFS && s->screen != SCR_TRADEOFFS)
        f |= UI_SWEEP;
    s->screen = screen;
    return f;
}

const double ui_curve_reductions[UI_CURVE_N] = {1.5, 2.0, 2.5, 3.0, 4.0};

/* `c` on Trade-offs: start the curve unless it is already being computed. */
static unsigned ui_curve_key(ui_state *s)
{
    if (s->curve.running)
        return UI_HANDLED;
    s->curve.running = 1;
    s->curve.done = 0;
    s->curve.n = 0;
    snprintf(s->curve.msg, sizeof s->curve.msg, "curve pending: sensitivity tables");
    return UI_HANDLED | UI_REDRAW | UI_CURVE_START;
}

/* `F` on Search: fine-tune the slider plan, or say why it cannot. */
static unsigned ui_finetune_key(ui_state *s)
{
    if (s->ft.running)
        return UI_HANDLED;
    if (!s->ft.available) {
        snprintf(s->ft.msg, sizeof s->ft.msg,
                 "fine-tuning needs the full CIFAR-10 training set: not found (--data DIR)");
        return UI_HANDLED | UI_REDRAW;
    }
    if (s->search.running) {
        snprintf(s->ft.msg, sizeof s->ft.msg, "a search is running: stop it (x) before fine-tuning");
        return UI_HANDLED | UI_REDRAW;
    }
    s->ft.running = 1;
    s->ft.done = 0;
    s->ft.have_model = 0;
    s->ft.n = 0;
    s->ft.progress = 0;
    snprintf(s->ft.msg, sizeof s->ft.msg, "fine-tuning pending: %d epochs", s->ft.epochs);
    return UI_HANDLED | UI_REDRAW | UI_FT_START;
}

/* The rank keys of the selected layer (Layers, Spectrum, Accuracy, Trade-offs and Search). */
static unsigned slider_key(ui_state *s, int key)
{
    if (key == 'R')
        return reset_all(s);
    if (key == ':')
        return prompt_open(s);
    if (s->n_layers <= 0)
        return UI_HANDLED;
    ui_layer *l = &s->layers[s->sel];
    switch (key) {
    case UI_K_UP:
    case 'k':
        return select_row(s, s->sel - 1);
    case UI_K_DOWN:
    case 'j':
        return select_row(s, s->sel + 1);
    case UI_K_LEFT:
        return rank_step(s, -1, 0);
    case UI_K_RIGHT:
        return rank_step(s, +1, 0);
    case UI_K_PGUP:
        return rank_step(s, +page_step(l), 0);
    case UI_K_PGDN:
        return rank_step(s, -page_step(l), 0);
    case UI_K_HOME:
        return rank_step(s, 0, -1);
    case UI_K_END:
        return rank_step(s, 0, +1);
    case 'm':
        return cycle_method(s);
    case 'e':
        return apply_evbmf(s);
    case '0':
        return set_choice(s, l, DECOMP_NONE, 0, 0);
    case '[':
    case ']':
        if (l->cur.method != DECOMP_TUCKER2)
            return UI_HANDLED;
        return set_choice(s, l, l->cur.method, l->cur.rank,
                          ui_effective_rank2(l) + (key == ']' ? 1 : -1) < 1
                              ? 1
                              : ui_effective_rank2(l) + (key == ']' ? 1 : -1));
    default:
        return UI_HANDLED;
    }
}

static unsigned layers_key(ui_state *s, int key)
{
    if (key == 'n') {
        s->full_names = !s->full_names;
        snprintf(s->msg, sizeof s->msg, "%s", s->full_names ? "full node names (n: short names)"
                                                            : "short names (n: full node names)");
        return UI_HANDLED | UI_REDRAW;
    }
    if (key == ':' || key == UI_K_ENTER)
        return prompt_open(s);
    return slider_key(s, key);
}

static unsigned spectrum_key(ui_state *s, int key)
{
    if (key == 'l') {
        s->spec_log = !s->spec_log;
        return UI_HANDLED | UI_REDRAW;
    }
    return slider_key(s, key);
}

static unsigned tradeoffs_key(ui_state *s, int key)
{
    if (key == 'c')
        return ui_curve_key(s);
    if (key == 'S')
        return UI_HANDLED | UI_REDRAW | UI_SWEEP;
    return slider_key(s, key);
}

static unsigned search_key(ui_state *s, int key)
{
    switch (key) {
    case 's':
    case UI_K_ENTER:
        if (!s->search.available) {
            snprintf(s->msg, sizeof s->msg, "rank search is not available in this build yet");
            return UI_HANDLED | UI_REDRAW;
        }
        return s->search.running ? UI_HANDLED : UI_HANDLED | UI_REDRAW | UI_SEARCH_START;
    case 'x':
    case UI_K_ESC:
        if (s->ft.running)
            return UI_HANDLED | UI_REDRAW | UI_FT_STOP;
        return s->search.running ? UI_HANDLED | UI_REDRAW | UI_SEARCH_STOP : UI_HANDLED;
    case 'F':
        return ui_finetune_key(s);
    case 'a':
        if (!s->search.have_result || s->search.running)
            return UI_HANDLED;
        return apply_search(s);
    case 't':
        if (!s->search.running)
            s->search.strategy = (s->search.strategy + 1) % 4;
        return UI_HANDLED | UI_REDRAW;
    case 'o':
        if (!s->search.running)
            s->search.objective = (s->search.objective + 1) % 3;
        return UI_HANDLED | UI_REDRAW;
    case '+':
    case '=':
    case '-':
        if (!s->search.running) {
            s->search.tol += key == '-' ? -0.5 : 0.5;
            if (s->search.tol < 0.5)
                s->search.tol = 0.5;
            if (s->search.tol > 20)
                s->search.tol = 20;
        }
        return UI_HANDLED | UI_REDRAW;
    default:
        return slider_key(s, key);
    }
}

static unsigned example_screen_key(ui_state *s, int key)
{
    unsigned f = example_key(s, key);
    return f ? f : UI_HANDLED;
}

/* ---- the screens ------------------------------------------------------------------------------ */

#define SLIDER_HELP                                                                                  \
    "up/down, j/k           select a layer (mouse: click a row; wheel scrolls)",                    \
        "left/right             rank -1 / +1   (mouse: click or drag on the slider)",               \
        "PgUp / PgDn            rank +8 / -8 (or 10 % of the range)",                               \
        "Home / End             rank 1 / largest", "m                      cycle the method: none svd slice-svd spatial-svd cp tucker2", \
        "[ / ]                  tucker2: input-side rank -1 / +1",                                   \
        "e                      apply the EVBMF rank suggestion",                                    \
        "0                      reset the layer (no factorization)",                                 \
        "R                      reset every layer (u undoes it)",                                    \
        ": (Layers: or Enter)   type the exact rank of the layer",                                   \
        "w                      save the plan and the factorized ONNX (atomically)"

static const char *const help_layers[] = {"n                      full node names / short names", SLIDER_HELP};
static const char *const help_spectrum[] = {"l                      linear / log scale", SLIDER_HELP};
static const char *const help_accuracy[] = {SLIDER_HELP};
static const char *const help_tradeoffs[] = {
    "S                      re-run the rank sweep of the layer",
    "c                      accuracy vs 1.5x..4x fewer params (search tables, background)", SLIDER_HELP};
static const char *const help_search[] = {
    "s, Enter               start a rank search on the validation split",
    "x, Esc                 stop the search (or the fine-tuning)",
    "a                      apply the search's plan to the sliders",
    "t                      cycle the strategy: naive bisect global evbmf",
    "o                      cycle the objective: params macs both",
    "+ / -                  tolerance +0.5 / -0.5 points",
    "F                      fine-tune the slider plan 3 epochs (full data)",
    "w                      save the fine-tuned ONNX once there is one (else the plan)",
    SLIDER_HELP};
static const char *const help_example[] = {
    "left/right, space      slide the window (Home: first position)",
    "s                      stride 1 / 2",
    "r, up/down             rank of the kernel's SVD",
    "E                      edit a cell (Tab X/K, arrows move, Enter sets, Esc ends)",
    "D                      back to the default example"};

static const char *const help_graph[] = {
    "up/down, PgUp/PgDn     select a node (Home/End: first/last)",
    "Enter                  on a weighted node (Conv/Gemm/MatMul): its slider on the Layers screen"};

#define HELP(a) a, (int)(sizeof a / sizeof a[0])
const ui_screen_def ui_screens[SCR_COUNT] = {
    {"Layers", layers_key, HELP(help_layers),
     "<-/-> rank  PgUp/PgDn +-8  Home/End  m method  e EVBMF  0 reset  w save  Tab/1-7  ? help  q quit"},
    {"Spectrum", spectrum_key, HELP(help_spectrum),
     "<-/-> rank  up/down layer  m method  l linear/log  e EVBMF  Tab/1-7 screens  ? help  q quit"},
    {"Accuracy", layers_key, HELP(help_accuracy),
     "<-/-> rank  up/down layer  m method  w save  Tab/1-7 screens  ? help  q quit"},
    {"Trade-offs", tradeoffs_key, HELP(help_tradeoffs),
     "up/down layer (sweeps it)  <-/-> rank  S re-sweep  c curve  m method  Tab/1-7  ? help  q quit"},
    {"Search", search_key, HELP(help_search),
     "s start  x stop  a apply  F fine-tune  t strategy  o objective  +/- tol  Tab/1-7  ? help  q quit"},
    {"Example", example_screen_key, HELP(help_example),
     "<-/-> slide window  s stride  r rank  E edit a cell  D default  Tab/1-7  ? help  q quit"},
    {"Graph", ui_graph_key, HELP(help_graph), "up/down node  Enter its slider  Tab/1-7  ? help  q quit"},
};

static const char *const help_global[] = {
    "1..7, Tab, Shift-Tab   switch screen (Layers Spectrum Accuracy Trade-offs Search Example Graph)",
    "?, h                   this help (up/down/PgUp/PgDn scroll it, any other key closes it)",
    "u / Ctrl-R             undo / redo a rank or method change",
    "o (Search: O)          open another model: the zoo, the shipped net, .onnx files here",
    "q, Ctrl-C              quit (asks first when changes are unsaved or jobs run)",
};
static const char *const help_tail[] = {
    "Every change re-factorizes the layer and re-evaluates in the background;",
    "[eval NN%] in the title bar means the shown accuracy is not yet for the current ranks.",
};

int ui_help_lines(const ui_state *s, const char **out, int max)
{
    const ui_screen_def *d = &ui_screens[s->screen >= 0 && s->screen < SCR_COUNT ? s->screen : 0];
    int n = 0;
#define ADD(str)                                                                                     \
    do {                                                                                             \
        if (n < max)                                                                                 \
            out[n] = (str);                                                                          \
        ++n;                                                                                         \
    } while (0)
    ADD(d->name);
    ADD("");
    for (int i = 0; i < d->n_help; ++i)
        ADD(d->help[i]);
    ADD("");
    ADD("Everywhere");
    for (size_t i = 0; i < sizeof help_global / sizeof help_global[0]; ++i)
        ADD(help_global[i]);
    ADD("");
    for (size_t i = 0; i < sizeof help_tail / sizeof help_tail[0]; ++i)
        ADD(help_tail[i]);
#undef ADD
    return n;
}

/* While the help is open: scroll keys scroll it, any other key closes it. */
static unsigned help_key(ui_state *s, int key)
{
    int step = key == UI_K_UP || key == 'k' ? -1 : key == UI_K_DOWN || key == 'j' ? 1
             : key == UI_K_PGUP ? -10 : key == UI_K_PGDN ? 10 : 0;
    if (!step && key != UI_K_HOME && key != UI_K_END) {
        s->help = 0;
        s->help_scroll = 0;
        return UI_HANDLED | UI_REDRAW;
    }
    const char *lines[128];
    int n = ui_help_lines(s, lines, 128);
    int max = n - ui_help_rows(s);
    s->help_scroll = key == UI_K_HOME ? 0 : key == UI_K_END ? max : s->help_scroll + step;
    if (s->help_scroll > max)
        s->help_scroll = max;
    if (s->help_scroll < 0)
        s->help_scroll = 0;
    return UI_HANDLED | UI_REDRAW;
}

int ui_help_rows(const ui_state *s)
{
    int h = s->lines - 4; /* the box inside a one-line margin and its own border rows */
    return h < 1 ? 1 : h;
}

/* q, Q and ^C: quit, asking first when rank changes are unsaved or background jobs run. */
static unsigned ui_quit_key(ui_state *s, int key)
{
    char jobs[160];
    int n_jobs = ui_jobs_text(s, jobs, sizeof jobs);
    if (!s->dirty && !n_jobs)
        return UI_HANDLED | UI_QUIT;
    s->confirm_quit = 1;
    const char *again = key == 3 ? "^C again, q or y quit" : "q/y quit";
    if (s->dirty && n_jobs)
        snprintf(s->msg, sizeof s->msg, "Unsaved rank changes; running: %s. Quit anyway? %s, w save, any other key stays",
                 jobs, again);
    else if (s->dirty)
        snprintf(s->msg, sizeof s->msg, "Unsaved rank changes. Quit anyway? %s, w save, any other key stays", again);
    else
        snprintf(s->msg, sizeof s->msg, "Running: %s. Quit and stop them? %s, any other key stays", jobs, again);
    return UI_HANDLED | UI_REDRAW;
}

unsigned ui_key(ui_state *s, int key)
{
    if (key == UI_K_RESIZE)
        return UI_HANDLED | UI_REDRAW;
    if (s->help)
        return help_key(s, key);
    if (s->confirm_quit) {
        s->confirm_quit = 0;
        s->msg[0] = 0;
        if (key == 'q' || key == 'y' || key == 'Y' || key == 'Q' || key == 3)
            return UI_HANDLED | UI_QUIT;
        if (key == 'w')
            return UI_HANDLED | UI_REDRAW | UI_SAVE;
        return UI_HANDLED | UI_REDRAW;
    }
    if (ui_too_small(s)) /* only the notice is on screen: nothing may change unseen */
        return key == 'q' || key == 'Q' || key == 3 ? ui_quit_key(s, key) : UI_HANDLED;
    if (s->screen == SCR_EXAMPLE && s->edit.active)
        return edit_key(s, key);
    if (s->prompt.active)
        return prompt_key(s, key);
    if (s->browse.active)
        return ui_browser_key(s, key);
    s->msg[0] = 0;

    /* global keys */
    switch (key) {
    case 'q':
    case 'Q':
    case 3: /* ^C, as the terminal delivers it (SIGINT) */
        return ui_quit_key(s, key);
    case 'o':
        if (s->screen == SCR_SEARCH) /* there: the objective */
            break;
        /* fall through */
    case 'O':
        s->browse.active = 1;
        s->browse.sel = 0;
        s->browse.confirm = 0;
        return UI_HANDLED | UI_REDRAW | UI_BROWSE;
    case 'u':
        return undo_step(s, -1);
    case 18: /* ^R */
        return undo_step(s, +1);
    case '?':
    case 'h':
        s->help = 1;
        s->help_scroll = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_TAB:
        return set_screen(s, (s->screen + 1) % SCR_COUNT);
    case UI_K_BTAB:
        return set_screen(s, (s->screen + SCR_COUNT - 1) % SCR_COUNT);
    case 'w':
        if (s->screen == SCR_SEARCH && s->ft.have_model && !s->ft.running)
            return UI_HANDLED | UI_REDRAW | UI_FT_SAVE; /* the fine-tuned net, not the plan */
        return UI_HANDLED | UI_REDRAW | UI_SAVE;
    case 12: /* ^L */
        return UI_HANDLED | UI_REDRAW;
    default:
        break;
    }
    if (key >= '1' && key < '1' + SCR_COUNT)
        return set_screen(s, key - '1');
    return ui_screens[s->screen].key(s, key);
}

/* ---- mouse ---------------------------------------------------------------------------------- */

static unsigned slider_to(ui_state *s, int row, int x, const ui_table_layout *t)
{
    ui_layer *l = &s->layers[row];
    decomp_method m = l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
    if (m == DECOMP_NONE)
        return UI_HANDLED | UI_REDRAW;
    int r = fmt_slider_rank(x - t->x[COL_SLIDER], l->mi[m].max_rank, t->w[COL_SLIDER]);
    return set_choice(s, l, m, r, l->cur.method == m ? l->cur.rank2 : 0);
}

unsigned ui_mouse(ui_state *s, int x, int y, int ev)
{
    if (s->help || s->confirm_quit)
        return ui_key(s, ' ');
    if (ev == UI_M_WHEEL_UP || ev == UI_M_WHEEL_DOWN) {
        if (s->screen == SCR_EXAMPLE || s->screen == SCR_SEARCH)
            return UI_HANDLED;
        return select_row(s, s->sel + (ev == UI_M_WHEEL_UP ? -1 : 1));
    }
    if (s->screen != SCR_LAYERS || s->n_layers <= 0) {
        if (ev == UI_M_RELEASE)
            s->drag_row = -1;
        return UI_HANDLED;
    }
    ui_table_layout t;
    ui_table_layout_of(s, &t);
    if (ev == UI_M_RELEASE) {
        unsigned f = UI_HANDLED;
        if (s->drag_row >= 0)
            f |= slider_to(s, s->drag_row, x, &t);
        s->drag_row = -1;
        return f;
    }
    if (ev == UI_M_DRAG) {
        if (s->drag_row < 0)
            return UI_HANDLED;
        return slider_to(s, s->drag_row, x, &t);
    }
    /* press */
    int row = y - t.table_y;
    if (row < 0 || row >= t.rows)
        return UI_HANDLED;
    row += s->scroll;
    if (row >= s->n_layers)
        return UI_HANDLED;
    unsigned f = select_row(s, row);
    if (t.show[COL_SLIDER] && x >= t.x[COL_SLIDER] && x < t.x[COL_SLIDER] + t.w[COL_SLIDER]) {
        s->drag_row = row;
        f |= slider_to(s, row, x, &t);
    }
    return f;
}

/* ---- trade-offs ----------------------------------------------------------------------------- */

int ui_pareto(const ui_point *p, int n, int *on_front)
{
    int count = 0;
    for (int i = 0; i < n; ++i) {
        int dominated = 0;
        for (int j = 0; j < n && !dominated; ++j) {
            if (j == i)
                continue;
            if (p[j].ratio >= p[i].ratio && p[j].acc >= p[i].acc &&
                (p[j].ratio > p[i].ratio || p[j].acc > p[i].acc))
                dominated = 1;
        }
        on_front[i] = !dominated;
        count += !dominated;
    }
    return count;
}

void ui_history_add(ui_state *s, double ratio, double macs_ratio, double acc, const char *label)
{
    if (s->n_hist >= UI_MAX_HISTORY) {
        memmove(s->hist, s->hist + 1, sizeof s->hist[0] * (UI_MAX_HISTORY - 1));
        s->n_hist = UI_MAX_HISTORY - 1;
    }
    ui_point *pt = &s->hist[s->n_hist++];
    pt->ratio = ratio;
    pt->macs_ratio = macs_ratio;
    pt->acc = acc;
    snprintf(pt->label, sizeof pt->label, "%s", label ? label : "");
}
