/* scr_search.c — screen 5: the rank search (search.h) run live: every trial as it finishes,
 * progress, elapsed time, a stop key, and the result ready to apply to the sliders. */
#include <stdio.h>

#include "rankscope/search.h"
#include "screens.h"
#include "searchrun.h"
#include "widgets.h"

void scr_search(const ui_state *s, const ui_spec *sp)
{
    (void)sp;
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
        char sum[3][UI_STATUS_LINE];
        int n = ui_search_summary(s, COLS - 2, sum, 3);
        for (int k = 0; k < n; ++k)
            w_put(y++, 1, k ? R_ACCENT : R_NORMAL, 0, sum[k]);
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
