"""``/data-browser/{table}``: one warehouse table as Datasette shows one: paginated, sortable, filterable.

Query parameters: ``_page`` (from 1), ``_size`` (rows per page, at most 500), ``_sort`` and ``_desc``
(a column), ``_search`` (text any text column contains), and ``COLUMN=value`` (equality). Identifiers
are only ever names read from the catalog; values are SQL string literals with quotes doubled; and the
``query`` command runs SELECT only, in its sandbox.
"""

from __future__ import annotations

import math
import re
from typing import Any

from aiohttp import web

from foss_supervisor.errors import SupervisorError
from foss_supervisor.web.keys import CORE, QUERIES
from foss_supervisor.web.responder import respond

__all__ = ["sql_ident", "sql_literal", "table_view"]

NAME = re.compile(r"^((?:[a-z0-9_]{0,60}_)?(?:bronze|silver|gold))\.([A-Za-z_][A-Za-z0-9_]{0,100})$")
NUMERIC = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL)"
)
TEXT = re.compile(r"^(VARCHAR|TEXT|STRING)")
RESERVED = {"_page", "_size", "_sort", "_desc", "_search", "format"}


def sql_literal(value: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


async def _query(request: web.Request, sql: str, max_rows: int) -> dict[str, Any]:
    try:
        with request.app[QUERIES].slot(request):
            result: dict[str, Any] = await request.app[CORE].call(
                "query", {"sql": sql, "max_rows": max_rows, "timeout_s": 10.0}
            )
    except SupervisorError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    return result


def _int(request: web.Request, key: str, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(request.query.get(key, default))))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{key} must be a whole number\n") from None


async def table_view(request: web.Request) -> web.StreamResponse:
    """A page of rows with the columns' types, the total matching, and links to sort and page."""
    match = NAME.match(request.match_info["table"])
    if match is None:
        raise web.HTTPNotFound(text="no such table\n")
    schema, name = match[1], match[2]  # a layer schema of some pipeline; the catalog has the final word
    columns_sql = (
        "SELECT column_name, data_type FROM duckdb_columns() "  # noqa: S608 (literals quoted, names matched)
        f"WHERE schema_name = {sql_literal(schema)} AND table_name = {sql_literal(name)} ORDER BY column_index"
    )
    try:
        cols = await request.app[CORE].call("query", {"sql": columns_sql, "max_rows": 2000, "timeout_s": 10.0})
    except SupervisorError:  # no pipelines configured, or no warehouse yet
        raise web.HTTPNotFound(text="no such table\n") from None
    if not cols["rows"]:
        raise web.HTTPNotFound(text="no such table\n")
    columns = [{"name": c, "type": t, "numeric": bool(NUMERIC.match(t))} for c, t in cols["rows"]]
    known = {c["name"] for c in columns}
    if unknown := sorted(k for k in request.query if k not in RESERVED and k not in known):
        raise web.HTTPBadRequest(text=f"no column {', '.join(map(repr, unknown))} in {schema}.{name} to filter on\n")
    where = [f"{sql_ident(k)} = {sql_literal(v)}" for k, v in request.query.items() if k not in RESERVED and k in known]
    search = request.query.get("_search", "").strip()
    if search:
        texts = [c["name"] for c in columns if TEXT.match(c["type"])]
        pattern = sql_literal("%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        where.append(
            "(" + " OR ".join(f"{sql_ident(t)} ILIKE {pattern} ESCAPE '\\'" for t in texts) + ")" if texts else "false"
        )
    sort = request.query.get("_sort", "")
    if request.query.get("_desc", "0") not in ("0", "1"):
        raise web.HTTPBadRequest(text="_desc must be 0 or 1\n")
    desc = request.query.get("_desc") == "1"
    size = _int(request, "_size", 50, 1, 500)
    page = _int(request, "_page", 1, 1, 10_000_000)
    source = f"{sql_ident(schema)}.{sql_ident(name)}" + (" WHERE " + " AND ".join(where) if where else "")
    order = f" ORDER BY {sql_ident(sort)} {'DESC' if desc else 'ASC'} NULLS LAST" if sort in known else ""
    total = (await _query(request, f"SELECT count(*) FROM {source}", 1))["rows"][0][0]  # noqa: S608
    page = min(page, max(1, math.ceil(total / size)))  # past the last page: the last page
    rows = await _query(request, f"SELECT * FROM {source}{order} LIMIT {size} OFFSET {(page - 1) * size}", size)  # noqa: S608
    filters = {k: v for k, v in request.query.items() if k not in RESERVED and k in known}
    url = request.rel_url.with_query({k: v for k, v in request.query.items() if k != "format"})
    for c in columns:  # a click sorts by the column, a second click reverses
        again = sort == c["name"] and not desc
        c["sort_url"] = str(url.update_query(_sort=c["name"], _desc="1" if again else "0", _page="1"))
    links = {
        "prev": str(url.update_query(_page=str(page - 1))) if page > 1 else "",
        "next": str(url.update_query(_page=str(page + 1))) if page * size < total else "",
    }
    data = {
        "table": f"{schema}.{name}",
        "columns": columns,
        "rows": rows["rows"],
        "total": total,
        "page": page,
        "pages": max(1, math.ceil(total / size)),
        "size": size,
        "sort": sort if sort in known else "",
        "desc": desc,
        "search": search,
        "filters": filters,
        "links": links,
    }
    return await respond(request, "table.html", data)
