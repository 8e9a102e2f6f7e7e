/* ckpt_internal.h — the record container shared by the engine's checkpoint files (checkpoint.c:
 * training; pipe_ckpt.c: compress): 8 magic bytes, then records {u32 tag, u64 length, payload},
 * all little-endian, and last END holding the CRC-32 (zlib) of every byte before its tag.
 * Readers get each record's bounds only after the CRC and every length were checked, and read
 * payloads through ck_rbuf, whose reads past the end set `bad` instead of reading. */
#ifndef RANKSCOPE_CKPT_INTERNAL_H
#define RANKSCOPE_CKPT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "rankscope/common.h"
#include "rankscope/model.h"
#include "rankscope/train.h"

#define CK_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define CK_TAG_STAT CK_TAG('S', 'T', 'A', 'T')
#define CK_TAG_MOMT CK_TAG('M', 'O', 'M', 'T')
#define CK_TAG_END CK_TAG('E', 'N', 'D', ' ')
#define CK_MAX_FILE ((size_t)1 << 31)

/* ---- writing: a growable buffer; out of memory is remembered and reported by ck_finish ---- */
typedef struct ck_wbuf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} ck_wbuf;

void ck_put(ck_wbuf *b, const void *src, size_t n);
void ck_put_u32(ck_wbuf *b, uint32_t v);
void ck_put_u64(ck_wbuf *b, uint64_t v);
void ck_put_f64(ck_wbuf *b, double d);
void ck_put_str(ck_wbuf *b, const char *s); /* u32 length, bytes (NULL: empty) */
size_t ck_begin(ck_wbuf *b, uint32_t tag);  /* starts a record: where its length goes */
void ck_end(ck_wbuf *b, size_t at);
/* STAT and MOMT records of train state s of model m (momentum by value name). */
void ck_put_state(ck_wbuf *b, const rs_model *m, const train_state *s);
/* A record holding m as ONNX (BatchNormalization kept); -1 with e set when m cannot be saved. */
int ck_put_model(ck_wbuf *b, uint32_t tag, const rs_model *m, rs_err *e);
/* Appends END, writes the buffer atomically to path and frees it (also on error). */
int ck_finish(ck_wbuf *b, const char *path, rs_err *e);

/* ---- reading ------------------------------------------------------------------------------- */
typedef struct ck_rbuf {
    const uint8_t *p;
    size_t len, at;
    int bad;
} ck_rbuf;

const uint8_t *ck_take(ck_rbuf *r, size_t n);
uint32_t ck_get_u32(ck_rbuf *r);
uint64_t ck_get_u64(ck_rbuf *r);
double ck_get_f64(ck_rbuf *r);
/* A string written by ck_put_str of at most max bytes, malloc'ed and NUL-terminated; NULL (bad
 * set) when truncated, longer than max, holding a NUL byte, or out of memory. */
char *ck_get_str(ck_rbuf *r, size_t max);

/* Reads path (at most CK_MAX_FILE bytes) into *buf and finds the records: rec[k] / len[k] for
 * tags[k] (NULL when absent; unknown tags are skipped, a tag twice is an error). Checks the magic
 * (what: the kind of file, for the message) and the END checksum. *buf: free() after use. */
int ck_load(const char *path, const char *magic, const char *what, const uint32_t *tags, int ntags,
            uint8_t **buf, const uint8_t **rec, size_t *len, rs_err *e);
/* STAT payload into s (perm malloc'ed); -1 when corrupt. */
int ck_read_stat(ck_rbuf *r, train_state *s);
/* MOMT payload into s->mom for model m (per value index, malloc'ed). */
int ck_read_mom(ck_rbuf *r, const rs_model *m, train_state *s, const char *path, rs_err *e);
/* An ONNX record as a model (BatchNormalization kept, finite weights). */
rs_model *ck_read_model(const uint8_t *rec, size_t len, const char *path, rs_err *e);
/* Frees what ck_read_stat / ck_read_mom allocated (accepts a zeroed state). */
void ck_state_free(train_state *s);

#endif
