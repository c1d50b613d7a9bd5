"""Which run the pages show (pipeline/engine/flowrun.py): the last run that did work counts an abandoned run (found
finished by the history) and never a skipped or running one; the flow graph shows, after an applied rollback, the
run it restored (also through a rollback of a rollback), passes over a rollback not applied, and never shows a run
whose steps were all skipped."""

from __future__ import annotations

from foss_supervisor.base.pipelinestates import RunMode, RunStatus, StepState
from foss_supervisor.pipeline.engine.flowrun import ROLLED_BACK, flow_run, last_worked
from foss_supervisor.pipeline.engine.history import RunRecord, StepRecord


def _run(
    run_id: str,
    status: RunStatus = RunStatus.SUCCEEDED,
    *,
    trigger: str = "manual",
    note: str | None = None,
    finished: bool = True,
) -> RunRecord:
    state = StepState.SKIPPED if trigger == "rollback" else StepState.SUCCEEDED
    return RunRecord(
        run_id=run_id,
        pipeline="p",
        mode=RunMode.RUN,
        trigger=trigger,
        status=status,
        started_at=1.0,
        finished_at=2.0 if finished else None,
        steps=(StepRecord("a", state=state), StepRecord("b", state=state)),
        note=note,
    )


def _flow(runs: list[RunRecord]) -> str | None:
    by_id = {r.run_id: r for r in runs}
    found = flow_run(runs, by_id.get)
    return None if found is None else found.run_id


def test_the_last_run_that_did_work() -> None:
    assert last_worked([_run("r3", RunStatus.RUNNING, finished=False), _run("r2", RunStatus.SKIPPED), _run("r1")]) == (
        _run("r1")
    )
    assert last_worked([_run("r2", RunStatus.ABANDONED), _run("r1")]) == _run("r2", RunStatus.ABANDONED)
    assert last_worked([_run("r1", RunStatus.ABANDONED, finished=False)]) is None  # not yet found by a history


def test_the_flow_after_rollbacks() -> None:
    r1, r2 = _run("r1"), _run("r2")
    back = _run("b1", trigger="rollback", note=f"{ROLLED_BACK}r1")
    assert _flow([back, r2, r1]) == "r1"
    assert _flow([_run("b2", trigger="rollback", note=f"{ROLLED_BACK}b1"), back, r2, r1]) == "r1"
    failed = _run("b3", RunStatus.FAILED, trigger="rollback", note="rollback to run r1 not applied")
    assert _flow([failed, r2, r1]) == "r2"  # its tables are as they were
    assert _flow([_run("b4", trigger="rollback", note=f"{ROLLED_BACK}gone"), r2]) is None  # no longer kept
    loop = [
        _run("x", trigger="rollback", note=f"{ROLLED_BACK}y"),
        _run("y", trigger="rollback", note=f"{ROLLED_BACK}x"),
    ]
    assert _flow(loop) is None
    assert _flow([_run("r3", RunStatus.FAILED), back, r1]) == "r3"
    assert _flow([]) is None
