"""The DuckDB worker: one child process that owns the warehouse file and serves steps and queries.

Why one long-lived worker: DuckDB allows a single read-write process per file (no other process can
open it, not even read-only), and importing DuckDB plus opening a database costs ~0.2 s and ~70 MB, which
nine fresh processes per run would pay nine times and which would sit inside the daemon otherwise. The
daemon stays DuckDB-free; the worker is supervised (killed on step timeout, restarted on demand).

Inside, every request gets its own cursor of one connection: a step runs on a dedicated thread in ONE
transaction (BEGIN ... COMMIT; any error, a timeout kill or a SIGKILL leaves every table as it was), while
read-only queries run on a small thread pool and see the last committed state. Protocol: see protocol.py.

Run: ``python -m foss_supervisor.pipeline.worker --db PATH [--allow-dir DIR ...]``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

_T0 = time.perf_counter()

import duckdb  # noqa: E402  (timed on purpose: the import is most of the startup cost)

from foss_supervisor.pipeline.context import StepContext  # noqa: E402
from foss_supervisor.pipeline.errors import QueryError, QueryRefusedError, QueryTimeoutError  # noqa: E402
from foss_supervisor.pipeline.ledger import ledger_ddl  # noqa: E402
from foss_supervisor.pipeline.protocol import QUERY_THREADS, decode, encode, to_jsonable  # noqa: E402
from foss_supervisor.pipeline.query import check_query, run_query  # noqa: E402
from foss_supervisor.pipeline.sandbox import Access, AccessDenied, GuardedCursor  # noqa: E402
from foss_supervisor.pipeline.spec import Folders, evaluate_check, parse_check  # noqa: E402

__all__ = ["StepFailure", "Worker", "main", "open_database"]

_IMPORT_S = time.perf_counter() - _T0
_NO_FILES = "No files found that match the pattern"
#: COPY options of each export format (JSON is one object per line)
_EXPORT_FORMATS = {"csv": "FORMAT csv, HEADER", "parquet": "FORMAT parquet, COMPRESSION zstd", "jsonl": "FORMAT json"}
_TRANSIENT = (duckdb.TransactionException, duckdb.IOException, duckdb.OutOfMemoryException)


class StepFailure(Exception):
    """A step attempt failed; ``kind`` is one of protocol.ERROR_KINDS."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _access(message: Mapping[str, Any]) -> Access:
    raw: Mapping[str, Any] = message.get("access") or {}
    return Access(
        pipeline=str(message["pipeline"]),
        owned=frozenset(raw.get("owned") or ()),
        inputs=frozenset(raw.get("inputs") or ()),
    )


