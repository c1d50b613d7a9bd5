"""The runner's one DuckDB worker child: spawned on first use and again after it died, watched, stopped
on close; step requests with a timeout (SIGKILL on expiry) and a cancel that interrupts, then kills.

The runner (:mod:`foss_supervisor.pipeline.runner`) decides what runs; this module owns the child that
runs it. The child is awaited by its own ``proc.wait()`` (see workerproc.py), never ``waitpid(-1)``.

Recycling (see limits.py for the bounds): the worker is restarted when a query does not stop within its
grace after its time limit (:meth:`WorkerHost.recycle`, asked by the query client) and when its resident
memory stays above ``recycle_rss`` for ``recycle_after_s`` while nothing runs in it (a monitor per worker).
A recycle never ends a pipeline step or an export: while one runs in the worker the recycle is queued and
done by the monitor as soon as none does (between two steps of a run is fine: each step is its own
transaction, and the next one starts the new worker). Queries still running in a recycled worker fail
with a message that says so. Every recycle and limit hit is a log line (``pipeline_worker_recycled``,
``pipeline_worker_recycle_queued``, ``pipeline_query_limit_hit``) and counted in ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil
import structlog

from foss_supervisor.pipeline.errors import WorkerError
from foss_supervisor.pipeline.events import PipelineEvent, WorkerExited, WorkerStarted
from foss_supervisor.pipeline.limits import WorkerLimits
from foss_supervisor.pipeline.workerproc import WorkerProcess

__all__ = ["StepAttemptError", "StepTimeoutError", "WorkerHost"]

log = structlog.get_logger("foss_supervisor.pipeline")


class StepAttemptError(Exception):
    """The worker reported that a step attempt failed (and rolled it back)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class StepTimeoutError(Exception):
    """A step ran past its timeout_s; the worker was killed."""


