#!/bin/bash
# export_onnx.sh — `rankscope export --format onnx` (TAP), in interop.sh's style and with
# its helpers (tests/lib.sh: ort_compare over ort_logits.js and tool_logits): for the shipped model
# as is and factorized by a plan, python3-onnx's checker (full_check) accepts the exported file,
# and rankscope's logits (infer_forward) on tests/data/lenet_input.f32 match ONNX Runtime's within
# 1e-4 scaled (|rs-ort| <= 1e-4 * max(1, |ort|)), all finite.
# usage: export_onnx.sh TOOL_LOGITS (env RANKSCOPE_BIN, RS_SOURCE_ROOT). Needs /usr/bin/python3
# with onnx + numpy, node and tests/node_modules/onnxruntime-node; RS_SKIP_INTEROP=1 turns missing
# tools into a skip.
set -u
logits=${1:?usage: export_onnx.sh TOOL_LOGITS}
BIN=${RANKSCOPE_BIN:?RANKSCOPE_BIN not set}
SRC=${RS_SOURCE_ROOT:?RS_SOURCE_ROOT not set}
here=$SRC/tests
input=$here/data/lenet_input.f32
source "$here/lib.sh"
MODEL=$(shipped_model "$SRC")
need_interop export_onnx

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_export_onnx.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

check_variant() { # NAME [rankscope options]
    local name=$1
    shift
    local out=$tmp/$name.onnx
    point "$name: rankscope export --format onnx" "$BIN" export "$MODEL" "$@" --format onnx -o "$out"
    point "$name: onnx.checker (full_check) accepts the export" onnx_check "$out"
    ort_compare "$name" "$out" "$input" 1e-4
}
check_variant original
check_variant factorized --ranks conv2=cp:8,fc1=svd:16
printf 'conv1 tucker2 4,2\nconv2 spatial-svd 6\nfc2 svd 20\n' >"$tmp/plan.txt"
check_variant planned --plan "$tmp/plan.txt"
# the export really is factorized: fewer parameters than the original
fewer() {
    $RS_PY - "$tmp/original.onnx" "$tmp/factorized.onnx" <<'PY'
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
tap_done
