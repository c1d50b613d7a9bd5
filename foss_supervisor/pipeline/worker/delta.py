"""The worker's half of a Delta Lake publish (``publish_format: delta``; layout and the daemon's half in
engine/publishdelta.py): every table of one run committed with ``deltalake.write_deltalake`` from ONE read-only
DuckDB transaction, the vacuum that keeps the kept runs' files, and the restore of a rollback.

Data reaches deltalake as an Arrow stream of the DuckDB relation (the Arrow C stream interface, batch by
batch: memory stays bounded by a few batches, not the table). deltalake is imported here only, on the first
Delta request, so neither the daemon nor a worker that never publishes Delta loads it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from foss_supervisor.pipeline.engine.publish import stage_name
from foss_supervisor.pipeline.errors import QueryError, QueryRefusedError
from foss_supervisor.pipeline.worker.publish import TABLE_NAME, check_table, gated_select, pipeline_folder

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["DELTA_TASKS", "StopFlag", "delta_task"]

#: the ``task`` values of ``export`` requests served here
DELTA_TASKS = ("delta_publish", "delta_vacuum", "delta_restore")
#: the key of a commit's custom metadata that names the run whose data the version holds
RUN_KEY = "foss_supervisor.run_id"


class StopFlag:
    """A cursor's ``interrupt()`` that is also remembered: DuckDB drops an interrupt that comes between two
    statements, and a publish runs several (and deltalake calls) one after another."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self._event = threading.Event()

    def interrupt(self) -> None:
        self._event.set()
        self._cursor.interrupt()

    def is_set(self) -> bool:
        return self._event.is_set()


def delta_task(
    cursor: Any, message: Mapping[str, Any], *, publish_dir: Path | None, stopped: Callable[[], bool]
) -> dict[str, Any]:
    """Serve an ``export`` request whose ``task`` is one of :data:`DELTA_TASKS`:

    - ``delta_publish`` ``{pipeline, run_id, tables: [{table, partition_by}]}``: one commit per table;
      returns ``{"tables": [{table, version, rows, bytes, partition_by, schema: [{name, type}], files}]}``
      (files relative to the table folder). When a table fails, the tables this request committed are
      restored to their previous version (or removed when it created them) before it raises.
    - ``delta_vacuum`` ``{pipeline, keep_versions: {table: [version]}}``: returns ``{"removed": files}``.
    - ``delta_restore`` ``{pipeline, run_id, by, versions: {table: version}}``: returns ``{"tables"}`` as a
      publish does (``schema`` empty: the daemon's manifest has the run's), each table's new version holding
      ``versions[table]``'s files.

    ``stopped`` says whether the request was cancelled: a publish checks it before each table and after
    the last (then undoes its commits), as an interrupt that came between two statements is lost.
    Raises QueryRefusedError (bad names, no publish folder, a column type or value Delta cannot hold exactly:
    publishtypes.py, checked for every table before the first commit), QueryError (deltalake refused: an Arrow type
    Delta has no counterpart for, a corrupt log...; ``interrupted``), duckdb.Error, OSError.
    """
    folder = pipeline_folder(publish_dir, message)
    task = message.get("task")
    try:
        if task == "delta_publish":
            return _publish(cursor, folder, message, stopped)
        if task == "delta_vacuum":
            return _vacuum(folder, message)
        if task == "delta_restore":
            return _restore(folder, message)
    except (QueryError, duckdb.Error):
        raise
    except OSError as exc:  # ours as they are; deltalake's in its words, on one line, without colours
        if "\n" in str(exc) or "\x1b" in str(exc):
            raise OSError(_said(exc)) from None
        raise
    except Exception as exc:  # deltalake raises plain Exception (and DeltaError) with a Rust backtrace appended
        raise QueryError(_said(exc)) from None
    raise QueryRefusedError(f"unknown task {task!r}")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _said(exc: BaseException) -> str:
    """deltalake's message on one line: its lines (at most 3, colours and arrows removed) up to a backtrace,
    so ``Kernel error -> Generic LocalFileSystem error`` keeps the file and the reason that follow it."""
    lines: list[str] = []
    for raw in _ANSI.sub("", str(exc)).splitlines():
        line = raw.strip().lstrip("\u21b3").strip()
        if line.lower().startswith(("stack backtrace", "backtrace")) or re.match(r"\d+: ", line):
            break
        if line:
            lines.append(line)
        if len(lines) == 3:
            break
    return f"deltalake: {': '.join(lines) or type(exc).__name__}"


def _describe(table: DeltaTable, name: str, schema: list[dict[str, str]]) -> dict[str, Any]:
    """The worker's description of ``table``'s latest version (publishdelta._table_entry takes it)."""
    actions = table.get_add_actions(flatten=True)
    return {
        "table": name,
        "version": table.version(),
        "rows": sum(int(n or 0) for n in actions.column("num_records").to_pylist()),
        "bytes": sum(int(n) for n in actions.column("size_bytes").to_pylist()),
        "partition_by": list(table.metadata().partition_columns),
        "schema": schema,
        "files": sorted(os.path.relpath(p, table.table_uri.removeprefix("file://")) for p in _data_files(table)),
    }


