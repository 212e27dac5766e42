"""Worker process: runs every workload for ONE system and prints one JSON object on stdout.

Invoked by run.py with the interpreter (usually a venv's) that has the system installed, so two
packages both named ``sophy`` (ours and 0.7.1) never meet in one process:

    python bench/worker.py --adapter ours --n 200000 --dir /tmp/x --seed 1
    python bench/worker.py --adapter ours --memory --dir /tmp/x

Exit status is 0 when the JSON was printed (workload failures are inside it), 2 when the system
could not even be imported.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any, Dict

# bench/ itself is sys.path[0] when run as a script; nothing from the repository root is added,
# so `import sophy` resolves to whatever the interpreter has installed.
from adapters import ADAPTERS, adapter_names


def describe(adapter: str) -> Dict[str, Any]:
    """Interpreter and library version, for the report."""
    info: Dict[str, Any] = {
        "interpreter": "%s %s" % (platform.python_implementation(), platform.python_version()),
        "executable": sys.executable,
    }
    module = {"ours": "sophy", "peer": "sophy", "lmdb": "lmdb", "plyvel": "plyvel",
              "sqlite3": "sqlite3"}[adapter]
    mod = __import__(module)
    version = getattr(mod, "__version__", None)
    if adapter == "sqlite3":
        version = mod.sqlite_version  # the library, not the module
    if version is None and adapter in ("ours", "peer"):
        try:
            from importlib.metadata import version as dist_version
            version = dist_version("sophy")
        except Exception:
            version = "?"
    info["version"] = str(version)
    if adapter in ("ours", "peer"):
        # guard against running the wrong `sophy`: ours has create_database, 0.7.1 add_database
        is_ours = hasattr(mod.Sophia, "create_database")
        if is_ours != (adapter == "ours"):
            raise ImportError("imported sophy from %s is not the %s binding"
                              % (getattr(mod, "__file__", "?"), adapter))
        info["module_file"] = getattr(mod, "__file__", "?")
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--adapter", required=True, choices=adapter_names())
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dir", required=True, help="empty scratch directory for the stores")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated workload names")
    ap.add_argument("--memory", action="store_true", help="run the memory checks instead")
    ap.add_argument("--memory-rows", type=int, default=1_000_000)
    args = ap.parse_args()

    try:
        info = describe(args.adapter)
    except Exception as exc:
        print(json.dumps({"unavailable": "%s: %s" % (type(exc).__name__, exc)}))
        return 2

    os.makedirs(args.dir, exist_ok=True)
    if args.memory:
        import memory
        out = memory.run(ADAPTERS[args.adapter], args.dir, args.memory_rows)
    else:
        import workloads
        cls = ADAPTERS[args.adapter]
        only = [w for w in args.only.split(",") if w]
        out = workloads.run_all(cls, cls.native, args.n, args.dir, args.seed, only)
    out.update(info)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
