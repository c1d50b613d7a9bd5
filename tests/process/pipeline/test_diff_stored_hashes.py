"""Row hashes kept with a snapshot (snapshothashes.py) and the keyed diff that reads them (pipeline/worker/diff.py).

Over the whole class of small keyed tables (keys added, removed, values changed, NULLs), between two runs
whose table kept its columns, had one retyped (BIGINT -> DOUBLE) or one added, or only grew (the previous
snapshot's files and hashes files linked): the diff of the two snapshots as written equals the diff with
either or both read as snapshots from before hashes were kept (no ``hashes`` in the manifest: every row
hashed), and Python's count by key. A restore from a snapshot with hashes gives back exactly the table, no
extra column. And the diff does read the stored hashes: a forged hashes file the manifest vouches for
changes its counts, one it does not vouch for refuses the diff, and one hashed by another DuckDB version
is not read. Runs on a real DuckDB warehouse file with the worker's functions, as the worker calls them."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.snapshots import commit_snapshot, link_snapshot, load_snapshot
from foss_supervisor.pipeline.errors import SnapshotError
from foss_supervisor.pipeline.worker.diff import diff_tables
from foss_supervisor.pipeline.worker.restore import restore_tables
from foss_supervisor.pipeline.worker.snapshotfiles import footer_sha256
from foss_supervisor.pipeline.worker.snapshothashes import hashes_file
from foss_supervisor.pipeline.worker.snapshots import snapshot_tables

_runs = itertools.count()

values = st.one_of(st.none(), st.integers(-3, 3))
tables = st.dictionaries(st.integers(0, 12), st.tuples(values, st.sampled_from(["x", "y", None])), max_size=15)


def snapshot(con: duckdb.DuckDBPyConnection, root: Path, previous: str | None) -> str:
    run_id = f"r{next(_runs):06d}"
    message = {
        "pipeline": "p",
        "run_id": run_id,
        "schemas": ["s"],
        "keys": {"s.t": ["k"]},
        "previous": load_snapshot(root / "p", previous)["tables"] if previous else {},
    }
    written = snapshot_tables(con.cursor(), message, snapshot_dir=root, publish_dir=None)
    commit_snapshot(root / "p", "p", run_id, written["tables"], keep=100)
    return run_id


def without_hashes(tables: dict[str, Any]) -> dict[str, Any]:
    """The manifest's tables as a snapshot from before row hashes were kept has them."""
    out = copy.deepcopy(tables)
    for entry in out.values():
        for f in entry["files"]:
            f.pop("hashes", None)
    return out


def diff(con: duckdb.DuckDBPyConnection, root: Path, a: dict[str, Any], b: dict[str, Any]) -> tuple[Any, ...]:
    message = {"a": {"tables": a}, "b": {"tables": b}, "timeout_s": 30}
    got = diff_tables(con.cursor(), message, snapshot_dir=root, max_bytes=1 << 20)["tables"][0]
    return got["added"], got["removed"], got["changed"], got["match"]


def fill(con: duckdb.DuckDBPyConnection, rows: dict[int, Any]) -> None:
    con.execute("DELETE FROM s.t")
    if rows:
        con.executemany("INSERT INTO s.t (k, v, w) VALUES (?, ?, ?)", [(k, v, w) for k, (v, w) in rows.items()])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=tables, b=tables, change=st.sampled_from(["none", "retyped", "added", "grew"]))
