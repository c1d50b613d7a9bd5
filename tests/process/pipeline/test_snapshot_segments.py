"""Snapshots by reference (pipeline/worker/segments.py) and the diff that skips shared files
(pipeline/worker/diff.py), over the whole class of histories of a table: appends (duplicates included), deletes
and updates (also to ``-0.0`` from ``0.0``, equal for ``=`` but not the same value), with or without a declared
key, over several runs.

For every snapshot, its files read by pyarrow in order are the table's rows in its order (the snapshot is
exact, whatever path wrote it); a run that only appended links the previous snapshot's files (the cheap path
is taken); and every diff between two snapshots equals the diff of full copies of them (new inodes, no
statistics files: the full comparison and the scans), and, without a key, Python's multiset difference.
Runs on a real DuckDB warehouse file with the worker's functions, as the worker calls them."""

from __future__ import annotations

import itertools
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.snapshots import commit_snapshot, load_snapshot
from foss_supervisor.pipeline.worker import segments
from foss_supervisor.pipeline.worker.diff import diff_tables
from foss_supervisor.pipeline.worker.snapshots import snapshot_tables
from foss_supervisor.pipeline.worker.snapshotstats import STATS

_runs = itertools.count()

floats = st.sampled_from([0.0, -0.0, 1.5, None])
rows = st.tuples(st.integers(0, 6), st.one_of(st.none(), st.integers(-3, 3)), st.sampled_from(["x", "y", None]), floats)
ops = st.one_of(
    st.tuples(st.just("append"), st.lists(rows, min_size=1, max_size=6)),
    st.tuples(st.just("delete"), st.integers(0, 6)),
    st.tuples(st.just("update"), st.integers(0, 6), floats),
)
history = st.lists(st.lists(ops, max_size=3), min_size=1, max_size=3)  # the writes of each run after the first


