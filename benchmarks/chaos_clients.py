#!/usr/bin/env python3
"""One load process of the chaos suite: runs the client patterns it is given, prints their outcomes as JSON.

    python benchmarks/chaos_clients.py '{"port": 8123, "token": "...", "control": "/tmp/x/control.sock",
        "seconds": 10, "patterns": {"requesters": {"connections": 20}, "control_garbage": {"workers": 2}}}'

Runs until ``seconds`` have passed or SIGTERM, gives requests in flight ``GRACE_S`` to end, then prints
``{pattern: outcome}`` (see :class:`chaos_http.Tally`). HTTP patterns are in :mod:`chaos_http`; the control
socket's are here: silent connections, garbage lines, over-long lines, and a flood of connections from
several processes (idle ones, ``status`` in a loop, ones that never read). Started by ``chaos.py`` at a lower
CPU priority (these clients stand for other machines' browsers and scripts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_http import (
    Tally,
    abrupt_resets,
    half_open,
    large_bodies,
    requesters,
    slowloris,
    sse_clients,
)

__all__ = ["GRACE_S", "control_flood", "control_garbage", "control_huge", "control_silent", "run"]

GRACE_S = 12.0  # after the end: what requests in flight get before they are abandoned (not counted)
REPLY_TIMEOUT_S = 5.0
GARBAGE = (
    lambda rng: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b" "),
    lambda rng: b'{"v": 1, "id": 1, "cmd": "sta',
    lambda rng: b"[" * 5000 + b"]" * 5000,
    lambda rng: json.dumps({"v": 1, "id": rng.random(), "cmd": "no_such_command", "args": {}}).encode(),
    lambda rng: json.dumps({"v": 99, "id": 1, "cmd": "status"}).encode(),
    lambda rng: json.dumps({"v": 1, "id": 1, "cmd": "status", "args": ["not", "an", "object"]}).encode(),
    lambda rng: json.dumps({"v": 1, "id": 1, "cmd": "stop", "args": {"names": 7}}).encode(),
    lambda rng: b"\xff\xfe" + "é".encode("utf-16"),
)


async def _open(path: str, tally: Tally) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A control connection, or None (counted under ``connect``) when the daemon's backlog is full.

    asyncio takes a Unix socket's EAGAIN at connect (the backlog is full) for a connection in progress and
    hands back a socket that is not connected: ``getpeername`` tells.
    """
    try:
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(path, limit=4 * 1024 * 1024)
    except (OSError, TimeoutError):
        tally.errors["connect"] += 1
        return None
    try:
        writer.get_extra_info("socket").getpeername()
    except OSError:
        writer.close()
        tally.errors["connect"] += 1
        return None
    return reader, writer