def test_a_diff_by_stored_hashes_equals_one_by_hashing_every_row(
    tmp_path: Path, a: dict[int, Any], b: dict[int, Any], change: str
) -> None:
    root = tmp_path / f"case{next(_runs)}"
    root.mkdir()
    con = duckdb.connect(str(root / "wh.duckdb"))
    try:
        con.execute("CREATE SCHEMA s")
        con.execute("CREATE TABLE s.t (k BIGINT, v BIGINT, w VARCHAR)")
        fill(con, a)
        run_a = snapshot(con, root, None)
        if change == "grew":  # only new keys appended: the previous files and their hashes files are linked
            b = a | {k + 100: v for k, v in b.items()}
            new = [(k, v, w) for k, (v, w) in b.items() if k not in a]
            if new:
                con.executemany("INSERT INTO s.t VALUES (?, ?, ?)", new)
        else:
            fill(con, b)
        if change == "retyped":
            con.execute("ALTER TABLE s.t ALTER v TYPE DOUBLE")
        if change == "added":
            con.execute("ALTER TABLE s.t ADD COLUMN z DOUBLE DEFAULT 1.5")
        run_b = snapshot(con, root, run_a)
        side_a, side_b = (load_snapshot(root / "p", r)["tables"] for r in (run_a, run_b))
        for entry in (*side_a.values(), *side_b.values()):
            assert all(f["hashes"]["key"] == ["k"] and hashes_file(Path(f["file"])).is_file() for f in entry["files"])
        if change == "grew" and a:
            first = side_b["s.t"]["files"][0]
            assert hashes_file(Path(first["file"])).stat().st_nlink == 2  # linked with its data file
        both = a.keys() & b.keys()
        expected = (
            len(b.keys() - a.keys()),
            len(a.keys() - b.keys()),
            sum(1 for k in both if a[k] != b[k]),  # 1 and 1.0 are one value (IS DISTINCT FROM casts)
            {"by": "key", "columns": ["k"]},
        )
        old_a, old_b = without_hashes(side_a), without_hashes(side_b)
        for x, y in ((side_a, side_b), (old_a, side_b), (side_a, old_b), (old_a, old_b)):
            assert diff(con, root, x, y) == expected, (a, b, change)

        restore_tables(con.cursor(), {"schemas": ["s"], "tables": side_a}, snapshot_dir=root)
        described = [(r[0], r[1]) for r in con.execute("DESCRIBE s.t").fetchall()]
        assert described == [("k", "BIGINT"), ("v", "BIGINT"), ("w", "VARCHAR")]
        assert con.execute("SELECT k, v, w FROM s.t ORDER BY k").fetchall() == sorted((k, *v) for k, v in a.items())
    finally:
        con.close()


def test_the_diff_reads_the_stored_hashes_it_may_trust_and_no_others(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    try:
        con.execute("CREATE SCHEMA s")
        con.execute("CREATE TABLE s.t (k BIGINT, v BIGINT, w VARCHAR)")
        fill(con, {k: (k, "x") for k in range(100)})
        run_a = snapshot(con, tmp_path, None)
        con.execute("UPDATE s.t SET v = v + 1 WHERE k < 10")
        run_b = snapshot(con, tmp_path, run_a)
        kept = link_snapshot(tmp_path / "p", run_a, f"r{next(_runs):06d}", keep=100)  # a rollback's snapshot
        side_a = load_snapshot(tmp_path / "p", kept["run_id"])["tables"]
        side_b = load_snapshot(tmp_path / "p", run_b)["tables"]
        assert diff(con, tmp_path, side_a, side_b)[:3] == (0, 0, 10)

        # B's hashes forged to A's other-column hashes, and vouched for: the diff believes them
        path = hashes_file(Path(side_b["s.t"]["files"][0]["file"]))
        path.unlink()
        source = hashes_file(Path(side_a["s.t"]["files"][0]["file"]))
        con.execute(f"COPY (SELECT * FROM read_parquet('{source}')) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
        forged = copy.deepcopy(side_b)
        forged["s.t"]["files"][0]["hashes"] |= {"bytes": path.stat().st_size, "footer_sha256": footer_sha256(path)}
        assert diff(con, tmp_path, side_a, forged)[:3] == (0, 0, 0)
        # not vouched for by its manifest: refused, as an edited statistics file is
        with pytest.raises(SnapshotError, match=r"table s\.t, file .*row hashes file"):
            diff(con, tmp_path, side_a, side_b)
        # hashed by another DuckDB version: not read, every row hashed again
        older = copy.deepcopy(forged)
        older["s.t"]["files"][0]["hashes"]["duckdb"] = "0.9.0"
        assert diff(con, tmp_path, side_a, older)[:3] == (0, 0, 10)
        # for another key: not read either
        other_key = copy.deepcopy(forged)
        other_key["s.t"]["files"][0]["hashes"]["key"] = ["w"]
        assert diff(con, tmp_path, side_a, other_key)[:3] == (0, 0, 10)
    finally:
        con.close()
