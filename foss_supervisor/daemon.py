"""The daemon's lifecycle: PID lock, crash leftovers, port, control socket, web app, programs, signals.

Order of start-up (each step can refuse, with a clear reason, before anything runs):
lock the PID file -> stop what a crashed predecessor left -> bind the dashboard port -> serve the
control socket and the web app -> start programs -> ready. Shutdown runs the same steps backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib
import os
import signal
import socket
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import structlog

from foss_supervisor.config import Config, load_config
from foss_supervisor.control.server import ControlServer
from foss_supervisor.errors import CommandError, ConfigError, PortInUse
from foss_supervisor.events import DaemonStateChanged, EventBus, HealthChanged, StateChanged
from foss_supervisor.logsetup import configure_logging
from foss_supervisor.pidfile import PidFile
from foss_supervisor.procinfo import describe, identity_of, port_holder, terminate
from foss_supervisor.sdnotify import (
    Notifier,
    SystemdNotifier,
    extend_timeout_loop,
    format_status,
    listen_sockets,
    strip_systemd_environ,
    watchdog_interval_s,
    watchdog_loop,
)
from foss_supervisor.states import Health, ProcessState
from foss_supervisor.statestore import StateStore
from foss_supervisor.supervisor import Supervisor

__all__ = ["Daemon", "bind_dashboard", "looks_like_ours", "run_daemon"]

if TYPE_CHECKING:
    from foss_supervisor.pipeline_service import PipelineService

log = structlog.get_logger("foss_supervisor.daemon")

# How long the daemon waits for autostart programs before it calls itself ready anyway.
AUTOSTART_WAIT_S = 60.0


def looks_like_ours(holder: dict[str, Any]) -> bool:
    """A port holder whose command line is a foss-supervisor daemon."""
    cmdline = str(holder.get("cmdline") or "")
    return "foss_supervisor" in cmdline or "foss-supervisor" in cmdline


def bind_dashboard(host: str, port: int, *, take_over: bool, stop_timeout_s: float = 5.0) -> socket.socket:
    """Bind the dashboard port ourselves; replace a stale daemon of ours; touch a stranger only if asked."""
    for attempt in range(2):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
        holder = port_holder(port)
        ident = identity_of(int(holder["pid"])) if holder else None
        replace = holder is not None and (looks_like_ours(holder) or take_over)
        if attempt == 0 and holder and ident and ident.pid != os.getpid() and replace:
            why = "stale foss-supervisor instance" if looks_like_ours(holder) else "--take-over-port"
            log.warning("port_holder_stopping", port=port, reason=why, **holder)
            outcome = terminate(ident, stop_timeout_s)
            log.info("port_holder_stopped", port=port, pid=ident.pid, outcome=outcome)
            continue
        raise PortInUse(host, port, holder)
    raise PortInUse(host, port, port_holder(port))


def clean_leftovers(store: StateStore) -> None:
    """Stop the children a killed predecessor recorded, so no program ever runs twice."""
    leftovers = {n: i for n, i in store.leftovers().items() if i.alive()}
    if leftovers:
        with ThreadPoolExecutor(max_workers=min(16, len(leftovers))) as pool:
            results = pool.map(lambda ident: terminate(ident, 5.0, group=True), leftovers.values())
            for (name, ident), outcome in zip(leftovers.items(), results, strict=True):
                log.warning("leftover_stopped", program=name, pid=ident.pid, outcome=outcome)
    store.forget_leftovers()


def log_event(event: object) -> None:
    """The bus observer that turns events into structlog lines."""
    if isinstance(event, StateChanged):
        log.info("program_state", program=event.name, state=str(event.new), old=str(event.old), pid=event.pid,
                 exit_code=event.exit_code, reason=event.reason, retry_in_s=event.retry_in_s)  # fmt: skip
    elif isinstance(event, HealthChanged):
        log.info("program_health", program=event.name, old=str(event.old), new=str(event.new), detail=event.detail)
    elif isinstance(event, DaemonStateChanged):
        log.info("daemon_state", state=event.state, detail=event.detail)


class Daemon:
    """The running daemon; it is the :class:`~foss_supervisor.commands.CommandContext` of its commands."""

    def __init__(self, config: Config, dashboard_socket: socket.socket | None,
                 notifier: Notifier | None = None, watchdog_s: float | None = None) -> None:  # fmt: skip
        self._config = config
        self.bus = EventBus()
        self.bus.on(log_event)
        self.store = StateStore(config.state_dir)
        self.supervisor = Supervisor(config, self.bus, self.store)
        self.pipelines = _pipeline_service(config, self.bus)
        self.started_at = time.time()
        self.phase = "starting"
        self._dashboard_socket = dashboard_socket
        self._shutdown = asyncio.Event()
        self._signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
        self._notifier = notifier or Notifier(None)
        self._watchdog_s = watchdog_s
        self.bus.on(SystemdNotifier(self._notifier, self.status_line))

    @property
    def config(self) -> Config:
        return self._config

    def _set_phase(self, phase: str, detail: str = "") -> None:
        self.phase = phase
        self.bus.publish(DaemonStateChanged(state=phase, detail=detail))

    def status_line(self) -> str:
        """The one-line summary systemd shows (``systemctl status``)."""
        procs = list(self.supervisor.processes.values())
        return format_status(
            sum(p.state is ProcessState.RUNNING for p in procs), len(procs),
            fatal=sum(p.state is ProcessState.FATAL for p in procs),
            unhealthy=sum(p.health is Health.UNHEALTHY for p in procs),
            last_pipeline_run=self.pipelines.last_run_line() if self.pipelines else None,
        )  # fmt: skip

    def request_shutdown(self) -> None:
        if self.phase != "stopping":
            self._set_phase("stopping")
        self._shutdown.set()

    async def reload(self, dry_run: bool) -> dict[str, Any]:
        try:
            new = await asyncio.to_thread(load_config, self._config.source)
        except ConfigError as exc:
            log.error("reload_refused", error=str(exc))
            raise CommandError(f"config refused, the running config stays: {exc}") from None
        plan = self.supervisor.plan(new)
        needs_restart = [
            key for key, old_v, new_v in (
                ("state_dir", self._config.state_dir, new.state_dir),
                ("dashboard.host", self._config.dashboard_host, new.dashboard_host),
                ("dashboard.port", self._config.dashboard_port, new.dashboard_port),
                ("pipelines", self._config.pipelines, new.pipelines),
                ("data_dir", self._config.data_path, new.data_path),
            ) if old_v != new_v
        ]  # fmt: skip
        result: dict[str, Any] = {"dry_run": dry_run, **plan.as_dict(), "needs_daemon_restart": needs_restart}
        if dry_run:
            return result
        self._set_phase("reloading")
        try:
            await self.supervisor.apply(new)
            self._config = new
        finally:
            if self.phase == "reloading":  # a shutdown asked for meanwhile keeps its "stopping"
                self._set_phase("ready")
        return result

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT or the shutdown command; return the exit code."""
        loop = asyncio.get_running_loop()
        _use_pidfd_child_watcher(loop)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._signals.put_nowait, sig)  # handlers only enqueue
        control = ControlServer(self._config.control_socket, self)
        await control.start()
        started = asyncio.Event()
        runner = None
        try:
            async with asyncio.TaskGroup() as group:
                supervising = group.create_task(self.supervisor.run(started, self._shutdown), name="supervisor")
                # programs spawn while the web layer (aiohttp, jinja2, prometheus) is imported in a thread
                runner = await self._start_web()
                helpers = [group.create_task(self._handle_signals(), name="signals")]
                if self.pipelines is not None:
                    group.create_task(self.pipelines.run(self._shutdown), name="pipelines")
                if self._watchdog_s is not None:
                    helpers.append(group.create_task(
                        watchdog_loop(self._notifier, self._watchdog_s, lambda: not supervising.done()),
                        name="watchdog"))  # fmt: skip
                await started.wait()
                with contextlib.suppress(TimeoutError):
                    await self.supervisor.wait_autostarted(AUTOSTART_WAIT_S)
                if not self._shutdown.is_set():
                    self._set_phase("ready", self._config.dashboard_url)
                await self._shutdown.wait()
                if self._notifier.enabled:  # a long stop asks systemd for more time while it progresses
                    budget = max((p.stop_timeout_s for p in self._config.programs.values()), default=0.0) + 10.0
                    helpers.append(group.create_task(
                        extend_timeout_loop(self._notifier, budget, lambda: not supervising.done()),
                        name="extend-timeout"))  # fmt: skip
                await supervising
                for task in helpers:
                    task.cancel()
        finally:
            await control.close()
            if runner is not None:
                await runner.cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("daemon_stopped")
        return 0

    async def _handle_signals(self) -> None:
        while True:
            sig = await self._signals.get()
            log.info("signal_received", signal=sig.name)
            if sig is signal.SIGHUP:
                with contextlib.suppress(CommandError):
                    await self.reload(dry_run=False)
            else:
                self.request_shutdown()

    async def _start_web(self) -> Any:
        if self._dashboard_socket is None:
            return None
        await asyncio.to_thread(importlib.import_module, "foss_supervisor.web.app")
        from foss_supervisor.web.app import serve
        from foss_supervisor.web.auth import load_or_create_token

        token = load_or_create_token(self._config.state_dir / "api-token")
        return await serve(self, self.bus, token, self._dashboard_socket)


