"""The one route table: every endpoint with what the OpenAPI description says about it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from foss_supervisor.config.model import DASHBOARD_PARTS
from foss_supervisor.web.access import HEALTH, OPEN, TOKEN_ONLY
from foss_supervisor.web.responder import FORMATS
from foss_supervisor.web.views import (
    alerts,
    api,
    charts,
    config,
    data_browser,
    graph,
    health,
    logs,
    overview,
    pipelines,
    reference,
    session,
    table,
)

__all__ = ["ROUTES", "TABLE_NAME", "Answer", "Param", "Route"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,100}\.[A-Za-z_][A-Za-z0-9_]{0,100}$"  # schema.table


@dataclass(frozen=True, slots=True)
class Answer:
    """A documented answer besides 200: a 3xx (with ``Location``) or a 4xx/5xx with its content type."""

    status: int
    why: str
    content_type: str = "text/plain"


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
    pattern: str = ""
    example: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. ``part``: what it belongs to for access (a name of ``DASHBOARD_PARTS``, which
    ``dashboard.public`` may open, or ``access.OPEN`` / ``access.TOKEN_ONLY``); ``twin``: HTML with a JSON
    twin (``?format=json``); ``params`` its query parameters or form fields; ``errors`` the 4xx/5xx answers
    it gives besides the guard's (401 without a token, 403 Host/Origin/CSRF); ``also`` further content
    types it answers with."""

    method: str
    path: str
    handler: Handler
    summary: str
    part: str
    twin: bool = False
    produces: str = "application/json"
    params: tuple[Param, ...] = ()
    errors: tuple[Answer, ...] = ()
    also: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.part not in (*DASHBOARD_PARTS, OPEN, TOKEN_ONLY):
            raise ValueError(f"{self.method} {self.path}: unknown part {self.part!r}")


