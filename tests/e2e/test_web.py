"""The dashboard over real HTTP against a real daemon: auth, CSRF, SSE, metrics, escaping, and Chromium."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request

import pytest
from helpers import PY, DaemonHandle, request, wait_for

from foss_supervisor.web.auth import csrf_token

SLEEPER = f"[{PY!r}, '-c', 'import time; time.sleep(300)']"


@pytest.fixture
def web_daemon(daemon: DaemonHandle) -> DaemonHandle:
    daemon.write_config(f"""programs:
  app: {{command: {SLEEPER}, start_timeout: 0.1}}
  weird: {{command: ["/nonexistent/<script>alert(1)</script>"], start_retries: 0}}
""")
    daemon.start()
    wait_for(lambda: daemon.program("weird")["state"] == "FATAL", 10, "weird FATAL")
    daemon.token = (daemon.state_dir / "api-token").read_text().strip()  # type: ignore[attr-defined]
    return daemon


def test_token_file_is_private(web_daemon: DaemonHandle) -> None:
    assert (web_daemon.state_dir / "api-token").stat().st_mode & 0o077 == 0


def test_mutating_commands_need_the_token(web_daemon: DaemonHandle) -> None:
    port, token = web_daemon.port, web_daemon.token  # type: ignore[attr-defined]
    status, _, body = request(port, "POST", "/api/commands/stop", {"names": ["app"]})
    assert status == 401 and b"api-token" in body  # no token at all: not even a read
    # the cookie alone (what a forged cross-site form would carry) is not enough
    status, _, _ = request(port, "POST", "/api/commands/stop", {"names": ["app"]}, {"Cookie": f"foss_token={token}"})
    assert status == 403
    assert web_daemon.program("app")["state"] == "RUNNING"
    # the old constant header is no CSRF token
    status, _, _ = request(
        port, "POST", "/api/commands/stop", {"names": ["app"]}, {"Cookie": f"foss_token={token}", "X-Foss-Request": "1"}
    )
    assert status == 403
    status, _, body = request(
        port,
        "POST",
        "/api/commands/stop",
        {"names": ["app"]},
        {"Cookie": f"foss_token={token}", "X-CSRF-Token": csrf_token(token)},
    )
    assert status == 200 and json.loads(body)["result"][0]["state"] == "STOPPED"
    status, _, body = request(
        port, "POST", "/api/commands/start", {"names": ["app"]}, {"Authorization": f"Bearer {token}"}
    )
    assert status == 200 and json.loads(body)["result"][0]["state"] == "RUNNING"
    # reads need a token too; errors are JSON with a 4xx status
    assert request(port, "POST", "/api/commands/status")[0] == 401
    assert request(port, "POST", "/api/commands/status", headers=web_daemon.bearer())[0] == 200
    status, _, body = request(port, "POST", "/api/commands/nope", headers=web_daemon.bearer())
    assert status == 404 and json.loads(body)["error"]["type"] == "ProtocolError"
    status, _, body = request(port, "POST", "/api/commands/logs", {"names": ["app"], "lines": "x"}, web_daemon.bearer())
    assert status == 400 and "must be int" in json.loads(body)["error"]["message"]


def test_login_sets_a_strict_httponly_cookie_and_only_redirects_locally(web_daemon: DaemonHandle) -> None:
    port, token = web_daemon.port, web_daemon.token  # type: ignore[attr-defined]
    status, headers, _ = request(port, "GET", f"/login?token={token}&next=/chat")
    assert status == 303 and headers["location"] == "/chat"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert request(port, "GET", f"/login?token={token}&next=//evil.example/")[1]["location"] == "/"
    assert request(port, "GET", "/login?token=wrong")[0] == 403


def test_pages_escape_what_programs_report(web_daemon: DaemonHandle) -> None:
    status, headers, body = request(web_daemon.port, "GET", "/", headers=web_daemon.bearer())
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"<script>alert(1)</script>" not in body
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_every_page_has_a_json_twin(web_daemon: DaemonHandle) -> None:
    port, owner = web_daemon.port, web_daemon.bearer()
    _, _, body = request(port, "GET", "/?format=json", headers=owner)
    data = json.loads(body)
    assert {p["name"] for p in data["status"]["programs"]} == {"app", "weird"}
    assert data["resources"]["cpus"] >= 1
    status, _, body = request(port, "GET", "/health", headers={"Accept": "text/html", **owner})
    assert status == 503 and b"weird is FATAL" in body and b"<html" in body
    status, _, body = request(port, "GET", "/health", headers=owner)
    assert status == 503 and json.loads(body)["problems"][0].startswith("weird is FATAL")
    status, _, body = request(port, "GET", "/health?format=json", headers={"Accept": "text/html", **owner})
    assert status == 503 and json.loads(body)["status"] == "unhealthy"  # the page's "as JSON" link
    _, _, body = request(port, "GET", "/chat?format=json", headers=owner)
    assert "reload" in json.loads(body) and json.loads(body)["stop"]["mutating"] is True
    status, _, body = request(port, "GET", "/favicon.ico")
    assert status == 200 and body.startswith(b"<svg")


def test_metrics_for_prometheus(web_daemon: DaemonHandle) -> None:
    status, headers, body = request(web_daemon.port, "GET", "/metrics", headers=web_daemon.bearer())
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'foss_supervisor_program_state{program="app",state="RUNNING"} 1.0' in text
    assert 'foss_supervisor_program_state{program="weird",state="FATAL"} 1.0' in text
    assert "foss_supervisor_ready 1.0" in text
    assert "foss_supervisor_process_resident_memory_bytes" in text


def test_server_sent_events_carry_state_changes(web_daemon: DaemonHandle) -> None:
    lines: list[str] = []
    got = threading.Event()

    def read() -> None:
        url = f"http://127.0.0.1:{web_daemon.port}/api/events"
        with urllib.request.urlopen(urllib.request.Request(url, headers=web_daemon.bearer()), timeout=15) as resp:
            for raw in resp:
                line = raw.decode().strip()
                lines.append(line)
                if line.startswith("data:") and '"STOPPED"' in line:
                    got.set()
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_for(lambda: any(line.startswith("retry:") for line in lines), 10, "stream open")
    web_daemon.call("stop", names=["app"])
    assert got.wait(10)
    event = json.loads(next(x for x in lines if '"STOPPED"' in x)[5:])
    assert event["type"] == "StateChanged" and event["name"] == "app" and event["old"] == "STOPPING"


def test_health_names_a_crash_loop_as_a_problem(daemon: DaemonHandle) -> None:
    daemon.write_config(f"""programs:
  app: {{command: {SLEEPER}, start_timeout: 0.1}}
  looper: {{command: [{PY!r}, '-c', 'import sys; sys.exit(3)'], start_timeout: 1, start_retries: 1000,
            autostart: false}}
""")
    daemon.start()
    owner = daemon.bearer()
    assert request(daemon.port, "GET", "/health")[0] == 200
    with contextlib.suppress(Exception):  # start waits for RUNNING, which a crash loop never reaches
        daemon.call("start", names=["looper"], wait_s=0.5)
    body = wait_for(
        lambda: (r := request(daemon.port, "GET", "/health", headers=owner))[0] == 503 and json.loads(r[2]),
        15,
        "unhealthy",
    )
    assert body["ok"] is False and body["status"] == "unhealthy"
    assert body["problems"][0].startswith("looper is crash-looping (BACKOFF)")
    # the page as well (waited for: between two backoffs the looper is STARTING, not crash-looping, for a moment)
    html = wait_for(
        lambda: (
            b"crash-looping"
            in (h := request(daemon.port, "GET", "/health", headers={"Accept": "text/html", **owner})[2])
            and h
        ),
        15,
        "the page naming the crash loop",
    )
    assert b"unhealthy" in html
