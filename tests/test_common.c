/* test_common.c — checked arithmetic and status messages. */
#include "check.h"
#include "rankscope/common.h"

#include <stdint.h>
#include <string.h>

int main(void)
{
    size_t r = 0;
    CHECK(rs_size_mul(1u << 20, 1u << 10, &r) == 0 && r == (size_t)1 << 30, "mul in range");
    CHECK(rs_size_mul(SIZE_MAX / 2 + 1, 2, &r) == -1, "mul overflow refused");
    CHECK(rs_size_mul(0, SIZE_MAX, &r) == 0 && r == 0, "mul by zero");
    CHECK(rs_size_add(SIZE_MAX, 1, &r) == -1, "add overflow refused");
    rs_err e;
    CHECK(rs_fail(&e, "layer %s rank %d", "fc1", 7) == -1, "rs_fail returns -1");
    CHECK(strcmp(e.msg, "layer fc1 rank 7") == 0, "message formatted: %s", e.msg);
    rs_failctx(&e, "while loading %s", "x.onnx");
    CHECK(strcmp(e.msg, "while loading x.onnx: layer fc1 rank 7") == 0, "context prefixed: %s", e.msg);
    CHECK(rs_fail(NULL, "no sink") == -1, "NULL error sink accepted");
    rs_fail(&e, "node \"%s\": bad", "a\nb\r\tc\x7f");
    CHECK(strcmp(e.msg, "node \"a?b??c?\": bad") == 0, "control bytes in names never break the line: %s", e.msg);
    rs_failctx(&e, "file \"%s\"", "x\ny");
    CHECK(strchr(e.msg, '\n') == NULL, "context stays one line: %s", e.msg);
    double t0 = rs_now(), t1 = rs_now();
    CHECK(t1 >= t0, "monotonic clock");
    return check_done();
}
