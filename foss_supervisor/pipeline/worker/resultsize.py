"""Bound a query's result in DuckDB, before Python sees it: the size of every row, and a running total.

Why in SQL: converting a value to Python cannot be interrupted and costs 10 to 40 times its JSON size (a
LIST of 300M integers would be gigabytes of Python objects before anyone could count it), so the bound must
hold before the fetch. :func:`bounded_sql` wraps the checked query as

    SELECT CASE WHEN __cum <= budget THEN c0 END, ..., __bytes, __cum
    FROM (SELECT *, sum(__bytes) OVER (ROWS UNBOUNDED PRECEDING) AS __cum
          FROM (SELECT *, <size of the row> AS __bytes FROM (<query>) AS __q(c0, c1, ...)))

where the size of a row is built from the result's types (:func:`size_expr`): a fixed-width value costs a
constant, a string its length, a LIST its length times its element's constant (or the sum over its
elements), a STRUCT the sum of its fields. DuckDB plans the running total as a streaming window, so the
order of the query is kept and rows are still produced only as they are fetched; the first row past the
budget comes back with every cell NULL, so no huge value is ever converted.

The figures approximate the JSON the protocol writes (non-ASCII text escapes to more); the query engine
counts the exact JSON of each row it keeps, so the reply's bound holds either way.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BYTES_COLUMN", "CUMULATIVE_COLUMN", "bounded_sql", "size_expr"]

BYTES_COLUMN = "__foss_row_bytes"
CUMULATIVE_COLUMN = "__foss_result_bytes"
NULL_BYTES = 5  # "null,"
#: JSON bytes of one value, separator included, by DuckDB type id (upper bounds, as base.jsonable writes them)
FIXED_BYTES = {
    "boolean": 6,
    "tinyint": 5,
    "utinyint": 4,
    "smallint": 7,
    "usmallint": 6,
    "integer": 12,
    "uinteger": 11,
    "bigint": 23,
    "ubigint": 23,
    "hugeint": 43,
    "uhugeint": 43,
    "float": 16,
    "double": 25,
    "date": 13,
    "time": 18,
    "time_ns": 21,
    "time with time zone": 24,
    "timestamp": 29,
    "timestamp_s": 29,
    "timestamp_ms": 29,
    "timestamp_ns": 32,
    "timestamp with time zone": 35,
    "interval": 25,
    "uuid": 39,
    "null": NULL_BYTES,
}
#: above this many terms a column is measured as its text (CAST AS VARCHAR) instead of field by field
MAX_TERMS = 500


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _children(dtype: Any) -> list[tuple[str, Any]]:
    return [(str(name), child) for name, child in dtype.children]


def _fixed(dtype: Any) -> int | None:
    """JSON bytes of every value of ``dtype`` when that does not depend on the value, else None."""
    tid = str(dtype.id)
    if tid in FIXED_BYTES:
        return FIXED_BYTES[tid]
    if tid == "decimal":
        return int(dict(dtype.children)["precision"]) + 5  # digits, point, sign, quotes, separator
    return None


class _Builder:
    def __init__(self) -> None:
        self.terms = 0
        self.depth = 0

    def size(self, value: str, dtype: Any) -> str:
        """SQL for the JSON bytes of ``value`` (an expression of type ``dtype``), NULL counted as null."""
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise OverflowError
        fixed = _fixed(dtype)
        if fixed is not None:
            return str(fixed)
        tid = str(dtype.id)
        if tid == "varchar":
            inner = f"strlen({value}) + 3"
        elif tid == "blob":
            inner = f"octet_length({value}) * 4 // 3 + 7"
        elif tid in ("list", "array"):
            inner = self._sequence(value, _children(dtype)[0][1])
        elif tid == "struct":
            fields = _children(dtype)
            parts = [
                f"{len(name.encode()) + 4} + {self.size(f'struct_extract_at({value}, {i})', child)}"
                for i, (name, child) in enumerate(fields, 1)
            ]
            inner = " + ".join(["2", *parts]) if parts else "3"
        elif tid == "map":
            kinds = dict(_children(dtype))
            keys = self._sequence(f"map_keys({value})", kinds["key"])
            values = self._sequence(f"map_values({value})", kinds["value"])
            inner = f"{keys} + {values} + 3 * len(map_keys({value}))"
        else:  # enum, bit, bignum, union, json and whatever comes next: its text
            inner = f"strlen(CAST({value} AS VARCHAR)) + 3"
        return f"coalesce({inner}, {NULL_BYTES})"

    def _sequence(self, value: str, element: Any) -> str:
        """Bytes of a LIST/ARRAY ``value``: length times a constant, or the sum over its elements."""
        fixed = _fixed(element)
        length = f"len({value})"
        if fixed is not None:
            return f"{length} * {fixed} + 3"
        self.depth += 1
        var = f"__e{self.depth}"
        body = self.size(var, element)
        return f"coalesce(list_sum(list_transform({value}, lambda {var}: {body})), 0) + {length} + 3"


def size_expr(value: str, dtype: Any) -> str:
    """SQL for the approximate JSON bytes of ``value``, whose DuckDB type (a ``DuckDBPyType``) is ``dtype``."""
    try:
        return _Builder().size(value, dtype)
    except OverflowError:  # a type too wide to spell out: measure its text
        return f"coalesce(strlen(CAST({value} AS VARCHAR)) + 3, {NULL_BYTES})"


def bounded_sql(query: str, types: list[Any], budget: int) -> str:
    """``query`` wrapped so that each row also carries its size and the running total (see the module doc),
    and every cell of a row whose running total passes ``budget`` bytes is NULL."""
    names = [f"c{i}" for i in range(len(types))]
    row = " + ".join([str(2 + len(types)), *(size_expr(n, t) for n, t in zip(names, types, strict=True))])
    guarded = ", ".join(f"CASE WHEN {CUMULATIVE_COLUMN} <= {int(budget)} THEN {n} END" for n in names)
    return (
        f"SELECT {guarded}, {BYTES_COLUMN}, {CUMULATIVE_COLUMN} FROM ("  # noqa: S608 (generated names)
        f"SELECT *, sum({BYTES_COLUMN}) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
        f" AS {CUMULATIVE_COLUMN} FROM ("
        f"SELECT *, {row} AS {BYTES_COLUMN} FROM ({query}\n) AS __q({', '.join(names)})))"
    )
