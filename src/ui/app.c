/* app.c — the explorer's main loop: arguments, model and data, terminal setup and restore,
 * signals, resize, input decoding (keys and mouse), the background worker, and saving. */
#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <libgen.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "fmt.h"
#include "live.h"
#include "rankscope/cifar10.h"
#include "rankscope/explorer.h"
#include "rankscope/fileio.h"
#include "rankscope/pipeline.h"
#include "rankscope/guard.h"
#include "rankscope/onnx.h"
#include "rankscope/plan.h"
#include "screens.h"
#include "searchrun.h"
#include "state.h"
#include "widgets.h"

/* exit codes, as the subcommands use them */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* ---- terminal restore on every exit path -------------------------------------------------- */

static volatile sig_atomic_t g_signal;
static int g_curses_on;

static void mouse_motion(int on)
{
    /* xterm button-event tracking (1002): motion reports while a button is held, for dragging */
    fputs(on ? "\033[?1002h" : "\033[?1002l", stdout);
    fflush(stdout);
}

static void restore_terminal(void)
{
    if (g_curses_on && !isendwin()) {
        mouse_motion(0);
        endwin();
    }
    g_curses_on = 0;
}

static void on_signal(int sig)
{
    g_signal = sig;
}

/* The tty modes before curses took over, for the crash path below. */
static struct termios g_saved_tty;
static int g_saved_tty_ok;

/* A crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) cannot run endwin() (not async-signal-safe),
 * but must not leave the terminal raw either (tests/e2e_signals.sh checks it): restore the saved
 * tty modes and reset mouse reporting, keypad mode, cursor and alternate screen with
 * async-signal-safe calls only, then die of the same signal (SA_RESETHAND restored the default
 * action, so the exit status and any core dump are the crash's own). */
static void on_fatal(int sig)
{
    static const char reset[] = "\033[?1000l\033[?1002l\033[?1006l\033[?1l\033>\033[?25h\033[?1049l\r\n";
    if (g_saved_tty_ok)
        tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_tty);
    ssize_t w = write(STDOUT_FILENO, reset, sizeof reset - 1);
    (void)w;
    raise(sig);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    g_saved_tty_ok = tcgetattr(STDIN_FILENO, &g_saved_tty) == 0;
    struct sigaction fa;
    memset(&fa, 0, sizeof fa);
    fa.sa_handler = on_fatal;
    fa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&fa.sa_mask);
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; ++i)
        sigaction(fatal[i], &fa, NULL);
}

/* ---- arguments ------------------------------------------------------------------------------- */

typedef struct ui_args {
    const char *model, *data, *plan, *out, *compare;
    int no_color;
} ui_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope [MODEL.onnx] [--compare B.onnx] [--data DIR] [--plan FILE] [--out PREFIX] [--no-color]\n"
            "Opens the explorer on MODEL (default: the shipped assets/lenet-cifar10.onnx) with the\n"
            "CIFAR-10 test set (--data DIR, $RANKSCOPE_DATA, ~/.cache/rankscope/cifar-10-batches-bin,\n"
            "else the shipped test sample). --plan FILE restores saved ranks (and `w` saves back to it);\n"
            "`w` writes PREFIX.plan and PREFIX.onnx (default: ./<model>-lowrank). --compare B.onnx opens\n"
            "with MODEL and B side by side (per-layer params and MACs, both accuracies). NO_COLOR is honoured.\n");
}

static int parse_args(int argc, char **argv, ui_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; ++i) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(s, "--no-color") || !strcmp(s, "--no-colour")) {
            a->no_color = 1;
        } else if (!strcmp(s, "--data") || !strcmp(s, "--plan") || !strcmp(s, "--out") || !strcmp(s, "-o") ||
                   !strcmp(s, "--compare")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rankscope: %s needs a value\n", s);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(s, "--data"))
                a->data = v;
            else if (!strcmp(s, "--plan"))
                a->plan = v;
            else if (!strcmp(s, "--compare"))
                a->compare = v;
            else
                a->out = v;
        } else if (s[0] == '-') {
            fprintf(stderr, "rankscope: unknown option %s (rankscope --help)\n", s);
            return 2;
        } else if (!a->model) {
            a->model = s;
        } else {
            fprintf(stderr, "rankscope: more than one model given (%s, %s)\n", a->model, s);
            return 2;
        }
    }
    return 0;
}

/* ---- saving ---------------------------------------------------------------------------------- */

