"""A hypothesis state machine of one database against an in-memory model (a dict, ordered by
``Schema.order_key``): single and batch writes, reads, slices, cursors, transactions, views kept
open across other operations, and reopening the environment.

Default size is bounded (the file runs in seconds); ``SOPHY_HYPOTHESIS_PROFILE=stress`` runs long.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, precondition, rule,
                                 run_state_machine_as_test)

from sophy import ClosedError, ReadOnlyError, Sophia
from sophy._codec import Schema

_COMMON = dict(deadline=None,  # PyPy's JIT warm-up makes the first examples slow
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("sophy-stateful", max_examples=25, stateful_step_count=40, **_COMMON)
settings.register_profile("sophy-stateful-stress", max_examples=400, stateful_step_count=80,
                          **_COMMON)
PROFILE = settings.get_profile(
    "sophy-stateful-stress" if os.environ.get("SOPHY_HYPOTHESIS_PROFILE") == "stress"
    else "sophy-stateful")

ORDERS = (">=", ">", "<=", "<")
MAX_VIEWS = 3
MAX_CURSORS = 2
BULK_ROWS = 300  # > the cursor batch of 256 rows

# -- key and value strategies: few distinct values, so operations hit the same keys --------------

TEXT_KEYS = ["", "a", "ab", "abc", "b", "ba", "\x00", "a\x00", "\u00e9", "\U0001f600", "zz"]
PREFIXES = ["", "a", "ab", "b", "\U0001f600", "q"]
BYTES_KEYS = [b"", b"\x00", b"\x00\xff", b"a", b"ab", b"a\xff", b"\xff", b"\xff\x00",
              b"\xff\xff"]
BYTES_PREFIXES = [b"", b"\x00", b"a", b"\xff", b"\xff\xff"]
INT_KEYS = [0, 1, 2, 3, 10, 255, 2**32, 2**63, 2**64 - 2, 2**64 - 1]


def _text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(TEXT_KEYS), st.text("ab\U0001f600", max_size=3))


def _int() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(INT_KEYS), st.integers(0, 12))


def keys_for(index_type: Any) -> st.SearchStrategy[Any]:
    if index_type == "string":
        return _text()
    if index_type == "u64":
        return _int()
    if index_type == "bytes":
        return st.one_of(st.sampled_from(BYTES_KEYS), st.binary(max_size=3))
    if index_type == ("string", "u64"):
        return st.tuples(_text(), st.sampled_from([0, 1, 5, 2**64 - 1]))
    raise AssertionError(index_type)


def values_for(value_type: str) -> st.SearchStrategy[Any]:
    if value_type == "bytes":
        return st.binary(max_size=6)
    return st.text(max_size=5)


# -- the model ----------------------------------------------------------------------------------

class Model:
    """What the database should hold, with the orders the engine uses."""

    def __init__(self, schema: Schema, data: Optional[Dict[Any, Any]] = None) -> None:
        self.schema = schema
        self.data: Dict[Any, Any] = dict(data or {})

    def copy(self) -> "Model":
        return Model(self.schema, self.data)

    def rows(self) -> List[Tuple[Any, Any]]:
        ok = self.schema.order_key
        return sorted(self.data.items(), key=lambda kv: ok(kv[0]))

    def slice(self, start: Any, stop: Any, step: Any) -> List[Tuple[Any, Any]]:
        ok = self.schema.order_key
        reverse = bool(step)
        if start is not None and stop is not None and ok(start) > ok(stop):
            start, stop, reverse = stop, start, True
        out = [(k, v) for k, v in self.rows()
               if (start is None or ok(k) >= ok(start)) and (stop is None or ok(k) <= ok(stop))]
        return out[::-1] if reverse else out

    def cursor(self, order: str, key: Any) -> List[Tuple[Any, Any]]:
        ok = self.schema.order_key
        rows = self.rows()
        if key is not None:
            b = ok(key)
            keep = {">=": lambda x: x >= b, ">": lambda x: x > b,
                    "<=": lambda x: x <= b, "<": lambda x: x < b}[order]
            rows = [(k, v) for k, v in rows if keep(ok(k))]
        return rows[::-1] if order.startswith("<") else rows

    def prefixed(self, order: str, prefix: str) -> List[Tuple[Any, Any]]:
        first = (lambda k: k) if self.schema.scalar else (lambda k: k[0])
        rows = [(k, v) for k, v in self.rows() if first(k).startswith(prefix)]
        return rows[::-1] if order.startswith("<") else rows


class Boom(Exception):
    """Raised inside a transaction block to check that it rolls back."""


_dirs = itertools.count()


class DatabaseMachine(RuleBasedStateMachine):
    """One database of one environment, driven side by side with a Model."""

    INDEX_TYPE: Any = "string"
    VALUE_TYPE = "string"
    ROOT: Path = Path(".")

    def __init__(self) -> None:
        super().__init__()
        self.path = self.ROOT / ("env%d" % next(_dirs))
        self.spec = [("db", self.INDEX_TYPE, self.VALUE_TYPE)]
        self.env = Sophia(self.path, databases=self.spec, scheduler_threads=0)
        self.db = self.env["db"]
        self.schema = Schema(self.INDEX_TYPE, self.VALUE_TYPE)
        self.model = Model(self.schema)
        self.views: List[Tuple[Any, Model]] = []
        # open cursors with the rows they must still yield (their snapshot, as of creation)
        self.cursors: List[Tuple[Any, List[Any]]] = []

    # strategies bound to this machine's schema are set by make_test() as class attributes
    keys: st.SearchStrategy[Any]
    values: st.SearchStrategy[Any]

    def teardown(self) -> None:
        for view, _ in self.views:
            view.close()
        for cursor, _ in self.cursors:
            cursor.close()
        self.env.close()

    # -- writes --
    @rule(data=st.data())
    def set(self, data: st.DataObject) -> None:
        k, v = data.draw(self.keys), data.draw(self.values)
        self.db[k] = v
        self.model.data[k] = v

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        k = data.draw(self.keys)
        del self.db[k]  # silent when missing, as in the original sophy
        self.model.data.pop(k, None)

    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        pairs = data.draw(st.lists(st.tuples(self.keys, self.values), max_size=8))
        self.db.update(pairs)
        self.model.data.update(pairs)

    @rule(data=st.data())
    def multi_delete(self, data: st.DataObject) -> None:
        ks = data.draw(st.lists(self.keys, max_size=4))
        self.db.multi_delete(ks)
        for k in ks:
            self.model.data.pop(k, None)

    @precondition(lambda self: len(self.model.data) < BULK_ROWS)
    @rule(start=st.integers(0, 3))
    def bulk_load(self, start: int) -> None:
        """Enough rows that scans span several of the cursor's 256-row batches."""
        pairs = [(self._bulk_key(start + 2 * i), self._value("v%d" % i))
                 for i in range(BULK_ROWS)]
        self.db.update(pairs)
        self.model.data.update(pairs)

    @rule()
    def clear(self) -> None:
        self.db.clear()
        self.model.data.clear()

    @rule(data=st.data(), with_default=st.booleans())
    def pop(self, data: st.DataObject, with_default: bool) -> None:
        k = data.draw(self.keys)
        if with_default:
            assert self.db.pop(k, "default") == self.model.data.pop(k, "default")
        elif k in self.model.data:
            assert self.db.pop(k) == self.model.data.pop(k)
        else:
            with pytest.raises(KeyError):
                self.db.pop(k)

    @rule(data=st.data())
    def setdefault(self, data: st.DataObject) -> None:
        k, v = data.draw(self.keys), data.draw(self.values)
        assert self.db.setdefault(k, v) == self.model.data.setdefault(k, v)

    # -- reads --
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        k = data.draw(self.keys)
        expected = self.model.data.get(k)
        assert self.db.get(k) == expected
        assert (k in self.db) == (k in self.model.data)
        if k in self.model.data:
            assert self.db[k] == expected
        else:
            with pytest.raises(KeyError):
                self.db[k]

    @rule(data=st.data())
    def multi_get(self, data: st.DataObject) -> None:
        ks = data.draw(st.lists(self.keys, max_size=6))
        assert self.db.multi_get(ks) == [self.model.data.get(k) for k in ks]
        assert self.db.multi_get_dict(ks) == {k: self.model.data[k] for k in ks
                                              if k in self.model.data}

    @rule(data=st.data())
    def slice(self, data: st.DataObject) -> None:
        start = data.draw(st.none() | self.keys)
        stop = data.draw(st.none() | self.keys)
        step = data.draw(st.sampled_from([None, True, False, 1, 0]))
        assert list(self.db[start:stop:step]) == self.model.slice(start, stop, step)

    @rule(data=st.data(), order=st.sampled_from(ORDERS))
    def cursor_from_key(self, data: st.DataObject, order: str) -> None:
        k = data.draw(self.keys)
        assert list(self.db.cursor(order=order, key=k)) == self.model.cursor(order, k)

    @rule(order=st.sampled_from((">=", "<=")))
    def cursor_whole(self, order: str) -> None:
        assert list(self.db.cursor(order=order)) == self.model.cursor(order, None)

    @precondition(lambda self: self.schema.key_types[0] in ("string", "bytes"))
    @rule(data=st.data(), order=st.sampled_from(ORDERS))
    def cursor_prefix(self, data: st.DataObject, order: str) -> None:
        prefix = data.draw(st.sampled_from(
            BYTES_PREFIXES if self.schema.key_types[0] == "bytes" else PREFIXES))
        assert list(self.db.cursor(order=order, prefix=prefix)) == \
            self.model.prefixed(order, prefix)

    @rule(keys_only=st.booleans())
    def keys_or_values(self, keys_only: bool) -> None:
        rows = self.model.rows()
        if keys_only:
            assert list(self.db.keys()) == [k for k, _ in rows]
            assert list(self.db.cursor(values=False, order="<=")) == [k for k, _ in rows][::-1]
        else:
            assert list(self.db.values()) == [v for _, v in rows]
            assert list(self.db.cursor(keys=False, order="<=")) == [v for _, v in rows][::-1]

    @rule()
    def length(self) -> None:
        assert len(self.db) == len(self.model.data)
        assert bool(self.db) == bool(self.model.data)

    # -- transactions --
    @rule(data=st.data(), how=st.sampled_from(["commit", "rollback", "raise", "rollback_restart",
                                               "commit_restart", "explicit_commit"]),
          through_env=st.booleans())
    def transaction(self, data: st.DataObject, how: str, through_env: bool) -> None:
        op = st.tuples(st.sampled_from(["set", "set", "del", "pop", "update", "setdefault"]),
                       self.keys, self.values)
        ops = st.lists(op, max_size=5)
        first, second = data.draw(ops), data.draw(ops)
        before = self.model.copy()
        local = self.model.copy()

        def apply(txn: Any, tdb: Any, batch: List[Tuple[str, Any, Any]]) -> None:
            # `txn` is the transaction's default-database API (or txn[db] for an environment
            # transaction), `tdb` its TxDatabase, for the operations only that one has
            for kind, k, v in batch:
                if kind == "set":
                    txn[k] = v
                    local.data[k] = v
                elif kind == "del":
                    del txn[k]
                    local.data.pop(k, None)
                elif kind == "pop":
                    assert tdb.pop(k, None) == local.data.pop(k, None)
                elif kind == "setdefault":
                    assert tdb.setdefault(k, v) == local.data.setdefault(k, v)
                else:
                    pairs = [(k, v), (k, v + v)]  # the later pair of a batch wins
                    tdb.update(pairs)
                    local.data.update(pairs)
                # exact-key reads see the transaction's own writes...
                assert txn.get(k) == local.data.get(k)
                assert (k in txn) == (k in local.data)
            touched = [k for _, k, _ in batch]
            assert tdb.multi_get(touched) == [local.data.get(k) for k in touched]

        def open_txn() -> Tuple[Any, Any, Any]:
            t = self.env.transaction() if through_env else self.db.transaction()
            return t, (t[self.db] if through_env else t), t[self.db]

        if how == "raise":
            with pytest.raises(Boom):
                t, writer, tdb = open_txn()
                with t:
                    apply(writer, tdb, first)
                    raise Boom()
            assert list(self.db) == before.rows()
            return
        txn, writer, tdb = open_txn()
        with txn:
            apply(writer, tdb, first)
            # ...scans see the snapshot the transaction started from, not its own writes
            assert list(tdb) == before.rows()
            if how == "rollback":
                txn.rollback()
                local = before.copy()
            elif how == "rollback_restart":
                txn.rollback()
                local = before.copy()
                apply(writer, tdb, second)
            elif how == "commit_restart":
                txn.commit()
                assert list(self.db) == local.rows()
                apply(writer, tdb, second)
            elif how == "explicit_commit":
                txn.commit(begin=False)
        if how == "explicit_commit":
            with pytest.raises(ClosedError):
                txn.commit()
        self.model = local

    # -- views: opened here, checked and closed by later rules while the database changes --
    @precondition(lambda self: len(self.views) < MAX_VIEWS)
    @rule()
    def open_view(self) -> None:
        self.views.append((self.db.view("v%d" % len(self.views)), self.model.copy()))

    @precondition(lambda self: bool(self.views))
    @rule(data=st.data())
    def check_view(self, data: st.DataObject) -> None:
        view, snap = self.views[data.draw(st.integers(0, len(self.views) - 1))]
        k = data.draw(self.keys)
        assert view.get(k) == snap.data.get(k)
        ks = data.draw(st.lists(self.keys, max_size=4))
        assert view.multi_get(ks) == [snap.data.get(k) for k in ks]
        assert (k in view) == (k in snap.data)
        assert list(view) == snap.rows()
        start, stop = data.draw(st.none() | self.keys), data.draw(st.none() | self.keys)
        assert list(view[start:stop]) == snap.slice(start, stop, None)
        order = data.draw(st.sampled_from(ORDERS))
        assert list(view.cursor(order=order, key=k)) == snap.cursor(order, k)
        assert len(view) == len(snap.data)
        with pytest.raises(ReadOnlyError):
            view[k] = data.draw(self.values)

    @precondition(lambda self: bool(self.views))
    @rule(data=st.data())
    def close_view(self, data: st.DataObject) -> None:
        view, _ = self.views.pop(data.draw(st.integers(0, len(self.views) - 1)))
        view.close()
        with pytest.raises(ClosedError):
            list(view)

    # -- cursors kept open while the database changes --
    @precondition(lambda self: len(self.cursors) < MAX_CURSORS)
    @rule(data=st.data(), order=st.sampled_from(ORDERS), shape=st.sampled_from(["kv", "k", "v"]))
    def open_cursor(self, data: st.DataObject, order: str, shape: str) -> None:
        key = data.draw(st.none() | self.keys)
        rows = self.model.cursor(order, key)
        c = self.db.cursor(order=order, key=key, keys=shape != "v", values=shape != "k")
        want = rows if shape == "kv" else [r[0] if shape == "k" else r[1] for r in rows]
        self.cursors.append((c, want))

    @precondition(lambda self: bool(self.cursors))
    @rule(data=st.data(), n=st.sampled_from([1, 2, 7, 300]))
    def step_cursor(self, data: st.DataObject, n: int) -> None:
        i = data.draw(st.integers(0, len(self.cursors) - 1))
        c, want = self.cursors[i]
        got = list(itertools.islice(c, n))
        assert got == want[:n]
        if len(want) <= n:  # exhausted: it closed itself
            self.cursors.pop(i)
            assert next(c, None) is None
        else:
            self.cursors[i] = (c, want[n:])

    @precondition(lambda self: bool(self.cursors))
    @rule(data=st.data())
    def close_cursor(self, data: st.DataObject) -> None:
        c, _ = self.cursors.pop(data.draw(st.integers(0, len(self.cursors) - 1)))
        c.close()
        with pytest.raises(ClosedError):
            next(c)

    # -- persistence --
    @rule()
    def reopen(self) -> None:
        self.env.close()
        for view, _ in self.views:  # closing the environment invalidated every view
            with pytest.raises(ClosedError):
                view.get(self._any_key())
        self.views = []
        for cursor, _ in self.cursors:  # ...and every cursor
            with pytest.raises(ClosedError):
                next(cursor)
        self.cursors = []
        with pytest.raises(ClosedError):
            self.db[self._any_key()] = self._any_value()
        self.env = Sophia(self.path, databases=self.spec, scheduler_threads=0)
        self.db = self.env["db"]
        assert list(self.db) == self.model.rows()

    def _bulk_key(self, i: int) -> Any:
        return {"string": "bulk%04d" % i, "u64": 10**6 + i, "bytes": b"bulk%04d" % i,
                ("string", "u64"): ("bulk", i)}[self.INDEX_TYPE]

    def _value(self, text: str) -> Any:
        return text.encode() if self.VALUE_TYPE == "bytes" else text

    def _any_key(self) -> Any:
        return {"string": "a", "u64": 1, "bytes": b"a",
                ("string", "u64"): ("a", 1)}[self.INDEX_TYPE]

    def _any_value(self) -> Any:
        return b"x" if self.VALUE_TYPE == "bytes" else "x"

    @invariant()
    def contents_match(self) -> None:
        assert list(self.db) == self.model.rows()


