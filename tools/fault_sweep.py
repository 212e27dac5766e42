#!/usr/bin/env python3
"""Fault-injection sweep: fail the engine's N-th allocation / file operation over a whole workflow.

    python tools/fault_sweep.py              # the bounded sweep the test suite runs (N = 0..40)
    python tools/fault_sweep.py --full       # N = 0.. until a run sees no fault, into an
                                             # existing environment and into its creation
                                             # (kind@create), plus the injection points
    python tools/fault_sweep.py --kinds oom --max 300

The engine's counters (``debug.error_injection.oom`` / ``.io``, set before ``open``) make the
N-th allocation through the environment's allocator (or the N-th file operation through its VFS)
fail *and every later one too* (``fail_from`` in ss_ooma.c / ss_testvfs.c).  So each run is:
a healthy workflow until the N-th event, then a cascade of failures.  The named points
(``si_compaction_0..4``, ``sd_build_0``, ``si_recover_0``, compiled in by
``SOPHY_BUILD=injection``) put the engine into its malfunction state in the middle of a
checkpoint/compaction or recovery.

Each run (one worker subprocess runs many, importing the injection variant built by
tools/build_variant.py) records per step either ``ok`` or the Python exception type, then opens
the directory again *without* injection and checks every write that returned normally is there
(a write that raised may or may not have landed).  A worker that dies from a signal or hangs is a
failure: the sweep restarts a worker from the next run and reports the crash.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

HERE = Path(__file__).resolve().parent
POINTS = ("sd_build_0", "si_compaction_0", "si_compaction_1", "si_compaction_2",
          "si_compaction_3", "si_compaction_4", "si_recover_0")
RUN_TIMEOUT = 60.0   # seconds for one worker with no progress: a hang is a failure
_ABSENT = "<absent>"


# ----------------------------------------------------------------------------------------------
# worker side (runs in the subprocess, with the injection variant first on sys.path)

class Model:
    """What the database may contain: key -> set of possible values (_ABSENT = not there).

    A write that returned normally makes its value the only possibility; one that raised adds
    its value to what was possible before (it may or may not have reached the log)."""

    def __init__(self) -> None:
        self.possible: Dict[str, Set[str]] = {}
        # failed multi-key writes (batches, transactions): all of it or none of it may be there
        # (their keys are written once in the workflow, so the new value identifies them)
        self.groups: List[Dict[str, str]] = []

    def apply(self, writes: Dict[str, str], ok: bool) -> None:
        for k, v in writes.items():
            before = self.possible.get(k, {_ABSENT})
            self.possible[k] = {v} if ok else before | {v}
        if not ok and len(writes) > 1:
            self.groups.append(dict(writes))

    def check(self, actual: Dict[str, str]) -> List[str]:
        """Human-readable differences between ``actual`` and what is allowed."""
        bad = []
        for k, allowed in sorted(self.possible.items()):
            got = actual.get(k, _ABSENT)
            if got not in allowed:
                bad.append("%s: got %r, allowed %s" % (k, got, sorted(allowed)))
        for k in sorted(set(actual) - set(self.possible)):
            bad.append("%s: unexpected key with %r" % (k, actual[k]))
        for group in self.groups:
            landed = [k for k, v in group.items() if actual.get(k, _ABSENT) == v]
            if landed and len(landed) != len(group):
                bad.append("failed batch/transaction half there: %s of %s"
                           % (sorted(landed), sorted(group)))
        return bad


def _workflow(sophy: Any, path: str, kind: str, n: Any, steps: List[Tuple[str, str]],
              model: Model) -> None:
    """One injected session plus one injected reopen; every step's outcome goes to ``steps``."""
    Sophia = sophy.Sophia

    def step(name: str, fn: Callable[[], Any], writes: Optional[Dict[str, str]] = None) -> Any:
        # on stderr before running it: if the process dies, the parent reports this step
        print("STEP %s %s" % (name, steps[-1][1] if steps else "-"), file=sys.stderr, flush=True)
        try:
            out = fn()
        except Exception as exc:  # the point: every fault must surface as an exception
            steps.append((name, type(exc).__name__))
            if writes:
                model.apply(writes, ok=False)
            return None
        steps.append((name, "ok"))
        if writes:
            model.apply(writes, ok=True)
        return out

    def inject(env: Any) -> None:
        if kind == "point":
            env.config["debug.error_injection.%s" % n] = 1
        else:
            env.config["debug.error_injection.%s" % kind] = n

    for session in ("first", "reopen"):
        env = Sophia(path, auto_open=False, scheduler_threads=0)
        db = env.create_database("kv", "string")
        env.create_database("multi", ("string", "u64"))
        inject(env)
        step(session + ":open", env.open)
        tag = "a" if session == "first" else "b"
        for i in range(12):
            k, v = "%s%03d" % (tag, i), "value-%s-%d" % (tag, i) * 3
            step(session + ":set", lambda k=k, v=v: db.__setitem__(k, v), {k: v})
        batch = {"%sbatch%02d" % (tag, i): "batch-%d" % i for i in range(8)}
        step(session + ":update", lambda: db.update(batch), batch)

        def txn_body() -> None:
            with db.transaction() as txn:
                for k, v in tx_writes.items():
                    txn[k] = v
                txn[env["multi"]][("m", 1)] = "multi"
                txn.get("%s000" % tag)
        tx_writes = {"%stx%02d" % (tag, i): "tx-%d" % i for i in range(5)}
        step(session + ":transaction", txn_body, tx_writes)
        step(session + ":get", lambda: [db.get("%s%03d" % (tag, i)) for i in range(12)])
        step(session + ":cursor", lambda: list(db.cursor(">", "%s003" % tag)))

        def view_body() -> None:
            with db.view("v") as view:
                list(view)
                view.get("%s001" % tag)
        step(session + ":view", view_body)
        step(session + ":delete", lambda: db.__delitem__("%s001" % tag),
             {"%s001" % tag: _ABSENT})
        step(session + ":checkpoint", env.scheduler_checkpoint)
        for _ in range(3):
            step(session + ":scheduler_run", env.scheduler_run)
        step(session + ":compact", env.compact)
        k, v = "%slate" % tag, "after-checkpoint"
        step(session + ":set", lambda: db.__setitem__(k, v), {k: v})
        step(session + ":status", lambda: env.status)
        step(session + ":close", env.close)


