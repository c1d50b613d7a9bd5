"""``/data-browser``: the warehouse's layers and tables with row counts, and a read-only SQL box."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from foss_supervisor.errors import SupervisorError
from foss_supervisor.web.keys import CORE, QUERIES
from foss_supervisor.web.responder import respond

__all__ = ["data_browser", "export", "export_table"]

EXPORT_MAX_ROWS = 100_000
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
TABLE_EXPORT_TYPES = {**EXPORT_TYPES, "parquet": "application/vnd.apache.parquet"}
EXPORT_CHUNK_BYTES = 1 << 20

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
            tables.setdefault(schema, []).append({"name": table, "rows": rows, "columns": columns})
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


def _lines(fmt: str, columns: list[str], rows: list[list[Any]]) -> Iterator[str]:
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(dict(zip(columns, row, strict=True)), default=str) + "\n"
        return
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in [columns, *rows]:
        writer.writerow(row)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()


async def export(request: web.Request) -> web.StreamResponse:
    """A read-only query's result (``?sql=``, ``?format=csv|jsonl``) as a download.

    A result beyond 100,000 rows (or the query engine's 16 MiB) is refused with 413 and the way out,
    never cut short silently: a whole table has no cap at ``/api/v1/export/SCHEMA.TABLE``.
    """
    fmt = request.query.get("format", "csv")
    sql = request.query.get("sql", "")
    if fmt not in EXPORT_TYPES or not sql.strip():
        raise web.HTTPBadRequest(text="give sql= and format=csv or jsonl\n")
    try:
        with request.app[QUERIES].slot(request):
            result = await request.app[CORE].call("query", {"sql": sql, "max_rows": EXPORT_MAX_ROWS, "timeout_s": 30.0})
    except SupervisorError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    if result["truncated"]:
        why = result.get("truncated_reason") or f"more than {EXPORT_MAX_ROWS:,} rows"
        raise web.HTTPRequestEntityTooLarge(
            max_size=EXPORT_MAX_ROWS, actual_size=EXPORT_MAX_ROWS + 1,
            text=f"nothing exported: the result is too large to export as a query result ({why}). Export a whole "
            "table with /api/v1/export/SCHEMA.TABLE?format=csv|jsonl|parquet (no row cap), or narrow the query.\n",
        )  # fmt: skip
    response = web.StreamResponse(
        headers={"Content-Type": EXPORT_TYPES[fmt], "Content-Disposition": f'attachment; filename="result.{fmt}"'}
    )
    await response.prepare(request)
    chunk: list[str] = []
    for line in _lines(fmt, result["columns"], result["rows"]):
        chunk.append(line)
        if len(chunk) >= 1000:
            await response.write("".join(chunk).encode())
            chunk = []
    await response.write("".join(chunk).encode())
    await response.write_eof()
    return response


async def export_table(request: web.Request) -> web.StreamResponse:
    """A whole table or view (``schema.table``) as csv, jsonl or parquet (``?format=``), no row cap.

    DuckDB writes it to a file in the state dir's exports folder (the ``export`` command), which is
    streamed in 1 MiB chunks and deleted afterwards, also when the client goes away.
    """
    table = request.match_info["table"]
    fmt = request.query.get("format", "parquet")
    if fmt not in TABLE_EXPORT_TYPES:
        raise web.HTTPBadRequest(text=f"format must be one of {', '.join(sorted(TABLE_EXPORT_TYPES))}\n")
    try:
        with request.app[QUERIES].slot(request):
            result = await request.app[CORE].call("export", {"table": table, "format": fmt})
    except SupervisorError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    path = Path(result["path"])
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": TABLE_EXPORT_TYPES[fmt],
                "Content-Length": str(result["bytes"]),
                "Content-Disposition": f'attachment; filename="{table}.{fmt}"',
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
