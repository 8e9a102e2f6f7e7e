/* live.c — the explorer's worker thread around the engine's incremental evaluator
 * (pipeline.h): requests in, results out, stale work cancelled. */
#include "live.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rankscope/pipeline.h"

#define LIVE_NEWPTS 64

struct live {
    pipe_eval *pe;
    int n_layers;
    char (*label)[48]; /* display names */
    int64_t params_total, macs_total;

    pthread_t th;
    /* the worker's thread CPU clock when it first sees the quit, and when it returns (-1: not yet):
     * the RS_UI_TRACE quit figures */
    double quit_seen_cpu, exit_cpu;
    int th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    /* inbox (under mu) */
    uint64_t live_seq;    /* bumps with every live request */
    int has_req;
    uint64_t req_gen;
    double req_time;
    ui_choice *req;
    uint64_t sweep_seq;
    int sweep_active;     /* points remain */
    int sweep_layer;
    ui_choice sweep_base;
    ui_choice *sweep_cfg;
    int sweep_ranks[UI_MAX_SWEEP], sweep_total, sweep_next;
    int busy;
    /* outbox (under mu) */
    uint64_t pub, polled;
    int have_orig, have_cur;
    eval_result orig, cur;
    uint64_t orig_gen; /* gen the original answers for (the state's gen at start when unfactorized) */
    uint64_t cur_gen;
    int cur_est; /* images cur was estimated on, 0: the whole set */
    int have_orig_est;
    eval_result orig_est; /* the original on the images of a first estimate */
    double cur_seconds, progress;
    char error[RS_ERR_LEN + 16];
    ui_choice *res_for;
    int *res_valid;
    double *w_err, *out_err, *fit_w_err, *fit_out_err;
    pipe_layer_report *steps;
    /* sensitivity: each factorized layer alone, after the live answer and any sweep */
    int n_images;          /* of the data set */
    int sens_pending;      /* sens_cfg still has layers to measure */
    ui_choice *sens_cfg;   /* the configuration of the last live answer */
    int have_ref_est;      /* the original on the estimate subset */
    double ref_est_acc;
    ui_choice *sens_for;
    int *sens_valid, *sens_images;
    double *sens_drop;
    ui_sweep sweep;
    int n_new;
    ui_point newpts[LIVE_NEWPTS];
};

typedef struct cancel_ctx {
    live *lv;
    uint64_t live_seq, sweep_seq;
    int is_sweep;
    int is_orig;     /* the reference evaluation: only quitting cancels it */
    int is_sens;     /* sensitivities: any other work comes first */
} cancel_ctx;

