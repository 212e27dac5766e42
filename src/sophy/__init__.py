"""sophy: fast, safe Python bindings to the Sophia 2.2 embedded storage engine.

``Sophia(path)`` is an environment; ``env.create_database(name, index_type)`` a dict-like,
ordered, transactional, persistent key/value store.
"""
from __future__ import annotations

from ._cursor import Cursor
from ._db import Database
from ._env import Sophia
from ._errors import (BusyError, ClosedError, ConfigurationError, CorruptLogError, EnvironmentLocked,
                      ForkedEnvironmentError, MalfunctionError, ReadOnlyError, SchemaMismatch,
                      SophiaError, TransactionConflict, TransactionLocked)
from ._txn import DatabaseTransaction, Transaction, TxDatabase, View
from ._codec import KEY_TYPES, VALUE_TYPES
from ._repair import RepairReport, check_log, repair_log

__version__ = "3.0.0.dev0"
ENGINE_VERSION = "2.2"
ENGINE_BUILD = "669d57b"

__all__ = [
    "Sophia", "Database", "Transaction", "DatabaseTransaction", "TxDatabase", "View", "Cursor",
    "SophiaError", "ClosedError", "TransactionConflict", "TransactionLocked", "SchemaMismatch",
    "EnvironmentLocked", "ForkedEnvironmentError", "ConfigurationError", "MalfunctionError",
    "ReadOnlyError", "BusyError", "CorruptLogError", "KEY_TYPES", "VALUE_TYPES",
    "repair_log", "check_log", "RepairReport",
]
