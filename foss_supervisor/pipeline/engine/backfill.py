"""Backfills: re-run chosen partitions of a partitioned pipeline, one partition run each, and per-partition state.

:class:`Backfills` is a base of :class:`~foss_supervisor.pipeline.engine.service.PipelineService` (which sets the
attributes declared below). A backfill lists the pipeline's landing files, takes their partitions (partition.py)
in ``[start, end]`` (just those whose last partition run failed with ``only_failed``) and runs them in order, each
as a run with reason ``backfill`` and its ``partition``. Why one at a time: the runs of one pipeline never
overlap (they write the same tables) and the DuckDB worker has one writer that runs one step at a time, so a
``parallel`` above 1 would only queue; it is refused with that reason rather than accepted and ignored.

A partition's state is its newest partition run in the run history (the last 1,000 runs of the daemon).
Cancelling the pipeline (``pipeline cancel``) cancels the backfill: the partition in progress is recorded as
cancelled and no later one starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import structlog

from foss_supervisor.base.pipelinestates import RUN_FAILED, StepState
from foss_supervisor.errors import CommandError
from foss_supervisor.pipeline.engine.history import RunRecord
from foss_supervisor.pipeline.engine.partition import PartitionSpec, parse_bound, partitions_of, select_partitions
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.engine.scheduling import RunScheduling
from foss_supervisor.pipeline.engine.spec import PipelineSpec
from foss_supervisor.pipeline.errors import PipelineError
from foss_supervisor.pipeline.worker.ledger import landing_files

__all__ = [
    "MAX_PARALLEL",
    "BackfillProgress",
    "Backfills",
    "choose_partitions",
    "landing_partitions",
    "last_partition_runs",
    "run_partitions",
]

log = structlog.get_logger("foss_supervisor.pipelines")

#: the highest ``parallel`` the command takes (only 1 runs today: see the module's docstring)
MAX_PARALLEL = 64
_HISTORY_SCAN = 1000


@dataclasses.dataclass(slots=True)
class BackfillProgress:
    """One backfill of one pipeline: what it runs, what each partition ended as so far (value -> status)."""

    pipeline: str
    partitions: list[str]
    started_at: float
    done: dict[str, str] = dataclasses.field(default_factory=dict)
    current: str | None = None
    finished_at: float | None = None
    task: asyncio.Task[None] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"pipeline", "partitions", "done": {value: status}, "current", "started_at", "finished_at",
        "counts": {status: n}}`` (times: Unix seconds)."""
        counts: dict[str, int] = {}
        for status in self.done.values():
            counts[status] = counts.get(status, 0) + 1
        return {
            "pipeline": self.pipeline,
            "partitions": list(self.partitions),
            "done": dict(self.done),
            "current": self.current,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "counts": counts,
        }


def last_partition_runs(runs: list[RunRecord]) -> dict[str, RunRecord]:
    """The newest run of each partition among ``runs`` (given newest first)."""
    out: dict[str, RunRecord] = {}
    for run in runs:
        if run.partition is not None and run.partition not in out:
            out[run.partition] = run
    return out


def landing_partitions(spec: PipelineSpec) -> tuple[dict[str, list[str]], int]:
    """The partitions of ``spec``'s landing files (value -> file names, values sorted) and how many files
    match no partition. Raises ValueError when ``spec`` declares no ``partition:``. Reads the folder: call it
    in a thread."""
    if spec.partition is None:
        raise ValueError(f"pipeline {spec.name!r} declares no partition: (see docs/pipelines.md, Partitions)")
    found, none = partitions_of(spec.partition, landing_files(spec.folders.landing, spec.patterns))
    return {v: [p.name for p in ps] for v, ps in found.items()}, len(none)


def choose_partitions(
    spec: PipelineSpec, runs: list[RunRecord], start: str, end: str, *, only_failed: bool
) -> list[str]:
    """The partitions a backfill of ``spec`` runs: those of its landing files in ``[start, end]`` ("" is open),
    with ``only_failed`` those whose newest partition run among ``runs`` (newest first) failed. Raises
    ValueError with the reason (no partition key, a bad bound, start after end, too many)."""
    found, _ = landing_partitions(spec)
    assert spec.partition is not None  # landing_partitions said so
    lo, hi = parse_bound(spec.partition, start, "from"), parse_bound(spec.partition, end, "to")
    last = {v: r.status.value for v, r in last_partition_runs(runs).items()}
    return select_partitions(found, lo, hi, only_failed=only_failed, last_status=last)


