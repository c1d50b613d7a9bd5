"""The control socket server: a thin transport over :func:`foss_supervisor.commands.answer` (every reply
and error message passes its redaction).

The socket is created with mode 0600 (umask set around ``bind``, so there is no window where it is
wider) and peers of another uid are refused (root excepted), checked with ``SO_PEERCRED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from pathlib import Path

import structlog

from foss_supervisor.commands import CommandContext, answer
from foss_supervisor.control.protocol import MAX_LINE_BYTES, decode_request, encode, error_reply, ok_reply
from foss_supervisor.errors import ControlError, ProtocolError, SupervisorError

__all__ = ["ControlServer"]

log = structlog.get_logger("foss_supervisor.control")


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlServer:
    """Serves the control protocol on ``path`` until closed."""

    def __init__(self, path: Path, ctx: CommandContext) -> None:
        self.path = path
        self.ctx = ctx
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
            uid = _peer_uid(writer)
            if uid is None or (uid != os.getuid() and uid != 0):
                log.warning("control_peer_refused", uid=uid)
                writer.write(encode(error_reply(None, ControlError("permission denied: peer has another uid"))))
                await writer.drain()
                return
            await self._requests(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    writer.write(encode(error_reply(None, ProtocolError("request must end with a newline"))))
                    await writer.drain()
                return
            except asyncio.LimitOverrunError:
                log.warning("control_request_too_large", limit=MAX_LINE_BYTES)
                writer.write(encode(error_reply(None, ProtocolError(f"request longer than {MAX_LINE_BYTES} bytes"))))
                await writer.drain()
                return
            if not line.strip():
                continue
            writer.write(encode(await self._answer(line)))
            await writer.drain()

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
