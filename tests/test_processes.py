"""One directory, one open environment: the lock file, and forked children kept away from the
parent's engine (the engine itself has neither file locking nor fork handling)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from typing import Any, Callable, Dict

import pytest

from sophy import ClosedError, EnvironmentLocked, ForkedEnvironmentError, Sophia, SophiaError

from conftest import SRC

DBS = [("db", "string")]

TRY_OPEN = r"""
import sys, sophy
try:
    env = sophy.Sophia(sys.argv[1], databases=[("db", "string")])
except sophy.EnvironmentLocked:
    print("locked")
else:
    print("opened", dict(env["db"]))
    env.close()
"""


def test_second_process_gets_environment_locked(tmp_path: Any, run_python: Any) -> None:
    path = str(tmp_path / "env")
    env = Sophia(path, databases=DBS)
    env["db"]["k"] = "v"
    try:
        proc = run_python(TRY_OPEN, path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["locked"]
    finally:
        env.close()
    proc = run_python(TRY_OPEN, path)  # released at close
    assert proc.stdout.strip() == "opened {'k': 'v'}", proc.stderr


def test_second_environment_in_the_same_process(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    env = Sophia(path, databases=DBS)
    with pytest.raises(EnvironmentLocked):
        Sophia(path, databases=DBS)
    env["db"]["still"] = "works"  # the refused one did not disturb the first
    env.close()
    again = Sophia(path, databases=DBS)
    assert again["db"]["still"] == "works"
    again.close()


def test_environment_without_databases_holds_the_lock(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    env = Sophia(path)
    with pytest.raises(EnvironmentLocked):
        Sophia(path)
    env.close()
    Sophia(path).close()


def test_reopen_same_object_after_close(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    env = Sophia(path, databases=DBS)
    env.close()
    env.open()
    with pytest.raises(EnvironmentLocked):
        Sophia(path, databases=DBS)
    env.close()


HOLDER = r"""
import sys, sophy
env = sophy.Sophia(sys.argv[1], databases=[("db", "string")])
env["db"]["holder"] = "wrote"
print("ready", flush=True)
sys.stdin.readline()  # hold the environment until killed
"""


def test_lock_of_a_killed_process_is_released(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    env = dict(os.environ, PYTHONPATH=SRC)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(EnvironmentLocked):
            Sophia(path, databases=DBS)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    env2 = Sophia(path, databases=DBS)  # the kernel dropped the dead process's flock
    assert env2["db"]["holder"] == "wrote"
    env2.close()


def run_in_child(body: Callable[[], int]) -> int:
    """Fork; the child runs ``body`` and leaves with its status through ``os._exit`` (never
    returning into pytest). A hang in the child ends with SIGALRM, which the caller sees."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 97
        try:
            signal.alarm(60)
            status = body()
        except BaseException:
            traceback.print_exc()
            status = 98
        finally:
            os._exit(status)
    _, st = os.waitpid(pid, 0)
    assert os.WIFEXITED(st), "child did not exit cleanly: wait status %#x" % st
    return os.WEXITSTATUS(st)


