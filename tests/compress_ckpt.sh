#!/bin/bash
# compress_ckpt.sh — `rankscope compress --checkpoint / --resume` end to end on the shipped net with
# small splits (500 images, 1-epoch stages): a staged run killed (SIGKILL, as a session that ends)
# or interrupted (SIGINT) after its checkpoint was written, then resumed, ends with the same net
# byte for byte (cmp) and the same figures as the same run never stopped; a recipe replay too; a
# checkpoint of another run (option, model) or a damaged one is refused in one line, nothing
# written. Needs the CIFAR-10 batches (RS_TEST_CIFAR) and /usr/bin/python3; skips otherwise.
set -u
bin=${RANKSCOPE_BIN:?RANKSCOPE_BIN must name the rankscope binary}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
dump() { :; }
data=${RS_TEST_CIFAR:-}
need_cifar_train
if ! $RS_PY -c 'import json' 2>/dev/null; then
    echo "1..0 # SKIP needs $RS_PY"
    exit 0
fi
model=$(shipped_model "$here/..")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_compress_ckpt.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# the run never stopped: the reference (its recipe for the replay)
staged=(--tolerance 2 --finetune 1 --polish 2 --extend 1 --train-images 500 --val-images 500 --fit weights --data "$data" --threads 2)
run_ref() {
    "$bin" compress "$model" "${staged[@]}" --stages 3 --recipe-out "$tmp/s.recipe" -o "$tmp/s.onnx" \
        --json >"$tmp/s.json" && [ -s "$tmp/s.recipe" ]
}
point "compress --stages 3 --finetune 1 on 500/500 images, never stopped (the reference)" run_ref

# ---- checkpoints: a staged run killed (SIGKILL, as a session that ends) or interrupted (SIGINT)
# and resumed ends with the same net byte for byte and the same figures as the run above that was
# never stopped (s.onnx / s.json); a checkpoint of another run or a damaged one is refused.
# run_until_ckpt FILE VERSIONS SIGNAL ARGS...: compress in the background, the signal sent once
# FILE was written VERSIONS times (each write is a rename: a new inode); 0 when it was sent
# before the run ended; compress's exit status in ck_rc.
run_until_ckpt() {
    local ck=$1 want=$2 sig=$3 seen="" last="" pid
    shift 3
    rm -f "$ck"
    "$bin" compress "$@" >"$tmp/ck.out" 2>"$tmp/ck.err" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        local ino
        ino=$(stat -c %i "$ck" 2>/dev/null) || ino=""
        if [ -n "$ino" ] && [ "$ino" != "$last" ]; then
            last=$ino
            seen="$seen x"
            if [ "$(wc -w <<<"$seen")" -ge "$want" ]; then
                kill "-$sig" "$pid"
                wait "$pid"
                ck_rc=$?
                return 0
            fi
        fi
        sleep 0.02
    done
    wait "$pid"
    ck_rc=$?
    return 1
}
same_run() { # same_run JSON: the figures of s.json (accuracies, rounds, params)
    $RS_PY - "$tmp/s.json" "$1" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
keys = ["val_acc_before", "val_acc", "test_acc", "params_after", "macs_after"]
assert all(a[k] == b[k] for k in keys), [(k, a[k], b[k]) for k in keys if a[k] != b[k]]
strip = lambda r: {k: v for k, v in r.items() if "second" not in k}
assert [strip(r) for r in a["rounds"]] == [strip(r) for r in b["rounds"]], (a["rounds"], b["rounds"])
print(f"{len(b['rounds'])} rounds, val {b['val_acc']:.4f}, test {b['test_acc']:.4f}: as the run never stopped")
PY
}
ck_kill() {
    run_until_ckpt "$tmp/k.ckpt" 3 KILL "$model" "${staged[@]}" --stages 3 --checkpoint "$tmp/k.ckpt" \
        -o "$tmp/k.onnx" --json && [ ! -e "$tmp/k.onnx" ] && [ -s "$tmp/k.ckpt" ]
}
point "compress --checkpoint: killed (SIGKILL) after the checkpoint's 3rd write, before any output" ck_kill
ck_resume() {
    "$bin" compress "$model" "${staged[@]}" --stages 3 --resume "$tmp/k.ckpt" -o "$tmp/k.onnx" --json \
        >"$tmp/k.json" 2>"$tmp/k.err" && cmp "$tmp/s.onnx" "$tmp/k.onnx" && same_run "$tmp/k.json"
}
point "compress --resume after SIGKILL: the same net byte for byte, the same rounds and accuracies" ck_resume
ck_int() {
    run_until_ckpt "$tmp/i.ckpt" 2 INT "$model" "${staged[@]}" --stages 3 --checkpoint "$tmp/i.ckpt" \
        -o "$tmp/i.onnx" && [ $ck_rc -eq 1 ] && [ ! -e "$tmp/i.onnx" ] &&
        grep -q "interrupted; nothing saved: .*--resume" "$tmp/ck.err" && tail -1 "$tmp/ck.err"
}
point "compress --checkpoint, Ctrl-C (SIGINT): exit 1, nothing saved, says how to resume" ck_int
ck_int_resume() {
    "$bin" compress "$model" "${staged[@]}" --stages 3 --resume "$tmp/i.ckpt" --checkpoint "$tmp/i2.ckpt" \
        -o "$tmp/i.onnx" --json >"$tmp/i.json" && cmp "$tmp/s.onnx" "$tmp/i.onnx" && same_run "$tmp/i.json" &&
        [ -s "$tmp/i2.ckpt" ]
}
point "compress --resume after Ctrl-C (checkpoint going on in another file): the same net and figures" ck_int_resume
ck_replay() {
    run_until_ckpt "$tmp/r.ckpt" 2 KILL "$model" --recipe "$tmp/s.recipe" --data "$data" --threads 2 --tolerance 2 \
        --checkpoint "$tmp/r.ckpt" -o "$tmp/rk.onnx" && [ ! -e "$tmp/rk.onnx" ] &&
        "$bin" compress "$model" --recipe "$tmp/s.recipe" --data "$data" --threads 2 --tolerance 2 \
            --resume "$tmp/r.ckpt" -o "$tmp/rk.onnx" --json >"$tmp/rk.json" && cmp "$tmp/s.onnx" "$tmp/rk.onnx"
}
point "compress --recipe --checkpoint killed, then --resume: the recipe's net byte for byte" ck_replay
# The zoo's kind of recipe: factors fitted to the outputs, BatchNormalization while fine-tuning
# (in the checkpoint's net, folded after), distillation; killed in the middle of stage 1's
# fine-tuning (the 3rd write: after its 2nd epoch).
printf 'rankscope-recipe 1\ntrain-images 400\nval-images 300\nfit outputs 200\nstage\n  epochs 3\n  lr 0.02\n  distill 0.5 4\n  bn on\n  plan conv2 tucker2 8,4\n  plan fc1 svd 16\nstage\n  epochs 2\n  lr 0.005\n  bn on\n  plan none\n' >"$tmp/bn.recipe"
bnr=(--recipe "$tmp/bn.recipe" --data "$data" --threads 2)
ck_bn() {
    "$bin" compress "$model" "${bnr[@]}" -o "$tmp/bu.onnx" --json >"$tmp/bu.json" &&
        run_until_ckpt "$tmp/b.ckpt" 3 KILL "$model" "${bnr[@]}" --checkpoint "$tmp/b.ckpt" -o "$tmp/bk.onnx" &&
        [ ! -e "$tmp/bk.onnx" ] &&
        "$bin" compress "$model" "${bnr[@]}" --resume "$tmp/b.ckpt" -o "$tmp/bk.onnx" 2>&1 >/dev/null | grep resuming &&
        cmp "$tmp/bu.onnx" "$tmp/bk.onnx"
}
point "a recipe with \"fit outputs\", \"bn on\" and distillation, killed in stage 1's fine-tuning and resumed: the same net byte for byte" ck_bn
out=$("$bin" compress "$model" "${staged[@]}" --tolerance 3 --stages 3 --resume "$tmp/k.ckpt" -o "$tmp/x.onnx" 2>&1); rc=$?
check "--resume with another --tolerance: exit 1, one line naming it, nothing written" \
    '[ $rc -eq 1 ] && [[ $out == *"--tolerance: 2 in the checkpoint, 3 now"* ]] && [ "$(printf "%s\n" "$out" | wc -l)" -eq 1 ] && [ ! -e "$tmp/x.onnx" ]'
