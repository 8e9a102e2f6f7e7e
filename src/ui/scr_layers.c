/* scr_layers.c — screen 1: the layer table with rank sliders and the selected layer's chain. */
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "screens.h"
#include "widgets.h"

static const char *const col_title[COL_COUNT] = {
    [COL_NAME] = "layer", [COL_OP] = "op", [COL_SHAPE] = "shape", [COL_PARAMS] = "params",
    [COL_MACS] = "MACs", [COL_METHOD] = "method", [COL_SLIDER] = "rank slider", [COL_RANK] = "rank",
    [COL_EVBMF] = "evbmf", [COL_WERR] = "w.err", [COL_OERR] = "out.err", [COL_DROP] = "drop",
    [COL_SAVES] = "saves",
};
static const int col_right[COL_COUNT] = {[COL_PARAMS] = 1, [COL_MACS] = 1, [COL_RANK] = 1,
                                         [COL_EVBMF] = 1, [COL_WERR] = 1, [COL_OERR] = 1,
                                         [COL_DROP] = 1, [COL_SAVES] = 1};

static void cell(const ui_table_layout *t, int y, int c, enum w_role role, const char *txt)
{
    if (!t->show[c])
        return;
    if (col_right[c])
        w_rput(y, t->x[c], t->w[c], role, txt);
    else
        w_put(y, t->x[c], role, t->w[c], txt);
}

static int measured(const ui_layer *l)
{
    return l->res_valid && l->res_for.method == l->cur.method && l->res_for.rank == l->cur.rank &&
           l->res_for.rank2 == l->cur.rank2;
}

static void draw_row(const ui_state *s, const ui_table_layout *t, int y, int k)
{
    const ui_layer *l = &s->layers[k];
    int sel = k == s->sel;
    enum w_role base = sel ? R_SEL : R_NORMAL;
    char buf[256], b2[32];
    if (sel)
        w_fill(y, 0, COLS, R_SEL);
    w_put(y, 0, base, 2, sel ? (s->utf8 ? "\u25b6 " : "> ") : "  ");
    /* long module paths keep their informative end ("…stages.0/conv1"), or where they differ */
    cell(t, y, COL_NAME, base, ui_fit_label(s, k, t->w[COL_NAME], buf, sizeof buf));
    cell(t, y, COL_OP, base, l->op);
    cell(t, y, COL_SHAPE, base, l->shape);
    cell(t, y, COL_PARAMS, base, fmt_count(l->params, buf, sizeof buf));
    cell(t, y, COL_MACS, base, fmt_count(l->macs, buf, sizeof buf));
    int f = l->cur.method != DECOMP_NONE;
    cell(t, y, COL_METHOD, f ? (sel ? R_SEL : R_ACCENT) : base, decomp_method_name(l->cur.method));
    decomp_method vm = f ? l->cur.method : ui_preferred_method(l);
    int max = vm != DECOMP_NONE ? l->mi[vm].max_rank : 0;
    fmt_slider(f ? l->cur.rank : 0, max, t->w[COL_SLIDER], s->utf8, buf, sizeof buf);
    cell(t, y, COL_SLIDER, sel ? R_SEL : (f ? R_ACCENT : R_DIM), buf);
    if (f && l->cur.method == DECOMP_TUCKER2)
        snprintf(buf, sizeof buf, "%d,%d/%d", l->cur.rank, ui_effective_rank2(l), max);
    else if (f)
        snprintf(buf, sizeof buf, "%d/%d", l->cur.rank, max);
    else if (max > 0)
        snprintf(buf, sizeof buf, "-/%d", max);
    else
        snprintf(buf, sizeof buf, "n/a"); /* e.g. a grouped conv: no method applies */
    cell(t, y, COL_RANK, base, buf);
    if (vm != DECOMP_NONE && l->mi[vm].evbmf > 0)
        snprintf(buf, sizeof buf, "%d", l->mi[vm].evbmf);
    else if (vm != DECOMP_NONE && s->evbmf_pending) /* still being found on a worker */
        snprintf(buf, sizeof buf, "%s", s->utf8 ? "\u2026" : "...");
    else
        snprintf(buf, sizeof buf, "-");
    cell(t, y, COL_EVBMF, base, buf);
    if (!f) {
        cell(t, y, COL_WERR, base, "-");
        cell(t, y, COL_OERR, base, "-");
        cell(t, y, COL_DROP, base, "-");
        cell(t, y, COL_SAVES, base, "-");
        return;
    }
    if (measured(l)) {
        cell(t, y, COL_WERR, base, fmt_err(l->w_err, buf, sizeof buf));
        cell(t, y, COL_OERR, base, fmt_err(l->out_err, buf, sizeof buf));
    } else {
        cell(t, y, COL_WERR, sel ? R_SEL : R_PENDING, "...");
        cell(t, y, COL_OERR, sel ? R_SEL : R_PENDING, "...");
    }
    double sv;
    ui_sens_text(l, b2, sizeof b2);
    cell(t, y, COL_DROP, ui_sort_value(l, UI_SORT_SENS, &sv) ? (l->sens_images > 0 && !sel ? R_DIM : base)
                                                             : (sel ? R_SEL : R_PENDING), b2);
    fmt_ratio((double)l->params, (double)l->params_after, b2, sizeof b2);
    cell(t, y, COL_SAVES, l->params_after > l->params ? (sel ? R_SEL : R_BAD) : base, b2);
}

