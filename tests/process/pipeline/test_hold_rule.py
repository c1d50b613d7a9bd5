"""The ledger rule of held files (issue 18, a tester's find): which failures hold files, which files a batch
is (those the failing step has not checked), what holding and releasing change, and a ledger made before
files could be held. In-process DuckDB on the ledger's own functions; the runner and a real worker are
covered in tests/process/pipeline/test_held_files.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest

from foss_supervisor.pipeline.engine.spec import Folders
from foss_supervisor.pipeline.worker.context import StepContext
from foss_supervisor.pipeline.worker.hold import hold_files, holds_files, release_files, unchecked_files
from foss_supervisor.pipeline.worker.ingest import bronze_ddl
from foss_supervisor.pipeline.worker.ledger import ledger_ddl, pending_files, record_commit, set_file_status

CROSSED = "error threshold of the step (steps.validate.thresholds[0]): pass rate 20.0 % is below min_pass_rate 50 %"
NOW = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
ERROR = [{"severity": "error", "min_pass_rate": 0.5, "max_rejected": None, "reason": None, "where": "x"}]
WARN = [{"severity": "warn", "min_pass_rate": 0.5, "max_rejected": None, "reason": None, "where": "x"}]


@pytest.mark.parametrize(
    ("kind", "message", "mode", "partition", "holds"),
    [
        ("quality_failed", CROSSED, "run", None, True),
        (
            "quality_failed",
            "error threshold of rule id:not_null (x): 3 rows rejected, more than max_rejected 0",
            "run",
            None,
            True,
        ),
        # a threshold that names a metric the step lacks is the pipeline's fault, not the data's
        (
            "quality_failed",
            "threshold at x needs the metrics valid and rejected; the step reports neither",
            "run",
            None,
            False,
        ),
        ("sql_error", "CatalogException: no such table", "run", None, False),
        ("cancelled", "step cancelled", "run", None, False),
        ("transient", "IOException: disk", "run", None, False),
        ("check_failed", "row accounting check failed", "run", None, False),
        ("quality_failed", CROSSED, "replay", None, False),
        ("quality_failed", CROSSED, "run", "2026-12-05", False),  # a backfill's partition run
    ],
)
def test_only_an_error_threshold_crossed_in_a_whole_run_holds_files(
    kind: str, message: str, mode: str, partition: str | None, holds: bool
) -> None:
    assert holds_files(kind, message, mode, partition) is holds


def _ledger() -> Any:
    cur = duckdb.connect()
    cur.execute(ledger_ddl("meta"))
    cur.execute(bronze_ddl("bronze.raw", ["x"]))
    return cur


def _land(cur: Any, sha: str, run: str, lines: int, *, ingested: bool = True) -> None:
    """A file discovered and (when ``ingested``) ingested by ``run`` with ``lines`` bronze rows."""
    cur.execute(
        "INSERT INTO meta.files (sha256, path, format, reader, size_bytes, mtime_ns, status, discovered_run,"
        " discovered_at, checked_by) VALUES (?, ?, 'csv', 'duckdb', 1, 1, 'pending', ?, ?, [])",
        [sha, f"/landing/{sha}.csv", run, NOW],
    )
    if not ingested:
        return
    base = cur.execute("SELECT coalesce(max(_row_id), 0) FROM bronze.raw").fetchone()[0]
    for n in range(lines):
        cur.execute(
            "INSERT INTO bronze.raw VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, 'v')",
            [base + n + 1, run, f"/landing/{sha}.csv", sha, n + 2, NOW],
        )
    set_file_status(cur, "meta", sha, "ingested", ingested_run=run, ingested_at=NOW, lines=lines)


def _commit(cur: Any, run: str, step: str, thresholds: list[dict[str, Any]], **extra: Any) -> None:
    message = {"run_id": run, "attempt": 1, "step": {"name": step, "thresholds": thresholds}, **extra}
    record_commit(cur, message, {"metrics": {}, "warnings": []})


def _ctx(cur: Any, run: str, params: dict[str, Any]) -> StepContext:
    folders = Folders(landing=Path("/landing"), reference=Path("/r"), warehouse=Path("/w"), reports=Path("/p"))
    return StepContext(cur, run, "p", "_hold", "run", folders, params, {}, lambda level, text: None)


def _files(cur: Any) -> dict[str, tuple[Any, ...]]:
    rows = cur.execute("SELECT sha256, status, held_run, ingested_run, lines FROM meta.files").fetchall()
    return {r[0]: r[1:] for r in rows}


def test_the_batch_is_the_files_the_failing_step_has_not_checked_and_a_release_makes_them_pending() -> None:
    cur = _ledger()
    _land(cur, "a", "r1", 3)
    _commit(cur, "r1", "validate", ERROR)  # validate checked a
    _land(cur, "b", "r2", 2)  # r2 failed before validate (an SQL error): b is not checked yet
    _commit(cur, "r2", "validate", WARN)  # a step with warn thresholds only marks nothing
    _land(cur, "c", "r3", 4)
    _land(cur, "d", "r3", 0, ingested=False)  # pending: not in bronze, not part of a batch
    assert [r[0] for r in unchecked_files(cur, "meta", "validate")] == ["b", "c"]
    assert unchecked_files(cur, "meta", "other") != []  # each step checks for itself

    result = hold_files(
        _ctx(cur, "r3", {"step": "validate", "reason": CROSSED, "tables": ["bronze.raw", "bronze.none"]})
    )
    held = [["/landing/b.csv", 2], ["/landing/c.csv", 4]]
    # own_rows: c's, which r3 itself ingested (b's are r2's): its INGESTED leaves them out (runstate.py)
    assert result == {"rows_in": 2, "rows_out": 6, "files": 2, "held": held, "own_rows": 4}
    assert _files(cur) == {
        "a": ("ingested", None, "r1", 3),
        "b": ("held", "r3", None, 2),
        "c": ("held", "r3", None, 4),
        "d": ("pending", None, None, None),
    }
    assert cur.execute("SELECT DISTINCT _source_sha256 FROM bronze.raw").fetchall() == [("a",)]
    note = cur.execute("SELECT note FROM meta.files WHERE sha256 = 'b'").fetchone()[0]
    assert note == f"held by step validate of run r3: {CROSSED}"
    assert [r[0] for r in pending_files(cur, "meta")] == ["d"]  # held files are not ingested
    assert unchecked_files(cur, "meta", "validate") == []  # nor part of the next batch

    released = release_files(_ctx(cur, "release", {"sha256": ["c", "a", "zz"]}))  # only held files move
    stale = [["/landing/c.csv", "c", "missing"]]  # no such landing file here: the next run cannot ingest it
    assert released == {"rows_in": 1, "rows_out": 1, "files": 1, "stale": stale}
    assert [r[0] for r in pending_files(cur, "meta")] == ["c", "d"]
    note = cur.execute("SELECT note, checked_by FROM meta.files WHERE sha256 = 'c'").fetchone()
    assert note[0].startswith("released at ") and note[0].endswith("(held by run r3)") and note[1] == []


def test_any_commit_of_the_step_marks_what_it_checked_and_an_ingest_again_unmarks_it() -> None:
    cur = _ledger()
    _land(cur, "a", "r1", 1)
    _land(cur, "b", "r1", 1)
    _commit(cur, "r2", "validate", ERROR, mode="replay")  # a replay checks the new bronze rows too (quality.py)
    assert unchecked_files(cur, "meta", "validate") == []
    set_file_status(cur, "meta", "a", "ingested", ingested_run="r3", checked_by=[])  # a backfill ingests a again
    assert [r[0] for r in unchecked_files(cur, "meta", "validate")] == ["a"]
    _commit(cur, "r3", "validate", ERROR, partition="2026-12-05")  # as does a partition's run
    assert unchecked_files(cur, "meta", "validate") == []


def test_a_ledger_made_before_files_could_be_held_holds_none_of_its_old_files() -> None:
    cur = duckdb.connect()
    cur.execute(
        "CREATE SCHEMA meta; CREATE TABLE meta.files (sha256 VARCHAR NOT NULL, path VARCHAR NOT NULL,"
        " format VARCHAR NOT NULL, reader VARCHAR NOT NULL, size_bytes BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,"
        " status VARCHAR NOT NULL, discovered_run VARCHAR NOT NULL, discovered_at TIMESTAMPTZ NOT NULL,"
        " ingested_run VARCHAR, ingested_at TIMESTAMPTZ, lines BIGINT, note VARCHAR)"
    )
    for sha, status in (("old", "ingested"), ("waiting", "pending"), ("gone", "missing")):
        cur.execute(
            "INSERT INTO meta.files (sha256, path, format, reader, size_bytes, mtime_ns, status, discovered_run,"
            " discovered_at) VALUES (?, ?, 'csv', 'duckdb', 1, 1, ?, 'r0', ?)",
            [sha, f"/l/{sha}.csv", status, NOW],
        )
    for _ in range(2):  # every run's setup: idempotent
        cur.execute(ledger_ddl("meta"))
    checked = dict(cur.execute("SELECT sha256, checked_by FROM meta.files").fetchall())
    assert checked == {"old": ["*"], "waiting": [], "gone": ["*"]}
    assert unchecked_files(cur, "meta", "validate") == []  # its bronze rows may be in silver: never held
    set_file_status(cur, "meta", "waiting", "ingested", ingested_run="r1")
    assert [r[0] for r in unchecked_files(cur, "meta", "validate")] == ["waiting"]
