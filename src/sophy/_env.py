"""``Sophia``: an environment (a directory) holding any number of databases."""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from ._codec import IndexType, Schema
from ._config import RawConfig, Setting, check_value
from ._db import Database, check_name
from ._errors import (ClosedError, ConfigurationError, CorruptLogError, SchemaMismatch,
                      SophiaError)
from ._native import EnvHandle
from ._repair import RepairReport, repair_log, tail_problem
from ._txn import Transaction


class Sophia:
    """A Sophia environment: ``Sophia(path, databases=[(name, index_type), ...])``.

    The engine only learns about databases before it opens, and it keeps no list of them, so
    declare them with ``databases=`` (or ``create_database``) every time. ``create_database`` on
    an open environment closes and reopens it with the new database added (refused while
    transactions, cursors or views are open). Keyword ``options`` set the properties below
    (``Sophia(path, scheduler_threads=0, log_sync=True)``)."""

    scheduler_threads = Setting("scheduler.threads", "int", "Background worker threads")
    log_enable = Setting("log.enable", "bool", "Write-ahead logging (off: nothing survives a "
                                               "crash)")
    log_sync = Setting("log.sync", "bool", "fsync the log at every commit")
    log_path = Setting("log.path", "str", "Directory of the log files")
    log_rotate_wm = Setting("log.rotate_wm", "int", "Log records per file before rotation")
    log_rotate_sync = Setting("log.rotate_sync", "bool", "fsync at log rotation")
    backup_path = Setting("backup.path", "str", "Directory backups are written to")
    version = Setting("sophia.version", "str", "Engine version", readonly=True)
    version_storage = Setting("sophia.version_storage", "str", "Storage format version",
                              readonly=True)
    build = Setting("sophia.build", "str", "Engine build id", readonly=True)
    errors = Setting("sophia.errors", "int", "Errors the engine has reported", readonly=True)
    backup_active = Setting("backup.active", "int", "A backup is running", readonly=True)
    backup_last = Setting("backup.last", "int", "Number of the last backup", readonly=True)
    backup_last_complete = Setting("backup.last_complete", "int",
                                   "Number of the last complete backup", readonly=True)

    def __init__(self, path: "os.PathLike[str] | str", databases: Optional[Iterable[Any]] = None,
                 auto_open: bool = True, repair: bool = False, **options: Any) -> None:
        self.path = os.fspath(path)
        #: with repair=True, the next open() first cuts a torn log tail (report kept here)
        self.repair = repair
        self.last_repair: Optional[RepairReport] = None
        if not isinstance(self.path, str) or not self.path:
            raise TypeError("path must be a non-empty str or os.PathLike, got %r" % (path,))
        self._dbs: Dict[str, Database] = {}
        self._settings: Dict[str, Any] = {}
        self._memory_limit: Optional[int] = None
        self._open = False
        self._handle = self._new_handle()
        for name, value in options.items():
            if not isinstance(getattr(type(self), name, None), (Setting, property)) \
                    or name in ("config", "is_open", "status"):
                raise TypeError("unknown option %r for Sophia(); see the properties of "
                                "sophy.Sophia (e.g. scheduler_threads, log_sync, memory_limit)"
                                % name)
            setattr(self, name, value)
        for item in databases or ():
            try:
                name, index_type = item[0], item[1]
            except (TypeError, IndexError, KeyError):
                raise TypeError("databases= takes (name, index_type) pairs, got %r"
                                % (item,)) from None
            value_type = item[2] if len(item) > 2 else "string"
            self.create_database(name, index_type, value_type)
        if auto_open:
            self.open()

    # -- handle management --
    def _new_handle(self) -> EnvHandle:
        h = EnvHandle(self.path)
        h.set("sophia.path", self.path)
        for key, value in self._settings.items():
            h.set(key, value)
        for db in self._dbs.values():
            db._declare(h)
        return h

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        """Open the environment (recovering from the log), binding every declared database.
        Does nothing if already open."""
        if self._open:
            return
        if self._handle.status == 2:  # closed before: a new engine object
            self._handle = self._new_handle()
        self._check_log()
        h = self._handle
        if not self._dbs:
            # the engine refuses to open without a database: hold the directory now and open
            # the engine when the first database is created
            h.lock_directory()
            self._open = True
            return
        h.open()
        try:
            for db in self._dbs.values():
                db._bind(h)
        except BaseException:
            h.close()
            self._handle = self._new_handle()
            raise
        self._open = True

    def _check_log(self) -> None:
        """Refuse (or, with repair=True, repair) a log whose last file ends in a torn or corrupt
        record. The engine itself either refuses such a log or, for a zero-filled tail or a
        torn first record, replays garbage or silently drops the file: never let it see one."""
        log_path = self._settings.get("log.path")
        if self.repair:
            self.last_repair = repair_log(self.path, log_path)
            return
        found = tail_problem(self.path, log_path)
        if found is None:
            return
        name, problem = found
        if os.path.getsize(name) == 0:
            # a kill during log rotation leaves the new file without even its header: it holds
            # no commit, so giving it a header loses nothing
            self.last_repair = repair_log(self.path, log_path)
            return
        raise CorruptLogError(
            "the log of %s is damaged (%s: %s), as a crash or power loss can leave it; open it "
            "with Sophia(path, ..., repair=True) to keep every complete commit (the damaged "
            "bytes are saved next to the log file)"
            % (self.path, os.path.basename(name), problem))

    def close(self) -> None:
        """Close the environment: every transaction, cursor and view made from it becomes
        unusable (their operations raise ClosedError). Idempotent."""
        self._open = False
        self._handle.close()

    def __enter__(self) -> "Sophia":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._handle.close()
        except Exception:  # never raise from a finaliser
            pass

    # -- databases --
    def create_database(self, name: str, index_type: IndexType = "string",
                        value_type: str = "string") -> Database:
        """Declare (or return the already declared) database ``name`` with key type(s)
        ``index_type`` — ``'string'``, ``'bytes'``, ``'u8'``..``'u64'``, ``'u8_rev'``..
        ``'u64_rev'`` or a tuple of them — and ``value_type`` ``'string'`` or ``'bytes'``."""
        check_name(name)
        schema = Schema(index_type, value_type)
        existing = self._dbs.get(name)
        if existing is not None:
            if existing._schema.engine_fields() != schema.engine_fields() or \
                    existing._schema.value_type != value_type or \
                    existing._schema.key_types != schema.key_types:
                raise SchemaMismatch("database %r is already declared as %s (values %s)"
                                     % (name, existing._schema.description,
                                        existing._schema.value_type))
            return existing
        db = Database(self, name, schema)
        if not self._open:
            db._declare(self._handle)
            self._dbs[name] = db
            return db
        self._refuse_reopen("add database %r" % name)
        self.close()
        self._dbs[name] = db
        try:
            self.open()
        except BaseException:
            del self._dbs[name]
            self.close()
            self.open()
            raise
        return db

    def _refuse_reopen(self, what: str) -> None:
        busy = [c for c in self._handle._snapshot_children() if getattr(c, "active", True)
                and not getattr(c, "_closed", False)]
        if busy:
            raise SophiaError("cannot %s while %d transaction(s), cursor(s) or view(s) are open "
                              "(the engine only accepts databases before it opens, so sophy "
                              "must reopen it); close them first" % (what, len(busy)))

    def __getitem__(self, name: str) -> Database:
        try:
            return self._dbs[name]
        except (KeyError, TypeError):
            raise KeyError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._dbs

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._dbs))

    def __len__(self) -> int:
        return len(self._dbs)

    @property
    def databases(self) -> List[Tuple[str, Any]]:
        """``[(name, index_type), ...]``: what to pass as ``databases=`` next time."""
        return [(n, d.index_type) for n, d in self._dbs.items()]

    def transaction(self, lock_timeout: float = 1.0) -> Transaction:
        """A transaction over any databases of this environment: ``txn[db][key] = value``."""
        self._require_open()
        return Transaction(self, lock_timeout)

    def _require_open(self) -> None:
        if not self._open:
            raise ClosedError("environment %s is not open" % self.path)

    # -- configuration --
    @property
    def config(self) -> RawConfig:
        """Raw access to any engine key: ``env.config['log.sync']``. Made on each access: a
        stored one would tie the environment into a reference cycle, and a dropped
        ``Sophia`` would then hold its directory lock until the garbage collector runs."""
        return RawConfig(self._raw_get, self._raw_set)

    @property
    def status(self) -> str:
        """Engine status: 'offline', 'online', 'malfunction', ... ('closed' after close())."""
        if self._handle.status == 2:
            return "closed"
        return self._handle.get_str("sophia.status")

    @property
    def memory_limit(self) -> Optional[int]:
        """Sophia 2.2 has no memory limit: this sets every database's compaction cache
        (``db.N.compaction.cache``), which bounds the memory compaction uses. Offline-only."""
        return self._memory_limit

    @memory_limit.setter
    def memory_limit(self, value: int) -> None:
        value = check_value("int", "memory_limit", value)
        for db in self._dbs.values():
            self._set_checked(db._config_key("compaction.cache"), value)
        self._memory_limit = value

    def _config_key(self, key: str) -> str:
        return key

    def _config_get(self, key: str, kind: str) -> Any:
        if kind in ("str", "compression"):
            return self._handle.get_str(key)
        v = self._handle.get_int(key)
        return bool(v) if kind == "bool" else v

    def _config_set(self, key: str, value: Any) -> None:
        self._set_checked(key, value)
        self._settings[key] = value

    def _set_checked(self, key: str, value: Any) -> None:
        h = self._handle
        if h.status == 2:
            raise ClosedError("environment %s is closed" % self.path)
        try:
            h.set(key, value)
        except ConfigurationError as exc:
            if self._open and "offline" in str(exc):
                raise ConfigurationError(
                    "%s can only be set before the environment opens: use "
                    "Sophia(path, auto_open=False), set it, then open()" % key) from None
            raise

    def _raw_get(self, key: str) -> Any:
        try:
            return self._handle.get_int(key)
        except ConfigurationError:
            return self._handle.get_str(key)

    def _raw_set(self, key: str, value: Any) -> None:
        self._set_checked(key, value)
        self._settings[key] = value

    # -- maintenance --
    def _run(self, key: str) -> None:
        """Run an engine function key on the open environment."""
        self._require_open()
        self._handle.run(key)

    def _each_db(self, op: str) -> None:
        self._require_open()
        for db in self._dbs.values():
            self._run(db._config_key(op))

    def scheduler_checkpoint(self) -> None:
        """Schedule a checkpoint (in-memory data to disk) of every database."""
        self._each_db("compaction.checkpoint")

    def scheduler_gc(self) -> None:
        """Schedule garbage collection of every database."""
        self._each_db("compaction.gc")

    def scheduler_expire(self) -> None:
        """Schedule expiry of TTL rows in every database."""
        self._each_db("compaction.expire")

    def compact(self) -> None:
        """Compact every database now (blocks other calls while it runs)."""
        self._each_db("compaction.compact")

    def scheduler_run(self) -> None:
        """Run one scheduler step synchronously (useful with scheduler_threads=0)."""
        self._run("scheduler.run")

    def log_rotate(self) -> None:
        """Start a new log file."""
        self._run("log.rotate")

    def log_gc(self) -> None:
        """Delete log files whose data is on disk."""
        self._run("log.gc")

    def backup(self) -> None:
        """Start a backup into ``backup_path`` (non-blocking; watch backup_active/backup_last)."""
        self._run("backup.run")

    def __repr__(self) -> str:
        return "<sophy.Sophia %r %s, databases %s>" % (
            self.path, "open" if self._open else "closed", list(self._dbs))
