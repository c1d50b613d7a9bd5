"""Pure rules of order between programs: the reload plan, stop levels (dependents first), and when a
dependency meets a dependent's condition. Data in, data out; the supervisor applies them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from foss_supervisor.config import DependencyCondition, ProgramConfig
from foss_supervisor.core.states import Health, ProcessState

if TYPE_CHECKING:
    from foss_supervisor.core.process import ManagedProcess

__all__ = ["ReloadPlan", "describe", "meets", "plan_reload", "stop_levels"]


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload would do; pure data so it can be shown (``reload --dry-run``) and tested."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]


def plan_reload(old: Mapping[str, ProgramConfig], new: Mapping[str, ProgramConfig]) -> ReloadPlan:
    """Diff two program sets by name and by every setting."""
    return ReloadPlan(
        added=tuple(sorted(n for n in new if n not in old)),
        changed=tuple(sorted(n for n in new if n in old and new[n] != old[n])),
        removed=tuple(sorted(n for n in old if n not in new)),
        unchanged=tuple(sorted(n for n in new if n in old and new[n] == old[n])),
    )


def stop_levels(programs: Mapping[str, ProgramConfig]) -> list[list[str]]:
    """Names grouped so that each group only depends on later groups: dependents stop first."""
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:
        if name not in depth:
            deps = [d for d in programs[name].depends_on if d in programs]
            depth[name] = 1 + max((depth_of(d) for d in deps), default=-1)
        return depth[name]

    for name in programs:
        depth_of(name)
    levels: dict[int, list[str]] = {}
    for name, d in depth.items():
        levels.setdefault(d, []).append(name)
    return [sorted(levels[d]) for d in sorted(levels, reverse=True)]


def meets(proc: ManagedProcess, condition: DependencyCondition) -> bool:
    """Whether ``proc`` satisfies a dependent's ``condition``."""
    if condition == "completed_successfully":
        return proc.completed
    if condition == "started":
        return proc.state is ProcessState.RUNNING or (proc.state is ProcessState.EXITED and not proc.wanted)
    return proc.state is ProcessState.RUNNING and (proc.cfg.health is None or proc.health is Health.HEALTHY)


def describe(proc: ManagedProcess) -> str:
    """``FATAL``, ``RUNNING, health unknown``, ``EXITED with code 1``: what a waiting dependent shows."""
    if proc.state is ProcessState.RUNNING and proc.cfg.health is not None:
        return "RUNNING, unhealthy" if proc.health is Health.UNHEALTHY else f"RUNNING, health {proc.health}"
    if proc.state is ProcessState.EXITED:
        return f"EXITED with code {proc.exit_code}"
    return str(proc.state)
