"""Run snapshots, the daemon's half: where each successful run's copy of its layer tables lives, which of
them are whole, and the retention that removes old ones. Stdlib only (the daemon never imports DuckDB).

Layout, under ``<warehouse folder>/snapshots/<pipeline>/`` (beside ``published/``, on the same filesystem,
so a gold table the run also published is a hard link to the published file, not a second copy)::

    <run_id>/
        _SUCCESS                      written last: a snapshot without it is never read
        _manifest.json                {format, pipeline, run_id, tables: {schema.table: {files: [{file, rows,
                                       bytes, linked, footer_sha256, stats_sha256, hashes?: {bytes,
                                       footer_sha256, key, duckdb}}], rows, bytes, linked,
                                       schema: [{name, type}], key: [column] | null, unique_key,
                                       ddl: CREATE TABLE text | null, references: [schema.table]}}}
        <schema>.<table>.parquet      a table copied whole (zstd Parquet, DuckDB's COPY), or hard-linked
                                       from its published file, or from the previous snapshot
        <schema>.<table>@<run>.parquet the rows run <run> appended to a table that only grew: the table is
                                       the files listed, in order (worker/segments.py)
        _stats/<file>                 each file's row count, non-NULL counts, min and max (worker/snapshotstats.py)
        _hashes/<file>                for a table with a key, each row's hash of its key and of its other
                                       columns, what a keyed diff pairs rows by (worker/snapshothashes.py)
    .<run_id>.partial/                a snapshot being written (the worker writes here; never read)

Why Parquet files and not tables in the warehouse: DuckDB has no zero-copy clone, so a copy costs the same
either way, but a file can be a hard link to what the run published, is removed without a checkpoint, and
never grows the warehouse file (DuckDB does not give freed blocks back to the filesystem); and a table that
only grew is the previous snapshot's files, hard-linked, plus its new rows, so both its snapshot and the
diff of the two cost only the new rows. Retention removes folders: a file stays while any kept snapshot
links it.

A snapshot is made in three moves like a publish (publish.py): the worker writes every table into the
partial folder in one read-only transaction (worker/snapshots.py); :func:`commit_snapshot` writes the
manifest and ``_SUCCESS`` and renames the folder; :func:`prune_snapshots` keeps the newest ``keep``. A run
cancelled or killed on the way leaves only a partial folder, which :func:`load_snapshot` refuses and the
next prune removes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foss_supervisor.base.atomicfile import atomic_write, fsync_dir
from foss_supervisor.base.jsontext import parse_json
from foss_supervisor.pipeline.engine.publish import MANIFEST, PARTIAL_STAGE, RUN_ID, SUCCESS, stage_name
from foss_supervisor.pipeline.errors import SnapshotError
from foss_supervisor.pipeline.worker.snapshotstats import HASHES, STATS

__all__ = [
    "MAX_DDL_CHARS",
    "SNAPSHOTS",
    "SNAPSHOT_FORMAT",
    "checked_manifest",
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
_RUN_STAMP = re.compile(r"\d{8}T\d{6}Z")  # the start of a run id: its start time, UTC, sortable as text
_FORMAT_1 = "foss-supervisor.snapshot/1"  # one ``file`` per table, no statistics files: still read
#: the longest ``ddl`` a manifest may hold (a CREATE TABLE of 200 columns with long ENUMs is far below)
MAX_DDL_CHARS = 1_000_000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_REFERENCES = 1000
#: per file: the SHA-256 of its Parquet footer and of its statistics file (worker/snapshotfiles.py)
_DIGESTS = ("footer_sha256", "stats_sha256")


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
    bytes, linked, footer_sha256, stats_sha256, hashes?}], rows, bytes, linked, schema, key, unique_key, ddl,
    references}]`` (worker.snapshots.snapshot_tables). Returns the manifest. Raises OSError (the partial
    folder stays, never read).
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
                    | {d: str(f[d]) for d in _DIGESTS if f.get(d)}
                    | ({"hashes": _hashes(f["hashes"], "hashes")} if f.get("hashes") else {})
                    for f in t["files"]
                ],
                "rows": int(t["rows"]),
                "bytes": int(t["bytes"]),
                "linked": bool(t["linked"]),
                "schema": [{"name": str(c["name"]), "type": str(c["type"])} for c in t["schema"]],
                "key": [str(c) for c in t["key"]] if t.get("key") else None,
                "unique_key": bool(t.get("unique_key")),
                "ddl": str(t["ddl"]) if t.get("ddl") else None,
                "references": [str(r) for r in t.get("references") or ()],
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
    return [p.name for p in sorted(done, key=lambda p: (_started(p.name), (p / SUCCESS).stat().st_mtime, p.name))]


def _started(run_id: str) -> str:
    """When a run began, from its id (``20261205T120949Z-fd9671``, execution.py): the order of snapshots
    whatever their files' times say (a copy without ``-p``, a backup restored); "" for another id."""
    return run_id[:16] if _RUN_STAMP.fullmatch(run_id[:16]) else ""


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
            f"run {run_id} has no snapshot (not a successful run of this pipeline, its snapshot failed: see the"
            f" run's warning, or removed by snapshot_keep);"
            f" snapshots kept: {kept}"
        )
    try:
        data = parse_json((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"the snapshot of run {run_id} is unreadable: {exc}") from None
    try:
        manifest = checked_manifest(data)
    except ValueError as exc:
        raise SnapshotError(f"the snapshot of run {run_id} is unusable: {path / MANIFEST}: {exc}") from None
    for entry in manifest["tables"].values():
        for f in entry["files"]:
            f["file"] = str(path / f["file"])
    return manifest


def checked_manifest(data: object) -> dict[str, Any]:
    """The one gate every snapshot manifest read from disk passes: ``data`` (parsed JSON) as a format-2 manifest
    whose every field has the shape and type :func:`commit_snapshot` writes (a format 1 table's one ``file``
    becomes ``files`` of one), or ValueError naming the first field that is not (``tables.T.files[0].rows:
    ...``). A file name is a plain name inside the snapshot's folder, listed once per table; a table's rows
    are the sum of its files'; ``ddl`` is null (a snapshot from before it was kept) or a text of at most
    :data:`MAX_DDL_CHARS`; ``references`` at most 1,000 table names; a digest 64 lowercase hex digits. Whether
    the files are those the manifest describes is checked by the worker (worker/snapshotfiles.py)."""
    manifest = _mapping(data, "the manifest")
    if manifest.get("format") not in (SNAPSHOT_FORMAT, _FORMAT_1):
        raise ValueError(f"format: unknown {manifest.get('format')!r}")
    tables = _mapping(manifest.get("tables"), "tables")
    out: dict[str, Any] = {}
    for table, raw in tables.items():
        at = f"tables.{table}"
        entry = _mapping(raw, at)
        files = [entry] if manifest["format"] == _FORMAT_1 else entry.get("files")
        if not isinstance(files, list) or not files:
            raise ValueError(f"{at}.files: a non-empty list is needed, got {type(files).__name__}")
        schema = entry.get("schema")
        if not isinstance(schema, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("type"), str) for c in schema
        ):
            raise ValueError(f"{at}.schema: a list of {{name, type}} texts is needed")
        key = entry.get("key")
        if key is not None and not (isinstance(key, list) and key and all(isinstance(c, str) for c in key)):
            raise ValueError(f"{at}.key: null or a non-empty list of column names is needed")
        checked = [_file(f, f"{at}.files[{i}]") for i, f in enumerate(files)]
        if len({f["file"] for f in checked}) != len(checked):
            raise ValueError(f"{at}.files: a file is listed twice")
        rows = _count(entry.get("rows"), f"{at}.rows")
        if rows != sum(f["rows"] for f in checked):
            raise ValueError(f"{at}.rows: {rows} is not the sum of its files' rows")
        out[table] = {
            "files": checked,
            "rows": rows,
            "bytes": _count(entry.get("bytes"), f"{at}.bytes"),
            "linked": _flag(entry.get("linked"), f"{at}.linked"),
            "schema": [{"name": c["name"], "type": c["type"]} for c in schema],
            "key": key,
            "unique_key": _flag(entry.get("unique_key", False), f"{at}.unique_key"),
            "ddl": _ddl(entry.get("ddl"), f"{at}.ddl"),
            "references": _references(entry.get("references", []), f"{at}.references"),
        }
    return {**manifest, "format": SNAPSHOT_FORMAT, "tables": out}


