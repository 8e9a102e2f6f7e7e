#!/bin/bash
# e2e_explorer.sh — the explorer's table view, frame clicks and save-as end to end: the real binary
# under tmux, driven with keys and SGR mouse reports, asserted on `tmux capture-pane` text. Prints
# TAP. Needs RANKSCOPE_BIN (tests/meson.build) and tmux (skips without it). Data: the shipped test
# sample (RANKSCOPE_DATA unset), so the run does not depend on the machine.
set -u
export LC_ALL=C.UTF-8
BIN=${RANKSCOPE_BIN:?RANKSCOPE_BIN not set}
ROOT=${RS_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
source "$(dirname "$0")/lib.sh"
need_tmux
MODEL=$(shipped_model "$ROOT")
RN="$ROOT/tests/data/zoo/resnet20.onnx"
tmux_server rs-explorer state
open() { tui_open "$@"; } # open SESSION COLS ROWS ENV ARGS...
click() { $T send-keys -t "$1" -l $'\e'"[<0;$(($2 + 1));$(($3 + 1))M"$'\e'"[<0;$(($2 + 1));$(($3 + 1))m"; } # 0-based x y
col_of() { # col_of SESSION ROW TEXT: 0-based column of TEXT in screen row ROW (0-based), -1 if absent
    local line pre
    line=$(cap "$1" | sed -n "$(($2 + 1))p")
    case "$line" in *"$3"*) pre=${line%%"$3"*}; echo ${#pre} ;; *) echo -1 ;; esac
}
# browse_in SESSION COLS ROWS DIR "PREFIX" "ENV": the explorer on $MODEL started in DIR (PREFIX runs it,
# e.g. as another user; its state kept in DIR/.state), up to its browser (three points)
browse_in() {
    $T new-session -d -s "$1" -x "$2" -y "$3" \
        "cd '$4' && $5 env -u RANKSCOPE_DATA HOME='$4/.state' RANKSCOPE_ASSETS='$ROOT/assets' XDG_STATE_HOME='$4/.state' LANG=C.UTF-8 $6 '$BIN' '$MODEL'; echo EXIT=\$?; sleep 60"
    check "$1: table drawn" "wait_for $1 'conv2 +Conv' 30"
    $T send-keys -t "$1" o
    check "$1: the browser" "wait_for $1 'Open a model' 10"
}
# close_quit SESSION: Esc closes the browser, q quits (one point)
close_quit() {
    $T send-keys -t "$1" Escape
    sleep 0.3 # Esc and q read together would be Alt-q
    $T send-keys -t "$1" q
    check "$1: q exits" "wait_for $1 '^EXIT=0' 10"
}
table_names() { cap "$1" | sed -n "4,$2p" | awk '{print $1 == "▶" ? $2 : $1}'; }

# ---- ResNet-20 at 80x24: filter, sort, the scroll bar, full names that never read the same ------
CUR=rn
open rn 80 24 "LANG=C.UTF-8 TERM=xterm-256color" "'$RN'"
check "resnet20: table drawn" 'wait_for rn "stages\.0/conv1 +584" 30'
check "a scroll bar in the last column" 'cap rn | sed -n 4p | grep -q "█$"'
$T send-keys -t rn /
check "/ opens the filter on the status line" 'wait_for rn "filter: _ +22 of 22 layers" 5'
$T send-keys -t rn -l shortcut
check "typing filters at once: the two shortcut convs" 'wait_for rn "filter: shortcut_ +2 of 22" 5 && [ "$(cap rn | grep -cE "^. +s\.[36]/shortcut\.0 ")" -eq 2 ]'
$T send-keys -t rn Enter
check "Enter keeps the filter, named on the separator" 'wait_for rn "filter \"shortcut\": 2 of 22" 5'
check "the rows below the two are gone" '! cap rn | grep -qE "^. +stages\.0/conv1 "'
$T send-keys -t rn n
check "full names: the two shortcut rows read differently" 'wait_for rn "tages\.3/shortcut" 5 && wait_for rn "tages\.6/shortcut" 5'
names=$(table_names rn 5)
check "... and no two rows read the same" '[ "$(sort <<<"$names" | uniq -d | wc -l)" -eq 0 ] && [ "$(wc -l <<<"$names")" -eq 2 ]'
$T send-keys -t rn n / Escape
check "/ then Esc clears the filter" 'wait_for rn "rows 1-[0-9]+ of 22" 5 && wait_for rn "stages\.0/conv1 +584" 5'
$T send-keys -t rn s
# the params column of the visible rows, as numbers (the selection stays on its layer: 13 of 22 rows)
params_col() { cap rn | sed -n 4,16p | sed -E 's/^. +[^ ]+ +([0-9.]+)(K?) .*/\1 \2/' | awk '{print $2 == "K" ? $1 * 1000 : $1}'; }
check "s sorts by params: the visible rows never grow" 'wait_for rn "by params" 5 && [ "$(params_col | sort -g -r | tr "\n" " ")" = "$(params_col | tr "\n" " ")" ]'
for i in $(seq 1 21); do $T send-keys -t rn Up; done
check "the top of the sorted table: a 9.2K layer" 'wait_for rn "rows 1-13 of 22, by params" 5 && cap rn | sed -n 4p | grep -qE " 9\.2K "'
$T send-keys -t rn s s s s
check "s cycles back to graph order" 'wait_for rn "sorted by graph order" 5 && cap rn | grep -A1 "stages\.4/conv2 " | grep -q "stages\.5/conv1 "'
names=$(table_names rn 16)
check "short names: 13 distinct rows" '[ "$(sort <<<"$names" | uniq -d | wc -l)" -eq 0 ]'
for i in $(seq 1 21); do $T send-keys -t rn Down; done
check "at the end: rows 10-22 and the bar's thumb at the bottom" 'wait_for rn "rows 10-22 of 22" 5 && cap rn | sed -n 16p | grep -q "█$" && cap rn | sed -n 4p | grep -q "│$"'

# ---- clicks on the frame: tab labels and footer keys (SGR mouse, xterm) ---------------------------
x=$(col_of rn 1 "4 Trade-offs")
click rn $((x + 3)) 1
check "a click on the '4 Trade-offs' tab opens it" 'wait_for rn "configurations so far" 10'
x=$(col_of rn 1 "1 Layers")
click rn $((x + 1)) 1
check "a click on '1 Layers' comes back" 'wait_for rn "layer +params" 5'
x=$(col_of rn 23 "? help")
click rn $x 23
check "a click on '? help' in the footer opens the help" 'wait_for rn "any key closes this help" 5'
$T send-keys -t rn Escape
x=$(col_of rn 23 "m method")
click rn $((x + 3)) 23
check "a click on 'm method' presses m (the selected layer factorized)" 'wait_for rn "^▶ .* (svd|spatial-svd|slice-svd|cp|tucker2) " 5'

# ---- save-as: refuses the input, asks before replacing a file, writes both atomically ------------
cp "$RN" "$WORK/in.onnx"
touch "$WORK/taken.plan"
$T send-keys -t rn W
check "W opens the path prompt with the current prefix" 'wait_for rn "save as: resnet20-lowrank_" 5'
$T send-keys -t rn C-u
$T send-keys -t rn -l "$RN"
$T send-keys -t rn Enter
check "the input model's own name is refused" 'wait_for rn "refusing to overwrite the input" 5 && cmp -s "$RN" "$WORK/in.onnx"'
$T send-keys -t rn C-u
$T send-keys -t rn -l taken
$T send-keys -t rn Enter
check "an existing file: asked first" 'wait_for rn "taken.plan exists: overwrite it\?" 5'
$T send-keys -t rn n
check "n keeps it (still empty), back to the path" 'wait_for rn "kept, edit the path" 5 && [ ! -s "$WORK/taken.plan" ] && [ ! -e "$WORK/taken.onnx" ]'
$T send-keys -t rn Enter
wait_for rn "overwrite it\?" 5
$T send-keys -t rn y
check "y replaces: both files written" 'wait_for rn "saved taken.plan and taken.onnx" 10 && [ -s "$WORK/taken.plan" ] && [ -s "$WORK/taken.onnx" ]'
check "the saved pair loads and matches (rankscope info)" '"$BIN" info "$WORK/taken.onnx" >/dev/null 2>&1 && grep -qE "(svd|cp|tucker2) [0-9]+" "$WORK/taken.plan"'
check "no temporaries left" '! ls "$WORK" | grep -q "\.tmp\."'
$T send-keys -t rn Right
$T send-keys -t rn w
check "w saves to the chosen prefix from then on" 'wait_for rn "saved taken.plan and taken.onnx" 10'
$T send-keys -t rn q
check "q quits at once (saved)" 'wait_for rn "^EXIT=0" 10'

# ---- too small: clicks and keys change nothing unseen -------------------------------------------
CUR=small
open small 100 30 "LANG=C.UTF-8 TERM=xterm-256color" "'$MODEL'"
check "lenet: table drawn" 'wait_for small "conv2 +Conv" 20'
$T resize-window -t small -x 60 -y 15
wait_for small "terminal too small" 5
click small 30 1
click small 5 14
$T send-keys -t small / s
$T resize-window -t small -x 100 -y 30
check "after the notice: still Layers, no filter, no sort" 'wait_for small "conv2 +Conv" 5 && ! cap small | grep -qE "filter: |filter \"|by params|sorted by"'
$T send-keys -t small q
check "lenet: q exits" 'wait_for small "^EXIT=0" 10'

# ---- two models side by side: --compare, and from the browser; recent files; a typed directory -----
"$BIN" decompose "$MODEL" --ranks "conv2=spatial-svd:12,fc1=svd:24" -o "$WORK/small.onnx" >/dev/null 2>&1
check "a compressed lenet to compare with" '[ -s "$WORK/small.onnx" ]'
CUR=cmp
open cmp 100 30 "LANG=C.UTF-8" "'$MODEL'" --compare small.onnx
check "--compare: both models, per layer" 'wait_for cmp "^ B  small\.onnx: 25\.4K params \(2\.4x fewer\)" 20 && wait_for cmp "conv2 +2\.4K +240\.0K +1\.3K +146\.4K +1\.8x +2 factors" 5'
check "untouched layers read the same in both" 'wait_for cmp "conv1 +456 +352\.8K +456 +352\.8K +1\.0x +same shape" 5'
check "both accuracies, B's with its drop" 'wait_for cmp "^ A  .*accuracy [0-9.]+%" 60 && wait_for cmp "^ B  .*accuracy [0-9.]+% \(-[0-9.]+ pt\)" 60'
$T send-keys -t cmp Escape
check "Esc: back to the Layers screen" 'wait_for cmp "layer op +shape" 5'
$T send-keys -t cmp q
check "cmp: q exits" 'wait_for cmp "^EXIT=0" 10'
check "the recent list was written under XDG_STATE_HOME" 'grep -q "lenet-cifar10.onnx" "$XDG_STATE_HOME/rankscope/recent"'
mkdir -p "$WORK/other"
cp "$WORK/small.onnx" "$WORK/other/gone.onnx"
CUR=gone
open gone 100 30 "LANG=C.UTF-8" "other/gone.onnx"
check "gone.onnx opened" 'wait_for gone "gone\.onnx" 20'
$T send-keys -t gone q
wait_for gone "^EXIT=" 10
rm "$WORK/other/gone.onnx"
CUR=br
open br 100 30 "LANG=C.UTF-8 TERM=xterm-256color" "'$MODEL'"
check "browser session: table drawn" 'wait_for br "conv2 +Conv" 20'
$T send-keys -t br o
check "the browser lists the recent files, newest first, the removed one as missing" 'wait_for br "recent: other/gone\.onnx +missing" 10 && [ "$(cap br | grep -n "recent: other/gone" | cut -d: -f1)" -lt "$(cap br | grep -n "recent: .*zoo/resnet20" | cut -d: -f1)" ]'
check "the browser covers the screen below it (nothing at its edges)" '! cap br | sed -n 3,26p | grep -qE "^▶|conv2 +Conv"'
$T send-keys -t br d C-u
$T send-keys -t br -l "$WORK/other"
check "d: the directory typed on the status line" 'wait_for br "directory: .*/other_" 5'
cp "$WORK/small.onnx" "$WORK/other/mine.onnx"
printf 'not a model at all' >"$WORK/other/broken.onnx"
$T send-keys -t br Enter
check "Enter lists its models" 'wait_for br "onnx files of .*/other" 5 && wait_for br "other/mine\.onnx +25\.4K +522\.6K" 10'
check "a malformed .onnx is listed as unreadable" 'wait_for br "other/broken\.onnx +unreadable" 5'
for i in $(seq 1 20); do cap br | grep -q "> .*other/broken\.onnx" && break; $T send-keys -t br Down; sleep 0.2; done
check "selected, a line says why it does not load (the row names the file)" 'wait_for br "^ cannot read it: not a valid ONNX model" 5'
$T send-keys -t br Enter
check "Enter on it: an error on the status line, the browser still open" 'wait_for br "cannot open .*broken\.onnx: " 5 && cap br | grep -q "> .*other/broken\.onnx"'
rm "$WORK/other/broken.onnx"
for i in $(seq 1 20); do cap br | grep -q "> .*other/mine\.onnx" && break; $T send-keys -t br Down; sleep 0.2; done
$T send-keys -t br c
check "c compares the open model with it" 'wait_for br "^ B  mine\.onnx: 25\.4K params" 10 && wait_for br "fc1 +48\.1K +48\.0K +12\.6K" 5'
$T send-keys -t br Escape
sleep 0.3 # Esc and o read together would be Alt-o
$T send-keys -t br o
# the mouse on the browser's rows: a click selects, a click on the selected row opens
check "o again: the browser" 'wait_for br "other/mine\.onnx +25\.4K" 10'
row=$(cap br | grep -n "other/mine\.onnx" | head -1 | cut -d: -f1)
click br 10 $((row - 1))
check "a click on a row selects it" 'wait_for br "^ > .*other/mine\.onnx" 5 && wait_for br "Open a model" 2'
click br 10 $((row - 1))
check "a click on the selected row opens it" 'wait_for br "^ mine\.onnx .*acc" 20 && ! cap br | grep -q "Open a model"'
$T send-keys -t br q
check "br: q exits" 'wait_for br "^EXIT=0" 10'

# ---- hostile input at 80x24: a truncated zoo model, a terminal shrunk to 40x10 and back ----------
# TERM=xterm-256color inside tmux: tmux sends End as ESC [4~, which that terminfo entry does not
# describe (End used to read as Esc, then 4: the browser closed and Trade-offs showed).
CUR=tr
mkdir -p "$WORK/tr"
head -c 30000 "$ROOT/assets/zoo/resnet20.onnx" >"$WORK/tr/truncated.onnx"
browse_in tr 80 24 "$WORK/tr" "" TERM=xterm-256color
$T send-keys -t tr End
check "End (ESC [4~ here) selects the last row, the truncated model, listed as unreadable" \
    'wait_for tr "^ > truncated\.onnx +unreadable" 5 && wait_for tr "Open a model" 1'
check "its reason whole over two rows, without the path its row shows" \
    'wait_for tr "^ cannot read it: not a valid ONNX model \(protobuf decoding failed: truncated *$" 5 && wait_for tr "^ or not ONNX\) *$" 2 && ! cap tr | grep -q "…"'
$T send-keys -t tr Enter
check "Enter: the status line names it once and says why" 'wait_for tr "^ cannot open truncated\.onnx: not a valid ONNX model" 5'
$T resize-window -t tr -x 40 -y 10
check "40x10: the notice, nothing else" 'wait_for tr "terminal too small" 5 && ! cap tr | grep -q "Open a model"'
$T resize-window -t tr -x 80 -y 24
check "back to 80x24: the browser as it was, the truncated model selected" \
    'wait_for tr "^ > truncated\.onnx +unreadable" 5 && wait_for tr "Open a model" 1'
close_quit tr

# ---- a directory that cannot be listed: the browser says why and keeps the rest -------------------
CUR=nd
open nd 100 30 "LANG=C.UTF-8" "'$MODEL'"
check "nd: table drawn" 'wait_for nd "conv2 +Conv" 20'
$T send-keys -t nd o
check "nd: the browser" 'wait_for nd "Open a model" 10'
$T send-keys -t nd d
$T send-keys -t nd -l "$WORK/no such dir"
check "d: a path typed over the directory shown replaces it (no ^U needed)" 'wait_for nd "^ directory: /[^ ]*/no such dir_ " 5'
$T send-keys -t nd Enter
check "a directory that does not exist: why, on the listing line and the status line; the zoo still listed" \
    'wait_for nd "not listed \(No such file or directory\): /" 5 && wait_for nd "^ cannot list /.*/no such dir: No such file or directory" 5 && wait_for nd "zoo: lenet" 5'
close_quit nd

# ---- a directory without permission, for real: root lists any directory, so as nobody -----------
# The explorer runs as an unprivileged user (setpriv, else runuser; uid 65534 when this runs as
# root) in a world-readable directory holding a directory chmod 000. A TAP skip says why when no
# user switch works or that user cannot run the binary.
PRIV=$(mktemp -d "${TMPDIR:-/tmp}/rs-priv.XXXXXX")
chmod 755 "$PRIV"
mkdir "$PRIV/locked" "$PRIV/.state" && chmod 000 "$PRIV/locked" && chmod 777 "$PRIV/.state"
as_user=""
why=""
if [ "$(id -u)" -ne 0 ]; then
    as_user=" " # already unprivileged: no switch needed
elif setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
    as_user="setpriv --reuid=65534 --regid=65534 --clear-groups"
elif runuser -u nobody -- true 2>/dev/null; then
    as_user="runuser -u nobody --"
else
    why="neither setpriv nor runuser can switch to an unprivileged user here"
fi
if [ -n "$as_user" ] && [ -z "$why" ] && ! $as_user "$BIN" --version >/dev/null 2>&1; then
    why="the unprivileged user cannot run $BIN (a directory on its path is not world-readable)"
fi
if [ -n "$as_user" ] && [ -z "$why" ] && ! $as_user test -r "$MODEL"; then
    why="the unprivileged user cannot read $MODEL"
fi
if [ -n "$as_user" ] && [ -z "$why" ] && $as_user ls "$PRIV/locked" >/dev/null 2>&1; then
    why="the unprivileged user can still list a directory chmod 000 (a capability kept?)"
fi
if [ -n "$why" ]; then
    ok "a directory without permission # SKIP $why"
else
    CUR=perm
    echo "# as $(${as_user:-true} id -un 2>/dev/null)"
    browse_in perm 100 30 "$PRIV" "$as_user" ""
    $T send-keys -t perm d
    $T send-keys -t perm -l "$PRIV/locked"
    $T send-keys -t perm Enter
    check "a directory chmod 000: Permission denied on the listing line, the zoo still listed" \
        'wait_for perm "not listed \(Permission denied\): /" 5 && wait_for perm "zoo: lenet" 5'
    check "... and one line on the status line naming it: cannot list DIR: Permission denied" \
        'wait_for perm "^ cannot list $PRIV/locked: Permission denied *$" 5'
    close_quit perm
fi
chmod 755 "$PRIV/locked"
rm -rf "$PRIV"

# ---- the audit's defects at 80x24: nothing cut that a reader needs --------------------------------
CUR=narrow
open narrow 80 24 "LANG=C.UTF-8 TERM=xterm-mono NO_COLOR=1" "'$RN'"
check "resnet20 80x24 mono: table drawn" 'wait_for narrow "stages\.0/conv1 +584" 30'
$T send-keys -t narrow Down Right
check "the detail line keeps break-even (the short label when the node name is long)" 'wait_for narrow "^ stages\.0/conv1 +Conv 8x8x3x3 .*break-even" 10'
$T send-keys -t narrow 2
check "Spectrum: the title keeps its scale, the note its formula" 'wait_for narrow "spatial 24x24 +linear$" 5 && wait_for narrow "^ error\(r\) = sqrt\(1 - energy\(r\)\) exactly" 5'
$T send-keys -t narrow 5
check "Search: both paragraphs wrapped whole" 'wait_for narrow "\(--data DIR or RANKSCOPE_DATA\)\." 5 && wait_for narrow "EVBMF suggestion\." 5'
$T send-keys -t narrow 6
check "Example: the title, the kept rows and both sentences whole" 'wait_for narrow "then its SVD" 5 && wait_for narrow " kept$" 5 && wait_for narrow "amortised\)" 5 && wait_for narrow "81 multiplies direct, 72 separable$" 5'
$T send-keys -t narrow 1 o
check "the browser's title keeps Esc closes" 'wait_for narrow "Esc closes" 5'
check "the browser's listing line in its short form, whole" 'wait_for narrow "^ zoo, recent \(newest first\), \*\.onnx in \.$" 5'
$T send-keys -t narrow Escape
$T send-keys -t narrow :
check "the rank prompt: what is typed first, the hint cut with an ellipsis if at all" 'wait_for narrow "^ rank for stages\.0/conv1 spatial-svd: _ +\(1\.\.24, Enter sets, Esc cancels\)$" 5'
$T send-keys -t narrow Escape W
check "the save-as prompt: its short hint whole rather than the long one cut" 'wait_for narrow "^ save as: resnet20-lowrank_ +\(Enter saves, Esc cancels\)$" 5'
$T send-keys -t narrow Escape
$T resize-window -t narrow -x 12 -y 5
check "12x5: the notice in its short spellings, none cut" 'wait_for narrow "^ *too small$" 5 && wait_for narrow "^ *need 80x24$" 5'
$T send-keys -t narrow q
check "q there asks (unsaved change) and says so within the notice" 'wait_for narrow "^ *q again$" 5'
$T resize-window -t narrow -x 80 -y 24
$T send-keys -t narrow x
check "any other key stays" 'wait_for narrow "stages\.0/conv1 +584" 5 && ! cap narrow | grep -q "^EXIT="'
$T kill-session -t narrow
# both models' lines of a comparison at 80 columns, the zoo's accuracy included
open cmp80 80 24 "LANG=C.UTF-8" "small.onnx" --compare "'$MODEL'"
CUR=cmp80
check "80x24 compare: B's line with the zoo's accuracy (70.9%), whole: the short form without .onnx" 'wait_for cmp80 "^ B  lenet-cifar10: 62\.0K p \(0\.4x\), 651\.7K MACs, acc [0-9.]+% \(\+[0-9.]+\), zoo 70\.9%$" 60'
check "80x24 compare: A's line whole, in B's form" 'wait_for cmp80 "^ A  small: 25\.4K p, 522\.6K MACs, acc [0-9.]+%$" 5'
$T send-keys -t cmp80 q
check "cmp80: quits" 'wait_for cmp80 "^EXIT=0" 10'
# ---- a directory of more models than rows: the browser says which it shows, and pages ---------
CUR=many
mkdir -p "$WORK/many"
for i in $(seq -w 1 30); do cp "$MODEL" "$WORK/many/net$i.onnx"; done # copies: one file under two names is listed once
$T new-session -d -s many -x 80 -y 24 \
    "cd '$WORK/many' && env -u RANKSCOPE_DATA RANKSCOPE_ASSETS='$ROOT/assets' XDG_STATE_HOME='$WORK/many-state' LANG=C.UTF-8 '$BIN' net01.onnx; echo EXIT=\$?; sleep 60"
check "many models: the explorer opens" 'wait_for many "conv2 +Conv" 30'
$T send-keys -t many o
check "the browser shows which models the list shows" 'wait_for many "models 1-[0-9]+ of [0-9]+ *$" 10'
$T send-keys -t many End
check "End: the last one, the position follows" 'wait_for many "^ > net30\.onnx " 5 && wait_for many "models [0-9]+-([0-9]+) of \1 *$" 5'
$T send-keys -t many Home
check "Home: back to the first" 'wait_for many "models 1-[0-9]+ of [0-9]+ *$" 5'
$T send-keys -t many Escape q
check "many: quits" 'wait_for many "^EXIT=0" 10'

CUR=narrow
open narrow 80 24 "LANG=C.UTF-8 TERM=xterm-mono NO_COLOR=1" "'$ROOT/tests/data/zoo/acts.onnx'"
check "acts 80x24: table drawn" 'wait_for narrow "conv2 +Conv" 30'
$T send-keys -t narrow 7
check "Graph at 80 columns: a long op name reads in its short form, not cut (GlobalAvgPool)" 'wait_for narrow " GlobalAvgPool +8x1x1 " 5 && ! cap narrow | grep -q "GlobalAv…"'
$T send-keys -t narrow 1 '?' NPage NPage NPage
check "80x24: the help wraps long lines instead of cutting them" 'wait_for narrow "Example Graph\)" 5 && wait_for narrow "in it: d lists another directory, c compares" 5'
$T send-keys -t narrow Escape
$T resize-window -t narrow -x 160 -y 50
$T send-keys -t narrow '?'
check "160x50: the help box is as wide as its lines" 'wait_for narrow "switch screen \(Layers Spectrum Accuracy Trade-offs Search Example Graph\)" 5'
$T send-keys -t narrow Escape q q
check "narrow: quits" 'wait_for narrow "^EXIT=0" 10'

# ---- more of the audit at 80x24: the title, the detail line and a factor chain wider than the screen
CUR=lr
open lr 80 24 "LANG=C.UTF-8 TERM=xterm-256color" "'$ROOT/assets/zoo/resnet20-lowrank.onnx'"
check "the zoo's resnet20-lowrank 80x24: table drawn" 'wait_for lr "conv1 +448 " 30'
check "80 columns: a name too wide reads abbreviated, its own part whole (l1.0.conv1_f0, not …yer1.0.conv1_f0)" \
    'wait_for lr "^. l1\.0\.conv1_f0 +153 " 5 && wait_for lr "^  l1\.0\.conv1_f1 +738 " 5 && ! cap lr | grep -q "…yer"'
$T send-keys -t lr Down Right
check "a long accuracy on the right: the title drops .onnx or ends in an ellipsis, never cut bare" \
    'wait_for lr "acc [0-9.]+% -> ~?[0-9.]+% \(-[0-9.]+" 60 && header lr | grep -qE "^ (resnet20-lowrank(\.onnx)?|[^ ]*…) +acc"'
check "the detail line at 80 columns: the rank as 5/9, so the break-even rank fits whole" \
    'wait_for lr "^ layer1\.0\.conv1_f0 +Conv 9x16x1x1 +spatial-svd [0-9]+/9 +EVBMF [0-9]+ +break-even( rank)? [0-9]+$" 10'
$T send-keys -t lr q
check "lr: q asks (a change was made), q again quits" 'wait_for lr "Quit anyway" 5 && $T send-keys -t lr q && wait_for lr "^EXIT=0" 10'
CUR=chain
open chain 80 24 "LANG=C.UTF-8" "'$RN'"
check "resnet20 80x24: table drawn" 'wait_for chain "stages\.0/conv1 +584" 30'
$T send-keys -t chain -l "/stages.6/conv2"
$T send-keys -t chain Enter m m m
check "stages.6/conv2 alone, as cp" 'wait_for chain "^▶ stages\.6/conv2 .* cp " 10'
$T send-keys -t chain : 8 0 Enter
check "a CP chain at 80 columns: its four steps whole, MACs named under the first cost only" \
    'wait_for chain "^ as 1x1 32->80 +│ 3x1 dw 80 +│ 1x3 dw 80 +│ 1x1 80->32$" 60 && cap chain | grep -qE "^ +[0-9.]+K? p, [0-9.]+K? MACs │ [0-9.]+K? p, [0-9.]+K? +│ [0-9.]+K? p, [0-9.]+K? +│ [0-9.]+K? p, [0-9.]+K?$"'
$T send-keys -t chain q
check "chain: q asks (a change was made), q again quits" 'wait_for chain "Quit anyway" 5 && $T send-keys -t chain q && wait_for chain "^EXIT=0" 10'

# ---- Trade-offs at 160x50: the curve's points selected and applied to the sliders ----------------
CUR=curve
open curve 160 50 "LANG=C.UTF-8" "'$MODEL'"
check "lenet 160x50: table drawn" 'wait_for curve "conv2 +Conv" 20'
$T send-keys -t curve 4 C
check "C without the training set says so" 'wait_for curve "fine-tuned curve needs the full CIFAR-10 training set" 5'
$T send-keys -t curve c
check "c: the curve finishes" 'wait_for curve "curve done: 5 points" 180'
$T send-keys -t curve '>' '>'
check "> >: the second point selected and described" 'wait_for curve "> 2\.[0-9]x: [0-9.]+% .*Enter applies" 5'
$T send-keys -t curve Enter
check "Enter applies it to the sliders (params about 2x fewer)" 'wait_for curve "curve point 2\.[0-9]x applied to the sliders" 5 && header curve | grep -qE "params 62\.0K -> [0-9.]+K 2\.[0-9]x"'
$T send-keys -t curve 1
check "the Layers screen shows the factorized layers" 'wait_for curve "(svd|spatial-svd|cp|tucker2) +[━─●]+ +[0-9]+/" 5'
$T send-keys -t curve u
check "u undoes the whole point" 'wait_for curve "params 62\.0K -> 62\.0K" 10'
$T send-keys -t curve q q
check "quits" 'wait_for curve "^EXIT=0" 10'

tap_done
