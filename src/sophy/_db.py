"""``Database``: one key/value store of an environment, with its settings and statistics."""
from __future__ import annotations

import re
import weakref
from typing import TYPE_CHECKING, Any, Dict

from ._access import Writer
from ._codec import Schema, describe_fields, parse_engine_scheme
from ._config import Setting
from ._errors import ClosedError, SchemaMismatch
from ._native import EnvHandle, ffi, lib
from ._txn import DatabaseTransaction, View

if TYPE_CHECKING:  # pragma: no cover
    from ._env import Sophia

NAME_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError("database names are 1-64 characters of letters, digits, '_' and '-' "
                         "(the engine addresses them as db.NAME.*), got %r" % (name,))
    return name


class Database(Writer):
    """A dict-like, ordered, persistent key/value store.

    ``db[k]``, ``db[k] = v``, ``del db[k]``, ``k in db``, ``len(db)``, ``db.get``, ``update``
    (atomic), ``pop``, ``setdefault``, ``clear``; iteration yields ``(key, value)`` pairs in key
    order; ``db[a:b]`` is an inclusive range (reversed when ``a > b`` or with a truthy step).
    Equality is identity (compare contents with ``list(db) == list(other)``).
    """

    # settings (offline-only in the engine: set them before the environment opens)
    mmap = Setting("mmap", "bool", "Memory-map the database files")
    direct_io = Setting("direct_io", "bool", "Use O_DIRECT for reads (exclusive with mmap)")
    sync = Setting("sync", "bool", "fsync node files on compaction")
    expire = Setting("expire", "int", "Time-to-live of rows in seconds (needs a timestamp field)")
    compression = Setting("compression", "compression", "'none', 'lz4' or 'zstd'")
    compaction_cache = Setting("compaction.cache", "int", "Compaction cache size in bytes")
    node_size = Setting("compaction.node_size", "int", "Node file size in bytes")
    page_size = Setting("compaction.page_size", "int", "Page size in bytes")
    page_checksum = Setting("compaction.page_checksum", "bool", "Checksum pages")
    expire_period = Setting("compaction.expire_period", "int", "Seconds between expiry runs")
    gc_wm = Setting("compaction.gc_wm", "int", "Garbage percentage that triggers gc")
    gc_period = Setting("compaction.gc_period", "int", "Seconds between gc runs")
    # read-only statistics
    id = Setting("id", "int", "Engine id of the database", readonly=True)
    key_limit = Setting("limit.key", "int", "Maximum bytes of a string key part", readonly=True)
    value_limit = Setting("limit.field", "int", "Maximum bytes of a value", readonly=True)
    index_count = Setting("index.count", "int", "Rows in the index, versions included",
                          readonly=True)
    index_count_dup = Setting("index.count_dup", "int", "Duplicate versions", readonly=True)
    memory_used = Setting("index.memory_used", "int", "Bytes of in-memory index", readonly=True)
    index_size = Setting("index.size", "int", "Bytes on disk", readonly=True)
    index_size_uncompressed = Setting("index.size_uncompressed", "int",
                                      "Bytes on disk before compression", readonly=True)
    node_count = Setting("index.node_count", "int", "Number of nodes", readonly=True)
    page_count = Setting("index.page_count", "int", "Number of pages", readonly=True)
    read_disk = Setting("index.read_disk", "int", "Reads served from disk", readonly=True)
    read_cache = Setting("index.read_cache", "int", "Reads served from cache", readonly=True)

    _is_database = True  # recognised by Transaction.__getitem__ without importing this module

    def __init__(self, env: "Sophia", name: str, schema: Schema) -> None:
        # a weak reference: the environment holds its databases, and a cycle would keep a
        # dropped Sophia (and its directory lock) alive until the garbage collector runs
        self._envref = weakref.ref(env)
        self.name = name
        self._schema = schema
        self._settings: Dict[str, Any] = {}
        self._d = ffi.new("sy_db *")  # unbound until the environment opens
        self._attach(self, None)

    @property
    def _env(self) -> "Sophia":
        env = self._envref()
        if env is None:
            raise ClosedError("database %r: its environment was closed and garbage-collected"
                              % self.name)
        return env

    @property
    def index_type(self) -> Any:
        """The key type(s) as given to create_database."""
        return self._schema.index_type

    @property
    def value_type(self) -> str:
        return self._schema.value_type

    @property
    def status(self) -> str:
        """The environment's engine status (``'online'``...); 2.2 has no per-database status."""
        return self._env.status

    # -- configuration --
    def _config_key(self, key: str) -> str:
        return "db.%s.%s" % (self.name, key)

    def _config_get(self, key: str, kind: str) -> Any:
        h = self._env._handle
        full = self._config_key(key)
        if kind in ("str", "compression"):
            return h.get_str(full)
        v = h.get_int(full)
        return bool(v) if kind == "bool" else v

    def _config_set(self, key: str, value: Any) -> None:
        self._env._set_checked(self._config_key(key), value)
        self._settings[key] = value

    # -- lifetime (called by the environment) --
    def _declare(self, h: EnvHandle) -> None:
        """Declare this database and its scheme on a not-yet-open engine environment."""
        h.set("db", self.name)
        for field, options in self._schema.engine_fields():
            h.set("db.%s.scheme" % self.name, field)
            h.set("db.%s.scheme.%s" % (self.name, field), options)
        if self._env._memory_limit is not None:
            h.set(self._config_key("compaction.cache"), self._env._memory_limit)
        for key, value in self._settings.items():
            h.set(self._config_key(key), value)

    def _bind(self, h: EnvHandle) -> None:
        """Attach to the opened engine and check the scheme it actually uses."""
        d = ffi.new("sy_db *")
        s = self._schema
        rc = lib.sy_db_bind(d, h.e, self.name.encode(), len(s.c_types),
                            ffi.new("int[]", s.c_types), ffi.new("int[]", s.c_rev))
        h.check(rc, "opening database %r" % self.name)
        buf = ffi.new("char[]", 4096)
        n = h.check(lib.sy_db_scheme(d, buf, 4096), "reading the scheme of %r" % self.name)
        actual = parse_engine_scheme(ffi.unpack(buf, n).decode("utf-8", "replace"))
        declared = s.engine_fields()
        if actual != declared:
            raise SchemaMismatch(
                "database %r in %s is stored with scheme [%s] but was declared as %s, i.e. "
                "[%s]; declare it with the index type it was created with"
                % (self.name, self._env.path, describe_fields(actual), s.description,
                   describe_fields(declared)))
        self._d = d
        self._h = h  # the sy_db points into the handle's sy_env: keep that memory alive
        self._attach(self, None)

    # -- transactions and views --
    def transaction(self, lock_timeout: float = 1.0) -> DatabaseTransaction:
        """A transaction whose ``txn[k]`` reads and writes go to this database
        (``txn[other_db][k]`` reaches others in the same environment)."""
        return DatabaseTransaction(self, lock_timeout)

    def view(self, name: str = "view") -> View:
        """A read-only, point-in-time snapshot of this database."""
        return View(self, name)

    def __repr__(self) -> str:
        return "<sophy.Database %r %s>" % (self.name, self._schema.description)

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__
