/* scr_example.c — screen 6: the blog's worked example, convolution by hand and its low-rank
 * (separable) version, with every number computed by example.c. */
#include <math.h>
#include <stdio.h>

#include "screens.h"
#include "widgets.h"

/* Integers as integers, the rest with two decimals. */
static const char *num(double v, char *buf, size_t len)
{
    if (fabs(v - lround(v)) < 1e-9)
        snprintf(buf, len, "%.0f", v == 0 ? 0.0 : v);
    else
        snprintf(buf, len, "%.2f", v);
    return buf;
}

static void matrix(const ui_state *s, int y, int x, int rows, int cols, const double *m, int stride,
                   int cw, int hr, int hc, int hh, int hw, int edit_which)
{
    char b[32];
    const ui_edit *ed = &s->edit;
    for (int r = 0; r < rows; ++r) {
        w_put(y + r, x, R_DIM, 1, "[");
        for (int c = 0; c < cols; ++c) {
            enum w_role role = R_NORMAL;
            if (r >= hr && r < hr + hh && c >= hc && c < hc + hw)
                role = R_ACCENT;
            if (ed->active && ed->which == edit_which && ed->r == r && ed->c == c)
                role = R_SEL;
            char cellbuf[32];
            snprintf(cellbuf, sizeof cellbuf, "%*s", cw, num(m[r * stride + c], b, sizeof b));
            w_put(y + r, x + 1 + c * cw, role, cw, cellbuf);
        }
        w_put(y + r, x + 1 + cols * cw, R_DIM, 1, "]");
    }
}

