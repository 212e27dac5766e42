"""Dict semantics, transactions, views and environment management beyond the spec examples."""
from __future__ import annotations

import pytest

from sophy import (ClosedError, ReadOnlyError, SchemaMismatch, Sophia, SophiaError,
                   TransactionConflict, TransactionLocked)


@pytest.fixture
def env(tmp_path):
    e = Sophia(str(tmp_path / "env"))
    yield e
    e.close()


@pytest.fixture
def db(env):
    return env.create_database("main", "string")


def test_dict_operations(db):
    assert len(db) == 0 and not db
    db["a"] = "1"
    assert db and len(db) == 1
    assert db.get("a") == "1" and db.get("zz") is None and db.get("zz", "d") == "d"
    assert "a" in db and "zz" not in db
    assert db.setdefault("a", "x") == "1"
    assert db.setdefault("b", "2") == "2" and db["b"] == "2"
    assert db.pop("a") == "1" and "a" not in db
    assert db.pop("a", "gone") == "gone"
    with pytest.raises(KeyError):
        db.pop("a")
    del db["never-there"]  # silent, like the engine
    db.update({"m": "1"}, n="2")
    db.update([("o", "3"), ("p", "4")])
    assert list(db.keys()) == ["b", "m", "n", "o", "p"]
    assert list(db.values()) == ["2", "1", "2", "3", "4"]
    assert db.multi_get(["m", "x", "p"]) == ["1", None, "4"]
    assert db.multi_get_dict(["m", "x"]) == {"m": "1"}
    db.multi_delete(["m", "n", "nope"])
    assert list(db.keys()) == ["b", "o", "p"]
    db.clear()
    assert list(db) == [] and len(db) == 0


def test_update_is_atomic_on_bad_input(db):
    db["keep"] = "v"
    with pytest.raises(TypeError):
        db.update([("a", "1"), ("b", 2)])
    with pytest.raises(TypeError):
        db.update([("a", "1"), "not-a-pair-of-two"])
    assert list(db) == [("keep", "v")]


def test_empty_key_and_values(db):
    db[""] = ""
    db["x"] = ""
    assert db[""] == "" and db["x"] == ""
    assert list(db) == [("", ""), ("x", "")]


def test_large_values_grow_buffers(env):
    db = env.create_database("big", "string", "bytes")
    big = bytes(range(256)) * 4096  # 1 MiB, larger than every default buffer
    db["k"] = big
    db["l"] = b"small"
    assert db["k"] == big
    assert list(db) == [("k", big), ("l", b"small")]
    assert list(db.cursor(keys=False, order="<=")) == [b"small", big]


def test_bytes_keys_and_values(env):
    db = env.create_database("b", "bytes", "bytes")
    db[b"\x00\xff"] = b"\x00"
    db[b"\x00"] = b"\xff"
    assert list(db) == [(b"\x00", b"\xff"), (b"\x00\xff", b"\x00")]


def test_integer_keys_order(env):
    db = env.create_database("u", "u32")
    rev = env.create_database("r", "u32_rev")
    for n in (5, 0, 2 ** 32 - 1, 7):
        db[n] = str(n)
        rev[n] = str(n)
    assert list(db.keys()) == [0, 5, 7, 2 ** 32 - 1]
    assert list(rev.keys()) == [2 ** 32 - 1, 7, 5, 0]
    assert list(rev[7:0]) == [(7, "7"), (5, "5"), (0, "0")]


def test_env_transaction_across_databases(env):
    a = env.create_database("a", "string")
    b = env.create_database("b", ("string", "u64"))
    with env.transaction() as txn:
        txn[a]["x"] = "1"
        txn[b][("x", 1)] = "2"
        assert txn[a]["x"] == "1"  # own writes are visible
        assert "x" not in a        # ... to nobody else before commit
    assert a["x"] == "1" and b[("x", 1)] == "2"
    with pytest.raises(RuntimeError):
        with env.transaction() as txn:
            txn[a]["y"] = "1"
            txn[b][("y", 1)] = "2"
            raise RuntimeError("boom")
    assert "y" not in a and ("y", 1) not in b
    with pytest.raises(TypeError, match="not bound"):
        with env.transaction() as txn:
            txn["x"] = "1"


def test_commit_and_rollback_restart(db):
    txn = db.transaction()
    txn["a"] = "1"
    txn.commit()            # commits and begins a new one
    txn["b"] = "2"
    txn.rollback()
    txn["c"] = "3"
    txn.commit(begin=False)
    assert list(db.keys()) == ["a", "c"]
    with pytest.raises(ClosedError):
        txn["d"] = "4"
    with pytest.raises(ClosedError):
        txn.commit()


def test_conflict_raises(db):
    db["k"] = "0"
    t1 = db.transaction()
    t2 = db.transaction()
    assert t2["k"] == "0"
    t1["k"] = "1"
    t1.commit(begin=False)
    t2["k"] = "2"
    with pytest.raises(TransactionConflict):
        t2.commit(begin=False)
    assert db["k"] == "1"