async def _first_or_stop(reader: asyncio.StreamReader, stop: asyncio.Event) -> bytes | None:
    """What the daemon first sends on a connection we keep silent (b"" when it closes or resets it), or
    None when ``stop`` comes first."""
    reading = asyncio.ensure_future(reader.read(4096))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([reading, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reading, stopping):
            task.cancel()
    if not reading.done() or reading.cancelled():
        return None
    return b"" if reading.exception() else reading.result()


async def control_silent(path: str, stop: asyncio.Event, tally: Tally, connections: int) -> None:
    """``connections`` control connections that send nothing; ``seconds``: how long those the daemon closed
    were held."""

    async def one() -> None:
        conn = await _open(path, tally)
        if conn is None:
            return
        reader, writer = conn
        opened = time.monotonic()
        try:
            first = await _first_or_stop(reader, stop)
        finally:
            writer.close()
        if first is None:
            tally.notes["held until the end"] += 1
        elif _told_busy(first):
            tally.notes["told busy (connection caps)"] += 1
        else:
            tally.notes["closed by the daemon"] += 1
            tally.seconds.append(time.monotonic() - opened)

    await asyncio.gather(*(one() for _ in range(connections)))


async def _lines(
    path: str,
    stop: asyncio.Event,
    tally: Tally,
    rate: float,
    seed: int,
    make: Callable[[random.Random], bytes],
    expect: str = "",
) -> None:
    """One client sending ``make()`` lines at ``rate`` per second; each must get an error reply (one naming
    ``expect`` when given). ``notes``: the replies by kind; ``errors``: ``lost`` (the line was written in
    full and the connection ended without a reply), ``unsent`` (the daemon closed the connection while the
    line was being written, and no reply came), ``timeout``."""
    rng = random.Random(seed)
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while not stop.is_set():
        if conn is None:
            conn = await _open(path, tally)
            if conn is None:
                await asyncio.sleep(0.1)
                continue
        reader, writer = conn
        started, written = time.monotonic(), True
        try:
            writer.write(make(rng) + b"\n")
            await writer.drain()
        except ConnectionError:  # the daemon may refuse an over-long line before it has all of it
            written = False
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                line = await reader.readline()
        except TimeoutError:
            tally.errors["timeout"] += 1
            line = None
        except (ConnectionError, ValueError):
            line = b""
        if line:
            with contextlib.suppress(ValueError):
                reply = json.loads(line)
                error = (reply.get("error") or {}) if isinstance(reply, dict) else {}
                message = str(error.get("message", ""))
                kind = "accepted as a command" if not error else "error reply"
                kind = "told busy (connection caps)" if error.get("type") == "DaemonBusy" else kind
                named = expect and expect in message and error.get("type") != "DaemonBusy"
                tally.notes[kind + (" naming the limit" if named else "")] += 1
                tally.latencies_ms.append((time.monotonic() - started) * 1000)
        elif line is not None:
            tally.errors["lost" if written else "unsent"] += 1
        busy = bool(line) and _told_busy(line or b"")
        if not line or not written or expect or busy:  # the daemon ends a connection after these
            writer.close()
            conn = None
        if busy:
            await _back_off()
        await asyncio.sleep(rng.expovariate(rate))
    if conn is not None:
        conn[1].close()


async def control_garbage(path: str, stop: asyncio.Event, tally: Tally, workers: int, rate: float = 50.0) -> None:
    """``workers`` clients sending malformed requests (random bytes, cut JSON, deep nesting, unknown commands,
    wrong types, bad encodings), ``rate`` per second each; each must get an error reply."""
    await asyncio.gather(
        *(_lines(path, stop, tally, rate, i, lambda rng: rng.choice(GARBAGE)(rng)) for i in range(workers))
    )


async def control_huge(
    path: str, stop: asyncio.Event, tally: Tally, workers: int, size: int = 2 << 20, rate: float = 5.0
) -> None:
    """``workers`` clients sending lines of ``size`` bytes (over the 1 MiB limit), ``rate`` per second each."""
    line = b'{"v": 1, "id": 1, "cmd": "status", "args": {"pad": "' + b"x" * size + b'"}}'
    await asyncio.gather(*(_lines(path, stop, tally, rate, i, lambda rng: line, "longer than") for i in range(workers)))


STATUS = json.dumps({"v": 1, "id": 1, "cmd": "status", "args": {}}).encode() + b"\n"


async def _back_off() -> None:
    """What a client told busy does (as ours does): wait a little, with jitter, before connecting again."""
    await asyncio.sleep(random.uniform(0.05, 0.25))


def _told_busy(data: bytes) -> bool:
    """Whether ``data`` starts with the daemon's one-line refusal at its connection caps."""
    with contextlib.suppress(ValueError):
        reply = json.loads(data.split(b"\n", 1)[0])
        return isinstance(reply, dict) and (reply.get("error") or {}).get("type") == "DaemonBusy"
    return False


async def _flood_idle(path: str, stop: asyncio.Event, tally: Tally) -> None:
    """Connect, send nothing, see what the daemon does; again until the end."""
    while not stop.is_set():
        conn = await _open(path, tally)
        if conn is None:
            await asyncio.sleep(0.05)
            continue
        reader, writer = conn
        try:
            first = await _first_or_stop(reader, stop)
        finally:
            writer.close()
        busy = first is not None and _told_busy(first)
        if first is not None:
            tally.notes["idle: told busy" if busy else "idle: closed"] += 1
        if busy:
            await _back_off()


async def _flood_asker(path: str, stop: asyncio.Event, tally: Tally) -> None:
    """``status`` in a loop on one connection, reconnecting when closed or told busy."""
    conn = None
    while not stop.is_set():
        conn = conn or await _open(path, tally)
        if conn is None:
            await asyncio.sleep(0.05)
            continue
        reader, writer = conn
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):  # refused before it was read: its busy line is still there
            writer.write(STATUS)
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                line = await reader.readline()
        except TimeoutError:
            tally.errors["timeout"] += 1
            line = None
        except ConnectionResetError:  # the daemon resets only a connection it refused or evicted unread
            tally.notes["status: reset at the caps (not run)"] += 1
            line = None
        except BrokenPipeError:  # our write failed: the daemon had closed this idle connection (it gave way)
            tally.notes["status: not sent, the connection had given way"] += 1
            line = None
        except (ConnectionError, ValueError):
            line = b""
        if line and not line.endswith(b"\n"):  # the connection ended mid-reply: cut, as bad as none
            line = b""
        if line and b'"ok":true' in line:
            tally.notes["status answered"] += 1
            tally.latencies_ms.append((time.monotonic() - started) * 1000)
            continue
        if line and _told_busy(line):
            tally.notes["status: told busy"] += 1
        elif line == b"":
            tally.errors["lost"] += 1  # written, then the connection ended with no (whole) reply
        writer.close()
        conn = None
        await _back_off()
    if conn is not None:
        conn[1].close()


