"""Crash durability: a writer process is killed with SIGKILL at random moments, many times over
one directory; after every kill the environment reopens and must hold exactly the acknowledged
history (plus, possibly, the one commit that was in flight).

The writer (this file run with ``--child``) performs a deterministic sequence of operations —
single writes and deletes, two-database transactions that write the same sequence number to
both databases, ``update()`` batches that stamp N keys with the operation number, and the odd
checkpoint — and prints each operation's number on stdout after the call returns. The parent
keeps a model of the acknowledged state. After each kill it reopens the directory and compares
every row of every database with the model: equal to the model, or to the model plus the
in-flight operation, and nothing else (a transaction or batch seen by halves matches neither).

    python stress/crash.py --rounds 300            # prints the figures
    python stress/crash.py --rounds 20 --seed 7 --path /tmp/crashdir

``run_rounds`` is what tests/test_crash.py calls with a small number of rounds.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
DBS = [("a", "string"), ("b", "u64"), ("c", "string")]
KEYS = 40                # key space of single writes: overwrites and deletes hit live keys
ROTATE_WM = 300          # log records per file: rotations happen during the run
Model = Tuple[Dict[Any, Any], Dict[Any, Any], Dict[Any, Any]]


def op_for(seed: int, i: int) -> Tuple[Any, ...]:
    """Operation number ``i`` of the writer: the same in the child and the parent."""
    r = random.Random("%d:%d" % (seed, i))
    x = r.random()
    if x < 0.35:
        return ("set", "s%02d" % r.randrange(KEYS), "%d:" % i + "x" * r.choice((0, 10, 200, 3000)))
    if x < 0.45:
        return ("del", "s%02d" % r.randrange(KEYS))
    if x < 0.72:
        return ("txn", r.randrange(KEYS))
    if x < 0.98:
        return ("batch", r.randrange(2, 16))
    return ("checkpoint",)


def apply_model(model: Model, op: Tuple[Any, ...], i: int) -> Model:
    """The model after operation ``i`` (a new model; the old one is kept)."""
    a, b, c = dict(model[0]), dict(model[1]), dict(model[2])
    kind = op[0]
    if kind == "set":
        a[op[1]] = op[2]
    elif kind == "del":
        a.pop(op[1], None)
    elif kind == "txn":
        a["seq"] = str(i)
        b[1] = str(i)
        b[100 + op[1]] = str(i)
    elif kind == "batch":
        for j in range(op[1]):
            c["batch-%02d" % j] = str(i)
    return a, b, c


def apply_env(env: Any, op: Tuple[Any, ...], i: int) -> None:
    a, b, c = env["a"], env["b"], env["c"]
    kind = op[0]
    if kind == "set":
        a[op[1]] = op[2]
    elif kind == "del":
        del a[op[1]]
    elif kind == "txn":
        with env.transaction() as txn:
            txn[a]["seq"] = str(i)
            txn[b][1] = str(i)
            txn[b][100 + op[1]] = str(i)
    elif kind == "batch":
        c.update(("batch-%02d" % j, str(i)) for j in range(op[1]))
    else:
        env.scheduler_checkpoint()


def child(path: str, start: int, seed: int) -> None:
    """The writer: runs until killed (or for 200k operations)."""
    from sophy import Sophia
    env = Sophia(path, databases=DBS, log_rotate_wm=ROTATE_WM)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for i in range(start, start + 200000):
        apply_env(env, op_for(seed, i), i)
        out.write("%d\n" % i)  # the acknowledgement: the call above has returned
        out.flush()
    env.close()


def read_state(path: str, repairs: Optional[List[str]] = None) -> Model:
    """Every row of every database. With ``repairs`` (a list), an open refused for a corrupted
    log is repaired with ``repair_log`` and retried, and what the repair did is appended;
    without it the refusal is a failure."""
    from sophy import Sophia, SophiaError
    try:
        env = Sophia(path, databases=DBS, log_rotate_wm=ROTATE_WM)
    except SophiaError as exc:
        if repairs is None:
            raise CrashFailure("reopening failed: %s" % exc) from None
        from sophy._repair import repair_log
        report = repair_log(path)
        if report.clean:
            raise CrashFailure("reopening failed with an intact log: %s" % exc) from None
        repairs.extend(report.problems)
        env = Sophia(path, databases=DBS, log_rotate_wm=ROTATE_WM)
    try:
        return dict(env["a"]), dict(env["b"]), dict(env["c"])
    finally:
        env.close()


def describe_difference(got: Model, want: Model) -> str:
    out = []
    for name, g, w in zip("abc", got, want):
        for k in sorted(set(g) | set(w), key=repr):
            if g.get(k) != w.get(k):
                out.append("%s[%r]: got %r, want %r" % (name, k, g.get(k, "<missing>")[:40]
                                                        if isinstance(g.get(k), str) else
                                                        g.get(k, "<missing>"),
                                                        w.get(k, "<missing>")))
    return "; ".join(out[:8])


class CrashFailure(AssertionError):
    """The reopened state matched neither the acknowledged model nor model + in-flight."""


@dataclass
class Figures:
    rounds: int = 0
    acknowledged: int = 0          # operations acknowledged by a writer, all checked
    in_flight_landed: int = 0      # rounds whose unacknowledged operation turned out durable
    kills_before_ready: int = 0    # killed while starting / recovering
    kills_at_ready: int = 0        # killed during the first operation
    log_files: int = 0             # log files at the end (rotations happened)
    max_log_files: int = 0
    seconds: float = 0.0
    repairs: List[str] = field(default_factory=list)  # what repair_log cut, when it was needed
    per_kind: Dict[str, int] = field(default_factory=dict)


def run_rounds(path: str, rounds: int, seed: int = 1, max_acks: int = 300,
               python: Optional[str] = None, verbose: bool = False,
               repair: bool = True) -> Figures:
    """Kill a writer ``rounds`` times over ``path``, checking the whole state after each.

    A kill during log rotation can leave an empty newest log file that the engine refuses to
    open; with ``repair`` such opens are repaired (recorded in ``Figures.repairs``) and the
    model check still applies, without it they fail the run."""
    rng = random.Random(seed)
    figures = Figures()
    model: Model = ({}, {}, {})
    next_op = 0
    t0 = time.monotonic()
    env_vars = dict(os.environ)
    env_vars["PYTHONPATH"] = SRC + os.pathsep + env_vars.get("PYTHONPATH", "")
    for round_no in range(rounds):
        x = rng.random()
        mode = "early" if x < 0.05 else "ready" if x < 0.15 else "acks"
        target = rng.randint(1, max_acks)
        errfile = tempfile.TemporaryFile()
        proc = subprocess.Popen([python or sys.executable, os.path.abspath(__file__), "--child",
                                 path, str(next_op), str(seed)], stdout=subprocess.PIPE,
                                stderr=errfile, env=env_vars)
        assert proc.stdout is not None
        acked: List[int] = []
        ready = False
        try:
            if mode != "early":
                while True:
                    line = proc.stdout.readline()
                    if not line:
                        break
                    if line == b"ready\n":
                        ready = True
                        if mode == "ready":
                            break
                        continue
                    acked.append(int(line))
                    if len(acked) >= target:
                        break
        finally:
            proc.send_signal(signal.SIGKILL)
            # read through the same buffered reader: readline() may have read ahead
            rest = proc.stdout.read()
            proc.wait(timeout=60)
            errfile.seek(0)
            err = errfile.read()
            errfile.close()
        if proc.returncode != -signal.SIGKILL:
            raise CrashFailure("round %d: writer ended with %s before the kill: %s"
                               % (round_no, proc.returncode, err.decode()[-2000:]))
        # lines already in the pipe were acknowledged too; a line without "\n" was not
        for line in rest.split(b"\n")[:-1]:
            if line == b"ready":
                ready = True
            else:
                acked.append(int(line))
        if not ready:
            figures.kills_before_ready += 1
        elif not acked:
            figures.kills_at_ready += 1
        assert acked == list(range(next_op, next_op + len(acked))), "acks out of order"
        for i in acked:
            op = op_for(seed, i)
            model = apply_model(model, op, i)
            figures.per_kind[op[0]] = figures.per_kind.get(op[0], 0) + 1
        figures.acknowledged += len(acked)
        in_flight = next_op + len(acked)
        with_in_flight = apply_model(model, op_for(seed, in_flight), in_flight)
        got = read_state(path, figures.repairs if repair else None)
        if got == model:
            next_op = in_flight  # (re-running an operation that did not land is fine)
        elif got == with_in_flight:
            model = with_in_flight
            next_op = in_flight + 1
            figures.in_flight_landed += 1
        else:
            raise CrashFailure("round %d (%s kill after %d acks): reopened state differs from "
                               "the acknowledged model: %s" % (round_no, mode, len(acked),
                                                               describe_difference(got, model)))
        figures.rounds += 1
        n_logs = len([n for n in os.listdir(os.path.join(path, "log")) if n.endswith(".log")])
        figures.max_log_files = max(figures.max_log_files, n_logs)
        figures.log_files = n_logs
        if verbose and (round_no + 1) % 25 == 0:
            print("  %d rounds, %d acknowledged operations checked" % (round_no + 1,
                                                                        figures.acknowledged),
                  flush=True)
    figures.seconds = time.monotonic() - t0
    return figures


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-acks", type=int, default=300,
                   help="kill after a random number of acknowledgements up to this")
    p.add_argument("--path", help="data directory (default: a fresh temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    p.add_argument("--no-repair", action="store_true",
                   help="fail when the engine refuses to open (instead of repair_log + retry)")
    p.add_argument("--child", nargs=3, metavar=("PATH", "START", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0
    path = args.path or tempfile.mkdtemp(prefix="sophy-crash-")
    print("crash stress: %d rounds, seed %d, %s, directory %s"
          % (args.rounds, args.seed, sys.implementation.name, path), flush=True)
    try:
        f = run_rounds(path, args.rounds, args.seed, args.max_acks, verbose=True,
                       repair=not args.no_repair)
    except CrashFailure as exc:
        print("FAILED:", exc)
        print("data directory kept:", path)
        return 1
    print("rounds survived:                 %d" % f.rounds)
    print("acknowledged operations checked: %d  (%s)" % (
        f.acknowledged, ", ".join("%s %d" % kv for kv in sorted(f.per_kind.items()))))
    print("in-flight operation durable:     %d rounds" % f.in_flight_landed)
    print("killed while opening/recovering: %d rounds; during the first operation: %d"
          % (f.kills_before_ready, f.kills_at_ready))
    print("log files at the end:            %d (max %d)" % (f.log_files, f.max_log_files))
    print("opens that needed repair_log:    %d" % len(f.repairs))
    for problem in f.repairs:
        print("    " + problem)
    print("time:                            %.1f s" % f.seconds)
    if not args.keep and not args.path:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
