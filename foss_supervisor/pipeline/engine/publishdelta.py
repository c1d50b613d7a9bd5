"""The published set of a pipeline as Delta Lake tables (``publish_format: delta``): one Delta table per
published table, one Delta commit per published run, and the manifest that maps runs to versions.

Layout, under ``<data_dir>/published/<pipeline>/``::

    _manifest.json                  the current run: swapped by one rename, so a reader sees one run whole;
                                    ``tables`` gives each table's Delta ``version`` of that run and ``runs``
                                    the version of every kept run (``{run_id: {finished_at, versions}}``)
    _SUCCESS                        written after the first manifest, touched after each later one
    <schema>.<table>/_delta_log/    a Delta table (Spark, Trino, DuckDB's delta extension, polars read it)
    <schema>.<table>/[<column>=<value>/]part-*.parquet

The worker writes every table in one read-only DuckDB transaction, each with ``deltalake.write_deltalake``
(mode overwrite, so version N is the N-th publish of that table), the run id in each commit's custom metadata
(``foss_supervisor.run_id``; worker/delta.py). Then :func:`commit_delta_run` swaps the manifest, the moment
the run becomes current for readers of the manifest; a reader that opens one table's latest version may see
a newer run on one table than on another for the few milliseconds between two tables' commits. Then the
worker vacuums each table, keeping the data files of the ``publish_keep`` newest runs' versions, so those
runs stay readable by time travel. A publish that fails after some tables committed has those tables
restored to their previous version by the worker (a further commit, ``foss_supervisor.undo_of``), so the
latest versions equal the manifest's again; a worker killed midway cannot do that, and the next publish
overwrites them.

A rollback (:func:`restore_delta_run`) restores each table to the version of that run with Delta's own
``RESTORE``: a new commit whose files are that version's, so history only grows and the versions in between
stay readable while kept; ``runs`` then maps the rollback's run to those new versions (the restored run keeps
its own, which hold the same rows), so every run id there names versions that hold its rows. Stdlib only:
this runs in the daemon, which never imports DuckDB or deltalake.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.pipeline.engine.publish import CURRENT, MANIFEST, MANIFEST_FORMAT, RUNS, SUCCESS, stage_name
from foss_supervisor.pipeline.engine.workerclient import WorkerClient
from foss_supervisor.pipeline.errors import PipelineError

__all__ = [
    "DELTA",
    "DELTA_LOG",
    "commit_delta_run",
    "delta_run_versions",
    "publish_delta_run",
    "restore_delta_run",
]

log = structlog.get_logger("foss_supervisor.pipeline")

#: the ``publish_format`` value, and the ``format`` of each table of such a manifest
DELTA = "delta"
#: the folder of a Delta table's commits
DELTA_LOG = "_delta_log"


def _read_manifest(folder: Path) -> dict[str, Any]:
    """The current manifest of ``folder`` when it is a Delta one, else ``{}`` (none, or Parquet's)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    ok = isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT
    return manifest if ok and manifest.get("publish_format") == DELTA else {}


def _table_entry(t: Mapping[str, Any]) -> dict[str, Any]:
    """One table of the manifest from the worker's ``{table, version, rows, bytes, partition_by, schema, files}``
    (its files relative to the table folder; in the manifest relative to the pipeline's folder)."""
    name = str(t["table"])
    return {
        "path": name,
        "format": DELTA,
        "version": int(t["version"]),
        "rows": int(t["rows"]),
        "bytes": int(t["bytes"]),
        "partition_by": [str(c) for c in t["partition_by"]],
        "schema": [{"name": str(c["name"]), "type": str(c["type"])} for c in t["schema"]],
        "files": [f"{name}/{f}" for f in t["files"]],
    }


def _write(folder: Path, manifest: Mapping[str, Any]) -> None:
    atomic_write(folder / MANIFEST, json.dumps(manifest, indent=1))  # the switch readers of the manifest see
    atomic_write(folder / SUCCESS, b"")


def commit_delta_run(
    folder: Path, pipeline: str, run_id: str, finished_at: float, tables: Sequence[Mapping[str, Any]], *, keep: int
) -> dict[str, Any]:
    """Make run ``run_id``, whose tables the worker committed (``tables`` as it described them), current:
    swap ``_manifest.json``, with ``runs`` holding the ``keep`` newest runs (this one included) that have a
    version of every table published now (a rollback to another publishes anew). Then remove what a Parquet
    publish of the pipeline left (``runs/``, ``current``) and the Delta tables no longer published (taken out
    of ``publish:``). Returns the manifest. Raises OSError; before the swap the previous run is still the
    current one."""
    stage_name(run_id)  # checks the id
    names = {str(t["table"]) for t in tables}
    kept = {
        r: e | {k: {t: v for t, v in e[k].items() if t in names} for k in ("versions", "schemas") if k in e}
        for r, e in (_read_manifest(folder).get("runs") or {}).items()
        if names <= set(e["versions"])
    }
    kept.pop(run_id, None)
    kept[run_id] = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished_at)),
        "versions": {str(t["table"]): int(t["version"]) for t in tables},
        "schemas": {str(t["table"]): _table_entry(t)["schema"] for t in tables},  # what a restore reports
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "publish_format": DELTA,
        "pipeline": pipeline,
        "run_id": run_id,
        "finished_at": kept[run_id]["finished_at"],
        "tables": {str(t["table"]): _table_entry(t) for t in tables},
        "runs": dict(list(kept.items())[-max(keep, 1) :]),
    }
    _write(folder, manifest)
    with contextlib.suppress(FileNotFoundError):  # a Parquet publish before the format changed
        (folder / CURRENT).unlink()
    shutil.rmtree(folder / RUNS, ignore_errors=True)
    for log_dir in folder.glob(f"*/{DELTA_LOG}"):  # after the swap: no manifest names these any more
        if log_dir.parent.name not in names:
            shutil.rmtree(log_dir.parent, ignore_errors=True)
    return manifest


