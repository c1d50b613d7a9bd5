"""Process states, the groups they fall in, their table of legal transitions; the daemon's phase and its table.

Stdlib only.

Like supervisord's ``states.py``: a transition site calls ``TRANSITIONS.check(old, new)``; an edge missing
from the table is a bug and raises :class:`~foss_supervisor.errors.IllegalTransitionError` (the table is a
:class:`~foss_supervisor.base.transitions.TransitionTable`, the one type of every state table). Code that
asks "is it up?", "is a child there?" uses the groups below instead of writing its own set of states.

::

    STOPPED/EXITED/FATAL --spawn--> STARTING --up for start_timeout / READY=1--> RUNNING
    STARTING --died early, spawn failed, no READY--> BACKOFF --wait--> STARTING
                                                    BACKOFF --retries spent--> FATAL
    STARTING --one-shot done (expected code, no restart)--> EXITED
    RUNNING --died--> EXITED --restart at once--> STARTING   (or --restart later--> BACKOFF)
    STARTING/RUNNING --stop, restart, unhealthy--> STOPPING --reaped--> STOPPED (--restart later--> BACKOFF)
    BACKOFF --stop requested--> STOPPED

The daemon's own phase (:class:`DaemonPhase`, table :data:`PHASE_TRANSITIONS`)::

    starting --autostart done, dashboard up--> ready --reload--> reloading --applied or refused--> ready
    starting --reload--> reloading --> starting          any phase --shutdown--> stopping (final)
"""

from __future__ import annotations

import enum

from foss_supervisor.base.transitions import TransitionTable

__all__ = [
    "AFTER_EXIT_STATES",
    "FAILING_STATES",
    "PHASE_TRANSITIONS",
    "RUNNING_STATES",
    "SIGNALLABLE_STATES",
    "STOPPED_STATES",
    "TRANSITIONS",
    "DaemonPhase",
    "Health",
    "ProcessState",
    "is_exit_edge",
]


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
        return self in SIGNALLABLE_STATES


class Health(enum.StrEnum):
    """What the last health probes said, separate from the lifecycle state."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


S = ProcessState

#: on its way up or up: the controller is working to keep it running (supervisord's RUNNING_STATES)
RUNNING_STATES = frozenset({S.STARTING, S.RUNNING, S.BACKOFF})
#: no child and nothing under way: where a stop settles (supervisord's STOPPED_STATES)
STOPPED_STATES = frozenset({S.STOPPED, S.EXITED, S.FATAL})
#: a child exists that a signal can reach (supervisord's SIGNALLABLE_STATES)
SIGNALLABLE_STATES = frozenset({S.STARTING, S.RUNNING, S.STOPPING})
#: crash-looping or given up: a problem for ``/health`` and ``start``
FAILING_STATES = frozenset({S.BACKOFF, S.FATAL})


def is_exit_edge(old: ProcessState | str, new: ProcessState | str, exit_code: int | None) -> bool:
    """Whether an edge ``old -> new`` is a child's exit: from a state with a child (SIGNALLABLE_STATES) to one
    without, with its code. The one rule every count of exits uses (``why``, ``supervision.exits``, the exit's
    own figures): BACKOFF -> FATAL or EXITED -> BACKOFF carry the code of an exit counted already."""
    return exit_code is not None and str(old) in SIGNALLABLE_STATES and str(new) in AFTER_EXIT_STATES


#: where a child's exit takes a program (from SIGNALLABLE_STATES): see is_exit_edge
AFTER_EXIT_STATES = frozenset({S.EXITED, S.BACKOFF, S.FATAL, S.STOPPED})

TRANSITIONS: TransitionTable[ProcessState] = TransitionTable(
    "process",
    {
        # spawn (operator, autostart, restart); or, after a stop for ill health, wait before the respawn
        S.STOPPED: frozenset({S.STARTING, S.BACKOFF}),
        # respawn at once, or after a backoff delay
        S.EXITED: frozenset({S.STARTING, S.BACKOFF}),
        # an operator's start gives a FATAL program fresh retries; an operator's stop takes it out
        S.FATAL: frozenset({S.STARTING, S.STOPPED}),
        # the delay is over / retries are spent / a stop was asked for while waiting
        S.BACKOFF: frozenset({S.STARTING, S.FATAL, S.STOPPED}),
        # up for start_timeout or READY=1 / died early or no READY / one-shot done / asked to stop
        S.STARTING: frozenset({S.RUNNING, S.BACKOFF, S.EXITED, S.STOPPING}),
        # died on its own / asked to stop (stop, restart, unhealthy, shutdown)
        S.RUNNING: frozenset({S.EXITED, S.STOPPING}),
        # the stop coroutine reaped it
        S.STOPPING: frozenset({S.STOPPED}),
    },
)


class DaemonPhase(enum.StrEnum):
    """Where the daemon itself is (``ping``, ``status``, ``/health``; sd_notify READY/RELOADING/STOPPING)."""

    STARTING = "starting"
    READY = "ready"
    RELOADING = "reloading"
    STOPPING = "stopping"


P = DaemonPhase
PHASE_TRANSITIONS: TransitionTable[DaemonPhase] = TransitionTable(
    "daemon phase",
    {
        # autostart done and the dashboard up / a reload asked while starting / a shutdown
        P.STARTING: frozenset({P.READY, P.RELOADING, P.STOPPING}),
        P.READY: frozenset({P.RELOADING, P.STOPPING}),
        # back where the reload began (or ready, when the start finished meanwhile) / a shutdown asked meanwhile
        P.RELOADING: frozenset({P.STARTING, P.READY, P.STOPPING}),
        # nothing un-stops a daemon
    },
)
del P
