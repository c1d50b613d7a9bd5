"""The published set of a pipeline: one folder per table, a ``_SUCCESS`` marker and a manifest per run, and
the switch that makes a run current for every table at once.

Layout, under ``<data_dir>/published/<pipeline>/``::

    _manifest.json                  the current run: swapped by one rename, so a reader sees one run whole
    current -> runs/<run_id>        a symlink to the same run, swapped by one rename (for path-based readers)
    runs/<run_id>/
        _SUCCESS                    written last, as Spark and Hadoop do
        _manifest.json              the same manifest, its paths relative to this folder
        <schema>.<table>/part-0.parquet                    a table, or with publish_partition_by:
        <schema>.<table>/<column>=<value>/part-0.parquet   Hive-style partitions
    runs/.<run_id>.partial/         a publish in progress (the worker writes here; never read)

A run is published in three moves: the worker writes every table into the hidden ``.partial`` folder in one
read-only transaction (worker/publish.py); then :func:`commit_run` adds the manifest and ``_SUCCESS``,
renames the folder to ``runs/<run_id>`` and swaps ``current`` and ``_manifest.json``, each with one
rename(2); then it prunes runs beyond the retention count. A publish that fails, is cancelled or whose
worker is killed never gets to the swaps: the previous run stays current and whole (:func:`discard_stage`
removes the partial folder, and the next publish removes any a killed daemon left).

Every path in a manifest is relative to the folder that holds that manifest. Stdlib only: this runs in the
daemon, which never imports DuckDB.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foss_supervisor.base.atomicfile import atomic_publish, atomic_write, fsync_dir

__all__ = [
    "CURRENT",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "PARTIAL_STAGE",
    "RUNS",
    "RUN_ID",
    "SUCCESS",
    "commit_run",
    "discard_stage",
    "drop_run",
    "finish_run",
    "make_current",
    "published_run",
    "remove_published",
    "stage_name",
    "switch_current",
]

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
CURRENT = "current"
RUNS = "runs"
#: the ``format`` field of every manifest; a reader checks it before it trusts the rest
MANIFEST_FORMAT = "foss-supervisor.published/1"
#: a run id as folders are named by it, and the hidden folder a run's files are staged in (``.ID.partial``)
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
PARTIAL_STAGE = re.compile(r"\.([A-Za-z0-9_-]{1,100})\.partial")


def stage_name(run_id: str) -> str:
    """The hidden folder under ``runs/`` the worker writes ``run_id``'s tables into. Raises ValueError."""
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"bad run id {run_id!r}")
    return f".{run_id}.partial"


def _manifest(
    pipeline: str, run_id: str, finished_at: float, tables: Sequence[Mapping[str, Any]], prefix: str
) -> dict[str, Any]:
    """The manifest of one run; ``tables`` as the worker returned them (paths relative to the run folder)."""
    return {
        "format": MANIFEST_FORMAT,
        "pipeline": pipeline,
        "run_id": run_id,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished_at)),
        "run_dir": prefix.rstrip("/") or ".",
        "tables": {
            str(t["table"]): {
                "path": prefix + str(t["path"]),
                "format": "parquet",
                "rows": int(t["rows"]),
                "bytes": int(t["bytes"]),
                "partition_by": list(t["partition_by"]),
                "schema": [{"name": str(c["name"]), "type": str(c["type"])} for c in t["schema"]],
                "files": [prefix + str(f) for f in t["files"]],
            }
            for t in tables
        },
    }


def commit_run(
    folder: Path, pipeline: str, run_id: str, finished_at: float, tables: Sequence[Mapping[str, Any]], *, keep: int
) -> dict[str, Any]:
    """Make the run the worker staged under ``folder/runs/.<run_id>.partial`` the current published set:
    :func:`finish_run`, then :func:`make_current`.

    ``folder`` is the pipeline's publish folder, ``tables`` the worker's list of ``{table, path, rows, bytes,
    partition_by, schema: [{name, type}], files}``, ``keep`` how many runs stay on disk (at least 1: the
    current). Returns the top-level manifest. Raises OSError; before the swap of ``_manifest.json`` the
    previous set is still the current one.
    """
    finish_run(folder, pipeline, run_id, finished_at, tables)
    return make_current(folder, run_id, keep=keep)


