"""The dashboard's guard against a real daemon: Host allow-list, Origin and CSRF checks, CSP on every
response, no inline script, no state change on GET, login and logout, and an exposed (non-loopback) bind."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from helpers import PY, DaemonHandle, request, wait_for

from foss_supervisor.web.auth import csrf_token

SLEEPER = f"[{PY!r}, '-c', 'import time; time.sleep(300)']"
PAGES = [
    "/",
    "/pipeline-management",
    "/data-browser",
    "/logs",
    "/logs/app",
    "/logs/daemon",
    "/config",
    "/health",
    "/chat",
    "/login",
]


@pytest.fixture
def web_daemon(daemon: DaemonHandle) -> DaemonHandle:
    daemon.write_config(f"programs:\n  app: {{command: {SLEEPER}, start_timeout: 0.1}}\n")
    daemon.start()
    daemon.token = (daemon.state_dir / "api-token").read_text().strip()  # type: ignore[attr-defined]
    return daemon


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and "src" not in a and a.get("type") != "application/json":
            self.inline.append(self.get_starttag_text() or tag)
        self.handlers += [f"{tag} {k}" for k in a if k.startswith("on") or k == "style"]


def test_every_response_has_a_strict_csp_and_pages_no_inline_script(web_daemon: DaemonHandle) -> None:
    port = web_daemon.port
    for path, who in [
        (p, w)
        for p in [*PAGES, "/static/app.js", "/favicon.ico", "/nope", "/metrics", "/api/status"]
        for w in ({}, web_daemon.bearer())
    ]:
        status, headers, body = request(port, "GET", path, headers={"Accept": "text/html", **who})
        csp = headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], path
        assert "frame-ancestors 'none'" in csp and headers["x-content-type-options"] == "nosniff", path
        if headers.get("content-type", "").startswith("text/html") and status < 400:
            parser = _Scripts()
            parser.feed(body.decode())
            assert parser.inline == [] and parser.handlers == [], (path, parser.inline, parser.handlers)


def test_unknown_host_names_are_refused_against_dns_rebinding(web_daemon: DaemonHandle) -> None:
    port = web_daemon.port
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.nip.io"):
        for path in ("/", "/api/status", "/logs/app", "/api/events", "/health"):
            status, _, body = request(port, "GET", path, headers={"Host": host})
            assert status == 421 and b"app" not in body, (host, path)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert request(port, "GET", "/api/status", headers={"Host": host, **web_daemon.bearer()})[0] == 200, host


def test_cross_origin_writes_are_refused_even_with_credentials(web_daemon: DaemonHandle) -> None:
    port, token = web_daemon.port, web_daemon.token  # type: ignore[attr-defined]
    browser = {"Cookie": f"foss_token={token}", "X-CSRF-Token": csrf_token(token)}
    for origin_headers in ({"Origin": "http://attacker.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        status, _, _ = request(port, "POST", "/api/commands/stop", {"names": ["app"]}, {**browser, **origin_headers})
        assert status == 403, origin_headers
    assert web_daemon.program("app")["state"] == "RUNNING"
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    status, _, body = request(port, "POST", "/api/commands/restart", {"names": ["app"]}, {**browser, **same})
    assert status == 200 and json.loads(body)["ok"], body
    # the cookie without the CSRF token, or with another value, changes nothing
    for bad in ({"Cookie": f"foss_token={token}"}, {"Cookie": f"foss_token={token}", "X-CSRF-Token": "0" * 64}):
        status, _, body = request(port, "POST", "/api/commands/stop", {"names": ["app"]}, {**bad, **same})
        assert status == 403 and "X-CSRF-Token header" in json.loads(body)["error"]["message"], body


def test_no_state_changes_on_get(web_daemon: DaemonHandle) -> None:
    port, token = web_daemon.port, web_daemon.token  # type: ignore[attr-defined]
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("/api/commands/stop?names=app", "/logout", "/api/commands/shutdown"):
        assert request(port, "GET", path, headers=auth)[0] == 405, path
    assert web_daemon.program("app")["state"] == "RUNNING" and web_daemon.ping()


def test_login_form_session_shown_and_logout(web_daemon: DaemonHandle) -> None:
    port, token = web_daemon.port, web_daemon.token  # type: ignore[attr-defined]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = request(port, "POST", "/login", b"token=wrong&next=/", form)
    assert status == 403 and b"not the token" in body
    status, headers, _ = request(port, "POST", "/login", f"token={token}&next=//evil.example".encode(), form)
    assert status == 303 and headers["location"] == "/" and "HttpOnly" in headers["set-cookie"]
    status, _, anonymous = request(port, "GET", "/", headers={"Accept": "text/html"})
    assert status == 401 and b'action="/login"' in anonymous  # the login page, coming back to /
    assert b"not logged in" in anonymous and b"Log out" not in anonymous and b"csrf-token" not in anonymous
    cookie = {"Cookie": f"foss_token={token}"}
    _, _, page = request(port, "GET", "/", headers={**cookie, "Accept": "text/html"})
    assert b"logged in" in page and b"Log out" in page and csrf_token(token).encode() in page
    assert request(port, "POST", "/logout", b"csrf=wrong", {**cookie, **form})[0] == 403
    status, headers, _ = request(port, "POST", "/logout", f"csrf={csrf_token(token)}".encode(), {**cookie, **form})
    assert status == 303 and 'foss_token=""' in headers["set-cookie"] and "Max-Age=0" in headers["set-cookie"]


def test_exposed_bind_needs_the_token_for_every_read(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  app: {{command: {SLEEPER}}}\n", extra="")
    text = daemon.config_path.read_text().replace(
        f"dashboard: {{port: {daemon.port}}}", f"dashboard: {{host: 0.0.0.0, port: {daemon.port}}}"
    )
    daemon.config_path.write_text(text)
    daemon.start()
    token = (daemon.state_dir / "api-token").read_text().strip()
    port = daemon.port
    for path in (
        "/",
        "/api/status",
        "/logs/app",
        "/logs/daemon?format=text",
        "/api/events",
        "/data-browser",
        "/metrics",
        "/chat?format=json",
        "/api/v1/openapi.json",
    ):
        status, headers, body = request(port, "GET", path)
        assert status == 401 and b"app" not in body, path
        assert headers["www-authenticate"].startswith("Bearer")
    status, _, body = request(port, "GET", "/health")
    assert status == 200 and json.loads(body) == {
        "ok": True,
        "status": "healthy",
        "phase": "ready",
        "problem_count": 0,
        "warning_count": 0,
        "programs": {"RUNNING": 1},
    }
    assert request(port, "GET", "/login", headers={"Accept": "text/html"})[0] == 200
    assert request(port, "GET", "/api/status", headers={"Authorization": f"Bearer {token}"})[0] == 200
    assert request(port, "GET", "/", headers={"Cookie": f"foss_token={token}", "Accept": "text/html"})[0] == 200
    assert request(port, "GET", "/api/status", headers={"Authorization": "Bearer wrong"})[0] == 401
    wait_for(lambda: "dashboard_exposed" in (daemon.state_dir / "foss-supervisor.log").read_text(), 5, "warning")


def test_malformed_requests_are_answered_and_kept_out_of_the_error_log(web_daemon: DaemonHandle) -> None:
    """A client's malformed request gets its 400; the daemon's log does not fill with errors for it
    (a log filter on "error" would otherwise show nothing else), but counts them in one info line."""
    import socket

    for _ in range(5):
        with socket.create_connection(("127.0.0.1", web_daemon.port), timeout=10) as s:
            s.sendall(b"GET /?" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert s.recv(200).split(b"\r\n")[0].endswith(b" 400 Bad Request")
    assert request(web_daemon.port, "GET", "/api/v1/health")[0] == 200

    def counted() -> bool:
        return '"http_requests_refused"' in web_daemon.cli("logs", "dashboard", "-n", "5000").stdout

    wait_for(counted, 10, "the refused requests counted in the log")
    text = web_daemon.cli("logs", "dashboard", "-n", "5000").stdout
    assert "Error handling request" not in text
