"""Gates of numbers: durations, sizes, factors, counts, ports, resource limits and octal modes."""

from __future__ import annotations

import re
from typing import Any

from foss_supervisor.config.gates.base import RLIM_INFINITY, Gate, GateError, between, finite, is_int, shown

__all__ = [
    "count",
    "duration",
    "factor",
    "format_duration",
    "format_size",
    "mode",
    "number",
    "percent",
    "port",
    "rlimit",
    "size",
]

_RLIM_MAX = 2**63 - 1


# re.ASCII: \d is 0-9 only; float() would read Arabic-Indic or fullwidth digits ('٣') as numbers
_DURATION = re.compile(r"\s*(\d{1,15}(?:\.\d{1,9})?)\s*(ms|s|m|h|d)?\s*", re.ASCII)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PERCENT = re.compile(r"\s*(\d{1,3}(?:\.\d{1,9})?)\s*%?\s*", re.ASCII)
_SIZE = re.compile(r"\s*(\d{1,15}(?:\.\d{1,9})?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*", re.IGNORECASE | re.ASCII)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


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
            seconds = finite(value, "duration", "a duration in seconds or like '500ms', '5s', '2m'")
        between(seconds, lo, hi, "duration", range_text, value)
        return seconds

    return Gate("duration", range_text, convert, bounds=(lo, hi))


def size(lo: int, hi: int) -> Gate[int]:
    """Bytes from ``lo`` to ``hi``: an integer, or a string with a unit (``10MB``, ``1MiB``; k/M/G/T)."""
    range_text = f"{format_size(lo)} to {format_size(hi)} bytes"

    def convert(value: Any) -> int:
        if isinstance(value, str):
            m = _SIZE.fullmatch(value)
            if m is None:
                raise GateError(f"must be a size like 1048576, '10MB', '1MiB', got {shown(value)}")
            n = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
        elif is_int(value):
            n = value
        else:
            raise GateError(f"must be a size in bytes or like '10MB', got {shown(value)}")
        between(n, lo, hi, "size", range_text, value)
        return n

    return Gate("size", range_text, convert, bounds=(lo, hi))


def factor(lo: float, hi: float) -> Gate[float]:
    """A finite number from ``lo`` to ``hi`` (multipliers, ratios, fractions)."""
    range_text = f"{lo:g} to {hi:g}"

    def convert(value: Any) -> float:
        number = finite(value, "factor", f"a number from {range_text}")
        between(number, lo, hi, "factor", range_text, value)
        return number

    return Gate("factor", range_text, convert, bounds=(lo, hi))


def number() -> Gate[float | int]:
    """Any finite number, kept as written (an integer stays one)."""

    def convert(value: Any) -> float | int:
        finite(value, "number", "a number")
        return value  # type: ignore[no-any-return]  # an int or a finite float, checked above

    return Gate("number", "finite", convert)


def percent() -> Gate[float]:
    """A percentage above 0 and at most 100: a number (``99.5``) or text with a ``%`` (``"99.5%"``, ``99.5 %``).

    0 is refused (an objective of 0 % is always met: a typo), so are NaN, infinities and YAML's ``.nan``.
    """
    range_text = "above 0 and at most 100"

    def convert(value: Any) -> float:
        if isinstance(value, str):
            m = _PERCENT.fullmatch(value)
            if m is None:
                raise GateError(f"must be a percentage like 99.5 or '99.5%', got {shown(value)}")
            number = float(m.group(1))
        else:
            number = finite(value, "percentage", "a percentage like 99.5 or '99.5%'")
        if not 0 < number <= 100:
            raise GateError(f"must be a percentage {range_text}, got {shown(value)}")
        return number

    return Gate("percent", range_text, convert, bounds=(0, 100))


def count(lo: int, hi: int) -> Gate[int]:
    """An integer from ``lo`` to ``hi``."""
    range_text = f"{lo} to {hi}"

    def convert(value: Any) -> int:
        if not is_int(value):
            raise GateError(f"must be an integer from {range_text}, got {shown(value)}")
        between(value, lo, hi, "count", range_text, value)
        return int(value)

    return Gate("count", range_text, convert, bounds=(lo, hi))


def port() -> Gate[int]:
    """A TCP port, 1 to 65535."""

    def convert(value: Any) -> int:
        if not is_int(value) or not 1 <= value <= 65535:
            raise GateError(f"must be a port from 1 to 65535, got {shown(value)}")
        return int(value)

    return Gate("port", "1 to 65535", convert, bounds=(1, 65535))


def rlimit() -> Gate[tuple[int, int]]:
    """A resource limit: ``4096`` (soft and hard), ``unlimited``, or ``"soft:hard"``; as (soft, hard), -1 unlimited."""
    range_text = "0 to 2^63-1 or unlimited, as N or 'soft:hard'"

    def one(part: Any) -> int:
        if isinstance(part, str) and part.strip() in ("unlimited", "infinity"):
            return RLIM_INFINITY
        if isinstance(part, str) and re.fullmatch(r"\s*\d{1,19}\s*", part, re.ASCII):
            part = int(part)
        if not is_int(part) or not 0 <= part <= _RLIM_MAX:
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
        elif is_int(value):
            bits = value
        else:
            raise GateError(f"must be an octal mode like '022' or '027', got {shown(value)}")
        if not 0 <= bits <= 0o777:
            raise GateError(f"must be an octal mode from 000 to 777, got {shown(value)}")
        return int(bits)

    return Gate("mode", "000 to 777 (octal)", convert)
