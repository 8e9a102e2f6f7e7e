/* state.c — the explorer's state: layers from the model, plans in and out, analytic costs, the
 * choice setter every key goes through, undo/redo and the trade-off history. */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "state_internal.h"
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
    s->curve.sel = -1;
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
    free(s->undo.saved);
    s->undo.saved = NULL;
    s->undo.n = s->undo.at = 0;
    ui_graph_free(&s->graph);
    free(s->view.rows);
    s->view.rows = NULL;
    s->view.n = 0;
    free(s->curve.plans);
    s->curve.plans = NULL;
    ui_compare_free(s);
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
    return ui_state_init_progress(s, m, NULL, NULL, e);
}

int ui_state_init_progress(ui_state *s, const rs_model *m, rs_progress_fn progress, void *user, rs_err *e)
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
            mi->default_rank = default_rank_of(mi);
        }
        l->cur.method = DECOMP_NONE;
        l->params_after = l->params;
        l->macs_after = l->macs;
    }
    free(info);
    s->evbmf_pending = s->evbmf_defer && s->n_layers > 0;
    if (!s->evbmf_defer && s->n_layers > 0) { /* here, the same pass a deferring explorer's worker runs */
        ui_evbmf *v = ui_evbmf_alloc(s);
        int rc = v ? ui_evbmf_run(v, m, progress, user) : rs_fail(e, "out of memory for the EVBMF ranks");
        if (rc == 0)
            ui_state_set_evbmf(s, v);
        ui_evbmf_free(v);
        if (rc == RS_CANCELLED)
            rs_fail(e, "cancelled while finding the EVBMF ranks");
        if (rc != 0)
            return rc;
    }
    make_labels(s);
    if (ui_graph_init(s, m, e) != 0)
        return -1;
    if (ui_state_undo_init(s) != 0)
        return rs_fail(e, "out of memory for the undo history");
    free(s->view.rows);
    s->view.rows = calloc(nw ? (size_t)nw : 1, sizeof *s->view.rows);
    if (!s->view.rows)
        return rs_fail(e, "out of memory for the layer table");
    free(s->curve.plans);
    s->curve.plans = calloc((size_t)UI_CURVE_N * (nw ? (size_t)nw : 1), sizeof *s->curve.plans);
    if (!s->curve.plans)
        return rs_fail(e, "out of memory for the trade-off curve");
    model_totals(m, &s->params_total, &s->macs_total);
    s->params_total_after = s->params_total;
    s->macs_total_after = s->macs_total;
    s->sel = 0;
    s->scroll = 0;
    ui_view_update(s);
    ++s->gen;
    return 0;
}

struct ui_evbmf {
    int n;
    int *node;
    unsigned *methods;
    char (*name)[sizeof ((ui_layer *)0)->name]; /* the layers' display names, for the progress step */
    int *rank; /* n × DECOMP_COUNT × 2: rank and rank2 per method, 0 unknown */
};

void ui_evbmf_free(ui_evbmf *v)
{
    if (!v)
        return;
    free(v->node);
    free(v->methods);
    free(v->name);
    free(v->rank);
    free(v);
}

ui_evbmf *ui_evbmf_alloc(const ui_state *s)
{
    ui_evbmf *v = calloc(1, sizeof *v);
    size_t n = s->n_layers > 0 ? (size_t)s->n_layers : 1;
    if (!v || !(v->node = malloc(n * sizeof *v->node)) || !(v->methods = malloc(n * sizeof *v->methods)) ||
        !(v->name = malloc(n * sizeof *v->name)) || !(v->rank = calloc(n * DECOMP_COUNT * 2, sizeof *v->rank))) {
        ui_evbmf_free(v);
        return NULL;
    }
    v->n = s->n_layers;
    for (int i = 0; i < v->n; ++i) {
        v->node[i] = s->layers[i].node;
        v->methods[i] = s->layers[i].methods;
        memcpy(v->name[i], s->layers[i].name, sizeof v->name[i]);
    }
    return v;
}

