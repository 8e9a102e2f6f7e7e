#!/usr/bin/env bash
# Short fuzz smoke run for CI (TAP): each libFuzzer target runs for RS_FUZZ_SECONDS (default 60 s,
# 7 targets = 7 minutes of fuzzing) over its committed seed corpus under ASan + UBSan + leak checks.
# New inputs go to a scratch directory, never into the committed corpus. Builds the fuzz build
# dir first (tests/fuzz/build.sh) when needed; skips when clang/libFuzzer is unavailable.
set -u -o pipefail
SRC=${RS_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SECS=${RS_FUZZ_SECONDS:-60}
TARGETS="onnx cifar10 plan checkpoint archive recipe compress_ckpt"

if ! command -v clang >/dev/null 2>&1; then
  echo "1..0 # SKIP clang not installed"
  exit 0
fi
if ! BUILD=$(bash "$SRC/tests/fuzz/build.sh" 2>"${TMPDIR:-/tmp}/rs-fuzz-build.$$.log" | tail -1); then
  echo "1..1"
  echo "not ok 1 - build the fuzz targets (tests/fuzz/build.sh)"
  sed 's/^/# /' "${TMPDIR:-/tmp}/rs-fuzz-build.$$.log" | tail -30
  rm -f "${TMPDIR:-/tmp}/rs-fuzz-build.$$.log"
  exit 1
fi
rm -f "${TMPDIR:-/tmp}/rs-fuzz-build.$$.log"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/rs-fuzz-smoke.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

n=0 failed=0
echo "1..$(( $(echo $TARGETS | wc -w) * 2 ))"
for t in $TARGETS; do
  bin="$BUILD/tests/fuzz/fuzz_$t"
  corpus="$SRC/tests/fuzz/corpus/$t"
  mkdir -p "$scratch/$t" "$scratch/$t-art"
  # 1. every committed seed (the regression inputs among them) runs clean
  n=$((n + 1))
  if "$bin" -runs=0 "$corpus" >"$scratch/$t.seeds.log" 2>&1; then
    echo "ok $n - fuzz_$t: all $(ls "$corpus" | wc -l) committed seeds run clean"
  else
    failed=$((failed + 1))
    echo "not ok $n - fuzz_$t: a committed seed fails"
    tail -40 "$scratch/$t.seeds.log" | sed 's/^/# /'
  fi
  # 2. a short fuzz run from the corpus: no crash, leak, timeout or oversized allocation
  n=$((n + 1))
  "$bin" -max_total_time="$SECS" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$scratch/$t-art/" \
    "$scratch/$t" "$corpus" >"$scratch/$t.log" 2>&1
  rc=$?
  stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$scratch/$t.log" | tail -1)
  if [ $rc -eq 0 ] && [ -n "$stats" ]; then
    echo "ok $n - fuzz_$t: ${SECS} s without a finding ($stats)"
  else
    failed=$((failed + 1))
    echo "not ok $n - fuzz_$t: libFuzzer exited $rc"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written|==[0-9]+==' "$scratch/$t.log" | head -20 | sed 's/^/# /'
    for a in "$scratch/$t-art"/*; do
      [ -f "$a" ] && echo "# reproducer (base64): $(head -c 3000 "$a" | base64 -w0)"
    done
  fi
done
exit $((failed > 0))