def _run(tmp_path: Path, index_type: Any, value_type: str) -> None:
    machine = type("Machine_%s_%s" % (str(index_type), value_type), (DatabaseMachine,), {
        "INDEX_TYPE": index_type, "VALUE_TYPE": value_type, "ROOT": tmp_path,
        "keys": keys_for(index_type), "values": values_for(value_type)})
    run_state_machine_as_test(machine, settings=PROFILE)


@pytest.mark.parametrize("index_type,value_type", [
    ("string", "string"), ("u64", "string"), (("string", "u64"), "bytes"), ("string", "bytes"),
    ("bytes", "bytes"),
], ids=["string", "u64", "string-u64-bytes", "string-bytes", "bytes-bytes"])
def test_database_against_model(tmp_path: Path, index_type: Any, value_type: str) -> None:
    _run(tmp_path, index_type, value_type)


@pytest.mark.parametrize("index_type,keys", [
    ("string", ["a", "ab", "b"]), (("string", "u64"), [("a", 0), ("a", 5), ("b", 1)])],
    ids=["string", "string-u64"])
def test_strict_prefix_scan_includes_the_prefix_itself(tmp_path: Path, index_type: Any,
                                                       keys: List[Any]) -> None:
    env = Sophia(tmp_path / "env", databases=[("db", index_type)], scheduler_threads=0)
    try:
        db = env["db"]
        db.update((k, "v") for k in keys)
        assert list(db.cursor(order=">", prefix="a", values=False)) == keys[:2]
    finally:
        env.close()
