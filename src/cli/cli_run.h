/* cli_run.h — how the long-running commands (search, finetune, compress) report while they work:
 * a progress bar, trial and epoch lines on stderr, and Ctrl-C turned into a cancel. */
#ifndef RANKSCOPE_CLI_RUN_H
#define RANKSCOPE_CLI_RUN_H

#include "rankscope/finetune.h"
#include "rankscope/search.h"

typedef struct cli_run {
    int verbose;     /* a line per search trial on stderr */
    int quiet;       /* --json: no progress bar (trial and epoch lines still follow the two above) */
    int show_epochs; /* a line per fine-tuning epoch on stderr */
} cli_run;

/* Options of the search that search and compress share (keys of their cli_opt tables). */
enum cli_search_key {
    CLI_SO_STRATEGY = 'S', CLI_SO_TOLERANCE = 'T', CLI_SO_RELATIVE = 'R', CLI_SO_OBJECTIVE = 'O',
    CLI_SO_METHODS = 'M', CLI_SO_SENS = 'n', CLI_SO_MACS_RATIO = 'm', CLI_SO_LATENCY = 'Y'
};
/* Parse the option `key` into so: returns 1 when key is not one of them, else 0 with *rc = 0 or
 * CLI_USAGE (after printing the error). */
int cli_search_option(search_options *so, int key, const char *arg, int *rc);

/* rs_progress_fn / search_trial_fn over a cli_run; both cancel once Ctrl-C was pressed. */
int cli_run_progress(void *run, double fraction, const char *what);
int cli_run_trial(void *run, const search_trial *t);
/* Route a search's and a fine-tuning's callbacks to run. */
void cli_run_search(cli_run *run, search_options *so);
void cli_run_finetune(cli_run *run, finetune_options *fo);

#endif
