"""The codec: Python keys/values <-> the packed bytes the C helpers take and return.

The one place that knows ``str`` <-> UTF-8, ints <-> u8..u64, tuples <-> multi-part keys.
Encoders are built once per database schema (closures), so no per-call dispatch on key type.

Packed key format (csrc/sophy_ffi.h): a single ``string``/``bytes`` key is its raw bytes; otherwise
each part in order, a string part as a native u32 length + bytes, an integer part as a native u64.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

KEY_PART_MAX = 1024            # engine limit.key: bytes in one string key part
VALUE_MAX = 2 * 1024 * 1024    # engine limit.field: bytes in one non-key field
MAX_KEY_PARTS = 5              # + one value field: the engine segfaults beyond 6 fields (#171)

INT_TYPES: Dict[str, int] = {"u8": 8, "u16": 16, "u32": 32, "u64": 64}
KEY_TYPES: Tuple[str, ...] = ("string", "bytes", "u8", "u16", "u32", "u64",
                              "u8_rev", "u16_rev", "u32_rev", "u64_rev")
VALUE_TYPES: Tuple[str, ...] = ("string", "bytes")
# C-side type codes (SY_T_* in sophy_ffi.h)
C_TYPE = {"string": 0, "bytes": 0, "u8": 1, "u16": 2, "u32": 3, "u64": 4}

_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")

IndexType = Union[str, Sequence[str]]
Encoder = Callable[[Any], bytes]


def _base(t: str) -> str:
    return t[:-4] if t.endswith("_rev") else t


def _describe(types: Tuple[str, ...], scalar: bool) -> str:
    return repr(types[0]) if scalar else "(%s)" % ", ".join(repr(t) for t in types)


def _py_name(t: str) -> str:
    b = _base(t)
    return "str" if b == "string" else "bytes" if b == "bytes" else "int"


def parse_index_type(index_type: Any) -> Tuple[Tuple[str, ...], bool]:
    """Return (types, scalar) for ``'string'`` or ``('string', 'u64')``; ValueError otherwise."""
    if isinstance(index_type, str):
        types: Tuple[str, ...] = (index_type,)
        scalar = True
    elif isinstance(index_type, (tuple, list)) and index_type:
        types = tuple(index_type)
        scalar = False
    else:
        raise TypeError("index_type must be a key type name or a tuple of them, e.g. 'string' "
                        "or ('string', 'u64'); got %r" % (index_type,))
    for t in types:
        if not isinstance(t, str) or t not in KEY_TYPES:
            raise ValueError("unknown key type %r; valid key types are %s"
                             % (t, ", ".join(KEY_TYPES)))
    if len(types) > MAX_KEY_PARTS:
        raise ValueError("a key has at most %d parts (the engine crashes with more fields); "
                         "got %d" % (MAX_KEY_PARTS, len(types)))
    return types, scalar


class Schema:
    """The key and value layout of one database, with its encoders and decoders."""

    def __init__(self, index_type: IndexType = "string", value_type: str = "string") -> None:
        self.key_types, self.scalar = parse_index_type(index_type)
        if not isinstance(value_type, str) or value_type not in VALUE_TYPES:
            raise ValueError("unknown value type %r; valid value types are %s"
                             % (value_type, ", ".join(VALUE_TYPES)))
        self.value_type = value_type
        self.index_type: IndexType = self.key_types[0] if self.scalar else self.key_types
        self.description = _describe(self.key_types, self.scalar)
        n = len(self.key_types)
        self.key_names: List[str] = ["key"] if n == 1 else ["key_%d" % i for i in range(n)]
        self.value_name = "value"
        self.c_types = [C_TYPE[_base(t)] for t in self.key_types]
        self.c_rev = [1 if t.endswith("_rev") else 0 for t in self.key_types]
        self._parts = [self._part_encoder(i, t) for i, t in enumerate(self.key_types)]
        self.encode_key: Encoder = self._make_key_encoder(partial=False)
        self.encode_bound: Encoder = self._make_key_encoder(partial=True)
        self.decode_key: Callable[[bytes], Any] = self._make_key_decoder()
        self.encode_value, self.decode_value = self._make_value_codec()

    # -- the engine's view of the scheme --
    def engine_fields(self) -> List[Tuple[str, str]]:
        """(field name, engine options) pairs this schema declares, in order."""
        fields = []
        for i, (name, t) in enumerate(zip(self.key_names, self.key_types)):
            et = "string" if _base(t) in ("string", "bytes") else t
            fields.append((name, "%s,key(%d)" % (et, i)))
        fields.append((self.value_name, "string"))
        return fields

    # -- keys --
    def _bad_key(self, key: Any, why: str, exc: type = TypeError) -> Exception:
        want = _py_name(self.key_types[0]) if self.scalar else \
            "(%s)" % ", ".join(_py_name(t) for t in self.key_types)
        return exc("expected key %s for schema %s, got %r%s"
                   % (want, self.description, key, ": " + why if why else ""))

    def _part_encoder(self, i: int, t: str) -> Callable[[Any, Any], bytes]:
        base = _base(t)
        if base == "string":
            def enc(x: Any, whole: Any) -> bytes:
                if not isinstance(x, str):
                    raise self._bad_key(whole, "part %d must be str, not %s" % (i, type(x).__name__))
                try:
                    b = x.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise self._bad_key(whole, "part %d is not encodable as UTF-8 (%s)" % (i, e.reason),
                                        ValueError) from None
                if len(b) > KEY_PART_MAX:
                    raise self._bad_key(whole, "part %d is %d bytes in UTF-8; the limit is %d"
                                        % (i, len(b), KEY_PART_MAX), ValueError)
                return b
            return enc
        if base == "bytes":
            def enc(x: Any, whole: Any) -> bytes:
                if not isinstance(x, (bytes, bytearray, memoryview)):
                    raise self._bad_key(whole, "part %d must be bytes, not %s" % (i, type(x).__name__))
                b = bytes(x)
                if len(b) > KEY_PART_MAX:
                    raise self._bad_key(whole, "part %d is %d bytes; the limit is %d"
                                        % (i, len(b), KEY_PART_MAX), ValueError)
                return b
            return enc
        bits = INT_TYPES[base]
        top = 1 << bits

        def enc(x: Any, whole: Any) -> bytes:
            if type(x) is bool or not isinstance(x, int):
                raise self._bad_key(whole, "part %d must be int, not %s" % (i, type(x).__name__))
            if not 0 <= x < top:
                raise self._bad_key(whole, "part %d = %d is out of range for %s (0..%d)"
                                    % (i, x, t, top - 1), OverflowError)
            return _U64.pack(x)
        return enc

    def _make_key_encoder(self, partial: bool) -> Encoder:
        parts = self._parts
        n = len(parts)
        if self.scalar:
            enc0 = parts[0]
            if self.key_types[0] == "string":
                def encode_str(key: Any) -> bytes:
                    # fast path for the common case; anything unusual takes the checked path,
                    # which raises the precise error
                    if type(key) is str:
                        try:
                            b = key.encode()
                        except UnicodeEncodeError:
                            return enc0(key, key)
                        if len(b) <= KEY_PART_MAX:
                            return b
                    return enc0(key, key)
                return encode_str
            if self.key_types[0] in INT_TYPES:
                top = 1 << INT_TYPES[self.key_types[0]]
                pack = _U64.pack

                def encode_uint(key: Any) -> bytes:
                    if type(key) is int and 0 <= key < top:
                        return pack(key)
                    return enc0(key, key)
                return encode_uint

            def encode_scalar(key: Any) -> bytes:
                return enc0(key, key)
            return encode_scalar
        types = self.key_types
        pack_len = _U32.pack

        def encode_tuple(key: Any) -> bytes:
            if not isinstance(key, tuple):
                raise self._bad_key(key, "a tuple is needed")
            k = len(key)
            if k != n and not (partial and 0 < k < n):
                raise self._bad_key(key, "%d part(s) needed, got %d" % (n, k))
            out = []
            for i in range(k):
                b = parts[i](key[i], key)
                if types[i] in ("string", "bytes"):
                    out.append(pack_len(len(b)))
                out.append(b)
            return b"".join(out)
        return encode_tuple

    def _make_key_decoder(self) -> Callable[[bytes], Any]:
        if self.scalar:
            t = self.key_types[0]
            if t == "string":
                return _decode_utf8
            if t == "bytes":
                return lambda b: b
            unpack = _U64.unpack
            return lambda b: unpack(b)[0]
        types = self.key_types
        u32 = _U32.unpack_from
        u64 = _U64.unpack_from

        def decode_tuple(b: bytes) -> Tuple[Any, ...]:
            out: List[Any] = []
            pos = 0
            for t in types:
                if t == "string" or t == "bytes":
                    n = u32(b, pos)[0]
                    pos += 4
                    part = b[pos:pos + n]
                    out.append(part.decode("utf-8") if t == "string" else part)
                    pos += n
                else:
                    out.append(u64(b, pos)[0])
                    pos += 8
            return tuple(out)
        return decode_tuple

    # -- values --
    def _make_value_codec(self) -> Tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
        if self.value_type == "string":
            def enc(v: Any) -> bytes:
                if type(v) is str:  # fast path; the checks below give the precise errors
                    try:
                        b = v.encode()
                    except UnicodeEncodeError:
                        b = None
                    if b is not None and len(b) <= VALUE_MAX:
                        return b
                if not isinstance(v, str):
                    raise TypeError("expected value str for this database (value_type "
                                    "'string'), got %s %s" % (type(v).__name__, _short(v)))
                try:
                    b = v.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise ValueError("value is not encodable as UTF-8 (%s)" % e.reason) from None
                if len(b) > VALUE_MAX:
                    raise ValueError("value is %d bytes in UTF-8; the limit is %d"
                                     % (len(b), VALUE_MAX))
                return b
            return enc, _decode_utf8

        def enc_b(v: Any) -> bytes:
            if not isinstance(v, (bytes, bytearray, memoryview)):
                raise TypeError("expected value bytes for this database (value_type 'bytes'), "
                                "got %s %s" % (type(v).__name__, _short(v)))
            b = bytes(v)
            if len(b) > VALUE_MAX:
                raise ValueError("value is %d bytes; the limit is %d" % (len(b), VALUE_MAX))
            return b
        return enc_b, _identity

    def order_key(self, key: Any) -> Any:
        """A Python sort key giving the engine's order (``*_rev`` parts descend)."""
        parts = (key,) if self.scalar else key
        out = []
        for t, p in zip(self.key_types, parts):
            if t.endswith("_rev"):
                out.append(-p)
            elif t == "string":
                out.append(p.encode("utf-8"))
            else:
                out.append(p)
        return tuple(out)


# a method descriptor: decoding costs one C call, no Python frame (utf-8 is the default)
_decode_utf8 = bytes.decode


def _identity(b: bytes) -> bytes:
    return b


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) < 60 else r[:57] + "..."


def parse_engine_scheme(text: str) -> List[Tuple[str, str]]:
    """Parse sy_db_scheme() output ``name=options;...`` into user fields (hidden ones dropped)."""
    out = []
    for item in text.split(";"):
        if not item:
            continue
        name, _, opts = item.partition("=")
        if name.startswith("_"):
            continue
        out.append((name, opts))
    return out


def describe_fields(fields: List[Tuple[str, str]]) -> str:
    return ", ".join("%s %s" % f for f in fields)

