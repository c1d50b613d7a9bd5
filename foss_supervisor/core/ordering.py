"""Pure rules of order between programs: the reload plan, stop levels (dependents first), when a dependency
meets a dependent's condition, and when a program has settled at start (up, ended, retrying late, stuck behind
a dependency) or is due its first spawn. Data in, data out; the supervisor applies them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from foss_supervisor.base.processstates import STOPPED_STATES, Health, ProcessState
from foss_supervisor.config import DependencyCondition, ProgramConfig

if TYPE_CHECKING:
    from foss_supervisor.core.process import ManagedProcess

__all__ = [
    "LONG_BACKOFF_S",
    "ReloadPlan",
    "describe",
    "gave_up",
    "meets",
    "plan_reload",
    "settled",
    "spawn_due",
    "stop_levels",
    "stuck",
]

#: a program in BACKOFF whose next attempt is further away than this has settled (crash-looping)
LONG_BACKOFF_S = 5.0


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


def gave_up(proc: ManagedProcess, now: float) -> bool:
    """Ended for good (until an operator acts), or crash-looping with its next attempt far off (``now``: the
    supervisor's wall clock)."""
    if proc.state in STOPPED_STATES and not proc.wanted:
        return True
    retry_at = proc.next_attempt_at
    return proc.state is ProcessState.BACKOFF and retry_at is not None and retry_at - now > LONG_BACKOFF_S


def stuck(proc: ManagedProcess, processes: Mapping[str, ManagedProcess], now: float, depth: int = 0) -> bool:
    """Wanted but not started, behind a dependency that gave up (or is itself stuck)."""
    if not proc.wanted or proc.state not in STOPPED_STATES or depth > len(processes):
        return False
    for dep in proc.cfg.depends_on:
        d = processes.get(dep)
        if d is None or meets(d, proc.cfg.condition_for(dep)):
            continue
        if gave_up(d, now) or stuck(d, processes, now, depth + 1):
            return True
    return False


def settled(proc: ManagedProcess, processes: Mapping[str, ManagedProcess], now: float) -> bool:
    """Nothing more to wait for at start: up, ended, retrying only after a long delay, or stuck."""
    return proc.state is ProcessState.RUNNING or gave_up(proc, now) or stuck(proc, processes, now)


def spawn_due(proc: ManagedProcess, processes: Mapping[str, ManagedProcess]) -> bool:
    """Wanted, never spawned (STOPPED), and free to start: every dependency meets its condition."""
    if not proc.wanted or proc.state is not ProcessState.STOPPED:
        return False
    deps = proc.cfg.depends_on
    return all((d := processes.get(n)) is not None and meets(d, proc.cfg.condition_for(n)) for n in deps)
