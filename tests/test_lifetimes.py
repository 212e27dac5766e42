"""Object lifetimes: closing, dropping, collecting and exiting in any order never crashes, never
hangs, and never lets a stale handle reach the engine (freed engine objects are pooled and
reused, so a stale pointer would alias a live object)."""
from __future__ import annotations

import gc
import itertools
import os
import threading
from typing import Any, Callable, Dict, List

import pytest

from sophy import ClosedError, Sophia, SophiaError

DBS = [("db", "string"), ("n", "u64")]
ROWS = 300  # more than one cursor batch (256 rows), so a cursor can be stopped mid-batch


def fill(env: Sophia) -> Dict[str, str]:
    rows = {"k%04d" % i: "v%d" % i for i in range(ROWS)}
    env["db"].update(rows)
    return rows


def collect() -> None:
    # PyPy runs finalisers of objects found by one collection at the next one
    for _ in range(3):
        gc.collect()


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def task_count() -> int:
    return len(os.listdir("/proc/self/task"))


def test_close_invalidates_every_object(tmp_path: Any) -> None:
    env = Sophia(str(tmp_path / "env"), databases=DBS)
    db = env["db"]
    fill(env)
    txn = db.transaction()
    txn["pending"] = "x"
    tdb = txn[env["n"]]
    tdb[1] = "one"
    view = db.view()
    cursor = db.cursor()
    assert next(cursor) == ("k0000", "v0")  # mid-batch
    env_txn = env.transaction()
    env.close()

    uses: Dict[str, Callable[[], Any]] = {
        "db get": lambda: db["k0001"],
        "db get default": lambda: db.get("k0001"),
        "db set": lambda: db.__setitem__("x", "y"),
        "db delete": lambda: db.__delitem__("k0001"),
        "db contains": lambda: "k0001" in db,
        "db len": lambda: len(db),
        "db iter": lambda: list(db),
        "db slice": lambda: list(db["k0001":"k0009"]),
        "db update": lambda: db.update(a="b"),
        "db pop": lambda: db.pop("k0001"),
        "db transaction": lambda: db.transaction(),
        "db view": lambda: db.view(),
        "env transaction": lambda: env.transaction(),
        "txn get": lambda: txn["k0001"],
        "txn set": lambda: txn.__setitem__("x", "y"),
        "txn commit": lambda: txn.commit(),
        "txn db set": lambda: tdb.__setitem__(2, "two"),
        "txn db get": lambda: tdb[1],
        "env txn subscript write": lambda: env_txn[db].__setitem__("x", "y"),
        "view get": lambda: view["k0001"],
        "view iter": lambda: list(view),
        "cursor next": lambda: next(cursor),
        "scheduler": lambda: env.scheduler_run(),
    }
    for what, use in uses.items():
        with pytest.raises(SophiaError):
            use()
            pytest.fail("%s worked on a closed environment" % what)
    # closing what is already dead is harmless and idempotent
    txn.rollback(begin=False)
    view.close()
    cursor.close()
    env.close()
    assert env.status == "closed"


def test_stale_objects_stay_dead_after_reopen(tmp_path: Any) -> None:
    env = Sophia(str(tmp_path / "env"), databases=DBS)
    db = env["db"]
    db["base"] = "1"
    old_txn = db.transaction()
    old_txn["stale"] = "must never commit"
    old_view = db.view()
    old_cursor = db.cursor()
    env.close()
    env.open()
    # the new session allocates fresh engine objects (the pool would hand out the old slots)
    new_txn = db.transaction()
    new_txn["fresh"] = "1"
    new_view = db.view()
    for use in (lambda: old_txn.commit(), lambda: old_txn["x"], lambda: old_view["base"],
                lambda: next(old_cursor), lambda: old_txn.__setitem__("stale2", "x")):
        with pytest.raises(SophiaError):
            use()
    new_txn.commit(begin=False)
    assert new_view.get("fresh") is None  # the new view kept its own snapshot
    new_view.close()
    assert dict(db) == {"base": "1", "fresh": "1"}
    env.close()


