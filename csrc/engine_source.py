"""Find, verify and patch the pinned Sophia 2.2 amalgamation for the build.

Loaded by path from ``build_ffi.py`` (and from the build tests); it must not import ``sophy``.
Order of places looked in: ``$SOPHY_ENGINE_DIR``, ``csrc/sophia/``, then the registry sdist of
``sophy==0.7.1`` fetched with the ordinary pip client.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

VERSION = "2.2"
BUILD_ID = "669d57b"
SHA256: Dict[str, str] = {
    "sophia.c": "cad2c05cfc26e03d260124d929442dd534922388294f8a2ab43cd033617a8571",
    "sophia.h": "cfbc7646955e6ed0098efcf6062fa62372d721dce63f2b5a0e81f864c6ca9fc8",
}
REGISTRY_PACKAGE = "sophy==0.7.1"
ENV_DIR = "SOPHY_ENGINE_DIR"

HERE = Path(__file__).resolve().parent
ENGINE_DIR = HERE / "sophia"
PATCH_DIR = ENGINE_DIR / "patches"

HOW_TO_PROVIDE = (
    "Provide the Sophia 2.2 amalgamation (build %s) by one of: (1) set %s to a directory holding "
    "sophia.c and sophia.h with the sha256 sums listed in csrc/sophia/README.md; (2) copy them into "
    "csrc/sophia/; (3) allow the build to reach the package registry, where the source "
    "distribution of %s carries them as src/sophia.c and src/sophia.h."
    % (BUILD_ID, ENV_DIR, REGISTRY_PACKAGE)
)


class EngineSourceError(RuntimeError):
    """The engine source could not be found, verified or patched."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_dir(directory: Path, sums: Optional[Dict[str, str]] = None) -> None:
    """Raise EngineSourceError unless ``directory`` holds both files with the pinned sums."""
    sums = SHA256 if sums is None else sums
    for name, want in sums.items():
        path = directory / name
        if not path.is_file():
            raise EngineSourceError("%s is missing. %s" % (path, HOW_TO_PROVIDE))
        got = sha256_of(path)
        if got != want:
            raise EngineSourceError(
                "%s has sha256 %s, expected %s (the pinned Sophia %s build %s); refusing to build "
                "with it. %s" % (path, got, want, VERSION, BUILD_ID, HOW_TO_PROVIDE)
            )


def _has_files(directory: Path) -> bool:
    return all((directory / n).is_file() for n in SHA256)


def _fetch_from_registry(dest: Path) -> None:
    """Download the registry sdist with pip and extract only sophia.c / sophia.h into dest."""
    with tempfile.TemporaryDirectory(prefix="sophy-engine-") as tmp:
        # --no-binary for this package only: build requirements may still come as wheels
        # (with :all: pip compiles Cython from source just to read metadata: minutes).
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "sophy",
               "--disable-pip-version-check", "-d", tmp, REGISTRY_PACKAGE]
        try:
            subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except (OSError, subprocess.CalledProcessError) as exc:
            out = getattr(exc, "stdout", b"") or b""
            raise EngineSourceError(
                "could not fetch %s with pip (%s): %s\n%s"
                % (REGISTRY_PACKAGE, " ".join(cmd), exc, out.decode("utf-8", "replace")[-2000:]
                   + "\n" + HOW_TO_PROVIDE)
            ) from exc
        archives = [p for p in Path(tmp).iterdir() if p.name.endswith(".tar.gz")]
        if not archives:
            raise EngineSourceError("pip produced no sdist for %s. %s"
                                    % (REGISTRY_PACKAGE, HOW_TO_PROVIDE))
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                if len(parts) == 3 and parts[1] == "src" and parts[2] in SHA256 and member.isfile():
                    src = tar.extractfile(member)
                    assert src is not None
                    with open(dest / parts[2], "wb") as out_f:
                        shutil.copyfileobj(src, out_f)


