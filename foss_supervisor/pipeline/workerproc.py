"""The worker child process as the runner sees it: spawn, request/reply over its pipes, bounded stop.

Shape: the child runs in its own session and is awaited by its owner (``asyncio.create_subprocess_exec`` +
``proc.wait()``, never ``os.waitpid(-1)``); stop asks for a clean exit (so DuckDB checkpoints), waits
bounded, then SIGKILLs the group; both complete even when the caller is cancelled. Protocol: protocol.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from foss_supervisor.core.child import stop_group
from foss_supervisor.pipeline.errors import WorkerCrashedError, WorkerProtocolError
from foss_supervisor.pipeline.protocol import decode, encode

__all__ = ["WorkerProcess"]

log = structlog.get_logger("foss_supervisor.pipeline")

_STREAM_LIMIT = 64 * 1024 * 1024


class WorkerProcess:
    """One running worker child: request/reply over its pipes, bounded stop, SIGKILL to its group."""

    def __init__(self, proc: asyncio.subprocess.Process, ready: Mapping[str, Any], startup_s: float) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.ready = dict(ready)
        self.startup_s = startup_s
        #: wall-clock time (``time.time()``) the worker was ready, for its uptime in ``status``
        self.started_at = time.time()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ops: dict[int, str] = {}  # op of each request in flight
        self._log_handlers: dict[int, Callable[[str, str], None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.exit_reason = "died"
        self.exited = asyncio.Event()

    @classmethod
    async def spawn(
        cls, argv: Sequence[str], env: Mapping[str, str], *, ready_timeout_s: float = 60.0
    ) -> WorkerProcess:
        """Start the child in its own session and wait (bounded) for its ready line."""
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
            limit=_STREAM_LIMIT,
        )
        assert proc.stdout is not None and proc.stderr is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), ready_timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            await _kill_and_reap(proc)
            raise
        if not line:
            err = await _read_all(proc.stderr)
            await _kill_and_reap(proc)
            raise WorkerCrashedError(f"worker exited before it was ready: {err[-2000:]}")
        try:
            ready = decode(line)
        except ValueError:
            await _kill_and_reap(proc)
            raise WorkerProtocolError(f"worker wrote {line[:200]!r} instead of its ready line") from None
        self = cls(proc, ready, time.perf_counter() - t0)
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name=f"worker-{proc.pid}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"worker-{proc.pid}-stderr"),
        ]
        return self

    @property
    def alive(self) -> bool:
        """True until the child's pipes closed or it was killed."""
        return not self.exited.is_set() and self.proc.returncode is None

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                try:
                    msg = decode(line)
                except ValueError:
                    log.warning("pipeline_worker_bad_line", pid=self.pid, line=line[:200])
                    continue
                rid = msg.get("id")
                if msg.get("event") == "log":
                    handler = self._log_handlers.get(rid) if isinstance(rid, int) else None
                    if handler is not None:
                        handler(str(msg.get("level", "info")), str(msg.get("message", "")))
                    continue
                fut = self._pending.pop(rid, None) if isinstance(rid, int) else None
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        finally:
            self.exited.set()
            err = WorkerCrashedError(f"worker {self.pid} exited ({self.exit_reason}) while the request was in flight")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(err)
            self._pending.clear()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            log.info("pipeline_worker_stderr", pid=self.pid, line=line.decode("utf-8", "replace").rstrip())

    def send(
        self, op: str, payload: Mapping[str, Any], *, on_log: Callable[[str, str], None] | None = None
    ) -> tuple[int, asyncio.Future[dict[str, Any]]]:
        """Send a request; returns its id and a future for the reply (fails if the worker dies)."""
        if not self.alive:
            raise WorkerCrashedError(f"worker {self.pid} is not running")
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._ops[rid] = op
        fut.add_done_callback(lambda _f: self._ops.pop(rid, None))
        if on_log is not None:
            self._log_handlers[rid] = on_log
            fut.add_done_callback(lambda _f: self._log_handlers.pop(rid, None))
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode({"id": rid, "op": op, **payload}))
        return rid, fut

    def in_flight(self, *ops: str) -> int:
        """How many requests (of ``ops``, or of any op when none is given) are waiting for their reply."""
        return sum(1 for op in self._ops.values() if not ops or op in ops)

    async def request(self, op: str, payload: Mapping[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
        """Send and await one reply (bounded)."""
        _, fut = self.send(op, payload)
        return await asyncio.wait_for(fut, timeout_s)

    async def kill(self, reason: str) -> None:
        """SIGKILL the worker's process group and reap it; completes even if the caller is cancelled."""
        self.exit_reason = reason
        await asyncio.shield(self._finish(kill=True))

    async def stop(self, timeout_s: float = 10.0, reason: str = "stop") -> None:
        """Ask for a clean exit (checkpoint), wait bounded, then SIGKILL; survives caller cancellation."""
        self.exit_reason = reason
        await asyncio.shield(self._stop(timeout_s))

    async def _stop(self, timeout_s: float) -> None:
        if self.alive:
            with contextlib.suppress(Exception):
                await self.request("shutdown", {}, timeout_s=timeout_s)
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), timeout_s)
        await self._finish(kill=self.proc.returncode is None)

    async def _finish(self, *, kill: bool) -> None:
        if kill and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        await _kill_and_reap(self.proc)
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 5.0)
        self.exited.set()


async def _read_all(stream: asyncio.StreamReader) -> str:
    try:
        data = await asyncio.wait_for(stream.read(), 5.0)
    except TimeoutError:
        data = b""
    return data.decode("utf-8", "replace")


async def _kill_and_reap(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the worker's whole group (the one stop path of :mod:`foss_supervisor.core.child`), then reap it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10.0):
            await stop_group(proc.pid, proc.wait())
