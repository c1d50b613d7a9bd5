"""Thresholds of a ``kind: quality`` step: when a run's checked rows make it warn or fail.

A quality block, and each of its rules and tests, may declare thresholds; each has a ``severity``::

    thresholds:                               # a step key: all rows the step checked
      - {severity: error, min_pass_rate: 0.5}   # fewer than half the rows valid: the step fails
      - {severity: warn, max_rejected: 100}     # more than 100 rows rejected: the run warns
    params:
      ...
      columns:
        trip_id: [{not_null: {severity: error, max_rejected: 0}}]   # one rule: rows failing it
      tests:
        - {name: dropoff_after_pickup, expression: "...", severity: warn, min_pass_rate: 0.99}

``min_pass_rate`` (0 to 1) is valid / (valid + rejected) rows of the step, and 1 - failing / checked rows
for a rule (a quality step reports a rule's failing rows as the metric ``rejected.<reason>``);
``max_rejected`` counts rejected rows (for a rule, those failing it). A step that checked no row is never
below a threshold. Crossing a ``warn`` threshold gives the step a warning (the run ends
``succeeded_with_warnings``); crossing an ``error`` threshold fails the step before it commits (its
writes are rolled back, so every layer stays as before) and the run fails before gold and publish.
A step that declares no ``thresholds`` gets :data:`DEFAULT_THRESHOLD` (warn below a 50 % pass rate) when
it reports ``valid`` and ``rejected`` rows (every quality block does; a SQL step may), so a run that kept
almost nothing is never green; ``thresholds: []`` declares none. Thresholds are judged in the worker on the
step's metrics before it commits (:func:`crossed`), in ``run`` mode only (a replay re-checks rejected rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from foss_supervisor.config import gates
from foss_supervisor.pipeline.errors import PipelineConfigError, Problems
from foss_supervisor.pipeline.rules import gated

__all__ = [
    "DEFAULT_THRESHOLD",
    "THRESHOLD_KEYS",
    "Threshold",
    "crossed",
    "failing_metric",
    "located_thresholds",
    "parse_threshold",
    "parse_thresholds",
    "step_thresholds",
]

#: the keys a threshold takes (a rule's or test's own thresholds sit beside its other keys)
THRESHOLD_KEYS = frozenset({"severity", "min_pass_rate", "max_rejected"})

_SEVERITY = gates.choice(("warn", "error"))
_RATE = gates.factor(0.0, 1.0)
_COUNT = gates.count(0, 10**15)


@dataclasses.dataclass(frozen=True, slots=True)
class Threshold:
    """One threshold: ``severity`` warn or error, at least one bound; ``reason`` None for the whole block,
    else the rule's or test's reason; ``where`` the YAML key that declared it (shown in its message)."""

    severity: str
    min_pass_rate: float | None
    max_rejected: int | None
    reason: str | None
    where: str


#: a block without ``thresholds``: warn when fewer than half of the checked rows are valid
DEFAULT_THRESHOLD = Threshold("warn", 0.5, None, None, "default threshold")


def parse_threshold(raw: Mapping[str, Any], reason: str | None, file: str, key: str) -> Threshold:
    """The threshold in ``raw`` (keys of THRESHOLD_KEYS only); PipelineConfigError names every bad key at once
    (a bad severity does not hide a bad min_pass_rate)."""
    found = Problems()
    if "severity" not in raw:
        found.add(file, f"{key}.severity", "is required with a threshold: warn or error")
    severity = found.attempt(gated, raw, "severity", _SEVERITY, "warn", file, f"{key}.severity")
    rate: float | None = found.attempt(gated, raw, "min_pass_rate", _RATE, -1.0, file, f"{key}.min_pass_rate")
    most: int | None = found.attempt(gated, raw, "max_rejected", _COUNT, -1, file, f"{key}.max_rejected")
    declared = {"min_pass_rate", "max_rejected"} & set(raw)
    if not declared:
        found.add(file, key, "a threshold needs min_pass_rate (0 to 1) and/or max_rejected (a count)")
    found.raise_any()
    assert severity is not None  # else found had its error
    rate, most = (None if rate in (-1.0, None) else rate), (None if most in (-1, None) else most)  # -1: not declared
    return Threshold(severity, rate, most, reason, key)


def parse_thresholds(raw: Any, file: str, key: str) -> tuple[Threshold, ...]:
    """A block's ``thresholds`` list (absent: DEFAULT_THRESHOLD); PipelineConfigError names the bad key."""
    if raw is None:
        return (DEFAULT_THRESHOLD,)
    if not isinstance(raw, list):
        raise PipelineConfigError(file, key, "is a list of {severity: warn|error, min_pass_rate, max_rejected}")
    out, found = [], Problems()  # each item and each of its keys told on its own
    for i, item in enumerate(raw):
        at = f"{key}[{i}]"
        if not isinstance(item, dict):
            found.add(file, at, "is {severity: warn|error, min_pass_rate: 0..1, max_rejected: n}")
            continue
        for extra in sorted(set(item) - THRESHOLD_KEYS):
            found.add(file, f"{at}.{extra}", f"unknown key (allowed: {', '.join(sorted(THRESHOLD_KEYS))})")
        parsed = found.attempt(parse_threshold, {k: v for k, v in item.items() if k in THRESHOLD_KEYS}, None, file, at)
        out.extend([parsed] if parsed is not None else [])
    found.raise_any()
    return tuple(out)


