"""The daemon side of the worker protocol (protocol.py): every request to the DuckDB worker goes through here.

:class:`WorkerChannel` is one worker's pipes: requests out on stdin, replies and step logs in on stdout (read
through the child primitive's output sink: no reader task), stderr to the daemon's log. :class:`WorkerClient`
is what the runner and the pipeline service call; it asks the supervised worker (workerservice.py) for the
live channel, and for a restart when a request cannot be stopped otherwise.

Time bounds: a step past its ``timeout_s`` SIGKILLs the worker (its transaction is lost, never half applied);
a cancelled step is interrupted, the worker killed after ``cancel_grace_s``. A query is answered by its time
limit plus the worker's grace (2 s by default) whatever happens in the worker: it interrupts the query at the
limit, and when no reply came at limit + grace (DuckDB could not interrupt it, or Python was converting its
values), the worker is recycled and the caller told "query exceeded its 10 s limit; the worker was
restarted". Limit hits are counted (``status``: ``limit_hits``) and logged (``pipeline_query_limit_hit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import re
import secrets
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from foss_supervisor.core.child import Child
from foss_supervisor.pipeline.engine.limits import MAX_RESULT_BYTES, MiB
from foss_supervisor.pipeline.errors import (
    PipelineError,
    QueryFailedError,
    QueryMemoryError,
    QueryRefusedError,
    QueryTimeoutError,
    SnapshotError,
    WorkerCrashedError,
    WorkerProtocolError,
)
from foss_supervisor.pipeline.protocol import QUERY_THREADS, decode, encode

if TYPE_CHECKING:
    from foss_supervisor.pipeline.engine.workerservice import WorkerService

__all__ = ["QUERY_SLOTS", "QueryResult", "StepAttemptError", "StepTimeoutError", "WorkerChannel", "WorkerClient"]

log = structlog.get_logger("foss_supervisor.pipeline")

QUERY_SLOTS = QUERY_THREADS - 2  # queries running at once, all clients together
MAX_LINE = 64 * MiB  # the longest reply line the worker may write (a query's reply is bounded far below)
_STDERR_LINE = 64 * 1024


class StepAttemptError(Exception):
    """The worker reported that a step attempt failed (and rolled it back)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class StepTimeoutError(Exception):
    """A step ran past its timeout_s; the worker was killed."""


@dataclasses.dataclass(frozen=True, slots=True)
class QueryResult:
    """Answer of a read-only query; ``truncated`` says rows were cut at max_rows."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool
    elapsed_s: float
    truncated_reason: str = ""  # why rows were cut beyond max_rows (the result's size), if so

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form for the API and ``--json``."""
        return {
            "columns": list(self.columns),
            "types": list(self.types),
            "rows": [list(r) for r in self.rows],
            "row_count": len(self.rows),
            "truncated": self.truncated,
            "truncated_reason": self.truncated_reason,
            "elapsed_s": self.elapsed_s,
        }


