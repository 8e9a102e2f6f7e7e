/* test_ui_browse.c — the model browser and the comparison without a terminal: the recent-files
 * list (order, bound, accuracy kept, saved and read back, missing files marked), a typed
 * directory listed, `c` asking for a comparison, and the comparison's rows for an original and
 * its compressed version (factor chains summed, checked against B's own node table); opening a
 * model in the background: the browser's transitions while it runs (Esc cancels, ^C asks to
 * quit naming it) and the worker itself (a state as ui_state_init builds it, cancelled midway,
 * a broken file's reason). */
#include "check.h"

#include <grp.h>
#include <limits.h>
#include <sys/stat.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/ui/searchrun.h"
#include "../src/ui/state.h"
#include "rankscope/onnx.h"
#include "rankscope/plan.h"

static const char *root(void)
{
    const char *r = getenv("RS_SOURCE_ROOT");
    return r ? r : "..";
}

static void test_recent(const char *tmp)
{
    ui_recent *r = calloc(1, sizeof *r);
    char p[64];
    for (int i = 0; i < UI_RECENT_MAX + 3; ++i) {
        snprintf(p, sizeof p, "/m/%d.onnx", i);
        ui_recent_push(r, p, i == 2 ? 0.5 : -1);
    }
    CHECK(r->n == UI_RECENT_MAX && !strcmp(r->path[0], "/m/14.onnx") && !strcmp(r->path[UI_RECENT_MAX - 1], "/m/3.onnx"),
          "bounded at %d, newest first, oldest dropped (%s .. %s)", UI_RECENT_MAX, r->path[0], r->path[r->n - 1]);
    ui_recent_push(r, "/m/2.onnx", 0.5);
    ui_recent_push(r, "/m/5.onnx", -1);
    ui_recent_push(r, "/m/2.onnx", -1);
    CHECK(!strcmp(r->path[0], "/m/2.onnx") && r->acc[0] == 0.5 && !strcmp(r->path[1], "/m/5.onnx") && r->n == UI_RECENT_MAX,
          "reopened: moved to the front, listed once, its accuracy kept");
    int dup = 0;
    for (int i = 0; i < r->n; ++i)
        for (int j = i + 1; j < r->n; ++j)
            dup += !strcmp(r->path[i], r->path[j]);
    CHECK(!dup, "no path twice");
    char file[1024];
    snprintf(file, sizeof file, "%s/state/rankscope/recent", tmp);
    rs_err e = {{0}};
    CHECK(ui_recent_save(file, r, &e) == 0, "saved, the directories created: %s", e.msg);
    ui_recent *back = calloc(1, sizeof *back);
    ui_recent_load(file, back);
    CHECK(back->n == r->n && !memcmp(back->path, r->path, sizeof r->path) && back->acc[0] == 0.5 && back->acc[1] == -1,
          "read back as written (%d entries)", back->n);
    FILE *f = fopen(file, "a");
    if (f) {
        fputs("garbage line\n0.3\trelative/path.onnx\n", f);
        fclose(f);
    }
    ui_recent_load(file, back);
    CHECK(back->n == r->n, "lines that are not ours are skipped (%d)", back->n);
    ui_recent_load("/nonexistent/recent", back);
    CHECK(back->n == 0, "no file: an empty list");
    setenv("XDG_STATE_HOME", "relative", 1);
    setenv("HOME", "/home/x", 1);
    CHECK(ui_recent_file(file, sizeof file) == 0 && !strcmp(file, "/home/x/.local/state/rankscope/recent"),
          "a relative XDG_STATE_HOME is ignored: %s", file);
    free(r);
    free(back);
}

/* Lists LOCKED, a directory made with no permission bits, and copies the browser's reason into
 * WHY: here, or as root (who may read anything) in a child that first drops to uid/gid 65534
 * (nobody), reporting through a pipe. Returns 0 listed here, 1 listed by the child, 77 when root
 * could not be dropped, -1 on a failure of the test's own plumbing. */