def test_lock_raises_after_timeout(db):
    t1 = db.transaction()
    t2 = db.transaction(lock_timeout=0.01)
    t1["k"] = "1"
    t2["k"] = "2"
    with pytest.raises(TransactionLocked):
        t2.commit(begin=False)
    t1.commit(begin=False)
    assert db["k"] == "1"


def test_single_write_to_locked_key(db):
    t1 = db.transaction()
    t1["k"] = "1"
    with pytest.raises(TransactionLocked):
        db["k"] = "2"
    t1.rollback(begin=False)
    db["k"] = "2"
    assert db["k"] == "2"


def test_view_is_read_only_snapshot(db):
    db.update(a="1", b="2", c="3")
    with db.view("v") as view:
        db["a"] = "changed"
        del db["b"]
        db["d"] = "4"
        assert view["a"] == "1" and "b" in view and "d" not in view
        assert list(view) == [("a", "1"), ("b", "2"), ("c", "3")]
        assert list(view["c":"a"]) == [("c", "3"), ("b", "2"), ("a", "1")]
        assert list(view.cursor(order=">", key="a", values=False)) == ["b", "c"]
        assert len(view) == 3
        for write in (lambda: view.__setitem__("a", "x"), lambda: view.__delitem__("a"),
                      lambda: view.update(a="x")):
            with pytest.raises(ReadOnlyError):
                write()
    with pytest.raises(ClosedError):
        view["a"]


def test_create_database_on_open_env(env, db):
    db["a"] = "1"
    other = env.create_database("other", "u64")
    other[1] = "x"
    assert db["a"] == "1"  # existing Database objects survive the reopen
    assert sorted(env) == ["main", "other"]
    assert env.create_database("other", "u64") is other
    with pytest.raises(SchemaMismatch):
        env.create_database("other", "string")


def test_create_database_refused_with_open_cursor(env, db):
    db.update(a="1", b="2")
    cur = db.cursor()
    with pytest.raises(SophiaError, match="close them first"):
        env.create_database("late", "string")
    cur.close()
    env.create_database("late", "string")


def test_close_invalidates_everything(tmp_path):
    env = Sophia(str(tmp_path))
    db = env.create_database("d", "string")
    db.update(a="1", b="2", c="3")
    cur = db.cursor()
    next(iter(cur))
    txn = db.transaction()
    view = db.view()
    env.close()
    for op in (lambda: db["a"], lambda: db.__setitem__("a", "1"), lambda: next(iter(cur)),
               lambda: txn["a"], lambda: view["a"], lambda: list(db), lambda: len(db)):
        with pytest.raises(ClosedError):
            op()
    env.close()  # idempotent
    env.open()
    assert db["a"] == "1"
    env.close()


def test_reopen_keeps_data_and_scheme(tmp_path):
    env = Sophia(str(tmp_path), databases=[("d", ("string", "u64"))])
    env["d"][("x", 1)] = "v"
    env.close()
    with pytest.raises(SchemaMismatch, match="declared"):
        Sophia(str(tmp_path), databases=[("d", ("u64", "string"))])
    env = Sophia(str(tmp_path), databases=[("d", ("string", "u64"))])
    assert env["d"][("x", 1)] == "v"
    env.close()


def test_env_mapping(env):
    env.create_database("x", "string")
    assert "x" in env and "y" not in env and len(env) == 1
    assert env.databases == [("x", "string")]
    with pytest.raises(KeyError):
        env["y"]


def test_unknown_option(tmp_path):
    with pytest.raises(TypeError, match="unknown option"):
        Sophia(str(tmp_path), no_such_option=1)


def test_options_at_construction(tmp_path):
    env = Sophia(str(tmp_path), scheduler_threads=1, log_sync=True)
    env.create_database("d", "string")
    assert env.scheduler_threads == 1 and env.log_sync is True
    env.close()


def test_multi_get_chunks_and_big_values(env):
    db = env.create_database("mg", "string")
    vals = {"a": "x" * 40000, "b": "y" * 100000, "c": "z", "d": "w" * 40000, "e": "v" * 40000}
    db.update(vals)
    keys = ["a", "missing", "b", "c", "d", "e", "b"]
    assert db.multi_get(keys) == [vals.get(k) for k in keys]
    with db.view() as v:
        assert v.multi_get(["e", "nope"]) == [vals["e"], None]


def test_dropped_environment_releases_its_lock(tmp_path):
    # no reference cycle between an environment and its databases: dropping the last
    # reference closes it at once (CPython), so the directory can be opened again
    import gc
    import platform
    env = Sophia(str(tmp_path), databases=[("x", "string")])
    db = env["x"]
    db["a"] = "b"
    del env
    if platform.python_implementation() != "CPython":
        gc.collect()
    with pytest.raises(ClosedError, match="garbage-collected"):
        db["a"]
    env = Sophia(str(tmp_path), databases=[("x", "string")])
    assert env["x"]["a"] == "b"
    env.close()