out=$("$bin" compress "$tmp/s.onnx" "${staged[@]}" --stages 3 --resume "$tmp/k.ckpt" -o "$tmp/x.onnx" 2>&1); rc=$?
check "--resume with another model: exit 1, one line naming the model's bytes / CRC" \
    '[ $rc -eq 1 ] && [[ $out == *"model: "*" bytes, crc32 "*" in the checkpoint, "* ]] && [ "$(printf "%s\n" "$out" | wc -l)" -eq 1 ] && [ ! -e "$tmp/x.onnx" ]'
head -c 3000 "$tmp/k.ckpt" >"$tmp/t.ckpt"
out=$("$bin" compress "$model" "${staged[@]}" --stages 3 --resume "$tmp/t.ckpt" -o "$tmp/x.onnx" 2>&1); rc=$?
check "--resume of a truncated checkpoint: exit 1, one line naming the file" \
    '[ $rc -eq 1 ] && [[ $out == *"t.ckpt: truncated"* ]] && [ "$(printf "%s\n" "$out" | wc -l)" -eq 1 ] && [ ! -e "$tmp/x.onnx" ]'
out=$("$bin" compress "$model" "${staged[@]}" --stages 3 --resume "$tmp/s.recipe" -o "$tmp/x.onnx" 2>&1); rc=$?
check "--resume of a file that is no checkpoint: exit 1 (bad magic)" \
    '[ $rc -eq 1 ] && [[ $out == *"not a rankscope compress checkpoint"* ]] && [ ! -e "$tmp/x.onnx" ]'
out=$("$bin" compress "$model" --stages 0 --checkpoint "$tmp/x.ckpt" -o "$tmp/x.onnx" 2>&1); rc=$?
check "--checkpoint with --stages 0: exit 2 naming it" '[ $rc -eq 2 ] && [[ $out == *"--checkpoint"* ]]'
cp "$tmp/k.ckpt" "$tmp/keep.ckpt"
out=$("$bin" compress "$model" "${staged[@]}" --stages 3 --resume "$tmp/keep.ckpt" -o "$tmp/keep.ckpt" --force 2>&1); rc=$?
check "-o on the --resume checkpoint: exit 2, the checkpoint intact" \
    '[ $rc -eq 2 ] && cmp -s "$tmp/k.ckpt" "$tmp/keep.ckpt"'

tap_done
