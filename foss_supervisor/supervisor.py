"""The supervisor: owns every ManagedProcess, orders them by dependency, reloads, and stops them all.

Every controller task lives in one ``asyncio.TaskGroup`` (no orphan tasks). Start order follows
from readiness gating (a program waits until its dependencies are RUNNING and, when probed,
healthy); stop order is the reverse, one dependency level at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from foss_supervisor.config import Config, ProgramConfig
from foss_supervisor.containment import Containment
from foss_supervisor.errors import CommandError
from foss_supervisor.events import ConfigReloaded, EventBus, HealthChanged, StateChanged
from foss_supervisor.process import ManagedProcess
from foss_supervisor.procinfo import identity_of
from foss_supervisor.selectors import resolve
from foss_supervisor.states import Health, ProcessState
from foss_supervisor.statestore import StateStore

__all__ = ["Action", "ReloadPlan", "Supervisor", "plan_reload", "stop_levels"]

Action = Literal["start", "stop", "restart"]

log = structlog.get_logger("foss_supervisor.supervisor")

CONTROLLER_RESTART_DELAY_S = 1.0


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload would do; pure data so it can be shown (``reload --dry-run``) and tested."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(getattr(self, k)) for k in ("added", "changed", "removed", "unchanged")}


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


class Supervisor:
    """Runs the programs of one config; commands call its public methods."""

    def __init__(self, config: Config, bus: EventBus, store: StateStore,
                 containment: Containment | None = None) -> None:  # fmt: skip
        self.config = config
        self.containment = containment or Containment()
        self.bus = bus
        self.store = store
        self.processes: dict[str, ManagedProcess] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._pulse = asyncio.Event()
        bus.on(self._on_event)

    # ---------------------------------------------------------------- lifecycle

    async def run(self, started: asyncio.Event, shutdown: asyncio.Event) -> None:
        """Start every program's controller, set ``started``, and stop them all once ``shutdown`` is set."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            stopped = self.store.stopped_by_hand()
            for cfg in self.config.programs.values():
                self._add(cfg, wanted=cfg.autostart and cfg.name not in stopped)
            started.set()
            await shutdown.wait()
            await self.stop_all()
            for task in self._tasks.values():
                task.cancel()
        self._group = None

    async def wait_autostarted(self, timeout_s: float) -> None:
        """Wait until every program that should run has reached RUNNING or given up (FATAL)."""
        async with asyncio.timeout(timeout_s):
            while True:
                pulse = self._pulse
                pending = [p for p in self.processes.values() if p.wanted and p.state is not ProcessState.RUNNING]
                if not pending:
                    return
                await pulse.wait()

    async def stop_all(self) -> None:
        """Stop every program, dependents before their dependencies."""
        for level in stop_levels({n: p.cfg for n, p in self.processes.items()}):
            await self._stop_many(level)

    # ---------------------------------------------------------------- operator actions

    def get(self, name: str) -> ManagedProcess:
        try:
            return self.processes[name]
        except KeyError:
            raise CommandError(f"no such program: {name!r}") from None

    def select(self, names: Iterable[str]) -> list[ManagedProcess]:
        """Programs by selector: a name, ``all``, a group, a replica set or a glob (see ``selectors``)."""
        chosen = resolve(names, list(self.processes), self.config.replica_sets, self.config.groups)
        return [self.processes[name] for name in chosen]

    async def act(self, action: Action, names: Iterable[str], wait_s: float) -> list[dict[str, Any]]:
        """An operator's start, stop or restart: remembered across daemon restarts, then waited for."""
        procs = self.select(names)
        for p in procs:
            self.store.remember_stopped(p.name, action == "stop")
            {"start": p.start, "stop": p.stop, "restart": p.restart}[action]()
        return await self._settle(procs, wait_s)

    async def _settle(self, procs: list[ManagedProcess], wait_s: float) -> list[dict[str, Any]]:
        with contextlib.suppress(TimeoutError):
            await asyncio.gather(*(p.wait_settled(wait_s) for p in procs))
        return [p.snapshot() for p in procs]

    def plan(self, new: Config) -> ReloadPlan:
        return plan_reload(self.config.programs, new.programs)

    async def apply(self, new: Config) -> ReloadPlan:
        """Apply a new config: stop removed and changed programs, then add changed and new ones."""
        plan = self.plan(new)
        old_cfgs = {n: self.processes[n].cfg for n in (*plan.removed, *plan.changed)}
        for level in stop_levels(old_cfgs):
            await self._stop_many(level, remove=True)
        stopped = self.store.stopped_by_hand()
        self.config = new
        for name in (*plan.changed, *plan.added):
            cfg = new.programs[name]
            self._add(cfg, wanted=cfg.autostart and name not in stopped)
        self.bus.publish(ConfigReloaded(added=plan.added, changed=plan.changed, removed=plan.removed))
        return plan

    # ---------------------------------------------------------------- internals

    def _add(self, cfg: ProgramConfig, wanted: bool) -> None:
        assert self._group is not None, "programs are added only while the supervisor runs"
        proc = ManagedProcess(
            cfg,
            log_dir=self.config.state_dir / "logs",
            notify_dir=self.config.state_dir / "notify",
            bus=self.bus,
            dependencies_ready=self._dependencies_ready,
            on_spawn=self._child_started,
            on_exit=lambda p: self.store.child_gone(p.name),
            wanted=wanted,
            containment=self.containment,
        )
        self.processes[cfg.name] = proc
        self._tasks[cfg.name] = self._group.create_task(self._supervise(proc), name=f"program:{cfg.name}")

    async def _supervise(self, proc: ManagedProcess) -> None:
        """Run one controller; a bug in it is logged and the controller restarted, never the whole daemon.

        The controller stops its child on the way out (its ``finally``), so a restart starts clean;
        the pause keeps a bug that fails every time from spinning.
        """
        while True:
            try:
                await proc.run()
                return
            except Exception:
                log.exception("controller_crashed", program=proc.name, state=str(proc.state))
                proc.reset_after_error()
                await asyncio.sleep(CONTROLLER_RESTART_DELAY_S)

    async def _stop_many(self, names: list[str], remove: bool = False) -> None:
        procs = [self.processes[n] for n in names]
        for p in procs:
            p.stop()
        longest = max((p.cfg.stop_timeout_s for p in procs), default=0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.gather(*(p.wait_settled(longest + 10.0) for p in procs))
        if remove:
            for name in names:
                task = self._tasks.pop(name)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                del self.processes[name]

    def _child_started(self, proc: ManagedProcess) -> None:
        if proc.pid is not None and (ident := identity_of(proc.pid)) is not None:
            self.store.child_started(proc.name, ident)

    async def _dependencies_ready(self, cfg: ProgramConfig) -> None:
        """Return once every dependency is RUNNING and, when it has a probe, HEALTHY."""
        announced = False
        while True:
            pulse = self._pulse
            waiting = [d for d in cfg.depends_on if not self._is_ready(d)]
            if not waiting:
                return
            if not announced:
                log.info("waiting_for_dependencies", program=cfg.name, depends_on=waiting)
                announced = True
            await pulse.wait()

    def _is_ready(self, name: str) -> bool:
        proc = self.processes.get(name)
        if proc is None or proc.state is not ProcessState.RUNNING:
            return False
        return proc.cfg.health is None or proc.health is Health.HEALTHY

    def _on_event(self, event: object) -> None:
        if isinstance(event, StateChanged | HealthChanged):
            pulse, self._pulse = self._pulse, asyncio.Event()
            pulse.set()
