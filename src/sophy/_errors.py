"""The exception hierarchy: every failure the engine reports becomes one of these."""
from __future__ import annotations


class SophiaError(Exception):
    """Base class of every error raised by sophy (besides KeyError/TypeError/ValueError for bad
    input, which keep their usual Python meaning)."""


class ClosedError(SophiaError):
    """The environment, database, transaction, cursor or view is closed."""


class TransactionConflict(SophiaError):
    """The transaction was rolled back because a concurrent transaction committed first (SSI)."""


class TransactionLocked(SophiaError):
    """A key is held by another uncommitted transaction and did not become free in time."""


class SchemaMismatch(SophiaError):
    """The database on disk was created with a different key/value scheme than declared."""


class EnvironmentLocked(SophiaError):
    """Another ``Sophia`` object (in this or another process) has the directory open."""


class ForkedEnvironmentError(SophiaError):
    """An environment opened in a parent process was used in a forked child."""


class ConfigurationError(SophiaError):
    """A configuration key is unknown, read-only, offline-only, or its value is invalid."""


class MalfunctionError(SophiaError):
    """The engine entered its malfunction state (I/O or allocation failure in the background).

    Every read and write fails until the environment is closed and opened again, which replays
    the log."""


class ReadOnlyError(SophiaError):
    """A write was attempted on a read-only view."""


class BusyError(SophiaError):
    """The handle is being used by another thread at the same moment (one thread per
    transaction, cursor or view)."""


class CorruptLogError(SophiaError):
    """The write-ahead log ends in a torn or corrupt record (e.g. after a power loss).

    Open with ``Sophia(path, ..., repair=True)`` to keep every complete commit and set the
    damaged bytes aside (see ``sophy.repair_log``)."""
