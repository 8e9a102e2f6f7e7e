/* state.h — the explorer's state and its pure transitions (no curses, no threads, no I/O).
 *
 * Contract:
 *  - ui_key / ui_mouse take the state and one input event and return UI_* flags saying what the
 *    caller (app.c) must do next: redraw, quit, re-factorize + re-evaluate (RECOMPUTE), save, start
 *    a sweep or a search. They never block, allocate or touch the terminal, so tests drive them
 *    directly.
 *  - Keys are the UI_K_* codes below (app.c maps curses codes onto them); printable keys are their
 *    ASCII value.
 *  - Every change of a layer's method or rank bumps `gen`; results computed in the background
 *    carry the gen they were computed for, so a stale result is never shown as current.
 *  - Layers are the model's weighted nodes (Conv / Gemm / MatMul) in graph order; their valid
 *    methods and rank ranges are filled once by ui_state_init from the engine.
 */
#ifndef RANKSCOPE_UI_STATE_H
#define RANKSCOPE_UI_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "example.h"
#include "rankscope/decomp.h"
#include "rankscope/eval.h"
#include "rankscope/infer.h"
#include "rankscope/model.h"
#include "rankscope/pipeline.h"
#include "rankscope/plan.h"

enum ui_screen {
    SCR_LAYERS = 0,
    SCR_SPECTRUM,
    SCR_ACCURACY,
    SCR_TRADEOFFS,
    SCR_SEARCH,
    SCR_EXAMPLE,
    SCR_GRAPH,
    SCR_COUNT
};

enum ui_flags {
    UI_HANDLED = 1u << 0,
    UI_REDRAW = 1u << 1,
    UI_QUIT = 1u << 2,
    UI_RECOMPUTE = 1u << 3, /* a layer's method/rank changed: re-factorize + re-evaluate */
    UI_SAVE = 1u << 4,
    UI_SWEEP = 1u << 5,     /* (re)start the trade-off sweep for the selected layer */
    UI_SEARCH_START = 1u << 6,
    UI_SEARCH_STOP = 1u << 7,
    UI_SEARCH_APPLY = 1u << 8,
    UI_CURVE_START = 1u << 9,  /* trade-offs: compute the accuracy-vs-reduction curve */
    UI_FT_START = 1u << 10,    /* search: fine-tune the current slider plan */
    UI_FT_STOP = 1u << 11,
    UI_FT_SAVE = 1u << 12,     /* search: save the fine-tuned ONNX */
    UI_BROWSE = 1u << 13,      /* fill the model browser (ui_browser_scan) */
    UI_OPEN = 1u << 14,        /* open the browser's selected model */
    UI_SAVE_AS = 1u << 15,     /* save to the prefix typed in s->saveas (app.c checks, asks, writes) */
    UI_COMPARE = 1u << 16,     /* compare with the browser's selected model (app.c loads it) */
    UI_OPEN_CANCEL = 1u << 17, /* give up the model being opened in the background */
};

enum ui_keys {
    UI_K_TAB = '\t',
    UI_K_ENTER = '\n',
    UI_K_ESC = 27,
    UI_K_LEFT = 0x10000,
    UI_K_RIGHT,
    UI_K_UP,
    UI_K_DOWN,
    UI_K_PGUP,
    UI_K_PGDN,
    UI_K_HOME,
    UI_K_END,
    UI_K_BTAB,
    UI_K_BACKSPACE,
    UI_K_RESIZE,
};

enum ui_mouse_ev { UI_M_PRESS = 1, UI_M_DRAG, UI_M_RELEASE, UI_M_WHEEL_UP, UI_M_WHEEL_DOWN };

/* method, rank, rank2 (tucker2 only, 0 = default min(rank, C_in)) */
typedef pipe_choice ui_choice;

typedef struct ui_method_info {
    int max_rank, max_rank2; /* 0: method not valid for the layer */
    int evbmf, evbmf2;       /* EVBMF suggestion, 0 unknown */
    int break_even;          /* largest rank that saves params, 0 = none does */
    int default_rank;        /* rank taken when the method is chosen */
} ui_method_info;

