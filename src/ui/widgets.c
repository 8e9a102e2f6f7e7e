/* widgets.c — drawing helpers shared by the screens. */
#include "widgets.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fmt.h"

static int g_color;
static int g_utf8 = 1; /* the ellipsis w_put_fit cuts with */

void w_set_utf8(int utf8)
{
    g_utf8 = utf8;
}

void w_colors_init(int enable)
{
    g_color = enable && has_colors();
    if (!g_color)
        return;
    start_color();
    use_default_colors();
    init_pair(1, COLOR_BLACK, COLOR_CYAN);   /* title */
    init_pair(2, COLOR_BLACK, COLOR_YELLOW); /* active tab */
    init_pair(3, COLOR_WHITE, COLOR_BLUE);   /* selected row */
    init_pair(4, COLOR_CYAN, -1);            /* accent */
    init_pair(5, COLOR_MAGENTA, -1);         /* original */
    init_pair(6, COLOR_GREEN, -1);
    init_pair(7, COLOR_RED, -1);
    init_pair(8, COLOR_YELLOW, -1);          /* pending, markers */
}

attr_t w_attr(enum w_role role)
{
    if (!g_color) {
        switch (role) {
        case R_TITLE: return A_REVERSE;
        case R_TAB: return A_BOLD | A_UNDERLINE;
        case R_SEL: return A_REVERSE;
        case R_DIM: return A_DIM;
        case R_ACCENT: return A_BOLD;
        case R_BAD: return A_BOLD;
        case R_PENDING: return A_BOLD;
        case R_MARK: return A_BOLD;
        default: return A_NORMAL;
        }
    }
    switch (role) {
    case R_TITLE: return COLOR_PAIR(1);
    case R_TAB: return COLOR_PAIR(2) | A_BOLD;
    case R_SEL: return COLOR_PAIR(3) | A_BOLD;
    case R_DIM: return A_DIM;
    case R_ACCENT: return COLOR_PAIR(4) | A_BOLD;
    case R_ORIG: return COLOR_PAIR(5);
    case R_GOOD: return COLOR_PAIR(6);
    case R_BAD: return COLOR_PAIR(7) | A_BOLD;
    case R_PENDING: return COLOR_PAIR(8) | A_BOLD;
    case R_MARK: return COLOR_PAIR(8) | A_BOLD;
    default: return A_NORMAL;
    }
}

int w_width(const char *s)
{
    int n = 0;
    for (; *s; ++s)
        if (((unsigned char)*s & 0xC0) != 0x80)
            ++n;
    return n;
}

int w_put(int y, int x, enum w_role role, int maxw, const char *s)
{
    int cols = COLS, lines = LINES;
    if (y < 0 || y >= lines || x >= cols)
        return x;
    int room = cols - x;
    if (maxw > 0 && maxw < room)
        room = maxw;
    /* bytes of the first `room` cells */
    const char *p = s;
    int cells = 0;
    while (*p) {
        if (((unsigned char)*p & 0xC0) != 0x80) {
            if (cells == room)
                break;
            ++cells;
        }
        ++p;
    }
    if (x < 0)
        return x;
    attr_t a = w_attr(role);
    attron(a);
    /* the last cell of the screen scrolls on some terminals: never write there */
    if (y == lines - 1 && x + cells >= cols && cells > 0) {
        const char *q = p;
        do {
            --q;
        } while (q > s && ((unsigned char)*q & 0xC0) == 0x80);
        mvaddnstr(y, x, s, (int)(q - s));
        --cells;
    } else {
        mvaddnstr(y, x, s, (int)(p - s));
    }
    attroff(a);
    return x + cells;
}

int w_printf(int y, int x, enum w_role role, int maxw, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return w_put(y, x, role, maxw, buf);
}

void w_rput(int y, int x, int w, enum w_role role, const char *s)
{
    int n = w_width(s);
    if (n > w)
        w_put(y, x, role, w, s);
    else
        w_put(y, x + w - n, role, n, s);
}

int w_put_fit(int y, int x, enum w_role role, const char *long_text, const char *short_text)
{
    int room = COLS - x - 1;
    if (w_width(long_text) <= room)
        return w_put(y, x, role, room, long_text);
    char cut[4 * 256 + 4];
    return w_put(y, x, role, room, room > 0 ? fmt_fit(long_text, short_text, room < 256 ? room : 256, g_utf8, cut, sizeof cut) : "");
}

int w_wrap(int y, int x, int w, int max_rows, enum w_role role, const char *text)
{
    char line[1024];
    const char *p = text;
    int rows = 0;
    while (*p == ' ')
        ++p;
    while (*p && rows < max_rows) {
        p = fmt_wrap_line(p, w, line, sizeof line);
        w_put(y + rows, x, role, w, line);
        ++rows;
    }
    return y + rows;
}

