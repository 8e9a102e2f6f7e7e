/* recipe.h — the record of a staged compression (`compress --stages`), precise enough to replay
 * it (`compress --recipe FILE`): which layers each stage factorized and how, and how each stage
 * was fine-tuned.
 *
 * Contract:
 *  - Text format, one item per line, '#' starts a comment, blank lines ignored, CRLF accepted:
 *        rankscope-recipe 1              first item: the format version (only 1)
 *        train-images N                  0 = the whole training split (default 0)
 *        val-images N                    0 = the whole validation split (default 0)
 *        fit weights | fit outputs N     factors fitted to the weights, or to the layer outputs
 *                                        on the first N training images (default weights)
 *        stage                           starts a stage; the items below belong to it:
 *          epochs N                      fine-tuning epochs (1..1000, required)
 *          lr X                          peak learning rate (> 0, <= 10, required)
 *          seed N                        shuffle / augmentation seed (0..2^63-1, default 1)
 *          distill ALPHA TEMP | distill off   teacher: the ORIGINAL network (default off)
 *          plan LAYER METHOD RANK[,RANK2]     a layer this stage factorizes (as in plan files)
 *        int8 N                          then int8 with N epochs of quantization-aware training
 *    Stages run in order: stage k factorizes its plan's layers of the net left by stage k-1
 *    (fine-tuned), then fine-tunes the whole net with keep-best on the validation images. A layer
 *    an earlier stage factorized is first folded back into one layer holding its fine-tuned
 *    factors' map, then factorized again (pipeline.h). A layer appears once per stage; a stage
 *    has at least one plan line, or "plan none" alone; 1..RECIPE_MAX_STAGES stages.
 *  - Parse errors: one line, "LABEL:LINE: what is wrong, quoting the value" (LABEL = the file
 *    name given); nothing is partially returned. Control bytes are refused (messages quote the
 *    text).
 *  - recipe_format writes what recipe_parse_text reads back to an equal recipe (the round trip
 *    is exact: floating-point values are written with 17 significant digits).
 */
#ifndef RANKSCOPE_RECIPE_H
#define RANKSCOPE_RECIPE_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stdint.h>
#include "rankscope/common.h"
#include "rankscope/plan.h"

#define RECIPE_MAX_STAGES 32
#define RECIPE_MAX_FILE (1 << 20)

typedef struct recipe_stage {
    rs_plan *plan;  /* owned; empty: fine-tuning only ("plan none") */
    int epochs;
    double lr;
    uint64_t seed;
    int distill;    /* 1: alpha / temp below, teacher = the original network */
    double alpha, temp;
    int bn;         /* 1: BatchNormalization after every Conv while fine-tuning (finetune.h) */
} recipe_stage;

typedef struct rs_recipe {
    int train_images, val_images; /* 0 = whole split */
    int fit_outputs, calib_images;
    int int8, int8_epochs;        /* int8: 1 when the item is present */
    int n_stages;
    recipe_stage stages[RECIPE_MAX_STAGES];
} rs_recipe;

rs_recipe *recipe_alloc(void);       /* empty (no stages); NULL on out-of-memory */
void recipe_free(rs_recipe *r);      /* accepts NULL */
/* Append a copy of st (its plan cloned; NULL = an empty plan); -1 when full or out of memory. */
int recipe_add_stage(rs_recipe *r, const recipe_stage *st, rs_err *e);

int recipe_parse_text(rs_recipe *r, const char *text, const char *label, rs_err *e); /* r: fresh */
rs_recipe *recipe_load(const char *path, rs_err *e);
int recipe_format(const rs_recipe *r, char **out, rs_err *e); /* malloc'ed text */
int recipe_save(const rs_recipe *r, const char *path, rs_err *e); /* atomic */

#pragma GCC visibility pop
#endif
