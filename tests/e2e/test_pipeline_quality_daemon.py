"""A run that kept nothing is not green anywhere (issue 18, failure 3): orders-shaped files in the trips
landing end succeeded_with_warnings, amber on the pages, counted in /metrics, a warning of /health."""

from __future__ import annotations

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
