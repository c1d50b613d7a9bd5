"""What a step attempt runs in the worker besides its transaction: the SQL of a SQL step, the row-accounting
checks of its metrics, the classification of DuckDB's errors (no input, transient), and :class:`CommitGate`,
which decides once whether a step's transaction commits or a cancel rolls it back.

The transaction, threads and replies are the worker's (see server.py).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.pipeline.engine.spec import Folders, evaluate_check, parse_check
from foss_supervisor.pipeline.origins import sql_failure
from foss_supervisor.pipeline.thresholds import crossed
from foss_supervisor.pipeline.worker.sandbox import Access, AccessDenied
from foss_supervisor.pipeline.worker.sqlrun import SqlFailed, run_statements

__all__ = [
    "NO_FILES",
    "TRANSIENT",
    "CommitGate",
    "StepFailure",
    "check_metrics",
    "check_thresholds",
    "failure_of",
    "missing_metric",
    "no_landing_files",
    "run_sql",
]

NO_FILES = "No files found that match the pattern"
#: DuckDB errors worth a retry (a missing file is not one, see server.py)
TRANSIENT = (duckdb.TransactionException, duckdb.IOException, duckdb.OutOfMemoryException)


class StepFailure(Exception):
    """A step attempt failed; ``kind`` is one of protocol.ERROR_KINDS."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class CommitGate:
    """The one decision of a step attempt: commit, or roll back because it was cancelled.

    DuckDB's ``interrupt()`` stops only a statement that is running: a cancel that arrives between two
    statements (a Python step between queries, a SQL step between statements) would be lost and the step
    would commit. The gate keeps the cancel: every statement checks it first (:meth:`checkpoint`), and
    :meth:`begin_commit` refuses to commit once it is set. A cancel that comes after the commit began is
    refused (:meth:`cancel` returns False): the step's reply then says it succeeded, which is the truth.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._committing = False

    def cancel(self) -> bool:
        """Mark the attempt cancelled; False when its commit already began (nothing to interrupt)."""
        with self._lock:
            if self._committing:
                return False
            self._cancelled = True
            return True

    def checkpoint(self) -> None:
        """Raises StepFailure("cancelled") once the attempt was cancelled."""
        if self._cancelled:
            raise StepFailure("cancelled", "step cancelled")

    def begin_commit(self) -> None:
        """Called right before COMMIT; raises StepFailure("cancelled") (the caller rolls back) when cancelled."""
        with self._lock:
            self.checkpoint()
            self._committing = True


def run_sql(
    cursor: Any,
    step: Mapping[str, Any],
    require_metrics: bool,
    access: Access,
    checkpoint: Callable[[], None],
    folders: Folders,
) -> dict[str, Any]:
    """Run the SQL of ``step`` (its ``sql`` and ``source``, see origins.sql_failure) statement by statement,
    each checked against ``access`` and ``checkpoint`` (a cancel) first; its metrics are the one row of the
    last statement (``{}`` when not ``require_metrics``), ``rows_in`` and ``rows_out`` numbers among them.

    Raises StepFailure whose message starts with where the author wrote the fault: the SQL file and line
    of the failing statement and the step with its YAML line, or for generated SQL the YAML line of the
    declaration (origins.py). A cancel (duckdb.InterruptException), a fault worth a retry (TRANSIENT) and a
    landing pattern that matched nothing pass as DuckDB raised them (the worker tells them apart)."""
    sql, source = str(step.get("sql") or ""), dict(step.get("source") or {})
    if not sql.strip() and not require_metrics:
        return {}  # a pipeline without setup SQL: only the ledger was created
    try:
        line, description, rows = run_statements(cursor, sql, source, access, checkpoint)
    except SqlFailed as exc:
        if isinstance(exc.cause, AccessDenied):
            raise StepFailure("access_denied", str(exc)) from None
        assert isinstance(exc.cause, duckdb.Error)
        if isinstance(exc.cause, duckdb.InterruptException) or failure_of(exc.cause, folders).kind != "sql_error":
            raise exc.cause from None
        raise StepFailure("sql_error", str(exc)) from None
    if not require_metrics:
        return {}
    if not sql.strip():
        raise StepFailure("step_error", ": ".join(sql_failure(sql, 1, "SQL file holds no statement", source)))
    if len(rows) != 1:
        why = "the last statement of a SQL step must be a SELECT returning one row of metrics"
        raise StepFailure("step_error", ": ".join(sql_failure(sql, line, why, source)))
    metrics = {d[0]: v for d, v in zip(description, rows[0], strict=True)}
    for required in ("rows_in", "rows_out"):
        if not isinstance(metrics.get(required), int | float):
            why = f"the metrics SELECT has no numeric {required} column"
            raise StepFailure("step_error", ": ".join(sql_failure(sql, line, why, source)))
    return metrics


def missing_metric(step: Mapping[str, Any], required: str) -> StepFailure:
    """The failure of a step (a Python one: a SQL step's is run_sql's) whose metrics lack a number
    ``required``, naming the step and its YAML line (its ``source``'s owner) when the request gives them."""
    owner = str((step.get("source") or {}).get("owner") or "")
    return StepFailure("step_error", f"{owner + ': ' if owner else ''}step reported no numeric {required!r} metric")


def check_metrics(message: Mapping[str, Any], step_name: str, metrics: dict[str, Any]) -> None:
    """Evaluate every row-accounting check that reads this step, before COMMIT; a failure names the check's
    YAML line (``checks_at``, aligned with ``checks``, when the request gives it) and ``checks[i]``."""
    known: dict[str, Mapping[str, Any]] = dict(message.get("prior_metrics") or {})
    known[step_name] = metrics
    at = list(message.get("checks_at") or [])
    for i, text in enumerate(message.get("checks") or []):
        check = parse_check(str(text))
        if step_name not in check.steps:
            continue
        where = f"{at[i]}: checks[{i}]: " if i < len(at) else ""
        try:
            passed, detail = evaluate_check(check, known)
        except KeyError as exc:
            raise StepFailure("check_failed", f"{where}{exc.args[0]}") from None
        if passed is False:
            raise StepFailure("check_failed", f"{where}row accounting check failed: {check.text} ({detail})")


def failure_of(exc: duckdb.Error, folders: Folders) -> StepFailure:
    """What a DuckDB error of a step attempt is: no_input (its landing pattern matched nothing), transient
    (worth a retry) or sql_error."""
    text = str(exc)
    if no_landing_files(exc, folders):
        return StepFailure("no_input", text.split("\n", 1)[0])
    if isinstance(exc, TRANSIENT) and NO_FILES not in text:  # a missing file stays missing
        return StepFailure("transient", f"{type(exc).__name__}: {exc}")
    return StepFailure("sql_error", f"{type(exc).__name__}: {exc}")


def check_thresholds(message: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    """Judge the step's thresholds (thresholds.py) on its metrics, before COMMIT, in ``run`` mode: raises
    StepFailure("quality_failed") for a crossed error threshold; returns the warnings of crossed warn ones."""
    if message.get("mode", "run") != "run":
        return []  # a replay re-checks rejected rows: its pass rate says nothing about the data
    warnings: list[str] = []
    for t in (message.get("step") or {}).get("thresholds") or []:
        try:
            said = crossed(t, metrics)
        except KeyError as exc:
            raise StepFailure("quality_failed", str(exc.args[0])) from None
        if said is not None and t["severity"] == "error":
            raise StepFailure("quality_failed", said)
        warnings.extend([said] if said is not None else [])
    return warnings


def no_landing_files(exc: Exception, folders: Folders) -> bool:
    """True when DuckDB failed only because a file pattern inside the landing folder matched nothing."""
    if not isinstance(exc, duckdb.IOException):
        return False
    m = re.search(NO_FILES + r' "([^"]*)"', str(exc))
    return m is not None and Path(m[1]).parent.resolve() == folders.landing.resolve()