typedef struct app {
    ui_args args;
    const char *model_path;
    rs_model *m;
    cifar10_set *data;
    ui_state *s;
    live *lv;
    ui_search *sr;
    cifar10_set *val; /* the search set, loaded on the first search */
    ui_curve *curve;     /* trade-off curve worker (screen 4, `c`) */
    ui_ft *ft;           /* fine-tuning worker (screen 5, `F`) */
    cifar10_set *train;  /* the training split, loaded on the first fine-tuning */
    float *calib;        /* `f`: calibration images for fitting to outputs (the first of train) */
    int n_calib;
    char ft_path[1024];
    ui_spec spec;
    ui_specjob *specjob;  /* a big layer's spectrum being computed (spec pending meanwhile) */
    char plan_path[1024], onnx_path[1024];
    char opened[1024]; /* the model opened from the browser (model_path points here then) */
    char prefix[500]; /* chosen by save-as: where `w` writes from then on */
    rs_model *cmp_model;  /* the compared model B and its evaluation */
    ui_evaljob *cmp_eval;
    int recent_acc_done;  /* the original's accuracy went into the recent list */
    ui_openjob *opener;   /* the browser's model being opened */
    ui_openjob *dropped;  /* a cancelled opening, stopped once its thread has ended */
    ui_evbmfjob *evbmf;   /* the first model's EVBMF ranks, found after the screen is up */
    ui_timejob *timer;    /* the graph view's time column, measured once the screen is first shown */
    ui_timejob *ptimer;   /* the same for the plan-applied model, once the original's is in */
    double spun;          /* when the opening spinner last moved */
} app;

static void save_paths(app *A)
{
    char stem[512];
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", A->model_path);
    char *base = basename(tmp);
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && !strcmp(dot, ".onnx"))
        *dot = 0;
    const char *out = A->prefix[0] ? A->prefix : A->args.out;
    if (out) {
        snprintf(A->plan_path, sizeof A->plan_path, "%.1000s.plan", out);
        snprintf(A->onnx_path, sizeof A->onnx_path, "%.1000s.onnx", out);
        snprintf(A->ft_path, sizeof A->ft_path, "%.1000s-finetuned.onnx", out);
        snprintf(A->s->save_prefix, sizeof A->s->save_prefix, "%.500s", out);
    } else {
        snprintf(A->plan_path, sizeof A->plan_path, "%s-lowrank.plan", stem);
        snprintf(A->onnx_path, sizeof A->onnx_path, "%s-lowrank.onnx", stem);
        snprintf(A->ft_path, sizeof A->ft_path, "%s-finetuned.onnx", stem);
        snprintf(A->s->save_prefix, sizeof A->s->save_prefix, "%.490s-lowrank", stem);
    }
    if (A->args.plan && !A->prefix[0])
        snprintf(A->plan_path, sizeof A->plan_path, "%s", A->args.plan);
}

/* Any spelling, hard links included (fileio_same_file). */
static int same_file(const char *a, const char *b)
{
    return fileio_same_file(a, b);
}

/* The plan and the factorized ONNX to plan_path and onnx_path as one atomic pair (both new or
 * both as before). Returns 0, or -1 with the reason in *why. */
static int write_pair(app *A, const char *plan_path, const char *onnx_path, char *why, size_t why_len)
{
    ui_state *s = A->s;
    rs_err e = {{0}};
    if (same_file(onnx_path, A->model_path) || same_file(plan_path, A->model_path) ||
        (A->args.plan && same_file(onnx_path, A->args.plan))) {
        snprintf(why, why_len, "refusing to overwrite the input %s (choose another name: W)",
                 same_file(onnx_path, A->model_path) || same_file(plan_path, A->model_path) ? "model" : "plan");
        return -1;
    }
    rs_plan *p = plan_alloc();
    rs_model *fm = NULL;
    char *text = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = p ? ui_state_plan(s, p, &e) : rs_fail(&e, "out of memory");
    if (rc == 0)
        rc = plan_format(p, &text, &e);
    if (rc == 0) {
        fm = model_clone(A->m);
        rc = fm ? plan_apply(fm, p, NULL, NULL, &e) : rs_fail(&e, "out of memory");
    }
    if (rc == 0)
        rc = onnx_save_buffer(fm, &buf, &len, &e);
    if (rc == 0)
        rc = fileio_write_atomic_pair(plan_path, text, strlen(text), onnx_path, buf, len, &e);
    if (rc == 0) {
        ui_state_mark_saved(s);
        snprintf(s->msg, sizeof s->msg, "saved %.280s and %.280s", plan_path, onnx_path);
    } else {
        snprintf(why, why_len, "save failed: %.400s", e.msg);
    }
    free(text);
    free(buf);
    model_free(fm);
    plan_free(p);
    return rc;
}

static void do_save(app *A)
{
    write_pair(A, A->plan_path, A->onnx_path, A->s->msg, sizeof A->s->msg);
}

/* Save as the prefix typed in s->saveas: "x" or "x.onnx" / "x.plan" write x.plan and x.onnx;
 * an existing file is replaced only after the question said yes; `w` saves there from then on. */
