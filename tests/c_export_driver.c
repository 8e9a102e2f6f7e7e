/* c_export_driver.c — runs a `rankscope export --format c` model (model.h / model.c) over raw
 * float32 images; built by the shell tests next to the generated files. */
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
/* driver IN.f32 OUT.f32: model_forward over raw float32 images */
int main(int argc, char **argv)
{
    static float in[MODEL_INPUT_FLOATS], out[MODEL_OUTPUT_FLOATS];
    float *scratch = malloc(sizeof(float) * MODEL_SCRATCH_FLOATS);
    FILE *fi, *fo;
    if (argc != 3 || !scratch || !(fi = fopen(argv[1], "rb")) || !(fo = fopen(argv[2], "wb")))
        return 2;
    while (fread(in, sizeof(float), MODEL_INPUT_FLOATS, fi) == MODEL_INPUT_FLOATS) {
        model_forward(in, out, scratch);
        if (fwrite(out, sizeof(float), MODEL_OUTPUT_FLOATS, fo) != MODEL_OUTPUT_FLOATS)
            return 3;
    }
    fclose(fi);
    free(scratch);
    return fclose(fo) ? 3 : 0;
}