def delta_run_versions(folder: Path, run_id: str) -> dict[str, int] | None:
    """``{schema.table: version}`` of run ``run_id`` when the Delta manifest of ``folder`` still keeps it and
    every such version's commit is still in its table's log; else None."""
    stage_name(run_id)  # checks the id
    entry = (_read_manifest(folder).get("runs") or {}).get(run_id)
    if not isinstance(entry, dict):
        return None
    versions = {str(t): int(v) for t, v in entry["versions"].items()}
    for table, version in versions.items():
        if not (folder / table / DELTA_LOG / f"{version:020d}.json").is_file():
            return None
    return versions


def _keep_versions(manifest: Mapping[str, Any]) -> dict[str, list[int]]:
    """Per table, the versions of every run the manifest keeps (what a vacuum must leave readable)."""
    out: dict[str, set[int]] = {t: {int(e["version"])} for t, e in manifest["tables"].items()}
    for run in manifest["runs"].values():
        for table, version in run["versions"].items():
            out.setdefault(table, set()).add(int(version))
    return {t: sorted(v) for t, v in out.items()}


async def _vacuum(client: WorkerClient, pipeline: str, manifest: Mapping[str, Any]) -> None:
    """Remove data files no kept run reads; a failure only leaves more files on disk (logged)."""
    request = {"task": "delta_vacuum", "pipeline": pipeline, "keep_versions": _keep_versions(manifest)}
    try:
        done = await client.task(request, timeout_s=600.0, what=f"vacuum of {pipeline}'s Delta tables")
    except PipelineError as exc:
        log.warning("pipeline_delta_vacuum_failed", pipeline=pipeline, error=str(exc))
        return
    log.info("pipeline_delta_vacuumed", pipeline=pipeline, files_removed=done["removed"])


async def publish_delta_run(
    client: WorkerClient,
    folder: Path,
    pipeline: str,
    run_id: str,
    tables: list[dict[str, Any]],
    *,
    clock: Callable[[], float],
    keep: int,
) -> dict[str, Any]:
    """Publish ``tables`` (``[{table, partition_by}]``) of ``pipeline`` as run ``run_id``: one Delta commit
    per table in the worker, the manifest swap here (``finished_at`` by ``clock``, once the tables are
    written), then the vacuum. Returns the manifest. Raises
    PipelineError (every table then at its previous version unless the worker died), OSError."""
    request = {"task": "delta_publish", "pipeline": pipeline, "run_id": run_id, "tables": tables}
    written = await client.task(request, timeout_s=3600.0, what=f"publish of {pipeline}")
    manifest = commit_delta_run(folder, pipeline, run_id, clock(), written["tables"], keep=keep)
    await _vacuum(client, pipeline, manifest)
    return manifest


async def restore_delta_run(
    client: WorkerClient, folder: Path, pipeline: str, run_id: str, by: str, *, finished_at: float, keep: int
) -> dict[str, Any]:
    """Make run ``run_id``'s Delta versions current again (a rollback by run ``by``, ending at ``finished_at``):
    each table restored to that version by a new commit, then the manifest swapped to name ``run_id`` with the
    new versions, and ``runs`` to map ``by`` to them too (``rollback_to: run_id``; ``run_id`` keeps its own
    versions, which hold the same rows), keeping the ``keep`` newest runs; then the vacuum. Returns the
    manifest. Raises ValueError (the run is not kept), PipelineError, OSError."""
    stage_name(by)  # checks the id
    versions = delta_run_versions(folder, run_id)
    if versions is None:
        raise ValueError(f"run {run_id} is not kept in {folder}'s Delta tables")
    manifest = _read_manifest(folder)
    schemas = manifest["runs"][run_id]["schemas"]
    request = {"task": "delta_restore", "pipeline": pipeline, "run_id": run_id, "by": by, "versions": versions}
    restored = await client.task(request, timeout_s=3600.0, what=f"restore of {pipeline}'s Delta tables")
    tables = {str(t["table"]): _table_entry(t | {"schema": schemas[t["table"]]}) for t in restored["tables"]}
    runs = dict(manifest["runs"])
    runs.pop(by, None)
    runs[by] = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished_at)),
        "versions": {table: entry["version"] for table, entry in tables.items()},
        "schemas": {table: entry["schema"] for table, entry in tables.items()},
        "rollback_to": run_id,
    }
    manifest |= {
        "run_id": run_id,
        "finished_at": manifest["runs"][run_id]["finished_at"],
        "tables": tables,
        "runs": dict(list(runs.items())[-max(keep, 1) :]),
    }
    _write(folder, manifest)
    await _vacuum(client, pipeline, manifest)
    return manifest
