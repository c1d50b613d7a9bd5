"""The dashboard's views in-process, as Datasette tests through ``ds.client``: the real app
(:func:`foss_supervisor.web.app.create_app`) under aiohttp's test client, over a real core, a
:class:`helpers.webcore.LocalCore` of a real :class:`~foss_supervisor.daemon.Daemon` built from a
parsed config and not started (no program runs, nothing is spawned, no port but the test server's).

Every page's JSON twin, who may read and change what, the health summary, the Host and Origin guard, and
the OpenAPI description. The same app behind a real daemon and its dashboard process: tests/e2e/test_web*.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import HEALTH_SUMMARY_KEYS, Reply, route_path
from helpers.webcore import LocalCore
from openapi_spec_validator import validate

from foss_supervisor.base.tokens import load_or_create_token, viewer_token
from foss_supervisor.commands import COMMANDS
from foss_supervisor.config import parse_config
from foss_supervisor.core.events import DaemonStateChanged
from foss_supervisor.daemon import Daemon
from foss_supervisor.web.access import HEALTH, OPEN
from foss_supervisor.web.app import create_app
from foss_supervisor.web.routes import ROUTES
from foss_supervisor.web.sse import EVENT_TYPES

SECRET = "hunter2-in-an-env-9q"
CONFIG = """state_dir: {state}
programs:
  talker: {{command: [talker], env: {{DB_PASSWORD: {secret}}}}}
  worker: {{command: [worker], depends_on: talker}}
"""
#: what an anonymous client learns of the health: the verdict and counts, nothing that names a program
ANONYMOUS: tuple[dict[str, str], ...] = (
    {},
    {"Authorization": "Bearer wrong"},
    {"Cookie": "foss_token=wrong"},
    {"Accept": "text/html"},
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Site:
    """The app served in-process, the daemon behind it, and the owner's and viewer's headers."""

    client: TestClient
    daemon: Daemon
    owner: dict[str, str]
    viewer: dict[str, str]

    async def fetch(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> Reply:
        """One request as a client sends it (no redirect followed); an event stream's body is left unread."""
        async with self.client.request(method, path, headers=headers, data=body, allow_redirects=False) as resp:
            streams = resp.content_type == "text/event-stream"
            got = {k.lower(): v for k, v in resp.headers.items()}
            return Reply(resp.status, got, b"" if streams else await resp.read())

    def ready(self) -> None:
        """The daemon's phase moves on as its start would move it (the event any phase change publishes)."""
        self.daemon.phase = "ready"
        self.daemon.bus.publish(DaemonStateChanged(state="ready"))


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    state = tmp_path / "state"
    state.mkdir()
    daemon = Daemon(parse_config(CONFIG.format(state=state, secret=SECRET), tmp_path / "config.yaml"), None)
    token = load_or_create_token(state / "api-token")
    core = LocalCore(daemon, daemon.events)
    client = TestClient(TestServer(create_app(core, token, dashboard_host="127.0.0.1")))
    await client.start_server()
    try:
        yield Site(client, daemon, bearer(token), bearer(viewer_token(token)))
    finally:
        await client.close()
        await core.close()


# ------------------------------------------------------------------------------------------ JSON twins


