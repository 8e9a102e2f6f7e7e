/* view.c — the layer table's view: the `/` filter, the `s` sort, positions in the listed rows, and
 * row names that never read the same. Pure: no curses, no I/O. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "state_internal.h"

static const char *const sort_names[UI_SORT_COUNT] = {"graph order", "params", "MACs", "error", "sensitivity"};

const char *ui_sort_name(int sort)
{
    return sort >= 0 && sort < UI_SORT_COUNT ? sort_names[sort] : "?";
}

static int measured_now(const ui_layer *l)
{
    return l->cur.method != DECOMP_NONE && l->res_valid && pipe_choice_equal(&l->res_for, &l->cur);
}

int ui_sort_value(const ui_layer *l, int sort, double *v)
{
    *v = 0;
    switch (sort) {
    case UI_SORT_PARAMS: *v = (double)l->params; return 1;
    case UI_SORT_MACS: *v = (double)l->macs; return 1;
    case UI_SORT_ERROR:
        if (!measured_now(l))
            return 0;
        *v = l->w_err;
        return 1;
    case UI_SORT_SENS:
        if (l->cur.method == DECOMP_NONE || !l->sens_valid || !pipe_choice_equal(&l->sens_for, &l->cur))
            return 0;
        *v = l->sens_drop;
        return 1;
    default: return 1;
    }
}

const char *ui_sens_text(const ui_layer *l, char *buf, size_t len)
{
    double v;
    if (l->cur.method == DECOMP_NONE)
        snprintf(buf, len, "-");
    else if (!ui_sort_value(l, UI_SORT_SENS, &v))
        snprintf(buf, len, "...");
    else
        snprintf(buf, len, "%s%.1f", l->sens_images > 0 ? "~" : "", fabs(v) < 0.05 ? 0.0 : v);
    return buf;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (!n)
        return 1;
    for (; *hay; ++hay) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            ++i;
        if (i == n)
            return 1;
    }
    return 0;
}

static int matches(const ui_layer *l, const char *f)
{
    return contains_ci(l->name, f) || contains_ci(l->node_name, f) || contains_ci(l->label, f) ||
           contains_ci(l->op, f) || (l->cur.method != DECOMP_NONE && contains_ci(decomp_method_name(l->cur.method), f));
}

static const ui_state *g_sort_state; /* qsort has no user pointer in C11 */

static int by_sort(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    const ui_state *s = g_sort_state;
    double vi, vj;
    int ki = ui_sort_value(&s->layers[i], s->view.sort, &vi), kj = ui_sort_value(&s->layers[j], s->view.sort, &vj);
    if (ki != kj)
        return ki ? -1 : 1;
    if (ki && vi != vj)
        return vi > vj ? -1 : 1;
    return i - j;
}

void ui_view_update(ui_state *s)
{
    ui_view *v = &s->view;
    if (!v->rows) {
        v->n = s->n_layers;
        return;
    }
    v->n = 0;
    for (int k = 0; k < s->n_layers; ++k)
        if (matches(&s->layers[k], v->filter))
            v->rows[v->n++] = k;
    if (v->sort != UI_SORT_GRAPH && v->n > 1) {
        g_sort_state = s;
        qsort(v->rows, (size_t)v->n, sizeof v->rows[0], by_sort);
        g_sort_state = NULL;
    }
    if (v->n > 0 && ui_view_pos(s, s->sel) < 0)
        s->sel = v->rows[0];
}

int ui_view_count(const ui_state *s)
{
    return s->view.rows ? s->view.n : s->n_layers;
}

int ui_view_layer(const ui_state *s, int pos)
{
    if (pos < 0 || pos >= ui_view_count(s))
        return -1;
    return s->view.rows ? s->view.rows[pos] : pos;
}

int ui_view_pos(const ui_state *s, int k)
{
    if (!s->view.rows)
        return k >= 0 && k < s->n_layers ? k : -1;
    for (int i = 0; i < s->view.n; ++i)
        if (s->view.rows[i] == k)
            return i;
    return -1;
}

int ui_view_step(const ui_state *s, int delta)
{
    int n = ui_view_count(s);
    if (n <= 0)
        return s->sel;
    int p = ui_view_pos(s, s->sel);
    p = p < 0 ? 0 : p + delta;
    p = p < 0 ? 0 : p >= n ? n - 1 : p;
    return ui_view_layer(s, p);
}

static unsigned filter_changed(ui_state *s)
{
    ui_view_update(s);
    ui_fix_scroll(s);
    return UI_HANDLED | UI_REDRAW;
}

/* While the filter is typed: printable keys edit it (the table follows at once), Enter keeps it,
 * Esc clears it, up/down still move through what it lists. */
