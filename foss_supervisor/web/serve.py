"""The dashboard process: the web app in a process of its own, supervised by the daemon like a program.

Why a process: a thread in the daemon shares its interpreter, its GIL and process-wide locks
(``concurrent.futures`` takes a module-global lock in ``submit``); one load test wedged both threads and
supervision stopped. As a separate process (gunicorn's arbiter and its workers, systemd and its services)
the dashboard shares nothing with the supervision loop but the control protocol: whatever browsers do to
it, programs are still reaped, probed and restarted, and a wedged or dead dashboard is replaced.

The daemon binds the dashboard's port (it owns port 5000) and starts
``python -m foss_supervisor.web --listen-fd N --control-socket PATH --token-file PATH --dashboard-host H
--parent-pid P`` with that socket inherited, ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``. This process:

1. dies with the daemon (``PR_SET_PDEATHSIG``), and exits at once if the daemon is already gone;
2. subscribes to the daemon's events and serves the app (:func:`~foss_supervisor.web.app.create_app`) on
   the inherited socket, reaching the daemon only through :class:`~foss_supervisor.web.remote.RemoteCore`;
3. sends ``READY=1`` once it serves, then ``WATCHDOG=1`` from its event loop every half watchdog
   interval: a wedged loop stops the pings and the daemon replaces the process;
4. stops on SIGTERM (open streams end, requests in progress get aiohttp's shutdown grace), and exits
   when the daemon's event stream ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import math
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from foss_supervisor.base.filemodes import make_private
from foss_supervisor.base.loopguard import LoopErrorLog
from foss_supervisor.core.logsetup import configure_logging
from foss_supervisor.systemd.notify import Notifier, watchdog_interval_s
from foss_supervisor.web.app import create_app
from foss_supervisor.web.keys import GUARD
from foss_supervisor.web.limits import FILE_RESERVE, GuardedSockSite, Limits
from foss_supervisor.web.remote import RemoteCore

__all__ = ["ClientErrorFilter", "client_side", "default_limits", "main"]

log = structlog.get_logger("foss_supervisor.web")

MAX_REQUEST_LINE = 64 * 1024  # bytes of a request line, its query string included
SHUTDOWN_GRACE_S = 5.0  # aiohttp's shutdown_timeout: requests in progress get this long on SIGTERM
PR_SET_PDEATHSIG = 1


def client_side(exc: BaseException | None) -> str | None:
    """``"malformed"`` or ``"disconnected"`` when a request failed by its client's doing, None otherwise.

    Malformed: aiohttp refused the request with a 4xx (a 10 KB query string, a bad header). Disconnected: the
    client reset or left while its request was read or answered (``ConnectionError``, aiohttp's
    ``ClientConnectionResetError`` among them, or asyncio's ``RuntimeError("Transport is closing")`` from a
    file being sent to a connection already closed).
    """
    if isinstance(exc, HttpProcessingError):
        return "malformed" if (exc.code or 400) < 500 else None
    if isinstance(exc, ConnectionError):
        return "disconnected"
    if type(exc) is RuntimeError and str(exc) == "Transport is closing":
        return "disconnected"
    return None


class ClientErrorFilter(logging.Filter):
    """Keeps clients' failures (see :func:`client_side`) out of the log as errors.

    aiohttp logs each at ERROR ("Error handling request", "Unhandled exception"), with a traceback, though
    the client got its 400 or had already gone: any client could fill the log (a chaos run's abrupt resets
    wrote 455 tracebacks in 4 s), and a log filter on "error" would show nothing but them. Such records are
    counted instead, and every ``every_s`` one info line says how many there were. Errors of our own (a
    handler that raised: 500) are logged as before.
    """

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self.refused = 0  # malformed requests
        self.disconnected = 0  # requests whose client reset or left
        self._last = -math.inf  # the first one is reported at once, however young the clock

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        kind = client_side(exc)
        if kind is None:
            return True
        if kind == "malformed":
            self.refused += 1
        else:
            self.disconnected += 1
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            log.info(
                "http_requests_refused",
                malformed=self.refused,
                disconnected=self.disconnected,
                last=f"{type(exc).__name__}: {getattr(exc, 'message', exc)}",
            )
        return False


def default_limits() -> Limits:
    """Connections admitted at once: a third of this process's open-files limit, between 64 and 4,096; and
    connections held at most (admitted, or refused and still being answered).

    The dashboard process has its own descriptors (the programs' pipes are the daemon's), so the bounds
    come from what it may open; the soft limit is raised to the hard one first (:func:`_raise_nofile`).
    Each admitted connection may hold one file more while a file is sent to it, and ``FILE_RESERVE`` stay
    for logs, the control connections and /proc: held connections + admitted + reserve <= the limit.
    """
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    soft = 1 << 20 if soft == resource.RLIM_INFINITY else soft
    admitted = max(64, min(4096, soft // 3))
    return Limits(max_connections=admitted, max_descriptors=max(96, soft - FILE_RESERVE - admitted))


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _die_with_parent(parent_pid: int) -> bool:
    """Ask the kernel for SIGTERM when the daemon dies; False when it is already gone (re-parented)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == parent_pid


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m foss_supervisor.web", description=__doc__.split("\n")[0])
    parser.add_argument("--listen-fd", type=int, required=True, help="the bound, listening socket to serve")
    parser.add_argument("--control-socket", type=Path, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--dashboard-host", required=True, help="the configured host, for the Host check")
    parser.add_argument("--parent-pid", type=int, required=True, help="the daemon: exit when it is gone")
    parser.add_argument("--history-dir", type=Path, help="the daemon's journal, for the 24 h and 7 d charts")
    parser.add_argument("--debug", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or the daemon goes away; returns the exit code (0 on SIGTERM)."""
    args = _arguments(argv)
    if not _die_with_parent(args.parent_pid):
        print("foss-supervisor dashboard: the daemon that started it is gone", file=sys.stderr)
        return 1
    make_private()  # whatever it writes (a session secret, a cache) is 0600
    configure_logging(None, debug=args.debug, stderr=True, max_bytes=0, backups=0)
    _raise_nofile()
    server_log = logging.getLogger("aiohttp.server")
    server_log.addFilter(ClientErrorFilter())
    sock = socket.socket(fileno=args.listen_fd)
    sock.setblocking(False)
    try:
        return asyncio.run(_serve(args, sock))
    finally:
        sock.close()


async def _serve(args: argparse.Namespace, sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(LoopErrorLog())
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    token = args.token_file.read_text(encoding="ascii").strip()
    core = RemoteCore(args.control_socket)
    await core.start()
    name = sock.getsockname()
    inet = sock.family in (socket.AF_INET, socket.AF_INET6)
    bound = (str(name[0]), int(name[1])) if inet else ("127.0.0.1", 0)
    limits = default_limits()
    app = create_app(
        core,
        token,
        dashboard_host=args.dashboard_host,
        bound=bound,
        limits=limits,
        history_dir=args.history_dir,
    )
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        keepalive_timeout=limits.idle_timeout_s,
        max_line_size=MAX_REQUEST_LINE,  # an export link carries its SQL (8 KiB by default)
    )
    await runner.setup()
    notifier = Notifier.from_environ()
    watchdog = asyncio.create_task(_watchdog(notifier), name="web-watchdog")
    try:
        await GuardedSockSite(runner, sock, app[GUARD]).start()
        notifier.ready(f"serving {bound[0]}:{bound[1]}, up to {limits.max_connections} connections")
        log.info("dashboard_serving", address=f"{bound[0]}:{bound[1]}", max_connections=limits.max_connections)
        stopping = asyncio.ensure_future(stop.wait())
        either: list[asyncio.Future[Any]] = [core.lost, stopping]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not stop.is_set():
            log.warning("dashboard_daemon_lost", reason=core.lost.result())
        notifier.stopping()
        return 0 if stop.is_set() else 1
    finally:
        watchdog.cancel()
        await runner.cleanup()
        await core.close()


async def _watchdog(notifier: Notifier) -> None:
    """``WATCHDOG=1`` every half interval, from this loop: pings stop when the loop is wedged."""
    interval = watchdog_interval_s()
    if interval is None or not notifier.enabled:
        return
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