async def _flood_non_reader(path: str, stop: asyncio.Event, tally: Tally) -> None:
    """Send 2,000 ``status`` requests, never read the replies, wait to be dropped; again until the end."""
    while not stop.is_set():
        conn = await _open(path, tally)
        if conn is None:
            await asyncio.sleep(0.05)
            continue
        _reader, writer = conn
        writer.write(STATUS * 2000)
        opened = time.monotonic()
        stopping = asyncio.ensure_future(stop.wait())
        ended = asyncio.ensure_future(_until_dropped(writer))
        await asyncio.wait([stopping, ended], return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            tally.notes["non-reader dropped"] += 1
            tally.seconds.append(time.monotonic() - opened)
        for task in (stopping, ended):
            task.cancel()
        writer.close()


async def _until_dropped(writer: asyncio.StreamWriter) -> None:
    """Return once the daemon has ended the connection (reading nothing: a full buffer is the point)."""
    with contextlib.suppress(ConnectionError):
        while not writer.transport.is_closing():
            writer.write(b"\n")  # blank lines: ignored by the daemon; an error once it hung up
            await asyncio.sleep(0.2)


async def control_flood_one(path: str, stop: asyncio.Event, tally: Tally, connections: int) -> None:
    """``connections`` from this process: a third idle, a third asking ``status``, a third never reading."""
    third = connections // 3
    kinds = [_flood_idle] * third + [_flood_asker] * third + [_flood_non_reader] * (connections - 2 * third)
    await asyncio.gather(*(kind(path, stop, tally) for kind in kinds))


async def control_flood(path: str, stop: asyncio.Event, tally: Tally, connections: int, processes: int = 10) -> None:
    """``connections`` control connections spread over ``processes`` processes (the daemon caps each
    process's share), each a mix of :func:`control_flood_one`; their outcomes summed into ``tally``."""
    spec = {"control": path, "seconds": 24 * 3600, "patterns": {"control_flood_one": {}}}
    children = []
    for i in range(processes):
        share = connections // processes + (i < connections % processes)
        spec["patterns"] = {"control_flood_one": {"connections": share}}
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable, __file__, json.dumps(spec), stdout=asyncio.subprocess.PIPE
            )
        )
    try:
        await stop.wait()
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
        for child in children:
            out, _ = await child.communicate()
            with contextlib.suppress(ValueError, IndexError):
                part = json.loads(out.decode().strip().splitlines()[-1])["control_flood_one"]
                tally.notes.update(part["notes"])
                tally.errors.update(part["errors"])


PATTERNS: dict[str, Callable[..., Awaitable[None]]] = {
    "requesters": requesters,
    "slowloris": slowloris,
    "half_open": half_open,
    "sse": sse_clients,
    "bodies": large_bodies,
    "resets": abrupt_resets,
    "control_silent": control_silent,
    "control_garbage": control_garbage,
    "control_huge": control_huge,
    "control_flood": control_flood,
    "control_flood_one": control_flood_one,
}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``spec["patterns"]`` at once until ``spec["seconds"]`` or SIGTERM; their outcomes by name."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.call_later(float(spec["seconds"]), stop.set)
    tallies: dict[str, Tally] = {}
    tasks = []
    for name, params in spec["patterns"].items():
        tallies[name] = Tally()
        where = spec["control"] if name.startswith("control_") else spec["port"]
        # every read needs a token (docs/security.md): the clients that read send the owner's
        extra = {"token": spec["token"]} if name in ("bodies", "resets", "requesters", "sse") else {}
        coro = PATTERNS[name](where, stop, tallies[name], **params, **extra)
        tasks.append(asyncio.ensure_future(coro))
    started = time.monotonic()
    await stop.wait()
    stopped = time.monotonic()
    _done, pending = await asyncio.wait(tasks, timeout=GRACE_S)
    for task in pending:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # a bug of the client: say so
    return {
        "ran_s": round(stopped - started, 2),
        "abandoned_tasks": len(pending),
        **{name: tally.as_json() for name, tally in tallies.items()},
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a thousand connections need it
    print(json.dumps(asyncio.run(run(spec))), flush=True)


if __name__ == "__main__":
    main()
