"""One typed gate per kind of config value: every number, name, path and pattern a loader accepts passes one.

A gate turns one YAML value into its typed value or raises :class:`GateError`, whose reason names the kind's
range ("must be a duration from 0s to 1d, got .nan"); the loaders add the file, line and dotted key.
Every gate is finite and bounded: no NaN or infinity, no negative where a quantity cannot be, no zero
where it would spin, nothing longer than the operating system takes (an argument or environment string
of 128 KiB, a path of 4,095 bytes, a file name of 255).

=========  ======================================================  ==========================================
kind       accepts                                                 range (set per key, named in the error)
=========  ======================================================  ==========================================
duration   seconds (``5``, ``0.5``) or ``500ms``/``5s``/``2m``/    e.g. ``stop_timeout``: 0s to 1d
           ``1h``/``1d``
size       bytes (``1048576``) or ``10MB``/``1MiB``/``2GB``         e.g. ``log.max_bytes``: 0 to 1 TiB
factor     a finite number                                         ``backoff.multiplier``: 1 to 10
number     a finite number                                         quality ``accepted_range`` bounds
count      an integer                                              e.g. ``replicas``: 1 to 1000
port       an integer                                              1 to 65535
name       text matching the namespace's pattern                   e.g. programs: ``[A-Za-z0-9][A-Za-z0-9_.-]``,
                                                                   at most 64
text       a non-empty string without NUL                          at most 128 KiB (``MAX_ARG_STRLEN``)
path       text naming a file or folder                            4,095 bytes, 255 per component
argv       a list of arguments, or a string split like ``sh``      each 128 KiB, 1 MiB together
env        a mapping of names (no ``=``) to strings or numbers     as text and argv
signal     ``TERM``, ``SIGINT``...                                 not the job-control signals (STOP, CONT...)
regex      an RE2 regular expression (DuckDB's dialect)            at most 1,000 characters
glob       a file name pattern (``*.csv``)                         no ``/``, at most 255 characters
mode       an octal mode (``"027"``, ``0o27``)                     000 to 777
rlimit     a number, ``unlimited``, or ``soft:hard``               0 to 2^63-1, soft <= hard
cron       five or six cron fields                                 at most 100 characters
url        ``http://`` or ``https://`` with a host                 at most 2,048 characters
host       an IP address or a DNS name                             at most 253 characters
choice     one of a listed set                                     the set
bool       ``true`` or ``false``                                   --
=========  ======================================================  ==========================================

Stdlib only (the cron and regex gates import croniter and re2 when they are used), so the daemon, the CLI
and the pipeline loader share them without cost. Strategies that generate each kind's hostile class are
in ``tests/gate_strategies.py``; ``tests/test_gates.py`` walks :data:`foss_supervisor.config_schema.SCHEMA`
so that no key escapes its gate.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import signal
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "MAX_ARGV_BYTES",
    "MAX_ARG_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "RLIM_INFINITY",
    "Gate",
    "GateError",
    "argv",
    "boolean",
    "choice",
    "count",
    "cron",
    "duration",
    "env_map",
    "factor",
    "format_duration",
    "format_size",
    "glob",
    "host",
    "mode",
    "name",
    "names",
    "number",
    "path",
    "port",
    "regex",
    "rlimit",
    "shown",
    "signal_name",
    "size",
    "text",
    "url",
]

T = TypeVar("T")

MAX_ARG_BYTES = 128 * 1024 - 1  # Linux's MAX_ARG_STRLEN: execve refuses one longer argument or variable (E2BIG)
MAX_ARGV_BYTES = 1024 * 1024  # half of the usual ARG_MAX, the other half left to the environment
MAX_PATH_BYTES = 4095  # PATH_MAX less its NUL
MAX_NAME_BYTES = 255  # NAME_MAX: one component of a path
RLIM_INFINITY = -1
_RLIM_MAX = 2**63 - 1


class GateError(ValueError):
    """A value refused by a gate. ``at`` is where below the key (``[2]``, ``.db.condition``), or empty."""

    def __init__(self, reason: str, at: str = "") -> None:
        self.reason, self.at = reason, at
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Gate(Generic[T]):
    """The one way a value of ``kind`` enters a config: ``gate(value)`` is the typed value or a GateError.

    ``range`` is the human text of what is accepted (``"0s to 1d"``), the same text the errors name.
    """

    kind: str
    range: str
    convert: Callable[[Any], T]

    def __call__(self, value: Any) -> T:
        try:
            return self.convert(value)
        except GateError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:  # a library's own refusal (croniter, re2)
            raise GateError(f"must be a {self.kind} ({self.range}): {exc}") from None


def shown(value: Any) -> str:
    """``value`` as an error shows it: YAML's spelling of non-finite numbers, long text cut at 60 characters."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any, kind: str, what: str) -> float:
    """A YAML number as a float: refused when it is not a number, or NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GateError(f"must be {what}, got {shown(value)}")
    number = float(value)  # an integer past 1e308 overflows: refused like infinity
    if not math.isfinite(number):
        raise GateError(f"must be a finite {kind}, got {shown(value)}")
    return number


def _between(number: float, lo: float, hi: float, kind: str, range_text: str, value: Any) -> None:
    if not lo <= number <= hi:
        raise GateError(f"must be a {kind} from {range_text}, got {shown(value)}")


# ---------------------------------------------------------------------------------------------- numbers

_DURATION = re.compile(r"\s*(\d{1,15}(?:\.\d{1,9})?)\s*(ms|s|m|h|d)?\s*")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"\s*(\d{1,15}(?:\.\d{1,9})?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def format_duration(seconds: float) -> str:
    """``seconds`` in the largest unit that divides it: ``10ms``, ``5s``, ``1h``, ``1d``."""
    for unit, scale in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= scale and seconds % scale == 0:
            return f"{seconds / scale:g}{unit}"
    return f"{seconds * 1000:g}ms" if 0 < seconds < 1 else f"{seconds:g}s"


def format_size(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it: ``0``, ``16MiB``, ``1TiB``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def duration(lo: float, hi: float) -> Gate[float]:
    """Seconds from ``lo`` to ``hi``: a number, or a string with a unit (``500ms``, ``5s``, ``2m``, ``1h``, ``1d``)."""
    range_text = f"{format_duration(lo)} to {format_duration(hi)}"

    def convert(value: Any) -> float:
        if isinstance(value, str):
            m = _DURATION.fullmatch(value)
            if m is None:
                raise GateError(f"must be a duration like 5, 0.5, '500ms', '5s', '2m', '1h', got {shown(value)}")
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]
        else:
            seconds = _finite(value, "duration", "a duration in seconds or like '500ms', '5s', '2m'")
        _between(seconds, lo, hi, "duration", range_text, value)
        return seconds

    return Gate("duration", range_text, convert)


def size(lo: int, hi: int) -> Gate[int]:
    """Bytes from ``lo`` to ``hi``: an integer, or a string with a unit (``10MB``, ``1MiB``; k/M/G/T)."""
    range_text = f"{format_size(lo)} to {format_size(hi)} bytes"

    def convert(value: Any) -> int:
        if isinstance(value, str):
            m = _SIZE.fullmatch(value)
            if m is None:
                raise GateError(f"must be a size like 1048576, '10MB', '1MiB', got {shown(value)}")
            n = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
        elif _is_int(value):
            n = value
        else:
            raise GateError(f"must be a size in bytes or like '10MB', got {shown(value)}")
        _between(n, lo, hi, "size", range_text, value)
        return n

    return Gate("size", range_text, convert)


def factor(lo: float, hi: float) -> Gate[float]:
    """A finite number from ``lo`` to ``hi`` (multipliers, ratios, fractions)."""
    range_text = f"{lo:g} to {hi:g}"

    def convert(value: Any) -> float:
        number = _finite(value, "factor", f"a number from {range_text}")
        _between(number, lo, hi, "factor", range_text, value)
        return number

    return Gate("factor", range_text, convert)


def number() -> Gate[float | int]:
    """Any finite number, kept as written (an integer stays one)."""

    def convert(value: Any) -> float | int:
        _finite(value, "number", "a number")
        return value  # type: ignore[no-any-return]  # an int or a finite float, checked above

    return Gate("number", "finite", convert)


def count(lo: int, hi: int) -> Gate[int]:
    """An integer from ``lo`` to ``hi``."""
    range_text = f"{lo} to {hi}"

    def convert(value: Any) -> int:
        if not _is_int(value):
            raise GateError(f"must be an integer from {range_text}, got {shown(value)}")
        _between(value, lo, hi, "count", range_text, value)
        return int(value)

    return Gate("count", range_text, convert)


def port() -> Gate[int]:
    """A TCP port, 1 to 65535."""

    def convert(value: Any) -> int:
        if not _is_int(value) or not 1 <= value <= 65535:
            raise GateError(f"must be a port from 1 to 65535, got {shown(value)}")
        return int(value)

    return Gate("port", "1 to 65535", convert)


def rlimit() -> Gate[tuple[int, int]]:
    """A resource limit: ``4096`` (soft and hard), ``unlimited``, or ``"soft:hard"``; as (soft, hard), -1 unlimited."""
    range_text = "0 to 2^63-1 or unlimited, as N or 'soft:hard'"

    def one(part: Any) -> int:
        if isinstance(part, str) and part.strip() in ("unlimited", "infinity"):
            return RLIM_INFINITY
        if isinstance(part, str) and re.fullmatch(r"\s*\d{1,19}\s*", part):
            part = int(part)
        if not _is_int(part) or not 0 <= part <= _RLIM_MAX:
            raise GateError(f"must be a resource limit from {range_text}, got {shown(part)}")
        return int(part)

    def convert(value: Any) -> tuple[int, int]:
        parts = value.split(":") if isinstance(value, str) else [value]
        if len(parts) > 2:
            raise GateError(f"must be a resource limit from {range_text}, got {shown(value)}")
        soft, hard = one(parts[0]), one(parts[-1])
        if hard != RLIM_INFINITY and (soft == RLIM_INFINITY or soft > hard):
            raise GateError(f"soft limit must not exceed the hard limit, got {shown(value)}")
        return soft, hard

    return Gate("rlimit", range_text, convert)


def mode() -> Gate[int]:
    """An octal mode 000 to 777: ``"027"`` (a string is read as octal), ``0o27``, or YAML 1.1's octal ``027``."""

    def convert(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"(0o)?[0-7]{1,4}", value.strip()):
            bits = int(value.strip().removeprefix("0o"), 8)
        elif _is_int(value):
            bits = value
        else:
            raise GateError(f"must be an octal mode like '022' or '027', got {shown(value)}")
        if not 0 <= bits <= 0o777:
            raise GateError(f"must be an octal mode from 000 to 777, got {shown(value)}")
        return int(bits)

    return Gate("mode", "000 to 777 (octal)", convert)


