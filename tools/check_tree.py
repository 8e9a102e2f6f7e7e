#!/usr/bin/env python3
"""check_tree.py SOURCE_ROOT [ENGINE_LIB.a] — the tree's structural rules, as TAP.

1. No source file (src/, include/) over LIMIT lines: a file that long holds several concerns and
   is split by concern instead. Files in KNOWN_OVERSIZE are reported as TODO until they are split.
2. The #include graph of the engine (src/engine/*.{c,h,inc}, include/rankscope/*.h) has no cycle,
   public headers include no private engine header, and the engine includes nothing from the
   clients (src/cli, src/ui) nor curses.
3. No function in src/cli over FN_LIMIT lines (a command parses its options and calls the
   engine; the algorithm lives in the engine). KNOWN_LONG lists the ones still being split.
   src/cli and src/ui never include each other's headers (the clients stay separate; what both
   need lives in the engine or in include/). KNOWN_CROSS lists the includes still being removed.
4. No comment carries history ("issue 7", "added in change X"): that goes to CHANGELOG.md.
5. With ENGINE_LIB: every symbol the engine exports is declared in include/rankscope/ (the rest
   is hidden by -fvisibility=hidden), and every function a public header declares is exported.
"""
import graphlib
import os
import re
import subprocess
import sys

LIMIT = 1250  # "~1,200 lines", with room for a contract comment
# path -> owner doing the split; remove the entry when the file is under LIMIT
KNOWN_OVERSIZE = {}
FN_LIMIT = 120
CASE_LIMIT = 30  # "a small number" of `case RS_OP_` in src/
# (file, function) -> owner; remove the entry when the function is short
KNOWN_LONG = {}
KNOWN_CROSS = {}
SOURCE_EXT = (".c", ".h", ".inc")
SKIP_DIRS = ("node_modules", "data", "corpus")

n = 0
failed = 0


def point(good, desc, diag=(), todo=None):
    global n, failed
    n += 1
    line = f"{'ok' if good else 'not ok'} {n} - {desc}"
    if todo and not good:
        line += f" # TODO {todo}"
    elif not good:
        failed += 1
    print(line)
    for d in diag:
        print(f"#   {d}")


def files_under(root, *dirs):
    for d in dirs:
        for dirpath, dirs, names in os.walk(os.path.join(root, d)):
            dirs[:] = [x for x in dirs if x not in SKIP_DIRS]
            for f in sorted(names):
                if f.endswith(SOURCE_EXT):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


def includes(root, rel):
    """Quoted #include targets of rel, resolved to paths relative to root (unresolved kept)."""
    text = open(os.path.join(root, rel), encoding="utf-8", errors="replace").read()
    out = []
    for m in re.finditer(r'^\s*#\s*include\s+(["<])([^">]+)[">]', text, re.M):
        kind, target = m.groups()
        if kind == "<":
            out.append(("<", target))
            continue
        for base in (os.path.dirname(rel), "include"):
            cand = os.path.normpath(os.path.join(base, target))
            if os.path.exists(os.path.join(root, cand)):
                out.append(('"', cand))
                break
        else:
            out.append(('"', target))  # generated (rankscope_config.h, onnx.pb-c.h)
    return out


