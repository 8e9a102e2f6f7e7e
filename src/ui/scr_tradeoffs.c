/* scr_tradeoffs.c — screen 4: accuracy vs rank for the selected layer (a background sweep) and
 * every configuration evaluated so far, compression against accuracy, with the Pareto front. */
#include <stdio.h>
#include <stdlib.h>

#include "fmt.h"
#include "screens.h"
#include "widgets.h"

/* The network's accuracy against parameter reduction (the `c` curve; `C` adds each point
 * fine-tuned) in the box starting at row y, column x, h rows tall (title and status included), to
 * the right edge. The selected point (< / >) is marked and described on the last line. */
static void draw_curve(const ui_state *s, int y, int x, int h)
{
    char a[32], b[32];
    const ui_curve_state *c = &s->curve;
    int nft = 0;
    for (int i = 0; i < c->n; ++i)
        nft += c->acc_ft[i] >= 0;
    w_put(y, x, R_ACCENT, 0, "accuracy vs x fewer params (whole net)");
    if (nft)
        w_printf(y, x + 39, R_DIM, 0, "%s plan  %s fine-tuned", s->utf8 ? "\u2022" : "*", s->utf8 ? "\u25b2" : "^");
    /* a failure's reason wraps under the status line (with no points, over the plot's rows) */
    char st[4][UI_STATUS_LINE];
    int ns = ui_curve_status(s, COLS - x - 1, st, c->n == 0 ? (h - 1 < 4 ? h - 1 : 4) : 2);
    for (int k = 0; k < ns; ++k)
        w_put(y + 1 + k, x, c->running ? R_PENDING : c->done ? R_DIM : R_BAD, 0, st[k]);
    int ph = h - 4 - ns, pw = COLS - x - 10; /* title, status, x axis and its labels, the words line */
    if (ph < 3 || pw < 12 || c->n == 0)
        return;
    double lo = 1, hi = 0;
    for (int i = 0; i < c->n; ++i) {
        lo = c->acc[i] < lo ? c->acc[i] : lo;
        hi = c->acc[i] > hi ? c->acc[i] : hi;
        if (c->acc_ft[i] >= 0) {
            lo = c->acc_ft[i] < lo ? c->acc_ft[i] : lo;
            hi = c->acc_ft[i] > hi ? c->acc_ft[i] : hi;
        }
    }
    if (s->have_orig && s->orig.accuracy > hi)
        hi = s->orig.accuracy;
    if (hi - lo < 0.01)
        lo = hi - 0.01;
    double xmax = ui_curve_reductions[UI_CURVE_N - 1];
    for (int i = 0; i < c->n; ++i)
        xmax = c->ratio[i] > xmax ? c->ratio[i] : xmax;
    w_plot p = {y + 1 + ns, x + 8, ph, pw, 1, xmax * 1.05, lo, hi, 0};
    w_plot_axes(s, &p, "x fewer params", NULL, 2);
    w_plot_line(&p, c->ratio, c->acc, c->n, R_GOOD, s->utf8 ? "\u2022" : "*");
    for (int i = 0; i < c->n; ++i)
        if (c->acc_ft[i] >= 0)
            w_plot_point(&p, c->ratio[i], c->acc_ft[i], R_ACCENT, s->utf8 ? "\u25b2" : "^");
    if (s->have_orig)
        w_plot_point(&p, 1, s->orig.accuracy, R_ORIG, "o");
    int i = c->sel >= 0 && c->sel < c->n ? c->sel : c->n - 1;
    if (c->sel >= 0 && c->sel < c->n)
        w_plot_point(&p, c->ratio[i], c->acc[i], R_MARK, s->utf8 ? "\u25c9" : "@");
    /* the selected point (else the last) in words */
    if (c->acc_ft[i] >= 0)
        snprintf(b, sizeof b, ", fine-tuned %s", fmt_pct(c->acc_ft[i], a, sizeof a));
    else
        b[0] = 0;
    /* the key hint goes first, then the estimate's words, rather than the line being cut */
    char pt[160], mid[200], hint[240], fit[4 * 200 + 4];
    snprintf(pt, sizeof pt, "%s%.1fx: %s%s", c->sel >= 0 ? "> " : "", c->ratio[i], fmt_pct(c->acc[i], a + 16, 16), b);
    snprintf(mid, sizeof mid, "%s (est. drop %.1f pt)", pt, c->est[i]);
    snprintf(hint, sizeof hint, "%s%s", mid, c->sel >= 0 ? "  Enter applies" : "  < > select");
    const int room = COLS - x - 1;
    w_put(y + h - 1, x, c->sel >= 0 ? R_MARK : R_DIM, room,
          w_width(hint) <= room ? hint : fmt_fit(mid, pt, room, s->utf8, fit, sizeof fit));
}