# ---------------------------------------------------------------------------------------------- text


def _no_nul(value: str, what: str) -> str:
    if "\x00" in value:
        raise GateError(f"{what} must not contain a NUL byte")
    return value


def _text(value: Any, what: str, max_bytes: int) -> str:
    if not isinstance(value, str) or not value:
        raise GateError(f"must be a non-empty {what}, got {shown(value)}")
    _no_nul(value, what)
    if len(value) > max_bytes or len(os.fsencode(value)) > max_bytes:
        raise GateError(f"{what} must be at most {max_bytes} bytes, got {len(os.fsencode(value))}")
    return value


def text(max_bytes: int = MAX_ARG_BYTES) -> Gate[str]:
    """A non-empty string without NUL, at most ``max_bytes`` bytes in UTF-8."""
    return Gate("text", f"1 to {max_bytes} bytes, no NUL", lambda value: _text(value, "string", max_bytes))


def path() -> Gate[str]:
    """A file or folder name as written (the loader resolves it): at most 4,095 bytes, 255 per component."""

    def convert(value: Any) -> str:
        p = _text(value, "path", MAX_PATH_BYTES)
        for part in p.split("/"):
            if len(os.fsencode(part)) > MAX_NAME_BYTES:
                raise GateError(f"a path component must be at most {MAX_NAME_BYTES} bytes, got {shown(part)}")
        return p

    return Gate("path", f"1 to {MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} per component, no NUL", convert)


