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
tol=1e-4
models="lenet_random lenet_reshape convmix_random gemm_nobias"
source "$here/lib.sh"
need_interop interop

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_interop.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

ort_vs() { # ort_vs MODEL OUT.f32 REF.f32 — ONNX Runtime's logits, compared with REF
    ort_run "$1" "$data/lenet_input.f32" "$2" && compare_logits "$2" "$3" "$tol"
}

rankscope_vs() { # rankscope_vs MODEL OUT.f32 REF.f32 — rankscope's logits, compared with REF
    "$logits" "$1" "$data/lenet_input.f32" "$2" && compare_logits "$2" "$3" "$tol"
}

for m in $models; do
    src=$data/$m.onnx
    ref=$data/${m}_logits.f32
    out=$tmp/$m.rankscope.onnx
    point "$m: ONNX Runtime on the PyTorch export matches PyTorch" ort_vs "$src" "$tmp/$m.orig.ort.f32" "$ref"
    point "$m: rankscope loads it and writes it back" "$resave" "$src" "$out"
    point "$m: onnx.checker (full_check) accepts rankscope's file" onnx_check "$out"
    point "$m: ONNX Runtime on rankscope's file matches PyTorch" ort_vs "$out" "$tmp/$m.ort.f32" "$ref"
    point "$m: rankscope inference on its file matches PyTorch" rankscope_vs "$out" "$tmp/$m.rs.f32" "$ref"
    point "$m: rankscope and ONNX Runtime agree" compare_logits "$tmp/$m.rs.f32" "$tmp/$m.ort.f32" "$tol"
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