def functions(path):
    """(name, first line, length) of each top-level function definition. Relies on the tree's
    layout (.clang-format: a definition's braces sit alone in column 0)."""
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(?!static\s+const\b)[A-Za-z_][\w \*]*?\b(\w+)\s*\(", lines[i])
        if m and not lines[i].rstrip().endswith(";") and not lines[i].startswith(("typedef", "#")):
            j = i
            while j < len(lines) and lines[j] != "{" and not lines[j].rstrip().endswith((";", "}")):
                j += 1
            if j < len(lines) and lines[j] == "{":
                k = j + 1
                while k < len(lines) and lines[k] != "}":
                    k += 1
                yield m.group(1), i + 1, k - i + 1
                i = k + 1
                continue
        i += 1


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: check_tree.py SOURCE_ROOT [ENGINE_LIB.a]")
    root = sys.argv[1]
    lib = sys.argv[2] if len(sys.argv) == 3 else None
    sources = sorted(files_under(root, "src", "include"))

    # ---- 1. file size ----
    for rel in sources:
        lines = sum(1 for _ in open(os.path.join(root, rel), encoding="utf-8", errors="replace"))
        if rel in KNOWN_OVERSIZE:
            owner = KNOWN_OVERSIZE[rel]
            point(lines <= LIMIT, f"{rel}: {lines} lines (limit {LIMIT})"
                  + ("; under the limit now: drop it from KNOWN_OVERSIZE" if lines <= LIMIT else ""),
                  todo=f"split by concern ({owner})")
    big = []
    for rel in sources:
        if rel in KNOWN_OVERSIZE:
            continue
        lines = sum(1 for _ in open(os.path.join(root, rel), encoding="utf-8", errors="replace"))
        if lines > LIMIT:
            big.append(f"{rel}: {lines} lines")
    point(not big, f"no other file in src/ or include/ over {LIMIT} lines ({len(sources)} files)",
          big)

    # ---- 2. engine include graph ----
    engine = [r for r in sources if r.startswith(("src/engine/", "include/rankscope/"))]
    graph = {}
    bad_dir = []
    public_private = []
    for rel in engine:
        deps = set()
        for kind, target in includes(root, rel):
            if kind == "<":
                if re.match(r"n?curses", target):
                    bad_dir.append(f"{rel} includes <{target}> (the engine has no curses)")
                continue
            if target.startswith(("src/cli/", "src/ui/")):
                bad_dir.append(f"{rel} includes {target} (a client)")
            if target in engine:
                deps.add(target)
                if rel.startswith("include/") and target.startswith("src/"):
                    public_private.append(f"{rel} includes {target}")
        graph[rel] = deps
    try:
        graphlib.TopologicalSorter(graph).prepare()
        point(True, f"no #include cycle among {len(engine)} engine files")
    except graphlib.CycleError as err:
        point(False, "no #include cycle among engine files", [" -> ".join(err.args[1])])
    point(not public_private, "public headers include no private engine header", public_private)
    point(not bad_dir, "the engine includes nothing from src/cli, src/ui or curses", bad_dir)

    # ---- op dispatch: one registry instead of a switch per concern ----
    cases = {}
    for rel in sources:
        if rel.startswith("src/"):
            k = open(os.path.join(root, rel), encoding="utf-8", errors="replace").read().count("case RS_OP_")
            if k:
                cases[rel] = k
    total = sum(cases.values())
    point(total <= CASE_LIMIT, f"`case RS_OP_` appears {total} times in src/ (at most {CASE_LIMIT}: "
          "the op registry's dispatch, not a switch per concern)",
          [f"{r}: {k}" for r, k in sorted(cases.items())] if total > CASE_LIMIT else (),
          todo="op registry (core)")

    # ---- 3. CLI function length ----
    long_fns, seen_known = [], {}
    for rel in sources:
        if rel.startswith("src/cli/") and rel.endswith(".c"):
            for name, line, length in functions(os.path.join(root, rel)):
                if (rel, name) in KNOWN_LONG:
                    seen_known[(rel, name)] = length
                elif length > FN_LIMIT:
                    long_fns.append(f"{rel}:{line}: {name} is {length} lines")
    point(not long_fns, f"no other function in src/cli over {FN_LIMIT} lines", long_fns)
    for key in sorted(KNOWN_LONG):
        length = seen_known.get(key, 0)
        point(length <= FN_LIMIT, f"{key[0]}: {key[1]} is {length} lines (limit {FN_LIMIT})"
              + ("; short now (or gone): drop it from KNOWN_LONG" if length <= FN_LIMIT else ""),
              todo=f"move the algorithm into the engine ({KNOWN_LONG[key]})")

    # ---- 3. client boundaries ----
    cross, known = [], []
    for rel in sources:
        side = "src/cli/" if rel.startswith("src/cli/") else "src/ui/" if rel.startswith("src/ui/") else None
        if not side:
            continue
        other = "src/ui/" if side == "src/cli/" else "src/cli/"
        for kind, target in includes(root, rel):
            if kind == '"' and target.startswith(other):
                (known if (rel, target) in KNOWN_CROSS else cross).append(f"{rel} includes {target}")
    point(not cross, "src/cli and src/ui include none of each other's headers"
          + (f" (apart from {len(known)} known)" if known else ""), cross)
    for rel, target in sorted(KNOWN_CROSS):
        still = f"{rel} includes {target}" in known
        point(not still, f"{rel} no longer includes {target}", todo=f"client boundary ({KNOWN_CROSS[(rel, target)]})")

    # ---- 4. history in comments ----
    hist = []
    pat = re.compile(r"\b(issue|change) #?[0-9]+\b|\b(added|introduced|fixed) in (issue|change|commit)\b",
                     re.I)
    scripts = [os.path.join(d, f) for d in ("tests", "tools", "tests/fuzz")
               if os.path.isdir(os.path.join(root, d))
               for f in sorted(os.listdir(os.path.join(root, d))) if f.endswith((".sh", ".py", ".js"))]
    for rel in sorted(set(sources) | set(files_under(root, "tests", "tools")) | set(scripts)):
        if rel.startswith("tests/node_modules") or rel == "tools/check_tree.py":
            continue
        for i, line in enumerate(open(os.path.join(root, rel), encoding="utf-8", errors="replace"), 1):
            if pat.search(line):
                hist.append(f"{rel}:{i}: {line.strip()[:90]}")
    for rel in ("meson.build", "tests/meson.build", "tests/run", ".ci/run"):
        p = os.path.join(root, rel)
        if os.path.exists(p):
            for i, line in enumerate(open(p, encoding="utf-8"), 1):
                if pat.search(line):
                    hist.append(f"{rel}:{i}: {line.strip()[:90]}")
    point(not hist, "no comment names an issue or change (history goes to CHANGELOG.md)", hist[:20])

    # ---- 5. symbol visibility ----
    if lib:
        check_visibility(root, lib)
    print(f"1..{n}")
    return 1 if failed else 0


def check_visibility(root, lib):
    out = subprocess.run(["readelf", "-sW", lib], stdout=subprocess.PIPE, check=True,
                         universal_newlines=True).stdout
    exported, hidden = set(), set()
    for line in out.splitlines():
        f = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(f) < 8 or f[4] != "GLOBAL" or f[6] == "UND" or f[3] not in ("FUNC", "OBJECT"):
            continue
        if f[7].startswith("__"):
            continue  # the compiler's own (sanitizers' __odr_asan.*, __asan_*, ...)
        (exported if f[5] == "DEFAULT" else hidden).add(f[7])
    api_text = ""
    for rel in files_under(root, "include"):
        api_text += open(os.path.join(root, rel), encoding="utf-8").read() + "\n"
    api_text = re.sub(r"/\*.*?\*/", " ", api_text, flags=re.S)
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", api_text))
    declared_fns = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(", api_text))
    leaked = sorted(s for s in exported if s not in words)
    point(not leaked, f"the engine exports only what include/rankscope declares ({len(exported)} symbols)",
          [f"{s} is exported but not in a public header: make it static or drop it from the public header" for s in leaked[:20]])
    missing = sorted(s for s in hidden if s in declared_fns)
    point(not missing, "every engine function a public header declares is exported",
          [f"{s} is hidden: its header lacks the '#pragma GCC visibility push(default)' ... pop pair" for s in missing[:20]])


if __name__ == "__main__":
    sys.exit(main())
