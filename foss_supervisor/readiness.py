"""Readiness notification for programs that opt in (``ready: notify``).

The daemon gives such a program a private ``NOTIFY_SOCKET`` (a datagram socket of its own, never the
daemon's) and counts it RUNNING only after it sends ``READY=1``, the sd_notify protocol that
supervisord users have asked for for years. ``STATUS=`` lines are kept for status replies;
``WATCHDOG=1`` keep-alives are counted (``watchdog:``, systemd's ``WatchdogSec=``), and
``WATCHDOG=trigger`` asks to be treated as failed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["NotifyListener"]

MAX_DATAGRAM = 4096


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_message: Callable[[bytes], None]) -> None:
        self._on_message = on_message

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._on_message(data)


class NotifyListener:
    """One program's notify socket; ``ready`` resolves on its first ``READY=1``."""

    def __init__(self, path: Path, on_ready: Callable[[], None]) -> None:
        self.path = path
        self.status = ""
        self.watchdog_ping_at: float | None = None  # time.monotonic() of the last WATCHDOG=1
        self.watchdog_triggered = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_ready = on_ready
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self, owner_uid: int | None = None) -> None:
        """Bind the socket (mode 0600, owned by the program's user when it runs as another one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        if owner_uid is not None:
            os.chown(self.path, owner_uid, -1)
            os.chown(self.path.parent, owner_uid, -1)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Protocol(self._message), sock=sock
        )
        self._transport = transport

    def _message(self, data: bytes) -> None:
        for line in data[:MAX_DATAGRAM].decode("utf-8", "replace").splitlines():
            key, _, value = line.partition("=")
            if key == "STATUS":
                self.status = value
            elif key == "READY" and value == "1" and not self.ready.done():
                self.ready.set_result(None)
                self._on_ready()
            elif key == "WATCHDOG" and value == "1":
                self.watchdog_ping_at = time.monotonic()
            elif key == "WATCHDOG" and value == "trigger":
                self.watchdog_triggered = True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