void scr_example(const ui_state *s, const ui_spec *sp)
{
    (void)sp;
    const ex_state *ex = &s->ex;
    char a[32], b[32], c[32];
    if (!ex->ok) {
        w_put(3, 1, R_BAD, 0, "the SVD of this kernel failed");
        return;
    }
    int wr = ex->pos / ex->out_w, wc = ex->pos % ex->out_w;
    char t1[160], t2[160];
    snprintf(t1, sizeof t1, "Convolution by hand: a 3x3 kernel slides over a %dx%d input (stride %d, no padding), then its SVD.",
             ex->in_h, ex->in_w, ex->stride);
    snprintf(t2, sizeof t2, "By hand: a 3x3 kernel over a %dx%d input, stride %d, no padding, then its SVD",
             ex->in_h, ex->in_w, ex->stride);
    w_put_fit(2, 1, R_NORMAL, t1, t2);
    /* column A: X and the two output maps */
    w_printf(3, 1, R_DIM, 0, "input X (%dx%d)", ex->in_h, ex->in_w);
    matrix(s, 4, 1, ex->in_h, ex->in_w, &ex->x[0][0], EX_MAX_IN, 4, ex->win_r, ex->win_c, EX_K, EX_K, 0);
    int oy = 4 + ex->in_h + 1;
    w_printf(oy, 1, R_DIM, 0, "output, K");
    w_printf(oy, 16, R_DIM, 0, "output, K%d", ex->rank);
    matrix(s, oy + 1, 1, ex->out_h, ex->out_w, &ex->out_full[0][0], EX_MAX_OUT, 4, wr, wc, 1, 1, -1);
    matrix(s, oy + 1, 16, ex->out_h, ex->out_w, &ex->out_low[0][0], EX_MAX_OUT, 4, wr, wc, 1, 1, -1);
    /* column B: K and K_r */
    int bx = 32;
    w_put(3, bx, R_DIM, 0, "kernel K");
    matrix(s, 4, bx, EX_K, EX_K, &ex->k[0][0], EX_K, 5, -1, -1, 0, 0, 1);
    w_printf(8, bx, R_DIM, 0, "rank-%d kernel K%d", ex->rank, ex->rank);
    matrix(s, 9, bx, EX_K, EX_K, &ex->k_low[0][0], EX_K, 5, -1, -1, 0, 0, -1);
    /* column C: products at the window, and the two-step separable computation */
    int cx = 52;
    w_printf(3, cx, R_DIM, 0, "step %d/%d: window at (%d,%d)", ex->pos + 1, ex->n_pos, ex->win_r, ex->win_c);
    for (int r = 0; r < EX_K; ++r) {
        int x = cx;
        for (int q = 0; q < EX_K; ++q) {
            char t[80];
            snprintf(t, sizeof t, "%s*%s", num(ex->k[r][q], a, sizeof a), num(ex->x[ex->win_r + r][ex->win_c + q], b, sizeof b));
            w_printf(4 + r, x, R_NORMAL, 0, "%-7s", t);
            x += 8;
        }
    }
    w_printf(7, cx, R_ACCENT, 0, "sum = %s  (9 multiplies)", num(ex->win_full, a, sizeof a));
    int y = 8;
    for (int k = 0; k < ex->rank && y < 14; ++k) {
        w_printf(y++, cx, R_NORMAL, 0, "cols.u%d = [%s %s %s]", k + 1, num(ex->col_pass[k][0], a, sizeof a),
                 num(ex->col_pass[k][1], b, sizeof b), num(ex->col_pass[k][2], c, sizeof c));
        w_printf(y++, cx, R_NORMAL, 0, " then .s%dv%d = %s", k + 1, k + 1, num(ex->row_pass[k], a, sizeof a));
    }
    /* SVD */
    y = oy + 1 + ex->out_h + 1;
    if (y < 15)
        y = 15;
    w_printf(y++, 1, R_DIM, 0, "SVD  K = s1 u1 v1' + s2 u2 v2' + s3 u3 v3'");
    /* one layout for the three rows: the spaced one when every row fits, else the compact one */
    int compact = COLS < 88;
    for (int k = 0; k < EX_K; ++k) {
        char u[3][16], v[3][16];
        for (int i = 0; i < EX_K; ++i) {
            snprintf(u[i], sizeof u[i], "%6.3f", ex->u[k][i] == 0 ? 0.0 : ex->u[k][i]);
            snprintf(v[i], sizeof v[i], "%6.3f", ex->v[k][i] == 0 ? 0.0 : ex->v[k][i]);
        }
        char wide[160], narrow[160];
        snprintf(wide, sizeof wide, " s%d = %.3f   u%d = [%s %s %s]   v%d = [%s %s %s]%s", k + 1, ex->s[k], k + 1, u[0],
                 u[1], u[2], k + 1, v[0], v[1], v[2], k < ex->rank ? "   (kept)" : "");
        snprintf(narrow, sizeof narrow, " s%d=%.3f  u%d=[%s %s %s]  v%d=[%s %s %s]%s", k + 1, ex->s[k], k + 1, u[0], u[1],
                 u[2], k + 1, v[0], v[1], v[2], k < ex->rank ? " kept" : "");
        w_put(y++, 1, k < ex->rank ? R_ACCENT : R_DIM, COLS - 2, compact ? narrow : wide);
    }
    /* comparison */
    char at[256], whole[256];
    snprintf(at, sizeof at, "at (%d,%d): original kernel: %s   rank-%d approximation: %s   (%d vs %d multiplies, %d amortised)",
             wr, wc, num(ex->win_full, a, sizeof a), ex->rank, num(ex->win_low, b, sizeof b), EX_K * EX_K,
             ex->rank * (EX_K * EX_K + EX_K), ex_mults_amortised(ex));
    y = w_wrap(y, 1, COLS - 2, LINES - 2 - y, R_NORMAL, at);
    snprintf(whole, sizeof whole, "whole %dx%d output: %ld multiplies direct, %ld separable (column pass shared as the window slides)",
             ex->out_h, ex->out_w, ex->mults_direct, ex->mults_low);
    char whole_short[128];
    snprintf(whole_short, sizeof whole_short, "whole %dx%d output: %ld multiplies direct, %ld separable", ex->out_h,
             ex->out_w, ex->mults_direct, ex->mults_low);
    if (y == LINES - 3) /* one row left: the figures without the explanation */
        w_put_fit(y++, 1, R_DIM, whole, whole_short);
    else if (y < LINES - 2)
        y = w_wrap(y, 1, COLS - 2, LINES - 2 - y, R_DIM, whole);
}
