"""The pipeline's events: frozen dataclasses the runner reports through its injected ``on_event`` callback.

They derive from the one event base (:class:`foss_supervisor.core.events.Event`), so they are registered with
the core's and carry a ``type``; the core forwards them to its bus. ``at`` is required here: the runner stamps
each with its injected clock (virtual time in tests). Every event carries plain values (str, int, float,
tuples) so observers can serialise it as-is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.core.events import Event

__all__ = [
    "EventCallback",
    "PipelineEvent",
    "RunFinished",
    "RunStarted",
    "StepLog",
    "StepRegressed",
    "StepStateChanged",
    "WorkerExited",
    "WorkerStarted",
]


@dataclasses.dataclass(frozen=True, slots=True)
class PipelineEvent(Event):
    """Base of every pipeline event; ``at`` (first, positional) is wall-clock seconds since the epoch."""

    base: ClassVar[bool] = True

    at: float


@dataclasses.dataclass(frozen=True, slots=True)
class RunStarted(PipelineEvent):
    """A run took the pipeline's lock and is about to run its first step."""

    run_id: str
    pipeline: str
    mode: RunMode
    trigger: str
    steps: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class StepStateChanged(PipelineEvent):
    """One step moved along one edge of the state table; ``index``/``total`` give progress.

    ``metrics``: the step's figures once it succeeded (its SQL's, and the worker's ``worker_cpu_s``,
    ``worker_peak_rss_bytes``, ``worker_read_bytes``, ``worker_write_bytes``), kept by the journal."""

    run_id: str
    pipeline: str
    step: str
    old: StepState
    new: StepState
    index: int
    total: int
    attempt: int
    rows_in: int | None = None
    rows_out: int | None = None
    duration_s: float | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class StepLog(PipelineEvent):
    """A log line a step emitted inside the worker."""

    listed: ClassVar[bool] = False  # it belongs in the log viewer, not the list of events
    moves: ClassVar[bool] = False  # it changes no command's reply

    run_id: str
    pipeline: str
    step: str
    level: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class RunFinished(PipelineEvent):
    """The run reached a final status; ``error`` says why when it did not succeed."""

    run_id: str
    pipeline: str
    status: RunStatus
    duration_s: float
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StepRegressed(PipelineEvent):
    """A step's successful run took over 1.5x the median (`median_s`) of its previous ten successful runs.

    ``duration_s`` and ``median_s`` in s, ``ratio`` their quotient, ``previous`` the runs the median is of
    (:mod:`foss_supervisor.pipeline.engine.regression`)."""

    run_id: str
    pipeline: str
    step: str
    duration_s: float
    median_s: float
    ratio: float
    previous: int


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerStarted(PipelineEvent):
    """A DuckDB worker is up; ``startup_s`` is spawn-to-ready, the cost every restart pays."""

    pid: int
    db_path: str
    startup_s: float
    restarts: int


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerExited(PipelineEvent):
    """The worker process ended; ``reason`` is stop, killed_timeout, killed_cancel or died."""

    pid: int
    returncode: int | None
    reason: str


#: the runner's observer: its PipelineEvents, and the worker's state changes (the core's StateChanged)
EventCallback = Callable[[Any], None]
