"""Crash durability: SIGKILL at random moments never loses an acknowledged commit and never
leaves a transaction or batch visible by halves (log.sync=0: the page cache keeps what the
killed process wrote). The machinery lives in stress/crash.py; this runs a bounded number of
rounds (``python stress/crash.py --rounds 300`` runs many)."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from sophy import Sophia

from conftest import SRC

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "sophy_stress_crash", os.path.join(os.path.dirname(HERE), "stress", "crash.py"))
assert _spec is not None and _spec.loader is not None
crash = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = crash  # dataclasses look their module up while the class is built
_spec.loader.exec_module(crash)

ROUNDS = 8


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_writer_keeps_every_acknowledged_commit(tmp_path: Any, seed: int) -> None:
    figures = crash.run_rounds(str(tmp_path / "env"), ROUNDS, seed=seed, max_acks=150)
    assert figures.rounds == ROUNDS
    assert figures.acknowledged > ROUNDS  # the kills did not all land before any commit
    # every kind of operation was acknowledged and checked at least once over the rounds
    assert {"set", "txn", "batch"} <= set(figures.per_kind)


def test_model_check_catches_a_half_visible_transaction() -> None:
    """The harness itself: a state with one of a transaction's writes must match neither
    the model before it nor the model after it."""
    before = ({"seq": "1"}, {1: "1", 105: "1"}, {})
    after = crash.apply_model(before, ("txn", 5), 2)
    half = ({"seq": "2"}, {1: "1", 105: "1"}, {})
    assert half not in (before, after)
    batch = crash.apply_model(after, ("batch", 4), 3)
    torn_batch = (after[0], after[1], {"batch-00": "3", "batch-01": "3"})
    assert torn_batch not in (after, batch)


OPEN_AND_WAIT = r"""
import sys, sophy
print("opening", flush=True)
env = sophy.Sophia(sys.argv[1], databases=[("db", "string")])
print("open", flush=True)
sys.stdin.readline()
"""


def test_kill_during_recovery(tmp_path: Any) -> None:
    """A process killed while it replays the log leaves the log replayable."""
    path = str(tmp_path / "env")
    env = Sophia(path, databases=[("db", "string")])
    rows = {"k%06d" % i: "v%d" % i for i in range(20000)}
    items = list(rows.items())
    for i in range(0, len(items), 500):
        env["db"].update(items[i:i + 500])
    env.close()
    child_env = dict(os.environ, PYTHONPATH=SRC)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", OPEN_AND_WAIT, path],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=child_env)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"opening\n"
        proc.send_signal(signal.SIGKILL)  # lands during import, open or replay
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
    env = Sophia(path, databases=[("db", "string")])
    assert dict(env["db"]) == rows
    env.close()
