"""Configuration: named, documented properties over the engine's sysctl-like keys, and raw
access (``env.config['log.sync']``) with the keys that could crash the process refused."""
from __future__ import annotations

from typing import Any, Callable, Optional

from ._errors import ConfigurationError

COMPRESSIONS = ("none", "lz4", "zstd")

# Keys a Python caller must never set: they take C function pointers (a wrong value crashes the
# process, and `comparator` actually installs an upsert callback), or they are managed by sophy.
_FORBIDDEN_SUFFIXES = (".upsert", ".upsert_arg", ".comparator", ".comparator_arg")
_FORBIDDEN = {"sophia.on_log": "takes a C function pointer",
              "sophia.on_log_arg": "takes a C pointer",
              "sophia.path": "is the directory given to Sophia(path)",
              "db": "creates a database: use Sophia.create_database()"}


def check_raw_key(key: str) -> None:
    """Refuse keys that would crash the engine or bypass sophy's own bookkeeping."""
    if not isinstance(key, str) or not key:
        raise TypeError("configuration keys are non-empty str, got %r" % (key,))
    if key in _FORBIDDEN:
        raise ConfigurationError("configuration key %r cannot be set from Python: it %s"
                                 % (key, _FORBIDDEN[key]))
    if key.endswith(_FORBIDDEN_SUFFIXES):
        raise ConfigurationError("configuration key %r takes a C function pointer and cannot "
                                 "be set from Python" % key)
    if key.startswith("db.") and ".scheme" in key:
        raise ConfigurationError("configuration key %r: the scheme is derived from "
                                 "create_database(name, index_type, value_type)" % key)


def check_value(kind: str, name: str, value: Any) -> Any:
    if kind == "bool":
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise TypeError("%s must be True or False, got %r" % (name, value))
        return int(value)
    if kind == "int":
        if type(value) is bool or not isinstance(value, int) or value < 0:
            raise TypeError("%s must be a non-negative int, got %r" % (name, value))
        return value
    if kind == "compression":
        if value is None:
            value = "none"
        if value not in COMPRESSIONS:
            raise ValueError("compression must be one of %s, got %r"
                             % (", ".join(repr(c) for c in COMPRESSIONS), value))
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError("%s must be a str, got %r" % (name, value))
        return value
    raise AssertionError(kind)


class Setting:
    """A property bound to one engine key (relative to the owner's key prefix).

    Reading asks the engine; writing validates, sets it on the engine and remembers it so it is
    applied again whenever sophy reopens the environment (e.g. after create_database)."""

    def __init__(self, key: str, kind: str, doc: str, readonly: bool = False) -> None:
        self.key = key
        self.kind = kind
        self.readonly = readonly
        self.__doc__ = doc + (" (read-only)" if readonly else "")
        self.name = key

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        return obj._config_get(self.key, self.kind)

    def __set__(self, obj: Any, value: Any) -> None:
        if self.readonly:
            raise ConfigurationError("%s is read-only (engine key %s)"
                                     % (self.name, obj._config_key(self.key)))
        obj._config_set(self.key, check_value(self.kind, self.name, value))


class RawConfig:
    """``env.config[key]``: any engine configuration key, read and written as the engine has it
    (ints as int, everything else as str)."""

    def __init__(self, get: Callable[[str], Any], set_: Callable[[str, Any], None]) -> None:
        self._get, self._set = get, set_

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str):
            raise TypeError("configuration keys are str, got %r" % (key,))
        return self._get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        check_raw_key(key)
        if type(value) is bool:
            value = int(value)
        if not isinstance(value, (int, str)):
            raise TypeError("configuration values are int or str, got %r" % (value,))
        self._set(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when the engine does not know it."""
        try:
            return self[key]
        except ConfigurationError:
            return default
