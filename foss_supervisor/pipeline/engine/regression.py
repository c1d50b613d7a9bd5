"""A step's regression: did its run take more than 1.5x the median of its previous ten successful runs?

One pure function, :func:`judge`, decides; :func:`step_trends` applies it to a pipeline's run records (the
latest successful run of each step against the ten before it), and :class:`StepRegressionWatch` to each step
as it succeeds, publishing :class:`~foss_supervisor.pipeline.events.StepRegressed` (which the event log
numbers, the journal keeps, SSE and ``events -f`` carry, and hooks of kind ``step_regressed`` hear). The
``pipelines`` command's ``step_trends`` and the ``/metrics`` gauges ``foss_supervisor_pipeline_step_regressed``
and ``foss_supervisor_pipeline_step_slowdown_ratio`` read :func:`step_trends`.

Rules: only successful runs of the step count (``succeeded``, ``succeeded_with_warnings``); a duration that
is missing, not a finite number, or negative is left out; with fewer than :data:`BASELINE_RUNS` previous
durations, or a median of 0 s (no ratio to take), nothing is flagged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from foss_supervisor.base.jsonable import dataclass_to_json
from foss_supervisor.base.pipelinestates import StepState
from foss_supervisor.pipeline.engine.history import RunRecord
from foss_supervisor.pipeline.events import StepRegressed, StepStateChanged

__all__ = [
    "BASELINE_RUNS",
    "REGRESSION_FACTOR",
    "TREND_RUNS",
    "StepRegressionWatch",
    "StepTrend",
    "judge",
    "step_trends",
]

BASELINE_RUNS = 10  # previous successful runs of the step the median is taken of (and at least this many)
REGRESSION_FACTOR = 1.5  # flagged when a run took more than this times that median
TREND_RUNS = BASELINE_RUNS + 1 + 19  # runs read for a step's trend (the latest, ten before, room for failures)
_GOOD = (StepState.SUCCEEDED, StepState.SUCCEEDED_WITH_WARNINGS)


@dataclasses.dataclass(frozen=True, slots=True)
class StepTrend:
    """A run of a step against its baseline: ``duration_s`` (s, None when not a usable duration),
    ``median_s`` (s, of the last :data:`BASELINE_RUNS` previous durations; None with fewer), ``ratio``
    (duration over median; None without both, or a median of 0), ``previous`` (usable previous durations,
    at most :data:`BASELINE_RUNS`), ``regressed`` (ratio > :data:`REGRESSION_FACTOR`)."""

    duration_s: float | None
    median_s: float | None
    ratio: float | None
    previous: int
    regressed: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return dataclass_to_json(self)


def _usable(value: object) -> float | None:
    """A duration as a float when it is a finite, non-negative number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def judge(duration_s: object, previous: Iterable[object]) -> StepTrend:
    """Judge one run's ``duration_s`` against ``previous`` durations of the same step (oldest first, those of
    successful runs only; anything unusable in it is left out, then the last :data:`BASELINE_RUNS` count)."""
    baseline = [d for d in (_usable(p) for p in previous) if d is not None][-BASELINE_RUNS:]
    duration = _usable(duration_s)
    if len(baseline) < BASELINE_RUNS:
        return StepTrend(duration, None, None, len(baseline), False)
    median = statistics.median(baseline)
    if duration is None or median <= 0:
        return StepTrend(duration, median, None, len(baseline), False)
    ratio = duration / median
    return StepTrend(duration, median, round(ratio, 6), len(baseline), ratio > REGRESSION_FACTOR)


def _durations(runs: Sequence[RunRecord], step: str, skip_run: str | None = None) -> list[float | None]:
    """The step's durations in the successful runs of ``runs`` (newest first), oldest first."""
    out = []
    for run in reversed(runs):
        if run.run_id == skip_run:
            continue
        record = next((s for s in run.steps if s.name == step), None)
        if record is not None and record.state in _GOOD:
            out.append(record.duration_s)
    return out


def step_trends(runs: Sequence[RunRecord], steps: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{step: StepTrend.to_dict()}``: each step's latest successful run against the ones before it, from
    ``runs`` (one pipeline's, newest first: :data:`TREND_RUNS` of them are enough); steps without a
    successful run are left out."""
    out = {}
    for step in steps:
        durations = _durations(runs, step)
        if durations:
            out[step] = judge(durations[-1], durations[:-1]).to_dict()
    return out


class StepRegressionWatch:
    """A bus observer: when a step succeeds, judge it against its previous successful runs (``runs(pipeline,
    limit)``: run records, newest first) and publish :class:`StepRegressed` when it regressed (after the
    event that told it, so every reader sees them in that order)."""

    def __init__(self, runs: Callable[[str, int], Sequence[RunRecord]], publish: Callable[[Any], None]) -> None:
        self._runs = runs
        self._publish = publish

    def __call__(self, event: object) -> None:
        if not isinstance(event, StepStateChanged) or event.new not in _GOOD:
            return
        previous = _durations(self._runs(event.pipeline, TREND_RUNS), event.step, skip_run=event.run_id)
        trend = judge(event.duration_s, previous)
        if not trend.regressed or trend.ratio is None or trend.median_s is None or trend.duration_s is None:
            return
        regressed = StepRegressed(
            event.at,
            run_id=event.run_id,
            pipeline=event.pipeline,
            step=event.step,
            duration_s=trend.duration_s,
            median_s=trend.median_s,
            ratio=trend.ratio,
            previous=trend.previous,
        )
        try:
            asyncio.get_running_loop().call_soon(self._publish, regressed)
        except RuntimeError:  # no loop (a synchronous caller): at once
            self._publish(regressed)
