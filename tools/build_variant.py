#!/usr/bin/env python3
"""Build a variant of the extension (``SOPHY_BUILD=injection`` or ``asan``) into a private package
directory, without touching the installed (editable) package.

    python tools/build_variant.py injection      # prints the directory to put on sys.path
    python tools/build_variant.py asan

The result is ``build/variants/<interp-tag>-<variant>/sophy/``: a copy of ``src/sophy/*.py`` plus
``_sophia_ffi`` compiled from the current ``csrc/`` and ``build_ffi.py``.  Put the printed
directory first on ``sys.path`` (or ``PYTHONPATH``) and ``import sophy`` gets the variant.

Why a mirror tree: ``build_ffi.py`` writes its patched engine copy to ``<root>/build/engine``, and
the lead may be compiling from the same tree at the same moment.  So this script copies
``build_ffi.py`` and ``csrc/`` into a private root under the variant directory and exec's the
builder there; nothing under the real ``build/engine`` or ``src/`` is written.

Builds are cached: the extension is rebuilt only when the inputs (``csrc/**``, ``build_ffi.py``,
the variant, the interpreter) change; the Python modules are re-copied on every call (cheap), so
the variant always runs the current Python code.  A file lock serialises concurrent callers (the
CPython and PyPy suites may run at once).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
VARIANTS_DIR = ROOT / "build" / "variants"
KNOWN = ("injection", "asan")


def interp_tag() -> str:
    """``cpython-311`` / ``pypy39``: one build per interpreter ABI."""
    return sys.implementation.cache_tag or sys.implementation.name


def _inputs() -> Iterator[Path]:
    yield ROOT / "build_ffi.py"
    for p in sorted((ROOT / "csrc").rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            yield p


def input_digest(variant: str) -> str:
    """Digest of everything the compiled extension depends on."""
    h = hashlib.sha256()
    h.update(("%s|%s|%s" % (variant, interp_tag(), sysconfig.get_config_var("EXT_SUFFIX")))
             .encode())
    for p in _inputs():
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _copy_python(pkg: Path) -> None:
    src = ROOT / "src" / "sophy"
    pkg.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in src.glob("*.py")}
    for old in pkg.glob("*.py"):
        if old.name not in wanted:  # a module removed upstream must not linger
            old.unlink()
    for p in src.glob("*.py"):
        shutil.copyfile(p, pkg / p.name)


def _compile(variant: str, out: Path) -> Path:
    """Exec build_ffi.py in a private mirror root with SOPHY_BUILD=variant; return the .so."""
    mirror = out / "root"
    if mirror.exists():
        shutil.rmtree(mirror)
    mirror.mkdir(parents=True)
    shutil.copyfile(ROOT / "build_ffi.py", mirror / "build_ffi.py")
    shutil.copytree(ROOT / "csrc", mirror / "csrc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    old_env = os.environ.get("SOPHY_BUILD")
    old_cwd = os.getcwd()
    os.environ["SOPHY_BUILD"] = variant
    try:
        os.chdir(mirror)  # set_source names the helper source relative to the build root
        script = mirror / "build_ffi.py"
        ns = {"__file__": str(script), "__name__": "sophy_build_variant"}
        exec(compile(script.read_text(), str(script), "exec"), ns)
        # cffi chdirs into tmpdir and build_ffi.py names its C source relative to the root
        so = ns["ffibuilder"].compile(tmpdir=str(mirror), verbose=False)
    finally:
        os.chdir(old_cwd)
        if old_env is None:
            os.environ.pop("SOPHY_BUILD", None)
        else:
            os.environ["SOPHY_BUILD"] = old_env
    return Path(so)


def build(variant: str, quiet: bool = True) -> Path:
    """Make sure the variant is built and current; return the directory to put on sys.path."""
    if variant not in KNOWN:
        raise SystemExit("unknown variant %r; expected one of %s" % (variant, ", ".join(KNOWN)))
    out = VARIANTS_DIR / ("%s-%s" % (interp_tag(), variant))
    out.mkdir(parents=True, exist_ok=True)
    pkg = out / "sophy"
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _copy_python(pkg)
        digest = input_digest(variant)
        stamp = out / "digest"
        built = list(pkg.glob("_sophia_ffi*.so"))
        if not (built and stamp.exists() and stamp.read_text() == digest):
            if not quiet:
                print("building the %s variant for %s (about 30 s)..." % (variant, interp_tag()),
                      file=sys.stderr)
            so = _compile(variant, out)
            for stale in pkg.glob("_sophia_ffi*"):
                stale.unlink()
            shutil.copyfile(so, pkg / so.name)
            stamp.write_text(digest)
            shutil.rmtree(out / "root", ignore_errors=True)
    return out


def main(argv: list) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(build(argv[0], quiet=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