ORDERS = list(itertools.permutations(["env", "db", "txn", "cursor", "view"]))[::10]


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_dropping_in_any_order_with_late_collection(tmp_path: Any, order: Any) -> None:
    path = str(tmp_path / "env")
    objs: Dict[str, Any] = {"env": Sophia(path, databases=DBS)}
    objs["db"] = objs["env"]["db"]
    objs["db"].update(a="1", b="2")
    objs["txn"] = objs["db"].transaction()
    objs["txn"]["uncommitted"] = "x"
    objs["cursor"] = objs["db"].cursor()
    next(objs["cursor"])
    objs["view"] = objs["db"].view()
    gc.disable()  # drop everything first, collect late
    try:
        for name in order:
            del objs[name]
    finally:
        gc.enable()
    collect()
    again = Sophia(path, databases=DBS)  # the lock went with the last reference
    assert dict(again["db"]) == {"a": "1", "b": "2"}
    again.close()


class WritesOnFinalise:
    """Uses the database from ``__del__``, the way caches and sessions flush on collection."""

    log: List[str] = []

    def __init__(self, db: Any, key: str) -> None:
        self.db, self.key = db, key

    def __del__(self) -> None:
        try:
            self.db[self.key] = "flushed"
            with self.db.transaction() as txn:
                txn[self.key + "-txn"] = "flushed"
            self.log.append("ok")
        except SophiaError as exc:
            self.log.append(type(exc).__name__)


def test_use_from_finaliser(tmp_path: Any) -> None:
    WritesOnFinalise.log = []
    env = Sophia(str(tmp_path / "env"), databases=DBS)
    db = env["db"]
    w = WritesOnFinalise(db, "alive")
    del w
    collect()
    assert db["alive"] == "flushed" and db["alive-txn"] == "flushed"
    # a cycle collected after the environment closed: the finaliser sees a clean error
    gc.disable()  # the cycle must survive until the environment has closed
    try:
        late = WritesOnFinalise(db, "late")
        late.cycle = late  # type: ignore[attr-defined]
        del late
        env.close()
    finally:
        gc.enable()
    collect()
    assert WritesOnFinalise.log == ["ok", "ClosedError"]


def test_close_while_threads_are_inside_operations(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    for round_no in range(3):
        env = Sophia(path, databases=DBS)
        db = env["db"]
        fill(env)
        acked: List[List[str]] = []
        errors: List[BaseException] = []
        started = [threading.Event() for _ in range(5)]
        stop = threading.Event()  # so a failing close() cannot leave threads spinning

        def loop(i: int) -> None:
            mine: List[str] = []
            acked.append(mine)
            n = 0
            try:
                while not stop.is_set():
                    kind = (i + n) % 5
                    if kind == 0:
                        db.get("k0007")
                    elif kind == 1:
                        key = "t%d-%d-%d" % (round_no, i, n)
                        db[key] = "v"
                        mine.append(key)
                    elif kind == 2:
                        for _ in db["k0100":"k0200"]:
                            pass
                    elif kind == 3:
                        with db.transaction() as txn:
                            txn["txn-%d" % i] = str(n)
                    else:
                        with db.view() as view:
                            view.get("k0001")
                            list(view["k0000":"k0010"])
                    n += 1
                    if n == 25:
                        started[i].set()
            except SophiaError:
                return  # the expected ending: ClosedError (or a conflict) once closed
            except BaseException as exc:  # anything else is a failure
                errors.append(exc)
            finally:
                started[i].set()

        threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(5)]
        for t in threads:
            t.start()
        for ev in started:
            assert ev.wait(60)
        try:
            env.close()
        finally:
            stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a thread hung after close()"
        assert errors == []
        env = Sophia(path, databases=DBS)  # every acknowledged single write is durable
        rows = dict(env["db"])
        for key in itertools.chain.from_iterable(acked):
            assert rows.get(key) == "v", key
        env.close()


