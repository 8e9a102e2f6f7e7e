/* fmt.c — number and chart formatting for the explorer. */
#include "fmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *fmt_count(int64_t v, char *buf, size_t len)
{
    double a = fabs((double)v);
    const char *sign = v < 0 ? "-" : "";
    if (a < 1000)
        snprintf(buf, len, "%s%.0f", sign, a);
    else if (a < 999.95e3)
        snprintf(buf, len, "%s%.1fK", sign, a / 1e3);
    else if (a < 999.95e6)
        snprintf(buf, len, "%s%.1fM", sign, a / 1e6);
    else
        snprintf(buf, len, "%s%.1fG", sign, a / 1e9);
    return buf;
}

char *fmt_count_exact(int64_t v, char *buf, size_t len)
{
    char digits[32], out[48];
    unsigned long long a = v < 0 ? (unsigned long long)(-(v + 1)) + 1 : (unsigned long long)v;
    int n = snprintf(digits, sizeof digits, "%llu", a), at = 0;
    if (v < 0)
        out[at++] = '-';
    for (int i = 0; i < n; ++i) {
        if (i && (n - i) % 3 == 0)
            out[at++] = ',';
        out[at++] = digits[i];
    }
    out[at] = 0;
    snprintf(buf, len, "%s", out);
    return buf;
}

char *fmt_ratio(double before, double after, char *buf, size_t len)
{
    if (!(after > 0) || !(before >= 0)) {
        snprintf(buf, len, "-");
        return buf;
    }
    double r = before / after;
    if (r >= 9.95)
        snprintf(buf, len, "%.0fx", r);
    else
        snprintf(buf, len, "%.1fx", r);
    return buf;
}

char *fmt_pct(double frac, char *buf, size_t len)
{
    if (frac < 0 || isnan(frac))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.1f%%", frac * 100.0);
    return buf;
}

char *fmt_pts(double delta_frac, char *buf, size_t len)
{
    double p = delta_frac * 100.0;
    if (fabs(p) < 0.05)
        snprintf(buf, len, "0.0");
    else
        snprintf(buf, len, "%+.1f", p);
    return buf;
}

char *fmt_pts_between(double from, double to, char *buf, size_t len)
{
    char a[32], b[32];
    if (from < 0 || to < 0 || isnan(from) || isnan(to))
        return fmt_pts(to - from, buf, len);
    /* the difference of the two figures as fmt_pct prints them, so the three always agree */
    return fmt_pts((strtod(fmt_pct(to, b, sizeof b), NULL) - strtod(fmt_pct(from, a, sizeof a), NULL)) / 100.0, buf,
                   len);
}

char *fmt_cut_middle(const char *text, int width, int utf8, char *buf, size_t len)
{
    int n = (int)strlen(text);
    for (const char *p = text; *p; ++p)
        if ((unsigned char)*p >= 0x80) /* multi-byte: cut at the start, as fmt_cut's callers did */
            return fmt_cut_start(text, width, utf8, buf, len);
    if (n <= width || width < 3) {
        snprintf(buf, len, "%.*s", width < n ? width : n, text);
        return buf;
    }
    int head = (width - 1) / 2, tail = width - 1 - head;
    snprintf(buf, len, "%.*s%s%s", head, text, utf8 ? "\u2026" : "~", text + n - tail);
    return buf;
}

char *fmt_cut_start(const char *text, int width, int utf8, char *buf, size_t len)
{
    int n = (int)strlen(text);
    if (n <= width || width < 2)
        snprintf(buf, len, "%s", text);
    else
        snprintf(buf, len, "%s%s", utf8 ? "\u2026" : "~", text + n - (width - 1));
    return buf;
}

char *fmt_err(double v, char *buf, size_t len)
{
    if (v < 0 || isnan(v))
        snprintf(buf, len, "-");
    else if (v == 0)
        snprintf(buf, len, "0");
    else if (v >= 0.095)
        snprintf(buf, len, "%.2f", v);
    else if (v >= 0.00095)
        snprintf(buf, len, "%.3f", v);
    else {
        /* "6.7e-7", not printf's "6.7e-07": the w.err column is six cells wide */
        int ex = (int)floor(log10(v));
        double mant = v / pow(10.0, ex);
        if (mant >= 9.95) {
            mant /= 10;
            ++ex;
        }
        if (ex > -10)
            snprintf(buf, len, "%.1fe%d", mant, ex);
        else
            snprintf(buf, len, "%.0fe%d", mant, ex);
    }
    return buf;
}

/* Appends s to buf at *at, never past len-1. */
static void put(char *buf, size_t len, size_t *at, const char *s)
{
    size_t n = strlen(s);
    if (*at + n >= len)
        return;
    memcpy(buf + *at, s, n);
    *at += n;
    buf[*at] = 0;
}