def name(pattern: str, what: str) -> Gate[str]:
    """A name in one namespace: text matching ``pattern`` (a fullmatch), described to the user as ``what``."""
    compiled = re.compile(pattern)

    def convert(value: Any) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise GateError(f"must be a name of {what}, got {shown(value)}")
        return value

    return Gate("name", what, convert)


def names(item: Gate[str]) -> Gate[tuple[str, ...]]:
    """One name or a list of them (each through ``item``), at most 1,000."""

    def convert(value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or len(items) > 1000:
            raise GateError(f"must be a name or a list of at most 1000 names, got {shown(value)}")
        out = []
        for i, v in enumerate(items):
            try:
                out.append(item(v))
            except GateError as exc:
                raise GateError(exc.reason, f"[{i}]" if isinstance(value, list) else "") from None
        return tuple(out)

    return Gate("names", f"a name or a list of names ({item.range})", convert)


def choice(options: Collection[str]) -> Gate[str]:
    """One of ``options``, written exactly."""
    listed = ", ".join(options)

    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise GateError(f"must be one of {listed}, got {shown(value)}")
        return value

    return Gate("choice", listed, convert)


def boolean() -> Gate[bool]:
    """``true`` or ``false``."""

    def convert(value: Any) -> bool:
        if not isinstance(value, bool):
            raise GateError(f"must be true or false, got {shown(value)}")
        return value

    return Gate("bool", "true or false", convert)


_JOB_CONTROL = {"SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGCONT", "SIGCHLD"}


def signal_name() -> Gate[signal.Signals]:
    """A signal by name (``TERM``, ``SIGINT``); not one that pauses, resumes or only reports (STOP, CONT, CHLD)."""
    range_text = "a signal name like TERM, INT, QUIT, HUP, USR1, KILL (not STOP, TSTP, TTIN, TTOU, CONT, CHLD)"

    def convert(value: Any) -> signal.Signals:
        if not isinstance(value, str) or len(value) > 16:
            raise GateError(f"must be {range_text}, got {shown(value)}")
        upper = value.strip().upper()
        upper = upper if upper.startswith("SIG") else f"SIG{upper}"
        if upper in _JOB_CONTROL or upper not in signal.Signals.__members__:
            raise GateError(f"must be {range_text}, got {shown(value)}")
        return signal.Signals[upper]

    return Gate("signal", range_text, convert)


def argv() -> Gate[tuple[str, ...]]:
    """An argv: a list of arguments (strings or numbers), or a string split like a POSIX shell (no shell runs).

    A string's single quotes keep their text literal, as ``sh`` does; see :mod:`foss_supervisor.shellwords`.
    """
    from foss_supervisor.shellwords import split_command

    range_text = f"1 to 4096 arguments, each at most {MAX_ARG_BYTES} bytes, {MAX_ARGV_BYTES} together"

    def convert(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            try:
                items: list[Any] = split_command(value)
            except ValueError as exc:
                raise GateError(f"cannot split command: {exc}") from None
        elif isinstance(value, list):
            items = value
        else:
            raise GateError(f"must be a list of arguments or a string, got {shown(value)}")
        if not items or len(items) > 4096:
            raise GateError(f"must have {range_text}, got {len(items)} arguments")
        out = []
        for i, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise GateError(f"an argument must be a string or a number, got {shown(item)}", f"[{i}]")
            if isinstance(item, float) and not math.isfinite(item):
                raise GateError(f"an argument must be a finite number or a string, got {shown(item)}", f"[{i}]")
            arg = str(item)
            if "\x00" in arg or len(os.fsencode(arg)) > MAX_ARG_BYTES:
                raise GateError(f"an argument must hold no NUL byte and at most {MAX_ARG_BYTES} bytes", f"[{i}]")
            out.append(arg)
        if sum(len(os.fsencode(a)) + 1 for a in out) > MAX_ARGV_BYTES:
            raise GateError(f"the arguments must be at most {MAX_ARGV_BYTES} bytes together")
        return tuple(out)

    return Gate("argv", range_text, convert)


def env_map() -> Gate[dict[str, str]]:
    """Environment variables: names without ``=`` or NUL to strings or finite numbers, each at most 128 KiB."""
    range_text = f"names without '=' to strings or numbers, each variable at most {MAX_ARG_BYTES} bytes"

    def convert(value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or len(value) > 4096:
            raise GateError(f"must be a mapping of at most 4096 names to values, got {shown(value)}")
        out: dict[str, str] = {}
        for k, v in value.items():
            key = str(k)
            if not key or "=" in key or "\x00" in key:
                raise GateError(f"a variable name must be non-empty, without '=' or NUL, got {shown(key)}", f".{key}")
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise GateError(f"must be a string or a number, got {shown(v)}", f".{key}")
            if isinstance(v, float) and not math.isfinite(v):
                raise GateError(f"must be a finite number or a string, got {shown(v)}", f".{key}")
            item = str(v)
            if "\x00" in item or len(os.fsencode(f"{key}={item}")) > MAX_ARG_BYTES:
                raise GateError(f"must hold no NUL byte and be at most {MAX_ARG_BYTES} bytes", f".{key}")
            out[key] = item
        return out

    return Gate("env", range_text, convert)


def url() -> Gate[str]:
    """An ``http://`` or ``https://`` URL with a host, no spaces or control characters, at most 2,048 characters."""
    from urllib.parse import urlsplit

    def convert(value: Any) -> str:
        u = _text(value, "URL", 2048)
        try:
            parts = urlsplit(u)
            parts.port  # noqa: B018  # raises ValueError for a port out of range
        except ValueError as exc:
            raise GateError(f"must be an http:// or https:// URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"[\s\x00-\x1f\x7f]", u):
            raise GateError(f"must be an http:// or https:// URL with a host, got {shown(value)}")
        return u

    return Gate("url", "http:// or https:// with a host, at most 2048 characters", convert)


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def host() -> Gate[str]:
    """An IPv4 or IPv6 address, or a DNS name of labels (letters, digits, '-'), at most 253 characters."""

    def convert(value: Any) -> str:
        h = _text(value, "host", 253)
        try:
            ipaddress.ip_address(h)
            return h
        except ValueError:
            pass
        if not all(_LABEL.fullmatch(label) for label in h.removesuffix(".").split(".")):
            raise GateError(f"must be an IP address or a host name, got {shown(value)}")
        return h

    return Gate("host", "an IP address or a host name of at most 253 characters", convert)


# ---------------------------------------------------------------------------------------------- patterns


def glob() -> Gate[str]:
    """A file name pattern (``*.csv``): no ``/`` or NUL, at most 255 characters."""

    def convert(value: Any) -> str:
        g = _text(value, "file name pattern", MAX_NAME_BYTES)
        if "/" in g:
            raise GateError(f"must be a file name pattern without '/', got {shown(value)}")
        return g

    return Gate("glob", "a file name pattern like '*.csv', no '/'", convert)


MAX_REGEX = 1000


def regex() -> Gate[str]:
    """A regular expression as DuckDB runs it (RE2: no look-around, no back-references), at most 1,000 characters.

    Checked by RE2 itself (google-re2), the library inside DuckDB's ``regexp_matches``: Python's ``re``
    accepts look-arounds that would fail only when a run reaches them.
    """

    def convert(value: Any) -> str:
        pattern = _text(value, "regular expression", MAX_REGEX)
        import re2  # type: ignore[import-not-found,import-untyped,unused-ignore]  # only specs with patterns

        options = re2.Options()
        options.log_errors = False  # the reason goes into our error, not to stderr
        try:
            re2.compile(pattern, options)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise GateError(f"{shown(value)} is not a regular expression DuckDB runs (RE2): {reason}") from None
        return pattern

    return Gate("regex", f"an RE2 regular expression of at most {MAX_REGEX} characters", convert)


def cron() -> Gate[str]:
    """A cron expression of five fields (or six, seconds last), as croniter reads it; at most 100 characters."""

    def convert(value: Any) -> str:
        expr = _text(value, "cron expression", 100)
        from croniter import croniter  # only configs with a schedule pay for the import

        if not croniter.is_valid(expr):
            raise GateError(f"must be a cron expression like '*/15 * * * *', got {shown(value)}")
        return expr

    return Gate("cron", "five cron fields (or six, seconds last)", convert)