static void draw_chain(const ui_state *s, int y, int maxy)
{
    if (s->n_layers <= 0 || y >= maxy)
        return;
    const ui_layer *l = &s->layers[s->sel];
    char a[32], b[32], c[32], d[32];
    decomp_method vm = l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
    /* the short label when the node name would push the figures off the line */
    int x = w_printf(y, 1, R_ACCENT, 0, "%s", w_width(l->name) + 70 <= COLS ? l->name : ui_layer_label(s, l));
    x = w_printf(y, x, R_NORMAL, 0, "  %s %s", l->op, l->shape);
    if (l->cur.method != DECOMP_NONE) {
        /* "rank 47 of 96" where the line has room for it and the break-even rank, else "47/96" */
        char rk[64];
        snprintf(rk, sizeof rk, "  %s rank %d of %d", decomp_method_name(l->cur.method), l->cur.rank,
                 l->mi[l->cur.method].max_rank);
        if (x + w_width(rk) + 12 + 16 > COLS - 1)
            snprintf(rk, sizeof rk, "  %s %d/%d", decomp_method_name(l->cur.method), l->cur.rank,
                     l->mi[l->cur.method].max_rank);
        x = w_printf(y, x, R_NORMAL, 0, "%s", rk);
    }
    if (vm != DECOMP_NONE) {
        if (s->evbmf_pending)
            x = w_printf(y, x, R_DIM, 0, "   EVBMF %s", s->utf8 ? "\u2026" : "...");
        else
            x = w_printf(y, x, R_DIM, 0, "   EVBMF %d", l->mi[vm].evbmf);
        char be[48], be_short[32];
        snprintf(be, sizeof be, "  break-even rank %d", l->mi[vm].break_even);
        snprintf(be_short, sizeof be_short, "  break-even %d", l->mi[vm].break_even);
        if (l->mi[vm].break_even > 0)
            w_put_fit(y, x, R_DIM, be, be_short);
        else
            w_put_fit(y, x, R_DIM, "  (no rank saves parameters)", "  (none saves params)");
    }
    if (++y >= maxy)
        return;
    x = w_printf(y, 1, R_NORMAL, 0, "params %s -> %s   MACs %s -> %s",
                 fmt_count(l->params, a, sizeof a), fmt_count(l->params_after, b, sizeof b),
                 fmt_count(l->macs, c, sizeof c), fmt_count(l->macs_after, d, sizeof d));
    if (l->cur.method != DECOMP_NONE && measured(l)) /* --fit weights vs --fit outputs, same images */
    {
        char fl[96], fs[96];
        snprintf(fl, sizeof fl, "   out.err fitted to weights %s, to outputs %s", fmt_err(l->out_err, a, sizeof a),
                 fmt_err(l->fit_out_err, b, sizeof b));
        snprintf(fs, sizeof fs, "   out.err w-fit %s, o-fit %s", a, b);
        w_put_fit(y, x, R_NORMAL, fl, fs);
    }
    if (++y >= maxy)
        return;
    if (l->cur.method == DECOMP_NONE) {
        if (ui_preferred_method(l) == DECOMP_NONE) /* e.g. depthwise: nothing low-rank to take out */
            w_printf(y, 1, R_DIM, 0, "one %s layer; no low-rank method applies to it", l->op);
        else
            w_printf(y, 1, R_DIM, 0, "one %s layer; m or <-/-> factorizes it into a chain of simpler ones",
                     l->op);
        return;
    }
    if (!measured(l)) {
        w_put(y, 1, R_PENDING, 0, "factorizing ...");
        return;
    }
    /* the chain: the steps joined by separators, each step's cost under it, aligned */
    const char *sep = s->utf8 ? " \u2502 " : " | ";
    char cost[DECOMP_MAX_FACTORS][UI_CHAIN_COST];
    int colw[DECOMP_MAX_FACTORS];
    ui_chain_costs(l, COLS - 2, cost, colw);
    x = w_put(y, 1, R_DIM, 0, "as ");
    int x2 = x;
    const char *more = s->utf8 ? "\u2026" : "~";
    for (int i = 0; i < l->n_steps; ++i) {
        if (x + colw[i] + (i + 1 < l->n_steps ? 1 : 0) > COLS - 1) { /* the rest does not fit: say so */
            w_put(y, x, R_DIM, 0, more);
            if (y + 1 < maxy)
                w_put(y + 1, x2, R_DIM, 0, more);
            break;
        }
        w_put(y, x, R_ACCENT, 0, l->step_text[i]);
        if (y + 1 < maxy)
            w_put(y + 1, x2, R_DIM, 0, cost[i]);
        x += colw[i];
        x2 += colw[i];
        if (i + 1 < l->n_steps) {
            w_put(y, x, R_DIM, 0, sep);
            if (y + 1 < maxy)
                w_put(y + 1, x2, R_DIM, 0, sep);
            x += 3;
            x2 += 3;
        }
    }
}