def finish_run(
    folder: Path, pipeline: str, run_id: str, finished_at: float, tables: Sequence[Mapping[str, Any]]
) -> None:
    """Make the run staged under ``folder/runs/.<run_id>.partial`` whole as ``runs/<run_id>`` (its manifest,
    then ``_SUCCESS``, then one rename), not current yet: :func:`make_current` or :func:`drop_run` follows
    (a run's snapshot links its files in between, runsnapshots.py). Raises OSError."""
    runs = folder / RUNS
    stage = runs / stage_name(run_id)
    final = runs / run_id
    atomic_write(stage / MANIFEST, json.dumps(_manifest(pipeline, run_id, finished_at, tables, ""), indent=1))
    atomic_write(stage / SUCCESS, b"")
    fsync_dir(stage)
    if final.exists():  # a retry of the same publish: the earlier copy was never current, or is replaced whole
        shutil.rmtree(final)
    os.rename(stage, final)
    fsync_dir(runs)


def make_current(folder: Path, run_id: str, *, keep: int) -> dict[str, Any]:
    """Make the whole run ``runs/<run_id>`` current (:func:`switch_current`), then keep the ``keep`` newest runs
    (the current one included). Returns the top-level manifest. Raises OSError, ValueError (no such run)."""
    manifest = switch_current(folder, run_id)
    _prune(folder, run_id, keep)
    return manifest


def drop_run(folder: Path, run_id: str) -> None:
    """Remove the whole run ``runs/<run_id>`` that was never made current (:func:`finish_run`), when the
    current set already holds its tables; never the current one."""
    stage_name(run_id)  # checks the id
    current = folder / CURRENT
    if current.is_symlink() and os.readlink(current) == f"{RUNS}/{run_id}":
        return
    shutil.rmtree(folder / RUNS / run_id, ignore_errors=True)


def _swap(folder: Path, run_id: str, manifest: Mapping[str, Any]) -> None:
    """Make ``runs/<run_id>`` current: the ``current`` symlink, then ``_manifest.json``, one rename each."""
    atomic_publish(folder / CURRENT, lambda link: os.symlink(f"{RUNS}/{run_id}", link))
    atomic_write(folder / MANIFEST, json.dumps(manifest, indent=1))  # the switch readers of the manifest see


def published_run(folder: Path, run_id: str) -> bool:
    """Whether run ``run_id``'s published set is still kept whole in ``folder`` (the pipeline's publish folder)."""
    stage_name(run_id)  # checks the id
    return (folder / RUNS / run_id / SUCCESS).is_file()


def switch_current(folder: Path, run_id: str) -> dict[str, Any]:
    """Make the kept published run ``run_id`` current again (a rollback): the same two renames as a
    publish. Returns the top-level manifest. Raises OSError, ValueError (no such run kept, bad manifest)."""
    if not published_run(folder, run_id):
        raise ValueError(f"run {run_id} is not kept in {folder / RUNS}")
    own = json.loads((folder / RUNS / run_id / MANIFEST).read_text(encoding="utf-8"))
    if own.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"run {run_id}'s manifest has an unknown format {own.get('format')!r}")
    prefix = f"{RUNS}/{run_id}/"
    own["run_dir"] = prefix.rstrip("/")
    for entry in own["tables"].values():
        entry["path"] = prefix + entry["path"]
        entry["files"] = [prefix + f for f in entry["files"]]
    _swap(folder, run_id, own)
    return dict(own)


def _prune(folder: Path, current: str, keep: int) -> None:
    """Remove published runs beyond the ``keep`` newest (the current always stays), partial folders a killed
    publish left, the single files of the layout before runs (``<schema>.<table>.parquet``) and the Delta
    tables of a ``publish_format: delta`` before (publishdelta.py)."""
    runs = folder / RUNS
    done = sorted(
        (p for p in runs.iterdir() if p.is_dir() and RUN_ID.fullmatch(p.name) and p.name != current),
        key=lambda p: (p.stat().st_mtime, p.name),
        reverse=True,
    )
    for old in done[max(keep - 1, 0) :]:
        shutil.rmtree(old, ignore_errors=True)
    for partial in runs.iterdir():
        if PARTIAL_STAGE.fullmatch(partial.name):
            shutil.rmtree(partial, ignore_errors=True)
    for legacy in folder.glob("*.parquet"):
        with contextlib.suppress(OSError):
            legacy.unlink()
    for delta in folder.glob("*/_delta_log"):  # Delta tables of the pipeline before publish_format changed
        shutil.rmtree(delta.parent, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (folder / SUCCESS).unlink()


def discard_stage(folder: Path, run_id: str) -> None:
    """Remove what a publish of ``run_id`` that did not finish wrote (never the current set)."""
    shutil.rmtree(folder / RUNS / stage_name(run_id), ignore_errors=True)


def remove_published(folder: Path) -> bool:
    """Remove everything published in ``folder`` (the pipeline's publish folder); returns whether there was
    anything. The manifest goes first, so a reader never finds a manifest whose files are gone."""
    if not folder.exists():
        return False
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST).unlink()
    shutil.rmtree(folder)
    return True
