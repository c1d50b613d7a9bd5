"""Retrying a failed run: the real worker and warehouse (a step fails until the test fixes what it reads), and
the retry's run reuses what succeeded (the pure plan: tests/unit/pipeline/test_retry_plan.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from golden_data import FILES_BATCH1, write_files
from helpers.pipeline import RERUN, REUSED, RunnerFactory, dump_tables, orders_spec, variant_yaml

from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.pipeline.engine.history import RunHistory
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.errors import RetryRefusedError
from foss_supervisor.pipeline.events import StepStateChanged

#: enrich reads a reference file that is not there until the test writes it: the step fails, then is fixed
GATE = "CREATE OR REPLACE TEMP TABLE _gate AS SELECT * FROM read_csv(getvariable('reference_dir') || '/gate.csv');"


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
