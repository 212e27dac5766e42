"""Repairing a torn write-ahead log: what a power loss leaves behind must not block ``open``.

The Sophia 2.2 engine refuses to open an environment whose log ends in a partly written or
corrupt record ("corrupted log file ... bad record size/crc"), and it never truncates the log
itself. Worse, two tails slip past its checks: a zero-filled tail (file systems that extend a
file before its data reaches the disk leave zeros, and an all-zero record has a valid CRC)
replays phantom rows or crashes the process, and a torn *first* record makes the engine ignore
the whole file silently — later commits appended to it are lost at the next open.

``repair_log`` reads the log the way the engine's recovery does, keeps every complete record,
cuts each file at the first torn or corrupt record (the cut bytes are saved next to it as
``<file>.torn-<n>``, a name the engine ignores) and sets aside whole any later log file, so the
log that remains is a prefix of the committed history: no transaction is ever replayed by halves
and nothing after a hole is replayed out of order.

Log format (``sophia/wal``), all integers little-endian:

* file: an 11-byte header ``srversion`` — u64 magic ``b"sophia_v"``, storage version ``'2','2'``,
  one byte ``c`` — then records back to back;
* record: a packed 13-byte ``swv`` header ``u32 crc, u32 dsn (database id), u32 size,
  u8 flags`` followed by ``size`` bytes of document;
* a single-statement commit is one record; a multi-statement commit is a header record with
  flag ``BEGIN`` (16) whose ``size`` is the number of records that follow, with no data;
* ``crc`` is CRC-32C (Castagnoli, reflected, no pre/post inversion, starting at 0) of the data,
  continued over the 9 header bytes after the crc field (a ``BEGIN`` header: those 9 only).
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from ._errors import EnvironmentLocked, SophiaError

__all__ = ["repair_log", "check_log", "RepairReport", "LogRepairError", "crc32c"]

LOG_HEADER = b"sophia_v22\x00"      # what the engine writes at the start of each log file
HEADER_SIZE = len(LOG_HEADER)        # sizeof(srversion), packed
RECORD_HEADER = struct.Struct("<IIIB")  # swv: crc, dsn, size, flags (packed: 13 bytes)
FLAG_BEGIN = 16                      # SVBEGIN: a transaction header record
LOCK_FILE = "sophy.lock"             # the binding's directory lock (see _native.py)
_LOG_NAME = re.compile(r"^([0-9]+)\.log$")


def _crc_table() -> Tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _crc_table()


def crc32c(crc: int, data: bytes) -> int:
    """CRC-32C of ``data`` continued from ``crc``, exactly as the engine computes it (no
    inversion before or after, so ``crc32c(0, zeros) == 0``)."""
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _native_crc() -> Optional[Callable[[int, bytes], int]]:
    """The engine's own CRC-32C (hardware-accelerated) when the compiled module exports the
    helper ``uint32_t sy_crc32c(uint32_t crc, const char *buf, int len)``; the pure-Python one
    above does ~1-10 MB/s on CPython, fine for a repair after a refused open."""
    try:
        from ._sophia_ffi import lib
        fn = lib.sy_crc32c
    except (ImportError, AttributeError):
        return None
    return lambda crc, data: fn(crc, data, len(data))


_crc: Callable[[int, bytes], int] = _native_crc() or crc32c


class LogRepairError(SophiaError):
    """The log cannot be repaired safely (a file that is not a Sophia 2.2 log)."""


@dataclass
class RepairReport:
    """What ``repair_log`` found and did.

    ``records_kept`` counts log records of data (statements) that remain; ``transactions_kept``
    the commits they form. ``bytes_dropped`` is the size of everything cut or set aside, all of
    it preserved in ``saved``. ``problems`` says where and why each cut was made."""

    log_dir: str
    files_checked: int = 0
    records_kept: int = 0
    transactions_kept: int = 0
    bytes_dropped: int = 0
    files_truncated: List[str] = field(default_factory=list)
    files_set_aside: List[str] = field(default_factory=list)
    saved: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def clean(self) -> bool:
        """True when the log was intact (nothing was or would be dropped)."""
        return not self.problems


def _scan(data: bytes) -> Tuple[int, int, int, Optional[str]]:
    """Walk the records of one log file's contents.

    Returns ``(good_end, records, transactions, problem)``: ``good_end`` is the offset just past
    the last complete commit (the header counts as complete only when intact), ``problem`` why
    the walk stopped early (None when the file is intact)."""
    if len(data) < HEADER_SIZE:
        return 0, 0, 0, "torn file header (%d of %d bytes)" % (len(data), HEADER_SIZE)
    if data[:HEADER_SIZE - 1] != LOG_HEADER[:HEADER_SIZE - 1]:
        return 0, 0, 0, "bad file header"
    unpack = RECORD_HEADER.unpack_from
    hsize = RECORD_HEADER.size
    end = len(data)
    off = HEADER_SIZE
    records = transactions = 0
    while off < end:
        if end - off < hsize:
            return off, records, transactions, "torn record header at offset %d" % off
        crc, _dsn, size, flags = unpack(data, off)
        if flags & FLAG_BEGIN:
            # size = number of records in the transaction; all of them or none
            if size == 0 or crc != _crc(0, data[off + 4:off + hsize]):
                return off, records, transactions, "bad transaction header at offset %d" % off
            pos = off + hsize
            for k in range(size):
                problem = _check_record(data, pos, end)
                if problem:
                    return off, records, transactions, (
                        "transaction at offset %d: record %d of %d %s" % (off, k + 1, size,
                                                                          problem))
                pos += hsize + unpack(data, pos)[2]
            records += size
        else:
            problem = _check_record(data, off, end)
            if problem:
                return off, records, transactions, "record at offset %d %s" % (off, problem)
            pos = off + hsize + size
            records += 1
        transactions += 1
        off = pos
    return off, records, transactions, None


def _check_record(data: bytes, off: int, end: int) -> Optional[str]:
    """Why the data record at ``off`` is not complete and intact, or None."""
    hsize = RECORD_HEADER.size
    if end - off < hsize:
        return "is torn (header cut off)"
    crc, _dsn, size, flags = RECORD_HEADER.unpack_from(data, off)
    if flags & FLAG_BEGIN:
        return "is a nested transaction header"
    # a document is never empty; an all-zero record would otherwise pass the CRC (crc 0)
    if size == 0:
        return "is empty (zero-filled tail?)"
    if end - off - hsize < size:
        return "is torn (%d of %d data bytes)" % (end - off - hsize, size)
    body = off + hsize
    if crc != _crc(_crc(0, data[body:body + size]), data[off + 4:body]):
        return "has a bad crc"
    return None


def _log_files(log_dir: str) -> List[str]:
    """The engine's log files in replay order (by numeric id)."""
    found = []
    for name in os.listdir(log_dir):
        m = _LOG_NAME.match(name)
        if m:
            found.append((int(m.group(1)), name))
    return [os.path.join(log_dir, name) for _, name in sorted(found)]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _aside_name(path: str) -> str:
    n = 1
    while os.path.exists("%s.torn-%d" % (path, n)):
        n += 1
    return "%s.torn-%d" % (path, n)


