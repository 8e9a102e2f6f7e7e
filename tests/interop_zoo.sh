#!/bin/bash
# interop_zoo.sh — issue 6's real CIFAR-10 nets (tests/gen_zoo.py: VGG with BatchNorm folded or
# kept, ResNet-20 with residual adds / a BatchNorm that cannot fold / GlobalAveragePool, MobileNet
# with depthwise convs, Clip, Pad + AveragePool and the x.view(x.size(0), -1) Shape pattern):
# rankscope loads each PyTorch export (folding BatchNorm / Pad, rewriting the view to a Flatten)
# and writes it back (tool_resave); onnx.checker (full_check) accepts the file; ONNX Runtime and
# rankscope run it on tests/data/zoo/zoo_input.f32 and agree with PyTorch's logits within 1e-4
# (scaled as CHECK_CLOSE); also the opset-11/13/17 exports of tests/gen_zoo_opsets.py (a head
# net with Dropout, Sigmoid, channel Concat, ceil_mode AveragePool, Softmax; MobileNet).
# Same prerequisites and TAP output as interop.sh.
# usage: interop_zoo.sh TOOL_RESAVE TOOL_LOGITS
set -u
resave=${1:?usage: interop.sh TOOL_RESAVE TOOL_LOGITS}
logits=${2:?usage: interop.sh TOOL_RESAVE TOOL_LOGITS}
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data/zoo
py=/usr/bin/python3
tol=1e-4
# FILE[:REF] — REF names the *_logits.f32 when it differs (tests/gen_zoo_opsets.py's exports)
models="vgg_bn vgg_bn_keep resnet20 mobilenet mobilenet_opset11:mobilenet mobilenet_opset17:mobilenet
        head_opset11:head head_opset13:head head_opset17:head"

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

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_interop_zoo.XXXXXX")
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
    node "$here/ort_logits.js" "$1" "$data/zoo_input.f32" "$2" >/dev/null && compare "$2" "$3"
}

rankscope_vs() { # rankscope_vs MODEL OUT.f32 REF.f32 — rankscope's logits, compared with REF
    "$logits" "$1" "$data/zoo_input.f32" "$2" && compare "$2" "$3"
}

for spec in $models; do
    m=${spec%%:*}
    src=$data/$m.onnx
    ref=$data/${spec##*:}_logits.f32
    out=$tmp/$m.rankscope.onnx
    point "$m: ONNX Runtime on the PyTorch export matches PyTorch" ort_vs "$src" "$tmp/$m.orig.ort.f32" "$ref"
    point "$m: rankscope loads it and writes it back" "$resave" "$src" "$out"
    point "$m: onnx.checker (full_check) accepts rankscope's file" checker "$out"
    point "$m: ONNX Runtime on rankscope's file matches PyTorch" ort_vs "$out" "$tmp/$m.ort.f32" "$ref"
    point "$m: rankscope inference on its file matches PyTorch" rankscope_vs "$out" "$tmp/$m.rs.f32" "$ref"
    point "$m: rankscope and ONNX Runtime agree" compare "$tmp/$m.rs.f32" "$tmp/$m.ort.f32"
done

echo "1..$n"
[ "$failed" -eq 0 ]
