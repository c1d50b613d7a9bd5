"""The worker's export of a table or a query's whole result to a file: DuckDB's COPY, streamed, no row cap.

Runs inside the worker on a cursor of its connection (see server.py); the file appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.base.atomicfile import atomic_publish
from foss_supervisor.pipeline.errors import QueryRefusedError
from foss_supervisor.pipeline.worker.query import check_query

__all__ = ["EXPORT_FORMATS", "export_to_file", "table_source"]

#: COPY options of each export format (JSON is one object per line)
EXPORT_FORMATS = {"csv": "FORMAT csv, HEADER", "parquet": "FORMAT parquet, COMPRESSION zstd", "jsonl": "FORMAT json"}


def table_source(cursor: Any, name: str) -> str:
    """``(SELECT * FROM "schema"."table")`` for an existing table or view ``name`` (schema.table, any case).
    Raises QueryRefusedError when there is none."""
    schema, _, table = name.lower().partition(".")
    found = cursor.execute(
        "SELECT count(*) FROM (SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary"
        " UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary)"
        " WHERE schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchone()[0]
    if not found:
        raise QueryRefusedError(f"no table or view {name!r} (give it as schema.table)")
    quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))
    return f"(SELECT * FROM {quoted})"  # noqa: S608 (checked above)


def export_to_file(
    cursor: Any, message: Mapping[str, Any], *, database: str, export_dir: Path | None
) -> dict[str, Any]:
    """COPY one table or view (``table``), or a read-only query's result (``sql``, checked as the query
    engine checks it), whole, into ``export_dir``,
    streamed by DuckDB with no row cap, written to a hidden temporary name and renamed when complete, so a
    reader elsewhere sees the old file or the new one. Returns ``{path, rows, bytes, format}``; raises
    QueryRefusedError (bad name, format or table), QueryError, duckdb.Error, OSError."""
    sql = str(message.get("sql", ""))
    fmt = str(message.get("format", ""))
    name = str(message.get("name", ""))
    folder = export_dir
    if folder is None:
        raise QueryRefusedError("this worker has no export folder")
    if fmt not in EXPORT_FORMATS:
        raise QueryRefusedError(f"format must be one of {', '.join(sorted(EXPORT_FORMATS))}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", name) or name.startswith("."):
        raise QueryRefusedError(f"bad export file name {name!r}")
    if sql:  # one SELECT that reads warehouse tables only; a trailing comment ends at the line break
        checked = check_query(cursor, sql, database=database).strip().rstrip(";").rstrip()
        source = f"({checked}\n)"
    else:
        source = table_source(cursor, str(message.get("table", "")))
    final = folder / name

    def copy(tmp: Path) -> int:
        cursor.execute("BEGIN TRANSACTION READ ONLY")
        try:
            return int(cursor.execute(f"COPY {source} TO '{tmp}' ({EXPORT_FORMATS[fmt]})").fetchone()[0])
        finally:
            with contextlib.suppress(duckdb.Error):
                cursor.execute("ROLLBACK")

    rows = atomic_publish(final, copy)  # the one way a file is replaced (base/atomicfile.py)
    return {"path": str(final), "rows": rows, "bytes": final.stat().st_size, "format": fmt}
