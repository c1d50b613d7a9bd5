"""The daemon's objectives and alerts: what the evaluator reads of the pipelines, and the watch's set-up.

A table's writers are the pipelines that own its schema: a pipeline owns its ``schemas`` and only it writes
there (the worker's sandbox enforces it, see pipeline/engine/spec.py), so ``gold.daily_revenue`` is written by the
pipeline whose schemas hold ``gold``. A pipeline's last write is its last good run's end (succeeded, or
succeeded with warnings), read from the run history the service keeps in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from foss_supervisor.alerting.alertwatch import AlertWatch
from foss_supervisor.alerting.objectives import Objectives, RunningLedger
from foss_supervisor.base.filewriter import WRITER
from foss_supervisor.config import Config
from foss_supervisor.core.events import EventBus
from foss_supervisor.core.seams import Seams

if TYPE_CHECKING:
    from foss_supervisor.pipeline.engine.service import PipelineService

__all__ = ["PipelineSources", "make_watch"]

#: runs looked through for the last good one (the history keeps the last 1000 of all pipelines)
_RUNS_LOOKED_AT = 1000


class PipelineSources:
    """:class:`~foss_supervisor.alerting.objectives.ObjectiveSources` from the pipeline service (None: no pipelines)."""

    def __init__(self, service: Callable[[], PipelineService | None]) -> None:
        self._service = service

    def last_good_run(self, pipeline: str) -> float | None:
        service = self._service()
        if service is None or pipeline not in service.specs:
            return None
        from foss_supervisor.base.pipelinestates import RUN_SUCCEEDED  # with pipelines only: none without

        for run in service.runs(pipeline, _RUNS_LOOKED_AT):  # newest first, through the façade as commands do
            if run["finished_at"] is not None and run["status"] in RUN_SUCCEEDED:
                return float(run["finished_at"])
        return None

    def table_writers(self, table: str) -> Iterable[str]:
        service = self._service()
        schema = table.partition(".")[0]
        return [] if service is None else [n for n, spec in service.specs.items() if schema in spec.schemas]

    def last_runs(self) -> Mapping[str, Mapping[str, Any] | None]:
        """Each pipeline's last finished run that did work (``{"run_id", "status", "error"}``), or None; for a
        partitioned pipeline with partitions whose last run failed, the newest of those runs, its error naming
        the partitions (so the ``pipeline_failed`` rule holds until each is run again and succeeds)."""
        service = self._service()
        if service is None:
            return {}
        out: dict[str, Mapping[str, Any] | None] = {}
        for name in service.specs:
            last = next(
                (r for r in service.runs(name, 5) if r["finished_at"] is not None and r["status"] != "skipped"), None
            )
            if failed := service.failed_partitions(name):  # a backfill's last day may succeed after failed ones
                days = ", ".join(str(r.partition) for r in failed[:5]) + (", ..." if len(failed) > 5 else "")
                newest = max(failed, key=lambda r: r.started_at)
                last = {
                    "run_id": newest.run_id,
                    "status": newest.status.value,
                    "error": f"{len(failed)} partition(s) whose last run failed: {days}; {newest.error or ''}".strip(),
                }
            out[name] = last
        return out


def make_watch(
    config: Callable[[], Config],
    bus: EventBus,
    pipelines: Callable[[], PipelineService | None],
    seams: Seams,
    with_state: bool = True,
) -> AlertWatch:
    """The daemon's :class:`AlertWatch` on the supervisor's clock and sleep (``seams``), hearing ``bus``;
    its book in the state dir (``with_state``)."""
    sources = PipelineSources(pipelines)

    def stable_s(name: str) -> float:
        prog = config().programs.get(name)
        return 10.0 if prog is None else prog.backoff.reset_after_s

    ledger = RunningLedger(seams.wall_clock, stable_s=stable_s)
    objectives = Objectives(config, seams.wall_clock, ledger, sources)
    watch = AlertWatch(
        config,
        objectives,
        bus,
        seams.wall_clock,
        seams.sleep,
        last_runs=sources.last_runs,
        state_dir=config().state_dir if with_state else None,
        writer=WRITER,  # alerts.json by the file-writer thread: the loop never waits on the disk
    )
    bus.on(watch.observe)
    return watch
