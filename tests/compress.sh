#!/bin/bash
# compress.sh — `rankscope compress` end to end on the shipped net with small splits (a few
# hundred images, one epoch), its figures checked against independent evaluations:
#   --int8: the test accuracy it reports for the saved int8 model equals `rankscope eval` of the
#   file, and the C export of that file (export --format c --int8), compiled with the system
#   compiler and run by a driver that reads the CIFAR-10 test batch itself, classifies within
#   two near-ties of it; the weight bytes equal the exporter's; the file's weights are already
#   int8 (exporting them with --int8 changes no prediction).
#   --stages: stages kept by the acceptance rule; --recipe replays the run byte for byte; recipe
#   errors name file, line and value.
#   --objective latency: the measured speed-up it reports, and its "faster" claim, agree with the
#   timings it reports (test_latency.c checks the verdicts themselves).
# Needs the CIFAR-10 batches (RS_TEST_CIFAR), a C compiler and /usr/bin/python3; skips otherwise.
set -u
bin=${RANKSCOPE_BIN:?RANKSCOPE_BIN must name the rankscope binary}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
dump() { :; }
data=${RS_TEST_CIFAR:-}
CC=${CC:-cc}
need_cifar_train
if ! command -v "$CC" >/dev/null 2>&1 || ! $RS_PY -c 'import json' 2>/dev/null; then
    echo "1..0 # SKIP needs a C compiler and $RS_PY"
    exit 0
