/* scr_graph.c — screen 7: every node of the model in graph order, with output shapes, params,
 * MACs and measured time; weighted nodes show their factorized chain where the sliders factorize
 * them. */
#include <stdio.h>
#include <string.h>

#include "fmt.h"
#include "screens.h"
#include "widgets.h"

/* "-> spatial-svd 12: 5x1 6->12, 1x5 12->16" for a factorized layer ("" otherwise). */
static void chain_text(const ui_layer *l, char *buf, size_t len)
{
    buf[0] = 0;
    if (l->cur.method == DECOMP_NONE)
        return;
    size_t at = (size_t)snprintf(buf, len, "-> %s %d", decomp_method_name(l->cur.method), l->cur.rank);
    if (!l->res_valid || !pipe_choice_equal(&l->res_for, &l->cur))
        return;
    for (int i = 0; i < l->n_steps && at < len; ++i) {
        int w = snprintf(buf + at, len - at, "%s%s", i ? ", " : ": ", l->step_text[i]);
        if (w < 0)
            break;
        at += (size_t)w;
    }
}

/* Below 100 columns the long op names take their usual short forms, so the factor chain keeps
 * room beside the time column. */
static const char *op_shown(const char *op, int narrow)
{
    if (!narrow)
        return op;
    return !strcmp(op, "GlobalAveragePool") ? "GlobalAvgPool" : !strcmp(op, "BatchNormalization") ? "BatchNorm" : op;
}