class WorkerHost:
    """Owns the worker child for one warehouse file.

    ``argv()`` and ``environ()`` are asked at each spawn (a reload may change the folders the worker may
    read); ``emit`` receives WorkerStarted / WorkerExited; ``clock`` stamps them (epoch s); ``limits`` says
    when to recycle; the monitor looks every ``poll_s`` seconds.
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
        cancel_grace_s: float = 5.0,
        limits: WorkerLimits | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self._db_path = db_path
        self._argv = argv
        self._environ = environ
        self._emit = emit
        self._clock = clock
        self._cancel_grace_s = cancel_grace_s
        self._worker: WorkerProcess | None = None
        self._lock = asyncio.Lock()
        self._watch_tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.limits = limits or WorkerLimits.resolve()
        self._poll_s = poll_s
        self.starts = 0  # spawns since the runner started
        self._pending_recycle: str | None = None
        self._pending_polite = False
        self._last_exit: dict[str, Any] | None = None
        self.recycles: dict[str, int] = {}
        self.limit_hits: dict[str, int] = {"time": 0, "memory": 0, "result_size": 0}

    @property
    def pid(self) -> int | None:
        """PID of the live worker, if any."""
        return self._worker.pid if self._worker is not None and self._worker.alive else None

    @property
    def startup_s(self) -> float | None:
        """Spawn-to-ready time of the current worker (s)."""
        return self._worker.startup_s if self._worker is not None else None

    def figures(self) -> dict[str, Any]:
        """``{pid, uptime_s, rss_bytes}`` of the live worker (None each when it is stopped), and its history:
        ``restarts`` (spawns after the first), ``last_restart`` (``{reason, at, pid, returncode}`` of the last
        worker that ended, or None), ``recycles`` (count by reason), ``recycle_pending`` (reason or None),
        ``limit_hits`` (``{time, memory, result_size}``: queries and exports that hit each bound)."""
        pid = self.pid
        out: dict[str, Any] = {"pid": pid, "uptime_s": None, "rss_bytes": None}
        if pid is not None and self._worker is not None:
            out["uptime_s"] = round(time.time() - self._worker.started_at, 3)
            out["rss_bytes"] = _rss(pid)
        return out | {
            "restarts": max(0, self.starts - 1),
            "last_restart": self._last_exit,
            "recycles": dict(self.recycles),
            "recycle_pending": self._pending_recycle,
            "limit_hits": dict(self.limit_hits),
        }

    async def ensure(self) -> WorkerProcess:
        """The live worker, spawned now if there is none. Raises WorkerError once closed."""
        async with self._lock:
            if self._worker is not None and self._worker.alive:
                return self._worker
            if self._worker is not None:
                await self._worker.kill(self._worker.exit_reason)
                self._worker = None
            if self._closed:
                raise WorkerError("the pipeline runner is closed")
            worker = await WorkerProcess.spawn(self._argv(), self._environ())
            self._worker = worker
            self._pending_recycle = None  # a new worker has nothing stuck in it
            self.starts += 1
            log.info(
                "pipeline_worker_started",
                pid=worker.pid,
                startup_s=round(worker.startup_s, 4),
                import_s=worker.ready.get("import_s"),
                open_s=worker.ready.get("open_s"),
            )
            self._emit(WorkerStarted(self._clock(), worker.pid, str(self._db_path), worker.startup_s, self.starts - 1))
            self._track(self._watch(worker), f"worker-{worker.pid}-watch")
            self._track(self._monitor(worker), f"worker-{worker.pid}-monitor")
            return worker

    def _track(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._watch_tasks.add(task)
        task.add_done_callback(self._watch_tasks.discard)

    def note_limit(self, limit: str, **detail: Any) -> None:
        """Count and log one query or export that hit a bound: ``limit`` is time, memory or result_size."""
        self.limit_hits[limit] = self.limit_hits.get(limit, 0) + 1
        log.warning("pipeline_query_limit_hit", limit=limit, pid=self.pid, **detail)

    async def recycle(self, reason: str, *, polite: bool = False) -> bool:
        """Restart the worker now (SIGKILL through the one stop path, or with ``polite`` a bounded clean stop
        first; a new one spawned in the background), or, while a step or an export runs in it, as soon as
        none does. True when it was restarted now.

        ``reason`` is a snake_case word (``query_timeout``, ``rss``, ``limits``); the old worker's exit reason
        is ``recycled_<reason>``.
        """
        async with self._lock:
            worker = self._worker
            if worker is None or not worker.alive:
                return True  # nothing to restart: the next request starts a new worker
            busy = worker.in_flight(*self.PROTECTED)
            if busy:
                if self._pending_recycle is None:
                    log.warning("pipeline_worker_recycle_queued", pid=worker.pid, reason=reason, waiting_for=busy)
                    self._pending_recycle, self._pending_polite = reason, polite
                return False
            await self._replace(worker, reason, polite=polite)
            return True

    async def _replace(self, worker: WorkerProcess, reason: str, *, polite: bool) -> None:
        """With the lock held: end ``worker`` (a bounded clean stop when ``polite``, else SIGKILL) and start
        the next one in the background."""
        rss = _rss(worker.pid)
        if polite:
            await worker.stop(timeout_s=5.0, reason=f"recycled_{reason}")
        else:
            await worker.kill(f"recycled_{reason}")
        self._worker = None
        self._pending_recycle = None
        self.recycles[reason] = self.recycles.get(reason, 0) + 1
        log.warning(
            "pipeline_worker_recycled",
            pid=worker.pid,
            reason=reason,
            rss_bytes=rss,
            recycle_rss_bytes=self.limits.recycle_rss,
        )
        if not self._closed:
            self._track(self._respawn(), "worker-respawn")

    async def _respawn(self) -> None:
        try:
            await self.ensure()
        except Exception as exc:  # the next request tries again and reports it
            log.warning("pipeline_worker_respawn_failed", error=f"{type(exc).__name__}: {exc}")

    async def _monitor(self, worker: WorkerProcess) -> None:
        """While ``worker`` lives: do a queued recycle once no step or export runs in it, and recycle it when
        its RSS stays above ``limits.recycle_rss`` for ``limits.recycle_after_s`` with nothing in flight."""
        above_since: float | None = None
        while worker.alive and not self._closed:
            await asyncio.sleep(self._poll_s)
            if not worker.alive or self._closed:
                return
            if self._pending_recycle is not None and not worker.in_flight(*self.PROTECTED):
                await self._recycle_if(worker, self._pending_recycle, polite=self._pending_polite, idle_only=False)
                continue
            rss = _rss(worker.pid) if self.limits.recycle_rss > 0 and not worker.in_flight() else None
            if rss is None or rss <= self.limits.recycle_rss:
                above_since = None
                continue
            above_since = above_since if above_since is not None else time.monotonic()
            if time.monotonic() - above_since >= self.limits.recycle_after_s:
                await self._recycle_if(worker, "rss", polite=True, idle_only=True)

    async def _recycle_if(self, worker: WorkerProcess, reason: str, *, polite: bool, idle_only: bool) -> None:
        """Recycle ``worker`` if it is still the current one and still free of steps and exports (and, with
        ``idle_only``, of any request): checked again under the lock, a request may have been sent meanwhile."""
        async with self._lock:
            if self._worker is not worker or not worker.alive or worker.in_flight(*self.PROTECTED):
                return
            if idle_only and worker.in_flight():
                return
            await self._replace(worker, reason, polite=polite)

    async def stop(self) -> None:
        """Stop the worker cleanly (bounded; SIGKILL as last resort); the next use starts a new one."""
        async with self._lock:
            if self._worker is not None:
                await self._worker.stop()
                self._worker = None

    async def close(self) -> None:
        """Stop the worker for good and wait (bounded) until its exit is reported."""
        self._closed = True
        await self.stop()
        for t in list(self._watch_tasks):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(t, 5.0)

    async def attempt(
        self, payload: Mapping[str, Any], *, timeout_s: float, on_log: Callable[[str, str], None] | None
    ) -> dict[str, Any]:
        """One ``run_step`` request and its result; on timeout SIGKILL the worker, on cancel interrupt then kill.

        Raises StepTimeoutError, StepAttemptError (the worker reported a failure, rolled back), or
        WorkerCrashedError (the worker died under the request).
        """
        worker = await self.ensure()
        rid, fut = worker.send("run_step", payload, on_log=on_log)
        try:
            done, _ = await asyncio.wait({fut}, timeout=timeout_s)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(worker, rid, fut))
            raise
        if not done:
            await worker.kill("killed_timeout")
            with contextlib.suppress(BaseException):
                fut.exception()
            raise StepTimeoutError(f"step timed out after {timeout_s:g} s; worker {worker.pid} was killed")
        reply = fut.result()  # raises WorkerCrashedError if the worker died
        if reply.get("ok"):
            result: dict[str, Any] = reply["result"]
            return result
        err = reply.get("error") or {}
        raise StepAttemptError(str(err.get("kind", "step_error")), str(err.get("message", "step failed")))

    async def _cancel(self, worker: WorkerProcess, rid: int, fut: asyncio.Future[dict[str, Any]]) -> None:
        """Interrupt the step's statement; if it does not stop within the grace time, kill the worker."""
        with contextlib.suppress(Exception):
            worker.send("cancel", {"target": rid})
        done, _ = await asyncio.wait({fut}, timeout=self._cancel_grace_s)
        if not done:
            await worker.kill("killed_cancel")
        with contextlib.suppress(BaseException):
            fut.exception()

    async def _watch(self, worker: WorkerProcess) -> None:
        await worker.exited.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.proc.wait(), 10.0)
        log.info("pipeline_worker_exited", pid=worker.pid, returncode=worker.proc.returncode, reason=worker.exit_reason)
        self._last_exit = {
            "reason": worker.exit_reason,
            "at": self._clock(),
            "pid": worker.pid,
            "returncode": worker.proc.returncode,
        }
        self._emit(WorkerExited(self._clock(), worker.pid, worker.proc.returncode, worker.exit_reason))


def _rss(pid: int) -> int | None:
    """Resident memory of ``pid`` in bytes, None once it is gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None
