/* keys.c — the explorer's keys: the rank keys shared by the slider screens, each screen's own keys
 * and help, the exact-rank prompt, the worked example's cell editor, and ui_key's dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "state.h"
#include "state_internal.h"

/* ---- the exact-rank prompt ---------------------------------------------------------------------- */

static unsigned prompt_open(ui_state *s)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    const ui_layer *l = &s->layers[s->sel];
    if (ui_preferred_method(l) == DECOMP_NONE) {
        snprintf(s->msg, sizeof s->msg, "%s: no low-rank method applies to this layer", l->name);
        return UI_HANDLED | UI_REDRAW;
    }
    s->prompt.active = 1;
    s->prompt.len = 0;
    s->prompt.buf[0] = 0;
    return UI_HANDLED | UI_REDRAW;
}

static unsigned prompt_key(ui_state *s, int key)
{
    ui_prompt *p = &s->prompt;
    ui_layer *l = &s->layers[s->sel];
    decomp_method m = l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
    int max = l->mi[m].max_rank;
    if (key == UI_K_ESC) {
        p->active = 0;
        return UI_HANDLED | UI_REDRAW;
    }
    if (key == UI_K_BACKSPACE || key == 127 || key == 8) {
        if (p->len > 0)
            p->buf[--p->len] = 0;
        return UI_HANDLED | UI_REDRAW;
    }
    if (key >= '0' && key <= '9') {
        if (p->len < 6) {
            p->buf[p->len++] = (char)key;
            p->buf[p->len] = 0;
        }
        return UI_HANDLED | UI_REDRAW;
    }
    if (key != UI_K_ENTER && key != '\r')
        return UI_HANDLED;
    p->active = 0;
    if (p->len == 0)
        return UI_HANDLED | UI_REDRAW;
    int r = atoi(p->buf);
    if (r < 1 || r > max) {
        snprintf(s->msg, sizeof s->msg, "rank %d is out of range: %s %s takes 1..%d", r, l->name,
                 decomp_method_name(m), max);
        return UI_HANDLED | UI_REDRAW;
    }
    return ui_set_choice(s, l, m, r, l->cur.method == m ? l->cur.rank2 : 0);
}

/* head then its hint, in the status line's s->cols - 2 cells: the long hint when it fits, else
 * the short one, so a prompt loses words of its hint rather than ending mid-word. */
static void prompt_fit(const ui_state *s, char *buf, size_t len, const char *head, const char *hint_long,
                       const char *hint_short)
{
    char lng[RS_ERR_LEN + 200], sht[RS_ERR_LEN + 200]; /* head (< RS_ERR_LEN) and a hint (< 160) */
    snprintf(lng, sizeof lng, "%s   %s", head, hint_long);
    snprintf(sht, sizeof sht, "%s   %s", head, hint_short);
    if (s->cols <= 2)
        snprintf(buf, len, "%s", lng);
    else
        fmt_fit(lng, sht, s->cols - 2, s->utf8, buf, len);
}

int ui_prompt_text(const ui_state *s, char *buf, size_t len)
{
    char head[RS_ERR_LEN], hl[160], hs[80];
    if (s->screen == SCR_EXAMPLE && s->edit.active) {
        snprintf(head, sizeof head, "edit %s[%d][%d]: %s_", s->edit.which ? "K" : "X", s->edit.r, s->edit.c,
                 s->edit.buf);
        prompt_fit(s, buf, len, head, "Enter sets, arrows move, Tab X/K, Esc ends", "Enter sets, Esc ends");
        return 1;
    }
    if (s->browse.active && s->browse.dir_editing) {
        snprintf(head, sizeof head, "directory: %.400s_", s->browse.dir_buf);
        snprintf(hl, sizeof hl, "(%sEnter lists its .onnx files, Esc cancels)",
                 s->browse.dir_fresh ? "typing replaces it, Backspace edits it; " : "^U clears, ");
        prompt_fit(s, buf, len, head, hl, "(Enter lists, Esc cancels)");
        return 1;
    }
    if (s->saveas.active && s->saveas.asking) {
        snprintf(buf, len, "%s exists: overwrite it? y overwrites, any other key edits the path", s->saveas.exists);
        return 1;
    }
    if (s->saveas.active) {
        if (s->saveas.note[0]) { /* what went wrong first: the path may be long */
            snprintf(buf, len, "%s; save as: %s_", s->saveas.note, s->saveas.buf);
        } else {
            snprintf(head, sizeof head, "save as: %.400s_", s->saveas.buf);
            prompt_fit(s, buf, len, head, "(PREFIX.plan + PREFIX.onnx; Enter saves, Esc cancels, ^U clears)",
                       "(Enter saves, Esc cancels)");
        }
        return 1;
    }
    if (s->view.editing && s->screen == SCR_LAYERS) {
        snprintf(head, sizeof head, "filter: %.200s_", s->view.filter);
        snprintf(hl, sizeof hl, "%d of %d layers; Enter keeps it, Esc clears it", ui_view_count(s), s->n_layers);
        snprintf(hs, sizeof hs, "%d of %d; Enter keeps, Esc clears", ui_view_count(s), s->n_layers);
        prompt_fit(s, buf, len, head, hl, hs);
        return 1;
    }
    if (!s->prompt.active || s->n_layers <= 0)
        return 0;
    const ui_layer *l = &s->layers[s->sel];
    decomp_method m = l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
    snprintf(head, sizeof head, "rank for %.200s %s: %s_", ui_layer_label(s, l), decomp_method_name(m), s->prompt.buf);
    snprintf(hl, sizeof hl, "(1..%d, Enter sets, Esc cancels)", l->mi[m].max_rank);
    snprintf(hs, sizeof hs, "(1..%d)", l->mi[m].max_rank);
    prompt_fit(s, buf, len, head, hl, hs);
    return 1;
}

