/* layout.c — the layer table's geometry for the terminal size, and the mouse on it. */
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "state.h"
#include "state_internal.h"

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

/* ---- mouse ---------------------------------------------------------------------------------- */

static unsigned slider_to(ui_state *s, int row, int x, const ui_table_layout *t)
{
    ui_layer *l = &s->layers[row];
    decomp_method m = l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
    if (m == DECOMP_NONE)
        return UI_HANDLED | UI_REDRAW;
    int r = fmt_slider_rank(x - t->x[COL_SLIDER], l->mi[m].max_rank, t->w[COL_SLIDER]);
    return ui_set_choice(s, l, m, r, l->cur.method == m ? l->cur.rank2 : 0);
}

unsigned ui_mouse(ui_state *s, int x, int y, int ev)
{
    if (s->help || s->confirm_quit)
        return ui_key(s, ' ');
    if (ev == UI_M_WHEEL_UP || ev == UI_M_WHEEL_DOWN) {
        if (s->screen == SCR_EXAMPLE || s->screen == SCR_SEARCH)
            return UI_HANDLED;
        return ui_select_row(s, s->sel + (ev == UI_M_WHEEL_UP ? -1 : 1));
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
    unsigned f = ui_select_row(s, row);
    if (t.show[COL_SLIDER] && x >= t.x[COL_SLIDER] && x < t.x[COL_SLIDER] + t.w[COL_SLIDER]) {
        s->drag_row = row;
        f |= slider_to(s, row, x, &t);
    }
    return f;
}

