"""A blocking control client (stdlib only, so ``foss-supervisor status`` starts fast).

A daemon whose control socket's backlog is full refuses new connections for a moment (``EAGAIN`` on
connect); so does, with ``ECONNREFUSED``, one whose socket file is there and whose PID lock is held but
that is not accepting yet. The client tries again with capped exponential backoff and jitter
(:data:`BUSY_FIRST_DELAY_S` doubling up to :data:`BUSY_MAX_DELAY_S`) within its timeout, then raises
:class:`~foss_supervisor.errors.DaemonBusy` (the CLI says "busy" and exits 75, EX_TEMPFAIL), never a
traceback. No socket file, or a refused connection with no daemon holding the lock, is NotRunning at once.
A daemon at its cap of control connections answers a new one with a ``DaemonBusy`` line and closes it (the
request was not read): the client connects again the same way.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import socket
import time

from foss_supervisor.control.protocol import VERSION, encode
from foss_supervisor.errors import (
    CommandError,
    ConfigRefused,
    ConfirmationRequired,
    DaemonBusy,
    NoAnswer,
    NotRunning,
    ProtocolError,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ``status`` starts faster
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    StrPath = str | os.PathLike[str]

__all__ = ["BUSY_FIRST_DELAY_S", "BUSY_MAX_DELAY_S", "STREAM_SILENCE_S", "ControlClient", "call"]

BUSY_FIRST_DELAY_S = 0.005  # the first wait before connecting again to a busy socket; doubles each time
BUSY_MAX_DELAY_S = 0.25  # the longest wait between two tries
STREAM_SILENCE_S = 45.0  # an event stream silent this long (keepalives come every 15 s) has gone
# next to the socket; its lock is held by a live daemon (foss_supervisor.base.pidfile)
PID_NAME = "foss-supervisor.pid"

_ids = itertools.count(1)
# error replies raised as these types by name; any other is a CommandError
_REPLY_ERRORS: dict[object, type[CommandError] | type[ProtocolError]] = {
    "ProtocolError": ProtocolError,
    "ConfigRefused": ConfigRefused,
    "ConfirmationRequired": ConfirmationRequired,
}


class ControlClient:
    """One connection to the daemon; use as a context manager."""

    def __init__(self, path: StrPath, timeout_s: float = 5.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buffer = b""
        self.busy_retries = 0  # connections the daemon was too busy to take before this one

    def __enter__(self) -> ControlClient:
        deadline = time.monotonic() + self.timeout_s
        delay = BUSY_FIRST_DELAY_S
        while True:
            busy = self._connect()
            if busy is None:
                return self
            delay = self._wait_busy(busy, deadline, delay)

    def _wait_busy(self, busy: str, deadline: float, delay: float) -> float:
        """Sleep a jittered ``delay`` before trying again; the next delay. Raises DaemonBusy past ``deadline``."""
        self.busy_retries += 1
        left = deadline - time.monotonic()
        if left <= 0:
            raise DaemonBusy(
                f"the daemon is busy: its control socket {self.path} took no new connection "
                f"within {self.timeout_s:g}s ({busy}); try again"
            ) from None
        import random  # only when busy: not a cost of every call

        time.sleep(min(left, delay * random.uniform(0.5, 1.0)))  # noqa: S311 - jitter, not a secret
        return min(delay * 2, BUSY_MAX_DELAY_S)

    def _connect(self) -> str | None:
        """Connect once; None when connected, else why the daemon is busy (a reason to try again).

        Raises NotRunning when nothing serves the socket, NoAnswer when the connect itself timed out.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(os.fspath(self.path))
        except BlockingIOError:  # EAGAIN: the listen backlog is full
            sock.close()
            return "its backlog is full"
        except ConnectionRefusedError as exc:
            sock.close()
            if os.path.exists(self.path) and _daemon_holds_lock(self.path):
                return "the daemon holds its lock but refused the connection"
            raise NotRunning(f"no daemon answers on {self.path} ({exc.strerror})") from None
        except FileNotFoundError as exc:
            sock.close()
            raise NotRunning(f"no daemon answers on {self.path} ({exc.strerror})") from None
        except TimeoutError:
            sock.close()
            raise NoAnswer(f"no connection to the daemon on {self.path} within {self.timeout_s:g}s") from None
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return "its backlog is full"
            raise
        self._sock = sock
        return None

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one request and return its result.

        Raises CommandError/ProtocolError for an error reply, NoAnswer when the daemon does not answer
        within ``timeout_s`` (busy, stopped or hung), NotRunning when it hangs up.
        """
        assert self._sock is not None, "use ControlClient as a context manager"
        deadline = time.monotonic() + self.timeout_s
        delay = BUSY_FIRST_DELAY_S
        while True:
            reply = self._ask(cmd, args)
            error = reply.get("error") or {}
            if reply.get("ok") or reply.get("id") is not None or error.get("type") != "DaemonBusy":
                break
            self.__exit__()  # refused at the daemon's connection cap before it read the request: ask again
            delay = self._wait_busy(str(error.get("message", "at its connection cap")), deadline, delay)
            while (busy := self._connect()) is not None:
                delay = self._wait_busy(busy, deadline, delay)
        if reply.get("ok"):
            return reply.get("result")
        exc_type = _REPLY_ERRORS.get(error.get("type"), CommandError)
        raise exc_type(error.get("message", "unknown error"))

    def _ask(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """Send one request on the open connection and read one reply line."""
        assert self._sock is not None
        req_id = next(_ids)
        try:
            # closed before our request was read: what it said (a busy line) is still to be read
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._sock.sendall(encode({"v": VERSION, "id": req_id, "cmd": cmd, "args": args}))
            while b"\n" not in self._buffer:
                try:
                    chunk = self._sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    raise NotRunning("the daemon closed the connection")
                self._buffer += chunk
        except TimeoutError:
            raise NoAnswer(
                f"the daemon did not answer {cmd!r} on {self.path} within {self.timeout_s:g}s (busy, stopped or hung)"
            ) from None
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def subscribe(self, boot: str | None = None, since: int | None = None) -> Iterator[dict[str, Any]]:
        """Turn this connection into the daemon's event stream (see the protocol's ``subscribe``).

        Yields the reply first (``{"boot", "seq", "resync"}``), then one message per line: ``{"event": {...}}``,
        ``{"keepalive": true, "seq"}`` or ``{"resync": true, "seq"}``. Raises NotRunning when the daemon closes
        the stream, NoAnswer when nothing (not even a keepalive) arrives within ``STREAM_SILENCE_S``.
        """
        assert self._sock is not None, "use ControlClient as a context manager"
        args: dict[str, Any] = {}
        if boot is not None and since is not None:
            args = {"boot": boot, "since": since}
        self._sock.sendall(encode({"v": VERSION, "id": next(_ids), "cmd": "subscribe", "args": args}))
        self._sock.settimeout(STREAM_SILENCE_S)
        first = True
        while True:
            while b"\n" not in self._buffer:
                try:
                    chunk = self._sock.recv(65536)
                except TimeoutError:
                    raise NoAnswer(f"the daemon sent nothing on {self.path} for {STREAM_SILENCE_S:g}s") from None
                if not chunk:
                    raise NotRunning("the daemon closed the event stream")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
            message = json.loads(line)
            if first:
                first = False
                if not message.get("ok"):
                    error = message.get("error") or {}
                    raise _REPLY_ERRORS.get(error.get("type"), CommandError)(error.get("message", "refused"))
                yield dict(message.get("result") or {})
            else:
                yield message


def _daemon_holds_lock(socket_path: StrPath) -> bool:
    """Whether a live daemon holds the PID lock next to its control socket (the lock, not a PID, proves it)."""
    from pathlib import Path

    from foss_supervisor.base.pidfile import PidFile

    return PidFile(Path(socket_path).with_name(PID_NAME)).inspect().locked


def call(path: StrPath, cmd: str, timeout_s: float = 5.0, **args: Any) -> Any:
    """Open a connection, make one call, close."""
    with ControlClient(path, timeout_s) as client:
        return client.call(cmd, **args)