/* A rank key on the selected layer: step by delta, or to an end (to_end -1 / +1); an
 * unfactorized layer takes its preferred method at its default rank. */
static unsigned rank_step(ui_state *s, int delta, int to_end)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    ui_layer *l = &s->layers[s->sel];
    if (l->cur.method == DECOMP_NONE) {
        decomp_method pm = ui_preferred_method(l);
        if (pm == DECOMP_NONE) {
            snprintf(s->msg, sizeof s->msg, "%s: no low-rank method applies to this layer", l->name);
            return UI_HANDLED | UI_REDRAW;
        }
        return ui_set_choice(s, l, pm, l->mi[pm].default_rank, 0);
    }
    int max = l->mi[l->cur.method].max_rank;
    int r = l->cur.rank + delta;
    if (to_end < 0)
        r = 1;
    else if (to_end > 0)
        r = max;
    return ui_set_choice(s, l, l->cur.method, r, l->cur.rank2);
}

static int page_step(const ui_layer *l)
{
    int max = l->cur.method != DECOMP_NONE ? l->mi[l->cur.method].max_rank : 0;
    int tenth = (max + 5) / 10;
    return tenth > 8 ? tenth : 8;
}

static unsigned cycle_method(ui_state *s)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    ui_layer *l = &s->layers[s->sel];
    if (l->cur.method == DECOMP_NONE && ui_preferred_method(l) == DECOMP_NONE) { /* as <-/-> say */
        snprintf(s->msg, sizeof s->msg, "%s: no low-rank method applies to this layer", l->name);
        return UI_HANDLED | UI_REDRAW;
    }
    for (int k = 1; k <= DECOMP_COUNT; ++k) {
        decomp_method m = (decomp_method)(((int)l->cur.method + k) % DECOMP_COUNT);
        if (m == DECOMP_NONE)
            return ui_set_choice(s, l, DECOMP_NONE, 0, 0);
        if ((l->methods & (1u << m)) && l->mi[m].max_rank > 0)
            return ui_set_choice(s, l, m, l->mi[m].default_rank, 0);
    }
    return UI_HANDLED;
}

static unsigned apply_evbmf(ui_state *s)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    ui_layer *l = &s->layers[s->sel];
    decomp_method m = l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l);
    if (m != DECOMP_NONE && s->evbmf_pending) {
        snprintf(s->msg, sizeof s->msg, "the EVBMF ranks are still being found; e works once the column fills in");
        return UI_HANDLED | UI_REDRAW;
    }
    if (m == DECOMP_NONE || l->mi[m].evbmf <= 0) {
        snprintf(s->msg, sizeof s->msg, "%s: no EVBMF suggestion for %s", l->name,
                 decomp_method_name(m));
        return UI_HANDLED | UI_REDRAW;
    }
    return ui_set_choice(s, l, m, l->mi[m].evbmf, m == DECOMP_TUCKER2 ? l->mi[m].evbmf2 : 0);
}

/* ---- worked example editing ----------------------------------------------------------------- */

static unsigned edit_key(ui_state *s, int key)
{
    ui_edit *ed = &s->edit;
    ex_state *ex = &s->ex;
    int rows = ed->which ? EX_K : ex->in_h, cols = ed->which ? EX_K : ex->in_w;
    switch (key) {
    case UI_K_ESC:
        ed->active = 0;
        ed->len = 0;
        ed->buf[0] = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_TAB:
        ed->which = !ed->which;
        ed->r = ed->c = 0;
        ed->len = 0;
        ed->buf[0] = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_LEFT: ed->c = (ed->c + cols - 1) % cols; ed->len = 0; ed->buf[0] = 0; return UI_HANDLED | UI_REDRAW;
    case UI_K_RIGHT: ed->c = (ed->c + 1) % cols; ed->len = 0; ed->buf[0] = 0; return UI_HANDLED | UI_REDRAW;
    case UI_K_UP: ed->r = (ed->r + rows - 1) % rows; ed->len = 0; ed->buf[0] = 0; return UI_HANDLED | UI_REDRAW;
    case UI_K_DOWN: ed->r = (ed->r + 1) % rows; ed->len = 0; ed->buf[0] = 0; return UI_HANDLED | UI_REDRAW;
    case UI_K_BACKSPACE:
    case 127:
    case 8:
        if (ed->len > 0)
            ed->buf[--ed->len] = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_ENTER:
    case '\r': {
        if (ed->len > 0) {
            char *end = NULL;
            double v = strtod(ed->buf, &end);
            if (!end || *end != 0 || end == ed->buf) {
                snprintf(s->msg, sizeof s->msg, "not a number: \"%s\"", ed->buf);
            } else if (!(v > -1e6 && v < 1e6)) {
                snprintf(s->msg, sizeof s->msg, "%s is out of range: a cell takes -999999..999999", ed->buf);
            } else {
                if (ed->which)
                    ex->k[ed->r][ed->c] = v;
                else
                    ex->x[ed->r][ed->c] = v;
                ex_compute(ex);
                snprintf(s->msg, sizeof s->msg, "%s[%d][%d] = %g", ed->which ? "K" : "X", ed->r,
                         ed->c, v);
            }
        }
        ed->len = 0;
        ed->buf[0] = 0;
        /* move on to the next cell, like a spreadsheet */
        if (++ed->c >= cols) {
            ed->c = 0;
            ed->r = (ed->r + 1) % rows;
        }
        return UI_HANDLED | UI_REDRAW;
    }
    default:
        if (((key >= '0' && key <= '9') || key == '-' || key == '.' || key == '+' || key == 'e') &&
            ed->len < (int)sizeof ed->buf - 1) {
            ed->buf[ed->len++] = (char)key;
            ed->buf[ed->len] = 0;
            return UI_HANDLED | UI_REDRAW;
        }
        return UI_HANDLED;
    }
}

