/* scr_browser.c — the model browser drawn over the current screen (`o`). */
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "screens.h"
#include "widgets.h"

/* Over the whole body (rows 2 .. LINES-3), so nothing of the screen below shows at its edges. */
void scr_browser(const ui_state *s)
{
    const ui_browser_state *b = &s->browse;
    int y0 = 2, h = LINES - 4, w = COLS;
    for (int r = 0; r < h; ++r)
        w_fill(y0 + r, 0, w, R_NORMAL);
    w_put_fit(y0, 1, R_ACCENT, "Open a model  (Enter opens, c compares with the open one, d lists another directory, Esc closes)",
              "Open a model: Enter opens, c compares, d another directory, Esc closes");
    char listing[1400], short_listing[1400], cut[4 * sizeof short_listing + 4];
    if (b->dir_err[0]) { /* the reason before the path: a long path is what gets cut */
        snprintf(listing, sizeof listing, "the zoo and recent files (newest first); not listed (%s): %s", b->dir_err,
                 b->dir[0] ? b->dir : ".");
        snprintf(short_listing, sizeof short_listing, "zoo, recent; not listed (%s): %s", b->dir_err,
                 b->dir[0] ? b->dir : ".");
    } else {
        snprintf(listing, sizeof listing, "the zoo, recent files (newest first) and the .onnx files of %s",
                 b->dir[0] ? b->dir : "the current directory");
        snprintf(short_listing, sizeof short_listing, "zoo, recent (newest first), *.onnx in %s", b->dir[0] ? b->dir : ".");
    }
    if (w_width(listing) <= w - 2)
        w_put(y0 + 1, 1, R_DIM, 0, listing);
    else
        w_put(y0 + 1, 1, R_DIM, 0, fmt_cut(short_listing, w - 2, s->utf8, cut, sizeof cut));
    int name_w = w - 2 - 3 - 34;
    name_w = name_w > 60 ? 60 : name_w;
    w_printf(y0 + 2, 3, R_DIM, w - 4, "%-*s %10s %10s %9s", name_w, "model", "params", "MACs", "test acc");
    int rows = ui_browser_rows(s);
    if (b->n == 0)
        w_put(y0 + 3, 3, R_DIM, w - 4, "no models found (zoo catalogue, shipped net, recent files, *.onnx here)");
    int first = ui_browser_first(s);
    for (int i = 0; i < rows && first + i < b->n; ++i) {
        const ui_browse_item *it = &b->items[first + i];
        char p[32], m[32], a[32], name[128];
        if (it->missing) {
            snprintf(p, sizeof p, "missing");
            snprintf(m, sizeof m, "-");
        } else if (it->params >= 0) {
            fmt_count(it->params, p, sizeof p);
            fmt_count(it->macs, m, sizeof m);
        } else {
            snprintf(p, sizeof p, "unreadable");
            snprintf(m, sizeof m, "-");
        }
        if (it->acc >= 0)
            fmt_pct(it->acc, a, sizeof a);
        else
            snprintf(a, sizeof a, "-");
        size_t nl = strlen(it->name);
        if ((int)nl > name_w) /* keep the end: the file name */
            snprintf(name, sizeof name, "%s%s", s->utf8 ? "\u2026" : "~", it->name + nl - (size_t)(name_w - 1));
        else
            snprintf(name, sizeof name, "%s", it->name);
        int sel = first + i == b->sel;
        enum w_role role = sel ? R_SEL : it->missing ? R_DIM : R_NORMAL;
        if (sel)
            w_fill(UI_BROWSE_Y + i, 0, w, R_SEL);
        w_printf(UI_BROWSE_Y + i, 1, role, w - 2, "%s %s%*s %10s %10s %9s", sel ? ">" : " ", name,
                 name_w - w_width(name), "", p, m, a);
    }
    /* the opening under way, or why a file does not load, on the body's last row; at its right
     * end which rows the list shows when it does not fit */
    char line[RS_ERR_LEN + 320], lcut[4 * sizeof line + 4], pos[64] = "";
    if (b->n > rows)
        snprintf(pos, sizeof pos, " models %d-%d of %d ", first + 1, first + rows < b->n ? first + rows : b->n, b->n);
    int pw = (int)strlen(pos);
    int kind = ui_browser_status(s, line, sizeof line);
    if (kind) {
        w_fill(y0 + h - 1, 0, w, R_NORMAL);
        int shown = b->n - first < rows ? b->n - first : rows;
        int lw = w - 3 - pw; /* wrapped over the row above when that is free and two rows hold it */
        if (w_width(line) > lw && w_width(line) <= 2 * lw - 12 && UI_BROWSE_Y + shown < y0 + h - 2)
            w_wrap(y0 + h - 2, 1, lw, 2, kind == 1 ? R_PENDING : R_BAD, line);
        else
            w_put(y0 + h - 1, 1, kind == 1 ? R_PENDING : R_BAD, 0, fmt_cut(line, lw, s->utf8, lcut, sizeof lcut));
    }
    if (pw)
        w_put(y0 + h - 1, w - pw - 1, R_DIM, 0, pos);
}
