/* scr_compare.c — two models side by side (`--compare`, `c` in the browser), over the body. */
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "screens.h"
#include "widgets.h"

static void counts(int64_t v, char *buf, size_t len)
{
    if (v < 0)
        snprintf(buf, len, "-");
    else
        fmt_count(v, buf, len);
}

/* "; full test set 70.9% (zoo)" when the accuracy is known without evaluating, "" otherwise. */
static void known_text(double acc, const char *from, char *buf, size_t len, char *short_buf, size_t short_len)
{
    char p[16];
    buf[0] = short_buf[0] = 0;
    if (acc < 0)
        return;
    fmt_pct(acc, p, sizeof p);
    snprintf(buf, len, "; full test set %s (%s)", p, from);
    snprintf(short_buf, short_len, ", %s %s", from[0] == 'z' ? "zoo" : "test", p);
}

/* A model line: its name (up to the loader's limit) and figures fit; the cut copy holds it at 4 UTF-8
 * bytes per column. */
enum { CMP_LINE_BYTES = 640 };

/* The long form when it fits, else the short one, cut with an ellipsis if even that does not. */
static void put_line(int y, enum w_role role, const char *long_text, const char *short_text, int utf8)
{
    char cut[4 * CMP_LINE_BYTES + 4];
    char shorter[CMP_LINE_BYTES];
    const char *ext = strstr(short_text, ".onnx:");
    if (ext) /* the file's stem still names it, and leaves room for the figures */
        snprintf(shorter, sizeof shorter, "%.*s%s", (int)(ext - short_text), short_text, ext + 5);
    if (w_width(long_text) <= COLS - 2)
        w_put(y, 1, role, 0, long_text);
    else if (w_width(short_text) <= COLS - 2 || !ext)
        w_put(y, 1, role, 0, fmt_cut(short_text, COLS - 2, utf8, cut, sizeof cut));
    else
        w_put(y, 1, role, 0, fmt_cut(shorter, COLS - 2, utf8, cut, sizeof cut));
}

/* A name too wide abbreviated (layer2.0.shortcut.0 -> l2.0.shortcut.0) when that fits and reads
 * like no other row's. */
static int abbreviated(const ui_compare_state *c, const char *compact, int width, char *out, size_t len)
{
    if ((int)strlen(compact) <= width || !ui_abbrev_name(compact, width, out, len))
        return 0;
    for (int j = 0; j < c->n; ++j) {
        char other[96], ab[128];
        ui_compact_name(c->rows[j].name, other, sizeof other);
        if (strcmp(other, compact) && ui_abbrev_name(other, width, ab, sizeof ab) && !strcmp(ab, out))
            return 0;
    }
    return 1;
}

