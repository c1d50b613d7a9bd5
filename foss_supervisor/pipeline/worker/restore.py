"""The restore of a run snapshot, the worker's half of a rollback: make a pipeline's layer tables what the
snapshot holds, in ONE read-write transaction (any error or interrupt: every table as it was).

A snapshot records each table's CREATE TABLE text (``ddl``, DuckDB's ``duckdb_tables().sql``: columns,
types, DEFAULT, NOT NULL, CHECK, PRIMARY KEY, UNIQUE, FOREIGN KEY) and the tables it references. Per table:

- kept as it is (the same CREATE TABLE text now, and no FOREIGN KEY to or from it): emptied and refilled, so
  what the text does not hold (its indexes, comments) stays;
- otherwise dropped and created again from the snapshot's text, then filled: a rollback across a schema
  change gives back its keys and constraints, so ``INSERT ... ON CONFLICT (id)`` works after it and the next
  snapshot records the key. A table in a FOREIGN KEY is always created again: DuckDB refuses to delete a
  parent's rows in the transaction that deleted its children's (its documented FOREIGN KEY limitation);
- a table the snapshot lacks is dropped.

Drops run children first (by the FOREIGN KEYs now), creates parents first (by the snapshot's references). The
text is checked before it runs (:func:`checked_ddl`): one statement, a CREATE TABLE of that very table with a
column list and nothing after it, by DuckDB's own parser and tokenizer. Rows go in by column name with the
assignment casts of INSERT, so a column whose type text has quotes (ENUM labels, STRUCT fields named
``"a-b"``) needs no CAST text. A snapshot from before DDL was kept restores as then: a table of the same
columns refilled, another created from the files' columns CAST to the recorded types (no constraints).

Every snapshot file passes snapshotfiles.checked_files before the transaction begins.
"""

from __future__ import annotations

import contextlib
import graphlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.pipeline.errors import QueryRefusedError, SnapshotError
from foss_supervisor.pipeline.worker.ledger import record_rollback
from foss_supervisor.pipeline.worker.snapshotfiles import checked_files
from foss_supervisor.pipeline.worker.snapshots import foreign_keys, layer_tables, quoted_table, table_ddl
from foss_supervisor.pipeline.worker.snapshotstats import parquet_list, quoted

__all__ = ["checked_ddl", "restore_tables"]

_TYPE = re.compile(r"[A-Za-z0-9_(), .\"\[\]]{1,500}")  # a type text put into a CAST (a snapshot without DDL)


def _unquoted(token: str) -> str:
    return token[1:-1].replace('""', '"') if len(token) >= 2 and token[0] == token[-1] == '"' else token


def checked_ddl(table: str, ddl: str) -> str:
    """``ddl`` when it is exactly one CREATE TABLE of ``table`` (``schema.table``) with a column list and
    nothing after it (no ``AS SELECT``, no second statement, no comment, not TEMP, not OR REPLACE, not IF NOT
    EXISTS), as DuckDB's parser and tokenizer read it. Raises SnapshotError naming the table."""

    def refuse(why: str) -> SnapshotError:
        return SnapshotError(f"the snapshot's CREATE TABLE text of {table} is refused: {why}")

    try:
        statements = duckdb.extract_statements(ddl)
        offsets = duckdb.tokenize(ddl)
    except duckdb.Error as exc:
        raise refuse(f"it does not parse ({str(exc).splitlines()[0][:200]})") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.CREATE:
        raise refuse("it is not one CREATE statement")
    ends = [o for o, _ in offsets[1:]] + [len(ddl)]
    tokens = [(ddl[o:e].strip(), kind) for (o, kind), e in zip(offsets, ends, strict=True)]
    if any(kind == duckdb.token_type.comment for _, kind in tokens):
        raise refuse("it holds a comment")
    texts = [t for t, _ in tokens]
    schema, _, name = table.partition(".")
    head = [w.upper() for w in texts[:2]], [_unquoted(t) for t in texts[2:5:2]], texts[3:4], texts[5:6]
    if head != (["CREATE", "TABLE"], [schema, name], ["."], ["("]):
        raise refuse(f"it does not begin CREATE TABLE {quoted_table(table)}(")
    depth = 0
    for i, (text, kind) in enumerate(tokens[5:], start=5):
        if kind == duckdb.token_type.operator:
            depth += text.count("(") - text.count(")")
        if depth == 0:
            if any(t != ";" for t in texts[i + 1 :]):
                raise refuse("something follows its column list")
            return ddl
    raise refuse("its column list is not closed")


def _order(tables: set[str], parents: Mapping[str, set[str]]) -> list[str]:
    """``tables`` parents first (``parents[t]``: the tables ``t`` references); references outside ``tables``
    are left out. Raises SnapshotError for a cycle (DuckDB makes none: a manifest edited so)."""
    graph = {t: {p for p in parents.get(t, ()) if p in tables and p != t} for t in sorted(tables)}
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise SnapshotError(f"the snapshot's FOREIGN KEY references form a cycle: {exc.args[1]}") from None


