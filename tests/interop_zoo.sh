#!/bin/bash
# interop_zoo.sh — the real CIFAR-10 nets (tests/gen_zoo.py: VGG with BatchNorm folded or
# kept, ResNet-20 with residual adds / a BatchNorm that cannot fold / GlobalAveragePool, MobileNet
# with depthwise convs, Clip, Pad + AveragePool and the x.view(x.size(0), -1) Shape pattern):
# rankscope loads each PyTorch export (folding BatchNorm / Pad, rewriting the view to a Flatten)
# and writes it back (tool_resave); onnx.checker (full_check) accepts the file; ONNX Runtime and
# rankscope run it on tests/data/zoo/zoo_input.f32 and agree with PyTorch's logits within 1e-4
# (scaled as CHECK_CLOSE); also the opset-11/13/17 exports of tests/gen_zoo_opsets.py (a head
# net with Dropout, Sigmoid, channel Concat, ceil_mode AveragePool, Softmax; MobileNet).
# Same prerequisites and TAP output as interop.sh.
# usage: interop_zoo.sh TOOL_RESAVE TOOL_LOGITS
set -u
resave=${1:?usage: interop.sh TOOL_RESAVE TOOL_LOGITS}
logits=${2:?usage: interop.sh TOOL_RESAVE TOOL_LOGITS}
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data/zoo
py=/usr/bin/python3
tol=1e-4
# FILE[:REF] — REF names the *_logits.f32 when it differs (tests/gen_zoo_opsets.py's exports)
models="vgg_bn vgg_bn_keep resnet20 mobilenet mobilenet_opset11:mobilenet mobilenet_opset17:mobilenet
        head_opset11:head head_opset13:head head_opset17:head acts"

source "$here/lib.sh"
need_interop interop_zoo

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rs_interop_zoo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

for spec in $models; do
    m=${spec%%:*}
    golden_roundtrip "$m" "$data/$m.onnx" "$data/${spec##*:}_logits.f32" "$data/zoo_input.f32"
done

tap_done
