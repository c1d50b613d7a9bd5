"""The pipeline page's per-step series (:func:`foss_supervisor.web.views.pipelines.step_history`) from run
records shaped as the ``pipeline_runs`` command gives them."""

from __future__ import annotations

from typing import Any

from foss_supervisor.web.views.pipelines import STEP_RUNS, step_history


def run(start: float, steps: dict[str, tuple[str, float, int, int | None]], finished: bool = True) -> dict[str, Any]:
    """A run record: step -> (state, duration s, rows out, worker peak RSS bytes or None)."""
    return {
        "started_at": start,
        "finished_at": start + 10 if finished else None,
        "steps": [
            {"name": n, "state": st, "duration_s": d, "rows_out": rows, "metrics": measured(peak)}
            for n, (st, d, rows, peak) in steps.items()
        ],
    }


def measured(peak: int | None) -> dict[str, Any]:
    return {} if peak is None else {"worker_peak_rss_bytes": peak}


def test_each_step_over_the_finished_runs_oldest_first_none_where_it_did_not_succeed() -> None:
    runs = [
        run(300.0, {"ingest": ("succeeded", 3.0, 30, 200 * 2**20), "gold": ("failed", 9.0, 0, None)}),
        run(100.0, {"ingest": ("succeeded", 1.0, 10, None), "gold": ("succeeded_with_warnings", 2.0, 5, 2**20)}),
        run(400.0, {"ingest": ("running", 0.0, 0, None)}, finished=False),
        run(200.0, {"ingest": ("skipped", 0.0, 0, None)}),
    ]
    shown = step_history(runs, ["ingest", "gold", "publish"])
    assert shown["t"] == shown["pt"] == [100.0, 200.0, 300.0]
    assert shown["steps"]["ingest"] == {
        "duration": [1.0, None, 3.0],
        "rows": [10, None, 30],
        "peak_mib": [None, None, 200.0],
    }
    assert shown["steps"]["gold"] == {
        "duration": [2.0, None, None],
        "rows": [5, None, None],
        "peak_mib": [1.0, None, None],
    }
    assert shown["steps"]["publish"]["duration"] == [None, None, None]


def test_only_the_last_runs_are_shown() -> None:
    runs = [run(float(i), {"ingest": ("succeeded", float(i), i, None)}) for i in range(STEP_RUNS + 15)]
    shown = step_history(runs, ["ingest"])
    assert len(shown["t"]) == STEP_RUNS and shown["steps"]["ingest"]["duration"][-1] == STEP_RUNS + 14
