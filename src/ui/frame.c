/* frame.c — the frame's geometry, shared by drawing (widgets.c) and the mouse (layout.c), so a
 * click lands on what is drawn: the tab labels of row 1 and the key hints of the footer. Pure. */
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "state.h"

static int cells(const char *s)
{
    int n = 0;
    for (; *s; ++s)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

int ui_tabs_layout(const ui_state *s, int x[SCR_COUNT], int w[SCR_COUNT], char text[SCR_COUNT][32])
{
    char jobs[160];
    int extra = ui_jobs_text(s, jobs, sizeof jobs) ? cells(jobs) + 4 : 0;
    int names_w = 0;
    for (int i = 0; i < SCR_COUNT; ++i)
        names_w += cells(ui_screen_name(i));
    /* as wide as fits: " 1 Layers " tabs, then " 1 Layers", then names only on the current tab */
    int style = 1 + SCR_COUNT * 5 + names_w + extra <= s->cols   ? 0
                : 1 + SCR_COUNT * 4 + names_w + extra <= s->cols ? 1
                                                                 : 2;
    int at = 1;
    for (int i = 0; i < SCR_COUNT; ++i) {
        if (style == 2 && i != s->screen)
            snprintf(text[i], 32, " %d ", i + 1);
        else
            snprintf(text[i], 32, style == 0 ? " %d %s " : " %d %s", i + 1, ui_screen_name(i));
        x[i] = at;
        w[i] = cells(text[i]);
        at += w[i] + 1;
    }
    return at;
}

int ui_tab_at(const ui_state *s, int x)
{
    int xs[SCR_COUNT], ws[SCR_COUNT];
    char text[SCR_COUNT][32];
    ui_tabs_layout(s, xs, ws, text);
    for (int i = 0; i < SCR_COUNT; ++i)
        if (x >= xs[i] && x < xs[i] + ws[i])
            return i;
    return -1;
}

const char *ui_footer_keys(const ui_state *s)
{
    if (s->browse.active && s->browse.opening)
        return "Esc cancels the opening  Enter open another  up/down select  d directory  w save  ? help  q quit";
    if (s->browse.active) /* at 80 columns the last hints before help give way first */
        return "Enter open  Esc close  c compare  d directory  w save  up/down select  ? help  q quit";
    if (s->cmp.active)
        return "up/down PgUp/PgDn layers  Esc back to the screen  o another model  ? help  q quit";
    if (s->screen == SCR_EXAMPLE && s->edit.active)
        return "type a number, Enter sets, arrows move, Tab X/K, Esc ends editing";
    return ui_screens[s->screen >= 0 && s->screen < SCR_COUNT ? s->screen : 0].footer;
}

void ui_footer_line(const ui_state *s, char *out, size_t len)
{
    const char *keys = ui_footer_keys(s);
    /* the way to help and out stays visible however narrow: the screen's keys give way */
    static const char tail[] = "? help  q quit";
    size_t kl = strlen(keys), tl = sizeof tail - 1;
    int cols = s->cols, tw = (int)tl;
    if (!(kl >= tl && !strcmp(keys + kl - tl, tail) && cells(keys) + 2 > cols)) {
        snprintf(out, len, "%s", keys);
        return;
    }
    char body[512];
    snprintf(body, sizeof body, "%.*s", (int)(kl - tl), keys);
    /* whole key hints only: cut at the last two-space gap that fits */
    int room = cols - tw - 4;
    while (cells(body) > room) {
        char *gap = strstr(body, "  "), *last = NULL;
        while (gap && cells(body) - cells(gap) <= room) {
            last = gap;
            gap = strstr(gap + 2, "  ");
        }
        if (!last) {
            body[room > 0 ? room : 0] = 0;
            break;
        }
        *last = 0;
    }
    /* the tail right-aligned: it starts at column cols - tw - 1, the line at column 1 */
    int pad = cols - tw - 2 - cells(body);
    snprintf(out, len, "%s%*s%s", body, pad > 0 ? pad : 1, "", tail);
}

/* The key a footer token stands for: "?" '?', "m" 'm', "<-/->" left or right by the half clicked. */
static int token_key(const char *tok, int n, int at)
{
    static const struct { const char *name; int key; } named[] = {
        {"<-", UI_K_LEFT}, {"->", UI_K_RIGHT}, {"up", UI_K_UP}, {"down", UI_K_DOWN}, {"PgUp", UI_K_PGUP},
        {"PgDn", UI_K_PGDN}, {"Home", UI_K_HOME}, {"End", UI_K_END}, {"Tab", UI_K_TAB}, {"Enter", UI_K_ENTER},
        {"Esc", UI_K_ESC}, {"1-7", UI_K_TAB}, {"+-8", UI_K_PGUP},
    };
    /* "a/b": the part clicked ("+/-" and "<-/->" split at the slash between the two) */
    const char *slash = NULL;
    for (int i = 1; i + 1 < n; ++i)
        if (tok[i] == '/') {
            slash = tok + i;
            break;
        }
    if (slash) {
        int split = (int)(slash - tok);
        if (at < split)
            n = split;
        else {
            tok = slash + 1;
            n = n - split - 1;
        }
    }
    if (n == 1)
        return (unsigned char)tok[0];
    for (size_t i = 0; i < sizeof named / sizeof named[0]; ++i)
        if ((int)strlen(named[i].name) == n && !strncmp(named[i].name, tok, (size_t)n))
            return named[i].key;
    return 0;
}

int ui_footer_key_at(const ui_state *s, int x)
{
    char line[512];
    ui_footer_line(s, line, sizeof line);
    int i = x - 1, n = (int)strlen(line); /* the line is drawn from column 1 */
    if (i < 0 || i >= n)
        return 0;
    if (line[i] == ' ' && ((i > 0 && line[i - 1] == ' ') || (i + 1 < n && line[i + 1] == ' ')))
        return 0; /* the gap between two hints */
    /* the hint under x: bounded by two-space gaps; its key is its first word */
    int a = i, b = i;
    while (a > 0 && !(line[a - 1] == ' ' && a >= 2 && line[a - 2] == ' '))
        --a;
    while (b < n && !(line[b] == ' ' && b + 1 < n && line[b + 1] == ' '))
        ++b;
    int t = a;
    while (t < b && line[t] != ' ')
        ++t;
    if ((s->screen == SCR_EXAMPLE && s->edit.active) || s->browse.active)
        return 0; /* a sentence, not keys; the browser takes no clicks */
    return token_key(line + a, t - a, i < t ? i - a : 0);
}

const eval_result *ui_orig_for_cur(const ui_state *s)
{
    return s->have_cur && s->cur_est_images > 0 && s->have_orig_est ? &s->orig_est : &s->orig;
}

/* The title's right part at a verbosity: 0 everything, 1 the current figures only (an estimate
 * still says so), 2 without the estimate's image count (the "~" still marks it). */
static void title_right(const ui_state *s, int level, char *out, size_t len)
{
    char a[32], b[32], c[32], p[32], q[32], r[16];
    size_t at = 0;
    /* an estimate stays marked as one while a newer change is evaluated too */
    int est = s->have_orig && s->have_cur && s->cur_est_images > 0;
    /* the whole set's figure it estimates: the original's, moved by the change measured on the
     * estimate's images (the original on those too), not the subset's own accuracy */
    double now = s->have_cur ? s->cur.accuracy : 0;
    if (est && s->have_orig_est) {
        now = s->orig.accuracy + (s->cur.accuracy - s->orig_est.accuracy);
        now = now < 0 ? 0 : now > 1 ? 1 : now;
    }
    out[0] = 0;
    fmt_pct(s->have_orig ? s->orig.accuracy : 0, a, sizeof a);
    fmt_pct(now, b, sizeof b);
    fmt_pts_between(s->have_cur ? s->orig.accuracy : 0, now, c, sizeof c);
    if (!s->have_orig)
        at += (size_t)snprintf(out, len, "  acc ...");
    else if (!s->have_cur)
        at += (size_t)snprintf(out, len, "  acc %s", a);
    else if (level == 0 && est)
        at += (size_t)snprintf(out, len, "  acc %s -> ~%s (%s, est. %d img)", a, b, c, s->cur_est_images);
    else if (level == 0)
        at += (size_t)snprintf(out, len, "  acc %s -> %s (%s)", a, b, c);
    else if (level == 1 && est)
        at += (size_t)snprintf(out, len, "  acc ~%s (%s, est. %d img)", b, c, s->cur_est_images);
    else
        at += (size_t)snprintf(out, len, "  acc %s%s (%s)", est ? "~" : "", b, c);
    fmt_count(s->params_total, p, sizeof p);
    fmt_count(s->params_total_after, q, sizeof q);
    fmt_ratio((double)s->params_total, (double)s->params_total_after, r, sizeof r);
    if (at < len && level == 0)
        snprintf(out + at, len - at, "  params %s -> %s %s ", p, q, r);
    else if (at < len)
        snprintf(out + at, len - at, "  params %s %s ", q, r);
}

void ui_title_parts(const ui_state *s, int mark_cells, char *left, size_t left_len, char *right, size_t right_len)
{
    /* the model's name keeps this much however narrow: the figures are about it */
    size_t ml = strlen(s->model_name);
    int bare = (int)ml - (ml > 5 && !strcmp(s->model_name + ml - 5, ".onnx") ? 5 : 0);
    int keep = 1 + (bare < 16 ? bare : 16);
    int level = 0;
    for (; level < 2; ++level) {
        title_right(s, level, right, right_len);
        if (s->cols - cells(right) - mark_cells - 1 >= keep)
            break;
    }
    title_right(s, level, right, right_len);
    int lw = s->cols - cells(right) - mark_cells - 1;
    /* the longest left part that fits */
    snprintf(left, left_len, " rankscope  %s  %s", s->model_name, s->data_name);
    if (cells(left) > lw)
        snprintf(left, left_len, " %s  %s", s->model_name, s->data_name);
    if (cells(left) > lw)
        snprintf(left, left_len, " %s", s->model_name);
    if (cells(left) > lw)
        snprintf(left, left_len, " %.*s", bare, s->model_name);
    if (cells(left) > lw) { /* still too long: cut where it shows, never bare */
        char cut[4 * 160 + 4], whole[160];
        snprintf(whole, sizeof whole, "%s", left);
        snprintf(left, left_len, "%s", lw > 0 ? fmt_cut(whole, lw < 160 ? lw : 160, s->utf8, cut, sizeof cut) : "");
    }
}
