/* cmd_zoo.c — `rankscope zoo`: the trained models shipped in assets/zoo/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rankscope/onnx.h"
#include "rankscope/zoo.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: rankscope zoo [--json]\n"
               "  The trained models of the zoo (assets/zoo/zoo.tsv): name, file, architecture,\n"
               "  test accuracy (rankscope eval on the 10,000 CIFAR-10 test images), params and\n"
               "  MACs per image (counted from the file), and the command that trained it.\n"
               "  Architectures `rankscope train --arch` builds:");
    for (int i = 0; i < zoo_arch_count(); ++i)
        fprintf(f, "%s %s", i ? "," : "", zoo_arch_name(i));
    fprintf(f, ".\n");
}

static void print_row(const zoo_entry *z, const rs_model *m, int json, int first, int name_w, int arch_w)
{
    int64_t params = -1, macs = -1;
    if (m)
        model_totals(m, &params, &macs);
    double acc = z->test_correct >= 0 ? z->test_correct / 100.0 : -1;
    if (json) {
        printf("%s\n    {\"name\": ", first ? "" : ",");
        cli_json_string(stdout, z->name);
        printf(", \"file\": ");
        cli_json_string(stdout, z->path);
        printf(", \"arch\": ");
        cli_json_string(stdout, z->arch);
        if (acc >= 0)
            printf(", \"test_accuracy\": %.2f", acc);
        else
            printf(", \"test_accuracy\": null");
        printf(", \"params\": %lld, \"macs\": %lld, \"seed\": %ld, \"epochs\": %ld, "
               "\"train_seconds\": %.0f, \"loads\": %s, \"command\": ",
               (long long)params, (long long)macs, z->seed, z->epochs, z->train_seconds,
               m ? "true" : "false");
        cli_json_string(stdout, z->command);
        printf("}");
        return;
    }
    char a[16] = "-", p[24] = "missing", c[24] = "-";
    if (acc >= 0)
        snprintf(a, sizeof a, "%.2f %%", acc);
    if (m) {
        snprintf(p, sizeof p, "%lld", (long long)params);
        snprintf(c, sizeof c, "%lld", (long long)macs);
    }
    printf("%-*s %-*s %9s %10s %12s  %s\n", name_w, z->name, arch_w, z->arch, a, p, c, z->file);
}

int cmd_zoo(int argc, char **argv)
{
    static const cli_spec spec = {"zoo", CLI_A_JSON, NULL, NULL, usage, 0};
    cli_args args;
    int prc = cli_parse(&spec, argc, argv, NULL, &args);
    if (prc >= 0)
        return prc;
    int json = args.json;
    char path[4096];
    if (rs_find_asset("zoo/zoo.tsv", path, sizeof path) != 0)
        return cli_error("zoo: the catalogue zoo/zoo.tsv was not found (set RANKSCOPE_ASSETS)"),
               CLI_FAIL;
    rs_err e = {{0}};
    zoo_entry *z = NULL;
    int n = 0;
    if (zoo_catalog_read(path, &z, &n, &e) != 0)
        return cli_error("zoo: %s", e.msg), CLI_FAIL;
    int name_w = 12, arch_w = 10;
    if (json)
        printf("{\n  \"catalogue\": "), cli_json_string(stdout, path), printf(",\n  \"models\": [");
    else {
        for (int i = 0; i < n; ++i) { /* columns as wide as the longest name / architecture */
            int ln = (int)strlen(z[i].name), la = (int)strlen(z[i].arch);
            name_w = ln > name_w ? ln : name_w;
            arch_w = la > arch_w ? la : arch_w;
        }
        printf("%-*s %-*s %9s %10s %12s  %s\n", name_w, "name", arch_w, "arch", "test acc", "params", "MACs",
               "file");
    }
    int missing = 0;
    for (int i = 0; i < n; ++i) {
        rs_model *m = onnx_load(z[i].path, &e);
        if (!m) {
            fprintf(stderr, "zoo: %s: %s\n", z[i].name, e.msg);
            ++missing;
        }
        print_row(&z[i], m, json, i == 0, name_w, arch_w);
        model_free(m);
    }
    if (json)
        printf("\n  ]\n}\n");
    free(z);
    return missing ? CLI_FAIL : CLI_OK;
}
