"""Run records and their persistence as a JSON-lines file, so run history survives restarts.

Why a file in the daemon and not a DuckDB table: history must stay readable while the worker is down,
being restarted or busy with a long step. A run is appended when it starts and again when it ends; on
load the last line per run wins, and a run that only has its start line was in progress when the
supervisor stopped, so it is reported as abandoned: finished (``finished_at``) when this history found it so
(when it ended is not known, so its ``duration_s`` is None), so that it is a finished run like a failed one for
the last-run card, ``pipeline status``, ``/health`` and the ``pipeline_failed`` alert.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.base.jsonable import dataclass_to_json
from foss_supervisor.base.pipelinestates import RUN_SUCCEEDED, RunMode, RunStatus, StepState
from foss_supervisor.base.writefailures import WriteFailures

__all__ = ["ABANDONED_ERROR", "RUN_REASONS", "RunHistory", "RunRecord", "StepRecord", "metric_count", "run_reason"]

#: the error of a run found only started (in progress when the supervisor stopped); recovery.py adds what committed
ABANDONED_ERROR = "the supervisor stopped while this run was in progress"
#: why a run started, as the history, the pages and ``runs --json`` say it (``reason``)
RUN_REASONS = ("manual", "schedule", "files_landed", "config_changed", "after", "rollback", "backfill")


def metric_count(value: Any) -> int | None:
    """A step's ``rows_in``/``rows_out`` from its metrics: the number as an int, None when it is not a finite one
    (a ledger row's JSON may say ``Infinity``)."""
    return int(value) if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)) else None


def run_reason(trigger: str) -> str:
    """The reason (one of RUN_REASONS) of a run started by ``trigger``: ``interval`` and ``cron`` are a
    ``schedule``, ``after:orders`` is ``after``; a trigger of an older history that is none of them is kept."""
    if trigger in ("interval", "cron"):
        return "schedule"
    if trigger.startswith("after:"):
        return "after"
    return trigger