static int scan_locked(ui_state *s, const char *tmp, const char *locked, char *why, size_t len)
{
    if (mkdir(locked, 0) != 0)
        return -1;
    int rc = -1;
    snprintf(s->browse.dir, sizeof s->browse.dir, "%s", locked);
    if (geteuid() != 0) {
        ui_browser_scan(s, ".");
        snprintf(why, len, "%s", s->browse.dir_err);
        rc = 0;
    } else {
        int fd[2];
        /* nobody must reach the directory: only its own missing bits may stop the listing */
        if (chmod(tmp, 0711) == 0 && pipe(fd) == 0) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                close(fd[0]);
                if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0 || geteuid() == 0)
                    _exit(77);
                ui_browser_scan(s, ".");
                ssize_t w = write(fd[1], s->browse.dir_err, strlen(s->browse.dir_err));
                _exit(w < 0 ? 1 : 0);
            }
            close(fd[1]);
            ssize_t got = 0, r;
            while (pid > 0 && got < (ssize_t)len - 1 && (r = read(fd[0], why + got, len - 1 - (size_t)got)) > 0)
                got += r;
            why[got > 0 ? got : 0] = 0;
            close(fd[0]);
            int st = 0;
            if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st))
                rc = WEXITSTATUS(st) == 77 ? 77 : WEXITSTATUS(st) == 0 ? 1 : -1;
        }
    }
    rmdir(locked);
    return rc;
}

