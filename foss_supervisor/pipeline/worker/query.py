"""The read-only query engine behind the data browser and ``foss-supervisor query``; runs in the worker.

Defence in depth, because the SQL comes from users:
1. ``duckdb.extract_statements``: exactly one statement, and it must be a SELECT (DESCRIBE, SHOW and
   SUMMARIZE parse as SELECT). INSERT/UPDATE/DELETE/CREATE, ATTACH, COPY, INSTALL/LOAD, SET, PRAGMA, CALL,
   EXPORT ... are refused with a message naming the statement type.
2. The parsed tree (``json_serialize_sql``) is walked: table functions must be on an allow-list (no
   read_csv, read_parquet, read_json, read_text, glob, query, ...), file-path "tables" such as
   ``FROM '/etc/passwd'`` and other catalogs are refused.
3. It runs in a ``BEGIN TRANSACTION READ ONLY`` on its own cursor, so a write that slipped through still
   fails, and it sees the last committed state while a step writes on another cursor.
4. The DuckDB instance itself is sandboxed by the worker: ``enable_external_access=false`` with only the
   pipelines' landing and reference folders allowed, and ``lock_configuration=true``.
Time is limited by ``cursor.interrupt()`` from a timer thread (DuckDB has no statement timeout; what it
cannot interrupt is the daemon's to end, see client.py). Rows are limited by fetching at most
``max_rows + 1`` from a streaming result, and bytes in DuckDB before any value reaches Python (see
resultsize.py), then exactly on each row's JSON: a reply is never larger than ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import duckdb

from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.pipeline.engine.limits import MAX_RESULT_BYTES, format_bytes, memory_limit_message
from foss_supervisor.pipeline.errors import QueryFailedError, QueryMemoryError, QueryRefusedError, QueryTimeoutError
from foss_supervisor.pipeline.worker.resultsize import bounded_sql

__all__ = ["ALLOWED_TABLE_FUNCTIONS", "DENIED_FUNCTIONS", "check_query", "run_query"]

#: table functions a browser query may call: generators and catalog introspection, nothing that reads files
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "duckdb_tables",
        "duckdb_columns",
        "duckdb_views",
        "duckdb_schemas",
        "duckdb_constraints",
        "duckdb_indexes",
        "duckdb_types",
        "duckdb_databases",
        "pragma_table_info",
        "pragma_show",
        "summary",
    }
)
#: scalar functions refused outright (environment, settings, or anything that reads files)
DENIED_FUNCTIONS = frozenset({"getenv", "current_setting", "read_text", "read_blob", "load_extension"})

_STATEMENT_HINTS = {
    "INSERT": "it writes",
    "UPDATE": "it writes",
    "DELETE": "it writes",
    "CREATE": "it writes",
    "DROP": "it writes",
    "ALTER": "it writes",
    "ATTACH": "it opens another database",
    "DETACH": "it changes attached databases",
    "COPY": "it reads or writes files",
    "EXPORT": "it writes files",
    "LOAD": "it installs or loads extensions",
    "SET": "it changes settings",
    "VARIABLE_SET": "it changes settings",
    "PRAGMA": "it runs pragmas",
    "CALL": "it calls procedures",
    "TRANSACTION": "the engine manages transactions",
    "EXPLAIN": "use the query itself",
}


def _statement_kind(stmt: Any) -> str:
    name = str(stmt.type)
    return name.split(".", 1)[1] if "." in name else name


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def check_query(cursor: Any, sql: str, *, database: str) -> str:
    """Return the single allowed statement's text, or raise QueryRefusedError / QueryFailedError."""
    if not sql or not sql.strip():
        raise QueryRefusedError("empty query")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryFailedError(f"syntax error: {exc}") from None
    if len(statements) != 1:
        raise QueryRefusedError(f"exactly one statement per query, got {len(statements)}")
    stmt = statements[0]
    kind = _statement_kind(stmt)
    if kind != "SELECT":
        why = _STATEMENT_HINTS.get(kind, "only SELECT is allowed")
        raise QueryRefusedError(f"{kind} statements are refused ({why}): the query engine is read-only, SELECT only")
    text: str = stmt.query
    raw = cursor.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0]
    tree = json.loads(raw)
    if tree.get("error"):
        raise QueryRefusedError(f"statement cannot be checked: {tree.get('error_message', 'unknown reason')}")
    for node in _walk(tree.get("statements", [])):
        ntype = node.get("type")
        if ntype == "TABLE_FUNCTION":
            fname = str(node.get("function", {}).get("function_name", "")).lower()
            if fname not in ALLOWED_TABLE_FUNCTIONS:
                raise QueryRefusedError(
                    f"table function {fname}() is not allowed: queries read warehouse tables only "
                    "(bronze.x, silver.x, gold.x), never files"
                )
        elif ntype == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            catalog = str(node.get("catalog_name", ""))
            if any(ch in name for ch in "/\\:~") or "." in name:
                raise QueryRefusedError(f"{name!r} looks like a file path: only tables can be queried")
            if catalog and catalog not in (database, "system"):
                raise QueryRefusedError(f"catalog {catalog!r} is not available: only {database!r} can be queried")
        elif node.get("class") == "FUNCTION":
            fname = str(node.get("function_name", "")).lower()
            if fname in DENIED_FUNCTIONS or fname.startswith("read_") or fname.endswith("_scan"):
                raise QueryRefusedError(f"function {fname}() is not allowed in queries")
    return text


