"""Retrying a failed run, the way Airflow's "clear failed tasks and downstream" works: which steps run again.

A retry is a NEW run (its own run id, ``retry_of`` naming the source run) in the source run's mode. It runs
the selected steps (the one asked for, or every step of the source run that was not ok: failed, crashed,
upstream_failed, cancelled, or left unfinished by an abandoned run) plus every step downstream of them; every
other step is recorded as skipped, "reused from run <id>", and keeps the source run's metrics (so row
accounting checks and the report still see them), but not its row counts (nothing was read or written
again). That is sound because each step commits its own transaction: what succeeded in the source run is
already in the warehouse, and what failed left nothing behind.

Stdlib and the pipeline's records only: :func:`plan_retry` is a pure function that the runner calls under
its pipeline lock, and the dashboard calls (through :func:`retry_options`) to offer only retries that would
be accepted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from foss_supervisor.base.pipelinestates import RunStatus
from foss_supervisor.pipeline.engine.history import RunRecord, StepRecord
from foss_supervisor.pipeline.engine.spec import PipelineSpec
from foss_supervisor.pipeline.errors import PipelineBusyError, RetryRefusedError

__all__ = ["RETRYABLE", "RetryPlan", "downstream", "latest_run", "plan_retry", "retry_options"]

#: run outcomes a retry may start from (a run that succeeded has nothing to retry)
RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.ABANDONED})


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPlan:
    """What a retry of ``source`` does: ``selected`` steps run, ``reused`` ones (name -> the source run's
    record) are recorded as skipped with the source's metrics."""

    source: RunRecord
    selected: frozenset[str]
    reused: Mapping[str, StepRecord]

    @property
    def note(self) -> str:
        """The warning each reused step carries: ``reused from run <id>``."""
        return f"reused from run {self.source.run_id}"


def downstream(spec: PipelineSpec, names: Iterable[str]) -> frozenset[str]:
    """``names`` and every step that depends on one of them, directly or not (spec.steps is in dependency order)."""
    out = set(names)
    for step in spec.steps:
        if any(d in out for d in step.depends_on):
            out.add(step.name)
    return frozenset(out)


def latest_run(runs: Iterable[RunRecord]) -> RunRecord | None:
    """The newest run that could have changed the warehouse (``runs`` newest first; skipped runs did not)."""
    return next((r for r in runs if r.status is not RunStatus.SKIPPED), None)


def plan_retry(
    spec: PipelineSpec | None,
    source: RunRecord | None,
    *,
    run_id: str,
    step: str | None = None,
    latest: RunRecord | None,
    busy: bool,
) -> RetryPlan:
    """The plan for retrying run ``run_id`` (``source``, None if unknown) against the pipeline's current ``spec``
    (None if it is no longer configured), from ``step`` or, when None, from every step that was not ok.

    ``latest`` is the pipeline's newest run (see :func:`latest_run`), ``busy`` whether a run of it is in progress.
    Raises PipelineBusyError (the source or another run is in progress) or RetryRefusedError: the run is
    unknown, succeeded, is not the latest run of its pipeline, its pipeline's steps changed since, ``step``
    is not a step of it or was ok in it, or a selected step depends on a step outside the selection that was
    not ok (the message names the step to retry from instead).
    """
    if source is None:
        raise RetryRefusedError(f"no such run: {run_id!r}")
    rid, name = source.run_id, source.pipeline
    if source.status is RunStatus.RUNNING:
        raise PipelineBusyError(f"run {rid} of {name!r} is still running: cancel it or wait for it to end")
    if source.status not in RETRYABLE:
        raise RetryRefusedError(f"run {rid} of {name!r} {source.status.value}: nothing to retry")
    if spec is None:
        raise RetryRefusedError(f"pipeline {name!r} of run {rid} is no longer configured")
    if busy:
        raise PipelineBusyError(f"pipeline {name!r} is already running")
    if latest is not None and latest.run_id != rid:
        raise RetryRefusedError(
            f"run {rid} is not the latest run of {name!r}: run {latest.run_id} ({latest.status.value}) came after it"
            " and may have changed the warehouse; "
            + (f"retry run {latest.run_id}, or run the pipeline" if latest.status in RETRYABLE else "run the pipeline")
        )
    then, now = [s.name for s in source.steps], [s.name for s in spec.steps]
    if set(then) != set(now):
        raise RetryRefusedError(
            f"the steps of {name!r} changed since run {rid} (then: {', '.join(then)}; now: {', '.join(now)}):"
            " run the pipeline instead"
        )
    states = {s.name: s for s in source.steps}
    if step is None:
        roots = [n for n in now if not states[n].state.ok]
    elif step not in states:
        raise RetryRefusedError(f"{step!r} is not a step of {name!r}; its steps: {', '.join(now)}")
    elif states[step].state.ok:
        raise RetryRefusedError(
            f"step {step} was ok in run {rid} ({states[step].state.value}): retry a step that did not succeed"
        )
    else:
        roots = [step]
    if not roots:
        raise RetryRefusedError(f"every step of run {rid} was ok: nothing to retry; run the pipeline instead")
    selected = downstream(spec, roots)
    for s in spec.steps:
        if s.name not in selected:
            continue
        for dep in s.depends_on:
            if dep not in selected and not states[dep].state.ok:
                raise RetryRefusedError(
                    f"step {s.name} depends on {dep}, which was not ok in run {rid} ({states[dep].state.value}):"
                    f" retry from {dep}, or retry every failed step"
                )
    reused = {n: states[n] for n in now if n not in selected}
    return RetryPlan(source=source, selected=selected, reused=reused)


def retry_options(
    spec: PipelineSpec | None, source: RunRecord, *, latest: RunRecord | None, busy: bool
) -> dict[str, object]:
    """What the dashboard may offer for ``source``: ``{"possible": bool (retry every failed step), "reason":
    str | None (why not), "from_steps": [step names a retry may start from]}``."""
    try:
        plan_retry(spec, source, run_id=source.run_id, latest=latest, busy=busy)
    except (RetryRefusedError, PipelineBusyError) as exc:
        return {"possible": False, "reason": str(exc), "from_steps": []}
    steps = []
    for s in source.steps:
        if s.state.ok:
            continue
        try:
            plan_retry(spec, source, run_id=source.run_id, step=s.name, latest=latest, busy=busy)
        except RetryRefusedError:
            continue
        steps.append(s.name)
    return {"possible": True, "reason": None, "from_steps": steps}
