"""The bad-input matrix: every wrong key, value, option or use of a closed handle raises the
documented exception, with a message naming what was wrong; nothing is written; and the
environment is still usable afterwards.

Documented exceptions (src/sophy/_codec.py, _config.py, _access.py, _env.py): TypeError for
wrong types and arity, OverflowError for out-of-range integers, ValueError for over-limit sizes,
bad encodings and unknown type/order/compression names, ConfigurationError for configuration
problems, ReadOnlyError for writes to views, ClosedError for closed handles, KeyError for
unknown database names.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from sophy import ClosedError, ConfigurationError, ReadOnlyError, SchemaMismatch, Sophia

SCRATCH = tempfile.mkdtemp(prefix="sophy-bad-input-")
KEY_LIMIT = 1024
VALUE_LIMIT = 2 * 1024 * 1024
INT_BITS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64}
INT_TYPES = [t + rev for t in INT_BITS for rev in ("", "_rev")]
DATABASES: List[Tuple[Any, ...]] = (
    [("k_string", "string"), ("k_bytes", "bytes"), ("v_bytes", "string", "bytes"),
     ("multi", ("string", "u64")), ("triple", ("bytes", "u32_rev", "string"))]
    + [("k_" + t, t) for t in INT_TYPES])
SEED: Dict[str, List[Tuple[Any, Any]]] = {
    "k_string": [("a", "1"), ("b", "2")],
    "k_bytes": [(b"a", "1"), (b"\x00\xff", "2")],
    "v_bytes": [("a", b"\x00\x01")],
    "multi": [(("a", 1), "1"), (("a", 2), "2")],
    "triple": [((b"x", 5, "s"), "1")],
}
for _t in INT_TYPES:
    SEED["k_" + _t] = [(0, "zero"), ((1 << INT_BITS[_t[:-4] if _t.endswith("_rev") else _t]) - 1,
                                     "max")]


@pytest.fixture(scope="module")
def env(tmp_path_factory: Any) -> Any:
    e = Sophia(str(tmp_path_factory.mktemp("bad") / "env"), databases=DATABASES)
    for name, rows in SEED.items():
        e[name].update(rows)
    yield e
    e.close()
    shutil.rmtree(SCRATCH, ignore_errors=True)


def snapshot(e: Sophia) -> Dict[str, List[Tuple[Any, Any]]]:
    return {name: list(e[name].items()) for name in e}


def assert_usable(e: Sophia) -> None:
    """A write + read + delete round trip on the environment."""
    db = e["k_string"]
    db["round-trip"] = "ok"
    assert db["round-trip"] == "ok"
    del db["round-trip"]
    assert "round-trip" not in db


Case = Tuple[str, Callable[[Sophia], Any], type, Tuple[str, ...]]


def _set(name: str, key: Any, value: Any = "v") -> Callable[[Sophia], Any]:
    return lambda e: e[name].__setitem__(key, value)


def _get(name: str, key: Any) -> Callable[[Sophia], Any]:
    return lambda e: e[name][key]


def _int_cases() -> List[Case]:
    cases: List[Case] = []
    for t in INT_TYPES:
        bits = INT_BITS[t[:-4] if t.endswith("_rev") else t]
        db = "k_" + t
        cases += [
            ("%s-negative" % t, _set(db, -1), OverflowError, ("-1", "out of range", t)),
            ("%s-too-large" % t, _set(db, 1 << bits), OverflowError,
             (str(1 << bits), "out of range", str((1 << bits) - 1))),
            ("%s-float" % t, _set(db, 1.0), TypeError, ("must be int", "float")),
            ("%s-bool" % t, _set(db, True), TypeError, ("must be int", "bool")),
            ("%s-str" % t, _set(db, "1"), TypeError, ("must be int", "str")),
            ("%s-None" % t, _get(db, None), TypeError, ("must be int", "NoneType")),
            ("%s-tuple" % t, _get(db, (1,)), TypeError, ("must be int", "tuple")),
        ]
    return cases


BIG_KEY = "k" * (KEY_LIMIT + 1)
BIG_UTF8_KEY = "\u00e9" * (KEY_LIMIT // 2 + 1)  # 513 chars, 1026 bytes in UTF-8
BIG_VALUE = "v" * (VALUE_LIMIT + 1)

CASES: List[Case] = _int_cases() + [
    # string keys
    ("string-None", _set("k_string", None), TypeError, ("must be str", "NoneType")),
    ("string-int", _set("k_string", 1), TypeError, ("must be str", "int")),
    ("string-float", _get("k_string", 1.5), TypeError, ("must be str", "float")),
    ("string-bool", _set("k_string", False), TypeError, ("must be str", "bool")),
    ("string-bytes", _set("k_string", b"a"), TypeError, ("must be str", "bytes")),
    ("string-non-utf8-bytes", _set("k_string", b"\xff\xfe"), TypeError, ("must be str",)),
    ("string-tuple", _set("k_string", ("a",)), TypeError, ("must be str", "tuple")),
    ("string-over-limit", _set("k_string", BIG_KEY), ValueError,
     ("1025 bytes", "limit is 1024")),
    ("string-over-limit-utf8", _set("k_string", BIG_UTF8_KEY), ValueError,
     ("1026 bytes in UTF-8", "limit is 1024")),
    ("string-lone-surrogate", _set("k_string", "\ud800"), ValueError, ("UTF-8", "surrogate")),
    ("string-surrogate-get", _get("k_string", "a\udfff"), ValueError, ("UTF-8",)),
    ("string-surrogate-delete", lambda e: e["k_string"].__delitem__("\ud800"), ValueError,
     ("UTF-8",)),
    # bytes keys
    ("bytes-str", _set("k_bytes", "a"), TypeError, ("must be bytes", "str")),
    ("bytes-int", _set("k_bytes", 1), TypeError, ("must be bytes", "int")),
    ("bytes-None", _get("k_bytes", None), TypeError, ("must be bytes", "NoneType")),
    ("bytes-list", _set("k_bytes", [1, 2]), TypeError, ("must be bytes", "list")),
    ("bytes-over-limit", _set("k_bytes", b"x" * (KEY_LIMIT + 1)), ValueError,
     ("1025 bytes", "limit is 1024")),
    # values
    ("value-None", _set("k_string", "k", None), TypeError, ("expected value str", "NoneType")),
    ("value-int", _set("k_string", "k", 1), TypeError, ("expected value str", "int")),
    ("value-float", _set("k_string", "k", 1.5), TypeError, ("expected value str", "float")),
    ("value-bytes-for-str", _set("k_string", "k", b"\xff"), TypeError,
     ("expected value str", "bytes")),
    ("value-surrogate", _set("k_string", "k", "x\ud800"), ValueError, ("UTF-8", "surrogate")),
    ("value-over-limit", _set("k_string", "k", BIG_VALUE), ValueError,
     ("2097153 bytes", "limit is 2097152")),
    ("value-str-for-bytes", _set("v_bytes", "k", "text"), TypeError,
     ("expected value bytes", "str")),
    ("value-bytes-over-limit", _set("v_bytes", "k", b"v" * (VALUE_LIMIT + 1)), ValueError,
     ("2097153 bytes", "limit is 2097152")),
    # multi-part keys
    ("multi-too-few", _set("multi", ("a",)), TypeError, ("2 part(s) needed, got 1",)),
    ("multi-too-many", _set("multi", ("a", 1, 2)), TypeError, ("2 part(s) needed, got 3",)),
    ("multi-empty-tuple", _get("multi", ()), TypeError, ("2 part(s) needed, got 0",)),
    ("multi-not-tuple", _set("multi", "a"), TypeError, ("a tuple is needed",)),
    ("multi-list", _set("multi", ["a", 1]), TypeError, ("a tuple is needed",)),
    ("multi-None", _get("multi", None), TypeError, ("a tuple is needed",)),
    ("multi-wrong-part-type", _set("multi", (1, "a")), TypeError, ("part 0 must be str",)),
    ("multi-part-overflow", _set("multi", ("a", -5)), OverflowError,
     ("part 1 = -5 is out of range",)),
    ("multi-part-too-large", _set("multi", ("a", 1 << 64)), OverflowError,
     ("out of range for u64",)),
    ("multi-part-over-limit", _set("multi", (BIG_KEY, 1)), ValueError,
     ("part 0 is 1025 bytes",)),
    ("multi-delete-too-few", lambda e: e["multi"].__delitem__(("a",)), TypeError,
     ("2 part(s) needed",)),
    ("triple-rev-overflow", _set("triple", (b"x", 1 << 32, "s")), OverflowError,
     ("part 1", "u32_rev")),
    ("triple-bytes-part-str", _set("triple", ("x", 1, "s")), TypeError,
     ("part 0 must be bytes",)),
    ("triple-surrogate-part", _set("triple", (b"x", 1, "\ud800")), ValueError,
     ("part 2 is not encodable",)),
    # batches: one bad element and nothing of the batch is written
    ("update-bad-key", lambda e: e["k_string"].update([("fine", "1"), (2, "2")]), TypeError,
     ("must be str",)),
    ("update-bad-value", lambda e: e["k_string"].update({"fine": "1", "bad": 2}), TypeError,
     ("expected value str",)),
    ("update-not-pairs", lambda e: e["k_string"].update([1]), TypeError, ("(key, value) pairs",)),
    ("update-two-args", lambda e: e["k_string"].update({}, {}), TypeError, ("at most 1",)),
    ("multi-delete-bad-key", lambda e: e["k_string"].multi_delete(["a", 3]), TypeError,
     ("must be str",)),
    ("txn-bad-key", lambda e: _txn_write(e, [("ok", "1"), (None, "2")]), TypeError,
     ("must be str",)),
    # cursors and slices
    ("cursor-bad-order", lambda e: e["k_string"].cursor(order="!="), ValueError,
     ("order must be one of", "'!='")),
    ("cursor-order-None", lambda e: e["k_string"].cursor(order=None), ValueError,
     ("order must be one of",)),
    ("cursor-no-keys-no-values", lambda e: e["k_string"].cursor(keys=False, values=False),
     ValueError, ("keys=True or values=True",)),
    ("cursor-bad-start", lambda e: e["k_string"].cursor(key=1), TypeError, ("must be str",)),
    ("cursor-prefix-int", lambda e: e["k_string"].cursor(prefix=1), TypeError,
     ("prefix must be str",)),
    ("cursor-prefix-on-int-key", lambda e: e["k_u32"].cursor(prefix="a"), TypeError,
     ("prefix searches need a 'string' or 'bytes' first key part",)),
    ("slice-bad-bound", lambda e: e["k_string"]["a":1], TypeError, ("must be str",)),
    ("slice-bad-int-bound", lambda e: e["k_u8"][0:256], OverflowError, ("out of range",)),
    # configuration
    ("config-unknown-read", lambda e: e.config["nope"], ConfigurationError, ("nope",)),
    ("config-unknown-write", lambda e: e.config.__setitem__("nope", 1), ConfigurationError,
     ("nope",)),
    ("config-key-not-str", lambda e: e.config[1], TypeError, ("configuration keys",)),
    ("config-value-float", lambda e: e.config.__setitem__("log.sync", 1.5), TypeError,
     ("int or str", "1.5")),
    ("config-readonly-engine-key", lambda e: e.config.__setitem__("sophia.version", "9"),
     ConfigurationError, ("sophia.version", "read-only")),
    ("config-readonly-db-stat", lambda e: e.config.__setitem__("db.k_string.index.count", 1),
     ConfigurationError, ("index.count", "read-only")),
    ("config-offline-only", lambda e: e.config.__setitem__("log.sync", 1), ConfigurationError,
     ("log.sync", "before the environment opens")),
    ("config-upsert-pointer", lambda e: e.config.__setitem__("db.k_string.upsert", 1),
     ConfigurationError, ("db.k_string.upsert", "function pointer")),
    ("config-upsert-arg", lambda e: e.config.__setitem__("db.k_string.upsert_arg", 1),
     ConfigurationError, ("upsert_arg",)),
    ("config-comparator", lambda e: e.config.__setitem__("db.k_string.comparator", "x"),
     ConfigurationError, ("comparator",)),
    ("config-on-log", lambda e: e.config.__setitem__("sophia.on_log", 1), ConfigurationError,
     ("sophia.on_log", "function pointer")),
    ("config-on-log-arg", lambda e: e.config.__setitem__("sophia.on_log_arg", 1),
     ConfigurationError, ("sophia.on_log_arg",)),
    ("config-path", lambda e: e.config.__setitem__("sophia.path", "/tmp/elsewhere"),
     ConfigurationError, ("sophia.path",)),
    ("config-db-create", lambda e: e.config.__setitem__("db", "sneaky"), ConfigurationError,
     ("create_database",)),
    ("config-scheme", lambda e: e.config.__setitem__("db.k_string.scheme", "extra"),
     ConfigurationError, ("scheme",)),
    ("config-scheme-field", lambda e: e.config.__setitem__("db.k_string.scheme.key", "u8"),
     ConfigurationError, ("scheme",)),
    ("setting-readonly-index-count", lambda e: setattr(e["k_string"], "index_count", 3),
     ConfigurationError, ("index_count", "read-only")),
    ("setting-readonly-key-limit", lambda e: setattr(e["k_string"], "key_limit", 9),
     ConfigurationError, ("key_limit", "read-only")),
    ("setting-readonly-version", lambda e: setattr(e, "version", "3"), ConfigurationError,
     ("version", "read-only")),
    ("setting-compression-name", lambda e: setattr(e["k_string"], "compression", "gzip"),
     ValueError, ("compression must be one of", "gzip")),
    ("setting-compression-type", lambda e: setattr(e["k_string"], "compression", 1),
     ValueError, ("compression must be one of",)),
    ("setting-bool-not-bool", lambda e: setattr(e["k_string"], "mmap", 2), TypeError,
     ("mmap must be True or False",)),
    ("setting-int-negative", lambda e: setattr(e, "scheduler_threads", -1), TypeError,
     ("scheduler_threads", "non-negative")),
    ("setting-online-only-offline", lambda e: setattr(e["k_string"], "compression", "lz4"),
     ConfigurationError, ("before the environment opens",)),
    # databases
    ("unknown-database", lambda e: e["nope"], KeyError, ("nope",)),
    ("database-name-not-str", lambda e: e[1], KeyError, ("1",)),
    ("create-bad-index-type", lambda e: e.create_database("x1", "u128"), ValueError,
     ("unknown key type 'u128'",)),
    ("create-index-type-int", lambda e: e.create_database("x2", 5), TypeError,
     ("index_type must be",)),
    ("create-index-type-empty", lambda e: e.create_database("x3", ()), TypeError,
     ("index_type must be",)),
    ("create-too-many-parts", lambda e: e.create_database("x4", ("u8",) * 6), ValueError,
     ("at most 5 parts",)),
    ("create-bad-part", lambda e: e.create_database("x5", ("string", "float")), ValueError,
     ("unknown key type 'float'",)),
    ("create-bad-value-type", lambda e: e.create_database("x6", "string", "u64"), ValueError,
     ("unknown value type 'u64'",)),
    ("create-name-space", lambda e: e.create_database("bad name", "string"), ValueError,
     ("database names", "'bad name'")),
    ("create-name-dot", lambda e: e.create_database("a.b", "string"), ValueError,
     ("database names",)),
    ("create-name-empty", lambda e: e.create_database("", "string"), ValueError,
     ("database names",)),
    ("create-name-too-long", lambda e: e.create_database("n" * 65, "string"), ValueError,
     ("database names",)),
    ("create-name-not-str", lambda e: e.create_database(b"db", "string"), ValueError,
     ("database names",)),
    ("create-redeclare-other-type", lambda e: e.create_database("k_string", "u64"),
     SchemaMismatch, ("already declared",)),
    # views are read-only
    ("view-set", lambda e: _on_view(e, lambda v: v.__setitem__("a", "x")), ReadOnlyError,
     ("read-only view",)),
    ("view-delete", lambda e: _on_view(e, lambda v: v.__delitem__("a")), ReadOnlyError,
     ("read-only view",)),
    ("view-update", lambda e: _on_view(e, lambda v: v.update(a="x")), ReadOnlyError,
     ("read-only view",)),
    ("view-pop", lambda e: _on_view(e, lambda v: v.pop("a")), ReadOnlyError, ("read-only",)),
    ("view-setdefault", lambda e: _on_view(e, lambda v: v.setdefault("zz", "x")),
     ReadOnlyError, ("read-only",)),
    ("view-clear", lambda e: _on_view(e, lambda v: v.clear()), ReadOnlyError, ("read-only",)),
    ("view-multi-delete", lambda e: _on_view(e, lambda v: v.multi_delete(["a"])),
     ReadOnlyError, ("read-only",)),
    # other read/write entry points validate the same way
    ("contains-bad-key", lambda e: 1 in e["k_string"], TypeError, ("must be str",)),
    ("get-default-overflow", lambda e: e["k_u8"].get(300, "d"), OverflowError,
     ("300", "out of range")),
    ("pop-bad-key", lambda e: e["k_string"].pop(1), TypeError, ("must be str",)),
    ("setdefault-bad-value", lambda e: e["k_string"].setdefault("new-key", 5), TypeError,
     ("expected value str",)),
    ("multi-get-bad-key", lambda e: e["multi"].multi_get([("a", 1), ("a",)]), TypeError,
     ("2 part(s) needed",)),
    ("view-get-bad-key", lambda e: _on_view(e, lambda v: v.get(1)), TypeError,
     ("must be str",)),
    ("txn-db-bad-value", lambda e: _txn_db_write(e, [("ok", "1"), ("bad", 1)]), TypeError,
     ("expected value str",)),
    # constructing an environment
    ("sophia-empty-path", lambda e: Sophia(""), TypeError, ("path must be",)),
    ("sophia-None-path", lambda e: Sophia(None), TypeError, ("NoneType",)),
    ("sophia-unknown-option", lambda e: Sophia(_scratch(), bogus=1), TypeError,
     ("unknown option 'bogus'",)),
    ("sophia-readonly-option", lambda e: Sophia(_scratch(), auto_open=False, version="9"),
     ConfigurationError, ("version", "read-only")),
    ("sophia-databases-not-pairs", lambda e: Sophia(_scratch(), databases=[("x",)]), TypeError,
     ("(name, index_type) pairs",)),
    ("sophia-databases-bad-type", lambda e: Sophia(_scratch(), databases=[("x", "u99")]),
     ValueError, ("unknown key type 'u99'",)),
    ("sophia-databases-bad-name", lambda e: Sophia(_scratch(), databases=[("a b", "u8")]),
     ValueError, ("database names",)),
    # transactions
    ("txn-unbound-key", lambda e: _env_txn(e, lambda t: t["a"]), TypeError,
     ("not bound to a database",)),
    ("txn-foreign-db", lambda e: _env_txn(e, lambda t: t[_foreign_db()]), ValueError,
     ("another environment",)),
]


def _txn_write(e: Sophia, pairs: List[Tuple[Any, Any]]) -> None:
    with e["k_string"].transaction() as txn:
        for k, v in pairs:
            txn[k] = v


def _txn_db_write(e: Sophia, pairs: List[Tuple[Any, Any]]) -> None:
    """Writes through ``txn[db]`` of an environment transaction; the error rolls it back."""
    db = e["k_string"]
    with e.transaction() as txn:
        for k, v in pairs:
            txn[db][k] = v


def _scratch() -> str:
    """A fresh directory for environments that must fail before they open (removed with the
    module's environment)."""
    return tempfile.mkdtemp(prefix="sophy-bad-", dir=SCRATCH)


def _on_view(e: Sophia, fn: Callable[[Any], Any]) -> None:
    with e["k_string"].view("bad-input") as v:
        fn(v)


def _env_txn(e: Sophia, fn: Callable[[Any], Any]) -> None:
    txn = e.transaction()
    try:
        fn(txn)
    finally:
        txn.rollback(begin=False)


_FOREIGN: List[Any] = []


def _foreign_db() -> Any:
    """A database object of another (closed, never opened) environment."""
    if not _FOREIGN:
        other = Sophia(_scratch(), auto_open=False)
        _FOREIGN.append(other.create_database("k_string", "string"))
    return _FOREIGN[0]


def test_matrix_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(env: Sophia, case: Case) -> None:
    _, fn, exc, words = case
    before = snapshot(env)
    with pytest.raises(exc) as info:
        fn(env)
    message = str(info.value)
    for w in words:
        assert w in message, (w, message)
    assert snapshot(env) == before, "bad input changed the database"
    assert_usable(env)


# -- limits: the largest valid inputs are accepted (so the errors above are about the limit) --

LIMIT_CASES = [
    ("string-key-1024", "k_string", "k" * KEY_LIMIT, "v"),
    ("string-key-1024-utf8", "k_string", "\u00e9" * (KEY_LIMIT // 2), "v"),
    ("bytes-key-1024", "k_bytes", b"\xff" * KEY_LIMIT, "v"),
    ("empty-string-key", "k_string", "", "empty"),
    ("empty-bytes-key", "k_bytes", b"", "empty"),
    ("empty-value", "k_string", "has-empty-value", ""),
    ("value-2MiB", "k_string", "big", "v" * VALUE_LIMIT),
    ("bytes-value-2MiB", "v_bytes", "big", b"\x00" * VALUE_LIMIT),
    ("multi-max", "multi", ("m" * KEY_LIMIT, (1 << 64) - 1), "v"),
] + [("%s-max" % t, "k_" + t, (1 << INT_BITS[t[:-4] if t.endswith("_rev") else t]) - 1, "m")
     for t in INT_TYPES]


@pytest.mark.parametrize("case", LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_limits_are_accepted(env: Sophia, case: Tuple[str, str, Any, Any]) -> None:
    _, name, key, value = case
    db = env[name]
    had = key in db
    old = db.get(key)
    db[key] = value
    try:
        assert db[key] == value
        assert key in db
    finally:
        if had:
            db[key] = old
        else:
            del db[key]


# -- closed handles: every operation on a closed env/db/cursor/view/transaction --

def _closed_env(e: Sophia) -> Any:
    e.close()
    return e


def _closed_db_write(e: Sophia) -> Any:
    db = e["k_string"]
    e.close()
    db["new"] = "x"


def _closed_db_read(e: Sophia) -> Any:
    db = e["k_string"]
    e.close()
    return db["a"]


def _closed_db_scan(e: Sophia) -> Any:
    db = e["k_string"]
    e.close()
    return list(db)


def _closed_cursor(e: Sophia) -> Any:
    c = e["k_string"].cursor()
    c.close()
    return c.count()


def _cursor_after_env_close(e: Sophia) -> Any:
    c = iter(e["k_string"].cursor())
    e.close()
    return list(c)


def _closed_view(e: Sophia) -> Any:
    v = e["k_string"].view("closed")
    v.close()
    return v["a"]


def _view_after_env_close(e: Sophia) -> Any:
    v = e["k_string"].view("closed")
    e.close()
    return list(v)


def _committed_txn(e: Sophia) -> Any:
    txn = e["k_string"].transaction()
    txn.commit(begin=False)
    txn["x"] = "y"


def _committed_txn_commit(e: Sophia) -> Any:
    txn = e["k_string"].transaction()
    txn.commit(begin=False)
    txn.commit()


def _txn_after_env_close(e: Sophia) -> Any:
    txn = e["k_string"].transaction()
    txn["pending"] = "lost"
    e.close()
    txn["x"] = "y"


def _txn_commit_after_env_close(e: Sophia) -> Any:
    txn = e["k_string"].transaction()
    txn["pending"] = "lost"
    e.close()
    txn.commit()


CLOSED_CASES = [
    ("env-transaction", lambda e: _closed_env(e).transaction()),
    ("env-checkpoint", lambda e: _closed_env(e).scheduler_checkpoint()),
    ("env-config-set", lambda e: _closed_env(e).config.__setitem__("log.sync", 1)),
    ("db-write", _closed_db_write),
    ("db-read", _closed_db_read),
    ("db-scan", _closed_db_scan),
    ("db-update", lambda e: (lambda db: (e.close(), db.update(a="z")))(e["k_string"])),
    ("db-delete", lambda e: (lambda db: (e.close(), db.__delitem__("a")))(e["k_string"])),
    ("db-contains", lambda e: (lambda db: (e.close(), "a" in db))(e["k_string"])),
    ("db-view", lambda e: (lambda db: (e.close(), db.view()))(e["k_string"])),
    ("cursor-closed", _closed_cursor),
    ("cursor-after-env-close", _cursor_after_env_close),
    ("view-closed", _closed_view),
    ("view-after-env-close", _view_after_env_close),
    ("txn-write-after-commit", _committed_txn),
    ("txn-commit-after-commit", _committed_txn_commit),
    ("txn-write-after-env-close", _txn_after_env_close),
    ("txn-commit-after-env-close", _txn_commit_after_env_close),
]


@pytest.mark.parametrize("case", CLOSED_CASES, ids=[c[0] for c in CLOSED_CASES])
def test_closed_handles_raise_closed_error(tmp_path: Path,
                                           case: Tuple[str, Callable[[Sophia], Any]]) -> None:
    path = str(tmp_path / "env")
    e = Sophia(path, databases=DATABASES)
    e["k_string"].update(SEED["k_string"])
    before = snapshot(e)
    try:
        with pytest.raises(ClosedError) as info:
            case[1](e)
        assert "closed" in str(info.value) or "not open" in str(info.value)
    finally:
        e.close()
    again = Sophia(path, databases=DATABASES)
    try:
        assert snapshot(again) == before, "an operation on a closed handle wrote something"
        assert_usable(again)
    finally:
        again.close()