static void do_save_as(app *A)
{
    ui_state *s = A->s;
    ui_saveas *a = &s->saveas;
    char prefix[500], plan_path[520], onnx_path[520];
    snprintf(prefix, sizeof prefix, "%.490s", a->buf);
    size_t n = strlen(prefix);
    if (n > 5 && (!strcmp(prefix + n - 5, ".onnx") || !strcmp(prefix + n - 5, ".plan")))
        prefix[n - 5] = 0;
    snprintf(plan_path, sizeof plan_path, "%s.plan", prefix);
    snprintf(onnx_path, sizeof onnx_path, "%s.onnx", prefix);
    if (!a->overwrite) {
        const char *exists = access(onnx_path, F_OK) == 0 ? onnx_path : access(plan_path, F_OK) == 0 ? plan_path : NULL;
        if (exists && !same_file(exists, A->model_path) && !(A->args.plan && same_file(exists, A->args.plan))) {
            a->asking = 1;
            snprintf(a->exists, sizeof a->exists, "%.500s", exists);
            return;
        }
    }
    /* on failure the prompt stays open on the path, saying why */
    if (write_pair(A, plan_path, onnx_path, a->note, sizeof a->note) != 0)
        return;
    a->active = 0;
    snprintf(A->prefix, sizeof A->prefix, "%s", prefix);
    save_paths(A);
}

/* ---- drawing --------------------------------------------------------------------------------- */

/* Indexed like ui_screens (state.c). */
static const scr_draw_fn screen_draw[] = {scr_layers, scr_spectrum, scr_accuracy, scr_tradeoffs, scr_search,
                                          scr_example, scr_graph};
_Static_assert(sizeof screen_draw / sizeof screen_draw[0] == SCR_COUNT, "one draw function per screen");

void scr_help(const ui_state *s)
{
    static char lines[192][UI_HELP_LINE];
    int n = ui_help_wrapped(s, lines, 192);
    if (n > 192)
        n = 192;
    int rows = ui_help_rows(s), first = s->help_scroll;
    if (rows > n)
        rows = n;
    int w = ui_help_box_width(s), h = rows + 3;
    int y0 = (LINES - h) / 2, x0 = (COLS - w) / 2;
    for (int r = 0; r < h; ++r)
        w_fill(y0 + r, x0, w, R_SEL);
    for (int i = 0; i < rows && first + i < n; ++i)
        w_put(y0 + 1 + i, x0 + 2, R_SEL, w - 4, lines[first + i]);
    char foot[96];
    if (n > rows)
        snprintf(foot, sizeof foot, "any key closes this help; up/down PgUp/PgDn scroll (%d-%d of %d)", first + 1,
                 first + rows, n);
    else
        snprintf(foot, sizeof foot, "any key closes this help");
    w_put(y0 + h - 1, x0 + 2, R_SEL, w - 4, foot);
}

void scr_too_small(const ui_state *s)
{
    /* each centred, cut with an ellipsis only when even the shortest spelling does not fit */
    char lines[3][64], cut[4 * 64 + 4];
    int n = ui_too_small_lines(s, lines), y0 = (s->lines - n) / 2;
    for (int i = 0; i < n; ++i) {
        fmt_cut(lines[i], s->cols, s->utf8, cut, sizeof cut);
        int x = (s->cols - w_width(cut)) / 2;
        mvaddstr(y0 + i, x < 0 ? 0 : x, cut);
    }
}

static void draw(app *A)
{
    ui_state *s = A->s;
    erase();
    s->cols = COLS;
    s->lines = LINES;
    if (ui_too_small(s)) {
        scr_too_small(s);
        refresh();
        return;
    }
    ui_fix_scroll(s);
    if (s->screen == SCR_LAYERS || s->screen == SCR_SPECTRUM)
        ui_spec_update(&A->spec, &A->specjob, s, A->m);
    screen_draw[s->screen](s, &A->spec);
    w_frame(s);
    if (s->cmp.active)
        scr_compare(s);
    if (s->browse.active)
        scr_browser(s);
    if (s->help)
        scr_help(s);
    refresh();
}

/* ---- input ------------------------------------------------------------------------------------ */

