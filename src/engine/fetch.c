/* fetch.c — CIFAR-10 download (libcurl, resumable), md5 check (nettle), unpack (libarchive) into
 * a temporary directory that is renamed into place only once every file checks out. */
#include "rankscope/fetch.h"
#include "rankscope/fileio.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARCHIVE_NAME "cifar-10-binary.tar.gz"
#define PART_SUFFIX ".part"

static const char *const batch_files[] = {"data_batch_1.bin", "data_batch_2.bin",
                                          "data_batch_3.bin", "data_batch_4.bin",
                                          "data_batch_5.bin", "test_batch.bin"};
#define N_BATCH (sizeof batch_files / sizeof batch_files[0])
/* Extracted too when present; not required. */
static const char *const extra_files[] = {"batches.meta.txt", "readme.html"};
#define N_EXTRA (sizeof extra_files / sizeof extra_files[0])
#define EXTRA_MAX_BYTES ((int64_t)1 << 20)

/* ---- small file helpers ------------------------------------------------------------------ */

static int join(char *out, size_t len, const char *a, const char *b, rs_err *e)
{
    if ((size_t)snprintf(out, len, "%s/%s", a, b) >= len)
        return rs_fail(e, "fetch: path too long: %s/%s", a, b);
    return 0;
}

static int mkdir_p(const char *path, rs_err *e)
{
    char buf[1024];
    if (strlen(path) >= sizeof buf)
        return rs_fail(e, "fetch: path too long: %s", path);
    strcpy(buf, path);
    for (char *p = buf + 1;; ++p) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return rs_fail(e, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return rs_fail(e, "%s: not a directory", path);
    return 0;
}

/* Remove a flat directory we created (its regular files, then itself). Best effort. */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[1280];
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, de->d_name) < sizeof p)
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int fetch_md5_file(const char *path, char out[33], rs_err *e)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return rs_fail(e, "%s: %s", path, strerror(errno));
    struct md5_ctx ctx;
    md5_init(&ctx);
    uint8_t buf[1 << 16];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            return rs_fail(e, "%s: read failed: %s", path, strerror(err));
        }
        if (n == 0)
            break;
        md5_update(&ctx, (size_t)n, buf);
    }
    close(fd);
    uint8_t dig[MD5_DIGEST_SIZE];
    md5_digest(&ctx, sizeof dig, dig);
    for (int i = 0; i < MD5_DIGEST_SIZE; ++i)
        snprintf(out + 2 * i, 3, "%02x", dig[i]);
    return 0;
}

/* ---- verification ------------------------------------------------------------------------ */

/* path is read; shown names it in messages. */
static int verify_batch(const char *path, const char *shown, int64_t want, rs_err *e)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return rs_fail(e, "%s: missing (%s)", shown, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return rs_fail(e, "%s: not a regular file", shown);
    if ((int64_t)st.st_size != want)
        return rs_fail(e, "%s: %lld bytes, expected %lld (%lld records of 3073 bytes)", shown,
                       (long long)st.st_size, (long long)want, (long long)(want / 3073));
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return rs_fail(e, "%s: %s", shown, strerror(errno));
    static __thread uint8_t buf[3073 * 64];
    int64_t at = 0;
    int rc = 0;
    while (at < want && rc == 0) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = rs_fail(e, "%s: read failed at byte %lld", shown, (long long)at);
            break;
        }
        /* reads are whole records except possibly the last chunk: index by absolute offset */
        for (ssize_t i = 0; i < n; ++i)
            if ((at + i) % 3073 == 0 && buf[i] > 9) {
                rc = rs_fail(e, "%s: record %lld has label %d (expected 0..9)", shown,
                             (long long)((at + i) / 3073), buf[i]);
                break;
            }
        at += n;
    }
    close(fd);
    return rc;
}

