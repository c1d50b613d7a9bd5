"""Pipelines as the daemon runs them: triggers, the CLI, the query command, the pages and the report."""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path
from typing import Any, cast

import psutil
import pytest
from helpers import DaemonHandle, command, get, wait_for
from helpers.pipeline import COUNTER_YAML, ORDERS_STEPS, counter_pipeline

from foss_supervisor.errors import CommandError

PIPELINE_CONFIG = """pipelines:
  orders: {on_new_files: true, demo_data: false}
"""


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
    assert "orders: 3000" in landed.stdout and "{" not in landed.stdout  # plain text, not a Python dict
    run = wait_for(
        lambda: d.call("pipelines")[0]["active_run"] is None and last_run(d), 60, "run triggered by the landed files"
    )
    assert run["trigger"] == "files_landed" and run["status"] == "succeeded"
    steps = {s["name"]: s for s in run["steps"]}
    assert list(steps) == ORDERS_STEPS
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


def test_status_shows_the_pipeline_worker(pipeline_daemon: DaemonHandle) -> None:
    d = pipeline_daemon

    def status() -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(d.cli("status", "--json").stdout))

    def up(w: dict[str, Any]) -> bool:  # a pid is shown from the spawn; RUNNING once the worker said it is ready
        return bool(w["pid"]) and w["state"] == "RUNNING"

    worker = wait_for(lambda: up(w := status()["pipelines"]["worker"]) and w, 30, "the worker RUNNING in status")
    assert worker["active_runs"] == [] and worker["starts"] == 1
    proc = psutil.Process(worker["pid"])  # the real worker: a live child of the daemon, its memory as the OS says
    assert proc.ppid() == d.read_pid() and "foss_supervisor.pipeline.worker.server" in " ".join(proc.cmdline())
    assert worker["rss_bytes"] > 0 and worker["uptime_s"] >= 0
    # a supervised service like the dashboard: listed under services, with a program's fields
    service = next(s for s in status()["services"] if s["name"] == "@pipeline-worker")
    assert service["state"] == "RUNNING" and service["pid"] == worker["pid"] and service["spawns"] == 1
    plain = d.cli("status")
    assert plain.returncode == 0, plain.stderr
    [line] = [ln for ln in plain.stdout.splitlines() if ln.startswith("@pipeline-worker ")]
    assert line.split()[:2] == ["@pipeline-worker", "RUNNING"] and f" {worker['pid']} " in line
    assert "  idle  memory " in line and line.endswith(f" MiB of {worker['memory_limit'] / 2**30:g} GiB")

    # killed, it is restarted at once, as any supervised program is
    os.kill(worker["pid"], signal.SIGKILL)
    again = wait_for(
        lambda: up(w := status()["pipelines"]["worker"]) and w["pid"] != worker["pid"] and w, 30, "a new worker"
    )
    assert again["starts"] == 2 and again["restarts"] == 1
    assert again["last_restart"]["reason"] == "died"
    assert again["last_restart"]["pid"] == worker["pid"] and again["last_restart"]["returncode"] == -signal.SIGKILL
    assert "restarts 1 (last: died)" in d.cli("status").stdout
    assert d.cli("query", "SELECT 1").returncode == 0