def _verify(sophy: Any, path: str, model: Model) -> Tuple[bool, List[str]]:
    """Clean reopen (no injection): the contents must match the model."""
    try:
        env = sophy.Sophia(path, auto_open=False, scheduler_threads=0)
        db = env.create_database("kv", "string")
        env.create_database("multi", ("string", "u64"))
        env.open()
    except Exception as exc:
        return False, ["clean reopen failed: %s: %s" % (type(exc).__name__, exc)]
    try:
        actual = dict(db.items())
        db["probe"] = "x"  # and it is writable
        if db["probe"] != "x":
            return False, ["probe write not readable"]
        del db["probe"]
    finally:
        env.close()
    bad = model.check(actual)
    return not bad, bad


def _setup(sophy: Any, path: str, model: Model) -> None:
    """Create the environment without injection and commit a few rows (they must survive)."""
    env = sophy.Sophia(path, auto_open=False, scheduler_threads=0)
    db = env.create_database("kv", "string")
    env.create_database("multi", ("string", "u64"))
    env.open()
    rows = {"s%03d" % i: "setup-%d" % i for i in range(10)}
    db.update(rows)
    model.apply(rows, ok=True)
    env.close()


def run_one(sophy: Any, kind: str, n: Any) -> Dict[str, Any]:
    """One run; ``kind`` ``oom``/``io``/``point`` injects into an existing environment,
    ``oom@create``/``io@create`` into the very first open (the environment's creation)."""
    path = tempfile.mkdtemp(prefix="sophy-fault-")
    steps: List[Tuple[str, str]] = []
    model = Model()
    base, _, when = kind.partition("@")
    try:
        if when != "create":
            _setup(sophy, path, model)
        _workflow(sophy, path, base, n, steps, model)
        ok, problems = _verify(sophy, path, model)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return {"kind": kind, "n": n, "steps": steps, "verified": ok, "problems": problems,
            "faulted": any(o != "ok" for _, o in steps)}


def worker(variant_dir: str, runs: List[Tuple[str, Any]]) -> None:
    """Run each (kind, n), one JSON line per run on stdout (flushed: the parent follows it)."""
    variant_dir = os.path.abspath(variant_dir)
    sys.path.insert(0, variant_dir)
    import sophy  # the injection variant
    assert os.path.abspath(sophy.__file__).startswith(variant_dir), sophy.__file__
    for kind, n in runs:
        print("START %s %s" % (kind, n), flush=True)
        print(json.dumps(run_one(sophy, kind, n)), flush=True)


# ----------------------------------------------------------------------------------------------
# parent side

