"""The benchmark suite: one command runs every workload for every system.

    python bench/run.py                      # full suite, N=200,000, 3 runs, writes docs/
    python bench/run.py --n 50000 --runs 5 --systems ours,raw-c,lmdb
    python bench/run.py --memory             # also the memory checks (1,000,000 rows)
    python bench/run.py --smoke              # CI: tiny N, ours (this interpreter) + raw-c, no docs

Each system runs in its own process (bench/worker.py, or the C program bench/c/bench_sophia.c),
one fresh process and scratch store per run, runs interleaved across systems so slow drift of the
machine spreads over all of them. Results come back as JSON on stdout. Figures are medians over
runs. The exit status is non-zero when any workload or memory check failed (a skipped system is
not a failure; in smoke mode an unavailable `ours` or raw-c is).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import envs  # noqa: E402
import report  # noqa: E402
from envs import BENCH, OUT, REPO, Unavailable  # noqa: E402

# system -> (worker adapter or "c", interpreter kind); also the report's column order
SYSTEMS: Dict[str, Tuple[str, Optional[str]]] = {
    "raw-c": ("c", None),
    "ours-cpython": ("ours", "cpython"),
    "sophy-0.7.1-cpython": ("peer", "cpython"),
    "ours-pypy": ("ours", "pypy"),
    "sophy-0.7.1-pypy": ("peer", "pypy"),
    "lmdb": ("lmdb", "cpython"),
    "plyvel": ("plyvel", "cpython"),
    "sqlite3": ("sqlite3", "cpython"),
}
GROUPS = {"ours": ["ours-cpython", "ours-pypy"],
          "sophy-0.7.1": ["sophy-0.7.1-cpython", "sophy-0.7.1-pypy"],
          "peer": ["sophy-0.7.1-cpython", "sophy-0.7.1-pypy"],
          "all": list(SYSTEMS)}
# what each venv installs; ours gets the `bench` extra on CPython so matplotlib comes along
VENV_REQUIREMENTS = {
    "ours": lambda impl: ["-e", str(REPO) + ("[bench]" if impl == "cpython" else "")],
    "peer": lambda impl: ["sophy==0.7.1"],
    "lmdb": lambda impl: ["lmdb"],
    "plyvel": lambda impl: ["plyvel"],
}


def log(msg: str) -> None:
    """Progress goes to stderr, so stdout carries only the final table."""
    print(msg, file=sys.stderr, flush=True)


def parse_systems(spec: List[str]) -> List[str]:
    names: List[str] = []
    for item in spec:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            for name in GROUPS.get(part, [part]):
                if name not in SYSTEMS:
                    raise SystemExit("unknown system %r; known: %s"
                                     % (name, ", ".join(list(SYSTEMS) + list(GROUPS))))
                if name not in names:
                    names.append(name)
    return sorted(names, key=list(SYSTEMS).index)


class Runner:
    """How to start one system: a command line (without per-run arguments)."""

    def __init__(self, system: str, kind: str, python: Optional[str] = None,
                 binary: Optional[str] = None) -> None:
        self.system, self.kind, self.python, self.binary = system, kind, python, binary

    def command(self, n: int, directory: str, seed: int, memory: bool = False,
                memory_rows: int = 0) -> List[str]:
        if self.kind == "c":
            assert self.binary
            if memory:
                return [self.binary, "--churn", str(memory_rows), directory]
            return [self.binary, str(n), directory, str(seed)]
        assert self.python
        cmd = [self.python, str(BENCH / "worker.py"), "--adapter", self.kind, "--dir", directory]
        if memory:
            return cmd + ["--memory", "--memory-rows", str(memory_rows)]
        return cmd + ["--n", str(n), "--seed", str(seed)]


def resolve(systems: List[str], args: argparse.Namespace) -> Tuple[Dict[str, Runner], Dict[str, str]]:
    """Find or prepare an interpreter (venv) or binary for every system; collect skips."""
    runners: Dict[str, Runner] = {}
    skipped: Dict[str, str] = {}
    # --python interpreters that already have our package replace the 'ours' venvs
    preset: Dict[str, str] = {}
    for py in args.python or []:
        info = envs.probe(py)
        if not info["ours"]:
            raise SystemExit("--python %s: `import sophy` there is not this repository's package"
                             % py)
        preset[str(info["impl"])] = py
    for system in systems:
        kind, impl = SYSTEMS[system]
        try:
            if kind == "c":
                runners[system] = Runner(system, kind, binary=envs.build_c(log))
                continue
            assert impl is not None
            if kind == "ours" and impl in preset:
                runners[system] = Runner(system, kind, python=preset[impl])
                continue
            base = envs.base_interpreter(impl, args.cpython if impl == "cpython" else args.pypy)
            if kind == "sqlite3":  # stdlib: the base interpreter is all it needs
                runners[system] = Runner(system, kind, python=base)
                continue
            name = "%s-%s" % (kind, impl)
            reqs, fingerprint, env = VENV_REQUIREMENTS[kind](impl), "", None
            if kind == "ours":
                fingerprint = envs.native_fingerprint()
                if args.snapshot:
                    src, commit = args.snapshot_tree  # exported once per suite run
                    # a plain install of the committed tree; the engine files are git-ignored,
                    # so the build is pointed at the verified copy already in csrc/sophia/
                    reqs = [str(src) + ("[bench]" if impl == "cpython" else "")]
                    name, fingerprint = "ours-snapshot-%s" % impl, commit
                    engine = REPO / "csrc" / "sophia"
                    if (engine / "sophia.c").exists():
                        env = {"SOPHY_ENGINE_DIR": str(engine)}
            py = envs.ensure_venv(name, base, reqs, log, fingerprint=fingerprint, env=env)
            runners[system] = Runner(system, kind, python=py)
        except Unavailable as exc:
            skipped[system] = str(exc)
            log("  %s: n/a (%s)" % (system, exc))
    return runners, skipped


def run_one(runner: Runner, cmd: List[str], timeout: float) -> Dict[str, Any]:
    """Run one worker; return its JSON, or {"failed": reason}."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": "timed out after %.0f s" % timeout}
    with open(OUT / "logs" / ("worker-%s.log" % runner.system), "a") as f:
        f.write("$ %s\n%s" % (" ".join(map(shlex.quote, cmd)), proc.stderr))
    lines = proc.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else {}
    except ValueError:
        data = {}
    if "unavailable" in data:
        return data
    if proc.returncode != 0 or not data:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {"failed": "exit status %d: %s" % (proc.returncode, tail)}
    return data


