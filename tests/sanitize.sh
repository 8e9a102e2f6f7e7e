#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer, in a second
# meson build dir. Any sanitizer report fails the run: UBSan halts on the first error, ASan's leak
# checker is on. Prints meson's summary and the tests/run-style "N passed, N failed" line.
# Usage: bash tests/sanitize.sh [BUILD_DIR (default build-asan)] [meson test args...]
# The 'sanitize' suite name is excluded inside (it is this script), as are the fuzz smoke run and
# valgrind (separate scripts; valgrind cannot run ASan binaries).
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build-asan}
shift || true
case "$BUILD" in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" "$SRC" -Db_sanitize=address,undefined -Dbuildtype=debugoptimized \
    -Db_lundef=false ${RS_SETUP_ARGS:-} >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
if ! ninja -C "$BUILD" >/dev/null; then
  ninja -C "$BUILD" 2>&1 | tail -30
  echo "0 passed, 1 failed"
  exit 1
fi
# halt_on_error + -fno-sanitize-recover is not needed: halt_on_error=1 makes every UBSan report
# fatal. detect_leaks=1 is ASan's default on Linux but stated so it is not lost. The suppression
# file lists only leaks in third-party libraries that are not ours to free (see its comments).
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
export LSAN_OPTIONS=suppressions=$SRC/tests/lsan.supp:print_suppressions=0
if [ -z "${RANKSCOPE_DATA:-}" ] && [ -f "$SRC/../shared/data/cifar-10-batches-bin/test_batch.bin" ]; then
  RANKSCOPE_DATA=$(cd "$SRC/../shared/data/cifar-10-batches-bin" && pwd)
fi
export RS_TEST_CIFAR=${RANKSCOPE_DATA:-}
unset RANKSCOPE_DATA
# Tests that only re-measure shipped figures on the 10,000 test images skip that part here: the
# main stage checks the numbers, this stage looks for memory errors.
export RS_SANITIZED=1
# ASan slows everything ~2-3x: the suite's timeouts are multiplied accordingly.
meson test -C "$BUILD" --print-errorlogs --num-processes "${RS_TEST_JOBS:-2}" --timeout-multiplier 3 \
  --no-suite fuzz-smoke --no-suite sanitize --no-suite valgrind "$@"
rc=$?
log="$BUILD/meson-logs/testlog.json"
if [ -f "$log" ]; then
  python3 "$SRC/tests/summarize.py" "$log" "ASan + UBSan"
else
  echo "0 passed, 1 failed"
  rc=1
fi
exit $rc
