#!/bin/bash
# interop_decomp.sh — factorized models (issue 3) evaluate identically in rankscope and in ONNX
# Runtime, and at full rank identically to the unfactorized PyTorch export.
# For each plan, `rankscope decompose MODEL --ranks SPEC -o OUT.onnx` writes the factorized model;
# onnx.checker (full_check) accepts it; ONNX Runtime (tests/ort_logits.js) and rankscope
# (tool_logits) run it on tests/data/lenet_input.f32 and agree within 1e-4 (scaled as CHECK_CLOSE);
# full-rank plans must also match PyTorch's logits of the original model.
# usage: interop_decomp.sh TOOL_LOGITS   (meson passes it; RANKSCOPE_BIN names the binary)
# Prerequisites as tests/interop.sh (RS_SKIP_INTEROP=1 turns missing tools into a skip).
set -u
logits=${1:?usage: interop_decomp.sh TOOL_LOGITS}
bin=${RANKSCOPE_BIN:?RANKSCOPE_BIN must name the rankscope binary}
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
py=/usr/bin/python3
tol=1e-4

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

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_interop_decomp.XXXXXX")
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
ort() { node "$here/ort_logits.js" "$1" "$data/lenet_input.f32" "$2" >/dev/null; }
rs() { "$logits" "$1" "$data/lenet_input.f32" "$2"; }
differs() { # the factorized net is really different from the original (truncation happened)
    $py - "$1" "$2" <<'PY'
import sys
import numpy as np
a, b = np.fromfile(sys.argv[1], "<f4"), np.fromfile(sys.argv[2], "<f4")
d = np.abs(a - b).max()
print(f"max |diff| to the original {d:.2e}")
sys.exit(0 if d > 1e-3 else 1)
PY
}

# name model spec full(1 = exact: must match PyTorch's logits of the original)
plans=(
    "lenet_full lenet_random conv1=slice-svd:5,conv2=spatial-svd:30,fc1=svd:120,fc2=svd:84 1"
    "lenet_tuckerfull lenet_random conv2=tucker2:16:6,conv1=tucker2:6:3 1"
    "lenet_low lenet_random conv1=tucker2:4:2,conv2=cp:8,fc1=svd:20,fc3=svd:5 0"
    "lenet_mix lenet_random conv1=slice-svd:2,conv2=spatial-svd:10,fc2=svd:30 0"
    "convmix_full convmix_random conv1=spatial-svd:15,conv3=tucker2:8:8,fc1=svd:32 1"
    "convmix_low convmix_random conv1=cp:12,conv3=tucker2:4:4,fc1=svd:8 0"
)
for p in "${plans[@]}"; do
    read -r name model spec full <<<"$p"
    out=$tmp/$name.onnx
    point "$name: rankscope decompose --ranks $spec writes it" "$bin" decompose "$data/$model.onnx" \
        --ranks "$spec" -o "$out"
    point "$name: onnx.checker (full_check) accepts it" checker "$out"
    point "$name: ONNX Runtime runs it" ort "$out" "$tmp/$name.ort.f32"
    point "$name: rankscope runs it" rs "$out" "$tmp/$name.rs.f32"
    point "$name: rankscope and ONNX Runtime agree" compare "$tmp/$name.rs.f32" "$tmp/$name.ort.f32"
    if [ "$full" = 1 ]; then
        point "$name: full rank equals PyTorch's original logits" compare "$tmp/$name.ort.f32" \
            "$data/${model}_logits.f32"
    else
        point "$name: truncated ranks change the logits" differs "$tmp/$name.ort.f32" "$data/${model}_logits.f32"
    fi
done

# A grouped conv is reported, not factorized.
refuse() {
    local out
    out=$("$bin" decompose "$data/convmix_random.onnx" --ranks conv2=cp:4 -o "$tmp/no.onnx" 2>&1) && return 1
    [ ! -e "$tmp/no.onnx" ] && grep -q "group" <<<"$out" && echo "$out"
}
point "convmix conv2 (group 3) is refused with a reason" refuse
echo "1..$n"
[ "$failed" -eq 0 ]