typedef struct ui_layer {
    int node; /* index in the original model */
    char name[48];      /* display / plan name: "conv2" for PyTorch's "/conv2/Conv" */
    char node_name[96]; /* the node's own name in the model */
    char label[48];     /* the table's short name: name without repeated path parts, unique */
    char op[12], shape[40];
    int64_t params, macs;
    unsigned methods; /* bit (1u << method) */
    ui_method_info mi[DECOMP_COUNT];
    ui_choice cur;
    int64_t params_after, macs_after; /* analytic, for cur (ui_state_costs) */
    /* measured by the worker for res_for; shown only while res_for equals cur */
    ui_choice res_for;
    int res_valid;
    double w_err, out_err;
    double fit_w_err, fit_out_err; /* the same for the factors fitted to the outputs (< 0 unknown) */
    ui_choice searched; /* the last search's choice for this layer (has_searched) */
    int has_searched;
    int n_steps; /* the factor chain of res_for, as "5x1 conv 6->12" with each step's cost */
    char step_text[DECOMP_MAX_FACTORS][40];
    int64_t step_params[DECOMP_MAX_FACTORS], step_macs[DECOMP_MAX_FACTORS];
    /* Sensitivity: the accuracy drop (points, original minus this layer alone factorized by
     * sens_for, every other layer original), first on the estimate subset (sens_images > 0
     * images, when the slider estimates too), then on the whole set (sens_images = 0). */
    ui_choice sens_for;
    int sens_valid, sens_images;
    double sens_drop;
} ui_layer;

/* Columns of the layer table that fit the width, and where the slider is. */
enum { COL_NAME, COL_OP, COL_SHAPE, COL_PARAMS, COL_MACS, COL_METHOD, COL_SLIDER, COL_RANK,
       COL_EVBMF, COL_WERR, COL_OERR, COL_DROP, COL_SAVES, COL_COUNT };
typedef struct ui_table_layout {
    int show[COL_COUNT];
    int x[COL_COUNT], w[COL_COUNT];
    int table_y;    /* screen row of the first visible layer row */
    int rows;       /* layer rows visible */
    int panel_y;    /* first row below the table */
} ui_table_layout;

#define UI_MIN_COLS 80
#define UI_MIN_LINES 24
#define UI_MAX_SWEEP 64
#define UI_MAX_HISTORY 1024
#define UI_CURVE_N 5 /* reductions 1.5x 2x 2.5x 3x 4x (ui_curve_reductions) */
#define UI_FT_MAX_EPOCHS 32

typedef struct ui_sweep {
    int layer;           /* index into layers, -1 none */
    ui_choice base;      /* method swept (rank varies) */
    uint64_t cfg_gen;    /* gen of the rest of the configuration it was run with */
    int n, total;        /* points done / planned */
    int rank[UI_MAX_SWEEP];
    double acc[UI_MAX_SWEEP];
    int64_t params[UI_MAX_SWEEP], macs[UI_MAX_SWEEP]; /* whole network */
    int running;
} ui_sweep;

typedef struct ui_point {
    double ratio;    /* whole-network params before / after */
    double macs_ratio;
    double acc;
    char label[48];  /* short description, e.g. "conv2 spatial-svd 12 +2" */
} ui_point;

#define UI_MAX_TRIALS 512
typedef struct ui_trial {
    int index;
    char phase[16], layer[48];
    char tried[32]; /* the probed layer's method and rank in the plan tried, "svd 24" */
    double acc;
    int images, within;
    int64_t params, macs;
    double elapsed;
} ui_trial;

/* The Search screen's run (screen 5). */
typedef struct ui_search_state {
    int available, running;
    char set[160];  /* the set searched on */
    int strategy;   /* search_strategy */
    int objective;  /* search_objective */
    double tol;     /* accuracy points */
    int fit_outputs; /* `f`: the factors of the search, F and the fine-tuned curve fitted to the layer
                      * outputs on calibration images (as --fit outputs), else to the weights */
    int n_trials, trials_total;
    ui_trial trials[UI_MAX_TRIALS]; /* the most recent */
    double progress, elapsed;
    int have_result, within, cancelled;
    double base, acc;
    int64_t params, macs;
    char msg[RS_ERR_LEN + 64];
} ui_search_state;

/* The trade-off curve (screen 4, `c`): accuracy at UI_CURVE_N parameter reductions, each point
 * the plan of least estimated drop for the budget (search tables), evaluated for real. */
typedef struct ui_curve_state {
    int running, done, n;
    double ratio[UI_CURVE_N], acc[UI_CURVE_N], est[UI_CURVE_N];
    char msg[RS_ERR_LEN + 64];
    char msg_short[48];         /* msg in the half screen of 80 columns (38 cells); empty: msg cut */
    int finetune;               /* `C`: each point also fine-tuned (ft.epochs, the pipeline the CLI uses) */
    int fit_outputs;            /* its factors fitted to the layer outputs (search.fit_outputs when started) */
    double acc_ft[UI_CURVE_N];  /* after fine-tuning, < 0 when not */
    int sel;                    /* the selected point (< / > select, Enter applies it), -1 none */
    ui_choice *plans;           /* UI_CURVE_N × n_layers, owned: each point's choice per layer */
} ui_curve_state;

