"""Quality thresholds (issue 18, failure 3): every wrong threshold is refused at load naming file, line and
key; a threshold is crossed exactly when the step's numbers are past it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import examples
from helpers.pipeline import QUALITY_RULES, quality_pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.thresholds import DEFAULT_THRESHOLD, crossed, failing_metric

KEY = "steps.check.thresholds[0]"


def load_with(tmp_path: Path, ws: dict[str, Path], thresholds: Any, rules: dict[str, Any] | None = None) -> Any:
    return load_pipeline(quality_pipeline(tmp_path, ws, rules or QUALITY_RULES, thresholds=thresholds))


#: every kind of wrong value a bound can be: out of range, non-finite, wrong type, empty, over-long
NOT_A_RATE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (0 <= x <= 1)),
    st.integers().filter(lambda x: x not in (0, 1)),
    st.text(max_size=300),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
NOT_A_COUNT = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=10**15 + 1),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (math.isfinite(x) and x.is_integer())),
    st.text(max_size=300),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bound=st.sampled_from(["min_pass_rate", "max_rejected"]),
    data=st.data(),
    severity=st.sampled_from(["warn", "error"]),
)
def test_every_wrong_bound_names_file_line_and_key(
    tmp_path: Path, workspace: dict[str, Path], bound: str, data: st.DataObject, severity: str
) -> None:
    value = data.draw(NOT_A_RATE if bound == "min_pass_rate" else NOT_A_COUNT)
    with pytest.raises(PipelineConfigError) as info:
        load_with(tmp_path, workspace, [{"severity": severity, bound: value}])
    assert info.value.key == f"{KEY}.{bound}" and info.value.line is not None, info.value
    assert str(tmp_path / "q.yaml") in str(info.value)


@pytest.mark.parametrize(
    ("thresholds", "key", "reason"),
    [
        ([{"severity": "fatal", "min_pass_rate": 0.5}], f"{KEY}.severity", "warn"),
        ([{"min_pass_rate": 0.5}], f"{KEY}.severity", "is required"),
        ([{"severity": "warn"}], KEY, "needs min_pass_rate"),
        ([{"severity": "warn", "min_pass_rat": 0.5, "max_rejected": 3}], f"{KEY}.min_pass_rat", "unknown key"),
        (["warn"], KEY, "is {severity"),
        ({"severity": "warn"}, "steps.check.thresholds", "is a list"),
    ],
)
def test_wrong_thresholds_name_the_key(
    tmp_path: Path, workspace: dict[str, Path], thresholds: Any, key: str, reason: str
) -> None:
    with pytest.raises(PipelineConfigError) as info:
        load_with(tmp_path, workspace, thresholds)
    assert info.value.key == key and reason in info.value.reason and info.value.line is not None, info.value


def test_a_rules_threshold_is_gated_where_it_is_declared(tmp_path: Path, workspace: dict[str, Path]) -> None:
    rules = {**QUALITY_RULES, "columns": {"id": [{"not_null": {"severity": "warn", "max_rejected": -1}}]}}
    with pytest.raises(PipelineConfigError) as info:
        load_with(tmp_path, workspace, None, rules)
    assert info.value.key == "steps.check.params.columns.id.not_null.max_rejected" and info.value.line is not None
    tests = [{"name": "t", "expression": "true", "severity": "error"}]
    with pytest.raises(PipelineConfigError) as info:
        load_with(tmp_path, workspace, None, {**QUALITY_RULES, "tests": tests})
    assert info.value.key == "steps.check.params.tests[0]" and "needs min_pass_rate" in info.value.reason


def test_declared_thresholds_load_with_the_rules_ones_and_none_means_the_default(
    tmp_path: Path, workspace: dict[str, Path]
) -> None:
    rules = {
        **QUALITY_RULES,
        "columns": {"id": [{"not_null": {"name": "no_id", "severity": "error", "max_rejected": 0}}]},
    }
    spec = load_with(tmp_path, workspace, [{"severity": "warn", "min_pass_rate": 0.9}], rules)
    step = spec.step("check")
    assert [(t.severity, t.min_pass_rate, t.max_rejected, t.reason) for t in step.thresholds] == [
        ("warn", 0.9, None, None),
        ("error", None, 0, "no_id"),
    ]
    assert f'AS "{failing_metric("no_id")}"' in (step.sql or "")
    assert load_with(tmp_path, workspace, None).step("check").thresholds == (DEFAULT_THRESHOLD,)
    assert load_with(tmp_path, workspace, []).step("check").thresholds == ()
    assert yaml.safe_load((tmp_path / "q.yaml").read_text())["steps"][2]["thresholds"] == []


@given(
    valid=st.integers(0, 10**9),
    rejected=st.integers(0, 10**9),
    min_pass_rate=st.none() | st.floats(0, 1),
    max_rejected=st.none() | st.integers(0, 10**9),
)
def test_a_threshold_is_crossed_exactly_when_the_numbers_are_past_it(
    valid: int, rejected: int, min_pass_rate: float | None, max_rejected: int | None
) -> None:
    t = {"severity": "warn", "min_pass_rate": min_pass_rate, "max_rejected": max_rejected, "reason": None, "where": "x"}
    said = crossed(t, {"valid": valid, "rejected": rejected})
    checked = valid + rejected
    below = min_pass_rate is not None and checked > 0 and 1 - rejected / checked < min_pass_rate
    over = max_rejected is not None and checked > 0 and rejected > max_rejected
    assert (said is not None) == (below or over), said
    if said is not None:
        assert said.startswith("warn threshold of the step (x): ")


def test_the_default_reads_only_steps_that_report_valid_and_rejected() -> None:
    default = {
        "severity": "warn",
        "min_pass_rate": 0.5,
        "max_rejected": None,
        "reason": None,
        "where": DEFAULT_THRESHOLD.where,
    }
    assert crossed(default, {"rows_in": 10, "rows_out": 0}) is None
    assert crossed(default, {"valid": 0, "rejected": 780}) is not None
    declared = {**default, "where": "steps[1].thresholds[0]"}
    with pytest.raises(KeyError, match="needs the metrics valid and rejected"):
        crossed(declared, {"rows_in": 10, "rows_out": 0})


#: independent mistakes of one threshold entry: (what it sets, the key it is told at, under the entry)
ENTRY_MISTAKES = {
    "severity": ({"severity": "warning"}, ".severity"),
    "no_severity": ({}, ".severity"),
    "rate": ({"min_pass_rate": 1.5}, ".min_pass_rate"),
    "count": ({"max_rejected": -3}, ".max_rejected"),
    "unknown": ({"max_rejectd": 3}, ".max_rejectd"),
}


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mistakes=st.sets(st.sampled_from(sorted(ENTRY_MISTAKES)), min_size=1),
    second_bad=st.booleans(),
)
def test_every_mistake_of_a_threshold_entry_is_told_at_once(
    tmp_path: Path, workspace: dict[str, Path], mistakes: set[str], second_bad: bool
) -> None:
    """A fresh tester's find: ``{severity: warning, min_pass_rate: 1.5}`` told only the severity. Any mix of a
    bad or missing severity, a bad bound and an unknown key in one entry (and a bad second entry): each told."""
    told = {m for m in mistakes if not (m == "severity" and "no_severity" in mistakes)}  # no severity: not a bad one
    entry: dict[str, Any] = {} if "no_severity" in told else {"severity": "warn"}
    for m in sorted(told):
        entry.update(ENTRY_MISTAKES[m][0])
    if not {"min_pass_rate", "max_rejected"} & set(entry):
        entry["min_pass_rate"] = 0.5  # a bound, so "needs a bound" is not among the mistakes
    expected = {f"{KEY}{ENTRY_MISTAKES[m][1]}" for m in told}
    thresholds = [entry, *([{"severity": "eror", "max_rejected": 1}] if second_bad else [])]
    if second_bad:
        expected.add("steps.check.thresholds[1].severity")
    with pytest.raises(PipelineConfigError) as info:
        load_with(tmp_path, workspace, thresholds)
    assert {e.key for e in info.value.errors} == expected, str(info.value)
    assert all(e.line is not None for e in info.value.errors)
