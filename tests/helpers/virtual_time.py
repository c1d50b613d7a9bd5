"""Virtual time and scripted children: the seams tests give a :class:`~foss_supervisor.core.process.ManagedProcess`
or a :class:`~foss_supervisor.core.supervisor.Supervisor` instead of the world.

:class:`VirtualClock` moves only when every task waits, so minutes of backoff or stop timeouts take
milliseconds; :class:`FakeChildren` is a :class:`~foss_supervisor.core.seams.ChildEdge` whose children follow
:class:`Script` s; :class:`Fleet` makes one per program for a Supervisor (supervisord's ``DummyOptions``,
honcho's fake clock). No process is spawned: the PIDs they hand out are above the kernel's ``pid_max``, so no
real process is ever named.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from foss_supervisor.config import HealthConfig
    from foss_supervisor.core.process import ManagedProcess

__all__ = ["EPOCH", "FAKE_PID_BASE", "FakeChildren", "Fleet", "Script", "VirtualClock", "Watch"]

#: no PID reaches this (Linux's ``PID_MAX_LIMIT`` is 2**22): a fake child never names a real process
FAKE_PID_BASE = 1 << 22
EPOCH = 1_700_000_000.0


class VirtualClock:
    """Monotonic and wall time that only move when every task waits; ``sleep`` runs on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Callable[[], bool], Callable[[], None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    def call_later(self, delay: float, fn: Callable[[], None], live: Callable[[], bool] = lambda: True) -> None:
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), live, fn))

    async def sleep(self, delay: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.call_later(delay, lambda: fut.set_result(None), live=lambda: not fut.done())
        await fut

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, with everything that happens in them."""
        target = self.now + seconds
        self.call_later(seconds, lambda: None)
        await self.run_until(lambda: self.now >= target)

    async def run_until(self, cond: Callable[[], bool], limit_s: float = 3600.0) -> None:
        """Let every task run until it waits; if ``cond`` is still false, jump to the next timer; repeat."""
        deadline = self.now + limit_s
        while True:
            for _ in range(100):
                await asyncio.sleep(0)
            if cond():
                return
            while self._timers and not self._timers[0][2]():
                heapq.heappop(self._timers)
            if not self._timers or self._timers[0][0] > deadline:
                raise AssertionError(f"not reached within {limit_s:g} virtual seconds")
            when, _, _, fn = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            fn()


@dataclass
class Script:
    """What one spawned child does: exit with ``code`` after ``run_s`` (None: run until signalled)."""

    run_s: float | None = None
    code: int = 0
    ignores_term: bool = False
    spawn_error: str = ""


@dataclass
class Watch:
    exited: asyncio.Future[int]
    exited_at: float = 0.0


@dataclass
class FakeChildren:
    """A :class:`~foss_supervisor.core.seams.ChildEdge` whose children follow scripts (the last one repeats).

    ``stop`` behaves like the real one on the virtual clock: stop signal, ``stop_timeout_s``, SIGKILL. The health
    probe answers ``healthy`` (set it to change the answer); ``probes`` counts its runs.
    """

    clock: VirtualClock
    scripts: list[Script]
    stop_timeout_s: float = 5.0
    spawned: list[int] = field(default_factory=list)
    signals: list[signal.Signals] = field(default_factory=list)
    reaped: int = 0
    ready: asyncio.Future[None] | None = None
    status_text: str = ""
    tag: str = ""
    watchdog_ping_at: float | None = None
    watchdog_triggered: bool = False
    healthy: bool = True
    probes: int = 0
    pids: Iterator[int] = field(default_factory=lambda: itertools.count(FAKE_PID_BASE))
    spawn_gate: asyncio.Event | None = None  # set: a spawn is under way until it is set (the real one awaits)
    _current: tuple[Watch, Script] | None = None

    def last_lines(self, count: int = 2) -> tuple[str, ...]:
        """What the scripted children print: nothing."""
        return ()

    async def spawn(self, serial: int) -> tuple[int, Watch]:
        assert serial == len(self.spawned) + 1  # the controller numbers its spawns (containment tags)
        if self.spawn_gate is not None:
            await self.spawn_gate.wait()
        script = self.scripts[min(len(self.spawned), len(self.scripts) - 1)]
        if script.spawn_error:
            self.scripts = self.scripts[1:] or self.scripts
            raise OSError(script.spawn_error)
        pid = next(self.pids)
        self.spawned.append(pid)
        watch = Watch(asyncio.get_running_loop().create_future())
        self._current = (watch, script)
        if script.run_s is not None:
            self._exit_later(watch, script.run_s, script.code)
        return pid, watch

    def _exit_later(self, watch: Watch, delay: float, code: int) -> None:
        def exit_now() -> None:
            watch.exited_at = self.clock.now
            watch.exited.set_result(code)

        self.clock.call_later(delay, exit_now, live=lambda: not watch.exited.done())

    def signal(self, sig: signal.Signals) -> bool:
        assert self._current is not None
        watch, script = self._current
        self.signals.append(sig)
        if watch.exited.done():
            return False
        if sig is signal.SIGKILL or not script.ignores_term:
            self._exit_later(watch, 0.01, -sig)
        return True

    async def stop(self, exited: asyncio.Future[int], abort: bool = False) -> None:
        self.signal(signal.SIGABRT if abort else signal.SIGTERM)
        timer = asyncio.ensure_future(self.clock.sleep(self.stop_timeout_s))
        await asyncio.wait([exited, timer], return_when=asyncio.FIRST_COMPLETED)
        timer.cancel()
        if not exited.done():
            self.signal(signal.SIGKILL)
        await exited

    async def reap(self, exited: asyncio.Future[int], end_left: bool = True) -> list[object]:
        assert exited.done()
        self.reaped += 1
        return []

    def probe(self) -> Callable[[HealthConfig], Awaitable[tuple[bool, str]]]:
        async def scripted(cfg: HealthConfig) -> tuple[bool, str]:
            self.probes += 1
            return self.healthy, "scripted probe: " + ("healthy" if self.healthy else "failing")

        return scripted

    def halted(self) -> str:
        return ""

    async def follow_main_pid(self, deadline: float) -> str:
        raise AssertionError("these programs have no pidfile")


@dataclass
class Fleet:
    """The child factory of a Supervisor (``Seams(child=fleet.child)``): each program controller it makes gets a
    :class:`FakeChildren` following ``scripts[name]`` (default: run until signalled) that stops within the
    program's ``stop_timeout_s``. PIDs are unique across the fleet. ``made[name]`` lists a program's edges in
    the order they were made: a reload that changes a program makes a new controller, so a new edge.
    """

    clock: VirtualClock
    scripts: dict[str, list[Script]] = field(default_factory=dict)
    made: dict[str, list[FakeChildren]] = field(default_factory=dict)
    pids: Iterator[int] = field(default_factory=lambda: itertools.count(FAKE_PID_BASE))

    def child(self, proc: ManagedProcess) -> FakeChildren:
        scripts = list(self.scripts.get(proc.name, [Script()]))
        edge = FakeChildren(self.clock, scripts, stop_timeout_s=proc.cfg.stop_timeout_s, pids=self.pids)
        self.made.setdefault(proc.name, []).append(edge)
        return edge

    def __getitem__(self, name: str) -> FakeChildren:
        """The edge of ``name``'s current controller."""
        return self.made[name][-1]
