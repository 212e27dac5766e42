"""Transactions (SSI, several databases, one atomic commit) and read-only views.

2.2 has no native views: a ``View`` is a transaction that is only ever read from, so exact-key
reads see its snapshot and scans are repeated seeks at that snapshot.
"""
from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, Optional

from ._access import ReadOnly, Writer
from ._errors import ClosedError, TransactionConflict, TransactionLocked
from ._native import ffi, lib

if TYPE_CHECKING:  # pragma: no cover
    from ._db import Database
    from ._env import Sophia


class _TxHandle:
    """Owns one ``sy_txn`` and the cursors reading it."""

    _t: Any

    def _begin(self, env: "Sophia", what: str) -> None:
        h = env._handle
        self._h = h
        self._t = ffi.new("sy_txn *")
        # cursors reading this transaction; made on first use (most transactions have none)
        self._children: "Optional[weakref.WeakSet[Any]]" = None
        h.check(lib.sy_begin(h.e, self._t), what)
        h.children.add(self)
        self.active = True

    def _end(self) -> None:
        if self._children:
            for c in list(self._children):
                c.close()
        self.active = False

    def _invalidate(self) -> None:
        if self.active:
            self._end()
            lib.sy_rollback(self._t)

    def __del__(self) -> None:
        try:
            if getattr(self, "active", False):
                lib.sy_rollback(self._t)
        except Exception:  # interpreter shutdown
            pass


class TxDatabase(Writer):
    """One database as seen through a transaction: reads see the transaction's snapshot plus
    its own writes (exact keys; scans see the snapshot only), writes become visible at commit."""

    def __init__(self, db: "Database", txn: "Transaction") -> None:
        if db._envref() is not txn._env:
            raise ValueError("database %r belongs to another environment" % db.name)
        self._attach(db, txn)

    def __repr__(self) -> str:
        return "<sophy.TxDatabase %r>" % self._db.name


class Transaction(_TxHandle):
    """An atomic unit of reads and writes across the databases of one environment:
    ``txn[db][key] = value``.

    As a context manager it commits at the end of the block and rolls back if the block raises.
    ``commit()`` and ``rollback()`` inside the block end the current transaction and start a
    new one. A commit that loses to a concurrent transaction raises ``TransactionConflict``; one
    that finds a key locked by another open transaction is retried for ``lock_timeout``
    seconds, then rolled back with ``TransactionLocked``."""

    _default: Optional["Database"] = None

    def __init__(self, env: "Sophia", lock_timeout: float = 1.0) -> None:
        self._env = env
        self.lock_timeout = lock_timeout
        self._views: Dict[int, TxDatabase] = {}
        self._begin(env, "beginning a transaction")

    def _for(self, db: "Database") -> TxDatabase:
        tdb = self._views.get(id(db))
        if tdb is None or tdb._db is not db:
            tdb = self._views[id(db)] = TxDatabase(db, self)
        return tdb

    def __getitem__(self, item: Any) -> Any:
        if getattr(item, "_is_database", False):
            return self._for(item)
        raise TypeError("this transaction is not bound to a database: use txn[db][key] "
                        "(or db.transaction() for txn[key])")

    def _unbound(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("this transaction is not bound to a database: use txn[db][key] "
                        "(or db.transaction() for txn[key])")

    __setitem__ = __delitem__ = __contains__ = __iter__ = get = update = cursor = _unbound

    def commit(self, begin: bool = True) -> None:
        """Commit; with ``begin`` (the default) a new transaction starts on this object."""
        if not self.active:
            raise ClosedError("transaction is closed (already committed or rolled back)")
        self._end()
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.0005
        while True:
            rc = lib.sy_commit(self._t)
            if rc != 2:
                break
            if time.monotonic() >= deadline:
                lib.sy_rollback(self._t)
                self._restart(begin)
                raise TransactionLocked("commit waited %.3gs for a key locked by another open "
                                        "transaction; rolled back" % self.lock_timeout)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        self._restart(begin)
        if rc == 1:
            raise TransactionConflict("transaction rolled back: a concurrent transaction "
                                      "committed a conflicting change first")
        if rc < 0:
            raise self._h.error(rc, "committing a transaction")

    def rollback(self, begin: bool = True) -> None:
        """Discard every write; with ``begin`` a new transaction starts on this object."""
        if self.active:
            self._end()
            lib.sy_rollback(self._t)
        self._restart(begin)

    def _restart(self, begin: bool) -> None:
        if begin:
            self._h.check(lib.sy_begin(self._h.e, self._t), "beginning a transaction")
            self.active = True

    def __enter__(self) -> "Transaction":
        if not self.active:
            raise ClosedError("transaction is closed")
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.active:
            return
        if exc_type is None:
            self.commit(begin=False)
        else:
            self.rollback(begin=False)

    def __repr__(self) -> str:
        return "<sophy.Transaction %s>" % ("active" if self.active else "closed")


class DatabaseTransaction(Writer, Transaction):
    """A transaction bound to one database: ``txn[key]`` reads and writes it directly (the
    dict operations of a database, through the transaction), while ``txn[other_db][key]``
    reaches the other databases of the environment. (Writer comes first in the bases, so its
    dict operations win over Transaction's unbound stand-ins.)"""

    def __init__(self, db: "Database", lock_timeout: float = 1.0) -> None:
        Transaction.__init__(self, db._env, lock_timeout)
        self._default = db
        self._attach(db, self)

    def __getitem__(self, item: Any) -> Any:
        if getattr(item, "_is_database", False):
            return self._for(item)
        return Writer.__getitem__(self, item)


class View(ReadOnly, _TxHandle):
    """A read-only, point-in-time snapshot of one database.

    Keeping it open pins the versions it can see (memory and disk grow while it lives, and
    every exact-key read is recorded); close it when done."""

    def __init__(self, db: "Database", name: str = "view") -> None:
        self.name = name
        self._env = db._env
        self._begin(db._env, "creating view %r" % name)
        self._attach(db, self)

    def _describe(self) -> str:
        return "view %r" % self.name

    def close(self) -> None:
        """Release the snapshot (idempotent)."""
        self._invalidate()

    def __enter__(self) -> "View":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<sophy.View %r of %r%s>" % (self.name, self._db.name,
                                            "" if self.active else " (closed)")
