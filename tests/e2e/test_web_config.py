"""Configuration management over HTTP and in Chromium: the effective config with secrets redacted, the
file only with the token, an edit with an error refused and nothing changed, a good one saved and applied, an
empty one confirmed in the page first, and earlier versions listed, diffed and restored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import PY, DaemonHandle, command, request, viewer_headers, wait_for
from helpers.browser import Watched, shots_dir

SLEEPER = f"[{PY!r}, '-c', 'import time; time.sleep(300)']"


def running(d: DaemonHandle) -> set[str]:
    return {p["name"] for p in d.call("status")["programs"] if p["state"] == "RUNNING"}


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
    answer = command(d.port, "config_show", {}, viewer_headers(d.port))
    status, reply = answer.status, answer.json()
    env = reply["result"]["config"]["programs"]["app"]["env"]
    assert status == 200 and env["MODE"] == "fast" and env["API_TOKEN"] != "hunter2-secret"
    argv = reply["result"]["config"]["programs"]["cli"]["command"]
    assert "pw-secret" not in json.dumps(argv) and argv[-2:] == ["--mode", "fast"]
    assert argv[3:7] == ["--password=***", "--api-token", "***", "DB_PASSWORD=***"]
    page = request(d.port, "GET", "/config", headers={"Accept": "text/html", **viewer_headers(d.port)}).body
    assert b"hunter2-secret" not in page and b"pw-secret" not in page and b"fast" in page and b"Log in" in page
    assert command(d.port, "config_file", {}, viewer_headers(d.port))[0] == 403
    assert command(d.port, "config_write", {"text": "programs: {}", "dry_run": True}, viewer_headers(d.port))[0] == 403
    answer = command(d.port, "config_file", {}, {"Authorization": f"Bearer {d.token}"})  # type: ignore[attr-defined]
    status, reply = answer.status, answer.json()
    assert status == 200 and "hunter2-secret" in reply["result"]["text"]


def test_a_bad_edit_changes_nothing_and_a_good_one_is_applied(configured: DaemonHandle) -> None:
    d, token = configured, configured.token  # type: ignore[attr-defined]
    owner = {"Authorization": f"Bearer {token}"}
    before = d.config_path.read_text()
    bad = before + "  broken: {command: 42}\n"
    answer = command(d.port, "config_write", {"text": bad, "dry_run": False}, owner)
    status, reply = answer.status, answer.json()
    assert status == 409 and "nothing changed" in reply["error"]["message"]
    line = len(before.splitlines()) + 1  # file:line:key of the bad line
    assert f"config.yaml:{line}: programs.broken.command" in reply["error"]["message"]
    assert d.config_path.read_text() == before and not d.config_path.with_name("config.yaml.history").exists()
    good = before + f"  extra: {{command: {SLEEPER}, start_timeout: 0.1}}\n"
    answer = command(d.port, "config_write", {"text": good, "dry_run": True}, owner)
    status, reply = answer.status, answer.json()
    assert status == 200 and reply["result"]["plan"]["added"] == ["extra"] and d.config_path.read_text() == before
    answer = command(d.port, "config_write", {"text": good, "dry_run": False}, owner)
    status, reply = answer.status, answer.json()
    assert status == 200 and reply["result"]["plan"]["added"] == ["extra"] and reply["result"]["generation"] == 1
    assert d.config_path.read_text() == good
    assert (d.config_path.with_name("config.yaml.history") / "1.yaml").read_text() == before
    wait_for(lambda: d.program("extra")["state"] == "RUNNING", 15, "the new program running")


def test_config_editor_in_chromium(configured: DaemonHandle, browser: Any, tmp_path: Path) -> None:
    d = configured
    before = d.config_path.read_text()
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
    # a daemon-level setting is checked with a warning: it waits for a daemon restart
    saved = d.config_path.read_text()
    w.page.fill("#config-text", saved + "log: {backups: 7}\n")
    w.page.click("#config-check")
    w.page.locator("#config-warn", has_text="Changed log.backups: the daemon keeps the running values").wait_for(
        timeout=10_000
    )
    # an empty save asks first, in the page, saying what would happen; Cancel changes nothing
    w.page.fill("#config-text", "# nothing\n")
    w.page.click("#config-save")
    question = w.page.locator("#config-confirm-text")
    question.wait_for(timeout=10_000)
    assert "stop every running program (3: app, cli, extra)" in question.inner_text()
    assert "empty the config file" in question.inner_text()
    w.page.click("#config-confirm-no")
    w.page.locator("#config-out", has_text="cancelled: nothing changed").wait_for(timeout=10_000)
    assert d.config_path.read_text() == saved and d.program("app")["state"] == "RUNNING"
    w.page.click("#config-save")
    w.page.click("#config-confirm-yes")
    wait_for(lambda: d.config_path.read_text() == "# nothing\n", 20, "the confirmed save")
    wait_for(lambda: d.call("status")["programs"] == [], 20, "every program stopped")
    # the versions it replaced are listed; a diff shows; a restore asks, then brings them back
    w.page.locator("#config-generations button[aria-label='Diff generation 2']").wait_for(timeout=10_000)
    w.page.click("#config-generations button[aria-label='Diff generation 2']")
    w.page.locator("#config-diff", has_text="-  extra: ").wait_for(timeout=10_000)
    w.page.click("#config-generations button[aria-label='Restore generation 2']")
    w.page.locator("#config-confirm-text", has_text="Restore generation 2?").wait_for(timeout=10_000)
    assert "It would add 3" in w.page.inner_text("#config-confirm-text")
    assert d.config_path.read_text() == "# nothing\n"
    w.page.click("#config-confirm-yes")
    wait_for(lambda: d.config_path.read_text() == saved, 20, "generation 2 restored")
    wait_for(lambda: running(d) == {"app", "cli", "extra"}, 20, "the restored programs running")
    w.page.locator("#config-generations button[aria-label='Diff generation 3']").wait_for(timeout=10_000)
    assert "extra:" in w.page.input_value("#config-text")
    w.page.screenshot(path=str(shots_dir(tmp_path) / "config-editor-1280.png"), full_page=True)
    w.errors = [e for e in w.errors if "409" not in e]  # the refused saves
    assert w.errors == [], w.errors
    w.close()
