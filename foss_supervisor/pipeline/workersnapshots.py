"""Run snapshots, the worker's half: write every layer table of a pipeline into the snapshot's partial
folder in ONE read-only transaction, and restore a snapshot's tables in ONE read-write transaction.

The daemon's half (snapshots.py) makes a written snapshot whole (manifest, ``_SUCCESS``, rename), keeps
the newest ``snapshot_keep`` and refuses incomplete ones. Both functions run in the worker on a cursor of
its connection (an ``export`` request with ``task: snapshot | restore``; see worker.py).
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.pipeline.errors import QueryRefusedError
from foss_supervisor.pipeline.ledger import record_rollback
from foss_supervisor.pipeline.publish import RUNS
from foss_supervisor.pipeline.snapshots import snapshot_stage_name
from foss_supervisor.pipeline.snapshotstats import parquet_list
from foss_supervisor.pipeline.workersegments import copy_table, extend_previous, link_published

__all__ = ["layer_tables", "quoted_table", "restore_tables", "snapshot_tables", "table_key"]

_PIPELINE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: types a Parquet snapshot would not keep exactly (DuckDB 2.0: HUGEINT as DOUBLE, TIMETZ without offset)
_INEXACT = re.compile(r"\bU?HUGEINT\b|\bINT128\b|\bUINT128\b|\bTIME WITH TIME ZONE\b|\bTIMETZ\b")
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_TYPE = re.compile(r"[A-Za-z0-9_(), .\"\[\]]{1,500}")


def quoted_table(table: str) -> str:
    """``"schema"."table"`` for ``schema.table``."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split(".", 1))


def layer_tables(cursor: Any, schemas: list[str]) -> list[str]:
    """The base tables (``schema.table``, sorted) of ``schemas`` in the warehouse. Raises QueryRefusedError."""
    for schema in schemas:
        if not _SCHEMA.fullmatch(schema):
            raise QueryRefusedError(f"bad schema name {schema!r}")
    rows = cursor.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE NOT temporary"
        " AND database_name = current_database() AND list_contains(?, schema_name) ORDER BY 1",
        [schemas],
    ).fetchall()
    return [str(r[0]) for r in rows]


def table_key(cursor: Any, table: str, declared: Any) -> list[str] | None:
    """The columns that identify a row of ``table``: its PRIMARY KEY, else its first UNIQUE constraint, else
    ``declared`` (the key the pipeline gives it, e.g. a ``deduplicate`` step's ``key``), else None."""
    schema, _, name = table.partition(".")
    rows = cursor.execute(
        "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() WHERE schema_name = ?"
        " AND table_name = ? AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        " ORDER BY constraint_type = 'UNIQUE', constraint_index",
        [schema, name],
    ).fetchall()
    if rows:
        return [str(c) for c in rows[0][1]]
    return [str(c) for c in declared] if declared else None


def _describe(cursor: Any, source: str) -> list[dict[str, str]]:
    rows = cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608 (a checked name)
    return [{"name": str(r[0]), "type": str(r[1])} for r in rows]


def file_stem(table: str) -> str:
    """The name a table's snapshot files start with: ``schema.table`` with every character but letters, digits,
    ``_``, ``.`` and ``-`` percent-encoded, so a quoted name with ``/`` or a NUL is one plain file name."""
    return urllib.parse.quote(table, safe="._-")


def refuse_inexact(table: str, schema: list[dict[str, str]]) -> None:
    """Refuse (QueryRefusedError naming the table, column and type) a table with a column whose values a Parquet
    snapshot cannot keep exactly, alone or inside a nested type: DuckDB writes HUGEINT and UHUGEINT as DOUBLE
    and TIME WITH TIME ZONE without its offset, so a rollback would restore other values without an error.
    The run then ends succeeded_with_warnings (``snapshot failed: ...``) and keeps no snapshot."""
    for column in schema:
        found = _INEXACT.search(column["type"].upper())
        if found:
            raise QueryRefusedError(
                f"{table}.{column['name']} is {column['type']}: a Parquet snapshot cannot keep {found.group(0)} values"
                " exactly; make it DECIMAL(38,0), VARCHAR or TIMESTAMPTZ in the step that writes it, or set"
                " snapshot_keep: 0"
            )


