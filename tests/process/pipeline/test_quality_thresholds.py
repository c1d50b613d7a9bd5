"""Quality has teeth (issue 18, failure 3): below an error threshold the run fails before gold and publish,
the quality step's writes rolled back (and its batch held: test_held_files.py); below a warn threshold it ends
succeeded_with_warnings; a run that kept nothing is never green, by the default threshold."""

from __future__ import annotations

import asyncio
from pathlib import Path

from golden_data import FILES_BATCH1, write_files
from helpers.pipeline import QUALITY_RULES, RunnerFactory, orders_spec, quality_pipeline, variant_yaml

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.engine.spec import FolderOverrides, default_pipelines_dir, load_pipeline


async def count(runner: object, sql: str) -> int:
    res = await runner.client.query(sql)  # type: ignore[attr-defined]
    return int(res.rows[0][0])


async def test_orders_shaped_data_in_the_trips_landing_is_not_green(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """The issue's case: ``demo-data --pipeline trips`` wrote orders into trips' landing; clean kept 0 %."""
    landing = tmp_path / "trips_landing"
    landing.mkdir()
    trips = load_pipeline(
        default_pipelines_dir() / "trips.yaml",
        folders=FolderOverrides(landing=landing, warehouse=workspace["db"], reports=workspace["reports"]),
    )
    runner = await runners.open([trips], workspace["state"])
    write_files(landing, FILES_BATCH1)
    rec = await asyncio.wait_for(runner.run("trips"), 60)
    clean = rec.step("clean")
    assert clean.metrics["valid"] == 0 and clean.metrics["rejected"] > 0, clean.metrics
    assert rec.status is RunStatus.SUCCEEDED_WITH_WARNINGS, rec.to_dict()
    assert clean.state is StepState.SUCCEEDED_WITH_WARNINGS
    assert clean.warnings == (
        "warn threshold of the step (default threshold): pass rate 0.0 % is below min_pass_rate 50 %",
    )


async def test_below_an_error_threshold_the_run_fails_before_gold_and_leaves_silver(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    strict = variant_yaml(
        tmp_path,
        "strict",
        step_overrides={"validate": {"thresholds": [{"severity": "error", "min_pass_rate": 0.9}], "retries": 0}},
    )
    write_files(workspace["landing"], FILES_BATCH1)  # 15 of 35 lines pass
    runner = await runners.open([orders_spec(workspace, yaml_path=strict)], workspace["state"])
    rec = await asyncio.wait_for(runner.run("orders"), 60)
    assert rec.status is RunStatus.FAILED, rec.to_dict()
    validate = rec.step("validate")
    assert validate.state is StepState.FAILED
    assert validate.error == (
        f"quality_failed: error threshold of the step ({strict}:{_line(strict, 'thresholds:') + 1}:"
        " steps.validate.thresholds[0]): pass rate 42.9 % is below min_pass_rate 90 %"
    )
    after = [s.name for s in rec.steps if s.state is StepState.UPSTREAM_FAILED]
    assert {"aggregate", "report"} <= set(after), [(s.name, s.state) for s in rec.steps]
    # its transaction rolled back: not even the tables it creates exist
    tables = (
        "SELECT count(*) FROM duckdb_tables()"
        " WHERE schema_name = 'silver' AND table_name IN ('orders_valid', 'orders_rejected')"
    )
    assert await count(runner, tables) == 0
    # ingest had committed before it: its files are held, their rows set aside (test_held_files.py)
    assert await count(runner, "SELECT count(*) FROM bronze.orders_raw") == 0
    assert len(rec.held) == len(FILES_BATCH1)
    assert not (workspace["db"].parent / "published" / "orders").exists()
    await runner.aclose()

    # the shipped thresholds (warn below 25 %, error below 1 %) let the same rows through once released
    runner = await runners.open([orders_spec(workspace)], workspace["state"])
    await runner.release("orders", every=True)
    rec = await asyncio.wait_for(runner.run("orders"), 60)
    assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
    m = rec.step("validate").metrics
    assert (m["rows_in"], m["valid"], m["rejected"]) == (35, 15, 20)


async def test_a_rules_warn_threshold_counts_its_failing_rows(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    rules = {**QUALITY_RULES, "columns": {**QUALITY_RULES["columns"]}}
    rules["columns"]["id"] = [{"not_null": {"severity": "warn", "max_rejected": 0}}, "unique"]
    spec = load_pipeline(quality_pipeline(tmp_path, workspace, rules, thresholds=[]))
    runner = await runners.open([spec], workspace["state"])
    (workspace["landing"] / "b.csv").write_text("id,kind,amount,code,zone,lim\n1,a,1,AB,Z1,5\n,a,1,AB,Z1,5\n")
    rec = await asyncio.wait_for(runner.run("q"), 60)
    check = rec.step("check")
    assert rec.status is RunStatus.SUCCEEDED_WITH_WARNINGS and check.metrics["rejected.id:not_null"] == 1
    assert check.warnings == (
        f"warn threshold of rule id:not_null ({spec.at('steps.check.params.columns.id[0]')}:"  # the rule item's line
        " steps.check.params.columns.id.not_null): 1 rows rejected, more than max_rejected 0",
    )
    # a replay re-checks rejected rows: its pass rate says nothing about new data, so no threshold is judged
    replay = await asyncio.wait_for(runner.replay("q"), 60)
    assert replay.status is RunStatus.SUCCEEDED and replay.step("check").metrics["rejected"] == 1


def _line(path: Path, text: str) -> int:
    """The 1-based number of the first line of ``path`` holding ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)
