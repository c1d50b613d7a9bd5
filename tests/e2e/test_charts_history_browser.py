"""The overview's range switch draws 7 days from the daemon's journal, in real headless Chromium against a
real daemon with no pipelines (so no DuckDB worker): samples written into the temp state dir's journal
days before the daemon starts are the points of the 7 d charts, and of ``/api/v1/charts?range=7d``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from helpers import PY, DaemonHandle, get
from helpers.browser import Watched

DAYS_AGO = (5.0, 4.0, 3.0, 2.0)  # one sample each: four buckets of the 7 d chart, none of the 24 h one


def write_old_journal(state_dir: Path) -> None:
    """ResourcesSampled lines as the daemon's journal keeps them, dated days ago, each in its day's file."""
    history = state_dir / "history"
    history.mkdir(parents=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    now = time.time()
    for n, days in enumerate(DAYS_AGO):
        at = now - days * 86400
        app = {"name": "app", "pid": 4000 + n, "processes": 1, "rss_bytes": (100 + n) << 20, "cpu_percent": 1.0}
        event = {
            "at": at,
            "type": "ResourcesSampled",
            "seq": n + 1,
            "boot": "old",
            "programs": [app],
            "services": [],
            "daemon": {"pid": 1, "processes": 1, "rss_bytes": 30 << 20, "cpu_percent": 0.1},
            "worker": None,
            "host": {"cpu_percent": 10.0 * (n + 1), "memory_percent": 50.0, "disk_percent": 20.0},
        }
        path = history / f"events-{time.strftime('%Y-%m-%d', time.gmtime(at))}.jsonl"
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event, separators=(",", ":")) + "\n")
        path.chmod(0o600)


def test_the_7d_range_draws_the_journals_days_old_samples(daemon: DaemonHandle, browser: Any) -> None:
    write_old_journal(daemon.state_dir)
    daemon.write_config(
        f"programs:\n  app: {{command: [{PY!r}, '-c', 'import time; time.sleep(300)'], start_timeout: 0.1}}\n",
        extra="history: {sample_interval: 0}",  # no new samples: the journal's old ones are all there is
    )
    daemon.start()
    api = get(daemon.port, "/api/v1/charts?range=7d")
    assert api.status == 200
    week = json.loads(api.body)
    assert [v for v in week["cpu"] if v is not None] == [10.0, 20.0, 30.0, 40.0]
    assert [v for v in week["programs"]["app"]["rss"] if v is not None] == [100.0, 101.0, 102.0, 103.0]
    w = Watched(browser, session=daemon)
    try:
        w.page.goto(f"http://127.0.0.1:{daemon.port}/")
        w.page.locator("#live.ok").wait_for(timeout=10_000)
        w.page.click('#chart-range button[data-range="7d"]')
        w.page.locator('#chart-range[data-shown="7d"]').wait_for(timeout=15_000)
        cpu = w.page.locator('.kpis .spark[data-chart="cpu"]')
        cpu.locator("canvas").wait_for(timeout=10_000)  # drawn by uPlot from the journal's four points
        assert cpu.get_attribute("data-points") == "4"
        assert "between 10 and 40" in (cpu.get_attribute("aria-label") or "")
        assert w.page.locator('#chart-range button[data-range="7d"]').get_attribute("aria-pressed") == "true"
        assert w.page.locator('.spark[data-chart="rss"][data-program="app"]').get_attribute("data-points") == "4"
        w.page.click('#chart-range button[data-range="24h"]')
        w.page.locator('#chart-range[data-shown="24h"]').wait_for(timeout=15_000)
        assert cpu.get_attribute("data-points") == "0"  # nothing in the last 24 h: an empty box
        assert w.errors == [], w.errors
    finally:
        w.close()
