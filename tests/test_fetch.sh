#!/bin/bash
# test_fetch.sh — `rankscope data fetch` against a local HTTP server on 127.0.0.1 (TAP).
# Never touches the real URL. The test makes a tiny fake CIFAR-10 archive (six batch files of 10
# records), a corrupted copy, a truncated copy and one missing test_batch.bin, serves them with
# tests/fetch_server.py (Range support, a no-Range mode and a connection that closes half way),
# and checks: the unpacked files equal the originals; a second run does nothing; a bad md5, a
# truncated gzip and wrong contents are refused with one line and leave no target, no .part and
# no temporary directory; an interrupted download is resumed with an HTTP Range request (next
# run, and within a run by retrying); a server ignoring Range restarts the download cleanly.
set -u
BIN=${RANKSCOPE_BIN:?RANKSCOPE_BIN not set}
SRC=${RS_SOURCE_ROOT:?RS_SOURCE_ROOT not set}
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/rs_fetch.XXXXXX")
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
n=0
failed=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
run() { "$@" >"$T/out" 2>"$T/err"; rc=$?; out=$(cat "$T/out"); err=$(cat "$T/err"); }
json() { $PY -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if ($1) else 1)" 2>/dev/null; }
one_line() { [ "$(wc -l <"$T/err")" -eq 1 ]; }
# nothing left behind in DIR but what is listed
clean_dir() { # clean_dir DIR [allowed names...]
    local d=$1
    shift
    local extra
    extra=$(cd "$d" && ls -A | grep -vxF -f <(printf '%s\n' "$@" "") || true)
    [ -z "$extra" ] || { echo "# left behind in $d: $extra"; return 1; }
}

# ---- fixtures: fake archives ---------------------------------------------------------------
mkdir -p "$T/www"
$PY - "$T" <<'PY'
import hashlib, io, os, sys, tarfile
import numpy as np
t = sys.argv[1]
rng = np.random.default_rng(6)
names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
os.makedirs(f"{t}/orig", exist_ok=True)
files = {}
for name in names:
    rec = rng.integers(0, 256, size=(10, 3073), dtype=np.uint8)
    rec[:, 0] = rng.integers(0, 10, size=10)
    files[name] = rec.tobytes()
    open(f"{t}/orig/{name}", "wb").write(files[name])
files["batches.meta.txt"] = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n"

