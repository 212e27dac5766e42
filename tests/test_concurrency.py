"""Concurrency under SSI: transfers between accounts from several threads while readers scan and
views stay open. Bounded here; ``python stress/transfers.py`` runs the same at scale."""
from __future__ import annotations

import importlib.util
import os
import sys
import threading
from typing import Any, List

import pytest

from sophy import BusyError, Sophia, SophiaError, TransactionConflict

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "sophy_stress_transfers", os.path.join(os.path.dirname(HERE), "stress", "transfers.py"))
assert _spec is not None and _spec.loader is not None
transfers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = transfers  # dataclasses look their module up while the class is built
_spec.loader.exec_module(transfers)

JOIN = 120.0  # seconds: only reached if something deadlocked


@pytest.mark.parametrize("accounts", [2, 8])
def test_transfers_keep_the_books_balanced(tmp_path: Any, accounts: int) -> None:
    f = transfers.run_transfers(str(tmp_path / "env"), threads=4, transfers=60,
                                accounts=accounts, readers=2, view_holders=1,
                                join_timeout=JOIN)
    assert f.failures == []
    assert f.transfers == 4 * 60  # every transfer committed exactly once (ledger checked)
    assert f.scans > 0 and f.view_rescans > 0


def test_lost_update_is_refused(tmp_path: Any) -> None:
    """Two read-modify-write transactions on one key: the second to commit must lose."""
    env = Sophia(str(tmp_path / "env"), databases=[("acc", "u64")])
    acc = env["acc"]
    acc[1] = "100"
    t1, t2 = acc.transaction(), acc.transaction()
    t1[1] = str(int(t1[1]) + 10)
    t2[1] = str(int(t2[1]) + 20)
    t1.commit(begin=False)
    with pytest.raises(TransactionConflict):
        t2.commit(begin=False)
    assert acc[1] == "110"
    # retried from scratch, the second one sees the first one's result
    transfers.retry(lambda: _add(acc, 20))
    assert acc[1] == "130"
    env.close()


def _add(acc: Any, amount: int) -> None:
    with acc.transaction() as txn:
        txn[1] = str(int(txn[1]) + amount)


def test_retry_helper_counts_and_gives_up() -> None:
    calls: List[int] = []

    def always_conflicts() -> None:
        calls.append(1)
        raise TransactionConflict("lost")

    counter: dict = {}
    with pytest.raises(RuntimeError, match="no commit in 3 attempts"):
        transfers.retry(always_conflicts, attempts=3, counter=counter)
    assert len(calls) == 3 and counter == {"TransactionConflict": 3}


def test_threads_sharing_one_transaction(tmp_path: Any) -> None:
    """Misuse (one transaction, many threads) gives BusyError or works; never a crash, and
    every write that returned is committed."""
    env = Sophia(str(tmp_path / "env"), databases=[("db", "string")])
    db = env["db"]
    txn = db.transaction()
    barrier = threading.Barrier(4)
    done: List[List[str]] = [[] for _ in range(4)]
    unexpected: List[BaseException] = []

    def hammer(i: int) -> None:
        barrier.wait()
        for n in range(300):
            key = "t%d-%03d" % (i, n)
            try:
                txn[key] = "v"
                txn.get(key)
                done[i].append(key)
            except BusyError:
                pass
            except BaseException as exc:
                unexpected.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    assert not any(t.is_alive() for t in threads)
    assert unexpected == []
    txn.commit(begin=False)
    written = set(db.keys())
    assert {k for keys in done for k in keys} <= written
    env.close()


def test_threads_sharing_one_cursor(tmp_path: Any) -> None:
    """Each row is delivered once across all the threads pulling from one cursor."""
    env = Sophia(str(tmp_path / "env"), databases=[("db", "u64")])
    db = env["db"]
    db.update((i, "v%d" % i) for i in range(2000))
    cursor = db.cursor()
    barrier = threading.Barrier(4)
    seen: List[List[Any]] = [[] for _ in range(4)]
    unexpected: List[BaseException] = []

    def pull(i: int) -> None:
        barrier.wait()
        while True:
            try:
                seen[i].append(next(cursor))
            except StopIteration:
                return
            except (BusyError, ValueError):  # BusyError, or "generator already executing"
                continue
            except BaseException as exc:
                unexpected.append(exc)
                return

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN)
    assert not any(t.is_alive() for t in threads)
    assert unexpected == []
    rows = sorted(r for part in seen for r in part)
    assert rows == [(i, "v%d" % i) for i in range(2000)]
    env.close()


def test_writers_and_scanners_on_many_databases(tmp_path: Any) -> None:
    """A transaction spanning two databases is seen whole by concurrent scans of both."""
    env = Sophia(str(tmp_path / "env"), databases=[("left", "u64"), ("right", "u64")])
    left, right = env["left"], env["right"]
    left.update((i, "0") for i in range(20))
    right.update((i, "0") for i in range(20))
    stop = threading.Event()
    problems: List[str] = []

    def writer(w: int) -> None:
        try:
            for n in range(80):
                def step() -> None:
                    with env.transaction() as txn:
                        k = (w * 7 + n) % 20
                        value = str(int(txn[left][k]) + 1)
                        txn[left][k] = value
                        txn[right][k] = value
                transfers.retry(step)
        except BaseException as exc:
            problems.append("writer %d: %r" % (w, exc))

    def viewer() -> None:
        try:
            while not stop.is_set():
                with env.transaction() as snap:  # one snapshot over both databases
                    a = [int(snap[left][k]) for k in range(20)]
                    b = [int(snap[right][k]) for k in range(20)]
                    snap.rollback(begin=False)
                if a != b:
                    problems.append("half a transaction visible: %s vs %s" % (a, b))
        except SophiaError as exc:
            problems.append("viewer: %r" % exc)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    viewers = [threading.Thread(target=viewer) for _ in range(2)]
    for t in writers + viewers:
        t.start()
    for t in writers:
        t.join(JOIN)
    stop.set()
    for t in viewers:
        t.join(JOIN)
    assert not any(t.is_alive() for t in writers + viewers)
    assert problems == []
    assert sum(int(v) for v in left.values()) == 3 * 80
    assert dict(left) == dict(right)
    env.close()
