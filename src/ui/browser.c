/* browser.c — the model browser (`o`): the zoo catalogue, the shipped net, the recently opened
 * files and the .onnx files of a directory (the current one, or one typed with `d`), each with
 * params, MACs and test accuracy when known. ui_browser_scan and the recent-file functions read
 * and write files (the caller runs them, not a key handler); ui_browser_key is a pure transition. */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/fileio.h"
#include "rankscope/onnx.h"
#include "rankscope/zoo.h"

/* A recent file as "parent/name.onnx" (the path itself when it has no parent part). */
static const char *recent_tail(const char *path)
{
    const char *parent = strrchr(path, '/');
    while (parent && parent > path && parent[-1] != '/')
        --parent;
    return parent ? parent : path;
}

static void add(ui_browser_state *b, const char *name, const char *path, int test_correct, int from)
{
    if (b->n >= UI_BROWSE_MAX)
        return;
    char real[PATH_MAX];
    if (!realpath(path, real))
        snprintf(real, sizeof real, "%s", path);
    for (int i = from; i < b->n; ++i) { /* the same file under two names: listed once */
        char other[PATH_MAX];
        if (!realpath(b->items[i].path, other))
            snprintf(other, sizeof other, "%s", b->items[i].path);
        if (!strcmp(other, real))
            return;
    }
    ui_browse_item *it = &b->items[b->n++];
    snprintf(it->name, sizeof it->name, "%s", name);
    snprintf(it->path, sizeof it->path, "%s", path);
    it->acc = test_correct >= 0 ? test_correct / 10000.0 : -1;
    it->missing = 0;
    it->err[0] = 0;
    if (access(path, F_OK) != 0) {
        it->missing = 1;
        it->params = it->macs = -1;
        return;
    }
    rs_err e;
    rs_model *m = onnx_load(path, &e);
    if (m) {
        model_totals(m, &it->params, &it->macs);
        model_free(m);
    } else {
        it->params = it->macs = -1;
        snprintf(it->err, sizeof it->err, "%.190s", e.msg);
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- recent files ------------------------------------------------------------------------------ */

int ui_recent_file(char *out, size_t len)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg == '/')
        snprintf(out, len, "%s/rankscope/recent", xdg);
    else if (home && *home)
        snprintf(out, len, "%s/.local/state/rankscope/recent", home);
    else
        return -1;
    return 0;
}

/* One line per file, newest first: the accuracy ("-" unknown), a tab, the absolute path. */
void ui_recent_load(const char *file, ui_recent *r)
{
    memset(r, 0, sizeof *r);
    uint8_t *buf = NULL;
    size_t len = 0;
    rs_err e;
    if (!file || fileio_read_all(file, 1 << 20, &buf, &len, &e) != 0)
        return;
    /* the file's bytes are not a string: parse a NUL-terminated copy */
    char *text = malloc(len + 1);
    if (!text) {
        free(buf);
        return;
    }
    memcpy(text, buf, len);
    text[len] = 0;
    free(buf);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && r->n < UI_RECENT_MAX;
         line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (!tab || tab[1] != '/' || strlen(tab + 1) >= sizeof r->path[0])
            continue; /* not ours, or hand-edited beyond use: skipped, never fatal */
        *tab = 0;
        char *end = NULL;
        double acc = strtod(line, &end);
        r->acc[r->n] = end && end != line && !*end && acc >= 0 && acc <= 1 ? acc : -1;
        snprintf(r->path[r->n], sizeof r->path[0], "%s", tab + 1);
        r->n++;
    }
    free(text);
}

void ui_recent_push(ui_recent *r, const char *path, double acc)
{
    double keep = -1;
    int at = -1;
    for (int i = 0; i < r->n; ++i)
        if (!strcmp(r->path[i], path))
            at = i;
    if (at >= 0) {
        keep = r->acc[at];
        memmove(r->path[1], r->path[0], sizeof r->path[0] * (size_t)at);
        memmove(r->acc + 1, r->acc, sizeof r->acc[0] * (size_t)at);
    } else {
        int n = r->n < UI_RECENT_MAX ? r->n : UI_RECENT_MAX - 1;
        memmove(r->path[1], r->path[0], sizeof r->path[0] * (size_t)n);
        memmove(r->acc + 1, r->acc, sizeof r->acc[0] * (size_t)n);
        r->n = n + 1;
    }
    snprintf(r->path[0], sizeof r->path[0], "%s", path);
    r->acc[0] = acc >= 0 ? acc : keep;
}