def outcome(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except BaseException as exc:  # record every outcome, the parent judges
        return type(exc).__name__
    return "no error"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_cannot_touch_the_parent_environment(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    other = str(tmp_path / "child-env")
    results_file = str(tmp_path / "child.json")
    env = Sophia(path, databases=DBS)
    db = env["db"]
    db.update(("k%d" % i, "v%d" % i) for i in range(10))
    txn = db.transaction()
    txn["parent-txn"] = "pending"
    view = db.view()
    cursor = db.cursor()
    assert next(cursor) == ("k0", "v0")
    log_dir = os.path.join(path, "log")
    sizes_before = {n: os.path.getsize(os.path.join(log_dir, n)) for n in os.listdir(log_dir)}

    def child() -> int:  # pragma: no cover - runs in the child
        ops: Dict[str, Callable[[], Any]] = {
            "get": lambda: db["k1"],
            "set": lambda: db.__setitem__("child", "x"),
            "delete": lambda: db.__delitem__("k2"),
            "update": lambda: db.update(child1="x", child2="y"),
            "contains": lambda: "k1" in db,
            "scan": lambda: list(db),
            "begin": lambda: env.transaction(),
            "txn-write": lambda: txn.__setitem__("child-txn", "x"),
            "txn-commit": lambda: txn.commit(),
            # rows already fetched in a batch are plain Python data; draining it needs the engine
            "cursor-drain": lambda: list(cursor),
            "view-get": lambda: view["k1"],
            "new-view": lambda: db.view(),
            "status": lambda: env.status,
            "open-parent-dir": lambda: Sophia(path, databases=DBS),
        }
        results = {name: outcome(fn) for name, fn in ops.items()}
        results["env-close"] = outcome(env.close)
        results["after-close-get"] = outcome(lambda: db["k1"])
        # a fresh environment of the child's own works normally
        mine = Sophia(other, databases=DBS)
        mine["db"]["mine"] = "ok"
        results["own-env"] = mine["db"]["mine"]
        mine.close()
        with open(results_file, "w") as f:
            json.dump(results, f)
        return 0

    assert run_in_child(child) == 0
    with open(results_file) as f:
        results = json.load(f)
    refused = {ForkedEnvironmentError.__name__, ClosedError.__name__}
    for op in ("get", "set", "delete", "update", "contains", "scan", "begin", "txn-write",
               "txn-commit", "cursor-drain", "view-get", "new-view", "status",
               "after-close-get"):
        assert results[op] in refused, (op, results[op])
    assert results["open-parent-dir"] == EnvironmentLocked.__name__
    assert results["env-close"] == "no error"
    assert results["own-env"] == "ok"

    # the parent is untouched: its log, its open transaction, cursor and view
    assert {n: os.path.getsize(os.path.join(log_dir, n)) for n in os.listdir(log_dir)} \
        == sizes_before
    assert next(cursor) == ("k1", "v1")
    assert view["k2"] == "v2"
    txn.commit(begin=False)
    view.close()
    cursor.close()
    with pytest.raises(EnvironmentLocked):  # the child's exit left the parent's lock alone
        Sophia(path, databases=DBS)
    env.close()
    env = Sophia(path, databases=DBS)
    expected = {"k%d" % i: "v%d" % i for i in range(10)}
    expected["parent-txn"] = "pending"
    assert dict(env["db"]) == expected
    env.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_dropping_objects_exits_cleanly(tmp_path: Any) -> None:
    """Garbage collection in the child (finalisers of transactions, cursors, views and the
    environment) must neither touch the parent's engine nor hang."""
    import gc
    path = str(tmp_path / "env")
    env = Sophia(path, databases=DBS)
    db = env["db"]
    db["k"] = "v"
    holder = {"txn": db.transaction(), "view": db.view(), "cursor": db.cursor()}
    holder["txn"]["t"] = "x"

    def child() -> int:  # pragma: no cover - runs in the child
        nonlocal env, db
        holder.clear()
        env = db = None  # type: ignore[assignment]
        gc.collect()
        return 7

    assert run_in_child(child) == 7
    assert db["k"] == "v"
    holder["txn"].commit(begin=False)
    assert db["t"] == "x"
    for obj in holder.values():
        if hasattr(obj, "close"):
            obj.close()
    env.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_of_a_closed_environment(tmp_path: Any) -> None:
    path = str(tmp_path / "env")
    env = Sophia(path, databases=DBS)
    env.close()

    def child() -> int:  # pragma: no cover - runs in the child
        try:
            env["db"]["x"] = "y"
        except SophiaError:
            pass
        else:
            return 1
        # the parent holds no lock any more: the child may open the directory itself
        mine = Sophia(path, databases=DBS)
        mine["db"]["from-child"] = "1"
        mine.close()
        return 0

    assert run_in_child(child) == 0
    env.open()
    assert env["db"]["from-child"] == "1"
    env.close()
