/* status.c — the status lines of the Trade-offs curve (`c` / `C`) and of the fine-tuning (`F`)
 * fitted to a width: the long form when it fits, else a shorter one, else wrapped at spaces over
 * the lines given, so a reason (which has no short form) is read whole rather than cut; the
 * Search result's summary and the Layers screen's chain costs likewise. Pure: no curses, no I/O. */
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "state.h"

static int cells(const char *t)
{
    int n = 0;
    for (; *t; ++t)
        n += ((unsigned char)*t & 0xC0) != 0x80;
    return n;
}

/* fmt_cut needs 4 * width + 4 bytes */
static int clamp_width(int width)
{
    int most = (UI_STATUS_LINE - 4) / 4;
    return width > most ? most : width < 1 ? 1 : width;
}

/* text wrapped at spaces into out[0..max-1]; the last line, when text remains, cut with an
 * ellipsis so it never passes for the whole */
static int wrap(const char *text, int width, int utf8, char (*out)[UI_STATUS_LINE], int max)
{
    int n = 0;
    const char *p = text;
    while (*p == ' ')
        ++p;
    while (*p && n < max) {
        if (n == max - 1 && cells(p) > width) {
            fmt_cut(p, width, utf8, out[n++], UI_STATUS_LINE);
            break;
        }
        p = fmt_wrap_line(p, width, out[n++], UI_STATUS_LINE);
    }
    return n;
}

int ui_curve_status(const ui_state *s, int width, char (*out)[UI_STATUS_LINE], int max)
{
    const ui_curve_state *c = &s->curve;
    char status[sizeof c->msg + 16], shorter[sizeof c->msg_short + 16];
    width = clamp_width(width);
    if (max < 1)
        return 0;
    snprintf(status, sizeof status, "%s%s", c->fit_outputs ? "fit outputs: " : "", c->msg);
    snprintf(shorter, sizeof shorter, "%s%s", c->fit_outputs ? "fit out: " : "", c->msg_short);
    if (cells(shorter) > width) /* the state of the curve before how it was fitted */
        snprintf(shorter, sizeof shorter, "%s", c->msg_short);
    if (cells(status) <= width) {
        snprintf(out[0], UI_STATUS_LINE, "%s", status);
        return 1;
    }
    if (c->msg_short[0]) {
        fmt_cut(shorter, width, s->utf8, out[0], UI_STATUS_LINE);
        return 1;
    }
    return wrap(status, width, s->utf8, out, max);
}

int ui_ft_status(const ui_state *s, int width, char (*out)[UI_STATUS_LINE], int max)
{
    const ui_ft_state *f = &s->ft;
    char all[256], last[48], a[32], b[32], head[512], one[512 + sizeof f->msg + 8];
    width = clamp_width(width);
    if (max < 1)
        return 0;
    size_t at = 0;
    all[0] = 0;
    for (int i = 0; i < f->n && at < sizeof all - 16; ++i) {
        int n = snprintf(all + at, sizeof all - at, "%s%d:%s", i ? " " : "", i + 1, fmt_pct(f->val[i], a, sizeof a));
        if (n < 0)
            break;
        at += (size_t)n;
    }
    if (f->n > 0)
        snprintf(last, sizeof last, "%d:%s", f->n, fmt_pct(f->val[f->n - 1], a, sizeof a));
    else
        snprintf(last, sizeof last, "-");
    if (f->running) {
        snprintf(one, sizeof one, "fine-tune %d/%d epochs %2.0f%%  val %s  (x stops)", f->n, f->epochs,
                 f->progress * 100, at ? all : "-");
        snprintf(head, sizeof head, "fine-tune %d/%d %2.0f%%  val %s  x stops", f->n, f->epochs, f->progress * 100, last);
        fmt_fit(one, head, width, s->utf8, out[0], UI_STATUS_LINE);
        return 1;
    }
    if (!f->have_model)
        return wrap(f->msg, width, s->utf8, out, max);
    fmt_pct(f->test_acc, b, sizeof b);
    snprintf(head, sizeof head, "fine-tuned: val %s  test %s", all, b);
    if (cells(head) > width) /* the last epoch's validation only */
        snprintf(head, sizeof head, "fine-tuned: val %s  test %s", last, b);
    snprintf(one, sizeof one, "%s  %s", head, f->msg);
    if (cells(one) <= width || max == 1 || !f->msg[0]) {
        fmt_cut(f->msg[0] ? one : head, width, s->utf8, out[0], UI_STATUS_LINE);
        return 1;
    }
    fmt_cut(head, width, s->utf8, out[0], UI_STATUS_LINE);
    return 1 + wrap(f->msg, width, s->utf8, out + 1, max - 1);
}

