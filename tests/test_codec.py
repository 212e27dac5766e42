"""Property-based tests of the codec: every key type and some multi-part schemas, through the pure
encoder/decoder and through a real database (write, read back, engine order == ``order_key``),
plus partial-tuple slice bounds checked against a model.

Sizes are bounded for the default run; ``SOPHY_HYPOTHESIS_PROFILE=stress`` runs many more cases.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sophy import KEY_TYPES, Sophia
from sophy._codec import KEY_PART_MAX, VALUE_MAX, Schema

_STRESS = os.environ.get("SOPHY_HYPOTHESIS_PROFILE") == "stress"
_COMMON = dict(deadline=None,  # PyPy's JIT warm-up makes first examples slow
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# pure codec tests are cheap; tests through a database open an environment per example
settings.register_profile("sophy-codec", max_examples=30, **_COMMON)
settings.register_profile("sophy-codec-db", max_examples=12, **_COMMON)
settings.register_profile("sophy-codec-stress", max_examples=2000, **_COMMON)
settings.register_profile("sophy-codec-db-stress", max_examples=300, **_COMMON)
PROFILE = settings.get_profile("sophy-codec-stress" if _STRESS else "sophy-codec")
DB_PROFILE = settings.get_profile("sophy-codec-db-stress" if _STRESS else "sophy-codec-db")

MULTI_SCHEMAS: List[Tuple[str, ...]] = [
    ("string", "u64"), ("u32", "string", "bytes"), ("u64_rev", "string"), ("bytes", "u8_rev"),
    ("u16", "u8", "string"), ("string", "string", "u32_rev", "bytes", "u64"),
]

# -- strategies ---------------------------------------------------------------------------------

# text the engine can store: every code point except lone surrogates (not encodable as UTF-8)
_chars = st.characters(blacklist_categories=("Cs",))
EDGE_TEXT = ["", "\x00", "a\x00b", "\x7f", "\u00e9", "\uffff", "\U0001f600", "\U0010ffff",
             "a" * KEY_PART_MAX,                       # exactly the limit, ASCII
             "\u20ac" * 341 + "a",                     # 3-byte chars, 1024 bytes
             "\U0001f600" * (KEY_PART_MAX // 4)]       # astral plane, 1024 bytes
EDGE_BYTES = [b"", b"\x00", b"\xff", b"\x00\xff", b"\xff\x00", b"\x00" * KEY_PART_MAX,
              b"\xff" * KEY_PART_MAX, b"\x80" * 7]


def text_part() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(EDGE_TEXT), st.text(_chars, max_size=12),
                     st.text("ab\x00\U0001f600", max_size=4))


def bytes_part() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from(EDGE_BYTES), st.binary(max_size=12),
                     st.lists(st.sampled_from([b"\x00", b"\x01", b"\xff"]), max_size=4)
                     .map(b"".join))


def int_part(bits: int) -> st.SearchStrategy[int]:
    top = (1 << bits) - 1
    return st.one_of(st.sampled_from([0, 1, top - 1, top]), st.integers(0, top),
                     st.integers(0, 3))


def part_strategy(t: str) -> st.SearchStrategy[Any]:
    base = t[:-4] if t.endswith("_rev") else t
    if base == "string":
        return text_part()
    if base == "bytes":
        return bytes_part()
    return int_part(int(base[1:]))


def key_strategy(index_type: Any) -> st.SearchStrategy[Any]:
    if isinstance(index_type, str):
        return part_strategy(index_type)
    return st.tuples(*[part_strategy(t) for t in index_type])


def value_strategy(value_type: str) -> st.SearchStrategy[Any]:
    if value_type == "bytes":
        return st.one_of(st.sampled_from([b"", b"\x00", b"\xff" * 3]), st.binary(max_size=40))
    return st.one_of(st.sampled_from(["", "\x00", "\U0010ffff"]), st.text(_chars, max_size=40))


# -- helpers --------------------------------------------------------------------------------------

_counter = itertools.count()


def fresh_env(tmp_path: Path, dbs: List[Tuple[Any, ...]]) -> Sophia:
    """A new environment in its own directory (one per hypothesis example); no worker threads,
    so open/close is cheap."""
    return Sophia(tmp_path / ("env%d" % next(_counter)), databases=dbs, scheduler_threads=0)


def model_sorted(schema: Schema, model: Dict[Any, Any]) -> List[Tuple[Any, Any]]:
    return sorted(model.items(), key=lambda kv: schema.order_key(kv[0]))


ALL_SCHEMAS: List[Any] = list(KEY_TYPES) + MULTI_SCHEMAS


# -- pure codec round trips ---------------------------------------------------------------------

@pytest.mark.parametrize("index_type", ALL_SCHEMAS, ids=str)
@PROFILE
@given(data=st.data())
def test_encode_decode_round_trip(index_type: Any, data: st.DataObject) -> None:
    key = data.draw(key_strategy(index_type))
    enc = Schema(index_type).encode_key(key)
    assert isinstance(enc, bytes)
    # a second, independent Schema decodes what the first encoded: nothing is kept in the object
    assert Schema(index_type).decode_key(enc) == key


@pytest.mark.parametrize("value_type", ["string", "bytes"])
@PROFILE
@given(data=st.data())
def test_value_round_trip(value_type: str, data: st.DataObject) -> None:
    value = data.draw(value_strategy(value_type))
    s = Schema("string", value_type)
    assert s.decode_value(s.encode_value(value)) == value


@pytest.mark.parametrize("index_type", MULTI_SCHEMAS, ids=str)
@PROFILE
@given(data=st.data())
def test_partial_bounds_are_prefixes_of_full_keys(index_type: Tuple[str, ...],
                                                 data: st.DataObject) -> None:
    key = data.draw(key_strategy(index_type))
    n = data.draw(st.integers(1, len(index_type) - 1))
    s = Schema(index_type)
    assert s.encode_key(key).startswith(s.encode_bound(key[:n]))
    with pytest.raises(TypeError):
        s.encode_key(key[:n])  # a full key is required outside of bounds


def test_string_key_limits() -> None:
    s = Schema("string")
    assert s.decode_key(s.encode_key("\U0001f600" * 256)) == "\U0001f600" * 256
    with pytest.raises(ValueError, match="1025 bytes"):
        s.encode_key("a" * (KEY_PART_MAX + 1))
    with pytest.raises(ValueError, match="limit"):
        s.encode_key("\u20ac" * 342)  # 342 characters but 1026 bytes
    with pytest.raises(ValueError, match="UTF-8"):
        s.encode_key("\ud800")
    with pytest.raises(TypeError):
        s.encode_key(b"bytes")
    with pytest.raises(ValueError, match="limit"):
        Schema("bytes").encode_key(b"\x00" * (KEY_PART_MAX + 1))
    with pytest.raises(TypeError):
        Schema("bytes").encode_key("text")


@pytest.mark.parametrize("t", ["u8", "u16", "u32", "u64", "u8_rev", "u16_rev", "u32_rev",
                               "u64_rev"])
def test_integer_key_limits(t: str) -> None:
    bits = int(t[1:].split("_")[0])
    s = Schema(t)
    assert s.decode_key(s.encode_key((1 << bits) - 1)) == (1 << bits) - 1
    with pytest.raises(OverflowError):
        s.encode_key(1 << bits)
    with pytest.raises(OverflowError):
        s.encode_key(-1)
    for bad in (True, 1.0, "1", None):
        with pytest.raises(TypeError):
            s.encode_key(bad)


def test_tuple_key_errors_name_the_schema() -> None:
    s = Schema(("string", "u64"))
    with pytest.raises(TypeError, match=r"\('string', 'u64'\)"):
        s.encode_key(("a",))
    with pytest.raises(TypeError):
        s.encode_key(["a", 1])  # lists are not keys: they are unhashable in the model anyway
    with pytest.raises(TypeError):
        s.encode_key(("a", 1, 2))
    with pytest.raises(TypeError):
        s.encode_key((1, "a"))


def test_value_limits() -> None:
    s = Schema("string", "bytes")
    assert len(s.encode_value(b"\x00" * VALUE_MAX)) == VALUE_MAX
    with pytest.raises(ValueError):
        s.encode_value(b"\x00" * (VALUE_MAX + 1))
    with pytest.raises(TypeError):
        s.encode_value("text")
    with pytest.raises(TypeError):
        Schema("string").encode_value(b"bytes")


def test_value_type_error_shows_the_value_as_given() -> None:
    with pytest.raises(TypeError, match=r"got int 1$"):
        Schema("string").encode_value(1)
    with pytest.raises(TypeError, match=r"got str 'x'$"):
        Schema("string", "bytes").encode_value("x")


def test_schema_errors() -> None:
    with pytest.raises(ValueError, match="unknown key type"):
        Schema("string_rev")
    with pytest.raises(ValueError, match="at most"):
        Schema(("u8",) * 6)
    with pytest.raises(ValueError, match="value type"):
        Schema("string", "u64")
    with pytest.raises(TypeError):
        Schema(())


# -- round trips through a real database --------------------------------------------------------

@pytest.mark.parametrize("index_type", ALL_SCHEMAS, ids=str)
@DB_PROFILE
@given(data=st.data())
def test_database_round_trip_and_order(tmp_path: Path, index_type: Any,
                                       data: st.DataObject) -> None:
    value_type = data.draw(st.sampled_from(["string", "bytes"]))
    model = data.draw(st.dictionaries(key_strategy(index_type), value_strategy(value_type),
                                      max_size=12))
    schema = Schema(index_type, value_type)
    env = fresh_env(tmp_path, [("db", index_type, value_type)])
    try:
        db = env["db"]
        items = list(model.items())
        half = len(items) // 2
        for k, v in items[:half]:  # single writes and one atomic batch
            db[k] = v
        db.update(items[half:])
        for k, v in items:
            assert db[k] == v
            assert k in db
        expected = model_sorted(schema, model)
        assert list(db) == expected
        assert list(db.keys()) == [k for k, _ in expected]
        assert list(db.values()) == [v for _, v in expected]
        assert list(db[::True]) == expected[::-1]
        assert len(db) == len(model)
    finally:
        env.close()


@pytest.mark.parametrize("index_type", ["string", "bytes", "u64", "u8_rev",
                                        ("u32", "string", "bytes")], ids=str)
@DB_PROFILE
@given(data=st.data())
def test_edge_keys_survive_reopen(tmp_path: Path, index_type: Any, data: st.DataObject) -> None:
    model = data.draw(st.dictionaries(key_strategy(index_type), value_strategy("bytes"),
                                      min_size=1, max_size=8))
    schema = Schema(index_type, "bytes")
    path = tmp_path / ("env%d" % next(_counter))
    dbs = [("db", index_type, "bytes")]
    env = Sophia(path, databases=dbs, scheduler_threads=0)
    env["db"].update(model)
    env.close()
    env = Sophia(path, databases=dbs, scheduler_threads=0)
    try:
        assert list(env["db"]) == model_sorted(schema, model)
    finally:
        env.close()


def test_big_value_round_trip(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, [("db", "string", "bytes")])
    try:
        db = env["db"]
        big = bytes(range(256)) * (VALUE_MAX // 256)
        db["big"] = big
        db["small"] = b"\x00"
        assert db["big"] == big
        assert list(db) == [("big", big), ("small", b"\x00")]
    finally:
        env.close()


# -- slices with partial tuples as bounds -------------------------------------------------------

def _prefix_cmp(schema: Schema, key: Any, bound: Tuple[Any, ...]) -> int:
    """Compare ``key`` with a (possibly partial) bound over the bound's parts, in engine order."""
    a = schema.order_key(key)[:len(bound)]
    b = schema.order_key(bound + key[len(bound):])[:len(bound)]
    return (a > b) - (a < b)


