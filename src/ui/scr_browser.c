/* scr_browser.c — the model browser drawn over the current screen (`o`). */
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "screens.h"
#include "widgets.h"

void scr_browser(const ui_state *s)
{
    const ui_browser_state *b = &s->browse;
    int w = COLS - 4 < 110 ? COLS - 4 : 110, rows = LINES - 8;
    int n_show = b->n < rows ? b->n : rows;
    int h = n_show + 4 + (b->n == 0);
    int y0 = 3, x0 = (COLS - w) / 2;
    for (int r = 0; r < h; ++r)
        w_fill(y0 + r, x0, w, R_SEL);
    w_printf(y0, x0 + 2, R_SEL, w - 4, "Open a model  (up/down, Enter opens, w saves the current plan, Esc closes)");
    w_printf(y0 + 1, x0 + 4, R_SEL, w - 6, "%-40s %10s %10s %9s", "model", "params", "MACs", "test acc");
    if (b->n == 0)
        w_put(y0 + 2, x0 + 4, R_SEL, w - 6, "no models found (zoo catalogue, shipped net, *.onnx here)");
    int first = b->sel >= n_show ? b->sel - n_show + 1 : 0;
    for (int i = 0; i < n_show; ++i) {
        const ui_browse_item *it = &b->items[first + i];
        char p[32], m[32], a[32], name[48];
        if (it->params >= 0) {
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
        snprintf(name, sizeof name, "%s", nl > 40 ? it->name + nl - 40 : it->name);
        int sel = first + i == b->sel;
        w_printf(y0 + 2 + i, x0 + 2, sel ? R_TAB : R_SEL, w - 4, "%s %-40s %10s %10s %9s", sel ? ">" : " ", name, p,
                 m, a);
    }
}
