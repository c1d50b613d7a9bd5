"""The pipeline's run history on a real, full tmpfs (root only): no run is lost and no line is torn."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import fill, tmpfs

from foss_supervisor.base.pipelinestates import RunMode, RunStatus
from foss_supervisor.pipeline.engine.history import RunHistory, RunRecord, StepRecord


def test_run_history_on_a_full_disk_loses_no_run_and_leaves_no_torn_line(tmp_path: Path) -> None:
    def record(i: int) -> RunRecord:
        steps = tuple(StepRecord(name=f"step{n}", error="e" * 2000) for n in range(4))  # lines bigger than a block
        return RunRecord(
            run_id=f"r{i}",
            pipeline="orders",
            mode=RunMode.RUN,
            trigger="test",
            status=RunStatus.SUCCEEDED,
            started_at=float(i),
            steps=steps,
        )

    with tmpfs(tmp_path / "state", "256k") as state:
        history = RunHistory(state / "pipeline_runs.jsonl")
        history.append(record(0))
        filler = fill(state)
        os.truncate(filler, filler.stat().st_size - 4096)  # room for part of a line: a write that tears
        for i in range(1, 6):
            history.append(record(i))  # never raises: counted and kept
        assert [r.run_id for r in history.list()] == [f"r{i}" for i in range(5, -1, -1)]
        assert any("pipeline_runs.jsonl" in p and "No space left" in p for p in history.write_failures.problems)
        filler.unlink()
        history.append(record(6))
        assert history.write_failures.problems == []
        lines = (state / "pipeline_runs.jsonl").read_text().splitlines()
        assert [json.loads(line)["run_id"] for line in lines] == [f"r{i}" for i in range(7)]
        assert len(RunHistory(state / "pipeline_runs.jsonl").list()) == 7
