"""Whether the current published set may stand for a run that changed nothing (publishcheck.py), stdlib only:
on a Parquet layout made by publish.commit_run and a Delta one by publishdelta.commit_delta_run over files
written here. The whole path (a run that changed nothing, a damaged set, a changed config) runs with a real
worker in tests/process/pipeline/test_publish_unchanged.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from test_publish_delta_manifest import TABLES, committed

from foss_supervisor.pipeline.engine.publish import MANIFEST, RUNS, SUCCESS, commit_run, stage_name
from foss_supervisor.pipeline.engine.publishcheck import current_set
from foss_supervisor.pipeline.engine.publishdelta import DELTA_LOG, commit_delta_run

LISTING = [{"table": t, "partition_by": []} for t in TABLES]


def parquet_run(folder: Path, run_id: str) -> None:
    """Stage ``run_id`` as the worker would (one file of 10 bytes per table) and commit it."""
    tables: list[dict[str, Any]] = []
    for table in TABLES:
        part = folder / RUNS / stage_name(run_id) / table / "part-0.parquet"
        part.parent.mkdir(parents=True)
        part.write_bytes(b"0123456789")
        tables.append(
            {"table": table, "path": table, "rows": 1, "bytes": 10, "partition_by": [], "schema": [], "files": []}
        )
        tables[-1]["files"] = [f"{table}/part-0.parquet"]
    commit_run(folder, "p", run_id, 0.0, tables, keep=3)


def test_a_whole_parquet_set_of_the_same_config_may_stay_and_each_damage_is_named(tmp_path: Path) -> None:
    assert current_set(tmp_path, "parquet", LISTING) == (None, "is missing")
    parquet_run(tmp_path, "r1")
    assert current_set(tmp_path, "parquet", LISTING) == ("r1", None)
    assert current_set(tmp_path, "delta", LISTING) == ("r1", "is of another publish config (publish_format)")
    assert current_set(tmp_path, "parquet", LISTING[:1]) == (
        "r1",
        "is of another publish config (the tables published)",
    )
    partitioned = [LISTING[0], {"table": TABLES[1], "partition_by": ["x"]}]
    assert current_set(tmp_path, "parquet", partitioned) == (
        "r1",
        "is of another publish config (publish_partition_by)",
    )

    part = tmp_path / RUNS / "r1" / TABLES[0] / "part-0.parquet"
    part.write_bytes(b"012")
    assert current_set(tmp_path, "parquet", LISTING) == ("r1", f"is damaged ({TABLES[0]}'s files hold 3 bytes, not 10)")
    part.unlink()
    run_id, problem = current_set(tmp_path, "parquet", LISTING)
    assert run_id == "r1" and problem is not None and problem.startswith("is damaged ("), problem
    part.write_bytes(b"0123456789")
    (tmp_path / RUNS / "r1" / SUCCESS).unlink()
    assert current_set(tmp_path, "parquet", LISTING) == ("r1", "is damaged (its run folder is not whole)")
    (tmp_path / RUNS / "r1" / SUCCESS).write_bytes(b"")
    parquet_run(tmp_path, "r2")
    os.replace(tmp_path / MANIFEST, tmp_path / "r2.json")
    (tmp_path / MANIFEST).write_text((tmp_path / RUNS / "r1" / MANIFEST).read_text())  # not what current points at
    assert current_set(tmp_path, "parquet", LISTING)[1] is not None
    (tmp_path / MANIFEST).write_text("{not json")
    run_id, problem = current_set(tmp_path, "parquet", LISTING)
    assert run_id is None and problem is not None and problem.startswith("has an unreadable manifest"), problem


def test_a_delta_set_may_stay_while_its_versions_are_the_latest(tmp_path: Path) -> None:
    tables = committed(tmp_path, 0)
    for t in tables:
        (tmp_path / str(t["table"]) / "part-0.parquet").write_bytes(b"0123456789")
    commit_delta_run(tmp_path, "p", "r1", 0.0, tables, keep=3)
    assert current_set(tmp_path, "delta", LISTING) == ("r1", None)
    assert current_set(tmp_path, "parquet", LISTING)[1] == "is of another publish config (publish_format)"
    later = tmp_path / TABLES[0] / DELTA_LOG / f"{1:020d}.json"
    later.write_text("{}\n")  # a commit after the manifest's version: the latest version is not the run's
    assert current_set(tmp_path, "delta", LISTING) == ("r1", f"is damaged ({TABLES[0]} has commits after version 0)")
    later.unlink()
    (tmp_path / TABLES[1] / DELTA_LOG / f"{0:020d}.json").unlink()
    assert current_set(tmp_path, "delta", LISTING) == ("r1", f"is damaged ({TABLES[1]}'s version 0 is gone)")
