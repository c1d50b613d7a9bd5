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

__all__ = ["ROUTES", "Route"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. ``twin``: HTML with a JSON twin (``?format=json``); ``token``: "write" or "none"."""

    method: str
    path: str
    handler: Handler
    summary: str
    twin: bool = False
    token: str = "none"  # noqa: S105 (who may call it, not a secret)
    produces: str = "application/json"


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
        "A read-only query's result as CSV or JSON lines (?sql=, ?format=csv|jsonl)",
        produces="text/csv",
    ),
    Route(
        "GET",
        "/api/v1/export/{table}",
        data_browser.export_table,
        "A whole table or view (schema.table) as ?format=parquet|csv|jsonl, streamed, no row cap",
        produces="application/vnd.apache.parquet",
    ),
    Route(
        "GET",
        "/data-browser/{table}",
        table.table_view,
        "One table: paginated (_page, _size), sorted (_sort, _desc), filtered (_search, COLUMN=value)",
        twin=True,
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
    ),
    Route(
        "GET",
        "/metrics",
        api.prometheus,
        "Prometheus metrics: programs, daemon, pipeline runs and steps",
        produces="text/plain",
    ),
    Route("GET", "/login", session.login_form, "Log in: with ?token= at once, else a form", produces="text/html"),
    Route("POST", "/login", session.login, "Log in with the token (form field token)", produces="text/html"),
    Route(
        "POST", "/logout", session.logout, "Log out (form field csrf, or the X-CSRF-Token header)", produces="text/html"
    ),
    Route("GET", "/favicon.ico", api.favicon, "The icon", produces="image/svg+xml"),
)
