#!/bin/bash
# fit.sh — `--fit outputs` (data-aware factorization, src/engine/fit.c) against an independent
# numpy/PyTorch reference (tests/fit_ref.py: same heads solved from scratch in float64), on the
# shipped net with every fitted method: cp, tucker2 and svd in one sequential plan, spatial-svd
# in another; then the CLI's errors. Needs the CIFAR-10 training batches (RS_TEST_CIFAR) for the
# calibration images and /usr/bin/python3 with torch, onnx, numpy; skips otherwise.
set -u
bin=${RANKSCOPE_BIN:?RANKSCOPE_BIN must name the rankscope binary}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
dump() { :; } # no tmux pane to show on failure
data=${RS_TEST_CIFAR:-}
need_cifar_train
if ! $RS_PY -c 'import torch, onnx, numpy' 2>/dev/null; then
    echo "1..0 # SKIP /usr/bin/python3 lacks torch / onnx / numpy"
    exit 0
fi
model=$(shipped_model "$here/..")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_fit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# run_ref PLAN N LAYER... — weight-only and output-fitted models, then the reference's TAP lines
run_ref() {
    local plan=$1 calib=$2 k=$n
    shift 2
    point "decompose --ranks $plan (weights)" "$bin" decompose "$model" --ranks "$plan" -o "$tmp/w.onnx" --force
    point "decompose --ranks $plan --fit layers --calib-images $calib" \
        "$bin" decompose "$model" --ranks "$plan" --fit layers --calib-images "$calib" --data "$data" \
        -o "$tmp/o.onnx" --force
    local out
    out=$(OPENBLAS_NUM_THREADS=1 $RS_PY "$here/fit_ref.py" "$model" "$tmp/w.onnx" "$tmp/o.onnx" "$data" "$calib" "$@" 2>&1)
    while IFS= read -r line; do
        case $line in
        "ok "*) ok "${line#ok * - }" ;;
        "not ok "*) notok "${line#not ok * - }" ;;
        1..*) ;;
        *) echo "# $line" ;;
        esac
    done <<<"$out"
    [ $((n - k)) -ge $((2 + 3 * $#)) ] || notok "fit_ref.py reported every layer ($out)"
}

run_ref conv1=cp:14,conv2=tucker2:8,fc1=svd:40,fc2=svd:10 500 conv1 conv2 fc1 fc2
run_ref conv1=spatial-svd:4,conv2=spatial-svd:10 300 conv1 conv2

# one layer: the output error on the held-out test sample falls, the weight error may rise
"$bin" decompose "$model" --layer conv2 --method tucker2 --rank 8 --json --data "$data" >"$tmp/w.json" 2>/dev/null
"$bin" decompose "$model" --layer conv2 --method tucker2 --rank 8 --fit layers --calib-images 500 --json \
    --data "$data" >"$tmp/o.json" 2>/dev/null
point "decompose --layer conv2 tucker2 8 --fit layers: output error on the test sample below the weight fit's" \
    $RS_PY -c 'import json, sys; w, o = (json.load(open(f))["output_error"] for f in sys.argv[1:]); print(f"{o:.4f} < {w:.4f}"); sys.exit(0 if o < w else 1)' "$tmp/w.json" "$tmp/o.json"

# the joint refinement (--fit outputs = the layer-wise fits, then the whole net distilled from the
# original on the calibration images): more accurate than the layer-wise fits alone on the test
# sample, and the same whatever --threads (it runs on one thread)
acc_of() { "$bin" eval "$model" --ranks fc1=svd:18,fc2=svd:10 --split sample --calib-images 500 --data "$data" \
    --json "$@" 2>/dev/null | $RS_PY -c 'import json, sys; print(json.load(sys.stdin)["accuracy"])'; }
a_l=$(acc_of --fit layers) a_o=$(acc_of --fit outputs --threads 1) a_o2=$(acc_of --fit outputs --threads 2)
check "eval --fit outputs (refined, $a_o) above --fit layers ($a_l) at fc1 svd 18, fc2 svd 10" \
    "$RS_PY -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' '$a_o' '$a_l'"
check "the refinement gives the same net with --threads 1 and 2 ($a_o, $a_o2)" '[ -n "$a_o" ] && [ "$a_o" = "$a_o2" ]'

# the CLI: a bad --fit value, a bad count, no training data
out=$("$bin" eval "$model" --ranks fc1=svd:20 --fit both 2>&1); rc=$?
check "--fit both refused with exit 2, naming the value" '[ $rc -eq 2 ] && [[ $out == *"unknown fit \"both\""* ]]'
out=$("$bin" eval "$model" --ranks fc1=svd:20 --fit outputs --calib-images 0 2>&1); rc=$?
check "--calib-images 0 refused with exit 2" '[ $rc -eq 2 ] && [[ $out == *"--calib-images"* ]]'
mkdir -p "$tmp/empty"
out=$("$bin" eval "$model" --ranks fc1=svd:20 --fit outputs --data "$tmp/empty" 2>&1); rc=$?
check "--fit outputs without training data: exit 1, one line saying why" \
    '[ $rc -eq 1 ] && [[ $out == *"needs CIFAR-10 training images"* ]] && [ "$(printf "%s\n" "$out" | wc -l)" -eq 1 ]'
tap_done