static void test_browser(const char *tmp)
{
    char state[1024], file[1100], copy[1100];
    snprintf(state, sizeof state, "%s/st", tmp);
    setenv("XDG_STATE_HOME", state, 1);
    CHECK(ui_recent_file(file, sizeof file) == 0 && strstr(file, "/st/rankscope/recent"), "XDG_STATE_HOME: %s", file);
    /* a recent file that exists, one that is gone */
    snprintf(copy, sizeof copy, "%s/a copy.onnx", tmp);
    char src[1024];
    snprintf(src, sizeof src, "%s/tests/data/zoo/mobilenet.onnx", root());
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, copy);
    CHECK(system(cmd) == 0, "copied mobilenet");
    ui_recent *r = calloc(1, sizeof *r);
    char gone[1100];
    snprintf(gone, sizeof gone, "%s/gone.onnx", tmp);
    char twin1[1100], twin2[1100];
    snprintf(twin1, sizeof twin1, "%s/x/zoo/m.onnx", tmp);
    snprintf(twin2, sizeof twin2, "%s/y/zoo/m.onnx", tmp);
    ui_recent_push(r, twin1, -1);
    ui_recent_push(r, twin2, -1);
    ui_recent_push(r, gone, -1);
    ui_recent_push(r, copy, 0.625);
    /* a zoo model opened on the sample set: no accuracy recorded, the catalogue's is shown */
    char zoo_rn[4096];
    int have_zoo = rs_find_asset("zoo/resnet20.onnx", zoo_rn, sizeof zoo_rn) == 0;
    if (have_zoo)
        ui_recent_push(r, zoo_rn, -1);
    /* another file named like a zoo model (the test suite's smaller zoo/resnet20.onnx) */
    char lookalike[1100];
    snprintf(lookalike, sizeof lookalike, "%s/tests/data/zoo/resnet20.onnx", root());
    char lookalike_real[PATH_MAX];
    if (!realpath(lookalike, lookalike_real))
        snprintf(lookalike_real, sizeof lookalike_real, "%s", lookalike);
    ui_recent_push(r, lookalike_real, -1);
    rs_err e = {{0}};
    CHECK(ui_recent_save(file, r, &e) == 0, "recent list written: %s", e.msg);
    free(r);
    ui_state *s = calloc(1, sizeof *s);
    ui_state_defaults(s);
    unsigned f = ui_key(s, 'o');
    CHECK(s->browse.active && (f & UI_BROWSE), "o opens the browser");
    /* its footer keeps the way to help and out, and they work there */
    int cols0 = s->cols;
    s->cols = 80;
    char foot[512];
    ui_footer_line(s, foot, sizeof foot);
    CHECK(strstr(foot, "Esc close") && strlen(foot) <= 78 && !strcmp(foot + strlen(foot) - 14, "? help  q quit"),
          "80 columns: the browser's footer ends in ? help  q quit (%s)", foot);
    ui_key(s, '?');
    const char *hl[64];
    int nh = ui_help_lines(s, hl, 64), lists_c = 0;
    for (int i = 0; i < nh && i < 64; ++i)
        lists_c |= !strncmp(hl[i], "c ", 2) && strstr(hl[i], "compare") != NULL;
    CHECK(s->help && nh > 0 && !strcmp(hl[0], "Model browser") && lists_c, "? in the browser: its own keys (%s)",
          nh > 0 ? hl[0] : "-");
    ui_key(s, 'x');
    CHECK(!s->help && s->browse.active, "any key closes the help, the browser stays");
    f = ui_key(s, 'q');
    CHECK((f & UI_QUIT), "q quits from the browser (nothing unsaved)");
    s->cols = cols0;
    ui_browser_scan(s, ".");
    int have_copy = -1, have_gone = -1;
    for (int i = 0; i < s->browse.n; ++i) {
        if (!strncmp(s->browse.items[i].name, "recent: rs-browse-", 18) && strstr(s->browse.items[i].name, "/a copy.onnx"))
            have_copy = i;
        if (!strncmp(s->browse.items[i].name, "recent: rs-browse-", 18) && strstr(s->browse.items[i].name, "/gone.onnx"))
            have_gone = i;
    }
    int t1 = -1, t2 = -1;
    for (int i = 0; i < s->browse.n; ++i) {
        t1 = strstr(s->browse.items[i].path, "/x/zoo/m.onnx") ? i : t1;
        t2 = strstr(s->browse.items[i].path, "/y/zoo/m.onnx") ? i : t2;
    }
    CHECK(t1 >= 0 && t2 >= 0 && strcmp(s->browse.items[t1].name, s->browse.items[t2].name) &&
              strstr(s->browse.items[t1].name, "/x/zoo/m.onnx") && strstr(s->browse.items[t2].name, "/y/zoo/m.onnx"),
          "two recent files whose parent/name read the same show their paths (%s, %s)",
          t1 >= 0 ? s->browse.items[t1].name : "-", t2 >= 0 ? s->browse.items[t2].name : "-");
    CHECK(have_copy >= 0 && s->browse.items[have_copy].params > 0 && s->browse.items[have_copy].acc == 0.625,
          "with its params and the accuracy measured when it was last opened");
    if (have_zoo) {
        int look = -1;
        for (int i = 0; i < s->browse.n; ++i)
            look = !strcmp(s->browse.items[i].path, lookalike_real) ? i : look;
        CHECK(look >= 0 && strstr(s->browse.items[look].name, "tests/data/zoo/resnet20.onnx"),
              "a recent file whose parent/name reads like a zoo model's shows its path (%s)",
              look >= 0 ? s->browse.items[look].name : "-");
        int in_zoo = -1, in_recent = -1;
        for (int i = 0; i < s->browse.n; ++i) {
            if (!strcmp(s->browse.items[i].name, "zoo: resnet20"))
                in_zoo = i;
            if (!strncmp(s->browse.items[i].name, "recent: ", 8) && !strcmp(s->browse.items[i].path, zoo_rn))
                in_recent = i;
        }
        CHECK(in_zoo >= 0 && in_recent >= 0 && s->browse.items[in_zoo].acc > 0 &&
                  s->browse.items[in_recent].acc == s->browse.items[in_zoo].acc,
              "a recent zoo model without a recorded accuracy shows the catalogue's (%.4f, the zoo row's %.4f)",
              in_recent >= 0 ? s->browse.items[in_recent].acc : -9, in_zoo >= 0 ? s->browse.items[in_zoo].acc : -9);
    }
    CHECK(have_gone >= 0 && s->browse.items[have_gone].missing && have_copy < have_gone,
          "the gone file is listed as missing, after the newer one");
    while (s->browse.sel < have_gone)
        ui_key(s, UI_K_DOWN);
    f = ui_key(s, UI_K_ENTER);
    CHECK(!(f & UI_OPEN) && strstr(s->msg, "no longer there"), "Enter on a missing file says so (%s)", s->msg);
    f = ui_key(s, 'c');
    CHECK(!(f & UI_COMPARE) && strstr(s->msg, "cannot be read"), "c on it too (%s)", s->msg);
    /* a typed directory */
    f = ui_key(s, 'd');
    char buf[1200];
    CHECK(s->browse.dir_editing && ui_prompt_text(s, buf, sizeof buf) && strstr(buf, "directory: ._"),
          "d opens the directory prompt (%s)", buf);
    ui_key(s, '/');
    ui_key(s, 'x');
    CHECK(!strcmp(s->browse.dir_buf, "/x"), "a path typed over the directory shown replaces it (%s)", s->browse.dir_buf);
    ui_key(s, UI_K_BACKSPACE);
    ui_key(s, 'y');
    CHECK(!strcmp(s->browse.dir_buf, "/y"), "then it is edited as typed (%s)", s->browse.dir_buf);
    ui_key(s, 21);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/zoo", root());
    for (const char *c = dir; *c; ++c)
        ui_key(s, (unsigned char)*c);
    f = ui_key(s, UI_K_ENTER);
    CHECK((f & UI_BROWSE) && !s->browse.dir_editing && !strcmp(s->browse.dir, dir), "Enter lists it (UI_BROWSE)");
    ui_browser_scan(s, ".");
    int rn = -1;
    for (int i = 0; i < s->browse.n; ++i)
        if (strstr(s->browse.items[i].name, "/resnet20.onnx") && strstr(s->browse.items[i].path, "tests/data/zoo"))
            rn = i;
    CHECK(rn >= 0 && s->browse.items[rn].params == 68522, "the typed directory's resnet20.onnx is listed with its params");
    CHECK(!s->browse.dir_err[0], "listed without an error");
    /* a directory that cannot be listed: why, the zoo and recent files still there */
    char nodir[900];
    snprintf(nodir, sizeof nodir, "%s/no such dir", tmp);
    snprintf(s->browse.dir, sizeof s->browse.dir, "%s", nodir);
    ui_browser_scan(s, ".");
    CHECK(!strcmp(s->browse.dir_err, "No such file or directory") && strstr(s->msg, "cannot list") &&
              strstr(s->msg, "no such dir: No such file or directory") && s->browse.n > 0,
          "a missing directory: %s (%d rows still listed)", s->msg, s->browse.n);
    /* a truncated model in a listed directory: its reason without the path the row shows */
    char tdir[900], tpath[1000], zrn[1000];
    snprintf(tdir, sizeof tdir, "%s/trunc", tmp);
    snprintf(tpath, sizeof tpath, "%s/cut.onnx", tdir);
    snprintf(zrn, sizeof zrn, "%s/assets/zoo/resnet20.onnx", root());
    mkdir(tdir, 0755);
    FILE *zin = fopen(zrn, "rb"), *tout = fopen(tpath, "wb");
    char chunk[30000];
    size_t got = zin ? fread(chunk, 1, sizeof chunk, zin) : 0;
    if (tout)
        fwrite(chunk, 1, got, tout);
    if (zin)
        fclose(zin);
    if (tout)
        fclose(tout);
    snprintf(s->browse.dir, sizeof s->browse.dir, "%s", tdir);
    ui_browser_scan(s, ".");
    int cut = -1;
    for (int i = 0; i < s->browse.n; ++i)
        cut = strstr(s->browse.items[i].name, "cut.onnx") ? i : cut;
    char why[RS_ERR_LEN + 320] = "";
    if (cut >= 0) {
        s->browse.sel = cut;
        ui_browser_status(s, why, sizeof why);
        ui_key(s, UI_K_ENTER);
    }
    CHECK(got == sizeof chunk && cut >= 0 && s->browse.items[cut].params < 0 &&
              !strncmp(why, "cannot read it: not a valid ONNX model", 38) && !strstr(why, "cut.onnx"),
          "a truncated model: unreadable, the reason without its path (%s)", why);
    const char *once = strstr(s->msg, "cut.onnx: not a valid ONNX model");
    CHECK(once && !strstr(once + 1, "cut.onnx"),
          "Enter on it: the message names it once (%s)", s->msg);
    remove(tpath);
    rmdir(tdir);
    snprintf(s->browse.dir, sizeof s->browse.dir, "%.900s", copy); /* a file, not a directory */
    ui_browser_scan(s, ".");
    CHECK(!strcmp(s->browse.dir_err, "Not a directory"), "a file given as the directory: %s", s->browse.dir_err);
    char locked[900], denied[64] = "";
    snprintf(locked, sizeof locked, "%s/locked", tmp);
    int how = scan_locked(s, tmp, locked, denied, sizeof denied);
    if (how == 77) {
        printf("ok %d - a directory without permission # SKIP cannot drop root to uid/gid 65534\n", ++check_count);
    } else {
        CHECK((how == 0 || how == 1) && !strcmp(denied, "Permission denied"), "a directory without permission%s: %s",
              how == 1 ? " (listed as uid/gid 65534)" : "", denied);
    }
    snprintf(s->browse.dir, sizeof s->browse.dir, "%s", dir);
    ui_browser_scan(s, ".");
    /* paging: PgDn a page of rows, End the last, Home the first */
    int page = ui_browser_rows(s), n_items = s->browse.n;
    ui_key(s, UI_K_PGDN);
    CHECK(s->browse.sel == (page < n_items - 1 ? page : n_items - 1), "PgDn: a page down (%d rows, at %d)", page,
          s->browse.sel);
    ui_key(s, UI_K_END);
    CHECK(s->browse.sel == n_items - 1 && ui_browser_first(s) == (n_items > page ? n_items - page : 0),
          "End: the last model, the list scrolled to it");
    ui_key(s, UI_K_PGUP);
    ui_key(s, UI_K_HOME);
    CHECK(s->browse.sel == 0 && ui_browser_first(s) == 0, "Home: the first");
    while (s->browse.sel < rn)
        ui_key(s, UI_K_DOWN);
    f = ui_key(s, 'c');
    CHECK((f & UI_COMPARE) && !s->browse.active, "c asks for a comparison with it and closes the browser");
    ui_state_free(s);
    free(s);
}