def _pipeline_service(config: Config, bus: EventBus) -> PipelineService | None:
    """The pipelines, imported only when some are configured (a daemon without them starts faster)."""
    if not config.pipelines:
        return None
    from foss_supervisor.pipeline_service import PipelineService

    return PipelineService(config, bus)


def _use_pidfd_child_watcher(loop: asyncio.AbstractEventLoop) -> None:
    """On 3.11, replace the thread-per-child watcher with pidfds (3.12+ does this by itself)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)


def run_daemon(config: Config, *, take_over_port: bool = False, stderr_logs: bool = True) -> int:
    """Run the daemon in this process (``start --foreground``) and return its exit code."""
    # what systemd handed us, read once; then gone from os.environ so no child inherits it
    notifier = Notifier.from_environ()
    watchdog_s = watchdog_interval_s()
    activated = listen_sockets()
    strip_systemd_environ(os.environ)
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    configure_logging(config.state_dir / "foss-supervisor.log", debug=config.debug, stderr=stderr_logs,
                      max_bytes=config.log_max_bytes, backups=config.log_backups)  # fmt: skip
    pidfile = PidFile(config.pid_file)
    stale = pidfile.acquire()
    try:
        if stale is not None and stale != os.getpid():
            holder = describe(stale)
            why = "no such process" if holder["cmdline"] is None else f"PID now belongs to {holder['cmdline']!r}"
            log.warning("stale_pid_file_replaced", pid=stale, reason=why)
        clean_leftovers(StateStore(config.state_dir))
        if activated:
            sock = activated[0]  # socket activation: systemd owns the port, we serve on what it passed
            sock.setblocking(False)
            log.info("socket_activated", address=str(sock.getsockname()), passed=len(activated))
        else:
            try:
                sock = bind_dashboard(config.dashboard_host, config.dashboard_port, take_over=take_over_port)
            except PortInUse as exc:
                log.error("port_in_use", host=exc.host, port=exc.port, holder=exc.holder)
                raise
        log.info("daemon_starting", pid=os.getpid(), config=str(config.source), state_dir=str(config.state_dir),
                 dashboard=config.dashboard_url)  # fmt: skip
        with sock:
            return asyncio.run(Daemon(config, sock, notifier, watchdog_s).run())
    finally:
        pidfile.release()
