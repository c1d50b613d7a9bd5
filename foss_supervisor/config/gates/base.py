"""The gate itself: :class:`Gate`, :class:`GateError`, and the checks every kind shares (see the package)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "MAX_ARGV_BYTES",
    "MAX_ARG_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "NUMERIC_KINDS",
    "RLIM_INFINITY",
    "Gate",
    "GateError",
    "YamlNumber",
    "between",
    "finite",
    "is_int",
    "shown",
]

T = TypeVar("T")

MAX_ARG_BYTES = 128 * 1024 - 1  # Linux's MAX_ARG_STRLEN: execve refuses one longer argument or variable (E2BIG)
MAX_ARGV_BYTES = 1024 * 1024  # half of the usual ARG_MAX, the other half left to the environment
MAX_PATH_BYTES = 4095  # PATH_MAX less its NUL
MAX_NAME_BYTES = 255  # NAME_MAX: one component of a path
RLIM_INFINITY = -1


class YamlNumber(str):
    """A plain YAML scalar that is a number to YAML 1.1 but not in plain decimal: ``0o17``, ``017``, ``1_000``,
    ``0x1F``, ``1:30`` (sexagesimal), ``.inf``, ``.nan``, or an integer of more digits than Python converts.

    It is the text as written (a ``str``), so text keys take it as written; each gate decides by its kind
    (:meth:`Gate.__call__`): a numeric kind refuses it (YAML 1.1 and 1.2 read these differently, or they are
    not finite), ``mode`` reads ``017``/``0o17`` as octal. ``reading`` is what YAML 1.1 makes of it (None
    when it is too long to convert; for ``0o17`` and ``1e3``, text to YAML 1.1, YAML 1.2's reading).
    """

    __slots__ = ("reading",)
    reading: float | int | None

    def __new__(cls, text: str, reading: float | int | None) -> YamlNumber:
        self = super().__new__(cls, text)
        self.reading = reading
        return self

    def refusal(self, kind: str) -> str:
        """Why a gate of a numeric ``kind`` refuses this text."""
        if isinstance(self.reading, float) and not math.isfinite(self.reading):
            return f"must be a finite {kind}, got {self}"
        if self.reading is None:
            return f"must be a {kind} of at most {MAX_INT_DIGITS} digits, got {len(self)} characters"
        return (
            f"must be a {kind} in plain decimal digits, got {self[:40]}: YAML 1.1 and 1.2 read this form "
            f"differently (one as {self.reading!r}); write the number you mean in decimal"
        )


MAX_INT_DIGITS = 4300  # Python's int max str digits: past it int() refuses to convert
#: the kinds whose gates take numbers: a YamlNumber is refused there (see YamlNumber)
NUMERIC_KINDS = frozenset(
    {"duration", "size", "factor", "number", "count", "port", "rlimit", "retries", "exit codes", "percent", "uptime"}
)


class GateError(ValueError):
    """A value refused by a gate. ``at`` is where below the key (``[2]``, ``.db.condition``), or empty.

    A gate of a collection refuses every bad item at once: :meth:`of` raises one error whose ``all`` holds
    each (the loaders report them all, so a file is fixed in one pass).
    """

    def __init__(self, reason: str, at: str = "") -> None:
        self.reason, self.at = reason, at
        self.all: tuple[GateError, ...] = (self,)
        super().__init__(reason)

    @classmethod
    def of(cls, errors: list[GateError]) -> GateError:
        """One error for ``errors`` (at least one): the first's reason and place, ``all`` of them."""
        first = errors[0]
        combined = cls(first.reason, first.at)
        combined.all = tuple(errors)
        return combined


@dataclass(frozen=True, slots=True)
class Gate(Generic[T]):
    """The one way a value of ``kind`` enters a config: ``gate(value)`` is the typed value or a GateError.

    ``range`` is the human text of what is accepted (``"0s to 1d"``), the same text the errors name;
    ``bounds`` the numeric range (seconds, bytes, a count) where there is one, ``options`` a choice's set,
    ``pattern`` a name's regular expression, ``item`` a list's gate for each item (what the property tests
    generate values around).
    """

    kind: str
    range: str
    convert: Callable[[Any], T]
    bounds: tuple[float, float] | None = None
    options: tuple[str, ...] = ()
    pattern: str = ""
    item: Gate[Any] | None = None

    def __call__(self, value: Any) -> T:
        if isinstance(value, YamlNumber) and self.kind in NUMERIC_KINDS:
            raise GateError(value.refusal(self.kind))
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


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def finite(value: Any, kind: str, what: str) -> float:
    """A YAML number as a float: refused when it is not a number, or NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GateError(f"must be {what}, got {shown(value)}")
    number = float(value)  # an integer past 1e308 overflows: refused like infinity
    if not math.isfinite(number):
        raise GateError(f"must be a finite {kind}, got {shown(value)}")
    return number


def between(number: float, lo: float, hi: float, kind: str, range_text: str, value: Any) -> None:
    if not lo <= number <= hi:
        raise GateError(f"must be a {kind} from {range_text}, got {shown(value)}")
