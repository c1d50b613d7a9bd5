"""Pipelines as the daemon runs them: triggers, the CLI, the query command, the pages and the report."""

from __future__ import annotations

import http.client
import itertools
import json
import shutil

import pytest
from conftest import DaemonHandle, wait_for

from foss_supervisor.errors import CommandError

PIPELINE_CONFIG = """pipelines:
  orders: {on_new_files: true, demo_data: false}
"""


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def last_run(daemon: DaemonHandle) -> dict | None:
    [orders] = daemon.call("pipelines")
    return orders["last_run"]  # type: ignore[no-any-return]


@pytest.fixture
def pipeline_daemon(daemon: DaemonHandle) -> DaemonHandle:
    daemon.write_config(PIPELINE_CONFIG, extra="warehouse: {watch_interval: 0.2s}")
    daemon.start()
    return daemon


def test_landed_files_trigger_a_run_and_cli_follows_another(pipeline_daemon: DaemonHandle) -> None:
    d = pipeline_daemon
    assert last_run(d) is None  # an empty landing folder starts nothing
    landed = d.cli("demo-data", "--orders", "3000", "--seed", "7")
    assert landed.returncode == 0, landed.stderr
    run = wait_for(lambda: d.call("pipelines")[0]["active_run"] is None and last_run(d), 60,
                   "run triggered by the landed files")  # fmt: skip
    assert run["trigger"] == "files_landed" and run["status"] == "succeeded"
    steps = {s["name"]: s for s in run["steps"]}
    assert list(steps) == ["discover", "ingest", "validate", "quarantine", "deduplicate", "standardize", "enrich",
                           "aggregate", "report"]  # fmt: skip
    assert steps["ingest"]["rows_out"] == steps["validate"]["rows_in"] > 3000  # re-sent orders and bad lines too

    again = d.cli("pipeline", "run", "orders", "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "[9/9] report: succeeded" in again.stdout
    assert ": succeeded in " in again.stdout
    runs = d.call("pipeline_runs", name="orders")
    assert [r["trigger"] for r in runs[:2]] == ["manual", "files_landed"]
    # nothing new landed: the second run ingested nothing and gold is unchanged
    second = {s["name"]: s for s in runs[0]["steps"]}
    assert second["ingest"]["rows_out"] == 0


def test_query_command_reads_gold_and_refuses_writes(pipeline_daemon: DaemonHandle) -> None:
    d = pipeline_daemon
    d.cli("demo-data", "--orders", "2000")
    wait_for(lambda: last_run(d), 60, "first run")
    out = d.cli("query", "SELECT count(*) AS n, round(sum(revenue_usd), 2) AS usd FROM gold.daily_revenue", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["columns"] == ["n", "usd"] and result["rows"][0][0] > 0
    report = json.loads(get(d.port, "/reports/orders/latest.json")[1])
    assert result["rows"][0][1] == pytest.approx(report["kpis"]["revenue_usd"], abs=0.01)
    for hostile, reason in [
        ("DELETE FROM gold.daily_revenue", "read-only"),
        ("ATTACH '/tmp/x.duckdb' AS x", "ATTACH"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    ]:
        refused = d.cli("query", hostile)
        assert refused.returncode == 1 and reason in refused.stderr, (hostile, refused.stderr)
    slow = d.cli("query", "SELECT count(*) FROM range(100000000000)", "--timeout", "0.5")
    assert slow.returncode == 1 and "interrupted" in slow.stderr
    assert d.call("query", sql="SELECT 1 AS ok")["rows"] == [[1]]  # the worker still answers


def test_runs_of_one_pipeline_never_overlap(daemon: DaemonHandle) -> None:
    daemon.write_config("pipelines:\n  orders: {on_new_files: false}\n")
    daemon.start()
    daemon.call("demo_data", orders=20000)
    first = daemon.call("pipeline_run", name="orders")
    assert first["status"] == "running" and first["run_id"]
    with pytest.raises(CommandError, match="already running"):
        daemon.call("pipeline_run", name="orders")
    finished = wait_for(lambda: last_run(daemon), 60, "run finished")
    assert finished["run_id"] == first["run_id"] and finished["status"] == "succeeded"
    daemon.call("pipeline_run", name="orders", wait=True)
    runs = sorted((r["started_at"], r["finished_at"]) for r in daemon.call("pipeline_runs", name="orders"))
    assert len(runs) == 2 and all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(runs))


def test_pages_report_and_json_twins(pipeline_daemon: DaemonHandle) -> None:
    d = pipeline_daemon
    d.call("demo_data", orders=2000)
    wait_for(lambda: last_run(d), 60, "first run")
    status, body = get(d.port, "/pipeline-management?format=json")
    [p] = json.loads(body)["pipelines"]
    assert status == 200 and p["name"] == "orders" and p["report"]["layers"]["bronze.orders_raw"] > 0
    status, html = get(d.port, "/pipeline-management")
    assert status == 200 and b"Replay quarantine" in html and b"gold.daily_revenue" in html
    status, html = get(d.port, "/")
    assert status == 200 and b"Quality pass rate" in html
    status, body = get(d.port, "/data-browser?format=json")
    gold = json.loads(body)["tables"]["gold"]
    assert [t["name"] for t in gold] == ["customer_ltv", "daily_revenue", "product_sales"]
    assert all(t["rows"] > 0 for t in gold)
    status, html = get(d.port, "/reports/orders/latest.html")
    assert status == 200 and b"<html" in html.lower()
    assert get(d.port, "/reports/orders/..%2F..%2Fapi-token")[0] == 404
    assert get(d.port, "/reports/nope/latest.html")[0] == 404


def test_pipeline_run_needs_the_token_over_http(pipeline_daemon: DaemonHandle) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", pipeline_daemon.port, timeout=10)
    conn.request("POST", "/api/commands/pipeline_run", body=b'{"name": "orders"}')
    assert conn.getresponse().status == 403
    conn.close()


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is installed by .ci/run")
def test_run_from_the_pipeline_page_in_chromium(pipeline_daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    d = pipeline_daemon
    d.call("demo_data", orders=2000)
    wait_for(lambda: last_run(d), 60, "first run")
    token = (d.state_dir / "api-token").read_text().strip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"http://127.0.0.1:{d.port}/login?token={token}&next=/pipeline-management")
            page.wait_for_selector("#live.ok", timeout=10_000)
            assert page.locator("table.grid tbody tr").count() >= 1
            before = len(d.call("pipeline_runs", name="orders"))
            loads = []
            page.on("framenavigated", lambda f: loads.append(f.url) if f == page.main_frame else None)
            page.click("button[data-command=pipeline_run]")
            # the steps are drawn live over SSE, and the finished run is listed without a reload
            page.locator(".node[data-step=ingest] .badge", has_text="succeeded").wait_for(timeout=60_000)
            runs = page.locator(".pipeline-panel table.grid").last.locator("tbody tr")
            wait_for(lambda: runs.count() > before, 60, "the new run listed")
            page.locator(".node[data-step=report] .badge", has_text="succeeded").wait_for(timeout=30_000)
            assert loads == []
            page.screenshot(path=str(tmp_path / "pipelines.png"), full_page=True)
            page.goto(f"http://127.0.0.1:{d.port}/data-browser?table=gold.product_sales")
            page.wait_for_selector("#results tbody tr", timeout=10_000)
            assert "product_id" in page.locator("#results thead").inner_text()
            page.fill("#sql", "DROP TABLE gold.product_sales")
            page.click("#query-form button")
            page.locator("#query-error", has_text="SELECT").wait_for(timeout=10_000)
            assert (
                "refused" in page.locator("#query-error").inner_text()
                or "read-only" in page.locator("#query-error").inner_text()
            )
            assert d.call("query", sql="SELECT count(*) FROM gold.product_sales")["rows"][0][0] > 0
            # the refused query's 409 is the only failed request the browser saw
            assert [e for e in errors if "409" not in e] == []
        finally:
            browser.close()
