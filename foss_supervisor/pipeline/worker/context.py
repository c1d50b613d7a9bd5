"""What a Python step receives inside the worker, and what it must return.

A Python step is ``def step(ctx: StepContext) -> Mapping[str, int | float]``. It works through
``ctx.cursor``, which is already inside the step's transaction: it must not COMMIT or ROLLBACK itself,
so a failure, a timeout or a SIGKILL of the worker leaves every table as it was before the step. The
cursor checks every statement against the pipeline's sandbox (its schemas, its inputs, no file writes:
see sandbox.py), like the statements of a SQL step.
The returned metrics must include ``rows_in`` and ``rows_out``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from foss_supervisor.pipeline.engine.partition import PartitionSpec
from foss_supervisor.pipeline.engine.spec import Folders

__all__ = ["StepContext", "StepFunction"]


@dataclasses.dataclass(slots=True)
class StepContext:
    """Inputs of one step attempt; ``run`` holds what the runner knows of the run so far."""

    cursor: Any
    run_id: str
    pipeline: str
    step: str
    mode: str
    folders: Folders
    params: Mapping[str, Any]
    run: Mapping[str, Any]
    emit_log: Callable[[str, str], None]
    warnings: list[str] = dataclasses.field(default_factory=list)
    #: schema of this pipeline's file ledger (``<ledger>.files``, ``<ledger>.file_seen``; see ledger.py)
    ledger: str = "meta"
    #: the landing file patterns the pipeline declares
    patterns: Sequence[str] = ()
    #: the schemas the pipeline owns
    schemas: Sequence[str] = ()
    #: the partition this run is for (a backfill's run, see engine/partition.py); None: the whole pipeline
    partition: str | None = None
    #: how the pipeline's landing file names map to partitions; None when it declares no ``partition:``
    partition_key: PartitionSpec | None = None

    def log(self, message: str, level: str = "info") -> None:
        """Send a log line to the runner, which turns it into a StepLog event."""
        self.emit_log(level, message)

    def warn(self, message: str) -> None:
        """Record a warning: the step ends succeeded_with_warnings instead of succeeded."""
        self.warnings.append(message)
        self.emit_log("warning", message)


StepFunction = Callable[[StepContext], Mapping[str, int | float]]
