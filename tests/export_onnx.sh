#!/bin/bash
# export_onnx.sh — `rankscope export --format onnx` (issue 6, TAP), in interop.sh's style and with
# its helpers (ort_logits.js, tool_logits): for the shipped model as is and factorized by a plan,
# python3-onnx's checker (full_check) accepts the exported file, and ONNX Runtime's logits on
# tests/data/lenet_input.f32 match rankscope's (infer_forward) within 1e-4 scaled
# (|a-b| <= 1e-4 * max(1, |ref|)).
# usage: export_onnx.sh TOOL_LOGITS (env RANKSCOPE_BIN, RS_SOURCE_ROOT). Needs /usr/bin/python3
# with onnx + numpy, node and tests/node_modules/onnxruntime-node; RS_SKIP_INTEROP=1 turns missing
# tools into a skip.
set -u
logits=${1:?usage: export_onnx.sh TOOL_LOGITS}
BIN=${RANKSCOPE_BIN:?RANKSCOPE_BIN not set}
SRC=${RS_SOURCE_ROOT:?RS_SOURCE_ROOT not set}
here=$SRC/tests
py=/usr/bin/python3
input=$here/data/lenet_input.f32
MODEL=$SRC/assets/lenet-cifar10.onnx
[ -f "$MODEL" ] || MODEL=$here/data/lenet_random.onnx

missing=""
$py -c 'import onnx, numpy' 2>/dev/null || missing="$missing python3-onnx/numpy at $py;"
command -v node >/dev/null 2>&1 || missing="$missing node;"
[ -d "$here/node_modules/onnxruntime-node" ] ||
    missing="$missing onnxruntime-node (cd tests && npm install --ignore-scripts);"
if [ -n "$missing" ]; then
    if [ "${RS_SKIP_INTEROP:-0}" = 1 ]; then
        echo "1..0 # SKIP missing:$missing"
        exit 0
    fi
    echo "not ok 1 - export_onnx prerequisites missing:$missing"
    echo "1..1"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_export_onnx.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0
point() {
    local desc=$1 out
    shift
    n=$((n + 1))
    if out=$("$@" 2>&1); then
        echo "ok $n - $desc${out:+ (${out##*$'\n'})}"
    else
        failed=$((failed + 1))
        echo "not ok $n - $desc"
        [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/#   /'
    fi
}
compare() {
    [ -s "$1" ] || { echo "$1 was not produced"; return 1; }
    $py - "$1" "$2" <<'PY'
import sys
import numpy as np
got, ref = np.fromfile(sys.argv[1], "<f4"), np.fromfile(sys.argv[2], "<f4")
if got.size != ref.size or got.size == 0:
    sys.exit(f"{got.size} logits vs {ref.size}")
diff = np.abs(got.astype(np.float64) - ref)
print(f"max |diff| {diff.max():.2e} over {got.size} logits")
sys.exit(0 if (diff / np.maximum(1.0, np.abs(ref))).max() <= 1e-4 else 1)
PY
}
checker() {
    $py -c 'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' "$1"
}
ort() { node "$here/ort_logits.js" "$1" "$input" "$2" >/dev/null; }

check_variant() { # NAME [rankscope options]
    local name=$1
    shift
    local out=$tmp/$name.onnx
    point "$name: rankscope export --format onnx" "$BIN" export "$MODEL" "$@" --format onnx -o "$out"
    point "$name: onnx.checker (full_check) accepts the export" checker "$out"
    point "$name: ONNX Runtime runs it" ort "$out" "$tmp/$name.ort.f32"
    point "$name: rankscope infer_forward on it" "$logits" "$out" "$input" "$tmp/$name.rs.f32"
    point "$name: ONNX Runtime and rankscope agree within 1e-4" \
        compare "$tmp/$name.ort.f32" "$tmp/$name.rs.f32"
}
check_variant original
check_variant factorized --ranks conv2=cp:8,fc1=svd:16
printf 'conv1 tucker2 4,2\nconv2 spatial-svd 6\nfc2 svd 20\n' >"$tmp/plan.txt"
check_variant planned --plan "$tmp/plan.txt"
# the export really is factorized: fewer parameters than the original
fewer() {
    $py - "$tmp/original.onnx" "$tmp/factorized.onnx" <<'PY'
import sys
import numpy as np
import onnx
count = lambda p: sum(int(np.prod(t.dims)) for t in onnx.load(p).graph.initializer if t.data_type == 1)
a, b = count(sys.argv[1]), count(sys.argv[2])
print(f"{a} -> {b} float parameters")
sys.exit(0 if b < a else 1)
PY
}
point "factorized export holds fewer parameters" fewer
echo "1..$n"
[ "$failed" -eq 0 ]
