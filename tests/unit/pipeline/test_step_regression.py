"""The step regression flag (:mod:`foss_supervisor.pipeline.engine.regression`): one pure judgment, over run records,
as a bus observer, and as the hook payload it becomes."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from foss_supervisor.alerting.hooks import event_payload
from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.core.events import EventBus
from foss_supervisor.pipeline.engine.history import RunRecord, StepRecord
from foss_supervisor.pipeline.engine.regression import (
    BASELINE_RUNS,
    REGRESSION_FACTOR,
    StepRegressionWatch,
    judge,
    step_trends,
)
from foss_supervisor.pipeline.events import StepRegressed, StepStateChanged

#: what a duration may be in a record read back from disk or sent by a hostile worker
ANYTHING = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**9), 10**9),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.lists(st.floats(), max_size=2),
)
SECONDS = st.floats(0, 1e6, allow_nan=False)


def usable(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and v >= 0


def median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


@given(ANYTHING, st.lists(ANYTHING, max_size=40))
def test_judge_takes_anything_and_flags_only_past_the_factor_of_ten_previous(
    duration: Any, previous: list[Any]
) -> None:
    trend = judge(duration, previous)
    baseline = [float(p) for p in previous if usable(p)][-BASELINE_RUNS:]
    assert trend.previous == len(baseline)
    assert trend.duration_s == (float(duration) if usable(duration) else None)
    if len(baseline) < BASELINE_RUNS:
        assert not trend.regressed and trend.ratio is None and trend.median_s is None
        return
    m = median(baseline)
    assert trend.median_s == m
    if not usable(duration) or m == 0:
        assert not trend.regressed and trend.ratio is None
        return
    assert trend.regressed == (float(duration) / m > REGRESSION_FACTOR)
    assert trend.ratio is not None and math.isclose(trend.ratio, float(duration) / m, rel_tol=1e-5)


@given(SECONDS, st.lists(SECONDS, min_size=BASELINE_RUNS, max_size=30), st.lists(ANYTHING, max_size=10))
def test_only_the_last_ten_usable_runs_count(duration: float, recent: list[float], older: list[Any]) -> None:
    assert judge(duration, older + recent) == judge(duration, recent)


@given(st.lists(SECONDS, max_size=BASELINE_RUNS - 1), SECONDS)
def test_fewer_than_ten_previous_runs_never_flag(previous: list[float], duration: float) -> None:
    assert not judge(duration * 1e6 + 1, previous).regressed


def test_the_edges_of_the_factor() -> None:
    ten = [2.0] * BASELINE_RUNS
    assert judge(3.0, ten).ratio == 1.5 and not judge(3.0, ten).regressed  # more than 1.5x, not 1.5x itself
    assert judge(3.01, ten).regressed
    assert not judge(5.0, [0.0] * BASELINE_RUNS).regressed  # a median of 0 s: no ratio to take
    assert not judge(math.nan, ten).regressed and not judge(-1.0, ten).regressed


def run(n: int, state: StepState, seconds: float | None, step: str = "aggregate") -> RunRecord:
    steps = (StepRecord("ingest", StepState.SUCCEEDED, duration_s=1.0), StepRecord(step, state, duration_s=seconds))
    return RunRecord(f"r{n:03d}", "orders", RunMode.RUN, "manual", RunStatus.SUCCEEDED, float(n), steps, float(n) + 1)


def test_trends_judge_each_steps_latest_successful_run_and_skip_failed_ones() -> None:
    history = [run(i, StepState.SUCCEEDED, 10.0) for i in range(10)]
    history += [run(10, StepState.FAILED, 99.0), run(11, StepState.SUCCEEDED_WITH_WARNINGS, 20.0)]
    newest_first = history[::-1]
    trends = step_trends(newest_first, ["ingest", "aggregate", "never_ran"])
    assert trends["aggregate"] == {
        "duration_s": 20.0,
        "median_s": 10.0,
        "ratio": 2.0,
        "previous": 10,
        "regressed": True,
    }
    assert trends["ingest"]["regressed"] is False and trends["ingest"]["previous"] == 10
    assert "never_ran" not in trends
    assert step_trends(newest_first[2:], ["aggregate"])["aggregate"]["regressed"] is False  # 9 before it only


async def test_a_step_that_succeeds_slowly_is_published_after_and_heard_by_hooks() -> None:
    bus = EventBus()
    history = [run(i, StepState.SUCCEEDED, 4.0) for i in range(12)][::-1]
    heard: list[object] = []
    bus.on(StepRegressionWatch(lambda name, limit: history[:limit], bus.publish))
    bus.on(heard.append)
    common = {"run_id": "r999", "pipeline": "orders", "step": "aggregate", "old": StepState.RUNNING}
    more = {"index": 2, "total": 2, "attempt": 1}
    bus.publish(StepStateChanged(5.0, new=StepState.SUCCEEDED, duration_s=6.0, **common, **more))  # 1.5x: not more
    bus.publish(StepStateChanged(6.0, new=StepState.FAILED, duration_s=60.0, **common, **more))  # failed: not judged
    bus.publish(StepStateChanged(7.0, new=StepState.SUCCEEDED, duration_s=6.5, **common, **more))
    await asyncio.sleep(0)  # one turn of the loop: the judgment is published just after the event it judges
    regressed = [e for e in heard if isinstance(e, StepRegressed)]
    assert len(regressed) == 1 and (regressed[0].ratio, regressed[0].median_s, regressed[0].previous) == (
        1.625,
        4.0,
        10,
    )
    assert heard.index(regressed[0]) == 3  # just after the StepStateChanged that told it
    payload = event_payload(regressed[0])
    assert payload == {
        "kind": "step_regressed",
        "pipeline": "orders",
        "run_id": "r999",
        "step": "aggregate",
        "duration_s": 6.5,
        "median_s": 4.0,
        "ratio": 1.625,
        "previous": 10,
    }
