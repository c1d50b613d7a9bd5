"""Retrying a failed run through a real daemon: the CLI, the HTTP command with login and CSRF, the run page's
buttons, and in headless Chromium a click on "Retry from this step" that follows the new run to its end.

The pipeline is the shipped orders pipeline whose enrich step also reads ``gate.csv`` from its reference
folder: the first run fails there, the test writes the file, the retry succeeds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import DaemonHandle, get, request, wait_for
from helpers.browser import Watched

from foss_supervisor.cli.terminal import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from foss_supervisor.pipeline.engine.spec import default_pipelines_dir
from foss_supervisor.web.auth import csrf_token

GATE = "CREATE OR REPLACE TEMP TABLE _gate AS SELECT * FROM read_csv(getvariable('reference_dir') || '/gate.csv');\n"


def gated_pipeline(tmp: Path) -> Path:
    """orders.yaml with absolute SQL and Python paths and a gate in enrich (no retries: it fails at once)."""
    shipped = default_pipelines_dir() / "orders.yaml"
    raw = yaml.safe_load(shipped.read_text())
    raw["setup"] = str(shipped.parent / raw["setup"])
    raw["demo_data"] = str(shipped.parent / raw["demo_data"])
    for step in raw["steps"]:
        if ".py:" in step.get("callable", ""):
            step["callable"] = str(shipped.parent / step["callable"])
        if "sql" in step:
            step["sql"] = str(shipped.parent / step["sql"])
        if step["name"] == "enrich":
            gated = tmp / "enrich_gated.sql"
            gated.write_text(GATE + Path(step["sql"]).read_text())
            step.update(sql=str(gated), retries=0)
    out = tmp / "gated.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


@pytest.fixture
def failed(daemon: DaemonHandle) -> tuple[DaemonHandle, dict[str, Any]]:
    """A daemon whose orders pipeline ran once and failed in enrich; ``daemon.gate`` is the file that fixes it."""
    reference = daemon.tmp / "reference"
    shutil.copytree(default_pipelines_dir().parent / "reference", reference)
    daemon.write_config(f"""pipelines:
  orders: {{file: {gated_pipeline(daemon.tmp)}, reference: {reference}, on_new_files: false, demo_data: false}}