@dataclasses.dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of one run as last seen."""

    name: str
    state: StepState = StepState.PENDING
    attempts: int = 0
    rows_in: int | None = None
    rows_out: int | None = None
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    warnings: tuple[str, ...] = ()
    error: str | None = None
    started_at: float | None = None
    duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return dataclass_to_json(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StepRecord:
        """Inverse of to_dict."""
        return cls(
            name=str(d["name"]),
            state=StepState(d.get("state", "pending")),
            attempts=int(d.get("attempts", 0)),
            rows_in=d.get("rows_in"),
            rows_out=d.get("rows_out"),
            metrics=dict(d.get("metrics") or {}),
            warnings=tuple(d.get("warnings") or ()),
            error=d.get("error"),
            started_at=d.get("started_at"),
            duration_s=d.get("duration_s"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of one pipeline; ``steps`` are in execution order."""

    run_id: str
    pipeline: str
    mode: RunMode
    trigger: str
    status: RunStatus
    started_at: float
    steps: tuple[StepRecord, ...]
    finished_at: float | None = None
    error: str | None = None
    note: str | None = None  # what else to know: why a run was skipped, the run a rollback restored, ...
    retry_of: str | None = None  # the run this one retries (see retry.py)
    partition: str | None = None  # the partition a backfill ran (partition.py); None: the whole pipeline
    same_as: str | None = None  # the run whose snapshot stands for this one, which changed no table (runsnapshots.py)
    held: tuple[str, ...] = ()  # the landing files (paths) it held below an error threshold (worker/hold.py)
    #: lines (Parquet: rows) its shipped ``ingest`` steps took in from landing files in this run and that stayed in
    #: bronze (the sum of their ``rows_out`` less the rows of them it held; a step a retry reused counts none);
    #: None when it ran none (ActiveRun.ingested)
    ingested: int | None = None
    #: the bronze rows its hold took out (of the files in ``held``; also rows an earlier run ingested that had not
    #: been checked); None when it held nothing (worker/hold.py)
    held_rows: int | None = None

    @property
    def duration_s(self) -> float | None:
        """Wall time of the run, once finished; None for an abandoned run (its end is not known: ``finished_at``
        is when the next daemon found it)."""
        if self.finished_at is None or self.status is RunStatus.ABANDONED:
            return None
        return round(self.finished_at - self.started_at, 6)

    def step(self, name: str) -> StepRecord:
        """The record of step ``name``; KeyError if the run has no such step."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def reason(self) -> str:
        """Why the run started, one of RUN_REASONS (see run_reason); ``trigger`` says which one exactly."""
        return run_reason(self.trigger)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (also what the API and ``--json`` print): the fields, ``duration_s`` and ``reason``."""
        return dataclass_to_json(self) | {"duration_s": self.duration_s, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunRecord:
        """Inverse of to_dict."""
        return cls(
            run_id=str(d["run_id"]),
            pipeline=str(d["pipeline"]),
            mode=RunMode(d.get("mode", "run")),
            trigger=str(d.get("trigger", "")),
            status=RunStatus(d["status"]),
            started_at=float(d["started_at"]),
            finished_at=d.get("finished_at"),
            error=d.get("error"),
            note=d.get("note"),
            retry_of=d.get("retry_of"),
            partition=d.get("partition") if isinstance(d.get("partition"), str) else None,
            same_as=d.get("same_as") if isinstance(d.get("same_as"), str) else None,
            held=tuple(str(p) for p in d.get("held") or ()),
            ingested=_ingested(d),
            held_rows=metric_count(d.get("held_rows")),
            steps=tuple(StepRecord.from_dict(s) for s in d.get("steps", [])),
        )


def _ingested(d: Mapping[str, Any]) -> int | None:
    """A record's ``ingested``; for a record written before it was kept: the ``rows_out`` of its step named
    ``ingest`` when that step succeeded (what the dashboard's rows chart read then)."""
    if "ingested" in d:
        return metric_count(d["ingested"])
    step = next((s for s in d.get("steps") or () if s.get("name") == "ingest"), None)
    good = RUN_SUCCEEDED
    return metric_count(step.get("rows_out")) if step is not None and step.get("state") in good else None


class RunHistory:
    """Append-only JSON-lines store with an in-memory index (newest last).

    A line the disk refuses (full, read-only) is counted in ``write_failures`` (shown in ``status``),
    kept (the newest ``keep`` at most) and appended before the next record, so no run goes missing
    from the file once the disk takes writes again; the in-memory index has it all along.
    """

    def __init__(self, path: Path, *, keep: int = 1000, write_failures: WriteFailures | None = None) -> None:
        self.path = path
        self._keep = keep
        self._runs: dict[str, RunRecord] = {}
        self._unwritten: list[str] = []
        self.write_failures = write_failures or WriteFailures()
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as f:
            for line in f:
                try:
                    rec = RunRecord.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash is skipped, not fatal
                self._runs.pop(rec.run_id, None)
                self._runs[rec.run_id] = rec
        found = time.time()
        for run_id, rec in list(self._runs.items()):
            if rec.status is RunStatus.RUNNING:
                self._runs[run_id] = dataclasses.replace(
                    rec,
                    status=RunStatus.ABANDONED,
                    error=ABANDONED_ERROR,
                    finished_at=max(found, rec.started_at),
                )
        self._trim()

    def _trim(self) -> None:
        while len(self._runs) > self._keep:
            del self._runs[next(iter(self._runs))]

    def append(self, record: RunRecord) -> None:
        """Persist a record (fsync'd: a finished run must not vanish in a power cut) and index it.

        Never raises for the disk: a failed write is counted and retried with the next record.
        """
        line = json.dumps(record.to_dict(), separators=(",", ":")) + "\n"
        self._unwritten = [*self._unwritten, line][-self._keep :]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append_whole("".join(self._unwritten).encode())
        except OSError as exc:
            self.write_failures.failed(self.path, "state", exc)
        else:
            self._unwritten = []
            self.write_failures.succeeded(self.path)
        self._runs.pop(record.run_id, None)
        self._runs[record.run_id] = record
        self._trim()

    def _append_whole(self, data: bytes) -> None:
        """Append ``data`` and fsync; on failure cut the file back, so no torn line sits before the retry."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)

    def forget(self, pipeline: str) -> int:
        """Drop every run of ``pipeline`` (file rewritten atomically); returns how many were dropped."""
        gone = [run_id for run_id, rec in self._runs.items() if rec.pipeline == pipeline]
        for run_id in gone:
            del self._runs[run_id]
        if self.path.exists():
            text = "".join(json.dumps(r.to_dict(), separators=(",", ":")) + "\n" for r in self._runs.values())
            atomic_write(self.path, text, mode=0o600)
        return len(gone)

    def get(self, run_id: str) -> RunRecord | None:
        """A run by id."""
        return self._runs.get(run_id)

    def list(self, pipeline: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Newest first, optionally for one pipeline; stops after ``limit`` (probes ask often, for few)."""
        newest = (r for r in reversed(self._runs.values()) if pipeline is None or r.pipeline == pipeline)
        return list(itertools.islice(newest, max(0, limit)))
