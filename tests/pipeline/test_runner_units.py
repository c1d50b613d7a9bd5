"""Spec loading errors, the state table, history reload, retries, warnings and step-failure rollback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import ORDERS_YAML, RunnerFactory

from foss_supervisor.pipeline.errors import PipelineBusyError, PipelineConfigError, UnknownPipelineError
from foss_supervisor.pipeline.events import RunFinished, StepLog, StepStateChanged
from foss_supervisor.pipeline.history import RunHistory, RunRecord, StepRecord
from foss_supervisor.pipeline.spec import evaluate_check, load_pipeline, parse_check
from foss_supervisor.pipeline.states import (
    IllegalTransitionError,
    RunMode,
    RunStatus,
    StepState,
    check_step_transition,
)

#: the workspace and runners fixtures (not in a conftest.py: see pipeline_fixtures)
pytest_plugins = ("pipeline_fixtures",)

HERE = Path(__file__).parent


def write_yaml(tmp_path: Path, doc: dict[str, object], name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return p


def base_doc(tmp_path: Path) -> dict[str, object]:
    (tmp_path / "a.sql").write_text("SELECT 1 AS rows_in, 1 AS rows_out;")
    return {
        "name": "p",
        "folders": {"landing": "land", "reference": "ref", "warehouse": "wh/w.duckdb"},
        "steps": [{"name": "a", "sql": "a.sql"}],
    }


def test_orders_yaml_loads_in_dependency_order() -> None:
    spec = load_pipeline(ORDERS_YAML)
    assert [s.name for s in spec.steps] == [
        "discover",
        "ingest",
        "reference",
        "validate",
        "quarantine",
        "deduplicate",
        "enrich",
        "aggregate",
        "report",
    ]
    assert spec.step("discover").modes == frozenset({RunMode.RUN})
    assert spec.folders.reference.name == "reference" and spec.folders.reference.is_absolute()
    assert len(spec.checks) == 4


@pytest.mark.parametrize(
    ("mutate", "key", "reason"),
    [
        (lambda d: d.update(nme="x"), "nme", "unknown key"),
        (lambda d: d.pop("name"), "name", "is required"),
        (lambda d: d["steps"][0].update(sql="missing.sql"), "steps.a.sql", "cannot read SQL file"),
        (lambda d: d["steps"][0].update(depends_on=["nope"]), "steps.a.depends_on", "unknown step 'nope'"),
        (lambda d: d["steps"][0].update(kind="shell"), "steps.a.kind", "sql, python, quality, deduplicate"),
        (lambda d: d["steps"][0].update(timeout_s=-1), "steps.a.timeout_s", "must be a duration from 1ms to 1d"),
        (lambda d: d["steps"][0].update(retries="many"), "steps.a.retries", "must be an integer"),
        (lambda d: d["steps"][0].update(modes=["sometimes"]), "steps.a.modes[0]", "must be one of run, replay"),
        (lambda d: d["steps"].append({"name": "a", "sql": "a.sql"}), "steps[1].name", "duplicate step name"),
        (
            lambda d: d["steps"].append({"name": "b", "kind": "python", "callable": "no_such_mod:f"}),
            "steps.b.callable",
            "cannot be imported",
        ),
        (
            lambda d: d["steps"].append({"name": "b", "kind": "python", "callable": "not a callable"}),
            "steps.b.callable",
            "'package.module:function'",
        ),
        (
            lambda d: d["steps"].append(
                {"name": "b", "kind": "python", "callable": "foss_supervisor.pipeline.ingest:ingest"}
            ),
            "steps.b.params",
            "ingest needs params.table",
        ),
        (
            lambda d: d["steps"].append(
                {
                    "name": "b",
                    "kind": "python",
                    "callable": "foss_supervisor.pipeline.ingest:ingest",
                    "params": {"table": "b_raw.t", "columns": ["Order Id"]},
                }
            ),
            "steps.b.params.columns",
            "lower-case column names",
        ),
        (
            lambda d: d["steps"].append(
                {
                    "name": "b",
                    "kind": "python",
                    "callable": "foss_supervisor.pipeline.ledger:discover",
                    "params": {"pattern": "*.csv"},
                }
            ),
            "steps.b.params.pattern",
            "unknown parameter",
        ),
        (lambda d: d.update(checks=["a.rows_in = a.rows_out"]), "checks[0]", "exactly one '=='"),
        (lambda d: d.update(checks=["zz.rows_in == a.rows_out"]), "checks[0]", "unknown step 'zz'"),
        (lambda d: d["folders"].pop("landing"), "folders.landing", "is required: a path"),
    ],
)
def test_loader_errors_name_file_key_and_reason(tmp_path: Path, mutate: object, key: str, reason: str) -> None:
    doc = base_doc(tmp_path)
    mutate(doc)  # type: ignore[operator]
    path = write_yaml(tmp_path, doc)
    with pytest.raises(PipelineConfigError) as info:
        load_pipeline(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(path) in str(info.value) and key in str(info.value)
    # the line is the one that holds the key (steps are named, not numbered)
    assert info.value.line is not None and f"{path}:{info.value.line}:" in str(info.value)
    leaf = key.rsplit(".", 1)[-1].split("[")[0]
    text = path.read_text().splitlines()[info.value.line - 1]
    assert leaf in text or key.endswith("]") or key in ("name", "folders.landing", "steps.b.params"), (key, text)


def test_cycle_is_reported(tmp_path: Path) -> None:
    doc = base_doc(tmp_path)
    doc["steps"] = [
        {"name": "a", "sql": "a.sql", "depends_on": ["b"]},
        {"name": "b", "sql": "a.sql", "depends_on": ["a"]},
    ]
    with pytest.raises(PipelineConfigError, match="dependency cycle among: a, b"):
        load_pipeline(write_yaml(tmp_path, doc))


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(PipelineConfigError, match="invalid YAML"):
        load_pipeline(p)


def test_checks_parse_and_evaluate() -> None:
    c = parse_check("validate.rows_in == validate.valid + validate.rejected")
    assert evaluate_check(c, {"validate": {"rows_in": 10, "valid": 7, "rejected": 3}})[0] is True
    ok, detail = evaluate_check(c, {"validate": {"rows_in": 10, "valid": 7, "rejected": 2}})
    assert ok is False and detail == "left=10 right=9"
    assert evaluate_check(c, {})[0] is None


def test_state_table() -> None:
    check_step_transition(StepState.PENDING, StepState.QUEUED)
    check_step_transition(StepState.RUNNING, StepState.RETRYING)
    check_step_transition(StepState.RETRYING, StepState.QUEUED)
    with pytest.raises(IllegalTransitionError, match="succeeded -> running"):
        check_step_transition(StepState.SUCCEEDED, StepState.RUNNING)
    with pytest.raises(IllegalTransitionError):
        check_step_transition(StepState.PENDING, StepState.SUCCEEDED)
    assert all(s.icon for s in StepState)
    assert StepState.SKIPPED.ok and not StepState.CRASHED.ok


def test_history_marks_unfinished_runs_abandoned(tmp_path: Path) -> None:
    h = RunHistory(tmp_path / "runs.jsonl")
    rec = RunRecord("r1", "p", RunMode.RUN, "manual", RunStatus.RUNNING, 1.0, (StepRecord("a"),))
    h.append(rec)
    with (tmp_path / "runs.jsonl").open("a") as f:
        f.write('{"torn": ')  # a crash mid-write
    again = RunHistory(tmp_path / "runs.jsonl")
    got = again.get("r1")
    assert got is not None and got.status is RunStatus.ABANDONED
    assert json.loads(json.dumps(got.to_dict()))["steps"][0]["state"] == "pending"


def flaky_yaml(tmp_path: Path, *, step: str = "flaky", retries: int = 2) -> Path:
    (tmp_path / "after.sql").write_text("SELECT count(*) AS rows_in, count(*) AS rows_out FROM main.t;")
    doc = {
        "name": "flaky",
        "folders": {"landing": str(tmp_path), "reference": str(tmp_path), "warehouse": str(tmp_path / "wh.duckdb")},
        "steps": [
            {
                "name": "first",
                "kind": "python",
                "callable": f"pipeline_test_steps:{step}",
                "retries": retries,
                "params": {"marker": str(tmp_path / "marker")},
            },
            {"name": "after", "sql": "after.sql", "depends_on": ["first"]},
            {"name": "warn", "kind": "python", "callable": "pipeline_test_steps:warns"},
        ],
    }
    return write_yaml(tmp_path, doc, "flaky.yaml")


async def test_transient_fault_is_retried_with_its_write_rolled_back(tmp_path: Path, runners: RunnerFactory) -> None:
    spec = load_pipeline(flaky_yaml(tmp_path))
    runner = await runners.open(
        [spec], tmp_path / "state", worker_env={"PYTHONPATH": str(HERE)}, retry_initial_s=0.01, retry_max_s=0.05
    )
    rec = await asyncio.wait_for(runner.run("flaky"), 60)
    assert rec.status is RunStatus.SUCCEEDED_WITH_WARNINGS, rec.to_dict()
    assert rec.step("first").attempts == 2
    assert rec.step("warn").state is StepState.SUCCEEDED_WITH_WARNINGS
    assert rec.step("warn").warnings == ("3 rows looked odd",)
    # the failed attempt's insert was rolled back: only the second attempt's row exists
    assert rec.step("after").rows_out == 1
    res = await runner.client.query("SELECT attempt FROM main.t")
    assert res.rows == ((2,),)
    edges = [(e.old, e.new) for e in runners.events if isinstance(e, StepStateChanged) and e.step == "first"]
    assert edges == [
        (StepState.PENDING, StepState.QUEUED),
        (StepState.QUEUED, StepState.RUNNING),
        (StepState.RUNNING, StepState.RETRYING),
        (StepState.RETRYING, StepState.QUEUED),
        (StepState.QUEUED, StepState.RUNNING),
        (StepState.RUNNING, StepState.SUCCEEDED),
    ]
    assert any(isinstance(e, StepLog) and e.message == "second attempt goes through" for e in runners.events)
    assert any(isinstance(e, RunFinished) and e.status is RunStatus.SUCCEEDED_WITH_WARNINGS for e in runners.events)


async def test_step_bug_fails_without_retry_and_blocks_dependents(tmp_path: Path, runners: RunnerFactory) -> None:
    spec = load_pipeline(flaky_yaml(tmp_path, step="broken"))
    runner = await runners.open([spec], tmp_path / "state", worker_env={"PYTHONPATH": str(HERE)}, retry_initial_s=0.01)
    rec = await asyncio.wait_for(runner.run("flaky"), 60)
    assert rec.status is RunStatus.FAILED
    assert rec.step("first").state is StepState.FAILED and rec.step("first").attempts == 1
    assert "bug in step" in (rec.step("first").error or "")
    assert rec.step("after").state is StepState.UPSTREAM_FAILED
    assert rec.step("warn").state is StepState.SUCCEEDED_WITH_WARNINGS  # independent branch still runs
    with pytest.raises(UnknownPipelineError):
        await runner.run("nope")


async def test_runs_of_one_pipeline_never_overlap_and_cancel(tmp_path: Path, runners: RunnerFactory) -> None:
    (tmp_path / "slow.sql").write_text(
        "CREATE TABLE main.s AS SELECT 1 AS x;\n"
        "SELECT count(*) AS rows_in, count(*) AS rows_out FROM range(1000000000000) t(x) WHERE hash(x) = 42;"
    )
    doc = {
        "name": "slow",
        "folders": {"landing": str(tmp_path), "reference": str(tmp_path), "warehouse": str(tmp_path / "wh.duckdb")},
        "steps": [{"name": "slow", "sql": "slow.sql"}, {"name": "next", "sql": "slow.sql", "depends_on": ["slow"]}],
    }
    spec = load_pipeline(write_yaml(tmp_path, doc, "slow.yaml"))
    runner = await runners.open([spec], tmp_path / "state", cancel_grace_s=5.0)
    pid = runner.worker.pid
    task = asyncio.create_task(runner.run("slow"))
    for _ in range(500):
        if runner.is_running("slow"):
            break
        await asyncio.sleep(0.01)
    with pytest.raises(PipelineBusyError):
        await runner.run("slow")
    await asyncio.sleep(0.3)
    assert await runner.cancel("slow")
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    rec = runner.runs("slow")[0]
    assert rec.status is RunStatus.CANCELLED
    assert rec.step("slow").state is StepState.CANCELLED and rec.step("next").state is StepState.CANCELLED
    # the interrupt was enough: same worker, and the step's CREATE TABLE was rolled back
    assert runner.worker.pid == pid
    res = await runner.client.query("SELECT count(*) FROM duckdb_tables() WHERE table_name = 's'")
    assert res.rows == ((0,),)
