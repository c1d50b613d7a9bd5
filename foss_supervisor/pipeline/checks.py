"""Row-accounting checks such as ``validate.rows_in == validate.valid + validate.rejected``.

Parsed without eval (terms are ``step.metric`` or integers, joined by ``+``, one ``==``), so a config
cannot run code; evaluated in the worker before a step commits.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from foss_supervisor.config.gates import Gate
from foss_supervisor.config.schema import PIPELINE_SCHEMA
from foss_supervisor.pipeline.errors import PipelineConfigError
from foss_supervisor.pipeline.rules import gated

__all__ = ["Check", "evaluate_check", "load_check", "parse_check"]

_TERM_RE = re.compile(r"^(?:(?P<step>[A-Za-z_][\w-]*)\.(?P<metric>[A-Za-z_]\w*)|(?P<num>-?\d+))$")


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """A row-accounting rule such as ``validate.rows_in == validate.valid + validate.rejected``.

    Terms are ``step.metric`` or integer constants; a run whose metrics violate a check is failed.
    """

    text: str
    left: tuple[tuple[str, str] | int, ...]
    right: tuple[tuple[str, str] | int, ...]

    @property
    def steps(self) -> frozenset[str]:
        """Steps whose metrics the check reads."""
        return frozenset(t[0] for t in (*self.left, *self.right) if isinstance(t, tuple))


def load_check(text: Any, i: int, steps: set[str] | None, file: str) -> Check:
    """``checks[i]`` of a pipeline file as declared (``text``), parsed; each step it names is one of ``steps``
    (None: not checked, as when a step is in error: its name may be the one). Raises PipelineConfigError at
    ``checks[i]``."""
    if not isinstance(text, str):
        raise PipelineConfigError(file, f"checks[{i}]", "must be a string like 'a.x == b.y + b.z'")
    gate = PIPELINE_SCHEMA["checks"]
    assert isinstance(gate, Gate)
    check = parse_check(gated({"c": text}, "c", gate, "", file, f"checks[{i}]"), file=file, key=f"checks[{i}]")
    for step_name in check.steps:
        if steps is not None and step_name not in steps:
            raise PipelineConfigError(file, f"checks[{i}]", f"unknown step {step_name!r}")
    return check


def parse_check(text: str, *, file: str = "<check>", key: str = "checks") -> Check:
    """Parse ``a.b + c.d == e.f`` (only ``+`` and one ``==``); no eval, so a config cannot run code."""
    if text.count("==") != 1:
        raise PipelineConfigError(file, key, f"check {text!r} must contain exactly one '=='")
    sides = text.split("==")

    def side(s: str) -> tuple[tuple[str, str] | int, ...]:
        terms: list[tuple[str, str] | int] = []
        for raw in s.split("+"):
            m = _TERM_RE.match(raw.strip())
            if m is None:
                raise PipelineConfigError(
                    file, key, f"check {text!r}: {raw.strip()!r} is not 'step.metric' or an integer"
                )
            terms.append(int(m["num"]) if m["num"] is not None else (m["step"], m["metric"]))
        return tuple(terms)

    return Check(text=text.strip(), left=side(sides[0]), right=side(sides[1]))


def evaluate_check(check: Check, metrics: Mapping[str, Mapping[str, Any]]) -> tuple[bool | None, str]:
    """Evaluate a check against ``{step: {metric: value}}``.

    Returns (None, reason) when a step it needs did not run (a skipped step cannot violate a rule),
    otherwise (passed, "left=.. right=..") so a failure message shows the numbers.
    """

    def total(terms: tuple[tuple[str, str] | int, ...]) -> float | None:
        acc = 0.0
        for t in terms:
            if isinstance(t, int):
                acc += t
                continue
            step_metrics = metrics.get(t[0])
            if step_metrics is None:
                return None
            if t[1] not in step_metrics:
                raise KeyError(f"check {check.text!r}: step {t[0]!r} reported no metric {t[1]!r}")
            acc += float(step_metrics[t[1]])
        return acc

    left, right = total(check.left), total(check.right)
    if left is None or right is None:
        return None, "not evaluated: a step it reads did not run"
    return left == right, f"left={left:g} right={right:g}"
