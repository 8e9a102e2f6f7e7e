#!/bin/bash
# interop.sh — what rankscope writes, rankscope, python3-onnx's checker and ONNX Runtime must all
# load and agree on (issue 2). For each golden model exported by tests/gen_models.py:
#   rankscope loads it and writes it back (tool_resave); onnx.checker (full_check) accepts the
#   written file; ONNX Runtime (onnxruntime-node, tests/ort_logits.js) and rankscope's inference
#   (tool_logits) run it on tests/data/lenet_input.f32; their logits agree with PyTorch's and with
#   each other within 1e-4 (scaled: |a-b| <= 1e-4 * max(1, |ref|), as CHECK_CLOSE).
# usage: interop.sh TOOL_RESAVE TOOL_LOGITS      (meson passes both; output is TAP)
# Needs /usr/bin/python3 with onnx + numpy, node, and tests/node_modules/onnxruntime-node
# (cd tests && npm install --ignore-scripts). RS_SKIP_INTEROP=1 turns missing tools into a skip.
set -u
resave=${1:?usage: interop.sh TOOL_RESAVE TOOL_LOGITS}
logits=${2:?usage: interop.sh TOOL_RESAVE TOOL_LOGITS}
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
py=/usr/bin/python3
tol=1e-4
models="lenet_random lenet_reshape convmix_random gemm_nobias"

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
    echo "not ok 1 - interop prerequisites missing:$missing"
    echo "1..1"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_interop.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

# point DESCRIPTION COMMAND... — one TAP line; the command's output becomes diagnostics on
# failure, and its last line is appended to the description on success.
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

compare() { # compare GOT.f32 REF.f32
    [ -s "$1" ] || { echo "$1 was not produced"; return 1; }
    $py - "$1" "$2" "$tol" <<'PY'
import sys
import numpy as np
got, ref = np.fromfile(sys.argv[1], "<f4"), np.fromfile(sys.argv[2], "<f4")
tol = float(sys.argv[3])
if got.size != ref.size or got.size == 0:
    sys.exit(f"{got.size} logits vs {ref.size}")
if not np.isfinite(got).all():
    sys.exit("non-finite logits")
diff = np.abs(got.astype(np.float64) - ref)
scaled = diff / np.maximum(1.0, np.abs(ref))
print(f"max |diff| {diff.max():.2e} over {got.size} logits up to {np.abs(ref).max():.3g}")
sys.exit(0 if scaled.max() <= tol else 1)
PY
}

checker() {
    $py -c 'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' "$1"
}

ort_vs() { # ort_vs MODEL OUT.f32 REF.f32 — ONNX Runtime's logits, compared with REF
    node "$here/ort_logits.js" "$1" "$data/lenet_input.f32" "$2" >/dev/null && compare "$2" "$3"
}

rankscope_vs() { # rankscope_vs MODEL OUT.f32 REF.f32 — rankscope's logits, compared with REF
    "$logits" "$1" "$data/lenet_input.f32" "$2" && compare "$2" "$3"
}

for m in $models; do
    src=$data/$m.onnx
    ref=$data/${m}_logits.f32
    out=$tmp/$m.rankscope.onnx
    point "$m: ONNX Runtime on the PyTorch export matches PyTorch" ort_vs "$src" "$tmp/$m.orig.ort.f32" "$ref"
    point "$m: rankscope loads it and writes it back" "$resave" "$src" "$out"
    point "$m: onnx.checker (full_check) accepts rankscope's file" checker "$out"
    point "$m: ONNX Runtime on rankscope's file matches PyTorch" ort_vs "$out" "$tmp/$m.ort.f32" "$ref"
    point "$m: rankscope inference on its file matches PyTorch" rankscope_vs "$out" "$tmp/$m.rs.f32" "$ref"
    point "$m: rankscope and ONNX Runtime agree" compare "$tmp/$m.rs.f32" "$tmp/$m.ort.f32"
done

# Models after graph edits (tool_resave --edit: grouped + 1x1 Convs, bias-less Gemms, new
# weights): no PyTorch reference exists, so rankscope and ONNX Runtime must agree with each other.
for m in lenet_random convmix_random; do
    out=$tmp/$m.edited.onnx
    point "$m edited: rankscope factorizes it and writes it" "$resave" --edit "$data/$m.onnx" "$out"
    point "$m edited: onnx.checker (full_check) accepts rankscope's file" checker "$out"
    node_ok() { node "$here/ort_logits.js" "$1" "$data/lenet_input.f32" "$2" >/dev/null; }
    point "$m edited: ONNX Runtime runs it" node_ok "$out" "$tmp/$m.edited.ort.f32"
    point "$m edited: rankscope and ONNX Runtime agree" \
        rankscope_vs "$out" "$tmp/$m.edited.rs.f32" "$tmp/$m.edited.ort.f32"
done
echo "1..$n"
[ "$failed" -eq 0 ]
