"""The DuckDB worker's OS edge: its command line and environment, and :class:`WorkerEdge`, the child edge
(:class:`~foss_supervisor.core.seams.ChildEdge`) its controller drives.

The edge spawns the worker through the one child primitive (:func:`foss_supervisor.core.child.spawn`) with
its stdin and stdout as the request pipe of a :class:`~foss_supervisor.pipeline.engine.workerclient.WorkerChannel`,
counts it ready at its ready line (as ``READY=1`` for a notify program), stops it cleanly (a ``shutdown``
request: DuckDB checkpoints; then EOF), bounded, before the one stop path SIGKILLs what is left, and reports
every start, failed start and exit to its :class:`~foss_supervisor.pipeline.engine.workerservice.WorkerService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from foss_supervisor.base.procinfo import ProcStat
from foss_supervisor.config import HealthConfig, LogConfig, ProgramConfig
from foss_supervisor.config.model import BackoffPolicy
from foss_supervisor.core.child import Child, reap_stragglers, spawn
from foss_supervisor.pipeline.engine.limits import WorkerLimits
from foss_supervisor.pipeline.engine.workerclient import WorkerChannel
from foss_supervisor.pipeline.errors import WorkerError

if TYPE_CHECKING:
    from foss_supervisor.pipeline.engine.workerservice import WorkerService

__all__ = [
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "WORKER",
    "WorkerEdge",
    "worker_argv",
    "worker_config",
    "worker_environ",
]

WORKER = "@pipeline-worker"
WORKER_MODULE = "foss_supervisor.pipeline.worker.server"
START_TIMEOUT_S = 60.0  # its ready line must come within this (importing DuckDB and opening the file: ~0.2 s)
STOP_TIMEOUT_S = 10.0  # a clean stop (interrupt, checkpoint, close) may take this; then SIGKILL

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def worker_argv(
    db_path: Path,
    *,
    read_dirs: Iterable[Path],
    export_dir: Path,
    publish_dir: Path,
    temp_dir: Path,
    limits: WorkerLimits,
    threads: int | None,
    history_dir: Path | None = None,
    history_days: int = 30,
) -> list[str]:
    """The worker's command line: the database, the folders it may read and write, its bounds, and the daemon's
    event journal it keeps as the ``supervision`` schema (worker/server.py, worker/supervision.py)."""
    argv = [sys.executable, "-m", WORKER_MODULE, "--db", str(db_path)]
    for d in sorted({str(d) for d in read_dirs}):
        argv += ["--allow-dir", d]
    argv += ["--export-dir", str(export_dir), "--publish-dir", str(publish_dir)]
    argv += ["--memory-limit", str(limits.memory_limit), "--os-memory-limit", str(limits.os_memory_limit)]
    argv += ["--temp-dir", str(temp_dir), "--max-temp-size", str(limits.max_temp_directory_size)]
    if history_dir is not None:
        argv += ["--history-dir", str(history_dir), "--history-days", str(history_days)]
    return argv + (["--threads", str(threads)] if threads else [])


def worker_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment: the daemon's plus ``extra``, with this package first on ``PYTHONPATH``."""
    env = {**os.environ, **extra}
    paths = [_PACKAGE_ROOT, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def worker_config(argv: list[str], log_file: Path) -> ProgramConfig:
    """The worker as a program: restarted whenever it ends, never given up (the warehouse is how data is read)."""
    return ProgramConfig(
        name=WORKER,
        command=tuple(argv),
        autostart=False,  # started on first use, or by the pipeline service at the daemon's start
        autorestart="always",
        start_timeout_s=START_TIMEOUT_S,
        start_retries=None,
        backoff=BackoffPolicy(initial_s=0.0, max_s=30.0, multiplier=2.0, jitter=0.1, reset_after_s=30.0),
        stop_timeout_s=STOP_TIMEOUT_S,
        log=LogConfig(file=log_file),  # its stderr goes to the daemon's log (the ``pipeline`` log source)
    )


class WorkerEdge:
    """The worker's child edge (:class:`~foss_supervisor.core.seams.ChildEdge`): one spawn at a time."""

    def __init__(self, service: WorkerService) -> None:
        self._service = service
        self.channel: WorkerChannel | None = None
        self._child: Child | None = None
        self.polite = True  # how the next stop goes: a clean shutdown first, or SIGKILL at once

    @property
    def ready(self) -> asyncio.Future[None] | None:
        return self.channel.ready if self.channel is not None else None

    status_text = ""
    watchdog_ping_at: float | None = None
    watchdog_triggered = False
    tag = ""

    async def spawn(self, serial: int) -> tuple[int, Child]:
        """Start the worker with pipes into a fresh channel. OSError: not started (counted as a failed start)."""
        service = self._service
        argv = service.argv()
        service.process.cfg = dataclasses.replace(service.process.cfg, command=tuple(argv))
        channel = WorkerChannel(service.ready)
        try:
            child = await spawn(argv, env=service.environ(), output=channel.feed, stdin=True)
        except (OSError, ValueError) as exc:
            service.start_failed(f"spawn failed: {exc}")
            raise
        channel.attach(child)
        self.channel, self._child, self.polite = channel, child, True
        return child.pid, child

    def signal(self, sig: signal.Signals) -> bool:
        return self._child is not None and self._child.send_signal(sig)

    async def stop(self, exited: asyncio.Future[int], abort: bool = False) -> None:
        """A clean stop (``shutdown``: DuckDB checkpoints; then EOF), bounded; SIGKILL the group after it."""
        child, channel = self._child, self.channel
        assert child is not None and channel is not None
        if channel.exit_reason == "died":
            channel.exit_reason = "stop"
        if self.polite and channel.alive:
            with contextlib.suppress(Exception):
                await channel.request("shutdown", {}, timeout_s=STOP_TIMEOUT_S)
            child.close_stdin()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), STOP_TIMEOUT_S)
        await child.stop()

    async def reap(self, exited: asyncio.Future[int], end_left: bool = True) -> list[ProcStat]:
        """After its exit: end what is left of its group, drain and close its pipes, report the exit."""
        code = await exited
        child, channel = self._child, self.channel
        assert child is not None and channel is not None
        reap_stragglers(child.pid, lambda: 0)
        await child.release()
        self._child = None
        self._service.ended(channel, code)
        return []

    def probe(self) -> Callable[[HealthConfig], Awaitable[tuple[bool, str]]]:
        """A ``ping`` over the request pipe: what a probe of the worker asks (none is configured: every
        request is bounded instead)."""

        async def ping(cfg: HealthConfig) -> tuple[bool, str]:
            channel = self.channel
            try:
                if channel is None:
                    raise WorkerError("the worker is not running")
                await channel.request("ping", {}, timeout_s=cfg.timeout_s)
            except (WorkerError, TimeoutError) as exc:
                return False, f"ping failed: {exc or 'no answer'}"
            return True, "ping answered"

        return ping

    def halted(self) -> str:
        return ""

    def last_lines(self, count: int = 2) -> tuple[str, ...]:
        """None to quote: the worker's stdout is its protocol channel and its stderr goes to its own log."""
        return ()

    async def follow_main_pid(self, deadline: float) -> str:
        return "the pipeline worker does not fork"
