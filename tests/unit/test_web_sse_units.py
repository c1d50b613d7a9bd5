"""The event log behind /api/events over a real socket: ids, replay after Last-Event-ID, resync when the
events a client missed are gone, and the stream cap."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from helpers import wait_until
from helpers.webcore import LocalCore

from foss_supervisor.base.pipelinestates import StepState
from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.config import parse_config
from foss_supervisor.core.events import DaemonStateChanged, EventBus, StateChanged
from foss_supervisor.daemon import Daemon
from foss_supervisor.pipeline.events import StepStateChanged
from foss_supervisor.web.icons import event_line
from foss_supervisor.web.sse import EventLog


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[EventBus, EventLog, str]]:
    """The web's event log following a real (not started) daemon's events, served on a real socket."""
    ctx = Daemon(parse_config(f"state_dir: {tmp_path}\nprograms: {{}}\n", tmp_path / "c.yaml"), None)
    bus = ctx.bus
    core = LocalCore(ctx, ctx.events)
    log = EventLog(core, size=3, max_streams=2, tick_s=60)
    app = web.Application()
    app.router.add_get("/events", log.stream)
    app.on_shutdown.append(log.close)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield bus, log, f"http://127.0.0.1:{sock.getsockname()[1]}/events"
    finally:
        await runner.cleanup()
        await core.close()


async def frames(url: str, count: int, last_id: str = "") -> list[dict[str, str]]:
    """The first ``count`` frames of a stream (a frame: its id, event and data lines)."""
    out: list[dict[str, str]] = []
    headers = {"Last-Event-ID": last_id} if last_id else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as resp:
        frame: dict[str, str] = {}
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if frame:
                    out.append(frame)
                    frame = {}
                    if len(out) == count:
                        return out
                continue
            key, _, value = line.partition(": ")
            frame[key] = value
    return out


async def caught_up(log: EventLog, seq: int) -> None:
    await wait_until(lambda: log.last_id == f"{log.boot}-{seq}", 5, f"event {seq}")


async def test_replay_resync_and_cap(served: tuple[EventBus, EventLog, str]) -> None:
    bus, log, url = served
    for i in range(2):
        bus.publish(DaemonStateChanged(state=f"s{i}"))
    await caught_up(log, 2)
    # a client that saw event 1 gets event 2 (and only it) at once
    got = await asyncio.wait_for(frames(url, 2, f"{log.boot}-1"), 5)
    assert got[0]["event"] == "hello" and got[1]["id"] == f"{log.boot}-2" and '"s1"' in got[1]["data"]
    for i in range(2, 8):
        bus.publish(DaemonStateChanged(state=f"s{i}"))
    await caught_up(log, 8)
    # events 2..4 are gone from a log of 3: the client is told to fetch everything afresh, then gets the rest
    got = await asyncio.wait_for(frames(url, 5, f"{log.boot}-1"), 5)
    assert [f["event"] for f in got] == [
        "hello",
        "resync",
        "DaemonStateChanged",
        "DaemonStateChanged",
        "DaemonStateChanged",
    ]
    assert [f["id"] for f in got[2:]] == [f"{log.boot}-{n}" for n in (6, 7, 8)]
    # another daemon's id (it restarted): resync, nothing replayed
    got = await asyncio.wait_for(frames(url, 2, "feedf00d-3"), 5)
    assert [f["event"] for f in got] == ["hello", "resync"]
    # streams whose clients left are let go within a second or so, without waiting for a write
    await wait_until(lambda: log.open_streams == 0, 5, "the streams let go")
    # at most max_streams at once
    async with aiohttp.ClientSession() as s:
        open_streams = [await s.get(url) for _ in range(2)]
        assert [r.status for r in open_streams] == [200, 200]
        async with s.get(url) as third:
            assert third.status == 503
        for r in open_streams:
            r.close()


async def test_a_pages_first_connection_gets_what_happened_since_its_render(
    served: tuple[EventBus, EventLog, str],
) -> None:
    """A page carries the newest event id it was rendered with (``last_id``) and connects with ?since=: the
    events between render and connect are sent, so a fast change is never missed; a header wins over it."""
    bus, log, url = served
    bus.publish(DaemonStateChanged(state="before"))
    await caught_up(log, 1)  # the web hears the daemon's events a moment later
    rendered = log.last_id
    bus.publish(DaemonStateChanged(state="between"))  # after the render, before the page's stream opened
    got = await asyncio.wait_for(frames(f"{url}?since={rendered}", 2), 5)
    assert [f["event"] for f in got] == ["hello", "DaemonStateChanged"] and '"between"' in got[1]["data"]
    # a reconnect's Last-Event-ID wins over the URL's ?since= (which would replay "before" and "between")
    await caught_up(log, 2)
    task = asyncio.create_task(frames(f"{url}?since={log.boot}-0", 2, log.last_id))
    await wait_until(lambda: log.open_streams, 10, "the stream open")
    bus.publish(DaemonStateChanged(state="after"))
    got = await asyncio.wait_for(task, 5)
    assert '"after"' in got[1]["data"]


async def test_recent_events_are_whole_whatever_their_text(served: tuple[EventBus, EventLog, str]) -> None:
    """An event whose text holds an SSE field name (``data: ``, a newline) comes back whole for a page's first
    render (the chaos suite's schemathesis phase once made / answer 500 with ``start {"names": ["data: x"]}``)."""
    bus, log, _ = served
    bus.publish(DaemonStateChanged(state="s", detail="data: x\ndata: {not json"))
    await caught_up(log, 1)
    [event] = log.recent(5)
    assert event["detail"] == "data: x\ndata: {not json" and event["type"] == "DaemonStateChanged"


async def test_a_listed_event_arrives_with_the_words_the_page_lists_it_by(
    served: tuple[EventBus, EventLog, str],
) -> None:
    """The live list and the page's first list write an event the same way: the stream's ``line`` is
    ``web/icons.event_line`` of the event (the page script prints it as given), and only listed events carry one."""
    bus, log, url = served
    bus.publish(StateChanged(name="api", old=ProcessState.STARTING, new=ProcessState.BACKOFF, reason="exited 1"))
    bus.publish(
        StepStateChanged(
            1767225600.0,
            run_id="r1",
            pipeline="orders",
            step="ingest",
            old=StepState.QUEUED,
            new=StepState.RUNNING,
            index=1,
            total=9,
            attempt=1,
        )
    )
    await caught_up(log, 2)
    got = [json.loads(f["data"]) for f in await frames(url, 3, f"{log.boot}-0") if f.get("event") != "hello"]
    assert [g["line"] for g in got] == ["api: BACKOFF (exited 1)", "orders: ingest running"]
    assert [g["line"] for g in got] == [event_line(e) for e in reversed(log.recent(2))]  # newest first


def test_an_events_line_names_who_what_and_why() -> None:
    assert event_line({"type": "StateChanged", "name": "db", "new": "FATAL", "reason": "gave up"}) == (
        "db: FATAL (gave up)"
    )
    assert event_line({"type": "RunFinished", "pipeline": "orders", "status": "failed"}) == "orders: failed"
    assert event_line({"type": "StepStateChanged", "pipeline": "p", "step": "s", "state": "x"}) == "p: s x"
    assert event_line({"type": "DaemonStateChanged", "state": "ready"}) == "daemon: ready"