fi
model=$(shipped_model "$here/..")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_compress.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
small=(--train-images 500 --val-images 500 --data "$data")
jget() { $RS_PY -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d = d[k]
print(d)' "$@"; }

# A driver for the generated C: reads CIFAR-10 records (label byte + 3072 pixel bytes),
# normalises as the product does (x / 127.5 - 1), prints "correct images".
cat >"$tmp/acc.c" <<'EOF'
#include <stdio.h>
#include "model.h"
int main(int argc, char **argv)
{
    static unsigned char rec[3073];
    static float in[MODEL_INPUT_FLOATS], scratch[MODEL_SCRATCH_FLOATS + 1], out[MODEL_OUTPUT_FLOATS];
    long correct = 0, n = 0;
    FILE *f = argc == 2 ? fopen(argv[1], "rb") : NULL;
    if (!f || MODEL_INPUT_FLOATS != 3072)
        return 2;
    while (fread(rec, 1, sizeof rec, f) == sizeof rec) {
        int i, best = 0;
        for (i = 0; i < 3072; ++i)
            in[i] = (float)rec[1 + i] / 127.5f - 1.0f;
        model_forward(in, out, scratch);
        for (i = 1; i < MODEL_OUTPUT_FLOATS; ++i)
            if (out[i] > out[best])
                best = i;
        correct += best == rec[0];
        ++n;
    }
    printf("%ld %ld\n", correct, n);
    return fclose(f) != 0;
}
EOF

# ---- --int8 ------------------------------------------------------------------------------------
run_q() {
    "$bin" compress "$model" --tolerance 1 "${small[@]}" --finetune 0 --int8 --int8-epochs 1 -o "$tmp/q.onnx" --json \
        >"$tmp/q.json" && [ -s "$tmp/q.onnx" ] && jget "$tmp/q.json" plan
}
point "compress --int8 --int8-epochs 1 on 500/500 images writes the int8 model" run_q
int8_acc=$(jget "$tmp/q.json" int8.test_acc_int8 2>/dev/null)
check "the JSON's test_acc is the int8 one ($int8_acc)" \
    '[ -n "$int8_acc" ] && [ "$(jget "$tmp/q.json" test_acc)" = "$int8_acc" ]'
"$bin" eval "$tmp/q.onnx" --data "$data" --json >"$tmp/eval.json" 2>/dev/null
check "rankscope eval of the saved file gives the reported int8 test accuracy exactly" \
    "$RS_PY -c 'import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) < 1e-9 else 1)' \
        \"\$(jget $tmp/eval.json accuracy)\" \"$int8_acc\""

c_export_acc() {
    "$bin" export "$tmp/q.onnx" --int8 --format c -o "$tmp/qc" --split sample --json >"$tmp/export.json" &&
        $CC -std=c99 -O2 -I"$tmp/qc" "$tmp/qc/model.c" "$tmp/acc.c" -o "$tmp/acc" &&
        "$tmp/acc" "$data/test_batch.bin" >"$tmp/acc.txt" &&
        $RS_PY - "$tmp/acc.txt" "$int8_acc" <<'PY'
import sys
correct, n = map(int, open(sys.argv[1]).read().split())
acc, reported = correct / n, float(sys.argv[2])
print(f"compiled int8 C: {100 * acc:.2f} % on {n} test images, compress reported {100 * reported:.2f} %")
sys.exit(0 if n == 10000 and abs(acc - reported) <= 2.0 / n else 1)
PY
}
point "the compiled int8 C export classifies the test set as compress reported (within 2 near-ties)" c_export_acc

bytes_match() {
    $RS_PY - "$tmp/q.json" "$tmp/export.json" <<'PY'
import json, sys
q, x = (json.load(open(f)) for f in sys.argv[1:])
got, want = q["int8"]["weight_bytes_int8"], x["flash_bytes"]
print(f"int8 weight bytes {got} (export: {want}), fp32 original {q['int8']['weight_bytes_fp32_original']}")
sys.exit(0 if got == want and q["int8"]["weight_bytes_fp32_original"] > 3 * got else 1)
PY
}
point "int8 weight bytes equal the C export's, under a third of the original fp32" bytes_match
on_grid() {
    $RS_PY - "$tmp/export.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["accuracy"]
print(f"sample: fp32 {a['fp32']:.4f}, int8 {a['int8']:.4f}")
sys.exit(0 if a["fp32"] == a["int8"] else 1)
PY
}
point "the saved weights are already int8: export --int8 changes no accuracy on the sample" on_grid
check "int8 test accuracy within 1.5 pt of the float compressed net's" \
    "$RS_PY -c 'import json,sys; d=json.load(open(sys.argv[1]))[\"int8\"]; sys.exit(0 if d[\"test_acc_float\"] - d[\"test_acc_int8\"] <= 0.015 else 1)' $tmp/q.json"

# ---- --objective latency -----------------------------------------------------------------------
run_lat() {
    XDG_CACHE_HOME=$tmp/cache "$bin" compress "$model" --tolerance 1 --val-images 500 --data "$data" \
        --finetune 0 --fit weights --objective latency -o "$tmp/l.onnx" --json >"$tmp/l.json" && [ -s "$tmp/l.onnx" ] &&
        ls "$tmp"/cache/rankscope/latency-*.tsv >/dev/null && jget "$tmp/l.json" speed
}
point "compress --objective latency: runs, caches its layer times under XDG_CACHE_HOME" run_lat
lat_claims() {
    $RS_PY - "$tmp/l.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["speed"]
assert d["objective"] == "latency" and s["samples"] == 5, d
for f in ("b1", "batch"):
    v, x = s[f + "_verdict"], s[f + "_speedup"]
    # medians as reported: the speed-up is their ratio, and a verdict never contradicts it
    assert abs(x - s[f + "_before_s"] / s[f + "_after_s"]) <= 1e-3 * x, (f, s)
    assert v != "faster" or x >= 1.02, (f, s)
    assert v != "slower" or x <= 1 / 1.02, (f, s)
assert s["faster"] == (s["b1_verdict"] == "faster"), s
print(f"batch 1 {s['b1_speedup']:.2f}x {s['b1_verdict']}, batch {s['batch']} {s['batch_speedup']:.2f}x {s['batch_verdict']}")
PY
}
point "the speed-up and 'faster' claims agree with the medians they report" lat_claims
out=$("$bin" compress "$model" --objective latency --latency fast -o "$tmp/x.onnx" 2>&1); rc=$?
check "--latency fast: exit 2 naming the value" '[ $rc -eq 2 ] && [[ $out == *"--latency \"fast\""* ]]'

# ---- --fit outputs ------------------------------------------------------------------------------
# The accuracy search / compress report for their plan is the accuracy of that plan factorized by
# eval --fit outputs on the same calibration images (another code path: cli_plan.c), not by the
# weight fit.
fit_search() {
    "$bin" search "$model" --split sample --layers conv2,fc1,fc2 --data "$data" --fit outputs --calib-images 200 -o "$tmp/fs.plan" \
        --json >"$tmp/fs.json" &&
        "$bin" eval "$model" --plan "$tmp/fs.plan" --split sample --data "$data" --fit outputs \
            --calib-images 200 --json >"$tmp/fs_eval.json" 2>/dev/null &&
        "$bin" eval "$model" --plan "$tmp/fs.plan" --split sample --data "$data" --json >"$tmp/fs_w.json" &&
        $RS_PY - "$tmp/fs.json" "$tmp/fs_eval.json" "$tmp/fs_w.json" <<'PY'
import json, sys
s, o, w = (json.load(open(f)) for f in sys.argv[1:])
assert s["fit"] == "outputs" and s["calib_images"] == 200, s
print(f"search {s['val_acc']:.4f}, eval --fit outputs {o['accuracy']:.4f}, eval (weights) {w['accuracy']:.4f}")
sys.exit(0 if abs(s["val_acc"] - o["accuracy"]) < 1e-9 else 1)
PY
}
point "search --fit outputs: its plan's accuracy is eval --fit outputs' on the same images" fit_search
fit_compress() {
    "$bin" compress "$model" --tolerance 1 --val-images 500 --data "$data" --finetune 0 --fit outputs --calib-images 200 \
        -o "$tmp/fc.onnx" --plan-out "$tmp/fc.plan" --json >"$tmp/fc.json" &&
        "$bin" eval "$model" --plan "$tmp/fc.plan" --data "$data" --fit outputs --calib-images 200 \
            --json >"$tmp/fc_eval.json" 2>/dev/null &&
        $RS_PY - "$tmp/fc.json" "$tmp/fc_eval.json" <<'PY'
import json, sys
c, o = (json.load(open(f)) for f in sys.argv[1:])
assert c["fit"] == "outputs", c
print(f"compress test {c['test_acc']:.4f}, eval --fit outputs of its plan {o['accuracy']:.4f}")
sys.exit(0 if abs(c["test_acc"] - o["accuracy"]) < 1e-9 and o["images"] == c["test_images"] else 1)
PY
}
point "compress --fit outputs: the saved net is its plan fitted to outputs (test accuracy = eval --fit outputs)" \
    fit_compress

# ---- the defaults: staged, distilled, factors fitted to the outputs, MAC floor 1.4 ---------------
defaults() {
    "$bin" compress "$model" --tolerance 2 --train-images 300 --val-images 300 --rounds 1 --data "$data" \
        --calib-images 200 --threads 2 -o "$tmp/d.onnx" --json >"$tmp/d.json" &&
        $RS_PY - "$tmp/d.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
got = (d["mode"], d["fit"], d["finetune_epochs"], d["min_macs_ratio"], d["stages_max"], d["extend_points"],
       d["polish_epochs"], d["bn"])
kinds = [r["kind"] for r in d["rounds"]]
print("mode, fit, epochs, MAC floor, stages, extend, polish, bn:", got, "rounds:", kinds)
want_kinds = ["stage", "polish"] if d["rounds"][0]["accepted"] else ["stage"]
sys.exit(0 if got == ("stages", "outputs", 20, 1.4, 6, 0.5, 40, False) and kinds == want_kinds else 1)
PY
}
point "compress with defaults: stages of 20 epochs (extended by 20 within 0.5 pt), a 40-epoch polish, factors fitted to outputs, MAC floor 1.4 (--rounds 1 caps it)" \
    defaults

# ---- staged compression and its recipe -----------------------------------------------------------
# A staged run writes a recipe; replaying it gives the same net byte for byte (and so the same
# test accuracy); the stage verdicts follow the acceptance rule from the figures they report.
staged=(--tolerance 2 --finetune 1 --polish 2 --extend 1 --train-images 500 --val-images 500 --fit weights --data "$data" --threads 2)
run_staged() {
    "$bin" compress "$model" "${staged[@]}" --stages 3 --recipe-out "$tmp/s.recipe" -o "$tmp/s.onnx" \
        --json >"$tmp/s.json" && [ -s "$tmp/s.recipe" ] && grep -c "^stage" "$tmp/s.recipe"
}
point "compress --stages 3 --finetune 1 on 500/500 images writes the net and its recipe" run_staged
stage_rule() {
    $RS_PY - "$tmp/s.json" "$tmp/s.recipe" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
kept = [r for r in d["rounds"] if r["accepted"]]
best, prev = d["val_acc_before"], None
for r in d["rounds"]:
    drop = 100 * (d["val_acc_before"] - r["val_after_ft"])
    if r["kind"] == "polish":  # the last kept net trained further: kept unless it lost
        assert r is d["rounds"][-1] and r["accepted"] == (r["val_after_ft"] >= best), r
    else:
        assert r["accepted"] == (drop + r["margin_points"] <= d["tolerance_points"] + 1e-6), r
    if r["kind"] == "extension":  # follows the rejected stage it extends
        assert prev and prev["kind"] == "stage" and not prev["accepted"], (prev, r)
    if r["accepted"]:
        best = r["val_after_ft"]
    prev = r
text = open(sys.argv[2]).read()
stages = text.count("\nstage\n")
want = sum(2 if r["kind"] == "extension" else 1 for r in kept)  # an extension records its stage too
assert kept and stages == want, (want, stages)
assert text.count("plan none") == sum(r["kind"] != "stage" for r in kept), text
assert any(r["kind"] == "polish" for r in kept), "the 2-epoch polish never loses on validation"
assert abs(d["val_acc"] - kept[-1]["val_after_ft"]) < 1e-9, d
print(f"{len(d['rounds'])} fine-tunings ({[r['kind'] for r in d['rounds']]}), {len(kept)} kept, "
      f"params {d['params_before']} -> {d['params_after']}")
PY
}
point "each stage (or its extension) kept exactly when drop + margin <= tolerance, the polish unless it lost; the recipe holds the kept ones" stage_rule
replay() {
    "$bin" compress "$model" --recipe "$tmp/s.recipe" --data "$data" --threads 2 --tolerance 2 \
        -o "$tmp/r.onnx" --json >"$tmp/r.json" && cmp "$tmp/s.onnx" "$tmp/r.onnx" &&
        $RS_PY -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); print(a["test_acc"], b["test_acc"]); sys.exit(a["test_acc"] != b["test_acc"])' \
            "$tmp/s.json" "$tmp/r.json"
}
point "compress --recipe replays it: the same net byte for byte, the same test accuracy" replay
# A recipe stage with "bn on" trains with BatchNormalization and folds it back; "plan none" only
# fine-tunes. The saved net is the plan's graph (no BatchNormalization left), the plan's params plus
# the shifts of the two bias-less factors of conv2's Tucker-2 (4 + 8), as compress reports them.
printf 'rankscope-recipe 1\ntrain-images 300\nval-images 300\nfit weights\nstage\n  epochs 1\n  lr 0.02\n  bn on\n  plan conv2 tucker2 8,4\n  plan fc1 svd 16\nstage\n  epochs 1\n  lr 0.005\n  bn on\n  plan none\n' >"$tmp/bn.recipe"
bn_replay() {
    "$bin" compress "$model" --recipe "$tmp/bn.recipe" --data "$data" --threads 2 -o "$tmp/bn.onnx" --json \
        >"$tmp/bn.json" && "$bin" info "$tmp/bn.onnx" --json >"$tmp/bn_info.json" &&
        $RS_PY - "$tmp/bn.json" "$tmp/bn_info.json" <<'PY'
import json, sys
d, info = (json.load(open(f)) for f in sys.argv[1:])
ops = {l["op"] for l in info["layers"]}
kinds = [r["plan"] for r in d["rounds"]]
plan_params = d["rounds"][0]["params"]  # the plan's count; conv2's first two factors keep a BN shift each
print("ops", sorted(ops), "params", d["params_after"], "plan", plan_params, "rounds", kinds)
assert "BatchNormalization" not in ops and len(d["rounds"]) == 2 and d["bn"], (ops, kinds, d["bn"])
assert info["params"] == d["params_after"] == plan_params + 4 + 8, (info["params"], d["params_after"], plan_params)
PY
}
point "a recipe with \"bn on\" and \"plan none\": replayed, every BN folded back, params as reported" bn_replay
printf 'rankscope-recipe 1\nstage\n  epochs 1\n  lr 0.01\n  plan fc1 svd 8\nstage\n  epochs x\n' >"$tmp/bad.recipe"
out=$("$bin" compress "$model" --recipe "$tmp/bad.recipe" --data "$data" -o "$tmp/x.onnx" 2>&1); rc=$?
check "a bad recipe: exit 1, one line naming file, line and value" \
    '[ $rc -eq 1 ] && [[ $out == *"bad.recipe:7: epochs \"x\""* ]] && [ "$(printf "%s\n" "$out" | wc -l)" -eq 1 ] && [ ! -e "$tmp/x.onnx" ]'
