"""The daemon's half of run snapshots (pipeline/engine/snapshots.py, stdlib only) and the ``snapshot_keep`` gate: every
value outside 0..100 or of another type is refused at its file:line:key, each value inside is kept; retention
keeps the newest whole snapshots; an incomplete or gone snapshot is refused with its reason."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import REPO, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.engine.snapshots import (
    MAX_DDL_CHARS,
    checked_manifest,
    commit_snapshot,
    list_snapshots,
    load_snapshot,
    prune_snapshots,
    snapshot_stage_name,
)
from foss_supervisor.pipeline.engine.spec import load_pipeline
from foss_supervisor.pipeline.errors import PipelineConfigError, SnapshotError

TRIPS = REPO / "configs" / "pipelines" / "trips.yaml"
SETTINGS = settings(
    max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

bad_keeps = (
    st.integers(max_value=-1)
    | st.integers(min_value=101)
    | st.floats()
    | st.booleans()
    | st.text(max_size=10)
    | st.lists(st.integers(0, 5), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


def trips_with(tmp_path: Path, keep: Any) -> Path:
    """The shipped trips pipeline (absolute paths) with ``snapshot_keep: keep`` as its last key."""
    raw = yaml.safe_load(TRIPS.read_text())
    raw["setup"] = str(TRIPS.parent / raw["setup"])
    for step in raw["steps"]:
        for key in ("sql", "callable"):
            if key in step and not step[key].startswith("foss_supervisor"):
                step[key] = str(TRIPS.parent / step[key])
    path = tmp_path / "trips.yaml"
    path.write_text(yaml.safe_dump({**raw, "snapshot_keep": keep}, sort_keys=False))
    return path


@given(keep=bad_keeps)
@SETTINGS
def test_every_bad_snapshot_keep_is_refused_at_its_line(tmp_path: Path, keep: Any) -> None:
    path = trips_with(tmp_path, keep)
    with pytest.raises(PipelineConfigError) as refused:
        load_pipeline(path)
    assert refused.value.key == "snapshot_keep", str(refused.value)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("snapshot_keep"))
    assert refused.value.line == line and str(refused.value).startswith(f"{path}:{line}: snapshot_keep")


@given(keep=st.integers(0, 100))
@SETTINGS
def test_every_keep_from_0_to_100_is_kept(tmp_path: Path, keep: int) -> None:
    assert load_pipeline(trips_with(tmp_path, keep)).snapshot_keep == keep


def _snapshot(folder: Path, run_id: str, *, keep: int) -> None:
    """A whole snapshot of one table, with _SUCCESS times in the order of its test ids (``r1``, ``r2``...)."""
    _snapshot_as(folder, run_id, keep=keep)
    stamp = time.time() - 1000 + int(run_id[1:])  # _SUCCESS times in run order, whatever the clock's grain
    os.utime(folder / run_id / "_SUCCESS", (stamp, stamp))


def test_retention_keeps_the_newest_whole_snapshots_and_refuses_gone_and_incomplete(tmp_path: Path) -> None:
    folder = tmp_path / "snapshots" / "p"
    for n in range(1, 5):
        _snapshot(folder, f"r{n}", keep=3)
    assert list_snapshots(folder) == ["r2", "r3", "r4"]
    manifest = load_snapshot(folder, "r4")
    assert [f["file"] for f in manifest["tables"]["s.t"]["files"]] == [str(folder / "r4" / "s.t.parquet")]
    with pytest.raises(SnapshotError, match=r"no snapshot .* snapshots kept: r2, r3, r4"):
        load_snapshot(folder, "r1")
    (folder / snapshot_stage_name("r5")).mkdir()  # a run killed while writing its snapshot
    with pytest.raises(SnapshotError, match="incomplete"):
        load_snapshot(folder, "r5")
    (folder / "r3" / "_SUCCESS").unlink()
    with pytest.raises(SnapshotError, match="incomplete"):
        load_snapshot(folder, "r3")
    with pytest.raises(SnapshotError, match="bad run id"):
        load_snapshot(folder, "../r4")
    assert prune_snapshots(folder, 1) == ["r2"]
    assert sorted(p.name for p in folder.iterdir()) == ["r4"]  # partial and incomplete folders went too
    assert prune_snapshots(folder, 0) == ["r4"] and list(folder.iterdir()) == []


# any JSON value: what a manifest's field may have been replaced with on disk (edited, truncated, another tool's)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_PATHS = [
    (),
    ("format",),
    ("tables",),
    ("tables", "s.t"),
    ("tables", "s.t", "files"),
    ("tables", "s.t", "files", 0),
    ("tables", "s.t", "files", 0, "file"),
    ("tables", "s.t", "files", 0, "rows"),
    ("tables", "s.t", "files", 0, "linked"),
    ("tables", "s.t", "rows"),
    ("tables", "s.t", "bytes"),
    ("tables", "s.t", "linked"),
    ("tables", "s.t", "schema"),
    ("tables", "s.t", "schema", 0),
    ("tables", "s.t", "schema", 0, "type"),
    ("tables", "s.t", "key"),
    ("tables", "s.t", "unique_key"),
    ("tables", "s.t", "ddl"),
    ("tables", "s.t", "references"),
    ("tables", "s.t", "references", 0),
    ("tables", "s.t", "files", 0, "footer_sha256"),
    ("tables", "s.t", "files", 0, "stats_sha256"),
    ("tables", "s.t", "files", 0, "hashes"),
    ("tables", "s.t", "files", 0, "hashes", "bytes"),
    ("tables", "s.t", "files", 0, "hashes", "footer_sha256"),
    ("tables", "s.t", "files", 0, "hashes", "key"),
    ("tables", "s.t", "files", 0, "hashes", "duckdb"),
    ("tables", "s.t", "files", 1),
]


@given(where=st.sampled_from(_PATHS), value=_json, drop=st.booleans())
@SETTINGS
def test_a_manifest_of_any_shape_is_read_whole_or_refused_as_unusable_naming_the_file(
    tmp_path: Path, where: tuple[Any, ...], value: Any, drop: bool
) -> None:
    """Whatever one field of a kept snapshot's manifest became (any JSON value, or gone), reading it gives a
    manifest of the written shape or a SnapshotError that names the manifest: never another exception (a
    KeyError there once stopped every pipeline at the next run's snapshot)."""
    import json

    folder = tmp_path / "snap"
    _snapshot(folder, "r1", keep=5)
    path = folder / "r1" / "_manifest.json"
    data = json.loads(path.read_text())
    if where:
        parent = data
        for step in where[:-1]:
            parent = parent[step]
        if drop and isinstance(parent, dict):
            del parent[where[-1]]
        elif isinstance(parent, list) and where[-1] == len(parent):  # one more file: another, or the same again
            parent.append(value if drop else dict(parent[0]))
        else:
            parent[where[-1]] = value
    else:
        data = value
    path.write_text(json.dumps(data))
    try:
        manifest = load_snapshot(folder, "r1")
    except SnapshotError as refused:
        assert "is unusable" in str(refused) or "unknown" in str(refused), refused
        assert str(path) in str(refused) or "format" in str(refused)
        return
    for entry in manifest["tables"].values():  # none at all is a snapshot of a pipeline without tables
        assert entry["files"] and all(Path(f["file"]).parent == folder / "r1" for f in entry["files"])
        assert all(type(f["rows"]) is int and f["rows"] >= 0 for f in entry["files"])
        assert type(entry["unique_key"]) is bool
        assert entry["key"] is None or all(isinstance(c, str) for c in entry["key"])
        assert entry["ddl"] is None or (isinstance(entry["ddl"], str) and 0 < len(entry["ddl"]) <= MAX_DDL_CHARS)
        assert all(isinstance(t, str) and t for t in entry["references"])
        assert all(
            all(re.fullmatch(r"[0-9a-f]{64}", f[d]) for d in ("footer_sha256", "stats_sha256") if d in f)
            for f in entry["files"]
        )
        assert entry["rows"] == sum(f["rows"] for f in entry["files"])
        assert len({f["file"] for f in entry["files"]}) == len(entry["files"])
        for h in (f["hashes"] for f in entry["files"] if "hashes" in f):  # what stored_hashes reads
            assert type(h["bytes"]) is int and re.fullmatch(r"[0-9a-f]{64}", h["footer_sha256"])
            assert h["key"] and all(isinstance(c, str) for c in h["key"]) and isinstance(h["duckdb"], str)


# what a table's CREATE TABLE text or a file's digest may have become: the right type but out of bounds
_texts = (
    st.just("")
    | st.just("   ")
    | st.text(min_size=1, max_size=5).map(lambda t: t + "\0")
    | st.integers(MAX_DDL_CHARS + 1, MAX_DDL_CHARS + 3).map(lambda n: "x" * n)
)
_digests = st.text(max_size=70).filter(lambda t: not re.fullmatch(r"[0-9a-f]{64}", t)) | st.just("A" * 64)


@given(field=st.sampled_from(["ddl", "footer_sha256", "stats_sha256"]), data=st.data())
@SETTINGS
def test_an_empty_over_long_or_malformed_ddl_or_digest_is_refused_naming_its_field(
    tmp_path: Path, field: str, data: st.DataObject
) -> None:
    """Bounded before it is trusted: a DDL text empty, blank, holding a NUL or over MAX_DDL_CHARS, a digest
    that is not 64 lowercase hex digits, are refused by checked_manifest naming the field."""
    import json

    folder = tmp_path / "snap"
    _snapshot(folder, "r1", keep=5)
    path = folder / "r1" / "_manifest.json"
    manifest = json.loads(path.read_text())
    entry = manifest["tables"]["s.t"]
    if field == "ddl":
        entry["ddl"] = data.draw(_texts)
    else:
        entry["files"][0][field] = data.draw(_digests)
    with pytest.raises(ValueError, match=rf"tables\.s\.t\.(files\[0\]\.)?{field}"):
        checked_manifest(manifest)


def test_the_newest_snapshots_are_told_by_their_run_ids_not_by_file_times(tmp_path: Path) -> None:
    """A copy without -p or a restored backup gives the folders any times: retention and "the one before" follow
    the runs' start times in their ids, so the newest runs' snapshots are the ones kept."""
    folder = tmp_path / "snap"
    ids = [f"20261205T1200{s:02d}Z-abcdef" for s in range(5)]
    for run_id in ids[:4]:
        _snapshot_as(folder, run_id, keep=10)
    stamp = time.time() + 1000  # the oldest run's files now look the newest
    os.utime(folder / ids[0] / "_SUCCESS", (stamp, stamp))
    assert list_snapshots(folder) == ids[:4]
    _snapshot_as(folder, ids[4], keep=3)
    assert list_snapshots(folder) == ids[2:]


def _snapshot_as(folder: Path, run_id: str, *, keep: int) -> None:
    """A whole snapshot of one table, as the worker and commit_snapshot leave it."""
    stage = folder / snapshot_stage_name(run_id)
    stage.mkdir(parents=True)
    (stage / "s.t.parquet").write_bytes(b"PAR1")
    digests = {"footer_sha256": "0" * 64, "stats_sha256": "f" * 64}
    hashes = {"hashes": {"bytes": 16, "footer_sha256": "a" * 64, "key": ["k"], "duckdb": "2.0.1"}}
    files = [{"file": "s.t.parquet", "rows": 1, "bytes": 4, "linked": False} | digests | hashes]
    table = {"table": "s.t", "files": files, "rows": 1, "bytes": 4, "linked": False, "key": None}
    table |= {"ddl": "CREATE TABLE s.t(a INTEGER);", "references": ["s.u"]}
    commit_snapshot(folder, "p", run_id, [table | {"schema": [{"name": "a", "type": "INTEGER"}]}], keep=keep)
