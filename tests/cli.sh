#!/usr/bin/env bash
# CLI contract tests (TAP): exit codes, JSON fields, errors that name the file/value at fault.
set -u
BIN=${RANKSCOPE_BIN:?RANKSCOPE_BIN not set}
SRC=${RS_SOURCE_ROOT:?RS_SOURCE_ROOT not set}
PY=/usr/bin/python3
MODEL=$SRC/tests/data/lenet_random.onnx
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0; failed=0
ok() { n=$((n+1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed+1)); fi; }
# run CMD...: sets rc, out, err
run() { "$@" >"$T/out" 2>"$T/err"; rc=$?; out=$(cat "$T/out"); err=$(cat "$T/err"); }
json() { $PY -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if ($1) else 1)" 2>/dev/null; }

unset RANKSCOPE_DATA
export HOME=$T   # no ~/.cache data: the sample is the fallback

run "$BIN" --help;                         ok $(( rc != 0 )) "--help exits 0"
run "$BIN" info --help;                    ok $(( rc != 0 )) "info --help exits 0"
run "$BIN" eval --help;                    ok $(( rc != 0 )) "eval --help exits 0"
run "$BIN" frobnicate;                     ok $(( rc != 2 )) "unknown command exits 2"
run "$BIN" info "$MODEL" --bogus;          ok $(( rc != 2 )) "unknown option exits 2"

run "$BIN" info "$MODEL" --json
json "len(d['layers'])>=12 and d['params']==62006 and d['macs']==651720 and all(k in l for l in d['layers'] for k in ('name','op','params','macs'))"
ok $? "info --json: layers with name/op/params/macs, totals 62006 params / 651720 MACs"
json "[l['macs'] for l in d['layers'] if l['name'] in ('/conv1/Conv','conv1')]==[352800]"
ok $? "info --json: conv1 MACs 352800 (C_out*H_out*W_out*C_in*kh*kw)"
run "$BIN" info "$MODEL";                  ok $(( rc != 0 )) "info text exits 0"
echo "$out" | grep -q "^total: 62006 params"; ok $? "info text shows totals"
# the input column starts at one offset on every row, GlobalAveragePool's too (zoo vgg)
run "$BIN" info "$SRC/assets/zoo/vgg.onnx"
cols=$(echo "$out" | grep -vE '^(total|MACs)' | awk '{ match($0, /^[^ ]+ +[^ ]+ +/); print RLENGTH }' | sort -u | wc -l)
ok $(( rc != 0 || cols != 1 )) "info text: columns aligned on every row of vgg ($cols offsets of the input column)"

# --time: the graph view's time column. Every kernel step timed, fused nodes pointing at the step
# that runs them, shares adding to 100 %, the steps' sum within 2x of a whole forward (same run).
run "$BIN" info "$MODEL" --time --images 64 --json
json "all(l['us_per_image']>0 for l in d['layers'] if l['timed']=='step') and [l['name'] for l in d['layers'] if l['timed']=='step']==['/conv1/Conv','/conv2/Conv','/fc1/Gemm','/fc2/Gemm','/fc3/Gemm']"
ok $? "info --time --json: the five conv/gemm steps have a positive time"
json "all(l['us_per_image']==0 and l['fused_into'] in ('/conv1/Conv','/conv2/Conv','/fc1/Gemm','/fc2/Gemm') for l in d['layers'] if l['timed']=='fused') and sum(l['timed']=='fused' for l in d['layers'])==6 and [l['timed'] for l in d['layers'] if l['op']=='Flatten']==['view']"
ok $? "info --time --json: the 4 Relus and 2 MaxPools fused into their conv/gemm, Flatten a view"
json "abs(sum(l['time_pct'] for l in d['layers'])-100)<0.1 and d['time']['images']==64 and 0.5<d['time']['steps_us_per_image']/d['time']['forward_us_per_image']<2"
ok $? "info --time --json: shares add to 100 %, nodes' sum within 2x of a whole forward"
run "$BIN" info "$MODEL" --time --images 16
echo "$out" | grep -q "^/Relu .*(in /conv1/Conv)$" && echo "$out" | head -1 | grep -q "us/img *time$"
ok $? "info --time text: a time column, fused nodes say which step runs them"
run "$BIN" info "$MODEL" --images 16;      ok $(( rc != 2 )) "--images without --time is a usage error"

