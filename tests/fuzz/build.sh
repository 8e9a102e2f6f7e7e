#!/usr/bin/env bash
# Builds the libFuzzer targets in a separate meson build dir (default: build-fuzz at the top of
# the source tree, or $RS_FUZZ_BUILD) with clang, ASan + UBSan and libFuzzer instrumentation.
# Usage: bash tests/fuzz/build.sh   -> prints the build dir on its last line
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${RS_FUZZ_BUILD:-$SRC/build-fuzz}
CC_FUZZ=${CC_FUZZ:-clang}
if [ ! -f "$BUILD/build.ninja" ]; then
  # b_lundef=false: clang's sanitizer runtimes resolve symbols at link time that -Wl,--no-undefined
  # would reject in shared objects (there are none here, but meson warns otherwise).
  CC=$CC_FUZZ meson setup "$BUILD" "$SRC" -Dfuzz=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false >"$BUILD.setup.log" 2>&1 || {
    cat "$BUILD.setup.log" >&2
    exit 1
  }
  rm -f "$BUILD.setup.log"
fi
ninja -C "$BUILD" tests/fuzz/fuzz_onnx tests/fuzz/fuzz_cifar10 tests/fuzz/fuzz_plan \
  tests/fuzz/fuzz_checkpoint tests/fuzz/fuzz_archive tests/fuzz/fuzz_recipe tests/fuzz/fuzz_compress_ckpt >&2
echo "$BUILD"
