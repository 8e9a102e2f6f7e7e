#!/usr/bin/env bash
# No data lost, end to end through the real binary. TAP output.
#  - every file rankscope writes goes through src/engine/fileio.c (no other open-for-write in
#    src/), which writes a temp file in the same directory, fsyncs it and renames it (checked
#    here with strace on `decompose -o`);
#  - `-o` naming the input model (by any spelling: ./x, a symlink, a hard link) is refused by
#    every command that takes -o, unless --force, and the model is left byte-identical;
#  - with --force the input is replaced by rename (a new inode), never truncated in place;
#  - a write interrupted by a full disk (RLIMIT_FSIZE with SIGXFSZ ignored: write() fails with
#    EFBIG exactly as on a full file system) leaves the old output intact and no temp file.
# Needs RANKSCOPE_BIN (meson sets it) or a build dir as $1.
set -u
SRC=${RS_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${RANKSCOPE_BIN:-${1:-$SRC/build}/rankscope}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
export RANKSCOPE_ASSETS=${RANKSCOPE_ASSETS:-$SRC/assets}
unset RANKSCOPE_DATA
T=$(mktemp -d "${TMPDIR:-/tmp}/rs-atomic.XXXXXX")
trap 'rm -rf "$T"' EXIT
cp "$SRC/tests/data/lenet_random.onnx" "$T/model.onnx"
MODEL=$T/model.onnx
SUM0=$(cksum <"$MODEL")

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { # check DESCRIPTION CONDITION-COMMAND...
  local what=$1; shift
  if "$@"; then ok "$what"; else notok "$what"; fi
}
unchanged() { [ "$(cksum <"$MODEL")" = "$SUM0" ]; }
no_temp() { ! ls "$T" | grep -q '\.tmp\.'; }

# 1. one writer: nothing in src/ opens a file for writing except fileio.c, and fetch.c (the
#    CIFAR-10 download), which appends to a resumable "<archive>.part" file and unpacks into a
#    temporary directory that is fsync'ed and renamed into place only after every checksum
#    matches (its own temp -> rename, checked here by the rename it must contain)
writers=$(grep -nE 'fopen\([^)]*"[wa]|O_WRONLY|O_RDWR|O_TRUNC|[^a-z_]creat\(' "$SRC"/src/*/*.c |
  grep -v 'src/engine/fileio.c' || true)
if [ -f "$SRC/src/engine/fetch.c" ] && grep -q 'rename(' "$SRC/src/engine/fetch.c"; then
  writers=$(grep -v 'src/engine/fetch.c' <<<"$writers" || true)
fi
if [ -z "$writers" ]; then
  ok "every file write in src/ goes through fileio_write_atomic or fetch.c's temp dir + rename"
else
  notok "files opened for writing outside fileio.c"
  echo "$writers" | sed 's/^/#   /'
fi

# 2. refusals: -o equal to the input model, by several spellings, for every command with -o
ln -s model.onnx "$T/link.onnx"
ln "$MODEL" "$T/hard.onnx" 2>/dev/null || cp "$MODEL" "$T/hard.onnx"
same_inode=$([ "$(stat -c %i "$MODEL")" = "$(stat -c %i "$T/hard.onnx")" ] && echo 1 || echo 0)
commands=(
  "decompose|--layer fc1 --method svd --rank 8"
  "finetune|--ranks fc1=svd:8 --epochs 1"
  "compress|--tolerance 1"
  "train|--epochs 1"
  "search|--strategy naive"
  "export|--format onnx"
)
for entry in "${commands[@]}"; do
  cmd=${entry%%|*}
  args=${entry#*|}
  if ! "$BIN" "$cmd" --help >/dev/null 2>&1; then
    ok "$cmd: # SKIP no such command in this build"
    continue
  fi
  spellings=("$MODEL" "$T/./model.onnx" "$T/link.onnx")
  [ "$same_inode" = 1 ] && spellings+=("$T/hard.onnx")
  for out in "${spellings[@]}"; do
    # shellcheck disable=SC2086
    (cd "$T" && timeout 60 "$BIN" "$cmd" "$MODEL" $args -o "$out" >"$T/out.txt" 2>"$T/err.txt")
    rc=$?
    if [ $rc -ne 0 ] && grep -q "input model" "$T/err.txt" && unchanged; then
      ok "$cmd -o ${out#$T/} (the input model) is refused, model unchanged: $(head -c 160 "$T/err.txt")"
    else
      notok "$cmd -o ${out#$T/} (the input model): exit $rc, model $(unchanged && echo unchanged || echo CHANGED)"
      sed 's/^/#   /' "$T/err.txt" | head -5
      cp "$SRC/tests/data/lenet_random.onnx" "$MODEL"
    fi
  done
done
rm -f "$T/link.onnx" "$T/hard.onnx" "$T/out.txt" "$T/err.txt"

# 2b. no model named: the shipped model (found through RANKSCOPE_ASSETS) is the input
mkdir -p "$T/assets"
cp "$MODEL" "$T/assets/lenet-cifar10.onnx"
ship0=$(cksum <"$T/assets/lenet-cifar10.onnx")
for entry in "decompose|--layer fc1 --method svd --rank 8" "export|--format onnx"; do
  cmd=${entry%%|*}
  args=${entry#*|}
  "$BIN" "$cmd" --help >/dev/null 2>&1 || continue
  # shellcheck disable=SC2086
  RANKSCOPE_ASSETS=$T/assets timeout 60 "$BIN" "$cmd" $args -o "$T/assets/lenet-cifar10.onnx" \
    >/dev/null 2>"$T/err.txt"
  rc=$?
  check "$cmd with no model named: -o the shipped model is refused (exit $rc: $(head -c 120 "$T/err.txt"))" \
    test $rc -ne 0 -a "$(cksum <"$T/assets/lenet-cifar10.onnx")" = "$ship0"
done
rm -rf "$T/assets" "$T/err.txt"

# 3. -o naming a directory
mkdir "$T/dir.onnx"
"$BIN" decompose "$MODEL" --layer fc1 --method svd --rank 8 -o "$T/dir.onnx" >/dev/null 2>"$T/err.txt"
rc=$?
check "decompose -o DIRECTORY is refused (exit $rc: $(head -c 120 "$T/err.txt"))" \
  test $rc -ne 0 -a -d "$T/dir.onnx"
rmdir "$T/dir.onnx"

# 3a. train --resume CHECKPOINT -o CHECKPOINT --force: --force is for the model, not the checkpoint
printf 'RSCKPT1\nnot really\n' >"$T/run.ckpt"
CK0=$(cksum <"$T/run.ckpt")
(cd "$T" && timeout 60 "$BIN" train --resume run.ckpt -o ./run.ckpt --force >/dev/null 2>"$T/err.txt")
rc=$?
check "train --resume run.ckpt -o ./run.ckpt --force is refused, checkpoint unchanged (exit $rc: $(head -c 140 "$T/err.txt"))" \
  bash -c "[ $rc -ne 0 ] && grep -q 'is the file given to --resume' '$T/err.txt' && [ \"\$(cksum <'$T/run.ckpt')\" = '$CK0' ]"
rm -f "$T/run.ckpt"

# 3c. -o a device or a named pipe: written in place, never replaced by a regular file (as root,
#     `-o /dev/null` used to turn /dev/null into a 250 KB file)
if mknod "$T/null" c 1 3 2>/dev/null; then
  "$BIN" export "$MODEL" --format onnx -o "$T/null" >/dev/null 2>"$T/err.txt"
  rc=$?
  check "export -o a character device (a copy of /dev/null): exit $rc, still a character device" \
    test $rc -eq 0 -a -c "$T/null"
  rm -f "$T/null"
else
  ok "# SKIP mknod not permitted (not root)"
fi
mkfifo "$T/fifo"
cat "$T/fifo" >"$T/from_fifo" &
reader=$!
timeout 60 "$BIN" export "$MODEL" --format onnx -o "$T/fifo" >/dev/null 2>"$T/err.txt"
rc=$?
wait $reader
check "export -o a named pipe: exit $rc, the model came through it, still a pipe" \
  bash -c "[ $rc -eq 0 ] && [ -p '$T/fifo' ] && '$BIN' info '$T/from_fifo' >/dev/null 2>&1"
rm -f "$T/fifo" "$T/from_fifo"

# 3b. -o in a directory that does not exist: refused before any work (not after a long run)
for entry in "decompose|--layer fc1 --method svd --rank 8" "compress|--tolerance 1" "train|--epochs 1"; do
  cmd=${entry%%|*}
  args=${entry#*|}
  "$BIN" "$cmd" --help >/dev/null 2>&1 || continue
  start=$(date +%s)
  # shellcheck disable=SC2086
  timeout 60 "$BIN" "$cmd" "$MODEL" $args -o "$T/no/such/dir/out.onnx" >/dev/null 2>"$T/err.txt"
  rc=$?
  check "$cmd -o into a missing directory is refused up front (exit $rc in $(( $(date +%s) - start )) s: $(head -c 120 "$T/err.txt"))" \
    bash -c "[ $rc -ne 0 ] && grep -q 'does not exist' '$T/err.txt'"
done

# 4. a normal write: the syscalls are temp file in the same directory -> fsync -> rename. The
#    temporary is an unnamed O_TMPFILE in the directory, named by linkat just before the rename
#    (nothing is left if the process is killed), or a named file where O_TMPFILE is unsupported.
if command -v strace >/dev/null 2>&1; then
  # LeakSanitizer cannot run under ptrace: off for this one run of a sanitizer build
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    strace -f -qq -e trace=openat,fsync,fdatasync,linkat,rename,renameat,renameat2,unlink -o "$T/trace" \
    "$BIN" decompose "$MODEL" --layer fc1 --method svd --rank 8 -o "$T/new.onnx" >/dev/null 2>&1
  rc=$?
  tmpname=$(grep -oE "\"$T/new\.onnx\.tmp\.[0-9]+\.[A-Za-z0-9]+\"" "$T/trace" | head -1 | tr -d '"')
  open_pat="openat\([^,]*, \"$T\", [^)]*O_TMPFILE|openat\(.*new\.onnx\.tmp.*O_CREAT"
  open_line=$(grep -nE "$open_pat" "$T/trace" | head -1 | cut -d: -f1)
  fd=$(grep -E "$open_pat" "$T/trace" | head -1 | grep -oE '= [0-9]+$' | tr -dc 0-9)
  fsync_line=$(grep -nE "fsync\($fd\)|fdatasync\($fd\)" "$T/trace" | awk -F: -v o="${open_line:-0}" '$1 > o {print $1; exit}')
  rename_line=$(grep -nE "rename(at2?)?\(.*new\.onnx\.tmp.*new\.onnx\"" "$T/trace" | head -1 | cut -d: -f1)
  direct=$(grep -cE "openat\([^,]*, \"$T/new\.onnx\", [^)]*O_(WRONLY|RDWR)" "$T/trace")
  how=$(grep -qE "openat\([^,]*, \"$T\", [^)]*O_TMPFILE" "$T/trace" && echo "O_TMPFILE + linkat" || echo "named temp")
  if [ $rc -eq 0 ] && [ -n "$tmpname" ] && [ -n "$fsync_line" ] && [ -n "$rename_line" ] &&
    [ "$open_line" -lt "$fsync_line" ] && [ "$fsync_line" -lt "$rename_line" ] && [ "$direct" -eq 0 ]; then
    ok "decompose -o: temp file ($how, ${tmpname#$T/}) beside it, fsync'ed, renamed (strace lines $open_line < $fsync_line < $rename_line)"
  else
    notok "decompose -o: expected temp -> fsync -> rename (rc $rc, tmp '${tmpname:-}', lines ${open_line:-?} ${fsync_line:-?} ${rename_line:-?}, direct opens $direct)"
    sed 's/^/#   /' "$T/trace" | grep -E 'new\.onnx|fsync|TMPFILE' | head -10
  fi
else
  ok "# SKIP strace not installed"
fi
check "the written model loads (rankscope info)" bash -c "'$BIN' info '$T/new.onnx' >/dev/null 2>&1"

# 5. --force replaces the input by rename: a new inode, complete content
ino0=$(stat -c %i "$MODEL")
"$BIN" decompose "$MODEL" --layer fc1 --method svd --rank 8 -o "$MODEL" --force >/dev/null 2>"$T/err.txt"
rc=$?
ino1=$(stat -c %i "$MODEL")
check "decompose -o MODEL --force replaces it (exit $rc) through a new inode ($ino0 -> $ino1)" \
  test $rc -eq 0 -a "$ino0" != "$ino1"
check "... and the replaced model is complete: it loads and fc1 is factorized" \
  bash -c "'$BIN' info '$MODEL' 2>/dev/null | grep -q 'fc1/Gemm_f0\|fc1_f0'"
cp "$SRC/tests/data/lenet_random.onnx" "$MODEL"
check "no temporary file left behind after successful writes" no_temp

# 6. the disk fills mid-write: RLIMIT_FSIZE 16 KiB (the model is ~75 KB), SIGXFSZ ignored so
#    write() fails with EFBIG like ENOSPC on a full disk
printf 'OLD CONTENT\n' >"$T/keep.onnx"
old=$(cksum <"$T/keep.onnx")
(trap '' XFSZ; ulimit -f 16; exec "$BIN" decompose "$MODEL" --layer fc1 --method svd --rank 8 \
  -o "$T/keep.onnx") >/dev/null 2>"$T/err.txt"
rc=$?
check "a model write cut off by a full disk fails (exit $rc): $(tail -1 "$T/err.txt" | head -c 200)" \
  test $rc -ne 0
check "... the existing output is intact" test "$(cksum <"$T/keep.onnx")" = "$old"
check "... and no temporary file is left behind" no_temp
check "... and the input model is unchanged" unchanged

# 7. the same for a plan written by search -o (when search exists): a full disk at 0 bytes
if "$BIN" search --help >/dev/null 2>&1; then
  printf 'fc1 svd 3\n' >"$T/keep.plan"
  oldp=$(cksum <"$T/keep.plan")
  # stderr goes through a pipe: with a 0-byte limit a file would refuse the error message too
  (trap '' XFSZ; ulimit -f 0; exec timeout 120 "$BIN" search "$MODEL" --strategy evbmf --split sample \
    -o "$T/keep.plan") 2>&1 >/dev/null | cat >"$T/err.txt"
  rc=${PIPESTATUS[0]}
  check "search -o PLAN on a full disk fails writing it (exit $rc: $(grep keep.plan "$T/err.txt" | head -c 160))" \
    grep -q "keep.plan" "$T/err.txt"
  check "... and leaves the old plan intact" test $rc -ne 0 -a "$(cksum <"$T/keep.plan")" = "$oldp"
  check "... and no temporary file is left behind" no_temp
fi

# 8. -o naming any other input: the plan (every spelling), a CIFAR-10 data file, the other output.
#    No --force for these: overwriting them is never what was meant.
printf 'fc1 svd 8\n' >"$T/p.plan"
PSUM=$(cksum <"$T/p.plan")
ln -s p.plan "$T/plink.plan"
ln "$T/p.plan" "$T/phard.plan" 2>/dev/null || cp "$T/p.plan" "$T/phard.plan"
mkdir -p "$T/sub"
for entry in "decompose|" "finetune|--epochs 1" "export|--format onnx"; do
  cmd=${entry%%|*}
  args=${entry#*|}
  for out in "$T/p.plan" "p.plan" "sub/../p.plan" "$T/plink.plan" "$T/phard.plan"; do
    # shellcheck disable=SC2086
    (cd "$T" && timeout 60 "$BIN" "$cmd" "$MODEL" --plan "$T/p.plan" $args -o "$out" --force \
      >/dev/null 2>"$T/err.txt")
    rc=$?
    check "$cmd --plan p.plan -o ${out#$T/} --force is refused, plan unchanged (exit $rc: $(head -c 140 "$T/err.txt"))" \
      test $rc -ne 0 -a "$(cksum <"$T/p.plan")" = "$PSUM" -a "$(grep -c 'input plan' "$T/err.txt")" = 1
  done
done
mkdir -p "$T/data"
head -c $((3073 * 10)) /dev/zero >"$T/data/test_batch.bin"
DSUM=$(cksum <"$T/data/test_batch.bin")
ln -s data "$T/datalink"
for entry in "decompose|--layer fc1 --method svd --rank 8" "export|--format onnx" "search|--strategy evbmf --split sample"; do
  cmd=${entry%%|*}
  args=${entry#*|}
  # shellcheck disable=SC2086
  timeout 60 "$BIN" "$cmd" "$MODEL" $args --data "$T/data" -o "$T/datalink/test_batch.bin" \
    >/dev/null 2>"$T/err.txt"
  rc=$?
  check "$cmd -o DATA/test_batch.bin (through a link) is refused (exit $rc: $(head -c 140 "$T/err.txt"))" \
    test $rc -ne 0 -a "$(cksum <"$T/data/test_batch.bin")" = "$DSUM" -a "$(grep -c 'CIFAR-10 data file' "$T/err.txt")" = 1
done
RANKSCOPE_DATA=$T/data timeout 60 "$BIN" decompose "$MODEL" --layer fc1 --method svd --rank 8 \
  -o "$T/data/./test_batch.bin" >/dev/null 2>"$T/err.txt"
rc=$?
check "decompose -o over \$RANKSCOPE_DATA's test_batch.bin is refused (exit $rc: $(head -c 120 "$T/err.txt"))" \
  test $rc -ne 0 -a "$(cksum <"$T/data/test_batch.bin")" = "$DSUM"
if "$BIN" compress --help >/dev/null 2>&1; then
  timeout 60 "$BIN" compress "$MODEL" --tolerance 1 -o "$T/both.out" --plan-out "$T/sub/../both.out" \
    >/dev/null 2>"$T/err.txt"
  rc=$?
  check "compress -o X --plan-out X (another spelling) is refused (exit $rc: $(head -c 120 "$T/err.txt"))" \
    test $rc -ne 0 -a ! -e "$T/both.out"
fi
mkdir -p "$T/cdir"
printf 'fc1 svd 8\n' >"$T/cdir/model.h"
"$BIN" export "$MODEL" --plan "$T/cdir/model.h" --format c -o "$T/cdir" --force >/dev/null 2>"$T/err.txt"
rc=$?
check "export --format c -o DIR with --plan DIR/model.h is refused (exit $rc: $(head -c 120 "$T/err.txt"))" \
  test $rc -ne 0 -a "$(cat "$T/cdir/model.h")" = "fc1 svd 8" -a ! -e "$T/cdir/model.c"
rm -rf "$T/cdir" "$T/data" "$T/datalink" "$T/sub" "$T/p.plan" "$T/plink.plan" "$T/phard.plan" "$T/err.txt"

# 9. C export: model.c + model.h are one pair. Existing files need --force; a full disk while
#    writing model.c must not leave a new model.h beside the old model.c.
C=$T/c
mkdir -p "$C"
"$BIN" export "$MODEL" --format c -o "$C" >/dev/null 2>"$T/err.txt"
check "export --format c into an empty directory (exit $?)" test -s "$C/model.c" -a -s "$C/model.h"
printf 'OLD C\n' >"$C/model.c"
printf 'OLD H\n' >"$C/model.h"
"$BIN" export "$MODEL" --format c -o "$C" >/dev/null 2>"$T/err.txt"
rc=$?
check "export --format c over existing model.c/model.h without --force is refused (exit $rc: $(head -c 140 "$T/err.txt"))" \
  test $rc -ne 0 -a "$(cat "$C/model.c")" = "OLD C" -a "$(cat "$C/model.h")" = "OLD H"
(trap '' XFSZ; ulimit -f 64; exec "$BIN" export "$MODEL" --format c -o "$C" --force) >/dev/null 2>"$T/err.txt"
rc=$?
check "a full disk during C export (model.h fits, model.c does not) fails (exit $rc: $(head -c 140 "$T/err.txt"))" \
  test $rc -ne 0
check "... and leaves BOTH old files: model.h is not new beside an old model.c" \
  test "$(cat "$C/model.c")" = "OLD C" -a "$(cat "$C/model.h")" = "OLD H"
check "... and no temporary file" bash -c "! ls -A '$C' | grep -q tmp"
"$BIN" export "$MODEL" --format c -o "$C" --force >/dev/null 2>"$T/err.txt"
rc=$?
check "with --force both are replaced (exit $rc)" \
  bash -c "grep -q model_forward '$C/model.c' && grep -q model_forward '$C/model.h'"

# 9b. two exports into one directory: the pair's renames run under a lock on the directory, so a
#     writer waits for another one's renames (here a held lock) instead of interleaving with them
if command -v flock >/dev/null 2>&1; then
  flock "$C" sleep 2 &
  holder=$!
  sleep 0.3
  t0=$(date +%s.%N)
  "$BIN" export "$MODEL" --format c -o "$C" --force >/dev/null 2>"$T/err.txt"
  rc=$?
  t1=$(date +%s.%N)
  wait $holder
  waited=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  check "export --format c waits for the directory's lock before renaming the pair (exit $rc, waited $waited s of the 1.7 s left)" \
    bash -c "[ $rc -eq 0 ] && awk -v w='$waited' 'BEGIN { exit !(w > 1.2) }' && grep -q model_forward '$C/model.c'"
fi

# 10. kill -9 during exports: temporaries either never get a name (O_TMPFILE) or are swept by the
#     next write; nothing of rankscope's naming survives a following run.
seen=0
for i in $(seq 1 20); do
  "$BIN" export "$MODEL" --format c -o "$C" --force >/dev/null 2>&1 &
  pid=$!
  sleep "0.0$(( (i * 7) % 10 ))$(( i % 10 ))"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  seen=$((seen + $(ls -A "$C" | grep -c '\.tmp\.')))
done
"$BIN" export "$MODEL" --format c -o "$C" --force >/dev/null 2>&1
left=$(ls -A "$C" | grep -c '\.tmp\.')
check "20 exports killed with SIGKILL at staggered times: $seen temporaries seen after the kills, $left after the next run" \
  test "$left" -eq 0
rm -rf "$C"

echo "1..$n"
exit $((failed > 0))
