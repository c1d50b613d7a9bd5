"""``pipeline validate NAME``: a pipeline's SQL parsed and bound by DuckDB against its own schemas, no data.

Why run it rather than only parse it: most mistakes of a SQL step (a misspelt column, a table of another
pipeline, a metrics SELECT that returns two rows, a check naming a metric nobody reports) only show when
DuckDB binds the statement against real tables. So validate builds the pipeline's schemas in a throwaway
in-memory database (its ledger, then its setup SQL) and runs every SQL step in order inside the same
sandbox as the worker, with an empty landing folder: every table exists and is empty, so each statement is
bound and executed in milliseconds and nothing of the warehouse is touched (the daemon may keep running).
Python steps are imported, not run. Reference files are read (they are small by design).

Each problem is told as a run tells it, through the same loop (sqlrun.py) and words (origins.sql_failure):
the SQL file and the line of the fault (the statement's first line in the file plus DuckDB's own ``LINE n``)
with the step (or ``setup``) and its YAML line; a problem of a generated block (``kind: quality``,
``kind: deduplicate``) names the YAML file, the line, the block and the rule or test at fault instead. A
check naming a metric no step reports, and a ``publish`` table no step makes or a ``publish_partition_by``
column its table lacks (``_publish``), name their YAML line. One root cause is one problem: a step that runs
after a step with an error is reported ``not_checked``, not as a second error.
"""

from __future__ import annotations

import dataclasses
import inspect
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.pipeline.engine.spec import PipelineSpec, StepKind, StepSpec, evaluate_check
from foss_supervisor.pipeline.errors import QueryRefusedError
from foss_supervisor.pipeline.origins import sql_failure
from foss_supervisor.pipeline.worker.callables import load_callable
from foss_supervisor.pipeline.worker.ingest import bronze_ddl, check_bronze
from foss_supervisor.pipeline.worker.ledger import ledger_ddl
from foss_supervisor.pipeline.worker.publishtypes import published_columns
from foss_supervisor.pipeline.worker.sandbox import Access
from foss_supervisor.pipeline.worker.snapshots import layer_tables, quoted_table, refuse_inexact
from foss_supervisor.pipeline.worker.sqlrun import SqlFailed, run_statements

__all__ = ["StepReport", "validate_spec"]

#: a step after one with an error is not checked (one root cause is one problem)
_FOLLOWS = "not checked: it runs after the error of step"
#: the shipped ingest step creates its bronze table itself; validate does the same so later steps bind
_INGEST = "foss_supervisor.pipeline.worker.ingest:ingest"
#: shipped Python steps whose tables validate makes itself (the ledger, the bronze table)
_MADE_HERE = frozenset({_INGEST, "foss_supervisor.pipeline.worker.ledger:discover"})


@dataclasses.dataclass(frozen=True, slots=True)
class StepReport:
    """The verdict on one step (``_setup`` for the setup SQL): ok, error or not_checked, with where and why."""

    step: str
    status: str  # ok | error | not_checked
    where: str = ""  # file:line of the statement at fault
    message: str = ""
    metrics: tuple[str, ...] = ()


def _run_sql(
    cur: Any, sql: str, source: dict[str, Any], access: Access
) -> tuple[int, list[Any], list[tuple[Any, ...]]]:
    """Run each statement of ``sql`` as the worker does (sqlrun.py); on failure raise ValueError('file:line',
    message) in the author's terms (origins.sql_failure)."""
    try:
        return run_statements(cur, sql, source, access)
    except SqlFailed as exc:
        raise ValueError(exc.where, exc.text) from None


def _python_step(spec: PipelineSpec, step: StepSpec) -> StepReport:
    try:
        func = load_callable(str(step.callable))
    except BaseException as exc:  # user code at import: it may raise anything, SystemExit too
        why = f"{type(exc).__name__}: {exc}" if isinstance(exc, SystemExit | KeyboardInterrupt) else str(exc)
        return StepReport(
            step.name, "error", spec.at(f"steps.{step.name}.name"), f"cannot import {step.callable}: {why}"
        )
    if not callable(func):
        return StepReport(step.name, "error", spec.at(f"steps.{step.name}.name"), f"{step.callable} is not callable")
    return StepReport(step.name, "ok", message="python step: imported, not run")