static unsigned example_key(ui_state *s, int key)
{
    ex_state *ex = &s->ex;
    switch (key) {
    case UI_K_RIGHT:
    case ' ':
        ex->pos = (ex->pos + 1) % ex->n_pos;
        break;
    case UI_K_LEFT:
        ex->pos = (ex->pos + ex->n_pos - 1) % ex->n_pos;
        break;
    case UI_K_HOME:
        ex->pos = 0;
        break;
    case 's':
        ex->stride = ex->stride == 1 ? 2 : 1;
        ex->pos = 0;
        break;
    case 'r':
    case UI_K_UP:
        ex->rank = ex->rank % EX_K + 1;
        break;
    case UI_K_DOWN:
        ex->rank = ex->rank > 1 ? ex->rank - 1 : EX_K;
        break;
    case 'E':
        s->edit.active = 1;
        s->edit.which = 0;
        s->edit.r = ex->win_r;
        s->edit.c = ex->win_c;
        s->edit.len = 0;
        s->edit.buf[0] = 0;
        return UI_HANDLED | UI_REDRAW;
    case 'D':
        ex_default(ex);
        return UI_HANDLED | UI_REDRAW;
    default:
        return 0;
    }
    ex_compute(ex);
    return UI_HANDLED | UI_REDRAW;
}

/* ---- keys ----------------------------------------------------------------------------------- */

/* Take the last search's plan into the sliders (layers it leaves out are reset). */
static unsigned apply_search(ui_state *s)
{
    int changed = 0;
    for (int k = 0; k < s->n_layers; ++k) {
        ui_layer *l = &s->layers[k];
        ui_choice c = l->has_searched ? l->searched : (ui_choice){DECOMP_NONE, 0, 0};
        if (c.method != DECOMP_NONE && !(l->methods & (1u << c.method)))
            continue;
        if (c.method != l->cur.method || c.rank != l->cur.rank || c.rank2 != l->cur.rank2) {
            l->cur = c;
            changed = 1;
        }
    }
    if (!changed)
        return UI_HANDLED | UI_REDRAW;
    snprintf(s->msg, sizeof s->msg, "search plan applied to the sliders");
    s->dirty = 1;
    ++s->gen;
    ui_undo_record(s);
    return UI_HANDLED | UI_REDRAW | UI_RECOMPUTE | UI_SEARCH_APPLY;
}

unsigned ui_select_row(ui_state *s, int row)
{
    if (s->n_layers <= 0)
        return UI_HANDLED;
    if (row < 0)
        row = 0;
    if (row >= s->n_layers)
        row = s->n_layers - 1;
    unsigned f = UI_HANDLED | UI_REDRAW;
    if (row != s->sel && s->screen == SCR_TRADEOFFS)
        f |= UI_SWEEP;
    s->sel = row;
    ui_fix_scroll(s);
    return f;
}

/* The sweep in hand (running or with points) is of the selected layer and the method it would
 * sweep now: coming back to Trade-offs keeps it rather than starting it over. */
static int sweep_is_current(const ui_state *s)
{
    const ui_sweep *w = &s->sweep;
    if (s->n_layers <= 0 || w->layer != s->sel || (!w->running && w->n == 0))
        return 0;
    const ui_layer *l = &s->layers[s->sel];
    return w->base.method == (l->cur.method != DECOMP_NONE ? l->cur.method : ui_preferred_method(l));
}

static unsigned set_screen(ui_state *s, int screen)
{
    unsigned f = UI_HANDLED | UI_REDRAW;
    if (screen == SCR_TRADEOFFS && s->screen != SCR_TRADEOFFS && !sweep_is_current(s))
        f |= UI_SWEEP;
    s->screen = screen;
    return f;
}

const double ui_curve_reductions[UI_CURVE_N] = {1.5, 2.0, 2.5, 3.0, 4.0};

/* `c` on Trade-offs: start the curve unless it is already being computed; `C`: with each point
 * fine-tuned as well, which needs the training set. */
static unsigned ui_curve_key(ui_state *s, int finetune)
{
    if (s->curve.running)
        return UI_HANDLED;
    if (finetune && !s->ft.available) {
        snprintf(s->curve.msg, sizeof s->curve.msg,
                 "the fine-tuned curve needs the full CIFAR-10 training set (--data DIR)");
        snprintf(s->curve.msg_short, sizeof s->curve.msg_short, "C needs the training set (--data)");
        return UI_HANDLED | UI_REDRAW;
    }
    s->curve.running = 1;
    s->curve.done = 0;
    s->curve.n = 0;
    s->curve.sel = -1;
    s->curve.finetune = finetune;
    s->curve.fit_outputs = s->search.fit_outputs;
    for (int i = 0; i < UI_CURVE_N; ++i)
        s->curve.acc_ft[i] = -1;
    snprintf(s->curve.msg, sizeof s->curve.msg, "curve pending: sensitivity tables%s",
             finetune ? ", then each point fine-tuned" : "");
    snprintf(s->curve.msg_short, sizeof s->curve.msg_short, "curve: sensitivity tables%s", finetune ? " + tuning" : "");
    return UI_HANDLED | UI_REDRAW | UI_CURVE_START;
}

