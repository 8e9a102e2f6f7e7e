/* cli_run.c — progress, trial and epoch reports of the long-running commands. */
#include "cli_run.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "rankscope/pipeline.h"

int cli_search_option(search_options *so, int key, const char *arg, int *rc)
{
    rs_err e = {{0}};
    long v;
    *rc = 0;
    switch (key) {
    case CLI_SO_STRATEGY:
        if (search_strategy_parse(arg, &so->strategy, &e) != 0) {
            cli_error("--strategy: %s", e.msg);
            *rc = CLI_USAGE;
        }
        return 0;
    case CLI_SO_TOLERANCE: *rc = cli_parse_double("--tolerance", arg, 0, 100, &so->tolerance) ? CLI_USAGE : 0; return 0;
    case CLI_SO_RELATIVE: *rc = cli_parse_double("--relative", arg, 0, 0.999, &so->relative) ? CLI_USAGE : 0; return 0;
    case CLI_SO_OBJECTIVE:
        if (search_objective_parse(arg, &so->objective, &e) != 0) {
            cli_error("--objective: %s", e.msg);
            *rc = CLI_USAGE;
        }
        return 0;
    case CLI_SO_METHODS: *rc = (so->conv_methods = cli_parse_methods(arg)) ? 0 : CLI_USAGE; return 0;
    case CLI_SO_SENS:
        if (cli_parse_int("--sens-images", arg, 0, 1000000, &v) != 0)
            *rc = CLI_USAGE;
        else
            so->sens_images = (int)v;
        return 0;
    case CLI_SO_LATENCY: /* which measured figure --objective latency minimises */
        if (!strcmp(arg, "b1") || !strcmp(arg, "batch"))
            so->latency_throughput = !strcmp(arg, "batch");
        else {
            cli_error("--latency \"%s\": expected b1 (batch 1, one thread) or batch (throughput)", arg);
            *rc = CLI_USAGE;
        }
        return 0;
    case CLI_SO_MACS_RATIO:
        *rc = cli_parse_double("--min-macs-ratio", arg, 0, 1000, &so->min_macs_ratio) ? CLI_USAGE : 0;
        return 0;
    }
    return 1;
}


int cli_run_progress(void *run, double fraction, const char *what)
{
    const cli_run *u = run;
    if (cli_interrupted)
        return 1;
    if (!u->quiet)
        cli_progress(NULL, fraction, what);
    return 0;
}

int cli_run_trial(void *run, const search_trial *t)
{
    const cli_run *u = run;
    if (cli_interrupted)
        return 1;
    if (u->verbose) { /* asked for: on stderr even beside --json, which owns only stdout */
        cli_progress_end();
        char line[512];
        fprintf(stderr, "  trial %4d %-8s %-6s acc %6.2f%% on %5d  params %7lld  MACs %8lld  %6.1fs  %s |",
                t->index, t->phase, t->layer ? t->layer : "", 100.0 * t->accuracy, t->images,
                (long long)t->params, (long long)t->macs, t->elapsed, t->within ? "ok " : "OUT");
        fprintf(stderr, " %s\n", t->plan ? pipe_plan_oneline(t->plan, line, sizeof line) : "");
    }
    return 0;
}

static int on_epoch(void *run, const train_epoch_stats *s)
{
    const cli_run *u = run;
    if (u->show_epochs) {
        cli_progress_end();
        fprintf(stderr, "  epoch %2d/%d  loss %.4f  train %5.2f%%  val %5.2f%%  lr %.2e  %.1fs\n", s->epoch,
                s->epochs, s->train_loss, 100 * s->train_acc, 100 * s->val_acc, s->lr, s->seconds);
    }
    return cli_interrupted ? 1 : 0;
}

static int ft_progress(void *run, double fraction, const char *what)
{
    (void)what;
    return cli_run_progress(run, fraction, "fine-tuning");
}

void cli_run_search(cli_run *run, search_options *so)
{
    so->progress = cli_run_progress;
    so->progress_user = run;
    so->on_trial = cli_run_trial;
    so->trial_user = run;
}

void cli_run_finetune(cli_run *run, finetune_options *fo)
{
    fo->train.progress = ft_progress;
    fo->train.progress_user = run;
    fo->train.on_epoch = on_epoch;
    fo->train.epoch_user = run;
}