class WorkerChannel:
    """The pipes of one worker process. :meth:`feed` is its output sink; ``ready`` resolves at its ready line
    (``hello`` then holds it: pid, import_s, open_s), ``on_ready`` is called then."""

    def __init__(self, on_ready: Callable[[WorkerChannel], None]) -> None:
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.hello: dict[str, Any] = {}
        self.pid = 0
        self.exit_reason = "died"  # why it ended: died, stop, killed_timeout, killed_cancel, recycled_<reason>
        self.failure = ""  # a protocol violation that ended it
        self.reaped = False  # its process is gone and its exit reported
        self.startup_s = 0.0
        self.started_at = 0.0  # wall clock (``time.time()``) it was ready, for its uptime in ``status``
        self._t0 = time.perf_counter()
        self._on_ready = on_ready
        self._child: Child | None = None
        self._open = True  # until its stdout ended
        self._buffers = {1: bytearray(), 2: bytearray()}
        self._scanned = {1: 0, 2: 0}  # where the search for the next newline goes on
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ops: dict[int, str] = {}  # op of each request in flight
        self._log_handlers: dict[int, Callable[[str, str], None]] = {}

    def attach(self, child: Child) -> None:
        """The process these pipes belong to (right after its spawn)."""
        self._child = child
        self.pid = child.pid

    @property
    def alive(self) -> bool:
        """Ready, and neither ended nor broken: requests may be sent."""
        return self.ready.done() and self._open and not self.failure and self._child is not None

    # ---------------------------------------------------------------- what comes in

    def feed(self, fd: int, data: bytes) -> None:
        """The child's output sink: cut each stream into lines; an empty chunk ends the stream."""
        buf = self._buffers[fd]
        if not data:
            if buf:
                self._line(fd, bytes(buf))
                buf.clear()
            if fd == 1:
                self._end()
            return
        buf += data
        start, at = 0, self._scanned[fd]
        while (newline := buf.find(b"\n", at)) >= 0:
            self._line(fd, bytes(buf[start:newline]))
            start = at = newline + 1
        del buf[:start]
        self._scanned[fd] = len(buf)
        if fd == 2 and len(buf) > _STDERR_LINE:
            self._line(2, bytes(buf))
            buf.clear()
            self._scanned[2] = 0
        elif fd == 1 and len(buf) > MAX_LINE:
            buf.clear()
            self._broken(f"the worker wrote a line longer than {MAX_LINE // MiB} MiB")

    def _line(self, fd: int, line: bytes) -> None:
        if fd == 2:
            text = line.decode("utf-8", "replace").rstrip()
            self.stderr_tail.append(text)
            log.info("pipeline_worker_stderr", pid=self.pid, line=text)
            return
        if not line.strip() or self.failure:
            return
        try:
            msg = decode(line)
        except ValueError:
            if not self.ready.done():
                self._broken(f"the worker wrote {line[:200]!r} instead of its ready line")
            else:
                log.warning("pipeline_worker_bad_line", pid=self.pid, line=line[:200])
            return
        if not self.ready.done():
            if msg.get("event") != "ready":
                self._broken(f"the worker wrote {line[:200]!r} instead of its ready line")
                return
            self.hello = msg
            self.startup_s = time.perf_counter() - self._t0
            self.started_at = time.time()
            self.ready.set_result(None)
            self._on_ready(self)
            return
        rid = msg.get("id")
        if msg.get("event") == "log":
            handler = self._log_handlers.get(rid) if isinstance(rid, int) else None
            if handler is not None:
                handler(str(msg.get("level", "info")), str(msg.get("message", "")))
            return
        fut = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _broken(self, why: str) -> None:
        """A protocol violation: every request in flight fails, the worker is killed (its service restarts it)."""
        log.warning("pipeline_worker_protocol_error", pid=self.pid, error=why)
        self.failure = why
        self.exit_reason = "protocol_error"
        self._fail_pending(WorkerProtocolError(why))
        if self._child is not None:
            self._child.send_signal(signal.SIGKILL)

    def _end(self) -> None:
        self._open = False
        self._fail_pending(
            WorkerCrashedError(f"worker {self.pid} exited ({self.exit_reason}) while the request was in flight")
        )

    def _fail_pending(self, err: Exception) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(err)

    # ---------------------------------------------------------------- what goes out

    def send(
        self, op: str, payload: Mapping[str, Any], *, on_log: Callable[[str, str], None] | None = None
    ) -> tuple[int, asyncio.Future[dict[str, Any]]]:
        """Send a request; returns its id and a future for the reply (fails if the worker dies)."""
        if not self.alive or self._child is None:
            raise WorkerCrashedError(f"worker {self.pid} is not running")
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._ops[rid] = op
        fut.add_done_callback(lambda _f: self._ops.pop(rid, None))
        if on_log is not None:
            self._log_handlers[rid] = on_log
            fut.add_done_callback(lambda _f: self._log_handlers.pop(rid, None))
        self._child.write(encode({"id": rid, "op": op, **payload}))
        return rid, fut

    def in_flight(self, *ops: str) -> int:
        """How many requests (of ``ops``, or of any op when none is given) are waiting for their reply."""
        return sum(1 for op in self._ops.values() if not ops or op in ops)

    async def request(self, op: str, payload: Mapping[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
        """Send and await one reply (bounded)."""
        _, fut = self.send(op, payload)
        return await asyncio.wait_for(fut, timeout_s)


class WorkerClient:
    """Sends requests to the supervised worker (starting it if needed); a query's reply is at most
    ``max_bytes``; a cancelled step gets ``cancel_grace_s`` to stop before the worker is killed."""

    def __init__(self, worker: WorkerService, max_bytes: int = MAX_RESULT_BYTES, cancel_grace_s: float = 5.0) -> None:
        self._worker = worker
        self._max_bytes = max_bytes
        self._cancel_grace_s = cancel_grace_s
        # fewer than the worker's query threads: long queries can never take every thread (one is kept
        # for exports and the data browser's listing); past this, a query waits its turn within its time
        self._slots = asyncio.Semaphore(QUERY_SLOTS)

    # ---------------------------------------------------------------- steps

    async def attempt(
        self,
        payload: Mapping[str, Any],
        *,
        timeout_s: float,
        on_log: Callable[[str, str], None] | None,
        on_committed_while_cancelled: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """One ``run_step`` request and its result; on timeout SIGKILL the worker, on cancel interrupt then kill.

        A cancel that reaches the worker after the step began to commit cannot undo it: the step's result is
        then handed to ``on_committed_while_cancelled`` before the cancel propagates, so the caller records
        what the warehouse holds. Raises StepTimeoutError, StepAttemptError (the worker reported a failure,
        rolled back), WorkerCrashedError (the worker died under the request), CancelledError.
        """
        channel = await self._worker.ensure()
        rid, fut = channel.send("run_step", payload, on_log=on_log)
        try:
            done, _ = await asyncio.wait({fut}, timeout=timeout_s)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(channel, rid, fut))
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                reply = fut.result()
                if reply.get("ok") and on_committed_while_cancelled is not None:
                    on_committed_while_cancelled(reply["result"])
            raise
        if not done:
            await self._worker.kill(channel, "killed_timeout")
            with contextlib.suppress(BaseException):
                fut.exception()
            raise StepTimeoutError(f"step timed out after {timeout_s:g} s; worker {channel.pid} was killed")
        reply = fut.result()  # raises WorkerCrashedError if the worker died
        if reply.get("ok"):
            result: dict[str, Any] = reply["result"]
            return result
        err = reply.get("error") or {}
        raise StepAttemptError(str(err.get("kind", "step_error")), str(err.get("message", "step failed")))

    async def _cancel(self, channel: WorkerChannel, rid: int, fut: asyncio.Future[dict[str, Any]]) -> None:
        """Interrupt the step's statement; if it does not stop within the grace time, kill the worker."""
        with contextlib.suppress(Exception):
            channel.send("cancel", {"target": rid})
        done, _ = await asyncio.wait({fut}, timeout=self._cancel_grace_s)
        if not done:
            await self._worker.kill(channel, "killed_cancel")
        with contextlib.suppress(BaseException):
            fut.exception()

    # ---------------------------------------------------------------- queries and exports

    async def query(self, sql: str, *, max_rows: int = 1000, timeout_s: float = 10.0) -> QueryResult:
        """Run one read-only query in the worker; answered within ``timeout_s`` + the grace.

        Raises QueryRefusedError, QueryTimeoutError (interrupted, or the worker restarted), QueryMemoryError
        (past the worker's memory limit), QueryFailedError.
        """
        max_rows = max(1, min(int(max_rows), 100_000))
        timeout_s = max(0.05, min(float(timeout_s), 600.0))
        try:
            async with asyncio.timeout(timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise QueryTimeoutError(
                f"{QUERY_SLOTS} queries were running for all of {timeout_s:g} s; try again"
            ) from None
        try:
            return await self._query(sql, max_rows, timeout_s)
        finally:
            self._slots.release()

    async def _query(self, sql: str, max_rows: int, timeout_s: float) -> QueryResult:
        channel = await self._worker.ensure()
        request = {"sql": sql, "max_rows": max_rows, "timeout_s": timeout_s, "max_bytes": self._max_bytes}
        _, fut = channel.send("query", request)
        fut.add_done_callback(_consume)  # an answer (or death) after the caller gave up is not an error
        grace = self._worker.limits.query_grace_s
        try:
            # shielded: the request stays in flight (and the worker busy) until the worker answers or ends
            reply = await asyncio.wait_for(asyncio.shield(fut), timeout_s + grace)
        except TimeoutError:
            self._worker.note_limit("time", timeout_s=timeout_s, grace_s=grace, stopped=False)
            if await self._worker.recycle("query_timeout"):
                raise QueryTimeoutError(f"query exceeded its {timeout_s:g} s limit; the worker was restarted") from None
            raise QueryTimeoutError(
                f"query exceeded its {timeout_s:g} s limit; the worker will be restarted as soon as the pipeline "
                "step or export running in it ends"
            ) from None
        except WorkerCrashedError:
            raise QueryFailedError(
                f"the worker ended while the query ran ({channel.exit_reason}: see `status`); run it again"
            ) from None
        if reply.get("ok"):
            r = reply["result"]
            if r.get("truncated_reason"):
                self._worker.note_limit("result_size", rows=len(r["rows"]), reason=r["truncated_reason"])
            return QueryResult(
                columns=tuple(r["columns"]),
                types=tuple(r["types"]),
                rows=tuple(tuple(row) for row in r["rows"]),
                truncated=bool(r["truncated"]),
                elapsed_s=float(r["elapsed_s"]),
                truncated_reason=str(r.get("truncated_reason", "")),
            )
        raise self._error(reply, "query failed", timeout_s=timeout_s)

    async def export(self, table: str, fmt: str, *, sql: str = "", timeout_s: float = 3600.0) -> dict[str, Any]:
        """Write the whole of ``table`` (schema.table), or the whole result of the read-only query ``sql``
        (then ``table`` is ""), as csv, parquet or jsonl into the worker's export folder.

        Returns ``{"path", "rows", "bytes", "format"}``; the caller owns (and removes) the file. Raises
        QueryRefusedError (unknown table, a query that is not a read-only SELECT, another format),
        QueryTimeoutError, QueryFailedError.
        """
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", table or "result")[:100]
        name = f"{stem}-{secrets.token_hex(4)}.{re.sub(r'[^a-z]', '', fmt)}"
        request: dict[str, Any] = {"table": table, "format": fmt, "name": name} | ({"sql": sql} if sql else {})
        what = table or "the query's result"
        return await self._export(request, timeout_s, f"export of {what}")

    async def publish_run(
        self, pipeline: str, run_id: str, tables: list[dict[str, Any]], *, timeout_s: float = 3600.0
    ) -> list[dict[str, Any]]:
        """Write ``tables`` (``[{table, partition_by}]``) of ``pipeline`` as run ``run_id``'s partial publish
        folder, in one read-only transaction (worker/publish.py); returns the worker's description of each
        table (publish.commit_run takes it). Raises as :meth:`export`; a cancelled caller interrupts it."""
        request = {"publish_run": True, "pipeline": pipeline, "run_id": run_id, "tables": tables}
        return list((await self._export(request, timeout_s, f"publish of {pipeline}"))["tables"])

    async def task(self, request: dict[str, Any], *, timeout_s: float, what: str) -> dict[str, Any]:
        """A snapshot, restore or diff of run snapshots (``request["task"]``, worker.diff.snapshot_task), served
        and bounded like an export (cancelling the caller interrupts it). Raises as :meth:`export`."""
        return await self._export(request, timeout_s, what)

    async def _export(self, request: dict[str, Any], timeout_s: float, what: str) -> dict[str, Any]:
        """One ``export`` request (exports and publishes count as one kind for the worker's recycling): bounded
        by ``timeout_s``, interrupted in the worker when it times out or its caller is cancelled, which then
        waits (at most the cancel grace) for the worker to stop writing."""
        channel = await self._worker.ensure()
        rid, fut = channel.send("export", request)
        try:
            reply = await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(Exception):
                channel.send("cancel", {"target": rid})
            # bounded: until the worker stopped writing (its reply), so the caller may remove what it wrote
            await asyncio.wait({fut}, timeout=self._cancel_grace_s)
            fut.add_done_callback(_consume)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise QueryTimeoutError(f"{what} took longer than {timeout_s:g} s and was interrupted") from None
        if reply.get("ok"):
            return dict(reply["result"])
        raise self._error(
            reply, "export failed", export=str(request.get("table") or request.get("pipeline") or "query")
        )

    async def lineage(self, scripts: Mapping[str, str], *, timeout_s: float = 30.0) -> dict[str, Any]:
        """What each statement of each script reads and writes, read by the worker with the sandbox's reader
        (worker/lineage.py): ``{KEY: {"statements": [{"reads", "writes", "object"}, ...], "error": ""}}`` (read_sql)."""
        return dict((await self.read_sql("lineage", {"scripts": dict(scripts)}, timeout_s=timeout_s))["scripts"])

    async def read_sql(self, op: str, payload: Mapping[str, Any], *, timeout_s: float = 30.0) -> dict[str, Any]:
        """The worker's reply to ``op`` (``lineage``: worker/lineage.py), which reads the pipelines' SQL. Raises
        QueryTimeoutError past ``timeout_s``, QueryFailedError (the worker refuses, ends)."""
        channel = await self._worker.ensure()
        try:
            reply = await channel.request(op, payload, timeout_s)
        except TimeoutError:
            raise QueryTimeoutError(f"the worker did not read the pipelines' SQL within {timeout_s:g} s") from None
        except WorkerCrashedError:
            raise QueryFailedError(f"the worker ended while it read the SQL ({channel.exit_reason})") from None
        if reply.get("ok"):
            return dict(reply["result"])
        raise QueryFailedError(str((reply.get("error") or {}).get("message", f"{op} failed")))

    def _error(self, reply: dict[str, Any], default: str, **detail: Any) -> PipelineError:
        """The worker's error reply as the exception its kind names; a limit hit is counted and logged."""
        err = reply.get("error") or {}
        kind, message = err.get("kind"), str(err.get("message", default))
        if kind == "snapshot_refused":
            return SnapshotError(message)
        if kind == "query_refused":
            return QueryRefusedError(message)
        if kind == "query_timeout":
            self._worker.note_limit("time", stopped=True, **detail)
            return QueryTimeoutError(message)
        if kind == "memory_limit":
            self._worker.note_limit("memory", memory_limit_bytes=self._worker.limits.memory_limit, **detail)
            return QueryMemoryError(message)
        return QueryFailedError(message)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
