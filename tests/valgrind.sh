#!/usr/bin/env bash
# valgrind memcheck on end-to-end runs of the real binary: no invalid access, no use of
# uninitialised memory, no definite leak. TAP output; skips when valgrind is not installed.
# Needs RANKSCOPE_BIN (meson sets it) or a build dir as $1.
#
# valgrind 3.19 does not decode AVX-512, so the engine's kernels are capped at AVX2
# (RANKSCOPE_ISA) and OpenBLAS is pinned to its Haswell kernels (OPENBLAS_CORETYPE); the code
# paths checked are otherwise the same.
set -u
SRC=${RS_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${RANKSCOPE_BIN:-${1:-$SRC/build}/rankscope}
if ! command -v valgrind >/dev/null 2>&1; then
  echo "1..0 # SKIP valgrind not installed"
  exit 0
fi
MODEL=$SRC/assets/lenet-cifar10.onnx
[ -f "$MODEL" ] || MODEL=$SRC/tests/data/lenet_random.onnx
export RANKSCOPE_ASSETS=${RANKSCOPE_ASSETS:-$SRC/assets}
export RANKSCOPE_ISA=avx2 OPENBLAS_CORETYPE=Haswell RANKSCOPE_THREADS=2 OPENBLAS_NUM_THREADS=1
unset RANKSCOPE_DATA
scratch=$(mktemp -d "${TMPDIR:-/tmp}/rs-valgrind.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

VG=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --track-fds=no --num-callers=30)

# 200 images of the shipped sample as a tiny "test set": valgrind runs ~50x slower than native
DATA=$scratch/data
mkdir -p "$DATA"
head -c $((200 * 3073)) "$SRC/assets/cifar10-test-sample.bin" >"$DATA/test_batch.bin"

n=0 failed=0
run() { # run WANT_EXIT DESCRIPTION ARGS... : the command exits WANT_EXIT, valgrind reports nothing
  local want=$1 what=$2; shift 2
  n=$((n + 1))
  local t0=$SECONDS
  "${VG[@]}" --log-file="$scratch/vg.$n.log" "$BIN" "$@" >"$scratch/out.$n" 2>"$scratch/err.$n"
  local rc=$?
  local errs
  errs=$(grep -Eo 'ERROR SUMMARY: [0-9]+ errors' "$scratch/vg.$n.log" | tail -1)
  local lost
  lost=$(grep -Eo 'definitely lost: [0-9,]+ bytes' "$scratch/vg.$n.log" | tail -1)
  if [ $rc -eq "$want" ] && [ "$errs" = "ERROR SUMMARY: 0 errors" ]; then
    echo "ok $n - valgrind: $what (${errs#ERROR SUMMARY: }, ${lost:-definitely lost: 0 bytes}, $((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    echo "not ok $n - valgrind: $what (exit $rc; ${errs:-no summary})"
    sed 's/^/#   /' "$scratch/err.$n" | tail -5
    grep -E '^==[0-9]+== ' "$scratch/vg.$n.log" | grep -vE 'Memcheck|Copyright|Using Valgrind|Command:|^==[0-9]+== $' |
      head -60 | sed 's/^/# /'
  fi
}

echo "1..4"
run 0 "rankscope info" info "$MODEL"
run 0 "rankscope eval (200 images, 2 worker threads)" eval "$MODEL" --data "$DATA" --split test --threads 2
run 0 "rankscope eval --ranks (tucker2 + cp + svd factorization, then eval)" \
  eval "$MODEL" --data "$DATA" --split test --threads 2 --ranks conv1=cp:4,conv2=tucker2:8:4,fc1=svd:32
run 1 "rankscope info on a truncated model (the error path frees everything)" \
  info "$SRC/tests/fuzz/corpus/onnx/cnn-truncated.onnx"
exit $((failed > 0))