/* shown_dir names dir in messages. */
static int verify_dir(const char *dir, const char *shown_dir, int records, rs_err *e)
{
    const int64_t want = (int64_t)(records > 0 ? records : FETCH_CIFAR10_RECORDS) * 3073;
    char path[1280], shown[1280];
    for (size_t i = 0; i < N_BATCH; ++i)
        if (join(path, sizeof path, dir, batch_files[i], e) ||
            join(shown, sizeof shown, shown_dir, batch_files[i], e) ||
            verify_batch(path, shown, want, e))
            return -1;
    return 0;
}

int fetch_verify_dir(const char *dir, int records, rs_err *e)
{
    if (!dir)
        return rs_fail(e, "fetch_verify_dir: no directory");
    return verify_dir(dir, dir, records, e);
}

/* ---- download ---------------------------------------------------------------------------- */

typedef struct xfer {
    int fd;
    int64_t offset;        /* bytes already in the .part when this request started */
    int64_t written;       /* bytes written by this request */
    int64_t range_start;   /* from Content-Range, -1 if none */
    int64_t total;         /* full size if known, else -1 */
    long code;             /* HTTP status once the body starts */
    int64_t cap;           /* most bytes the archive can have */
    int started, restarted, bad_status, io_error, cancelled, too_big;
    double last_report;
    const fetch_opts *o;
    CURL *curl;
} xfer;

static size_t on_header(char *p, size_t size, size_t n, void *user)
{
    xfer *x = user;
    size_t len = size * n;
    char line[256];
    size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, p, k);
    line[k] = 0;
    if (!strncmp(line, "HTTP/", 5)) /* a new response (redirect hop): forget the last one's */
        x->range_start = -1;
    if (!strncasecmp(line, "Content-Range:", 14)) {
        long long a, b, t;
        if (sscanf(line + 14, " bytes %lld-%lld/%lld", &a, &b, &t) == 3) {
            x->range_start = a;
            x->total = t;
        } else if (sscanf(line + 14, " bytes %lld-%lld/*", &a, &b) == 2) {
            x->range_start = a;
        }
    }
    return len;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    xfer *x = user;
    size_t len = size * n;
    if (!x->started) {
        x->started = 1;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->code);
        if (x->code == 200 && x->offset > 0) {
            /* the server ignored the Range request: start the file over */
            if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
                x->io_error = errno;
                return 0;
            }
            x->offset = 0;
            x->restarted = 1;
        } else if (x->code == 206) {
            if (x->range_start != x->offset) {
                x->bad_status = 1; /* a range we did not ask for */
                return 0;
            }
        } else if (x->code != 200) {
            x->bad_status = 1;
            return 0;
        }
        if (x->total < 0) {
            curl_off_t cl = -1;
            if (curl_easy_getinfo(x->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
                cl >= 0)
                x->total = x->offset + (int64_t)cl;
        }
        if (x->total > x->cap) { /* announced up front: not the archive we want */
            x->too_big = 1;
            return 0;
        }
    }
    if (x->offset + x->written + (int64_t)len > x->cap) { /* an endless body */
        x->too_big = 1;
        return 0;
    }
    if (write_all(x->fd, p, len) != 0) {
        x->io_error = errno ? errno : EIO;
        return 0;
    }
    x->written += (int64_t)len;
    return len;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    xfer *x = user;
    if (!x->o->progress)
        return 0;
    double now = rs_now();
    if (now - x->last_report < 0.1) /* libcurl calls this many times a second */
        return 0;
    x->last_report = now;
    const int64_t have = x->offset + x->written;
    double frac = x->total > 0 ? (double)have / (double)x->total : -1.0;
    char what[64];
    if (x->total > 0)
        snprintf(what, sizeof what, "CIFAR-10 %.1f/%.1f MB", have / 1e6, x->total / 1e6);
    else
        snprintf(what, sizeof what, "CIFAR-10 %.1f MB", have / 1e6);
    if (x->o->progress(x->o->user, frac, what)) {
        x->cancelled = 1;
        return 1;
    }
    return 0;
}

static int64_t file_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (int64_t)st.st_size : -1;
}

static long fetch_stall_of(const fetch_opts *o)
{
    return o->stall_secs > 0 ? o->stall_secs : FETCH_STALL_SECS;
}

