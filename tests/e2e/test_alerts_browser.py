"""The /alerts page in real headless Chromium: an open incident is acknowledged, silenced and its silence lifted
with the page's own buttons, each click reaching the daemon (its ``alerts`` reply) and the page redrawn live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import PY, DaemonHandle, wait_for
from helpers.browser import Watched, shots_dir


def test_acknowledge_silence_and_lift_from_the_alerts_page(daemon: DaemonHandle, browser: Any, tmp_path: Path) -> None:
    daemon.write_config(
        "programs:\n"
        f"  broken: {{command: [{PY!r}, '-c', 'raise SystemExit(1)'], start_retries: 0, start_timeout: 0.5}}\n"
    )
    daemon.start()
    key = "program:broken:fatal"
    wait_for(lambda: [i["key"] for i in daemon.call("alerts")["open"]] == [key], 30, "the FATAL alert open")
    incident = daemon.call("alerts")["open"][0]
    w = Watched(browser, 1280, session=daemon)
    try:
        w.page.goto(f"http://127.0.0.1:{daemon.port}/alerts")
        w.page.locator("#live.ok").wait_for(timeout=10_000)
        row = f'tr[data-alert="{incident["id"]}"]'
        w.page.click(f'button[aria-label="Acknowledge alert {incident["id"]}"]')
        w.page.locator(row, has_text="acknowledged").wait_for(timeout=10_000)
        assert daemon.call("alerts")["open"][0]["acked"] is True
        assert w.page.locator(f"{row} button[data-command=alert_ack]").count() == 0  # done: no second button

        w.page.click(f'button[aria-label="Silence 2h: alert {incident["id"]}"]')
        w.page.locator(f'li[data-silence="{key}"]').wait_for(timeout=10_000)
        reply = daemon.call("alerts")
        assert [s["key"] for s in reply["silences"]] == [key] and reply["open"][0]["silenced"] is True
        w.page.screenshot(path=str(shots_dir(tmp_path) / "alerts-1280.png"), full_page=True)

        w.page.click(f'button[aria-label="Lift the silence of {key}"]')
        w.page.locator(f'li[data-silence="{key}"]').wait_for(state="detached", timeout=10_000)
        assert daemon.call("alerts")["silences"] == []
        w.page.locator(f'{row} button[data-command="alert_silence"]').first.wait_for(timeout=10_000)
        assert w.errors == [], w.errors
    finally:
        w.close()