static unsigned handle_input(app *A, int ch)
{
    ui_state *s = A->s;
    switch (ch) {
    case KEY_LEFT: return ui_key(s, UI_K_LEFT);
    case KEY_RIGHT: return ui_key(s, UI_K_RIGHT);
    case KEY_UP: return ui_key(s, UI_K_UP);
    case KEY_DOWN: return ui_key(s, UI_K_DOWN);
    case KEY_PPAGE: return ui_key(s, UI_K_PGUP);
    case KEY_NPAGE: return ui_key(s, UI_K_PGDN);
    /* Find and Select: where VT220-style entries (xterm-mono, vt220) put ESC [1~ and ESC [4~,
     * the sequences Home and End send; A1 / C1 / A3 / C3: the keypad's corners */
    case KEY_HOME:
    case KEY_FIND:
    case KEY_A1: return ui_key(s, UI_K_HOME);
    case KEY_END:
    case KEY_SELECT:
    case KEY_C1: return ui_key(s, UI_K_END);
    case KEY_A3: return ui_key(s, UI_K_PGUP);
    case KEY_C3: return ui_key(s, UI_K_PGDN);
    case KEY_BTAB: return ui_key(s, UI_K_BTAB);
    case KEY_BACKSPACE: return ui_key(s, UI_K_BACKSPACE);
    case KEY_ENTER: return ui_key(s, UI_K_ENTER);
    case '\r': return ui_key(s, UI_K_ENTER);
    case KEY_RESIZE:
        s->cols = COLS;
        s->lines = LINES;
        return ui_key(s, UI_K_RESIZE);
    case 27: { /* Esc, or a sequence the terminfo entry does not know: read it whole */
        char seq[16];
        int n = 0, c;
        timeout(0);
        if ((c = getch()) == '[' || c == 'O') {
            seq[n++] = (char)c;
            /* up to the final byte (0x40-0x7e) after parameters and intermediates */
            while (n < (int)sizeof seq - 1 && (c = getch()) != ERR) {
                seq[n++] = (char)c;
                if (c >= 0x40 && c <= 0x7e && (n > 1 || seq[0] == 'O'))
                    break;
            }
            seq[n] = 0;
            timeout(50);
            if (!strcmp(seq, "[M")) /* an X10 mouse report: three more bytes */
                for (int i = 0; i < 3; ++i)
                    getch();
            int k = ui_escape_key(seq);
            return k ? ui_key(s, k) : 0;
        }
        if (c != ERR)
            ungetch(c);
        timeout(50);
        return ui_key(s, UI_K_ESC);
    }
    case KEY_MOUSE: {
        MEVENT ev;
        if (getmouse(&ev) != OK)
            return 0;
        int kind = 0;
        if (ev.bstate & BUTTON1_PRESSED)
            kind = UI_M_PRESS;
        else if (ev.bstate & BUTTON1_RELEASED)
            kind = UI_M_RELEASE;
        else if (ev.bstate & BUTTON1_CLICKED) {
            ui_mouse(s, ev.x, ev.y, UI_M_PRESS);
            kind = UI_M_RELEASE;
        } else if (ev.bstate & BUTTON4_PRESSED)
            kind = UI_M_WHEEL_UP;
#ifdef BUTTON5_PRESSED
        else if (ev.bstate & BUTTON5_PRESSED)
            kind = UI_M_WHEEL_DOWN;
#endif
        else if (ev.bstate & REPORT_MOUSE_POSITION)
            kind = UI_M_DRAG;
        if (!kind)
            return 0;
        return ui_mouse(s, ev.x, ev.y, kind);
    }
    default:
        if (ch >= 0 && ch < 256)
            return ui_key(s, ch);
        return 0;
    }
}

/* With `f` on: the calibration images the factors are fitted to (pipe_fit_calibration: the first
 * training images, as `--fit outputs` takes them), loaded once. 0, or -1 with e. */
static int fit_calibration(app *A, const float **calib, int *n, rs_err *e)
{
    *calib = NULL;
    *n = 0;
    if (!A->s->search.fit_outputs)
        return 0;
    if (!A->calib) {
        if (!A->train && !(A->train = cifar10_load_split(A->args.data, "train", NULL, e)))
            return rs_failctx(e, "fitting to outputs needs the training images for calibration");
        if (!(A->calib = pipe_fit_calibration(A->train, 0, &A->n_calib, e)))
            return -1;
    }
    *calib = A->calib;
    *n = A->n_calib;
    return 0;
}

/* `F`: fine-tune the slider plan on the training split (validation per epoch, then the
 * explorer's set). */
static void start_finetune(app *A)
{
    ui_state *s = A->s;
    rs_err e = {{0}};
    ui_ft_stop(A->ft);
    A->ft = NULL;
    if (!A->val)
        A->val = cifar10_load_split(A->args.data, "val", NULL, &e);
    if (A->val && !A->train)
        A->train = cifar10_load_split(A->args.data, "train", NULL, &e);
    rs_plan *p = A->train ? plan_alloc() : NULL;
    int rc = A->train ? (p ? ui_state_plan(s, p, &e) : rs_fail(&e, "out of memory")) : -1;
    const float *calib = NULL;
    int n_calib = 0;
    if (rc == 0)
        rc = fit_calibration(A, &calib, &n_calib, &e);
    if (rc == 0)
        A->ft = ui_ft_start(A->m, p, A->train, A->val, A->data, s->ft.epochs, calib, n_calib, &e);
    plan_free(p);
    if (!A->ft) {
        s->ft.running = 0;
        snprintf(s->ft.msg, sizeof s->ft.msg, "fine-tuning failed: %.400s", e.msg);
    }
}

/* The model opened goes to the front of the recent files (acc >= 0: its accuracy on the full test
 * set). Best effort: a read-only home only loses the list. */
static void recent_note(const char *path, double acc)
{
    char file[1100], real[PATH_MAX];
    ui_recent *r = malloc(sizeof *r);
    if (!r || ui_recent_file(file, sizeof file) != 0 || !realpath(path, real)) {
        free(r);
        return;
    }
    ui_recent_load(file, r);
    ui_recent_push(r, real, acc);
    rs_err e;
    ui_recent_save(file, r, &e);
    free(r);
}

static void compare_stop(app *A)
{
    ui_evaljob_stop(A->cmp_eval);
    A->cmp_eval = NULL;
    model_free(A->cmp_model);
    A->cmp_model = NULL;
}