def _insert_columns(cursor: Any, table: str) -> list[str]:
    """The columns of ``table`` a row is inserted into: all but its generated ones, in order."""
    schema, _, name = table.partition(".")
    rows = cursor.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ?"
        " AND table_name = ? AND NOT is_generated ORDER BY column_index",
        [schema, name],
    ).fetchall()
    return [str(r[0]) for r in rows]


def _legacy_cast(table: str, columns: list[dict[str, str]]) -> str:
    """The SELECT list of a snapshot without DDL: each column CAST to its recorded type text."""
    odd = next((c for c in columns if not _TYPE.fullmatch(c["type"])), None)
    if odd is not None:  # the type goes into a CAST: quotes (ENUM labels, odd STRUCT fields) are not let in
        raise QueryRefusedError(
            f"{table}.{odd['name'][:100]}: its snapshot's type {odd['type'][:200]!r} cannot be restored from a"
            " snapshot that kept no CREATE TABLE text (ENUM types and STRUCT fields with quoted names need it;"
            " roll back to a newer run)"
        )
    return ", ".join(f"CAST({quoted(c['name'])} AS {c['type']}) AS {quoted(c['name'])}" for c in columns)


def _describe(cursor: Any, source: str) -> list[dict[str, str]]:
    rows = cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608 (a checked name)
    return [{"name": str(r[0]), "type": str(r[1])} for r in rows]


def restore_tables(cursor: Any, message: Mapping[str, Any], *, snapshot_dir: Path) -> dict[str, Any]:
    """Make the base tables of ``message["schemas"]`` what ``message["tables"]`` (a snapshot manifest's tables:
    ``{schema.table: {files: [{file, rows, bytes, ...}], schema: [{name, type}], ddl, references}}``, files
    under ``snapshot_dir``) holds, in ONE transaction (see the module docstring). With ``message["run_id"]``
    (the rollback's run), ``target`` and ``ledger`` the same transaction records the rollback in
    ``<ledger>.rollbacks`` (ledger.record_rollback).

    Returns ``{"tables": [{table, rows}], "dropped": [table]}``. Raises SnapshotError (a file that is not
    what its manifest recorded, a refused CREATE TABLE text: naming run, table and file), QueryRefusedError
    (a table outside the schemas, a type a snapshot without DDL cannot CAST to), duckdb.Error; on any error or
    interrupt nothing changed.
    """
    root = snapshot_dir.resolve()
    tables: Mapping[str, Mapping[str, Any]] = message.get("tables") or {}
    schemas = [str(s) for s in message.get("schemas") or ()]
    sources: dict[str, str] = {}
    for table, entry in sorted(tables.items()):
        if table.split(".", 1)[0] not in schemas:
            raise QueryRefusedError(f"{table} is not a table of this pipeline's schemas")
        if entry.get("ddl") is not None:
            checked_ddl(table, str(entry["ddl"]))
        sources[table] = parquet_list(checked_files(cursor, table, entry, root=root).paths)
    restored: list[dict[str, Any]] = []
    cursor.execute("BEGIN TRANSACTION")
    try:
        now = layer_tables(cursor, schemas)
        live_fk = foreign_keys(cursor, schemas)
        in_fk = set(live_fk) | {p for ps in live_fk.values() for p in ps}
        recreate = {
            t
            for t, e in tables.items()
            if t not in now
            or (e.get("ddl") is not None and (t in in_fk or table_ddl(cursor, t) != e["ddl"]))
            or (e.get("ddl") is None and _describe(cursor, quoted_table(t)) != list(e["schema"]))
        }
        dropped = [t for t in now if t not in tables]
        for table in reversed(_order(set(now), live_fk)):  # children first
            if table in recreate or table not in tables:
                cursor.execute(f"DROP TABLE {quoted_table(table)}")
            else:
                cursor.execute(f"DELETE FROM {quoted_table(table)}")  # noqa: S608 (a checked name)
        parents = {t: {str(r) for r in e.get("references") or ()} for t, e in tables.items()}
        for table in _order(set(tables), parents):  # parents first
            entry, target = tables[table], quoted_table(table)
            if entry.get("ddl") is None:
                columns = [{"name": str(c["name"]), "type": str(c["type"])} for c in entry["schema"]]
                select = f"SELECT {_legacy_cast(table, columns)} FROM {sources[table]}"  # noqa: S608
                if table in recreate:
                    cursor.execute(f"CREATE TABLE {target} AS {select}")
                else:
                    cursor.execute(f"INSERT INTO {target} {select}")
            else:
                if table in recreate:
                    cursor.execute(str(entry["ddl"]))
                names = ", ".join(quoted(c) for c in _insert_columns(cursor, table))
                cursor.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {sources[table]}")  # noqa: S608
            rows = int(cursor.execute(f"SELECT count(*) FROM {target}").fetchone()[0])  # noqa: S608
            restored.append({"table": table, "rows": rows})
        record_rollback(cursor, message)  # the proof a killed daemon's next start reads (engine/recovery.py)
        cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        raise
    return {"tables": sorted(restored, key=lambda t: t["table"]), "dropped": dropped}
