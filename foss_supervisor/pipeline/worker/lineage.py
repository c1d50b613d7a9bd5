"""Worker side of the graph's lineage: which tables each statement of a pipeline's SQL reads and writes.

Why here and with this reader: the daemon must not import DuckDB (its memory budget), and the worker already
reads every statement of a step before it runs it, with DuckDB's own tokenizer and statement splitter
(:func:`~foss_supervisor.pipeline.worker.sandbox.scan_statement`), to refuse what a pipeline may not touch. The graph
asks the same reader, so a lineage edge is exactly what the sandbox enforces: qualified ``schema.table``
names (lower case) read or written; names without a schema are temporary tables, CTEs and scratch space, and
a write into a temporary table is not a write. Column-level lineage is read by sqlglot
(:mod:`foss_supervisor.pipeline.worker.columns`: DuckDB serializes only SELECT statements to JSON, and most steps are
INSERT ... SELECT or CREATE ... AS).

Request (protocol.py): ``{"op": "lineage", "scripts": {KEY: SQL, ...}}``; reply ``{"scripts": {KEY: {"statements":
[{"reads": [...], "writes": [...], "object": "table" | "view" | "macro" | ... | ""}, ...], "error": "",
"columns": {"writes", "reads", "unknown"}}}}``. ``object`` is what a CREATE makes ("" for other statements); a
script DuckDB cannot split has its ``error``; ``columns`` is
:func:`~foss_supervisor.pipeline.worker.columns.column_lineage`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import duckdb

from foss_supervisor.pipeline.worker.sandbox import scan_statement

__all__ = ["MAX_SCRIPTS", "MAX_SCRIPT_CHARS", "describer", "scan_scripts"]

MAX_SCRIPTS = 10_000  # scripts in one request (steps plus setups of every pipeline)
MAX_SCRIPT_CHARS = 4 * 2**20  # characters of one script (a pipeline file's SQL is far smaller)
#: what a CREATE makes, by the keyword that names it
_OBJECTS = {"TABLE": "table", "VIEW": "view", "MACRO": "macro", "FUNCTION": "macro", "SEQUENCE": "sequence"}
_OBJECTS |= {"SCHEMA": "schema", "INDEX": "index", "TYPE": "type", "SECRET": "secret"}


def _created(sql: str) -> str:
    """What a CREATE statement makes (``table``, ``view``, ``macro``...), "" for any other statement."""
    tokens = duckdb.tokenize(sql)
    words = []
    for i, (pos, kind) in enumerate(tokens):
        if str(kind).rsplit(".", 1)[-1] == "keyword":
            end = tokens[i + 1][0] if i + 1 < len(tokens) else len(sql)
            words.append(sql[pos:end].strip().upper())
            if len(words) >= 6:
                break
    if not words or words[0] != "CREATE":
        return ""
    return next((_OBJECTS[w] for w in words[1:] if w in _OBJECTS), "")


def describer(cursor: duckdb.DuckDBPyConnection) -> Callable[[str], list[tuple[str, str]] | None]:
    """``DESCRIBE`` of one query on ``cursor`` (the warehouse as it is now), inside a transaction that is rolled
    back: its columns as (lower-case name, DuckDB type), or None when DuckDB cannot bind it (a table not made
    yet) or the text is not one statement. Binding reads no row."""

    def describe(sql: str) -> list[tuple[str, str]] | None:
        text = f"DESCRIBE {sql}"
        try:
            if len(duckdb.extract_statements(text)) != 1:
                return None
            cursor.begin()
            try:
                rows = cursor.execute(text).fetchall()
            finally:
                cursor.rollback()
        except duckdb.Error:
            return None
        return [(str(r[0]).lower(), str(r[1])) for r in rows]

    return describe


def scan_scripts(scripts: Any, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
    """Each script's statements with the tables they read and write (see the module's docstring); with ``con``
    (the worker's warehouse), the types of the tables a ``CREATE ... AS`` makes, as DuckDB binds them
    (:func:`describer`, on a cursor of its own).

    Raises ValueError for a request that is not a mapping of at most :data:`MAX_SCRIPTS` text scripts of at
    most :data:`MAX_SCRIPT_CHARS` characters each (the worker answers it as a bad request).
    """
    if not isinstance(scripts, Mapping) or len(scripts) > MAX_SCRIPTS:
        raise ValueError(f"scripts must be a mapping of at most {MAX_SCRIPTS} names to SQL texts")
    out: dict[str, Any] = {}
    for key, sql in scripts.items():
        if not isinstance(key, str) or not isinstance(sql, str) or len(sql) > MAX_SCRIPT_CHARS:
            raise ValueError(f"each script is a text of at most {MAX_SCRIPT_CHARS} characters under a text name")
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            out[key] = {"statements": [], "error": str(exc).splitlines()[0][:500]}
            continue
        found = []
        for statement in statements:
            refs = scan_statement(statement.query)
            found.append(
                {
                    "reads": sorted(set(refs.reads)),
                    "writes": sorted(set(refs.writes)),
                    "object": _created(statement.query),
                }
            )
        out[key] = {"statements": found, "error": ""}
    from foss_supervisor.pipeline.worker.columns import column_lineage  # sqlglot (+8 MiB): loaded by the first request

    readable = {k: v for k, v in scripts.items() if not out[k]["error"]}
    if con is None:
        columns = column_lineage(readable)
    else:
        with con.cursor() as cursor:
            columns = column_lineage(readable, describer(cursor))
    for key, found_columns in columns.items():
        out[key]["columns"] = found_columns
    return {"scripts": out}
