"""Step and run states as Enums, with the legal step transitions in one table.

Stdlib only, so the core and the web layer can import it cheaply. An illegal move raises, which turns a
bookkeeping bug into a loud failure instead of a wrong icon on the dashboard.
"""

from __future__ import annotations

import enum

__all__ = [
    "STEP_TRANSITIONS",
    "IllegalTransitionError",
    "RunMode",
    "RunStatus",
    "StepState",
    "check_step_transition",
]


class StepState(enum.Enum):
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


_TERMINAL = frozenset(
    {
        StepState.SUCCEEDED,
        StepState.SUCCEEDED_WITH_WARNINGS,
        StepState.FAILED,
        StepState.CRASHED,
        StepState.UPSTREAM_FAILED,
        StepState.SKIPPED,
        StepState.CANCELLED,
    }
)

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
STEP_TRANSITIONS: dict[StepState, frozenset[StepState]] = {
    S.PENDING: frozenset({S.QUEUED, S.SKIPPED, S.UPSTREAM_FAILED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    # running -> skipped: a SQL step whose landing glob matched no file had no input (not a failure)
    S.RUNNING: frozenset(
        {S.SUCCEEDED, S.SUCCEEDED_WITH_WARNINGS, S.FAILED, S.CRASHED, S.RETRYING, S.CANCELLED, S.SKIPPED}
    ),
    S.RETRYING: frozenset({S.QUEUED, S.CANCELLED}),
}
del S


class IllegalTransitionError(RuntimeError):
    """A step was asked to move along an edge that is not in STEP_TRANSITIONS."""


def check_step_transition(old: StepState, new: StepState) -> None:
    """Raise IllegalTransitionError unless old -> new is a legal edge."""
    if new not in STEP_TRANSITIONS.get(old, frozenset()):
        raise IllegalTransitionError(f"illegal step transition {old.value} -> {new.value}")


class RunStatus(enum.Enum):
    """Outcome of a whole run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_WARNINGS = "succeeded_with_warnings"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: the supervisor stopped (or died) while the run was in progress; found on reload of the history
    ABANDONED = "abandoned"
    #: a trigger fired but nothing changed since the last good run (landing, reference, definition)
    SKIPPED = "skipped"


class RunMode(enum.Enum):
    """A normal run ingests new files; a replay re-validates the quarantine instead."""

    RUN = "run"
    REPLAY = "replay"
