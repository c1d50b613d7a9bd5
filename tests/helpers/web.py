"""HTTP to a server on 127.0.0.1, one request per connection, sent exactly as written."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Mapping
from typing import Any, NamedTuple

from aiohttp import web

from foss_supervisor.web.limits import ConnectionGuard, GuardedSockSite, Limits, read_body

from .daemon import owner_headers

__all__ = [
    "HEALTH_SUMMARY_KEYS",
    "PATH_VALUES",
    "Reply",
    "command",
    "get",
    "guarded_server",
    "health",
    "request",
    "route_path",
]

#: what ``/health`` tells a client without a token: the verdict and counts, nothing the daemon knows
HEALTH_SUMMARY_KEYS = {"ok", "status", "phase", "problem_count", "warning_count", "programs"}

#: a value for each path parameter of the route table (what the e2e daemons have: a program ``talker``, the
#: orders pipeline)
PATH_VALUES = {
    "source": "talker",
    "run_id": "20260101T000000Z-abcdef",
    "name": "orders",
    "file": "latest.html",
    "table": "gold.daily_revenue",
}


def route_path(template: str, **values: str) -> str:
    """A route's path with each ``{parameter}`` filled in from ``values``, else from :data:`PATH_VALUES`."""
    given = {**PATH_VALUES, **values}
    return "/".join(given.get(p[1:-1], p) if p.startswith("{") else p for p in template.split("/"))


class Reply(NamedTuple):
    """One HTTP answer: the status, the headers (names lower-cased) and the body's bytes; unpacks as
    ``status, headers, body``."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not)."""
        return json.loads(self.body)


def request(
    port: int,
    method: str,
    target: str,
    body: bytes | str | Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    timeout_s: float = 15.0,
) -> Reply:
    """One request to ``127.0.0.1:port`` on a connection of its own, sent as written.

    ``target`` goes on the request line unchanged (hostile paths stay hostile); no header is added but
    ``Host`` (unless ``headers`` has one) and ``Content-Length``. ``body``: bytes as they are, a str as
    UTF-8, anything else as JSON. An event stream's body never ends: for one, only the status and headers
    are read (``body`` is empty). Raises ``OSError`` when the connection fails or times out.
    """
    given = dict(headers or {})
    names = {k.lower() for k in given}
    data = body if isinstance(body, bytes) or body is None else body.encode() if isinstance(body, str) else None
    if data is None and body is not None:
        data = json.dumps(body).encode()
    if "content-length" not in names and (data is not None or method in ("POST", "PUT", "PATCH")):
        given["Content-Length"] = str(len(data or b""))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.putrequest(method, target, skip_host="host" in names, skip_accept_encoding=True)
        for key, value in given.items():
            conn.putheader(key, value)
        conn.endheaders(data)
        resp = conn.getresponse()
        got = {k.lower(): v for k, v in resp.getheaders()}
        streams = got.get("content-type", "").startswith("text/event-stream")
        return Reply(resp.status, got, b"" if streams else resp.read())
    finally:
        conn.close()


def get(port: int, target: str, headers: Mapping[str, str] | None = None, *, timeout_s: float = 15.0) -> Reply:
    """``GET target`` with the owner's token of the daemon under test on ``port`` (every read needs one);
    ``headers`` are added (and win)."""
    return request(port, "GET", target, headers={**owner_headers(port), **(headers or {})}, timeout_s=timeout_s)


def health(port: int) -> tuple[int, Any]:
    """``/health`` as the owner of the daemon under test on ``port`` reads it: the status and the whole report."""
    reply = get(port, "/health")
    return reply.status, reply.json()


def command(
    port: int, name: str, args: Any = None, headers: Mapping[str, str] | None = None, *, timeout_s: float = 30.0
) -> Reply:
    """Run command ``name`` over HTTP (``POST /api/commands/{name}``, ``args`` as JSON, ``{}`` if None) with
    ``headers`` (the owner's token of the daemon under test on ``port`` if None)."""
    sent = owner_headers(port) if headers is None else headers
    return request(port, "POST", f"/api/commands/{name}", {} if args is None else args, sent, timeout_s=timeout_s)


async def guarded_server(limits: Limits) -> tuple[web.AppRunner, ConnectionGuard, int]:
    """An aiohttp app in this process behind the dashboard's :class:`ConnectionGuard` with ``limits``, on a free
    port of 127.0.0.1: ``GET /health`` answers ``{"ok": true}``, ``POST /upload`` reads the body (bounded) and
    answers its size. Returns the runner (``await runner.cleanup()`` when done), the guard and the port."""
    guard = ConnectionGuard(limits)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def upload(request: web.Request) -> web.Response:
        return web.json_response({"bytes": len(await read_body(request, limits.body_timeout_s))})

    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/health", health)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app, keepalive_timeout=3600)  # aiohttp's own timer would not close them in time
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    await GuardedSockSite(runner, sock, guard).start()
    return runner, guard, sock.getsockname()[1]
