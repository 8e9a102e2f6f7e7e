# tests/lib.sh — helpers shared by the TAP shell tests; `source "$(dirname "$0")/lib.sh"`.
# Sourcing only defines functions and the TAP counters n (points so far) and failed (points that
# failed); nothing runs. A script ends with `tap_done`, which prints the plan and sets the status.
#
#   TAP        point DESC COMMAND...   ok DESC   notok DESC   check DESC SHELL-CONDITION   tap_done
#   interop    need_interop LABEL (python3-onnx + numpy, node, tests/node_modules/onnxruntime-node;
#              RS_SKIP_INTEROP=1 turns missing tools into a skip), onnx_check MODEL,
#              ort_run MODEL INPUT OUT.f32, compare_logits GOT.f32 REF.f32 TOL,
#              ort_compare NAME MODEL INPUT TOL (three points; needs $logits and $tmp)
#   models     shipped_model ROOT
#   tmux       need_tmux, cap, dump, wait_for, wait_idle, header — they drive the server "$T" (the caller sets
#              T="tmux -L SOCKET"); dump captures session "$CUR"; wait_idle watches the layers
#              matched by $IDLE_LAYERS (an ERE, default conv2) for a pending "..." cell.
RS_PY=/usr/bin/python3 # torch / onnx / numpy live here, not in the python3 on PATH
RS_TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
n=0
failed=0

