#!/usr/bin/env python3
"""Engine layering as TAP. usage: layering.py ENGINE_LIB.a SOURCE_ROOT

1. The #include graph among engine headers (include/rankscope/*.h, src/engine/*.h) has no cycle.
2. The object-level call graph (which engine object file uses a symbol another one defines, read
   with nm from the static library) has no cycle through the decomposition layer, and the
   decomposition layer's bottom modules (linalg, geom) use nothing above them.
Cycles elsewhere in the engine are reported as diagnostics."""
import os
import re
import subprocess
import sys
from collections import defaultdict

lib, root = sys.argv[1], sys.argv[2]
DECOMP = {"linalg", "geom", "decomp", "decomp_view", "decomp_svd", "decomp_cp", "decomp_tucker",
          "evbmf", "fit", "layer_eval"}
# what each bottom module may use
BELOW = {"linalg": {"common"}, "geom": {"common", "model"}, "layer_eval": set()}

checks = []


def sccs(graph):
    """Tarjan's strongly connected components of size > 1 (iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    nodes = set(graph) | {w for vs in graph.values() for w in vs}
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


# ---- 1. header include graph ----
hdr = {}
for d, prefix in (("include/rankscope", "rankscope/"), ("src/engine", "")):
    for f in os.listdir(os.path.join(root, d)):
        if f.endswith(".h"):
            hdr[prefix + f] = os.path.join(root, d, f)
inc = defaultdict(set)
for name, path in hdr.items():
    for m in re.finditer(r'^\s*#\s*include\s+"([^"]+)"', open(path, encoding="utf-8").read(), re.M):
        if m.group(1) in hdr:
            inc[name].add(m.group(1))
cyc = sccs(inc)
checks.append((not cyc, f"no #include cycle among {len(hdr)} engine headers"
               + "".join(f"\n# cycle: {' '.join(c)}" for c in cyc)))

# ---- 2. object call graph ----
nm = subprocess.run(["nm", "-A", lib], capture_output=True, text=True)
if nm.returncode != 0:
    print("1..0 # SKIP nm failed: " + nm.stderr.strip()[:200])
    sys.exit(0)
defs, uses = {}, defaultdict(set)
for line in nm.stdout.splitlines():
    m = re.match(r".*src_engine_(\w+)\.c\.o:\S*\s+(\w)\s+(\S+)$", line)
    if not m:
        continue
    obj, kind, sym = m.groups()
    if kind == "U":
        uses[obj].add(sym)
    elif kind in "TDBRC":
        defs[sym] = obj
graph = defaultdict(set)
for obj, syms in uses.items():
    for s in syms:
        if s in defs and defs[s] != obj:
            graph[obj].add(defs[s])
present = DECOMP & (set(graph) | set(defs.values()))
checks.append(({"linalg", "geom", "decomp"} <= present,
               "decomposition objects found in the engine library: " + " ".join(sorted(present))))
all_cycles = sccs(graph)
bad = [c for c in all_cycles if DECOMP & set(c)]
checks.append((not bad, "no call cycle through the decomposition layer"
               + "".join(f"\n# cycle: {' '.join(c)}" for c in bad)))
for low_mod, allowed in BELOW.items():
    extra = graph.get(low_mod, set()) - allowed
    checks.append((not extra, f"{low_mod} uses only {' '.join(sorted(allowed)) or 'libraries outside the engine'}"
                   + (f" (also uses {' '.join(sorted(extra))})" if extra else "")))
for mod in ("decomp_svd", "decomp_cp", "decomp_tucker"):
    up = graph.get(mod, set()) & (DECOMP - {"linalg", "geom"})
    checks.append((not up, f"builder {mod} calls no other decomposition module above linalg/geom"
                   + (f" (calls {' '.join(sorted(up))})" if up else "")))

print(f"1..{len(checks)}")
for i, (ok, msg) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {msg}")
for c in all_cycles:
    if c not in bad:
        print(f"# note: call cycle outside the decomposition layer: {' '.join(c)}")
for mod in sorted(present):
    print(f"# {mod} -> {' '.join(sorted(graph.get(mod, ())))}")
sys.exit(0 if all(ok for ok, _ in checks) else 1)
