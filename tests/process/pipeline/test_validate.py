"""``pipeline validate``: SQL bound by DuckDB against the pipeline's own (empty) schemas, problems located."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from foss_supervisor.pipeline.spec import default_pipelines_dir, load_pipeline
from foss_supervisor.pipeline.validate import validate_spec

SETUP = "CREATE SCHEMA IF NOT EXISTS s_raw;\nCREATE TABLE IF NOT EXISTS s_raw.t (id INTEGER, amount DECIMAL(10, 2));\n"
GOOD = (
    "-- totals\nCREATE OR REPLACE TABLE s_raw.total AS SELECT sum(amount) AS x FROM s_raw.t;\n"
    "SELECT count(*) AS rows_in, count(*) AS rows_out, 0 AS dropped FROM s_raw.t;\n"
)


def write(tmp_path: Path, step_sql: str, checks: list[str] | None = None) -> Path:
    (tmp_path / "setup.sql").write_text(SETUP)
    (tmp_path / "good.sql").write_text(GOOD)
    (tmp_path / "step.sql").write_text(step_sql)
    doc = {
        "name": "s",
        "folders": {"landing": str(tmp_path / "land"), "reference": str(tmp_path), "warehouse": str(tmp_path / "w.db")},
        "schemas": ["s_raw"],
        "setup": "setup.sql",
        "steps": [{"name": "good", "sql": "good.sql"}, {"name": "mine", "sql": "step.sql", "depends_on": ["good"]}],
        "checks": checks or [],
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path / "s.yaml"


@pytest.mark.parametrize("name", ["orders", "trips"])
def test_shipped_pipelines_validate_clean(name: str) -> None:
    reports = validate_spec(load_pipeline(default_pipelines_dir() / f"{name}.yaml"))
    assert [r for r in reports if r.status != "ok"] == []
    assert len(reports) == 1 + len(load_pipeline(default_pipelines_dir() / f"{name}.yaml").steps)


@pytest.mark.parametrize(
    ("sql", "line", "message"),
    [
        ("-- a comment\n\nSELECT amont AS rows_in, 1 AS rows_out\nFROM s_raw.t;\n", 3, 'column "amont" not found'),
        ("SELECT 1 AS rows_in,\n  1 AS rows_out\nFROM s_raw.nope;\n", 3, "nope"),
        (
            "SELECT 1 AS a;\nCOPY (SELECT 1) TO 'x.csv';\nSELECT 1 AS rows_in, 1 AS rows_out;\n",
            2,
            "may not write files",
        ),
        ("SELECT 1;\n\nDELETE FROM gold.daily_revenue;\n", 3, "may not write gold.daily_revenue"),
    ],
)
def test_sql_problems_name_the_file_and_line(tmp_path: Path, sql: str, line: int, message: str) -> None:
    reports = {r.step: r for r in validate_spec(load_pipeline(write(tmp_path, sql)))}
    assert reports["good"].status == "ok" and reports["good"].metrics == ("rows_in", "rows_out", "dropped")
    bad = reports["mine"]
    assert bad.status == "error" and bad.where == f"{tmp_path / 'step.sql'}:{line}" and message in bad.message, bad


@pytest.mark.parametrize(
    ("sql", "checks", "message"),
    [
        ("SELECT 1 AS rows_in;", [], "no rows_out column"),
        ("SELECT 1 AS rows_in, 1 AS rows_out FROM range(2);", [], "one row of metrics"),
        ("SELECT 1 AS rows_in, 1 AS rows_out;", ["mine.rows_in == good.dropped + mine.kept"], "no metric 'kept'"),
    ],
)
def test_metrics_contract_and_check_names(tmp_path: Path, sql: str, checks: list[str], message: str) -> None:
    reports = {r.step: r for r in validate_spec(load_pipeline(write(tmp_path, sql, checks)))}
    assert reports["mine"].status == "error" and message in reports["mine"].message, reports["mine"]


def test_cli_validate_exits_0_or_2(tmp_path: Path) -> None:
    ok = write(tmp_path, "SELECT 1 AS rows_in, 1 AS rows_out;")
    run = [sys.executable, "-m", "foss_supervisor", "pipeline", "validate"]
    out = subprocess.run([*run, str(ok)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "0 problem(s)" in out.stdout, out.stdout + out.stderr
    bad = write(tmp_path, "SELECT missing AS rows_in, 1 AS rows_out;")
    out = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and f"{tmp_path / 'step.sql'}:1" in out.stdout and "1 problem(s)" in out.stderr