/* < / >: select a point of the curve; Enter / a: its plan into the sliders (one undo step). */
static unsigned curve_point_key(ui_state *s, int key)
{
    ui_curve_state *c = &s->curve;
    if (key == '<' || key == ',' || key == '>' || key == '.') {
        if (c->n <= 0) {
            snprintf(s->msg, sizeof s->msg, "no curve yet: c computes it (C fine-tunes each point too)");
            return UI_HANDLED | UI_REDRAW;
        }
        int up = key == '>' || key == '.';
        c->sel = c->sel < 0 ? (up ? 0 : c->n - 1) : c->sel + (up ? 1 : -1);
        c->sel = c->sel < 0 ? 0 : c->sel >= c->n ? c->n - 1 : c->sel;
        return UI_HANDLED | UI_REDRAW;
    }
    if (c->sel < 0 || c->sel >= c->n || !c->plans) {
        snprintf(s->msg, sizeof s->msg, "select a point of the curve first (< / >)");
        return UI_HANDLED | UI_REDRAW;
    }
    const ui_choice *pc = c->plans + (size_t)c->sel * (size_t)s->n_layers;
    int changed = 0;
    for (int k = 0; k < s->n_layers; ++k) {
        ui_layer *l = &s->layers[k];
        if (pc[k].method != DECOMP_NONE && !(l->methods & (1u << pc[k].method)))
            continue;
        if (!pipe_choice_equal(&l->cur, &pc[k])) {
            l->cur = pc[k];
            changed = 1;
        }
    }
    snprintf(s->msg, sizeof s->msg, "curve point %.1fx applied to the sliders%s", c->ratio[c->sel],
             changed ? " (u undoes)" : " (already there)");
    if (!changed)
        return UI_HANDLED | UI_REDRAW;
    s->dirty = 1;
    ++s->gen;
    ui_undo_record(s);
    return UI_HANDLED | UI_REDRAW | UI_RECOMPUTE;
}

/* `F` on Search: fine-tune the slider plan, or say why it cannot. */
static unsigned ui_finetune_key(ui_state *s)
{
    if (s->ft.running)
        return UI_HANDLED;
    if (!s->ft.available) {
        snprintf(s->ft.msg, sizeof s->ft.msg,
                 "fine-tuning needs the full CIFAR-10 training set: not found (--data DIR)");
        return UI_HANDLED | UI_REDRAW;
    }
    if (s->search.running) {
        snprintf(s->ft.msg, sizeof s->ft.msg, "a search is running: stop it (x) before fine-tuning");
        return UI_HANDLED | UI_REDRAW;
    }
    s->ft.running = 1;
    s->ft.done = 0;
    s->ft.have_model = 0;
    s->ft.n = 0;
    s->ft.progress = 0;
    snprintf(s->ft.msg, sizeof s->ft.msg, "fine-tuning pending: %d epochs", s->ft.epochs);
    return UI_HANDLED | UI_REDRAW | UI_FT_START;
}

/* The rank keys of the selected layer (Layers, Spectrum, Accuracy, Trade-offs and Search). */
static unsigned slider_key(ui_state *s, int key)
{
    if (key == 'R')
        return ui_reset_all(s);
    if (key == ':')
        return prompt_open(s);
    if (s->n_layers <= 0)
        return UI_HANDLED;
    ui_layer *l = &s->layers[s->sel];
    switch (key) {
    case UI_K_UP:
    case 'k':
        return ui_select_row(s, ui_view_step(s, -1));
    case UI_K_DOWN:
    case 'j':
        return ui_select_row(s, ui_view_step(s, +1));
    case UI_K_LEFT:
        return rank_step(s, -1, 0);
    case UI_K_RIGHT:
        return rank_step(s, +1, 0);
    case UI_K_PGUP:
        return rank_step(s, +page_step(l), 0);
    case UI_K_PGDN:
        return rank_step(s, -page_step(l), 0);
    case UI_K_HOME:
        return rank_step(s, 0, -1);
    case UI_K_END:
        return rank_step(s, 0, +1);
    case 'm':
        return cycle_method(s);
    case 'e':
        return apply_evbmf(s);
    case '0':
        return ui_set_choice(s, l, DECOMP_NONE, 0, 0);
    case '[':
    case ']':
        if (l->cur.method != DECOMP_TUCKER2)
            return UI_HANDLED;
        return ui_set_choice(s, l, l->cur.method, l->cur.rank,
                          ui_effective_rank2(l) + (key == ']' ? 1 : -1) < 1
                              ? 1
                              : ui_effective_rank2(l) + (key == ']' ? 1 : -1));
    default:
        return UI_HANDLED;
    }
}

static unsigned layers_key(ui_state *s, int key)
{
    unsigned vf = s->screen == SCR_LAYERS ? ui_view_key(s, key) : 0;
    if (vf)
        return vf;
    if (key == 'n') {
        s->full_names = !s->full_names;
        snprintf(s->msg, sizeof s->msg, "%s", s->full_names ? "full node names (n: short names)"
                                                            : "short names (n: full node names)");
        return UI_HANDLED | UI_REDRAW;
    }
    if (key == ':' || key == UI_K_ENTER)
        return prompt_open(s);
    return slider_key(s, key);
}

static unsigned spectrum_key(ui_state *s, int key)
{
    if (key == 'l') {
        s->spec_log = !s->spec_log;
        return UI_HANDLED | UI_REDRAW;
    }
    return slider_key(s, key);
}

static unsigned tradeoffs_key(ui_state *s, int key)
{
    if (key == 'c' || key == 'C')
        return ui_curve_key(s, key == 'C');
    if (key == '<' || key == ',' || key == '>' || key == '.' || key == UI_K_ENTER || key == 'a')
        return curve_point_key(s, key);
    if (key == 'S')
        return UI_HANDLED | UI_REDRAW | UI_SWEEP;
    return slider_key(s, key);
}

