"""Admission on the control socket, in-process on a real Unix socket with small limits: a connection cap
(the idle give way, else a busy line), a cap on commands in flight, and write backpressure that drops a
client that does not read (a real daemon under a flood: tests/e2e/test_control_flood_daemon.py).

The command context is a real, unstarted :class:`~foss_supervisor.daemon.lifecycle.Daemon`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import examples, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.commands import registry as commands_module
from foss_supervisor.config import parse_config
from foss_supervisor.control.client import ControlClient
from foss_supervisor.control.protocol import VERSION, encode
from foss_supervisor.control.server import ControlServer
from foss_supervisor.daemon import Daemon

CAP = 4
STATUS = encode({"v": VERSION, "id": 1, "cmd": "status", "args": {}})

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def make_ctx(tmp: Path) -> Daemon:
    state = tmp / "s"
    state.mkdir(exist_ok=True)
    return Daemon(parse_config(f"state_dir: {state}\nprograms: {{}}\n", tmp / "config.yaml"), None)


@contextlib.asynccontextmanager
async def served(tmp: Path, **limits: Any) -> AsyncIterator[ControlServer]:
    ctx = make_ctx(tmp)
    server = ControlServer(ctx.config.control_socket, ctx, ctx.events, **limits)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def open_conn(server: ControlServer) -> Conn:
    """A connection whose reader stops taking bytes from the socket past 128 KiB unread (asyncio's 2 x limit)."""
    return await asyncio.open_unix_connection(str(server.path), limit=64 * 1024)


async def half_line(server: ControlServer) -> Conn:
    """A connection with a request under way (its first byte came): never taken for idle."""
    conn = await open_conn(server)
    conn[1].write(b'{"v": 1, "id": 1, "cmd": "sta')
    await conn[1].drain()
    return conn


def ping_in_thread(server: ControlServer, client: ControlClient) -> Any:
    with client:
        return client.call("ping")


async def test_past_the_cap_an_idle_connection_gives_way(tmp_path: Path) -> None:
    async with served(tmp_path, max_connections=CAP, evict_idle_after_s=0.0) as server:
        idle = [await open_conn(server) for _ in range(CAP)]
        await wait_until(lambda: len(server._connections) == CAP, what="the idle connections accepted")
        newcomer = await open_conn(server)
        newcomer[1].write(STATUS)
        reply = json.loads(await asyncio.wait_for(newcomer[0].readline(), 10))
        assert reply["ok"] is True
        told = json.loads(await asyncio.wait_for(idle[0][0].read(), 10))  # the longest idle: told, closed
        assert told["id"] is None and told["error"]["type"] == "DaemonBusy"
        assert server.evicted_idle == 1 and server.refused_busy == 0
        for _, writer in [*idle, newcomer]:
            writer.close()


async def test_one_process_gets_at_most_its_share(tmp_path: Path) -> None:
    async with served(tmp_path, max_connections=CAP * 4, max_per_peer=CAP) as server:
        mine = [await half_line(server) for _ in range(CAP)]
        await wait_until(lambda: len(server._connections) == CAP, what="the connections accepted")
        reader, writer = await open_conn(server)
        reply = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert reply["error"]["type"] == "DaemonBusy" and "of this process" in reply["error"]["message"]
        for _, w in [*mine, (reader, writer)]:
            w.close()


async def test_a_process_at_its_share_replaces_its_own_idle_connection(tmp_path: Path) -> None:
    async with served(tmp_path, max_connections=CAP * 4, max_per_peer=CAP) as server:
        pool = [await open_conn(server) for _ in range(CAP)]  # idle, as a pool between requests
        await wait_until(lambda: len(server._connections) == CAP, what="the pool accepted")
        reader, writer = await open_conn(server)
        writer.write(STATUS)
        assert json.loads(await asyncio.wait_for(reader.readline(), 10))["ok"] is True
        told = json.loads(await asyncio.wait_for(pool[0][0].read(), 10))  # its oldest idle one gave way
        assert told["error"]["type"] == "DaemonBusy" and server.refused_busy == 0
        for _, w in [*pool, (reader, writer)]:
            w.close()


async def test_a_fresh_connection_is_not_taken_for_idle(tmp_path: Path) -> None:
    async with served(tmp_path, max_connections=CAP, evict_idle_after_s=3600.0) as server:
        idle = [await open_conn(server) for _ in range(CAP)]
        await wait_until(lambda: len(server._connections) == CAP, what="the idle connections accepted")
        reader, writer = await open_conn(server)
        assert json.loads(await asyncio.wait_for(reader.readline(), 10))["error"]["type"] == "DaemonBusy"
        assert server.evicted_idle == 0 and server.refused_busy == 1
        for _, w in [*idle, (reader, writer)]:
            w.close()


async def test_past_the_cap_with_none_idle_a_newcomer_gets_one_busy_line(tmp_path: Path) -> None:
    async with served(tmp_path, max_connections=CAP) as server:
        busy = [await half_line(server) for _ in range(CAP)]
        await wait_until(lambda: len(server._connections) == CAP, what="the connections accepted")
        reader, writer = await open_conn(server)
        line = await asyncio.wait_for(reader.readline(), 10)
        reply = json.loads(line)
        assert reply["id"] is None and reply["error"]["type"] == "DaemonBusy"
        assert "control connections are open" in reply["error"]["message"]
        assert await asyncio.wait_for(reader.read(), 10) == b""  # then closed
        writer.close()
        # the blocking client connects again until it gets in
        client = ControlClient(server.path, timeout_s=20.0)
        asking = asyncio.ensure_future(asyncio.to_thread(ping_in_thread, server, client))
        await wait_until(lambda: client.busy_retries >= 1, what="the client told busy")
        busy[0][1].close()
        assert (await asyncio.wait_for(asking, 20))["pong"] is True
        for _, w in busy:
            w.close()


async def test_commands_in_flight_are_capped_the_others_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    running, most = 0, 0
    real = commands_module.dispatch

    async def counting(ctx: Any, name: str, args: Any) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0)  # let the others in, if the cap would
            return await real(ctx, name, args)
        finally:
            running -= 1

    monkeypatch.setattr(commands_module, "dispatch", counting)
    async with served(tmp_path, max_connections=64, max_per_peer=64, max_in_flight=2) as server:

        async def ask() -> dict[str, Any]:
            reader, writer = await open_conn(server)
            writer.write(STATUS)
            try:
                return json.loads(await asyncio.wait_for(reader.readline(), 20))  # type: ignore[no-any-return]
            finally:
                writer.close()

        replies = await asyncio.gather(*(ask() for _ in range(30)))
    assert all(r["ok"] for r in replies)  # every one waited its turn: none refused, none lost
    assert most == 2


