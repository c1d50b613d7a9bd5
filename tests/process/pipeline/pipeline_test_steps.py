"""Python steps used by the tests (imported inside the worker through PYTHONPATH)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import duckdb

from foss_supervisor.pipeline.worker.context import StepContext


def flaky(ctx: StepContext) -> Mapping[str, int | float]:
    """Write a row, then fail with a transient DuckDB error on the first attempt only."""
    marker = Path(ctx.params["marker"])
    ctx.cursor.execute("CREATE TABLE IF NOT EXISTS main.t (run VARCHAR, attempt INTEGER)")
    first = not marker.exists()
    ctx.cursor.execute("INSERT INTO main.t VALUES (?, ?)", [ctx.run_id, 1 if first else 2])
    if first:
        marker.write_text("failed once")
        raise duckdb.TransactionException("simulated write-write conflict")
    ctx.log("second attempt goes through")
    return {"rows_in": 1, "rows_out": 1}


def broken(ctx: StepContext) -> Mapping[str, int | float]:
    """A step with a bug: fails the same way every time (not retried)."""
    ctx.cursor.execute("CREATE TABLE IF NOT EXISTS main.t (run VARCHAR, attempt INTEGER)")
    ctx.cursor.execute("INSERT INTO main.t VALUES ('broken', 0)")
    raise ValueError("bug in step")


def warns(ctx: StepContext) -> Mapping[str, int | float]:
    """Succeeds with a warning."""
    ctx.warn("3 rows looked odd")
    return {"rows_in": 3, "rows_out": 3}


def copy_into(ctx: StepContext) -> Mapping[str, int | float]:
    """Try to write a file through the step's cursor (the sandbox must refuse it)."""
    ctx.cursor.execute(f"COPY (SELECT 1 AS x) TO '{ctx.params['path']}'")
    return {"rows_in": 0, "rows_out": 0}


def _held_until(release: Path) -> None:
    """Return once the test has created ``release``; TimeoutError after 60 s."""
    deadline = time.monotonic() + 60.0
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.02)


def gated(ctx: StepContext) -> Mapping[str, int | float]:
    """Say it started (a file), then hold the step until the test creates the release file (60 s at most)."""
    Path(ctx.params["started"]).write_text("running")
    _held_until(Path(ctx.params["release"]))
    ctx.cursor.execute("CREATE OR REPLACE TABLE main.gated AS SELECT 1 AS x")
    return {"rows_in": 1, "rows_out": 1}


def writes_then_gated(ctx: StepContext) -> Mapping[str, int | float]:
    """Write a row, say so (a file), then hold in Python (no statement running) until released (60 s at most)."""
    ctx.cursor.execute("CREATE TABLE IF NOT EXISTS main.g AS SELECT 1 AS x")
    Path(ctx.params["started"]).write_text("wrote")
    _held_until(Path(ctx.params["release"]))
    return {"rows_in": 1, "rows_out": 1}
