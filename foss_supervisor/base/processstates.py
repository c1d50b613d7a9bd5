"""A program's states (supervisord's words), the groups they fall in; the daemon's phase: the words every room
speaks (status's quick path, why, the graph, the pages), with nothing else imported (the enum module).

The machines' rules, their tables of legal transitions, live with the machines
(:mod:`foss_supervisor.core.states`). Code that asks "is it up?", "is a child there?" uses the groups below
instead of writing its own set of states.

::

    STOPPED/EXITED/FATAL --spawn--> STARTING --up for start_timeout / READY=1--> RUNNING
    STARTING --died early, spawn failed, no READY--> BACKOFF --wait--> STARTING
                                                    BACKOFF --retries spent--> FATAL
    STARTING --one-shot done (expected code, no restart)--> EXITED
    RUNNING --died--> EXITED --restart at once--> STARTING   (or --restart later--> BACKOFF)
    STARTING/RUNNING --stop, restart, unhealthy--> STOPPING --reaped--> STOPPED (--restart later--> BACKOFF)
    BACKOFF --stop requested--> STOPPED

The daemon's own phase (:class:`DaemonPhase`)::

    starting --autostart done, dashboard up--> ready --reload--> reloading --applied or refused--> ready
    starting --reload--> reloading --> starting          any phase --shutdown--> stopping (final)
"""

from __future__ import annotations

import enum

__all__ = [
    "AFTER_EXIT_STATES",
    "FAILING_STATES",
    "RUNNING_STATES",
    "SIGNALLABLE_STATES",
    "STOPPED_STATES",
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


class DaemonPhase(enum.StrEnum):
    """Where the daemon itself is (``ping``, ``status``, ``/health``; sd_notify READY/RELOADING/STOPPING)."""

    STARTING = "starting"
    READY = "ready"
    RELOADING = "reloading"
    STOPPING = "stopping"
