/* test_ui_view.c — the explorer's table view, frame and trade-off curve without a terminal: the
 * `/` filter, the `s` sort, row positions through both, the mouse on a filtered table, row names
 * that never read the same (ResNet-20's full node names at every width), the scroll bar's thumb,
 * clicks on tabs and footer keys, save-as, and the curve's points (selected, applied, fine-tuned
 * by the real worker on a small subset of the shipped sample), the curve's and the fine-tuning's status
 * fitted to 80 columns. */
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/ui/fmt.h"
#include "../src/ui/searchrun.h"
#include "../src/ui/state.h"
#include "rankscope/onnx.h"

static rs_model *load_model(const char *rel)
{
    const char *root = getenv("RS_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root ? root : "..", rel);
    rs_err e = {{0}};
    rs_model *m = onnx_load(path, &e);
    CHECK(m != NULL, "load %s: %s", path, m ? "ok" : e.msg);
    return m;
}

static int find(const ui_state *s, const char *node_name)
{
    for (int k = 0; k < s->n_layers; ++k)
        if (!strcmp(s->layers[k].node_name, node_name))
            return k;
    return -1;
}

/* Terminal cells of a UTF-8 string (every character here is one cell wide). */
static int w_cells(const char *s)
{
    int n = 0;
    for (; *s; ++s)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void type(ui_state *s, const char *text)
{
    for (; *text; ++text)
        ui_key(s, (unsigned char)*text);
}

static void test_filter_and_sort(ui_state *s)
{
    s->cols = 100;
    s->lines = 30;
    int n = s->n_layers;
    CHECK(ui_view_count(s) == n && ui_view_layer(s, 3) == 3, "no filter: every layer in graph order");
    ui_key(s, UI_K_DOWN);
    ui_key(s, UI_K_DOWN);
    CHECK(s->sel == 2, "down twice: layer 2");
    unsigned f = ui_key(s, '/');
    CHECK(s->view.editing && (f & UI_REDRAW), "/ opens the filter");
    type(s, "shortcut"); /* s and o would sort / open the browser outside the filter */
    CHECK(!s->browse.active && s->view.sort == UI_SORT_GRAPH, "typed letters go to the filter, not to s or o");
    CHECK(ui_view_count(s) == 2, "\"shortcut\" lists the two shortcut convs (%d)", ui_view_count(s));
    int a = find(s, "/stages/stages.3/shortcut/shortcut.0/Conv"), b = find(s, "/stages/stages.6/shortcut/shortcut.0/Conv");
    CHECK(a >= 0 && b >= 0 && ui_view_layer(s, 0) == a && ui_view_layer(s, 1) == b, "in graph order (%d %d)", a, b);
    CHECK(s->sel == a, "the selection moved to the first listed layer (%d)", s->sel);
    char buf[256];
    CHECK(ui_prompt_text(s, buf, sizeof buf) && strstr(buf, "filter: shortcut_") && strstr(buf, "2 of 22"),
          "the status line shows the filter as typed (%s)", buf);
    ui_key(s, UI_K_DOWN);
    CHECK(s->sel == b, "down moves within the listed rows");
    ui_key(s, UI_K_DOWN);
    CHECK(s->sel == b, "and stops at the last listed");
    f = ui_key(s, 'q');
    CHECK(!(f & UI_QUIT) && ui_view_count(s) == 0, "q while typing is text: nothing matches \"shortcutq\"");
    ui_key(s, UI_K_BACKSPACE);
    CHECK(ui_view_count(s) == 2, "Backspace: two again");
    ui_key(s, UI_K_ENTER);
    CHECK(!s->view.editing && ui_view_count(s) == 2 && strstr(s->msg, "2 of 22"), "Enter keeps the filter (%s)", s->msg);
    f = ui_key(s, UI_K_RIGHT);
    CHECK((f & UI_RECOMPUTE) && s->layers[b].cur.method != DECOMP_NONE, "-> acts on the selected listed layer");
    ui_key(s, '0');
    /* the mouse: the first table row is the first listed layer */
    ui_table_layout t;
    ui_table_layout_of(s, &t);
    CHECK(t.rows == 2, "the table has two rows (%d)", t.rows);
    ui_mouse(s, 3, t.table_y, UI_M_PRESS);
    ui_mouse(s, 3, t.table_y, UI_M_RELEASE);
    CHECK(s->sel == a, "a click on the first row selects %s", s->layers[s->sel].node_name);
    /* the graph view's Enter on a layer the filter hides lists every layer again */
    ui_key(s, '7');
    int g;
    for (g = 0; g < s->graph.n; ++g)
        if (s->graph.nodes[g].layer == 0)
            break;
    while (s->graph.sel < g)
        ui_key(s, UI_K_DOWN);
    ui_key(s, UI_K_ENTER);
    CHECK(s->screen == SCR_LAYERS && s->sel == 0 && ui_view_count(s) == n && !s->view.filter_len,
          "Enter on a hidden layer in the graph clears the filter and selects it");
    /* Esc while typing clears */
    type(s, "/conv2");
    CHECK(ui_view_count(s) == 9, "\"conv2\": the nine blocks' second convs (%d)", ui_view_count(s));
    ui_key(s, UI_K_ESC);
    CHECK(!s->view.editing && ui_view_count(s) == n, "Esc clears the filter");
    /* sort */
    ui_key(s, 's');
    CHECK(s->view.sort == UI_SORT_PARAMS && strstr(s->msg, "params"), "s: by params (%s)", s->msg);
    int ok = 1;
    for (int i = 1; i < n; ++i) {
        const ui_layer *p = &s->layers[ui_view_layer(s, i - 1)], *q = &s->layers[ui_view_layer(s, i)];
        if (p->params < q->params || (p->params == q->params && ui_view_layer(s, i - 1) > ui_view_layer(s, i)))
            ok = 0;
    }
    CHECK(ok, "largest first, graph order among equals");
    for (int i = 0; i < n; ++i)
        ui_key(s, UI_K_UP);
    int top = ui_view_layer(s, 0);
    CHECK(top == s->sel, "the selection is the largest layer (%s)", s->layers[top].node_name);
    ui_key(s, 's');
    CHECK(s->view.sort == UI_SORT_MACS, "s: by MACs");
    ui_key(s, 's');
    CHECK(s->view.sort == UI_SORT_ERROR, "s: by error");
    ui_layer *L = &s->layers[5];
    L->cur = (ui_choice){DECOMP_SPATIAL_SVD, 3, 0};
    L->res_for = L->cur;
    L->res_valid = 1;
    L->w_err = 0.4;
    L->out_err = 0.05;
    ui_layer *M = &s->layers[9];
    M->cur = (ui_choice){DECOMP_SPATIAL_SVD, 2, 0};
    M->res_for = M->cur;
    M->res_valid = 1;
    M->w_err = 0.2;
    M->out_err = 0.3;
    ui_view_update(s);
    CHECK(ui_view_layer(s, 0) == 5 && ui_view_layer(s, 1) == 9, "by error: the measured layers first, largest first");
    /* sensitivity: the accuracy drop of the layer alone, not its output error */
    L->sens_for = L->cur;
    L->sens_valid = 1;
    L->sens_images = 400;
    L->sens_drop = 2.5;
    M->sens_for = M->cur;
    M->sens_valid = 1;
    M->sens_images = 0;
    M->sens_drop = -0.4; /* a gain: still measured, listed after the layers that lose accuracy */
    ui_key(s, 's');
    char cell[16];
    CHECK(s->view.sort == UI_SORT_SENS && ui_view_layer(s, 0) == 5 && ui_view_layer(s, 1) == 9 &&
              strstr(s->msg, "sensitivity (drop"),
          "by sensitivity (accuracy drop, though 9's output error is larger): 5 before 9 (%s)", s->msg);
    CHECK(!strcmp(ui_sens_text(L, cell, sizeof cell), "~2.5"), "an estimate reads ~2.5 (%s)", cell);
    CHECK(!strcmp(ui_sens_text(M, cell, sizeof cell), "-0.4"), "the whole set's figure reads -0.4 (%s)", cell);
    CHECK(!strcmp(ui_sens_text(&s->layers[0], cell, sizeof cell), "-"), "an unfactorized layer reads - (%s)", cell);
    L->sens_images = 0;
    L->sens_drop = 0.1; /* refined: the order follows the refined figure */
    ui_view_update(s);
    CHECK(ui_view_layer(s, 0) == 5 && ui_view_layer(s, 1) == 9, "refined 0.1 still before -0.4");
    L->sens_drop = -1.0;
    ui_view_update(s);
    CHECK(ui_view_layer(s, 0) == 9 && ui_view_layer(s, 1) == 5, "refined to -1.0: now after 9");
    s->cols = 80;
    ui_table_layout_of(s, &t);
    CHECK(t.show[COL_DROP] && t.x[COL_SAVES] + t.w[COL_SAVES] <= s->cols - 1,
          "sorted by sensitivity at 80 columns, the drop column shows and the table fits");
    s->view.sort = UI_SORT_GRAPH;
    ui_table_layout_of(s, &t);
    CHECK(!t.show[COL_DROP], "in graph order at 80 columns it gives way");
    s->view.sort = UI_SORT_SENS;
    s->cols = 100;
    M->cur.rank = 3; /* a result for another rank is not the current one */
    ui_view_update(s);
    CHECK(ui_view_layer(s, 0) == 5 && !strcmp(ui_sens_text(M, cell, sizeof cell), "..."),
          "a stale measurement sorts as unknown and reads ... (%s)", cell);
    ui_key(s, 's');
    CHECK(s->view.sort == UI_SORT_GRAPH && ui_view_layer(s, 0) == 0, "s: back to graph order");
}

/* No two rows may read the same, whatever the name column's width. */
static void test_names(ui_state *s)
{
    for (int full = 0; full < 2; ++full) {
        s->full_names = full;
        int worst = 0, worst_w = 0;
        for (int w = 12; w <= 44; ++w) {
            int dup = 0;
            char a[256], b[256];
            for (int k = 0; k < s->n_layers; ++k) {
                ui_fit_label(s, k, w, a, sizeof a);
                if (w_cells(a) > w)
                    dup += 100;
                for (int j = k + 1; j < s->n_layers; ++j)
                    dup += !strcmp(a, ui_fit_label(s, j, w, b, sizeof b));
            }
            if (dup > worst) {
                worst = dup;
                worst_w = w;
            }
        }
        CHECK(worst == 0, "%s names: every width 12..44 gives distinct rows within the width (%d at %d)",
              full ? "full" : "short", worst, worst_w);
    }
    char a[256], b[256];
    s->full_names = 1;
    int k3 = find(s, "/stages/stages.3/shortcut/shortcut.0/Conv"), k6 = find(s, "/stages/stages.6/shortcut/shortcut.0/Conv");
    ui_fit_label(s, k3, 24, a, sizeof a);
    ui_fit_label(s, k6, 24, b, sizeof b);
    CHECK(strstr(a, "stages.3") && strstr(b, "stages.6"), "at 24 cells the shortcut convs show their stage (%s | %s)", a, b);
    s->full_names = 0;
    /* a factorized model's names ("layer1.0.conv1_f0", 17 bytes) in 16 cells: the path's leading
     * words abbreviated, the layer's own name and the indices whole; where that would read like
     * another layer's, the usual cut */
    char keep[3][sizeof s->layers[0].label];
    const char *lr[3] = {"layer1.0.conv1_f0", "layer2.0.shortcut.0", "lambda1.0.conv1_f0"};
    for (int i = 0; i < 3; ++i) {
        memcpy(keep[i], s->layers[i].label, sizeof keep[i]);
        snprintf(s->layers[i].label, sizeof s->layers[i].label, "%s", lr[i]);
    }
    ui_fit_label(s, 1, 16, a, sizeof a);
    CHECK(!strcmp(a, "l2.0.shortcut.0"), "layer2.0.shortcut.0 in 16 cells: %s", a);
    ui_fit_label(s, 0, 16, a, sizeof a);
    ui_fit_label(s, 2, 16, b, sizeof b);
    CHECK(strcmp(a, b) && w_cells(a) <= 16 && w_cells(b) <= 16 && strcmp(a, "l1.0.conv1_f0"),
          "l1.0.conv1_f0 would name two layers: cut as before (%s | %s)", a, b);
    snprintf(s->layers[2].label, sizeof s->layers[2].label, "layer1.0.conv2_f0");
    ui_fit_label(s, 0, 16, a, sizeof a);
    ui_fit_label(s, 2, 16, b, sizeof b);
    CHECK(!strcmp(a, "l1.0.conv1_f0") && !strcmp(b, "l1.0.conv2_f0"), "layer1.0.conv1_f0 in 16 cells: %s, %s", a, b);
    ui_fit_label(s, 0, 8, a, sizeof a);
    CHECK(w_cells(a) <= 8, "too narrow even abbreviated: cut to 8 cells (%s)", a);
    char ab[64];
    CHECK(!ui_abbrev_name("layer2.0.shortcut.0", 14, ab, sizeof ab) &&
              ui_abbrev_name("stages.3/shortcut.0", 16, ab, sizeof ab) && !strcmp(ab, "s.3/shortcut.0"),
          "the layer's own name is never abbreviated (shortcut.0 stays whole: %s)", ab);
    for (int i = 0; i < 3; ++i)
        memcpy(s->layers[i].label, keep[i], sizeof keep[i]);
    /* the table at 80 columns with full names fits the width */
    s->cols = 80;
    s->full_names = 1;
    ui_table_layout t;
    ui_table_layout_of(s, &t);
    int right = 0;
    for (int c = 0; c < COL_COUNT; ++c)
        if (t.show[c] && t.x[c] + t.w[c] > right)
            right = t.x[c] + t.w[c];
    CHECK(right <= 80, "80 columns, full names: the table ends at column %d", right);
    s->full_names = 0;
}

static void test_scrollbar(void)
{
    int y, l;
    fmt_scrollbar(0, 10, 10, 10, &y, &l);
    CHECK(y == 0 && l == 10, "everything visible: a full bar");
    fmt_scrollbar(0, 10, 40, 10, &y, &l);
    CHECK(y == 0 && l == 2, "first page of 40: thumb at the top, 2 cells (%d,%d)", y, l);
    fmt_scrollbar(30, 10, 40, 10, &y, &l);
    CHECK(y == 8 && l == 2, "last page: at the bottom (%d)", y);
    fmt_scrollbar(1, 10, 40, 10, &y, &l);
    CHECK(y >= 1, "one row down: no longer at the very top (%d)", y);
    fmt_scrollbar(29, 10, 40, 10, &y, &l);
    CHECK(y <= 7, "one row before the end: not yet at the bottom (%d)", y);
    fmt_scrollbar(0, 3, 1000, 3, &y, &l);
    CHECK(l == 1, "a long list: the thumb keeps one cell");
}

/* Clicks on the frame: a tab label switches to it, a footer key is pressed. */
static int cells_of(const char *t)
{
    int n = 0;
    for (; *t; ++t)
        n += ((unsigned char)*t & 0xC0) != 0x80;
    return n;
}

/* The title bar: the figures give way before the model's name does, and a name that still does
 * not fit ends in an ellipsis. */
static void test_title(ui_state *s)
{
    char left[320], right[256];
    snprintf(s->model_name, sizeof s->model_name, "resnet20-lowrank.onnx");
    snprintf(s->data_name, sizeof s->data_name, "CIFAR-10 test sample 2,000");
    s->have_orig = s->have_cur = 1;
    s->orig.accuracy = 0.91;
    s->cur.accuracy = 0.68;
    s->cur_est_images = 400;
    s->cur_gen = s->gen;
    s->cols = 160;
    ui_title_parts(s, 11, left, sizeof left, right, sizeof right);
    CHECK(strstr(left, "rankscope  resnet20-lowrank.onnx  CIFAR-10") && strstr(right, "(-23.0, est. 400 img)") &&
              strstr(right, "params 68.5K -> "),
          "160 columns: everything (%s|%s)", left, right);
    s->cols = 80;
    ui_title_parts(s, 11, left, sizeof left, right, sizeof right);
    CHECK((!strcmp(left, " resnet20-lowrank") || !strcmp(left, " resnet20-lowrank.onnx")) && strstr(right, "acc ~68.0% (-23.0)") &&
              cells_of(left) + cells_of(right) + 11 <= 80,
          "80 columns with an estimate and [eval NN%%]: the name whole, the figures short (%s|%s)", left, right);
    snprintf(s->model_name, sizeof s->model_name, "resnet20.onnx");
    ui_title_parts(s, 11, left, sizeof left, right, sizeof right);
    CHECK(!strcmp(left, " resnet20.onnx") && strstr(right, "acc ~68.0% (-23.0, est. 400 img)  params 68.5K 1.0x") &&
              cells_of(left) + cells_of(right) + 11 <= 80,
          "80 columns, a shorter name: the current figures, still saying they are an estimate (%s|%s)", left, right);
    /* a first estimate is a change measured on its own images (the original there too), applied
     * to the whole set's figure: an exact factorization reads 0.0, not the subset's +1.9 */
    s->have_orig_est = 1;
    s->orig_est.accuracy = 0.935;
    s->orig_est.images = 400;
    s->orig.accuracy = 0.916;
    s->cur.accuracy = 0.935;
    s->cols = 160;
    ui_title_parts(s, 11, left, sizeof left, right, sizeof right);
    CHECK(strstr(right, "acc 91.6% -> ~91.6% (0.0, est. 400 img)") && ui_orig_for_cur(s) == &s->orig_est,
          "an estimate: compared with the original on the same 400 images (%s)", right);
    s->cur.accuracy = 0.905;
    s->gen++; /* a newer change is being evaluated: the shown figure is still an estimate */
    ui_title_parts(s, 11, left, sizeof left, right, sizeof right);
    CHECK(strstr(right, "acc 91.6% -> ~88.6% (-3.0, est. 400 img)"),
          "a newer change pending: the estimate still says so (%s)", right);
    s->cur_gen = s->gen;
    s->orig.accuracy = 0.91;
    s->cur.accuracy = 0.68;
    s->have_orig_est = 0;
    s->cols = 80;
    snprintf(s->model_name, sizeof s->model_name, "resnet20-lowrank.onnx");
    s->cur_est_images = 0;
    CHECK(ui_orig_for_cur(s) == &s->orig, "the whole set's figure: compared with the original's");
    ui_title_parts(s, 0, left, sizeof left, right, sizeof right);
    CHECK(strstr(left, "resnet20-lowrank") && strstr(right, "acc 91.0% -> 68.0% (-23.0)  params 68.5K -> ") &&
              cells_of(left) + cells_of(right) <= 80,
          "80 columns, settled: both accuracies (%s|%s)", left, right);
    snprintf(s->model_name, sizeof s->model_name, "a-very-long-model-name-from-a-training-run-42.onnx");
    ui_title_parts(s, 11, left, sizeof left, right, sizeof right);
    CHECK(strstr(left, "\u2026") && cells_of(left) + cells_of(right) + 11 <= 80 && cells_of(left) >= 16,
          "a name that cannot fit ends in an ellipsis (%s)", left);
    s->have_orig = s->have_cur = 0;
    s->model_name[0] = 0;
}

static void test_frame(ui_state *s)
{
    int widths[] = {80, 100, 160};
    for (int wi = 0; wi < 3; ++wi) {
        s->cols = widths[wi];
        s->lines = 24;
        s->screen = SCR_LAYERS;
        int xs[SCR_COUNT], ws[SCR_COUNT];
        char text[SCR_COUNT][32];
        int end = ui_tabs_layout(s, xs, ws, text);
        CHECK(end <= s->cols, "%d columns: the tabs fit (end %d)", s->cols, end);
        int ok = 1;
        for (int i = 0; i < SCR_COUNT; ++i) {
            ui_mouse(s, xs[i] + ws[i] / 2, 1, UI_M_PRESS);
            ui_mouse(s, xs[i] + ws[i] / 2, 1, UI_M_RELEASE);
            ok &= s->screen == i;
        }
        CHECK(ok, "%d columns: a click in each tab label opens its screen", s->cols);
        ui_key(s, '1');
        ui_mouse(s, xs[3] + 1, 1, UI_M_RELEASE);
        CHECK(s->screen == 3, "a release alone (its press not reported) is a click too");
        ui_mouse(s, xs[0] + 1, 1, UI_M_PRESS);
        ui_key(s, '5');
        ui_mouse(s, xs[0] + 1, 1, UI_M_RELEASE);
        CHECK(s->screen == 4, "a release after a press that acted does not act again");
        CHECK(ui_tab_at(s, xs[1] + ws[1]) == -1 || ws[1] + xs[1] == xs[2], "between two tabs: no tab");
        /* the footer: every hint's first letter, as drawn */
        s->screen = SCR_LAYERS;
        char line[512];
        ui_footer_line(s, line, sizeof line);
        const char *q = strstr(line, "q quit"), *h = strstr(line, "? help");
        CHECK(q && h, "%d columns: the footer keeps ? help and q quit (%s)", s->cols, line);
        if (!q || !h)
            continue;
        CHECK(ui_footer_key_at(s, 1 + (int)(h - line)) == '?' && ui_footer_key_at(s, 1 + (int)(q - line) + 3) == 'q',
              "%d columns: ? help and q quit are keys", s->cols);
        const char *m = strstr(line, "m method");
        CHECK(m && ui_footer_key_at(s, 1 + (int)(m - line) + 4) == 'm', "clicking the word 'method' presses m");
        const char *lr = strstr(line, "<-/->");
        CHECK(lr && ui_footer_key_at(s, 1 + (int)(lr - line)) == UI_K_LEFT &&
                  ui_footer_key_at(s, 1 + (int)(lr - line) + 4) == UI_K_RIGHT,
              "<-/-> is left or right by the half clicked");
        CHECK(ui_footer_key_at(s, 1 + (int)(m - line) - 1) == 0, "the gap between hints is no key");
        ui_mouse(s, 1 + (int)(h - line), s->lines - 1, UI_M_PRESS);
        CHECK(s->help, "%d columns: a click on ? help opens the help", s->cols);
        ui_key(s, UI_K_ESC);
    }
    s->cols = 100;
    s->lines = 30;
    /* a click on the footer of the Trade-offs screen: c starts the curve */
    ui_key(s, '4');
    char line[512];
    ui_footer_line(s, line, sizeof line);
    const char *c = strstr(line, "c curve");
    unsigned f = c ? ui_mouse(s, 1 + (int)(c - line), s->lines - 1, UI_M_PRESS) : 0;
    CHECK(f & UI_CURVE_START, "Trade-offs: clicking 'c curve' starts the curve");
    s->curve.running = 0;
    ui_key(s, '1');
    /* too small: the frame is not drawn, clicks do nothing */
    s->cols = 60;
    f = ui_mouse(s, 3, 1, UI_M_PRESS);
    CHECK(s->screen == SCR_LAYERS, "too small: a click where a tab would be switches nothing");
    s->cols = 100;
}

/* Save as: the prompt, Esc, Enter asking the app, and the overwrite question. */
static void test_saveas(ui_state *s)
{
    snprintf(s->save_prefix, sizeof s->save_prefix, "resnet20-lowrank");
    unsigned f = ui_key(s, 'W');
    char buf[1024];
    CHECK(s->saveas.active && ui_prompt_text(s, buf, sizeof buf) && strstr(buf, "save as: resnet20-lowrank_"),
          "W opens the path prompt with the current prefix (%s)", buf);
    /* at 80 columns the hint is said shorter rather than cut ("Esc can…" in the audit) */
    int cols = s->cols;
    s->cols = 80;
    ui_prompt_text(s, buf, sizeof buf);
    size_t bl = strlen(buf);
    CHECK(cells_of(buf) <= 78 && bl > 12 && !strcmp(buf + bl - 12, "Esc cancels)") && !strstr(buf, "PREFIX"),
          "80 columns: the short hint whole (%s)", buf);
    s->cols = 160;
    ui_prompt_text(s, buf, sizeof buf);
    CHECK(strstr(buf, "(PREFIX.plan + PREFIX.onnx; Enter saves, Esc cancels, ^U clears)") != NULL,
          "160 columns: the long one (%s)", buf);
    s->cols = cols;
    ui_key(s, 21);
    type(s, "out/small");
    CHECK(!strcmp(s->saveas.buf, "out/small"), "^U clears, typing edits (%s)", s->saveas.buf);
    f = ui_key(s, 'q');
    CHECK(!(f & UI_QUIT) && !strcmp(s->saveas.buf, "out/smallq"), "q is text in the prompt");
    ui_key(s, UI_K_BACKSPACE);
    f = ui_key(s, UI_K_ENTER);
    CHECK((f & UI_SAVE_AS) && !s->saveas.overwrite, "Enter asks the app to save (no overwrite yet)");
    /* the app found the file: it asks */
    s->saveas.asking = 1;
    snprintf(s->saveas.exists, sizeof s->saveas.exists, "out/small.onnx");
    CHECK(ui_prompt_text(s, buf, sizeof buf) && strstr(buf, "out/small.onnx exists: overwrite it?"), "the question (%s)",
          buf);
    f = ui_key(s, 'n');
    CHECK(!(f & UI_SAVE_AS) && s->saveas.active && !s->saveas.asking && ui_prompt_text(s, buf, sizeof buf) &&
              strstr(buf, "out/small.onnx kept, edit the path"),
          "n keeps the file, back to the path, the prompt says so (%s)", buf);
    ui_key(s, UI_K_ENTER);
    s->saveas.asking = 1;
    f = ui_key(s, 'y');
    CHECK((f & UI_SAVE_AS) && s->saveas.overwrite, "y: save again, overwriting");
    s->saveas.active = 0;
    ui_key(s, 'W');
    f = ui_key(s, UI_K_ESC);
    CHECK(!s->saveas.active && !(f & UI_SAVE_AS), "Esc cancels");
}

static cifar10_set *subset(const cifar10_set *d, int first, int n)
{
    rs_err e;
    cifar10_set *s = cifar10_alloc(n, &e);
    if (!s)
        return NULL;
    memcpy(s->pixels, d->pixels + (size_t)first * 3072, (size_t)n * 3072);
    memcpy(s->labels, d->labels + first, (size_t)n);
    snprintf(s->source, sizeof s->source, "sample %d..%d", first, first + n);
    return s;
}

/* The curve with fine-tuning, through the explorer's worker, then a point into the sliders. */
static void test_curve(void)
{
    rs_err e = {{0}};
    rs_model *m = load_model("assets/lenet-cifar10.onnx");
    int fb = 0;
    cifar10_set *d = cifar10_load_split(NULL, "sample", &fb, &e);
    CHECK(m && d, "lenet and the sample: %s", e.msg);
    if (!m || !d) {
        model_free(m);
        cifar10_free(d);
        return;
    }
    ui_state *s = malloc(sizeof *s);
    ui_state_defaults(s);
    CHECK(ui_state_init(s, m, &e) == 0, "state: %s", e.msg);
    s->screen = SCR_TRADEOFFS;
    unsigned f = ui_key(s, '>');
    CHECK(!(f & UI_RECOMPUTE) && strstr(s->msg, "no curve yet"), "> without a curve says so (%s)", s->msg);
    f = ui_key(s, 'C');
    CHECK(!(f & UI_CURVE_START) && strstr(s->curve.msg, "training set"), "C without the training set says so (%s)",
          s->curve.msg);
    /* and in the 38 cells the curve's half of an 80-column screen leaves, whole */
    CHECK(cells_of(s->curve.msg_short) > 0 && cells_of(s->curve.msg_short) <= 38, "said short too (%s)",
          s->curve.msg_short);
    s->ft.available = 1;
    s->ft.epochs = 1;
    f = ui_key(s, 'C');
    CHECK((f & UI_CURVE_START) && s->curve.finetune && s->curve.running, "C starts the fine-tuned curve");
    cifar10_set *train = subset(d, 0, 600), *val = subset(d, 600, 300), *test = subset(d, 900, 400);
    ui_curve *c = train && val && test ? ui_curve_start(m, val, test, s->params_total, 1, train, val, NULL, 0, &e) : NULL;
    CHECK(c != NULL, "the curve worker starts: %s", e.msg);
    for (int i = 0; c && i < 6000 && s->curve.running; ++i) { /* at most 10 minutes on a loaded machine */
        ui_curve_poll(c, s);
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    int ft_all = s->curve.n > 0, in_range = 1;
    for (int i = 0; i < s->curve.n; ++i) {
        ft_all &= s->curve.acc_ft[i] >= 0 && s->curve.acc_ft[i] <= 1;
        in_range &= s->curve.ratio[i] >= ui_curve_reductions[i] * 0.999;
    }
    CHECK(s->curve.done && s->curve.n == UI_CURVE_N, "the curve is done with %d points (%s)", s->curve.n, s->curve.msg);
    CHECK(cells_of(s->curve.msg_short) > 0 && cells_of(s->curve.msg_short) <= 38, "said in 38 cells too (%s)",
          s->curve.msg_short);
    CHECK(ft_all && in_range, "every point meets its reduction and has a fine-tuned accuracy");
    /* each point's plan, as per-layer choices, gives the point's params */
    int factorized = 0;
    for (int k = 0; k < s->n_layers; ++k)
        factorized += s->curve.plans[(size_t)(UI_CURVE_N - 1) * (size_t)s->n_layers + (size_t)k].method != DECOMP_NONE;
    CHECK(factorized > 0, "the 4x point factorizes %d layers", factorized);
    ui_key(s, '>');
    ui_key(s, '>');
    ui_key(s, '>');
    ui_key(s, '<');
    CHECK(s->curve.sel == 1, "> > > < selects the second point (%d)", s->curve.sel);
    f = ui_key(s, UI_K_ENTER);
    ui_state_costs(s, m);
    double ratio = (double)s->params_total / (double)s->params_total_after;
    CHECK((f & UI_RECOMPUTE) && s->dirty && fabs(ratio - s->curve.ratio[1]) < 1e-9,
          "Enter applies it: the sliders give %.4fx, the point said %.4fx", ratio, s->curve.ratio[1]);
    f = ui_key(s, 'a');
    CHECK(!(f & UI_RECOMPUTE) && strstr(s->msg, "already there"), "a again: already there (%s)", s->msg);
    ui_key(s, 'u');
    CHECK(s->params_total_after == s->params_total || (ui_state_costs(s, m), s->params_total_after == s->params_total),
          "u undoes it in one step");
    ui_curve_stop(c);
    cifar10_free(train);
    cifar10_free(val);
    cifar10_free(test);
    cifar10_free(d);
    ui_state_free(s);
    free(s);
    model_free(m);
}

/* The name column: 16 cells when the width is short, every label whole when there is room. */
static void test_name_column(ui_state *s)
{
    int longest = 0;
    for (int k = 0; k < s->n_layers; ++k) {
        int n = (int)strlen(ui_layer_label(s, &s->layers[k]));
        longest = n > longest ? n : longest;
    }
    ui_table_layout t;
    s->cols = 80;
    s->lines = 24;
    ui_table_layout_of(s, &t);
    CHECK(t.w[COL_NAME] == 16 && longest > 16, "80 columns: the name column is 16 cells (longest label %d)", longest);
    s->cols = 160;
    s->lines = 50;
    ui_table_layout_of(s, &t);
    int right = 0;
    for (int c = 0; c < COL_COUNT; ++c)
        if (t.show[c] && t.x[c] + t.w[c] > right)
            right = t.x[c] + t.w[c];
    CHECK(t.w[COL_NAME] >= longest && right <= s->cols - 1,
          "160 columns: every label whole (%d cells for %d), the table within the width (%d)", t.w[COL_NAME], longest, right);
    s->cols = 100;
    s->lines = 30;
}

/* whether lines hold text whole: the same characters but the spaces where they broke (a path
 * longer than a line goes on at the next) */
static int holds(char (*l)[UI_STATUS_LINE], int n, const char *text)
{
    const char *t = text;
    for (int i = 0; i < n; ++i)
        for (const char *p = l[i]; *p; ++p) {
            while (*t == ' ')
                ++t;
            if (*p != ' ' && *p != *t++)
                return 0;
        }
    while (*t == ' ')
        ++t;
    return !*t;
}

/* At 80 columns the curve's failure (its half screen: 38 cells) and the fine-tuning's status
 * (78 cells) are read whole: the short form, or wrapped at spaces, never cut with an ellipsis. */
static void test_status_lines(void)
{
    ui_state *s = calloc(1, sizeof *s);
    ui_state_defaults(s);
    s->utf8 = 1;
    char l[4][UI_STATUS_LINE], rest[64];
    const char *r = fmt_wrap_line("the fine-tuned curve", 8, rest, sizeof rest);
    CHECK(!strcmp(rest, "the") && !strcmp(r, "fine-tuned curve"), "wrap: whole words (%s|%s)", rest, r);
    r = fmt_wrap_line("fine-tuned", 4, rest, sizeof rest);
    CHECK(!strcmp(rest, "fine") && !strcmp(r, "-tuned"), "wrap: a word longer than the line is cut (%s|%s)", rest, r);
    const char *why = "curve failed: /work/shared/data/cifar-10-batches-bin/data_batch_5.bin: cannot open: No "
                      "such file or directory";
    snprintf(s->curve.msg, sizeof s->curve.msg, "%s", why);
    int n = ui_curve_status(s, 38, l, 4), wide = 0;
    for (int i = 0; i < n; ++i)
        wide += cells_of(l[i]) > 38;
    CHECK(n == 4 && !wide && holds(l, n, why),
          "a failed curve's reason in 38 cells: %d lines, whole (%s / %s / %s / %s)", n, l[0], l[1], l[2], l[3]);
    n = ui_curve_status(s, 120, l, 4);
    CHECK(n == 1 && !strcmp(l[0], why), "in 120 cells, one line (%s)", l[0]);
    n = ui_curve_status(s, 38, l, 2);
    CHECK(n == 2 && cells_of(l[1]) == 38 && strstr(l[1], "\u2026"), "with 2 lines only, the last one says it is cut (%s)",
          l[1]);
    snprintf(s->curve.msg, sizeof s->curve.msg, "curve pending: 2/5 points, fine-tuning point 3 45%%");
    snprintf(s->curve.msg_short, sizeof s->curve.msg_short, "curve 2/5, tuning 3: 45%%");
    n = ui_curve_status(s, 38, l, 4);
    CHECK(n == 1 && !strcmp(l[0], s->curve.msg_short), "a status with a short form keeps to one line (%s)", l[0]);

    s->ft.epochs = 8;
    s->ft.n = 8;
    for (int i = 0; i < 8; ++i)
        s->ft.val[i] = 0.85 + 0.002 * i;
    s->ft.test_acc = 0.873;
    s->ft.have_model = 1;
    s->ft.done = 1;
    snprintf(s->ft.msg, sizeof s->ft.msg, "kept epoch 8 (best on validation); w saves it");
    n = ui_ft_status(s, 78, l, 2);
    CHECK(n == 2 && cells_of(l[0]) <= 78 && strstr(l[0], "test 87.3%") && strstr(l[0], "8:86.4%") &&
              !strcmp(l[1], s->ft.msg),
          "fine-tuned, 78 cells: the figures, then the message whole (%s / %s)", l[0], l[1]);
    n = ui_ft_status(s, 158, l, 2);
    CHECK(n == 1 && strstr(l[0], "1:85.0% 2:85.2%") && strstr(l[0], s->ft.msg), "158 cells: one line (%s)", l[0]);
    s->ft.have_model = 0;
    s->ft.running = 1;
    s->ft.progress = 0.45;
    s->ft.n = 7;
    n = ui_ft_status(s, 78, l, 2);
    CHECK(n == 1 && cells_of(l[0]) <= 78 && !strstr(l[0], "\u2026") && strstr(l[0], "7:86.2%") && strstr(l[0], "x stops"),
          "fine-tuning, 78 cells: the last epoch's figure and the key whole (%s)", l[0]);
    s->ft.running = 0;
    snprintf(s->ft.msg, sizeof s->ft.msg, "fine-tuning failed: %s", why + 14);
    n = ui_ft_status(s, 78, l, 2);
    CHECK(n == 2 && cells_of(l[0]) <= 78 && cells_of(l[1]) <= 78 && holds(l, n, s->ft.msg), "its failure wrapped whole (%s / %s)", l[0], l[1]);

    /* the Search result: every figure, and the plan whole on two lines or counted */
    static const char *const names[4] = {"conv1", "conv2", "fc1", "fc2"};
    static const int ranks[4] = {14, 44, 60, 40};
    s->n_layers = 4;
    s->layers = calloc(4, sizeof *s->layers);
    for (int k = 0; k < 4; ++k) {
        snprintf(s->layers[k].name, sizeof s->layers[k].name, "%s", names[k]);
        s->layers[k].has_searched = 1;
        s->layers[k].searched.method = k < 2 ? DECOMP_CP : DECOMP_SVD;
        s->layers[k].searched.rank = ranks[k];
    }
    s->params_total = 62006;
    s->macs_total = 651000;
    s->search.base = 0.715;
    s->search.acc = 0.706;
    s->search.within = 0;
    s->search.params = 42100;
    s->search.macs = 441600;
    n = ui_search_summary(s, 78, l, 3);
    CHECK(n == 3 && cells_of(l[0]) <= 78 && strstr(l[0], "70.6%") &&
              strstr(l[0], "(-0.9, NOT within)") && strstr(l[0], "params 1.5x fewer") &&
              strstr(l[0], "MACs 1.5x fewer") &&
              holds(l + 1, 2,
                    "plan: conv1 cp 14, conv2 cp 44, fc1 svd 60, fc2 svd 40   (a applies it to the "
                    "sliders)"),
          "Search result at 78 cells: the MACs and the plan whole (%s / %s / %s)", l[0], l[1],
          l[2]);
    n = ui_search_summary(s, 158, l, 3);
    CHECK(n == 2 && strstr(l[0], "validation accuracy 71.5% -> 70.6%") &&
              strstr(l[0], "params 62.0K -> 42.1K 1.5x") &&
              strstr(l[1], "fc2 svd 40   (a applies it to the sliders)"),
          "at 158: the long forms on one line each (%s / %s)", l[0], l[1]);
    for (int k = 0; k < 4; ++k)
        snprintf(s->layers[k].name, sizeof s->layers[k].name, "features.%d.block.%d.conv_pointwise",
                 k, k);
    n = ui_search_summary(s, 78, l, 3);
    CHECK(n == 2 && !strcmp(l[1], "plan: 4 of 4 layers factorized   (a applies it to the sliders)"),
          "a plan too long for two lines is counted (%s)", l[1]);
    ui_state_free(s);
    free(s);
}

/* The Layers screen's chain: lenet's conv1 as cp 75 is four steps; at 80 columns all four show
 * with their costs (the fourth was left out as "…"), MACs named under the first. */
static void test_chain_costs(void)
{
    ui_layer *l = calloc(1, sizeof *l);
    static const char *const text[4] = {"1x1 3->75", "5x1 dw 75", "1x5 dw 75", "1x1 75->6"};
    static const int64_t params[4] = {225, 375, 375, 456}, macs[4] = {230400, 336000, 294000, 352800};
    l->n_steps = 4;
    for (int i = 0; i < 4; ++i) {
        snprintf(l->step_text[i], sizeof l->step_text[i], "%s", text[i]);
        l->step_params[i] = params[i];
        l->step_macs[i] = macs[i];
    }
    char cost[DECOMP_MAX_FACTORS][UI_CHAIN_COST];
    int colw[DECOMP_MAX_FACTORS];
    int total = ui_chain_costs(l, 78, cost, colw), sum = 3 + 3 * 3;
    for (int i = 0; i < 4; ++i)
        sum += colw[i];
    CHECK(total <= 78 && total == sum && !strcmp(cost[0], "225 p, 230.4K MACs") && !strcmp(cost[3], "456 p, 352.8K"),
          "78 cells: the four steps and their costs (%d cells: %s | %s | %s | %s)", total, cost[0], cost[1], cost[2],
          cost[3]);
    total = ui_chain_costs(l, 98, cost, colw);
    CHECK(total <= 98 && !strcmp(cost[3], "456 p, 352.8K MACs"), "98 cells: MACs under every step (%d: %s)", total,
          cost[3]);
    free(l);
}

int main(void)
{
    rs_gsl_init();
    test_scrollbar();
    test_status_lines();
    test_chain_costs();
    rs_model *m = load_model("tests/data/zoo/resnet20.onnx");
    if (m) {
        ui_state *s = malloc(sizeof *s);
        ui_state_defaults(s);
        rs_err e = {{0}};
        CHECK(ui_state_init(s, m, &e) == 0 && s->n_layers == 22, "resnet20: %d layers %s", s->n_layers, e.msg);
        test_names(s);
        test_name_column(s);
        test_filter_and_sort(s);
        test_frame(s);
        test_title(s);
        test_saveas(s);
        ui_state_free(s);
        free(s);
        model_free(m);
    }
    test_curve();
    return check_done();
}
