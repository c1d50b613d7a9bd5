"""Errors in the author's terms (issue 18, failure 4): an error of a ``kind: quality`` block names the YAML file,
the line, the block and the rule or test at fault (not ``<sql>:10``), in ``pipeline validate`` and in a run;
one root cause is one problem (the steps after it are not checked, not counted as more problems)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from helpers.pipeline import QUALITY_RULES, RunnerFactory, dedupe_pipeline, quality_pipeline, two_step_pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.worker.sandbox import Access
from foss_supervisor.pipeline.worker.sqlrun import SqlFailed, run_statements
from foss_supervisor.pipeline.worker.validate import validate_spec

#: every rule kind and a test, each pointed at a column the source does not have
BROKEN = {
    "not_null": "not_null",
    "unique": "unique",
    "accepted_values": {"accepted_values": ["a"]},
    "accepted_range": {"accepted_range": {"min_value": 0}},
    "pattern": {"pattern": "^x"},
    "relationships": {"relationships": {"to": "q_ref.zones", "field": "zone"}},
}
MISSING = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(
    lambda c: c not in {"id", "kind", "amount", "code", "zone", "lim", "reasons"} and not c.startswith("_")
)


def with_downstream(path: Path) -> Path:
    """The pipeline at ``path`` with a SQL step ``totals`` reading the quality step's valid table."""
    (path.parent / "totals.sql").write_text(
        "CREATE OR REPLACE TABLE q_silver.totals AS SELECT count(*) AS n FROM q_silver.ok;\n"
        "SELECT count(*) AS rows_in, count(*) AS rows_out FROM q_silver.ok;\n"
    )
    doc = yaml.safe_load(path.read_text())
    doc["steps"].append({"name": "totals", "sql": "totals.sql", "depends_on": ["check"]})
    path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    return path


def yaml_line(path: Path, pattern: str) -> int:
    """The first line of ``path`` matching ``pattern`` (1-based), read from the text itself."""
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if re.search(pattern, text):
            return number
    raise AssertionError(f"{pattern!r} not in {path}")


def broken_rules(column: str, kind: str, position: int) -> tuple[dict[str, Any], str, str]:
    """QUALITY_RULES with one rule or test on ``column`` (absent from the source) at ``position``; returns the
    rules, the expected key (as the error spells it) and what it names."""
    rules = copy.deepcopy(QUALITY_RULES)
    if kind == "test":
        tests = rules["tests"]
        tests.insert(min(position, len(tests)), {"name": f"t_{column}", "expression": f"{column} > 0"})
        index = tests.index(next(t for t in tests if t["name"] == f"t_{column}"))
        return rules, f"steps.check.params.tests[{index}].expression", f"test t_{column}"
    listed = [r for r in rules["columns"]["id"]]
    rules["columns"] = {**rules["columns"], column: [BROKEN[kind]]}
    rules["columns"]["id"] = listed
    # named as the author wrote the rule (issue 18: not by its index, ``[0]``), at the item's own line
    return rules, f"steps.check.params.columns.{column}.{kind}", f"rule {column}:{kind}"


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(column=MISSING, kind=st.sampled_from([*BROKEN, "test"]), position=st.integers(0, 3), data=st.data())
def test_a_broken_rule_or_test_is_one_problem_named_by_its_yaml_line(
    tmp_path_factory: Any, column: str, kind: str, position: int, data: st.DataObject
) -> None:
    tmp_path = tmp_path_factory.mktemp("q")
    ws = {"landing": tmp_path / "landing", "reference": tmp_path / "ref", "db": tmp_path / "w.duckdb"}
    ws["reference"].mkdir()
    rules, key, what = broken_rules(column, kind, position)
    path = with_downstream(quality_pipeline(tmp_path, ws, rules))
    reports = {r.step: r for r in validate_spec(load_pipeline(path))}
    check = reports["check"]
    line = yaml_line(path, rf"expression: {column} > 0" if kind == "test" else rf"^\s+{column}:")
    line += 0 if kind == "test" else 1  # the rule is the list item under the column
    assert check.status == "error" and check.where == f"{path}:{line}", (check, path.read_text())
    assert check.message.startswith(f"{key} ({what}): "), check.message
    assert "<sql>" not in check.message and 'Values list "s"' not in check.message
    # the step reading what the broken one makes is a follow-on: not a second problem
    assert reports["totals"].status == "not_checked", reports["totals"]
    assert reports["totals"].message == "not checked: it runs after the error of step check"
    assert [r.step for r in reports.values() if r.status == "error"] == ["check"]


