#!/usr/bin/env bash
# ops.sh — every op form the engine supports, one tiny model each (tests/op_models.py writes
# them at the opsets where an op's form changes): rankscope's output matches ONNX Runtime's to
# 1e-5 (relative, as compare_logits), and so does the C export compiled with -Werror -pedantic;
# malformed nodes are refused with a one-line error naming the node and the value at fault.
source "$(dirname "$0")/lib.sh"
RS=${RANKSCOPE_BIN:?}
need_interop "single-op models"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$RS_PY "$RS_TESTS_DIR/op_models.py" "$tmp" || { echo "not ok 1 - op_models.py writes the models"; echo "1..1"; exit 1; }
c_run() { # c_run MODEL IN.f32 OUT.f32 — export as C, compile with the test driver, run
    "$RS" export "$1" --format c -o "$tmp/c" --force >/dev/null &&
        ${CC:-cc} -std=c99 -Wall -Wextra -Werror -pedantic -O2 -I"$tmp/c" -o "$tmp/c/run" \
            "$RS_TESTS_DIR/c_export_driver.c" "$tmp/c/model.c" -lm && "$tmp/c/run" "$2" "$3"
}
refused() { # refused MODEL TEXT [ARGS] — `rankscope info` (or ARGS) fails with one line containing TEXT
    local out f=$1 text=$2
    shift 2
    [ $# -gt 0 ] || set -- info "$f"
    if out=$("$RS" "$@" 2>&1 >/dev/null); then echo "accepted"; return 1; fi
    echo "$out"
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ "$out" == *"$text"* ]]
}
# ONNX Runtime on every model that must run, in one node process
ort_args=()
while read -r name kind expect; do
    [ "$kind" = bad ] || ort_args+=("$tmp/$name.onnx" "$tmp/input.f32" "$tmp/$name.ort.f32")
done <"$tmp/cases.txt"
node "$RS_TESTS_DIR/ort_logits.js" "${ort_args[@]}" >/dev/null
while read -r name kind expect; do
    f=$tmp/$name.onnx
    if [ "$kind" = bad ]; then
        point "$name: refused ($expect)" refused "$f" "$expect"
        continue
    fi
    rm -f "$tmp/rs.f32" "$tmp/c.f32"
    "$RS_BUILD_ROOT/tests/tool_logits" "$f" "$tmp/input.f32" "$tmp/rs.f32"
    cp "$tmp/$name.ort.f32" "$tmp/ort.f32" 2>/dev/null || rm -f "$tmp/ort.f32"
    point "$name: matches ONNX Runtime (1e-5)" compare_logits "$tmp/rs.f32" "$tmp/ort.f32" 1e-5
    if [ "$kind" = noc ]; then
        point "$name: the C exporter refuses it ($expect)" refused "$f" "$expect" export "$f" \
            --format c -o "$tmp/c" --force
        continue
    fi
    c_run "$f" "$tmp/input.f32" "$tmp/c.f32"
    point "$name: C export matches ONNX Runtime (1e-5)" compare_logits "$tmp/c.f32" "$tmp/ort.f32" 1e-5
done <"$tmp/cases.txt"
tap_done