def _previous(message: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``message["previous"]``: the previous snapshot's ``{schema.table: entry}`` (files absolute), or {}."""
    previous = message.get("previous")
    if not isinstance(previous, Mapping):
        return {}
    return {str(t): dict(e) for t, e in previous.items() if isinstance(e, Mapping)}


def _unique(cursor: Any, files: list[Path], key: list[str]) -> bool:
    """Whether no two rows of ``files`` have the same ``key`` (NULLs equal, as the diff matches keys)."""
    row = "row(" + ", ".join('"' + k.replace('"', '""') + '"' for k in key) + ")"
    query = f"SELECT count(*) = count(DISTINCT {row}) FROM {parquet_list(files)}"  # noqa: S608 (quoted names)
    return bool(cursor.execute(query).fetchone()[0])


def snapshot_tables(
    cursor: Any, message: Mapping[str, Any], *, snapshot_dir: Path, publish_dir: Path | None
) -> dict[str, Any]:
    """Write every base table of ``message["schemas"]`` into ``snapshot_dir/<pipeline>/.<run_id>.partial/``
    (workersegments.py): a table run ``run_id`` published unpartitioned is hard-linked from
    ``publish_dir/<pipeline>/runs/<run_id>/<table>/part-0.parquet`` (the same data: written after the
    run's last commit, and nothing of the pipeline's is written while its run holds the run lock); a table
    that only grew since ``message["previous"]`` (the previous snapshot's tables, files absolute) is that
    snapshot's files hard-linked plus ``<schema>.<table>@<run_id>.parquet`` with the new rows; any other is
    copied whole to ``<schema>.<table>.parquet``. Every data file has its statistics in ``_stats/``.

    ``message["keys"]`` maps ``schema.table`` to the key the pipeline declares. Returns ``{"tables":
    [{table, files: [{file, rows, bytes, linked}], rows, bytes (new bytes written), linked (no new bytes),
    schema: [{name, type}], key, unique_key}]}`` (``unique_key``: no two rows have the same key, NULLs
    equal). Raises QueryRefusedError, duckdb.Error, OSError (also when the
    partial folder was removed meanwhile: a cancelled run).
    """
    pipeline, run_id = str(message.get("pipeline", "")), str(message.get("run_id", ""))
    if not _PIPELINE.fullmatch(pipeline):
        raise QueryRefusedError(f"bad pipeline name {pipeline!r}")
    stage = snapshot_dir / pipeline / snapshot_stage_name(run_id)
    stage.parent.mkdir(parents=True, exist_ok=True)
    stage.mkdir()
    keys: Mapping[str, Any] = message.get("keys") or {}
    previous = _previous(message)
    published = publish_dir / pipeline / RUNS / run_id if publish_dir is not None else None
    out: list[dict[str, Any]] = []
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        for table in layer_tables(cursor, [str(s) for s in message.get("schemas") or ()]):
            source = quoted_table(table)
            schema = _describe(cursor, source)
            refuse_inexact(table, schema)
            dest = stage / f"{file_stem(table)}.parquet"
            files = (
                (link_published(cursor, published / table, dest) if published is not None else None)
                or extend_previous(
                    cursor,
                    table,
                    source,
                    schema,
                    previous.get(table),
                    stage=stage,
                    root=snapshot_dir.resolve(),
                    new_name=f"{file_stem(table)}@{run_id}.parquet",
                )
                or copy_table(cursor, source, dest)
            )
            new = [f for f in files if not f["linked"]]
            key = table_key(cursor, table, keys.get(table))
            out.append(
                {
                    "table": table,
                    "files": files,
                    "rows": sum(f["rows"] for f in files),
                    "bytes": sum(f["bytes"] for f in new),  # a link costs no new bytes
                    "linked": not new,
                    "schema": schema,
                    "key": key,
                    "unique_key": key is not None and _unique(cursor, [stage / f["file"] for f in files], key),
                }
            )
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
    return {"tables": out}


def restore_tables(cursor: Any, message: Mapping[str, Any], *, snapshot_dir: Path) -> dict[str, Any]:
    """Make the base tables of ``message["schemas"]`` what ``message["tables"]`` (a snapshot manifest's
    tables: ``{schema.table: {files: [{file}], schema: [{name, type}]}}``, files under ``snapshot_dir``) holds, in ONE
    transaction: a table of the same columns and types is emptied and refilled (its constraints stay); one
    whose columns changed is created again with the snapshot's columns; a table the snapshot lacks is dropped.

    With ``message["run_id"]`` (the rollback's run), ``target`` and ``ledger`` the same transaction records
    the rollback in ``<ledger>.rollbacks`` (ledger.record_rollback).
    Returns ``{"tables": [{table, rows}], "dropped": [table]}``. Raises QueryRefusedError (a file outside
    the snapshot folder, a bad name or type), duckdb.Error; on any error or interrupt nothing changed.
    """
    root = snapshot_dir.resolve()
    tables: Mapping[str, Mapping[str, Any]] = message.get("tables") or {}
    schemas = [str(s) for s in message.get("schemas") or ()]
    restored: list[dict[str, Any]] = []
    cursor.execute("BEGIN TRANSACTION")
    try:
        now = layer_tables(cursor, schemas)
        for table, entry in sorted(tables.items()):
            if table.split(".", 1)[0] not in schemas:
                raise QueryRefusedError(f"{table} is not a table of this pipeline's schemas")
            paths = [Path(str(f["file"])).resolve() for f in entry["files"]]
            if not paths or not all(p.is_relative_to(root) for p in paths):
                raise QueryRefusedError(f"a snapshot file of {table} is outside {root}")
            columns = [{"name": str(c["name"]), "type": str(c["type"])} for c in entry["schema"]]
            odd = next((c for c in columns if not _TYPE.fullmatch(c["type"])), None)
            if odd is not None:  # the type goes into a CAST: quotes (ENUM labels, odd STRUCT fields) are not let in
                raise QueryRefusedError(
                    f"{table}.{odd['name'][:100]}: its snapshot's type {odd['type'][:200]!r} cannot be restored"
                    " (ENUM types and STRUCT fields with quoted names are not; make the column VARCHAR or rename"
                    " the field)"
                )
            target = quoted_table(table)
            source = parquet_list(paths)  # the files in their order: the table's rows in its order
            cast = ", ".join(
                'CAST("{0}" AS {1}) AS "{0}"'.format(c["name"].replace('"', '""'), c["type"]) for c in columns
            )
            if table in now and _describe(cursor, target) == columns:
                cursor.execute(f"DELETE FROM {target}")  # noqa: S608 (checked names)
                cursor.execute(f"INSERT INTO {target} SELECT {cast} FROM {source}")  # noqa: S608
            else:
                cursor.execute(f"DROP TABLE IF EXISTS {target}")
                cursor.execute(f"CREATE TABLE {target} AS SELECT {cast} FROM {source}")  # noqa: S608
            rows = int(cursor.execute(f"SELECT count(*) FROM {target}").fetchone()[0])  # noqa: S608
            restored.append({"table": table, "rows": rows})
        dropped = [t for t in now if t not in tables]
        for table in dropped:
            cursor.execute(f"DROP TABLE {quoted_table(table)}")
        record_rollback(cursor, message)  # the proof a killed daemon's next start reads (recovery.py)
        cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        raise
    return {"tables": restored, "dropped": dropped}