def open_database(
    db_path: Path, *, allow_dirs: list[Path], memory_limit: str | None = None, threads: int | None = None
) -> Any:
    """Open the warehouse and lock it down: UTC, no file access outside ``allow_dirs``, config frozen."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        str(db_path), config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    if memory_limit:
        con.execute("SET GLOBAL memory_limit = ?", [memory_limit])
    if threads:
        con.execute(f"SET GLOBAL threads = {int(threads)}")
    dirs = [str(d.resolve()).rstrip("/") + "/" for d in allow_dirs]
    if dirs:
        con.execute("SET GLOBAL allowed_directories = ?", [dirs])
    con.execute("SET GLOBAL enable_external_access = false")
    con.execute("SET GLOBAL lock_configuration = true")
    return con


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
    ) -> None:
        self.con = con
        self.database = database
        self.export_dir = export_dir
        self.publish_dir = publish_dir
        self._out = out
        self._out_lock = threading.Lock()
        self._cursors: dict[Any, Any] = {}
        self._cursors_lock = threading.Lock()
        self._step_thread: threading.Thread | None = None
        self._step_busy = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=query_threads, thread_name_prefix="query")

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
                self._step_thread = threading.Thread(
                    target=self._run_step_thread, args=(rid, message), name="step", daemon=True
                )
                self._step_thread.start()
        elif op == "query":
            self._pool.submit(self._run_query, rid, message)
        elif op == "export":
            self._pool.submit(self._run_export, rid, message)
        elif op == "cancel":
            with self._cursors_lock:
                target = self._cursors.get(message.get("target"))
            if target is not None:
                target.interrupt()
            self._reply_ok(rid, {"interrupted": target is not None})
        elif op == "shutdown":
            self._reply_ok(rid, {})
            return False
        else:
            self._reply_err(rid, "bad_request", f"unknown op {op!r}")
        return True

    def close(self, grace_s: float = 5.0) -> None:
        """Stop running work, then close the connection (which checkpoints the WAL)."""
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
            result = run_query(
                cursor,
                str(message.get("sql", "")),
                database=self.database,
                max_rows=int(message.get("max_rows", 1000)),
                timeout_s=float(message.get("timeout_s", 10.0)),
            )
            self._reply_ok(rid, result)
        except QueryRefusedError as exc:
            self._reply_err(rid, "query_refused", str(exc))
        except QueryTimeoutError as exc:
            self._reply_err(rid, "query_timeout", str(exc))
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
        self._register(rid, cursor)
        try:
            self._reply_ok(rid, self.export(cursor, message))
        except QueryError as exc:
            self._reply_err(rid, "query_refused" if isinstance(exc, QueryRefusedError) else "query_failed", str(exc))
        except duckdb.InterruptException:
            self._reply_err(rid, "query_timeout", "export interrupted")
        except (duckdb.Error, OSError) as exc:
            self._reply_err(rid, "query_failed", f"{type(exc).__name__}: {exc}")
        finally:
            self._unregister(rid)
            cursor.close()

    def export(self, cursor: Any, message: Mapping[str, Any]) -> dict[str, Any]:
        """COPY one table or view (``table``), or a read-only query's result (``sql``, checked as the query
        engine checks it), whole, into the export folder (or, with ``publish``, the publish folder's
        ``subdir``), streamed by DuckDB with no row cap, written to a hidden temporary name and renamed when
        complete, so a reader elsewhere sees the old file or the new one. Returns path, rows and bytes."""
        schema, _, table = str(message.get("table", "")).lower().partition(".")
        sql = str(message.get("sql", ""))
        fmt = str(message.get("format", ""))
        name = str(message.get("name", ""))
        folder = self.publish_dir if message.get("publish") else self.export_dir
        if folder is None:
            raise QueryRefusedError("this worker has no export folder")
        subdir = str(message.get("subdir", ""))
        if subdir:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", subdir):
                raise QueryRefusedError(f"bad export folder name {subdir!r}")
            folder = folder / subdir
            folder.mkdir(parents=True, exist_ok=True)
        if fmt not in _EXPORT_FORMATS:
            raise QueryRefusedError(f"format must be one of {', '.join(sorted(_EXPORT_FORMATS))}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", name) or name.startswith("."):
            raise QueryRefusedError(f"bad export file name {name!r}")
        if sql:  # one SELECT that reads warehouse tables only; a trailing comment ends at the line break
            checked = check_query(cursor, sql, database=self.database).strip().rstrip(";").rstrip()
            source = f"({checked}\n)"
        else:
            found = cursor.execute(
                "SELECT count(*) FROM (SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary"
                " UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary)"
                " WHERE schema_name = ? AND table_name = ?",
                [schema, table],
            ).fetchone()[0]
            if not found:
                raise QueryRefusedError(f"no table or view {message.get('table')!r} (give it as schema.table)")
            quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))
            source = f"(SELECT * FROM {quoted})"  # noqa: S608 (checked above)
        final = folder / name
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        cursor.execute("BEGIN TRANSACTION READ ONLY")
        try:
            rows = cursor.execute(f"COPY {source} TO '{tmp}' ({_EXPORT_FORMATS[fmt]})").fetchone()[0]
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        finally:
            with contextlib.suppress(duckdb.Error):
                cursor.execute("ROLLBACK")
        os.replace(tmp, final)
        return {"path": str(final), "rows": int(rows), "bytes": final.stat().st_size, "format": fmt}

    # ------------------------------------------------------------------ steps
    def _run_step_thread(self, rid: Any, message: dict[str, Any]) -> None:
        started = time.perf_counter()
        reply: dict[str, Any]
        try:
            result = self.run_step(rid, message)
        except StepFailure as exc:
            reply = {"id": rid, "ok": False, "error": {"kind": exc.kind, "message": str(exc)}}
        except Exception as exc:
            reply = {"id": rid, "ok": False, "error": {"kind": "step_error", "message": f"{type(exc).__name__}: {exc}"}}
        else:
            result["duration_s"] = round(time.perf_counter() - started, 6)
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
        access = _access(message)
        ledger = str((message.get("access") or {}).get("ledger") or "meta")
        cursor = self.con.cursor()
        self._register(rid, cursor)
        warnings: list[str] = []
        try:
            for name, value in variables.items():
                cursor.execute(f"SET VARIABLE {name} = ?", [value])
            cursor.execute("BEGIN TRANSACTION")
            try:
                if message.get("create_ledger"):
                    cursor.execute(ledger_ddl(ledger))
                if step["kind"] == "sql":
                    metrics = self._run_sql(
                        cursor, str(step.get("sql") or ""), bool(message.get("require_metrics", True)), access
                    )
                    warnings.extend(str(w) for w in metrics.pop("warnings", None) or [])
                else:
                    ctx = StepContext(
                        cursor=GuardedCursor(cursor, access),
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
                    )
                    metrics = dict(_import_callable(str(step["callable"]))(ctx))
                    warnings.extend(ctx.warnings)
                metrics = {k: to_jsonable(v) for k, v in metrics.items()}
                if message.get("require_metrics", True):
                    for required in ("rows_in", "rows_out"):
                        if not isinstance(metrics.get(required), int | float):
                            raise StepFailure("step_error", f"step reported no numeric {required!r} metric")
                self._check(message, str(step["name"]), metrics)
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
            if _no_landing_files(exc, folders):
                raise StepFailure("no_input", str(exc).split("\n", 1)[0]) from None
            if isinstance(exc, _TRANSIENT) and _NO_FILES not in str(exc):  # a missing file stays missing
                raise StepFailure("transient", f"{type(exc).__name__}: {exc}") from None
            raise StepFailure("sql_error", f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            tb = traceback.format_exception(exc)[-3:]
            raise StepFailure("step_error", f"{type(exc).__name__}: {exc}\n{''.join(tb)}") from None
        finally:
            self._unregister(rid)
            cursor.close()
        return {"metrics": metrics, "warnings": warnings}

    @staticmethod
    def _run_sql(cursor: Any, sql: str, require_metrics: bool, access: Access) -> dict[str, Any]:
        statements = duckdb.extract_statements(sql) if sql.strip() else []
        if not statements:
            if not require_metrics:
                return {}  # a pipeline without setup SQL: only the ledger was created
            raise StepFailure("step_error", "SQL file holds no statement")
        for stmt in statements:
            access.check(stmt.query)
            cursor.execute(stmt.query)
        if not require_metrics:
            return {}
        description = cursor.description
        rows = cursor.fetchall() if description else []
        if len(rows) != 1:
            raise StepFailure(
                "step_error", "the last statement of a SQL step must be a SELECT returning one row of metrics"
            )
        return {d[0]: v for d, v in zip(description, rows[0], strict=True)}

    @staticmethod
    def _check(message: Mapping[str, Any], step_name: str, metrics: dict[str, Any]) -> None:
        """Evaluate every row-accounting check that reads this step, before COMMIT."""
        known: dict[str, Mapping[str, Any]] = dict(message.get("prior_metrics") or {})
        known[step_name] = metrics
        for text in message.get("checks") or []:
            check = parse_check(str(text))
            if step_name not in check.steps:
                continue
            try:
                passed, detail = evaluate_check(check, known)
            except KeyError as exc:
                raise StepFailure("check_failed", str(exc.args[0])) from None
            if passed is False:
                raise StepFailure("check_failed", f"row accounting check failed: {check.text} ({detail})")


def _no_landing_files(exc: Exception, folders: Folders) -> bool:
    """True when DuckDB failed only because a file pattern inside the landing folder matched nothing."""
    if not isinstance(exc, duckdb.IOException):
        return False
    m = re.search(_NO_FILES + r' "([^"]*)"', str(exc))
    return m is not None and Path(m[1]).parent.resolve() == folders.landing.resolve()


def _import_callable(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    """Entry point: open the database, announce readiness, then serve until EOF or shutdown."""
    parser = argparse.ArgumentParser(prog="python -m foss_supervisor.pipeline.worker")
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--allow-dir", action="append", default=[], type=Path)
    parser.add_argument("--memory-limit")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--export-dir", type=Path, help="where exports are written (also an allowed directory)")
    parser.add_argument("--publish-dir", type=Path, help="where published tables are written (also allowed)")
    args = parser.parse_args(argv)

    # Keep the protocol channel private: anything else printing to fd 1 lands on stderr instead.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    t_open = time.perf_counter()
    allow = list(args.allow_dir)
    if args.export_dir is not None:
        args.export_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        allow.append(args.export_dir)
    if args.publish_dir is not None:
        args.publish_dir.mkdir(parents=True, exist_ok=True)
        allow.append(args.publish_dir)
    con = open_database(args.db, allow_dirs=allow, memory_limit=args.memory_limit, threads=args.threads)
    database = con.execute("SELECT current_database()").fetchone()[0]
    worker = Worker(
        con, out, database=database,
        export_dir=args.export_dir.resolve() if args.export_dir else None,
        publish_dir=args.publish_dir.resolve() if args.publish_dir else None,
    )  # fmt: skip
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