static unsigned search_key(ui_state *s, int key)
{
    switch (key) {
    case 's':
    case UI_K_ENTER:
        if (!s->search.available) {
            snprintf(s->msg, sizeof s->msg, "the rank search needs the CIFAR-10 training set: not found (--data DIR)");
            return UI_HANDLED | UI_REDRAW;
        }
        return s->search.running ? UI_HANDLED : UI_HANDLED | UI_REDRAW | UI_SEARCH_START;
    case 'x':
    case UI_K_ESC:
        if (s->ft.running)
            return UI_HANDLED | UI_REDRAW | UI_FT_STOP;
        return s->search.running ? UI_HANDLED | UI_REDRAW | UI_SEARCH_STOP : UI_HANDLED;
    case 'F':
        return ui_finetune_key(s);
    case 'a':
        if (!s->search.have_result || s->search.running)
            return UI_HANDLED;
        return apply_search(s);
    case 't':
        if (!s->search.running)
            s->search.strategy = (s->search.strategy + 1) % 4;
        return UI_HANDLED | UI_REDRAW;
    case 'o':
        if (!s->search.running)
            s->search.objective = (s->search.objective + 1) % 3;
        return UI_HANDLED | UI_REDRAW;
    case 'f':
        /* a run keeps the fit it started with: its tables and factors are measured under it */
        if (s->search.running || s->ft.running || s->curve.running) {
            snprintf(s->msg, sizeof s->msg, "the fit changes once the running search, fine-tuning or curve ends");
            return UI_HANDLED | UI_REDRAW;
        }
        if (!s->search.available) {
            snprintf(s->msg, sizeof s->msg, "fitting to outputs needs the CIFAR-10 training images (--data DIR)");
            return UI_HANDLED | UI_REDRAW;
        }
        s->search.fit_outputs = !s->search.fit_outputs;
        snprintf(s->msg, sizeof s->msg, "%s", s->search.fit_outputs
                     ? "fit outputs: the next search, F and C fit the factors to the layer outputs (1,000 training images)"
                     : "fit weights: the next search, F and C factorize the weights as the sliders do");
        return UI_HANDLED | UI_REDRAW;
    case '+':
    case '=':
    case '-':
        if (!s->search.running) {
            s->search.tol += key == '-' ? -0.5 : 0.5;
            if (s->search.tol < 0.5)
                s->search.tol = 0.5;
            if (s->search.tol > 20)
                s->search.tol = 20;
        }
        return UI_HANDLED | UI_REDRAW;
    default:
        return slider_key(s, key);
    }
}

static unsigned example_screen_key(ui_state *s, int key)
{
    unsigned f = example_key(s, key);
    return f ? f : UI_HANDLED;
}

/* ---- the screens ------------------------------------------------------------------------------ */

#define SLIDER_KEYS                                                                                  \
    "up/down, j/k           select a layer (mouse: click a row; wheel scrolls)",                    \
        "left/right             rank -1 / +1   (mouse: click or drag on the slider)",               \
        "PgUp / PgDn            rank +8 / -8 (or 10 % of the range)",                               \
        "Home / End             rank 1 / largest", "m                      cycle the method: none svd slice-svd spatial-svd cp tucker2", \
        "[ / ]                  tucker2: input-side rank -1 / +1",                                   \
        "e                      apply the EVBMF rank suggestion",                                    \
        "0                      reset the layer (no factorization)",                                 \
        "R                      reset every layer (u undoes it)",                                    \
        ": (Layers: or Enter)   type the exact rank of the layer"
/* the sliders' keys and w as every screen but Search (which saves its fine-tuned net) has it */
#define SLIDER_HELP SLIDER_KEYS, "w                      save the plan and the factorized ONNX (atomically)"

static const char *const help_layers[] = {
    "/                      filter the table (name, op or method; Enter keeps, Esc clears)",
    "s                      sort: graph order, params, MACs, error (w.err), sensitivity (drop)",
    "                       drop: accuracy points lost with the layer factorized alone at its rank (~: on the first 400 images, until the whole set's figure)",
    "n                      full node names / short names", SLIDER_HELP};
static const char *const help_spectrum[] = {"l                      linear / log scale", SLIDER_HELP};
static const char *const help_accuracy[] = {SLIDER_HELP};
static const char *const help_tradeoffs[] = {
    "S                      re-run the rank sweep of the layer",
    "c                      accuracy vs 1.5x..4x fewer params (search tables, background)",
    "C                      the same curve with each point fine-tuned too (needs the training set)",
    "< / >                  select a point of the curve",
    "Enter, a               apply the selected point's plan to the sliders (u undoes)", SLIDER_HELP};
static const char *const help_search[] = {
    "s, Enter               start a rank search on the validation split",
    "x, Esc                 stop the search (or the fine-tuning)",
    "a                      apply the search's plan to the sliders",
    "t                      cycle the strategy: naive bisect global evbmf",
    "o                      cycle the objective: params macs both",
    "+ / -                  tolerance +0.5 / -0.5 points",
    "f                      fit the factors to the weights / to the layer outputs on 1,000 training",
    "                       images (as --fit outputs), for the search, F and the curve's C",
    "F                      fine-tune the slider plan 3 epochs (full data)",
    "w                      save the fine-tuned ONNX once there is one (else the plan and the factorized ONNX)",
    SLIDER_KEYS};
static const char *const help_example[] = {
    "left/right, space      slide the window (Home: first position)",
    "s                      stride 1 / 2",
    "r, up/down             rank of the kernel's SVD",
    "E                      edit a cell (Tab X/K, arrows move, Enter sets, Esc ends)",
    "D                      back to the default example"};