/* A browser listing two models, the first selected. */
static ui_state *browser_with_two(void)
{
    ui_state *s = calloc(1, sizeof *s);
    ui_state_defaults(s);
    ui_key(s, 'o');
    s->browse.n = 2;
    for (int i = 0; i < 2; ++i) {
        snprintf(s->browse.items[i].name, sizeof s->browse.items[i].name, "zoo: m%d", i);
        snprintf(s->browse.items[i].path, sizeof s->browse.items[i].path, "/zoo/m%d.onnx", i);
        s->browse.items[i].params = s->browse.items[i].macs = 1000;
        s->browse.items[i].acc = -1;
    }
    return s;
}

/* The browser's keys while a model opens in the background (pure transitions). */
static void test_opening_keys(void)
{
    ui_state *s = browser_with_two();
    char line[1024], jobs[160];
    unsigned f = ui_key(s, UI_K_ENTER);
    CHECK((f & UI_OPEN) && s->browse.opening && s->browse.active && !strcmp(s->browse.open_path, "/zoo/m0.onnx"),
          "Enter starts opening the selected model; the browser stays up");
    CHECK(ui_browser_status(s, line, sizeof line) == 1 && strstr(line, "opening zoo: m0 0%  Esc cancels"),
          "its bottom line says what opens and how to cancel (%s)", line);
    s->browse.open_progress = 0.45;
    snprintf(s->browse.open_what, sizeof s->browse.open_what, "conv2 svd EVBMF");
    s->browse.spin = 1;
    char again[1024];
    ui_browser_status(s, again, sizeof again);
    CHECK(strstr(again, "45%  Esc cancels  at conv2 svd EVBMF") && strcmp(line, again) && strncmp(again, "⠙", 3) == 0,
          "progress, the step and the spinner's next frame (%s)", again);
    s->utf8 = 0;
    ui_browser_status(s, again, sizeof again);
    CHECK(again[0] == '/', "an ASCII spinner without UTF-8 (%s)", again);
    s->utf8 = 1;
    CHECK(ui_jobs_text(s, jobs, sizeof jobs) == 1 && strstr(jobs, "opening zoo: m0 45%"),
          "the jobs indicator on every screen names it (%s)", jobs);
    f = ui_key(s, UI_K_ENTER);
    CHECK(!(f & UI_OPEN) && s->browse.opening, "Enter on the same model again: nothing new");
    f = ui_key(s, UI_K_DOWN);
    CHECK(s->browse.sel == 1 && s->browse.opening, "the selection moves meanwhile");
    f = ui_key(s, 'c');
    CHECK(!(f & UI_COMPARE) && strstr(s->msg, "Esc to cancel"), "c waits for the opening (%s)", s->msg);
    f = ui_key(s, UI_K_ENTER);
    CHECK((f & UI_OPEN) && s->browse.opening && !strcmp(s->browse.open_path, "/zoo/m1.onnx"),
          "Enter on another model opens that one instead");
    f = ui_key(s, 3);
    CHECK(!(f & UI_QUIT) && s->confirm_quit && strstr(s->msg, "opening zoo: m1"),
          "^C in the browser asks before quitting, naming the opening (%s)", s->msg);
    ui_key(s, 'x');
    CHECK(s->browse.opening && s->browse.active && !s->confirm_quit, "any other key stays");
    f = ui_key(s, UI_K_ESC);
    CHECK((f & UI_OPEN_CANCEL) && !s->browse.opening && s->browse.active && strstr(s->browse.note, "cancelled"),
          "Esc gives the opening up (UI_OPEN_CANCEL), the browser stays (%s)", s->browse.note);
    CHECK(ui_browser_status(s, line, sizeof line) == 2 && strstr(line, "opening zoo: m1 cancelled") &&
              ui_jobs_text(s, jobs, sizeof jobs) == 0,
          "its bottom line says so, no job runs (%s)", line);
    f = ui_key(s, UI_K_ESC);
    CHECK(!(f & UI_OPEN_CANCEL) && !s->browse.active, "a second Esc closes the browser");
    ui_key(s, 'o');
    ui_key(s, UI_K_ENTER);
    ui_browser_open_failed(s, -1, "/zoo/m0.onnx: not an ONNX model (protobuf parse failed)\nsecond line");
    CHECK(!s->browse.opening && strstr(s->browse.note, "cannot open zoo: m0: /zoo/m0.onnx: not an ONNX") &&
              strstr(s->msg, "cannot open zoo: m0") && !strchr(s->browse.note, '\n') && !strchr(s->msg, '\n'),
          "a failed opening: why, in one line in the browser and on the status line (%s)", s->browse.note);
    ui_key(s, UI_K_DOWN);
    CHECK(s->browse.note[0] == 0, "moving on clears it");
    ui_state_free(s);
    free(s);
}

