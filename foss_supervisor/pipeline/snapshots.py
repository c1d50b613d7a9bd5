"""Run snapshots, the daemon's half: where each successful run's copy of its layer tables lives, which of
them are whole, and the retention that removes old ones. Stdlib only (the daemon never imports DuckDB).

Layout, under ``<warehouse folder>/snapshots/<pipeline>/`` (beside ``published/``, on the same filesystem,
so a gold table the run also published is a hard link to the published file, not a second copy)::

    <run_id>/
        _SUCCESS                      written last: a snapshot without it is never read
        _manifest.json                {format, pipeline, run_id, tables: {schema.table: {files: [{file, rows,
                                       bytes, linked}], rows, bytes, linked, schema: [{name, type}],
                                       key: [column] | null, unique_key}}}
        <schema>.<table>.parquet      a table copied whole (zstd Parquet, DuckDB's COPY), or hard-linked
                                       from its published file, or from the previous snapshot
        <schema>.<table>@<run>.parquet the rows run <run> appended to a table that only grew: the table is
                                       the files listed, in order (workersegments.py)
        _stats/<file>                 each file's row count, non-NULL counts, min and max (snapshotstats.py)
    .<run_id>.partial/                a snapshot being written (the worker writes here; never read)

Why Parquet files and not tables in the warehouse: DuckDB has no zero-copy clone, so a copy costs the same
either way, but a file can be a hard link to what the run published, is removed without a checkpoint, and
never grows the warehouse file (DuckDB does not give freed blocks back to the filesystem); and a table that
only grew is the previous snapshot's files, hard-linked, plus its new rows, so both its snapshot and the
diff of the two cost only the new rows. Retention removes folders: a file stays while any kept snapshot
links it.

A snapshot is made in three moves like a publish (publish.py): the worker writes every table into the
partial folder in one read-only transaction (workersnapshots.py); :func:`commit_snapshot` writes the
manifest and ``_SUCCESS`` and renames the folder; :func:`prune_snapshots` keeps the newest ``keep``. A run
cancelled or killed on the way leaves only a partial folder, which :func:`load_snapshot` refuses and the
next prune removes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foss_supervisor.base.atomicfile import atomic_write, fsync_dir
from foss_supervisor.pipeline.errors import SnapshotError
from foss_supervisor.pipeline.publish import MANIFEST, PARTIAL_STAGE, RUN_ID, SUCCESS, stage_name
from foss_supervisor.pipeline.snapshotstats import STATS

__all__ = [
    "SNAPSHOTS",
    "SNAPSHOT_FORMAT",
    "commit_snapshot",
    "discard_snapshot_stage",
    "link_snapshot",
    "list_snapshots",
    "load_snapshot",
    "prune_snapshots",
    "remove_snapshots",
    "snapshot_root",
    "snapshot_stage_name",
]

SNAPSHOTS = "snapshots"
#: the ``format`` field of every snapshot manifest
SNAPSHOT_FORMAT = "foss-supervisor.snapshot/2"
_FORMAT_1 = "foss-supervisor.snapshot/1"  # one ``file`` per table, no statistics files: still read


def snapshot_root(publish_dir: Path) -> Path:
    """The folder of every pipeline's snapshots: ``snapshots/`` beside ``published/`` (``publish_dir``)."""
    return publish_dir.parent / SNAPSHOTS


def snapshot_stage_name(run_id: str) -> str:
    """The hidden folder the worker writes ``run_id``'s snapshot into. Raises SnapshotError for a bad id."""
    try:
        return stage_name(run_id)
    except ValueError as exc:
        raise SnapshotError(str(exc)) from None


def commit_snapshot(
    folder: Path, pipeline: str, run_id: str, tables: Sequence[Mapping[str, Any]], *, keep: int
) -> dict[str, Any]:
    """Make the snapshot staged under ``folder/.<run_id>.partial`` whole: its manifest, then ``_SUCCESS``,
    then one rename to ``folder/<run_id>``; then keep the newest ``keep`` snapshots.

    ``folder`` is the pipeline's snapshot folder, ``tables`` the worker's ``[{table, files: [{file, rows,
    bytes, linked}], rows, bytes, linked, schema, key}]``. Returns the manifest. Raises OSError (the
    partial folder stays, never read).
    """
    stage = folder / snapshot_stage_name(run_id)
    manifest = {
        "format": SNAPSHOT_FORMAT,
        "pipeline": pipeline,
        "run_id": run_id,
        "tables": {
            str(t["table"]): {
                "files": [
                    {"file": str(f["file"]), "rows": int(f["rows"]), "bytes": int(f["bytes"])}
                    | {"linked": bool(f["linked"])}
                    for f in t["files"]
                ],
                "rows": int(t["rows"]),
                "bytes": int(t["bytes"]),
                "linked": bool(t["linked"]),
                "schema": [{"name": str(c["name"]), "type": str(c["type"])} for c in t["schema"]],
                "key": [str(c) for c in t["key"]] if t.get("key") else None,
                "unique_key": bool(t.get("unique_key")),
            }
            for t in tables
        },
    }
    atomic_write(stage / MANIFEST, json.dumps(manifest, indent=1))
    atomic_write(stage / SUCCESS, b"")
    fsync_dir(stage)
    final = folder / run_id
    if final.exists():
        shutil.rmtree(final)
    os.rename(stage, final)
    fsync_dir(folder)
    prune_snapshots(folder, keep, current=run_id)
    return manifest


