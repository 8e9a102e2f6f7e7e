/* tool_resave.c — test support for interop.sh: load an ONNX model with rankscope and write it
 * back with rankscope's writer; with --edit, factorize it first (edit_fixture.h) so the written
 * file contains what graph edits produce (grouped and 1x1 Convs, bias-less Gemms, new weights).
 * usage: tool_resave [--edit] IN.onnx OUT.onnx */
#include <stdio.h>
#include <string.h>

#include "edit_fixture.h"
#include "rankscope/onnx.h"

int main(int argc, char **argv)
{
    int edit = argc == 4 && strcmp(argv[1], "--edit") == 0;
    if (argc != 3 + edit) {
        fprintf(stderr, "usage: %s [--edit] IN.onnx OUT.onnx\n", argv[0]);
        return 2;
    }
    const char *in = argv[1 + edit], *out = argv[2 + edit];
    rs_err e = {{0}};
    rs_model *m = onnx_load(in, &e);
    int rc = m ? 0 : -1;
    if (rc == 0 && edit)
        rc = edit_fixture_factorize(m, 42, &e) < 0 ? -1 : 0;
    if (rc == 0)
        rc = onnx_save(m, out, &e);
    if (rc != 0)
        fprintf(stderr, "tool_resave: %s\n", e.msg);
    model_free(m);
    return rc ? 1 : 0;
}