def _ingest_table(con: Any, spec: PipelineSpec, step: StepSpec) -> StepReport:
    """The shipped ingest's bronze table made as the step makes it (or the one ``setup.sql`` declares checked
    as the step checks it, ingest.check_bronze): a declaration that cannot make it is an error of the step."""
    table, columns = str(step.params.get("table")), [str(c) for c in step.params.get("columns") or []]
    try:
        con.execute(bronze_ddl(table, columns))
        check_bronze(con, table, columns)
    except (ValueError, duckdb.Error) as exc:
        why = str(exc).split("\n", 1)[0]
        return StepReport(step.name, "error", spec.at(f"steps.{step.name}.name"), f"its bronze table {table}: {why}")
    return StepReport(step.name, "ok", message="python step: imported, not run")


def validate_spec(spec: PipelineSpec) -> list[StepReport]:
    """Check ``spec``'s setup and steps in dependency order; one report per step, ``_setup`` first."""
    access = Access(spec.name, spec.schemas, spec.inputs)
    reports: list[StepReport] = []
    metrics: dict[str, dict[str, Any]] = {}
    roots: dict[str, str] = {}  # a step with an error, or after one -> the step whose error it is
    with tempfile.TemporaryDirectory(prefix="validate-landing-") as empty:
        variables = {
            "run_id": "validate",
            "pipeline": spec.name,
            "mode": "run",
            "step": "_setup",
            "landing_dir": str(Path(empty).resolve()),
            "reference_dir": str(spec.folders.reference),
        }
        con = duckdb.connect(
            ":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        current = "_setup"
        try:
            con.execute("SET GLOBAL TimeZone = 'UTC'")
            dirs = [str(Path(d).resolve()).rstrip("/") + "/" for d in (empty, spec.folders.reference)]
            con.execute("SET GLOBAL allowed_directories = ?", [dirs])
            con.execute("SET GLOBAL enable_external_access = false")
            con.execute("SET GLOBAL lock_configuration = true")
            setup = con.cursor()
            for name, value in variables.items():
                setup.execute(f"SET VARIABLE {name} = ?", [value])
            setup.execute(ledger_ddl(spec.ledger))
            if spec.setup_sql:
                try:
                    _run_sql(setup, spec.setup_sql, spec.source(None), access)
                    reports.append(StepReport("_setup", "ok"))
                except ValueError as exc:
                    reports.append(StepReport("_setup", "error", *exc.args))
                    return reports
            setup.close()
            for step in spec.steps:
                current = step.name
                upstream = [roots[d] for d in step.depends_on if d in roots]
                if upstream:  # what it reads was never made: its errors would only repeat that one
                    roots[step.name] = upstream[0]
                    reports.append(StepReport(step.name, "not_checked", message=f"{_FOLLOWS} {upstream[0]}"))
                    continue
                if step.kind is StepKind.PYTHON:
                    reports.append(_python_step(spec, step))
                    if step.callable == _INGEST and reports[-1].status == "ok":
                        reports[-1] = _ingest_table(con, spec, step)
                    if reports[-1].status == "error":
                        roots[step.name] = step.name
                    continue
                cur = con.cursor()  # as in the worker: a cursor per step, so temp tables stay in their step
                try:
                    for name, value in {**variables, "step": step.name}.items():
                        cur.execute(f"SET VARIABLE {name} = ?", [value])
                    reports.append(_sql_step(cur, spec, step, access, metrics))
                finally:
                    cur.close()
                error = reports[-1]
                maker = _python_upstream(spec, step) if "does not exist" in error.message else None
                if error.status == "error" and maker:  # a table a Python step makes: not made here
                    why = f"reads what Python step {maker} makes (not run here): bound when it has run"
                    reports[-1] = StepReport(step.name, "not_checked", error.where, why)
                    continue
                if reports[-1].status == "error":
                    roots[step.name] = step.name
            reports += _checks(spec, metrics)
            if spec.publish and not roots:
                current = "_publish"
                report = _publish(con, spec)
                types = _published_types(con, spec) if report.status != "error" else report
                reports.append(types if types.status == "error" else report)
            if not roots and spec.snapshot_keep:
                current = "_snapshot"
                reports.append(_snapshot_types(con, spec))
            if not roots:
                current = "_keys"
                reports += _keys(con, spec, unmade=[r.step for r in reports if r.where and r.status == "ok"])
        except Exception as exc:  # what no check foresaw: an error of the step it met, the rest not checked
            why = (str(exc).splitlines() or [""])[0]
            reports.append(
                StepReport(current, "error", str(spec.path), f"cannot be checked: {type(exc).__name__}: {why}")
            )
        finally:
            con.close()
    return reports


def _python_upstream(spec: PipelineSpec, step: StepSpec) -> str | None:
    """The first Python step ``step`` depends on (directly or not) other than the shipped ingest, whose
    tables validate cannot make (it imports Python steps, never runs them); None when there is none."""
    steps = {s.name: s for s in spec.steps}
    seen: set[str] = set()
    todo = list(step.depends_on)
    while todo:
        name = todo.pop(0)
        if name in seen or name not in steps:
            continue
        seen.add(name)
        up = steps[name]
        if up.kind is StepKind.PYTHON and up.callable not in _MADE_HERE:
            return name
        todo.extend(up.depends_on)
    return None


def _table_columns(con: Any, table: str) -> list[str]:
    """The columns of ``table`` (``schema.table``) in order, as the steps left it; empty when there is none."""
    schema, _, name = table.partition(".")
    query = (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?"
        " ORDER BY ordinal_position"
    )
    return [str(r[0]) for r in con.execute(query, [schema, name]).fetchall()]


def _publish(con: Any, spec: PipelineSpec) -> StepReport:
    """``publish``: each table named exists once the steps ran; ``publish_partition_by``: each column is one
    of its table's (``_publish``, at the key's YAML line). A table no SQL step makes is an error, unless a
    Python step validate does not run may make it (then ``not_checked``): one whose module's text names it."""

    def absent(key: str, table: str) -> StepReport:
        made_by_python = _python_maker(spec, table)
        if made_by_python is not None:
            why = f"{table} is not made by a SQL step (Python step {made_by_python} may make it: not run here)"
            return StepReport("_publish", "not_checked", spec.at(key), why)
        return StepReport("_publish", "error", spec.at(key), f"{key}: no step makes table {table}")

    for i, name in enumerate(spec.publish):
        if "." in name and not _table_columns(con, name):
            return absent(f"publish[{i}]", name)
    for table, columns in spec.publish_partition_by:  # grouped by table: the key's own line
        found = set(_table_columns(con, table))
        if not found:
            return absent("publish_partition_by", table)
        missing = [c for c in columns if c not in found]
        if missing:
            message = f"publish_partition_by: {table} has no column {missing[0]!r}"
            return StepReport("_publish", "error", spec.at("publish_partition_by"), message)
    return StepReport("_publish", "ok")


def _python_maker(spec: PipelineSpec, table: str) -> str | None:
    """The first Python step (not a shipped one whose tables validate makes) whose module's source names
    ``table`` (its name after the schema, in any case), or that cannot be read: it may make the table."""
    for step in spec.steps:
        if step.kind is not StepKind.PYTHON or step.callable in _MADE_HERE:
            continue
        try:
            source = Path(inspect.getsourcefile(load_callable(str(step.callable))) or "")
            text = source.read_text(encoding="utf-8", errors="replace").lower()
        except BaseException:  # user code at import may raise anything: then it may make anything
            return step.name
        if table.rpartition(".")[2].lower() in text:
            return step.name
    return None


def _published_types(con: Any, spec: PipelineSpec) -> StepReport:
    """Each column of each table the steps made that ``publish:`` names passes the type gate of the publish
    format (publishtypes.py): a type it refuses is an error (``_publish``). Values are not seen here (the tables
    are empty): a ``HUGEINT`` too wide for ``DECIMAL(38,0)`` only fails the publish itself."""
    tables = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
    ).fetchall()
    for schema, name in tables:
        if schema not in spec.publish and f"{schema}.{name}" not in spec.publish:
            continue
        relation = con.sql(f'SELECT * FROM "{schema}"."{name}"')  # noqa: S608 (names DuckDB listed, quoted)
        try:
            published_columns(f"{schema}.{name}", relation.columns, relation.types, spec.publish_format)
        except QueryRefusedError as exc:
            return StepReport("_publish", "error", spec.at("publish"), f"publish: {exc}")
    return StepReport("_publish", "ok")