def table_rows(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The table's rows in its order, as text that tells -0.0 from 0.0."""
    return [repr(r) for r in con.execute("SELECT k, v, w, f FROM s.t").fetchall()]


def snapshot_tuples(root: Path, run_id: str) -> list[tuple[Any, ...]]:
    """The snapshot's rows read by pyarrow (not DuckDB), file after file as its manifest lists them."""
    files = load_snapshot(root / "p", run_id)["tables"]["s.t"]["files"]
    return [(r["k"], r["v"], r["w"], r["f"]) for f in files for r in pq.read_table(f["file"]).to_pylist()]


def snapshot(con: duckdb.DuckDBPyConnection, root: Path, previous: str | None, key: bool) -> str:
    run_id = f"r{next(_runs):06d}"
    folder = root / "p"
    message = {
        "pipeline": "p",
        "run_id": run_id,
        "schemas": ["s"],
        "keys": {"s.t": ["k"]} if key else {},
        "previous": load_snapshot(folder, previous)["tables"] if previous else {},
    }
    written = snapshot_tables(con.cursor(), message, snapshot_dir=root, publish_dir=None)
    commit_snapshot(folder, "p", run_id, written["tables"], keep=100)
    return run_id


def full_copy(root: Path, run_id: str) -> dict[str, Any]:
    """The snapshot's tables with every file copied (new inodes) and no statistics files (none vouched for)."""
    tables = load_snapshot(root / "p", run_id)["tables"]
    for entry in tables.values():
        for f in entry["files"]:
            copy = root / "copies" / f"{next(_runs)}.parquet"
            copy.parent.mkdir(exist_ok=True)
            shutil.copyfile(f["file"], copy)
            f["file"] = str(copy)
            del f["stats_sha256"]
            f.pop("hashes", None)  # nor row hashes (snapshothashes.py): a diff hashes every row
    return tables


def normalized(diff: dict[str, Any]) -> dict[str, Any]:
    """A diff with min/max ``-0.0`` read as ``0.0``: either is the min of a column holding both."""
    for column in diff["columns"]:
        for side in ("a", "b"):
            for bound in ("min", "max"):
                if column[side] and column[side][bound] == "-0.0":
                    column[side][bound] = "0.0"
    return diff


def diff(con: duckdb.DuckDBPyConnection, root: Path, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    message = {"a": {"tables": a}, "b": {"tables": b}, "timeout_s": 30}
    return normalized(diff_tables(con.cursor(), message, snapshot_dir=root, max_bytes=1 << 20)["tables"][0])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(rows, max_size=8),
    runs=history,
    key=st.booleans(),
    fresh=st.booleans(),
    chunk=st.integers(1, 4),
)
def test_snapshots_by_reference_are_exact_and_their_diff_equals_the_full_comparison(
    tmp_path_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    first: list[tuple[Any, ...]],
    runs: list[list[tuple[Any, ...]]],
    key: bool,
    fresh: bool,
    chunk: int,
) -> None:
    # the check that a table only grew goes a chunk of rows at a time (8192 and more in use): chunks of 1 to 4
    # rows here, so chunks cross the previous files' boundaries and the rowid gaps deleted rows leave
    monkeypatch.setattr(segments, "CHUNK_ROWS", (chunk, chunk))
    if fresh:  # every row a key of its own: the key is unique, and the diff by key may skip shared files
        serial = itertools.count()
        first = [(next(serial), *r[1:]) for r in first]
        runs = [
            [(op[0], [(next(serial), *r[1:]) for r in op[1]]) if op[0] == "append" else op for op in w] for w in runs
        ]
    work = tmp_path_factory.mktemp("seg")
    root = work / "snapshots"
    con = duckdb.connect(str(work / "wh.duckdb"))
    try:
        con.execute("CREATE SCHEMA s; CREATE TABLE s.t (k INTEGER, v INTEGER, w VARCHAR, f DOUBLE)")
        if first:
            con.executemany("INSERT INTO s.t VALUES (?, ?, ?, ?)", first)
        snaps = [snapshot(con, root, None, key)]
        for writes in runs:
            for op in writes:
                if op[0] == "append":
                    con.executemany("INSERT INTO s.t VALUES (?, ?, ?, ?)", op[1])
                elif op[0] == "delete":
                    con.execute("DELETE FROM s.t WHERE k = ?", [op[1]])
                else:
                    con.execute("UPDATE s.t SET f = ? WHERE k = ?", [op[2], op[1]])
            before = load_snapshot(root / "p", snaps[-1])
            snaps.append(snapshot(con, root, snaps[-1], key))
            after = load_snapshot(root / "p", snaps[-1])
            assert [repr(r) for r in snapshot_tuples(root, snaps[-1])] == table_rows(con)  # exact, either path
            old, new = before["tables"]["s.t"]["files"], after["tables"]["s.t"]["files"]
            if all(op[0] == "append" for op in writes):  # only grew: the previous files, linked, then the new
                assert [Path(f["file"]).stat().st_ino for f in new[: len(old)]] == [
                    Path(f["file"]).stat().st_ino for f in old
                ]
                assert len(new) == len(old) + bool(writes)
                assert all(f["linked"] for f in new[: len(old)]) and not any(f["linked"] for f in new[len(old) :])
            assert (root / "p" / snaps[-1] / STATS).is_dir()
            keys = [r[0] for r in snapshot_tuples(root, snaps[-1])]
            assert after["tables"]["s.t"]["unique_key"] == (key and len(set(keys)) == len(keys))
        for a, b in {(snaps[0], snaps[-1]), *itertools.pairwise(snaps)}:
            cheap = diff(con, root, load_snapshot(root / "p", a)["tables"], load_snapshot(root / "p", b)["tables"])
            full = diff(con, root, full_copy(root, a), full_copy(root, b))
            assert cheap == full
            if not key:
                ca, cb = Counter(snapshot_tuples(root, a)), Counter(snapshot_tuples(root, b))  # -0.0 == 0.0
                assert (cheap["added"], cheap["removed"]) == (sum((cb - ca).values()), sum((ca - cb).values()))
    finally:
        con.close()
