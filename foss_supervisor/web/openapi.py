"""The OpenAPI 3.1 description of the dashboard's HTTP API, built from the route table and the command
registry (so it cannot drift from them), with the server-sent event types as schemas."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

from aiohttp import web

from foss_supervisor import __version__
from foss_supervisor.commands import COMMANDS
from foss_supervisor.commands.registry import Limit
from foss_supervisor.core.events import EVENTS
from foss_supervisor.web.access import HEALTH, OPEN, TOKEN_ONLY
from foss_supervisor.web.keys import PUBLIC, ROUTE_TABLE
from foss_supervisor.web.responder import FORMATS
from foss_supervisor.web.sse import EVENT_TYPES

if typing.TYPE_CHECKING:
    from foss_supervisor.web.routes import Param, Route

__all__ = ["build_openapi"]

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}
_EXAMPLES: dict[str, dict[str, Any]] = {
    "start": {"names": ["web"]},
    "stop": {"names": ["web"]},
    "restart": {"names": ["web"]},
    "logs": {"name": "web", "lines": 20},
    "log_read": {"source": "daemon", "offset": -1},
    "query": {"sql": "SELECT day, revenue_usd FROM gold.daily_revenue ORDER BY day DESC LIMIT 5"},
    "pipeline_run": {"name": "orders"},
    "pipeline_runs": {"name": "orders", "limit": 5},
    "pipeline_retry": {"run_id": "20260101T120000Z-a1b2c3", "step": "enrich"},
    "reload": {"dry_run": True},
    "config_write": {"text": "programs:\n  web: {command: [python3, -m, http.server, '8080']}\n", "dry_run": True},
    "config_diff": {"generation": 1},
    "config_restore": {"generation": 1, "dry_run": True},
}


def _param_schema(ptype: type, limit: Limit) -> dict[str, Any]:
    """A command parameter's schema: its type and the bounds the registry's gate holds it to (those a request
    can break within the 1 MiB body limit: a longer one is refused whole, 413, before any gate)."""
    schema: dict[str, Any] = {"type": _JSON_TYPES.get(ptype, "string")}
    if ptype in (int, float):
        schema.update({k: v for k, v in (("minimum", limit.low), ("maximum", limit.high)) if v is not None})
    elif ptype is str and limit.size is not None and limit.size <= _BODY_BOUND:
        schema["maxLength"] = limit.size
    elif ptype is list:
        schema["items"] = {"type": "string", "maxLength": limit.item_size}
    return schema


_BODY_BOUND = 64 * 1024  # bounds below this are published; a request breaking them still fits in a body


def _text(why: str, *types: str) -> dict[str, Any]:
    return {"description": why, "content": {t: {"schema": _TEXT_SCHEMAS.get(t, {"type": "string"})} for t in types}}


_TEXT_SCHEMAS: dict[str, Any] = {"application/json": {"$ref": "#/components/schemas/Error"}, "text/html": {}}
_GUARD_401 = _text("no token (a browser gets the login page)", "text/plain", "text/html")
_GUARD_421 = _text("the Host header names no address of this dashboard (DNS rebinding)", "text/plain")
_BODY_408 = _text("the request body did not arrive in time", "text/plain")
_BODY_413 = _text("a request body over 1 MiB (its Content-Length, or what arrived)", "text/plain")
_CROSS_SITE = "a cross-site request (Origin), or a logged-in browser without the page's CSRF token"


def _command_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name, cmd in sorted(COMMANDS.items()):
        props = {
            p: _param_schema(t, cmd.limits[p]) | ({} if d is ... else {"default": d})
            for p, (t, d) in cmd.params.items()
        }
        required = [p for p, (_, d) in cmd.params.items() if d is ...]
        body: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            body["required"] = required
        forbidden = (
            f"{_CROSS_SITE}; this command changes state: a viewer may not run it" if cmd.mutating else (_CROSS_SITE)
        )
        op: dict[str, Any] = {
            "operationId": f"command_{name}",
            "tags": ["commands"],
            "summary": cmd.doc.splitlines()[0] if cmd.doc else name,
            "description": cmd.doc,
            "security": [{"bearer": []}, {"cookie": [], "csrf": []}]
            if cmd.mutating
            else [{"bearer": []}, {"cookie": []}],
            "x-mutating": cmd.mutating,
            "x-part": TOKEN_ONLY,
            "requestBody": {
                "required": bool(required),
                "content": {"application/json": {"schema": body, "example": _EXAMPLES.get(name, {})}},
            },
            "responses": {
                "200": {
                    "description": "the command's reply",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandReply"}}},
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": _GUARD_401,
                "403": _text(forbidden, "application/json", "text/plain"),
                "408": _BODY_408,
                "409": {"$ref": "#/components/responses/Refused"},
                "413": _BODY_413,
                "421": _GUARD_421,
            },
        }
        if name in ("query", "export"):
            op["responses"]["429"] = _text("the client already runs 2 warehouse requests", "text/plain")
        paths[f"/api/commands/{name}"] = {"post": op}
    return paths


def _field_schema(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_field_schema(a) for a in typing.get_args(hint)]}
    if hint is type(None):
        return {"type": "null"}
    if origin is tuple:
        return {"type": "array", "items": {"type": "string"}}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [m.value for m in hint]}
    return {"type": _JSON_TYPES.get(hint, "string")}


def _event_schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in EVENT_TYPES:
        cls = EVENTS[name]
        hints = typing.get_type_hints(cls)
        props = {f.name: _field_schema(hints[f.name]) for f in dataclasses.fields(cls)}
        props["type"] = {"const": name}
        if cls.listed:  # the stream adds the words the dashboard's list of recent events shows
            props["line"] = {"type": "string", "description": "the event as the dashboard lists it: who: what (why)"}
        out[name] = {
            "type": "object",
            "description": (cls.__doc__ or "").strip(),
            "properties": props,
            "required": [
                f.name
                for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ],
        }
    return out


def _schema(param: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": param.type}
    if param.enum:
        schema["enum"] = list(param.enum)
    if param.pattern:
        schema["pattern"] = param.pattern
    if param.example:
        schema["examples"] = [param.example]
    return schema


def _parameters(route: Route) -> list[dict[str, Any]]:
    named = {p.name: p for p in route.params}
    out = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": named[name].description if name in named else name,
            "schema": _schema(named[name]) if name in named else {"type": "string"},
        }
        for name in (part[1:-1] for part in route.path.split("/") if part.startswith("{"))
    ]
    if route.twin and "format" not in named:
        out.append(
            {
                "name": "format",
                "in": "query",
                "required": False,
                "description": "json: the JSON twin",
                "schema": {"type": "string", "enum": list(FORMATS)},
            }
        )
    for param in route.params:
        if param.in_ == "query":
            out.append(
                {
                    "name": param.name,
                    "in": "query",
                    "required": param.required,
                    "description": param.description,
                    "schema": _schema(param),
                }
            )
        elif param.in_ == "filters":  # free COLUMN=value pairs: a form-style object
            out.append(
                {
                    "name": param.name,
                    "in": "query",
                    "required": False,
                    "description": param.description,
                    "style": "form",
                    "explode": True,
                    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
                }
            )
    return out


def _ok_content(route: Route) -> dict[str, Any]:
    json_schema: dict[str, Any] = {"type": "object"}
    if route.part == HEALTH:
        json_schema = {"$ref": "#/components/schemas/Health"}
    if route.twin:
        content: dict[str, Any] = {
            "text/html": {"schema": {"type": "string"}},
            "application/json": {"schema": json_schema},
        }
    elif route.produces == "application/json":
        content = {"application/json": {"schema": json_schema}}
    else:
        content = {route.produces: {"schema": {"type": "string"}}}
    for extra in route.also:
        content[extra] = {"schema": {"type": "object"} if extra == "application/json" else {"type": "string"}}
    return content


def _answers(route: Route) -> dict[str, Any]:
    answers: dict[str, Any] = {"200": {"description": "OK", "content": _ok_content(route)}, "421": _GUARD_421}
    if route.part != OPEN:
        answers["401"] = _GUARD_401
    if route.method != "GET":
        answers["403"] = _text(_CROSS_SITE, "text/plain")
    if route.twin or any(p.name == "format" for p in route.params):
        answers["400"] = _text("a ?format= the operation does not answer", "text/plain")
    for answer in route.errors:
        if answer.status < 400:
            answers[str(answer.status)] = {
                "description": answer.why,
                "headers": {
                    "Location": {"description": "where to go: a path on this site", "schema": {"type": "string"}}
                },
            }
            continue
        merged = answers.get(str(answer.status), {"content": {}})["content"]
        types = {*merged, answer.content_type}
        if answer.content_type == "text/html":
            types.add("application/json")  # a page's JSON twin (Accept: application/json)
        answers[str(answer.status)] = _text(answer.why, *sorted(types))
    return answers


def _security(route: Route, public: frozenset[str]) -> list[dict[str, list[str]]]:
    """Who may call: OPEN routes anyone; parts dashboard.public opens (and /health's summary) anyone too,
    a token shows more on /health; the rest the owner's or the viewer's token (Bearer or login cookie)."""
    if route.part == OPEN:
        return []
    tokens: list[dict[str, list[str]]] = [{"bearer": []}, {"cookie": []}]
    return [{}, *tokens] if route.part == HEALTH or route.part in public else tokens


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The description as a dict (``GET /api/v1/openapi.json``), for the running config's public parts and the
    app's route table (``keys.ROUTE_TABLE``)."""
    public = app[PUBLIC].parts
    paths: dict[str, Any] = {}
    for route in app[ROUTE_TABLE]:
        form = [p for p in route.params if p.in_ == "form"]
        op: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{route.handler.__name__}",
            "summary": route.summary,
            "description": (route.handler.__doc__ or "").strip(),
            "x-part": route.part,
            "security": _security(route, public),
            "parameters": _parameters(route),
            "responses": _answers(route),
        }
        if form:
            op["requestBody"] = {
                "required": any(p.required for p in form),
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": [p.name for p in form if p.required],
                            "properties": {p.name: _schema(p) | {"description": p.description} for p in form},
                        }
                    }
                },
            }
        if route.path == "/api/events":
            _event_stream(op)
        paths.setdefault(route.path, {})[route.method.lower()] = op
    paths.update(_command_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "foss-supervisor", "version": __version__, "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the owner's token (state_dir/api-token) or the viewer's (state_dir/viewer-token)",
                },
                "cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "foss_token",
                    "description": "set by /login",
                },
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "a logged-in page's meta csrf-token",
                },
            },
            "schemas": _SCHEMAS,
            "responses": {
                code: {
                    "description": why,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                for code, why in (
                    ("BadRequest", "unknown argument, wrong type or invalid JSON"),
                    ("Refused", "the command was refused (no such program, no pipelines, ...)"),
                )
            },
            "x-sse-events": _event_schemas(),
        },
    }


