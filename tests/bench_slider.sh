#!/bin/bash
# bench_slider.sh — `rankscope bench`'s explorer figures: slider_first_ms (a slider let go to the
# first accuracy shown) and slider_full_ms (to the whole set's), from one measurement, and printed
# even when another part of the bench fails (here the training step, on a net ending in a Softmax,
# which training does not support): the run still says so on stderr and exits non-zero.
# Needs python3-onnx at /usr/bin/python3 to append the Softmax.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${RANKSCOPE_BIN:?set RANKSCOPE_BIN}
source "$here/lib.sh"
unset RANKSCOPE_DATA
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_bench_slider.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
lenet=$(shipped_model "$root")

# field FILE EXPR [CONDITION] — a python expression over the JSON d, printed; fails unless CONDITION
field() { $RS_PY -c "import json,sys; d=json.load(open(sys.argv[1])); print($2); assert ${3:-True}" "$1"; }

"$bin" bench "$lenet" --reps 1 --threads 2 --no-reference --json >"$tmp/lenet.json" 2>"$tmp/lenet.err"
point "bench of the shipped net: exit 0, slider figures" \
    field "$tmp/lenet.json" "(d['slider_first_ms'], d['slider_full_ms'])" \
    "0 < d['slider_first_ms'] <= d['slider_full_ms'] and not d['failures']"
point "... one measurement: the refreshed-accuracy figure is the full-set one" \
    field "$tmp/lenet.json" "d['slider_latency_ms']" "d['slider_latency_ms'] == d['slider_full_ms']"

$RS_PY - "$lenet" "$tmp/softmax.onnx" <<'PY'
import sys, onnx
from onnx import helper
m = onnx.load(sys.argv[1])
g = m.graph
out = g.output[0]
g.node.append(helper.make_node("Softmax", [out.name], [out.name + "_p"], name="probs", axis=1))
out.name += "_p"
onnx.save(m, sys.argv[2])
PY
"$bin" bench "$tmp/softmax.onnx" --reps 1 --threads 2 --no-reference --json >"$tmp/sm.json" 2>"$tmp/sm.err"
rc=$?
point "training step fails: non-zero exit (got $rc)" test "$rc" -ne 0
point "... stderr names the training step and the node" \
    grep -q 'bench: training failed: .*probs.*Softmax' "$tmp/sm.err"
point "... the JSON is printed all the same, the training figure null with its reason" \
    field "$tmp/sm.json" "d['failures']" \
    "d['train_images_per_second'] is None and 'probs' in d['failures']['training'] and d['eval_seconds'] > 0"
point "... and the slider figures are there" \
    field "$tmp/sm.json" "(d['slider_first_ms'], d['slider_full_ms'])" \
    "0 < d['slider_first_ms'] <= d['slider_full_ms'] and d['decompose_seconds'] > 0"
"$bin" bench "$tmp/softmax.onnx" --reps 1 --threads 2 --no-reference >"$tmp/sm.txt" 2>/dev/null
point "... the text output says the training failed and why, and shows the slider figures" \
    bash -c "grep -q 'training  *- failed: .*probs' '$tmp/sm.txt' && grep -q 'first figure shown  *[0-9]' '$tmp/sm.txt'"
tap_done
