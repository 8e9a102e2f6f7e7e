#!/usr/bin/env bash
# Installs what rankscope needs on Debian 12 (as root), then configures and builds it into build/.
# Also installs what the test suite needs (tmux, python3-onnx, onnxruntime-node).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential meson ninja-build pkg-config protobuf-c-compiler libprotobuf-c-dev libonnx-dev
      libgsl-dev libopenblas-dev libncurses-dev zlib1g-dev libcurl4-openssl-dev libarchive-dev nettle-dev
      tmux python3 python3-onnx python3-numpy valgrind clang libclang-rt-14-dev strace)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ONNX Runtime for the interop tests (a reference implementation; never linked into rankscope).
if [ ! -d tests/node_modules/onnxruntime-node ]; then
  (cd tests && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
fi

# RS_SETUP_ARGS: extra meson options (CI passes -Dwerror=true).
[ -f build/build.ninja ] || meson setup build ${RS_SETUP_ARGS:-} >/dev/null
ninja -C build >&2
