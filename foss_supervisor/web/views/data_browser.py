"""``/data-browser``: the warehouse's layers and tables with row counts, and a read-only SQL box."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from foss_supervisor.commands import dispatch
from foss_supervisor.errors import SupervisorError
from foss_supervisor.web.keys import CTX
from foss_supervisor.web.responder import respond

__all__ = ["data_browser"]

TABLES_SQL = (
    "SELECT schema_name, table_name, estimated_size, column_count FROM duckdb_tables() "
    "WHERE schema_name IN ('bronze', 'silver', 'gold') "
    "ORDER BY array_position(['bronze', 'silver', 'gold'], schema_name), table_name"
)


async def data_browser(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    tables: dict[str, list[dict[str, Any]]] = {}
    error = ""
    if ctx.pipelines is None:
        error = "No pipelines are configured, so there is no warehouse to browse."
    else:
        try:
            result = await dispatch(ctx, "query", {"sql": TABLES_SQL, "max_rows": 1000, "timeout_s": 5.0})
            for schema, table, rows, columns in result["rows"]:
                tables.setdefault(schema, []).append({"name": table, "rows": rows, "columns": columns})
        except SupervisorError as exc:
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
