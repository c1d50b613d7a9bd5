"""The DuckDB worker as a supervised service: a :class:`~foss_supervisor.core.process.ManagedProcess` like
``@dashboard``, named ``@pipeline-worker``, with the states of the one table (base/processstates.py), restarts with
backoff, and a place in ``status`` beside the dashboard.

Why a ManagedProcess and not a respawn policy of its own: the worker dies, is killed and is restarted like
any program (a step past its timeout, a query DuckDB cannot interrupt, a recycle, an OOM kill), and the
controller that spawns, watches, stops and reaps programs already does all of that with one writer of the
state, a tested backoff and a cancellation-safe stop. What is the worker's own is its child edge
(workeredge.py, the ``Seams.child`` of its controller: spawn with a request pipe, ready at its ready line,
a clean stop first) and the policy below.

Policy kept here (see limits.py for the bounds): the worker starts on first use (or at the daemon's
start) and is restarted whenever it ends; it is recycled when a query does not stop within its grace
(:meth:`WorkerService.recycle`, asked by the client) and when its resident memory stays above
``recycle_rss`` for ``recycle_after_s`` while nothing runs in it (a monitor per worker). A recycle never
ends a pipeline step or an export: while one runs, the recycle is queued and done as soon as none does.
Every recycle and limit hit is a log line (``pipeline_worker_recycled``, ``pipeline_worker_recycle_queued``,
``pipeline_query_limit_hit``) and counted in ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import structlog

from foss_supervisor.base.processstates import FAILING_STATES, ProcessState
from foss_supervisor.core.events import EventBus, StateChanged
from foss_supervisor.core.process import ManagedProcess
from foss_supervisor.core.seams import Seams
from foss_supervisor.pipeline.engine.limits import WorkerLimits
from foss_supervisor.pipeline.engine.workerclient import WorkerChannel
from foss_supervisor.pipeline.engine.workeredge import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    WORKER,
    WORKER_MODULE,
    WorkerEdge,
    worker_config,
)
from foss_supervisor.pipeline.errors import WorkerCrashedError, WorkerError
from foss_supervisor.pipeline.events import PipelineEvent, WorkerExited, WorkerStarted

__all__ = ["WORKER", "WorkerService"]

log = structlog.get_logger("foss_supervisor.pipeline")


class WorkerService:
    """The supervised worker of one warehouse file, and its recycle policy.

    ``argv()`` and ``environ()`` are asked at each spawn (a reload may change the folders the worker may
    read); ``emit`` receives WorkerStarted / WorkerExited, stamped by ``clock`` (epoch s); ``bus`` carries
    the worker's state changes (StateChanged, like a program's); ``limits`` say when to recycle; the
    monitor looks every ``poll_s`` seconds.
    """

    #: requests a recycle waits for: a step's transaction, an export's file (a run's publish is one)
    PROTECTED = ("run_step", "export")

    def __init__(
        self,
        db_path: Path,
        argv: Callable[[], list[str]],
        environ: Callable[[], dict[str, str]],
        emit: Callable[[PipelineEvent], None],
        clock: Callable[[], float],
        bus: EventBus,
        log_file: Path,
        limits: WorkerLimits | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.db_path = db_path
        self.argv = argv
        self.environ = environ
        self._emit = emit
        self._clock = clock
        self.limits = limits or WorkerLimits.resolve()
        self._poll_s = poll_s
        self._edge = WorkerEdge(self)
        self.process = ManagedProcess(
            worker_config([sys.executable, "-m", WORKER_MODULE], log_file),  # its whole argv from the first spawn on
            log_dir=log_file.parent,
            bus=bus,
            seams=Seams(child=lambda _p: self._edge),
        )
        self._controller: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # a worker became ready, or a start failed, or one ended
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.starts = 0  # workers that became ready since the runner started
        self._failed_starts = 0
        self._start_error = ""
        self._pending_recycle: str | None = None
        self._pending_polite = False
        self._last_exit: dict[str, Any] | None = None
        self.recycles: dict[str, int] = {}
        self.limit_hits: dict[str, int] = {"time": 0, "memory": 0, "result_size": 0}
        bus.on(lambda event: self._changed.set() if isinstance(event, StateChanged) else None)

    # ---------------------------------------------------------------- the edge's reports

    def ready(self, channel: WorkerChannel) -> None:
        """A worker wrote its ready line: serve through it from now on."""
        self.starts += 1
        self._pending_recycle = None  # a new worker has nothing stuck in it
        hello = channel.hello
        log.info(
            "pipeline_worker_started",
            pid=channel.pid,
            startup_s=round(channel.startup_s, 4),
            import_s=hello.get("import_s"),
            open_s=hello.get("open_s"),
        )
        self._emit(WorkerStarted(self._clock(), channel.pid, str(self.db_path), channel.startup_s, self.starts - 1))
        self._track(self._monitor(channel), f"worker-{channel.pid}-monitor")
        self.process.wake()  # its controller counts it RUNNING now
        self._changed.set()

    def start_failed(self, why: str) -> None:
        """A spawn that never became ready: the callers waiting for a worker are told why."""
        self._failed_starts += 1
        self._start_error = why
        log.warning("pipeline_worker_start_failed", error=why)
        self._changed.set()

    def ended(self, channel: WorkerChannel, code: int) -> None:
        """A worker was reaped (``code``: its exit code, -N for signal N)."""
        if not channel.ready.done():
            tail = "; ".join(channel.stderr_tail)[-2000:]
            self.start_failed(channel.failure or f"the worker exited with code {code} before it was ready: {tail}")
        else:
            log.info("pipeline_worker_exited", pid=channel.pid, returncode=code, reason=channel.exit_reason)
            self._last_exit = {
                "reason": channel.exit_reason,
                "at": self._clock(),
                "pid": channel.pid,
                "returncode": code,
            }
            self._emit(WorkerExited(self._clock(), channel.pid, code, channel.exit_reason))
        channel.reaped = True
        self._changed.set()

    # ---------------------------------------------------------------- requests

    @property
    def pid(self) -> int | None:
        """PID of the live worker, if any."""
        channel = self._edge.channel
        return channel.pid if channel is not None and channel.alive else None

    async def ensure(self) -> WorkerChannel:
        """The live worker's channel; the worker is started (or its backoff cut short) when there is none.

        Raises WorkerCrashedError when the start that followed failed (with the worker's last words), and
        WorkerError once closed.
        """
        if self._serving():
            assert self._edge.channel is not None
            return self._edge.channel
        if self._closed:
            raise WorkerError("the pipeline runner is closed")
        self._supervise()
        failed = self._failed_starts
        if not self.process.wanted or self.process.state is ProcessState.BACKOFF:
            self.process.start()  # a request tries again at once, as an operator's start would
        try:
            async with asyncio.timeout(START_TIMEOUT_S + 2 * STOP_TIMEOUT_S):
                while True:
                    if self._serving():
                        assert self._edge.channel is not None
                        return self._edge.channel
                    if self._failed_starts > failed:
                        raise WorkerCrashedError(self._start_error)
                    if self._closed:
                        raise WorkerError("the pipeline runner is closed")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise WorkerCrashedError(f"the worker was not ready within {START_TIMEOUT_S:g} s") from None

    def _serving(self) -> bool:
        """A worker is ready and its controller counts it RUNNING."""
        channel = self._edge.channel
        return channel is not None and channel.alive and self.process.state is ProcessState.RUNNING

    def _supervise(self) -> None:
        """Run the worker's controller (again, if a bug ended it: it stopped its child on the way out)."""
        task = self._controller
        if task is not None and not task.done():
            return
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("pipeline_worker_controller_failed", error=repr(task.exception()))
            self.process.reset_after_error()
        self._controller = asyncio.create_task(self.process.run(), name=f"service:{WORKER}")

    def note_limit(self, limit: str, **detail: Any) -> None:
        """Count and log one query or export that hit a bound: ``limit`` is time, memory or result_size."""
        self.limit_hits[limit] = self.limit_hits.get(limit, 0) + 1
        log.warning("pipeline_query_limit_hit", limit=limit, pid=self.pid, **detail)

    async def kill(self, channel: WorkerChannel, reason: str) -> None:
        """SIGKILL ``channel``'s worker (through its controller: a restart) and wait until it is reaped."""
        async with self._lock:
            if channel is self._edge.channel:
                await self._restart(channel, reason, polite=False)

    async def _restart(self, channel: WorkerChannel, reason: str, *, polite: bool) -> None:
        """With the lock held: end ``channel``'s worker (a bounded clean stop when ``polite``, else SIGKILL);
        its controller starts the next one at once."""
        if channel.ready.done() and channel.exit_reason == "died":
            channel.exit_reason = reason
        self._edge.polite = polite
        self.process.restart()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2 * STOP_TIMEOUT_S):
                while not channel.reaped:
                    self._changed.clear()
                    await self._changed.wait()

    async def recycle(self, reason: str, *, polite: bool = False) -> bool:
        """Restart the worker now (SIGKILL, or with ``polite`` a bounded clean stop first), or, while a step
        or an export runs in it, as soon as none does. True when it was restarted now.

        ``reason`` is a snake_case word (``query_timeout``, ``rss``, ``limits``); the old worker's exit reason
        is ``recycled_<reason>``.
        """
        async with self._lock:
            channel = self._edge.channel
            if channel is None or not channel.alive:
                return True  # nothing to restart: the next request starts a new worker
            busy = channel.in_flight(*self.PROTECTED)
            if busy:
                if self._pending_recycle is None:
                    log.warning("pipeline_worker_recycle_queued", pid=channel.pid, reason=reason, waiting_for=busy)
                    self._pending_recycle, self._pending_polite = reason, polite
                return False
            await self._replace(channel, reason, polite=polite)
            return True

    async def _replace(self, channel: WorkerChannel, reason: str, *, polite: bool) -> None:
        rss = _rss(channel.pid)
        channel.exit_reason = f"recycled_{reason}"
        await self._restart(channel, channel.exit_reason, polite=polite)
        self._pending_recycle = None
        self.recycles[reason] = self.recycles.get(reason, 0) + 1
        log.warning(
            "pipeline_worker_recycled",
            pid=channel.pid,
            reason=reason,
            rss_bytes=rss,
            recycle_rss_bytes=self.limits.recycle_rss,
        )

    async def _monitor(self, channel: WorkerChannel) -> None:
        """While ``channel``'s worker lives: do a queued recycle once no step or export runs in it, and recycle
        it when its RSS stays above ``limits.recycle_rss`` for ``limits.recycle_after_s`` with nothing in flight."""
        above_since: float | None = None
        while channel.alive and not self._closed:
            await asyncio.sleep(self._poll_s)
            if not channel.alive or self._closed:
                return
            if self._pending_recycle is not None and not channel.in_flight(*self.PROTECTED):
                await self._recycle_if(channel, self._pending_recycle, polite=self._pending_polite, idle_only=False)
                continue
            rss = _rss(channel.pid) if self.limits.recycle_rss > 0 and not channel.in_flight() else None
            if rss is None or rss <= self.limits.recycle_rss:
                above_since = None
                continue
            above_since = above_since if above_since is not None else time.monotonic()
            if time.monotonic() - above_since >= self.limits.recycle_after_s:
                await self._recycle_if(channel, "rss", polite=True, idle_only=True)

    async def _recycle_if(self, channel: WorkerChannel, reason: str, *, polite: bool, idle_only: bool) -> None:
        """Recycle ``channel``'s worker if it is still the current one and still free of steps and exports (and,
        with ``idle_only``, of any request): checked again under the lock, a request may have been sent meanwhile."""
        async with self._lock:
            if self._edge.channel is not channel or not channel.alive or channel.in_flight(*self.PROTECTED):
                return
            if idle_only and channel.in_flight():
                return
            await self._replace(channel, reason, polite=polite)

    async def set_limits(self, limits: WorkerLimits) -> None:
        """Serve with ``limits`` from now on (a reload): when they changed, the worker is restarted with them
        (cleanly, and only once no step or export runs in it)."""
        if limits == self.limits:
            return
        self.limits = limits
        log.info("pipeline_worker_limits_changed", **limits.to_dict())
        await self.recycle("limits", polite=True)

    async def restart(self) -> None:
        """Restart the worker cleanly now (new folders to read: its argv changed), if one runs."""
        async with self._lock:
            channel = self._edge.channel
            if channel is not None and channel.alive:
                await self._restart(channel, "restart", polite=True)

    async def close(self) -> None:
        """Stop the worker for good (cleanly, bounded; SIGKILL as last resort) and end its controller."""
        self._closed = True
        self._changed.set()
        self._edge.polite = True
        self.process.stop()
        with contextlib.suppress(TimeoutError):
            await self.process.wait_settled(2 * STOP_TIMEOUT_S)
        for task in [t for t in (self._controller, *self._tasks) if t is not None]:
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 2 * STOP_TIMEOUT_S)

    def _track(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- what status shows

    def problems(self) -> list[str]:
        """The worker crash-looping (BACKOFF) or given up: one line, for ``/health``."""
        proc = self.process
        return [f"{WORKER} is {proc.state}: {proc.reason}"] if proc.state in FAILING_STATES else []

    def status(self) -> dict[str, Any]:
        """The worker as ``status`` shows it under ``pipelines.worker``: ``{name, state (a program state:
        STOPPED until first use, STARTING, RUNNING, BACKOFF...), reason, pid (None when none runs), busy (a
        step or an export is in it; queries run beside), uptime_s, rss_bytes (resident memory), startup_s
        (spawn to ready), starts (workers started since the runner started), restarts (starts after the
        first), last_restart ({reason, at, pid, returncode} of the worker that ended last, or None), recycles
        ({reason: count}), recycle_pending (reason or None), limit_hits ({time, memory, result_size}),
        memory_limit (bytes), limits (every bound, see WorkerLimits.to_dict), warehouse}``."""
        pid = self.pid
        channel = self._edge.channel
        alive = pid is not None and channel is not None
        return {
            "name": WORKER,
            "state": str(self.process.state),
            "reason": self.process.reason,
            "pid": pid,
            "busy": bool(alive and channel is not None and channel.in_flight(*self.PROTECTED)),
            "uptime_s": round(time.time() - channel.started_at, 3) if alive and channel is not None else None,
            "rss_bytes": _rss(pid) if pid is not None else None,
            "startup_s": round(channel.startup_s, 4) if alive and channel is not None else None,
            "starts": self.starts,
            "restarts": max(0, self.starts - 1),
            "last_restart": self._last_exit,
            "recycles": dict(self.recycles),
            "recycle_pending": self._pending_recycle,
            "limit_hits": dict(self.limit_hits),
            "memory_limit": self.limits.memory_limit,
            "limits": self.limits.to_dict(),
            "warehouse": str(self.db_path),
        }


def _rss(pid: int) -> int | None:
    """Resident memory of ``pid`` in bytes, None once it is gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None
