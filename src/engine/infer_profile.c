/* infer_profile.c — CPU time per graph node of the compiled model (infer.h: infer_profile).
 *
 * Why it is shaped like this:
 *  - It times the executor that evaluation uses (infer_run_step on the compiled steps), not a
 *    node-by-node reference: a user reading "conv 40 %" wants the time the real forward spends.
 *    The price is that fused nodes have no time of their own; they point at the step that runs
 *    them.
 *  - One thread and the thread's CPU clock: per-step times of a parallel run would measure the
 *    slowest worker, and wall time on a shared machine counts other processes' turns.
 *  - Which step runs a fused node is not recorded by the compiler; it is the latest step among
 *    the producers of the node's activation inputs (fusion only ever pulls in consumers of the
 *    step's output, and the second addend of a fused residual Add was computed earlier).
 */
#include "rankscope/infer.h"

#include <stdlib.h>
#include <time.h>

#include "infer_internal.h"

static double thread_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

void infer_prof_free(infer_prof *p)
{
    if (!p)
        return;
    free(p->us);
    free(p->kind);
    free(p->fused_into);
    free(p);
}

/* kind and fused_into of every node, from the steps' head nodes. */
static int map_nodes(const rs_model *m, const infer_ctx *c, infer_prof *p, rs_err *e)
{
    int *step_of = malloc((size_t)(m->n_nodes ? m->n_nodes : 1) * sizeof(int));
    int *producer = malloc((size_t)(m->n_values ? m->n_values : 1) * sizeof(int));
    if (!step_of || !producer) {
        free(step_of);
        free(producer);
        return rs_fail(e, "infer_profile: out of memory");
    }
    for (int i = 0; i < m->n_nodes; ++i)
        step_of[i] = -1;
    for (int v = 0; v < m->n_values; ++v)
        producer[v] = -1;
    for (int i = 0; i < m->n_nodes; ++i)
        for (int k = 0; k < m->nodes[i].n_out; ++k)
            if (m->nodes[i].out[k] >= 0)
                producer[m->nodes[i].out[k]] = i;
    for (int si = 0; si < c->n_steps; ++si) {
        int ni = c->steps[si].node;
        step_of[ni] = si;
        p->kind[ni] = c->steps[si].kind == ST_ALIAS ? INFER_NODE_VIEW : INFER_NODE_STEP;
    }
    int rc = 0;
    for (int i = 0; i < m->n_nodes && rc == 0; ++i) { /* nodes are in topological order */
        if (step_of[i] >= 0)
            continue;
        const rs_node *nd = &m->nodes[i];
        int best = -1;
        for (int k = 0; k < nd->n_in; ++k) {
            int v = nd->in[k];
            if (v >= 0 && !m->values[v].is_const && producer[v] >= 0 && step_of[producer[v]] > best)
                best = step_of[producer[v]];
        }
        if (best < 0) {
            rc = rs_fail(e, "infer_profile: node %s is in no compiled step", nd->name ? nd->name : "?");
            break;
        }
        step_of[i] = best;
        p->kind[i] = INFER_NODE_FUSED;
        p->fused_into[i] = c->steps[best].node;
    }
    free(step_of);
    free(producer);
    return rc;
}

static int report(rs_progress_fn progress, void *user, double fraction)
{
    return progress && progress(user, fraction, "timing every node");
}

int infer_profile(const rs_model *m, const float *x, const uint8_t *xu, int n, rs_progress_fn progress,
                  void *user, infer_prof **out, rs_err *e)
{
    if (out)
        *out = NULL;
    if (!m || !out || n <= 0 || (!x) == (!xu))
        return rs_fail(e, "infer_profile: invalid arguments (n = %d; give exactly one of x and xu)", n);
    infer_ctx *c = infer_ctx_new(m, NULL, 1, 0, -1, e);
    if (!c)
        return -1;
    if (xu && c->in_features != 3072) {
        infer_free(c);
        return rs_fail(e, "infer_profile: byte input is CIFAR-10 (3072 per image); the model takes %d",
                       c->in_features);
    }
    infer_prof *p = calloc(1, sizeof *p);
    double *step_ns = calloc((size_t)c->n_steps + 1, sizeof(double));
    float *sink = NULL;
    int rc = 0;
    if (p) {
        p->n_nodes = m->n_nodes;
        p->n_images = n;
        p->us = calloc((size_t)m->n_nodes + 1, sizeof(double));
        p->kind = calloc((size_t)m->n_nodes + 1, sizeof(int));
        p->fused_into = malloc(((size_t)m->n_nodes + 1) * sizeof(int));
    }
    if (!p || !step_ns || !p->us || !p->kind || !p->fused_into) {
        rc = rs_fail(e, "infer_profile: out of memory");
        goto done;
    }
    for (int i = 0; i < m->n_nodes; ++i)
        p->fused_into[i] = -1;
    if ((rc = map_nodes(m, c, p, e)) != 0)
        goto done;
    worker *w = &c->workers[0];
    const int tile = c->tile, ntiles = (n + tile - 1) / tile;
    /* warm-up: the first tile once, untimed (page faults, cold caches, lazy allocations) */
    infer_load_tile(c, w, x, xu, 0, n < tile ? n : tile);
    for (int si = 0; si < c->n_steps; ++si)
        infer_run_step(c, w, si, n < tile ? n : tile);
    for (int t = 0; t < ntiles; ++t) {
        int first = t * tile, nt = n - first < tile ? n - first : tile;
        infer_load_tile(c, w, x, xu, first, nt);
        for (int si = 0; si < c->n_steps; ++si) {
            if (c->steps[si].kind == ST_ALIAS) /* no work: a clock read would be all it measured */
                continue;
            double t0 = thread_ns();
            infer_run_step(c, w, si, nt);
            step_ns[si] += thread_ns() - t0;
        }
        if (report(progress, user, 0.5 * (t + 1) / ntiles)) {
            rs_fail(e, "infer_profile: cancelled");
            rc = RS_CANCELLED;
            goto done;
        }
    }
    /* the plain pass, as evaluation runs a tile: input conversion, the steps, the output copy */
    if (!(sink = infer_alloc_floats((size_t)tile * c->result_numel + 64))) {
        rc = rs_fail(e, "infer_profile: out of memory");
        goto done;
    }
    double fwd_ns = 0;
    for (int t = 0; t < ntiles; ++t) {
        int first = t * tile, nt = n - first < tile ? n - first : tile;
        double t0 = thread_ns();
        infer_run_tile(c, w, x, xu, first, nt, sink);
        fwd_ns += thread_ns() - t0;
        if (report(progress, user, 0.5 + 0.5 * (t + 1) / ntiles)) {
            rs_fail(e, "infer_profile: cancelled");
            rc = RS_CANCELLED;
            goto done;
        }
    }
    for (int si = 0; si < c->n_steps; ++si) {
        p->us[c->steps[si].node] = step_ns[si] / 1e3 / n;
        p->steps_us += p->us[c->steps[si].node];
    }
    p->forward_us = fwd_ns / 1e3 / n;
done:
    free(sink);
    free(step_ns);
    infer_free(c);
    if (rc != 0)
        infer_prof_free(p);
    else
        *out = p;
    return rc;
}
