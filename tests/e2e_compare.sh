#!/bin/bash
# e2e_compare.sh — the comparison screen (`rankscope A.onnx --compare B.onnx`) end to end: the zoo
# ResNet-20 against its low-rank twin at 80x24, 100x30 and 160x50, with and without colour, under
# tmux, asserted on `tmux capture-pane` text (and its escapes for the colour). Prints TAP. Needs
# RANKSCOPE_BIN (tests/meson.build) and tmux (skips without it). Data: the shipped test sample
# (RANKSCOPE_DATA unset), so the run does not depend on the machine.
set -u
export LC_ALL=C.UTF-8
BIN=${RANKSCOPE_BIN:?RANKSCOPE_BIN not set}
ROOT=${RS_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
source "$(dirname "$0")/lib.sh"
need_tmux
if [ ! -f "$ROOT/assets/zoo/resnet20-lowrank.onnx" ]; then
    echo "1..0 # SKIP assets/zoo/resnet20-lowrank.onnx is missing"
    exit 0
fi
tmux_server rs-compare state
open() { tui_open "$@"; } # open SESSION COLS ROWS ENV ARGS...

# ---- the zoo ResNet-20 against its low-rank twin at 80x24, 100x30 and 160x50, colour and mono ---
# At each size: both model lines whole and in one form (long, short or stem: never one of each),
# every column title, every figure right-aligned under its title and every `in B` under its own,
# the names whole (layer2.0.shortcut.0 too: the figure columns narrow at 80), the row position
# when the rows do not all fit, the last row reachable; colour only where colour is asked for.
cmp_aligned() { # cmp_aligned SESSION COLS: each table row's figures end where their titles end, `in B`
    # starts under its title, no row is cut (…) or wider than COLS
    cap "$1" | grep -q "^ [ >] .*…" && { echo "#   a cut row"; return 1; }
    cap "$1" | awk -v cols="$2" '
        /^   layer \(A\) / {
            split("A params|A MACs|B params|B MACs|A/B", t, "|")
            for (i = 1; i <= 5; ++i) {
                p = index($0, t[i])
                if (!p) { print "#   no title " t[i]; bad = 1 }
                end[i] = p + length(t[i]) - 1
            }
            inb = index($0, "in B"); head = 1; next
        }
        head && / (same shape|other shape|[0-9]+ factors|not in B|only in B)$/ {
            rows++
            if (length($0) > cols) { print "#   wider than " cols ": " $0; bad = 1 }
            for (i = 1; i <= 5; ++i)
                if (substr($0, end[i], 1) == " " || substr($0, end[i] + 1, 1) != " ") {
                    print "#   column " t[i] " misaligned: " $0; bad = 1
                }
            if (substr($0, inb - 1, 1) != " " || substr($0, inb, 1) == " ") { print "#   in B misaligned: " $0; bad = 1 }
        }
        END { if (!head || rows < 1) { print "#   no column titles or rows"; bad = 1 } exit bad }'
}
form() { case "$1" in *" params, "*|*" params ("*) echo long ;; *".onnx: "*) echo short ;; *) echo stem ;; esac; }
for size in 80x24 100x30 160x50; do
    for colour in colour mono; do
        cols=${size%x*} lines=${size#*x}
        s=c$cols$colour
        CUR=$s
        envs="LANG=C.UTF-8 TERM=xterm-256color"
        [ $colour = mono ] && envs="LANG=C.UTF-8 TERM=xterm-mono NO_COLOR=1"
        open $s "$cols" "$lines" "$envs" "'$ROOT/assets/zoo/resnet20.onnx'" --compare "'$ROOT/assets/zoo/resnet20-lowrank.onnx'"
        check "$size $colour compare: both accuracies, B's with its difference to A" \
            'wait_for $s "^ A  .*acc(uracy)? [0-9.]+%" 90 && wait_for $s "^ B  .*acc(uracy)? [0-9.]+% \([-+]?[0-9.]+( pt)?\)" 90'
        a=$(cap $s | sed -n 3p) b=$(cap $s | sed -n 4p)
        check "$size $colour: both model lines whole, in one form ($(form "$a")/$(form "$b"))" \
            '[ "$(form "$a")" = "$(form "$b")" ] && ! grep -q "…" <<<"$a$b" && grep -qE "(zoo [0-9.]+%|\(zoo\))$" <<<"$b"'
        check "$size $colour: every figure under its title, names whole, nothing past column $cols" "cmp_aligned $s $cols"
        check "$size $colour: layer2.0.shortcut.0 whole" 'wait_for $s "^   layer2\.0\.shortcut\.0 +544 +131\.1K +544 +131\.1K +1\.0x +same shape" 5'
        if [ "$lines" -lt 30 ]; then
            check "$size $colour: the rows shown and how many" 'wait_for $s "^ rows 1-[0-9]+ of 22 \(up/down, PgUp/PgDn\)" 5'
        else
            check "$size $colour: all 22 rows, no position line" '[ "$(cap $s | grep -cE " (same shape|[0-9]+ factors)$")" -eq 22 ] && ! cap $s | grep -q "^ rows "'
        fi
        $T send-keys -t $s End
        check "$size $colour: End selects the last row, linear" 'wait_for $s "^ > linear +650 +640 +650 +640 +1\.0x +same shape" 5'
        $T send-keys -t $s '?'
        check "$size $colour: ? lists the comparison's keys and columns, not the screen's below" \
            'wait_for $s "Comparison \(A: the open model" 5 && wait_for $s "the params ratio" 2 && ! cap $s | grep -q "filter the table"'
        $T send-keys -t $s z
        wait_for $s "^ > linear " 5
        esc=$($T capture-pane -e -p -t $s | grep -cE $'\e\\[([0-9;]*;)?(3[0-7]|38;5;[0-9]+)m')
        if [ $colour = colour ]; then
            check "$size colour: coloured text ($esc lines)" '[ "$esc" -gt 0 ]'
        else
            check "$size mono: no colour at all, attributes only ($esc lines)" '[ "$esc" -eq 0 ]'
        fi
        $T send-keys -t $s q
        check "$size $colour: quits" 'wait_for $s "^EXIT=0" 10'
        $T kill-session -t $s
    done
done
tap_done