async def test_a_client_that_does_not_read_is_dropped_and_its_buffer_freed(tmp_path: Path) -> None:
    async with served(tmp_path, write_timeout_s=0.3) as server:
        reader, writer = await open_conn(server)
        writer.write(STATUS)
        one_reply = len(await asyncio.wait_for(reader.readline(), 10))
        writer.write(STATUS * 5000)  # pipelined, never read: replies pile up in the daemon
        await wait_until(lambda: bool(server._connections), what="the non-reader accepted")
        await wait_until(lambda: not server._connections, 30, "the non-reader dropped")
        got = 0
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(1 << 20), 10):  # what left before the cut
                got += len(chunk)
        assert reader.at_eof()
        assert got < 5000 * one_reply  # far from every reply: the rest was dropped with the client
        writer.close()
        # the server still answers everyone else
        client = ControlClient(server.path, timeout_s=10.0)
        assert (await asyncio.to_thread(ping_in_thread, server, client))["pong"] is True


ACTIONS = st.sampled_from(["idle", "half", "status", "non_reader", "close"])


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(ACTIONS, min_size=1, max_size=3 * CAP))
def test_whatever_clients_do_connections_stay_capped_and_a_polite_client_is_answered(
    tmp_path_factory: pytest.TempPathFactory, actions: list[str]
) -> None:
    tmp = tmp_path_factory.mktemp("admission")

    async def scenario() -> None:
        limits = {"max_connections": CAP, "max_in_flight": 1, "write_timeout_s": 0.3, "evict_idle_after_s": 0.0}
        async with served(tmp, **limits) as server:
            conns: list[Conn] = []
            for action in actions:
                if action == "close" and conns:
                    conns.pop(0)[1].close()
                    continue
                conn = await (half_line(server) if action == "half" else open_conn(server))
                if action == "status":
                    conn[1].write(STATUS)
                elif action == "non_reader":
                    conn[1].write(STATUS * 5000)
                conns.append(conn)
                await asyncio.sleep(0)
                assert len(server._connections) - len(server._evicted) <= CAP
            # a polite client gets in (possibly after being told busy) once the half lines time out
            client = ControlClient(server.path, timeout_s=20.0)
            for _, w in conns:
                if not w.is_closing():
                    w.close()
            assert (await asyncio.to_thread(ping_in_thread, server, client))["pong"] is True
            assert len(server._connections) - len(server._evicted) <= CAP

    asyncio.run(scenario())
