"""What the pages say of runs (issue 18): a run that kept nothing is not green anywhere (failure 3: orders-shaped
files in the trips landing end succeeded_with_warnings, amber on the pages, counted in /metrics, a warning of
/health); the last-run card shows the run in progress, not the previous one's link (failure 2)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import DaemonHandle, get, wait_for
from helpers.web import health


def test_a_run_below_the_default_threshold_warns_on_every_surface(daemon: DaemonHandle) -> None:
    daemon.write_config("pipelines:\n  trips: {on_new_files: true}\n", extra="warehouse: {watch_interval: 0.2s}")
    daemon.start()
    d = daemon
    landing = d.state_dir / "data" / "landing" / "trips"
    orders = "order_id,customer_id,product_id,quantity,unit_price,ordered_at\n" + "".join(
        f"A{i},C{i},P{i % 5},1,9.99,2024-05-01T08:00:00Z\n" for i in range(40)
    )
    (landing / ".orders.csv").write_text(orders)
    (landing / ".orders.csv").rename(landing / "orders.csv")

    def finished() -> dict | None:
        [p] = d.call("pipelines")
        return p["last_run"]  # type: ignore[no-any-return]

    run = wait_for(finished, 60, "the trips run")
    clean = next(s for s in run["steps"] if s["name"] == "clean")
    assert (run["status"], run["reason"], clean["metrics"]["valid"]) == ("succeeded_with_warnings", "files_landed", 0)
    assert clean["warnings"] == [
        "warn threshold of the step (default threshold): pass rate 0.0 % is below min_pass_rate 50 %"
    ]

    status, report = health(d.port)
    assert status == 200 and report["status"] == "degraded", report
    assert (
        f"pipeline trips: last run {run['run_id']} succeeded_with_warnings: {clean['warnings'][0]}"
        in report["warnings"]
    )

    _, _, metrics = get(d.port, "/metrics")
    line = 'foss_supervisor_pipeline_runs_total{pipeline="trips",status="succeeded_with_warnings"} 1.0'
    assert line in metrics.decode(), metrics.decode()[:2000]

    for page in ("/", "/pipeline-management", f"/runs/{run['run_id']}"):
        status, _, html = get(d.port, page)
        assert status == 200 and b'class="badge s-succeeded_with_warnings"' in html, page


def test_the_last_run_card_shows_the_run_in_progress_with_its_own_link(daemon: DaemonHandle, tmp_path: Path) -> None:
    steps = Path(__file__).parents[1] / "process" / "pipeline" / "pipeline_test_steps.py"
    (tmp_path / "hold.yaml").write_text(
        "name: hold\nfolders: {landing: land, reference: ., warehouse: w.duckdb}\nsteps:\n"
        f"  - {{name: hold, kind: python, callable: '{steps}:gated',"
        f" params: {{started: '{tmp_path}/started', release: '{tmp_path}/release'}}}}\n"
    )
    daemon.write_config(f"pipelines:\n  hold: {{file: {tmp_path}/hold.yaml, on_new_files: false}}\n")
    daemon.start()
    d = daemon
    (tmp_path / "release").write_text("go")
    first = d.call("pipeline_run", name="hold", wait=True)
    assert first["status"] == "succeeded" and first["reason"] == "manual"

    (tmp_path / "release").unlink()
    (tmp_path / "started").unlink()
    second = d.call("pipeline_run", name="hold")
    wait_for(lambda: (tmp_path / "started").exists(), 30, "the second run's step to start")
    [view] = json.loads(get(d.port, "/pipeline-management?format=json").body)["pipelines"]
    assert view["active_run"]["run_id"] == second["run_id"] != first["run_id"]
    assert view["active_run"]["elapsed_s"] >= 0 and view["last_run"]["run_id"] == first["run_id"]
    _, _, html = get(d.port, "/")
    card = html.split(b'<span class="label">Last run</span>', 1)[1].split(b"</div>", 1)[0]
    assert f'href="/runs/{second["run_id"]}"'.encode() in card and b"so far" in card, card
    assert first["run_id"].encode() not in card
    (tmp_path / "release").write_text("go")
    wait_for(lambda: d.call("pipelines")[0]["last_run"]["run_id"] == second["run_id"], 30, "the second run's end")
