"""Read-only queries and exports through the worker: the data browser's, ``query``'s and ``export``'s client.

The runner owns the worker process; this only sends it requests (``query``, ``export``) over the same pipe
as the steps and waits, bounded, for the reply. Queries and exports run on the worker's thread pool, so
they see the last committed state while a step writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from foss_supervisor.pipeline.errors import QueryFailedError, QueryRefusedError, QueryTimeoutError
from foss_supervisor.pipeline.protocol import QUERY_THREADS
from foss_supervisor.pipeline.workerproc import WorkerProcess

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
    """Sends read requests to the worker that ``ensure_worker`` returns (starting it if needed)."""

    def __init__(self, ensure_worker: Callable[[], Awaitable[WorkerProcess]]) -> None:
        self._ensure_worker = ensure_worker
        # fewer than the worker's query threads: long queries can never take every thread (one is kept
        # for exports and the data browser's listing); past this, a query waits its turn within its time
        self._slots = asyncio.Semaphore(QUERY_SLOTS)

    async def query(self, sql: str, *, max_rows: int = 1000, timeout_s: float = 10.0) -> QueryResult:
        """Run one read-only query in the worker (raises QueryRefusedError/QueryTimeoutError/QueryFailedError)."""
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
        worker = await self._ensure_worker()
        _, fut = worker.send("query", {"sql": sql, "max_rows": max_rows, "timeout_s": timeout_s})
        try:
            # The worker interrupts the query itself; the extra margin only covers a worker that hangs.
            reply = await asyncio.wait_for(fut, timeout_s + 10.0)
        except TimeoutError:
            raise QueryTimeoutError(f"no answer from the worker within {timeout_s + 10.0:g} s") from None
        if reply.get("ok"):
            r = reply["result"]
            return QueryResult(
                columns=tuple(r["columns"]),
                types=tuple(r["types"]),
                rows=tuple(tuple(row) for row in r["rows"]),
                truncated=bool(r["truncated"]),
                elapsed_s=float(r["elapsed_s"]),
                truncated_reason=str(r.get("truncated_reason", "")),
            )
        raise _query_error(reply, "query failed")

    async def export(
        self, table: str, fmt: str, *, sql: str = "", timeout_s: float = 3600.0, publish_to: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Write the whole of ``table`` (schema.table), or the whole result of the read-only query ``sql``
        (then ``table`` is ""), as csv, parquet or jsonl into ``export_dir``.

        Returns ``{"path", "rows", "bytes", "format"}``; the caller owns (and removes) the file. Raises
        QueryRefusedError (unknown table, a query that is not a read-only SELECT, another format),
        QueryTimeoutError, QueryFailedError.
        """
        worker = await self._ensure_worker()
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
        raise _query_error(reply, "export failed")


def _query_error(reply: dict[str, Any], default: str) -> QueryRefusedError | QueryTimeoutError | QueryFailedError:
    """The worker's error reply to a query or an export as the exception its kind names."""
    err = reply.get("error") or {}
    kind, message = err.get("kind"), str(err.get("message", default))
    if kind == "query_refused":
        return QueryRefusedError(message)
    if kind == "query_timeout":
        return QueryTimeoutError(message)
    return QueryFailedError(message)