printf 'rankscope-recipe 1\nstage\n  epochs 1\n  lr 0.01\n  plan fc9 svd 8\n' >"$tmp/fc9.recipe"
out=$("$bin" compress "$model" --recipe "$tmp/fc9.recipe" --data "$data" -o "$tmp/x.onnx" 2>&1); rc=$?
check "a recipe naming a layer the model lacks: exit 1 naming it" '[ $rc -eq 1 ] && [[ $out == *fc9* ]] && [ ! -e "$tmp/x.onnx" ]'
out=$("$bin" compress "$model" --recipe "$tmp/s.recipe" --stages 2 -o "$tmp/x.onnx" 2>&1); rc=$?
check "--recipe with --stages: exit 2 (the recipe decides)" '[ $rc -eq 2 ] && [[ $out == *"--stages"* ]]'
out=$("$bin" compress "$model" --stages 2 --finetune 0 -o "$tmp/x.onnx" 2>&1); rc=$?
check "--stages with --finetune 0: exit 2" '[ $rc -eq 2 ] && [[ $out == *"--finetune"* ]]'
out=$("$bin" compress "$model" --stages 0 --polish 3 -o "$tmp/x.onnx" 2>&1); rc=$?
check "--polish with --stages 0: exit 2 (staged runs only)" '[ $rc -eq 2 ] && [[ $out == *"--polish"* ]]'
out=$("$bin" compress "$model" --recipe "$tmp/s.recipe" --bn -o "$tmp/x.onnx" 2>&1); rc=$?
check "--recipe with --bn: exit 2 (the recipe decides)" '[ $rc -eq 2 ] && [[ $out == *"--bn"* ]]'
out=$("$bin" compress "$model" --stages 1 -o "$tmp/x.onnx" 2>&1); rc=$?
check "--stages 1: exit 2 naming the choices" '[ $rc -eq 2 ] && [[ $out == *"--stages 1"* ]]'
out=$("$bin" compress "$model" "${staged[@]}" --stages 2 --recipe-out "$tmp/s.onnx" -o "$tmp/s.onnx" --force 2>&1); rc=$?
check "--recipe-out on -o: refused with exit 2" '[ $rc -eq 2 ] && [[ $out == *"--recipe-out"* ]]'
out=$("$bin" compress "$model" --recipe "$tmp/s.recipe" --data "$data" -o "$tmp/s.recipe" --force 2>&1); rc=$?
check "-o on the --recipe input: refused with exit 2, recipe intact" '[ $rc -eq 2 ] && grep -q "^stage" "$tmp/s.recipe"'

out=$("$bin" compress "$model" --int8-epochs 1 -o "$tmp/x.onnx" 2>&1); rc=$?
check "--int8-epochs without --int8: exit 2 naming it" '[ $rc -eq 2 ] && [[ $out == *"--int8-epochs needs --int8"* ]]'
out=$("$bin" compress "$model" --int8 --train-images 0 -o "$tmp/x.onnx" 2>&1); rc=$?
check "--train-images 0: exit 2 naming it" '[ $rc -eq 2 ] && [[ $out == *"--train-images"* ]]'
tap_done