/* Fine-tuning of the slider plan (screen 5, `F`). */
typedef struct ui_ft_state {
    int available; /* the full training set is present */
    int running, done, have_model, epochs, n;
    double val[UI_FT_MAX_EPOCHS], test_acc, progress;
    char msg[RS_ERR_LEN + 64];
} ui_ft_state;

/* The Graph screen: every node of the model, in graph order. */
typedef struct ui_gnode {
    char name[96], op[24], out[32]; /* out: output shape per image, "16x32x32" */
    int64_t params, macs;
    int inputs; /* inputs computed by other nodes (2 for an Add) */
    int layer;  /* index into layers for a weighted node, else -1; a chain row: its layer */
    /* measured time (ui_graph_set_times): timed is an infer_node_kind, or -1 before the
     * measurement; us = CPU microseconds per image of the kernel step this node heads;
     * fused_into = the row whose step runs this node (INFER_NODE_FUSED), else -1 */
    int timed, fused_into;
    double us;
    /* the same in the plan-applied model (ui_graph_set_plan_times); a factorized node's p_us is
     * its chain's sum; p_fused_into is a display key (ui_graph_key_node) */
    int p_timed, p_fused_into;
    double p_us;
    int sub0, n_sub; /* its chain's rows in subs (n_sub 0: not factorized in that plan) */
} ui_gnode;
/* The time column's measurement (a worker runs infer_profile once the screen is first shown). */
enum { UI_TIME_NONE, UI_TIME_RUNNING, UI_TIME_DONE, UI_TIME_FAILED };
typedef struct ui_graph_state {
    int n, sel, scroll; /* sel and scroll count display rows (rows) */
    ui_gnode *nodes; /* owned */
    int time_state;       /* UI_TIME_* */
    double time_progress; /* of the running measurement, 0..1 */
    double total_us;      /* the nodes' sum, CPU microseconds per image */
    int time_images;      /* images it ran */
    char time_err[RS_ERR_LEN];
    /* The plan-applied model (the one evaluation runs) timed the same way once the original is:
     * its factorized chains' nodes (subs, owned; sub_parent: the node each replaces) shown as rows
     * under that node. p_for (owned, n_layers) = the choices the figures are for (p_have). */
    int p_state, p_have, p_images;
    double p_progress, p_total_us;
    char p_err[RS_ERR_LEN];
    ui_choice *p_for, *p_want; /* p_want (owned): the choices of the last measurement started */
    ui_gnode *subs;
    int *sub_parent;
    int n_subs;
    /* display rows: keys (>= 0 a node, < 0 chain row -(k + 1)); owned, n_rows of them */
    int *rows, n_rows;
    int p_shown; /* rows include the chains (the current plan factorizes something and p_have) */
} ui_graph_state;

/* The model browser (`o`). */
#define UI_BROWSE_MAX 96
#define UI_RECENT_MAX 12
typedef struct ui_browse_item {
    char name[80], path[1024];
    int64_t params, macs; /* -1 when the file does not load */
    double acc;           /* test accuracy when known (zoo catalogue, or measured when last opened), else -1 */
    int missing;          /* a recent file that is no longer there */
    char err[200];        /* why the file does not load ("" when it does) */
} ui_browse_item;
/* Recently opened files, newest first (persisted by browser.c). */
typedef struct ui_recent {
    int n;
    char path[UI_RECENT_MAX][1024];
    double acc[UI_RECENT_MAX]; /* on the full CIFAR-10 test set, -1 unknown */
} ui_recent;
typedef struct ui_browser_state {
    int active, n, sel, confirm;
    ui_browse_item items[UI_BROWSE_MAX];
    char dir[1024];      /* the directory listed ("" = the current one) */
    int dir_editing, dir_len;
    int dir_fresh;       /* dir_buf is still the directory listed: typing replaces it */
    char dir_buf[1024];  /* the directory being typed (`d`) */
    char dir_err[160];   /* why the directory could not be listed ("" when it was) */
    /* The model being opened on a worker (UI_OPEN starts it, app.c reports into these): the
     * browser stays up and answers keys meanwhile; Esc gives it up (UI_OPEN_CANCEL). */
    int opening;
    char open_name[80], open_path[1024];
    double open_progress; /* 0..1 */
    char open_what[64];   /* the step under way, "conv2 svd EVBMF" */
    int spin;             /* spinner frame, advanced by app.c while opening */
    char note[RS_ERR_LEN + 128]; /* why the last opening failed, or that it was cancelled ("" none) */
} ui_browser_state;