/* Compare the open model with the one at path: per-layer rows now, B's accuracy in the background. */
static int compare_with(app *A, const char *path, rs_err *e)
{
    ui_state *s = A->s;
    rs_model *b = onnx_load(path, e);
    if (b && guard_model_finite(b, e) != 0) {
        model_free(b);
        b = NULL;
    }
    if (!b)
        return -1;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    if (ui_compare_build(s, A->m, b, basename(tmp), e) != 0) {
        model_free(b);
        return -1;
    }
    compare_stop(A);
    A->cmp_model = b;
    snprintf(s->cmp.b_path, sizeof s->cmp.b_path, "%s", path);
    s->cmp.a_known = ui_known_accuracy(A->model_path, s->cmp.a_known_from, sizeof s->cmp.a_known_from);
    s->cmp.b_known = ui_known_accuracy(path, s->cmp.b_known_from, sizeof s->cmp.b_known_from);
    s->cmp.msg[0] = 0;
    A->cmp_eval = ui_evaljob_start(b, A->data, e);
    s->cmp.b_running = A->cmp_eval != NULL;
    if (!A->cmp_eval)
        snprintf(s->cmp.msg, sizeof s->cmp.msg, "B cannot be evaluated: %.400s", e->msg);
    return 0;
}

/* The opening in progress is given up: its thread is asked to stop and joined once it has (an
 * older dropped one is joined now: it has had its time). */
static void open_drop(app *A)
{
    if (!A->opener)
        return;
    ui_openjob_cancel(A->opener);
    ui_openjob_stop(A->dropped);
    A->dropped = A->opener;
    A->opener = NULL;
}

/* UI_OPEN: the browser's selected model loads on a worker; the browser shows its progress. */
static void open_start(app *A)
{
    ui_state *s = A->s;
    rs_err e = {{0}};
    open_drop(A);
    A->opener = ui_openjob_start(s->browse.open_path, &e);
    A->spun = rs_now();
    if (!A->opener)
        ui_browser_open_failed(s, -1, e.msg);
}

/* The opened model replaces the current one: workers stopped, the new state takes the terminal,
 * data set and what is available from the old one, the evaluation restarts. */
static void open_install(app *A, rs_model *m, ui_state *ns)
{
    ui_state *s = A->s;
    ui_evbmfjob_drop(A->evbmf); /* its ranks were the old model's; the opening found the new ones */
    A->evbmf = NULL;
    ui_timejob_stop(A->timer); /* it times the old model; the new one is timed when screen 7 shows */
    A->timer = NULL;
    ui_timejob_stop(A->ptimer);
    A->ptimer = NULL;
    ui_ft_stop(A->ft);
    ui_curve_stop(A->curve);
    ui_search_stop(A->sr);
    live_stop(A->lv);
    compare_stop(A);
    A->recent_acc_done = 0;
    A->ft = NULL;
    A->curve = NULL;
    A->sr = NULL;
    ui_specjob_drop(A->specjob); /* it has its own copy of the old model */
    A->specjob = NULL;
    ui_spec_free(&A->spec);
    ns->utf8 = s->utf8;
    ns->color = s->color;
    ns->cols = s->cols;
    ns->lines = s->lines;
    snprintf(ns->data_name, sizeof ns->data_name, "%s", s->data_name);
    ns->search.available = s->search.available;
    snprintf(ns->search.set, sizeof ns->search.set, "%s", s->search.set);
    ns->ft.available = s->ft.available;
    snprintf(A->opened, sizeof A->opened, "%s", s->browse.open_path);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", A->opened);
    snprintf(ns->model_name, sizeof ns->model_name, "%s", basename(tmp));
    ui_state_free(s);
    free(s);
    model_free(A->m);
    A->m = m;
    A->s = ns;
    A->model_path = A->opened;
    save_paths(A);
    rs_err e = {{0}};
    A->lv = live_start(A->m, A->data, ns, &e);
    if (!A->lv)
        snprintf(ns->msg, sizeof ns->msg, "evaluation cannot start: %.400s", e.msg);
    else
        snprintf(ns->msg, sizeof ns->msg, "opened %.400s", ns->model_name);
    recent_note(A->model_path, -1);
}

/* The graph view's time column: the original model once the screen first shows, then the
 * plan-applied one whenever the plan differs from the one measured (a measurement of a plan no
 * longer current is cancelled; the next starts once its thread has ended, so the UI never waits).
 * Returns 1 to redraw. */
