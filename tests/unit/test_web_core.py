"""The web layer's view of the core (:mod:`foss_supervisor.web.core`), in both shapes.

``LocalCore`` dispatches in-process; ``RemoteCore`` (what the dashboard process uses) speaks the control
protocol to a real :class:`~foss_supervisor.control.server.ControlServer` on a real Unix socket. The
command context is a real :class:`~foss_supervisor.daemon.lifecycle.Daemon` built from a parsed config (not
started: the commands used here read its state). Dispatches are counted by wrapping the real ``dispatch``,
which :func:`foss_supervisor.commands.registry.answer` (the egress gate both paths go through) calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from helpers.webcore import LocalCore

from foss_supervisor.commands import registry as commands_module
from foss_supervisor.config import parse_config
from foss_supervisor.control.protocol import VERSION, encode
from foss_supervisor.control.server import ControlServer
from foss_supervisor.core.events import DaemonStateChanged
from foss_supervisor.daemon import Daemon
from foss_supervisor.errors import CommandError, NotRunning, ProtocolError
from foss_supervisor.web.core import RESYNC, Core
from foss_supervisor.web.remote import RemoteCommandError, RemoteCore

SECRET = "pw-across-threads-7"


SECRET = "pw-across-processes-7"


@pytest.fixture
def ctx(tmp_path: Path) -> Daemon:
    state = tmp_path / "s"
    state.mkdir()
    text = f"state_dir: {state}\nprograms: {{}}\nsecrets: [{SECRET}]\n"
    return Daemon(parse_config(text, tmp_path / "config.yaml"), None)


@contextlib.asynccontextmanager
async def served(ctx: Daemon) -> AsyncIterator[ControlServer]:
    server = ControlServer(ctx.config.control_socket, ctx, ctx.events)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture(params=["local", "remote"])
async def core(request: pytest.FixtureRequest, ctx: Daemon) -> AsyncIterator[Core]:
    if request.param == "local":
        local = LocalCore(ctx, ctx.events)
        yield local
        await local.close()
        return
    async with served(ctx):
        remote = RemoteCore(ctx.config.control_socket)
        await remote.start()
        yield remote
        await remote.close()


async def test_a_command_answers_with_the_daemons_data(core: Core, dispatched: list[str]) -> None:
    assert (await core.call("ping"))["phase"] == "starting"
    assert dispatched == ["ping"]


async def test_concurrent_reads_share_one_command(core: Core, dispatched: list[str]) -> None:
    replies = await asyncio.gather(*(core.read("health") for _ in range(50)))
    assert dispatched == ["health"]
    assert all(r is replies[0] for r in replies) and replies[0]["programs"] == {}


async def test_an_event_makes_the_next_read_ask_again(core: Core, ctx: Daemon, dispatched: list[str]) -> None:
    seen: list[dict[str, Any]] = []
    core.on_event(seen.append)
    first = await core.read("status")
    assert await core.read("status") is first  # nothing changed since: the same reply
    ctx.phase = "ready"
    ctx.bus.publish(DaemonStateChanged(state="ready"))
    await wait_until(lambda: bool(seen), what="the event")
    second = await core.read("status")
    assert dispatched == ["status", "status"]
    assert (first["daemon"]["phase"], second["daemon"]["phase"]) == ("starting", "ready")


async def test_a_state_changing_command_makes_the_next_read_ask_again(core: Core, dispatched: list[str]) -> None:
    """Refused ones too (a refused command may change what a read shows)."""
    first = await core.read("status")
    with pytest.raises(CommandError, match="no such program"):
        await core.call("start", {"names": ["nope"]})
    assert await core.read("status") is not first
    assert dispatched == ["status", "start", "status"]


async def test_a_state_changing_command_of_another_transport_is_an_event(core: Core, ctx: Daemon) -> None:
    """The CLI's commands reach the web as ``CommandCompleted`` events, so its shared replies are dropped."""
    seen: list[dict[str, Any]] = []
    core.on_event(seen.append)
    before = core.generation
    with contextlib.suppress(CommandError):
        await commands_module.answer(ctx, "stop", {"names": ["nope"]})  # as the control socket would
    await wait_until(lambda: bool(seen), what="the event")
    assert seen[0]["type"] == "CommandCompleted" and seen[0]["command"] == "stop" and not seen[0]["ok"]
    assert core.generation != before