def list_snapshots(folder: Path) -> list[str]:
    """Run ids of the whole snapshots in ``folder`` (those with ``_SUCCESS``), oldest first."""
    if not folder.is_dir():
        return []
    done = [p for p in folder.iterdir() if RUN_ID.fullmatch(p.name) and (p / SUCCESS).is_file()]
    return [p.name for p in sorted(done, key=lambda p: ((p / SUCCESS).stat().st_mtime, p.name))]


def prune_snapshots(folder: Path, keep: int, *, current: str | None = None) -> list[str]:
    """Remove whole snapshots beyond the ``keep`` newest (``current`` always stays) and every partial or
    incomplete folder but ``current``'s stage; ``keep`` 0 removes them all. Returns the run ids removed."""
    if not folder.is_dir():
        return []
    whole = [r for r in list_snapshots(folder) if r != current]
    doomed = whole[: max(len(whole) - max(keep - (current is not None), 0), 0)]
    if keep <= 0:
        doomed = [*whole, *([current] if current else [])]
    for run_id in doomed:
        shutil.rmtree(folder / run_id, ignore_errors=True)
    for p in folder.iterdir():
        incomplete = RUN_ID.fullmatch(p.name) and not (p / SUCCESS).exists() and p.name != current
        if PARTIAL_STAGE.fullmatch(p.name) or incomplete:
            shutil.rmtree(p, ignore_errors=True)
    return doomed


def discard_snapshot_stage(folder: Path, run_id: str) -> None:
    """Remove what a snapshot of ``run_id`` that did not finish wrote."""
    shutil.rmtree(folder / snapshot_stage_name(run_id), ignore_errors=True)


def load_snapshot(folder: Path, run_id: str) -> dict[str, Any]:
    """The manifest of ``run_id``'s whole snapshot, each table's ``files`` made absolute (a format 1
    manifest's one ``file`` is read as ``files`` of one).

    Raises SnapshotError saying why there is none: a bad run id, incomplete (no ``_SUCCESS``), or gone
    (never kept, or removed by retention: ``kept`` lists the run ids that have one).
    """
    snapshot_stage_name(run_id)  # checks the id
    path = folder / run_id
    if not (path / SUCCESS).is_file():
        if path.is_dir() or (folder / snapshot_stage_name(run_id)).is_dir():
            raise SnapshotError(f"the snapshot of run {run_id} is incomplete (its run did not finish writing it)")
        kept = ", ".join(list_snapshots(folder)) or "none"
        raise SnapshotError(
            f"run {run_id} has no snapshot (not a successful run of this pipeline, or removed by snapshot_keep);"
            f" snapshots kept: {kept}"
        )
    try:
        manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"the snapshot of run {run_id} is unreadable: {exc}") from None
    if manifest.get("format") not in (SNAPSHOT_FORMAT, _FORMAT_1):
        raise SnapshotError(f"the snapshot of run {run_id} has an unknown format {manifest.get('format')!r}")
    for entry in manifest["tables"].values():
        if manifest["format"] == _FORMAT_1:
            entry["files"] = [{k: entry[k] for k in ("file", "rows", "bytes", "linked")}]
            del entry["file"]
        for f in entry["files"]:
            f["file"] = str(path / f["file"])
    manifest["format"] = SNAPSHOT_FORMAT
    return manifest


def link_snapshot(folder: Path, source: str, run_id: str, *, keep: int) -> dict[str, Any]:
    """Keep ``source``'s whole snapshot again as run ``run_id``'s (a rollback to it leaves the same tables):
    every file and its statistics file hard-linked (copied across filesystems), then made whole like any
    snapshot. Returns the manifest. Raises SnapshotError (``source`` has none), OSError."""
    manifest = load_snapshot(folder, source)
    stage = folder / snapshot_stage_name(run_id)
    stage.mkdir()
    tables = []
    for table, entry in manifest["tables"].items():
        files = []
        for f in entry["files"]:
            src = Path(f["file"])
            _link_or_copy(src, stage / src.name)
            if (src.parent / STATS / src.name).is_file():
                (stage / STATS).mkdir(exist_ok=True)
                _link_or_copy(src.parent / STATS / src.name, stage / STATS / src.name)
            files.append({**f, "file": src.name, "linked": True})
        tables.append({**entry, "table": table, "files": files, "bytes": 0, "linked": True})
    return commit_snapshot(folder, str(manifest["pipeline"]), run_id, tables, keep=keep)


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def remove_snapshots(folder: Path) -> bool:
    """Remove every snapshot of a pipeline (``pipeline reset``); returns whether there was any."""
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True
