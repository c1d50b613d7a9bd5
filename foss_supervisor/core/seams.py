"""The seams between a program's restart policy and the world: clocks, sleep, and its child's OS edge.

:class:`~foss_supervisor.core.process.ManagedProcess` takes a :class:`Seams`; production uses the
defaults (real clocks, ``asyncio.sleep``, :class:`~foss_supervisor.core.program_child.ProgramChild`),
tests pass a virtual clock and a scripted child (supervisord's ``DummyOptions``, honcho's fake clock).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from foss_supervisor.base.procinfo import ProcStat
from foss_supervisor.config import HealthConfig

if TYPE_CHECKING:
    from foss_supervisor.core.process import ManagedProcess

__all__ = ["REAL_SEAMS", "ChildEdge", "ExitWatch", "Seams"]


class ExitWatch(Protocol):
    """How the controller learns that the supervised PID is gone."""

    @property
    def exited(self) -> asyncio.Future[int]:
        """Resolves with the exit code (-N: killed by signal N)."""
        ...

    @property
    def exited_at(self) -> float:
        """Monotonic seconds when ``exited`` resolved."""
        ...


class ChildEdge(Protocol):
    """The OS edge of one program: everything the controller asks of its child, and nothing else."""

    @property
    def ready(self) -> asyncio.Future[None] | None:
        """Resolves at READY=1 for ``ready: notify`` programs (after a spawn); None otherwise."""
        ...

    @property
    def status_text(self) -> str:
        """The last STATUS= line the program sent."""
        ...

    @property
    def watchdog_ping_at(self) -> float | None:
        """Monotonic seconds of the current spawn's last ``WATCHDOG=1`` (None: none yet)."""
        ...

    @property
    def watchdog_triggered(self) -> bool:
        """The current spawn sent ``WATCHDOG=trigger``: treat it as failed now."""
        ...

    @property
    def tag(self) -> str:
        """The current spawn's tag (see :mod:`foss_supervisor.core.containment`); "" before the first spawn."""
        ...

    async def spawn(self, serial: int) -> tuple[int, ExitWatch]:
        """Start spawn number ``serial``; return its PID and exit watch. Raises OSError/ValueError when it cannot."""
        ...

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the running child (its group, by the program's setting); False when none runs."""
        ...

    async def stop(self, exited: asyncio.Future[int], abort: bool = False) -> None:
        """stop_signal (SIGABRT when ``abort``: a watchdog timeout), bounded wait (stop_timeout_s), SIGKILL;
        returns once ``exited`` resolved."""
        ...

    async def reap(self, exited: asyncio.Future[int], end_left: bool = True) -> list[ProcStat]:
        """After ``exited``: end (unless ``end_left`` is False) and return what the spawn left running."""
        ...

    def probe(self) -> Callable[[HealthConfig], Awaitable[tuple[bool, str]]]:
        """The health probe for the current spawn."""
        ...

    def halted(self) -> str:
        """Why the supervised process cannot answer at all (stopped: state T; a zombie), or ""."""
        ...

    def last_lines(self, count: int = 2) -> tuple[str, ...]:
        """The last ``count`` non-blank lines the current (or last) spawn printed (stripped, at most 200 characters
        each); () when it printed none."""
        ...

    async def follow_main_pid(self, deadline: float) -> tuple[int, ExitWatch] | str:
        """``pidfile:`` programs: adopt the main PID the leader wrote (by a monotonic deadline), or say why not."""
        ...


@dataclass(frozen=True, slots=True)
class Seams:
    """Everything a :class:`ManagedProcess` takes from the world; tests swap in fakes.

    ``child`` builds the program's :class:`ChildEdge`; None means the real
    :class:`~foss_supervisor.core.program_child.ProgramChild`. Clocks are in seconds.
    """

    monotonic: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    child: Callable[[ManagedProcess], ChildEdge] | None = None


#: the world as it is: real clocks, real sleep, the real child edge
REAL_SEAMS = Seams()
