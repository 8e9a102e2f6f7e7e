#!/usr/bin/env python3
"""Prints the suite's closing line "N passed, N failed, N skipped[ (LABEL)]" from meson's
testlog.json. usage: summarize.py TESTLOG.json [LABEL]"""
import json
import sys

passed = failed = skipped = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    result = json.loads(line)["result"]
    if result in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif result == "SKIP":
        skipped += 1
    else:
        failed += 1
label = f" ({sys.argv[2]})" if len(sys.argv) > 2 else ""
print(f"{passed} passed, {failed} failed, {skipped} skipped{label}")
