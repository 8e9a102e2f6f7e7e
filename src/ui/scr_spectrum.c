/* scr_spectrum.c — screen 2: singular values of the selected layer, energy, error vs rank. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "screens.h"
#include "widgets.h"

void scr_spectrum_bars(const ui_state *s, const ui_spec *sp, int y, int x, int h, int w, int rank)
{
    static const char *const eighth[9] = {" ", "\u2581", "\u2582", "\u2583", "\u2584", "\u2585",
                                          "\u2586", "\u2587", "\u2588"};
    if (!sp->valid || sp->n <= 0 || h < 2 || w < 4)
        return;
    int n = sp->n, bh = h - 1;
    if (sp->evbmf_threshold > 0 && w > 40)
        w -= 17; /* room for the threshold's label */
    int per = w / n; /* cells per bar */
    if (per > 3)
        per = 3;
    int bins = n, binw = 1;
    if (per < 1) {
        per = 1;
        binw = (n + w - 1) / w;
        bins = (n + binw - 1) / binw;
    }
    double mx = sp->sigma[0] > 0 ? sp->sigma[0] : 1, mn = mx;
    for (int i = 0; i < n; ++i)
        if (sp->sigma[i] > 0 && sp->sigma[i] < mn)
            mn = sp->sigma[i];
    if (s->spec_log && mn >= mx)
        mn = mx / 10;
    for (int b = 0; b < bins; ++b) {
        double v = 0;
        for (int i = b * binw; i < (b + 1) * binw && i < n; ++i)
            if (sp->sigma[i] > v)
                v = sp->sigma[i];
        double f;
        if (s->spec_log)
            f = v > 0 ? (log10(v) - log10(mn) + 0.1) / (log10(mx) - log10(mn) + 0.1) : 0;
        else
            f = v / mx;
        if (f < 0)
            f = 0;
        int units = (int)lround(f * bh * 8);
        int first_rank = b * binw + 1;
        enum w_role role = rank > 0 && first_rank <= rank ? R_ACCENT : R_DIM;
        for (int r = 0; r < bh; ++r) {
            int u = units - r * 8;
            const char *g = u >= 8 ? (s->utf8 ? eighth[8] : "#") : u > 0 ? (s->utf8 ? eighth[u] : (u >= 4 ? "#" : ".")) : NULL;
            if (!g)
                continue;
            for (int c = 0; c < per; ++c)
                w_put(y + bh - 1 - r, x + b * per + c, role, 1, g);
        }
    }
    /* EVBMF threshold as a dotted level */
    if (sp->evbmf_threshold > 0 && sp->evbmf_threshold < mx) {
        double f = s->spec_log ? (log10(sp->evbmf_threshold) - log10(mn) + 0.1) / (log10(mx) - log10(mn) + 0.1)
                               : sp->evbmf_threshold / mx;
        int r = (int)(f * bh);
        if (r >= 0 && r < bh) {
            int yy = y + bh - 1 - r;
            for (int c = 0; c < bins * per; c += 2)
                if ((mvinch(yy, x + c) & A_CHARTEXT) == ' ')
                    w_put(yy, x + c, R_MARK, 1, s->utf8 ? "\u00b7" : ".");
            w_put(yy, x + bins * per + 1, R_MARK, 0, "EVBMF threshold");
        }
    }
    /* marker row */
    const ui_layer *l = &s->layers[sp->layer];
    int be = sp->method != DECOMP_NONE ? l->mi[sp->method].break_even : 0;
    int ev = sp->method != DECOMP_NONE ? l->mi[sp->method].evbmf : 0;
    char buf[32];
    if (be > 0 && be <= n) {
        snprintf(buf, sizeof buf, "B%d", be);
        w_put(y + bh, x + ((be - 1) / binw) * per, R_DIM, 0, buf);
    }
    if (ev > 0 && ev <= n) {
        snprintf(buf, sizeof buf, "E%d", ev);
        w_put(y + bh, x + ((ev - 1) / binw) * per, R_MARK, 0, buf);
    }
    if (rank > 0 && rank <= n) {
        snprintf(buf, sizeof buf, "%sr%d", s->utf8 ? "\u25b2" : "^", rank);
        w_put(y + bh, x + ((rank - 1) / binw) * per, R_ACCENT, 0, buf);
    }
}

