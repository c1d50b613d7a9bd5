"""Reads need a token, on loopback too (issue 16, item 1), against a real daemon over real HTTP.

Anonymous clients get 401 on every route of the table but the login page, the icon and /health's
summary; the viewer token reads everything and runs no command the registry marks ``mutating``;
``dashboard.public`` opens named parts, and a reload opens or closes them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from helpers import HEALTH_SUMMARY_KEYS, PY, DaemonHandle, request, route_path, wait_for
from helpers.pipeline import counter_pipeline

from foss_supervisor.commands import COMMANDS
from foss_supervisor.web import auth
from foss_supervisor.web.access import HEALTH, OPEN
from foss_supervisor.web.routes import ROUTES

MARK = "log-line-7f3a"
TALKER = f"[{PY!r}, '-u', '-c', 'import time; print(\"{MARK}\"); time.sleep(300)']"
PROGRAMS = f"""programs:
  talker: {{command: {TALKER}, start_timeout: 0.1}}
  broken: {{command: ["/nonexistent/broken-prog"], start_retries: 0}}
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def served(daemon: DaemonHandle) -> tuple[DaemonHandle, str, str]:
    daemon.write_config(PROGRAMS)
    daemon.start()
    wait_for(lambda: daemon.program("broken")["state"] == "FATAL", 10, "broken FATAL")
    token = (daemon.state_dir / "api-token").read_text().strip()
    viewer = (daemon.state_dir / "viewer-token").read_text().strip()
    return daemon, token, viewer


def test_every_route_needs_a_token_on_loopback(served: tuple[DaemonHandle, str, str]) -> None:
    d, token, viewer = served
    wait_for(lambda: MARK in d.call("log_read", source="talker")["lines"][-1], 10, "the talker's line")
    for route in ROUTES:
        path = route_path(route.path)
        body = b"{}" if route.method == "POST" else None
        for headers in ({}, bearer("wrong"), {"Cookie": "foss_token=wrong"}, {"Accept": "text/html"}):
            status, _, reply = request(d.port, route.method, path, body, headers)
            if route.part == OPEN:
                assert status != 401, (route.path, headers)
            elif route.part == HEALTH:
                assert status == 503 and set(json.loads(reply)) == HEALTH_SUMMARY_KEYS
            else:
                assert status == 401, (route.method, path, headers, status)
            # nothing the daemon knows: a name shows only where the client's own path echoes it (login next)
            assert not [w for w in ("talker", "broken", MARK) if w not in path and w.encode() in reply], path
        for who in (token, viewer):
            status, _, _ = request(d.port, route.method, path, body, bearer(who))
            assert status not in (401, 421), (route.path, status)
    # issue 16's sample: a program's log as JSON
    assert request(d.port, "GET", "/logs/talker?format=json")[0] == 401
    status, _, reply = request(d.port, "GET", "/logs/talker?format=json", headers=bearer(viewer))
    assert status == 200 and MARK in "".join(json.loads(reply)["log"]["lines"])


def test_health_without_a_token_is_the_verdict_and_counts(served: tuple[DaemonHandle, str, str]) -> None:
    d, token, _ = served
    for path in ("/health", "/api/v1/health", "/health?format=json"):
        status, _, reply = request(d.port, "GET", path)
        summary = json.loads(reply)
        assert status == 503 and summary["status"] == "unhealthy"
        assert summary["problem_count"] >= 1 and summary["programs"] == {"RUNNING": 1, "FATAL": 1}
        status, _, reply = request(d.port, "GET", path, headers=bearer(token))
        assert status == 503 and any("broken" in p for p in json.loads(reply)["problems"])
    status, headers, _ = request(d.port, "GET", "/health", headers={"Accept": "text/html"})
    assert status == 503 and headers["content-type"].startswith("application/json")  # no page names programs


