"""The one route table: every endpoint with what the OpenAPI description says about it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from foss_supervisor.web.views import (
    api,
    config,
    data_browser,
    health,
    logs,
    overview,
    pipelines,
    reference,
    session,
    table,
)

__all__ = ["ROUTES", "Param", "Route"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter (``in_`` "query"), a form field of a POST ("form") or free ``COLUMN=value`` pairs
    ("filters"), as the OpenAPI description shows it."""

    name: str
    description: str
    type: str = "string"  # or "integer"
    enum: tuple[str, ...] = ()
    required: bool = False
    in_: str = "query"


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. ``twin``: HTML with a JSON twin (``?format=json``); ``token``: "write" or "none";
    ``params`` its query parameters or form fields; ``errors`` the 4xx/5xx answers it gives besides the
    guard's (403 Host/Origin/CSRF); ``also`` further content types it answers with."""

    method: str
    path: str
    handler: Handler
    summary: str
    twin: bool = False
    token: str = "none"  # noqa: S105 (who may call it, not a secret)
    produces: str = "application/json"
    params: tuple[Param, ...] = ()
    errors: tuple[tuple[int, str], ...] = ()
    also: tuple[str, ...] = ()


_BUSY = (429, "the client already runs 2 warehouse requests (Retry-After)")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", overview.overview, "Overview: key figures, pipelines, programs and their controls", twin=True),
    Route("GET", "/pipeline-management", pipelines.pipeline_management, "Pipelines with their runs", twin=True),
    Route(
        "GET", "/runs/{run_id}", pipelines.run_page, "One pipeline run: steps on a timeline, rows, errors", twin=True
    ),
    Route(
        "GET",
        "/reports/{name}/{file}",
        pipelines.report,
        "A run report written by the pipeline: latest.html, latest.json, RUN_ID.html or RUN_ID.json",
        produces="text/html",
    ),
    Route("GET", "/data-browser", data_browser.data_browser, "Warehouse tables and a read-only SQL box", twin=True),
    Route(
        "GET",
        "/data-browser/export",
        data_browser.export,
        "A read-only query's whole result as CSV, JSON lines or Parquet (?sql=, ?format=), streamed, no row cap",
        produces="text/csv",
        also=("application/x-ndjson", "application/vnd.apache.parquet"),
        params=(
            Param("sql", "a read-only query", required=True),
            Param("format", "file type (default csv)", enum=("csv", "jsonl", "parquet")),
        ),
        errors=((400, "no sql, another format, or the query was refused or failed"), _BUSY),
    ),
    Route(
        "GET",
        "/api/v1/export/{table}",
        data_browser.export_table,
        "A whole table or view (schema.table) as ?format=parquet|csv|jsonl, streamed, no row cap",
        produces="application/vnd.apache.parquet",
        also=("text/csv", "application/x-ndjson"),
        params=(Param("format", "file type (default parquet)", enum=("parquet", "csv", "jsonl")),),
        errors=((400, "no such table, or another format"), _BUSY),
    ),
    Route(
        "GET",
        "/data-browser/{table}",
        table.table_view,
        "One table: paginated (_page, _size), sorted (_sort, _desc), filtered (_search, COLUMN=value)",
        twin=True,
        params=(
            Param("_page", "page, from 1", type="integer"),
            Param("_size", "rows per page (1-500, default 50)", type="integer"),
            Param("_sort", "a column to sort by"),
            Param("_desc", "1: descending", enum=("0", "1")),
            Param("_search", "rows where any text column contains this text"),
            Param("filters", "COLUMN=value pairs: rows where the column equals the value", in_="filters"),
        ),
        errors=((400, "an unknown column, or a value the column's type refuses"), (404, "no such table"), _BUSY),
    ),
    Route("GET", "/logs", logs.log_index, "Every log the viewer can follow", twin=True),
    Route(
        "GET",
        "/logs/{source}",
        logs.log_page,
        "Live log viewer of a program, the daemon or the pipeline worker",
        twin=True,
    ),
    Route(
        "GET", "/config", config.config_page, "The effective config (secrets redacted) and a checked editor", twin=True
    ),
    Route("GET", "/health", health.health, "200 healthy, 503 not (JSON; HTML for a browser)", twin=True),
    Route("GET", "/api/v1/health", health.health_json, "The health report, always JSON: 200 healthy, 503 not"),
    Route("GET", "/chat", reference.api_reference, "API reference and console", twin=True),
    Route("GET", "/api/v1/openapi.json", reference.openapi_json, "This OpenAPI 3.1 description"),
    Route("GET", "/api/status", api.api_status, "The daemon and every program (command status)"),
    Route("POST", "/api/commands/{name}", api.api_command, "Run one command (see the per-command paths)"),
    Route(
        "GET",
        "/api/events",
        api.events,
        "Server-sent events: every state change, resumable by Last-Event-ID",
        produces="text/event-stream",
        params=(Param("since", "an event id (a page's meta events-since): first send what came after it"),),
    ),
    Route(
        "GET",
        "/metrics",
        api.prometheus,
        "Prometheus metrics: programs, daemon, pipeline runs and steps",
        produces="text/plain",
    ),
    Route(
        "GET",
        "/login",
        session.login_form,
        "Log in: with ?token= at once, else a form",
        produces="text/html",
        params=(
            Param("token", "the API token: logs in at once (a 303 to next)"),
            Param("next", "a local path to go to after logging in"),
        ),
    ),
    Route(
        "POST",
        "/login",
        session.login,
        "Log in with the token (form field token)",
        produces="text/html",
        params=(
            Param("token", "the API token", required=True, in_="form"),
            Param("next", "a local path to go to after logging in", in_="form"),
        ),
        errors=((403, "not the token"),),
    ),
    Route(
        "POST", "/logout", session.logout, "Log out (form field csrf, or the X-CSRF-Token header)", produces="text/html"
    ),
    Route("GET", "/favicon.ico", api.favicon, "The icon", produces="image/svg+xml"),
)
