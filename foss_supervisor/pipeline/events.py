"""Frozen event dataclasses the runner reports through its injected ``on_event`` callback.

The core forwards them to its bus; nothing here imports the core, so the dependency points one way.
Every event carries plain values (str, int, float, tuples) so observers can serialise it as-is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from foss_supervisor.pipeline.states import RunMode, RunStatus, StepState

__all__ = [
    "EventCallback",
    "PipelineEvent",
    "RunFinished",
    "RunStarted",
    "StepLog",
    "StepStateChanged",
    "WorkerExited",
    "WorkerStarted",
    "event_to_dict",
]


@dataclasses.dataclass(frozen=True, slots=True)
class PipelineEvent:
    """Base of every pipeline event; ``at`` is wall-clock seconds since the epoch."""

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
    """One step moved along one edge of the state table; ``index``/``total`` give progress."""

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


@dataclasses.dataclass(frozen=True, slots=True)
class StepLog(PipelineEvent):
    """A log line a step emitted inside the worker."""

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


def event_to_dict(event: PipelineEvent) -> dict[str, Any]:
    """Plain-JSON form of an event (enums become their values) with its type name under ``event``."""
    out: dict[str, Any] = {"event": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, RunMode | RunStatus | StepState):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
