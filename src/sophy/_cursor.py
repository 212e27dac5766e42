"""Cursors: one-directional scans fetched in batches (one FFI crossing per batch of rows).

A cursor never seeks twice (the engine returns wrong rows when a cursor is reused for a new
seek); every scan — slices, iteration, ``cursor()`` — makes a new one.  Scans of a view or a
transaction use repeated seeks at the transaction's snapshot instead of an engine cursor.
"""
from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Iterator, List, Optional

from ._errors import ClosedError
from ._native import NULL, ffi, lib

if TYPE_CHECKING:  # pragma: no cover
    from ._db import Database

ORDERS = {">=": 0, ">": 1, "<=": 2, "<": 3}
# scan buffers are written by C before they are read: skip ffi.new's zero-fill (256 KiB a cursor)
_alloc = ffi.new_allocator(should_clear_after_alloc=False)
BATCH_ROWS = 256
BATCH_BYTES = 1 << 18


def order_code(order: Any) -> int:
    try:
        return ORDERS[order]
    except (KeyError, TypeError):
        raise ValueError("order must be one of '>=', '>', '<=', '<'; got %r" % (order,)) from None


class Cursor:
    """An iterator over a range of a database (or of a view/transaction snapshot).

    Yields ``(key, value)`` pairs, or only keys (``values=False``) or only values
    (``keys=False``). Close it (or use it as a context manager) to release the engine's snapshot
    early; it is also closed when exhausted or garbage-collected."""

    def __init__(self, db: "Database", order: str = ">=", key: Any = None,
                 prefix: Any = None, keys: bool = True, values: bool = True, *,
                 stop: Any = None, stop_inclusive: bool = True, txn: Any = None) -> None:
        code = order_code(order)
        if not keys and not values:
            raise ValueError("a cursor needs keys=True or values=True (or both)")
        schema = db._schema
        start_b = None if key is None else schema.encode_bound(key)
        stop_b = None if stop is None else schema.encode_bound(stop)
        prefix_b = None if prefix is None else _encode_prefix(schema, prefix)
        self._db = db
        self._want = (1 if keys else 0) | (2 if values else 0)
        self._keys, self._values = keys, values
        self._lock = threading.Lock()
        self._closed = False
        self._exhausted = False
        self._current: List[Any] = []
        self._c = ffi.new("sy_cursor *")
        self._t = NULL if txn is None else txn._t
        self._txn = txn  # keeps the transaction struct alive while we use it
        self._buf = _alloc("char[]", BATCH_BYTES)
        self._cap = BATCH_BYTES
        self._sizes = ffi.new("int32_t[]", 2 * BATCH_ROWS)
        env = db._env._handle
        self._envh = env
        rc = lib.sy_cursor_open(self._c, db._d, self._t, code,
                                start_b if start_b is not None else NULL, len(start_b or b""),
                                prefix_b if prefix_b is not None else NULL, len(prefix_b or b""),
                                stop_b if stop_b is not None else NULL, len(stop_b or b""),
                                1 if stop_inclusive else 0)
        if rc:
            self._closed = True
            raise env.error(rc, "opening a cursor on database %r" % db.name)
        env.children.add(self)
        if txn is not None:
            if txn._children is None:
                txn._children = weakref.WeakSet()
            txn._children.add(self)
        self._it = self._rows()
        self._text = schema.scalar and schema.key_types[0] == "string" and \
            schema.value_type == "string"

    def _fetch(self, want: int, maxrows: int = BATCH_ROWS) -> Optional[tuple]:
        """One batch: (rows, sizes list, data bytes), or None at the end."""
        while True:
            n = lib.sy_cursor_fetch(self._c, self._buf, self._cap, self._sizes, maxrows, want)
            if n > 0:
                sizes = ffi.unpack(self._sizes, 2 * n)
                return n, sizes, ffi.unpack(self._buf, sum(sizes))
            if n == 0:
                return None
            if n == lib.SY_TOOBIG:  # one row bigger than the buffer: grow and ask again
                self._cap = max(self._sizes[0], 2 * self._cap)
                self._buf = _alloc("char[]", self._cap)
                continue
            raise self._envh.error(n, "reading a cursor on database %r" % self._db.name)

    def _batch(self) -> Optional[List[Any]]:
        with self._lock:
            if self._closed:
                if self._exhausted:
                    return None
                raise ClosedError("cursor is closed")
            got = self._fetch(self._want)
            if got is None:
                self._exhausted = True
                self.close()
                return None
            n, sizes, data = got
        schema = self._db._schema
        dk, dv = schema.decode_key, schema.decode_value
        out: List[Any] = []
        o = 0
        if self._text:
            # str keys and values: decode the whole batch in one call; when it is ASCII the
            # character offsets equal the byte offsets, so rows are slices of one str and no
            # per-row decode call is needed
            text = data.decode()
            if len(text) == len(data):
                return _split(text, sizes, n, self._want)
        if self._want == 3:
            for i in range(0, 2 * n, 2):
                kl = sizes[i]
                e = o + kl + sizes[i + 1]
                out.append((dk(data[o:o + kl]), dv(data[o + kl:e])))
                o = e
        elif self._want == 1:
            for i in range(0, 2 * n, 2):
                e = o + sizes[i]
                out.append(dk(data[o:e]))
                o = e
        else:
            for i in range(1, 2 * n, 2):
                e = o + sizes[i]
                out.append(dv(data[o:e]))
                o = e
        return out

    def _rows(self) -> Iterator[Any]:
        while True:
            batch = self._batch()
            if batch is None:
                return
            # close() empties the current batch, which stops this loop at the next row
            # without a per-row check
            self._current = batch
            yield from batch

    def count(self) -> int:
        """Count the remaining rows without copying them out."""
        total = 0
        with self._lock:
            if self._closed:
                raise ClosedError("cursor is closed")
            while True:
                n = lib.sy_cursor_fetch(self._c, self._buf, self._cap, self._sizes, 1 << 20, 0)
                if n < 0:
                    raise self._envh.error(n, "counting database %r" % self._db.name)
                if n == 0:
                    break
                total += n
        self.close()
        return total

    def __iter__(self) -> Iterator[Any]:
        return self._it

    def __next__(self) -> Any:
        return next(self._it)

    def close(self) -> None:
        """Release the engine cursor (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._current.clear()
        lib.sy_cursor_close(self._c)

    _invalidate = close

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                lib.sy_cursor_close(self._c)
        except Exception:  # interpreter shutdown: modules may be gone already
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return "<sophy.Cursor on %r (%s)>" % (self._db.name, state)


def _split(data: Any, sizes: List[int], n: int, want: int) -> List[Any]:
    """Rows of a batch whose parts need no decoding (slices of ``data``)."""
    out: List[Any] = []
    o = 0
    if want == 3:
        for i in range(0, 2 * n, 2):
            m = o + sizes[i]
            e = m + sizes[i + 1]
            out.append((data[o:m], data[m:e]))
            o = e
    else:
        first = 0 if want == 1 else 1
        for i in range(first, 2 * n, 2):
            e = o + sizes[i]
            out.append(data[o:e])
            o = e
    return out


def _encode_prefix(schema: Any, prefix: Any) -> bytes:
    first = schema.key_types[0]
    if first == "string":
        if not isinstance(prefix, str):
            raise TypeError("prefix must be str for schema %s, got %r"
                            % (schema.description, prefix))
        return schema._parts[0](prefix, prefix)
    if first == "bytes":
        if not isinstance(prefix, (bytes, bytearray, memoryview)):
            raise TypeError("prefix must be bytes for schema %s, got %r"
                            % (schema.description, prefix))
        return schema._parts[0](prefix, prefix)
    raise TypeError("prefix searches need a 'string' or 'bytes' first key part; schema %s "
                    "starts with %r" % (schema.description, first))