static unsigned filter_key(ui_state *s, int key)
{
    ui_view *v = &s->view;
    switch (key) {
    case UI_K_ENTER:
    case '\r':
        v->editing = 0;
        if (v->filter_len)
            snprintf(s->msg, sizeof s->msg, "%d of %d layers match \"%s\" (/ edits, Esc there clears)", v->n,
                     s->n_layers, v->filter);
        return UI_HANDLED | UI_REDRAW;
    case UI_K_ESC:
        v->editing = 0;
        v->filter_len = 0;
        v->filter[0] = 0;
        return filter_changed(s);
    case UI_K_BACKSPACE:
    case 127:
    case 8:
        if (v->filter_len > 0)
            v->filter[--v->filter_len] = 0;
        return filter_changed(s);
    case UI_K_UP:
    case UI_K_DOWN:
        return ui_select_row(s, ui_view_step(s, key == UI_K_UP ? -1 : 1));
    default:
        if (key >= 32 && key < 127 && v->filter_len < (int)sizeof v->filter - 1) {
            v->filter[v->filter_len++] = (char)key;
            v->filter[v->filter_len] = 0;
            return filter_changed(s);
        }
        return UI_HANDLED;
    }
}

unsigned ui_view_key(ui_state *s, int key)
{
    ui_view *v = &s->view;
    if (v->editing)
        return filter_key(s, key);
    if (key == '/') {
        v->editing = 1;
        return UI_HANDLED | UI_REDRAW;
    }
    if (key == 's') {
        v->sort = (v->sort + 1) % UI_SORT_COUNT;
        ui_view_update(s);
        ui_fix_scroll(s);
        static const char *const how[UI_SORT_COUNT] = {
            [UI_SORT_PARAMS] = ", largest first",
            [UI_SORT_MACS] = ", largest first",
            [UI_SORT_ERROR] = " (w.err), largest first, unmeasured last",
            [UI_SORT_SENS] = " (drop, ~ estimate; ? explains), largest first",
        };
        snprintf(s->msg, sizeof s->msg, "sorted by %s%s (s: next)", ui_sort_name(v->sort), how[v->sort] ? how[v->sort] : "");
        return UI_HANDLED | UI_REDRAW;
    }
    return 0;
}

/* ---- row names ------------------------------------------------------------------------------- */

/* The tail of name in width cells: name itself, or the ellipsis + its last width-1 bytes. */
static void fit_tail(const char *name, int width, const char *ell, char *buf, size_t len)
{
    size_t n = strlen(name), w = width > 1 ? (size_t)width : 1;
    if (n <= w)
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "%s%s", ell, name + n - (w - 1));
}

static int is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int ui_abbrev_name(const char *name, int width, char *buf, size_t len)
{
    snprintf(buf, len, "%s", name);
    /* the layer's own name: from the last part holding a letter on ("shortcut.0", "conv1_f0") */
    size_t own = 0;
    for (size_t i = 0, start = 0; buf[i]; ++i) {
        if (buf[i] == '.' || buf[i] == '/')
            start = i + 1;
        else if (is_letter(buf[i]))
            own = start;
    }
    size_t at = 0;
    while (strlen(buf) > (size_t)width) {
        char *p = buf + at;
        size_t seg = strcspn(p, "./"), run = 0;
        if (at >= own || !p[seg])
            return 0;
        while (run < seg && is_letter(p[run]))
            ++run;
        if (run >= 2) {
            memmove(p + 1, p + run, strlen(p + run) + 1);
            seg -= run - 1;
            own -= run - 1;
        }
        at += seg + 1;
    }
    return 1;
}

const char *ui_fit_label(const ui_state *s, int k, int width, char *buf, size_t len)
{
    const char *ell = s->utf8 ? "\u2026" : "~";
    const char *name = ui_layer_label(s, &s->layers[k]);
    /* a short label too wide reads best abbreviated, when that reads like no other layer's */
    if (!s->full_names && (int)strlen(name) > width && ui_abbrev_name(name, width, buf, len)) {
        char other[512];
        int clash = 0;
        for (int j = 0; j < s->n_layers && !clash; ++j)
            clash = j != k && ui_abbrev_name(ui_layer_label(s, &s->layers[j]), width, other, sizeof other) &&
                    !strcmp(other, buf);
        if (!clash)
            return buf;
    }
    fit_tail(name, width, ell, buf, len);
    if ((int)strlen(name) <= width)
        return buf;
    /* the first byte where name differs from any other layer whose tail reads the same */
    size_t d = (size_t)-1;
    char other[512];
    for (int j = 0; j < s->n_layers; ++j) {
        if (j == k)
            continue;
        const char *on = ui_layer_label(s, &s->layers[j]);
        fit_tail(on, width, ell, other, sizeof other);
        if (strcmp(other, buf))
            continue;
        size_t i = 0;
        while (name[i] && name[i] == on[i])
            ++i;
        if (i < d)
            d = i;
    }
    if (d == (size_t)-1 || width < 5)
        return buf;
    /* a window of width-2 bytes between two ellipses, the difference a third of the way in */
    size_t n = strlen(name), w = (size_t)width - 2, start = d > w / 3 ? d - w / 3 : 0;
    if (start + w > n)
        start = n - w;
    if (start == 0) /* the head shows the difference: cut the end only */
        snprintf(buf, len, "%.*s%s", (int)(w + 1), name, ell);
    else
        snprintf(buf, len, "%s%.*s%s", ell, (int)w, name + start, ell);
    return buf;
}
