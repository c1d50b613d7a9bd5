"""Errors raised by the pipeline package, as one drawn tree so callers can catch at the right level.

The tree hangs under the package's root, :class:`foss_supervisor.errors.SupervisorError`, and a pipeline
config error is also a :class:`~foss_supervisor.errors.ConfigError`, so every config refusal (daemon or
pipeline) is caught, printed and given exit code 2 in one place::

    SupervisorError
    └── PipelineError
        ├── PipelineConfigError    (also a ConfigError) a pipeline YAML or SQL file is invalid: file:line, key
        ├── UnknownPipelineError   no pipeline of that name is loaded
        ├── PipelineBusyError      a run of that pipeline is already in progress (runs never overlap)
        ├── RetryRefusedError      a run cannot be retried (unknown, succeeded, not the latest, ...): says why
        ├── WorkerError            the DuckDB worker process misbehaved
        │   ├── WorkerCrashedError it died (SIGKILL, OOM, segfault) while a request was in flight
        │   └── WorkerProtocolError it answered something that is not the protocol
        ├── SnapshotError          a run's snapshot is gone (retention), incomplete, or cannot be restored
        └── QueryError             a read-only query could not be answered
            ├── QueryRefusedError  the statement is not allowed (writes, ATTACH, COPY, file reads, ...)
            ├── QueryTimeoutError  it ran past its time limit: interrupted, or the worker was restarted
            ├── QueryMemoryError   it needed more than the worker's memory limit
            └── QueryFailedError   DuckDB rejected it (syntax, unknown table, ...)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from foss_supervisor.errors import ConfigError, SupervisorError

T = TypeVar("T")

__all__ = [
    "PipelineBusyError",
    "PipelineConfigError",
    "PipelineError",
    "Problems",
    "QueryError",
    "QueryFailedError",
    "QueryMemoryError",
    "QueryRefusedError",
    "QueryTimeoutError",
    "RetryRefusedError",
    "SnapshotError",
    "UnknownPipelineError",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerProtocolError",
]


class PipelineError(SupervisorError):
    """Root of every error this package raises on purpose."""


class PipelineConfigError(PipelineError, ConfigError):
    """A pipeline declaration is invalid; the message names the file, the line, the key and the reason.

    Keys name steps by their name (``steps.aggregate.sql``), not by their position.
    """

    def __init__(self, file: str, key: str, reason: str, line: int | None = None) -> None:
        ConfigError.__init__(self, file, key, reason, line)


class UnknownPipelineError(PipelineError):
    """The caller named a pipeline that is not loaded."""


class PipelineBusyError(PipelineError):
    """A run of this pipeline is in progress; a second one would overlap it."""


class RetryRefusedError(PipelineError):
    """A retry of a run was refused; the message says why and what to do instead (see pipeline/engine/retry.py)."""


class SnapshotError(PipelineError):
    """A run's snapshot cannot be used: none was kept (retention, ``snapshot_keep: 0``), it is incomplete
    (no ``_SUCCESS``: its run was cancelled or killed while writing it), or restoring it failed."""


class WorkerError(PipelineError):
    """The DuckDB worker process could not serve a request."""


class WorkerCrashedError(WorkerError):
    """The worker died while a request was in flight (its transaction was lost, never half-applied)."""


class WorkerProtocolError(WorkerError):
    """The worker wrote something that is not a protocol message."""


class QueryError(PipelineError):
    """A read-only query was refused, timed out or failed."""


class QueryRefusedError(QueryError):
    """The query engine refused the statement before running it."""


class QueryTimeoutError(QueryError):
    """The query ran past its time limit and was interrupted."""


class QueryMemoryError(QueryError):
    """The query (or export) needed more memory than the worker's limit; the message names the limit."""


class QueryFailedError(QueryError):
    """DuckDB raised an error while planning or running the query."""


class Problems:
    """The mistakes found so far in one pipeline file, kept so that all are told at once (an author fixing a
    YAML one error per try needs as many tries as mistakes; engine/specparts.py, quality.py)."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def attempt(self, load: Callable[..., T], *args: Any) -> T | None:
        """``load(*args)``, or None with its error (each of a collected one) kept."""
        try:
            return load(*args)
        except PipelineConfigError as exc:
            self.errors.extend(exc.errors)
            return None

    def add(self, file: str, key: str, reason: str) -> None:
        """Keep one mistake at ``key``."""
        self.errors.append(PipelineConfigError(file, key, reason))

    def raise_any(self) -> None:
        """Raise every mistake kept, as one PipelineConfigError (nothing when none)."""
        if self.errors:
            raise PipelineConfigError.collected(list(self.errors))
