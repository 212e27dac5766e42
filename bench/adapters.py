"""One small adapter per system, each written the way a user of that library would write the loop.

Every adapter offers the same methods (used by workloads.run_all): set_all, get_all, scan_all,
ranges, prefixes, batches, multi_gets, txns, thread_getter, close. Loops live *inside* the adapter
with bound methods hoisted into locals, so the suite measures the library and not an extra layer
of Python calls per operation.

Durability is matched across systems: none of them fsyncs on every write (Sophia's default log
does not sync; LMDB is opened with sync=False; LevelDB writes default to sync=False; SQLite runs
in WAL mode with synchronous=NORMAL).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Sequence, Tuple

Getter = Callable[[Sequence[Any]], int]


class Ours:
    """sophy (this repository): ``Sophia(path).create_database(name, 'string')``."""

    native = str

    def __init__(self, path: str) -> None:
        from sophy import Sophia
        self.env = Sophia(path)
        self.db = self.env.create_database("test", "string")

    def set_all(self, keys: Sequence[Any], value: Any) -> None:
        db = self.db
        for k in keys:
            db[k] = value

    def get_all(self, keys: Sequence[Any]) -> int:
        # get() rather than db[k]: a KeyError per miss would measure exception handling
        get = self.db.get
        found = 0
        for k in keys:
            if get(k) is not None:
                found += 1
        return found

    def thread_getter(self) -> Getter:
        return self.get_all

    def scan_all(self) -> int:
        rows = 0
        for _k, _v in self.db.items():
            rows += 1
        return rows

    def ranges(self, bounds: Sequence[Tuple[Any, Any]]) -> int:
        db = self.db
        rows = 0
        for start, stop in bounds:
            for _k, _v in db[start:stop]:
                rows += 1
        return rows

    def prefixes(self, prefixes: Sequence[Any]) -> int:
        cursor = self.db.cursor
        rows = 0
        for p in prefixes:
            for _k, _v in cursor(prefix=p):
                rows += 1
        return rows

    def batches(self, batches: Sequence[Dict[Any, Any]]) -> None:
        update = self.db.update
        for b in batches:
            update(b)

    def multi_gets(self, groups: Sequence[Sequence[Any]]) -> int:
        multi_get = self.db.multi_get
        found = 0
        for g in groups:
            for v in multi_get(g):
                if v is not None:
                    found += 1
        return found

    def txns(self, groups: Sequence[Sequence[Any]], value: Any) -> None:
        env, db = self.env, self.db
        for g in groups:
            with env.transaction() as txn:
                t = txn[db]
                for k in g:
                    t[k] = value

    def close(self) -> None:
        self.env.close()


class Peer(Ours):
    """sophy 0.7.1 (Cython): same data-access API, different set-up (Schema + add_database)."""

    def __init__(self, path: str) -> None:
        from sophy import Schema, Sophia, StringIndex
        self.env = Sophia(path)
        self.db = self.env.add_database(
            "test", Schema([StringIndex("key")], [StringIndex("value")]))
        self.env.open()


class Lmdb:
    """py-lmdb. One transaction per single operation, like an autocommit store."""

    native = bytes

    def __init__(self, path: str) -> None:
        import lmdb
        # sync/metasync off: no fsync per commit, matching the other systems
        self.env = lmdb.open(path, map_size=8 << 30, sync=False, metasync=False)

    def set_all(self, keys: Sequence[Any], value: Any) -> None:
        begin = self.env.begin
        for k in keys:
            with begin(write=True) as t:
                t.put(k, value)

    def get_all(self, keys: Sequence[Any]) -> int:
        begin = self.env.begin
        found = 0
        for k in keys:
            with begin() as t:
                if t.get(k) is not None:
                    found += 1
        return found

    def thread_getter(self) -> Getter:
        return self.get_all

    def scan_all(self) -> int:
        rows = 0
        with self.env.begin() as t:
            for _k, _v in t.cursor():
                rows += 1
        return rows

    def ranges(self, bounds: Sequence[Tuple[Any, Any]]) -> int:
        rows = 0
        begin = self.env.begin
        for start, stop in bounds:
            with begin() as t:
                cur = t.cursor()
                if not cur.set_range(start):
                    continue
                for k, _v in cur:
                    if k > stop:
                        break
                    rows += 1
        return rows

    def prefixes(self, prefixes: Sequence[Any]) -> int:
        rows = 0
        begin = self.env.begin
        for p in prefixes:
            with begin() as t:
                cur = t.cursor()
                if not cur.set_range(p):
                    continue
                for k, _v in cur:
                    if not k.startswith(p):
                        break
                    rows += 1
        return rows

    def batches(self, batches: Sequence[Dict[Any, Any]]) -> None:
        begin = self.env.begin
        for b in batches:
            with begin(write=True) as t:
                put = t.put
                for k, v in b.items():
                    put(k, v)

    def multi_gets(self, groups: Sequence[Sequence[Any]]) -> int:
        found = 0
        begin = self.env.begin
        for g in groups:
            with begin() as t:
                get = t.get
                for v in [get(k) for k in g]:
                    if v is not None:
                        found += 1
        return found

    def txns(self, groups: Sequence[Sequence[Any]], value: Any) -> None:
        begin = self.env.begin
        for g in groups:
            with begin(write=True) as t:
                put = t.put
                for k in g:
                    put(k, value)

    def close(self) -> None:
        self.env.close()


class Plyvel(Lmdb):
    """plyvel (LevelDB). LevelDB has no transactions: an atomic WriteBatch stands in for one."""

    native = bytes

    def __init__(self, path: str) -> None:
        import plyvel
        self.db = plyvel.DB(path, create_if_missing=True)

    def set_all(self, keys: Sequence[Any], value: Any) -> None:
        put = self.db.put
        for k in keys:
            put(k, value)

    def get_all(self, keys: Sequence[Any]) -> int:
        get = self.db.get
        found = 0
        for k in keys:
            if get(k) is not None:
                found += 1
        return found

    def scan_all(self) -> int:
        rows = 0
        for _k, _v in self.db:
            rows += 1
        return rows

    def ranges(self, bounds: Sequence[Tuple[Any, Any]]) -> int:
        it = self.db.iterator
        rows = 0
        for start, stop in bounds:
            for _k, _v in it(start=start, stop=stop, include_stop=True):
                rows += 1
        return rows

    def prefixes(self, prefixes: Sequence[Any]) -> int:
        it = self.db.iterator
        rows = 0
        for p in prefixes:
            for _k, _v in it(prefix=p):
                rows += 1
        return rows

    def batches(self, batches: Sequence[Dict[Any, Any]]) -> None:
        for b in batches:
            with self.db.write_batch() as wb:
                put = wb.put
                for k, v in b.items():
                    put(k, v)

    def multi_gets(self, groups: Sequence[Sequence[Any]]) -> int:
        # no multi-get in LevelDB: a list of gets is what users write
        get = self.db.get
        found = 0
        for g in groups:
            for v in [get(k) for k in g]:
                if v is not None:
                    found += 1
        return found

    def txns(self, groups: Sequence[Sequence[Any]], value: Any) -> None:
        for g in groups:
            with self.db.write_batch() as wb:
                put = wb.put
                for k in g:
                    put(k, value)

    def close(self) -> None:
        self.db.close()


class Sqlite:
    """stdlib sqlite3: one table with a TEXT primary key (WITHOUT ROWID), WAL mode, autocommit."""

    native = str

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self.file = os.path.join(path, "kv.sqlite")
        self.conn = self._connect()
        self.conn.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)"
                          " WITHOUT ROWID")

    def _connect(self) -> Any:
        import sqlite3
        # isolation_level=None: autocommit, so a single set is its own transaction as elsewhere
        conn = sqlite3.connect(self.file, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def set_all(self, keys: Sequence[Any], value: Any) -> None:
        ex = self.conn.execute
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        for k in keys:
            ex(sql, (k, value))

    @staticmethod
    def _get_all(conn: Any, keys: Sequence[Any]) -> int:
        ex = conn.execute
        sql = "SELECT v FROM kv WHERE k = ?"
        found = 0
        for k in keys:
            if ex(sql, (k,)).fetchone() is not None:
                found += 1
        return found

    def get_all(self, keys: Sequence[Any]) -> int:
        return self._get_all(self.conn, keys)

    def thread_getter(self) -> Getter:
        # a connection per thread: sharing one would serialise the threads on its mutex
        conn = self._connect()
        self._thread_conns = getattr(self, "_thread_conns", []) + [conn]
        return lambda keys: self._get_all(conn, keys)

    def scan_all(self) -> int:
        rows = 0
        for _row in self.conn.execute("SELECT k, v FROM kv ORDER BY k"):
            rows += 1
        return rows

    def ranges(self, bounds: Sequence[Tuple[Any, Any]]) -> int:
        ex = self.conn.execute
        sql = "SELECT k, v FROM kv WHERE k >= ? AND k <= ? ORDER BY k"
        rows = 0
        for start, stop in bounds:
            for _row in ex(sql, (start, stop)):
                rows += 1
        return rows

    def prefixes(self, prefixes: Sequence[Any]) -> int:
        ex = self.conn.execute
        sql = "SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k"
        rows = 0
        for p in prefixes:
            upper = p[:-1] + chr(ord(p[-1]) + 1)  # keys are ASCII
            for _row in ex(sql, (p, upper)):
                rows += 1
        return rows

    def batches(self, batches: Sequence[Dict[Any, Any]]) -> None:
        ex, many = self.conn.execute, self.conn.executemany
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        for b in batches:
            ex("BEGIN")
            many(sql, b.items())
            ex("COMMIT")

    def multi_gets(self, groups: Sequence[Sequence[Any]]) -> int:
        ex = self.conn.execute
        found = 0
        for g in groups:
            sql = "SELECT k, v FROM kv WHERE k IN (%s)" % ",".join("?" * len(g))
            got = dict(ex(sql, g).fetchall())
            for v in [got.get(k) for k in g]:  # a multi-get returns values in request order
                if v is not None:
                    found += 1
        return found

    def txns(self, groups: Sequence[Sequence[Any]], value: Any) -> None:
        ex = self.conn.execute
        sql = "INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)"
        for g in groups:
            ex("BEGIN")
            for k in g:
                ex(sql, (k, value))
            ex("COMMIT")

    def close(self) -> None:
        for conn in getattr(self, "_thread_conns", []):
            conn.close()
        self.conn.close()


ADAPTERS: Dict[str, type] = {
    "ours": Ours, "peer": Peer, "lmdb": Lmdb, "plyvel": Plyvel, "sqlite3": Sqlite,
}


def adapter_names() -> List[str]:
    """The adapter kinds a worker can be asked for."""
    return sorted(ADAPTERS)
