#!/bin/bash
# bench_ref.sh — `rankscope bench`'s reference figures: ONNX Runtime evaluating and PyTorch training
# the same network on the same images (the shipped test sample here) and thread count. ORT's
# accuracy must equal rankscope's to the image (same images, same model, handed over exactly);
# PyTorch's twin (tools/bench_torch_train.py) is the zoo_torch module for the shipped LeNet and the
# ONNX graph op by op otherwise, whose eval-mode logits match PyTorch's goldens. Missing tools give
# a note and null figures, not a failure; --no-reference skips both, --eval-only the training
# and explorer figures.
# Same prerequisites and TAP output as interop.sh (PyTorch at /usr/bin/python3 too).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${RANKSCOPE_BIN:?set RANKSCOPE_BIN}
source "$here/lib.sh"
need_interop bench_ref
unset RANKSCOPE_DATA
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_bench_ref.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# field FILE EXPR [CONDITION] — a python expression over the JSON d, printed; fails unless CONDITION
field() { $RS_PY -c "import json,sys; d=json.load(open(sys.argv[1])); print($2); assert ${3:-True}" "$1"; }

RANKSCOPE_SOURCE=$root "$bin" bench --reps 2 --threads 2 --json >"$tmp/lenet.json" 2>"$tmp/err"
point "bench of the shipped net with references: exit 0, valid JSON, nothing failed" field "$tmp/lenet.json" "d['images']" "d['failures'] == {}"
point "... ONNX Runtime classified the same images exactly as rankscope" \
    field "$tmp/lenet.json" "(d['ort_accuracy'], d['accuracy'])" "d['ort_accuracy'] == d['accuracy'] and d['images'] == 2000"
point "... eval ratio over ONNX Runtime reported" \
    field "$tmp/lenet.json" "(d['eval_speedup_over_ort'], d['ort_runtime'])" "d['eval_speedup_over_ort'] > 0 and abs(d['ort_eval_seconds'] / d['eval_seconds'] - d['eval_speedup_over_ort']) < 1e-3 * d['eval_speedup_over_ort']"
point "... PyTorch trained the tutorial LeNet module on the same images" \
    field "$tmp/lenet.json" "(d['torch_train_images_per_second'], d['torch_runtime'])" "d['torch_train_images_per_second'] > 0 and 'zoo_torch.py lenet' in d['torch_runtime'] and d['train_images'] == 2000"
point "... training ratio over PyTorch reported" \
    field "$tmp/lenet.json" "d['train_speedup_over_torch']" "abs(d['train_images_per_second'] / d['torch_train_images_per_second'] - d['train_speedup_over_torch']) < 1e-3 * d['train_speedup_over_torch']"

# --train-only: the training figures alone, on --train-images images, with the CPU time per image of
# both (the figure that holds on a loaded machine)
RANKSCOPE_SOURCE=$root "$bin" bench --train-only --train-images 256 --threads 1 --json >"$tmp/tr.json" 2>"$tmp/err"
point "--train-only --train-images 256: training and PyTorch on 256 images, batch 128, nothing else" \
    field "$tmp/tr.json" "(d['train_images'], d['train_batch'], d['train_cpu_ms_per_image'], d['torch_train_cpu_ms_per_image'])" "d['failures'] == {} and d['train_images'] == 256 and d['train_batch'] == 128 and d['threads'] == 1 and d['train_images_per_second'] > 0 and d['torch_train_images_per_second'] > 0 and d['eval_seconds'] is None and d['ort_eval_seconds'] is None and d['latency_batch1_ms'] is None and d['decompose_seconds'] is None"
point "... CPU time per image of both, and their ratio" \
    field "$tmp/tr.json" "d['train_cpu_speedup_over_torch']" "d['train_cpu_ms_per_image'] > 0 and abs(d['torch_train_cpu_ms_per_image'] / d['train_cpu_ms_per_image'] - d['train_cpu_speedup_over_torch']) < 1e-3 * d['train_cpu_speedup_over_torch']"
point "--eval-only and --train-only together: a usage error" bash -c 'out=$("$0" bench --eval-only --train-only 2>&1 >/dev/null); [ $? = 2 ] && grep -q "exclude each other" <<<"$out"' "$bin"

# MobileNet (depthwise convs, Clip, average pooling): PyTorch runs rankscope's graph op by op
RANKSCOPE_SOURCE=$root "$bin" bench "$root/tests/data/zoo/mobilenet.onnx" --reps 1 --json >"$tmp/mb.json" 2>"$tmp/err"
point "bench of the zoo MobileNet: ONNX Runtime agrees to the image, ratios reported" \
    field "$tmp/mb.json" "(d['eval_speedup_over_ort'], d['train_speedup_over_torch'], d['torch_runtime'])" "d['ort_accuracy'] == d['accuracy'] and d['train_speedup_over_torch'] > 0 and 'graph' in d['torch_runtime']"