static long fetch_deadline_of(const fetch_opts *o)
{
    return o->deadline_secs > 0 ? o->deadline_secs : FETCH_DEADLINE_SECS;
}

/* The largest archive that can unpack to `records` records per batch file: a tar of the six
 * batch files and the two extras (a 512-byte header each, data padded to 512, the directory
 * entry, two end blocks, padding to a 10 KiB record), plus gzip's worst case on incompressible
 * data (5 bytes per 16 KiB stored block, 18 bytes of header and trailer). */
int64_t fetch_max_archive_bytes(int records)
{
    int64_t rec = records > 0 ? records : FETCH_CIFAR10_RECORDS;
    int64_t batch = rec * 3073, tar = 512 + 1024 + 10240;
    tar += (int64_t)N_BATCH * (512 + (batch + 511) / 512 * 512);
    tar += (int64_t)N_EXTRA * (512 + EXTRA_MAX_BYTES);
    return tar + (tar / 16384 + 1) * 5 + 18;
}

/* One request continuing `part`. Returns 0 complete, 1 interrupted (retryable), -1 failed,
 * RS_CANCELLED. */
/* Whether the bytes of an earlier .part can be the start of the archive: no longer than it can
 * be, and a gzip stream (RFC 1952: 1f 8b, deflate). Anything else is junk from a hostile or
 * broken server and must not be resumed from. */
static int plausible_part(int fd, int64_t have, int64_t cap)
{
    if (have > cap)
        return 0;
    static const uint8_t magic[3] = {0x1f, 0x8b, 0x08};
    uint8_t head[3];
    size_t want = have < 3 ? (size_t)have : 3;
    if (want == 0)
        return 1;
    if (pread(fd, head, want, 0) != (ssize_t)want)
        return 0;
    return memcmp(head, magic, want) == 0;
}

