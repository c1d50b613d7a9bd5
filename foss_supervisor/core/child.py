"""The one way a child is started and the one way it is stopped: programs, health probes, hook commands and
the pipeline worker all spawn through :func:`spawn` and end through :func:`stop_group`.

:func:`spawn` is the shape of trio's ``open_process`` (a primitive that manages nothing: the caller owns
the :class:`Child`) with circus's redirector folded in (output goes to a sink as it arrives, no reader
task per pipe). Every child starts in a new session (``start_new_session=True``), so its PID is also its
process group. Its exit is noticed by the loop's child watcher (asyncio's ``process_exited``, a pidfd on
Linux: never ``os.waitpid(-1)``, which would steal other children's exit statuses), which resolves
:attr:`Child.exited` at once, whether or not something still holds its pipes.

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
import pwd
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from foss_supervisor.base.filemodes import operator_umask
from foss_supervisor.base.loopgate import LoopGate

__all__ = [
    "Child",
    "OutputSink",
    "StopOutcome",
    "reap_stragglers",
    "signal_group",
    "spawn",
    "stop_group",
    "uncancellable",
]

T = TypeVar("T")

log = structlog.get_logger("foss_supervisor.core.child")

#: receives a child's output as it arrives: ``(fd, chunk)``, fd 1 (stdout) or 2 (stderr); an empty chunk
#: once that stream ended. Called on the loop: it must not block.
OutputSink = Callable[[int, bytes], None]


class Child(asyncio.SubprocessProtocol):
    """One spawned child (made by :func:`spawn`): its PID, its exit, its pipes.

    ``exited`` resolves with the exit code (-N: killed by signal N) the moment the child watcher reaps
    it, and ``exited_at`` (monotonic seconds) is set just before; ``closed`` resolves once it exited and
    every pipe of it is closed. The caller owns it: end it with :meth:`stop` (or see it exit), then
    :meth:`release` it.
    """

    def __init__(self, output: OutputSink | None) -> None:
        loop = asyncio.get_running_loop()
        self.pid = 0
        self.exited: asyncio.Future[int] = loop.create_future()
        self.exited_at = 0.0
        self.closed: asyncio.Future[None] = loop.create_future()
        self._output = output
        self._transport: asyncio.SubprocessTransport | None = None

    # ---------------------------------------------------------------- the loop's callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if self._output is not None and data:
            self._output(fd, data if isinstance(data, bytes) else data.encode())

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if self._output is not None and fd in (1, 2):
            self._output(fd, b"")

    def process_exited(self) -> None:
        assert self._transport is not None
        code = self._transport.get_returncode()
        if not self.exited.done() and code is not None:
            self.exited_at = time.monotonic()
            self.exited.set_result(code)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    # ---------------------------------------------------------------- the owner's side

    async def wait(self) -> int:
        """The exit code, once it exited; cancelling the caller leaves :attr:`exited` intact."""
        return await asyncio.shield(self.exited)

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the child's stdin (``spawn(stdin=True)``); never blocks.

        A child that closed its stdin or exited loses what is written (the pipe reports it, nothing
        raises): its exit tells the rest.
        """
        pipe = self._transport.get_pipe_transport(0) if self._transport is not None else None
        if isinstance(pipe, asyncio.WriteTransport) and not pipe.is_closing():
            pipe.write(data)

    def close_stdin(self) -> None:
        """End the child's stdin (it reads EOF once what was written is flushed)."""
        pipe = self._transport.get_pipe_transport(0) if self._transport is not None else None
        if pipe is not None:
            pipe.close()

    def send_signal(self, sig: signal.Signals, *, group: bool = True) -> bool:
        """Send ``sig`` to the child's process group (or to the child alone); False once it exited."""
        return not self.exited.done() and signal_group(self.pid, sig, group=group)

    async def stop(
        self,
        *,
        stop_signal: signal.Signals = signal.SIGTERM,
        timeout_s: float = 0.0,
        group: bool = True,
        sweep: Callable[[], int] = lambda: 0,
        on_timeout: Callable[[], None] = lambda: None,
    ) -> StopOutcome:
        """:func:`stop_group` on this child (the arguments are its); safe under cancellation."""
        return await stop_group(
            self.pid,
            self.exited,
            stop_signal=stop_signal,
            timeout_s=timeout_s,
            group=group,
            sweep=sweep,
            on_timeout=on_timeout,
        )

    async def release(self, drain_s: float = 1.0) -> None:
        """Once it exited: let its pipes drain (``drain_s`` at most: a process that left the group may
        hold them), then close them. Idempotent."""
        await self.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_s):
                await asyncio.shield(self.closed)
        if self._transport is not None:
            self._transport.close()  # after the exit: closing a running child's transport would kill it


# At most SPAWNS_AT_ONCE spawns under way on a loop (a fork, then its pipes connected over a few loop steps); the
# rest wait their turn, woken a step later: a fleet starting together (1,000 programs: about a second of forks)
# does not hold the loop, with its exits, signals and control socket, for all of them in one step, and the
# state written once per step (children.json) still covers many spawns.
SPAWNS_AT_ONCE = 32
_spawn_turn = LoopGate(SPAWNS_AT_ONCE)


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    output: OutputSink | None = None,
    stdin: bool = False,
    pass_fds: Sequence[int] = (),
    account: pwd.struct_passwd | None = None,
    umask: int | None = None,
) -> Child:
    """Start ``argv`` in a new session and return its :class:`Child`.

    ``env`` (default: the daemon's environment) and ``cwd`` as given; ``output``: stdout and stderr go
    through pipes into this sink (None: to ``/dev/null``); ``stdin``: a pipe the caller writes through
    :meth:`Child.write` (False: ``/dev/null``); ``pass_fds``: descriptors the child inherits; ``account``:
    run as that user (its uid, gid and groups); ``umask`` (None: the one the operator started the daemon
    with, :func:`~foss_supervisor.base.filemodes.operator_umask`, not the daemon's private 077), set by
    the C fork code, no Python runs in the child. Raises OSError (no such file, permission) or ValueError
    when it cannot start; nothing is left behind then.
    """
    devnull = asyncio.subprocess.DEVNULL
    pipe = asyncio.subprocess.PIPE
    async with _spawn_turn():
        _, child = await asyncio.get_running_loop().subprocess_exec(
            lambda: Child(output),
            *argv,
            stdin=pipe if stdin else devnull,
            stdout=pipe if output is not None else devnull,
            stderr=pipe if output is not None else devnull,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # its own process group, so a stop reaches what it started
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=os.getgrouplist(account.pw_name, account.pw_gid) if account else None,
            umask=operator_umask() if umask is None else umask,
            pass_fds=tuple(pass_fds),
        )
    assert child._transport is not None
    child.pid = child._transport.get_pid()
    return child


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