def machine() -> Dict[str, str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            ram = "%.0f GiB" % (kb / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "ram": ram,
            "os": "%s %s" % (platform.system(), platform.release())}


def source_state() -> str:
    """The commit measured (ours is an editable install), and whether src/ had local changes."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src",
                                "csrc"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (head or "unknown") + (" (with uncommitted changes in src/ or csrc/)" if dirty else "")


def scratch_dir() -> str:
    OUT.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="data-", dir=str(OUT))


def throughput(runners: Dict[str, Runner], suite: Dict[str, Any], args: argparse.Namespace) -> None:
    """`runs` rounds over all systems; fills suite['runs'], ['errors'], ['skipped'], versions."""
    for r in range(args.runs):
        for system, runner in runners.items():
            if system in suite["skipped"]:
                continue
            directory = scratch_dir()
            t0 = time.perf_counter()
            try:
                data = run_one(runner, runner.command(args.n, directory, seed=r + 1),
                               args.timeout)
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            log("  run %d/%d %-20s %5.1f s" % (r + 1, args.runs, system, time.perf_counter() - t0))
            if "unavailable" in data:
                suite["skipped"][system] = data["unavailable"]
                continue
            errs = suite["errors"].setdefault(system, {})
            if "failed" in data:
                errs["(worker)"] = data["failed"]
                continue
            errs.update(data.get("errors", {}))
            suite["runs"].setdefault(system, []).append(
                {w: v["ops"] / v["seconds"] for w, v in data["results"].items()
                 if v["seconds"] > 0})
            if system == "raw-c":
                suite["meta"]["versions"][system] = "%s %s, engine Sophia 2.2 669d57b" % (
                    envs.compiler_version(), " ".join(envs.C_FLAGS))
            else:
                suite["meta"]["versions"][system] = "%s, %s %s" % (
                    data.get("interpreter"), "sophy" if runner.kind in ("ours", "peer")
                    else runner.kind, data.get("version"))


def memory(runners: Dict[str, Runner], suite: Dict[str, Any], args: argparse.Namespace) -> None:
    """Memory checks for `ours` systems, plus the raw-C baselines when raw-c is selected."""
    targets = [s for s in runners if SYSTEMS[s][0] in ("ours", "c") and s not in suite["skipped"]]
    for system in targets:
        runner = runners[system]
        # raw-c runs its two checks as two invocations; a worker runs both in one
        modes = ["--scan", "--churn"] if runner.kind == "c" else [None]
        merged: Dict[str, Any] = {"memory": {}, "errors": {}}
        for mode in modes:
            directory = scratch_dir()
            t0 = time.perf_counter()
            cmd = runner.command(0, directory, 0, memory=True, memory_rows=args.memory_rows)
            if mode:
                cmd[1] = mode
            try:
                data = run_one(runner, cmd, args.timeout)
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            log("  memory %-20s %s %5.1f s" % (system, mode or "", time.perf_counter() - t0))
            if "failed" in data:
                data = {"errors": {mode or "(worker)": data["failed"]}}
            merged["memory"].update(data.get("memory", {}))
            merged["errors"].update(data.get("errors", {}))
            if "unavailable" in data:
                merged["unavailable"] = data["unavailable"]
        suite["memory"][system] = merged


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="rows per store (default 200000)")
    ap.add_argument("--runs", type=int, default=None, help="runs per system (default 3)")
    ap.add_argument("--systems", action="append", default=[],
                    help="comma-separated systems or groups: %s, %s"
                    % (", ".join(SYSTEMS), ", ".join(GROUPS)))
    ap.add_argument("--smoke", action="store_true",
                    help="N=2000, 1 run, ours (this interpreter) + raw-c; never writes docs/")
    ap.add_argument("--python", action="append",
                    help="an interpreter that already has our sophy installed (repeatable); "
                    "used for ours on its implementation instead of a venv")
    ap.add_argument("--snapshot", action="store_true",
                    help="measure ours from the committed HEAD (git archive, plain install) "
                    "instead of an editable install of the working tree")
    ap.add_argument("--cpython", help="base CPython for venvs (default: python3)")
    ap.add_argument("--pypy", help="base PyPy for venvs (default: pypy3)")
    ap.add_argument("--memory", action="store_true", help="also run the memory checks")
    ap.add_argument("--memory-only", action="store_true", help="run only the memory checks")
    ap.add_argument("--memory-rows", type=int, default=1_000_000)
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker process")
    args = ap.parse_args(argv)

    if args.smoke:
        args.n = args.n or 2000
        args.runs = args.runs or 1
        args.no_docs = True
        args.memory_rows = min(args.memory_rows, 20_000)
        impl = "pypy" if platform.python_implementation() == "PyPy" else "cpython"
        systems = parse_systems(args.systems or ["raw-c", "ours-" + impl])
        args.python = [sys.executable]  # import sophy from the running interpreter, no venvs
    else:
        args.n = args.n or 200_000
        args.runs = args.runs or 3
        systems = parse_systems(args.systems or ["all"])
    if args.n < 1000:
        raise SystemExit("--n must be at least 1000 (prefix scans read 1,000 rows)")

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "logs").mkdir(exist_ok=True)
    if args.snapshot:
        # HEAD moves while others commit: export it once so every interpreter measures one commit
        try:
            args.snapshot_tree = envs.snapshot_head(log)
        except Unavailable as exc:
            log("error: --snapshot: %s" % exc)
            return 1
    command = "python bench/run.py " + " ".join(map(shlex.quote, argv if argv is not None
                                                      else sys.argv[1:]))
    suite: Dict[str, Any] = {
        "meta": dict(machine(), command=command.strip(),
                     source=("%s (clean export of HEAD, plain install)" % args.snapshot_tree[1])
                     if args.snapshot else source_state(), n=args.n, runs=args.runs,
                     date=datetime.datetime.now(datetime.timezone.utc)
                     .strftime("%Y-%m-%d %H:%M UTC"), versions={}),
        "systems": systems, "skipped": {}, "runs": {}, "errors": {}, "memory": {}}
    started = time.perf_counter()
    suite["meta"]["loadavg_start"] = "%.2f %.2f %.2f" % os.getloadavg()
    log("preparing systems: %s" % ", ".join(systems))
    try:
        runners, skipped = resolve(systems, args)
    except RuntimeError as exc:  # e.g. the C program does not compile: a real failure
        log("error: %s" % exc)
        return 1
    suite["skipped"].update(skipped)
    if args.smoke and skipped:
        log("smoke: required system unavailable: %s" % skipped)
        return 1
    if not args.memory_only:
        log("running %d round(s), N=%d" % (args.runs, args.n))
        throughput(runners, suite, args)
    if args.memory or args.memory_only:
        log("memory checks, %d rows/cycles" % args.memory_rows)
        memory(runners, suite, args)
    suite["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    # other work on the machine skews figures; the report shows how busy it was
    suite["meta"]["loadavg_end"] = "%.2f %.2f %.2f" % os.getloadavg()
    with open(OUT / "results.json", "w") as f:
        json.dump(suite, f, indent=1)

    chart = None
    if not args.no_docs and not args.memory_only:
        chart = draw_chart(runners)
    text = report.markdown(suite, chart)
    if not args.no_docs:
        with open(REPO / "docs" / "benchmarks.md", "w") as f:
            f.write(text)
        log("wrote docs/benchmarks.md" + (" and docs/img/benchmarks.png" if chart else ""))
    print(text)

    failed = ["%s/%s" % (s, w) for s, e in suite["errors"].items() for w in e]
    failed += report.memory_failed(suite)
    if args.smoke:
        # a smoke run must have measured every workload of every system it asked for
        failed += ["%s (no results)" % s for s in systems if not suite["runs"].get(s)
                   and not args.memory_only]
    if failed:
        log("FAILED: %s" % ", ".join(failed))
        return 1
    log("done in %.0f s" % suite["meta"]["elapsed_s"])
    return 0


def draw_chart(runners: Dict[str, Runner]) -> Optional[str]:
    """Render the PNG with an interpreter that has matplotlib; None (and a note) if none has."""
    img = REPO / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    candidates = [sys.executable]
    ours = runners.get("ours-cpython")
    if ours and ours.python:
        candidates.append(ours.python)
    for py in candidates:
        ok = subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0
        if ok:
            break
    else:
        try:
            py = envs.ensure_venv("plot-cpython", envs.base_interpreter("cpython"),
                                  ["matplotlib"], log)
        except Unavailable as exc:
            log("no chart: %s" % exc)
            return None
    proc = subprocess.run([py, str(BENCH / "plot.py"), str(OUT / "results.json"),
                           str(img / "benchmarks.png")], capture_output=True, text=True)
    if proc.returncode != 0:
        log("no chart: %s" % (proc.stderr.strip().splitlines() or ["?"])[-1])
        return None
    return "img/benchmarks.png"


if __name__ == "__main__":
    sys.exit(main())
