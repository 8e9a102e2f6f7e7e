#!/usr/bin/env bash
# zoo_torch_check.sh — BatchNormalization trained by rankscope, exported, and run by PyTorch: each
# zoo architecture trains one short epoch (256 images, batch 64: the running statistics move away
# from 0 / 1), is written as ONNX with its BatchNormalization nodes, and PyTorch's definition of the
# same architecture (tools/zoo_torch.py) loads those weights and statistics by name; eval-mode
# logits of PyTorch, ONNX Runtime and rankscope's inference (which folds BN into the convolutions)
# on 64 test images agree to 1e-4 (relative to max(1, |logit|)).
source "$(dirname "$0")/lib.sh"
RS=${RANKSCOPE_BIN:?}
if [ -z "${RS_TEST_CIFAR:-}" ] || [ ! -f "$RS_TEST_CIFAR/data_batch_1.bin" ]; then
    echo "1..0 # SKIP the full CIFAR-10 set (RS_TEST_CIFAR) is needed for training"
    exit 0
fi
need_interop "BN training against PyTorch"
$RS_PY -c 'import torch' 2>/dev/null || { echo "1..0 # SKIP python3-torch missing at $RS_PY"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$RS_PY - "$RS_TEST_CIFAR/test_batch.bin" "$tmp/x.f32" <<'PY'
import sys, numpy as np
raw = np.fromfile(sys.argv[1], np.uint8).reshape(10000, 3073)[:64, 1:]
(raw.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype("<f4").tofile(sys.argv[2])
PY
for arch in resnet20 vgg mobilenet; do
    point "$arch: rankscope trains it one short epoch with BatchNormalization" \
        "$RS" train --arch "$arch" --epochs 1 --train-images 256 --batch 64 --lr 0.05 --seed 2 \
        --threads 2 --eval-images 256 --no-checkpoint --data "$RS_TEST_CIFAR" -o "$tmp/$arch.onnx"
    [ -f "$tmp/$arch.onnx" ] || continue
    point "$arch: the file passes the ONNX checker" onnx_check "$tmp/$arch.onnx"
    "$RS_BUILD_ROOT/tests/tool_logits" "$tmp/$arch.onnx" "$tmp/x.f32" "$tmp/rs.f32"
    ort_run "$tmp/$arch.onnx" "$tmp/x.f32" "$tmp/ort.f32"
    point "$arch: PyTorch (eval mode, same weights and statistics) agrees with rankscope and ORT" \
        $RS_PY - "$arch" "$tmp/$arch.onnx" "$tmp/x.f32" "$tmp/rs.f32" "$tmp/ort.f32" <<PY
import sys, numpy as np, torch
sys.path.insert(0, "$RS_TESTS_DIR/../tools")
import zoo_torch
arch, path, xf, rsf, ortf = sys.argv[1:6]
m = zoo_torch.load_from_onnx(zoo_torch.ARCHS[arch](), path).eval()
moved = max(float(b.abs().max()) for n, b in m.named_buffers() if n.endswith("running_mean"))
assert moved > 1e-3, "running means never moved"
x = torch.from_numpy(np.fromfile(xf, "<f4").reshape(64, 3, 32, 32))
with torch.no_grad():
    ref = m(x).numpy()
worst = 0.0
for f in (rsf, ortf):
    got = np.fromfile(f, "<f4").reshape(ref.shape)
    worst = max(worst, float(np.max(np.abs(got - ref) / np.maximum(1, np.abs(ref)))))
assert worst <= 1e-4, worst
print(f"max difference {worst:.1e}, running means moved up to {moved:.2f}")
PY
done
tap_done