static int mkdir_p(char *dir)
{
    for (char *p = dir + 1; *p; ++p)
        if (*p == '/') {
            *p = 0;
            int rc = mkdir(dir, 0700);
            *p = '/';
            if (rc != 0 && errno != EEXIST)
                return -1;
        }
    return mkdir(dir, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int ui_recent_save(const char *file, const ui_recent *r, rs_err *e)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (mkdir_p(dir) != 0)
            return rs_fail(e, "%s: cannot create the directory: %s", dir, strerror(errno));
    }
    size_t cap = (size_t)UI_RECENT_MAX * 1100 + 1, at = 0;
    char *text = malloc(cap);
    if (!text)
        return rs_fail(e, "out of memory");
    text[0] = 0;
    for (int i = 0; i < r->n; ++i) {
        if (r->acc[i] >= 0)
            at += (size_t)snprintf(text + at, cap - at, "%.6f\t%s\n", r->acc[i], r->path[i]);
        else
            at += (size_t)snprintf(text + at, cap - at, "-\t%s\n", r->path[i]);
    }
    int rc = fileio_write_atomic(file, text, at, e);
    free(text);
    return rc;
}

double ui_known_accuracy(const char *path, char *from, size_t from_len)
{
    char real[PATH_MAX], other[PATH_MAX], cat[4096];
    double acc = -1;
    if (from_len)
        from[0] = 0;
    if (!realpath(path, real))
        return -1;
    if (rs_find_asset("zoo/zoo.tsv", cat, sizeof cat) == 0) {
        zoo_entry *z = NULL;
        int n = 0;
        rs_err e;
        if (zoo_catalog_read(cat, &z, &n, &e) == 0)
            for (int i = 0; i < n && acc < 0; ++i)
                if (z[i].test_correct >= 0 && realpath(z[i].path, other) && !strcmp(other, real)) {
                    acc = z[i].test_correct / 10000.0;
                    snprintf(from, from_len, "zoo");
                }
        free(z);
    }
    char rf[1100];
    ui_recent *rec = acc < 0 ? malloc(sizeof *rec) : NULL;
    if (rec && ui_recent_file(rf, sizeof rf) == 0) {
        ui_recent_load(rf, rec);
        for (int i = 0; i < rec->n && acc < 0; ++i)
            if (rec->acc[i] >= 0 && !strcmp(rec->path[i], real)) {
                acc = rec->acc[i];
                snprintf(from, from_len, "last opened");
            }
    }
    free(rec);
    return acc;
}

/* ---- the list -------------------------------------------------------------------------------- */

