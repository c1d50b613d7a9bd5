"""Objectives and alerts through a real daemon: a program stopped by hand makes the table it feeds late, a real
``command:`` hook records exactly one alert and, once the program runs again, exactly one resolved notice; the
late objective shows in ``status --json``, ``/health`` (degraded), ``/metrics``, ``/api/v1/graph`` and ``alerts``;
an acknowledgement and a silence go through the CLI; a restarted daemon does not tell the open incident again."""

from __future__ import annotations

import json
from typing import Any

from helpers import PY, DaemonHandle, command, get, wait_for
from helpers.pipeline import two_step_pipeline


def _recorded(path: Any) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _objective(daemon: DaemonHandle) -> dict[str, Any]:
    status = json.loads(daemon.cli("status", "--json").stdout)
    return next(o for o in status["objectives"] if o["id"] == "freshness:table:bronze.events")


def test_a_stopped_feeder_fires_one_alert_through_a_command_hook_and_one_resolved(daemon: DaemonHandle) -> None:
    seen = daemon.tmp / "alerts.jsonl"
    record = f"import sys; open('{seen}', 'a').write(sys.stdin.read() + chr(10))"
    daemon.write_config(
        "programs:\n"
        f"  collector: {{command: ['{PY}', '-c', 'import time; time.sleep(600)'], start_timeout: 0.2,"
        " feeds: [bronze.events]}\n"
        "tables:\n"
        "  bronze.events: {fresh_within: 2s}\n"
        "hooks:\n"
        f"  record: {{on: [alert_firing, alert_resolved], command: ['{PY}', '-c', \"{record}\"]}}\n"
    )
    daemon.start()
    assert _objective(daemon)["state"] == "ok"
    stopped = daemon.cli("ctl", "stop", "collector")
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: _recorded(seen), 30, "the firing alert recorded by the hook")
    late = _objective(daemon)
    assert late["state"] == "late" and late["age_s"] >= 2.0
    fired = _recorded(seen)[0]
    assert (fired["kind"], fired["rule"], fired["subject"]) == ("alert_firing", "objective", "table:bronze.events")
    assert fired["key"] == "objective:freshness:table:bronze.events" and fired["repeat"] is False

    health = get(daemon.port, "/health").json()
    assert health["status"] == "degraded" and any("table:bronze.events late" in w for w in health["warnings"])
    metrics = get(daemon.port, "/metrics").body.decode()
    assert 'foss_supervisor_objective_ok{kind="freshness",name="table:bronze.events"} 0.0' in metrics
    graph = get(daemon.port, "/api/v1/graph").json()
    table = next(n for n in graph["nodes"] if n["id"] == "table:bronze.events")
    assert table["state"] == "late" and table["detail"]["objective"]["state"] == "late"

    page = get(daemon.port, "/alerts", {"Accept": "text/html"})
    assert page.status == 200 and b"objective:freshness:table:bronze.events" in page.body
    twin = get(daemon.port, "/alerts?format=json").json()
    assert [i["key"] for i in twin["alerts"]["open"]] == [fired["key"]]
    listed = json.loads(daemon.cli("alerts", "--json").stdout)
    assert [i["id"] for i in listed["open"]] == [fired["id"]]
    acked = daemon.cli("alerts", "ack", str(fired["id"]))
    assert acked.returncode == 0, acked.stderr
    silenced = daemon.cli("alerts", "silence", "program:collector:fatal", "--for", "90m")
    assert silenced.returncode == 0, silenced.stderr
    reply = command(daemon.port, "alerts")  # the same command through the web
    assert reply.status == 200, reply.body
    over_http = reply.json()["result"]
    assert over_http["open"][0]["acked"] is True
    assert [s["key"] for s in over_http["silences"]] == ["program:collector:fatal"]

    daemon.cli("stop")  # a restart keeps the open incident: it is not told again
    wait_for(lambda: daemon.proc is not None and daemon.proc.poll() is not None, 30, "daemon stopped")
    daemon.start()
    assert daemon.call("alerts")["open"][0]["id"] == fired["id"]
    assert [s["key"] for s in daemon.call("alerts")["silences"]] == ["program:collector:fatal"]  # kept too
    lifted = daemon.cli("alerts", "unsilence", "program:collector:fatal")
    assert lifted.returncode == 0, lifted.stderr
    assert daemon.call("alerts")["silences"] == []
    assert daemon.cli("alerts", "unsilence", "program:collector:fatal").returncode != 0  # not silenced now
    started = daemon.cli("ctl", "start", "collector")
    assert started.returncode == 0, started.stderr
    wait_for(lambda: len(_recorded(seen)) >= 2, 30, "the resolved notice recorded by the hook")
    wait_for(lambda: _objective(daemon)["state"] == "ok", 10, "the table fresh again")
    kinds = [(r["kind"], r["id"]) for r in _recorded(seen)]
    assert kinds == [("alert_firing", fired["id"]), ("alert_resolved", fired["id"])]
    assert get(daemon.port, "/health").json()["status"] == "healthy"


def test_a_failed_run_fires_one_alert_and_a_good_run_resolves_it_and_freshens_its_pipeline_and_tables(
    daemon: DaemonHandle,
) -> None:
    home = daemon.tmp / "s"
    home.mkdir()
    gated = "CREATE OR REPLACE TEMP TABLE _g AS SELECT * FROM read_csv(getvariable('reference_dir') || '/gate.csv');\n"
    spec = two_step_pipeline(home, gated + "SELECT 1 AS rows_in, 1 AS rows_out;")
    seen = daemon.tmp / "alerts.jsonl"
    record = f"import sys; open('{seen}', 'a').write(sys.stdin.read() + chr(10))"
    daemon.write_config(
        "pipelines:\n"
        f"  s: {{file: {spec}, on_new_files: false, fresh_within: 1h}}\n"
        "tables:\n"
        "  s_raw.total: {fresh_within: 1h}\n"
        "hooks:\n"
        f"  record: {{on: [alert_firing, alert_resolved], select: [s], command: ['{PY}', '-c', \"{record}\"]}}\n"
    )
    daemon.start()
    failed = daemon.call("pipeline_run", name="s", wait=True)
    assert failed["status"] == "failed", failed
    wait_for(lambda: _recorded(seen), 30, "the failed run's alert recorded by the hook")
    fired = _recorded(seen)[0]
    assert (fired["kind"], fired["key"], fired["subject"]) == ("alert_firing", "pipeline:s:failed", "pipeline:s")
    (home / "gate.csv").write_text("x\n1\n")
    good = daemon.call("pipeline_run", name="s", wait=True)
    assert good["status"] == "succeeded", good
    wait_for(lambda: len(_recorded(seen)) >= 2, 30, "the resolved notice recorded by the hook")
    assert [(r["kind"], r["id"]) for r in _recorded(seen)] == [
        ("alert_firing", fired["id"]),
        ("alert_resolved", fired["id"]),
    ]
    objectives = {o["id"]: o for o in daemon.call("objectives")}
    for objective_id in ("freshness:pipeline:s", "freshness:table:s_raw.total"):  # s owns the schema s_raw
        assert objectives[objective_id]["state"] == "ok"
        assert objectives[objective_id]["last_write_at"] == good["finished_at"]
