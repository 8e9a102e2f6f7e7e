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

/* The first of the spellings that fits in cols (the last one otherwise). */
static void first_fit(char *out, size_t len, int cols, const char *const *alt, int n)
{
    int k = 0;
    while (k + 1 < n && (int)strlen(alt[k]) > cols)
        ++k;
    snprintf(out, len, "%s", alt[k]);
}

int ui_too_small_lines(const ui_state *s, char lines[3][64])
{
    char need[3][64];
    snprintf(need[0], sizeof need[0], "need %dx%d, have %dx%d", UI_MIN_COLS, UI_MIN_LINES, s->cols, s->lines);
    snprintf(need[1], sizeof need[1], "%dx%d, need %dx%d", s->cols, s->lines, UI_MIN_COLS, UI_MIN_LINES);
    snprintf(need[2], sizeof need[2], "need %dx%d", UI_MIN_COLS, UI_MIN_LINES);
    const char *const title[] = {"terminal too small", "too small"};
    const char *const needs[] = {need[0], need[1], need[2]};
    const char *const quit[] = {"unsaved work or jobs: q again quits, other keys stay", "q again quits", "q again"};
    first_fit(lines[0], 64, s->cols, title, 2);
    first_fit(lines[1], 64, s->cols, needs, 3);
    if (s->confirm_quit)
        first_fit(lines[2], 64, s->cols, quit, 3);
    else
        snprintf(lines[2], 64, "q quits");
    return s->lines < 3 ? s->lines : 3;
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
    int name_full = name_w > 40 ? 40 : name_w; /* what the widest name needs, within reason */
    if (name_w > (s->full_names ? 40 : 16))
        name_w = s->full_names ? 40 : 16;
    if (shape_w > 16)
        shape_w = 16;
    const int want[COL_COUNT] = {
        [COL_NAME] = name_w, [COL_OP] = op_w, [COL_SHAPE] = shape_w, [COL_PARAMS] = 7,
        [COL_MACS] = 7, [COL_METHOD] = 11, [COL_SLIDER] = 10, [COL_RANK] = 8, [COL_EVBMF] = 5,
        [COL_WERR] = 6, [COL_OERR] = 7, [COL_DROP] = 5, [COL_SAVES] = 6,
    };
    /* columns dropped first when the width runs short; the sensitivity column (measured in the
     * background) goes first, except when the table is sorted by it */
    static const int drop_plain[] = {COL_DROP, COL_SHAPE, COL_OERR, COL_MACS, COL_OP, COL_EVBMF};
    static const int drop_sens[] = {COL_SHAPE, COL_OERR, COL_MACS, COL_OP, COL_EVBMF, COL_WERR};
    _Static_assert(sizeof drop_plain == sizeof drop_sens, "one length for both orders");
    const int *drop_order = s->view.sort == UI_SORT_SENS ? drop_sens : drop_plain;
    for (int c = 0; c < COL_COUNT; ++c)
        t->show[c] = 1;
    int avail = s->cols - 3; /* "> " marker, and the scroll bar in the last column */
    for (size_t d = 0;; ++d) {
        int total = 0;
        for (int c = 0; c < COL_COUNT; ++c)
            if (t->show[c])
                total += want[c] + 1;
        if (total <= avail || d >= sizeof drop_plain / sizeof drop_plain[0])
            break;
        t->show[drop_order[d]] = 0;
    }
    int total = 0;
    for (int c = 0; c < COL_COUNT; ++c)
        if (t->show[c])
            total += want[c] + 1;
    int extra = avail - total, w_name = want[COL_NAME];
    if (extra < 0) { /* long full names: the name column gives way (ui_fit_label keeps rows apart) */
        w_name += extra;
        w_name = w_name < 12 ? 12 : w_name;
        extra = 0;
    }
    if (extra > 0 && name_full > w_name) { /* room to spare: whole names before a longer slider */
        int grow = name_full - w_name < extra ? name_full - w_name : extra;
        w_name += grow;
        extra -= grow;
    }
    int x = 2;
    for (int c = 0; c < COL_COUNT; ++c) {
        t->w[c] = c == COL_NAME ? w_name : want[c];
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
    int listed = ui_view_count(s);
    t->rows = listed < max_rows ? listed : max_rows;
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
    /* scroll counts table positions (the view), sel is a layer */
    int pos = ui_view_pos(s, s->sel), n = ui_view_count(s);
    if (pos >= 0 && pos < s->scroll)
        s->scroll = pos;
    if (pos >= 0 && t.rows > 0 && pos >= s->scroll + t.rows)
        s->scroll = pos - t.rows + 1;
    if (s->scroll > n - t.rows)
        s->scroll = n - t.rows;
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

/* The browser and the comparison, drawn over the screen: the wheel moves their selection; a
 * click on a row selects it, and in the browser a click on the selected row opens it (so does a
 * double click: its first click selects). */
static unsigned overlay_mouse(ui_state *s, int y, int ev)
{
    int up = ev == UI_M_WHEEL_UP, down = ev == UI_M_WHEEL_DOWN;
    if (ev == UI_M_RELEASE) { /* acts only when its press was not reported (read together) */
        int pressed = s->overlay_pressed;
        s->overlay_pressed = 0;
        if (pressed)
            return UI_HANDLED;
    } else if (ev == UI_M_PRESS)
        s->overlay_pressed = 1;
    if (s->browse.dir_editing || (ev != UI_M_PRESS && ev != UI_M_RELEASE && !up && !down))
        return UI_HANDLED;
    int browser = s->browse.active;
    unsigned (*key)(ui_state *, int) = browser ? ui_browser_key : ui_compare_key;
    if (up || down)
        return key(s, up ? UI_K_UP : UI_K_DOWN);
    int rows = browser ? ui_browser_rows(s) : ui_compare_rows(s);
    int y0 = browser ? UI_BROWSE_Y : UI_COMPARE_Y;
    int first = browser ? ui_browser_first(s) : s->cmp.scroll;
    int n = browser ? s->browse.n : s->cmp.n, *sel = browser ? &s->browse.sel : &s->cmp.sel;
    int i = y - y0;
    if (i < 0 || i >= rows || first + i >= n)
        return UI_HANDLED;
    if (browser && first + i == *sel)
        return key(s, UI_K_ENTER);
    if (browser)
        s->browse.confirm = 0;
    *sel = first + i;
    return UI_HANDLED | UI_REDRAW;
}

unsigned ui_mouse(ui_state *s, int x, int y, int ev)
{
    if (s->help || s->confirm_quit) /* a press closes / answers; its release must not close the next */
        return ev == UI_M_PRESS ? ui_key(s, ' ') : UI_HANDLED;
    if (s->browse.active)
        return overlay_mouse(s, y, ev);
    /* the frame: tabs and footer keys act on the press, or on a release whose press was not
     * reported (a press and its release read together reach curses as the release alone) */
    if ((ev == UI_M_PRESS || ev == UI_M_RELEASE) && !s->browse.active && !ui_too_small(s) &&
        (y == 1 || y == s->lines - 1) && s->drag_row < 0) {
        int pressed = s->frame_pressed;
        s->frame_pressed = ev == UI_M_PRESS;
        if (ev == UI_M_RELEASE && pressed)
            return UI_HANDLED;
        if (y == 1) {
            int tab = ui_tab_at(s, x);
            return tab >= 0 ? ui_key(s, '1' + tab) : UI_HANDLED;
        }
        int key = ui_footer_key_at(s, x);
        return key ? ui_key(s, key) : UI_HANDLED;
    }
    if (ev == UI_M_RELEASE)
        s->frame_pressed = 0;
    if (s->cmp.active)
        return overlay_mouse(s, y, ev);
    if (ev == UI_M_WHEEL_UP || ev == UI_M_WHEEL_DOWN) {
        if (s->screen == SCR_EXAMPLE || s->screen == SCR_SEARCH)
            return UI_HANDLED;
        return ui_select_row(s, ui_view_step(s, ev == UI_M_WHEEL_UP ? -1 : 1));
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
    row = ui_view_layer(s, row + s->scroll);
    if (row < 0)
        return UI_HANDLED;
    unsigned f = ui_select_row(s, row);
    if (t.show[COL_SLIDER] && x >= t.x[COL_SLIDER] && x < t.x[COL_SLIDER] + t.w[COL_SLIDER]) {
        s->drag_row = row;
        f |= slider_to(s, row, x, &t);
    }
    return f;
}

