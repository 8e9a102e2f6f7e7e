/* bench_ref.c — ONNX Runtime and PyTorch run as child processes on the images and the graph
 * rankscope measures, for the ratios `rankscope bench` prints (see bench_ref.h). */
#define _GNU_SOURCE /* mkstemps */
#include "bench_ref.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rankscope/fileio.h"
#include "rankscope/onnx.h"
#include "rankscope_config.h"

enum { OUT_MAX = 1 << 16 };

static const char *source_root(void)
{
    const char *env = getenv("RANKSCOPE_SOURCE");
    return env && *env ? env : RS_SOURCE_ROOT;
}

/* dir/rel when it exists, else -1 with the note set. */
static int find_in_source(const char *rel, char *out, size_t len, bench_ref *r)
{
    struct stat st;
    if ((size_t)snprintf(out, len, "%s/%s", source_root(), rel) < len && stat(out, &st) == 0)
        return 0;
    snprintf(r->note, sizeof r->note, "%s not found in the source tree %s (set RANKSCOPE_SOURCE)", rel,
             source_root());
    return -1;
}

/* A temporary file name under $TMPDIR (or /tmp) with the suffix; the file is created (fd closed). */
static int temp_file(const char *suffix, char *out, size_t len, bench_ref *r)
{
    const char *dir = getenv("TMPDIR");
    snprintf(out, len, "%s/rankscope-bench-XXXXXX%s", dir && *dir ? dir : "/tmp", suffix);
    int fd = mkstemps(out, (int)strlen(suffix));
    if (fd < 0) {
        snprintf(r->note, sizeof r->note, "cannot create a temporary file in %s: %s", dir && *dir ? dir : "/tmp",
                 strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* The first n images of s as CIFAR-10 records (label + 3,072 CHW bytes). */
static int write_images(const cifar10_set *s, int n, const char *path, bench_ref *r)
{
    const size_t rec = CIFAR10_PIXELS + 1;
    uint8_t *buf = malloc((size_t)n * rec);
    if (!buf) {
        snprintf(r->note, sizeof r->note, "out of memory for %d images", n);
        return -1;
    }
    for (int i = 0; i < n; ++i) {
        buf[(size_t)i * rec] = s->labels[i];
        memcpy(buf + (size_t)i * rec + 1, s->pixels + (size_t)i * CIFAR10_PIXELS, CIFAR10_PIXELS);
    }
    rs_err e = {{0}};
    int rc = fileio_write_atomic(path, buf, (size_t)n * rec, &e);
    if (rc)
        snprintf(r->note, sizeof r->note, "cannot write the images: %.200s", e.msg);
    free(buf);
    return rc;
}

/* Run argv (argv[0] looked up on PATH), stdout and stderr into out; the exit status, or -1. */
static int run_capture(char *const argv[], char *out, size_t len)
{
    int fds[2];
    out[0] = 0;
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]), close(fds[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    for (;;) {
        char tmp[4096];
        ssize_t k = read(fds[0], tmp, sizeof tmp);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        size_t keep = got + (size_t)k < len - 1 ? (size_t)k : len - 1 - got;
        memcpy(out + got, tmp, keep);
        got += keep;
    }
    out[got] = 0;
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The number after "key": in the JSON line of out; NAN when absent. */
static double json_number(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static void json_text(const char *json, const char *key, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    out[0] = 0;
    if (!p)
        return;
    p += strlen(pat);
    while (*p == ' ')
        ++p;
    if (*p++ != '"')
        return;
    size_t k = 0;
    while (p[k] && p[k] != '"' && k + 1 < len)
        out[k] = p[k], ++k;
    out[k] = 0;
}

/* Run the script; on success the JSON line's figures go into r, else r->note gets the reason. */
static int run_script(char *const argv[], const char *tool, bench_ref *r)
{
    char *out = malloc(OUT_MAX);
    if (!out) {
        snprintf(r->note, sizeof r->note, "out of memory");
        return -1;
    }
    int st = run_capture(argv, out, OUT_MAX);
    const char *json = NULL;
    for (const char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (*line == '{')
            json = line;
    int rc = 0;
    if (st == 0 && json) {
        r->seconds = json_number(json, "seconds");
        r->seconds_median = json_number(json, "seconds_median");
        r->images_per_second = json_number(json, "images_per_second");
        r->accuracy = json_number(json, "accuracy");
        r->cpu_seconds = json_number(json, "cpu_seconds");
        json_text(json, "runtime", r->runtime, sizeof r->runtime);
        char twin[64];
        json_text(json, "twin", twin, sizeof twin);
        size_t l = strlen(r->runtime);
        if (*twin && l + 4 < sizeof r->runtime)
            snprintf(r->runtime + l, sizeof r->runtime - l, ", %s", twin);
        if (!(r->seconds > 0))
            rc = -1, snprintf(r->note, sizeof r->note, "%s printed no time", tool);
    } else {
        /* the last non-empty line says why */
        size_t n = strlen(out);
        while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
            out[--n] = 0;
        const char *last = strrchr(out, '\n');
        last = last ? last + 1 : out;
        snprintf(r->note, sizeof r->note, "%s failed (exit %d)%s%.180s", tool, st, *last ? ": " : "", last);
        rc = -1;
    }
    free(out);
    return rc;
}

static void ref_init(bench_ref *r)
{
    memset(r, 0, sizeof *r);
    r->seconds = r->seconds_median = r->images_per_second = r->accuracy = r->cpu_seconds = NAN;
}

void bench_ref_skip(bench_ref *r, const char *why)
{
    ref_init(r);
    snprintf(r->note, sizeof r->note, "%s", why);
}

int bench_ref_ort(const char *model_path, const cifar10_set *s, int threads, int reps, bench_ref *r)
{
    ref_init(r);
    char script[1200], mod[1200], imgs[1200];
    if (find_in_source("tests/bench_ort.js", script, sizeof script, r))
        return -1;
    if (find_in_source("tests/node_modules/onnxruntime-node", mod, sizeof mod, r)) {
        snprintf(r->note, sizeof r->note, "ONNX Runtime is not installed in %s/tests (cd tests && npm install "
                 "--ignore-scripts)", source_root());
        return -1;
    }
    if (temp_file(".bin", imgs, sizeof imgs, r))
        return -1;
    int rc = write_images(s, s->n, imgs, r);
    if (rc == 0) {
        const char *node = getenv("RANKSCOPE_NODE");
        char th[16], rp[16];
        snprintf(th, sizeof th, "%d", threads);
        snprintf(rp, sizeof rp, "%d", reps);
        char *argv[] = {(char *)(node && *node ? node : "node"), script, (char *)model_path, "--images", imgs,
                        "--threads", th, "--reps", rp, "--json", NULL};
        rc = run_script(argv, "ONNX Runtime (node tests/bench_ort.js)", r);
    }
    unlink(imgs);
    return rc;
}

int bench_ref_torch(const rs_model *m, const cifar10_set *s, int n, int threads, bench_ref *r)
{
    ref_init(r);
    char script[1200], imgs[1200], net[1200];
    if (find_in_source("tools/bench_torch_train.py", script, sizeof script, r))
        return -1;
    if (temp_file(".bin", imgs, sizeof imgs, r))
        return -1;
    int rc = write_images(s, n, imgs, r);
    if (rc == 0 && (rc = temp_file(".onnx", net, sizeof net, r)) == 0) {
        rs_err e = {{0}};
        if ((rc = onnx_save(m, net, &e)) != 0)
            snprintf(r->note, sizeof r->note, "cannot save the network for PyTorch: %.200s", e.msg);
        if (rc == 0) {
            const char *py = getenv("RANKSCOPE_PYTHON");
            char th[16];
            snprintf(th, sizeof th, "%d", threads);
            char *argv[] = {(char *)(py && *py ? py : "/usr/bin/python3"), script, net, "--images", imgs,
                            "--threads", th, "--json", NULL};
            rc = run_script(argv, "PyTorch (tools/bench_torch_train.py)", r);
        }
        unlink(net);
    }
    unlink(imgs);
    return rc;
}
