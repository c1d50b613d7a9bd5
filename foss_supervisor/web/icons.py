"""The one source of state icons and words for the dashboard: program, health and daemon states here,
run and step states from :class:`~foss_supervisor.base.pipelinestates.StepState` (which the run report uses
too, so both agree). Pages show an icon AND a word, never colour alone; the page script reads this map.
"""

from __future__ import annotations

from foss_supervisor.base.pipelinestates import StepState

__all__ = ["STATE_ICONS", "STATE_WORDS"]

_STEP = {s.value: s.icon for s in StepState}
STATE_ICONS: dict[str, str] = {
    "RUNNING": "▶",
    "STARTING": "◔",
    "BACKOFF": "↻",
    "STOPPING": "◕",
    "STOPPED": "■",
    "EXITED": "⏏",
    "FATAL": "✘",
    "healthy": "♥",
    "unhealthy": "✘",
    "unknown": "?",
    "degraded": "⚠",
    "ready": "●",
    "starting": "◔",
    "reloading": "↻",
    "stopping": "◕",
    **_STEP,
    "abandoned": "☠",
}

STATE_WORDS = {state: state.replace("_", " ") for state in STATE_ICONS}