_BUSY = Answer(429, "the client already runs 2 warehouse requests")
_TABLE = Param("table", "schema.table", in_="path", pattern=TABLE_NAME, example="gold.daily_revenue")
_RUN_ID = Param("run_id", "a run's id", in_="path", pattern=r"^[A-Za-z0-9_-]{1,100}$")


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/",
        overview.overview,
        "Overview: key figures, pipelines, programs and their controls",
        "overview",
        twin=True,
    ),
    Route(
        "GET",
        "/pipeline-management",
        pipelines.pipeline_management,
        "Pipelines with their runs",
        "pipelines",
        twin=True,
    ),
    Route(
        "GET",
        "/runs/{run_id}",
        pipelines.run_page,
        "One pipeline run: steps on a timeline, rows, errors",
        "pipelines",
        twin=True,
        params=(_RUN_ID,),
        errors=(Answer(404, "no such run"),),
    ),
    Route(
        "GET",
        "/reports/{name}/{file}",
        pipelines.report,
        "A run report written by the pipeline: latest.html, latest.json, RUN_ID.html or RUN_ID.json",
        "pipelines",
        produces="text/html",
        also=("application/json",),
        params=(
            Param("name", "a pipeline", in_="path", example="orders"),
            Param(
                "file",
                "latest or a run id, then .html or .json",
                in_="path",
                pattern=r"^(latest|[A-Za-z0-9_-]{1,100})\.(html|json)$",
                example="latest.json",
            ),
        ),
        errors=(Answer(404, "no such pipeline, run or report"),),
    ),
    Route(
        "GET",
        "/data-browser",
        data_browser.data_browser,
        "Warehouse tables and a read-only SQL box",
        "data",
        twin=True,
        params=(Param("table", "a table (schema.table) the SQL box starts on"),),
    ),
    Route(
        "GET",
        "/data-browser/export",
        data_browser.export,
        "A read-only query's whole result as CSV, JSON lines or Parquet (?sql=, ?format=), streamed, no row cap",
        "data",
        produces="text/csv",
        also=("application/x-ndjson", "application/vnd.apache.parquet"),
        params=(
            Param("sql", "a read-only query", required=True),
            Param("format", "file type (default csv)", enum=("csv", "jsonl", "parquet")),
        ),
        errors=(Answer(400, "no sql, another format, or the query was refused or failed"), _BUSY),
    ),
    Route(
        "GET",
        "/api/v1/export/{table}",
        data_browser.export_table,
        "A whole table or view (schema.table) as ?format=parquet|csv|jsonl, streamed, no row cap",
        "data",
        produces="application/vnd.apache.parquet",
        also=("text/csv", "application/x-ndjson"),
        params=(_TABLE, Param("format", "file type (default parquet)", enum=("parquet", "csv", "jsonl"))),
        errors=(Answer(400, "another format, or the export failed"), Answer(404, "no such table or view"), _BUSY),
    ),
    Route(
        "GET",
        "/data-browser/{table}",
        table.table_view,
        "One table: paginated (_page, _size), sorted (_sort, _desc), filtered (_search, COLUMN=value)",
        "data",
        twin=True,
        params=(
            _TABLE,
            Param("_page", "page, from 1 (past the last: the last)", type="integer"),
            Param("_size", "rows per page (1-500, default 50; beyond: the nearest)", type="integer"),
            Param("_sort", "a column to sort by (another name: no order)"),
            Param("_desc", "1: descending", enum=("0", "1")),
            Param("_search", "rows where any text column contains this text"),
            Param("filters", "COLUMN=value pairs: rows where the column equals the value", in_="filters"),
        ),
        errors=(
            Answer(400, "a filter on no column, or a value the column's type refuses"),
            Answer(404, "no such table"),
            _BUSY,
        ),
    ),
    Route(
        "GET",
        "/logs",
        logs.log_index,
        "Every log the viewer can follow; q searches them all",
        "logs",
        twin=True,
        params=(Param("q", "only the last lines of each log holding this text (case-insensitive)", example="error"),),
        errors=(Answer(400, "q longer than 256 characters"),),
    ),
    Route(
        "GET",
        "/logs/{source}",
        logs.log_page,
        "Live log viewer of a program, the daemon or the pipeline worker",
        "logs",
        twin=True,
        also=("text/plain",),
        params=(
            Param("source", "a program, daemon or pipeline", in_="path", example="daemon"),
            Param("format", "json: the JSON twin; text: the whole file", enum=(*FORMATS, "text")),
        ),
        errors=(Answer(404, "no such log"),),
    ),
    Route(
        "GET",
        "/config",
        config.config_page,
        "The effective config (secrets redacted) and a checked editor",
        "config",
        twin=True,
    ),
    Route(
        "GET",
        "/health",
        health.health,
        "200 healthy, 503 not (JSON; HTML for a browser)",
        HEALTH,
        twin=True,
        errors=(Answer(503, "unhealthy (same body)", "application/json"),),
    ),
    Route(
        "GET",
        "/api/v1/health",
        health.health_json,
        "The health report, always JSON: 200 healthy, 503 not",
        HEALTH,
        errors=(Answer(503, "unhealthy (same body)", "application/json"),),
    ),
    Route(
        "GET",
        "/graph",
        graph.graph_page,
        "Programs, pipelines, steps, landing folders and tables as one graph, with live states",
        "overview",
        twin=True,
        params=(Param("pipeline", "only this pipeline and its neighbours", pattern=graph.PIPELINE_PATTERN),),
        errors=(Answer(400, "no pipeline name"), Answer(404, "no such pipeline")),
    ),
    Route(
        "GET",
        "/api/v1/graph",
        graph.graph_api,
        "Programs, pipelines, steps, landing folders and tables as one graph: JSON, Graphviz DOT or Mermaid",
        "overview",
        also=("text/vnd.graphviz", "text/plain"),
        params=(
            Param("format", "json (default): nodes and edges; dot or mermaid: the text", enum=graph.GRAPH_FORMATS),
            Param(
                "pipeline",
                "only this pipeline and what is one edge away from it",
                pattern=graph.PIPELINE_PATTERN,
                example="orders",
            ),
        ),
        errors=(Answer(400, "another format, or no pipeline name"), Answer(404, "no such pipeline")),
    ),
    Route(
        "GET",
        "/api/v1/charts",
        charts.charts_api,
        "The overview's charts over 1 h (sampled by the dashboard) or 24 h and 7 d (from the journal): 300 points",
        "overview",
        params=(
            Param("range", "1h (default), 24h or 7d", enum=charts.CHART_RANGES, example="7d"),
            Param("program", "only this program (with min and max per bucket)", pattern=charts.PROGRAM_PATTERN),
        ),
        errors=(Answer(400, "another range, or no program name"),),
    ),
    Route(
        "GET",
        "/alerts",
        alerts.alerts_page,
        "Objectives with their states, open and resolved alert incidents, silences",
        "overview",
        twin=True,
        errors=(Answer(404, "objectives are not watched"),),
    ),
    Route("GET", "/chat", reference.api_reference, "API reference and console", "reference", twin=True),
    Route("GET", "/api/v1/openapi.json", reference.openapi_json, "This OpenAPI 3.1 description", "reference"),
    Route("GET", "/api/status", api.api_status, "The daemon and every program (command status)", "overview"),
    Route(
        "POST",
        "/api/commands/{name}",
        api.api_command,
        "Run one command (see the per-command paths)",
        TOKEN_ONLY,
        params=(Param("name", "a command", in_="path", example="status"),),
        errors=(
            Answer(400, "unknown argument, wrong type or invalid JSON", "application/json"),
            Answer(403, "the command changes state and this is no owner's request", "application/json"),
            Answer(404, "no such command", "application/json"),
            Answer(408, "the request body did not arrive in time"),
            Answer(409, "the command was refused", "application/json"),
        ),
    ),
    Route(
        "GET",
        "/api/events",
        api.events,
        "Server-sent events: every state change, resumable by Last-Event-ID",
        "events",
        produces="text/event-stream",
        params=(Param("since", "an event id (a page's meta events-since): first send what came after it"),),
        errors=(Answer(503, "too many open event streams (Retry-After)"),),
    ),
    Route(
        "GET",
        "/metrics",
        api.prometheus,
        "Prometheus metrics: programs, daemon, pipeline runs and steps",
        "metrics",
        produces="text/plain",
    ),
    Route(
        "GET",
        "/login",
        session.login_form,
        "Log in: with ?token= at once (a 303 to next), else a form",
        OPEN,
        twin=True,
        params=(
            Param("token", "the owner's or the viewer's token: logs in at once (a 303 to next)"),
            Param("next", "a path on this site to go to after logging in (anything else: /)"),
        ),
        errors=(Answer(303, "logged in: the cookie is set"), Answer(403, "not a token")),
    ),
    Route(
        "POST",
        "/login",
        session.login,
        "Log in with a token (form field token)",
        OPEN,
        produces="text/html",
        params=(
            Param("token", "the owner's or the viewer's token", required=True, in_="form"),
            Param("next", "a path on this site to go to after logging in (anything else: /)", in_="form"),
        ),
        errors=(
            Answer(303, "logged in: the cookie is set"),
            Answer(403, "not a token: the form again", "text/html"),
            Answer(408, "the request body did not arrive in time"),
            Answer(415, "a body that is no URL-encoded form"),
        ),
    ),
    Route(
        "POST",
        "/logout",
        session.logout,
        "Log out (form field csrf, or the X-CSRF-Token header)",
        TOKEN_ONLY,
        produces="text/html",
        params=(Param("csrf", "the page's CSRF token", in_="form"),),
        errors=(
            Answer(303, "logged out: the cookie is dropped"),
            Answer(403, "missing or wrong CSRF token"),
            Answer(408, "the request body did not arrive in time"),
            Answer(415, "a body that is no URL-encoded form"),
        ),
    ),
    Route("GET", "/favicon.ico", api.favicon, "The icon", OPEN, produces="image/svg+xml"),
)
