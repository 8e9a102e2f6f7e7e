/* cmd_data.c — `rankscope data fetch`: download, verify and unpack CIFAR-10. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/fetch.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rankscope data fetch [--dir DIR] [--url URL] [--force] [--json]\n"
            "  Downloads the CIFAR-10 binary archive (default " FETCH_CIFAR10_URL "),\n"
            "  checks its md5 (" FETCH_CIFAR10_MD5 ") and unpacks it atomically to\n"
            "  DIR/" FETCH_CIFAR10_DIRNAME " (default DIR: ~/.cache/rankscope, where rankscope looks\n"
            "  for data). An interrupted download is resumed (HTTP Range) by the next run, or\n"
            "  restarted when the server cannot resume; a corrupt archive is refused and deleted.\n"
            "  --force        download and unpack again even if the data set is complete\n"
            "  --retries N    retries of an interrupted transfer within this run (default 3)\n"
            "  --deadline S   give up after S seconds in all, retries included (default 3600;\n"
            "                 the partial download is kept for the next run)\n"
            "  --stall-timeout S  a transfer under 1 KiB/s for S seconds is stalled and retried\n"
            "                 (default 60)\n"
            "  For mirrors and tests: --md5 HEX (expected digest), --records N (records per batch\n"
            "  file, default 10000).\n");
}

static int fetch_option(void *cmd, int key, const char *arg)
{
    fetch_opts *o = cmd;
    long v;
    switch (key) {
    case 'd': o->dir = arg; return 0;
    case 'u': o->url = arg; return 0;
    case 'm': o->md5 = arg; return 0;
    case 'n':
        if (cli_parse_int("--records", arg, 1, 1000000, &v) != 0)
            return CLI_USAGE;
        o->records = (int)v;
        return 0;
    case 'r':
        if (cli_parse_int("--retries", arg, 0, 100, &v) != 0)
            return CLI_USAGE;
        o->retries = (int)v;
        return 0;
    case 'D':
        if (cli_parse_int("--deadline", arg, 1, 7 * 86400, &v) != 0)
            return CLI_USAGE;
        o->deadline_secs = v;
        return 0;
    case 'S':
        if (cli_parse_int("--stall-timeout", arg, 1, 86400, &v) != 0)
            return CLI_USAGE;
        o->stall_secs = v;
        return 0;
    }
    return CLI_USAGE;
}

static int cmd_data_fetch(int argc, char **argv)
{
    static const cli_opt opts[] = {
        {"dir", 1, 'd', 0},     {"url", 1, 'u', 0},      {"md5", 1, 'm', 0},           {"records", 1, 'n', 0},
        {"retries", 1, 'r', 0}, {"deadline", 1, 'D', 0}, {"stall-timeout", 1, 'S', 0}, {0, 0, 0, 0}};
    static const cli_spec spec = {"data fetch", CLI_A_FORCE | CLI_A_JSON, opts, fetch_option, usage, -1};
    fetch_opts o = {.retries = -1, .progress = cli_progress};
    cli_args a;
    int prc = cli_parse(&spec, argc, argv, &o, &a);
    if (prc >= 0)
        return prc;
    o.force = a.force;
    int json = a.json;
    if (a.n_rest > 0) {
        cli_error("data fetch: unexpected argument \"%s\"", a.rest[0]);
        return CLI_USAGE;
    }
    rs_err e = {{0}};
    fetch_result r;
    int rc = fetch_cifar10(&o, &r, &e);
    cli_progress_end();
    if (rc != 0) {
        cli_error("%s", e.msg);
        return CLI_FAIL;
    }
    if (json) {
        printf("{\"target\": ");
        cli_json_string(stdout, r.target);
        printf(", \"already\": %s, \"resumed\": %s, \"restarted\": %s, \"attempts\": %d, "
               "\"bytes\": %lld, \"md5\": \"%s\", \"discarded\": %s}\n",
               r.already ? "true" : "false", r.resumed ? "true" : "false",
               r.restarted ? "true" : "false", r.attempts, (long long)r.bytes, r.md5,
               r.discarded ? "true" : "false");
    } else if (r.already) {
        printf("CIFAR-10 is already complete in %s (nothing to do; --force fetches it again)\n",
               r.target);
    } else {
        printf("CIFAR-10 ready in %s (%.1f MB archive, md5 %s verified%s%s)\n", r.target,
               r.bytes / 1e6, r.md5, r.resumed ? ", download resumed" : "",
               r.restarted ? ", server could not resume: restarted" : "");
    }
    if (o.dir && !json)
        printf("use it with --data %s or RANKSCOPE_DATA=%s\n", r.target, r.target);
    return CLI_OK;
}

int cmd_data(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "fetch"))
        return cmd_data_fetch(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return CLI_OK;
    }
    cli_error("data: expected a subcommand: fetch%s%s%s", argc >= 2 ? " (got \"" : "",
              argc >= 2 ? argv[1] : "", argc >= 2 ? "\")" : "");
    usage(stderr);
    return CLI_USAGE;
}