def model_slice(schema: Schema, model: Dict[Any, Any], start: Any, stop: Any,
                step: Any) -> List[Tuple[Any, Any]]:
    """What ``db[start:stop:step]`` should give: inclusive on both ends, where a partial tuple
    bound equals every key that extends it; reversed when start > stop or the step is truthy."""
    rows = model_sorted(schema, model)
    reverse = bool(step)
    if start is not None and stop is not None:
        n = min(len(start), len(stop))
        a, b = schema.order_key(start)[:n], schema.order_key(stop)[:n]
        if a > b:
            start, stop, reverse = stop, start, True
    out = [(k, v) for k, v in rows
           if (start is None or _prefix_cmp(schema, k, start) >= 0)
           and (stop is None or _prefix_cmp(schema, k, stop) <= 0)]
    return out[::-1] if reverse else out


SLICE_SCHEMAS: List[Tuple[str, ...]] = [("string", "u64"), ("u32", "string", "bytes"),
                                        ("u64_rev", "string"), ("u8", "u8_rev", "u8")]


def _small_part(t: str) -> st.SearchStrategy[Any]:
    # few distinct values, so bounds often share parts with stored keys
    base = t[:-4] if t.endswith("_rev") else t
    if base == "string":
        return st.sampled_from(["", "a", "ab", "b", "\U0001f600"])
    if base == "bytes":
        return st.sampled_from([b"", b"\x00", b"a", b"\xff"])
    top = (1 << int(base[1:])) - 1
    return st.sampled_from([0, 1, 2, top])


