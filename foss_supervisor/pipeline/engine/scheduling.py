"""How runs start: on demand (a command), by a trigger (timer, cron, landed files, ``after:``) and as a retry.

:class:`RunScheduling` is the base of :class:`~foss_supervisor.pipeline.engine.service.PipelineService`, which sets
the attributes declared below. Every run is a task of the service's TaskGroup, so none outlives the daemon;
runs of one pipeline never overlap (a trigger that finds its pipeline busy waits for the next tick); a
trigger whose pipeline has nothing new since its last good run (see fingerprint.py) records no run: it is
counted in the pipeline's one ``skips`` line instead, so the history and the pages keep showing the last run
that did work; a good run starts the pipelines declared ``after:`` it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from foss_supervisor.base.pipelinestates import RUN_SUCCEEDED, RunMode
from foss_supervisor.config import Config
from foss_supervisor.core.events import EventBus
from foss_supervisor.errors import CommandError
from foss_supervisor.pipeline.engine.fingerprint import FingerprintStore, input_fingerprint
from foss_supervisor.pipeline.engine.history import RunRecord
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.spec import PipelineSpec
from foss_supervisor.pipeline.errors import PipelineBusyError, PipelineError

__all__ = ["RunScheduling"]

log = structlog.get_logger("foss_supervisor.pipelines")

#: runs whose input fingerprint is remembered, for a retry of one of them (only a pipeline's latest run can be)
RUN_INPUTS = 64


class RunScheduling:
    """Starts runs in the background and answers for them; the service it is part of sets the attributes."""

    config: Config
    specs: dict[str, PipelineSpec]
    runner: PipelineRunner
    _bus: EventBus
    _group: asyncio.TaskGroup | None
    _fingerprints: FingerprintStore
    _paused: set[str]
    _skips: dict[str, dict[str, Any]]  # pipeline -> {"count", "last_at", "last_trigger"} since the daemon started
    _backfilling: set[str]  # pipelines with a backfill in progress (backfill.py)
    _run_inputs: dict[str, str | None]  # run id -> its input fingerprint at its start (the last RUN_INPUTS runs)
    _redefined_while_paused: set[str]  # pipelines whose config_changed run waits for their resume (service.py)

    def _busy(self, name: str) -> bool:
        """A run of ``name`` is in progress, or a backfill of it (between two partition runs too)."""
        return self.runner.is_running(name) or name in self._backfilling

    def _try_start(self, name: str, trigger: str, *, skip_unchanged: bool = True) -> bool:
        """Start a scheduled run unless one is in progress or the schedules are paused; True when it started."""
        if name in self._paused:
            log.info("pipeline_trigger_paused", pipeline=name, trigger=trigger)
            return False  # a landing folder's files stay unseen, so resuming runs them
        if self._busy(name) or self._group is None:
            return False
        self.start(name, RunMode.RUN, trigger, skip_unchanged=skip_unchanged)
        return True

    def _spec(self, name: str) -> PipelineSpec:
        if name not in self.specs:
            raise CommandError(f"no such pipeline: {name!r}; known: {', '.join(sorted(self.specs))}")
        return self.specs[name]

    def start(
        self, name: str, mode: RunMode, trigger: str, *, skip_unchanged: bool = False
    ) -> asyncio.Task[RunRecord | None]:
        """Start a run in the background; raises CommandError when one is already running.

        With ``skip_unchanged`` (triggers), a pipeline whose inputs and definition did not change since
        its last good run records a skipped run instead.
        """
        self._spec(name)
        if self._group is None:
            raise CommandError("pipelines are not running (the daemon is starting or stopping)")
        if self._busy(name):
            raise CommandError(f"pipeline {name!r} is already running (a run or a backfill)")
        return self._group.create_task(self._guarded(name, mode, trigger, skip_unchanged), name=f"pipeline-run:{name}")

    def start_retry(self, run_id: str, step: str | None) -> tuple[str, asyncio.Task[RunRecord | None]]:
        """Start a retry of failed run ``run_id`` in the background (see PipelineRunner.retry); returns the
        pipeline's name and the task. Raises CommandError with the reason when the retry is refused."""
        if self._group is None:
            raise CommandError("pipelines are not running (the daemon is starting or stopping)")
        try:
            plan = self.runner.plan_retry(run_id, step=step)
        except PipelineError as exc:
            raise CommandError(str(exc)) from None
        name = plan.source.pipeline
        if self._busy(name):  # a backfill between two partition runs: the runner's lock is free, the pipeline is not
            raise CommandError(f"pipeline {name!r} is running a backfill; cancel it or wait for it to end")
        task = self._group.create_task(
            self._guarded(name, plan.source.mode, "manual", False, retry=(run_id, step)), name=f"pipeline-retry:{name}"
        )
        return name, task

    async def _guarded(
        self, name: str, mode: RunMode, trigger: str, skip_unchanged: bool, retry: tuple[str, str | None] | None = None
    ) -> RunRecord | None:
        """One background run (a retry of ``retry`` = (run id, step) if given); its failures are recorded by the
        runner, never raised into the TaskGroup."""
        try:
            fingerprint = await asyncio.to_thread(input_fingerprint, self.specs[name])
        except OSError as exc:  # an unreadable folder: run anyway, the run reports what is wrong
            log.warning("pipeline_fingerprint_failed", pipeline=name, error=str(exc))
            fingerprint = None
        try:
            if skip_unchanged and fingerprint is not None and fingerprint == self._fingerprints.get(name):
                self._note_skip(name, trigger)
                return None
            if retry is not None:
                record = await self.runner.retry(retry[0], step=retry[1], trigger=trigger)
            else:
                record = await self.runner.run(name, mode=mode, trigger=trigger)
        except PipelineBusyError:
            return None
        except PipelineError as exc:
            log.error("pipeline_run_failed_to_start", pipeline=name, error=str(exc))
            return None
        # a good run took the inputs it started with; a retry reused its source run's first steps, so it took
        # the inputs it started with only when they are the source's (nothing landed or changed in between;
        # unknown after a restart): else the next trigger runs, never skipped as "nothing new"
        took = fingerprint if retry is None or fingerprint == self._run_inputs.get(retry[0]) else None
        self._run_inputs[record.run_id] = took
        for old in list(self._run_inputs)[:-RUN_INPUTS]:
            del self._run_inputs[old]
        self._fingerprints.set(name, took if record.status in RUN_SUCCEEDED else None)
        if record.status in RUN_SUCCEEDED and mode is RunMode.RUN:  # the new definition ran: nothing waits for resume
            self._redefined_while_paused.discard(name)
        if record.status in RUN_SUCCEEDED:
            for pc in self.config.pipelines.values():
                if name in pc.after:  # its input changed: never skipped as "nothing new"
                    self._try_start(pc.name, f"after:{name}", skip_unchanged=False)
        return record

    def _note_skip(self, name: str, trigger: str) -> None:
        """Count a trigger that found nothing new (no run is recorded for it)."""
        skips = self._skips.setdefault(name, {"count": 0, "last_at": None, "last_trigger": None})
        skips.update(count=skips["count"] + 1, last_at=time.time(), last_trigger=trigger)
        log.info("pipeline_run_skipped", pipeline=name, trigger=trigger, reason="nothing new since the last good run")

    async def run_now(self, name: str, wait: bool, *, replay: bool = False) -> dict[str, Any]:
        """Start a manual run (a replay of the quarantine with ``replay``); with ``wait`` return its final record,
        else its live snapshot."""
        return await self._reply(name, self.start(name, RunMode.REPLAY if replay else RunMode.RUN, "manual"), wait)

    async def retry_now(self, run_id: str, step: str | None, wait: bool) -> dict[str, Any]:
        """Start a retry of failed run ``run_id``; with ``wait`` return its final record, else its live snapshot.
        CommandError says why a retry is refused."""
        name, task = self.start_retry(run_id, step)
        return await self._reply(name, task, wait)

    async def _reply(self, name: str, task: asyncio.Task[RunRecord | None], wait: bool) -> dict[str, Any]:
        if wait:
            record = await asyncio.shield(task)
            if record is None:
                raise CommandError(f"pipeline {name!r} could not run (see the daemon log)")
            return record.to_dict()
        await self._until_started(name, task)
        active = self.runner.active_run(name)
        if active is None:
            record = task.result()
            if record is None:
                raise CommandError(f"pipeline {name!r} could not run (see the daemon log)")
            return record.to_dict()
        return active.to_dict()

    async def _until_started(self, name: str, task: asyncio.Task[RunRecord | None]) -> None:
        """Wait for the run's RunStarted event (or its end), so the reply can carry its run id."""
        sub = self._bus.subscribe()
        try:
            async with asyncio.timeout(10.0):
                while not task.done() and self.runner.active_run(name) is None:
                    getter = asyncio.ensure_future(sub.get())
                    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                    getter.cancel()
        finally:
            sub.close()

    def held_summary(self, name: str) -> dict[str, Any]:
        """``{"count", "files": [{path, name, sha256, held_run, held_at, lines, note}]}``: pipeline ``name``'s held
        files (worker/hold.py) as the runner last read them."""
        files = self.runner.held(name)
        return {"count": len(files), "files": files}

    async def release(self, name: str, files: list[str], every: bool) -> dict[str, Any]:
        """``pipeline_release`` (holding.HeldFiles.release); the next run, by any trigger, ingests the released
        files (the landing fingerprint is forgotten, so it is never skipped as "nothing new"). A refusal as
        CommandError."""
        if name not in self.specs:
            raise CommandError(f"no pipeline named {name!r} (known: {', '.join(sorted(self.specs))})")
        try:
            result = await self.runner.release(name, files, every=every)
        except PipelineError as exc:
            raise CommandError(str(exc)) from None
        if result["released"]:
            self._fingerprints.set(name, None)
        return result