/* The layer table's view (`/` filter, `s` sort): which layers it lists and in what order. Every
 * screen's up/down steps through the same list; s->sel stays a layer index. */
enum ui_sort { UI_SORT_GRAPH = 0, UI_SORT_PARAMS, UI_SORT_MACS, UI_SORT_ERROR, UI_SORT_SENS, UI_SORT_COUNT };
typedef struct ui_view {
    char filter[40]; /* case-insensitive substring of the name, node name, op or method */
    int filter_len, editing;
    int sort;  /* ui_sort; largest first, graph order among equals */
    int n;     /* layers listed */
    int *rows; /* owned (n_layers entries): the listed layers in table order; NULL = all, graph order */
} ui_view;

/* Two models side by side (`--compare B.onnx`, `c` in the browser): each weighted layer of A with
 * its params and MACs in A and what became of it in B (the same node, its factor chain
 * "NAME_f0".., or nothing), then B's layers A lacks; whole-network totals and accuracies. */
typedef struct ui_cmp_row {
    char name[96];    /* A's node name (B's for a layer only B has) */
    char how[24];     /* "same", "changed", "3 factors", "not in B", "only in B" */
    int64_t a_params, a_macs, b_params, b_macs; /* -1: absent on that side */
} ui_cmp_row;
typedef struct ui_compare_state {
    int active, n, sel, scroll;
    ui_cmp_row *rows; /* owned */
    char b_name[128], b_path[1024];
    int64_t a_params, a_macs, b_params, b_macs;
    double b_acc;     /* on the explorer's set; < 0 while being evaluated or unknown */
    double a_known, b_known; /* on the full test set, from the zoo catalogue or the recent files; < 0 unknown */
    char a_known_from[16], b_known_from[16]; /* "zoo", "last opened" */
    int b_running;
    char msg[RS_ERR_LEN + 64];
} ui_compare_state;

/* Undo / redo: the configurations the sliders went through (history[0..n), cursor at `at`). */
#define UI_UNDO_MAX 64
typedef struct ui_undo {
    ui_choice *history; /* UI_UNDO_MAX × n_layers, owned (ui_state_init) */
    ui_choice *saved;   /* n_layers, owned: the choices last saved (or opened with), so stepping
                         * back to them leaves nothing unsaved */
    int n, at;
} ui_undo;

/* A one-line prompt on the status line (the exact rank of the selected layer). */
typedef struct ui_prompt {
    int active;
    char buf[16];
    int len;
} ui_prompt;

/* Save as (`W`): a path prompt; when the app finds the files exist it sets `asking` and the next
 * key answers (y: `overwrite` set and UI_SAVE_AS again; anything else: back to the path). */
typedef struct ui_saveas {
    int active, asking, overwrite;
    char buf[512];
    int len;
    char exists[512]; /* the existing file the question names */
    char note[480];   /* why the last attempt failed or what was kept, shown in the prompt */
} ui_saveas;

typedef struct ui_edit {
    int active;
    int which; /* 0 = input X, 1 = kernel K */
    int r, c;
    char buf[16];
    int len;
} ui_edit;

