/* checkpoint.h — training checkpoints: one file with everything `train --resume` needs to go on
 * bit-identically after an epoch.
 *
 * Contract:
 *  - The file holds the model as ONNX (BatchNormalization kept as nodes, running statistics
 *    included), the train_state (epoch, step, generator, shuffle order, the momentum of every
 *    trainable parameter by value name) and the options that shape the run (epochs, batch,
 *    learning rate, momentum, decay, schedule, warm-up, seed, augmentation, threads), plus a
 *    free-text description of the data and model source for the user.
 *  - Layout: the 8 magic bytes "RSCKPT1\n", then records {u32 tag, u64 length, payload}, all
 *    little-endian: OPTS, STAT, MOMT, ONNX, NOTE, and last END with the CRC-32 (zlib) of every
 *    byte before it. Readers check the CRC first, then every length against what is left, before
 *    allocating anything.
 *  - checkpoint_save writes atomically (fileio_write_atomic): the path holds the previous
 *    checkpoint or the new one, never a mix, whatever happens to the process.
 *  - checkpoint_load fills a checkpoint the caller releases with checkpoint_free (accepts a
 *    zeroed or half-filled one). Errors name the file and what is wrong.
 */
#ifndef RANKSCOPE_CHECKPOINT_H
#define RANKSCOPE_CHECKPOINT_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include "rankscope/common.h"
#include "rankscope/model.h"
#include "rankscope/train.h"

typedef struct checkpoint {
    rs_model *model;     /* owned */
    train_state state;   /* perm and mom (per value index of model) owned */
    train_options opts;  /* the plain fields only; callbacks, trainable and teacher are NULL */
    char note[256];      /* what the run was (data, source model), for messages */
} checkpoint;

int checkpoint_save(const char *path, const rs_model *m, const train_state *s,
                    const train_options *o, const char *note, rs_err *e);
int checkpoint_load(const char *path, checkpoint *c, rs_err *e);
void checkpoint_free(checkpoint *c);

#pragma GCC visibility pop
#endif
