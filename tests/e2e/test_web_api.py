"""The machine side of the dashboard against a real daemon: the SSE stream resumes by Last-Event-ID, the
overview carries its samples, /health follows a change at once (the OpenAPI description, in-process:
tests/unit/test_web_views.py)."""

from __future__ import annotations

import html
import http.client
import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest
from helpers import PY, DaemonHandle, get, request, wait_for

SLEEPER = f"[{PY!r}, '-c', 'import time; time.sleep(300)']"


@pytest.fixture
def web_daemon(daemon: DaemonHandle) -> DaemonHandle:
    daemon.write_config(f"programs:\n  app: {{command: {SLEEPER}, start_timeout: 0.1}}\n")
    daemon.start()
    return daemon


def read_events(
    d: DaemonHandle, until: str | Callable[[list[dict[str, str]]], bool], headers: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """SSE frames (id, event, data) up to and including the first whose text holds ``until`` (or after which
    ``until(frames)`` holds)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=15)
    conn.request("GET", "/api/events", headers={**d.bearer(), **(headers or {})})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    frames: list[dict[str, str]] = []
    frame: dict[str, str] = {}
    try:
        while True:
            line = resp.fp.readline().decode().rstrip("\n")
            if line == "":
                if frame:
                    frames.append(frame)
                    if until(frames) if callable(until) else until in json.dumps(frame):
                        return frames
                frame = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                frame[key] = value
    finally:
        conn.close()


def test_the_stream_replays_what_a_client_missed_by_last_event_id(web_daemon: DaemonHandle) -> None:
    [hello] = read_events(web_daemon, "hello")
    web_daemon.call("stop", names=["app"])
    web_daemon.call("start", names=["app"])
    # a reconnecting browser sends the id it saw last and gets every event since, in order (the events feed
    # numbers an event a moment after it: the start's own STARTING and RUNNING may come after the hello too)
    cycle = ["STOPPING", "STOPPED", "STARTING", "RUNNING"]

    def states(frames: list[dict[str, str]]) -> list[str]:
        return [json.loads(f["data"])["new"] for f in frames if f.get("event") == "StateChanged"]

    frames = read_events(web_daemon, lambda fs: states(fs)[-4:] == cycle, {"Last-Event-ID": hello["id"]})
    assert states(frames)[-4:] == cycle and states(frames)[:-4] in ([], ["RUNNING"], ["STARTING", "RUNNING"])
    ids = [int(f["id"].split("-")[1]) for f in frames if f.get("event") == "StateChanged"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # an id from another daemon (it restarted) asks the page to fetch everything afresh
    frames = read_events(web_daemon, "resync", {"Last-Event-ID": "0badb00t-17"})
    assert frames[-1]["event"] == "resync"


def test_overview_carries_an_hour_of_samples_for_its_charts(web_daemon: DaemonHandle) -> None:
    def series() -> dict[str, Any]:
        return get(web_daemon.port, "/?format=json").json()["series"]  # type: ignore[no-any-return]

    # programs are sampled while someone looks: the first look starts it, the next samples carry them
    s = wait_for(lambda: len((s := series())["t"]) >= 2 and "app" in s["programs"] and s, 30, "samples of app")
    assert len(s["cpu"]) == len(s["mem"]) == len(s["running"]) == len(s["disk"]) == len(s["rss"]) == len(s["t"])
    assert s["running"][-1] == 1 and all(0 <= v <= 100 for v in s["cpu"][-1:] + s["disk"])
    assert all(v is None or 0 <= v <= 100 for v in s["cpu"])  # the daemon's first look has no window yet
    app = s["programs"]["app"]
    assert len(app["rss"]) == len(s["pt"]) and app["rss"][-1] > 1  # MB of a sleeping Python


def test_health_api_is_json_and_follows_a_change_at_once(web_daemon: DaemonHandle) -> None:
    """/api/v1/health answers JSON whatever the client accepts, and a shared reply never hides a change:
    right after a stop, the next answer counts the program as stopped."""

    def health() -> tuple[int, dict[str, Any]]:
        reply = request(web_daemon.port, "GET", "/api/v1/health", headers={"Accept": "text/html"})
        assert reply.headers["content-type"].startswith("application/json")
        return reply.status, reply.json()

    wait_for(lambda: health()[1]["programs"] == {"RUNNING": 1}, 15, "app running")
    for _ in range(20):  # a burst of probes, as a load balancer sends: served from one shared reply
        assert health() == (200, health()[1])
    web_daemon.call("stop", names=["app"])
    code, body = health()
    assert (code, body["programs"]) == (200, {"STOPPED": 1})
    web_daemon.call("start", names=["app"], wait_s=10.0)
    assert health()[1]["programs"] == {"RUNNING": 1}


def test_the_overview_is_shared_yet_never_older_than_a_change(web_daemon: DaemonHandle) -> None:
    """Concurrent visitors share one render of / (see web/pagecache.py), and a state change shows in the
    very next page: the program's row says STOPPED right after the stop command returns."""

    def state_cell() -> str:
        page = get(web_daemon.port, "/", {"Accept": "text/html"}).text
        found = re.search(r'data-program="app"[^>]*>.*?class="state"[^>]*>(.*?)</td>', page, re.S)
        assert found is not None, page[:2000]
        return found.group(1)

    wait_for(lambda: "RUNNING" in state_cell().upper(), 15, "app running on the page")
    web_daemon.call("stop", names=["app"])
    assert "STOPPED" in state_cell().upper()


def test_the_overview_says_who_did_what_and_what_was_refused(web_daemon: DaemonHandle) -> None:
    """The audit on the dashboard (issue 19: "who stopped api?"): a stop from the CLI and a refused start of a
    program that does not exist, each with the caller's uid and door, newest first."""
    assert web_daemon.cli("ctl", "stop", "app").returncode == 0
    assert web_daemon.cli("ctl", "start", "nope").returncode != 0
    uid = os.getuid()

    def audit() -> list[str]:
        page = get(web_daemon.port, "/", {"Accept": "text/html"}).text
        found = re.search(r'<ol class="events audit" id="audit"[^>]*>(.*?)</ol>', page, re.S)
        return [] if found is None else [html.unescape(t).strip() for t in re.findall(r"</span>(.*?)</li>", found[1])]

    lines = wait_for(lambda: audit()[1:] and audit(), 15, "two audit lines on the overview")
    assert lines[1] == f"stop app by uid {uid} via control: done", lines
    assert lines[0].startswith(f"start nope by uid {uid} via control: refused: "), lines
