"""The daemon's half of run snapshots (pipeline/snapshots.py, stdlib only) and the ``snapshot_keep`` gate: every
value outside 0..100 or of another type is refused at its file:line:key, each value inside is kept; retention
keeps the newest whole snapshots; an incomplete or gone snapshot is refused with its reason."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.errors import PipelineConfigError, SnapshotError
from foss_supervisor.pipeline.snapshots import (
    commit_snapshot,
    list_snapshots,
    load_snapshot,
    prune_snapshots,
    snapshot_stage_name,
)
from foss_supervisor.pipeline.spec import load_pipeline

TRIPS = REPO / "configs" / "pipelines" / "trips.yaml"
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

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
    """A whole snapshot of one table, as the worker and commit_snapshot leave it."""
    stage = folder / snapshot_stage_name(run_id)
    stage.mkdir(parents=True)
    (stage / "s.t.parquet").write_bytes(b"PAR1")
    files = [{"file": "s.t.parquet", "rows": 1, "bytes": 4, "linked": False}]
    table = {"table": "s.t", "files": files, "rows": 1, "bytes": 4, "linked": False, "key": None}
    commit_snapshot(folder, "p", run_id, [table | {"schema": [{"name": "a", "type": "INTEGER"}]}], keep=keep)
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
