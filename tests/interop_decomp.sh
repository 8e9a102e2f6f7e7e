#!/bin/bash
# interop_decomp.sh — factorized models evaluate identically in rankscope and in ONNX
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
tol=1e-4
source "$here/lib.sh"
need_interop interop

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_interop_decomp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

differs() { # the factorized net is really different from the original (truncation happened)
    $RS_PY - "$1" "$2" <<'PY'
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
    point "$name: onnx.checker (full_check) accepts it" onnx_check "$out"
    ort_compare "$name" "$out" "$data/lenet_input.f32" "$tol"
    if [ "$full" = 1 ]; then
        point "$name: full rank equals PyTorch's original logits" compare_logits "$tmp/$name.ort.f32" \
            "$data/${model}_logits.f32" "$tol"
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
tap_done
