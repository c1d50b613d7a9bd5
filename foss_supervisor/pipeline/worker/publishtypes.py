"""The one gate every published column passes (issue 18): a DuckDB type is published as it is, CAST to an exact
counterpart, or refused, for Parquet and for Delta Lake alike; a refusal names the table, the column, the type
and the CAST that fixes it in the step's SQL.

What DuckDB would otherwise write without a word (measured with DuckDB 2.0, deltalake 1.6):

- ``HUGEINT`` and ``UHUGEINT`` became ``DOUBLE`` in Parquet (precision lost past 2**53) and an unchecked
  ``decimal128(38,0)`` in Delta (a 39-digit value written into a 38-digit type). Both are now published as
  ``DECIMAL(38,0)``, and :func:`check_fit` fails the publish when a value does not fit 38 digits.
- ``INTERVAL`` kept milliseconds only in Parquet (and refused negative intervals); ``TIME WITH TIME ZONE``
  lost its offset; Delta truncated ``TIMESTAMP_NS`` to microseconds and has no ``TIME``, ``INTERVAL`` or
  union type; a ``BIT`` reached Delta as DuckDB's internal bytes and a ``BIGNUM`` (``VARINT``) as an opaque
  DuckDB extension. Those are refused, each with its fix.
- Delta has no unsigned integers (deltalake cast them to the signed type of the same width, failing on large
  values): they are published as the next wider signed type (``UBIGINT`` as ``DECIMAL(20,0)``), exactly.

Nested types are gated member by member: a ``STRUCT``, ``LIST``, ``MAP`` or ``UNION`` is CAST as a whole to
the same shape with its members' published types; an ``ARRAY`` (``T[n]``) becomes a ``LIST`` (neither format
has a fixed size, and pyarrow could not read the Parquet DuckDB wrote of a NULL array). deltalake cannot write a
``TIMESTAMP`` (without time zone) inside a ``MAP``: refused for Delta. Used by the worker (publish.py,
delta.py) on the tables it publishes and by ``pipeline validate`` (validate.py) on the tables the steps
make. Types are DuckDB's Python type objects (``relation.types``: ``.id`` and ``.children``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from foss_supervisor.pipeline.errors import QueryRefusedError

__all__ = ["FORMATS", "PublishedColumn", "check_fit", "published_columns", "select_sql"]

#: the publish formats the gate knows (``publish_format``)
FORMATS = ("parquet", "delta")
_NAMES = {"parquet": "Parquet", "delta": "Delta Lake"}
#: the widest exact number both formats hold
_DECIMAL = "DECIMAL(38,0)"
#: published as they are by both formats (values and their text read back the same)
_AS_IS = frozenset(
    {
        "boolean",
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "float",
        "double",
        "decimal",
        "varchar",
        "blob",
        "date",
        "timestamp",
        "timestamp_s",
        "timestamp_ms",
        "timestamp with time zone",
        "uuid",
        "enum",
    }
)
#: published as they are by Parquet only (it has unsigned ints, TIME, nanoseconds; BIT and BIGNUM go as text)
_PARQUET_ONLY = frozenset({"utinyint", "usmallint", "uinteger", "ubigint", "time", "timestamp_ns", "bit", "bignum"})
#: cast for Delta, which has no unsigned integers: the next wider signed type holds every value
_DELTA_WIDER = {"utinyint": "SMALLINT", "usmallint": "INTEGER", "uinteger": "BIGINT", "ubigint": "DECIMAL(20,0)"}
_WIDE_INTS = frozenset({"hugeint", "uhugeint"})
#: why a type is refused, and how to fix it (``{c}``: the column, quoted)
_STEP = " in the step's SQL"
_REFUSED = {
    "interval": ("Parquet keeps whole milliseconds only, Delta Lake has no interval", "CAST({c} AS VARCHAR)" + _STEP),
    "time with time zone": ("neither keeps its UTC offset", "CAST({c} AS TIME) (its UTC time) or AS VARCHAR" + _STEP),
    "time": ("Delta Lake has no time of day", "CAST({c} AS VARCHAR)" + _STEP + ", or publish_format: parquet"),
    "timestamp_ns": (
        "Delta Lake keeps microseconds only",
        "CAST({c} AS TIMESTAMP) (microseconds) or AS VARCHAR" + _STEP + ", or publish_format: parquet",
    ),
    "bit": ("Delta Lake would get DuckDB's internal bytes", "CAST({c} AS VARCHAR)" + _STEP),
    "bignum": ("Delta Lake would get an opaque DuckDB value", "CAST({c} AS DECIMAL(38,0)) or AS VARCHAR" + _STEP),
    "union": ("Delta Lake has no union", "one column per member (union_extract) or CAST({c} AS VARCHAR)" + _STEP),
}


#: timestamps without a time zone, which deltalake cannot write inside a MAP (it lacks the timestampNtz feature)
_NAIVE = frozenset({"timestamp", "timestamp_s", "timestamp_ms"})
_MAP_FIX = "CAST the map's timestamps AS TIMESTAMPTZ or AS VARCHAR" + _STEP + ", or publish_format: parquet"


class _Refused(Exception):  # control flow within this module: published_columns raises the error
    """A type with no exact counterpart in the format: ``args = (inner type, reason, fix with {c})``."""


@dataclasses.dataclass(frozen=True, slots=True)
class PublishedColumn:
    """One column as published: its name, DuckDB type, the type it is CAST to (None: as it is), and for Delta
    Lake a SQL condition on the column, true when a date or timestamp in it (nested ones included) is infinite or
    outside the years 1 to 9999 (None: it holds none)."""

    name: str
    type: str
    cast: str | None
    out_of_years: str | None = None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _published_type(duckdb_type: Any, fmt: str) -> str | None:
    """The DuckDB type to CAST a column of ``duckdb_type`` (a DuckDB Python type object) to so that ``fmt``
    (``parquet`` or ``delta``) holds its values exactly; None when it is published as it is.

    Raises _Refused (no exact counterpart)."""
    kind = str(duckdb_type.id)
    if kind in _WIDE_INTS:
        return _DECIMAL
    if kind in _AS_IS or (fmt == "parquet" and kind in _PARQUET_ONLY | {"union"}):
        return None if kind != "union" else _nested(duckdb_type, fmt)
    if fmt == "delta" and kind in _DELTA_WIDER:
        return _DELTA_WIDER[kind]
    if kind in ("list", "array", "map", "struct"):
        return _nested(duckdb_type, fmt)
    reason, fix = _REFUSED.get(kind, (f"{_NAMES[fmt]} has no known exact counterpart", "CAST({c} AS VARCHAR)" + _STEP))
    raise _Refused(str(duckdb_type), reason, fix)


def _nested(duckdb_type: Any, fmt: str) -> str | None:
    """The CAST target of a nested type whose members need one (None when none does)."""
    kind = str(duckdb_type.id)
    children = list(duckdb_type.children)
    if kind == "list":
        inner = _published_type(children[0][1], fmt)
        return None if inner is None else f"{inner}[]"
    if kind == "array":  # as a list: neither format has a fixed size (and pyarrow cannot read DuckDB's NULL arrays)
        return f"{_published_type(children[0][1], fmt) or children[0][1]}[]"
    if kind == "map":
        key, value = children[0][1], children[1][1]
        if fmt == "delta" and _NAIVE & (_kinds(key) | _kinds(value)):
            raise _Refused(str(duckdb_type), "deltalake cannot write a TIMESTAMP in a MAP", _MAP_FIX)
        k, v = _published_type(key, fmt), _published_type(value, fmt)
        return None if k is v is None else f"MAP({k or key}, {v or value})"
    members = [(str(n), t) for n, t in children if not (kind == "union" and n == "")]  # a union's tag
    casts = [_published_type(t, fmt) for _, t in members]
    if all(c is None for c in casts):
        return None
    inner = ", ".join(f"{_quoted(n)} {c or t}" for (n, t), c in zip(members, casts, strict=True))
    return f"{'STRUCT' if kind == 'struct' else 'UNION'}({inner})"


def _kinds(duckdb_type: Any) -> set[str]:
    """The type ids in ``duckdb_type``, nested ones included."""
    found = {str(duckdb_type.id)}
    if found & {"list", "array", "map", "struct", "union"}:
        for _, child in duckdb_type.children:
            if not isinstance(child, int | str | list):  # an array's size, an enum's values
                found |= _kinds(child)
    return found


def published_columns(table: str, names: Sequence[str], types: Sequence[Any], fmt: str) -> list[PublishedColumn]:
    """Every column of ``table`` (``names`` and DuckDB ``types`` as a relation gives them) through the gate.

    Returns each column with the type it is CAST to (None: published as it is). Raises QueryRefusedError
    naming the table, the column, its type, why and the CAST that fixes it; ValueError (an unknown format)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown publish format {fmt!r}")
    out = []
    for name, duckdb_type in zip(names, types, strict=True):
        try:
            cast = _published_type(duckdb_type, fmt)
        except _Refused as exc:
            inner, reason, fix = exc.args
            within = "" if inner == str(duckdb_type) else f" (its {inner})"
            raise QueryRefusedError(
                f"{table}: column {name!r} is {duckdb_type}{within}, which {_NAMES[fmt]} cannot hold exactly"
                f" ({reason}); fix: {fix.format(c=_quoted(name))}"
            ) from None
        far = _out_of_years(_quoted(str(name)), duckdb_type) if fmt == "delta" else None
        out.append(PublishedColumn(str(name), str(duckdb_type), cast, far))
    return out