def test_the_viewer_token_reads_and_changes_nothing(served: tuple[DaemonHandle, str, str]) -> None:
    d, token, viewer = served
    path = d.state_dir / auth.VIEWER_TOKEN_FILE
    assert path.stat().st_mode & 0o777 == 0o600 and viewer == auth.viewer_token(token) != token
    status, headers, text = request(d.port, "GET", "/metrics", headers=bearer(viewer))  # Prometheus' way
    assert status == 200 and b"foss_supervisor_" in text and headers["content-type"].startswith("text/plain")
    before = {p["name"]: p["state"] for p in d.call("status")["programs"]}
    args = {"names": ["talker"], "name": "talker", "signal": "KILL", "replicas": 2, "text": "programs: {}\n"}
    for name, cmd in COMMANDS.items():
        if not cmd.mutating:
            continue
        body = {p: args[p] for p in cmd.params if p in args}
        status, _, reply = request(d.port, "POST", f"/api/commands/{name}", json.dumps(body).encode(), bearer(viewer))
        assert status == 403 and b"viewer" in reply, (name, status, reply)
    assert {p["name"]: p["state"] for p in d.call("status")["programs"]} == before
    assert d.ping() is not None  # shutdown was refused too
    for name in ("status", "health", "help", "ping", "config_show"):
        status, _, reply = request(d.port, "POST", f"/api/commands/{name}", b"{}", bearer(viewer))
        assert status == 200 and json.loads(reply)["ok"], name
    assert request(d.port, "POST", "/api/commands/status", b"{}")[0] == 401