static int graph_timing(app *A)
{
    ui_state *s = A->s;
    int need = ui_graph_sync(s);
    rs_err te = {{0}};
    if (s->screen == SCR_GRAPH && s->graph.time_state == UI_TIME_NONE && !A->timer) {
        if (!(A->timer = ui_timejob_start(A->m, NULL, A->data, &te)))
            ui_graph_set_times(s, NULL, te.msg);
        else
            s->graph.time_state = UI_TIME_RUNNING;
        need = 1;
    }
    if (A->timer && ui_timejob_poll(A->timer, s))
        need = 1;
    if (A->ptimer) {
        if (ui_graph_plan_wanted(s))
            ui_timejob_cancel(A->ptimer);
        need |= ui_timejob_poll(A->ptimer, s);
        if (ui_timejob_done(A->ptimer)) {
            ui_timejob_stop(A->ptimer);
            A->ptimer = NULL;
        }
    }
    if (!A->ptimer && s->screen == SCR_GRAPH && ui_graph_plan_wanted(s)) {
        rs_plan *p = plan_alloc();
        int rc = p ? ui_state_plan(s, p, &te) : rs_fail(&te, "out of memory");
        if (rc == 0 && ui_graph_plan_started(s, &te) == 0 && !(A->ptimer = ui_timejob_start(A->m, p, A->data, &te)))
            rc = -1;
        if (rc != 0)
            ui_graph_set_plan_times(s, A->m, NULL, NULL, te.msg);
        plan_free(p);
        need = 1;
    }
    return need | ui_graph_sync(s);
}

/* Each turn of the loop: the opening's progress, its end, the spinner. Returns 1 to redraw. */
static int open_poll(app *A)
{
    if (A->dropped && ui_openjob_done(A->dropped)) {
        ui_openjob_stop(A->dropped);
        A->dropped = NULL;
    }
    if (!A->opener)
        return 0;
    ui_state *s = A->s;
    int news = ui_openjob_poll(A->opener, s);
    rs_model *m = NULL;
    ui_state *ns = NULL;
    rs_err e = {{0}};
    int rc = ui_openjob_result(A->opener, &m, &ns, &e);
    if (rc != 1) {
        ui_openjob_stop(A->opener);
        A->opener = NULL;
        if (rc == 0)
            open_install(A, m, ns);
        else
            ui_browser_open_failed(s, rc, e.msg);
        return 1;
    }
    double now = rs_now();
    if (now - A->spun >= 0.1) {
        A->spun = now;
        ++s->browse.spin;
        news = 1;
    }
    return news;
}

static void after_flags(app *A, unsigned f)
{
    if (f & UI_BROWSE)
        ui_browser_scan(A->s, ".");
    if (f & UI_COMPARE) {
        rs_err e = {{0}};
        const ui_browse_item *it = &A->s->browse.items[A->s->browse.sel];
        if (compare_with(A, it->path, &e) != 0)
            snprintf(A->s->msg, sizeof A->s->msg, "cannot compare with %.200s: %.300s", it->path, e.msg);
    }
    if (f & UI_OPEN_CANCEL)
        open_drop(A);
    if (f & UI_OPEN)
        open_start(A);
    ui_state *s = A->s;
    if ((f & UI_RECOMPUTE) && A->lv) {
        ui_state_costs(s, A->m);
        live_request(A->lv, s);
        if (s->screen == SCR_TRADEOFFS && s->sweep.layer != s->sel)
            f |= UI_SWEEP;
    }
    if ((f & UI_SWEEP) && A->lv)
        live_request_sweep(A->lv, s);
    if (f & UI_SAVE)
        do_save(A);
    if (f & UI_SAVE_AS)
        do_save_as(A);
    if (f & UI_SEARCH_START) {
        rs_err e = {{0}};
        if (!A->val) {
            A->val = cifar10_load_split(A->args.data, "val", NULL, &e);
            if (!A->val) {
                snprintf(s->search.msg, sizeof s->search.msg, "no validation split: %.400s", e.msg);
                return;
            }
        }
        ui_search_stop(A->sr);
        s->search.n_trials = 0;
        s->search.trials_total = 0;
        s->search.have_result = 0;
        s->search.msg[0] = 0;
        s->search.progress = 0;
        const float *calib = NULL;
        int n_calib = 0;
        A->sr = fit_calibration(A, &calib, &n_calib, &e) == 0 ? ui_search_start(A->m, A->val, s, calib, n_calib, &e) : NULL;
        s->search.running = A->sr != NULL;
        if (!A->sr)
            snprintf(s->search.msg, sizeof s->search.msg, "search failed: %.400s", e.msg);
    }
    if (f & UI_SEARCH_STOP)
        ui_search_cancel(A->sr);
    if (f & UI_CURVE_START) {
        rs_err e = {{0}};
        ui_curve_stop(A->curve);
        A->curve = NULL;
        /* the tables come from the validation split when present, else the explorer's set */
        if (!A->val && s->search.available)
            A->val = cifar10_load_split(A->args.data, "val", NULL, &e);
        const cifar10_set *tables = A->val ? A->val : A->data;
        if (s->curve.finetune && A->val && !A->train)
            A->train = cifar10_load_split(A->args.data, "train", NULL, &e);
        const float *calib = NULL;
        int n_calib = 0;
        if (s->curve.finetune && (!A->val || !A->train))
            A->curve = NULL; /* e says which split is missing */
        else if (fit_calibration(A, &calib, &n_calib, &e) == 0)
            A->curve = ui_curve_start(A->m, tables, A->data, s->params_total, s->curve.finetune ? s->ft.epochs : 0,
                                      A->train, A->val, calib, n_calib, &e);
        if (!A->curve) {
            s->curve.running = 0;
            snprintf(s->curve.msg, sizeof s->curve.msg, "curve failed: %.400s", e.msg);
            s->curve.msg_short[0] = 0; /* the reason, cut, says more than "curve failed" */
        }
    }
    if (f & UI_FT_START)
        start_finetune(A);
    if (f & UI_FT_STOP)
        ui_ft_cancel(A->ft);
    if (f & UI_FT_SAVE) {
        rs_err e = {{0}};
        const rs_model *fm = ui_ft_model(A->ft);
        if (same_file(A->ft_path, A->model_path) || (A->args.plan && same_file(A->ft_path, A->args.plan)))
            snprintf(s->ft.msg, sizeof s->ft.msg, "refusing to overwrite the input %.400s (use --out PREFIX)",
                     A->ft_path);
        else if (fm && onnx_save(fm, A->ft_path, &e) == 0)
            snprintf(s->ft.msg, sizeof s->ft.msg, "saved the fine-tuned net to %.400s", A->ft_path);
        else
            snprintf(s->ft.msg, sizeof s->ft.msg, "save failed: %.400s", fm ? e.msg : "no fine-tuned net");
    }
}