def step_thresholds(raw: Any, rules: tuple[Threshold, ...], file: str, key: str, name: str) -> tuple[Threshold, ...]:
    """A step's thresholds: its ``thresholds`` (``raw``, at ``key``.thresholds) then its rules' ones, each
    saying where it was declared as the author names the step (``steps.<name>...``, not ``steps[i]``)."""
    return tuple(
        dataclasses.replace(t, where=t.where.replace(key, f"steps.{name}", 1))
        for t in parse_thresholds(raw, file, f"{key}.thresholds") + rules
    )


def located_thresholds(thresholds: tuple[Threshold, ...], at: Callable[[str], str]) -> tuple[Threshold, ...]:
    """``thresholds`` each with ``where`` as ``at(key)``: ``FILE:LINE: key`` (its place in the YAML, the key as the
    author wrote it), so a crossed one names the line that declared it; the default threshold, declared nowhere,
    stays as it is."""
    return tuple(
        t if t.where == DEFAULT_THRESHOLD.where else dataclasses.replace(t, where=at(t.where)) for t in thresholds
    )


def failing_metric(reason: str) -> str:
    """The metric a quality step reports for a rule with a threshold: how many checked rows failed it."""
    return f"rejected.{reason}"


def crossed(t: Mapping[str, Any], metrics: Mapping[str, Any]) -> str | None:
    """How threshold ``t`` (a Threshold as a dict) is crossed by a step's ``metrics``, or None when it is not
    (or the step checked no row). Raises KeyError naming a metric the threshold needs and the step lacks."""
    if "valid" not in metrics or "rejected" not in metrics:
        if t["where"] == DEFAULT_THRESHOLD.where:
            return None  # the default only reads steps that report valid and rejected rows
        raise KeyError(f"threshold at {t['where']} needs the metrics valid and rejected; the step reports neither")
    checked = float(metrics["valid"]) + float(metrics["rejected"])
    reason = t.get("reason")
    failing = float(metrics["rejected"] if reason is None else metrics[failing_metric(reason)])
    if checked <= 0:
        return None
    said = []
    rate = 1 - failing / checked
    if t.get("min_pass_rate") is not None and rate < float(t["min_pass_rate"]):
        said.append(f"pass rate {rate * 100:.1f} % is below min_pass_rate {float(t['min_pass_rate']) * 100:g} %")
    if t.get("max_rejected") is not None and failing > int(t["max_rejected"]):
        said.append(f"{failing:.0f} rows rejected, more than max_rejected {int(t['max_rejected'])}")
    if not said:
        return None
    what = "the step" if reason is None else f"rule {reason}"
    return f"{t['severity']} threshold of {what} ({t['where']}): {'; '.join(said)}"