""")
    daemon.start()
    daemon.token = (daemon.state_dir / "api-token").read_text().strip()  # type: ignore[attr-defined]
    daemon.gate = reference / "gate.csv"  # type: ignore[attr-defined]
    daemon.call("demo_data", orders=500)
    run = daemon.call("pipeline_run", name="orders", wait=True)
    assert run["status"] == "failed" and "gate.csv" in run["error"], run
    return daemon, run


def test_cli_retry_refuses_with_the_reason_then_retries_from_the_failed_step(
    failed: tuple[DaemonHandle, dict[str, Any]],
) -> None:
    d, run = failed
    rid = run["run_id"]
    refused = d.cli("pipeline", "retry", rid, "--step", "aggregate")
    assert refused.returncode == EXIT_FAIL and "retry from enrich" in refused.stdout + refused.stderr, refused
    assert d.cli("pipeline", "retry").returncode == EXIT_USAGE
    assert d.cli("pipeline", "run", "orders", "--step", "enrich").returncode == EXIT_USAGE

    d.gate.write_text("ok\n1\n")  # type: ignore[attr-defined]
    done = d.cli("pipeline", "retry", rid, "--step", "enrich", "--wait")
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert f"retrying run {rid}" in done.stdout and f"retry of run {rid}" in done.stdout
    assert "[9/9] report: succeeded" in done.stdout
    assert done.stdout.count(f"(reused from run {rid})") == 6  # discover ... deduplicate, each in its line
    [latest, source] = d.call("pipeline_runs", name="orders", limit=2)
    assert (latest["retry_of"], latest["status"], source["run_id"]) == (rid, "succeeded", rid)
    again = d.cli("pipeline", "retry", rid)
    assert again.returncode == EXIT_FAIL and "not the latest run" in again.stdout + again.stderr
    assert d.cli("pipeline", "retry", latest["run_id"]).returncode == EXIT_FAIL  # succeeded: nothing to retry


def test_http_retry_needs_login_and_csrf_and_the_run_pages_offer_it(
    failed: tuple[DaemonHandle, dict[str, Any]],
) -> None:
    d, run = failed
    rid, token, port = run["run_id"], d.token, d.port  # type: ignore[attr-defined]
    status, _, body = get(port, f"/runs/{rid}?format=json")
    assert status == 200 and json.loads(body)["run"]["retry"] == {
        "possible": True,
        "reason": None,
        "from_steps": ["enrich"],
    }
    status, _, html = get(port, f"/runs/{rid}", {"Accept": "text/html"})
    assert html.count(b'data-command="pipeline_retry"') == 2 and b"Retry from this step" in html
    assert b'aria-label="Retry from step enrich"' in html
    status, _, html = get(port, "/pipeline-management", {"Accept": "text/html"})
    assert f'{{"run_id": "{rid}"}}'.encode() in html and b"Retry failed steps" in html

    path, args = "/api/commands/pipeline_retry", {"run_id": rid}
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    assert request(port, "POST", path, args)[0] == 401  # no token at all
    assert request(port, "POST", path, args, {"Cookie": f"foss_token={token}", **same})[0] == 403  # no CSRF token
    browser = {"Cookie": f"foss_token={token}", "X-CSRF-Token": csrf_token(token), **same}
    status, _, body = request(port, "POST", path, {**args, "step": "report"}, browser)
    assert status == 409 and "retry from aggregate" in json.loads(body)["error"]["message"]
    assert len(d.call("pipeline_runs", name="orders")) == 1  # nothing ran

    d.gate.write_text("ok\n1\n")  # type: ignore[attr-defined]
    status, _, body = request(port, "POST", path, {**args, "wait": True}, browser)
    assert status == 200, body
    new = json.loads(body)["result"]
    assert new["status"] == "succeeded" and new["retry_of"] == rid
    status, _, html = get(port, f"/runs/{new['run_id']}", {"Accept": "text/html"})
    assert f'retry of <a href="/runs/{rid}" data-retry-of>'.encode() in html
    assert b'data-command="pipeline_retry"' not in html  # a run that succeeded offers no retry
    status, _, body = get(port, f"/runs/{rid}?format=json")
    assert "not the latest run" in json.loads(body)["run"]["retry"]["reason"]


def test_retry_from_this_step_in_chromium_follows_the_new_run(
    failed: tuple[DaemonHandle, dict[str, Any]], browser: Any
) -> None:
    d, run = failed
    rid = run["run_id"]
    d.gate.write_text("ok\n1\n")  # type: ignore[attr-defined]
    w = Watched(browser)
    try:
        w.page.goto(f"http://127.0.0.1:{d.port}/login?token={d.token}&next=/runs/{rid}")  # type: ignore[attr-defined]
        w.page.locator("#session", has_text="logged in").wait_for()
        w.page.locator("#live.ok").wait_for(timeout=10_000)
        w.page.click('button[aria-label="Retry from step enrich"]')
        w.page.wait_for_url(lambda url: "/runs/" in url and rid not in url, timeout=20_000)
        new_id, followed = w.page.url.rsplit("/", 1)[1], w.navigations
        w.page.locator("#live.ok").wait_for(timeout=10_000)
        w.page.locator("h1 .badge", has_text="succeeded").wait_for(timeout=60_000)
        w.page.locator(f'a[data-retry-of][href="/runs/{rid}"]').wait_for()
        assert w.page.locator("tr", has_text="ingest").locator(".badge", has_text="skipped").count() == 1
        record = wait_for(
            lambda: (r := d.call("pipeline_run_info", run_id=new_id))["finished_at"] and r, 30, "the retry's end"
        )
        assert record["retry_of"] == rid and record["status"] == "succeeded"
        assert w.navigations == followed  # the new run's page followed it to its end without a reload
        assert w.errors == [], w.errors
    finally:
        w.close()


def test_a_failed_runs_long_error_wraps_at_400_px(failed: tuple[DaemonHandle, dict[str, Any]], browser: Any) -> None:
    """A DuckDB error holds long unbroken text (a path, a ^^^^ marker): the run page and /health wrap it
    instead of scrolling sideways on a phone."""
    d, run = failed
    w = Watched(browser, width=400, session=d)
    try:
        for path, text in ((f"/runs/{run['run_id']}", "gate.csv"), ("/health", "gate.csv")):
            w.page.goto(f"http://127.0.0.1:{d.port}{path}")
            w.page.get_by_text(text).first.wait_for()
            overflow = w.page.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 0, (path, overflow)
        assert w.errors == [] or all("503" in e for e in w.errors), w.errors  # /health answers 503: degraded
    finally:
        w.close()