def _save_bytes(path: str, data: bytes) -> str:
    target = _aside_name(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    return target


def _lock(path: str) -> Optional[int]:
    """Hold the binding's directory lock while repairing, so an open environment (in this or
    another process) is never repaired under its feet."""
    if not os.path.isdir(path):
        return None
    fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise EnvironmentLocked("%s is open by a Sophia environment (in this or another "
                                    "process); close it before repairing its log" % path) from None
        raise
    return fd


def repair_log(path: "os.PathLike[str] | str", log_path: "Optional[os.PathLike[str] | str]" = None,
               dry_run: bool = False) -> RepairReport:
    """Make the log of the (closed) environment at ``path`` openable after a crash.

    ``log_path`` is the log directory when ``log.path`` was configured (default
    ``<path>/log``). Every complete commit is kept; each file is cut at its first torn or
    corrupt record and every later log file is set aside whole, so what remains replays a
    prefix of the committed history. Cut bytes are saved as ``<file>.torn-<n>``. With
    ``dry_run`` nothing is changed and the report says what would be. Raises
    ``EnvironmentLocked`` when the environment is open and ``LogRepairError`` for a file that is
    not a Sophia 2.2 log (it is left untouched)."""
    root = os.fspath(path)
    log_dir = os.fspath(log_path) if log_path is not None else os.path.join(root, "log")
    report = RepairReport(log_dir=log_dir, dry_run=dry_run)
    lock_fd = _lock(root)
    try:
        if not os.path.isdir(log_dir):
            return report
        files = _log_files(log_dir)
        plans = []  # (file, keep, data, problem); None data = set aside whole
        cut = False
        for name in files:
            report.files_checked += 1
            with open(name, "rb") as f:
                data = f.read()
            if cut:
                plans.append((name, 0, None, "after a cut in an earlier file"))
                continue
            keep, records, txns, problem = _scan(data)
            if problem == "bad file header" and any(data[:HEADER_SIZE]):
                raise LogRepairError("%s is not a Sophia 2.2 log file (bad header %r); "
                                     "nothing was changed" % (name, data[:HEADER_SIZE]))
            report.records_kept += records
            report.transactions_kept += txns
            if problem is not None:
                plans.append((name, keep, data, problem))
                cut = True
        for name, keep, data, problem in plans:
            if data is None:
                dropped = os.path.getsize(name)
                report.files_set_aside.append(name)
                report.problems.append("%s: set aside whole (%s)"
                                       % (os.path.basename(name), problem))
            else:
                dropped = len(data) - keep
                report.files_truncated.append(name)
                report.problems.append("%s: %s; cut %d bytes"
                                       % (os.path.basename(name), problem, dropped))
            report.bytes_dropped += dropped
            if dry_run:
                continue
            if data is None:
                target = _aside_name(name)
                os.rename(name, target)
            else:
                target = _save_bytes(name, data[keep:])
                _truncate(name, keep)
            report.saved.append(target)
        if plans and not dry_run:
            _fsync_dir(log_dir)
        return report
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def _truncate(name: str, keep: int) -> None:
    """Cut ``name`` to ``keep`` bytes; a file whose header itself was torn gets a fresh header
    (the engine needs at least one log file, and an empty one is rejected as "bad size")."""
    with open(name, "r+b") as f:
        if keep < HEADER_SIZE:
            f.seek(0)
            f.write(LOG_HEADER)
            keep = HEADER_SIZE
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


def check_log(path: "os.PathLike[str] | str",
              log_path: "Optional[os.PathLike[str] | str]" = None) -> RepairReport:
    """What ``repair_log`` would do, without changing anything."""
    return repair_log(path, log_path, dry_run=True)


def tail_problem(path: "os.PathLike[str] | str",
                 log_path: "Optional[os.PathLike[str] | str]" = None
                 ) -> Optional[Tuple[str, str]]:
    """``(file, why)`` when the last log file of the environment at ``path`` would not replay
    cleanly, else None.

    Checked before every open (the last file is where a crash leaves a torn tail; earlier files
    were complete when the engine rotated away from them), so it reads one file only."""
    root = os.fspath(path)
    log_dir = os.fspath(log_path) if log_path is not None else os.path.join(root, "log")
    if not os.path.isdir(log_dir):
        return None
    files = _log_files(log_dir)
    if not files:
        return None
    with open(files[-1], "rb") as f:
        data = f.read()
    problem = _scan(data)[3]
    return None if problem is None else (files[-1], problem)
