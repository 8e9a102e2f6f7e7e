/* scr_search.c — screen 5: the rank search. The search engine (issue 5) is not part of this
 * build yet; the screen keeps its place and key bindings (s start, x stop, a apply) so that
 * wiring it in is a matter of filling ui_state's search fields from a worker. */
#include "screens.h"
#include "widgets.h"

void scr_search(const ui_state *s)
{
    int y = 3;
    w_put(y++, 2, R_ACCENT, 0, "Rank search");
    y++;
    if (!s->search_available) {
        w_put(y++, 2, R_NORMAL, 0, "The search strategies (naive, bisect, global, evbmf) are not available in this build yet.");
        w_put(y++, 2, R_DIM, 0, "Meanwhile: the Trade-offs screen (4) sweeps the selected layer's rank in the background,");
        w_put(y++, 2, R_DIM, 0, "and `e` on the Layers screen applies the EVBMF suggestion of a layer.");
        return;
    }
    w_put(y++, 2, R_NORMAL, 0, s->search_running ? "running ... x stops" : "s starts a search, a applies its plan");
}
