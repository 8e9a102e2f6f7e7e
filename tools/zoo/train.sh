#!/usr/bin/env bash
# Trains (or, when its checkpoint exists, resumes) one model of the zoo with the exact command
# recorded in assets/zoo/README.md. Long: run it in the background; every epoch writes an atomic
# checkpoint, so a killed run continues bit-identically with the same command.
# Usage: bash tools/zoo/train.sh resnet20|vgg|mobilenet [RANKSCOPE_BIN]   (data: $RANKSCOPE_DATA)
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: tools/zoo/train.sh resnet20|vgg|mobilenet [RANKSCOPE_BIN]}
rs=${2:-build/rankscope}
: "${RANKSCOPE_DATA:?set RANKSCOPE_DATA to the CIFAR-10 binary directory}"
ckpt=tools/zoo/checkpoints/$name.ckpt
out=assets/zoo/$name.onnx
mkdir -p tools/zoo/checkpoints
case $name in
resnet20) args=(--arch resnet20 --seed 1 --epochs 120 --lr 0.1 --wd 5e-4 --schedule cosine --warmup 0.02 --batch 128 --threads 2) ;;
vgg) args=(--arch vgg --seed 1 --epochs 70 --lr 0.1 --wd 5e-4 --schedule cosine --warmup 0.03 --batch 128 --threads 2) ;;
mobilenet) args=(--arch mobilenet --seed 1 --epochs 50 --lr 0.1 --wd 5e-4 --schedule cosine --warmup 0.03 --batch 128 --threads 2) ;;
*) echo "unknown zoo model $name" >&2; exit 2 ;;
esac
start=$(date +%s)
if [ -f "$ckpt" ]; then
    "$rs" train --resume "$ckpt" --data "$RANKSCOPE_DATA" -o "$out" --force --json
else
    "$rs" train "${args[@]}" --data "$RANKSCOPE_DATA" -o "$out" --checkpoint "$ckpt" --json
fi
echo "$name: wall time of this sitting $(( $(date +%s) - start )) s" >&2