char *fmt_bar(double value, double max, int width, int utf8, char *buf, size_t len)
{
    static const char *const eighths[8] = {"", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b",
                                           "\u258a", "\u2589"};
    size_t at = 0;
    if (len)
        buf[0] = 0;
    if (width <= 0)
        return buf;
    double f = (max > 0 && value > 0) ? value / max : 0;
    if (f > 1)
        f = 1;
    int units = (int)lround(f * width * 8);
    int full = units / 8, rest = units % 8;
    for (int i = 0; i < full; ++i)
        put(buf, len, &at, utf8 ? "\u2588" : "#");
    int used = full;
    if (rest && used < width) {
        if (utf8)
            put(buf, len, &at, eighths[rest]);
        else
            put(buf, len, &at, rest >= 4 ? "#" : " ");
        ++used;
    }
    for (; used < width; ++used)
        put(buf, len, &at, " ");
    return buf;
}

int fmt_slider_pos(int rank, int max, int width)
{
    if (rank <= 0 || max <= 0 || width <= 0)
        return -1;
    if (max == 1 || width == 1)
        return width - 1;
    if (rank > max)
        rank = max;
    return (int)lround((double)(rank - 1) * (width - 1) / (max - 1));
}

int fmt_slider_rank(int pos, int max, int width)
{
    if (max <= 1)
        return 1;
    if (pos < 0)
        pos = 0;
    if (pos > width - 1)
        pos = width - 1;
    if (width <= 1)
        return max;
    return 1 + (int)lround((double)pos * (max - 1) / (width - 1));
}

char *fmt_slider(int rank, int max, int width, int utf8, char *buf, size_t len)
{
    size_t at = 0;
    if (len)
        buf[0] = 0;
    int knob = fmt_slider_pos(rank, max, width);
    for (int i = 0; i < width; ++i) {
        if (knob < 0)
            put(buf, len, &at, utf8 ? "\u00b7" : "-");
        else if (i < knob)
            put(buf, len, &at, utf8 ? "\u2501" : "=");
        else if (i == knob)
            put(buf, len, &at, utf8 ? "\u25cf" : "|");
        else
            put(buf, len, &at, utf8 ? "\u2500" : "-");
    }
    return buf;
}

void fmt_scrollbar(int first, int visible, int total, int height, int *thumb_y, int *thumb_len)
{
    if (total <= visible || total <= 0 || height <= 0) {
        *thumb_y = 0;
        *thumb_len = height > 0 ? height : 0;
        return;
    }
    int len = (int)((long long)height * visible / total);
    len = len < 1 ? 1 : len > height ? height : len;
    int span = height - len, range = total - visible;
    int y = (int)(((long long)first * span + range / 2) / range);
    /* the ends mean the ends: the thumb touches the bottom only on the last page, the top only
     * on the first */
    if (first > 0 && y == 0 && span > 0)
        y = 1;
    if (first + visible < total && y == span && span > 0)
        y = span - 1;
    *thumb_y = y;
    *thumb_len = len;
}

char *fmt_cut(const char *text, int width, int utf8, char *buf, size_t len)
{
    size_t at = 0;
    int cells = 0;
    for (const char *p = text; *p; ++p)
        cells += ((unsigned char)*p & 0xC0) != 0x80;
    if (cells <= width) {
        snprintf(buf, len, "%s", text);
        return buf;
    }
    /* width - 1 characters, then the ellipsis */
    int kept = 0;
    const char *p = text;
    while (*p && kept < width - 1) {
        const char *q = p + 1;
        while (((unsigned char)*q & 0xC0) == 0x80)
            ++q;
        if (at + (size_t)(q - p) + 4 > len)
            break;
        memcpy(buf + at, p, (size_t)(q - p));
        at += (size_t)(q - p);
        p = q;
        ++kept;
    }
    if (width > 0)
        snprintf(buf + at, len - at, "%s", utf8 ? "\u2026" : "~");
    else if (len)
        buf[at] = 0;
    return buf;
}

char *fmt_fit(const char *long_text, const char *short_text, int width, int utf8, char *buf, size_t len)
{
    int cells = 0;
    for (const char *p = long_text; *p; ++p)
        cells += ((unsigned char)*p & 0xC0) != 0x80;
    return fmt_cut(cells <= width ? long_text : short_text, width, utf8, buf, len);
}

const char *fmt_wrap_line(const char *text, int width, char *buf, size_t len)
{
    const char *p = text;
    while (*p == ' ')
        ++p;
    /* the longest prefix of whole words within width cells */
    const char *end = p, *brk = NULL;
    int cells = 0;
    while (*end && cells <= width) {
        if (*end == ' ')
            brk = end;
        if (((unsigned char)*end & 0xC0) != 0x80)
            ++cells;
        ++end;
    }
    if (!*end && cells <= width)
        brk = end;
    else if (!brk || brk == p)
        brk = end - (cells > width); /* one word longer than the line: cut it */
    size_t n = (size_t)(brk - p) < len - 1 ? (size_t)(brk - p) : len - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    while (*brk == ' ')
        ++brk;
    return brk;
}
