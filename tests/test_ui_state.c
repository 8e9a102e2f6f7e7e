/* test_ui_state.c — the explorer's pure parts: key/mouse transitions, number and chart
 * formatting, the worked example (against a naive convolution computed here), and the
 * background worker's suffix-cached evaluation (against eval_model on a plan-applied copy). */
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/ui/example.h"
#include "../src/ui/fmt.h"
#include "../src/ui/live.h"
#include "../src/ui/searchrun.h"
#include "../src/ui/spec.h"
#include "../src/ui/state_internal.h"
#include "../src/ui/state.h"
#include "rankscope/cifar10.h"
#include "rankscope/eval.h"
#include "rankscope/onnx.h"
#include "rankscope/plan.h"

static void test_format(void)
{
    char b[64];
    CHECK(!strcmp(fmt_count(62006, b, sizeof b), "62.0K"), "62006 -> %s", b);
    CHECK(!strcmp(fmt_count(850, b, sizeof b), "850"), "850 -> %s", b);
    CHECK(!strcmp(fmt_count(999999, b, sizeof b), "1.0M"), "999999 -> %s (no 1000.0K)", b);
    CHECK(!strcmp(fmt_count(1300000, b, sizeof b), "1.3M"), "1.3M -> %s", b);
    CHECK(!strcmp(fmt_count(-2400, b, sizeof b), "-2.4K"), "-2400 -> %s", b);
    CHECK(!strcmp(fmt_ratio(2416, 1336, b, sizeof b), "1.8x"), "2416/1336 -> %s", b);
    CHECK(!strcmp(fmt_count_exact(10000, b, sizeof b), "10,000"), "10000 -> %s", b);
    CHECK(!strcmp(fmt_count_exact(-1234567, b, sizeof b), "-1,234,567"), "-1234567 -> %s", b);
    CHECK(!strcmp(fmt_count_exact(999, b, sizeof b), "999"), "999 -> %s", b);
    CHECK(!strcmp(fmt_ratio(62006, 5000, b, sizeof b), "12x"), "12.4 -> %s", b);
    CHECK(!strcmp(fmt_ratio(10, 0, b, sizeof b), "-"), "ratio by 0 -> %s", b);
    CHECK(!strcmp(fmt_pct(0.723, b, sizeof b), "72.3%"), "pct %s", b);
    CHECK(!strcmp(fmt_pts(-0.005, b, sizeof b), "-0.5"), "pts %s", b);
    CHECK(!strcmp(fmt_pts(0.0001, b, sizeof b), "0.0"), "tiny pts %s", b);
    /* the change beside two printed figures is their difference: 91.96% and 92.04% both print
     * 92.0%, so no "+0.1"; 92.04% -> 92.06% prints 92.0% -> 92.1%, a "+0.1" though 0.02 apart */
    CHECK(!strcmp(fmt_pts_between(0.9196, 0.9204, b, sizeof b), "0.0"), "92.0%% -> 92.0%% reads 0.0 (%s)", b);
    CHECK(!strcmp(fmt_pts_between(0.9204, 0.9206, b, sizeof b), "+0.1"), "92.0%% -> 92.1%% reads +0.1 (%s)", b);
    CHECK(!strcmp(fmt_pts_between(0.7080, 0.5790, b, sizeof b), "-12.9"), "70.8%% -> 57.9%% reads -12.9 (%s)", b);
    char m2[64];
    CHECK(!strcmp(fmt_cut_middle("layer2.0.shortcut.0", 14, 0, b, sizeof b), "layer2~rtcut.0") &&
              strcmp(fmt_cut_middle("layer3.0.shortcut.0", 14, 0, m2, sizeof m2), b) &&
              !strcmp(fmt_cut_middle("features.conv1", 14, 1, m2, sizeof m2), "features.conv1"),
          "a cut name keeps both ends: %s (fits: whole)", b);
    CHECK(!strcmp(fmt_err(0.2149, b, sizeof b), "0.21"), "err %s", b);
    CHECK(!strcmp(fmt_err(0.0123, b, sizeof b), "0.012"), "err %s", b);
    CHECK(!strcmp(fmt_err(6.7e-7, b, sizeof b), "6.7e-7") && strlen(b) <= 6, "tiny err fits the column: %s", b);
    CHECK(!strcmp(fmt_err(9.96e-5, b, sizeof b), "1.0e-4"), "mantissa rounding carries: %s", b);
    CHECK(!strcmp(fmt_err(3e-12, b, sizeof b), "3e-12") && strlen(b) <= 6, "two-digit exponent fits: %s", b);
    CHECK(!strcmp(fmt_slider(12, 30, 10, 0, b, sizeof b), "===|------"), "ascii slider %s (knob at round(11*9/29) = 3)", b);
    CHECK(!strcmp(fmt_slider(0, 30, 5, 0, b, sizeof b), "-----"), "inactive slider %s", b);
    CHECK(!strcmp(fmt_bar(0.5, 1.0, 4, 0, b, sizeof b), "##  "), "bar %s", b);
    CHECK(fmt_slider_pos(1, 30, 10) == 0 && fmt_slider_pos(30, 30, 10) == 9, "slider ends");
    int round_trip = 1;
    for (int p = 0; p < 20; ++p)
        if (fmt_slider_pos(fmt_slider_rank(p, 120, 20), 120, 20) != p)
            round_trip = 0;
    CHECK(round_trip, "slider column -> rank -> column is the identity");
    CHECK(fmt_slider_rank(-5, 30, 10) == 1 && fmt_slider_rank(99, 30, 10) == 30, "slider clamps");
    CHECK(!strcmp(fmt_cut("-> cp 4: 1x1 8->4", 40, 1, b, sizeof b), "-> cp 4: 1x1 8->4"), "fits: whole (%s)", b);
    CHECK(!strcmp(fmt_cut("-> spatial-svd 12: 3x1 8->12, 1x3 12->8", 12, 1, b, sizeof b), "-> spatial-\u2026"),
          "cut: an ellipsis in the last cell (%s)", b);
    CHECK(!strcmp(fmt_cut("-> spatial-svd 12", 8, 0, b, sizeof b), "-> spat~"), "ASCII: ~ (%s)", b);
    CHECK(!strcmp(fmt_cut("\u2026abc\u2502def", 5, 1, b, sizeof b), "\u2026abc\u2026"), "UTF-8 counted in cells (%s)", b);
    /* the graph's note at 80 columns: the image count goes before the line is cut ("1 thr…") */
    const char *lng = "stem.conv: 25.5 \u00b5s/img, 5.0% of 513 \u00b5s (512 images, 1 thread)",
               *sht = "stem.conv: 25.5 \u00b5s/img, 5.0% of 513 \u00b5s";
    CHECK(!strcmp(fmt_fit(lng, sht, 57, 1, b, sizeof b), sht), "fmt_fit in 57 cells: the short form whole (%s)", b);
    CHECK(!strcmp(fmt_fit(lng, sht, 70, 1, b, sizeof b), lng), "fmt_fit in 70 cells: the long form (%s)", b);
    CHECK(!strcmp(fmt_fit(lng, sht, 12, 0, b, sizeof b), "stem.conv: ~"), "fmt_fit in 12: the short form cut (%s)", b);
}

/* Naive cross-correlation, written independently of example.c. */
static double naive_at(const double x[EX_MAX_IN][EX_MAX_IN], const double k[3][3], int i, int j, int st)
{
    double acc = 0;
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b)
            acc += k[a][b] * x[i * st + a][j * st + b];
    return acc;
}

static void test_example(void)
{
    ex_state ex;
    ex_default(&ex);
    CHECK(ex.ok, "SVD of the default kernel");
    CHECK_CLOSE(ex.win_full, -2.0, 1e-12, "original kernel at the top-left gives -2 (got %g)", ex.win_full);
    CHECK_CLOSE(ex.win_low, 0.0, 1e-12, "rank-1 approximation gives 0 (got %g)", ex.win_low);
    CHECK_CLOSE(ex.s[0], 2.0, 1e-12, "s1 = 2 (%g)", ex.s[0]);
    CHECK_CLOSE(ex.s[1], 1.0, 1e-12, "s2 = 1 (%g)", ex.s[1]);
    CHECK_CLOSE(ex.s[2], 0.0, 1e-12, "s3 = 0 (%g)", ex.s[2]);
    static const double k1[3][3] = {{1, 0, -1}, {0, 0, 0}, {-1, 0, 1}};
    double d = 0;
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b)
            d = fmax(d, fabs(ex.k_low[a][b] - k1[a][b]));
    CHECK(d < 1e-12, "rank-1 kernel is [[1,0,-1],[0,0,0],[-1,0,1]] (max diff %g)", d);
    /* every output position against the naive convolution, with K and with K1 */
    double dmax = 0, dlow = 0;
    for (int i = 0; i < ex.out_h; ++i)
        for (int j = 0; j < ex.out_w; ++j) {
            dmax = fmax(dmax, fabs(ex.out_full[i][j] - naive_at(ex.x, ex.k, i, j, 1)));
            dlow = fmax(dlow, fabs(ex.out_low[i][j] - naive_at(ex.x, k1, i, j, 1)));
        }
    CHECK(ex.out_h == 3 && ex.out_w == 3, "5x5 input, 3x3 kernel -> 3x3 output");
    CHECK(dmax < 1e-12, "full outputs match the naive convolution (%g)", dmax);
    CHECK(dlow < 1e-12, "two-pass separable outputs match the naive convolution with K1 (%g)", dlow);
    CHECK(ex.mults_direct == 81 && ex.mults_low == 72, "multiplies: direct %ld (81), separable %ld (3*5*3+9*3=72)",
          ex.mults_direct, ex.mults_low);
    {
        /* stride 2 on a 6x6 input: windows start at columns 0 and 2, so the column pass needs
         * columns 0..4 only (5, not 6) */
        ex_state e2 = ex;
        e2.in_h = e2.in_w = 6;
        e2.stride = 2;
        ex_compute(&e2);
        long want = (long)e2.rank * (2 * 5 * 3 + 4 * 3);
        CHECK(e2.out_h == 2 && e2.out_w == 2 && e2.mults_direct == 36 && e2.mults_low == want,
              "stride 2, 6x6: direct %ld (36), separable %ld (%ld)", e2.mults_direct, e2.mults_low, want);
        CHECK(ex_mults_amortised(&e2) == e2.rank * 9 && ex_mults_amortised(&ex) == ex.rank * 6,
              "amortised per window: rank*(stride+1)*3 (%d, %d)", ex_mults_amortised(&e2), ex_mults_amortised(&ex));
    }
    /* full rank reproduces the kernel */
    ex.rank = 3;
    ex_compute(&ex);
    d = 0;
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b)
            d = fmax(d, fabs(ex.k_low[a][b] - ex.k[a][b]));
    CHECK(d < 1e-12 && fabs(ex.win_low - ex.win_full) < 1e-12, "rank 3 is exact (%g)", d);
    /* stride 2, second window */
    ex.rank = 1;
    ex.stride = 2;
    ex.pos = 1;
    ex_compute(&ex);
    CHECK(ex.out_h == 2 && ex.out_w == 2 && ex.win_r == 0 && ex.win_c == 2, "stride 2: 2x2 output, window 2 at (0,2)");
    CHECK_CLOSE(ex.win_full, naive_at(ex.x, ex.k, 0, 1, 2), 1e-12, "stride-2 window sum");
    /* a random kernel: the SVD reconstructs it, the column/row passes match the naive sum */
    srand(7);
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b)
            ex.k[a][b] = rand() % 7 - 3;
    ex.rank = 2;
    ex.stride = 1;
    ex.pos = 0;
    ex_compute(&ex);
    double kk[3][3];
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b)
            kk[a][b] = ex.s[0] * ex.u[0][a] * ex.v[0][b] + ex.s[1] * ex.u[1][a] * ex.v[1][b];
    CHECK(ex.s[0] >= ex.s[1] && ex.s[1] >= ex.s[2] && ex.s[2] >= 0, "singular values descending");
    CHECK_CLOSE(ex.win_low, naive_at(ex.x, kk, 0, 0, 1), 1e-9, "rank-2 separable = conv with its rank-2 kernel");
}