static int download_once(const char *url, const char *part, const fetch_opts *o, int64_t cap,
                         double deadline, fetch_result *r, rs_err *e)
{
    /* never through a link someone left in a shared directory: a restart truncates the file */
    int fd = open(part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ELOOP)
        return rs_fail(e, "%s: a symbolic link; refusing to download through it (remove it)", part);
    if (fd < 0)
        return rs_fail(e, "%s: %s", part, strerror(errno));
    struct stat pst;
    if (fstat(fd, &pst) != 0 || !S_ISREG(pst.st_mode)) {
        close(fd);
        return rs_fail(e, "%s: not a regular file; refusing to download into it", part);
    }
    int64_t have = file_size(fd);
    if (have > 0 && !plausible_part(fd, have, cap)) {
        /* start over rather than append the real archive to junk */
        if (ftruncate(fd, 0) != 0) {
            int err = errno;
            close(fd);
            return rs_fail(e, "%s: cannot discard it: %s", part, strerror(err));
        }
        have = 0;
        r->discarded = 1;
    }
    if (have < 0 || lseek(fd, 0, SEEK_END) < 0) {
        close(fd);
        return rs_fail(e, "%s: %s", part, strerror(errno));
    }
    double left = deadline - rs_now();
    if (left <= 0) {
        close(fd);
        return rs_fail(e, "%s: the %ld s deadline passed before the download completed (%lld bytes "
                          "kept in %s for resuming)", url, fetch_deadline_of(o), (long long)have, part);
    }
    CURL *c = curl_easy_init();
    if (!c) {
        close(fd);
        return rs_fail(e, "fetch: cannot initialise libcurl");
    }
    xfer x = {.fd = fd, .offset = have, .range_start = -1, .total = -1, .cap = cap, .o = o, .curl = c};
    char errbuf[CURL_ERROR_SIZE] = "", range[48];
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a server that drips a byte now and then is as stuck as a silent one */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, o->min_speed > 0 ? o->min_speed : FETCH_MIN_SPEED);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, fetch_stall_of(o));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(left * 1000.0) + 1);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "rankscope/0.1");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    if (have > 0) {
        /* a plain Range header: libcurl's own resume refuses a 200 answer; we restart instead */
        snprintf(range, sizeof range, "%lld-", (long long)have);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
        r->resumed = 1;
    }
    CURLcode cc = curl_easy_perform(c);
    long code = x.code;
    if (!x.started)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    int sync_failed = fsync(fd) != 0;
    close(fd);
    r->attempts++;
    if (x.restarted) {
        r->restarted = 1;
        r->resumed = 0;
    }
    if (x.cancelled) {
        rs_fail(e, "download cancelled (%s kept for resuming)", part);
        return RS_CANCELLED;
    }
    if (x.io_error)
        return rs_fail(e, "%s: write failed: %s", part, strerror(x.io_error));
    if (x.too_big) {
        unlink(part);
        return rs_fail(e, "%s: the server sends more than %lld bytes, more than the archive can be "
                          "(download discarded)", url, (long long)cap);
    }
    if (cc == CURLE_OPERATION_TIMEDOUT && rs_now() >= deadline - 0.5) {
        rs_fail(e, "%s: the %ld s deadline passed after %lld bytes (kept in %s for resuming; "
                   "--deadline sets it)", url, fetch_deadline_of(o),
                (long long)(x.offset + x.written), part);
        return -1;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        rs_fail(e, "%s: stalled: under %ld bytes/s for %ld s after %lld bytes (--stall-timeout "
                   "sets it); run again to resume", url,
                o->min_speed > 0 ? o->min_speed : (long)FETCH_MIN_SPEED, fetch_stall_of(o),
                (long long)(x.offset + x.written));
        return 1;
    }
    if (have > 0 && code == 416) /* nothing left to send: the .part is whole (md5 will tell) */
        return 0;
    if (x.bad_status || (cc == CURLE_OK && code != 200 && code != 206))
        return rs_fail(e, "%s: HTTP %ld%s", url, code,
                       code == 206 ? " with a range that does not continue the download" : "");
    if (cc != CURLE_OK) {
        if (x.written > 0 || cc == CURLE_PARTIAL_FILE || cc == CURLE_RECV_ERROR ||
            cc == CURLE_GOT_NOTHING || cc == CURLE_OPERATION_TIMEDOUT) {
            rs_fail(e, "%s: transfer interrupted after %lld bytes (%s); run again to resume", url,
                    (long long)(x.offset + x.written), errbuf[0] ? errbuf : curl_easy_strerror(cc));
            return 1;
        }
        return rs_fail(e, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
    }
    if (sync_failed)
        return rs_fail(e, "%s: fsync failed", part);
    if (x.total >= 0 && x.offset + x.written != x.total) {
        rs_fail(e, "%s: got %lld of %lld bytes; run again to resume", url,
                (long long)(x.offset + x.written), (long long)x.total);
        return 1;
    }
    return 0;
}

/* ---- unpacking --------------------------------------------------------------------------- */

/* Index of an expected file name (batches first, then extras), or -1. */
static int expected_index(const char *base)
{
    for (size_t i = 0; i < N_BATCH; ++i)
        if (!strcmp(base, batch_files[i]))
            return (int)i;
    for (size_t i = 0; i < N_EXTRA; ++i)
        if (!strcmp(base, extra_files[i]))
            return (int)(N_BATCH + i);
    return -1;
}

/* Extract the expected files of cifar-10-batches-bin/ into tmpdir. *content_error is set when
 * the archive itself is at fault (so the download is discarded). */
