/* cli_plan.c — --plan / --ranks handling shared by eval, info and decompose. */
#include "cli.h"

#include "rankscope/plan.h"

int cli_apply_plan(rs_model *m, const char *plan_file, const char *ranks_spec)
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
    if (rc == 0)
        rc = plan_apply(m, p, NULL, NULL, &e);
    if (rc != 0)
        cli_error("%s", e.msg);
    plan_free(p);
    return rc;
}
