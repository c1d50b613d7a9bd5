"""The daemon reached over its control socket: what the dashboard process uses as its :class:`Core`.

Commands travel on a small pool of connections (at most :data:`POOL_SIZE` in flight: a flood of page
requests costs the daemon that many commands at a time, never more), each carrying one request at a time
in the control protocol (:mod:`foss_supervisor.control.protocol`). Events arrive on one more connection
that subscribed to the daemon's event log; when it ends (the daemon stopped, or cut a reader that did
not keep up) :attr:`RemoteCore.lost` resolves and the dashboard process exits, to be started afresh by
the daemon when it still runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

from foss_supervisor import errors
from foss_supervisor.commands import COMMANDS
from foss_supervisor.control.protocol import SUBSCRIBE, VERSION, encode
from foss_supervisor.errors import CommandError, ConfigRefused, NoAnswer, NotRunning, SupervisorError
from foss_supervisor.web.core import Core

__all__ = ["POOL_SIZE", "REPLY_LIMIT_BYTES", "RemoteCommandError", "RemoteCore", "error_from_reply"]

POOL_SIZE = 8  # commands in flight from the dashboard at once
# a pooled connection idle longer than this is not reused: the daemon closes idle ones after
# control.server.IDLE_TIMEOUT_S (10 s), and a request must never meet a connection closing under it
REUSE_IDLE_S = 5.0
REPLY_LIMIT_BYTES = 256 * 1024 * 1024  # one reply line (a status of 2,000 programs is ~1 MB)
CONNECT_TIMEOUT_S = 5.0
# answered by their own class; every other error reply is a RemoteCommandError carrying the name
_REPLY_ERRORS: dict[str, type[SupervisorError]] = {
    cls.__name__: cls
    for cls in (
        errors.ProtocolError,
        errors.CommandError,
        errors.ConfigRefused,
        errors.ControlError,
        errors.NoAnswer,
        errors.DaemonBusy,
        errors.NotRunning,
    )
}


class RemoteCommandError(CommandError):
    """An error reply of a kind this process has no class for (e.g. ``QueryTimeoutError``); ``type_name`` is it."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


def error_from_reply(error: Any) -> SupervisorError:
    """The exception an error reply stands for (``{"type", "message"}``)."""
    error = error if isinstance(error, dict) else {}
    name, message = str(error.get("type") or "CommandError"), str(error.get("message") or "unknown error")
    cls = _REPLY_ERRORS.get(name)
    if cls is ConfigRefused or cls is None:
        return ConfigRefused(message) if cls is ConfigRefused else RemoteCommandError(name, message)
    return cls(message)


class _Connection:
    """One control connection carrying one request at a time."""

    _ids = itertools.count(1)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def reusable(self) -> bool:
        """Fresh enough to carry another request (not closed, not idle near the daemon's idle timeout)."""
        fresh = time.monotonic() - self.idle_since < REUSE_IDLE_S
        return fresh and not self.reader.at_eof() and not self.writer.is_closing()

    @classmethod
    async def open(cls, path: Path) -> _Connection:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(str(path), limit=REPLY_LIMIT_BYTES)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotRunning(f"no daemon answers on {path} ({exc.strerror})") from None
        except TimeoutError:
            raise NoAnswer(f"no connection to the daemon on {path} within {CONNECT_TIMEOUT_S:g}s") from None
        return cls(reader, writer)

    async def request(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        req_id = next(self._ids)
        self.writer.write(encode({"v": VERSION, "id": req_id, "cmd": cmd, "args": args}))
        await self.writer.drain()
        line = await self.reader.readline()
        if not line:
            raise NotRunning("the daemon closed the control connection")
        reply = json.loads(line)
        if not isinstance(reply, dict) or reply.get("id") not in (req_id, None):
            raise NotRunning(f"the daemon answered out of turn: {line[:200]!r}")
        if reply.get("id") is None and (reply.get("error") or {}).get("type") == "DaemonBusy":
            # closed at the daemon's connection cap before it read the request (control.server)
            raise error_from_reply(reply["error"])
        return reply

    def close(self) -> None:
        self.writer.close()


class RemoteCore(Core):
    """:class:`~foss_supervisor.web.core.Core` over the control socket at ``path``."""

    def __init__(self, path: Path, pool_size: int = POOL_SIZE) -> None:
        super().__init__()
        self._path = path
        self._slots = asyncio.Semaphore(pool_size)
        self._pool_size = pool_size
        self._idle: list[_Connection] = []
        self._events: _Connection | None = None
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def start(self) -> None:
        """Subscribe to the daemon's events; raises NotRunning/NoAnswer when it cannot be reached."""
        conn = await _Connection.open(self._path)
        reply = await conn.request(SUBSCRIBE, {})
        if not reply.get("ok"):
            conn.close()
            raise error_from_reply(reply.get("error"))
        result = reply.get("result") or {}
        self.boot, self.seq = str(result.get("boot", "")), int(result.get("seq", 0))
        self._events = conn
        self._follower = asyncio.get_running_loop().create_task(self._follow(conn), name="web-remote-events")

    async def _call(self, name: str, args: dict[str, Any]) -> Any:
        command = COMMANDS.get(name)
        async with self._slots:
            # a state-changing command always goes on a fresh connection: never retried, never doubled
            conn = None if command is None or command.mutating else self._reuse()
            try:
                reply = await self._request(conn, name, args)
            except (ConnectionError, NotRunning, errors.DaemonBusy):
                if conn is None:
                    raise
                # the daemon closed the pooled connection as this request left (its idle timeout): the
                # request was not read, so a read-only command is asked again on a fresh connection
                reply = await self._request(None, name, args)
        if reply.get("ok"):
            return reply.get("result")
        raise error_from_reply(reply.get("error"))

    async def _request(self, conn: _Connection | None, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """One request on ``conn`` (None: a new connection), which goes back to the pool after its reply."""
        conn = conn or await _Connection.open(self._path)
        try:
            reply = await conn.request(name, args)
        except BaseException:  # cancelled or broken mid-request: the stream is out of step, drop it
            conn.close()
            raise
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        while len(self._idle) > self._pool_size:  # a state-changing command's fresh connection joined: the
            self._idle.pop(0).close()  # oldest goes, so the pool never holds more than its size
        return reply

    def _reuse(self) -> _Connection | None:
        """The most recently used pooled connection that is still fresh; stale ones are closed."""
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable():
                return conn
            conn.close()
        return None

    async def _follow(self, conn: _Connection) -> None:
        why = "the daemon closed the event stream"
        try:
            while line := await conn.reader.readline():
                message = json.loads(line)
                if "event" in message:
                    self._deliver(message["event"])
                elif message.get("resync"):
                    self._resync(self.boot, int(message.get("seq", self.seq)))
        except (OSError, ValueError) as exc:
            why = f"the event stream failed: {exc}"
        finally:
            if not self.lost.done():
                self.lost.set_result(why)

    async def close(self) -> None:
        await super().close()
        for conn in [*self._idle, *([self._events] if self._events else [])]:
            conn.close()
        self._idle.clear()
