"""Native handles: owns every engine pointer (through the C helpers' structs), maps result codes
to exceptions, tracks children so closing a parent invalidates them, and guards the directory
with a lock file.

Structs are allocated with ``ffi.new`` and kept alive by the Python objects using them; the C side
never frees them, so a stale Python object can only ever see "closed", never a dangling pointer.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import weakref
from typing import Any, List, Optional

from ._errors import (BusyError, ClosedError, ConfigurationError, EnvironmentLocked,
                      ForkedEnvironmentError, MalfunctionError, SophiaError, TransactionLocked)
from ._sophia_ffi import ffi, lib

NULL = ffi.NULL

HELPERS_ABI = 3  # must equal SY_ABI in csrc/sophy_ffi.h
if getattr(lib, "SY_ABI", None) != HELPERS_ABI:
    # an editable install whose compiled module predates the Python code: fail clearly here
    # rather than with an AttributeError deep inside some operation
    raise ImportError("sophy._sophia_ffi is stale (helpers ABI %r, this sophy needs %d): "
                      "rebuild it with pip install -e ." % (getattr(lib, "SY_ABI", None),
                                                             HELPERS_ABI))
LOCK_FILE = "sophy.lock"

_MESSAGES = {
    lib.SY_CLOSED: (ClosedError, "%s: the environment, transaction or view is closed"),
    lib.SY_BUSY: (BusyError, "%s is in use by another thread; use one thread per transaction, "
                             "cursor or view"),
    lib.SY_FORKED: (ForkedEnvironmentError, "%s was opened in a parent process and cannot be "
                                            "used after fork(); open a new Sophia in the child"),
    lib.SY_LOCKED: (TransactionLocked, "%s: the key is locked by another open transaction"),
    lib.SY_BADKEY: (SophiaError, "%s: internal error, malformed key"),
    lib.SY_BADARG: (SophiaError, "%s: objects belong to different environments or the "
                                 "environment is not open"),
    lib.SY_NOMEM: (MemoryError, "%s: out of memory"),
}


GET_CAP = 1 << 16
# Output buffers for single gets. The GIL is released inside the C call, so two threads must
# never share one: each operation pops a buffer (list.pop/append are atomic under the GIL) and
# returns it. Measured cheaper than a threading.local (whose attribute lookup compares names).
GET_POOL: List[Any] = []


def new_get_buffer() -> Any:
    return ffi.new("char[]", GET_CAP)


# a few spares so pop/append never shrink and regrow the list (a realloc each time)
GET_POOL.extend(new_get_buffer() for _ in range(4))


class EnvHandle:
    """One ``sy_env`` plus what hangs off it. A closed handle stays a valid object."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.e = ffi.new("sy_env *")
        self.pid = os.getpid()
        self.children: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._lock_fd: Optional[int] = None
        rc = lib.sy_env_new(self.e)
        if rc:
            raise MemoryError("could not create a Sophia environment")

    # -- errors --
    def engine_message(self) -> str:
        buf = ffi.new("char[]", 1024)
        n = lib.sy_env_error(self.e, buf, 1024)
        return ffi.unpack(buf, n).decode("utf-8", "replace") if n > 0 else "unknown engine error"

    def error(self, rc: int, what: str) -> Exception:
        """The exception for result code ``rc`` of an operation described by ``what``."""
        if rc == lib.SY_ERROR:
            if lib.sy_env_status(self.e) == 3:
                return MalfunctionError(
                    "%s failed and the engine is in malfunction state (%s); close the "
                    "environment and open it again to recover" % (what, self.engine_message()))
            return SophiaError("%s failed: %s" % (what, self.engine_message()))
        cls, fmt = _MESSAGES.get(rc, (SophiaError, "%s failed (code " + str(rc) + ")"))
        return cls(fmt % what)

    def check(self, rc: int, what: str) -> int:
        if rc < 0:
            raise self.error(rc, what)
        return rc

    # -- state --
    @property
    def status(self) -> int:
        """0 offline, 1 online, 2 closed, 3 malfunction, 4 other."""
        return lib.sy_env_status(self.e)

    # -- configuration --
    def set(self, key: str, value: Any) -> None:
        k = key.encode("utf-8")
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            rc = lib.sy_env_setint(self.e, k, value)
        else:
            v = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            rc = lib.sy_env_setstring(self.e, k, v, len(v))
        if rc == lib.SY_ERROR:
            raise ConfigurationError("cannot set %r to %r: %s" % (key, value, self.engine_message()))
        self.check(rc, "setting %r" % key)

    def get_int(self, key: str) -> int:
        out = ffi.new("int64_t *")
        rc = lib.sy_env_getint(self.e, key.encode("utf-8"), out)
        if rc == lib.SY_ERROR:
            raise ConfigurationError("cannot read %r: %s" % (key, self.engine_message()))
        self.check(rc, "reading %r" % key)
        return int(out[0])

    def get_str(self, key: str) -> str:
        cap = 4096
        buf = ffi.new("char[]", cap)
        n = lib.sy_env_getstring(self.e, key.encode("utf-8"), buf, cap)
        if n == lib.SY_ERROR:
            raise ConfigurationError("cannot read %r: %s" % (key, self.engine_message()))
        self.check(n, "reading %r" % key)
        return ffi.unpack(buf, min(n, cap)).decode("utf-8", "replace")

    def run(self, key: str) -> None:
        """Run a function key (``scheduler.run``, ``db.N.compaction.checkpoint``...)."""
        rc = lib.sy_env_setint(self.e, key.encode("utf-8"), 0)
        if rc < 0:
            raise self.error(rc, key)  # MalfunctionError when the step broke the engine

    # -- lifetime --
    def lock_directory(self) -> None:
        if self._lock_fd is not None:
            return
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o644)
        try:
            # flock locks belong to the open file description: a second open() in this process
            # conflicts too, which is what we want (the engine has no locking of its own).
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise EnvironmentLocked(
                    "%s is already open by another Sophia environment (in this or another "
                    "process); close that one first" % self.path) from None
            raise
        self._lock_fd = fd

    def open(self) -> None:
        self.lock_directory()
        fresh = self._is_fresh()
        rc = lib.sy_env_open(self.e)
        if rc:
            if fresh:
                # a failed creation can leave a half-written scheme or node that no later
                # open accepts; nothing was committed yet, so remove what the engine made
                self._remove_created()
            if rc == lib.SY_ERROR:
                msg = self.engine_message()
                hint = ""
                if "not declared" in msg:
                    hint = ("; every database stored in this environment must be declared "
                            "(databases=[...] or create_database) before it opens")
                err: Exception = SophiaError("opening %s failed: %s%s" % (self.path, msg, hint))
            else:
                err = self.error(rc, "opening %s" % self.path)
            self.close()
            raise err

    def _snapshot_children(self) -> List[Any]:
        """The live children, even while other threads register new ones (a WeakSet cannot be
        iterated while it grows). A handle registered after the snapshot is still safe: the C
        side answers it SY_CLOSED."""
        while True:
            try:
                return list(self.children)
            except RuntimeError:  # changed size during iteration: take it again
                continue

    def _is_fresh(self) -> bool:
        """True when the directory holds nothing but our lock file (a first open)."""
        try:
            return all(name == LOCK_FILE for name in os.listdir(self.path))
        except OSError:
            return False

    def _remove_created(self) -> None:
        for name in os.listdir(self.path):
            if name != LOCK_FILE:
                full = os.path.join(self.path, name)
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full, ignore_errors=True)
                else:
                    try:
                        os.unlink(full)
                    except OSError:
                        pass

    def close(self) -> None:
        """Invalidate children (cursors first: they hold engine objects), then the engine."""
        for child in self._snapshot_children():
            try:
                child._invalidate()
            except Exception:  # a child's close must never keep the environment open
                pass
        rc = lib.sy_env_close(self.e)
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            if os.getpid() == self.pid:
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                except OSError:
                    pass
            # in a forked child only our reference goes: the parent's lock stays
            os.close(fd)
        if rc < 0 and rc != lib.SY_CLOSED:
            raise self.error(rc, "closing %s" % self.path)

