"""A real DuckDB warehouse file with the worker's snapshot functions called as the worker calls them: snapshot
(worker.snapshots.snapshot_tables, then engine.snapshots.commit_snapshot), restore (worker.restore.restore_tables)
and diff (worker.diff.diff_tables), each from the manifest as the daemon reads it (engine.snapshots.load_snapshot)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import duckdb

from foss_supervisor.pipeline.engine.snapshots import commit_snapshot, load_snapshot
from foss_supervisor.pipeline.worker.diff import diff_tables
from foss_supervisor.pipeline.worker.restore import restore_tables
from foss_supervisor.pipeline.worker.snapshots import snapshot_tables

__all__ = ["Warehouse"]

_runs = itertools.count()


class Warehouse:
    """``folder/w.duckdb`` with schema ``s`` (pipeline ``p``'s one layer), its snapshots under
    ``folder/snapshots/p``; each snapshot links from the previous one, as a run's does. Close it."""

    def __init__(self, folder: Path, keys: dict[str, list[str]] | None = None) -> None:
        self.root = folder / "snapshots"
        self.con = duckdb.connect(str(folder / "w.duckdb"))
        self.con.execute("CREATE SCHEMA IF NOT EXISTS s")
        self.keys = keys or {}
        self.last: str | None = None

    def snapshot(self) -> str:
        """A whole snapshot of schema ``s`` now; returns its run id."""
        run_id = f"r{next(_runs):06d}"
        previous = self.manifest(self.last)["tables"] if self.last else {}
        message = {"pipeline": "p", "run_id": run_id, "schemas": ["s"], "keys": self.keys, "previous": previous}
        written = snapshot_tables(self.con.cursor(), message, snapshot_dir=self.root, publish_dir=None)
        commit_snapshot(self.root / "p", "p", run_id, written["tables"], keep=100)
        self.last = run_id
        return run_id

    def manifest(self, run_id: str) -> dict[str, Any]:
        return load_snapshot(self.root / "p", run_id)

    def restore(self, run_id: str) -> dict[str, Any]:
        message = {"schemas": ["s"], "tables": self.manifest(run_id)["tables"]}
        return restore_tables(self.con.cursor(), message, snapshot_dir=self.root)

    def diff(self, run_a: str, run_b: str) -> list[dict[str, Any]]:
        message = {"a": self.manifest(run_a), "b": self.manifest(run_b), "timeout_s": 30}
        return list(diff_tables(self.con.cursor(), message, snapshot_dir=self.root, max_bytes=1 << 20)["tables"])

    def state(self) -> dict[str, Any]:
        """Every table of ``s``: its CREATE TABLE text, and its rows (as text) in order."""
        tables = self.con.execute(
            "SELECT table_name, sql FROM duckdb_tables() WHERE schema_name = 's' ORDER BY 1"
        ).fetchall()
        return {
            name: (sql, self.con.execute(f'SELECT CAST(t AS VARCHAR) FROM s."{name}" t').fetchall())
            for name, sql in tables
        }

    def close(self) -> None:
        self.con.close()