def _commit_properties(run_id: str, **extra: str) -> Any:
    from deltalake import CommitProperties

    return CommitProperties(custom_metadata={RUN_KEY: run_id, **{f"foss_supervisor.{k}": v for k, v in extra.items()}})


def _publish(cursor: Any, folder: Path, message: Mapping[str, Any], stopped: Callable[[], bool]) -> dict[str, Any]:
    from deltalake import DeltaTable, WriterProperties, write_deltalake

    run_id = _run_id(message.get("run_id"))
    entries = [(str(e.get("table", "")), [str(c) for c in e.get("partition_by") or ()]) for e in message["tables"]]
    out: list[dict[str, Any]] = []
    committed: list[tuple[Path, int | None]] = []  # (table folder, its version before) of what this request wrote
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        checked = [(t, cols, check_table(cursor, t, cols)[0]) for t, cols in entries]  # every name before any write
        gated = [(t, cols, *gated_select(cursor, t, source, "delta")) for t, cols, source in checked]  # every type too
        for table, columns, select, schema in gated:
            _check_stopped(stopped)
            dest = folder / table
            before = DeltaTable(dest).version() if DeltaTable.is_deltatable(str(dest)) else None
            relation = cursor.sql(select)
            write_deltalake(
                dest,
                relation,
                mode="overwrite",
                schema_mode="overwrite",  # a run's table is what the run made: columns may come and go
                partition_by=columns,  # [] also when it had some: deltalake keeps them for None
                commit_properties=_commit_properties(run_id),
                writer_properties=WriterProperties(compression="ZSTD"),  # as the Parquet publish (half snappy's)
            )
            committed.append((dest, before))
            out.append(_describe(DeltaTable(dest), table, schema))
        _check_stopped(stopped)
    except BaseException:
        for dest, before in reversed(committed):
            _undo(dest, before, run_id)
        raise
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
    return {"tables": out}


def _check_stopped(stopped: Callable[[], bool]) -> None:
    if stopped():
        raise QueryError("publish interrupted")


def _undo(dest: Path, before: int | None, run_id: str) -> None:
    """Put a table this publish committed back where it was: its previous version restored, or removed."""
    from deltalake import DeltaTable

    with contextlib.suppress(Exception):  # best effort: the manifest still names the previous run
        if before is None:
            shutil.rmtree(dest)
        else:
            DeltaTable(dest).restore(before, commit_properties=_commit_properties(run_id, undo_of=run_id))


def _vacuum(folder: Path, message: Mapping[str, Any]) -> dict[str, Any]:
    """Remove each table's data files that neither its latest version nor a kept version reads.

    The rule of deltalake's ``vacuum(retention_hours=0, keep_versions=...)``, applied here because that
    call also commits twice (VACUUM START and END), which would break "version N is the N-th published
    run". A version whose log cannot be read raises, and then nothing of that table is removed."""
    from deltalake import DeltaTable

    removed = 0
    for table, versions in dict(message.get("keep_versions") or {}).items():
        dest = folder / _table_name(table)
        if not DeltaTable.is_deltatable(str(dest)):
            continue
        latest = DeltaTable(dest)
        read = set(_data_files(latest))
        for version in {int(v) for v in versions if int(v) < latest.version()}:
            read.update(_data_files(DeltaTable(dest, version=version)))
        for root, dirs, names in os.walk(dest):
            dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]  # _delta_log, hidden folders
            for name in names:
                path = os.path.normpath(os.path.join(root, name))
                if name.endswith(".parquet") and not name.startswith(("_", ".")) and path not in read:
                    os.unlink(path)
                    removed += 1
    return {"removed": removed}


def _data_files(table: DeltaTable) -> list[str]:
    """The absolute paths of the data files ``table``'s loaded version reads (as on disk, not URL-encoded)."""
    return [os.path.normpath(u.removeprefix("file://")) for u in table.file_uris()]


def _restore(folder: Path, message: Mapping[str, Any]) -> dict[str, Any]:
    from deltalake import DeltaTable

    run_id, by = _run_id(message.get("run_id")), _run_id(message.get("by"))
    out = []
    for table, version in dict(message.get("versions") or {}).items():
        dest = folder / _table_name(table)
        delta = DeltaTable(dest)
        delta.restore(int(version), commit_properties=_commit_properties(run_id, rollback_run=by))
        out.append(_describe(DeltaTable(dest), table, []))  # the daemon knows the run's schema
    return {"tables": out}


def _run_id(value: Any) -> str:
    try:
        stage_name(str(value))
    except ValueError as exc:
        raise QueryRefusedError(str(exc)) from None
    return str(value)


def _table_name(table: Any) -> str:
    if not TABLE_NAME.fullmatch(str(table)):
        raise QueryRefusedError(f"bad table name {table!r}")
    return str(table)
