"""Held files through a real daemon and the real CLI (issue 18, a tester's find): a batch below the error
threshold fails its run and is held; ``pipeline status``, the run's note and the pipeline page say so with a
count; a good file then goes through; ``pipeline release`` (a command of the registry, so the control socket
and the HTTP API have it) refuses what is not held and makes the held file pending, ingested by the next run."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import DaemonHandle, get
from helpers.pipeline import variant_yaml

from foss_supervisor.cli.terminal import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from foss_supervisor.pipeline.engine.spec import default_pipelines_dir

HEADER = "order_id,customer_id,order_ts,product_id,quantity,unit_price,currency,country,status,updated_at"
GOOD = "G{n},C1,2024-03-01T10:00:00Z,P001,2,10.50,USD,US,paid,2024-03-01T10:00:00Z"
MISSING_ID = ",C5,2024-03-01T10:00:00Z,P001,1,1.00,USD,US,paid,2024-03-01T10:00:00Z"


def test_cli_status_and_release_of_a_held_batch(daemon: DaemonHandle, tmp_path: Path) -> None:
    strict = variant_yaml(
        tmp_path,
        "strict",
        step_overrides={"validate": {"thresholds": [{"severity": "error", "min_pass_rate": 0.5}], "retries": 0}},
    )
    landing = tmp_path / "landing"
    landing.mkdir()
    daemon.write_config(f"""pipelines:
  orders: {{file: {strict}, reference: {default_pipelines_dir().parent / "reference"}, landing: {landing},
            on_new_files: false, demo_data: false}}
""")
    daemon.start()
    (landing / "bad.csv").write_text("\n".join([HEADER, GOOD.format(n=1), *[MISSING_ID] * 4]) + "\n")
    failed = daemon.call("pipeline_run", name="orders", wait=True)
    assert failed["status"] == "failed" and failed["held"] == [str(landing / "bad.csv")], failed
    assert "held 1 file(s) (5 lines) below the error threshold of step validate: bad.csv" in failed["note"]

    status = daemon.cli("pipeline", "status")
    assert "held files: 1 (bad.csv; `pipeline release orders --all`)" in status.stdout, status.stdout
    [entry] = [p for p in json.loads(get(daemon.port, "/pipeline-management?format=json").body)["pipelines"]]
    assert entry["held"]["count"] == 1 and entry["held"]["files"][0]["held_run"] == failed["run_id"]
    html = get(daemon.port, "/pipeline-management").text
    assert 'data-held-count="1"' in html and 'data-held="1">1 file(s) held' in html  # the panel, the run's row
    history = daemon.cli("pipeline", "runs", "orders").stdout.splitlines()
    assert history[1].split()[:4] == [failed["run_id"], "orders", "failed", "(1"], history
    assert history[1].endswith(" 0 (5 held)"), history  # INGESTED: none of its lines stayed in bronze

    (landing / "good.csv").write_text("\n".join([HEADER, GOOD.format(n=2), GOOD.format(n=3)]) + "\n")
    good = daemon.call("pipeline_run", name="orders", wait=True)
    assert good["status"] == "succeeded" and good["held"] == [], good

    usage = daemon.cli("pipeline", "release", "orders")
    assert usage.returncode == EXIT_USAGE and "needs held files or --all" in usage.stderr, usage
    refused = daemon.cli("pipeline", "release", "orders", "good.csv")
    assert refused.returncode == EXIT_FAIL and "not held in orders: good.csv (held: bad.csv)" in refused.stderr, refused
    released = daemon.cli("pipeline", "release", "orders", "bad.csv")
    assert released.returncode == EXIT_OK and "released 1 file(s) of orders" in released.stdout + released.stderr
    assert "held files" not in daemon.cli("pipeline", "status").stdout

    # released and still below the threshold: its next run ingests it, fails again, and holds it again
    again = daemon.call("pipeline_run", name="orders", wait=True)
    assert again["status"] == "failed" and again["held"] == [str(landing / "bad.csv")], again
    assert again["steps"][1]["metrics"]["files"] == 1  # ingest took the released file anew

    # re-landed with other content that fails too: one held file with two contents, listed and released once
    bad = landing / "bad.csv"
    bad.write_text("\n".join([HEADER, GOOD.format(n=9), *[MISSING_ID] * 6]) + "\n")
    twice = daemon.call("pipeline_run", name="orders", wait=True)
    assert twice["status"] == "failed" and twice["held"] == [str(bad)], twice
    status = daemon.cli("pipeline", "status").stdout
    assert "held files: 1 (bad.csv (2 contents); `pipeline release orders --all`)" in status, status
    [entry] = json.loads(get(daemon.port, "/pipeline-management?format=json").body)["pipelines"]
    [shown] = entry["held"]["files"]
    assert (shown["contents"], shown["lines"], shown["held_run"]) == (2, 12, twice["run_id"]), shown
    html = get(daemon.port, "/pipeline-management").text
    assert 'data-held-count="1"' in html and html.count('data-held-file="bad.csv"') == 1
    assert json.dumps(str(bad)) in html  # its Release button releases the path: every content the row stands for
    released = daemon.cli("pipeline", "release", "orders", "bad.csv")
    out = released.stdout + released.stderr
    assert released.returncode == EXIT_OK and "released 1 file(s) (2 held contents) of orders" in out, out
    # its older content is no longer in the file: one of the two can be ingested, and the CLI says so
    assert "the next run ingests 1 of the 2 held contents" in out and "marks the released one changed" in out, out
    assert out.count(str(bad)) == 1, out
    reply = daemon.call("pipeline_release", name="orders", all=True)
    assert reply["released"] == [] and reply["held"] == []