def variant_dir(python: str = sys.executable) -> str:
    """Build (or reuse) the injection variant for ``python`` and return its directory."""
    out = subprocess.run([python, str(HERE / "build_variant.py"), "injection"],
                         check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


def sweep(runs: List[Tuple[str, Any]], python: str = sys.executable,
          vdir: Optional[str] = None) -> List[Dict[str, Any]]:
    """Run ``runs`` in as few worker processes as possible; a crash or hang is recorded as that
    run's result (``crashed``: the signal or 'timeout') and a new worker continues after it."""
    vdir = vdir or variant_dir(python)
    results: List[Dict[str, Any]] = []
    todo = list(runs)
    while todo:
        proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--worker", vdir, json.dumps(todo)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        current: Optional[Tuple[str, Any]] = None
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT + 5 * len(todo))
            hung = False
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            hung = True
        done = 0
        for line in out.splitlines():
            if line.startswith("START "):
                _, kind, n = line.split(" ", 2)
                current = (kind, int(n) if n.isdigit() else n)  # noqa: F841 (debugging aid)
            elif line.startswith("{"):
                results.append(json.loads(line))
                done += 1
                current = None
        todo = todo[done:]
        if proc.returncode == 0 and not hung and not todo:
            break
        # the worker died (signal, exception or hang) during todo[0]
        failed = todo.pop(0)
        last = [ln for ln in err.splitlines() if ln.startswith("STEP ")][-3:]
        tail = [ln for ln in err.splitlines() if not ln.startswith("STEP ")][-5:]
        results.append({"kind": failed[0], "n": failed[1], "steps": [], "verified": False,
                        "faulted": True, "problems": last + tail,
                        "crashed": "timeout" if hung else "exit status %s" % proc.returncode})
        del current
    return results


def summarize(results: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """Figures: runs, runs with a fault, outcome counts by exception type, failures."""
    results = list(results)
    outcomes: collections.Counter = collections.Counter()
    for r in results:
        for _, o in r["steps"]:
            outcomes[o] += 1
    return {
        "runs": len(results),
        "faulted_runs": sum(1 for r in results if r["faulted"]),
        "outcomes": dict(outcomes.most_common()),
        "crashed": [(r["kind"], r["n"], r["crashed"], r["problems"][:4]) for r in results
                    if r.get("crashed")],
        "unverified": [(r["kind"], r["n"], r["problems"][:3]) for r in results
                       if not r["verified"] and not r.get("crashed")],
    }


def full_runs(kinds: List[str], python: str, vdir: str, limit: int) -> List[Dict[str, Any]]:
    """N = 0, 1, 2, ... for each kind until a run completes with no fault at all."""
    results: List[Dict[str, Any]] = []
    chunk = 25
    for kind in kinds:
        start = 0
        while start < limit:
            part = sweep([(kind, n) for n in range(start, min(start + chunk, limit))], python,
                         vdir)
            results.extend(part)
            if any(not r["faulted"] for r in part):
                break
            start += chunk
    return results


def main(argv: List[str]) -> int:
    if argv[:1] == ["--worker"]:
        worker(argv[1], [tuple(x) for x in json.loads(argv[2])])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true",
                    help="sweep N until a run sees no fault, and every injection point")
    ap.add_argument("--kinds", default="oom,io", help="comma-separated: oom, io")
    ap.add_argument("--max", type=int, default=40, help="largest N (bounded sweep) or the "
                    "upper limit of N (--full, default 5000)")
    ap.add_argument("--python", default=sys.executable, help="interpreter to sweep")
    ap.add_argument("--json", help="write every run's record to this file")
    args = ap.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    vdir = variant_dir(args.python)
    if args.full:
        limit = args.max if args.max != 40 else 5000
        kinds = kinds + [k + "@create" for k in kinds]
        results = full_runs(kinds, args.python, vdir, limit)
        results += sweep([("point", p) for p in POINTS], args.python, vdir)
    else:
        results = sweep([(k, n) for k in kinds for n in range(args.max + 1)], args.python, vdir)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    for kind in kinds + ["point"]:
        mine = [r for r in results if r["kind"] == kind]
        if not mine:
            continue
        s = summarize(mine)
        ns = [r["n"] for r in mine]
        print("%-5s runs %d (N %s..%s), runs with a fault %d" % (
            kind, s["runs"], ns[0], ns[-1], s["faulted_runs"]))
        for outcome, count in s["outcomes"].items():
            print("        %-26s %6d steps" % (outcome, count))
        print("      crashed/hung: %s" % (s["crashed"] or "none"))
        print("      data check failures: %s" % (s["unverified"] or "none"))
    total = summarize(results)
    print("total: %d runs, %d with a fault, %d crashed, %d failed the data check"
          % (total["runs"], total["faulted_runs"], len(total["crashed"]),
             len(total["unverified"])))
    return 1 if total["crashed"] or total["unverified"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