#: the date and timestamp type ids Delta Lake takes only within the years 1 to 9999 (deltalake panics past them)
_DATED_IDS = frozenset({"date", "timestamp", "timestamp_s", "timestamp_ms", "timestamp with time zone"})


def _out_of_years(expr: str, duckdb_type: Any, depth: int = 0) -> str | None:
    """A SQL condition on ``expr`` (of ``duckdb_type``), true when a date or timestamp in it, at any depth, is
    infinite or outside the years 1 to 9999; None when the type holds no date or timestamp. Compared, not
    year(): a TIMESTAMPTZ of the year 1 BC has year() 1, and infinities compare past both bounds."""
    kind = str(duckdb_type.id)
    if kind in _DATED_IDS:
        t = str(duckdb_type)
        return f"({expr} < CAST('0001-01-01' AS {t}) OR {expr} >= CAST('10000-01-01' AS {t}))"
    children = [(n, t) for n, t in duckdb_type.children] if kind in ("list", "array", "map", "struct") else []
    if kind in ("list", "array"):
        return _any_member(expr, children[0][1], depth)
    if kind == "map":  # its keys and its values, each a list
        parts = [_any_member(f"map_keys({expr})", children[0][1], depth)]
        parts.append(_any_member(f"map_values({expr})", children[1][1], depth))
    else:
        parts = [
            _out_of_years(f"struct_extract({expr}, '{str(n).replace(chr(39), chr(39) * 2)}')", t, depth)
            for n, t in children
        ]
    found = [p for p in parts if p is not None]
    return " OR ".join(f"coalesce({p}, false)" for p in found) if found else None