async def test_every_page_has_a_json_twin_and_says_what_its_commands_say(site: Site) -> None:
    twins = {route_path(r.path, source="daemon"): r for r in ROUTES if r.twin}
    found: dict[str, Any] = {}
    for path in twins:
        page = await site.fetch("GET", path, {**site.owner, "Accept": "text/html"})
        twin = await site.fetch("GET", path + "?format=json", {**site.owner, "Accept": "text/html"})
        asked = await site.fetch("GET", path, {**site.owner, "Accept": "application/json"})
        assert page.status == twin.status == asked.status, path  # one answer, two shapes
        if page.status == 404:
            assert path in ("/runs/20260101T000000Z-abcdef", "/data-browser/gold.daily_revenue"), path  # none here
            continue
        assert page.headers["content-type"].startswith("text/html") and page.body.startswith(b"<!doctype html>")
        assert twin.headers["content-type"].startswith("application/json"), path
        if path == "/chat":  # ?format=json stays the command reference it always was; Accept gets the page's data
            assert twin.json() == asked.json()["commands"]
        elif path not in ("/", "/health"):  # (their uptimes move between two requests)
            assert twin.json() == asked.json(), path
        assert SECRET.encode() not in page.body + twin.body, path
        found[path] = twin.json()
        assert (await site.fetch("GET", path + "?format=xml", site.owner)).status == 400, path
    assert set(found) == {"/", "/pipeline-management", "/data-browser", "/logs", "/logs/daemon", "/config"} | {
        "/health",
        "/chat",
        "/login",
        "/graph",
        "/alerts",
    }
    assert found["/alerts"] == {
        "objectives": [],
        "alerts": {"open": [], "closed": [], "silences": [], "dropped": 0, "unreadable": 0},
    }
    daemon = found["/"]["status"]["daemon"]
    assert (daemon["phase"], daemon["config"]) == ("starting", str(site.daemon.config.source))
    assert found["/pipeline-management"] == {"pipelines": []}
    assert found["/data-browser"]["error"].startswith("no pipelines are configured")
    assert {n["id"] for n in found["/graph"]["graph"]["nodes"]} == {"program:talker", "program:worker"}
    assert found["/graph"]["graph"]["edges"] == [
        {"source": "program:talker", "target": "program:worker", "kind": "depends_on"}
    ]
    assert {s["source"] for s in found["/logs"]["sources"]} >= {"daemon", "pipeline"}
    assert found["/logs/daemon"]["log"]["file"] == str(site.daemon.config.state_dir / "foss-supervisor.log")
    assert found["/config"]["file"] == str(site.daemon.config.source) and found["/config"]["editable"] is True
    assert found["/health"]["problems"] == ["daemon is starting"]
    assert set(found["/chat"]) == set(COMMANDS) and found["/chat"]["stop"]["mutating"] is True
    assert found["/login"] == {"next": "/", "error": ""}


# ------------------------------------------------------------------------------------------ who may do what


async def test_every_route_refuses_a_client_without_the_token_and_serves_both_tokens(site: Site) -> None:
    for route in ROUTES:
        path = route_path(route.path, source="daemon")
        body = b"{}" if route.method == "POST" else None
        for headers in ANONYMOUS:
            reply = await site.fetch(route.method, path, headers, body)
            if route.part == OPEN:
                assert reply.status != 401, (route.path, headers)
            elif route.part == HEALTH:
                assert reply.status == 503 and set(reply.json()) == HEALTH_SUMMARY_KEYS, (route.path, headers)
            else:
                assert reply.status == 401, (route.method, path, headers, reply.status)
            assert b"talker" not in reply.body and b"worker" not in reply.body, path  # nothing of the config
        for who in (site.owner, site.viewer):
            reply = await site.fetch(route.method, path, who, body)
            assert reply.status not in (401, 403, 421), (route.method, path, reply.status)
            assert reply.status < 500 or route.part == HEALTH, (route.method, path, reply.status)  # (starting)


async def test_head_answers_every_get_route_as_get_does_without_a_body(site: Site) -> None:
    site.ready()
    for route in ROUTES:
        if route.method != "GET":
            continue
        path = route_path(route.path, source="daemon")
        for headers in (*ANONYMOUS, site.owner, site.viewer):
            if route.part == "health" or path.startswith("/api/events"):
                continue  # a verdict that may change between the two requests; a stream that never ends
            got, head = await site.fetch("GET", path, headers), await site.fetch("HEAD", path, headers)
            assert head.status == got.status and head.status != 405, (path, headers, head.status, got.status)
            assert head.body == b"", path


async def test_the_viewer_token_reads_and_runs_no_command_that_changes_state(site: Site, dispatched: list[str]) -> None:
    for name, cmd in COMMANDS.items():
        reply = await site.fetch("POST", f"/api/commands/{name}", site.viewer, b"{}")
        if cmd.mutating:
            assert reply.status == 403 and b"viewer" in reply.body, (name, reply.status)
        else:
            assert reply.status != 403, name
    assert not [name for name in dispatched if COMMANDS[name].mutating]  # refused before the core saw them
    assert (await site.fetch("POST", "/api/commands/status", site.viewer, b"{}")).json()["ok"] is True
    assert (await site.fetch("POST", "/api/commands/status", {}, b"{}")).status == 401


async def test_foreign_hosts_and_cross_site_writes_are_refused_before_any_view(
    site: Site, dispatched: list[str]
) -> None:
    rebound = await site.fetch("GET", "/api/status", {**site.owner, "Host": "attacker.example"})
    assert rebound.status == 421 and b"programs" not in rebound.body
    forged = {**site.owner, "Origin": "https://attacker.example", "Content-Type": "application/json"}
    assert (await site.fetch("POST", "/api/commands/reload", forged, b"{}")).status == 403
    assert "reload" not in dispatched
    same_site = {**site.owner, "Origin": str(site.client.make_url("")).rstrip("/")}
    assert (await site.fetch("POST", "/api/commands/ping", same_site, b"{}")).status == 200


