#!/bin/bash
# cli_decomp.sh — `rankscope decompose | spectrum | estimate` end to end: JSON fields and
# values checked with python3's json module, error messages and exit codes, plan files.
# usage: cli_decomp.sh   (RANKSCOPE_BIN names the binary; RANKSCOPE_ASSETS the sample data)
set -u
bin=${RANKSCOPE_BIN:?RANKSCOPE_BIN must name the rankscope binary}
here=$(cd "$(dirname "$0")" && pwd)
model=$here/data/lenet_random.onnx
source "$here/lib.sh"
py=$RS_PY
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_cli_decomp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# json_check FILE PYTHON-EXPR — the expression, with d = the parsed JSON, must be true
json_check() {
    $py - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2])
print(sys.argv[2] if ok else "false: " + sys.argv[2])
sys.exit(0 if ok else 1)
PY
}

# fails_with STATUS TEXT COMMAND... — exits with STATUS and prints TEXT on stderr
fails_with() {
    local want=$1 text=$2 out rc
    shift 2
    out=$("$@" 2>&1 >/dev/null)
    rc=$?
    [ "$rc" = "$want" ] || { echo "exit $rc, expected $want: $out"; return 1; }
    grep -qF -- "$text" <<<"$out" || { echo "stderr lacks \"$text\": $out"; return 1; }
    echo "$out"
}

spec() { "$bin" spectrum "$model" "$@" >"$tmp/out.json"; }
point "spectrum fc1 --json runs" spec --layer fc1 --json
point "fc1: 120 singular values, descending, energy ends at 1, evbmf_rank present" json_check "$tmp/out.json" \
    'len(d["singular_values"]) == 120 and all(a >= b for a, b in zip(d["singular_values"], d["singular_values"][1:])) and abs(d["energy"][-1] - 1) < 1e-9 and isinstance(d["evbmf_rank"], int)'
point "spectrum conv2 --json runs" spec --layer conv2 --json
point "conv2: spatial 30x80 by default, views mode-0 16x150, mode-1 6x400, 96 slices" json_check "$tmp/out.json" \
    'd["view"] == "spatial" and len(d["singular_values"]) == 30 and d["views"]["mode-0"]["rows"] == 16 and d["views"]["mode-1"]["cols"] == 400 and len(d["views"]["slices"]["slices"]) == 96'
point "spectrum conv2 --view mode-1 --json runs" spec --layer conv2 --view mode-1 --json
point "mode-1 view has 6 values" json_check "$tmp/out.json" 'd["view"] == "mode-1" and len(d["singular_values"]) == 6'
point "spectrum of an unknown layer fails" fails_with 1 'layer "conv9" not found' "$bin" spectrum "$model" --layer conv9
point "spectrum without --layer is a usage error" fails_with 2 "--layer NAME is required" "$bin" spectrum "$model"

dec() { "$bin" decompose "$model" "$@" >"$tmp/out.json"; }
point "decompose conv2 spatial-svd 12 --json" dec --layer conv2 --method spatial-svd --rank 12 --json --calib 64
point "spatial r12 costs (hand: 2416 -> 1336 params, 240000 -> 146400 MACs), errors in (0,1)" json_check "$tmp/out.json" \
    'd["params_after"] == 1336 and d["macs_after"] == 146400 and 0 < d["weight_error"] < 1 and 0 < d["output_error"] < 1.5 and d["calibration_images"] == 64 and len(d["factors"]) == 2'
point "decompose conv2 cp 8 --json reports fit per sweep" dec --layer conv2 --method cp --rank 8 --json --calib 16
point "cp: fit list as long as the sweeps, degenerate flag" json_check "$tmp/out.json" \
    'len(d["fit"]) == d["iterations"] > 0 and d["degenerate"] in (True, False) and len(d["factors"]) == 4'
point "decompose conv2 tucker2 8,4 --json" dec --layer conv2 --method tucker2 --rank 8,4 --json --calib 16
point "tucker2 ranks (8,4): hand costs 968 params, 97504 MACs" json_check "$tmp/out.json" \
    'd["rank"] == 8 and d["rank2"] == 4 and d["params_after"] == 968 and d["macs_after"] == 97504'
point "rank out of range names layer and range" fails_with 1 "rank 500 out of range 1..120" \
    "$bin" decompose "$model" --layer fc1 --method svd --rank 500
point "svd on a conv is refused" fails_with 1 "svd is for dense" \
    "$bin" decompose "$model" --layer conv2 --method svd --rank 4
point "unknown method is a usage error" fails_with 2 'unknown method "qr"' \
    "$bin" decompose "$model" --layer conv2 --method qr --rank 4
point "--ranks with a missing layer names it" fails_with 1 'plan: layer "fc9" not found' \
    "$bin" decompose "$model" --ranks fc9=svd:3
printf 'conv2 spatial-svd 12\nfc1 svd 32 # comment\n' >"$tmp/p.plan"
point "decompose --plan FILE -o writes a model" "$bin" decompose "$model" --plan "$tmp/p.plan" -o "$tmp/f.onnx" --json
point "the factorized model loads: 29566 params (hand: 62006 - 1080 - 31360)" \
    bash -c "\"$bin\" info \"$tmp/f.onnx\" --json >\"$tmp/info.json\" && $py -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d[\"params\"] == 29566 else 1)' \"$tmp/info.json\""
printf 'conv2 spatial-svd 12\nfc1 svd x\n' >"$tmp/bad.plan"
point "a bad plan line is reported with file and line" fails_with 1 "bad.plan:2: layer fc1: bad rank \"x\"" \
    "$bin" decompose "$model" --plan "$tmp/bad.plan"
point "-o refuses to overwrite the input model" fails_with 1 "refusing to overwrite" \
    "$bin" decompose "$model" --ranks fc1=svd:3 -o "$model"

est() { "$bin" estimate "$model" "$@" >"$tmp/out.json"; }
point "estimate --multiple 8 --json" est --multiple 8 --json
point "estimate: every conv has 4 methods, dense 1; ranks multiples of 8 or the max" json_check "$tmp/out.json" \
    'len(d["layers"]) == 2 * 4 + 3 and all(l["evbmf_rank"] % 8 == 0 or l["evbmf_rank"] == l["max_rank"] for l in d["layers"])'
cp_ref() {
    OPENBLAS_NUM_THREADS=1 $py "$here/cp_als_ref.py" "$model" conv2.weight 8 "$bin" conv2 0.005
}
point "CP-ALS reaches an independent numpy ALS's error (TensorLy's rule, rank 8, within 0.005)" cp_ref
tap_done
