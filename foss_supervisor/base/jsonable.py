"""The one converter from our values to JSON-able data: replies, events, logs, run records, the worker's rows.

:func:`jsonable` walks a value and returns only ``dict`` (string keys), ``list``, ``str``, ``int``, ``float``,
``bool`` and ``None``:

=====================================  ===========================================================
value                                  becomes
=====================================  ===========================================================
dataclass instance                     ``{field: value}`` for each field (nested ones too)
enum member                            its value (a StrEnum its word); a signal its name (``"SIGTERM"``)
mapping                                ``{str(key): value}`` (an enum key is its value)
list, tuple, deque, other iterables    list; a set or frozenset sorted (by its text when unorderable)
path                                   its text
datetime, date, time                   ISO 8601 text
timedelta                              seconds (float)
Decimal                                float; with ``exact``, its digits as text (``"952.70"``); NaN ``"nan"``
int                                    itself; with ``exact``, beyond 2**53 - 1 its digits as text
float                                  itself; NaN and infinities as text (``"nan"``, ``"inf"``): JSON has none
bytes, bytearray, memoryview           base64 text
UUID, anything else                    ``str(value)``
=====================================  ===========================================================

Use it as ``json.dumps(value, default=jsonable)`` (only what json cannot write reaches it) or call it to get
plain data. ``exact`` is for values shown to people and read by any JSON parser (query results): a float
would silently change a DECIMAL's scale or a BIGINT's last digits. Stdlib only, and light: the modules of
the rarer kinds (dataclasses, decimal, datetime, uuid, signal) are looked up, never imported (a value of a
kind exists only once its module is loaded), so the CLI's fast paths import nothing for it.
"""

from __future__ import annotations

import enum
import json
import math
import sys
from collections.abc import Iterable, Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the CLI's fast path imports this module)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_SAFE_INTEGER", "dataclass_to_json", "json_line", "jsonable"]

MAX_SAFE_INTEGER = 2**53 - 1  # beyond it a JSON number loses digits in JavaScript (and many other parsers)


def jsonable(value: Any, exact: bool = False) -> Any:
    """``value`` as JSON-able data (the table above); never raises for any Python value (cycles aside)."""
    if value is None or type(value) in (str, bool):
        return value
    if isinstance(value, enum.Enum):
        signals = sys.modules.get("signal")
        if signals is not None and isinstance(value, signals.Signals):
            return value.name
        return jsonable(value.value, exact)
    if isinstance(value, int):  # bool is handled above
        return str(value) if exact and abs(value) > MAX_SAFE_INTEGER else int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return str(value)
    pathlib = sys.modules.get("pathlib")  # a path exists only once pathlib is loaded
    if pathlib is not None and isinstance(value, pathlib.PurePath):
        return str(value)
    if (fields := _fields(value)) is not None:
        return {name: jsonable(getattr(value, name), exact) for name in fields}
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v, exact) for k, v in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if (scalar := _rare_scalar(value, exact)) is not _NOT_SCALAR:
        return scalar
    if isinstance(value, set | frozenset):
        items = [jsonable(v, exact) for v in value]
        try:
            return sorted(items)
        except TypeError:  # mixed kinds: a stable order all the same
            return sorted(items, key=repr)
    if isinstance(value, Iterable):
        return [jsonable(v, exact) for v in value]
    return str(value)


def json_line(message: Mapping[str, Any]) -> bytes:
    """One message as one line of UTF-8 JSON ending in ``\\n``, compact (JSON escapes a newline inside a string,
    so a line is a message), values json cannot write through :func:`jsonable`: the one encoder of both line
    protocols, the control socket's and the pipeline worker's. Raises TypeError for what jsonable refuses."""
    return json.dumps(message, separators=(",", ":"), default=jsonable).encode("utf-8") + b"\n"


def dataclass_to_json(value: object, exact: bool = False) -> dict[str, Any]:
    """A dataclass instance as ``{field: JSON-able value}``; raises ``TypeError`` for anything else."""
    fields = _fields(value)
    if fields is None:
        raise TypeError(f"not a dataclass instance: {value!r}")
    return {name: jsonable(getattr(value, name), exact) for name in fields}


def _fields(value: object) -> list[str] | None:
    """The field names of a dataclass instance (in order), None for anything else."""
    dataclasses = sys.modules.get("dataclasses")
    if dataclasses is None or isinstance(value, type) or not dataclasses.is_dataclass(value):
        return None
    return [f.name for f in dataclasses.fields(value)]


_NOT_SCALAR = object()


def _rare_scalar(value: object, exact: bool) -> Any:
    """Decimal, dates and times, timedelta, UUID as JSON; :data:`_NOT_SCALAR` for anything else."""
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(value, decimal.Decimal):
        if value.is_nan():  # quiet or signalling: float() refuses the latter
            return "nan"
        return str(value) if exact and value.is_finite() else jsonable(float(value))
    dt = sys.modules.get("datetime")
    if dt is not None and isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if dt is not None and isinstance(value, dt.timedelta):
        return value.total_seconds()
    uuid = sys.modules.get("uuid")
    if uuid is not None and isinstance(value, uuid.UUID):
        return str(value)
    return _NOT_SCALAR


def _key(key: Any) -> str:
    """A mapping key as json writes it (``None`` -> ``"null"``, ``True`` -> ``"true"``), enums by value."""
    converted = jsonable(key)
    if isinstance(converted, str):
        return converted
    return json.dumps(converted) if converted is None or isinstance(converted, bool) else str(converted)