int ui_evbmf_run(ui_evbmf *v, const rs_model *m, rs_progress_fn progress, void *user)
{
    for (int i = 0; i < v->n; ++i)
        for (int k = 1; k < DECOMP_COUNT; ++k) {
            if (!(v->methods[i] & (1u << k)))
                continue;
            /* EVBMF is the slow part (an SVD per unfolding): progress and cancel go between them */
            char what[64];
            snprintf(what, sizeof what, "%.40s %s EVBMF", v->name[i], decomp_method_name((decomp_method)k));
            if (progress && progress(user, (i + (double)k / DECOMP_COUNT) / v->n, what))
                return RS_CANCELLED;
            rs_err ee;
            int *r = &v->rank[((size_t)i * DECOMP_COUNT + k) * 2];
            if (evbmf_layer_rank(m, v->node[i], (decomp_method)k, 1, &r[0], &r[1], &ee) != 0)
                r[0] = r[1] = 0; /* no suggestion: the column shows "-" as for any unknown rank */
        }
    return 0;
}

void ui_state_set_evbmf(ui_state *s, const ui_evbmf *v)
{
    for (int i = 0; i < v->n && i < s->n_layers; ++i)
        for (int k = 1; k < DECOMP_COUNT; ++k) {
            const int *r = &v->rank[((size_t)i * DECOMP_COUNT + k) * 2];
            s->layers[i].mi[k].evbmf = r[0];
            s->layers[i].mi[k].evbmf2 = r[1];
        }
    s->evbmf_pending = 0;
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
    ui_state_mark_saved(s); /* the plan opened with is on disk */
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
void ui_undo_record(ui_state *s)
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
    ui_undo_record(s);
}

int ui_state_undo_init(ui_state *s)
{
    free(s->undo.history);
    free(s->undo.saved);
    s->undo.history = calloc((size_t)UI_UNDO_MAX * (size_t)(s->n_layers ? s->n_layers : 1), sizeof(ui_choice));
    s->undo.saved = calloc((size_t)(s->n_layers ? s->n_layers : 1), sizeof(ui_choice));
    if (!s->undo.history || !s->undo.saved)
        return -1;
    undo_reset(s);
    ui_state_mark_saved(s);
    return 0;
}

void ui_state_mark_saved(ui_state *s)
{
    for (int k = 0; k < s->n_layers && s->undo.saved; ++k)
        s->undo.saved[k] = s->layers[k].cur;
    s->dirty = 0;
}

/* Whether some layer's choice differs from the saved ones. */
static int unsaved(const ui_state *s)
{
    if (!s->undo.saved)
        return 1;
    for (int k = 0; k < s->n_layers; ++k)
        if (!pipe_choice_equal(&s->layers[k].cur, &s->undo.saved[k]))
            return 1;
    return 0;
}

/* Step through the history (-1 undo, +1 redo). */
unsigned ui_undo_step(ui_state *s, int dir)
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
    s->dirty = unsaved(s);
    ++s->gen;
    snprintf(s->msg, sizeof s->msg, "%s (%d of %d)", dir < 0 ? "undone" : "redone", to, u->n - 1);
    return UI_HANDLED | UI_REDRAW | UI_RECOMPUTE;
}

/* Every layer back to the original (one undo step). */
unsigned ui_reset_all(ui_state *s)
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
    ui_undo_record(s);
    snprintf(s->msg, sizeof s->msg, "every layer reset to the original (u undoes)");
    return UI_HANDLED | UI_REDRAW | UI_RECOMPUTE;
}

int ui_jobs_text(const ui_state *s, char *buf, size_t len)
{
    size_t at = 0;
    int n = 0;
    buf[0] = 0;
    if (s->browse.opening)
        at += (size_t)snprintf(buf, len, "opening %.40s %.0f%%", s->browse.open_name, 100 * s->browse.open_progress), ++n;
    if (s->search.running && at < len) {
        at += (size_t)snprintf(buf + at, len - at, "%ssearch %.0f%%", n++ ? "  " : "", 100 * s->search.progress);
    }
    if (s->curve.running && at < len)
        at += (size_t)snprintf(buf + at, len - at, "%scurve %d/%d", n++ ? "  " : "", s->curve.n, UI_CURVE_N);
    if (s->ft.running && at < len)
        at += (size_t)snprintf(buf + at, len - at, "%sfine-tune %d/%d", n++ ? "  " : "", s->ft.n, s->ft.epochs);
    return n;
}

/* Returns the flags of a configuration change (or UI_HANDLED when nothing changed). */
unsigned ui_set_choice(ui_state *s, ui_layer *l, decomp_method method, int rank, int rank2)
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
    ui_undo_record(s);
    return UI_HANDLED | UI_REDRAW | UI_RECOMPUTE;
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