def test_query_command_reads_gold_and_refuses_writes(pipeline_daemon: DaemonHandle) -> None:
    d = pipeline_daemon
    d.cli("demo-data", "--orders", "2000")
    wait_for(lambda: last_run(d), 60, "first run")
    out = d.cli("query", "SELECT count(*) AS n, round(sum(revenue_usd), 2) AS usd FROM gold.daily_revenue", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["columns"] == ["n", "usd"] and result["rows"][0][0] > 0
    report = get(d.port, "/reports/orders/latest.json").json()
    usd = result["rows"][0][1]  # a DECIMAL: its exact text, scale included, never a float
    assert isinstance(usd, str) and float(usd) == pytest.approx(report["kpis"]["revenue_usd"], abs=0.01)
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
    status, _, body = get(d.port, "/pipeline-management?format=json")
    [p] = json.loads(body)["pipelines"]
    assert status == 200 and p["name"] == "orders" and p["report"]["layers"]["bronze.orders_raw"] > 0
    status, _, html = get(d.port, "/pipeline-management")
    assert status == 200 and b"Replay quarantine" in html and b"gold.daily_revenue" in html
    status, _, html = get(d.port, "/")
    assert status == 200 and b"Quality pass rate" in html
    status, _, body = get(d.port, "/data-browser?format=json")
    gold = json.loads(body)["tables"]["gold"]
    assert [t["name"] for t in gold] == ["customer_ltv", "daily_revenue", "product_sales"]
    assert all(t["rows"] > 0 for t in gold)
    status, _, html = get(d.port, "/reports/orders/latest.html")
    assert status == 200 and b"<html" in html.lower()
    assert get(d.port, "/reports/orders/..%2F..%2Fapi-token")[0] == 404
    assert get(d.port, "/reports/nope/latest.html")[0] == 404


def test_pipeline_run_needs_the_token_over_http(pipeline_daemon: DaemonHandle) -> None:
    for headers, refused in (({}, 401), (pipeline_daemon.viewer(), 403)):  # nobody; the read-only token
        assert command(pipeline_daemon.port, "pipeline_run", {"name": "orders"}, headers).status == refused
    assert pipeline_daemon.call("pipeline_runs", name="orders") == []


def test_run_from_the_pipeline_page_in_chromium(pipeline_daemon: DaemonHandle, browser: Any, tmp_path: Path) -> None:
    d = pipeline_daemon
    d.call("demo_data", orders=2000)
    wait_for(lambda: last_run(d), 60, "first run")
    token = (d.state_dir / "api-token").read_text().strip()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
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
        # the Recent runs table itself (the last table of the panel is the last run's diff once there is one)
        runs = page.locator(".pipeline-panel h3:has-text('Recent runs') + .table-wrap tbody tr")
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
        page.close()


def newest_run(daemon: DaemonHandle, name: str) -> dict | None:
    runs = daemon.call("pipeline_runs", name=name, limit=1)
    return runs[0] if runs and runs[0]["finished_at"] is not None else None


def test_two_pipelines_in_one_daemon_keep_their_rows_and_skip_when_nothing_is_new(daemon: DaemonHandle) -> None:
    import duckdb

    daemon.write_config(
        "pipelines:\n  orders: {on_new_files: true, demo_data: false}\n  trips: {on_new_files: true}\n",
        extra="warehouse: {watch_interval: 0.2s}",
    )
    daemon.start()
    d = daemon
    trips_landing = d.state_dir / "data" / "landing" / "trips"
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT 'T' || i AS trip_id, '2024-05-01 08:00:00+00' AS pickup_at,"
        " '2024-05-01 08:30:00+00' AS dropoff_at,"
        " 'Z0' || (i % 5 + 1) AS pickup_zone, '3.5' AS distance_km, '10.00' AS fare, 'card' AS payment_type"
        f" FROM range(1, 301) t(i)) TO '{trips_landing / 'trips.parquet.part'}' (FORMAT parquet)"
    )
    con.close()
    (trips_landing / "trips.parquet.part").rename(trips_landing / "trips.parquet")
    d.call("demo_data", name="orders", orders=2000, seed=3)
    runs = {n: wait_for(lambda n=n: newest_run(d, n), 60, f"{n} run") for n in ("orders", "trips")}
    assert {n: (r["trigger"], r["status"]) for n, r in runs.items()} == {
        "orders": ("files_landed", "succeeded"),
        "trips": ("files_landed", "succeeded"),
    }
    ingested = {n: next(s for s in r["steps"] if s["name"] == "ingest")["rows_out"] for n, r in runs.items()}
    sql = (
        "SELECT (SELECT count(*) FROM bronze.orders_raw), (SELECT count(*) FROM trips_bronze.trips_raw),"
        " (SELECT count(*) FROM trips_gold.daily_zone), (SELECT count(*) FROM meta.files),"
        " (SELECT count(*) FROM trips_meta.files)"
    )
    counts = d.call("query", sql=sql)["rows"][0]
    assert counts[0] == ingested["orders"] > 2000 and counts[1] == ingested["trips"] == 300
    assert counts[2] == 5 and counts[4] == 1 and counts[3] == len(list((d.state_dir / "data/landing/orders").iterdir()))

    # every pipeline gets the generic report (layers, quality, reasons), shown on the dashboard
    status, _, body = get(d.port, "/pipeline-management?format=json")
    trips_view = next(p for p in json.loads(body)["pipelines"] if p["name"] == "trips")
    report = trips_view["report"]
    assert status == 200 and report["layers"]["trips_bronze.trips_raw"] == 300
    assert report["layers"]["trips_gold.daily_zone"] == 5 and "trips_meta.files" not in report["layers"]
    assert report["quality"]["run_valid"] == 300 and report["quality"]["overall_pass_rate"] == 1.0
    assert get(d.port, "/")[0] == 200
    status, _, html = get(d.port, "/pipeline-management")
    assert status == 200 and b"trips_gold.daily_zone" in html and b"trips_bronze.trips_raw" in html

    # restart: the landing watcher fires once for what is there and finds nothing new, which records no run
    # (issue 18): the skip is counted, and the history and the pages keep the last run that did work
    assert d.cli("stop").returncode == 0
    assert d.proc is not None and d.proc.wait(30) == 0
    d.start()
    for name in ("orders", "trips"):
        skips = wait_for(
            lambda name=name: next(p["skips"] for p in d.call("pipelines") if p["name"] == name)["count"] >= 1,
            30,
            f"{name} trigger found nothing new",
        )
        assert skips
        view = next(p for p in d.call("pipelines") if p["name"] == name)
        assert view["skips"]["last_trigger"] == "files_landed" and view["active_run"] is None
        assert view["last_run"]["run_id"] == runs[name]["run_id"] == newest_run(d, name)["run_id"]  # type: ignore[index]
        assert view["last_run"]["reason"] == "files_landed" and view["last_run"]["status"] == "succeeded"
    status, _, html = get(d.port, "/pipeline-management")
    assert status == 200 and f'data-run="{runs["trips"]["run_id"]}"'.encode() in html
    assert b"1 trigger found nothing new" in html
    # a manual run still runs, and nothing new lands: the data is unchanged
    manual = d.call("pipeline_run", name="trips", wait=True)
    assert manual["status"] == "succeeded" and manual["steps"][1]["rows_out"] == 0
    assert d.call("query", sql="SELECT count(*) FROM trips_bronze.trips_raw")["rows"] == [[300]]


