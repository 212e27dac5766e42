#!/usr/bin/env python3
"""Count (and show) the memcheck errors in valgrind logs that involve sophy or the engine.

    python tools/valgrind_filter.py build/valgrind    # prints the count on stdout

CPython here is not built ``--with-valgrind``: its own code produces known false positives
(uninitialised reads in ``long_bitwise``/small ints, AVX2 ``wmemcmp`` over-reads in unicode
compares).  An error counts when any frame of its stack is in our extension (``_sophia_ffi``,
``csrc/sophy_ffi.c``) or in the engine (``sophia/...``); the first 20 are printed on stderr.
"""
from __future__ import annotations

import glob
import os
import re
import sys
from typing import List

OURS = re.compile(r"_sophia_ffi|sophy_ffi\.c|sophia/|sophia\.c")
KINDS = re.compile(r"(Invalid|Use of uninit|Conditional jump|Mismatched|Source and dest|"
                   r"Syscall param|Argument|Jump to)")


def blocks(path: str) -> List[List[str]]:
    """The log's records, split at memcheck's empty ``==pid==`` lines."""
    out: List[List[str]] = []
    cur: List[str] = []
    with open(path, errors="replace") as f:
        for line in f:
            body = re.sub(r"^==\d+== ?", "", line.rstrip("\n"))
            if body:
                cur.append(body)
            elif cur:
                out.append(cur)
                cur = []
    if cur:
        out.append(cur)
    return out


def main(directory: str) -> int:
    total = shown = ignored = 0
    for path in sorted(glob.glob(os.path.join(directory, "*.log"))):
        for b in blocks(path):
            if not KINDS.match(b[0]):
                continue
            if any(OURS.search(x) for x in b[1:]):
                total += 1
                if shown < 20:
                    shown += 1
                    print("===== %s" % path, file=sys.stderr)
                    print("\n".join(b[:25]), file=sys.stderr)
            else:
                ignored += 1
    print("(%d interpreter-internal error record(s) ignored)" % ignored, file=sys.stderr)
    print(total)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