def _any_member(expr: str, member: Any, depth: int) -> str | None:
    """The condition of :func:`_out_of_years` on ``expr``, a list whose members are of type ``member``: true when
    one member's is (None when the member type holds no date or timestamp)."""
    var = f"_d{depth}"
    inner = _out_of_years(var, member, depth + 1)
    return None if inner is None else f"list_bool_or(list_transform({expr}, lambda {var}: {inner}))"


def select_sql(source: str, columns: Sequence[PublishedColumn]) -> str:
    """``SELECT`` every column of ``source`` (a quoted table), each CAST to its published type where it has one."""
    parts = [
        f"CAST({_quoted(c.name)} AS {c.cast}) AS {_quoted(c.name)}" if c.cast else _quoted(c.name) for c in columns
    ]
    return f"SELECT {', '.join(parts)} FROM {source}"  # noqa: S608 (checked names, quoted)


def _may_not_fit(duckdb_type: str) -> bool:
    return "HUGEINT" in duckdb_type.upper()  # HUGEINT or UHUGEINT anywhere in it: 39 digits do not fit 38


#: the dates and timestamps Delta Lake takes only within the years 1 to 9999 (deltalake panics past its range)
_DATED = frozenset({"DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP WITH TIME ZONE"})


def check_fit(cursor: Any, table: str, source: str, columns: Sequence[PublishedColumn], fmt: str = "parquet") -> None:
    """Fail when a value of a column CAST to ``DECIMAL(38,0)`` (or a nested member so cast) would change: each
    such column is compared, value by value as text, with its cast; for Delta Lake also when a ``DATE`` or
    ``TIMESTAMP`` column, or one in a ``STRUCT``, ``LIST``, ``ARRAY`` or ``MAP`` at any depth, holds an infinite
    value or one outside the years 1 to 9999 (deltalake fails on them midway, in its words, and Spark reads no
    other). One scan of ``source``, only when the table has such a
    column. Raises QueryRefusedError naming table, column, type, how many values and the fix; duckdb.Error."""
    wide = [c for c in columns if c.cast and _may_not_fit(c.type)]
    dated = [c for c in columns if fmt == "delta" and c.out_of_years]
    if not wide and not dated:
        return
    counts = [
        f"count(*) FILTER (WHERE TRY_CAST({_quoted(c.name)} AS {c.cast})::VARCHAR"
        f" IS DISTINCT FROM {_quoted(c.name)}::VARCHAR)"
        for c in wide
    ] + [f"count(*) FILTER (WHERE coalesce({c.out_of_years}, false))" for c in dated]
    found = cursor.execute(f"SELECT {', '.join(counts)} FROM {source}").fetchall()[0]  # noqa: S608 (quoted names)
    for column, bad in zip(wide, found, strict=False):
        if bad:
            raise QueryRefusedError(
                f"{table}: column {column.name!r} is {column.type}, published as {column.cast}, and {bad} of its"
                f" values do not fit 38 digits (the widest exact number Parquet and Delta Lake hold): CAST it in the"
                f" step's SQL, AS VARCHAR to keep every digit or AS DOUBLE if an approximation will do"
            )
    for column, bad in zip(dated, found[len(wide) :], strict=True):
        if bad:
            what = "of its values are" if column.type in _DATED else "of its values hold a date or timestamp that is"
            raise QueryRefusedError(
                f"{table}: column {column.name!r} is {column.type}, and {bad} {what} infinite or outside"
                f" the years 1 to 9999, which Delta Lake cannot hold: leave them out or CAST"
                f" {_quoted(column.name)} AS VARCHAR{_STEP}, or publish_format: parquet"
            )