/* Two synthetic layers: a conv and a dense one. */
static void synth(ui_state *s)
{
    ui_state_defaults(s);
    s->n_layers = 2;
    s->layers = calloc(2, sizeof *s->layers);
    ui_layer *c = &s->layers[0], *f = &s->layers[1];
    snprintf(c->name, sizeof c->name, "conv2");
    snprintf(c->op, sizeof c->op, "Conv");
    c->methods = (1u << DECOMP_NONE) | (1u << DECOMP_SLICE_SVD) | (1u << DECOMP_SPATIAL_SVD) | (1u << DECOMP_CP) |
                 (1u << DECOMP_TUCKER2);
    c->mi[DECOMP_SLICE_SVD] = (ui_method_info){5, 0, 2, 0, 0, 5};
    c->mi[DECOMP_SPATIAL_SVD] = (ui_method_info){30, 0, 8, 0, 21, 21};
    c->mi[DECOMP_CP] = (ui_method_info){150, 0, 16, 0, 74, 74};
    c->mi[DECOMP_TUCKER2] = (ui_method_info){16, 6, 10, 5, 13, 13};
    snprintf(f->name, sizeof f->name, "fc1");
    snprintf(f->op, sizeof f->op, "Gemm");
    f->methods = (1u << DECOMP_NONE) | (1u << DECOMP_SVD);
    f->mi[DECOMP_SVD] = (ui_method_info){120, 0, 26, 0, 92, 92};
}

static void test_keys(void)
{
    ui_state *s = malloc(sizeof *s);
    synth(s);
    uint64_t g0 = s->gen;
    unsigned f = ui_key(s, UI_K_RIGHT);
    CHECK((f & UI_RECOMPUTE) && s->layers[0].cur.method == DECOMP_SPATIAL_SVD && s->layers[0].cur.rank == 21,
          "-> on an unfactorized conv picks spatial-svd at its break-even rank (%d)", s->layers[0].cur.rank);
    CHECK(s->gen == g0 + 1 && s->dirty, "a change bumps gen and marks unsaved");
    ui_key(s, UI_K_RIGHT);
    CHECK(s->layers[0].cur.rank == 22, "-> +1 (%d)", s->layers[0].cur.rank);
    ui_key(s, UI_K_PGUP);
    CHECK(s->layers[0].cur.rank == 30, "PgUp +8 (%d)", s->layers[0].cur.rank);
    f = ui_key(s, UI_K_PGUP);
    CHECK(s->layers[0].cur.rank == 30 && !(f & UI_RECOMPUTE), "clamped at the max, nothing to recompute");
    ui_key(s, UI_K_HOME);
    CHECK(s->layers[0].cur.rank == 1, "Home -> 1");
    f = ui_key(s, UI_K_LEFT);
    CHECK(s->layers[0].cur.rank == 1 && !(f & UI_RECOMPUTE), "<- clamps at 1");
    ui_key(s, UI_K_END);
    CHECK(s->layers[0].cur.rank == 30, "End -> max");
    ui_key(s, UI_K_PGDN);
    CHECK(s->layers[0].cur.rank == 22, "PgDn -8 (%d)", s->layers[0].cur.rank);
    /* method cycling on the conv: spatial -> cp -> tucker2 -> none -> slice -> spatial (no svd) */
    decomp_method seen[8];
    for (int i = 0; i < 6; ++i) {
        ui_key(s, 'm');
        seen[i] = s->layers[0].cur.method;
    }
    CHECK(seen[0] == DECOMP_CP && seen[1] == DECOMP_TUCKER2 && seen[2] == DECOMP_NONE &&
              seen[3] == DECOMP_SLICE_SVD && seen[4] == DECOMP_SPATIAL_SVD && seen[5] == DECOMP_CP,
          "m cycles cp tucker2 none slice-svd spatial-svd cp on a conv");
    int svd_seen = 0;
    for (int i = 0; i < 10; ++i) {
        ui_key(s, 'm');
        if (s->layers[0].cur.method == DECOMP_SVD)
            svd_seen = 1;
    }
    CHECK(!svd_seen, "dense svd never offered for the conv");
    ui_key(s, 'e');
    CHECK(s->layers[0].cur.rank == s->layers[0].mi[s->layers[0].cur.method].evbmf, "e applies the EVBMF rank");
    ui_key(s, '0');
    CHECK(s->layers[0].cur.method == DECOMP_NONE && s->layers[0].cur.rank == 0, "0 resets");
    /* dense layer */
    f = ui_key(s, UI_K_DOWN);
    CHECK(s->sel == 1 && !(f & UI_RECOMPUTE), "down selects fc1");
    ui_key(s, UI_K_DOWN);
    CHECK(s->sel == 1, "selection clamps at the last row");
    ui_key(s, 'm');
    CHECK(s->layers[1].cur.method == DECOMP_SVD && s->layers[1].cur.rank == 92, "m on fc1 -> svd 92");
    ui_key(s, 'm');
    CHECK(s->layers[1].cur.method == DECOMP_NONE, "m on fc1 -> back to none (only none and svd valid)");
    ui_key(s, 'e');
    CHECK(s->layers[1].cur.method == DECOMP_SVD && s->layers[1].cur.rank == 26, "e on an unfactorized layer");
    /* tucker2's second rank */
    ui_key(s, UI_K_UP);
    while (s->layers[0].cur.method != DECOMP_TUCKER2)
        ui_key(s, 'm');
    CHECK(ui_effective_rank2(&s->layers[0]) == 6, "tucker2 rank2 defaults to min(rank, C_in) = 6");
    ui_key(s, '[');
    CHECK(s->layers[0].cur.rank2 == 5, "[ lowers rank2 (%d)", s->layers[0].cur.rank2);
    /* screens */
    ui_key(s, UI_K_TAB);
    CHECK(s->screen == SCR_SPECTRUM, "Tab -> Spectrum");
    ui_key(s, UI_K_BTAB);
    ui_key(s, UI_K_BTAB);
    CHECK(s->screen == SCR_COUNT - 1, "Shift-Tab wraps to the last screen");
    f = ui_key(s, '4');
    CHECK(s->screen == SCR_TRADEOFFS && (f & UI_SWEEP), "4 opens Trade-offs and starts a sweep");
    /* as the worker publishes it: the selected layer's sweep, two points of several done */
    s->sweep.layer = s->sel;
    s->sweep.base = s->layers[s->sel].cur;
    if (s->sweep.base.method == DECOMP_NONE)
        s->sweep.base.method = ui_preferred_method(&s->layers[s->sel]);
    s->sweep.n = 2;
    s->sweep.total = 9;
    s->sweep.running = 1;
    ui_key(s, '1');
    f = ui_key(s, '4');
    CHECK(s->screen == SCR_TRADEOFFS && !(f & UI_SWEEP), "back on Trade-offs: the running sweep of the layer goes on");
    s->sweep.running = 0;
    s->sweep.n = 9;
    ui_key(s, '3');
    f = ui_key(s, '4');
    CHECK(!(f & UI_SWEEP), "and a finished one is kept");
    ui_key(s, '1');
    s->sweep.layer = (s->sel + 1) % s->n_layers;
    f = ui_key(s, '4');
    CHECK(f & UI_SWEEP, "another layer's sweep: the selected layer is swept");
    s->sweep.layer = s->sel;
    s->sweep.base.method = s->sweep.base.method == DECOMP_SVD ? DECOMP_CP : DECOMP_SVD;
    ui_key(s, '1');
    f = ui_key(s, '4');
    CHECK(f & UI_SWEEP, "a sweep of another method: swept again");
    s->sweep.layer = -1;
    s->sweep.n = 0;
    ui_key(s, 'l');
    CHECK(!s->spec_log, "l only toggles on the spectrum screen");
    ui_key(s, '2');
    ui_key(s, 'l');
    CHECK(s->spec_log, "l toggles log scale");
    ui_key(s, '?');
    CHECK(s->help, "? opens help");
    f = ui_key(s, 'q');
    CHECK(!s->help && !(f & UI_QUIT), "any key closes help, without acting");
    /* example screen */
    ui_key(s, '6');
    ui_key(s, UI_K_RIGHT);
    CHECK(s->ex.pos == 1 && s->ex.win_c == 1, "-> slides the window");
    ui_key(s, 's');
    CHECK(s->ex.stride == 2 && s->ex.pos == 0, "s changes the stride");
    ui_key(s, 's');
    ui_key(s, 'r');
    CHECK(s->ex.rank == 2, "r raises the example's rank");
    ui_key(s, 'r');
    ui_key(s, 'r');
    CHECK(s->ex.rank == 1, "r wraps to 1");
    ui_key(s, 'E');
    CHECK(s->edit.active, "E edits");
    ui_key(s, '3');
    f = ui_key(s, UI_K_ENTER);
    CHECK(s->ex.x[0][0] == 3 && fabs(s->ex.win_full - 0.0) < 1e-12, "X[0][0] = 3 -> window sum -2 + 2 = 0 (%g)",
          s->ex.win_full);
    f = ui_key(s, 'q');
    CHECK(!(f & UI_QUIT), "q while editing is input, not quit");
    ui_key(s, UI_K_ESC);
    CHECK(!s->edit.active, "Esc ends editing");
    /* search screen: options cycle, the result applies to the sliders */
    ui_key(s, '5');
    f = ui_key(s, 's');
    CHECK(!(f & UI_SEARCH_START) && strstr(s->msg, "needs the CIFAR-10 training set: not found (--data DIR)"),
          "no search start without a validation split, and the status line says why (%s)", s->msg);
    s->search.available = 1;
    f = ui_key(s, 's');
    CHECK(f & UI_SEARCH_START, "s starts a search");
    int strat = s->search.strategy;
    ui_key(s, 't');
    CHECK(s->search.strategy == (strat + 1) % 4, "t cycles the strategy");
    ui_key(s, '+');
    CHECK(fabs(s->search.tol - 1.5) < 1e-12, "+ raises the tolerance by 0.5 pt (%g)", s->search.tol);
    for (int i = 0; i < 10; ++i)
        ui_key(s, '-');
    CHECK(fabs(s->search.tol - 0.5) < 1e-12, "tolerance floor 0.5 pt (%g)", s->search.tol);
    s->search.have_result = 1;
    s->layers[0].has_searched = 1;
    s->layers[0].searched = (ui_choice){DECOMP_CP, 12, 0};
    s->layers[1].has_searched = 0; /* not in the plan: reset */
    uint64_t g1 = s->gen;
    f = ui_key(s, 'a');
    CHECK((f & UI_RECOMPUTE) && s->gen == g1 + 1 && s->layers[0].cur.method == DECOMP_CP &&
              s->layers[0].cur.rank == 12 && s->layers[1].cur.method == DECOMP_NONE,
          "a applies the searched plan (conv2 cp 12, fc1 reset)");
    f = ui_key(s, 'a');
    CHECK(!(f & UI_RECOMPUTE), "applying the same plan again changes nothing");
    /* quit asks when unsaved */
    f = ui_key(s, 'q');
    CHECK(!(f & UI_QUIT) && s->confirm_quit, "q with unsaved changes asks");
    f = ui_key(s, 'x');
    CHECK(!(f & UI_QUIT) && !s->confirm_quit, "another key cancels");
    ui_key(s, 'q');
    f = ui_key(s, 'y');
    CHECK(f & UI_QUIT, "q then y quits");
    s->dirty = 0;
    f = ui_key(s, 'q');
    CHECK(f & UI_QUIT, "q quits at once when saved");
    ui_state_free(s);
    free(s);
}

