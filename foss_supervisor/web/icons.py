"""The one source of state icons and words for the dashboard: program, health and daemon states here,
run and step states from :class:`~foss_supervisor.base.pipelinestates.StepState` (which the run report uses
too, so both agree). Pages show an icon AND a word, never colour alone; the page script reads this map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foss_supervisor.base.pipelinestates import RunStatus, StepState
from foss_supervisor.base.processstates import FAILING_STATES, DaemonPhase, Health, ProcessState

__all__ = [
    "ALREADY_DOWN",
    "ALREADY_UP",
    "PROGRAM_STATES",
    "STATE_ICONS",
    "STATE_LOOKS",
    "STATE_WORDS",
    "event_line",
]

#: a program's states (supervisord's words) and its health; the daemon's phase (and ``degraded``, the health
#: verdict's middle word); steps' icons are theirs (StepState.icon); a run's end its own
_PROGRAM = {
    ProcessState.RUNNING: "▶",
    ProcessState.STARTING: "◔",
    ProcessState.BACKOFF: "↻",
    ProcessState.STOPPING: "◕",
    ProcessState.STOPPED: "■",
    ProcessState.EXITED: "⏏",
    ProcessState.FATAL: "✘",
    Health.HEALTHY: "♥",
    Health.UNHEALTHY: "✘",
    Health.UNKNOWN: "?",
}
_DAEMON = {
    "degraded": "⚠",
    DaemonPhase.READY: "●",
    DaemonPhase.STARTING: "◔",
    DaemonPhase.RELOADING: "↻",
    DaemonPhase.STOPPING: "◕",
}
STATE_ICONS: dict[str, str] = {
    **{str(k): v for k, v in _PROGRAM.items()},
    **{str(k): v for k, v in _DAEMON.items()},
    **{s.value: s.icon for s in StepState},
    RunStatus.ABANDONED.value: "☠",
}

STATE_WORDS = {state: state.replace("_", " ") for state in STATE_ICONS}

#: how the graph frames a node in each state (bad: red, busy: amber, good: green; a state not here, like a
#: stopped program or a step not run, is idle); a freshness objective's words are the objectives' own
_BAD = {*FAILING_STATES, ProcessState.EXITED, Health.UNHEALTHY, "late", "violated"}
STATE_LOOKS: dict[str, str] = {
    **{str(s): "bad" for s in _BAD},
    **{str(s): "bad" for s in (StepState.FAILED, StepState.CRASHED, StepState.CANCELLED)},
    **{str(s): "bad" for s in (RunStatus.FAILED, RunStatus.ABANDONED, RunStatus.CANCELLED)},
    **{str(s): "busy" for s in (ProcessState.STARTING, ProcessState.STOPPING)},
    **{str(s): "busy" for s in (StepState.RUNNING, StepState.RETRYING, StepState.PENDING)},
    str(StepState.SUCCEEDED_WITH_WARNINGS): "busy",
    **{str(s): "good" for s in (ProcessState.RUNNING, StepState.SUCCEEDED)},
    "ok": "good",
}

#: the programs table's state filter, in the order an operator scans them (every ProcessState once)
PROGRAM_STATES = sorted(ProcessState, key=lambda s: (s is not ProcessState.RUNNING, s not in FAILING_STATES, s))
#: where a program's Start button has nothing to do (up or coming up; a BACKOFF or FATAL one may be started
#: afresh), and where its Stop has nothing to do (stopped; a FATAL one may be stopped: it leaves FATAL)
ALREADY_UP = frozenset({ProcessState.RUNNING, ProcessState.STARTING})
ALREADY_DOWN = frozenset({ProcessState.STOPPED, ProcessState.EXITED})


def event_line(e: Mapping[str, Any]) -> str:
    """A listed event as the dashboard's list of recent events writes it, ``who: what (why)``: the page's first
    list (the overview's template) and each live event (its ``line`` in the stream, web/sse.py) alike.
    ``e``: an event as JSON (``type`` and its fields)."""
    who = e.get("name") or e.get("pipeline") or "daemon"
    what = e.get("new") or e.get("state") or e.get("status") or e.get("type") or "?"
    if e.get("step"):
        what = f"{e['step']} {what}"
    return f"{who}: {what}" + (f" ({e['reason']})" if e.get("reason") else "")
