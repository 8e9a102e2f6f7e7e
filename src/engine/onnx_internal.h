/* onnx_internal.h — what the ONNX reader, writer and wire guard share (engine-internal).
 *
 * Contract:
 *  - onnx_clean copies a file-supplied string for an error message (control bytes become '?',
 *    long strings are cut) so every message stays one line.
 *  - onnx_name_map is an open-addressing name -> index map with borrowed keys, sized for all its
 *    keys up front (onnx_map_init), so onnx_map_put never fails.
 *  - onnx_wire_guard walks the protobuf wire format before protobuf-c decodes it and refuses
 *    malformed bytes, nesting deeper than protobuf-c can safely recurse, and buffers whose
 *    decoding would allocate far more than their size.
 *  - onnx_read_buffer decodes and validates a ModelProto into an rs_model exactly as the file
 *    states it (no graph rewrites, no shape inference).
 */
#ifndef RANKSCOPE_ONNX_INTERNAL_H
#define RANKSCOPE_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "rankscope/model.h"

/* Room for one file-supplied name in an error message. */
#define NAME_BUF 96

const char *onnx_clean(char *dst, size_t cap, const char *s);
int onnx_empty(const char *s);

typedef struct onnx_name_map {
    size_t cap; /* power of two */
    const char **keys;
    int *vals;
} onnx_name_map;

int onnx_map_init(onnx_name_map *h, size_t n);
void onnx_map_free(onnx_name_map *h);
int onnx_map_get(const onnx_name_map *h, const char *key);
/* Insert key -> val; if the key is already present return its value (and insert nothing),
 * else -1. */
int onnx_map_put(onnx_name_map *h, const char *key, int val);

/* 0, or -1 with e naming label (already cleaned). */
int onnx_wire_guard(const uint8_t *buf, size_t len, const char *label, rs_err *e);

rs_model *onnx_read_proto(const Onnx__ModelProto *mp, rs_err *e);

#endif