async def test_health_is_shared_only_while_in_flight(core: Core, ctx: Daemon, dispatched: list[str]) -> None:
    """A probe's answer is never older than its request: a finished health reply is not served again."""
    first = await core.read("health")
    ctx.phase = "ready"  # a change that publishes nothing
    second = await core.read("health")
    assert (first["phase"], second["phase"]) == ("starting", "ready")
    assert dispatched == ["health", "health"]


async def test_a_failed_read_is_not_kept(core: Core, dispatched: list[str]) -> None:
    for _ in range(2):
        with pytest.raises(CommandError, match="no pipelines"):
            await core.read("pipelines")
    assert dispatched == ["pipelines", "pipelines"]


async def test_only_read_only_commands_are_shared(core: Core) -> None:
    with pytest.raises(ValueError, match="not a shared read"):
        await core.read("restart", {"names": ["x"]})


async def test_a_bad_request_is_a_protocol_error(core: Core) -> None:
    with pytest.raises(ProtocolError, match="unknown argument"):
        await core.call("status", {"bogus": 1})


async def test_events_arrive_in_order_with_the_daemons_numbers(core: Core, ctx: Daemon) -> None:
    got: list[dict[str, Any]] = []
    core.on_event(got.append)
    for i in range(300):
        ctx.bus.publish(DaemonStateChanged(state=f"s{i}"))
        if i % 50 == 0:
            await asyncio.sleep(0)
    await wait_until(lambda: len(got) >= 300, what="300 events")
    assert [e["state"] for e in got] == [f"s{i}" for i in range(300)]
    assert [e["seq"] for e in got] == list(range(got[0]["seq"], got[0]["seq"] + 300))
    assert core.boot == ctx.events.boot and core.seq == ctx.events.seq


async def test_a_reader_that_falls_behind_is_told_to_resync(ctx: Daemon) -> None:
    """More events than the core keeps, published while the reader cannot read: one resync, then the rest."""
    ctx.events = type(ctx.events)(size=10)
    ctx.bus.on(ctx.events.append)
    local = LocalCore(ctx, ctx.events)
    got: list[dict[str, Any]] = []
    local.on_event(got.append)
    for i in range(50):  # no await: the follower cannot run meanwhile
        ctx.bus.publish(DaemonStateChanged(state=f"s{i}"))
    await wait_until(lambda: any(e.get("state") == "s49" for e in got), what="the last event")
    assert got[0]["type"] == RESYNC and got[0]["seq"] == 40  # the 10 kept follow it
    assert [e["state"] for e in got[1:]] == [f"s{i}" for i in range(40, 50)]
    await local.close()


async def test_remote_errors_keep_their_kind(ctx: Daemon) -> None:
    """An error of a kind the web has no class for keeps its name (the API shows it)."""
    async with served(ctx):
        remote = RemoteCore(ctx.config.control_socket)
        await remote.start()
        with pytest.raises(CommandError) as err:
            await remote.call("pipeline_run", {"name": "nope"})
        assert "no pipelines" in str(err.value)
        assert getattr(err.value, "type_name", "CommandError") in {"CommandError", "PipelineError"}
        assert isinstance(RemoteCommandError("QueryTimeoutError", "x"), CommandError)
        await remote.close()