static const char *const help_graph[] = {
    "up/down, PgUp/PgDn     select a node (Home/End: first/last)",
    "Enter                  on a weighted node (Conv/Gemm/MatMul): its slider on the Layers screen",
    "columns                output shape per image, params, MACs per image, measured time",
    "time                   CPU microseconds per image on one thread, over the first test images, measured in the background when the screen first shows (CLI: rankscope info MODEL --time)",
    "with a plan            the plan-applied model (the one evaluation runs) is timed too, again after every change: a factorized node shows its chain's time, its original time beside (was), and its chain's nodes as rows under it; ~ marks figures of an earlier plan while the new one is measured",
    "fused, view            fused: the node runs inside the kernel of an earlier node (Conv+Relu+MaxPool, Conv+Add+Relu), whose time includes it; view: Flatten/Reshape, nothing runs"};

#define HELP(a) a, (int)(sizeof a / sizeof a[0])
const ui_screen_def ui_screens[SCR_COUNT] = {
    {"Layers", layers_key, HELP(help_layers),
     "<-/-> rank  m method  / filter  s sort  n names  e EVBMF  0 reset  w save  Tab/1-7  ? help  q quit"},
    {"Spectrum", spectrum_key, HELP(help_spectrum),
     "<-/-> rank  up/down layer  m method  l linear/log  e EVBMF  Tab/1-7 screens  ? help  q quit"},
    {"Accuracy", layers_key, HELP(help_accuracy),
     "<-/-> rank  up/down layer  m method  w save  Tab/1-7 screens  ? help  q quit"},
    {"Trade-offs", tradeoffs_key, HELP(help_tradeoffs),
     "up/down layer  <-/-> rank  S re-sweep  c curve  C +fine-tuned  </> point  a apply  ? help  q quit"},
    {"Search", search_key, HELP(help_search),
     "s start  x stop  a apply  F fine-tune  t strategy  o objective  +/- tol  f fit  Tab/1-7  ? help  q quit"},
    {"Example", example_screen_key, HELP(help_example),
     "<-/-> slide window  s stride  r rank  E edit a cell  D default  Tab/1-7  ? help  q quit"},
    {"Graph", ui_graph_key, HELP(help_graph), "up/down node  Enter its slider  Tab/1-7  ? help  q quit"},
};

static const char *const help_global[] = {
    "1..7, Tab, Shift-Tab   switch screen (Layers Spectrum Accuracy Trade-offs Search Example Graph)",
    "?, h                   this help (up/down/PgUp/PgDn scroll it, any other key closes it)",
    "u / Ctrl-R             undo / redo a rank or method change",
    "o (Search: O)          open another model: the zoo, the shipped net, recent files, .onnx here;",
    "                       in it: d lists another directory, c compares the selected with this one",
    "W                      save as: type the path prefix (asks before replacing a file)",
    "mouse                  click a tab label or a key in the footer to press it",
    "q, Ctrl-C              quit (asks first when changes are unsaved or jobs run)",
};
static const char *const help_tail[] = {
    "Every change re-factorizes the layer and re-evaluates in the background;",
    "[eval NN%] in the title bar means the shown accuracy is not yet for the current ranks.",
};

static const char *const help_browser[] = {
    "up/down, click         select a model (a click on the selected one opens it); PgUp/PgDn a page, Home/End the ends",
    "Enter                  open it on a worker (asks first when rank changes are unsaved)",
    "Esc                    close the browser; while a model opens: cancel the opening",
    "c                      compare the selected model with the open one, layer by layer",
    "d                      type another directory to list its .onnx files",
    "w                      save the current plan first",
    "columns                params, MACs per image, test accuracy when known (the zoo's",
    "                       catalogue, or the figure measured when it was last opened)"};
static const ui_screen_def browser_def = {"Model browser", NULL, HELP(help_browser), ""};

static const char *const help_compare[] = {
    "up/down, j/k, click    select a layer; PgUp/PgDn a page, Home/End the ends; the wheel scrolls",
    "Esc, c                 back to the screen",
    "o                      the model browser: another model to open, or to compare (c there)",
    ("A and B lines          params, MACs per image, accuracy on the explorer's set (B's measured in the "
     "background, its difference to A in points); the full test set's when the zoo catalogue or the recent "
     "files know it"),
    ("columns                A's params and MACs, B's (a factorized layer: its whole factor chain), A/B the "
     "params ratio; in B: same shape, other shape, N factors, not in B, only in B")};
static const ui_screen_def compare_def = {"Comparison (A: the open model, B: --compare)", NULL, HELP(help_compare), ""};

int ui_help_lines(const ui_state *s, const char **out, int max)
{
    const ui_screen_def *d = s->browse.active ? &browser_def
                             : s->cmp.active  ? &compare_def
                                              : &ui_screens[s->screen >= 0 && s->screen < SCR_COUNT ? s->screen : 0];
    int n = 0;
#define ADD(str)                                                                                     \
    do {                                                                                             \
        if (n < max)                                                                                 \
            out[n] = (str);                                                                          \
        ++n;                                                                                         \
    } while (0)
    ADD(d->name);
    ADD("");
    for (int i = 0; i < d->n_help; ++i)
        ADD(d->help[i]);
    ADD("");
    ADD("Everywhere");
    for (size_t i = 0; i < sizeof help_global / sizeof help_global[0]; ++i)
        ADD(help_global[i]);
    ADD("");
    for (size_t i = 0; i < sizeof help_tail / sizeof help_tail[0]; ++i)
        ADD(help_tail[i]);
#undef ADD
    return n;
}

