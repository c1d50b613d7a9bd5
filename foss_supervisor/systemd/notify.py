"""systemd integration without libsystemd: sd_notify, the watchdog, and socket activation.

The protocol is small enough to speak directly (``man sd_notify``, ``man sd_listen_fds``): newline-separated
``KEY=VALUE`` lines in one datagram to the ``AF_UNIX`` socket named by ``NOTIFY_SOCKET`` (``@`` means the
abstract namespace), and inherited listening sockets from fd 3 on, announced by ``LISTEN_FDS``/``LISTEN_PID``.
Everything is a no-op when the variables are unset, so the daemon calls it unconditionally.

How the daemon uses it::

    notifier = Notifier.from_environ()
    interval = watchdog_interval_s()
    sockets = listen_sockets()
    strip_systemd_environ(os.environ)          # no child (program, worker) ever sees them
    bus.on(SystemdNotifier(notifier, status_text))        # foss_supervisor.daemon.notifier
    group.create_task(watchdog_loop(notifier, interval, making_progress))   # when interval is not None
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Final

import structlog

__all__ = [
    "LISTEN_FDS_START",
    "SYSTEMD_ENVIRON",
    "Notifier",
    "extend_timeout_loop",
    "listen_fd_names",
    "listen_sockets",
    "monotonic_usec",
    "named_listen_sockets",
    "parse_message",
    "strip_systemd_environ",
    "watchdog_interval_s",
    "watchdog_loop",
    "without_systemd_environ",
]

log = structlog.get_logger("foss_supervisor.systemd.notify")

# sd_listen_fds(3): passed sockets start right after stdin, stdout and stderr.
LISTEN_FDS_START: Final = 3
# What systemd hands to its main process only: a child that inherits them could claim our readiness,
# feed our watchdog, or serve our port.
SYSTEMD_ENVIRON: Final = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)
# A send blocks only when systemd's (8 MiB) receive queue is full; never hold the event loop longer.
SEND_TIMEOUT_S: Final = 1.0


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd expects in ``MONOTONIC_USEC``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _one_line(text: str) -> str:
    """A value must not contain a newline, or it would start a new assignment."""
    return " ".join(text.splitlines())


def _address(value: str) -> str | None:
    """``NOTIFY_SOCKET`` as a socket address; ``@name`` is abstract. Other schemes (vsock:) are unsupported."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends sd_notify messages; every method returns whether the datagram went out and never raises."""

    def __init__(self, notify_socket: str | None) -> None:
        self.address = _address(notify_socket) if notify_socket else None
        if notify_socket and self.address is None:
            log.warning("notify_socket_unsupported", notify_socket=notify_socket)
        self.sent = 0
        self.failed = 0
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier ``NOTIFY_SOCKET`` asks for (disabled when it is unset)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram (one datagram = one atomic state update for systemd)."""
        if self.address is None or not lines:
            return False
        for line in lines:
            if "\n" in line or "=" not in line:
                raise ValueError(f"not a single KEY=VALUE line: {line!r}")
        data = "\n".join(lines).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # close-on-exec by default
                self._sock.settimeout(SEND_TIMEOUT_S)
            self._sock.sendto(data, self.address)
        except OSError as exc:
            self.failed += 1
            if self.failed == 1 or exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                log.warning("sd_notify_failed", error=str(exc), message=data.decode()[:200])
            return False
        self.sent += 1
        return True

    def notify(self, **fields: object) -> bool:
        """``notify(ready=1, status="...")``: keyword names are upper-cased, booleans become 1/0."""
        lines = []
        for key, value in fields.items():
            text = str(int(value)) if isinstance(value, bool) else str(value)
            lines.append(f"{key.upper()}={_one_line(text)}")
        return self.send(*lines)

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) is complete: systemd moves the unit to active and starts dependents."""
        return self.send("READY=1", *self._status_lines(status))

    def reloading(self, status: str | None = None) -> bool:
        """A reload started; ``MONOTONIC_USEC`` lets ``Type=notify-reload`` match it to its request."""
        return self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", *self._status_lines(status))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown started, so systemd shows 'deactivating' instead of treating the exit as a crash."""
        return self.send("STOPPING=1", *self._status_lines(status))

    def status(self, text: str) -> bool:
        """The one line ``systemctl status`` shows under 'Status:'."""
        return self.send(*self._status_lines(text))

    def watchdog(self) -> bool:
        """Keep-alive; systemd kills and restarts us when these stop for ``WatchdogSec``."""
        return self.send("WATCHDOG=1")

    def extend_timeout(self, usec: int) -> bool:
        """Ask for ``usec`` more before the current start/stop timeout fires (counted from now)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={int(usec)}")

    @staticmethod
    def _status_lines(status: str | None) -> tuple[str, ...]:
        return () if status is None else (f"STATUS={_one_line(status)}",)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def parse_message(data: bytes) -> dict[str, str]:
    """Decode one notify datagram into its assignments (later ones win), as systemd reads it."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key:
            fields[key] = value
    return fields