def _event_stream(op: dict[str, Any]) -> None:
    """The event stream: its Last-Event-ID header, and each event as schemathesis and readers see it."""
    op["parameters"].append(
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "example": "3f9a1c2e-42",
        }
    )
    op["responses"]["200"]["content"] = {
        "text/event-stream": {
            "schema": {  # one event (Open API 3.1: the schema of a stream's item)
                "type": "object",
                "properties": {
                    "event": {"enum": ["hello", "resync", "tick", *EVENT_TYPES]},
                    "data": {"type": "string", "contentMediaType": "application/json"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer", "minimum": 0},
                },
            },
            "example": 'id: 3f9a1c2e-43\nevent: StateChanged\ndata: {"name": "web", '
            '"old": "RUNNING", "new": "BACKOFF", "type": "StateChanged", "at": 1767225600.0}\n\n',
        }
    }
    op["x-sse-events"] = [{"$ref": f"#/components/x-sse-events/{e}"} for e in EVENT_TYPES]


DESCRIPTION = (
    "The dashboard's HTTP API. Every request needs a token, on loopback too, but for the login page, the "
    "icon and static files, /health's summary (status code and counts) and the parts the config's "
    "dashboard.public opens (each operation's x-part; its security then lists {}). The owner's token "
    "(state_dir/api-token) reads everything and runs every command; the viewer's (state_dir/viewer-token) "
    "reads everything and runs no command marked x-mutating. Send one as a Bearer token, or log in once "
    "(/login?token=...: an HttpOnly cookie); a logged-in browser's commands also carry the X-CSRF-Token "
    "header of the page. docs/security.md has the table per route and role."
)

_HEALTH_COMMON = {
    "ok": {"type": "boolean"},
    "status": {"enum": ["healthy", "degraded", "unhealthy"]},
    "phase": {"type": "string"},
    "programs": {"type": "object", "additionalProperties": {"type": "integer"}},
}
_SCHEMAS: dict[str, Any] = {
    "CommandReply": {
        "type": "object",
        "properties": {"ok": {"const": True}, "result": {}},
        "required": ["ok", "result"],
    },
    "Error": {
        "type": "object",
        "properties": {
            "ok": {"const": False},
            "error": {"type": "object", "properties": {"type": {"type": "string"}, "message": {"type": "string"}}},
        },
    },
    "Health": {
        "description": "the health report (with a token, or when dashboard.public names health), else its "
        "summary: the verdict and counts",
        "anyOf": [
            {
                "type": "object",
                "required": ["ok", "status", "phase", "problems", "warnings"],
                "properties": _HEALTH_COMMON
                | {
                    "problems": {"type": "array", "items": {"type": "string"}},
                    "warnings": {"type": "array", "items": {"type": "string"}},
                },
            },
            {
                "type": "object",
                "required": ["ok", "status", "phase", "problem_count", "warning_count"],
                "additionalProperties": False,
                "properties": _HEALTH_COMMON
                | {
                    "problem_count": {"type": "integer", "minimum": 0},
                    "warning_count": {"type": "integer", "minimum": 0},
                },
            },
        ],
    },
}
