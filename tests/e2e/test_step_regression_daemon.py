"""A step run over 1.5x the median of its previous ten successful runs, end to end: a real daemon whose run
history holds ten earlier runs of ``orders`` (every step 1 µs, written before it starts), one real run
through the DuckDB worker, and then each step that succeeded is flagged as a ``step_regressed`` hook
delivery, a ``StepRegressed`` line of the journal, the ``/metrics`` gauge, and on the pipeline page."""

from __future__ import annotations

import json
import time

from helpers import PY, DaemonHandle, get, wait_for

from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.config import parse_config
from foss_supervisor.core.eventjournal import read_journal
from foss_supervisor.pipeline.engine.history import RunRecord, StepRecord
from foss_supervisor.pipeline.engine.service import load_specs

SEEDED_S = 1e-6  # every earlier run of every step: any real step takes longer than 1.5x this


def seed_history(daemon: DaemonHandle) -> list[str]:
    """Ten successful runs of every step of ``orders`` in the daemon's run history; the step names."""
    config = parse_config(daemon.config_path.read_text(), daemon.config_path)
    steps = [s.name for s in load_specs(config)[0].steps]
    daemon.state_dir.mkdir(mode=0o700, exist_ok=True)
    start = time.time() - 86400
    with (daemon.state_dir / "pipeline_runs.jsonl").open("w", encoding="utf-8") as f:
        for i in range(10):
            done = tuple(StepRecord(n, StepState.SUCCEEDED, attempts=1, duration_s=SEEDED_S) for n in steps)
            run = RunRecord(
                f"seed{i:02d}",
                "orders",
                RunMode.RUN,
                "manual",
                RunStatus.SUCCEEDED,
                start + 60 * i,
                done,
                start + 60 * i + 1,
            )
            f.write(json.dumps(run.to_dict()) + "\n")
    return steps


def test_every_step_slower_than_its_history_is_flagged_everywhere(daemon: DaemonHandle) -> None:
    seen = daemon.tmp / "regressions.jsonl"
    record = f"import sys; open('{seen}', 'a').write(sys.stdin.read() + chr(10))"
    daemon.write_config(
        "pipelines:\n  orders: {on_new_files: false, demo_data: false}\n"
        "hooks:\n  slow: {on: [step_regressed], select: [orders],"
        f" command: ['{PY}', '-c', \"{record}\"]}}\n"
    )
    seed_history(daemon)
    daemon.start()
    daemon.call("demo_data", orders=300)
    run = daemon.call("pipeline_run", name="orders", wait=True)
    assert run["status"] == "succeeded", run
    succeeded = {s["name"] for s in run["steps"] if s["state"] in ("succeeded", "succeeded_with_warnings")}
    assert succeeded

    def delivered() -> list[dict[str, object]] | None:
        got = [json.loads(line) for line in seen.read_text().splitlines() if line] if seen.exists() else []
        return got if {g["step"] for g in got} >= succeeded else None

    payloads = wait_for(delivered, 30, "a step_regressed delivery for every step that succeeded")
    for p in payloads:
        assert p["kind"] == "step_regressed" and p["pipeline"] == "orders" and p["run_id"] == run["run_id"]
        assert p["median_s"] == SEEDED_S and p["previous"] == 10 and float(p["ratio"]) > 1.5  # type: ignore[arg-type]

    def journaled() -> list[dict[str, object]] | None:
        found = [e for e in read_journal(daemon.state_dir / "history") if e["type"] == "StepRegressed"]
        return found if {e["step"] for e in found} >= succeeded else None

    kept = wait_for(journaled, 15, "the journal's StepRegressed lines")
    assert all(e["run_id"] == run["run_id"] for e in kept)

    metrics = get(daemon.port, "/metrics").text
    for step in succeeded:
        assert f'foss_supervisor_pipeline_step_regressed{{pipeline="orders",step="{step}"}} 1.0' in metrics

    page = json.loads(get(daemon.port, "/pipeline-management?format=json").body)
    trends = page["pipelines"][0]["step_trends"]
    assert {s for s, t in trends.items() if t["regressed"]} == succeeded
    assert "data-regressed" in get(daemon.port, "/pipeline-management", {"Accept": "text/html"}).text
