"""Everything the suite has to prepare before it can measure: interpreters, venvs, the C floor.

Each system that needs packages gets its own virtualenv under bench/ (git-ignored), because the
peer binding sophy 0.7.1 and ours are both named ``sophy``. A venv is reused when the stamp file
inside it records the same requirements; otherwise it is (re)installed. Anything that cannot be
had raises Unavailable with a one-line reason, which the report prints as "n/a".
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
LOGS = OUT / "logs"
C_SOURCE = BENCH / "c" / "bench_sophia.c"
C_BINARY = OUT / "bench_sophia"
# the engine's own flags (see build_ffi.py), so the floor is the engine as our module builds it
C_FLAGS = ["-O2", "-DNDEBUG", "-std=gnu99", "-pthread", "-w"]

PROBE = ("import json, platform, sys\n"
         "info = {'impl': platform.python_implementation().lower(),"
         " 'version': platform.python_version(), 'executable': sys.executable, 'ours': False}\n"
         "try:\n"
         "    import sophy\n"
         "    info['ours'] = hasattr(sophy.Sophia, 'create_database')\n"
         "except Exception:\n"
         "    pass\n"
         "print(json.dumps(info))\n")


class Unavailable(Exception):
    """A system cannot run here; str(exc) is the reason shown in the report."""


def probe(python: str) -> Dict[str, object]:
    """Implementation, version, and whether `import sophy` there gives our binding."""
    try:
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable("cannot run %s: %s" % (python, exc))
    if out.returncode != 0:
        raise Unavailable("cannot run %s: %s" % (python, _last_line(out.stderr)))
    return json.loads(out.stdout.strip().splitlines()[-1])


def base_interpreter(impl: str, override: Optional[str] = None) -> str:
    """The interpreter venvs of `impl` ('cpython' or 'pypy') are made from."""
    if override:
        return override
    if impl == "cpython" and sys.implementation.name == "cpython" and sys.prefix == sys.base_prefix:
        return sys.executable
    found = shutil.which("python3" if impl == "cpython" else "pypy3")
    if not found:
        raise Unavailable("no %s interpreter on PATH" % impl)
    return found


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    # pip's useful line is usually the last "error:"/"ERROR:" one, not the final hint
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    return (errors[-1] if errors else lines[-1] if lines else "no output")[:300]


def _run_logged(cmd: List[str], log: Path, timeout: int = 1800,
                env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(cmd))
        f.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, env=None if env is None else dict(os.environ, **env))
        f.write(proc.stdout)
    return proc


def venv_python(name: str) -> Path:
    return BENCH / (".venv-" + name) / "bin" / "python"


def native_fingerprint(root: Path = REPO) -> str:
    """Hash of what the compiled module is built from: an editable install must be rebuilt when
    it changes (Python files are picked up live, the C extension is not)."""
    digest = hashlib.sha256()
    files = [root / "build_ffi.py", root / "setup.py"] + sorted((root / "csrc").glob("*.[ch]")) \
        + sorted((root / "csrc" / "sophia" / "patches").glob("*.patch"))
    for path in files:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def snapshot_head(log=print) -> Tuple[Path, str]:
    """Export the committed HEAD (git archive) to bench/out/snapshot-<commit>; return it.

    Measuring a committed snapshot keeps a long run consistent while the working tree is being
    edited (an editable install sees half-finished edits, and a stale compiled module)."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=60, check=True
                                ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable("cannot read HEAD: %s" % exc)
    dest = OUT / ("snapshot-" + commit)
    for old in OUT.glob("snapshot-*"):  # only the latest export is ever needed again
        if old != dest and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    if not (dest / "pyproject.toml").exists():
        log("  exporting HEAD %s to %s" % (commit, dest.relative_to(REPO)))
        tmp = OUT / ("snapshot-%s.tar" % commit)
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(tmp), commit], check=True,
                       timeout=300)
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tmp) as tar:
            tar.extractall(dest)
        tmp.unlink()
    return dest, commit


def ensure_venv(name: str, base: str, requirements: List[str], log=print,
                fingerprint: str = "", env: Optional[Dict[str, str]] = None) -> str:
    """Create/refresh bench/.venv-<name> from `base` with `requirements`; return its python.

    The venv is reused while its stamp (base, requirements, `fingerprint`) is unchanged."""
    vdir = BENCH / (".venv-" + name)
    py = venv_python(name)
    stamp = vdir / ".bench-stamp"
    want = json.dumps({"base": base, "requirements": requirements, "fingerprint": fingerprint})
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return str(py)
    logfile = LOGS / ("venv-%s.log" % name)
    log("  preparing %s (log: %s)" % (vdir.relative_to(REPO), logfile.relative_to(REPO)))
    if not py.exists():
        proc = _run_logged([base, "-m", "venv", str(vdir)], logfile)
        if proc.returncode != 0:
            raise Unavailable("venv creation failed: %s" % _last_line(proc.stdout))
    proc = _run_logged([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
                       + requirements, logfile, env=env)
    if proc.returncode != 0:
        raise Unavailable("pip install %s failed: %s" % (" ".join(requirements),
                                                         _last_line(proc.stdout)))
    stamp.write_text(want)
    return str(py)


def _engine_dir(log=print) -> Path:
    """The pinned engine, with the repository's patch series applied, via csrc/engine_source.py.

    Loaded by path (as build_ffi.py does) so raw-c compiles exactly what our module compiles.
    """
    src = REPO / "csrc" / "engine_source.py"
    if not src.exists():
        raise Unavailable("csrc/engine_source.py not found")
    spec = importlib.util.spec_from_file_location("_bench_engine_source", src)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        mod.ensure_engine()
        return Path(mod.prepare_build_copy(OUT / "engine"))
    except Exception as exc:
        raise Unavailable("engine source unavailable: %s" % exc)


def compiler_version() -> str:
    """First line of `cc --version`, for the report."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or "cc"
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return cc


def build_c(log=print) -> str:
    """Compile bench/c/bench_sophia.c with the engine into bench/out/; return the binary."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise Unavailable("no C compiler")
    engine = _engine_dir(log)
    # prepare_build_copy rewrites the engine files every time, so staleness is judged by content
    digest = hashlib.sha256()
    for path in (C_SOURCE, engine / "sophia.c", engine / "sophia.h"):
        digest.update(path.read_bytes())
    digest.update(" ".join([cc] + C_FLAGS).encode())
    stamp = C_BINARY.with_suffix(".sha256")
    if C_BINARY.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return str(C_BINARY)
    log("  compiling %s" % C_BINARY.relative_to(REPO))
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = C_BINARY.with_suffix(".tmp")
    cmd = [cc] + C_FLAGS + ["-I", str(engine), str(C_SOURCE), str(engine / "sophia.c"),
                            "-o", str(tmp)]
    proc = _run_logged(cmd, LOGS / "build-c.log")
    if proc.returncode != 0:
        # a compile error is our bug, not a missing system: the caller reports it as a failure
        raise RuntimeError("compiling the C benchmark failed: %s" % _last_line(proc.stdout))
    tmp.replace(C_BINARY)
    stamp.write_text(digest.hexdigest())
    return str(C_BINARY)