void scr_tradeoffs(const ui_state *s, const ui_spec *sp)
{
    (void)sp;
    char a[32], b[32];
    if (s->n_layers <= 0)
        return;
    const ui_sweep *sw = &s->sweep;
    int half = COLS / 2;
    int top = 4, ph = LINES - top - 6;
    if (ph < 4)
        ph = 4;
    /* left: sweep */
    if (sw->layer >= 0 && sw->layer < s->n_layers) {
        const ui_layer *l = &s->layers[sw->layer];
        char title[160], cut[4 * sizeof title + 4];
        /* the right half has its own heading: the longest form that fits, cut only past the last */
        static const char *const tail[] = {": accuracy vs rank", ": acc vs rank", ""};
        for (int f = 0; f < 3; ++f) {
            snprintf(title, sizeof title, "%s %s%s", ui_layer_label(s, l), decomp_method_name(sw->base.method), tail[f]);
            if (w_width(title) <= half - 2)
                break;
        }
        w_put(2, 1, R_ACCENT, 0, fmt_cut(title, half - 2, s->utf8, cut, sizeof cut));
        if (sw->running)
            w_printf(3, 1, R_PENDING, 0, "sweep %d/%d running in the background", sw->n, sw->total);
        else
            w_printf(3, 1, R_DIM, 0, "sweep done: %d ranks (S re-runs)", sw->n);
        int maxr = l->mi[sw->base.method].max_rank;
        double lo = 1, hi = 0;
        for (int i = 0; i < sw->n; ++i) {
            if (sw->acc[i] < lo)
                lo = sw->acc[i];
            if (sw->acc[i] > hi)
                hi = sw->acc[i];
        }
        if (s->have_orig && s->orig.accuracy > hi)
            hi = s->orig.accuracy;
        if (sw->n == 0 || hi <= lo) {
            lo = 0;
            hi = 1;
        }
        /* accuracy on top, the whole network's params and MACs (relative to the original)
         * under it, on the same rank axis */
        int ah = (ph - 1) * 2 / 3, ch = ph - 1 - ah - 4;
        if (ch < 3) {
            ah = ph - 1;
            ch = 0;
        }
        w_plot p = {top + 1, 9, ah, half - 12, 1, maxr > 1 ? maxr : 2, lo, hi, 0};
        w_plot_axes(s, &p, ch ? NULL : "rank", NULL, 2);
        w_put(top, 1, R_DIM, 0, "accuracy");
        if (ch && sw->n > 0) {
            double cmax = 1, cmin = 1;
            for (int i = 0; i < sw->n; ++i) {
                double pr = (double)sw->params[i] / (double)s->params_total;
                double mr = (double)sw->macs[i] / (double)s->macs_total;
                cmax = pr > cmax ? pr : cmax;
                cmax = mr > cmax ? mr : cmax;
                cmin = pr < cmin ? pr : cmin;
                cmin = mr < cmin ? mr : cmin;
            }
            double pad = (cmax - cmin) * 0.05 + 1e-3;
            w_plot q = {top + ah + 4, 9, ch, half - 12, 1, maxr > 1 ? maxr : 2, cmin - pad, cmax + pad, 0};
            w_plot_axes(s, &q, "rank", NULL, 2);
            w_printf(top + ah + 3, 1, R_DIM, 0, "network cost / original:  %s params  %s MACs",
                     s->utf8 ? "\u25aa" : "p", s->utf8 ? "\u2218" : "m");
            for (int i = 0; i < sw->n; ++i) {
                w_plot_point(&q, sw->rank[i], (double)sw->macs[i] / (double)s->macs_total, R_ORIG,
                             s->utf8 ? "\u2218" : "m");
                w_plot_point(&q, sw->rank[i], (double)sw->params[i] / (double)s->params_total, R_ACCENT,
                             s->utf8 ? "\u25aa" : "p");
            }
            if (l->cur.method == sw->base.method && l->cur.rank > 0)
                w_plot_vline(s, &q, l->cur.rank, R_MARK, NULL);
        }
        double *xs = malloc(sizeof(double) * UI_MAX_SWEEP), *ys = malloc(sizeof(double) * UI_MAX_SWEEP);
        if (xs && ys) {
            int n = 0;
            /* sort by rank (points arrive in rank order already) */
            for (int i = 0; i < sw->n; ++i) {
                xs[n] = sw->rank[i];
                ys[n++] = sw->acc[i];
            }
            w_plot_line(&p, xs, ys, n, R_ACCENT, s->utf8 ? "\u2022" : "*");
        }
        free(xs);
        free(ys);
        if (s->have_orig) {
            int cy, cx;
            /* a gap: a sweep point in the last column must not read as "•orig" */
            if (w_plot_cell(&p, p.x1, s->orig.accuracy, &cy, &cx))
                w_put(cy, cx + 2, R_ORIG, 0, "orig");
        }
        if (l->cur.method == sw->base.method && l->cur.rank > 0)
            w_plot_vline(s, &p, l->cur.rank, R_MARK, "now");
        if (l->mi[sw->base.method].break_even > 0)
            w_plot_vline(s, &p, l->mi[sw->base.method].break_even, R_DIM, "B");
        /* the point under the current rank, in words */
        for (int i = 0; i < sw->n; ++i)
            if (sw->rank[i] == l->cur.rank) {
                w_printf(LINES - 3, 1, R_NORMAL, 0, "rank %d: acc %s  net params %s  MACs %s", sw->rank[i],
                         fmt_pct(sw->acc[i], a, sizeof a), fmt_count(sw->params[i], b, sizeof b),
                         fmt_count(sw->macs[i], a + 16, 16));
            }
    } else {
        /* the left half only: the right one has its own heading on this row */
        w_wrap(2, 1, half - 2, 3, R_DIM, "select a factorizable layer (up/down) to sweep its rank");
    }
    /* right: scatter of every configuration evaluated; with the curve (`c`) below it, or in its
     * place when the terminal is too short for both */
    int x0 = half + 9;
    int curve_on = s->curve.running || s->curve.n > 0 || s->curve.msg[0];
    if (curve_on) {
        int both = LINES >= 34;
        int cy = both ? top + ph / 2 + 1 : 2;
        draw_curve(s, cy, half + 1, both ? LINES - 3 - cy : LINES - 4 - cy);
        if (!both)
            return;
        ph = ph / 2 - 1;
    }
    w_printf(2, half + 1, R_ACCENT, 0, "all configurations so far (%d)", s->n_hist);
    w_put_fit(3, half + 1, R_DIM, "x: params ratio, y: accuracy, * Pareto front", "x: params ratio  y: acc  * front");
    if (s->n_hist == 0)
        return;
    int *front = calloc((size_t)s->n_hist, sizeof *front);
    if (!front)
        return;
    ui_pareto(s->hist, s->n_hist, front);
    double rx = 1, ay = 0, al = 1;
    for (int i = 0; i < s->n_hist; ++i) {
        if (s->hist[i].ratio > rx)
            rx = s->hist[i].ratio;
        if (s->hist[i].acc > ay)
            ay = s->hist[i].acc;
        if (s->hist[i].acc < al)
            al = s->hist[i].acc;
    }
    if (ay <= al)
        al = ay - 0.01;
    w_plot p = {top + 1, x0, ph - 1, COLS - x0 - 2, 1, rx * 1.05, al, ay, 0};
    w_plot_axes(s, &p, "x fewer params", NULL, 2);
    for (int i = 0; i < s->n_hist; ++i)
        if (!front[i])
            w_plot_point(&p, s->hist[i].ratio, s->hist[i].acc, R_DIM, s->utf8 ? "\u00b7" : ".");
    int best = -1;
    for (int i = 0; i < s->n_hist; ++i)
        if (front[i]) {
            w_plot_point(&p, s->hist[i].ratio, s->hist[i].acc, R_ACCENT, s->utf8 ? "\u25c6" : "*");
            if (best < 0 || s->hist[i].ratio > s->hist[best].ratio)
                best = i;
        }
    if (best >= 0 && !curve_on) {
        char tl[128], ts[64];
        snprintf(tl, sizeof tl, "front tip: %s  %.1fx  %s", s->hist[best].label, s->hist[best].ratio,
                 fmt_pct(s->hist[best].acc, a, sizeof a));
        snprintf(ts, sizeof ts, "front tip: %.1fx  %s", s->hist[best].ratio, a);
        w_put_fit(LINES - 4, half + 1, R_DIM, tl, ts);
    }
    free(front);
}
