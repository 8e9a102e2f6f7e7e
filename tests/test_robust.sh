#!/usr/bin/env bash
# test_robust.sh — wrong answers given quietly, end to end through the real binary (TAP):
#  - a model with a NaN and an Inf in fc1.weight: every command that computes with weights refuses
#    it naming the initializer and writes nothing; `info` describes it but flags it;
#  - the explorer refuses it before taking the terminal;
#  - node names holding terminal control bytes are shown quoted by `info` (as ls does);
#  - plans: a UTF-8 BOM is accepted, a layer given twice is refused naming both lines, `--ranks ,`
#    is refused, `tucker2:4,3` stays one item.
set -u
SRC=${RS_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${RANKSCOPE_BIN:-${1:-$SRC/build}/rankscope}
export RANKSCOPE_ASSETS=${RANKSCOPE_ASSETS:-$SRC/assets}
unset RANKSCOPE_DATA
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/rs-robust.XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else notok "$what"; fi; }
one_line() { [ "$(wc -l <"$T/err")" -eq 1 ]; }

if ! $PY -c 'import onnx' 2>/dev/null; then
  echo "1..0 # SKIP /usr/bin/python3 without onnx"
  exit 0
fi
$PY - "$SRC/tests/data/lenet_random.onnx" "$T" <<'PY'
import sys, onnx, numpy as np
from onnx import numpy_helper
src, t = sys.argv[1], sys.argv[2]
m = onnx.load(src)
for init in m.graph.initializer:
    if init.name == "fc1.weight":
        a = numpy_helper.to_array(init).copy()
        a.flat[5] = np.nan
        a.flat[9] = np.inf
        init.CopyFrom(numpy_helper.from_array(a, init.name))
onnx.save(m, f"{t}/nan.onnx")
m = onnx.load(src)
for node in m.graph.node:
    if node.name == "/fc1/Gemm":
        node.name = "/fc1/\x1b[2J\x1b[31mGemm\x07"
onnx.save(m, f"{t}/ctrl.onnx")
m = onnx.load(src)
for init in m.graph.initializer:
    if init.name in ("fc2.weight", "fc3.weight"):
        a = numpy_helper.to_array(init).copy() * np.float32(1e30)
        init.CopyFrom(numpy_helper.from_array(a.astype(np.float32), init.name))
onnx.save(m, f"{t}/huge.onnx")
PY
M=$T/nan.onnx

# ---- non-finite weights -----------------------------------------------------------------------
"$BIN" info "$M" >"$T/out" 2>"$T/err"
rc=$?
check "info describes the model (exit $rc) and flags it: $(head -c 160 "$T/err")" \
  bash -c "[ $rc -eq 0 ] && grep -q 'layer' '$T/out' && grep -q 'warning: initializer fc1.weight holds NaN at index 5 (2 non-finite values of 48000)' '$T/err'"
"$BIN" info "$M" --json >"$T/out" 2>/dev/null
check "info --json carries the flag" \
  $PY -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if 'fc1.weight' in (d['nonfinite'] or '') else 1)"
"$BIN" info "$SRC/tests/data/lenet_random.onnx" --json >"$T/out" 2>/dev/null
check "info --json: nonfinite is null for a clean model" \
  $PY -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if d['nonfinite'] is None else 1)"
