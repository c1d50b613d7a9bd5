"""The worker's half of a publish: every table of one run, written as Parquet into the run's hidden partial
folder in ONE read-only transaction, so the tables of a published set are one snapshot of the warehouse.

The daemon's half (engine/publish.py) then adds the manifest and ``_SUCCESS`` and makes the run current. Runs in
the worker on a cursor of its connection (an ``export`` request with ``publish_run``; see server.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.pipeline.engine.publish import RUNS, stage_name
from foss_supervisor.pipeline.errors import QueryRefusedError
from foss_supervisor.pipeline.worker.export import EXPORT_FORMATS, table_source
from foss_supervisor.pipeline.worker.publishtypes import check_fit, published_columns, select_sql

__all__ = ["TABLE_NAME", "check_table", "gated_select", "pipeline_folder", "publish_tables"]

_PIPELINE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: a published table's name, ``schema.table`` (also the name of its folder)
TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def publish_tables(cursor: Any, message: Mapping[str, Any], *, publish_dir: Path | None) -> dict[str, Any]:
    """Write each of ``message["tables"]`` (``[{table: schema.table, partition_by: [column, ...]}]``) of
    pipeline ``message["pipeline"]`` into ``publish_dir/<pipeline>/runs/.<run_id>.partial/<schema.table>/``:
    ``part-0.parquet``, or Hive folders ``<column>=<value>/part-0.parquet`` with ``partition_by``.

    Returns ``{"tables": [{table, path, rows, bytes, partition_by, schema: [{name, type}], files}]}``, paths
    relative to the run folder, each column's type as published (publishtypes.py: ``HUGEINT`` as
    ``DECIMAL(38,0)``). Raises QueryRefusedError (a bad name, an unknown table or partition column, a column
    type or value Parquet cannot hold exactly), duckdb.Error, OSError (also when the partial folder was
    removed meanwhile: a cancelled publish).
    """
    folder = pipeline_folder(publish_dir, message)
    try:
        stage = folder / RUNS / stage_name(str(message.get("run_id", "")))
    except ValueError as exc:
        raise QueryRefusedError(str(exc)) from None
    stage.mkdir(parents=True)  # fresh: a leftover of an earlier attempt is removed by the daemon first
    out: list[dict[str, Any]] = []
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        for entry in message.get("tables") or ():
            out.append(_write_table(cursor, stage, str(entry.get("table", "")), entry.get("partition_by") or ()))
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
    return {"tables": out}


def pipeline_folder(publish_dir: Path | None, message: Mapping[str, Any]) -> Path:
    """``publish_dir/<message["pipeline"]>``. Raises QueryRefusedError (no publish folder, a bad name)."""
    if publish_dir is None:
        raise QueryRefusedError("this worker has no publish folder")
    pipeline = str(message.get("pipeline", ""))
    if not _PIPELINE.fullmatch(pipeline):
        raise QueryRefusedError(f"bad pipeline name {pipeline!r}")
    return publish_dir / pipeline


def check_table(cursor: Any, table: str, columns: list[str]) -> tuple[str, list[dict[str, str]]]:
    """(the quoted source of ``table``, its schema ``[{name, type}]`` in DuckDB's types), once its name and
    every partition column of ``columns`` are checked. Raises QueryRefusedError, duckdb.Error."""
    if not TABLE_NAME.fullmatch(table):
        raise QueryRefusedError(f"bad table name {table!r}")
    source = table_source(cursor, table)
    schema = [
        {"name": str(row[0]), "type": str(row[1])}
        for row in cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608 (a checked name)
    ]
    known = {c["name"] for c in schema}
    for column in columns:
        if not _COLUMN.fullmatch(column) or column not in known:
            raise QueryRefusedError(f"publish_partition_by: {table} has no column {column!r}")
    return source, schema


def gated_select(cursor: Any, table: str, source: str, fmt: str) -> tuple[str, list[dict[str, str]]]:
    """(the ``SELECT`` that publishes ``table`` (quoted ``source``) in ``fmt``, its schema ``[{name, type}]`` as
    published): every column through the type gate (publishtypes.py), values checked where a CAST could
    change them. Raises QueryRefusedError (a type or a value the format cannot hold exactly), duckdb.Error."""
    relation = cursor.sql(f"SELECT * FROM {source}")  # noqa: S608 (a checked name)
    columns = published_columns(table, relation.columns, relation.types, fmt)
    check_fit(cursor, table, source, columns, fmt)
    select = select_sql(source, columns)
    published = cursor.sql(select).types  # bound, not run: each type as DuckDB spells it
    return select, [{"name": c.name, "type": str(t)} for c, t in zip(columns, published, strict=True)]


def _write_table(cursor: Any, stage: Path, table: str, partition_by: Any) -> dict[str, Any]:
    columns = [str(c) for c in partition_by]
    source, _ = check_table(cursor, table, columns)
    select, schema = gated_select(cursor, table, source, "parquet")
    dest = stage / table
    options = EXPORT_FORMATS["parquet"]
    if columns:
        parts = ", ".join(_quoted(c) for c in columns)
        sql = f"COPY ({select}) TO '{dest}' ({options}, PARTITION_BY ({parts}), FILENAME_PATTERN 'part-{{i}}')"
    else:
        dest.mkdir()  # no parents: a partial folder removed by a cancel is not made again
        sql = f"COPY ({select}) TO '{dest / 'part-0.parquet'}' ({options})"
    rows = int(cursor.execute(sql).fetchone()[0])
    dest.mkdir(exist_ok=True)  # a partitioned COPY of no rows writes no folder
    files = sorted(
        str(Path(root, name).relative_to(stage))
        for root, _, names in os.walk(dest)
        for name in names
        if name.endswith(".parquet")
    )
    return {
        "table": table,
        "path": table,
        "rows": rows,
        "bytes": sum((stage / f).stat().st_size for f in files),
        "partition_by": columns,
        "schema": schema,
        "files": files,
    }
