"""The program's and the daemon's state machines: their tables of legal transitions (stdlib only).

Like supervisord's ``states.py``: a transition site calls ``TRANSITIONS.check(old, new)``; an edge missing from
the table is a bug and raises :class:`~foss_supervisor.errors.IllegalTransitionError` (a
:class:`~foss_supervisor.base.transitions.TransitionTable`, the one type of every state table). The states
themselves are the bottom room's words (:mod:`foss_supervisor.base.processstates`), where the edges are drawn.
"""

from __future__ import annotations

from foss_supervisor.base.processstates import DaemonPhase, ProcessState
from foss_supervisor.base.transitions import TransitionTable

__all__ = ["PHASE_TRANSITIONS", "TRANSITIONS"]

S = ProcessState
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
del S

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