def test_the_viewer_logs_in_with_a_browser_session(served: tuple[DaemonHandle, str, str]) -> None:
    d, _, viewer = served
    status, headers, _ = request(d.port, "GET", f"/login?token={viewer}&next=/logs")
    assert status == 303 and headers["location"] == "/logs"
    cookie = {"Cookie": headers["set-cookie"].split(";")[0]}
    status, _, page = request(d.port, "GET", "/logs", headers={**cookie, "Accept": "text/html"})
    assert status == 200 and b"viewer (read-only)" in page and b"talker" in page
    csrf = re.search(rb'name="csrf-token" content="([0-9a-f]+)"', page)
    assert csrf is not None and csrf[1].decode() == auth.csrf_token(viewer)
    # its CSRF token does not make it an owner
    status, _, _ = request(
        d.port, "POST", "/api/commands/stop", b'{"names": ["talker"]}', {**cookie, auth.CSRF_HEADER: csrf[1].decode()}
    )
    assert status == 403 and d.program("talker")["state"] == "RUNNING"
    status, headers, _ = request(
        d.port,
        "POST",
        "/logout",
        f"csrf={csrf[1].decode()}".encode(),
        {**cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 303 and 'foss_token=""' in headers["set-cookie"]


def test_public_parts_open_on_purpose_and_follow_reloads(daemon: DaemonHandle) -> None:
    daemon.write_config(PROGRAMS)
    config = daemon.config_path.read_text().replace(
        f"dashboard: {{port: {daemon.port}}}", f"dashboard: {{port: {daemon.port}, public: [health, metrics]}}"
    )
    daemon.config_path.write_text(config)
    daemon.start()
    wait_for(lambda: daemon.program("broken")["state"] == "FATAL", 10, "broken FATAL")
    status, _, text = request(daemon.port, "GET", "/metrics")
    assert status == 200 and b'program="talker"' in text
    status, _, reply = request(daemon.port, "GET", "/health")
    assert status == 503 and any("broken" in p for p in json.loads(reply)["problems"])  # the full report
    assert request(daemon.port, "GET", "/logs/talker?format=json")[0] == 401  # what is not named stays closed
    token = (daemon.state_dir / "api-token").read_text().strip()
    _, _, spec = request(daemon.port, "GET", "/api/v1/openapi.json", headers=bearer(token))
    assert {} in json.loads(spec)["paths"]["/metrics"]["get"]["security"]
    daemon.config_path.write_text(config.replace("public: [health, metrics]", "public: [metrics]"))
    assert daemon.cli("reload").returncode == 0
    wait_for(lambda: "problem_count" in json.loads(request(daemon.port, "GET", "/health")[2]), 10, "health closed")
    assert request(daemon.port, "GET", "/metrics")[0] == 200


def test_files_with_tokens_are_private(served: tuple[DaemonHandle, str, str]) -> None:
    d, _, _ = served
    for name in ("api-token", auth.VIEWER_TOKEN_FILE, "control.sock"):
        assert os.stat(d.state_dir / name).st_mode & 0o077 == 0, name


def test_a_page_shows_the_role_the_request_proves_by_any_accepted_means(served: tuple[DaemonHandle, str, str]) -> None:
    """Issue 18 (a tester's find): a page fetched with ``Authorization: Bearer TOKEN`` and no cookie said "not
    logged in" with a Log in link; the header named the role only from the cookie. Every HTML page, every means."""
    d, token, viewer = served
    html = {"Accept": "text/html"}
    cookie = {"Cookie": f"{auth.COOKIE}={token}"}
    means: list[tuple[dict[str, str], bytes, bool]] = [
        ({**bearer(token)}, b"\xe2\x97\x8f logged in", False),  # a header has no cookie to log out of
        ({**bearer(viewer)}, b"viewer (read-only)", False),
        (cookie, b"\xe2\x97\x8f logged in", True),
        ({**cookie, **bearer(token)}, b"\xe2\x97\x8f logged in", True),
    ]
    pages = set()
    for route in ROUTES:
        if route.method != "GET":
            continue
        path = route_path(route.path)
        for headers, who, logout in means:
            status, _, page = request(d.port, "GET", path, headers={**html, **headers})
            if b'class="session"' not in page:  # not a page (JSON, text), or a 404 of a made-up name's page
                continue
            pages.add(route.path)
            assert who in page and b"not logged in" not in page, (path, headers)
            owner = who != b"viewer (read-only)"  # /config asks a viewer to log in as the owner to see the file
            assert not owner or b">Log in</a>" not in page, (path, headers)
            assert (b'action="/logout"' in page) is logout, (path, headers)
    assert {"/", "/pipeline-management", "/logs", "/config"} <= pages, pages
    # a wrong Bearer token is anonymous whatever the cookie says (as for every read): the page says so
    status, _, page = request(d.port, "GET", "/login", headers={**html, **cookie, **bearer("wrong")})
    assert status == 200 and b"not logged in" in page


def test_the_viewer_sees_the_controls_that_change_state_disabled(daemon: DaemonHandle, tmp_path: Path) -> None:
    """Tester of issue 18: a viewer saw Run now, Replay and Cancel active on /pipeline-management, each answering
    403. Every ``data-command`` button (and the backfill's submit) a viewer sees is disabled, its title saying the
    viewer token only reads; the owner's are not."""
    counter_pipeline(tmp_path, "c")
    daemon.write_config(PROGRAMS + f"pipelines:\n  c: {{file: {tmp_path / 'c.yaml'}, on_new_files: false}}\n")
    daemon.start()
    token = (daemon.state_dir / "api-token").read_text().strip()
    viewer = (daemon.state_dir / "viewer-token").read_text().strip()
    said = 'disabled title="the viewer token only reads'
    for path in ("/pipeline-management", "/"):
        pages = {}
        for who in (token, viewer):
            status, _, body = request(daemon.port, "GET", path, headers={**bearer(who), "Accept": "text/html"})
            assert status == 200, (path, status)
            pages[who] = body.decode()
        buttons = re.findall(r"<button [^>]*data-command=[^>]*>", pages[viewer])
        # each disabled: as a viewer's, or already so for its own reason (Start of a running program)
        assert buttons and all(' disabled title="' in b for b in buttons), [b for b in buttons if "disabled" not in b]
        assert sum(said in b for b in buttons) >= len(buttons) - 2, buttons
        assert said not in pages[token]
        assert path != "/pipeline-management" or any('"pipeline_run"' in b for b in buttons)
