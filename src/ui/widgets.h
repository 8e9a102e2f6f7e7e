/* widgets.h — drawing helpers shared by the screens (curses; only src/ui/ includes curses).
 *
 * All text helpers clip at the right edge instead of wrapping; strings may hold UTF-8 (every
 * multi-byte character the explorer draws is one cell wide).
 */
#ifndef RANKSCOPE_UI_WIDGETS_H
#define RANKSCOPE_UI_WIDGETS_H

#include <curses.h>

#include "state.h"

enum w_role {
    R_NORMAL = 0,
    R_TITLE,   /* header / footer bars */
    R_TAB,     /* active tab */
    R_SEL,     /* selected row */
    R_DIM,
    R_ACCENT,  /* current configuration */
    R_ORIG,    /* original configuration */
    R_GOOD,
    R_BAD,
    R_PENDING,
    R_MARK,    /* markers: rank, EVBMF */
    R_COUNT
};

void w_colors_init(int enable);
void w_set_utf8(int utf8); /* whether cut text may end in "…" (else "~") */
attr_t w_attr(enum w_role role);

/* Text at (y, x) clipped to the screen width (and to maxw cells when maxw > 0). Returns the
 * column after the text. */
int w_put(int y, int x, enum w_role role, int maxw, const char *s);
int w_printf(int y, int x, enum w_role role, int maxw, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Right-aligned in w cells ending before x + w. */
void w_rput(int y, int x, int w, enum w_role role, const char *s);
/* The first of long_text / short_text that fits between x and the right edge (else short_text
 * cut with an ellipsis); returns the column after it. */
int w_put_fit(int y, int x, enum w_role role, const char *long_text, const char *short_text);
/* text wrapped at spaces into lines of at most w cells from (y, x), at most max_rows rows; returns
 * the row after the last one written. */
int w_wrap(int y, int x, int w, int max_rows, enum w_role role, const char *text);
/* Fill a row segment with spaces in a role's attribute. */
void w_fill(int y, int x, int w, enum w_role role);
void w_hline(const ui_state *s, int y, int x, int w);

/* Shared frame: header (row 0), tab bar (row 1), status line (lines-2), key hints (lines-1). */
void w_frame(const ui_state *s);

/* A plot canvas: series of (x, y) points scaled into a box, drawn with a glyph per series. */
typedef struct w_plot {
    int y, x, h, w;           /* box on screen (inside the axes) */
    double x0, x1, y0, y1;    /* data range */
    int logy;
} w_plot;

/* Axes, end ticks (y with ydec decimals) and labels around the box. */
void w_plot_axes(const ui_state *s, const w_plot *p, const char *xlabel, const char *ylabel, int ydec);
/* Cell of a data point; 0 if outside. */
int w_plot_cell(const w_plot *p, double xv, double yv, int *cy, int *cx);
void w_plot_point(const w_plot *p, double xv, double yv, enum w_role role, const char *glyph);
/* Connected line through points (xs, ys sorted by x), drawn with glyph. */
void w_plot_line(const w_plot *p, const double *xs, const double *ys, int n, enum w_role role,
                 const char *glyph);
/* Vertical marker line at xv. */
void w_plot_vline(const ui_state *s, const w_plot *p, double xv, enum w_role role, const char *label);

/* Number of display cells of a UTF-8 string. */
int w_width(const char *s);

#endif
