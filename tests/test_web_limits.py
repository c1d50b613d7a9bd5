"""Bounded resources per client, over real sockets: slow and idle connections are closed, the connection
cap evicts the longest-idle connection first, a slow body times out, and /health still answers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import psutil
import pytest
from aiohttp import web
from conftest import PY, DaemonHandle, wait_for

from foss_supervisor.web.limits import ConnectionGuard, GuardedSockSite, Limits, read_body


async def _serve(limits: Limits) -> tuple[web.AppRunner, ConnectionGuard, int]:
    guard = ConnectionGuard(limits)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def upload(request: web.Request) -> web.Response:
        return web.json_response({"bytes": len(await read_body(request, limits.body_timeout_s))})

    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/health", health)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app, keepalive_timeout=3600)  # aiohttp's own timer would not close them in time
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    await GuardedSockSite(runner, sock, guard).start()
    return runner, guard, sock.getsockname()[1]


async def _get_health(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def _closed(reader: asyncio.StreamReader, timeout_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout_s) == b""
    except ConnectionResetError:  # closed while the client was still sending
        return True
    except TimeoutError:
        return False


async def test_idle_and_trickling_connections_are_closed_and_health_answers() -> None:
    runner, guard, port = await _serve(Limits(idle_timeout_s=0.6, sweep_every_s=0.1))
    try:
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)  # never sends a byte
        slow_r, slow_w = await asyncio.open_connection("127.0.0.1", port)  # trickles its headers
        kept_r, kept_w = await asyncio.open_connection("127.0.0.1", port)  # keep-alive after one request
        kept_w.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in await asyncio.wait_for(kept_r.readuntil(b'{"ok": true}'), 5)

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for ch in b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
                    slow_w.write(bytes([ch]))
                    await asyncio.sleep(0.05)

        dripping = asyncio.create_task(trickle())
        started = time.monotonic()
        assert b"200 OK" in await _get_health(port)  # meanwhile a probe is answered
        closed = await asyncio.gather(_closed(idle_r, 5), _closed(slow_r, 5), _closed(kept_r, 5))
        assert closed == [True, True, True] and time.monotonic() - started < 5
        assert guard.closed_idle >= 3
        dripping.cancel()
        for w in (idle_w, slow_w, kept_w):
            w.close()
        assert b"200 OK" in await _get_health(port)
    finally:
        await runner.cleanup()


async def test_at_the_cap_the_longest_idle_connection_makes_room() -> None:
    runner, guard, port = await _serve(Limits(idle_timeout_s=60, max_connections=20, sweep_every_s=0.1))
    try:
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        await asyncio.sleep(0.2)
        extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(30)]
        assert b"200 OK" in await _get_health(port)  # a probe always gets in
        assert guard.connections <= 20 and guard.evicted >= 30
        assert await _closed(conns[0][0], 5)  # the oldest went first
        for _, w in conns + extra:
            w.close()
    finally:
        await runner.cleanup()


async def test_a_body_that_never_arrives_times_out() -> None:
    runner, _, port = await _serve(Limits(body_timeout_s=0.5, idle_timeout_s=60))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        assert b"408" in head
        writer.close()
    finally:
        await runner.cleanup()


@pytest.mark.timeout(60)
def test_daemon_survives_a_flood_of_idle_connections(daemon: DaemonHandle) -> None:
    daemon.write_config(f"programs:\n  app: {{command: [{PY!r}, '-c', 'import time; time.sleep(300)']}}\n")
    daemon.start()
    assert daemon.proc is not None
    socks = []
    try:
        for _ in range(700):  # more than the cap (512): idle sockets that never send a request
            s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
            socks.append(s)
        conn = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        conn.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nConnection: close\r\n\r\n".encode())
        assert conn.recv(100).startswith(b"HTTP/1.1 200")
        conn.close()
        assert daemon.call("ping")["pong"]  # the control socket is fine too

        def daemon_sockets() -> int:
            return sum(1 for c in psutil.Process(daemon.proc.pid).net_connections("tcp")  # type: ignore[union-attr]
                       if c.laddr and c.laddr.port == daemon.port and c.status == psutil.CONN_ESTABLISHED)  # fmt: skip

        assert wait_for(lambda: daemon_sockets() <= 512, 10, "connections capped")
    finally:
        for s in socks:
            s.close()
