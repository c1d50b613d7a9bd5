"""Backfill through a real daemon and its CLI: ``pipeline backfill`` (dry run, range, ``--only-failed``,
``--parallel`` refused with its reason), ``pipeline partitions``, ``pipeline status`` and the run history,
the owner token the mutating command needs over HTTP, and the pipeline page's backfill form and partition list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import DaemonHandle, command, get, viewer_headers, wait_for
from helpers.browser import Watched, login_cookie, serious_violations
from helpers.partitions import FIRST_DAY, day_rows, sales_yaml, write_day

DAYS = 10
BAD = (2, 7)
TEST_STEPS = Path(__file__).resolve().parents[1] / "process" / "pipeline" / "pipeline_test_steps.py"


def _day(i: int) -> str:
    return FIRST_DAY.fromordinal(FIRST_DAY.toordinal() + i).isoformat()


@pytest.fixture
def sales_daemon(daemon: DaemonHandle, tmp_path: Path) -> DaemonHandle:
    landing = tmp_path / "sales_landing"
    landing.mkdir()
    for i in range(DAYS):
        write_day(landing, i, bad=i in BAD)
    home = tmp_path / "sales_home"
    home.mkdir()
    yaml_path = sales_yaml(home, landing, home, home / "unused.duckdb")
    daemon.write_config(f"pipelines:\n  sales: {{file: {yaml_path}, landing: {landing}, on_new_files: false}}\n")
    daemon.start()
    daemon.landing = landing  # type: ignore[attr-defined]
    return daemon


def test_backfill_from_the_cli_reruns_only_the_failed_days(sales_daemon: DaemonHandle) -> None:
    d = sales_daemon
    dry = d.cli("pipeline", "backfill", "sales", "--from", "2026-01-02", "--to", "2026-01-04", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would run 3 partition(s): 2026-01-02, 2026-01-03, 2026-01-04" in dry.stdout + dry.stderr
    assert d.call("pipeline_runs", name="sales") == []  # a dry run runs nothing

    refused = d.cli("pipeline", "backfill", "sales", "--parallel", "2")
    assert refused.returncode != 0 and "one writer" in refused.stdout + refused.stderr
    bad_bound = d.cli("pipeline", "backfill", "sales", "--from", "January")
    assert bad_bound.returncode != 0 and "is not a date" in bad_bound.stdout + bad_bound.stderr

    first = d.cli("pipeline", "backfill", "sales", "--wait", timeout_s=300)
    assert first.returncode == 1, first.stdout + first.stderr  # two days failed
    assert f"{DAYS - len(BAD)} of {DAYS} ok" in first.stdout + first.stderr
    listed = json.loads(d.cli("pipeline", "partitions", "sales", "--json").stdout)
    assert listed["counts"] == {"succeeded": DAYS - len(BAD), "failed": len(BAD)}
    failed = [p["partition"] for p in listed["partitions"] if p["status"] == "failed"]
    assert failed == [_day(i) for i in BAD]
    assert {p["failed_step"] for p in listed["partitions"] if p["status"] == "failed"} == {"silver"}
    page = get(d.port, "/pipeline-management").text
    not_ok = page.split("data-partitions-not-ok>", 1)[1].split("</p>", 1)[0]
    assert [day for day in (_day(i) for i in range(DAYS)) if f">{day}</a>" in not_ok] == failed
    status = d.cli("pipeline", "status")
    assert f"partitions by day: {len(BAD)} failed, {DAYS - len(BAD)} succeeded" in status.stdout

    def alert() -> dict[str, object] | None:  # the backfill's last day succeeded: the failed days still hold it
        return next((i for i in d.call("alerts")["open"] if i["key"] == "pipeline:sales:failed"), None)

    incident = wait_for(alert, 30, "the pipeline_failed alert for the failed days")
    assert any(day in str(incident["summary"]) for day in failed)  # as of its first notice: the first day failed

    for i in BAD:
        write_day(d.landing, i)  # type: ignore[attr-defined]
    again = d.cli("pipeline", "backfill", "sales", "--only-failed", "--wait", timeout_s=300)
    assert again.returncode == 0, again.stdout + again.stderr
    runs = d.call("pipeline_runs", name="sales", limit=100)
    assert len(runs) == DAYS + len(BAD)
    assert sorted(r["partition"] for r in runs[: len(BAD)]) == failed
    assert {r["reason"] for r in runs} == {"backfill"} and {r["status"] for r in runs[: len(BAD)]} == {"succeeded"}
    rows = d.call("query", sql="SELECT strftime(day, '%Y-%m-%d'), count(*) FROM sales_silver.sales GROUP BY 1")
    assert dict(map(tuple, rows["rows"])) == {_day(i): day_rows(i) for i in range(DAYS)}
    listed_runs = d.cli("pipeline", "runs", "sales").stdout.splitlines()
    assert listed_runs[1].split()[3:5] == ["backfill", runs[0]["partition"]]
    run_page = get(d.port, f"/runs/{runs[0]['run_id']}")
    assert run_page.status == 200 and f"<code data-partition>{runs[0]['partition']}</code>" in run_page.text
    table = d.cli("pipeline", "partitions", "sales")
    assert f"{DAYS} partitions: {DAYS} succeeded" in table.stdout
    wait_for(lambda: alert() is None, 30, "the alert resolved once every day succeeded")


def test_backfill_over_http_needs_the_owner_and_the_page_lists_partitions(sales_daemon: DaemonHandle) -> None:
    d = sales_daemon
    viewer = command(d.port, "pipeline_backfill", {"name": "sales", "dry_run": True}, viewer_headers(d.port))
    assert viewer.status == 403
    owner = command(d.port, "pipeline_backfill", {"name": "sales", "start": "2026-01-09", "dry_run": True})
    assert owner.status == 200 and owner.json()["result"]["partitions"] == [_day(8), _day(9)]
    done = command(d.port, "pipeline_backfill", {"name": "sales", "start": "2026-01-09", "wait": True}, timeout_s=120)
    assert done.status == 200
    assert done.json()["result"]["backfill"]["done"] == dict.fromkeys([_day(8), _day(9)], "succeeded")
    spec = get(d.port, "/api/v1/openapi.json").json()
    ops = [op for path in spec["paths"].values() for op in path.values() if isinstance(op, dict)]
    backfill = next(op for op in ops if op.get("operationId") == "command_pipeline_backfill")
    assert backfill["x-mutating"] is True
    reply = get(d.port, "/pipeline-management")
    assert reply.status == 200
    page = reply.text
    assert 'data-command="pipeline_backfill"' in page
    assert f'data-partition="{_day(9)}"' in page and f'data-partition="{_day(0)}"' in page


def test_the_backfill_form_and_the_graph_in_chromium(sales_daemon: DaemonHandle, browser: Any) -> None:
    d = sales_daemon
    w = Watched(browser, 1280, session=d)
    try:
        w.page.goto(f"http://127.0.0.1:{d.port}/pipeline-management")
        form = w.page.locator('form[data-command="pipeline_backfill"]')
        form.locator('input[name="start"]').fill("2026-01-09")
        form.locator('input[name="dry_run"]').check()
        form.locator('button[type="submit"]').click()
        message = w.page.locator("#action-message")
        message.filter(has_text="would run 2 partition(s)").wait_for(timeout=15_000)
        assert d.call("pipeline_runs", name="sales") == []
        form.locator('input[name="dry_run"]').uncheck()
        form.locator('button[type="submit"]').click()
        # the live region refreshes as the runs end: both days listed as succeeded, the rest never run
        for day in (_day(8), _day(9)):
            w.page.locator(f'tr[data-partition="{day}"] .badge.s-succeeded').wait_for(timeout=60_000)
        assert w.page.locator('tr[data-partition="2026-01-01"] .badge.s-never_run').count() == 1
        w.page.goto(f"http://127.0.0.1:{d.port}/graph?pipeline=sales")
        node = w.page.locator('#graph-canvas g.node[data-id="pipeline:sales"] text.graph-sub')
        node.wait_for(timeout=15_000)
        assert "partitions 2 succeeded" in node.text_content()
        assert w.errors == [], w.errors
    finally:
        w.close()
    axe = browser.new_context(bypass_csp=True)  # for axe's injected script only
    try:
        axe.add_cookies([login_cookie(d)])
        page = axe.new_page()
        page.goto(f"http://127.0.0.1:{d.port}/pipeline-management")
        page.locator(f'tr[data-partition="{_day(9)}"]').wait_for(timeout=10_000)
        assert serious_violations(page) == []  # the form's fields are labelled, the list is a real table
    finally:
        axe.close()
    graph = get(d.port, "/api/v1/graph?pipeline=sales").json()
    [pipeline] = [n for n in graph["nodes"] if n["id"] == "pipeline:sales"]
    assert pipeline["detail"]["partitions"] == {"key": "day", "counts": {"succeeded": 2}}


def test_a_backfill_in_progress_holds_the_pipeline_and_cancel_stops_it(daemon: DaemonHandle, tmp_path: Path) -> None:
    landing, home = tmp_path / "sales_landing", tmp_path / "sales_home"
    landing.mkdir()
    home.mkdir()
    for i in range(3):
        write_day(landing, i)
    held = {"started": str(tmp_path / "started"), "release": str(tmp_path / "release")}
    hold = {"name": "hold", "kind": "python", "callable": f"{TEST_STEPS}:gated", "params": held}
    hold["depends_on"] = ["silver"]
    yaml_path = sales_yaml(home, landing, home, home / "unused.duckdb", extra_steps=[hold])
    daemon.write_config(f"pipelines:\n  sales: {{file: {yaml_path}, landing: {landing}, on_new_files: false}}\n")
    daemon.start()
    started = daemon.cli("pipeline", "backfill", "sales")
    assert started.returncode == 0, started.stdout + started.stderr
    wait_for(lambda: Path(held["started"]).exists(), 60, "the first partition's held step")
    busy = [("pipeline", "run", "sales"), ("pipeline", "backfill", "sales"), ("pipeline", "reset", "sales", "--yes")]
    for argv in busy:
        refused = daemon.cli(*argv)
        assert refused.returncode != 0 and "running" in refused.stdout + refused.stderr, argv
    cancel = daemon.cli("pipeline", "cancel", "sales")
    assert cancel.returncode == 0 and "cancelled" in cancel.stdout + cancel.stderr
    Path(held["release"]).write_text("go")  # the held step sees no release before the cancel; after it, none runs
    backfill = wait_for(
        lambda: (b := daemon.call("pipeline_partitions", name="sales")["backfill"])["finished_at"] and b,
        60,
        "the backfill to end",
    )
    runs = daemon.call("pipeline_runs", name="sales")
    assert [(r["partition"], r["status"]) for r in runs] == [(_day(0), "cancelled")]
    assert backfill["done"] == {} and backfill["partitions"] == [_day(i) for i in range(3)]
    again = daemon.cli("pipeline", "backfill", "sales", "--only-failed", "--dry-run")
    assert f"would run 1 partition(s): {_day(0)}" in again.stdout + again.stderr  # a cancelled day counts as failed