# ------------------------------------------------------------------------------------------ health


async def test_the_health_summary_is_the_verdict_and_counts_and_follows_a_change_at_once(site: Site) -> None:
    for path in ("/health", "/api/v1/health", "/health?format=json"):
        summary = await site.fetch("GET", path)
        assert summary.status == 503 and set(summary.json()) == HEALTH_SUMMARY_KEYS
        assert summary.json() | {"programs": None} == {
            "ok": False,
            "status": "unhealthy",
            "phase": "starting",
            "problem_count": 1,
            "warning_count": 0,
            "programs": None,
        }
        full = await site.fetch("GET", path, site.viewer)
        assert full.status == 503 and full.json()["problems"] == ["daemon is starting"]
    page = await site.fetch("GET", "/health", {**site.owner, "Accept": "text/html"})
    assert page.status == 503 and b"daemon is starting" in page.body
    site.ready()
    healthy = await site.fetch("GET", "/health")
    assert healthy.status == 200 and healthy.json()["status"] == "healthy" and healthy.json()["ok"] is True


# ------------------------------------------------------------------------------------------ OpenAPI


async def test_openapi_describes_every_route_command_and_event(site: Site) -> None:
    reply = await site.fetch("GET", "/api/v1/openapi.json", site.viewer)
    spec: dict[str, Any] = reply.json()
    assert reply.status == 200 and spec["openapi"].startswith("3.1")
    validate(spec)  # a valid OpenAPI 3.1 document (what schemathesis and the renderers will read)
    for route in ROUTES:
        op = spec["paths"][route.path][route.method.lower()]
        assert op["summary"] and op["responses"]["200"], route.path
        named = {p["name"] for p in op["parameters"]}
        named |= set(
            op.get("requestBody", {})
            .get("content", {})
            .get("application/x-www-form-urlencoded", {})
            .get("schema", {})
            .get("properties", {})
        )
        assert {p.name for p in route.params} <= named, route.path  # every parameter a view reads is described
    export = spec["paths"]["/api/v1/export/{table}"]["get"]
    assert {"parquet", "csv", "jsonl"} == set(
        next(p for p in export["parameters"] if p["name"] == "format")["schema"]["enum"]
    )
    assert {"application/vnd.apache.parquet", "text/csv", "application/x-ndjson"} <= set(
        export["responses"]["200"]["content"]
    )
    table = spec["paths"]["/data-browser/{table}"]["get"]
    assert {"_page", "_size", "_sort", "_desc", "_search", "filters"} <= {p["name"] for p in table["parameters"]}
    browser_export = spec["paths"]["/data-browser/export"]["get"]["parameters"]
    assert "parquet" in next(p for p in browser_export if p["name"] == "format")["schema"]["enum"]
    for name, cmd in COMMANDS.items():
        op = spec["paths"][f"/api/commands/{name}"]["post"]
        assert op["description"] == cmd.doc
        assert set(op["requestBody"]["content"]["application/json"]["schema"]["properties"]) == set(cmd.params)
        assert op["x-mutating"] == cmd.mutating and {"bearer": []} in op["security"], name
        assert ({"cookie": [], "csrf": []} in op["security"]) == cmd.mutating, name
    events = spec["components"]["x-sse-events"]
    assert set(events) == set(EVENT_TYPES)
    assert events["StateChanged"]["properties"]["new"]["enum"][0] == "STOPPED"
    assert "example" in spec["paths"]["/api/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert json.dumps(spec).count(SECRET) == 0


async def test_a_refused_command_with_text_utf8_cannot_hold_leaves_every_page_readable(site: Site) -> None:
    """A lone surrogate in a refused command's arguments (JSON "\\udc80", an argv byte that did not decode) is
    in the audit list of the overview: the page is answered, with "?" for it, never a 500 for everyone."""
    refused = await site.fetch("POST", "/api/commands/stop", site.owner, b'{"names": ["\\udc80x"]}')
    assert refused.status in (400, 409)
    for path in ("/", "/alerts", "/graph", "/logs"):
        page = await site.fetch("GET", path, {**site.owner, "Accept": "text/html"})
        assert page.status == 200, (path, page.status)