def test_pipeline_config_errors_exit_2_with_file_line_and_step_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from foss_supervisor.pipeline.engine.spec import default_pipelines_dir

    shipped = default_pipelines_dir()
    text = (shipped / "orders.yaml").read_text()
    for key in ("setup", "sql", "callable", "demo_data"):  # its SQL and Python stay in the shipped folder
        text = text.replace(f"{key}: orders/", f"{key}: {shipped}/orders/")
    text = text.replace("reference: ../reference", f"reference: {shipped.parent / 'reference'}")
    broken = text.replace(f"sql: {shipped}/orders/aggregate.sql", "sql: nope.sql")
    (tmp_path / "orders.yaml").write_text(broken)
    line = 1 + broken.splitlines().index("    sql: nope.sql")
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\npipelines:\n  orders: {{file: orders.yaml}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "foss_supervisor", "start", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert f"{tmp_path / 'orders.yaml'}:{line}: steps.aggregate.sql: cannot read SQL file" in out.stderr

    # two pipelines that would share a schema are refused the same way
    (tmp_path / "copy.yaml").write_text(text.replace("name: orders", "name: copy"))
    config.write_text(f"state_dir: {tmp_path / 'state'}\npipelines:\n  orders: {{}}\n  copy: {{file: copy.yaml}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "foss_supervisor", "start", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "is also owned by pipeline 'orders'" in out.stderr, out.stderr
    assert not (tmp_path / "state" / "foss-supervisor.pid").exists()


def test_reset_drops_the_pipelines_tables_and_history_once_confirmed(pipeline_daemon: DaemonHandle) -> None:
    d = pipeline_daemon
    d.call("demo_data", orders=2000, seed=5)
    first = wait_for(lambda: last_run(d), 60, "first run")
    bronze = d.call("query", sql="SELECT count(*) FROM bronze.orders_raw")["rows"][0][0]
    assert first["status"] == "succeeded" and bronze > 2000

    refused = d.cli("pipeline", "reset", "orders")  # not a terminal, no --yes: nothing happens
    assert refused.returncode == 2 and "--yes" in refused.stderr
    with pytest.raises(CommandError, match="confirm with its name"):
        d.call("pipeline_reset", name="orders", confirm="")
    assert d.call("query", sql="SELECT count(*) FROM bronze.orders_raw")["rows"][0][0] == bronze

    d.call("pipeline_pause", name="orders")  # paused, the landing files (new again after the reset) wait
    done = d.cli("pipeline", "reset", "orders", "--yes")
    assert done.returncode == 0, done.stderr
    assert "bronze" in done.stdout and "meta" in done.stdout
    with pytest.raises(CommandError, match="does not exist"):
        d.call("query", sql="SELECT count(*) FROM bronze.orders_raw")
    assert d.call("pipeline_runs", name="orders") == []
    # from scratch: once resumed, the watcher starts a run for the same landing files, to the same row count
    d.call("pipeline_resume", name="orders")
    again = wait_for(lambda: d.call("pipelines")[0]["active_run"] is None and last_run(d), 60, "run after reset")
    assert again["status"] == "succeeded" and again["trigger"] == "files_landed"
    assert d.call("query", sql="SELECT count(*) FROM bronze.orders_raw")["rows"][0][0] == bronze


QUALITY_ON_V = """  - name: check
    kind: quality
    depends_on: [count]
    params:
      source: two_gold.v
      valid: two_gold.ok
      rejected: two_gold.bad
      columns:
        {column}: [not_null]
"""


def test_reload_applies_pipeline_yaml_and_sql_changes_with_a_plan(daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    counter_pipeline(tmp_path, "one", 1)
    (tmp_path / "land").mkdir()  # one watches its (empty) landing folder: nothing to run at start
    config = "pipelines:\n  one: {{file: {0}/one.yaml}}\n"
    daemon.write_config(config.format(tmp_path))
    daemon.start()
    d = daemon
    assert d.call("pipeline_run", name="one", wait=True)["status"] == "succeeded"
    assert d.call("query", sql="SELECT v FROM one_gold.v")["rows"] == [[1]]

    counter_pipeline(tmp_path, "one", 2)  # the SQL changed
    counter_pipeline(tmp_path, "two", 20)  # and a pipeline is added
    daemon.write_config((config + "  two: {{file: {0}/two.yaml, on_new_files: false}}\n").format(tmp_path))
    dry = d.cli("reload", "--dry-run")
    assert dry.returncode == 0 and "changed: pipeline one" in dry.stdout and "added: pipeline two" in dry.stdout
    assert "would apply: 0 added, 0 changed, 0 removed programs; 1 pipeline added, 1 pipeline changed" in dry.stdout
    assert d.call("pipeline_run", name="one", wait=True)["status"] == "succeeded"
    assert d.call("query", sql="SELECT v FROM one_gold.v")["rows"] == [[1]]  # a dry run changes nothing

    done = d.cli("reload")
    assert done.returncode == 0 and "changed: pipeline one" in done.stdout, done.stdout + done.stderr
    assert "did apply: 0 added, 0 changed, 0 removed programs; 1 pipeline added, 1 pipeline changed" in done.stdout
    assert [p["name"] for p in d.call("pipelines")] == ["one", "two"]
    # its SQL changed: one runs again by itself, for that reason (no file landed)
    rerun = wait_for(
        lambda: (r := newest_run(d, "one")) and r["trigger"] == "config_changed" and r, 30, "a config_changed run"
    )
    assert rerun["reason"] == "config_changed" and rerun["status"] == "succeeded"
    assert d.call("query", sql="SELECT v FROM one_gold.v")["rows"] == [[2]]
    for name, value in (("one", 2), ("two", 20)):
        assert d.call("pipeline_run", name=name, wait=True)["status"] == "succeeded"
        assert d.call("query", sql=f"SELECT v FROM {name}_gold.v")["rows"] == [[value]]

    # a broken SQL reference is refused with its file and line, and the running pipelines stay
    (tmp_path / "two.yaml").write_text(COUNTER_YAML.format(name="two").replace("two_count.sql", "missing.sql"))
    refused = d.cli("reload")
    assert refused.returncode != 0 and f"{tmp_path / 'two.yaml'}:6: steps.count.sql" in refused.stderr
    assert d.call("pipeline_run", name="two", wait=True)["status"] == "succeeded"

    # so is SQL that `pipeline validate` refuses: here a quality block naming a column its source lacks,
    # found by the worker binding the new SQL, with the YAML line of the rule (the newcomer's case)
    (tmp_path / "two.yaml").write_text(COUNTER_YAML.format(name="two") + QUALITY_ON_V.format(column="nope"))
    for args in (("reload", "--dry-run"), ("reload",)):
        refused = d.cli(*args)
        assert refused.returncode != 0, refused.stdout
        assert (
            f"two: step check: {tmp_path / 'two.yaml'}:15: steps.check.params.columns.nope.not_null" in refused.stderr
        )
    assert d.call("pipeline_run", name="two", wait=True)["status"] == "succeeded"
    assert [s["name"] for s in d.call("pipeline_runs", name="two", limit=1)[0]["steps"]] == ["count"]
    (tmp_path / "two.yaml").write_text(COUNTER_YAML.format(name="two") + QUALITY_ON_V.format(column="v"))
    assert d.cli("reload").returncode == 0
    ran = d.call("pipeline_run", name="two", wait=True)
    assert ran["status"] == "succeeded" and [s["name"] for s in ran["steps"]] == ["count", "check"]


def test_sql_reloaded_while_paused_runs_once_resumed(daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    counter_pipeline(tmp_path, "one", 1)
    (tmp_path / "land").mkdir()
    daemon.write_config(f"pipelines:\n  one: {{file: {tmp_path}/one.yaml}}\n")
    daemon.start()
    d = daemon
    assert d.call("pipeline_run", name="one", wait=True)["status"] == "succeeded"
    d.call("pipeline_pause", name="one")
    counter_pipeline(tmp_path, "one", 2)  # the SQL changes while its schedules are paused: no run yet
    assert d.cli("reload").returncode == 0
    assert d.call("query", sql="SELECT v FROM one_gold.v")["rows"] == [[1]]
    assert all(r["trigger"] == "manual" for r in d.call("pipeline_runs", name="one"))
    d.call("pipeline_resume", name="one")  # resumed: the change runs, for its reason
    rerun = wait_for(
        lambda: (r := newest_run(d, "one")) and r["trigger"] == "config_changed" and r["finished_at"] and r,
        30,
        "the config_changed run after resume",
    )
    assert rerun["status"] == "succeeded"
    assert d.call("query", sql="SELECT v FROM one_gold.v")["rows"] == [[2]]

    # reloaded while paused again, but run by hand before the resume: nothing is left to run for it
    d.call("pipeline_pause", name="one")
    counter_pipeline(tmp_path, "one", 3)
    assert d.cli("reload").returncode == 0
    assert d.call("pipeline_run", name="one", wait=True)["status"] == "succeeded"
    count = len(d.call("pipeline_runs", name="one"))
    d.call("pipeline_resume", name="one")  # a config_changed run would start here, before the next command
    assert d.call("pipeline_run", name="one", wait=True)["status"] == "succeeded"
    later = d.call("pipeline_runs", name="one")[: len(d.call("pipeline_runs", name="one")) - count]
    assert [r["trigger"] for r in later] == ["manual"], later


def test_export_streams_whole_tables_without_a_row_cap(pipeline_daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    d = pipeline_daemon
    d.call("demo_data", orders=110_000, seed=9)
    assert wait_for(lambda: last_run(d), 120, "first run")["status"] == "succeeded"

    # the watch may have started that run while the files were still landing (it took the first ones only); a run
    # started now, after the call wrote them all, leaves nothing to ingest, so the count below is the table's last
    # (refused while the watch's own second run is under way: asked again once it is not)
    def rerun() -> bool:
        idle = d.call("pipelines")[0]["active_run"] is None
        return idle and d.cli("pipeline", "run", "orders", "--wait").returncode == 0

    wait_for(rerun, 120, "a run after every file landed")
    bronze = d.call("query", sql="SELECT count(*) FROM bronze.orders_raw")["rows"][0][0]
    assert bronze > 100_000  # more than query --json may return

    out = d.cli("export", "bronze.orders_raw", "--format", "parquet", "-o", str(tmp_path / "bronze.parquet"))
    assert out.returncode == 0, out.stderr
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM '{tmp_path / 'bronze.parquet'}'").fetchone()[0] == bronze
    daily = d.call("query", sql="SELECT count(*), sum(revenue_usd) FROM gold.daily_revenue")["rows"][0]
    csv_out = d.cli("export", "gold.daily_revenue", "--format", "csv")
    assert csv_out.returncode == 0 and len(csv_out.stdout.splitlines()) == daily[0] + 1  # header line
    by_sql = d.cli("export", "--sql", "SELECT * FROM bronze.orders_raw", "--format", "csv")  # a query, whole
    assert by_sql.returncode == 0 and len(by_sql.stdout.splitlines()) == bronze + 1
    assert d.cli("export", "gold.daily_revenue", "--sql", "SELECT 1").returncode == 2  # one of the two
    (tmp_path / "daily.jsonl").write_text(d.cli("export", "gold.daily_revenue", "--format", "jsonl").stdout)
    back = con.execute(f"SELECT count(*), sum(revenue_usd) FROM read_json('{tmp_path / 'daily.jsonl'}')").fetchone()
    assert back[0] == daily[0] and float(back[1]) == pytest.approx(float(daily[1]), abs=0.01)

    # the same over HTTP, streamed: the whole table, no row cap
    exported = get(d.port, "/api/v1/export/bronze.orders_raw?format=parquet", d.viewer(), timeout_s=60)
    assert exported.headers["content-type"] == "application/vnd.apache.parquet"
    (tmp_path / "http.parquet").write_bytes(exported.body)
    assert con.execute(f"SELECT count(*) FROM '{tmp_path / 'http.parquet'}'").fetchone()[0] == bronze
    assert get(d.port, "/api/v1/export/gold.nope?format=csv", d.viewer()).status == 404

    for bad, reason in (("gold.nope", "no table or view"), ("gold.daily_revenue'; --", "no table or view")):
        refused = d.cli("export", bad, "--format", "csv")
        assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
    assert [p for p in (d.state_dir / "exports").iterdir()] == []  # every file was moved or removed


def test_cron_schedule_and_a_pipeline_triggered_by_anothers_success(daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "pipelines"  # its own folder: the reference folder (.) must not hold the daemon's state
    home.mkdir()
    counter_pipeline(home, "one", 1)
    counter_pipeline(home, "two", 2)
    daemon.write_config(
        f"pipelines:\n  one: {{file: {home}/one.yaml, on_new_files: false, cron: '* * * * * *'}}\n"
        f"  two: {{file: {home}/two.yaml, on_new_files: false, after: [one]}}\n"
    )
    daemon.start()
    d = daemon

    def runs(name: str) -> list[dict]:
        return [r for r in d.call("pipeline_runs", name=name, limit=50) if r["finished_at"] is not None]

    first = wait_for(lambda: [r for r in runs("one") if r["status"] == "succeeded"], 30, "a cron run of one")
    assert first[-1]["trigger"] == "cron"
    after = wait_for(lambda: runs("two"), 30, "two after one")
    assert after[-1]["trigger"] == "after:one" and after[-1]["status"] == "succeeded"
    assert (first[-1]["reason"], after[-1]["reason"]) == ("schedule", "after")
    # the next ticks find nothing new: counted, no run recorded, and nothing triggered
    wait_for(lambda: d.call("pipelines")[0]["skips"]["count"] >= 2, 30, "cron ticks that found nothing new")
    assert d.call("pipelines")[0]["skips"]["last_trigger"] == "cron"
    assert [r["status"] for r in runs("one")] == ["succeeded"] and len(runs("two")) == 1


def test_paused_schedules_start_nothing_until_resumed_and_survive_a_restart(daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "pipelines"
    home.mkdir()
    counter_pipeline(home, "one", 1)
    daemon.write_config(f"pipelines:\n  one: {{file: {home}/one.yaml, on_new_files: false, cron: '* * * * * *'}}\n")
    daemon.start()
    d = daemon
    wait_for(lambda: d.call("pipeline_runs", name="one", limit=5), 30, "a first cron run")
    assert d.call("pipeline_pause", name="one") == {"name": "one", "paused": True}
    wait_for(lambda: not d.call("pipelines")[0]["active_run"], 30, "no run in progress")
    before = len(d.call("pipeline_runs", name="one", limit=500))

    def paused_ticks() -> int:
        text = (d.state_dir / "foss-supervisor.log").read_text()
        return text.count('"pipeline_trigger_paused"')

    seen = paused_ticks()
    wait_for(lambda: paused_ticks() >= seen + 2, 30, "two cron ticks while paused")
    assert len(d.call("pipeline_runs", name="one", limit=500)) == before  # the ticks started nothing
    assert d.call("pipeline_run", name="one", wait=True)["trigger"] == "manual"  # by hand it still runs
    assert d.call("pipelines")[0]["paused"] is True

    d.cleanup()  # a restart keeps the operator's pause
    daemon.start()
    assert d.call("pipelines")[0]["paused"] is True
    shown = d.cli("pipeline", "status").stdout
    assert "runs on demand only: schedules paused (cron * * * * * *; `pipeline resume one`)" in shown, shown
    assert d.cli("pipeline", "status", "one").stdout == shown  # its only pipeline, named
    unknown = d.cli("pipeline", "status", "nosuch")
    assert unknown.returncode == 1 and "no such pipeline: 'nosuch'; known: one" in unknown.stderr, unknown
    resumed = d.cli("pipeline", "resume", "one")
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    # its ticks run again: nothing new since the manual run, so each is counted (no run recorded)
    wait_for(lambda: d.call("pipelines")[0]["skips"]["count"] >= 1, 30, "a cron tick after resume")


@pytest.mark.parametrize(
    ("entry", "key", "reason"),
    [
        ("one: {cron: 'every day'}", "pipelines.one.cron", "is not a cron expression"),
        ("one: {after: [one]}", "pipelines.one.after", "is not another configured pipeline"),
        ("one: {after: [two]}\n  two: {after: [one]}", "pipelines.one.after", "in a loop"),
    ],
)
def test_schedule_errors_exit_2_with_the_line(tmp_path, entry: str, key: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    counter_pipeline(tmp_path, "one", 1)
    counter_pipeline(tmp_path, "two", 2)
    body = f"state_dir: {tmp_path / 'state'}\npipelines:\n  {entry}\n"
    body = body.replace("one: {", f"one: {{file: {tmp_path}/one.yaml, ").replace(
        "two: {", f"two: {{file: {tmp_path}/two.yaml, "
    )
    (tmp_path / "c.yaml").write_text(body)
    out = subprocess.run(
        [sys.executable, "-m", "foss_supervisor", "start", "--config", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and f"c.yaml:3: {key}: " in out.stderr and reason in out.stderr, out.stderr