/* How the opening ended (polled every 2 ms); 1 when o is NULL. */
static int wait_result(ui_openjob *o, rs_model **m, ui_state **ns, rs_err *e)
{
    int rc = 1;
    while (o && (rc = ui_openjob_result(o, m, ns, e)) == 1) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return rc;
}

/* The opening worker: the state it builds is ui_state_init's; cancelled, it ends as cancelled;
 * a file that does not load gives its reason. */
static void test_openjob(const char *tmp)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/zoo/resnet20.onnx", root());
    rs_err e = {{0}};
    ui_state *s = calloc(1, sizeof *s);
    ui_state_defaults(s);
    ui_openjob *o = ui_openjob_start(path, &e);
    CHECK(o != NULL, "the worker starts: %s", e.msg);
    rs_model *m = NULL;
    ui_state *ns = NULL;
    int rc = 1, polls = 0, saw_step = 0;
    while (o && (rc = ui_openjob_result(o, &m, &ns, &e)) == 1) {
        if (ui_openjob_poll(o, s))
            ++polls;
        saw_step |= strstr(s->browse.open_what, "EVBMF") != NULL && s->browse.open_progress > 0;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    ui_openjob_stop(o);
    CHECK(rc == 0 && m && ns && polls > 0 && saw_step, "opened, with progress reported on the way (%d polls): %s", polls,
          e.msg);
    rs_model *ref = onnx_load(path, &e);
    ui_state *rs = calloc(1, sizeof *rs);
    ui_state_defaults(rs);
    int same = ref && ns && ui_state_init(rs, ref, &e) == 0 && rs->n_layers == ns->n_layers && rs->n_layers == 22;
    for (int k = 0; same && k < rs->n_layers; ++k)
        same = !memcmp(rs->layers[k].mi, ns->layers[k].mi, sizeof rs->layers[k].mi) &&
               !strcmp(rs->layers[k].label, ns->layers[k].label) && rs->layers[k].methods == ns->layers[k].methods;
    CHECK(same && ns->graph.n == rs->graph.n, "the same layers, ranks, EVBMF and graph as ui_state_init's (%d layers)",
          ns ? ns->n_layers : -1);
    ui_state_free(rs);
    free(rs);
    ui_state_free(ns);
    free(ns);
    model_free(m);
    model_free(ref);
    /* cancelled at once: ResNet-20's EVBMF ranks take far longer than the first check */
    o = ui_openjob_start(path, &e);
    ui_openjob_cancel(o);
    m = NULL;
    ns = NULL;
    rc = wait_result(o, &m, &ns, &e);
    CHECK(rc == RS_CANCELLED && !m && !ns && ui_openjob_done(o), "cancelled: RS_CANCELLED, nothing handed over (%s)",
          e.msg);
    ui_openjob_stop(o);
    /* stopped while running: joined and freed (ASan sees leaks) */
    o = ui_openjob_start(path, &e);
    ui_openjob_stop(o);
    ui_openjob_stop(NULL);
    char bad[1100];
    snprintf(bad, sizeof bad, "%s/broken.onnx", tmp);
    FILE *f = fopen(bad, "w");
    if (f) {
        fputs("not a model", f);
        fclose(f);
    }
    o = ui_openjob_start(bad, &e);
    rc = wait_result(o, &m, &ns, &e);
    ui_openjob_stop(o);
    CHECK(rc == -1 && strstr(e.msg, "broken.onnx") && !strchr(e.msg, '\n'), "a broken file: one line naming it (%s)", e.msg);
    ui_state_free(s);
    free(s);
}