void scr_layers(const ui_state *s, const ui_spec *sp)
{
    ui_table_layout t;
    ui_table_layout_of(s, &t);
    for (int c = 0; c < COL_COUNT; ++c)
        if (t.show[c]) {
            /* a title wider than its column has a shorter form, never a cut one */
            const char *title = c == COL_SLIDER && t.w[c] < 11 ? "slider" : col_title[c];
            if (col_right[c])
                w_rput(2, t.x[c], t.w[c], R_DIM, title);
            else
                w_put(2, t.x[c], R_DIM, t.w[c], title);
        }
    int listed = ui_view_count(s);
    for (int r = 0; r < t.rows; ++r) {
        int k = ui_view_layer(s, s->scroll + r);
        if (k < 0)
            break;
        draw_row(s, &t, t.table_y + r, k);
    }
    if (s->n_layers == 0)
        w_put(t.table_y, 2, R_DIM, 0, "this model has no Conv / Gemm / MatMul layer to factorize");
    else if (listed == 0)
        w_printf(t.table_y, 2, R_DIM, 0, "no layer matches \"%s\" (/ then Esc clears the filter)", s->view.filter);
    int y = t.panel_y + (listed == 0);
    int maxy = LINES - 2;
    w_hline(s, y - 1 + 0, 0, COLS);
    /* where the visible rows are, and what the table lists */
    char pos[160];
    int at = 0;
    pos[0] = 0;
    if (listed > t.rows) {
        int last = s->scroll + t.rows < listed ? s->scroll + t.rows : listed;
        at += snprintf(pos + at, sizeof pos - at, " rows %d-%d of %d", s->scroll + 1, last, listed);
        int ty, tl; /* a scroll bar in the table's right margin */
        fmt_scrollbar(s->scroll, t.rows, listed, t.rows, &ty, &tl);
        for (int r = 0; r < t.rows; ++r)
            w_put(t.table_y + r, COLS - 1, r >= ty && r < ty + tl ? R_ACCENT : R_DIM, 1,
                  r >= ty && r < ty + tl ? (s->utf8 ? "\u2588" : "#") : (s->utf8 ? "\u2502" : "|"));
    }
    if (s->view.filter_len)
        at += snprintf(pos + at, sizeof pos - at, "%s filter \"%s\": %d of %d", at ? "," : "", s->view.filter, listed,
                       s->n_layers);
    if (s->view.sort != UI_SORT_GRAPH)
        at += snprintf(pos + at, sizeof pos - at, "%s by %s", at ? "," : "", ui_sort_name(s->view.sort));
    if (at) {
        snprintf(pos + at, sizeof pos - at, " ");
        int pw = w_width(pos);
        w_put(y - 1, COLS - pw - 2 > 0 ? COLS - pw - 2 : 0, R_DIM, 0, pos);
    }
    draw_chain(s, y, maxy);
    /* the selected layer's spectrum, if there is room */
    int sy = y + 5, h = maxy - sy - 1;
    if (h >= 3 && sp && sp->valid && s->n_layers > 0) {
        const ui_layer *l = &s->layers[s->sel];
        w_hline(s, sy - 1, 0, COLS);
        w_printf(sy - 1, 2, R_DIM, 0, " singular values (%s %dx%d) ", decomp_view_name(sp->view), sp->rows,
                 sp->cols);
        int w = COLS - 4;
        scr_spectrum_bars(s, sp, sy, 2, h, w, l->cur.method != DECOMP_NONE ? l->cur.rank : 0);
    } else if (h >= 3 && sp && sp->pending && s->n_layers > 0) {
        w_hline(s, sy - 1, 0, COLS);
        w_put(sy - 1, 2, R_DIM, 0, " singular values ");
        char cut[4 * sizeof sp->note + 4];
        w_put(sy, 2, R_PENDING, 0, fmt_cut(sp->note, COLS - 4, s->utf8, cut, sizeof cut));
    }
}
