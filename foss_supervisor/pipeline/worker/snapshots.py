"""Run snapshots, the worker's half: write every layer table of a pipeline into the snapshot's partial
folder in ONE read-only transaction, with each table's CREATE TABLE text and the tables its FOREIGN KEYs
reference (what a restore re-creates it from, restore.py).

The daemon's half (engine/snapshots.py) makes a written snapshot whole (manifest, ``_SUCCESS``, rename), keeps
the newest ``snapshot_keep`` and refuses incomplete ones. It runs in the worker on a cursor of its
connection (an ``export`` request with ``task: snapshot``; see server.py).
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.pipeline.engine.publish import RUNS
from foss_supervisor.pipeline.engine.snapshots import MAX_DDL_CHARS, snapshot_stage_name
from foss_supervisor.pipeline.errors import QueryRefusedError
from foss_supervisor.pipeline.worker.segments import copy_table, extend_previous, link_published
from foss_supervisor.pipeline.worker.snapshotstats import parquet_list

__all__ = [
    "foreign_keys",
    "layer_tables",
    "quoted_table",
    "refuse_inexact",
    "snapshot_tables",
    "table_ddl",
    "table_key",
]

_PIPELINE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: logical types a Parquet snapshot would not keep exactly (DuckDB 2.0: HUGEINT as DOUBLE, TIMETZ without offset)
_INEXACT = {"hugeint": "HUGEINT", "uhugeint": "UHUGEINT", "time with time zone": "TIME WITH TIME ZONE"}
#: the exact type to CAST each to (``sum()`` of a BIGINT gives a HUGEINT: DECIMAL(38,0) holds 38 digits)
_INEXACT_FIX = {
    "HUGEINT": "DECIMAL(38,0) (or VARCHAR for 39 digits)",
    "UHUGEINT": "DECIMAL(38,0) (or VARCHAR for 39 digits)",
    "TIME WITH TIME ZONE": "TIMESTAMPTZ or VARCHAR",
}
_NESTED = {"struct", "list", "map", "union", "array"}
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


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


def _logical_ids(type_: Any) -> Iterator[str]:
    """The logical type ids (``hugeint``, ``struct``...) of a DuckDB type and of every type nested in it,
    from DuckDB's own type object: a STRUCT field or UNION member named ``hugeint`` is a name, not a type."""
    yield str(type_.id)
    if str(type_.id) in _NESTED:
        for _, child in type_.children:
            if isinstance(child, duckdb.sqltypes.DuckDBPyType):
                yield from _logical_ids(child)


def refuse_inexact(table: str, cursor: Any, source: str) -> None:
    """Refuse (QueryRefusedError naming the table, column and type) a table (``source``, quoted) with a column
    whose values a Parquet snapshot cannot keep exactly, alone or inside a nested type: DuckDB writes HUGEINT
    and UHUGEINT as DOUBLE and TIME WITH TIME ZONE without its offset, so a rollback would restore other values
    without an error. The run then ends succeeded_with_warnings (``snapshot failed: ...``) and keeps no
    snapshot. The types are DuckDB's logical types of the columns, walked through every nesting."""
    relation = cursor.sql(f"SELECT * FROM {source}")  # noqa: S608 (a checked name; not executed)
    for name, type_ in zip(relation.columns, relation.types, strict=True):
        found = next((_INEXACT[i] for i in _logical_ids(type_) if i in _INEXACT), None)
        if found:
            fix = _INEXACT_FIX.get(found, "VARCHAR")
            raise QueryRefusedError(
                f"{table}.{name} is {type_}: a Parquet snapshot cannot keep {found} values exactly; CAST it AS"
                f" {fix} in the step that writes it, or set snapshot_keep: 0"
            )


