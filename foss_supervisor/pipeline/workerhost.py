"""The runner's one DuckDB worker child: spawned on first use and again after it died, watched, stopped
on close; step requests with a timeout (SIGKILL on expiry) and a cancel that interrupts, then kills.

The runner (:mod:`foss_supervisor.pipeline.runner`) decides what runs; this module owns the child that
runs it. The child is awaited by its own ``proc.wait()`` (see workerproc.py), never ``waitpid(-1)``.
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
    read); ``emit`` receives WorkerStarted / WorkerExited; ``clock`` stamps them (epoch s).
    """

    def __init__(
        self,
        db_path: Path,
        argv: Callable[[], list[str]],
        environ: Callable[[], dict[str, str]],
        emit: Callable[[PipelineEvent], None],
        clock: Callable[[], float],
        cancel_grace_s: float = 5.0,
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
        self.starts = 0  # spawns since the runner started

    @property
    def pid(self) -> int | None:
        """PID of the live worker, if any."""
        return self._worker.pid if self._worker is not None and self._worker.alive else None

    @property
    def startup_s(self) -> float | None:
        """Spawn-to-ready time of the current worker (s)."""
        return self._worker.startup_s if self._worker is not None else None

    def figures(self) -> dict[str, Any]:
        """``{pid, uptime_s, rss_bytes}`` of the live worker (None each when it is stopped)."""
        pid = self.pid
        out: dict[str, Any] = {"pid": pid, "uptime_s": None, "rss_bytes": None}
        if pid is not None and self._worker is not None:
            out["uptime_s"] = round(time.time() - self._worker.started_at, 3)
            with contextlib.suppress(psutil.Error):
                out["rss_bytes"] = psutil.Process(pid).memory_info().rss
        return out

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
            self.starts += 1
            log.info("pipeline_worker_started", pid=worker.pid, startup_s=round(worker.startup_s, 4),
                     import_s=worker.ready.get("import_s"), open_s=worker.ready.get("open_s"))  # fmt: skip
            self._emit(WorkerStarted(self._clock(), worker.pid, str(self._db_path), worker.startup_s, self.starts - 1))
            task = asyncio.create_task(self._watch(worker), name=f"worker-{worker.pid}-watch")
            self._watch_tasks.add(task)
            task.add_done_callback(self._watch_tasks.discard)
            return worker

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
        self._emit(WorkerExited(self._clock(), worker.pid, worker.proc.returncode, worker.exit_reason))