async def run_partitions(runner: PipelineRunner, progress: BackfillProgress) -> None:
    """Run ``progress.partitions`` of its pipeline one after another as runs with reason ``backfill``, noting
    each end in ``progress.done``; stops at a partition the runner refuses (busy: PipelineError). Cancelling
    the caller cancels the partition run in progress (recorded as cancelled) and the rest."""
    name = progress.pipeline
    log.info("pipeline_backfill_started", pipeline=name, partitions=len(progress.partitions))
    try:
        for value in progress.partitions:
            progress.current = value
            try:
                record = await runner.run(name, trigger="backfill", partition=value)
            except PipelineError as exc:
                log.error("pipeline_backfill_stopped", pipeline=name, partition=value, error=str(exc))
                break
            progress.done[value] = record.status.value
    finally:
        progress.current = None
        progress.finished_at = time.time()
        log.info("pipeline_backfill_finished", pipeline=name, done=len(progress.done))


def _partition_row(value: str, files: int, run: RunRecord | None) -> dict[str, Any]:
    if run is None:
        return {
            "partition": value,
            "files": files,
            "status": "never_run",
            "run_id": None,
            "finished_at": None,
            "error": None,
            "failed_step": None,
            "warnings": 0,
            "rows_out": {},
        }
    bad = next((s for s in run.steps if s.state in (StepState.FAILED, StepState.CRASHED, StepState.CANCELLED)), None)
    return {
        "partition": value,
        "files": files,
        "status": run.status.value,
        "run_id": run.run_id,
        "finished_at": run.finished_at,
        "error": run.error,
        "failed_step": bad.name if bad is not None else None,
        "warnings": sum(len(s.warnings) for s in run.steps),
        "rows_out": {s.name: s.rows_out for s in run.steps if s.rows_out is not None},
    }