# ---------------------------------------------------------------------------------------------- watchdog


def watchdog_interval_s(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``: half of ``WATCHDOG_USEC`` (sd_watchdog_enabled's advice), or None.

    None when no watchdog is configured, the value is malformed, or ``WATCHDOG_PID`` names another process
    (the variables leaked from a parent).
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    wanted_pid = env.get("WATCHDOG_PID")
    if wanted_pid:
        try:
            if int(wanted_pid) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000


def _progress(making_progress: Callable[[], bool]) -> bool:
    try:
        return bool(making_progress())
    except Exception:  # a broken probe must not kill the loop that reports it; it just counts as stuck
        log.exception("progress_check_failed")
        return False


async def watchdog_loop(notifier: Notifier, interval_s: float, making_progress: Callable[[], bool]) -> None:
    """Send ``WATCHDOG=1`` every ``interval_s`` while ``making_progress()`` is true; runs until cancelled.

    It runs on the event loop on purpose: a blocked loop cannot run it, so the pings stop by themselves and
    systemd restarts a daemon that is wedged, not just one that crashed. ``making_progress`` adds what the
    loop cannot see for itself (for example, the supervision task has died).
    """
    stalled = False
    while True:
        if _progress(making_progress):
            notifier.watchdog()
            if stalled:
                log.info("watchdog_resumed")
            stalled = False
        elif not stalled:
            stalled = True
            log.warning("watchdog_withheld", reason="the daemon is not making progress")
        await asyncio.sleep(interval_s)


async def extend_timeout_loop(
    notifier: Notifier, extend_s: float, making_progress: Callable[[], bool], *, interval_s: float | None = None
) -> None:
    """While a long stop (or start) is under way, keep extending systemd's timeout by ``extend_s``.

    Each message grants ``extend_s`` from now, so it is re-sent every ``interval_s`` (default a third of
    ``extend_s``) while ``making_progress()`` holds; a stuck shutdown stops asking and systemd's own timeout
    (then SIGKILL) takes over. Runs until cancelled.
    """
    every = extend_s / 3 if interval_s is None else interval_s
    while _progress(making_progress):
        notifier.extend_timeout(int(extend_s * 1_000_000))
        await asyncio.sleep(every)


# ---------------------------------------------------------------------------------------------- activation


def listen_fd_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """``LISTEN_FDNAMES`` split on ``:`` (systemd's ``FileDescriptorName=``; ``unknown`` when unnamed)."""
    env = os.environ if environ is None else environ
    names = env.get("LISTEN_FDNAMES")
    return names.split(":") if names else []


def named_listen_sockets(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> list[tuple[str, socket.socket]]:
    """The sockets systemd passed us, with their names, as ``sd_listen_fds_with_names`` finds them.

    Empty when ``LISTEN_PID`` is not ``pid`` (the variables were meant for a parent) or the variables are
    missing or malformed. Each fd is marked close-on-exec so no supervised program inherits the port.
    """
    env = os.environ if environ is None else environ
    try:
        listen_pid = int(env.get("LISTEN_PID", ""))
        count = int(env.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    if listen_pid != (os.getpid() if pid is None else pid) or count <= 0:
        return []
    names = listen_fd_names(env)
    if len(names) != count:
        names = ["unknown"] * count
    result: list[tuple[str, socket.socket]] = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count):
        try:
            os.set_inheritable(fd, False)  # FD_CLOEXEC
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            for _, opened in result:
                opened.detach()
            raise OSError(exc.errno, f"LISTEN_FDS={count} but fd {fd} is not a usable socket: {exc}") from exc
        result.append((names[fd - LISTEN_FDS_START], sock))
    return result


def listen_sockets(environ: Mapping[str, str] | None = None, pid: int | None = None) -> list[socket.socket]:
    """The passed sockets in fd order (fd 3 first); ``[]`` when systemd passed none to this process."""
    return [sock for _, sock in named_listen_sockets(environ, pid)]


def strip_systemd_environ(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Remove the service-manager variables from ``environ`` in place (sd_notify's ``unset_environment``).

    Call it on ``os.environ`` once the notifier, watchdog and sockets are set up; returns what was removed.
    """
    removed = {}
    for key in SYSTEMD_ENVIRON:
        with contextlib.suppress(KeyError):
            removed[key] = environ.pop(key)
    return removed


def without_systemd_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` without the service-manager variables, for a child's environment."""
    return {k: v for k, v in environ.items() if k not in SYSTEMD_ENVIRON}
