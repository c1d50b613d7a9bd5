"""A daemon killed (SIGKILL) in the middle of a run: the next daemon tells that run ``abandoned`` with the steps
whose transaction had committed as succeeded, with their rows (read from the worker's ledger), so the history adds
up with the tables; a retry then starts after them (newcomer finding: every step said pending, rows in bronze).
The same for a rollback killed after its restore committed (red team: history and manifest said run 2, the
tables held run 1). And ``pipeline validate`` of the daemon's pipeline without ``--config``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

from helpers import PY, DaemonHandle, fifo_writer, get, health, wait_for
from helpers.pipeline import two_step_pipeline, variant_yaml

from foss_supervisor.pipeline.engine.recovery import ROLLBACK_LEFT
from foss_supervisor.pipeline.engine.spec import default_pipelines_dir

#: a step that commits nothing and runs for hours: the daemon is killed while it runs
SLOW = "CREATE TEMP TABLE _slow AS SELECT count(*) AS n FROM range(1000000000000) t(x) WHERE hash(x) = 42;\n"


def test_a_run_whose_daemon_was_killed_is_abandoned_with_its_committed_steps_told(daemon: DaemonHandle) -> None:
    home = daemon.tmp / "s"
    home.mkdir()
    spec = two_step_pipeline(home, SLOW + "SELECT 1 AS rows_in, 1 AS rows_out;")
    daemon.write_config(f"pipelines:\n  s: {{file: {spec}, on_new_files: false}}\n")
    daemon.start()
    started = daemon.call("pipeline_run", name="s", wait=False)

    def active() -> dict[str, Any] | None:
        return next((p.get("active_run") for p in daemon.call("pipelines") if p["name"] == "s"), None)

    def mine_running() -> bool:
        run = active()
        states = {s["name"]: s["state"] for s in (run or {}).get("steps", [])}
        return states.get("good") == "succeeded" and states.get("mine") == "running"

    wait_for(mine_running, 60, "step good committed and step mine running")
    pid = daemon.read_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert daemon.proc is not None
    daemon.proc.wait(timeout=30)

    daemon.start()  # ends what the killed daemon left (its worker), then reads the ledger
    [run] = wait_for(
        lambda: [
            r for r in daemon.call("pipeline_runs", name="s", limit=1) if "committed before" in (r["error"] or "")
        ],
        60,
        "the abandoned run told",
    )
    assert run["run_id"] == started["run_id"] and run["status"] == "abandoned"
    steps = {s["name"]: s for s in run["steps"]}
    assert steps["good"]["state"] == "succeeded" and steps["good"]["rows_out"] == 0  # s_raw.t is empty
    assert steps["mine"]["state"] == "pending"
    assert run["error"].endswith("steps committed before it stopped: good")
    again = daemon.cli("pipeline", "runs", "s")
    assert again.returncode == 0 and started["run_id"] in again.stdout and "abandoned" in again.stdout


def test_validate_without_config_checks_the_pipeline_the_daemon_runs(daemon: DaemonHandle) -> None:
    """``pipeline validate NAME`` without ``--config`` reads the config the daemon of the state dir runs (as
    ``logs`` does), not the embedded default's pipelines (newcomer: it checked the shipped orders instead)."""
    home = daemon.tmp / "s"
    home.mkdir()
    spec = two_step_pipeline(home, "SELECT missing AS rows_in, 1 AS rows_out;")
    daemon.write_config(f"pipelines:\n  s: {{file: {spec}, on_new_files: false}}\n")
    daemon.start()
    env = {**daemon.env, "FOSS_SUPERVISOR_STATE_DIR": str(daemon.state_dir)}
    argv = [PY, "-m", "foss_supervisor", "pipeline", "validate", "s"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2 and f"{home / 'step.sql'}:1" in out.stdout, out.stdout + out.stderr


def test_a_rollback_whose_daemon_was_killed_after_its_restore_is_finished_at_the_next_start(
    daemon: DaemonHandle,
) -> None:
    """The daemon is SIGKILLed once the restore committed and while it switches the published set back: run 1's
    kept manifest is swapped for a FIFO, so the switch blocks reading it (deterministic, no sleep). The next
    daemon reads the ledger's rollback row, switches the published set to run 1, keeps the rollback's snapshot
    and records the rollback ``succeeded_with_warnings`` saying the daemon had stopped."""
    spec = variant_yaml(daemon.tmp, "orders", step_overrides={})
    spec.write_text(spec.read_text() + "publish: [gold]\n")
    daemon.write_config(f"""pipelines:
  orders: {{file: {spec}, reference: {default_pipelines_dir().parent / "reference"}, on_new_files: false,
            demo_data: false}}
""")
    daemon.start()
    orders = "SELECT count(*) FROM silver.orders"
    daemon.call("demo_data", orders=600, seed=1)
    r1 = daemon.call("pipeline_run", name="orders", wait=True)
    n1 = int(daemon.call("query", sql=orders)["rows"][0][0])
    daemon.call("demo_data", orders=900, seed=2)
    r2 = daemon.call("pipeline_run", name="orders", wait=True)
    assert (r1["status"], r2["status"]) == ("succeeded", "succeeded"), (r1, r2)
    [published] = [p.parent for p in daemon.tmp.rglob("published/orders/_manifest.json")]
    kept = published / "runs" / r1["run_id"] / "_manifest.json"
    text = kept.read_bytes()
    kept.unlink()
    os.mkfifo(kept)

    argv = [PY, "-m", "foss_supervisor", "pipeline", "--config", str(daemon.config_path)]
    rollback = subprocess.Popen(
        [*argv, "rollback", "orders", "--to", r1["run_id"], "--yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=daemon.env,
    )
    try:
        writer = wait_for(lambda: fifo_writer(kept), 120, "the rollback's switch reading run 1's manifest")
        try:
            assert int(daemon.call("query", sql=orders)["rows"][0][0]) == n1  # the restore had committed
            pid = daemon.read_pid()
            assert pid is not None and daemon.proc is not None
            os.kill(pid, signal.SIGKILL)
            daemon.proc.wait(timeout=30)
        finally:
            os.close(writer)
        rollback.wait(timeout=60)
    finally:
        if rollback.poll() is None:
            rollback.kill()
            rollback.wait(timeout=10)
    assert json.loads((published / "_manifest.json").read_text())["run_id"] == r2["run_id"]  # the gap it left
    kept.unlink()
    kept.write_bytes(text)

    daemon.start()
    [run] = wait_for(  # a run in progress when a daemon died reads `abandoned` until the start's recovery ran
        lambda: [
            r
            for r in daemon.call("pipeline_runs", name="orders", limit=1)
            if r["reason"] == "rollback" and r["status"] != "abandoned"
        ],
        120,
        "the rollback recorded as finished",
    )
    assert run["status"] == "succeeded_with_warnings" and run["note"] == f"rolled back to run {r1['run_id']}", run
    assert run["error"] == ROLLBACK_LEFT, run["error"]
    assert json.loads((published / "_manifest.json").read_text())["run_id"] == r1["run_id"]
    assert (published / "current").resolve().name == r1["run_id"]
    assert int(daemon.call("query", sql=orders)["rows"][0][0]) == n1
    same = daemon.call("pipeline_diff", run_a=r1["run_id"], run_b=run["run_id"])  # the rollback's own snapshot
    assert same["tables"] and all((t["added"], t["removed"], t["changed"] or 0) == (0, 0, 0) for t in same["tables"])
    assert [r["run_id"] for r in daemon.call("pipeline_runs", name="orders", limit=3)] == [
        run["run_id"],
        r2["run_id"],
        r1["run_id"],
    ]


def test_an_abandoned_run_whose_ingest_committed_counts_its_lines_and_is_the_last_run(daemon: DaemonHandle) -> None:
    """Tester of issue 18: the daemon is SIGKILLed while ``reference`` runs (after ``ingest`` committed); once told,
    the abandoned run's ``ingested`` is its committed ingest's lines (it said null while bronze held them), and it
    is the last run that did work in ``pipeline status``, the dashboard's card and ``/health`` (they named the run
    before it: an abandoned run had no ``finished_at``)."""
    spec = variant_yaml(daemon.tmp, "orders", step_overrides={}, extra_sql={"reference": SLOW})
    daemon.write_config(f"""pipelines:
  orders: {{file: {spec}, reference: {default_pipelines_dir().parent / "reference"}, on_new_files: false,
            demo_data: false}}
""")
    daemon.start()
    daemon.call("demo_data", orders=300, seed=51)
    started = daemon.call("pipeline_run", name="orders", wait=False)

    def reference_running() -> bool:
        run = next((p.get("active_run") for p in daemon.call("pipelines") if p["name"] == "orders"), None)
        states = {s["name"]: s["state"] for s in (run or {}).get("steps", [])}
        return states.get("ingest") in ("succeeded", "succeeded_with_warnings") and states.get("reference") == "running"

    wait_for(reference_running, 120, "ingest committed and reference running")
    pid = daemon.read_pid()
    assert pid is not None and daemon.proc is not None
    os.kill(pid, signal.SIGKILL)
    daemon.proc.wait(timeout=30)

    daemon.start()
    [run] = wait_for(
        lambda: [
            r for r in daemon.call("pipeline_runs", name="orders", limit=1) if "committed before" in (r["error"] or "")
        ],
        120,
        "the abandoned run told",
    )
    assert run["run_id"] == started["run_id"] and run["status"] == "abandoned", run
    bronze = int(daemon.call("query", sql="SELECT count(*) FROM bronze.orders_raw")["rows"][0][0])
    ingest = next(s for s in run["steps"] if s["name"] == "ingest")
    assert bronze > 0 and run["ingested"] == ingest["rows_out"] == bronze, (run["ingested"], ingest, bronze)
    assert run["finished_at"] is not None and run["duration_s"] is None
    [orders] = [p for p in daemon.call("pipelines") if p["name"] == "orders"]
    assert orders["last_run"]["run_id"] == started["run_id"]
    card = get(daemon.port, "/").text.split('<span class="label">Last run</span>', 1)[1].split("</div>", 1)[0]
    assert f'data-run="{started["run_id"]}"' in card and "duration unknown" in card, card  # not "0.00 s"
    code, body = health(daemon.port)
    assert code != 200 and any(started["run_id"] in p and "abandoned" in p for p in body["problems"]), body
    shown = daemon.cli("pipeline", "status", "orders")
    assert shown.returncode == 0 and started["run_id"] in shown.stdout, shown.stdout
    listed = daemon.cli("pipeline", "runs", "orders")
    assert f"{bronze:,}" in next(line for line in listed.stdout.splitlines() if started["run_id"] in line)
