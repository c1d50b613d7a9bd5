"""Step and run states as StrEnums, with the legal moves of each in one table.

Both tables are :class:`~foss_supervisor.base.transitions.TransitionTable` (the one type of every state
table): ``STEP_TRANSITIONS.check(old, new)`` raises :class:`~foss_supervisor.errors.IllegalTransitionError`,
which turns a bookkeeping bug into a loud failure instead of a wrong icon on the dashboard. Stdlib only, so
the core and the web layer can import it cheaply.
"""

from __future__ import annotations

import enum

from foss_supervisor.base.transitions import TransitionTable

__all__ = [
    "RUN_FAILED",
    "RUN_SUCCEEDED",
    "RUN_TRANSITIONS",
    "STEP_SUCCEEDED",
    "STEP_TRANSITIONS",
    "RunMode",
    "RunStatus",
    "StepState",
]


class StepState(enum.StrEnum):
    """Where one step of one run is; each has an icon and a word so colour is never the only signal."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_WARNINGS = "succeeded_with_warnings"
    FAILED = "failed"
    CRASHED = "crashed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the step will not change again in this run."""
        return self in _TERMINAL

    @property
    def ok(self) -> bool:
        """True when downstream steps may run after this one."""
        return self in (StepState.SUCCEEDED, StepState.SUCCEEDED_WITH_WARNINGS, StepState.SKIPPED)

    @property
    def icon(self) -> str:
        """A glyph for terminals and HTML, always shown beside the word."""
        return _ICONS[self]


_ICONS = {
    StepState.PENDING: "○",
    StepState.QUEUED: "◔",
    StepState.RUNNING: "▶",
    StepState.RETRYING: "↻",
    StepState.SUCCEEDED: "✔",
    StepState.SUCCEEDED_WITH_WARNINGS: "⚠",
    StepState.FAILED: "✘",
    StepState.CRASHED: "☠",
    StepState.UPSTREAM_FAILED: "⊘",
    StepState.SKIPPED: "↷",
    StepState.CANCELLED: "■",
}

S = StepState
#: Every legal edge. pending -> queued (the run reached the step) -> running (the worker took it) ->
#: a terminal state, or retrying -> queued again. Steps that never start go straight from pending to
#: skipped / upstream_failed / cancelled.
STEP_TRANSITIONS: TransitionTable[StepState] = TransitionTable(
    "step",
    {
        S.PENDING: frozenset({S.QUEUED, S.SKIPPED, S.UPSTREAM_FAILED, S.CANCELLED}),
        S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
        # running -> skipped: a SQL step whose landing glob matched no file had no input (not a failure)
        S.RUNNING: frozenset(
            {S.SUCCEEDED, S.SUCCEEDED_WITH_WARNINGS, S.FAILED, S.CRASHED, S.RETRYING, S.CANCELLED, S.SKIPPED}
        ),
        S.RETRYING: frozenset({S.QUEUED, S.CANCELLED}),
    },
)
del S
#: where a step stays for the rest of its run: the states no edge leaves
_TERMINAL = STEP_TRANSITIONS.final()
#: the ends of a step that did its work (with warnings or not): its duration and rows are a measurement
STEP_SUCCEEDED = frozenset({StepState.SUCCEEDED, StepState.SUCCEEDED_WITH_WARNINGS})


class RunStatus(enum.StrEnum):
    """Outcome of a whole run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_WARNINGS = "succeeded_with_warnings"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: the supervisor stopped (or died) while the run was in progress; found on reload of the history
    ABANDONED = "abandoned"
    #: a trigger fired but nothing changed since the last good run: found only in histories written before
    #: issue 18 (a trigger that finds nothing new is now counted, not recorded as a run)
    SKIPPED = "skipped"


#: the ends of a run that succeeded (with warnings or not): it keeps a snapshot, counts as a good run
RUN_SUCCEEDED = frozenset({RunStatus.SUCCEEDED, RunStatus.SUCCEEDED_WITH_WARNINGS})
#: the ends of a run that failed its pipeline (a cancelled run was asked to stop: no failure of the pipeline's)
RUN_FAILED = frozenset({RunStatus.FAILED, RunStatus.ABANDONED})

R = RunStatus
#: A run is RUNNING until it ends; it ends once (a skipped run is recorded ended, never running). ABANDONED is
#: what a history found on start says of a run its daemon stopped (or died) in.
RUN_TRANSITIONS: TransitionTable[RunStatus] = TransitionTable(
    "run",
    {R.RUNNING: frozenset({R.SUCCEEDED, R.SUCCEEDED_WITH_WARNINGS, R.FAILED, R.CANCELLED, R.ABANDONED})},
)
del R


class RunMode(enum.StrEnum):
    """A normal run ingests new files; a replay re-validates the quarantine instead."""

    RUN = "run"
    REPLAY = "replay"
