/* guard.c — non-finite weight detection and terminal-safe names. */
#include "rankscope/guard.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int guard_floats_finite(const float *x, size_t n, const char *name, rs_err *e)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; x && i < n; ++i)
        if (!isfinite(x[i]) && bad++ == 0)
            first = i;
    if (!bad)
        return 0;
    char q[160];
    float v = x[first];
    return rs_fail(e, "initializer %s holds %s at index %zu (%zu non-finite value%s of %zu)",
                   guard_quote(q, sizeof q, name ? name : "?"),
                   isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", first, bad, bad == 1 ? "" : "s", n);
}

int guard_model_finite(const rs_model *m, rs_err *e)
{
    for (int v = 0; m && v < m->n_values; ++v) {
        const rs_value *val = &m->values[v];
        if (!val->is_const || val->dtype != RS_DT_FLOAT || !val->f)
            continue;
        int64_t numel = model_value_numel(val);
        if (numel > 0 && guard_floats_finite(val->f, (size_t)numel, val->name, e))
            return -1;
    }
    return 0;
}

static int plain(unsigned char c)
{
    if (c >= 0x80)
        return 1;
    if (c < 0x20 || c == 0x7f)
        return 0;
    return !strchr(" !\"#$&'()*;<=>?[\\]^`{|}~", c);
}

const char *guard_quote(char *buf, size_t len, const char *s)
{
    if (!buf || len == 0)
        return buf;
    if (!s)
        s = "";
    int needs = !*s;
    for (const unsigned char *p = (const unsigned char *)s; *p && !needs; ++p)
        needs = !plain(*p);
    size_t n = 0;
    int in_quote = 0, cut = 0;
    /* emits one piece if it fits with room for the closing quote, "..." and the NUL */
#define PUT(str)                                                                                  \
    do {                                                                                          \
        const char *s_ = (str);                                                                   \
        size_t l_ = strlen(s_);                                                                   \
        if (n + l_ + 5 > len) {                                                                   \
            cut = 1;                                                                              \
            goto end;                                                                             \
        }                                                                                         \
        memcpy(buf + n, s_, l_);                                                                  \
        n += l_;                                                                                  \
    } while (0)
    if (!needs) {
        for (const char *p = s; *p; ++p) {
            char one[2] = {*p, 0};
            PUT(one);
        }
        goto end;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; ++p) {
        char piece[16];
        if (*p < 0x20 || *p == 0x7f) {
            if (in_quote)
                PUT("'");
            in_quote = 0;
            snprintf(piece, sizeof piece, "$'\\%03o'", *p);
            PUT(piece);
            continue;
        }
        if (!in_quote) {
            PUT("'");
            in_quote = 1;
        }
        if (*p == '\'')
            snprintf(piece, sizeof piece, "'\\''");
        else
            snprintf(piece, sizeof piece, "%c", *p);
        PUT(piece);
    }
    if (!*s)
        PUT("''");
#undef PUT
end:
    if (cut && n + 3 + (size_t)in_quote < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    if (in_quote && n + 2 <= len)
        buf[n++] = '\'';
    buf[n < len ? n : len - 1] = 0;
    return buf;
}
