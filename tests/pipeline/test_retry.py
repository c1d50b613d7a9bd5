"""Retrying a failed run: the real worker and warehouse (a step fails until the test fixes what it reads), and
the pure plan (pipeline/retry.py) for every refusal."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from golden_data import FILES_BATCH1, write_files
from pipeline_helpers import ORDERS_YAML, RunnerFactory, dump_tables, orders_spec, variant_yaml

from foss_supervisor.pipeline.errors import PipelineBusyError, RetryRefusedError
from foss_supervisor.pipeline.events import StepStateChanged
from foss_supervisor.pipeline.history import RunHistory, RunRecord, StepRecord
from foss_supervisor.pipeline.retry import downstream, latest_run, plan_retry, retry_options
from foss_supervisor.pipeline.runner import PipelineRunner
from foss_supervisor.pipeline.spec import load_pipeline
from foss_supervisor.pipeline.states import RunMode, RunStatus, StepState

#: the workspace and runners fixtures (not in a conftest.py: see pipeline_fixtures)
pytest_plugins = ("pipeline_fixtures",)

#: enrich reads a reference file that is not there until the test writes it: the step fails, then is fixed
GATE = "CREATE OR REPLACE TEMP TABLE _gate AS SELECT * FROM read_csv(getvariable('reference_dir') || '/gate.csv');"
REUSED = ["discover", "ingest", "reference", "validate", "quarantine", "deduplicate"]
RERUN = ["enrich", "aggregate", "report"]


async def counts(runner: PipelineRunner) -> list[int]:
    """Rows of the file ledger, bronze and silver: what the reused steps wrote."""
    res = await runner.client.query(
        "SELECT (SELECT count(*) FROM meta.files), (SELECT count(*) FROM bronze.orders_raw),"
        " (SELECT count(*) FROM silver.orders_valid), (SELECT count(*) FROM silver.orders)"
    )
    return list(res.rows[0])


async def test_retry_from_the_failed_step_reuses_what_succeeded_and_ends_like_a_clean_run(
    workspace: dict[str, Path], runners: RunnerFactory, tmp_path: Path
) -> None:
    ws = workspace
    gated = variant_yaml(tmp_path, "gated", step_overrides={"enrich": {"retries": 0}}, extra_sql={"enrich": GATE})
    runner = await runners.open([orders_spec(ws, yaml_path=gated)], ws["state"])
    write_files(ws["landing"], FILES_BATCH1)

    failed = await asyncio.wait_for(runner.run("orders"), 60)
    assert failed.status is RunStatus.FAILED and failed.retry_of is None
    assert [failed.step(n).state for n in REUSED] == [StepState.SUCCEEDED] * len(REUSED)
    assert failed.step("enrich").state is StepState.FAILED and "gate.csv" in (failed.step("enrich").error or "")
    assert failed.step("aggregate").state is failed.step("report").state is StepState.UPSTREAM_FAILED
    before = await counts(runner)
    assert before[1] == 35  # the handmade batch, ingested once

    # refused before the fix as after it: a step that succeeded, a step whose upstream failed, no such step
    with pytest.raises(RetryRefusedError, match=r"step ingest was ok in run .* \(succeeded\)"):
        await runner.retry(failed.run_id, step="ingest")
    with pytest.raises(
        RetryRefusedError, match=r"depends on enrich, which was not ok .* \(failed\): retry from enrich"
    ):
        await runner.retry(failed.run_id, step="aggregate")
    with pytest.raises(RetryRefusedError, match="'nope' is not a step of 'orders'"):
        await runner.retry(failed.run_id, step="nope")
    with pytest.raises(RetryRefusedError, match="no such run"):
        await runner.retry("20990101T000000Z-000000")
    assert [r.run_id for r in runner.runs("orders")] == [failed.run_id]  # a refusal records nothing

    (ws["reference"] / "gate.csv").write_text("ok\n1\n")
    runners.events.clear()
    retried = await asyncio.wait_for(runner.retry(failed.run_id, step="enrich"), 60)
    assert retried.status is RunStatus.SUCCEEDED, retried.to_dict()
    assert retried.retry_of == failed.run_id and retried.run_id != failed.run_id and retried.mode is RunMode.RUN
    for name in REUSED:
        step = retried.step(name)
        assert (step.state, step.attempts, step.rows_out) == (StepState.SKIPPED, 0, None), step
        assert step.warnings == (f"reused from run {failed.run_id}",)
        assert step.metrics == failed.step(name).metrics  # row accounting checks and the report still see them
    assert [(retried.step(n).state, retried.step(n).attempts) for n in RERUN] == [(StepState.SUCCEEDED, 1)] * 3
    # the reused steps never reached the worker: pending -> skipped is all they did
    moves = [(e.step, e.new) for e in runners.events if isinstance(e, StepStateChanged)]
    assert [m for m in moves if m[0] in REUSED] == [(n, StepState.SKIPPED) for n in REUSED]
    assert await counts(runner) == before  # nothing ingested, validated or deduplicated twice

    # kept across a restart, and shown in JSON
    reread = RunHistory(ws["state"] / "pipeline_runs.jsonl").get(retried.run_id)
    assert reread is not None and reread.retry_of == failed.run_id
    assert retried.to_dict()["retry_of"] == failed.run_id

    # nothing left to retry, and the failed run is no longer the latest
    with pytest.raises(RetryRefusedError, match="succeeded: nothing to retry"):
        await runner.retry(retried.run_id)
    with pytest.raises(RetryRefusedError, match=f"not the latest run of 'orders': run {retried.run_id}"):
        await runner.retry(failed.run_id)

    # the same data through a warehouse that never failed ends in the same tables
    clean_ws = {**ws, "db": tmp_path / "clean" / "wh.duckdb"}
    clean = await runners.open([orders_spec(clean_ws, yaml_path=gated)], tmp_path / "clean-state")
    good = await asyncio.wait_for(clean.run("orders"), 60)
    assert good.status is RunStatus.SUCCEEDED, good.to_dict()
    assert await dump_tables(runner) == await dump_tables(clean)


async def test_retry_of_every_failed_step_runs_in_the_source_mode(
    workspace: dict[str, Path], runners: RunnerFactory, tmp_path: Path
) -> None:
    ws = workspace
    gated = variant_yaml(tmp_path, "gated", step_overrides={"enrich": {"retries": 0}}, extra_sql={"enrich": GATE})
    (ws["reference"] / "gate.csv").write_text("ok\n1\n")
    runner = await runners.open([orders_spec(ws, yaml_path=gated)], ws["state"])
    write_files(ws["landing"], FILES_BATCH1)
    assert (await asyncio.wait_for(runner.run("orders"), 60)).status is RunStatus.SUCCEEDED
    (ws["reference"] / "gate.csv").unlink()
    replay = await asyncio.wait_for(runner.replay("orders"), 60)
    assert replay.status is RunStatus.FAILED and replay.step("enrich").state is StepState.FAILED
    (ws["reference"] / "gate.csv").write_text("ok\n1\n")
    retried = await asyncio.wait_for(runner.retry(replay.run_id), 60)  # no step: every step that was not ok
    assert retried.status is RunStatus.SUCCEEDED and retried.mode is RunMode.REPLAY
    assert retried.step("discover").warnings == ()  # not a step of replays: skipped as in any replay
    assert retried.step("validate").warnings == (f"reused from run {replay.run_id}",)
    assert [retried.step(n).attempts for n in RERUN] == [1, 1, 1]


async def test_a_fixed_sql_file_reloaded_is_what_the_retry_runs(
    workspace: dict[str, Path], runners: RunnerFactory, tmp_path: Path
) -> None:
    ws = workspace
    broken = variant_yaml(tmp_path, "broken", step_overrides={}, extra_sql={"aggregate": "SELEC 1;"})
    runner = await runners.open([orders_spec(ws, yaml_path=broken)], ws["state"])
    write_files(ws["landing"], FILES_BATCH1)
    failed = await asyncio.wait_for(runner.run("orders"), 60)
    assert failed.step("aggregate").state is StepState.FAILED and failed.step("enrich").state is StepState.SUCCEEDED
    sql = tmp_path / "broken_aggregate.sql"
    sql.write_text(sql.read_text().replace("SELEC 1;", ""))  # the author fixes the file, the daemon reloads it
    await runner.replace_pipelines([orders_spec(ws, yaml_path=broken)])
    retried = await asyncio.wait_for(runner.retry(failed.run_id), 60)
    assert retried.status is RunStatus.SUCCEEDED, retried.to_dict()
    assert [retried.step(n).state for n in ("enrich", "aggregate", "report")] == [
        StepState.SKIPPED,
        StepState.SUCCEEDED,
        StepState.SUCCEEDED,
    ]


# ------------------------------------------------------------------------------------------- the plan


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