/* While the help is open: scroll keys scroll it, any other key closes it. */
static unsigned help_key(ui_state *s, int key)
{
    int step = key == UI_K_UP || key == 'k' ? -1 : key == UI_K_DOWN || key == 'j' ? 1
             : key == UI_K_PGUP ? -10 : key == UI_K_PGDN ? 10 : 0;
    if (!step && key != UI_K_HOME && key != UI_K_END) {
        s->help = 0;
        s->help_scroll = 0;
        return UI_HANDLED | UI_REDRAW;
    }
    char lines[192][UI_HELP_LINE];
    int n = ui_help_wrapped(s, lines, 192);
    int max = n - ui_help_rows(s);
    s->help_scroll = key == UI_K_HOME ? 0 : key == UI_K_END ? max : s->help_scroll + step;
    if (s->help_scroll > max)
        s->help_scroll = max;
    if (s->help_scroll < 0)
        s->help_scroll = 0;
    return UI_HANDLED | UI_REDRAW;
}

int ui_help_box_width(const ui_state *s)
{
    const char *lines[128];
    int n = ui_help_lines(s, lines, 128), longest = 72; /* the scroll note needs ~70 */
    for (int i = 0; i < n && i < 128; ++i)
        longest = (int)strlen(lines[i]) > longest ? (int)strlen(lines[i]) : longest;
    longest = longest > 100 ? 100 : longest; /* a paragraph-long entry wraps rather than widens the box */
    return longest + 4 < s->cols ? longest + 4 : s->cols;
}

/* 23 for a key line ("m    cycle the method") or its continuation, 2 for free text. */
static int help_indent(const char *p)
{
    return strlen(p) > 23 && p[22] == ' ' && p[23] != ' ' && p[21] == ' ' ? 23 : 2;
}

/* A line under the description column that goes on with the sentence of the line above it
 * (not after a ';' or '.' there, which ends a clause: the next one starts its own line). */
static int help_continues(const char *above, const char *p)
{
    size_t al = strlen(above);
    if (help_indent(p) != 23 || strspn(p, " ") != 23 || (al && (above[al - 1] == ';' || above[al - 1] == '.')))
        return 0;
    size_t word = strcspn(p + 23, " ");
    return word == 0 || p[23 + word - 1] != ':';
}

int ui_help_wrapped(const ui_state *s, char (*out)[UI_HELP_LINE], int max)
{
    const char *lines[128];
    int n = ui_help_lines(s, lines, 128), room = ui_help_box_width(s) - 4, k = 0;
    room = room < 20 ? 20 : room > UI_HELP_LINE - 1 ? UI_HELP_LINE - 1 : room;
    for (int i = 0; i < n && i < 128; ++i) {
        const char *p = lines[i];
        /* a key line ("m    cycle the method") continues under its description column */
        int indent = help_indent(p);
        /* its next lines that only continue the sentence (not a "label: ..." of their own) are
         * one paragraph with it, wrapped at this box's width rather than where the source broke */
        char joined[4 * UI_HELP_LINE];
        if (indent == 23 && i + 1 < n && i + 1 < 128 && help_continues(lines[i], lines[i + 1])) {
            size_t at = (size_t)snprintf(joined, sizeof joined, "%s", p);
            while (i + 1 < n && i + 1 < 128 && help_continues(lines[i], lines[i + 1]) && at < sizeof joined)
                at += (size_t)snprintf(joined + at, sizeof joined - at, " %s", lines[++i] + 23);
            p = joined;
        }
        int first = 1;
        do {
            int width = first ? room : room - indent, len = (int)strlen(p);
            int cut = len;
            if (len > width) {
                cut = width;
                while (cut > 0 && p[cut] != ' ')
                    --cut;
                if (cut == 0)
                    cut = width;
            }
            if (k < max)
                snprintf(out[k], UI_HELP_LINE, "%*s%.*s", first ? 0 : indent, "", cut, p);
            ++k;
            p += cut;
            while (*p == ' ')
                ++p;
            first = 0;
        } while (*p);
    }
    return k;
}

int ui_help_rows(const ui_state *s)
{
    int h = s->lines - 4; /* the box inside a one-line margin and its own border rows */
    return h < 1 ? 1 : h;
}

/* ---- save as ------------------------------------------------------------------------------------ */

static unsigned saveas_open(ui_state *s)
{
    ui_saveas *a = &s->saveas;
    memset(a, 0, sizeof *a);
    a->active = 1;
    snprintf(a->buf, sizeof a->buf, "%s", s->save_prefix);
    a->len = (int)strlen(a->buf);
    return UI_HANDLED | UI_REDRAW;
}

static unsigned saveas_key(ui_state *s, int key)
{
    ui_saveas *a = &s->saveas;
    if (a->asking) { /* "PATH exists: overwrite?" */
        a->asking = 0;
        if (key == 'y' || key == 'Y') {
            a->overwrite = 1;
            return UI_HANDLED | UI_REDRAW | UI_SAVE_AS;
        }
        snprintf(a->note, sizeof a->note, "%.400s kept, edit the path", a->exists);
        return UI_HANDLED | UI_REDRAW;
    }
    a->note[0] = 0;
    switch (key) {
    case UI_K_ESC:
        a->active = 0;
        snprintf(s->msg, sizeof s->msg, "save as: cancelled");
        return UI_HANDLED | UI_REDRAW;
    case UI_K_ENTER:
    case '\r':
        if (a->len == 0)
            return UI_HANDLED;
        a->overwrite = 0;
        return UI_HANDLED | UI_REDRAW | UI_SAVE_AS;
    case UI_K_BACKSPACE:
    case 127:
    case 8:
        if (a->len > 0)
            a->buf[--a->len] = 0;
        return UI_HANDLED | UI_REDRAW;
    case 21: /* ^U: clear the line, as shells do */
        a->len = 0;
        a->buf[0] = 0;
        return UI_HANDLED | UI_REDRAW;
    default:
        if (key >= 32 && key < 127 && a->len < 480) { /* app.c keeps 490 bytes of it */
            a->buf[a->len++] = (char)key;
            a->buf[a->len] = 0;
            return UI_HANDLED | UI_REDRAW;
        }
        return UI_HANDLED;
    }
}

