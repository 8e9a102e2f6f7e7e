#!/usr/bin/env python3
"""gen_man.py BINARY OUT.1 — writes rankscope(1) from the program's own --help texts.

The man page is generated so it can never drift from the options the binary accepts: the
synopsis and command list come from `rankscope --help`, the explorer section from the explorer's
--help, and one subsection per command from `rankscope COMMAND --help` (the commands are read
from the "commands:" block of the top-level help, so a new command appears without edits here).
"""
import datetime
import os
import re
import subprocess
import sys


def run(binary, *args):
    env = dict(os.environ, NO_COLOR="1", COLUMNS="100")
    p = subprocess.run([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=60, check=False)
    if p.returncode != 0:
        sys.exit(f"gen_man.py: `{os.path.basename(binary)} {' '.join(args)}` exited {p.returncode}")
    return p.stdout.decode("utf-8", "replace")


def esc(line):
    """Plain text -> roff: backslashes, leading dots/quotes, and hyphens that are options."""
    line = line.replace("\\", "\\e")
    line = re.sub(r"(?<![\w-])-", r"\\-", line)
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line


def verbatim(text):
    out = [".nf"]
    out += [esc(l.rstrip()) for l in text.rstrip("\n").split("\n")]
    out.append(".fi")
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_man.py BINARY OUT.1")
    binary, dest = sys.argv[1], sys.argv[2]
    version = run(binary, "--version").strip()
    top = run(binary, "--help")
    commands = []
    in_block = False
    for line in top.split("\n"):
        if line.strip() == "commands:":
            in_block = True
            continue
        if in_block:
            m = re.match(r"^  (\S+)\s+(.*)$", line)
            if not m:
                if commands:
                    break
                continue
            commands.append((m.group(1), m.group(2)))
    if not commands:
        sys.exit("gen_man.py: no \"commands:\" block in --help")
    explorer = run(binary, "model.onnx", "--help")

    # SOURCE_DATE_EPOCH keeps the page reproducible when packagers set it.
    stamp = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or os.stat(binary).st_mtime
    when = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
    name, _, ver = version.partition(" ")
    out = [f'.TH RANKSCOPE 1 "{when:%Y-%m-%d}" "{esc(version)}" "User Commands"',
           ".SH NAME",
           "rankscope \\- low\\-rank factorization of neural networks: explorer and command line",
           ".SH SYNOPSIS"]
    out += verbatim(top.split("\n\ncommands:")[0])
    out += [".SH DESCRIPTION",
            "rankscope factorizes the layers of an ONNX network (SVD, CP, Tucker\\-2), measures "
            "what that does to accuracy on CIFAR\\-10, searches ranks, fine\\-tunes and exports "
            "the result as ONNX or dependency\\-free C.",
            "Without a command it opens the interactive explorer; every explorer screen has a "
            "command twin.",
            ".SH THE EXPLORER"]
    out += verbatim(explorer)
    out.append(".SH COMMANDS")
    for cmd, summary in commands:
        out += [f".SS {esc(cmd)}", esc(summary) + ".", ".PP"]
        out += verbatim(run(binary, cmd, "--help"))
    rest = top.split("\n\ncommands:")[1].split("\n\n", 1)
    out += [".SH ENVIRONMENT",
            ".TP", ".B RANKSCOPE_DATA", "the CIFAR\\-10 directory when \\-\\-data is not given.",
            ".TP", ".B RANKSCOPE_ASSETS",
            "directory of the shipped files (the default model, the test sample, the zoo); "
            "default: the installed data directory.",
            ".TP", ".B NO_COLOR", "the explorer draws without colour."]
    if len(rest) > 1 and rest[1].strip():
        out += [".SH DATA"]
        out += verbatim(rest[1])
    out += [".SH VERSION", esc(ver or version), ""]
    tmp = dest + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    os.replace(tmp, dest)


if __name__ == "__main__":
    main()