def _snapshot_types(con: Any, spec: PipelineSpec) -> StepReport:
    """Each column of each table the steps made in the schemas a run's snapshot keeps passes the snapshot's
    type check (snapshots.refuse_inexact): a type a Parquet snapshot cannot keep exactly (``HUGEINT``,
    what ``sum()`` of a ``BIGINT`` gives) is an error of ``_snapshot`` at ``snapshot_keep``'s line, as every run
    would end succeeded_with_warnings without a snapshot (no diff, no rollback)."""
    for table in layer_tables(con, spec.layer_schemas):
        try:
            refuse_inexact(table, con, quoted_table(table))
        except QueryRefusedError as exc:
            return StepReport("_snapshot", "error", spec.at("snapshot_keep"), f"snapshot: {exc}")
    return StepReport("_snapshot", "ok")


def _keys(con: Any, spec: PipelineSpec, unmade: list[str]) -> list[StepReport]:
    """Each table key a step declares (``keys``, engine/tablekeys.py) against its table as the steps left it: a column
    the table does not have is an error of ``_keys`` at the YAML line of that column (``where``: ``file:LINE:
    steps.<name>.keys.<table>[i]``); a table no step made here is ``not_checked`` when a Python step or one of
    ``unmade`` (steps whose SQL stopped at their landing files) may make it in a run, else an error."""
    makers = unmade + [s.name for s in spec.steps if s.kind is StepKind.PYTHON and s.callable not in _MADE_HERE]
    out = []
    for step in spec.steps:
        for table, columns in step.keys:
            dotted = f"steps.{step.name}.keys.{table}"
            have = _table_columns(con, table)
            missing = [(i, c) for i, c in enumerate(columns) if c not in have]
            if have and not missing:
                continue
            i = missing[0][0] if have else None
            where = f"{spec.at(dotted + (f'[{i}]' if i is not None else ''))}: {dotted}"
            if have:
                why = f"{table} has no column {missing[0][1]!r} (its columns: {', '.join(have)})"
                out.append(StepReport("_keys", "error", where + f"[{i}]", why))
            elif makers:
                why = f"{table} is not made here: step {makers[0]} may make it in a run (not run here)"
                out.append(StepReport("_keys", "not_checked", where, why))
            else:
                out.append(
                    StepReport("_keys", "error", where, f"no step makes {table}: it is not there after them all")
                )
    return out


