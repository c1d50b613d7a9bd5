"""The bookkeeping of one run in progress, and the requests the runner sends the worker for it.

:class:`ActiveRun` is mutable while the run goes (its snapshots are RunRecords); the payload builders
turn a pipeline spec and a step into the JSON the worker's ``run_step`` takes (see worker/server.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from foss_supervisor.base.jsonable import dataclass_to_json
from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.pipeline.engine.history import RunRecord, StepRecord
from foss_supervisor.pipeline.engine.retry import RetryPlan
from foss_supervisor.pipeline.engine.spec import PipelineSpec, StepKind, StepSpec
from foss_supervisor.pipeline.engine.workerclient import StepAttemptError
from foss_supervisor.pipeline.errors import WorkerCrashedError
from foss_supervisor.pipeline.worker.hold import INGEST_CALLABLE

__all__ = ["ActiveRun", "access_payload", "folders_payload", "is_transient", "step_payload"]


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the worker died under us, or DuckDB reported a transient fault."""
    if isinstance(exc, WorkerCrashedError):
        return True
    return isinstance(exc, StepAttemptError) and exc.kind == "transient"


class ActiveRun:
    """Mutable bookkeeping of one in-progress run; snapshots are RunRecords."""

    def __init__(
        self,
        run_id: str,
        spec: PipelineSpec,
        mode: RunMode,
        trigger: str,
        started_at: float,
        retry: RetryPlan | None = None,
        partition: str | None = None,
    ) -> None:
        self.partition = partition
        self.run_id = run_id
        self.retry = retry
        self.spec = spec
        self.mode = mode
        self.trigger = trigger
        self.started_at = started_at
        self.steps: dict[str, StepRecord] = {s.name: StepRecord(name=s.name) for s in spec.steps}
        self.status = RunStatus.RUNNING
        self.error: str | None = None
        self.note: str | None = None  # what the record says besides an error (runsnapshots.keep_snapshot)
        self.held: tuple[str, ...] = ()  # the landing files it held (holding.py)
        self.held_rows: int | None = None  # the bronze rows its hold took out (holding.py)
        self.held_own = 0  # of them, those its own ingest took in (not in ``ingested``)
        self.same_as: str | None = None  # the run whose snapshot stands for this one (runsnapshots.keep_snapshot)
        self.finishing = False  # its steps committed and its snapshot is being kept: too late to cancel
        self.finished_at: float | None = None
        self.task: asyncio.Task[Any] | None = None

    def snapshot(self) -> RunRecord:
        return RunRecord(
            run_id=self.run_id,
            pipeline=self.spec.name,
            mode=self.mode,
            trigger=self.trigger,
            status=self.status,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            note=self.note,
            same_as=self.same_as,
            held=self.held,
            held_rows=self.held_rows,
            retry_of=self.retry.source.run_id if self.retry else None,
            partition=self.partition,
            steps=tuple(self.steps[s.name] for s in self.spec.steps),
            ingested=self.ingested(),
        )

    def ingested(self) -> int | None:
        """Lines its shipped ``ingest`` steps took in so far in this run (their ``rows_out``, summed) that stayed in
        bronze (less those its hold took out again, ``held_own``); None when none of them ran in it (none declared,
        not reached, failed, or reused by a retry: state skipped)."""
        ran = (StepState.SUCCEEDED, StepState.SUCCEEDED_WITH_WARNINGS)
        counts = [
            r.rows_out
            for s in self.spec.steps
            if s.callable == INGEST_CALLABLE and (r := self.steps[s.name]).state in ran and r.rows_out is not None
        ]
        return max(0, sum(counts) - self.held_own) if counts else None


def access_payload(spec: PipelineSpec) -> dict[str, Any]:
    """Which schemas the step may write and read, its ledger, landing patterns and partition key."""
    return {
        "owned": sorted(spec.schemas),
        "inputs": sorted(spec.inputs),
        "ledger": spec.ledger,
        "patterns": list(spec.patterns),
        "partition_key": spec.partition.to_json() if spec.partition is not None else None,
    }


def folders_payload(spec: PipelineSpec) -> dict[str, str]:
    """The pipeline's folders as strings."""
    f = spec.folders
    return {
        "landing": str(f.landing),
        "reference": str(f.reference),
        "warehouse": str(f.warehouse),
        "reports": str(f.reports),
    }


def step_payload(run: ActiveRun, step: StepSpec) -> dict[str, Any]:
    """The ``run_step`` request for ``step`` of ``run``: its SQL or callable, the run so far, and the metrics
    of the steps that succeeded (row-accounting checks read them)."""
    prior = {name: r.metrics for name, r in run.steps.items() if r.state.ok and r.metrics}
    return {
        "pipeline": run.spec.name,
        "run_id": run.run_id,
        "mode": run.mode.value,
        "partition": run.partition,
        "folders": folders_payload(run.spec),
        "access": access_payload(run.spec),
        "checks": [c.text for c in run.spec.checks],
        "checks_at": [run.spec.at(f"checks[{i}]") for i in range(len(run.spec.checks))],  # their YAML lines
        "prior_metrics": prior,
        "run": {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started_at)),
            "steps": [r.to_dict() for r in run.steps.values() if r.state.terminal],
        },
        "step": {
            "name": step.name,
            "kind": "python" if step.kind is StepKind.PYTHON else "sql",  # quality steps are compiled SQL
            "sql": step.sql if step.kind is not StepKind.PYTHON else None,
            "callable": step.callable,
            "source": run.spec.source(step),  # where its errors point: its SQL file, the YAML's line
            "params": dict(step.params),
            "thresholds": [dataclass_to_json(t) for t in step.thresholds],
        },
    }
