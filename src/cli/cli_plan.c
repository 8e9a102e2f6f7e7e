/* cli_plan.c — --plan / --ranks handling shared by eval, info and decompose. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "rankscope/cifar10.h"
#include "rankscope/fit.h"
#include "rankscope/pipeline.h"
#include "rankscope/search.h"
#include "rankscope/plan.h"

int cli_parse_fit(const char *s, cli_fit *f)
{
    rs_err e = {{0}};
    fit_mode mode;
    if (fit_mode_parse(s, &mode, &e) != 0) {
        cli_error("--fit: %s", e.msg);
        return -1;
    }
    f->outputs = mode != FIT_WEIGHTS;
    f->layers_only = mode == FIT_LAYERS;
    return 0;
}

int cli_parse_calib(const char *s, cli_fit *f)
{
    long v;
    if (cli_parse_int("--calib-images", s, 1, CIFAR10_TRAIN_SPLIT, &v) != 0)
        return -1;
    f->calib = (int)v;
    return 0;
}

float *cli_fit_calibration(const cli_fit *f, int *n_out, int quiet)
{
    rs_err e = {{0}};
    int n = 0;
    cifar10_set *tr = cifar10_load_split(f->data, "train", NULL, &e);
    if (!tr) {
        cli_error("--fit outputs needs CIFAR-10 training images for calibration: %s", e.msg);
        return NULL;
    }
    float *x = pipe_fit_calibration(tr, f->calib, &n, &e);
    if (!x)
        cli_error("%s", e.msg);
    cifar10_free(tr);
    if (x && !quiet)
        fprintf(stderr, "rankscope: fitting factors to layer outputs on the first %d training images "
                        "(sequential)\n", n);
    *n_out = n;
    return x;
}

int cli_fit_search(const cli_args *a, search_options *so, float **calib)
{
    *calib = NULL;
    if (!a->fit.outputs)
        return 0;
    cli_fit f = a->fit;
    f.data = a->data;
    if (!(*calib = cli_fit_calibration(&f, &so->fit_n, a->json)))
        return -1;
    so->fit_calib = *calib;
    so->fit_layers_only = a->fit.layers_only;
    return 0;
}

/* The data-aware path: calibration images from the training split, fit_plan_apply. */
static int apply_fitted(rs_model *m, const rs_plan *p, const cli_fit *f, int quiet)
{
    rs_err e = {{0}};
    int n = 0;
    float *x = cli_fit_calibration(f, &n, quiet);
    if (!x)
        return -1;
    fit_options fo;
    fit_default_options(&fo);
    if (f->layers_only)
        fo.refine_epochs = 0;
    int rc = fit_plan_apply(m, p, x, n, &fo, NULL, &e);
    if (rc != 0)
        cli_error("%s", e.msg);
    free(x);
    return rc;
}

int cli_apply_plan(rs_model *m, const char *plan_file, const char *ranks_spec)
{
    return cli_apply_plan_fit(m, plan_file, ranks_spec, NULL, 1);
}

int cli_apply_plan_fit(rs_model *m, const char *plan_file, const char *ranks_spec, const cli_fit *f, int quiet)
{
    if (!plan_file && !ranks_spec)
        return 0;
    rs_err e = {{0}};
    rs_plan *p = plan_file ? plan_load(plan_file, &e) : plan_alloc();
    if (!p) {
        cli_error("%s", plan_file ? e.msg : "out of memory");
        return -1;
    }
    /* --ranks entries override the file's entries for the same layer */
    int rc = ranks_spec ? plan_parse_spec(p, ranks_spec, &e) : 0;
    if (rc == 0 && f && f->outputs) {
        rc = apply_fitted(m, p, f, quiet);
        plan_free(p);
        return rc;
    }
    if (rc == 0)
        rc = plan_apply(m, p, NULL, NULL, &e);
    if (rc != 0)
        cli_error("%s", e.msg);
    plan_free(p);
    return rc;
}
