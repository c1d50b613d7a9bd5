"""The one way a child is stopped: programs, health probes and the pipeline worker all end through here.

A child runs in its own session (``start_new_session=True``), so its PID is also its process group.
:func:`stop_group` signals that group, waits (bounded) for the leader, SIGKILLs the group, then ends
what escaped the group (descendants that called ``setsid()`` or double-forked, found by their spawn tag
once they are re-parented to the daemon, see :mod:`foss_supervisor.core.containment`). It completes even when
its caller is cancelled, and then re-raises the cancellation (trio's ``_posix_deliver_cancel``, circus's
``Watcher.kill_process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

__all__ = ["StopOutcome", "reap_stragglers", "signal_group", "stop_group", "uncancellable"]

T = TypeVar("T")

log = structlog.get_logger("foss_supervisor.core.child")


@dataclass(frozen=True, slots=True)
class StopOutcome:
    """How a stop ended: the leader's exit code, whether SIGKILL was needed, escaped processes ended."""

    exit_code: int
    killed: bool
    escaped: int


def signal_group(pid: int, sig: signal.Signals, *, group: bool = True) -> bool:
    """Send ``sig`` to ``pid``'s process group (or to ``pid`` alone). False when nothing was there.

    Call it only while ``pid`` is an unreaped child, or right after reaping it: a process group id cannot
    be reused while any member lives, so this never reaches a stranger.
    """
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def stop_group(
    pid: int,
    exited: Awaitable[int],
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
    timeout_s: float = 0.0,
    group: bool = True,
    sweep: Callable[[], int] = lambda: 0,
    on_timeout: Callable[[], None] = lambda: None,
) -> StopOutcome:
    """Stop one child and everything it started; safe under cancellation.

    ``exited`` resolves with the leader's exit code once it is reaped (asyncio's child watcher does
    that); pass a Future (not a coroutine) for an exact ``killed``. ``timeout_s`` 0 skips the polite
    signal and kills at once; ``group`` False sends the polite signal to the leader alone. ``sweep``
    ends escaped descendants and returns how many it signalled; ``on_timeout`` runs before the SIGKILL.
    """
    return await uncancellable(_stop(pid, exited, stop_signal, timeout_s, group, sweep, on_timeout))


async def uncancellable(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` in its own task to its end, even when the caller is cancelled meanwhile.

    A cancellation of the caller is re-raised once ``coro`` finished, so a stop that was started is
    always completed (the child reaped) before shutdown or reload move on.
    """
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    result = task.result()
    if cancelled:
        raise asyncio.CancelledError
    return result


async def _stop(
    pid: int,
    exited: Awaitable[int],
    stop_signal: signal.Signals,
    timeout_s: float,
    group: bool,
    sweep: Callable[[], int],
    on_timeout: Callable[[], None],
) -> StopOutcome:
    waiting = asyncio.ensure_future(exited)
    killed = False
    if timeout_s > 0:
        signal_group(pid, stop_signal, group=group)
        signal_group(pid, signal.SIGCONT, group=group)  # a stopped (SIGSTOP) child handles it only once continued
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(waiting)
        except TimeoutError:
            on_timeout()
    if not waiting.done():
        killed = True
        signal_group(pid, signal.SIGKILL)
    code = await waiting
    return StopOutcome(code, killed, reap_stragglers(pid, sweep))


def reap_stragglers(pid: int, sweep: Callable[[], int]) -> int:
    """Once a leader is reaped: SIGKILL what is left of its group, then end its escaped processes.

    Returns how many escaped processes were signalled. ``group=False`` on a stop only spares the
    group the *polite* signal: nothing a program started outlives it.
    """
    signal_group(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        return sweep()
    return 0
