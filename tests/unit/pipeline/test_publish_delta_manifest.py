"""The daemon's half of a Delta publish (publishdelta.py), stdlib only: the manifest's map of kept runs to
versions, which runs still count as kept (their commit still in each table's log), and the Parquet layout
a format switch leaves behind. The worker's half is tested with real Delta tables in
tests/process/pipeline/test_publish_delta.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from foss_supervisor.pipeline.engine.publish import MANIFEST, SUCCESS
from foss_supervisor.pipeline.engine.publishdelta import DELTA_LOG, commit_delta_run, delta_run_versions

TABLES = ("g.a", "g.b")


def committed(folder: Path, version: int) -> list[dict[str, Any]]:
    """The worker's description of both tables at ``version``, their commit file written as the worker's is."""
    out = []
    for table in TABLES:
        log = folder / table / DELTA_LOG
        log.mkdir(parents=True, exist_ok=True)
        (log / f"{version:020d}.json").write_text("{}\n")
        out.append(
            {
                "table": table,
                "version": version,
                "rows": version + 1,
                "bytes": 10,
                "partition_by": [],
                "schema": [{"name": "x", "type": "BIGINT"}],
                "files": [f"part-{version}.parquet"],
            }
        )
    return out


def test_the_manifest_keeps_the_newest_runs_and_says_which_are_still_readable(tmp_path: Path) -> None:
    for v in range(4):
        manifest = commit_delta_run(tmp_path, "p", f"r{v}", 0.0, committed(tmp_path, v), keep=3)
    on_disk = json.loads((tmp_path / MANIFEST).read_text())
    assert on_disk == manifest and (tmp_path / SUCCESS).is_file()
    assert manifest["run_id"] == "r3" and list(manifest["runs"]) == ["r1", "r2", "r3"]
    assert manifest["tables"]["g.a"]["version"] == 3 and manifest["tables"]["g.a"]["files"] == ["g.a/part-3.parquet"]
    assert delta_run_versions(tmp_path, "r2") == dict.fromkeys(TABLES, 2)
    assert delta_run_versions(tmp_path, "r0") is None  # beyond publish_keep
    assert delta_run_versions(tmp_path, "nope") is None
    (tmp_path / "g.b" / DELTA_LOG / f"{1:020d}.json").unlink()  # Delta's log retention removed that commit
    assert delta_run_versions(tmp_path, "r1") is None
    with pytest.raises(ValueError, match="bad run id"):
        delta_run_versions(tmp_path, "../r1")


def test_a_delta_publish_replaces_the_parquet_layout_and_starts_its_own_run_list(tmp_path: Path) -> None:
    (tmp_path / "runs" / "old").mkdir(parents=True)
    os.symlink("runs/old", tmp_path / "current")
    parquet = {"format": "foss-supervisor.published/1", "run_id": "old", "tables": {}, "runs": {"old": {}}}
    (tmp_path / MANIFEST).write_text(json.dumps(parquet))
    manifest = commit_delta_run(tmp_path, "p", "r0", 0.0, committed(tmp_path, 0), keep=3)
    assert list(manifest["runs"]) == ["r0"] and manifest["publish_format"] == "delta"
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUCCESS, MANIFEST, *TABLES]
