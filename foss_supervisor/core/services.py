"""The daemon's own services: children it runs for itself, supervised exactly like programs.

Today that is the dashboard (:mod:`foss_supervisor.web.serve`): a process of its own, started with the
dashboard's listening socket, ``ready: notify`` and a watchdog, restarted with backoff whenever it
exits or stops pinging. Services are :class:`~foss_supervisor.core.process.ManagedProcess` controllers like
every program (one spawn, stop and reap path; states and events of the same table), but they are not in
the config's ``programs``: selectors (``all``, groups, globs) never reach them, reloads never touch
them, and ``status`` lists them apart, under ``services``. Their names start with ``@``, which no
program name can.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.base.procinfo import identity_of
from foss_supervisor.config import Config, LogConfig, ProgramConfig
from foss_supervisor.config.model import BackoffPolicy
from foss_supervisor.core.containment import Containment
from foss_supervisor.core.events import EventBus
from foss_supervisor.core.logview import dashboard_log
from foss_supervisor.core.process import ManagedProcess
from foss_supervisor.core.statestore import StateStore

__all__ = ["DASHBOARD", "Services", "dashboard_service"]

log = structlog.get_logger("foss_supervisor.core.services")

DASHBOARD = "@dashboard"
DASHBOARD_WATCHDOG_S = 10.0  # the dashboard's event loop must answer this often, or it is replaced
DASHBOARD_START_S = 30.0  # READY=1 must come within this (imports and the first connection to the daemon)
DASHBOARD_NICE = 5  # under CPU pressure, the programs and the daemon come first


def dashboard_service(config: Config, sock: socket.socket, token_file: Path, parent_pid: int) -> ProgramConfig:
    """The dashboard process as a program: serves ``sock`` (inherited), talks to the daemon's control socket.

    It runs the package the daemon runs (``PYTHONPATH``), from ``/``, with ``faulthandler`` on, so a
    watchdog's SIGABRT writes every thread's stack to ``logs/@dashboard.log``.
    """
    fd = sock.fileno()
    argv = [
        sys.executable,
        "-X",
        "faulthandler",
        "-m",
        "foss_supervisor.web",
        "--listen-fd",
        str(fd),
        "--control-socket",
        str(config.control_socket),
        "--token-file",
        str(token_file),
        "--dashboard-host",
        config.dashboard_host,
        "--parent-pid",
        str(parent_pid),
        "--history-dir",
        str(config.state_dir / "history"),
        *(["--debug"] if config.debug else []),
    ]
    package_root = Path(__file__).resolve().parents[2]
    return ProgramConfig(
        name=DASHBOARD,
        command=tuple(argv),
        cwd=Path("/"),
        env={"PYTHONPATH": str(package_root), "PYTHONUNBUFFERED": "1"},
        autorestart="always",
        start_timeout_s=DASHBOARD_START_S,
        start_retries=None,  # never given up: the dashboard is how an operator looks
        backoff=BackoffPolicy(initial_s=0.5, max_s=30.0, multiplier=2.0, jitter=0.1, reset_after_s=30.0),
        stop_timeout_s=8.0,  # its shutdown grace (5 s) with room
        ready="notify",
        watchdog_s=DASHBOARD_WATCHDOG_S,
        nice=DASHBOARD_NICE,
        pass_fds=(fd,),
        log=LogConfig(file=dashboard_log(config.state_dir)),
    )


class Services:
    """Runs the daemon's services until shut down; ``status`` reads :meth:`snapshots`."""

    def __init__(self, state_dir: Path, bus: EventBus, store: StateStore, containment: Containment) -> None:
        self._state_dir = state_dir
        self._bus = bus
        self._store = store
        self._containment = containment
        self.processes: dict[str, ManagedProcess] = {}
        self.started = asyncio.Event()

    async def run(self, services: list[ProgramConfig], shutdown: asyncio.Event) -> None:
        """Supervise ``services`` until ``shutdown`` is set, then stop them (each by its one stop path)."""
        async with asyncio.TaskGroup() as group:
            tasks = []
            for cfg in services:
                proc = ManagedProcess(
                    cfg,
                    log_dir=self._state_dir / "logs",
                    bus=self._bus,
                    on_spawn=self._record,
                    on_exit=lambda p: self._store.child_gone(p.name),
                    containment=self._containment,
                    write_failures=self._store.write_failures,
                )
                self.processes[cfg.name] = proc
                tasks.append(group.create_task(proc.run(), name=f"service:{cfg.name}"))
            self.started.set()
            await shutdown.wait()
            await self.stop()
            for task in tasks:
                task.cancel()

    async def stop(self) -> None:
        """Stop every service and wait (bounded by their stop timeouts) until they are down."""
        procs = list(self.processes.values())
        for proc in procs:
            proc.stop()
        longest = max((p.cfg.stop_timeout_s for p in procs), default=0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.gather(*(p.wait_settled(longest + 5.0) for p in procs))

    async def wait_running(self, timeout_s: float) -> None:
        """Wait until every service is RUNNING, ``timeout_s`` at most (then :meth:`problems` says why not)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.started.wait(), timeout_s)
            await asyncio.gather(*(p.wait_settled(timeout_s) for p in self.processes.values()))

    def _record(self, proc: ManagedProcess) -> None:
        if proc.pid is not None and (ident := identity_of(proc.pid)) is not None:
            self._store.child_started(proc.name, ident, proc.spawn_tag)  # a crashed daemon's successor ends it

    def snapshots(self) -> list[dict[str, Any]]:
        """Each service as ``status`` shows a program (see ManagedProcess.snapshot)."""
        return [p.snapshot() for p in self.processes.values()]

    def problems(self) -> list[str]:
        """Services wanted but neither RUNNING nor on their way (STARTING), one line each."""
        out = []
        for p in self.processes.values():
            if p.wanted and p.state not in (ProcessState.RUNNING, ProcessState.STARTING):
                out.append(f"{p.name} is {p.state}: {p.reason}")
        return out