void ui_browser_scan(ui_state *s, const char *dir)
{
    ui_browser_state *b = &s->browse;
    b->n = b->sel = 0;
    if (b->dir[0])
        dir = b->dir;
    char cat[4096];
    if (rs_find_asset("zoo/zoo.tsv", cat, sizeof cat) == 0) {
        zoo_entry *z = NULL;
        int n = 0;
        rs_err e;
        if (zoo_catalog_read(cat, &z, &n, &e) == 0)
            for (int i = 0; i < n; ++i) {
                char name[80];
                snprintf(name, sizeof name, "zoo: %s", z[i].name);
                add(b, name, z[i].path, z[i].test_correct, 0);
            }
        free(z);
    }
    char shipped[4096];
    if (rs_find_asset(RS_SHIPPED_MODEL, shipped, sizeof shipped) == 0)
        add(b, "shipped: " RS_SHIPPED_MODEL, shipped, -1, 0);
    /* recently opened: their own section (a zoo model opened last week is listed there too) */
    char rf[1100];
    ui_recent *rec = malloc(sizeof *rec);
    if (rec && ui_recent_file(rf, sizeof rf) == 0) {
        ui_recent_load(rf, rec);
        int from = b->n;
        for (int i = 0; i < rec->n; ++i) {
            /* the parent directory too, and the whole path where two still read the same (the zoo's
             * and the test suite's zoo/mobilenet.onnx); a long one keeps its end, the file name */
            char name[80];
            const char *shown = recent_tail(rec->path[i]);
            for (int j = 0; j < rec->n; ++j)
                if (j != i && !strcmp(recent_tail(rec->path[j]), shown))
                    shown = rec->path[i];
            /* nor like a zoo model it is not (the test suite's zoo/resnet20.onnx, a smaller net) */
            for (int j = 0; j < from; ++j) {
                char zr[PATH_MAX], rr[PATH_MAX];
                if (!strcmp(recent_tail(b->items[j].path), shown) &&
                    !(realpath(b->items[j].path, zr) && realpath(rec->path[i], rr) && !strcmp(zr, rr)))
                    shown = rec->path[i];
            }
            size_t sl = strlen(shown);
            snprintf(name, sizeof name, "recent: %s%s", sl > 70 ? "..." : "", sl > 70 ? shown + sl - 67 : shown);
            int before = b->n;
            add(b, name, rec->path[i], -1, from);
            /* the zoo's catalogue knows its models' accuracy even when the last opening measured
             * none (only a full test set is recorded) */
            if (b->n > before)
                b->items[before].acc = rec->acc[i] >= 0 ? rec->acc[i] : ui_known_accuracy(rec->path[i], NULL, 0);
        }
    }
    free(rec);
    int from_dir = b->n;
    DIR *d = opendir(dir && *dir ? dir : ".");
    b->dir_err[0] = 0;
    if (!d) { /* said on the listing line and the status line; the zoo and recent files stay */
        snprintf(b->dir_err, sizeof b->dir_err, "%s", strerror(errno));
        snprintf(s->msg, sizeof s->msg, "cannot list %.300s: %s", dir && *dir ? dir : ".", b->dir_err);
    }
    if (d) {
        char *names[UI_BROWSE_MAX];
        int nn = 0;
        struct dirent *de;
        while ((de = readdir(d)) && nn < UI_BROWSE_MAX) {
            size_t l = strlen(de->d_name);
            if (l > 5 && !strcmp(de->d_name + l - 5, ".onnx"))
                names[nn++] = strdup(de->d_name);
        }
        closedir(d);
        qsort(names, (size_t)nn, sizeof names[0], by_name);
        for (int i = 0; i < nn; ++i) {
            char path[1024];
            if (names[i]) {
                snprintf(path, sizeof path, "%.900s/%.100s", dir && *dir ? dir : ".", names[i]);
                char name[80];
                size_t dl = dir ? strlen(dir) : 0;
                if (dl > 30) /* the directory's end names it best */
                    snprintf(name, sizeof name, "~%.29s/%.45s", dir + dl - 29, names[i]);
                else if (dl && strcmp(dir, "."))
                    snprintf(name, sizeof name, "%.30s/%.45s", dir, names[i]);
                else
                    snprintf(name, sizeof name, "%.78s", names[i]);
                int before = b->n;
                add(b, name, path, -1, from_dir);
                if (b->n > before) /* a zoo file listed by directory, or one opened before */
                    b->items[before].acc = ui_known_accuracy(path, NULL, 0);
            }
            free(names[i]);
        }
    }
}

int ui_browser_rows(const ui_state *s)
{
    /* title, tabs, status, footer; heading, listing, column titles; why a file does not load */
    int r = s->lines - 4 - 3 - 1;
    return r < 1 ? 1 : r;
}

int ui_browser_first(const ui_state *s)
{
    int rows = ui_browser_rows(s);
    return s->browse.sel >= rows ? s->browse.sel - rows + 1 : 0;
}

