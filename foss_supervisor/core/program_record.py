"""The half of a supervised program that holds its state and its child: the edges it takes, the events it
publishes, and the bookkeeping of the one child it runs at a time (spawn, watch, stop, reap).

:class:`ProgramRecord` is the base of :class:`~foss_supervisor.core.process.ManagedProcess`, which adds the
policy (what to do next); nothing here decides anything. Every state change goes through
:meth:`ProgramRecord._transition` (an illegal edge raises), every health change through
:meth:`ProgramRecord._health_changed`; both publish on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from foss_supervisor.base.processstates import Health, ProcessState, is_exit_edge
from foss_supervisor.base.procinfo import ProcStat
from foss_supervisor.config import ProgramConfig
from foss_supervisor.core.child import uncancellable
from foss_supervisor.core.events import EventBus, HealthChanged, StateChanged
from foss_supervisor.core.seams import ChildEdge, ExitWatch, Seams
from foss_supervisor.core.states import TRANSITIONS

__all__ = ["ProgramRecord", "exit_text"]

log = structlog.get_logger("foss_supervisor.core.process")

S = ProcessState


def exit_text(code: int | None) -> str:
    """How a child ended, in words: ``exited with code 3`` or ``killed by SIGTERM`` (asyncio's -N)."""
    if code is None:
        return "exit code unknown"
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


class ProgramRecord:
    """A program's state, health and current child; :class:`ManagedProcess` sets every attribute below."""

    cfg: ProgramConfig
    name: str
    state: ProcessState
    health: Health
    health_detail: str
    reason: str
    pid: int | None
    exit_code: int | None
    started_at: float | None
    spawns: int
    _seams: Seams
    _bus: EventBus
    _child: ChildEdge
    _exit_watch: ExitWatch | None
    _spawned_at: float
    _wake: asyncio.Event
    _changed: asyncio.Event
    _unhealthy: bool
    _on_spawn: Callable[[Any], None]
    _on_exit: Callable[[Any], None]

    async def _exit_or_timeout(self, exited: asyncio.Future[int], timeout_s: float) -> None:
        """Return when the child exits or ``timeout_s`` passes on the seams' clock, whichever is first."""
        timer = asyncio.ensure_future(self._seams.sleep(timeout_s))
        either: list[asyncio.Future[Any]] = [exited, timer]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()

    def _ran_for(self) -> float:
        watch = self._exit_watch
        end = watch.exited_at if watch is not None and watch.exited.done() else self._seams.monotonic()
        return end - self._spawned_at

    async def _until_woken(self, aw: Awaitable[Any]) -> bool:
        """Await ``aw`` unless a request wakes us first. True when ``aw`` finished."""
        task = asyncio.ensure_future(aw)
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({task, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        if task in done:
            if not task.cancelled():
                task.result()
            return True
        if not isinstance(aw, asyncio.Future):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return False

    # ---------------------------------------------------------------- child bookkeeping (policy side)

    async def _launch(self) -> asyncio.Future[int]:
        """Spawn through the edge and record the child; nothing after the spawn can lose it."""
        self._spawned_at = self._seams.monotonic()  # before the exec: a fast child may exit before it returns
        pid, watch = await self._child.spawn(self.spawns + 1)
        self.started_at = self._seams.wall_clock()
        self.exit_code = None
        self.spawns += 1
        self._track(pid, watch)
        return watch.exited

    def _track(self, pid: int, watch: ExitWatch) -> None:
        """From now on ``pid`` is the supervised process (a fresh spawn, or the main PID a leader forked)."""
        self._exit_watch, self.pid = watch, pid
        try:
            self._on_spawn(self)
        except Exception:  # recording it for leftover cleanup failed (disk full, EMFILE): it runs, tracked
            log.exception("spawn_record_failed", program=self.name, pid=pid)

    async def _collect(self, exited: asyncio.Future[int], end_left: bool = True) -> list[ProcStat]:
        """Reap through the edge, record the exit code, forget the child; return what it left running."""
        left = await self._child.reap(exited, end_left)
        self.exit_code = exited.result()
        self._exit_watch = None
        self.pid = None
        self._on_exit(self)
        return left

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the running program (its group, or its main PID alone); False when none runs."""
        return self._exit_watch is not None and self._child.signal(sig)

    async def _stop_child(self, reason: str, quiet: bool = False, abort: bool = False) -> None:
        """The one stop path: stop_signal (SIGABRT when ``abort``), bounded wait, SIGKILL to the group, reap.

        It runs in its own task and is awaited through a shield, so a caller that is cancelled
        (shutdown, reload) still waits for the child to be gone. A ``quiet`` stop (a failed start, or a
        child found in a state with no STOPPING edge) takes no edge: the caller decides the state.
        """
        await uncancellable(self._terminate(reason, quiet, abort))

    async def _terminate(self, reason: str, quiet: bool, abort: bool = False) -> None:
        assert self._exit_watch is not None
        exited = self._exit_watch.exited
        if not quiet:
            self._transition(S.STOPPING, reason)
        await self._child.stop(exited, abort)
        await self._collect(exited)
        if not quiet:
            self._transition(S.STOPPED, f"{reason}; {exit_text(self.exit_code)}")

    # ---------------------------------------------------------------- events

    def _transition(self, new: ProcessState, reason: str, retry_in_s: float | None = None) -> None:
        old = self.state
        TRANSITIONS.check(old, new)
        self.state = new
        self.reason = reason
        if new not in (S.RUNNING, S.STOPPING):
            self.health = Health.UNKNOWN
            self.health_detail = ""
        exited = is_exit_edge(old, new, self.exit_code)
        event = StateChanged(
            name=self.name,
            old=old,
            new=new,
            pid=self.pid,
            exit_code=self.exit_code,
            reason=reason,
            retry_in_s=retry_in_s,
            ran_s=round(self._seams.wall_clock() - self.started_at, 3) if exited and self.started_at else None,
            last_lines=self._child.last_lines() if exited else (),
        )
        self._bus.publish(event)
        self._changed.set()

    def _health_changed(self, health: Health, detail: str) -> None:
        old = self.health
        self.health, self.health_detail = health, detail
        self._bus.publish(HealthChanged(name=self.name, old=old, new=health, detail=detail))
        self._changed.set()
        if health is Health.UNHEALTHY and self.cfg.autorestart != "never":  # never: reported, left running
            self._unhealthy = True
            self._wake.set()