typedef struct ui_state {
    int screen;
    int help, help_scroll, confirm_quit;
    int cols, lines;
    int utf8, color;
    /* model */
    char model_name[128];
    char data_name[160];
    int n_layers;
    ui_layer *layers; /* owned */
    int sel, scroll;
    int dirty;
    uint64_t gen;
    int64_t params_total, macs_total;         /* original network */
    int64_t params_total_after, macs_total_after;
    /* accuracy */
    int have_orig;
    eval_result orig;
    int have_cur;
    eval_result cur;
    uint64_t cur_gen;     /* gen the current result was computed for */
    int cur_est_images;   /* > 0: cur is a first estimate on that many images, refined next */
    int have_orig_est;    /* orig_est: the original on the images a first estimate runs on */
    eval_result orig_est;
    double eval_progress; /* of the running evaluation, <0 idle */
    double eval_seconds;  /* wall time from request to result of the last one */
    char eval_error[RS_ERR_LEN + 16];
    /* screens */
    int spec_log;
    int full_names; /* the layer table shows node names in full (`n`) */
    int evbmf_defer;   /* set before ui_state_init: EVBMF ranks left to a worker (ui_evbmf_ranks) */
    int evbmf_pending; /* those ranks are not in yet: shown as an ellipsis, `e` refused */
    int drag_row; /* layer row being dragged on its slider, -1 */
    int frame_pressed; /* a press on a tab or footer key acted; its release must not act again */
    int overlay_pressed; /* the same for a press on a row of the browser or the comparison */
    ex_state ex;
    ui_edit edit;
    ui_sweep sweep;
    int n_hist;
    ui_point hist[UI_MAX_HISTORY];
    char msg[RS_ERR_LEN + 64];
    ui_search_state search;
    ui_curve_state curve;
    ui_ft_state ft;
    ui_undo undo;
    ui_prompt prompt;
    ui_graph_state graph;
    ui_browser_state browse;
    ui_view view;
    ui_saveas saveas;
    ui_compare_state cmp;
    char save_prefix[512]; /* where `w` writes (PREFIX.plan, PREFIX.onnx): the save-as default */
} ui_state;

/* Zeroed state with defaults (no layers); ex set to the default example. */
void ui_state_defaults(ui_state *s);
void ui_state_free(ui_state *s); /* frees layers; accepts NULL */
/* Fill layers from the model: weighted nodes, valid methods, rank ranges, EVBMF, break-even. */
int ui_state_init(ui_state *s, const rs_model *m, rs_err *e);
/* The same with progress (fraction of the layers done, the step as "conv2 svd EVBMF"); a non-zero
 * return cancels: RS_CANCELLED, s then half filled (ui_state_free it). Touches nothing but s, so
 * it can run on a worker thread while the UI uses another state. */
int ui_state_init_progress(ui_state *s, const rs_model *m, rs_progress_fn progress, void *user, rs_err *e);
/* EVBMF ranks of s's layers apart from the state, so a worker can find them while the screen is up
 * (an SVD per unfolding: seconds on a big net). ui_evbmf_alloc copies what is needed from s;
 * ui_evbmf_run fills the ranks (progress as for ui_state_init_progress; non-zero cancels, then
 * RS_CANCELLED); ui_state_set_evbmf copies them into a state of the same model and clears
 * evbmf_pending. */
typedef struct ui_evbmf ui_evbmf;
ui_evbmf *ui_evbmf_alloc(const ui_state *s);
int ui_evbmf_run(ui_evbmf *v, const rs_model *m, rs_progress_fn progress, void *user);
void ui_state_set_evbmf(ui_state *s, const ui_evbmf *v);
void ui_evbmf_free(ui_evbmf *v); /* accepts NULL */
/* (Re)start the undo history at the current choices (ui_state_init does it), which also count as
 * saved; -1 out of memory. */
int ui_state_undo_init(ui_state *s);
/* The current choices were written out: nothing unsaved until they differ again. */
void ui_state_mark_saved(ui_state *s);
/* Take methods/ranks from a plan (layer names of the original model). */
int ui_state_apply_plan(ui_state *s, const rs_model *m, const rs_plan *p, rs_err *e);
/* The plan of the current choices (entries for factorized layers only). */
int ui_state_plan(const ui_state *s, rs_plan *out, rs_err *e);
/* Background jobs running, as "opening resnet20.onnx 40%  search 34%  curve 2/5  fine-tune 1/3"
 * ("" when none). Returns how many run. */
int ui_jobs_text(const ui_state *s, char *buf, size_t len);
/* The exact-rank prompt as shown on the status line; 0 when it is not open. */
int ui_prompt_text(const ui_state *s, char *buf, size_t len);

/* Analytic costs of the current choices (per layer and whole network). */
void ui_state_costs(ui_state *s, const rs_model *m);

unsigned ui_key(ui_state *s, int key);
/* An escape sequence the terminal's terminfo entry does not describe (curses hands it over as ESC
 * and its bytes), e.g. "[4~" (End on VT220-style terminals) or "OH": its UI_K_* key, or 0 for one
 * to ignore (a mouse report, Delete, F-keys). seq is what follows ESC; a sequence still incomplete
 * (no final byte) is 0 too. */
int ui_escape_key(const char *seq);
unsigned ui_mouse(ui_state *s, int x, int y, int ev);

/* The Graph screen (graph.c): rows from the model (ui_state_init calls it, after the layers),
 * rows visible for s->lines, and its keys. */
