"""The DuckDB worker: one child process that owns the warehouse file and serves steps and queries.

Why one long-lived worker: DuckDB allows a single read-write process per file (no other process can
open it, not even read-only), and importing DuckDB plus opening a database costs ~0.2 s and ~70 MB, which
nine fresh processes per run would pay nine times and which would sit inside the daemon otherwise. The
daemon stays DuckDB-free; the worker is supervised (killed on step timeout, restarted on demand).

Inside, every request gets its own cursor of one connection: a step runs on a dedicated thread in ONE
transaction (BEGIN ... COMMIT; any error, a timeout kill or a SIGKILL leaves every table as it was), while
read-only queries run on a small thread pool and see the last committed state. Protocol: see protocol.py.
Bounds (engine/limits.py): DuckDB's memory_limit with spilling to ``--temp-dir``, and an RLIMIT_DATA the worker
sets on itself before it opens the database; a query's reply is bounded before Python sees a value.

Run: ``python -m foss_supervisor.pipeline.worker.server --db PATH [--allow-dir DIR ...]``
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

_T0 = time.perf_counter()

import duckdb  # noqa: E402  (timed on purpose: the import is most of the startup cost)

from foss_supervisor.base.filemodes import make_private  # noqa: E402
from foss_supervisor.base.jsonable import jsonable  # noqa: E402
from foss_supervisor.base.usagespan import UsageSpan  # noqa: E402
from foss_supervisor.pipeline.engine.limits import MAX_RESULT_BYTES, apply_os_memory_limit, memory_limit_message  # noqa: E402
from foss_supervisor.pipeline.engine.partition import PartitionSpec  # noqa: E402
from foss_supervisor.pipeline.engine.spec import Folders  # noqa: E402
from foss_supervisor.pipeline.engine.workerargs import worker_arguments, worker_folders  # noqa: E402
from foss_supervisor.pipeline.errors import (  # noqa: E402
    QueryError,
    QueryMemoryError,
    QueryRefusedError,
    QueryTimeoutError,
    SnapshotError,
)
from foss_supervisor.pipeline.protocol import QUERY_THREADS, decode, encode  # noqa: E402
from foss_supervisor.pipeline.worker.callables import load_callable  # noqa: E402
from foss_supervisor.pipeline.worker.context import StepContext  # noqa: E402
from foss_supervisor.pipeline.worker.delta import DELTA_TASKS, StopFlag, delta_task  # noqa: E402
from foss_supervisor.pipeline.worker.diff import snapshot_task  # noqa: E402
from foss_supervisor.pipeline.worker.export import export_to_file  # noqa: E402
from foss_supervisor.pipeline.worker.ledger import ledger_ddl, record_commit  # noqa: E402
from foss_supervisor.pipeline.worker.lineage import scan_scripts  # noqa: E402
from foss_supervisor.pipeline.worker.publish import publish_tables  # noqa: E402
from foss_supervisor.pipeline.worker.query import run_query  # noqa: E402
from foss_supervisor.pipeline.worker.sandbox import Access, AccessDenied, GuardedCursor  # noqa: E402
from foss_supervisor.pipeline.worker.steps import (  # noqa: E402
    CommitGate,
    StepFailure,
    check_metrics,
    check_thresholds,
    failure_of,
    missing_metric,
    run_sql,
)
from foss_supervisor.pipeline.worker.supervision import SupervisionTables, open_supervision  # noqa: E402
from foss_supervisor.pipeline.worker.warehouse import open_database  # noqa: E402

__all__ = ["StepFailure", "Worker", "main"]

_IMPORT_S = time.perf_counter() - _T0


def _access(message: Mapping[str, Any]) -> Access:
    raw: Mapping[str, Any] = message.get("access") or {}
    return Access(
        pipeline=str(message["pipeline"]),
        owned=frozenset(raw.get("owned") or ()),
        inputs=frozenset(raw.get("inputs") or ()),
    )


class Worker:
    """Dispatches protocol requests onto cursors of one connection."""

    def __init__(
        self,
        con: Any,
        out: BinaryIO,
        *,
        database: str,
        query_threads: int = QUERY_THREADS,
        export_dir: Path | None = None,
        publish_dir: Path | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.con = con
        self.database = database
        self.memory_limit = memory_limit
        self.export_dir = export_dir
        self.publish_dir = publish_dir
        self._out = out
        self._out_lock = threading.Lock()
        self._cursors: dict[Any, Any] = {}
        self._cursors_lock = threading.Lock()
        self._step_thread: threading.Thread | None = None
        self._step_busy = threading.Event()
        self._step_gate: tuple[Any, CommitGate] | None = None  # (request id, gate) of the running step
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=query_threads, thread_name_prefix="query")
        self.supervision: SupervisionTables | None = None  # the daemon's journal as tables (supervision.py)

    # ------------------------------------------------------------------ plumbing
    def send(self, message: dict[str, Any]) -> None:
        """Write one protocol line; a lock keeps lines from different threads whole."""
        data = encode(message)
        with self._out_lock:
            self._out.write(data)
            self._out.flush()

    def _reply_ok(self, rid: Any, result: dict[str, Any]) -> None:
        self.send({"id": rid, "ok": True, "result": result})

    def _reply_err(self, rid: Any, kind: str, message: str) -> None:
        self.send({"id": rid, "ok": False, "error": {"kind": kind, "message": message}})

    def _register(self, rid: Any, cursor: Any) -> None:
        with self._cursors_lock:
            self._cursors[rid] = cursor

    def _unregister(self, rid: Any) -> None:
        with self._cursors_lock:
            self._cursors.pop(rid, None)

    def interrupt_all(self) -> None:
        """Interrupt every running statement (used at shutdown)."""
        with self._cursors_lock:
            cursors = list(self._cursors.values())
        for c in cursors:
            c.interrupt()

    # ------------------------------------------------------------------ dispatch
    def handle(self, message: dict[str, Any]) -> bool:
        """Handle one request; returns False when the worker should exit."""
        rid = message.get("id")
        op = message.get("op")
        if op == "ping":
            self._reply_ok(rid, {"pid": os.getpid()})
        elif op == "run_step":
            if self._step_busy.is_set():
                self._reply_err(rid, "busy", "a step is already running in this worker")
            else:
                self._step_busy.set()
                # the gate exists before the thread starts: a cancel read next (a busy machine may run this
                # loop before the thread's first line) finds the step and is kept, never lost
                self._step_gate = (rid, CommitGate())
                self._step_thread = threading.Thread(
                    target=self._run_step_thread, args=(rid, message), name="step", daemon=True
                )
                self._step_thread.start()
        elif op == "query":
            self._pool.submit(self._run_query, rid, message)
        elif op == "export":
            self._pool.submit(self._run_export, rid, message)
        elif op == "lineage":  # what the SQL reads and writes (lineage.py)
            self._pool.submit(self._run_read, rid, message)
        elif op == "cancel":
            self._reply_ok(rid, {"interrupted": self._cancel(message.get("target"))})
        elif op == "shutdown":
            self._reply_ok(rid, {})
            return False
        else:
            self._reply_err(rid, "bad_request", f"unknown op {op!r}")
        return True

    def _cancel(self, target: Any) -> bool:
        """Cancel request ``target``: a step is marked cancelled first (so it can no longer commit), then its
        statement is interrupted. False when there is nothing to stop (unknown, or the step is committing)."""
        gate = self._step_gate
        if gate is not None and gate[0] == target and not gate[1].cancel():
            return False
        with self._cursors_lock:
            cursor = self._cursors.get(target)
        if cursor is not None:
            cursor.interrupt()
        return cursor is not None

    def close(self, grace_s: float = 5.0) -> None:
        """Stop running work (a step rolls back), then close the connection (which checkpoints the WAL)."""
        gate = self._step_gate
        if gate is not None:
            gate[1].cancel()
        self.interrupt_all()
        if self._step_thread is not None:
            self._step_thread.join(grace_s)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.con.close()

    # ------------------------------------------------------------------ queries
    def _run_query(self, rid: Any, message: dict[str, Any]) -> None:
        cursor = self.con.cursor()
        self._register(rid, cursor)
        try:
            if self.supervision is not None and "supervision" in str(message.get("sql", "")).lower():
                self.supervision.refresh()  # the journal's new lines first (at most once a second)
            result = run_query(
                cursor,
                str(message.get("sql", "")),
                database=self.database,
                max_rows=int(message.get("max_rows", 1000)),
                timeout_s=float(message.get("timeout_s", 10.0)),
                max_bytes=max(1024, min(int(message.get("max_bytes", MAX_RESULT_BYTES)), 2**30)),
                memory_limit=self.memory_limit,
            )
            self._reply_ok(rid, result)
        except QueryRefusedError as exc:
            self._reply_err(rid, "query_refused", str(exc))
        except QueryTimeoutError as exc:
            self._reply_err(rid, "query_timeout", str(exc))
        except QueryMemoryError as exc:
            self._reply_err(rid, "memory_limit", str(exc))
        except QueryError as exc:
            self._reply_err(rid, "query_failed", str(exc))
        except duckdb.Error as exc:
            self._reply_err(rid, "query_failed", str(exc))
        except Exception as exc:  # a bug must still answer the request
            self._reply_err(rid, "query_failed", f"{type(exc).__name__}: {exc}")
        finally:
            self._unregister(rid)
            cursor.close()

    def _run_export(self, rid: Any, message: dict[str, Any]) -> None:
        cursor = self.con.cursor()
        stop = StopFlag(cursor)  # a cancel between two statements is remembered, not lost
        self._register(rid, stop)
        try:
            if message.get("task") in DELTA_TASKS:  # a Delta Lake publish, vacuum or restore (delta.py)
                result = delta_task(cursor, message, publish_dir=self.publish_dir, stopped=stop.is_set)
            elif message.get("task"):  # a run snapshot written, restored or diffed (diff.py)
                result = snapshot_task(cursor, message, publish_dir=self.publish_dir, max_bytes=MAX_RESULT_BYTES)
            elif message.get("publish_run"):  # every table of a run, one snapshot (publish.py)
                result = publish_tables(cursor, message, publish_dir=self.publish_dir)
            else:
                result = export_to_file(cursor, message, database=self.database, export_dir=self.export_dir)
            self._reply_ok(rid, result)
        except SnapshotError as exc:  # a snapshot's files are not what its manifest recorded (snapshotfiles.py)
            self._reply_err(rid, "snapshot_refused", str(exc))
        except QueryError as exc:
            self._reply_err(rid, "query_refused" if isinstance(exc, QueryRefusedError) else "query_failed", str(exc))
        except duckdb.InterruptException:
            self._reply_err(rid, "query_timeout", "export interrupted")
        except (duckdb.OutOfMemoryException, MemoryError):
            self._reply_err(rid, "memory_limit", memory_limit_message(self.memory_limit or 0, "export"))
        except (duckdb.Error, OSError) as exc:
            self._reply_err(rid, "query_failed", f"{type(exc).__name__}: {exc}")
        finally:
            self._unregister(rid)
            cursor.close()

    def _run_read(self, rid: Any, message: dict[str, Any]) -> None:
        try:
            read = scan_scripts(message.get("scripts"), self.con)
            self._reply_ok(rid, read)  # the worker's connection to DESCRIBE the types
        except Exception as exc:  # a bad request (or a bug) must still answer it
            self._reply_err(rid, "bad_request", f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ steps
    def _run_step_thread(self, rid: Any, message: dict[str, Any]) -> None:
        started = time.perf_counter()
        used = UsageSpan()  # the worker's peak RSS, CPU and I/O during the step (queries served meanwhile count too)
        used.start()
        reply: dict[str, Any]
        try:
            result = self.run_step(rid, message)
        except StepFailure as exc:
            reply = {"id": rid, "ok": False, "error": {"kind": exc.kind, "message": str(exc)}}
        except Exception as exc:
            reply = {"id": rid, "ok": False, "error": {"kind": "step_error", "message": f"{type(exc).__name__}: {exc}"}}
        else:
            result["duration_s"] = round(time.perf_counter() - started, 6)
            result.update(used.figures())
            reply = {"id": rid, "ok": True, "result": result}
        # Free the slot before replying, so the runner's next step is never refused as busy.
        self._step_busy.clear()
        self.send(reply)

    def run_step(self, rid: Any, message: dict[str, Any]) -> dict[str, Any]:
        """Run one step attempt in one transaction; commit only when it and its checks succeed."""
        step: Mapping[str, Any] = message["step"]
        folders_raw: Mapping[str, str] = message["folders"]
        folders = Folders(**{k: Path(v) for k, v in folders_raw.items()})
        variables = {
            "run_id": str(message["run_id"]),
            "pipeline": str(message["pipeline"]),
            "mode": str(message.get("mode", "run")),
            "step": str(step["name"]),
            "landing_dir": str(folders.landing),
            "reference_dir": str(folders.reference),
        }
        partition = message.get("partition")
        partition = str(partition) if partition is not None else None
        access = _access(message)
        ledger = str((message.get("access") or {}).get("ledger") or "meta")
        cursor = self.con.cursor()
        known = self._step_gate
        gate = known[1] if known is not None and known[0] == rid else CommitGate()  # handle() made it
        self._step_gate = (rid, gate)
        gate.checkpoint()  # cancelled before it began
        self._register(rid, cursor)
        warnings: list[str] = []
        try:
            for name, value in {**variables, "partition": partition}.items():  # partition: NULL for a whole run
                cursor.execute(f"SET VARIABLE {name} = ?", [value])
            cursor.execute("BEGIN TRANSACTION")
            try:
                if message.get("create_ledger"):
                    cursor.execute(ledger_ddl(ledger))
                if step["kind"] == "sql":
                    metrics = run_sql(
                        cursor,
                        step,
                        bool(message.get("require_metrics", True)),
                        access,
                        gate.checkpoint,
                        folders,
                    )
                    warnings.extend(str(w) for w in metrics.pop("warnings", None) or [])
                else:
                    ctx = StepContext(
                        cursor=GuardedCursor(cursor, access, gate.checkpoint),
                        run_id=variables["run_id"],
                        pipeline=variables["pipeline"],
                        step=variables["step"],
                        mode=variables["mode"],
                        folders=folders,
                        params=step.get("params") or {},
                        run=message.get("run") or {},
                        emit_log=lambda level, text: self.send(
                            {"event": "log", "id": rid, "level": level, "message": text}
                        ),
                        ledger=ledger,
                        patterns=tuple((message.get("access") or {}).get("patterns") or ()),
                        schemas=tuple(sorted(access.owned)),
                        partition=partition,
                        partition_key=PartitionSpec.of_access(message.get("access")),
                    )
                    metrics = dict(load_callable(str(step["callable"]))(ctx))
                    warnings.extend(ctx.warnings)
                metrics = {k: jsonable(v) for k, v in metrics.items()}
                if message.get("require_metrics", True):
                    for required in ("rows_in", "rows_out"):
                        if not isinstance(metrics.get(required), int | float):
                            raise missing_metric(step, required)
                check_metrics(message, str(step["name"]), metrics)
                warnings.extend(check_thresholds(message, metrics))
                record_commit(cursor, message, {"metrics": metrics, "warnings": warnings})
                gate.begin_commit()  # a cancel from here on is refused: the step commits
                cursor.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    cursor.execute("ROLLBACK")
                raise
        except StepFailure:
            raise
        except AccessDenied as exc:
            raise StepFailure("access_denied", str(exc)) from None
        except duckdb.InterruptException:
            raise StepFailure("cancelled", "step interrupted") from None
        except duckdb.Error as exc:
            raise failure_of(exc, folders) from None
        except Exception as exc:
            tb = traceback.format_exception(exc)[-3:]
            raise StepFailure("step_error", f"{type(exc).__name__}: {exc}\n{''.join(tb)}") from None
        finally:
            self._step_gate = None
            self._unregister(rid)
            cursor.close()
        return {"metrics": metrics, "warnings": warnings}


def main(argv: list[str] | None = None) -> int:
    """Entry point: open the database, announce readiness, then serve until EOF or shutdown."""
    args = worker_arguments(argv)
    make_private()  # the warehouse, exports and spill files: 0600, directories 0700
    if args.os_memory_limit:  # before the database is opened: everything the worker maps counts
        apply_os_memory_limit(args.os_memory_limit)

    # Keep the protocol channel private: anything else printing to fd 1 lands on stderr instead.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    t_open = time.perf_counter()
    allow, ingest_dir = worker_folders(args)
    con = open_database(
        args.db,
        allow_dirs=allow,
        memory_limit=args.memory_limit,
        threads=args.threads,
        temp_dir=args.temp_dir,
        max_temp_size=args.max_temp_size,
    )
    database = con.execute("SELECT current_database()").fetchone()[0]
    worker = Worker(
        con,
        out,
        database=database,
        export_dir=args.export_dir.resolve() if args.export_dir else None,
        publish_dir=args.publish_dir.resolve() if args.publish_dir else None,
        memory_limit=args.memory_limit,
    )
    worker.supervision = open_supervision(con, args.history_dir, ingest_dir, args.history_days)
    worker.send(
        {
            "event": "ready",
            "pid": os.getpid(),
            "import_s": round(_IMPORT_S, 6),
            "open_s": round(time.perf_counter() - t_open, 6),
            "duckdb": duckdb.__version__,
        }
    )
    try:
        for raw in sys.stdin.buffer:
            if not raw.strip():
                continue
            try:
                message = decode(raw)
            except ValueError as exc:
                worker.send({"id": None, "ok": False, "error": {"kind": "bad_request", "message": str(exc)}})
                continue
            if not worker.handle(message):
                break
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
