"""A daemon killed (SIGKILL) in the middle of a run: the next daemon tells that run ``abandoned`` with the steps
whose transaction had committed as succeeded, with their rows (read from the worker's ledger), so the history adds
up with the tables; a retry then starts after them (newcomer finding: every step said pending, rows in bronze).
And ``pipeline validate`` of the daemon's pipeline without ``--config``."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

from helpers import PY, DaemonHandle, wait_for
from helpers.pipeline import two_step_pipeline

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