async def test_a_run_names_the_yaml_line_of_the_broken_rule(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    rules, key, what = broken_rules("flight_date", "not_null", 0)
    path = with_downstream(quality_pipeline(tmp_path, workspace, rules))
    runner = await runners.open([load_pipeline(path)], workspace["state"])
    (workspace["landing"] / "b.csv").write_text("id,kind,amount,code,zone,lim\n1,a,1,AB,Z1,5\n")
    rec = await asyncio.wait_for(runner.run("q"), 60)
    assert rec.status is RunStatus.FAILED
    check = rec.step("check")
    line = yaml_line(path, r"^\s+flight_date:") + 1
    assert check.state is StepState.FAILED and check.error is not None
    assert check.error.startswith(f"sql_error: {path}:{line}: {key} ({what}): Binder Error: "), check.error
    assert check.attempts == 1  # a mistake in the YAML is not retried as if it were transient
    assert rec.step("totals").state is StepState.UPSTREAM_FAILED
    assert rec.error is not None and rec.error.startswith("step check failed"), rec.error


# ------------------------------------------------------------------ quarantine keeps what arrived

PARSED_SETUP = """
CREATE SCHEMA IF NOT EXISTS q_ref; CREATE SCHEMA IF NOT EXISTS q_silver; CREATE SCHEMA IF NOT EXISTS q_bronze;
CREATE OR REPLACE TABLE q_ref.zones AS SELECT * FROM read_csv(getvariable('reference_dir') || '/zones.csv');
CREATE TABLE IF NOT EXISTS q_bronze.raw (
    _row_id BIGINT NOT NULL, _batch_id VARCHAR NOT NULL, _source_file VARCHAR NOT NULL,
    _source_sha256 VARCHAR NOT NULL, _source_line BIGINT NOT NULL, _ingested_at TIMESTAMPTZ NOT NULL,
    _raw_line VARCHAR, _parse_error VARCHAR, id VARCHAR, kind VARCHAR, amount VARCHAR, code VARCHAR,
    zone VARCHAR, lim VARCHAR
);
CREATE OR REPLACE VIEW q_silver.parsed AS
SELECT _row_id, _source_line, _parse_error, nullif(trim(id), '') AS id, try_cast(amount AS DOUBLE) AS amount
FROM q_bronze.raw;
"""
#: text DuckDB reads as a number although it holds no digit
_NUMBER_WORDS = {f"{sign}{word}" for sign in ("", "+", "-") for word in ("inf", "infinity", "nan")}
NOT_A_NUMBER = st.text(st.characters(blacklist_categories=["Cs", "Nd", "Cc", "Zl", "Zp"]), max_size=40).filter(
    lambda v: v.strip().lower() not in _NUMBER_WORDS
)


def parsed_pipeline(tmp_path: Path, ws: dict[str, Path]) -> Path:
    """Pipeline ``q`` whose quality block checks a typed view over bronze and names bronze as ``raw``."""
    rules = {
        "source": "q_silver.parsed",
        "valid": "q_silver.ok",
        "rejected": "q_silver.bad_rejected",
        "raw": "q_bronze.raw",
        "unparsed": {"column": "_parse_error", "reason": "malformed_line"},
        "columns": {"amount": [{"not_null": {"name": "invalid_amount"}}]},
    }
    path = quality_pipeline(tmp_path, ws, rules, thresholds=[])
    (tmp_path / "setup.sql").write_text(PARSED_SETUP)
    return path


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(values=st.lists(NOT_A_NUMBER, min_size=1, max_size=12))
def test_quarantined_rows_keep_the_raw_value_that_failed_and_the_raw_line(
    tmp_path_factory: Any, values: list[str]
) -> None:
    """A row a typed view made NULL keeps, in ``_raw_values``, its bronze row: the text that failed as it
    arrived (quotes, spaces, any script), and a line ingest could not split keeps ``_raw_line``."""
    tmp_path = tmp_path_factory.mktemp("raw")
    ws = {
        "landing": tmp_path / "landing",
        "reference": tmp_path / "ref",
        "db": tmp_path / "w.duckdb",
        "state": tmp_path / "state",
    }
    ws["landing"].mkdir()
    ws["reference"].mkdir()
    spec = load_pipeline(parsed_pipeline(tmp_path, ws))
    lines = ["id,kind,amount,code,zone,lim", "good,a,5,AB,Z1,1"]
    lines += [f'r{i},a,"{v.replace(chr(34), chr(34) * 2)}",AB,Z1,1' for i, v in enumerate(values)]
    lines.append('broken,"a,1')  # a stray quote: ingest keeps the line whole
    (ws["landing"] / "b.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    async def scenario() -> list[tuple[Any, ...]]:
        factory = RunnerFactory()
        try:
            runner = await factory.open([spec], ws["state"])
            rec = await asyncio.wait_for(runner.run("q"), 60)
            assert rec.status is RunStatus.SUCCEEDED, rec.to_dict()
            assert rec.step("check").metrics["valid"] == 1
            found = await runner.client.query(
                "SELECT id, amount, reasons, _raw_values->>'amount', _raw_values->>'_raw_line',"
                " CAST(_raw_values->>'_source_line' AS BIGINT) FROM q_silver.bad_rejected ORDER BY _source_line"
            )
            return [tuple(r) for r in found.rows]
        finally:
            await factory.close()

    rows = asyncio.run(scenario())
    assert rows[:-1] == [(f"r{i}", None, ["invalid_amount"], v, None, i + 3) for i, v in enumerate(values)], rows
    assert rows[-1] == (None, None, ["malformed_line"], None, 'broken,"a,1', len(values) + 3)


# ------------------------------------------------------------------ deduplicate blocks

#: each declaration of a deduplicate block, what a mistake in it is named, and how to make that mistake
DEDUPE_KEYS = {
    "source": ("source table", lambda missing: f"d_bronze.{missing}"),
    "key": ("key columns", lambda missing: ["id", missing]),
    "order_by": ("order_by columns", lambda missing: [missing]),
    "row_id": ("row_id column", lambda missing: missing),
}


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(param=st.sampled_from(sorted(DEDUPE_KEYS)), missing=MISSING.filter(lambda c: c not in {"grp", "ts", "v"}))
def test_a_broken_deduplicate_declaration_is_named_by_its_yaml_line(
    tmp_path_factory: Any, param: str, missing: str
) -> None:
    tmp_path = tmp_path_factory.mktemp("d")
    ws = {"landing": tmp_path / "landing", "reference": tmp_path / "ref", "db": tmp_path / "w.duckdb"}
    ws["reference"].mkdir()
    what, wrong = DEDUPE_KEYS[param]
    path = dedupe_pipeline(tmp_path, ws, **{param: wrong(missing)})
    report = {r.step: r for r in validate_spec(load_pipeline(path))}["dedupe"]
    line = yaml_line(path, rf"^\s+{param}:")
    assert report.status == "error" and report.where == f"{path}:{line}", (report, path.read_text())
    assert report.message.startswith(f"steps.dedupe.params.{param} ({what}): "), report.message
    assert missing in report.message and "<sql>" not in report.message


# ------------------------------------------------------------------ SQL files: the file's line, the step's YAML line

#: statements that run; each may span lines (its text split at spaces)
GOOD_STATEMENTS = [
    "CREATE OR REPLACE TABLE main.ok AS SELECT 1 AS v",
    "INSERT INTO main.ok SELECT 2",
    "SELECT count(*) AS n FROM main.ok",
]
#: (failing statement as lines, the index of the line DuckDB's error points at; None: it names no line, so the
#: statement's first line is the one meant)
FAILING = {
    "missing table": (["SELECT count(*)", "FROM main.nowhere_at_all"], 1),
    "bad column": (["SELECT v,", "  no_such_column", "FROM (SELECT 1 AS v)"], 1),
    "conversion": (["INSERT INTO main.ok", "SELECT CAST(s AS INTEGER)", "FROM (SELECT 'abc' AS s)"], 1),
    "constraint on data": (["INSERT INTO main.nn", "SELECT NULL"], None),
    "syntax": (["SELECT 1 AS a", "FROM (SELECT 1) WHERE"], 1),
}
GAPS = st.lists(st.sampled_from(["", "-- a comment", "  ", "-- two; semicolons; here"]), max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    before=st.lists(st.tuples(st.sampled_from(GOOD_STATEMENTS), GAPS, st.integers(1, 3)), max_size=4),
    failing=st.sampled_from(sorted(FAILING)),
    gap=GAPS,
    after=st.booleans(),
)
def test_an_error_of_a_sql_file_names_the_line_the_author_wrote(
    before: list[tuple[str, list[str], int]], failing: str, gap: list[str], after: bool
) -> None:
    """For any place of the failing statement in the file (statements before it over any number of lines,
    comments and blank lines between), the one loop (sqlrun.py) names the file and the author's line of the
    fault (the line DuckDB points at, else the statement's first line), then the step and its YAML line."""
    lines: list[str] = []
    for statement, comments, parts in before:
        lines += comments
        words = statement.split(" ")
        cut = [len(words) * k // parts for k in range(parts + 1)]
        lines += [" ".join(words[a:b]) for a, b in itertools.pairwise(cut) if words[a:b]]
        lines[-1] += ";"
    lines += gap
    text, pointed = FAILING[failing]
    first = len(lines) + 1
    lines += [*text[:-1], text[-1] + ";"]
    if after:
        lines += ["SELECT 1 AS rows_in, 1 AS rows_out;"]
    expected = first + (pointed or 0)
    if failing == "syntax":  # a syntax error stops the whole file before any statement runs
        expected = first + 1
    sql = "\n".join(lines) + "\n"
    source = {"file": "/p/step.sql", "owner": "steps.mine (/p/p.yaml:7)"}
    con = duckdb.connect(":memory:")
    try:
        con.execute("CREATE TABLE main.nn (v INTEGER NOT NULL); CREATE TABLE main.ok AS SELECT 1 AS v")
        with pytest.raises(SqlFailed) as failed:
            run_statements(con.cursor(), sql, source, Access("p", frozenset({"main"}), frozenset()))
    finally:
        con.close()
    assert failed.value.where == f"/p/step.sql:{expected}", (failed.value, sql)
    assert failed.value.text.startswith("steps.mine (/p/p.yaml:7): "), failed.value.text
    assert "\n" not in failed.value.text


def _yaml_line(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


RUNTIME = {
    # a conversion of the data: DuckDB's LINE 2 of the INSERT at line 4
    "conversion": (
        "-- header\n\nCREATE OR REPLACE TABLE s_raw.v AS SELECT 'abc' AS s;\n"
        "INSERT INTO s_raw.t\nSELECT CAST(s AS INTEGER), 1 FROM s_raw.v;\nSELECT 1 AS rows_in, 1 AS rows_out;\n",
        [],
        "sql_error: {sql}:5: steps.mine ({yaml}:{step}): Conversion Error: ",
    ),
    # a constraint the data breaks (DuckDB names no line): the INSERT's first line of code
    "constraint": (
        "CREATE OR REPLACE TABLE s_raw.nn (v INTEGER NOT NULL);\n-- a NULL\nINSERT INTO s_raw.nn\n  SELECT NULL;\n"
        "SELECT 1 AS rows_in, 1 AS rows_out;\n",
        [],
        "sql_error: {sql}:3: steps.mine ({yaml}:{step}): Constraint Error: ",
    ),
    # a table missing at run time (dropped by the statement before): DuckDB's LINE 2 of the statement at line 3
    "missing table": (
        "DROP TABLE IF EXISTS s_raw.total;\n\nSELECT count(*) AS rows_in,\n  count(*) AS rows_out FROM s_raw.total;\n",
        [],
        "sql_error: {sql}:4: steps.mine ({yaml}:{step}): Catalog Error: ",
    ),
    "no rows_out": (
        "-- metrics\nSELECT 1 AS rows_in,\n  2 AS rows_outx;\n",
        [],
        "step_error: {sql}:2: steps.mine ({yaml}:{step}): the metrics SELECT has no numeric rows_out column",
    ),
    "check names no metric": (
        "SELECT 1 AS rows_in, 1 AS rows_out;\n",
        ["mine.rows_in == mine.kept"],
        "check_failed: {yaml}:{check}: checks[0]: ",
    ),
}


@pytest.mark.parametrize("case", sorted(RUNTIME))
async def test_a_run_names_the_sql_file_line_and_the_step(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory, case: str
) -> None:
    sql, checks, expected = RUNTIME[case]
    path = two_step_pipeline(tmp_path, sql, checks)
    runner = await runners.open([load_pipeline(path)], workspace["state"])
    rec = await asyncio.wait_for(runner.run("s"), 60)
    mine = rec.step("mine")
    assert rec.status is RunStatus.FAILED and mine.state is StepState.FAILED, rec.to_dict()
    step = _yaml_line(path, "sql: step.sql")  # the line naming its SQL file
    check = _yaml_line(path, checks[0]) if checks else 0
    prefix = expected.format(sql=tmp_path / "step.sql", yaml=path, step=step, check=check)
    assert mine.error is not None and mine.error.startswith(prefix), (mine.error, prefix)
    assert mine.attempts == 1  # the author's mistake is not retried as if it were transient


async def test_an_error_of_the_setup_sql_names_its_file_line_and_the_setup_key(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """The setup's error names setup.sql and its line (not ``<sql>:N``) and the YAML line of ``setup:``, in
    validate and in a run alike."""
    path = two_step_pipeline(tmp_path, "SELECT 1 AS rows_in, 1 AS rows_out;\n")
    setup = tmp_path / "setup.sql"
    setup.write_text(setup.read_text() + "\n-- the mistake\nCREATE TABLE s_raw.bad AS\n  SELECT * FROM s_raw.nope;\n")
    prefix = f"{setup}:6: setup ({path}:{_yaml_line(path, 'setup: setup.sql')}): Catalog Error: "
    report = validate_spec(load_pipeline(path))[0]
    assert report.step == "_setup" and report.status == "error", report
    assert f"{report.where}: {report.message}".startswith(prefix), (report, prefix)
    runner = await runners.open([load_pipeline(path)], workspace["state"])
    rec = await asyncio.wait_for(runner.run("s"), 60)
    assert rec.status is RunStatus.FAILED and rec.error is not None and prefix in rec.error, (rec.error, prefix)


@pytest.mark.parametrize("raw", ["q_bronze.nowhere", "q_silver.missing_raw"])
def test_a_wrong_raw_table_is_named_by_the_line_of_raw(tmp_path: Path, raw: str) -> None:
    """Not by the block's line: the ``raw:`` key's own (newcomer)."""
    ws = {"landing": tmp_path / "landing", "reference": tmp_path / "ref", "db": tmp_path / "w.duckdb"}
    ws["reference"].mkdir()
    path = quality_pipeline(tmp_path, ws, {**QUALITY_RULES, "raw": raw})
    check = {r.step: r for r in validate_spec(load_pipeline(path))}["check"]
    line = yaml_line(path, r"^\s+raw:")
    assert check.status == "error" and check.where == f"{path}:{line}", check
    assert check.message.startswith("steps.check.params.raw (raw table): Catalog Error: "), check.message
