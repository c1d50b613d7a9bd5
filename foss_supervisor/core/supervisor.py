"""The supervisor: owns every ManagedProcess, orders them by dependency, reloads, and stops them all.

Every controller task lives in one ``asyncio.TaskGroup`` (no orphan tasks). Start order follows
from readiness gating: a program waits until each dependency meets its condition (``started``:
RUNNING; ``healthy``, the default: RUNNING and, when probed, HEALTHY; ``completed_successfully``: a
one-shot job that EXITED with an expected code). Stop order is the reverse, one dependency level at
a time. A dependency that has given up (FATAL, stopped, or done without meeting the condition)
leaves its dependents waiting with that as their reason, and counts as a problem.

The supervisor takes the same :class:`~foss_supervisor.core.seams.Seams` as each
:class:`~foss_supervisor.core.process.ManagedProcess` and hands them on, so tests run dependency order,
stop order and reload on a virtual clock with scripted children (``tests/unit/test_supervisor_order.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

import structlog

from foss_supervisor.base.filewriter import WRITER
from foss_supervisor.base.processstates import STOPPED_STATES, Health, ProcessState
from foss_supervisor.base.procinfo import identity_of
from foss_supervisor.config import Config, ProgramConfig
from foss_supervisor.core.actor import ACTOR
from foss_supervisor.core.containment import Containment
from foss_supervisor.core.events import ConfigReloaded, EventBus, HealthChanged, StateChanged
from foss_supervisor.core.ordering import (
    ReloadPlan,
    describe,
    gave_up,
    meets,
    plan_reload,
    settled,
    spawn_due,
    stop_levels,
    stuck,
)
from foss_supervisor.core.process import ManagedProcess
from foss_supervisor.core.seams import REAL_SEAMS, Seams
from foss_supervisor.core.selectors import resolve
from foss_supervisor.core.statestore import StateStore
from foss_supervisor.errors import CommandError

__all__ = ["Action", "ReloadPlan", "Supervisor", "plan_reload", "stop_levels"]

#: how long a reload waits for a removed program's queued output to be written before forgetting its log (s)
LOG_DRAIN_S = 2.0

_describe, _meets = describe, meets  # their former names here

Action = Literal["start", "stop", "restart"]

log = structlog.get_logger("foss_supervisor.core.supervisor")

CONTROLLER_RESTART_DELAY_S = 1.0


class Supervisor:
    """Runs the programs of one config; commands call its public methods.

    ``seams`` (clocks, sleep, the child factory) go to every program's controller and time the supervisor's
    own waits; production uses the real ones.
    """

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        store: StateStore,
        containment: Containment | None = None,
        seams: Seams = REAL_SEAMS,
    ) -> None:
        self.config = config
        self._seams = seams
        self.containment = containment or Containment()
        self.bus = bus
        self.store = store
        self.processes: dict[str, ManagedProcess] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._pulse = asyncio.Event()
        self._restarting: set[str] = set()  # stopped by act() on the way to a restart (PartOf= propagates it)
        self._stopped_along: set[str] = set()  # stopped because a dependency they are part of was: back with it
        bus.on(self._on_event)

    # ---------------------------------------------------------------- lifecycle

    async def run(self, started: asyncio.Event, shutdown: asyncio.Event) -> None:
        """Start every program's controller, set ``started``, and stop them all once ``shutdown`` is set."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            stopped = self.store.stopped_by_hand()
            for cfg in self.config.programs.values():
                self._add(cfg, wanted=cfg.autostart and not cfg.disabled and cfg.name not in stopped)
            started.set()
            await shutdown.wait()
            await self.stop_all()
            for task in self._tasks.values():
                task.cancel()
        self._group = None

    async def wait_spawned(self, timeout_s: float) -> None:
        """Wait until every wanted program whose dependencies are met has been spawned once (it left the
        stopped states), ``timeout_s`` at most: the daemon starts its own children (the dashboard) after the
        operator's, so that their start-up does not compete with them for the CPU."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while True:
                    pulse = self._pulse
                    if not any(spawn_due(p, self.processes) for p in self.processes.values()):
                        return
                    await pulse.wait()

    async def wait_autostarted(self, timeout_s: float) -> list[str]:
        """Wait until every program is settled, then return :meth:`problems` (empty: all is well).

        Settled: RUNNING, ended (EXITED, FATAL, stopped), in BACKOFF with the next attempt more than
        ``LONG_BACKOFF_S`` away, or waiting on a dependency that is one of those. Programs STARTING or
        retrying soon are waited for, ``timeout_s`` at most; then the problems are returned as they
        stand (no exception).
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while True:
                    pulse = self._pulse
                    now = self._seams.wall_clock()
                    if all(settled(p, self.processes, now) for p in self.processes.values()):
                        break
                    await pulse.wait()
        return self.problems()

    def problems(self) -> list[str]:
        """What keeps this daemon from being healthy, one line per program, e.g. ``api is waiting for db (FATAL)``.

        FATAL, BACKOFF (crash-looping), a job that ended with an unexpected code, a program stuck
        behind a dependency that gave up, and failing health probes (see verdict.assess).
        """
        out = []
        for p in self.processes.values():
            if p.state is ProcessState.FATAL:
                out.append(f"{p.name} is FATAL: {p.reason}")
            elif p.state is ProcessState.BACKOFF:
                out.append(f"{p.name} is crash-looping (BACKOFF): {p.reason}")
            elif p.state is ProcessState.EXITED and not p.wanted and p.exit_code not in p.cfg.exit_codes:
                out.append(f"{p.name} exited with unexpected code {p.exit_code}: {p.reason}")
            elif stuck(p, self.processes, self._seams.wall_clock()):
                out.append(f"{p.name} is waiting for {', '.join(self.blockers(p.cfg))}")
            elif p.health is Health.UNHEALTHY:
                out.append(f"{p.name} is unhealthy: {p.health_detail}")
        return out

    def warnings(self) -> list[str]:
        """What makes this daemon degraded, one line per program: up again after crashes in a row, not yet
        for ``backoff.reset_after`` (a crash loop's history; in BACKOFF it is a problem)."""
        return [
            f"{p.name} crashed {streak} times in a row and was started again ({p.state})"
            for p in self.processes.values()
            if (streak := p.crash_streak)
        ]

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
        """An operator's start, stop or restart: remembered across daemon restarts, then waited for.

        In dependency order, whatever the selector: a stop or restart stops dependents before their
        dependencies, one level at a time; starts wait for each program's dependencies to meet their
        condition (as at daemon start). A ``disabled`` program is left alone by start and restart unless
        ``names`` names it exactly; a selection of disabled programs only is refused, naming them (CommandError).
        """
        procs = self._selected(names, with_disabled=action == "stop")
        if not procs:  # select() refused a selector that matches nothing: these are all disabled
            skipped = [p.name for p in self.select(names)]
            raise CommandError(
                f"nothing to {action}: {', '.join(skipped)} {'is' if len(skipped) == 1 else 'are'} disabled "
                "(a disabled program starts only when named exactly)"
            )
        deadline = self._seams.monotonic() + wait_s
        who = ACTOR.get().phrase().removeprefix(" by ").strip() or "the daemon"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self._seams.wall_clock()))
        for p in procs:
            self.store.remember_stopped(p.name, action == "stop", f"{who} at {when}")
            self._stopped_along.discard(p.name)  # an operator's word replaces what its dependency did to it
        levels = stop_levels({p.name: p.cfg for p in procs})
        if action == "start" or (action == "restart" and len(levels) < 2):
            # nothing to order: each controller stops and starts its own program (a restart that arrives
            # while an earlier one is still stopping joins it; stop() then restart() would leave it STOPPING)
            for p in procs:
                if action == "start":
                    p.start()
                else:
                    p.restart()
        else:
            restarting = {p.name for p in procs} - self._restarting if action == "restart" else set()
            self._restarting |= restarting  # (a reload may be stopping others meanwhile: each removes its own)
            try:
                await self._stop_in_order(procs, deadline)
            finally:
                self._restarting -= restarting
            if action == "restart":
                for p in procs:
                    p.restart()
        return await self._settle(procs, max(0.0, deadline - self._seams.monotonic()))

    def _selected(self, names: Iterable[str], with_disabled: bool = False) -> list[ManagedProcess]:
        """:meth:`select`, without the ``disabled`` programs a selector covers (one named exactly stays)."""
        names = list(names)
        return [p for p in self.select(names) if with_disabled or not p.cfg.disabled or p.name in names]

    async def _stop_in_order(self, procs: list[ManagedProcess], deadline: float) -> None:
        """Stop ``procs``, dependents first: each level is stopped (or the deadline passed) before the next."""
        by_name = {p.name: p for p in procs}
        for level in stop_levels({p.name: p.cfg for p in procs}):
            for name in level:
                by_name[name].stop()
            with contextlib.suppress(TimeoutError):
                left = max(0.0, deadline - self._seams.monotonic())
                await asyncio.gather(*(by_name[n].wait_settled(left) for n in level))

    async def readiness(self, names: Iterable[str], wait_s: float) -> list[dict[str, Any]]:
        """Each selected program (a ``disabled`` one only when named exactly) and whether it is ready: RUNNING
        and, when probed, healthy; a one-shot job that completed counts. Waits up to ``wait_s`` for all to be,
        or until each that is not will not be without an operator (stopped, FATAL, waiting on one that gave up).

        Returns ``[{"name", "state", "health", "ready", "reason"}]``.
        """
        procs = self._selected(names)

        def ready(p: ManagedProcess) -> bool:
            return meets(p, "healthy") or p.completed

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                # one that will not come up without an operator (stopped, FATAL, behind one that gave up) ends the wait
                while not all(
                    ready(p)
                    or gave_up(p, self._seams.wall_clock())
                    or stuck(p, self.processes, self._seams.wall_clock())
                    for p in procs
                ):
                    await self._next_change()
        return [
            {"name": p.name, "state": str(p.state), "health": str(p.health), "ready": ready(p), "reason": p.reason}
            for p in procs
        ]

    async def rolling_restart(self, names: Iterable[str], wait_s: float) -> list[dict[str, Any]]:
        """Restart the selected programs one at a time (replicas of a set in order), each waited for until it
        is ready (RUNNING and, when probed, healthy) before the next is touched, ``wait_s`` for each at most.

        Stops at the first that does not come back ready, so the others keep serving; its snapshot says why.
        """
        out = []
        for p in self._selected(names):
            self.store.remember_stopped(p.name, False)
            self._stopped_along.discard(p.name)
            p.restart()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await p.wait_settled(wait_s)
                    while not meets(p, "healthy"):
                        await self._next_change()
            out.append(p.snapshot())
            if not meets(p, "healthy"):
                break
        return out

    async def _settle(self, procs: list[ManagedProcess], wait_s: float) -> list[dict[str, Any]]:
        """Wait (``wait_s`` at most) until each is as wanted, or stuck behind a dependency that gave up."""

        def held(p: ManagedProcess) -> Callable[[], bool]:
            return lambda: (
                stuck(p, self.processes, self._seams.wall_clock()) and p.reason.startswith("waiting for")
            )  # once it says so

        with contextlib.suppress(TimeoutError):
            await asyncio.gather(*(p.wait_settled(wait_s, held(p)) for p in procs))
        return [p.snapshot() for p in procs]

    def plan(self, new: Config) -> ReloadPlan:
        return plan_reload(self.config.programs, new.programs)

    async def apply(self, new: Config, diff: str = "") -> ReloadPlan:
        """Apply a new config: stop removed and changed programs, then add changed and new ones; ``diff`` (the
        config file's, see ConfigReloaded) goes into the event that tells it."""
        plan = self.plan(new)
        old_cfgs = {n: self.processes[n].cfg for n in (*plan.removed, *plan.changed)}
        removed_logs = {self.processes[n].log_path for n in plan.removed}
        restarting = set(plan.changed) - self._restarting  # what is part of a changed program comes back with it
        self._restarting |= restarting
        try:
            for level in stop_levels(old_cfgs):
                await self._stop_many(level, remove=True)
        finally:
            self._restarting -= restarting
        gone = removed_logs - {p.log_path for p in self.processes.values()}
        if gone:  # its last output, still queued, may fail once more: forgotten after the writer did it
            await asyncio.to_thread(WRITER.wait, WRITER.mark(), LOG_DRAIN_S)
        for path in gone:
            self.store.write_failures.forget(path)  # a removed program's log is no longer a problem
        stopped = self.store.stopped_by_hand()
        self.config = new
        for name in (*plan.changed, *plan.added):
            cfg = new.programs[name]
            self._add(cfg, wanted=cfg.autostart and not cfg.disabled and name not in stopped)
        self.bus.publish(ConfigReloaded(added=plan.added, changed=plan.changed, removed=plan.removed, diff=diff))
        return plan

    # ---------------------------------------------------------------- internals

    def _add(self, cfg: ProgramConfig, wanted: bool) -> None:
        assert self._group is not None, "programs are added only while the supervisor runs"
        by = self.store.stopped_by(cfg.name) if not wanted else ""
        proc = ManagedProcess(
            cfg,
            log_dir=self.config.state_dir / "logs",
            bus=self.bus,
            blockers=self.blockers,
            changed=self._next_change,
            on_spawn=self._child_started,
            on_exit=self._child_exited,
            wanted=wanted,
            containment=self.containment,
            write_failures=self.store.write_failures,
            seams=self._seams,
        )
        if by:  # stopped by hand before this daemon (or this config) began: say by whom, as the live stop did
            proc.reason = f"stopped by hand by {by} (kept across daemon restarts and reloads)"
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
                await self._seams.sleep(CONTROLLER_RESTART_DELAY_S)

    async def _stop_many(self, names: list[str], remove: bool = False) -> None:
        """Stop ``names`` together (a reload's removed or changed ones, a level of a shutdown); one log line says
        how it went, however many they are."""
        procs = [self.processes[n] for n in names]
        began = self._seams.monotonic()
        for p in procs:
            p.stop()
        longest = max((p.cfg.stop_timeout_s for p in procs), default=0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.gather(*(p.wait_settled(longest + 10.0) for p in procs))
        if len(procs) > 1:
            left = [p.name for p in procs if p.state not in STOPPED_STATES]
            (log.warning if left else log.info)(
                "programs_stopped",
                count=len(procs),
                removed=remove,
                elapsed_s=round(self._seams.monotonic() - began, 3),
                not_stopped=left[:20],
                not_stopped_count=len(left),
            )
        if remove:
            for name in names:
                task = self._tasks.pop(name)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                del self.processes[name]

    def _child_exited(self, proc: ManagedProcess) -> None:
        self.store.child_gone(proc.name)
        self.containment.reaper.kick()  # what the program left re-parented to the daemon may have ended too

    def _child_started(self, proc: ManagedProcess) -> None:
        if proc.pid is not None and (ident := identity_of(proc.pid)) is not None:
            self.store.child_started(proc.name, ident, proc.spawn_tag)

    def blockers(self, cfg: ProgramConfig) -> list[str]:
        """The dependencies of ``cfg`` that do not meet their condition yet, as ``name (what it is)``."""
        out = []
        for dep in cfg.depends_on:
            proc = self.processes.get(dep)
            if proc is None:
                out.append(f"{dep} (not loaded)")
            elif not meets(proc, cfg.condition_for(dep)):
                out.append(f"{dep} ({describe(proc)})")
        return out

    def _next_change(self) -> Awaitable[object]:
        """An awaitable that returns at the next state or health change of any program (from this call on)."""
        return self._pulse.wait()

    def _on_event(self, event: object) -> None:
        if isinstance(event, StateChanged | HealthChanged):
            pulse, self._pulse = self._pulse, asyncio.Event()
            pulse.set()
        if isinstance(event, StateChanged) and event.old is ProcessState.RUNNING:
            self._propagate(event.name)
        elif isinstance(event, StateChanged) and event.new is ProcessState.RUNNING and self._stopped_along:
            for proc in self.processes.values():  # the dependency is back: what stopped with it starts again
                if event.name in proc.cfg.part_of and proc.name in self._stopped_along:
                    self._stopped_along.discard(proc.name)
                    proc.start()

    def _propagate(self, name: str) -> None:
        """``name`` left RUNNING: the programs that are part of it (``depends_on: {name: {restart: true}}``,
        systemd's ``PartOf=``) follow: restarted when it comes back (a restart, a crash it is restarted
        after), stopped when it is stopped. Each then waits for it as at start. Not remembered as an
        operator's stop: a daemon restart starts them as configured, and so does the dependency's next start."""
        dep = self.processes.get(name)
        if dep is None:
            return
        coming_back = dep.wanted or name in self._restarting
        for proc in self.processes.values():
            if name in proc.cfg.part_of and proc.wanted:
                log.info("dependency_propagated", program=proc.name, dependency=name, restart=coming_back)
                if coming_back:
                    proc.restart()
                else:
                    proc.stop()
                    self._stopped_along.add(proc.name)