FETCH_CHUNK_ROWS = 2048
#: the bound in DuckDB (estimated sizes) is this many times the exact one: the estimate can be 2-4x off either way
SQL_BUDGET_FACTOR = 2


def run_query(
    cursor: Any,
    sql: str,
    *,
    database: str,
    max_rows: int,
    timeout_s: float,
    max_bytes: int = MAX_RESULT_BYTES,
    memory_limit: int | None = None,
) -> dict[str, Any]:
    """Check and run one query on ``cursor`` (a fresh cursor of the worker's connection).

    Returns ``{columns, types, rows, row_count, truncated, truncated_reason, elapsed_s}`` whose JSON is at most
    ``max_bytes`` (column names and types included), rows at most ``max_rows``. Raises QueryRefusedError,
    QueryTimeoutError (interrupted at ``timeout_s``), QueryMemoryError (past ``memory_limit`` bytes, or the
    OS limit), QueryFailedError.
    """
    started = time.perf_counter()
    text = check_query(cursor, sql, database=database).strip().rstrip(";").rstrip()
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        cursor.interrupt()

    timer = threading.Timer(timeout_s, stop)
    timer.daemon = True
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    timer.start()
    try:
        rel = cursor.sql(text)  # binds only: the result's names and types, nothing runs yet
        columns, types = list(rel.columns), list(rel.types)
        header = len(json.dumps([columns, [str(t) for t in types]]))
        if header > max_bytes // 2:
            raise QueryFailedError(
                f"the result's {len(columns)} column names alone take {format_bytes(header)}: select fewer columns"
            )
        sql_budget = SQL_BUDGET_FACTOR * max_bytes
        cursor.execute(bounded_sql(text, types, sql_budget))
        rows, truncated, reason = _fetch_within(cursor, max_rows, max_bytes, header, sql_budget, fired)
    except duckdb.InterruptException:
        if fired.is_set():
            raise QueryTimeoutError(f"query interrupted after its time limit of {timeout_s:g} s") from None
        raise QueryFailedError("query was cancelled") from None
    except (duckdb.OutOfMemoryException, MemoryError):
        raise QueryMemoryError(memory_limit_message(memory_limit or 0)) from None
    except duckdb.Error as exc:
        if fired.is_set():
            raise QueryTimeoutError(f"query interrupted after its time limit of {timeout_s:g} s") from None
        message = str(exc)
        if "read-only mode" in message or "read-only transaction" in message:
            raise QueryRefusedError(f"the query tried to write: {message}") from None
        raise QueryFailedError(message) from None
    finally:
        timer.cancel()
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
    if fired.is_set():  # the last rows were converted past the limit: the limit still holds
        raise QueryTimeoutError(f"query interrupted after its time limit of {timeout_s:g} s")
    return {
        "columns": columns,
        "types": [str(t) for t in types],
        "rows": rows,
        "row_count": len(rows),
        "truncated": truncated,
        # a result is cut at max_bytes too: a whole table goes out through export, streamed
        "truncated_reason": reason,
        "elapsed_s": round(time.perf_counter() - started, 6),
    }


def _fetch_within(
    cursor: Any, max_rows: int, max_bytes: int, header: int, sql_budget: int, fired: threading.Event
) -> tuple[list[list[Any]], bool, str]:
    """Rows of a :func:`bounded_sql` result as JSON-ready lists: at most ``max_rows``, and at most ``max_bytes``
    of JSON together with the ``header`` bytes already spent on names and types.

    Returns (rows, truncated, why when cut by size). A row whose cells DuckDB nulled (its running total passed
    ``sql_budget``) is never kept; the JSON of the kept rows is counted exactly (a chunk at once, row by row
    only in the chunk that crosses the bound). Stops at once when ``fired``.
    """
    rows: list[list[Any]] = []
    size = header
    while len(rows) <= max_rows and not fired.is_set():
        chunk = cursor.fetchmany(min(FETCH_CHUNK_ROWS, max_rows + 1 - len(rows)))
        if not chunk:
            return rows, False, ""
        cut: tuple[bool, str] | None = None
        converted: list[list[Any]] = []
        for raw in chunk:
            *cells, row_bytes, total = raw
            if len(rows) + len(converted) == max_rows:
                cut = (True, "")
                break
            if total > sql_budget:
                cut = (True, _too_large(max_bytes, len(rows) + len(converted), row_bytes))
                break
            converted.append([jsonable(v, exact=True) for v in cells])
        if fired.is_set():
            break
        whole = len(json.dumps(converted, separators=(",", ":")))  # the rows of the chunk, brackets included
        if size + whole <= max_bytes:
            size += whole
            rows.extend(converted)
        else:
            for k, row in enumerate(converted):
                size += len(json.dumps(row, separators=(",", ":"))) + 1
                if size > max_bytes:
                    return rows, True, _too_large(max_bytes, len(rows), chunk[k][-2])
                rows.append(row)
        if cut is not None:
            return rows, cut[0], cut[1]
    return rows, True, ""


def _too_large(max_bytes: int, kept: int, row_bytes: int) -> str:
    alone = f"; row {kept + 1} alone is about {format_bytes(int(row_bytes))}" if row_bytes > max_bytes else ""
    return f"result larger than {format_bytes(max_bytes)}{alone} (export it to get it whole)"
