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
and closed. Only reading is bounded: a client waiting for the reply of a long command (an export, a
reload stopping slow programs) waits as long as the command runs. Our CLI connects, asks and reads at
once; a client that keeps a connection between requests reconnects after an idle close.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from pathlib import Path

import structlog

from foss_supervisor.commands import ACTOR, Actor, CommandContext, answer
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
from foss_supervisor.errors import ControlError, ProtocolError, SupervisorError

__all__ = ["IDLE_TIMEOUT_S", "REQUEST_TIMEOUT_S", "ControlServer"]

log = structlog.get_logger("foss_supervisor.control")

STREAM_KEEPALIVE_S = 15.0  # a subscriber hears at least this often that the daemon is alive
STREAM_WRITE_TIMEOUT_S = 10.0  # a subscriber that reads nothing for this long is disconnected
IDLE_TIMEOUT_S = 10.0  # no byte of a new request within this long (after connecting or a reply): closed
REQUEST_TIMEOUT_S = 5.0  # a request line must be whole within this long of its first byte


def _peer(writer: asyncio.StreamWriter) -> tuple[int, int] | None:
    """The peer's (pid, uid) from ``SO_PEERCRED``; None when the transport has no socket."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
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
    ) -> None:
        self.path = path
        self.ctx = ctx
        self.events = events
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

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

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            peer = _peer(writer)
            uid = None if peer is None else peer[1]
            if peer is None or (peer[1] != os.getuid() and peer[1] != 0):
                log.warning("control_peer_refused", uid=uid)
                writer.write(encode(error_reply(None, ControlError("permission denied: peer has another uid"))))
                await writer.drain()
                return
            # the audit's "who": this connection's commands run in this task's context
            dashboard = {s.get("pid") for s in self.ctx.services.snapshots() if s.get("name") == "@dashboard"}
            ACTOR.set(Actor("web" if peer[0] in dashboard else "control", peer[1], peer[0]))
            await self._requests(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._connections.discard(task)
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
            writer.write(encode(await self._answer(line)))  # a command takes the time it takes: never cut
            await writer.drain()

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
        try:
            async with asyncio.timeout(self.idle_timeout_s):
                first = await reader.read(1)
        except TimeoutError:
            log.debug("control_client_idle_closed", idle_timeout_s=self.idle_timeout_s)
            return None
        if not first:
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
        await writer.drain()
        return None

    async def _answer(self, line: bytes) -> dict[str, object]:
        req_id = None
        try:
            req_id, cmd, args = decode_request(line)
            return ok_reply(req_id, await answer(self.ctx, cmd, args))
        except SupervisorError as exc:
            log.info("control_request_refused", error=str(exc), type=type(exc).__name__)
            return error_reply(req_id, exc)
        except Exception as exc:  # a bug in one command must not take the daemon down
            log.exception("control_command_crashed")
            return error_reply(req_id, exc)
