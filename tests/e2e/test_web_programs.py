"""The Programs table in real headless Chromium: buttons only where they make sense, a state filter that
survives live refreshes, group and bulk actions, and cards on a 400 px screen with every button in reach."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import PY, DaemonHandle, wait_for
from helpers.browser import Watched, shots_dir

SLEEP = f"[{PY!r}, '-c', 'import time; time.sleep(300)']"


@pytest.fixture
def fleet(daemon: DaemonHandle) -> DaemonHandle:
    daemon.write_config(f"""programs:
  api: {{command: {SLEEP}, start_timeout: 0.1}}
  worker: {{command: {SLEEP}, start_timeout: 0.1}}
  idle: {{command: {SLEEP}, autostart: false}}
  broken: {{command: [{PY!r}, '-c', 'raise SystemExit(1)'], start_retries: 0, start_timeout: 0.5}}
groups:
  backend: [api, worker]
""")
    daemon.start()
    wait_for(lambda: daemon.program("broken")["state"] == "FATAL", 30, "broken FATAL")
    return daemon


def _row(page: Any, name: str) -> Any:
    return page.locator(f'tr[data-program="{name}"]')


def test_buttons_filter_and_group_actions(fleet: DaemonHandle, browser: Any, tmp_path: Path) -> None:
    w = Watched(browser, 1280, session=fleet)
    try:
        w.page.goto(f"http://127.0.0.1:{fleet.port}/")
        w.page.locator("#live.ok").wait_for(timeout=10_000)
        button = '{} button[data-command="{}"]'
        assert w.page.locator(button.format('tr[data-program="api"]', "start")).is_disabled()
        assert w.page.locator(button.format('tr[data-program="api"]', "stop")).is_enabled()
        assert w.page.locator(button.format('tr[data-program="idle"]', "stop")).is_disabled()
        assert w.page.locator(button.format('tr[data-program="idle"]', "start")).is_enabled()
        w.page.screenshot(path=str(shots_dir(tmp_path) / "programs-1280.png"), full_page=True)

        w.page.select_option("#state-filter", "unwanted")
        assert [r for r in ("api", "worker", "idle", "broken") if _row(w.page, r).is_visible()] == ["broken"]
        before = {n: fleet.program(n)["pid"] for n in ("api", "worker")}
        w.page.click('button[aria-label="Restart group backend"]')
        w.page.locator("#action-message", has_text="done").wait_for(timeout=20_000)
        wait_for(lambda: all(fleet.program(n)["pid"] not in (None, before[n]) for n in before), 20, "both restarted")
        api_pid = str(fleet.program("api")["pid"])
        w.page.locator('tr[data-program="api"] td.num', has_text=api_pid).wait_for(state="attached")
        assert w.page.locator("#state-filter").input_value() == "unwanted"  # the table was re-rendered: kept
        assert not _row(w.page, "api").is_visible() and _row(w.page, "broken").is_visible()

        w.page.once("dialog", lambda dialog: dialog.accept())  # "Stop every program?"
        w.page.select_option("#state-filter", "")
        w.page.click('button[aria-label="Stop every program"]')
        wait_for(lambda: all(fleet.program(n)["state"] == "STOPPED" for n in ("api", "worker")), 20, "all stopped")
        w.page.locator('tr[data-program="api"][data-state="STOPPED"]').wait_for(timeout=10_000)
        assert w.page.locator(button.format('tr[data-program="api"]', "start")).is_enabled()
        assert w.errors == [], w.errors
    finally:
        w.close()


def test_at_400_px_each_program_is_a_card_with_its_buttons_on_screen(
    fleet: DaemonHandle, browser: Any, tmp_path: Path
) -> None:
    w = Watched(browser, 400, session=fleet)
    try:
        w.page.goto(f"http://127.0.0.1:{fleet.port}/")
        w.page.locator("#live.ok").wait_for(timeout=10_000)
        overflow = w.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
        for name in ("api", "worker", "idle", "broken"):
            for action in ("start", "stop", "restart"):
                button = _row(w.page, name).locator(f'button[data-command="{action}"]')
                # a live refresh may replace the row between finding it and measuring it: measure again
                box = wait_for(button.bounding_box, 10, f"{name}'s {action} button laid out")
                assert box["x"] >= 0 and box["x"] + box["width"] <= 400, (name, action, box)
        w.page.screenshot(path=str(shots_dir(tmp_path) / "programs-400.png"), full_page=True)
        assert w.errors == [], w.errors
    finally:
        w.close()
