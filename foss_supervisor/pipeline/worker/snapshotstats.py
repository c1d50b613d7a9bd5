"""Column statistics of snapshot files, kept beside them so a diff never scans a file to learn them again.

Each data file of a snapshot (``<file>``) has a statistics file ``_stats/<file>``: one row of typed
values, ``rows`` (the file's row count) and per column ``i`` of the file (at most :data:`MAX_COLUMNS`)
``n<i>`` (its non-NULL values) and, for an ordered type, ``lo<i>`` and ``hi<i>`` (its min and max, in the
column's own type, as DuckDB reads them back from the file). Written once, when the data file is written
or hard-linked from a published file; hard-linked with the data file into later snapshots, as the data file.

Why typed Parquet and not text in the manifest: the min of a table made of several files is the min of
the files' mins compared in the column's type (text compares ``10`` before ``9``), so combining needs the
typed values, and a long text value stays whole. A diff reads the statistics of a side's files with one
query (:func:`combined_stats_sql`), or, when one is missing (a snapshot written before they existed), scans
the side (:func:`scan_stats_sql`): both give the same row, read by :func:`read_stats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "HASHES",
    "MAX_COLUMNS",
    "MAX_VALUE_CHARS",
    "STATS",
    "combined_stats_sql",
    "file_stats_sql",
    "ordered_type",
    "parquet_list",
    "quoted",
    "read_stats",
    "scan_stats_sql",
    "stats_columns",
    "stats_file",
]

#: the folder of a snapshot that holds its files' statistics
STATS = "_stats"
#: the folder of a snapshot that holds its files' row hashes (snapshothashes.py)
HASHES = "_hashes"
MAX_COLUMNS = 200
MAX_VALUE_CHARS = 80
_NO_ORDER = ("STRUCT", "MAP", "UNION", "LIST")  # types whose min/max is not shown


def quoted(name: str) -> str:
    """``"name"`` with inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def parquet_list(files: Sequence[Path | str]) -> str:
    """``read_parquet(['a', 'b'])``: the rows of ``files`` in their order."""
    return "read_parquet([" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "])"


def stats_file(data_file: Path) -> Path:
    """Where the statistics of ``data_file`` (a snapshot's file) are kept."""
    return data_file.parent / STATS / data_file.name


def ordered_type(type_name: str) -> bool:
    """Whether min/max of a column of DuckDB type ``type_name`` are shown (not nested types)."""
    return not type_name.upper().startswith(_NO_ORDER) and not type_name.endswith("]")


def stats_columns(columns: dict[str, str]) -> set[str]:
    """The columns of the statistics file of a file of ``columns`` (``{name: type}``)."""
    out = {"rows"}
    for i, type_name in enumerate(list(columns.values())[:MAX_COLUMNS]):
        out |= {f"n{i}", f"lo{i}", f"hi{i}"} if ordered_type(type_name) else {f"n{i}"}
    return out


def file_stats_sql(columns: dict[str, str], source: str) -> str:
    """One row of typed statistics of ``source`` (``{name: type}`` its columns): what a statistics file holds."""
    parts = ["count(*) AS rows"]
    for i, (name, type_name) in enumerate(list(columns.items())[:MAX_COLUMNS]):
        parts.append(f"count({quoted(name)}) AS n{i}")
        if ordered_type(type_name):
            parts += [f"min({quoted(name)}) AS lo{i}", f"max({quoted(name)}) AS hi{i}"]
    return f"SELECT {', '.join(parts)} FROM {source}"  # noqa: S608 (quoted names, checked sources)


def _row_sql(columns: dict[str, str], source: str, rows: str, n: str, lo: str, hi: str) -> str:
    parts = [rows]
    for i, (name, type_name) in enumerate(list(columns.items())[:MAX_COLUMNS]):
        col = quoted(name)
        parts.append(n.format(col=col, i=i))
        ordered = ordered_type(type_name)
        parts += [lo.format(col=col, i=i), hi.format(col=col, i=i)] if ordered else ["NULL", "NULL"]
    return f"SELECT {', '.join(parts)} FROM {source}"  # noqa: S608 (quoted names, checked sources)


def scan_stats_sql(columns: dict[str, str], source: str) -> str:
    """The row :func:`read_stats` reads, computed by scanning ``source``."""
    return _row_sql(
        columns, source, "count(*)", "count({col})", "CAST(min({col}) AS VARCHAR)", "CAST(max({col}) AS VARCHAR)"
    )


def combined_stats_sql(columns: dict[str, str], stats_files: Sequence[Path]) -> str:
    """The row :func:`read_stats` reads, combined from the statistics files of a table's data files."""
    return _row_sql(
        columns,
        parquet_list(stats_files),
        "sum(rows)",
        "sum(n{i})",
        "CAST(min(lo{i}) AS VARCHAR)",
        "CAST(max(hi{i}) AS VARCHAR)",
    )


def _cut(value: Any) -> str | None:
    return None if value is None else str(value)[:MAX_VALUE_CHARS]


def read_stats(row: Sequence[Any], columns: dict[str, str]) -> tuple[int, dict[str, dict[str, Any]]]:
    """``(rows, {column: {null_rate, min, max}})`` from a row of :func:`scan_stats_sql` or
    :func:`combined_stats_sql` (min/max as text cut to MAX_VALUE_CHARS, None for nested types)."""
    total = int(row[0] or 0)
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(list(columns)[:MAX_COLUMNS]):
        non_null, low, high = row[1 + 3 * i : 4 + 3 * i]
        rate = round((total - int(non_null or 0)) / total, 6) if total else None
        out[name] = {"null_rate": rate, "min": _cut(low), "max": _cut(high)}
    return total, out