void scr_spectrum(const ui_state *s, const ui_spec *sp)
{
    char a[32];
    if (s->n_layers <= 0)
        return;
    const ui_layer *l = &s->layers[s->sel];
    int rank = l->cur.method != DECOMP_NONE ? l->cur.rank : 0;
    char rest[160];
    if (sp->valid)
        snprintf(rest, sizeof rest, "  %s  %s view %dx%d  %d singular values  %s scale", decomp_method_name(sp->method),
                 decomp_view_name(sp->view), sp->rows, sp->cols, sp->n, s->spec_log ? "log" : "linear");
    else
        rest[0] = 0;
    /* the short label when the node name would push the rest off the line */
    const char *name = w_width(l->name) + w_width(rest) <= COLS - 2 ? l->name : ui_layer_label(s, l);
    int x = w_printf(2, 1, R_ACCENT, 0, "%s", name);
    if (!sp->valid) {
        w_wrap(3, 1, COLS - 2, 2, R_DIM, sp->note);
        return;
    }
    char rest_short[96];
    snprintf(rest_short, sizeof rest_short, "  %s  %s %dx%d  %s", decomp_method_name(sp->method),
             decomp_view_name(sp->view), sp->rows, sp->cols, s->spec_log ? "log" : "linear");
    x = w_put_fit(2, x, R_NORMAL, rest, rest_short);
    char shortn[sizeof sp->note]; /* the note's first clause, or its formula */
    const char *semi = strstr(sp->note, "; "), *formula = strstr(sp->note, ": error");
    if (semi)
        snprintf(shortn, sizeof shortn, "%.*s", (int)(semi - sp->note), sp->note);
    else
        snprintf(shortn, sizeof shortn, "%s", formula ? formula + 2 : sp->note);
    w_put_fit(3, 1, R_DIM, sp->note, shortn);
    int top = 5, bottom = LINES - 3;
    int avail = bottom - top;
    int bars_h = avail / 2;
    w_printf(top - 1, 1, R_DIM, 0, "sigma (max %.3g)", sp->sigma[0]);
    scr_spectrum_bars(s, sp, top, 2, bars_h, COLS - 22, rank);
    /* text summary at the right of the bars */
    int rx = COLS - 19, ry = top;
    /* the same figures as the Layers screen: the measured error of the factorization and the
     * layer's EVBMF rank for the method; this view's own truncation figures are labelled as such */
    int exact = sp->method == DECOMP_SVD || sp->method == DECOMP_SPATIAL_SVD;
    int measured = l->res_valid && l->cur.method != DECOMP_NONE && pipe_choice_equal(&l->res_for, &l->cur);
    if (rank > 0) {
        w_printf(ry++, rx, R_ACCENT, 0, "rank %d", rank);
        if (rank <= sp->n)
            w_printf(ry++, rx, R_NORMAL, 0, "energy %s", fmt_pct(sp->energy[rank - 1], a, sizeof a));
        if (measured) {
            w_printf(ry++, rx, R_NORMAL, 0, "w.err  %s", fmt_err(l->w_err, a, sizeof a));
            /* output error of the weight fit and of the output fit (--fit outputs), same images */
            w_printf(ry++, rx, R_NORMAL, 0, "o.err  %s", fmt_err(l->out_err, a, sizeof a));
            w_printf(ry++, rx, R_NORMAL, 0, "o.err fit %s", fmt_err(l->fit_out_err, a, sizeof a));
        }
        else if (exact && rank <= sp->n)
            w_printf(ry++, rx, R_NORMAL, 0, "w.err  %s", fmt_err(sp->err[rank], a, sizeof a));
        if (!exact && rank <= sp->n)
            w_printf(ry++, rx, R_DIM, 0, "view err %s", fmt_err(sp->err[rank], a, sizeof a));
        else if (rank > sp->n)
            w_printf(ry++, rx, R_DIM, 0, "(> %d view values)", sp->n);
    } else {
        w_put(ry++, rx, R_DIM, 0, "not factorized");
    }
    int layer_ev = sp->method != DECOMP_NONE ? l->mi[sp->method].evbmf : 0;
    if (layer_ev > 0)
        w_printf(ry++, rx, R_MARK, 0, "EVBMF rank %d", layer_ev);
    else if (s->evbmf_pending && sp->method != DECOMP_NONE) /* the view's own rank is not the layer's */
        w_printf(ry++, rx, R_DIM, 0, "EVBMF rank %s", s->utf8 ? "\u2026" : "...");
    if (sp->evbmf_rank > 0 && sp->evbmf_rank != layer_ev && !s->evbmf_pending)
        w_printf(ry++, rx, R_DIM, 0, "view EVBMF %d", sp->evbmf_rank);
    if (sp->method != DECOMP_NONE && l->mi[sp->method].break_even > 0)
        w_printf(ry++, rx, R_DIM, 0, "break-even %d", l->mi[sp->method].break_even);
    /* energy and error curves side by side */
    int py = top + bars_h + 2, ph = bottom - py - 2;
    if (ph < 3)
        return;
    int half = (COLS - 4) / 2;
    double *xs = malloc(sizeof(double) * (size_t)(sp->n + 1));
    double *ys = malloc(sizeof(double) * (size_t)(sp->n + 1));
    if (!xs || !ys) {
        free(xs);
        free(ys);
        return;
    }
    w_plot pe = {py, 10, ph, half - 12, 0, sp->n, 0, 1, 0};
    w_plot_axes(s, &pe, "rank", "cumulative energy", 2);
    for (int r = 0; r <= sp->n; ++r) {
        xs[r] = r;
        ys[r] = r == 0 ? 0 : sp->energy[r - 1];
    }
    w_plot_line(&pe, xs, ys, sp->n + 1, R_ACCENT, s->utf8 ? "\u2022" : "*");
    if (rank > 0)
        w_plot_vline(s, &pe, rank, R_MARK, NULL);
    w_plot pr = {py, half + 10, ph, COLS - half - 12, 0, sp->n, 0, 1, 0};
    w_plot_axes(s, &pr, "rank", "reconstruction error vs rank", 2);
    for (int r = 0; r <= sp->n; ++r)
        ys[r] = sp->err[r];
    w_plot_line(&pr, xs, ys, sp->n + 1, R_ACCENT, s->utf8 ? "\u2022" : "*");
    if (rank > 0)
        w_plot_vline(s, &pr, rank, R_MARK, NULL);
    free(xs);
    free(ys);
}
