"""The dashboard over real HTTP against a real daemon: auth, CSRF, SSE, metrics, escaping, and Chromium."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from conftest import PY, DaemonHandle, wait_for

SLEEPER = f"[{PY!r}, '-c', 'import time; time.sleep(300)']"


def request(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


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
    assert status == 403 and b"API token" in body
    # the cookie alone (what a forged cross-site form would carry) is not enough
    status, _, _ = request(port, "POST", "/api/commands/stop", {"names": ["app"]}, {"Cookie": f"foss_token={token}"})
    assert status == 403
    assert web_daemon.program("app")["state"] == "RUNNING"
    status, _, body = request(port, "POST", "/api/commands/stop", {"names": ["app"]},
                              {"Cookie": f"foss_token={token}", "X-Foss-Request": "1"})  # fmt: skip
    assert status == 200 and json.loads(body)["result"][0]["state"] == "STOPPED"
    status, _, body = request(port, "POST", "/api/commands/start", {"names": ["app"]},
                              {"Authorization": f"Bearer {token}"})  # fmt: skip
    assert status == 200 and json.loads(body)["result"][0]["state"] == "RUNNING"
    # reads need nothing; errors are JSON with a 4xx status
    assert request(port, "POST", "/api/commands/status")[0] == 200
    status, _, body = request(port, "POST", "/api/commands/nope")
    assert status == 404 and json.loads(body)["error"]["type"] == "ProtocolError"
    status, _, body = request(port, "POST", "/api/commands/logs", {"names": ["app"], "lines": "x"})
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
    status, headers, body = request(web_daemon.port, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"<script>alert(1)</script>" not in body
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_every_page_has_a_json_twin(web_daemon: DaemonHandle) -> None:
    port = web_daemon.port
    _, _, body = request(port, "GET", "/?format=json")
    data = json.loads(body)
    assert {p["name"] for p in data["status"]["programs"]} == {"app", "weird"}
    assert data["resources"]["cpus"] >= 1
    status, _, body = request(port, "GET", "/health", headers={"Accept": "text/html"})
    assert status == 503 and b"weird is FATAL" in body and b"<html" in body
    status, _, body = request(port, "GET", "/health")
    assert status == 503 and json.loads(body)["problems"][0].startswith("weird is FATAL")
    status, _, body = request(port, "GET", "/health?format=json", headers={"Accept": "text/html"})
    assert status == 503 and json.loads(body)["status"] == "unhealthy"  # the page's "as JSON" link
    _, _, body = request(port, "GET", "/chat?format=json")
    assert "reload" in json.loads(body) and json.loads(body)["stop"]["mutating"] is True
    status, _, body = request(port, "GET", "/favicon.ico")
    assert status == 200 and body.startswith(b"<svg")


def test_metrics_for_prometheus(web_daemon: DaemonHandle) -> None:
    status, headers, body = request(web_daemon.port, "GET", "/metrics")
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
        with urllib.request.urlopen(f"http://127.0.0.1:{web_daemon.port}/api/events", timeout=15) as resp:
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


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is installed by .ci/run")
def test_dashboard_in_headless_chromium(web_daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    port, token = web_daemon.port, web_daemon.token  # type: ignore[attr-defined]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--disable-gpu"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"http://127.0.0.1:{port}/")
            assert page.locator('tr[data-program="app"] .state').inner_text().strip().endswith("RUNNING")
            page.wait_for_selector("#live.ok", timeout=10_000)
            web_daemon.call("stop", names=["app"])  # the page learns it over SSE, without a reload
            page.wait_for_function(
                "document.querySelector('tr[data-program=\"app\"] .state').innerText.includes('STOPPED')",
                timeout=10_000,
            )
            page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
            # log in, then run a mutating command from the console
            page.goto(f"http://127.0.0.1:{port}/login?token={token}&next=/chat")
            page.select_option("#console-cmd", "start")
            page.fill("#console-args", '{"names": ["app"]}')
            page.click("#console-form button")
            page.wait_for_function("document.getElementById('console-out').innerText.includes('RUNNING')",
                                   timeout=15_000)  # fmt: skip
            assert web_daemon.program("app")["state"] == "RUNNING"
            assert errors == []
        finally:
            browser.close()