# ---- TAP ---------------------------------------------------------------------------------------
# point DESCRIPTION COMMAND... — one TAP line; the command's output becomes diagnostics on
# failure, and its last line is appended to the description on success.
point() {
    local desc=$1 out
    shift
    n=$((n + 1))
    if out=$("$@" 2>&1); then
        echo "ok $n - $desc${out:+ (${out##*$'\n'})}"
    else
        failed=$((failed + 1))
        echo "not ok $n - $desc"
        [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/#   /'
    fi
}
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
# check DESCRIPTION CONDITION — CONDITION is eval'd; on failure the pane of $CUR is dumped
check() { if eval "$2"; then ok "$1"; else notok "$1"; dump; fi; }
tap_done() { echo "1..$n"; [ "$failed" -eq 0 ]; }

# ---- ONNX interop ------------------------------------------------------------------------------
# need_interop LABEL — exits the script: a TAP skip when tools are missing and RS_SKIP_INTEROP=1,
# else one failing point naming them; returns when everything is there.
need_interop() {
    local missing=""
    $RS_PY -c 'import onnx, numpy' 2>/dev/null || missing="$missing python3-onnx/numpy at $RS_PY;"
    command -v node >/dev/null 2>&1 || missing="$missing node;"
    [ -d "$RS_TESTS_DIR/node_modules/onnxruntime-node" ] ||
        missing="$missing onnxruntime-node (cd tests && npm install --ignore-scripts);"
    [ -z "$missing" ] && return 0
    if [ "${RS_SKIP_INTEROP:-0}" = 1 ]; then
        echo "1..0 # SKIP missing:$missing"
        exit 0
    fi
    echo "not ok 1 - $1 prerequisites missing:$missing"
    echo "1..1"
    exit 1
}

onnx_check() { # onnx_check MODEL — python3-onnx's checker with full_check (shape inference)
    $RS_PY -c 'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' "$1"
}

ort_run() { # ort_run MODEL INPUT.f32 OUT.f32 — ONNX Runtime's logits (tests/ort_logits.js)
    node "$RS_TESTS_DIR/ort_logits.js" "$1" "$2" "$3" >/dev/null
}

# compare_logits GOT.f32 REF.f32 TOL — same size, finite, |got-ref| <= TOL * max(1, |ref|)
# elementwise (as CHECK_CLOSE); prints the largest difference.
compare_logits() {
    [ -s "$1" ] || { echo "$1 was not produced"; return 1; }
    $RS_PY - "$1" "$2" "$3" <<'PY'
import sys
import numpy as np
got, ref = np.fromfile(sys.argv[1], "<f4"), np.fromfile(sys.argv[2], "<f4")
tol = float(sys.argv[3])
if got.size != ref.size or got.size == 0:
    sys.exit(f"{got.size} logits vs {ref.size}")
if not np.isfinite(got).all():
    sys.exit("non-finite logits")
diff = np.abs(got.astype(np.float64) - ref)
scaled = diff / np.maximum(1.0, np.abs(ref))
print(f"max |diff| {diff.max():.2e} over {got.size} logits up to {np.abs(ref).max():.3g}")
sys.exit(0 if scaled.max() <= tol else 1)
PY
}

# ort_compare NAME MODEL INPUT.f32 TOL — three points: ONNX Runtime runs MODEL, rankscope
# ($logits = tool_logits) runs it, and rankscope's logits are within TOL of ONNX Runtime's.
# Leaves $tmp/NAME.ort.f32 and $tmp/NAME.rs.f32 for further checks.
ort_compare() {
    local name=$1 model=$2 input=$3 tol=$4
    point "$name: ONNX Runtime runs it" ort_run "$model" "$input" "$tmp/$name.ort.f32"
    point "$name: rankscope runs it" "${logits:?}" "$model" "$input" "$tmp/$name.rs.f32"
    point "$name: rankscope and ONNX Runtime agree within $tol" \
        compare_logits "$tmp/$name.rs.f32" "$tmp/$name.ort.f32" "$tol"
}

# golden_roundtrip NAME SRC.onnx REF.f32 INPUT.f32 — six points for a PyTorch export with its
# PyTorch logits: ONNX Runtime on SRC matches REF; rankscope ($resave = tool_resave) writes it back;
# onnx.checker accepts that file; ONNX Runtime and rankscope ($logits) on it match REF; they agree.
# Tolerance $tol (as compare_logits); files go to $tmp.
golden_roundtrip() {
    local m=$1 src=$2 ref=$3 input=$4 out=$tmp/$1.rankscope.onnx
    point "$m: ONNX Runtime on the PyTorch export matches PyTorch" \
        _ort_vs "$src" "$input" "$tmp/$m.orig.ort.f32" "$ref"
    point "$m: rankscope loads it and writes it back" "${resave:?}" "$src" "$out"
    point "$m: onnx.checker (full_check) accepts rankscope's file" onnx_check "$out"
    point "$m: ONNX Runtime on rankscope's file matches PyTorch" _ort_vs "$out" "$input" "$tmp/$m.ort.f32" "$ref"
    point "$m: rankscope inference on its file matches PyTorch" \
        _rankscope_vs "$out" "$input" "$tmp/$m.rs.f32" "$ref"
    point "$m: rankscope and ONNX Runtime agree" compare_logits "$tmp/$m.rs.f32" "$tmp/$m.ort.f32" "$tol"
}
_ort_vs() { ort_run "$1" "$2" "$3" && compare_logits "$3" "$4" "$tol"; }
_rankscope_vs() { "${logits:?}" "$1" "$2" "$3" && compare_logits "$3" "$4" "$tol"; }

# shipped_model ROOT — the shipped trained LeNet, or the random golden LeNet when assets lack it
shipped_model() {
    if [ -f "$1/assets/lenet-cifar10.onnx" ]; then
        echo "$1/assets/lenet-cifar10.onnx"
    else
        echo "$1/tests/data/lenet_random.onnx"
    fi
}

# ---- CIFAR-10 ----------------------------------------------------------------------------------
need_cifar_train() { # a TAP skip (exits the script) unless RS_TEST_CIFAR holds the training batches
    [ -n "${RS_TEST_CIFAR:-}" ] && [ -f "$RS_TEST_CIFAR/data_batch_1.bin" ] && return 0
    echo "1..0 # SKIP no CIFAR-10 training batches (RS_TEST_CIFAR)"
    exit 0
}

# ---- tmux (the explorer end to end) ------------------------------------------------------------
need_tmux() { # a TAP skip (exits the script) without tmux
    command -v tmux >/dev/null && return 0
    echo "1..0 # SKIP tmux not installed"
    exit 0
}
# tmux_server NAME [state]: a private tmux server ($T) and scratch directory ($WORK), both gone
# on exit (with "state": XDG_STATE_HOME=$WORK/state, this run's recent files only, which the
# server inherits), with one session that outlives the test sessions: killing the last test session would otherwise
# make the server exit, and the next new-session could race its exit ("server exited unexpectedly").
tmux_server() {
    T="tmux -L $1-$$"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    [ "${2:-}" = state ] && export XDG_STATE_HOME="$WORK/state"
    trap '$T kill-server 2>/dev/null; rm -rf "$WORK"' EXIT
    $T new-session -d -s keep -x 100 -y 30 "sleep 3600"
}
# tui_open SESSION COLS ROWS "ENV..." ARGS...: the explorer ($BIN, assets of $ROOT) in a pane of
# that size, run in $WORK without RANKSCOPE_DATA; EXIT=<status> is printed when it ends.
tui_open() {
    local s=$1 x=$2 y=$3 env=$4
    shift 4
    $T new-session -d -s "$s" -x "$x" -y "$y" \
        "cd '$WORK' && env -u RANKSCOPE_DATA RANKSCOPE_ASSETS='$ROOT/assets' ${XDG_STATE_HOME:+XDG_STATE_HOME='$XDG_STATE_HOME'} $env '$BIN' $*; echo EXIT=\$?; sleep 60"
}
cap() { $T capture-pane -p -t "$1" 2>/dev/null; }
dump() { cap "${CUR:-main}" | sed 's/^/#   | /'; }
header() { cap "$1" | head -1; }
wait_for() { # wait_for SESSION PATTERN SECONDS: poll the pane until grep -E matches
    local end=$((SECONDS + $3))
    while [ $SECONDS -lt $end ]; do
        cap "$1" | grep -qE -- "$2" && return 0
        sleep 0.1
    done
    return 1
}
# wait_idle SESSION SECONDS — until no evaluation is running: no [eval ..]/[pending] marker, no
# "acc ..." and no "..." in the rows of $IDLE_LAYERS
wait_idle() {
    local end=$((SECONDS + $2)) c
    while [ $SECONDS -lt $end ]; do
        c=$(cap "$1")
        if ! grep -qE '\[eval|\[pending\]|acc \.\.\.' <<<"$c" &&
            ! grep -qE "^. +${IDLE_LAYERS:-conv2} .*\\.\\.\\." <<<"$c"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