def _bound(index_type: Tuple[str, ...]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.integers(1, len(index_type)).flatmap(
        lambda n: st.tuples(*[_small_part(t) for t in index_type[:n]])))


@pytest.mark.parametrize("index_type", SLICE_SCHEMAS, ids=str)
@DB_PROFILE
@given(data=st.data())
def test_slices_with_partial_bounds(tmp_path: Path, index_type: Tuple[str, ...],
                                    data: st.DataObject) -> None:
    keys = st.tuples(*[_small_part(t) for t in index_type])
    model = data.draw(st.dictionaries(keys, st.text("xyz", max_size=3), max_size=20))
    schema = Schema(index_type)
    env = fresh_env(tmp_path, [("db", index_type)])
    try:
        db = env["db"]
        db.update(model)
        for _ in range(6):
            start, stop = data.draw(_bound(index_type)), data.draw(_bound(index_type))
            step = data.draw(st.sampled_from([None, True, False, 1]))
            assert list(db[start:stop:step]) == model_slice(schema, model, start, stop, step), \
                (start, stop, step)
        first = data.draw(_small_part(index_type[0]))
        assert [k for k, _ in db[(first,):(first,)]] == \
            [k for k, _ in model_sorted(schema, model) if k[0] == first]
    finally:
        env.close()