/* `d`: the directory is typed on the status line; Enter lists it. */
static unsigned dir_key(ui_state *s, int key)
{
    ui_browser_state *b = &s->browse;
    switch (key) {
    case UI_K_ESC:
        b->dir_editing = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_ENTER:
    case '\r':
        b->dir_editing = 0;
        snprintf(b->dir, sizeof b->dir, "%s", b->dir_len ? b->dir_buf : ".");
        return UI_HANDLED | UI_REDRAW | UI_BROWSE;
    case UI_K_BACKSPACE:
    case 127:
    case 8:
        b->dir_fresh = 0; /* editing the directory shown */
        if (b->dir_len > 0)
            b->dir_buf[--b->dir_len] = 0;
        return UI_HANDLED | UI_REDRAW;
    case 21: /* ^U */
        b->dir_len = b->dir_fresh = 0;
        b->dir_buf[0] = 0;
        return UI_HANDLED | UI_REDRAW;
    default:
        if (key >= 32 && key < 127 && b->dir_fresh) { /* a path typed over the one shown replaces it */
            b->dir_len = b->dir_fresh = 0;
            b->dir_buf[0] = 0;
        }
        if (key >= 32 && key < 127 && b->dir_len < (int)sizeof b->dir_buf - 1) {
            b->dir_buf[b->dir_len++] = (char)key;
            b->dir_buf[b->dir_len] = 0;
            return UI_HANDLED | UI_REDRAW;
        }
        return UI_HANDLED;
    }
}

void ui_browser_open_failed(ui_state *s, int rc, const char *why)
{
    ui_browser_state *b = &s->browse;
    if (rc == RS_CANCELLED)
        snprintf(b->note, sizeof b->note, "opening %.70s cancelled", b->open_name);
    else
        snprintf(b->note, sizeof b->note, "cannot open %.70s: %.500s", b->open_name, why && *why ? why : "unknown error");
    for (char *c = b->note; *c; ++c) /* one line, whatever the reason held */
        if ((unsigned char)*c < 32)
            *c = ' ';
    snprintf(s->msg, sizeof s->msg, "%.500s", b->note);
    b->opening = 0;
    b->open_progress = 0;
    b->open_what[0] = 0;
}

/* The loader's reason without the path it starts with ("PATH: not a valid ONNX model ..."): the
 * row, or the message, names the file already, and the reason is what has to fit. */
static const char *reason_of(const ui_browse_item *it)
{
    size_t n = strlen(it->path);
    if (n && !strncmp(it->err, it->path, n) && !strncmp(it->err + n, ": ", 2))
        return it->err + n + 2;
    return it->err;
}

int ui_browser_status(const ui_state *s, char *buf, size_t len)
{
    const ui_browser_state *b = &s->browse;
    static const char *const spin_utf8[] = {"\u280b", "\u2819", "\u2839", "\u2838", "\u283c",
                                            "\u2834", "\u2826", "\u2827", "\u2807", "\u280f"};
    static const char spin_ascii[] = "|/-\\";
    buf[0] = 0;
    if (b->opening) {
        char glyph[8];
        if (s->utf8)
            snprintf(glyph, sizeof glyph, "%s", spin_utf8[(unsigned)b->spin % 10]);
        else
            snprintf(glyph, sizeof glyph, "%c", spin_ascii[(unsigned)b->spin % 4]);
        /* the step goes last: on a narrow screen it is what gets cut */
        snprintf(buf, len, "%s opening %s %.0f%%  Esc cancels%s%s", glyph, b->open_name, 100 * b->open_progress,
                 b->open_what[0] ? "  at " : "", b->open_what);
        return 1;
    }
    if (b->note[0]) {
        snprintf(buf, len, "%s", b->note);
        return 2;
    }
    if (b->n > 0 && b->items[b->sel].err[0]) { /* the selected row names the file */
        snprintf(buf, len, "cannot read it: %s", reason_of(&b->items[b->sel]));
        return 2;
    }
    return 0;
}

/* The selected item, to be opened in the background (app.c starts the worker on UI_OPEN). */
static unsigned open_selected(ui_state *s)
{
    ui_browser_state *b = &s->browse;
    const ui_browse_item *it = &b->items[b->sel];
    b->opening = 1;
    snprintf(b->open_name, sizeof b->open_name, "%s", it->name);
    snprintf(b->open_path, sizeof b->open_path, "%s", it->path);
    b->open_progress = 0;
    b->open_what[0] = 0;
    b->note[0] = 0;
    s->msg[0] = 0; /* the browser's bottom line says it, with its progress */
    return UI_HANDLED | UI_REDRAW | UI_OPEN;
}

