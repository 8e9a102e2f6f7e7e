#!/usr/bin/env bash
# nets.sh — networks as torchvision and popular CIFAR repositories define them, exported by plain
# torch.onnx.export (tests/gen_nets.py): each loads, its logits match PyTorch's to 1e-4 and ONNX
# Runtime's, a weighted layer decomposes (and the written file runs in ONNX Runtime), and the C
# export compiles and matches PyTorch; with the CIFAR-10 training set (RS_TEST_CIFAR) each also
# trains an epoch and the result runs in ONNX Runtime. A net whose ops are not all
# supported yet is listed in PENDING and reported as a TAP TODO with the one-line error it gets.
source "$(dirname "$0")/lib.sh"
RS=${RANKSCOPE_BIN:?}
need_interop "networks exported by PyTorch"
D="$RS_TESTS_DIR/data/nets"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
c_export_run() { # c_export_run DIR IN.f32 OUT.f32 — compile a C export with the test driver, run it
    ${CC:-cc} -std=c99 -Wall -Wextra -Werror -pedantic -O2 -I"$1" -o "$1/run" \
        "$RS_TESTS_DIR/c_export_driver.c" "$1/model.c" -lm && "$1/run" "$2" "$3"
}
PENDING=" "
for f in "$D"/*.onnx; do
    name=$(basename "$f" .onnx)
    base=${name%_opset*}
    if [[ "$PENDING" == *" $base "* ]]; then
        err=$("$RS" info "$f" 2>&1 >/dev/null | head -1)
        [ -z "$err" ] && err=$("$RS_BUILD_ROOT/tests/tool_logits" "$f" "$D/nets_input.f32" "$tmp/x.f32" 2>&1 | head -1)
        [ -z "$err" ] && err=$("$RS" export "$f" --format c -o "$tmp/c" --force 2>&1 >/dev/null | head -1)
        n=$((n + 1))
        echo "not ok $n - $name loads, runs and exports # TODO not yet: ${err##*: node }"
        continue
    fi
    point "$name: loads" "$RS" info "$f"
    "$RS_BUILD_ROOT/tests/tool_logits" "$f" "$D/nets_input.f32" "$tmp/rs.f32"
    point "$name: logits match PyTorch (1e-4)" compare_logits "$tmp/rs.f32" "$D/${base}_logits.f32" 1e-4
    ort_run "$f" "$D/nets_input.f32" "$tmp/ort.f32"
    point "$name: logits match ONNX Runtime (1e-4)" compare_logits "$tmp/rs.f32" "$tmp/ort.f32" 1e-4
    layer=$("$RS" info "$f" --json | $RS_PY -c '
import json, sys
# the last 3x3 conv that is not depthwise (input channels per group > 1): tucker2 factorizes those
rows = [r for r in json.load(sys.stdin)["layers"] if r["op"] == "Conv"
        and int(r["weight"].split("x")[1]) > 1 and r["weight"].endswith("x3x3")]
print(rows[-1]["name"] if rows else "")')
    if [ -n "$layer" ]; then
        point "$name: $layer decomposes (tucker2)" "$RS" decompose "$f" --layer "$layer" --method tucker2 \
            --rank 4 -o "$tmp/d.onnx"
        "$RS_BUILD_ROOT/tests/tool_logits" "$tmp/d.onnx" "$D/nets_input.f32" "$tmp/d_rs.f32"
        ort_run "$tmp/d.onnx" "$D/nets_input.f32" "$tmp/d_ort.f32"
        point "$name: the decomposed file runs in ONNX Runtime as in rankscope (1e-4)" \
            compare_logits "$tmp/d_rs.f32" "$tmp/d_ort.f32" 1e-4
    fi
    point "$name: C export" "$RS" export "$f" --format c -o "$tmp/c" --force
    point "$name: the C export compiles (C99 -pedantic -Werror) and runs" c_export_run "$tmp/c" \
        "$D/nets_input.f32" "$tmp/c.f32"
    point "$name: C export matches PyTorch (1e-4)" compare_logits "$tmp/c.f32" "$D/${base}_logits.f32" 1e-4
    if [ -f "${RS_TEST_CIFAR:-/nonexistent}/data_batch_1.bin" ]; then # backward of every op it uses
        point "$name: trains (one epoch of 128 images)" "$RS" train "$f" --data "$RS_TEST_CIFAR" \
            --epochs 1 --train-images 128 --eval-images 128 --no-checkpoint -o "$tmp/t.onnx" --force
        "$RS_BUILD_ROOT/tests/tool_logits" "$tmp/t.onnx" "$D/nets_input.f32" "$tmp/t_rs.f32"
        ort_run "$tmp/t.onnx" "$D/nets_input.f32" "$tmp/t_ort.f32"
        point "$name: the trained file runs in ONNX Runtime as in rankscope (1e-4)" \
            compare_logits "$tmp/t_rs.f32" "$tmp/t_ort.f32" 1e-4
    fi
done
tap_done
