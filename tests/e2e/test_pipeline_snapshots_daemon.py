"""``pipeline diff`` and ``pipeline rollback`` through a real daemon and the real CLI (issue 18): the diff's
counts against the tables' own counts queried between the runs, a rollback that without ``--yes`` changes
nothing, with it restores run 1's rows and is recorded as a run of reason ``rollback`` and in the audit,
and the refusals' reasons; the pipeline page's JSON twin carries the last run's diff; the flow graph on ``/``
then shows run 1's steps and rows (not the rollback's skipped steps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import DaemonHandle, get, wait_for

from foss_supervisor.cli.terminal import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from foss_supervisor.pipeline.engine.spec import default_pipelines_dir


def _count(d: DaemonHandle, sql: str) -> int:
    return int(d.call("query", sql=sql)["rows"][0][0])


def _audit(state_dir: Path, name: str) -> list[dict[str, Any]]:
    events = []
    for path in sorted((state_dir / "history").glob("events-*.jsonl")):
        events += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e["type"] == "CommandCompleted" and e["command"] == name]


def test_cli_diff_and_rollback_of_two_orders_runs(daemon: DaemonHandle) -> None:
    pipelines = default_pipelines_dir()
    daemon.write_config(f"""pipelines:
  orders: {{file: {pipelines / "orders.yaml"}, reference: {pipelines.parent / "reference"}, on_new_files: false,
            demo_data: false}}
""")
    daemon.start()
    orders = "SELECT count(*) FROM silver.orders"
    daemon.call("demo_data", orders=600, seed=1)
    r1 = daemon.call("pipeline_run", name="orders", wait=True)
    assert r1["status"] == "succeeded", r1
    n1, raw1 = _count(daemon, orders), _count(daemon, "SELECT count(*) FROM bronze.orders_raw")
    daemon.call("demo_data", orders=900, seed=2)
    r2 = daemon.call("pipeline_run", name="orders", wait=True)
    assert r2["status"] == "succeeded", r2
    n2, raw2 = _count(daemon, orders), _count(daemon, "SELECT count(*) FROM bronze.orders_raw")
    assert n2 > n1 and raw2 > raw1

    shown = daemon.cli("pipeline", "diff", r1["run_id"], r2["run_id"])
    assert shown.returncode == EXIT_OK, shown.stdout + shown.stderr
    assert "silver.orders" in shown.stdout and "key: order_id" in shown.stdout
    as_json = daemon.cli("pipeline", "diff", r1["run_id"], r2["run_id"], "--json")
    tables = {t["table"]: t for t in json.loads(as_json.stdout)["tables"]}
    silver = tables["silver.orders"]
    assert silver["removed"] == 0 and silver["added"] == n2 - n1  # dedupe keeps every order_id it saw
    assert tables["bronze.orders_raw"]["added"] == raw2 - raw1  # bronze only grows, each line is new
    # --timeout: the diff's bound (60 s by default, up to the command's 600 s), refused outside it or elsewhere
    longer = daemon.cli("pipeline", "diff", r1["run_id"], r2["run_id"], "--json", "--timeout", "300")
    assert longer.returncode == EXIT_OK and json.loads(longer.stdout)["tables"] == json.loads(as_json.stdout)["tables"]
    for bad in ("0", "0.01", "601"):
        refused = daemon.cli("pipeline", "diff", r1["run_id"], r2["run_id"], "--timeout", bad)
        assert refused.returncode == EXIT_USAGE and "--timeout must be 0.1 to 600 s" in refused.stderr, refused
    misplaced = daemon.cli("pipeline", "runs", "--timeout", "5")
    assert misplaced.returncode == EXIT_USAGE and "for pipeline diff only" in misplaced.stderr, misplaced

    preview = daemon.cli("pipeline", "rollback", "orders", "--to", r1["run_id"])
    assert preview.returncode == EXIT_OK and "nothing changed" in preview.stdout + preview.stderr, preview
    assert _count(daemon, orders) == n2

    done = daemon.cli("pipeline", "rollback", "orders", "--to", r1["run_id"], "--yes")
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert _count(daemon, orders) == n1 and _count(daemon, "SELECT count(*) FROM bronze.orders_raw") == raw1
    latest = daemon.call("pipeline_runs", name="orders", limit=1)[0]
    assert latest["reason"] == "rollback" and latest["note"] == f"rolled back to run {r1['run_id']}"
    # the flow graph on / shows run 1's steps and rows, whose tables are back (tester: nine "skipped", no rows)
    flow = get(daemon.port, "/").text.split('aria-label="flow of orders"', 1)[1].split("</ol>", 1)[0]
    assert f"run {r1['run_id']}" in flow and "s-skipped" not in flow and "s-succeeded" in flow, flow
    ingest = next(s for s in r1["steps"] if s["name"] == "ingest")
    assert f">{ingest['rows_out']:,} rows<" in flow, flow
    [listed] = [p for p in daemon.call("pipelines") if p["name"] == "orders"]
    assert listed["last_run"]["run_id"] == latest["run_id"] and listed["flow_run"]["run_id"] == r1["run_id"]
    wait_for(lambda: _audit(daemon.state_dir, "pipeline_rollback")[1:], 10, "both rollback calls audited")
    assert [a["args"]["yes"] for a in _audit(daemon.state_dir, "pipeline_rollback")] == [False, True]

    gone = daemon.cli("pipeline", "rollback", "orders", "--to", "20200101T000000Z-000000", "--yes")
    assert gone.returncode == EXIT_FAIL and "no snapshot" in gone.stdout + gone.stderr, gone

    page = json.loads(get(daemon.port, "/pipeline-management?format=json").body)
    [entry] = [p for p in page["pipelines"] if p["name"] == "orders"]
    assert entry["last_diff"]["run_b"] == latest["run_id"]
    assert {t["table"]: t for t in entry["last_diff"]["tables"]}["silver.orders"]["removed"] == n2 - n1
    html = get(daemon.port, "/pipeline-management").text  # the page itself: a small table of the same diff
    assert "What the last run changed" in html and "key order_id" in html and "silver.orders" in html