async def test_remote_commands_in_flight_are_bounded(ctx: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of page requests costs the daemon at most ``pool_size`` commands at once."""
    running, most = 0, 0
    gate = asyncio.Event()
    real = commands_module.dispatch

    async def slow(ctx_: Any, name: str, args: Any) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1
        return await real(ctx_, name, args)

    monkeypatch.setattr(commands_module, "dispatch", slow)
    async with served(ctx):
        remote = RemoteCore(ctx.config.control_socket, pool_size=3)
        await remote.start()
        calls = [asyncio.ensure_future(remote.call("ping")) for _ in range(20)]
        await wait_until(lambda: running == 3, what="three commands in flight")
        gate.set()
        replies = await asyncio.gather(*calls)
        assert most == 3 and all(r["pong"] for r in replies)
        await remote.close()


async def test_the_pool_never_holds_more_connections_than_its_size(ctx: Daemon) -> None:
    """A state-changing command goes on a fresh connection, which then joins the pool: the oldest idle one is
    closed, so a stream of such commands does not pile up descriptors in the dashboard or the daemon."""
    async with served(ctx) as server:
        remote = RemoteCore(ctx.config.control_socket, pool_size=2)
        await remote.start()
        for _ in range(12):
            with pytest.raises(CommandError):  # refused (no such program), but asked on a fresh connection
                await remote.call("stop", {"names": ["nope"]})
        await wait_until(lambda: len(server._connections) <= 3, what="the extra connections closed")
        assert len(remote._idle) == 2  # the pool, and the event stream besides it
        await remote.close()


async def test_remote_core_knows_when_the_daemon_is_gone(ctx: Daemon) -> None:
    async with served(ctx):
        remote = RemoteCore(ctx.config.control_socket)
        await remote.start()
    async with asyncio.timeout(10):
        why = await remote.lost
    assert "closed" in why or "failed" in why
    with pytest.raises(NotRunning):
        await remote.call("ping")
    await remote.close()


async def test_a_subscriber_resumes_where_it_left_off(ctx: Daemon) -> None:
    """The control socket's stream, raw: a (boot, seq) pair gives exactly what followed; another boot resyncs."""

    async def subscribe(args: dict[str, Any]) -> tuple[dict[str, Any], asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_unix_connection(str(ctx.config.control_socket))
        writer.write(encode({"v": VERSION, "id": 1, "cmd": "subscribe", "args": args}))
        return json.loads(await reader.readline())["result"], reader, writer

    async with served(ctx):
        for i in range(5):
            ctx.bus.publish(DaemonStateChanged(state=f"s{i}"))
        first, reader, writer = await subscribe({"boot": ctx.events.boot, "since": 2})
        assert first == {"boot": ctx.events.boot, "seq": 2, "resync": False}
        replayed = [json.loads(await reader.readline())["event"]["seq"] for _ in range(3)]
        assert replayed == [3, 4, 5]
        writer.close()
        other, _, writer2 = await subscribe({"boot": "feedf00d", "since": 2})
        assert other["resync"] is True and other["seq"] == 5
        writer2.close()


async def test_remote_core_outlives_the_daemons_idle_timeout(ctx: Daemon) -> None:
    """The daemon closes control connections idle for a while; the pool never reuses one that is closing."""
    server = ControlServer(ctx.config.control_socket, ctx, ctx.events, idle_timeout_s=0.2)
    await server.start()
    try:
        remote = RemoteCore(ctx.config.control_socket)
        await remote.start()
        assert (await remote.call("ping"))["pong"]
        # the daemon closes the pooled connection (the event stream's connection stays)
        await wait_until(lambda: len(server._connections) == 1, what="the idle connection closed")
        assert (await remote.call("ping"))["pong"]
        assert not remote.lost.done()  # the event stream is not a request: never cut for idleness
        await remote.close()
    finally:
        await server.close()


async def test_replies_errors_and_events_reach_the_web_redacted(core: Core, ctx: Daemon) -> None:
    """The web gets what the control socket gets: replies and errors through commands.answer, events as the
    daemon's event log keeps them (redacted once, when they are numbered)."""
    got: list[dict[str, Any]] = []
    core.on_event(got.append)
    ctx.phase = f"ready {SECRET}"
    ctx.bus.publish(DaemonStateChanged(state="ready", detail=f"postgres://u:{SECRET}@db and {SECRET}"))
    await wait_until(lambda: bool(got), what="the event")
    assert got[0]["detail"] == "postgres://u:***@db and ***"
    assert (await core.call("health"))["phase"] == "ready ***"
    with pytest.raises(CommandError) as refusal:
        await core.call("status", {"names": [SECRET]})  # refused, naming what it was asked for
    assert "***" in str(refusal.value) and SECRET not in str(refusal.value)
