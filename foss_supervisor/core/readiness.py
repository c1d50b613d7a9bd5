"""Readiness notification for programs that opt in: ``ready: notify`` (:class:`NotifyListener`) and
``ready: {log: REGEX}`` (:class:`LogLineWatch`: ready at the first line of output that matches,
process-compose's ``ready_log_line``; RE2, the config's one regex dialect, linear in the line's length).

The daemon gives such a program a private ``NOTIFY_SOCKET`` (a datagram socket of its own, never the
daemon's) and counts it RUNNING only after it sends ``READY=1``, the sd_notify protocol that
supervisord users have asked for for years. ``STATUS=`` lines are kept for status replies;
``WATCHDOG=1`` keep-alives are timed (``watchdog:``, systemd's ``WatchdogSec=``), and
``WATCHDOG=trigger`` asks to be treated as failed at once.

The socket's path is short whatever the program's name and the state dir: it is ``n`` in a private
folder made for the spawn (``mkdtemp``, mode 0700) under a short runtime dir (``/run`` for root, else
``$XDG_RUNTIME_DIR``, else ``/tmp``), about 40 bytes in all, far from the 107 bytes ``sun_path`` holds.
A path rather than Linux's abstract namespace (``@name``, which systemd also accepts) because many
programs send to ``NOTIFY_SOCKET`` as a plain path, as systemd gives services ``/run/systemd/notify``.
Two guards keep other local users out: the folder is the program's alone (0700, owned by its user), and
every datagram carries its sender's credentials (``SO_PASSCRED``/``SCM_CREDENTIALS``, filled in by the
kernel): one from a uid other than the program's or root's is dropped and counted in ``refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["MAX_WATCHED_LINE", "LogLineWatch", "NotifyListener", "notify_socket_dir"]

MAX_DATAGRAM = 4096
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_SHORT = 60  # a runtime dir longer than this is passed over for /tmp


#: a line longer than this is matched on its first MAX_WATCHED_LINE characters (the rest of it is dropped)
MAX_WATCHED_LINE = 64 * 1024


class LogLineWatch:
    """Watches one spawn's output until a line matches ``pattern``; then :attr:`ready` resolves and ``wake`` is
    called. ``feed`` takes the raw bytes of stdout or stderr as they arrive (each stream its own buffer)."""

    def __init__(self, pattern: str, wake: Callable[[], None]) -> None:
        import re2  # type: ignore[import-not-found,import-untyped,unused-ignore]  # only programs that use it

        self._regex = re2.compile(pattern)
        self._wake = wake
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._partial: dict[int, bytes] = {}

    def feed(self, fd: int, data: bytes) -> None:
        """Bytes of stream ``fd`` (empty: the stream ended, its last unterminated line counts)."""
        if self.ready.done():
            return
        buffered = self._partial.get(fd, b"") + data
        *lines, rest = buffered.split(b"\n") if data else [*buffered.split(b"\n"), b""]
        self._partial[fd] = rest[:MAX_WATCHED_LINE]
        for line in lines:
            if self._regex.search(line[:MAX_WATCHED_LINE].decode("utf-8", "replace")):
                self.ready.set_result(None)
                self._partial.clear()
                self._wake()
                return


def notify_socket_dir() -> Path:
    """Where notify sockets go: ``/run`` for root, ``$XDG_RUNTIME_DIR`` (when short), else ``/tmp``; a folder a
    program that runs as another user (``user:``) can reach, unlike the daemon's private
    :func:`foss_supervisor.base.controlsocket.runtime_dir` (0700, its control socket's)."""
    candidates = ["/run"] if os.geteuid() == 0 else []
    candidates += [os.environ.get("XDG_RUNTIME_DIR", ""), tempfile.gettempdir(), "/tmp"]
    for c in candidates:
        if c and len(os.fsencode(c)) <= _SHORT and os.access(c, os.W_OK | os.X_OK):
            return Path(c)
    return Path("/tmp")


class NotifyListener:
    """One program's notify socket; ``ready`` resolves on its first ``READY=1`` from the program's uid."""

    def __init__(self, on_ready: Callable[[], None]) -> None:
        self.path: Path | None = None  # NOTIFY_SOCKET's value once open
        self.status = ""
        self.watchdog_ping_at: float | None = None  # time.monotonic() of the last WATCHDOG=1
        self.watchdog_triggered = False
        self.refused = 0  # datagrams dropped: sent by another uid
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_ready = on_ready
        self._sock: socket.socket | None = None
        self._uids: frozenset[int] = frozenset()

    async def open(self, owner_uid: int | None = None) -> None:
        """Bind the socket; datagrams are taken from ``owner_uid`` (default: the daemon's own) and root."""
        self._uids = frozenset({0, os.geteuid() if owner_uid is None else owner_uid})
        folder = Path(tempfile.mkdtemp(prefix="foss-notify-", dir=notify_socket_dir()))
        self.path = folder / "n"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind(str(self.path))
            if owner_uid is not None:
                os.chown(self.path, owner_uid, -1)
                os.chown(folder, owner_uid, -1)
        except OSError:
            sock.close()
            self._remove()
            raise
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data, ancillary, _, _ = sock.recvmsg(MAX_DATAGRAM, socket.CMSG_SPACE(_UCRED.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            uid = next(
                (
                    _UCRED.unpack(cdata[: _UCRED.size])[1]
                    for level, kind, cdata in ancillary
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(cdata) >= _UCRED.size
                ),
                None,
            )
            if uid in self._uids:
                self._message(data)
            else:
                self.refused += 1

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
        if self._sock is not None:
            with contextlib.suppress(Exception):  # the loop may be closing already
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self._remove()

    def _remove(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path.parent, ignore_errors=True)
            self.path = None