void scr_compare(const ui_state *s)
{
    const ui_compare_state *c = &s->cmp;
    int y0 = 2, h = LINES - 4, w = COLS;
    for (int r = 0; r < h; ++r)
        w_fill(y0 + r, 0, w, R_NORMAL);
    char a[32], b[32], r[32], acc[64], ratio[32], known[64], known_short[32], line[CMP_LINE_BYTES],
        line_short[CMP_LINE_BYTES];
    fmt_count(c->a_params, a, sizeof a);
    fmt_count(c->a_macs, b, sizeof b);
    if (s->have_orig)
        fmt_pct(s->orig.accuracy, r, sizeof r);
    else
        snprintf(r, sizeof r, "...");
    known_text(c->a_known, c->a_known_from, known, sizeof known, known_short, sizeof known_short);
    snprintf(line, sizeof line, "A  %s: %s params, %s MACs, accuracy %s%s", s->model_name, a, b, r, known);
    snprintf(line_short, sizeof line_short, "A  %s: %s p, %s MACs, acc %s%s", s->model_name, a, b, r, known_short);
    put_line(y0, R_ACCENT, line, line_short, s->utf8);
    fmt_count(c->b_params, a, sizeof a);
    fmt_count(c->b_macs, b, sizeof b);
    char acc_short[64];
    if (c->b_running) {
        snprintf(acc, sizeof acc, "... (evaluating)");
        snprintf(acc_short, sizeof acc_short, "...");
    } else if (c->b_acc >= 0) {
        char d[16];
        fmt_pct(c->b_acc, acc, sizeof acc);
        snprintf(acc_short, sizeof acc_short, "%s", acc);
        if (s->have_orig) {
            fmt_pts_between(s->orig.accuracy, c->b_acc, d, sizeof d);
            snprintf(acc + strlen(acc), sizeof acc - strlen(acc), " (%s pt)", d);
            snprintf(acc_short + strlen(acc_short), sizeof acc_short - strlen(acc_short), " %s", d);
        }
    } else {
        snprintf(acc, sizeof acc, "-");
        snprintf(acc_short, sizeof acc_short, "-");
    }
    fmt_ratio((double)c->a_params, (double)c->b_params, ratio, sizeof ratio);
    known_text(c->b_known, c->b_known_from, known, sizeof known, known_short, sizeof known_short);
    snprintf(line, sizeof line, "B  %s: %s params (%s fewer), %s MACs, accuracy %s%s", c->b_name, a, ratio, b, acc,
             known);
    snprintf(line_short, sizeof line_short, "B  %s: %s p (%s), %s MACs, acc %s%s", c->b_name, a, ratio, b, acc_short,
             known_short);
    put_line(y0 + 1, R_ORIG, line, line_short, s->utf8);
    int name_w = w - 2 - 2 - 62; /* the figures take 51, the longest `in B` ("other shape") 11 */
    name_w = name_w > 48 ? 48 : name_w < 12 ? 12 : name_w;
    w_printf(y0 + 2, 3, R_DIM, w - 4, "%-*s %9s %9s  %9s %9s %7s  %s", name_w, "layer (A)", "A params", "A MACs",
             "B params", "B MACs", "params", "in B");
    int rows = ui_compare_rows(s);
    for (int i = 0; i < rows && c->scroll + i < c->n; ++i) {
        const ui_cmp_row *row = &c->rows[c->scroll + i];
        char ap[16], am[16], bp[16], bm[16], rr[16], name[128];
        counts(row->a_params, ap, sizeof ap);
        counts(row->a_macs, am, sizeof am);
        counts(row->b_params, bp, sizeof bp);
        counts(row->b_macs, bm, sizeof bm);
        if (row->a_params > 0 && row->b_params > 0)
            fmt_ratio((double)row->a_params, (double)row->b_params, rr, sizeof rr);
        else
            snprintf(rr, sizeof rr, "-");
        char compact[96]; /* "/features/features.3/Conv" reads "features.3/Conv" */
        ui_compact_name(row->name, compact, sizeof compact);
        if (!abbreviated(c, compact, name_w, name, sizeof name)) /* else both ends, the middle cut */
            fmt_cut_middle(compact, name_w, s->utf8, name, sizeof name);
        int sel = c->scroll + i == c->sel;
        int differs = row->a_params != row->b_params || row->a_macs != row->b_macs;
        enum w_role role = sel ? R_SEL : differs ? R_ACCENT : R_NORMAL;
        if (sel)
            w_fill(UI_COMPARE_Y + i, 0, w, R_SEL);
        w_printf(UI_COMPARE_Y + i, 1, role, w - 2, "%s %s%*s %9s %9s  %9s %9s %7s  %s", sel ? ">" : " ", name,
                 name_w - w_width(name), "", ap, am, bp, bm, rr, row->how);
    }
    int ty = UI_COMPARE_Y + rows;
    if (c->n > rows)
        w_printf(ty, 1, R_DIM, w - 2, "rows %d-%d of %d (up/down, PgUp/PgDn)", c->scroll + 1,
                 c->scroll + rows < c->n ? c->scroll + rows : c->n, c->n);
    if (c->msg[0])
        w_put(ty, w / 2, R_BAD, w - w / 2 - 1, c->msg);
}
