"""A run's publish, the runner's part: :class:`RunPublish` is a base of
:class:`~foss_supervisor.pipeline.engine.runner.PipelineRunner` (through ``RunExecution``), which sets every attribute
declared below.

A good run publishes in two halves around its snapshot (execution.py), so that a run that changed no layer
table keeps the published set as it is (issue 18) while a run that did hard-links its published Parquet files
into its snapshot instead of copying them:

1. :meth:`RunPublish.stage_publish`: Parquet: the worker writes every table, and the run's folder is made
   whole under ``runs/`` but not current (publish.finish_run); Delta: only the list of tables (a Delta write
   is a commit, so it waits for the second half).
2. :meth:`RunPublish.end_publish`, once the snapshot said whether the run changed anything: a run that did
   not (``same_as``) keeps the current set when it is whole, of today's publish config and of the run whose
   snapshot stands for it (publishcheck.py), and its staged folder is dropped; any other run is made current
   (Parquet: two renames and the retention, publish.make_current; Delta: one commit per table,
   publishdelta.publish_delta_run).

:meth:`RunPublish.publish` does both at once (a rollback that publishes the restored tables anew).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.pipeline.engine.publish import discard_stage, drop_run, finish_run, make_current
from foss_supervisor.pipeline.engine.publishcheck import current_set
from foss_supervisor.pipeline.engine.publishdelta import DELTA, publish_delta_run
from foss_supervisor.pipeline.engine.runsnapshots import RunSnapshots
from foss_supervisor.pipeline.engine.spec import PipelineSpec
from foss_supervisor.pipeline.engine.workerclient import WorkerClient

__all__ = ["RunPublish", "StagedPublish"]

log = structlog.get_logger("foss_supervisor.pipeline")


@dataclasses.dataclass(frozen=True, slots=True)
class StagedPublish:
    """A run's publish between its two halves: what it publishes (``[{table, partition_by}]``) and whether
    its tables are written (Parquet: ``runs/<run_id>`` is whole, not current; Delta: never before the end)."""

    spec: PipelineSpec
    run_id: str
    listing: list[dict[str, Any]]
    written: bool


class RunPublish(RunSnapshots):
    """The two halves of a run's publish (module docstring); the runner sets the attributes below."""

    client: WorkerClient
    publish_dir: Path
    _clock: Callable[[], float]

    async def publish(self, pipeline: str, run_id: str) -> dict[str, Any]:
        """Publish every table ``pipeline`` publishes as run ``run_id`` (layout: publish.py, or publishdelta.py
        with ``publish_format: delta``): the worker writes them from one snapshot, then the run becomes
        current for all tables at once. Returns the manifest. Raises PipelineError, OSError; when it raises or
        is cancelled, what it wrote is undone and the previous published set stays current and whole."""
        staged = await self.stage_publish(pipeline, run_id)
        try:
            return await self.commit_publish(staged)
        except BaseException:
            await asyncio.to_thread(self.drop_publish, staged)
            raise

    async def _listing(self, spec: PipelineSpec) -> list[dict[str, Any]]:
        """``[{table, partition_by}]``: each table ``spec`` publishes, as the warehouse holds them now."""
        schemas = sorted(p for p in spec.publish if "." not in p)
        in_list = ", ".join(f"'{s}'" for s in schemas or ["-"])  # plain identifiers, checked by the loader
        listed = await self.client.query(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables()"  # noqa: S608
            f" WHERE NOT temporary AND schema_name IN ({in_list}) ORDER BY 1",
            max_rows=10_000,
        )
        tables = sorted({*(r[0] for r in listed.rows), *(p for p in spec.publish if "." in p)})
        partitions = dict(spec.publish_partition_by)
        return [{"table": t, "partition_by": list(partitions.get(t, ()))} for t in tables]

    async def stage_publish(self, pipeline: str, run_id: str) -> StagedPublish:
        """The first half (module docstring). Raises PipelineError, OSError; when it raises or is cancelled,
        nothing of it is left on disk."""
        spec = self._spec(pipeline)
        listing = await self._listing(spec)
        if spec.publish_format == DELTA:
            return StagedPublish(spec, run_id, listing, written=False)
        folder = self.publish_dir / pipeline
        discard_stage(folder, run_id)
        try:
            written = await self.client.publish_run(pipeline, run_id, listing)
            finish_run(folder, pipeline, run_id, self._clock(), written)
        except BaseException:
            discard_stage(folder, run_id)
            raise
        return StagedPublish(spec, run_id, listing, written=True)

    async def commit_publish(self, staged: StagedPublish) -> dict[str, Any]:
        """Make ``staged`` the current published set; returns its manifest. Raises PipelineError, OSError (then
        the previous set is still current; a Delta publish undid its commits unless its worker died)."""
        spec, folder = staged.spec, self.publish_dir / staged.spec.name
        if spec.publish_format == DELTA:  # one Delta commit per table (publishdelta.py)
            return await publish_delta_run(
                self.client, folder, spec.name, staged.run_id, staged.listing, clock=self._clock, keep=spec.publish_keep
            )
        return make_current(folder, staged.run_id, keep=spec.publish_keep)

    def drop_publish(self, staged: StagedPublish) -> None:
        """Remove what ``staged`` wrote and never made current (nothing for Delta). Blocking file work."""
        if staged.written:
            drop_run(self.publish_dir / staged.spec.name, staged.run_id)

    async def end_publish(self, staged: StagedPublish, same_as: str | None) -> str | None:
        """The second half (module docstring), for a run whose snapshot ``same_as`` stands for it (None: it
        changed something, or its snapshot failed). Returns what the run's note should say of its published
        set when that is news (kept as it is, or published anew although nothing changed), else None.
        Raises PipelineError, OSError (the previous set is still current)."""
        note = None
        if same_as is not None:
            folder = self.publish_dir / staged.spec.name
            fmt = staged.spec.publish_format
            holder, problem = await asyncio.to_thread(current_set, folder, fmt, staged.listing)
            if problem is None and holder is not None and self._snapshot_of(holder) != same_as:
                problem = f"it holds the tables of run {holder}"
            if problem is None:
                await asyncio.to_thread(self.drop_publish, staged)
                log.info("pipeline_publish_kept", pipeline=staged.spec.name, run_id=staged.run_id, holder=holder)
                return f"the published set of run {holder} is kept as it is"
            note = f"its tables were published anew, as the published set {problem}"
        try:
            published = await self.commit_publish(staged)
        except BaseException:
            await asyncio.to_thread(self.drop_publish, staged)
            raise
        log.info(
            "pipeline_published", pipeline=staged.spec.name, run_id=staged.run_id, tables=sorted(published["tables"])
        )
        return note
