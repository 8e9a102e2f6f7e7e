#!/bin/bash
# install.sh — `meson install --destdir` and the installed program on its own: run from another
# directory with no RANKSCOPE_ASSETS, the installed binary must open the shipped model and sample
# from the installed datadir (strace shows which file it opened: the source tree's assets/ stays
# compiled in as a development fallback, so "it worked" alone would not prove it). Also: the man
# page lists every command, the version is meson's, LICENSE matches meson's license. TAP.
set -u
BUILD=${RS_BUILD_ROOT:?RS_BUILD_ROOT not set}
ROOT=${RS_SOURCE_ROOT:?RS_SOURCE_ROOT not set}
source "$(dirname "$0")/lib.sh"
WORK=$(mktemp -d)
SOCK=rs-install-$$
T="tmux -L $SOCK"
cleanup() { command -v tmux >/dev/null && $T kill-server 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
unset RANKSCOPE_ASSETS RANKSCOPE_DATA

point "meson install --destdir" meson install -C "$BUILD" --destdir "$WORK/dest" --no-rebuild --quiet
BIN=$(find "$WORK/dest" -path '*/bin/rankscope' -type f | head -1)
check "the binary is installed (${BIN#$WORK/dest})" '[ -x "$BIN" ]'
[ -x "$BIN" ] || { tap_done; exit 1; }
PREFIX=$(dirname "$(dirname "$BIN")")
DATA=$PREFIX/share/rankscope
for f in lenet-cifar10.onnx cifar10-test-sample.bin zoo/zoo.tsv; do
  check "asset installed: share/rankscope/$f" 'cmp -s "$ROOT/assets/$f" "$DATA/$f"'
done
# Everything below runs from a directory that is neither the source nor the build tree.
mkdir -p "$WORK/elsewhere"
cd "$WORK/elsewhere" || exit 1

meson_version=$(meson introspect --projectinfo "$BUILD" | $RS_PY -c 'import json,sys; print(json.load(sys.stdin)["version"])')
got=$("$BIN" --version)
check "--version is meson's project version ($got)" '[ "$got" = "rankscope $meson_version" ]'

out=$("$BIN" info 2>&1)
check "installed binary opens the shipped model from another directory" \
  'grep -qE "^conv1 +Conv" <<<"$out"'
if command -v strace >/dev/null 2>&1; then
  # LeakSanitizer cannot run under ptrace: off for this one run of a sanitizer build
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    strace -f -qq -e trace=openat -o "$WORK/trace" "$BIN" eval --split sample --json >"$WORK/eval.json" 2>&1
  rc=$?
  check "eval --split sample from the install: exit 0" '[ $rc -eq 0 ]' || sed 's/^/#   /' "$WORK/eval.json"
  check "the model was opened from the installed datadir" \
    'grep -q "openat(.*\"$DATA/lenet-cifar10.onnx\"" "$WORK/trace"'
  check "the sample was opened from the installed datadir" \
    'grep -q "openat(.*\"$DATA/cifar10-test-sample.bin\"" "$WORK/trace"'
  check "nothing was opened from the source tree's assets/" \
    '! grep -q "\"$ROOT/assets/" "$WORK/trace"'
else
  ok "# SKIP strace not installed (which file was opened is not checked)"
fi

# The explorer (the program's default mode) from the install, under tmux.
if command -v tmux >/dev/null 2>&1; then
  $T new-session -d -s inst -x 100 -y 30 "cd '$WORK/elsewhere' && '$BIN'; echo EXIT=\$?; sleep 30"
  check "installed explorer shows the shipped model's layer table" 'CUR=inst wait_for inst "conv1 +Conv" 20'
  $T send-keys -t inst q
  check "installed explorer quits cleanly" 'CUR=inst wait_for inst "EXIT=0" 10'
else
  ok "# SKIP tmux not installed (explorer not opened)"
fi

MAN=$PREFIX/share/man/man1/rankscope.1
check "man page installed" '[ -s "$MAN" ]'
cmds=$("$BIN" --help | sed -n '/^commands:/,/^$/p' | awk 'NF && $1 != "commands:" {print $1}')
missing=""
for c in $cmds; do grep -q "^\.SS $c\$" "$MAN" || missing="$missing $c"; done
check "man page has a section for every command ($(echo $cmds | wc -w)):${missing:- all present}" \
  '[ -n "$cmds" ] && [ -z "$missing" ]'
opt=$("$BIN" eval --help | grep -oE -- '--[a-z-]+' | head -1)
check "man page carries the commands' --help texts (eval $opt)" 'grep -qF -- "\\${opt//-/\\-}" "$MAN" || grep -qF -- "$opt" "$MAN"'
if command -v man >/dev/null 2>&1; then
  check "man renders the page without warnings" \
    '[ -z "$(MANWIDTH=100 man --warnings -l "$MAN" 2>&1 >/dev/null)" ]'
fi

license=$(sed -n "s/^ *license *: *'\([^']*\)'.*/\1/p" "$ROOT/meson.build" | head -1)
check "LICENSE is the $license licence meson declares" \
  'head -1 "$ROOT/LICENSE" | grep -q "^$license License"'
check "LICENSE installed with the docs" 'cmp -s "$ROOT/LICENSE" "$PREFIX/share/doc/rankscope/LICENSE"'
tap_done