static void test_mouse(void)
{
    ui_state *s = malloc(sizeof *s);
    synth(s);
    s->cols = 100;
    s->lines = 30;
    ui_table_layout t;
    ui_table_layout_of(s, &t);
    CHECK(t.show[COL_SLIDER] && t.w[COL_SLIDER] >= 10, "slider shown at 100 columns (w %d)", t.w[COL_SLIDER]);
    s->cols = 80;
    ui_table_layout_of(s, &t);
    int total = t.x[COL_SAVES] + t.w[COL_SAVES];
    CHECK(total <= 80 && t.show[COL_SLIDER] && t.show[COL_RANK] && t.show[COL_WERR], "80 columns: table fits (%d)", total);
    s->cols = 100;
    ui_table_layout_of(s, &t);
    int sx = t.x[COL_SLIDER], sw = t.w[COL_SLIDER];
    unsigned f = ui_mouse(s, 3, t.table_y + 1, UI_M_PRESS);
    CHECK(s->sel == 1 && !(f & UI_RECOMPUTE), "click on a row selects it");
    f = ui_mouse(s, sx + sw - 1, t.table_y, UI_M_PRESS);
    CHECK(s->sel == 0 && s->layers[0].cur.method == DECOMP_SPATIAL_SVD && s->layers[0].cur.rank == 30 &&
              (f & UI_RECOMPUTE),
          "press at the slider's right end: rank max (%d)", s->layers[0].cur.rank);
    f = ui_mouse(s, sx, t.table_y + 5, UI_M_DRAG);
    CHECK(s->layers[0].cur.rank == 1 && (f & UI_RECOMPUTE), "drag (even off the row) follows the pointer: rank 1");
    ui_mouse(s, sx + sw / 2, t.table_y, UI_M_RELEASE);
    int mid = s->layers[0].cur.rank;
    CHECK(mid > 1 && mid < 30, "release in the middle sets a middle rank (%d)", mid);
    f = ui_mouse(s, sx, t.table_y, UI_M_DRAG);
    CHECK(s->layers[0].cur.rank == mid && !(f & UI_RECOMPUTE), "motion after release changes nothing");
    ui_mouse(s, 0, 0, UI_M_WHEEL_DOWN);
    CHECK(s->sel == 1, "wheel moves the selection");
    /* too small */
    s->cols = 60;
    s->lines = 15;
    CHECK(ui_too_small(s), "60x15 is too small");
    char tl[3][64];
    int tn = ui_too_small_lines(s, tl);
    CHECK(tn == 3 && !strcmp(tl[0], "terminal too small") && !strcmp(tl[1], "need 80x24, have 60x15") &&
              !strcmp(tl[2], "q quits"),
          "60x15: the notice says what is needed and what there is (%s | %s | %s)", tl[0], tl[1], tl[2]);
    s->cols = 20;
    s->lines = 5;
    tn = ui_too_small_lines(s, tl);
    CHECK(tn == 3 && !strcmp(tl[1], "20x5, need 80x24") && strlen(tl[0]) <= 20,
          "20x5: a shorter spelling that fits, not a cut one (%s | %s)", tl[0], tl[1]);
    s->cols = 12;
    s->lines = 2;
    s->confirm_quit = 1;
    tn = ui_too_small_lines(s, tl);
    CHECK(tn == 2 && !strcmp(tl[0], "too small") && !strcmp(tl[1], "need 80x24") && !strcmp(tl[2], "q again"),
          "12x2: two lines, the shortest spellings (%s | %s)", tl[0], tl[1]);
    s->confirm_quit = 0;
    ui_state_free(s);
    free(s);
}

static void test_pareto(void)
{
    ui_point p[5] = {{1.0, 1, 0.72, ""}, {2.0, 1, 0.70, ""}, {1.5, 1, 0.69, ""}, {3.0, 1, 0.60, ""}, {2.0, 1, 0.65, ""}};
    int front[5];
    int n = ui_pareto(p, 5, front);
    CHECK(n == 3 && front[0] && front[1] && front[3] && !front[2] && !front[4], "Pareto front: 3 of 5 (%d)", n);
}

