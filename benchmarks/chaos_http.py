"""The HTTP client patterns of the chaos suite, each with a per-request outcome (run by ``chaos_clients.py``).

A small HTTP/1.1 client of our own rather than a library's: the suite must know at which step a request
ended (never connected, reset while being sent, sent and then cut, answered), which client libraries hide
behind retries and pooled reconnects. Outcomes, counted in a :class:`Tally`:

- ``status`` by code: an answer. A 503 from the admission gate (``Retry-After`` and its text) is counted
  again under ``busy``, so that it can be told from a health 503 (a program restarting);
- ``connect``: no connection (refused, or the backlog full): never admitted;
- ``unsent``: the connection broke while the request was being written: the server had not read it;
- ``lost``: the whole request was written and the connection then ended without a complete answer
  (reset, or closed empty): the one outcome the chaos suite must never see;
- ``timeout``: no complete answer within the client's patience (slow, not lost: reported).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GATE_TEXT",
    "Tally",
    "abrupt_resets",
    "half_open",
    "large_bodies",
    "read_response",
    "requesters",
    "slowloris",
    "sse_clients",
]

GATE_TEXT = b"connection limit"  # in the body of the admission gate's 503
CONNECT_TIMEOUT_S = 5.0
ANSWER_TIMEOUT_S = 10.0
HEAD_LIMIT = 64 * 1024
READS = ("/api/v1/health", "/api/status", "/", "/favicon.ico", "/metrics", "/pipeline-management", "/logs")


@dataclass
class Tally:
    """Outcomes of one pattern (see the module's docstring), and its requests' latencies in ms."""

    status: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)  # pattern-specific counts
    seconds: list[float] = field(default_factory=list)  # pattern-specific durations (e.g. held until closed)
    latencies_ms: list[float] = field(default_factory=list)

    def answer(self, status: int, headers: dict[str, str], body: bytes, started: float) -> None:
        """Count one HTTP answer (a 503 of the admission gate also under ``notes["busy"]``)."""
        self.status[status] += 1
        if status == 503 and "retry-after" in headers and GATE_TEXT in body:
            self.notes["busy"] += 1
        if len(self.latencies_ms) < 200_000:
            self.latencies_ms.append((time.monotonic() - started) * 1000)

    def as_json(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

        return {
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "errors": dict(self.errors),
            "notes": dict(self.notes),
            "requests": sum(self.status.values()) + sum(self.errors[k] for k in ("unsent", "lost", "timeout")),
            "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": lat[-1] if lat else None},
            "seconds": summary(self.seconds),
        }


def summary(values: list[float]) -> dict[str, float] | None:
    """Median and max of ``values`` (rounded), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return {"n": len(ordered), "median": round(ordered[len(ordered) // 2], 2), "max": round(ordered[-1], 2)}


async def read_response(reader: asyncio.StreamReader, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One response: (status, lower-cased headers, body); ``head_only`` leaves the body unread.

    Raises ``asyncio.IncompleteReadError`` or ``ConnectionError`` when the connection ends first.
    """
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if head_only or status in (204, 304):
        return status, headers, b""
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
            pass
        return status, headers, bytes(body)
    return status, headers, await reader.read()  # delimited by the close


def request_bytes(
    port: int, method: str, path: str, *, body: bytes = b"", close: bool = False, token: str = "", extra: str = ""
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: foss-chaos\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    head += extra + ("Connection: close\r\n" if close else "") + "\r\n"
    return head.encode() + body


async def connect(port: int, tally: Tally) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            return await asyncio.open_connection("127.0.0.1", port, limit=HEAD_LIMIT)
    except (OSError, TimeoutError):
        tally.errors["connect"] += 1
        return None


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, tally: Tally) -> bool:
    """Send one request and read its answer into ``tally``; True when the connection may carry another."""
    started = time.monotonic()
    try:
        writer.write(data)
        await writer.drain()
    except ConnectionError:
        tally.errors["unsent"] += 1
        return False
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            status, headers, body = await read_response(reader)
    except TimeoutError:
        tally.errors["timeout"] += 1
        return False
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError, IndexError):
        tally.errors["lost"] += 1
        return False
    tally.answer(status, headers, body, started)
    return headers.get("connection", "").lower() != "close"


async def requesters(
    port: int, stop: asyncio.Event, tally: Tally, connections: int, keepalive: float = 0.5, token: str = ""
) -> None:
    """``connections`` clients, each sending requests back to back (reads and read-only commands, with the
    read ``token``) until ``stop``; a share ``keepalive`` of them keep their connection, the others send
    ``Connection: close``."""

    async def client(i: int) -> None:
        keep = i < connections * keepalive
        rng = random.Random(i)
        while not stop.is_set():
            conn = await connect(port, tally)
            if conn is None:
                await asyncio.sleep(0.05)
                continue
            reader, writer = conn
            try:
                while not stop.is_set():
                    if rng.random() < 0.15:
                        name = rng.choice(("status", "ping", "health"))
                        data = request_bytes(
                            port, "POST", f"/api/commands/{name}", body=b"{}", close=not keep, token=token
                        )
                    else:
                        data = request_bytes(port, "GET", rng.choice(READS), close=not keep, token=token)
                    if not await exchange(reader, writer, data, tally) or not keep:
                        break
            finally:
                writer.close()

    await asyncio.gather(*(client(i) for i in range(connections)))


async def _held(port: int, stop: asyncio.Event, tally: Tally, first: bytes, trickle_s: float | None) -> None:
    """One connection that sends ``first`` then (with ``trickle_s``) one header line every ``trickle_s``, until
    ``stop`` or until the server answers or closes it (counted, with how long it was held)."""
    conn = await connect(port, tally)
    if conn is None:
        return
    reader, writer = conn
    opened = time.monotonic()
    try:
        writer.write(first)
        n = 0
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(reader.read(HEAD_LIMIT), trickle_s or 1.0)
            except TimeoutError:
                if trickle_s is not None:
                    n += 1
                    writer.write(f"X-Trickle-{n}: {'x' * 20}\r\n".encode())
                continue
            tally.seconds.append(time.monotonic() - opened)
            code = data[9:12].decode("latin-1") if data.startswith(b"HTTP/1.") else ""
            tally.notes[f"closed by server, answered {code}" if code else "closed by server, no answer"] += 1
            return
        tally.notes["held until the end"] += 1
    except ConnectionError:
        tally.notes["reset by server"] += 1
    finally:
        writer.close()


async def slowloris(port: int, stop: asyncio.Event, tally: Tally, connections: int, trickle_s: float = 1.0) -> None:
    """``connections`` clients that trickle request headers (one line every ``trickle_s``), never finishing."""
    head = f"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
    await asyncio.gather(*(_held(port, stop, tally, head, trickle_s) for _ in range(connections)))


async def half_open(port: int, stop: asyncio.Event, tally: Tally, connections: int) -> None:
    """``connections`` clients: half connect and never send, half send half a request line and stop."""
    await asyncio.gather(
        *(_held(port, stop, tally, b"" if i % 2 else b"GET /api/v1/hea", None) for i in range(connections))
    )


async def sse_clients(port: int, stop: asyncio.Event, tally: Tally, connections: int, token: str = "") -> None:
    """``connections`` event-stream readers (``/api/events``): each reads its stream until ``stop``.

    ``notes``: streams served, refused (503: at most 100 streams), and cut by the server before the end
    (counted as ``lost`` too: an admitted stream must not be dropped); ``seconds``: time to the first event.
    """

    async def reader_client() -> None:
        conn = await connect(port, tally)
        if conn is None:
            return
        reader, writer = conn
        started = time.monotonic()
        try:
            writer.write(request_bytes(port, "GET", "/api/events", token=token, extra="Accept: text/event-stream\r\n"))
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                status, _, _ = await read_response(reader, head_only=True)
            tally.status[status] += 1
            if status != 200:
                tally.notes["refused"] += 1
                return
            tally.notes["served"] += 1
            first = True
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    chunk = await asyncio.wait_for(reader.read(65536), 0.5)
                    if not chunk:
                        tally.notes["cut by server"] += 1
                        tally.errors["lost"] += 1
                        return
                    if first and b"event:" in chunk:
                        tally.seconds.append(time.monotonic() - started)
                        first = False
                    tally.notes["events"] += chunk.count(b"\nevent: ") + chunk.startswith(b"event: ")
        except TimeoutError:
            tally.errors["timeout"] += 1
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
            tally.errors["lost"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(reader_client() for _ in range(connections)))


async def large_bodies(port: int, stop: asyncio.Event, tally: Tally, workers: int, size: int, token: str) -> None:
    """``workers`` clients POSTing ``size`` bytes to command endpoints, as Content-Length and as chunks, with
    the token; every one must be refused by size (413), or not admitted at all (the gate's 503 at the cap).
    ``notes``: how each was answered."""

    async def send_body(writer: asyncio.StreamWriter, chunked: bool) -> None:
        piece = b"[" + b"1," * 32767 + b"1]"  # 64 KiB of JSON-looking bytes
        sent = 0
        while sent < size:
            part = piece[: size - sent]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            await writer.drain()
            sent += len(part)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def worker(i: int) -> None:
        n = 0
        while not stop.is_set():
            conn = await connect(port, tally)
            if conn is None:
                await asyncio.sleep(0.05)
                continue
            reader, writer = conn
            n += 1
            chunked, path = bool(n % 2), ("/api/commands/status", "/api/commands/start")[(n // 2 + i) % 2]
            length = "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\n{length}Connection: close\r\n\r\n"
            ).encode()
            started = time.monotonic()
            sending: asyncio.Task[None] | None = None
            try:
                writer.write(head)
                sending = asyncio.ensure_future(send_body(writer, chunked))
                async with asyncio.timeout(ANSWER_TIMEOUT_S + size / 1e6):
                    status, headers, body = await read_response(reader)
                tally.answer(status, headers, body, started)
                if status == 413:
                    tally.notes["refused by size (413)"] += 1
                elif status == 503 and GATE_TEXT in body:
                    tally.notes["not admitted (503 at the cap)"] += 1
                else:
                    tally.notes[f"answered {status}, not by size"] += 1
            except TimeoutError:
                tally.errors["timeout"] += 1
            except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
                # lost only when the whole body had left: a server that answered early (413, or the gate's
                # 503) and closed after its lingering read, while a slow client still sent, is "unsent"
                whole = sending is not None and sending.done() and not sending.cancelled() and not sending.exception()
                tally.errors["lost" if whole else "unsent"] += 1
            finally:
                if sending is not None:
                    sending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                        await sending
                writer.close()

    await asyncio.gather(*(worker(i) for i in range(workers)))


async def abrupt_resets(port: int, stop: asyncio.Event, tally: Tally, workers: int, token: str) -> None:
    """``workers`` clients that start a request and reset the connection (SO_LINGER 0, then close) mid-way:
    after part of the head, after a whole GET, or after part of a POST's body. ``notes``: resets sent."""
    shapes = (
        ("partial head", lambda p: f"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nAcc".encode()),
        ("whole GET", lambda p: request_bytes(p, "GET", random.choice(READS))),
        (
            "partial body",
            lambda p: request_bytes(p, "POST", "/api/commands/status", token=token, body=b'{"names": []}')[:-6],
        ),
    )

    async def worker() -> None:
        while not stop.is_set():
            conn = await connect(port, tally)
            if conn is None:
                await asyncio.sleep(0.05)
                continue
            _, writer = conn
            name, make = random.choice(shapes)
            try:
                writer.write(make(port))
                await writer.drain()
                await asyncio.sleep(random.uniform(0, 0.02))
            except ConnectionError:
                tally.notes["reset by server first"] += 1
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            tally.notes[f"reset after {name}"] += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
