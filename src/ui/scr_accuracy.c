/* scr_accuracy.c — screen 3: overall and per-class accuracy, original against current. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "rankscope/cifar10.h"
#include "screens.h"
#include "widgets.h"

void scr_accuracy(const ui_state *s, const ui_spec *sp)
{
    (void)sp;
    char a[32], b[32], c[32], r[16];
    int pending = s->cur_gen != s->gen || s->eval_progress >= 0;
    w_printf(2, 1, R_NORMAL, 0, "evaluation set: %s", s->data_name);
    if (s->have_cur && s->cur.seconds >= 0) {
        char lng[200], sht[160], cut[4 * 200 + 4];
        snprintf(sht, sizeof sht, "%s images; last update %.2f s after the change",
                 fmt_count_exact(s->cur.images, a, sizeof a), s->eval_seconds);
        snprintf(lng, sizeof lng, "%s%s", sht, pending ? "  (a newer change is being evaluated)" : "");
        if (pending) /* at 80 columns: said shorter rather than cut */
            snprintf(sht + strlen(sht), sizeof sht - strlen(sht), " (newer pending)");
        w_put(3, 1, R_DIM, 0, fmt_fit(lng, sht, COLS - 2, s->utf8, cut, sizeof cut));
    }
    if (!s->have_orig) {
        w_put(5, 1, R_PENDING, 0, "evaluating the original network ...");
        return;
    }
    int barw = (COLS - 40) / 2;
    if (barw < 8)
        barw = 8;
    int x0 = 10, x1 = x0 + barw + 8;
    /* a first estimate is compared with the original on its own images */
    const eval_result *orig = ui_orig_for_cur(s);
    if (orig != &s->orig)
        w_printf(5, x0, R_ORIG, 0, "original, same %d", orig->images);
    else
        w_put(5, x0, R_ORIG, 0, "original");
    w_put(5, x1, pending ? R_PENDING : R_ACCENT, 0, pending ? "current (pending)" : "current");
    w_put(5, x1 + barw + 8, R_DIM, 0, "change");
    const eval_result *cur = s->have_cur ? &s->cur : &s->orig;
    for (int k = -1; k < CIFAR10_CLASSES; ++k) {
        int y = 7 + k;
        if (k == -1)
            y = 6;
        else
            y = 8 + k;
        double o = k < 0 ? orig->accuracy : orig->per_class[k];
        double n = k < 0 ? cur->accuracy : cur->per_class[k];
        w_put(y, 1, k < 0 ? R_ACCENT : R_NORMAL, 8, k < 0 ? "overall" : cifar10_class_names[k]);
        char bar[512];
        w_put(y, x0, R_ORIG, 0, fmt_bar(o, 1.0, barw, s->utf8, bar, sizeof bar));
        w_printf(y, x0 + barw + 1, R_NORMAL, 0, "%6s", fmt_pct(o, a, sizeof a));
        w_put(y, x1, pending ? R_PENDING : R_ACCENT, 0, fmt_bar(n, 1.0, barw, s->utf8, bar, sizeof bar));
        w_printf(y, x1 + barw + 1, R_NORMAL, 0, "%6s", fmt_pct(n, b, sizeof b));
        fmt_pts_between(o, n, c, sizeof c);
        double d = strtod(c, NULL); /* the change as printed decides its colour */
        w_printf(y, x1 + barw + 8, d < 0 ? R_BAD : d > 0 ? R_GOOD : R_DIM, 0, "%6s", c);
    }
    int y = 19;
    if (y + 4 > LINES - 2)
        y = LINES - 6;
    int64_t pb = s->params_total, pa = s->params_total_after;
    int64_t mb = s->macs_total, ma = s->macs_total_after;
    w_put(y, 1, R_DIM, 0, "             before     after    ratio");
    w_printf(y + 1, 1, R_NORMAL, 0, "params   %9s %9s %8s", fmt_count(pb, a, sizeof a), fmt_count(pa, b, sizeof b),
             fmt_ratio((double)pb, (double)pa, r, sizeof r));
    w_printf(y + 2, 1, R_NORMAL, 0, "MACs     %9s %9s %8s", fmt_count(mb, a, sizeof a), fmt_count(ma, b, sizeof b),
             fmt_ratio((double)mb, (double)ma, r, sizeof r));
    w_printf(y + 3, 1, R_NORMAL, 0, "bytes    %9s %9s %8s   (fp32 weights)", fmt_count(4 * pb, a, sizeof a),
             fmt_count(4 * pa, b, sizeof b), fmt_ratio((double)pb, (double)pa, r, sizeof r));
}