static int wait_for(live *lv, ui_state *s, uint64_t gen, double timeout)
{
    double t0 = rs_now();
    while (rs_now() - t0 < timeout) {
        live_poll(lv, s);
        if (s->have_orig && s->cur_gen == gen && !live_busy(lv))
            return 1;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Wait until layer k's sensitivity is measured for its current choice on the whole set, noting
 * whether an estimate was published first. */
static int wait_sens(live *lv, ui_state *s, int k, double timeout, int *saw_estimate)
{
    double t0 = rs_now();
    while (rs_now() - t0 < timeout) {
        live_poll(lv, s);
        const ui_layer *l = &s->layers[k];
        int now = l->sens_valid && pipe_choice_equal(&l->sens_for, &l->cur);
        if (now && l->sens_images > 0 && saw_estimate)
            *saw_estimate = l->sens_images;
        if (now && l->sens_images == 0)
            return 1;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* The drop in points of layer k alone factorized by its current choice, measured independently:
 * plan_apply on a copy of m, then eval_model, against eval_model of m. */
static double drop_alone(const rs_model *m, const cifar10_set *d, const ui_state *s, int k, rs_err *e)
{
    rs_plan *p = plan_alloc();
    rs_model *fm = model_clone(m);
    eval_result a, b;
    double drop = 1e9;
    const ui_layer *l = &s->layers[k];
    if (p && fm && plan_set(p, l->node_name, l->cur.method, l->cur.rank, l->cur.rank2, e) == 0 &&
        plan_apply(fm, p, NULL, NULL, e) == 0 && eval_model(m, d, 0, &a, NULL, NULL, e) == 0 &&
        eval_model(fm, d, 0, &b, NULL, NULL, e) == 0)
        drop = (a.accuracy - b.accuracy) * 100.0;
    model_free(fm);
    plan_free(p);
    return drop;
}


/* Polls a search until it has its result or failed (at most a minute). */
static void search_to_end(ui_search *sr, ui_state *s)
{
    for (int i = 0; sr && i < 6000 && !s->search.have_result && !strstr(s->search.msg, "failed"); ++i) {
        ui_search_poll(sr, s);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}

/* tests/data/lenet_random.onnx, or NULL (a failed check) */
static rs_model *load_lenet_random(void)
{
    const char *root = getenv("RS_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/lenet_random.onnx", root ? root : "..");
    rs_err e = {{0}};
    rs_model *m = onnx_load(path, &e);
    CHECK(m != NULL, "load %s: %s", path, m ? "ok" : e.msg);
    return m;
}

static void test_model_and_live(void)
{
    rs_model *m = load_lenet_random();
    if (!m)
        return;
    rs_err e = {{0}};
    ui_state *s = malloc(sizeof *s);
    ui_state_defaults(s);
    CHECK(ui_state_init(s, m, &e) == 0, "state from the model: %s", e.msg);
    CHECK(s->n_layers == 5, "5 weighted layers (%d)", s->n_layers);
    int c2 = -1;
    for (int k = 0; k < s->n_layers; ++k)
        if (!strcmp(s->layers[k].name, "conv2"))
            c2 = k;
    CHECK(c2 >= 0, "conv2 found");
    if (c2 < 0)
        goto out;
    ui_layer *l = &s->layers[c2];
    CHECK(!(l->methods & (1u << DECOMP_SVD)) && (l->methods & (1u << DECOMP_SPATIAL_SVD)),
          "conv2 offers conv methods, not dense svd");
    CHECK(l->mi[DECOMP_SPATIAL_SVD].max_rank == 30, "spatial-svd max rank min(6*5, 16*5) = 30 (%d)",
          l->mi[DECOMP_SPATIAL_SVD].max_rank);
    s->sel = c2;
    ui_key(s, UI_K_RIGHT);
    ui_state_costs(s, m);
    int64_t p1 = l->params_after;
    ui_key(s, UI_K_LEFT);
    ui_state_costs(s, m);
    int64_t p0 = l->params_after;
    CHECK(p0 < p1 && p1 < l->params, "lower rank, fewer params (%lld < %lld < %lld)", (long long)p0,
          (long long)p1, (long long)l->params);
    CHECK(s->params_total_after == s->params_total - (l->params - p0), "network total follows the layer");
    rs_plan *p = plan_alloc();
    CHECK(ui_state_plan(s, p, &e) == 0 && p->n == 1 && model_find_layer(m, p->entries[0].layer) == l->node &&
              p->entries[0].rank == l->cur.rank,
          "plan of the choices: conv2 %s %d", decomp_method_name(l->cur.method), l->cur.rank);

    /* the worker, on the shipped sample (or the full test set when RANKSCOPE_DATA is set) */
    int fb = 0;
    cifar10_set *d = cifar10_load_split(NULL, "test", &fb, &e);
    CHECK(d != NULL, "data: %s", d ? d->source : e.msg);
    if (d) {
        ui_state_free(s);
        ui_state_defaults(s); /* fresh, unfactorized */
        ui_state_init(s, m, &e);
        live *lv = live_start(m, d, s, &e);
        CHECK(lv != NULL, "worker started: %s", lv ? "ok" : e.msg);
        if (lv) {
            CHECK(live_cached(lv), "lenet is a chain: suffix caching on");
            CHECK(wait_for(lv, s, s->gen, 60) && s->cur.correct == s->orig.correct, "original evaluated, and current while nothing changed");
            eval_result ref;
            CHECK(eval_model(m, d, 0, &ref, NULL, NULL, &e) == 0 && ref.correct == s->orig.correct,
                  "original accuracy = eval_model's (%d vs %d correct)", s->orig.correct, ref.correct);
            /* a burst of changes: only the last one counts, and it matches an independent eval */
            s->sel = c2;
            for (int i = 0; i < 5; ++i) {
                ui_key(s, UI_K_LEFT);
                ui_state_costs(s, m);
                live_request(lv, s);
            }
            uint64_t want = s->gen;
            CHECK(wait_for(lv, s, want, 60), "result for the last change (gen %llu)", (unsigned long long)want);
            rs_plan *q = plan_alloc();
            ui_state_plan(s, q, &e);
            rs_model *fm = model_clone(m);
            int ok = plan_apply(fm, q, NULL, NULL, &e) == 0 && eval_model(fm, d, 0, &ref, NULL, NULL, &e) == 0;
            if (!ok)
                printf("# %s\n", e.msg);
            CHECK(ok && ref.correct == s->cur.correct,
                  "suffix-cached accuracy of conv2 %s %d = eval_model on the factorized copy (%d vs %d)",
                  decomp_method_name(s->layers[c2].cur.method), s->layers[c2].cur.rank, s->cur.correct, ref.correct);
            for (int i = 0; i < 2000 && !(s->layers[c2].res_valid &&
                                            s->layers[c2].res_for.rank == s->layers[c2].cur.rank); ++i) {
                struct timespec ts = {0, 5000000};
                nanosleep(&ts, NULL);
                live_poll(lv, s);
            }
            CHECK(s->layers[c2].res_valid && s->layers[c2].w_err > 0 && s->layers[c2].w_err < 1 &&
                      s->layers[c2].out_err >= 0,
                  "conv2 weight error %g, output error %g", s->layers[c2].w_err, s->layers[c2].out_err);
            CHECK(s->layers[c2].n_steps == 2, "spatial-svd chain has 2 steps (%d)", s->layers[c2].n_steps);
            /* --fit outputs' factors, on held-out images: a smaller output error, a larger weight error */
            CHECK(s->layers[c2].fit_out_err >= 0 && s->layers[c2].fit_out_err < s->layers[c2].out_err &&
                      s->layers[c2].fit_w_err >= s->layers[c2].w_err,
                  "conv2 fitted to outputs: output error %g < %g, weight error %g >= %g", s->layers[c2].fit_out_err,
                  s->layers[c2].out_err, s->layers[c2].fit_w_err, s->layers[c2].w_err);
            /* a change upstream (conv1) invalidates the cache of conv2's input */
            s->sel = 0;
            ui_key(s, 'm');
            ui_key(s, UI_K_HOME);
            ui_state_costs(s, m);
            live_request(lv, s);
            CHECK(wait_for(lv, s, s->gen, 60), "result after a conv1 change");
            ui_state_plan(s, q, &e);
            model_free(fm);
            fm = model_clone(m);
            ok = plan_apply(fm, q, NULL, NULL, &e) == 0 && eval_model(fm, d, 0, &ref, NULL, NULL, &e) == 0;
            CHECK(ok && ref.correct == s->cur.correct, "conv1+conv2 factorized: %d vs %d correct", s->cur.correct,
                  ref.correct);
            CHECK(s->n_hist >= 3, "history holds the evaluated configurations (%d)", s->n_hist);
            /* sensitivity: each factorized layer alone, as an independent evaluation measures it */
            for (int k = 0; k < s->n_layers; ++k) {
                if (s->layers[k].cur.method == DECOMP_NONE)
                    continue;
                CHECK(wait_sens(lv, s, k, 60, NULL), "%s: sensitivity measured", s->layers[k].name);
                double want_drop = drop_alone(m, d, s, k, &e);
                CHECK(fabs(s->layers[k].sens_drop - want_drop) < 1e-9,
                      "%s alone (%s %d): drop %.2f pt = eval_model's %.2f pt", s->layers[k].name,
                      decomp_method_name(s->layers[k].cur.method), s->layers[k].cur.rank, s->layers[k].sens_drop,
                      want_drop);
            }
            s->view.sort = UI_SORT_SENS;
            ui_view_update(s);
            double v0 = 0, v1 = 0;
            int k0 = ui_view_layer(s, 0), k1 = ui_view_layer(s, 1);
            CHECK(ui_sort_value(&s->layers[k0], UI_SORT_SENS, &v0) && ui_sort_value(&s->layers[k1], UI_SORT_SENS, &v1) &&
                      v0 >= v1 && s->layers[ui_view_layer(s, 2)].cur.method == DECOMP_NONE,
                  "sorted by sensitivity: the two factorized layers first, the larger drop first (%.2f, %.2f)", v0, v1);
            s->view.sort = UI_SORT_GRAPH;
            ui_view_update(s);
            model_free(fm);
            plan_free(q);
            live_stop(lv);
        }
        {
            /* a search's trial rows name the layer probed and the method and rank tried */
            ui_state_free(s);
            ui_state_defaults(s);
            ui_state_init(s, m, &e);
            s->search.strategy = 0; /* naive */
            s->search.tol = 20;
            ui_search *sr = ui_search_start(m, d, s, NULL, 0, &e);
            CHECK(sr != NULL, "search started: %s", sr ? "ok" : e.msg);
            search_to_end(sr, s);
            int named = 0;
            for (int i = 0; i < s->search.n_trials; ++i)
                named += s->search.trials[i].layer[0] && s->search.trials[i].tried[0] &&
                         strchr(s->search.trials[i].tried, ' ');
            CHECK(s->search.have_result && named > 0, "trials name what they tried (%d of %d, e.g. %s: %s)", named,
                  s->search.n_trials, s->search.n_trials ? s->search.trials[s->search.n_trials - 1].layer : "-",
                  s->search.n_trials ? s->search.trials[s->search.n_trials - 1].tried : "-");
            ui_search_stop(sr);
            /* `f`: the same search with the factors fitted to the layer outputs on calibration
             * images: the same probes, other accuracies */
            int n0 = s->search.n_trials < 64 ? s->search.n_trials : 64;
            ui_trial *t0 = malloc(sizeof *t0 * (size_t)(n0 ? n0 : 1));
            if (t0 && n0)
                memcpy(t0, s->search.trials, sizeof *t0 * (size_t)n0);
            enum { NCAL = 256 };
            float *calib = malloc((size_t)NCAL * CIFAR10_PIXELS * sizeof *calib);
            if (calib)
                cifar10_normalize(d, 0, NCAL, calib);
            s->search.available = 1;
            s->screen = SCR_SEARCH;
            ui_key(s, 'f');
            CHECK(s->search.fit_outputs && strstr(s->msg, "fit outputs"), "f: fit outputs (%s)", s->msg);
            s->search.n_trials = 0;
            s->search.have_result = 0;
            sr = calib && t0 ? ui_search_start(m, d, s, calib, NCAL, &e) : NULL;
            s->search.running = sr != NULL;
            unsigned fk = ui_key(s, 'f');
            CHECK(s->search.fit_outputs && strstr(s->msg, "once the running"), "f while it runs: kept (%s)", s->msg);
            (void)fk;
            search_to_end(sr, s);
            s->search.running = 0;
            int same_probe = 0, moved = 0;
            for (int i = 0; i < s->search.n_trials; ++i)
                for (int j = 0; j < n0; ++j)
                    if (!strcmp(s->search.trials[i].layer, t0[j].layer) && !strcmp(s->search.trials[i].tried, t0[j].tried) &&
                        s->search.trials[i].images == t0[j].images) {
                        ++same_probe;
                        moved += s->search.trials[i].acc != t0[j].acc;
                    }
            CHECK(s->search.have_result && same_probe > 0 && moved > 0,
                  "fitted to outputs: %d of %d repeated probes score differently", moved, same_probe);
            ui_search_stop(sr);
            free(calib);
            free(t0);
            ui_key(s, 'f');
            CHECK(!s->search.fit_outputs && strstr(s->msg, "fit weights"), "f again: fit weights (%s)", s->msg);
        }
        double first = 0, full = 0;
        int est = -1;
        CHECK(pipe_measure_slider(m, d, "conv2", 3, &first, &full, &est, &e) == 0 && full > 0 && first > 0 &&
                  first <= full && est == 0,
              "slider-to-accuracy latency on %d images: first %.3f s, full %.3f s (a chain: no estimate)", d->n,
              first, full);
        cifar10_free(d);
    }
    plan_free(p);
out:
    ui_state_free(s);
    free(s);
    model_free(m);
}

/* The trade-off curve (`c`, screen 4) and fine-tuning (`F`, screen 5) key transitions. */
static void test_curve_and_finetune_keys(void)
{
    ui_state *s = malloc(sizeof *s);
    synth(s);
    s->screen = SCR_TRADEOFFS;
    s->curve.n = 3;
    unsigned f = ui_key(s, 'c');
    CHECK((f & UI_CURVE_START) && s->curve.running && s->curve.n == 0 && strstr(s->curve.msg, "pending"),
          "c on trade-offs starts the curve, clears old points, says pending (%s)", s->curve.msg);
    f = ui_key(s, 'c');
    CHECK(!(f & UI_CURVE_START) && s->curve.running, "c while the curve runs does not restart it");
    s->curve.running = 0;
    s->screen = SCR_LAYERS;
    f = ui_key(s, 'c');
    CHECK(!(f & UI_CURVE_START), "c elsewhere does not start the curve");
    CHECK(ui_curve_reductions[0] == 1.5 && ui_curve_reductions[UI_CURVE_N - 1] == 4.0,
          "curve reductions run 1.5x .. 4x");

    s->screen = SCR_SEARCH;
    s->ft.available = 0;
    f = ui_key(s, 'F');
    CHECK(!(f & UI_FT_START) && !s->ft.running && strstr(s->ft.msg, "full CIFAR-10 training set"),
          "F without the full data says so plainly (%s)", s->ft.msg);
    s->ft.available = 1;
    s->search.running = 1;
    f = ui_key(s, 'F');
    CHECK(!(f & UI_FT_START) && !s->ft.running, "F while a search runs does not start");
    s->search.running = 0;
    f = ui_key(s, 'F');
    CHECK((f & UI_FT_START) && s->ft.running && s->ft.epochs == 3 && s->ft.n == 0,
          "F starts fine-tuning with the default 3 epochs (%d)", s->ft.epochs);
    f = ui_key(s, 'F');
    CHECK(!(f & UI_FT_START), "F while fine-tuning does not restart it");
    f = ui_key(s, 'x');
    CHECK((f & UI_FT_STOP) && !(f & UI_SEARCH_STOP), "x stops the fine-tuning");
    s->ft.running = 0;
    f = ui_key(s, 'w');
    CHECK(!(f & UI_FT_SAVE) && (f & UI_SAVE), "w without a fine-tuned net saves the plan as usual");
    s->ft.have_model = 1;
    f = ui_key(s, 'w');
    CHECK((f & UI_FT_SAVE) && !(f & UI_SAVE), "w with a fine-tuned net saves it");
    ui_state_free(s);
    free(s);
}

/* Undo / redo, reset-all, the exact-rank prompt, the too-small guard, ^C, jobs, scrolling help. */
static void test_conveniences(void)
{
    ui_state *s = malloc(sizeof *s);
    synth(s);
    CHECK(ui_state_undo_init(s) == 0, "undo history allocated");
    ui_key(s, UI_K_RIGHT); /* conv2 spatial 21 */
    ui_key(s, UI_K_RIGHT); /* 22 */
    unsigned f = ui_key(s, 'u');
    CHECK((f & UI_RECOMPUTE) && s->layers[0].cur.rank == 21, "u undoes the last change (rank %d)", s->layers[0].cur.rank);
    CHECK(s->dirty, "a change is unsaved");
    ui_key(s, 'u');
    CHECK(s->layers[0].cur.method == DECOMP_NONE, "u again: back to the original");
    CHECK(!s->dirty, "undone back to the original: nothing unsaved (q does not ask)");
    f = ui_key(s, 'u');
    CHECK(!(f & UI_RECOMPUTE) && strstr(s->msg, "nothing to undo"), "u at the start says so (%s)", s->msg);
    ui_key(s, 18);
    ui_key(s, 18);
    CHECK(s->layers[0].cur.rank == 22 && s->dirty, "Ctrl-R redoes both (%d), unsaved again", s->layers[0].cur.rank);
    ui_state_mark_saved(s);
    ui_key(s, 'u');
    CHECK(s->dirty, "saved at rank 22, undone to 21: unsaved");
    ui_key(s, 18);
    CHECK(!s->dirty, "redone to the saved 22: nothing unsaved");
    f = ui_key(s, 18);
    CHECK(!(f & UI_RECOMPUTE) && strstr(s->msg, "nothing to redo"), "Ctrl-R at the end says so");
    ui_key(s, 'u');
    ui_key(s, UI_K_HOME); /* a new change drops the redo branch */
    f = ui_key(s, 18);
    CHECK(s->layers[0].cur.rank == 1 && !(f & UI_RECOMPUTE), "a change after undo drops what redo could reach");
    ui_key(s, UI_K_DOWN);
    ui_key(s, UI_K_RIGHT); /* fc1 svd */
    f = ui_key(s, 'R');
    CHECK((f & UI_RECOMPUTE) && s->layers[0].cur.method == DECOMP_NONE && s->layers[1].cur.method == DECOMP_NONE,
          "R resets every layer");
    ui_key(s, 'u');
    CHECK(s->layers[0].cur.rank == 1 && s->layers[1].cur.method == DECOMP_SVD, "u undoes the reset in one step");
    /* exact rank */
    ui_key(s, UI_K_UP);
    f = ui_key(s, ':');
    CHECK(s->prompt.active, ": opens the rank prompt");
    char buf[512];
    ui_key(s, '1');
    ui_key(s, '7');
    CHECK(ui_prompt_text(s, buf, sizeof buf) && strstr(buf, "rank for conv2 spatial-svd: 17_") && strstr(buf, "(1..30"),
          "the prompt names the layer, method and range (%s)", buf);
    f = ui_key(s, UI_K_ENTER);
    CHECK(!s->prompt.active && (f & UI_RECOMPUTE) && s->layers[0].cur.rank == 17, "Enter sets rank 17 (%d)",
          s->layers[0].cur.rank);
    ui_key(s, UI_K_ENTER); /* Enter on the Layers screen opens it too */
    ui_key(s, '9');
    ui_key(s, '9');
    f = ui_key(s, UI_K_ENTER);
    CHECK(!(f & UI_RECOMPUTE) && s->layers[0].cur.rank == 17 && strstr(s->msg, "out of range") &&
              strstr(s->msg, "1..30"),
          "99 is refused naming the range, not 'not a number' (%s)", s->msg);
    ui_key(s, ':');
    ui_key(s, '5');
    f = ui_key(s, UI_K_ESC);
    CHECK(!s->prompt.active && s->layers[0].cur.rank == 17, "Esc cancels the prompt");
    /* terminal too small: keys do nothing but quit */
    s->cols = 60;
    s->lines = 15;
    f = ui_key(s, UI_K_RIGHT);
    CHECK(!(f & UI_RECOMPUTE) && s->layers[0].cur.rank == 17, "too small: -> changes nothing unseen");
    f = ui_key(s, '2');
    CHECK(s->screen == SCR_LAYERS, "too small: screens do not switch");
    f = ui_key(s, 'q');
    CHECK(s->confirm_quit && !(f & UI_QUIT), "too small: q still asks (unsaved changes)");
    ui_key(s, 'x');
    s->cols = 80;
    s->lines = 24;
    /* ^C asks like q; a second one quits */
    f = ui_key(s, 3);
    CHECK(s->confirm_quit && !(f & UI_QUIT) && strstr(s->msg, "Unsaved"), "^C with unsaved changes asks (%s)",
          s->msg);
    f = ui_key(s, 3);
    CHECK(f & UI_QUIT, "^C again quits");
    s->confirm_quit = 0;
    s->dirty = 0;
    f = ui_key(s, 3);
    CHECK(f & UI_QUIT, "^C with nothing to lose quits at once");
    /* background jobs: shown, and named by the quit question */
    s->search.running = 1;
    s->search.progress = 0.34;
    s->curve.running = 1;
    s->curve.n = 2;
    CHECK(ui_jobs_text(s, buf, sizeof buf) == 2 && !strcmp(buf, "search 34%  curve 2/5"), "jobs: \"%s\"", buf);
    f = ui_key(s, 'q');
    CHECK(!(f & UI_QUIT) && strstr(s->msg, "search 34%") && strstr(s->msg, "curve 2/5"),
          "q while jobs run names them (%s)", s->msg);
    ui_key(s, 'x');
    s->search.running = s->curve.running = 0;
    CHECK(ui_jobs_text(s, buf, sizeof buf) == 0 && !buf[0], "no jobs: empty");
    /* the worked example's cell editor: its prompt, and a number out of range called so */
    ui_key(s, '6');
    ui_key(s, 'E');
    ui_key(s, '1');
    ui_key(s, 'e');
    ui_key(s, '7');
    CHECK(ui_prompt_text(s, buf, sizeof buf) && !strncmp(buf, "edit X[", 7) && strstr(buf, ": 1e7_"),
          "the cell editor's prompt is one clean status line (%s)", buf);
    ui_key(s, UI_K_ENTER);
    CHECK(strstr(s->msg, "1e7 is out of range") != NULL, "1e7 is out of range, not 'not a number' (%s)", s->msg);
    ui_key(s, '-');
    ui_key(s, UI_K_ENTER);
    CHECK(strstr(s->msg, "not a number: \"-\"") != NULL, "a lone - is not a number (%s)", s->msg);
    ui_key(s, UI_K_ESC);
    /* help: per screen, every key of the screen, scrolls at 80x24 */
    ui_key(s, '5');
    ui_key(s, '?');
    const char *lines[128];
    int n = ui_help_lines(s, lines, 128), has_s = 0, has_t = 0, has_F = 0;
    for (int i = 0; i < n && i < 128; ++i) {
        has_s |= !strncmp(lines[i], "s, Enter", 8);
        has_t |= lines[i][0] == 't';
        has_F |= lines[i][0] == 'F';
    }
    CHECK(!strcmp(lines[0], "Search") && has_s && has_t && has_F, "Search help lists s, t, F (%d lines)", n);
    static char wrapped[192][UI_HELP_LINE];
    int nw = ui_help_wrapped(s, wrapped, 192), room = ui_help_box_width(s) - 4, fits = 1;
    size_t raw_chars = 0, wrapped_chars = 0;
    for (int i = 0; i < n && i < 128; ++i)
        for (const char *c = lines[i]; *c; ++c)
            raw_chars += *c != ' ';
    for (int i = 0; i < nw && i < 192; ++i) {
        fits &= (int)strlen(wrapped[i]) <= room;
        for (const char *c = wrapped[i]; *c; ++c)
            wrapped_chars += *c != ' ';
    }
    CHECK(s->cols == 80 && nw > n && fits && raw_chars == wrapped_chars,
          "at 80 columns the help wraps (%d lines from %d) within %d columns, nothing lost (%zu = %zu)", nw, n, room,
          raw_chars, wrapped_chars);
    CHECK(nw > ui_help_rows(s), "at 80x24 the help is longer than the box (%d > %d)", nw, ui_help_rows(s));
    ui_key(s, UI_K_DOWN);
    CHECK(s->help && s->help_scroll == 1, "Down scrolls the help");
    ui_key(s, UI_K_END);
    CHECK(s->help_scroll == nw - ui_help_rows(s), "End shows its last line");
    ui_key(s, 'z');
    CHECK(!s->help && s->help_scroll == 0, "any other key closes it");
    /* over a comparison, ? lists the comparison's keys and columns, not the screen's below it; o
     * there opens the browser even on Search (where o alone is the objective) */
    int was_active = s->cmp.active, objective = s->search.objective;
    s->cmp.active = 1;
    ui_key(s, '?');
    n = ui_help_lines(s, lines, 128);
    int has_ab = 0, has_esc = 0;
    for (int i = 0; i < n && i < 128; ++i) {
        has_ab |= strstr(lines[i], "A/B the params ratio") != NULL;
        has_esc |= !strncmp(lines[i], "Esc, c", 6);
    }
    CHECK(s->help && !strncmp(lines[0], "Comparison", 10) && has_ab && has_esc,
          "? over the comparison: its keys and columns (%s, %d lines)", lines[0], n);
    ui_key(s, UI_K_ESC);
    unsigned fo = ui_key(s, 'o');
    CHECK((fo & UI_BROWSE) && s->browse.active && s->search.objective == objective,
          "o over a comparison on Search opens the browser, the objective untouched");
    ui_key(s, UI_K_ESC);
    s->cmp.active = was_active;
    ui_state_free(s);
    free(s);
}

static void test_graph_times(ui_state *s, const rs_model *m, const cifar10_set *d);

/* ResNet-20's layers: short labels without repeated path parts, all different. */
static void test_labels(void)
{
    const char *root = getenv("RS_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/zoo/resnet20.onnx", root ? root : "..");
    rs_err e = {{0}};
    rs_model *m = onnx_load(path, &e);
    CHECK(m != NULL, "load %s: %s", path, m ? "ok" : e.msg);
    if (!m)
        return;
    ui_state *s = malloc(sizeof *s);
    ui_state_defaults(s);
    CHECK(ui_state_init(s, m, &e) == 0, "state from resnet20: %s", e.msg);
    int dup = 0, shortcut = 0;
    for (int k = 0; k < s->n_layers; ++k) {
        for (int j = k + 1; j < s->n_layers; ++j)
            dup += !strcmp(s->layers[k].label, s->layers[j].label);
        shortcut |= !strcmp(s->layers[k].label, "stages.3/shortcut.0");
    }
    CHECK(s->n_layers > 19 && !dup, "%d layers, %d labels shared", s->n_layers, dup);
    CHECK(shortcut, "stages/stages.3/shortcut/shortcut.0 reads stages.3/shortcut.0");
    CHECK(!strcmp(ui_layer_label(s, &s->layers[1]), s->layers[1].label), "short labels by default");
    /* the Graph screen: every node, Add and ReLU included; Enter on a weighted one reaches its slider */
    int adds = 0, relus = 0, weighted = 0, first_add = -1;
    for (int i = 0; i < s->graph.n; ++i) {
        const ui_gnode *g = &s->graph.nodes[i];
        if (!strcmp(g->op, "Add")) {
            adds++;
            if (first_add < 0)
                first_add = i;
            CHECK(g->inputs == 2 || adds > 1, "an Add has two computed inputs (%d)", g->inputs);
        }
        relus += !strcmp(g->op, "Relu");
        weighted += g->layer >= 0;
    }
    CHECK(s->graph.n == m->n_nodes && adds == 9 && relus >= 19 && weighted == s->n_layers,
          "graph rows: %d nodes, %d Add, %d Relu, %d weighted", s->graph.n, adds, relus, weighted);
    ui_key(s, '7');
    CHECK(s->screen == SCR_GRAPH, "7 opens the graph view");
    for (int i = 0; i < first_add; ++i)
        ui_key(s, UI_K_DOWN);
    unsigned gf = ui_key(s, UI_K_ENTER);
    CHECK(s->screen == SCR_GRAPH && strstr(s->msg, "no weights"), "Enter on an Add says it has no weights (%s)",
          s->msg);
    (void)gf;
    ui_key(s, UI_K_UP);
    int want = s->graph.nodes[s->graph.sel].layer;
    ui_key(s, UI_K_ENTER);
    CHECK(want >= 0 && s->screen == SCR_LAYERS && s->sel == want, "Enter on %s selects its slider (layer %d)",
          s->graph.nodes[s->graph.sel].name, want);
    ui_key(s, 'n');
    CHECK(!strcmp(ui_layer_label(s, &s->layers[1]), s->layers[1].node_name), "n: full node names (%s)",
          ui_layer_label(s, &s->layers[1]));
    /* a net with skip connections cannot be cut: the slider shows an estimate first */
    int fb = 0;
    cifar10_set *d = cifar10_load_split(NULL, "sample", &fb, &e);
    CHECK(d != NULL, "the shipped sample: %s", d ? d->source : e.msg);
    if (d) {
        double first = 0, full = 0;
        int est = -1;
        CHECK(pipe_measure_slider(m, d, "stages/stages.3/shortcut/shortcut.0", 1, &first, &full, &est, &e) == 0,
              "resnet20 slider: %s", e.msg);
        CHECK(est == PIPE_ESTIMATE_IMAGES && first > 0 && first < full,
              "resnet20 on %d images: estimate on %d images first (%.3f s), the whole set after (%.3f s)", d->n, est,
              first, full);
        /* its sensitivity column: an estimate on the same subset first, then the whole set's */
        ui_key(s, 'n');
        ui_key(s, '1');
        s->sel = 3;
        ui_key(s, UI_K_RIGHT);
        live *lv = live_start(m, d, s, &e);
        CHECK(lv != NULL, "resnet20 worker: %s", lv ? "ok" : e.msg);
        if (lv) {
            live_request(lv, s);
            int saw = 0;
            CHECK(wait_sens(lv, s, 3, 120, &saw) && saw == PIPE_ESTIMATE_IMAGES,
                  "resnet20 %s: sensitivity estimated on %d images, then on the whole set", s->layers[3].name, saw);
            double want_drop = drop_alone(m, d, s, 3, &e);
            char cell[16];
            CHECK(fabs(s->layers[3].sens_drop - want_drop) < 1e-9 && !strchr(ui_sens_text(&s->layers[3], cell, sizeof cell), '~'),
                  "resnet20 %s alone: drop %.2f pt = eval_model's %.2f pt (cell \"%s\")", s->layers[3].name,
                  s->layers[3].sens_drop, want_drop, cell);
            live_stop(lv);
        }
        test_graph_times(s, m, d);
        cifar10_free(d);
    }
    ui_state_free(s);
    free(s);
    model_free(m);
}

/* Polls a timing worker until the plan-applied model's figures are in (or it failed). */
static void wait_plan_times(ui_timejob *job, ui_state *s)
{
    double t0 = rs_now();
    while (job && rs_now() - t0 < 300 && s->graph.p_state != UI_TIME_DONE && s->graph.p_state != UI_TIME_FAILED) {
        ui_timejob_poll(job, s);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* The time column with a plan: the plan-applied model (the one evaluation runs) measured on the
 * worker, each factorized node followed by its chain's rows with their own times; the figures
 * marked stale once the plan changes; the original's back when nothing is factorized. */
static void test_graph_plan_times(ui_state *s, const rs_model *m, const cifar10_set *d)
{
    char us[16], pct[16], note[300], ct[200];
    rs_err e = {{0}};
    const int ka = 3, kb = 5; /* tucker2 (3 nodes) and spatial-svd (2 nodes) */
    const decomp_method ma = DECOMP_TUCKER2, mb = DECOMP_SPATIAL_SVD;
    for (int k = 0; k < s->n_layers; ++k)
        s->layers[k].cur = (ui_choice){DECOMP_NONE, 0, 0};
    CHECK(!ui_graph_plan_applies(s) && !ui_graph_plan_wanted(s), "nothing factorized: no plan to time");
    ui_layer *la = &s->layers[ka], *lb = &s->layers[kb];
    CHECK(la->mi[ma].max_rank > 0 && lb->mi[mb].max_rank > 0, "%s takes tucker2, %s spatial-svd", la->name, lb->name);
    la->cur = (ui_choice){ma, la->mi[ma].default_rank, 0};
    lb->cur = (ui_choice){mb, lb->mi[mb].default_rank, 0};
    CHECK(ui_graph_plan_applies(s) && ui_graph_plan_wanted(s), "a plan applies: its model is to be timed");
    rs_plan *p = plan_alloc();
    CHECK(ui_state_plan(s, p, &e) == 0 && ui_graph_plan_started(s, &e) == 0 && !ui_graph_plan_wanted(s),
          "a measurement of the current plan started: not wanted again (%s)", e.msg);
    ui_timejob *job = ui_timejob_start(m, p, d, &e);
    CHECK(job != NULL, "the plan timing worker starts: %s", job ? "ok" : e.msg);
    wait_plan_times(job, s);
    ui_timejob_stop(job);
    ui_graph_sync(s);
    const ui_graph_state *g = &s->graph;
    CHECK(g->p_state == UI_TIME_DONE && g->p_have && g->p_shown && g->p_images == g->time_images,
          "plan-applied model measured on the original's %d images (%d) %s", g->time_images, g->p_images, g->p_err);
    if (g->p_state != UI_TIME_DONE) {
        plan_free(p);
        return;
    }
    /* the model evaluation runs, built independently: its node count and chain names */
    rs_model *pm = model_clone(m);
    CHECK(pm && plan_apply(pm, p, NULL, NULL, &e) == 0, "plan applied to a copy: %s", e.msg);
    plan_free(p);
    CHECK(g->n_rows == pm->n_nodes + 2 && g->n_subs == 5, "rows: %d nodes + %d chain rows = %d (the plan-applied "
          "model has %d nodes, plus the 2 factorized nodes' own rows)", g->n, g->n_subs, g->n_rows, pm->n_nodes);
    double rows_sum = 0, subs_sum = 0, share = 0;
    int chain_ok = 1, parents = 0, shares = 0;
    for (int r = 0; r < g->n_rows; ++r) {
        int sub, i = ui_graph_row_node(s, r, &sub);
        const ui_gnode *nd = ui_graph_row(s, r);
        ui_graph_time_text(s, r, us, sizeof us, pct, sizeof pct);
        if (sub >= 0) {
            subs_sum += nd->p_us;
            /* a chain row: a Conv of the plan-applied model with its own positive time or fused */
            chain_ok &= !strcmp(nd->op, "Conv") && nd->layer == g->nodes[i].layer && strstr(nd->name, "_f") != NULL;
            chain_ok &= nd->p_timed == INFER_NODE_STEP ? nd->p_us > 0 && atof(us) > 0 && strchr(pct, '%') != NULL
                                                        : nd->p_timed == INFER_NODE_FUSED;
            continue;
        }
        rows_sum += nd->p_timed == INFER_NODE_STEP ? nd->p_us : 0;
        share += pct[0] && pct[0] != '<' ? atof(pct) : 0;
        shares += pct[0] != 0;
        if (nd->n_sub) {
            parents++;
            double chain = 0;
            for (int k = 0; k < nd->n_sub; ++k)
                chain += g->subs[nd->sub0 + k].p_us;
            chain_ok &= r + nd->n_sub < g->n_rows && g->rows[r + 1] == -(nd->sub0 + 1) &&
                        fabs(chain - nd->p_us) <= 1e-9 * nd->p_us && nd->p_us > 0;
            ui_graph_chain_time(s, r, ct, sizeof ct);
            char orig[32];
            snprintf(orig, sizeof orig, nd->us >= 100 ? "%.0f" : nd->us >= 10 ? "%.1f" : "%.2f", nd->us);
            CHECK(strstr(ct, decomp_method_name(s->layers[nd->layer].cur.method)) && strstr(ct, orig) &&
                      strstr(ct, "(chain ") && atof(us) > 0,
                  "%s: \"%s\" (original %.1f us, chain %.1f us = its row's %s)", nd->name, ct, nd->us, nd->p_us, us);
        }
    }
    CHECK(parents == 2 && chain_ok, "both factorized nodes are followed by their chain rows (3 + 2), each timed, "
          "summing to the node's figure");
    CHECK(fabs(rows_sum - g->p_total_us) <= 1e-6 * g->p_total_us && subs_sum > 0,
          "the rows' times add up to the plan-applied model's total (%.3f vs %.3f us/img)", rows_sum, g->p_total_us);
    CHECK(fabs(share - 100) <= 0.1 * shares, "their shares add up to 100%% within rounding (%.2f, %d rows)", share, shares);
    model_free(pm);
    s->graph.sel = 0;
    ui_graph_time_note(s, note, sizeof note);
    CHECK(strstr(note, "plan applied") && strstr(note, "original"), "the note says the plan applied is timed: %s", note);
    /* Enter on a chain row: its layer's slider */
    s->screen = SCR_GRAPH;
    int r_sub = 0;
    while (r_sub < g->n_rows && g->rows[r_sub] >= 0)
        r_sub++;
    s->graph.sel = r_sub;
    ui_key(s, UI_K_ENTER);
    CHECK(s->screen == SCR_LAYERS && s->sel == ka, "Enter on a chain row selects its layer's slider (%d)", s->sel);
    s->screen = SCR_GRAPH;
    /* the plan changes: the figures are another plan's (marked), a new measurement is wanted */
    la->cur.rank = la->cur.rank > 1 ? la->cur.rank - 1 : 2;
    ui_graph_sync(s);
    int r_a = 0;
    while (r_a < g->n_rows && g->rows[r_a] != la->node)
        r_a++;
    ui_graph_time_text(s, r_a, us, sizeof us, pct, sizeof pct);
    ui_graph_chain_time(s, r_a, ct, sizeof ct);
    CHECK(ui_graph_plan_stale(s) && ui_graph_plan_wanted(s) && us[0] == '~' && ct[0] == '~',
          "after a rank change: stale (\"%s\", \"%s\"), to be measured again", us, ct);
    /* nothing factorized: the chain rows go, the original's figures come back, selection kept */
    la->cur = lb->cur = (ui_choice){DECOMP_NONE, 0, 0};
    s->graph.sel = r_a + 1; /* a chain row of la */
    CHECK(ui_graph_sync(s) == 1 && g->n_rows == g->n && !g->p_shown && g->sel == la->node,
          "plan emptied: %d rows, the chain row's node selected (%d)", g->n_rows, g->sel);
    ui_graph_time_text(s, la->node, us, sizeof us, pct, sizeof pct);
    CHECK(us[0] != '~' && fabs(atof(us) - g->nodes[la->node].us) <= 0.01 * g->nodes[la->node].us + 0.01 &&
              !ui_graph_plan_wanted(s),
          "the original's time again (%s us)", us);
    /* a measurement that does not match the model is refused, not shown */
    infer_prof fake = {0};
    fake.n_nodes = m->n_nodes + 1;
    CHECK(ui_graph_set_plan_times(s, m, m, &fake, NULL) == -1 && g->p_state == UI_TIME_FAILED && !g->p_have &&
              strstr(g->p_err, "another model"),
          "a profile of another model is refused: %s", g->p_err);
}

/* The graph view's time column: its cells before, during and after the worker's measurement
 * (infer_profile on the sample's images), and when it fails. */
static void test_graph_times(ui_state *s, const rs_model *m, const cifar10_set *d)
{
    char us[16], pct[16], note[300];
    rs_err e = {{0}};
    CHECK(ui_time_images(41000000, 10000) == 487 && ui_time_images(100, 10000) == 512 &&
              ui_time_images(1000000000000LL, 10000) == 16 && ui_time_images(41000000, 8) == 8,
          "images timed: ~2e10 MACs of work, 16..512, no more than the set has");
    ui_graph_init(s, m, &e);
    ui_graph_time_text(s, 0, us, sizeof us, pct, sizeof pct);
    CHECK((!strcmp(us, "...") || !strcmp(us, "\u2026")) && !pct[0], "before the measurement: an ellipsis (%s)", us);
    ui_timejob *job = ui_timejob_start(m, NULL, d, &e);
    CHECK(job != NULL, "the timing worker starts: %s", job ? "ok" : e.msg);
    int saw_running = 0;
    for (int i = 0; job && i < 12000 && s->graph.time_state != UI_TIME_DONE && s->graph.time_state != UI_TIME_FAILED; ++i) {
        if (ui_timejob_poll(job, s) && s->graph.time_state == UI_TIME_RUNNING)
            saw_running |= s->graph.time_progress >= 0 && s->graph.time_progress <= 1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(s->graph.time_state == UI_TIME_DONE && saw_running, "measured (%d images; progress seen while running: %d) %s",
          s->graph.time_images, saw_running, s->graph.time_err);
    ui_timejob_stop(job);
    if (s->graph.time_state != UI_TIME_DONE)
        return;
    int convs = 0, convs_timed = 0, adds = 0, adds_fused = 0, fused_named = 1;
    double share = 0;
    for (int i = 0; i < s->graph.n; ++i) {
        const ui_gnode *g = &s->graph.nodes[i];
        ui_graph_time_text(s, i, us, sizeof us, pct, sizeof pct);
        if (!strcmp(g->op, "Conv")) {
            convs++;
            convs_timed += g->timed == INFER_NODE_STEP && g->us > 0 && atof(us) > 0 && strchr(pct, '%');
        }
        if (!strcmp(g->op, "Add")) {
            adds++;
            adds_fused += g->timed == INFER_NODE_FUSED && g->fused_into >= 0 && g->fused_into < i &&
                          !strcmp(s->graph.nodes[g->fused_into].op, "Conv") && !strcmp(us, "fused") && !pct[0];
        }
        if (g->timed == INFER_NODE_STEP)
            share += 100 * g->us / s->graph.total_us;
        if (g->timed == INFER_NODE_FUSED) {
            s->graph.sel = i;
            ui_graph_time_note(s, note, sizeof note);
            fused_named &= strstr(note, g->name) && strstr(note, s->graph.nodes[g->fused_into].name) != NULL;
        }
    }
    CHECK(convs > 0 && convs_timed == convs, "every Conv row shows a positive time and a share (%d of %d)", convs_timed,
          convs);
    CHECK(adds == 9 && adds_fused == adds, "every Add row reads \"fused\", run by a Conv before it (%d of %d)", adds_fused,
          adds);
    CHECK(fabs(share - 100) < 1e-6, "the shares add up to 100%% (%.6f)", share);
    CHECK(fused_named, "a selected fused row's note names the node whose step runs it");
    s->graph.sel = 0;
    ui_graph_time_note(s, note, sizeof note);
    CHECK(strstr(note, " images") && strstr(note, "1 thread"), "the note says what was measured: %s", note);
    test_graph_plan_times(s, m, d);
    /* a failed measurement: no figures, the reason on the note line */
    ui_graph_set_times(s, NULL, "model input is not CIFAR-10");
    ui_graph_time_text(s, 0, us, sizeof us, pct, sizeof pct);
    ui_graph_time_note(s, note, sizeof note);
    CHECK(!strcmp(us, "-") && strstr(note, "not measured: model input is not CIFAR-10"), "failed: \"-\" and why (%s)",
          note);
    /* stopped at once: joins cleanly, nothing installed */
    job = ui_timejob_start(m, NULL, d, &e);
    ui_timejob_stop(job);
    ui_timejob_stop(NULL);
    ui_graph_init(s, m, &e);
}

/* The model browser: its keys without a terminal, and a scan of a directory. */
static void test_browser(void)
{
    ui_state *s = malloc(sizeof *s);
    synth(s);
    unsigned f = ui_key(s, 'o');
    CHECK(s->browse.active && (f & UI_BROWSE), "o opens the browser and asks for a scan");
    const char *root = getenv("RS_SOURCE_ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/zoo", root ? root : "..");
    ui_browser_scan(s, dir);
    int rn = -1, lenet_acc = 0;
    for (int i = 0; i < s->browse.n; ++i) {
        if (strstr(s->browse.items[i].name, "/resnet20.onnx"))
            rn = i;
        lenet_acc |= !strcmp(s->browse.items[i].name, "zoo: lenet") && s->browse.items[i].acc > 0.5;
    }
    CHECK(rn >= 0 && s->browse.items[rn].params == 68522 && s->browse.items[rn].macs > 1000000,
          "the scan lists resnet20.onnx with its params (%lld) and MACs", rn >= 0 ? (long long)s->browse.items[rn].params : -1LL);
    CHECK(lenet_acc, "the zoo's lenet with its test accuracy");
    while (s->browse.sel < rn)
        ui_key(s, UI_K_DOWN);
    s->dirty = 1;
    f = ui_key(s, UI_K_ENTER);
    CHECK(!(f & UI_OPEN) && strstr(s->msg, "unsaved"), "Enter with unsaved changes asks first (%s)", s->msg);
    f = ui_key(s, UI_K_ENTER);
    CHECK(f & UI_OPEN, "Enter again opens");
    /* the mouse on its rows: a click selects, a click on the selected row (or a double click)
     * opens, the wheel moves the selection, and nothing reaches the layer table underneath */
    s->lines = 30;
    s->cols = 100;
    s->dirty = 0;
    s->browse.confirm = 0;
    s->browse.sel = 0;
    int layer_sel = s->sel;
    f = ui_mouse(s, 10, UI_BROWSE_Y + 2, UI_M_PRESS);
    CHECK(s->browse.sel == 2 && !(f & UI_OPEN), "a click on the third row selects it (sel %d)", s->browse.sel);
    ui_mouse(s, 10, UI_BROWSE_Y + 2, UI_M_RELEASE);
    f = ui_mouse(s, 10, UI_BROWSE_Y + 2, UI_M_PRESS);
    CHECK((f & UI_OPEN) && s->browse.opening, "a second click on it opens it (in the background)");
    f = ui_key(s, UI_K_ESC);
    CHECK((f & UI_OPEN_CANCEL) && s->browse.active && !s->browse.opening, "Esc gives that opening up, the browser stays");
    f = ui_mouse(s, 10, UI_BROWSE_Y, UI_M_WHEEL_DOWN);
    CHECK(s->browse.sel == 3 && s->sel == layer_sel, "the wheel moves the browser's selection, not the layers'");
    f = ui_mouse(s, 10, UI_BROWSE_Y + ui_browser_rows(s) + 1, UI_M_PRESS);
    CHECK(s->browse.sel == 3 && !(f & UI_OPEN), "a click below the rows does nothing");
    ui_mouse(s, 10, UI_BROWSE_Y + ui_browser_rows(s) + 1, UI_M_RELEASE);
    f = ui_mouse(s, 10, UI_BROWSE_Y + 1, UI_M_RELEASE); /* press and release read as one report */
    CHECK(s->browse.sel == 1 && !(f & UI_OPEN), "a release alone (its press unreported) clicks: sel %d", s->browse.sel);
    s->lines = 12; /* a short list: the selection scrolls into view and clicks follow the scroll */
    s->browse.sel = s->browse.n - 1;
    int first = ui_browser_first(s);
    f = ui_mouse(s, 10, UI_BROWSE_Y, UI_M_PRESS);
    CHECK(first > 0 && s->browse.sel == first, "scrolled: the top row is item %d (sel %d)", first, s->browse.sel);
    s->lines = 30;
    f = ui_key(s, UI_K_ESC);
    CHECK(!s->browse.active, "Esc closes the browser");
    s->screen = SCR_SEARCH;
    s->search.objective = 0;
    ui_key(s, 'o');
    CHECK(!s->browse.active && s->search.objective == 1, "on Search, o still cycles the objective");
    ui_key(s, 'O');
    CHECK(s->browse.active, "O opens the browser there");
    ui_state_free(s);
    free(s);
}

/* The explorer's first screen comes up before the EVBMF ranks: a deferred state has none yet (the
 * table shows an ellipsis), refuses `e` with a reason, and the worker's ranks, once installed, are
 * exactly ui_state_init's. */
static void test_deferred_evbmf(void)
{
    rs_model *m = load_lenet_random();
    if (!m)
        return;
    rs_err e = {{0}};
    ui_state *ref = malloc(sizeof *ref), *s = malloc(sizeof *s), *t = malloc(sizeof *t);
    ui_state_defaults(ref);
    ui_state_defaults(s);
    ui_state_defaults(t);
    s->evbmf_defer = t->evbmf_defer = 1;
    int rc = ui_state_init(ref, m, &e) | ui_state_init(s, m, &e) | ui_state_init(t, m, &e);
    CHECK(rc == 0 && s->evbmf_pending && !ref->evbmf_pending, "deferred: EVBMF pending (%s)", rc ? e.msg : "ok");
    int none = 1, some = 0, same_rest = s->n_layers == ref->n_layers;
    for (int k = 0; rc == 0 && k < s->n_layers; ++k)
        for (int j = 1; j < DECOMP_COUNT; ++j) {
            none &= s->layers[k].mi[j].evbmf == 0;
            some |= ref->layers[k].mi[j].evbmf > 0;
            same_rest &= s->layers[k].mi[j].default_rank == ref->layers[k].mi[j].default_rank &&
                         s->layers[k].mi[j].max_rank == ref->layers[k].mi[j].max_rank;
        }
    CHECK(none && some && same_rest, "no ranks yet; everything else as ui_state_init's");
    unsigned f = ui_key(s, UI_K_RIGHT);
    int method = s->layers[0].cur.method, rank = s->layers[0].cur.rank;
    f = ui_key(s, 'e');
    CHECK(method != DECOMP_NONE && s->layers[0].cur.rank == rank && !(f & UI_RECOMPUTE) &&
              strstr(s->msg, "still being found"),
          "e while pending: nothing changes, says why (%s)", s->msg);
    /* by hand, as the worker does */
    ui_evbmf *v = ui_evbmf_alloc(s);
    CHECK(v && ui_evbmf_run(v, m, NULL, NULL) == 0, "EVBMF ranks found apart from the state");
    if (v)
        ui_state_set_evbmf(s, v);
    ui_evbmf_free(v);
    /* on the worker */
    ui_evbmfjob *job = ui_evbmfjob_start(m, t, &e);
    int got = 0;
    for (int i = 0; job && i < 3000 && !got; ++i) {
        got = ui_evbmfjob_poll(job, t);
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (!got)
            nanosleep(&ts, NULL);
    }
    CHECK(got && !ui_evbmfjob_poll(job, t), "the worker's ranks installed once");
    ui_evbmfjob_drop(job); /* finished: freed at once */
    int same = !s->evbmf_pending && !t->evbmf_pending;
    for (int k = 0; k < s->n_layers; ++k)
        for (int j = 1; j < DECOMP_COUNT; ++j)
            same &= s->layers[k].mi[j].evbmf == ref->layers[k].mi[j].evbmf &&
                    s->layers[k].mi[j].evbmf2 == ref->layers[k].mi[j].evbmf2 &&
                    t->layers[k].mi[j].evbmf == ref->layers[k].mi[j].evbmf &&
                    t->layers[k].mi[j].evbmf2 == ref->layers[k].mi[j].evbmf2;
    CHECK(same, "installed ranks (by hand and from the worker) equal ui_state_init's; no longer pending");
    ui_key(s, 'e');
    CHECK(s->layers[0].cur.rank == s->layers[0].mi[s->layers[0].cur.method].evbmf, "then e applies the EVBMF rank");
    /* dropped while it runs: returns at once; the job works on its own copy of the model (freed
     * below while it may still run: ASan would see a use after free) and frees itself */
    job = ui_evbmfjob_start(m, t, &e);
    double t0 = rs_now();
    ui_evbmfjob_drop(job);
    CHECK(job && rs_now() - t0 < 0.5, "a running EVBMF job is dropped without waiting (%.3f s)", rs_now() - t0);
    ui_evbmfjob_drop(NULL);
    ui_state_free(ref), ui_state_free(s), ui_state_free(t);
    free(ref), free(s), free(t);
    model_free(m);
}

static int layer_named(const ui_state *s, const char *name)
{
    for (int k = 0; k < s->n_layers; ++k)
        if (!strcmp(s->layers[k].name, name))
            return k;
    return -1;
}

/* Polls ui_spec_update as the explorer's draw does until sp is ready (at most 120 s). */
static int spec_wait(ui_spec *sp, ui_specjob **job, const ui_state *s, const rs_model *m)
{
    for (int i = 0; i < 12000 && !sp->ready; ++i) {
        ui_spec_update(sp, job, s, m);
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (!sp->ready)
            nanosleep(&ts, NULL);
    }
    return sp->ready;
}

/* The Spectrum screen's SVD: small ones at once on the UI thread, big ones (the zoo VGG's) on a
 * worker with a pending note meanwhile, the result the same as computed directly; a job no
 * longer wanted is dropped without waiting. */
static void test_spectrum_worker(void)
{
    char path[4096];
    rs_err e = {{0}};
    if (!CHECK(rs_find_asset("zoo/vgg.onnx", path, sizeof path) == 0, "the zoo VGG is shipped"))
        return;
    rs_model *m = onnx_load(path, &e);
    if (!CHECK(m != NULL, "load %s: %s", path, m ? "ok" : e.msg))
        return;
    ui_state *s = malloc(sizeof *s);
    ui_state_defaults(s);
    s->evbmf_defer = 1; /* not needed here */
    CHECK(ui_state_init(s, m, &e) == 0, "vgg state: %s", e.msg);
    int c1 = layer_named(s, "features.conv1"), c5 = layer_named(s, "features.conv5"),
        c6 = layer_named(s, "features.conv6"), c8 = layer_named(s, "features.conv8");
    if (!CHECK(c1 >= 0 && c5 >= 0 && c6 >= 0 && c8 >= 0, "vgg layers found"))
        goto out;
    CHECK(ui_spec_cost(m, s->layers[c8].node, DECOMP_SPATIAL_SVD) == 384.0 * 384 * 384 &&
              ui_spec_cost(m, s->layers[c6].node, DECOMP_CP) == 128.0 * 128 * 1152 &&
              ui_spec_cost(m, s->layers[c1].node, DECOMP_SPATIAL_SVD) == 9.0 * 9 * 96,
          "SVD cost: conv8 spatial 384^3, conv6 mode-0 128^2*1152, conv1 spatial 9^2*96");
    ui_spec sp, ref;
    memset(&sp, 0, sizeof sp);
    memset(&ref, 0, sizeof ref);
    ui_specjob *job = NULL;
    /* a small layer: at once */
    s->sel = c1;
    CHECK(ui_spec_update(&sp, &job, s, m) == 1 && sp.valid && sp.ready && !job, "conv1: computed at once, no worker");
    CHECK(ui_spec_update(&sp, &job, s, m) == 0, "then cached");
    /* a big one: pending at once, the worker's result equal to the direct computation */
    s->sel = c6;
    ui_set_choice(s, &s->layers[c6], DECOMP_CP, 8, 0);
    CHECK(ui_spec_method(s) == DECOMP_CP, "conv6 at cp 8");
    int r = ui_spec_update(&sp, &job, s, m);
    CHECK(r == 1 && sp.pending && !sp.valid && !sp.ready && job && strstr(sp.note, "computing the spectrum of features.conv6"),
          "conv6 (cp: mode-0 128x1152): pending on a worker, says so (%s)", sp.note);
    CHECK(spec_wait(&sp, &job, s, m) && sp.valid && !job, "the worker's spectrum installed");
    ui_spec_compute(&ref, m, &s->layers[c6], c6, DECOMP_CP);
    int same = ref.valid && ref.n == sp.n && ref.n > 0 && ref.evbmf_rank == sp.evbmf_rank && sp.layer == c6 &&
               sp.method == DECOMP_CP;
    for (int i = 0; same && i < ref.n; ++i)
        same = ref.sigma[i] == sp.sigma[i] && ref.err[i] == sp.err[i];
    CHECK(same, "equal to ui_spec_compute on the UI thread (%d values, EVBMF %d)", ref.n, ref.evbmf_rank);
    /* moving on while a worker runs: one SVD at a time, the wanted one after it */
    s->sel = c8;
    r = ui_spec_update(&sp, &job, s, m);
    CHECK(r == 1 && sp.pending && job, "conv8 (spatial 384x384): pending (%s)", sp.note);
    s->sel = c5;
    ui_set_choice(s, &s->layers[c5], DECOMP_CP, 8, 0);
    ui_spec_update(&sp, &job, s, m);
    CHECK(sp.pending && sp.layer == c5 && strstr(sp.note, "features.conv5 after features.conv8's"),
          "conv5 while conv8's SVD runs: waits for it, says so (%s)", sp.note);
    /* leaving: dropped without waiting for conv8's SVD (seconds); the worker frees itself */
    ui_specjob_drop(job);
    job = NULL;
    ui_spec_free(&sp);
    ui_spec_free(&ref);
    CHECK(sp.sigma == NULL && !sp.valid, "freed");
out:
    ui_state_free(s);
    free(s);
    model_free(m); /* the dropped worker has its own copy */
}

/* Escape sequences the terminfo entry does not describe (tmux sends End as ESC [4~ whatever TERM
 * says): the keys they mean, never Esc plus the digits as keys (End used to leave the browser and
 * switch to screen 4). */
static void test_escape_keys(void)
{
    static const struct {
        const char *seq;
        int key;
    } cases[] = {{"[4~", UI_K_END},   {"[8~", UI_K_END},   {"[1~", UI_K_HOME},  {"[7~", UI_K_HOME},
                 {"[5~", UI_K_PGUP},  {"[6~", UI_K_PGDN},  {"[A", UI_K_UP},     {"[B", UI_K_DOWN},
                 {"[C", UI_K_RIGHT},  {"[D", UI_K_LEFT},   {"OH", UI_K_HOME},   {"OF", UI_K_END},
                 {"[H", UI_K_HOME},   {"[F", UI_K_END},    {"[Z", UI_K_BTAB},   {"[1;5C", UI_K_RIGHT},
                 {"[3~", 0},          {"[15~", 0},         {"[<0;10;5M", 0},    {"[M", 0},
                 {"[4", 0},           {"x", 0},            {"", 0},             {"OP", 0}};
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        if (ui_escape_key(cases[i].seq) != cases[i].key) {
            printf("#   ESC %s: %d, want %d\n", cases[i].seq, ui_escape_key(cases[i].seq), cases[i].key);
            ++bad;
        }
    CHECK(!bad, "%zu escape sequences: the keys they mean, 0 for the rest (mouse, Delete, F5, incomplete)",
          sizeof cases / sizeof cases[0]);
}

/* Every help (each screen's, the browser's, the comparison's) at 80 and 100 columns reads as
 * paragraphs: a line under the description column that goes on with the sentence above starts
 * with a word that would not have fitted on that line (a source line break is not kept). */
static void test_help_paragraphs(void)
{
    ui_state *s = malloc(sizeof *s);
    synth(s);
    static char w[192][UI_HELP_LINE];
    int bad = 0, helps = 0;
    for (int cols = 80; cols <= 100; cols += 20)
        for (int v = 0; v < SCR_COUNT + 2; ++v) {
            s->cols = cols;
            s->lines = 24;
            s->screen = v < SCR_COUNT ? v : 0;
            s->browse.active = v == SCR_COUNT;
            s->cmp.active = v == SCR_COUNT + 1;
            int n = ui_help_wrapped(s, w, 192), room = ui_help_box_width(s) - 4;
            ++helps;
            for (int i = 1; i < n && i < 192; ++i) {
                const char *b = w[i];
                if (strspn(b, " ") != 23 || !w[i - 1][0])
                    continue;
                size_t word = strcspn(b + 23, " ");
                size_t al = strlen(w[i - 1]);
                if (b[23 + word - 1] == ':' || w[i - 1][al - 1] == ';' || w[i - 1][al - 1] == '.')
                    continue; /* "drop: ..." a paragraph of its own, or after the end of a clause */
                if ((int)(strlen(w[i - 1]) + 1 + word) <= room) {
                    printf("#   %d cols, help %d: \"%s\" / \"%s\" (room %d)\n", cols, v, w[i - 1], b, room);
                    ++bad;
                }
            }
        }
    s->browse.active = s->cmp.active = 0;
    CHECK(!bad, "%d helps at 80 and 100 columns: no line ends where its next word still fitted (%d)", helps, bad);
    /* no key is explained twice in one help (Search listed w twice, with two meanings) */
    int twice = 0;
    for (int v = 0; v < SCR_COUNT + 2; ++v) {
        s->screen = v < SCR_COUNT ? v : 0;
        s->browse.active = v == SCR_COUNT;
        s->cmp.active = v == SCR_COUNT + 1;
        const char *lines[128];
        int n = ui_help_lines(s, lines, 128);
        for (int i = 0; i < n && i < 128; ++i)
            for (int j = i + 1; j < n && j < 128; ++j) {
                size_t ki = strlen(lines[i]) > 23 ? 23 : 0, kj = strlen(lines[j]) > 23 ? 23 : 0;
                if (ki && kj && lines[i][0] != ' ' && !strncmp(lines[i], lines[j], 23)) {
                    printf("#   help %d: %.23s twice\n", v, lines[i]);
                    ++twice;
                }
            }
    }
    s->browse.active = s->cmp.active = 0;
    CHECK(!twice, "every help names each key once (%d twice)", twice);
    ui_state_free(s);
    free(s);
}

/* The Search screen's trial table fits at 80 columns (the row is drawn from column 1 in 78
 * cells) with every figure but the images count, whose column comes back from 91, and the
 * phase, which the layer column says for the trials that name no layer. */
static void test_trial_rows(void)
{
    ui_state *s = calloc(1, sizeof *s);
    ui_state_defaults(s);
    static const char *const names[] = {"layer3.0.conv1", "layer3.0.conv2", "layer2.0.shortcut.0", "layer3.0.shortcut.0"};
    s->n_layers = 4;
    s->layers = calloc(4, sizeof *s->layers);
    for (int k = 0; k < 4; ++k) {
        snprintf(s->layers[k].name, sizeof s->layers[k].name, "%s", names[k]);
        snprintf(s->layers[k].op, sizeof s->layers[k].op, "Conv");
    }
    s->utf8 = 0; /* one byte a cell */
    ui_trial t = {1234, "bisect", "layer3.0.shortcut.0", "tucker2 38,12", 0.9123, 5000, 1, 271700, 40800000, 1234.5};
    char row[256], head[256];
    ui_trial_row(s, &t, 78, row, sizeof row);
    ui_trial_header(78, head, sizeof head);
    const char *macs = strstr(row, "40.8M"), *hm = strstr(head, "MACs");
    CHECK(strlen(row) <= 78 && strlen(head) <= 78 && strstr(row, "271.7K") && macs && strstr(row, "1234.5s") &&
              strstr(row, "91.2%") && !strstr(row, "5000"),
          "78 cells: params, MACs, time and accuracy whole (%s)", row);
    CHECK(hm && macs && hm - head == macs - row + 1 && !strcmp(head + strlen(head) - 4, "time") &&
              strlen(head) == strlen(row),
          "its header's columns end where the row's do (%s)", head);
    ui_trial_row(s, &t, 91, row, sizeof row);
    ui_trial_header(91, head, sizeof head);
    CHECK(strlen(row) <= 91 && strstr(row, "5000") && strstr(row, "1234.5s") && strstr(head, "images") &&
              strlen(head) == strlen(row) && strstr(head, "MACs") - head == strstr(row, "40.8M") - row + 1,
          "91 cells: with the images evaluated, under its header (%s)", row);
    ui_trial_row(s, &t, 98, row, sizeof row);
    ui_trial_header(98, head, sizeof head);
    CHECK(strlen(row) <= 98 && strstr(row, " layer3.0.shortcut.0 ") && strlen(head) == strlen(row),
          "98 cells: the whole name (%s)", row);
    char rows[4][256];
    int same = 0;
    for (int k = 0; k < 4; ++k) {
        snprintf(t.layer, sizeof t.layer, "%s", names[k]);
        ui_trial_row(s, &t, 78, rows[k], sizeof rows[k]);
        for (int j = 0; j < k; ++j)
            same += !strcmp(rows[j], rows[k]) || strlen(rows[j]) != strlen(rows[k]);
    }
    CHECK(!same && strstr(rows[2], " layer2.0.shortcut.0 ") && strstr(rows[3], " layer3.0.shortcut.0 "),
          "four long names at 78 cells whole, in one column (%.20s / %.20s / %.20s / %.20s)", rows[0] + 5, rows[1] + 5,
          rows[2] + 5, rows[3] + 5);
    ui_trial v = {1235, "backoff", "", "", 0.9, 10000, 1, 271700, 40800000, 1300.0};
    ui_trial_row(s, &v, 78, row, sizeof row);
    ui_trial_header(78, head, sizeof head);
    CHECK(strlen(row) == strlen(head) && strstr(row, " (backoff) ") &&
              strstr(row, "1300.0s"),
          "a trial of the whole plan says its phase where a layer's says the layer (%s)", row);
    t.tried[0] = 0;
    snprintf(t.tried, sizeof t.tried, "tucker2 256,256");
    ui_trial_row(s, &t, 78, row, sizeof row);
    CHECK(strlen(row) <= 78 && strstr(row, " tucker2 256,256 "), "the widest rank tried whole at 78 cells (%s)", row);
    ui_trial_row(s, &t, 91, row, sizeof row);
    CHECK(strlen(row) <= 91 && strstr(row, " tucker2 256,256 "), "and at 91 (%s)", row);
    ui_state_free(s);
    free(s);
}

/* A layer no method applies to (a depthwise conv): m says so, as <-/-> do, and changes nothing. */
static void test_no_method(void)
{
    ui_state *s = malloc(sizeof *s);
    synth(s);
    s->layers[0].methods = 1u << DECOMP_NONE;
    s->sel = 0;
    uint64_t g = s->gen;
    s->msg[0] = 0;
    ui_key(s, 'm');
    CHECK(strstr(s->msg, "conv2: no low-rank method applies to this layer") && s->gen == g &&
              s->layers[0].cur.method == DECOMP_NONE,
          "m on a layer no method applies to says so (%s)", s->msg);
    s->msg[0] = 0;
    ui_key(s, UI_K_RIGHT);
    CHECK(strstr(s->msg, "no low-rank method applies to this layer") != NULL, "-> says the same (%s)", s->msg);
    ui_state_free(s);
    free(s);
}

int main(void)
{
    rs_gsl_init();
    test_format();
    test_example();
    test_keys();
    test_escape_keys();
    test_help_paragraphs();
    test_trial_rows();
    test_no_method();
    test_mouse();
    test_pareto();
    test_curve_and_finetune_keys();
    test_conveniences();
    test_labels();
    test_browser();
    test_model_and_live();
    test_deferred_evbmf();
    test_spectrum_worker();
    return check_done();
}