run "$BIN" eval "$MODEL" --split sample --json
json "d['images']==2000 and 0<=d['accuracy']<=1 and len(d['per_class'])==10 and d['seconds']>0 and d['params']==62006 and d['macs']==651720"
ok $? "eval --split sample --json fields"
run "$BIN" eval "$MODEL" --json
ok $(( rc != 0 )) "eval without data falls back (exit 0)"
echo "$err" | grep -qi "sample"; ok $? "fallback to the sample is said on stderr"
json "d['images']==2000 and d['fell_back_to_sample']==True"; ok $? "fallback evaluates the 2000-image sample"
run "$BIN" eval "$MODEL" --split sample
echo "$out" | grep -Eq "^Accuracy for class: plane is [0-9]+\.[0-9] %$"; ok $? "per-class lines in the tutorial's format"

# --verbose beside --json: the trial lines go to stderr, stdout stays one JSON document
run "$BIN" search "$MODEL" --split sample --layers fc2 --verbose --json
json "d['trials']>0 and len(d['plan'])==1"; ok $? "search --verbose --json: stdout is the JSON report"
trials=$($PY -c "import json; print(json.load(open('$T/out'))['trials'])" 2>/dev/null)
[ "$(grep -c '^  trial ' "$T/err")" = "${trials:-x}" ] && ! grep -q '^  trial ' "$T/out"
ok $? "search --verbose --json: one trial line per trial on stderr ($(grep -c '^  trial ' "$T/err") lines), none on stdout"
run "$BIN" search "$MODEL" --split sample --layers fc2 --json
! grep -q '^  trial ' "$T/err"; ok $? "search --json without --verbose: no trial lines"

run "$BIN" eval "$T/missing.onnx"
ok $(( rc != 1 )) "missing model exits 1"
echo "$err" | grep -q "missing.onnx"; ok $? "missing model error names the file"
head -c 700 "$MODEL" > "$T/trunc.onnx"
run "$BIN" eval "$T/trunc.onnx" --split sample
ok $(( rc != 1 )) "truncated model exits 1"
[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "trunc.onnx" "$T/err"; ok $? "truncated model: one line naming the file ($err)"
run "$BIN" eval "$MODEL" --split bogus;    ok $(( rc != 2 )) "bad --split exits 2"
run "$BIN" eval "$MODEL" --threads 0;      ok $(( rc != 2 )) "--threads 0 exits 2"
run "$BIN" eval "$MODEL" --data "$T/nodata"
ok $(( rc != 1 )) "--data without CIFAR files exits 1"
echo "$err" | grep -q "nodata"; ok $? "bad --data names the directory"
mkdir -p "$T/bad"; head -c 5000 "$SRC/assets/cifar10-test-sample.bin" > "$T/bad/test_batch.bin"
run "$BIN" eval "$MODEL" --data "$T/bad"
ok $(( rc != 1 )) "truncated test_batch.bin exits 1"
echo "$err" | grep -q "test_batch.bin"; ok $? "truncated data error names the file"

if [ -n "${RS_TEST_CIFAR:-}" ]; then
  run "$BIN" eval "$MODEL" --data "$RS_TEST_CIFAR" --json
  json "d['images']==10000 and d['fell_back_to_sample']==False"; ok $? "full test set via --data"
  RANKSCOPE_DATA=$RS_TEST_CIFAR run "$BIN" eval "$MODEL" --split val --json
  json "d['images']==5000"; ok $? "validation split via RANKSCOPE_DATA is 5000 images"
fi

if [ -f "$SRC/assets/lenet-cifar10.onnx" ]; then
  run "$BIN" info --json
  json "d['params']==62006"; ok $? "the shipped model is the default"
  run "$BIN" eval --split sample --json
  json "d['accuracy']>0.6"; ok $? "the shipped model is trained (sample accuracy > 60 %)"
fi

echo "1..$n"
[ $failed -eq 0 ]
