"""The retry plan, pure: which steps a retry selects and reuses, what it refuses and why, and which retries
the dashboard offers (a retry run on a real worker: tests/process/pipeline/test_retry.py)."""

from __future__ import annotations

import dataclasses

import pytest
from helpers.pipeline import ORDERS_YAML, REUSED

from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.pipeline.engine.history import RunRecord, StepRecord
from foss_supervisor.pipeline.engine.retry import downstream, latest_run, plan_retry, retry_options
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineBusyError, RetryRefusedError


def record(run_id: str, status: RunStatus, **states: StepState) -> RunRecord:
    spec = load_pipeline(ORDERS_YAML)
    steps = tuple(StepRecord(s.name, states.get(s.name, StepState.SUCCEEDED)) for s in spec.steps)
    return RunRecord(run_id, "orders", RunMode.RUN, "manual", status, 1.0, steps, finished_at=2.0)


FAILED = record(
    "r1",
    RunStatus.FAILED,
    enrich=StepState.FAILED,
    aggregate=StepState.UPSTREAM_FAILED,
    report=StepState.UPSTREAM_FAILED,
)


def test_plan_selects_the_failed_steps_and_everything_downstream() -> None:
    spec = load_pipeline(ORDERS_YAML)
    plan = plan_retry(spec, FAILED, run_id="r1", latest=FAILED, busy=False)
    assert plan.selected == {"enrich", "aggregate", "report"}
    assert list(plan.reused) == REUSED and plan.note == "reused from run r1"
    assert downstream(spec, ["quarantine"]) == {"quarantine", "deduplicate", "enrich", "aggregate", "report"}
    cancelled = record(
        "r2",
        RunStatus.CANCELLED,
        validate=StepState.CANCELLED,
        quarantine=StepState.CANCELLED,
        deduplicate=StepState.CANCELLED,
        enrich=StepState.CANCELLED,
        aggregate=StepState.CANCELLED,
        report=StepState.CANCELLED,
    )
    assert plan_retry(spec, cancelled, run_id="r2", step="validate", latest=cancelled, busy=False).selected == {
        "validate",
        "quarantine",
        "deduplicate",
        "enrich",
        "aggregate",
        "report",
    }
    later = ["reference", "validate", "quarantine", "deduplicate", "enrich", "aggregate", "report"]
    abandoned = record("r3", RunStatus.ABANDONED, ingest=StepState.RUNNING, **dict.fromkeys(later, StepState.PENDING))
    assert plan_retry(spec, abandoned, run_id="r3", latest=abandoned, busy=False).reused.keys() == {"discover"}


@pytest.mark.parametrize(
    ("source", "kw", "error", "match"),
    [
        (None, {}, RetryRefusedError, "no such run: 'r1'"),
        (dataclasses.replace(FAILED, status=RunStatus.RUNNING), {}, PipelineBusyError, "still running"),
        (record("r1", RunStatus.SUCCEEDED), {}, RetryRefusedError, "succeeded: nothing to retry"),
        (record("r1", RunStatus.SKIPPED), {}, RetryRefusedError, "skipped: nothing to retry"),
        (FAILED, {"busy": True}, PipelineBusyError, "already running"),
        (
            FAILED,
            {"latest": record("r9", RunStatus.SUCCEEDED)},
            RetryRefusedError,
            r"not the latest run of 'orders': run r9 \(succeeded\) came after it .*; run the pipeline$",
        ),
        (FAILED, {"latest": record("r9", RunStatus.FAILED)}, RetryRefusedError, "; retry run r9, or run the pipeline"),
        (FAILED, {"step": "ingest"}, RetryRefusedError, "step ingest was ok in run r1"),
        (FAILED, {"step": "nope"}, RetryRefusedError, "'nope' is not a step of 'orders'"),
        (FAILED, {"step": "report"}, RetryRefusedError, "report depends on aggregate, .* retry from aggregate"),
        (dataclasses.replace(FAILED, steps=FAILED.steps[:-1]), {}, RetryRefusedError, "the steps of 'orders' changed"),
        (FAILED, {"spec": None}, RetryRefusedError, "no longer configured"),
    ],
)
def test_plan_refusals(source: RunRecord | None, kw: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {"spec": load_pipeline(ORDERS_YAML), "latest": source, "busy": False, **kw}
    with pytest.raises(error, match=match):
        plan_retry(args.pop("spec"), source, run_id="r1", **args)  # type: ignore[arg-type]


def test_options_offer_only_retries_that_would_be_accepted() -> None:
    spec = load_pipeline(ORDERS_YAML)
    assert retry_options(spec, FAILED, latest=FAILED, busy=False) == {
        "possible": True,
        "reason": None,
        "from_steps": ["enrich"],
    }
    newer = record("r9", RunStatus.SKIPPED)  # a skipped run changed nothing: r1 stays the latest
    assert latest_run([newer, FAILED]) is FAILED
    refused = retry_options(spec, FAILED, latest=record("r9", RunStatus.FAILED), busy=False)
    assert refused["possible"] is False and "not the latest" in str(refused["reason"])
