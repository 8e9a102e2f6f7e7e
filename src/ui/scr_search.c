/* scr_search.c — screen 5: the rank search (search.h) run live: every trial as it finishes,
 * progress, elapsed time, a stop key, and the result ready to apply to the sliders. */
#include <stdio.h>

#include "fmt.h"
#include "rankscope/search.h"
#include "screens.h"
#include "searchrun.h"
#include "widgets.h"

void scr_search(const ui_state *s, const ui_spec *sp)
{
    (void)sp;
    char a[32], b[32], c[32], r[16];
    if (!s->search.available) {
        w_put(3, 2, R_ACCENT, 0, "Rank search");
        int w = COLS - 4, y = w_wrap(5, 2, w, 4, R_NORMAL,
                                     "The search runs on the validation split (the last 5,000 training images), and no "
                                     "CIFAR-10 training batches were found (--data DIR or RANKSCOPE_DATA).");
        y = w_wrap(y + 1, 2, w, 4, R_DIM,
                   "Meanwhile: the Trade-offs screen (4) sweeps the selected layer's rank in the background, "
                   "and `e` on the Layers screen applies a layer's EVBMF suggestion.");
        if (s->ft.msg[0])
            w_wrap(y + 1, 2, w, 3, R_BAD, s->ft.msg);
        return;
    }
    int x = w_printf(2, 1, R_ACCENT, 0, "Rank search on %s", s->search.set);
    (void)x;
    char set_long[200], set_short[200];
    const char *st = search_strategy_name((search_strategy)s->search.strategy);
    const char *ob = search_objective_name((search_objective)s->search.objective);
    const char *fit = s->search.fit_outputs ? "outputs" : "weights";
    snprintf(set_long, sizeof set_long, "strategy %-6s (t)   objective %-6s (o)   tolerance %.1f pt (+/-)   fit %s (f)", st,
             ob, s->search.tol, fit);
    snprintf(set_short, sizeof set_short, "strategy %s (t)  objective %s (o)  tol %.1f (+/-)  fit %s (f)", st, ob,
             s->search.tol, fit);
    w_put_fit(3, 1, R_NORMAL, set_long, set_short);
    if (s->search.running)
        w_printf(4, 1, R_PENDING, 0, "running: %d trials, %.1f s, %2.0f%%   x stops (keeping the best plan so far)",
                 s->search.trials_total, s->search.elapsed, s->search.progress * 100);
    else if (s->search.msg[0])
        w_printf(4, 1, s->search.have_result ? R_GOOD : R_BAD, 0, "%s", s->search.msg);
    else
        w_put(4, 1, R_DIM, 0, "s starts a search");
    int y = 5;
    if (s->search.have_result) {
        char d[32], e2[32], f[32];
        w_printf(y++, 1, R_NORMAL, 0, "validation accuracy %s -> %s (%s, %s)   params %s -> %s %s   MACs %s fewer",
                 fmt_pct(s->search.base, a, sizeof a), fmt_pct(s->search.acc, b, sizeof b),
                 fmt_pts_between(s->search.base, s->search.acc, c, sizeof c), s->search.within ? "within" : "NOT within",
                 fmt_count(s->params_total, d, sizeof d), fmt_count(s->search.params, e2, sizeof e2),
                 fmt_ratio((double)s->params_total, (double)s->search.params, r, sizeof r),
                 fmt_ratio((double)s->macs_total, (double)s->search.macs, f, sizeof f));
        char plan[512];
        size_t at = 0;
        plan[0] = 0;
        for (int k = 0; k < s->n_layers; ++k) {
            const ui_layer *l = &s->layers[k];
            if (!l->has_searched || l->searched.method == DECOMP_NONE)
                continue;
            int n = snprintf(plan + at, sizeof plan - at, "%s%s %s %d", at ? ", " : "", l->name,
                             decomp_method_name(l->searched.method), l->searched.rank);
            if (n < 0 || (size_t)n >= sizeof plan - at)
                break;
            at += (size_t)n;
        }
        w_printf(y++, 1, R_ACCENT, 0, "plan: %s   (a applies it to the sliders)", at ? plan : "(no layer factorized)");
    }
    y++;
    char row[256];
    ui_trial_header(COLS - 2, row, sizeof row);
    w_put(y++, 1, R_DIM, 0, row);
    /* the fine-tuning of the slider plan (`F`): its figures, then its message, on two lines if
     * one cannot hold them */
    char ft[2][UI_STATUS_LINE];
    int nft = s->ft.running || s->ft.msg[0] ? ui_ft_status(s, COLS - 2, ft, 2) : 0;
    for (int k = 0; k < nft; ++k)
        w_put(LINES - 2 - nft + k, 1, s->ft.running ? R_PENDING : s->ft.have_model ? R_GOOD : R_BAD, 0, ft[k]);
    int rows = LINES - 3 - y - nft;
    int first = s->search.n_trials - rows;
    if (first < 0)
        first = 0;
    for (int i = first; i < s->search.n_trials; ++i) {
        const ui_trial *t = &s->search.trials[i];
        ui_trial_row(s, t, COLS - 2, row, sizeof row);
        w_put(y++, 1, t->within ? R_NORMAL : R_DIM, 0, row);
    }
}
