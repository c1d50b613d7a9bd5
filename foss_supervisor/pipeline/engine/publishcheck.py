"""Whether a pipeline's current published set may stand for a run that changed no layer table (issue 18: such
runs had each published a new set, a Parquet folder or a Delta version, pushing real runs out of
``publish_keep``).

It may when it is whole and of today's publish config: its manifest is readable and of the pipeline's
``publish_format``; it lists exactly the tables the publish would write, each partitioned by the same
columns; and every file it lists is on disk with the bytes it says (Parquet: the run folder has ``_SUCCESS``
and ``current`` points at it; Delta: each table's log holds the manifest's version and none after it). It
must also be of the run whose snapshot stands for the new run, which the caller checks with the run id
returned here. Stdlib only: this runs in the daemon.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foss_supervisor.pipeline.engine.publish import CURRENT, MANIFEST, MANIFEST_FORMAT, RUNS, SUCCESS

__all__ = ["current_set"]

_DELTA = "delta"
_DELTA_LOG = "_delta_log"


def current_set(folder: Path, fmt: str, listing: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """``(run id, problem)`` of the published set current in ``folder`` (a pipeline's publish folder) for a
    publish of ``listing`` (``[{table, partition_by}]``) in ``fmt``: the run it holds (None when there is no
    readable manifest) and why it cannot be kept as it is, a phrase that follows "the published set" (``is
    missing``, ``is damaged (...)``, ``is of another publish config (...)``), or None when it can be."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "is missing"
    except (OSError, ValueError) as exc:
        return None, f"has an unreadable manifest ({exc})"
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None, "has a manifest of an unknown format"
    run_id = manifest.get("run_id")
    run_id = run_id if isinstance(run_id, str) else None
    tables = manifest.get("tables")
    if ((manifest.get("publish_format") or "parquet") != fmt) or not isinstance(tables, dict):
        return run_id, "is of another publish config (publish_format)"
    wanted = {str(t["table"]): [str(c) for c in t["partition_by"]] for t in listing}
    if set(tables) != set(wanted):
        return run_id, "is of another publish config (the tables published)"
    if any(list(e.get("partition_by") or []) != wanted[name] for name, e in tables.items()):
        return run_id, "is of another publish config (publish_partition_by)"
    try:
        problem = _damage(folder, fmt, run_id, tables)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem = f"is damaged ({exc})"
    return run_id, problem


def _damage(folder: Path, fmt: str, run_id: str | None, tables: Mapping[str, Any]) -> str | None:
    """What is missing of the set the manifest describes, or None."""
    if fmt != _DELTA:
        if run_id is None or not (folder / RUNS / run_id / SUCCESS).is_file():
            return "is damaged (its run folder is not whole)"
        if not (folder / CURRENT).is_symlink() or os.readlink(folder / CURRENT) != f"{RUNS}/{run_id}":
            return "is damaged (current does not point at its run)"
    for name, entry in tables.items():
        if fmt == _DELTA:
            log = folder / name / _DELTA_LOG
            version = int(entry["version"])
            if not (log / f"{version:020d}.json").is_file():
                return f"is damaged ({name}'s version {version} is gone)"
            if (log / f"{version + 1:020d}.json").exists():
                return f"is damaged ({name} has commits after version {version})"
        size = sum((folder / str(f)).stat().st_size for f in entry["files"])
        if size != int(entry["bytes"]):
            return f"is damaged ({name}'s files hold {size} bytes, not {entry['bytes']})"
    return None