class Backfills(RunScheduling):
    """Per-partition state and backfills; the service it is part of sets ``_backfills`` (pipeline -> its
    latest backfill) and the attributes of RunScheduling."""

    _backfills: dict[str, BackfillProgress]

    def _refuse_while_backfilling(self, name: str, what: str) -> None:
        """CommandError when ``name`` has a backfill in progress (between two partition runs the runner's
        lock is free, so its own refusal would not see it)."""
        if name in self._backfilling:
            raise CommandError(f"{what} refused: pipeline {name!r} is running a backfill; cancel it or wait")

    def _partition_key(self, name: str) -> PartitionSpec:
        key = self._spec(name).partition
        if key is None:
            raise CommandError(f"pipeline {name!r} declares no partition: (see docs/pipelines.md, Partitions)")
        return key

    def failed_partitions(self, name: str) -> list[RunRecord]:
        """The last partition run of each partition of ``name`` that failed or was abandoned, by partition
        ([] for a pipeline without ``partition:``): what the ``pipeline_failed`` alert holds on, since the
        last run of a backfill may succeed while days before it failed."""
        if name not in self.specs or self._spec(name).partition is None:
            return []
        last = last_partition_runs(self.runner.runs(name, _HISTORY_SCAN))
        return [last[p] for p in sorted(last) if last[p].status in RUN_FAILED]

    def summaries(self, name: str) -> dict[str, Any]:
        """What ``pipelines`` adds to pipeline ``name``: ``{"partitions": partition_summary, "held":
        held_summary}`` (its held files: scheduling.RunScheduling.held_summary)."""
        return {"partitions": self.partition_summary(name), "held": self.held_summary(name)}

    def partition_summary(self, name: str) -> dict[str, Any] | None:
        """None for a pipeline without ``partition:``; else ``{"key", "counts": {status: n}, "backfill":
        BackfillProgress.to_dict() | None}``, counting each partition that ran by its last partition run (from
        the history only: the landing folder is not read, see :meth:`partitions` for every partition)."""
        key = self._spec(name).partition
        if key is None:
            return None
        counts: dict[str, int] = {}
        for run in last_partition_runs(self.runner.runs(name, _HISTORY_SCAN)).values():
            counts[run.status.value] = counts.get(run.status.value, 0) + 1
        bf = self._backfills.get(name)
        return {"key": key.key, "counts": counts, "backfill": bf.to_dict() if bf is not None else None}

    async def partitions(self, name: str) -> dict[str, Any]:
        """``{"pipeline", "key", "partitions": [{"partition", "files", "status", "run_id", "finished_at",
        "error", "failed_step", "warnings", "rows_out": {step: n}}], "counts": {status: n}, "unmatched_files",
        "backfill": BackfillProgress.to_dict() | None}``: every partition of its landing files or its history,
        sorted; ``status`` is its last partition run's (``never_run`` when none, ``running`` for the current).
        Raises CommandError for a pipeline without ``partition:``."""
        key = self._partition_key(name)
        try:
            found, unmatched = await asyncio.to_thread(landing_partitions, self._spec(name))
        except OSError as exc:
            raise CommandError(f"cannot list the landing folder of {name!r}: {exc.strerror or exc}") from None
        last = last_partition_runs(self.runner.runs(name, _HISTORY_SCAN))
        active = self.runner.active_run(name)
        if active is not None and active.partition is not None:
            last[active.partition] = active
        rows = [_partition_row(v, len(found.get(v, [])), last.get(v)) for v in sorted(found.keys() | last.keys())]
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        bf = self._backfills.get(name)
        return {
            "pipeline": name,
            "key": key.key,
            "partitions": rows,
            "counts": counts,
            "unmatched_files": unmatched,
            "backfill": bf.to_dict() if bf is not None else None,
        }

    async def backfill(
        self, name: str, start: str, end: str, *, only_failed: bool, dry_run: bool, parallel: int, wait: bool
    ) -> dict[str, Any]:
        """Choose the partitions in ``[start, end]`` ("" is open), with ``only_failed`` those whose last
        partition run failed, and run them one after another (``dry_run``: only list them). Returns
        ``{"pipeline", "dry_run", "partitions": [value], "backfill": BackfillProgress.to_dict() | None}``, at
        once or (``wait``) when every partition ran. Raises CommandError with the reason: no ``partition:``,
        a bad bound, ``start`` after ``end``, too many partitions, ``parallel`` not 1, pipeline busy."""
        spec = self._spec(name)
        self._partition_key(name)
        if not 1 <= parallel <= MAX_PARALLEL:
            raise CommandError(f"parallel: between 1 and {MAX_PARALLEL}, got {parallel}")
        runs = self.runner.runs(name, _HISTORY_SCAN)
        try:
            chosen = await asyncio.to_thread(choose_partitions, spec, runs, start, end, only_failed=only_failed)
        except OSError as exc:
            raise CommandError(f"cannot list the landing folder of {name!r}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if parallel != 1:  # before the dry run too: a dry run says what the run would do, refusals included
            raise CommandError(
                "parallel: the runs of one pipeline never overlap and the DuckDB worker has one writer, so "
                "partitions run one at a time; use parallel 1 (the default)"
            )
        if dry_run:
            return {"pipeline": name, "dry_run": True, "partitions": chosen, "backfill": None}
        if self._group is None:
            raise CommandError("pipelines are not running (the daemon is starting or stopping)")
        if self._busy(name):
            raise CommandError(f"pipeline {name!r} is already running; cancel it or wait for it to end")
        progress = BackfillProgress(name, chosen, time.time())
        self._backfills[name] = progress
        self._backfilling.add(name)
        progress.task = self._group.create_task(self._run_backfill(progress), name=f"pipeline-backfill:{name}")
        if wait:
            await asyncio.shield(progress.task)
        return {"pipeline": name, "dry_run": False, "partitions": chosen, "backfill": progress.to_dict()}

    async def _run_backfill(self, progress: BackfillProgress) -> None:
        try:
            await run_partitions(self.runner, progress)
        finally:
            self._backfilling.discard(progress.pipeline)
            # the next trigger runs the whole pipeline, never "nothing new"
            self._fingerprints.set(progress.pipeline, None)

    async def cancel_backfill(self, name: str) -> bool:
        """Cancel ``name``'s backfill in progress (its current partition run too); whether there was one."""
        bf = self._backfills.get(name)
        if bf is None or bf.task is None or bf.task.done():
            return False
        bf.task.cancel()
        return True
