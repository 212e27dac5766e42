"""Dict-like reading and writing of one database, directly or through a transaction or view.

``Reader`` holds the read operations (get, ``in``, iteration, slices, cursors) and ``Writer`` adds
the write operations; ``Database``, ``TxDatabase`` and ``View`` combine them with where the
operation goes (the database itself, or a transaction's struct).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, List, Optional, Tuple

from ._codec import KEY_PART_MAX, VALUE_MAX
from ._cursor import Cursor
from ._errors import ReadOnlyError, TransactionLocked
from ._native import GET_CAP, GET_POOL, NULL, ffi, lib, new_get_buffer

_MISSING = object()
_sy_get = lib.sy_get
_sy_set = lib.sy_set
_sy_delete = lib.sy_delete
_NOTFOUND = lib.SY_NOTFOUND
_unpack = ffi.unpack
_pool_pop = GET_POOL.pop
_pool_push = GET_POOL.append


class Reader:
    """Read operations. Subclasses set ``_db`` (the Database), ``_t`` (sy_txn* or NULL) and
    ``_txn`` (the owning Transaction/View, or None)."""

    _db: Any
    _t: Any = NULL
    _txn: Any = None

    def _attach(self, db: Any, txn: Any) -> None:
        """Cache what every operation needs, so the hot paths read one attribute each."""
        s = db._schema
        self._db = db
        self._d = db._d
        self._txn = txn
        self._t = NULL if txn is None else txn._t
        self._enc = s.encode_key
        self._encv = s.encode_value
        self._decv = s.decode_value
        self._str_keys = s.scalar and s.key_types[0] == "string"
        self._str_values = s.value_type == "string"

    # -- single reads: one crossing each --
    def _lookup(self, k: bytes) -> Any:
        """Encoded key -> decoded value, or _MISSING."""
        try:
            buf = _pool_pop()
        except IndexError:
            buf = new_get_buffer()
        n = _sy_get(self._d, self._t, k, len(k), buf, GET_CAP)
        if 0 <= n <= GET_CAP:
            v = self._decv(_unpack(buf, n))
            _pool_push(buf)
            return v
        _pool_push(buf)
        if n == _NOTFOUND:
            return _MISSING
        if n < 0:
            raise self._db._env._handle.error(n, self._what("reading"))
        return self._lookup_big(k, n)

    def _lookup_big(self, k: bytes, n: int) -> Any:
        # the value did not fit a pooled buffer: read it into one of its own size (the value may
        # have grown in between, so loop)
        while True:
            buf = ffi.new("char[]", n)
            got = _sy_get(self._d, self._t, k, len(k), buf, n)
            if got == _NOTFOUND:
                return _MISSING
            if got < 0:
                raise self._db._env._handle.error(got, self._what("reading"))
            if got <= n:
                return self._decv(_unpack(buf, got))
            n = got

    def _what(self, verb: str) -> str:
        return "%s database %r" % (verb, self._db.name)

    def __getitem__(self, key: Any) -> Any:
        # the hot path: one encode, one crossing, one unpack + decode (see _lookup); str keys
        # are encoded inline (a Python frame costs more than the encoding itself)
        if type(key) is str and self._str_keys:
            try:
                k = key.encode()
            except UnicodeEncodeError:
                k = self._enc(key)  # raises the precise error
            if len(k) > KEY_PART_MAX:
                k = self._enc(key)
        elif type(key) is slice:
            return self._slice(key)
        else:
            k = self._enc(key)
        try:
            buf = _pool_pop()
        except IndexError:
            buf = new_get_buffer()
        n = _sy_get(self._d, self._t, k, len(k), buf, GET_CAP)
        if 0 <= n <= GET_CAP:
            v = self._decv(_unpack(buf, n))
            _pool_push(buf)
            return v
        _pool_push(buf)
        if n == _NOTFOUND:
            raise KeyError(key)
        if n < 0:
            raise self._db._env._handle.error(n, self._what("reading"))
        v = self._lookup_big(k, n)
        if v is _MISSING:
            raise KeyError(key)
        return v

    def get(self, key: Any, default: Any = None) -> Any:
        """The value for ``key``, or ``default`` when it is missing."""
        if type(key) is str and self._str_keys:  # as in __getitem__: no encoder frame
            try:
                k = key.encode()
            except UnicodeEncodeError:
                k = self._enc(key)
            if len(k) > KEY_PART_MAX:
                k = self._enc(key)
        else:
            k = self._enc(key)
        v = self._lookup(k)
        return default if v is _MISSING else v

    def __contains__(self, key: Any) -> bool:
        k = self._enc(key)
        n = _sy_get(self._d, self._t, k, len(k), NULL, 0)
        if n >= 0:
            return True
        if n == _NOTFOUND:
            return False
        raise self._db._env._handle.error(n, self._what("reading"))

    exists = __contains__

    def multi_get(self, keys: Iterable[Any]) -> List[Any]:
        """Values for ``keys`` in order, ``None`` for each missing key (one crossing for the
        whole batch while the values fit a 64 KiB buffer)."""
        enc = self._enc
        encoded = [enc(k) for k in keys]
        out: List[Any] = []
        dec = self._decv
        start = 0
        total = len(encoded)
        while start < total:
            chunk = encoded[start:]
            n = len(chunk)
            klens = ffi.new("int32_t[]", [len(k) for k in chunk])
            vlens = ffi.new("int32_t[]", n)
            cap = GET_CAP
            buf = ffi.new("char[]", cap)
            got = lib.sy_get_many(self._d, self._t, n, b"".join(chunk), klens, buf, cap, vlens)
            if got == lib.SY_TOOBIG:  # the first value alone is bigger than the buffer
                out.append(self._lookup_big(chunk[0], vlens[0]))
                if out[-1] is _MISSING:
                    out[-1] = None
                start += 1
                continue
            if got < 0:
                raise self._db._env._handle.error(got, self._what("reading"))
            sizes = ffi.unpack(vlens, got)
            data = ffi.unpack(buf, sum(s for s in sizes if s > 0))
            o = 0
            for s in sizes:
                if s < 0:
                    out.append(None)
                else:
                    out.append(dec(data[o:o + s]))
                    o += s
            start += got
        return out

    def multi_get_dict(self, keys: Iterable[Any]) -> dict:
        """``{key: value}`` for the keys that exist."""
        keys = list(keys)
        return {k: v for k, v in zip(keys, self.multi_get(keys)) if v is not None}

    # -- scans --
    def cursor(self, order: str = ">=", key: Any = None, prefix: Any = None,
               keys: bool = True, values: bool = True) -> Cursor:
        """A cursor starting at ``key`` (or the first/last key) in ``order`` (``'>='`` default,
        ``'>'``, ``'<='``, ``'<'``), limited to keys starting with ``prefix`` if given."""
        return Cursor(self._db, order, key, prefix, keys, values, txn=self._txn)

    def _slice(self, s: slice) -> Cursor:
        """``db[a:b]``: inclusive on both ends; reversed when ``a > b`` or the step is truthy."""
        start, stop = s.start, s.stop
        reverse = bool(s.step)
        schema = self._db._schema
        if start is not None and stop is not None:
            a, b = schema.encode_bound(start), schema.encode_bound(stop)
            if lib.sy_keycmp(self._d, a, len(a), b, len(b)) > 0:
                start, stop = stop, start
                reverse = True
        if reverse:
            return Cursor(self._db, "<=", stop, stop=start, txn=self._txn)
        return Cursor(self._db, ">=", start, stop=stop, txn=self._txn)

    def __iter__(self) -> Iterator[Tuple[Any, Any]]:
        """(key, value) pairs in key order (as the sophy README shows)."""
        return iter(self.cursor())

    def items(self) -> Cursor:
        """(key, value) pairs in key order."""
        return self.cursor()

    def keys(self) -> Cursor:
        """Keys in order."""
        return self.cursor(values=False)

    def values(self) -> Cursor:
        """Values in key order."""
        return self.cursor(keys=False)

    def __len__(self) -> int:
        """Number of keys (a key-only scan: O(n), exact)."""
        return Cursor(self._db, ">=", None, None, True, False, txn=self._txn).count()

    def __bool__(self) -> bool:
        with Cursor(self._db, ">=", None, None, True, False, txn=self._txn) as c:
            return next(iter(c), _MISSING) is not _MISSING


class Writer(Reader):
    """Write operations; atomic batches go through one transaction in one crossing."""

    def _check_write(self, rc: int, verb: str) -> None:
        if rc < 0:
            raise self._db._env._handle.error(rc, self._what(verb))

    def __setitem__(self, key: Any, value: Any) -> None:
        if type(key) is str and self._str_keys:
            try:
                k = key.encode()
            except UnicodeEncodeError:
                k = self._enc(key)  # raises the precise error
            if len(k) > KEY_PART_MAX:
                k = self._enc(key)
        else:
            k = self._enc(key)
        if type(value) is str and self._str_values:
            try:
                v = value.encode()
            except UnicodeEncodeError:
                v = self._encv(value)
            if len(v) > VALUE_MAX:
                v = self._encv(value)
        else:
            v = self._encv(value)
        rc = _sy_set(self._d, self._t, k, len(k), v, len(v))
        if rc:
            self._check_write(rc, "writing to")

    set = __setitem__

    def __delitem__(self, key: Any) -> None:
        """Delete ``key``; deleting a missing key is not an error (as in the engine)."""
        k = self._enc(key)
        rc = _sy_delete(self._d, self._t, k, len(k))
        if rc:
            self._check_write(rc, "deleting from")

    delete = __delitem__

    def _batch(self, keys: List[bytes], values: Optional[List[bytes]]) -> None:
        n = len(keys)
        if n == 0:
            return
        klens = ffi.new("int32_t[]", [len(k) for k in keys])
        if values is None:
            vbuf, vlens = NULL, NULL
        else:
            vbuf = b"".join(values)
            vlens = ffi.new("int32_t[]", [len(v) for v in values])
        rc = lib.sy_set_many(self._d, self._t, n, b"".join(keys), klens, vbuf, vlens)
        if rc == lib.SY_LOCKED and self._t == NULL:
            raise TransactionLocked("%s: the batch was rolled back because a key is locked by "
                                    "another transaction or a concurrent commit conflicted"
                                    % self._what("writing to"))
        if rc:
            self._check_write(rc, "writing to")

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Write many pairs atomically (one transaction): a mapping or (key, value) pairs,
        and/or keyword arguments (string keys)."""
        if len(args) > 1:
            raise TypeError("update expected at most 1 positional argument, got %d" % len(args))
        enc_k, enc_v = self._enc, self._encv
        keys: List[bytes] = []
        vals: List[bytes] = []
        if args:
            src = args[0]
            pairs = src.items() if hasattr(src, "items") else src
            for pair in pairs:
                try:
                    k, v = pair
                except (TypeError, ValueError):
                    raise TypeError("update() needs a mapping or (key, value) pairs; got element "
                                    "%r" % (pair,)) from None
                keys.append(enc_k(k))
                vals.append(enc_v(v))
        for k, v in kwargs.items():
            keys.append(enc_k(k))
            vals.append(enc_v(v))
        self._batch(keys, vals)

    def multi_delete(self, keys: Iterable[Any]) -> None:
        """Delete many keys atomically (missing keys are ignored)."""
        enc = self._enc
        self._batch([enc(k) for k in keys], None)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (``default``, or KeyError, when missing)."""
        k = self._enc(key)
        v = self._lookup(k)
        if v is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        self._check_write(_sy_delete(self._d, self._t, k, len(k)), "deleting from")
        return v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """``db[key]`` if present, else store and return ``default``."""
        k = self._enc(key)
        v = self._lookup(k)
        if v is not _MISSING:
            return v
        enc = self._encv(default)
        self._check_write(_sy_set(self._d, self._t, k, len(k), enc, len(enc)), "writing to")
        return default

    def clear(self) -> None:
        """Delete every key, atomically."""
        enc_keys: List[bytes] = []
        with Cursor(self._db, ">=", None, None, True, False, txn=self._txn) as c:
            while True:
                got = c._fetch(1)
                if got is None:
                    break
                n, sizes, data = got
                o = 0
                for i in range(0, 2 * n, 2):
                    enc_keys.append(data[o:o + sizes[i]])
                    o += sizes[i]
        self._batch(enc_keys, None)


class ReadOnly(Reader):
    """A reader whose writes raise ReadOnlyError."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyError("%s is a read-only view; write to the database instead"
                            % self._describe())

    def _describe(self) -> str:
        return "this"

    __setitem__ = __delitem__ = update = set = delete = pop = setdefault = _refuse
    multi_delete = clear = _refuse