static int extract(const char *archive_path, const char *label, const char *tmpdir, int64_t batch_bytes,
                   int *content_error, rs_err *e)
{
    struct archive *a = archive_read_new();
    if (!a)
        return rs_fail(e, "fetch: cannot initialise libarchive");
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    int rc = -1;
    int seen[N_BATCH + N_EXTRA] = {0};
    static __thread char buf[1 << 16];
    char path[1280];
    *content_error = 1;
    if (archive_read_open_filename(a, archive_path, 1 << 16) != ARCHIVE_OK) {
        rs_fail(e, "%s: %s", label, archive_error_string(a));
        goto done;
    }
    struct archive_entry *ent;
    int hr;
    while ((hr = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(ent);
        if (!name)
            continue;
        while (name[0] == '.' && name[1] == '/')
            name += 2;
        const size_t dl = strlen(FETCH_CIFAR10_DIRNAME);
        if (strncmp(name, FETCH_CIFAR10_DIRNAME, dl) || name[dl] != '/')
            continue;
        const char *base = name + dl + 1;
        int idx = *base ? expected_index(base) : -1;
        if (idx < 0)
            continue; /* the directory entry itself, or a file we do not use */
        if (archive_entry_filetype(ent) != AE_IFREG) {
            rs_fail(e, "%s: %s is not a regular file", label, name);
            goto done;
        }
        if (seen[idx]++) {
            rs_fail(e, "%s: %s appears twice", label, name);
            goto done;
        }
        const int64_t cap = idx < (int)N_BATCH ? batch_bytes : EXTRA_MAX_BYTES;
        if (join(path, sizeof path, tmpdir, base, e))
            goto done;
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0) {
            *content_error = 0;
            rs_fail(e, "%s: %s", path, strerror(errno));
            goto done;
        }
        int64_t got = 0;
        for (;;) {
            la_ssize_t n = archive_read_data(a, buf, sizeof buf);
            if (n == 0)
                break;
            if (n < 0) {
                rs_fail(e, "%s: %s: %s", label, name, archive_error_string(a));
                close(fd);
                goto done;
            }
            got += n;
            if (got > cap) {
                rs_fail(e, "%s: %s is larger than the expected %lld bytes", label, name,
                        (long long)cap);
                close(fd);
                goto done;
            }
            if (write_all(fd, buf, (size_t)n) != 0) {
                *content_error = 0;
                rs_fail(e, "%s: write failed: %s", path, strerror(errno));
                close(fd);
                goto done;
            }
        }
        if (fsync(fd) != 0 || close(fd) != 0) {
            *content_error = 0;
            rs_fail(e, "%s: %s", path, strerror(errno));
            goto done;
        }
    }
    if (hr != ARCHIVE_EOF) {
        rs_fail(e, "%s: corrupt or truncated archive: %s", label, archive_error_string(a));
        goto done;
    }
    for (size_t i = 0; i < N_BATCH; ++i)
        if (!seen[i]) {
            rs_fail(e, "%s: no %s/%s in the archive", label, FETCH_CIFAR10_DIRNAME, batch_files[i]);
            goto done;
        }
    rc = 0;
done:
    archive_read_free(a);
    return rc;
}

/* ---- the whole job ----------------------------------------------------------------------- */

static int valid_md5(const char *s)
{
    if (!s || strlen(s) != 32)
        return 0;
    for (int i = 0; i < 32; ++i)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

/* "DIR/<base>.tmp.<pid>.XXXXXX", a directory made with mkdtemp (fileio's temporary naming, so a
 * later run can tell a killed fetch's leftovers from a running one's). */
#define TMP_BASE "." FETCH_CIFAR10_DIRNAME
#define OLD_BASE "." FETCH_CIFAR10_DIRNAME ".old"

static int make_temp_dir(char *out, size_t len, const char *dir, const char *base, rs_err *e)
{
    if ((size_t)snprintf(out, len, "%s/%s.tmp.%ld.XXXXXX", dir, base, (long)getpid()) >= len)
        return rs_fail(e, "fetch: path too long: %s", dir);
    if (!mkdtemp(out))
        return rs_fail(e, "%s: cannot create a temporary directory: %s", dir, strerror(errno));
    return 0;
}

/* Temporary directories of fetches that were killed (fileio_stale_temp's rule: the pid is gone,
 * or an earlier version's pid-less name is an hour old). */
static void sweep_temp_dirs(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[1280];
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= sizeof p ||
            lstat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (fileio_stale_temp(de->d_name, TMP_BASE, st.st_mtime) ||
            fileio_stale_temp(de->d_name, OLD_BASE, st.st_mtime))
            remove_flat_dir(p);
    }
    closedir(d);
}