/* lenet against itself with conv2 and fc1 factorized */
static void test_compare(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/assets/lenet-cifar10.onnx", root());
    rs_err e = {{0}};
    rs_model *a = onnx_load(path, &e), *b = a ? model_clone(a) : NULL;
    rs_plan *p = plan_alloc();
    CHECK(a && b && p && plan_parse_spec(p, "conv2=spatial-svd:12,fc1=svd:24", &e) == 0 && plan_apply(b, p, NULL, NULL, &e) == 0,
          "lenet and its compressed copy: %s", e.msg);
    if (!a || !b) {
        model_free(a);
        model_free(b);
        plan_free(p);
        return;
    }
    ui_state *s = calloc(1, sizeof *s);
    ui_state_defaults(s);
    CHECK(ui_compare_build(s, a, b, "small.onnx", &e) == 0 && s->cmp.active, "built: %s", e.msg);
    int conv2 = -1, fc1 = -1, conv1 = -1, only_b = 0;
    for (int i = 0; i < s->cmp.n; ++i) {
        const ui_cmp_row *r = &s->cmp.rows[i];
        if (strstr(r->name, "conv2"))
            conv2 = i;
        if (strstr(r->name, "fc1"))
            fc1 = i;
        if (strstr(r->name, "conv1"))
            conv1 = i;
        only_b += !strcmp(r->how, "only in B");
    }
    CHECK(s->cmp.n == 5 && !only_b, "five rows, one per layer of A, nothing unexplained in B (%d)", s->cmp.n);
    /* B's own table: the factor nodes of conv2 */
    rs_layer_info *ib = NULL;
    int nb = 0;
    int64_t f_params = 0, f_macs = 0;
    if (model_layer_table(b, &ib, &nb, &e) == 0)
        for (int j = 0; j < nb; ++j)
            if (ib[j].name && strstr(ib[j].name, "conv2") && strstr(ib[j].name, "_f")) {
                f_params += ib[j].params;
                f_macs += ib[j].macs;
            }
    free(ib);
    CHECK(conv2 >= 0 && !strcmp(s->cmp.rows[conv2].how, "2 factors") && s->cmp.rows[conv2].b_params == f_params &&
              s->cmp.rows[conv2].b_macs == f_macs && f_params == 1336,
          "conv2: 2 factors, %lld params (the factor nodes' sum, 1336 as the CLI reports)",
          conv2 >= 0 ? (long long)s->cmp.rows[conv2].b_params : -1LL);
    CHECK(fc1 >= 0 && s->cmp.rows[fc1].a_params == 48120 && s->cmp.rows[fc1].b_params < s->cmp.rows[fc1].a_params,
          "fc1: fewer params in B");
    CHECK(conv1 >= 0 && !strcmp(s->cmp.rows[conv1].how, "same shape") &&
              s->cmp.rows[conv1].a_params == s->cmp.rows[conv1].b_params,
          "conv1 untouched: same shape, same params");
    int64_t pa, ma, pb, mb;
    model_totals(a, &pa, &ma);
    model_totals(b, &pb, &mb);
    CHECK(s->cmp.a_params == pa && s->cmp.b_params == pb && pb < pa && s->cmp.b_acc < 0, "totals; B's accuracy pending");
    s->lines = 24;
    for (int i = 0; i < 10; ++i)
        ui_key(s, UI_K_DOWN);
    CHECK(s->cmp.sel == 4, "down stops at the last row (%d)", s->cmp.sel);
    unsigned f = ui_key(s, 'q');
    CHECK(s->cmp.active && (f & UI_QUIT), "q still quits (nothing unsaved)");
    ui_key(s, UI_K_ESC);
    CHECK(!s->cmp.active, "Esc back to the screen");
    /* each model's test accuracy without evaluating it: the zoo's, else the one recorded when it
     * was last opened, else unknown */
    char from[16];
    double known = ui_known_accuracy(path, from, sizeof from);
    CHECK(fabs(known - 0.7093) < 1e-9 && !strcmp(from, "zoo"), "the zoo's lenet: %.4f from %s", known, from);
    char other[1100], rf[1100];
    snprintf(other, sizeof other, "%s/small.onnx", getenv("XDG_STATE_HOME"));
    CHECK(onnx_save(b, other, &e) == 0, "B saved: %s", e.msg);
    known = ui_known_accuracy(other, from, sizeof from);
    CHECK(known < 0 && !from[0], "a file nobody measured: unknown (%g)", known);
    ui_recent *rec = calloc(1, sizeof *rec);
    char real[PATH_MAX];
    CHECK(rec && realpath(other, real) && ui_recent_file(rf, sizeof rf) == 0, "recent file");
    if (rec) {
        ui_recent_load(rf, rec);
        ui_recent_push(rec, real, 0.642);
        CHECK(ui_recent_save(rf, rec, &e) == 0, "saved: %s", e.msg);
    }
    known = ui_known_accuracy(other, from, sizeof from);
    CHECK(fabs(known - 0.642) < 1e-9 && !strcmp(from, "last opened"), "measured when last opened: %.3f (%s)", known, from);
    free(rec);
    ui_state_free(s);
    free(s);
    plan_free(p);
    model_free(a);
    model_free(b);
}

int main(void)
{
    rs_gsl_init();
    char tmp[] = "/tmp/rs-browse-XXXXXX";
    if (!mkdtemp(tmp))
        return 1;
    test_recent(tmp);
    test_browser(tmp);
    test_compare();
    test_opening_keys();
    test_openjob(tmp);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return check_done();
}
