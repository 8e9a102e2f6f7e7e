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

/* The short form without ".onnx" after the name: the stem still names the file, and leaves room. */
static const char *stem_form(const char *short_text, char *buf, size_t len)
{
    const char *ext = strstr(short_text, ".onnx:");
    if (!ext)
        return short_text;
    snprintf(buf, len, "%.*s%s", (int)(ext - short_text), short_text, ext + 5);
    return buf;
}

/* The two model lines in one form, so they read alike: the long one when both fit, else the short
 * one, else the short one without ".onnx", cut with an ellipsis if even that does not fit. */
static void put_lines(int y, const char *const long_text[2], const char *const short_text[2], int utf8)
{
    char cut[4 * CMP_LINE_BYTES + 4];
    char stem[2][CMP_LINE_BYTES];
    const char *form[2];
    int fits_long = 1, fits_short = 1;
    for (int i = 0; i < 2; ++i) {
        fits_long &= w_width(long_text[i]) <= COLS - 2;
        fits_short &= w_width(short_text[i]) <= COLS - 2;
    }
    for (int i = 0; i < 2; ++i)
        form[i] = fits_long ? long_text[i] : fits_short ? short_text[i]
                                                        : stem_form(short_text[i], stem[i], sizeof stem[i]);
    for (int i = 0; i < 2; ++i)
        w_put(y + i, 1, i ? R_ORIG : R_ACCENT, 0, fmt_cut(form[i], COLS - 2, utf8, cut, sizeof cut));
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
    char a[32], b[32], r[32], acc[64], ratio[32], known[64], known_short[32], line[2][CMP_LINE_BYTES],
        line_short[2][CMP_LINE_BYTES];
    fmt_count(c->a_params, a, sizeof a);
    fmt_count(c->a_macs, b, sizeof b);
    if (s->have_orig)
        fmt_pct(s->orig.accuracy, r, sizeof r);
    else
        snprintf(r, sizeof r, "...");
    known_text(c->a_known, c->a_known_from, known, sizeof known, known_short, sizeof known_short);
    snprintf(line[0], sizeof line[0], "A  %s: %s params, %s MACs, accuracy %s%s", s->model_name, a, b, r, known);
    snprintf(line_short[0], sizeof line_short[0], "A  %s: %s p, %s MACs, acc %s%s", s->model_name, a, b, r,
             known_short);
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
            snprintf(acc_short + strlen(acc_short), sizeof acc_short - strlen(acc_short), " (%s)", d);
        }
    } else {
        snprintf(acc, sizeof acc, "-");
        snprintf(acc_short, sizeof acc_short, "-");
    }
    fmt_ratio((double)c->a_params, (double)c->b_params, ratio, sizeof ratio);
    known_text(c->b_known, c->b_known_from, known, sizeof known, known_short, sizeof known_short);
    snprintf(line[1], sizeof line[1], "B  %s: %s params (%s fewer), %s MACs, accuracy %s%s", c->b_name, a, ratio, b,
             acc, known);
    snprintf(line_short[1], sizeof line_short[1], "B  %s: %s p (%s), %s MACs, acc %s%s", c->b_name, a, ratio, b,
             acc_short, known_short);
    put_lines(y0, (const char *const[]){line[0], line[1]}, (const char *const[]){line_short[0], line_short[1]},
              s->utf8);
    /* figures: counts up to "999.9M" and a header "A params" fit 8 columns, the ratio ("12.3x") 6;
     * the longest `in B` is "other shape" (11). The rest is the name's: at 80 columns 19, so
     * layer2.0.shortcut.0 reads whole. */
    int fw = w >= 100 ? 9 : 8, rw = w >= 100 ? 7 : 6;
    int name_w = w - 2 - 2 - (4 * fw + rw + 8) - 11;
    name_w = name_w > 48 ? 48 : name_w < 12 ? 12 : name_w;
    w_printf(y0 + 2, 3, R_DIM, w - 4, "%-*s %*s %*s  %*s %*s %*s  %s", name_w, "layer (A)", fw, "A params", fw,
             "A MACs", fw, "B params", fw, "B MACs", rw, "A/B", "in B");
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
        w_printf(UI_COMPARE_Y + i, 1, role, w - 2, "%s %s%*s %*s %*s  %*s %*s %*s  %s", sel ? ">" : " ", name,
                 name_w - w_width(name), "", fw, ap, fw, am, fw, bp, fw, bm, rw, rr, row->how);
    }
    int ty = UI_COMPARE_Y + rows;
    if (c->n > rows)
        w_printf(ty, 1, R_DIM, w - 2, "rows %d-%d of %d (up/down, PgUp/PgDn)", c->scroll + 1,
                 c->scroll + rows < c->n ? c->scroll + rows : c->n, c->n);
    if (c->msg[0])
        w_put(ty, w / 2, R_BAD, w - w / 2 - 1, c->msg);
}
