"""The control socket server: a thin transport over :func:`foss_supervisor.commands.registry.answer` (every reply
and error message passes its redaction).

The socket is created with mode 0600 (umask set around ``bind``, so there is no window where it is
wider) and peers of another uid are refused (root excepted), checked with ``SO_PEERCRED``.

Besides commands, a connection may ``subscribe`` (see :mod:`foss_supervisor.control.protocol`): it then
carries the daemon's events, read from the core's :class:`~foss_supervisor.core.eventlog.EventLog`, until the
client closes it. A subscriber that does not read is cut after ``STREAM_WRITE_TIMEOUT_S``; one that
falls behind the log's memory gets a ``resync`` line, never an unbounded queue in the daemon.

Reading a request is bounded in time, so silent or half-open clients cannot pile up (each holds a
descriptor and a task): a connection with no request under way (just connected, or answered) is closed
when no byte of a new request comes within :data:`IDLE_TIMEOUT_S`, and a request whose first byte came
must be whole (its newline) within :data:`REQUEST_TIMEOUT_S`, else it is answered with a ProtocolError
and closed. A client waiting for the reply of a long command (an export, a reload stopping slow
programs) waits as long as the command runs. Our CLI connects, asks and reads at once; a client that keeps
a connection between requests reconnects after an idle close.

Admission, so that no number of local clients slows supervision (which shares this loop):

- at most :data:`MAX_CONNECTIONS_PER_PEER` connections per client process (``SO_PEERCRED``), so that one
  runaway script cannot starve the others (the CLI, the dashboard process); past it, that process's own
  longest idle connection gives way (a pool), else the newcomer gets a ``DaemonBusy`` line;
- at most :data:`MAX_CONNECTIONS` connections are open at once. A new one past it first takes the place of
  an idle connection (no request under way: it would be closed at its idle timeout anyway; it is told so
  by a ``DaemonBusy`` line, ``id`` null): one of the process holding the most connections when that is
  at least two more than the newcomer's (a fair share), else the longest idle once idle for
  :data:`EVICT_IDLE_AFTER_S`. When none may give way, the newcomer gets that line and is closed.
  Our clients connect again with backoff within their timeout,
  as they do when the listen backlog is full;
- the daemon's own services (the dashboard process, a child of the daemon, known by its PID) are admitted
  beside that cap and never give way: no number of other local clients can turn the dashboard's pages
  into errors (they are still held to the per-process cap, and the dashboard holds 9);
- at most :data:`MAX_COMMANDS_IN_FLIGHT` commands run at once; the others wait their turn in arrival order
  (one per connection at most, so the queue is bounded by the connection cap);
- a command begins only in a turn of the event loop with room (:class:`~foss_supervisor.base.turnshare.TurnShare`:
  the first of a turn, then others for 2 ms): the delay a flood of requests adds to supervision's next
  callback is bounded by that, not by how many clients ask;
- replies are written in chunks of :data:`WRITE_CHUNK_BYTES`, each of which must leave within
  :data:`WRITE_TIMEOUT_S`: a client that does not read its reply is dropped and its buffer freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections import Counter
from pathlib import Path

import structlog

from foss_supervisor.base.turnshare import DEFAULT_BUDGET_S, TurnShare
from foss_supervisor.commands import ACTOR, COMMANDS, Actor, CommandContext, answer
from foss_supervisor.control.protocol import (
    MAX_LINE_BYTES,
    SUBSCRIBE,
    VERSION,
    decode_request,
    encode,
    error_reply,
    ok_reply,
)
from foss_supervisor.core.eventlog import EventLog
from foss_supervisor.errors import ControlError, DaemonBusy, ProtocolError, SupervisorError

__all__ = [
    "EVICT_IDLE_AFTER_S",
    "IDLE_TIMEOUT_S",
    "MAX_COMMANDS_IN_FLIGHT",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_PEER",
    "REQUEST_TIMEOUT_S",
    "WRITE_CHUNK_BYTES",
    "WRITE_TIMEOUT_S",
    "ControlServer",
]

log = structlog.get_logger("foss_supervisor.control")

STREAM_KEEPALIVE_S = 15.0  # a subscriber hears at least this often that the daemon is alive
STREAM_WRITE_TIMEOUT_S = 10.0  # a subscriber that reads nothing for this long is disconnected
IDLE_TIMEOUT_S = 10.0  # no byte of a new request within this long (after connecting or a reply): closed
REQUEST_TIMEOUT_S = 5.0  # a request line must be whole within this long of its first byte
# within the descriptors the daemon keeps for its own clients (daemon.fdlimits.FDS_RESERVED); the
# dashboard process holds 9 of them (a pool of 8 and its event stream)
MAX_CONNECTIONS = 100
MAX_CONNECTIONS_PER_PEER = 16  # per client process: the dashboard process holds 9
MAX_COMMANDS_IN_FLIGHT = 16  # commands running at once; the others wait in arrival order
EVICT_IDLE_AFTER_S = 5.0  # an idle connection gives way to any newcomer only after this long (never a fresh one)
LINGER_S = 1.0  # a connection told busy is kept this long while what it sent is read and dropped
MAX_LINGERING = 3 * MAX_CONNECTIONS  # connections told busy that may linger at once; others closed at once
WRITE_TIMEOUT_S = 10.0  # each chunk of a reply must leave within this long, else the client is dropped
SOCKET_SNDBUF_BYTES = 32 * 1024  # the kernel's share of unread replies per connection (it doubles this)
WRITE_CHUNK_BYTES = 64 * 1024  # a reply is handed to the socket this much at a time


def _peer_cred(writer: asyncio.StreamWriter) -> tuple[int, int | None]:
    """(pid, uid) of the peer process (``SO_PEERCRED``); (0, None) when the socket is gone."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return 0, None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return 0, None
    pid, uid, _gid = struct.unpack("3i", creds)
    return int(pid), int(uid)


