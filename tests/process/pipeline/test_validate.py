"""``pipeline validate``: SQL bound by DuckDB against the pipeline's own (empty) schemas, problems located (the CLI:
tests/e2e/test_pipeline_validate_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.pipeline import two_step_pipeline

from foss_supervisor.pipeline.engine.spec import default_pipelines_dir, load_pipeline
from foss_supervisor.pipeline.worker.validate import validate_spec


@pytest.mark.parametrize("name", ["orders", "trips"])
def test_shipped_pipelines_validate_clean(name: str) -> None:
    spec = load_pipeline(default_pipelines_dir() / f"{name}.yaml")
    reports = validate_spec(spec)
    assert [r for r in reports if r.status != "ok"] == []
    # _setup, the steps, _publish, _snapshot
    assert len(reports) == 1 + len(spec.steps) + (1 if spec.publish else 0) + (1 if spec.snapshot_keep else 0)


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
        ("SELECT 1 AS a\nSELECT 1 AS rows_in, 1 AS rows_out;\n", 2, "syntax error"),  # one parse of the file
    ],
)
def test_sql_problems_name_the_file_and_line(tmp_path: Path, sql: str, line: int, message: str) -> None:
    reports = {r.step: r for r in validate_spec(load_pipeline(two_step_pipeline(tmp_path, sql)))}
    assert reports["good"].status == "ok" and reports["good"].metrics == ("rows_in", "rows_out", "dropped")
    bad = reports["mine"]
    assert bad.status == "error" and bad.where == f"{tmp_path / 'step.sql'}:{line}" and message in bad.message, bad


@pytest.mark.parametrize(
    ("sql", "checks", "message"),
    [
        ("SELECT 1 AS rows_in;", [], "no rows_out column"),
        ("SELECT 1 AS rows_in, 1 AS rows_out FROM range(2);", [], "one row of metrics"),
    ],
)
def test_metrics_contract(tmp_path: Path, sql: str, checks: list[str], message: str) -> None:
    reports = {r.step: r for r in validate_spec(load_pipeline(two_step_pipeline(tmp_path, sql, checks)))}
    assert reports["mine"].status == "error" and message in reports["mine"].message, reports["mine"]


def test_a_check_naming_a_metric_no_step_reports_is_an_error_of_the_check_at_its_line(tmp_path: Path) -> None:
    """Not of the step it names (newcomer: it printed `None:` and marked the steps after it not checked)."""
    check = "mine.rows_in == good.dropped + mine.kept"
    path = two_step_pipeline(tmp_path, "SELECT 1 AS rows_in, 1 AS rows_out;", [check])
    reports = {r.step: r for r in validate_spec(load_pipeline(path))}
    assert reports["mine"].status == "ok", reports["mine"]
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if check in text)
    bad = reports["_checks"]
    assert bad.status == "error" and bad.where == f"{path}:{line}", bad
    assert bad.message.startswith("checks[0]: ") and "no metric 'kept'" in bad.message, bad


@pytest.mark.parametrize("after_python", [True, False])
def test_a_table_a_python_step_makes_is_not_checked_and_a_missing_one_is_an_error(
    tmp_path: Path, after_python: bool
) -> None:
    """validate imports Python steps and never runs them, so what one makes does not exist here: a SQL step
    after one that reads a missing table is ``not_checked`` (naming the Python step), not an error a reload
    would refuse; the same SQL with no Python step before it is an error."""
    path = two_step_pipeline(tmp_path, "SELECT count(*) AS rows_in, count(*) AS rows_out FROM s_raw.made;\n")
    (tmp_path / "make.py").write_text(
        "def make(ctx):\n    ctx.cursor.execute('CREATE TABLE s_raw.made AS SELECT 1 AS id')\n"
        "    return {'rows_in': 0, 'rows_out': 1}\n"
    )
    doc = yaml.safe_load(path.read_text())
    if after_python:
        doc["steps"].insert(1, {"name": "made", "kind": "python", "callable": "make.py:make", "depends_on": ["good"]})
        doc["steps"][2]["depends_on"] = ["made"]
    path.write_text(yaml.safe_dump(doc))
    mine = {r.step: r for r in validate_spec(load_pipeline(path))}["mine"]
    if after_python:
        assert mine.status == "not_checked" and "Python step made" in mine.message, mine
    else:
        assert mine.status == "error" and "made" in mine.message, mine


BOOKKEEPING = (
    "_row_id BIGINT, _batch_id VARCHAR, _source_file VARCHAR, _source_sha256 VARCHAR, _source_line BIGINT,"
    " _ingested_at TIMESTAMPTZ, _raw_line VARCHAR, _parse_error VARCHAR"
)


@pytest.mark.parametrize(
    ("declared", "lacking"),
    [
        (f"{BOOKKEEPING}, event_id VARCHAR, amount VARCHAR", ""),
        (f"{BOOKKEEPING.upper()}, Event_Id VARCHAR, AMOUNT VARCHAR", ""),  # DuckDB binds names without case
        (f"{BOOKKEEPING.replace(', _raw_line VARCHAR', '')}, event_id VARCHAR", "_raw_line, amount"),
        # a column of another type (an INTEGER amount would cast or fail in a run): refused the same way
        (f"{BOOKKEEPING}, event_id VARCHAR, amount INTEGER", "type: amount is INTEGER, not VARCHAR"),
    ],
)
def test_a_declared_bronze_is_checked_as_ingest_checks_it(tmp_path: Path, declared: str, lacking: str) -> None:
    (tmp_path / "setup.sql").write_text(
        f"CREATE SCHEMA IF NOT EXISTS ev_bronze;\nCREATE TABLE ev_bronze.raw ({declared});\n"
    )
    (tmp_path / "ev.yaml").write_text(
        "name: ev\nfolders: {landing: land, reference: ., warehouse: w.duckdb}\nschemas: [ev_meta, ev_bronze]\n"
        "setup: setup.sql\nsteps:\n"
        "  - {name: discover, kind: python, callable: 'foss_supervisor.pipeline.worker.ledger:discover'}\n"
        "  - {name: ingest, kind: python, callable: 'foss_supervisor.pipeline.worker.ingest:ingest',"
        " depends_on: [discover], params: {table: ev_bronze.raw, columns: [event_id, amount]}}\n"
    )
    ingest = {r.step: r for r in validate_spec(load_pipeline(tmp_path / "ev.yaml"))}["ingest"]
    if not lacking:
        assert ingest.status == "ok", ingest
    else:
        assert ingest.status == "error" and ingest.where == f"{tmp_path / 'ev.yaml'}:7", ingest
        if lacking.startswith("type: "):
            assert f"of another type than ingest writes: {lacking[6:]}" in ingest.message
        else:
            assert f"lacks the column(s) ingest writes: {lacking}" in ingest.message


@pytest.mark.parametrize(
    ("keys", "at", "status", "message"),
    [
        ({"s_raw.t": ["id"], "s_raw.total": ["x"]}, None, "", ""),
        ({"s_raw.t": ["id", "amont"]}, "- amont", "error", "s_raw.t has no column 'amont' (its columns: id, amount)"),
        ({"s_raw.t": ["ID"]}, "- ID", "error", "has no column 'ID'"),  # spelled as the table spells it
        ({"s_raw.nope": ["id"]}, "s_raw.nope:", "error", "no step makes s_raw.nope"),
    ],
)
def test_a_declared_key_naming_a_column_its_table_lacks_is_an_error_at_its_yaml_line(
    tmp_path: Path, keys: dict[str, list[str]], at: str | None, status: str, message: str
) -> None:
    """The tables as the steps left them: each key column one of its table's, else an error of ``_keys`` at
    the line of the column (or of the table no step makes); the steps themselves are fine."""
    path = two_step_pipeline(tmp_path, "SELECT 1 AS rows_in, 1 AS rows_out;")
    doc = yaml.safe_load(path.read_text())
    doc["steps"][1]["keys"] = keys
    path.write_text(yaml.safe_dump(doc))
    reports = validate_spec(load_pipeline(path))
    assert all(r.status == "ok" for r in reports if r.step != "_keys"), reports
    found = [r for r in reports if r.step == "_keys"]
    if at is None:
        assert found == []
        return
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.strip() == at)
    table = next(iter(keys))
    column = f"[{len(keys[table]) - 1}]" if status == "error" and "no column" in message else ""
    assert [(r.status, r.where) for r in found] == [(status, f"{path}:{line}: steps.mine.keys.{table}{column}")]
    assert message in found[0].message, found


def test_a_declared_key_of_a_table_a_python_step_makes_is_not_checked(tmp_path: Path) -> None:
    path = two_step_pipeline(tmp_path, "SELECT 1 AS rows_in, 1 AS rows_out;")
    (tmp_path / "make.py").write_text("def make(ctx):\n    return {'rows_in': 0, 'rows_out': 0}\n")
    doc = yaml.safe_load(path.read_text())
    doc["steps"].append({"name": "made", "kind": "python", "callable": "make.py:make", "keys": {"s_raw.m": ["id"]}})
    path.write_text(yaml.safe_dump(doc))
    found = [r for r in validate_spec(load_pipeline(path)) if r.step == "_keys"]
    assert [r.status for r in found] == ["not_checked"] and "step made may make it" in found[0].message, found


@pytest.mark.parametrize(
    ("total", "keep", "told"),
    [
        ("sum(CAST(range AS BIGINT))", None, "CAST it AS DECIMAL(38,0)"),  # the tester's: sum() of BIGINT
        ("{'t': CAST(1 AS UHUGEINT)}", None, "CAST it AS DECIMAL(38,0)"),  # nested
        ("CAST(TIMETZ '10:00:00+02' AS TIMETZ)", None, "CAST it AS TIMESTAMPTZ or VARCHAR"),
        ("CAST(sum(CAST(range AS BIGINT)) AS DECIMAL(38,0))", None, None),  # the fix
        ("sum(CAST(range AS BIGINT))", 0, None),  # no snapshots kept: nothing to refuse
    ],
)
def test_a_table_its_snapshot_cannot_keep_exactly_is_an_error_of_validate(
    tmp_path: Path, total: str, keep: int | None, told: str | None
) -> None:
    """A tester's find: a gold ``sum()`` of BIGINT (a HUGEINT) made every run end succeeded_with_warnings
    without a snapshot (no diff, no rollback) while ``validate`` said nothing."""
    sql = f"CREATE OR REPLACE TABLE s_raw.sums AS SELECT {total} AS total FROM range(3);\n"
    path = two_step_pipeline(tmp_path, sql + "SELECT 1 AS rows_in, 1 AS rows_out;\n")
    if keep is not None:
        path.write_text(path.read_text() + f"snapshot_keep: {keep}\n")
    reports = {r.step: r for r in validate_spec(load_pipeline(path))}
    assert reports["mine"].status == "ok", reports["mine"]
    if keep == 0:
        assert "_snapshot" not in reports
    elif told is None:
        assert reports["_snapshot"].status == "ok", reports["_snapshot"]
    else:
        bad = reports["_snapshot"]
        assert bad.status == "error" and "s_raw.sums.total is" in bad.message and told in bad.message, bad
