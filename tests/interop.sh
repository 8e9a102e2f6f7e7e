#!/bin/bash
# interop.sh — what rankscope writes, rankscope, python3-onnx's checker and ONNX Runtime must all
# load and agree on. For each golden model exported by tests/gen_models.py:
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
tol=1e-4
models="lenet_random lenet_reshape convmix_random gemm_nobias"
source "$here/lib.sh"
need_interop interop

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_interop.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

for m in $models; do
    golden_roundtrip "$m" "$data/$m.onnx" "$data/${m}_logits.f32" "$data/lenet_input.f32"
done

# Models after graph edits (tool_resave --edit: grouped + 1x1 Convs, bias-less Gemms, new
# weights): no PyTorch reference exists, so rankscope and ONNX Runtime must agree with each other.
for m in lenet_random convmix_random; do
    out=$tmp/$m.edited.onnx
    point "$m edited: rankscope factorizes it and writes it" "$resave" --edit "$data/$m.onnx" "$out"
    point "$m edited: onnx.checker (full_check) accepts rankscope's file" onnx_check "$out"
    ort_compare "$m edited" "$out" "$data/lenet_input.f32" "$tol"
done
tap_done
