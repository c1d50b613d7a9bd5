"""Snapshots, diff and rollback of runs, the runner's part: :class:`RunSnapshots` is a base of
:class:`~foss_supervisor.pipeline.runner.PipelineRunner`, which sets every attribute declared below.

- After every successful run, :meth:`RunSnapshots.keep_snapshot` has the worker write each layer table
  (every base table of the pipeline's schemas but its file ledger's) into a partial snapshot, by reference
  to the previous snapshot's files where a table only grew, then makes it whole and keeps the newest
  ``snapshot_keep`` (snapshots.py, workersnapshots.py, workersegments.py).
- :meth:`RunSnapshots.diff` compares two runs' snapshots in the worker (workerdiff.py).
- :meth:`RunSnapshots.rollback` restores a run's snapshot in ONE worker transaction, then makes that run's
  published set current again (Parquet: the run's folder; Delta: each table restored to the run's version,
  publishdelta.py), or publishes the restored tables anew when it is no longer kept, and
  records a run with reason ``rollback``. Without ``apply`` it only says what would change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.pipeline.errors import PipelineBusyError, PipelineError, SnapshotError
from foss_supervisor.pipeline.events import EventCallback, RunFinished, RunStarted
from foss_supervisor.pipeline.history import RunHistory, RunRecord, StepRecord
from foss_supervisor.pipeline.publish import published_run, switch_current
from foss_supervisor.pipeline.publishdelta import DELTA, delta_run_versions, restore_delta_run
from foss_supervisor.pipeline.snapshots import (
    commit_snapshot,
    discard_snapshot_stage,
    link_snapshot,
    list_snapshots,
    load_snapshot,
    prune_snapshots,
    snapshot_root,
)
from foss_supervisor.pipeline.spec import PipelineSpec, StepKind
from foss_supervisor.pipeline.states import RunMode, RunStatus, StepState
from foss_supervisor.pipeline.workerclient import WorkerClient

__all__ = ["ROLLBACK", "RunSnapshots", "declared_keys", "layer_schemas"]

log = structlog.get_logger("foss_supervisor.pipeline")

#: the trigger (and reason, history.RUN_REASONS) of the run that records a rollback
ROLLBACK = "rollback"


def layer_schemas(spec: PipelineSpec) -> list[str]:
    """The schemas whose tables a snapshot keeps: every schema the pipeline owns but its file ledger's."""
    return sorted(spec.schemas - {spec.ledger})


def declared_keys(spec: PipelineSpec) -> dict[str, list[str]]:
    """``{schema.table: [column]}``: the key each ``deduplicate`` step declares for its target."""
    return {
        str(s.params["target"]): [str(c) for c in s.params["key"]]
        for s in spec.steps
        if s.kind is StepKind.DEDUPLICATE and s.params.get("target") and s.params.get("key")
    }