void w_fill(int y, int x, int w, enum w_role role)
{
    char buf[512];
    if (w <= 0)
        return;
    if (w > (int)sizeof buf - 1)
        w = (int)sizeof buf - 1;
    memset(buf, ' ', (size_t)w);
    buf[w] = 0;
    w_put(y, x, role, w, buf);
}

void w_hline(const ui_state *s, int y, int x, int w)
{
    char buf[1600];
    size_t at = 0;
    for (int i = 0; i < w && at + 4 < sizeof buf; ++i) {
        const char *c = s->utf8 ? "\u2500" : "-";
        size_t n = strlen(c);
        memcpy(buf + at, c, n);
        at += n;
    }
    buf[at] = 0;
    w_put(y, x, R_DIM, w, buf);
}

void w_frame(const ui_state *s)
{
    char right[256], left[320], mark[32];
    int cols = COLS;
    int pending = s->cur_gen != s->gen || s->eval_progress >= 0;
    w_fill(0, 0, cols, R_TITLE);
    if (pending) {
        if (s->eval_progress >= 0)
            snprintf(mark, sizeof mark, "[eval %2.0f%%] ", s->eval_progress * 100);
        else
            snprintf(mark, sizeof mark, "[pending] ");
    } else if (s->eval_error[0]) {
        snprintf(mark, sizeof mark, "[error] ");
    } else {
        mark[0] = 0;
    }
    /* frame.c: the figures on the right as complete as leaves the model's name room */
    ui_title_parts(s, w_width(mark), left, sizeof left, right, sizeof right);
    int rw = w_width(right), mw = w_width(mark);
    int lw = cols - rw - mw - 1;
    if (lw > 0)
        w_put(0, 0, R_TITLE, lw, left);
    int x = cols - rw - mw;
    if (x < 0)
        x = 0;
    x = w_put(0, x, pending ? R_PENDING : R_TITLE, 0, right);
    w_put(0, x, pending ? R_PENDING : (s->eval_error[0] ? R_BAD : R_TITLE), 0, mark);
    /* tabs */
    move(1, 0);
    clrtoeol();
    char jobs[160], jb[176];
    jb[0] = 0;
    if (ui_jobs_text(s, jobs, sizeof jobs)) /* background work, on every screen */
        snprintf(jb, sizeof jb, "[%s]", jobs);
    int tx[SCR_COUNT], tw_[SCR_COUNT];
    char tt[SCR_COUNT][32];
    x = ui_tabs_layout(s, tx, tw_, tt); /* frame.c: what a click on row 1 finds */
    for (int i = 0; i < SCR_COUNT; ++i)
        w_put(1, tx[i], i == s->screen ? R_TAB : R_NORMAL, 0, tt[i]);
    if (jb[0]) {
        int jx = cols - w_width(jb) - 1;
        w_put(1, jx > x ? jx : x, R_PENDING, cols - (jx > x ? jx : x), jb);
    }
    /* status + keys */
    int ly = LINES;
    /* what does not fit ends in an ellipsis: a cut message must not read as the whole */
    char prompt[RS_ERR_LEN + 64], cut[4 * sizeof prompt + 4];
    int sw = cols - 2;
    if (ui_prompt_text(s, prompt, sizeof prompt))
        w_put(ly - 2, 1, R_ACCENT, 0, fmt_cut(prompt, sw, s->utf8, cut, sizeof cut));
    else if (s->msg[0])
        w_put(ly - 2, 1, s->confirm_quit ? R_BAD : R_ACCENT, 0, fmt_cut(s->msg, sw, s->utf8, cut, sizeof cut));
    else if (s->eval_error[0]) {
        snprintf(prompt, sizeof prompt, "evaluation failed: %s", s->eval_error);
        w_put(ly - 2, 1, R_BAD, 0, fmt_cut(prompt, sw, s->utf8, cut, sizeof cut));
    }
    w_fill(ly - 1, 0, cols, R_TITLE);
    char foot[512];
    ui_footer_line(s, foot, sizeof foot); /* frame.c: what a click on the footer finds */
    w_put(ly - 1, 1, R_TITLE, cols - 1, foot);
}

/* ---- plots ------------------------------------------------------------------------------- */

static double ymap(const w_plot *p, double v)
{
    if (p->logy) {
        double lo = log10(p->y0 > 0 ? p->y0 : 1e-12), hi = log10(p->y1 > 0 ? p->y1 : 1e-12);
        double lv = log10(v > 0 ? v : (p->y0 > 0 ? p->y0 : 1e-12));
        return hi > lo ? (lv - lo) / (hi - lo) : 0;
    }
    return p->y1 > p->y0 ? (v - p->y0) / (p->y1 - p->y0) : 0;
}

