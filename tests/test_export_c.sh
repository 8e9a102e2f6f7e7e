#!/bin/bash
# test_export_c.sh — `rankscope export --format c` end to end (TAP): the generated
# model.h / model.c compile with the system compiler (-std=c99 -Wall -Wextra -Werror -pedantic),
# run through a small driver on 300 images of the shipped CIFAR-10 sample, and give rankscope's
# own logits (tool_logits = infer_forward on the same model, exported as ONNX by the same command
# line) within 1e-4 scaled (|a-b| <= 1e-4 * max(1, |ref|)), for the original model and factorized
# ones. The driver surrounds scratch with guard words and checks the input is never written;
# one build also runs under AddressSanitizer/UBSan with a scratch of exactly
# MODEL_SCRATCH_FLOATS. --int8: its accuracy on the whole 2000-image sample, computed from the
# compiled code's predictions, must match what the CLI reports for the int8 weights.
# usage: test_export_c.sh TOOL_LOGITS        (meson passes it; env RANKSCOPE_BIN, RS_SOURCE_ROOT)
set -u
logits=${1:?usage: test_export_c.sh TOOL_LOGITS}
BIN=${RANKSCOPE_BIN:?RANKSCOPE_BIN not set}
SRC=${RS_SOURCE_ROOT:?RS_SOURCE_ROOT not set}
source "$(dirname "$0")/lib.sh"
PY=$RS_PY
CC=${CC:-cc}
MODEL=$(shipped_model "$SRC")
SAMPLE=$SRC/assets/cifar10-test-sample.bin
CFLAGS="-std=c99 -Wall -Wextra -Werror -pedantic -O2"
T=$(mktemp -d "${TMPDIR:-/tmp}/rs_export_c.XXXXXX")
trap 'rm -rf "$T"' EXIT

if ! command -v "$CC" >/dev/null 2>&1 || ! $PY -c 'import numpy' 2>/dev/null; then
    echo "1..0 # SKIP needs a C compiler and $PY with numpy"
    exit 0
fi

# Normalised CHW floats ((x/127.5) - 1, as cifar10_normalize) and labels from the sample.
$PY - "$SAMPLE" "$T" <<'PY'
import sys
import numpy as np
rec = np.fromfile(sys.argv[1], np.uint8).reshape(-1, 3073)
x = (rec[:, 1:].astype(np.float32) / np.float32(127.5) - np.float32(1)).astype("<f4")
x[:300].tofile(sys.argv[2] + "/img300.f32")
x.tofile(sys.argv[2] + "/img_all.f32")
rec[:, 0].tofile(sys.argv[2] + "/labels.u8")
PY