static int install(const char *dir, const char *tmpdir, const char *target, rs_err *e)
{
    struct stat st;
    char old[1280] = "";
    if (lstat(target, &st) == 0) {
        /* an incomplete (or --force'd) earlier copy: move it aside, then drop it */
        if (make_temp_dir(old, sizeof old, dir, OLD_BASE, e))
            return -1;
        if (rename(target, old) != 0) {
            int err = errno;
            rmdir(old);
            return rs_fail(e, "%s: cannot replace it: %s", target, strerror(err));
        }
    }
    if (rename(tmpdir, target) != 0) {
        int err = errno;
        if (old[0])
            rename(old, target);
        return rs_fail(e, "%s: rename from %s failed: %s", target, tmpdir, strerror(err));
    }
    fsync_path(dir);
    if (old[0])
        remove_flat_dir(old); /* rename replaced the empty mkdtemp dir by the old target */
    return 0;
}

/* The whole job; *lock_fd gets the descriptor holding DIR's lock (closed by the caller). */
static int fetch_locked(const fetch_opts *opts, fetch_result *result, int *lock_fd, rs_err *e)
{
    static const fetch_opts defaults = {.retries = -1};
    const fetch_opts *o = opts ? opts : &defaults;
    fetch_result local;
    fetch_result *r = result ? result : &local;
    memset(r, 0, sizeof *r);
    const char *url = o->url ? o->url : FETCH_CIFAR10_URL;
    const char *want_md5 = o->md5 ? o->md5 : FETCH_CIFAR10_MD5;
    const int records = o->records > 0 ? o->records : FETCH_CIFAR10_RECORDS;
    const int retries = o->retries >= 0 ? o->retries : 3;
    if (!valid_md5(want_md5))
        return rs_fail(e, "fetch: expected md5 \"%s\" is not 32 hex digits", want_md5);
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return rs_fail(e, "fetch: URL \"%s\" is not http:// or https://", url);

    char dir[1024], target[1280], part[1280], tmpdir[1280];
    if (o->dir) {
        if (snprintf(dir, sizeof dir, "%s", o->dir) >= (int)sizeof dir)
            return rs_fail(e, "fetch: path too long: %s", o->dir);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return rs_fail(e, "fetch: HOME is not set; pass a directory");
        if (snprintf(dir, sizeof dir, "%s/.cache/rankscope", home) >= (int)sizeof dir)
            return rs_fail(e, "fetch: path too long: %s/.cache/rankscope", home);
    }
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dir[--dl] = 0;
    if (mkdir_p(dir, e) || join(target, sizeof target, dir, FETCH_CIFAR10_DIRNAME, e) ||
        join(part, sizeof part, dir, ARCHIVE_NAME PART_SUFFIX, e))
        return -1;
    /* Two fetches into one directory would append to one .part and race on the install: the
     * second one stops. The lock goes with the process, however it ends. */
    *lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*lock_fd < 0)
        return rs_fail(e, "%s: %s", dir, strerror(errno));
    if (flock(*lock_fd, LOCK_EX | LOCK_NB) != 0)
        return rs_fail(e, "%s: another rankscope data fetch is working in this directory (wait for "
                          "it to finish, or stop it)", dir);
    snprintf(r->target, sizeof r->target, "%s", target);
    if (!o->force && fetch_verify_dir(target, records, NULL) == 0) {
        r->already = 1;
        return 0;
    }

    /* A target that is a symbolic link (data kept on another disk) is refreshed where it points:
     * the new copy is built beside the real directory and renamed over it; the link stays. */
    char home[1024], real_target[1280];
    snprintf(home, sizeof home, "%s", dir);
    snprintf(real_target, sizeof real_target, "%s", target);
    struct stat lst;
    if (lstat(target, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        char *rp = realpath(target, NULL);
        struct stat rst;
        if (!rp)
            return rs_fail(e, "%s: a symbolic link to a missing directory (%s); create that "
                              "directory or remove the link", target, strerror(errno));
        if (stat(rp, &rst) != 0 || !S_ISDIR(rst.st_mode) || strlen(rp) >= sizeof home) {
            rs_fail(e, "%s: a symbolic link to %s, which is not a directory", target, rp);
            free(rp);
            return -1;
        }
        snprintf(real_target, sizeof real_target, "%s", rp);
        char *slash = strrchr(rp, '/');
        if (slash == rp)
            slash[1] = 0;
        else
            *slash = 0;
        snprintf(home, sizeof home, "%s", rp);
        free(rp);
    }
    sweep_temp_dirs(home);

    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return rs_fail(e, "fetch: cannot initialise libcurl");
        curl_ready = 1;
    }
    const int64_t cap = o->max_bytes > 0 ? o->max_bytes : fetch_max_archive_bytes(records);
    const double deadline = rs_now() + (double)fetch_deadline_of(o);
    int rc = 1;
    for (int attempt = 0; attempt <= retries && rc == 1; ++attempt)
        rc = download_once(url, part, o, cap, deadline, r, e);
    if (rc != 0) {
        struct stat st;
        if (stat(part, &st) == 0 && st.st_size == 0)
            unlink(part); /* nothing arrived (HTTP error, no connection): leave no trace */
        return rc == 1 ? -1 : rc;
    }

    struct stat st;
    r->bytes = stat(part, &st) == 0 ? (int64_t)st.st_size : -1;
    if (o->progress) { /* the throttled transfer callback may have missed the last bytes */
        char what[64];
        snprintf(what, sizeof what, "CIFAR-10 %.1f MB: md5", r->bytes / 1e6);
        if (o->progress(o->user, 1.0, what)) {
            rs_fail(e, "fetch cancelled before the md5 check (%s kept)", part);
            return RS_CANCELLED;
        }
    }
    if (fetch_md5_file(part, r->md5, e))
        return -1;
    if (strcasecmp(r->md5, want_md5) != 0) {
        unlink(part);
        return rs_fail(e, "%s: md5 %s does not match the expected %s (corrupt download from %s, "
                       "deleted; run again)", ARCHIVE_NAME, r->md5, want_md5, url);
    }

    if (make_temp_dir(tmpdir, sizeof tmpdir, home, TMP_BASE, e))
        return -1;
    int content_error = 0;
    if (o->progress && o->progress(o->user, -1.0, "unpacking CIFAR-10")) {
        remove_flat_dir(tmpdir);
        rs_fail(e, "fetch cancelled before unpacking");
        return RS_CANCELLED;
    }
    if (extract(part, ARCHIVE_NAME, tmpdir, (int64_t)records * 3073, &content_error, e) ||
        (content_error = 1,
         verify_dir(tmpdir, ARCHIVE_NAME ": wrong contents: " FETCH_CIFAR10_DIRNAME, records, e)) ||
        (content_error = 0, fsync_path(tmpdir), install(home, tmpdir, real_target, e))) {
        remove_flat_dir(tmpdir);
        if (content_error)
            unlink(part); /* the archive itself is wrong: the next run downloads it afresh */
        return -1;
    }
    unlink(part);
    return 0;
}

int fetch_unpack(const char *archive, const char *label, const char *dest, int records, rs_err *e)
{
    int content_error;
    if (records <= 0)
        records = FETCH_CIFAR10_RECORDS;
    char shown[600];
    snprintf(shown, sizeof shown, "%.300s: wrong contents: " FETCH_CIFAR10_DIRNAME, label);
    return extract(archive, label, dest, (int64_t)records * 3073, &content_error, e) ||
                   verify_dir(dest, shown, records, e)
               ? -1
               : 0;
}

int fetch_cifar10(const fetch_opts *opts, fetch_result *result, rs_err *e)
{
    int lock_fd = -1;
    int rc = fetch_locked(opts, result, &lock_fd, e);
    if (lock_fd >= 0)
        close(lock_fd);
    return rc;
}