def test_close_reopen_loop_leaks_nothing(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    env = Sophia(path, databases=DBS)
    env.close()
    collect()
    fds, tasks = fd_count(), task_count()
    same = Sophia(path, databases=DBS)
    for i in range(50):
        same["db"]["same-%d" % i] = str(i)
        view = same["db"].view()
        same.close()
        with pytest.raises(ClosedError):
            view.get("same-0")
        same.open()
        fresh_view = same["db"].view()
        assert fresh_view["same-%d" % i] == str(i)
        fresh_view.close()
    same.close()
    for i in range(50):
        other = Sophia(path, databases=DBS)
        other["n"][i] = "x"
        other.close()
    collect()
    assert fd_count() == fds  # lock files, log and node files all closed
    assert task_count() == tasks  # scheduler threads all stopped
    final = Sophia(path, databases=DBS)
    assert len(final["db"]) == 50 and len(final["n"]) == 50
    final.close()


EXIT_WITH_OPEN_OBJECTS = r"""
import sys, threading, sophy
path, how = sys.argv[1], sys.argv[2]
env = sophy.Sophia(path, databases=[("db", "string")])
db = env["db"]
db.update(("k%04d" % i, "v") for i in range(300))
txn = db.transaction()
txn["uncommitted"] = "x"
view = db.view()
cursor = db.cursor()
next(cursor)
cycle = {"env": env, "txn": txn}
cycle["self"] = cycle
db["committed"] = "yes"
if how == "daemon-thread":
    go = threading.Event()
    def spin():
        while True:
            try:
                db.get("k0001")
                list(db["k0000":"k0050"])
            except sophy.SophiaError:
                return
            go.set()
    threading.Thread(target=spin, daemon=True).start()
    go.wait(30)
if how == "exception":
    raise SystemExit(0)
"""


@pytest.mark.parametrize("how", ["plain", "exception", "daemon-thread"])
def test_interpreter_exit_with_open_objects_is_clean(tmp_path: Any, run_python: Any,
                                                     how: str) -> None:
    path = str(tmp_path / "env")
    proc = run_python(EXIT_WITH_OPEN_OBJECTS, path, how)
    assert proc.returncode == 0 and proc.stderr == "", (proc.returncode, proc.stderr[-2000:])
    env = Sophia(path, databases=[("db", "string")])  # and the lock went with the process
    assert env["db"]["committed"] == "yes"
    assert "uncommitted" not in env["db"]
    env.close()


LEN_OF_BIG_DB = r"""
import sys, sophy
env = sophy.Sophia(sys.argv[1], databases=[("db", "string")])
env["db"].update(("k%05d" % i, "v") for i in range(5000))
n = len(env["db"])
env.close()
print(n)
"""


def test_len_of_a_large_database_then_exit_is_clean(tmp_path: Any, run_python: Any) -> None:
    proc = run_python(LEN_OF_BIG_DB, str(tmp_path / "env"))
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "5000", "")


def test_close_while_a_commit_waits_for_a_lock(tmp_path: Any) -> None:
    """A commit retrying on a key locked by another open transaction stops at close() with a
    SophiaError instead of waiting out its lock timeout."""
    env = Sophia(str(tmp_path / "env"), databases=DBS)
    db = env["db"]
    holder = db.transaction()
    holder["k"] = "holder"  # stays uncommitted: the key is locked
    waiter = db.transaction(lock_timeout=600.0)
    waiter["k"] = "waiter"
    about_to_commit = threading.Event()
    outcome: List[str] = []

    def commit() -> None:
        about_to_commit.set()
        try:
            waiter.commit(begin=False)
            outcome.append("committed")
        except SophiaError as exc:
            outcome.append(type(exc).__name__)
        except BaseException as exc:  # anything else is a failure
            outcome.append("unexpected %r" % exc)

    t = threading.Thread(target=commit, daemon=True)
    t.start()
    assert about_to_commit.wait(60)
    env.close()
    t.join(60)
    assert not t.is_alive(), "the commit kept waiting after close()"
    assert len(outcome) == 1 and outcome[0] != "committed" and \
        not outcome[0].startswith("unexpected"), outcome


def test_close_while_threads_open_handles(tmp_path: Any) -> None:
    """close() snapshots the children while other threads keep registering cursors and
    transactions (iterating the growing WeakSet used to raise RuntimeError and leave the
    environment open)."""
    import sys
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: the race shows in every round
    try:
        for round_no in range(3):
            env = Sophia(str(tmp_path / ("env%d" % round_no)), databases=DBS)
            db = env["db"]
            db["a"] = "1"
            keep = [db.cursor() for _ in range(2000)]  # a long set of children to iterate
            go = threading.Barrier(5)
            stop = threading.Event()

            def spawn() -> None:
                go.wait()
                mine = []
                try:
                    while not stop.is_set():
                        mine.append(db.cursor() if len(mine) % 2 else db.transaction())
                except SophiaError:
                    return

            threads = [threading.Thread(target=spawn, daemon=True) for _ in range(4)]
            for t in threads:
                t.start()
            go.wait()
            error = None
            try:
                env.close()
            except BaseException as exc:  # noqa: B902 - anything but a clean close is the bug
                error = exc
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
                env.close()
            del keep
            assert not any(t.is_alive() for t in threads)
            assert error is None, repr(error)
            assert env.status == "closed"
    finally:
        sys.setswitchinterval(old_interval)