def _sql_step(
    con: Any, spec: PipelineSpec, step: StepSpec, access: Access, metrics: dict[str, dict[str, Any]]
) -> StepReport:
    con.execute("BEGIN TRANSACTION")
    try:
        line, description, rows = _run_sql(con, str(step.sql), spec.source(step), access)
    except ValueError as exc:
        con.execute("ROLLBACK")
        where, message = exc.args
        if "No files found that match the pattern" in message:
            return StepReport(step.name, "ok", where, "reads landing files: bound when files exist (no input now)")
        inputs = [i for i in spec.inputs if i.split(".", 1)[0] in message.lower() or i in message.lower()]
        if inputs and "does not exist" in message:
            return StepReport(step.name, "not_checked", where, f"reads input {inputs[0]} of another pipeline")
        return StepReport(step.name, "error", where, message)
    con.execute("COMMIT")
    names = tuple(d[0] for d in description)
    missing = [m for m in ("rows_in", "rows_out") if m not in names]
    why = f"the metrics SELECT has no {', '.join(missing)} column" if missing else ""
    if len(rows) != 1 or missing:  # at the last statement, as the worker says it (steps.run_sql)
        why = why if len(rows) == 1 else "the last statement must be a SELECT returning one row of metrics"
        return StepReport(step.name, "error", *sql_failure(str(step.sql), line, why, spec.source(step)))
    metrics[step.name] = dict(zip(names, rows[0], strict=True))
    return StepReport(step.name, "ok", metrics=names)


def _checks(spec: PipelineSpec, metrics: dict[str, dict[str, Any]]) -> list[StepReport]:
    """``checks:`` whose steps all reported metrics here, evaluated: one ``_checks`` error for each that names
    a metric no step reports, at the check's own YAML line (the steps themselves are fine)."""
    problems = []
    for i, check in enumerate(spec.checks):
        if not check.steps <= metrics.keys():
            continue  # a Python step's metrics are not known here
        try:
            evaluate_check(check, metrics)
        except KeyError as exc:
            problems.append(StepReport("_checks", "error", spec.at(f"checks[{i}]"), f"checks[{i}]: {exc.args[0]}"))
    return problems