int ui_graph_init(ui_state *s, const rs_model *m, rs_err *e);
void ui_graph_free(ui_graph_state *g); /* frees what it owns and zeroes it */
/* "/stages/stages.3/shortcut/shortcut.0" -> "stages.3/shortcut.0": path parts the next one repeats
 * with a suffix (PyTorch's module/module.N) dropped. */
void ui_compact_name(const char *name, char *out, size_t len);
/* "16x6x5x5" from n (<= 4) dims. */
void ui_dims_text(const int64_t *d, int n, char *buf, size_t len);
int ui_graph_rows(const ui_state *s);
unsigned ui_graph_key(ui_state *s, int key);
/* The measured times into the rows (p from infer_profile on the same model: its node i is row i);
 * p NULL: the measurement failed, why says so. */
void ui_graph_set_times(ui_state *s, const infer_prof *p, const char *why);
/* The plan-applied model's times: the current plan factorizes a layer (an empty plan runs the
 * original: nothing to measure). */
int ui_graph_plan_applies(const ui_state *s);
/* The plan-applied model is still to be measured: the original's times are in, a plan applies
 * and no measurement (done or running) is for the current choices. */
int ui_graph_plan_wanted(const ui_state *s);
/* A measurement of the current choices starts (p_want = them, p_state RUNNING). */
int ui_graph_plan_started(ui_state *s, rs_err *e);
/* The figures shown are for other choices than the current ones (marked stale on screen). */
int ui_graph_plan_stale(const ui_state *s);
/* Its outcome: pm = the plan-applied model (plan_apply on a copy of orig), p = infer_profile of
 * pm. Nodes pm keeps map to their rows by their output value; the nodes that replace a layer
 * become its chain rows. p NULL: failed (why). Returns 0, or -1 (p_state FAILED, p_err says why)
 * when pm does not follow orig. */
int ui_graph_set_plan_times(ui_state *s, const rs_model *orig, const rs_model *pm, const infer_prof *p,
                            const char *why);
/* Rebuild the display rows (chains shown while a plan applies and its times are in), keeping the
 * selected node; returns 1 when they changed. Called after every change of the choices. */
int ui_graph_sync(ui_state *s);
/* Display row r: the node it shows (a chain row's parent), *sub the chain row's index in subs or
 * -1; and the row showing a display key. */
int ui_graph_row_node(const ui_state *s, int r, int *sub);
const ui_gnode *ui_graph_row(const ui_state *s, int r);
/* The time cells of display row r: "12.3" / "4.5%" for a timed step, "fused" / "" for a node run
 * inside another's step, "view" / "" for a layout-only node, "..." while measuring, "-" without;
 * "~12.3" when the figure is for other choices than the current ones. While a plan applies and is
 * measured, a row shows the plan-applied model's time (a factorized node: its chain's sum). */
void ui_graph_time_text(const ui_state *s, int r, char *us, size_t us_len, char *pct, size_t pct_len);
/* "was 412: svd 12 (chain 180 us)" for a factorized node's row while its chain is timed (the
 * original's time first), else "". */
void ui_graph_chain_time(const ui_state *s, int r, char *buf, size_t len);
/* A time in microseconds as the column shows it: three significant figures, down to 0.01. */
const char *ui_us_text(double t, char *buf, size_t len);
/* Images the time column is measured on: about 2e10 MACs of work in all (a second or two on one
 * thread), at least 16 and at most 512, and no more than the set has. */
int ui_time_images(int64_t macs_per_image, int available);
/* The line under the table: what the time column measures, its progress, or why it is empty. */
void ui_graph_time_note(const ui_state *s, char *buf, size_t len);

/* The model browser (browser.c): list the zoo, the shipped net, the recently opened files (missing
 * ones marked) and the .onnx files of dir (reads files: the caller runs it on UI_BROWSE), and its
 * keys while open (UI_OPEN: open the selected in the background, `opening` set; Esc, q or o while
 * opening: UI_OPEN_CANCEL, the browser stays; UI_COMPARE: compare with it; `d` types a directory,
 * then UI_BROWSE lists it). ui_browser_open_failed ends an opening with its reason (one line in
 * the browser and on the status line; RS_CANCELLED: "cancelled"). */
void ui_browser_scan(ui_state *s, const char *dir);
unsigned ui_browser_key(ui_state *s, int key);
void ui_browser_open_failed(ui_state *s, int rc, const char *why);
/* The browser's bottom line: the opening under way with its spinner, progress and step (returns
 * 1), else why the last opening failed or the selected file does not load (2), else nothing (0). */
