"""Reading one YAML mapping into typed values, with every refusal located (file, line, dotted key).

:class:`Reader` walks a section; the ``as_*`` converters turn one value into its type or raise
``ValueError`` with the reason, which the reader turns into a :class:`ConfigError`.
"""

from __future__ import annotations

import re
import shlex
import signal
from collections.abc import Callable
from typing import Any, TypeVar

from foss_supervisor.errors import ConfigError

__all__ = [
    "MAX_PROGRAMS",
    "NAME_RE",
    "Reader",
    "as_argv",
    "as_bool",
    "as_choices",
    "as_duration",
    "as_exit_codes",
    "as_int",
    "as_names",
    "as_port",
    "as_signal",
    "as_size",
    "as_str",
    "as_str_map",
    "no_nul",
]

T = TypeVar("T")


class Reader:
    """Reads keys out of one mapping, refusing unknown keys and wrong types with a located error.

    With an ``errors`` list, unknown keys and wrong values are noted there and reading goes on (a
    wrong value reads as its default), so one pass finds every error of a file; :meth:`fail` still
    raises, for what the rest of a section cannot be read without.
    """

    def __init__(self, data: Any, path: str, file: str, lines: dict[str, int],
                 errors: list[ConfigError] | None = None) -> None:  # fmt: skip
        self.file, self.path, self.lines, self.errors = file, path, lines, errors
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.note("", f"must be a mapping, got {type(data).__name__}")
            data = {}
        self.data: dict[str, Any] = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, reason: str) -> ConfigError:
        key = self.key(name) if name else self.path
        return ConfigError(self.file, key, reason, self.lines.get(key) or self.lines.get(self.path))

    def fail(self, name: str, reason: str) -> None:
        raise self.error(name, reason)

    def note(self, name: str, reason: str) -> None:
        """Record an error and go on reading (raise it when no list collects errors)."""
        if self.errors is None:
            self.fail(name, reason)
        else:
            self.errors.append(self.error(name, reason))

    def only(self, allowed: set[str]) -> None:
        for name in self.data:
            if name not in allowed:
                hint = f"; known keys: {', '.join(sorted(allowed))}"
                self.note(name, f"unknown key{hint}")

    def get(self, name: str, convert: Callable[[Any], T], default: T) -> T:
        if name not in self.data or self.data[name] is None:
            return default
        try:
            return convert(self.data[name])
        except (TypeError, ValueError) as exc:
            self.note(name, str(exc))
            return default

    def sub(self, name: str) -> Reader:
        return Reader(self.data.get(name), self.key(name), self.file, self.lines, self.errors)


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, got {value!r}")
    return value


def as_int(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be <= {maximum}, got {value}")
        return value

    return convert


def no_nul(text: str) -> str:
    """``text``, refused when it holds a NUL byte (no path, argument or environment value can)."""
    if "\x00" in text:
        raise ValueError("must not contain a NUL byte")
    return text


def as_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"must be a non-empty string, got {value!r}")
    return no_nul(value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 10**6, "gb": 10**9, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def as_duration(value: Any) -> float:
    """Seconds from a number or a string like ``500ms``, ``5s``, ``2m``, ``1h``."""
    if isinstance(value, bool):
        raise TypeError(f"must be a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2) or "s"]
        seconds = float(m.group(1)) * scale
    else:
        raise TypeError(f"must be a duration in seconds or like '500ms', '5s', '2m', got {value!r}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds


def as_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
    raise TypeError(f"must be a size in bytes or like '10MB', got {value!r}")


def as_port(value: Any) -> int:
    return as_int(1, 65535)(value)


def as_signal(value: Any) -> signal.Signals:
    if not isinstance(value, str):
        raise TypeError(f"must be a signal name like TERM or SIGINT, got {value!r}")
    name = value.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return signal.Signals[name]
    except KeyError:
        raise ValueError(f"unknown signal {value!r}") from None


def as_argv(value: Any) -> tuple[str, ...]:
    """An argv list, or a string split the way a POSIX shell would (never run through a shell)."""
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split command: {exc}") from None
    elif isinstance(value, list) and all(isinstance(a, str | int | float) for a in value):
        argv = [str(a) for a in value]
    else:
        raise TypeError(f"must be a list of arguments or a string, got {value!r}")
    if not argv:
        raise ValueError("must not be empty")
    for arg in argv:
        no_nul(arg)
    return tuple(argv)


def as_str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"must be a mapping of names to values, got {value!r}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise TypeError(f"value of {k!r} must be a string or number, got {v!r}")
        out[no_nul(str(k))] = no_nul(str(v))
    return out


def as_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(f"must be a program name or a list of names, got {value!r}")


def as_choices(known: tuple[str, ...]) -> Callable[[Any], tuple[str, ...]]:
    """A list of names out of ``known`` (each once, in the order given); an unknown one is refused by name."""

    def convert(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"must be a list out of {', '.join(known)}; got {value!r}")
        if unknown := [v for v in value if v not in known]:
            raise ValueError(f"unknown {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        return tuple(dict.fromkeys(value))

    return convert


def as_exit_codes(value: Any) -> frozenset[int]:
    items = value if isinstance(value, list) else [value]
    return frozenset(as_int(0, 255)(v) for v in items)


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_PROGRAMS = 2000  # replicas counted; each is a process with three pipes and a controller task
