#!/usr/bin/env python3
"""`make lint`: no production function of the host or the SDK over 80 lines.

Lists every function (tests excluded) longer than LIMIT lines, counted from
its `fn` line to its closing brace. Functions named in
testing/long-functions.allow (`path::name`, the ones that predate the rule,
to be split by phase) are listed apart and do not fail the check; any other,
and an allowed one that is gone or short now (take it off the list), does.
"""
import pathlib
import re
import sys

LIMIT = 80
ROOTS = ["sdk/src", "crates"]
FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(unsafe\s+)?(extern\s+"C"\s+)?fn\s+(\w+)')
STRIP = re.compile(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])\'|//.*$')


def braces(line):
    text = STRIP.sub("", line)
    return text.count("{") - text.count("}")


def functions(path):
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "#[cfg(test)]":
            i = skip_block(lines, i + 1)
            continue
        m = FN.match(lines[i])
        if m and "{" in STRIP.sub("", "\n".join(lines[i:i + 12])):
            end = skip_block(lines, i)
            yield m.group(6), i + 1, end - i
            i += 1
            continue
        i += 1


def skip_block(lines, start):
    """The index after the block that opens at or after `start`."""
    depth, opened, i = 0, False, start
    while i < len(lines):
        depth += braces(lines[i])
        opened = opened or "{" in STRIP.sub("", lines[i])
        if opened and depth <= 0:
            return i + 1
        if not opened and lines[i].rstrip().endswith(";"):
            return i + 1
        i += 1
    return i


def main():
    allow_file = pathlib.Path("testing/long-functions.allow")
    allowed = {l.split()[0] for l in allow_file.read_text().splitlines() if l.strip() and not l.startswith("#")}
    long, seen = [], set()
    for root in ROOTS:
        for path in sorted(pathlib.Path(root).rglob("*.rs")):
            if "/tests/" in str(path) or "/benches/" in str(path):
                continue
            for name, line, length in functions(path):
                key = f"{path}::{name}"
                if length > LIMIT:
                    long.append((key, line, length))
                    seen.add(key)
    new = [(k, l, n) for k, l, n in long if k not in allowed]
    stale = sorted(allowed - seen)
    for key, line, length in sorted(long, key=lambda x: -x[2]):
        mark = "new " if key not in allowed else "    "
        print(f"{mark}{length:4} lines  {key} (line {line})")
    print(f"{len(long)} functions over {LIMIT} lines, {len(long) - len(new)} of them on the list to split")
    if new:
        print("split the new ones by phase (a function over ~80 lines does several jobs)")
    if stale:
        print("no longer over the limit; take them off testing/long-functions.allow:\n  " + "\n  ".join(stale))
    sys.exit(1 if new or stale else 0)


main()
