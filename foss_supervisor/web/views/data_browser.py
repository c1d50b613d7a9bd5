"""``/data-browser``: the warehouse's layers and tables with row counts, and a read-only SQL box."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from foss_supervisor.errors import SupervisorError
from foss_supervisor.web.core import Core
from foss_supervisor.web.keys import CORE, QUERIES
from foss_supervisor.web.responder import respond
from foss_supervisor.web.views.table import sql_ident, sql_literal

__all__ = ["data_browser", "export", "export_table"]

EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
EXPORT_CHUNK_BYTES = 1 << 20
CATALOG_SQL = (  # every table and view, as the export command looks them up
    "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary UNION ALL "
    "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary"
)
EXACT_COUNT_TABLES = 300  # beyond, the tree shows DuckDB's estimates

# every pipeline's layers: bronze, silver, gold, or its own prefixed ones (trips_bronze, ...)
TABLES_SQL = (
    "SELECT schema_name, table_name, estimated_size, column_count FROM duckdb_tables() "
    "WHERE regexp_matches(schema_name, '^([a-z0-9_]*_)?(bronze|silver|gold)$') "
    "ORDER BY array_position(['bronze', 'silver', 'gold'], regexp_extract(schema_name, '(bronze|silver|gold)$')), "
    "schema_name, table_name"
)


async def data_browser(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE]
    tables: dict[str, list[dict[str, Any]]] = {}
    error = ""
    try:
        result = await core.call("query", {"sql": TABLES_SQL, "max_rows": 1000, "timeout_s": 5.0})
        for schema, table, rows, columns in result["rows"]:
            tables.setdefault(schema, []).append({"name": table, "rows": rows, "columns": columns, "exact": False})
        await _exact_counts(core, tables)
    except SupervisorError as exc:  # no pipelines configured, or the warehouse cannot answer
        error = str(exc)
    wanted = request.query.get("table", "")
    names = [f"{s}.{t['name']}" for s, ts in tables.items() for t in ts]
    first = (
        wanted
        if wanted in names
        else ("gold.daily_revenue" if "gold.daily_revenue" in names else (names[0] if names else ""))
    )
    default_sql = f"SELECT * FROM {first} LIMIT 100" if first else ""  # noqa: S608 (a listed table name)
    return await respond(request, "data_browser.html", {"tables": tables, "error": error, "default_sql": default_sql})


async def _exact_counts(core: Core, tables: dict[str, list[dict[str, Any]]]) -> None:
    """Replace DuckDB's estimated row counts (they keep counting deleted rows after a rebuild) by count(*)
    of each table, in one query; up to :data:`EXACT_COUNT_TABLES` tables, else the estimates stay (shown ≈)."""
    listed = [(schema, t) for schema, items in tables.items() for t in items]
    if not listed or len(listed) > EXACT_COUNT_TABLES:
        return
    counts = [
        f"SELECT {i} AS i, count(*) AS n FROM {sql_ident(schema)}.{sql_ident(t['name'])}"  # noqa: S608 (quoted names)
        for i, (schema, t) in enumerate(listed)
    ]
    sql = " UNION ALL ".join(counts)
    try:
        result = await core.call("query", {"sql": sql, "max_rows": len(listed), "timeout_s": 5.0})
    except SupervisorError:
        return  # the estimates stay, marked as such
    for i, n in result["rows"]:
        listed[int(i)][1].update(rows=int(n), exact=True)


async def export(request: web.Request) -> web.StreamResponse:
    """A read-only query's whole result (``?sql=``) as ``?format=csv|jsonl|parquet``, streamed, no row cap.

    The query is checked as the SQL box's are (one SELECT reading warehouse tables); DuckDB writes the
    result to a file (the ``export`` command), which is streamed and deleted, as for a table.
    """
    fmt = request.query.get("format", "csv")
    sql = request.query.get("sql", "")
    if fmt not in EXPORT_TYPES or not sql.strip():
        raise web.HTTPBadRequest(text=f"give sql= and format= one of {', '.join(sorted(EXPORT_TYPES))}\n")
    return await _exported(request, {"sql": sql, "format": fmt}, f"result.{fmt}")


async def export_table(request: web.Request) -> web.StreamResponse:
    """A whole table or view (``schema.table``) as csv, jsonl or parquet (``?format=``), no row cap.

    DuckDB writes it to a file in the state dir's exports folder (the ``export`` command), which is
    streamed in 1 MiB chunks and deleted afterwards, also when the client goes away.
    """
    table = request.match_info["table"]
    fmt = request.query.get("format", "parquet")
    if fmt not in EXPORT_TYPES:
        raise web.HTTPBadRequest(text=f"format must be one of {', '.join(sorted(EXPORT_TYPES))}\n")
    if not await _exists(request.app[CORE], table):
        raise web.HTTPNotFound(text=f"no table or view {table!r} (give it as schema.table)\n")
    return await _exported(request, {"table": table, "format": fmt}, f"{table}.{fmt}")


async def _exists(core: Core, table: str) -> bool:
    """Whether the warehouse has table or view ``table`` (schema.table, as the export command reads it)."""
    schema, dot, name = table.lower().partition(".")
    if not dot:
        return False
    where = f"WHERE schema_name = {sql_literal(schema)} AND table_name = {sql_literal(name)}"
    sql = f"SELECT count(*) FROM ({CATALOG_SQL}) {where}"  # noqa: S608 (literals quoted)
    try:
        result = await core.call("query", {"sql": sql, "max_rows": 1, "timeout_s": 5.0})
    except SupervisorError:  # no pipelines, or no warehouse yet
        return False
    return bool(result["rows"] and result["rows"][0][0])


async def _exported(request: web.Request, args: dict[str, str], filename: str) -> web.StreamResponse:
    """Run the ``export`` command with ``args`` and stream the file it wrote as ``filename``, then delete it
    (also when the client goes away). A refused or failed export is a 400 with the reason."""
    try:
        with request.app[QUERIES].slot(request):
            result = await request.app[CORE].call("export", args)
    except SupervisorError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    path = Path(result["path"])
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": EXPORT_TYPES[args["format"]],
                "Content-Length": str(result["bytes"]),
                "Content-Disposition": f'attachment; filename="{filename}"',
            }
        )
        await response.prepare(request)
        f = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(f.read, EXPORT_CHUNK_BYTES):
                await response.write(chunk)
        finally:
            f.close()
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
