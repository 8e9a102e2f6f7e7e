/* search_latency.c — the search's measured-latency objective (search.h, SEARCH_OBJ_LATENCY): layer
 * times from latency.h instead of counted params / MACs. */
#include <string.h>

#include "search_internal.h"

#define LAT_MARGIN 1.02 /* a candidate must be measured this much faster than the layer as it is */

static int lat_fig(const search_ctx *c)
{
    return c->o->latency_throughput ? 1 : 0;
}

static int is_lat(const search_ctx *c)
{
    return c->o->objective == SEARCH_OBJ_LATENCY;
}

int search_lat_grid(const search_ctx *c, const cand *cd)
{
    return is_lat(c) ? cd->lat_grid[lat_fig(c)] : cd->in_grid;
}

static lat_table *lat_of(search_ctx *c, rs_err *e)
{
    if (c->o->latency)
        return c->o->latency;
    if (!c->lat_own) {
        lat_options lo;
        lat_default_options(&lo);
        c->lat_own = lat_open(&lo, e);
    }
    return c->lat_own;
}

int search_lat_ensure(search_ctx *c, rs_err *e)
{
    if (!is_lat(c))
        return 0;
    lat_table *lt = lat_of(c, e);
    if (!lt)
        return -1;
    int rc = 0;
    for (int i = 0; i < c->n_layers && rc == 0; ++i) {
        layer_tab *t = &c->L[i];
        if (t->timed || !search_layer_selected(c->o->layers, t->name))
            continue;
        lat_point p;
        if ((rc = lat_layer(lt, c->m, t->node, DECOMP_NONE, 0, 0, &p, e)) != 0)
            break;
        t->time0[0] = p.b1, t->time0[1] = p.batch;
        for (int j = 0; j < t->n && rc == 0; ++j) {
            cand *cd = &t->c[j];
            if ((rc = lat_layer(lt, c->m, t->node, cd->method, cd->rank, cd->rank2, &p, e)) == 0)
                cd->time[0] = p.b1, cd->time[1] = p.batch;
            if (c->o->progress && c->o->progress(c->o->progress_user, -1.0, "timing layers") != 0)
                rc = rs_fail(e, "search cancelled"), rc = RS_CANCELLED;
        }
        for (int j = 0; j < t->n && rc == 0; ++j) {
            cand *cd = &t->c[j];
            int last = j;
            while (last + 1 < t->n && t->c[last + 1].method == cd->method)
                ++last;
            for (int f = 0; f < 2 && rc == 0; ++f) {
                int ok = lat_efficient(lt, c->m, t->node, cd->method, cd->rank, t->c[last].rank,
                                       cd->method == DECOMP_TUCKER2 ? search_tucker_rank2 : NULL, f == 0, e);
                if (ok < 0)
                    rc = -1;
                cd->lat_ok[f] = ok == 1;
            }
        }
        for (int f = 0; f < 2 && rc == 0; ++f)
            for (int j = 0; j < t->n; ++j) {
                if (!t->c[j].in_grid)
                    continue;
                for (int k = j; k < t->n && t->c[k].method == t->c[j].method; ++k)
                    if (t->c[k].lat_ok[f]) {
                        t->c[k].lat_grid[f] = 1;
                        break;
                    }
            }
        if (rc == 0)
            t->timed = 1;
    }
    if (c->lat_own && lat_save(c->lat_own, e) != 0 && rc == 0)
        rc = rs_failctx(e, "latency cache");
    return rc;
}

int search_lat_plan_time(search_ctx *c, const rs_plan *p, double *seconds, rs_err *e)
{
    int f = lat_fig(c), rc = search_lat_ensure(c, e);
    double s = 0;
    for (int i = 0; i < c->n_layers && rc == 0; ++i) {
        const layer_tab *t = &c->L[i];
        const plan_entry *pe = p ? plan_find(p, t->name) : NULL;
        lat_point lp;
        if (!pe || pe->method == DECOMP_NONE)
            rc = lat_layer(lat_of(c, e), c->m, t->node, DECOMP_NONE, 0, 0, &lp, e);
        else
            rc = lat_layer(lat_of(c, e), c->m, t->node, pe->method, pe->rank, pe->rank2, &lp, e);
        s += f ? lp.batch : lp.b1;
    }
    *seconds = s;
    return rc;
}

int search_ctx_plan_time(search_ctx *c, const search_options *o, const rs_plan *p, double *seconds,
                         rs_err *e)
{
    search_options lo = *o;
    lo.objective = SEARCH_OBJ_LATENCY;
    const search_options *keep = c->o;
    c->o = &lo;
    int rc = search_lat_plan_time(c, p, seconds, e);
    c->o = keep;
    return rc;
}

int search_lat_allowed(const search_ctx *c, const layer_tab *t, const cand *cd)
{
    int f = lat_fig(c);
    return t->timed && cd->lat_ok[f] && cd->time[f] * LAT_MARGIN < t->time0[f];
}

double search_lat_cost(const search_ctx *c, const layer_tab *t, int j)
{
    int f = lat_fig(c);
    if (t)
        return j < 0 ? t->time0[f] : t->c[j].time[f];
    double s = 0;
    for (int i = 0; i < c->n_layers; ++i)
        s += c->L[i].time0[f];
    return s;
}