int w_plot_cell(const w_plot *p, double xv, double yv, int *cy, int *cx)
{
    double fx = p->x1 > p->x0 ? (xv - p->x0) / (p->x1 - p->x0) : 0;
    double fy = ymap(p, yv);
    if (fx < -1e-9 || fx > 1 + 1e-9 || fy < -1e-9 || fy > 1 + 1e-9)
        return 0;
    *cx = p->x + (int)lround(fx * (p->w - 1));
    *cy = p->y + p->h - 1 - (int)lround(fy * (p->h - 1));
    return 1;
}

void w_plot_axes(const ui_state *s, const w_plot *p, const char *xlabel, const char *ylabel, int ydec)
{
    char buf[32];
    const char *v = s->utf8 ? "\u2502" : "|";
    for (int r = 0; r < p->h; ++r)
        w_put(p->y + r, p->x - 1, R_DIM, 1, v);
    w_put(p->y + p->h, p->x - 1, R_DIM, 1, s->utf8 ? "\u2514" : "+");
    w_hline(s, p->y + p->h, p->x, p->w);
    /* y ticks: top and bottom */
    snprintf(buf, sizeof buf, "%.*f", ydec, p->y1);
    w_rput(p->y, p->x - 8, 7, R_DIM, buf);
    snprintf(buf, sizeof buf, "%.*f", ydec, p->y0);
    w_rput(p->y + p->h - 1, p->x - 8, 7, R_DIM, buf);
    if (ylabel)
        w_put(p->y - 1, p->x - 1, R_DIM, 0, ylabel);
    /* x ticks */
    snprintf(buf, sizeof buf, "%.4g", p->x0);
    w_put(p->y + p->h + 1, p->x, R_DIM, 0, buf);
    snprintf(buf, sizeof buf, "%.4g", p->x1);
    w_rput(p->y + p->h + 1, p->x + p->w - 8, 8, R_DIM, buf);
    if (xlabel)
        w_put(p->y + p->h + 1, p->x + p->w / 2 - w_width(xlabel) / 2, R_DIM, 0, xlabel);
}

void w_plot_point(const w_plot *p, double xv, double yv, enum w_role role, const char *glyph)
{
    int cy, cx;
    if (w_plot_cell(p, xv, yv, &cy, &cx))
        w_put(cy, cx, role, 1, glyph);
}

void w_plot_line(const w_plot *p, const double *xs, const double *ys, int n, enum w_role role,
                 const char *glyph)
{
    for (int i = 0; i < n; ++i) {
        w_plot_point(p, xs[i], ys[i], role, glyph);
        if (i + 1 < n) {
            /* fill the gap between consecutive points column by column */
            int y0, x0, y1, x1;
            if (!w_plot_cell(p, xs[i], ys[i], &y0, &x0) || !w_plot_cell(p, xs[i + 1], ys[i + 1], &y1, &x1))
                continue;
            for (int cx = x0 + 1; cx < x1; ++cx) {
                double t = (double)(cx - x0) / (x1 - x0);
                int cy = (int)lround(y0 + t * (y1 - y0));
                w_put(cy, cx, role, 1, glyph);
            }
        }
    }
}

static int cells_free(int y, int x, int w)
{
    if (y < 0 || y >= LINES || x < 0 || x + w > COLS)
        return 0;
    for (int i = 0; i < w; ++i)
        if ((mvinch(y, x + i) & A_CHARTEXT) != ' ')
            return 0;
    return 1;
}

void w_plot_vline(const ui_state *s, const w_plot *p, double xv, enum w_role role, const char *label)
{
    int cy, cx;
    if (!w_plot_cell(p, xv, p->logy ? p->y1 : p->y0, &cy, &cx))
        return;
    const char *g = s->utf8 ? "\u2506" : ":";
    for (int r = 0; r < p->h; ++r) {
        if ((mvinch(p->y + r, cx) & A_CHARTEXT) == ' ')
            w_put(p->y + r, cx, role, 1, g);
    }
    /* a one-letter label goes under the axis, a word above the box, so two never collide; a
     * label never overwrites what is drawn there already (the axis title): above the box then,
     * or left out */
    if (!label)
        return;
    int y = label[1] ? p->y - 1 : p->y + p->h + 1, w = w_width(label);
    if (!cells_free(y, cx, w) && !label[1])
        y = p->y - 1;
    if (cells_free(y, cx, w))
        w_put(y, cx, role, 0, label);
}