def test_partial_slice_example(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, [("db", ("string", "u64"))])
    try:
        db = env["db"]
        db.update({("a", 0): "x", ("a", 5): "y", ("a", 2**64 - 1): "z", ("b", 1): "w",
                   ("", 3): "e"})
        assert [k for k, _ in db[("a",):("a",)]] == [("a", 0), ("a", 5), ("a", 2**64 - 1)]
        assert [k for k, _ in db[("a",):("a",):True]] == [("a", 2**64 - 1), ("a", 5), ("a", 0)]
        assert [k for k, _ in db[("b",):("a",)]] == [("b", 1), ("a", 2**64 - 1), ("a", 5),
                                                      ("a", 0)]
        assert [k for k, _ in db[("a", 5):("b",)]] == [("a", 5), ("a", 2**64 - 1), ("b", 1)]
    finally:
        env.close()


# -- scan orders at the edges of each key type ---------------------------------------------------

def _edges(t: str) -> List[Any]:
    """The smallest and largest storable key of a scalar type, and one in between."""
    base = t[:-4] if t.endswith("_rev") else t
    if base == "string":
        return ["", "m", "\U0010ffff" * (KEY_PART_MAX // 4)]  # no string sorts above all
    if base == "bytes":
        return [b"", b"m", b"\xff" * KEY_PART_MAX]
    return [0, 7, (1 << int(base[1:])) - 1]


@pytest.mark.parametrize("t", KEY_TYPES)
def test_inclusive_orders_without_key_see_every_edge(tmp_path: Path, t: str) -> None:
    schema = Schema(t)
    keys = sorted(_edges(t), key=schema.order_key)
    env = fresh_env(tmp_path, [("db", t)])
    try:
        db = env["db"]
        db.update((k, "v") for k in keys)
        assert list(db.cursor(">=", values=False)) == keys
        assert list(db.cursor("<=", values=False)) == keys[::-1]
        assert list(db.keys()) == keys
    finally:
        env.close()


@pytest.mark.parametrize("t", KEY_TYPES)
def test_strict_forward_without_key_starts_at_first_key(tmp_path: Path, t: str) -> None:
    schema = Schema(t)
    keys = sorted(_edges(t), key=schema.order_key)
    env = fresh_env(tmp_path, [("db", t)])
    try:
        db = env["db"]
        db.update((k, "v") for k in keys)
        assert list(db.cursor(">", values=False)) == keys
    finally:
        env.close()


@pytest.mark.parametrize("t", [t for t in KEY_TYPES if t != "string"])
def test_strict_reverse_without_key_starts_at_last_key(tmp_path: Path, t: str) -> None:
    schema = Schema(t)
    keys = sorted(_edges(t), key=schema.order_key)
    env = fresh_env(tmp_path, [("db", t)])
    try:
        db = env["db"]
        db.update((k, "v") for k in keys)
        assert list(db.cursor("<", values=False)) == keys[::-1]
    finally:
        env.close()


def test_strict_reverse_without_key_on_strings(tmp_path: Path) -> None:
    keys = _edges("string")
    env = fresh_env(tmp_path, [("db", "string")])
    try:
        db = env["db"]
        db.update((k, "v") for k in keys)
        assert list(db.cursor("<", values=False)) == keys[::-1]
    finally:
        env.close()


def test_strict_orders_from_partial_key_skip_the_whole_group(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, [("db", ("string", "u64"))])
    try:
        db = env["db"]
        keys = [("", 3), ("a", 0), ("a", 5), ("a", 2**64 - 1), ("b", 1)]
        db.update((k, "v") for k in keys)
        assert list(db.cursor(">", key=("a",), values=False)) == [("b", 1)]
        assert list(db.cursor("<", key=("a",), values=False)) == [("", 3)]
    finally:
        env.close()


def test_inclusive_orders_from_partial_key(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, [("db", ("string", "u64"))])
    try:
        db = env["db"]
        keys = [("", 3), ("a", 0), ("a", 5), ("a", 2**64 - 1), ("b", 1)]
        db.update((k, "v") for k in keys)
        assert list(db.cursor(">=", key=("a",), values=False)) == keys[1:]
        assert list(db.cursor("<=", key=("a",), values=False)) == keys[:4][::-1]
    finally:
        env.close()


@pytest.mark.parametrize("order", ["<=", "<"])
def test_descending_prefix_scan_of_0xff_bytes_keys(tmp_path: Path, order: str) -> None:
    keys = [b"\xff" * n for n in (1024, 1023, 100, 3, 2)] + [b"\xff\x00", b"\xff"]
    env = fresh_env(tmp_path, [("db", "bytes")])
    try:
        db = env["db"]
        db.update((k, "v") for k in keys + [b"\xfe", b"\x00"])
        assert list(db.cursor(order, prefix=b"\xff", values=False)) == keys
    finally:
        env.close()


@pytest.mark.parametrize("order", [">=", "<=", "<"])
def test_prefix_scans_of_edge_keys(tmp_path: Path, order: str) -> None:
    """Prefix scans that work: NUL bytes, astral text and maximum-length keys inside the range."""
    keys = ["a", "a\x00", "a\x00\x00", "a\U0001f600", "a" * KEY_PART_MAX,
            "a" + "\U0010ffff" * 255]
    env = fresh_env(tmp_path, [("db", "string")])
    try:
        db = env["db"]
        db.update((k, "v") for k in keys + ["", "\x00", "b", "`"])
        want = sorted(keys, key=lambda k: k.encode("utf-8"))
        got = list(db.cursor(order, prefix="a", values=False))
        assert got == (want if order == ">=" else want[::-1])
    finally:
        env.close()


# -- batched reads: values around the 64 KiB batch buffer ----------------------------------------

_SIZES = [0, 1, 1000, 65535, 65536, 65537, 200_000]


@DB_PROFILE
@given(data=st.data())
def test_multi_get_values_around_the_buffer_size(tmp_path: Path, data: st.DataObject) -> None:
    sizes = data.draw(st.lists(st.sampled_from(_SIZES), min_size=1, max_size=8))
    model = {"k%d" % i: bytes([i % 256]) * n for i, n in enumerate(sizes)}
    probe = data.draw(st.lists(st.sampled_from(sorted(model) + ["missing", ""]), max_size=12))
    env = fresh_env(tmp_path, [("db", "string", "bytes")])
    try:
        db = env["db"]
        db.update(model)
        assert db.multi_get(probe) == [model.get(k) for k in probe]
        assert db.multi_get_dict(probe) == {k: model[k] for k in probe if k in model}
        with db.transaction() as txn:  # a batch inside a transaction sees its own writes
            tdb = txn[db]
            tdb["missing"] = b"now here"
            expect = dict(model, missing=b"now here")
            assert tdb.multi_get(probe) == [expect.get(k) for k in probe]
            txn.rollback(begin=False)
    finally:
        env.close()