static double thread_cpu(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int is_stale(cancel_ctx *c)
{
    live *lv = c->lv;
    pthread_mutex_lock(&lv->mu);
    int stale = lv->quit || (!c->is_orig && lv->live_seq != c->live_seq) || (lv->has_req && c->is_sweep) ||
                (c->is_sweep && lv->sweep_seq != c->sweep_seq) ||
                (c->is_sens && (lv->has_req || lv->sweep_active));
    if (lv->quit && lv->quit_seen_cpu < 0)
        lv->quit_seen_cpu = thread_cpu(CLOCK_THREAD_CPUTIME_ID);
    pthread_mutex_unlock(&lv->mu);
    return stale;
}

static int on_progress(void *user, double fraction, const char *what)
{
    (void)what;
    cancel_ctx *c = user;
    if (!c->is_sweep && !c->is_sens && fraction >= 0) {
        pthread_mutex_lock(&c->lv->mu);
        c->lv->progress = fraction;
        pthread_mutex_unlock(&c->lv->mu);
    }
    return is_stale(c);
}

static void label_of(live *lv, const ui_choice *cfg, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    static const char *const abbrev[DECOMP_COUNT] = {"-", "svd", "slc", "sp", "cp", "tk"};
    for (int k = 0; k < lv->n_layers; ++k) {
        if (cfg[k].method == DECOMP_NONE)
            continue;
        int w = snprintf(buf + at, len - at, "%s%s:%s%d", at ? " " : "", lv->label[k],
                         abbrev[cfg[k].method], cfg[k].rank);
        if (w < 0 || (size_t)w >= len - at)
            break;
        at += (size_t)w;
    }
    if (!at)
        snprintf(buf, len, "original");
}

static void add_point(live *lv, const ui_choice *cfg, double acc)
{
    int64_t p, mc;
    pipe_eval_costs(lv->pe, cfg, &p, &mc);
    if (lv->n_new >= LIVE_NEWPTS)
        return;
    ui_point *pt = &lv->newpts[lv->n_new++];
    pt->ratio = p > 0 ? (double)lv->params_total / p : 0;
    pt->macs_ratio = mc > 0 ? (double)lv->macs_total / mc : 0;
    pt->acc = acc;
    label_of(lv, cfg, pt->label, sizeof pt->label);
}

/* Weight and output error of each factorized layer of cfg; published per layer. */
static int layer_errors(live *lv, const ui_choice *cfg, cancel_ctx *cc, rs_err *e)
{
    for (int k = 0; k < lv->n_layers; ++k) {
        if (cfg[k].method == DECOMP_NONE)
            continue;
        if (is_stale(cc))
            return RS_CANCELLED;
        pthread_mutex_lock(&lv->mu);
        int have = lv->res_valid[k] && pipe_choice_equal(&lv->res_for[k], &cfg[k]);
        pthread_mutex_unlock(&lv->mu);
        if (have)
            continue;
        pipe_layer_report rep;
        int rc = pipe_eval_layer_report(lv->pe, k, &cfg[k], on_progress, cc, &rep, e);
        if (rc)
            return rc;
        pthread_mutex_lock(&lv->mu);
        lv->steps[k] = rep;
        lv->res_for[k] = cfg[k];
        lv->res_valid[k] = 1;
        lv->w_err[k] = rep.w_err;
        lv->out_err[k] = rep.out_err;
        lv->fit_w_err[k] = rep.fit_w_err;
        lv->fit_out_err[k] = rep.fit_out_err;
        lv->pub++;
        pthread_mutex_unlock(&lv->mu);
    }
    return 0;
}

/* Returns 0 when the accuracy of cfg was published. */
static int do_live(live *lv, const ui_choice *cfg, uint64_t gen, uint64_t seq, double t_req, int is_orig)
{
    cancel_ctx cc = {lv, seq, 0, 0, is_orig, 0};
    rs_err e;
    e.msg[0] = 0;
    eval_result res;
    memset(&res, 0, sizeof res);
    double t0 = rs_now();
    if (!is_orig && pipe_eval_wants_estimate(lv->pe)) {
        /* a net that cannot be cut re-runs whole: a first figure on a subset, shown as such */
        int rc0 = pipe_eval_run_first(lv->pe, cfg, PIPE_ESTIMATE_IMAGES, on_progress, &cc, &res, &e);
        if (rc0 == RS_CANCELLED)
            return rc0;
        if (rc0 == 0) {
            pthread_mutex_lock(&lv->mu);
            lv->cur = res;
            lv->have_cur = 1;
            lv->cur_gen = gen;
            lv->cur_est = res.images;
            lv->cur_seconds = rs_now() - t_req;
            lv->error[0] = 0;
            lv->pub++;
            pthread_mutex_unlock(&lv->mu);
        }
    }
    int rc = pipe_eval_run(lv->pe, cfg, on_progress, &cc, &res, &e);
    double t1 = rs_now();
    if (getenv("RS_UI_TRACE"))
        fprintf(stderr, "live: eval %.3f s (rc %d)\n", t1 - t0, rc);
    pthread_mutex_lock(&lv->mu);
    lv->progress = -1;
    if (rc == 0) {
        if (is_orig) {
            lv->orig = res;
            lv->have_orig = 1;
        }
        lv->cur = res;
        lv->have_cur = 1;
        lv->cur_gen = gen;
        lv->cur_est = 0;
        lv->cur_seconds = rs_now() - t_req;
        lv->error[0] = 0;
        add_point(lv, cfg, res.accuracy);
        lv->busy = lv->has_req; /* the answer is out; the errors below are extra */
        lv->pub++;
    } else if (rc != RS_CANCELLED) {
        snprintf(lv->error, sizeof lv->error, "%s", e.msg);
        lv->cur_gen = gen; /* a failed result is still the answer for this gen */
        lv->pub++;
    }
    pthread_mutex_unlock(&lv->mu);
    /* per-layer errors after the accuracy: they are not what the user waits for */
    if (rc == 0 && layer_errors(lv, cfg, &cc, &e) != 0 && !is_stale(&cc)) {
        pthread_mutex_lock(&lv->mu);
        snprintf(lv->error, sizeof lv->error, "%s", e.msg);
        lv->pub++;
        pthread_mutex_unlock(&lv->mu);
    }
    if (getenv("RS_UI_TRACE"))
        fprintf(stderr, "live: errors %.3f s\n", rs_now() - t1);
    return rc;
}

/* Accuracy with only layer k factorized by ch on the first `images` images, into *acc. */
static int alone_acc(live *lv, int k, const ui_choice *ch, int images, cancel_ctx *cc, double *acc, rs_err *e)
{
    ui_choice *cfg = calloc((size_t)lv->n_layers, sizeof *cfg);
    if (!cfg)
        return rs_fail(e, "out of memory");
    if (k >= 0)
        cfg[k] = *ch;
    eval_result res;
    int rc = pipe_eval_run_first(lv->pe, cfg, images, on_progress, cc, &res, e);
    free(cfg);
    if (rc == 0)
        *acc = res.accuracy;
    return rc;
}

/* The accuracy drop of each factorized layer of lv->sens_cfg alone: first on the slider's
 * estimate subset when the slider estimates (whole-net evaluation on a large set), then on the
 * whole set, each published as it lands. Measured with the evaluator's whole-network path, which
 * leaves the suffix caches of the current configuration alone. Returns RS_CANCELLED when other
 * work arrived (the rest stays pending). */
static int do_sens(live *lv)
{
    cancel_ctx cc = {lv, 0, 0, 0, 0, 1};
    rs_err e;
    e.msg[0] = 0;
    pthread_mutex_lock(&lv->mu);
    cc.live_seq = lv->live_seq;
    ui_choice *cfg = malloc(sizeof *cfg * (size_t)lv->n_layers);
    if (cfg)
        memcpy(cfg, lv->sens_cfg, sizeof *cfg * (size_t)lv->n_layers);
    int have_orig = lv->have_orig;
    double orig_acc = lv->orig.accuracy;
    pthread_mutex_unlock(&lv->mu);
    if (!cfg)
        return rs_fail(&e, "out of memory");
    int rc = 0;
    int est = pipe_eval_wants_estimate(lv->pe) && lv->n_images > PIPE_ESTIMATE_IMAGES;
    for (int pass = est ? 0 : 1; pass < 2 && rc == 0 && have_orig; ++pass) {
        int images = pass == 0 ? PIPE_ESTIMATE_IMAGES : lv->n_images;
        double ref = orig_acc;
        if (pass == 0) {
            if (!lv->have_ref_est && (rc = alone_acc(lv, -1, NULL, images, &cc, &lv->ref_est_acc, &e)) == 0)
                lv->have_ref_est = 1;
            ref = lv->ref_est_acc;
        }
        for (int k = 0; k < lv->n_layers && rc == 0; ++k) {
            if (cfg[k].method == DECOMP_NONE)
                continue;
            pthread_mutex_lock(&lv->mu);
            int have = lv->sens_valid[k] && pipe_choice_equal(&lv->sens_for[k], &cfg[k]) &&
                       (pass == 0 || lv->sens_images[k] == 0);
            pthread_mutex_unlock(&lv->mu);
            if (have)
                continue;
            double acc = 0;
            if ((rc = alone_acc(lv, k, &cfg[k], images, &cc, &acc, &e)) != 0)
                break;
            pthread_mutex_lock(&lv->mu);
            lv->sens_for[k] = cfg[k];
            lv->sens_valid[k] = 1;
            lv->sens_images[k] = pass == 0 ? images : 0;
            lv->sens_drop[k] = (ref - acc) * 100.0;
            lv->pub++;
            pthread_mutex_unlock(&lv->mu);
        }
    }
    free(cfg);
    if (rc != 0 && rc != RS_CANCELLED) {
        pthread_mutex_lock(&lv->mu);
        snprintf(lv->error, sizeof lv->error, "sensitivity: %.480s", e.msg);
        lv->pub++;
        pthread_mutex_unlock(&lv->mu);
    }
    return rc;
}

/* One point of the sweep: layer L at base method with rank r, the rest as in sweep_cfg. */
static void do_sweep_point(live *lv, int L, ui_choice ch, const ui_choice *cfg, uint64_t seq,
                           uint64_t live_seq)
{
    cancel_ctx cc = {lv, live_seq, seq, 1, 0, 0};
    rs_err e;
    eval_result res;
    int rc = pipe_eval_swap(lv->pe, cfg, L, &ch, on_progress, &cc, &res, &e);
    pthread_mutex_lock(&lv->mu);
    if (lv->sweep_seq == seq) {
        if (rc == 0) {
            ui_sweep *sw = &lv->sweep;
            if (sw->n < UI_MAX_SWEEP) {
                int i = sw->n++;
                sw->rank[i] = ch.rank;
                sw->acc[i] = res.accuracy;
                ui_choice *tmp = malloc(sizeof(ui_choice) * (size_t)lv->n_layers);
                if (tmp) {
                    memcpy(tmp, cfg, sizeof(ui_choice) * (size_t)lv->n_layers);
                    tmp[L] = ch;
                    pipe_eval_costs(lv->pe, tmp, &sw->params[i], &sw->macs[i]);
                    add_point(lv, tmp, res.accuracy);
                    free(tmp);
                }
            }
            lv->sweep_next++;
            if (lv->sweep_next >= lv->sweep_total) {
                lv->sweep_active = 0;
                sw->running = 0;
            }
        } else if (rc != RS_CANCELLED) {
            snprintf(lv->error, sizeof lv->error, "sweep: %.480s", e.msg);
            lv->sweep_active = 0;
            lv->sweep.running = 0;
        }
        lv->pub++;
    }
    pthread_mutex_unlock(&lv->mu);
}

static void *worker(void *arg)
{
    live *lv = arg;
    ui_choice *cfg = calloc((size_t)lv->n_layers + 1, sizeof *cfg);
    if (!cfg)
        return NULL;
    /* the original first: the reference accuracy, and warm caches */
    pthread_mutex_lock(&lv->mu);
    uint64_t seq = lv->live_seq;
    lv->busy = 1;
    pthread_mutex_unlock(&lv->mu);
    if (do_live(lv, cfg, lv->orig_gen, seq, rs_now(), 1) == 0 && pipe_eval_wants_estimate(lv->pe)) {
        /* what a first estimate is compared with: the original on the same images */
        cancel_ctx cc = {lv, seq, 0, 0, 1, 0};
        eval_result est;
        rs_err e;
        if (pipe_eval_run_first(lv->pe, cfg, PIPE_ESTIMATE_IMAGES, on_progress, &cc, &est, &e) == 0) {
            pthread_mutex_lock(&lv->mu);
            lv->orig_est = est;
            lv->have_orig_est = 1;
            lv->pub++;
            pthread_mutex_unlock(&lv->mu);
        }
    }
    pthread_mutex_lock(&lv->mu);
    lv->busy = 0;
    for (;;) {
        while (!lv->quit && !lv->has_req && !lv->sweep_active && !lv->sens_pending)
            pthread_cond_wait(&lv->cv, &lv->mu);
        if (lv->quit)
            break;
        if (lv->has_req) {
            memcpy(cfg, lv->req, sizeof *cfg * (size_t)lv->n_layers);
            uint64_t gen = lv->req_gen, s = lv->live_seq;
            double t = lv->req_time;
            lv->has_req = 0;
            lv->busy = 1;
            lv->progress = 0;
            pthread_mutex_unlock(&lv->mu);
            int rc = do_live(lv, cfg, gen, s, t, 0);
            pthread_mutex_lock(&lv->mu);
            lv->busy = lv->has_req;
            if (rc == 0 && !lv->has_req) {
                memcpy(lv->sens_cfg, cfg, sizeof *cfg * (size_t)lv->n_layers);
                lv->sens_pending = 1;
            }
            continue;
        }
        if (!lv->sweep_active) { /* sensitivities: the lowest priority */
            pthread_mutex_unlock(&lv->mu);
            int rc = do_sens(lv);
            pthread_mutex_lock(&lv->mu);
            if (rc != RS_CANCELLED)
                lv->sens_pending = 0;
            continue;
        }
        /* sweep */
        int L = lv->sweep_layer;
        ui_choice ch = lv->sweep_base;
        ch.rank = lv->sweep_ranks[lv->sweep_next];
        if (ch.method == DECOMP_TUCKER2)
            ch.rank2 = 0;
        memcpy(cfg, lv->sweep_cfg, sizeof *cfg * (size_t)lv->n_layers);
        uint64_t s = lv->sweep_seq, ls = lv->live_seq;
        pthread_mutex_unlock(&lv->mu);
        do_sweep_point(lv, L, ch, cfg, s, ls);
        pthread_mutex_lock(&lv->mu);
    }
    pthread_mutex_unlock(&lv->mu);
    free(cfg);
    lv->exit_cpu = thread_cpu(CLOCK_THREAD_CPUTIME_ID);
    return NULL;
}

/* ---- public --------------------------------------------------------------------------------- */

live *live_start(const rs_model *m, const cifar10_set *data, const ui_state *s, rs_err *e)
{
    live *lv = calloc(1, sizeof *lv);
    if (!lv) {
        rs_fail(e, "out of memory");
        return NULL;
    }
    if (!(lv->pe = pipe_eval_alloc(m, data, e))) {
        free(lv);
        return NULL;
    }
    if (pipe_eval_layers(lv->pe) != s->n_layers) {
        pipe_eval_free(lv->pe);
        free(lv);
        rs_fail(e, "the explorer's layers do not match the model's");
        return NULL;
    }
    lv->n_layers = s->n_layers;
    lv->n_images = data->n;
    size_t nl = (size_t)s->n_layers + 1;
    lv->label = calloc(nl, sizeof *lv->label);
    lv->req = calloc(nl, sizeof *lv->req);
    lv->sweep_cfg = calloc(nl, sizeof *lv->sweep_cfg);
    lv->res_for = calloc(nl, sizeof *lv->res_for);
    lv->res_valid = calloc(nl, sizeof *lv->res_valid);
    lv->w_err = calloc(nl, sizeof *lv->w_err);
    lv->out_err = calloc(nl, sizeof *lv->out_err);
    lv->fit_w_err = calloc(nl, sizeof *lv->fit_w_err);
    lv->fit_out_err = calloc(nl, sizeof *lv->fit_out_err);
    lv->steps = calloc(nl, sizeof *lv->steps);
    lv->sens_cfg = calloc(nl, sizeof *lv->sens_cfg);
    lv->sens_for = calloc(nl, sizeof *lv->sens_for);
    lv->sens_valid = calloc(nl, sizeof *lv->sens_valid);
    lv->sens_images = calloc(nl, sizeof *lv->sens_images);
    lv->sens_drop = calloc(nl, sizeof *lv->sens_drop);
    if (!lv->label || !lv->req || !lv->sweep_cfg || !lv->res_for || !lv->res_valid || !lv->w_err ||
        !lv->out_err || !lv->fit_w_err || !lv->fit_out_err || !lv->steps || !lv->sens_cfg || !lv->sens_for ||
        !lv->sens_valid || !lv->sens_images || !lv->sens_drop) {
        live_stop(lv);
        rs_fail(e, "out of memory");
        return NULL;
    }
    for (int k = 0; k < s->n_layers; ++k)
        snprintf(lv->label[k], sizeof lv->label[k], "%s", s->layers[k].name);
    model_totals(m, &lv->params_total, &lv->macs_total);
    lv->progress = 0;
    lv->quit_seen_cpu = -1;
    lv->sweep.layer = -1;
    lv->orig_gen = s->gen;
    for (int k = 0; k < s->n_layers; ++k)
        if (s->layers[k].cur.method != DECOMP_NONE)
            lv->orig_gen = 0; /* started from a plan: the original is not the current answer */
    pthread_mutex_init(&lv->mu, NULL);
    pthread_cond_init(&lv->cv, NULL);
    if (pthread_create(&lv->th, NULL, worker, lv)) {
        pthread_mutex_destroy(&lv->mu);
        pthread_cond_destroy(&lv->cv);
        live_stop(lv);
        rs_fail(e, "cannot start the evaluation thread");
        return NULL;
    }
    lv->th_started = 1;
    return lv;
}

void live_stop(live *lv)
{
    if (!lv)
        return;
    if (lv->th_started) {
        /* what quitting costs: the worker's CPU from here to its end (one batch of images at
         * most: a CPU clock, so a loaded machine does not stretch it) and the wall time */
        clockid_t cid;
        double t0 = rs_now(), cpu0 = pthread_getcpuclockid(lv->th, &cid) ? -1 : thread_cpu(cid);
        pthread_mutex_lock(&lv->mu);
        lv->quit = 1;
        pthread_cond_broadcast(&lv->cv);
        pthread_mutex_unlock(&lv->mu);
        pthread_join(lv->th, NULL);
        /* how long quitting waited for the worker to see the cancel (tests/e2e_tui.sh bounds it) */
        if (getenv("RS_UI_TRACE"))
            fprintf(stderr, "live: stop waited %.3f s, worker CPU %.3f s to see it, %.3f s to end\n", rs_now() - t0,
                    cpu0 < 0 || lv->quit_seen_cpu < 0 ? -1.0 : lv->quit_seen_cpu - cpu0,
                    cpu0 < 0 ? -1.0 : lv->exit_cpu - cpu0);
        pthread_mutex_destroy(&lv->mu);
        pthread_cond_destroy(&lv->cv);
    }
    pipe_eval_free(lv->pe);
    free(lv->label);
    free(lv->req);
    free(lv->sweep_cfg);
    free(lv->res_for);
    free(lv->res_valid);
    free(lv->w_err);
    free(lv->out_err);
    free(lv->fit_w_err);
    free(lv->fit_out_err);
    free(lv->steps);
    free(lv->sens_cfg);
    free(lv->sens_for);
    free(lv->sens_valid);
    free(lv->sens_images);
    free(lv->sens_drop);
    free(lv);
}

void live_request(live *lv, const ui_state *s)
{
    pthread_mutex_lock(&lv->mu);
    for (int k = 0; k < lv->n_layers; ++k)
        lv->req[k] = s->layers[k].cur;
    lv->req_gen = s->gen;
    lv->req_time = rs_now();
    lv->has_req = 1;
    lv->busy = 1;
    lv->live_seq++;
    /* a sweep run with other layers as they were is out of date */
    if (lv->sweep_active || lv->sweep.n) {
        int same = 1;
        for (int k = 0; k < lv->n_layers; ++k)
            if (k != lv->sweep_layer && !pipe_choice_equal(&lv->sweep_cfg[k], &lv->req[k]))
                same = 0;
        if (!same) {
            lv->sweep_active = 0;
            lv->sweep.running = 0;
            lv->sweep.n = 0;
            lv->sweep.layer = -1;
            lv->sweep_seq++;
            lv->pub++;
        }
    }
    pthread_cond_broadcast(&lv->cv);
    pthread_mutex_unlock(&lv->mu);
}

void live_request_sweep(live *lv, const ui_state *s)
{
    if (s->n_layers <= 0)
        return;
    const ui_layer *l = &s->layers[s->sel];
    ui_choice base = l->cur;
    if (base.method == DECOMP_NONE)
        base.method = ui_preferred_method(l);
    pthread_mutex_lock(&lv->mu);
    lv->sweep_seq++;
    memset(&lv->sweep, 0, sizeof lv->sweep);
    lv->sweep.layer = -1;
    lv->sweep_active = 0;
    if (base.method != DECOMP_NONE) {
        int max = l->mi[base.method].max_rank;
        int n = 0;
        /* every rank when few, else a spread that is dense at the low end where accuracy moves */
        if (max <= UI_MAX_SWEEP / 2) {
            for (int r = 1; r <= max; ++r)
                lv->sweep_ranks[n++] = r;
        } else {
            int want = UI_MAX_SWEEP / 2;
            int last = 0;
            for (int i = 0; i < want; ++i) {
                double t = (double)i / (want - 1);
                int r = 1 + (int)(t * t * (max - 1) + 0.5);
                if (r > last)
                    lv->sweep_ranks[n++] = last = r;
            }
        }
        lv->sweep_total = n;
        lv->sweep_next = 0;
        lv->sweep_layer = s->sel;
        lv->sweep_base = base;
        for (int k = 0; k < lv->n_layers; ++k)
            lv->sweep_cfg[k] = s->layers[k].cur;
        lv->sweep.layer = s->sel;
        lv->sweep.base = base;
        lv->sweep.total = n;
        lv->sweep.running = n > 0;
        lv->sweep.cfg_gen = s->gen;
        lv->sweep_active = n > 0;
    }
    lv->pub++;
    pthread_cond_broadcast(&lv->cv);
    pthread_mutex_unlock(&lv->mu);
}

int live_poll(live *lv, ui_state *s)
{
    pthread_mutex_lock(&lv->mu);
    int changed = lv->pub != lv->polled;
    double prog = lv->busy ? (lv->progress < 0 ? 0 : lv->progress) : -1;
    if (prog != s->eval_progress)
        changed = 1;
    s->eval_progress = prog;
    if (lv->pub != lv->polled) {
        lv->polled = lv->pub;
        if (lv->have_orig) {
            s->orig = lv->orig;
            s->have_orig = 1;
        }
        if (lv->have_cur) {
            s->cur = lv->cur;
            s->have_cur = 1;
        }
        s->cur_gen = lv->cur_gen;
        s->cur_est_images = lv->cur_est;
        s->have_orig_est = lv->have_orig_est;
        s->orig_est = lv->orig_est;
        s->eval_seconds = lv->cur_seconds;
        snprintf(s->eval_error, sizeof s->eval_error, "%s", lv->error);
        for (int k = 0; k < lv->n_layers && k < s->n_layers; ++k) {
            ui_layer *l = &s->layers[k];
            l->res_valid = lv->res_valid[k];
            l->res_for = lv->res_for[k];
            l->w_err = lv->w_err[k];
            l->out_err = lv->out_err[k];
            l->fit_w_err = lv->fit_w_err[k];
            l->fit_out_err = lv->fit_out_err[k];
            l->n_steps = lv->steps[k].n_steps;
            memcpy(l->step_text, lv->steps[k].step_text, sizeof l->step_text);
            memcpy(l->step_params, lv->steps[k].step_params, sizeof l->step_params);
            memcpy(l->step_macs, lv->steps[k].step_macs, sizeof l->step_macs);
            l->sens_for = lv->sens_for[k];
            l->sens_valid = lv->sens_valid[k];
            l->sens_images = lv->sens_images[k];
            l->sens_drop = lv->sens_drop[k];
        }
        if (s->view.sort == UI_SORT_ERROR || s->view.sort == UI_SORT_SENS) /* the measured order */
            ui_view_update(s);
        s->sweep = lv->sweep;
        for (int i = 0; i < lv->n_new; ++i)
            ui_history_add(s, lv->newpts[i].ratio, lv->newpts[i].macs_ratio, lv->newpts[i].acc,
                           lv->newpts[i].label);
        lv->n_new = 0;
    }
    pthread_mutex_unlock(&lv->mu);
    return changed;
}

int live_busy(live *lv)
{
    pthread_mutex_lock(&lv->mu);
    int b = lv->busy || lv->has_req;
    pthread_mutex_unlock(&lv->mu);
    return b;
}

int live_cached(const live *lv)
{
    return pipe_eval_cached(lv->pe);
}