/* ---- main ------------------------------------------------------------------------------------- */

static int run(app *A)
{
    ui_state *s = A->s;
    setlocale(LC_ALL, "");
    const char *cs = nl_langinfo(CODESET);
    s->utf8 = cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
    const char *nc = getenv("NO_COLOR");
    s->color = !A->args.no_color && !(nc && *nc);
    atexit(restore_terminal);
    install_signals();
    if (!newterm(NULL, stdout, stdin)) {
        fprintf(stderr, "rankscope: cannot open the terminal (TERM=%s)\n", getenv("TERM") ? getenv("TERM") : "");
        return EXIT_FAIL;
    }
    g_curses_on = 1;
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    timeout(50);
    w_colors_init(s->color);
    w_set_utf8(s->utf8);
    mousemask(BUTTON1_PRESSED | BUTTON1_RELEASED | BUTTON4_PRESSED |
#ifdef BUTTON5_PRESSED
                  BUTTON5_PRESSED |
#endif
                  REPORT_MOUSE_POSITION,
              NULL);
    mouseinterval(0);
    mouse_motion(1);
    s->cols = COLS;
    s->lines = LINES;

    double last_draw = 0;
    int need = 1;
    int rc = EXIT_OK;
    for (;;) {
        if (g_signal == SIGINT) { /* ^C asks as q does when something would be lost */
            g_signal = 0;
            unsigned g = ui_key(s, 3);
            after_flags(A, g);
            if (g & UI_QUIT) {
                rc = 128 + SIGINT;
                break;
            }
            need = 1;
        }
        if (g_signal) {
            rc = 128 + g_signal;
            break;
        }
        int ch = getch();
        unsigned f = 0;
        while (ch != ERR) {
            unsigned g = handle_input(A, ch);
            after_flags(A, g);
            f |= g;
            if (f & UI_QUIT)
                break;
            /* drain what is queued (a drag sends many events) before drawing once */
            timeout(0);
            ch = getch();
            timeout(50);
        }
        if (f & UI_QUIT)
            break;
        if (f & UI_REDRAW)
            need = 1;
        if (A->lv && live_poll(A->lv, s))
            need = 1;
        if (A->sr && ui_search_poll(A->sr, s))
            need = 1;
        if (A->curve && ui_curve_poll(A->curve, s))
            need = 1;
        if (A->ft && ui_ft_poll(A->ft, s))
            need = 1;
        if (A->cmp_eval && ui_evaljob_poll(A->cmp_eval, s))
            need = 1;
        if (A->evbmf && ui_evbmfjob_poll(A->evbmf, s))
            need = 1;
        if (graph_timing(A))
            need = 1;
        if (A->specjob && (s->screen == SCR_LAYERS || s->screen == SCR_SPECTRUM) && ui_specjob_done(A->specjob))
            need = 1; /* the draw installs it, or starts the spectrum now wanted */
        if (open_poll(A)) {
            need = 1;
            s = A->s; /* the opened model's state */
        }
        if (s->have_orig && !A->recent_acc_done) { /* measured on the full test set: worth keeping */
            A->recent_acc_done = 1;
            if (A->data->n == 10000 && !strstr(s->data_name, "sample"))
                recent_note(A->model_path, s->orig.accuracy);
        }
        double now = rs_now();
        if (need && now - last_draw >= 0.05) {
            draw(A);
            last_draw = now;
            need = 0;
        }
    }
    restore_terminal();
    if (rc != EXIT_OK)
        fprintf(stderr, "rankscope: interrupted\n");
    return rc;
}

/* The shipped model's path ("" when it cannot be found). */
static const char *shipped_model(void)
{
    static char path[1200];
    if (rs_find_asset(RS_SHIPPED_MODEL, path, sizeof path) != 0)
        path[0] = 0;
    return path;
}