int ui_search_summary(const ui_state *s, int width, char (*out)[UI_STATUS_LINE], int max)
{
    const ui_search_state *r = &s->search;
    char a[32], b[32], c[32], d[32], e[32], pr[16], mr[16], line[UI_STATUS_LINE];
    width = clamp_width(width);
    if (max < 1)
        return 0;
    fmt_pct(r->base, a, sizeof a);
    fmt_pct(r->acc, b, sizeof b);
    fmt_pts_between(r->base, r->acc, c, sizeof c);
    fmt_count(s->params_total, d, sizeof d);
    fmt_count(r->params, e, sizeof e);
    fmt_ratio((double)s->params_total, (double)r->params, pr, sizeof pr);
    fmt_ratio((double)s->macs_total, (double)r->macs, mr, sizeof mr);
    const char *w = r->within ? "within" : "NOT within";
    /* every figure but the params before and after, rather than the MACs cut off */
    snprintf(line, sizeof line,
             "validation accuracy %s -> %s (%s, %s)   params %s -> %s %s   MACs %s fewer", a, b, c,
             w, d, e, pr, mr);
    if (cells(line) > width)
        snprintf(line, sizeof line,
                 "validation %s -> %s (%s, %s)  params %s -> %s %s  MACs %s fewer", a, b, c, w, d,
                 e, pr, mr);
    if (cells(line) > width)
        snprintf(line, sizeof line, "val. acc %s -> %s (%s, %s)  params %s fewer  MACs %s fewer", a,
                 b, c, w, pr, mr);
    fmt_cut(line, width, s->utf8, out[0], UI_STATUS_LINE);
    if (max < 2)
        return 1;
    /* the plan: on up to two lines, else counted (a applies it and the Layers screen lists it) */
    char plan[sizeof line];
    size_t at = 0;
    int n = 0;
    plan[0] = 0;
    for (int k = 0; k < s->n_layers; ++k) {
        const ui_layer *l = &s->layers[k];
        if (!l->has_searched || l->searched.method == DECOMP_NONE)
            continue;
        ++n;
        int m = snprintf(plan + at, sizeof plan - at, "%s%s %s %d", at ? ", " : "", l->name,
                         decomp_method_name(l->searched.method), l->searched.rank);
        if (m < 0 || (size_t)m >= sizeof plan - at)
            break;
        at += (size_t)m;
    }
    snprintf(line, sizeof line, "plan: %s   (a applies it to the sliders)",
             n ? plan : "(no layer factorized)");
    int room = max - 1 < 2 ? max - 1 : 2;
    char trial[3][UI_STATUS_LINE];
    int used = wrap(line, width, s->utf8, trial, room + 1);
    if (used > room) {
        snprintf(line, sizeof line,
                 "plan: %d of %d layers factorized   (a applies it to the sliders)", n,
                 s->n_layers);
        used = wrap(line, width, s->utf8, trial, room);
    }
    for (int i = 0; i < used; ++i)
        memcpy(out[1 + i], trial[i], UI_STATUS_LINE);
    return 1 + used;
}

int ui_chain_costs(const ui_layer *l, int width, char (*cost)[UI_CHAIN_COST], int *colw)
{
    char a[32], b[32];
    int total = 0;
    for (int pass = 0; pass < 2; ++pass) {
        total = 3; /* "as " */
        for (int i = 0; i < l->n_steps; ++i) {
            /* narrow: MACs named once, in the first column */
            snprintf(cost[i], UI_CHAIN_COST, "%s p, %s%s", fmt_count(l->step_params[i], a, sizeof a),
                     fmt_count(l->step_macs[i], b, sizeof b), pass == 0 || i == 0 ? " MACs" : "");
            int tw = cells(l->step_text[i]), cw = cells(cost[i]);
            colw[i] = tw > cw ? tw : cw;
            total += colw[i] + (i + 1 < l->n_steps ? 3 : 0);
        }
        if (total <= width)
            break;
    }
    return total;
}