def archive(path, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        d = tarfile.TarInfo("cifar-10-batches-bin")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for name, data in members.items():
            info = tarfile.TarInfo("cifar-10-batches-bin/" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    open(path, "wb").write(raw)
    return raw

good = archive(f"{t}/www/good.tar.gz", files)
bad = bytearray(good)
bad[len(bad) // 2] ^= 0xFF
open(f"{t}/www/corrupt.tar.gz", "wb").write(bad)
open(f"{t}/www/trunc.tar.gz", "wb").write(good[: len(good) * 2 // 3])
archive(f"{t}/www/notest.tar.gz", {k: v for k, v in files.items() if k != "test_batch.bin"})
short = dict(files)
short["data_batch_3.bin"] = files["data_batch_3.bin"][: 3073 * 9]
archive(f"{t}/www/short.tar.gz", short)
for name in ("good", "corrupt", "trunc", "notest", "short"):
    digest = hashlib.md5(open(f"{t}/www/{name}.tar.gz", "rb").read()).hexdigest()
    open(f"{t}/{name}.md5", "w").write(digest)
open(f"{t}/good.size", "w").write(str(len(good)))
PY
md5() { cat "$T/$1.md5"; }

$PY "$SRC/tests/fetch_server.py" "$T/www" "$T/port" "$T/requests.log" 120 &
server_pid=$!
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
if [ ! -s "$T/port" ]; then
    echo "not ok 1 - local HTTP server did not start"
    echo "1..1"
    exit 1
fi
URL=http://127.0.0.1:$(cat "$T/port")
fetch() { run "$BIN" data fetch --records 10 "$@"; }
ok $([ -n "$(md5 good)" ]; echo $?) "fixtures: fake archive and md5 made ($(cat "$T/good.size") bytes)"

# ---- a good archive ------------------------------------------------------------------------
D=$T/d1
fetch --dir "$D" --url "$URL/good.tar.gz" --md5 "$(md5 good)" --json
ok $rc "good archive: exit 0 ($err)"
json "d['already'] is False and d['attempts'] == 1 and d['md5'] == '$(md5 good)' and d['bytes'] == $(cat "$T/good.size")"
ok $? "good archive: --json reports one attempt, the md5 and the size"
same=0
for f in data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin; do
    cmp -s "$T/orig/$f" "$D/cifar-10-batches-bin/$f" || same=1
done
ok $same "good archive: the six unpacked batch files equal the originals"
[ -f "$D/cifar-10-batches-bin/batches.meta.txt" ]; ok $? "good archive: batches.meta.txt unpacked too"
clean_dir "$D" cifar-10-batches-bin; ok $? "good archive: no .part or temporary directory left"
fetch --dir "$D" --url "$URL/good.tar.gz" --md5 "$(md5 good)" --json
json "d['already'] is True and d['attempts'] == 0"
ok $? "second run: already complete, no request made"
run "$BIN" eval "$SRC/tests/data/lenet_random.onnx" --data "$D/cifar-10-batches-bin" --split test --json
json "d['images'] == 10"; ok $? "rankscope eval reads the fetched data (10 test images)"

# ---- refusals: one line, no target, no .part, no temporary directory -----------------------
refused() { # refused NAME PATTERN [fetch args...]
    local name=$1 pat=$2 d=$T/r_$1
    shift 2
    fetch --dir "$d" "$@"
    ok $(( rc != 1 )) "$name: exit 1"
    one_line && grep -qiE "$pat" "$T/err"; ok $? "$name: one-line message matching /$pat/ ($err)"
    clean_dir "$d"; ok $? "$name: no target, .part or temporary directory left"
}
refused "corrupt archive (bad md5)" "md5 [0-9a-f]{32} does not match the expected $(md5 good)" \
    --url "$URL/corrupt.tar.gz" --md5 "$(md5 good)"
refused "truncated gzip (md5 of the truncated file)" "truncated|corrupt" \
    --url "$URL/trunc.tar.gz" --md5 "$(md5 trunc)"
refused "archive without test_batch.bin" "no cifar-10-batches-bin/test_batch.bin" \
    --url "$URL/notest.tar.gz" --md5 "$(md5 notest)"
refused "archive with a short batch file" "data_batch_3.bin: 27657 bytes, expected 30730" \
    --url "$URL/short.tar.gz" --md5 "$(md5 short)"
refused "HTTP 404" "HTTP 404" --url "$URL/missing.tar.gz" --md5 "$(md5 good)"
refused "malformed --md5" "not 32 hex digits" --url "$URL/good.tar.gz" --md5 xyz
refused "non-http URL" "not http" --url "file:///etc/passwd" --md5 "$(md5 good)"

# ---- interrupted download: resumed by the next run -----------------------------------------
D=$T/d2
: >"$T/requests.log"
fetch --dir "$D" --url "$URL/flaky/good.tar.gz" --md5 "$(md5 good)" --retries 0
ok $(( rc != 1 )) "interrupted download: exit 1"
one_line && grep -q "interrupted" "$T/err" && grep -q "resume" "$T/err"
ok $? "interrupted download: one line saying so ($err)"
part=$D/cifar-10-binary.tar.gz.part
psize=$(stat -c %s "$part" 2>/dev/null || echo 0)
[ "$psize" -gt 0 ] && [ "$psize" -lt "$(cat "$T/good.size")" ] && [ ! -e "$D/cifar-10-batches-bin" ]
ok $? "interrupted download: a partial .part is kept ($psize bytes), no target"
fetch --dir "$D" --url "$URL/flaky/good.tar.gz" --md5 "$(md5 good)" --json
ok $rc "next run: exit 0 ($err)"
json "d['resumed'] is True and d['restarted'] is False"; ok $? "next run: reported as resumed"
grep -qx "/flaky/good.tar.gz bytes=$psize-" "$T/requests.log"
ok $? "next run: asked the server for bytes=$psize-"
cmp -s "$T/orig/test_batch.bin" "$D/cifar-10-batches-bin/test_batch.bin" && clean_dir "$D" cifar-10-batches-bin
ok $? "next run: data unpacked, .part removed"

# ---- interrupted download: resumed within the same run --------------------------------------
D=$T/d3
cp "$T/www/good.tar.gz" "$T/www/good2.tar.gz"
fetch --dir "$D" --url "$URL/flaky/good2.tar.gz" --md5 "$(md5 good)" --json
ok $rc "interrupted once, retried in the same run: exit 0 ($err)"
json "d['attempts'] == 2 and d['resumed'] is True"; ok $? "retried run: two requests, the second resumed"
[ -f "$D/cifar-10-batches-bin/data_batch_5.bin" ]; ok $? "retried run: data unpacked"

# ---- a server without Range support: restart from byte 0 ------------------------------------
D=$T/d4
mkdir -p "$D"
# a stale .part that could be the archive's start (gzip magic) but holds other bytes
{ printf '\037\213\010'; head -c 997 /dev/urandom; } >"$D/cifar-10-binary.tar.gz.part"
: >"$T/requests.log"
fetch --dir "$D" --url "$URL/norange/good.tar.gz" --md5 "$(md5 good)" --json
ok $rc "server ignoring Range: exit 0 ($err)"
json "d['restarted'] is True and d['resumed'] is False"; ok $? "server ignoring Range: reported as restarted"
grep -qx "/norange/good.tar.gz bytes=1000-" "$T/requests.log"; ok $? "server ignoring Range: a Range request was tried"
cmp -s "$T/orig/data_batch_1.bin" "$D/cifar-10-batches-bin/data_batch_1.bin"; ok $? "server ignoring Range: data intact"

# ---- an incomplete earlier target is replaced; --force refetches -----------------------------
D=$T/d5
mkdir -p "$D/cifar-10-batches-bin"
cp "$T/orig/data_batch_1.bin" "$D/cifar-10-batches-bin/"
fetch --dir "$D" --url "$URL/good.tar.gz" --md5 "$(md5 good)" --json
ok $rc "incomplete earlier target: exit 0"
[ -f "$D/cifar-10-batches-bin/test_batch.bin" ] && clean_dir "$D" cifar-10-batches-bin
ok $? "incomplete earlier target: replaced, nothing left beside it"
fetch --dir "$D" --url "$URL/good.tar.gz" --md5 "$(md5 good)" --force --json
json "d['already'] is False and d['attempts'] == 1"; ok $? "--force downloads again"

# ---- default directory: ~/.cache/rankscope ----------------------------------------------------
HOME=$T/home run "$BIN" data fetch --records 10 --url "$URL/good.tar.gz" --md5 "$(md5 good)"
ok $rc "default directory: exit 0"
[ -f "$T/home/.cache/rankscope/cifar-10-batches-bin/test_batch.bin" ]
ok $? "default directory: unpacked under \$HOME/.cache/rankscope"

# ---- bounded downloads: stall, deadline, size cap --------------------------------------------
bounded() { # bounded NAME PATTERN MAX_SECONDS [fetch args...]
    local name=$1 pat=$2 max=$3 d=$T/b_$1 t0 t1
    shift 3
    t0=$(date +%s)
    fetch --dir "$d" --md5 "$(md5 good)" --retries 0 "$@"
    t1=$(date +%s)
    ok $(( rc != 1 || t1 - t0 > max )) "$name: exit 1 within $max s (took $((t1 - t0)) s)"
    one_line && grep -qiE "$pat" "$T/err"; ok $? "$name: one-line message matching /$pat/ ($err)"
}
bounded drip "stalled: under 1024 bytes/s for 2 s" 12 --url "$URL/drip/good.tar.gz" --stall-timeout 2
[ ! -e "$T/b_drip/cifar-10-batches-bin" ]; ok $? "drip: no target"
bounded deadline "the 3 s deadline passed" 12 --url "$URL/drip/good.tar.gz" --deadline 3 \
    --stall-timeout 100
[ -s "$T/b_deadline/cifar-10-binary.tar.gz.part" ]; ok $? "deadline: the partial .part is kept for the next run"
bounded endless "sends more than [0-9]+ bytes" 30 --url "$URL/endless/good.tar.gz"
clean_dir "$T/b_endless"; ok $? "endless body: the junk .part is deleted, nothing left"
bounded huge "sends more than [0-9]+ bytes" 12 --url "$URL/huge/good.tar.gz"
clean_dir "$T/b_huge"; ok $? "announced 100 GB: nothing written"
run "$BIN" data fetch --deadline 0; ok $(( rc != 2 )) "--deadline 0 exits 2"

# ---- never resume from a .part that cannot be the archive's start ----------------------------
D=$T/d6
mkdir -p "$D"
head -c 5000 /dev/urandom >"$D/cifar-10-binary.tar.gz.part"
printf 'x' | dd of="$D/cifar-10-binary.tar.gz.part" bs=1 count=1 conv=notrunc 2>/dev/null
: >"$T/requests.log"
fetch --dir "$D" --url "$URL/good.tar.gz" --md5 "$(md5 good)" --json
ok $rc "junk .part (not gzip): exit 0 ($err)"
json "d['discarded'] is True and d['resumed'] is False"; ok $? "junk .part: reported as discarded"
grep -qx "/good.tar.gz -" "$T/requests.log" && ! grep -q "bytes=" "$T/requests.log"
ok $? "junk .part: downloaded from byte 0, no Range request"
D=$T/d7
mkdir -p "$D"
{ printf '\037\213\010'; head -c 4000000 /dev/zero; } >"$D/cifar-10-binary.tar.gz.part"
: >"$T/requests.log"
fetch --dir "$D" --url "$URL/good.tar.gz" --md5 "$(md5 good)" --json
ok $rc "a .part longer than the archive can be: exit 0 ($err)"
! grep -q "bytes=" "$T/requests.log"; ok $? "oversized .part: no Range request"

# ---- a data directory that is a symbolic link is refreshed where it points -------------------
D=$T/d8
mkdir -p "$D/disk/cifar-10-batches-bin" "$D/dir"
cp "$T/orig/data_batch_1.bin" "$D/disk/cifar-10-batches-bin/"
ln -s ../disk/cifar-10-batches-bin "$D/dir/cifar-10-batches-bin"
fetch --dir "$D/dir" --url "$URL/good.tar.gz" --md5 "$(md5 good)" --json
ok $rc "symlinked data directory: exit 0 ($err)"
[ -L "$D/dir/cifar-10-batches-bin" ] && cmp -s "$T/orig/test_batch.bin" "$D/disk/cifar-10-batches-bin/test_batch.bin"
ok $? "symlinked data directory: the link stays, the directory it points to is complete"
clean_dir "$D/disk" cifar-10-batches-bin && clean_dir "$D/dir" cifar-10-batches-bin
ok $? "symlinked data directory: nothing left beside either"
fetch --dir "$D/dir" --url "$URL/good.tar.gz" --md5 "$(md5 good)" --json --force
ok $rc "symlinked data directory: --force refreshes it again ($err)"
ln -s ../nowhere "$D/dangling"
mkdir -p "$D/dir2" && ln -s ../nowhere/x "$D/dir2/cifar-10-batches-bin"
fetch --dir "$D/dir2" --url "$URL/good.tar.gz" --md5 "$(md5 good)"
ok $(( rc != 1 )) "a dangling data-directory link: exit 1"
one_line && grep -q "symbolic link to a missing directory" "$T/err"; ok $? "dangling link: one line saying so ($err)"

# ---- leftovers of killed fetches are swept; a running fetch's are not ------------------------
D=$T/d9
sh -c 'exit 0' &
dead=$!
wait $dead
mkdir -p "$D/.cifar-10-batches-bin.tmp.$dead.AbC123" "$D/.cifar-10-batches-bin.tmp.Old123" \
    "$D/.cifar-10-batches-bin.tmp.$$.Live12" "$D/.cifar-10-batches-bin.old.tmp.$dead.Xyz789"
echo x >"$D/.cifar-10-batches-bin.tmp.$dead.AbC123/data_batch_1.bin"
touch -d '2 hours ago' "$D/.cifar-10-batches-bin.tmp.Old123"
fetch --dir "$D" --url "$URL/good.tar.gz" --md5 "$(md5 good)"
ok $rc "fetch beside stale temporary directories: exit 0 ($err)"
clean_dir "$D" cifar-10-batches-bin ".cifar-10-batches-bin.tmp.$$.Live12"
ok $? "killed fetches' temporary directories swept (dead pid, hour-old legacy name), a live one kept"

# ---- a .part that is a symbolic link is not written through ------------------------------------
D=$T/d11
mkdir -p "$D"
printf 'precious\n' >"$T/victim"
ln -s ../victim "$D/cifar-10-binary.tar.gz.part"
fetch --dir "$D" --url "$URL/norange/good.tar.gz" --md5 "$(md5 good)"
ok $(( rc != 1 )) "a .part that is a symbolic link: exit 1"
one_line && grep -q "a symbolic link; refusing to download through it" "$T/err" && [ "$(cat "$T/victim")" = precious ]
ok $? "... one line saying so, and the file it points to is untouched ($err)"

# ---- two fetches into one directory: the second stops at once ---------------------------------
D=$T/d10
"$BIN" data fetch --records 10 --dir "$D" --url "$URL/drip/good.tar.gz" --md5 "$(md5 good)" \
    --stall-timeout 100 --deadline 20 >/dev/null 2>&1 &
first=$!
for _ in $(seq 50); do [ -s "$D/cifar-10-binary.tar.gz.part" ] && break; sleep 0.1; done
t0=$(date +%s)
fetch --dir "$D" --url "$URL/good.tar.gz" --md5 "$(md5 good)"
t1=$(date +%s)
ok $(( rc != 1 || t1 - t0 > 5 )) "a second fetch into a directory being fetched into: exit 1 at once ($((t1 - t0)) s)"
one_line && grep -q "another rankscope data fetch is working in this directory" "$T/err"
ok $? "second fetch: one line saying so ($err)"
kill "$first" 2>/dev/null
wait "$first" 2>/dev/null
fetch --dir "$D" --url "$URL/good.tar.gz" --md5 "$(md5 good)"
ok $rc "after the first one is stopped, a fetch into that directory works ($err)"

run "$BIN" data frob;  ok $(( rc != 2 )) "data with an unknown subcommand exits 2"
run "$BIN" data fetch --retries x; ok $(( rc != 2 )) "bad --retries exits 2"

echo "1..$n"
[ "$failed" -eq 0 ]