commands=(
  "eval|--split sample"
  "decompose|--ranks fc1=svd:8 -o $T/o.onnx"
  "decompose|--layer fc1 --method svd --rank 8"
  "spectrum|--layer fc1"
  "estimate|"
  "search|--strategy evbmf --split sample -o $T/o.plan"
  "finetune|--ranks fc1=svd:8 --epochs 1 -o $T/o.onnx"
  "compress|--tolerance 1 -o $T/o.onnx"
  "export|--format onnx -o $T/o.onnx"
  "export|--format c -o $T/oc"
  "train|--epochs 1 -o $T/o.onnx"
  "bench|--reps 1"
)
mkdir -p "$T/oc"
for entry in "${commands[@]}"; do
  cmd=${entry%%|*}
  args=${entry#*|}
  if ! "$BIN" "$cmd" --help >/dev/null 2>&1; then
    ok "$cmd: # SKIP no such command in this build"
    continue
  fi
  # bench takes the model through --model
  if [ "$cmd" = bench ]; then set -- --model "$M"; else set -- "$M"; fi
  # shellcheck disable=SC2086
  timeout 120 "$BIN" "$cmd" "$@" $args >"$T/out" 2>"$T/err"
  rc=$?
  written=$(ls "$T"/o.onnx "$T"/o.plan "$T"/oc/* 2>/dev/null | wc -l)
  if [ $rc -ne 0 ] && [ $rc -lt 124 ] && grep -q "fc1.weight holds NaN" "$T/err" && [ "$written" -eq 0 ]; then
    ok "$cmd $args: refused naming the initializer, nothing written: $(grep fc1.weight "$T/err" | head -1 | head -c 170)"
  else
    notok "$cmd $args: exit $rc, $written files written"
    sed 's/^/#   /' "$T/err" | head -4
  fi
  rm -f "$T/o.onnx" "$T/o.plan" "$T"/oc/*
done
"$BIN" eval "$T/huge.onnx" --split sample >"$T/out" 2>"$T/err"
rc=$?
check "finite but huge weights (fc2, fc3 x 1e30): eval says the network overflows, no accuracy (exit $rc: $(head -c 150 "$T/err"))" \
  bash -c "[ $rc -eq 1 ] && grep -q 'huge.onnx: image 0 gives a non-finite logit' '$T/err' && ! grep -qi 'accuracy' '$T/out'"
"$BIN" "$M" >"$T/out" 2>"$T/err" </dev/null
rc=$?
check "the explorer refuses it before taking the terminal (exit $rc: $(head -c 150 "$T/err"))" \
  bash -c "[ $rc -eq 1 ] && grep -q 'fc1.weight holds NaN' '$T/err'"

# ---- control characters in names --------------------------------------------------------------
"$BIN" info "$T/ctrl.onnx" >"$T/out" 2>"$T/err"
rc=$?
check "info of a model whose node name holds ESC and BEL: exit $rc, no control byte printed" \
  bash -c "[ $rc -eq 0 ] && ! LC_ALL=C grep -q \$'[\\x01-\\x08\\x0b-\\x1f\\x7f]' '$T/out'"
check "... the name is quoted as ls quotes it: $(grep -a fc1 "$T/out" | head -c 60)" \
  grep -qF "'/fc1/'\$'\\033''[2J'\$'\\033''[31mGemm'\$'\\007' " "$T/out"
"$BIN" info "$T/ctrl.onnx" --json >"$T/out" 2>&1
check "... and info --json escapes it (valid JSON holding the exact name)" \
  $PY -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if any(l['name']=='/fc1/\x1b[2J\x1b[31mGemm\x07' for l in d['layers']) else 1)"

"$BIN" decompose "$T/ctrl.onnx" --layer "$(printf '/fc1/\033[2J\033[31mGemm\007')" --method cp --rank 3 \
  >"$T/out" 2>"$T/err"
rc=$?
check "an error message quoting that node name carries no control byte (exit $rc: $(head -c 120 "$T/err"))" \
  bash -c "[ $rc -ne 0 ] && ! LC_ALL=C grep -q \$'[\\x01-\\x08\\x0b-\\x1f\\x7f]' '$T/err' && [ \$(wc -l <'$T/err') -eq 1 ]"

"$BIN" estimate "$T/ctrl.onnx" >"$T/out" 2>"$T/err"
rc=$?
check "estimate lists that layer quoted, no control byte printed (exit $rc)" \
  bash -c "[ $rc -eq 0 ] && ! LC_ALL=C grep -q \$'[\\x01-\\x08\\x0b-\\x1f\\x7f]' '$T/out' && grep -qF \"'/fc1/'\" '$T/out'"
"$BIN" "$(printf 'frob\033]0;pwned\007')" >"$T/out" 2>"$T/err"
rc=$?
check "a command-line word echoed in an error shows its control bytes escaped (exit $rc: $(cat "$T/err"))" \
  bash -c "[ $rc -eq 2 ] && ! LC_ALL=C grep -q \$'[\\x01-\\x08\\x0b-\\x1f\\x7f]' '$T/err' && grep -qF 'frob\\033]0;pwned\\007' '$T/err'"

# ---- plans ---------------------------------------------------------------------------------------
L=$SRC/tests/data/lenet_random.onnx
printf '\xef\xbb\xbffc1 svd 8\r\nfc2 svd 6\r\n' >"$T/bom.plan"
"$BIN" eval "$L" --plan "$T/bom.plan" --split sample --json >"$T/out" 2>"$T/err"
check "a plan file saved with a UTF-8 BOM and CRLF is accepted (exit $?: $(head -c 100 "$T/err"))" test -s "$T/out"
printf 'fc1 svd 8\n# keep\nfc2 svd 6\nfc1 svd 4\n' >"$T/twice.plan"
"$BIN" eval "$L" --plan "$T/twice.plan" --split sample >"$T/out" 2>"$T/err"
rc=$?
check "a plan naming fc1 twice is refused naming both lines (exit $rc: $(cat "$T/err"))" \
  bash -c "[ $rc -ne 0 ] && one_line() { [ \$(wc -l <'$T/err') -eq 1 ]; }; one_line && grep -q 'twice.plan:4: layer fc1 is given twice: line 1 and line 4' '$T/err'"
"$BIN" eval "$L" --ranks fc1=svd:8,fc1=svd:4 --split sample >"$T/out" 2>"$T/err"
rc=$?
check "--ranks naming fc1 twice is refused (exit $rc: $(cat "$T/err"))" \
  bash -c "[ $rc -ne 0 ] && grep -q 'layer fc1 is given twice: item 1 and item 2' '$T/err'"
"$BIN" eval "$L" --ranks fc1=svd:8,/fc1/Gemm=svd:4 --split sample >"$T/out" 2>"$T/err"
rc=$?
check "--ranks naming one layer by two spellings is refused (exit $rc: $(cat "$T/err"))" \
  bash -c "[ $rc -ne 0 ] && grep -q 'name the same layer' '$T/err'"
for spec in "," ",," "fc1=svd:8,"; do
  "$BIN" eval "$L" --ranks "$spec" --split sample >"$T/out" 2>"$T/err"
  rc=$?
  check "--ranks \"$spec\" is refused (exit $rc: $(cat "$T/err"))" bash -c "[ $rc -ne 0 ] && grep -q 'is empty' '$T/err'"
done
# search's --layers and --methods lists: the same rules as --ranks (an empty list used to search
# nothing and print "(empty)"; --methods "," exited 2 without a word; another spelling of a layer
# selected nothing)
for a in "--layers ,|item 1 is empty" "--layers fc1,,fc2|item 2 is empty" "--layers fc9|not a known layer" \
         "--layers fc1,/fc1/Gemm|already listed" "--methods ,|an empty item" "--methods svd,|an empty item"; do
  args=${a%%|*}
  want=${a#*|}
  # shellcheck disable=SC2086
  "$BIN" search "$L" --strategy evbmf --split sample $args >"$T/out" 2>"$T/err"
  rc=$?
  check "search $args is refused with one line (exit $rc: $(cat "$T/err"))" \
    bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q '$want' '$T/err'"
done
"$BIN" search "$L" --strategy evbmf --split sample --layers /fc1/Gemm >"$T/out" 2>"$T/err"
check "search --layers /fc1/Gemm selects fc1 (exit $?: $(grep -m1 fc1 "$T/out"))" grep -qE '^ +fc1 +svd' "$T/out"
"$BIN" info "$L" --ranks conv2=tucker2:4,3,fc1=svd:8 --json >"$T/out" 2>"$T/err"
check "--ranks conv2=tucker2:4,3,fc1=svd:8 factorizes both layers (exit $?: $(head -c 100 "$T/err"))" \
  $PY -c "import json,sys; d=json.load(open('$T/out')); n=[l['name'] for l in d['layers']]; sys.exit(0 if sum('conv2' in x for x in n) == 3 and sum('fc1' in x for x in n) == 2 else 1)"

# ---- the explorer's save refuses the input under another spelling (a hard link) ----------------
if command -v tmux >/dev/null 2>&1; then
  SOCK=rs-robust-$$
  TM="tmux -L $SOCK"
  mkdir -p "$T/x"
  cp "$L" "$T/x/m.onnx"
  ln "$T/x/m.onnx" "$T/x/out.onnx"
  INO=$(stat -c %i "$T/x/m.onnx")
  $TM new-session -d -s x -x 100 -y 30 \
    "cd '$T/x' && env -u RANKSCOPE_DATA RANKSCOPE_ASSETS='$RANKSCOPE_ASSETS' LC_ALL=C.UTF-8 '$BIN' m.onnx --out out; sleep 30"
  seen=""
  for _ in $(seq 1 200); do
    $TM capture-pane -p -t x 2>/dev/null | grep -qE "layer +op" && { seen=1; break; }
    sleep 0.1
  done
  $TM send-keys -t x w
  msg=""
  for _ in $(seq 1 100); do
    msg=$($TM capture-pane -p -t x 2>/dev/null | grep -oE "refusing to overwrite the input model[^|]*|saved [^|]*" | head -1)
    [ -n "$msg" ] && break
    sleep 0.1
  done
  $TM kill-server 2>/dev/null
  check "explorer --out PREFIX whose PREFIX.onnx is a hard link of the model: w refuses ($msg)" \
    bash -c "[ -n '$seen' ] && grep -q 'refusing to overwrite' <<<'$msg' && [ \$(stat -c %i '$T/x/out.onnx') = $INO ]"
else
  ok "# SKIP tmux not installed"
fi

echo "1..$n"
exit $((failed > 0))
