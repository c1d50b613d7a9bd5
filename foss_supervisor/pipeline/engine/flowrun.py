"""Which run the pages show for a pipeline: the last run that did work (the last-run card, ``pipeline status``) and
the run whose steps the flow graph shows.

A rollback is a run (reason ``rollback``, runsnapshots.py) whose steps are all ``skipped``: it ran none, it put
back the tables of the run it restored. The flow graph shows the steps that made the tables, so after a rollback
it shows the restored run's steps and their rows (tester of issue 18: a wall of nine ``skipped``). A rollback that
was not applied, or any run that ran no step, leaves the tables as the run before it made them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from foss_supervisor.base.pipelinestates import RUN_SUCCEEDED, RunStatus, StepState
from foss_supervisor.pipeline.engine.history import RunRecord

__all__ = ["DID_WORK", "ROLLED_BACK", "flow_run", "last_worked", "restored_by"]

#: what a run that did work ended as (an older history also holds skipped runs, which changed nothing)
DID_WORK = frozenset(RunStatus) - {RunStatus.SKIPPED, RunStatus.RUNNING}
#: how an applied rollback's ``note`` starts; the run id it restored follows
ROLLED_BACK = "rolled back to run "
_RESTORED = re.compile(re.escape(ROLLED_BACK) + r"([A-Za-z0-9_-]{1,100})")


def last_worked(runs: Iterable[RunRecord]) -> RunRecord | None:
    """The first of ``runs`` (newest first) that finished and did work (an abandoned run counts: history.py), or
    None."""
    return next((r for r in runs if r.finished_at is not None and r.status in DID_WORK), None)


def restored_by(run: RunRecord) -> str | None:
    """The run id an applied rollback ``run`` restored (its note), else None (not a rollback, or not applied)."""
    if run.reason != "rollback" or run.status not in RUN_SUCCEEDED:
        return None
    found = _RESTORED.fullmatch(run.note or "")
    return found.group(1) if found else None


def flow_run(runs: Iterable[RunRecord], get: Callable[[str], RunRecord | None]) -> RunRecord | None:
    """The run whose steps the flow graph shows, from ``runs`` (newest first; ``get`` finds any run by id): the
    newest finished run that did work and ran a step; for an applied rollback, the run it restored (followed the
    same way when that is a rollback too); a run that ran no step (a rollback not applied) is passed over. None
    when there is no such run (the rollback's target is no longer in the history, or no run ran a step)."""
    seen: set[str] = set()
    for run in runs:
        if run.finished_at is None or run.status not in DID_WORK:
            continue
        current: RunRecord | None = run
        while current is not None and current.run_id not in seen:
            seen.add(current.run_id)
            target = restored_by(current)
            if target is None:
                break
            current = get(target)
        if current is None:
            return None
        if restored_by(current) is None and any(s.state is not StepState.SKIPPED for s in current.steps):
            return current
        if current is not run:
            return None  # a cycle of rollbacks
    return None
