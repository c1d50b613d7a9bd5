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
from foss_supervisor import events as core_events
from foss_supervisor.commands import COMMANDS
from foss_supervisor.pipeline import events as pipeline_events
from foss_supervisor.web.sse import EVENT_TYPES

if typing.TYPE_CHECKING:
    from foss_supervisor.web.routes import Param

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


def _param_schema(ptype: type) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _JSON_TYPES.get(ptype, "string")}
    if ptype is list:
        schema["items"] = {"type": "string"}
    return schema


def _command_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name, cmd in sorted(COMMANDS.items()):
        props = {p: _param_schema(t) | ({} if d is ... else {"default": d}) for p, (t, d) in cmd.params.items()}
        required = [p for p, (_, d) in cmd.params.items() if d is ...]
        body: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            body["required"] = required
        op: dict[str, Any] = {
            "operationId": f"command_{name}",
            "tags": ["commands"],
            "summary": cmd.doc.splitlines()[0] if cmd.doc else name,
            "description": cmd.doc,
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
                "409": {"$ref": "#/components/responses/Refused"},
            },
        }
        if cmd.mutating:
            op["security"] = [{"bearer": []}, {"cookie": [], "csrf": []}]
            op["responses"]["403"] = {"$ref": "#/components/responses/Forbidden"}
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
        cls = getattr(core_events, name, None) or getattr(pipeline_events, name)
        hints = typing.get_type_hints(cls)
        props = {f.name: _field_schema(hints[f.name]) for f in dataclasses.fields(cls)}
        props["type"] = {"const": name}
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
    return {"type": param.type, **({"enum": list(param.enum)} if param.enum else {})}


def _query_param(param: Param) -> dict[str, Any]:
    return {"name": param.name, "in": "query", "required": param.required, "description": param.description,
            "schema": _schema(param)}  # fmt: skip


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The description as a dict (``GET /api/v1/openapi.json``)."""
    from foss_supervisor.web.routes import ROUTES

    paths: dict[str, Any] = {}
    for route in ROUTES:
        params = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in route.path.split("/")
            if part.startswith("{")
        ]
        content: dict[str, Any] = {route.produces: {}}
        if route.twin:
            content = {"text/html": {}, "application/json": {"schema": {"type": "object"}}}
            params.append(
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "description": "json: the JSON twin",
                    "schema": {"type": "string", "enum": ["json", "html"]},
                }
            )
        for extra in route.also:
            content[extra] = {}
        for param in route.params:
            if param.in_ == "query":
                params.append(_query_param(param))
            elif param.in_ == "filters":  # free COLUMN=value pairs: a form-style object
                params.append({"name": param.name, "in": "query", "required": False, "description": param.description,
                               "style": "form", "explode": True,
                               "schema": {"type": "object", "additionalProperties": {"type": "string"}}})  # fmt: skip
        form = [p for p in route.params if p.in_ == "form"]
        op: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{route.handler.__name__}",
            "summary": route.summary,
            "description": (route.handler.__doc__ or "").strip(),
            "parameters": params,
            "responses": {"200": {"description": "OK", "content": content}},
        }
        if form:
            op["requestBody"] = {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": [p.name for p in form if p.required],
                "properties": {p.name: _schema(p) | {"description": p.description} for p in form}}}}}  # fmt: skip
        for code, why in route.errors:
            op["responses"][str(code)] = {"description": why, "content": {"text/plain": {"schema": {"type": "string"}}}}
        if route.path == "/api/events":
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
                    "schema": {"type": "string"},
                    "example": 'id: 3f9a1c2e-43\nevent: StateChanged\ndata: {"name": "web", '
                    '"old": "RUNNING", "new": "BACKOFF", "type": "StateChanged", "at": 1767225600.0}\n\n',
                }
            }
            op["x-sse-events"] = [{"$ref": f"#/components/x-sse-events/{e}"} for e in EVENT_TYPES]
        if route.path in ("/health", "/api/v1/health"):
            op["responses"]["503"] = {"description": "unhealthy (same body)"}
        paths.setdefault(route.path, {})[route.method.lower()] = op
    paths.update(_command_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "foss-supervisor",
            "version": __version__,
            "description": "The dashboard's HTTP API. Reads are open on a loopback bind; every command that "
            "changes state needs the API token (state_dir/api-token) as a Bearer token, or the "
            "login cookie plus the X-CSRF-Token header of the dashboard's pages. Beyond "
            "loopback every request but /health, /api/v1/health and /login needs the token.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "foss_token"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            },
            "schemas": {
                "CommandReply": {
                    "type": "object",
                    "properties": {"ok": {"const": True}, "result": {}},
                    "required": ["ok", "result"],
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "ok": {"const": False},
                        "error": {
                            "type": "object",
                            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                        },
                    },
                },
            },
            "responses": {
                code: {
                    "description": why,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                for code, why in (
                    ("BadRequest", "unknown argument, wrong type or invalid JSON"),
                    ("Refused", "the command was refused (no such program, no pipelines, ...)"),
                    ("Forbidden", "this command changes state and the token is missing"),
                )
            },
            "x-sse-events": _event_schemas(),
        },
    }
