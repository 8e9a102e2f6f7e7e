/* browser.c — the model browser (`o`): the zoo catalogue, the shipped net and the .onnx files of
 * the current directory, each with params, MACs and test accuracy when known. ui_browser_scan
 * reads files (the caller runs it, not a key handler); ui_browser_key is a pure transition. */
#include "state.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/onnx.h"
#include "rankscope/zoo.h"

static void add(ui_browser_state *b, const char *name, const char *path, int test_correct)
{
    if (b->n >= UI_BROWSE_MAX)
        return;
    char real[PATH_MAX];
    if (!realpath(path, real))
        snprintf(real, sizeof real, "%s", path);
    for (int i = 0; i < b->n; ++i) { /* the same file under two names: listed once */
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
    rs_err e;
    rs_model *m = onnx_load(path, &e);
    if (m) {
        model_totals(m, &it->params, &it->macs);
        model_free(m);
    } else {
        it->params = it->macs = -1;
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void ui_browser_scan(ui_state *s, const char *dir)
{
    ui_browser_state *b = &s->browse;
    b->n = b->sel = 0;
    char cat[4096];
    if (rs_find_asset("zoo/zoo.tsv", cat, sizeof cat) == 0) {
        zoo_entry *z = NULL;
        int n = 0;
        rs_err e;
        if (zoo_catalog_read(cat, &z, &n, &e) == 0)
            for (int i = 0; i < n; ++i) {
                char name[80];
                snprintf(name, sizeof name, "zoo: %s", z[i].name);
                add(b, name, z[i].path, z[i].test_correct);
            }
        free(z);
    }
    char shipped[4096];
    if (rs_find_asset(RS_SHIPPED_MODEL, shipped, sizeof shipped) == 0)
        add(b, "shipped: " RS_SHIPPED_MODEL, shipped, -1);
    DIR *d = opendir(dir && *dir ? dir : ".");
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
                snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ".", names[i]);
                add(b, names[i], path, -1);
            }
            free(names[i]);
        }
    }
}

unsigned ui_browser_key(ui_state *s, int key)
{
    ui_browser_state *b = &s->browse;
    switch (key) {
    case UI_K_ESC:
    case 'o':
    case 'q':
        b->active = 0;
        b->confirm = 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_UP:
    case 'k':
        b->confirm = 0;
        b->sel = b->sel > 0 ? b->sel - 1 : 0;
        return UI_HANDLED | UI_REDRAW;
    case UI_K_DOWN:
    case 'j':
        b->confirm = 0;
        b->sel = b->sel + 1 < b->n ? b->sel + 1 : b->sel;
        return UI_HANDLED | UI_REDRAW;
    case 'w':
        return UI_HANDLED | UI_REDRAW | UI_SAVE;
    case UI_K_ENTER:
    case '\r':
        if (b->n <= 0)
            return UI_HANDLED;
        if (s->dirty && !b->confirm) {
            b->confirm = 1;
            snprintf(s->msg, sizeof s->msg, "unsaved rank changes: w saves them, Enter again opens %s without saving",
                     b->items[b->sel].name);
            return UI_HANDLED | UI_REDRAW;
        }
        b->confirm = 0;
        return UI_HANDLED | UI_REDRAW | UI_OPEN;
    default: return UI_HANDLED;
    }
}