/* q, Q and ^C: quit, asking first when rank changes are unsaved or background jobs run. */
static unsigned ui_quit_key(ui_state *s, int key)
{
    char jobs[160];
    int n_jobs = ui_jobs_text(s, jobs, sizeof jobs);
    if (!s->dirty && !n_jobs)
        return UI_HANDLED | UI_QUIT;
    s->confirm_quit = 1;
    /* short enough that 80 columns show it whole with one job named */
    const char *again = key == 3 ? "^C/q/y quit" : "q/y quit";
    if (s->dirty && n_jobs)
        snprintf(s->msg, sizeof s->msg, "Unsaved changes, running: %s. Quit anyway? %s, w save, else stay", jobs, again);
    else if (s->dirty)
        snprintf(s->msg, sizeof s->msg, "Unsaved rank changes. Quit anyway? %s, w save, any other key stays", again);
    else
        snprintf(s->msg, sizeof s->msg, "Running: %s. Quit and stop them? %s, any other key stays", jobs, again);
    return UI_HANDLED | UI_REDRAW;
}

int ui_escape_key(const char *seq)
{
    if (seq[0] != '[' && seq[0] != 'O')
        return 0;
    const char *p = seq + 1;
    int param = 0;
    if (seq[0] == '[')
        while (*p >= '0' && *p <= '9')
            param = param * 10 + (*p++ - '0');
    while (*p >= 0x20 && *p <= 0x3f) /* more parameters (";5" modifiers, "<" of SGR mouse) */
        ++p;
    switch (*p) {
    case 'A': return UI_K_UP;
    case 'B': return UI_K_DOWN;
    case 'C': return UI_K_RIGHT;
    case 'D': return UI_K_LEFT;
    case 'H': return UI_K_HOME;
    case 'F': return UI_K_END;
    case 'Z': return UI_K_BTAB;
    case '~':
        switch (param) {
        case 1:
        case 7: return UI_K_HOME;
        case 4:
        case 8: return UI_K_END;
        case 5: return UI_K_PGUP;
        case 6: return UI_K_PGDN;
        default: return 0;
        }
    default: return 0;
    }
}

unsigned ui_key(ui_state *s, int key)
{
    if (key == UI_K_RESIZE)
        return UI_HANDLED | UI_REDRAW;
    if (s->help)
        return help_key(s, key);
    if (s->confirm_quit) {
        s->confirm_quit = 0;
        s->msg[0] = 0;
        if (key == 'q' || key == 'y' || key == 'Y' || key == 'Q' || key == 3)
            return UI_HANDLED | UI_QUIT;
        if (key == 'w')
            return UI_HANDLED | UI_REDRAW | UI_SAVE;
        return UI_HANDLED | UI_REDRAW;
    }
    if (ui_too_small(s)) /* only the notice is on screen: nothing may change unseen */
        return key == 'q' || key == 'Q' || key == 3 ? ui_quit_key(s, key) : UI_HANDLED;
    if (s->screen == SCR_EXAMPLE && s->edit.active)
        return edit_key(s, key);
    if (s->prompt.active)
        return prompt_key(s, key);
    if (s->saveas.active && key != 3)
        return saveas_key(s, key);
    if (s->view.editing && s->screen == SCR_LAYERS && key != 3) /* typed text is the filter's */
        return ui_view_key(s, key);
    /* ^C asks to quit from anywhere; so do q and ? here, as the footer says on every screen (Esc
     * closes the browser or cancels its opening) */
    if (s->browse.active && key != 3 &&
        (s->browse.dir_editing || (key != 'q' && key != 'Q' && key != '?' && key != 'h')))
        return ui_browser_key(s, key);
    if (s->cmp.active && key != 3 && key != '?' && key != 'h' && key != 'q' && key != 'Q' && key != 'o')
        return ui_compare_key(s, key);
    s->msg[0] = 0;

    /* global keys */
    switch (key) {
    case 'q':
    case 'Q':
    case 3: /* ^C, as the terminal delivers it (SIGINT) */
        return ui_quit_key(s, key);
    case 'o':
        if (s->screen == SCR_SEARCH && !s->cmp.active) /* there: the objective (unless compared over it) */
            break;
        /* fall through */
    case 'O':
        s->browse.active = 1;
        s->browse.sel = 0;
        s->browse.confirm = 0;
        return UI_HANDLED | UI_REDRAW | UI_BROWSE;
    case 'u':
        return ui_undo_step(s, -1);
    case 18: /* ^R */
        return ui_undo_step(s, +1);
    case '?':
    case 'h':
        s->help = 1;
        s->help_scroll = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_TAB:
        return set_screen(s, (s->screen + 1) % SCR_COUNT);
    case UI_K_BTAB:
        return set_screen(s, (s->screen + SCR_COUNT - 1) % SCR_COUNT);
    case 'W':
        return saveas_open(s);
    case 'w':
        if (s->screen == SCR_SEARCH && s->ft.have_model && !s->ft.running)
            return UI_HANDLED | UI_REDRAW | UI_FT_SAVE; /* the fine-tuned net, not the plan */
        return UI_HANDLED | UI_REDRAW | UI_SAVE;
    case 12: /* ^L */
        return UI_HANDLED | UI_REDRAW;
    default:
        break;
    }
    if (key >= '1' && key < '1' + SCR_COUNT)
        return set_screen(s, key - '1');
    return ui_screens[s->screen].key(s, key);
}