void scr_graph(const ui_state *s, const ui_spec *sp)
{
    (void)sp;
    const ui_graph_state *g = &s->graph;
    char a[32], b[32], chain[256];
    const int narrow = COLS < 100;
    int op_w = 6; /* as wide as the longest op ("GlobalAveragePool"), "Add(2)" included */
    for (int i = 0; i < g->n; ++i) {
        int w = (int)strlen(op_shown(g->nodes[i].op, narrow)) + (g->nodes[i].inputs > 1 ? 3 : 0);
        op_w = w > op_w ? w : op_w;
    }
    int out_w = 6; /* "output" */
    for (int r = 0; r < g->n_rows; ++r) {
        int w = (int)strlen(ui_graph_row(s, r)->out);
        out_w = w > out_w ? w : out_w;
    }
    out_w = out_w > 13 ? 13 : out_w;
    op_w = op_w > 20 ? 20 : op_w; /* an op name is never cut below that (GlobalAveragePool) */
    /* params 8, MACs 9, time 8, its share 7 (not below 100 columns: the selected row's share is
     * on the line under the table); names whole before the factor chain, which keeps 10-14
     * columns and shows whole on that line for the selected layer */
    const int pct_w = narrow ? 0 : 7;
    int factorized = 0; /* no layer factorized: no chain to show, its columns go to the names */
    for (int k = 0; k < s->n_layers; ++k)
        factorized |= s->layers[k].cur.method != DECOMP_NONE;
    int name_w = COLS - 2 - (op_w + 1) - (out_w + 1) - 8 - 9 - 8 - pct_w - (!factorized ? 1 : narrow ? 10 : 14);
    int longest = 4; /* "node" */
    for (int r = 0; r < g->n_rows; ++r) {
        int w = w_width(ui_graph_row(s, r)->name) + (g->rows[r] < 0 ? 2 : 0); /* chain rows indent */
        longest = w > longest ? w : longest;
    }
    if (name_w > longest) /* the rest goes to the factor chain */
        name_w = longest;
    if (name_w > 40)
        name_w = 40;
    if (name_w < 16)
        name_w = 16;
    int x_op = 2 + name_w + 1, x_out = x_op + op_w + 1, x_p = x_out + out_w + 1, x_m = x_p + 8, x_t = x_m + 9,
        x_pct = x_t + 8, x_extra = x_pct + pct_w;
    w_put(2, 2, R_DIM, name_w, "node");
    w_put(2, x_op, R_DIM, 0, "op");
    w_put(2, x_out, R_DIM, 0, "output");
    w_rput(2, x_p, 7, R_DIM, "params");
    w_rput(2, x_m, 8, R_DIM, "MACs");
    w_rput(2, x_t, 7, R_DIM, s->utf8 ? "\u00b5s/img" : "us/img");
    if (!narrow)
        w_rput(2, x_pct, 6, R_DIM, "time");
    int rows = ui_graph_rows(s);
    for (int r = 0; r < rows && g->scroll + r < g->n_rows; ++r) {
        int i = g->scroll + r, y = 3 + r;
        const ui_gnode *nd = ui_graph_row(s, i);
        const int is_sub = g->rows[i] < 0;
        int sel = i == g->sel;
        enum w_role role = sel ? R_SEL : nd->layer >= 0 ? R_NORMAL : R_DIM;
        if (sel)
            w_fill(y, 0, COLS, R_SEL);
        w_put(y, 0, role, 2, sel ? (s->utf8 ? "\u25b6 " : "> ") : "  ");
        char nb[128], ind[128];
        snprintf(ind, sizeof ind, "%s%s", is_sub ? "  " : "", nd->name); /* a chain's rows under its node */
        const char *name = ind;
        size_t nl = strlen(name);
        if ((int)nl > name_w) { /* the informative end of a long module path */
            snprintf(nb, sizeof nb, "%s%s", s->utf8 ? "\u2026" : "~", name + nl - (size_t)(name_w - 1));
            name = nb;
        }
        w_put(y, 2, is_sub && !sel ? R_ACCENT : role, name_w, name);
        char op[32], opc[4 * sizeof op + 4];
        snprintf(op, sizeof op, nd->inputs > 1 ? "%s(%d)" : "%s", op_shown(nd->op, narrow), nd->inputs);
        w_put(y, x_op, role, op_w, fmt_cut(op, op_w, s->utf8, opc, sizeof opc));
        w_put(y, x_out, role, out_w, nd->out);
        w_rput(y, x_p, 7, role, nd->params ? fmt_count(nd->params, a, sizeof a) : "-");
        w_rput(y, x_m, 8, role, nd->macs ? fmt_count(nd->macs, b, sizeof b) : "-");
        char us[16], pct[16];
        ui_graph_time_text(s, i, us, sizeof us, pct, sizeof pct);
        w_rput(y, x_t, 7, (us[0] >= '0' && us[0] <= '9') || us[0] == '~' || sel ? role : R_DIM, us);
        if (!narrow)
            w_rput(y, x_pct, 6, role, pct);
        if (nd->layer >= 0 && !is_sub && x_extra < COLS - 4) {
            char cut[4 * sizeof chain + 4];
            ui_graph_chain_time(s, i, chain, sizeof chain);
            if (!chain[0])
                chain_text(&s->layers[nd->layer], chain, sizeof chain);
            w_put(y, x_extra, sel ? R_SEL : R_ACCENT, 0, fmt_cut(chain, COLS - x_extra - 1, s->utf8, cut, sizeof cut));
        }
    }
    char pos[48] = "";
    if (g->n_rows > rows) {
        int last = g->scroll + rows < g->n_rows ? g->scroll + rows : g->n_rows;
        snprintf(pos, sizeof pos, " %s %d-%d of %d ", g->p_shown ? "rows" : "nodes", g->scroll + 1, last, g->n_rows);
        w_put(3 + rows, COLS - (int)strlen(pos) - 1, R_DIM, 0, pos);
    }
    char note[300], with_n[340] = "", cut[4 * sizeof with_n + 4];
    ui_graph_time_note(s, note, sizeof note);
    const ui_gnode *sel = g->n_rows > 0 ? ui_graph_row(s, g->sel) : NULL;
    const int sel_sub = g->n_rows > 0 && g->rows[g->sel] < 0;
    chain[0] = 0;
    if (sel && sel->layer >= 0 && !sel_sub) { /* the selected layer's chain whole, when its row cuts it */
        ui_graph_chain_time(s, g->sel, chain, sizeof chain);
        if (!chain[0])
            chain_text(&s->layers[sel->layer], chain, sizeof chain);
        if (chain[0] && x_extra + w_width(chain) > COLS - 1)
            snprintf(note, sizeof note, "%.90s %.200s", sel->name, chain);
        else
            chain[0] = 0;
    }
    char us[16], pct[16];
    if (g->n_rows > 0)
        ui_graph_time_text(s, g->sel, us, sizeof us, pct, sizeof pct);
    /* the share column is off: the selected row's share here, unless the plan applied is being
     * (re)measured or failed, which this line has to say */
    const int plan_news = ui_graph_plan_applies(s) && (g->p_state == UI_TIME_RUNNING || g->p_state == UI_TIME_FAILED);
    if (narrow && sel && !chain[0] && pct[0] && g->time_state == UI_TIME_DONE && !plan_news) {
        const char *mu = s->utf8 ? "\u00b5s" : "us";
        const int plan = g->p_shown && g->p_have;
        char tot[16];
        snprintf(note, sizeof note, "%s: %s %s/img, %s of %s %s%s", sel->name, us, mu, pct,
                 ui_us_text(plan ? g->p_total_us : g->total_us, tot, sizeof tot), mu, plan ? " with the plan" : "");
        snprintf(with_n, sizeof with_n, "%s (%d images, 1 thread)", note, plan ? g->p_images : g->time_images);
    }
    int room = COLS - 2 - (int)strlen(pos) - 2;
    if (room > 8) /* the image count is left out before the line would be cut */
        w_put(3 + rows, 1, R_DIM, 0, fmt_fit(with_n[0] ? with_n : note, note, room, s->utf8, cut, sizeof cut));
}