class RunSnapshots:
    """Snapshots, diff and rollback of one runner's pipelines (the runner sets the attributes below)."""

    _specs: dict[str, PipelineSpec]
    _run_locks: dict[str, asyncio.Lock]
    _step_lock: asyncio.Lock
    _closed: bool
    _clock: Callable[[], float]
    _on_event: EventCallback | None
    client: WorkerClient
    history: RunHistory
    publish_dir: Path
    publish: Callable[[str, str], Awaitable[dict[str, Any]]]
    _new_run_id: Callable[[], str]
    _spec: Callable[[str], PipelineSpec]
    _emit: Callable[[object], None]
    _last_diffs: dict[str, dict[str, Any]]  # per pipeline, the diff last_diff gave (snapshots never change)

    def snapshot_folder(self, pipeline: str) -> Path:
        """``<warehouse folder>/snapshots/<pipeline>/`` (snapshots.py)."""
        return snapshot_root(self.publish_dir) / pipeline

    async def keep_snapshot(self, spec: PipelineSpec, run_id: str) -> str | None:
        """Keep run ``run_id``'s snapshot (none with ``snapshot_keep: 0``, which also removes older ones).
        Returns None, or a warning ``snapshot failed: ...`` (nothing partial is left to read)."""
        folder = self.snapshot_folder(spec.name)
        if spec.snapshot_keep <= 0:
            await asyncio.to_thread(prune_snapshots, folder, 0)
            return None
        request = {
            "task": "snapshot",
            "pipeline": spec.name,
            "run_id": run_id,
            "schemas": layer_schemas(spec),
            "keys": declared_keys(spec),
            "previous": await asyncio.to_thread(self._previous_tables, folder, run_id),
        }
        try:
            written = await self.client.task(request, timeout_s=3600.0, what=f"snapshot of {spec.name}")
            manifest = await asyncio.to_thread(
                commit_snapshot, folder, spec.name, run_id, written["tables"], keep=spec.snapshot_keep
            )
        except (PipelineError, OSError) as exc:
            await asyncio.to_thread(discard_snapshot_stage, folder, run_id)
            return f"snapshot failed: {exc}"
        except BaseException:
            await asyncio.to_thread(discard_snapshot_stage, folder, run_id)
            raise
        tables = manifest["tables"].values()
        log.info(
            "pipeline_snapshot_kept",
            pipeline=spec.name,
            run_id=run_id,
            tables=len(tables),
            bytes=sum(t["bytes"] for t in tables),
            linked=sum(t["linked"] for t in tables),
        )
        return None

    @staticmethod
    def _previous_tables(folder: Path, run_id: str) -> dict[str, Any]:
        """The tables of the newest whole snapshot but ``run_id``'s (files absolute): what a table that only
        grew since is stored by reference to (workersegments.py); {} when there is none or it is unreadable."""
        for previous in reversed(list_snapshots(folder)):
            if previous != run_id:
                try:
                    return dict(load_snapshot(folder, previous)["tables"])
                except (SnapshotError, OSError):  # unusable (named by diff and rollback): this one is copied whole
                    return {}
        return {}

    def snapshots(self, pipeline: str) -> list[str]:
        """Run ids of ``pipeline``'s whole snapshots, oldest first."""
        return list_snapshots(self.snapshot_folder(self._spec(pipeline).name))

    def _pipeline_of(self, run_id: str) -> PipelineSpec:
        record = self.history.get(run_id)
        if record is None:
            raise SnapshotError(f"no such run: {run_id!r}")
        return self._spec(record.pipeline)

    async def diff(self, run_a: str, run_b: str, *, timeout_s: float = 60.0) -> dict[str, Any]:
        """The diff of run ``run_a``'s snapshot to run ``run_b``'s (both runs of one pipeline; workerdiff.py
        gives the shape of ``tables``). Returns ``{"pipeline", "run_a", "run_b", "tables", "truncated"}``.
        Raises SnapshotError (unknown run, another pipeline, no whole snapshot), QueryTimeoutError."""
        spec = self._pipeline_of(run_a)
        if self._pipeline_of(run_b).name != spec.name:
            raise SnapshotError(f"runs {run_a} and {run_b} are of different pipelines")
        folder = self.snapshot_folder(spec.name)
        a = await asyncio.to_thread(load_snapshot, folder, run_a)
        b = await asyncio.to_thread(load_snapshot, folder, run_b)
        request = {"task": "diff", "a": {"tables": a["tables"]}, "b": {"tables": b["tables"]}, "timeout_s": timeout_s}
        result = await self.client.task(request, timeout_s=timeout_s + 5.0, what=f"diff of {run_a} and {run_b}")
        return {"pipeline": spec.name, "run_a": run_a, "run_b": run_b} | result

    async def last_diff(self, pipeline: str, *, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """The diff of ``pipeline``'s last snapshot against the one before, or None with fewer than two. Kept
        per pipeline until a newer snapshot comes (a snapshot never changes), so a page may ask on every load."""
        kept = await asyncio.to_thread(self.snapshots, pipeline)
        if len(kept) < 2:
            return None
        cached = self._last_diffs.get(pipeline)
        if cached is None or (cached["run_a"], cached["run_b"]) != (kept[-2], kept[-1]):
            cached = self._last_diffs[pipeline] = await self.diff(kept[-2], kept[-1], timeout_s=timeout_s)
        return cached

    def _published_kept(self, spec: PipelineSpec, run_id: str) -> bool:
        """Whether run ``run_id``'s published set can be made current again without publishing anew."""
        folder = self.publish_dir / spec.name
        if spec.publish_format == DELTA:
            return delta_run_versions(folder, run_id) is not None
        return published_run(folder, run_id)

    async def rollback(self, pipeline: str, run_id: str, *, apply: bool) -> dict[str, Any]:
        """Restore run ``run_id``'s layer tables and published set (see the module docstring).

        Returns ``{"pipeline", "to", "applied", "published": "switch" | "restore" | "republish" | None}``
        (``restore``: each Delta table restored to that run's version by a new commit) with, unapplied,
        ``"changes"`` (the diff of the live tables to the snapshot: what applying would change) and, applied,
        ``"run_id"`` (the rollback's run), ``"tables": [{table, rows}]`` restored and ``"dropped"``.
        Raises PipelineBusyError (a run in progress), SnapshotError (no whole snapshot of
        ``run_id``, or the restore failed: then every table is as it was), QueryTimeoutError.
        """
        spec = self._spec(pipeline)
        lock = self._run_locks[spec.name]
        if lock.locked() or self._closed:
            raise PipelineBusyError(f"a run of {spec.name} is in progress; rollback refused (cancel it or wait)")
        folder = self.snapshot_folder(spec.name)
        manifest = await asyncio.to_thread(load_snapshot, folder, run_id)
        kept = await asyncio.to_thread(self._published_kept, spec, run_id)
        again = "restore" if spec.publish_format == DELTA else "switch"
        plan = {
            "pipeline": spec.name,
            "to": run_id,
            "applied": False,
            "published": (again if kept else "republish") if spec.publish else None,
        }
        if not apply:
            live = {"live": True, "schemas": layer_schemas(spec), "keys": declared_keys(spec)}
            preview = {"task": "diff", "a": live, "b": {"tables": manifest["tables"]}, "timeout_s": 60.0}
            try:
                plan["changes"] = (await self.client.task(preview, timeout_s=65.0, what="rollback preview"))["tables"]
            except PipelineError as exc:
                raise SnapshotError(f"the snapshot of run {run_id} cannot be compared: {exc}") from None
            return plan
        if lock.locked():
            raise PipelineBusyError(f"a run of {spec.name} started meanwhile; rollback refused")
        async with lock:
            return plan | await self._apply_rollback(spec, run_id, manifest, kept)

    async def _apply_rollback(
        self, spec: PipelineSpec, target: str, manifest: dict[str, Any], kept: bool
    ) -> dict[str, Any]:
        rid, started = self._new_run_id(), self._clock()
        self._emit(RunStarted(started, rid, spec.name, RunMode.RUN, ROLLBACK, tuple(s.name for s in spec.steps)))
        restore = {
            "task": "restore",
            "pipeline": spec.name,
            "schemas": layer_schemas(spec),
            "tables": manifest["tables"],
        }
        try:
            async with self._step_lock:
                restored = await self.client.task(restore, timeout_s=3600.0, what=f"rollback of {spec.name}")
        except BaseException as exc:
            error = f"rollback to {target} failed, every table is as it was: {exc}"
            self._record(
                spec,
                rid,
                started,
                RunStatus.FAILED if isinstance(exc, Exception) else RunStatus.CANCELLED,
                target,
                error,
            )
            if isinstance(exc, PipelineError | OSError):
                raise SnapshotError(error) from None
            raise
        warning = None
        try:
            if spec.publish and kept and spec.publish_format == DELTA:
                folder = self.publish_dir / spec.name
                await restore_delta_run(
                    self.client, folder, spec.name, target, rid, finished_at=self._clock(), keep=spec.publish_keep
                )
            elif spec.publish and kept:
                await asyncio.to_thread(switch_current, self.publish_dir / spec.name, target)
            elif spec.publish:
                await self.publish(spec.name, rid)
            await asyncio.to_thread(
                link_snapshot, self.snapshot_folder(spec.name), target, rid, keep=spec.snapshot_keep
            )
        except (PipelineError, OSError, ValueError) as exc:
            warning = f"tables rolled back to {target}, but: {exc}"
        status = RunStatus.SUCCEEDED_WITH_WARNINGS if warning else RunStatus.SUCCEEDED
        self._record(spec, rid, started, status, target, warning)
        log.info("pipeline_rolled_back", pipeline=spec.name, to=target, run_id=rid, warning=warning)
        return {"applied": True, "run_id": rid, "tables": restored["tables"], "dropped": restored["dropped"]}

    def _record(
        self, spec: PipelineSpec, rid: str, started: float, status: RunStatus, target: str, error: str | None
    ) -> None:
        """The rollback as a run of reason ``rollback``: its steps skipped, ``note`` naming the run restored."""
        record = RunRecord(
            run_id=rid,
            pipeline=spec.name,
            mode=RunMode.RUN,
            trigger=ROLLBACK,
            status=status,
            started_at=started,
            finished_at=self._clock(),
            steps=tuple(StepRecord(name=s.name, state=StepState.SKIPPED) for s in spec.steps),
            error=error,
            note=f"rolled back to run {target}",
        )
        self.history.append(record)
        self._emit(RunFinished(self._clock(), rid, spec.name, status, record.duration_s or 0.0, error))
