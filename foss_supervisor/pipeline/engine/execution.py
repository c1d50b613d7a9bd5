"""How one run executes: its steps in dependency order, each in the worker with its timeout and retries.

:class:`RunExecution` is the base of :class:`~foss_supervisor.pipeline.engine.runner.PipelineRunner`, which owns
the worker, the history, the locks and the public API; the runner sets every attribute declared below. A
successful run ends by keeping its snapshot (runsnapshots.py), also when its publish failed or was cancelled,
between the two halves of its publish (runpublish.py): a run that changed no layer table publishes nothing new.
Each step's state change is checked against the step table (``states.STEP_TRANSITIONS``) and goes
out as a :class:`~foss_supervisor.pipeline.events.StepStateChanged`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from foss_supervisor.base.pipelinestates import RUN_TRANSITIONS, STEP_TRANSITIONS, RunStatus, StepState
from foss_supervisor.pipeline.engine.history import RunHistory, RunRecord, metric_count
from foss_supervisor.pipeline.engine.holding import HeldFiles
from foss_supervisor.pipeline.engine.runpublish import RunPublish, StagedPublish
from foss_supervisor.pipeline.engine.runstate import (
    ActiveRun,
    access_payload,
    folders_payload,
    is_transient,
    step_payload,
)
from foss_supervisor.pipeline.engine.spec import PipelineSpec, StepSpec
from foss_supervisor.pipeline.engine.workerclient import StepAttemptError, StepTimeoutError, WorkerClient
from foss_supervisor.pipeline.errors import PipelineError, UnknownPipelineError, WorkerError
from foss_supervisor.pipeline.events import (
    EventCallback,
    RunFinished,
    RunStarted,
    StepLog,
    StepStateChanged,
)
from foss_supervisor.pipeline.worker.hold import holds_files
from foss_supervisor.pipeline.worker.ledger import committed_result_sql

#: what the worker measured of itself during a step, kept in its metrics (base/usagespan.py)
WORKER_FIGURES = ("worker_peak_rss_bytes", "worker_cpu_s", "worker_read_bytes", "worker_write_bytes")

__all__ = ["RunExecution"]

#: the warning of a run whose publish was cancelled after its steps committed
_PUBLISH_CANCELLED = "publish cancelled, after its steps committed: the previous published set is kept"


def _joined(first: str | None, second: str | None, sep: str = "; ") -> str | None:
    return sep.join(w for w in (first, second) if w) or None


log = structlog.get_logger("foss_supervisor.pipeline")


class RunExecution(RunPublish, HeldFiles):
    """Runs the steps of one :class:`ActiveRun`; the runner it is part of sets the attributes below."""

    _specs: dict[str, PipelineSpec]
    _on_event: EventCallback | None
    client: WorkerClient
    _step_lock: asyncio.Lock
    _active: dict[str, ActiveRun]
    _retry_initial_s: float
    _retry_max_s: float
    _sleep: Callable[[float], Awaitable[None]]
    _clock: Callable[[], float]
    history: RunHistory
    db_path: Path
    state_dir: Path

    def _spec(self, name: str) -> PipelineSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise UnknownPipelineError(f"no pipeline named {name!r} (known: {known})") from None

    def _new_run_id(self) -> str:
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock())) + "-" + secrets.token_hex(3)

    def _emit(self, event: object) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # an observer must never break a run
            log.exception("pipeline_event_observer_failed", event=type(event).__name__)

    def _set_state(self, run: ActiveRun, step: StepSpec, new: StepState, **changes: Any) -> None:
        rec = run.steps[step.name]
        STEP_TRANSITIONS.check(rec.state, new)
        run.steps[step.name] = dataclasses.replace(rec, state=new, **changes)
        rec2 = run.steps[step.name]
        index = [s.name for s in run.spec.steps].index(step.name)
        self._emit(
            StepStateChanged(
                at=self._clock(),
                run_id=run.run_id,
                pipeline=run.spec.name,
                step=step.name,
                old=rec.state,
                new=new,
                index=index,
                total=len(run.spec.steps),
                attempt=rec2.attempts,
                rows_in=rec2.rows_in,
                rows_out=rec2.rows_out,
                duration_s=rec2.duration_s,
                error=rec2.error,
                warnings=rec2.warnings,
                metrics=dict(rec2.metrics) if new in (StepState.SUCCEEDED, StepState.SUCCEEDED_WITH_WARNINGS) else {},
            )
        )
        log.debug(
            "pipeline_step_state",
            run_id=run.run_id,
            pipeline=run.spec.name,
            step=step.name,
            old=rec.state.value,
            new=new.value,
            attempt=rec2.attempts,
            error=rec2.error,
        )

    async def _execute(self, run: ActiveRun) -> RunRecord:
        spec = run.spec
        self.history.append(run.snapshot())
        self._emit(
            RunStarted(self._clock(), run.run_id, spec.name, run.mode, run.trigger, tuple(s.name for s in spec.steps))
        )
        log.info(
            "pipeline_run_started",
            run_id=run.run_id,
            pipeline=spec.name,
            mode=run.mode.value,
            retry_of=run.retry.source.run_id if run.retry else None,
        )
        try:
            await self._setup(run)
            for step in spec.steps:
                rec = run.steps[step.name]
                if run.mode not in step.modes:
                    self._set_state(run, step, StepState.SKIPPED)
                    continue
                if run.retry is not None and step.name in run.retry.reused:  # committed by the source run
                    reused = run.retry.reused[step.name]
                    self._set_state(run, step, StepState.SKIPPED, metrics=reused.metrics, warnings=(run.retry.note,))
                    continue
                failed_deps = [d for d in step.depends_on if not run.steps[d].state.ok]
                if failed_deps:
                    self._set_state(
                        run,
                        step,
                        StepState.UPSTREAM_FAILED,
                        error=f"upstream step(s) did not succeed: {', '.join(failed_deps)}",
                    )
                    continue
                del rec
                await self._run_step(run, step)
        except asyncio.CancelledError:
            for step in spec.steps:
                if run.steps[step.name].state is StepState.PENDING:
                    self._set_state(run, step, StepState.CANCELLED)
            self._finish(run, RunStatus.CANCELLED, "cancelled")
            raise
        except (WorkerError, StepAttemptError, OSError) as exc:
            for step in spec.steps:
                if run.steps[step.name].state is StepState.PENDING:
                    self._set_state(run, step, StepState.UPSTREAM_FAILED, error="pipeline setup failed")
            return self._finish(run, RunStatus.FAILED, f"setup failed: {exc}")
        states = [run.steps[s.name].state for s in spec.steps]
        bad = [s.name for s in spec.steps if not run.steps[s.name].state.ok]
        if bad:
            first = run.steps[bad[0]]
            return self._finish(run, RunStatus.FAILED, f"step {bad[0]} {first.state.value}: {first.error}")
        warning, staged, stopped = await self._stage(run)
        run.finishing = True  # only its snapshot is left for now: runner.cancel refuses (a daemon stop still stops it)
        try:  # after the Parquet publish is staged, so a published table is hard-linked, not copied (snapshots.py);
            # kept also when the publish failed or was cancelled: the tables committed, and a rollback to this run
            # publishes them anew
            failed, run.same_as = await self.keep_snapshot(spec, run.run_id)
            if run.same_as:
                run.note = f"changed no layer table: the snapshot of run {run.same_as} stands for this run"
            warning = _joined(warning, failed)
        except asyncio.CancelledError:  # a daemon stop: a partial snapshot is removed and never read; too late
            # for the run: its steps committed (docs/pipelines.md); a staged Parquet publish is made current
            published = staged is not None and staged.written and await self._commit_late(staged)
            done = "its steps committed" + (" and its tables were published" if published else "")
            listed = await asyncio.to_thread(self.snapshots, spec.name)  # reads the folder: off the loop
            kept = "its snapshot was kept" if run.run_id in listed else "no snapshot kept of this run"
            late = f"cancelled while writing its snapshot, after {done}: {kept}"
            self._finish(run, RunStatus.SUCCEEDED_WITH_WARNINGS, _joined(warning, late))
            raise
        if stopped is not None:  # its publish was cancelled; its snapshot is kept: now the run ends so
            self._finish(run, RunStatus.SUCCEEDED_WITH_WARNINGS, warning)
            raise stopped
        if staged is not None:
            run.finishing = not staged.written  # a Delta publish writes now: it may be cancelled
            try:
                run.note = _joined(run.note, await self.end_publish(staged, run.same_as), ", and ")
            except asyncio.CancelledError:
                self._finish(run, RunStatus.SUCCEEDED_WITH_WARNINGS, _joined(warning, _PUBLISH_CANCELLED))
                raise
            except (PipelineError, OSError) as exc:
                warning = _joined(f"publish failed: {exc}", warning)
        if warning:
            return self._finish(run, RunStatus.SUCCEEDED_WITH_WARNINGS, warning)
        if StepState.SUCCEEDED_WITH_WARNINGS in states:
            return self._finish(run, RunStatus.SUCCEEDED_WITH_WARNINGS, None)
        return self._finish(run, RunStatus.SUCCEEDED, None)

    async def _stage(self, run: ActiveRun) -> tuple[str | None, StagedPublish | None, asyncio.CancelledError | None]:
        """The first half of a good run's publish (runpublish.py): ``(warning, staged, cancel)``, the cancel
        (too late for the run: its steps committed) caught to be raised once its snapshot is kept."""
        if not run.spec.publish:
            return None, None, None
        try:
            return None, await self.stage_publish(run.spec.name, run.run_id), None
        except asyncio.CancelledError as exc:  # the previous published set stays current (publish.py)
            return _PUBLISH_CANCELLED, None, exc
        except (PipelineError, OSError) as exc:
            return f"publish failed: {exc}", None, None

    async def _commit_late(self, staged: StagedPublish) -> bool:
        """Make a staged Parquet publish current although its run was stopped (its tables are whole on disk);
        whether it is."""
        try:
            await asyncio.shield(asyncio.ensure_future(self.commit_publish(staged)))
        except (PipelineError, OSError, asyncio.CancelledError):
            await asyncio.to_thread(self.drop_publish, staged)
            return False
        return True

    def _finish(self, run: ActiveRun, status: RunStatus, error: str | None) -> RunRecord:
        RUN_TRANSITIONS.check(run.status, status)
        run.status = status
        run.error = error
        run.finished_at = self._clock()
        record = run.snapshot()
        self.history.append(record)
        self._emit(RunFinished(self._clock(), run.run_id, run.spec.name, status, record.duration_s or 0.0, error))
        log.info(
            "pipeline_run_finished",
            run_id=run.run_id,
            pipeline=run.spec.name,
            status=status.value,
            duration_s=record.duration_s,
            error=error,
        )
        return record

    def _wait(self) -> wait_exponential_jitter:
        """Exponential backoff (x2 per attempt) with jitter, capped at retry_max_s."""
        return wait_exponential_jitter(
            multiplier=self._retry_initial_s, max=self._retry_max_s, jitter=self._retry_initial_s
        )

    async def _setup(self, run: ActiveRun) -> None:
        """Create the pipeline's ledger and run its idempotent schema script, in one transaction (retried
        like a step)."""
        payload = {
            "pipeline": run.spec.name,
            "run_id": run.run_id,
            "mode": run.mode.value,
            "folders": folders_payload(run.spec),
            "require_metrics": False,
            "create_ledger": True,
            "access": access_payload(run.spec),
            "step": {"name": "_setup", "kind": "sql", "sql": run.spec.setup_sql or "", "source": run.spec.source(None)},
        }
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=self._wait(),
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            reraise=True,
        ):
            with attempt:
                async with self._step_lock:
                    await self.client.attempt(payload, timeout_s=120.0, on_log=None)

    async def _run_step(self, run: ActiveRun, step: StepSpec) -> None:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self._set_state(run, step, StepState.RETRYING, error=f"{type(exc).__name__}: {exc}")

        retrying = AsyncRetrying(
            stop=stop_after_attempt(step.retries + 1),
            wait=self._wait(),
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            reraise=True,
            before_sleep=before_sleep,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._step_attempt(run, step)
        except asyncio.CancelledError:
            if not run.steps[step.name].state.terminal:
                self._set_state(run, step, StepState.CANCELLED, error="cancelled")
            raise
        except StepTimeoutError as exc:
            self._set_state(run, step, StepState.CRASHED, error=str(exc), **self._elapsed(run, step))
        except WorkerError as exc:
            self._set_state(run, step, StepState.CRASHED, error=str(exc), **self._elapsed(run, step))
        except StepAttemptError as exc:
            if exc.kind == "no_input":  # nothing landed for this step to read: skipped, not failed
                self._set_state(
                    run, step, StepState.SKIPPED, warnings=(f"no input: {exc}",), **self._elapsed(run, step)
                )
                return
            state = StepState.CANCELLED if exc.kind == "cancelled" else StepState.FAILED
            self._set_state(run, step, state, error=f"{exc.kind}: {exc}", **self._elapsed(run, step))
            # its batch is set aside (worker/hold.py)
            if holds_files(exc.kind, str(exc), run.mode.value, run.partition):
                await self.hold_batch(run, step, str(exc))

    def _elapsed(self, run: ActiveRun, step: StepSpec) -> dict[str, Any]:
        started = run.steps[step.name].started_at
        return {"duration_s": round(self._clock() - started, 6)} if started is not None else {}

    async def _step_attempt(self, run: ActiveRun, step: StepSpec) -> None:
        rec = run.steps[step.name]
        self._set_state(run, step, StepState.QUEUED)
        async with self._step_lock:
            self._set_state(
                run, step, StepState.RUNNING, attempts=rec.attempts + 1, started_at=self._clock(), error=None
            )
            payload = step_payload(run, step) | {"attempt": rec.attempts + 1}

            def on_log(level: str, message: str) -> None:
                self._emit(StepLog(self._clock(), run.run_id, run.spec.name, step.name, level, message))

            try:
                result = await self.client.attempt(
                    payload,
                    timeout_s=step.timeout_s,
                    on_log=on_log,
                    on_committed_while_cancelled=lambda committed: self._succeeded(run, step, committed),
                )
            except (WorkerError, StepTimeoutError):
                # the worker died or was killed: between its COMMIT and its reply, the step did commit
                found = await self._committed_result(run, step, rec.attempts + 1)
                if found is None:
                    raise
                result = found
        self._succeeded(run, step, result)

    async def _committed_result(self, run: ActiveRun, step: StepSpec, attempt: int) -> dict[str, Any] | None:
        """The result the attempt committed (ledger.record_commit), or None when it did not commit."""
        sql = committed_result_sql(run.spec.ledger, run.run_id, step.name, attempt)
        try:
            found = await self.client.query(sql, max_rows=1, timeout_s=30.0)
        except PipelineError as exc:  # cannot tell: the step is reported as it failed
            log.warning("pipeline_commit_check_failed", run_id=run.run_id, step=step.name, error=str(exc))
            return None
        if not found.rows:
            return None
        metrics, warnings = found.rows[0]
        log.info("pipeline_step_committed_before_worker_died", run_id=run.run_id, step=step.name, attempt=attempt)
        return {"metrics": json.loads(metrics), "warnings": json.loads(warnings)}

    def _succeeded(self, run: ActiveRun, step: StepSpec, result: Mapping[str, Any]) -> None:
        """Record a step attempt whose transaction committed (also when the run was cancelled meanwhile)."""
        metrics: dict[str, Any] = dict(result.get("metrics") or {})
        for key in WORKER_FIGURES:  # the worker's peak RSS, CPU and I/O during the step (base/usagespan.py)
            value = result.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
                metrics[key] = value
        warnings = tuple(result.get("warnings") or ())
        final = StepState.SUCCEEDED_WITH_WARNINGS if warnings else StepState.SUCCEEDED
        self._set_state(
            run,
            step,
            final,
            rows_in=metric_count(metrics.get("rows_in")),
            rows_out=metric_count(metrics.get("rows_out")),
            metrics=metrics,
            warnings=warnings,
            duration_s=float(result.get("duration_s", 0.0)),
        )
