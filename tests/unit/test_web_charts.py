"""``/api/v1/charts`` in-process (the real app under aiohttp's test client over a real, unstarted core): the 1 h
range from the dashboard's own samples, 24 h and 7 d from journal files in the temp state dir, every input
bounded."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers.webcore import LocalCore

from foss_supervisor.base.tokens import load_or_create_token
from foss_supervisor.config import parse_config
from foss_supervisor.daemon import Daemon
from foss_supervisor.web.app import create_app

CONFIG = "state_dir: {state}\nprograms:\n  api: {{command: [api]}}\n"
DAY = 86400.0


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient, dict[str, str], Path]]:
    state = tmp_path / "state"
    state.mkdir()
    daemon = Daemon(parse_config(CONFIG.format(state=state), tmp_path / "config.yaml"), None)
    token = load_or_create_token(state / "api-token")
    core = LocalCore(daemon, daemon.events)
    app = create_app(core, token, dashboard_host="127.0.0.1", history_dir=state / "history")
    c = TestClient(TestServer(app))
    await c.start_server()
    try:
        yield c, {"Authorization": f"Bearer {token}"}, state / "history"
    finally:
        await c.close()
        await core.close()


def journal(folder: Path, samples: list[tuple[float, float, float]]) -> None:
    """ResourcesSampled lines (at, host cpu %, api's rss MiB) into their day's files, as the daemon writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    for at, cpu, rss in samples:
        day = time.strftime("%Y-%m-%d", time.gmtime(at))
        api = {"name": "api", "pid": 7, "processes": 1, "cpu_percent": 1.0, "rss_bytes": int(rss * 2**20)}
        event = {
            "at": at,
            "type": "ResourcesSampled",
            "seq": 1,
            "boot": "b",
            "services": [],
            "worker": None,
            "programs": [api],
            "daemon": {"pid": 1, "rss_bytes": 30 << 20},
            "host": {"cpu_percent": cpu, "memory_percent": 20.0},
        }
        with (folder / f"events-{day}.jsonl").open("a") as f:
            f.write(json.dumps(event, separators=(",", ":")) + "\n")


def values(series: list[Any]) -> list[Any]:
    return [v for v in series if v is not None]


async def test_the_7d_chart_holds_samples_from_days_ago(client: tuple[TestClient, dict[str, str], Path]) -> None:
    c, owner, history = client
    now = time.time()
    journal(history, [(now - 4 * DAY, 80.0, 100.0), (now - 2 * DAY, 20.0, 300.0)])
    async with c.get("/api/v1/charts?range=7d", headers=owner) as resp:
        assert resp.status == 200
        week = await resp.json()
    assert week["range"] == "7d" and len(week["t"]) == 300 and values(week["cpu"]) == [80.0, 20.0]
    assert values(week["programs"]["api"]["rss"]) == [100.0, 300.0]
    async with c.get("/api/v1/charts?range=24h&program=api", headers=owner) as resp:
        day = await resp.json()
    assert values(day["cpu"]) == [] and day["programs"] == {}  # nothing in the last 24 h


async def test_the_1h_range_is_the_dashboards_own_samples(client: tuple[TestClient, dict[str, str], Path]) -> None:
    c, owner, _ = client
    async with c.get("/api/v1/charts", headers=owner) as resp:
        assert resp.status == 200
        hour = await resp.json()
    assert hour["range"] == "1h" and hour["bucket_s"] == 5.0 and set(hour) >= {"t", "cpu", "mem", "rss", "programs"}


@pytest.mark.parametrize(
    "query",
    [
        "range=30d",
        "range=",
        "range=7D",
        "range=7d%0A",
        "range=" + "7" * 5000,
        "range=7d&program=",
        "range=7d&program=-api",
        "range=7d&program=a%20b",
        "range=7d&program=..%2Fx",
        "range=1h&program=" + "a" * 65,
        "range=24h&program=%C3%BC",
    ],
)
async def test_anything_but_a_range_and_a_program_name_is_a_400(
    client: tuple[TestClient, dict[str, str], Path], query: str
) -> None:
    c, owner, _ = client
    async with c.get(f"/api/v1/charts?{query}", headers=owner) as resp:
        assert resp.status == 400, query


async def test_charts_need_a_token(client: tuple[TestClient, dict[str, str], Path]) -> None:
    c, _, _ = client
    async with c.get("/api/v1/charts?range=7d") as resp:
        assert resp.status == 401