int ui_browser_status(const ui_state *s, char *buf, size_t len);
/* The browser's rows as drawn for s->lines: the screen row of the first item, how many items
 * show, and the first one shown (the selection kept in view). */
#define UI_BROWSE_Y 5
int ui_browser_rows(const ui_state *s);
int ui_browser_first(const ui_state *s);
/* Recent files: where they are kept ($XDG_STATE_HOME/rankscope/recent, else
 * ~/.local/state/rankscope/recent; -1 when neither is known), read (a missing file is an empty
 * list), a path moved to the front (acc < 0 keeps a known accuracy; the oldest dropped past
 * UI_RECENT_MAX), and written atomically (the directory created). */
int ui_recent_file(char *out, size_t len);
void ui_recent_load(const char *file, ui_recent *r);
void ui_recent_push(ui_recent *r, const char *path, double acc);
int ui_recent_save(const char *file, const ui_recent *r, rs_err *e);
/* The test accuracy known for the model at path without evaluating it: the zoo catalogue's, else
 * the one measured on the full test set when it was last opened (recent files); from names
 * which ("zoo", "last opened"). Returns -1 when neither knows it. Reads files. */
double ui_known_accuracy(const char *path, char *from, size_t from_len);

/* The comparison (compare.c): rows from models a (the explorer's) and b, totals; b_acc unknown.
 * Replaces a previous comparison. Then its keys while it is shown, and the rows visible. */
int ui_compare_build(ui_state *s, const rs_model *a, const rs_model *b, const char *b_name, rs_err *e);
void ui_compare_free(ui_state *s);
unsigned ui_compare_key(ui_state *s, int key);
int ui_compare_rows(const ui_state *s);
#define UI_COMPARE_Y 5 /* screen row of its first layer row */

/* The name the layer table shows for l: its short label, or its node name with full_names. */
const char *ui_layer_label(const ui_state *s, const ui_layer *l);

/* The view (view.c): recompute view.rows from the filter and sort (sel moves to the first listed
 * layer when the filter hides it); the layer at table position pos; the position of layer k (-1
 * hidden); the layer delta positions from the selected one (clamped to the list). */
void ui_view_update(ui_state *s);
int ui_view_count(const ui_state *s);
int ui_view_layer(const ui_state *s, int pos);
int ui_view_pos(const ui_state *s, int k);
int ui_view_step(const ui_state *s, int delta);
/* The sort's name ("graph order", "params", "MACs", "error", "sensitivity") and the value a layer
 * is sorted by into *v (returns 0 when unknown: listed last, in graph order): error is the relative weight error of the current
 * choice, sensitivity the accuracy drop of the layer factorized alone at its current choice (the
 * estimate until the whole set's figure replaces it); both only once measured for that choice. */
const char *ui_sort_name(int sort);
int ui_sort_value(const ui_layer *l, int sort, double *v);
/* The sensitivity cell: "-" unfactorized, "..." not measured for the current choice, "~1.2" an
 * estimate, "1.2" on the whole set (points; a gain shows as a negative drop). */
const char *ui_sens_text(const ui_layer *l, char *buf, size_t len);
/* `/` and `s` on the Layers screen, and the keys while the filter is being typed. */
unsigned ui_view_key(ui_state *s, int key);
/* Layer k's name as the table shows it in width cells: the end of the name ("…" + tail), or, when
 * that would read the same as another layer's, a window on where the two differ, so no two rows
 * ever read the same. buf needs 4 * width + 8 bytes. */
const char *ui_fit_label(const ui_state *s, int k, int width, char *buf, size_t len);
/* "layer1.0.conv1_f0" -> "l1.0.conv1_f0" in 16 cells: the leading letters of the path's parts,
 * leftmost first, cut to their first one until the name fits; the last part (the layer's own
 * name) and every index stay whole. Returns 1 when the result fits width (ASCII names). */
int ui_abbrev_name(const char *name, int width, char *buf, size_t len);

/* Layer table geometry for s->cols × s->lines (also used by ui_mouse). Keeps sel visible. */
void ui_table_layout_of(const ui_state *s, ui_table_layout *t);
void ui_fix_scroll(ui_state *s);
int ui_too_small(const ui_state *s);
/* The notice shown instead (centred, the ones that fit of 3): the longest spellings that fit
 * s->cols ("need 80x24, have 20x5" -> "20x5, need 80x24" -> "need 80x24"). Returns how many. */
int ui_too_small_lines(const ui_state *s, char lines[3][64]);

