"""Held files (issue 18, a tester's find): a batch below an error threshold no longer blocks every later run.

Before, the failed batch stayed in bronze unchecked, so each next run checked it again with the new files and
failed again. Now its files are held in the ledger (hold.py) with the run and the reason, later files go
through, and ``release`` makes them pending again, ingested by the next run once the rule or data is fixed.
Real worker, real DuckDB file, the shipped orders pipeline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers.pipeline import RunnerFactory, orders_spec, variant_yaml

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.pipeline.engine.runner import PipelineRunner
from foss_supervisor.pipeline.errors import PipelineError

HEADER = "order_id,customer_id,order_ts,product_id,quantity,unit_price,currency,country,status,updated_at"
STRICT = {"validate": {"thresholds": [{"severity": "error", "min_pass_rate": 0.5}], "retries": 0}}


def orders(first: int, good: int, bad: int) -> str:
    """``good`` valid order lines (ids from ``first``) and ``bad`` lines without an order id."""
    ok = [f"G{first + i},C1,2024-03-01T10:00:00Z,P001,2,10.50,USD,US,paid,2024-03-01T10:00:00Z" for i in range(good)]
    missing = [",C5,2024-03-01T10:00:00Z,P001,1,1.00,USD,US,paid,2024-03-01T10:00:00Z"] * bad
    return "\n".join([HEADER, *ok, *missing]) + "\n"


async def rows(runner: PipelineRunner, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in (await runner.client.query(sql)).rows]


async def test_a_failed_batch_is_held_later_files_go_through_and_a_release_ingests_it(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    landing = workspace["landing"]
    strict = orders_spec(workspace, yaml_path=variant_yaml(tmp_path, "strict", step_overrides=STRICT))
    runner = await runners.open([strict], workspace["state"])
    (landing / "bad.csv").write_text(orders(1, good=2, bad=8))  # a 20 % pass rate: below the error threshold
    failed = await asyncio.wait_for(runner.run("orders"), 60)
    assert failed.status is RunStatus.FAILED and failed.step("validate").state is StepState.FAILED
    assert failed.held == (str(landing / "bad.csv"),)
    assert failed.note is not None and "held 1 file(s) (10 lines)" in failed.note and "bad.csv" in failed.note
    ledger = await rows(runner, "SELECT path, status, held_run, lines, ingested_run FROM meta.files")
    assert ledger == [(str(landing / "bad.csv"), "held", failed.run_id, 10, None)]
    note = (await rows(runner, "SELECT note FROM meta.files"))[0][0]
    assert note.startswith(f"held by step validate of run {failed.run_id}: error threshold of the step"), note
    assert await rows(runner, "SELECT count(*) FROM bronze.orders_raw") == [(0,)]  # set aside, not checked again
    assert [h["name"] for h in runner.held("orders")] == ["bad.csv"]

    # a good file lands: the next run goes through without the held batch (which is not discovered again)
    (landing / "good.csv").write_text(orders(100, good=4, bad=0))
    good = await asyncio.wait_for(runner.run("orders"), 60)
    assert good.status is RunStatus.SUCCEEDED, good.to_dict()
    assert good.step("ingest").metrics["files"] == 1 and good.held == ()
    # `pipeline runs`' INGESTED: the lines each run took in that stayed in bronze; the held ones apart (tester of
    # issue 18: the failed run said 10 although bronze held none of its batch)
    assert (failed.ingested, failed.held_rows, good.ingested, good.held_rows) == (0, 10, 4, None)
    m = good.step("validate").metrics
    assert (m["rows_in"], m["valid"], m["rejected"]) == (4, 4, 0)
    assert [h["name"] for h in runner.held("orders")] == ["bad.csv"]
    # row accounting: the ledger's ingested lines are bronze's rows; the held lines are counted apart
    ledger = "SELECT sum(lines) FILTER (status = 'ingested'), sum(lines) FILTER (status = 'held') FROM meta.files"
    assert await rows(runner, ledger) == [(4, 10)]
    assert await rows(runner, "SELECT count(*) FROM bronze.orders_raw") == [(4,)]

    with pytest.raises(PipelineError, match=r"not held in orders: good.csv \(held: bad.csv\)"):
        await runner.release("orders", ["good.csv"])
    await runner.aclose()

    # the operator loosens the rule (the shipped thresholds) and releases the batch: the next run ingests it
    runner = await runners.open([orders_spec(workspace)], workspace["state"])
    assert [h["name"] for h in runner.held("orders")] == ["bad.csv"]  # read at start
    released = await runner.release("orders", every=True)
    assert released == {
        "pipeline": "orders",
        "released": [str(landing / "bad.csv")],
        "contents": 1,
        "held": [],
        "stale": [],
    }
    again = await asyncio.wait_for(runner.run("orders"), 60)
    assert again.status is RunStatus.SUCCEEDED_WITH_WARNINGS, again.to_dict()  # 20 %: below the warn threshold
    assert again.step("ingest").metrics == again.step("ingest").metrics | {"files": 1, "rows_out": 10}
    m = again.step("validate").metrics
    assert (m["rows_in"], m["valid"], m["rejected"]) == (10, 2, 8)
    # row accounting: every line of both files is in bronze once, and in silver valid or rejected once
    assert await rows(runner, "SELECT count(*), count(DISTINCT _row_id) FROM bronze.orders_raw") == [(14, 14)]
    checked = "SELECT (SELECT count(*) FROM silver.orders_valid) + (SELECT count(*) FROM silver.orders_rejected)"
    assert await rows(runner, checked) == [(14,)]
    assert await rows(runner, "SELECT DISTINCT status FROM meta.files") == [("ingested",)]
    assert runner.held("orders") == []
    assert (failed.ingested or 0) + (good.ingested or 0) + (again.ingested or 0) == 14  # adds up with bronze


async def test_a_run_failing_for_another_reason_holds_nothing_and_its_files_join_the_next_batch(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    landing = workspace["landing"]
    broken = tmp_path / "broken_reference.sql"
    broken.write_text("SELECT * FROM ref.no_such_table;\n")
    overrides = {**STRICT, "reference": {"sql": str(broken), "retries": 0}}
    spec = orders_spec(workspace, yaml_path=variant_yaml(tmp_path, "broken", step_overrides=overrides))
    runner = await runners.open([spec], workspace["state"])
    (landing / "first.csv").write_text(orders(1, good=1, bad=4))
    sql_failed = await asyncio.wait_for(runner.run("orders"), 60)
    assert sql_failed.status is RunStatus.FAILED and sql_failed.step("reference").state is StepState.FAILED
    assert sql_failed.held == () and sql_failed.note is None
    assert await rows(runner, "SELECT status FROM meta.files") == [("ingested",)]  # checked by the next run
    await runner.aclose()

    # the SQL is fixed; the next run checks first.csv with the new file, fails the threshold, holds both
    strict = orders_spec(workspace, yaml_path=variant_yaml(tmp_path, "strict", step_overrides=STRICT))
    runner = await runners.open([strict], workspace["state"])
    (landing / "second.csv").write_text(orders(10, good=1, bad=1))
    failed = await asyncio.wait_for(runner.run("orders"), 60)
    assert failed.status is RunStatus.FAILED and failed.step("validate").metrics == {}
    assert failed.held == (str(landing / "first.csv"), str(landing / "second.csv"))
    assert await rows(runner, "SELECT count(*) FROM bronze.orders_raw") == [(0,)]
    # its hold took out first.csv's 5 lines (ingested by the run before) and its own 2
    assert (sql_failed.ingested, failed.ingested, failed.held_rows) == (5, 0, 7)

    # a held file whose content changes is a new file: it is ingested; the old content stays held
    (landing / "second.csv").write_text(orders(10, good=2, bad=0))
    fixed = await asyncio.wait_for(runner.run("orders"), 60)
    assert fixed.status is RunStatus.SUCCEEDED, fixed.to_dict()
    assert fixed.step("validate").metrics["valid"] == 2
    assert sorted(h["name"] for h in runner.held("orders")) == ["first.csv", "second.csv"]
    # a release of one file by name: only it is ingested again
    await runner.release("orders", ["first.csv"])
    assert [h["name"] for h in runner.held("orders")] == ["second.csv"]


async def test_a_path_held_twice_is_listed_and_released_once_with_every_held_content(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """Issue 18 (a tester's find): a file held in two runs (re-landed with other content that failed again) was
    listed twice, ``release NAME FILE`` acted on both contents and named the path twice in its reply."""
    landing = workspace["landing"]
    bad = landing / "bad.csv"
    strict = orders_spec(workspace, yaml_path=variant_yaml(tmp_path, "strict", step_overrides=STRICT))
    runner = await runners.open([strict], workspace["state"])
    bad.write_text(orders(1, good=1, bad=9))
    first = await asyncio.wait_for(runner.run("orders"), 60)
    bad.write_text(orders(50, good=2, bad=8))  # re-landed, other content, still below the threshold
    second = await asyncio.wait_for(runner.run("orders"), 60)
    assert (first.status, second.status) == (RunStatus.FAILED, RunStatus.FAILED)
    assert first.held == second.held == (str(bad),)
    assert await rows(runner, "SELECT count(*) FROM meta.files WHERE status = 'held'") == [(2,)]
    held = runner.held("orders")
    assert [(h["path"], h["contents"], h["lines"], h["held_run"]) for h in held] == [
        (str(bad), 2, 20, second.run_id)
    ], held
    by_run = f"SELECT sha256 FROM meta.files WHERE held_run = '{second.run_id}'"
    newest = (await rows(runner, by_run))[0][0]
    assert held[0]["sha256"] == newest and len(set(held[0]["sha256s"])) == 2
    released = await runner.release("orders", ["bad.csv"])
    older = next(sha for sha in held[0]["sha256s"] if sha != newest)  # the file no longer holds it
    stale = [{"path": str(bad), "sha256": older, "why": "changed"}]
    assert released == {"pipeline": "orders", "released": [str(bad)], "contents": 2, "held": [], "stale": stale}
    assert await rows(runner, "SELECT count(*) FROM meta.files WHERE status = 'held'") == [(0,)]
    await runner.aclose()

    # with the shipped thresholds, the next run ingests the content the file holds; the older one is gone from it
    runner = await runners.open([orders_spec(workspace)], workspace["state"])
    again = await asyncio.wait_for(runner.run("orders"), 60)
    assert again.ingested == 10 and again.step("ingest").metrics["files"] == 1, again.to_dict()
    said = "bad.csv changed after discovery; its new content is ingested by this run"
    assert said in again.step("ingest").warnings, again.step("ingest").warnings
    statuses = "SELECT status, count(*) FROM meta.files GROUP BY ALL ORDER BY 1"
    assert await rows(runner, statuses) == [("changed", 1), ("ingested", 1)]


async def test_a_released_content_the_file_no_longer_holds_is_told_and_its_new_content_noted_truly(
    tmp_path: Path, workspace: dict[str, Path], runners: RunnerFactory
) -> None:
    """Tester of issue 18: junk.csv held, re-landed with other bad content, released: the release said "the next
    run ingests them" (it cannot: the file changed), and the run's note said the new content "is picked up by the
    next run" while this run took it (and held it again). A released file deleted from landing is told too."""
    landing = workspace["landing"]
    junk, gone = landing / "junk.csv", landing / "gone.csv"
    strict = orders_spec(workspace, yaml_path=variant_yaml(tmp_path, "strict", step_overrides=STRICT))
    runner = await runners.open([strict], workspace["state"])
    junk.write_text(orders(1, good=1, bad=9))
    gone.write_text(orders(20, good=1, bad=9))
    first = await asyncio.wait_for(runner.run("orders"), 60)
    assert first.status is RunStatus.FAILED and set(first.held) == {str(junk), str(gone)}, first.to_dict()
    shas = {h["name"]: h["sha256"] for h in runner.held("orders")}
    junk.write_text(orders(50, good=2, bad=8))  # re-landed (not discovered yet), other content, still bad
    gone.unlink()
    released = await runner.release("orders", every=True)
    assert sorted(released["released"]) == sorted([str(junk), str(gone)]) and released["contents"] == 2
    assert sorted(released["stale"], key=lambda s: s["path"]) == [
        {"path": str(gone), "sha256": shas["gone.csv"], "why": "missing"},
        {"path": str(junk), "sha256": shas["junk.csv"], "why": "changed"},
    ]
    again = await asyncio.wait_for(runner.run("orders"), 60)
    warnings = again.step("ingest").warnings
    assert "junk.csv changed after discovery; its new content is ingested by this run" in warnings, warnings
    assert any(w.startswith("gone.csv vanished") for w in warnings), warnings
    assert again.status is RunStatus.FAILED and again.held == (str(junk),), again.to_dict()  # it took it, held it
    assert again.step("ingest").metrics["files"] == 1 and again.held_rows == 10
