"""``why`` beyond programs, through a real daemon, from real scenarios (issue 19's shapes, issue 20's walk):
a table that a program stopped by hand leaves late walks up to that program and who stopped it; a run that a
quality error threshold failed is explained by the threshold, for the pipeline, the run and the table the step
writes; each lists what is downstream of it, and exits 3 (not as wanted)."""

from __future__ import annotations

import json
from typing import Any

from helpers import PY, DaemonHandle, wait_for
from helpers.pipeline import QUALITY_RULES, quality_pipeline


def why(daemon: DaemonHandle, name: str) -> tuple[int, dict[str, Any]]:
    done = daemon.cli("why", name, "--json")
    assert done.returncode in (0, 3), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_a_late_table_is_explained_by_the_feeder_an_operator_stopped(daemon: DaemonHandle) -> None:
    daemon.write_config(
        "programs:\n"
        f"  collector: {{command: ['{PY}', '-c', 'import time; time.sleep(600)'], start_timeout: 0.2,"
        " feeds: [bronze.events]}\n"
        "tables:\n"
        "  bronze.events: {fresh_within: 1s}\n"
    )
    daemon.start()
    code, fine = why(daemon, "bronze.events")
    assert code == 0 and fine["as_wanted"] and fine["chain"] == ["table bronze.events ok"], fine
    assert daemon.cli("ctl", "stop", "collector").returncode == 0
    wait_for(lambda: why(daemon, "bronze.events")[1]["state"] == "late", 30, "the table late")
    code, late = why(daemon, "bronze.events")
    assert code == 3 and late["kind"] == "table" and not late["as_wanted"]
    chain = late["chain"]
    assert chain[0] == "table bronze.events late"
    assert chain[2] == "fed by program collector, which is STOPPED", chain
    assert chain[3] == "collector STOPPED (as wanted)", chain  # as its operator wants, not as the table does
    assert chain[4].startswith("stop requested by uid ") and " via control" in chain[4], chain
    plain = daemon.cli("why", "table:bronze.events")
    assert plain.returncode == 3 and plain.stdout.startswith("table bronze.events late <- "), plain.stdout
    _, feeder = why(daemon, "collector")
    assert feeder["affected"] == ["table:bronze.events"]


def test_a_failed_quality_threshold_explains_the_pipeline_the_run_and_the_table_it_writes(
    daemon: DaemonHandle,
) -> None:
    home = daemon.tmp / "q"
    home.mkdir()
    ws = {"landing": home / "landing", "reference": home / "ref", "db": home / "w.duckdb"}
    ws["landing"].mkdir()
    ws["reference"].mkdir()
    error = [{"severity": "error", "min_pass_rate": 0.9}]
    spec = quality_pipeline(home, ws, QUALITY_RULES, thresholds=error)
    # one good row of four: 25 % pass, under the error threshold's 90 %
    rows = ["1,a,5,AB,Z1,9", ",a,5,AB,Z1,9", "3,zz,5,AB,Z1,9", "4,a,500,AB,Z1,9"]
    (ws["landing"] / "b.csv").write_text("id,kind,amount,code,zone,lim\n" + "\n".join(rows) + "\n")
    folders = f"landing: {ws['landing']}, reference: {ws['reference']}"
    daemon.write_config(f"pipelines:\n  q: {{file: {spec}, {folders}, on_new_files: false}}\n")
    daemon.start()
    run = daemon.call("pipeline_run", name="q", wait=True)
    assert run["status"] == "failed", run

    code, pipeline = why(daemon, "q")
    assert code == 3 and pipeline["kind"] == "pipeline"
    assert pipeline["chain"][0] == "pipeline q failed"
    said = pipeline["chain"][1]
    assert said.startswith(f"run {run['run_id']} of q failed at ") and said.endswith(" (started by manual)"), said
    threshold = f"quality_failed: error threshold of the step ({spec}:"  # the YAML line, then the key
    assert pipeline["chain"][2].startswith(f"step check failed: {threshold}"), pipeline["chain"]
    assert ": steps.check.thresholds[0]): pass rate 25.0 %" in pipeline["chain"][2], pipeline["chain"]

    code, by_run = why(daemon, run["run_id"])
    assert code == 3 and by_run["kind"] == "run" and by_run["chain"] == pipeline["chain"][1:]

    # the run's critical chain: check ended last, after ingest, after discover; nothing ran after check
    analyzed = json.loads(daemon.cli("analyze", run["run_id"], "--json").stdout)
    assert [s["name"] for s in analyzed["chain"]] == ["check", "ingest", "discover"], analyzed
    assert analyzed["total_s"] >= analyzed["chain"][0]["offset_s"] > analyzed["chain"][1]["offset_s"] > 0
    text = daemon.cli("analyze", run["run_id"]).stdout.splitlines()
    assert text[0].startswith(f"run {run['run_id']} of q failed in ") and text[-3].startswith("check @"), text

    wait_for(lambda: why(daemon, "q_silver.ok")[1]["chain"][1:], 30, "the table's writer on the graph")
    code, table = why(daemon, "q_silver.ok")
    assert code == 3 and not table["as_wanted"], table
    assert table["chain"][1:3] == ["written by step q/check, which is failed", "step q/check failed"], table
    assert table["chain"][3].startswith(f"in run {run['run_id']} at "), table
    assert table["chain"][3].split(": ", 1)[1].startswith(threshold), table

    # the same run as rows of supervision.steps: each step's end, the worker's figures where it succeeded
    sql = (
        "SELECT step, state, cpu_s IS NOT NULL AND peak_rss_bytes > 0 FROM supervision.steps"
        f" WHERE run_id = '{run['run_id']}' ORDER BY ts, step"
    )

    def steps() -> list[list[Any]]:
        done = daemon.cli("query", sql, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["rows"]  # type: ignore[no-any-return]

    rows = wait_for(lambda: got if len(got := steps()) == 3 else None, 30, "the run's steps in supervision.steps")
    assert rows == [["discover", "succeeded", True], ["ingest", "succeeded", True], ["check", "failed", False]]