unsigned ui_browser_key(ui_state *s, int key)
{
    ui_browser_state *b = &s->browse;
    if (b->dir_editing)
        return dir_key(s, key);
    if (b->opening) {
        switch (key) {
        case UI_K_ESC:
        case 'o':
        case 'q':
            ui_browser_open_failed(s, RS_CANCELLED, NULL);
            return UI_HANDLED | UI_REDRAW | UI_OPEN_CANCEL;
        case 'c':
            snprintf(s->msg, sizeof s->msg, "opening %.70s: wait for it or Esc to cancel", b->open_name);
            return UI_HANDLED | UI_REDRAW;
        case UI_K_ENTER:
        case '\r':
            if (b->n > 0 && !strcmp(b->items[b->sel].path, b->open_path))
                return UI_HANDLED; /* already under way */
            break;                 /* another model: it replaces the one being opened */
        default: break;
        }
    }
    switch (key) {
    case 'd':
        b->dir_editing = b->dir_fresh = 1;
        snprintf(b->dir_buf, sizeof b->dir_buf, "%s", b->dir[0] ? b->dir : ".");
        b->dir_len = (int)strlen(b->dir_buf);
        return UI_HANDLED | UI_REDRAW;
    case 'c':
        if (b->n <= 0 || b->items[b->sel].missing || b->items[b->sel].params < 0) {
            snprintf(s->msg, sizeof s->msg, "%.200s cannot be read%s%.300s", b->n > 0 ? b->items[b->sel].name : "nothing",
                     b->n > 0 && b->items[b->sel].err[0] ? ": " : "", b->n > 0 ? b->items[b->sel].err : "");
            return UI_HANDLED | UI_REDRAW;
        }
        b->active = 0;
        return UI_HANDLED | UI_REDRAW | UI_COMPARE;
    case UI_K_ESC:
    case 'o':
    case 'q':
        b->active = 0;
        b->confirm = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_UP:
    case 'k':
        b->confirm = 0;
        b->note[0] = 0;
        b->sel = b->sel > 0 ? b->sel - 1 : 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_DOWN:
    case 'j':
        b->confirm = 0;
        b->note[0] = 0;
        b->sel = b->sel + 1 < b->n ? b->sel + 1 : b->sel;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_PGUP:
    case UI_K_PGDN:
    case UI_K_HOME:
    case UI_K_END: {
        int page = ui_browser_rows(s), to = key == UI_K_HOME ? 0 : key == UI_K_END ? b->n - 1
                                          : b->sel + (key == UI_K_PGDN ? page : -page);
        b->confirm = 0;
        b->note[0] = 0;
        b->sel = to >= b->n ? b->n - 1 : to;
        b->sel = b->sel < 0 ? 0 : b->sel;
        return UI_HANDLED | UI_REDRAW;
    }
    case 'w':
        return UI_HANDLED | UI_REDRAW | UI_SAVE;
    case UI_K_ENTER:
    case '\r':
        if (b->n <= 0)
            return UI_HANDLED;
        if (b->items[b->sel].missing) {
            snprintf(s->msg, sizeof s->msg, "%.500s is no longer there", b->items[b->sel].path);
            return UI_HANDLED | UI_REDRAW;
        }
        if (b->items[b->sel].params < 0) {
            snprintf(s->msg, sizeof s->msg, "cannot open %.200s: %.300s", b->items[b->sel].name,
                     reason_of(&b->items[b->sel]));
            return UI_HANDLED | UI_REDRAW;
        }
        if (s->dirty && !b->confirm) {
            b->confirm = 1;
            snprintf(s->msg, sizeof s->msg, "unsaved rank changes: w saves them, Enter again opens %s without saving",
                     b->items[b->sel].name);
            return UI_HANDLED | UI_REDRAW;
        }
        b->confirm = 0;
        return open_selected(s);
    default: return UI_HANDLED;
    }
}
