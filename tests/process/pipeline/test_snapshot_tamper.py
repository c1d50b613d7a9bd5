"""A snapshot whose files are not the files its manifest describes is refused by every reader, naming the run,
the table and the file, and changes nothing (issue 18, red-team: a file replaced, rewritten in place or
truncated, or an edited ``_stats``, was trusted by restore and diff). Hypothesis generates the tampering: a data
file replaced by another table's or another run's file, by a symlink, truncated, rewritten in place with rows
appended or with other values, deleted; a statistics file edited or deleted; in either of two snapshots, one of
which links the other's file. Real DuckDB warehouse files with the worker's functions (helpers.snapshots)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.snapshots import Warehouse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.errors import SnapshotError
from foss_supervisor.pipeline.worker.snapshotstats import stats_file

KINDS = [
    "other_table",
    "other_run",
    "symlink",
    "truncated",
    "rows_appended",
    "values_rewritten",
    "deleted",
    "stats_edited",
    "stats_deleted",
]


def _copy_sql(warehouse: Warehouse, query: str, dest: Path) -> bytes:
    """The bytes of a Parquet file of ``query``'s rows, written by DuckDB beside the snapshots."""
    scratch = dest.parent.parent / "scratch.parquet"
    warehouse.con.execute(f"COPY ({query}) TO '{scratch}' (FORMAT parquet)")
    data = scratch.read_bytes()
    scratch.unlink()
    return data


def tamper(warehouse: Warehouse, kind: str, path: Path, other: Path, cut: float) -> None:
    """Do ``kind`` to the snapshot file ``path``; ``other`` is another table's or run's file."""
    source = f"read_parquet('{path}')"
    if kind in ("other_table", "other_run"):
        path.unlink()  # a new file in its place: a snapshot that linked the old one keeps it
        shutil.copyfile(other, path)
    elif kind == "symlink":
        path.unlink()
        os.symlink(other, path)
    elif kind == "truncated":
        with path.open("r+b") as fh:
            fh.truncate(int(path.stat().st_size * cut))
    elif kind == "rows_appended":  # in place: every snapshot that links the file sees it
        path.write_bytes(_copy_sql(warehouse, f"SELECT * FROM {source} UNION ALL SELECT * FROM {source}", path))
    elif kind == "values_rewritten":
        rewritten = f"SELECT * REPLACE (k + 1000 AS k) FROM {source}"
        path.write_bytes(_copy_sql(warehouse, rewritten, path))
    elif kind == "deleted":
        path.unlink()
    elif kind == "stats_edited":
        stats = stats_file(path)
        stats.write_bytes(_copy_sql(warehouse, f"SELECT * REPLACE (rows + 1 AS rows) FROM '{stats}'", path))
    else:
        stats_file(path).unlink()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(KINDS),
    table=st.sampled_from(["s.t", "s.u"]),
    second=st.booleans(),
    index=st.integers(0, 3),
    cut=st.floats(0.0, 0.99),
)
def test_every_tampering_is_refused_by_restore_and_diff_naming_run_table_and_file_and_changes_nothing(
    tmp_path_factory: Any, kind: str, table: str, second: bool, index: int, cut: float
) -> None:
    warehouse = Warehouse(tmp_path_factory.mktemp("tamper"), keys={"s.t": ["k"]})
    try:
        warehouse.con.execute(
            "CREATE TABLE s.t (k INTEGER PRIMARY KEY, v VARCHAR); CREATE TABLE s.u (k INTEGER, v VARCHAR)"
        )
        warehouse.con.execute("INSERT INTO s.t SELECT i, 'a' || i FROM range(50) r(i)")
        warehouse.con.execute("INSERT INTO s.u SELECT i, 'b' || i FROM range(50) r(i)")
        first = warehouse.snapshot()
        warehouse.con.execute("INSERT INTO s.t SELECT i, 'c' || i FROM range(50, 80) r(i); UPDATE s.u SET v = 'x'")
        last = warehouse.snapshot()  # s.t: first's file linked, plus a file of the new rows; s.u: copied whole
        run, other_run = (last, first) if second else (first, last)

        def files(run_id: str, name: str) -> list[Path]:
            return [Path(f["file"]) for f in warehouse.manifest(run_id)["tables"][name]["files"]]

        path = files(run, table)[index % len(files(run, table))]
        other_table = files(run, "s.u" if table == "s.t" else "s.t")[0]
        other = [f for f in files(other_run, table) if not f.samefile(path)] if kind == "other_run" else []
        tamper(warehouse, kind, path, (other or [other_table])[0], cut)
        before = warehouse.state()
        named = rf"run {run} cannot be trusted: table {table}, file {path.name}: "

        with pytest.raises(SnapshotError, match=named):
            warehouse.restore(run)
        assert warehouse.state() == before
        with pytest.raises(SnapshotError, match=rf"cannot be trusted: table {table}, file "):
            warehouse.diff(first, last)

        warehouse.last = last  # the next snapshot links from the last one only where its files check out
        warehouse.con.execute("INSERT INTO s.t VALUES (100, 'd')")
        following = warehouse.snapshot()
        expected = warehouse.state()
        warehouse.con.execute("DELETE FROM s.t; DELETE FROM s.u")
        warehouse.restore(following)
        assert warehouse.state() == expected
    finally:
        warehouse.close()
