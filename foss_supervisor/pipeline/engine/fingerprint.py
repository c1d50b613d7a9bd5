"""What a run's result depends on, as one hash, so a trigger with nothing new costs milliseconds.

A run of a pipeline reads its landing files (those matching its patterns), its reference folder and its
own definition (YAML, SQL, step parameters). If none of them changed since the last run that succeeded,
running again would recompute the same tables: a trigger then records a skipped run instead. The
fingerprint is taken before a run starts, so a file landing during the run makes the next one differ.

Stat only (names, sizes, mtimes), no reading of file contents: a fingerprint of a folder of 10,000 files
costs one scandir. Stdlib only: the daemon computes it, and the daemon never imports DuckDB.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from foss_supervisor.base.atomicfile import atomic_write
from foss_supervisor.base.jsonable import dataclass_to_json, jsonable
from foss_supervisor.core.statestore import read_json
from foss_supervisor.pipeline.engine.spec import PipelineSpec
from foss_supervisor.pipeline.worker.ledger import landing_files

__all__ = ["FingerprintStore", "definition_digest", "folder_signature", "input_fingerprint", "landing_signature"]


def landing_signature(folder: Path, patterns: Iterable[str]) -> frozenset[tuple[str, int, int]]:
    """(name, size, mtime_ns) of each landing file the pipeline would read; empty if the folder is missing."""
    out = set()
    for p in landing_files(folder, tuple(patterns)):
        try:
            st = p.stat()
        except OSError:
            continue
        out.add((p.name, st.st_size, st.st_mtime_ns))
    return frozenset(out)


#: reference folders hold a few small files; past this many the walk stops (bounded cost per trigger)
MAX_REFERENCE_FILES = 10_000


def folder_signature(folder: Path) -> frozenset[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of the files under ``folder`` (the reference data), at most
    MAX_REFERENCE_FILES of them."""
    out: set[tuple[str, int, int]] = set()
    for root, _dirs, files in os.walk(folder):
        if len(out) >= MAX_REFERENCE_FILES:
            break
        for name in files:
            p = Path(root, name)
            try:
                st = p.stat()
            except OSError:
                continue
            out.add((str(p.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return frozenset(out)


def definition_digest(spec: PipelineSpec) -> str:
    """sha256 of everything the pipeline declares (steps, SQL text, parameters, checks, schemas)."""
    doc = {
        "setup": spec.setup_sql,
        "steps": [
            [
                *(s.name, s.kind.value, s.sql, s.callable, dict(s.params), sorted(m.value for m in s.modes)),
                [dataclass_to_json(t) for t in s.thresholds],
            ]
            for s in spec.steps
        ],
        "checks": [c.text for c in spec.checks],
        "schemas": sorted(spec.schemas),
        "inputs": sorted(spec.inputs),
        "ledger": spec.ledger,
        "patterns": list(spec.patterns),
        "publish": list(spec.publish),
        "publish_partition_by": [[t, list(c)] for t, c in spec.publish_partition_by],
        "folders": dataclass_to_json(spec.folders),
        # only when not the default, so the digests of pipelines declared before the key stay the same
        **({"publish_format": spec.publish_format} if spec.publish_format != "parquet" else {}),
    }
    if spec.partition is not None:  # only when declared: the digests of other pipelines stay as they were
        doc["partition"] = spec.partition.to_json()
    keys: list[Any] = [[s.name, [[t, list(c)] for t, c in s.keys]] for s in spec.steps if s.keys]
    if keys:  # a step's keys (tablekeys.py), only when declared: so a reload applies a change of them
        doc["keys"] = keys
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=jsonable).encode()).hexdigest()


def input_fingerprint(spec: PipelineSpec) -> str:
    """One hash of the landing files, the reference files and the definition of ``spec``."""
    h = hashlib.sha256(definition_digest(spec).encode())
    for part in (landing_signature(spec.folders.landing, spec.patterns), folder_signature(spec.folders.reference)):
        h.update(json.dumps(sorted(part)).encode())
    return h.hexdigest()


class FingerprintStore:
    """``{pipeline: fingerprint of its last good run}`` in one JSON file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = read_json(path)
        self._data: dict[str, str] = {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, pipeline: str) -> str | None:
        """The fingerprint recorded for ``pipeline``, if any."""
        return self._data.get(pipeline)

    def set(self, pipeline: str, fingerprint: str | None) -> None:
        """Record (or, with None, forget) ``pipeline``'s fingerprint, durably."""
        if fingerprint is None:
            self._data.pop(pipeline, None)
        else:
            self._data[pipeline] = fingerprint
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self._data, indent=1, sort_keys=True), durable=False)