class ControlServer:
    """Serves the control protocol on ``path`` until closed."""

    def __init__(
        self,
        path: Path,
        ctx: CommandContext,
        events: EventLog | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        max_per_peer: int = MAX_CONNECTIONS_PER_PEER,
        max_in_flight: int = MAX_COMMANDS_IN_FLIGHT,
        write_timeout_s: float = WRITE_TIMEOUT_S,
        evict_idle_after_s: float = EVICT_IDLE_AFTER_S,
        turn_budget_s: float = DEFAULT_BUDGET_S,
    ) -> None:
        self.path = path
        self.ctx = ctx
        self.events = events
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer
        self._per_peer: Counter[int] = Counter()  # open connections by peer pid
        self._peer_of: dict[asyncio.Task[None], int] = {}
        self.write_timeout_s = write_timeout_s
        self.evict_idle_after_s = evict_idle_after_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        # connections waiting for the first byte of a request, longest idle first (evicted first)
        self._idle: dict[asyncio.Task[None], tuple[asyncio.StreamWriter, float]] = {}
        self._evicted: set[asyncio.Task[None]] = set()
        self._services: set[asyncio.Task[None]] = set()  # connections of the daemon's own services
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self.turns = TurnShare(turn_budget_s)  # clients' share of each turn of the loop
        self._lingering = 0  # connections told busy and not yet closed
        self.refused_busy = 0  # connections refused at the cap since start
        self.evicted_idle = 0  # idle connections closed to make room since start

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a daemon that was killed; the PID lock says it is ours now
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_LINE_BYTES)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _admit(self, writer: asyncio.StreamWriter, peer: int, service: bool) -> bool:
        """Room for one more connection of process ``peer``: under the caps, or the longest idle one closed.

        ``service``: ``peer`` is one of the daemon's own services, admitted beside the global cap.
        False: refused (told so with one ``DaemonBusy`` line, and closed).
        """
        if self._share(peer) >= self.max_per_peer:
            own = next((task for task in self._evictable() if self._peer_of.get(task) == peer), None)
            if own is None:
                why = f"{self.max_per_peer} control connections of this process are open (its limit)"
                return self._refuse(writer, why)
            self._evict(own)  # its own longest idle one gives way (a pool of connections, like the dashboard's)
            return True
        if service or len(self._connections) - len(self._evicted) - len(self._services) < self.max_connections:
            return True
        victim = self._victim(peer)
        if victim is None:
            return self._refuse(writer, f"{self.max_connections} control connections are open (its limit)")
        self._evict(victim)
        return True

    def _share(self, peer: int) -> int:
        """The connections process ``peer`` holds, those already giving way not counted."""
        return self._per_peer[peer] - sum(1 for task in self._evicted if self._peer_of.get(task) == peer)

    def _evict(self, task: asyncio.Task[None]) -> None:
        idle_writer, _since = self._idle.pop(task)
        self._evicted.add(task)  # counted out now; its task ends within a turn of the loop
        self.evicted_idle += 1
        self._tell_busy(idle_writer, "its control connections are all in use; this idle one gave way")

    def _victim(self, peer: int) -> asyncio.Task[None] | None:
        """The idle connection that gives way to a newcomer of process ``peer``, or None.

        First the longest idle of the process holding the most connections, if it holds at least two more
        than ``peer`` would (a fair share: the CLI gets in beside a runaway script, and equals do not evict
        each other); else the longest idle of all, once idle for ``evict_idle_after_s`` (never a fresh one).
        """
        idle = [task for task in self._evictable() if task not in self._services]  # a service never gives way
        if not idle:
            return None
        mine = self._share(peer) + 1
        heaviest = max(idle, key=lambda task: self._per_peer[self._peer_of.get(task, 0)])
        if self._per_peer[self._peer_of.get(heaviest, 0)] - 1 >= mine + 1:
            return heaviest
        oldest = idle[0]
        if asyncio.get_running_loop().time() - self._idle[oldest][1] >= self.evict_idle_after_s:
            return oldest
        return None

    def _evictable(self) -> list[asyncio.Task[None]]:
        """The idle connections whose last reply has wholly left (``drain`` returns at the low-water mark,
        not at empty: closing one with a reply still buffered would cut it, and the client would take the
        cut line for an answer and its next request for lost), longest idle first."""
        return [task for task, (writer, _since) in self._idle.items() if not writer.transport.get_write_buffer_size()]

    def _is_service(self, peer: int) -> bool:
        """Whether process ``peer`` is one of the daemon's own services (its children: a PID it has not reaped)."""
        return any(proc.pid == peer for proc in self.ctx.services.processes.values())

    @staticmethod
    def _busy_line(why: str) -> bytes:
        return encode(error_reply(None, DaemonBusy(f"the daemon is busy: {why}; try again")))

    def _refuse(self, writer: asyncio.StreamWriter, why: str) -> bool:
        self.refused_busy += 1
        if self.refused_busy == 1 or self.refused_busy % 1000 == 0:
            log.warning("control_connection_refused_busy", why=why, refused=self.refused_busy)
        self._tell_busy(writer, why)
        return False

    def _tell_busy(self, writer: asyncio.StreamWriter, why: str) -> None:
        """One ``DaemonBusy`` line, then a lingering close: the write side is shut at once and the socket kept
        :data:`LINGER_S` while what the client had sent is read and dropped. Closing with a request unread
        would make the kernel reset the connection, and the client would lose the busy line with it.
        Past :data:`MAX_LINGERING` such sockets, or for a client that does not read, closed at once."""
        transport = writer.transport
        writer.write(self._busy_line(why))  # one short line: fits the socket buffer of a reading client
        if transport.get_write_buffer_size() or self._lingering >= MAX_LINGERING or not writer.can_write_eof():
            transport.abort()  # replies it has not read are not waited for (close would flush them first)
            return
        writer.write_eof()
        self._lingering += 1

        def end() -> None:
            self._lingering -= 1
            transport.abort()

        asyncio.get_running_loop().call_later(LINGER_S, end)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer, uid = _peer_cred(writer)
        service = self._is_service(peer)
        if not self._admit(writer, peer, service):
            return
        self._connections.add(task)
        if service:
            self._services.add(task)
        self._per_peer[peer] += 1
        self._peer_of[task] = peer
        with contextlib.suppress(OSError):  # what a client that does not read can make us answer ahead
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SNDBUF_BYTES)
        try:
            if uid is None or (uid != os.getuid() and uid != 0):
                log.warning("control_peer_refused", uid=uid)
                await self._send(
                    writer, encode(error_reply(None, ControlError("permission denied: peer has another uid")))
                )
                return
            # the audit's "who": this connection's commands run in this task's context
            ACTOR.set(Actor("web" if service else "control", uid, peer))
            await self._requests(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._idle.pop(task, None)
            lingering = task in self._evicted  # told busy: its lingering close ends it (_tell_busy)
            self._evicted.discard(task)
            self._connections.discard(task)
            self._services.discard(task)
            self._per_peer[peer] -= 1
            del self._peer_of[task]
            if not self._per_peer[peer]:
                del self._per_peer[peer]
            if not lingering:
                writer.close()
                with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await self._read_request(reader, writer)
            if line is None:
                return
            if not line.strip():
                continue
            stream = self._subscription(line)
            if stream is not None:
                await self._stream(writer, *stream)
                return
            async with self._in_flight:  # a command takes the time it takes: never cut
                # and begins only in a turn of the loop with room: however many clients have requests
                # ready (pipelined ones too), supervision's next callback waits for a couple of ms of them
                await self.turns.take()
                reply = await self._answer(line)
            await self._send(writer, reply)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Write ``data`` a chunk at a time, each chunk leaving within ``write_timeout_s``.

        Raises TimeoutError after dropping a client that does not read (its buffered reply is freed).
        """
        view = memoryview(data)
        for start in range(0, len(view), WRITE_CHUNK_BYTES):
            writer.write(view[start : start + WRITE_CHUNK_BYTES])
            try:
                async with asyncio.timeout(self.write_timeout_s):
                    await writer.drain()
            except TimeoutError:
                log.info("control_client_not_reading", write_timeout_s=self.write_timeout_s, reply_bytes=len(data))
                writer.transport.abort()  # frees what is buffered now, not after a flush that never comes
                raise

    def _subscription(self, line: bytes) -> tuple[object, dict[str, object]] | None:
        """(request id, args) when ``line`` is a well-formed ``subscribe`` request this server can serve."""
        if self.events is None or SUBSCRIBE.encode() not in line:
            return None
        try:
            req_id, cmd, args = decode_request(line)
        except ProtocolError:
            return None  # answered as an error by _answer
        return (req_id, args) if cmd == SUBSCRIBE else None

    async def _stream(self, writer: asyncio.StreamWriter, req_id: object, args: dict[str, object]) -> None:
        """Serve events on this connection until the client leaves (see the protocol's ``subscribe``)."""
        events = self.events
        assert events is not None
        since, boot = args.get("since"), args.get("boot")
        resume = isinstance(since, int) and not isinstance(since, bool) and boot == events.boot
        seq = since if resume and isinstance(since, int) and 0 <= since <= events.seq else events.seq
        resync = bool(since is not None or boot is not None) and seq == events.seq and not resume
        writer.write(encode(ok_reply(req_id, {"boot": events.boot, "seq": seq, "resync": resync})))
        while True:
            async with asyncio.timeout(STREAM_WRITE_TIMEOUT_S):
                await writer.drain()  # a client that reads nothing is cut here
            batch, gap = events.since(seq)
            if gap:  # what follows continues from the first event still kept
                restart_at = batch[0]["seq"] - 1 if batch else events.seq
                writer.write(encode({"v": VERSION, "resync": True, "seq": restart_at}))
            for data in batch:
                writer.write(encode({"v": VERSION, "event": data}))
            seq = events.seq if (batch or gap) else seq
            if writer.is_closing():
                return
            if not await events.wait(seq, STREAM_KEEPALIVE_S):
                writer.write(encode({"v": VERSION, "keepalive": True, "seq": seq}))

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """The next request line, or None when the connection is to close (end, idle, too slow, too long)."""
        task = asyncio.current_task()
        assert task is not None
        self._idle[task] = (writer, asyncio.get_running_loop().time())  # evictable until a request byte comes
        try:
            async with asyncio.timeout(self.idle_timeout_s):
                first = await reader.read(1)
        except TimeoutError:
            log.debug("control_client_idle_closed", idle_timeout_s=self.idle_timeout_s)
            return None
        finally:
            self._idle.pop(task, None)
        if not first or task in self._evicted:  # evicted as its first byte came: told busy, never run
            return None
        if first == b"\n":
            return first
        try:
            async with asyncio.timeout(self.request_timeout_s):
                return first + await reader.readuntil(b"\n")
        except TimeoutError:
            log.info("control_request_too_slow", request_timeout_s=self.request_timeout_s)
            why = f"request not completed (no newline) within {self.request_timeout_s:g}s of its first byte"
            writer.write(encode(error_reply(None, ProtocolError(why))))
        except asyncio.IncompleteReadError:
            writer.write(encode(error_reply(None, ProtocolError("request must end with a newline"))))
        except asyncio.LimitOverrunError:
            log.warning("control_request_too_large", limit=MAX_LINE_BYTES)
            writer.write(encode(error_reply(None, ProtocolError(f"request longer than {MAX_LINE_BYTES} bytes"))))
        async with asyncio.timeout(self.write_timeout_s):
            await writer.drain()
        return None

    async def _answer(self, line: bytes) -> bytes:
        """The encoded reply line; a bulky command's (the whole config) is encoded on a worker thread."""
        req_id = None
        try:
            req_id, cmd, args = decode_request(line)
            reply = ok_reply(req_id, await answer(self.ctx, cmd, args))
            return await asyncio.to_thread(encode, reply) if COMMANDS[cmd].bulky else encode(reply)
        except SupervisorError as exc:
            log.info("control_request_refused", error=str(exc), type=type(exc).__name__)
            return encode(error_reply(req_id, exc))
        except Exception as exc:  # a bug in one command must not take the daemon down
            log.exception("control_command_crashed")
            return encode(error_reply(req_id, exc))
