#!/bin/bash
# export_c_zoo.sh — `rankscope export --format c` for the real CIFAR-10 nets of
# tests/gen_zoo.py (VGG with folded BatchNorm, ResNet-20 with residual adds, a kept BatchNorm
# and GlobalAveragePool, MobileNet with depthwise convs, Clip and AveragePool). Each generated
# model.c/model.h is compiled with -std=c99 -Wall -Wextra -Werror -pedantic, run on
# tests/data/zoo/zoo_input.f32 and compared with PyTorch's logits; a factorized ResNet-20 (and
# MobileNet) is compared with rankscope's own inference of the same factorization exported as
# ONNX (tool_logits). Tolerance 1e-4 scaled as CHECK_CLOSE. Output is TAP.
# usage: export_c_zoo.sh TOOL_LOGITS
set -u
logits=${1:?usage: export_c_zoo.sh TOOL_LOGITS}
BIN=${RANKSCOPE_BIN:?RANKSCOPE_BIN not set}
SRC=${RS_SOURCE_ROOT:?RS_SOURCE_ROOT not set}
PY=/usr/bin/python3
CC=${CC:-cc}
Z=$SRC/tests/data/zoo
CFLAGS="-std=c99 -Wall -Wextra -Werror -pedantic -O2"
if ! command -v "$CC" >/dev/null 2>&1 || ! $PY -c 'import numpy' 2>/dev/null; then
    echo "1..0 # SKIP needs a C compiler and $PY with numpy"
    exit 0
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/rs_export_c_zoo.XXXXXX")
trap 'rm -rf "$T"' EXIT
source "$SRC/tests/lib.sh"
compare() { # compare GOT.f32 REF.f32
    $PY - "$1" "$2" <<'PY'
import sys
import numpy as np
got, ref = np.fromfile(sys.argv[1], "<f4"), np.fromfile(sys.argv[2], "<f4")
if got.size != ref.size or got.size == 0:
    sys.exit(f"{got.size} logits vs {ref.size}")
diff = np.abs(got.astype(np.float64) - ref)
print(f"max |diff| {diff.max():.2e} over {got.size} logits")
sys.exit(0 if (diff / np.maximum(1.0, np.abs(ref))).max() <= 1e-4 else 1)
PY
}
build_run() { # build_run DIR OUT.f32 [IN.f32] — compile the export with the driver and run it
    $CC $CFLAGS -I"$1" -o "$1/run" "$SRC/tests/c_export_driver.c" "$1/model.c" && "$1/run" "${3:-$Z/zoo_input.f32}" "$2"
}
for m in vgg_bn resnet20 mobilenet; do
    point "$m: export --format c" "$BIN" export "$Z/$m.onnx" --format c -o "$T/$m"
    point "$m: C99 -pedantic -Werror compiles and runs" build_run "$T/$m" "$T/$m.c.f32"
    point "$m: C export matches PyTorch" compare "$T/$m.c.f32" "$Z/${m}_logits.f32"
done
# tests/gen_nets.py's pre-activation ResNet: LeakyRelu and kept BatchNormalization in C
N=$SRC/tests/data/nets
point "preact_resnet: export --format c" "$BIN" export "$N/preact_resnet.onnx" --format c -o "$T/pre"
point "preact_resnet: C99 -pedantic -Werror compiles and runs" build_run "$T/pre" "$T/pre.c.f32" \
    "$N/nets_input.f32"
point "preact_resnet: C export matches PyTorch" compare "$T/pre.c.f32" "$N/preact_resnet_logits.f32"
rs_vs_c() { # rs_vs_c DIR — rankscope's logits for DIR.onnx vs the C export's DIR.c.f32
    "$logits" "$1.onnx" "$Z/zoo_input.f32" "$1.rs.f32" && compare "$1.c.f32" "$1.rs.f32"
}
for spec in "resnet20 stages.3/conv2=cp:8,stages.0/conv1=tucker2:8,fc=svd:6" \
            "mobilenet features.6=spatial-svd:8,features.30=tucker2:16"; do
    m=${spec%% *}
    r=${spec#* }
    d=$T/${m}_f
    point "$m factorized ($r): export --format c and onnx" \
        bash -c '"$1" export "$2" --ranks "$3" --format c -o "$4" && "$1" export "$2" --ranks "$3" --format onnx -o "$4.onnx"' \
        _ "$BIN" "$Z/$m.onnx" "$r" "$d"
    point "$m factorized: compiles and runs" build_run "$d" "$d.c.f32"
    point "$m factorized: C export matches rankscope's inference" rs_vs_c "$d"
done
echo "1..$n"
[ "$failed" -eq 0 ]