# a factorized net without BatchNormalization (the zoo's resnet20-lowrank) trains for the timing on
# both sides: at the learning rate bench used before (0.01) both losses became NaN by batch 12
RANKSCOPE_SOURCE=$root "$bin" bench "$root/assets/zoo/resnet20-lowrank.onnx" --train-only --train-images 2048 --threads 2 --json >"$tmp/lr.json" 2>"$tmp/err"
point "bench --train-only of resnet20-lowrank: both sides train (up to 2,048 images) without diverging" \
    field "$tmp/lr.json" "(d['failures'], d['train_images'], d['train_images_per_second'], d['torch_train_images_per_second'], d['torch_note'])" "d['failures'] == {} and d['train_images'] >= 1536 and d['train_images_per_second'] > 0 and d['torch_train_images_per_second'] > 0"

# the graph twin computes what PyTorch computes: eval-mode logits against the goldens
for m in resnet20 vgg_bn_keep; do
    point "graph twin of $m matches PyTorch's logits" $RS_PY - \
        "$root/tools" "$root/tests/data/zoo/$m.onnx" "$root/tests/data/zoo/zoo_input.f32" \
        "$root/tests/data/zoo/${m}_logits.f32" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, onnx, torch
import bench_torch_train as b
net = b.GraphNet(onnx.load(sys.argv[2])).eval()
x = torch.from_numpy(np.fromfile(sys.argv[3], "<f4").reshape(-1, 3, 32, 32))
ref = np.fromfile(sys.argv[4], "<f4").reshape(x.shape[0], -1)
with torch.no_grad():
    got = net(x).numpy()
err = np.abs(got - ref).max()
print(f"max |diff| {err:.2e}")
sys.exit(0 if err <= 1e-4 * max(1.0, np.abs(ref).max()) else 1)
PY
done

# one figure failing does not take the others with it: a Softmax head evaluates but does not train
$RS_PY - "$root/tests/data/lenet_random.onnx" "$tmp/softmax.onnx" <<'PY'
import sys, onnx
from onnx import helper
m = onnx.load(sys.argv[1])
g = m.graph
out = g.output[0]
g.node.append(helper.make_node("Softmax", [out.name], ["probs"], name="head_softmax", axis=1))
new_out = helper.make_tensor_value_info("probs", out.type.tensor_type.elem_type, None)
new_out.type.CopyFrom(out.type)
g.output.pop()
g.output.append(new_out)
onnx.save(m, sys.argv[2])
PY
"$bin" bench "$tmp/softmax.onnx" --reps 1 --no-reference --json >"$tmp/sm.json" 2>"$tmp/sm.err"
rc=$?
point "a net that cannot train: exit 1, every other figure measured, the failure named in JSON and stderr" \
    field "$tmp/sm.json" "(d['failures'], d['eval_seconds'], d['latency_batch1_ms'])" "$rc == 1 and list(d['failures']) == ['training'] and 'head_softmax' in d['failures']['training'] and d['train_images_per_second'] is None and d['eval_seconds'] > 0 and d['latency_batch1_ms'] > 0 and d['naive_images_per_second'] > 0 and d['decompose_seconds'] > 0" 
point "... stderr says which figure failed and why" grep -q "bench: training failed: .*head_softmax" "$tmp/sm.err"

# missing tools: a note naming what is missing, null figures, exit 0
RANKSCOPE_SOURCE=$tmp/nowhere "$bin" bench --reps 1 --json >"$tmp/none.json" 2>"$tmp/err"
point "no source tree: exit 0, notes name RANKSCOPE_SOURCE, figures null" \
    field "$tmp/none.json" "d['ort_note']" "d['ort_eval_seconds'] is None and d['torch_train_images_per_second'] is None and 'RANKSCOPE_SOURCE' in d['ort_note'] and 'RANKSCOPE_SOURCE' in d['torch_note'] and d['train_images_per_second'] > 0"
RANKSCOPE_SOURCE=$root RANKSCOPE_PYTHON=$tmp/no-python RANKSCOPE_NODE=$tmp/no-node "$bin" bench --reps 1 >"$tmp/none.txt" 2>"$tmp/err"
point "no node, no python: exit 0, the text says which could not run" \
    bash -c "grep -q 'ONNX Runtime .*cannot run $tmp/no-node' '$tmp/none.txt' && grep -q 'PyTorch training .*cannot run $tmp/no-python' '$tmp/none.txt'"
"$bin" bench --reps 1 --no-reference --json >"$tmp/off.json" 2>"$tmp/err"
point "--no-reference: neither runs" \
    field "$tmp/off.json" "d['ort_note']" "d['ort_eval_seconds'] is None and 'no-reference' in d['torch_note']"
RANKSCOPE_SOURCE=$root "$bin" bench --reps 1 --eval-only --json >"$tmp/ev.json" 2>"$tmp/err"
point "--eval-only: ONNX Runtime ratio and latency, no training, PyTorch or explorer figures" \
    field "$tmp/ev.json" "(d['eval_speedup_over_ort'], d['latency_batch1_ms'])" "d['eval_speedup_over_ort'] > 0 and d['ort_accuracy'] == d['accuracy'] and d['latency_batch1_ms'] > 0 and d['train_images_per_second'] is None and d['train_images'] is None and 'eval-only' in d['torch_note'] and d['slider_full_ms'] is None and d['decompose_seconds'] is None"
tap_done