def _ddl(value: object, at: str) -> str | None:
    """A table's CREATE TABLE text as the manifest holds it: bounded here; that it is one CREATE TABLE of that
    very table is checked where it is used (worker.restore.checked_ddl, with DuckDB's own tokenizer)."""
    if value is None:
        return None  # a snapshot from before DDL was kept: restored by its columns, as then
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_DDL_CHARS or "\0" in value:
        raise ValueError(f"{at}: null or a CREATE TABLE text of at most {MAX_DDL_CHARS} characters is needed")
    return value


def _references(value: object, at: str) -> list[str]:
    if not isinstance(value, list) or len(value) > _MAX_REFERENCES:
        raise ValueError(f"{at}: a list of at most {_MAX_REFERENCES} table names is needed")
    if not all(isinstance(t, str) and 0 < len(t) <= 300 for t in value):
        raise ValueError(f"{at}: a list of table names (schema.table) is needed")
    return list(value)


def _mapping(value: object, at: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{at}: an object is needed, got {type(value).__name__}")
    return value


def _count(value: object, at: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{at}: a count (an integer, 0 or more) is needed, got {value!r:.40}")
    return value


def _flag(value: object, at: str) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{at}: true or false is needed, got {value!r:.40}")
    return value


def _file(value: object, at: str) -> dict[str, Any]:
    entry = _mapping(value, at)
    name = entry.get("file")
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise ValueError(f"{at}.file: a plain file name is needed, got {name!r:.80}")
    out = {
        "file": name,
        "rows": _count(entry.get("rows"), f"{at}.rows"),
        "bytes": _count(entry.get("bytes"), f"{at}.bytes"),
        "linked": _flag(entry.get("linked", False), f"{at}.linked"),
    }
    for digest in _DIGESTS:  # absent in a snapshot from before they were kept: its files are checked by size
        value = entry.get(digest)
        if value is not None and not (isinstance(value, str) and _SHA256.fullmatch(value)):
            raise ValueError(f"{at}.{digest}: null or 64 lowercase hex digits are needed, got {value!r:.80}")
        if value is not None:
            out[digest] = value
    if entry.get("hashes") is not None:  # absent in a snapshot from before they were kept: a diff hashes
        out["hashes"] = _hashes(entry["hashes"], f"{at}.hashes")
    return out


def _hashes(value: object, at: str) -> dict[str, Any]:
    """A file's row hashes entry ``{bytes, footer_sha256, key, duckdb}`` (worker/snapshothashes.py), or ValueError."""
    entry = _mapping(value, at)
    digest, key, version = entry.get("footer_sha256"), entry.get("key"), entry.get("duckdb")
    if not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        raise ValueError(f"{at}.footer_sha256: 64 lowercase hex digits are needed, got {digest!r:.80}")
    if not (isinstance(key, list) and key and all(isinstance(c, str) for c in key)):
        raise ValueError(f"{at}.key: a non-empty list of column names is needed")
    if not (isinstance(version, str) and 0 < len(version) <= 40):
        raise ValueError(f"{at}.duckdb: a version text is needed, got {version!r:.80}")
    return {"bytes": _count(entry.get("bytes"), f"{at}.bytes"), "footer_sha256": digest, "key": key, "duckdb": version}


def link_snapshot(folder: Path, source: str, run_id: str, *, keep: int) -> dict[str, Any]:
    """Keep ``source``'s whole snapshot again as run ``run_id``'s (a rollback to it leaves the same tables):
    every file and its statistics and row hashes files hard-linked (copied across filesystems), then made whole like any
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
            for beside in (STATS, HASHES):
                if (src.parent / beside / src.name).is_file():
                    (stage / beside).mkdir(exist_ok=True)
                    _link_or_copy(src.parent / beside / src.name, stage / beside / src.name)
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
