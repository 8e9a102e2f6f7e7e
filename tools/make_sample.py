#!/usr/bin/env python3
"""Writes assets/cifar10-test-sample.bin: the first PER_CLASS images of each class of the official
CIFAR-10 test batch, kept in official order, in the same 3073-byte record format.
usage: tools/make_sample.py DATA_DIR [PER_CLASS]"""
import sys

RECORD = 3073
data_dir = sys.argv[1]
per_class = int(sys.argv[2]) if len(sys.argv) > 2 else 200
raw = open(f"{data_dir}/test_batch.bin", "rb").read()
assert len(raw) % RECORD == 0
counts = [0] * 10
out = bytearray()
for i in range(len(raw) // RECORD):
    rec = raw[i * RECORD:(i + 1) * RECORD]
    if counts[rec[0]] < per_class:
        counts[rec[0]] += 1
        out += rec
assert counts == [per_class] * 10, counts
open("assets/cifar10-test-sample.bin", "wb").write(out)
print(f"wrote {len(out) // RECORD} images ({per_class} per class)")
