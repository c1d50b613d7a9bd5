"""Read-only queries and exports through the worker: the data browser's, ``query``'s and ``export``'s client.

The runner owns the worker process; this only sends it requests (``query``, ``export``) over the same pipe
as the steps and waits, bounded, for the reply. Queries and exports run on the worker's thread pool, so
they see the last committed state while a step writes.

A query is answered by its time limit plus the grace of the worker's limits (2 s by default) whatever
happens in the worker: the worker interrupts it at the limit, and when the reply still has not come at
limit + grace (DuckDB could not interrupt it, or Python was still converting its values), the worker is
recycled (see workerhost.py) and the caller told "query exceeded its 10 s limit; the worker was restarted".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import secrets
from typing import Any

from foss_supervisor.pipeline.errors import (
    QueryError,
    QueryFailedError,
    QueryMemoryError,
    QueryRefusedError,
    QueryTimeoutError,
    WorkerCrashedError,
)
from foss_supervisor.pipeline.limits import MAX_RESULT_BYTES
from foss_supervisor.pipeline.protocol import QUERY_THREADS
from foss_supervisor.pipeline.workerhost import WorkerHost

__all__ = ["QUERY_SLOTS", "QueryResult", "WorkerClient"]

QUERY_SLOTS = QUERY_THREADS - 2  # queries running at once, all clients together


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


class WorkerClient:
    """Sends read requests to ``host``'s worker (starting it if needed); a reply is at most ``max_bytes``."""

    def __init__(self, host: WorkerHost, max_bytes: int = MAX_RESULT_BYTES) -> None:
        self._host = host
        self._max_bytes = max_bytes
        # fewer than the worker's query threads: long queries can never take every thread (one is kept
        # for exports and the data browser's listing); past this, a query waits its turn within its time
        self._slots = asyncio.Semaphore(QUERY_SLOTS)

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
        worker = await self._host.ensure()
        request = {"sql": sql, "max_rows": max_rows, "timeout_s": timeout_s, "max_bytes": self._max_bytes}
        _, fut = worker.send("query", request)
        fut.add_done_callback(_consume)  # an answer (or death) after the caller gave up is not an error
        grace = self._host.limits.query_grace_s
        try:
            # shielded: the request stays in flight (and the worker busy) until the worker answers or ends
            reply = await asyncio.wait_for(asyncio.shield(fut), timeout_s + grace)
        except TimeoutError:
            self._host.note_limit("time", timeout_s=timeout_s, grace_s=grace, stopped=False)
            if await self._host.recycle("query_timeout"):
                raise QueryTimeoutError(f"query exceeded its {timeout_s:g} s limit; the worker was restarted") from None
            raise QueryTimeoutError(
                f"query exceeded its {timeout_s:g} s limit; the worker will be restarted as soon as the pipeline "
                "step or export running in it ends"
            ) from None
        except WorkerCrashedError:
            raise QueryFailedError(
                f"the worker ended while the query ran ({worker.exit_reason}: see `status`); run it again"
            ) from None
        if reply.get("ok"):
            r = reply["result"]
            if r.get("truncated_reason"):
                self._host.note_limit("result_size", rows=len(r["rows"]), reason=r["truncated_reason"])
            return QueryResult(
                columns=tuple(r["columns"]),
                types=tuple(r["types"]),
                rows=tuple(tuple(row) for row in r["rows"]),
                truncated=bool(r["truncated"]),
                elapsed_s=float(r["elapsed_s"]),
                truncated_reason=str(r.get("truncated_reason", "")),
            )
        raise self._error(reply, "query failed", timeout_s=timeout_s)

    async def export(
        self,
        table: str,
        fmt: str,
        *,
        sql: str = "",
        timeout_s: float = 3600.0,
        publish_to: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Write the whole of ``table`` (schema.table), or the whole result of the read-only query ``sql``
        (then ``table`` is ""), as csv, parquet or jsonl into ``export_dir``.

        Returns ``{"path", "rows", "bytes", "format"}``; the caller owns (and removes) the file. Raises
        QueryRefusedError (unknown table, a query that is not a read-only SELECT, another format),
        QueryTimeoutError, QueryFailedError.
        """
        worker = await self._host.ensure()
        if name is None:
            stem = re.sub(r"[^A-Za-z0-9_.-]", "_", table or "result")[:100]
            name = f"{stem}-{secrets.token_hex(4)}.{re.sub(r'[^a-z]', '', fmt)}"
        request: dict[str, Any] = {"table": table, "format": fmt, "name": name} | ({"sql": sql} if sql else {})
        if publish_to is not None:
            request |= {"publish": True, "subdir": publish_to}
        rid, fut = worker.send("export", request)
        try:
            reply = await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            with contextlib.suppress(Exception):
                worker.send("cancel", {"target": rid})
            what = table or "the query's result"
            raise QueryTimeoutError(f"export of {what} took longer than {timeout_s:g} s and was interrupted") from None
        if reply.get("ok"):
            return dict(reply["result"])
        raise self._error(reply, "export failed", export=table or "query")

    def _error(self, reply: dict[str, Any], default: str, **detail: Any) -> QueryError:
        """The worker's error reply to a query or an export as the exception its kind names; a limit hit
        is counted and logged."""
        err = reply.get("error") or {}
        kind, message = err.get("kind"), str(err.get("message", default))
        if kind == "query_refused":
            return QueryRefusedError(message)
        if kind == "query_timeout":
            self._host.note_limit("time", stopped=True, **detail)
            return QueryTimeoutError(message)
        if kind == "memory_limit":
            self._host.note_limit("memory", memory_limit_bytes=self._host.limits.memory_limit, **detail)
            return QueryMemoryError(message)
        return QueryFailedError(message)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