/* The method a layer gets when a rank key is pressed while it is unfactorized. */
decomp_method ui_preferred_method(const ui_layer *l);
/* Rank shown for a choice: rank, or "rank,rank2" for tucker2. */
int ui_effective_rank2(const ui_layer *l);

/* Pareto front of points (maximise ratio and acc): on_front[i] = 1 for non-dominated points.
 * Returns how many. */
int ui_pareto(const ui_point *p, int n, int *on_front);

/* Record an evaluated configuration in the history (oldest dropped when full). */
void ui_history_add(ui_state *s, double ratio, double macs_ratio, double acc, const char *label);

/* The parameter reductions of the trade-off curve (UI_CURVE_N values, ascending). */
extern const double ui_curve_reductions[UI_CURVE_N];

/* The frame (frame.c), as drawn and as clicked: the tab labels of row 1 (x, width and text of
 * each; returns the column after the last), the tab under column x (-1 none), the footer's key
 * hints for the screen, the footer line as drawn from column 1 at s->cols, and the key of the
 * hint under column x (0 none). */
int ui_tabs_layout(const ui_state *s, int x[SCR_COUNT], int w[SCR_COUNT], char text[SCR_COUNT][32]);
/* What the current figures are compared with: while cur is a first estimate, the original on the
 * same images (once measured), else the original on the whole set. */
const eval_result *ui_orig_for_cur(const ui_state *s);
int ui_tab_at(const ui_state *s, int x);
const char *ui_footer_keys(const ui_state *s);
void ui_footer_line(const ui_state *s, char *out, size_t len);
int ui_footer_key_at(const ui_state *s, int x);

/* The title bar's two parts for s->cols, mark_cells kept free for the evaluation mark between
 * them: the right one (accuracy and params) as complete as leaves the model's name at least 16
 * cells (or its whole name without ".onnx"), the left one (program, model, data set) as complete
 * as fits, the model's name never cut without an ellipsis. */
void ui_title_parts(const ui_state *s, int mark_cells, char *left, size_t left_len, char *right, size_t right_len);

/* Screen names, "Layers" ... "Example". */
const char *ui_screen_name(int screen);

/* One screen: its name, its keys (the global keys are handled before), the help lines listing
 * those keys, and the key summary of the footer. The drawing side (app.c) pairs each with its
 * draw function by the same index. */
typedef struct ui_screen_def {
    const char *name;
    unsigned (*key)(ui_state *s, int key);
    const char *const *help;
    int n_help;
    const char *footer;
} ui_screen_def;
extern const ui_screen_def ui_screens[SCR_COUNT];

/* The help of the current screen (its keys, then the global ones) into out[0..max); returns how
 * many lines there are (may exceed max). */
int ui_help_lines(const ui_state *s, const char **out, int max);
/* Help lines visible at once for s->lines (the help box's height inside its border). */
int ui_help_rows(const ui_state *s);
/* The Trade-offs curve's status and the fine-tuning's (status.c) in at most max lines of width
 * cells: the long form, else the short one, else wrapped at spaces (the last line cut with an
 * ellipsis only when even max lines cannot hold it). Returns the lines used (0 when max < 1). */
#define UI_STATUS_LINE 1024
int ui_curve_status(const ui_state *s, int width, char (*out)[UI_STATUS_LINE], int max);
int ui_ft_status(const ui_state *s, int width, char (*out)[UI_STATUS_LINE], int max);
/* The Search result: its accuracy and size on out[0] (every figure kept, said shorter when
 * narrow), then the plan on up to two lines, else how many layers it factorizes. */
int ui_search_summary(const ui_state *s, int width, char (*out)[UI_STATUS_LINE], int max);
/* The selected layer's chain (Layers screen) drawn as "as " and its steps joined by 3-cell
 * separators, each step's cost under it: the costs into cost[0..n_steps), each column's width
 * into colw; "P p, M MACs" under every step when that fits width cells, else MACs named under the
 * first only. Returns the cells the chain takes. */
#define UI_CHAIN_COST 48
int ui_chain_costs(const ui_layer *l, int width, char (*cost)[UI_CHAIN_COST], int *colw);

/* The help box for s->cols: its width (as wide as the longest line, within the screen) and the
 * help lines wrapped to fit inside it (a key's description continues under its column), into
 * out[0..max); returns how many there are (may exceed max). The help scrolls over these. */
#define UI_HELP_LINE 128
int ui_help_box_width(const ui_state *s);
int ui_help_wrapped(const ui_state *s, char (*out)[UI_HELP_LINE], int max);

#endif
