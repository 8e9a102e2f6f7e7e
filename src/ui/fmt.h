/* fmt.h — number and chart formatting for the explorer (pure: no curses, no globals).
 *
 * Every function writes a NUL-terminated string into buf (len bytes, 16 is always enough for
 * the numeric ones) and returns buf, so calls nest inside printf arguments.
 */
#ifndef RANKSCOPE_UI_FMT_H
#define RANKSCOPE_UI_FMT_H

#include <stddef.h>
#include <stdint.h>

/* 850, 62.0K, 1.3M, 2.1G (the CLI's convention; below 1000 shown exactly). */
char *fmt_count(int64_t v, char *buf, size_t len);
/* Exact with thousands separators: "10,000". */
char *fmt_count_exact(int64_t v, char *buf, size_t len);
/* Compression ratio before/after: "1.8x", "12x" (>= 10 without decimals), "-" when after <= 0. */
char *fmt_ratio(double before, double after, char *buf, size_t len);
/* Fraction 0..1 as a percentage with one decimal: "72.3%"; "-" for a negative (unknown) value. */
char *fmt_pct(double frac, char *buf, size_t len);
/* The change from `from` to `to` (fractions) in points, as the difference of the two figures
 * fmt_pct prints: "92.0% -> 92.0%" never reads "+0.1" beside them. */
char *fmt_pts_between(double from, double to, char *buf, size_t len);
/* Signed difference in percentage points: "+0.4", "-1.2", "0.0". */
char *fmt_pts(double delta_frac, char *buf, size_t len);
/* A small non-negative error: "0.21", "0.012", "1.3e-07", "0" ; "-" when negative. */
char *fmt_err(double v, char *buf, size_t len);

/* text in at most width cells (UTF-8, one cell per character): itself when it fits, else cut
 * with an ellipsis as its last cell ("…", or "~" when not utf8), so a cut never passes for the
 * whole. buf needs 4 * width + 4 bytes. */
char *fmt_cut(const char *text, int width, int utf8, char *buf, size_t len);
/* long_text when it fits in width cells, else short_text (cut by fmt_cut if it does not fit
 * either): a line with an optional tail drops the tail rather than ending mid-word. */
char *fmt_fit(const char *long_text, const char *short_text, int width, int utf8, char *buf, size_t len);
/* The first line of text wrapped at spaces in width cells (a word longer than the line is cut)
 * into buf; returns the rest of the text, "" when it all fitted. */
const char *fmt_wrap_line(const char *text, int width, char *buf, size_t len);
/* A name in at most width columns keeping both ends ("layer2…tcut.0"), so names that differ near
 * the start (layer2.0.shortcut.0, layer3.0.shortcut.0) still read differently; fmt_cut_start keeps
 * the end only ("…shortcut.0"), as it did for names with non-ASCII bytes. */
char *fmt_cut_middle(const char *text, int width, int utf8, char *buf, size_t len);
char *fmt_cut_start(const char *text, int width, int utf8, char *buf, size_t len);

/* Horizontal bar of `width` cells for value/max. utf8: eighth-blocks (U+2589..), else '#'.
 * Returns buf. buf needs width*3+1 bytes. */
char *fmt_bar(double value, double max, int width, int utf8, char *buf, size_t len);

/* A slider: width cells, `rank` of 1..max shown as filled up to the knob.
 * ASCII "====|-----"; UTF-8 "━━━━●─────". rank <= 0 draws an inactive "··········" / "----------".
 * buf needs width*3+1 bytes. */
char *fmt_slider(int rank, int max, int width, int utf8, char *buf, size_t len);
/* Column (0..width-1) of the slider knob for rank; -1 for rank <= 0. */
int fmt_slider_pos(int rank, int max, int width);
/* Rank (1..max) for a click at column pos (clamped). */
int fmt_slider_rank(int pos, int max, int width);

/* A scroll bar of `height` cells for rows first..first+visible-1 of total: the thumb's first cell
 * and length (at least 1; at the very end only when the last row shows). */
void fmt_scrollbar(int first, int visible, int total, int height, int *thumb_y, int *thumb_len);

#endif
