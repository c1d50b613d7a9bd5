"""The daemon's lifecycle: PID lock, crash leftovers, port, control socket, dashboard, programs, signals.

Order of start-up (each step can refuse, with a clear reason, before anything runs):
lock the PID file -> stop what a crashed predecessor left -> bind the dashboard port -> serve the
control socket -> start programs and the dashboard process -> ready. Shutdown runs the same steps
backwards. The dashboard is a process of its own (:mod:`foss_supervisor.core.services`): nothing in this
process serves HTTP, so no client can hold up the loop that supervises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Coroutine, Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

import structlog

from foss_supervisor.alerting.hooks import HookDispatcher
from foss_supervisor.base.diskroom import room_warning
from foss_supervisor.base.jsonable import dataclass_to_json
from foss_supervisor.base.loopguard import LoopErrorLog
from foss_supervisor.base.processstates import DaemonPhase, Health, ProcessState
from foss_supervisor.base.redact import Redactor
from foss_supervisor.base.tokens import load_or_create_token, write_viewer_token
from foss_supervisor.base.writefailures import WriteFailures
from foss_supervisor.commands.config import check_pipeline_files
from foss_supervisor.commands.impact import pipelines_preview
from foss_supervisor.config import Config, ProgramConfig, load_config
from foss_supervisor.config.change import pin_daemon_settings
from foss_supervisor.config.history import read_or_empty, reload_diff
from foss_supervisor.control.server import ControlServer
from foss_supervisor.core.containment import Containment, OwningChildWatcher, install_child_watcher
from foss_supervisor.core.eventjournal import EventJournal
from foss_supervisor.core.eventlog import EventLog
from foss_supervisor.core.events import DaemonStateChanged, EventBus, HealthChanged, StateChanged
from foss_supervisor.core.heartbeat import Heartbeat
from foss_supervisor.core.logsetup import log_pipeline_event
from foss_supervisor.core.seams import REAL_SEAMS
from foss_supervisor.core.services import Services, dashboard_service
from foss_supervisor.core.states import PHASE_TRANSITIONS
from foss_supervisor.core.statestore import StateStore
from foss_supervisor.core.supervisor import Supervisor
from foss_supervisor.daemon.fdlimits import open_files_shortfall
from foss_supervisor.daemon.notifier import SystemdNotifier, format_status
from foss_supervisor.daemon.sampler import sample_resources
from foss_supervisor.daemon.watching import make_watch
from foss_supervisor.errors import CommandError, ConfigError, ConfigRefused, DaemonError
from foss_supervisor.systemd.notify import (
    Notifier,
    extend_timeout_loop,
    watchdog_loop,
)

__all__ = ["Daemon", "log_event"]

if TYPE_CHECKING:
    from foss_supervisor.pipeline.engine.service import PipelineService

#: the longest the dashboard waits for the programs' first spawns (seconds)
SERVICES_AFTER_S = 1.0

log = structlog.get_logger("foss_supervisor.daemon")

# How long the daemon waits for autostart programs before it calls itself ready anyway.
AUTOSTART_WAIT_S = 60.0
# How long it waits for the dashboard process to serve before it calls itself ready anyway.
DASHBOARD_WAIT_S = 30.0


def log_event(event: object) -> None:
    """The bus observer that turns events into structlog lines."""
    if isinstance(event, StateChanged):  # levels a log filter can use: FATAL is an error, BACKOFF a warning
        method = {ProcessState.FATAL: log.error, ProcessState.BACKOFF: log.warning}.get(event.new, log.info)
        method(
            "program_state",
            program=event.name,
            state=str(event.new),
            old=str(event.old),
            pid=event.pid,
            exit_code=event.exit_code,
            reason=event.reason,
            retry_in_s=event.retry_in_s,
        )
    elif isinstance(event, HealthChanged):
        method = log.warning if event.new is Health.UNHEALTHY else log.info
        method("program_health", program=event.name, old=str(event.old), new=str(event.new), detail=event.detail)
    elif isinstance(event, DaemonStateChanged):
        log.info("daemon_state", state=event.state, detail=event.detail)


class Daemon:
    """The running daemon; it is the :class:`~foss_supervisor.commands.registry.CommandContext` of its commands."""

    def __init__(
        self,
        config: Config,
        dashboard_socket: socket.socket | None,
        notifier: Notifier | None = None,
        watchdog_s: float | None = None,
        write_failures: WriteFailures | None = None,
        redactor: Redactor | None = None,
        instance_id: str = "",
    ) -> None:
        self._config = config
        self._config_text = read_or_empty(config.source)  # what a reload's diff is from (a small file, at start)
        self.instance_id = instance_id  # written in the PID lock file too: ping proves who answers
        if redactor is None:  # a redactor passed in has learned the config already (run_daemon: before logging)
            redactor = Redactor()
            redactor.learn(config)
        self.redactor = redactor  # the egress gate: replies, events, hook payloads, log lines
        self.bus = EventBus()
        self.write_failures = write_failures or WriteFailures()  # state files, program logs, the daemon log
        self.event_journal = EventJournal(
            config.state_dir / "history",
            retention_days=config.history_retention_days,
            max_bytes=config.history_max_bytes,
            failures=self.write_failures,
        )
        # every event, numbered and redacted: what subscribers read, and what the journal keeps
        journal = self.event_journal.append if config.history_enabled else None  # history.enabled: at start
        self.events = EventLog(self.redactor.data, sink=journal, catch_up=self.bus.flush)
        # recorders, after the step that published (or when a command or a reader flushes): a respawn's fork does
        # not wait for its log line
        self.bus.on(self.events.append, deferred=True)
        self.bus.on(log_event, deferred=True)
        self.bus.on(log_pipeline_event, deferred=True)
        self.store = StateStore(config.state_dir, self.write_failures)
        self.containment = Containment(self._owned_by_watcher)
        self.supervisor = Supervisor(config, self.bus, self.store, self.containment)
        self.services = Services(config.state_dir, self.bus, self.store, self.containment)
        self.heartbeat = Heartbeat()
        self.pipelines = _pipeline_service(config, self.bus, self.write_failures)
        self.hooks = HookDispatcher(
            lambda: self._config.hooks, self._selectables, self.redactor, report=self.bus.publish
        )  # each delivery's end is an event the journal keeps
        self.bus.on(self.hooks.offer)  # hooks only enqueue here; their workers deliver in the background
        # objectives and alerts (docs/graph.md): on the supervisor's clock, told through the hooks above
        self.alert_watch = make_watch(lambda: self._config, self.bus, lambda: self.pipelines, REAL_SEAMS)
        self.started_at = time.time()
        self.phase = DaemonPhase.STARTING
        self.changes = 0  # state-changing commands run (see CommandContext)
        self._dashboard_socket = dashboard_socket
        self._shutdown = asyncio.Event()
        self._signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
        self._notifier = notifier or Notifier(None)
        self._watchdog_s = watchdog_s
        self._watcher: OwningChildWatcher | None = None
        self._problems: list[str] = []
        self._reload_refused = ""  # why the last reload was refused, until one succeeds
        self._reloading = asyncio.Lock()  # one reload (or scale) at a time: each plans from what the last applied
        # program -> (the file's replicas when scaled, the scaled count): kept by reloads while the file's count
        # of that program stays as it was (an edit of it is the operator's new word), until the daemon restarts
        self._scaled: dict[str, tuple[int, int]] = {}
        self.bus.on(SystemdNotifier(self._notifier, self.status_line))

    def _selectables(self) -> tuple[list[str], dict[str, list[str]], Mapping[str, tuple[str, ...]]]:
        return list(self.supervisor.processes), self._config.replica_sets, self._config.groups

    def _owned_by_watcher(self) -> AbstractSet[int]:
        return self._watcher.owned_pids() if self._watcher is not None else frozenset()

    @property
    def config(self) -> Config:
        return self._config

    def _set_phase(self, phase: DaemonPhase, detail: str = "") -> None:
        PHASE_TRANSITIONS.check(self.phase, phase)
        self.phase = phase
        self.bus.publish(DaemonStateChanged(state=phase, detail=detail))

    def status_line(self) -> str:
        """The one-line summary systemd shows (``systemctl status``)."""
        procs = list(self.supervisor.processes.values())
        return format_status(
            sum(p.state is ProcessState.RUNNING for p in procs),
            len(procs),
            fatal=sum(p.state is ProcessState.FATAL for p in procs),
            unhealthy=sum(p.health is Health.UNHEALTHY for p in procs),
            last_pipeline_run=self.pipelines.last_run_line() if self.pipelines else None,
        )

    def request_shutdown(self) -> None:
        if self.phase is not DaemonPhase.STOPPING:
            self._set_phase(DaemonPhase.STOPPING)
        self._shutdown.set()

    async def reload(self, dry_run: bool, replicas: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Apply the config file again (``dry_run``: only say what would change); returns the plan.

        A refused reload (:class:`ConfigRefused`, or pipelines refused as :class:`CommandError`) keeps
        the running config and, unless ``dry_run``, stays in :attr:`warnings` (``status``, ``/health``:
        degraded) until a reload succeeds. Reloads run one at a time: two at once (two ``scale`` commands,
        SIGHUP during a reload) would both plan from the same running programs and stop one twice.
        """
        try:
            if dry_run:
                result = await self._reload(dry_run, replicas)
            else:
                async with self._reloading:  # one at a time: a save's, SIGHUP's, scale's
                    result = await self._reload(dry_run, replicas)
        except CommandError as exc:
            if not dry_run:
                self._reload_refused = f"last reload refused: {exc}"
            raise
        if not dry_run:
            self._reload_refused = ""
        return result

    async def _load(self, replicas: Mapping[str, int] | None) -> Config:
        try:
            return await asyncio.to_thread(load_config, self._config.source, None, replicas, check_pipeline_files)
        except ConfigError as exc:
            log.error("reload_refused", error=str(exc))
            raise ConfigRefused(f"config refused, the running config stays: {exc}") from None

    async def _reload(self, dry_run: bool, replicas: Mapping[str, int] | None) -> dict[str, Any]:
        text = await asyncio.to_thread(read_or_empty, self._config.source)  # the file as this reload reads it
        as_written = await self._load(None)
        file_counts = {name: len(members) for name, members in as_written.replica_sets.items()}
        if replicas is None:  # a plain reload keeps the scales whose program's count the file still has
            replicas = {n: count for n, (written, count) in self._scaled.items() if file_counts.get(n) == written}
        new = await self._load(replicas) if replicas else as_written
        if (short := open_files_shortfall(len(new.programs))) is not None:
            log.error("reload_refused", error=short)
            raise ConfigRefused(f"config refused, the running config stays: {short}")
        # daemon-level settings keep their running values until a restart: never reported, never half-applied
        new, needs_restart = pin_daemon_settings(self._config, new)
        plan = self.supervisor.plan(new)
        # pipelines are reloaded by their service; only starting or ending the service needs a restart. Steps
        # whose SQL changed, what they rebuild (a column a reader or a contract uses may not go, graph.md), then
        # what `pipeline validate` refuses (reloadcheck.py): as the config editor's Check does
        pipelines_plan, impact = await pipelines_preview(self.pipelines, new, self._config.contracts)
        result: dict[str, Any] = {
            "dry_run": dry_run,
            **dataclass_to_json(plan),
            "needs_daemon_restart": needs_restart,
            "pipelines": pipelines_plan,
            "impact": impact,
        }
        if dry_run:
            return result
        if needs_restart:
            log.warning(
                "reload_needs_daemon_restart",
                settings=needs_restart,
                detail="the running values stay until `foss-supervisor restart`",
            )
        if self.phase is DaemonPhase.STOPPING:  # a shutdown began while the new config was read: it wins
            raise CommandError("the daemon is stopping: the config is not applied")
        back_to = self.phase  # starting or ready
        self._set_phase(DaemonPhase.RELOADING)
        try:
            if pipelines_plan is not None and self.pipelines is not None:
                result["pipelines"] = await self.pipelines.reload(new, dry_run=False)
            self.redactor.learn(new)  # before anything of the new config can be shown or logged
            diff = await asyncio.to_thread(reload_diff, self._config_text, text, self._config.source)
            await self.supervisor.apply(new, diff)
            self._config = new
            self._config_text = text
            self._scaled = {n: (file_counts[n], c) for n, c in replicas.items() if file_counts.get(n, c) != c}
        finally:
            if self.phase is DaemonPhase.RELOADING:  # a shutdown asked for meanwhile keeps its "stopping"
                self._set_phase(back_to)
        return result

    @property
    def problems(self) -> list[str]:
        """Daemon-level errors that make it unhealthy: a subsystem that failed, a service of the daemon (the
        dashboard) that is not running (see verdict.assess)."""
        return [*self._problems, *self.services.problems()]

    @property
    def warnings(self) -> list[str]:
        """Daemon-level errors that make it degraded: a refused reload (the running config stays), a state
        filesystem nearly full (base/diskroom.py), files that cannot be written (see verdict.assess)."""
        refused = [self._reload_refused] if self._reload_refused else []
        room = room_warning(self._config.state_dir)  # before writes fail: a state filesystem nearly full
        return [*refused, *([room] if room else []), *self.write_failures.problems]

    def _subsystem_failed(self, name: str, exc: BaseException) -> None:
        log.error("subsystem_failed", subsystem=name, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        self._problems.append(f"{name} failed: {type(exc).__name__}: {exc}")

    def _sample_interval(self) -> float:
        """Seconds between resource samples; 0 (none) while history is off (they are kept nowhere else)."""
        return self._config.history_sample_interval_s if self._config.history_enabled else 0.0

    async def _guarded(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run a subsystem; its failure is logged and shown in status, and never takes the programs down."""
        try:
            await coro
        except Exception as exc:
            self._subsystem_failed(name, exc)

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT or the shutdown command; return the exit code.

        Raises :class:`DaemonError` when the control socket cannot be served (nothing has been
        started yet then). The dashboard and the pipelines failing later are logged, shown in
        ``status`` and leave the programs running.
        """
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(LoopErrorLog())
        control = ControlServer(self._config.control_socket, self, self.events)
        try:
            await control.start()
        except OSError as exc:
            log.error("control_socket_failed", path=str(self._config.control_socket), error=str(exc))
            raise DaemonError(f"cannot serve the control socket {self._config.control_socket}: {exc}") from None
        try:
            if self._config.history_enabled:
                self.event_journal.start()
        except OSError as exc:  # no history is a problem shown in status, not a reason to leave programs alone
            self._subsystem_failed("journal", exc)
        self._watcher = install_child_watcher(loop)
        self.containment.start(loop)  # subreaper: nothing a program starts can leave the daemon's tree
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self._signals.put_nowait, sig)  # handlers only enqueue
        started = asyncio.Event()
        services_down = asyncio.Event()  # the dashboard stops last: it shows the programs stopping
        try:
            async with asyncio.TaskGroup() as group:
                supervising = group.create_task(self.supervisor.run(started, self._shutdown), name="supervisor")
                serving = group.create_task(self._serve(started, services_down), name="services")
                helpers = [
                    group.create_task(self._handle_signals(), name="signals"),
                    group.create_task(self.heartbeat.run(), name="heartbeat"),
                    group.create_task(self._guarded("write-probes", self.write_failures.watch_quiet()), name="probes"),
                    group.create_task(self._guarded("hooks", self.hooks.run()), name="hooks"),
                    group.create_task(self._guarded("alerts", self.alert_watch.run()), name="alerts"),
                    group.create_task(
                        self._guarded("history", sample_resources(self, self._sample_interval)),
                        name="resource-samples",
                    ),
                ]
                if self.pipelines is not None:
                    group.create_task(self._guarded("pipelines", self.pipelines.run(self._shutdown)), name="pipelines")
                if self._watchdog_s is not None:
                    helpers.append(
                        group.create_task(
                            watchdog_loop(self._notifier, self._watchdog_s, lambda: not supervising.done()),
                            name="watchdog",
                        )
                    )
                await started.wait()
                with contextlib.suppress(TimeoutError):
                    await self.supervisor.wait_autostarted(AUTOSTART_WAIT_S)
                await self.services.wait_running(DASHBOARD_WAIT_S)
                if not self._shutdown.is_set():
                    self._set_phase(DaemonPhase.READY, self._config.dashboard_url)
                await self._shutdown.wait()
                if self._notifier.enabled:  # a long stop asks systemd for more time while it progresses
                    budget = max((p.stop_timeout_s for p in self._config.programs.values()), default=0.0) + 10.0
                    helpers.append(
                        group.create_task(
                            extend_timeout_loop(self._notifier, budget, lambda: not supervising.done()),
                            name="extend-timeout",
                        )
                    )
                await supervising  # the dashboard shows the programs stopping, then stops itself
                services_down.set()
                await serving
                self._stop_listening()  # the dashboard is down: nobody will accept from now on
                for task in helpers:
                    task.cancel()
        finally:
            await control.close()
            self.bus.flush()  # what the last step published reaches the feed and the journal before it closes
            self.event_journal.close()  # what the last second queued (bounded: 5 s)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self.containment.end_adopted()
            self.containment.close()
        log.info("daemon_stopped")
        return 0

    def _stop_listening(self) -> None:
        """Shutting down, once the dashboard process is gone: the port refuses new connections from now on,
        instead of queueing them in a backlog nobody will serve while the programs stop."""
        if self._dashboard_socket is not None:
            with contextlib.suppress(OSError):
                self._dashboard_socket.shutdown(socket.SHUT_RDWR)

    async def _serve(self, started: asyncio.Event, services_down: asyncio.Event) -> None:
        """Run the daemon's own children once the programs' first spawns are under way (at most
        :data:`SERVICES_AFTER_S` later): a cold start of many programs is not slowed by the dashboard's own."""
        await started.wait()
        await self.supervisor.wait_spawned(SERVICES_AFTER_S)
        await self.services.run(self._services(), services_down)

    def _services(self) -> list[ProgramConfig]:
        """The daemon's own children: the dashboard process, when there is a port to serve."""
        if self._dashboard_socket is None:
            return []
        token_file = self._config.state_dir / "api-token"
        try:
            token = load_or_create_token(token_file)  # before the dashboard reads it (`start` prints the URL)
            write_viewer_token(self._config.state_dir, token)  # the read-only token that goes with it
        except OSError as exc:  # a dashboard that cannot start must not strand the programs
            self._subsystem_failed("dashboard", exc)
            return []
        return [dashboard_service(self._config, self._dashboard_socket, token_file, os.getpid())]

    async def _handle_signals(self) -> None:
        while True:
            sig = await self._signals.get()
            log.info("signal_received", signal=sig.name)
            if sig is signal.SIGHUP:
                with contextlib.suppress(CommandError):
                    await self.reload(dry_run=False)
            else:
                self.request_shutdown()


def _pipeline_service(config: Config, bus: EventBus, write_failures: WriteFailures) -> PipelineService | None:
    """The pipelines, imported only when some are configured (a daemon without them starts faster)."""
    if not config.pipelines:
        return None
    from foss_supervisor.pipeline.engine.service import PipelineService

    return PipelineService(config, bus, write_failures)