int ui_main(int argc, char **argv)
{
    app A;
    memset(&A, 0, sizeof A);
    int pr = parse_args(argc, argv, &A.args);
    if (pr)
        return pr == 1 ? EXIT_OK : EXIT_USAGE;
    A.model_path = A.args.model ? A.args.model : shipped_model();
    if (!A.model_path || !*A.model_path) {
        fprintf(stderr, "rankscope: the shipped model assets/lenet-cifar10.onnx was not found "
                        "(set RANKSCOPE_ASSETS or name a model)\n");
        return EXIT_FAIL;
    }
    rs_err e = {{0}};
    A.m = onnx_load(A.model_path, &e);
    if (!A.m) {
        fprintf(stderr, "rankscope: %s\n", e.msg);
        return EXIT_FAIL;
    }
    if (guard_model_finite(A.m, &e) != 0) { /* every screen would show NaN; say why up front */
        fprintf(stderr, "rankscope: %s: %s; refusing to explore a model with non-finite weights\n",
                A.model_path, e.msg);
        model_free(A.m);
        return EXIT_FAIL;
    }
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "rankscope: the explorer needs a terminal (subcommands work without one: rankscope --help)\n");
        model_free(A.m);
        return EXIT_FAIL;
    }
    const char *term = getenv("TERM");
    if (!term || !*term || !strcmp(term, "dumb")) {
        fprintf(stderr, "rankscope: the explorer needs a terminal that can move the cursor (TERM=%s); "
                        "the subcommands work anywhere: rankscope --help\n", term ? term : "");
        model_free(A.m);
        return EXIT_FAIL;
    }
    int fell_back = 0;
    A.data = cifar10_load_split(A.args.data, "test", &fell_back, &e);
    if (!A.data) {
        fprintf(stderr, "rankscope: %s\n", e.msg);
        model_free(A.m);
        return EXIT_FAIL;
    }
    A.s = malloc(sizeof *A.s);
    if (!A.s) {
        fprintf(stderr, "rankscope: out of memory\n");
        model_free(A.m);
        cifar10_free(A.data);
        return EXIT_FAIL;
    }
    ui_state *s = A.s;
    ui_state_defaults(s);
    s->evbmf_defer = 1;
    int rc = ui_state_init(s, A.m, &e);
    if (rc == 0) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", A.model_path);
        snprintf(s->model_name, sizeof s->model_name, "%s", basename(tmp));
        char cnt[32];
        snprintf(s->data_name, sizeof s->data_name, "CIFAR-10 test%s %s", fell_back ? " sample" : "",
                 fmt_count_exact(A.data->n, cnt, sizeof cnt));
    }
    if (rc == 0 && A.args.plan) {
        rs_plan *p = plan_load(A.args.plan, &e);
        rc = p ? ui_state_apply_plan(s, A.m, p, &e) : -1;
        plan_free(p);
    }
    if (rc == 0) {
        save_paths(&A);
        A.lv = live_start(A.m, A.data, s, &e);
        if (!A.lv)
            rc = -1;
    }
    if (rc == 0 && !(A.evbmf = ui_evbmfjob_start(A.m, s, &e)))
        live_stop(A.lv), A.lv = NULL, rc = -1;
    if (rc != 0) {
        fprintf(stderr, "rankscope: %s\n", e.msg);
        ui_state_free(s);
        free(s);
        model_free(A.m);
        cifar10_free(A.data);
        return EXIT_FAIL;
    }
    for (int k = 0; k < s->n_layers; ++k)
        if (s->layers[k].cur.method != DECOMP_NONE) {
            live_request(A.lv, s); /* the plan given with --plan */
            break;
        }
    char found[1024];
    rs_err fe;
    s->search.available = cifar10_find_dir(A.args.data, found, sizeof found, &fe) == 0;
    snprintf(s->search.set, sizeof s->search.set, "the validation split (5,000 training images)");
    s->ft.available = s->search.available;
    recent_note(A.model_path, -1);
    if (A.args.compare && compare_with(&A, A.args.compare, &e) != 0) {
        fprintf(stderr, "rankscope: --compare %s: %s\n", A.args.compare, e.msg);
        ui_evbmfjob_drop(A.evbmf);
        live_stop(A.lv);
        ui_state_free(s);
        free(s);
        model_free(A.m);
        cifar10_free(A.data);
        return EXIT_FAIL;
    }
    int exit_code = run(&A);
    ui_evbmfjob_drop(A.evbmf);
    ui_timejob_stop(A.timer);
    ui_timejob_stop(A.ptimer);
    ui_openjob_stop(A.opener);
    ui_openjob_stop(A.dropped);
    compare_stop(&A);
    ui_ft_stop(A.ft);
    ui_curve_stop(A.curve);
    cifar10_free(A.train);
    ui_search_stop(A.sr);
    free(A.calib);
    cifar10_free(A.val);
    live_stop(A.lv);
    ui_specjob_drop(A.specjob); /* never waits for an SVD: the worker frees itself */
    ui_spec_free(&A.spec);
    ui_state_free(A.s); /* the browser may have replaced the state the run started with */
    free(A.s);
    model_free(A.m);
    cifar10_free(A.data);
    return exit_code;
}
