/* fetch.h — download, verify and unpack the CIFAR-10 binary data set.
 *
 * Contract:
 *  - fetch_cifar10 makes DIR/cifar-10-batches-bin (DIR defaults to ~/.cache/rankscope) hold the
 *    six batch files, each a whole number of 3073-byte records with labels 0..9 and, by default,
 *    exactly 10,000 records (opts->records overrides that for test archives).
 *  - Download (libcurl, http/https only) goes to DIR/cifar-10-binary.tar.gz.part. A later call
 *    resumes it with an HTTP Range request; a server that answers 200 instead restarts it from
 *    byte 0. Within one call an interrupted or stalled transfer is retried (opts->retries times)
 *    from where it stopped.
 *  - Bounds: the whole download, retries included, ends at opts->deadline_secs (default 1 hour;
 *    the .part is kept); a transfer slower than opts->min_speed bytes/s (default 1 KiB/s) for
 *    opts->stall_secs (default 60 s) is stalled (a server dripping a byte at a time is as stuck
 *    as a silent one). A body or announced length beyond the largest size the archive can have
 *    (fetch_max_archive_bytes: a tar of six batch files of the expected record count and the
 *    extras, gzip-stored) stops the transfer and deletes the .part. An earlier .part is resumed only when it
 *    can be the start of the archive (not longer than the cap, gzip magic); otherwise it is
 *    discarded and the download starts at byte 0 (result->discarded).
 *  - The completed download's md5 (nettle) must equal opts->md5 (default FETCH_CIFAR10_MD5); a
 *    mismatch deletes the .part (so the next call starts afresh) and fails with one line giving
 *    both digests.
 *  - Unpacking (libarchive, tar.gz) writes only the expected regular files of
 *    cifar-10-batches-bin/ into a fresh temporary directory beside the target, verifies them
 *    (all present, sizes, labels), fsyncs, and renames it into place; any failure removes the
 *    temporary directory, so the target is either absent/unchanged or complete. A truncated or
 *    corrupt gzip/tar stream is an error naming the archive. The .part is removed on success.
 *  - An existing complete target is left alone (result->already = 1) unless opts->force.
 *  - One fetch per directory: DIR is locked (flock) for the whole job; a second fetch into it
 *    fails at once saying so. Temporary directories of killed fetches are swept.
 *  - Never prints; progress goes through opts->progress (fraction < 0 when the size is unknown),
 *    which can cancel (RS_CANCELLED). Errors are one line naming the URL, file or value.
 */
#ifndef RANKSCOPE_FETCH_H
#define RANKSCOPE_FETCH_H
#pragma GCC visibility push(default) /* the API: the engine builds with hidden visibility */

#include <stddef.h>
#include <stdint.h>
#include "rankscope/common.h"

#define FETCH_CIFAR10_URL "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
#define FETCH_CIFAR10_MD5 "c32a1d4ab5d03f1284b67883e8d87530"
#define FETCH_CIFAR10_DIRNAME "cifar-10-batches-bin"
#define FETCH_CIFAR10_RECORDS 10000
#define FETCH_STALL_SECS 60L
#define FETCH_MIN_SPEED 1024L
#define FETCH_DEADLINE_SECS 3600L

typedef struct fetch_opts {
    const char *dir;       /* parent directory; NULL = ~/.cache/rankscope (created) */
    const char *url;       /* NULL = FETCH_CIFAR10_URL */
    const char *md5;       /* 32 hex digits; NULL = FETCH_CIFAR10_MD5 */
    int records;           /* records per batch file; 0 = FETCH_CIFAR10_RECORDS */
    int retries;           /* extra attempts after an interrupted transfer; < 0 = default 3 */
    int force;             /* download and unpack even if the target is complete */
    long stall_secs;       /* a transfer under min_speed for this long is stalled; 0 = default */
    long min_speed;        /* bytes/s; 0 = FETCH_MIN_SPEED */
    long deadline_secs;    /* the whole download, retries included; 0 = default */
    int64_t max_bytes;     /* archive size cap; 0 = fetch_max_archive_bytes(records) */
    rs_progress_fn progress;
    void *user;
} fetch_opts;

typedef struct fetch_result {
    char target[1280];     /* DIR/cifar-10-batches-bin */
    int already;           /* target was complete; nothing done */
    int resumed;           /* a Range request continued an earlier .part */
    int restarted;         /* the server ignored a Range request: downloaded from byte 0 */
    int attempts;          /* HTTP requests made */
    int discarded;         /* an earlier .part could not be the archive's start: dropped */
    int64_t bytes;         /* archive size */
    char md5[33];          /* archive digest */
} fetch_result;

/* Unpack a CIFAR-10 tar.gz (label names it in messages) into dest, an existing empty directory,
 * and verify the result, as fetch_cifar10 does after a download: 0, or -1 with dest holding
 * whatever was extracted (the caller removes it). */
int fetch_unpack(const char *archive, const char *label, const char *dest, int records, rs_err *e);

/* The size cap fetch_cifar10 applies by default. */
int64_t fetch_max_archive_bytes(int records);

/* opts and result may be NULL. */
int fetch_cifar10(const fetch_opts *opts, fetch_result *result, rs_err *e);

/* Whether dir holds a complete data set (0) or why not (-1, e names the file). */
int fetch_verify_dir(const char *dir, int records, rs_err *e);

/* md5 of a whole file as 32 lowercase hex digits plus NUL. */
int fetch_md5_file(const char *path, char out[33], rs_err *e);

#pragma GCC visibility pop
#endif