def table_ddl(cursor: Any, table: str) -> str | None:
    """The CREATE TABLE text DuckDB keeps for ``table`` (``schema.table``): its columns, types, DEFAULTs, NOT
    NULL, CHECK, PRIMARY KEY, UNIQUE and FOREIGN KEY constraints; None when there is no such table."""
    schema, _, name = table.partition(".")
    row = cursor.execute(
        "SELECT sql FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ?"
        " AND table_name = ? AND NOT temporary",
        [schema, name],
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def foreign_keys(cursor: Any, schemas: list[str]) -> dict[str, set[str]]:
    """``{schema.table: {schema.table it references}}`` for every table of ``schemas`` with a FOREIGN KEY
    (DuckDB keeps a FOREIGN KEY within one schema); a table that references itself is left out of its set."""
    rows = cursor.execute(
        "SELECT schema_name, table_name, referenced_table FROM duckdb_constraints()"
        " WHERE constraint_type = 'FOREIGN KEY' AND database_name = current_database()"
        " AND list_contains(?, schema_name)",
        [schemas],
    ).fetchall()
    out: dict[str, set[str]] = {}
    for schema, name, referenced in rows:
        child, parent = f"{schema}.{name}", f"{schema}.{referenced}"
        out.setdefault(child, set())
        if parent != child:
            out[child].add(parent)
    return out


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
    (segments.py): a table run ``run_id`` published unpartitioned is hard-linked from
    ``publish_dir/<pipeline>/runs/<run_id>/<table>/part-0.parquet`` (the same data: written after the
    run's last commit, and nothing of the pipeline's is written while its run holds the run lock); a table
    that only grew since ``message["previous"]`` (the previous snapshot's tables, files absolute) is that
    snapshot's files hard-linked plus ``<schema>.<table>@<run_id>.parquet`` with the new rows; any other is
    copied whole to ``<schema>.<table>.parquet``. Every data file has its statistics in ``_stats/`` and, for
    a table with a key, its row hashes in ``_hashes/`` (snapshothashes.py).

    ``message["keys"]`` maps ``schema.table`` to the key the pipeline declares (a ``deduplicate`` step's, a
    step's ``keys``; recorded even when the table lacks a column of it, then never ``unique_key``). Returns
    ``{"tables": [{table, files: [{file, rows, bytes, linked, footer_sha256, stats_sha256, hashes?}], rows,
    bytes (new data bytes written), linked (no new bytes), schema: [{name, type}], key, unique_key, ddl,
    references}]}`` (``hashes``: the file's row hashes, snapshothashes.py; ``unique_key``: no two rows have
    the same key, NULLs equal; ``ddl``: the table's CREATE TABLE text; ``references``: the tables its
    FOREIGN KEYs reference). Raises QueryRefusedError, duckdb.Error, OSError (also when the partial folder
    was removed meanwhile: a cancelled run).
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
    schemas = [str(s) for s in message.get("schemas") or ()]
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        references = foreign_keys(cursor, schemas)
        for table in layer_tables(cursor, schemas):
            source = quoted_table(table)
            schema = _describe(cursor, source)
            refuse_inexact(table, cursor, source)
            ddl = table_ddl(cursor, table)
            if ddl is not None and len(ddl) > MAX_DDL_CHARS:
                raise QueryRefusedError(f"{table}: its CREATE TABLE text is over {MAX_DDL_CHARS} characters")
            dest = stage / f"{file_stem(table)}.parquet"
            key = table_key(cursor, table, keys.get(table))
            files = (
                (link_published(cursor, published / table, dest, key) if published is not None else None)
                or extend_previous(
                    cursor,
                    table,
                    source,
                    schema,
                    previous.get(table),
                    stage=stage,
                    root=snapshot_dir.resolve(),
                    new_name=f"{file_stem(table)}@{run_id}.parquet",
                    key=key,
                )
                or copy_table(cursor, source, dest, key)
            )
            new = [f for f in files if not f["linked"]]
            out.append(
                {
                    "table": table,
                    "files": files,
                    "rows": sum(f["rows"] for f in files),
                    "bytes": sum(f["bytes"] for f in new),  # a link costs no new bytes
                    "linked": not new,
                    "schema": schema,
                    "key": key,
                    "unique_key": key is not None
                    and set(key) <= {c["name"] for c in schema}  # a declared key may name a column it lacks
                    and _unique(cursor, [stage / f["file"] for f in files], key),
                    "ddl": ddl,
                    "references": sorted(references.get(table, ())),
                }
            )
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
    return {"tables": out}
