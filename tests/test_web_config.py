"""Configuration management over HTTP and in Chromium: the effective config with secrets redacted, the
file only with the token, an edit with an error refused and nothing changed, a good one saved and applied."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from conftest import PY, DaemonHandle, viewer_headers, wait_for
from test_web_browser import CHROMIUM, Watched

SLEEPER = f"[{PY!r}, '-c', 'import time; time.sleep(300)']"


def post(port: int, name: str, args: dict[str, Any], token: str = "") -> tuple[int, dict[str, Any]]:
    """Run a command over HTTP with ``token`` (default: the read-only viewer token)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"} if token else viewer_headers(port)
    conn.request("POST", f"/api/commands/{name}", body=json.dumps(args).encode(), headers=headers)
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    return resp.status, body


@pytest.fixture
def configured(daemon: DaemonHandle) -> DaemonHandle:
    daemon.write_config(f"""programs:
  app: {{command: {SLEEPER}, start_timeout: 0.1, env: {{API_TOKEN: hunter2-secret, MODE: fast}}}}
  cli: {{command: [{PY!r}, '-c', 'import time; time.sleep(300)', '--password=pw-secret-1', '--api-token',
                   'pw-secret-2', 'DB_PASSWORD=pw-secret-3', '--mode', 'fast'], start_timeout: 0.1}}
""")
    daemon.start()
    daemon.token = (daemon.state_dir / "api-token").read_text().strip()  # type: ignore[attr-defined]
    return daemon


def test_effective_config_is_redacted_and_the_file_needs_the_token(configured: DaemonHandle) -> None:
    d = configured
    status, reply = post(d.port, "config_show", {})
    env = reply["result"]["config"]["programs"]["app"]["env"]
    assert status == 200 and env["MODE"] == "fast" and env["API_TOKEN"] != "hunter2-secret"
    argv = reply["result"]["config"]["programs"]["cli"]["command"]
    assert "pw-secret" not in json.dumps(argv) and argv[-2:] == ["--mode", "fast"]
    assert argv[3:7] == ["--password=***", "--api-token", "***", "DB_PASSWORD=***"]
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    conn.request("GET", "/config", headers={"Accept": "text/html", **viewer_headers(d.port)})
    page = conn.getresponse().read()
    conn.close()
    assert b"hunter2-secret" not in page and b"pw-secret" not in page and b"fast" in page and b"Log in" in page
    assert post(d.port, "config_file", {})[0] == 403
    assert post(d.port, "config_write", {"text": "programs: {}", "dry_run": True})[0] == 403
    status, reply = post(d.port, "config_file", {}, d.token)  # type: ignore[attr-defined]
    assert status == 200 and "hunter2-secret" in reply["result"]["text"]


def test_a_bad_edit_changes_nothing_and_a_good_one_is_applied(configured: DaemonHandle) -> None:
    d, token = configured, configured.token  # type: ignore[attr-defined]
    before = d.config_path.read_text()
    bad = before + "  broken: {command: 42}\n"
    status, reply = post(d.port, "config_write", {"text": bad, "dry_run": False}, token)
    assert status == 409 and "nothing changed" in reply["error"]["message"]
    line = len(before.splitlines()) + 1  # file:line:key of the bad line
    assert f"config.yaml:{line}: programs.broken.command" in reply["error"]["message"]
    assert d.config_path.read_text() == before and not d.config_path.with_name("config.yaml.previous").exists()
    good = before + f"  extra: {{command: {SLEEPER}, start_timeout: 0.1}}\n"
    status, reply = post(d.port, "config_write", {"text": good, "dry_run": True}, token)
    assert status == 200 and reply["result"]["plan"]["added"] == ["extra"] and d.config_path.read_text() == before
    status, reply = post(d.port, "config_write", {"text": good, "dry_run": False}, token)
    assert status == 200 and reply["result"]["plan"]["added"] == ["extra"]
    assert d.config_path.read_text() == good
    assert d.config_path.with_name("config.yaml.previous").read_text() == before
    wait_for(lambda: d.program("extra")["state"] == "RUNNING", 15, "the new program running")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: .ci/run installs Debian's chromium")
def test_config_editor_in_chromium(configured: DaemonHandle) -> None:
    from playwright.sync_api import sync_playwright

    d = configured
    before = d.config_path.read_text()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--disable-gpu"])
        try:
            w = Watched(browser)
            w.page.goto(f"http://127.0.0.1:{d.port}/login?token={d.token}&next=/config")  # type: ignore[attr-defined]
            wait_for(lambda: "hunter2-secret" in w.page.input_value("#config-text"), 10, "the file loaded")
            w.page.fill("#config-text", before + "  broken: {command: 42}\n")
            w.page.click("#config-save")
            w.page.locator("#config-out.bad", has_text="nothing changed").wait_for(timeout=10_000)
            assert d.config_path.read_text() == before
            w.page.fill("#config-text", before + f"  extra: {{command: {SLEEPER}, start_timeout: 0.1}}\n")
            w.page.click("#config-check")
            w.page.locator("#config-out", has_text='"extra"').wait_for(timeout=10_000)
            assert d.config_path.read_text() == before
            w.page.click("#config-save")
            w.page.locator("#config-out", has_text='"dry_run": false').wait_for(timeout=20_000)
            wait_for(lambda: d.program("extra")["state"] == "RUNNING", 15, "the new program running")
            w.errors = [e for e in w.errors if "409" not in e]  # the refused save
            assert w.errors == [], w.errors
            w.close()
        finally:
            browser.close()