cat >"$T/driver.c" <<'EOF'
/* driver.c — run model_forward over raw float32 images: driver IN.f32 OUT.f32 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#define GUARD 64
#define CANARY 12345.678f
int main(int argc, char **argv)
{
    FILE *fi, *fo;
    float *in = malloc(sizeof(float) * MODEL_INPUT_FLOATS);
    float *keep = malloc(sizeof(float) * MODEL_INPUT_FLOATS);
    float *scratch = malloc(sizeof(float) * (MODEL_SCRATCH_FLOATS + 2 * GUARD));
    float out[MODEL_OUTPUT_FLOATS];
    long i, images = 0;
    if (argc != 3 || !in || !keep || !scratch || !(fi = fopen(argv[1], "rb")) ||
        !(fo = fopen(argv[2], "wb")))
        return 2;
    for (i = 0; i < MODEL_SCRATCH_FLOATS + 2 * GUARD; ++i)
        scratch[i] = CANARY;
    while (fread(in, sizeof(float), MODEL_INPUT_FLOATS, fi) == (size_t)MODEL_INPUT_FLOATS) {
        memcpy(keep, in, sizeof(float) * MODEL_INPUT_FLOATS);
        model_forward(in, out, scratch + GUARD);
        for (i = 0; i < GUARD; ++i)
            if (scratch[i] != CANARY || scratch[GUARD + MODEL_SCRATCH_FLOATS + i] != CANARY) {
                fprintf(stderr, "image %ld: scratch written out of bounds\n", images);
                return 1;
            }
        if (memcmp(keep, in, sizeof(float) * MODEL_INPUT_FLOATS)) {
            fprintf(stderr, "image %ld: input buffer modified\n", images);
            return 1;
        }
        if (fwrite(out, sizeof(float), MODEL_OUTPUT_FLOATS, fo) != (size_t)MODEL_OUTPUT_FLOATS)
            return 1;
        ++images;
    }
    printf("%ld images, scratch %ld floats\n", images, (long)MODEL_SCRATCH_FLOATS);
    return fclose(fo) != 0;
}
EOF

build() { # build DIR EXE [extra flags]: compile the generated pair + the driver
    local dir=$1 exe=$2
    shift 2
    [ -s "$dir/model.h" ] && [ -s "$dir/model.c" ] || { echo "$dir/model.[ch] missing"; return 1; }
    $CC $CFLAGS "$@" -I"$dir" "$dir/model.c" "$T/driver.c" -o "$exe"
}

# variant NAME [rankscope options]: export $VMODEL (default the shipped model) as C and as ONNX
# with the same options, compile, run, compare
variant() {
    local name=$1 MODEL=${VMODEL:-$MODEL}
    shift
    local d=$T/$name
    point "$name: export --format c writes model.h + model.c" \
        "$BIN" export "$MODEL" "$@" --format c -o "$d"
    point "$name: export --format onnx (rankscope's reference model)" \
        "$BIN" export "$MODEL" "$@" --format onnx -o "$T/$name.onnx"
    point "$name: generated C compiles with $CC $CFLAGS" build "$d" "$T/$name.exe"
    point "$name: generated C runs on 300 sample images (scratch guards intact)" \
        "$T/$name.exe" "$T/img300.f32" "$T/$name.c.f32"
    point "$name: rankscope infer_forward on the same model" \
        "$logits" "$T/$name.onnx" "$T/img300.f32" "$T/$name.rs.f32"
    point "$name: C logits match rankscope's within 1e-4" \
        compare_logits "$T/$name.c.f32" "$T/$name.rs.f32" 1e-4
}

variant original
variant factorized --ranks conv2=cp:8,fc1=svd:16
printf 'conv1 tucker2 4,2\nconv2 spatial-svd 6\nfc2 svd 20\n' >"$T/plan.txt"
variant planned --plan "$T/plan.txt"
# padded / strided / dilated / grouped Conv, 1x1 Conv, padded 3x3 MaxPool, MatMul, MatMul + Add
VMODEL=$SRC/tests/data/convmix_random.onnx variant convmix
# a bias-less strided Conv, Gemm without C, alpha 0.5, transB 0
VMODEL=$SRC/tests/data/gemm_nobias.onnx variant gemm_nobias
# x.view(-1, 400): Reshape with an int64 shape initializer
VMODEL=$SRC/tests/data/lenet_reshape.onnx variant reshape

# Uses no libm and no allocation: no math.h / stdlib.h, links without -lm, no malloc symbol.
nolib() {
    ! grep -Eq '#include *<|malloc|calloc' "$T/factorized/model.c" "$T/factorized/model.h" &&
        $CC -std=c99 -c -O2 "$T/factorized/model.c" -o "$T/f.o" &&
        ! nm -u "$T/f.o" | grep -q . && echo "no includes, no undefined symbols"
}
point "factorized: model.c includes nothing and references no external symbol" nolib

# AddressSanitizer + UBSan with a scratch of exactly MODEL_SCRATCH_FLOATS (a one-image run).
asan() {
    printf '#include "model.h"\n#include <stdlib.h>\n#include <stdio.h>\nint main(void){float *i=calloc(MODEL_INPUT_FLOATS,4),*o=malloc(4*MODEL_OUTPUT_FLOATS),*s=malloc(4*MODEL_SCRATCH_FLOATS);FILE*f=fopen("%s","rb");if(!f||fread(i,4,MODEL_INPUT_FLOATS,f)!=(size_t)MODEL_INPUT_FLOATS)return 2;model_forward(i,o,s);printf("%%g\\n",o[0]);free(i);free(o);free(s);fclose(f);return 0;}\n' \
        "$T/img300.f32" >"$T/asan.c"
    $CC -std=c99 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -I"$T/$1" \
        "$T/$1/model.c" "$T/asan.c" -o "$T/asan_$1" && "$T/asan_$1" >/dev/null && echo "clean"
}
if echo 'int main(void){return 0;}' | $CC -x c -fsanitize=address - -o "$T/probe" 2>/dev/null; then
    point "factorized: AddressSanitizer/UBSan clean with an exact-size scratch" asan factorized
    point "planned: AddressSanitizer/UBSan clean with an exact-size scratch" asan planned
fi

# Flash and RAM as reported (--json) and as compiled into the header.
figures() {
    "$BIN" export "$MODEL" "$@" --format c -o "$T/fig" --force --json >"$T/fig.json" || return 1
    $PY - "$T/fig.json" "$T/fig/model.h" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
h = open(sys.argv[2]).read()
const = lambda k: int(re.search(r"#define %s (\d+)L" % k, h).group(1))
assert d["flash_bytes"] == const("MODEL_WEIGHT_BYTES") > 0, d
assert d["ram_bytes"] == const("MODEL_SCRATCH_BYTES") == 4 * const("MODEL_SCRATCH_FLOATS"), d
print(f"flash {d['flash_bytes']} bytes, RAM {d['ram_bytes']} bytes, {d['params']} weights")
PY
}
point "original: --json flash/RAM agree with the header" figures
point "factorized: --json flash/RAM agree with the header" figures --ranks conv2=cp:8,fc1=svd:16
smaller() {
    local a b
    a=$("$BIN" export "$MODEL" --format c -o "$T/s1" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["flash_bytes"])')
    b=$("$BIN" export "$MODEL" --ranks conv2=cp:8,fc1=svd:16 --format c -o "$T/s2" --json |
        $PY -c 'import json,sys; print(json.load(sys.stdin)["flash_bytes"])')
    [ "$b" -lt "$a" ] && echo "$a -> $b bytes"
}
point "factorized flash is smaller than the original's" smaller

# --int8: compile, run all 2000 sample images, accuracy from the compiled code's predictions.
int8() {
    "$BIN" export "$MODEL" --int8 --split sample --format c -o "$T/q8" --json >"$T/q8.json" &&
        build "$T/q8" "$T/q8.exe" && "$T/q8.exe" "$T/img_all.f32" "$T/q8.f32" >/dev/null &&
        $PY - "$T/q8.json" "$T/q8.f32" "$T/labels.u8" "$T/q8/model.c" <<'PY'
import json, sys
import numpy as np
d = json.load(open(sys.argv[1]))
logits = np.fromfile(sys.argv[2], "<f4").reshape(-1, 10)
labels = np.fromfile(sys.argv[3], np.uint8)
acc = float((logits.argmax(1) == labels).mean())
assert "signed char" in open(sys.argv[4]).read()
assert d["weights"] == "int8" and d["accuracy"]["images"] == labels.size == 2000, d
# the compiled int8 code and rankscope's evaluation of the int8 weights: at most one near-tie apart
assert abs(acc - d["accuracy"]["int8"]) <= 1.0 / 2000, (acc, d["accuracy"])
print(f"compiled int8 accuracy {100 * acc:.2f} % (CLI: int8 {100 * d['accuracy']['int8']:.2f} %,"
      f" fp32 {100 * d['accuracy']['fp32']:.2f} %), flash {d['flash_bytes']} bytes")
PY
}
point "int8: compiled accuracy on the sample matches the CLI's int8 figure" int8

# Errors: one line naming what is wrong.
errs() {
    local out rc
    out=$("$BIN" export "$MODEL" --format c 2>&1); rc=$?
    [ $rc -eq 2 ] || { echo "missing -o: exit $rc"; return 1; }
    out=$("$BIN" export "$MODEL" --format tflite -o "$T/x" 2>&1); rc=$?
    [ $rc -eq 2 ] && echo "$out" | grep -q tflite || { echo "bad format: $rc $out"; return 1; }
    out=$("$BIN" export "$MODEL" --int8 --format onnx -o "$T/x.onnx" 2>&1); rc=$?
    [ $rc -eq 2 ] || { echo "--int8 with onnx: exit $rc"; return 1; }
    : >"$T/file"
    out=$("$BIN" export "$MODEL" --format c -o "$T/file" 2>&1); rc=$?
    [ $rc -eq 1 ] && echo "$out" | grep -q "not a directory" || { echo "file as dir: $rc $out"; return 1; }
    out=$("$BIN" export "$MODEL" --ranks fc9=svd:3 --format c -o "$T/e" 2>&1); rc=$?
    [ $rc -eq 1 ] && echo "$out" | grep -q fc9 && [ ! -e "$T/e/model.c" ] ||
        { echo "bad plan: $rc $out"; return 1; }
    echo "usage errors exit 2, failures exit 1 naming the culprit"
}
point "export: errors" errs

tap_done
