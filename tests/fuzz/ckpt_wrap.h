/* ckpt_wrap.h — what the checkpoint fuzz targets share: the fuzzer's input is the record stream
 * between the magic and the END record; this adds both, with the CRC-32 END carries, so the
 * fuzzer reaches the record parsers instead of stopping at the checksum, and writes the file the
 * loader reads (one scratch file per process). */
#ifndef RANKSCOPE_FUZZ_CKPT_WRAP_H
#define RANKSCOPE_FUZZ_CKPT_WRAP_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static void ckpt_wrap_put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; ++i)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The scratch file's path (static storage), or NULL when it could not be written. name: the
 * target, for the file name; magic: its 8 bytes. */
static const char *ckpt_wrap_write(const char *name, const char *magic, const uint8_t *data, size_t size)
{
    static char path[96];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/%s.%ld.ckpt", name, (long)getpid());
    size_t len = 8 + size + 16;
    uint8_t *buf = malloc(len);
    if (!buf)
        return NULL;
    memcpy(buf, magic, 8);
    if (size)
        memcpy(buf + 8, data, size);
    memcpy(buf + 8 + size, "END ", 4);
    ckpt_wrap_put_le(buf + 8 + size + 4, 4, 8);
    ckpt_wrap_put_le(buf + 8 + size + 12, crc32(0L, buf, (uInt)(8 + size)), 4);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int ok = fd >= 0 && write(fd, buf, len) == (ssize_t)len;
    if (fd >= 0)
        close(fd);
    free(buf);
    return ok ? path : NULL;
}

#endif
