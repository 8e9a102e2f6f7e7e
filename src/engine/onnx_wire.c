/* onnx_wire.c — the raw-byte guard run before protobuf-c decodes an ONNX file.
 *
 * protobuf-c recurses once per nested message with no limit of its own, and many tiny messages
 * decode to ~50x their size; both are measured here on the wire format, with the schema, before
 * anything is allocated from the file's contents.
 */
#include <stdint.h>
#include <stdio.h>

#include "onnx_internal.h"

/* Deepest sub-message nesting accepted. A model is ~7 deep (Model > Graph > ValueInfo > Type >
 * Tensor > Shape > Dimension); protobuf-c recurses once per level with no limit of its own, so a
 * megabyte of nested Graph > Node > Attribute > Graph ... would overflow the stack. */
#define ONNX_MAX_DEPTH 48
/* Decoding may allocate up to twice the file's size plus this (protobuf structs, names). */
#define ONNX_DECODE_SLACK ((size_t)64 << 20)

static int read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return -1;
        uint8_t byte = p[(*pos)++];
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* What decoding a buffer would cost, measured on the wire format before protobuf-c decodes it. */
typedef struct wire_cost {
    int depth;  /* deepest sub-message nesting (stops counting past ONNX_MAX_DEPTH) */
    size_t mem; /* upper estimate of the bytes protobuf-c will allocate */
} wire_cost;

static void cost_add(wire_cost *c, size_t bytes)
{
    c->mem = bytes > SIZE_MAX - c->mem ? SIZE_MAX : c->mem + bytes;
}

static int is_varint_type(ProtobufCType t)
{
    return t != PROTOBUF_C_TYPE_FLOAT && t != PROTOBUF_C_TYPE_DOUBLE && t != PROTOBUF_C_TYPE_FIXED32 &&
           t != PROTOBUF_C_TYPE_FIXED64 && t != PROTOBUF_C_TYPE_SFIXED32 && t != PROTOBUF_C_TYPE_SFIXED64;
}

/* Walks the wire format with the schema (protobuf-c's descriptors): each byte is read once and
 * the walk's own recursion stops at ONNX_MAX_DEPTH. Returns -1 if the bytes are not well-formed
 * protobuf. Allocation estimate per field occurrence: a message costs its struct plus malloc and
 * pointer overhead; strings and bytes their length plus overhead; a packed varint list up to 8
 * bytes per wire byte (1-byte varints widen to int64); unknown fields are kept by protobuf-c. */
static int wire_walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, int depth,
                     wire_cost *c)
{
    enum { OVERHEAD = 32 };
    if (depth > c->depth)
        c->depth = depth;
    cost_add(c, d->sizeof_message + OVERHEAD);
    size_t pos = 0;
    while (pos < len) {
        uint64_t key, n;
        if (read_varint(p, len, &pos, &key) != 0)
            return -1;
        const ProtobufCFieldDescriptor *f =
            key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
        size_t start = pos;
        switch (key & 7) {
        case 0:
            if (read_varint(p, len, &pos, &n) != 0)
                return -1;
            break;
        case 1:
        case 5: {
            size_t width = (key & 7) == 1 ? 8 : 4;
            if (len - pos < width)
                return -1;
            pos += width;
            break;
        }
        case 2:
            if (read_varint(p, len, &pos, &n) != 0 || n > len - pos)
                return -1;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth + 1 > ONNX_MAX_DEPTH) {
                    c->depth = depth + 1;
                    return 0;
                }
                cost_add(c, sizeof(void *));
                if (wire_walk(f->descriptor, p + pos, (size_t)n, depth + 1, c) != 0)
                    return -1;
                if (c->depth > ONNX_MAX_DEPTH)
                    return 0;
            } else if (f && f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_BYTES &&
                       is_varint_type(f->type)) {
                cost_add(c, 8 * (size_t)n + OVERHEAD);
            } else {
                cost_add(c, (size_t)n + OVERHEAD);
            }
            pos += (size_t)n;
            break;
        default: /* groups (3, 4) are not used by ONNX; 6, 7 do not exist */
            return -1;
        }
        if (!f) /* protobuf-c keeps a copy of every unknown field */
            cost_add(c, pos - start + OVERHEAD);
        else if ((key & 7) != 2)
            cost_add(c, 8);
    }
    return 0;
}


int onnx_wire_guard(const uint8_t *buf, size_t len, const char *lb, rs_err *e)
{
    wire_cost cost = {0, 0};
    if (wire_walk(&onnx__model_proto__descriptor, buf, len, 0, &cost) != 0)
        return rs_fail(e, "%s: not a valid ONNX model (protobuf decoding failed: truncated or not ONNX)", lb);
    if (cost.depth > ONNX_MAX_DEPTH)
        return rs_fail(e, "%s: messages nested more than %d deep (hostile or corrupt file)", lb, ONNX_MAX_DEPTH);
    /* A real model decodes to about its own size (weights dominate); many tiny messages can
     * cost 50x their bytes, so anything far beyond the file's size is refused up front. */
    size_t budget = len > (RS_MAX_ALLOC - ONNX_DECODE_SLACK) / 2 ? RS_MAX_ALLOC : 2 * len + ONNX_DECODE_SLACK;
    if (cost.mem > budget)
        return rs_fail(e, "%s: decoding would allocate about %zu MiB for %zu bytes of file (hostile or corrupt)",
                       lb, cost.mem >> 20, len);
    return 0;
}
