"""Process states and the one table of legal transitions (stdlib only, like supervisord's states.py).

A transition site calls :func:`check_transition`; an edge missing from the table is a bug and raises.
"""

from __future__ import annotations

import enum

from foss_supervisor.errors import StateTransitionError

__all__ = ["TRANSITIONS", "Health", "ProcessState", "check_transition"]


class ProcessState(enum.StrEnum):
    """The states operators know from supervisord."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"

    @property
    def is_alive(self) -> bool:
        """A process exists for this state (it may be on its way out)."""
        return self in (ProcessState.STARTING, ProcessState.RUNNING, ProcessState.STOPPING)


class Health(enum.StrEnum):
    """What the last health probes said, separate from the lifecycle state."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


S = ProcessState

TRANSITIONS: dict[ProcessState, frozenset[ProcessState]] = {
    # spawn asked by the operator, autostart or a restart
    S.STOPPED: frozenset({S.STARTING}),
    S.EXITED: frozenset({S.STARTING}),
    S.FATAL: frozenset({S.STARTING}),
    # retry after the backoff delay, or the operator gives up on it
    S.BACKOFF: frozenset({S.STARTING, S.FATAL, S.STOPPED}),
    # survived start_timeout / died early / asked to stop while starting
    S.STARTING: frozenset({S.RUNNING, S.BACKOFF, S.STOPPING, S.FATAL}),
    # died on its own / asked to stop
    S.RUNNING: frozenset({S.EXITED, S.STOPPING, S.BACKOFF}),
    # the stop coroutine reaped it
    S.STOPPING: frozenset({S.STOPPED}),
}


def check_transition(old: ProcessState, new: ProcessState) -> None:
    """Raise :class:`StateTransitionError` unless ``old -> new`` is an edge of the table."""
    if new not in TRANSITIONS.get(old, frozenset()):
        raise StateTransitionError(f"illegal transition {old} -> {new}")