def ensure_engine(engine_dir: Path = ENGINE_DIR) -> Path:
    """Make ``engine_dir`` hold the verified pristine engine files; return the directory."""
    override = os.environ.get(ENV_DIR)
    if override:
        src = Path(override)
        verify_dir(src)
        if src.resolve() != engine_dir.resolve():
            engine_dir.mkdir(parents=True, exist_ok=True)
            for name in SHA256:
                shutil.copyfile(src / name, engine_dir / name)
    elif not _has_files(engine_dir):
        with tempfile.TemporaryDirectory(prefix="sophy-engine-x-") as tmp:
            _fetch_from_registry(Path(tmp))
            verify_dir(Path(tmp))  # verify before anything lands in the tree
            engine_dir.mkdir(parents=True, exist_ok=True)
            for name in SHA256:
                shutil.copyfile(Path(tmp) / name, engine_dir / name)
    verify_dir(engine_dir)
    return engine_dir


# --- a small unified-diff applier (no dependency on patch(1) or git being installed) ---

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _split_files(text: str) -> List[tuple]:
    """Return [(target_name, [hunk_lines...]), ...] from a unified diff."""
    files: List[tuple] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            target = lines[i + 1][4:].strip().split("\t")[0]
            target = target.split("/")[-1]  # patches name the file; directories do not matter
            files.append((target, []))
            i += 2
            continue
        if files:
            files[-1][1].append(lines[i])
        i += 1
    return files


def _locate(old: List[str], expect: List[str], start: int, pos: int) -> Optional[int]:
    """Where the hunk's old lines are: at the stated line or, as patch(1) does, the nearest
    offset from it (earlier patches of the series move lines), never before ``pos``."""
    n = len(expect)
    for delta in range(0, len(old) + 1):
        for at in ((start + delta, start - delta) if delta else (start,)):
            if pos <= at <= len(old) - n and old[at:at + n] == expect:
                return at
    return None


def apply_patch_text(text: str, directory: Path, patch_name: str = "<patch>") -> None:
    """Apply one unified diff to files in ``directory``; exact context match or EngineSourceError."""
    files = _split_files(text)
    if not files:
        raise EngineSourceError("patch %s contains no file changes" % patch_name)
    for target, body in files:
        path = directory / target
        if not path.is_file():
            raise EngineSourceError("patch %s: target %s does not exist" % (patch_name, target))
        old = path.read_text(encoding="latin-1").splitlines(keepends=True)
        new: List[str] = []
        pos = 0  # index into old
        i = 0
        while i < len(body):
            m = _HUNK.match(body[i])
            if not m:
                i += 1
                continue
            start = int(m.group(1)) - 1 if int(m.group(2) or 1) else int(m.group(1))
            i += 1
            expect: List[str] = []
            repl: List[str] = []
            while i < len(body) and not body[i].startswith("@@"):
                line = body[i]
                if line.startswith("\\"):
                    i += 1
                    continue
                tag, content = line[:1], line[1:]
                if tag in (" ", ""):
                    content = content if tag else "\n"
                    expect.append(content)
                    repl.append(content)
                elif tag == "-":
                    expect.append(content)
                elif tag == "+":
                    repl.append(content)
                else:
                    break
                i += 1
            found = _locate(old, expect, start, pos)
            if found is None:
                raise EngineSourceError(
                    "patch %s does not apply to %s at line %d (context differs)"
                    % (patch_name, target, start + 1))
            start = found
            new.extend(old[pos:start])
            new.extend(repl)
            pos = start + len(expect)
        new.extend(old[pos:])
        path.write_text("".join(new), encoding="latin-1")


def patch_series(patch_dir: Path = PATCH_DIR) -> List[Path]:
    return sorted(p for p in patch_dir.glob("*.patch") if p.is_file()) if patch_dir.is_dir() else []


def prepare_build_copy(out_dir: Path, engine_dir: Path = ENGINE_DIR,
                       patch_dir: Path = PATCH_DIR) -> Path:
    """Copy the verified engine to ``out_dir`` and apply the patch series in order."""
    verify_dir(engine_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SHA256:
        shutil.copyfile(engine_dir / name, out_dir / name)
    for patch in patch_series(patch_dir):
        apply_patch_text(patch.read_text(encoding="latin-1"), out_dir, patch.name)
    return out_dir
